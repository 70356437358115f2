/* libFuzzer target: the authorize stage (kg_authz) over client requests and broker answers.
 *
 * Byte 0 picks the API (every client API kgate authorizes, and one it checks on the cluster),
 * byte 1 the version, byte 2 how the Produce walk is split; the rest is a request body, which
 * is authorized for a principal with a mix of allow, deny and prefixed bindings, then fed back
 * as the broker's answer to the patch. Properties: no crash, leak or out-of-bounds write (the
 * renames write into the body); a walk that ends says DONE exactly at the body's end, and finds
 * the same names in any split.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "security/kg_authz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int16_t apis[] = {0,  1,  2,  3,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                               19, 20, 21, 22, 23, 24, 25, 26, 28, 32, 33, 37, 42,
                               44, 47, 48, 60, 61, 65, 66, 68, 69, 71, 75};

static kg_acl_set *acls(void)
{
    static kg_acl_set *set;
    if (set) return set;
    static const char *const lines[][6] = {
        {"allow", "User:fuzz", "topic", "prefixed", "a", "All"},
        {"deny", "User:fuzz", "topic", "literal", "ab", "Write"},
        {"allow", "User:fuzz", "group", "literal", "g", "Read"},
        {"allow", "User:*", "cluster", "literal", "kafka-cluster", "Describe"},
        {"allow", "User:fuzz", "transactional_id", "prefixed", "t", "Write"},
    };
    enum { N = sizeof(lines) / sizeof(lines[0]) };
    kg_acl_binding b[N];
    for (int i = 0; i < N; i++) {
        memset(&b[i], 0, sizeof(b[i]));
        snprintf(b[i].principal, sizeof(b[i].principal), "%s", lines[i][1]);
        snprintf(b[i].host, sizeof(b[i].host), "*");
        snprintf(b[i].name, sizeof(b[i].name), "%s", lines[i][4]);
        b[i].permission = (kg_acl_permission)kg_acl_parse_permission(lines[i][0]);
        b[i].resource = (kg_acl_resource)kg_acl_parse_resource(lines[i][2]);
        b[i].pattern = (kg_acl_pattern)kg_acl_parse_pattern(lines[i][3]);
        b[i].op = (kg_acl_op)kg_acl_parse_op(lines[i][5]);
        char err[128];
        if (kg_acl_binding_check(&b[i], err, sizeof(err)) < 0) abort();
    }
    set = kg_acl_set_new(b, N);
    return set;
}

/* Walks BODY CHUNK bytes at a time; returns the number of names, or -1 (malformed). */
static int walk(int16_t version, const uint8_t *body, size_t len, size_t chunk)
{
    kg_authz_produce_walk w;
    kg_authz_produce_walk_init(&w, version);
    size_t pos = 0, here = chunk < len ? chunk : len;
    int names = 0;
    for (;;) {
        size_t n = 0, off = 0;
        int32_t name_len = 0;
        int rc = kg_authz_produce_walk_step(&w, body + pos, here - pos, &n, &off, &name_len);
        if (rc == KG_WALK_BAD) return -1;
        if (rc == KG_WALK_DONE) return pos == len ? names : -1;
        if (rc == KG_WALK_NEED) {
            if (here == len) return -1;
            here = here + chunk < len ? here + chunk : len;
            continue;
        }
        if (rc == KG_WALK_TOPIC) {
            if (off + (size_t)name_len > here - pos) abort(); /* a name it has not seen */
            names++;
        }
        if (n > here - pos) abort();
        pos += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int16_t api = apis[data[0] % (sizeof(apis) / sizeof(apis[0]))];
    const kp_api_info *info = kp_api_get(api);
    if (!info) return 0;
    int16_t version =
        (int16_t)(info->min_version + data[1] % (info->max_version - info->min_version + 1));
    size_t len = size - 3;
    uint8_t *body = malloc(len + 1);
    if (!body) return 0;
    memcpy(body, data + 3, len);
    kg_authz_who who = {acls(), "User:fuzz", "10.0.0.1"};
    if (api == 0) {
        int whole = walk(version, body, len, len);
        int split = walk(version, body, len, 1 + data[2] % 16);
        if (whole != split) abort();
    }
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    if (kg_authz_request(&who, api, version, body, len, &v) == 0 && v.patch) {
        kp_writer w;
        kp_writer_init(&w, 0);
        kg_authz_response(v.patch, &who, api, version, data + 3, len, &w);
        kp_writer_free(&w);
        kg_authz_patch_free(v.patch);
    }
    kg_authz_verdict_free(&v);
    free(body);
    return 0;
}
