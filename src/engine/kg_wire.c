#include "engine/kg_wire.h"

#include "kp_msgs.h"
#include "proto/kp_frame.h"

/* Produce's acks follow the transactional id (v3+); acks=0 means the broker never answers. */
static int16_t wire_produce_acks(kp_reader *r, int16_t version, int flexible)
{
    if (version >= 3) (void)kp_read_str(r, flexible, true);
    return kp_read_i16(r);
}

/* Streaming: a parse that ran out of bytes only means "wait" while the frame is incomplete. */
static int wire_short(size_t avail, size_t frame_size)
{
    return avail < frame_size ? KG_WIRE_NEED_MORE : KG_WIRE_BAD;
}

int kg_wire_parse_request(const uint8_t *body, size_t avail, size_t frame_size,
                          kg_wire_request *out)
{
    kp_request_header h;
    size_t header_len = 0;
    out->client_id = KP_STR_NULL;
    out->no_response = 0;
    out->header_len = 0;
    out->error = NULL;
    int rc = kp_request_header_parse(body, avail, NULL, &h, &header_len);
    out->api_key = avail >= 2 ? (int16_t)(body[0] << 8 | body[1]) : -1;
    out->api_version = avail >= 4 ? (int16_t)(body[2] << 8 | body[3]) : -1;
    out->correlation_id = avail >= 8 ? (int32_t)kg_wire_get_u32(body + 4) : -1;
    if (rc == KP_FRAME_BAD) {
        if (avail < frame_size) return KG_WIRE_NEED_MORE;
        out->error = avail < KG_WIRE_MIN_REQUEST ? "shorter than a request header"
                                                 : "bad client id or tagged fields";
        return KG_WIRE_BAD;
    }
    if (out->api_key < 0 || out->api_version < 0) {
        out->error = "negative api key or version";
        return KG_WIRE_BAD;
    }
    out->header_len = header_len;
    if (rc == KP_FRAME_UNKNOWN_API)
        return KG_WIRE_OK; /* an API kgate does not know: pass it through untouched */
    out->client_id = h.client_id;
    if (out->api_key != KG_API_PRODUCE) return KG_WIRE_OK;
    kp_reader r;
    kp_reader_init(&r, body + header_len, avail - header_len);
    out->no_response = wire_produce_acks(&r, out->api_version, h.header_version >= 2) == 0;
    if (!r.err) return KG_WIRE_OK;
    if (r.err == KP_ERR_SHORT && wire_short(avail, frame_size) == KG_WIRE_NEED_MORE)
        return KG_WIRE_NEED_MORE;
    out->error = kp_strerror(r.err);
    return KG_WIRE_BAD;
}

size_t kg_wire_response_header_len(int16_t api_key, int16_t api_version, const uint8_t *body,
                                   size_t size)
{
    kp_response_header h;
    size_t len = 0;
    int version = kp_api_response_header_version(api_key, api_version);
    if (kp_response_header_parse(body, size, version < 0 ? 0 : version, NULL, &h, &len) !=
        KP_FRAME_OK)
        return 0;
    return len;
}

void kg_wire_request_header(kp_writer *w, int16_t api_key, int16_t api_version,
                            int32_t correlation_id, const char *client_id)
{
    kp_write_i16(w, api_key);
    kp_write_i16(w, api_version);
    kp_write_i32(w, correlation_id);
    kp_write_string(w, kp_str_c(client_id));
    if (kp_api_request_header_version(api_key, api_version) >= 2) kp_write_uvarint(w, 0);
}

void kg_wire_response_header(kp_writer *w, int16_t api_key, int16_t api_version,
                             int32_t correlation_id)
{
    kp_response_header h = {.correlation_id = correlation_id, .tags = NULL};
    int version = kp_api_response_header_version(api_key, api_version);
    kp_response_header_encode(w, version < 0 ? 0 : version, &h);
}

int kg_wire_validated(int16_t api_key)
{
    return api_key != KG_API_PRODUCE && api_key != KG_API_FETCH;
}

int kg_wire_validate_request(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                             const char **why)
{
    const kp_api_info *api = kp_api_get(api_key);
    if (!api || !api->request || !kp_api_supported(api_key, api_version)) {
        *why = "an API or version kgate does not know";
        return -1;
    }
    kp_arena arena;
    kp_arena_init(&arena);
    void *msg = kp_arena_calloc(&arena, 1, api->request->size);
    kp_reader r;
    kp_reader_init(&r, body, len);
    int rc = msg ? api->request->decode(&r, &arena, api_version, msg) : -1;
    if (rc < 0 || r.err)
        *why = kp_strerror(r.err ? r.err : KP_ERR_INVALID);
    else if (r.p != r.end)
        *why = "bytes after the end of the request";
    kp_arena_free(&arena);
    return rc < 0 || r.err || r.p != r.end ? -1 : 0;
}
