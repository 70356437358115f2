/* kg_admin_history — the last hour of each virtual cluster, kept in memory for the console's
 * charts (GET /v1/history, GET /v1/vclusters/{name}/history; docs/api.md).
 *
 * A thread reads every series' cumulative counters once per interval (5 s) and keeps the rates
 * between two reads in a ring (720 points: one hour). Nothing is stored: a restart starts an
 * empty history, and Prometheus remains the place for longer ones. The module knows nothing of
 * the gateway: the owner passes a callback that reads one series' counters. */
#ifndef KG_ADMIN_HISTORY_H
#define KG_ADMIN_HISTORY_H

#include <stdint.h>

#include "admin/kg_admin.h"

#define KG_ADMIN_HISTORY_INTERVAL_MS 5000
#define KG_ADMIN_HISTORY_POINTS 720
#define KG_ADMIN_HISTORY_N_ROUTES 2

/* One series' counters as read at one instant: cumulative ones (rates come from differences)
 * and the open connections (a level). */
typedef struct kg_admin_counters {
    uint64_t requests;
    uint64_t bytes_in, bytes_out;
    uint64_t errors;        /* requests left unanswered + error results seen */
    uint64_t latency_count; /* answered requests timed */
    double latency_sum_s;   /* their total latency */
    double connections;     /* open client connections now */
} kg_admin_counters;

/* Reads series NAME's counters into OUT; 0, or -1 when it cannot (the point is skipped). */
typedef int (*kg_admin_history_read)(void *ctx, const char *name, kg_admin_counters *out);

typedef struct kg_admin_history kg_admin_history;

/* A history of the N series NAMES (copied), sampled every INTERVAL_MS (<= 0: the default),
 * keeping CAPACITY points each (<= 0: the default); nothing samples it until
 * kg_admin_history_run. NULL when out of memory. */
kg_admin_history *kg_admin_history_new(const char *const *names, int n, int interval_ms,
                                       int capacity, kg_admin_history_read read, void *ctx);
/* Adds series NAME (copied) when H has none of that name; 0, or -1 when out of memory or
 * KG_ADMIN_HISTORY_MAX_SERIES are there. Any thread, while the sampler and the routes run. */
#define KG_ADMIN_HISTORY_MAX_SERIES 1024
int kg_admin_history_add(kg_admin_history *h, const char *name);
/* Starts the thread that samples H every interval, the first time at once. -1 when it cannot
 * start. */
int kg_admin_history_run(kg_admin_history *h);
/* Stops the thread (if it runs) and frees (H may be NULL). Stop the admin API first: its routes
 * use H. */
void kg_admin_history_stop(kg_admin_history *h);
/* Takes one sample at NOW_MS (Unix ms): what the thread does every interval. */
void kg_admin_history_tick(kg_admin_history *h, int64_t now_ms);
/* {"name", "interval_s", "points": [{"t", "requests_per_s", ...}]} for series NAME over the last
 * SECONDS (<= 0: all kept), or NULL when there is no such series. */
json_t *kg_admin_history_json(kg_admin_history *h, const char *name, int seconds);

/* Fills OUT with the routes serving H (GET /v1/history, GET /v1/vclusters/{}/history). */
int kg_admin_history_routes(kg_admin_history *h, kg_admin_route out[KG_ADMIN_HISTORY_N_ROUTES]);

#endif
