/* kg_reload — what `kgate reload`, SIGHUP and POST /v1/reload change in a running gateway.
 *
 * Most of it is swapped in place (chaos rules, ACLs, certificates, limits, bootstrap lists).
 * Virtual clusters and clusters come and go whole: a new one is built and listened on before
 * anything else changes, then published in a new vcluster table; a removed one is retired (its
 * listeners close, its connections close at their request boundaries) and stays allocated until
 * the gateway stops, since connections and other threads may still hold a pointer to it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_worker.h"
#include "route/kg_gateway.h"
#include "route/kg_gateway_int.h"
#include "security/kg_acl.h"
#include "util/kg_log.h"

/* Adds "WHAT" to REPORT's array KEY (REPORT NULL: logged only). */
static void reload_note(json_t *report, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reload_note(json_t *report, const char *key, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (strcmp(key, "applied") == 0)
        kg_info("reload: %s", line);
    else
        kg_warn("reload: %s: not applied, takes a restart", line);
    if (!report) return;
    json_t *arr = json_object_get(report, key);
    if (!arr) json_object_set_new(report, key, arr = json_array());
    json_array_append_new(arr, json_string(line));
}

/* ---------------------------------------------------------------- cluster configs */

void kg_gw_cluster_cfg_free(kg_cluster_cfg *cfg)
{
    if (!cfg) return;
    free(cfg->bootstrap);
    if (cfg->sasl.swaps)
        explicit_bzero(cfg->sasl.swaps, (size_t)cfg->sasl.n_swaps * sizeof(*cfg->sasl.swaps));
    free(cfg->sasl.swaps);
    explicit_bzero(cfg, sizeof(*cfg)); /* passwords */
    free(cfg);
}

/* A copy of FROM that outlives the reloaded config it comes from (freed at stop). */
static kg_cluster_cfg *cluster_cfg_copy(const kg_cluster_cfg *from)
{
    kg_cluster_cfg *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    *c = *from;
    c->bootstrap = NULL;
    c->sasl.swaps = NULL;
    size_t boot = (size_t)from->n_bootstrap * sizeof(*from->bootstrap);
    size_t swaps = (size_t)from->sasl.n_swaps * sizeof(*from->sasl.swaps);
    c->bootstrap = malloc(boot ? boot : 1);
    c->sasl.swaps = malloc(swaps ? swaps : 1);
    if (!c->bootstrap || !c->sasl.swaps) {
        kg_gw_cluster_cfg_free(c);
        return NULL;
    }
    if (boot) memcpy(c->bootstrap, from->bootstrap, boot);
    if (swaps) memcpy(c->sasl.swaps, from->sasl.swaps, swaps);
    return c;
}

/* ---------------------------------------------------------------- what changes */

/* Vclusters and clusters a reload adds and removes. */
typedef struct reload_plan {
    int first_cluster, n_clusters_added; /* slots of the new clusters */
    kg_vcluster **added;
    int n_added;
    kg_vcluster **removed;
    int n_removed;
    int *clusters_removed;
    int n_clusters_removed;
} reload_plan;

static void plan_free(reload_plan *p)
{
    free(p->added);
    free(p->removed);
    free(p->clusters_removed);
}

/* The index in gw->clusters of FRESH's cluster INDEX (-1 for none: INDEX < 0). */
static int cluster_here(kg_gateway *gw, const kg_config *fresh, int index)
{
    return index < 0 ? -1 : kg_gateway_cluster_index(gw, fresh->clusters[index].name);
}

/* The vclusters of FRESH that run already, against how they run: what decides where they
 * listen and route (ports, node ids, primary, secondary) takes a restart, or a reload that
 * removes the vcluster and one that adds it back; so does anything else. */
static void note_changed_vclusters(kg_gateway *gw, const kg_config *fresh, json_t *report)
{
    for (int i = 0; i < fresh->n_vclusters; i++) {
        const kg_vcluster_cfg *nv = &fresh->vclusters[i];
        kg_vcluster *vc = kg_gateway_vcluster(gw, nv->name);
        if (!vc) continue;
        const kg_vcluster_cfg *ov = vc->cfg;
        kg_vcluster_cfg mapped = *nv; /* with this gateway's cluster indexes */
        mapped.primary = cluster_here(gw, fresh, nv->primary);
        mapped.secondary = cluster_here(gw, fresh, nv->secondary);
        if (nv->port != ov->port || nv->node_id_min != ov->node_id_min ||
            nv->node_id_max != ov->node_id_max || nv->tls.enabled != ov->tls.enabled ||
            nv->tls.port != ov->tls.port || mapped.primary != ov->primary ||
            mapped.secondary != ov->secondary)
            reload_note(report, "needs_restart",
                        "vcluster %s: port, node ids, TLS port, primary or secondary changed "
                        "(or remove it in one reload and add it back in the next)",
                        nv->name);
        else if (memcmp(&mapped, ov, sizeof(mapped)) != 0)
            reload_note(report, "needs_restart",
                        "vcluster %s: settings changed (listener, auth, parity, offsets, "
                        "mirror, replication, auto_failover, ...)",
                        nv->name);
    }
}

/* A cluster still used by a vcluster that keeps running stays, whatever FRESH says. */
static const char *cluster_user(kg_gateway *gw, const kg_config *fresh, int index)
{
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    for (int i = 0; i < t->n; i++) {
        const kg_vcluster_cfg *c = t->v[i]->cfg;
        if (kg_config_vcluster_index(fresh, c->name) >= 0 &&
            (c->primary == index || c->secondary == index))
            return c->name;
    }
    return NULL;
}

/* Fills P with what FRESH adds and removes; names what it cannot change in REPORT. -1 with ERR
 * when FRESH cannot be applied (nothing changed). */
static int plan_topology(kg_gateway *gw, const kg_config *fresh, json_t *report, reload_plan *p,
                         char *err, size_t errlen)
{
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    int n_here = kg_gateway_n_clusters(gw);
    p->first_cluster = n_here;
    for (int i = 0; i < fresh->n_clusters; i++)
        if (kg_gateway_cluster_index(gw, fresh->clusters[i].name) < 0) p->n_clusters_added++;
    if (n_here + p->n_clusters_added > KG_CLUSTERS_MAX) {
        snprintf(err, errlen,
                 "%d cluster(s) added: more than the %d an instance can have had since its start; "
                 "restart it",
                 p->n_clusters_added, KG_CLUSTERS_MAX);
        return -1;
    }
    p->added = calloc((size_t)fresh->n_vclusters + 1, sizeof(*p->added));
    p->removed = calloc((size_t)t->n + 1, sizeof(*p->removed));
    p->clusters_removed = calloc((size_t)n_here + 1, sizeof(*p->clusters_removed));
    if (!p->added || !p->removed || !p->clusters_removed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < t->n; i++)
        if (kg_config_vcluster_index(fresh, t->v[i]->cfg->name) < 0)
            p->removed[p->n_removed++] = t->v[i];
    for (int i = 0; i < n_here; i++) {
        kg_cluster *c = &gw->clusters[i];
        if (atomic_load(&c->retired) || kg_config_cluster_index(fresh, c->cfg->name) >= 0) continue;
        const char *user = cluster_user(gw, fresh, i);
        if (user)
            reload_note(report, "needs_restart",
                        "cluster %s removed: vcluster %s still uses it as it runs", c->cfg->name,
                        user);
        else
            p->clusters_removed[p->n_clusters_removed++] = i;
    }
    note_changed_vclusters(gw, fresh, report);
    return 0;
}

/* Builds the clusters FRESH adds in the next free slots, published as they are ready (the
 * prober starts on them; nothing routes to them until a vcluster of theirs is published). */
static int build_clusters(kg_gateway *gw, const kg_config *fresh, reload_plan *p, char *err,
                          size_t errlen)
{
    for (int i = 0; i < fresh->n_clusters; i++) {
        if (kg_gateway_cluster_index(gw, fresh->clusters[i].name) >= 0) continue;
        int slot = kg_gateway_n_clusters(gw);
        kg_cluster_cfg *own = cluster_cfg_copy(&fresh->clusters[i]);
        if (!own || kg_gw_cluster_init(gw, slot, own) < 0) {
            /* Never published: nobody else has seen the slot. */
            if (own) {
                kg_tls_client_free(gw->clusters[slot].tls);
                kg_cluster_destroy(&gw->clusters[slot]);
            }
            kg_gw_cluster_cfg_free(own);
            snprintf(err, errlen, "cluster %s: cannot be set up (see the log)",
                     fresh->clusters[i].name);
            return -1;
        }
        gw->clusters[slot].own_cfg = own;
        atomic_store_explicit(&gw->n_clusters, slot + 1, memory_order_release);
    }
    return 0;
}

/* Builds the vclusters FRESH adds, on this gateway's cluster indexes. */
static int build_vclusters(kg_gateway *gw, const kg_config *fresh, reload_plan *p, char *err,
                           size_t errlen)
{
    for (int i = 0; i < fresh->n_vclusters; i++) {
        const kg_vcluster_cfg *nv = &fresh->vclusters[i];
        if (kg_gateway_vcluster(gw, nv->name)) continue;
        kg_vcluster_cfg *own = malloc(sizeof(*own));
        if (!own) {
            snprintf(err, errlen, "vcluster %s: out of memory", nv->name);
            return -1;
        }
        *own = *nv;
        own->primary = cluster_here(gw, fresh, nv->primary);
        own->secondary = cluster_here(gw, fresh, nv->secondary);
        kg_vcluster *vc = kg_gw_vcluster_new(gw, own, own, atomic_fetch_add(&gw->next_vc_index, 1));
        if (!vc) {
            snprintf(err, errlen, "vcluster %s: cannot be set up (see the log)", nv->name);
            return -1;
        }
        p->added[p->n_added++] = vc;
    }
    return 0;
}

/* The new vclusters' ports, listened on before anything is published. */
static int listen_added(kg_gateway *gw, reload_plan *p, char *err, size_t errlen)
{
    if (!p->n_added) return 0;
    pthread_mutex_lock(&gw->drain_lock);
    gw->listen_adding = p->added;
    gw->n_adding = p->n_added;
    pthread_mutex_unlock(&gw->drain_lock);
    char why[320];
    if (kg_gw_listen_sync(gw, why, sizeof(why)) == 0) return 0;
    snprintf(err, errlen, "%s", why);
    return -1;
}

static void listen_added_done(kg_gateway *gw)
{
    pthread_mutex_lock(&gw->drain_lock);
    gw->listen_adding = NULL;
    gw->n_adding = 0;
    pthread_mutex_unlock(&gw->drain_lock);
}

/* Retires the vclusters of LIST: no listener, no new connection; open ones close at their
 * request boundary (within switch.grace_ms, as at a switch). Returns the connections closed. */
static int retire_vclusters(kg_gateway *gw, kg_vcluster **list, int n)
{
    if (!n) return 0;
    for (int i = 0; i < n; i++)
        atomic_store(&list[i]->retired, 1);
    kg_gw_listen_sync(gw, NULL, 0);
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += kg_workers_close_stale(gw->workers, gw->n_workers, list[i], UINT64_MAX);
    return closed;
}

/* A reload that fails after building: what it built is retired, as if never added. */
static void undo_topology(kg_gateway *gw, reload_plan *p)
{
    retire_vclusters(gw, p->added, p->n_added);
    listen_added_done(gw);
    int n = kg_gateway_n_clusters(gw);
    for (int i = p->first_cluster; i < n; i++)
        atomic_store(&gw->clusters[i].retired, 1);
}

/* Builds and listens on what FRESH adds: -1 with ERR and nothing changed (undone) when it
 * cannot. */
static int prepare_topology(kg_gateway *gw, const kg_config *fresh, reload_plan *p, char *err,
                            size_t errlen)
{
    if (build_clusters(gw, fresh, p, err, errlen) == 0 &&
        build_vclusters(gw, fresh, p, err, errlen) == 0 && listen_added(gw, p, err, errlen) == 0)
        return 0;
    kg_error("reload: %s", err);
    undo_topology(gw, p);
    return -1;
}

static void note_added(kg_gateway *gw, kg_vcluster *vc, json_t *report)
{
    const kg_vcluster_cfg *c = vc->cfg;
    uint64_t word = atomic_load(&vc->route);
    reload_note(report, "applied",
                "vcluster %s added: bootstrap port %d, brokers %d-%d, active %s (epoch %llu)",
                c->name, c->port, c->node_id_min, c->node_id_max,
                gw->clusters[KG_ROUTE_ACTIVE(word)].cfg->name,
                (unsigned long long)KG_ROUTE_EPOCH(word));
    if (c->auto_failover.enabled && !gw->autofo)
        reload_note(report, "needs_restart",
                    "vcluster %s: auto_failover (no vcluster had it when the instance started)",
                    c->name);
}

/* Publishes the new table (the running vclusters without the removed ones, with the added
 * ones), then retires the removed vclusters and clusters. Nothing here fails: the only
 * allocation is done first, and failing it changes nothing. */
static int commit_topology(kg_gateway *gw, reload_plan *p, json_t *report, char *err, size_t errlen)
{
    const kg_vc_table *cur = kg_gateway_vclusters(gw);
    kg_vc_table *t = calloc(1, sizeof(*t));
    if (t) t->v = calloc((size_t)(cur->n + p->n_added) + 1, sizeof(*t->v));
    if (!t || !t->v) {
        free(t);
        snprintf(err, errlen, "out of memory for the new vcluster table");
        return -1;
    }
    for (int i = 0; i < cur->n; i++) {
        int gone = 0;
        for (int r = 0; r < p->n_removed; r++)
            gone |= p->removed[r] == cur->v[i];
        if (!gone) t->v[t->n++] = cur->v[i];
    }
    for (int i = 0; i < p->n_added; i++)
        t->v[t->n++] = p->added[i];
    kg_gw_publish_vclusters(gw, t);
    listen_added_done(gw);
    for (int i = 0; i < p->n_added; i++)
        note_added(gw, p->added[i], report);
    for (int i = 0; i < p->n_removed; i++) {
        int closed = retire_vclusters(gw, &p->removed[i], 1);
        reload_note(report, "applied",
                    "vcluster %s removed: its ports closed, %d connection(s) closed at their "
                    "request boundary",
                    p->removed[i]->cfg->name, closed);
    }
    for (int i = 0; i < p->n_clusters_removed; i++) {
        kg_cluster *c = &gw->clusters[p->clusters_removed[i]];
        atomic_store(&c->retired, 1);
        reload_note(report, "applied", "cluster %s removed", c->cfg->name);
    }
    for (int i = p->first_cluster; i < kg_gateway_n_clusters(gw); i++)
        reload_note(report, "applied", "cluster %s added", gw->clusters[i].cfg->name);
    if (p->n_clusters_added) kg_gw_wake_background(gw); /* probed now, not in an interval */
    if (kg_gw_start_mirror(gw) < 0) kg_error("reload: cannot start the mirror thread");
    if ((p->n_added || p->n_removed) && gw->frontend_started && gw->frontend.vclusters_changed)
        gw->frontend.vclusters_changed(gw->frontend_handle);
    return 0;
}

/* ---------------------------------------------------------------- clusters in place */

/* The clusters of FRESH that run already: a changed bootstrap list is applied
 * (kg_cluster_set_bootstrap: new connections use it, open ones stay); a changed TLS or SASL
 * setting is named as taking a restart. -1 with ERR when out of memory. */
static int reload_clusters(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                           size_t errlen)
{
    for (int fi = 0; fi < fresh->n_clusters; fi++) {
        const kg_cluster_cfg *nc = &fresh->clusters[fi];
        int i = kg_gateway_cluster_index(gw, nc->name);
        if (i < 0) continue;
        kg_cluster *c = &gw->clusters[i];
        if (memcmp(&nc->tls, &c->cfg->tls, sizeof(nc->tls)) != 0 ||
            nc->sasl.mechanism != c->cfg->sasl.mechanism)
            reload_note(report, "needs_restart", "cluster %s: tls or sasl changed", nc->name);
        if (kg_cluster_bootstrap_is(c, nc->bootstrap, nc->n_bootstrap)) continue;
        if (kg_cluster_set_bootstrap(c, nc->bootstrap, nc->n_bootstrap) < 0) {
            snprintf(err, errlen, "cluster %s: out of memory for its new bootstrap", nc->name);
            return -1;
        }
        char list[512] = "";
        for (int b = 0; b < nc->n_bootstrap; b++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s:%u", b ? "," : "",
                     nc->bootstrap[b].host, nc->bootstrap[b].port);
        }
        reload_note(report, "applied",
                    "cluster %s: bootstrap %s (new connections; open ones keep theirs)", nc->name,
                    list);
    }
    return 0;
}

/* FRESH's limits and switch.grace_ms, published as a new snapshot when they differ. */
static int reload_limits(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                         size_t errlen)
{
    kg_limits *cur = atomic_load(&gw->limits);
    kg_limits *next = kg_gw_limits_from(fresh);
    if (!next) {
        snprintf(err, errlen, "out of memory for the new limits");
        return -1;
    }
    next->older = cur;
    if (memcmp(next, cur, offsetof(kg_limits, older)) == 0) {
        free(next);
        return 0;
    }
    atomic_store(&gw->limits, next);
    reload_note(report, "applied",
                "limits: max_connections %d, max_frame_bytes %u, buffer_bytes %u, "
                "connect_timeout_ms %d, drain_timeout_ms %d, switch.grace_ms %d (new connections; "
                "open ones keep theirs)",
                next->max_connections, next->max_frame_bytes, next->buffer_bytes,
                next->connect_timeout_ms, next->drain_timeout_ms, next->switch_grace_ms);
    return 0;
}

/* ---------------------------------------------------------------- reload */

int kg_gateway_reload(kg_gateway *gw, const kg_config *fresh, char *err, size_t errlen)
{
    return kg_gateway_reload_report(gw, fresh, NULL, err, errlen);
}

/* The in-place parts, in the order they always ran. */
static int reload_in_place(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                           size_t errlen)
{
    if (kg_gw_reload_certificates(gw, err, errlen) < 0 ||
        kg_gw_reload_frontend(gw, err, errlen) < 0 ||
        kg_gw_apply_chaos_config(gw, fresh, err, errlen) < 0 ||
        kg_gw_apply_acl_config(gw, fresh, err, errlen) < 0 ||
        reload_clusters(gw, fresh, report, err, errlen) < 0 ||
        reload_limits(gw, fresh, report, err, errlen) < 0)
        return -1;
    return 0;
}

static int reload_locked(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                         size_t errlen)
{
    char why[512];
    if (kg_acl_check_config(fresh->acl_bindings, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", fresh->path, why);
        kg_error("%s", err);
        return -1;
    }
    reload_plan plan = {0};
    int rc = -1;
    if (plan_topology(gw, fresh, report, &plan, err, errlen) < 0) goto out;
    /* New vclusters first: a port in use refuses the reload before anything changed. */
    if (prepare_topology(gw, fresh, &plan, err, errlen) < 0) goto out;
    if (reload_in_place(gw, fresh, report, err, errlen) < 0 ||
        commit_topology(gw, &plan, report, err, errlen) < 0) {
        undo_topology(gw, &plan);
        goto out;
    }
    kg_info("reloaded %s: %zu chaos rule(s) from the file, TLS certificates (listeners, admin "
            "API) from their files, clusters' bootstrap lists, limits; %d vcluster(s) added, %d "
            "removed",
            fresh->path, fresh->chaos_rules ? json_array_size(fresh->chaos_rules) : 0, plan.n_added,
            plan.n_removed);
    rc = 0;
out:
    plan_free(&plan);
    return rc;
}

int kg_gateway_reload_report(kg_gateway *gw, const kg_config *fresh, json_t *report, char *err,
                             size_t errlen)
{
    pthread_mutex_lock(&gw->reload_lock);
    int rc = reload_locked(gw, fresh, report, err, errlen);
    pthread_mutex_unlock(&gw->reload_lock);
    return rc;
}
