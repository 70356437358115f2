/* libFuzzer target: record blobs (the "records" of Produce requests and Fetch responses).
 *
 * Input: one mode byte, then the blob. The mode picks what the callback does to every record
 * (bits 0-1: append bytes, overwrite the first byte, duplicate, drop) and whether the CRC is
 * kept valid (bit 2). Beyond "no crash, no leak, no undefined behaviour" it checks that:
 *   - visit and rewrite agree on what is malformed;
 *   - a rewritten blob decodes, holds exactly the records the callback asked for, carries the
 *     change (appended bytes are there), and has no more bad CRCs than the input when the CRC
 *     is to be kept valid;
 *   - the rewritten blob is stable: rewriting it with a callback that changes nothing is a no-op.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/kp_records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MODE_APPEND, MODE_OVERWRITE, MODE_DUPLICATE, MODE_DROP };
static const char SUFFIX[] = "~fz";

typedef struct fuzz_ctx {
    int mode;
    long records;    /* records shown to the callback */
    long expected;   /* records the rewritten blob must hold */
    kp_writer value; /* the callback's memory for a changed value */
} fuzz_ctx;

static bool mutate(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    fuzz_ctx *f = ctx;
    f->records++;
    switch (f->mode) {
    case MODE_DUPLICATE:
        *copies = 2;
        f->expected += 2;
        return false;
    case MODE_DROP:
        *copies = rec->offset_delta % 2 ? 0 : 1;
        f->expected += *copies;
        return false;
    default:
        break;
    }
    f->expected++;
    size_t n = rec->value.len > 0 ? (size_t)rec->value.len : 0;
    kp_writer_reset(&f->value);
    if (n) kp_write_raw(&f->value, rec->value.ptr, n);
    if (f->mode == MODE_APPEND)
        kp_write_raw(&f->value, SUFFIX, sizeof(SUFFIX) - 1);
    else if (n)
        f->value.buf[0] ^= 0x5a;
    if (f->value.err) abort();
    rec->value = (kp_bytes){f->value.buf, (int32_t)f->value.len};
    return true;
}

static bool count_only(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    long *n = ctx;
    (*n)++;
    return false;
}

/* Every value of a blob rewritten in append mode must end with the suffix. */
static bool check_suffix(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    size_t k = sizeof(SUFFIX) - 1;
    if (rec->value.len < (int32_t)k || memcmp(rec->value.ptr + rec->value.len - k, SUFFIX, k)) {
        fprintf(stderr, "rewritten value lacks the appended bytes\n");
        abort();
    }
    return false;
}

static void check_rewritten(const fuzz_ctx *f, const uint8_t *in, size_t len, const kp_writer *out,
                            bool keep_crc_valid)
{
    long n = 0;
    if (kp_records_visit(out->buf, out->len, count_only, &n, NULL) < 0 || n != f->expected) {
        fprintf(stderr, "rewritten blob: %ld records, expected %ld\n", n, f->expected);
        abort();
    }
    if (f->mode == MODE_APPEND) kp_records_visit(out->buf, out->len, check_suffix, NULL, NULL);
    if (keep_crc_valid &&
        kp_records_crc_errors(out->buf, out->len) > kp_records_crc_errors(in, len)) {
        fprintf(stderr, "rewrite made a CRC invalid\n");
        abort();
    }
    kp_writer again;
    kp_writer_init(&again, 0);
    long seen = 0;
    if (kp_records_rewrite(out->buf, out->len, count_only, &seen, true, NULL, &again) != 0) {
        fprintf(stderr, "rewriting the rewritten blob without changes is not a no-op\n");
        abort();
    }
    kp_writer_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fuzz_ctx f = {.mode = data[0] & 3};
    bool keep_crc_valid = (data[0] & 4) != 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    kp_writer_init(&f.value, 0);

    long visited = 0;
    int n = kp_records_visit(in, len, count_only, &visited, NULL);
    if (n >= 0 && n != visited) abort();

    kp_writer out;
    kp_writer_init(&out, 0);
    int rc = kp_records_rewrite(in, len, mutate, &f, keep_crc_valid, NULL, &out);
    /* The one refusal visit cannot foresee: records grown past the decompression cap. */
    bool may_outgrow = f.mode == MODE_APPEND || f.mode == MODE_DUPLICATE;
    if ((rc < 0) != (n < 0) && !(rc < 0 && may_outgrow)) {
        fprintf(stderr, "visit says %d, rewrite says %d\n", n, rc);
        abort();
    }
    if (rc >= 0 && f.records != n) abort(); /* both saw the same records */
    if (rc == 1) check_rewritten(&f, in, len, &out, keep_crc_valid);
    if (rc != 1 && out.len != 0) abort(); /* a refused or unchanged rewrite leaves OUT alone */
    kp_writer_free(&out);
    kp_writer_free(&f.value);
    return 0;
}
