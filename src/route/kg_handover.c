/* kg_handover — the answers kgate gives in the old side's place at a switch (kg_handover.h). */
#include "route/kg_handover.h"

#include <string.h>

#include "chaos/kg_chaos.h"
#include "kp_msgs.h"

enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_LIST_OFFSETS = 2,
    API_OFFSET_COMMIT = 8,
    API_OFFSET_FETCH = 9,
    API_FIND_COORDINATOR = 10,
    API_JOIN_GROUP = 11,
    API_HEARTBEAT = 12,
    API_LEAVE_GROUP = 13,
    API_SYNC_GROUP = 14,
    API_DELETE_RECORDS = 21,
    API_OFFSET_FOR_LEADER_EPOCH = 23,
    API_TXN_OFFSET_COMMIT = 28,
};

/* Produce's error message (v8+): what a client logs with the retriable error. */
static const char handover_message[] = "kgate: the virtual cluster switched; retry on the new side";
static const uint8_t no_bytes[1];

static int partition_level(int16_t api_key)
{
    return api_key == API_PRODUCE || api_key == API_FETCH || api_key == API_LIST_OFFSETS ||
           api_key == API_DELETE_RECORDS || api_key == API_OFFSET_FOR_LEADER_EPOCH;
}

static int group_level(int16_t api_key)
{
    return api_key == API_JOIN_GROUP || api_key == API_SYNC_GROUP || api_key == API_HEARTBEAT ||
           api_key == API_LEAVE_GROUP || api_key == API_OFFSET_COMMIT ||
           api_key == API_OFFSET_FETCH || api_key == API_TXN_OFFSET_COMMIT ||
           api_key == API_FIND_COORDINATOR;
}

int kg_handover_answerable(int16_t api_key)
{
    return partition_level(api_key) || group_level(api_key);
}

#define ALLOC_ITEMS(arr, n, a)                                                                     \
    ((arr).count = (n) > 0 ? (n) : 0,                                                              \
     (arr).items = (n) > 0 ? kp_arena_calloc((a), (size_t)(n), sizeof(*(arr).items)) : NULL,       \
     (n) <= 0 || (arr).items != NULL)

/* Every answer: the request of PREFIX decoded into `rq` (when DECODE), the response `m`
 * initialised, FILL (an int expression, 0 on success) puts the errors in, encoded at V. */
#define ANSWER(prefix, decode, r, a, v, out, fill)                                                 \
    do {                                                                                           \
        kp_##prefix##_request rq;                                                                  \
        memset(&rq, 0, sizeof(rq));                                                                \
        if ((decode) && kp_##prefix##_request_decode((r), (a), (v), &rq) != 0) return -1;          \
        kp_##prefix##_response m;                                                                  \
        kp_##prefix##_response_init(&m);                                                           \
        if ((fill) != 0) return -1;                                                                \
        kp_##prefix##_response_encode((out), (v), &m);                                             \
        return 0;                                                                                  \
    } while (0)

/* ---------------------------------------------------------------- top-level errors */

/* JoinGroup, SyncGroup, Heartbeat, LeaveGroup: the error is top level in every version (LeaveGroup
 * v3+ leaves its members list empty: the top-level error says it all). */
static int fill_join_group(kp_join_group_response *m, int16_t v, int16_t err)
{
    m->error_code = err;
    m->protocol_type = KP_STR_NULL;
    m->protocol_name = v >= 7 ? KP_STR_NULL : kp_str_c("");
    return 0;
}

static int fill_sync_group(kp_sync_group_response *m, int16_t err)
{
    m->error_code = err;
    m->protocol_type = m->protocol_name = KP_STR_NULL;
    m->assignment = (kp_bytes){no_bytes, 0};
    return 0;
}

static int answer_membership(int16_t api_key, int16_t v, int16_t err, kp_writer *out)
{
    switch (api_key) {
    case API_JOIN_GROUP:
        ANSWER(join_group, 0, NULL, NULL, v, out, fill_join_group(&m, v, err));
    case API_SYNC_GROUP:
        ANSWER(sync_group, 0, NULL, NULL, v, out, fill_sync_group(&m, err));
    case API_HEARTBEAT:
        ANSWER(heartbeat, 0, NULL, NULL, v, out, (m.error_code = err, 0));
    default:
        ANSWER(leave_group, 0, NULL, NULL, v, out, (m.error_code = err, 0));
    }
}

/* FindCoordinator: COORDINATOR_NOT_AVAILABLE, top level (v0-3; an encoder refuses those fields
 * set in later versions) or for every key asked (v4+). */
static int fill_find_coordinator(const kp_find_coordinator_request *rq, kp_arena *a, int16_t v,
                                 int16_t err, kp_find_coordinator_response *m)
{
    m->error_message = KP_STR_NULL;
    if (v < 4) {
        m->error_code = err;
        m->node_id = m->port = -1;
        return 0;
    }
    if (!ALLOC_ITEMS(m->coordinators, rq->coordinator_keys.count, a)) return -1;
    for (int32_t i = 0; i < m->coordinators.count; i++) {
        kp_find_coordinator_response_coordinator *c = &m->coordinators.items[i];
        c->key = rq->coordinator_keys.items[i];
        c->node_id = c->port = -1;
        c->error_code = err;
        c->error_message = KP_STR_NULL;
    }
    return 0;
}

/* ---------------------------------------------------------------- per-partition errors */

/* OffsetCommit and TxnOffsetCommit carry their errors per partition only; their requests and
 * responses have the same shape. */
#define FILL_COMMIT(rq, a, m, err)                                                                 \
    do {                                                                                           \
        if (!ALLOC_ITEMS((m)->topics, (rq)->topics.count, (a))) return -1;                         \
        for (int32_t i = 0; i < (m)->topics.count; i++) {                                          \
            (m)->topics.items[i].name = (rq)->topics.items[i].name;                                \
            int32_t n = (rq)->topics.items[i].partitions.count;                                    \
            if (!ALLOC_ITEMS((m)->topics.items[i].partitions, n, (a))) return -1;                  \
            for (int32_t j = 0; j < n; j++) {                                                      \
                (m)->topics.items[i].partitions.items[j].partition_index =                         \
                    (rq)->topics.items[i].partitions.items[j].partition_index;                     \
                (m)->topics.items[i].partitions.items[j].error_code = (err);                       \
            }                                                                                      \
        }                                                                                          \
        return 0;                                                                                  \
    } while (0)

static int fill_offset_commit(const kp_offset_commit_request *rq, kp_arena *a, int16_t err,
                              kp_offset_commit_response *m)
{
    FILL_COMMIT(rq, a, m, err);
}

static int fill_txn_offset_commit(const kp_txn_offset_commit_request *rq, kp_arena *a, int16_t err,
                                  kp_txn_offset_commit_response *m)
{
    FILL_COMMIT(rq, a, m, err);
}

/* OffsetFetch: per partition (v0-1 only there) and top level (v2-7), or per group (v8+). */
static int fill_offset_fetch(const kp_offset_fetch_request *rq, kp_arena *a, int16_t v, int16_t err,
                             kp_offset_fetch_response *m)
{
    if (v >= 8) {
        if (!ALLOC_ITEMS(m->groups, rq->groups.count, a)) return -1;
        for (int32_t i = 0; i < m->groups.count; i++) {
            m->groups.items[i].group_id = rq->groups.items[i].group_id;
            m->groups.items[i].error_code = err;
        }
        return 0;
    }
    m->error_code = err;
    if (!ALLOC_ITEMS(m->topics, rq->topics.count, a)) return -1;
    for (int32_t i = 0; i < m->topics.count; i++) {
        const kp_offset_fetch_request_offset_fetch_request_topic *t = &rq->topics.items[i];
        kp_offset_fetch_response_offset_fetch_response_topic *o = &m->topics.items[i];
        o->name = t->name;
        if (!ALLOC_ITEMS(o->partitions, t->partition_indexes.count, a)) return -1;
        for (int32_t j = 0; j < o->partitions.count; j++) {
            kp_offset_fetch_response_offset_fetch_response_partition *p = &o->partitions.items[j];
            p->partition_index = t->partition_indexes.items[j];
            p->committed_offset = -1;
            p->committed_leader_epoch = -1;
            p->metadata = KP_STR_NULL;
            p->error_code = err;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- entry point */

static int answer_decoded(int16_t api_key, kp_reader *r, kp_arena *a, int16_t v, int16_t err,
                          kp_writer *out)
{
    if (!err)
        err = api_key == API_FIND_COORDINATOR ? KG_KAFKA_COORDINATOR_NOT_AVAILABLE
                                              : KG_KAFKA_NOT_COORDINATOR;
    switch (api_key) {
    case API_OFFSET_COMMIT:
        ANSWER(offset_commit, 1, r, a, v, out, fill_offset_commit(&rq, a, err, &m));
    case API_TXN_OFFSET_COMMIT:
        ANSWER(txn_offset_commit, 1, r, a, v, out, fill_txn_offset_commit(&rq, a, err, &m));
    case API_OFFSET_FETCH:
        ANSWER(offset_fetch, 1, r, a, v, out, fill_offset_fetch(&rq, a, v, err, &m));
    case API_FIND_COORDINATOR:
        ANSWER(find_coordinator, 1, r, a, v, out, fill_find_coordinator(&rq, a, v, err, &m));
    default:
        return answer_membership(api_key, v, err, out);
    }
}

static int answer_group(int16_t api_key, int16_t v, const uint8_t *body, size_t len, int16_t err,
                        kp_writer *out)
{
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    int rc = answer_decoded(api_key, &r, &a, v, err, out);
    kp_arena_free(&a);
    return rc != 0 || r.err || out->err ? -1 : 0;
}

int kg_handover_answer_with(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                            int16_t error, kp_writer *out)
{
    if (!kp_api_supported(api_key, api_version)) return -1;
    if (partition_level(api_key))
        return kg_chaos_fabricate(api_key, api_version, body, len,
                                  error ? error : KG_KAFKA_NOT_LEADER_OR_FOLLOWER, handover_message,
                                  out);
    if (!group_level(api_key)) return -1;
    kp_writer_reset(out);
    return answer_group(api_key, api_version, body, len, error, out);
}

int kg_handover_answer(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                       kp_writer *out)
{
    return kg_handover_answer_with(api_key, api_version, body, len, 0, out);
}
