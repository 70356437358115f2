/* Broker address rewriting: no backend host or port survives, ports follow the node map, and
 * everything else (unknown tagged fields, records) passes unchanged. */
#include "kt.h"

#include <stdint.h>

#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "route/kg_rewrite.h"

#define KGATE_HOST "gw.example"
#define BASE_PORT 19092
#define FALLBACK_PORT 19092
#define BACKEND "kafka-east-1.internal"

enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_METADATA = 3,
    API_FIND_COORDINATOR = 10,
    API_DESCRIBE_CLUSTER = 60
};

/* Nodes 0..31 are served on BASE_PORT + 1 + id; others are outside the range. */
static int port_for_node(void *ctx, int32_t node_id)
{
    int *calls = ctx;
    (*calls)++;
    return node_id >= 0 && node_id <= 31 ? BASE_PORT + 1 + node_id : -1;
}

typedef struct seen_log {
    int n;
    int32_t node[8];
    int32_t port[8];
    char host[8][64];
    int rack_len[8];
} seen_log;

static void on_seen(void *ctx, int32_t node_id, const kp_str *host, int32_t port,
                    const kp_str *rack)
{
    seen_log *log = ctx;
    if (log->n == 8) return;
    log->node[log->n] = node_id;
    log->port[log->n] = port;
    snprintf(log->host[log->n], sizeof(log->host[0]), "%.*s", host->len < 0 ? 0 : host->len,
             host->ptr ? host->ptr : "");
    log->rack_len[log->n] = rack->len;
    log->n++;
}

typedef struct fixture {
    kp_arena arena;
    kp_writer in, out;
    int port_calls;
    kg_node_map map;
    seen_log seen;
} fixture;

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof(*f));
    kp_arena_init(&f->arena);
    kp_writer_init(&f->in, 0);
    kp_writer_init(&f->out, 0);
    f->map = (kg_node_map){KGATE_HOST, port_for_node, &f->port_calls, FALLBACK_PORT};
}

static void fixture_free(fixture *f)
{
    kp_arena_free(&f->arena);
    kp_writer_free(&f->in);
    kp_writer_free(&f->out);
}

static int rewrite(fixture *f, int16_t api, int16_t version)
{
    return kg_rewrite_response(api, version, f->in.buf, f->in.len, &f->map, on_seen, &f->seen,
                               &f->out);
}

static bool contains(const kp_writer *w, const char *needle)
{
    return memmem(w->buf, w->len, needle, strlen(needle)) != NULL;
}

static kp_reader out_reader(const fixture *f)
{
    kp_reader r;
    kp_reader_init(&r, f->out.buf, f->out.len);
    return r;
}

static kp_str s(const char *c)
{
    return kp_str_c(c);
}

static kp_tagged *tag(kp_arena *a, uint32_t t, const char *data)
{
    kp_tagged *x = kp_arena_alloc(a, sizeof(*x));
    x->tag = t;
    x->data = (kp_bytes){(const uint8_t *)data, (int32_t)strlen(data)};
    x->next = NULL;
    return x;
}

KT_TEST(wanted_for_address_bearing_apis_only)
{
    KT_CHECK(kg_rewrite_wanted(API_METADATA, 0));
    KT_CHECK(kg_rewrite_wanted(API_METADATA, 12));
    KT_CHECK(kg_rewrite_wanted(API_FIND_COORDINATOR, 0));
    KT_CHECK(kg_rewrite_wanted(API_FIND_COORDINATOR, 6));
    KT_CHECK(kg_rewrite_wanted(API_DESCRIBE_CLUSTER, 1));
    KT_CHECK(!kg_rewrite_wanted(API_PRODUCE, 9));
    KT_CHECK(kg_rewrite_wanted(API_PRODUCE, 10));
    KT_CHECK(!kg_rewrite_wanted(API_FETCH, 15));
    KT_CHECK(kg_rewrite_wanted(API_FETCH, 16));
    KT_CHECK(!kg_rewrite_wanted(18, 3));
    KT_CHECK(!kg_rewrite_wanted(2, 8));
}

/* A Metadata response with brokers 0, 1 and 40 (outside the node range). */
static void build_metadata(fixture *f, int16_t version)
{
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    kp_metadata_response_metadata_response_broker brokers[3];
    const int32_t ids[3] = {0, 1, 40};
    for (int i = 0; i < 3; i++) {
        memset(&brokers[i], 0, sizeof(brokers[i]));
        brokers[i].node_id = ids[i];
        brokers[i].host = s(BACKEND);
        brokers[i].port = 9092 + i;
        brokers[i].rack = i == 1 ? s("use1-az1") : KP_STR_NULL;
    }
    if (version >= 9) /* a tag a future broker might send: must survive */
        brokers[1].unknown_tags = tag(&f->arena, 4, "xyz");
    m.brokers.count = 3;
    m.brokers.items = brokers;
    m.controller_id = 1;
    if (version >= 2) m.cluster_id = s("east-cluster");
    if (version >= 9) m.unknown_tags = tag(&f->arena, 9, "top");
    kp_metadata_response_encode(&f->in, version, &m);
}

static void check_metadata(int16_t version)
{
    fixture f;
    fixture_init(&f);
    build_metadata(&f, version);
    KT_CHECK_EQ_INT(f.in.err, KP_OK);
    KT_CHECK(contains(&f.in, BACKEND));
    KT_CHECK_EQ_INT(rewrite(&f, API_METADATA, version), 1);
    KT_CHECK(!contains(&f.out, BACKEND));
    KT_CHECK(contains(&f.out, KGATE_HOST));
    kp_metadata_response m;
    kp_reader r = out_reader(&f);
    KT_CHECK_EQ_INT(kp_metadata_response_decode(&r, &f.arena, version, &m), 0);
    KT_CHECK(r.p == r.end);
    KT_CHECK_EQ_INT(m.brokers.count, 3);
    for (int i = 0; i < m.brokers.count; i++)
        KT_CHECK(kp_str_eq_c(m.brokers.items[i].host, KGATE_HOST));
    KT_CHECK_EQ_INT(m.brokers.items[0].port, BASE_PORT + 1);
    KT_CHECK_EQ_INT(m.brokers.items[1].port, BASE_PORT + 2);
    KT_CHECK_EQ_INT(m.brokers.items[2].port, FALLBACK_PORT); /* node 40: outside the range */
    KT_CHECK_EQ_INT(m.controller_id, version >= 1 ? 1 : -1);
    if (version >= 1) KT_CHECK(kp_str_eq_c(m.brokers.items[1].rack, "use1-az1"));
    if (version >= 9) {
        KT_CHECK(m.brokers.items[1].unknown_tags && m.brokers.items[1].unknown_tags->tag == 4);
        KT_CHECK(m.unknown_tags && m.unknown_tags->tag == 9);
    }
    /* The engine learned the real addresses. */
    KT_CHECK_EQ_INT(f.seen.n, 3);
    KT_CHECK_EQ_STR(f.seen.host[0], BACKEND);
    KT_CHECK_EQ_INT(f.seen.port[2], 9094);
    KT_CHECK_EQ_INT(f.seen.node[2], 40);
    KT_CHECK_EQ_INT(f.seen.rack_len[0], -1);
    KT_CHECK_EQ_INT(f.seen.rack_len[1], version >= 1 ? 8 : -1);
    fixture_free(&f);
}

KT_TEST(metadata_every_version_rewritten)
{
    for (int16_t v = 0; v <= 12; v++)
        check_metadata(v);
}

/* A broker plus one topic whose partition has leader epoch 7, hidden or passed through. */
static int32_t metadata_epoch_after_rewrite(int16_t version, int hide)
{
    fixture f;
    fixture_init(&f);
    f.map.hide_leader_epochs = hide;
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    kp_metadata_response_metadata_response_broker broker;
    memset(&broker, 0, sizeof(broker));
    broker.node_id = 0;
    broker.host = s(BACKEND);
    broker.port = 9092;
    kp_metadata_response_metadata_response_partition part;
    memset(&part, 0, sizeof(part));
    part.leader_epoch = 7;
    kp_metadata_response_metadata_response_topic topic;
    memset(&topic, 0, sizeof(topic));
    topic.name = s("orders");
    topic.partitions.count = 1;
    topic.partitions.items = &part;
    m.brokers.count = 1;
    m.brokers.items = &broker;
    m.topics.count = 1;
    m.topics.items = &topic;
    kp_metadata_response_encode(&f.in, version, &m);
    int32_t epoch = -2;
    if (rewrite(&f, API_METADATA, version) == 1) {
        kp_metadata_response out;
        kp_reader r = out_reader(&f);
        if (kp_metadata_response_decode(&r, &f.arena, version, &out) == 0 && out.topics.count == 1)
            epoch = out.topics.items[0].partitions.items[0].leader_epoch;
    }
    fixture_free(&f);
    return epoch;
}

KT_TEST(metadata_leader_epochs_hidden_on_request)
{
    for (int16_t v = 7; v <= 12; v++) {
        KT_CHECK_EQ_INT(metadata_epoch_after_rewrite(v, 1), -1);
        KT_CHECK_EQ_INT(metadata_epoch_after_rewrite(v, 0), 7);
    }
}

KT_TEST(metadata_without_brokers_needs_no_change)
{
    fixture f;
    fixture_init(&f);
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    kp_metadata_response_encode(&f.in, 12, &m);
    KT_CHECK_EQ_INT(rewrite(&f, API_METADATA, 12), 0);
    KT_CHECK_EQ_INT(f.out.len, 0);
    fixture_free(&f);
}

/* With the virtual cluster's id set, every Metadata v2+ and DescribeCluster answer carries it,
 * even one without brokers; v0-1 have no such field and stay as they are. */
KT_TEST(cluster_id_is_the_virtual_clusters)
{
    for (int16_t v = 0; v <= 12; v++) {
        fixture f;
        fixture_init(&f);
        f.map.cluster_id = "vc-stable-id";
        kp_metadata_response m;
        kp_metadata_response_init(&m);
        if (v >= 2) m.cluster_id = s("east-physical");
        kp_metadata_response_encode(&f.in, v, &m);
        KT_CHECK_EQ_INT(rewrite(&f, API_METADATA, v), v >= 2 ? 1 : 0);
        if (v >= 2) {
            kp_reader r = out_reader(&f);
            KT_CHECK_EQ_INT(kp_metadata_response_decode(&r, &f.arena, v, &m), 0);
            KT_CHECK(kp_str_eq_c(m.cluster_id, "vc-stable-id"));
        }
        fixture_free(&f);
    }
    fixture f;
    fixture_init(&f);
    f.map.cluster_id = "vc-stable-id";
    kp_describe_cluster_response d;
    kp_describe_cluster_response_init(&d);
    d.cluster_id = s("west-physical");
    kp_describe_cluster_response_encode(&f.in, 1, &d);
    KT_CHECK_EQ_INT(rewrite(&f, API_DESCRIBE_CLUSTER, 1), 1);
    kp_reader r = out_reader(&f);
    KT_CHECK_EQ_INT(kp_describe_cluster_response_decode(&r, &f.arena, 1, &d), 0);
    KT_CHECK(kp_str_eq_c(d.cluster_id, "vc-stable-id"));
    fixture_free(&f);
}

KT_TEST(find_coordinator_v0_to_v3_top_level)
{
    for (int16_t v = 0; v <= 3; v++) {
        fixture f;
        fixture_init(&f);
        kp_find_coordinator_response m;
        kp_find_coordinator_response_init(&m);
        m.node_id = 2;
        m.host = s(BACKEND);
        m.port = 9095;
        kp_find_coordinator_response_encode(&f.in, v, &m);
        KT_CHECK_EQ_INT(rewrite(&f, API_FIND_COORDINATOR, v), 1);
        KT_CHECK(!contains(&f.out, BACKEND));
        kp_reader r = out_reader(&f);
        KT_CHECK_EQ_INT(kp_find_coordinator_response_decode(&r, &f.arena, v, &m), 0);
        KT_CHECK(r.p == r.end);
        KT_CHECK(kp_str_eq_c(m.host, KGATE_HOST));
        KT_CHECK_EQ_INT(m.port, BASE_PORT + 3);
        KT_CHECK_EQ_INT(m.node_id, 2);
        KT_CHECK_EQ_INT(f.seen.n, 1);
        fixture_free(&f);
    }
}

KT_TEST(find_coordinator_without_coordinator_leaks_nothing)
{
    /* COORDINATOR_NOT_AVAILABLE: node -1; whatever host the broker put there is replaced. */
    fixture f;
    fixture_init(&f);
    kp_find_coordinator_response m;
    kp_find_coordinator_response_init(&m);
    m.error_code = 15;
    m.node_id = -1;
    m.host = s(BACKEND);
    m.port = -1;
    kp_find_coordinator_response_encode(&f.in, 1, &m);
    KT_CHECK_EQ_INT(rewrite(&f, API_FIND_COORDINATOR, 1), 1);
    KT_CHECK(!contains(&f.out, BACKEND));
    kp_reader r = out_reader(&f);
    KT_CHECK_EQ_INT(kp_find_coordinator_response_decode(&r, &f.arena, 1, &m), 0);
    KT_CHECK_EQ_INT(m.error_code, 15);
    KT_CHECK_EQ_INT(m.node_id, -1);
    KT_CHECK(kp_str_eq_c(m.host, KGATE_HOST));
    KT_CHECK_EQ_INT(m.port, FALLBACK_PORT);
    KT_CHECK_EQ_INT(f.seen.n, 0); /* not a broker */
    fixture_free(&f);
}

KT_TEST(find_coordinator_v4_coordinators_list)
{
    for (int16_t v = 4; v <= 6; v++) {
        fixture f;
        fixture_init(&f);
        kp_find_coordinator_response m;
        kp_find_coordinator_response_init(&m);
        kp_find_coordinator_response_coordinator c[2];
        memset(c, 0, sizeof(c));
        c[0].key = s("group-a");
        c[0].node_id = 5;
        c[0].host = s(BACKEND);
        c[0].port = 9092;
        c[0].error_message = KP_STR_NULL;
        c[0].unknown_tags = tag(&f.arena, 3, "keep");
        c[1].key = s("group-b");
        c[1].node_id = -1;
        c[1].host = s("");
        c[1].port = -1;
        c[1].error_code = 15;
        c[1].error_message = s("not available");
        m.coordinators.items = c;
        m.coordinators.count = 2;
        kp_find_coordinator_response_encode(&f.in, v, &m);
        KT_CHECK_EQ_INT(rewrite(&f, API_FIND_COORDINATOR, v), 1);
        KT_CHECK(!contains(&f.out, BACKEND));
        kp_reader r = out_reader(&f);
        KT_CHECK_EQ_INT(kp_find_coordinator_response_decode(&r, &f.arena, v, &m), 0);
        KT_CHECK_EQ_INT(m.coordinators.count, 2);
        KT_CHECK(kp_str_eq_c(m.coordinators.items[0].key, "group-a"));
        KT_CHECK(kp_str_eq_c(m.coordinators.items[0].host, KGATE_HOST));
        KT_CHECK_EQ_INT(m.coordinators.items[0].port, BASE_PORT + 6);
        KT_CHECK(m.coordinators.items[0].unknown_tags &&
                 m.coordinators.items[0].unknown_tags->tag == 3);
        KT_CHECK(kp_str_eq_c(m.coordinators.items[1].host, KGATE_HOST));
        KT_CHECK_EQ_INT(m.coordinators.items[1].port, FALLBACK_PORT);
        KT_CHECK(kp_str_eq_c(m.coordinators.items[1].error_message, "not available"));
        fixture_free(&f);
    }
}

KT_TEST(describe_cluster_brokers)
{
    for (int16_t v = 0; v <= 1; v++) {
        fixture f;
        fixture_init(&f);
        kp_describe_cluster_response m;
        kp_describe_cluster_response_init(&m);
        kp_describe_cluster_response_describe_cluster_broker b[2];
        memset(b, 0, sizeof(b));
        for (int i = 0; i < 2; i++) {
            b[i].broker_id = 10 + i;
            b[i].host = s(BACKEND);
            b[i].port = 9092;
            b[i].rack = KP_STR_NULL;
        }
        m.brokers.items = b;
        m.brokers.count = 2;
        m.cluster_id = s("east");
        kp_describe_cluster_response_encode(&f.in, v, &m);
        KT_CHECK_EQ_INT(rewrite(&f, API_DESCRIBE_CLUSTER, v), 1);
        KT_CHECK(!contains(&f.out, BACKEND));
        kp_reader r = out_reader(&f);
        KT_CHECK_EQ_INT(kp_describe_cluster_response_decode(&r, &f.arena, v, &m), 0);
        KT_CHECK_EQ_INT(m.brokers.items[1].broker_id, 11);
        KT_CHECK_EQ_INT(m.brokers.items[1].port, BASE_PORT + 12);
        KT_CHECK(kp_str_eq_c(m.brokers.items[0].host, KGATE_HOST));
        KT_CHECK(kp_str_eq_c(m.cluster_id, "east"));
        fixture_free(&f);
    }
}

/* A Fetch response with records, and NodeEndpoints when asked. */
static const uint8_t records[] = {0,    0,    0,    0,    0, 0,    0,    7,    0,    0,    0,   40,
                                  0xff, 0xff, 0xff, 0xff, 2, 0xca, 0xfe, 0xba, 0xbe, 0x11, 0x22};

static void build_fetch(fixture *f, int16_t version, int endpoints)
{
    kp_fetch_response m;
    kp_fetch_response_init(&m);
    kp_fetch_response_fetchable_topic_response *t = kp_arena_calloc(&f->arena, 1, sizeof(*t));
    kp_fetch_response_partition_data *p = kp_arena_calloc(&f->arena, 1, sizeof(*p));
    p->high_watermark = 8;
    p->last_stable_offset = 8;
    p->aborted_transactions.count = -1;
    p->preferred_read_replica = -1;
    p->records = (kp_bytes){records, sizeof(records)};
    p->current_leader = (kp_fetch_response_leader_id_and_epoch){3, 9, NULL};
    t->topic_id.b[0] = 0x42;
    t->partitions.items = p;
    t->partitions.count = 1;
    m.responses.items = t;
    m.responses.count = 1;
    m.session_id = 77;
    if (endpoints) {
        kp_fetch_response_node_endpoint *e = kp_arena_calloc(&f->arena, 2, sizeof(*e));
        e[0] = (kp_fetch_response_node_endpoint){3, s(BACKEND), 9092, s("az1"), NULL};
        e[1] = (kp_fetch_response_node_endpoint){99, s(BACKEND), 9093, KP_STR_NULL,
                                                 tag(&f->arena, 2, "ep")};
        m.node_endpoints.items = e;
        m.node_endpoints.count = 2;
    }
    m.unknown_tags = tag(&f->arena, 7, "later");
    kp_fetch_response_encode(&f->in, version, &m);
}

KT_TEST(fetch_node_endpoints_rewritten_records_untouched)
{
    for (int16_t v = 16; v <= 17; v++) {
        fixture f;
        fixture_init(&f);
        build_fetch(&f, v, 1);
        KT_CHECK_EQ_INT(f.in.err, KP_OK);
        KT_CHECK_EQ_INT(rewrite(&f, API_FETCH, v), 1);
        KT_CHECK(!contains(&f.out, BACKEND));
        kp_fetch_response m;
        kp_reader r = out_reader(&f);
        KT_CHECK_EQ_INT(kp_fetch_response_decode(&r, &f.arena, v, &m), 0);
        KT_CHECK(r.p == r.end);
        const kp_fetch_response_partition_data *p = &m.responses.items[0].partitions.items[0];
        KT_CHECK_EQ_INT(p->records.len, sizeof(records));
        KT_CHECK_EQ_MEM(p->records.ptr, records, sizeof(records));
        KT_CHECK(p->has_current_leader && p->current_leader.leader_epoch == 9);
        KT_CHECK_EQ_INT(m.session_id, 77);
        KT_CHECK_EQ_INT(m.node_endpoints.count, 2);
        KT_CHECK(kp_str_eq_c(m.node_endpoints.items[0].host, KGATE_HOST));
        KT_CHECK_EQ_INT(m.node_endpoints.items[0].port, BASE_PORT + 4);
        KT_CHECK(kp_str_eq_c(m.node_endpoints.items[0].rack, "az1"));
        KT_CHECK_EQ_INT(m.node_endpoints.items[1].port, FALLBACK_PORT); /* node 99 */
        KT_CHECK(m.node_endpoints.items[1].unknown_tags &&
                 m.node_endpoints.items[1].unknown_tags->tag == 2);
        KT_CHECK(m.unknown_tags && m.unknown_tags->tag == 7 && !m.unknown_tags->next);
        KT_CHECK_EQ_INT(f.seen.n, 2);
        KT_CHECK_EQ_INT(f.seen.node[1], 99);
        KT_CHECK_EQ_INT(f.seen.port[1], 9093);

        /* Everything before the top-level tagged fields is copied, not re-encoded. */
        kp_reader orig;
        kp_reader_init(&orig, f.in.buf, f.in.len);
        kp_fetch_response o;
        KT_CHECK_EQ_INT(kp_fetch_response_decode(&orig, &f.arena, v, &o), 0);
        size_t head = (size_t)(orig.tags_at - f.in.buf);
        KT_CHECK(head > sizeof(records));
        KT_CHECK(f.out.len > head);
        KT_CHECK_EQ_MEM(f.out.buf, f.in.buf, head);
        fixture_free(&f);
    }
}

KT_TEST(fetch_without_endpoints_is_forwarded_as_is)
{
    fixture f;
    fixture_init(&f);
    build_fetch(&f, 16, 0);
    KT_CHECK_EQ_INT(rewrite(&f, API_FETCH, 16), 0);
    KT_CHECK_EQ_INT(f.out.len, 0);
    KT_CHECK_EQ_INT(f.port_calls, 0);
    /* Older versions cannot carry endpoints at all. */
    kp_writer_reset(&f.in);
    build_fetch(&f, 15, 0);
    KT_CHECK_EQ_INT(rewrite(&f, API_FETCH, 15), 0);
    fixture_free(&f);
}

KT_TEST(produce_node_endpoints_rewritten)
{
    fixture f;
    fixture_init(&f);
    kp_produce_response m;
    kp_produce_response_init(&m);
    kp_produce_response_topic_produce_response t;
    memset(&t, 0, sizeof(t));
    t.name = s("orders");
    kp_produce_response_partition_produce_response p;
    memset(&p, 0, sizeof(p));
    p.error_code = 6; /* NOT_LEADER_OR_FOLLOWER: the client moves to the leader below */
    p.base_offset = p.log_append_time_ms = p.log_start_offset = -1;
    p.error_message = KP_STR_NULL;
    p.current_leader = (kp_produce_response_leader_id_and_epoch){4, 2, NULL};
    t.partition_responses.items = &p;
    t.partition_responses.count = 1;
    m.responses.items = &t;
    m.responses.count = 1;
    kp_produce_response_node_endpoint e = {4, s(BACKEND), 9092, KP_STR_NULL, NULL};
    m.node_endpoints.items = &e;
    m.node_endpoints.count = 1;
    kp_produce_response_encode(&f.in, 11, &m);
    KT_CHECK_EQ_INT(rewrite(&f, API_PRODUCE, 11), 1);
    KT_CHECK(!contains(&f.out, BACKEND));
    kp_reader r = out_reader(&f);
    KT_CHECK_EQ_INT(kp_produce_response_decode(&r, &f.arena, 11, &m), 0);
    KT_CHECK(r.p == r.end);
    KT_CHECK_EQ_INT(m.node_endpoints.count, 1);
    KT_CHECK_EQ_INT(m.node_endpoints.items[0].node_id, 4);
    KT_CHECK_EQ_INT(m.node_endpoints.items[0].port, BASE_PORT + 5);
    KT_CHECK_EQ_INT(m.responses.items[0].partition_responses.items[0].current_leader.leader_id, 4);
    fixture_free(&f);

    /* No endpoints (the common, successful case): nothing to do. */
    fixture_init(&f);
    kp_produce_response_init(&m);
    kp_produce_response_encode(&f.in, 10, &m);
    KT_CHECK_EQ_INT(rewrite(&f, API_PRODUCE, 10), 0);
    fixture_free(&f);
}

KT_TEST(undecodable_bodies_are_refused)
{
    fixture f;
    fixture_init(&f);
    build_metadata(&f, 9);
    size_t full = f.in.len;
    /* Truncated. */
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_METADATA, 9, f.in.buf, full - 1, &f.map, NULL, NULL, &f.out), -1);
    /* Trailing garbage is refused; a little zero padding (librdkafka 2.12's mock) is not. */
    kp_write_i8(&f.in, 7);
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_METADATA, 9, f.in.buf, f.in.len, &f.map, NULL, NULL, &f.out), -1);
    f.in.buf[full] = 0;
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_METADATA, 9, f.in.buf, f.in.len, &f.map, NULL, NULL, &f.out), 1);
    kp_reader padded = out_reader(&f);
    kp_metadata_response m;
    KT_CHECK_EQ_INT(kp_metadata_response_decode(&padded, &f.arena, 9, &m), 0);
    KT_CHECK(padded.p == padded.end); /* the padding is not carried over */
    f.out.len = 0;
    /* Wrong version for the bytes, and a version without a codec. */
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_METADATA, 3, f.in.buf, full, &f.map, NULL, NULL, &f.out), -1);
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_METADATA, 13, f.in.buf, full, &f.map, NULL, NULL, &f.out), -1);
    KT_CHECK_EQ_INT(
        kg_rewrite_response(API_FETCH, 16, (const uint8_t *)"", 0, &f.map, NULL, NULL, &f.out), -1);
    KT_CHECK_EQ_INT(f.out.len, 0);
    KT_CHECK_EQ_INT(f.out.err, KP_OK);
    fixture_free(&f);
}

KT_TEST(rewritten_body_is_appended_after_existing_bytes)
{
    fixture f;
    fixture_init(&f);
    build_metadata(&f, 1);
    kp_write_i32(&f.out, 0x01020304); /* e.g. a response header the engine wrote first */
    KT_CHECK_EQ_INT(rewrite(&f, API_METADATA, 1), 1);
    KT_CHECK_EQ_MEM(f.out.buf, ((const uint8_t[]){1, 2, 3, 4}), 4);
    kp_reader r;
    kp_reader_init(&r, f.out.buf + 4, f.out.len - 4);
    kp_metadata_response m;
    KT_CHECK_EQ_INT(kp_metadata_response_decode(&r, &f.arena, 1, &m), 0);
    KT_CHECK(r.p == r.end);
    fixture_free(&f);
}

KT_MAIN()
