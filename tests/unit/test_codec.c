/* Generated codecs: every message at every version survives random -> encode -> decode ->
 * encode byte-identically, truncations fail cleanly, and hand-built byte vectors derived from
 * the protocol specification decode to the expected values and re-encode to the same bytes. */
#include "kt.h"

#include <stdint.h>

#include "kp_msgs.h"
#include "proto/kp_frame.h"
#include "proto/kp_prim.h"

#define ROUNDTRIPS_PER_VERSION 12
#define SEED 0x6b67617465ULL /* fixed: failures are reproducible */

typedef struct roundtrip_stats {
    long runs, bytes, truncations;
} roundtrip_stats;

/* One random instance of codec at version: returns 0 when every property held. */
static int roundtrip_once(const kp_msg_codec *c, int16_t v, uint64_t *rng, kp_arena *a,
                          kp_writer *w1, kp_writer *w2, roundtrip_stats *st)
{
    kp_arena_reset(a);
    kp_writer_reset(w1);
    kp_writer_reset(w2);
    void *msg = kp_arena_alloc(a, c->size);
    void *back = kp_arena_alloc(a, c->size);
    c->random(a, rng, v, msg);
    c->encode(w1, v, msg);
    if (w1->err) {
        kt_fail(__FILE__, __LINE__, "%s v%d: encode of random value failed: %s", c->name, v,
                kp_strerror(w1->err));
        return -1;
    }
    kp_reader r;
    kp_reader_init(&r, w1->buf, w1->len);
    if (c->decode(&r, a, v, back) != 0 || r.p != r.end) {
        kt_fail(__FILE__, __LINE__, "%s v%d: decode failed (%s) or left %zu of %zu bytes", c->name,
                v, kp_strerror(r.err), kp_reader_remaining(&r), w1->len);
        return -1;
    }
    c->encode(w2, v, back);
    if (w2->err || w2->len != w1->len || (w1->len && memcmp(w1->buf, w2->buf, w1->len) != 0)) {
        kt_fail(__FILE__, __LINE__, "%s v%d: re-encoding differs (%zu vs %zu bytes)", c->name, v,
                w1->len, w2->len);
        return -1;
    }
    /* Any strict prefix must be rejected: the decoder needs every byte it consumed above. */
    if (w1->len > 0) {
        size_t cut = kp_rand_below(rng, (uint32_t)w1->len);
        kp_reader_init(&r, w1->buf, cut);
        if (c->decode(&r, a, v, back) == 0) {
            kt_fail(__FILE__, __LINE__, "%s v%d: %zu-byte prefix of %zu decoded", c->name, v, cut,
                    w1->len);
            return -1;
        }
        st->truncations++;
    }
    st->runs++;
    st->bytes += (long)w1->len;
    return 0;
}

KT_TEST(every_message_every_version_round_trips_byte_identically)
{
    uint64_t rng = SEED;
    kp_arena a;
    kp_writer w1, w2;
    kp_arena_init(&a);
    kp_writer_init(&w1, 0);
    kp_writer_init(&w2, 0);
    roundtrip_stats st = {0};
    int versions = 0, failures = 0;
    for (size_t i = 0; i < kp_all_msgs_count; i++) {
        const kp_msg_codec *c = kp_all_msgs[i];
        for (int16_t v = c->min_version; v <= c->max_version; v++) {
            versions++;
            for (int n = 0; n < ROUNDTRIPS_PER_VERSION; n++) {
                if (roundtrip_once(c, v, &rng, &a, &w1, &w2, &st) != 0) {
                    failures++;
                    break; /* one report per message version is enough */
                }
            }
        }
    }
    KT_CHECK_EQ_INT(failures, 0);
    KT_CHECK(kp_all_msgs_count >= 186);
    KT_CHECK_EQ_INT(st.runs, (long)versions * ROUNDTRIPS_PER_VERSION);
    printf("     %d message versions, %ld round trips, %ld bytes, %ld truncations\n", versions,
           st.runs, st.bytes, st.truncations);
    kp_writer_free(&w1);
    kp_writer_free(&w2);
    kp_arena_free(&a);
}

KT_TEST(every_prefix_of_a_large_message_fails_cleanly)
{
    /* Exhaustive truncation of a few rich messages (nested arrays, tagged fields). */
    const char *names[] = {"FetchResponse", "MetadataResponse", "ProduceRequest",
                           "ConsumerGroupHeartbeatResponse", "DescribeTopicPartitionsRequest"};
    uint64_t rng = SEED + 1;
    kp_arena a;
    kp_writer w;
    kp_arena_init(&a);
    kp_writer_init(&w, 0);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const kp_msg_codec *c = kp_msg_find(names[i]);
        KT_CHECK(c != NULL);
        if (!c) continue;
        kp_writer_reset(&w);
        kp_arena_reset(&a);
        void *msg = kp_arena_alloc(&a, c->size);
        c->random(&a, &rng, c->max_version, msg);
        c->encode(&w, c->max_version, msg);
        KT_CHECK_EQ_INT(w.err, KP_OK);
        int accepted = 0;
        for (size_t cut = 0; cut < w.len; cut++) {
            kp_arena_reset(&a);
            void *back = kp_arena_alloc(&a, c->size);
            kp_reader r;
            kp_reader_init(&r, w.buf, cut);
            if (c->decode(&r, &a, c->max_version, back) == 0) accepted++;
        }
        KT_CHECK_EQ_INT(accepted, 0);
    }
    kp_writer_free(&w);
    kp_arena_free(&a);
}

KT_TEST(decode_rejects_versions_outside_the_spec)
{
    kp_arena a;
    kp_arena_init(&a);
    kp_metadata_response m;
    kp_reader r;
    kp_reader_init(&r, "\0\0\0\0", 4);
    KT_CHECK_EQ_INT(kp_metadata_response_decode(&r, &a, 13, &m), -1);
    KT_CHECK_EQ_INT(r.err, KP_ERR_VERSION);
    kp_reader_init(&r, "\0\0\0\0", 4);
    KT_CHECK_EQ_INT(kp_metadata_response_decode(&r, &a, -1, &m), -1);
    kp_arena_free(&a);
}

KT_TEST(non_default_field_at_a_version_without_it)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    KT_CHECK_EQ_INT(m.controller_id, -1);
    KT_CHECK_EQ_INT(m.cluster_authorized_operations, INT32_MIN);
    KT_CHECK_EQ_INT(m.cluster_id.len, -1);
    /* ThrottleTimeMs (v3+) is ignorable: silently dropped at v0. */
    m.throttle_time_ms = 100;
    kp_metadata_response_encode(&w, 0, &m);
    KT_CHECK_EQ_INT(w.err, KP_OK);
    KT_CHECK_EQ_INT(w.len, 8); /* two empty arrays */
    /* ClusterAuthorizedOperations (v8-10) is not ignorable: v11 cannot carry it. */
    kp_writer_reset(&w);
    m.cluster_authorized_operations = 5;
    kp_metadata_response_encode(&w, 11, &m);
    KT_CHECK_EQ_INT(w.err, KP_ERR_VERSION);
    kp_writer_reset(&w);
    kp_metadata_response_encode(&w, 10, &m);
    KT_CHECK_EQ_INT(w.err, KP_OK);
    kp_writer_free(&w);
}

KT_TEST(api_table_header_versions)
{
    KT_CHECK_EQ_STR(kp_api_name(3), "Metadata");
    KT_CHECK_EQ_STR(kp_api_name(18), "ApiVersions");
    KT_CHECK_EQ_STR(kp_api_name(9999), "Unknown");
    KT_CHECK_EQ_STR(kp_api_name(-1), "Unknown");
    KT_CHECK(kp_api_get(9999) == NULL);
    const kp_api_info *fetch = kp_api_get(1);
    KT_CHECK(fetch && fetch->flexible_min == 12 && fetch->request == &kp_fetch_request_codec &&
             fetch->response == &kp_fetch_response_codec);
    KT_CHECK_EQ_INT(kp_api_request_header_version(3, 8), 1);
    KT_CHECK_EQ_INT(kp_api_request_header_version(3, 9), 2);
    KT_CHECK_EQ_INT(kp_api_response_header_version(3, 8), 0);
    KT_CHECK_EQ_INT(kp_api_response_header_version(3, 9), 1);
    KT_CHECK_EQ_INT(kp_api_request_header_version(18, 3), 2);
    KT_CHECK_EQ_INT(kp_api_response_header_version(18, 3), 0); /* ApiVersions: always v0 */
    KT_CHECK_EQ_INT(kp_api_request_header_version(7, 0), 0);   /* ControlledShutdown v0 */
    KT_CHECK_EQ_INT(kp_api_request_header_version(7, 1), 1);
    KT_CHECK_EQ_INT(kp_api_request_header_version(3, 13), -1);
    KT_CHECK_EQ_INT(kp_api_response_header_version(777, 0), -1);
    KT_CHECK(!kp_api_supported(0, 12));
    KT_CHECK(kp_api_supported(0, 11));
    /* Every key in the table pairs a request with the response of the same key. */
    for (int16_t k = 0; k < KP_API_MAX; k++) {
        const kp_api_info *api = kp_api_get(k);
        if (!api) continue;
        KT_CHECK_EQ_INT(api->request->api_key, k);
        KT_CHECK_EQ_INT(api->response->api_key, k);
        KT_CHECK_EQ_INT(api->request->kind, KP_MSG_REQUEST);
        KT_CHECK_EQ_INT(api->response->kind, KP_MSG_RESPONSE);
    }
}

/* ---- byte vectors spelled out from the protocol specification ----------------------------- */

#define B16(v) (uint8_t)((uint16_t)(v) >> 8), (uint8_t)(v)
#define B32(v)                                                                                     \
    (uint8_t)((uint32_t)(v) >> 24), (uint8_t)((uint32_t)(v) >> 16), (uint8_t)((uint32_t)(v) >> 8), \
        (uint8_t)(v)
#define B64(v) B32((uint64_t)(v) >> 32), B32((uint64_t)(v)&0xffffffffu)
#define UUID_AA                                                                                    \
    0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa
#define UUID_SEQ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16

/* Decodes the exact bytes (all of them), then checks re-encoding gives the same bytes. */
static bool decode_exact(const kp_msg_codec *c, int16_t v, const uint8_t *bytes, size_t n,
                         kp_arena *a, void *out, int line)
{
    kp_reader r;
    kp_reader_init(&r, bytes, n);
    if (c->decode(&r, a, v, out) != 0 || r.p != r.end) {
        kt_fail(__FILE__, line, "%s v%d: decode: %s, %zu of %zu bytes left", c->name, v,
                kp_strerror(r.err), kp_reader_remaining(&r), n);
        return false;
    }
    kp_writer w;
    kp_writer_init(&w, 0);
    c->encode(&w, v, out);
    bool same = !w.err && w.len == n && (n == 0 || memcmp(w.buf, bytes, n) == 0);
    if (!same)
        kt_fail(__FILE__, line, "%s v%d: re-encoded %zu bytes differ from the %zu given", c->name,
                v, w.len, n);
    kp_writer_free(&w);
    return same;
}

#define DECODE(codec, version, out, ...)                                                           \
    do {                                                                                           \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                             \
        KT_CHECK(decode_exact(&codec, version, bytes_, sizeof(bytes_), &a, out, __LINE__));        \
    } while (0)

#define WITH_ARENA(body)                                                                           \
    do {                                                                                           \
        kp_arena a;                                                                                \
        kp_arena_init(&a);                                                                         \
        body;                                                                                      \
        kp_arena_free(&a);                                                                         \
    } while (0)

static bool str_is(kp_str s, const char *c)
{
    return kp_str_eq_c(s, c);
}

KT_TEST(metadata_request_v0_v1_v9_v12)
{
    WITH_ARENA({
        kp_metadata_request m;
        DECODE(kp_metadata_request_codec, 0, &m, B32(1), B16(6), 'o', 'r', 'd', 'e', 'r', 's');
        KT_CHECK_EQ_INT(m.topics.count, 1);
        KT_CHECK(str_is(m.topics.items[0].name, "orders"));
        KT_CHECK(m.allow_auto_topic_creation); /* v4+ field keeps its default (true) */

        DECODE(kp_metadata_request_codec, 1, &m, B32(-1)); /* null = all topics */
        KT_CHECK_EQ_INT(m.topics.count, -1);

        DECODE(kp_metadata_request_codec, 9, &m, 0x02,   /* topics: compact, 1 */
               0x07, 'o', 'r', 'd', 'e', 'r', 's', 0x00, /* name, tags */
               0x01, 0x00, 0x01,                         /* auto create, cluster ops, topic ops */
               0x00);                                    /* tags */
        KT_CHECK_EQ_INT(m.topics.count, 1);
        KT_CHECK(str_is(m.topics.items[0].name, "orders"));
        KT_CHECK(m.allow_auto_topic_creation && !m.include_cluster_authorized_operations &&
                 m.include_topic_authorized_operations);

        DECODE(kp_metadata_request_codec, 12, &m, 0x03,           /* 2 topics */
               UUID_AA, 0x07, 'o', 'r', 'd', 'e', 'r', 's', 0x00, /* by name */
               UUID_SEQ, 0x00, 0x00,                              /* by id, null name */
               0x00, 0x00,                                        /* auto create, topic ops */
               0x01, 0x05, 0x02, 0xde, 0xad);                     /* unknown tag 5 */
        KT_CHECK_EQ_INT(m.topics.count, 2);
        KT_CHECK_EQ_INT(m.topics.items[0].topic_id.b[0], 0xaa);
        KT_CHECK_EQ_INT(m.topics.items[1].name.len, -1);
        KT_CHECK_EQ_INT(m.topics.items[1].topic_id.b[15], 16);
        KT_CHECK(!m.allow_auto_topic_creation);
        KT_CHECK(m.unknown_tags && m.unknown_tags->tag == 5 && m.unknown_tags->data.len == 2);
    });
}

KT_TEST(metadata_response_v0_v1)
{
    WITH_ARENA({
        kp_metadata_response m;
        DECODE(kp_metadata_response_codec, 0, &m, B32(1), B32(1), B16(2), 'b', '1',
               B32(9092),                       /* brokers */
               B32(1), B16(0), B16(1), 't',     /* topic "t" */
               B32(1), B16(0), B32(0), B32(1),  /* partition 0, leader 1 */
               B32(1), B32(1), B32(1), B32(1)); /* replicas [1], isr [1] */
        KT_CHECK_EQ_INT(m.brokers.count, 1);
        KT_CHECK_EQ_INT(m.brokers.items[0].node_id, 1);
        KT_CHECK(str_is(m.brokers.items[0].host, "b1"));
        KT_CHECK_EQ_INT(m.brokers.items[0].port, 9092);
        KT_CHECK_EQ_INT(m.controller_id, -1); /* not in v0: default */
        KT_CHECK_EQ_INT(m.topics.items[0].partitions.items[0].leader_id, 1);
        KT_CHECK_EQ_INT(m.topics.items[0].partitions.items[0].isr_nodes.items[0], 1);

        DECODE(kp_metadata_response_codec, 1, &m, B32(1), B32(1), B16(2), 'b', '1', B32(9092),
               B16(-1),                           /* rack null */
               B32(1),                            /* controller */
               B32(1), B16(0), B16(1), 't', 0x00, /* not internal */
               B32(1), B16(0), B32(0), B32(1), B32(1), B32(1), B32(1), B32(1));
        KT_CHECK_EQ_INT(m.brokers.items[0].rack.len, -1);
        KT_CHECK_EQ_INT(m.controller_id, 1);
        KT_CHECK(!m.topics.items[0].is_internal);
    });
}

KT_TEST(metadata_response_v9_v12)
{
    WITH_ARENA({
        kp_metadata_response m;
        DECODE(kp_metadata_response_codec, 9, &m, B32(0),                     /* throttle */
               0x02, B32(1), 0x03, 'b', '1', B32(9092), 0x03, 'r', '1', 0x00, /* broker */
               0x04, 'c', 'i', 'd', B32(1),                                   /* cluster, ctrl */
               0x02, B16(0), 0x02, 't', 0x00,                                 /* topic t */
               0x02, B16(0), B32(0), B32(1), B32(5),                          /* partition */
               0x02, B32(1), 0x02, B32(1), 0x01, 0x00,                        /* [1] [1] [] */
               B32(INT32_MIN), 0x00,                                          /* topic ops */
               B32(INT32_MIN), 0x00);                                         /* cluster ops */
        KT_CHECK(str_is(m.brokers.items[0].rack, "r1"));
        KT_CHECK(str_is(m.cluster_id, "cid"));
        KT_CHECK_EQ_INT(m.topics.items[0].partitions.items[0].leader_epoch, 5);
        KT_CHECK_EQ_INT(m.topics.items[0].partitions.items[0].offline_replicas.count, 0);

        DECODE(kp_metadata_response_codec, 12, &m, B32(0), 0x02, B32(2), 0x03, 'b', '2', B32(9093),
               0x00, 0x00,                             /* rack null */
               0x00, B32(2),                           /* cluster id null */
               0x02, B16(0), 0x02, 't', UUID_AA, 0x01, /* internal */
               0x01, B32(0x0fff), 0x00,                /* no partitions */
               0x01, 0x07, 0x01, 0x99);                /* unknown tag 7 */
        KT_CHECK_EQ_INT(m.brokers.items[0].rack.len, -1);
        KT_CHECK_EQ_INT(m.cluster_id.len, -1);
        KT_CHECK(m.topics.items[0].is_internal);
        KT_CHECK_EQ_INT(m.topics.items[0].topic_id.b[3], 0xaa);
        KT_CHECK_EQ_INT(m.topics.items[0].topic_authorized_operations, 0x0fff);
        KT_CHECK(m.unknown_tags && m.unknown_tags->tag == 7 && m.unknown_tags->data.ptr[0] == 0x99);
    });
}

KT_TEST(find_coordinator_v3_v4)
{
    WITH_ARENA({
        kp_find_coordinator_request rq;
        DECODE(kp_find_coordinator_request_codec, 3, &rq, 0x03, 'g', '1', 0x00, 0x00);
        KT_CHECK(str_is(rq.key, "g1"));
        KT_CHECK_EQ_INT(rq.key_type, 0);
        DECODE(kp_find_coordinator_request_codec, 4, &rq, 0x01, /* transaction */
               0x03, 0x03, 'g', '1', 0x03, 'g', '2', 0x00);
        KT_CHECK_EQ_INT(rq.key_type, 1);
        KT_CHECK_EQ_INT(rq.coordinator_keys.count, 2);
        KT_CHECK(str_is(rq.coordinator_keys.items[1], "g2"));

        kp_find_coordinator_response m;
        DECODE(kp_find_coordinator_response_codec, 3, &m, B32(0), B16(0), 0x00, /* msg null */
               B32(3), 0x03, 'b', '3', B32(9094), 0x00);
        KT_CHECK_EQ_INT(m.node_id, 3);
        KT_CHECK(str_is(m.host, "b3"));
        KT_CHECK_EQ_INT(m.port, 9094);
        KT_CHECK_EQ_INT(m.error_message.len, -1);

        DECODE(kp_find_coordinator_response_codec, 4, &m, B32(0), 0x03, 0x03, 'g', '1', B32(1),
               0x03, 'b', '1', B32(9092), B16(0), 0x00, 0x00, 0x03, 'g', '2', B32(-1), 0x01,
               B32(-1), B16(15), 0x00, 0x00, /* not available */
               0x00);
        KT_CHECK_EQ_INT(m.coordinators.count, 2);
        KT_CHECK(str_is(m.coordinators.items[0].host, "b1"));
        KT_CHECK_EQ_INT(m.coordinators.items[1].node_id, -1);
        KT_CHECK_EQ_INT(m.coordinators.items[1].host.len, 0);
        KT_CHECK_EQ_INT(m.coordinators.items[1].error_code, 15);
    });
}

KT_TEST(api_versions_v0_v3)
{
    WITH_ARENA({
        kp_api_versions_request rq;
        kp_reader r;
        kp_reader_init(&r, "", 0); /* v0 request has an empty body */
        KT_CHECK_EQ_INT(kp_api_versions_request_decode(&r, &a, 0, &rq), 0);
        DECODE(kp_api_versions_request_codec, 3, &rq, 0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f',
               'k', 'a', 0x07, '2', '.', '1', '2', '.', '0', 0x00);
        KT_CHECK(str_is(rq.client_software_name, "librdkafka"));
        KT_CHECK(str_is(rq.client_software_version, "2.12.0"));

        kp_api_versions_response m;
        DECODE(kp_api_versions_response_codec, 0, &m, B16(0), B32(2), B16(0), B16(0), B16(9),
               B16(18), B16(0), B16(3));
        KT_CHECK_EQ_INT(m.api_keys.count, 2);
        KT_CHECK_EQ_INT(m.api_keys.items[1].api_key, 18);
        KT_CHECK_EQ_INT(m.api_keys.items[1].max_version, 3);

        DECODE(kp_api_versions_response_codec, 3, &m, B16(0), 0x03, B16(0), B16(0), B16(11), 0x00,
               B16(18), B16(0), B16(4), 0x00, B32(0), 0x02, /* two tagged fields: */
               0x01, 0x08, B64(7),                          /* FinalizedFeaturesEpoch = 7 */
               0x09, 0x01, 0x2a);                           /* unknown tag 9 */
        KT_CHECK_EQ_INT(m.api_keys.items[0].max_version, 11);
        KT_CHECK(m.has_finalized_features_epoch);
        KT_CHECK_EQ_INT(m.finalized_features_epoch, 7);
        KT_CHECK(!m.has_supported_features && !m.has_zk_migration_ready);
        KT_CHECK(m.unknown_tags && m.unknown_tags->tag == 9 && !m.unknown_tags->next);
    });
}

KT_TEST(produce_v3_v9_v10)
{
    WITH_ARENA({
        kp_produce_request rq;
        DECODE(kp_produce_request_codec, 3, &rq, B16(-1), B16(-1), B32(30000), /* acks all */
               B32(1), B16(1), 't', B32(1), B32(0), B32(4), 0xde, 0xad, 0xbe, 0xef);
        KT_CHECK_EQ_INT(rq.transactional_id.len, -1);
        KT_CHECK_EQ_INT(rq.acks, -1);
        KT_CHECK_EQ_INT(rq.topic_data.items[0].partition_data.items[0].records.len, 4);
        KT_CHECK_EQ_INT(rq.topic_data.items[0].partition_data.items[0].records.ptr[3], 0xef);

        DECODE(kp_produce_request_codec, 9, &rq, 0x00, B16(1), B32(1000), 0x02, 0x02, 't', 0x02,
               B32(2), 0x05, 1, 2, 3, 4, 0x00, 0x00, 0x00);
        KT_CHECK_EQ_INT(rq.acks, 1);
        KT_CHECK_EQ_INT(rq.topic_data.items[0].partition_data.items[0].index, 2);
        DECODE(kp_produce_request_codec, 10, &rq, 0x06, 't', 'x', 'n', '-', '1', B16(1), B32(1000),
               0x02, 0x02, 't', 0x02, B32(2), 0x00 /* null records */, 0x00, 0x00, 0x00);
        KT_CHECK(str_is(rq.transactional_id, "txn-1"));
        KT_CHECK_EQ_INT(rq.topic_data.items[0].partition_data.items[0].records.len, -1);

        kp_produce_response m;
        DECODE(kp_produce_response_codec, 3, &m, B32(1), B16(1), 't', B32(1), B32(0), B16(0),
               B64(42), B64(-1), B32(0));
        KT_CHECK_EQ_INT(m.responses.items[0].partition_responses.items[0].base_offset, 42);

        DECODE(kp_produce_response_codec, 9, &m, 0x02, 0x02, 't', 0x02, B32(2), B16(0), B64(100),
               B64(-1), B64(0), 0x01, 0x00, 0x00, /* part */
               0x00, B32(0), 0x00);
        KT_CHECK_EQ_INT(m.responses.items[0].partition_responses.items[0].log_start_offset, 0);
        KT_CHECK_EQ_INT(m.responses.items[0].partition_responses.items[0].error_message.len, -1);

        DECODE(kp_produce_response_codec, 10, &m, 0x02, 0x02, 't', 0x02, B32(2), B16(6), B64(-1),
               B64(-1), B64(-1), 0x01, 0x00,           /* NOT_LEADER */
               0x01, 0x00, 0x09, B32(1), B32(7), 0x00, /* CurrentLeader {1, 7} */
               0x00, B32(0), 0x01, 0x00, 0x0e,         /* NodeEndpoints: */
               0x02, B32(1), 0x03, 'b', '1', B32(9092), 0x00, 0x00);
        const kp_produce_response_partition_produce_response *p =
            &m.responses.items[0].partition_responses.items[0];
        KT_CHECK(p->has_current_leader);
        KT_CHECK_EQ_INT(p->current_leader.leader_id, 1);
        KT_CHECK_EQ_INT(p->current_leader.leader_epoch, 7);
        KT_CHECK(m.has_node_endpoints);
        KT_CHECK_EQ_INT(m.node_endpoints.count, 1);
        KT_CHECK(str_is(m.node_endpoints.items[0].host, "b1"));
        KT_CHECK_EQ_INT(m.node_endpoints.items[0].rack.len, -1);
    });
}

KT_TEST(fetch_v4_v11_v16)
{
    WITH_ARENA({
        kp_fetch_request rq;
        DECODE(kp_fetch_request_codec, 4, &rq, B32(-1), B32(500), B32(1), B32(52428800), 0x01,
               B32(1), B16(1), 't', B32(1), B32(0), B64(10), B32(1048576));
        KT_CHECK_EQ_INT(rq.max_bytes, 52428800);
        KT_CHECK_EQ_INT(rq.isolation_level, 1);
        KT_CHECK_EQ_INT(rq.topics.items[0].partitions.items[0].fetch_offset, 10);

        DECODE(kp_fetch_request_codec, 11, &rq, B32(-1), B32(500), B32(1), B32(0x7fffffff), 0x00,
               B32(0), B32(-1), /* session id, epoch */
               B32(1), B16(1), 't', B32(1), B32(0), B32(3), B64(10), B64(-1), B32(1048576), B32(0),
               B16(0)); /* forgotten, rack "" */
        KT_CHECK_EQ_INT(rq.session_epoch, -1);
        KT_CHECK_EQ_INT(rq.topics.items[0].partitions.items[0].current_leader_epoch, 3);
        KT_CHECK_EQ_INT(rq.rack_id.len, 0);

        DECODE(kp_fetch_request_codec, 16, &rq, B32(500), B32(1), B32(0x7fffffff), 0x01, B32(0),
               B32(-1), 0x02, UUID_SEQ, 0x02, B32(0), B32(3), B64(10), B32(-1), B64(-1),
               B32(1048576), 0x00, 0x00,               /* partition, topic tags */
               0x01, 0x01,                             /* no forgotten, rack "" */
               0x01, 0x00, 0x04, 0x04, 'a', 'b', 'c'); /* ClusterId "abc" */
        KT_CHECK_EQ_INT(rq.replica_id, -1);            /* v0-14 only */
        KT_CHECK_EQ_INT(rq.topics.items[0].topic_id.b[0], 1);
        KT_CHECK(rq.has_cluster_id && str_is(rq.cluster_id, "abc"));
        KT_CHECK(!rq.has_replica_state);

        kp_fetch_response m;
        DECODE(kp_fetch_response_codec, 4, &m, B32(0), B32(1), B16(1), 't', B32(1), B32(0), B16(0),
               B64(20), B64(20), B32(-1), B32(3), 1, 2, 3);
        const kp_fetch_response_partition_data *p = &m.responses.items[0].partitions.items[0];
        KT_CHECK_EQ_INT(p->high_watermark, 20);
        KT_CHECK_EQ_INT(p->aborted_transactions.count, -1);
        KT_CHECK_EQ_INT(p->records.len, 3);

        DECODE(kp_fetch_response_codec, 11, &m, B32(0), B16(0), B32(0), B32(1), B16(1), 't', B32(1),
               B32(0), B16(0), B64(20), B64(20), B64(0), B32(1), B64(5), B64(11), /* aborted txn */
               B32(-1), B32(3), 1, 2, 3); /* preferred replica */
        p = &m.responses.items[0].partitions.items[0];
        KT_CHECK_EQ_INT(p->aborted_transactions.count, 1);
        KT_CHECK_EQ_INT(p->aborted_transactions.items[0].first_offset, 11);
        KT_CHECK_EQ_INT(p->preferred_read_replica, -1);

        DECODE(kp_fetch_response_codec, 16, &m, B32(0), B16(0), B32(7), 0x02, UUID_SEQ, 0x02,
               B32(0), B16(0), B64(20), B64(20), B64(0), 0x00, B32(-1), 0x04, 1, 2, 3, 0x00,
               0x00, /* records, tags x2 */
               0x01, 0x00, 0x0e, 0x02, B32(1), 0x03, 'b', '1', B32(9092), 0x00, 0x00);
        p = &m.responses.items[0].partitions.items[0];
        KT_CHECK_EQ_INT(m.session_id, 7);
        KT_CHECK_EQ_INT(p->aborted_transactions.count, -1);
        KT_CHECK_EQ_INT(p->records.len, 3);
        KT_CHECK(!p->has_current_leader && !p->has_diverging_epoch);
        KT_CHECK_EQ_INT(m.node_endpoints.count, 1);
        KT_CHECK_EQ_INT(m.node_endpoints.items[0].port, 9092);
    });
}

/* ---- frames and headers ----------------------------------------------------------------- */

KT_TEST(frame_size_prefix)
{
    int32_t size = -5;
    KT_CHECK_EQ_INT(kp_frame_size((const uint8_t[]){0, 0, 1}, 3, 1000, &size), KP_FRAME_NEED_MORE);
    KT_CHECK_EQ_INT(kp_frame_size((const uint8_t[]){0, 0, 1, 0}, 4, 1000, &size), KP_FRAME_OK);
    KT_CHECK_EQ_INT(size, 256);
    KT_CHECK_EQ_INT(kp_frame_size((const uint8_t[]){0, 0, 4, 0}, 4, 1000, &size), KP_FRAME_BAD);
    KT_CHECK_EQ_INT(kp_frame_size((const uint8_t[]){0xff, 0xff, 0xff, 0xff}, 4, 1000, &size),
                    KP_FRAME_BAD);
    kp_writer w;
    kp_writer_init(&w, 0);
    size_t at = kp_frame_begin(&w);
    kp_write_i16(&w, 3);
    kp_frame_end(&w, at);
    KT_CHECK_EQ_MEM(w.buf, ((const uint8_t[]){0, 0, 0, 2, 0, 3}), 6);
    kp_writer_free(&w);
}

KT_TEST(request_header_v1_classic_client_id)
{
    static const uint8_t body[] = {B16(3), B16(8), B32(77), B16(7), 'r', 'd',
                                   'k',    'a',    'f',     'k',    'a', 0xee /* request body */};
    kp_request_header h;
    size_t len = 0;
    KT_CHECK_EQ_INT(kp_request_header_parse(body, sizeof(body), NULL, &h, &len), KP_FRAME_OK);
    KT_CHECK_EQ_INT(h.api_key, 3);
    KT_CHECK_EQ_INT(h.api_version, 8);
    KT_CHECK_EQ_INT(h.correlation_id, 77);
    KT_CHECK_EQ_INT(h.header_version, 1);
    KT_CHECK(kp_str_eq_c(h.client_id, "rdkafka"));
    KT_CHECK_EQ_INT(len, sizeof(body) - 1);
}

KT_TEST(request_header_v2_keeps_tags_and_classic_client_id)
{
    /* Flexible request: the client id is STILL int16-length, then tagged fields. */
    static const uint8_t body[] = {B16(3), B16(12), B32(-2), B16(-1),       /* null client id */
                                   0x01,   0x04,    0x02,    0xab,    0xcd, /* unknown tag 4 */
                                   0x99};
    kp_arena a;
    kp_arena_init(&a);
    kp_request_header h;
    size_t len = 0;
    KT_CHECK_EQ_INT(kp_request_header_parse(body, sizeof(body), &a, &h, &len), KP_FRAME_OK);
    KT_CHECK_EQ_INT(h.header_version, 2);
    KT_CHECK_EQ_INT(h.correlation_id, -2);
    KT_CHECK_EQ_INT(h.client_id.len, -1);
    KT_CHECK_EQ_INT(len, sizeof(body) - 1);
    KT_CHECK(h.tags && h.tags->tag == 4 && h.tags->data.len == 2);
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_request_header_encode(&w, &h);
    KT_CHECK_EQ_INT(w.len, len);
    KT_CHECK_EQ_MEM(w.buf, body, len);
    /* Without an arena the tags are skipped but the length is the same. */
    KT_CHECK_EQ_INT(kp_request_header_parse(body, sizeof(body), NULL, &h, &len), KP_FRAME_OK);
    KT_CHECK(h.tags == NULL);
    KT_CHECK_EQ_INT(len, sizeof(body) - 1);
    kp_writer_free(&w);
    kp_arena_free(&a);
}

KT_TEST(request_header_v0_controlled_shutdown)
{
    static const uint8_t body[] = {B16(7), B16(0), B32(5), B32(1) /* broker id */};
    kp_request_header h;
    size_t len = 0;
    KT_CHECK_EQ_INT(kp_request_header_parse(body, sizeof(body), NULL, &h, &len), KP_FRAME_OK);
    KT_CHECK_EQ_INT(h.header_version, 0);
    KT_CHECK_EQ_INT(len, 8);
    KT_CHECK_EQ_INT(h.client_id.len, -1);
}

KT_TEST(request_header_unknown_api_or_version_reports_first_eight_bytes)
{
    static const uint8_t unknown_key[] = {B16(900), B16(0), B32(11), 0x00};
    static const uint8_t unknown_version[] = {B16(3), B16(99), B32(12), B16(1), 'x'};
    kp_request_header h;
    size_t len = 0;
    KT_CHECK_EQ_INT(kp_request_header_parse(unknown_key, sizeof(unknown_key), NULL, &h, &len),
                    KP_FRAME_UNKNOWN_API);
    KT_CHECK_EQ_INT(h.api_key, 900);
    KT_CHECK_EQ_INT(h.correlation_id, 11);
    KT_CHECK_EQ_INT(h.header_version, -1);
    KT_CHECK_EQ_INT(len, 8);
    KT_CHECK_EQ_INT(
        kp_request_header_parse(unknown_version, sizeof(unknown_version), NULL, &h, &len),
        KP_FRAME_UNKNOWN_API);
    KT_CHECK_EQ_INT(h.api_version, 99);
    KT_CHECK_EQ_INT(h.correlation_id, 12);
}

KT_TEST(request_header_malformed)
{
    static const uint8_t short_body[] = {B16(3), B16(1), B16(0)};
    static const uint8_t long_client_id[] = {B16(3), B16(1), B32(1), B16(100), 'a', 'b'};
    static const uint8_t bad_tags[] = {B16(3), B16(9), B32(1), B16(0), 0x01, 0x00, 0x05};
    kp_request_header h;
    size_t len;
    KT_CHECK_EQ_INT(kp_request_header_parse(short_body, sizeof(short_body), NULL, &h, &len),
                    KP_FRAME_BAD);
    KT_CHECK_EQ_INT(kp_request_header_parse(long_client_id, sizeof(long_client_id), NULL, &h, &len),
                    KP_FRAME_BAD);
    KT_CHECK_EQ_INT(kp_request_header_parse(bad_tags, sizeof(bad_tags), NULL, &h, &len),
                    KP_FRAME_BAD);
}

KT_TEST(response_header_v0_v1)
{
    static const uint8_t v0[] = {B32(9), 0xaa};
    static const uint8_t v1[] = {B32(10), 0x01, 0x02, 0x01, 0x07, 0xbb};
    kp_arena a;
    kp_arena_init(&a);
    kp_response_header h;
    size_t len = 0;
    KT_CHECK_EQ_INT(kp_response_header_parse(v0, sizeof(v0), 0, &a, &h, &len), KP_FRAME_OK);
    KT_CHECK_EQ_INT(h.correlation_id, 9);
    KT_CHECK_EQ_INT(len, 4);
    KT_CHECK_EQ_INT(kp_response_header_parse(v1, sizeof(v1), 1, &a, &h, &len), KP_FRAME_OK);
    KT_CHECK_EQ_INT(h.correlation_id, 10);
    KT_CHECK_EQ_INT(len, 8);
    KT_CHECK(h.tags && h.tags->tag == 2);
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_response_header_encode(&w, 1, &h);
    KT_CHECK_EQ_INT(w.len, 8);
    KT_CHECK_EQ_MEM(w.buf, v1, 8);
    kp_writer_reset(&w);
    kp_response_header_encode(&w, 0, &h);
    KT_CHECK_EQ_INT(w.len, 4);
    KT_CHECK_EQ_INT(kp_response_header_parse(v1, 3, 0, &a, &h, &len), KP_FRAME_BAD);
    kp_writer_free(&w);
    kp_arena_free(&a);
}

KT_MAIN()
