/* libFuzzer target: request frame bodies as a client could send them.
 *
 * The input is a frame body (the bytes after the size prefix). The request header is parsed;
 * for an api/version kgate knows, the rest is decoded with that request's generated decoder,
 * and the same bytes are also decoded as that api's response (responses come from brokers, which
 * kgate does not trust either). Whatever decodes must re-encode, and the re-encoding must decode
 * to something that encodes to the very same bytes: the codec is stable on its own output.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "proto/kp_frame.h"
#include "proto/kp_prim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stable(const kp_msg_codec *c, int16_t version, const uint8_t *body, size_t len,
                         kp_arena *a)
{
    void *msg = kp_arena_alloc(a, c->size);
    kp_reader r;
    kp_reader_init(&r, body, len);
    if (!msg || c->decode(&r, a, version, msg) != 0) return;
    kp_writer first, second;
    kp_writer_init(&first, 0);
    kp_writer_init(&second, 0);
    c->encode(&first, version, msg);
    if (first.err) {
        fprintf(stderr, "%s v%d: decoded but cannot re-encode: %s\n", c->name, version,
                kp_strerror(first.err));
        abort();
    }
    void *again = kp_arena_alloc(a, c->size);
    kp_reader_init(&r, first.buf, first.len);
    if (!again || c->decode(&r, a, version, again) != 0 || r.p != r.end) {
        fprintf(stderr, "%s v%d: own encoding does not decode\n", c->name, version);
        abort();
    }
    c->encode(&second, version, again);
    if (second.len != first.len || (first.len && memcmp(first.buf, second.buf, first.len) != 0)) {
        fprintf(stderr, "%s v%d: encoding is not stable\n", c->name, version);
        abort();
    }
    kp_writer_free(&first);
    kp_writer_free(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_request_header h;
    size_t header_len = 0;
    int rc = kp_request_header_parse(data, size, &arena, &h, &header_len);
    if (rc == KP_FRAME_OK) {
        if (header_len > size) abort();
        const kp_api_info *api = kp_api_get(h.api_key);
        if (!api) abort(); /* OK means the api is known */
        check_stable(api->request, h.api_version, data + header_len, size - header_len, &arena);
        check_stable(api->response, h.api_version, data + 4, size - 4, &arena);
        kp_response_header rh;
        size_t rh_len;
        int hv = kp_api_response_header_version(h.api_key, h.api_version);
        if (kp_response_header_parse(data, size, hv, &arena, &rh, &rh_len) == KP_FRAME_OK &&
            rh_len > size)
            abort();
    } else if (rc == KP_FRAME_UNKNOWN_API) {
        if (kp_api_supported(h.api_key, h.api_version)) abort();
    }
    kp_arena_free(&arena);
    return 0;
}
