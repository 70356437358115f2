#include "route/kg_mirror.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_loop.h"
#include "kp_msgs.h"
#include <sys/time.h>
#include <time.h>

#include "chaos/kg_chaos_internal.h" /* kg_chaos_error_name */
#include "route/kg_kafka.h"
#include "route/kg_offsets.h"
#include "util/kg_log.h"

/* A copy is one Produce of at most about BATCH_BYTES + FETCH_BYTES: below the 1 MB
 * max.message.bytes brokers default to. */
#define FETCH_BYTES (256 * 1024)
#define BATCH_BYTES (512 * 1024)
#define FETCHES_PER_BATCH 64
#define BATCHES_PER_PARTITION 16   /* a pass moves on to the other partitions after this many */
#define SINGLES_PER_PARTITION 4096 /* records sent one by one after a refused batch */
#define PRODUCE_TIMEOUT_MS 15000
#define SOURCE_HEADER "kgate.mirror.source"
#define TIMESTAMP_LOG_APPEND 0x08

struct kg_mirror {
    pthread_mutex_t lock; /* one call at a time: the positions and syncs below are shared */
    atomic_int owner;     /* this instance runs the mirror (a fleet: holds its lock) */
    int reload;           /* read the positions from the store before the next pass */
    const kg_vcluster_cfg *cfg;
    regex_t topics;
    kg_metrics *metrics;
    kg_store *store;
    char doc_id[3 * KG_NAME_MAX + 4]; /* the direction whose positions are loaded */
    json_t *positions;                /* {topic: {"<partition>": next source offset}} */
    json_t *written; /* {"group topic partition": up}: the checkpoints written, not repeated */
    kg_counter *copied, *errors, *dead; /* dead: records written to the DLQ */
    kg_gauge *stopped_gauge;            /* partitions in STOPPED */
    json_t *stopped;      /* {topic: {"<partition>": why}}: refused records, no DLQ (retried) */
    char last_error[512]; /* why the last pass stopped; "" when it ended well */
};

kg_mirror *kg_mirror_new(const kg_vcluster_cfg *cfg, kg_metrics *metrics, kg_store *store)
{
    if (!cfg->mirror_topics[0]) return NULL;
    kg_mirror *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    if (regcomp(&m->topics, cfg->mirror_topics, REG_EXTENDED | REG_NOSUB) != 0) {
        free(m); /* the config check compiled it already */
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->owner, 1);
    m->cfg = cfg;
    m->written = json_object();
    m->metrics = metrics;
    m->store = store;
    char labels[256];
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", cfg->name, NULL);
    static const struct {
        const char *name, *help;
    } counters[] = {
        {"kgate_mirror_records_total", "Records the embedded mirror copied to the other cluster"},
        {"kgate_mirror_errors_total", "Mirror passes that stopped on an error (retried next pass)"},
        {"kgate_mirror_dlq_records_total",
         "Records the other cluster refused (a non-retriable error) that the embedded mirror "
         "wrote to its dead-letter topic (mirror.dlq)"},
    };
    kg_counter **slots[] = {&m->copied, &m->errors, &m->dead};
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++)
        *slots[i] = kg_metrics_counter(metrics, counters[i].name, counters[i].help, labels);
    m->stopped_gauge = kg_metrics_gauge(
        metrics, "kgate_mirror_stopped_partitions",
        "Partitions the embedded mirror stopped at a record the other cluster refuses (no "
        "mirror.dlq): their lag grows until the record is accepted or a DLQ is configured",
        labels);
    m->stopped = json_object();
    return m;
}

void kg_mirror_free(kg_mirror *m)
{
    if (!m) return;
    regfree(&m->topics);
    pthread_mutex_destroy(&m->lock);
    json_decref(m->positions);
    json_decref(m->written);
    json_decref(m->stopped);
    free(m);
}

/* ---------------------------------------------------------------- records to copy */

/* One record as read from the source, kept for the DLQ (copies: the Fetch answer is gone). */
typedef struct kept_record {
    int64_t ts, offset;
    int32_t header_count;
    int32_t key_len, value_len; /* -1: null */
    kp_writer data;             /* key, value, encoded headers, back to back */
} kept_record;

/* The records of one Fetch answer, re-encoded as one batch for the target. */
typedef struct batch_builder {
    const char *source, *target; /* cluster names */
    kp_writer records;           /* the encoded records */
    kp_writer scratch;           /* one record's body */
    int32_t count;
    int64_t base_ts, max_ts;
    int64_t first_source; /* the source offset of the first record copied */
    int64_t next_source;  /* the source offset after the last record taken or skipped */
    int single;           /* one record only, kept in KEPT (after a refused batch) */
    kept_record kept;
} batch_builder;

/* Does the record carry kgate.mirror.source = TARGET (it came from there)? */
static int came_from(const kp_record *rec, const char *target)
{
    kp_reader r;
    kp_reader_init(&r, rec->headers.ptr, rec->headers.len > 0 ? (size_t)rec->headers.len : 0);
    for (int32_t i = 0; i < rec->header_count && !r.err; i++) {
        int32_t klen = kp_read_varint(&r);
        const uint8_t *key = klen > 0 ? kp_read_skip(&r, (size_t)klen) : NULL;
        int32_t vlen = kp_read_varint(&r);
        const uint8_t *value = vlen > 0 ? kp_read_skip(&r, (size_t)vlen) : NULL;
        if (!r.err && key && value && (size_t)klen == strlen(SOURCE_HEADER) &&
            memcmp(key, SOURCE_HEADER, (size_t)klen) == 0 && (size_t)vlen == strlen(target) &&
            memcmp(value, target, (size_t)vlen) == 0)
            return 1;
    }
    return 0;
}

static void write_varbytes(kp_writer *w, kp_bytes b)
{
    kp_write_varint(w, b.len < 0 ? -1 : b.len);
    if (b.len > 0) kp_write_raw(w, b.ptr, (size_t)b.len);
}

/* Appends a record (HEADERS: HEADER_COUNT of them, encoded, then EXTRA_COUNT more in EXTRA)
 * and kgate.mirror.source. */
static void append_record_with(batch_builder *b, int64_t ts, kp_bytes key, kp_bytes value,
                               int32_t header_count, kp_bytes headers, int32_t extra_count,
                               const kp_writer *extra)
{
    if (b->count == 0) b->base_ts = b->max_ts = ts;
    if (ts > b->max_ts) b->max_ts = ts;
    kp_writer *w = &b->scratch;
    w->len = 0;
    kp_write_i8(w, 0); /* attributes */
    kp_write_varlong(w, ts - b->base_ts);
    kp_write_varint(w, b->count); /* offset delta */
    write_varbytes(w, key);
    write_varbytes(w, value);
    kp_write_varint(w, header_count + extra_count + 1);
    if (headers.len > 0) kp_write_raw(w, headers.ptr, (size_t)headers.len);
    if (extra && extra->len > 0) kp_write_raw(w, extra->buf, extra->len);
    write_varbytes(w, (kp_bytes){(const uint8_t *)SOURCE_HEADER, (int32_t)strlen(SOURCE_HEADER)});
    write_varbytes(w, (kp_bytes){(const uint8_t *)b->source, (int32_t)strlen(b->source)});
    kp_write_varint(&b->records, (int32_t)w->len);
    kp_write_raw(&b->records, w->buf, w->len);
    b->count++;
}

static void append_record(batch_builder *b, int64_t ts, kp_bytes key, kp_bytes value,
                          int32_t header_count, kp_bytes headers)
{
    append_record_with(b, ts, key, value, header_count, headers, 0, NULL);
}

static void keep_record(kept_record *k, int64_t ts, int64_t offset, const kp_record *rec)
{
    k->ts = ts;
    k->offset = offset;
    k->header_count = rec->header_count;
    k->key_len = rec->key.len < 0 ? -1 : rec->key.len;
    k->value_len = rec->value.len < 0 ? -1 : rec->value.len;
    kp_writer_reset(&k->data);
    if (rec->key.len > 0) kp_write_raw(&k->data, rec->key.ptr, (size_t)rec->key.len);
    if (rec->value.len > 0) kp_write_raw(&k->data, rec->value.ptr, (size_t)rec->value.len);
    if (rec->headers.len > 0) kp_write_raw(&k->data, rec->headers.ptr, (size_t)rec->headers.len);
}

static bool collect_record(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    batch_builder *b = ctx;
    int64_t offset = batch->base_offset + rec->offset_delta;
    if (b->single && b->count > 0) return false; /* the rest waits for the next batch */
    if (offset + 1 > b->next_source) b->next_source = offset + 1;
    if (came_from(rec, b->target)) return false;
    if (b->count == 0) b->first_source = offset;
    int64_t ts = (batch->attributes & TIMESTAMP_LOG_APPEND)
                     ? batch->max_timestamp
                     : batch->base_timestamp + rec->timestamp_delta;
    if (b->single) keep_record(&b->kept, ts, offset, rec);
    append_record(b, ts, rec->key, rec->value, rec->header_count, rec->headers);
    return false;
}

/* The batch (magic 2, uncompressed, no producer id: the target assigns offsets) into OUT. */
static void batch_encode(const batch_builder *b, kp_writer *out)
{
    kp_write_i64(out, 0); /* base offset */
    size_t len_at = kp_writer_reserve_len(out);
    kp_write_i32(out, -1); /* partition leader epoch */
    kp_write_i8(out, 2);   /* magic */
    size_t crc_at = out->len;
    kp_write_i32(out, 0);
    size_t crc_from = out->len;
    kp_write_i16(out, 0); /* attributes: no compression, CreateTime */
    kp_write_i32(out, b->count - 1);
    kp_write_i64(out, b->base_ts);
    kp_write_i64(out, b->max_ts);
    kp_write_i64(out, -1); /* producer id */
    kp_write_i16(out, -1); /* producer epoch */
    kp_write_i32(out, -1); /* base sequence */
    kp_write_i32(out, b->count);
    kp_write_raw(out, b->records.buf, b->records.len);
    if (out->err) return;
    kp_writer_patch_len(out, len_at);
    kp_writer_patch_i32(out, crc_at,
                        (int32_t)kp_crc32c(0, out->buf + crc_from, out->len - crc_from));
}

/* ---------------------------------------------------------------- Produce */

typedef struct produce_ctx {
    const char *topic;
    int32_t partition;
    kp_bytes records;
} produce_ctx;

static void encode_produce(kp_writer *w, int16_t version, void *ctx)
{
    const produce_ctx *c = ctx;
    kp_produce_request m;
    kp_produce_request_init(&m);
    kp_produce_request_partition_produce_data part = {.index = c->partition, .records = c->records};
    kp_produce_request_topic_produce_data topic = {.name = kp_str_c(c->topic),
                                                   .partition_data = {1, &part}};
    m.transactional_id = KP_STR_NULL;
    m.acks = -1; /* every in-sync replica: the position moves only past what is safe */
    m.timeout_ms = PRODUCE_TIMEOUT_MS;
    m.topic_data.count = 1;
    m.topic_data.items = &topic;
    kp_produce_request_encode(w, version, &m);
}

/* 0 when the target acknowledged the batch (*BASE: the offset it gave the first record), -1
 * with K->err and *CODE: the target's error code, or -1 when it did not answer. */
static int produce(kg_kafka *k, int32_t leader, const char *topic, int32_t partition,
                   const kp_writer *batch, int64_t *base, int16_t *code)
{
    *code = -1;
    produce_ctx ctx = {topic, partition, {batch->buf, (int32_t)batch->len}};
    kg_kafka_answer ans;
    /* v3+: record batches (magic 2); up to 9: what librdkafka's mock offers, topics by name */
    kg_cluster_request_spec rq = {KP_KEY_PRODUCE, 3, 9, encode_produce, &ctx};
    if (kg_kafka_ask(k, leader, &rq, &ans) < 0) return -1;
    kp_produce_response m;
    int rc = kp_produce_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    rc = rc == 0 && m.responses.count == 1 && m.responses.items[0].partition_responses.count == 1
             ? 0
             : -1;
    if (kg_kafka_decoded(k, &ans, rc, "Produce") == 0) {
        *code = m.responses.items[0].partition_responses.items[0].error_code;
        *base = m.responses.items[0].partition_responses.items[0].base_offset;
        if (*code != 0) {
            const char *name = kg_chaos_error_name(*code);
            snprintf(k->err, sizeof(k->err), "%s: Produce %s[%d]: %s (error %d)",
                     k->cluster->cfg->name, topic, partition, name ? name : "an error", *code);
            rc = -1;
        }
    }
    kg_kafka_answer_free(&ans);
    return rc;
}

/* ---------------------------------------------------------------- positions */

/* The positions of SOURCE -> TARGET into m->positions: from the store when another direction
 * (or nothing) is loaded, or when another instance may have moved them (this one does not run
 * the fleet's mirror, or has just taken it over). 0, or -1 when the store cannot say: nothing
 * is copied then (starting over from the log start would copy everything again). */
static int load_positions(kg_mirror *m, const char *source, const char *target)
{
    char id[sizeof(m->doc_id)];
    snprintf(id, sizeof(id), "%s:%s:%s", m->cfg->name, source, target);
    int same = m->positions && strcmp(id, m->doc_id) == 0;
    int owner = atomic_load(&m->owner);
    if (same && owner && !m->reload) return 0;
    int found = 0;
    json_t *doc = kg_store_get_doc(m->store, "mirror", id, &found);
    if (found < 0) return same && owner ? 0 : -1; /* our own copy is the latest one */
    json_decref(m->positions);
    m->positions = doc ? doc : json_object();
    snprintf(m->doc_id, sizeof(m->doc_id), "%s", id);
    m->reload = !owner;
    return 0;
}

int kg_mirror_owner(kg_mirror *m)
{
    return atomic_load(&m->owner);
}

void kg_mirror_set_owner(kg_mirror *m, int owner)
{
    pthread_mutex_lock(&m->lock); /* not during a pass: its positions stay its own */
    if (owner && !atomic_load(&m->owner)) m->reload = 1;
    atomic_store(&m->owner, owner);
    pthread_mutex_unlock(&m->lock);
}

static void save_position(kg_mirror *m, const char *topic, const char *part, int64_t next)
{
    json_t *parts = json_object_get(m->positions, topic);
    if (!parts) json_object_set_new(m->positions, topic, parts = json_object());
    json_object_set_new(parts, part, json_integer((json_int_t)next));
    if (kg_store_put_doc(m->store, "mirror", m->doc_id, m->positions) < 0)
        kg_warn("mirror %s: cannot store the position of %s[%s] (%lld): a restart copies it again",
                m->doc_id, topic, part, (long long)next);
}

/* Offset syncs: (next source offset, next target offset) after each copied batch, the last
 * SYNCS_KEPT per partition, kept with the positions under SYNCS_KEY (no topic is mirrored
 * whose name starts with "__"). */
#define SYNCS_KEY "__syncs"
#define SYNCS_KEPT 64

static json_t *syncs_of(kg_mirror *m, const char *topic, const char *part)
{
    json_t *all = json_object_get(m->positions, SYNCS_KEY);
    if (!all) json_object_set_new(m->positions, SYNCS_KEY, all = json_object());
    json_t *parts = json_object_get(all, topic);
    if (!parts) json_object_set_new(all, topic, parts = json_object());
    json_t *list = json_object_get(parts, part);
    if (!list) json_object_set_new(parts, part, list = json_array());
    return list;
}

static void add_sync(kg_mirror *m, const char *topic, const char *part, int64_t up, int64_t down)
{
    json_t *list = syncs_of(m, topic, part);
    json_array_append_new(list, json_pack("[I, I]", (json_int_t)up, (json_int_t)down));
    while (json_array_size(list) > SYNCS_KEPT)
        json_array_remove(list, 0);
}

/* The target offset to resume at for source offset UP, or -1 when no sync is at or before it.
 * Between two syncs that are as far apart on both sides (a batch copied whole) it is exact;
 * otherwise the sync before it (a consumer re-reads at most what lies between). */
static int64_t translate(kg_mirror *m, const char *topic, const char *part, int64_t up)
{
    json_t *list =
        json_object_get(json_object_get(json_object_get(m->positions, SYNCS_KEY), topic), part);
    int64_t below_up = -1, below_down = -1, above_up = -1, above_down = -1;
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair)
    {
        int64_t u = json_integer_value(json_array_get(pair, 0));
        int64_t d = json_integer_value(json_array_get(pair, 1));
        if (u <= up && u > below_up) {
            below_up = u;
            below_down = d;
        } else if (u > up && (above_up < 0 || u < above_up)) {
            above_up = u;
            above_down = d;
        }
    }
    if (below_up >= 0 && above_up >= 0 && above_up - below_up == above_down - below_down)
        return below_down + (up - below_up);
    return below_down;
}

static void set_lag(kg_mirror *m, const char *topic, const char *part, int64_t lag)
{
    char labels[512];
    if (kg_metrics_format_labels(labels, sizeof(labels), "vcluster", m->cfg->name, "topic", topic,
                                 "partition", part, NULL) < 0)
        return;
    kg_gauge *g = kg_metrics_gauge(m->metrics, "kgate_mirror_lag_records",
                                   "Records of the active cluster's partition the embedded mirror "
                                   "has not copied to the other cluster yet",
                                   labels);
    if (g) kg_gauge_set(g, (double)(lag > 0 ? lag : 0));
}

/* ---------------------------------------------------------------- a pass */

typedef struct pass {
    kg_mirror *m;
    kg_kafka src, dst;
    int copied;
    int32_t dlq_leader; /* of mirror.dlq's partition 0 on the target; -1: not looked up yet */
    /* A batch's records and the batch, kept from one batch to the next: half a megabyte of
     * fresh pages a batch cost the copy a fifth of its time in page faults. */
    kp_writer records, batch;
    char err[512];
} pass;

/* Fetches TOPIC[PARTITION] from *NEXT into B until B holds BATCH_BYTES (or one record, in
 * single mode), the source has no more (*HWM) or FETCHES_PER_BATCH answers came: a source that
 * answers one small batch per Fetch (librdkafka's older mocks) still makes large copies. *NEXT
 * ends after the last record taken. 0, or -1 with x->err. */
static int fill_batch(pass *x, const char *topic, int32_t partition, int32_t src_leader,
                      batch_builder *b, int64_t *next, int64_t *hwm)
{
    b->next_source = *next;
    for (int f = 0; f < FETCHES_PER_BATCH; f++) {
        int64_t at = *next, ignored;
        if (kg_kafka_fetch(&x->src, src_leader, topic, partition, at, FETCH_BYTES, collect_record,
                           b, &ignored, hwm) < 0) {
            snprintf(x->err, sizeof(x->err), "%s", x->src.err);
            return -1;
        }
        *next = b->next_source;
        if (*next == at || *next >= *hwm || b->records.len >= BATCH_BYTES ||
            (b->single && b->count > 0))
            break;
    }
    return 0;
}

/* Errors a retry does not cure: the target refuses this record (or batch) for good. */
static int refused_for_good(int16_t code)
{
    static const int16_t codes[] = {
        2,  /* CORRUPT_MESSAGE */
        10, /* MESSAGE_TOO_LARGE */
        17, /* INVALID_TOPIC_EXCEPTION */
        18, /* RECORD_LIST_TOO_LARGE */
        29, /* TOPIC_AUTHORIZATION_FAILED */
        32, /* INVALID_TIMESTAMP */
        43, /* UNSUPPORTED_FOR_MESSAGE_FORMAT */
        44, /* POLICY_VIOLATION */
        87, /* INVALID_RECORD */
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i] == code) return 1;
    return 0;
}

static void write_header(kp_writer *w, const char *key, const char *value)
{
    write_varbytes(w, (kp_bytes){(const uint8_t *)key, (int32_t)strlen(key)});
    write_varbytes(w, (kp_bytes){(const uint8_t *)value, (int32_t)strlen(value)});
}

/* Writes K (refused by the target with CODE) to mirror.dlq on the target, partition 0, with
 * its key, value and headers and five headers saying why and where from. 0, or -1 with
 * x->err. */
static int write_dlq(pass *x, const char *topic, int32_t partition, const kept_record *k,
                     int16_t code)
{
    const char *dlq = x->m->cfg->mirror_dlq;
    if (x->dlq_leader < 0) {
        const char *names[1] = {dlq};
        kg_cluster_topics t = {1, names};
        json_t *leaders = kg_kafka_leaders(&x->dst, &t);
        json_t *leader = json_object_get(json_object_get(leaders, dlq), "0");
        if (leader) x->dlq_leader = (int32_t)json_integer_value(leader);
        json_decref(leaders);
        if (!leader) {
            snprintf(x->err, sizeof(x->err), "the DLQ topic %s does not exist on %s", dlq,
                     x->dst.cluster->cfg->name);
            return -1;
        }
    }
    const char *name = kg_chaos_error_name(code);
    char reason[64], part[16], offset[32];
    snprintf(reason, sizeof(reason), "%s", name ? name : "UNKNOWN");
    if (!name) snprintf(reason, sizeof(reason), "error %d", code);
    snprintf(part, sizeof(part), "%d", partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)k->offset);
    kp_writer extra;
    kp_writer_init(&extra, 256);
    write_header(&extra, "kgate.dlq.reason", reason);
    write_header(&extra, "kgate.dlq.source.cluster", x->src.cluster->cfg->name);
    write_header(&extra, "kgate.dlq.source.topic", topic);
    write_header(&extra, "kgate.dlq.source.partition", part);
    write_header(&extra, "kgate.dlq.source.offset", offset);
    batch_builder b = {.source = x->src.cluster->cfg->name, .target = x->dst.cluster->cfg->name};
    kp_writer_init(&b.records, 1024);
    kp_writer_init(&b.scratch, 256);
    const uint8_t *p = k->data.buf;
    kp_bytes key = {k->key_len < 0 ? NULL : p, k->key_len};
    p += k->key_len > 0 ? k->key_len : 0;
    kp_bytes value = {k->value_len < 0 ? NULL : p, k->value_len};
    p += k->value_len > 0 ? k->value_len : 0;
    kp_bytes headers = {p, (int32_t)(k->data.len - (size_t)(p - k->data.buf))};
    append_record_with(&b, k->ts, key, value, k->header_count, headers, 5, &extra);
    kp_writer batch;
    kp_writer_init(&batch, 1024);
    batch_encode(&b, &batch);
    int64_t base;
    int16_t dlq_code;
    int rc = batch.err || extra.err
                 ? -1
                 : produce(&x->dst, x->dlq_leader, dlq, 0, &batch, &base, &dlq_code);
    if (rc < 0)
        snprintf(x->err, sizeof(x->err), "the DLQ refused it too: %s",
                 batch.err || extra.err ? "out of memory" : x->dst.err);
    kp_writer_free(&batch);
    kp_writer_free(&b.records);
    kp_writer_free(&b.scratch);
    kp_writer_free(&extra);
    return rc;
}

static void set_stopped(kg_mirror *m, const char *topic, const char *part, const char *why)
{
    json_t *parts = json_object_get(m->stopped, topic);
    json_t *was = parts ? json_object_get(parts, part) : NULL;
    if (why && !(was && strcmp(json_string_value(was), why) == 0)) {
        kg_error("mirror %s: %s[%s] stopped: %s; it is retried every pass, its lag grows until "
                 "the target takes the record or mirror.dlq is set",
                 m->doc_id, topic, part, why);
        if (!parts) json_object_set_new(m->stopped, topic, parts = json_object());
        json_object_set_new(parts, part, json_string(why));
    } else if (!why && was) {
        kg_info("mirror %s: %s[%s] copies again", m->doc_id, topic, part);
        json_object_del(parts, part);
        if (json_object_size(parts) == 0) json_object_del(m->stopped, topic);
    }
    size_t n = 0;
    const char *t;
    json_t *ps;
    json_object_foreach(m->stopped, t, ps) n += json_object_size(ps);
    kg_gauge_set(m->stopped_gauge, (double)n);
}

/* A record the target refused for good (CODE, x->err): into the DLQ, or the partition stops
 * there. 0 when it went to the DLQ, else -2. */
static int refused(pass *x, const char *topic, const char *part, const batch_builder *b,
                   int16_t code)
{
    char why[600];
    snprintf(why, sizeof(why), "%s: record at offset %lld refused: %s", x->src.cluster->cfg->name,
             (long long)b->kept.offset, x->dst.err);
    if (x->m->cfg->mirror_dlq[0] && write_dlq(x, topic, atoi(part), &b->kept, code) == 0) {
        kg_counter_inc(x->m->dead);
        kg_warn("mirror %s: %s; written to the DLQ %s", x->m->doc_id, why, x->m->cfg->mirror_dlq);
        return 0;
    }
    if (x->m->cfg->mirror_dlq[0])
        snprintf(why + strlen(why), sizeof(why) - strlen(why), "; %s", x->err);
    set_stopped(x->m, topic, part, why);
    return -2;
}

/* Copies TOPIC[PART] from the stored position on. 0; -1 with x->err (the pass stops: the next
 * one retries); -2 when the partition stopped at a record the target refuses (the others go
 * on). A batch the target refuses for good is sent again one record at a time, so only the
 * refused record goes to the DLQ (or stops the partition). */
static int copy_partition(pass *x, const char *topic, const char *part, int32_t src_leader,
                          int32_t dst_leader)
{
    int32_t partition = atoi(part);
    json_t *stored = json_object_get(json_object_get(x->m->positions, topic), part);
    int64_t pos =
        stored ? json_integer_value(stored)
               : kg_kafka_list_offset(&x->src, src_leader, topic, partition, KG_KAFKA_EARLIEST);
    if (pos < 0) {
        snprintf(x->err, sizeof(x->err), "%s", x->src.err);
        return -1;
    }
    int rc = 0;
    int single = json_object_get(json_object_get(x->m->stopped, topic), part) != NULL;
    for (int i = 0, singles = 0;
         i < BATCHES_PER_PARTITION && singles < SINGLES_PER_PARTITION && rc == 0;
         single ? singles++ : i++) {
        batch_builder b = {.source = x->src.cluster->cfg->name,
                           .target = x->dst.cluster->cfg->name,
                           .records = x->records,
                           .single = single};
        kp_writer_reset(&b.records);
        kp_writer_init(&b.scratch, 256);
        kp_writer_init(&b.kept.data, 0);
        int64_t next = pos, hwm = -1;
        int16_t code = -1;
        rc = fill_batch(x, topic, partition, src_leader, &b, &next, &hwm);
        kp_writer batch = x->batch;
        kp_writer_reset(&batch);
        if (rc == 0 && b.count > 0) {
            batch_encode(&b, &batch);
            int64_t base = -1;
            rc = batch.err ? -1
                           : produce(&x->dst, dst_leader, topic, partition, &batch, &base, &code);
            if (rc == 0) { /* both ends of the batch: offsets inside it translate exactly */
                add_sync(x->m, topic, part, b.first_source, base);
                add_sync(x->m, topic, part, next, base + b.count);
            }
            if (rc < 0)
                snprintf(x->err, sizeof(x->err), "%s", batch.err ? "out of memory" : x->dst.err);
        }
        int redo = rc < 0 && refused_for_good(code) && !single; /* again, one by one */
        int dead = rc < 0 && refused_for_good(code) && single;
        if (dead) rc = refused(x, topic, part, &b, code);
        if (rc == 0 && single) set_stopped(x->m, topic, part, NULL);
        if (rc == 0 && next > pos) {
            x->copied += dead ? 0 : b.count;
            if (!dead) kg_counter_add(x->m->copied, (uint64_t)b.count);
            save_position(x->m, topic, part, pos = next);
        }
        if (rc == 0 || rc == -2 || redo) set_lag(x->m, topic, part, hwm - pos);
        x->batch = batch;
        x->records = b.records;
        kp_writer_free(&b.scratch);
        kp_writer_free(&b.kept.data);
        if (redo) { /* the refused batch again, a record at a time */
            single = 1;
            rc = 0;
            continue;
        }
        if (dead && rc == 0) single = 0;   /* past the refused record: batches again */
        if (rc == 0 && next >= hwm) break; /* caught up */
    }
    return rc;
}

/* MirrorMaker 2's checkpoints of GROUPS ({group: {topic: {"<partition>": ...}}}: the groups
 * kgate saw committing on the source) into "<ALIAS>.checkpoints.internal" on the target, so a
 * switch translates their offsets (kg_offsets) as it does with MM2's. Without that topic on the
 * target nothing is written (kgate creates no topic). */
static void write_checkpoints(pass *x, json_t *groups, const char *alias)
{
    char topic[KG_NAME_MAX + 32];
    snprintf(topic, sizeof(topic), "%s.checkpoints.internal", alias);
    const char *names[1] = {topic};
    kg_cluster_topics t = {1, names};
    json_t *leaders = json_object_size(groups) ? kg_kafka_leaders(&x->dst, &t) : NULL;
    json_t *leader = json_object_get(json_object_get(leaders, topic), "0");
    batch_builder b = {.source = x->src.cluster->cfg->name, .target = x->dst.cluster->cfg->name};
    kp_writer_init(&b.records, 1024);
    kp_writer_init(&b.scratch, 256);
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
    const char *group, *name, *part;
    json_t *parts, *tparts, *offset, *pending = json_object(); /* into written once acked */
    json_object_foreach(leader ? groups : NULL, group, parts)
    {
        int32_t coordinator = kg_offsets_coordinator(&x->src, group);
        json_t *committed =
            coordinator < 0 ? NULL : kg_offsets_committed(&x->src, coordinator, group, parts);
        json_object_foreach(committed, name, tparts)
        {
            json_object_foreach(tparts, part, offset)
            {
                int64_t up = json_integer_value(offset), down = translate(x->m, name, part, up);
                char seen_key[3 * KG_NAME_MAX + 300];
                snprintf(seen_key, sizeof(seen_key), "%s %s %s", group, name, part);
                json_t *was = json_object_get(x->m->written, seen_key);
                if (down < 0 || (was && json_integer_value(was) == up)) continue;
                json_object_set_new(pending, seen_key, json_integer((json_int_t)up));
                kg_offsets_checkpoint cp = {kp_str_c(group), kp_str_c(name), atoi(part), up, down,
                                            kp_str_c("")};
                kp_writer key, value;
                kp_writer_init(&key, 64);
                kp_writer_init(&value, 32);
                kg_offsets_checkpoint_encode(&cp, &key, &value);
                append_record(&b, now_ms, (kp_bytes){key.buf, (int32_t)key.len},
                              (kp_bytes){value.buf, (int32_t)value.len}, 0, KP_BYTES_NULL);
                kp_writer_free(&key);
                kp_writer_free(&value);
            }
        }
        json_decref(committed);
    }
    kp_writer batch;
    kp_writer_init(&batch, 1024);
    int64_t base;
    int16_t code;
    if (b.count > 0) batch_encode(&b, &batch);
    if (b.count > 0 && !batch.err &&
        produce(&x->dst, (int32_t)json_integer_value(leader), topic, 0, &batch, &base, &code) == 0)
        json_object_update(x->m->written, pending);
    else if (b.count > 0)
        kg_warn("mirror %s: checkpoints not written: %s", x->m->doc_id,
                batch.err ? "out of memory" : x->dst.err);
    kp_writer_free(&batch);
    kp_writer_free(&b.records);
    kp_writer_free(&b.scratch);
    json_decref(leaders);
    json_decref(pending);
}

/* The lag of TOPIC's partitions PARTS ({"<partition>": source leader}): the source's end offsets
 * against the stored positions (the log start where none is stored: the mirror starts there),
 * into the metrics and LAGS (NULL: none). The sum, or -1 with ERR (NULL: not said). */
static int64_t topic_lag(pass *x, const char *topic, json_t *parts, json_t *lags, char *err,
                         size_t errlen)
{
    size_t n = json_object_size(parts), i = 0;
    kg_kafka_offset_ask *end = calloc(n + 1, sizeof(*end)), *start = calloc(n + 1, sizeof(*start));
    const char **names = calloc(n + 1, sizeof(*names));
    int64_t total = end && start && names ? 0 : -1;
    json_t *positions = json_object_get(x->m->positions, topic);
    const char *part;
    json_t *leader;
    json_object_foreach(parts, part, leader)
    {
        if (total < 0) break;
        int32_t node = (int32_t)json_integer_value(leader), partition = atoi(part);
        json_t *stored = json_object_get(positions, part);
        names[i] = part;
        end[i] = (kg_kafka_offset_ask){topic, partition, node, -1};
        start[i++] = (kg_kafka_offset_ask){topic, partition, stored ? -1 : node,
                                           stored ? json_integer_value(stored) : -1};
    }
    if (total < 0) {
        if (err) snprintf(err, errlen, "out of memory");
    } else if (kg_kafka_list_offsets(&x->src, end, i, KG_KAFKA_LATEST) < 0 ||
               kg_kafka_list_offsets(&x->src, start, i, KG_KAFKA_EARLIEST) < 0) {
        if (err) snprintf(err, errlen, "%s", x->src.err);
        total = -1;
    }
    for (size_t j = 0; total >= 0 && j < i; j++) {
        int64_t lag = end[j].offset > start[j].offset ? end[j].offset - start[j].offset : 0;
        if (lags) json_object_set_new(lags, names[j], json_integer((json_int_t)lag));
        set_lag(x->m, topic, names[j], lag);
        total += lag;
    }
    free(end);
    free(start);
    free(names);
    return total;
}

/* The target cannot take records: the lag still shows what a failover now would lose (the
 * source's end offsets against the stored positions); a topic the source does not answer for
 * keeps its last figures. */
static void lag_only(pass *x, json_t *from, const char **names, int n)
{
    for (int i = 0; i < n; i++)
        topic_lag(x, names[i], json_object_get(from, names[i]), NULL, NULL, 0);
}

/* Topics kgate may copy: matching mirror.topics, and none of Kafka's or a replicator's own. */
static int wanted(kg_mirror *m, const char *topic)
{
    if (strcmp(topic, m->cfg->mirror_dlq) == 0) return 0; /* the DLQ stays where it is */
    if (kg_kafka_internal_topic(topic)) return 0;
    return regexec(&m->topics, topic, 0, NULL, 0) == 0;
}

/* Is TOPIC among ONLY (NULL or ->n < 0: every topic)? */
static int listed(const kg_cluster_topics *only, const char *topic)
{
    if (!only || only->n < 0) return 1;
    for (int i = 0; i < only->n; i++)
        if (strcmp(only->names[i], topic) == 0) return 1;
    return 0;
}

/* Takes M's lock, waiting until DEADLINE (kg_now_us) at most. 0, or -1 when busy. */
static int lock_until(kg_mirror *m, uint64_t deadline)
{
    uint64_t now = kg_now_us();
    uint64_t wait_us = deadline > now ? deadline - now : 0;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_us / 1000000u);
    until.tv_nsec += (long)(wait_us % 1000000u) * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc;
    while ((rc = pthread_mutex_timedlock(&m->lock, &until)) == EINTR) {
    }
    return rc == 0 ? 0 : -1;
}

/* A pass (or a look at the lag) from SOURCE to TARGET that gives every call to either cluster
 * the same deadline, TIMEOUT_MS from now: 0 with the mirror locked, -1 when another pass held
 * it past that deadline. */
static int pass_begin(pass *x, kg_mirror *m, kg_cluster *source, kg_cluster *target, int timeout_ms)
{
    uint64_t deadline = kg_now_us() + (uint64_t)timeout_ms * 1000u;
    *x = (pass){.m = m,
                .src = {.cluster = source, .deadline_us = deadline},
                .dst = {.cluster = target, .deadline_us = deadline},
                .dlq_leader = -1};
    if (lock_until(m, deadline) < 0) return -1;
    /* A pass sends a Fetch and a Produce a batch: over connections kept for the pass (a
     * missing session only costs a connection a request). */
    x->src.session = kg_cluster_session_new();
    x->dst.session = kg_cluster_session_new();
    return 0;
}

static void pass_end(pass *x)
{
    kp_writer_free(&x->records);
    kp_writer_free(&x->batch);
    kg_cluster_session_free(x->src.session);
    kg_cluster_session_free(x->dst.session);
    pthread_mutex_unlock(&x->m->lock);
}

static int pass_locked(pass *x, const kg_cluster_topics *only, json_t *groups, const char *alias)
{
    kg_mirror *m = x->m;
    kg_cluster *source = x->src.cluster, *target = x->dst.cluster;
    if (!atomic_load(&m->owner)) {
        snprintf(x->err, sizeof(x->err), "another instance of the fleet runs the mirror");
        return -1;
    }
    if (load_positions(m, source->cfg->name, target->cfg->name) < 0) {
        snprintf(x->err, sizeof(x->err), "the state store cannot give the mirror's positions");
        kg_counter_inc(m->errors);
        kg_warn("mirror of vcluster %s: %s: nothing copied", m->cfg->name, x->err);
        return -1;
    }
    kg_cluster_topics all = {-1, NULL};
    json_t *from = kg_kafka_leaders(&x->src, &all), *to = NULL;
    const char *err = from ? NULL : x->src.err;
    const char **names = from ? calloc(json_object_size(from) + 1, sizeof(*names)) : NULL;
    const char *topic;
    json_t *parts;
    int n = 0;
    json_object_foreach(from, topic, parts) if (names && wanted(m, topic) && listed(only, topic))
        names[n++] = topic;
    kg_cluster_topics some = {n, names};
    if (n > 0 && !atomic_load(&target->up)) {
        snprintf(x->err, sizeof(x->err), "%s is down", target->cfg->name);
        err = x->err;
    } else if (n > 0 && !(to = kg_kafka_leaders(&x->dst, &some))) {
        err = x->dst.err;
    }
    if (!to && n > 0) lag_only(x, from, names, n);
    for (int i = 0; to && i < n && !err; i++) {
        json_t *there = json_object_get(to, names[i]);
        const char *part;
        json_t *leader;
        json_object_foreach(json_object_get(from, names[i]), part, leader)
        {
            json_t *dst_leader = there ? json_object_get(there, part) : NULL;
            if (!dst_leader) {
                kg_warn("mirror %s: %s[%s] does not exist on %s: not copied", m->doc_id, names[i],
                        part, target->cfg->name);
                continue;
            }
            /* -2: that partition stopped (logged, in "stopped"); the others go on */
            if (copy_partition(x, names[i], part, (int32_t)json_integer_value(leader),
                               (int32_t)json_integer_value(dst_leader)) == -1) {
                err = x->err;
                break;
            }
        }
    }
    if (!err && groups) write_checkpoints(x, groups, alias);
    snprintf(m->last_error, sizeof(m->last_error), "%s", err ? err : "");
    if (err) {
        if (err != x->err) snprintf(x->err, sizeof(x->err), "%s", err);
        kg_counter_inc(m->errors);
        kg_warn("mirror %s -> %s of vcluster %s: %s", source->cfg->name, target->cfg->name,
                m->cfg->name, x->err);
    }
    if (x->copied > 0)
        kg_debug("mirror %s: %d record(s) copied from %s to %s", m->doc_id, x->copied,
                 source->cfg->name, target->cfg->name);
    free(names);
    json_decref(from);
    json_decref(to);
    return err ? -1 : x->copied;
}

int kg_mirror_pass_topics(kg_mirror *m, kg_cluster *source, kg_cluster *target,
                          const kg_cluster_topics *only, int timeout_ms, json_t *groups,
                          const char *alias)
{
    pass x;
    if (pass_begin(&x, m, source, target, timeout_ms) < 0) {
        kg_counter_inc(m->errors);
        kg_warn("mirror of vcluster %s: busy (another pass did not end within %d ms)", m->cfg->name,
                timeout_ms);
        return -1;
    }
    int rc = pass_locked(&x, only, groups, alias);
    pass_end(&x);
    return rc;
}

int kg_mirror_pass(kg_mirror *m, kg_cluster *source, kg_cluster *target, int timeout_ms,
                   json_t *groups, const char *alias)
{
    return kg_mirror_pass_topics(m, source, target, NULL, timeout_ms, groups, alias);
}

/* ---------------------------------------------------------------- lag now */

/* Lag of TOPIC's partitions PARTS ({"<partition>": source leader}) into OUT; the sum. -1 with
 * X->err when the source does not answer. */
static int64_t lag_of_topic(pass *x, const char *topic, json_t *parts, json_t *out)
{
    json_t *lags = json_object();
    json_object_set_new(out, topic, lags);
    return topic_lag(x, topic, parts, lags, x->err, sizeof(x->err));
}

/* Why the mirror does not copy TOPIC (FROM/TO: the leaders on each side), or NULL. */
static const char *not_mirrored(kg_mirror *m, const char *topic, json_t *from, json_t *to)
{
    if (!wanted(m, topic))
        return "not copied: outside mirror.topics, or Kafka's or a "
               "replicator's own topic";
    if (!json_object_get(from, topic)) return "absent on the source";
    if (!json_object_get(to, topic)) return "absent on the target: not copied";
    return NULL;
}

static json_t *lag_locked(pass *x, const kg_cluster_topics *topics)
{
    kg_cluster_topics all = {-1, NULL};
    json_t *from = kg_kafka_leaders(&x->src, &all);
    if (!from) {
        snprintf(x->err, sizeof(x->err), "%s", x->src.err);
        return NULL;
    }
    /* The topics asked for, or every mirrored topic of the source. */
    size_t cap = (topics && topics->n >= 0 ? (size_t)topics->n : json_object_size(from)) + 1;
    const char **names = calloc(cap, sizeof(*names));
    int n = 0;
    const char *topic;
    json_t *parts;
    if (names && topics && topics->n >= 0)
        for (int i = 0; i < topics->n; i++)
            names[n++] = topics->names[i];
    else if (names)
        json_object_foreach(from, topic, parts) if (wanted(x->m, topic)) names[n++] = topic;
    kg_cluster_topics some = {n, names};
    json_t *to = names ? kg_kafka_leaders(&x->dst, &some) : NULL;
    json_t *out = NULL;
    if (!to) {
        snprintf(x->err, sizeof(x->err), "%s", names ? x->dst.err : "out of memory");
    } else {
        json_t *lags = json_object(), *skipped = json_object();
        out = json_pack("{s:s, s:s, s:o, s:o, s:o}", "source", x->src.cluster->cfg->name, "target",
                        x->dst.cluster->cfg->name, "partitions", lags, "not_mirrored", skipped,
                        "stopped", json_deep_copy(x->m->stopped));
        int64_t total = 0;
        for (int i = 0; out && i < n; i++) {
            const char *why = not_mirrored(x->m, names[i], from, to);
            int64_t t = why ? 0 : lag_of_topic(x, names[i], json_object_get(from, names[i]), lags);
            if (why) json_object_set_new(skipped, names[i], json_string(why));
            if (t < 0) {
                json_decref(out);
                out = NULL;
            }
            total += t;
        }
        if (out) json_object_set_new(out, "total", json_integer((json_int_t)total));
        if (out)
            json_object_set_new(out, "last_error",
                                x->m->last_error[0] ? json_string(x->m->last_error) : json_null());
    }
    free(names);
    json_decref(from);
    json_decref(to);
    return out;
}

json_t *kg_mirror_lag(kg_mirror *m, kg_cluster *source, kg_cluster *target,
                      const kg_cluster_topics *topics, int timeout_ms, char *err, size_t errlen)
{
    pass x;
    if (pass_begin(&x, m, source, target, timeout_ms) < 0) {
        snprintf(err, errlen, "busy: a mirror pass did not end within %d ms", timeout_ms);
        return NULL;
    }
    json_t *out = NULL;
    if (load_positions(m, source->cfg->name, target->cfg->name) < 0)
        snprintf(x.err, sizeof(x.err), "the state store cannot give the mirror's positions");
    else
        out = lag_locked(&x, topics);
    pass_end(&x);
    if (!out) snprintf(err, errlen, "%s", x.err);
    return out;
}
