/* Frames captured from real clients and brokers (tests/vectors/, see its README): every one
 * decodes with the generated codecs, and re-encoding the decoded message gives the same bytes.
 *
 * Run from the repository root (make unit does). Known broker quirk: librdkafka 2.12's mock
 * ends flexible Metadata responses with a zero byte after the message, so up to a few zero
 * bytes after a response are allowed and not part of the comparison. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "kt.h"
#include "proto/kp_frame.h"

#define VECTORS_DIR "tests/vectors"
#define MAX_ZERO_PADDING 8

typedef struct vector {
    char path[512];
    char api[64];
    int16_t api_key;
    int16_t version;
    int is_request;
    int unsupported; /* ApiVersions answer in the v0 layout for a too-new request */
} vector;

static int16_t api_key_named(const char *name)
{
    for (int k = 0; k < KP_API_MAX; k++)
        if (kp_api_table[k].name && strcmp(kp_api_table[k].name, name) == 0) return (int16_t)k;
    return -1;
}

/* "Metadata_v12_resp.bin" -> api Metadata, version 12, response. */
static int parse_name(const char *dir, const char *file, vector *v)
{
    char kind[32] = "";
    int version = -1;
    memset(v, 0, sizeof(*v));
    if (sscanf(file, "%63[A-Za-z]_v%d_%31[a-z_].bin", v->api, &version, kind) != 3) return -1;
    v->version = (int16_t)version;
    v->is_request = strcmp(kind, "req") == 0;
    v->unsupported = strcmp(kind, "resp_unsupported") == 0;
    if (!v->is_request && !v->unsupported && strcmp(kind, "resp") != 0) return -1;
    v->api_key = api_key_named(v->api);
    snprintf(v->path, sizeof(v->path), "%s/%s", dir, file);
    return v->api_key < 0 ? -1 : 0;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

static int only_zeros(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) return 0;
    return n <= MAX_ZERO_PADDING;
}

/* Decodes BODY with CODEC at VERSION and checks the re-encoding. Returns 1 on success. */
static int roundtrip(const kp_msg_codec *codec, int16_t version, const uint8_t *body, size_t len,
                     int allow_padding, const char *path)
{
    kp_arena a;
    kp_arena_init(&a);
    void *msg = kp_arena_calloc(&a, 1, codec->size);
    kp_reader r;
    kp_reader_init(&r, body, len);
    int ok = msg && codec->decode(&r, &a, version, msg) == 0 && !r.err;
    size_t used = ok ? (size_t)(r.p - body) : 0;
    if (ok && used != len && !(allow_padding && only_zeros(r.p, len - used))) ok = 0;
    kp_writer w;
    kp_writer_init(&w, 0);
    if (ok) {
        codec->encode(&w, version, msg);
        ok = !w.err && w.len == used && memcmp(w.buf, body, used) == 0;
    }
    if (!ok)
        fprintf(stderr, "  %s: %s v%d does not round-trip (used %zu of %zu, re-encoded %zu)\n",
                path, codec->name, version, used, len, w.len);
    kp_writer_free(&w);
    kp_arena_free(&a);
    return ok;
}

static int check_request(const vector *v, const uint8_t *frame, size_t len)
{
    kp_request_header h;
    size_t hdr_len = 0;
    if (kp_request_header_parse(frame, len, NULL, &h, &hdr_len) != KP_FRAME_OK ||
        h.api_key != v->api_key || h.api_version != v->version)
        return 0;
    return roundtrip(kp_api_get(v->api_key)->request, v->version, frame + hdr_len, len - hdr_len, 0,
                     v->path);
}

static int check_response(const vector *v, const uint8_t *frame, size_t len)
{
    int header_version = kp_api_response_header_version(v->api_key, v->version);
    kp_response_header h;
    size_t hdr_len = 0;
    if (kp_response_header_parse(frame, len, header_version < 0 ? 0 : header_version, NULL, &h,
                                 &hdr_len) != KP_FRAME_OK)
        return 0;
    const kp_msg_codec *codec = kp_api_get(v->api_key)->response;
    return roundtrip(codec, v->version, frame + hdr_len, len - hdr_len, 1, v->path);
}

/* Frames the mock brokers got wrong. Each is checked for exactly that deviation, so a codec
 * change that starts accepting (or newly refuses) them is noticed. */
typedef struct quirk {
    const char *file;
    const char *what;
} quirk;

static const quirk quirks[] = {
    {"ApiVersions_v3_resp_unsupported.bin",
     "UNSUPPORTED_VERSION answer in a layout of the mock's own (a one-byte array count); only its "
     "leading error code is meaningful, which is all kgate reads of it"},
    {"librdkafka-2.12/ListOffsets_v5_resp.bin", "4 stray bytes after the message"},
    {"kafkajs-2.2.4/LeaveGroup_v3_resp.bin", "error answer without its members array"},
};

static const quirk *quirk_of(const char *path)
{
    for (size_t i = 0; i < sizeof(quirks) / sizeof(quirks[0]); i++) {
        size_t n = strlen(path), m = strlen(quirks[i].file);
        if (n >= m && strcmp(path + n - m, quirks[i].file) == 0) return &quirks[i];
    }
    return NULL;
}

/* A quirky frame: its response header parses, its first body bytes are an error code or a
 * throttle time, and it does NOT round-trip. */
static int check_quirk(const vector *v, const uint8_t *frame, size_t len)
{
    if (v->unsupported) return len >= 6 && frame[4] == 0 && frame[5] == 35;
    const kp_msg_codec *codec = kp_api_get(v->api_key)->response;
    size_t hdr = 4; /* both quirky responses have a v0 header */
    kp_arena a;
    kp_arena_init(&a);
    void *msg = kp_arena_calloc(&a, 1, codec->size);
    kp_reader r;
    kp_reader_init(&r, frame + hdr, len - hdr);
    int decoded = msg && codec->decode(&r, &a, v->version, msg) == 0 && !r.err;
    int whole = decoded && r.p == r.end;
    kp_arena_free(&a);
    return !whole;
}

static void check_client_dir(const char *dir, int *files, int *apis_seen)
{
    DIR *d = opendir(dir);
    KT_CHECK(d != NULL);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        vector v;
        if (!strstr(e->d_name, ".bin")) continue;
        KT_CHECK(parse_name(dir, e->d_name, &v) == 0);
        size_t len = 0;
        uint8_t *frame = read_all(v.path, &len);
        KT_CHECK(frame != NULL && len >= 4);
        if (frame && len >= 4) {
            const quirk *q = quirk_of(v.path);
            int ok = q              ? check_quirk(&v, frame, len)
                     : v.is_request ? check_request(&v, frame, len)
                                    : check_response(&v, frame, len);
            if (!ok) fprintf(stderr, "  FAILED: %s\n", v.path);
            KT_CHECK(ok);
            (*files)++;
            apis_seen[v.api_key] = 1;
        }
        free(frame);
    }
    closedir(d);
}

KT_TEST(every_captured_frame_round_trips)
{
    static const char *const clients[] = {"librdkafka-2.0.2", "librdkafka-2.12",
                                          "kafka-python-2.0.2", "kafkajs-2.2.4"};
    int files = 0, apis_seen[KP_API_MAX] = {0};
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/%s", VECTORS_DIR, clients[i]);
        check_client_dir(dir, &files, apis_seen);
    }
    /* The vectors cover what clients really use: produce, fetch, groups, metadata. */
    KT_CHECK(files >= 100);
    static const int16_t needed[] = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
        KT_CHECK(apis_seen[needed[i]]);
}

KT_MAIN()
