/* Chaos decisions on real encoded requests: fabricated error responses decode back with the
 * generated decoders at every version, partial matches leave out-of-scope partitions alone,
 * lost-ack / reject / acks=0 flags, delays, scope (vcluster, broker, client id, group), TCP
 * faults, and records faults on Fetch responses and Produce requests. */
#include "kt.h"

#include <jansson.h>

#include "chaos/kg_chaos_internal.h"
#include "kp_msgs.h"
#include "proto/kp_records.h"
#include "util/kg_log.h"

__attribute__((constructor)) static void quiet(void)
{
    kg_log_set_level(KG_LOG_WARN);
}

/* ---- fixtures ---- */

static kg_chaos *chaos_with(const char *rule_json)
{
    kg_chaos *ch = kg_chaos_new(NULL, NULL);
    if (rule_json) {
        json_t *j = json_loads(rule_json, 0, NULL);
        char err[256];
        if (!j || kg_chaos_add(ch, j, "test", NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "cannot add %s: %s\n", rule_json, j ? err : "bad JSON");
            abort();
        }
        json_decref(j);
    }
    return ch;
}

static void add_rule(kg_chaos *ch, const char *rule_json)
{
    json_t *j = json_loads(rule_json, 0, NULL);
    char err[256];
    if (!j || kg_chaos_add(ch, j, "test", NULL, err, sizeof(err)) != 0) abort();
    json_decref(j);
}

static uint64_t rng_state = 42;

static kg_chaos_conn conn_for(const char *vcluster, const char *client_id, int32_t node_id)
{
    kg_chaos_conn c = {.vcluster = vcluster,
                       .client_id = client_id ? kp_str_c(client_id) : KP_STR_NULL,
                       .node_id = node_id,
                       .rng = &rng_state};
    return c;
}

static json_t *first_rule(kg_chaos *ch)
{
    json_t *list = kg_chaos_list(ch);
    json_t *r = json_incref(json_array_get(list, 0));
    json_decref(list);
    return r;
}

static long long counter(kg_chaos *ch, const char *name)
{
    json_t *r = first_rule(ch);
    long long v = json_integer_value(json_object_get(r, name));
    json_decref(r);
    return v;
}

/* ---- requests ---- */

static const uint8_t some_records[] = {1, 2, 3, 4};

/* Produce: "orders.eu" partitions 0 and 1, "audit" partition 0 (when WITH_AUDIT). */
static void encode_produce(kp_writer *w, int16_t version, int16_t acks, bool with_audit,
                           const kp_bytes *records)
{
    kp_produce_request_partition_produce_data orders_parts[2];
    memset(orders_parts, 0, sizeof(orders_parts));
    kp_produce_request_partition_produce_data audit_parts[1];
    memset(audit_parts, 0, sizeof(audit_parts));
    kp_bytes recs = records ? *records : (kp_bytes){some_records, sizeof(some_records)};
    orders_parts[0].index = 0;
    orders_parts[1].index = 1;
    audit_parts[0].index = 0;
    orders_parts[0].records = orders_parts[1].records = audit_parts[0].records = recs;
    kp_produce_request_topic_produce_data topics[2];
    memset(topics, 0, sizeof(topics));
    topics[0].name = kp_str_c("orders.eu");
    topics[0].partition_data.count = 2;
    topics[0].partition_data.items = orders_parts;
    topics[1].name = kp_str_c("audit");
    topics[1].partition_data.count = 1;
    topics[1].partition_data.items = audit_parts;
    kp_produce_request m;
    kp_produce_request_init(&m);
    m.acks = acks;
    m.timeout_ms = 1000;
    m.topic_data.count = with_audit ? 2 : 1;
    m.topic_data.items = topics;
    kp_writer_reset(w);
    kp_produce_request_encode(w, version, &m);
}

static const kp_uuid orders_id = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
static const kp_uuid audit_id = {{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}};

static void fetch_partition(kp_fetch_request_fetch_partition *p, int32_t index)
{
    memset(p, 0, sizeof(*p));
    p->partition = index;
    p->current_leader_epoch = -1;
    p->last_fetched_epoch = -1;
    p->log_start_offset = -1;
    p->partition_max_bytes = 1 << 20;
}

static void encode_fetch(kp_writer *w, int16_t version, bool with_audit, int32_t session_id)
{
    kp_fetch_request_fetch_partition orders_parts[2], audit_parts[1];
    fetch_partition(&orders_parts[0], 0);
    fetch_partition(&orders_parts[1], 1);
    fetch_partition(&audit_parts[0], 0);
    kp_fetch_request_fetch_topic topics[2];
    memset(topics, 0, sizeof(topics));
    if (version >= 13) {
        topics[0].topic_id = orders_id;
        topics[1].topic_id = audit_id;
    } else {
        topics[0].topic = kp_str_c("orders.eu");
        topics[1].topic = kp_str_c("audit");
    }
    topics[0].partitions.count = 2;
    topics[0].partitions.items = orders_parts;
    topics[1].partitions.count = 1;
    topics[1].partitions.items = audit_parts;
    kp_fetch_request m;
    kp_fetch_request_init(&m);
    m.max_wait_ms = 500;
    m.min_bytes = 1;
    m.session_id = version >= 7 ? session_id : 0;
    m.session_epoch = version >= 7 && session_id ? 3 : -1;
    m.topics.count = with_audit ? 2 : 1;
    m.topics.items = topics;
    kp_writer_reset(w);
    kp_fetch_request_encode(w, version, &m);
}

/* A broker's Fetch answer for orders.eu 0,1 and audit 0, each with RECORDS. */
static void encode_fetch_response(kp_writer *w, int16_t version, kp_bytes records)
{
    kp_fetch_response_partition_data orders_parts[2], audit_parts[1];
    kg_chaos_fetch_partition_error(&orders_parts[0], 0, 0);
    kg_chaos_fetch_partition_error(&orders_parts[1], 1, 0);
    kg_chaos_fetch_partition_error(&audit_parts[0], 0, 0);
    for (int i = 0; i < 2; i++) {
        orders_parts[i].high_watermark = 100;
        orders_parts[i].records = records;
    }
    audit_parts[0].high_watermark = 7;
    audit_parts[0].records = records;
    kp_fetch_response_fetchable_topic_response topics[2];
    memset(topics, 0, sizeof(topics));
    if (version >= 13) {
        topics[0].topic_id = orders_id;
        topics[1].topic_id = audit_id;
    } else {
        topics[0].topic = kp_str_c("orders.eu");
        topics[1].topic = kp_str_c("audit");
    }
    topics[0].partitions.count = 2;
    topics[0].partitions.items = orders_parts;
    topics[1].partitions.count = 1;
    topics[1].partitions.items = audit_parts;
    kp_fetch_response m;
    kp_fetch_response_init(&m);
    m.responses.count = 2;
    m.responses.items = topics;
    kp_writer_reset(w);
    kp_fetch_response_encode(w, version, &m);
}

static bool is_orders(int16_t version, const kp_fetch_response_fetchable_topic_response *t)
{
    return version >= 13 ? memcmp(t->topic_id.b, orders_id.b, 16) == 0
                         : kp_str_eq_c(t->topic, "orders.eu");
}

static void learn_ids(kg_chaos *ch)
{
    kg_chaos_learn_topic(ch, &orders_id, "orders.eu", 9);
    kg_chaos_learn_topic(ch, &audit_id, "audit", 5);
}

/* ---- Produce ---- */

KT_TEST(produce_reject_fabricates_every_version)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"topic\": \"orders.*\", "
                              "\"errors\": {\"produce\": \"NOT_ENOUGH_REPLICAS\"}}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    const kp_api_info *info = kp_api_get(0);
    for (int16_t v = info->min_version; v <= info->max_version; v++) {
        encode_produce(&req, v, -1, false, NULL);
        KT_CHECK(kg_chaos_request_wanted(set, &conn, 0, v));
        kg_chaos_action act;
        kg_chaos_action_init(&act);
        KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, v, req.buf, req.len, &act), 0);
        KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
        kp_arena a;
        kp_arena_init(&a);
        kp_reader r;
        kp_reader_init(&r, act.response.buf, act.response.len);
        kp_produce_response resp;
        int rc = kp_produce_response_decode(&r, &a, v, &resp);
        KT_CHECK(rc == 0 && !r.err && kp_reader_remaining(&r) == 0);
        if (rc == 0 && !r.err) {
            KT_CHECK_EQ_INT(resp.responses.count, 1);
            KT_CHECK(kp_str_eq_c(resp.responses.items[0].name, "orders.eu"));
            KT_CHECK_EQ_INT(resp.responses.items[0].partition_responses.count, 2);
            for (int j = 0; j < resp.responses.items[0].partition_responses.count; j++) {
                kp_produce_response_partition_produce_response *p =
                    &resp.responses.items[0].partition_responses.items[j];
                KT_CHECK_EQ_INT(p->index, j);
                KT_CHECK_EQ_INT(p->error_code, 19);
                KT_CHECK_EQ_INT(p->base_offset, -1);
                if (v >= 8) KT_CHECK(p->error_message.len > 0);
            }
        }
        kp_arena_free(&a);
        kg_chaos_action_free(&act);
    }
    kp_writer_free(&req);
    KT_CHECK_EQ_INT(counter(ch, "injected"), info->max_version - info->min_version + 1);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(produce_lost_ack_and_acks_zero)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"mode\": \"lost-ack\", "
                              "\"errors\": {\"produce\": \"REQUEST_TIMED_OUT\"}}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    encode_produce(&req, 9, -1, true, NULL);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_LOST_ACK);
    KT_CHECK(act.response.len > 0);
    kg_chaos_action_free(&act);
    /* acks=0: there is no acknowledgement to lose. */
    kg_chaos_action_init(&act);
    encode_produce(&req, 9, 0, true, NULL);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, 0);
    kg_chaos_action_free(&act);
    kg_chaos_release(set);
    kg_chaos_free(ch);

    /* Reject with acks=0: dropped, with no answer at all. */
    ch = chaos_with("{\"type\": \"broken-brokers\"}");
    set = kg_chaos_acquire(ch);
    kg_chaos_action_init(&act);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
    KT_CHECK_EQ_INT(act.response.len, 0);
    kg_chaos_action_free(&act);
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(produce_partial_match_forwards_the_rest_and_merges_errors)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"topic\": \"orders.*\", "
                              "\"errors\": {\"produce\": \"NOT_ENOUGH_REPLICAS\"}}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req, broker, out;
    kp_writer_init(&req, 0);
    kp_writer_init(&broker, 0);
    kp_writer_init(&out, 0);
    const kp_api_info *info = kp_api_get(0);
    for (int16_t v = info->min_version; v <= info->max_version; v++) {
        encode_produce(&req, v, 1, true, NULL);
        kg_chaos_action act;
        kg_chaos_action_init(&act);
        KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, v, req.buf, req.len, &act), 0);
        KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REPLACE_REQUEST | KG_CHAOS_MUTATE_RESPONSE);
        /* The forwarded request keeps audit's records; orders.eu's are emptied. */
        kp_arena a;
        kp_arena_init(&a);
        kp_reader r;
        kp_reader_init(&r, act.request.buf, act.request.len);
        kp_produce_request fwd;
        KT_CHECK(kp_produce_request_decode(&r, &a, v, &fwd) == 0 && !r.err);
        KT_CHECK_EQ_INT(fwd.topic_data.count, 2);
        for (int32_t i = 0; i < fwd.topic_data.count; i++)
            for (int32_t j = 0; j < fwd.topic_data.items[i].partition_data.count; j++)
                KT_CHECK_EQ_INT(fwd.topic_data.items[i].partition_data.items[j].records.len,
                                kp_str_eq_c(fwd.topic_data.items[i].name, "audit")
                                    ? (int)sizeof(some_records)
                                    : 0);
        /* The broker refuses the empty partitions and writes audit; the client sees audit's
         * answer and the rule's error. */
        kp_produce_response_partition_produce_response ok, refused[2];
        kg_chaos_produce_partition_error(&ok, 0, 0, KP_STR_NULL);
        ok.base_offset = 42;
        kg_chaos_produce_partition_error(&refused[0], 0, 87, KP_STR_NULL);
        kg_chaos_produce_partition_error(&refused[1], 1, 87, KP_STR_NULL);
        kp_produce_response_topic_produce_response t[2];
        memset(t, 0, sizeof(t));
        t[0].name = kp_str_c("orders.eu");
        t[0].partition_responses.count = 2;
        t[0].partition_responses.items = refused;
        t[1].name = kp_str_c("audit");
        t[1].partition_responses.count = 1;
        t[1].partition_responses.items = &ok;
        kp_produce_response resp;
        kp_produce_response_init(&resp);
        resp.responses.count = 2;
        resp.responses.items = t;
        kp_writer_reset(&broker);
        kp_produce_response_encode(&broker, v, &resp);
        kp_writer_reset(&out);
        KT_CHECK_EQ_INT(kg_chaos_on_response(set, &act, 0, v, broker.buf, broker.len, &out), 1);
        kp_reader_init(&r, out.buf, out.len);
        kp_produce_response seen;
        KT_CHECK(kp_produce_response_decode(&r, &a, v, &seen) == 0 && !r.err);
        int errors = 0, oks = 0;
        for (int32_t i = 0; i < seen.responses.count; i++)
            for (int32_t j = 0; j < seen.responses.items[i].partition_responses.count; j++) {
                kp_produce_response_partition_produce_response *p =
                    &seen.responses.items[i].partition_responses.items[j];
                if (kp_str_eq_c(seen.responses.items[i].name, "audit")) {
                    oks += p->error_code == 0 && p->base_offset == 42;
                } else {
                    KT_CHECK(kp_str_eq_c(seen.responses.items[i].name, "orders.eu"));
                    errors += p->error_code == 19 && p->index == j;
                }
            }
        KT_CHECK_EQ_INT(oks, 1);
        KT_CHECK_EQ_INT(errors, 2);
        kp_arena_free(&a);
        kg_chaos_action_free(&act);
    }
    kp_writer_free(&req);
    kp_writer_free(&broker);
    kp_writer_free(&out);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(error_not_known_at_the_version_is_not_injected)
{
    /* KAFKA_STORAGE_ERROR exists from Produce v4. */
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"errors\": {\"produce\": "
                              "\"KAFKA_STORAGE_ERROR\"}}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    encode_produce(&req, 3, 1, false, NULL);
    kg_chaos_on_request(set, &conn, 0, 3, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, 0);
    encode_produce(&req, 4, 1, false, NULL);
    kg_chaos_on_request(set, &conn, 0, 4, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
    kg_chaos_action_free(&act);
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

/* ---- Fetch ---- */

KT_TEST(fetch_reject_fabricates_every_version)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"topic\": \"orders.*\", "
                              "\"errors\": {\"fetch\": \"NOT_LEADER_OR_FOLLOWER\"}}");
    learn_ids(ch);
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    const kp_api_info *info = kp_api_get(1);
    for (int16_t v = info->min_version; v <= info->max_version; v++) {
        encode_fetch(&req, v, false, 0);
        kg_chaos_action act;
        kg_chaos_action_init(&act);
        KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 1, v, req.buf, req.len, &act), 0);
        KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
        kp_arena a;
        kp_arena_init(&a);
        kp_reader r;
        kp_reader_init(&r, act.response.buf, act.response.len);
        kp_fetch_response resp;
        int rc = kp_fetch_response_decode(&r, &a, v, &resp);
        KT_CHECK(rc == 0 && !r.err && kp_reader_remaining(&r) == 0);
        if (rc == 0 && !r.err) {
            KT_CHECK_EQ_INT(resp.error_code, 0);
            KT_CHECK_EQ_INT(resp.responses.count, 1);
            KT_CHECK(is_orders(v, &resp.responses.items[0]));
            KT_CHECK_EQ_INT(resp.responses.items[0].partitions.count, 2);
            for (int j = 0; j < resp.responses.items[0].partitions.count; j++) {
                kp_fetch_response_partition_data *p = &resp.responses.items[0].partitions.items[j];
                KT_CHECK_EQ_INT(p->partition_index, j);
                KT_CHECK_EQ_INT(p->error_code, 6);
                KT_CHECK_EQ_INT(p->records.len, 0);
            }
        }
        kp_arena_free(&a);
        kg_chaos_action_free(&act);
    }
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(fetch_partial_or_in_session_mutates_the_brokers_answer_every_version)
{
    kg_chaos *ch = chaos_with("{\"type\": \"leader-election\", \"topic\": \"orders.*\", "
                              "\"errors\": [\"LEADER_NOT_AVAILABLE\"]}");
    learn_ids(ch);
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req, broker, out;
    kp_writer_init(&req, 0);
    kp_writer_init(&broker, 0);
    kp_writer_init(&out, 0);
    const kp_api_info *info = kp_api_get(1);
    for (int16_t v = info->min_version; v <= info->max_version; v++) {
        for (int session = 0; session < 2; session++) {
            /* partial (both topics, no session) or whole (in a session from v7) */
            if (session && v < 7) continue;
            encode_fetch(&req, v, !session, session ? 77 : 0);
            kg_chaos_action act;
            kg_chaos_action_init(&act);
            KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 1, v, req.buf, req.len, &act), 0);
            KT_CHECK_EQ_INT(act.flags, KG_CHAOS_MUTATE_RESPONSE);
            encode_fetch_response(&broker, v, (kp_bytes){some_records, sizeof(some_records)});
            kp_writer_reset(&out);
            KT_CHECK_EQ_INT(kg_chaos_on_response(set, &act, 1, v, broker.buf, broker.len, &out), 1);
            kp_arena a;
            kp_arena_init(&a);
            kp_reader r;
            kp_reader_init(&r, out.buf, out.len);
            kp_fetch_response seen;
            KT_CHECK(kp_fetch_response_decode(&r, &a, v, &seen) == 0 && !r.err);
            KT_CHECK_EQ_INT(seen.responses.count, 2);
            for (int32_t i = 0; i < seen.responses.count; i++)
                for (int32_t j = 0; j < seen.responses.items[i].partitions.count; j++) {
                    kp_fetch_response_partition_data *p =
                        &seen.responses.items[i].partitions.items[j];
                    if (is_orders(v, &seen.responses.items[i])) {
                        KT_CHECK_EQ_INT(p->error_code, 5);
                        KT_CHECK_EQ_INT(p->records.len, 0);
                    } else {
                        KT_CHECK_EQ_INT(p->error_code, 0);
                        KT_CHECK_EQ_INT(p->high_watermark, 7);
                        KT_CHECK_EQ_INT(p->records.len, sizeof(some_records));
                    }
                }
            kp_arena_free(&a);
            kg_chaos_action_free(&act);
        }
    }
    kp_writer_free(&req);
    kp_writer_free(&broker);
    kp_writer_free(&out);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(fetch_by_unknown_topic_id_is_out_of_scope)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"topic\": \"orders.*\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    KT_CHECK(kg_chaos_wants_topic_ids(set));
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    encode_fetch(&req, 13, false, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 1, 13, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, 0);
    /* Learned from a Metadata response, the id is in scope. */
    kp_metadata_response_metadata_response_topic topic = {0};
    topic.name = kp_str_c("orders.eu");
    topic.topic_id = orders_id;
    kp_metadata_response md;
    kp_metadata_response_init(&md);
    md.topics.count = 1;
    md.topics.items = &topic;
    kp_writer mdw;
    kp_writer_init(&mdw, 0);
    kp_metadata_response_encode(&mdw, 12, &md);
    KT_CHECK(!mdw.err);
    kg_chaos_observe_metadata(ch, 12, mdw.buf, mdw.len);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 1, 13, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
    kg_chaos_action_free(&act);
    kp_writer_free(&mdw);
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

/* ---- other partition-level requests ---- */

static void encode_list_offsets(kp_writer *w, int16_t version)
{
    kp_list_offsets_request_list_offsets_partition p = {0};
    p.partition_index = 3;
    p.current_leader_epoch = -1;
    p.timestamp = -1;
    p.max_num_offsets = 1;
    kp_list_offsets_request_list_offsets_topic t = {0};
    t.name = kp_str_c("orders.eu");
    t.partitions.count = 1;
    t.partitions.items = &p;
    kp_list_offsets_request m;
    kp_list_offsets_request_init(&m);
    m.replica_id = -1;
    m.topics.count = 1;
    m.topics.items = &t;
    kp_writer_reset(w);
    kp_list_offsets_request_encode(w, version, &m);
}

static void encode_ofle(kp_writer *w, int16_t version)
{
    kp_offset_for_leader_epoch_request_offset_for_leader_partition p = {0};
    p.partition = 3;
    p.current_leader_epoch = -1;
    p.leader_epoch = 5;
    kp_offset_for_leader_epoch_request_offset_for_leader_topic t = {0};
    t.topic = kp_str_c("orders.eu");
    t.partitions.count = 1;
    t.partitions.items = &p;
    kp_offset_for_leader_epoch_request m;
    kp_offset_for_leader_epoch_request_init(&m);
    m.topics.count = 1;
    m.topics.items = &t;
    kp_writer_reset(w);
    kp_offset_for_leader_epoch_request_encode(w, version, &m);
}

static void encode_delete_records(kp_writer *w, int16_t version)
{
    kp_delete_records_request_delete_records_partition p = {0};
    p.partition_index = 3;
    p.offset = 10;
    kp_delete_records_request_delete_records_topic t = {0};
    t.name = kp_str_c("orders.eu");
    t.partitions.count = 1;
    t.partitions.items = &p;
    kp_delete_records_request m;
    kp_delete_records_request_init(&m);
    m.topics.count = 1;
    m.topics.items = &t;
    m.timeout_ms = 100;
    kp_writer_reset(w);
    kp_delete_records_request_encode(w, version, &m);
}

KT_TEST(leader_election_answers_other_partition_requests_every_version)
{
    kg_chaos *ch = chaos_with("{\"type\": \"leader-election\", \"errors\": "
                              "[\"NOT_LEADER_OR_FOLLOWER\"]}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    const int16_t apis[] = {KG_API_LIST_OFFSETS, KG_API_OFFSET_FOR_LEADER_EPOCH,
                            KG_API_DELETE_RECORDS};
    for (size_t k = 0; k < 3; k++) {
        const kp_api_info *info = kp_api_get(apis[k]);
        for (int16_t v = info->min_version; v <= info->max_version; v++) {
            if (apis[k] == KG_API_LIST_OFFSETS) encode_list_offsets(&req, v);
            if (apis[k] == KG_API_OFFSET_FOR_LEADER_EPOCH) encode_ofle(&req, v);
            if (apis[k] == KG_API_DELETE_RECORDS) encode_delete_records(&req, v);
            KT_CHECK(!req.err);
            kg_chaos_action act;
            kg_chaos_action_init(&act);
            KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, apis[k], v, req.buf, req.len, &act), 0);
            KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
            kp_arena a;
            kp_arena_init(&a);
            kp_reader r;
            kp_reader_init(&r, act.response.buf, act.response.len);
            int16_t error = -100;
            int32_t index = -100;
            kp_str name = KP_STR_NULL;
            if (apis[k] == KG_API_LIST_OFFSETS) {
                kp_list_offsets_response m;
                if (kp_list_offsets_response_decode(&r, &a, v, &m) == 0 && m.topics.count == 1 &&
                    m.topics.items[0].partitions.count == 1) {
                    name = m.topics.items[0].name;
                    error = m.topics.items[0].partitions.items[0].error_code;
                    index = m.topics.items[0].partitions.items[0].partition_index;
                }
            } else if (apis[k] == KG_API_OFFSET_FOR_LEADER_EPOCH) {
                kp_offset_for_leader_epoch_response m;
                if (kp_offset_for_leader_epoch_response_decode(&r, &a, v, &m) == 0 &&
                    m.topics.count == 1 && m.topics.items[0].partitions.count == 1) {
                    name = m.topics.items[0].topic;
                    error = m.topics.items[0].partitions.items[0].error_code;
                    index = m.topics.items[0].partitions.items[0].partition;
                }
            } else {
                kp_delete_records_response m;
                if (kp_delete_records_response_decode(&r, &a, v, &m) == 0 && m.topics.count == 1 &&
                    m.topics.items[0].partitions.count == 1) {
                    name = m.topics.items[0].name;
                    error = m.topics.items[0].partitions.items[0].error_code;
                    index = m.topics.items[0].partitions.items[0].partition_index;
                }
            }
            KT_CHECK(!r.err && kp_reader_remaining(&r) == 0);
            KT_CHECK(kp_str_eq_c(name, "orders.eu"));
            KT_CHECK_EQ_INT(error, 6);
            KT_CHECK_EQ_INT(index, 3);
            kp_arena_free(&a);
            kg_chaos_action_free(&act);
        }
    }
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

/* ---- scope, rate, delays ---- */

KT_TEST(scope_vcluster_broker_client_and_rate)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"vcluster\": \"payments\", "
                              "\"broker\": 2, \"client_id\": \"billing-.*\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn in_scope = conn_for("payments", "billing-1", 2);
    kg_chaos_conn other_vc = conn_for("search", "billing-1", 2);
    kg_chaos_conn other_broker = conn_for("payments", "billing-1", 1);
    kg_chaos_conn other_client = conn_for("payments", "xbilling-1", 2);
    kg_chaos_conn no_client = conn_for("payments", NULL, 2);
    KT_CHECK(kg_chaos_request_wanted(set, &in_scope, 0, 9));
    KT_CHECK(!kg_chaos_request_wanted(set, &in_scope, 3, 9)); /* Metadata */
    KT_CHECK(!kg_chaos_request_wanted(set, &other_vc, 0, 9));
    KT_CHECK(!kg_chaos_request_wanted(set, &other_broker, 0, 9));
    KT_CHECK(!kg_chaos_request_wanted(set, &other_client, 0, 9));
    KT_CHECK(!kg_chaos_request_wanted(set, &no_client, 0, 9));
    kp_writer req;
    kp_writer_init(&req, 0);
    encode_produce(&req, 9, 1, false, NULL);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    kg_chaos_on_request(set, &other_client, 0, 9, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, 0);
    kg_chaos_on_request(set, &in_scope, 0, 9, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
    kg_chaos_action_free(&act);
    kg_chaos_release(set);
    kg_chaos_free(ch);

    /* rate 0: matched, never injected; rate 50: some of 400 requests */
    ch = chaos_with("{\"type\": \"broken-brokers\", \"rate\": 0}");
    set = kg_chaos_acquire(ch);
    for (int i = 0; i < 20; i++) {
        kg_chaos_action_init(&act);
        kg_chaos_on_request(set, &in_scope, 0, 9, req.buf, req.len, &act);
        KT_CHECK_EQ_INT(act.flags, 0);
        kg_chaos_action_free(&act);
    }
    KT_CHECK_EQ_INT(counter(ch, "matched"), 20);
    KT_CHECK_EQ_INT(counter(ch, "injected"), 0);
    kg_chaos_release(set);
    kg_chaos_free(ch);

    ch = chaos_with("{\"type\": \"broken-brokers\", \"rate\": 50}");
    set = kg_chaos_acquire(ch);
    int rejected = 0;
    for (int i = 0; i < 400; i++) {
        kg_chaos_action_init(&act);
        kg_chaos_on_request(set, &in_scope, 0, 9, req.buf, req.len, &act);
        rejected += act.flags == KG_CHAOS_REJECT;
        kg_chaos_action_free(&act);
    }
    KT_CHECK(rejected > 120 && rejected < 280);
    KT_CHECK_EQ_INT(counter(ch, "injected"), rejected);
    kg_chaos_release(set);
    kg_chaos_free(ch);
    kp_writer_free(&req);
}

KT_TEST(group_scope_follows_the_clients_group_requests)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\", \"group\": \"billing\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    KT_CHECK(kg_chaos_group_scoped(set));
    KT_CHECK(kg_chaos_is_group_api(11));
    KT_CHECK(!kg_chaos_is_group_api(0));
    kg_chaos_conn conn = conn_for("payments", "consumer-7", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    encode_fetch(&req, 11, false, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    kg_chaos_on_request(set, &conn, 1, 11, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, 0); /* group unknown yet */
    const kp_api_info *info = kp_api_get(11);
    for (int16_t v = info->min_version; v <= info->max_version; v++) {
        kp_join_group_request jg;
        kp_join_group_request_init(&jg);
        jg.group_id = kp_str_c(v % 2 ? "billing" : "other");
        jg.member_id = kp_str_c("");
        jg.protocol_type = kp_str_c("consumer");
        kp_writer w;
        kp_writer_init(&w, 0);
        kp_join_group_request_encode(&w, v, &jg);
        kg_chaos_observe(ch, &conn, 11, v, w.buf, w.len);
        kp_writer_free(&w);
        char group[64] = "";
        KT_CHECK(kg_chaos_lookup_group(ch, "payments", conn.client_id, group, sizeof(group)));
        KT_CHECK_EQ_STR(group, v % 2 ? "billing" : "other");
    }
    /* The last JoinGroup (v9) named "billing". */
    kg_chaos_on_request(set, &conn, 1, 11, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REJECT);
    /* Same client id in another virtual cluster: not that group. */
    kg_chaos_conn elsewhere = conn_for("search", "consumer-7", 1);
    kg_chaos_on_request(set, &elsewhere, 1, 11, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, 0);
    kg_chaos_action_free(&act);
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(delays_add_up_and_slow_broker_is_per_broker)
{
    kg_chaos *ch = chaos_with("{\"type\": \"latency\", \"delay_ms\": 250}");
    add_rule(ch, "{\"type\": \"latency\", \"delay_ms\": 5, \"on\": \"response\", \"api\": "
                 "[\"Metadata\"]}");
    add_rule(ch, "{\"type\": \"slow-broker\", \"broker\": 2, \"min_ms\": 10, \"max_ms\": 20}");
    add_rule(ch, "{\"type\": \"slow-clients\", \"min_ms\": 1, \"max_ms\": 3, \"apis\": "
                 "[\"produce\"], \"topic\": \"orders.*\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn b1 = conn_for("payments", "app", 1);
    kg_chaos_conn b2 = conn_for("payments", "app", 2);
    uint8_t empty_metadata[4] = {0, 0, 0, 0}; /* v0: empty topic array */
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    KT_CHECK(kg_chaos_request_wanted(set, &b1, 3, 0));
    kg_chaos_on_request(set, &b1, 3, 0, empty_metadata, sizeof(empty_metadata), &act);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_DELAY_REQUEST | KG_CHAOS_DELAY_RESPONSE);
    KT_CHECK_EQ_INT(act.delay_request_us, 250000);
    KT_CHECK_EQ_INT(act.delay_response_us, 5000);
    for (int i = 0; i < 50; i++) {
        kg_chaos_on_request(set, &b2, 3, 0, empty_metadata, sizeof(empty_metadata), &act);
        KT_CHECK(act.delay_response_us >= 15000 && act.delay_response_us <= 25000);
    }
    kp_writer req;
    kp_writer_init(&req, 0);
    encode_produce(&req, 9, 1, false, NULL);
    kg_chaos_on_request(set, &b1, 0, 9, req.buf, req.len, &act);
    KT_CHECK(act.delay_request_us >= 251000 && act.delay_request_us <= 253000);
    kg_chaos_action_free(&act);
    kp_writer_free(&req);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(tcp_faults_per_connection)
{
    kg_chaos *ch = chaos_with("{\"type\": \"reset\", \"after_ms\": 300, \"vcluster\": "
                              "\"payments\"}");
    add_rule(ch, "{\"type\": \"bandwidth\", \"kib_per_s\": 16, \"direction\": \"downstream\", "
                 "\"client_id\": \"slow-.*\"}");
    add_rule(ch, "{\"type\": \"latency\", \"delay_ms\": 1}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_tcp tcp;
    kg_chaos_conn at_accept = conn_for("payments", NULL, -1);
    KT_CHECK(kg_chaos_tcp_faults(set, &at_accept, &tcp));
    KT_CHECK_EQ_INT(tcp.faults, KG_CHAOS_TCP_RESET);
    KT_CHECK_EQ_INT(tcp.reset_after_ms, 300);
    kg_chaos_conn slow = conn_for("payments", "slow-1", -1);
    KT_CHECK(kg_chaos_tcp_faults(set, &slow, &tcp));
    KT_CHECK_EQ_INT(tcp.faults, KG_CHAOS_TCP_RESET | KG_CHAOS_TCP_BANDWIDTH);
    KT_CHECK_EQ_INT(tcp.directions, KG_CHAOS_DOWNSTREAM);
    KT_CHECK_EQ_INT(tcp.bandwidth_kib, 16);
    kg_chaos_conn other = conn_for("search", "fast", -1);
    KT_CHECK(!kg_chaos_tcp_faults(set, &other, &tcp));
    KT_CHECK_EQ_INT(tcp.faults, 0);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

KT_TEST(undecodable_requests_are_left_alone)
{
    kg_chaos *ch = chaos_with("{\"type\": \"broken-brokers\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    uint8_t junk[] = {0xff, 0xff, 0x00, 0x01, 0x02};
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, junk, sizeof(junk), &act), -1);
    KT_CHECK_EQ_INT(act.flags, 0);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, junk, 0, &act), -1);
    /* An unknown version cannot be decoded either. */
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 99, junk, sizeof(junk), &act), -1);
    kg_chaos_action_free(&act);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

/* ---- records faults ---- */

/* An uncompressed magic-2 batch of VALUES (NULL = tombstone) of LENS bytes, valid CRC. */
static void build_batch(kp_writer *w, const char *const *values, const int *lens, int n)
{
    kp_writer recs;
    kp_writer_init(&recs, 0);
    for (int i = 0; i < n; i++) {
        kp_writer one;
        kp_writer_init(&one, 0);
        kp_write_i8(&one, 0);
        kp_write_varlong(&one, 0);
        kp_write_varint(&one, i);
        kp_write_varint(&one, -1); /* no key */
        if (values[i]) {
            kp_write_varint(&one, lens[i]);
            kp_write_raw(&one, values[i], (size_t)lens[i]);
        } else {
            kp_write_varint(&one, -1);
        }
        kp_write_varint(&one, 0); /* headers */
        kp_write_varint(&recs, (int32_t)one.len);
        kp_write_raw(&recs, one.buf, one.len);
        kp_writer_free(&one);
    }
    kp_writer_reset(w);
    kp_write_i64(w, 100);                      /* base offset */
    kp_write_i32(w, (int32_t)(49 + recs.len)); /* batch length */
    kp_write_i32(w, 0);                        /* leader epoch */
    kp_write_i8(w, 2);                         /* magic */
    size_t crc_at = w->len;
    kp_write_u32(w, 0);
    size_t crc_from = w->len;
    kp_write_i16(w, 0);     /* attributes */
    kp_write_i32(w, n - 1); /* last offset delta */
    kp_write_i64(w, 1000);  /* base timestamp */
    kp_write_i64(w, 1000);  /* max timestamp */
    kp_write_i64(w, -1);    /* producer id */
    kp_write_i16(w, -1);    /* producer epoch */
    kp_write_i32(w, -1);    /* base sequence */
    kp_write_i32(w, n);     /* records */
    kp_write_raw(w, recs.buf, recs.len);
    uint32_t crc = kp_crc32c(0, w->buf + crc_from, w->len - crc_from);
    w->buf[crc_at] = (uint8_t)(crc >> 24);
    w->buf[crc_at + 1] = (uint8_t)(crc >> 16);
    w->buf[crc_at + 2] = (uint8_t)(crc >> 8);
    w->buf[crc_at + 3] = (uint8_t)crc;
    kp_writer_free(&recs);
}

typedef struct collected {
    int n;
    char values[16][64];
    int lens[16];
    int32_t offsets[16];
} collected;

static bool collect(void *ctx, const kp_batch_info *b, kp_record *rec, int *copies)
{
    collected *c = ctx;
    if (c->n < 16) {
        c->lens[c->n] = rec->value.len;
        c->offsets[c->n] = rec->offset_delta;
        if (rec->value.len > 0)
            memcpy(c->values[c->n], rec->value.ptr, rec->value.len < 63 ? rec->value.len : 63);
        c->n++;
    }
    return false;
}

/* Runs a Fetch through RULE; collects the orders.eu partition-0 records the client sees. */
static int fetch_through(const char *rule, int16_t v, const kp_writer *batch, collected *seen,
                         int *crc_errors, bool *audit_untouched, long long *injected)
{
    kg_chaos *ch = chaos_with(rule);
    learn_ids(ch);
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req, broker, out;
    kp_writer_init(&req, 0);
    kp_writer_init(&broker, 0);
    kp_writer_init(&out, 0);
    encode_fetch(&req, v, true, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    int rc = -2;
    if (kg_chaos_on_request(set, &conn, 1, v, req.buf, req.len, &act) == 0 &&
        act.flags == KG_CHAOS_MUTATE_RESPONSE) {
        encode_fetch_response(&broker, v, (kp_bytes){batch->buf, (int32_t)batch->len});
        rc = kg_chaos_on_response(set, &act, 1, v, broker.buf, broker.len, &out);
        kp_arena a;
        kp_arena_init(&a);
        kp_reader r;
        kp_reader_init(&r, out.buf, out.len);
        kp_fetch_response m;
        if (rc == 1 && kp_fetch_response_decode(&r, &a, v, &m) == 0 && !r.err) {
            for (int32_t i = 0; i < m.responses.count; i++) {
                kp_bytes recs = m.responses.items[i].partitions.items[0].records;
                if (is_orders(v, &m.responses.items[i])) {
                    memset(seen, 0, sizeof(*seen));
                    kp_records_visit(recs.ptr, (size_t)recs.len, collect, seen, &a);
                    *crc_errors = kp_records_crc_errors(recs.ptr, (size_t)recs.len);
                } else {
                    *audit_untouched = recs.len == (int32_t)batch->len &&
                                       memcmp(recs.ptr, batch->buf, batch->len) == 0;
                }
            }
        }
        kp_arena_free(&a);
    }
    *injected = counter(ch, "injected");
    kg_chaos_action_free(&act);
    kp_writer_free(&req);
    kp_writer_free(&broker);
    kp_writer_free(&out);
    kg_chaos_release(set);
    kg_chaos_free(ch);
    return rc;
}

static const char *const batch_values[] = {"\x00\x00\x00\x01\x00payload-a", "plain-b", NULL};
static const int batch_lens[] = {14, 7, -1};

KT_TEST(fetch_records_duplicate_corrupt_schema_id)
{
    kp_writer batch;
    kp_writer_init(&batch, 0);
    build_batch(&batch, batch_values, batch_lens, 3);
    KT_CHECK_EQ_INT(kp_records_crc_errors(batch.buf, batch.len), 0);
    const int16_t versions[] = {4, 12, 13, 17};
    for (size_t k = 0; k < sizeof(versions) / sizeof(versions[0]); k++) {
        int16_t v = versions[k];
        collected seen;
        int crc_errors = -1;
        bool audit_ok = false;
        long long injected = 0;

        KT_CHECK_EQ_INT(fetch_through("{\"type\": \"duplicate-records\", \"topic\": \"orders.*\"}",
                                      v, &batch, &seen, &crc_errors, &audit_ok, &injected),
                        1);
        KT_CHECK_EQ_INT(seen.n, 6);
        KT_CHECK(seen.offsets[0] == 0 && seen.offsets[1] == 0 && seen.offsets[2] == 1);
        KT_CHECK_EQ_INT(crc_errors, 0);
        KT_CHECK(audit_ok);
        KT_CHECK_EQ_INT(injected, 1);

        KT_CHECK_EQ_INT(fetch_through("{\"type\": \"corrupt-records\", \"topic\": \"orders.*\", "
                                      "\"bytes\": 4}",
                                      v, &batch, &seen, &crc_errors, &audit_ok, &injected),
                        1);
        KT_CHECK_EQ_INT(seen.n, 3);
        KT_CHECK_EQ_INT(seen.lens[1], 7 + 4);
        KT_CHECK(memcmp(seen.values[1], "plain-b", 7) == 0);
        KT_CHECK_EQ_INT(seen.lens[2], -1); /* the tombstone stays one */
        KT_CHECK_EQ_INT(crc_errors, 0);
        KT_CHECK(audit_ok);

        KT_CHECK_EQ_INT(fetch_through("{\"type\": \"corrupt-records\", \"topic\": \"orders.*\", "
                                      "\"bytes\": 3, \"how\": \"overwrite\", \"crc\": "
                                      "\"invalid\"}",
                                      v, &batch, &seen, &crc_errors, &audit_ok, &injected),
                        1);
        KT_CHECK_EQ_INT(seen.lens[1], 7);
        KT_CHECK(memcmp(seen.values[1], "plain-b", 7) != 0);
        KT_CHECK_EQ_INT(crc_errors, 1);

        KT_CHECK_EQ_INT(fetch_through("{\"type\": \"invalid-schema-id\", \"schema_id\": 12345}", v,
                                      &batch, &seen, &crc_errors, &audit_ok, &injected),
                        1);
        /* Only the record in the Confluent wire format changes: bytes 1-4 = 12345. */
        KT_CHECK(memcmp(seen.values[0], "\x00\x00\x00\x30\x39payload-a", 14) == 0);
        KT_CHECK_EQ_STR(seen.values[1], "plain-b");
        KT_CHECK_EQ_INT(crc_errors, 0);
        KT_CHECK(!audit_ok); /* no topic scope: audit changed too */
    }
    kp_writer_free(&batch);
}

KT_TEST(produce_records_corrupt_and_duplicate)
{
    kp_writer batch;
    kp_writer_init(&batch, 0);
    build_batch(&batch, batch_values, batch_lens, 3);
    kg_chaos *ch = chaos_with("{\"type\": \"invalid-schema-id\", \"on\": \"produce\", "
                              "\"schema_id\": 7, \"topic\": \"orders.*\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req;
    kp_writer_init(&req, 0);
    kp_bytes recs = {batch.buf, (int32_t)batch.len};
    encode_produce(&req, 9, 1, true, &recs);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_REPLACE_REQUEST);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, act.request.buf, act.request.len);
    kp_produce_request fwd;
    KT_CHECK(kp_produce_request_decode(&r, &a, 9, &fwd) == 0 && !r.err);
    KT_CHECK_EQ_INT(fwd.topic_data.count, 2);
    for (int32_t i = 0; i < fwd.topic_data.count; i++) {
        kp_bytes b = fwd.topic_data.items[i].partition_data.items[0].records;
        collected seen = {0};
        kp_records_visit(b.ptr, (size_t)b.len, collect, &seen, &a);
        KT_CHECK_EQ_INT(seen.n, 3);
        if (kp_str_eq_c(fwd.topic_data.items[i].name, "orders.eu"))
            KT_CHECK(memcmp(seen.values[0], "\x00\x00\x00\x00\x07", 5) == 0);
        else
            KT_CHECK(memcmp(seen.values[0], "\x00\x00\x00\x01\x00", 5) == 0 &&
                     b.len == (int32_t)batch.len && memcmp(b.ptr, batch.buf, batch.len) == 0);
    }
    kp_arena_free(&a);
    kg_chaos_action_free(&act);
    kg_chaos_release(set);
    kg_chaos_free(ch);

    ch = chaos_with("{\"type\": \"duplicate-records\", \"on\": \"produce\", \"topic\": "
                    "\"orders.*\"}");
    set = kg_chaos_acquire(ch);
    kg_chaos_action_init(&act);
    /* partly in scope: not duplicated (the audit partition would be written twice) */
    kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, 0);
    encode_produce(&req, 9, 1, false, &recs);
    kg_chaos_on_request(set, &conn, 0, 9, req.buf, req.len, &act);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_FORWARD_TWICE);
    kg_chaos_action_free(&act);
    kg_chaos_release(set);
    kg_chaos_free(ch);
    kp_writer_free(&req);
    kp_writer_free(&batch);
}

/* ---- robustness: generated random messages, truncated bodies ---- */

/* Random requests of every partition-level API and version: decisions never crash, and every
 * fabricated answer decodes at the request's version. Truncated bodies are refused (-1) or
 * decided on what decodes; patched random responses decode too. */
KT_TEST(random_and_truncated_messages_never_break)
{
    kg_chaos *ch = chaos_with("{\"type\": \"leader-election\"}");
    add_rule(ch, "{\"type\": \"corrupt-records\", \"rate\": 50}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    const int16_t apis[] = {KG_API_PRODUCE, KG_API_FETCH, KG_API_LIST_OFFSETS,
                            KG_API_OFFSET_FOR_LEADER_EPOCH, KG_API_DELETE_RECORDS};
    uint64_t seed = 7;
    int fabricated = 0, patched = 0;
    for (size_t k = 0; k < sizeof(apis) / sizeof(apis[0]); k++) {
        const kp_api_info *info = kp_api_get(apis[k]);
        for (int16_t v = info->min_version; v <= info->max_version; v++) {
            for (int round = 0; round < 4; round++) {
                kp_arena a;
                kp_arena_init(&a);
                void *msg = kp_arena_calloc(&a, 1, info->request->size);
                info->request->random(&a, &seed, v, msg);
                kp_writer w;
                kp_writer_init(&w, 0);
                info->request->encode(&w, v, msg);
                if (w.err) {
                    kp_writer_free(&w);
                    kp_arena_free(&a);
                    continue;
                }
                kg_chaos_action act;
                kg_chaos_action_init(&act);
                int rc = kg_chaos_on_request(set, &conn, apis[k], v, w.buf, w.len, &act);
                KT_CHECK_EQ_INT(rc, 0);
                if (act.flags & (KG_CHAOS_REJECT | KG_CHAOS_LOST_ACK) && act.response.len) {
                    void *resp = kp_arena_calloc(&a, 1, info->response->size);
                    kp_reader r;
                    kp_reader_init(&r, act.response.buf, act.response.len);
                    KT_CHECK(info->response->decode(&r, &a, v, resp) == 0 && !r.err &&
                             kp_reader_remaining(&r) == 0);
                    fabricated++;
                }
                if (act.flags & KG_CHAOS_MUTATE_RESPONSE) {
                    void *resp = kp_arena_calloc(&a, 1, info->response->size);
                    info->response->random(&a, &seed, v, resp);
                    kp_writer broker, out;
                    kp_writer_init(&broker, 0);
                    kp_writer_init(&out, 0);
                    info->response->encode(&broker, v, resp);
                    if (!broker.err) {
                        rc = kg_chaos_on_response(set, &act, apis[k], v, broker.buf, broker.len,
                                                  &out);
                        KT_CHECK(rc >= -1 && rc <= 1);
                        if (rc == 1) {
                            kp_reader r;
                            kp_reader_init(&r, out.buf, out.len);
                            KT_CHECK(info->response->decode(&r, &a, v, resp) == 0 && !r.err);
                            patched++;
                        } else {
                            KT_CHECK_EQ_INT(out.len, 0);
                        }
                        /* a cut-off broker answer is refused, never half-written */
                        kp_writer_reset(&out);
                        rc = kg_chaos_on_response(set, &act, apis[k], v, broker.buf, broker.len / 2,
                                                  &out);
                        KT_CHECK(rc <= 0 || out.len > 0);
                        if (rc <= 0) KT_CHECK_EQ_INT(out.len, 0);
                    }
                    kp_writer_free(&broker);
                    kp_writer_free(&out);
                }
                /* every prefix: refused or decided, never a crash */
                for (size_t cut = 0; cut < w.len; cut += 1 + w.len / 16) {
                    rc = kg_chaos_on_request(set, &conn, apis[k], v, w.buf, cut, &act);
                    KT_CHECK(rc == 0 || rc == -1);
                    if (rc == -1) KT_CHECK_EQ_INT(act.flags, 0);
                }
                kg_chaos_action_free(&act);
                kp_writer_free(&w);
                kp_arena_free(&a);
            }
        }
    }
    KT_CHECK(fabricated > 50);
    KT_CHECK(patched > 0);
    kg_chaos_release(set);
    kg_chaos_free(ch);
}

/* The engine's pattern: keep only the mutation pointer (and the retained set), free the action,
 * patch the response later. Two mutating rules combine in one decision; a pointer from another
 * set is ignored. */
KT_TEST(mutation_belongs_to_the_set_and_combines_rules)
{
    kg_chaos *ch = chaos_with("{\"type\": \"leader-election\", \"topic\": \"orders.*\", "
                              "\"errors\": [\"NOT_LEADER_OR_FOLLOWER\"]}");
    add_rule(ch, "{\"type\": \"invalid-schema-id\", \"schema_id\": 99, \"topic\": \"audit\"}");
    kg_chaos_set *set = kg_chaos_acquire(ch);
    kg_chaos_conn conn = conn_for("payments", "app", 1);
    kp_writer req, broker, out, batch;
    kp_writer_init(&req, 0);
    kp_writer_init(&broker, 0);
    kp_writer_init(&out, 0);
    kp_writer_init(&batch, 0);
    build_batch(&batch, batch_values, batch_lens, 3);
    encode_fetch(&req, 11, true, 0);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    KT_CHECK_EQ_INT(kg_chaos_on_request(set, &conn, 1, 11, req.buf, req.len, &act), 0);
    KT_CHECK_EQ_INT(act.flags, KG_CHAOS_MUTATE_RESPONSE);
    kg_chaos_set *held = kg_chaos_retain(set);
    const void *mutation = act.mutation;
    kg_chaos_action_free(&act);
    kg_chaos_release(set); /* the connection moves on; the in-flight entry keeps HELD */
    add_rule(ch, "{\"type\": \"down\"}");

    encode_fetch_response(&broker, 11, (kp_bytes){batch.buf, (int32_t)batch.len});
    kg_chaos_action later = {.mutation = mutation};
    KT_CHECK_EQ_INT(kg_chaos_on_response(held, &later, 1, 11, broker.buf, broker.len, &out), 1);
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, out.buf, out.len);
    kp_fetch_response m;
    KT_CHECK(kp_fetch_response_decode(&r, &a, 11, &m) == 0 && !r.err && m.responses.count == 2);
    for (int32_t i = 0; i < m.responses.count && !r.err; i++) {
        kp_fetch_response_partition_data *p = &m.responses.items[i].partitions.items[0];
        if (is_orders(11, &m.responses.items[i])) {
            KT_CHECK_EQ_INT(p->error_code, 6);
        } else {
            collected seen = {0};
            kp_records_visit(p->records.ptr, (size_t)p->records.len, collect, &seen, &a);
            KT_CHECK(seen.n == 3 && memcmp(seen.values[0], "\x00\x00\x00\x00\x63", 5) == 0);
        }
    }
    kp_arena_free(&a);
    /* Another set's table does not hold this pointer. */
    kg_chaos_set *other = kg_chaos_acquire(ch);
    kp_writer_reset(&out);
    KT_CHECK_EQ_INT(kg_chaos_on_response(other, &later, 1, 11, broker.buf, broker.len, &out), 0);
    KT_CHECK_EQ_INT(out.len, 0);
    kg_chaos_release(other);
    kg_chaos_release(held);
    kp_writer_free(&req);
    kp_writer_free(&broker);
    kp_writer_free(&out);
    kp_writer_free(&batch);
    kg_chaos_free(ch);
}

KT_MAIN()
