/* kgate's answers in the old side's place at a switch (kg_handover): every version of every API
 * it answers decodes as a response of that version, names what the request named, and carries
 * the retriable error clients act on (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR,
 * COORDINATOR_NOT_AVAILABLE). */
#include "kt.h"

#include <stdint.h>

#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "route/kg_handover.h"

/* Kafka's API keys */
enum { API_PRODUCE = 0, API_FETCH = 1, API_METADATA = 3, API_OFFSET_COMMIT = 8 };
enum { API_OFFSET_FETCH = 9, API_FIND_COORDINATOR = 10, API_JOIN_GROUP = 11, API_HEARTBEAT = 12 };
enum { API_LEAVE_GROUP = 13, API_SYNC_GROUP = 14, API_TXN_OFFSET_COMMIT = 28 };

static const uint8_t some_records[3] = {1, 2, 3};

static int16_t min_v(int16_t api)
{
    return kp_api_get(api)->min_version;
}

static int16_t max_v(int16_t api)
{
    return kp_api_get(api)->max_version;
}

/* The answer to the request in REQ, decoded back with R over ANSWER (freed by the caller). */
static int answer_of(int16_t api, int16_t v, const kp_writer *req, kp_writer *answer, kp_reader *r)
{
    kp_writer_init(answer, 64);
    int rc = kg_handover_answer(api, v, req->buf, req->len, answer);
    kp_reader_init(r, answer->buf, answer->len);
    return rc;
}

/* Encodes RQ (a PREFIX request) at V, has kgate answer it, and decodes the answer into M (a
 * PREFIX response, in arena A): the answer must decode to its last byte. */
#define ROUND_TRIP(prefix, api, v, rq, m, a)                                                       \
    kp_writer req_, answer_;                                                                       \
    kp_reader r_;                                                                                  \
    kp_arena a;                                                                                    \
    kp_##prefix##_response m;                                                                      \
    kp_writer_init(&req_, 64);                                                                     \
    kp_##prefix##_request_encode(&req_, (v), &(rq));                                               \
    KT_CHECK_EQ_INT(answer_of((api), (v), &req_, &answer_, &r_), 0);                               \
    kp_arena_init(&a);                                                                             \
    KT_CHECK_EQ_INT(kp_##prefix##_response_decode(&r_, &a, (v), &m), 0);                           \
    KT_CHECK_EQ_INT((int)kp_reader_remaining(&r_), 0)
#define ROUND_TRIP_END(a)                                                                          \
    kp_arena_free(&a);                                                                             \
    kp_writer_free(&req_);                                                                         \
    kp_writer_free(&answer_)

KT_TEST(produce_every_version_names_each_partition_not_leader)
{
    kp_produce_request_partition_produce_data a_parts[2] = {{.index = 0}, {.index = 3}};
    kp_produce_request_partition_produce_data b_parts[1] = {{.index = 1}};
    for (int i = 0; i < 2; i++)
        a_parts[i].records = (kp_bytes){some_records, 3};
    b_parts[0].records = (kp_bytes){some_records, 3};
    kp_produce_request_topic_produce_data topics[2] = {
        {.name = kp_str_c("orders"), .partition_data = {2, a_parts}},
        {.name = kp_str_c("audit"), .partition_data = {1, b_parts}},
    };
    for (int16_t v = min_v(API_PRODUCE); v <= max_v(API_PRODUCE); v++) {
        kp_produce_request rq;
        kp_produce_request_init(&rq);
        rq.acks = -1;
        rq.timeout_ms = 1000;
        rq.topic_data.count = 2;
        rq.topic_data.items = topics;
        ROUND_TRIP(produce, API_PRODUCE, v, rq, m, a);
        KT_CHECK_EQ_INT(m.responses.count, 2);
        if (m.responses.count == 2) {
            KT_CHECK(kp_str_eq_c(m.responses.items[0].name, "orders"));
            KT_CHECK(kp_str_eq_c(m.responses.items[1].name, "audit"));
            KT_CHECK_EQ_INT(m.responses.items[0].partition_responses.count, 2);
            KT_CHECK_EQ_INT(m.responses.items[1].partition_responses.count, 1);
            if (m.responses.items[0].partition_responses.count == 2) {
                kp_produce_response_partition_produce_response *p =
                    m.responses.items[0].partition_responses.items;
                KT_CHECK_EQ_INT(p[1].index, 3);
                KT_CHECK_EQ_INT(p[0].error_code, KG_KAFKA_NOT_LEADER_OR_FOLLOWER);
                KT_CHECK_EQ_INT(p[1].error_code, KG_KAFKA_NOT_LEADER_OR_FOLLOWER);
                KT_CHECK_EQ_INT((int)p[0].base_offset, -1);
                if (v >= 8) KT_CHECK(p[0].error_message.len > 0);
            }
        }
        ROUND_TRIP_END(a);
    }
}

KT_TEST(fetch_every_version_names_each_partition_not_leader)
{
    /* fields a version lacks keep their defaults, or the encoder refuses them */
    kp_fetch_request_fetch_partition parts[2];
    for (int i = 0; i < 2; i++) {
        memset(&parts[i], 0, sizeof(parts[i]));
        parts[i].partition = 2 + 3 * i;
        parts[i].current_leader_epoch = parts[i].last_fetched_epoch = -1;
        parts[i].log_start_offset = -1;
    }
    kp_uuid id;
    for (int i = 0; i < 16; i++)
        id.b[i] = (uint8_t)(i + 1);
    for (int16_t v = min_v(API_FETCH); v <= max_v(API_FETCH); v++) {
        kp_fetch_request_fetch_topic topic = {.topic = kp_str_c("orders"),
                                              .partitions = {2, parts}};
        if (v >= 13) topic.topic_id = id;
        kp_fetch_request rq;
        kp_fetch_request_init(&rq);
        rq.topics.count = 1;
        rq.topics.items = &topic;
        ROUND_TRIP(fetch, API_FETCH, v, rq, m, a);
        KT_CHECK_EQ_INT(m.error_code, 0);
        KT_CHECK_EQ_INT(m.responses.count, 1);
        if (m.responses.count == 1) {
            kp_fetch_response_fetchable_topic_response *t = &m.responses.items[0];
            if (v >= 13)
                KT_CHECK_EQ_MEM(t->topic_id.b, id.b, 16);
            else
                KT_CHECK(kp_str_eq_c(t->topic, "orders"));
            KT_CHECK_EQ_INT(t->partitions.count, 2);
            if (t->partitions.count == 2) {
                KT_CHECK_EQ_INT(t->partitions.items[1].partition_index, 5);
                KT_CHECK_EQ_INT(t->partitions.items[0].error_code, KG_KAFKA_NOT_LEADER_OR_FOLLOWER);
                KT_CHECK_EQ_INT(t->partitions.items[1].error_code, KG_KAFKA_NOT_LEADER_OR_FOLLOWER);
                KT_CHECK_EQ_INT(t->partitions.items[0].records.len, 0);
            }
        }
        ROUND_TRIP_END(a);
    }
}

/* JoinGroup, SyncGroup, Heartbeat, LeaveGroup: a top-level NOT_COORDINATOR. */
#define MEMBERSHIP_CASE(prefix, api)                                                               \
    for (int16_t v = min_v(api); v <= max_v(api); v++) {                                           \
        kp_##prefix##_request rq;                                                                  \
        kp_##prefix##_request_init(&rq);                                                           \
        rq.group_id = kp_str_c("payments");                                                        \
        ROUND_TRIP(prefix, api, v, rq, m, a);                                                      \
        KT_CHECK_EQ_INT(m.error_code, KG_KAFKA_NOT_COORDINATOR);                                   \
        ROUND_TRIP_END(a);                                                                         \
    }

KT_TEST(membership_every_version_not_coordinator)
{
    MEMBERSHIP_CASE(join_group, API_JOIN_GROUP);
    MEMBERSHIP_CASE(sync_group, API_SYNC_GROUP);
    MEMBERSHIP_CASE(heartbeat, API_HEARTBEAT);
    MEMBERSHIP_CASE(leave_group, API_LEAVE_GROUP);
}

/* OffsetCommit and TxnOffsetCommit: the request's partitions, each NOT_COORDINATOR. PART is a
 * partition of the request with index 7 and the defaults of its version-dependent fields. */
#define COMMIT_CASE(prefix, api, part, fill_request)                                               \
    for (int16_t v = min_v(api); v <= max_v(api); v++) {                                           \
        kp_##prefix##_request_##prefix##_request_topic topic = {.name = kp_str_c("orders"),        \
                                                                .partitions = {1, &(part)}};       \
        kp_##prefix##_request rq;                                                                  \
        kp_##prefix##_request_init(&rq);                                                           \
        fill_request;                                                                              \
        rq.topics.count = 1;                                                                       \
        rq.topics.items = &topic;                                                                  \
        ROUND_TRIP(prefix, api, v, rq, m, a);                                                      \
        KT_CHECK(m.topics.count == 1 && kp_str_eq_c(m.topics.items[0].name, "orders") &&           \
                 m.topics.items[0].partitions.count == 1 &&                                        \
                 m.topics.items[0].partitions.items[0].partition_index == 7 &&                     \
                 m.topics.items[0].partitions.items[0].error_code == KG_KAFKA_NOT_COORDINATOR);    \
        ROUND_TRIP_END(a);                                                                         \
    }

KT_TEST(commits_every_version_not_coordinator_per_partition)
{
    kp_offset_commit_request_offset_commit_request_partition part = {
        .partition_index = 7, .committed_leader_epoch = -1, .commit_timestamp = -1};
    COMMIT_CASE(offset_commit, API_OFFSET_COMMIT, part, rq.group_id = kp_str_c("payments"));
    kp_txn_offset_commit_request_txn_offset_commit_request_partition txn_part = {
        .partition_index = 7, .committed_leader_epoch = -1};
    COMMIT_CASE(txn_offset_commit, API_TXN_OFFSET_COMMIT, txn_part,
                (rq.group_id = kp_str_c("payments"), rq.transactional_id = kp_str_c("tx")));
}

/* OffsetFetch keeps its errors per partition (v0-1), top level (v2-7), per group (v8+). */
KT_TEST(offset_fetch_every_version_not_coordinator_where_the_version_says)
{
    int32_t indexes[2] = {0, 9};
    kp_offset_fetch_request_offset_fetch_request_topic topic = {.name = kp_str_c("orders"),
                                                                .partition_indexes = {2, indexes}};
    kp_offset_fetch_request_offset_fetch_request_topics topics8 = {
        .name = kp_str_c("orders"), .partition_indexes = {2, indexes}};
    kp_offset_fetch_request_offset_fetch_request_group group = {.group_id = kp_str_c("payments"),
                                                                .member_id = KP_STR_NULL,
                                                                .member_epoch = -1,
                                                                .topics = {1, &topics8}};
    for (int16_t v = min_v(API_OFFSET_FETCH); v <= max_v(API_OFFSET_FETCH); v++) {
        kp_offset_fetch_request rq;
        kp_offset_fetch_request_init(&rq);
        if (v >= 8) {
            rq.groups.count = 1;
            rq.groups.items = &group;
        } else {
            rq.group_id = kp_str_c("payments");
            rq.topics.count = 1;
            rq.topics.items = &topic;
        }
        ROUND_TRIP(offset_fetch, API_OFFSET_FETCH, v, rq, m, a);
        if (v >= 8) {
            KT_CHECK(m.groups.count == 1 && kp_str_eq_c(m.groups.items[0].group_id, "payments") &&
                     m.groups.items[0].error_code == KG_KAFKA_NOT_COORDINATOR);
        } else {
            if (v >= 2) KT_CHECK_EQ_INT(m.error_code, KG_KAFKA_NOT_COORDINATOR);
            KT_CHECK(m.topics.count == 1 && m.topics.items[0].partitions.count == 2 &&
                     m.topics.items[0].partitions.items[1].partition_index == 9 &&
                     m.topics.items[0].partitions.items[1].error_code == KG_KAFKA_NOT_COORDINATOR &&
                     m.topics.items[0].partitions.items[1].committed_offset == -1);
        }
        ROUND_TRIP_END(a);
    }
}

KT_TEST(find_coordinator_every_version_not_available)
{
    kp_str keys[2] = {kp_str_c("payments"), kp_str_c("audit")};
    for (int16_t v = min_v(API_FIND_COORDINATOR); v <= max_v(API_FIND_COORDINATOR); v++) {
        kp_find_coordinator_request rq;
        kp_find_coordinator_request_init(&rq);
        if (v >= 4) {
            rq.coordinator_keys.count = 2;
            rq.coordinator_keys.items = keys;
        } else {
            rq.key = keys[0];
        }
        ROUND_TRIP(find_coordinator, API_FIND_COORDINATOR, v, rq, m, a);
        if (v >= 4)
            KT_CHECK(m.coordinators.count == 2 &&
                     kp_str_eq_c(m.coordinators.items[1].key, "audit") &&
                     m.coordinators.items[1].error_code == KG_KAFKA_COORDINATOR_NOT_AVAILABLE &&
                     m.coordinators.items[1].node_id == -1);
        else
            KT_CHECK(m.error_code == KG_KAFKA_COORDINATOR_NOT_AVAILABLE && m.node_id == -1);
        ROUND_TRIP_END(a);
    }
}

KT_TEST(other_apis_and_bad_bodies_get_no_answer)
{
    kp_writer w;
    kp_writer_init(&w, 16);
    static const uint8_t junk[3] = {0xff, 0xff, 0xff};
    KT_CHECK(!kg_handover_answerable(API_METADATA));
    KT_CHECK_EQ_INT(kg_handover_answer(API_METADATA, 9, junk, 0, &w), -1);
    KT_CHECK_EQ_INT(kg_handover_answer(API_PRODUCE, 9, junk, sizeof(junk), &w), -1);
    KT_CHECK_EQ_INT(kg_handover_answer(API_OFFSET_COMMIT, 8, junk, sizeof(junk), &w), -1);
    KT_CHECK_EQ_INT(kg_handover_answer(API_HEARTBEAT, 999, junk, 0, &w), -1);
    kp_writer_free(&w);
}

KT_MAIN()
