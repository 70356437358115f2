/* kp_records — Kafka record batches (magic 2): iterate, rewrite, recompress, re-checksum.
 *
 * A records blob is a run of batches, each framed as baseOffset int64 + batchLength int32 +
 * batchLength bytes. Only complete magic-2 data batches are opened; everything else (legacy
 * message sets, control batches, a trailing partial batch cut off by the broker's fetch size
 * limit) is copied byte for byte, so a rewrite changes no more than it has to.
 *
 * Fixed layout of a magic-2 batch header (61 bytes), by offset:
 *    0 baseOffset int64        27 baseTimestamp int64
 *    8 batchLength int32       35 maxTimestamp int64
 *   12 partitionLeaderEpoch    43 producerId int64
 *   16 magic int8              51 producerEpoch int16
 *   17 crc uint32 (CRC-32C)    53 baseSequence int32
 *   21 attributes int16        57 records count int32
 *   23 lastOffsetDelta int32   61 records (compressed as one block when attributes say so)
 * The CRC covers offset 21 to the end of the batch.
 */
#include "proto/kp_records.h"

#include <limits.h>
#include <lz4frame.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength: the part batchLength leaves out */
#define BATCH_HEADER_SIZE 61
#define BATCH_OFF_LENGTH 8
#define BATCH_OFF_EPOCH 12
#define BATCH_OFF_MAGIC 16
#define BATCH_OFF_CRC 17
#define BATCH_OFF_ATTRIBUTES 21
#define BATCH_OFF_LAST_OFFSET_DELTA 23
#define BATCH_OFF_BASE_TIMESTAMP 27
#define BATCH_OFF_MAX_TIMESTAMP 35
#define BATCH_OFF_PRODUCER_ID 43
#define BATCH_OFF_PRODUCER_EPOCH 51
#define BATCH_OFF_BASE_SEQUENCE 53
#define BATCH_OFF_COUNT 57
/* Kafka's own lower bound for any entry of a log (a magic-0 message with null key and value):
 * anything shorter is corrupt, not merely cut off. */
#define LOG_ENTRY_MIN_SIZE 14
/* Smallest record: length, attributes, timestampDelta, offsetDelta, keyLength, valueLength and
 * header count, one byte each. Bounds a hostile record count by the bytes present. */
#define RECORD_MIN_SIZE 7

#define ATTR_CODEC_MASK 0x07
#define ATTR_CONTROL 0x20

/* ---- CRC-32C ----------------------------------------------------------------------------- */

/* Castagnoli polynomial, bit-reflected. */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static bool crc32c_hw;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
        crc32c_table[0][i] = c;
    }
    /* Slicing-by-8: table t advances a byte that is t positions further from the end. */
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc32c_table[t][i] =
                (crc32c_table[t - 1][i] >> 8) ^ crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t kp_crc32c_portable(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
    const uint8_t *b = p;
    crc = ~crc;
    while (n >= 8) {
        /* Byte-wise loads: no alignment or endianness assumptions. */
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
              crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
              crc32c_table[3][b[4]] ^ crc32c_table[2][b[5]] ^ crc32c_table[1][b[6]] ^
              crc32c_table[0][b[7]];
        b += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *b++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__)
/* The SSE4.2 crc32 instruction computes exactly CRC-32C (without the final inversions). */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *b,
                                                               size_t n)
{
    uint64_t c = ~crc & 0xffffffffu;
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t word;
        memcpy(&word, b, 8);
        c = __builtin_ia32_crc32di(c, word);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *b++);
    return ~c32;
}
#endif

uint32_t kp_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
    if (crc32c_hw) return crc32c_sse42(crc, p, n);
#endif
    return kp_crc32c_portable(crc, p, n);
}

/* ---- big-endian helpers for the fixed header ------------------------------------------- */

static uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- codecs ------------------------------------------------------------------------------ */

/* How the compressed block was framed, so a rewrite re-encodes it the same way. Only snappy
 * has a choice: the Java client writes xerial framing, librdkafka raw snappy. */
typedef struct kp_codec_framing {
    bool xerial;
    uint8_t xerial_header[16]; /* magic, version, compatible version: reproduced as read */
} kp_codec_framing;

static const uint8_t XERIAL_MAGIC[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_SIZE 16
/* snappy-java's default block size (SnappyOutputStream), which the Java client uses. */
#define XERIAL_BLOCK_SIZE (32 * 1024)

/* Free space for the decompressor's next step, never past the cap (a decompression bomb
 * must stop at the cap, not at the end of memory). Returns the room, 0 at the cap or when
 * memory ran out. The caller adds what it produced to out->len. */
static size_t kp_codec_room(kp_writer *out, uint8_t **dst)
{
    size_t room = KP_RECORDS_MAX_DECOMPRESSED - out->len;
    size_t want = out->len < 64 * 1024 ? 64 * 1024 : out->len; /* doubles like the writer */
    if (room > want) room = want;
    if (room == 0 || !kp_writer_extend(out, room)) return 0;
    out->len -= room;
    *dst = out->buf + out->len;
    return room;
}

static int kp_codec_gzip_decompress(const uint8_t *in, size_t len, kp_writer *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (len > UINT_MAX || inflateInit2(&z, 15 + 32) != Z_OK) return -1; /* +32: gzip or zlib */
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    int result = -1;
    for (;;) {
        uint8_t *dst;
        size_t room = kp_codec_room(out, &dst);
        if (!room) break;
        z.next_out = dst;
        z.avail_out = (uInt)room;
        int rc = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (rc == Z_STREAM_END && z.avail_in == 0) {
            result = 0;
            break;
        }
        /* Java's GZIPInputStream reads concatenated members; so do we. */
        if (rc == Z_STREAM_END && inflateReset(&z) == Z_OK) continue;
        if (rc != Z_OK) break; /* corrupt, or truncated (Z_BUF_ERROR: no progress possible) */
    }
    inflateEnd(&z);
    return result;
}

static int kp_codec_gzip_compress(const uint8_t *in, size_t len, kp_writer *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (len > UINT_MAX ||
        deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1; /* 15 + 16: gzip wrapper, as Kafka clients write */
    size_t bound = deflateBound(&z, (uLong)len);
    uint8_t *dst = bound <= UINT_MAX ? kp_writer_extend(out, bound) : NULL;
    int rc = Z_STREAM_ERROR;
    if (dst) {
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)len;
        z.next_out = dst;
        z.avail_out = (uInt)bound;
        rc = deflate(&z, Z_FINISH);
        out->len -= z.avail_out;
    }
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static int kp_codec_snappy_raw_decompress(const uint8_t *in, size_t len, kp_writer *out)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK) return -1;
    if (n > KP_RECORDS_MAX_DECOMPRESSED - out->len) return -1; /* the length is declared first */
    uint8_t *dst = kp_writer_extend(out, n);
    if (!dst) return -1;
    size_t got = n;
    if (snappy_uncompress((const char *)in, len, (char *)dst, &got) != SNAPPY_OK || got != n)
        return -1;
    return 0;
}

static int kp_codec_xerial_decompress(const uint8_t *in, size_t len, kp_writer *out,
                                      kp_codec_framing *f)
{
    memcpy(f->xerial_header, in, XERIAL_HEADER_SIZE);
    size_t pos = XERIAL_HEADER_SIZE;
    while (pos < len) {
        if (len - pos < 4) return -1;
        size_t block = be32_get(in + pos);
        pos += 4;
        if (block > len - pos) return -1;
        if (kp_codec_snappy_raw_decompress(in + pos, block, out) != 0) return -1;
        pos += block;
    }
    return 0;
}

static int kp_codec_snappy_decompress(const uint8_t *in, size_t len, kp_writer *out,
                                      kp_codec_framing *f)
{
    f->xerial = len >= XERIAL_HEADER_SIZE && memcmp(in, XERIAL_MAGIC, sizeof(XERIAL_MAGIC)) == 0;
    if (f->xerial) return kp_codec_xerial_decompress(in, len, out, f);
    return kp_codec_snappy_raw_decompress(in, len, out);
}

static int kp_codec_snappy_raw_compress(const uint8_t *in, size_t len, kp_writer *out)
{
    size_t n = snappy_max_compressed_length(len);
    uint8_t *dst = kp_writer_extend(out, n);
    if (!dst) return -1;
    size_t got = n;
    if (snappy_compress((const char *)in, len, (char *)dst, &got) != SNAPPY_OK) return -1;
    out->len -= n - got;
    return 0;
}

static int kp_codec_xerial_compress(const uint8_t *in, size_t len, kp_writer *out,
                                    const kp_codec_framing *f)
{
    kp_write_raw(out, f->xerial_header, XERIAL_HEADER_SIZE);
    for (size_t pos = 0; pos < len; pos += XERIAL_BLOCK_SIZE) {
        size_t block = len - pos < XERIAL_BLOCK_SIZE ? len - pos : XERIAL_BLOCK_SIZE;
        size_t at = kp_writer_reserve_len(out);
        if (kp_codec_snappy_raw_compress(in + pos, block, out) != 0) return -1;
        kp_writer_patch_len(out, at);
    }
    return out->err ? -1 : 0;
}

static int kp_codec_lz4_decompress(const uint8_t *in, size_t len, kp_writer *out)
{
    LZ4F_dctx *d;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) return -1;
    int result = -1;
    while (result != 0) {
        uint8_t *dst;
        size_t room = kp_codec_room(out, &dst);
        if (!room) break;
        size_t produced = room, consumed = len;
        size_t hint = LZ4F_decompress(d, dst, &produced, in, &consumed, NULL);
        if (LZ4F_isError(hint)) break;
        out->len += produced;
        in += consumed;
        len -= consumed;
        if (hint == 0 && len == 0)
            result = 0; /* frame complete, input used up */
        else if (len == 0 && produced < room)
            break; /* wants more input: truncated */
        else if (consumed == 0 && produced == 0)
            break;
        /* hint == 0 with input left: a further frame follows; LZ4F starts it afresh. */
    }
    LZ4F_freeDecompressionContext(d);
    return result;
}

static int kp_codec_lz4_compress(const uint8_t *in, size_t len, kp_writer *out)
{
    /* Independent 64 KiB blocks without checksums beyond the header's: what the Java client
     * writes, and a subset every Kafka LZ4 reader accepts. */
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t bound = LZ4F_compressFrameBound(len, &prefs);
    uint8_t *dst = kp_writer_extend(out, bound);
    if (!dst) return -1;
    size_t n = LZ4F_compressFrame(dst, bound, in, len, &prefs);
    if (LZ4F_isError(n)) return -1;
    out->len -= bound - n;
    return 0;
}

static int kp_codec_zstd_decompress(const uint8_t *in, size_t len, kp_writer *out)
{
    unsigned long long declared = ZSTD_getFrameContentSize(in, len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return -1;
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN) {
        if (declared > KP_RECORDS_MAX_DECOMPRESSED) return -1;
        /* Only a hint (it may lie, and more frames may follow): size the buffer once. */
        if (!kp_writer_extend(out, (size_t)declared)) return -1;
        out->len -= (size_t)declared;
    }
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds) return -1;
    ZSTD_inBuffer ib = {in, len, 0};
    int result = -1;
    while (result != 0) {
        uint8_t *dst;
        size_t room = kp_codec_room(out, &dst);
        if (!room) break;
        ZSTD_outBuffer ob = {dst, room, 0};
        size_t rc = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(rc)) break;
        out->len += ob.pos;
        if (rc == 0 && ib.pos == ib.size)
            result = 0; /* last frame complete */
        else if (ib.pos == ib.size && ob.pos < ob.size)
            break; /* truncated */
    }
    ZSTD_freeDStream(ds);
    return result;
}

static int kp_codec_zstd_compress(const uint8_t *in, size_t len, kp_writer *out)
{
    size_t bound = ZSTD_compressBound(len);
    uint8_t *dst = kp_writer_extend(out, bound);
    if (!dst) return -1;
    size_t n = ZSTD_compress(dst, bound, in, len, ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(n)) return -1;
    out->len -= bound - n;
    return 0;
}

/* Decompresses a batch's records section (appending to OUT). Returns 0 or -1. */
static int kp_codec_decompress(int codec, const uint8_t *in, size_t len, kp_writer *out,
                               kp_codec_framing *f)
{
    memset(f, 0, sizeof(*f));
    switch (codec) {
    case KP_CODEC_GZIP:
        return kp_codec_gzip_decompress(in, len, out);
    case KP_CODEC_SNAPPY:
        return kp_codec_snappy_decompress(in, len, out, f);
    case KP_CODEC_LZ4:
        return kp_codec_lz4_decompress(in, len, out);
    case KP_CODEC_ZSTD:
        return kp_codec_zstd_decompress(in, len, out);
    default:
        return -1;
    }
}

static int kp_codec_compress(int codec, const uint8_t *in, size_t len, kp_writer *out,
                             const kp_codec_framing *f)
{
    switch (codec) {
    case KP_CODEC_GZIP:
        return kp_codec_gzip_compress(in, len, out);
    case KP_CODEC_SNAPPY:
        return f->xerial ? kp_codec_xerial_compress(in, len, out, f)
                         : kp_codec_snappy_raw_compress(in, len, out);
    case KP_CODEC_LZ4:
        return kp_codec_lz4_compress(in, len, out);
    case KP_CODEC_ZSTD:
        return kp_codec_zstd_compress(in, len, out);
    default:
        return -1;
    }
}

/* ---- records ----------------------------------------------------------------------------- */

/* A record's key, value, header key or header value: varint length, -1 = null. */
static kp_bytes kp_record_read_bytes(kp_reader *r)
{
    int32_t n = kp_read_varint(r);
    if (r->err) return KP_BYTES_NULL;
    if (n == -1) return KP_BYTES_NULL;
    if (n < -1) {
        kp_reader_fail(r, KP_ERR_INVALID);
        return KP_BYTES_NULL;
    }
    const uint8_t *p = kp_read_skip(r, (size_t)n);
    return r->err ? KP_BYTES_NULL : (kp_bytes){p, n};
}

/* Reads one record; its slices point into R's buffer. Returns false when malformed. */
static bool kp_record_read(kp_reader *r, kp_record *rec)
{
    int32_t len = kp_read_varint(r);
    if (r->err || len < RECORD_MIN_SIZE - 1 || (size_t)len > kp_reader_remaining(r)) return false;
    kp_reader body;
    kp_reader_init(&body, kp_read_skip(r, (size_t)len), (size_t)len);
    rec->attributes = kp_read_i8(&body);
    rec->timestamp_delta = kp_read_varlong(&body);
    rec->offset_delta = kp_read_varint(&body);
    rec->key = kp_record_read_bytes(&body);
    rec->value = kp_record_read_bytes(&body);
    rec->header_count = kp_read_varint(&body);
    if (rec->header_count < 0) return false;
    rec->headers.ptr = body.p;
    for (int32_t i = 0; i < rec->header_count && !body.err; i++) {
        kp_bytes key = kp_record_read_bytes(&body);
        kp_record_read_bytes(&body);
        if (key.len < 0) kp_reader_fail(&body, KP_ERR_INVALID); /* header keys are not null */
    }
    rec->headers.len = (int32_t)(body.p - rec->headers.ptr);
    /* The length must be exact: trailing bytes would be lost on re-encoding. */
    return !body.err && body.p == body.end;
}

static size_t kp_varlong_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

static size_t kp_record_bytes_size(kp_bytes b)
{
    return b.len < 0 ? kp_varlong_size(-1) : kp_varlong_size(b.len) + (size_t)b.len;
}

static size_t kp_record_body_size(const kp_record *rec)
{
    return 1 + kp_varlong_size(rec->timestamp_delta) + kp_varlong_size(rec->offset_delta) +
           kp_record_bytes_size(rec->key) + kp_record_bytes_size(rec->value) +
           kp_varlong_size(rec->header_count) +
           (size_t)(rec->headers.len > 0 ? rec->headers.len : 0);
}

static void kp_record_write_bytes(kp_writer *w, kp_bytes b)
{
    if (b.len < 0) {
        kp_write_varint(w, -1);
        return;
    }
    kp_write_varint(w, b.len);
    if (b.len > 0) kp_write_raw(w, b.ptr, (size_t)b.len); /* an empty slice may have no pointer */
}

static void kp_record_write(kp_writer *w, const kp_record *rec)
{
    size_t size = kp_record_body_size(rec);
    if (size > INT32_MAX) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    kp_write_varint(w, (int32_t)size);
    kp_write_i8(w, rec->attributes);
    kp_write_varlong(w, rec->timestamp_delta);
    kp_write_varint(w, rec->offset_delta);
    kp_record_write_bytes(w, rec->key);
    kp_record_write_bytes(w, rec->value);
    kp_write_varint(w, rec->header_count);
    if (rec->headers.len > 0) kp_write_raw(w, rec->headers.ptr, (size_t)rec->headers.len);
}

/* ---- batches ----------------------------------------------------------------------------- */

enum kp_batch_kind {
    KP_BATCH_V2,      /* complete magic-2 batch */
    KP_BATCH_LEGACY,  /* complete magic-0/1 message (set entry) */
    KP_BATCH_PARTIAL, /* the rest of the blob is a batch cut off at the end */
    KP_BATCH_BAD,
};

/* Frames the entry at P (AVAIL bytes left): its kind and, when complete, its SIZE. */
static enum kp_batch_kind kp_batch_frame(const uint8_t *p, size_t avail, size_t *size)
{
    if (avail < BATCH_LOG_OVERHEAD) return KP_BATCH_PARTIAL;
    int32_t length = (int32_t)be32_get(p + BATCH_OFF_LENGTH);
    if (length < LOG_ENTRY_MIN_SIZE) return KP_BATCH_BAD;
    if ((size_t)length > avail - BATCH_LOG_OVERHEAD) return KP_BATCH_PARTIAL;
    *size = BATCH_LOG_OVERHEAD + (size_t)length;
    int8_t magic = (int8_t)p[BATCH_OFF_MAGIC];
    if (magic == 0 || magic == 1) return KP_BATCH_LEGACY;
    if (magic != 2 || *size < BATCH_HEADER_SIZE) return KP_BATCH_BAD;
    return KP_BATCH_V2;
}

/* A complete magic-2 batch, pointing into the input. */
typedef struct kp_batch {
    const uint8_t *start; /* baseOffset */
    size_t size;          /* whole batch, framing included */
    kp_batch_info info;
    const uint8_t *section; /* the records as stored (compressed or not) */
    size_t section_len;
} kp_batch;

static int kp_batch_codec(const kp_batch *b)
{
    return b->info.attributes & ATTR_CODEC_MASK;
}

static bool kp_batch_is_control(const kp_batch *b)
{
    return (b->info.attributes & ATTR_CONTROL) != 0;
}

static void kp_batch_parse(const uint8_t *p, size_t size, kp_batch *b)
{
    b->start = p;
    b->size = size;
    b->info.base_offset = (int64_t)be64_get(p);
    b->info.partition_leader_epoch = (int32_t)be32_get(p + BATCH_OFF_EPOCH);
    b->info.attributes = (int16_t)(p[BATCH_OFF_ATTRIBUTES] << 8 | p[BATCH_OFF_ATTRIBUTES + 1]);
    b->info.producer_id = (int64_t)be64_get(p + BATCH_OFF_PRODUCER_ID);
    b->info.producer_epoch =
        (int16_t)(p[BATCH_OFF_PRODUCER_EPOCH] << 8 | p[BATCH_OFF_PRODUCER_EPOCH + 1]);
    b->info.base_sequence = (int32_t)be32_get(p + BATCH_OFF_BASE_SEQUENCE);
    b->info.record_count = (int32_t)be32_get(p + BATCH_OFF_COUNT);
    b->info.base_timestamp = (int64_t)be64_get(p + BATCH_OFF_BASE_TIMESTAMP);
    b->info.max_timestamp = (int64_t)be64_get(p + BATCH_OFF_MAX_TIMESTAMP);
    b->section = p + BATCH_HEADER_SIZE;
    b->section_len = size - BATCH_HEADER_SIZE;
}

/* Per-call buffers, reused from batch to batch. */
typedef struct kp_records_scratch {
    kp_writer plain;  /* decompressed records of the current batch */
    kp_writer fresh;  /* rewritten records, uncompressed */
    kp_writer packed; /* rewritten records, recompressed */
} kp_records_scratch;

static void kp_records_scratch_init(kp_records_scratch *s)
{
    kp_writer_init(&s->plain, 0);
    kp_writer_init(&s->fresh, 0);
    kp_writer_init(&s->packed, 0);
}

static void kp_records_scratch_free(kp_records_scratch *s)
{
    kp_writer_free(&s->plain);
    kp_writer_free(&s->fresh);
    kp_writer_free(&s->packed);
}

/* The batch's records uncompressed: the section itself, or its decompression in PLAIN. */
static int kp_batch_open(const kp_batch *b, kp_writer *plain, kp_codec_framing *f,
                         kp_reader *records)
{
    int codec = kp_batch_codec(b);
    if (codec > KP_CODEC_ZSTD) return -1;
    if (b->info.record_count < 0) return -1;
    /* Nothing to open: an empty batch (compaction leaves these) may have no block at all. */
    if (codec == KP_CODEC_NONE || (b->info.record_count == 0 && b->section_len == 0)) {
        kp_reader_init(records, b->section, b->section_len);
        return 0;
    }
    kp_writer_reset(plain);
    if (kp_codec_decompress(codec, b->section, b->section_len, plain, f) != 0) return -1;
    kp_reader_init(records, plain->buf, plain->len);
    return 0;
}

/* What a rewrite has made of one batch so far. */
typedef struct kp_batch_edit {
    kp_writer *fresh;
    int32_t count;
    bool changed;
} kp_batch_edit;

/* Copies a record COPIES times into the edit (a negative count is "drop", more than two
 * is "twice": the callback's contract only knows 0, 1 and 2). */
static void kp_batch_edit_emit(kp_batch_edit *e, const kp_record *rec, int copies)
{
    if (copies != 1) e->changed = true;
    if (copies > 2) copies = 2;
    for (int i = 0; i < copies; i++) {
        kp_record_write(e->fresh, rec);
        e->count++;
    }
}

/* Reads the batch's records, shows each to FN and, when EDIT is given, writes the outcome
 * into it. Returns the number of records read, or -1 when malformed. */
static int kp_batch_each_record(const kp_batch *b, kp_reader *records, kp_record_fn fn, void *ctx,
                                kp_batch_edit *edit)
{
    int32_t count = b->info.record_count;
    if ((size_t)count > kp_reader_remaining(records) / RECORD_MIN_SIZE) return -1;
    for (int32_t i = 0; i < count; i++) {
        kp_record rec;
        if (!kp_record_read(records, &rec)) return -1;
        int copies = 1;
        bool changed = fn(ctx, &b->info, &rec, &copies);
        if (!edit) continue;
        if (changed) edit->changed = true;
        kp_batch_edit_emit(edit, &rec, copies);
    }
    /* Bytes after the declared records would be silently lost: refuse. */
    if (kp_reader_remaining(records) != 0) return -1;
    return count;
}

/* Writes the batch anew around SECTION (already compressed as the batch says). */
static void kp_batch_write(kp_writer *out, const kp_batch *b, int32_t count, const uint8_t *section,
                           size_t section_len, bool keep_crc_valid)
{
    if (section_len > (size_t)INT32_MAX - (BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD)) {
        kp_writer_fail(out, KP_ERR_INVALID);
        return;
    }
    size_t at = out->len;
    /* The header is the original's with length and count patched. lastOffsetDelta is kept
     * even when records were dropped: Kafka's log cleaner does the same, and consumers (Java's
     * and librdkafka, since KAFKA-5443) continue at lastOffset + 1, so they step past the whole
     * batch instead of fetching a dropped record's offset again. */
    kp_write_raw(out, b->start, BATCH_HEADER_SIZE);
    kp_write_raw(out, section, section_len);
    if (out->err) return;
    uint8_t *h = out->buf + at;
    be32_put(h + BATCH_OFF_LENGTH,
             (uint32_t)(BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD + section_len));
    be32_put(h + BATCH_OFF_COUNT, (uint32_t)count);
    /* Without keep_crc_valid the old CRC stays: it no longer matches, which is the fault. */
    if (keep_crc_valid)
        be32_put(h + BATCH_OFF_CRC,
                 kp_crc32c(0, h + BATCH_OFF_ATTRIBUTES, out->len - at - BATCH_OFF_ATTRIBUTES));
}

/* Rewrites one data batch into OUT. Returns 1 written, 0 unchanged (nothing written), -1. */
static int kp_batch_rewrite(const kp_batch *b, kp_record_fn fn, void *ctx, bool keep_crc_valid,
                            kp_records_scratch *s, kp_writer *out)
{
    kp_codec_framing framing;
    kp_reader records;
    if (kp_batch_open(b, &s->plain, &framing, &records) != 0) return -1;
    kp_writer_reset(&s->fresh);
    kp_batch_edit edit = {&s->fresh, 0, false};
    if (kp_batch_each_record(b, &records, fn, ctx, &edit) < 0) return -1;
    if (!edit.changed) return 0;
    /* Never emit a batch that would itself count as a bomb (duplicating a big batch). */
    if (s->fresh.err || s->fresh.len > KP_RECORDS_MAX_DECOMPRESSED) return -1;
    const kp_writer *section = &s->fresh;
    if (kp_batch_codec(b) != KP_CODEC_NONE) {
        kp_writer_reset(&s->packed);
        if (kp_codec_compress(kp_batch_codec(b), s->fresh.buf, s->fresh.len, &s->packed,
                              &framing) != 0 ||
            s->packed.err)
            return -1;
        section = &s->packed;
    }
    kp_batch_write(out, b, edit.count, section->buf, section->len, keep_crc_valid);
    return out->err ? -1 : 1;
}

/* ---- blobs ------------------------------------------------------------------------------- */

int kp_records_rewrite(const uint8_t *in, size_t len, kp_record_fn fn, void *ctx,
                       bool keep_crc_valid, kp_arena *a, kp_writer *out)
{
    (void)a;
    size_t start = out->len;
    bool changed = false;
    int result = 0;
    kp_records_scratch s;
    kp_records_scratch_init(&s);
    for (size_t pos = 0; pos < len && result == 0;) {
        size_t size = 0;
        enum kp_batch_kind kind = kp_batch_frame(in + pos, len - pos, &size);
        if (kind == KP_BATCH_BAD) {
            result = -1;
            break;
        }
        if (kind == KP_BATCH_PARTIAL) size = len - pos; /* copied as is, like legacy batches */
        int rc = 0;
        if (kind == KP_BATCH_V2) {
            kp_batch b;
            kp_batch_parse(in + pos, size, &b);
            if (!kp_batch_is_control(&b))
                rc = kp_batch_rewrite(&b, fn, ctx, keep_crc_valid, &s, out);
        }
        if (rc < 0)
            result = -1;
        else if (rc == 0)
            kp_write_raw(out, in + pos, size);
        else
            changed = true;
        pos += size;
    }
    kp_records_scratch_free(&s);
    if (result == 0 && out->err) result = -1;
    if (result == 0 && changed) return 1;
    out->len = start;
    return result;
}

/* Shows a data batch's records to FN. Returns their number, or -1 when malformed. */
static int kp_batch_visit(const kp_batch *b, kp_writer *plain, kp_record_fn fn, void *ctx)
{
    if (kp_batch_is_control(b)) return 0;
    kp_codec_framing framing;
    kp_reader records;
    if (kp_batch_open(b, plain, &framing, &records) != 0) return -1;
    return kp_batch_each_record(b, &records, fn, ctx, NULL);
}

int kp_records_visit(const uint8_t *in, size_t len, kp_record_fn fn, void *ctx, kp_arena *a)
{
    (void)a;
    long total = 0;
    kp_writer plain;
    kp_writer_init(&plain, 0);
    for (size_t pos = 0; pos < len;) {
        size_t size = 0;
        enum kp_batch_kind kind = kp_batch_frame(in + pos, len - pos, &size);
        if (kind == KP_BATCH_BAD) total = -1;
        if (kind == KP_BATCH_BAD || kind == KP_BATCH_PARTIAL) break;
        if (kind == KP_BATCH_V2) {
            kp_batch b;
            kp_batch_parse(in + pos, size, &b);
            int n = kp_batch_visit(&b, &plain, fn, ctx);
            if (n < 0 || total + n > INT_MAX) {
                total = -1;
                break;
            }
            total += n;
        }
        pos += size;
    }
    kp_writer_free(&plain);
    return (int)total;
}

int kp_records_crc_errors(const uint8_t *in, size_t len)
{
    int bad = 0;
    for (size_t pos = 0; pos < len;) {
        size_t size = 0;
        enum kp_batch_kind kind = kp_batch_frame(in + pos, len - pos, &size);
        if (kind == KP_BATCH_BAD) return -1;
        if (kind == KP_BATCH_PARTIAL) break;
        if (kind == KP_BATCH_V2) {
            const uint8_t *p = in + pos;
            uint32_t crc = kp_crc32c(0, p + BATCH_OFF_ATTRIBUTES, size - BATCH_OFF_ATTRIBUTES);
            if (crc != be32_get(p + BATCH_OFF_CRC)) bad++;
        }
        pos += size;
    }
    return bad;
}
