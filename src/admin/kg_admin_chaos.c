/* kg_admin_chaos — the admin API routes of chaos rules (docs/chaos.md, docs/api.md):
 *   GET    /v1/chaos/rules        {"rules": [rule...]}
 *   POST   /v1/chaos/rules        201 rule | 400 {"error": "field ..."} | 500
 *   GET    /v1/chaos/rules/{id}   200 rule | 404
 *   DELETE /v1/chaos/rules/{id}   204 | 404
 * Adding and removing write audit entries (through kg_chaos_add/remove) with the caller's
 * identity as kg_admin computed it. The handlers live here, not in chaos/, so that the chaos
 * module knows nothing of HTTP: they only call its public API (chaos/kg_chaos.h). */
#include "admin/kg_admin_chaos.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chaos/kg_chaos.h"

static int handle_list(void *ctx, kg_admin_request *req)
{
    kg_chaos *ch = ctx;
    json_t *rules = kg_chaos_list(ch);
    if (!rules) return kg_admin_error(req, 500, "out of memory");
    return kg_admin_reply(req, 200, json_pack("{s:o}", "rules", rules));
}

static int handle_add(void *ctx, kg_admin_request *req)
{
    kg_chaos *ch = ctx;
    if (!req->body) return kg_admin_error(req, 400, "the request needs a JSON rule as its body");
    char err[512];
    json_t *rule = NULL;
    int rc = kg_chaos_add(ch, req->body, req->actor, &rule, err, sizeof(err));
    if (rc == -1) return kg_admin_error(req, 400, "%s", err);
    if (rc != 0) return kg_admin_error(req, 500, "%s", err);
    return kg_admin_reply(req, 201, rule ? rule : json_object());
}

static int handle_get(void *ctx, kg_admin_request *req)
{
    kg_chaos *ch = ctx;
    json_t *rule = kg_chaos_get(ch, req->params[0]);
    if (!rule) return kg_admin_error(req, 404, "no chaos rule \"%s\"", req->params[0]);
    return kg_admin_reply(req, 200, rule);
}

static int handle_delete(void *ctx, kg_admin_request *req)
{
    kg_chaos *ch = ctx;
    if (kg_chaos_remove(ch, req->params[0], req->actor) != 0)
        return kg_admin_error(req, 404, "no chaos rule \"%s\"", req->params[0]);
    return kg_admin_no_content(req);
}

static const kg_admin_route chaos_routes[KG_ADMIN_CHAOS_N_ROUTES] = {
    {"GET", "/v1/chaos/rules", handle_list, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/chaos/rules", handle_add, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_OPERATOR},
    {"GET", "/v1/chaos/rules/{}", handle_get, NULL, 0, KG_ROLE_VIEWER},
    {"DELETE", "/v1/chaos/rules/{}", handle_delete, NULL, 0, KG_ROLE_OPERATOR},
};

int kg_admin_chaos_routes(kg_chaos *ch, kg_admin_route out[KG_ADMIN_CHAOS_N_ROUTES])
{
    return kg_admin_bind_routes(out, chaos_routes, KG_ADMIN_CHAOS_N_ROUTES, ch);
}
