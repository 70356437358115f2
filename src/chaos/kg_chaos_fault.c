/* Request decisions: which rules act on one request, and what the engine must do about it.
 *
 * Rates: error faults, delays and produce duplication roll their rate once per request (a hit
 * fails every in-scope partition of that request); records faults roll per record (so "rate
 * 10" corrupts about one record in ten); TCP faults roll per connection.
 *
 * Partial matches (a request whose partitions are only partly in the rule's topic scope) never
 * touch the out-of-scope partitions:
 *   Produce, reject:    forwarded with the in-scope partitions' records emptied
 *                       (REPLACE_REQUEST: nothing is written there) and their answers replaced
 *                       by the error (MUTATE_RESPONSE).
 *   Produce, lost-ack:  everything is forwarded; the broker's answer for the in-scope
 *                       partitions is replaced by the error (MUTATE_RESPONSE).
 *   Fetch and the other partition-level requests: forwarded; the in-scope partitions of the
 *                       broker's answer get the error and no records (MUTATE_RESPONSE).
 * Whole matches are answered by kgate itself (REJECT / LOST_ACK with a fabricated response),
 * except Fetch requests of an incremental fetch session (KIP-227), which are always forwarded
 * so the broker's session epoch stays in step with the client's.
 */
#include <stdlib.h>
#include <string.h>

#include "chaos/kg_chaos_internal.h"
#include "kp_msgs.h"

const uint8_t kg_chaos_no_records[1];

/* ---------------------------------------------------------------- the request, decoded once */

typedef struct view_topic {
    kp_str name; /* null when a topic id could not be named */
    kp_uuid id;  /* Fetch v13+ */
    int32_t n_parts;
    int32_t *parts;
} view_topic;

typedef struct req_view {
    int16_t api, version;
    const uint8_t *body;
    size_t len;
    kp_arena *a;
    kg_chaos *owner;
    int state; /* 0 not decoded yet, 1 decoded, -1 undecodable */
    union {
        kp_produce_request produce;
        kp_fetch_request fetch;
        kp_list_offsets_request list_offsets;
        kp_offset_for_leader_epoch_request ofle;
        kp_delete_records_request delete_records;
    } m;
    int32_t n_topics;
    view_topic *topics;
    int32_t total_parts;
} req_view;

static bool partition_level(int16_t api)
{
    return api == KG_API_PRODUCE || api == KG_API_FETCH || api == KG_API_LIST_OFFSETS ||
           api == KG_API_OFFSET_FOR_LEADER_EPOCH || api == KG_API_DELETE_RECORDS;
}

static int view_alloc(req_view *v, int32_t n)
{
    v->n_topics = n > 0 ? n : 0;
    if (n <= 0) return 0;
    v->topics = kp_arena_calloc(v->a, (size_t)n, sizeof(*v->topics));
    return v->topics ? 0 : -1;
}

static int view_parts(req_view *v, view_topic *t, int32_t n)
{
    t->n_parts = n > 0 ? n : 0;
    v->total_parts += t->n_parts;
    if (n <= 0) return 0;
    t->parts = kp_arena_calloc(v->a, (size_t)n, sizeof(*t->parts));
    return t->parts ? 0 : -1;
}

/* Fills the topic list from the decoded request. */
static int view_fill(req_view *v)
{
#define FILL(arr, name_field, parts_field, index_field)                                            \
    do {                                                                                           \
        if (view_alloc(v, (arr).count) != 0) return -1;                                            \
        for (int32_t i = 0; i < v->n_topics; i++) {                                                \
            v->topics[i].name = (arr).items[i].name_field;                                         \
            if (view_parts(v, &v->topics[i], (arr).items[i].parts_field.count) != 0) return -1;    \
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)                                     \
                v->topics[i].parts[j] = (arr).items[i].parts_field.items[j].index_field;           \
        }                                                                                          \
    } while (0)
    switch (v->api) {
    case KG_API_PRODUCE:
        FILL(v->m.produce.topic_data, name, partition_data, index);
        return 0;
    case KG_API_FETCH:
        FILL(v->m.fetch.topics, topic, partitions, partition);
        for (int32_t i = 0; i < v->n_topics; i++)
            if (v->version >= 13) {
                v->topics[i].id = v->m.fetch.topics.items[i].topic_id;
                v->topics[i].name = v->owner
                                        ? kg_chaos_lookup_topic(v->owner, &v->topics[i].id, v->a)
                                        : KP_STR_NULL;
            }
        return 0;
    case KG_API_LIST_OFFSETS:
        FILL(v->m.list_offsets.topics, name, partitions, partition_index);
        return 0;
    case KG_API_OFFSET_FOR_LEADER_EPOCH:
        FILL(v->m.ofle.topics, topic, partitions, partition);
        return 0;
    case KG_API_DELETE_RECORDS:
        FILL(v->m.delete_records.topics, name, partitions, partition_index);
        return 0;
    default:
        return -1;
    }
#undef FILL
}

static int view_decode(req_view *v)
{
    if (v->state) return v->state;
    v->state = -1;
    if (!partition_level(v->api) || !kp_api_supported(v->api, v->version)) return -1;
    kp_reader r;
    kp_reader_init(&r, v->body, v->len);
    int rc;
    switch (v->api) {
    case KG_API_PRODUCE:
        rc = kp_produce_request_decode(&r, v->a, v->version, &v->m.produce);
        break;
    case KG_API_FETCH:
        rc = kp_fetch_request_decode(&r, v->a, v->version, &v->m.fetch);
        break;
    case KG_API_LIST_OFFSETS:
        rc = kp_list_offsets_request_decode(&r, v->a, v->version, &v->m.list_offsets);
        break;
    case KG_API_OFFSET_FOR_LEADER_EPOCH:
        rc = kp_offset_for_leader_epoch_request_decode(&r, v->a, v->version, &v->m.ofle);
        break;
    default:
        rc = kp_delete_records_request_decode(&r, v->a, v->version, &v->m.delete_records);
        break;
    }
    if (rc != 0 || r.err || view_fill(v) != 0) return -1;
    v->state = 1;
    return 1;
}

/* In-scope partitions of RULE in the request. */
static int32_t view_matching(const req_view *v, const kg_chaos_rule *rule)
{
    if (!rule->has_topic) return v->total_parts;
    int32_t n = 0;
    for (int32_t i = 0; i < v->n_topics; i++)
        if (kg_chaos_match_topic(rule, v->topics[i].name)) n += v->topics[i].n_parts;
    return n;
}

/* ---------------------------------------------------------------- fabricated responses */

kp_str kg_chaos_injected_message(kp_arena *a, const kg_chaos_rule *rule)
{
    static const char prefix[] = "injected by kgate chaos rule ";
    size_t n = sizeof(prefix) - 1 + strlen(rule->id);
    char *s = kp_arena_alloc(a, n + 1);
    if (!s) return KP_STR_NULL;
    memcpy(s, prefix, sizeof(prefix) - 1);
    memcpy(s + sizeof(prefix) - 1, rule->id, strlen(rule->id) + 1);
    return (kp_str){s, (int32_t)n};
}

void kg_chaos_produce_partition_error(kp_produce_response_partition_produce_response *p,
                                      int32_t index, int16_t error, kp_str message)
{
    memset(p, 0, sizeof(*p));
    p->index = index;
    p->error_code = error;
    p->base_offset = -1;
    p->log_append_time_ms = -1;
    p->log_start_offset = -1;
    p->error_message = message;
    p->current_leader.leader_id = -1;
    p->current_leader.leader_epoch = -1;
}

void kg_chaos_fetch_partition_error(kp_fetch_response_partition_data *p, int32_t index,
                                    int16_t error)
{
    memset(p, 0, sizeof(*p));
    p->partition_index = index;
    p->error_code = error;
    p->high_watermark = -1;
    p->last_stable_offset = -1;
    p->log_start_offset = -1;
    p->diverging_epoch.epoch = -1;
    p->diverging_epoch.end_offset = -1;
    p->current_leader.leader_id = -1;
    p->current_leader.leader_epoch = -1;
    p->snapshot_id.end_offset = -1;
    p->snapshot_id.epoch = -1;
    p->aborted_transactions.count = -1;
    p->preferred_read_replica = -1;
    p->records = (kp_bytes){kg_chaos_no_records, 0};
}

void kg_chaos_list_offsets_partition_error(
    kp_list_offsets_response_list_offsets_partition_response *p, int32_t index, int16_t error)
{
    memset(p, 0, sizeof(*p));
    p->partition_index = index;
    p->error_code = error;
    p->timestamp = -1;
    p->offset = -1;
    p->leader_epoch = -1;
}

void kg_chaos_ofle_partition_error(kp_offset_for_leader_epoch_response_epoch_end_offset *p,
                                   int32_t index, int16_t error)
{
    memset(p, 0, sizeof(*p));
    p->partition = index;
    p->error_code = error;
    p->leader_epoch = -1;
    p->end_offset = -1;
}

void kg_chaos_delete_records_partition_error(
    kp_delete_records_response_delete_records_partition_result *p, int32_t index, int16_t error)
{
    memset(p, 0, sizeof(*p));
    p->partition_index = index;
    p->low_watermark = -1;
    p->error_code = error;
}

#define ALLOC_ARRAY(arr, n, a)                                                                     \
    ((arr).count = (n),                                                                            \
     (arr).items = (n) > 0 ? kp_arena_calloc((a), (size_t)(n), sizeof(*(arr).items)) : NULL,       \
     (n) <= 0 || (arr).items != NULL)

/* The whole request answered with ERROR in every partition, encoded at the request's version;
 * MSG is the Produce error message (v8+). */
static int fabricate_with(const req_view *v, kp_str msg, int16_t error, kp_writer *w)
{
    kp_arena *a = v->a;
    kp_writer_reset(w);
    switch (v->api) {
    case KG_API_PRODUCE: {
        kp_produce_response m;
        kp_produce_response_init(&m);
        if (v->version < 8) msg = KP_STR_NULL;
        if (!ALLOC_ARRAY(m.responses, v->n_topics, a)) return -1;
        for (int32_t i = 0; i < v->n_topics; i++) {
            m.responses.items[i].name = v->topics[i].name;
            if (!ALLOC_ARRAY(m.responses.items[i].partition_responses, v->topics[i].n_parts, a))
                return -1;
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)
                kg_chaos_produce_partition_error(&m.responses.items[i].partition_responses.items[j],
                                                 v->topics[i].parts[j], error, msg);
        }
        kp_produce_response_encode(w, v->version, &m);
        break;
    }
    case KG_API_FETCH: {
        kp_fetch_response m;
        kp_fetch_response_init(&m);
        if (!ALLOC_ARRAY(m.responses, v->n_topics, a)) return -1;
        for (int32_t i = 0; i < v->n_topics; i++) {
            kp_fetch_response_fetchable_topic_response *t = &m.responses.items[i];
            if (v->version >= 13)
                t->topic_id = v->topics[i].id;
            else
                t->topic = v->topics[i].name;
            if (!ALLOC_ARRAY(t->partitions, v->topics[i].n_parts, a)) return -1;
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)
                kg_chaos_fetch_partition_error(&t->partitions.items[j], v->topics[i].parts[j],
                                               error);
        }
        kp_fetch_response_encode(w, v->version, &m);
        break;
    }
    case KG_API_LIST_OFFSETS: {
        kp_list_offsets_response m;
        kp_list_offsets_response_init(&m);
        if (!ALLOC_ARRAY(m.topics, v->n_topics, a)) return -1;
        for (int32_t i = 0; i < v->n_topics; i++) {
            m.topics.items[i].name = v->topics[i].name;
            if (!ALLOC_ARRAY(m.topics.items[i].partitions, v->topics[i].n_parts, a)) return -1;
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)
                kg_chaos_list_offsets_partition_error(&m.topics.items[i].partitions.items[j],
                                                      v->topics[i].parts[j], error);
        }
        kp_list_offsets_response_encode(w, v->version, &m);
        break;
    }
    case KG_API_OFFSET_FOR_LEADER_EPOCH: {
        kp_offset_for_leader_epoch_response m;
        kp_offset_for_leader_epoch_response_init(&m);
        if (!ALLOC_ARRAY(m.topics, v->n_topics, a)) return -1;
        for (int32_t i = 0; i < v->n_topics; i++) {
            m.topics.items[i].topic = v->topics[i].name;
            if (!ALLOC_ARRAY(m.topics.items[i].partitions, v->topics[i].n_parts, a)) return -1;
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)
                kg_chaos_ofle_partition_error(&m.topics.items[i].partitions.items[j],
                                              v->topics[i].parts[j], error);
        }
        kp_offset_for_leader_epoch_response_encode(w, v->version, &m);
        break;
    }
    case KG_API_DELETE_RECORDS: {
        kp_delete_records_response m;
        kp_delete_records_response_init(&m);
        if (!ALLOC_ARRAY(m.topics, v->n_topics, a)) return -1;
        for (int32_t i = 0; i < v->n_topics; i++) {
            m.topics.items[i].name = v->topics[i].name;
            if (!ALLOC_ARRAY(m.topics.items[i].partitions, v->topics[i].n_parts, a)) return -1;
            for (int32_t j = 0; j < v->topics[i].n_parts; j++)
                kg_chaos_delete_records_partition_error(&m.topics.items[i].partitions.items[j],
                                                        v->topics[i].parts[j], error);
        }
        kp_delete_records_response_encode(w, v->version, &m);
        break;
    }
    default:
        return -1;
    }
    return w->err ? -1 : 0;
}

static int fabricate(const req_view *v, const kg_chaos_rule *rule, int16_t error, kp_writer *w)
{
    kp_str msg = v->api == KG_API_PRODUCE && v->version >= 8 ? kg_chaos_injected_message(v->a, rule)
                                                             : KP_STR_NULL;
    return fabricate_with(v, msg, error, w);
}

int kg_chaos_fabricate(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                       int16_t error, const char *message, kp_writer *out)
{
    kp_arena a;
    kp_arena_init(&a);
    req_view v = {.api = api_key, .version = api_version, .body = body, .len = len, .a = &a};
    int rc = view_decode(&v) == 1 ? fabricate_with(&v, kp_str_c(message), error, out) : -1;
    kp_arena_free(&a);
    return rc;
}

/* ---------------------------------------------------------------- actions */

void kg_chaos_action_init(kg_chaos_action *act)
{
    memset(act, 0, sizeof(*act));
    kp_writer_init(&act->request, 0);
    kp_writer_init(&act->response, 0);
}

void kg_chaos_action_free(kg_chaos_action *act)
{
    kp_writer_free(&act->request);
    kp_writer_free(&act->response);
    act->mutation = NULL; /* owned by the set */
    act->flags = 0;
}

bool kg_chaos_rule_mutates(const kg_chaos_rule *rule)
{
    switch (rule->type) {
    case KG_CHAOS_BROKEN_BROKERS:
    case KG_CHAOS_LEADER_ELECTION:
        return true;
    case KG_CHAOS_CORRUPT_RECORDS:
    case KG_CHAOS_DUPLICATE_RECORDS:
    case KG_CHAOS_INVALID_SCHEMA_ID:
        return rule->on_response;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- the decision */

typedef struct decision {
    const kg_chaos_set *set;
    req_view *v;
    const kg_chaos_conn *conn;
    kg_chaos_action *act;
    uint64_t *rng;
    bool error_done;
    unsigned mutate_mask; /* bits of set->mut_rules to apply to the response */
    kg_chaos_rule *produce_ops[KG_CHAOS_MAX_MUT];
    int n_produce_ops;
} decision;

/* Marks RULE for the response; false when the set has no slot for it. */
static bool mutate_with(decision *d, const kg_chaos_rule *rule)
{
    for (int i = 0; i < d->set->n_mut; i++)
        if (d->set->mut_rules[i] == rule) {
            d->mutate_mask |= 1u << i;
            d->act->flags |= KG_CHAOS_MUTATE_RESPONSE;
            return true;
        }
    return false;
}

/* ---------------------------------------------------------------- error faults */

int16_t kg_chaos_pick_error(const kg_chaos_rule *rule, int16_t api, int16_t version, uint64_t *rng)
{
    int16_t min_version = 0;
    if (rule->type == KG_CHAOS_BROKEN_BROKERS) {
        int16_t code = api == KG_API_PRODUCE ? rule->produce_error
                       : api == KG_API_FETCH ? rule->fetch_error
                                             : 0;
        /* A code the client's version cannot meet from a real broker is not injected. */
        if (code && kg_chaos_error_allowed(api, code, &min_version) && version < min_version)
            return 0;
        return code;
    }
    if (rule->type != KG_CHAOS_LEADER_ELECTION || rule->n_errors == 0) return 0;
    int16_t code = rule->errors[kp_rand_below(rng, (uint32_t)rule->n_errors)];
    if (kg_chaos_error_allowed(api, code, &min_version) && version < min_version)
        code = 6; /* older clients know leadership changes as NOT_LEADER_OR_FOLLOWER */
    return code;
}

/* The Produce request with the records of RULE's in-scope partitions emptied: the broker writes
 * nothing there and answers them with an error (INVALID_RECORD from v3, none before), which
 * kg_chaos_on_response replaces with the rule's error. The other partitions go through as
 * they are. */
static int produce_without_matching(req_view *v, const kg_chaos_rule *rule, kp_writer *w)
{
    kp_produce_request out = v->m.produce;
    out.topic_data.items = kp_arena_calloc(v->a, (size_t)(v->n_topics ? v->n_topics : 1),
                                           sizeof(*out.topic_data.items));
    if (!out.topic_data.items) return -1;
    for (int32_t i = 0; i < v->n_topics; i++) {
        const kp_produce_request_topic_produce_data *t = &v->m.produce.topic_data.items[i];
        out.topic_data.items[i] = *t;
        if (!kg_chaos_match_topic(rule, t->name) || t->partition_data.count <= 0) continue;
        kp_produce_request_partition_produce_data *parts =
            kp_arena_calloc(v->a, (size_t)t->partition_data.count, sizeof(*parts));
        if (!parts) return -1;
        for (int32_t j = 0; j < t->partition_data.count; j++) {
            parts[j] = t->partition_data.items[j];
            parts[j].records = (kp_bytes){kg_chaos_no_records, 0};
        }
        out.topic_data.items[i].partition_data.items = parts;
    }
    kp_writer_reset(w);
    kp_produce_request_encode(w, v->version, &out);
    return w->err ? -1 : 0;
}

static bool inject_produce_error(decision *d, kg_chaos_rule *rule, int16_t error, int32_t matched)
{
    req_view *v = d->v;
    kg_chaos_action *act = d->act;
    bool whole = matched == v->total_parts;
    bool no_ack = v->m.produce.acks == 0;
    if (rule->lost_ack) {
        if (no_ack) return false; /* no acknowledgement to lose */
        if (whole) {
            if (fabricate(v, rule, error, &act->response) != 0) return false;
            act->flags |= KG_CHAOS_LOST_ACK;
            return true;
        }
        return mutate_with(d, rule);
    }
    if (whole) {
        if (no_ack) {
            kp_writer_reset(&act->response); /* acks=0: dropped, nothing to answer */
        } else if (fabricate(v, rule, error, &act->response) != 0) {
            return false;
        }
        act->flags |= KG_CHAOS_REJECT;
        return true;
    }
    /* The answer must be patched: without a slot for this rule, leave the request alone. */
    if (!no_ack && !mutate_with(d, rule)) return false;
    if (produce_without_matching(v, rule, &act->request) != 0) {
        kp_writer_reset(&act->request);
        return false;
    }
    act->flags |= KG_CHAOS_REPLACE_REQUEST;
    return true;
}

static bool inject_error(decision *d, kg_chaos_rule *rule, int32_t matched)
{
    req_view *v = d->v;
    int16_t error = kg_chaos_pick_error(rule, v->api, v->version, d->rng);
    if (!error) return false;
    if (v->api == KG_API_PRODUCE) return inject_produce_error(d, rule, error, matched);
    bool whole = v->total_parts > 0 && matched == v->total_parts;
    /* An incremental fetch session must see every request, or its epochs drift apart. */
    if (v->api == KG_API_FETCH && v->version >= 7 && v->m.fetch.session_id != 0) whole = false;
    if (whole && fabricate(v, rule, error, &d->act->response) == 0) {
        d->act->flags |= KG_CHAOS_REJECT;
        return true;
    }
    return mutate_with(d, rule);
}

/* Whether RULE must see the request's topics to decide. */
static bool needs_topics(const kg_chaos_rule *rule, int16_t api)
{
    if (!partition_level(api)) return false;
    switch (rule->type) {
    case KG_CHAOS_BROKEN_BROKERS:
    case KG_CHAOS_LEADER_ELECTION:
    case KG_CHAOS_CORRUPT_RECORDS:
    case KG_CHAOS_DUPLICATE_RECORDS:
    case KG_CHAOS_INVALID_SCHEMA_ID:
        return true;
    default:
        return rule->has_topic;
    }
}

static bool apply_records_fault(decision *d, kg_chaos_rule *r, int32_t matched)
{
    if (r->on_response) {
        mutate_with(d, r); /* rate per record, counted when a response changes */
        return false;
    }
    if (r->type == KG_CHAOS_DUPLICATE_RECORDS) {
        /* Only whole requests: a second copy of out-of-scope partitions would leak. */
        if (matched != d->v->total_parts || !kg_chaos_roll(r, d->rng)) return false;
        d->act->flags |= KG_CHAOS_FORWARD_TWICE;
        return true;
    }
    if (d->n_produce_ops < KG_CHAOS_MAX_MUT) d->produce_ops[d->n_produce_ops++] = r;
    return false;
}

/* Applies RULE (in scope of the connection and API) to the request. */
static int decide_rule(decision *d, kg_chaos_rule *r)
{
    req_view *v = d->v;
    int32_t matched = 0;
    if (needs_topics(r, v->api)) {
        if (view_decode(v) < 0) return -1;
        matched = view_matching(v, r);
        /* A fetch in a session may name no partition and still return in-scope data. */
        bool maybe_later =
            v->api == KG_API_FETCH && (r->type == KG_CHAOS_BROKEN_BROKERS ||
                                       r->type == KG_CHAOS_LEADER_ELECTION || r->on_response);
        if (matched == 0 && !(maybe_later && v->version >= 7 && v->m.fetch.session_id != 0))
            return 0;
    }
    kg_chaos_count_matched(r);
    bool injected = false;
    switch (r->type) {
    case KG_CHAOS_BROKEN_BROKERS:
    case KG_CHAOS_LEADER_ELECTION:
        if (d->error_done || !kg_chaos_roll(r, d->rng)) break;
        injected = inject_error(d, r, matched);
        d->error_done = injected;
        break;
    case KG_CHAOS_LATENCY:
        if (!kg_chaos_roll(r, d->rng)) break;
        if (r->on_response) {
            d->act->delay_response_us += r->min_us;
            d->act->flags |= KG_CHAOS_DELAY_RESPONSE;
        } else {
            d->act->delay_request_us += r->min_us;
            d->act->flags |= KG_CHAOS_DELAY_REQUEST;
        }
        injected = true;
        break;
    case KG_CHAOS_SLOW_BROKER:
        if (!kg_chaos_roll(r, d->rng)) break;
        d->act->delay_response_us += kg_chaos_random_between(d->rng, r->min_us, r->max_us);
        d->act->flags |= KG_CHAOS_DELAY_RESPONSE;
        injected = true;
        break;
    case KG_CHAOS_SLOW_CLIENTS:
        if (!kg_chaos_roll(r, d->rng)) break;
        d->act->delay_request_us += kg_chaos_random_between(d->rng, r->min_us, r->max_us);
        d->act->flags |= KG_CHAOS_DELAY_REQUEST;
        injected = true;
        break;
    case KG_CHAOS_CORRUPT_RECORDS:
    case KG_CHAOS_DUPLICATE_RECORDS:
    case KG_CHAOS_INVALID_SCHEMA_ID:
        injected = apply_records_fault(d, r, matched);
        break;
    default:
        break;
    }
    if (injected) kg_chaos_count_injected(r);
    return 0;
}

/* Records faults on produce, once every rule has been seen. */
static void rewrite_produce(decision *d)
{
    kg_chaos_action *act = d->act;
    if (!d->n_produce_ops || (act->flags & (KG_CHAOS_REJECT | KG_CHAOS_LOST_ACK |
                                            KG_CHAOS_REPLACE_REQUEST | KG_CHAOS_MUTATE_RESPONSE)))
        return; /* an error fault answers this request; its records do not matter */
    bool injected[KG_CHAOS_MAX_MUT] = {0};
    if (kg_chaos_rewrite_produce(d->produce_ops, d->n_produce_ops, d->v->version, d->v->body,
                                 d->v->len, d->rng, &act->request, injected) == 1) {
        act->flags |= KG_CHAOS_REPLACE_REQUEST;
        for (int i = 0; i < d->n_produce_ops; i++)
            if (injected[i]) kg_chaos_count_injected(d->produce_ops[i]);
    }
}

/* A fabricated answer replaces everything else the request would have had done to it. */
static void finish(decision *d)
{
    kg_chaos_action *act = d->act;
    if (act->flags & KG_CHAOS_REJECT)
        act->flags &= ~(unsigned)(KG_CHAOS_FORWARD_TWICE | KG_CHAOS_REPLACE_REQUEST |
                                  KG_CHAOS_MUTATE_RESPONSE | KG_CHAOS_LOST_ACK);
    if (act->flags & KG_CHAOS_LOST_ACK) /* the broker's answer is thrown away */
        act->flags &= ~(unsigned)KG_CHAOS_MUTATE_RESPONSE;
    if ((act->flags & KG_CHAOS_MUTATE_RESPONSE) && d->mutate_mask && d->set->mut_table)
        act->mutation = d->set->mut_table + d->mutate_mask;
    else
        act->flags &= ~(unsigned)KG_CHAOS_MUTATE_RESPONSE;
}

int kg_chaos_on_request(const kg_chaos_set *set, const kg_chaos_conn *conn, int16_t api_key,
                        int16_t api_version, const uint8_t *body, size_t len, kg_chaos_action *act)
{
    act->flags = 0;
    act->delay_request_us = act->delay_response_us = 0;
    act->mutation = NULL;
    kp_writer_reset(&act->request);
    kp_writer_reset(&act->response);
    if (!set || set->n == 0 || !kg_api_bits_has(&set->apis, api_key)) return 0;
    kp_arena a;
    kp_arena_init(&a);
    req_view v = {.api = api_key,
                  .version = api_version,
                  .body = body,
                  .len = len,
                  .a = &a,
                  .owner = set->owner};
    decision d = {.set = set, .v = &v, .conn = conn, .act = act, .rng = kg_chaos_rng(conn)};
    int rc = 0;
    for (int i = 0; i < set->n && rc == 0; i++) {
        kg_chaos_rule *r = set->rules[i];
        if (!kg_api_bits_has(&r->apis, api_key) || !kg_chaos_match_conn(set, r, conn)) continue;
        rc = decide_rule(&d, r);
    }
    if (rc == 0) {
        rewrite_produce(&d);
        finish(&d);
    } else {
        /* Undecodable: forward untouched, whatever was decided so far. */
        act->flags = 0;
        act->delay_request_us = act->delay_response_us = 0;
        act->mutation = NULL;
        kp_writer_reset(&act->request);
        kp_writer_reset(&act->response);
    }
    kp_arena_free(&a);
    return rc;
}
