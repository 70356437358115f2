/* kg_experiment — chaos experiments: chaos rules wrapped with a hypothesis, a baseline, a
 * duration, expectations and abort criteria, measured by kgate itself (docs/experiments.md).
 *
 * Lifecycle: pending -> baseline -> running -> completed | aborted | stopped (| interrupted when
 * kgate stopped or restarted while it ran). The baseline phase measures the virtual cluster
 * before anything is injected; the running phase adds the drill's rules (each living "for" the
 * remaining duration, so they expire by themselves if kgate dies), checks the abort criteria
 * every tick over a sliding window, and keeps per-minute records. At the end the rules are
 * removed, the expectations evaluated, and the record (a state store document of kind
 * "experiment") becomes the source of the six-field report.
 *
 * The module does not know the gateway: it observes a virtual cluster through
 * kg_experiment_env (cumulative counters, response inspection), so unit tests can drive it with
 * fake counters and a fake clock (every time it uses comes from kg_experiments_tick).
 *
 * Thread-safety: tick runs on the gateway's housekeeping thread, the admin routes on the admin
 * threads; one lock serializes them.
 */
#ifndef KG_EXPERIMENT_H
#define KG_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "route/kg_vcmetrics.h"

typedef struct kg_chaos kg_chaos;
typedef struct kg_store kg_store;
typedef struct kg_experiments kg_experiments;

/* How experiments observe a virtual cluster. SAMPLE fills the cumulative counters of VCLUSTER
 * and returns 0, or -1 when there is no such virtual cluster. INSPECT turns response inspection
 * (which makes the error counters move) on (ON 1) or off (ON 0); calls are counted, every "on"
 * is matched by one "off". */
typedef struct kg_experiment_env {
    void *ctx;
    int (*sample)(void *ctx, const char *vcluster, kg_vc_sample *out);
    int (*inspect)(void *ctx, const char *vcluster, int on);
} kg_experiment_env;

/* CHAOS, STORE and ENV (copied) must outlive the returned object; STORE is required (the
 * records live there). Experiments the store still shows as pending/baseline/running (kgate
 * died while they ran) are marked "interrupted" and their rules removed. NULL on failure. */
kg_experiments *kg_experiments_new(kg_chaos *chaos, kg_store *store, const kg_experiment_env *env);
/* Advances every active experiment; the gateway calls it about once a second. NOW_UNIX_MS is
 * the only clock experiments use for their phases, windows and records. Never blocks on an
 * admin request: when one holds the lock, this second is skipped. */
void kg_experiments_tick(kg_experiments *xs, uint64_t now_unix_ms);
/* Active experiments end as "interrupted" (rules removed, inspection off, audit entry): call
 * it after the last tick and the last admin request, while CHAOS, STORE and ENV still work. */
void kg_experiments_free(kg_experiments *xs);

/* ---- the operations behind the routes (HTTP-style status; *OUT a new reference or NULL) ---- */

/* 201 created (pending until the next tick), 400 bad drill (ERR names the field), 409 another
 * experiment is active on the same virtual cluster, 500 store failure. */
int kg_experiments_create(kg_experiments *xs, json_t *drill, const char *actor, json_t **out,
                          char *err, size_t errlen);
/* {"experiments": [{id, name, vcluster, status, created_at, ended_at, ...}]} in id order. */
json_t *kg_experiments_list(kg_experiments *xs);
/* The record; active experiments also carry "live" with the last RECENT_SECONDS per-second
 * observations. NULL when unknown. */
json_t *kg_experiments_get(kg_experiments *xs, const char *id, int recent_seconds);
/* 200 stopped (rules removed), 404 unknown, 409 already ended. */
int kg_experiments_stop(kg_experiments *xs, const char *id, const char *actor, json_t **out,
                        char *err, size_t errlen);
/* PATCH {"remediation": TEXT|null, "retest": {"experiment": ID, "result": TEXT}|null}: 200,
 * 400 (ERR names the field), 404 unknown, 409 still active. */
int kg_experiments_annotate(kg_experiments *xs, const char *id, json_t *patch, const char *actor,
                            json_t **out, char *err, size_t errlen);
/* The six-field report as JSON; NULL when unknown. */
json_t *kg_experiments_report(kg_experiments *xs, const char *id);

/* Markdown rendering of a report as kg_experiments_report returns it (the CLI renders the JSON
 * it fetched with the same function). malloc'd; NULL when out of memory. */
char *kg_experiment_report_md(const json_t *report);

#endif
