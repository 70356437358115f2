#include "route/kg_rewrite.h"

#include <string.h>

#include "kp_msgs.h"

enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_METADATA = 3,
    API_OFFSET_COMMIT = 8,
    API_HEARTBEAT = 12,
    API_SYNC_GROUP = 14,
    API_FIND_COORDINATOR = 10,
    API_DESCRIBE_CLUSTER = 60,
};

/* First versions whose responses carry KIP-951 NodeEndpoints. */
#define PRODUCE_ENDPOINTS_VERSION 10
#define FETCH_ENDPOINTS_VERSION 16
#define NODE_ENDPOINTS_TAG 0

typedef struct rewriter {
    const kg_node_map *map;
    kg_broker_seen_fn seen;
    void *seen_ctx;
    kp_str host;
    kp_arena arena;
    kp_reader r;
} rewriter;

int kg_rewrite_wanted(int16_t api_key, int16_t api_version)
{
    switch (api_key) {
    case API_METADATA:
    case API_FIND_COORDINATOR:
    case API_DESCRIBE_CLUSTER:
        return 1;
    case API_PRODUCE:
        return api_version >= PRODUCE_ENDPOINTS_VERSION;
    case API_FETCH:
        return api_version >= FETCH_ENDPOINTS_VERSION;
    default:
        return 0;
    }
}

/* Reports the real address, then replaces it with kgate's address for that node. A node id
 * below 0 (no coordinator) also gets kgate's address: a backend address must never leak. */
static void rewrite_address(const rewriter *rw, int32_t node_id, kp_str *host, int32_t *port,
                            const kp_str *rack)
{
    static const kp_str no_rack = {NULL, -1};
    if (node_id >= 0 && rw->seen)
        rw->seen(rw->seen_ctx, node_id, host, *port, rack ? rack : &no_rack);
    int p = -1;
    if (node_id >= 0 && rw->map->port_for_node) p = rw->map->port_for_node(rw->map->ctx, node_id);
    *host = rw->host;
    *port = p >= 0 ? p : rw->map->fallback_port;
}

/* A decode is good when it used the whole body, give or take a little zero padding:
 * librdkafka 2.12's mock broker ends flexible Metadata responses with an extra zero byte,
 * which Kafka's clients ignore. Anything else left over means the bytes were not this
 * message at this version. The rewritten body does not carry the padding. */
#define MAX_ZERO_PADDING 8

static bool decoded_all(const rewriter *rw, int rc)
{
    size_t left = (size_t)(rw->r.end - rw->r.p);
    if (rc != 0 || left > MAX_ZERO_PADDING) return false;
    for (size_t i = 0; i < left; i++)
        if (rw->r.p[i] != 0) return false;
    return true;
}

/* Encoding appends to out; on failure out is put back as it was. */
static int finish_encode(kp_writer *out, size_t start)
{
    if (out->err) {
        out->err = KP_OK;
        out->len = start;
        return -1;
    }
    return 1;
}

/* Epochs from one cluster mean nothing on the other: unknown (-1) makes clients skip epoch
 * validation instead of mistaking a switch for log truncation. */
static void hide_leader_epochs(kp_metadata_response *m)
{
    for (int32_t t = 0; t < m->topics.count; t++)
        for (int32_t p = 0; p < m->topics.items[t].partitions.count; p++)
            m->topics.items[t].partitions.items[p].leader_epoch = -1;
}

/* The answer's cluster id (a field at this version when HAS_FIELD) becomes the virtual
 * cluster's, so a switch never shows clients another cluster: 1 when that changed it. */
static int own_cluster_id(const rewriter *rw, int has_field, kp_str *id)
{
    const char *own = rw->map->cluster_id;
    if (!has_field || !own) return 0;
    size_t n = strlen(own);
    if (id->len >= 0 && (size_t)id->len == n && memcmp(id->ptr, own, n) == 0) return 0;
    *id = kp_str_c(own);
    return 1;
}

static int rewrite_metadata(rewriter *rw, int16_t version, kp_writer *out)
{
    kp_metadata_response m;
    if (!decoded_all(rw, kp_metadata_response_decode(&rw->r, &rw->arena, version, &m))) return -1;
    for (int32_t i = 0; rw->map->topic_seen && i < m.topics.count; i++)
        if (m.topics.items[i].error_code == 0 && m.topics.items[i].name.len > 0)
            rw->map->topic_seen(rw->map->topic_ctx, &m.topics.items[i].name,
                                m.topics.items[i].partitions.count);
    if (!own_cluster_id(rw, version >= 2, &m.cluster_id) && m.brokers.count <= 0) return 0;
    for (int32_t i = 0; i < m.brokers.count; i++) {
        kp_metadata_response_metadata_response_broker *b = &m.brokers.items[i];
        rewrite_address(rw, b->node_id, &b->host, &b->port, &b->rack);
    }
    if (rw->map->hide_leader_epochs) hide_leader_epochs(&m);
    size_t start = out->len;
    kp_metadata_response_encode(out, version, &m);
    return finish_encode(out, start);
}

static int rewrite_find_coordinator(rewriter *rw, int16_t version, kp_writer *out)
{
    kp_find_coordinator_response m;
    if (!decoded_all(rw, kp_find_coordinator_response_decode(&rw->r, &rw->arena, version, &m)))
        return -1;
    if (version < 4) {
        rewrite_address(rw, m.node_id, &m.host, &m.port, NULL);
    } else {
        if (m.coordinators.count <= 0) return 0;
        for (int32_t i = 0; i < m.coordinators.count; i++) {
            kp_find_coordinator_response_coordinator *c = &m.coordinators.items[i];
            rewrite_address(rw, c->node_id, &c->host, &c->port, NULL);
        }
    }
    size_t start = out->len;
    kp_find_coordinator_response_encode(out, version, &m);
    return finish_encode(out, start);
}

static int rewrite_describe_cluster(rewriter *rw, int16_t version, kp_writer *out)
{
    kp_describe_cluster_response m;
    if (!decoded_all(rw, kp_describe_cluster_response_decode(&rw->r, &rw->arena, version, &m)))
        return -1;
    if (!own_cluster_id(rw, 1, &m.cluster_id) && m.brokers.count <= 0) return 0;
    for (int32_t i = 0; i < m.brokers.count; i++) {
        kp_describe_cluster_response_describe_cluster_broker *b = &m.brokers.items[i];
        rewrite_address(rw, b->broker_id, &b->host, &b->port, &b->rack);
    }
    size_t start = out->len;
    kp_describe_cluster_response_encode(out, version, &m);
    return finish_encode(out, start);
}

/* NodeEndpoint has the same layout in Produce and Fetch responses. */
typedef struct endpoint {
    int32_t node_id;
    kp_str host;
    int32_t port;
    kp_str rack;
    const kp_tagged *tags;
} endpoint;

/* Writes the body with a new top-level tagged section: the original bytes up to that section
 * (records included, untouched), then NodeEndpoints (tag 0, always the lowest) and the unknown
 * tagged fields the broker sent. */
static int splice_endpoints(rewriter *rw, const uint8_t *body, endpoint *eps, int32_t n,
                            const kp_tagged *unknown, kp_writer *out)
{
    for (int32_t i = 0; i < n; i++)
        rewrite_address(rw, eps[i].node_id, &eps[i].host, &eps[i].port, &eps[i].rack);
    size_t start = out->len;
    kp_write_raw(out, body, (size_t)(rw->r.tags_at - body));
    kp_write_uvarint(out, 1 + kp_tagged_count(unknown));
    unknown = kp_write_unknown_below(out, unknown, NODE_ENDPOINTS_TAG);
    size_t mark = kp_writer_tag_begin(out, NODE_ENDPOINTS_TAG);
    kp_write_array_len(out, true, false, n);
    for (int32_t i = 0; i < n; i++) {
        kp_write_i32(out, eps[i].node_id);
        kp_write_str(out, true, false, eps[i].host);
        kp_write_i32(out, eps[i].port);
        kp_write_str(out, true, true, eps[i].rack);
        kp_write_tagged_fields(out, eps[i].tags);
    }
    kp_writer_tag_end(out, mark);
    kp_write_unknown_rest(out, unknown);
    return finish_encode(out, start);
}

static endpoint *endpoints_alloc(rewriter *rw, int32_t n)
{
    return kp_arena_calloc(&rw->arena, (size_t)n, sizeof(endpoint));
}

static int rewrite_produce(rewriter *rw, const uint8_t *body, int16_t version, kp_writer *out)
{
    kp_produce_response m;
    if (!decoded_all(rw, kp_produce_response_decode(&rw->r, &rw->arena, version, &m))) return -1;
    int32_t n = m.node_endpoints.count;
    if (n <= 0) return 0;
    endpoint *eps = endpoints_alloc(rw, n);
    if (!eps) return -1;
    for (int32_t i = 0; i < n; i++) {
        const kp_produce_response_node_endpoint *e = &m.node_endpoints.items[i];
        eps[i] = (endpoint){e->node_id, e->host, e->port, e->rack, e->unknown_tags};
    }
    return splice_endpoints(rw, body, eps, n, m.unknown_tags, out);
}

static int rewrite_fetch(rewriter *rw, const uint8_t *body, int16_t version, kp_writer *out)
{
    kp_fetch_response m;
    if (!decoded_all(rw, kp_fetch_response_decode(&rw->r, &rw->arena, version, &m))) return -1;
    int32_t n = m.node_endpoints.count;
    if (n <= 0) return 0;
    endpoint *eps = endpoints_alloc(rw, n);
    if (!eps) return -1;
    for (int32_t i = 0; i < n; i++) {
        const kp_fetch_response_node_endpoint *e = &m.node_endpoints.items[i];
        eps[i] = (endpoint){e->node_id, e->host, e->port, e->rack, e->unknown_tags};
    }
    return splice_endpoints(rw, body, eps, n, m.unknown_tags, out);
}

int kg_rewrite_response(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                        const kg_node_map *map, kg_broker_seen_fn seen, void *seen_ctx,
                        kp_writer *out)
{
    if (!kg_rewrite_wanted(api_key, api_version)) return 0;
    if (!kp_api_supported(api_key, api_version)) return -1;
    rewriter rw = {.map = map, .seen = seen, .seen_ctx = seen_ctx, .host = kp_str_c(map->host)};
    kp_arena_init(&rw.arena);
    kp_reader_init(&rw.r, body, len);
    int rc;
    switch (api_key) {
    case API_METADATA:
        rc = rewrite_metadata(&rw, api_version, out);
        break;
    case API_FIND_COORDINATOR:
        rc = rewrite_find_coordinator(&rw, api_version, out);
        break;
    case API_DESCRIBE_CLUSTER:
        rc = rewrite_describe_cluster(&rw, api_version, out);
        break;
    case API_PRODUCE:
        rc = rewrite_produce(&rw, body, api_version, out);
        break;
    default:
        rc = rewrite_fetch(&rw, body, api_version, out);
        break;
    }
    kp_arena_free(&rw.arena);
    return rc;
}

/* ---------------------------------------------------------------- group errors */

#define ERR_UNKNOWN_MEMBER_ID 25
#define ERR_GROUP_ID_NOT_FOUND 69

int kg_rewrite_group_wanted(int16_t api_key)
{
    return api_key == API_HEARTBEAT || api_key == API_SYNC_GROUP || api_key == API_OFFSET_COMMIT;
}

static int translate_group_error(int16_t *error_code)
{
    if (*error_code != ERR_GROUP_ID_NOT_FOUND) return 0;
    *error_code = ERR_UNKNOWN_MEMBER_ID;
    return 1;
}

static int group_errors_heartbeat(kp_reader *r, kp_arena *a, int16_t v, kp_writer *out)
{
    kp_heartbeat_response m;
    if (kp_heartbeat_response_decode(r, a, v, &m) < 0) return -1;
    if (!translate_group_error(&m.error_code)) return 0;
    kp_heartbeat_response_encode(out, v, &m);
    return 1;
}

static int group_errors_sync(kp_reader *r, kp_arena *a, int16_t v, kp_writer *out)
{
    kp_sync_group_response m;
    if (kp_sync_group_response_decode(r, a, v, &m) < 0) return -1;
    if (!translate_group_error(&m.error_code)) return 0;
    kp_sync_group_response_encode(out, v, &m);
    return 1;
}

static int group_errors_commit(kp_reader *r, kp_arena *a, int16_t v, kp_writer *out)
{
    kp_offset_commit_response m;
    if (kp_offset_commit_response_decode(r, a, v, &m) < 0) return -1;
    int changed = 0;
    for (int32_t t = 0; t < m.topics.count; t++)
        for (int32_t p = 0; p < m.topics.items[t].partitions.count; p++)
            changed |= translate_group_error(&m.topics.items[t].partitions.items[p].error_code);
    if (!changed) return 0;
    kp_offset_commit_response_encode(out, v, &m);
    return 1;
}

int kg_rewrite_group_errors(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                            kp_writer *out)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    size_t start = out->len;
    int rc = -1;
    if (api_key == API_HEARTBEAT)
        rc = group_errors_heartbeat(&r, &arena, api_version, out);
    else if (api_key == API_SYNC_GROUP)
        rc = group_errors_sync(&r, &arena, api_version, out);
    else if (api_key == API_OFFSET_COMMIT)
        rc = group_errors_commit(&r, &arena, api_version, out);
    kp_arena_free(&arena);
    return rc == 1 ? finish_encode(out, start) : rc;
}
