/* Wire primitives: every value type, varint edge cases, bounds, nulls, hostile lengths. */
#include "kt.h"

#include <limits.h>
#include <stdint.h>

#include "proto/kp_prim.h"

#define BUF(...) ((const uint8_t[]){__VA_ARGS__})
#define READER(name, ...)                                                                          \
    kp_reader name;                                                                                \
    static const uint8_t name##_bytes[] = {__VA_ARGS__};                                           \
    kp_reader_init(&name, name##_bytes, sizeof(name##_bytes))

KT_TEST(fixed_width_integers_are_big_endian)
{
    READER(r, 0xff, 0x12, 0x34, 0x80, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
           0xfe, 0xab, 0xcd, 0xde, 0xad, 0xbe, 0xef);
    KT_CHECK_EQ_INT(kp_read_i8(&r), -1);
    KT_CHECK_EQ_INT(kp_read_i16(&r), 0x1234);
    KT_CHECK_EQ_INT(kp_read_i32(&r), INT32_MIN + 1);
    KT_CHECK_EQ_INT(kp_read_i64(&r), -2);
    KT_CHECK_EQ_INT(kp_read_u16(&r), 0xabcd);
    KT_CHECK_EQ_INT(kp_read_u32(&r), 0xdeadbeefu);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    KT_CHECK(r.p == r.end);
}

KT_TEST(writer_round_trips_every_fixed_type)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_uuid u;
    for (int i = 0; i < 16; i++)
        u.b[i] = (uint8_t)(i * 17);
    kp_write_i8(&w, INT8_MIN);
    kp_write_i16(&w, INT16_MAX);
    kp_write_i32(&w, -123456789);
    kp_write_i64(&w, INT64_MIN);
    kp_write_u16(&w, 65535);
    kp_write_u32(&w, 4000000000u);
    kp_write_f64(&w, -0.15625);
    kp_write_bool(&w, true);
    kp_write_bool(&w, false);
    kp_write_uuid(&w, u);
    KT_CHECK_EQ_INT(w.err, KP_OK);
    KT_CHECK_EQ_INT(w.len, 1 + 2 + 4 + 8 + 2 + 4 + 8 + 1 + 1 + 16);
    /* f64 is IEEE 754 big-endian: -0.15625 = 0xBFC4000000000000 */
    KT_CHECK_EQ_MEM(w.buf + 21, BUF(0xbf, 0xc4, 0, 0, 0, 0, 0, 0), 8);
    kp_reader r;
    kp_reader_init(&r, w.buf, w.len);
    KT_CHECK_EQ_INT(kp_read_i8(&r), INT8_MIN);
    KT_CHECK_EQ_INT(kp_read_i16(&r), INT16_MAX);
    KT_CHECK_EQ_INT(kp_read_i32(&r), -123456789);
    KT_CHECK(kp_read_i64(&r) == INT64_MIN);
    KT_CHECK_EQ_INT(kp_read_u16(&r), 65535);
    KT_CHECK_EQ_INT(kp_read_u32(&r), 4000000000u);
    KT_CHECK(kp_read_f64(&r) == -0.15625);
    KT_CHECK(kp_read_bool(&r) == true);
    KT_CHECK(kp_read_bool(&r) == false);
    kp_uuid back = kp_read_uuid(&r);
    KT_CHECK_EQ_MEM(back.b, u.b, 16);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    KT_CHECK(r.p == r.end);
    kp_writer_free(&w);
}

KT_TEST(bool_reads_any_nonzero_byte_as_true)
{
    READER(r, 0x02, 0x00, 0x80);
    KT_CHECK(kp_read_bool(&r));
    KT_CHECK(!kp_read_bool(&r));
    KT_CHECK(kp_read_bool(&r));
}

/* Encodes v, checks the exact bytes, decodes them back. */
static void check_uvarint(uint32_t v, const uint8_t *bytes, size_t n)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_uvarint(&w, v);
    KT_CHECK_EQ_INT(w.len, n);
    KT_CHECK_EQ_INT(kp_uvarint_size(v), n);
    if (w.len == n) KT_CHECK_EQ_MEM(w.buf, bytes, n);
    kp_reader r;
    kp_reader_init(&r, bytes, n);
    KT_CHECK_EQ_INT(kp_read_uvarint(&r), v);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    KT_CHECK(r.p == r.end);
    kp_writer_free(&w);
}

KT_TEST(unsigned_varint_edges)
{
    check_uvarint(0, BUF(0x00), 1);
    check_uvarint(1, BUF(0x01), 1);
    check_uvarint(127, BUF(0x7f), 1);
    check_uvarint(128, BUF(0x80, 0x01), 2);
    check_uvarint(300, BUF(0xac, 0x02), 2);
    check_uvarint(16383, BUF(0xff, 0x7f), 2);
    check_uvarint(16384, BUF(0x80, 0x80, 0x01), 3);
    check_uvarint(UINT32_MAX, BUF(0xff, 0xff, 0xff, 0xff, 0x0f), 5);
}

static void check_varint(int32_t v, const uint8_t *bytes, size_t n)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_varint(&w, v);
    KT_CHECK_EQ_INT(w.len, n);
    if (w.len == n) KT_CHECK_EQ_MEM(w.buf, bytes, n);
    kp_reader r;
    kp_reader_init(&r, bytes, n);
    KT_CHECK_EQ_INT(kp_read_varint(&r), v);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    kp_writer_free(&w);
}

KT_TEST(zigzag_varint_edges)
{
    check_varint(0, BUF(0x00), 1);
    check_varint(-1, BUF(0x01), 1);
    check_varint(1, BUF(0x02), 1);
    check_varint(-64, BUF(0x7f), 1);
    check_varint(64, BUF(0x80, 0x01), 2);
    check_varint(INT32_MAX, BUF(0xfe, 0xff, 0xff, 0xff, 0x0f), 5);
    check_varint(INT32_MIN, BUF(0xff, 0xff, 0xff, 0xff, 0x0f), 5);
}

KT_TEST(zigzag_varlong_edges)
{
    const int64_t values[] = {0, -1, 1, INT64_MAX, INT64_MIN, 1LL << 35, -(1LL << 35)};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        kp_writer w;
        kp_writer_init(&w, 0);
        kp_write_varlong(&w, values[i]);
        kp_reader r;
        kp_reader_init(&r, w.buf, w.len);
        KT_CHECK(kp_read_varlong(&r) == values[i]);
        KT_CHECK_EQ_INT(r.err, KP_OK);
        KT_CHECK(r.p == r.end);
        kp_writer_free(&w);
    }
    /* INT64_MIN zigzags to UINT64_MAX: ten bytes, the last one 0x01. */
    READER(r, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
    KT_CHECK(kp_read_varlong(&r) == INT64_MIN);
    KT_CHECK_EQ_INT(r.err, KP_OK);
}

KT_TEST(varints_that_overflow_or_run_past_the_end_fail)
{
    READER(too_long, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01); /* six bytes */
    KT_CHECK_EQ_INT(kp_read_uvarint(&too_long), 0);
    KT_CHECK_EQ_INT(too_long.err, KP_ERR_INVALID);

    READER(too_big, 0xff, 0xff, 0xff, 0xff, 0x1f); /* 2^33 - 1 does not fit 32 bits */
    kp_read_uvarint(&too_big);
    KT_CHECK_EQ_INT(too_big.err, KP_ERR_INVALID);

    READER(long_too_big, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02);
    kp_read_uvarlong(&long_too_big);
    KT_CHECK_EQ_INT(long_too_big.err, KP_ERR_INVALID);

    READER(cut, 0x80, 0x80);
    KT_CHECK_EQ_INT(kp_read_varint(&cut), 0);
    KT_CHECK_EQ_INT(cut.err, KP_ERR_SHORT);
}

KT_TEST(reads_past_the_end_fail_and_stay_failed)
{
    READER(r, 0x00, 0x01, 0x02);
    KT_CHECK_EQ_INT(kp_read_i32(&r), 0);
    KT_CHECK_EQ_INT(r.err, KP_ERR_SHORT);
    /* Later reads return zero even though bytes remain: the first error sticks. */
    KT_CHECK_EQ_INT(kp_read_i8(&r), 0);
    KT_CHECK_EQ_INT(r.err, KP_ERR_SHORT);
    KT_CHECK_EQ_INT(kp_reader_remaining(&r), 3);

    kp_reader empty;
    kp_reader_init(&empty, NULL, 0);
    KT_CHECK_EQ_INT(kp_read_i64(&empty), 0);
    KT_CHECK(kp_read_uuid(&empty).b[0] == 0);
    KT_CHECK_EQ_INT(empty.err, KP_ERR_SHORT);
}

KT_TEST(classic_strings_nullable_and_not)
{
    READER(r, 0x00, 0x03, 'a', 'b', 'c', 0xff, 0xff, 0x00, 0x00);
    kp_str s = kp_read_string(&r);
    KT_CHECK_EQ_INT(s.len, 3);
    KT_CHECK(kp_str_eq_c(s, "abc"));
    KT_CHECK(s.ptr == (const char *)r_bytes + 2); /* zero-copy */
    kp_str n = kp_read_nullable_string(&r);
    KT_CHECK_EQ_INT(n.len, -1);
    kp_str e = kp_read_string(&r);
    KT_CHECK_EQ_INT(e.len, 0);
    KT_CHECK_EQ_INT(r.err, KP_OK);

    READER(bad, 0xff, 0xff); /* null where a string is required */
    kp_read_string(&bad);
    KT_CHECK_EQ_INT(bad.err, KP_ERR_INVALID);

    READER(neg, 0xff, 0xfe); /* -2 is not a length */
    kp_read_nullable_string(&neg);
    KT_CHECK_EQ_INT(neg.err, KP_ERR_INVALID);

    READER(cut, 0x00, 0x05, 'a', 'b');
    kp_str c = kp_read_string(&cut);
    KT_CHECK_EQ_INT(cut.err, KP_ERR_SHORT);
    KT_CHECK_EQ_INT(c.len, 0);
}

KT_TEST(compact_strings_store_length_plus_one)
{
    READER(r, 0x04, 'x', 'y', 'z', 0x00, 0x01);
    KT_CHECK(kp_str_eq_c(kp_read_compact_string(&r), "xyz"));
    KT_CHECK_EQ_INT(kp_read_compact_nullable_string(&r).len, -1);
    KT_CHECK_EQ_INT(kp_read_compact_string(&r).len, 0);
    KT_CHECK_EQ_INT(r.err, KP_OK);

    READER(bad, 0x00);
    kp_read_compact_string(&bad);
    KT_CHECK_EQ_INT(bad.err, KP_ERR_INVALID);

    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_compact_string(&w, kp_str_c("hi"));
    kp_write_compact_string(&w, KP_STR_NULL);
    kp_write_string(&w, kp_str_c("hi"));
    kp_write_string(&w, KP_STR_NULL);
    KT_CHECK_EQ_INT(w.len, 3 + 1 + 4 + 2);
    KT_CHECK_EQ_MEM(w.buf, BUF(0x03, 'h', 'i', 0x00, 0x00, 0x02, 'h', 'i', 0xff, 0xff), 10);
    kp_writer_free(&w);
}

KT_TEST(writing_null_into_a_non_nullable_field_fails)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_str(&w, true, false, KP_STR_NULL);
    KT_CHECK_EQ_INT(w.err, KP_ERR_INVALID);
    kp_writer_reset(&w);
    kp_write_blob(&w, false, false, KP_BYTES_NULL);
    KT_CHECK_EQ_INT(w.err, KP_ERR_INVALID);
    kp_writer_reset(&w);
    kp_write_array_len(&w, false, false, -1);
    KT_CHECK_EQ_INT(w.err, KP_ERR_INVALID);
    kp_writer_free(&w);
}

KT_TEST(classic_string_longer_than_int16_cannot_be_written)
{
    static char big[40000];
    memset(big, 'a', sizeof(big));
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_str(&w, false, false, (kp_str){big, 32768});
    KT_CHECK_EQ_INT(w.err, KP_ERR_INVALID);
    kp_writer_reset(&w);
    kp_write_str(&w, true, false, (kp_str){big, 32768}); /* compact has no such limit */
    KT_CHECK_EQ_INT(w.err, KP_OK);
    KT_CHECK_EQ_INT(w.len, 3 + 32768);
    kp_writer_free(&w);
}

KT_TEST(bytes_and_records)
{
    READER(r, 0x00, 0x00, 0x00, 0x02, 0xaa, 0xbb, 0xff, 0xff, 0xff, 0xff, 0x03, 0x01, 0x02, 0x00);
    kp_bytes b = kp_read_bytes(&r);
    KT_CHECK_EQ_INT(b.len, 2);
    KT_CHECK(b.ptr == r_bytes + 4);
    KT_CHECK_EQ_INT(kp_read_records(&r, false).len, -1);
    kp_bytes c = kp_read_compact_bytes(&r);
    KT_CHECK_EQ_INT(c.len, 2);
    KT_CHECK_EQ_INT(c.ptr[1], 0x02);
    KT_CHECK_EQ_INT(kp_read_records(&r, true).len, -1);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    KT_CHECK(r.p == r.end);

    READER(bad, 0xff, 0xff, 0xff, 0xff);
    kp_read_bytes(&bad);
    KT_CHECK_EQ_INT(bad.err, KP_ERR_INVALID);
}

KT_TEST(huge_lengths_fail_without_allocating)
{
    /* 2 GiB string/bytes/array lengths in a tiny buffer. */
    READER(bytes, 0x7f, 0xff, 0xff, 0xff, 0x00);
    kp_read_bytes(&bytes);
    KT_CHECK_EQ_INT(bytes.err, KP_ERR_SHORT);

    READER(compact, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00);
    kp_read_compact_bytes(&compact);
    KT_CHECK(compact.err != KP_OK);

    READER(arr, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00);
    KT_CHECK_EQ_INT(kp_read_array_len(&arr, false, false, 4), 0);
    KT_CHECK_EQ_INT(arr.err, KP_ERR_SHORT);

    /* Exactly enough bytes for the claimed elements is fine... */
    READER(fits, 0x00, 0x00, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2);
    KT_CHECK_EQ_INT(kp_read_array_len(&fits, false, false, 4), 2);
    KT_CHECK_EQ_INT(fits.err, KP_OK);
    /* ...one element more is not. */
    READER(over, 0x00, 0x00, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2);
    kp_read_array_len(&over, false, false, 4);
    KT_CHECK_EQ_INT(over.err, KP_ERR_SHORT);
}

KT_TEST(array_lengths_null_and_compact)
{
    READER(r, 0xff, 0xff, 0xff, 0xff, 0x00, 0x03, 0xaa, 0xbb);
    KT_CHECK_EQ_INT(kp_read_array_len(&r, false, true, 1), -1);
    KT_CHECK_EQ_INT(kp_read_array_len(&r, true, true, 1), -1);
    KT_CHECK_EQ_INT(kp_read_array_len(&r, true, false, 1), 2);
    KT_CHECK_EQ_INT(r.err, KP_OK);

    READER(notnull, 0x00);
    kp_read_array_len(&notnull, true, false, 1);
    KT_CHECK_EQ_INT(notnull.err, KP_ERR_INVALID);

    READER(neg, 0xff, 0xff, 0xff, 0xfe);
    kp_read_array_len(&neg, false, true, 1);
    KT_CHECK_EQ_INT(neg.err, KP_ERR_INVALID);
}

KT_TEST(tagged_fields_are_kept_and_rewritten_in_order)
{
    /* Two fields: tag 1 = {0xaa}, tag 300 (two-byte varint) = {0xbb, 0xcc}. */
    READER(r, 0x02, 0x01, 0x01, 0xaa, 0xac, 0x02, 0x02, 0xbb, 0xcc, 0x07);
    kp_arena a;
    kp_arena_init(&a);
    kp_tagged *list = NULL;
    kp_read_tagged_fields(&r, &a, &list);
    KT_CHECK_EQ_INT(r.err, KP_OK);
    KT_CHECK(r.tags_at == r_bytes);
    KT_CHECK_EQ_INT(kp_tagged_count(list), 2);
    KT_CHECK_EQ_INT(list->tag, 1);
    KT_CHECK_EQ_INT(list->data.len, 1);
    KT_CHECK_EQ_INT(list->next->tag, 300);
    KT_CHECK(list->next->data.ptr == r_bytes + 7);
    KT_CHECK_EQ_INT(kp_read_i8(&r), 7);

    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_tagged_fields(&w, list);
    KT_CHECK_EQ_INT(w.len, 9);
    KT_CHECK_EQ_MEM(w.buf, r_bytes, 9);

    /* Merging a known tag 2 between them keeps increasing order. */
    kp_writer_reset(&w);
    kp_write_uvarint(&w, 3);
    const kp_tagged *rest = kp_write_unknown_below(&w, list, 2);
    size_t mark = kp_writer_tag_begin(&w, 2);
    kp_write_i8(&w, 0x55);
    kp_writer_tag_end(&w, mark);
    kp_write_unknown_rest(&w, rest);
    KT_CHECK_EQ_MEM(
        w.buf, BUF(0x03, 0x01, 0x01, 0xaa, 0x02, 0x01, 0x55, 0xac, 0x02, 0x02, 0xbb, 0xcc), 12);
    kp_writer_free(&w);
    kp_arena_free(&a);
}

KT_TEST(tagged_field_sizes_over_127_bytes_use_longer_varints)
{
    kp_writer w;
    kp_writer_init(&w, 0);
    kp_write_i8(&w, 0x11);
    size_t mark = kp_writer_tag_begin(&w, 5);
    for (int i = 0; i < 200; i++)
        kp_write_i8(&w, (int8_t)i);
    kp_writer_tag_end(&w, mark);
    KT_CHECK_EQ_INT(w.err, KP_OK);
    KT_CHECK_EQ_INT(w.len, 1 + 1 + 2 + 200);
    KT_CHECK_EQ_MEM(w.buf, BUF(0x11, 0x05, 0xc8, 0x01, 0x00, 0x01, 0x02), 7);
    KT_CHECK_EQ_INT(w.buf[w.len - 1], 199);
    kp_writer_free(&w);
}

KT_TEST(tagged_field_with_size_past_the_end_fails)
{
    READER(r, 0x01, 0x00, 0x05, 0xaa);
    kp_arena a;
    kp_arena_init(&a);
    kp_tagged *list = NULL;
    kp_read_tagged_fields(&r, &a, &list);
    KT_CHECK_EQ_INT(r.err, KP_ERR_SHORT);
    KT_CHECK(list == NULL);
    /* A count larger than the fields present runs out of bytes, no matter how large. */
    READER(many, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00);
    kp_read_tagged_fields(&many, &a, &list);
    KT_CHECK_EQ_INT(many.err, KP_ERR_SHORT);
    /* Without an arena the section is validated and skipped. */
    READER(skip, 0x01, 0x09, 0x01, 0xaa, 0x42);
    kp_read_tagged_fields(&skip, NULL, NULL);
    KT_CHECK_EQ_INT(skip.err, KP_OK);
    KT_CHECK_EQ_INT(kp_read_i8(&skip), 0x42);
    kp_arena_free(&a);
}

KT_TEST(length_prefix_reserve_and_patch)
{
    kp_writer w;
    kp_writer_init(&w, 2); /* tiny: forces growth */
    size_t at = kp_writer_reserve_len(&w);
    for (int i = 0; i < 1000; i++)
        kp_write_i32(&w, i);
    kp_writer_patch_len(&w, at);
    KT_CHECK_EQ_INT(w.err, KP_OK);
    kp_reader r;
    kp_reader_init(&r, w.buf, w.len);
    KT_CHECK_EQ_INT(kp_read_i32(&r), 4000);
    for (int i = 0; i < 1000; i++)
        if (kp_read_i32(&r) != i) KT_CHECK(!"payload corrupted by growth");
    kp_writer_free(&w);
}

KT_TEST(arena_serves_small_large_and_reset)
{
    kp_arena a;
    kp_arena_init(&a);
    uint8_t *first = kp_arena_alloc(&a, 10);
    KT_CHECK(first != NULL);
    KT_CHECK_EQ_INT((uintptr_t)first % 16, 0);
    memset(first, 0x5a, 10);
    uint8_t *big = kp_arena_alloc(&a, 1 << 20); /* larger than any chunk so far */
    KT_CHECK(big != NULL);
    memset(big, 1, 1 << 20);
    uint8_t *next = kp_arena_alloc(&a, 10);
    KT_CHECK(next != NULL);
    KT_CHECK(next != first);
    KT_CHECK_EQ_INT(first[9], 0x5a); /* earlier allocations stay intact */
    for (int i = 0; i < 10000; i++)
        KT_CHECK(kp_arena_alloc(&a, 24) != NULL);
    int *zeroed = kp_arena_calloc(&a, 100, sizeof(int));
    int sum = 0;
    for (int i = 0; i < 100; i++)
        sum += zeroed[i];
    KT_CHECK_EQ_INT(sum, 0);
    KT_CHECK(kp_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL); /* overflow is refused */
    kp_arena_reset(&a);
    KT_CHECK(kp_arena_alloc(&a, 100) != NULL);
    kp_arena_free(&a);
    kp_arena_free(&a); /* idempotent */
}

KT_TEST(string_helpers)
{
    KT_CHECK(kp_str_eq(KP_STR_NULL, KP_STR_NULL));
    KT_CHECK(!kp_str_eq(KP_STR_NULL, kp_str_c("")));
    KT_CHECK(kp_str_eq(kp_str_c(""), (kp_str){NULL, 0}));
    KT_CHECK(kp_str_eq_c((kp_str){"abcdef", 3}, "abc"));
    KT_CHECK(!kp_str_eq_c((kp_str){"abcdef", 3}, "abcd"));
    KT_CHECK_EQ_INT(kp_str_c(NULL).len, -1);
    kp_uuid z = {{0}};
    KT_CHECK(kp_uuid_is_zero(&z));
    z.b[15] = 1;
    KT_CHECK(!kp_uuid_is_zero(&z));
}

KT_MAIN()
