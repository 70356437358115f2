/* ApiVersions: parsing a backend's answer, intersecting ranges, building the client's answer. */
#include "kt.h"

#include <stdint.h>

#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "route/kg_versions.h"

#define B16(v) (uint8_t)((uint16_t)(v) >> 8), (uint8_t)(v)
#define B32(v)                                                                                     \
    (uint8_t)((uint32_t)(v) >> 24), (uint8_t)((uint32_t)(v) >> 16), (uint8_t)((uint32_t)(v) >> 8), \
        (uint8_t)(v)

KT_TEST(codec_ranges_cover_every_client_api)
{
    kg_version_ranges r;
    kg_versions_from_codecs(&r);
    KT_CHECK_EQ_INT(r.min[0], 0);
    KT_CHECK_EQ_INT(r.max[0], 11); /* Produce */
    KT_CHECK_EQ_INT(r.max[1], 17); /* Fetch */
    KT_CHECK_EQ_INT(r.max[3], 12); /* Metadata */
    KT_CHECK_EQ_INT(r.max[18], 4); /* ApiVersions */
    int offered = 0;
    for (int16_t k = 0; k < KP_API_MAX; k++) {
        const kp_api_info *api = kp_api_get(k);
        if (api && kp_api_client_facing(k)) {
            offered++;
            KT_CHECK_EQ_INT(r.min[k], api->min_version);
            KT_CHECK_EQ_INT(r.max[k], api->max_version);
        } else {
            KT_CHECK_EQ_INT(r.min[k], -1);
        }
    }
    KT_CHECK(offered >= 60);
    KT_CHECK_EQ_INT(kg_versions_max_apiversions(), 4);
}

/* Kafka's inter-broker and controller APIs, by the key numbers the protocol assigns them: a
 * client never sends them, so kgate never offers them, whatever a broker advertises. */
KT_TEST(inter_broker_and_controller_apis_are_not_offered)
{
    static const int16_t not_for_clients[] = {
        4,  /* LeaderAndIsr */ 5,         /* StopReplica */ 6,         /* UpdateMetadata */
        7,  /* ControlledShutdown */ 52,  /* Vote */ 53,               /* BeginQuorumEpoch */
        54, /* EndQuorumEpoch */ 56,      /* AlterPartition */ 58,     /* Envelope */
        59, /* FetchSnapshot */ 62,       /* BrokerRegistration */ 63, /* BrokerHeartbeat */
        67, /* AllocateProducerIds */ 70,                              /* ControllerRegistration */
    };
    static const int16_t for_clients[] = {0,  1,  2,  3,  8,  9,  10, 11, 12, 13,
                                          14, 15, 16, 17, 18, 19, 22, 36, 60 /* DescribeCluster */};
    kg_version_ranges r;
    kg_versions_from_codecs(&r);
    for (size_t i = 0; i < sizeof(not_for_clients) / sizeof(not_for_clients[0]); i++) {
        int16_t k = not_for_clients[i];
        KT_CHECK(kp_api_get(k) != NULL); /* kgate knows them, */
        KT_CHECK(!kp_api_client_facing(k));
        KT_CHECK_EQ_INT(r.min[k], -1); /* and does not offer them */
        KT_CHECK(!kg_versions_supported(&r, k, 0));
    }
    for (size_t i = 0; i < sizeof(for_clients) / sizeof(for_clients[0]); i++) {
        KT_CHECK(kp_api_client_facing(for_clients[i]));
        KT_CHECK(r.min[for_clients[i]] >= 0);
    }
}

KT_TEST(parse_v0_response)
{
    static const uint8_t body[] = {B16(0),   B32(3), B16(0), B16(3), B16(9), /* Produce 3-9 */
                                   B16(18),  B16(0), B16(3),                 /* ApiVersions 0-3 */
                                   B16(900), B16(0), B16(1)}; /* unknown to kgate: ignored */
    kg_version_ranges r;
    int16_t error = -1;
    KT_CHECK_EQ_INT(kg_versions_parse(body, sizeof(body), 0, &r, &error), 0);
    KT_CHECK_EQ_INT(error, 0);
    KT_CHECK_EQ_INT(r.min[0], 3);
    KT_CHECK_EQ_INT(r.max[0], 9);
    KT_CHECK_EQ_INT(r.max[18], 3);
    KT_CHECK_EQ_INT(r.min[1], -1); /* Fetch not listed: unsupported */
    KT_CHECK_EQ_INT(r.max[1], -1);
}

KT_TEST(parse_v3_response_with_tagged_fields)
{
    static const uint8_t body[] = {B16(0), 0x03,   B16(1),  B16(4), B16(13), 0x00, /* Fetch 4-13 */
                                   B16(3), B16(0), B16(12), 0x00,  /* Metadata 0-12 */
                                   B32(0),                         /* throttle */
                                   0x01,   0x03,   0x01,    0x01}; /* ZkMigrationReady */
    kg_version_ranges r;
    int16_t error = -1;
    KT_CHECK_EQ_INT(kg_versions_parse(body, sizeof(body), 3, &r, &error), 0);
    KT_CHECK_EQ_INT(error, 0);
    KT_CHECK_EQ_INT(r.min[1], 4);
    KT_CHECK_EQ_INT(r.max[1], 13);
    KT_CHECK_EQ_INT(r.max[3], 12);
}

KT_TEST(parse_unsupported_version_answer_in_v0_layout)
{
    /* We asked v3; the broker did not know v3 and answered in v0 with error 35. */
    static const uint8_t body[] = {B16(35), B32(1), B16(18), B16(0), B16(2)};
    kg_version_ranges r;
    int16_t error = 0;
    KT_CHECK_EQ_INT(kg_versions_parse(body, sizeof(body), 3, &r, &error), 0);
    KT_CHECK_EQ_INT(error, 35);
    KT_CHECK_EQ_INT(r.max[18], 2);
}

KT_TEST(parse_unsupported_version_answer_in_v1_layout)
{
    /* librdkafka's mock broker answers with v0 plus throttle_time_ms (the v1 layout). */
    static const uint8_t body[] = {B16(35), B32(1), B16(18), B16(0), B16(3), B32(0)};
    kg_version_ranges r;
    int16_t error = 0;
    KT_CHECK_EQ_INT(kg_versions_parse(body, sizeof(body), 4, &r, &error), 0);
    KT_CHECK_EQ_INT(error, 35);
    KT_CHECK_EQ_INT(r.max[18], 3);
}

KT_TEST(parse_garbage_fails)
{
    static const uint8_t cut[] = {B16(0), B32(2), B16(0), B16(0)};
    kg_version_ranges r;
    KT_CHECK_EQ_INT(kg_versions_parse(cut, sizeof(cut), 0, &r, NULL), -1);
    static const uint8_t huge[] = {B16(0), B32(0x7fffffff)};
    KT_CHECK_EQ_INT(kg_versions_parse(huge, sizeof(huge), 0, &r, NULL), -1);
    KT_CHECK_EQ_INT(kg_versions_parse(NULL, 0, 2, &r, NULL), -1);
}

KT_TEST(intersection_per_api)
{
    kg_version_ranges a, b;
    kg_versions_clear(&a);
    kg_versions_clear(&b);
    a.min[0] = 0, a.max[0] = 11; /* overlap */
    b.min[0] = 3, b.max[0] = 9;
    a.min[1] = 4, a.max[1] = 17; /* overlap at the edge */
    b.min[1] = 0, b.max[1] = 4;
    a.min[2] = 0, a.max[2] = 3; /* disjoint */
    b.min[2] = 5, b.max[2] = 8;
    a.min[3] = 0, a.max[3] = 12; /* only one side */
    kg_versions_intersect(&a, &b);
    KT_CHECK_EQ_INT(a.min[0], 3);
    KT_CHECK_EQ_INT(a.max[0], 9);
    KT_CHECK_EQ_INT(a.min[1], 4);
    KT_CHECK_EQ_INT(a.max[1], 4);
    KT_CHECK_EQ_INT(a.min[2], -1);
    KT_CHECK_EQ_INT(a.max[2], -1);
    KT_CHECK_EQ_INT(a.min[3], -1);
    KT_CHECK_EQ_INT(a.min[4], -1);
    KT_CHECK(kg_versions_supported(&a, 0, 5));
    KT_CHECK(!kg_versions_supported(&a, 0, 10));
    KT_CHECK(!kg_versions_supported(&a, 2, 0));
    KT_CHECK(!kg_versions_supported(&a, 500, 0));
}

KT_TEST(intersection_with_codecs_and_two_clusters)
{
    static const uint8_t east[] = {B16(0),  B32(2),  B16(0), B16(0),
                                   B16(11), B16(18), B16(0), B16(4)};
    static const uint8_t west[] = {B16(0), B32(2), B16(0), B16(3), B16(9), B16(18), B16(0), B16(3)};
    kg_version_ranges acc, e, w;
    kg_versions_from_codecs(&acc);
    KT_CHECK_EQ_INT(kg_versions_parse(east, sizeof(east), 0, &e, NULL), 0);
    KT_CHECK_EQ_INT(kg_versions_parse(west, sizeof(west), 0, &w, NULL), 0);
    kg_versions_intersect(&acc, &e);
    kg_versions_intersect(&acc, &w);
    KT_CHECK_EQ_INT(acc.min[0], 3);
    KT_CHECK_EQ_INT(acc.max[0], 9);
    KT_CHECK_EQ_INT(acc.max[18], 3);
    KT_CHECK_EQ_INT(acc.min[3], -1);
}

/* Checks frame = size + correlation id + body, and decodes the body at version. */
static void check_frame(const kp_writer *w, int16_t version, int32_t corr, kp_arena *a,
                        kp_api_versions_response *out)
{
    kp_reader r;
    kp_reader_init(&r, w->buf, w->len);
    KT_CHECK_EQ_INT(kp_read_i32(&r), (int32_t)w->len - 4);
    KT_CHECK_EQ_INT(kp_read_i32(&r), corr); /* header v0: no tagged fields even at v3+ */
    KT_CHECK_EQ_INT(kp_api_versions_response_decode(&r, a, version, out), 0);
    KT_CHECK(r.p == r.end);
}

KT_TEST(build_response_every_version)
{
    kg_version_ranges ranges;
    kg_versions_clear(&ranges);
    ranges.min[0] = 3, ranges.max[0] = 9;
    ranges.min[18] = 0, ranges.max[18] = 4;
    ranges.min[75] = 0, ranges.max[75] = 0;
    for (int16_t v = 0; v <= kg_versions_max_apiversions(); v++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        kp_arena a;
        kp_arena_init(&a);
        KT_CHECK_EQ_INT(kg_versions_build_response(&w, v, 4242, &ranges, 0, 17), 0);
        kp_api_versions_response m;
        check_frame(&w, v, 4242, &a, &m);
        KT_CHECK_EQ_INT(m.error_code, 0);
        KT_CHECK_EQ_INT(m.api_keys.count, 3);
        KT_CHECK_EQ_INT(m.api_keys.items[0].api_key, 0);
        KT_CHECK_EQ_INT(m.api_keys.items[0].min_version, 3);
        KT_CHECK_EQ_INT(m.api_keys.items[0].max_version, 9);
        KT_CHECK_EQ_INT(m.api_keys.items[2].api_key, 75);
        KT_CHECK_EQ_INT(m.throttle_time_ms, v >= 1 ? 17 : 0);
        KT_CHECK_EQ_INT(m.supported_features.count, 0);
        KT_CHECK_EQ_INT(m.finalized_features.count, 0);
        KT_CHECK(!m.has_supported_features && !m.has_finalized_features_epoch);
        kp_writer_free(&w);
        kp_arena_free(&a);
    }
}

KT_TEST(build_unsupported_version_answer)
{
    /* What a broker sends to a client asking a too-new ApiVersions: v0, error 35, ranges. */
    kg_version_ranges ranges;
    kg_versions_from_codecs(&ranges);
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_arena a;
    kp_arena_init(&a);
    KT_CHECK_EQ_INT(
        kg_versions_build_response(&w, 0, 7, &ranges, KG_VERSIONS_UNSUPPORTED_VERSION, 0), 0);
    kp_api_versions_response m;
    check_frame(&w, 0, 7, &a, &m);
    KT_CHECK_EQ_INT(m.error_code, 35);
    int found = 0;
    for (int32_t i = 0; i < m.api_keys.count; i++)
        if (m.api_keys.items[i].api_key == 18) found = m.api_keys.items[i].max_version;
    KT_CHECK_EQ_INT(found, kg_versions_max_apiversions());
    /* The v0 layout: 4 size + 4 corr + 2 error + 4 count + 6 per key. */
    KT_CHECK_EQ_INT(w.len, 14 + 6 * (size_t)m.api_keys.count);
    kp_writer_free(&w);
    kp_arena_free(&a);
}

KT_TEST(build_refuses_versions_it_cannot_encode)
{
    kg_version_ranges ranges;
    kg_versions_from_codecs(&ranges);
    kp_writer w;
    kp_writer_init(&w, 0);
    KT_CHECK_EQ_INT(kg_versions_build_response(&w, 5, 1, &ranges, 0, 0), -1);
    KT_CHECK_EQ_INT(kg_versions_build_response(&w, -1, 1, &ranges, 0, 0), -1);
    KT_CHECK_EQ_INT(w.len, 0);
    kp_writer_free(&w);
}

KT_MAIN()
