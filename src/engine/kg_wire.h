/* kg_wire — the little the proxy reads of a frame to route it: the request header (api key,
 * version, correlation id, client id) and, for Produce, whether a response will come (acks).
 * Everything else about a pass-through frame stays opaque bytes.
 */
#ifndef KG_WIRE_H
#define KG_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"

#define KG_API_PRODUCE 0
#define KG_API_FETCH 1
#define KG_API_METADATA 3
#define KG_API_CONTROLLED_SHUTDOWN 7
#define KG_API_OFFSET_COMMIT 8
#define KG_API_SYNC_GROUP 14
#define KG_API_SASL_HANDSHAKE 17
#define KG_API_APIVERSIONS 18
#define KG_API_SASL_AUTHENTICATE 36
#define KG_KAFKA_UNSUPPORTED_VERSION 35

/* api key + version + correlation id: the smallest request header there is (v0). */
#define KG_WIRE_MIN_REQUEST 8

enum { KG_WIRE_OK = 0, KG_WIRE_NEED_MORE = 1, KG_WIRE_BAD = 2 };

typedef struct kg_wire_request {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kp_str client_id;
    int no_response;   /* Produce with acks=0 */
    size_t header_len; /* bytes of request header: the request body starts here */
    const char *error; /* why the header is malformed (KG_WIRE_BAD) */
} kg_wire_request;

static inline uint32_t kg_wire_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void kg_wire_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Parses the request header from the first AVAIL bytes of a frame body of FRAME_SIZE bytes
 * (AVAIL may be less: streaming). Returns KG_WIRE_OK, KG_WIRE_NEED_MORE (the decision needs
 * bytes that have not arrived) or KG_WIRE_BAD. */
int kg_wire_parse_request(const uint8_t *body, size_t avail, size_t frame_size,
                          kg_wire_request *out);

/* Control-plane requests (every API but Produce and Fetch, which are the data path and stay
 * header-only) are decoded in full before they reach a broker: a malformed one (a hostile
 * array count, a truncated field) closes the client's connection instead of reaching, and
 * possibly hurting, the cluster. True when API's requests are validated. */
int kg_wire_validated(int16_t api_key);
/* Decodes a request BODY (after its header). Returns 0 when it is well formed, else -1 with
 * the reason in *WHY. */
int kg_wire_validate_request(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                             const char **why);

/* Length of the response header (correlation id, plus tagged fields for flexible versions) at
 * the start of a response body of SIZE bytes; 0 when malformed. */
size_t kg_wire_response_header_len(int16_t api_key, int16_t api_version, const uint8_t *body,
                                   size_t size);

/* Appends a request header (v1, or v2 for flexible versions) for a request kgate makes. */
void kg_wire_request_header(kp_writer *w, int16_t api_key, int16_t api_version,
                            int32_t correlation_id, const char *client_id);

/* Appends a response header (v0 or v1 as the api/version uses) for a response kgate makes. */
void kg_wire_response_header(kp_writer *w, int16_t api_key, int16_t api_version,
                             int32_t correlation_id);

#endif
