/* kp_frame — Kafka framing: the 4-byte size prefix and the request/response headers.
 *
 * A frame is int32 size + body; a request body starts with the request header:
 *   v0: api_key int16, api_version int16, correlation_id int32
 *   v1: + client_id (nullable string, ALWAYS the classic int16-length form)
 *   v2: + tagged fields (flexible api versions)
 * A response body starts with the response header: v0 correlation_id, v1 + tagged fields.
 * Which header version an api/version uses comes from the generated api table
 * (kp_api_request_header_version / kp_api_response_header_version in kp_msgs.h).
 */
#ifndef KP_FRAME_H
#define KP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"

#define KP_FRAME_SIZE_LEN 4
#define KP_REQUEST_HEADER_MIN 8 /* api key, version, correlation id */

enum kp_frame_status {
    KP_FRAME_BAD = -1,        /* malformed */
    KP_FRAME_OK = 0,          /* complete header parsed */
    KP_FRAME_NEED_MORE = 1,   /* kp_frame_size: the 4 size bytes are not all there yet */
    KP_FRAME_UNKNOWN_API = 2, /* api key/version without a codec: only the first 8 bytes parsed */
};

typedef struct kp_request_header {
    int16_t api_key, api_version;
    int32_t correlation_id;
    kp_str client_id;       /* null string in header v0 */
    struct kp_tagged *tags; /* unknown tagged fields (v2), NULL when none or no arena */
    int header_version;     /* 0, 1, 2; -1 when the api/version is unknown */
} kp_request_header;

typedef struct kp_response_header {
    int32_t correlation_id;
    struct kp_tagged *tags; /* v1 tagged fields */
} kp_response_header;

/* Reads the size prefix from `avail` bytes. KP_FRAME_OK: *size = body length (0..max_size);
 * KP_FRAME_NEED_MORE: fewer than 4 bytes; KP_FRAME_BAD: negative or above max_size. */
int kp_frame_size(const uint8_t *p, size_t avail, int32_t max_size, int32_t *size);

/* Parses the request header at the start of a frame body (the bytes after the size).
 * KP_FRAME_OK: all fields set, *header_len = header bytes (the request body follows).
 * KP_FRAME_UNKNOWN_API: api_key, api_version, correlation_id set (header_version -1,
 *   client_id null, *header_len 8) so the caller can pass the frame through or reject it.
 * KP_FRAME_BAD: fewer than 8 bytes, or a malformed client id / tagged section.
 * `a` may be NULL: unknown tagged fields are then validated and skipped, not kept. */
int kp_request_header_parse(const uint8_t *body, size_t len, kp_arena *a, kp_request_header *out,
                            size_t *header_len);
/* Writes the header in h->header_version (0, 1 or 2) form. */
void kp_request_header_encode(kp_writer *w, const kp_request_header *h);

/* Parses a response header of the given version (0 or 1). KP_FRAME_OK or KP_FRAME_BAD. */
int kp_response_header_parse(const uint8_t *body, size_t len, int header_version, kp_arena *a,
                             kp_response_header *out, size_t *header_len);
void kp_response_header_encode(kp_writer *w, int header_version, const kp_response_header *h);

/* Frame building: at = kp_frame_begin(w); ...header and body...; kp_frame_end(w, at). */
size_t kp_frame_begin(kp_writer *w);
void kp_frame_end(kp_writer *w, size_t at);

#endif
