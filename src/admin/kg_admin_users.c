/* kg_admin_users — the admin API routes of SASL users (docs/security.md, docs/api.md):
 *   GET    /v1/users                  {"users": [user...]}
 *   POST   /v1/users                  {"name", "mechanism", "password", "iterations"?}
 *                                     201 user | 400 | 409 (the user has that mechanism)
 *   GET    /v1/users/{name}           200 user | 404
 *   DELETE /v1/users/{name}           204 | 404
 *   POST   /v1/users/{name}/password  {"mechanism", "password", "iterations"?} 200 user | 404
 * A user is {"name", "mechanisms": [{"mechanism", "iterations", "created_ts", "updated_ts"}]}.
 * Every change is audited by the registry with the caller's identity. */
#include "admin/kg_admin_users.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "security/kg_users.h"

static int handle_list(void *ctx, kg_admin_request *req)
{
    json_t *users = kg_users_list(ctx);
    if (!users) return kg_admin_error(req, 500, "cannot read the users");
    return kg_admin_reply(req, 200, json_pack("{s:o}", "users", users));
}

/* Creates (NAME NULL: from the body) or re-keys a user from the body's password. */
static int set_password(kg_users *u, kg_admin_request *req, const char *name, int create)
{
    static const kg_admin_field create_fields[] = {{"name", KG_FIELD_STRING, 1},
                                                   {"mechanism", KG_FIELD_STRING, 1},
                                                   {"password", KG_FIELD_STRING, 1},
                                                   {"iterations", KG_FIELD_INT, 0},
                                                   {NULL}};
    int rc = kg_admin_check_fields(req, create ? create_fields : create_fields + 1);
    if (rc) return rc;
    if (create) name = json_string_value(json_object_get(req->body, "name"));
    json_t *pw = json_object_get(req->body, "password");
    char err[256];
    int status = kg_users_set_password(
        u, name, json_string_value(json_object_get(req->body, "mechanism")), json_string_value(pw),
        json_string_length(pw), (int)json_integer_value(json_object_get(req->body, "iterations")),
        create, req->actor, err, sizeof(err));
    /* The password leaves memory with the request body; wipe the copy jansson holds. */
    if (json_string_value(pw))
        OPENSSL_cleanse((void *)json_string_value(pw), json_string_length(pw));
    if (status >= 400) return kg_admin_error(req, status, "%s", err);
    json_t *user = kg_users_get(u, name);
    return kg_admin_reply(req, status, user ? user : json_object());
}

static int handle_add(void *ctx, kg_admin_request *req)
{
    return set_password(ctx, req, NULL, 1);
}

static int handle_password(void *ctx, kg_admin_request *req)
{
    return set_password(ctx, req, req->params[0], 0);
}

static int handle_get(void *ctx, kg_admin_request *req)
{
    json_t *user = kg_users_get(ctx, req->params[0]);
    if (!user) return kg_admin_error(req, 404, "no user \"%s\"", req->params[0]);
    return kg_admin_reply(req, 200, user);
}

static int handle_delete(void *ctx, kg_admin_request *req)
{
    int rc = kg_users_remove(ctx, req->params[0], req->actor);
    if (rc == 1) return kg_admin_error(req, 404, "no user \"%s\"", req->params[0]);
    if (rc != 0) return kg_admin_error(req, 500, "cannot delete the user");
    return kg_admin_no_content(req);
}

static const kg_admin_route users_routes[KG_ADMIN_USERS_N_ROUTES] = {
    {"GET", "/v1/users", handle_list, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/users", handle_add, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_ADMIN},
    {"GET", "/v1/users/{}", handle_get, NULL, 0, KG_ROLE_VIEWER},
    {"DELETE", "/v1/users/{}", handle_delete, NULL, 0, KG_ROLE_ADMIN},
    {"POST", "/v1/users/{}/password", handle_password, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_ADMIN},
};

int kg_admin_users_routes(kg_users *u, kg_admin_route out[KG_ADMIN_USERS_N_ROUTES])
{
    return kg_admin_bind_routes(out, users_routes, KG_ADMIN_USERS_N_ROUTES, u);
}
