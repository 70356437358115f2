/* libFuzzer target: address rewriting of broker responses.
 *
 * Byte 0 picks the api (Metadata, FindCoordinator, DescribeCluster, Produce, Fetch), byte 1 the
 * version within the range that api is rewritten at; the rest is the response body. Properties:
 * no crash; a rewritten body decodes completely at that version; rewriting it again changes
 * nothing (every address already is kgate's); seen() only reports hosts inside the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "route/kg_rewrite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    int16_t api_key, min_version;
} targets[] = {{3, 0}, {10, 0}, {60, 0}, {0, 10}, {1, 16}};

static const uint8_t *input_start, *input_end;

static int port_for_node(void *ctx, int32_t node_id)
{
    (void)ctx;
    return node_id >= 0 && node_id < 32 ? 20000 + node_id : -1;
}

static void seen(void *ctx, int32_t node_id, const kp_str *host, int32_t port, const kp_str *rack)
{
    (void)ctx;
    (void)port;
    if (node_id < 0) abort(); /* only real brokers are reported */
    const kp_str *s[2] = {host, rack};
    for (int i = 0; i < 2; i++) {
        if (s[i]->len > 0 && ((const uint8_t *)s[i]->ptr < input_start ||
                              (const uint8_t *)s[i]->ptr + s[i]->len > input_end))
            abort(); /* zero-copy slices must point into the response */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t t = data[0] % (sizeof(targets) / sizeof(targets[0]));
    const kp_api_info *api = kp_api_get(targets[t].api_key);
    int span = api->max_version - targets[t].min_version + 1;
    int16_t version = (int16_t)(targets[t].min_version + data[1] % span);
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    input_start = body;
    input_end = body + len;

    kg_node_map map = {"gw.test", port_for_node, NULL, 19999, 0, "vc-id"};
    kp_writer out, again;
    kp_writer_init(&out, 0);
    kp_writer_init(&again, 0);
    int rc = kg_rewrite_response(api->api_key, version, body, len, &map, seen, NULL, &out);
    if (rc == 1) {
        kp_arena arena;
        kp_arena_init(&arena);
        void *msg = kp_arena_alloc(&arena, api->response->size);
        kp_reader r;
        kp_reader_init(&r, out.buf, out.len);
        if (api->response->decode(&r, &arena, version, msg) != 0 || r.p != r.end) {
            fprintf(stderr, "%s v%d: rewritten body does not decode\n", api->name, version);
            abort();
        }
        kp_arena_free(&arena);
        input_start = out.buf;
        input_end = out.buf + out.len;
        int rc2 =
            kg_rewrite_response(api->api_key, version, out.buf, out.len, &map, seen, NULL, &again);
        /* 0: nothing left to change (only the cluster id had to be); 1: the same bytes */
        if (rc2 < 0 ||
            (rc2 == 1 && (again.len != out.len || memcmp(again.buf, out.buf, out.len) != 0))) {
            fprintf(stderr, "%s v%d: rewriting is not idempotent (%d)\n", api->name, version, rc2);
            abort();
        }
    } else if (rc != 0 && rc != -1) {
        abort();
    } else if (out.len != 0) {
        abort(); /* nothing written unless rewritten */
    }
    kp_writer_free(&out);
    kp_writer_free(&again);
    return 0;
}
