/* kp_records — Kafka record batches (magic 2): iterate, rewrite, recompress, re-checksum.
 *
 * Used only where records must change (chaos); pass-through traffic never comes here.
 */
#ifndef KP_RECORDS_H
#define KP_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"

/* Compression codecs (batch attributes bits 0-2). */
enum kp_codec {
    KP_CODEC_NONE = 0,
    KP_CODEC_GZIP = 1,
    KP_CODEC_SNAPPY = 2, /* raw snappy (librdkafka) or xerial framing (Java); both read */
    KP_CODEC_LZ4 = 3,    /* LZ4 frame format */
    KP_CODEC_ZSTD = 4,
};

/* A batch whose records decompress to more than this is malformed (decompression bombs). */
#define KP_RECORDS_MAX_DECOMPRESSED ((size_t)64 << 20)

typedef struct kp_record {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    kp_bytes key;
    kp_bytes value; /* a callback may point this at its own memory (e.g. the arena) */
    int32_t header_count;
    kp_bytes headers; /* the raw encoded headers, kept as they are */
} kp_record;

typedef struct kp_batch_info {
    int64_t base_offset;
    int32_t partition_leader_epoch;
    int16_t attributes; /* compression in bits 0-2, transactional bit 4, control bit 5 */
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    int64_t base_timestamp; /* a record's is base + its delta (CreateTime) */
    int64_t max_timestamp;  /* every record's, with LogAppendTime (attributes bit 3) */
} kp_batch_info;

/* Called for each record of each data batch (control batches are left alone). The callback may
 * change REC (value, key) and sets *COPIES: 1 keep, 2 emit the record twice (same offset
 * delta), 0 drop. Returns true when it changed anything. REC's slices point into the input
 * or into a per-batch decompression buffer: valid during the call only. What REC points to
 * after the call must stay valid until the next call (it is copied out right away).
 *
 * Twice at the same offset: librdkafka-based consumers (confluent-kafka, kcat) deliver both
 * copies; the Java consumer skips a record whose offset is below its next fetch position,
 * so it delivers the first copy only. */
typedef bool (*kp_record_fn)(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies);

/* Rewrites a records blob (zero or more batches, possibly compressed with gzip, snappy, lz4 or
 * zstd, possibly ending in a partial batch, which is copied as is). Modified batches are
 * recompressed with their own codec; their CRC-32C is recomputed when KEEP_CRC_VALID, else
 * the old CRC is kept (so the client's CRC check fires). Batches of magic 0/1 are copied
 * unchanged. Returns 1 when OUT holds a modified blob, 0 when nothing changed (OUT undefined),
 * -1 when malformed.
 *
 * Details: the blob is appended to OUT (on 0 and -1, OUT's length is put back). A modified
 * batch gets a new batchLength and record count; lastOffsetDelta is kept even when records
 * were dropped (as after compaction: consumers then continue after the batch). A batch whose
 * records do not decode exactly (wrong count, bytes left over, bad codec data, more than
 * KP_RECORDS_MAX_DECOMPRESSED) makes the whole blob malformed; so does a rewrite whose
 * records would grow past that cap. A is not used by the codec;
 * the callback's memory comes through CTX. */
int kp_records_rewrite(const uint8_t *in, size_t len, kp_record_fn fn, void *ctx,
                       bool keep_crc_valid, kp_arena *a, kp_writer *out);

/* Visits every record of the data batches (magic 2) without changing anything (fn's return
 * and *copies are ignored); legacy, control and a trailing partial batch are skipped.
 * Returns the number of records, or -1 when malformed. */
int kp_records_visit(const uint8_t *in, size_t len, kp_record_fn fn, void *ctx, kp_arena *a);

/* Number of complete magic-2 batches (control ones included) whose CRC does not match, or -1
 * when the blob's framing is malformed. */
int kp_records_crc_errors(const uint8_t *in, size_t len);

/* CRC-32C (Castagnoli), chainable: kp_crc32c(kp_crc32c(0, a), b) is the CRC of a then b.
 * Uses SSE4.2 when the CPU has it; _portable is the table-driven one (same results). */
uint32_t kp_crc32c(uint32_t crc, const void *p, size_t n);
uint32_t kp_crc32c_portable(uint32_t crc, const void *p, size_t n);

#endif
