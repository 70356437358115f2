#include "route/kg_versions.h"

#define API_KEY_APIVERSIONS 18

void kg_versions_clear(kg_version_ranges *out)
{
    for (int k = 0; k < KP_API_MAX; k++) {
        out->min[k] = -1;
        out->max[k] = -1;
    }
}

static int decode_at(const uint8_t *body, size_t len, int16_t version, kp_arena *a,
                     kp_api_versions_response *resp)
{
    kp_reader r;
    kp_reader_init(&r, body, len);
    if (kp_api_versions_response_decode(&r, a, version, resp) < 0) return -1;
    return r.p == r.end ? 0 : -1; /* trailing bytes: not this version's layout */
}

static void ranges_from_response(const kp_api_versions_response *resp, kg_version_ranges *out)
{
    kg_versions_clear(out);
    for (int32_t i = 0; i < resp->api_keys.count; i++) {
        const kp_api_versions_response_api_version *v = &resp->api_keys.items[i];
        if (v->api_key < 0 || v->api_key >= KP_API_MAX || v->min_version < 0 ||
            v->min_version > v->max_version)
            continue;
        out->min[v->api_key] = v->min_version;
        out->max[v->api_key] = v->max_version;
    }
}

int kg_versions_parse(const uint8_t *body, size_t len, int16_t version, kg_version_ranges *out,
                      int16_t *error_code)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_api_versions_response resp;
    int rc = decode_at(body, len, version, &arena, &resp);
    if (rc < 0 && version != 0) {
        kp_arena_reset(&arena);
        rc = decode_at(body, len, 0, &arena, &resp);
    }
    /* librdkafka's mock broker answers an unsupported version in v1 layout (v0 plus
     * throttle_time_ms); accept that too. */
    if (rc < 0 && version > 1) {
        kp_arena_reset(&arena);
        rc = decode_at(body, len, 1, &arena, &resp);
    }
    if (rc == 0) {
        ranges_from_response(&resp, out);
        if (error_code) *error_code = resp.error_code;
    }
    kp_arena_free(&arena);
    return rc;
}

void kg_versions_intersect(kg_version_ranges *acc, const kg_version_ranges *other)
{
    for (int k = 0; k < KP_API_MAX; k++) {
        int16_t lo = acc->min[k] > other->min[k] ? acc->min[k] : other->min[k];
        int16_t hi = acc->max[k] < other->max[k] ? acc->max[k] : other->max[k];
        if (acc->min[k] < 0 || other->min[k] < 0 || lo > hi) {
            lo = -1;
            hi = -1;
        }
        acc->min[k] = lo;
        acc->max[k] = hi;
    }
}

void kg_versions_from_codecs(kg_version_ranges *out)
{
    kg_versions_clear(out);
    for (int16_t k = 0; k < KP_API_MAX; k++) {
        const kp_api_info *api = kp_api_get(k);
        if (!api || !kp_api_client_facing(k)) continue;
        out->min[k] = api->min_version;
        out->max[k] = api->max_version;
    }
}

bool kg_versions_supported(const kg_version_ranges *ranges, int16_t api_key, int16_t version)
{
    if (api_key < 0 || api_key >= KP_API_MAX || ranges->min[api_key] < 0) return false;
    return version >= ranges->min[api_key] && version <= ranges->max[api_key];
}

int16_t kg_versions_max_apiversions(void)
{
    return kp_api_get(API_KEY_APIVERSIONS)->max_version;
}

int kg_versions_build_response(kp_writer *out, int16_t request_version, int32_t correlation_id,
                               const kg_version_ranges *ranges, int16_t error_code,
                               int32_t throttle_ms)
{
    if (request_version < 0 || request_version > kg_versions_max_apiversions()) return -1;
    kp_api_versions_response_api_version keys[KP_API_MAX];
    kp_api_versions_response resp;
    kp_api_versions_response_init(&resp);
    resp.error_code = error_code;
    resp.throttle_time_ms = throttle_ms;
    resp.api_keys.items = keys;
    resp.api_keys.count = 0;
    for (int k = 0; k < KP_API_MAX; k++) {
        if (ranges->min[k] < 0) continue;
        kp_api_versions_response_api_version *v = &keys[resp.api_keys.count++];
        v->api_key = (int16_t)k;
        v->min_version = ranges->min[k];
        v->max_version = ranges->max[k];
        v->unknown_tags = NULL;
    }
    size_t frame_at = kp_writer_reserve_len(out);
    kp_write_i32(out, correlation_id); /* response header v0, always, for ApiVersions */
    kp_api_versions_response_encode(out, request_version, &resp);
    kp_writer_patch_len(out, frame_at);
    return out->err ? -1 : 0;
}
