/* Record batches: CRC-32C, decoding every codec, rewriting (append, overwrite, schema id,
 * duplicate, drop), what must stay untouched, and malformed input.
 *
 * Batches are built here with the compression libraries directly, and results are checked by
 * a small reference reader in this file (the libraries again, not kp_records' own codecs), so
 * a bug in kp_records cannot hide behind itself. Batches produced by librdkafka itself (every
 * codec) are at the end of the file.
 */
#include "kt.h"

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <lz4frame.h>
#include <netinet/in.h>
#include <snappy-c.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

#include "proto/kp_records.h"

#define MAX_RECORDS 64
#define MAX_PLAIN (4u << 20)

/* ---- compression with the libraries (test side) ----------------------------------------- */

static void gzip_into(kp_writer *w, const uint8_t *in, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    size_t bound = deflateBound(&z, len);
    uint8_t *dst = kp_writer_extend(w, bound);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    KT_CHECK_EQ_INT(rc, Z_STREAM_END);
    w->len -= z.avail_out;
    deflateEnd(&z);
}

static void snappy_into(kp_writer *w, const uint8_t *in, size_t len)
{
    size_t n = snappy_max_compressed_length(len);
    uint8_t *dst = kp_writer_extend(w, n);
    size_t got = n;
    KT_CHECK_EQ_INT(snappy_compress((const char *)in, len, (char *)dst, &got), SNAPPY_OK);
    w->len -= n - got;
}

static const uint8_t XERIAL_HEADER[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0,
                                          0,    0,   0,   1,   0,   0,   0,   1};

/* The xerial framing the Java client writes, with BLOCK-sized blocks. */
static void xerial_into(kp_writer *w, const uint8_t *in, size_t len, size_t block)
{
    kp_write_raw(w, XERIAL_HEADER, sizeof(XERIAL_HEADER));
    for (size_t pos = 0; pos < len; pos += block) {
        size_t n = len - pos < block ? len - pos : block;
        size_t at = kp_writer_reserve_len(w);
        snappy_into(w, in + pos, n);
        kp_writer_patch_len(w, at);
    }
}

/* Default LZ4F preferences: linked blocks, unlike what kp_records writes. */
static void lz4_into(kp_writer *w, const uint8_t *in, size_t len, bool checksums)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    if (checksums) {
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
        prefs.frameInfo.contentSize = len;
    }
    size_t bound = LZ4F_compressFrameBound(len, &prefs);
    uint8_t *dst = kp_writer_extend(w, bound);
    size_t n = LZ4F_compressFrame(dst, bound, in, len, &prefs);
    KT_CHECK(!LZ4F_isError(n));
    w->len -= bound - n;
}

static void zstd_into(kp_writer *w, const uint8_t *in, size_t len)
{
    size_t bound = ZSTD_compressBound(len);
    uint8_t *dst = kp_writer_extend(w, bound);
    size_t n = ZSTD_compress(dst, bound, in, len, 1);
    KT_CHECK(!ZSTD_isError(n));
    w->len -= bound - n;
}

/* A zstd frame without a content size, as a streaming compressor (Java's) writes. */
static void zstd_stream_into(kp_writer *w, const uint8_t *in, size_t len)
{
    ZSTD_CStream *cs = ZSTD_createCStream();
    ZSTD_initCStream(cs, 1);
    size_t bound = ZSTD_compressBound(len) + 64;
    uint8_t *dst = kp_writer_extend(w, bound);
    ZSTD_outBuffer ob = {dst, bound, 0};
    ZSTD_inBuffer ib = {in, len, 0};
    ZSTD_compressStream(cs, &ob, &ib);
    KT_CHECK_EQ_INT(ZSTD_endStream(cs, &ob), 0);
    w->len -= bound - ob.pos;
    ZSTD_freeCStream(cs);
    KT_CHECK(ZSTD_getFrameContentSize(dst, ob.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
}

enum { FRAMING_DEFAULT, FRAMING_XERIAL, FRAMING_LZ4_CHECKSUMS, FRAMING_ZSTD_STREAM };

static void compress_into(kp_writer *w, int codec, int framing, const uint8_t *in, size_t len)
{
    switch (codec) {
    case KP_CODEC_GZIP:
        gzip_into(w, in, len);
        break;
    case KP_CODEC_SNAPPY:
        if (framing == FRAMING_XERIAL)
            xerial_into(w, in, len, 32 * 1024);
        else
            snappy_into(w, in, len);
        break;
    case KP_CODEC_LZ4:
        lz4_into(w, in, len, framing == FRAMING_LZ4_CHECKSUMS);
        break;
    case KP_CODEC_ZSTD:
        if (framing == FRAMING_ZSTD_STREAM)
            zstd_stream_into(w, in, len);
        else
            zstd_into(w, in, len);
        break;
    default:
        kp_write_raw(w, in, len);
    }
}

/* ---- building batches -------------------------------------------------------------------- */

#define BASE_TIMESTAMP 1700000000000LL
#define PRODUCER_ID 4242
#define PRODUCER_EPOCH 3
#define BASE_SEQUENCE 77
#define LEADER_EPOCH 9

typedef struct tb_spec {
    int codec;
    int framing;
    int64_t base_offset;
    int16_t extra_attributes; /* transactional / control bits */
    int n;
    kp_bytes values[MAX_RECORDS]; /* record i: key "k<i>", offset delta i, one header when odd */
} tb_spec;

static kp_bytes str_bytes(const char *s)
{
    return (kp_bytes){(const uint8_t *)s, (int32_t)strlen(s)};
}

static void tb_record(kp_writer *w, int i, kp_bytes value)
{
    char key[16], hval[16];
    snprintf(key, sizeof(key), "k%d", i);
    snprintf(hval, sizeof(hval), "hv%d", i);
    kp_writer body;
    kp_writer_init(&body, 0);
    kp_write_i8(&body, 0);
    kp_write_varlong(&body, i * 10);
    kp_write_varint(&body, i);
    kp_write_varint(&body, (int32_t)strlen(key));
    kp_write_raw(&body, key, strlen(key));
    kp_write_varint(&body, value.len);
    if (value.len > 0) kp_write_raw(&body, value.ptr, (size_t)value.len);
    kp_write_varint(&body, i % 2);
    if (i % 2) {
        kp_write_varint(&body, 1);
        kp_write_raw(&body, "h", 1);
        kp_write_varint(&body, (int32_t)strlen(hval));
        kp_write_raw(&body, hval, strlen(hval));
    }
    kp_write_varint(w, (int32_t)body.len);
    kp_write_raw(w, body.buf, body.len);
    kp_writer_free(&body);
}

static void tb_header(kp_writer *w, const tb_spec *s, int32_t count, int32_t last_offset_delta)
{
    kp_write_i64(w, s->base_offset);
    kp_write_i32(w, 0); /* batch length, patched */
    kp_write_i32(w, LEADER_EPOCH);
    kp_write_i8(w, 2);
    kp_write_u32(w, 0); /* crc, patched */
    kp_write_i16(w, (int16_t)(s->codec | s->extra_attributes));
    kp_write_i32(w, last_offset_delta);
    kp_write_i64(w, BASE_TIMESTAMP);
    kp_write_i64(w, BASE_TIMESTAMP + 10 * (count > 0 ? count - 1 : 0));
    kp_write_i64(w, PRODUCER_ID);
    kp_write_i16(w, PRODUCER_EPOCH);
    kp_write_i32(w, BASE_SEQUENCE);
    kp_write_i32(w, count);
}

/* Patches batch length and CRC of the batch that starts at AT and ends at w->len. */
static void tb_seal(kp_writer *w, size_t at)
{
    kp_writer_patch_i32(w, at + 8, (int32_t)(w->len - at - 12));
    uint32_t crc = kp_crc32c(0, w->buf + at + 21, w->len - at - 21);
    kp_writer_patch_i32(w, at + 17, (int32_t)crc);
}

static void tb_batch(kp_writer *w, const tb_spec *s)
{
    kp_writer plain;
    kp_writer_init(&plain, 0);
    for (int i = 0; i < s->n; i++)
        tb_record(&plain, i, s->values[i]);
    size_t at = w->len;
    tb_header(w, s, s->n, s->n > 0 ? s->n - 1 : 0);
    compress_into(w, s->codec, s->framing, plain.buf, plain.len);
    tb_seal(w, at);
    kp_writer_free(&plain);
}

static tb_spec tb_strings(int codec, int64_t base_offset, int n, const char *const *values)
{
    tb_spec s;
    memset(&s, 0, sizeof(s));
    s.codec = codec;
    s.base_offset = base_offset;
    s.n = n;
    for (int i = 0; i < n; i++)
        s.values[i] = values[i] ? str_bytes(values[i]) : KP_BYTES_NULL;
    return s;
}

/* ---- reference reader -------------------------------------------------------------------- */

typedef struct ref_record {
    int64_t timestamp_delta;
    int32_t offset_delta;
    kp_bytes key, value;
    int32_t header_count;
    kp_bytes headers;
} ref_record;

typedef struct ref_batch {
    size_t size;
    int64_t base_offset;
    int32_t leader_epoch;
    uint32_t crc;
    bool crc_ok;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp, max_timestamp, producer_id;
    int16_t producer_epoch;
    int32_t base_sequence, count;
    bool xerial;
    uint8_t lz4_flags;
    int n;
    ref_record rec[2 * MAX_RECORDS];
    uint8_t *plain; /* decompressed records (the slices point here) */
} ref_batch;

static bool ref_decompress(ref_batch *rb, const uint8_t *in, size_t len, size_t *out_len)
{
    rb->plain = malloc(MAX_PLAIN);
    size_t n = MAX_PLAIN;
    switch (rb->attributes & 7) {
    case KP_CODEC_NONE:
        memcpy(rb->plain, in, len);
        n = len;
        break;
    case KP_CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof(z));
        inflateInit2(&z, 15 + 16);
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = rb->plain;
        z.avail_out = MAX_PLAIN;
        int rc = inflate(&z, Z_FINISH);
        n = MAX_PLAIN - z.avail_out;
        inflateEnd(&z);
        if (rc != Z_STREAM_END) return false;
        break;
    }
    case KP_CODEC_SNAPPY:
        rb->xerial = len >= 16 && memcmp(in, XERIAL_HEADER, 8) == 0;
        if (!rb->xerial) {
            if (snappy_uncompress((const char *)in, len, (char *)rb->plain, &n) != SNAPPY_OK)
                return false;
            break;
        }
        n = 0;
        for (size_t pos = 16; pos < len;) {
            size_t block =
                (size_t)in[pos] << 24 | in[pos + 1] << 16 | in[pos + 2] << 8 | in[pos + 3];
            size_t got = MAX_PLAIN - n;
            if (snappy_uncompress((const char *)in + pos + 4, block, (char *)rb->plain + n, &got) !=
                SNAPPY_OK)
                return false;
            n += got;
            pos += 4 + block;
        }
        break;
    case KP_CODEC_LZ4: {
        LZ4F_dctx *d;
        LZ4F_createDecompressionContext(&d, LZ4F_VERSION);
        size_t consumed = len;
        rb->lz4_flags = len > 4 ? in[4] : 0;
        size_t rc = LZ4F_decompress(d, rb->plain, &n, in, &consumed, NULL);
        LZ4F_freeDecompressionContext(d);
        if (rc != 0 || consumed != len) return false;
        break;
    }
    case KP_CODEC_ZSTD:
        n = ZSTD_decompress(rb->plain, MAX_PLAIN, in, len);
        if (ZSTD_isError(n)) return false;
        break;
    default:
        return false;
    }
    *out_len = n;
    return true;
}

static kp_bytes ref_bytes(kp_reader *r)
{
    int32_t n = kp_read_varint(r);
    if (n < 0) return KP_BYTES_NULL;
    return (kp_bytes){kp_read_skip(r, (size_t)n), n};
}

/* Parses the batch at P fully; false when anything does not add up. */
static bool ref_parse(const uint8_t *p, size_t avail, ref_batch *rb)
{
    memset(rb, 0, sizeof(*rb));
    kp_reader r;
    kp_reader_init(&r, p, avail);
    rb->base_offset = kp_read_i64(&r);
    int32_t length = kp_read_i32(&r);
    if (r.err || length < 49 || (size_t)length > avail - 12) return false;
    rb->size = 12 + (size_t)length;
    kp_reader_init(&r, p + 12, (size_t)length);
    rb->leader_epoch = kp_read_i32(&r);
    if (kp_read_i8(&r) != 2) return false;
    rb->crc = kp_read_u32(&r);
    rb->crc_ok = rb->crc == kp_crc32c(0, p + 21, rb->size - 21);
    rb->attributes = kp_read_i16(&r);
    rb->last_offset_delta = kp_read_i32(&r);
    rb->base_timestamp = kp_read_i64(&r);
    rb->max_timestamp = kp_read_i64(&r);
    rb->producer_id = kp_read_i64(&r);
    rb->producer_epoch = kp_read_i16(&r);
    rb->base_sequence = kp_read_i32(&r);
    rb->count = kp_read_i32(&r);
    size_t plain_len;
    if (r.err || !ref_decompress(rb, r.p, kp_reader_remaining(&r), &plain_len)) return false;
    kp_reader_init(&r, rb->plain, plain_len);
    while (kp_reader_remaining(&r) && rb->n < 2 * MAX_RECORDS && !r.err) {
        ref_record *rec = &rb->rec[rb->n++];
        int32_t len = kp_read_varint(&r);
        const uint8_t *end = r.p + len;
        kp_read_i8(&r);
        rec->timestamp_delta = kp_read_varlong(&r);
        rec->offset_delta = kp_read_varint(&r);
        rec->key = ref_bytes(&r);
        rec->value = ref_bytes(&r);
        rec->header_count = kp_read_varint(&r);
        rec->headers = (kp_bytes){r.p, (int32_t)(end - r.p)};
        kp_read_skip(&r, (size_t)(end - r.p));
    }
    return !r.err && rb->n == rb->count;
}

static void ref_free(ref_batch *rb)
{
    free(rb->plain);
    rb->plain = NULL;
}

static bool bytes_eq(kp_bytes b, const void *p, int32_t len)
{
    return b.len == len && (len <= 0 || memcmp(b.ptr, p, (size_t)len) == 0);
}

static bool bytes_eq_str(kp_bytes b, const char *s)
{
    return bytes_eq(b, s, (int32_t)strlen(s));
}

/* Everything but length, CRC, count and records must be as built. */
static void check_header_kept(const ref_batch *got, const ref_batch *was)
{
    KT_CHECK(got->base_offset == was->base_offset);
    KT_CHECK_EQ_INT(got->leader_epoch, was->leader_epoch);
    KT_CHECK_EQ_INT(got->attributes, was->attributes);
    KT_CHECK_EQ_INT(got->last_offset_delta, was->last_offset_delta);
    KT_CHECK(got->base_timestamp == was->base_timestamp);
    KT_CHECK(got->max_timestamp == was->max_timestamp);
    KT_CHECK(got->producer_id == was->producer_id);
    KT_CHECK_EQ_INT(got->producer_epoch, was->producer_epoch);
    KT_CHECK_EQ_INT(got->base_sequence, was->base_sequence);
}

/* ---- callbacks --------------------------------------------------------------------------- */

/* Collects copies of what a visit shows. */
typedef struct seen {
    int calls;
    int64_t base_offsets[2 * MAX_RECORDS];
    int32_t offset_deltas[2 * MAX_RECORDS];
    char values[2 * MAX_RECORDS][64];
    char keys[2 * MAX_RECORDS][16];
    int32_t header_counts[2 * MAX_RECORDS];
} seen;

static bool collect(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    seen *s = ctx;
    if (s->calls < 2 * MAX_RECORDS) {
        int i = s->calls;
        s->base_offsets[i] = batch->base_offset;
        s->offset_deltas[i] = rec->offset_delta;
        snprintf(s->values[i], sizeof(s->values[i]), "%.*s",
                 rec->value.len < 0 ? 6 : rec->value.len,
                 rec->value.len < 0 ? "(null)" : (const char *)rec->value.ptr);
        snprintf(s->keys[i], sizeof(s->keys[i]), "%.*s", rec->key.len < 0 ? 6 : rec->key.len,
                 rec->key.len < 0 ? "(null)" : (const char *)rec->key.ptr);
        s->header_counts[i] = rec->header_count;
    }
    s->calls++;
    *copies = 0; /* ignored by visit */
    return true;
}

/* Appends APPEND to every value (corrupt-records, "append" mode). */
typedef struct appender {
    const char *append;
    int64_t only_base_offset; /* -1: every batch */
    uint8_t buf[2 * MAX_RECORDS][128 * 1024];
    int used;
} appender;

static bool append_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    appender *ap = ctx;
    if (ap->only_base_offset >= 0 && batch->base_offset != ap->only_base_offset) return false;
    uint8_t *dst = ap->buf[ap->used++ % (2 * MAX_RECORDS)];
    size_t n = rec->value.len > 0 ? (size_t)rec->value.len : 0;
    if (n) memcpy(dst, rec->value.ptr, n);
    memcpy(dst + n, ap->append, strlen(ap->append));
    rec->value = (kp_bytes){dst, (int32_t)(n + strlen(ap->append))};
    return true;
}

static appender *appender_new(const char *append, int64_t only_base_offset)
{
    appender *ap = calloc(1, sizeof(*ap));
    ap->append = append;
    ap->only_base_offset = only_base_offset;
    return ap;
}

/* Overwrites the first value byte with 'X' in place, through a copy (corrupt "overwrite"). */
static bool overwrite_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    uint8_t *buf = ctx;
    if (rec->value.len < 1) return false;
    memcpy(buf, rec->value.ptr, (size_t)rec->value.len);
    buf[0] = 'X';
    rec->value.ptr = buf;
    return true;
}

/* invalid-schema-id: Confluent framing (magic 0 + 4-byte id) gets id 0x00ABCDEF. */
static bool schema_id_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    uint8_t *buf = ctx;
    if (rec->value.len < 5 || rec->value.ptr[0] != 0) return false;
    memcpy(buf, rec->value.ptr, (size_t)rec->value.len);
    buf[1] = 0x00;
    buf[2] = 0xab;
    buf[3] = 0xcd;
    buf[4] = 0xef;
    rec->value.ptr = buf;
    return true;
}

static bool duplicate_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    *copies = 2;
    return false; /* copies != 1 is a change by itself */
}

/* Drops records with an odd offset delta. */
static bool drop_odd_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    *copies = rec->offset_delta % 2 ? 0 : 1;
    return false;
}

static bool nothing_fn(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    int *calls = ctx;
    if (calls) (*calls)++;
    return false;
}

static const char *const FIVE[] = {"alpha", "bravo", "charlie", "delta", "echo"};
static const int CODECS[] = {KP_CODEC_NONE, KP_CODEC_GZIP, KP_CODEC_SNAPPY, KP_CODEC_LZ4,
                             KP_CODEC_ZSTD};
#define NCODECS 5

/* ---- CRC-32C ----------------------------------------------------------------------------- */

KT_TEST(crc32c_matches_published_vectors)
{
    /* "123456789" is the standard check value; the 32-byte ones are RFC 3720's (iSCSI). */
    KT_CHECK_EQ_INT(kp_crc32c(0, "123456789", 9), 0xE3069283u);
    KT_CHECK_EQ_INT(kp_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    uint8_t buf[32];
    memset(buf, 0, sizeof(buf));
    KT_CHECK_EQ_INT(kp_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    KT_CHECK_EQ_INT(kp_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    KT_CHECK_EQ_INT(kp_crc32c(0, buf, 32), 0x46DD794Eu);
    KT_CHECK_EQ_INT(kp_crc32c_portable(0, buf, 32), 0x46DD794Eu);
    KT_CHECK_EQ_INT(kp_crc32c(0, buf, 0), 0);
}

KT_TEST(crc32c_chains_and_both_implementations_agree)
{
    uint8_t buf[1000];
    uint64_t rng = 7;
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)kp_rand_next(&rng);
    for (size_t len = 0; len + 3 <= sizeof(buf); len += 37) {
        uint32_t whole = kp_crc32c(0, buf + 3, len); /* unaligned start on purpose */
        KT_CHECK_EQ_INT(kp_crc32c_portable(0, buf + 3, len), whole);
        size_t cut = len / 3;
        KT_CHECK_EQ_INT(kp_crc32c(kp_crc32c(0, buf + 3, cut), buf + 3 + cut, len - cut), whole);
        KT_CHECK_EQ_INT(
            kp_crc32c_portable(kp_crc32c_portable(0, buf + 3, cut), buf + 3 + cut, len - cut),
            whole);
    }
}

/* ---- visiting ---------------------------------------------------------------------------- */

KT_TEST(visit_shows_every_record_of_every_codec)
{
    for (int c = 0; c < NCODECS; c++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        tb_spec s = tb_strings(CODECS[c], 100, 5, FIVE);
        tb_batch(&w, &s);
        seen *sn = calloc(1, sizeof(*sn));
        KT_CHECK_EQ_INT(kp_records_visit(w.buf, w.len, collect, sn, NULL), 5);
        KT_CHECK_EQ_INT(sn->calls, 5);
        for (int i = 0; i < 5; i++) {
            KT_CHECK_EQ_STR(sn->values[i], FIVE[i]);
            KT_CHECK_EQ_INT(sn->offset_deltas[i], i);
            KT_CHECK_EQ_INT(sn->header_counts[i], i % 2);
            KT_CHECK(sn->base_offsets[i] == 100);
        }
        KT_CHECK_EQ_STR(sn->keys[3], "k3");
        KT_CHECK_EQ_INT(kp_records_crc_errors(w.buf, w.len), 0);
        free(sn);
        kp_writer_free(&w);
    }
}

KT_TEST(visit_reads_other_framings_the_clients_write)
{
    /* xerial snappy over several blocks, LZ4 with block and content checksums and a content
     * size, zstd without a content size (streamed) */
    static const struct {
        int codec, framing;
    } cases[] = {{KP_CODEC_SNAPPY, FRAMING_XERIAL},
                 {KP_CODEC_LZ4, FRAMING_LZ4_CHECKSUMS},
                 {KP_CODEC_ZSTD, FRAMING_ZSTD_STREAM}};
    static char big[3][40000];
    for (int i = 0; i < 3; i++) {
        memset(big[i], 'a' + i, sizeof(big[i]) - 1);
        big[i][sizeof(big[i]) - 1] = 0;
    }
    const char *values[] = {big[0], "small", big[1], big[2]};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        tb_spec s = tb_strings(cases[c].codec, 0, 4, values);
        s.framing = cases[c].framing;
        tb_batch(&w, &s);
        seen *sn = calloc(1, sizeof(*sn));
        KT_CHECK_EQ_INT(kp_records_visit(w.buf, w.len, collect, sn, NULL), 4);
        KT_CHECK_EQ_STR(sn->values[1], "small");
        KT_CHECK(strncmp(sn->values[2], big[1], 20) == 0);
        free(sn);
        kp_writer_free(&w);
    }
}

KT_TEST(visit_reads_concatenated_gzip_members)
{
    kp_writer plain, w;
    kp_writer_init(&plain, 0);
    kp_writer_init(&w, 0);
    for (int i = 0; i < 3; i++)
        tb_record(&plain, i, str_bytes(FIVE[i]));
    tb_spec s = tb_strings(KP_CODEC_GZIP, 0, 3, FIVE);
    tb_header(&w, &s, 3, 2);
    size_t half = plain.len / 2;
    gzip_into(&w, plain.buf, half);
    gzip_into(&w, plain.buf + half, plain.len - half);
    tb_seal(&w, 0);
    seen *sn = calloc(1, sizeof(*sn));
    KT_CHECK_EQ_INT(kp_records_visit(w.buf, w.len, collect, sn, NULL), 3);
    KT_CHECK_EQ_STR(sn->values[2], "charlie");
    free(sn);
    kp_writer_free(&plain);
    kp_writer_free(&w);
}

KT_TEST(visit_skips_control_legacy_and_partial_batches)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    /* a magic-1 message: offset, size, crc, magic, attributes, timestamp, key, value */
    kp_write_i64(&w, 0);
    kp_write_i32(&w, 4 + 1 + 1 + 8 + 4 + 4 + 3);
    kp_write_u32(&w, 0x12345678);
    kp_write_i8(&w, 1);
    kp_write_i8(&w, 0);
    kp_write_i64(&w, BASE_TIMESTAMP);
    kp_write_i32(&w, -1);
    kp_write_i32(&w, 3);
    kp_write_raw(&w, "old", 3);
    /* a control batch (commit marker: key version 0, type 1) */
    tb_spec ctl = tb_strings(KP_CODEC_NONE, 1, 1, (const char *[]){"\0\0\0\0\0\0"});
    ctl.values[0] = (kp_bytes){(const uint8_t *)"\0\0\0\0\0\0", 6};
    ctl.extra_attributes = 0x30; /* transactional + control */
    tb_batch(&w, &ctl);
    tb_spec data = tb_strings(KP_CODEC_LZ4, 2, 2, FIVE);
    tb_batch(&w, &data);
    size_t complete = w.len;
    tb_batch(&w, &data);
    w.len -= 9; /* the broker cut the last batch */
    int calls = 0;
    KT_CHECK_EQ_INT(kp_records_visit(w.buf, w.len, nothing_fn, &calls, NULL), 2);
    KT_CHECK_EQ_INT(calls, 2);
    KT_CHECK_EQ_INT(kp_records_visit(w.buf, complete, nothing_fn, NULL, NULL), 2);
    KT_CHECK_EQ_INT(kp_records_crc_errors(w.buf, w.len), 0);
    kp_writer_free(&w);
}

KT_TEST(visit_of_empty_and_cut_blobs_finds_nothing)
{
    KT_CHECK_EQ_INT(kp_records_visit(NULL, 0, nothing_fn, NULL, NULL), 0);
    kp_writer w;
    kp_writer_init(&w, 0);
    tb_spec s = tb_strings(KP_CODEC_ZSTD, 0, 5, FIVE);
    tb_batch(&w, &s);
    for (size_t cut = 1; cut < w.len; cut += 7)
        KT_CHECK_EQ_INT(kp_records_visit(w.buf, cut, nothing_fn, NULL, NULL), 0);
    kp_writer_free(&w);
}

/* ---- rewriting --------------------------------------------------------------------------- */

/* Builds S, rewrites it with FN, parses the result with the reference reader. */
static int rewrite_one(const tb_spec *s, kp_record_fn fn, void *ctx, bool keep_crc_valid,
                       ref_batch *was, ref_batch *got)
{
    kp_writer in, out;
    kp_writer_init(&in, 0);
    kp_writer_init(&out, 0);
    tb_batch(&in, s);
    KT_CHECK(ref_parse(in.buf, in.len, was));
    int rc = kp_records_rewrite(in.buf, in.len, fn, ctx, keep_crc_valid, NULL, &out);
    if (rc == 1) {
        KT_CHECK(ref_parse(out.buf, out.len, got));
        KT_CHECK_EQ_INT(got->size, out.len);
        KT_CHECK_EQ_INT(kp_records_crc_errors(out.buf, out.len), keep_crc_valid ? 0 : 1);
    }
    kp_writer_free(&in);
    kp_writer_free(&out);
    return rc;
}

KT_TEST(rewrite_appends_to_values_in_every_codec_with_a_valid_crc)
{
    for (int c = 0; c < NCODECS; c++) {
        appender *ap = appender_new("+++", -1);
        ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
        tb_spec s = tb_strings(CODECS[c], 500, 5, FIVE);
        KT_CHECK_EQ_INT(rewrite_one(&s, append_fn, ap, true, was, got), 1);
        KT_CHECK(got->crc_ok);
        KT_CHECK_EQ_INT(got->count, 5);
        check_header_kept(got, was);
        for (int i = 0; i < got->n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "%s+++", FIVE[i]);
            KT_CHECK(bytes_eq_str(got->rec[i].value, want));
            KT_CHECK(bytes_eq(got->rec[i].key, was->rec[i].key.ptr, was->rec[i].key.len));
            KT_CHECK_EQ_INT(got->rec[i].offset_delta, i);
            KT_CHECK(got->rec[i].timestamp_delta == i * 10);
            KT_CHECK_EQ_INT(got->rec[i].header_count, i % 2);
            KT_CHECK(
                bytes_eq(got->rec[i].headers, was->rec[i].headers.ptr, was->rec[i].headers.len));
        }
        ref_free(was);
        ref_free(got);
        free(was);
        free(got);
        free(ap);
    }
}

KT_TEST(rewrite_can_leave_the_old_crc_so_the_client_check_fires)
{
    for (int c = 0; c < NCODECS; c++) {
        uint8_t buf[64];
        ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
        tb_spec s = tb_strings(CODECS[c], 0, 5, FIVE);
        KT_CHECK_EQ_INT(rewrite_one(&s, overwrite_fn, buf, false, was, got), 1);
        KT_CHECK(!got->crc_ok);
        KT_CHECK_EQ_INT(got->crc, was->crc);
        check_header_kept(got, was);
        KT_CHECK(bytes_eq_str(got->rec[2].value, "Xharlie"));
        ref_free(was);
        ref_free(got);
        free(was);
        free(got);
    }
}

KT_TEST(rewrite_sets_the_schema_id_of_confluent_framed_values_only)
{
    static const uint8_t avro[] = {0, 0, 0, 0, 7, 'p', 'a', 'y'};
    static const uint8_t bare_id[] = {0, 0, 0, 1, 2};
    static const uint8_t short_value[] = {0, 1, 2};
    tb_spec s;
    memset(&s, 0, sizeof(s));
    s.codec = KP_CODEC_SNAPPY;
    s.n = 4;
    s.values[0] = (kp_bytes){avro, sizeof(avro)};
    s.values[1] = str_bytes("plain json {}"); /* not Confluent framing: untouched */
    s.values[2] = (kp_bytes){bare_id, sizeof(bare_id)};
    s.values[3] = (kp_bytes){short_value, sizeof(short_value)};
    uint8_t buf[64];
    ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
    KT_CHECK_EQ_INT(rewrite_one(&s, schema_id_fn, buf, true, was, got), 1);
    static const uint8_t want0[] = {0, 0, 0xab, 0xcd, 0xef, 'p', 'a', 'y'};
    static const uint8_t want2[] = {0, 0, 0xab, 0xcd, 0xef};
    KT_CHECK(bytes_eq(got->rec[0].value, want0, sizeof(want0)));
    KT_CHECK(bytes_eq_str(got->rec[1].value, "plain json {}"));
    KT_CHECK(bytes_eq(got->rec[2].value, want2, sizeof(want2)));
    KT_CHECK(bytes_eq(got->rec[3].value, short_value, sizeof(short_value)));
    KT_CHECK(got->crc_ok);
    KT_CHECK(!got->xerial); /* raw snappy in, raw snappy out */
    ref_free(was);
    ref_free(got);
    free(was);
    free(got);
}

KT_TEST(rewrite_duplicates_records_at_the_same_offset)
{
    for (int c = 0; c < NCODECS; c++) {
        ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
        tb_spec s = tb_strings(CODECS[c], 40, 5, FIVE);
        KT_CHECK_EQ_INT(rewrite_one(&s, duplicate_fn, NULL, true, was, got), 1);
        KT_CHECK_EQ_INT(got->count, 10);
        KT_CHECK_EQ_INT(got->n, 10);
        check_header_kept(got, was); /* lastOffsetDelta stays 4 */
        for (int i = 0; i < 10; i++) {
            KT_CHECK_EQ_INT(got->rec[i].offset_delta, i / 2);
            KT_CHECK(bytes_eq_str(got->rec[i].value, FIVE[i / 2]));
        }
        KT_CHECK(got->crc_ok);
        ref_free(was);
        ref_free(got);
        free(was);
        free(got);
    }
}

KT_TEST(rewrite_drops_records_and_keeps_the_batch_offset_range)
{
    ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
    tb_spec s = tb_strings(KP_CODEC_GZIP, 0, 5, FIVE);
    /* drops offset deltas 1 and 3; the range stays 0..4 so consumers continue at 5 */
    KT_CHECK_EQ_INT(rewrite_one(&s, drop_odd_fn, NULL, true, was, got), 1);
    KT_CHECK_EQ_INT(got->count, 3);
    KT_CHECK_EQ_INT(got->last_offset_delta, 4);
    KT_CHECK(bytes_eq_str(got->rec[1].value, "charlie"));
    KT_CHECK_EQ_INT(got->rec[1].offset_delta, 2);
    ref_free(was);
    ref_free(got);
    free(was);
    free(got);
}

KT_TEST(rewrite_keeps_null_keys_and_values_and_empty_batches)
{
    const char *values[] = {NULL, "", "x"};
    tb_spec s = tb_strings(KP_CODEC_LZ4, 0, 3, values);
    ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
    appender *ap = appender_new("!", -1);
    KT_CHECK_EQ_INT(rewrite_one(&s, append_fn, ap, true, was, got), 1);
    KT_CHECK(bytes_eq_str(got->rec[0].value, "!")); /* null + "!" */
    KT_CHECK(bytes_eq_str(got->rec[1].value, "!"));
    KT_CHECK(bytes_eq_str(got->rec[2].value, "x!"));
    ref_free(was);
    ref_free(got);
    /* an empty batch: nothing to call the callback for, nothing changes */
    kp_writer in, out;
    kp_writer_init(&in, 0);
    kp_writer_init(&out, 0);
    tb_spec empty = tb_strings(KP_CODEC_NONE, 0, 0, NULL);
    tb_batch(&in, &empty);
    KT_CHECK_EQ_INT(kp_records_visit(in.buf, in.len, nothing_fn, NULL, NULL), 0);
    KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, append_fn, ap, true, NULL, &out), 0);
    kp_writer_free(&in);
    kp_writer_free(&out);
    free(was);
    free(got);
    free(ap);
}

KT_TEST(rewrite_keeps_xerial_framing_over_several_blocks)
{
    static char big[70000];
    memset(big, 'z', sizeof(big) - 1);
    const char *values[] = {"first", big};
    tb_spec s = tb_strings(KP_CODEC_SNAPPY, 0, 2, values);
    s.framing = FRAMING_XERIAL;
    appender *ap = appender_new("-tail", -1);
    kp_writer in, out;
    kp_writer_init(&in, 0);
    kp_writer_init(&out, 0);
    tb_batch(&in, &s);
    KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, append_fn, ap, true, NULL, &out), 1);
    ref_batch *got = calloc(1, sizeof(*got));
    KT_CHECK(ref_parse(out.buf, out.len, got));
    KT_CHECK(got->xerial);
    KT_CHECK_EQ_MEM(out.buf + 61, XERIAL_HEADER, 16);
    KT_CHECK(bytes_eq_str(got->rec[0].value, "first-tail"));
    KT_CHECK_EQ_INT(got->rec[1].value.len, (int)sizeof(big) - 1 + 5);
    KT_CHECK(got->crc_ok);
    /* more than one 32 KiB block: the first block's length is at most 32 KiB compressed */
    uint32_t block0 =
        (uint32_t)out.buf[77] << 24 | out.buf[78] << 16 | out.buf[79] << 8 | out.buf[80];
    KT_CHECK(block0 < out.len - 81);
    ref_free(got);
    free(got);
    free(ap);
    kp_writer_free(&in);
    kp_writer_free(&out);
}

KT_TEST(rewrite_changes_only_the_batches_it_modifies)
{
    kp_writer in, out;
    kp_writer_init(&in, 0);
    kp_writer_init(&out, 0);
    tb_spec first = tb_strings(KP_CODEC_ZSTD, 0, 3, FIVE);
    tb_spec ctl = tb_strings(KP_CODEC_NONE, 3, 1, FIVE);
    ctl.extra_attributes = 0x30;
    tb_spec second = tb_strings(KP_CODEC_GZIP, 4, 2, FIVE + 3);
    tb_spec third = tb_strings(KP_CODEC_NONE, 6, 2, FIVE);
    tb_batch(&in, &first);
    size_t first_end = in.len;
    tb_batch(&in, &ctl);
    size_t ctl_end = in.len;
    tb_batch(&in, &second);
    size_t second_end = in.len;
    tb_batch(&in, &third);
    in.len -= 5; /* partial trailing batch */
    size_t tail = in.len - second_end;

    appender *ap = appender_new("#", 4); /* only the batch at base offset 4 */
    KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, append_fn, ap, true, NULL, &out), 1);
    KT_CHECK_EQ_INT(ap->used, 2); /* control records are never shown */
    KT_CHECK_EQ_MEM(out.buf, in.buf, ctl_end);
    ref_batch *got = calloc(1, sizeof(*got));
    KT_CHECK(ref_parse(out.buf + ctl_end, out.len - ctl_end, got));
    KT_CHECK(bytes_eq_str(got->rec[0].value, "delta#"));
    KT_CHECK(bytes_eq_str(got->rec[1].value, "echo#"));
    KT_CHECK(got->crc_ok);
    size_t second_new_end = ctl_end + got->size;
    KT_CHECK_EQ_INT(out.len, second_new_end + tail);
    KT_CHECK_EQ_MEM(out.buf + second_new_end, in.buf + second_end, tail);
    KT_CHECK(first_end > 0);
    ref_free(got);
    free(got);
    free(ap);
    kp_writer_free(&in);
    kp_writer_free(&out);
}

KT_TEST(rewrite_reports_no_change_and_restores_out)
{
    kp_writer in, out;
    kp_writer_init(&in, 0);
    kp_writer_init(&out, 0);
    tb_spec s = tb_strings(KP_CODEC_SNAPPY, 0, 5, FIVE);
    tb_batch(&in, &s);
    kp_write_raw(&out, "prefix", 6);
    int calls = 0;
    KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, nothing_fn, &calls, true, NULL, &out), 0);
    KT_CHECK_EQ_INT(calls, 5);
    KT_CHECK_EQ_INT(out.len, 6);
    /* and appends after what OUT held when something changed */
    appender *ap = appender_new("?", -1);
    KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, append_fn, ap, true, NULL, &out), 1);
    KT_CHECK_EQ_MEM(out.buf, "prefix", 6);
    KT_CHECK_EQ_INT(kp_records_visit(out.buf + 6, out.len - 6, nothing_fn, NULL, NULL), 5);
    free(ap);
    kp_writer_free(&in);
    kp_writer_free(&out);
}

KT_TEST(rewrite_output_rewrites_again)
{
    /* the codec is stable on its own output: rewriting twice appends twice */
    for (int c = 0; c < NCODECS; c++) {
        kp_writer in, once, twice;
        kp_writer_init(&in, 0);
        kp_writer_init(&once, 0);
        kp_writer_init(&twice, 0);
        tb_spec s = tb_strings(CODECS[c], 0, 5, FIVE);
        tb_batch(&in, &s);
        appender *ap = appender_new(".", -1);
        KT_CHECK_EQ_INT(kp_records_rewrite(in.buf, in.len, append_fn, ap, true, NULL, &once), 1);
        KT_CHECK_EQ_INT(kp_records_rewrite(once.buf, once.len, append_fn, ap, true, NULL, &twice),
                        1);
        seen *sn = calloc(1, sizeof(*sn));
        KT_CHECK_EQ_INT(kp_records_visit(twice.buf, twice.len, collect, sn, NULL), 5);
        KT_CHECK_EQ_STR(sn->values[4], "echo..");
        free(sn);
        free(ap);
        kp_writer_free(&in);
        kp_writer_free(&once);
        kp_writer_free(&twice);
    }
}

/* ---- malformed input --------------------------------------------------------------------- */

/* Both entry points must refuse BLOB, and a refused rewrite must leave OUT as it was. */
static void check_refused(const uint8_t *blob, size_t len)
{
    kp_writer out;
    kp_writer_init(&out, 0);
    appender *ap = appender_new("x", -1);
    KT_CHECK_EQ_INT(kp_records_visit(blob, len, nothing_fn, NULL, NULL), -1);
    KT_CHECK_EQ_INT(kp_records_rewrite(blob, len, append_fn, ap, true, NULL, &out), -1);
    KT_CHECK_EQ_INT(out.len, 0);
    free(ap);
    kp_writer_free(&out);
}

static void build_plain(kp_writer *w, int codec)
{
    tb_spec s = tb_strings(codec, 0, 5, FIVE);
    tb_batch(w, &s);
}

KT_TEST(malformed_framing_is_refused)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    build_plain(&w, KP_CODEC_NONE);
    uint8_t *b = malloc(w.len);

    memcpy(b, w.buf, w.len);
    b[8] = b[9] = b[10] = 0;
    b[11] = 13; /* batch length below any entry's minimum */
    check_refused(b, w.len);
    b[8] = 0xff; /* negative batch length */
    check_refused(b, w.len);

    memcpy(b, w.buf, w.len);
    b[16] = 3; /* unknown magic */
    check_refused(b, w.len);
    KT_CHECK_EQ_INT(kp_records_crc_errors(b, w.len), -1);

    memcpy(b, w.buf, w.len);
    b[11] = 40; /* complete but shorter than a magic-2 header */
    check_refused(b, 52);

    memcpy(b, w.buf, w.len);
    b[22] |= 5; /* codec 5 does not exist */
    check_refused(b, w.len);
    free(b);
    kp_writer_free(&w);
}

KT_TEST(malformed_record_counts_and_lengths_are_refused)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    build_plain(&w, KP_CODEC_NONE);
    uint8_t *b = malloc(w.len + 8);
    static const uint8_t counts[][4] = {
        {0, 0, 0, 6}, {0, 0, 0, 4}, {0x7f, 0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        memcpy(b, w.buf, w.len);
        memcpy(b + 57, counts[i], 4);
        check_refused(b, w.len);
    }
    memcpy(b, w.buf, w.len);
    b[61] = 0x7e; /* first record's length: 63, far beyond its bytes */
    check_refused(b, w.len);
    b[61] = 0x01; /* length -1 */
    check_refused(b, w.len);

    /* trailing bytes after the declared records */
    memcpy(b, w.buf, w.len);
    memset(b + w.len, 0, 8);
    kp_writer t;
    kp_writer_init(&t, 0);
    kp_write_raw(&t, b, w.len + 8);
    tb_seal(&t, 0);
    check_refused(t.buf, t.len);
    kp_writer_free(&t);

    /* a header count beyond the record's bytes */
    memcpy(b, w.buf, w.len);
    /* record 0: len, attr, ts 0, off 0, key "k0" (len 2), value "alpha" (5), headers 0 */
    size_t hc = 61 + 1 + 1 + 1 + 1 + 1 + 2 + 1 + 5;
    KT_CHECK_EQ_INT(b[hc], 0);
    b[hc] = 0x7e;
    check_refused(b, w.len);
    free(b);
    kp_writer_free(&w);
}

KT_TEST(malformed_compressed_data_is_refused_for_every_codec)
{
    for (int c = 1; c < NCODECS; c++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        build_plain(&w, CODECS[c]);
        uint8_t *b = malloc(w.len);
        /* truncated compressed block (the batch itself is complete) */
        for (size_t cut = 1; cut < w.len - 61; cut += 3) {
            kp_writer t;
            kp_writer_init(&t, 0);
            kp_write_raw(&t, w.buf, w.len - cut);
            tb_seal(&t, 0);
            check_refused(t.buf, t.len);
            kp_writer_free(&t);
        }
        /* garbage where the block should be */
        memcpy(b, w.buf, w.len);
        for (size_t i = 61; i < w.len; i++)
            b[i] = (uint8_t)(i * 31 + 7);
        check_refused(b, w.len);
        free(b);
        kp_writer_free(&w);
    }
}

KT_TEST(decompression_bombs_are_refused_for_every_codec)
{
    /* one record whose value is 65 MiB of zeros: beyond the cap once decompressed */
    size_t big = KP_RECORDS_MAX_DECOMPRESSED + (1u << 20);
    uint8_t *zeros = calloc(1, big);
    kp_writer plain;
    kp_writer_init(&plain, 0);
    tb_record(&plain, 0, (kp_bytes){zeros, (int32_t)big});
    free(zeros);
    for (int c = 1; c < NCODECS; c++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        tb_spec s = tb_strings(CODECS[c], 0, 1, FIVE);
        tb_header(&w, &s, 1, 0);
        compress_into(&w, CODECS[c], FRAMING_DEFAULT, plain.buf, plain.len);
        tb_seal(&w, 0);
        KT_CHECK(w.len < 8u << 20); /* it really is a bomb */
        check_refused(w.buf, w.len);
        kp_writer_free(&w);
    }
    kp_writer_free(&plain);
}

/* ---- batches written by librdkafka 2.0.2 (Debian) ------------------------------------------
 * Captured off the wire: `kgate dev-cluster`, then kcat -P -K: -X compression.codec=<c> sending
 * "k1:hello-<c>-value-one" and "k2:hello <c> value two, some repeated repeated repeated text",
 * the Produce v7 request read with strace. librdkafka writes RAW snappy (no xerial framing) and
 * LZ4 frames with independent blocks. */

static const uint8_t LIBRDKAFKA_GZIP[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8c, 0x00, 0x00, 0x00, 0x00,
    0x02, 0xac, 0x03, 0xc7, 0x25, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x00,
    0x9c, 0x8e, 0x5d, 0x00, 0x00, 0x01, 0xa2, 0x00, 0x9c, 0x8e, 0x5d, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x1f, 0x8b, 0x08,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xb3, 0x60, 0x60, 0x60, 0x60, 0xc9, 0x36, 0xd4, 0xc8,
    0x48, 0xcd, 0xc9, 0xc9, 0xd7, 0x4d, 0xaf, 0xca, 0x2c, 0xd0, 0x2d, 0x4b, 0xcc, 0x29, 0x4d, 0xd5,
    0xcd, 0xcf, 0x4b, 0x65, 0x68, 0x61, 0x64, 0x60, 0x60, 0x62, 0xc9, 0x36, 0x2a, 0x01, 0xcb, 0x2a,
    0x80, 0x64, 0x15, 0xc0, 0xb2, 0x0a, 0x25, 0xe5, 0xf9, 0x3a, 0x0a, 0xc5, 0xf9, 0xb9, 0xa9, 0x0a,
    0x45, 0xa9, 0x05, 0xa9, 0x89, 0x25, 0xa9, 0x29, 0x58, 0x18, 0x25, 0xa9, 0x15, 0x25, 0x0c, 0x00,
    0x26, 0x8a, 0xae, 0x15, 0x61, 0x00, 0x00, 0x00};
static const uint8_t LIBRDKAFKA_SNAPPY[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x95, 0xcc, 0x3c, 0xf7, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x00,
    0x9c, 0x8e, 0x76, 0x00, 0x00, 0x01, 0xa2, 0x00, 0x9c, 0x8e, 0x76, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x65, 0xa0, 0x3c,
    0x00, 0x00, 0x00, 0x04, 0x6b, 0x31, 0x2c, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2d, 0x73, 0x6e, 0x61,
    0x70, 0x70, 0x79, 0x2d, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x2d, 0x6f, 0x6e, 0x65, 0x00, 0x88, 0x01,
    0x00, 0x00, 0x02, 0x04, 0x6b, 0x32, 0x78, 0x68, 0x01, 0x20, 0x04, 0x20, 0x73, 0x05, 0x20, 0x00,
    0x20, 0x05, 0x20, 0x48, 0x20, 0x74, 0x77, 0x6f, 0x2c, 0x20, 0x73, 0x6f, 0x6d, 0x65, 0x20, 0x72,
    0x65, 0x70, 0x65, 0x61, 0x74, 0x65, 0x64, 0x4a, 0x09, 0x00, 0x10, 0x74, 0x65, 0x78, 0x74, 0x00};
static const uint8_t LIBRDKAFKA_LZ4[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8f, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x40, 0x85, 0xa6, 0xa9, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x00,
    0x9c, 0x8e, 0x96, 0x00, 0x00, 0x01, 0xa2, 0x00, 0x9c, 0x8e, 0x96, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x04, 0x22, 0x4d,
    0x18, 0x60, 0x40, 0x82, 0x4f, 0x00, 0x00, 0x00, 0xf1, 0x16, 0x36, 0x00, 0x00, 0x00, 0x04, 0x6b,
    0x31, 0x26, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2d, 0x6c, 0x7a, 0x34, 0x2d, 0x76, 0x61, 0x6c, 0x75,
    0x65, 0x2d, 0x6f, 0x6e, 0x65, 0x00, 0x82, 0x01, 0x00, 0x00, 0x02, 0x04, 0x6b, 0x32, 0x72, 0x1d,
    0x00, 0x51, 0x20, 0x6c, 0x7a, 0x34, 0x20, 0x1d, 0x00, 0xff, 0x04, 0x20, 0x74, 0x77, 0x6f, 0x2c,
    0x20, 0x73, 0x6f, 0x6d, 0x65, 0x20, 0x72, 0x65, 0x70, 0x65, 0x61, 0x74, 0x65, 0x64, 0x09, 0x00,
    0x00, 0x50, 0x74, 0x65, 0x78, 0x74, 0x00, 0x00, 0x00, 0x00, 0x00};
static const uint8_t LIBRDKAFKA_ZSTD[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x82, 0x66, 0xa5, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x00,
    0x9c, 0x8e, 0xc0, 0x00, 0x00, 0x01, 0xa2, 0x00, 0x9c, 0x8e, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x28, 0xb5, 0x2f,
    0xfd, 0x00, 0x58, 0x55, 0x02, 0x00, 0x02, 0x04, 0x0f, 0x17, 0x90, 0x3b, 0x07, 0x37, 0x50, 0xb4,
    0x4e, 0x61, 0xd5, 0x16, 0xe6, 0x9c, 0x77, 0x77, 0xf8, 0xa8, 0x6f, 0xbc, 0xcc, 0x6a, 0xfe, 0x28,
    0x05, 0xfd, 0xe3, 0x33, 0x7f, 0x59, 0xf1, 0x82, 0x46, 0xf2, 0xe1, 0x90, 0xce, 0x11, 0xf1, 0x45,
    0x4b, 0x41, 0x0b, 0x44, 0x75, 0x92, 0xca, 0x8c, 0x5b, 0x8d, 0x62, 0x7f, 0x90, 0x4a, 0xe7, 0x7c,
    0x08, 0x44, 0x4b, 0x6d, 0x8d, 0x04, 0x00, 0x59, 0x32, 0x80, 0x13, 0x60, 0xd7, 0xa1, 0x55, 0x4f};
static const uint8_t LIBRDKAFKA_NONE[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x92, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x47, 0x8e, 0x85, 0xc2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x00,
    0x9c, 0x8e, 0xdd, 0x00, 0x00, 0x01, 0xa2, 0x00, 0x9c, 0x8e, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x02, 0x38, 0x00, 0x00,
    0x00, 0x04, 0x6b, 0x31, 0x28, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2d, 0x6e, 0x6f, 0x6e, 0x65, 0x2d,
    0x76, 0x61, 0x6c, 0x75, 0x65, 0x2d, 0x6f, 0x6e, 0x65, 0x00, 0x84, 0x01, 0x00, 0x00, 0x02, 0x04,
    0x6b, 0x32, 0x74, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x6e, 0x6f, 0x6e, 0x65, 0x20, 0x76, 0x61,
    0x6c, 0x75, 0x65, 0x20, 0x74, 0x77, 0x6f, 0x2c, 0x20, 0x73, 0x6f, 0x6d, 0x65, 0x20, 0x72, 0x65,
    0x70, 0x65, 0x61, 0x74, 0x65, 0x64, 0x20, 0x72, 0x65, 0x70, 0x65, 0x61, 0x74, 0x65, 0x64, 0x20,
    0x72, 0x65, 0x70, 0x65, 0x61, 0x74, 0x65, 0x64, 0x20, 0x74, 0x65, 0x78, 0x74, 0x00};

static const struct {
    const char *name;
    const uint8_t *bytes;
    size_t len;
} LIBRDKAFKA[] = {
    {"none", LIBRDKAFKA_NONE, sizeof(LIBRDKAFKA_NONE)},
    {"gzip", LIBRDKAFKA_GZIP, sizeof(LIBRDKAFKA_GZIP)},
    {"snappy", LIBRDKAFKA_SNAPPY, sizeof(LIBRDKAFKA_SNAPPY)},
    {"lz4", LIBRDKAFKA_LZ4, sizeof(LIBRDKAFKA_LZ4)},
    {"zstd", LIBRDKAFKA_ZSTD, sizeof(LIBRDKAFKA_ZSTD)},
};

KT_TEST(librdkafka_batches_of_every_codec_decode)
{
    for (int c = 0; c < NCODECS; c++) {
        KT_CHECK_EQ_INT(LIBRDKAFKA[c].bytes[22], c); /* the codec the batch says */
        KT_CHECK_EQ_INT(kp_records_crc_errors(LIBRDKAFKA[c].bytes, LIBRDKAFKA[c].len), 0);
        seen *sn = calloc(1, sizeof(*sn));
        KT_CHECK_EQ_INT(kp_records_visit(LIBRDKAFKA[c].bytes, LIBRDKAFKA[c].len, collect, sn, NULL),
                        2);
        char want[96];
        snprintf(want, sizeof(want), "hello-%s-value-one", LIBRDKAFKA[c].name);
        KT_CHECK_EQ_STR(sn->values[0], want);
        snprintf(want, sizeof(want), "hello %s value two, some repeated repeated repeated text",
                 LIBRDKAFKA[c].name);
        KT_CHECK_EQ_STR(sn->values[1], want);
        KT_CHECK_EQ_STR(sn->keys[1], "k2");
        KT_CHECK_EQ_INT(sn->offset_deltas[1], 1);
        free(sn);
    }
}

KT_TEST(librdkafka_batches_rewrite_in_their_own_framing)
{
    for (int c = 0; c < NCODECS; c++) {
        kp_writer out;
        kp_writer_init(&out, 0);
        appender *ap = appender_new("<corrupt>", -1);
        KT_CHECK_EQ_INT(kp_records_rewrite(LIBRDKAFKA[c].bytes, LIBRDKAFKA[c].len, append_fn, ap,
                                           true, NULL, &out),
                        1);
        ref_batch *was = calloc(1, sizeof(*was)), *got = calloc(1, sizeof(*got));
        KT_CHECK(ref_parse(LIBRDKAFKA[c].bytes, LIBRDKAFKA[c].len, was));
        KT_CHECK(ref_parse(out.buf, out.len, got));
        check_header_kept(got, was);
        KT_CHECK(got->crc_ok);
        KT_CHECK(!got->xerial);
        char want[96];
        snprintf(want, sizeof(want), "hello-%s-value-one<corrupt>", LIBRDKAFKA[c].name);
        KT_CHECK(bytes_eq_str(got->rec[0].value, want));
        if (c == KP_CODEC_LZ4) KT_CHECK_EQ_INT(got->lz4_flags & 0x20, 0x20); /* independent */
        ref_free(was);
        ref_free(got);
        free(was);
        free(got);
        free(ap);
        kp_writer_free(&out);
    }
}

/* ---- a real librdkafka producer and consumer around kp_records -----------------------------
 * librdkafka's mock cluster stands in for the broker: a librdkafka producer writes a batch with
 * each codec, the batch is fetched raw (Fetch v4), rewritten, produced raw (Produce v3) to a
 * second topic, and a librdkafka consumer with check.crcs=true reads it back: the consumer
 * must see the rewritten values, every copy of a duplicated record, or a CRC error. */

#define LIVE_TIMEOUT_S 30 /* only a bound against hanging; the checks never depend on time */

typedef struct live {
    rd_kafka_t *host; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    int fd;
    int32_t correlation;
} live;

static bool live_start(live *l)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    l->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!l->host) return false;
    l->mc = rd_kafka_mock_cluster_new(l->host, 1);
    if (!l->mc) return false;
    const char *bs = rd_kafka_mock_cluster_bootstraps(l->mc);
    const char *colon = strrchr(bs, ':');
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {LIVE_TIMEOUT_S, 0};
    setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return connect(l->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static void live_stop(live *l)
{
    if (l->fd >= 0) close(l->fd);
    if (l->mc) rd_kafka_mock_cluster_destroy(l->mc);
    if (l->host) rd_kafka_destroy(l->host);
}

static rd_kafka_conf_t *live_conf(live *l)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(l->mc), err,
                      sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    return conf;
}

/* Sends one request (header v1) and reads its response body (after the correlation id). */
static bool live_call(live *l, int16_t api, int16_t version, const kp_writer *body, kp_writer *resp)
{
    kp_writer req;
    kp_writer_init(&req, 0);
    size_t at = kp_writer_reserve_len(&req);
    kp_write_i16(&req, api);
    kp_write_i16(&req, version);
    kp_write_i32(&req, ++l->correlation);
    kp_write_string(&req, kp_str_c("kt-records"));
    kp_write_raw(&req, body->buf, body->len);
    kp_writer_patch_len(&req, at);
    bool ok = write(l->fd, req.buf, req.len) == (ssize_t)req.len;
    kp_writer_free(&req);
    uint8_t size[4];
    ok = ok && recv(l->fd, size, 4, MSG_WAITALL) == 4;
    size_t n = ok ? (size_t)size[0] << 24 | size[1] << 16 | size[2] << 8 | size[3] : 0;
    uint8_t *dst = ok ? kp_writer_extend(resp, n) : NULL;
    ok = dst && recv(l->fd, dst, n, MSG_WAITALL) == (ssize_t)n && n >= 4;
    if (!ok) return false;
    memmove(resp->buf, resp->buf + 4, n - 4); /* drop the correlation id */
    resp->len -= 4;
    return true;
}

/* The records of TOPIC/0 from offset 0 (Fetch v4). */
static bool live_fetch(live *l, const char *topic, kp_writer *records)
{
    kp_writer body, resp;
    kp_writer_init(&body, 0);
    kp_writer_init(&resp, 0);
    kp_write_i32(&body, -1);      /* replica */
    kp_write_i32(&body, 100);     /* max wait ms */
    kp_write_i32(&body, 1);       /* min bytes */
    kp_write_i32(&body, 1 << 20); /* max bytes */
    kp_write_i8(&body, 0);        /* read uncommitted */
    kp_write_i32(&body, 1);
    kp_write_string(&body, kp_str_c(topic));
    kp_write_i32(&body, 1);
    kp_write_i32(&body, 0);       /* partition */
    kp_write_i64(&body, 0);       /* fetch offset */
    kp_write_i32(&body, 1 << 20); /* partition max bytes */
    bool ok = live_call(l, 1, 4, &body, &resp);
    kp_reader r;
    kp_reader_init(&r, resp.buf, resp.len);
    kp_read_i32(&r); /* throttle */
    ok = ok && kp_read_i32(&r) == 1;
    kp_read_string(&r);
    ok = ok && kp_read_i32(&r) == 1;
    kp_read_i32(&r);                 /* partition */
    ok = ok && kp_read_i16(&r) == 0; /* error */
    kp_read_i64(&r);                 /* high watermark */
    kp_read_i64(&r);                 /* last stable offset */
    int32_t aborted = kp_read_i32(&r);
    kp_read_skip(&r, aborted > 0 ? (size_t)aborted * 16 : 0);
    kp_bytes blob = kp_read_nullable_bytes(&r);
    ok = ok && !r.err && blob.len > 0;
    if (ok) kp_write_raw(records, blob.ptr, (size_t)blob.len);
    kp_writer_free(&body);
    kp_writer_free(&resp);
    return ok;
}

/* Appends BLOB to TOPIC/0 (Produce v3, acks=1). */
static bool live_produce_raw(live *l, const char *topic, const kp_writer *blob)
{
    kp_writer body, resp;
    kp_writer_init(&body, 0);
    kp_writer_init(&resp, 0);
    kp_write_string(&body, KP_STR_NULL); /* transactional id */
    kp_write_i16(&body, 1);
    kp_write_i32(&body, 5000);
    kp_write_i32(&body, 1);
    kp_write_string(&body, kp_str_c(topic));
    kp_write_i32(&body, 1);
    kp_write_i32(&body, 0);
    kp_write_bytes(&body, (kp_bytes){blob->buf, (int32_t)blob->len});
    bool ok = live_call(l, 0, 3, &body, &resp);
    kp_reader r;
    kp_reader_init(&r, resp.buf, resp.len);
    ok = ok && kp_read_i32(&r) == 1;
    kp_read_string(&r);
    ok = ok && kp_read_i32(&r) == 1;
    kp_read_i32(&r);
    int16_t error = kp_read_i16(&r);
    KT_CHECK_EQ_INT(error, 0);
    ok = ok && !r.err && error == 0;
    kp_writer_free(&body);
    kp_writer_free(&resp);
    return ok;
}

static bool live_produce(live *l, const char *topic, const char *codec, int n,
                         const char *const *values)
{
    char err[256];
    rd_kafka_conf_t *conf = live_conf(l);
    rd_kafka_conf_set(conf, "compression.codec", codec, err, sizeof(err));
    /* One batch for all: sent when the N-th message is in, not earlier. */
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    rd_kafka_conf_set(conf, "batch.num.messages", num, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "10000", err, sizeof(err));
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!p) return false;
    /* Learn the leader first: a message produced before that may leave in a batch of its own. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(p, 0, rkt, &md, LIVE_TIMEOUT_S * 1000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    for (int i = 0; i < n; i++)
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_VALUE((void *)values[i], strlen(values[i])),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    bool ok = rd_kafka_flush(p, LIVE_TIMEOUT_S * 1000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_destroy(p);
    return ok;
}

typedef struct live_consumed {
    int n, errors;
    int64_t offsets[32];
    char values[32][96];
} live_consumed;

/* Reads TOPIC/0 from the start with check.crcs=true until WANT messages or errors came. */
static void live_consume(live *l, const char *topic, int want, live_consumed *got)
{
    char err[256];
    memset(got, 0, sizeof(*got));
    rd_kafka_conf_t *conf = live_conf(l);
    rd_kafka_conf_set(conf, "group.id", "kt-records", err, sizeof(err));
    rd_kafka_conf_set(conf, "check.crcs", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    for (int polls = 0; polls < LIVE_TIMEOUT_S * 10 && got->n + got->errors < want; polls++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (got->n + got->errors > 0) polls = LIVE_TIMEOUT_S * 10; /* all there is */
        } else if (m->err) {
            got->errors++;
        } else if (got->n < 32) {
            got->offsets[got->n] = m->offset;
            snprintf(got->values[got->n], sizeof(got->values[0]), "%.*s", (int)m->len,
                     (const char *)m->payload);
            got->n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

/* Repetitive enough that librdkafka compresses them (it sends a batch uncompressed when
 * compression would not make it smaller). */
static const char *const LIVE_VALUES[] = {
    "one one one one one one one one one one one one",
    "two two two two two two two two two two two two",
    "three three three three three three three three",
};
static const char *const LIVE_CODECS[] = {"none", "gzip", "snappy", "lz4", "zstd"};

/* Produces with CODEC, rewrites the fetched batch with FN, re-produces it to a new topic. */
static bool live_rewrite_round(live *l, int codec, kp_record_fn fn, void *ctx, bool keep_crc_valid,
                               char *dst_topic, size_t dst_len)
{
    char src[64];
    snprintf(src, sizeof(src), "src-%s-%d", LIVE_CODECS[codec], l->correlation);
    snprintf(dst_topic, dst_len, "dst-%s-%d", LIVE_CODECS[codec], l->correlation);
    rd_kafka_mock_topic_create(l->mc, src, 1, 1);
    rd_kafka_mock_topic_create(l->mc, dst_topic, 1, 1);
    kp_writer fetched, rewritten;
    kp_writer_init(&fetched, 0);
    kp_writer_init(&rewritten, 0);
    bool ok =
        live_produce(l, src, LIVE_CODECS[codec], 3, LIVE_VALUES) && live_fetch(l, src, &fetched);
    KT_CHECK(ok);
    KT_CHECK_EQ_INT(ok ? fetched.buf[22] & 7 : -1, codec); /* librdkafka used the codec */
    KT_CHECK_EQ_INT(ok ? kp_records_visit(fetched.buf, fetched.len, nothing_fn, NULL, NULL) : -1,
                    3); /* all in the one batch */
    int rc =
        ok ? kp_records_rewrite(fetched.buf, fetched.len, fn, ctx, keep_crc_valid, NULL, &rewritten)
           : -1;
    KT_CHECK_EQ_INT(rc, 1);
    ok = rc == 1 && live_produce_raw(l, dst_topic, &rewritten);
    kp_writer_free(&fetched);
    kp_writer_free(&rewritten);
    return ok;
}

KT_TEST(librdkafka_consumer_reads_rewritten_batches_of_every_codec)
{
    live l;
    KT_CHECK(live_start(&l));
    for (int c = 0; c < NCODECS && l.fd >= 0; c++) {
        appender *ap = appender_new("+kgate", -1);
        char dst[64];
        if (live_rewrite_round(&l, c, append_fn, ap, true, dst, sizeof(dst))) {
            live_consumed *got = calloc(1, sizeof(*got));
            live_consume(&l, dst, 3, got);
            KT_CHECK_EQ_INT(got->errors, 0);
            KT_CHECK_EQ_INT(got->n, 3);
            for (int i = 0; i < 3; i++) {
                char want[96];
                snprintf(want, sizeof(want), "%s+kgate", LIVE_VALUES[i]);
                KT_CHECK_EQ_STR(got->values[i], want);
            }
            free(got);
        }
        free(ap);
    }
    live_stop(&l);
}

KT_TEST(librdkafka_consumer_reports_the_kept_invalid_crc)
{
    live l;
    KT_CHECK(live_start(&l));
    for (int c = 0; c < NCODECS && l.fd >= 0; c++) {
        uint8_t buf[64];
        char dst[64];
        if (live_rewrite_round(&l, c, overwrite_fn, buf, false, dst, sizeof(dst))) {
            live_consumed *got = calloc(1, sizeof(*got));
            live_consume(&l, dst, 1, got);
            KT_CHECK(got->errors >= 1); /* the CRC check fired */
            KT_CHECK_EQ_INT(got->n, 0);
            free(got);
        }
    }
    live_stop(&l);
}

/* librdkafka skips only records below the offset the fetch asked for, so both copies of a record
 * in one response are delivered. (The mock broker keeps the batch with its record count of 6 as
 * the offset range, so a later fetch at offset 3 would find it again; the loop stops at the six
 * records of the first response, the ones a real fetch through kgate returns.) */
KT_TEST(librdkafka_consumer_delivers_both_copies_of_a_duplicated_record)
{
    live l;
    KT_CHECK(live_start(&l));
    for (int c = 0; c < NCODECS && l.fd >= 0; c++) {
        char dst[64];
        if (live_rewrite_round(&l, c, duplicate_fn, NULL, true, dst, sizeof(dst))) {
            live_consumed *got = calloc(1, sizeof(*got));
            live_consume(&l, dst, 6, got);
            KT_CHECK_EQ_INT(got->errors, 0);
            KT_CHECK_EQ_INT(got->n, 6);
            for (int i = 0; i < got->n && i < 6; i++) {
                KT_CHECK_EQ_STR(got->values[i], LIVE_VALUES[i / 2]);
                KT_CHECK(got->offsets[i] == i / 2); /* same offset twice */
            }
            free(got);
        }
    }
    live_stop(&l);
}

KT_MAIN()
