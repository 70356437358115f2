#include "route/kg_gateway_mirror.h"

#include <stdlib.h>
#include <string.h>

#include "config/kg_config.h"
#include "engine/kg_loop.h"
#include "fleet/kg_pq.h"
#include "metrics/kg_metrics.h"
#include "route/kg_mirror.h"
#include "route/kg_offsets.h"
#include "route/kg_planned.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

/* pg_try_advisory_lock key of the fleet's mirror: the store's migration key ("kgate") + 3 (+ 1:
 * the writers' fallback lock, + 2: the auto-failover controller). */
#define MIRROR_LOCK_SQL "SELECT pg_try_advisory_lock(461295940712)"

#define API_TIMEOUT_MS 10000 /* a pass or a lag measure asked for over the API */
#define PASS_TIMEOUT_MS 10000

static int other_side(const kg_vcluster *vc)
{
    int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    return active == vc->cfg->primary ? vc->cfg->secondary : vc->cfg->primary;
}

/* One pass of VC's mirror in its current direction, bounded by TIMEOUT_MS; the records copied
 * or -1. */
static int mirror_pass(kg_gateway *gw, kg_vcluster *vc, int timeout_ms)
{
    kg_cluster *from = &gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))];
    kg_cluster *to = &gw->clusters[other_side(vc)];
    json_t *groups = vc->offsets ? kg_offsets_seen(vc->offsets, from->index) : NULL;
    int rc = kg_mirror_pass(vc->mirror, from, to, timeout_ms, groups,
                            vc->cfg->offsets_alias[from->index == vc->cfg->primary ? 0 : 1]);
    json_decref(groups);
    return rc;
}

/* ---------------------------------------------------------------- one mirror per fleet */

/* With a PostgreSQL state every instance of the fleet runs this thread, and exactly one copies:
 * the one holding the mirror's advisory lock on a connection of its own. The lock goes with the
 * session: an instance that dies (or is cut off from the database for longer than
 * idle_session_timeout) frees it, and another takes over at the positions the first stored in
 * the shared store. */
typedef struct mirror_lock {
    const char *conninfo; /* NULL: SQLite, this instance alone mirrors */
    PGconn *conn;
    int held, logged_error;
    kg_gauge *gauge; /* kgate_mirror_active */
} mirror_lock;

static void lock_set(mirror_lock *lk, kg_gateway *gw, int held)
{
    if (held != lk->held)
        kg_info("mirror: instance %s %s", gw->cfg->instance_name,
                held ? "now runs the embedded mirror" : "no longer runs the embedded mirror");
    lk->held = held;
    kg_gauge_set(lk->gauge, held);
}

static void lock_error(mirror_lock *lk, kg_gateway *gw, const char *what, const char *err)
{
    if (!lk->logged_error) kg_warn("mirror: %s: %s", what, err);
    lk->logged_error = 1;
    if (lk->conn) PQfinish(lk->conn); /* the lock goes with the session */
    lk->conn = NULL;
    lock_set(lk, gw, 0);
}

/* 1 when this instance mirrors now (asking the database each round: a connection that broke
 * is noticed before the next pass), else 0. */
static int lock_take(mirror_lock *lk, kg_gateway *gw)
{
    if (!lk->conninfo) {
        kg_gauge_set(lk->gauge, 1);
        return 1;
    }
    char err[512], sql[64];
    uint64_t deadline = kg_now_us() + 3000000u;
    if (!lk->conn) {
        lk->conn = kg_pq_connect(lk->conninfo, deadline, err, sizeof(err));
        if (!lk->conn) {
            lock_error(lk, gw, "connecting to the state store", err);
            return 0;
        }
        snprintf(sql, sizeof(sql), "SET idle_session_timeout = %d", 2 * gw->cfg->lease_ms + 5000);
        PGresult *r = kg_pq_run(&lk->conn, sql, 0, NULL, deadline, err, sizeof(err));
        PQclear(r);
        if (!r) {
            lock_error(lk, gw, "setting up the mirror's connection", err);
            return 0;
        }
    }
    /* Held already: the query only proves the session (and so the lock) is still there. */
    PGresult *r = kg_pq_run(&lk->conn, lk->held ? "SELECT true" : MIRROR_LOCK_SQL, 0, NULL,
                            deadline, err, sizeof(err));
    if (!r) {
        lock_error(lk, gw, "taking the mirror's lock", err);
        return 0;
    }
    int got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    lk->logged_error = 0;
    lock_set(lk, gw, got);
    return got;
}

/* A pass per virtual cluster with a mirror, from its active cluster to the other one, when the
 * active one is up (with the other down it only updates the lag) and this instance is the
 * fleet's mirror. The direction follows the switches. */
void *kg_gateway_mirror_main(void *arg)
{
    kg_gateway *gw = arg;
    const char *backend = kg_store_backend_name(gw->store);
    mirror_lock lk = {
        .conninfo =
            backend && strcmp(backend, "postgres") == 0 ? kg_store_pg_conninfo(gw->store) : NULL,
        .gauge = kg_metrics_gauge(gw->metrics, "kgate_mirror_active",
                                  "1 when this instance runs the embedded mirror (one instance "
                                  "of a fleet does, the holder of its lock)",
                                  "")};
    while (!atomic_load(&gw->stopping)) {
        int interval = 60000, owner = lock_take(&lk, gw), down = 0;
        const kg_vc_table *t = kg_gateway_vclusters(gw);
        for (int i = 0; i < t->n && !atomic_load(&gw->stopping); i++) {
            kg_vcluster *vc = t->v[i];
            if (!vc->mirror) continue;
            kg_mirror_set_owner(vc->mirror, owner);
            if (vc->cfg->mirror_interval_ms < interval) interval = vc->cfg->mirror_interval_ms;
            int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
            if (owner && atomic_load(&gw->clusters[active].up))
                mirror_pass(gw, vc, PASS_TIMEOUT_MS);
            else if (owner) /* not probed up yet (a start), or down: look again soon */
                down = 1;
            /* A planned switch holds (in a fleet, maybe coordinated by another instance, which
             * waits for the positions this one stores): passes back to back until it ends. */
            if (owner && kg_planned_holding(vc->planned)) interval = 1;
        }
        if (down && gw->cfg->probe_interval_ms < interval) interval = gw->cfg->probe_interval_ms;
        kg_gateway_background_sleep(gw, interval);
    }
    if (lk.conn) PQfinish(lk.conn);
    return NULL;
}

/* "a,b,c" into T (names point into COPY, which the caller frees); NULL or "": every topic. */
static int split_topics(const char *csv, char **copy, const char ***names, kg_cluster_topics *t)
{
    *t = (kg_cluster_topics){-1, NULL};
    *copy = NULL;
    *names = NULL;
    if (!csv || !*csv) return 0;
    size_t n = 1;
    for (const char *c = csv; *c; c++)
        n += *c == ',';
    if (!(*copy = strdup(csv)) || !(*names = calloc(n, sizeof(**names)))) return -1;
    int count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(*copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        (*names)[count++] = tok;
    *t = (kg_cluster_topics){count, *names};
    return 0;
}

int kg_gateway_mirror(kg_gateway *gw, const char *vcluster, int pass, const char *topics,
                      json_t **result)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    const char *why = !vc           ? "unknown vcluster"
                      : !vc->mirror ? "the vcluster has no mirror (mirror.topics)"
                      : !gw->mirror_started
                          ? "the mirror does not run on this instance (see the log at start)"
                          : NULL;
    if (why) {
        *result = json_pack("{s:s}", "error", why);
        return vc ? 409 : 404;
    }
    if (pass && !kg_mirror_owner(vc->mirror)) {
        *result = json_pack("{s:s}", "error",
                            "another instance of the fleet runs the mirror (kgate_mirror_active)");
        return 409;
    }
    int copied = pass ? mirror_pass(gw, vc, API_TIMEOUT_MS) : 0;
    kg_cluster *from = &gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))];
    kg_cluster *to = &gw->clusters[other_side(vc)];
    char err[512] = "out of memory", *copy = NULL;
    const char **names = NULL;
    kg_cluster_topics t;
    *result = NULL;
    if (copied >= 0 && split_topics(topics, &copy, &names, &t) == 0)
        *result = kg_mirror_lag(vc->mirror, from, to, &t, API_TIMEOUT_MS, err, sizeof(err));
    free(copy);
    free(names);
    if (!*result) {
        *result = json_pack("{s:s}", "error",
                            copied < 0 ? "the pass stopped on an error (see the log and "
                                         "kgate_mirror_errors_total); nothing was skipped"
                                       : err);
        return 503;
    }
    json_object_set_new(*result, "vcluster", json_string(vc->cfg->name));
    json_object_set_new(*result, "mirroring_here", json_boolean(kg_mirror_owner(vc->mirror)));
    if (pass) json_object_set_new(*result, "copied", json_integer(copied));
    return 200;
}

int kg_gateway_replication(kg_gateway *gw, const char *vcluster, json_t **result)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    char err[512] = "";
    *result = vc ? kg_planned_lag(gw, vc, err, sizeof(err)) : NULL;
    if (*result) {
        json_object_set_new(*result, "vcluster", json_string(vc->cfg->name));
        return 200;
    }
    int measurable = vc && (vc->mirror || vc->cfg->replication_kind == KG_REPLICATION_MM2);
    *result = json_pack("{s:s}", "error", vc ? err : "unknown vcluster");
    return !vc ? 404 : measurable ? 503 : 409;
}
