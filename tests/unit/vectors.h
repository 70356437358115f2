/* Shared by the tests over tests/vectors/ (captured frames, see its README): naming, loading,
 * and a hand-written byte walker that reads Kafka wire values without kgate's codec, so the
 * tests can hold the generated decoders against an independent reading of the same bytes. */
#ifndef VECTORS_H
#define VECTORS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VECTORS_DIR "tests/vectors"
#define VECTOR_MAX_BYTES (1 << 20)

/* The four capture sources (tests/integration/test_vectors.py CLIENTS). */
static const char *const vector_clients[] = {"librdkafka-2.0.2", "librdkafka-2.12",
                                             "kafka-python-2.0.2", "kafkajs-2.2.4"};
#define VECTOR_CLIENTS (sizeof(vector_clients) / sizeof(vector_clients[0]))

/* Api keys and first flexible versions, copied from the Kafka message specs
 * (protocol/messages/<Name>Request.json: apiKey, flexibleVersions) by hand, not from kgate's
 * generated table, which the tests compare against them. */
typedef struct spec_api {
    const char *name;
    int16_t key;
    int16_t flexible_min;
    int16_t max_version;
} spec_api;

static const spec_api spec_apis[] = {
    {"Produce", 0, 9, 11},
    {"Fetch", 1, 12, 17},
    {"ListOffsets", 2, 6, 10},
    {"Metadata", 3, 9, 12},
    {"OffsetCommit", 8, 8, 9},
    {"OffsetFetch", 9, 6, 9},
    {"FindCoordinator", 10, 3, 6},
    {"JoinGroup", 11, 6, 9},
    {"Heartbeat", 12, 4, 4},
    {"LeaveGroup", 13, 4, 5},
    {"SyncGroup", 14, 4, 5},
    {"ApiVersions", 18, 3, 4},
    {"InitProducerId", 22, 2, 5},
    {"AddPartitionsToTxn", 24, 3, 5},
    {"AddOffsetsToTxn", 25, 3, 4},
    {"EndTxn", 26, 3, 5},
    {"TxnOffsetCommit", 28, 3, 4},
    {"DescribeCluster", 60, 0, 1},
    {"GetTelemetrySubscriptions", 71, 0, 0},
};
#define SPEC_APIS (sizeof(spec_apis) / sizeof(spec_apis[0]))

static __attribute__((unused)) const spec_api *spec_api_named(const char *name)
{
    for (size_t i = 0; i < SPEC_APIS; i++)
        if (strcmp(spec_apis[i].name, name) == 0) return &spec_apis[i];
    return NULL;
}

static __attribute__((unused)) const spec_api *spec_api_key(int16_t key)
{
    for (size_t i = 0; i < SPEC_APIS; i++)
        if (spec_apis[i].key == key) return &spec_apis[i];
    return NULL;
}

/* One vector file: "Metadata_v12_resp.bin" -> api Metadata, version 12, response. */
typedef struct vector {
    char path[512];
    char file[128];
    char api[64];
    int16_t version;
    int is_request;
    int unsupported; /* ApiVersions answer in the v0 layout for a too-new request */
} vector;

static __attribute__((unused)) int vector_parse_name(const char *dir, const char *file, vector *v)
{
    char kind[32] = "";
    int version = -1;
    memset(v, 0, sizeof(*v));
    if (sscanf(file, "%63[A-Za-z]_v%d_%31[a-z_].bin", v->api, &version, kind) != 3) return -1;
    v->version = (int16_t)version;
    v->is_request = strcmp(kind, "req") == 0;
    v->unsupported = strcmp(kind, "resp_unsupported") == 0;
    if (!v->is_request && !v->unsupported && strcmp(kind, "resp") != 0) return -1;
    snprintf(v->path, sizeof(v->path), "%s/%s", dir, file);
    snprintf(v->file, sizeof(v->file), "%s", file);
    return 0;
}

/* The whole file, or NULL. Frames are at most 64 KiB (test_vectors.py checks), so a file that
 * fills the buffer is refused rather than silently truncated. */
static __attribute__((unused)) uint8_t *vector_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = malloc(VECTOR_MAX_BYTES);
    *len = buf ? fread(buf, 1, VECTOR_MAX_BYTES, f) : 0;
    fclose(f);
    if (buf && *len == VECTOR_MAX_BYTES) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- hand walker: big-endian and varint reads written from the protocol guide ------------ */

typedef struct hw {
    const uint8_t *b;
    size_t len, at;
    int bad; /* set by the first read past the end or malformed varint; later reads give 0 */
} hw;

/* A byte slice of the input, e.g. a string (n -1 = null). */
typedef struct hs {
    const uint8_t *p;
    int32_t n;
} hs;

static __attribute__((unused)) hw hw_over(const uint8_t *b, size_t len)
{
    return (hw){b, len, 0, 0};
}

static __attribute__((unused)) int hw_need(hw *h, size_t n)
{
    if (h->bad || h->len - h->at < n) {
        h->bad = 1;
        return 0;
    }
    return 1;
}

static __attribute__((unused)) uint64_t hw_be(hw *h, int n)
{
    uint64_t v = 0;
    if (!hw_need(h, (size_t)n)) return 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | h->b[h->at++];
    return v;
}

static __attribute__((unused)) int8_t hw_i8(hw *h)
{
    return (int8_t)hw_be(h, 1);
}
static __attribute__((unused)) int16_t hw_i16(hw *h)
{
    return (int16_t)hw_be(h, 2);
}
static __attribute__((unused)) int32_t hw_i32(hw *h)
{
    return (int32_t)hw_be(h, 4);
}
static __attribute__((unused)) int64_t hw_i64(hw *h)
{
    return (int64_t)hw_be(h, 8);
}

static __attribute__((unused)) uint64_t hw_uvar(hw *h)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!hw_need(h, 1)) return 0;
        uint8_t c = h->b[h->at++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    h->bad = 1;
    return 0;
}

/* Zigzag varint / varlong (record fields). */
static __attribute__((unused)) int64_t hw_var(hw *h)
{
    uint64_t u = hw_uvar(h);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static __attribute__((unused)) hs hw_take(hw *h, int64_t n)
{
    if (n < 0) return (hs){NULL, -1};
    if (!hw_need(h, (size_t)n)) return (hs){NULL, 0};
    hs s = {h->b + h->at, (int32_t)n};
    h->at += (size_t)n;
    return s;
}

/* Strings and byte fields: int16 (string) / int32 (bytes) length, or uvarint length+1 in
 * flexible versions; -1 / 0 mean null. */
static __attribute__((unused)) hs hw_str(hw *h, int flexible)
{
    int64_t n = flexible ? (int64_t)hw_uvar(h) - 1 : hw_i16(h);
    return hw_take(h, n);
}

static __attribute__((unused)) hs hw_bytes(hw *h, int flexible)
{
    int64_t n = flexible ? (int64_t)hw_uvar(h) - 1 : hw_i32(h);
    return hw_take(h, n);
}

/* Array length; -1 = null. */
static __attribute__((unused)) int32_t hw_count(hw *h, int flexible)
{
    int64_t n = flexible ? (int64_t)hw_uvar(h) - 1 : hw_i32(h);
    if (n < -1 || n > (int64_t)(h->len - h->at)) h->bad = 1;
    return h->bad ? 0 : (int32_t)n;
}

/* A tagged-field section (flexible versions only): count, then (tag, size, data). Returns the
 * number of fields, skipped. */
static __attribute__((unused)) uint32_t hw_tags(hw *h, int flexible)
{
    if (!flexible) return 0;
    uint64_t n = hw_uvar(h);
    for (uint64_t i = 0; i < n && !h->bad; i++) {
        hw_uvar(h);
        hw_take(h, (int64_t)hw_uvar(h));
    }
    return (uint32_t)n;
}

static __attribute__((unused)) int hs_is(hs s, const char *c)
{
    return s.n >= 0 && (size_t)s.n == strlen(c) && memcmp(s.p, c, (size_t)s.n) == 0;
}

static __attribute__((unused)) int hs_starts(hs s, const char *c)
{
    size_t n = strlen(c);
    return s.n >= 0 && (size_t)s.n >= n && memcmp(s.p, c, n) == 0;
}

#endif
