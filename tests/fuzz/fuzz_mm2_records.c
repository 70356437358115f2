/* libFuzzer target: MirrorMaker 2's records as kgate reads them from the topics MM2 writes (the
 * offset syncs a planned switch reads, route/kg_offsync.h; the checkpoints a switch translates
 * offsets with, route/kg_offsets.h). Anyone who can write to those topics controls the bytes.
 *
 * Input: one byte N, then the record's key (N bytes, or all that is left when fewer) and its
 * value (the rest). N = 255 makes the key null (a record without one). Beyond "no crash, no
 * leak, no undefined behaviour" it checks that what decodes is exactly one record: kgate's
 * encoder, given what was decoded, writes the same key and value bytes back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route/kg_offsets.h"
#include "route/kg_offsync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_bytes(const kp_writer *w, kp_bytes want)
{
    if (w->err || w->len != (size_t)want.len || memcmp(w->buf, want.ptr, w->len) != 0) abort();
}

static void check_offset_sync(kp_bytes key, kp_bytes value)
{
    kg_offsync_rec s;
    if (kg_offsync_decode(key, value, &s) < 0) return;
    if (s.partition < 0 || s.upstream < 0 || s.downstream < 0) abort();
    kp_writer k, v;
    kp_writer_init(&k, 16);
    kp_writer_init(&v, 16);
    kg_offsync_encode(&s, &k, &v);
    same_bytes(&k, key);
    same_bytes(&v, value);
    kp_writer_free(&k);
    kp_writer_free(&v);
}

static void check_checkpoint(kp_bytes key, kp_bytes value)
{
    kg_offsets_checkpoint cp;
    if (kg_offsets_checkpoint_decode(key, value, &cp) < 0) return;
    if (cp.group.len <= 0 || cp.partition < 0 || cp.upstream < 0 || cp.downstream < 0) abort();
    kp_writer k, v;
    kp_writer_init(&k, 16);
    kp_writer_init(&v, 16);
    kg_offsets_checkpoint_encode(&cp, &k, &v);
    same_bytes(&k, key);
    same_bytes(&v, value);
    kp_writer_free(&k);
    kp_writer_free(&v);
}

/* KEY or VALUE in a buffer of its own, so that reading past its end is caught. */
static kp_bytes own(const uint8_t *p, size_t n, uint8_t **buf)
{
    *buf = malloc(n ? n : 1);
    if (!*buf) abort();
    memcpy(*buf, p, n);
    return (kp_bytes){*buf, (int32_t)n};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t n = data[0] == 255 ? 0 : data[0];
    if (n > size - 1) n = size - 1;
    uint8_t *kbuf = NULL, *vbuf = NULL;
    kp_bytes key = data[0] == 255 ? KP_BYTES_NULL : own(data + 1, n, &kbuf);
    kp_bytes value = own(data + 1 + n, size - 1 - n, &vbuf);
    check_offset_sync(key, value);
    check_checkpoint(key, value);
    free(kbuf);
    free(vbuf);
    return 0;
}
