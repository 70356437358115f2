/* kg_planned — the zero-loss planned switchover (kg_planned.h). */
#include "route/kg_planned.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kg_conn.h"
#include "engine/kg_loop.h"
#include "engine/kg_wire.h"
#include "engine/kg_worker.h"
#include "fleet/kg_fleet.h"
#include "fleet/kg_fleet_planned.h"
#include "kp_msgs.h"
#include "metrics/kg_metrics.h"
#include "route/kg_gateway.h"
#include "route/kg_gateway_int.h"
#include "route/kg_handover.h"
#include "route/kg_kafka.h"
#include "route/kg_mirror.h"
#include "route/kg_offsets.h"
#include "route/kg_offsync.h"
#include "route/kg_parity.h"
#include "state/kg_store.h"
#include "util/kg_log.h"
#include "util/kg_time.h"

#define KG_PLANNED_UNKNOWN_TOPIC                                                                   \
    3 /* UNKNOWN_TOPIC_OR_PARTITION: the topic is not on the new side */

/* A Produce request on its way to the new side. */
typedef struct release_item {
    struct release_item *next;
    kg_worker *worker;
    uint64_t conn_serial;
    int32_t node_id;
    int16_t version;
    int32_t correlation_id;
    int answer; /* acks != 0: the client waits for the answer */
    uint8_t *body;
    size_t len;
} release_item;

struct kg_planned {
    atomic_int hold;                       /* 1 while a planned switch holds new Produce requests */
    atomic_uint_fast64_t release_route;    /* stale connections of this route release (0: none) */
    atomic_uint_fast64_t held, held_bytes; /* of the current (last) planned switch */
    atomic_uint_fast64_t released, release_failed;
    atomic_int busy;

    pthread_mutex_t lock; /* the queue, `busy_why`, the thread */
    pthread_cond_t cond;
    release_item *head, *tail;
    int working; /* the thread has an item in hand */
    int stop, started;
    pthread_t thread;
    kg_gateway *gw;
    kg_vcluster *vc;
    char busy_why[256];
    /* release thread only: the new side's leaders ({topic: {"<partition>": node}}) and when
     * they were read, so that a released request costs one round trip, not two */
    json_t *leaders;
    uint64_t leaders_us;
    int leaders_cluster;
    json_t *old_leaders; /* the old side's, read once per switch: see same_leaders */
    /* release thread only: its connections to the new side's brokers (SESSION_OF), kept from
     * one relayed request to the next */
    kg_cluster_session *session;
    kg_cluster *session_of;
    int from;                /* the old side of the last planned switch (lock) */
    uint64_t fleet_start_us; /* a hold for a fleet's planned switch began (kg_planned_fleet_hold) */
    int reset_old;           /* (lock) a new switch: old_leaders are stale */

    kg_counter *m_switches[2]; /* [0] completed, [1] aborted */
    kg_counter *m_held, *m_released;
    kg_histogram *m_hold;
    kg_offsync *offsync; /* MirrorMaker 2's lag (replication: { kind: mirrormaker2 }) */
    /* of the current (last) planned switch (its thread: one at a time): the partitions behind
     * at the first measurement of the lag, and at the last */
    json_t *lag_seen, *lag_last;
};

static const double hold_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

kg_planned *kg_planned_new(kg_metrics *metrics, const char *vcluster)
{
    kg_planned *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    char labels[256], done[320], aborted[320];
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vcluster, NULL);
    kg_metrics_format_labels(done, sizeof(done), "vcluster", vcluster, "result", "completed", NULL);
    kg_metrics_format_labels(aborted, sizeof(aborted), "vcluster", vcluster, "result", "aborted",
                             NULL);
    const char *sw_help = "Planned switchovers by result";
    p->m_switches[0] = kg_metrics_counter(metrics, "kgate_planned_switches_total", sw_help, done);
    p->m_switches[1] =
        kg_metrics_counter(metrics, "kgate_planned_switches_total", sw_help, aborted);
    p->m_held = kg_metrics_counter(metrics, "kgate_planned_held_requests_total",
                                   "Produce requests a planned switchover held at kgate", labels);
    p->m_released = kg_metrics_counter(
        metrics, "kgate_planned_released_requests_total",
        "Produce requests kgate sent to the new side itself after a planned switchover", labels);
    p->m_hold = kg_metrics_histogram(
        metrics, "kgate_planned_hold_seconds", "How long planned switchovers held Produce requests",
        labels, hold_bounds, (int)(sizeof(hold_bounds) / sizeof(*hold_bounds)));
    if (!(p->offsync = kg_offsync_new(metrics, vcluster))) {
        kg_planned_free(p);
        return NULL;
    }
    return p;
}

static void item_free(release_item *it)
{
    free(it->body);
    free(it);
}

void kg_planned_stop(kg_planned *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    int started = p->started;
    p->started = 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (started) pthread_join(p->thread, NULL);
}

void kg_planned_free(kg_planned *p)
{
    if (!p) return;
    kg_planned_stop(p);
    while (p->head) {
        release_item *next = p->head->next;
        item_free(p->head);
        p->head = next;
    }
    json_decref(p->leaders);
    json_decref(p->old_leaders);
    kg_cluster_session_free(p->session);
    kg_offsync_free(p->offsync);
    json_decref(p->lag_seen);
    json_decref(p->lag_last);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

int kg_planned_mode(kg_planned *p, uint64_t conn_route, uint64_t current_route)
{
    if (!p) return KG_PLANNED_PASS;
    if (conn_route != current_route)
        return atomic_load_explicit(&p->release_route, memory_order_acquire) == current_route
                   ? KG_PLANNED_RELEASE
                   : KG_PLANNED_PASS;
    return atomic_load_explicit(&p->hold, memory_order_acquire) ? KG_PLANNED_HOLD : KG_PLANNED_PASS;
}

void kg_planned_note_held(kg_planned *p, uint32_t size)
{
    atomic_fetch_add(&p->held, 1);
    atomic_fetch_add(&p->held_bytes, size);
    kg_counter_inc(p->m_held);
}

int kg_planned_release(kg_planned *p, kg_worker *w, uint64_t conn_serial, int32_t node_id,
                       int16_t api_version, int32_t correlation_id, int answer, const uint8_t *body,
                       size_t len)
{
    release_item *it = calloc(1, sizeof(*it));
    uint8_t *copy = malloc(len ? len : 1);
    if (!it || !copy) {
        free(it);
        free(copy);
        return -1;
    }
    memcpy(copy, body, len);
    *it = (release_item){.worker = w,
                         .conn_serial = conn_serial,
                         .node_id = node_id,
                         .version = api_version,
                         .correlation_id = correlation_id,
                         .answer = answer,
                         .body = copy,
                         .len = len};
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---------------------------------------------------------------- release: one request */

/* The answer per partition of the client's request, filled leader by leader. */
typedef struct part_answer {
    int16_t error;
    int64_t base_offset, log_append_time, log_start_offset;
} part_answer;

typedef struct release_ctx {
    const kp_produce_request *rq; /* the client's */
    kp_produce_request sub;       /* the partitions of one leader */
} release_ctx;

static void encode_sub(kp_writer *w, int16_t version, void *arg)
{
    kp_produce_request_encode(w, version, &((release_ctx *)arg)->sub);
}

static int32_t leader_of(json_t *leaders, const kp_str *topic, int32_t partition)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", partition);
    json_t *t = json_object_getn(leaders, topic->ptr, (size_t)(topic->len > 0 ? topic->len : 0));
    json_t *l = t ? json_object_get(t, key) : NULL;
    return l ? (int32_t)json_integer_value(l) : -1;
}

/* Builds in X->sub the partitions of RQ whose leader is LEADER (ARENA owns the arrays). */
static int sub_request(release_ctx *x, json_t *leaders, int32_t leader, kp_arena *arena,
                       int32_t **leader_of_part)
{
    const kp_produce_request *rq = x->rq;
    x->sub = *rq;
    x->sub.topic_data.count = 0;
    x->sub.topic_data.items =
        kp_arena_calloc(arena, (size_t)rq->topic_data.count + 1, sizeof(*x->sub.topic_data.items));
    if (!x->sub.topic_data.items) return -1;
    for (int32_t t = 0; t < rq->topic_data.count; t++) {
        const kp_produce_request_topic_produce_data *td = &rq->topic_data.items[t];
        kp_produce_request_topic_produce_data *out =
            &x->sub.topic_data.items[x->sub.topic_data.count];
        *out = *td;
        out->partition_data.count = 0;
        out->partition_data.items = kp_arena_calloc(arena, (size_t)td->partition_data.count + 1,
                                                    sizeof(*out->partition_data.items));
        if (!out->partition_data.items) return -1;
        for (int32_t i = 0; i < td->partition_data.count; i++)
            if (leader_of_part[t][i] == leader)
                out->partition_data.items[out->partition_data.count++] =
                    td->partition_data.items[i];
        if (out->partition_data.count > 0) x->sub.topic_data.count++;
    }
    /* acks=0 gets no answer from a broker, and kgate's client waits for one: acks=1 then. */
    if (x->sub.acks == 0) x->sub.acks = 1;
    return 0;
}

/* Puts the leader's answer ANS into the per-partition answers of RQ. */
static void take_answer(const kp_produce_request *rq, const kp_produce_response *m,
                        part_answer **answers)
{
    for (int32_t i = 0; i < m->responses.count; i++) {
        const kp_produce_response_topic_produce_response *tr = &m->responses.items[i];
        for (int32_t t = 0; t < rq->topic_data.count; t++) {
            const kp_produce_request_topic_produce_data *td = &rq->topic_data.items[t];
            if (!kp_str_eq(td->name, tr->name)) continue;
            for (int32_t j = 0; j < tr->partition_responses.count; j++) {
                const kp_produce_response_partition_produce_response *pr =
                    &tr->partition_responses.items[j];
                for (int32_t k = 0; k < td->partition_data.count; k++)
                    if (td->partition_data.items[k].index == pr->index)
                        answers[t][k] = (part_answer){pr->error_code, pr->base_offset,
                                                      pr->log_append_time_ms, pr->log_start_offset};
            }
        }
    }
}

/* Sends the sub-request of LEADER; its partitions keep NOT_LEADER_OR_FOLLOWER (retriable) when
 * the leader does not answer. */
static void ask_leader(kg_kafka *k, release_ctx *x, int32_t leader, int16_t version,
                       part_answer **answers)
{
    kg_kafka_answer ans;
    kg_cluster_request_spec spec = {KP_KEY_PRODUCE, version, version, encode_sub, x};
    if (kg_kafka_ask(k, leader, &spec, &ans) != 0) {
        kg_warn("planned switch: releasing a Produce request to %s (leader %d): %s",
                k->cluster->cfg->name, leader, k->err);
        return;
    }
    kp_produce_response m;
    int rc = kp_produce_response_decode(&ans.r, &ans.arena, ans.reply.version, &m);
    if (kg_kafka_decoded(k, &ans, rc, "Produce") == 0) take_answer(x->rq, &m, answers);
    kg_kafka_answer_free(&ans);
}

/* The response body for RQ at VERSION from ANSWERS, into OUT. */
static void encode_answer(const kp_produce_request *rq, int16_t version, part_answer **answers,
                          kp_arena *arena, kp_writer *out)
{
    kp_produce_response m;
    kp_produce_response_init(&m);
    m.responses.count = rq->topic_data.count;
    m.responses.items =
        kp_arena_calloc(arena, (size_t)rq->topic_data.count + 1, sizeof(*m.responses.items));
    for (int32_t t = 0; m.responses.items && t < rq->topic_data.count; t++) {
        const kp_produce_request_topic_produce_data *td = &rq->topic_data.items[t];
        kp_produce_response_topic_produce_response *tr = &m.responses.items[t];
        tr->name = td->name;
        tr->partition_responses.count = td->partition_data.count;
        tr->partition_responses.items = kp_arena_calloc(arena, (size_t)td->partition_data.count + 1,
                                                        sizeof(*tr->partition_responses.items));
        if (!tr->partition_responses.items) {
            out->err = 1;
            return;
        }
        for (int32_t i = 0; i < td->partition_data.count; i++) {
            kp_produce_response_partition_produce_response *pr = &tr->partition_responses.items[i];
            pr->index = td->partition_data.items[i].index;
            pr->error_code = answers[t][i].error;
            pr->base_offset = answers[t][i].base_offset;
            pr->log_append_time_ms = answers[t][i].log_append_time;
            pr->log_start_offset = answers[t][i].log_start_offset;
            pr->error_message = KP_STR_NULL;
            pr->current_leader.leader_id = -1;
            pr->current_leader.leader_epoch = -1;
        }
    }
    if (!m.responses.items) {
        out->err = 1;
        return;
    }
    kp_produce_response_encode(out, version, &m);
}

/* Are the leaders kept in P (of cluster INDEX, read less than a second ago) those of every
 * topic of RQ? */
static int leaders_cached(kg_planned *p, int index, const kp_produce_request *rq)
{
    if (!p->leaders || p->leaders_cluster != index || kg_now_us() - p->leaders_us > 1000000u)
        return 0;
    for (int32_t t = 0; t < rq->topic_data.count; t++) {
        const kp_str *n = &rq->topic_data.items[t].name;
        if (!json_object_getn(p->leaders, n->ptr, (size_t)(n->len > 0 ? n->len : 0))) return 0;
    }
    return 1;
}

/* The leaders of RQ's partitions on the new side (-1: unknown), one array per topic; *LEADERS
 * gets P's (cached) map. */
static int32_t **leaders_of(kg_planned *p, kg_kafka *k, const kp_produce_request *rq,
                            kp_arena *arena, json_t **leaders)
{
    const char **names = kp_arena_calloc(arena, (size_t)rq->topic_data.count + 1, sizeof(*names));
    int32_t **out = kp_arena_calloc(arena, (size_t)rq->topic_data.count + 1, sizeof(*out));
    if (!names || !out) return NULL;
    for (int32_t t = 0; t < rq->topic_data.count; t++) {
        const kp_str *n = &rq->topic_data.items[t].name;
        char *name = kp_arena_calloc(arena, (size_t)(n->len > 0 ? n->len : 0) + 1, 1);
        if (!name) return NULL;
        if (n->len > 0) memcpy(name, n->ptr, (size_t)n->len);
        names[t] = name;
    }
    kg_cluster_topics wanted = {rq->topic_data.count, names};
    if (!leaders_cached(p, k->cluster->index, rq)) {
        json_t *fresh = kg_kafka_leaders(k, &wanted);
        json_decref(p->leaders);
        p->leaders = fresh;
        p->leaders_us = kg_now_us();
        p->leaders_cluster = k->cluster->index;
    }
    *leaders = json_incref(p->leaders);
    for (int32_t t = 0; t < rq->topic_data.count; t++) {
        const kp_produce_request_topic_produce_data *td = &rq->topic_data.items[t];
        out[t] = kp_arena_calloc(arena, (size_t)td->partition_data.count + 1, sizeof(**out));
        if (!out[t]) return NULL;
        for (int32_t i = 0; i < td->partition_data.count; i++)
            out[t][i] =
                *leaders ? leader_of(*leaders, &td->name, td->partition_data.items[i].index) : -1;
    }
    return out;
}

/* Does broker NODE lead the same partitions of every topic of RQ on both sides? Then what the
 * client sends to it (by the old side's leaders it knows) finds its leaders on the new side,
 * and the connection's Produce requests go there straight again. */
static int same_leaders(kg_planned *p, const kp_produce_request *rq, int32_t node, json_t *now)
{
    if (!p->old_leaders) {
        kg_kafka k = {.cluster = &p->gw->clusters[p->from], .deadline_us = kg_now_us() + 2000000u};
        kg_cluster_topics all = {-1, NULL};
        p->old_leaders = kg_kafka_leaders(&k, &all);
        if (!p->old_leaders) return 0;
    }
    for (int32_t t = 0; t < rq->topic_data.count; t++) {
        const kp_str *n = &rq->topic_data.items[t].name;
        size_t len = (size_t)(n->len > 0 ? n->len : 0);
        json_t *before = json_object_getn(p->old_leaders, n->ptr, len);
        json_t *after = json_object_getn(now, n->ptr, len);
        if (!before || !after || json_object_size(before) != json_object_size(after)) return 0;
        const char *part;
        json_t *leader;
        json_object_foreach(before, part, leader)
        {
            int was = json_integer_value(leader) == node;
            int is = json_integer_value(json_object_get(after, part)) == node;
            if (was != is) return 0;
        }
    }
    return 1;
}

/* The new side's answer to IT (its body, or NULL when the request cannot be decoded: the
 * caller gives kgate's retriable answer then). */
static int release_to(kg_planned *p, kg_cluster *target, const release_item *it, kp_writer *out,
                      int *direct)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, it->body, it->len);
    kp_produce_request rq;
    int rc = -1;
    json_t *leaders = NULL;
    if (kp_produce_request_decode(&r, &arena, it->version, &rq) != 0 || r.err) goto done;
    if (p->session_of != target) { /* a switch the other way */
        kg_cluster_session_free(p->session);
        p->session = kg_cluster_session_new();
        p->session_of = target;
    }
    kg_kafka k = {.cluster = target, .deadline_us = kg_now_us() + 10000000u, .session = p->session};
    int32_t **lead = leaders_of(p, &k, &rq, &arena, &leaders);
    part_answer **answers =
        kp_arena_calloc(&arena, (size_t)rq.topic_data.count + 1, sizeof(*answers));
    if (!lead || !answers) goto done;
    for (int32_t t = 0; t < rq.topic_data.count; t++) {
        int32_t n = rq.topic_data.items[t].partition_data.count;
        answers[t] = kp_arena_calloc(&arena, (size_t)n + 1, sizeof(**answers));
        if (!answers[t]) goto done;
        for (int32_t i = 0; i < n; i++) /* unknown there, or no answer: the client's call */
            answers[t][i] = (part_answer){lead[t][i] < 0 ? KG_PLANNED_UNKNOWN_TOPIC
                                                         : KG_KAFKA_NOT_LEADER_OR_FOLLOWER,
                                          -1, -1, -1};
    }
    /* One sub-request per leader, each partition in the first one naming its leader. */
    for (int32_t t = 0; t < rq.topic_data.count; t++)
        for (int32_t i = 0; i < rq.topic_data.items[t].partition_data.count; i++) {
            int32_t leader = lead[t][i];
            int seen = leader < 0;
            for (int32_t t2 = 0; t2 <= t && !seen; t2++)
                for (int32_t i2 = 0;
                     i2 < (t2 == t ? i : rq.topic_data.items[t2].partition_data.count); i2++)
                    if (lead[t2][i2] == leader) seen = 1;
            if (seen) continue;
            release_ctx x = {.rq = &rq};
            if (sub_request(&x, leaders, leader, &arena, lead) < 0) goto done;
            ask_leader(&k, &x, leader, it->version, answers);
        }
    *direct = it->node_id >= 0 && same_leaders(p, &rq, it->node_id, leaders);
    for (int32_t t = 0; t < rq.topic_data.count; t++) /* a leader moved: read them again */
        for (int32_t i = 0; i < rq.topic_data.items[t].partition_data.count; i++) {
            if (answers[t][i].error == KG_KAFKA_NOT_LEADER_OR_FOLLOWER) p->leaders_us = 0;
            if (lead[t][i] != it->node_id || answers[t][i].error != 0) *direct = 0;
        }
    if (it->answer) encode_answer(&rq, it->version, answers, &arena, out);
    rc = out->err ? -1 : 0;
done:
    json_decref(leaders);
    kp_arena_free(&arena);
    return rc;
}

/* Hands FRAME to the connection on its worker; frees it when the connection is gone. */
typedef struct deliver_ctx {
    uint64_t serial;
    int direct;
    int32_t correlation_id;
    uint8_t *frame;
    uint32_t len;
} deliver_ctx;

static int deliver_visit(kg_conn *c, void *arg)
{
    deliver_ctx *d = arg;
    if (!d->frame ||
        kg_conn_planned_answer(c, d->serial, d->correlation_id, d->frame, d->len, d->direct) == 0)
        return 0;
    d->frame = NULL; /* the connection has it */
    return 1;
}

static void release_one(kg_planned *p, release_item *it)
{
    pthread_mutex_lock(&p->lock);
    if (p->reset_old) {
        json_decref(p->old_leaders);
        p->old_leaders = NULL;
        p->reset_old = 0;
    }
    pthread_mutex_unlock(&p->lock);
    kg_vcluster *vc = p->vc;
    kg_cluster *target =
        &p->gw->clusters[KG_ROUTE_ACTIVE(atomic_load_explicit(&vc->route, memory_order_acquire))];
    kp_writer body;
    kp_writer_init(&body, 256);
    int direct = 0;
    int ok = release_to(p, target, it, &body, &direct) == 0;
    if (!ok) {
        /* Undecodable, or out of memory: the answer any switch gives (a moved leader). */
        kp_writer_free(&body);
        kp_writer_init(&body, 64);
        if (kg_handover_answer(KP_KEY_PRODUCE, it->version, it->body, it->len, &body) != 0)
            body.err = 1;
        atomic_fetch_add(&p->release_failed, 1);
    } else {
        atomic_fetch_add(&p->released, 1);
        kg_counter_inc(p->m_released);
    }
    if (it->answer && !body.err) {
        kp_writer f;
        kp_writer_init(&f, body.len + 16);
        size_t at = kp_writer_reserve_len(&f);
        kg_wire_response_header(&f, KP_KEY_PRODUCE, it->version, it->correlation_id);
        kp_write_raw(&f, body.buf, body.len);
        kp_writer_patch_len(&f, at);
        deliver_ctx d = {it->conn_serial, direct, it->correlation_id, f.err ? NULL : f.buf,
                         (uint32_t)f.len};
        if (d.frame) kg_workers_visit(&it->worker, 1, vc, deliver_visit, &d);
        if (d.frame) kp_writer_free(&f); /* the connection closed meanwhile */
    }
    kp_writer_free(&body);
}

static void *release_main(void *arg)
{
    kg_planned *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stop) break;
        release_item *it = p->head;
        p->head = it->next;
        if (!p->head) p->tail = NULL;
        p->working = 1;
        pthread_mutex_unlock(&p->lock);
        release_one(p, it);
        item_free(it);
        pthread_mutex_lock(&p->lock);
        p->working = 0;
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Waits until the release queue is empty (bounded by UNTIL_US). */
static void release_wait_idle(kg_planned *p, uint64_t until_us)
{
    pthread_mutex_lock(&p->lock);
    while ((p->head || p->working) && kg_now_us() < until_us) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---------------------------------------------------------------- the switch */

int kg_planned_busy(kg_planned *p, char *why, size_t len)
{
    if (!p || !atomic_load(&p->busy)) return 0;
    pthread_mutex_lock(&p->lock);
    snprintf(why, len, "%s", p->busy_why);
    pthread_mutex_unlock(&p->lock);
    return 1;
}

/* The lag report of the vcluster's replication from FROM to TO now: the embedded mirror's
 * (kg_mirror_lag) or, with WATCH, MirrorMaker 2's (kg_offsync_lag); NULL with WHY. */
static json_t *lag_now(kg_gateway *gw, kg_vcluster *vc, kg_offsync_watch *watch, int from, int to,
                       char *why, size_t len)
{
    char err[400] = "";
    json_t *lag = watch ? kg_offsync_lag(watch, 3000, err, sizeof(err))
                        : kg_mirror_lag(vc->mirror, &gw->clusters[from], &gw->clusters[to], NULL,
                                        3000, err, sizeof(err));
    if (!lag) snprintf(why, len, "%s%s", watch ? "" : "cannot read the mirror's lag: ", err);
    return lag;
}

/* {topic: {"<partition>": n}} of the partitions of LAG (a lag report) still behind. */
static json_t *lagging(json_t *lag)
{
    json_t *out = json_object();
    const char *topic, *part;
    json_t *parts, *n;
    json_object_foreach(json_object_get(lag, "partitions"), topic, parts)
        json_object_foreach(parts, part, n) if (json_integer_value(n) > 0)
    {
        json_t *t = json_object_get(out, topic);
        if (!t) json_object_set_new(out, topic, t = json_object());
        json_object_set(t, part, n);
    }
    return out;
}

/* The records LAG (a lag report) says are not copied yet, with WHY naming the partitions
 * behind; 1 at least when a topic cannot be copied at all (its lag never reaches 0), or -1 at
 * once for MirrorMaker 2 (a topic it does not replicate: waiting does not help). */
static int64_t lag_total(json_t *lag, int mm2, char *why, size_t len)
{
    int64_t total = json_integer_value(json_object_get(lag, "total"));
    const char *topic, *part;
    json_t *parts, *n;
    json_t *stuck = json_object_get(lag, mm2 ? "not_replicated" : "not_mirrored");
    if (json_object_size(stuck) == 0) stuck = json_object_get(lag, "stopped");
    json_object_foreach(stuck, topic, n)
    {
        char *text = json_dumps(n, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(why, len, "%s%s: %s", mm2 ? "not replicated by MirrorMaker 2: " : "", topic,
                 text ? text : "?");
        free(text);
        if (mm2) return -1;
        if (total == 0) total = 1; /* its lag never reaches 0 */
        break;
    }
    size_t used = 0;
    if (json_object_size(stuck) == 0)
        json_object_foreach(json_object_get(lag, "partitions"), topic, parts)
            json_object_foreach(parts, part, n) if (json_integer_value(n) > 0 && used + 1 < len)
        {
            used +=
                (size_t)snprintf(why + used, len - used, "%s%s[%s]: %lld record(s) not copied",
                                 used ? ", " : "", topic, part, (long long)json_integer_value(n));
            if (used >= len) used = len - 1;
        }
    return total;
}

/* A pass now (copies what is left; writes the final checkpoints of the groups seen). */
static void mirror_pass_now(kg_gateway *gw, kg_vcluster *vc, int from, int to, int timeout_ms)
{
    json_t *groups = vc->offsets ? kg_offsets_seen(vc->offsets, from) : NULL;
    kg_mirror_pass_topics(vc->mirror, &gw->clusters[from], &gw->clusters[to], NULL, timeout_ms,
                          groups, vc->cfg->offsets_alias[from == vc->cfg->primary ? 0 : 1]);
    json_decref(groups);
}

static int visit_inflight(kg_conn *c, void *arg)
{
    (void)arg;
    return kg_conn_planned_inflight(c);
}

static int visit_kick(kg_conn *c, void *arg)
{
    (void)arg;
    kg_conn_planned_kick(c);
    return 0;
}

/* What one planned switch did (the result and the audit entry). */
typedef struct planned_run {
    kg_gateway *gw;
    kg_vcluster *vc;
    kg_planned *p;
    int from, to;
    uint64_t start_us, deadline_us, hold_max_ms;
    int64_t lag_first; /* the lag when the hold was reached: what was waited for */
    int64_t inflight_first;
    kg_fleet_hold *fleet; /* in a fleet: the hold every live instance keeps (NULL: alone) */
    uint64_t from_epoch;
} planned_run;

/* Is the replication waited for MirrorMaker 2 (else the embedded mirror)? */
static int run_mm2(const planned_run *r)
{
    return r->vc->cfg->replication_kind == KG_REPLICATION_MM2;
}

/* What the run did; with the replication waited for and the partitions it saw behind. */
static json_t *run_report(planned_run *r, const char *outcome)
{
    kg_planned *p = r->p;
    json_t *report = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o}", "outcome", outcome, "hold_ms",
        (json_int_t)((kg_now_us() - r->start_us) / 1000), "hold_max_ms", (json_int_t)r->hold_max_ms,
        "lag_records_waited", (json_int_t)r->lag_first, "held_requests",
        (json_int_t)atomic_load(&p->held), "held_bytes", (json_int_t)atomic_load(&p->held_bytes),
        "released_to_new_side", (json_int_t)atomic_load(&p->released), "release_failed",
        (json_int_t)atomic_load(&p->release_failed), "replication",
        run_mm2(r) ? "mirrormaker2" : "embedded mirror", "lag_seen",
        p->lag_seen ? json_incref(p->lag_seen) : json_object());
    if (report && strcmp(outcome, "aborted") == 0 && json_object_size(p->lag_last) > 0)
        json_object_set(report, "lag_at_abort", p->lag_last);
    return report;
}

static void unhold(planned_run *r)
{
    atomic_store(&r->p->hold, 0);
    kg_workers_visit(r->gw->workers, r->gw->n_workers, r->vc, visit_kick, NULL);
}

/* In a fleet the hold row decides where the held requests go, for every instance alike: the
 * abort is marked there unless it says the switch happened (an ambiguous commit). 0 aborted,
 * 1 switched (*RESULT set), -1 unknown (*RESULT set: this instance keeps holding until its
 * fleet thread reads the decision). */
static int run_abort_fleet(planned_run *r, const char *why, json_t **result)
{
    int decided = kg_fleet_hold_abort(r->fleet, why);
    if (decided == 0) return 0;
    json_t *report = run_report(r, decided == 1 ? "switched" : "undecided");
    if (decided == 1) {
        atomic_store(&r->p->release_route, KG_ROUTE_WORD(r->from_epoch + 1, r->to));
        kg_gateway_apply_route(r->gw, r->vc, r->to, r->from_epoch + 1);
        json_object_set_new(report, "held_requests_went_to", json_string("new side"));
        unhold(r);
        kg_fleet_hold_end(r->fleet, "new side", 0, 0, 0);
        *result = json_pack("{s:s, s:s, s:b, s:o}", "vcluster", r->vc->cfg->name, "to",
                            r->gw->clusters[r->to].cfg->name, "changed", 1, "planned", report);
        return 1;
    }
    *result = json_pack("{s:s, s:s, s:o}", "error",
                        "the state store did not answer: the instances follow the hold's "
                        "decision once it does (GET /v1/status)",
                        "vcluster", r->vc->cfg->name, "planned", report);
    return -1;
}

/* The hold is lifted and the held requests go to the old side: 409 naming WHY. */
static int run_abort(planned_run *r, const kg_switch_request *req, const char *why,
                     json_t *switch_result, json_t **result)
{
    uint64_t held_us = kg_now_us() - r->start_us;
    if (r->fleet) {
        int decided = run_abort_fleet(r, why, result);
        if (decided > 0) atomic_store(&r->p->busy, 0);
        if (decided != 0) return decided > 0 ? 200 : 503; /* -1: the fleet thread ends it */
    }
    unhold(r);
    json_t *report = run_report(r, "aborted");
    json_object_set_new(report, "reason", json_string(why));
    json_object_set_new(report, "held_requests_went_to", json_string("old side"));
    json_t *details =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "vcluster", r->vc->cfg->name, "from",
                  r->gw->clusters[r->from].cfg->name, "to", r->gw->clusters[r->to].cfg->name,
                  "reason", req->reason ? req->reason : "", "actor",
                  req->actor ? req->actor : "unknown", "planned", report);
    if (r->fleet)
        json_object_set_new(report, "instances",
                            kg_fleet_hold_end(r->fleet, "old side", atomic_load(&r->p->held),
                                              atomic_load(&r->p->held_bytes), 1000));
    kg_store_audit_append(r->gw->store, "switch.planned_aborted", details);
    json_decref(details);
    kg_counter_inc(r->p->m_switches[1]);
    kg_histogram_observe(r->p->m_hold, (double)held_us / 1e6);
    kg_warn("vcluster %s: planned switch to %s aborted after %.1f ms: %s", r->vc->cfg->name,
            r->gw->clusters[r->to].cfg->name, (double)held_us / 1000.0, why);
    *result =
        json_pack("{s:s, s:s, s:o}", "error", why, "vcluster", r->vc->cfg->name, "planned", report);
    if (switch_result) json_object_set(*result, "switch", switch_result);
    atomic_store(&r->p->busy, 0);
    return 409;
}

/* Hold reached: no Produce of the virtual cluster is in flight at the old side any more. */
static int run_wait_quiet(planned_run *r, char *why, size_t len)
{
    for (;;) {
        int n = kg_workers_visit(r->gw->workers, r->gw->n_workers, r->vc, visit_inflight, NULL);
        if (r->inflight_first < 0) r->inflight_first = n;
        if (n == 0) return 0;
        if (kg_now_us() >= r->deadline_us) {
            snprintf(why, len,
                     "%d Produce request(s) still unanswered by the active cluster after the "
                     "hold bound (%llu ms)",
                     n, (unsigned long long)r->hold_max_ms);
            return -1;
        }
        kg_time_sleep_ms(2);
    }
}

/* The lag of the vcluster's replication now (what lag_total says), remembering what was behind. */
static int64_t run_lag(planned_run *r, kg_offsync_watch *watch, char *why, size_t len)
{
    json_t *lag = lag_now(r->gw, r->vc, watch, r->from, r->to, why, len);
    if (!lag) return -1;
    int64_t total = lag_total(lag, run_mm2(r), why, len);
    json_decref(r->p->lag_last);
    r->p->lag_last = lagging(lag);
    if (!r->p->lag_seen) r->p->lag_seen = json_incref(r->p->lag_last);
    json_decref(lag);
    return total;
}

/* MirrorMaker 2 copying FROM -> TO: what clients used on FROM, and replication.topics. */
static kg_offsync_watch *mm2_watch(kg_gateway *gw, kg_vcluster *vc, int from, int to)
{
    const kg_vcluster_cfg *cfg = vc->cfg;
    json_t *used = vc->parity ? kg_parity_used(vc->parity, cfg->parity_window_s) : NULL;
    kg_offsync_spec spec = {&gw->clusters[from],
                            &gw->clusters[to],
                            cfg->offsets_alias[to == cfg->primary ? 0 : 1],
                            cfg->replication_syncs_on_target,
                            used,
                            cfg->replication_topics};
    kg_offsync_watch *w = kg_offsync_watch_new(vc->planned->offsync, &spec);
    json_decref(used);
    return w;
}

json_t *kg_planned_lag(kg_gateway *gw, kg_vcluster *vc, char *err, size_t len)
{
    int from = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    int to = from == vc->cfg->primary ? vc->cfg->secondary : vc->cfg->primary;
    int mm2 = vc->cfg->replication_kind == KG_REPLICATION_MM2;
    if (to < 0 || !vc->planned || (!mm2 && !vc->mirror)) {
        snprintf(err, len,
                 "the vcluster has no replication kgate can measure (mirror: or "
                 "replication: { kind: mirrormaker2 })");
        return NULL;
    }
    kg_offsync_watch *watch = mm2 ? mm2_watch(gw, vc, from, to) : NULL;
    json_t *lag = mm2 && !watch ? NULL : lag_now(gw, vc, watch, from, to, err, len);
    if (mm2 && !watch) snprintf(err, len, "out of memory");
    kg_offsync_watch_free(watch);
    if (!lag) return NULL;
    json_object_set_new(lag, "from", json_string(gw->clusters[from].cfg->name));
    json_object_set_new(lag, "to", json_string(gw->clusters[to].cfg->name));
    if (!mm2) json_object_set_new(lag, "replication", json_string("embedded mirror"));
    return lag;
}

/* Catch up until the replication's lag is 0: passes of the embedded mirror, back to back, or
 * MirrorMaker 2's offset syncs read again until they show everything copied. */
static int run_catch_up(planned_run *r, char *why, size_t len)
{
    kg_offsync_watch *watch = run_mm2(r) ? mm2_watch(r->gw, r->vc, r->from, r->to) : NULL;
    if (run_mm2(r) && !watch) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    int rc = -1;
    for (;;) {
        why[0] = 0;
        int64_t lag = run_lag(r, watch, why, len);
        if (lag < 0) break;
        if (r->lag_first < 0) r->lag_first = lag;
        if (lag == 0) {
            rc = 0;
            break;
        }
        uint64_t now = kg_now_us();
        if (now >= r->deadline_us) {
            char first[400], see[KG_NAME_MAX + 64];
            snprintf(first, sizeof(first), "%s", why);
            if (run_mm2(r))
                snprintf(see, sizeof(see), "\"lag_at_abort\" lists them");
            else
                snprintf(see, sizeof(see), "see GET /v1/vclusters/%s/mirror", r->vc->cfg->name);
            snprintf(why, len,
                     "replication lag still %lld record(s) after the hold bound (%llu ms): %s did "
                     "not copy everything to '%s' (%s; %s)",
                     (long long)lag, (unsigned long long)r->hold_max_ms,
                     run_mm2(r) ? "MirrorMaker 2" : "the embedded mirror",
                     r->gw->clusters[r->to].cfg->name, first, see);
            break;
        }
        int budget = (int)((r->deadline_us - now) / 1000) + 1;
        /* MM2 copies on its own. In a fleet the instance that runs the embedded mirror copies
         * (back to back while it holds): the others read the positions it stores. */
        if (run_mm2(r))
            kg_time_sleep_ms(budget > 20 ? 20 : budget);
        else if (!kg_mirror_owner(r->vc->mirror))
            kg_time_sleep_ms(2);
        else
            mirror_pass_now(r->gw, r->vc, r->from, r->to, budget > 5000 ? 5000 : budget);
    }
    kg_offsync_watch_free(watch);
    return rc;
}

static void run_start_thread(kg_planned *p, kg_gateway *gw, kg_vcluster *vc, int from)
{
    release_wait_idle(p, kg_now_us() + 10000000u); /* the last switch's releases are done */
    pthread_mutex_lock(&p->lock);
    p->gw = gw;
    p->vc = vc;
    p->from = from;
    p->reset_old = 1;         /* the release thread reads the old side's leaders again */
    json_decref(p->lag_seen); /* the last switch's */
    json_decref(p->lag_last);
    p->lag_seen = p->lag_last = NULL;
    if (!p->started && !p->stop && pthread_create(&p->thread, NULL, release_main, p) == 0)
        p->started = 1;
    pthread_mutex_unlock(&p->lock);
}

/* ---------------------------------------------------------------- holding for a fleet */

int kg_planned_holding(kg_planned *p)
{
    return p && atomic_load(&p->hold);
}

void kg_planned_held(kg_planned *p, uint64_t *held, uint64_t *held_bytes)
{
    *held = atomic_load(&p->held);
    *held_bytes = atomic_load(&p->held_bytes);
}

int kg_planned_inflight(kg_planned *p)
{
    return kg_workers_visit(p->gw->workers, p->gw->n_workers, p->vc, visit_inflight, NULL);
}

int kg_planned_fleet_hold(kg_planned *p, kg_gateway *gw, kg_vcluster *vc, int from, int to,
                          uint64_t from_epoch, const char *coordinator)
{
    int idle = 0;
    if (!atomic_compare_exchange_strong(&p->busy, &idle, 1)) return -1;
    pthread_mutex_lock(&p->lock);
    snprintf(p->busy_why, sizeof(p->busy_why),
             "planned switch of '%s' from %s to %s (coordinated by instance %s)", vc->cfg->name,
             gw->clusters[from].cfg->name, gw->clusters[to].cfg->name, coordinator);
    pthread_mutex_unlock(&p->lock);
    run_start_thread(p, gw, vc, from);
    atomic_store(&p->held, 0);
    atomic_store(&p->held_bytes, 0);
    atomic_store(&p->released, 0);
    atomic_store(&p->release_failed, 0);
    /* Only the switch this hold is for publishes this route: its connections relay. */
    atomic_store(&p->release_route, KG_ROUTE_WORD(from_epoch + 1, to));
    p->fleet_start_us = kg_now_us();
    atomic_store(&p->hold, 1);
    kg_gw_wake_background(gw); /* the mirror's passes run back to back while it holds */
    return 0;
}

void kg_planned_fleet_end(kg_planned *p, int switched, uint64_t *held, uint64_t *held_bytes)
{
    if (!switched) atomic_store(&p->release_route, 0);
    planned_run r = {.gw = p->gw, .vc = p->vc, .p = p};
    unhold(&r);
    uint64_t held_us = kg_now_us() - p->fleet_start_us;
    kg_histogram_observe(p->m_hold, (double)held_us / 1e6);
    *held = atomic_load(&p->held);
    *held_bytes = atomic_load(&p->held_bytes);
    atomic_store(&p->busy, 0);
}

/* 0 when VC can switch planned, else the HTTP status with *RESULT. */
static int run_check(kg_gateway *gw, kg_vcluster *vc, json_t **result)
{
    const char *why = NULL;
    int status = 400;
    if (vc->cfg->secondary < 0 || !vc->planned)
        why = "a planned switch needs a vcluster with a secondary cluster";
    else if (!vc->mirror && vc->cfg->replication_kind != KG_REPLICATION_MM2)
        why = "a planned switch needs replication kgate can measure, to know that the target has "
              "every acknowledged record: the embedded mirror (mirror: { topics: ... } in the "
              "vcluster's config) or MirrorMaker 2 (replication: { kind: mirrormaker2 }); "
              "without, switch without planned (docs/runbook.md)";
    if (!why) return 0;
    *result = json_pack("{s:s, s:s}", "error", why, "vcluster", vc->cfg->name);
    return status;
}

int kg_planned_switch(kg_gateway *gw, kg_vcluster *vc, const kg_switch_request *req,
                      json_t **result)
{
    int status = run_check(gw, vc, result);
    if (status) return status;
    kg_planned *p = vc->planned;
    uint64_t word = atomic_load(&vc->route);
    planned_run r = {.gw = gw,
                     .vc = vc,
                     .p = p,
                     .from = KG_ROUTE_ACTIVE(word),
                     .lag_first = -1,
                     .inflight_first = -1};
    r.to = req->to && *req->to ? kg_gateway_cluster_index(gw, req->to)
           : req->failback     ? vc->cfg->primary
                               : vc->cfg->secondary;
    kg_switch_request plain = *req;
    plain.planned = 0;
    /* Already there, or a target that is not this vcluster's: the plain switch says so. */
    if (r.to == r.from || (r.to != vc->cfg->primary && r.to != vc->cfg->secondary))
        return kg_gateway_switch(gw, &plain, result);
    const char *down = !atomic_load(&gw->clusters[r.to].up)     ? gw->clusters[r.to].cfg->name
                       : !atomic_load(&gw->clusters[r.from].up) ? gw->clusters[r.from].cfg->name
                                                                : NULL;
    if (down) {
        char why[KG_NAME_MAX + 160];
        snprintf(why, sizeof(why),
                 "cluster '%s' is down: a planned switch needs both sides (switch without "
                 "planned)",
                 down);
        *result = json_pack("{s:s, s:s}", "error", why, "vcluster", vc->cfg->name);
        return 409;
    }
    int idle = 0;
    if (!atomic_compare_exchange_strong(&p->busy, &idle, 1)) {
        char why[300];
        snprintf(why, sizeof(why), "another switch is in progress: ");
        kg_planned_busy(p, why + strlen(why), sizeof(why) - strlen(why));
        *result = json_pack("{s:s, s:s}", "error", why, "vcluster", vc->cfg->name);
        return 409;
    }
    r.hold_max_ms = req->hold_max_ms > 0 ? (uint64_t)req->hold_max_ms
                                         : (uint64_t)gw->cfg->switch_planned_hold_ms;
    pthread_mutex_lock(&p->lock);
    snprintf(p->busy_why, sizeof(p->busy_why), "planned switch of '%s' from %s to %s (by %s)",
             vc->cfg->name, gw->clusters[r.from].cfg->name, gw->clusters[r.to].cfg->name,
             req->actor ? req->actor : "unknown");
    pthread_mutex_unlock(&p->lock);
    run_start_thread(p, gw, vc, r.from);
    atomic_store(&p->held, 0);
    atomic_store(&p->held_bytes, 0);
    atomic_store(&p->released, 0);
    atomic_store(&p->release_failed, 0);
    r.start_us = kg_now_us();
    r.deadline_us = r.start_us + r.hold_max_ms * 1000u;
    r.from_epoch = KG_ROUTE_EPOCH(word);
    /* In a fleet: the hold row every live instance holds for (fleet/kg_fleet_planned.h). */
    if (gw->fleet) {
        status = kg_fleet_hold_begin(kg_fleet_planner(gw->fleet), vc, r.from, r.to, r.from_epoch,
                                     r.hold_max_ms, req->actor, &r.fleet, result);
        if (status) {
            atomic_store(&p->busy, 0);
            return status;
        }
    }

    /* 1. hold (every instance of a fleet); 2. catch up */
    atomic_store(&p->hold, 1);
    kg_gw_wake_background(gw); /* the mirror's passes run back to back while it holds */
    char why[512];
    if (run_wait_quiet(&r, why, sizeof(why)) < 0 ||
        (r.fleet && kg_fleet_hold_acks(r.fleet, atomic_load(&p->held), atomic_load(&p->held_bytes),
                                       r.deadline_us, why, sizeof(why)) < 0) ||
        run_catch_up(&r, why, sizeof(why)) < 0)
        return run_abort(&r, req, why, NULL, result);
    /* 3. translate offsets and switch, as any switch; the stale connections' Produce requests
     * go to the new side from the moment the route is published */
    uint64_t epoch = KG_ROUTE_EPOCH(atomic_load(&vc->route));
    atomic_store(&p->release_route, KG_ROUTE_WORD(epoch + 1, r.to));
    json_t *report = run_report(&r, "switched");
    plain.planned_report = report;
    plain.inner = 1;
    plain.fleet_hold = kg_fleet_hold_id(r.fleet);
    json_t *switched = NULL;
    status = kg_gateway_switch(gw, &plain, &switched);
    json_decref(report);
    if (status != 200 || !json_is_true(json_object_get(switched, "changed"))) {
        atomic_store(&p->release_route, 0);
        const char *err = json_string_value(json_object_get(switched, "error"));
        snprintf(why, sizeof(why), "the switch was refused: %s", err ? err : "see \"switch\"");
        status = run_abort(&r, req, why, switched, result);
        json_decref(switched);
        return status;
    }
    /* 4. release: the held requests go on (to the new side, through the release thread) */
    uint64_t held_us = kg_now_us() - r.start_us;
    unhold(&r);
    release_wait_idle(p, kg_now_us() + 5000000u);
    json_t *done = run_report(&r, "switched");
    json_object_set_new(done, "hold_ms", json_integer((json_int_t)(held_us / 1000)));
    json_object_set_new(done, "held_requests_went_to", json_string("new side"));
    if (r.fleet) {
        json_t *instances = kg_fleet_hold_end(r.fleet, "new side", atomic_load(&p->held),
                                              atomic_load(&p->held_bytes), 2000);
        json_object_set_new(done, "instances", instances);
        /* The switch's entry was written before the instances released: what each held. */
        json_t *details = json_pack("{s:s, s:O, s:O}", "vcluster", vc->cfg->name, "epoch",
                                    json_object_get(switched, "epoch"), "instances", instances);
        kg_store_audit_append(gw->store, "switch.planned_released", details);
        json_decref(details);
    }
    json_object_set_new(switched, "planned", done);
    kg_counter_inc(p->m_switches[0]);
    kg_histogram_observe(p->m_hold, (double)held_us / 1e6);
    kg_info("vcluster %s: planned switch to %s held Produce requests %.1f ms (%llu held, lag %lld "
            "records waited for)",
            vc->cfg->name, gw->clusters[r.to].cfg->name, (double)held_us / 1000.0,
            (unsigned long long)atomic_load(&p->held), (long long)r.lag_first);
    *result = switched;
    atomic_store(&p->busy, 0);
    return 200;
}
