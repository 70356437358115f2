/* kg_admin_history — see kg_admin_history.h. */
#include "admin/kg_admin_history.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/kg_log.h"
#include "util/kg_time.h"

#define MAX_SECONDS (24 * 3600)

typedef struct point {
    int64_t t_ms;
    double requests_per_s, bytes_in_per_s, bytes_out_per_s, errors_per_s;
    double latency_ms; /* mean over the interval; 0 when nothing was answered */
    double connections;
} point;

typedef struct series {
    char *name;
    point *ring;
    int head, count; /* next slot to write, points kept */
    kg_admin_counters last;
    int64_t last_ms; /* 0: no read yet */
} series;

struct kg_admin_history {
    pthread_mutex_t lock; /* guards the series' rings */
    pthread_cond_t wake;
    pthread_t thread;
    int stopping, started;
    int interval_ms, capacity;
    kg_admin_history_read read;
    void *ctx;
    /* KG_ADMIN_HISTORY_MAX_SERIES slots, filled in order and never emptied: readers take n
     * (acquire) and use the slots below it without a lock. */
    series **series;
    atomic_int n;
    pthread_mutex_t add_lock; /* one kg_admin_history_add at a time */
};

/* A counter that went backwards (it cannot today, but a reset would) counts as 0, not as a
 * huge unsigned difference. */
static double rate(uint64_t now, uint64_t before, double seconds)
{
    return now >= before ? (double)(now - before) / seconds : 0.0;
}

static void record(series *s, const kg_admin_counters *c, int64_t now_ms, int capacity)
{
    double seconds = (double)(now_ms - s->last_ms) / 1000.0;
    if (s->last_ms && seconds > 0) {
        point *p = &s->ring[s->head];
        uint64_t timed = c->latency_count >= s->last.latency_count
                             ? c->latency_count - s->last.latency_count
                             : 0;
        *p = (point){.t_ms = now_ms,
                     .requests_per_s = rate(c->requests, s->last.requests, seconds),
                     .bytes_in_per_s = rate(c->bytes_in, s->last.bytes_in, seconds),
                     .bytes_out_per_s = rate(c->bytes_out, s->last.bytes_out, seconds),
                     .errors_per_s = rate(c->errors, s->last.errors, seconds),
                     .latency_ms =
                         timed ? (c->latency_sum_s - s->last.latency_sum_s) * 1000.0 / (double)timed
                               : 0.0,
                     .connections = c->connections};
        s->head = (s->head + 1) % capacity;
        if (s->count < capacity) s->count++;
    }
    s->last = *c;
    s->last_ms = now_ms;
}

void kg_admin_history_tick(kg_admin_history *h, int64_t now_ms)
{
    int n = atomic_load_explicit(&h->n, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        kg_admin_counters c;
        /* Read outside the lock: the callback may take the gateway's own locks. A series whose
         * vcluster a reload removed reads nothing: its hour stays until it ages out. */
        if (h->read(h->ctx, h->series[i]->name, &c) != 0) continue;
        pthread_mutex_lock(&h->lock);
        record(h->series[i], &c, now_ms, h->capacity);
        pthread_mutex_unlock(&h->lock);
    }
}

static void *sampler(void *arg)
{
    kg_admin_history *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        pthread_mutex_unlock(&h->lock);
        kg_admin_history_tick(h, kg_time_now_ms());
        pthread_mutex_lock(&h->lock);
        struct timespec until = kg_time_after_ms(h->interval_ms);
        while (!h->stopping && pthread_cond_timedwait(&h->wake, &h->lock, &until) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void series_free(series *s)
{
    if (!s) return;
    free(s->name);
    free(s->ring);
    free(s);
}

static void history_free(kg_admin_history *h)
{
    int n = atomic_load(&h->n);
    for (int i = 0; h->series && i < n; i++)
        series_free(h->series[i]);
    free(h->series);
    pthread_mutex_destroy(&h->add_lock);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

kg_admin_history *kg_admin_history_new(const char *const *names, int n, int interval_ms,
                                       int capacity, kg_admin_history_read read, void *ctx)
{
    kg_admin_history *h = calloc(1, sizeof(*h));
    if (!h) return NULL;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    h->interval_ms = interval_ms > 0 ? interval_ms : KG_ADMIN_HISTORY_INTERVAL_MS;
    h->capacity = capacity > 0 ? capacity : KG_ADMIN_HISTORY_POINTS;
    h->read = read;
    h->ctx = ctx;
    pthread_mutex_init(&h->add_lock, NULL);
    h->series = calloc(KG_ADMIN_HISTORY_MAX_SERIES, sizeof(*h->series));
    if (!h->series) {
        history_free(h);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (kg_admin_history_add(h, names[i]) < 0) {
            history_free(h);
            return NULL;
        }
    }
    return h;
}

static series *history_find(kg_admin_history *h, const char *name)
{
    int n = atomic_load_explicit(&h->n, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(h->series[i]->name, name) == 0) return h->series[i];
    return NULL;
}

int kg_admin_history_add(kg_admin_history *h, const char *name)
{
    pthread_mutex_lock(&h->add_lock);
    int rc = 0, n = atomic_load(&h->n);
    if (!history_find(h, name)) {
        series *s = calloc(1, sizeof(*s));
        if (s) s->name = strdup(name);
        if (s) s->ring = calloc((size_t)h->capacity, sizeof(point));
        if (n < KG_ADMIN_HISTORY_MAX_SERIES && s && s->name && s->ring) {
            h->series[n] = s;
            atomic_store_explicit(&h->n, n + 1, memory_order_release);
        } else {
            series_free(s);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&h->add_lock);
    return rc;
}

int kg_admin_history_run(kg_admin_history *h)
{
    if (pthread_create(&h->thread, NULL, sampler, h) != 0) {
        kg_error("admin: cannot start the history sampler thread");
        return -1;
    }
    h->started = 1;
    return 0;
}

void kg_admin_history_stop(kg_admin_history *h)
{
    if (!h) return;
    if (h->started) {
        pthread_mutex_lock(&h->lock);
        h->stopping = 1;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    history_free(h);
}

static json_t *point_json(const point *p)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "t", (json_int_t)p->t_ms,
                     "requests_per_s", p->requests_per_s, "bytes_in_per_s", p->bytes_in_per_s,
                     "bytes_out_per_s", p->bytes_out_per_s, "errors_per_s", p->errors_per_s,
                     "latency_ms", p->latency_ms, "connections", p->connections);
}

json_t *kg_admin_history_json(kg_admin_history *h, const char *name, int seconds)
{
    series *s = history_find(h, name);
    if (!s) return NULL;
    json_t *points = json_array();
    pthread_mutex_lock(&h->lock);
    int64_t newest = s->count ? s->ring[(s->head + h->capacity - 1) % h->capacity].t_ms : 0;
    for (int k = 0; k < s->count; k++) {
        const point *p = &s->ring[(s->head + h->capacity - s->count + k) % h->capacity];
        if (seconds > 0 && newest - p->t_ms >= (int64_t)seconds * 1000) continue;
        json_array_append_new(points, point_json(p));
    }
    pthread_mutex_unlock(&h->lock);
    return json_pack("{s:s, s:f, s:o}", "name", s->name, "interval_s", h->interval_ms / 1000.0,
                     "points", points);
}

/* ---- routes ---- */

/* The "seconds" query (default: all), or -1 after setting a 400. */
static int seconds_arg(kg_admin_request *req)
{
    const char *arg = kg_admin_query(req, "seconds");
    if (!arg) return 0;
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || !*arg || *end || v < 1 || v > MAX_SECONDS) {
        kg_admin_error(req, 400, "query \"seconds\" must be an integer from 1 to %d", MAX_SECONDS);
        return -1;
    }
    return (int)v;
}

static int handle_all(void *ctx, kg_admin_request *req)
{
    kg_admin_history *h = ctx;
    int seconds = seconds_arg(req);
    if (seconds < 0) return req->status;
    json_t *all = json_array();
    int n = atomic_load_explicit(&h->n, memory_order_acquire);
    for (int i = 0; i < n; i++)
        json_array_append_new(all, kg_admin_history_json(h, h->series[i]->name, seconds));
    return kg_admin_reply(
        req, 200, json_pack("{s:f, s:o}", "interval_s", h->interval_ms / 1000.0, "vclusters", all));
}

static int handle_one(void *ctx, kg_admin_request *req)
{
    int seconds = seconds_arg(req);
    if (seconds < 0) return req->status;
    json_t *one = kg_admin_history_json(ctx, req->params[0], seconds);
    if (!one) return kg_admin_error(req, 404, "unknown vcluster \"%s\"", req->params[0]);
    return kg_admin_reply(req, 200, one);
}

static const kg_admin_route history_routes[KG_ADMIN_HISTORY_N_ROUTES] = {
    {"GET", "/v1/history", handle_all, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/vclusters/{}/history", handle_one, NULL, 0, KG_ROLE_VIEWER},
};

int kg_admin_history_routes(kg_admin_history *h, kg_admin_route out[KG_ADMIN_HISTORY_N_ROUTES])
{
    return kg_admin_bind_routes(out, history_routes, KG_ADMIN_HISTORY_N_ROUTES, h);
}
