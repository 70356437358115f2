/* MirrorMaker 2 checkpoint records (route/kg_offsets.h): the bytes are built here by hand from
 * Kafka's documented layout (connect/mirror Checkpoint, version 0), not with kgate's encoder, so
 * a mistake in the codec cannot hide behind itself; then kgate's encoder must produce the same
 * bytes, and anything that is not exactly a checkpoint is refused. */
#include "kt.h"

#include <stdint.h>
#include <string.h>

#include "route/kg_offsets.h"
#include "route/kg_offsync.h"

typedef struct blob {
    uint8_t b[256];
    size_t n;
} blob;

static void put(blob *x, const void *p, size_t n)
{
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

static void put_be(blob *x, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        uint8_t byte = (uint8_t)(v >> (8 * i));
        put(x, &byte, 1);
    }
}

static void put_str(blob *x, const char *s)
{
    put_be(x, strlen(s), 2);
    put(x, s, strlen(s));
}

/* key: group, topic, partition; value: version, upstream, downstream, metadata */
static void checkpoint(blob *key, blob *value, const char *group, const char *topic,
                       int32_t partition, int16_t version, int64_t up, int64_t down,
                       const char *meta)
{
    memset(key, 0, sizeof(*key));
    memset(value, 0, sizeof(*value));
    put_str(key, group);
    put_str(key, topic);
    put_be(key, (uint32_t)partition, 4);
    put_be(value, (uint16_t)version, 2);
    put_be(value, (uint64_t)up, 8);
    put_be(value, (uint64_t)down, 8);
    put_str(value, meta);
}

static kp_bytes bytes(const blob *x)
{
    return (kp_bytes){x->b, (int32_t)x->n};
}

KT_TEST(checkpoint_decodes_the_documented_layout)
{
    blob k, v;
    checkpoint(&k, &v, "billing", "orders", 7, 0, 1234, 5678, "meta");
    kg_offsets_checkpoint cp;
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), 0);
    KT_CHECK(kp_str_eq_c(cp.group, "billing") && kp_str_eq_c(cp.topic, "orders"));
    KT_CHECK_EQ_INT(cp.partition, 7);
    KT_CHECK(cp.upstream == 1234 && cp.downstream == 5678);
    KT_CHECK(kp_str_eq_c(cp.metadata, "meta"));
}

KT_TEST(checkpoint_encoder_writes_the_same_bytes)
{
    blob k, v;
    checkpoint(&k, &v, "g", "t.x-1", 0, 0, 10, 60, "");
    kg_offsets_checkpoint cp = {kp_str_c("g"), kp_str_c("t.x-1"), 0, 10, 60, kp_str_c("")};
    kp_writer wk, wv;
    kp_writer_init(&wk, 16);
    kp_writer_init(&wv, 16);
    kg_offsets_checkpoint_encode(&cp, &wk, &wv);
    KT_CHECK(!wk.err && !wv.err && wk.len == k.n && wv.len == v.n);
    if (wk.len == k.n) KT_CHECK_EQ_MEM(wk.buf, k.b, k.n);
    if (wv.len == v.n) KT_CHECK_EQ_MEM(wv.buf, v.b, v.n);
    kp_writer_free(&wk);
    kp_writer_free(&wv);
}

KT_TEST(checkpoint_refuses_what_is_not_one)
{
    blob k, v;
    kg_offsets_checkpoint cp;
    checkpoint(&k, &v, "g", "orders", 0, 1, 1, 1, ""); /* another version */
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), -1);
    checkpoint(&k, &v, "", "orders", 0, 0, 1, 1, ""); /* no group */
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), -1);
    checkpoint(&k, &v, "g", "or ders", 0, 0, 1, 1, ""); /* no topic name Kafka takes */
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), -1);
    checkpoint(&k, &v, "g", "orders", -1, 0, 1, 1, "");
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), -1);
    checkpoint(&k, &v, "g", "orders", 0, 0, 1, -5, "");
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), -1);
    checkpoint(&k, &v, "g", "orders", 0, 0, 1, 1, "");
    blob longer = v;
    put(&longer, "x", 1); /* bytes left over */
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&longer), &cp), -1);
    for (size_t n = 0; n < v.n; n++) { /* every truncation of the value, then of the key */
        kp_bytes cut = {v.b, (int32_t)n};
        KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), cut, &cp), -1);
    }
    for (size_t n = 0; n < k.n; n++) {
        kp_bytes cut = {k.b, (int32_t)n};
        KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(cut, bytes(&v), &cp), -1);
    }
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(KP_BYTES_NULL, bytes(&v), &cp), -1);
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), KP_BYTES_NULL, &cp), -1);
    KT_CHECK_EQ_INT(kg_offsets_checkpoint_decode(bytes(&k), bytes(&v), &cp), 0);
}

/* MM2's offset syncs (connect/mirror OffsetSync): key topic, partition; value upstream, downstream
 * (no version field). */
static void offset_sync(blob *key, blob *value, const char *topic, int32_t partition, int64_t up,
                        int64_t down)
{
    memset(key, 0, sizeof(*key));
    memset(value, 0, sizeof(*value));
    put_str(key, topic);
    put_be(key, (uint32_t)partition, 4);
    put_be(value, (uint64_t)up, 8);
    put_be(value, (uint64_t)down, 8);
}

KT_TEST(offset_sync_decodes_the_documented_layout_and_encodes_the_same_bytes)
{
    blob k, v;
    offset_sync(&k, &v, "orders.eu", 3, 4100, 9100);
    kg_offsync_rec s;
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&v), &s), 0);
    KT_CHECK(kp_str_eq_c(s.topic, "orders.eu") && s.partition == 3);
    KT_CHECK(s.upstream == 4100 && s.downstream == 9100);
    kp_writer wk, wv;
    kp_writer_init(&wk, 16);
    kp_writer_init(&wv, 16);
    kg_offsync_encode(&(kg_offsync_rec){kp_str_c("orders.eu"), 3, 4100, 9100}, &wk, &wv);
    KT_CHECK(!wk.err && !wv.err && wk.len == k.n && wv.len == v.n);
    if (wk.len == k.n) KT_CHECK_EQ_MEM(wk.buf, k.b, k.n);
    if (wv.len == v.n) KT_CHECK_EQ_MEM(wv.buf, v.b, v.n);
    kp_writer_free(&wk);
    kp_writer_free(&wv);
}

KT_TEST(offset_sync_refuses_what_is_not_one)
{
    blob k, v, ck, cv;
    kg_offsync_rec s;
    offset_sync(&k, &v, "or ders", 0, 1, 1); /* no topic name Kafka takes */
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&v), &s), -1);
    offset_sync(&k, &v, "orders", -1, 1, 1);
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&v), &s), -1);
    offset_sync(&k, &v, "orders", 0, -1, 1);
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&v), &s), -1);
    /* a checkpoint (a foreign record of another MM2 topic) is no offset sync */
    checkpoint(&ck, &cv, "g", "orders", 0, 0, 1, 1, "");
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&ck), bytes(&cv), &s), -1);
    offset_sync(&k, &v, "orders", 0, 1, 1);
    blob longer = v;
    put(&longer, "x", 1);
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&longer), &s), -1);
    for (size_t n = 0; n < v.n; n++) {
        kp_bytes cut = {v.b, (int32_t)n};
        KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), cut, &s), -1);
    }
    for (size_t n = 0; n < k.n; n++) {
        kp_bytes cut = {k.b, (int32_t)n};
        KT_CHECK_EQ_INT(kg_offsync_decode(cut, bytes(&v), &s), -1);
    }
    KT_CHECK_EQ_INT(kg_offsync_decode(KP_BYTES_NULL, bytes(&v), &s), -1); /* a tombstone too */
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), KP_BYTES_NULL, &s), -1);
    KT_CHECK_EQ_INT(kg_offsync_decode(bytes(&k), bytes(&v), &s), 0);
}

KT_MAIN()
