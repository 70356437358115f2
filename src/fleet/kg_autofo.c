/* kg_autofo — see kg_autofo.h. */
#include "fleet/kg_autofo.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "fleet/kg_fleet.h"
#include "fleet/kg_pq.h"
#include "metrics/kg_metrics.h"
#include "route/kg_gateway.h"
#include "state/kg_store.h"
#include "util/kg_log.h"
#include "util/kg_time.h"

/* pg_try_advisory_lock key of the controller: the store's migration key ("kgate") + 2 (+ 1 is
 * the writers' fallback lock, state/kg_store_pg.c). */
#define AUTOFO_LOCK_SQL "SELECT pg_try_advisory_lock(461295940711)"
#define AUTOFO_DOC_KIND "auto_failover" /* the last automatic switch of each vcluster */
#define AUTOFO_ACTOR "auto-failover"

/* The live instances' verdicts, each aged to now with the database's clock. */
static const char SQL_VERDICTS[] =
    "SELECT name, probe::text, GREATEST((extract(epoch FROM now() - renewed_at) * 1000)::bigint,"
    " 0) FROM kg_instances WHERE lease_until > now() ORDER BY name";

struct kg_autofo {
    kg_gateway *gw;
    char *conninfo; /* NULL: SQLite, this instance alone */
    PGconn *conn;   /* holds the controller lock while open */
    uint64_t period_us;

    pthread_t thread;
    int thread_started;
    pthread_mutex_t lock; /* guards stopping's wakeup and `last` */
    pthread_cond_t cond;
    int stopping;
    json_t *last; /* {"<vc>": summary of its last evaluation} */
    int logged_error;

    kg_gauge *controller_gauge;
};

/* ---------------------------------------------------------------- the decision */

static const char *verdict_text(json_t *v, char *buf, size_t len)
{
    if (!json_is_object(v)) return "no verdict";
    if (json_is_true(json_object_get(v, "up"))) return "up";
    snprintf(buf, len, "down %" PRId64 " ms",
             (int64_t)json_integer_value(json_object_get(v, "for_ms")));
    return buf;
}

static void append_names(char *out, size_t len, json_t *names)
{
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", i ? ", " : "", json_string_value(n));
    }
}

int kg_autofo_decide(json_t *verdicts, const char *active, const char *target, int64_t after_ms,
                     json_t **summary, char *reason, size_t reason_len)
{
    size_t live = json_array_size(verdicts);
    size_t needed = live / 2 + 1;
    json_t *down = json_array(), *up = json_array(), *seen = json_object();
    char each[768] = "";
    size_t i;
    json_t *inst;
    json_array_foreach(verdicts, i, inst)
    {
        const char *name = json_string_value(json_object_get(inst, "name"));
        json_t *clusters = json_object_get(inst, "clusters");
        json_t *a = json_object_get(clusters, active), *t = json_object_get(clusters, target);
        if (!name) continue;
        if (json_is_object(a) && json_is_false(json_object_get(a, "up")) &&
            json_integer_value(json_object_get(a, "for_ms")) >= after_ms)
            json_array_append_new(down, json_string(name));
        if (json_is_object(t) && json_is_true(json_object_get(t, "up")))
            json_array_append_new(up, json_string(name));
        json_t *pair = json_object();
        if (a) json_object_set(pair, active, a);
        if (t) json_object_set(pair, target, t);
        json_object_set_new(seen, name, pair);
        char b1[48], b2[48];
        size_t used = strlen(each);
        snprintf(each + used, sizeof(each) - used, "%s%s: %s %s, %s %s", i ? "; " : "", name,
                 active, verdict_text(a, b1, sizeof(b1)), target, verdict_text(t, b2, sizeof(b2)));
    }
    int go = live > 0 && json_array_size(down) >= needed && json_array_size(up) >= needed;
    char verdict[256];
    if (go)
        snprintf(verdict, sizeof(verdict), "fail over: %s down on a majority, %s up on a majority",
                 active, target);
    else if (json_array_size(down) < needed)
        snprintf(verdict, sizeof(verdict),
                 "no failover: %s down for %" PRId64
                 " ms on %zu of %zu live instances (%zu needed)",
                 active, after_ms, json_array_size(down), live, needed);
    else
        snprintf(verdict, sizeof(verdict),
                 "no failover: %s up on only %zu of %zu live instances (%zu needed)", target,
                 json_array_size(up), live, needed);
    char down_names[256] = "", up_names[256] = "";
    append_names(down_names, sizeof(down_names), down);
    append_names(up_names, sizeof(up_names), up);
    snprintf(reason, reason_len,
             "automatic failover: cluster %s down for at least %" PRId64
             " ms on %zu of %zu live instances (%s), %s up on %zu (%s); verdicts: %s",
             active, after_ms, json_array_size(down), live, down_names, target, json_array_size(up),
             up_names, each);
    *summary = json_pack("{s:I, s:I, s:o, s:o, s:o, s:s, s:I}", "live", (json_int_t)live, "needed",
                         (json_int_t)needed, "active_down", down, "target_up", up, "verdicts", seen,
                         "verdict", verdict, "after_ms", (json_int_t)after_ms);
    return go;
}

/* ---------------------------------------------------------------- verdicts */

static json_t *local_clusters(kg_gateway *gw)
{
    json_t *clusters = json_object();
    uint64_t now = kg_now_us();
    int n = kg_gateway_n_clusters(gw);
    for (int i = 0; i < n; i++) {
        kg_cluster *c = &gw->clusters[i];
        if (atomic_load(&c->retired)) continue;
        uint64_t since = atomic_load(&c->state_since_us);
        if (since == 0) continue; /* not probed yet: no verdict */
        json_object_set_new(clusters, c->cfg->name,
                            json_pack("{s:b, s:I}", "up", atomic_load(&c->up), "for_ms",
                                      (json_int_t)((now > since ? now - since : 0) / 1000)));
    }
    return clusters;
}

char *kg_autofo_probe_text(kg_gateway *gw)
{
    json_t *j = json_pack("{s:o, s:b}", "clusters", local_clusters(gw), "controller",
                          atomic_load(&gw->autofo_controller));
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

/* The store's rows of the live instances as kg_autofo_decide wants them; NULL on error. */
static json_t *store_verdicts(kg_autofo *af, uint64_t deadline_us, char *err, size_t errlen)
{
    PGresult *r = kg_pq_run(&af->conn, SQL_VERDICTS, 0, NULL, deadline_us, err, errlen);
    if (!r) return NULL;
    json_t *out = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *probe = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        json_int_t age = (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10);
        json_t *clusters = json_object_get(probe, "clusters");
        const char *key;
        json_t *v;
        json_object_foreach(clusters, key, v)
        {
            json_t *ms = json_object_get(v, "for_ms");
            if (json_is_integer(ms)) json_integer_set(ms, json_integer_value(ms) + age);
        }
        /* An instance before its first renewal has no verdicts yet: an empty object. */
        json_array_append_new(
            out, json_pack("{s:s, s:o, s:I}", "name", PQgetvalue(r, i, 0), "clusters",
                           clusters ? json_incref(clusters) : json_object(), "report_age_ms", age));
        json_decref(probe);
    }
    PQclear(r);
    return out;
}

/* ---------------------------------------------------------------- the controller */

static void set_controller(kg_autofo *af, int on)
{
    if (atomic_exchange(&af->gw->autofo_controller, on) == on) return;
    kg_gauge_set(af->controller_gauge, on);
    if (on)
        kg_info("auto-failover: instance %s is the controller", af->gw->cfg->instance_name);
    else
        kg_warn("auto-failover: instance %s is no longer the controller",
                af->gw->cfg->instance_name);
}

static void drop_conn(kg_autofo *af)
{
    if (af->conn) PQfinish(af->conn); /* the lock goes with the session */
    af->conn = NULL;
    set_controller(af, 0);
}

static void note_error(kg_autofo *af, const char *what, const char *err)
{
    if (!af->logged_error) kg_warn("auto-failover: %s: %s", what, err);
    af->logged_error = 1;
}

/* Connects (the session ends itself when its client stops talking: a controller cut off from
 * the database frees the lock for another instance within idle_session_timeout) and tries to
 * take the lock. 1 controller, 0 not, -1 error. */
static int take_lock(kg_autofo *af, uint64_t deadline_us)
{
    char err[512], sql[160];
    if (!af->conn) {
        af->conn = kg_pq_connect(af->conninfo, deadline_us, err, sizeof(err));
        if (!af->conn) {
            note_error(af, "connecting to the state store", err);
            return -1;
        }
        /* It asks every period; a switch it runs (parity check, acks) may hold it a little. */
        int idle_ms = 2 * af->gw->cfg->lease_ms + af->gw->cfg->ack_timeout_ms + 5000;
        snprintf(sql, sizeof(sql), "SET idle_session_timeout = %d", idle_ms);
        PGresult *r = kg_pq_run(&af->conn, sql, 0, NULL, deadline_us, err, sizeof(err));
        PQclear(r);
        if (!r) {
            note_error(af, "setting up the controller connection", err);
            drop_conn(af);
            return -1;
        }
    }
    if (atomic_load(&af->gw->autofo_controller)) return 1;
    PGresult *r = kg_pq_run(&af->conn, AUTOFO_LOCK_SQL, 0, NULL, deadline_us, err, sizeof(err));
    if (!r) {
        note_error(af, "taking the controller lock", err);
        drop_conn(af);
        return -1;
    }
    int got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    af->logged_error = 0;
    set_controller(af, got);
    return got;
}

static void set_last(kg_autofo *af, kg_vcluster *vc, json_t *summary)
{
    const char *verdict = json_string_value(json_object_get(summary, "verdict"));
    json_object_set_new(summary, "checked_unix_ms", json_integer((json_int_t)time(NULL) * 1000));
    pthread_mutex_lock(&af->lock);
    /* Logged when it changes, not every round. */
    json_t *before = json_object_get(json_object_get(af->last, vc->cfg->name), "verdict");
    if (verdict && (!before || strcmp(json_string_value(before), verdict) != 0))
        kg_info("auto-failover: vcluster %s: %s", vc->cfg->name, verdict);
    json_object_set_new(af->last, vc->cfg->name, summary);
    pthread_mutex_unlock(&af->lock);
}

/* When the last automatic switch of VC was (unix ms, from the store: any controller's), 0 when
 * never, -1 when the store cannot say (then nothing is switched). */
static int64_t last_auto_ms(kg_autofo *af, kg_vcluster *vc)
{
    int found = 0;
    json_t *doc = kg_store_get_doc(af->gw->store, AUTOFO_DOC_KIND, vc->cfg->name, &found);
    if (found < 0) return -1;
    int64_t at = doc ? (int64_t)json_integer_value(json_object_get(doc, "at_unix_ms")) : 0;
    json_decref(doc);
    return at;
}

/* kgate_auto_failovers_total{vcluster}: registered on first use (the registry returns the same
 * counter for the same labels), so a vcluster a reload added has one too. */
static kg_counter *switches_counter(kg_gateway *gw, kg_vcluster *vc)
{
    char labels[256];
    if (kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->cfg->name, NULL) < 0)
        return NULL;
    return kg_metrics_counter(gw->metrics, "kgate_auto_failovers_total",
                              "Automatic failovers this instance made as the controller.", labels);
}

static void do_switch(kg_autofo *af, kg_vcluster *vc, json_t *summary, const char *reason)
{
    kg_gateway *gw = af->gw;
    const char *from = gw->clusters[vc->cfg->primary].cfg->name;
    const char *to = gw->clusters[vc->cfg->secondary].cfg->name;
    kg_switch_request req = {.vcluster = vc->cfg->name,
                             .to = to,
                             .reason = reason,
                             .actor = AUTOFO_ACTOR,
                             .automatic = 1,
                             .evidence = summary};
    json_t *result = NULL;
    int status = kg_gateway_switch(gw, &req, &result);
    int changed = status == 200 && json_is_true(json_object_get(result, "changed"));
    if (changed) {
        json_int_t epoch = json_integer_value(json_object_get(result, "epoch"));
        json_t *doc = json_pack("{s:I, s:I, s:s, s:s}", "at_unix_ms", (json_int_t)kg_time_now_ms(),
                                "epoch", epoch, "from", from, "to", to);
        if (kg_store_put_doc(gw->store, AUTOFO_DOC_KIND, vc->cfg->name, doc) != 0)
            kg_warn("auto-failover: vcluster %s: cannot record the switch time (min_interval "
                    "is not enforced for it)",
                    vc->cfg->name);
        json_decref(doc);
        kg_counter_inc(switches_counter(gw, vc));
        kg_warn("auto-failover: vcluster %s switched %s -> %s (epoch %lld): %s", vc->cfg->name,
                from, to, (long long)epoch, reason);
        char verdict[128];
        snprintf(verdict, sizeof(verdict), "switched %s -> %s at epoch %lld", from, to,
                 (long long)epoch);
        json_object_set_new(summary, "verdict", json_string(verdict));
    } else {
        const char *why = json_string_value(json_object_get(result, "error"));
        char verdict[256];
        snprintf(verdict, sizeof(verdict), "switch not made (%d): %s", status,
                 why ? why : "already active");
        json_object_set_new(summary, "verdict", json_string(verdict));
    }
    json_decref(result);
}

static void evaluate(kg_autofo *af, kg_vcluster *vc, json_t *verdicts)
{
    kg_gateway *gw = af->gw;
    const kg_autofo_cfg *c = &vc->cfg->auto_failover;
    int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    if (active != vc->cfg->primary) {
        set_last(af, vc,
                 json_pack("{s:s}", "verdict",
                           "the secondary is active: an automatic switch never goes back"));
        return;
    }
    json_t *summary = NULL;
    char reason[1536];
    int go = kg_autofo_decide(verdicts, gw->clusters[vc->cfg->primary].cfg->name,
                              gw->clusters[vc->cfg->secondary].cfg->name, c->after_ms, &summary,
                              reason, sizeof(reason));
    if (go) {
        int64_t last = last_auto_ms(af, vc), now = kg_time_now_ms();
        char verdict[200];
        if (last < 0) {
            snprintf(verdict, sizeof(verdict), "no failover: the state store cannot be read");
            go = 0;
        } else if (last > 0 && now - last < c->min_interval_ms) {
            snprintf(verdict, sizeof(verdict),
                     "rate limited: the last automatic failover was %lld ms ago (min_interval "
                     "%lld ms)",
                     (long long)(now - last), (long long)c->min_interval_ms);
            go = 0;
        }
        if (!go) json_object_set_new(summary, "verdict", json_string(verdict));
    }
    if (go) do_switch(af, vc, summary, reason);
    set_last(af, vc, summary);
}

/* One round: who decides, on what, then every enabled vcluster. */
static void autofo_round(kg_autofo *af)
{
    kg_gateway *gw = af->gw;
    json_t *verdicts = NULL;
    if (!af->conninfo) {
        /* SQLite: this instance alone is the fleet. */
        set_controller(af, 1);
        verdicts = json_pack("[{s:s, s:o}]", "name", gw->cfg->instance_name, "clusters",
                             local_clusters(gw));
    } else {
        /* Fenced: it cannot know the fleet's state; another instance takes over. */
        if (kg_gateway_state_lost(gw)) {
            if (af->conn) drop_conn(af);
            return;
        }
        uint64_t deadline = kg_now_us() + af->period_us;
        if (take_lock(af, deadline) != 1) return;
        char err[512];
        verdicts = store_verdicts(af, deadline, err, sizeof(err));
        if (!verdicts) {
            note_error(af, "reading the verdicts", err);
            drop_conn(af);
            return;
        }
    }
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++)
        if (t->v[i]->cfg->auto_failover.enabled) evaluate(af, t->v[i], verdicts);
    json_decref(verdicts);
}

static void *autofo_main(void *arg)
{
    kg_autofo *af = arg;
    pthread_mutex_lock(&af->lock);
    while (!af->stopping) {
        pthread_mutex_unlock(&af->lock);
        autofo_round(af);
        pthread_mutex_lock(&af->lock);
        if (af->stopping) break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + af->period_us * 1000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&af->cond, &af->lock, &until);
    }
    pthread_mutex_unlock(&af->lock);
    return NULL;
}

/* ---------------------------------------------------------------- start / stop / status */

static void autofo_metrics(kg_autofo *af)
{
    kg_gateway *gw = af->gw;
    af->controller_gauge = kg_metrics_gauge(
        gw->metrics, "kgate_auto_failover_controller",
        "1 while this instance is the fleet's automatic failover controller, else 0.", "");
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++)
        if (t->v[i]->cfg->auto_failover.enabled) switches_counter(gw, t->v[i]); /* shown as 0 */
}

kg_autofo *kg_autofo_start(kg_gateway *gw, const char *conninfo)
{
    int any = 0;
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++)
        any |= t->v[i]->cfg->auto_failover.enabled;
    if (!any) return NULL;
    kg_autofo *af = calloc(1, sizeof(*af));
    if (!af) return NULL;
    af->gw = gw;
    af->conninfo = conninfo ? strdup(conninfo) : NULL;
    af->last = json_object();
    /* With a fleet, as often as verdicts reach the store (each renewal); alone, each probe. */
    af->period_us =
        (uint64_t)(conninfo ? gw->cfg->lease_ms / 3 : gw->cfg->probe_interval_ms) * 1000u;
    pthread_mutex_init(&af->lock, NULL);
    pthread_cond_init(&af->cond, NULL);
    autofo_metrics(af);
    af->thread_started = pthread_create(&af->thread, NULL, autofo_main, af) == 0;
    if (!af->thread_started) {
        kg_error("auto-failover: cannot start its thread: automatic failover is off");
        kg_autofo_stop(af);
        return NULL;
    }
    kg_info("auto-failover: on for %s", af->conninfo ? "this fleet" : "this instance (SQLite)");
    return af;
}

void kg_autofo_stop(kg_autofo *af)
{
    if (!af) return;
    pthread_mutex_lock(&af->lock);
    af->stopping = 1;
    pthread_cond_broadcast(&af->cond);
    pthread_mutex_unlock(&af->lock);
    if (af->thread_started) pthread_join(af->thread, NULL);
    if (af->conn) PQfinish(af->conn);
    atomic_store(&af->gw->autofo_controller, 0);
    json_decref(af->last);
    pthread_mutex_destroy(&af->lock);
    pthread_cond_destroy(&af->cond);
    if (af->conninfo) explicit_bzero(af->conninfo, strlen(af->conninfo));
    free(af->conninfo);
    free(af);
}

json_t *kg_autofo_status(kg_autofo *af)
{
    kg_gateway *gw = af->gw;
    json_t *vcs = json_object();
    pthread_mutex_lock(&af->lock);
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++) {
        const kg_vcluster_cfg *vc = t->v[i]->cfg;
        json_t *last = json_object_get(af->last, vc->name);
        json_object_set_new(vcs, vc->name,
                            json_pack("{s:b, s:I, s:I, s:O?}", "enabled", vc->auto_failover.enabled,
                                      "after_ms", (json_int_t)vc->auto_failover.after_ms,
                                      "min_interval_ms",
                                      (json_int_t)vc->auto_failover.min_interval_ms, "last", last));
    }
    pthread_mutex_unlock(&af->lock);
    return json_pack("{s:b, s:o}", "controller", atomic_load(&gw->autofo_controller), "vclusters",
                     vcs);
}
