/* kp_prim — Kafka wire primitives: arena, zero-copy slices, bounds-checked reader, growable writer.
 *
 * Every kp_read_* checks bounds. On the first error the reader's `err` is set (and stays set),
 * the call returns a zero value, and every later read also returns zero values: generated
 * decoders can read straight through and test `err` once at the end. Lengths from the wire
 * are never trusted: a length larger than the bytes that remain is an error, never an
 * allocation.
 *
 * Strings and byte fields decoded from a buffer point INTO that buffer (zero-copy); the
 * buffer must outlive the decoded message. Arrays and tagged-field lists are allocated
 * from a kp_arena, freed all at once.
 */
#ifndef KP_PRIM_H
#define KP_PRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes stored in kp_reader.err / kp_writer.err. */
enum kp_error {
    KP_OK = 0,
    KP_ERR_SHORT = 1,   /* input ended inside a value */
    KP_ERR_INVALID = 2, /* malformed value: bad length, null where not nullable, varint overflow */
    KP_ERR_NOMEM = 3,   /* allocation failed */
    KP_ERR_VERSION = 4, /* a non-default, non-ignorable field cannot be written at this version */
};
const char *kp_strerror(int err);

/* ---- arena: bump allocator over a list of chunks ---------------------------------------- */

typedef struct kp_arena_chunk kp_arena_chunk;
typedef struct kp_arena {
    kp_arena_chunk *head; /* current chunk (bump pointer lives here) */
    size_t next_size;     /* size of the next regular chunk; doubles up to a cap */
} kp_arena;

void kp_arena_init(kp_arena *a);
/* Returns n bytes aligned for any type, or NULL when out of memory. Memory is NOT zeroed. */
void *kp_arena_alloc(kp_arena *a, size_t n);
/* Like kp_arena_alloc but zeroed; NULL also when count * size overflows. */
void *kp_arena_calloc(kp_arena *a, size_t count, size_t size);
/* Forgets every allocation but keeps the current chunk for reuse (cheap per-message reset). */
void kp_arena_reset(kp_arena *a);
void kp_arena_free(kp_arena *a);

/* ---- values ------------------------------------------------------------------------------ */

/* A string slice. len -1 = null string. Not NUL-terminated. */
typedef struct kp_str {
    const char *ptr;
    int32_t len;
} kp_str;

/* A byte slice. len -1 = null. */
typedef struct kp_bytes {
    const uint8_t *ptr;
    int32_t len;
} kp_bytes;

typedef struct kp_uuid {
    uint8_t b[16];
} kp_uuid;

/* An unknown tagged field, kept so re-encoding preserves it. Lists are sorted by tag. */
typedef struct kp_tagged {
    uint32_t tag;
    kp_bytes data;
    struct kp_tagged *next;
} kp_tagged;

#define KP_STR_NULL ((kp_str){NULL, -1})
#define KP_BYTES_NULL ((kp_bytes){NULL, -1})
kp_str kp_str_c(const char *s); /* slice of a NUL-terminated string (NULL -> null string) */
bool kp_str_eq(kp_str a, kp_str b);
bool kp_str_eq_c(kp_str a, const char *s);
bool kp_uuid_is_zero(const kp_uuid *u);
uint32_t kp_tagged_count(const kp_tagged *list);

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct kp_reader {
    const uint8_t *p, *end;
    int err;
    /* Where the most recent tagged-field section read at THIS reader's level began. After a
     * generated decode returns, this is the start of the message's top-level tagged section
     * (it is always read last), which lets the rewriter splice a new one in. */
    const uint8_t *tags_at;
} kp_reader;

void kp_reader_init(kp_reader *r, const void *buf, size_t len);
size_t kp_reader_remaining(const kp_reader *r);
void kp_reader_fail(kp_reader *r, int err); /* keeps the first error */

int8_t kp_read_i8(kp_reader *r);
int16_t kp_read_i16(kp_reader *r);
int32_t kp_read_i32(kp_reader *r);
int64_t kp_read_i64(kp_reader *r);
uint16_t kp_read_u16(kp_reader *r);
uint32_t kp_read_u32(kp_reader *r);
double kp_read_f64(kp_reader *r);
bool kp_read_bool(kp_reader *r); /* any non-zero byte is true */
kp_uuid kp_read_uuid(kp_reader *r);
int32_t kp_read_varint(kp_reader *r);    /* zigzag, at most 5 bytes */
int64_t kp_read_varlong(kp_reader *r);   /* zigzag, at most 10 bytes */
uint32_t kp_read_uvarint(kp_reader *r);  /* at most 5 bytes, must fit 32 bits */
uint64_t kp_read_uvarlong(kp_reader *r); /* at most 10 bytes */
void kp_read_raw(kp_reader *r, void *dst, size_t n);
const uint8_t *kp_read_skip(kp_reader *r, size_t n); /* returns start of the skipped bytes */

/* Strings: int16 length (classic) or uvarint length+1 (compact, "flexible"). A null where the
 * field is not nullable is KP_ERR_INVALID. */
kp_str kp_read_string(kp_reader *r);
kp_str kp_read_nullable_string(kp_reader *r);
kp_str kp_read_compact_string(kp_reader *r);
kp_str kp_read_compact_nullable_string(kp_reader *r);
kp_str kp_read_str(kp_reader *r, bool flexible, bool nullable);

/* Bytes: int32 length (classic) or uvarint length+1 (compact). */
kp_bytes kp_read_bytes(kp_reader *r);
kp_bytes kp_read_nullable_bytes(kp_reader *r);
kp_bytes kp_read_compact_bytes(kp_reader *r);
kp_bytes kp_read_compact_nullable_bytes(kp_reader *r);
kp_bytes kp_read_blob(kp_reader *r, bool flexible, bool nullable);
/* "records": nullable bytes, compact in flexible versions. Zero-copy. */
kp_bytes kp_read_records(kp_reader *r, bool flexible);

/* Array length: int32 or compact uvarint (length+1); -1 = null (an error unless nullable).
 * A length that cannot fit in the remaining bytes (each element needs at least min_elem_size
 * bytes) is KP_ERR_SHORT, checked before anything is allocated, so a hostile length never
 * causes a large allocation. */
int32_t kp_read_array_len(kp_reader *r, bool flexible, bool nullable, size_t min_elem_size);
/* Zeroed arena storage for count elements; NULL (and r->err set) on failure or count <= 0. */
void *kp_read_array_alloc(kp_reader *r, kp_arena *a, int32_t count, size_t elem_size);

/* Tagged-field section where every field is unknown: appended to *unknown (sorted as read). */
void kp_read_tagged_fields(kp_reader *r, kp_arena *a, kp_tagged **unknown);
/* Building blocks for sections with known tags (generated code):
 *   n = kp_read_tags_begin(r); for each: tag = kp_read_tag(r, &sub); decode from sub, or
 *   tail = kp_tagged_keep(r, a, tail, tag, &sub); then kp_read_tag_end(r, &sub). */
uint32_t kp_read_tags_begin(kp_reader *r);
uint32_t kp_read_tag(kp_reader *r, kp_reader *sub);
void kp_read_tag_end(kp_reader *r, const kp_reader *sub); /* sub must be error-free and consumed */
kp_tagged **kp_tagged_keep(kp_reader *r, kp_arena *a, kp_tagged **tail, uint32_t tag,
                           kp_reader *sub);

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct kp_writer {
    uint8_t *buf;
    size_t len, cap;
    int err;
} kp_writer;

void kp_writer_init(kp_writer *w, size_t initial_cap); /* 0 = allocate on first write */
void kp_writer_reset(kp_writer *w);                    /* len = 0, err = 0, keeps the buffer */
void kp_writer_free(kp_writer *w);
void kp_writer_fail(kp_writer *w, int err); /* keeps the first error */
/* Appends n bytes and returns them for filling, or NULL (err set) if growing failed. */
uint8_t *kp_writer_extend(kp_writer *w, size_t n);

void kp_write_raw(kp_writer *w, const void *src, size_t n);
void kp_write_i8(kp_writer *w, int8_t v);
void kp_write_i16(kp_writer *w, int16_t v);
void kp_write_i32(kp_writer *w, int32_t v);
void kp_write_i64(kp_writer *w, int64_t v);
void kp_write_u16(kp_writer *w, uint16_t v);
void kp_write_u32(kp_writer *w, uint32_t v);
void kp_write_f64(kp_writer *w, double v);
void kp_write_bool(kp_writer *w, bool v);
void kp_write_uuid(kp_writer *w, kp_uuid v);
void kp_write_varint(kp_writer *w, int32_t v);
void kp_write_varlong(kp_writer *w, int64_t v);
void kp_write_uvarint(kp_writer *w, uint32_t v);
void kp_write_uvarlong(kp_writer *w, uint64_t v);
size_t kp_uvarint_size(uint32_t v);

void kp_write_string(kp_writer *w, kp_str s); /* null allowed: written as -1 */
void kp_write_compact_string(kp_writer *w, kp_str s);
/* Null where not nullable, or a classic string over 32767 bytes: KP_ERR_INVALID. */
void kp_write_str(kp_writer *w, bool flexible, bool nullable, kp_str s);
void kp_write_bytes(kp_writer *w, kp_bytes b); /* null allowed: written as -1 */
void kp_write_compact_bytes(kp_writer *w, kp_bytes b);
void kp_write_blob(kp_writer *w, bool flexible, bool nullable, kp_bytes b);
void kp_write_records(kp_writer *w, bool flexible, kp_bytes b);
void kp_write_array_len(kp_writer *w, bool flexible, bool nullable, int32_t count);

/* Length prefixes: reserve an int32 now, patch it once the content is written. */
size_t kp_writer_reserve_len(kp_writer *w);
void kp_writer_patch_len(kp_writer *w, size_t at); /* writes len - at - 4 at `at` */
void kp_writer_patch_i32(kp_writer *w, size_t at, int32_t v);

/* Tagged fields. Sections are written as: count, then (tag, size, data) in increasing tag
 * order, known and unknown fields merged. */
void kp_write_tagged_fields(kp_writer *w, const kp_tagged *unknown); /* section of unknowns only */
/* Writes the unknown fields whose tag is below `tag`; returns the rest of the list. */
const kp_tagged *kp_write_unknown_below(kp_writer *w, const kp_tagged *u, uint32_t tag);
void kp_write_unknown_rest(kp_writer *w, const kp_tagged *u);
/* Writes the tag and a placeholder size; kp_writer_tag_end fixes the size (moving the data
 * when the size needs more than one byte). */
size_t kp_writer_tag_begin(kp_writer *w, uint32_t tag);
void kp_writer_tag_end(kp_writer *w, size_t mark);

/* ---- random values (test support: generated kp_<msg>_random functions use these) ---------- */

uint64_t kp_rand_next(uint64_t *state);
uint32_t kp_rand_below(uint64_t *state, uint32_t n); /* 0..n-1 (n > 0) */
int8_t kp_rand_i8(uint64_t *state);
int16_t kp_rand_i16(uint64_t *state);
int32_t kp_rand_i32(uint64_t *state);
int64_t kp_rand_i64(uint64_t *state);
uint16_t kp_rand_u16(uint64_t *state);
uint32_t kp_rand_u32(uint64_t *state);
double kp_rand_f64(uint64_t *state);
bool kp_rand_bool(uint64_t *state);
kp_uuid kp_rand_uuid(uint64_t *state);
kp_str kp_rand_str(kp_arena *a, uint64_t *state, bool nullable);
kp_bytes kp_rand_blob(kp_arena *a, uint64_t *state, bool nullable);
/* Array length: -1 (if nullable), 0, small, or (only at depth 0) a large 300. */
int32_t kp_rand_count(uint64_t *state, bool nullable, int depth);
/* Sorted unknown tagged fields whose tags avoid the `known` ones (usually none are made). */
kp_tagged *kp_rand_unknown_tags(kp_arena *a, uint64_t *state, const uint32_t *known, size_t nknown);

#endif
