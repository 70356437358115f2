/* kg_fleet — see kg_fleet.h. */
#include "fleet/kg_fleet.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config/kg_config.h"
#include "fleet/kg_autofo.h"
#include "fleet/kg_fleet_planned.h"
#include "fleet/kg_pq.h"
#include "engine/kg_loop.h"
#include "metrics/kg_metrics.h"
#include "route/kg_gateway.h"
#include "util/kg_log.h"

#define FLEET_SWITCH_CHANNEL "kgate_switch"
#define FLEET_ACK_CHANNEL "kgate_ack"
#define FLEET_MAX_STATES 8       /* distinct kg_instances.state values with a gauge */
#define FLEET_ACK_POLL_US 100000 /* the ack wait re-reads this often even without a NOTIFY */
#define FLEET_RESYNC_US 10000    /* a vcluster busy with a local switch is tried again after */

/* The store's table of virtual cluster states (state/kg_store_pg.c). */
static const char SQL_READ_STATES[] = "SELECT name, active, epoch FROM vcluster_state";

static const char SQL_REGISTER[] =
    "INSERT INTO kg_instances AS i (name, version, started_at, lease_until, renewed_at, state, "
    "epochs, connections, admin_url) VALUES ($1, $2, clock_timestamp(), now() + $3::bigint * "
    "interval '1 millisecond', now(), 'serving', $4::jsonb, $5::integer, $6) "
    "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, started_at = "
    "EXCLUDED.started_at, lease_until = EXCLUDED.lease_until, renewed_at = EXCLUDED.renewed_at, "
    "state = EXCLUDED.state, epochs = EXCLUDED.epochs, connections = EXCLUDED.connections, "
    "admin_url = EXCLUDED.admin_url WHERE i.lease_until <= now() RETURNING started_at::text";

/* Who holds NAME, for the refusal. */
static const char SQL_HOLDER[] =
    "SELECT COALESCE(admin_url, ''), version, started_at::text, "
    "(extract(epoch FROM lease_until - now()) * 1000)::bigint FROM kg_instances WHERE name = $1";

/* started_at is the registration's token: a row another instance re-registered under the same
 * name (after this one's lease expired) is not renewed by this one. */
static const char SQL_RENEW[] =
    "UPDATE kg_instances SET lease_until = now() + $3::bigint * interval '1 millisecond', "
    "renewed_at = now(), state = $4, epochs = $5::jsonb, connections = $6::integer, "
    "probe = $7::jsonb "
    "WHERE name = $1 AND started_at = $2::timestamptz RETURNING 1, "
    "(SELECT body FROM docs WHERE kind = '" KG_FLEET_DRAIN_KIND "' AND id = $1)";

/* A drain request handled: gone, unless a newer one replaced it meanwhile. */
static const char SQL_DRAIN_DONE[] =
    "DELETE FROM docs WHERE kind = '" KG_FLEET_DRAIN_KIND "' AND id = $1 AND body = $2";

static const char SQL_ACK[] =
    "WITH u AS (UPDATE kg_instances SET epochs = $3::jsonb WHERE name = $1 AND started_at = "
    "$2::timestamptz RETURNING name) SELECT pg_notify('" FLEET_ACK_CHANNEL "', name) FROM u";

static const char SQL_UNREGISTER[] =
    "DELETE FROM kg_instances WHERE name = $1 AND started_at = $2::timestamptz";

static const char SQL_INSTANCES[] =
    "SELECT name, version, state, epochs::text, connections, COALESCE(admin_url, ''), "
    "(extract(epoch FROM now() - renewed_at) * 1000)::bigint, lease_until > now(), probe::text "
    "FROM kg_instances ORDER BY name";

static const char SQL_ACKS[] =
    "SELECT name, COALESCE((epochs ->> $1)::bigint, 0) >= $2::bigint FROM kg_instances "
    "WHERE lease_until > now() ORDER BY name";

struct kg_fleet {
    kg_gateway *gw;
    const kg_config *cfg;
    char *conninfo;
    char started_at[64]; /* the registration token (kg_instances.started_at as text) */
    char admin_url[KG_HOST_MAX + 16];
    uint64_t period_us; /* renewal interval: lease / 3 */

    pthread_t thread;
    int thread_started;
    int wake_fd;
    atomic_int stopping;
    PGconn *conn; /* the thread's: LISTEN kgate_switch, lease, acks */
    char last_acked[4096];
    int resync;       /* a vcluster was busy with a local switch: sync again shortly */
    int logged_error; /* the current outage was logged once */

    /* The lease: on the local monotonic clock. */
    atomic_int lease_ok;
    _Atomic uint64_t lease_deadline_us;
    uint64_t lost_at_us;

    pthread_mutex_t lock; /* guards what the admin thread reads: */
    char lost_reason[512];
    json_t *instances; /* SQL_INSTANCES as of the last renewal */

    pthread_mutex_t api_lock; /* the admin thread's connection */
    PGconn *api;

    kg_fleet_planned *planned; /* the planned switchover's thread (kg_fleet_planned.h) */

    kg_gauge *lease_gauge;
    kg_gauge *state_gauges[FLEET_MAX_STATES];
    char state_names[FLEET_MAX_STATES][32];
    int n_states;
};

static int api_connect(kg_fleet *f, uint64_t deadline_us, char *err, size_t errlen);

/* ---------------------------------------------------------------- local state */

/* {"vcluster": epoch, ...} of what this instance routes on, compact. */
static void local_epochs(kg_fleet *f, char *out, size_t len)
{
    json_t *o = json_object();
    const kg_vc_table *t = kg_gateway_vclusters(f->gw);
    for (int i = 0; i < t->n; i++) {
        uint64_t word = atomic_load(&t->v[i]->route);
        json_object_set_new(o, t->v[i]->cfg->name, json_integer((json_int_t)KG_ROUTE_EPOCH(word)));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, len, "%s", text ? text : "{}");
    free(text);
    json_decref(o);
}

static void set_lost_reason(kg_fleet *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_lost_reason(kg_fleet *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&f->lock);
    vsnprintf(f->lost_reason, sizeof(f->lost_reason), fmt, ap);
    pthread_mutex_unlock(&f->lock);
    va_end(ap);
}

/* Deadline of one database call of the thread: a renewal period, and never past the lease. */
static uint64_t op_deadline(kg_fleet *f)
{
    uint64_t d = kg_now_us() + f->period_us;
    uint64_t lease = atomic_load(&f->lease_deadline_us);
    if (atomic_load(&f->lease_ok) && lease < d) d = lease;
    return d;
}

/* The first failure of an outage is a warning; the rest are debug lines until it ends. */
static void note_error(kg_fleet *f, const char *what, const char *err)
{
    if (!f->logged_error)
        kg_warn("fleet: %s: %s", what, err);
    else
        kg_debug("fleet: %s: %s", what, err);
    f->logged_error = 1;
    pthread_mutex_lock(&f->lock);
    if (!atomic_load(&f->lease_ok)) {
        /* Keep "why the lease was lost" but say what the latest attempt hit. */
        size_t n = strcspn(f->lost_reason, ";");
        snprintf(f->lost_reason + n, sizeof(f->lost_reason) - n, "; %s: %s", what, err);
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---------------------------------------------------------------- epochs */

static void apply_row(kg_fleet *f, const char *vcluster, const char *active, const char *epoch_text)
{
    kg_vcluster *vc = kg_gateway_vcluster(f->gw, vcluster);
    if (!vc) return; /* a vcluster of another configuration (or not reloaded here yet) */
    int ci = kg_gateway_cluster_index(f->gw, active);
    if (ci < 0 || (ci != vc->cfg->primary && ci != vc->cfg->secondary)) {
        kg_warn("fleet: vcluster %s: the store names cluster '%s', not one of its clusters here; "
                "not applied",
                vcluster, active);
        return;
    }
    char *end = NULL;
    unsigned long long epoch = strtoull(epoch_text, &end, 10);
    if (!end || *end) return;
    if (kg_gateway_apply_route(f->gw, vc, ci, epoch) == KG_ROUTE_BUSY) f->resync = 1;
}

/* Writes this instance's epochs to its row when they changed since the last write, notifying
 * the switch waiting for them. 0 ok, -1 error. */
static int fleet_ack(kg_fleet *f)
{
    char epochs[sizeof(f->last_acked)];
    local_epochs(f, epochs, sizeof(epochs));
    if (strcmp(epochs, f->last_acked) == 0) return 0;
    const char *params[3] = {f->cfg->instance_name, f->started_at, epochs};
    char err[512];
    PGresult *r = kg_pq_run(&f->conn, SQL_ACK, 3, params, op_deadline(f), err, sizeof(err));
    if (!r) {
        note_error(f, "acknowledging epochs", err);
        return -1;
    }
    PQclear(r);
    snprintf(f->last_acked, sizeof(f->last_acked), "%s", epochs);
    return 0;
}

/* Reads every vcluster's active side and epoch, applies the newer ones, acknowledges.
 * 0 ok, -1 the database could not be read. */
static int fleet_sync(kg_fleet *f)
{
    if (!f->conn) return -1;
    char err[512];
    PGresult *r = kg_pq_run(&f->conn, SQL_READ_STATES, 0, NULL, op_deadline(f), err, sizeof(err));
    if (!r) {
        note_error(f, "reading the vcluster states", err);
        return -1;
    }
    f->resync = 0;
    for (int i = 0; i < PQntuples(r); i++)
        apply_row(f, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    return f->conn ? fleet_ack(f) : -1;
}

/* ---------------------------------------------------------------- registration and lease */

static int fleet_connect(kg_fleet *f, uint64_t deadline_us, char *err, size_t errlen)
{
    f->conn = kg_pq_connect(f->conninfo, deadline_us, err, errlen);
    if (!f->conn) return -1;
    PGresult *r =
        kg_pq_run(&f->conn, "LISTEN " FLEET_SWITCH_CHANNEL, 0, NULL, deadline_us, err, errlen);
    if (!r) {
        if (f->conn) PQfinish(f->conn);
        f->conn = NULL;
        return -1;
    }
    PQclear(r);
    f->last_acked[0] = '\0'; /* a new session: write the epochs again */
    return 0;
}

/* Inserts the row, or takes it over when its lease has expired. 0 registered, 1 a live
 * instance holds the name (ERR says which), -1 error. */
static int fleet_register(kg_fleet *f, uint64_t deadline_us, char *err, size_t errlen)
{
    char lease[16], conns[16], epochs[sizeof(f->last_acked)];
    snprintf(lease, sizeof(lease), "%d", f->cfg->lease_ms);
    snprintf(conns, sizeof(conns), "%d", kg_gateway_connections(f->gw));
    local_epochs(f, epochs, sizeof(epochs));
    const char *params[6] = {f->cfg->instance_name,
                             KGATE_VERSION,
                             lease,
                             epochs,
                             conns,
                             f->admin_url[0] ? f->admin_url : NULL};
    PGresult *r = kg_pq_run(&f->conn, SQL_REGISTER, 6, params, deadline_us, err, errlen);
    if (!r) return -1;
    int taken = PQntuples(r) == 1;
    if (taken) snprintf(f->started_at, sizeof(f->started_at), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (taken) {
        snprintf(f->last_acked, sizeof(f->last_acked), "%s", epochs);
        return 0;
    }
    r = kg_pq_run(&f->conn, SQL_HOLDER, 1, params, deadline_us, err, errlen);
    if (!r) return -1;
    if (PQntuples(r) == 1)
        snprintf(err, errlen,
                 "instance name '%s' is held by a live instance (version %s, started %s, admin "
                 "%s, lease valid %s ms more); give this one another instance.name or stop that "
                 "one",
                 f->cfg->instance_name, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                 *PQgetvalue(r, 0, 0) ? PQgetvalue(r, 0, 0) : "unknown", PQgetvalue(r, 0, 3));
    else
        snprintf(err, errlen, "instance name '%s': registration refused", f->cfg->instance_name);
    PQclear(r);
    return 1;
}

static void fleet_refresh_instances(kg_fleet *f)
{
    char err[512];
    PGresult *r = kg_pq_run(&f->conn, SQL_INSTANCES, 0, NULL, op_deadline(f), err, sizeof(err));
    if (!r) {
        note_error(f, "listing the instances", err);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *epochs = json_loads(PQgetvalue(r, i, 3), 0, NULL);
        int live = PQgetvalue(r, i, 7)[0] == 't';
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:b, s:o, s:I, s:s, s:I}", "name",
                                              PQgetvalue(r, i, 0), "version", PQgetvalue(r, i, 1),
                                              "state", live ? PQgetvalue(r, i, 2) : "expired",
                                              "live", live, "epochs",
                                              epochs ? epochs : json_object(), "connections",
                                              (json_int_t)strtoll(PQgetvalue(r, i, 4), NULL, 10),
                                              "admin_url", PQgetvalue(r, i, 5), "lease_age_ms",
                                              (json_int_t)strtoll(PQgetvalue(r, i, 6), NULL, 10)));
        json_t *probe = json_loads(PQgetvalue(r, i, 8), 0, NULL);
        if (probe)
            json_object_set_new(json_array_get(list, json_array_size(list) - 1), "probe", probe);
    }
    PQclear(r);
    pthread_mutex_lock(&f->lock);
    json_decref(f->instances);
    f->instances = list;
    pthread_mutex_unlock(&f->lock);
}

/* The lease is back: the epochs are re-read before the instance routes or accepts again. */
static void fleet_regained(kg_fleet *f)
{
    if (fleet_sync(f) < 0 || f->resync) return; /* not all applied yet: the next renewal */
    uint64_t lost_for = kg_now_us() - f->lost_at_us;
    atomic_store(&f->lease_ok, 1);
    kg_gateway_fence(f->gw, KG_FENCE_NONE);
    kg_info("fleet: instance %s holds its lease again after %.0f ms; epochs re-read, serving",
            f->cfg->instance_name, (double)lost_for / 1000.0);
}

/* A drain of this instance asked through another one (kgate drain NAME; the admin API writes
 * the request into the store, see kg_fleet.h): started (or cancelled) here, then removed. */
static void fleet_drain_request(kg_fleet *f, const char *text)
{
    json_t *req = json_loads(text, 0, NULL);
    const char *by = json_string_value(json_object_get(req, "actor"));
    const char *via = json_string_value(json_object_get(req, "via"));
    char actor[256];
    snprintf(actor, sizeof(actor), "%s (through instance %s)", by ? by : "unknown",
             via ? via : "?");
    json_t *result = NULL;
    if (json_is_true(json_object_get(req, "cancel"))) {
        int status = kg_gateway_drain_cancel(f->gw, actor, &result);
        kg_info("fleet: drain cancel asked by %s: %d", actor, status);
    } else {
        json_int_t within = json_integer_value(json_object_get(req, "within_ms"));
        kg_info("fleet: drain asked by %s, within %lld ms", actor, (long long)within);
        kg_gateway_drain(f->gw, (int)within, kg_gateway_limits(f->gw)->drain_timeout_ms, actor,
                         &result);
    }
    json_decref(result);
    json_decref(req);
    char err[512];
    const char *params[2] = {f->cfg->instance_name, text};
    PGresult *r = kg_pq_run(&f->conn, SQL_DRAIN_DONE, 2, params, op_deadline(f), err, sizeof(err));
    if (!r) note_error(f, "removing the handled drain request", err);
    PQclear(r);
}

static void fleet_renew(kg_fleet *f)
{
    char err[512];
    uint64_t sent = kg_now_us();
    uint64_t deadline = op_deadline(f);
    if (!f->conn && fleet_connect(f, deadline, err, sizeof(err)) < 0) {
        note_error(f, "connecting to the state store", err);
        return;
    }
    char lease[16], conns[16], epochs[sizeof(f->last_acked)];
    snprintf(lease, sizeof(lease), "%d", f->cfg->lease_ms);
    snprintf(conns, sizeof(conns), "%d", kg_gateway_connections(f->gw));
    local_epochs(f, epochs, sizeof(epochs));
    /* draining, then drained once no connection is left (kgate drain NAME follows it). */
    const char *state = !atomic_load(&f->lease_ok)          ? "recovering"
                        : !atomic_load(&f->gw->draining)    ? "serving"
                        : kg_gateway_connections(f->gw) > 0 ? "draining"
                                                            : "drained";
    /* The health verdicts, for the automatic failover's controller (fleet/kg_autofo.h). */
    char *probe = kg_autofo_probe_text(f->gw);
    const char *params[7] = {f->cfg->instance_name, f->started_at, lease, state, epochs, conns,
                             probe ? probe : "{}"};
    PGresult *r = kg_pq_run(&f->conn, SQL_RENEW, 7, params, deadline, err, sizeof(err));
    free(probe);
    if (!r) {
        note_error(f, "renewing the lease", err);
        return;
    }
    int renewed = PQntuples(r) == 1;
    char *drain = renewed && !PQgetisnull(r, 0, 1) ? strdup(PQgetvalue(r, 0, 1)) : NULL;
    PQclear(r);
    if (drain) fleet_drain_request(f, drain);
    free(drain);
    if (!renewed) {
        /* The row is gone or another instance took the name over after our lease expired. */
        int rc = fleet_register(f, deadline, err, sizeof(err));
        if (rc != 0) {
            note_error(f, "registering again", err);
            return;
        }
        kg_warn("fleet: instance %s registered again (its row had expired or was removed)",
                f->cfg->instance_name);
    } else {
        snprintf(f->last_acked, sizeof(f->last_acked), "%s", epochs);
    }
    atomic_store(&f->lease_deadline_us, sent + (uint64_t)f->cfg->lease_ms * 1000u);
    if (f->logged_error) kg_info("fleet: the state store answers again");
    f->logged_error = 0;
    if (!atomic_load(&f->lease_ok))
        fleet_regained(f);
    else
        fleet_sync(f); /* the fallback for a missed notification */
    if (f->conn) fleet_refresh_instances(f);
}

/* Fences the instance once the lease deadline has passed without a renewal. */
static void fleet_check_lease(kg_fleet *f)
{
    uint64_t now = kg_now_us();
    if (!atomic_load(&f->lease_ok)) {
        /* Connections that raced the fence (accepted just before it) go too. */
        if (!f->cfg->serve_last_known) kg_gateway_fence(f->gw, KG_FENCE_CLOSED);
        return;
    }
    uint64_t deadline = atomic_load(&f->lease_deadline_us);
    if (now < deadline) return;
    f->lost_at_us = now;
    set_lost_reason(f, "state store unreachable: lease of instance %s not renewed within %d ms",
                    f->cfg->instance_name, f->cfg->lease_ms);
    atomic_store(&f->lease_ok, 0);
    uint64_t late = now - (deadline - (uint64_t)f->cfg->lease_ms * 1000u);
    if (f->cfg->serve_last_known) {
        kg_gateway_fence(f->gw, KG_FENCE_LAST_KNOWN);
        kg_error("fleet: lease lost (%.0f ms since the last renewal): serving the last known "
                 "epochs, refusing changes (on_state_loss: serve-last-known)",
                 (double)late / 1000.0);
    } else {
        kg_gateway_fence(f->gw, KG_FENCE_CLOSED);
        kg_error("fleet: lease lost (%.0f ms since the last renewal): not accepting, client "
                 "connections closed (on_state_loss: fail-closed)",
                 (double)late / 1000.0);
    }
}

/* Sleeps until DEADLINE_US, a notification (then syncs) or kg_fleet_stop. */
static void fleet_wait(kg_fleet *f, uint64_t deadline_us)
{
    uint64_t now = kg_now_us();
    if (deadline_us <= now) return;
    struct pollfd p[2] = {{.fd = f->wake_fd, .events = POLLIN},
                          {.fd = f->conn ? PQsocket(f->conn) : -1, .events = POLLIN}};
    int ms = (int)((deadline_us - now + 999) / 1000);
    if (poll(p, 2, ms) <= 0) return;
    if (p[0].revents) {
        uint64_t v;
        if (read(f->wake_fd, &v, sizeof(v)) < 0) { /* nothing to do: it only wakes us */
        }
    }
    if (!f->conn || !p[1].revents) return;
    int n = kg_pq_drain_notifies(f->conn);
    if (n < 0) {
        note_error(f, "listening", "the connection to the state store broke");
        PQfinish(f->conn);
        f->conn = NULL;
        return;
    }
    if (n > 0 && atomic_load(&f->lease_ok)) fleet_sync(f);
}

static void *fleet_main(void *arg)
{
    kg_fleet *f = arg;
    uint64_t next_renew = kg_now_us() + f->period_us;
    while (!atomic_load(&f->stopping)) {
        if (kg_now_us() >= next_renew) {
            next_renew = kg_now_us() + f->period_us;
            fleet_renew(f);
        }
        fleet_check_lease(f);
        uint64_t until = next_renew;
        uint64_t lease = atomic_load(&f->lease_deadline_us);
        if (atomic_load(&f->lease_ok) && lease < until) until = lease;
        if (f->resync && atomic_load(&f->lease_ok)) {
            fleet_sync(f);
            if (f->resync && kg_now_us() + FLEET_RESYNC_US < until)
                until = kg_now_us() + FLEET_RESYNC_US;
        }
        /* A notification that came in with a query's answer is already buffered. */
        if (f->conn && kg_pq_drain_notifies(f->conn) > 0 && atomic_load(&f->lease_ok))
            fleet_sync(f);
        fleet_wait(f, until);
    }
    return NULL;
}

/* ---------------------------------------------------------------- start / stop */

static void fleet_metrics_init(kg_fleet *f)
{
    kg_metrics *m = f->gw->metrics;
    f->lease_gauge = kg_metrics_gauge(m, "kgate_instance_lease_ok",
                                      "1 while this instance holds its fleet lease, else 0.", "");
}

static void fleet_free(kg_fleet *f)
{
    if (f->conn) PQfinish(f->conn);
    if (f->api) PQfinish(f->api);
    if (f->wake_fd >= 0) close(f->wake_fd);
    json_decref(f->instances);
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->api_lock);
    if (f->conninfo) explicit_bzero(f->conninfo, strlen(f->conninfo));
    free(f->conninfo);
    free(f);
}

/* Connects and registers. A name whose holder stopped renewing (this very instance before a
 * crash and restart, typically) frees up when its lease runs out: the registration is tried
 * again until then, so only a holder that keeps renewing refuses the start. */
static int fleet_join(kg_fleet *f, char *err, size_t errlen)
{
    uint64_t give_up = kg_now_us() + (uint64_t)f->cfg->lease_ms * 1000u + f->period_us;
    int waited = 0;
    for (;;) {
        /* The lease is not held yet: each attempt gets its own bound. */
        uint64_t deadline = kg_now_us() + 5000000u;
        if (!f->conn && fleet_connect(f, deadline, err, errlen) < 0) return -1;
        int rc = fleet_register(f, deadline, err, errlen);
        if (rc != 1 || kg_now_us() >= give_up) return rc;
        if (!waited++)
            kg_warn("fleet: %s; waiting up to %d ms for that lease to run out", err,
                    (int)((give_up - kg_now_us()) / 1000));
        usleep((useconds_t)f->period_us);
    }
}

kg_fleet *kg_fleet_start(kg_gateway *gw, const char *conninfo, char *err, size_t errlen)
{
    kg_fleet *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->gw = gw;
    f->cfg = gw->cfg;
    f->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    f->conninfo = strdup(conninfo);
    f->period_us = (uint64_t)f->cfg->lease_ms * 1000u / 3u;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->api_lock, NULL);
    if (f->cfg->admin_listen[0])
        snprintf(f->admin_url, sizeof(f->admin_url), "%s://%s/",
                 f->cfg->admin_tls.enabled ? "https" : "http", f->cfg->admin_listen);
    if (f->wake_fd < 0 || !f->conninfo) {
        snprintf(err, errlen, "out of resources");
        fleet_free(f);
        return NULL;
    }
    char why[512];
    int rc = fleet_join(f, why, sizeof(why));
    if (rc != 0) {
        snprintf(err, errlen, "%s", why);
        fleet_free(f);
        return NULL;
    }
    atomic_store(&f->lease_deadline_us, kg_now_us() + (uint64_t)f->cfg->lease_ms * 1000u);
    atomic_store(&f->lease_ok, 1);
    if (fleet_sync(f) < 0 || !f->conn) {
        snprintf(err, errlen, "cannot read the vcluster states from the state store");
        fleet_free(f);
        return NULL;
    }
    fleet_refresh_instances(f);
    /* The switch's wait for acks would otherwise pay for this connection on the first one. */
    pthread_mutex_lock(&f->api_lock);
    if (api_connect(f, kg_now_us() + f->period_us, why, sizeof(why)) < 0)
        kg_warn("fleet: the connection for switch acknowledgements: %s (tried again at the "
                "next switch)",
                why);
    pthread_mutex_unlock(&f->api_lock);
    fleet_metrics_init(f);
    if (pthread_create(&f->thread, NULL, fleet_main, f) != 0) {
        snprintf(err, errlen, "cannot start the fleet thread");
        fleet_free(f);
        return NULL;
    }
    f->thread_started = 1;
    f->planned = kg_fleet_planned_start(gw, conninfo);
    if (!f->planned) kg_error("fleet: the planned switchover's thread cannot start");
    kg_info("fleet: instance %s registered (lease %d ms, renewed every %d ms, on_state_loss %s)",
            f->cfg->instance_name, f->cfg->lease_ms, (int)(f->period_us / 1000),
            f->cfg->serve_last_known ? "serve-last-known" : "fail-closed");
    return f;
}

void kg_fleet_stop(kg_fleet *f)
{
    if (!f) return;
    kg_fleet_planned_stop(f->planned); /* it lifts holds through the workers */
    f->planned = NULL;
    atomic_store(&f->stopping, 1);
    uint64_t one = 1;
    if (write(f->wake_fd, &one, sizeof(one)) < 0) { /* the thread also wakes at its deadline */
    }
    if (f->thread_started) pthread_join(f->thread, NULL);
    /* Give the name up at once, so a replacement may start under it; when the database cannot
     * be reached the lease simply expires. */
    char err[512];
    if (f->conn) {
        const char *params[2] = {f->cfg->instance_name, f->started_at};
        PGresult *r = kg_pq_run(&f->conn, SQL_UNREGISTER, 2, params, kg_now_us() + f->period_us,
                                err, sizeof(err));
        if (r)
            kg_info("fleet: instance %s unregistered", f->cfg->instance_name);
        else
            kg_warn("fleet: unregistering: %s (the lease expires on its own)", err);
        PQclear(r);
    }
    fleet_free(f);
}

/* ---------------------------------------------------------------- queries for the admin API */

kg_fleet_planned *kg_fleet_planner(kg_fleet *f)
{
    return f ? f->planned : NULL;
}

const char *kg_fleet_state_lost(kg_fleet *f)
{
    static _Thread_local char reason[512];
    if (!f || atomic_load(&f->lease_ok)) return NULL;
    pthread_mutex_lock(&f->lock);
    snprintf(reason, sizeof(reason), "%s", f->lost_reason);
    pthread_mutex_unlock(&f->lock);
    return reason;
}

/* One look at the acks of EPOCH: 1 when none is pending, 0 when some are, -1 error. */
static int acks_once(kg_fleet *f, const char *vcluster, const char *epoch, uint64_t deadline_us,
                     json_t **acked, json_t **pending, char *err, size_t errlen)
{
    const char *params[2] = {vcluster, epoch};
    PGresult *r = kg_pq_run(&f->api, SQL_ACKS, 2, params, deadline_us, err, errlen);
    if (!r) return -1;
    json_decref(*acked);
    json_decref(*pending);
    *acked = json_array();
    *pending = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(PQgetvalue(r, i, 1)[0] == 't' ? *acked : *pending,
                              json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    return json_array_size(*pending) == 0;
}

static int api_connect(kg_fleet *f, uint64_t deadline_us, char *err, size_t errlen)
{
    if (f->api) return 0;
    f->api = kg_pq_connect(f->conninfo, deadline_us, err, errlen);
    if (!f->api) return -1;
    PGresult *r =
        kg_pq_run(&f->api, "LISTEN " FLEET_ACK_CHANNEL, 0, NULL, deadline_us, err, errlen);
    if (!r) {
        if (f->api) PQfinish(f->api);
        f->api = NULL;
        return -1;
    }
    PQclear(r);
    return 0;
}

/* Drops the admin thread's connection after it failed (a restarted server, a cut network). */
static void api_broken(kg_fleet *f, char *err, size_t errlen)
{
    if (!f->api) return;
    kg_pq_copy_error(PQerrorMessage(f->api), err, errlen);
    PQfinish(f->api);
    f->api = NULL;
}

/* Waits on the api connection until no live instance is pending or DEADLINE_US: 1 all acked,
 * 0 some pending at the deadline, -1 the connection failed (then closed). */
static int acks_wait(kg_fleet *f, const char *vcluster, const char *epoch, uint64_t deadline_us,
                     json_t **acked, json_t **pending, char *err, size_t errlen)
{
    for (;;) {
        /* LISTEN came first, so an ack committed after this read is notified. */
        if (kg_pq_drain_notifies(f->api) < 0) break;
        int done = acks_once(f, vcluster, epoch, deadline_us, acked, pending, err, errlen);
        if (done != 0 || !f->api) return done;
        if (kg_now_us() >= deadline_us) return 0;
        int n = kg_pq_drain_notifies(f->api);
        if (n < 0) break;
        if (n > 0) continue; /* came in with the answer */
        uint64_t until = kg_now_us() + FLEET_ACK_POLL_US;
        if (kg_pq_wait_fd(PQsocket(f->api), 0, until < deadline_us ? until : deadline_us) < 0)
            break;
    }
    api_broken(f, err, errlen);
    return -1;
}

json_t *kg_fleet_wait_acks(kg_fleet *f, const char *vcluster, uint64_t epoch, int timeout_ms)
{
    uint64_t start = kg_now_us();
    uint64_t deadline = start + (uint64_t)timeout_ms * 1000u;
    char epoch_text[24], err[512] = "";
    snprintf(epoch_text, sizeof(epoch_text), "%" PRIu64, epoch);
    json_t *acked = NULL, *pending = NULL;
    int done = -1;
    pthread_mutex_lock(&f->api_lock);
    /* A connection found dead on first use (the server restarted since the last switch) is
     * replaced once. */
    for (int attempt = 0; attempt < 2 && done < 0 && kg_now_us() < deadline; attempt++) {
        if (api_connect(f, deadline, err, sizeof(err)) < 0) break;
        done = acks_wait(f, vcluster, epoch_text, deadline, &acked, &pending, err, sizeof(err));
    }
    pthread_mutex_unlock(&f->api_lock);
    double wait_ms = (double)(kg_now_us() - start) / 1000.0;
    json_t *out = json_pack("{s:o, s:o, s:f}", "acked", acked ? acked : json_array(), "pending",
                            pending ? pending : json_array(), "wait_ms", wait_ms);
    if (done < 0) json_object_set_new(out, "error", json_string(err[0] ? err : "no answer"));
    return out;
}

json_t *kg_fleet_status(kg_fleet *f)
{
    const char *lost = kg_fleet_state_lost(f);
    pthread_mutex_lock(&f->lock);
    json_t *instances = f->instances ? json_deep_copy(f->instances) : json_array();
    pthread_mutex_unlock(&f->lock);
    json_t *j = json_pack("{s:s, s:b, s:s, s:i, s:o}", "instance", f->cfg->instance_name,
                          "lease_ok", lost == NULL, "on_state_loss",
                          f->cfg->serve_last_known ? "serve-last-known" : "fail-closed", "lease_ms",
                          f->cfg->lease_ms, "instances", instances);
    if (lost) json_object_set_new(j, "state_lost", json_string(lost));
    return j;
}

/* The gauge of STATE, registered the first time it is seen (at most FLEET_MAX_STATES). */
static kg_gauge *state_gauge(kg_fleet *f, const char *state)
{
    for (int i = 0; i < f->n_states; i++)
        if (strcmp(f->state_names[i], state) == 0) return f->state_gauges[i];
    if (f->n_states == FLEET_MAX_STATES) return NULL;
    char labels[128];
    if (kg_metrics_format_labels(labels, sizeof(labels), "state", state, NULL) < 0) return NULL;
    int i = f->n_states++;
    snprintf(f->state_names[i], sizeof(f->state_names[i]), "%s", state);
    f->state_gauges[i] = kg_metrics_gauge(
        f->gw->metrics, "kgate_fleet_instances",
        "Instances registered in the fleet's state store, by state (expired: lease ran out).",
        labels);
    return f->state_gauges[i];
}

void kg_fleet_collect_metrics(kg_fleet *f)
{
    kg_gauge_set(f->lease_gauge, kg_fleet_state_lost(f) ? 0 : 1);
    /* kgate_instance_epoch: kg_gateway_collect_metrics, with the vclusters. */
    /* Under the lock: two scrapes at once may both register a state's gauge. */
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->n_states; i++)
        kg_gauge_set(f->state_gauges[i], 0);
    size_t i;
    json_t *inst;
    json_array_foreach(f->instances, i, inst)
    {
        kg_gauge_add(state_gauge(f, json_string_value(json_object_get(inst, "state"))), 1);
    }
    pthread_mutex_unlock(&f->lock);
}
