/* kg_admin_experiments — the admin API routes of experiments (docs/experiments.md, docs/api.md):
 *   POST  /v1/experiments              201 record | 400 {"error": "field ..."} | 409 | 500
 *   GET   /v1/experiments              {"experiments": [summary...]}
 *   GET   /v1/experiments/{id}         record (+ "live" while active; ?seconds=N recent seconds)
 *   POST  /v1/experiments/{id}/stop    200 record | 404 | 409 already ended
 *   PATCH /v1/experiments/{id}         {"remediation", "retest"}: 200 record | 400 | 404 | 409
 *   GET   /v1/experiments/{id}/report  ?format=json (default) | md
 * The caller's identity (kg_admin's actor) goes into the record and the audit entries. The
 * handlers live here, not in chaos/, so that experiments know nothing of HTTP: they only call
 * the operations chaos/kg_experiment.h exports for them. */
#include "admin/kg_admin_experiments.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/kg_experiment.h"

#define DEFAULT_RECENT_SECONDS 30

/* Maps an operation's status and error text to the reply. */
static int reply_with(kg_admin_request *req, int status, json_t *out, const char *err)
{
    if (status >= 200 && status < 300)
        return kg_admin_reply(req, status, out ? out : json_object());
    json_decref(out);
    return kg_admin_error(req, status, "%s", err);
}

static int handle_create(void *ctx, kg_admin_request *req)
{
    if (!req->body) return kg_admin_error(req, 400, "the request needs a drill (JSON) as its body");
    char err[768] = "";
    json_t *out = NULL;
    int status = kg_experiments_create(ctx, req->body, req->actor, &out, err, sizeof(err));
    return reply_with(req, status, out, err);
}

static int handle_list(void *ctx, kg_admin_request *req)
{
    json_t *list = kg_experiments_list(ctx);
    if (!list) return kg_admin_error(req, 500, "cannot read experiments from the state store");
    return kg_admin_reply(req, 200, list);
}

static int handle_get(void *ctx, kg_admin_request *req)
{
    int seconds = DEFAULT_RECENT_SECONDS;
    const char *arg = kg_admin_query(req, "seconds");
    if (arg) {
        char *end;
        long v = strtol(arg, &end, 10);
        if (!*arg || *end || v < 0 || v > 600)
            return kg_admin_error(req, 400, "query \"seconds\" must be an integer from 0 to 600");
        seconds = (int)v;
    }
    json_t *doc = kg_experiments_get(ctx, req->params[0], seconds);
    if (!doc) return kg_admin_error(req, 404, "no experiment \"%s\"", req->params[0]);
    return kg_admin_reply(req, 200, doc);
}

static int handle_stop(void *ctx, kg_admin_request *req)
{
    char err[512] = "";
    json_t *out = NULL;
    int status = kg_experiments_stop(ctx, req->params[0], req->actor, &out, err, sizeof(err));
    return reply_with(req, status, out, err);
}

static int handle_annotate(void *ctx, kg_admin_request *req)
{
    char err[512] = "";
    json_t *out = NULL;
    json_t *patch = req->body ? req->body : json_object();
    int status =
        kg_experiments_annotate(ctx, req->params[0], patch, req->actor, &out, err, sizeof(err));
    if (!req->body) json_decref(patch);
    return reply_with(req, status, out, err);
}

static int handle_report(void *ctx, kg_admin_request *req)
{
    const char *format = kg_admin_query(req, "format");
    if (format && strcmp(format, "json") != 0 && strcmp(format, "md") != 0)
        return kg_admin_error(req, 400, "query \"format\" must be json or md");
    json_t *report = kg_experiments_report(ctx, req->params[0]);
    if (!report) return kg_admin_error(req, 404, "no experiment \"%s\"", req->params[0]);
    if (!format || strcmp(format, "json") == 0) return kg_admin_reply(req, 200, report);
    char *md = kg_experiment_report_md(report);
    json_decref(report);
    return kg_admin_reply_markdown(req, md);
}

static const kg_admin_route experiment_routes[KG_ADMIN_EXPERIMENTS_N_ROUTES] = {
    {"POST", "/v1/experiments", handle_create, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_OPERATOR},
    {"GET", "/v1/experiments", handle_list, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/experiments/{}", handle_get, NULL, 0, KG_ROLE_VIEWER},
    {"PATCH", "/v1/experiments/{}", handle_annotate, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_OPERATOR},
    {"POST", "/v1/experiments/{}/stop", handle_stop, NULL, 0, KG_ROLE_OPERATOR},
    {"GET", "/v1/experiments/{}/report", handle_report, NULL, 0, KG_ROLE_VIEWER},
};

int kg_admin_experiments_routes(kg_experiments *xs,
                                kg_admin_route out[KG_ADMIN_EXPERIMENTS_N_ROUTES])
{
    return kg_admin_bind_routes(out, experiment_routes, KG_ADMIN_EXPERIMENTS_N_ROUTES, xs);
}
