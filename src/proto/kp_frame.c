#include "proto/kp_frame.h"

#include "kp_msgs.h"

int kp_frame_size(const uint8_t *p, size_t avail, int32_t max_size, int32_t *size)
{
    if (avail < KP_FRAME_SIZE_LEN) return KP_FRAME_NEED_MORE;
    kp_reader r;
    kp_reader_init(&r, p, KP_FRAME_SIZE_LEN);
    int32_t n = kp_read_i32(&r);
    if (n < 0 || n > max_size) return KP_FRAME_BAD;
    *size = n;
    return KP_FRAME_OK;
}

int kp_request_header_parse(const uint8_t *body, size_t len, kp_arena *a, kp_request_header *out,
                            size_t *header_len)
{
    kp_reader r;
    kp_reader_init(&r, body, len);
    out->api_key = kp_read_i16(&r);
    out->api_version = kp_read_i16(&r);
    out->correlation_id = kp_read_i32(&r);
    out->client_id = KP_STR_NULL;
    out->tags = NULL;
    out->header_version = -1;
    *header_len = KP_REQUEST_HEADER_MIN;
    if (r.err) return KP_FRAME_BAD;
    int version = kp_api_request_header_version(out->api_key, out->api_version);
    if (version < 0) return KP_FRAME_UNKNOWN_API;
    out->header_version = version;
    if (version >= 1) out->client_id = kp_read_nullable_string(&r);
    if (version >= 2) kp_read_tagged_fields(&r, a, a ? &out->tags : NULL);
    if (r.err) return KP_FRAME_BAD;
    *header_len = (size_t)(r.p - body);
    return KP_FRAME_OK;
}

void kp_request_header_encode(kp_writer *w, const kp_request_header *h)
{
    kp_write_i16(w, h->api_key);
    kp_write_i16(w, h->api_version);
    kp_write_i32(w, h->correlation_id);
    if (h->header_version >= 1) kp_write_string(w, h->client_id);
    if (h->header_version >= 2) kp_write_tagged_fields(w, h->tags);
}

int kp_response_header_parse(const uint8_t *body, size_t len, int header_version, kp_arena *a,
                             kp_response_header *out, size_t *header_len)
{
    kp_reader r;
    kp_reader_init(&r, body, len);
    out->correlation_id = kp_read_i32(&r);
    out->tags = NULL;
    if (header_version >= 1) kp_read_tagged_fields(&r, a, a ? &out->tags : NULL);
    if (r.err) return KP_FRAME_BAD;
    *header_len = (size_t)(r.p - body);
    return KP_FRAME_OK;
}

void kp_response_header_encode(kp_writer *w, int header_version, const kp_response_header *h)
{
    kp_write_i32(w, h->correlation_id);
    if (header_version >= 1) kp_write_tagged_fields(w, h->tags);
}

size_t kp_frame_begin(kp_writer *w)
{
    return kp_writer_reserve_len(w);
}

void kp_frame_end(kp_writer *w, size_t at)
{
    kp_writer_patch_len(w, at);
}
