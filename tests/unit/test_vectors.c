/* Frames captured from real clients and brokers (tests/vectors/, see its README): every one
 * decodes with the generated codecs, and re-encoding the decoded message gives the same bytes.
 * The field values are checked in test_vector_fields.c.
 *
 * Run from the repository root (make unit does). A few mock-broker answers deviate from the
 * protocol; each is listed in `quirks` with exactly how it deviates, and checked for exactly
 * that, so a codec change that starts accepting (or newly refuses) one of them is noticed. No
 * other frame may leave a byte unread. */
#include <dirent.h>

#include "kp_msgs.h"
#include "kt.h"
#include "proto/kp_frame.h"
#include "vectors.h"

static int16_t api_key_named(const char *name)
{
    for (int k = 0; k < KP_API_MAX; k++)
        if (kp_api_table[k].name && strcmp(kp_api_table[k].name, name) == 0) return (int16_t)k;
    return -1;
}

/* ---- quirks ------------------------------------------------------------------------------ */

enum quirk_kind {
    QUIRK_TRAILING,   /* the message decodes and round-trips, then `trailing` extra bytes */
    QUIRK_UNDECODABLE /* decoding stops with `err` at body offset `offset` */
};

typedef struct quirk {
    const char *file; /* <client>/<file>, or <file> for every client */
    enum quirk_kind kind;
    size_t trailing_len;
    const char *trailing; /* the extra bytes themselves */
    int err;
    size_t offset;
    const char *why;
} quirk;

static const quirk quirks[] = {
    {"librdkafka-2.12/Metadata_v12_resp.bin", QUIRK_TRAILING, 1, "\x00", 0, 0,
     "librdkafka 2.12's mock ends flexible Metadata answers with a zero byte after the top-level "
     "tagged fields"},
    {"librdkafka-2.12/ListOffsets_v5_resp.bin", QUIRK_TRAILING, 4, "\xff\xff\xff\xff", 0, 0,
     "librdkafka 2.0.2's mock writes a leader epoch (-1) twice"},
    {"kafkajs-2.2.4/LeaveGroup_v3_resp.bin", QUIRK_UNDECODABLE, 0, NULL, KP_ERR_SHORT, 6,
     "an error answer (25, UNKNOWN_MEMBER_ID) that ends after its error code, without the "
     "members array v3 requires"},
    {"ApiVersions_v3_resp_unsupported.bin", QUIRK_UNDECODABLE, 0, NULL, KP_ERR_SHORT, 6,
     "UNSUPPORTED_VERSION answer with a one-byte array count: read in the v0 layout, the count "
     "is 0x01001200, more entries than the bytes left can hold (a short read); only the leading "
     "error code is meaningful, "
     "which is all kgate reads of it"},
};

static const quirk *quirk_of(const char *path)
{
    for (size_t i = 0; i < sizeof(quirks) / sizeof(quirks[0]); i++) {
        size_t n = strlen(path), m = strlen(quirks[i].file);
        if (n > m && strcmp(path + n - m, quirks[i].file) == 0 && path[n - m - 1] == '/')
            return &quirks[i];
    }
    return NULL;
}

/* ---- decoding ---------------------------------------------------------------------------- */

typedef struct decoded {
    int rc, err;
    size_t used; /* body bytes read; where decoding stopped on an error */
} decoded;

static decoded decode_body(const kp_msg_codec *codec, int16_t version, const uint8_t *body,
                           size_t len, kp_arena *a, void **msg)
{
    *msg = kp_arena_calloc(a, 1, codec->size);
    kp_reader r;
    kp_reader_init(&r, body, len);
    decoded d = {-1, KP_ERR_NOMEM, 0};
    if (!*msg) return d;
    d.rc = codec->decode(&r, a, version, *msg);
    d.err = r.err;
    d.used = (size_t)(r.p - body);
    return d;
}

/* Decodes BODY with CODEC at VERSION and checks that re-encoding gives back its first
 * len - trailing bytes, which the decoder must have read exactly. Returns 1 on success. */
static int roundtrip(const kp_msg_codec *codec, int16_t version, const uint8_t *body, size_t len,
                     size_t trailing, const char *path)
{
    kp_arena a;
    kp_arena_init(&a);
    void *msg;
    decoded d = decode_body(codec, version, body, len, &a, &msg);
    int ok = d.rc == 0 && !d.err && trailing <= len && d.used == len - trailing;
    kp_writer w;
    kp_writer_init(&w, 0);
    if (ok) {
        codec->encode(&w, version, msg);
        /* An empty body (ApiVersions v0-2 requests) re-encodes to nothing: w.buf stays NULL,
         * which memcmp must not see. */
        ok = !w.err && w.len == d.used && (d.used == 0 || memcmp(w.buf, body, d.used) == 0);
    }
    if (!ok)
        fprintf(stderr,
                "  %s: %s v%d does not round-trip (err %d, used %zu of %zu, re-encoded %zu)\n",
                path, codec->name, version, d.err, d.used, len, w.len);
    kp_writer_free(&w);
    kp_arena_free(&a);
    return ok;
}

static int check_request(const vector *v, int16_t key, const uint8_t *frame, size_t len)
{
    kp_request_header h;
    size_t hdr_len = 0;
    if (kp_request_header_parse(frame, len, NULL, &h, &hdr_len) != KP_FRAME_OK ||
        h.api_key != key || h.api_version != v->version)
        return 0;
    return roundtrip(kp_api_get(key)->request, v->version, frame + hdr_len, len - hdr_len, 0,
                     v->path);
}

/* Parses the response header; returns the body offset, or 0 when it does not parse. */
static size_t response_body_at(int16_t key, int16_t version, const uint8_t *frame, size_t len)
{
    int header_version = kp_api_response_header_version(key, version);
    kp_response_header h;
    size_t hdr_len = 0;
    if (header_version < 0 ||
        kp_response_header_parse(frame, len, header_version, NULL, &h, &hdr_len) != KP_FRAME_OK)
        return 0;
    return hdr_len;
}

static int check_response(const vector *v, int16_t key, const uint8_t *frame, size_t len,
                          size_t trailing)
{
    size_t at = response_body_at(key, v->version, frame, len);
    if (!at) return 0;
    return roundtrip(kp_api_get(key)->response, v->version, frame + at, len - at, trailing,
                     v->path);
}

static int check_trailing_quirk(const vector *v, int16_t key, const quirk *q, const uint8_t *frame,
                                size_t len)
{
    if (len < q->trailing_len ||
        memcmp(frame + len - q->trailing_len, q->trailing, q->trailing_len) != 0)
        return 0;
    return v->is_request ? 0 : check_response(v, key, frame, len, q->trailing_len);
}

/* The quirky answer fails to decode exactly where and how the quirk says. The
 * UNSUPPORTED_VERSION answers are read in the v0 layout, as the README describes. */
static int check_undecodable_quirk(const vector *v, int16_t key, const quirk *q,
                                   const uint8_t *frame, size_t len)
{
    int16_t version = v->unsupported ? 0 : v->version;
    size_t at = response_body_at(key, version, frame, len);
    if (!at) return 0;
    kp_arena a;
    kp_arena_init(&a);
    void *msg;
    decoded d = decode_body(kp_api_get(key)->response, version, frame + at, len - at, &a, &msg);
    kp_arena_free(&a);
    int ok = d.rc != 0 && d.err == q->err && d.used == q->offset;
    if (!ok)
        fprintf(stderr, "  %s: expected error %d at body offset %zu, got rc %d error %d at %zu\n",
                v->path, q->err, q->offset, d.rc, d.err, d.used);
    return ok;
}

static int check_frame(const vector *v, const uint8_t *frame, size_t len, int *quirks_seen)
{
    int16_t key = api_key_named(v->api);
    if (key < 0 || !kp_api_get(key)) return 0;
    const quirk *q = quirk_of(v->path);
    if (q) {
        quirks_seen[q - quirks]++;
        return q->kind == QUIRK_TRAILING ? check_trailing_quirk(v, key, q, frame, len)
                                         : check_undecodable_quirk(v, key, q, frame, len);
    }
    if (v->unsupported) return 0; /* every such answer must be listed */
    return v->is_request ? check_request(v, key, frame, len)
                         : check_response(v, key, frame, len, 0);
}

static void check_client_dir(const char *dir, int *files, int *apis_seen, int *quirks_seen)
{
    DIR *d = opendir(dir);
    KT_CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    /* Bounded: a directory of a few dozen files; the cap only guards against a runaway. */
    for (int n = 0; n < 1000 && (e = readdir(d)); n++) {
        vector v;
        if (!strstr(e->d_name, ".bin")) continue;
        KT_CHECK(vector_parse_name(dir, e->d_name, &v) == 0);
        size_t len = 0;
        uint8_t *frame = vector_read(v.path, &len);
        KT_CHECK(frame != NULL && len >= 4);
        if (frame && len >= 4) {
            int ok = check_frame(&v, frame, len, quirks_seen);
            if (!ok) fprintf(stderr, "  FAILED: %s\n", v.path);
            KT_CHECK(ok);
            (*files)++;
            apis_seen[api_key_named(v.api) < 0 ? 0 : api_key_named(v.api)] = 1;
        }
        free(frame);
    }
    closedir(d);
}

KT_TEST(every_captured_frame_round_trips)
{
    int files = 0, apis_seen[KP_API_MAX] = {0};
    int quirks_seen[sizeof(quirks) / sizeof(quirks[0])] = {0};
    for (size_t i = 0; i < VECTOR_CLIENTS; i++) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/%s", VECTORS_DIR, vector_clients[i]);
        check_client_dir(dir, &files, apis_seen, quirks_seen);
    }
    /* The vectors cover what clients really use: produce, fetch, groups, metadata. */
    KT_CHECK(files >= 100);
    static const int16_t needed[] = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
        KT_CHECK(apis_seen[needed[i]]);
    /* A quirk whose frame is gone is stale: say so rather than keep an unused exception. */
    for (size_t i = 0; i < sizeof(quirks) / sizeof(quirks[0]); i++)
        if (!kt_count(quirks_seen[i] > 0))
            kt_fail(__FILE__, __LINE__, "quirk %s matched no frame", quirks[i].file);
}

KT_MAIN()
