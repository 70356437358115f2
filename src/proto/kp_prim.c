#include "proto/kp_prim.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *kp_strerror(int err)
{
    switch (err) {
    case KP_OK:
        return "ok";
    case KP_ERR_SHORT:
        return "truncated input";
    case KP_ERR_INVALID:
        return "malformed value";
    case KP_ERR_NOMEM:
        return "out of memory";
    case KP_ERR_VERSION:
        return "field not supported at this version";
    default:
        return "unknown error";
    }
}

/* ---- arena ------------------------------------------------------------------------------- */

struct kp_arena_chunk {
    kp_arena_chunk *next;
    size_t used, cap;
};

#define ARENA_ALIGN 16u
#define ARENA_HDR ((sizeof(kp_arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))
#define ARENA_FIRST_CHUNK 4096u
#define ARENA_MAX_CHUNK (1u << 20)

static uint8_t *chunk_data(kp_arena_chunk *c)
{
    return (uint8_t *)c + ARENA_HDR;
}

static kp_arena_chunk *chunk_new(size_t cap)
{
    if (cap > SIZE_MAX - ARENA_HDR) return NULL;
    kp_arena_chunk *c = malloc(ARENA_HDR + cap);
    if (!c) return NULL;
    c->next = NULL;
    c->used = 0;
    c->cap = cap;
    return c;
}

void kp_arena_init(kp_arena *a)
{
    a->head = NULL;
    a->next_size = ARENA_FIRST_CHUNK;
}

void *kp_arena_alloc(kp_arena *a, size_t n)
{
    if (n > SIZE_MAX - ARENA_ALIGN) return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    kp_arena_chunk *head = a->head;
    if (head && head->cap - head->used >= n) {
        void *p = chunk_data(head) + head->used;
        head->used += n;
        return p;
    }
    if (head && n > a->next_size / 4) {
        /* A big block gets a chunk of its own behind the head, so the head's free space
         * keeps serving small allocations. */
        kp_arena_chunk *big = chunk_new(n);
        if (!big) return NULL;
        big->used = n;
        big->next = head->next;
        head->next = big;
        return chunk_data(big);
    }
    size_t cap = a->next_size > n ? a->next_size : n;
    kp_arena_chunk *c = chunk_new(cap);
    if (!c) return NULL;
    if (a->next_size < ARENA_MAX_CHUNK) a->next_size *= 2;
    c->next = head;
    c->used = n;
    a->head = c;
    return chunk_data(c);
}

void *kp_arena_calloc(kp_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = kp_arena_alloc(a, count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

static void chunks_free(kp_arena_chunk *c)
{
    while (c) {
        kp_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void kp_arena_reset(kp_arena *a)
{
    if (!a->head) return;
    chunks_free(a->head->next);
    a->head->next = NULL;
    a->head->used = 0;
}

void kp_arena_free(kp_arena *a)
{
    chunks_free(a->head);
    a->head = NULL;
    a->next_size = ARENA_FIRST_CHUNK;
}

/* ---- values ------------------------------------------------------------------------------ */

kp_str kp_str_c(const char *s)
{
    if (!s) return KP_STR_NULL;
    size_t n = strlen(s);
    return (kp_str){s, n > INT32_MAX ? INT32_MAX : (int32_t)n};
}

bool kp_str_eq(kp_str a, kp_str b)
{
    if (a.len < 0 || b.len < 0) return a.len < 0 && b.len < 0;
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

bool kp_str_eq_c(kp_str a, const char *s)
{
    return kp_str_eq(a, kp_str_c(s));
}

bool kp_uuid_is_zero(const kp_uuid *u)
{
    for (int i = 0; i < 16; i++)
        if (u->b[i]) return false;
    return true;
}

uint32_t kp_tagged_count(const kp_tagged *list)
{
    uint32_t n = 0;
    for (; list; list = list->next)
        n++;
    return n;
}

/* ---- reader ------------------------------------------------------------------------------ */

void kp_reader_init(kp_reader *r, const void *buf, size_t len)
{
    /* A NULL buffer reads as empty; pointing at a real object keeps pointer arithmetic defined. */
    static const uint8_t empty[1];
    r->p = buf ? buf : empty;
    r->end = buf ? r->p + len : r->p;
    r->err = KP_OK;
    r->tags_at = NULL;
}

size_t kp_reader_remaining(const kp_reader *r)
{
    return (size_t)(r->end - r->p);
}

void kp_reader_fail(kp_reader *r, int err)
{
    if (!r->err) r->err = err;
}

/* Returns the next n bytes and advances, or NULL (error set) when they are not all there. */
static const uint8_t *take(kp_reader *r, size_t n)
{
    if (r->err) return NULL;
    if (kp_reader_remaining(r) < n) {
        kp_reader_fail(r, KP_ERR_SHORT);
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint64_t load_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int8_t kp_read_i8(kp_reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t kp_read_i16(kp_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (int16_t)(uint16_t)load_be(p, 2) : 0;
}

int32_t kp_read_i32(kp_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (int32_t)(uint32_t)load_be(p, 4) : 0;
}

int64_t kp_read_i64(kp_reader *r)
{
    const uint8_t *p = take(r, 8);
    return p ? (int64_t)load_be(p, 8) : 0;
}

uint16_t kp_read_u16(kp_reader *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)load_be(p, 2) : 0;
}

uint32_t kp_read_u32(kp_reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)load_be(p, 4) : 0;
}

double kp_read_f64(kp_reader *r)
{
    uint64_t bits = (uint64_t)kp_read_i64(r);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

bool kp_read_bool(kp_reader *r)
{
    return kp_read_i8(r) != 0;
}

kp_uuid kp_read_uuid(kp_reader *r)
{
    kp_uuid u = {{0}};
    const uint8_t *p = take(r, 16);
    if (p) memcpy(u.b, p, 16);
    return u;
}

/* Unsigned LEB128 of at most max_bytes; the last byte may only carry the bits that still fit
 * (last_byte_max), so every accepted encoding denotes a value of the target width. */
static uint64_t read_uleb(kp_reader *r, int max_bytes, uint8_t last_byte_max)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = take(r, 1);
        if (!p) return 0;
        uint8_t b = p[0];
        if (i == max_bytes - 1 && b > last_byte_max) {
            kp_reader_fail(r, KP_ERR_INVALID);
            return 0;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) return v;
    }
    return v; /* unreachable: the last byte's check rejects a continuation bit */
}

uint32_t kp_read_uvarint(kp_reader *r)
{
    return (uint32_t)read_uleb(r, 5, 0x0f);
}

uint64_t kp_read_uvarlong(kp_reader *r)
{
    return read_uleb(r, 10, 0x01);
}

int32_t kp_read_varint(kp_reader *r)
{
    uint32_t u = kp_read_uvarint(r);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}

int64_t kp_read_varlong(kp_reader *r)
{
    uint64_t u = kp_read_uvarlong(r);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

void kp_read_raw(kp_reader *r, void *dst, size_t n)
{
    const uint8_t *p = take(r, n);
    if (p)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

const uint8_t *kp_read_skip(kp_reader *r, size_t n)
{
    return take(r, n);
}

/* A length read from the wire: -1 = null; anything else negative is malformed. */
static kp_bytes slice(kp_reader *r, int64_t len, bool nullable)
{
    if (r->err) return (kp_bytes){NULL, 0};
    if (len == -1) {
        if (!nullable) {
            kp_reader_fail(r, KP_ERR_INVALID);
            return (kp_bytes){NULL, 0};
        }
        return KP_BYTES_NULL;
    }
    if (len < 0 || len > INT32_MAX) {
        kp_reader_fail(r, KP_ERR_INVALID);
        return (kp_bytes){NULL, 0};
    }
    const uint8_t *p = take(r, (size_t)len);
    if (!p) return (kp_bytes){NULL, 0};
    return (kp_bytes){p, (int32_t)len};
}

static kp_str as_str(kp_bytes b)
{
    return (kp_str){(const char *)b.ptr, b.len};
}

/* Compact lengths are stored +1 so that 0 can mean null. */
static int64_t compact_len(kp_reader *r)
{
    return (int64_t)kp_read_uvarint(r) - 1;
}

kp_str kp_read_string(kp_reader *r)
{
    return as_str(slice(r, kp_read_i16(r), false));
}

kp_str kp_read_nullable_string(kp_reader *r)
{
    return as_str(slice(r, kp_read_i16(r), true));
}

kp_str kp_read_compact_string(kp_reader *r)
{
    return as_str(slice(r, compact_len(r), false));
}

kp_str kp_read_compact_nullable_string(kp_reader *r)
{
    return as_str(slice(r, compact_len(r), true));
}

kp_str kp_read_str(kp_reader *r, bool flexible, bool nullable)
{
    int64_t len = flexible ? compact_len(r) : kp_read_i16(r);
    return as_str(slice(r, len, nullable));
}

kp_bytes kp_read_bytes(kp_reader *r)
{
    return slice(r, kp_read_i32(r), false);
}

kp_bytes kp_read_nullable_bytes(kp_reader *r)
{
    return slice(r, kp_read_i32(r), true);
}

kp_bytes kp_read_compact_bytes(kp_reader *r)
{
    return slice(r, compact_len(r), false);
}

kp_bytes kp_read_compact_nullable_bytes(kp_reader *r)
{
    return slice(r, compact_len(r), true);
}

kp_bytes kp_read_blob(kp_reader *r, bool flexible, bool nullable)
{
    int64_t len = flexible ? compact_len(r) : kp_read_i32(r);
    return slice(r, len, nullable);
}

kp_bytes kp_read_records(kp_reader *r, bool flexible)
{
    return kp_read_blob(r, flexible, true);
}

int32_t kp_read_array_len(kp_reader *r, bool flexible, bool nullable, size_t min_elem_size)
{
    int64_t n = flexible ? compact_len(r) : kp_read_i32(r);
    if (r->err) return 0;
    if (n == -1) {
        if (nullable) return -1;
        kp_reader_fail(r, KP_ERR_INVALID);
        return 0;
    }
    if (n < 0 || n > INT32_MAX) {
        kp_reader_fail(r, KP_ERR_INVALID);
        return 0;
    }
    if (min_elem_size == 0) min_elem_size = 1;
    if ((uint64_t)n > kp_reader_remaining(r) / min_elem_size) {
        kp_reader_fail(r, KP_ERR_SHORT);
        return 0;
    }
    return (int32_t)n;
}

void *kp_read_array_alloc(kp_reader *r, kp_arena *a, int32_t count, size_t elem_size)
{
    if (r->err || count <= 0) return NULL;
    void *p = kp_arena_calloc(a, (size_t)count, elem_size);
    if (!p) kp_reader_fail(r, KP_ERR_NOMEM);
    return p;
}

uint32_t kp_read_tags_begin(kp_reader *r)
{
    r->tags_at = r->p;
    return kp_read_uvarint(r);
}

uint32_t kp_read_tag(kp_reader *r, kp_reader *sub)
{
    uint32_t tag = kp_read_uvarint(r);
    uint32_t size = kp_read_uvarint(r);
    const uint8_t *p = take(r, size);
    kp_reader_init(sub, p ? p : r->p, p ? size : 0);
    return tag;
}

void kp_read_tag_end(kp_reader *r, const kp_reader *sub)
{
    if (sub->err)
        kp_reader_fail(r, sub->err);
    else if (sub->p != sub->end)
        kp_reader_fail(r, KP_ERR_INVALID); /* a known field must fill its declared size */
}

kp_tagged **kp_tagged_keep(kp_reader *r, kp_arena *a, kp_tagged **tail, uint32_t tag,
                           kp_reader *sub)
{
    size_t size = kp_reader_remaining(sub);
    const uint8_t *data = sub->p;
    sub->p = sub->end;
    if (r->err || !a || !tail) return tail;
    kp_tagged *t = kp_arena_alloc(a, sizeof(*t));
    if (!t) {
        kp_reader_fail(r, KP_ERR_NOMEM);
        return tail;
    }
    t->tag = tag;
    t->data = (kp_bytes){data, (int32_t)size};
    t->next = NULL;
    *tail = t;
    return &t->next;
}

void kp_read_tagged_fields(kp_reader *r, kp_arena *a, kp_tagged **unknown)
{
    kp_tagged **tail = unknown;
    while (tail && *tail)
        tail = &(*tail)->next;
    uint32_t n = kp_read_tags_begin(r);
    /* Each field takes at least two bytes, so a hostile count ends at the buffer's end. */
    for (uint32_t i = 0; i < n && !r->err; i++) {
        kp_reader sub;
        uint32_t tag = kp_read_tag(r, &sub);
        tail = kp_tagged_keep(r, a, tail, tag, &sub);
    }
}

/* ---- writer ------------------------------------------------------------------------------ */

void kp_writer_init(kp_writer *w, size_t initial_cap)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = KP_OK;
    if (initial_cap) {
        w->buf = malloc(initial_cap);
        if (w->buf)
            w->cap = initial_cap;
        else
            w->err = KP_ERR_NOMEM;
    }
}

void kp_writer_reset(kp_writer *w)
{
    w->len = 0;
    w->err = KP_OK;
}

void kp_writer_free(kp_writer *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

void kp_writer_fail(kp_writer *w, int err)
{
    if (!w->err) w->err = err;
}

uint8_t *kp_writer_extend(kp_writer *w, size_t n)
{
    if (w->err) return NULL;
    if (n > SIZE_MAX - w->len) {
        kp_writer_fail(w, KP_ERR_NOMEM);
        return NULL;
    }
    if (w->len + n > w->cap || !w->buf) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap = cap > SIZE_MAX / 2 ? w->len + n : cap * 2;
        uint8_t *buf = realloc(w->buf, cap);
        if (!buf) {
            kp_writer_fail(w, KP_ERR_NOMEM);
            return NULL;
        }
        w->buf = buf;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void kp_write_raw(kp_writer *w, const void *src, size_t n)
{
    uint8_t *p = kp_writer_extend(w, n);
    if (p && n) memcpy(p, src, n);
}

static void store_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void write_be(kp_writer *w, uint64_t v, int n)
{
    uint8_t *p = kp_writer_extend(w, (size_t)n);
    if (p) store_be(p, v, n);
}

void kp_write_i8(kp_writer *w, int8_t v)
{
    write_be(w, (uint8_t)v, 1);
}

void kp_write_i16(kp_writer *w, int16_t v)
{
    write_be(w, (uint16_t)v, 2);
}

void kp_write_i32(kp_writer *w, int32_t v)
{
    write_be(w, (uint32_t)v, 4);
}

void kp_write_i64(kp_writer *w, int64_t v)
{
    write_be(w, (uint64_t)v, 8);
}

void kp_write_u16(kp_writer *w, uint16_t v)
{
    write_be(w, v, 2);
}

void kp_write_u32(kp_writer *w, uint32_t v)
{
    write_be(w, v, 4);
}

void kp_write_f64(kp_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    write_be(w, bits, 8);
}

void kp_write_bool(kp_writer *w, bool v)
{
    write_be(w, v ? 1 : 0, 1);
}

void kp_write_uuid(kp_writer *w, kp_uuid v)
{
    kp_write_raw(w, v.b, 16);
}

static size_t uleb_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void store_uleb(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p = (uint8_t)v;
}

static void write_uleb(kp_writer *w, uint64_t v)
{
    uint8_t *p = kp_writer_extend(w, uleb_size(v));
    if (p) store_uleb(p, v);
}

size_t kp_uvarint_size(uint32_t v)
{
    return uleb_size(v);
}

void kp_write_uvarint(kp_writer *w, uint32_t v)
{
    write_uleb(w, v);
}

void kp_write_uvarlong(kp_writer *w, uint64_t v)
{
    write_uleb(w, v);
}

void kp_write_varint(kp_writer *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    write_uleb(w, (u << 1) ^ (uint32_t)(v >> 31));
}

void kp_write_varlong(kp_writer *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    write_uleb(w, (u << 1) ^ (uint64_t)(v >> 63));
}

/* Writes a length-prefixed slice; len < 0 is null. */
static void write_slice(kp_writer *w, bool flexible, int int16_len, const void *ptr, int32_t len)
{
    if (flexible)
        kp_write_uvarint(w, len < 0 ? 0 : (uint32_t)len + 1);
    else if (int16_len)
        kp_write_i16(w, (int16_t)(len < 0 ? -1 : len));
    else
        kp_write_i32(w, len < 0 ? -1 : len);
    if (len > 0) kp_write_raw(w, ptr, (size_t)len);
}

void kp_write_string(kp_writer *w, kp_str s)
{
    kp_write_str(w, false, true, s);
}

void kp_write_compact_string(kp_writer *w, kp_str s)
{
    kp_write_str(w, true, true, s);
}

void kp_write_str(kp_writer *w, bool flexible, bool nullable, kp_str s)
{
    if ((s.len < 0 && !nullable) || (!flexible && s.len > INT16_MAX)) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    write_slice(w, flexible, 1, s.ptr, s.len);
}

void kp_write_bytes(kp_writer *w, kp_bytes b)
{
    kp_write_blob(w, false, true, b);
}

void kp_write_compact_bytes(kp_writer *w, kp_bytes b)
{
    kp_write_blob(w, true, true, b);
}

void kp_write_blob(kp_writer *w, bool flexible, bool nullable, kp_bytes b)
{
    if (b.len < 0 && !nullable) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    write_slice(w, flexible, 0, b.ptr, b.len);
}

void kp_write_records(kp_writer *w, bool flexible, kp_bytes b)
{
    kp_write_blob(w, flexible, true, b);
}

void kp_write_array_len(kp_writer *w, bool flexible, bool nullable, int32_t count)
{
    if (count < 0 && !nullable) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    if (flexible)
        kp_write_uvarint(w, count < 0 ? 0 : (uint32_t)count + 1);
    else
        kp_write_i32(w, count < 0 ? -1 : count);
}

size_t kp_writer_reserve_len(kp_writer *w)
{
    size_t at = w->len;
    kp_write_i32(w, 0);
    return at;
}

void kp_writer_patch_i32(kp_writer *w, size_t at, int32_t v)
{
    if (w->err || at + 4 > w->len) return;
    store_be(w->buf + at, (uint32_t)v, 4);
}

void kp_writer_patch_len(kp_writer *w, size_t at)
{
    if (w->err || at + 4 > w->len) return;
    size_t n = w->len - at - 4;
    if (n > INT32_MAX) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    kp_writer_patch_i32(w, at, (int32_t)n);
}

static void write_unknown(kp_writer *w, const kp_tagged *t)
{
    int32_t len = t->data.len < 0 ? 0 : t->data.len;
    kp_write_uvarint(w, t->tag);
    kp_write_uvarint(w, (uint32_t)len);
    if (len) kp_write_raw(w, t->data.ptr, (size_t)len);
}

void kp_write_tagged_fields(kp_writer *w, const kp_tagged *unknown)
{
    kp_write_uvarint(w, kp_tagged_count(unknown));
    kp_write_unknown_rest(w, unknown);
}

const kp_tagged *kp_write_unknown_below(kp_writer *w, const kp_tagged *u, uint32_t tag)
{
    for (; u && u->tag < tag; u = u->next)
        write_unknown(w, u);
    return u;
}

void kp_write_unknown_rest(kp_writer *w, const kp_tagged *u)
{
    for (; u; u = u->next)
        write_unknown(w, u);
}

size_t kp_writer_tag_begin(kp_writer *w, uint32_t tag)
{
    kp_write_uvarint(w, tag);
    size_t mark = w->len;
    kp_write_i8(w, 0); /* one-byte size placeholder: fields are usually small */
    return mark;
}

void kp_writer_tag_end(kp_writer *w, size_t mark)
{
    if (w->err || mark >= w->len) return;
    size_t size = w->len - mark - 1;
    if (size > UINT32_MAX) {
        kp_writer_fail(w, KP_ERR_INVALID);
        return;
    }
    size_t n = uleb_size(size);
    if (n > 1) {
        if (!kp_writer_extend(w, n - 1)) return;
        memmove(w->buf + mark + n, w->buf + mark + 1, size);
    }
    store_uleb(w->buf + mark, size);
}

/* ---- random values ----------------------------------------------------------------------- */

uint64_t kp_rand_next(uint64_t *state)
{
    /* splitmix64: tiny, full period, good enough for test data. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint32_t kp_rand_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(kp_rand_next(state) % n);
}

/* Integers favour the values codecs get wrong: 0, -1, the extremes, small numbers. */
static int64_t rand_int(uint64_t *state, int64_t min, int64_t max)
{
    switch (kp_rand_below(state, 8)) {
    case 0:
        return 0;
    case 1:
        return min < 0 ? -1 : 1;
    case 2:
        return min;
    case 3:
        return max;
    case 4:
    case 5:
        return kp_rand_below(state, 100);
    default: {
        uint64_t span = (uint64_t)max - (uint64_t)min;
        uint64_t v = kp_rand_next(state);
        if (span != UINT64_MAX) v %= span + 1;
        return (int64_t)((uint64_t)min + v);
    }
    }
}

int8_t kp_rand_i8(uint64_t *state)
{
    return (int8_t)rand_int(state, INT8_MIN, INT8_MAX);
}

int16_t kp_rand_i16(uint64_t *state)
{
    return (int16_t)rand_int(state, INT16_MIN, INT16_MAX);
}

int32_t kp_rand_i32(uint64_t *state)
{
    return (int32_t)rand_int(state, INT32_MIN, INT32_MAX);
}

int64_t kp_rand_i64(uint64_t *state)
{
    return rand_int(state, INT64_MIN, INT64_MAX);
}

uint16_t kp_rand_u16(uint64_t *state)
{
    return (uint16_t)rand_int(state, 0, UINT16_MAX);
}

uint32_t kp_rand_u32(uint64_t *state)
{
    return (uint32_t)rand_int(state, 0, UINT32_MAX);
}

double kp_rand_f64(uint64_t *state)
{
    /* Finite values only: NaN payloads need not survive a round trip through a double. */
    return (double)kp_rand_i32(state) / 8.0;
}

bool kp_rand_bool(uint64_t *state)
{
    return kp_rand_below(state, 2);
}

kp_uuid kp_rand_uuid(uint64_t *state)
{
    kp_uuid u = {{0}};
    if (kp_rand_below(state, 4) == 0) return u; /* the all-zero uuid is the common default */
    for (int i = 0; i < 16; i++)
        u.b[i] = (uint8_t)kp_rand_next(state);
    return u;
}

/* Mostly short, sometimes long enough to need a two-byte compact length. */
static int32_t rand_len(uint64_t *state)
{
    uint32_t r = kp_rand_below(state, 10);
    if (r < 7) return (int32_t)kp_rand_below(state, 13);
    if (r < 9) return 13 + (int32_t)kp_rand_below(state, 28);
    return 128 + (int32_t)kp_rand_below(state, 173);
}

kp_str kp_rand_str(kp_arena *a, uint64_t *state, bool nullable)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789._-";
    if (nullable && kp_rand_below(state, 10) == 0) return KP_STR_NULL;
    int32_t len = rand_len(state);
    char *s = kp_arena_alloc(a, (size_t)len + 1);
    if (!s) return (kp_str){"", 0};
    for (int32_t i = 0; i < len; i++)
        s[i] = chars[kp_rand_below(state, sizeof(chars) - 1)];
    return (kp_str){s, len};
}

kp_bytes kp_rand_blob(kp_arena *a, uint64_t *state, bool nullable)
{
    if (nullable && kp_rand_below(state, 10) == 0) return KP_BYTES_NULL;
    int32_t len = rand_len(state);
    uint8_t *p = kp_arena_alloc(a, (size_t)len + 1);
    if (!p) return (kp_bytes){NULL, 0};
    for (int32_t i = 0; i < len; i++)
        p[i] = (uint8_t)kp_rand_next(state);
    return (kp_bytes){p, len};
}

int32_t kp_rand_count(uint64_t *state, bool nullable, int depth)
{
    uint32_t r = kp_rand_below(state, 100);
    if (nullable && r < 8) return -1;
    if (r < 30) return 0;
    if (depth == 0 && r < 33) return 300;
    return 1 + (int32_t)kp_rand_below(state, 3);
}

static bool tag_is_known(uint32_t tag, const uint32_t *known, size_t nknown)
{
    for (size_t i = 0; i < nknown; i++)
        if (known[i] == tag) return true;
    return false;
}

kp_tagged *kp_rand_unknown_tags(kp_arena *a, uint64_t *state, const uint32_t *known, size_t nknown)
{
    if (kp_rand_below(state, 4) != 0) return NULL;
    kp_tagged *head = NULL, **tail = &head;
    uint32_t tag = kp_rand_below(state, 4);
    int n = 1 + (int)kp_rand_below(state, 3);
    for (int i = 0; i < n; i++) {
        while (tag_is_known(tag, known, nknown))
            tag++;
        kp_tagged *t = kp_arena_alloc(a, sizeof(*t));
        if (!t) break;
        t->tag = tag;
        t->data = kp_rand_blob(a, state, false);
        t->next = NULL;
        *tail = t;
        tail = &t->next;
        /* Sometimes a big jump, so tags need multi-byte varints. */
        tag += kp_rand_below(state, 8) == 0 ? 100000 : 1 + kp_rand_below(state, 5);
    }
    return head;
}
