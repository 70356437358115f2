/* kg_admin_acls — the admin API routes of ACL bindings (docs/security.md, "ACLs"):
 *   GET    /v1/acls?FILTER   {"acls": [binding...]}
 *   POST   /v1/acls          {"principal", "permission", "resource_type", "resource_name"?,
 *                             "pattern_type"?, "host"?, "operation" | "operations"}
 *                            201 {"acls": [one binding per operation], "created": N} (200 when
 *                            every one existed already) | 400
 *   DELETE /v1/acls?FILTER   200 {"removed": [binding...]} | 400 (no filter) | 404 (none matched)
 * FILTER: principal, host, resource_type, resource_name, pattern_type, operation (a comma list),
 * permission; each optional, absent = any. A binding is {"principal", "host", "resource_type",
 * "resource_name", "pattern_type", "operation", "permission"} (+ "source", "created_ts" when
 * listed). Every change is audited by the registry with the caller's identity. */
#include "admin/kg_admin_acls.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "security/kg_acl.h"

/* Reads FILTER from the query string into F; *N = how many keys were given. 0, or the 400 set. */
static int filter_from_query(kg_admin_request *req, kg_acl_filter *f, int *n,
                             char host[KG_ACL_HOST_MAX])
{
    *f = (kg_acl_filter)KG_ACL_FILTER_ANY;
    *n = 0;
    const char *v;
    if ((v = kg_admin_query(req, "principal"))) f->principal = v, (*n)++;
    if ((v = kg_admin_query(req, "host"))) {
        (*n)++;
        if (kg_acl_canonical_host(v, host) < 0)
            return kg_admin_error(req, 400, "query \"host\": \"*\" or an IP address expected");
        f->host = host;
    }
    if ((v = kg_admin_query(req, "resource_name"))) f->name = v, (*n)++;
    if ((v = kg_admin_query(req, "resource_type"))) {
        (*n)++;
        if ((f->resource = kg_acl_parse_resource(v)) < 0)
            return kg_admin_error(req, 400,
                                  "query \"resource_type\": topic, group, cluster or "
                                  "transactional_id expected");
    }
    if ((v = kg_admin_query(req, "pattern_type"))) {
        (*n)++;
        if ((f->pattern = kg_acl_parse_pattern(v)) < 0 && strcmp(v, "any") != 0)
            return kg_admin_error(req, 400,
                                  "query \"pattern_type\": literal, prefixed or any expected");
    }
    if ((v = kg_admin_query(req, "permission"))) {
        (*n)++;
        if ((f->permission = kg_acl_parse_permission(v)) < 0)
            return kg_admin_error(req, 400, "query \"permission\": allow or deny expected");
    }
    if ((v = kg_admin_query(req, "operation"))) {
        (*n)++;
        char err[256];
        if (!(f->ops = kg_acl_parse_op_list(v, err, sizeof(err))))
            return kg_admin_error(req, 400, "query %s", err);
    }
    return 0;
}

static int handle_list(void *ctx, kg_admin_request *req)
{
    kg_acl_filter f;
    int n;
    char host[KG_ACL_HOST_MAX];
    int rc = filter_from_query(req, &f, &n, host);
    if (rc) return rc;
    json_t *acls = kg_acl_list(ctx, &f);
    if (!acls) return kg_admin_error(req, 500, "cannot read the ACL bindings");
    return kg_admin_reply(req, 200, json_pack("{s:o}", "acls", acls));
}

static int handle_add(void *ctx, kg_admin_request *req)
{
    kg_acl_binding b[KG_ACL_N_OPS];
    char err[256];
    if (!req->body) return kg_admin_error(req, 400, "a JSON object body is expected");
    int n = kg_acl_bindings_from_json(req->body, b, err, sizeof(err));
    if (n < 0) return kg_admin_error(req, 400, "%s", err);
    int created = 0;
    if (kg_acl_add(ctx, b, n, req->actor, &created, err, sizeof(err)) < 0)
        return kg_admin_error(req, 500, "%s", err);
    json_t *acls = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(acls, kg_acl_binding_to_json(&b[i]));
    return kg_admin_reply(req, created ? 201 : 200,
                          json_pack("{s:o, s:i}", "acls", acls, "created", created));
}

static int handle_delete(void *ctx, kg_admin_request *req)
{
    kg_acl_filter f;
    int n;
    char host[KG_ACL_HOST_MAX];
    int rc = filter_from_query(req, &f, &n, host);
    if (rc) return rc;
    if (n == 0)
        return kg_admin_error(req, 400,
                              "give at least one filter (principal, resource_type, "
                              "resource_name, ...): removing every binding takes one on purpose");
    json_t *removed = NULL;
    int count = kg_acl_remove(ctx, &f, req->actor, &removed);
    if (count < 0) {
        json_decref(removed);
        return kg_admin_error(req, 500, "cannot remove the ACL bindings");
    }
    if (count == 0) {
        json_decref(removed);
        return kg_admin_error(req, 404, "no ACL binding matches");
    }
    return kg_admin_reply(req, 200, json_pack("{s:o}", "removed", removed));
}

static const kg_admin_route acls_routes[KG_ADMIN_ACLS_N_ROUTES] = {
    {"GET", "/v1/acls", handle_list, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/acls", handle_add, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_ADMIN},
    {"DELETE", "/v1/acls", handle_delete, NULL, 0, KG_ROLE_ADMIN},
};

int kg_admin_acls_routes(kg_acls *a, kg_admin_route out[KG_ADMIN_ACLS_N_ROUTES])
{
    return kg_admin_bind_routes(out, acls_routes, KG_ADMIN_ACLS_N_ROUTES, a);
}
