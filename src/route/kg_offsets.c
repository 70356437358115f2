#include "route/kg_offsets.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/kg_config.h"
#include "engine/kg_loop.h"
#include "kp_msgs.h"
#include "proto/kp_records.h"
#include "route/kg_kafka.h"

/* Bounds what kgate remembers of the groups it saw committing: a client inventing group ids
 * must not grow it without end. Groups past it follow no policy (the report does not list
 * them). */
#define SEEN_MAX_GROUPS 10000
#define SEEN_MAX_PARTITIONS 1000 /* per group */
#define FETCH_PARTITION_BYTES (1 << 20)
#define ILLEGAL_GENERATION 22
#define UNKNOWN_MEMBER_ID 25
#define REBALANCE_IN_PROGRESS 27
#define GROUP_ID_NOT_FOUND 69

struct kg_offsets {
    pthread_mutex_t lock;
    json_t *seen; /* {"<cluster index>": {group: {topic: {"<partition>": true}}}} */
    size_t n_groups;
    kg_counter *translated;      /* kgate_offsets_groups_translated_total */
    kg_counter *reset;           /* kgate_offsets_groups_reset_total */
    kg_counter *records_skipped; /* kgate_offsets_checkpoint_records_skipped_total */
};

kg_offsets *kg_offsets_new(kg_metrics *metrics, const char *vcluster)
{
    kg_offsets *o = calloc(1, sizeof(*o));
    if (!o || !(o->seen = json_object())) {
        free(o);
        return NULL;
    }
    pthread_mutex_init(&o->lock, NULL);
    char labels[256];
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vcluster, NULL);
    o->translated = kg_metrics_counter(
        metrics, "kgate_offsets_groups_translated_total",
        "Consumer groups whose MirrorMaker 2 checkpoints kgate committed on the new side at a "
        "switch",
        labels);
    o->reset = kg_metrics_counter(metrics, "kgate_offsets_groups_reset_total",
                                  "Consumer groups without checkpoints whose offsets kgate set to "
                                  "the earliest or latest offset at a switch (offsets.policy)",
                                  labels);
    o->records_skipped = kg_metrics_counter(
        metrics, "kgate_offsets_checkpoint_records_skipped_total",
        "Records of a checkpoint topic that are no MirrorMaker 2 checkpoint (corrupt or foreign)",
        labels);
    return o;
}

void kg_offsets_free(kg_offsets *o)
{
    if (!o) return;
    json_decref(o->seen);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

/* ---------------------------------------------------------------- groups seen committing */

static json_t *object_child(json_t *parent, const char *key, size_t len)
{
    json_t *child = json_object_getn(parent, key, len);
    if (!child && (child = json_object()) && json_object_setn_new(parent, key, len, child) < 0)
        child = NULL;
    return child;
}

static void note_partitions(json_t *group, const kp_offset_commit_request *m)
{
    for (int32_t i = 0; i < m->topics.count; i++) {
        const kp_offset_commit_request_offset_commit_request_topic *t = &m->topics.items[i];
        if (t->name.len <= 0) continue;
        json_t *topic = object_child(group, t->name.ptr, (size_t)t->name.len);
        for (int32_t j = 0; topic && j < t->partitions.count; j++) {
            char key[16];
            snprintf(key, sizeof(key), "%d", t->partitions.items[j].partition_index);
            if (json_object_size(topic) < SEEN_MAX_PARTITIONS)
                json_object_set_new(topic, key, json_true());
        }
    }
}

void kg_offsets_note_commit(kg_offsets *o, int cluster_index, int16_t version, const uint8_t *body,
                            size_t len)
{
    if (!o) return;
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_offset_commit_request m;
    kp_offset_commit_request_init(&m);
    if (kp_offset_commit_request_decode(&r, &a, version, &m) == 0 && !r.err && m.group_id.len > 0) {
        char side[16];
        snprintf(side, sizeof(side), "%d", cluster_index);
        pthread_mutex_lock(&o->lock);
        json_t *groups = object_child(o->seen, side, strlen(side));
        json_t *group =
            groups ? json_object_getn(groups, m.group_id.ptr, (size_t)m.group_id.len) : NULL;
        if (groups && !group && o->n_groups < SEEN_MAX_GROUPS) {
            group = object_child(groups, m.group_id.ptr, (size_t)m.group_id.len);
            o->n_groups += group != NULL;
        }
        if (group) note_partitions(group, &m);
        pthread_mutex_unlock(&o->lock);
    }
    kp_arena_free(&a);
}

/* ---------------------------------------------------------------- one run */

typedef struct run {
    kg_offsets *o;
    const kg_offsets_switch *s;
    kg_kafka k;          /* the target, under the run's deadline */
    json_t *checkpoints; /* {group: {topic: {"<partition>": downstream offset}}} */
    json_int_t records, skipped;
    json_t *positions; /* {topic: {"<partition>": offset}}: the policy's ListOffsets answers */
} run;

/* ---- the checkpoint topic */

int kg_offsets_legal_topic(kp_str s)
{
    if (s.len <= 0 || s.len > 249) return 0;
    for (int32_t i = 0; i < s.len; i++) {
        char ch = s.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

int kg_offsets_read_mapping(kp_reader *k, kp_reader *v, kp_str *topic, int32_t *partition,
                            int64_t *upstream, int64_t *downstream)
{
    *topic = kp_read_string(k);
    *partition = kp_read_i32(k);
    *upstream = kp_read_i64(v);
    *downstream = kp_read_i64(v);
    return k->err || v->err || !kg_offsets_legal_topic(*topic) || *partition < 0 || *upstream < 0 ||
                   *downstream < 0
               ? -1
               : 0;
}

int kg_offsets_checkpoint_decode(kp_bytes key, kp_bytes value, kg_offsets_checkpoint *out)
{
    if (key.len <= 0 || value.len <= 0) return -1;
    kp_reader k, v;
    kp_reader_init(&k, key.ptr, (size_t)key.len);
    kp_reader_init(&v, value.ptr, (size_t)value.len);
    out->group = kp_read_string(&k);
    int16_t version = kp_read_i16(&v);
    if (kg_offsets_read_mapping(&k, &v, &out->topic, &out->partition, &out->upstream,
                                &out->downstream) < 0)
        return -1;
    out->metadata = kp_read_string(&v);
    if (v.err || kp_reader_remaining(&k) || kp_reader_remaining(&v) || version != 0 ||
        out->group.len <= 0)
        return -1;
    return 0;
}

void kg_offsets_checkpoint_encode(const kg_offsets_checkpoint *cp, kp_writer *key, kp_writer *value)
{
    kp_write_string(key, cp->group);
    kp_write_string(key, cp->topic);
    kp_write_i32(key, cp->partition);
    kp_write_i16(value, 0); /* the version */
    kp_write_i64(value, cp->upstream);
    kp_write_i64(value, cp->downstream);
    kp_write_string(value, cp->metadata.len >= 0 ? cp->metadata : kp_str_c(""));
}

/* One checkpoint record into x->checkpoints; 0, or -1 when it is none. A later record of the
 * same (group, topic, partition) replaces an earlier one: the log's order is MM2's. */
static int checkpoint_add(run *x, const kp_record *rec)
{
    kg_offsets_checkpoint cp;
    if (kg_offsets_checkpoint_decode(rec->key, rec->value, &cp) < 0) return -1;
    json_t *g = object_child(x->checkpoints, cp.group.ptr, (size_t)cp.group.len);
    json_t *t = g ? object_child(g, cp.topic.ptr, (size_t)cp.topic.len) : NULL;
    char key[16];
    snprintf(key, sizeof(key), "%d", cp.partition);
    if (t) json_object_set_new(t, key, json_integer((json_int_t)cp.downstream));
    return 0;
}

static bool visit_checkpoint(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    run *x = ctx;
    if (checkpoint_add(x, rec) == 0)
        x->records++;
    else
        x->skipped++;
    return false;
}

/* Every checkpoint of one partition of the checkpoint topic. 0, or -1 with x->k.err. */
static int read_partition(run *x, int32_t leader, const char *topic, int32_t partition)
{
    int64_t start = kg_kafka_list_offset(&x->k, leader, topic, partition, KG_KAFKA_EARLIEST);
    int64_t end =
        start < 0 ? -1 : kg_kafka_list_offset(&x->k, leader, topic, partition, KG_KAFKA_LATEST);
    if (start < 0 || end < 0) return -1;
    return kg_kafka_read(&x->k, leader, topic, partition, &start, end, FETCH_PARTITION_BYTES,
                         visit_checkpoint, x);
}

/* Reads the checkpoint topic into x->checkpoints; what happened goes into REPORT. */
static void read_checkpoints(run *x, json_t *report)
{
    char topic[KG_NAME_MAX + 32];
    snprintf(topic, sizeof(topic), "%s.checkpoints.internal", x->s->from_alias);
    json_object_set_new(report, "checkpoint_topic", json_string(topic));
    const char *names[1] = {topic};
    kg_cluster_topics t = {1, names};
    json_t *leaders = kg_kafka_leaders(&x->k, &t);
    json_t *parts = leaders ? json_object_get(leaders, topic) : NULL;
    if (!leaders) {
        json_object_set_new(report, "checkpoints_error", json_string(x->k.err));
    } else if (!parts) {
        json_object_set_new(report, "checkpoints_error",
                            json_string("the checkpoint topic does not exist on the target"));
    } else {
        const char *key;
        json_t *leader;
        json_object_foreach(parts, key, leader)
        {
            if (read_partition(x, (int32_t)json_integer_value(leader), topic, atoi(key)) < 0) {
                json_object_set_new(report, "checkpoints_error", json_string(x->k.err));
                break;
            }
        }
    }
    json_decref(leaders);
    json_object_set_new(report, "checkpoints", json_integer(x->records));
    json_object_set_new(report, "records_skipped", json_integer(x->skipped));
    if (x->skipped > 0) kg_counter_add(x->o->records_skipped, (uint64_t)x->skipped);
}

/* ---- the group's coordinator, state and committed offsets on the target */

static void encode_find_coordinator(kp_writer *w, int16_t version, void *ctx)
{
    kp_find_coordinator_request m;
    kp_find_coordinator_request_init(&m);
    m.key = kp_str_c(ctx);
    m.key_type = 0; /* a group */
    kp_find_coordinator_request_encode(w, version, &m);
}

/* The coordinator's node id, or -1 with x->k.err. */
int32_t kg_offsets_coordinator(kg_kafka *k, const char *group)
{
    kg_kafka_answer ans;
    kg_cluster_request_spec rq = {KP_KEY_FIND_COORDINATOR, 0, 3, encode_find_coordinator,
                                  (void *)group};
    if (kg_kafka_ask(k, -1, &rq, &ans) < 0) return -1;
    kp_find_coordinator_response m;
    int32_t node = -1;
    int rc = kp_find_coordinator_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    if (kg_kafka_decoded(k, &ans, rc, "FindCoordinator") < 0) {
        node = -1;
    } else if (m.error_code != 0) {
        snprintf(k->err, sizeof(k->err), "%s: FindCoordinator: error %d", k->cluster->cfg->name,
                 m.error_code);
    } else {
        kg_cluster_learn_broker(k->cluster, m.node_id, m.host.ptr, (size_t)m.host.len, m.port);
        node = m.node_id;
    }
    kg_kafka_answer_free(&ans);
    return node;
}

static void encode_describe_groups(kp_writer *w, int16_t version, void *ctx)
{
    kp_describe_groups_request m;
    kp_describe_groups_request_init(&m);
    kp_str group = kp_str_c(ctx);
    m.groups.count = 1;
    m.groups.items = &group;
    kp_describe_groups_request_encode(w, version, &m);
}

/* The group's state on the target into STATE ("Empty", "Stable", ...; "Dead" for none), 0;
 * -1 with x->k.err; -2 when the target has no DescribeGroups (then the commit itself, which a
 * broker refuses for a group with members, is the check). */
static int group_state(run *x, int32_t coordinator, const char *group, char *state, size_t len)
{
    kg_kafka_answer ans;
    kg_cluster_request_spec rq = {KP_KEY_DESCRIBE_GROUPS, 0, 5, encode_describe_groups,
                                  (void *)group};
    int rc = kg_kafka_ask(&x->k, coordinator, &rq, &ans);
    if (rc < 0) return rc;
    kp_describe_groups_response m;
    rc = kp_describe_groups_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    if (kg_kafka_decoded(&x->k, &ans, rc == 0 && m.groups.count == 1 ? 0 : -1, "DescribeGroups") <
        0) {
        rc = -1;
    } else if (m.groups.items[0].error_code == GROUP_ID_NOT_FOUND) {
        snprintf(state, len, "Dead");
        rc = 0;
    } else if (m.groups.items[0].error_code != 0) {
        snprintf(x->k.err, sizeof(x->k.err), "%s: DescribeGroups %s: error %d", x->s->to->cfg->name,
                 group, m.groups.items[0].error_code);
        rc = -1;
    } else {
        kp_str s = m.groups.items[0].group_state;
        snprintf(state, len, "%.*s", s.len > 0 ? (int)s.len : 0, s.len > 0 ? s.ptr : "");
        rc = 0;
    }
    kg_kafka_answer_free(&ans);
    return rc;
}

typedef struct group_offsets {
    const char *group;
    json_t *offsets; /* {topic: {"<partition>": offset}} */
} group_offsets;

/* {topic: {"<partition>": offset}} as arrays, topic by topic, in one arena. */
typedef struct flat_offsets {
    kp_arena arena;
    int n_topics, n_parts;
    const char **topics;
    int32_t *counts; /* partitions of each topic */
    int32_t *partitions;
    int64_t *offsets;
} flat_offsets;

static int flatten(json_t *offsets, flat_offsets *f)
{
    const char *topic, *part;
    json_t *parts, *offset;
    memset(f, 0, sizeof(*f));
    kp_arena_init(&f->arena);
    json_object_foreach(offsets, topic, parts) f->n_parts += (int)json_object_size(parts);
    size_t nt = json_object_size(offsets) + 1, np = (size_t)f->n_parts + 1;
    f->topics = kp_arena_calloc(&f->arena, nt, sizeof(*f->topics));
    f->counts = kp_arena_calloc(&f->arena, nt, sizeof(*f->counts));
    f->partitions = kp_arena_calloc(&f->arena, np, sizeof(*f->partitions));
    f->offsets = kp_arena_calloc(&f->arena, np, sizeof(*f->offsets));
    if (!f->topics || !f->counts || !f->partitions || !f->offsets) return -1;
    int at = 0;
    json_object_foreach(offsets, topic, parts)
    {
        f->topics[f->n_topics] = topic;
        json_object_foreach(parts, part, offset)
        {
            f->partitions[at] = atoi(part);
            f->offsets[at++] = json_integer_value(offset);
            f->counts[f->n_topics]++;
        }
        f->n_topics++;
    }
    return 0;
}

static void encode_offset_fetch(kp_writer *w, int16_t version, void *ctx)
{
    const group_offsets *c = ctx;
    flat_offsets f;
    kp_offset_fetch_request_offset_fetch_request_topic *topics =
        flatten(c->offsets, &f) < 0
            ? NULL
            : kp_arena_calloc(&f.arena, (size_t)f.n_topics + 1, sizeof(*topics));
    for (int t = 0, at = 0; topics && t < f.n_topics; at += f.counts[t++]) {
        topics[t].name = kp_str_c(f.topics[t]);
        topics[t].partition_indexes.count = f.counts[t];
        topics[t].partition_indexes.items = &f.partitions[at];
    }
    kp_offset_fetch_request m;
    kp_offset_fetch_request_init(&m);
    m.group_id = kp_str_c(c->group);
    m.topics.count = f.n_topics;
    m.topics.items = topics;
    if (topics)
        kp_offset_fetch_request_encode(w, version, &m);
    else
        w->err = KP_ERR_NOMEM;
    kp_arena_free(&f.arena);
}

json_t *kg_offsets_committed(kg_kafka *k, int32_t coordinator, const char *group, json_t *wanted)
{
    group_offsets ctx = {group, wanted};
    kg_kafka_answer ans;
    /* up to 7: one group a request */
    kg_cluster_request_spec rq = {KP_KEY_OFFSET_FETCH, 1, 7, encode_offset_fetch, &ctx};
    if (kg_kafka_ask(k, coordinator, &rq, &ans) < 0) return NULL;
    kp_offset_fetch_response m;
    json_t *out = NULL;
    int rc = kp_offset_fetch_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    if (kg_kafka_decoded(k, &ans, rc, "OffsetFetch") < 0) {
        out = NULL;
    } else if (m.error_code != 0) {
        snprintf(k->err, sizeof(k->err), "%s: OffsetFetch %s: error %d", k->cluster->cfg->name,
                 group, m.error_code);
    } else {
        out = json_object();
        for (int32_t i = 0; out && i < m.topics.count; i++) {
            const kp_offset_fetch_response_offset_fetch_response_topic *t = &m.topics.items[i];
            json_t *parts =
                t->name.len > 0 ? object_child(out, t->name.ptr, (size_t)t->name.len) : NULL;
            for (int32_t j = 0; parts && j < t->partitions.count; j++) {
                char key[16];
                snprintf(key, sizeof(key), "%d", t->partitions.items[j].partition_index);
                if (t->partitions.items[j].error_code == 0 &&
                    t->partitions.items[j].committed_offset >= 0)
                    json_object_set_new(parts, key,
                                        json_integer(t->partitions.items[j].committed_offset));
            }
        }
    }
    kg_kafka_answer_free(&ans);
    return out;
}

static void encode_offset_commit(kp_writer *w, int16_t version, void *ctx)
{
    const group_offsets *c = ctx;
    flat_offsets f;
    int ok = flatten(c->offsets, &f) == 0;
    kp_offset_commit_request_offset_commit_request_topic *topics =
        ok ? kp_arena_calloc(&f.arena, (size_t)f.n_topics + 1, sizeof(*topics)) : NULL;
    kp_offset_commit_request_offset_commit_request_partition *items =
        ok ? kp_arena_calloc(&f.arena, (size_t)f.n_parts + 1, sizeof(*items)) : NULL;
    for (int i = 0; topics && items && i < f.n_parts; i++)
        items[i] = (kp_offset_commit_request_offset_commit_request_partition){
            .partition_index = f.partitions[i],
            .committed_offset = f.offsets[i],
            .committed_leader_epoch = -1,
            .commit_timestamp = -1,
            .committed_metadata = kp_str_c("")};
    for (int t = 0, at = 0; topics && items && t < f.n_topics; at += f.counts[t++]) {
        topics[t].name = kp_str_c(f.topics[t]);
        topics[t].partitions.count = f.counts[t];
        topics[t].partitions.items = &items[at];
    }
    kp_offset_commit_request m;
    kp_offset_commit_request_init(&m);
    m.group_id = kp_str_c(c->group);
    m.generation_id_or_member_epoch = -1; /* a commit for an empty group, by no member */
    m.member_id = kp_str_c("");
    m.group_instance_id = KP_STR_NULL;
    m.retention_time_ms = -1;
    m.topics.count = f.n_topics;
    m.topics.items = topics;
    if (topics && items)
        kp_offset_commit_request_encode(w, version, &m);
    else
        w->err = KP_ERR_NOMEM;
    kp_arena_free(&f.arena);
}

/* Commits OFFSETS for GROUP on the target. The number of partitions committed; -1 with x->k.err
 * (the first partition error); -3 when the broker refused because the group has members (a
 * commit by no member is only taken for an empty group). */
static int commit_offsets(run *x, int32_t coordinator, const char *group, json_t *offsets)
{
    group_offsets ctx = {group, offsets};
    kg_kafka_answer ans;
    kg_cluster_request_spec rq = {KP_KEY_OFFSET_COMMIT, 2, 8, encode_offset_commit, &ctx};
    if (kg_kafka_ask(&x->k, coordinator, &rq, &ans) < 0) return -1;
    kp_offset_commit_response m;
    int done = 0, refused = 0;
    int rc = kp_offset_commit_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    int failed = kg_kafka_decoded(&x->k, &ans, rc, "OffsetCommit") < 0;
    for (int32_t i = 0; !failed && i < m.topics.count; i++)
        for (int32_t j = 0; j < m.topics.items[i].partitions.count; j++) {
            int16_t code = m.topics.items[i].partitions.items[j].error_code;
            if (code == 0) {
                done++;
            } else if (!failed++) {
                kp_str t = m.topics.items[i].name;
                refused = code == ILLEGAL_GENERATION || code == UNKNOWN_MEMBER_ID ||
                          code == REBALANCE_IN_PROGRESS;
                snprintf(x->k.err, sizeof(x->k.err), "%s: OffsetCommit %s %.*s[%d]: error %d",
                         x->s->to->cfg->name, group, (int)(t.len > 0 ? t.len : 0),
                         t.len > 0 ? t.ptr : "",
                         m.topics.items[i].partitions.items[j].partition_index, code);
            }
        }
    kg_kafka_answer_free(&ans);
    return failed ? (refused ? -3 : -1) : done;
}

/* ---- one group */

static json_t *group_entry(const char *group, const char *result)
{
    return json_pack("{s:s, s:s}", "group", group, "result", result);
}

static json_t *group_failed(run *x, const char *group)
{
    json_t *e = group_entry(group, "failed");
    json_object_set_new(e, "error", json_string(x->k.err));
    return e;
}

/* Is any offset the target has for the group past the one kgate would commit (ANY: is there
 * any at all)? Offsets the target has already (equal) are dropped from WANTED: nothing to do
 * for them. */
static int newer_commit(json_t *committed, json_t *wanted, int any)
{
    const char *topic, *part;
    json_t *parts, *offset;
    void *tmp_t, *tmp_p;
    int newer = 0;
    json_object_foreach_safe(wanted, tmp_t, topic, parts)
    {
        json_t *have = json_object_get(committed, topic);
        json_object_foreach_safe(parts, tmp_p, part, offset)
        {
            json_t *c = have ? json_object_get(have, part) : NULL;
            if (!c) continue;
            if (any || json_integer_value(c) > json_integer_value(offset))
                newer = 1;
            else if (json_integer_value(c) == json_integer_value(offset))
                json_object_del(parts, part);
        }
        if (json_object_size(parts) == 0) json_object_del(wanted, topic);
    }
    return newer;
}

static int count_partitions(json_t *offsets)
{
    const char *topic;
    json_t *parts;
    int n = 0;
    json_object_foreach(offsets, topic, parts) n += (int)json_object_size(parts);
    return n;
}

/* Commits WANTED (consumed) for GROUP when the target group is empty and has nothing newer;
 * RESULT names what it is ("translated", "reset earliest", ...). A reset (POLICY) never
 * replaces a commit the target has: that is the group's own position there. The report entry. */
static json_t *group_apply(run *x, const char *group, json_t *wanted, const char *result,
                           int policy)
{
    char state[64] = "";
    int32_t coordinator = kg_offsets_coordinator(&x->k, group);
    int described = coordinator < 0 ? -1 : group_state(x, coordinator, group, state, sizeof(state));
    if (described == -1) return group_failed(x, group);
    if (described == 0 && strcmp(state, "Empty") != 0 && strcmp(state, "Dead") != 0) {
        json_t *e = group_entry(group, "skipped: not empty");
        json_object_set_new(e, "state", json_string(state));
        return e;
    }
    json_t *committed = kg_offsets_committed(&x->k, coordinator, group, wanted);
    if (!committed) return group_failed(x, group);
    int newer = newer_commit(committed, wanted, policy);
    json_decref(committed);
    if (newer) return group_entry(group, "skipped: newer commit");
    int n = count_partitions(wanted) > 0 ? commit_offsets(x, coordinator, group, wanted) : 0;
    if (n == -3) {
        json_t *e = group_entry(group, "skipped: not empty");
        json_object_set_new(e, "state", json_string(x->k.err));
        return e;
    }
    if (n < 0) return group_failed(x, group);
    json_t *e = group_entry(group, result);
    json_object_set_new(e, "partitions", json_integer(n));
    return e;
}

/* The policy's offsets for the partitions the group was seen committing ({topic: {partition:
 * true}}), from the target's log; NULL with x->k.err. */
static json_t *policy_offsets(run *x, json_t *seen)
{
    const char *topic, *part;
    json_t *parts, *unused;
    int n = 0;
    json_object_foreach(seen, topic, parts) n++;
    const char **names = calloc((size_t)n + 1, sizeof(*names));
    if (!names) return NULL;
    n = 0;
    json_object_foreach(seen, topic, parts) names[n++] = topic;
    kg_cluster_topics t = {n, names};
    json_t *leaders = kg_kafka_leaders(&x->k, &t);
    free(names);
    if (!leaders) return NULL;
    int64_t ts = x->s->policy == KG_OFFSETS_EARLIEST ? KG_KAFKA_EARLIEST : KG_KAFKA_LATEST;
    json_t *out = json_object();
    json_object_foreach(seen, topic, parts)
    {
        json_t *cache = object_child(x->positions, topic, strlen(topic));
        json_object_foreach(parts, part, unused)
        {
            json_t *known = json_object_get(cache, part);
            json_t *leader = json_object_get(json_object_get(leaders, topic), part);
            int64_t offset = known ? json_integer_value(known) : -1;
            if (!known && leader)
                offset = kg_kafka_list_offset(&x->k, (int32_t)json_integer_value(leader), topic,
                                              atoi(part), ts);
            if (offset < 0) continue; /* not on the target: parity's to report */
            json_object_set_new(cache, part, json_integer(offset));
            json_object_set_new(object_child(out, topic, strlen(topic)), part,
                                json_integer(offset));
        }
    }
    json_decref(leaders);
    return out;
}

static json_t *group_policy(run *x, const char *group, json_t *seen)
{
    if (x->s->policy == KG_OFFSETS_LEAVE) return group_entry(group, "left");
    json_t *wanted = policy_offsets(x, seen);
    if (!wanted) return group_failed(x, group);
    json_t *e =
        group_apply(x, group, wanted,
                    x->s->policy == KG_OFFSETS_EARLIEST ? "reset earliest" : "reset latest", 1);
    json_decref(wanted);
    return e;
}

/* ---- the run */

static const char *policy_name(int policy)
{
    return policy == KG_OFFSETS_EARLIEST ? "earliest"
           : policy == KG_OFFSETS_LATEST ? "latest"
                                         : "leave";
}

json_t *kg_offsets_seen(kg_offsets *o, int index)
{
    char side[16];
    snprintf(side, sizeof(side), "%d", index);
    pthread_mutex_lock(&o->lock);
    json_t *copy = json_deep_copy(json_object_get(o->seen, side));
    pthread_mutex_unlock(&o->lock);
    return copy ? copy : json_object();
}

static void count_result(run *x, json_t *entry)
{
    const char *result = json_string_value(json_object_get(entry, "result"));
    if (strcmp(result, "translated") == 0)
        kg_counter_inc(x->o->translated);
    else if (strncmp(result, "reset ", 6) == 0)
        kg_counter_inc(x->o->reset);
}

json_t *kg_offsets_run(kg_offsets *o, const kg_offsets_switch *s)
{
    uint64_t start = kg_now_us();
    run x = {.o = o,
             .s = s,
             .k = {.cluster = s->to, .deadline_us = start + (uint64_t)s->timeout_ms * 1000u},
             .checkpoints = json_object(),
             .positions = json_object()};
    json_t *report = json_pack("{s:s}", "policy", policy_name(s->policy));
    json_t *groups = json_array();
    if (s->checkpoints) read_checkpoints(&x, report);
    json_t *seen = kg_offsets_seen(o, s->from->index);
    const char *group;
    json_t *wanted;
    json_object_foreach(x.checkpoints, group, wanted)
    {
        json_t *e = group_apply(&x, group, wanted, "translated", 0);
        count_result(&x, e);
        json_array_append_new(groups, e);
        json_object_del(seen, group); /* its checkpoints decide, not the policy */
    }
    json_t *parts;
    json_object_foreach(seen, group, parts)
    {
        json_t *e = group_policy(&x, group, parts);
        count_result(&x, e);
        json_array_append_new(groups, e);
    }
    if (kg_now_us() >= x.k.deadline_us)
        json_object_set_new(report, "error",
                            json_sprintf("not finished within offsets.timeout_ms (%d ms): %s",
                                         s->timeout_ms, x.k.err));
    json_object_set_new(report, "groups", groups);
    /* Integers only: the report goes into the audit entry. */
    json_object_set_new(report, "duration_us", json_integer((json_int_t)(kg_now_us() - start)));
    json_decref(seen);
    json_decref(x.checkpoints);
    json_decref(x.positions);
    return report;
}
