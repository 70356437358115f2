#include "route/kg_offsync.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_loop.h"
#include "route/kg_kafka.h"
#include "route/kg_offsets.h"

#define FETCH_BYTES (1 << 20)

struct kg_offsync {
    kg_counter *skipped; /* kgate_offsync_records_skipped_total */
};

kg_offsync *kg_offsync_new(kg_metrics *metrics, const char *vcluster)
{
    kg_offsync *o = calloc(1, sizeof(*o));
    if (!o) return NULL;
    char labels[256];
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vcluster, NULL);
    o->skipped = kg_metrics_counter(
        metrics, "kgate_offsync_records_skipped_total",
        "Records of a MirrorMaker 2 offset-syncs topic that are no offset sync (corrupt or "
        "foreign), skipped by a planned switchover",
        labels);
    return o;
}

void kg_offsync_free(kg_offsync *o)
{
    free(o);
}

/* ---------------------------------------------------------------- the record format */

int kg_offsync_decode(kp_bytes key, kp_bytes value, kg_offsync_rec *out)
{
    if (key.len <= 0 || value.len <= 0) return -1;
    kp_reader k, v;
    kp_reader_init(&k, key.ptr, (size_t)key.len);
    kp_reader_init(&v, value.ptr, (size_t)value.len);
    if (kg_offsets_read_mapping(&k, &v, &out->topic, &out->partition, &out->upstream,
                                &out->downstream) < 0)
        return -1;
    return kp_reader_remaining(&k) || kp_reader_remaining(&v) ? -1 : 0; /* exactly one */
}

void kg_offsync_encode(const kg_offsync_rec *s, kp_writer *key, kp_writer *value)
{
    kp_write_string(key, s->topic);
    kp_write_i32(key, s->partition);
    kp_write_i64(value, s->upstream);
    kp_write_i64(value, s->downstream);
}

/* ---------------------------------------------------------------- a watch */

struct kg_offsync_watch {
    kg_offsync *o;
    kg_cluster *source, *target, *syncs_at;
    char syncs_topic[KG_NAME_MAX + 32];
    json_t *topics; /* names (array) */
    regex_t re;
    int has_re;
    json_t *positions; /* {"<partition of the syncs topic>": next offset to read} */
    json_t *syncs;     /* {topic: {"<partition>": [upstream, downstream]}}: the latest */
    json_int_t n_syncs, skipped;
    kg_kafka k; /* the current call's */
    /* connections kept between the measurements of one switch (a fresh connection, with its
     * ApiVersions and login, per request would cost more than the requests; NULL: fresh) */
    kg_cluster_session *src_session, *dst_session;
};

/* W's client, on cluster C (the source or the target). */
static kg_kafka *on(kg_offsync_watch *w, kg_cluster *c)
{
    w->k.cluster = c;
    w->k.session = c == w->target ? w->dst_session : w->src_session;
    return &w->k;
}

/* Another client on the target, with W's deadline. */
static kg_kafka on_target(const kg_offsync_watch *w)
{
    return (kg_kafka){
        .cluster = w->target, .deadline_us = w->k.deadline_us, .session = w->dst_session};
}

kg_offsync_watch *kg_offsync_watch_new(kg_offsync *o, const kg_offsync_spec *spec)
{
    kg_offsync_watch *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->o = o;
    w->source = spec->source;
    w->target = spec->target;
    w->syncs_at = spec->syncs_on_target ? spec->target : spec->source;
    snprintf(w->syncs_topic, sizeof(w->syncs_topic), "mm2-offset-syncs.%s.internal",
             spec->target_alias);
    w->topics = spec->topics ? json_incref(spec->topics) : json_array();
    w->positions = json_object();
    w->syncs = json_object();
    w->src_session = kg_cluster_session_new();
    w->dst_session = kg_cluster_session_new();
    if (spec->topics_regex && *spec->topics_regex) {
        if (regcomp(&w->re, spec->topics_regex, REG_EXTENDED | REG_NOSUB) != 0) {
            kg_offsync_watch_free(w);
            return NULL;
        }
        w->has_re = 1;
    }
    if (!w->topics || !w->positions || !w->syncs) {
        kg_offsync_watch_free(w);
        return NULL;
    }
    return w;
}

void kg_offsync_watch_free(kg_offsync_watch *w)
{
    if (!w) return;
    json_decref(w->topics);
    json_decref(w->positions);
    json_decref(w->syncs);
    if (w->has_re) regfree(&w->re);
    kg_cluster_session_free(w->src_session);
    kg_cluster_session_free(w->dst_session);
    free(w);
}

static json_t *child(json_t *parent, const char *key, size_t len)
{
    json_t *c = json_object_getn(parent, key, len);
    if (!c && (c = json_object()) && json_object_setn_new(parent, key, len, c) < 0) c = NULL;
    return c;
}

/* The log's order is MM2's: a later sync of a partition replaces an earlier one. */
static bool visit_sync(void *ctx, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    kg_offsync_watch *w = ctx;
    kg_offsync_rec s;
    if (kg_offsync_decode(rec->key, rec->value, &s) < 0) {
        w->skipped++;
        kg_counter_inc(w->o->skipped);
        return false;
    }
    json_t *t = child(w->syncs, s.topic.ptr, (size_t)s.topic.len);
    char key[16];
    snprintf(key, sizeof(key), "%d", s.partition);
    if (t && !json_object_get(t, key)) w->n_syncs++;
    if (t)
        json_object_set_new(t, key,
                            json_pack("[I, I]", (json_int_t)s.upstream, (json_int_t)s.downstream));
    return false;
}

/* Reads the syncs written since the last call. 0, or -1 with ERR. */
static int read_syncs(kg_offsync_watch *w, char *err, size_t errlen)
{
    on(w, w->syncs_at);
    const char *names[1] = {w->syncs_topic};
    kg_cluster_topics t = {1, names};
    json_t *leaders = kg_kafka_leaders(&w->k, &t);
    json_t *parts = leaders ? json_object_get(leaders, w->syncs_topic) : NULL;
    int rc = -1;
    if (!leaders)
        snprintf(err, errlen, "cannot read MirrorMaker 2's offset syncs: %s", w->k.err);
    else if (!parts)
        snprintf(err, errlen,
                 "MirrorMaker 2's offset-syncs topic '%s' does not exist on '%s': MM2 does not "
                 "replicate '%s' to '%s', or replication.offset_syncs / offsets.aliases do not "
                 "match its configuration",
                 w->syncs_topic, w->syncs_at->cfg->name, w->source->cfg->name,
                 w->target->cfg->name);
    else
        rc = 0;
    const char *key;
    json_t *leader;
    json_object_foreach(parts, key, leader)
    {
        if (rc < 0) break;
        int32_t node = (int32_t)json_integer_value(leader);
        int64_t start =
            kg_kafka_list_offset(&w->k, node, w->syncs_topic, atoi(key), KG_KAFKA_EARLIEST);
        int64_t end = start < 0 ? -1
                                : kg_kafka_list_offset(&w->k, node, w->syncs_topic, atoi(key),
                                                       KG_KAFKA_LATEST);
        json_t *known = json_object_get(w->positions, key);
        /* Compaction may have removed what lies before the log start: the syncs after it
         * supersede those records. */
        int64_t at = known && json_integer_value(known) > start ? json_integer_value(known) : start;
        if (at > end) at = start; /* the topic was made again: read it anew */
        if (start < 0 || end < 0 ||
            kg_kafka_read(&w->k, node, w->syncs_topic, atoi(key), &at, end, FETCH_BYTES, visit_sync,
                          w) < 0) {
            snprintf(err, errlen, "cannot read MirrorMaker 2's offset syncs: %s", w->k.err);
            rc = -1;
        }
        json_object_set_new(w->positions, key, json_integer(at));
    }
    json_decref(leaders);
    return rc;
}

/* The topics to measure ({topic: true}) and the source's leaders of them; NULL with ERR. */
static json_t *wanted_topics(kg_offsync_watch *w, json_t **source_leaders, char *err, size_t errlen)
{
    json_t *wanted = json_object();
    size_t i;
    json_t *name;
    json_array_foreach(w->topics, i, name)
    {
        const char *s = json_string_value(name);
        if (s && !kg_kafka_internal_topic(s)) json_object_set_new(wanted, s, json_true());
    }
    on(w, w->source);
    json_t *leaders = NULL;
    if (w->has_re) {
        kg_cluster_topics all = {-1, NULL};
        leaders = kg_kafka_leaders(&w->k, &all);
        const char *topic;
        json_t *parts;
        json_object_foreach(leaders, topic, parts) if (!kg_kafka_internal_topic(topic) &&
                                                       regexec(&w->re, topic, 0, NULL, 0) == 0)
            json_object_set_new(wanted, topic, json_true());
    } else if (json_object_size(wanted) > 0) {
        const char **names = calloc(json_object_size(wanted) + 1, sizeof(*names));
        int n = 0;
        const char *topic;
        json_t *unused;
        json_object_foreach(wanted, topic, unused) if (names) names[n++] = topic;
        kg_cluster_topics t = {n, names};
        leaders = names ? kg_kafka_leaders(&w->k, &t) : NULL;
        free(names);
    } else {
        leaders = json_object(); /* nothing used: nothing to wait for */
    }
    if (!leaders) {
        snprintf(err, errlen, "cannot read the topics of '%s': %s", w->source->cfg->name, w->k.err);
        json_decref(wanted);
        return NULL;
    }
    *source_leaders = leaders;
    return wanted;
}

static void not_replicated(json_t *report, const char *topic, const char *why)
{
    json_object_set_new(json_object_get(report, "not_replicated"), topic, json_string(why));
}

/* The partitions of one measurement, with what it asks each side: the source's end offset, its
 * log start (no sync: none of its records is known to be copied) or the target's end offset
 * (a sync). Built topic by topic. */
typedef struct measurement {
    size_t n;
    const char **part; /* "<partition>" */
    json_t **sync;     /* [upstream, downstream], or NULL */
    kg_kafka_offset_ask *src_end, *src_start, *dst_end;
} measurement;

static void measurement_free(measurement *x)
{
    free(x->part);
    free(x->sync);
    free(x->src_end);
    free(x->src_start);
    free(x->dst_end);
}

static int measurement_alloc(measurement *x, size_t cap)
{
    x->part = calloc(cap + 1, sizeof(*x->part));
    x->sync = calloc(cap + 1, sizeof(*x->sync));
    x->src_end = calloc(cap + 1, sizeof(*x->src_end));
    x->src_start = calloc(cap + 1, sizeof(*x->src_start));
    x->dst_end = calloc(cap + 1, sizeof(*x->dst_end));
    return x->part && x->sync && x->src_end && x->src_start && x->dst_end ? 0 : -1;
}

/* Adds TOPIC's partitions (SRC_PARTS: leaders on the source, DST_PARTS on the target) to X;
 * a partition missing on the target goes into REPORT's not_replicated. */
static void measurement_add(kg_offsync_watch *w, measurement *x, const char *topic,
                            json_t *src_parts, json_t *dst_parts, json_t *report)
{
    json_t *syncs = json_object_get(w->syncs, topic);
    const char *part;
    json_t *leader;
    json_object_foreach(src_parts, part, leader)
    {
        json_t *dst_leader = json_object_get(dst_parts, part);
        if (!dst_leader) {
            char why[KG_NAME_MAX + 64];
            snprintf(why, sizeof(why), "partition %s is not on '%s'", part, w->target->cfg->name);
            not_replicated(report, topic, why);
            continue;
        }
        json_t *sync = json_object_get(syncs, part);
        int32_t p = atoi(part), src = (int32_t)json_integer_value(leader);
        x->part[x->n] = part;
        x->sync[x->n] = sync;
        x->src_end[x->n] = (kg_kafka_offset_ask){topic, p, src, -1};
        x->src_start[x->n] = (kg_kafka_offset_ask){topic, p, sync ? -1 : src, 0};
        x->dst_end[x->n] =
            (kg_kafka_offset_ask){topic, p, sync ? (int32_t)json_integer_value(dst_leader) : -1, 0};
        x->n++;
    }
}

/* The offsets X needs, a ListOffsets per broker and side: 0, or -1 with ERR. */
static int measurement_ask(kg_offsync_watch *w, measurement *x, char *err, size_t errlen)
{
    kg_kafka *src = on(w, w->source);
    kg_kafka dst = on_target(w);
    kg_kafka *failed = NULL;
    if (kg_kafka_list_offsets(src, x->src_end, x->n, KG_KAFKA_LATEST) < 0 ||
        kg_kafka_list_offsets(src, x->src_start, x->n, KG_KAFKA_EARLIEST) < 0)
        failed = src;
    else if (kg_kafka_list_offsets(&dst, x->dst_end, x->n, KG_KAFKA_LATEST) < 0)
        failed = &dst;
    if (failed)
        snprintf(err, errlen, "cannot read the end offsets of '%s': %s", failed->cluster->cfg->name,
                 failed->err);
    return failed ? -1 : 0;
}

/* Partition I's lag: with its latest sync (u, d), (Es - u) - (Et - d); without, its records. */
static int64_t measured_lag(const measurement *x, size_t i)
{
    int64_t es = x->src_end[i].offset;
    if (!x->sync[i]) return es - x->src_start[i].offset;
    int64_t u = json_integer_value(json_array_get(x->sync[i], 0));
    int64_t d = json_integer_value(json_array_get(x->sync[i], 1));
    int64_t lag = (es - u) - (x->dst_end[i].offset - d);
    return lag > 0 ? lag : 0;
}

/* The lags of X into REPORT, topic by topic. */
static void measurement_report(kg_offsync_watch *w, const measurement *x, json_t *report)
{
    json_int_t total = 0;
    for (size_t i = 0; i < x->n;) {
        const char *topic = x->src_end[i].topic;
        json_t *lags = child(json_object_get(report, "partitions"), topic, strlen(topic));
        json_int_t of_topic = 0;
        for (; i < x->n && x->src_end[i].topic == topic; i++) {
            int64_t lag = measured_lag(x, i);
            of_topic += lag;
            if (lags) json_object_set_new(lags, x->part[i], json_integer(lag));
        }
        if (!json_object_get(w->syncs, topic) && of_topic > 0) { /* its records, none synced */
            char why[KG_NAME_MAX * 2 + 160];
            snprintf(why, sizeof(why),
                     "no offset sync for any of its partitions in '%s' on '%s': MirrorMaker 2 "
                     "does not replicate it (yet)",
                     w->syncs_topic, w->syncs_at->cfg->name);
            not_replicated(report, topic, why);
        }
        total += of_topic;
    }
    json_object_set_new(report, "total", json_integer(total));
}

json_t *kg_offsync_lag(kg_offsync_watch *w, int timeout_ms, char *err, size_t errlen)
{
    w->k = (kg_kafka){.deadline_us = kg_now_us() + (uint64_t)timeout_ms * 1000u};
    if (read_syncs(w, err, errlen) < 0) return NULL;
    json_t *src = NULL;
    json_t *wanted = wanted_topics(w, &src, err, errlen);
    if (!wanted) return NULL;
    const char **names = calloc(json_object_size(wanted) + 1, sizeof(*names));
    int n = 0;
    const char *topic;
    json_t *unused;
    json_object_foreach(wanted, topic, unused) if (names) names[n++] = topic;
    kg_kafka dst = on_target(w);
    kg_cluster_topics t = {n, names};
    json_t *dst_leaders = !names ? NULL : n > 0 ? kg_kafka_leaders(&dst, &t) : json_object();
    free(names);
    json_t *report =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:{}, s:{}}", "replication", "mirrormaker2",
                  "offset_syncs_topic", w->syncs_topic, "offset_syncs_on", w->syncs_at->cfg->name,
                  "syncs", w->n_syncs, "records_skipped", w->skipped, "total", (json_int_t)0,
                  "partitions", "not_replicated");
    int rc = dst_leaders && report ? 0 : -1;
    if (!dst_leaders)
        snprintf(err, errlen, "cannot read the topics of '%s': %s", w->target->cfg->name, dst.err);
    size_t cap = 0;
    json_object_foreach(wanted, topic, unused) cap += json_object_size(json_object_get(src, topic));
    measurement x = {0};
    if (rc == 0 && measurement_alloc(&x, cap) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    json_object_foreach(wanted, topic, unused)
    {
        json_t *src_parts = json_object_get(src, topic);
        if (rc < 0 || !src_parts) continue; /* gone from the source: nothing to copy */
        json_t *dst_parts = json_object_get(dst_leaders, topic);
        if (!dst_parts) {
            char why[KG_NAME_MAX + 32];
            snprintf(why, sizeof(why), "the topic is not on '%s'", w->target->cfg->name);
            not_replicated(report, topic, why);
            continue;
        }
        measurement_add(w, &x, topic, src_parts, dst_parts, report);
    }
    if (rc == 0) rc = measurement_ask(w, &x, err, errlen);
    if (rc == 0) measurement_report(w, &x, report);
    measurement_free(&x);
    json_decref(wanted);
    json_decref(src);
    json_decref(dst_leaders);
    if (rc < 0) {
        json_decref(report);
        return NULL;
    }
    return report;
}
