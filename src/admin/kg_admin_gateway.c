/* kg_admin_gateway — see kg_admin_gateway.h. The callbacks below only translate between
 * kg_admin_ops and the gateway's public API; what they do is the gateway's. */
#include "admin/kg_admin_gateway.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/kg_admin.h"
#include "admin/kg_admin_acls.h"
#include "admin/kg_admin_chaos.h"
#include "admin/kg_admin_drills.h"
#include "admin/kg_admin_experiments.h"
#include "admin/kg_admin_history.h"
#include "admin/kg_admin_ui.h"
#include "admin/kg_admin_users.h"
#include "config/kg_config.h"
#include "fleet/kg_fleet.h"
#include "route/kg_gateway_mirror.h"
#include "route/kg_vcmetrics.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

/* POST /v1/reload, GET parity, the mirror's two, the drain routes, the chaos, experiment, drill,
 * user and ACL routes, the history and the console. */
#define GATEWAY_N_ROUTES                                                                           \
    (2 + MIRROR_N_ROUTES + DRAIN_N_ROUTES + KG_ADMIN_CHAOS_N_ROUTES +                              \
     KG_ADMIN_EXPERIMENTS_N_ROUTES + KG_ADMIN_DRILLS_N_ROUTES + KG_ADMIN_USERS_N_ROUTES +          \
     KG_ADMIN_ACLS_N_ROUTES + KG_ADMIN_HISTORY_N_ROUTES + KG_ADMIN_UI_N_ROUTES)

/* What kg_admin_gateway_start hands back: the API and the history its routes read. */
typedef struct gateway_admin {
    kg_gateway *gw;
    kg_admin *admin;
    kg_admin_history *history;
} gateway_admin;

static json_t *admin_status(void *ctx)
{
    return kg_gateway_status(ctx);
}

static int admin_switch(void *ctx, const char *vcluster, const char *to, const char *reason,
                        const char *actor, int force, int failback, json_t **result)
{
    kg_switch_request req = {.vcluster = vcluster,
                             .to = to,
                             .failback = failback,
                             .force = force,
                             .reason = reason,
                             .actor = actor};
    return kg_gateway_switch(ctx, &req, result);
}

/* The same request, planned (route/kg_planned.h); a planned switch is never forced. */
static int admin_switch_planned(void *ctx, const char *vcluster, const char *to, const char *reason,
                                const char *actor, int failback, int hold_max_ms, json_t **result)
{
    kg_switch_request req = {vcluster, to, failback, 0, reason, actor};
    req.planned = 1;
    req.hold_max_ms = hold_max_ms;
    return kg_gateway_switch(ctx, &req, result);
}

static int admin_ready(void *ctx)
{
    return kg_gateway_ready(ctx);
}

static json_t *admin_readiness(void *ctx)
{
    return kg_gateway_readiness(ctx);
}

static const char *admin_state_lost(void *ctx)
{
    return kg_gateway_state_lost(ctx);
}

static void admin_collect(void *ctx)
{
    kg_gateway_collect_metrics(ctx);
}

/* POST /v1/reload: what SIGHUP does, with the errors in the reply. */
static int admin_reload(void *ctx, kg_admin_request *req)
{
    kg_gateway *gw = ctx;
    char why[600];
    char *errors = NULL;
    size_t errors_len = 0;
    FILE *errs = open_memstream(&errors, &errors_len);
    int n_errors = 0;
    kg_config *fresh = errs ? kg_config_load(gw->cfg->path, errs, &n_errors) : NULL;
    if (errs) fclose(errs);
    int status = 200;
    json_t *report = json_object();
    if (!fresh) {
        status = kg_admin_error(req, 400, "%s not reloaded: %s", gw->cfg->path,
                                errors ? errors : "cannot read it");
    } else if (kg_gateway_reload_report(gw, fresh, report, why, sizeof(why)) < 0) {
        status = kg_admin_error(req, 400, "not reloaded: %s", why);
    } else {
        json_t *details = json_pack("{s:s, s:s}", "path", gw->cfg->path, "actor", req->actor);
        kg_store_audit_append(gw->store, "config.reload", details); /* borrows DETAILS */
        json_decref(details);
        json_object_set_new(report, "reloaded", json_string(gw->cfg->path));
        json_object_set_new(
            report, "chaos_rules",
            json_integer(fresh->chaos_rules ? (int)json_array_size(fresh->chaos_rules) : 0));
        status = kg_admin_reply(req, 200, json_incref(report));
    }
    json_decref(report);
    kg_config_free(fresh);
    free(errors);
    return status;
}

/* STATUS with RESULT from the gateway: the result, or from 400 on its "error". */
static int admin_result_reply(kg_admin_request *req, int status, json_t *result)
{
    if (status >= 400) {
        int rc =
            kg_admin_error(req, status, "%s", json_string_value(json_object_get(result, "error")));
        json_decref(result);
        return rc;
    }
    return kg_admin_reply(req, status, result);
}

/* GET /v1/vclusters/NAME/parity[?to=CLUSTER]: the switch's pre-flight, run now. */
static int admin_parity(void *ctx, kg_admin_request *req)
{
    json_t *result = NULL;
    int status = kg_gateway_parity(ctx, req->params[0], kg_admin_query(req, "to"), &result);
    return admin_result_reply(req, status, result);
}

/* GET /v1/vclusters/NAME/mirror: the embedded mirror's lag now; POST .../mirror/pass: a pass
 * now, then the lag (kg_gateway_mirror). */
static int admin_mirror(void *ctx, kg_admin_request *req)
{
    json_t *result = NULL;
    int status = kg_gateway_mirror(ctx, req->params[0], 0, kg_admin_query(req, "topics"), &result);
    return admin_result_reply(req, status, result);
}

static int admin_mirror_pass(void *ctx, kg_admin_request *req)
{
    json_t *result = NULL;
    int status = kg_gateway_mirror(ctx, req->params[0], 1, NULL, &result);
    return admin_result_reply(req, status, result);
}

/* GET /v1/vclusters/NAME/replication: the replication's lag now, as a planned switch measures
 * it: the embedded mirror's or MirrorMaker 2's (kg_gateway_replication). */
static int admin_replication(void *ctx, kg_admin_request *req)
{
    json_t *result = NULL;
    int status = kg_gateway_replication(ctx, req->params[0], &result);
    return admin_result_reply(req, status, result);
}

static const kg_admin_route mirror_routes[] = {
    {"GET", "/v1/vclusters/{}/mirror", admin_mirror, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/vclusters/{}/mirror/pass", admin_mirror_pass, NULL, 0, KG_ROLE_OPERATOR},
    {"GET", "/v1/vclusters/{}/replication", admin_replication, NULL, 0, KG_ROLE_VIEWER},
};
#define MIRROR_N_ROUTES 3

/* ---- drain (kg_gateway_drain) ---- */

#define DRAIN_WITHIN_MAX_MS (24 * 3600 * 1000)

static int admin_drain_reply(kg_admin_request *req, int status, json_t *result)
{
    if (status >= 400) {
        json_t *msg = json_object_get(result, "error");
        int rc = kg_admin_error(req, status, "%s", json_string_value(msg));
        json_decref(result);
        return rc;
    }
    return kg_admin_reply(req, status, result);
}

/* The body's within_ms (default limits.drain_timeout_ms) into *MS; non-zero: the error reply
 * was sent. */
static int drain_within(kg_gateway *gw, kg_admin_request *req, json_int_t *ms)
{
    static const kg_admin_field fields[] = {{"within_ms", KG_FIELD_INT, 0}, {NULL}};
    int rc = kg_admin_check_fields(req, fields);
    if (rc) return rc;
    json_t *within = json_object_get(req->body, "within_ms");
    *ms = within ? json_integer_value(within) : kg_gateway_limits(gw)->drain_timeout_ms;
    if (*ms < 0 || *ms > DRAIN_WITHIN_MAX_MS)
        return kg_admin_error(req, 400, "within_ms must be 0..%d, not %lld", DRAIN_WITHIN_MAX_MS,
                              (long long)*ms);
    return 0;
}

/* POST /v1/drain {"within_ms": N} (default limits.drain_timeout_ms). */
static int admin_drain_start(void *ctx, kg_admin_request *req)
{
    kg_gateway *gw = ctx;
    json_int_t ms;
    int rc = drain_within(gw, req, &ms);
    if (rc) return rc;
    json_t *result = NULL;
    int status =
        kg_gateway_drain(gw, (int)ms, kg_gateway_limits(gw)->drain_timeout_ms, req->actor, &result);
    return admin_drain_reply(req, status, result);
}

static int admin_drain_progress(void *ctx, kg_admin_request *req)
{
    return kg_admin_reply(req, 200, kg_gateway_drain_progress(ctx));
}

static int admin_drain_cancel(void *ctx, kg_admin_request *req)
{
    json_t *result = NULL;
    int status = kg_gateway_drain_cancel(ctx, req->actor, &result);
    return admin_drain_reply(req, status, result);
}

/* NAME among the fleet's live instances as of the last renewal: 1 yes, 0 no (LIVE gets the
 * live names, for the error). */
static int fleet_instance_live(kg_gateway *gw, const char *name, char *live, size_t len)
{
    json_t *st = kg_fleet_status(gw->fleet);
    size_t i;
    json_t *inst;
    int found = 0;
    live[0] = '\0';
    json_array_foreach(json_object_get(st, "instances"), i, inst)
    {
        const char *n = json_string_value(json_object_get(inst, "name"));
        if (!n || !json_is_true(json_object_get(inst, "live"))) continue;
        found |= strcmp(n, name) == 0;
        size_t used = strlen(live);
        snprintf(live + used, len - used, "%s%s", used ? ", " : "", n);
    }
    json_decref(st);
    return found;
}

/* POST /v1/fleet/instances/NAME/drain[/cancel]: any instance drains (or serves again) the
 * instance NAME: itself at once, another through the state store, which NAME reads with its
 * next lease renewal (fleet/kg_fleet.h, KG_FLEET_DRAIN_KIND). */
static int fleet_drain(kg_gateway *gw, kg_admin_request *req, int cancel)
{
    const char *name = req->params[0];
    if (strcmp(name, gw->cfg->instance_name) == 0)
        return cancel ? admin_drain_cancel(gw, req) : admin_drain_start(gw, req);
    if (!gw->fleet)
        return kg_admin_error(req, 404,
                              "no instance '%s': this kgate (%s) is not in a fleet (its state is "
                              "not PostgreSQL)",
                              name, gw->cfg->instance_name);
    json_int_t ms = 0;
    int rc = cancel ? 0 : drain_within(gw, req, &ms);
    if (rc) return rc;
    char live[1024];
    if (!fleet_instance_live(gw, name, live, sizeof(live)))
        return kg_admin_error(req, 404, "no live instance '%s' in the fleet (live: %s)", name,
                              live);
    json_t *doc = cancel ? json_pack("{s:b, s:s, s:s}", "cancel", 1, "actor", req->actor, "via",
                                     gw->cfg->instance_name)
                         : json_pack("{s:I, s:s, s:s}", "within_ms", ms, "actor", req->actor, "via",
                                     gw->cfg->instance_name);
    rc = kg_store_put_doc(gw->store, KG_FLEET_DRAIN_KIND, name, doc);
    json_decref(doc);
    if (rc != 0) return kg_admin_error(req, 503, "cannot write the drain request to the store");
    json_t *audit = json_pack("{s:s, s:s, s:s, s:I}", "instance", name, "action",
                              cancel ? "cancel" : "drain", "actor", req->actor, "within_ms", ms);
    kg_store_audit_append(gw->store, "drain.requested", audit);
    json_decref(audit);
    kg_info("drain %s of instance %s asked by %s", cancel ? "cancel" : "start", name, req->actor);
    return kg_admin_reply(req, 202,
                          json_pack("{s:s, s:s, s:I, s:i}", "instance", name, "requested",
                                    cancel ? "cancel" : "drain", "within_ms", ms,
                                    "picked_up_within_ms", gw->cfg->lease_ms / 3));
}

static int admin_fleet_drain(void *ctx, kg_admin_request *req)
{
    return fleet_drain(ctx, req, 0);
}

static int admin_fleet_drain_cancel(void *ctx, kg_admin_request *req)
{
    return fleet_drain(ctx, req, 1);
}

/* A drain concerns this instance only: allowed while the fleet's state store is out of reach
 * (KG_ADMIN_NO_STATE), when taking an instance out may be exactly what is needed. */
static const kg_admin_route drain_routes[] = {
    {"POST", "/v1/drain", admin_drain_start, NULL, KG_ADMIN_JSON_BODY | KG_ADMIN_NO_STATE,
     KG_ROLE_OPERATOR},
    {"GET", "/v1/drain", admin_drain_progress, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/drain/cancel", admin_drain_cancel, NULL, KG_ADMIN_NO_STATE, KG_ROLE_OPERATOR},
    /* Through the store: these need it. */
    {"POST", "/v1/fleet/instances/{}/drain", admin_fleet_drain, NULL, KG_ADMIN_JSON_BODY,
     KG_ROLE_OPERATOR},
    {"POST", "/v1/fleet/instances/{}/drain/cancel", admin_fleet_drain_cancel, NULL, 0,
     KG_ROLE_OPERATOR},
};
#define DRAIN_N_ROUTES 5

static const char *admin_unready_reason(void *ctx, char *buf, size_t len)
{
    return kg_gateway_unready_reason(ctx, buf, len);
}

/* The history's reading of one vcluster: its counters since start, errors being the requests
 * left unanswered plus the error results inspected (only while an experiment watches). */
static int history_read(void *ctx, const char *name, kg_admin_counters *out)
{
    kg_vc_sample s;
    if (kg_gateway_sample(ctx, name, &s) != 0) return -1;
    *out = (kg_admin_counters){
        .requests = s.requests,
        .bytes_in = s.bytes_in,
        .bytes_out = s.bytes_out,
        .errors = s.unanswered + s.produce_errors + s.fetch_errors + s.commit_errors,
        .latency_count = s.latency_count,
        .latency_sum_s = s.latency_sum_s,
        .connections = s.connections,
    };
    return 0;
}

static kg_admin_history *start_history(kg_gateway *gw)
{
    const kg_vc_table *t = kg_gateway_vclusters(gw);
    int n = t->n;
    const char **names = calloc(n > 0 ? (size_t)n : 1, sizeof(*names));
    if (!names) return NULL;
    for (int i = 0; i < n; i++)
        names[i] = t->v[i]->cfg->name;
    kg_admin_history *h = kg_admin_history_new(names, n, KG_ADMIN_HISTORY_INTERVAL_MS,
                                               KG_ADMIN_HISTORY_POINTS, history_read, gw);
    free(names);
    if (h && kg_admin_history_run(h) != 0) {
        kg_admin_history_stop(h);
        return NULL;
    }
    return h;
}

/* Fills ROUTES with what the modules GW runs contribute; returns how many. */
static int gateway_routes(kg_gateway *gw, kg_admin_history *history,
                          kg_admin_route routes[GATEWAY_N_ROUTES])
{
    int n = 0;
    routes[n++] = (kg_admin_route){.method = "POST",
                                   .pattern = "/v1/reload",
                                   .handler = admin_reload,
                                   .ctx = gw,
                                   .role = KG_ROLE_OPERATOR};
    routes[n++] = (kg_admin_route){.method = "GET",
                                   .pattern = "/v1/vclusters/{}/parity",
                                   .handler = admin_parity,
                                   .ctx = gw,
                                   .role = KG_ROLE_VIEWER};
    n += kg_admin_bind_routes(&routes[n], mirror_routes, MIRROR_N_ROUTES, gw);
    n += kg_admin_bind_routes(&routes[n], drain_routes, DRAIN_N_ROUTES, gw);
    n += kg_admin_chaos_routes(gw->chaos, &routes[n]);
    n += kg_admin_experiments_routes(gw->experiments, &routes[n]);
    n += kg_admin_drills_routes(gw->store, &routes[n]);
    n += kg_admin_users_routes(gw->users, &routes[n]);
    n += kg_admin_acls_routes(gw->acls, &routes[n]);
    n += kg_admin_history_routes(history, &routes[n]);
    n += kg_admin_ui_routes(&routes[n]);
    return n;
}

int kg_admin_gateway_start(kg_gateway *gw, void **handle)
{
    *handle = NULL;
    if (!gw->cfg->admin_listen[0]) return 0;
    /* kg_admin_start copies OPS and the routes: both may live on this stack. */
    static const kg_admin_ops ops_template = {.status = admin_status,
                                              .switch_vcluster = admin_switch,
                                              .switch_planned = admin_switch_planned,
                                              .ready = admin_ready,
                                              .unready_reason = admin_unready_reason,
                                              .readiness = admin_readiness,
                                              .state_lost = admin_state_lost,
                                              .collect_metrics = admin_collect};
    gateway_admin *ga = calloc(1, sizeof(*ga));
    if (ga) ga->gw = gw;
    if (!ga || !(ga->history = start_history(gw))) {
        kg_error("admin API on %s: cannot start the history sampler", gw->cfg->admin_listen);
        free(ga);
        return -1;
    }
    kg_admin_route routes[GATEWAY_N_ROUTES];
    kg_admin_ops ops = ops_template;
    ops.ctx = gw;
    ops.extra_routes = routes;
    ops.n_extra_routes = gateway_routes(gw, ga->history, routes);
    const kg_tls_cfg *tls = &gw->cfg->admin_tls;
    kg_admin_options opts = {.listen = gw->cfg->admin_listen,
                             .token = gw->cfg->admin_token,
                             .tls_cert_file = tls->enabled ? tls->cert_file : NULL,
                             .tls_key_file = tls->enabled ? tls->key_file : NULL};
    char err[256];
    kg_admin *admin = kg_admin_start_opts(&opts, &ops, gw->store, gw->metrics, err, sizeof(err));
    if (!admin) {
        kg_error("admin API on %s: %s", gw->cfg->admin_listen, err);
        kg_admin_history_stop(ga->history);
        free(ga);
        return -1;
    }
    ga->admin = admin;
    kg_info("admin API on %s://%s/ (console: /ui/)", tls->enabled ? "https" : "http",
            gw->cfg->admin_listen);
    *handle = ga;
    return 0;
}

void kg_admin_gateway_stop(void *handle)
{
    gateway_admin *ga = handle;
    if (!ga) return;
    kg_admin_stop(ga->admin); /* first: its history routes read the history */
    kg_admin_history_stop(ga->history);
    free(ga);
}

int kg_admin_gateway_reload(void *handle, char *err, size_t errlen)
{
    gateway_admin *ga = handle;
    return ga ? kg_admin_reload_tls(ga->admin, err, errlen) : 0;
}

void kg_admin_gateway_vclusters_changed(void *handle)
{
    gateway_admin *ga = handle;
    if (!ga) return;
    const kg_vc_table *t = kg_gateway_vclusters(ga->gw);
    for (int i = 0; i < t->n; i++)
        if (kg_admin_history_add(ga->history, t->v[i]->cfg->name) < 0)
            kg_warn("admin: no history for vcluster %s (out of memory or series)",
                    t->v[i]->cfg->name);
}
