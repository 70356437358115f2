#include "route/kg_gateway.h"
#include "route/kg_gateway_int.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chaos/kg_chaos.h"
#include "chaos/kg_experiment.h"
#include "engine/kg_loop.h"
#include "engine/kg_reaper.h"
#include "engine/kg_wire.h"
#include "engine/kg_worker.h"
#include "fleet/kg_autofo.h"
#include "fleet/kg_fleet.h"
#include "metrics/kg_metrics.h"
#include "route/kg_gateway_mirror.h"
#include "route/kg_mirror.h"
#include "route/kg_offsets.h"
#include "route/kg_parity.h"
#include "route/kg_leave.h"
#include "route/kg_planned.h"
#include "route/kg_rejoin.h"
#include "route/kg_vcmetrics.h"
#include "security/kg_sasl.h"
#include "security/kg_acl.h"
#include "security/kg_authz.h"
#include "security/kg_users.h"
#include "state/kg_store.h"
#include "util/kg_log.h"
#include "util/kg_sdnotify.h"
#include "util/kg_time.h"

/* A listening socket: one per virtual cluster port (bootstrap and each broker node). */
typedef struct kg_listener {
    kg_io io;
    kg_gateway *gw;
    kg_vcluster *vc;
    int32_t node_id; /* -1 = bootstrap port */
    int tls;         /* a port of the vcluster's TLS range */
} kg_listener;

/* ---------------------------------------------------------------- the vcluster table */

static kg_vc_table kg_no_vclusters; /* before the first table is published, and after a failed
                                       start */

const kg_vc_table *kg_gateway_vclusters(kg_gateway *gw)
{
    kg_vc_table *t = atomic_load_explicit(&gw->vcs, memory_order_acquire);
    return t ? t : &kg_no_vclusters;
}

kg_vcluster *kg_gateway_vcluster(kg_gateway *gw, const char *name)
{
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; name && i < t->n; i++)
        if (strcmp(t->v[i]->cfg->name, name) == 0) return t->v[i];
    return NULL;
}

int kg_gateway_n_clusters(kg_gateway *gw)
{
    return atomic_load_explicit(&gw->n_clusters, memory_order_acquire);
}

int kg_gateway_cluster_index(kg_gateway *gw, const char *name)
{
    int n = kg_gateway_n_clusters(gw);
    for (int i = 0; name && i < n; i++)
        if (!atomic_load(&gw->clusters[i].retired) && strcmp(gw->clusters[i].cfg->name, name) == 0)
            return i;
    return -1;
}

/* Publishes T (the caller built it); the one it replaces stays allocated until stop. */
void kg_gw_publish_vclusters(kg_gateway *gw, kg_vc_table *t)
{
    t->older = atomic_load(&gw->vcs);
    atomic_store_explicit(&gw->vcs, t, memory_order_release);
}

int kg_vcluster_node_port(const kg_vcluster *vc, int32_t node_id)
{
    if (node_id < vc->cfg->node_id_min || node_id > vc->cfg->node_id_max) return -1;
    return vc->cfg->port + 1 + (node_id - vc->cfg->node_id_min);
}

int kg_gateway_version_ranges(kg_gateway *gw, const kg_vcluster *vc, kg_version_ranges *out)
{
    kg_versions_from_codecs(out);
    int sides[2] = {vc->cfg->primary, vc->cfg->secondary};
    int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    int active_known = 0;
    for (int i = 0; i < 2; i++) {
        kg_version_ranges probed;
        if (sides[i] >= 0 && kg_cluster_versions(&gw->clusters[sides[i]], &probed)) {
            kg_versions_intersect(out, &probed);
            active_known |= sides[i] == active;
        }
    }
    /* ApiVersions itself ends at kgate, which answers every version its codecs know. */
    kg_version_ranges own;
    kg_versions_from_codecs(&own);
    out->min[KG_API_APIVERSIONS] = own.min[KG_API_APIVERSIONS];
    out->max[KG_API_APIVERSIONS] = own.max[KG_API_APIVERSIONS];
    /* ACLs name topics: Produce and Fetch from v13 carry topic ids instead. */
    if (vc->cfg->acls_enabled) {
        const int named[] = {KG_API_PRODUCE, KG_API_FETCH};
        for (int i = 0; i < 2; i++)
            if (out->max[named[i]] > KG_AUTHZ_MAX_NAMED_VERSION)
                out->max[named[i]] = KG_AUTHZ_MAX_NAMED_VERSION;
    }
    /* So do SaslHandshake and SaslAuthenticate when kgate authenticates the clients itself. */
    if (vc->cfg->auth_gateway) {
        const int sasl_apis[] = {KG_API_SASL_HANDSHAKE, KG_API_SASL_AUTHENTICATE};
        for (int i = 0; i < 2; i++) {
            out->min[sasl_apis[i]] = own.min[sasl_apis[i]];
            out->max[sasl_apis[i]] = own.max[sasl_apis[i]];
        }
    }
    return active_known;
}

/* ---------------------------------------------------------------- accepting */

/* Every vcluster's connections, a removed one's still closing included. */
int kg_gateway_connections(kg_gateway *gw)
{
    int n = 0;
    for (kg_vcluster *vc = atomic_load(&gw->all_vclusters); vc; vc = vc->all_next)
        n += atomic_load(&vc->client_conns);
    return n;
}

static void gateway_accept(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    kg_listener *l = arg;
    kg_gateway *gw = l->gw;
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                kg_error("accept on port %d: %s (raise the open file limit)", l->vc->cfg->port,
                         strerror(errno));
            return;
        }
        /* A fenced instance (fleet lease lost, fail-closed) takes no client: the client's next
         * address (another instance behind the same name) serves it. */
        if (atomic_load(&gw->fence) == KG_FENCE_CLOSED) {
            close(cfd);
            continue;
        }
        int max_conns = kg_gateway_limits(gw)->max_connections;
        if (kg_gateway_connections(gw) >= max_conns) {
            kg_warn("refusing connection to vcluster %s: limits.max_connections (%d) reached",
                    l->vc->cfg->name, max_conns);
            close(cfd);
            continue;
        }
        unsigned w = atomic_fetch_add(&gw->next_worker, 1) % (unsigned)gw->n_workers;
        kg_worker_adopt(gw->workers[w], cfd, l->vc, l->node_id, l->tls);
    }
}

static int gateway_listen_on(kg_gateway *gw, kg_listener *l, uint16_t port, char *why, size_t len)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(gw->cfg->listen, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(why, len, "listen address %s: %s", gw->cfg->listen, gai_strerror(rc));
        kg_error("%s", why);
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        snprintf(why, len, "cannot listen on %s:%u for vcluster %s: %s", gw->cfg->listen, port,
                 l->vc->cfg->name, strerror(errno));
        kg_error("%s", why);
        if (fd >= 0) close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    l->io = (kg_io){.fd = fd, .fn = gateway_accept, .arg = l};
    if (kg_loop_io_set(gw->accept_loop, &l->io, KG_EV_READ) == 0) return 0;
    snprintf(why, len, "vcluster %s: cannot watch port %u", l->vc->cfg->name, port);
    close(fd);
    return -1;
}

/* Accept thread (or the start, before it runs): stops listening on L and frees it. */
static void listener_close(kg_gateway *gw, kg_listener *l)
{
    kg_loop_io_del(gw->accept_loop, &l->io);
    close(l->io.fd);
    free(l);
}

static int listeners_push(kg_gateway *gw, kg_listener *l)
{
    if (gw->n_listen == gw->cap_listen) {
        int cap = gw->cap_listen ? 2 * gw->cap_listen : 64;
        kg_listener **grown = realloc(gw->listeners, (size_t)cap * sizeof(*grown));
        if (!grown) return -1;
        gw->listeners = grown;
        gw->cap_listen = cap;
    }
    gw->listeners[gw->n_listen++] = l;
    return 0;
}

/* A vcluster listens on one port range (bootstrap, then a port per broker node), plaintext or
 * TLS, or on two: plaintext on `port` and TLS on `listener.tls.port`. */
static int gateway_open_range(kg_gateway *gw, kg_vcluster *vc, uint16_t base, int tls, char *why,
                              size_t len)
{
    for (int32_t node = -1; node <= vc->cfg->node_id_max; node++) {
        if (node >= 0 && node < vc->cfg->node_id_min) node = vc->cfg->node_id_min;
        kg_listener *l = calloc(1, sizeof(*l));
        if (!l) {
            snprintf(why, len, "vcluster %s: out of memory for its listeners", vc->cfg->name);
            return -1;
        }
        *l = (kg_listener){.gw = gw, .vc = vc, .node_id = node, .tls = tls};
        int offset = node < 0 ? 0 : 1 + node - vc->cfg->node_id_min;
        if (gateway_listen_on(gw, l, (uint16_t)(base + offset), why, len) < 0) {
            free(l);
            return -1;
        }
        if (listeners_push(gw, l) < 0) {
            snprintf(why, len, "vcluster %s: out of memory for its listeners", vc->cfg->name);
            listener_close(gw, l);
            return -1;
        }
    }
    kg_info("vcluster %s: %s bootstrap %s:%u, brokers %d-%d on ports %u-%u, active %s",
            vc->cfg->name, tls ? "TLS" : "plaintext", gw->cfg->advertised_host, base,
            vc->cfg->node_id_min, vc->cfg->node_id_max, base + 1,
            base + 1 + vc->cfg->node_id_max - vc->cfg->node_id_min,
            gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))].cfg->name);
    return 0;
}

/* Closes the listeners of VC, or of every vcluster when VC is NULL. */
static void gateway_unlisten(kg_gateway *gw, kg_vcluster *vc)
{
    int kept = 0;
    for (int i = 0; i < gw->n_listen; i++) {
        kg_listener *l = gw->listeners[i];
        if (vc && l->vc != vc) {
            gw->listeners[kept++] = l;
            continue;
        }
        l->vc->listening = 0;
        listener_close(gw, l);
    }
    gw->n_listen = kept;
}

/* Opens every port of VC; on a failure (WHY says which) none stays open. */
static int gateway_listen_vcluster(kg_gateway *gw, kg_vcluster *vc, char *why, size_t len)
{
    const kg_listener_tls_cfg *tls = &vc->cfg->tls;
    if (((!tls->enabled || tls->port) &&
         gateway_open_range(gw, vc, vc->cfg->port, 0, why, len) < 0) ||
        (tls->enabled &&
         gateway_open_range(gw, vc, tls->port ? tls->port : vc->cfg->port, 1, why, len) < 0)) {
        gateway_unlisten(gw, vc);
        return -1;
    }
    vc->listening = 1;
    return 0;
}

/* Accept thread (or the start, before it runs): the listeners follow the vclusters. None while
 * draining; else every vcluster served or being added by a reload (listen_adding) listens, and a
 * retired one does not. Returns -1 when a port could not be listened on (listen_why says which;
 * the other vclusters listen). */
static int gateway_listen_reconcile(kg_gateway *gw)
{
    if (atomic_load(&gw->draining)) {
        gateway_unlisten(gw, NULL);
        gw->listen_paused = 1;
        return 0;
    }
    gw->listen_paused = 0;
    for (kg_vcluster *vc = atomic_load(&gw->all_vclusters); vc; vc = vc->all_next)
        if (vc->listening && atomic_load(&vc->retired)) gateway_unlisten(gw, vc);
    char why[320] = "", later[320];
    int rc = 0;
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    pthread_mutex_lock(&gw->drain_lock);
    int n = t->n + gw->n_adding;
    for (int i = 0; i < n; i++) {
        kg_vcluster *vc = i < t->n ? t->v[i] : gw->listen_adding[i - t->n];
        if (vc->listening || atomic_load(&vc->retired)) continue;
        if (gateway_listen_vcluster(gw, vc, rc ? later : why, sizeof(why)) < 0) rc = -1;
    }
    if (rc < 0) snprintf(gw->listen_why, sizeof(gw->listen_why), "%s", why);
    pthread_mutex_unlock(&gw->drain_lock);
    return rc;
}

static void *gateway_accept_main(void *arg)
{
    kg_gateway *gw = arg;
    kg_loop_run(gw->accept_loop);
    return NULL;
}

/* Failed client handshakes are audited in one entry per virtual cluster and minute at most
 * (a scanner or a misconfigured client fleet must not flood the audit log), and at stop. */
#define TLS_FAILURE_AUDIT_MS 60000

static void gateway_audit_tls_failures(kg_gateway *gw, uint64_t interval_ms)
{
    /* Removed vclusters too: their last failures are not lost. */
    for (kg_vcluster *vc = atomic_load(&gw->all_vclusters); vc; vc = vc->all_next) {
        json_t *summary =
            kg_tls_failures_take(vc->tls_failures, (uint64_t)kg_time_now_ms(), interval_ms);
        if (!summary) continue;
        json_object_set_new(summary, "vcluster", json_string(vc->cfg->name));
        kg_store_audit_append(gw->store, "tls.handshake_failures", summary); /* borrows it */
        json_decref(summary);
    }
}

/* A worker whose loop has not gone round for this long is stuck (it does once a second). */
#define WORKER_STUCK_US (5 * 1000000u)

/* The systemd watchdog is fed from here, and only while every worker's loop goes round: a
 * stuck worker (or this thread) stops the pings, and systemd restarts the process. */
static void gateway_feed_watchdog(kg_gateway *gw)
{
    if (!gw->watchdog_usec) return;
    uint64_t now = kg_now_us();
    for (int i = 0; i < gw->n_workers; i++) {
        uint64_t beat = kg_worker_heartbeat_us(gw->workers[i]);
        if (now > beat && now - beat > WORKER_STUCK_US) {
            kg_error("worker %d has not gone round for %llu ms: no watchdog ping", i,
                     (unsigned long long)((now - beat) / 1000));
            return;
        }
    }
    kg_sd_notify("WATCHDOG=1");
}

/* Once a second on the accept thread: expire chaos rules, drive experiments, feed systemd's
 * watchdog. */
static void gateway_housekeeping(kg_loop *loop, void *arg)
{
    kg_gateway *gw = arg;
    gateway_feed_watchdog(gw);
    gateway_audit_tls_failures(gw, TLS_FAILURE_AUDIT_MS);
    kg_chaos_expire(gw->chaos);
    kg_experiments_tick(gw->experiments, (uint64_t)kg_time_now_ms());
    kg_users_flush_audit(gw->users);
    kg_loop_timer_in(loop, &gw->housekeeping, 1000000);
}

static void gateway_accept_stop(kg_loop *loop, void *arg)
{
    kg_gateway *gw = arg;
    if (atomic_load(&gw->stopping)) {
        kg_loop_stop(loop);
        return;
    }
    pthread_mutex_lock(&gw->drain_lock);
    uint64_t asked = gw->listen_asked;
    pthread_mutex_unlock(&gw->drain_lock);
    int failed = gateway_listen_reconcile(gw) < 0;
    pthread_mutex_lock(&gw->drain_lock);
    gw->listen_error = failed;
    gw->listen_done = asked;
    pthread_cond_broadcast(&gw->drain_cond);
    pthread_mutex_unlock(&gw->drain_lock);
}

/* ---------------------------------------------------------------- health probes */

/* A cluster whose credentials stop working (or work again) is an event for the audit log: the
 * next failover to it would be refused for it. */
static void gateway_probe_cluster(kg_gateway *gw, kg_cluster *c, int timeout_ms)
{
    int was_failed = atomic_load(&c->auth_failed);
    kg_cluster_probe(c, timeout_ms);
    int failed = atomic_load(&c->auth_failed);
    if (failed == was_failed) return;
    pthread_rwlock_rdlock(&c->lock);
    json_t *details = json_pack("{s:s, s:s}", "cluster", c->cfg->name, "error", c->last_error);
    pthread_rwlock_unlock(&c->lock);
    kg_store_audit_append(gw->store, failed ? "cluster.auth_failed" : "cluster.auth_ok", details);
    json_decref(details);
}

/* ---------------------------------------------------------------- parity (kg_parity) */

/* The cluster a switch of VC would go to: the other of its two. */
static int parity_other_side(const kg_vcluster *vc)
{
    int active = KG_ROUTE_ACTIVE(atomic_load(&vc->route));
    return active == vc->cfg->primary ? vc->cfg->secondary : vc->cfg->primary;
}

/* Runs VC's check of cluster TO; READ_ACTIVE: ask the active side for its configs too (the
 * background check and the API do when it is up; a switch never waits on it). */
static json_t *parity_run(kg_gateway *gw, kg_vcluster *vc, int to, int read_active, int timeout)
{
    kg_cluster *active = &gw->clusters[KG_ROUTE_ACTIVE(atomic_load(&vc->route))];
    kg_parity_check check = {.active = active,
                             .target = &gw->clusters[to],
                             .read_active = read_active && atomic_load(&active->up),
                             .window_s = vc->cfg->parity_window_s,
                             .timeout_ms = timeout};
    json_t *report = kg_parity_run(vc->parity, &check);
    if (report && vc->parity_diffs)
        kg_gauge_set(vc->parity_diffs,
                     json_object_get(report, "error")
                         ? -1.0
                         : (double)json_integer_value(json_object_get(report, "count")));
    return report;
}

/* The prober's background check, every parity.interval_s, of the side a switch would go to
 * (when it is up: a down side is the health probe's to report). */
static void gateway_parity_tick(kg_gateway *gw, int timeout)
{
    uint64_t now = kg_now_us();
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n && !atomic_load(&gw->stopping); i++) {
        kg_vcluster *vc = t->v[i];
        if (!vc->parity || vc->cfg->parity_interval_s <= 0 || now < vc->parity_due_us) continue;
        vc->parity_due_us = now + (uint64_t)vc->cfg->parity_interval_s * 1000000u;
        int to = parity_other_side(vc);
        if (atomic_load(&gw->clusters[to].up)) json_decref(parity_run(gw, vc, to, 1, timeout));
    }
}

void kg_gateway_background_sleep(kg_gateway *gw, int interval)
{
    pthread_mutex_lock(&gw->probe_lock);
    if (!atomic_load(&gw->stopping)) {
        struct timespec until = kg_time_after_ms(interval);
        pthread_cond_timedwait(&gw->probe_cond, &gw->probe_lock, &until);
    }
    pthread_mutex_unlock(&gw->probe_lock);
}

static void *gateway_probe_main(void *arg)
{
    kg_gateway *gw = arg;
    int interval = gw->cfg->probe_interval_ms;
    int timeout = interval < 3000 ? (interval > 500 ? interval : 500) : 3000;
    while (!atomic_load(&gw->stopping)) {
        int n = kg_gateway_n_clusters(gw);
        for (int i = 0; i < n && !atomic_load(&gw->stopping); i++)
            if (!atomic_load(&gw->clusters[i].retired))
                gateway_probe_cluster(gw, &gw->clusters[i], timeout);
        gateway_parity_tick(gw, timeout);
        kg_gateway_background_sleep(gw, interval);
    }
    return NULL;
}

/* ---------------------------------------------------------------- state */

static void gateway_restore_route(kg_gateway *gw, kg_vcluster *vc)
{
    char active[KG_NAME_MAX];
    uint64_t epoch = 0;
    int active_idx = vc->cfg->primary;
    int rc = kg_store_get_vcluster(gw->store, vc->cfg->name, active, sizeof(active), &epoch);
    if (rc == 0) {
        int idx = kg_gateway_cluster_index(gw, active);
        if (idx == vc->cfg->primary || (idx >= 0 && idx == vc->cfg->secondary))
            active_idx = idx;
        else
            kg_warn("vcluster %s: stored active cluster %s is no longer one of its clusters; "
                    "using the primary %s",
                    vc->cfg->name, active, gw->clusters[vc->cfg->primary].cfg->name);
    }
    atomic_store(&vc->route, KG_ROUTE_WORD(epoch, active_idx));
    if (rc == 0)
        kg_info("vcluster %s: active cluster %s (epoch %llu, from the state store)", vc->cfg->name,
                gw->clusters[active_idx].cfg->name, (unsigned long long)epoch);
}

/* ---------------------------------------------------------------- the switch */

void kg_gateway_note_request(kg_vcluster *vc, uint64_t route)
{
    if (atomic_load_explicit(&vc->first_request_ms, memory_order_relaxed) ||
        !atomic_load_explicit(&vc->switched_at_ms, memory_order_relaxed) ||
        route != atomic_load_explicit(&vc->route, memory_order_acquire))
        return;
    uint_fast64_t none = 0;
    atomic_compare_exchange_strong(&vc->first_request_ms, &none, (uint64_t)kg_time_now_ms());
}

/* Publishes NEW_WORD as VC's route and closes the connections opened under an older one; the
 * caller holds vc->switch_lock. Returns how many connections were closed. */
static int route_publish(kg_gateway *gw, kg_vcluster *vc, uint64_t new_word)
{
    /* Reset before publishing: a request on the new route must find "none yet". */
    atomic_store(&vc->first_request_ms, 0);
    atomic_store(&vc->switched_at_ms, (uint64_t)kg_time_now_ms());
    atomic_store_explicit(&vc->route, new_word, memory_order_release);
    int closed = kg_workers_close_stale(gw->workers, gw->n_workers, vc, new_word);
    atomic_fetch_add(&vc->failovers_total, 1);
    return closed;
}

/* A switch committed by another instance (or won against this one): applied when newer. */
static int route_apply_locked(kg_gateway *gw, kg_vcluster *vc, int active, uint64_t epoch)
{
    uint64_t word = atomic_load(&vc->route);
    if (epoch <= KG_ROUTE_EPOCH(word)) return -1; /* never back to an older epoch */
    uint64_t start = kg_now_us();
    int closed = route_publish(gw, vc, KG_ROUTE_WORD(epoch, active));
    uint64_t took = kg_now_us() - start;
    kg_leave_switch(vc->leave, &gw->clusters[KG_ROUTE_ACTIVE(word)]); /* in the background */
    atomic_store(&vc->last_switch_us, took);
    kg_info("vcluster %s switched %s -> %s (epoch %llu, through another instance): %d "
            "connections closed in %.2f ms",
            vc->cfg->name, gw->clusters[KG_ROUTE_ACTIVE(word)].cfg->name,
            gw->clusters[active].cfg->name, (unsigned long long)epoch, closed,
            (double)took / 1000.0);
    return closed;
}

int kg_gateway_apply_route(kg_gateway *gw, kg_vcluster *vc, int active, uint64_t epoch)
{
    /* A local switch holds the lock through its commit, which a slow database may stretch to
     * its statement timeout: the fleet thread must not wait that long (its lease would run out
     * unnoticed), so it tries again shortly instead. */
    if (pthread_mutex_trylock(&vc->switch_lock) != 0) return KG_ROUTE_BUSY;
    int closed = route_apply_locked(gw, vc, active, epoch);
    pthread_mutex_unlock(&vc->switch_lock);
    return closed;
}

static int switch_target(kg_gateway *gw, const kg_vcluster *vc, const kg_switch_request *req,
                         char *err, size_t errlen)
{
    if (req->to && *req->to) {
        int idx = kg_gateway_cluster_index(gw, req->to);
        if (idx < 0) {
            snprintf(err, errlen, "unknown cluster '%s'", req->to);
            return -404;
        }
        if (idx != vc->cfg->primary && idx != vc->cfg->secondary) {
            snprintf(err, errlen, "cluster '%s' is not a cluster of vcluster '%s'", req->to,
                     vc->cfg->name);
            return -409;
        }
        return idx;
    }
    if (req->failback) return vc->cfg->primary;
    if (vc->cfg->secondary < 0) {
        snprintf(err, errlen, "vcluster '%s' has no secondary cluster", vc->cfg->name);
        return -409;
    }
    return vc->cfg->secondary;
}

static json_t *switch_describe(kg_gateway *gw, const kg_vcluster *vc, int from, int to,
                               uint64_t epoch, const kg_switch_request *req)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:b}", "vcluster", vc->cfg->name, "from",
                          gw->clusters[from].cfg->name, "to", gw->clusters[to].cfg->name, "epoch",
                          (json_int_t)epoch, "reason", req->reason ? req->reason : "", "actor",
                          req->actor ? req->actor : "unknown", "forced", req->force);
    if (d && req->planned_report) json_object_set(d, "planned", req->planned_report);
    if (d && req->automatic) {
        json_object_set_new(d, "automatic", json_true());
        if (req->evidence) json_object_set_new(d, "evidence", json_deep_copy(req->evidence));
    }
    return d;
}

/* Every refused switch is audited too: an auditor must see what was attempted. */
static int switch_refuse(kg_gateway *gw, json_t *details, int status, const char *why,
                         json_t **result)
{
    json_object_set_new(details, "error", json_string(why));
    kg_store_audit_append(gw->store, "switch.refused", details);
    kg_warn("switch refused: %s", why);
    *result = json_pack("{s:s, s:O}", "error", why, "request", details);
    json_decref(details);
    return status;
}

static json_t *switch_request_json(const kg_switch_request *req)
{
    return json_pack("{s:s, s:s?, s:s, s:s, s:s, s:b}", "vcluster", req->vcluster, "to", req->to,
                     "action", req->failback ? "failback" : "failover", "reason",
                     req->reason ? req->reason : "", "actor", req->actor ? req->actor : "unknown",
                     "forced", req->force);
}

/* The parity pre-flight (parity.on_switch): the target against what clients used, with the
 * active side's configs as kgate last read them (the active side may be the one that died).
 * Adds the result to DETAILS; -1 with ERR when it refuses. */
static int switch_parity(kg_gateway *gw, kg_vcluster *vc, int to, const kg_switch_request *req,
                         json_t *details, char *err, size_t errlen)
{
    if (!vc->parity || req->force || vc->cfg->parity_on_switch == KG_PARITY_OFF) return 0;
    json_t *report = parity_run(gw, vc, to, 0, 2000);
    if (!report) return 0;
    int64_t count = json_integer_value(json_object_get(report, "count"));
    json_t *diffs = json_object_get(report, "differences");
    json_t *kept = json_array(); /* the audit entry names the first few */
    for (size_t i = 0; i < json_array_size(diffs) && i < 20; i++)
        json_array_append(kept, json_array_get(diffs, i));
    json_t *summary = json_pack("{s:I, s:o}", "count", (json_int_t)count, "differences", kept);
    json_t *error = json_object_get(report, "error");
    if (error) json_object_set(summary, "error", error);
    json_object_set_new(details, "parity", summary);
    json_decref(report);
    if (count == 0 || vc->cfg->parity_on_switch != KG_PARITY_REFUSE) return 0;
    if (req->automatic) {
        /* A disaster failover is not held back by differences: they are on record. */
        json_object_set_new(summary, "refusal_overridden", json_true());
        kg_warn("vcluster %s: parity check found %lld difference(s) with cluster '%s'; an "
                "automatic failover goes ahead (recorded in the audit entry)",
                vc->cfg->name, (long long)count, gw->clusters[to].cfg->name);
        return 0;
    }
    snprintf(err, errlen,
             "parity check: %lld difference(s) between what clients use and cluster '%s' "
             "(see \"parity\"; `kgate parity %s`); use force to switch anyway",
             (long long)count, gw->clusters[to].cfg->name, vc->cfg->name);
    return -1;
}

int kg_gateway_parity(kg_gateway *gw, const char *vcluster, const char *to, json_t **result)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    if (!vc) {
        *result = json_pack("{s:s}", "error", "unknown vcluster");
        return 404;
    }
    if (!vc->parity) {
        *result = json_pack("{s:s}", "error", "the vcluster has no secondary cluster");
        return 409;
    }
    int target = parity_other_side(vc);
    if (to && *to) {
        target = kg_gateway_cluster_index(gw, to);
        if (target != vc->cfg->primary && target != vc->cfg->secondary) {
            *result = json_pack("{s:s}", "error", "not a cluster of this vcluster");
            return 404;
        }
    }
    *result = parity_run(gw, vc, target, 1, 3000);
    if (!*result) *result = json_pack("{s:s}", "error", "out of memory");
    json_object_set_new(*result, "vcluster", json_string(vc->cfg->name));
    return 200;
}

/* Consumer group offsets on the target (offsets: ...), before any client reconnects there.
 * Bounded by offsets.timeout_ms and never a reason to refuse: a disaster switch goes ahead
 * whatever the target answers, and DETAILS (the result and the audit entry) say what was done. */
static void switch_offsets(kg_gateway *gw, kg_vcluster *vc, int from, int to, json_t *details)
{
    const kg_vcluster_cfg *cfg = vc->cfg;
    if (!vc->offsets || (!cfg->offsets_checkpoints && cfg->offsets_policy == KG_OFFSETS_LEAVE))
        return;
    kg_cluster *target = &gw->clusters[to];
    if (!atomic_load(&target->up)) {
        json_object_set_new(details, "offsets",
                            json_pack("{s:s}", "error", "the target is down: nothing translated"));
        return;
    }
    kg_offsets_switch s = {.from = &gw->clusters[from],
                           .to = target,
                           .from_alias = cfg->offsets_alias[from == cfg->primary ? 0 : 1],
                           .checkpoints = cfg->offsets_checkpoints,
                           .policy = cfg->offsets_policy,
                           .timeout_ms = cfg->offsets_timeout_ms};
    json_t *report = kg_offsets_run(vc->offsets, &s);
    if (report) json_object_set_new(details, "offsets", report);
}

/* Another kgate sharing the store switched first (its epoch is already there): 409 naming the
 * winner's side and epoch, which this instance applies at once (the fleet module would on the
 * notification too; only a newer epoch is ever applied). */
static int switch_lost_race(kg_gateway *gw, kg_vcluster *vc, json_t *details, json_t **result)
{
    char active[KG_NAME_MAX] = "";
    uint64_t epoch = 0;
    if (kg_store_get_vcluster(gw->store, vc->cfg->name, active, sizeof(active), &epoch) == 0) {
        int idx = kg_gateway_cluster_index(gw, active);
        if (idx == vc->cfg->primary || (idx >= 0 && idx == vc->cfg->secondary))
            route_apply_locked(gw, vc, idx, epoch);
    } else {
        snprintf(active, sizeof(active), "unknown");
    }
    char why[KG_NAME_MAX + 160];
    snprintf(why, sizeof(why), "another switch won: the state store has '%s' active at epoch %llu",
             active, (unsigned long long)epoch);
    json_object_set_new(details, "winner",
                        json_pack("{s:s, s:I}", "active", active, "epoch", (json_int_t)epoch));
    int status = switch_refuse(gw, details, 409, why, result);
    json_object_set_new(*result, "active", json_string(active));
    json_object_set_new(*result, "epoch", json_integer((json_int_t)epoch));
    return status;
}

static int switch_locked(kg_gateway *gw, kg_vcluster *vc, const kg_switch_request *req,
                         json_t **result)
{
    char err[256];
    uint64_t start = kg_now_us();
    uint64_t word = atomic_load(&vc->route);
    int from = KG_ROUTE_ACTIVE(word);
    uint64_t epoch = KG_ROUTE_EPOCH(word);
    int to = switch_target(gw, vc, req, err, sizeof(err));
    if (to < 0) return switch_refuse(gw, switch_request_json(req), -to, err, result);
    if (to == from) {
        *result = json_pack("{s:s, s:s, s:I, s:b, s:s}", "vcluster", vc->cfg->name, "active",
                            gw->clusters[to].cfg->name, "epoch", (json_int_t)epoch, "changed", 0,
                            "message", "already active: nothing to do");
        return 200;
    }
    json_t *details = switch_describe(gw, vc, from, to, epoch + 1, req);
    kg_cluster *target = &gw->clusters[to];
    /* An automatic switch goes by the fleet's majority, not this instance's probe. */
    if (!req->force && !req->automatic && !atomic_load(&target->up)) {
        pthread_rwlock_rdlock(&target->lock);
        snprintf(err, sizeof(err), "cluster '%s' is down (%s); use force to switch anyway",
                 target->cfg->name, target->last_error[0] ? target->last_error : "not probed yet");
        pthread_rwlock_unlock(&target->lock);
        return switch_refuse(gw, details, 409, err, result);
    }
    if (switch_parity(gw, vc, to, req, details, err, sizeof(err)) < 0)
        return switch_refuse(gw, details, 409, err, result);
    switch_offsets(gw, vc, from, to, details);
    start = kg_now_us(); /* the switch itself, without the pre-flight */
    /* Durable first: after a crash kgate comes back on the side the store names. */
    /* compare-and-set: one wins; in a fleet no switch while a planned one holds, but its own */
    int committed =
        kg_store_commit_switch_held(gw->store, vc->cfg->name, target->cfg->name, epoch + 1,
                                    "switch", details, req->fleet_hold, err, sizeof(err));
    if (committed == 1) return switch_lost_race(gw, vc, details, result);
    if (committed == 2) return switch_refuse(gw, details, 409, err, result);
    if (committed != 0) {
        json_decref(details);
        /* 503: the store (PostgreSQL) may be briefly away; nothing was switched, retry. */
        *result = json_pack("{s:s}", "error", "cannot persist the switch in the state store");
        return 503;
    }
    int closed = route_publish(gw, vc, KG_ROUTE_WORD(epoch + 1, to));
    uint64_t took = kg_now_us() - start;
    atomic_store(&vc->last_switch_us, took);
    json_object_set_new(details, "connections_closed", json_integer(closed));
    /* The old side's groups are left in the background (kg_leave): how many members. */
    if (vc->leave)
        json_object_set_new(
            details, "leave_groups",
            json_pack("{s:i}", "members", kg_leave_switch(vc->leave, &gw->clusters[from])));
    /* Integers only in audit entries: anyone can re-hash them with any JSON library. */
    json_object_set_new(details, "duration_us", json_integer((json_int_t)took));
    kg_store_audit_append(gw->store, "switch.completed", details);
    json_object_set_new(details, "duration_ms", json_real((double)took / 1000.0));
    kg_info("vcluster %s switched %s -> %s (epoch %llu): %d connections closed in %.2f ms (%s)",
            vc->cfg->name, gw->clusters[from].cfg->name, target->cfg->name,
            (unsigned long long)(epoch + 1), closed, (double)took / 1000.0,
            req->reason ? req->reason : "no reason given");
    json_object_set_new(details, "changed", json_true());
    *result = details;
    return 200;
}

int kg_gateway_switch(kg_gateway *gw, const kg_switch_request *req, json_t **result)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, req->vcluster);
    if (!vc) {
        char why[KG_NAME_MAX + 32];
        snprintf(why, sizeof(why), "unknown vcluster '%s'", req->vcluster);
        return switch_refuse(gw, switch_request_json(req), 404, why, result);
    }
    const char *lost = kg_gateway_state_lost(gw);
    if (lost) {
        *result = json_pack("{s:s}", "error", lost);
        return 503;
    }
    char busy[300];
    if (!req->inner && kg_planned_busy(vc->planned, busy, sizeof(busy))) {
        char why[340];
        snprintf(why, sizeof(why), "another switch is in progress: %s", busy);
        return switch_refuse(gw, switch_request_json(req), 409, why, result);
    }
    if (req->planned) return kg_planned_switch(gw, vc, req, result);
    pthread_mutex_lock(&vc->switch_lock);
    int status;
    if (atomic_load(&gw->stopping)) {
        *result = json_pack("{s:s}", "error", "gateway is shutting down");
        status = 503;
    } else {
        status = switch_locked(gw, vc, req, result);
    }
    pthread_mutex_unlock(&vc->switch_lock);
    /* The other instances apply it on the store's NOTIFY; the caller learns which did. */
    if (gw->fleet && status == 200 && json_is_true(json_object_get(*result, "changed"))) {
        uint64_t epoch = (uint64_t)json_integer_value(json_object_get(*result, "epoch"));
        json_object_set_new(
            *result, "instances",
            kg_fleet_wait_acks(gw->fleet, vc->cfg->name, epoch, gw->cfg->ack_timeout_ms));
    }
    return status;
}

/* ---------------------------------------------------------------- fleet */

void kg_gateway_fence(kg_gateway *gw, enum kg_fence fence)
{
    atomic_store(&gw->fence, fence);
    if (fence != KG_FENCE_CLOSED) return;
    /* No connection's route word is all ones: every connection of the vcluster closes. */
    for (kg_vcluster *vc = atomic_load(&gw->all_vclusters); vc; vc = vc->all_next)
        if (atomic_load(&vc->client_conns) > 0)
            kg_workers_close_stale(gw->workers, gw->n_workers, vc, UINT64_MAX);
}

const char *kg_gateway_state_lost(kg_gateway *gw)
{
    return gw->fleet ? kg_fleet_state_lost(gw->fleet) : NULL;
}

/* ---------------------------------------------------------------- status */

static json_t *cluster_status(kg_cluster *c)
{
    json_t *brokers = json_array();
    pthread_rwlock_rdlock(&c->lock);
    for (int i = 0; i < c->n_brokers; i++)
        json_array_append_new(brokers,
                              json_pack("{s:i, s:s, s:i}", "node_id", c->brokers[i].node_id, "host",
                                        c->brokers[i].host, "port", c->brokers[i].port));
    json_t *j =
        json_pack("{s:s, s:b, s:b, s:f, s:I, s:s, s:s, s:o}", "name", c->cfg->name, "up",
                  atomic_load(&c->up), "auth_failed", atomic_load(&c->auth_failed), "probe_ms",
                  (double)atomic_load(&c->probe_us) / 1000.0, "last_probe_unix_ms",
                  (json_int_t)atomic_load(&c->last_probe_unix_ms), "last_error", c->last_error,
                  "cluster_id", c->cluster_id, "brokers", brokers);
    pthread_rwlock_unlock(&c->lock);
    return j;
}

/* The last parity check of VC in short ({to, count, checked_at, error?}), or NULL. */
static json_t *parity_summary(kg_vcluster *vc)
{
    json_t *last = vc->parity ? kg_parity_last(vc->parity) : NULL;
    if (!last) return NULL;
    json_t *out = json_pack("{s:O, s:O, s:O}", "to", json_object_get(last, "to"), "count",
                            json_object_get(last, "count"), "checked_at",
                            json_object_get(last, "checked_at"));
    json_t *error = json_object_get(last, "error");
    if (out && error) json_object_set(out, "error", error);
    json_decref(last);
    return out;
}

static json_t *vcluster_status(kg_gateway *gw, kg_vcluster *vc)
{
    uint64_t word = atomic_load(&vc->route);
    const kg_cluster *cl = gw->clusters;
    json_t *status = json_pack(
        "{s:s, s:s, s:i, s:s, s:s?, s:s, s:I, s:i, s:I, s:f}", "name", vc->cfg->name, "cluster_id",
        vc->cfg->cluster_id, "port", vc->cfg->port, "primary", cl[vc->cfg->primary].cfg->name,
        "secondary", vc->cfg->secondary >= 0 ? cl[vc->cfg->secondary].cfg->name : NULL, "active",
        cl[KG_ROUTE_ACTIVE(word)].cfg->name, "epoch", (json_int_t)KG_ROUTE_EPOCH(word),
        "client_connections", atomic_load(&vc->client_conns), "failovers_total",
        (json_int_t)atomic_load(&vc->failovers_total), "last_switch_ms",
        (double)atomic_load(&vc->last_switch_us) / 1000.0);
    uint64_t switched = atomic_load(&vc->switched_at_ms);
    uint64_t first = atomic_load(&vc->first_request_ms);
    if (status && switched)
        json_object_set_new(status, "switched_at", json_integer((json_int_t)switched));
    if (status && switched && first)
        json_object_set_new(status, "first_request_at", json_integer((json_int_t)first));
    char hold[300];
    if (status && kg_planned_busy(vc->planned, hold, sizeof(hold)))
        json_object_set_new(status, "planned_switch", json_string(hold));
    json_t *parity = parity_summary(vc);
    if (status && parity)
        json_object_set_new(status, "parity", parity);
    else
        json_decref(parity);
    return status;
}

json_t *kg_gateway_status(kg_gateway *gw)
{
    json_t *vcs = json_array(), *cls = json_array();
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++)
        json_array_append_new(vcs, vcluster_status(gw, t->v[i]));
    int n = kg_gateway_n_clusters(gw);
    for (int i = 0; i < n; i++)
        if (!atomic_load(&gw->clusters[i].retired))
            json_array_append_new(cls, cluster_status(&gw->clusters[i]));
    json_t *j =
        json_pack("{s:o, s:o, s:i}", "vclusters", vcs, "clusters", cls, "workers", gw->n_workers);
    if (gw->fleet) json_object_set_new(j, "fleet", kg_fleet_status(gw->fleet));
    if (gw->autofo) json_object_set_new(j, "auto_failover", kg_autofo_status(gw->autofo));
    return j;
}

int kg_gateway_sample(kg_gateway *gw, const char *vcluster, kg_vc_sample *out)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    if (!vc) return -1;
    kg_vcm_sample(vc->metrics, out);
    return 0;
}

int kg_gateway_inspect(kg_gateway *gw, const char *vcluster, int on)
{
    kg_vcluster *vc = kg_gateway_vcluster(gw, vcluster);
    if (!vc) return -1;
    atomic_fetch_add(&vc->inspect, on ? 1 : -1);
    return 0;
}

int kg_gateway_ready(kg_gateway *gw)
{
    char why[160];
    return kg_gateway_unready_reason(gw, why, sizeof(why)) == NULL;
}

const char *kg_gateway_unready_reason(kg_gateway *gw, char *buf, size_t len)
{
    if (atomic_load(&gw->draining)) return "draining";
    if (atomic_load(&gw->fence) == KG_FENCE_CLOSED)
        return "state store unreachable: fenced (on_state_loss fail-closed)";
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++) {
        int active = KG_ROUTE_ACTIVE(atomic_load(&t->v[i]->route));
        if (!atomic_load(&gw->clusters[active].up)) {
            snprintf(buf, len, "vcluster %s: active cluster %s is down", t->v[i]->cfg->name,
                     gw->clusters[active].cfg->name);
            return buf;
        }
    }
    return NULL;
}

json_t *kg_gateway_readiness(kg_gateway *gw)
{
    char buf[256];
    const char *why = kg_gateway_unready_reason(gw, buf, sizeof(buf));
    json_t *j = json_pack("{s:b}", "ready", why == NULL);
    if (why) json_object_set_new(j, "reason", json_string(why));
    if (!gw->fleet) return j;
    const char *lost = kg_gateway_state_lost(gw);
    json_object_set_new(j, "state_store", json_string(lost ? "unreachable" : "ok"));
    if (lost) {
        char text[768];
        snprintf(text, sizeof(text), "%s; %s", lost,
                 atomic_load(&gw->fence) == KG_FENCE_CLOSED
                     ? "on_state_loss fail-closed: not accepting clients"
                     : "on_state_loss serve-last-known: routing on the last known epochs, "
                       "changes refused");
        json_object_set_new(j, "state_lost", json_string(text));
    }
    return j;
}

void kg_gateway_collect_metrics(kg_gateway *gw)
{
    if (gw->fleet) kg_fleet_collect_metrics(gw->fleet);
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++) {
        kg_vcm_collect(t->v[i]->metrics, gw, t->v[i]);
        kg_gauge_set(t->v[i]->epoch_gauge, (double)KG_ROUTE_EPOCH(atomic_load(&t->v[i]->route)));
    }
    int n = kg_gateway_n_clusters(gw);
    for (int i = 0; i < n; i++)
        if (!atomic_load(&gw->clusters[i].retired))
            kg_vcm_collect_cluster(gw->metrics, &gw->clusters[i]);
}

/* Last of the start: the front end (the admin API) may use everything built before it. */
static int gateway_start_frontend(kg_gateway *gw)
{
    if (!gw->frontend.start) return 0;
    if (gw->frontend.start(gw, &gw->frontend_handle) < 0) return -1;
    gw->frontend_started = 1;
    return 0;
}

/* ---------------------------------------------------------------- start / stop */

int kg_gw_apply_chaos_config(kg_gateway *gw, const kg_config *cfg, char *err, size_t errlen)
{
    char why[512];
    json_t *rules = cfg->chaos_rules ? json_incref(cfg->chaos_rules) : json_array();
    int rc = kg_chaos_apply_config(gw->chaos, rules, why, sizeof(why));
    json_decref(rules);
    if (rc < 0) {
        snprintf(err, errlen, "%s: chaos rules: %s", cfg->path, why);
        kg_error("%s", err);
    }
    return rc;
}

/* Re-reads every listener's certificate files; all or nothing is not possible (each swap is
 * its own), so a failure names the vcluster and leaves the ones before it reloaded. */
int kg_gw_reload_certificates(kg_gateway *gw, char *err, size_t errlen)
{
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++) {
        kg_vcluster *vc = t->v[i];
        char why[256];
        if (vc->tls && kg_tls_server_reload(vc->tls, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "vcluster %s: listener TLS: %s", vc->cfg->name, why);
            kg_error("%s", err);
            return -1;
        }
    }
    return 0;
}

int kg_gw_reload_frontend(kg_gateway *gw, char *err, size_t errlen)
{
    if (!gw->frontend_started || !gw->frontend.reload) return 0;
    char why[400];
    if (gw->frontend.reload(gw->frontend_handle, why, sizeof(why)) == 0) return 0;
    snprintf(err, errlen, "admin API: %s", why);
    kg_error("%s", err);
    return -1;
}

kg_limits *kg_gw_limits_from(const kg_config *cfg)
{
    kg_limits *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    *l = (kg_limits){.max_frame_bytes = cfg->max_frame_bytes,
                     .buffer_bytes = cfg->buffer_bytes,
                     .max_connections = cfg->max_connections,
                     .connect_timeout_ms = cfg->connect_timeout_ms,
                     .drain_timeout_ms = cfg->drain_timeout_ms,
                     .switch_grace_ms = cfg->switch_grace_ms};
    return l;
}

const kg_limits *kg_gateway_limits(kg_gateway *gw)
{
    return atomic_load(&gw->limits);
}

static void limits_free(kg_gateway *gw)
{
    kg_limits *l = atomic_exchange(&gw->limits, NULL);
    while (l) {
        kg_limits *older = l->older;
        free(l);
        l = older;
    }
}

static int gateway_sample_env(void *ctx, const char *vcluster, kg_vc_sample *out)
{
    return kg_gateway_sample(ctx, vcluster, out);
}

static int gateway_inspect_env(void *ctx, const char *vcluster, int on)
{
    return kg_gateway_inspect(ctx, vcluster, on);
}

static int gateway_init_tls(kg_gateway *gw, kg_vcluster *vc)
{
    char err[256];
    vc->tls = kg_tls_server_new(&vc->cfg->tls, err, sizeof(err));
    vc->tls_failures = kg_tls_failures_new();
    if (!vc->tls_failures) snprintf(err, sizeof(err), "out of memory");
    if (!vc->tls || !vc->tls_failures ||
        kg_principal_map_init(&vc->principals, &vc->cfg->tls, err, sizeof(err)) < 0) {
        kg_error("vcluster %s: listener TLS: %s", vc->cfg->name, err);
        return -1;
    }
    static const char *const results[2] = {"failed", "ok"};
    for (int i = 0; i < 2; i++) {
        char labels[256];
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->cfg->name, "result",
                                 results[i], NULL);
        vc->tls_handshakes[i] = kg_metrics_counter(
            gw->metrics, "kgate_tls_handshakes_total",
            "TLS handshakes with clients, by result (failed: bad certificate, protocol, ...).",
            labels);
    }
    return 0;
}

/* The config file's top-level acls: list into the store (kg_acl_apply_config). */
int kg_gw_apply_acl_config(kg_gateway *gw, const kg_config *cfg, char *err, size_t errlen)
{
    char why[512];
    if (kg_acl_apply_config(gw->acls, cfg->acl_bindings, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", cfg->path, why);
        kg_error("%s", err);
        return -1;
    }
    return 0;
}

int kg_gw_cluster_init(kg_gateway *gw, int index, const kg_cluster_cfg *cfg)
{
    kg_cluster *c = &gw->clusters[index];
    char err[256];
    if (kg_cluster_init(c, cfg, index) < 0) {
        kg_error("cluster %s: out of memory", cfg->name);
        return -1;
    }
    if (cfg->tls.enabled && !(c->tls = kg_tls_client_new(&cfg->tls, err, sizeof(err)))) {
        kg_error("cluster %s: TLS: %s", cfg->name, err);
        return -1;
    }
    return 0;
}

/* What a vcluster with a secondary has: the parity pre-flight, offsets at a switch, the
 * mirror, the rejoin watch. */
static int vcluster_init_secondary(kg_gateway *gw, kg_vcluster *vc, const char *labels)
{
    if (!(vc->parity = kg_parity_new())) return -1;
    if (!(vc->offsets = kg_offsets_new(gw->metrics, vc->cfg->name))) return -1;
    vc->mirror = kg_mirror_new(vc->cfg, gw->metrics, gw->store);
    if (vc->cfg->mirror_topics[0] && !vc->mirror) return -1;
    if (!(vc->rejoin = kg_rejoin_new())) return -1;
    if (gw->cfg->switch_leave && !(vc->leave = kg_leave_new(gw->metrics, vc->cfg->name))) return -1;
    if (!(vc->planned = kg_planned_new(gw->metrics, vc->cfg->name))) return -1;
    vc->parity_diffs = kg_metrics_gauge(
        gw->metrics, "kgate_parity_differences",
        "Differences the last parity check found between the virtual cluster's other "
        "side and what its clients use on the active one (missing topics, partition "
        "counts, topic configs); -1 when the check could not run",
        labels);
    return 0;
}

static int vcluster_init(kg_gateway *gw, kg_vcluster *vc)
{
    pthread_mutex_init(&vc->switch_lock, NULL);
    gateway_restore_route(gw, vc);
    vc->metrics = kg_vcm_new(gw->metrics, vc->cfg->name);
    if (!vc->metrics) return -1;
    vc->sasl = kg_sasl_listener_new(vc->cfg, gw->users, gw->metrics);
    if (vc->cfg->auth_gateway && !vc->sasl) return -1;
    if (vc->cfg->tls.enabled && gateway_init_tls(gw, vc) < 0) return -1;
    char labels[256];
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->cfg->name, NULL);
    vc->acl_denials = kg_metrics_counter(
        gw->metrics, "kgate_acl_denials_total",
        "Requests (or topics of a request) the ACLs denied, acls: enabled.", labels);
    const char *backend = kg_store_backend_name(gw->store);
    if (backend && strcmp(backend, "postgres") == 0)
        vc->epoch_gauge =
            kg_metrics_gauge(gw->metrics, "kgate_instance_epoch",
                             "The switch epoch this instance routes a vcluster on.", labels);
    if (vc->cfg->secondary >= 0 && vcluster_init_secondary(gw, vc, labels) < 0) return -1;
    int sides[2] = {vc->cfg->primary, vc->cfg->secondary};
    for (int s = 0; s < 2 && vc->cfg->auth_passthrough; s++)
        if (sides[s] >= 0) gw->clusters[sides[s]].versions_only = 1;
    return 0;
}

kg_vcluster *kg_gw_vcluster_new(kg_gateway *gw, const kg_vcluster_cfg *cfg, kg_vcluster_cfg *own,
                                int index)
{
    kg_vcluster *vc = calloc(1, sizeof(*vc));
    if (!vc) {
        kg_error("vcluster %s: out of memory", cfg->name);
        free(own);
        return NULL;
    }
    vc->cfg = cfg;
    vc->own_cfg = own;
    vc->index = index;
    /* Listed first, so that a half-built one is freed at stop like the others. */
    vc->all_next = atomic_load(&gw->all_vclusters);
    atomic_store(&gw->all_vclusters, vc);
    if (vcluster_init(gw, vc) < 0) {
        atomic_store(&vc->retired, 1);
        return NULL;
    }
    return vc;
}

static void vcluster_free(kg_vcluster *vc)
{
    kg_vcm_free(vc->metrics);
    kg_parity_free(vc->parity);
    kg_offsets_free(vc->offsets);
    kg_mirror_free(vc->mirror);
    kg_rejoin_free(vc->rejoin);
    kg_leave_free(vc->leave);
    kg_planned_free(vc->planned);
    kg_sasl_listener_free(vc->sasl); /* after the workers, like the rules */
    kg_tls_server_free(vc->tls);
    kg_tls_failures_free(vc->tls_failures);
    kg_principal_map_free(&vc->principals);
    pthread_mutex_destroy(&vc->switch_lock);
    free(vc->own_cfg);
    free(vc);
}

static int gateway_init_vclusters(kg_gateway *gw)
{
    const kg_config *cfg = gw->cfg;
    kg_vc_table *t = calloc(1, sizeof(*t));
    if (!t) return -1;
    t->v = calloc(cfg->n_vclusters > 0 ? (size_t)cfg->n_vclusters : 1, sizeof(*t->v));
    if (!t->v) {
        free(t);
        return -1;
    }
    kg_gw_publish_vclusters(gw, t); /* first: freed at stop whatever happens below */
    for (int i = 0; i < cfg->n_vclusters; i++) {
        kg_vcluster *vc = kg_gw_vcluster_new(gw, &cfg->vclusters[i], NULL, i);
        if (!vc) return -1;
        t->v[t->n++] = vc;
    }
    atomic_store(&gw->next_vc_index, cfg->n_vclusters);
    return 0;
}

static int gateway_init_state(kg_gateway *gw)
{
    const kg_config *cfg = gw->cfg;
    gw->clusters = calloc(KG_CLUSTERS_MAX, sizeof(*gw->clusters));
    gw->metrics = kg_metrics_new();
    if (!gw->clusters || !gw->metrics) return -1;
    char err[256];
    for (int i = 0; i < cfg->n_clusters; i++) {
        atomic_store(&gw->n_clusters, i + 1); /* destroyed at stop even when it fails */
        if (kg_gw_cluster_init(gw, i, &cfg->clusters[i]) < 0) return -1;
    }
    kg_store_options store_opts = {.connect_timeout_ms = cfg->state_connect_timeout_ms,
                                   .statement_timeout_ms = cfg->state_statement_timeout_ms};
    gw->store = kg_store_open_with(cfg->state_path, &store_opts, err, sizeof(err));
    if (!gw->store) {
        char where[KG_PATH_MAX];
        kg_store_redact_location(cfg->state_path, where, sizeof(where)); /* no password */
        kg_error("state store %s: %s", where, err);
        return -1;
    }
    gw->chaos = kg_chaos_new(gw->store, gw->metrics);
    char why[600];
    if (!gw->chaos || kg_gw_apply_chaos_config(gw, cfg, why, sizeof(why)) < 0) return -1;
    gw->users = kg_users_new(gw->store);
    if (!gw->users) return -1;
    gw->acls = kg_acl_registry_new(gw->store);
    if (!gw->acls || kg_gw_apply_acl_config(gw, cfg, why, sizeof(why)) < 0) return -1;
    if (gateway_init_vclusters(gw) < 0) return -1;
    kg_experiment_env env = {
        .ctx = gw, .sample = gateway_sample_env, .inspect = gateway_inspect_env};
    gw->experiments = kg_experiments_new(gw->chaos, gw->store, &env);
    return gw->experiments ? 0 : -1;
}

int kg_gw_start_mirror(kg_gateway *gw)
{
    if (gw->mirror_started) return 0;
    int mirrors = 0;
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++)
        mirrors += t->v[i]->mirror != NULL;
    if (!mirrors) return 0;
    /* With a PostgreSQL state one instance of the fleet copies (kg_gateway_mirror.c). */
    if (pthread_create(&gw->mirror_thread, NULL, kg_gateway_mirror_main, gw) != 0) return -1;
    gw->mirror_started = 1;
    return 0;
}

void kg_gw_wake_background(kg_gateway *gw)
{
    pthread_mutex_lock(&gw->probe_lock);
    pthread_cond_broadcast(&gw->probe_cond);
    pthread_mutex_unlock(&gw->probe_lock);
}

static int gateway_start_threads(kg_gateway *gw)
{
    gw->reaper = kg_reaper_start();
    if (!gw->reaper) return -1;
    gw->workers = calloc((size_t)gw->cfg->workers, sizeof(*gw->workers));
    if (!gw->workers) return -1;
    for (int i = 0; i < gw->cfg->workers; i++) {
        gw->workers[i] = kg_worker_start(gw, i);
        if (!gw->workers[i]) return -1;
        gw->n_workers++;
    }
    pthread_mutex_init(&gw->probe_lock, NULL);
    pthread_cond_init(&gw->probe_cond, NULL);
    if (pthread_create(&gw->probe_thread, NULL, gateway_probe_main, gw) != 0) return -1;
    gw->probe_started = 1;
    if (kg_gw_start_mirror(gw) < 0) return -1;
    kg_loop_on_wake(gw->accept_loop, gateway_accept_stop, gw);
    kg_timer_init(&gw->housekeeping, gateway_housekeeping, gw);
    kg_loop_timer_in(gw->accept_loop, &gw->housekeeping, 1000000);
    if (pthread_create(&gw->accept_thread, NULL, gateway_accept_main, gw) != 0) return -1;
    gw->accept_started = 1;
    return 0;
}

/* With PostgreSQL the state is shared: this instance joins the fleet (fleet/kg_fleet.h) once
 * the workers run (applying a newer epoch closes connections), before the admin API. */
static int gateway_start_fleet(kg_gateway *gw)
{
    const char *backend = kg_store_backend_name(gw->store);
    if (!backend || strcmp(backend, "postgres") != 0) {
        gw->autofo = kg_autofo_start(gw, NULL); /* SQLite: this instance alone */
        return 0;
    }
    char err[768];
    gw->fleet = kg_fleet_start(gw, kg_store_pg_conninfo(gw->store), err, sizeof(err));
    if (!gw->fleet) {
        kg_error("fleet: instance %s cannot join: %s", gw->cfg->instance_name, err);
        return -1;
    }
    gw->autofo = kg_autofo_start(gw, kg_store_pg_conninfo(gw->store));
    return 0;
}

kg_gateway *kg_gateway_start(kg_config *cfg, const kg_gateway_frontend *frontend)
{
    kg_gateway *gw = calloc(1, sizeof(*gw));
    if (!gw) return NULL;
    gw->cfg = cfg;
    atomic_store(&gw->limits, kg_gw_limits_from(cfg));
    if (!atomic_load(&gw->limits)) {
        free(gw);
        return NULL;
    }
    if (frontend) gw->frontend = *frontend;
    gw->accept_loop = kg_loop_new();
    pthread_mutex_init(&gw->reload_lock, NULL);
    pthread_mutex_init(&gw->drain_lock, NULL);
    pthread_cond_init(&gw->drain_cond, NULL);
    if (!gw->accept_loop || gateway_init_state(gw) < 0 || gateway_listen_reconcile(gw) < 0 ||
        gateway_start_threads(gw) < 0 || gateway_start_fleet(gw) < 0 ||
        gateway_start_frontend(gw) < 0) {
        kg_gateway_stop(gw);
        return NULL;
    }
    kg_info("kgate serving %d virtual cluster(s) with %d worker(s)", kg_gateway_vclusters(gw)->n,
            gw->n_workers);
    return gw;
}

void kg_gateway_stop(kg_gateway *gw)
{
    if (!gw) return;
    atomic_store(&gw->stopping, 1);
    if (gw->frontend_started) gw->frontend.stop(gw->frontend_handle);
    if (gw->accept_started) {
        kg_loop_wake(gw->accept_loop);
        pthread_join(gw->accept_thread, NULL);
    }
    if (gw->accept_loop) {
        gateway_unlisten(gw, NULL);
        kg_loop_free(gw->accept_loop);
    }
    /* Before the fleet: it switches through it. */
    kg_autofo_stop(gw->autofo);
    gw->autofo = NULL;
    /* Before the workers go: the fleet thread closes connections through them. */
    kg_fleet_stop(gw->fleet);
    gw->fleet = NULL;
    for (kg_vcluster *vc = atomic_load(&gw->all_vclusters); vc; vc = vc->all_next)
        kg_planned_stop(vc->planned); /* it answers through the workers */
    uint64_t deadline = kg_now_us() + (uint64_t)kg_gateway_limits(gw)->drain_timeout_ms * 1000u;
    for (int i = 0; i < gw->n_workers; i++)
        kg_worker_drain_and_join(gw->workers[i], deadline);
    kg_reaper_stop(gw->reaper); /* after the workers: they hand it sockets until they exit */
    if (gw->store) gateway_audit_tls_failures(gw, 0); /* the last minute's, not lost */
    if (gw->probe_started) {
        pthread_mutex_lock(&gw->probe_lock);
        pthread_cond_broadcast(&gw->probe_cond);
        pthread_mutex_unlock(&gw->probe_lock);
        pthread_join(gw->probe_thread, NULL);
    }
    if (gw->mirror_started) pthread_join(gw->mirror_thread, NULL);
    /* After the admin server and the accept thread (their last request and tick), before the
     * chaos rules, the store and the vclusters it still uses. */
    if (gw->experiments) kg_experiments_free(gw->experiments);
    kg_chaos_free(gw->chaos); /* after the workers: connections hold rule snapshots */
    kg_vcluster *vc = atomic_exchange(&gw->all_vclusters, NULL);
    while (vc) {
        kg_vcluster *next = vc->all_next;
        vcluster_free(vc);
        vc = next;
    }
    kg_vc_table *t = atomic_exchange(&gw->vcs, NULL);
    while (t) {
        kg_vc_table *older = t->older;
        free(t->v);
        free(t);
        t = older;
    }
    kg_users_free(gw->users); /* writes the queued failure audit entries: before the store */
    /* ACL snapshots: after the workers, which hold them. */
    kg_acl_registry_free(gw->acls);
    for (int i = 0; gw->clusters && i < kg_gateway_n_clusters(gw); i++) {
        kg_tls_client_free(gw->clusters[i].tls);
        kg_cluster_cfg *own = gw->clusters[i].own_cfg;
        kg_cluster_destroy(&gw->clusters[i]);
        kg_gw_cluster_cfg_free(own);
    }
    if (gw->store) kg_store_close(gw->store);
    kg_metrics_free(gw->metrics);
    free(gw->listeners);
    free(gw->workers);
    free(gw->clusters);
    limits_free(gw);
    free(gw);
}

/* ---------------------------------------------------------------- drain */

/* Has the accept thread open or close the listeners as `draining` says, and waits for it.
 * Returns 0, or -1 when listening again failed (the log says why). */
int kg_gw_listen_sync(kg_gateway *gw, char *why, size_t len)
{
    pthread_mutex_lock(&gw->drain_lock);
    uint64_t ticket = ++gw->listen_asked;
    pthread_mutex_unlock(&gw->drain_lock);
    kg_loop_wake(gw->accept_loop);
    pthread_mutex_lock(&gw->drain_lock);
    while (gw->listen_done < ticket && !atomic_load(&gw->stopping))
        pthread_cond_wait(&gw->drain_cond, &gw->drain_lock);
    int failed = gw->listen_error;
    if (failed && why) snprintf(why, len, "%s", gw->listen_why);
    pthread_mutex_unlock(&gw->drain_lock);
    return failed ? -1 : 0;
}

json_t *kg_gateway_drain_progress(kg_gateway *gw)
{
    int left = kg_gateway_connections(gw);
    if (!atomic_load(&gw->draining))
        return json_pack("{s:s, s:i}", "state", "serving", "connections_left", left);
    pthread_mutex_lock(&gw->drain_lock);
    char started[40];
    time_t t = (time_t)(gw->drain_started_ms / 1000);
    struct tm tm;
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    int within = gw->drain_within_ms;
    pthread_mutex_unlock(&gw->drain_lock);
    return json_pack("{s:s, s:i, s:s, s:i}", "state", left > 0 ? "draining" : "drained",
                     "connections_left", left, "started", started, "within_ms", within);
}

int kg_gateway_drain(kg_gateway *gw, int within_ms, int grace_ms, const char *actor,
                     json_t **result)
{
    if (atomic_exchange(&gw->draining, 1)) { /* one drain at a time: the first one's slots */
        *result = kg_gateway_drain_progress(gw);
        return 200;
    }
    /* Not ready first: the load balancer's next health check moves new clients away while the
     * listeners close and the connections go. */
    pthread_mutex_lock(&gw->drain_lock);
    gw->drain_started_ms = (int64_t)(uint64_t)kg_time_now_ms();
    gw->drain_within_ms = within_ms;
    pthread_mutex_unlock(&gw->drain_lock);
    kg_gw_listen_sync(gw, NULL, 0);
    uint64_t now = kg_now_us();
    kg_workers_drain(gw->workers, gw->n_workers, (uint64_t)within_ms * 1000u,
                     now + ((uint64_t)within_ms + (uint64_t)grace_ms) * 1000u);
    int left = kg_gateway_connections(gw);
    kg_info("draining: %d connection(s) to close within %d ms (by %s)", left, within_ms, actor);
    json_t *details =
        json_pack("{s:i, s:i, s:s}", "within_ms", within_ms, "connections", left, "actor", actor);
    kg_store_audit_append(gw->store, "gateway.drain", details); /* borrows DETAILS */
    json_decref(details);
    *result = kg_gateway_drain_progress(gw);
    return 200;
}

int kg_gateway_drain_cancel(kg_gateway *gw, const char *actor, json_t **result)
{
    if (!atomic_exchange(&gw->draining, 0)) {
        *result = json_pack("{s:s}", "error", "not draining");
        return 409;
    }
    kg_workers_drain_cancel(gw->workers, gw->n_workers);
    char why[320];
    if (kg_gw_listen_sync(gw, why, sizeof(why)) < 0) {
        atomic_store(&gw->draining, 1); /* still not serving: say so in /readyz */
        kg_gw_listen_sync(gw, NULL, 0); /* and what did open closes again */
        *result = json_pack("{s:s}", "error",
                            "cannot listen on the configured ports again (see the log); the "
                            "instance stays drained");
        return 500;
    }
    kg_info("drain cancelled by %s: serving again", actor);
    json_t *details = json_pack("{s:s}", "actor", actor);
    kg_store_audit_append(gw->store, "gateway.drain_cancelled", details);
    json_decref(details);
    *result = kg_gateway_drain_progress(gw);
    return 200;
}

/* SIGTERM: drain (spread over half the grace, the other half for the last requests), wait until
 * no connection is left or the grace ends, and stop. Another SIGTERM/SIGINT stops at once. */
static void gateway_drain_for_exit(kg_gateway *gw, const sigset_t *signals, const char *name)
{
    kg_sd_notify("STOPPING=1\nSTATUS=draining");
    int grace = kg_gateway_limits(gw)->drain_timeout_ms;
    kg_info("%s: draining (up to %d ms) and stopping", name, grace);
    json_t *progress = NULL;
    char actor[32];
    snprintf(actor, sizeof(actor), "signal:%s", name);
    kg_gateway_drain(gw, grace / 2, grace - grace / 2, actor, &progress);
    json_decref(progress);
    uint64_t deadline = kg_now_us() + (uint64_t)grace * 1000u;
    while (kg_gateway_connections(gw) > 0 && kg_now_us() < deadline) {
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        int sig = sigtimedwait(signals, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            kg_warn("second signal: stopping without waiting for the drain");
            return;
        }
    }
}

/* systemd (Type=notify): ready once everything listens; the watchdog, when asked for. */
static void gateway_notify_ready(kg_gateway *gw)
{
    char status[128];
    snprintf(status, sizeof(status), "READY=1\nSTATUS=serving %d virtual cluster(s)",
             kg_gateway_vclusters(gw)->n);
    kg_sd_notify(status);
    uint64_t usec = kg_sd_watchdog_usec();
    if (usec && usec < 2000000u)
        kg_warn("WatchdogSec below 2 s: kgate pings once a second, systemd may kill it early");
    if (usec)
        kg_info("systemd watchdog: pinging once a second (WatchdogSec %llu ms)",
                (unsigned long long)(usec / 1000));
    gw->watchdog_usec = usec; /* last: the housekeeping thread reads it from now on */
}

int kg_gateway_serve(kg_config *cfg, const kg_gateway_frontend *frontend)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so only sigwait below ever sees them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    kg_gateway *gw = kg_gateway_start(cfg, frontend);
    if (!gw) return 1;
    gateway_notify_ready(gw);
    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            kg_sd_notify("RELOADING=1");
            int n_errors = 0;
            kg_config *fresh = kg_config_load(cfg->path, stderr, &n_errors);
            char why[600];
            if (!fresh || kg_gateway_reload(gw, fresh, why, sizeof(why)) < 0)
                kg_error("SIGHUP: %s not reloaded (%d error(s)); still running the old rules",
                         cfg->path, n_errors);
            kg_config_free(fresh);
            kg_sd_notify("READY=1");
            continue;
        }
        gateway_drain_for_exit(gw, &set, sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    kg_gateway_stop(gw);
    kg_info("stopped");
    return 0;
}
