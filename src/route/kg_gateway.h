/* kg_gateway — the running gateway: physical clusters, virtual clusters and their active side,
 * the workers that proxy connections, the acceptor, the health prober and the switch.
 *
 * Routing state of a virtual cluster is one 64-bit word (epoch << 8 | active cluster index),
 * read lock-free by every connection; a connection keeps the word it was opened with as its
 * snapshot and is closed as soon as the live word differs from it.
 */
#ifndef KG_GATEWAY_H
#define KG_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "engine/kg_loop.h"
#include "config/kg_config.h"
#include "route/kg_cluster.h"
#include "security/kg_principal.h"
#include "security/kg_tls.h"
#include "util/kg_log.h"

typedef struct kg_worker kg_worker;
typedef struct kg_store kg_store;
typedef struct kg_chaos kg_chaos;
typedef struct kg_experiments kg_experiments;
typedef struct kg_reaper kg_reaper;
typedef struct kg_metrics kg_metrics;
typedef struct kg_vc_metrics kg_vc_metrics;
typedef struct kg_users kg_users;
typedef struct kg_acls kg_acls;
typedef struct kg_sasl_listener kg_sasl_listener;
typedef struct kg_counter kg_counter;
typedef struct kg_gauge kg_gauge;
typedef struct kg_parity kg_parity;
typedef struct kg_offsets kg_offsets;
typedef struct kg_mirror kg_mirror;
typedef struct kg_rejoin kg_rejoin;
typedef struct kg_planned kg_planned;

typedef struct kg_gateway kg_gateway;
typedef struct kg_fleet kg_fleet;

/* limits: and switch.grace_ms as one snapshot. A reload that changes them publishes a new one;
 * a connection keeps the one it was opened with (kg_conn.limits), so no decision of a
 * connection ever sees two different limits. Every snapshot lives until the gateway stops. */
typedef struct kg_limits {
    uint32_t max_frame_bytes;
    uint32_t buffer_bytes;
    int max_connections;
    int connect_timeout_ms;
    int drain_timeout_ms;
    int switch_grace_ms;
    struct kg_limits *older; /* the snapshot this one replaced (freed at stop) */
} kg_limits;

#define KGATE_VERSION "0.1.0"

/* What an instance of a fleet does once it lost its lease on the shared state (fleet/). */
enum kg_fence {
    KG_FENCE_NONE = 0,      /* serving */
    KG_FENCE_CLOSED = 1,    /* on_state_loss fail-closed: no client connection at all */
    KG_FENCE_LAST_KNOWN = 2 /* serve-last-known: routing on, changes refused */
};

/* What serves in front of the gateway (the admin API), known to it only as plain callbacks so
 * that route/ never depends on admin/ (main wires admin/kg_admin_gateway.h in). START runs last
 * in kg_gateway_start, once everything it may use is up, and fails the start when it returns
 * -1; it hands back its handle (may be NULL: nothing to serve). STOP runs first in
 * kg_gateway_stop, so the front end's last request ends before anything it uses goes away. */
typedef struct kg_gateway_frontend {
    int (*start)(kg_gateway *gw, void **handle);
    void (*stop)(void *handle);
    /* kg_gateway_reload: re-read what the front end loaded from files (its TLS certificate).
     * 0, or -1 with the reason in ERR and the old state kept. May be NULL. */
    int (*reload)(void *handle, char *err, size_t errlen);
    /* A reload added or removed virtual clusters (kg_gateway_vclusters has the new set). May
     * be NULL. */
    void (*vclusters_changed)(void *handle);
} kg_gateway_frontend;

#define KG_ROUTE_ACTIVE(word) ((int)((word)&0xff))
#define KG_ROUTE_EPOCH(word) ((word) >> 8)
#define KG_ROUTE_WORD(epoch, active) (((uint64_t)(epoch) << 8) | (uint64_t)(active))

typedef struct kg_vcluster {
    const kg_vcluster_cfg *cfg;
    int index;
    atomic_uint_fast64_t route;  /* KG_ROUTE_WORD(epoch, active cluster index) */
    pthread_mutex_t switch_lock; /* serializes switches of this virtual cluster */

    atomic_int client_conns;
    atomic_int inspect; /* > 0 while experiments watch this vcluster: responses are inspected */
    atomic_uint_fast64_t failovers_total;
    atomic_uint_fast64_t last_switch_us;
    /* The console's switch timeline: when the last switch was published here (Unix ms, 0: none
     * since start) and when the first request was forwarded on its route (0: none yet). */
    atomic_uint_fast64_t switched_at_ms;
    atomic_uint_fast64_t first_request_ms;
    kg_vc_metrics *metrics;
    kg_sasl_listener *sasl;        /* auth: gateway; NULL when clients do not authenticate */
    kg_tls_server *tls;            /* listener.tls; NULL when clients connect in plaintext only */
    kg_principal_map principals;   /* listener.tls.principal_mapping */
    kg_counter *tls_handshakes[2]; /* [0] failed, [1] completed */
    kg_log_limit tls_log;          /* failed client handshakes are logged at this rate */
    kg_tls_failures *tls_failures; /* ... and audited, aggregated (tls.handshake_failures) */
    kg_counter *acl_denials;       /* acls: enabled */
    kg_log_limit acl_log;
    kg_parity *parity;      /* with a secondary: what the switch checks first (kg_parity) */
    uint64_t parity_due_us; /* the prober's next background check (prober thread only) */
    kg_gauge *parity_diffs; /* kgate_parity_differences{vcluster} */
    kg_offsets *offsets;    /* with a secondary: consumer offsets at a switch (kg_offsets) */
    kg_mirror *mirror;      /* mirror: topics copied to the other side (kg_mirror) */
    kg_rejoin *rejoin;      /* with a secondary: members not rejoined since a switch */
    struct kg_leave *leave; /* with a secondary and switch.leave_groups: members to leave */
    kg_planned *planned;    /* with a secondary: the planned switchover's hold and release */
    kg_gauge *epoch_gauge;  /* kgate_instance_epoch{vcluster}, with a fleet */

    /* A reload removed it (or could not finish adding it): its listeners close, its connections
     * close at their request boundaries, new ones are refused. A retired vcluster stays
     * allocated until the gateway stops: connections, the admin API and the background threads
     * may still hold a pointer to it. */
    atomic_int retired;
    int listening;                /* accept thread only: its ports are listened on */
    kg_vcluster_cfg *own_cfg;     /* a reload's vcluster: its config, owned (cfg points to it) */
    struct kg_vcluster *all_next; /* every vcluster built, newest first (gw->all_vclusters) */
} kg_vcluster;

/* The virtual clusters served now. A reload that adds or removes one publishes a new table
 * whole; readers take the current one (kg_gateway_vclusters) lock-free and may keep using it
 * however long: tables, like vclusters, are freed only when the gateway stops. */
typedef struct kg_vc_table {
    int n;
    kg_vcluster **v;
    struct kg_vc_table *older; /* the table this one replaced */
} kg_vc_table;

/* Physical clusters: slots in gw->clusters, indexes in route words (8 bits). A reload appends
 * new ones; a removed one is retired in its slot (never probed again), so an index never
 * changes meaning. */
#define KG_CLUSTERS_MAX 255

struct kg_gateway {
    kg_config *cfg;             /* as started: global settings; vclusters: kg_gateway_vclusters */
    kg_cluster *clusters;       /* KG_CLUSTERS_MAX slots */
    atomic_int n_clusters;      /* slots in use (retired ones included) */
    _Atomic(kg_vc_table *) vcs; /* the vclusters served now */
    _Atomic(kg_vcluster *) all_vclusters; /* every one ever built (all_next), freed at stop */
    pthread_mutex_t reload_lock;          /* one reload at a time (SIGHUP, the API) */
    atomic_int next_vc_index;             /* kg_vcluster.index of the next one built */
    kg_worker **workers;
    int n_workers;
    kg_reaper *reaper; /* closes the backend sockets of closed connections */

    kg_store *store;
    kg_metrics *metrics;
    kg_chaos *chaos;
    kg_experiments *experiments;
    kg_users *users; /* SASL users kgate manages (auth: gateway) */
    kg_acls *acls;   /* ACL bindings (acls: enabled), security/kg_acl.h */

    kg_gateway_frontend frontend; /* all NULL when there is none (the demo) */
    void *frontend_handle;
    int frontend_started;

    kg_loop *accept_loop; /* also runs the once-a-second housekeeping timer */
    kg_timer housekeeping;
    pthread_t accept_thread;
    int accept_started;
    struct kg_listener **listeners; /* accept thread only */
    int n_listen, cap_listen;
    atomic_uint next_worker;

    pthread_t probe_thread;
    int probe_started;
    pthread_t mirror_thread; /* kg_mirror's passes, when a vcluster has a mirror */
    int mirror_started;
    pthread_mutex_t probe_lock; /* with probe_cond: lets stop() cut the probe interval short */
    pthread_cond_t probe_cond;

    atomic_int stopping;

    /* drain (kg_gateway_drain): not ready, listeners closed, connections closing */
    atomic_int draining;
    pthread_mutex_t drain_lock; /* with drain_cond: the accept thread did what `draining` asks */
    pthread_cond_t drain_cond;
    int listen_paused;           /* accept thread: the listeners are closed for a drain */
    int listen_error;            /* accept thread: listening again failed */
    char listen_why[320];        /* drain_lock: the first port that failed, and why */
    kg_vcluster **listen_adding; /* drain_lock: a reload's new vclusters, listened on first */
    int n_adding;
    uint64_t listen_asked;    /* drain_lock: how many listener changes were asked ... */
    uint64_t listen_done;     /* ... and done */
    int64_t drain_started_ms; /* unix time */
    int drain_within_ms;

    /* systemd's watchdog interval ($WATCHDOG_USEC), 0 = none: housekeeping pings it */
    _Atomic uint64_t watchdog_usec;

    _Atomic(kg_limits *) limits; /* the current snapshot (kg_gateway_limits) */
    kg_fleet *fleet;          /* PostgreSQL state: this instance in the fleet; NULL with SQLite */
    struct kg_autofo *autofo; /* auto_failover enabled somewhere; else NULL */
    atomic_int autofo_controller; /* this instance is the auto_failover controller */
    atomic_int fence;             /* enum kg_fence */
};

/* Builds and starts everything (store, listeners, workers, prober, then FRONTEND, which may be
 * NULL and is copied). On failure prints why to the log and returns NULL. */
kg_gateway *kg_gateway_start(kg_config *cfg, const kg_gateway_frontend *frontend);
/* Stops accepting, lets in-flight requests finish (bounded by limits.drain_timeout_ms), and
 * releases everything. The config stays the caller's. */
void kg_gateway_stop(kg_gateway *gw);

/* Re-reads what can change without a restart (today: the chaos rules of the config file).
 * Returns 0, or -1 with the error in ERR (and the log) and nothing changed. */
int kg_gateway_reload(kg_gateway *gw, const kg_config *fresh, char *err, size_t errlen);
/* The same, and REPORT (an object, may be NULL) gets "applied": [what changed] (a cluster's
 * new bootstrap list) and "needs_restart": [what differs but takes a restart]. */
int kg_gateway_reload_report(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                             size_t errlen);

/* `kgate serve`: start (with FRONTEND, see kg_gateway_start), wait for SIGTERM/SIGINT, stop.
 * Returns the process exit code. */
int kg_gateway_serve(kg_config *cfg, const kg_gateway_frontend *frontend);

typedef struct kg_switch_request {
    const char *vcluster;
    const char *to; /* cluster name; NULL = the secondary (failover) or the primary (failback) */
    int failback;
    int force;
    const char *reason;
    const char *actor;
    /* auto_failover's controller (fleet/kg_autofo.h): the fleet's verdicts stand in for this
     * instance's view of the target, and the parity pre-flight is recorded, never refusing.
     * EVIDENCE (borrowed, may be NULL) goes into the audit entry. */
    int automatic;
    json_t *evidence;
    /* Planned switchover (route/kg_planned.h): hold Produce requests, wait for the mirror's lag
     * to reach 0 (at most HOLD_MAX_MS; 0: switch.planned_hold_ms), switch, release them. */
    int planned;
    int hold_max_ms;
    json_t *planned_report; /* borrowed: what the hold did, for the audit entry */
    int inner;              /* the planned switch's own switch: not refused as "in progress" */
    int64_t fleet_hold;     /* in a fleet: the planned switch's hold (fleet/kg_fleet_planned.h) */
} kg_switch_request;

/* Switches a virtual cluster's active side. Returns an HTTP-style status (200 switched or
 * already active, 404 unknown vcluster/cluster, 409 refused) and a JSON description. */
int kg_gateway_switch(kg_gateway *gw, const kg_switch_request *req, json_t **result);
json_t *kg_gateway_status(kg_gateway *gw);
/* 1 when the active cluster of every virtual cluster is up (the admin API's /readyz), else 0. */
int kg_gateway_ready(kg_gateway *gw);
/* Why the instance is not ready ("draining", or which active cluster is down); NULL when
 * ready. */
const char *kg_gateway_unready_reason(kg_gateway *gw, char *buf, size_t len);

/* Drain: the instance stops serving without cutting a request. It turns not ready first (so a
 * load balancer's health check moves away), closes its listeners, closes idle connections at
 * once and busy ones at their next request boundary, spread over WITHIN_MS; any still open
 * WITHIN_MS + GRACE_MS after the start are closed. The process stays up, not serving, until
 * kg_gateway_drain_cancel or a stop. ACTOR is audited. Returns 200 (started, or already
 * draining) and sets *RESULT to the progress (kg_gateway_drain_progress). */
int kg_gateway_drain(kg_gateway *gw, int within_ms, int grace_ms, const char *actor,
                     json_t **result);
/* {"state": "serving"|"draining"|"drained", "connections_left", "started", "within_ms"}. */
json_t *kg_gateway_drain_progress(kg_gateway *gw);
/* Serves again: listeners open, ready. 200, 409 when not draining, 500 when a port cannot be
 * listened on again (the instance then stays drained). */
int kg_gateway_drain_cancel(kg_gateway *gw, const char *actor, json_t **result);

/* /readyz body: {"ready": bool, "reason"?} (new reference); with a fleet also "state_store"
 * ("ok" or "unreachable") and, without the lease, "state_lost": what the instance does (fenced:
 * not ready; serve-last-known: ready). */
json_t *kg_gateway_readiness(kg_gateway *gw);

/* Fleet (fleet/kg_fleet.h): applies a switch made through another instance: sets VC's route to
 * (EPOCH, ACTIVE) and closes the connections opened under the old one, as a local switch does
 * (its audit entry is the switching instance's). Only a NEWER epoch is applied: returns the
 * connections closed, -1 when EPOCH is not newer than the local one, or KG_ROUTE_BUSY when a
 * local switch of VC is under way (nothing done either way: try again shortly). */
#define KG_ROUTE_BUSY (-2)
int kg_gateway_apply_route(kg_gateway *gw, kg_vcluster *vc, int active, uint64_t epoch);
/* Fleet: enters (or leaves, KG_FENCE_NONE) a fence; KG_FENCE_CLOSED closes every client
 * connection and refuses new ones until it is lifted. */
void kg_gateway_fence(kg_gateway *gw, enum kg_fence fence);
/* Fleet: NULL when state changes are possible, else why not (a 503 for the admin API). */
const char *kg_gateway_state_lost(kg_gateway *gw);
/* The limits in force now (a new connection takes these). */
const kg_limits *kg_gateway_limits(kg_gateway *gw);
/* Client connections open now, over every virtual cluster. */
int kg_gateway_connections(kg_gateway *gw);
/* Refreshes the gauges of every virtual and physical cluster in gw->metrics, for a scrape. */
void kg_gateway_collect_metrics(kg_gateway *gw);

/* The parity pre-flight of VCLUSTER against cluster TO (NULL: the side a switch would go to),
 * run now (route/kg_parity.h). Returns an HTTP-style status (200, 404 unknown vcluster or
 * cluster, 409 no other side) and the report or an error in *RESULT. */
int kg_gateway_parity(kg_gateway *gw, const char *vcluster, const char *to, json_t **result);

/* Waits INTERVAL ms, or until stop() wakes the background threads (their sleep). */
void kg_gateway_background_sleep(kg_gateway *gw, int interval);

/* For experiments: cumulative counters of VCLUSTER (-1 when unknown), and turning response
 * inspection on/off (counted: every "on" needs an "off"). */
typedef struct kg_vc_sample kg_vc_sample;
int kg_gateway_sample(kg_gateway *gw, const char *vcluster, kg_vc_sample *out);
int kg_gateway_inspect(kg_gateway *gw, const char *vcluster, int on);

/* What clients of VC may use: kgate's codecs intersected with every cluster of VC that has
 * been probed, so a version negotiated before a switch still works after it. Returns 1 when
 * the active cluster's own versions are among them (it has been probed), else 0. */
int kg_gateway_version_ranges(kg_gateway *gw, const kg_vcluster *vc, kg_version_ranges *out);

/* A request of a connection opened under ROUTE (its route word) is being forwarded: the first
 * one on the route a switch published is noted (switched_at_ms / first_request_ms). Cheap: one
 * atomic load once noted. */
void kg_gateway_note_request(kg_vcluster *vc, uint64_t route);

/* The vclusters served now (never NULL; see kg_vc_table). */
const kg_vc_table *kg_gateway_vclusters(kg_gateway *gw);
/* The vcluster served under NAME, or NULL. */
kg_vcluster *kg_gateway_vcluster(kg_gateway *gw, const char *name);
/* Slots of gw->clusters in use (retired ones included: check kg_cluster.retired). */
int kg_gateway_n_clusters(kg_gateway *gw);
/* The index of the cluster NAME (not retired), or -1. */
int kg_gateway_cluster_index(kg_gateway *gw, const char *name);

/* Port of a virtual cluster's broker NODE_ID, or -1 when outside the configured node range. */
int kg_vcluster_node_port(const kg_vcluster *vc, int32_t node_id);

#endif
