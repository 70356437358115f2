/* The drill engine: clients, switches, verification, measures. kg_drill.h says what is measured;
 * this file says how.
 *
 * Every record carries "kgdrill RUN PRODUCER SEQ SENT_US" so that any reader can tell which
 * drill, which producer and which position it is, and when it was sent. Each producer keeps one
 * slot per record it sent (sent, acknowledged, seen by the group, found at verification); the
 * slots are preallocated, so a drill's memory is known before it starts. */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/kg_loop.h"
#include "drill/kg_drill.h"

#define MAX_RECORDS_TOTAL (4L * 1000 * 1000) /* slots over all producers: ~100 MB */
#define VERIFY_TIMEOUT_MS 30000
#define CATCH_UP_LIMIT_MS 15000

typedef struct drill_slot {
    uint64_t sent_us, acked_us;
    uint16_t seen; /* times the group received it */
    uint8_t failed, found;
} drill_slot;

struct drill;

typedef struct drill_producer {
    struct drill *d;
    int idx;
    drill_slot *slots;
    long cap;
    atomic_long sent;
    long acked, failed; /* under d->mu */
    json_t *errors;     /* {"error name": count}, under d->mu */
    int full;           /* ran out of slots */
} drill_producer;

typedef struct drill_consumer {
    struct drill *d;
    int idx;
    long received, errors; /* under d->mu */
    json_t *error_names;
    atomic_uint_fast64_t first_after[KG_DRILL_MAX_STEPS]; /* first record sent after step k */
    atomic_uint_fast64_t first_us;                        /* first record at all */
} drill_consumer;

typedef struct drill {
    const kg_drill_spec *spec;
    char run[20], group[160];
    uint64_t start_us;
    pthread_mutex_t mu;
    atomic_int stop_producers, stop_consumers;
    uint64_t call_us[KG_DRILL_MAX_STEPS], returned_us[KG_DRILL_MAX_STEPS];
    /* Where step k's RTO counts from: the switch call, or the end of a chaos fault. Steps below
     * steps_armed have theirs set (consumers read it as records arrive). */
    uint64_t origin_us[KG_DRILL_MAX_STEPS];
    atomic_int steps_armed;
    int n_run;                  /* steps made (none when the workload never got through) */
    long duplicates, reordered; /* under mu */
    long found_unseen; /* under mu: records on the active side the group has not received */
    long max_seq[KG_DRILL_MAX_PRODUCERS];
    drill_producer prod[KG_DRILL_MAX_PRODUCERS];
    drill_consumer cons[KG_DRILL_MAX_CONSUMERS];
    FILE *progress;
} drill;

static double rel_ms(const drill *d, uint64_t us)
{
    return (double)(us - d->start_us) / 1000.0;
}

static void say(drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line of progress, "    1234 ms  what happened". */
static void say(drill *d, const char *fmt, ...)
{
    if (!d->progress) return;
    fprintf(d->progress, "%8.0f ms  ", rel_ms(d, kg_now_us()));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->progress, fmt, ap);
    va_end(ap);
    fputc('\n', d->progress);
    fflush(d->progress);
}

static const char *text_or(const json_t *v, const char *fallback)
{
    return json_is_string(v) ? json_string_value(v) : fallback;
}

static void count_name(json_t *counts, const char *name)
{
    json_object_set_new(counts, name,
                        json_integer(json_integer_value(json_object_get(counts, name)) + 1));
}

static void sleep_until(drill *d, uint64_t until_us)
{
    for (uint64_t now = kg_now_us(); now < until_us; now = kg_now_us())
        usleep((useconds_t)(until_us - now > 20000 ? 20000 : until_us - now));
}

/* ---------------------------------------------------------------- clients */

static void set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        fprintf(stderr, "drill: %s: %s\n", key, err);
}

static rd_kafka_conf_t *client_conf(const drill *d, const char *client_id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", d->spec->bootstrap);
    set(conf, "client.id", client_id);
    set(conf, "reconnect.backoff.ms", "20");
    set(conf, "reconnect.backoff.max.ms", "500");
    set(conf, "log_level", "0");
    return conf;
}

static void apply_props(rd_kafka_conf_t *conf, const kg_drill_props *props)
{
    for (int i = 0; i < props->n; i++)
        set(conf, props->items[i].key, props->items[i].value);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    drill_producer *p = opaque;
    long seq = (long)(intptr_t)m->_private;
    pthread_mutex_lock(&p->d->mu);
    if (m->err) {
        p->slots[seq].failed = 1;
        p->failed++;
        count_name(p->errors, rd_kafka_err2name(m->err));
    } else {
        p->slots[seq].acked_us = kg_now_us();
        p->acked++;
    }
    pthread_mutex_unlock(&p->d->mu);
}

static int produce_one(drill_producer *p, rd_kafka_t *rk, char *key)
{
    long seq = atomic_load(&p->sent);
    if (seq >= p->cap) {
        p->full = 1;
        return -1;
    }
    uint64_t now = kg_now_us();
    char value[128];
    int len = snprintf(value, sizeof(value), "kgdrill %s %d %ld %llu", p->d->run, p->idx, seq,
                       (unsigned long long)now);
    p->slots[seq].sent_us = now;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(p->d->spec->topic), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE(value, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE((void *)(intptr_t)seq), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return -1; /* queue full: try again on the next tick */
    atomic_store(&p->sent, seq + 1);
    return 0;
}

static void *producer_main(void *arg)
{
    drill_producer *p = arg;
    char id[64], err[256], key[16];
    snprintf(id, sizeof(id), "kgate-drill-producer-%d", p->idx + 1);
    snprintf(key, sizeof(key), "p%d", p->idx);
    rd_kafka_conf_t *conf = client_conf(p->d, id);
    set(conf, "linger.ms", "5");
    set(conf, "message.timeout.ms", "60000");
    apply_props(conf, &p->d->spec->producer_config);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "drill: producer: %s\n", err);
        return NULL;
    }
    uint64_t interval = 1000000 / (uint64_t)p->d->spec->rate, next = kg_now_us();
    while (!atomic_load(&p->d->stop_producers)) {
        if (kg_now_us() >= next && produce_one(p, rk, key) == 0) next += interval;
        rd_kafka_poll(rk, 1);
    }
    rd_kafka_flush(rk, 10000);
    /* What is still queued 10 s after the end failed: the drill says so rather than waiting. */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 100);
    rd_kafka_destroy(rk);
    return NULL;
}

/* "kgdrill RUN P SEQ SENT": the slot it names, or NULL for another drill's or a foreign record. */
static drill_slot *slot_of(drill *d, const rd_kafka_message_t *m, int *producer, long *seq)
{
    char text[128], run[24];
    if (!m->payload || m->len >= sizeof(text)) return NULL;
    memcpy(text, m->payload, m->len);
    text[m->len] = '\0';
    unsigned long long sent;
    if (sscanf(text, "kgdrill %23s %d %ld %llu", run, producer, seq, &sent) != 4 ||
        strcmp(run, d->run) != 0 || *producer < 0 || *producer >= d->spec->producers || *seq < 0 ||
        *seq >= d->prod[*producer].cap)
        return NULL;
    return &d->prod[*producer].slots[*seq];
}

static void note_received(drill_consumer *c, const rd_kafka_message_t *m)
{
    drill *d = c->d;
    int p;
    long seq;
    drill_slot *s = slot_of(d, m, &p, &seq);
    if (!s) return;
    uint64_t now = kg_now_us(), zero = 0;
    pthread_mutex_lock(&d->mu);
    c->received++;
    if (s->seen++ > 0)
        d->duplicates++;
    else if (s->found)
        d->found_unseen--;
    else if (seq < d->max_seq[p])
        d->reordered++;
    if (seq > d->max_seq[p]) d->max_seq[p] = seq;
    uint64_t sent = s->sent_us;
    pthread_mutex_unlock(&d->mu);
    atomic_compare_exchange_strong(&c->first_us, &zero, now);
    int armed = atomic_load(&d->steps_armed);
    for (int k = 0; k < armed; k++) {
        zero = 0;
        if (sent >= d->origin_us[k]) atomic_compare_exchange_strong(&c->first_after[k], &zero, now);
    }
}

static void *consumer_main(void *arg)
{
    drill_consumer *c = arg;
    char id[64], err[256];
    snprintf(id, sizeof(id), "kgate-drill-consumer-%d", c->idx + 1);
    rd_kafka_conf_t *conf = client_conf(c->d, id);
    set(conf, "group.id", c->d->group);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "session.timeout.ms", "6000");
    set(conf, "heartbeat.interval.ms", "500");
    set(conf, "auto.commit.interval.ms", "1000");
    apply_props(conf, &c->d->spec->consumer_config);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "drill: consumer: %s\n", err);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->d->spec->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    while (!atomic_load(&c->d->stop_consumers)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) continue;
        if (!m->err) {
            note_received(c, m);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            pthread_mutex_lock(&c->d->mu);
            c->errors++;
            count_name(c->error_names, rd_kafka_err2name(m->err));
            pthread_mutex_unlock(&c->d->mu);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

/* ---------------------------------------------------------------- verification */

/* Reads the whole topic on the side now active (through kgate, no group) and marks every
 * record of this drill found. Returns the records found, or -1 with ERR. */
static long verify(drill *d, char *err, size_t errlen)
{
    char errstr[256];
    rd_kafka_conf_t *conf = client_conf(d, "kgate-drill-verifier");
    set(conf, "group.id", "kgate-drill-verifier");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "true");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        snprintf(err, errlen, "verifier: %s", errstr);
        return -1;
    }
    long found = -1;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, d->spec->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(err, errlen, "verifier: no metadata for topic %s: %s", d->spec->topic,
                 rd_kafka_err2str(e               ? e
                                  : md->topic_cnt ? md->topics[0].err
                                                  : e));
        goto out;
    }
    int parts = md->topics[0].partition_cnt, open = 0;
    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++) {
        int64_t lo = 0, hi = 0;
        int32_t id = md->topics[0].partitions[i].id;
        if (rd_kafka_query_watermark_offsets(rk, d->spec->topic, id, &lo, &hi, 10000) || hi <= lo)
            continue;
        rd_kafka_topic_partition_list_add(assign, d->spec->topic, id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
        open++;
    }
    rd_kafka_assign(rk, assign);
    rd_kafka_topic_partition_list_destroy(assign);
    found = 0;
    uint64_t deadline = kg_now_us() + VERIFY_TIMEOUT_MS * 1000ULL;
    while (open > 0 && kg_now_us() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int p;
        long seq;
        drill_slot *s;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            open--;
        else if (!m->err && (s = slot_of(d, m, &p, &seq))) {
            pthread_mutex_lock(&d->mu);
            if (!s->found) {
                found++;
                d->found_unseen += !s->seen;
            }
            s->found = 1;
            pthread_mutex_unlock(&d->mu);
        }
        rd_kafka_message_destroy(m);
    }
    if (open > 0) {
        snprintf(err, errlen, "verifier: %d partitions not read to their end in %d ms", open,
                 VERIFY_TIMEOUT_MS);
        found = -1;
    }
    rd_kafka_consumer_close(rk);
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return found;
}

/* ---------------------------------------------------------------- phases */

static int consumers_have(drill *d, int k)
{
    for (int i = 0; i < d->spec->consumers; i++) {
        atomic_uint_fast64_t *slot = k < 0 ? &d->cons[i].first_us : &d->cons[i].first_after[k];
        if (!atomic_load(slot)) return 0;
    }
    return 1;
}

/* Waits until every consumer got a record (K < 0) or one sent after step K, at most LIMIT_MS. */
static void wait_for_consumers(drill *d, int k, int64_t limit_ms)
{
    uint64_t until = kg_now_us() + (uint64_t)limit_ms * 1000;
    while (!consumers_have(d, k) && kg_now_us() < until)
        usleep(20000);
}

static long acked_total(drill *d)
{
    long n = 0;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->spec->producers; i++)
        n += d->prod[i].acked;
    pthread_mutex_unlock(&d->mu);
    return n;
}

static void arm(drill *d, int k, uint64_t origin_us)
{
    d->origin_us[k] = origin_us;
    atomic_store(&d->steps_armed, k + 1);
}

static json_t *step_json(drill *d, int k, int status, json_t *reply)
{
    const kg_drill_step *st = &d->spec->steps[k];
    double took_ms = (double)(d->returned_us[k] - d->call_us[k]) / 1000.0;
    json_t *out = json_pack("{s:s, s:f, s:i}", "action", kg_drill_action_name(st->action),
                            "called_ms", rel_ms(d, d->call_us[k]), "status", status);
    if (st->action == KG_DRILL_CHAOS) {
        json_object_set_new(out, "rule", json_loads(st->rule, 0, NULL));
        json_object_set_new(out, "fault_ms", json_real(took_ms));
    } else {
        json_object_set_new(out, "switch_ms", json_real(took_ms));
        if (st->planned) json_object_set_new(out, "planned", json_true());
        if (st->to[0]) json_object_set_new(out, "to", json_string(st->to));
        json_t *to = json_object_get(reply, "to");
        if (json_is_string(to) && !st->to[0]) json_object_set(out, "to", to);
    }
    if (reply) json_object_set_new(out, "result", reply);
    return out;
}

static json_t *run_step(drill *d, int k, kg_drill_step_fn do_step, void *opaque)
{
    const kg_drill_step *st = &d->spec->steps[k];
    json_t *reply = NULL;
    d->call_us[k] = kg_now_us();
    if (st->action != KG_DRILL_CHAOS) arm(d, k, d->call_us[k]);
    int status = do_step(opaque, d->spec, st, &reply);
    d->returned_us[k] = kg_now_us();
    if (st->action == KG_DRILL_CHAOS) arm(d, k, d->returned_us[k]);
    json_t *out = step_json(d, k, status, reply);
    say(d, "%s%s %s: answered %d after %.1f ms", st->planned ? "planned " : "",
        kg_drill_action_name(st->action), text_or(json_object_get(out, "to"), ""), status,
        (double)(d->returned_us[k] - d->call_us[k]) / 1000.0);
    return out;
}

static void stop_clients(drill *d, pthread_t *threads, int from, int to, atomic_int *flag)
{
    atomic_store(flag, 1);
    for (int i = from; i < to; i++)
        pthread_join(threads[i], NULL);
}

/* Every record of the drill has been received by the group, or LIMIT_MS passed. */
static void wait_for_catch_up(drill *d, int64_t limit_ms)
{
    uint64_t until = kg_now_us() + (uint64_t)limit_ms * 1000;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        long missing = d->found_unseen;
        pthread_mutex_unlock(&d->mu);
        if (!missing || kg_now_us() >= until) return;
        usleep(100000);
    }
}

/* ---------------------------------------------------------------- measures */

static json_t *ms_or_null(uint64_t from_us, uint64_t to_us)
{
    return to_us ? json_real((double)(to_us - from_us) / 1000.0) : json_null();
}

/* First acknowledgement of a record producer P sent after step K was called. */
static uint64_t first_ack_after(const drill_producer *p, uint64_t call_us)
{
    uint64_t best = 0;
    for (long s = 0; s < atomic_load(&p->sent); s++) {
        const drill_slot *sl = &p->slots[s];
        if (sl->sent_us >= call_us && sl->acked_us && (!best || sl->acked_us < best))
            best = sl->acked_us;
    }
    return best;
}

static json_t *producer_json(drill *d, drill_producer *p)
{
    json_t *rto = json_array();
    for (int k = 0; k < d->n_run; k++)
        json_array_append_new(rto,
                              ms_or_null(d->origin_us[k], first_ack_after(p, d->origin_us[k])));
    char name[32];
    snprintf(name, sizeof(name), "producer-%d", p->idx + 1);
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:O, s:b}", "client", name, "kind", "producer",
                     "rto_ms", rto, "sent", (json_int_t)atomic_load(&p->sent), "acked",
                     (json_int_t)p->acked, "errors", (json_int_t)p->failed, "error_names",
                     p->errors, "out_of_slots", p->full);
}

static json_t *consumer_json(drill *d, drill_consumer *c)
{
    json_t *rto = json_array();
    for (int k = 0; k < d->n_run; k++)
        json_array_append_new(rto, ms_or_null(d->origin_us[k], atomic_load(&c->first_after[k])));
    char name[32];
    snprintf(name, sizeof(name), "consumer-%d", c->idx + 1);
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:O}", "client", name, "kind", "consumer", "rto_ms",
                     rto, "received", (json_int_t)c->received, "errors", (json_int_t)c->errors,
                     "error_names", c->error_names);
}

/* The step that lost a record sent at SENT_US: the first one that had not returned when it was
 * sent, since the record went to the side active then (a record sent while the switch is being
 * made may still reach the old side). n_run: none, the record was lost with no switch. */
static int losing_step(const drill *d, uint64_t sent_us)
{
    int k = 0;
    while (k < d->n_run && d->returned_us[k] <= sent_us)
        k++;
    return k;
}

static json_t *data_json(drill *d, long found, json_t *steps)
{
    long lost[KG_DRILL_MAX_STEPS + 1] = {0}, not_received = 0, acked = 0;
    uint64_t oldest[KG_DRILL_MAX_STEPS + 1] = {0};
    for (int p = 0; p < d->spec->producers; p++) {
        drill_producer *pr = &d->prod[p];
        for (long s = 0; s < atomic_load(&pr->sent); s++) {
            const drill_slot *sl = &pr->slots[s];
            if (!sl->acked_us) continue;
            acked++;
            if (found >= 0 && !sl->found) {
                int k = losing_step(d, sl->sent_us);
                lost[k]++;
                if (!oldest[k] || sl->acked_us < oldest[k]) oldest[k] = sl->acked_us;
            } else if (d->spec->consumers > 0 && !sl->seen) {
                not_received++;
            }
        }
    }
    long total_lost = 0;
    for (int k = 0; k <= d->n_run; k++)
        total_lost += lost[k];
    for (int k = 0; k < d->n_run && found >= 0; k++) {
        json_t *st = json_array_get(steps, (size_t)k);
        json_object_set_new(st, "lost", json_integer(lost[k]));
        /* The window of acknowledged data the switch lost: from the oldest lost acknowledgement
         * to the switch's call (0 when all of it was acknowledged while the switch was made). */
        uint64_t window_us = lost[k] && oldest[k] < d->call_us[k] ? d->call_us[k] - oldest[k] : 0;
        json_object_set_new(st, "rpo_ms", json_real((double)window_us / 1000.0));
    }
    json_t *out = json_pack("{s:I, s:I, s:I, s:I}", "acked", (json_int_t)acked, "duplicates",
                            (json_int_t)d->duplicates, "reordered", (json_int_t)d->reordered,
                            "not_received", (json_int_t)not_received);
    json_object_set_new(out, "found_on_active_side",
                        found >= 0 ? json_integer(found) : json_null());
    json_object_set_new(out, "lost", found >= 0 ? json_integer(total_lost) : json_null());
    json_object_set_new(out, "lost_without_switch", json_integer(lost[d->n_run]));
    return out;
}

/* ---------------------------------------------------------------- expectations */

static void judge(json_t *list, const char *name, int64_t limit, json_t *observed, int *failed)
{
    if (limit < 0) {
        json_decref(observed);
        return;
    }
    const char *result = json_is_null(observed)                         ? "fail"
                         : json_number_value(observed) <= (double)limit ? "pass"
                                                                        : "fail";
    if (strcmp(result, "fail") == 0) *failed = 1;
    json_array_append_new(list,
                          json_pack("{s:s, s:I, s:o, s:s}", "name", name, "expected",
                                    (json_int_t)limit, "observed", observed, "result", result));
}

/* The worst RTO of KIND over every client and step; null when one never recovered. */
static json_t *worst_rto(json_t *clients, const char *kind)
{
    double worst = 0;
    size_t i, k;
    json_t *c, *v;
    json_array_foreach(clients, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "kind")), kind) != 0) continue;
        json_array_foreach(json_object_get(c, "rto_ms"), k, v)
        {
            if (json_is_null(v)) return json_null();
            if (json_number_value(v) > worst) worst = json_number_value(v);
        }
    }
    return json_real(worst);
}

static long client_errors(json_t *clients)
{
    long n = 0;
    size_t i;
    json_t *c;
    json_array_foreach(clients, i, c) n += (long)json_integer_value(json_object_get(c, "errors"));
    return n;
}

static json_t *expectations(const kg_drill_spec *s, json_t *result, int *failed)
{
    json_t *list = json_array(), *clients = json_object_get(result, "clients"),
           *data = json_object_get(result, "data");
    judge(list, "max_producer_rto_ms", s->max_producer_rto_ms, worst_rto(clients, "producer"),
          failed);
    judge(list, "max_consumer_rto_ms", s->max_consumer_rto_ms, worst_rto(clients, "consumer"),
          failed);
    judge(list, "max_lost", s->max_lost, json_deep_copy(json_object_get(data, "lost")), failed);
    judge(list, "max_duplicates", s->max_duplicates,
          json_deep_copy(json_object_get(data, "duplicates")), failed);
    judge(list, "max_client_errors", s->max_errors, json_integer(client_errors(clients)), failed);
    return list;
}

/* ---------------------------------------------------------------- run */

static int alloc_producers(drill *d)
{
    const kg_drill_spec *s = d->spec;
    int64_t planned_ms = s->between_ms * (s->n_steps + 1) + s->consumer_wait_ms * (s->n_steps + 1);
    long per = (long)((planned_ms / 1000 + 40) * s->rate);
    if (per * s->producers > MAX_RECORDS_TOTAL) per = MAX_RECORDS_TOTAL / s->producers;
    for (int i = 0; i < s->producers; i++) {
        drill_producer *p = &d->prod[i];
        *p = (drill_producer){.d = d, .idx = i, .cap = per, .errors = json_object()};
        p->slots = calloc((size_t)per, sizeof(drill_slot));
        if (!p->slots) return -1;
        d->max_seq[i] = -1;
    }
    return 0;
}

static void free_drill(drill *d)
{
    for (int i = 0; i < d->spec->producers; i++) {
        free(d->prod[i].slots);
        json_decref(d->prod[i].errors);
    }
    for (int i = 0; i < d->spec->consumers; i++)
        json_decref(d->cons[i].error_names);
    pthread_mutex_destroy(&d->mu);
}

static void start_clients(drill *d, pthread_t *threads)
{
    for (int i = 0; i < d->spec->producers; i++)
        pthread_create(&threads[i], NULL, producer_main, &d->prod[i]);
    for (int i = 0; i < d->spec->consumers; i++) {
        drill_consumer *c = &d->cons[i];
        c->d = d;
        c->idx = i;
        c->error_names = json_object();
        pthread_create(&threads[KG_DRILL_MAX_PRODUCERS + i], NULL, consumer_main, c);
    }
}

static json_t *props_json(const kg_drill_props *props)
{
    json_t *out = json_object();
    for (int i = 0; i < props->n; i++)
        json_object_set_new(out, props->items[i].key, json_string(props->items[i].value));
    return out;
}

static json_t *spec_json(const kg_drill_spec *s, const drill *d)
{
    json_t *out = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:I, s:I}", "vcluster", s->vcluster, "bootstrap",
        s->bootstrap, "topic", s->topic, "client_library", rd_kafka_version_str(), "producers",
        s->producers, "rate", s->rate, "consumers", s->consumers, "group", d->group, "between_ms",
        (json_int_t)s->between_ms, "consumer_wait_ms", (json_int_t)s->consumer_wait_ms);
    json_object_set_new(out, "producer_config", props_json(&s->producer_config));
    json_object_set_new(out, "consumer_config", props_json(&s->consumer_config));
    return out;
}

static json_t *measure(drill *d, json_t *steps, long found, const char *verify_err)
{
    json_t *clients = json_array();
    for (int i = 0; i < d->spec->producers; i++)
        json_array_append_new(clients, producer_json(d, &d->prod[i]));
    for (int i = 0; i < d->spec->consumers; i++)
        json_array_append_new(clients, consumer_json(d, &d->cons[i]));
    json_t *result = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o}", "name", d->spec->name, "run",
                               d->run, "hypothesis", d->spec->hypothesis, "configuration",
                               spec_json(d->spec, d), "steps", steps, "clients", clients);
    json_object_set_new(result, "data", data_json(d, found, steps));
    if (verify_err) json_object_set_new(result, "verification_error", json_string(verify_err));
    int failed = 0;
    for (int k = 0; k < d->n_run; k++)
        if (json_integer_value(json_object_get(json_array_get(steps, (size_t)k), "status")) != 200)
            failed = 1;
    json_object_set_new(result, "expectations", expectations(d->spec, result, &failed));
    json_object_set_new(result, "outcome", json_string(failed ? "failed" : "passed"));
    json_object_set_new(result, "duration_ms", json_real(rel_ms(d, kg_now_us())));
    return result;
}

json_t *kg_drill_run(const kg_drill_spec *spec, kg_drill_step_fn do_step, void *opaque,
                     FILE *progress)
{
    static drill zero;
    drill *d = malloc(sizeof(*d));
    if (!d) return json_pack("{s:s, s:s}", "outcome", "error", "error", "out of memory");
    *d = zero;
    d->spec = spec;
    d->progress = progress;
    d->start_us = kg_now_us();
    snprintf(d->run, sizeof(d->run), "%llx", (unsigned long long)(time(NULL) ^ d->start_us));
    snprintf(d->group, sizeof(d->group), "%s", spec->group[0] ? spec->group : "kgate-drill");
    pthread_mutex_init(&d->mu, NULL);
    if (alloc_producers(d) != 0) {
        free_drill(d);
        free(d);
        return json_pack("{s:s, s:s}", "outcome", "error", "error", "out of memory");
    }
    pthread_t threads[KG_DRILL_MAX_PRODUCERS + KG_DRILL_MAX_CONSUMERS];
    start_clients(d, threads);
    say(d, "%s: clients started, waiting up to %.0f ms for the group", spec->name,
        (double)spec->consumer_wait_ms);
    wait_for_consumers(d, -1, spec->consumer_wait_ms);
    sleep_until(d, kg_now_us() + (uint64_t)spec->between_ms * 1000);
    json_t *steps = json_array();
    /* No switch unless the workload got through: a drill must not fail a cluster over for
     * clients that never reached it (wrong bootstrap, missing topic, kgate down). */
    d->n_run = acked_total(d) > 0 ? spec->n_steps : 0;
    if (!d->n_run) say(d, "no record acknowledged through %s: no switch made", spec->bootstrap);
    for (int k = 0; k < d->n_run; k++) {
        json_array_append_new(steps, run_step(d, k, do_step, opaque));
        sleep_until(d, kg_now_us() + (uint64_t)spec->between_ms * 1000);
        wait_for_consumers(d, k, spec->consumer_wait_ms);
    }
    stop_clients(d, threads, 0, spec->producers, &d->stop_producers);
    say(d, "producers stopped; reading the topic on the active side");
    char verify_err[256] = "";
    long found = verify(d, verify_err, sizeof(verify_err));
    if (spec->consumers > 0 && found >= 0) wait_for_catch_up(d, CATCH_UP_LIMIT_MS);
    stop_clients(d, threads + KG_DRILL_MAX_PRODUCERS, 0, spec->consumers, &d->stop_consumers);
    json_t *result = measure(d, steps, found, found < 0 ? verify_err : NULL);
    if (!d->n_run) {
        json_object_set_new(result, "outcome", json_string("error"));
        json_object_set_new(
            result, "error",
            json_sprintf("no record was acknowledged through %s: no switch made", spec->bootstrap));
    }
    free_drill(d);
    free(d);
    return result;
}
