/* Admin API tokens with roles (issue 8, item 6): the role table of every route, token secrets
 * and their digests, the store's tokens table, identification in constant time, and the API
 * and CLI against a real server: 401 / 403 naming the role, no secret listed, removal, the
 * audit naming the token, the lock-out safety nets, and HTTPS start-up errors. */
#include "kt.h"
#include "kt_admin.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_admin.h"
#include "admin/kg_admin_acls.h"
#include "admin/kg_admin_chaos.h"
#include "admin/kg_admin_experiments.h"
#include "admin/kg_admin_tokens.h"
#include "admin/kg_admin_users.h"
#include "admin/kg_cli_session.h"
#include "admin/kg_token_cli.h"
#include "config/kg_config.h"
#include "state/kg_store.h"

#define BOOT "boot-secret-token"

/* ---- role table ---- */

KT_TEST(role_names_parse_both_ways)
{
    KT_CHECK_EQ_STR(kg_admin_role_name(KG_ROLE_VIEWER), "viewer");
    KT_CHECK_EQ_STR(kg_admin_role_name(KG_ROLE_OPERATOR), "operator");
    KT_CHECK_EQ_STR(kg_admin_role_name(KG_ROLE_ADMIN), "admin");
    KT_CHECK_EQ_STR(kg_admin_role_name(KG_ROLE_UNDECLARED), "none");
    KT_CHECK_EQ_STR(kg_admin_role_name(42), "none");
    KT_CHECK_EQ_INT(kg_admin_role_parse("viewer"), KG_ROLE_VIEWER);
    KT_CHECK_EQ_INT(kg_admin_role_parse("Operator"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(kg_admin_role_parse("ADMIN"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(kg_admin_role_parse("root"), KG_ROLE_UNDECLARED);
    KT_CHECK_EQ_INT(kg_admin_role_parse("none"), KG_ROLE_UNDECLARED);
    KT_CHECK_EQ_INT(kg_admin_role_parse(""), KG_ROLE_UNDECLARED);
    KT_CHECK_EQ_INT(kg_admin_role_parse(NULL), KG_ROLE_UNDECLARED);
    KT_CHECK(KG_ROLE_VIEWER < KG_ROLE_OPERATOR && KG_ROLE_OPERATOR < KG_ROLE_ADMIN);
}

#define MAX_ROUTES 64

/* Every route the modules contribute (the built-in ones are checked by kg_admin_start). */
static int all_module_routes(kg_admin_route *out)
{
    int n = 0;
    n += kg_admin_chaos_routes(NULL, out + n);
    n += kg_admin_experiments_routes(NULL, out + n);
    n += kg_admin_users_routes(NULL, out + n);
    n += kg_admin_acls_routes(NULL, out + n);
    n += kg_admin_tokens_routes(out + n);
    return n;
}

static int role_of(const kg_admin_route *routes, int n, const char *method, const char *pattern)
{
    for (int i = 0; i < n; i++)
        if (strcmp(routes[i].method, method) == 0 && strcmp(routes[i].pattern, pattern) == 0)
            return routes[i].role;
    return -1;
}

KT_TEST(every_route_declares_its_role_reads_are_viewer)
{
    kg_admin_route routes[MAX_ROUTES];
    int n = all_module_routes(routes);
    KT_CHECK(n > 20);
    for (int i = 0; i < n; i++) {
        const kg_admin_route *r = &routes[i];
        KT_CHECK(r->role >= KG_ROLE_VIEWER && r->role <= KG_ROLE_ADMIN);
        KT_CHECK(!(r->flags & KG_ADMIN_PUBLIC));
        /* Reads are for viewers, except the tokens; no mutation is open to a viewer. */
        if (strncmp(r->pattern, "/v1/tokens", 10) == 0)
            KT_CHECK_EQ_INT(r->role, KG_ROLE_ADMIN);
        else if (strcmp(r->method, "GET") == 0)
            KT_CHECK_EQ_INT(r->role, KG_ROLE_VIEWER);
        else
            KT_CHECK(r->role >= KG_ROLE_OPERATOR);
    }
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/chaos/rules"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(role_of(routes, n, "DELETE", "/v1/chaos/rules/{}"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/experiments"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/experiments/{}/stop"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(role_of(routes, n, "PATCH", "/v1/experiments/{}"), KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/users"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "DELETE", "/v1/users/{}"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/users/{}/password"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/acls"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "DELETE", "/v1/acls"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "GET", "/v1/tokens"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "POST", "/v1/tokens"), KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(role_of(routes, n, "DELETE", "/v1/tokens/{}"), KG_ROLE_ADMIN);
}

static int dummy_handler(void *ctx, kg_admin_request *req)
{
    return kg_admin_reply(req, 200, json_object());
}

KT_TEST(a_route_without_a_role_is_refused_at_start)
{
    static const kg_admin_route bad[] = {
        {"POST", "/v1/forgotten", dummy_handler, NULL, 0, KG_ROLE_UNDECLARED}};
    kg_admin_ops ops = {.extra_routes = bad, .n_extra_routes = 1};
    char err[256] = "";
    KT_CHECK(kg_admin_start("127.0.0.1:0", NULL, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "POST /v1/forgotten declares no role") != NULL);
}

/* ---- secrets and digests ---- */

KT_TEST(digests_and_generated_secrets)
{
    char hex[KG_STORE_HASH_HEX + 1];
    kg_admin_token_digest_hex("abc", hex); /* FIPS 180-2 test vector */
    KT_CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char raw[32];
    kg_admin_token_digest("abc", raw);
    KT_CHECK(raw[0] == 0xba && raw[31] == 0xad);

    char a[KG_ADMIN_TOKEN_LEN + 1], b[KG_ADMIN_TOKEN_LEN + 1];
    KT_CHECK_EQ_INT(kg_admin_token_generate(a), 0);
    KT_CHECK_EQ_INT(kg_admin_token_generate(b), 0);
    KT_CHECK_EQ_INT(strlen(a), KG_ADMIN_TOKEN_LEN);
    KT_CHECK(strncmp(a, "kgt_", 4) == 0);
    KT_CHECK(strcmp(a, b) != 0);
    KT_CHECK_EQ_INT(
        strspn(a + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
        KG_ADMIN_TOKEN_LEN - 4);
}

KT_TEST(token_names)
{
    KT_CHECK(kg_admin_token_name_valid("ops-alice"));
    KT_CHECK(kg_admin_token_name_valid("ci.deploy_2"));
    KT_CHECK(!kg_admin_token_name_valid(""));
    KT_CHECK(!kg_admin_token_name_valid(NULL));
    KT_CHECK(!kg_admin_token_name_valid("bootstrap"));
    KT_CHECK(!kg_admin_token_name_valid("a b"));
    KT_CHECK(!kg_admin_token_name_valid("a/b"));
    KT_CHECK(!kg_admin_token_name_valid("tab\there"));
    char long_name[80];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    KT_CHECK(!kg_admin_token_name_valid(long_name));
    long_name[64] = '\0';
    KT_CHECK(kg_admin_token_name_valid(long_name));
}

/* ---- store ---- */

static json_t *token_row(const char *name, const char *role, const char *secret)
{
    char hex[KG_STORE_HASH_HEX + 1];
    kg_admin_token_digest_hex(secret, hex);
    return json_pack("{s:s, s:s, s:s, s:s}", "name", name, "role", role, "hash", hex, "created_by",
                     "test");
}

KT_TEST(store_round_trip_audited_in_the_same_transaction)
{
    char dir[64];
    kg_store *s = kt_temp_store(dir, "tokens");
    json_t *list = kg_store_list_tokens(s);
    KT_CHECK(list && json_array_size(list) == 0);
    json_decref(list);

    json_t *row = token_row("ops", "operator", "secret-1");
    json_t *audit = json_pack("{s:s}", "name", "ops");
    KT_CHECK_EQ_INT(kg_store_put_token(s, row, "token.add", audit), 0);
    KT_CHECK_EQ_INT(kg_store_put_token(s, row, "token.add", audit), 1); /* the name exists */
    json_decref(row);
    row = token_row("alice", "admin", "secret-2");
    KT_CHECK_EQ_INT(kg_store_put_token(s, row, "token.add", audit), 0);
    json_decref(row);
    json_t *bad = json_pack("{s:s}", "name", "x");
    KT_CHECK_EQ_INT(kg_store_put_token(s, bad, "token.add", audit), -1);
    json_decref(bad);

    list = kg_store_list_tokens(s);
    KT_CHECK_EQ_INT(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0); /* by name */
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "name")), "alice");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "role")), "admin");
    char hex[KG_STORE_HASH_HEX + 1];
    kg_admin_token_digest_hex("secret-2", hex);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "hash")), hex);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "created_by")), "test");
    KT_CHECK(json_string_length(json_object_get(first, "created_ts")) > 10);
    json_decref(list);

    KT_CHECK_EQ_INT(kg_store_delete_token(s, "ops", "token.remove", audit), 0);
    KT_CHECK_EQ_INT(kg_store_delete_token(s, "ops", "token.remove", audit), 1);
    json_decref(audit);
    list = kg_store_list_tokens(s);
    KT_CHECK_EQ_INT(json_array_size(list), 1);
    json_decref(list);

    /* Two adds and one removal were audited; the refused ones were not. */
    json_t *entries = kg_store_audit_list(s, 0, 100);
    KT_CHECK_EQ_INT(json_array_size(entries), 3);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(entries, 2), "type")),
                    "token.remove");
    json_decref(entries);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    json_decref(report);
    kt_remove_store(s, dir);
}

KT_TEST(identify_bootstrap_and_stored_tokens)
{
    char dir[64];
    kg_store *s = kt_temp_store(dir, "tokens");
    kg_admin_identity who;
    int any = -1;
    /* No token anywhere: nothing needed. */
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, NULL, NULL, &who, &any), 0);
    KT_CHECK_EQ_INT(any, 0);
    KT_CHECK_EQ_INT(kg_admin_token_identify(NULL, NULL, "x", &who, &any), 0);
    KT_CHECK_EQ_INT(any, 0);

    unsigned char boot[32];
    kg_admin_token_digest(BOOT, boot);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, boot, BOOT, &who, &any), 1);
    KT_CHECK_EQ_INT(any, 1);
    KT_CHECK_EQ_STR(who.name, "bootstrap");
    KT_CHECK_EQ_INT(who.role, KG_ROLE_ADMIN);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, boot, BOOT "x", &who, &any), 0);

    json_t *audit = json_object();
    json_t *row = token_row("viewer1", "viewer", "kgt_viewer");
    kg_store_put_token(s, row, "token.add", audit);
    json_decref(row);
    row = token_row("ops", "operator", "kgt_ops");
    kg_store_put_token(s, row, "token.add", audit);
    json_decref(row);
    json_decref(audit);

    /* Stored tokens alone make a token necessary. */
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, NULL, NULL, &who, &any), 0);
    KT_CHECK_EQ_INT(any, 1);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, NULL, "kgt_ops", &who, &any), 1);
    KT_CHECK_EQ_STR(who.name, "ops");
    KT_CHECK_EQ_INT(who.role, KG_ROLE_OPERATOR);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, boot, "kgt_viewer", &who, &any), 1);
    KT_CHECK_EQ_STR(who.name, "viewer1");
    KT_CHECK_EQ_INT(who.role, KG_ROLE_VIEWER);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, boot, "kgt_opsx", &who, &any), 0);
    KT_CHECK_EQ_INT(kg_admin_token_identify(s, boot, "", &who, &any), 0);
    kt_remove_store(s, dir);
}

/* ---- the API against a real server ---- */

typedef struct fixture {
    kg_store *store;
    kg_admin *admin;
    char dir[64];
    char base[64];
    pthread_mutex_t lock;
    char last_actor[256];
    int switches;
} fixture;

static json_t *fake_status(void *ctx)
{
    return json_pack("{s:[], s:[]}", "vclusters", "clusters");
}

static int fake_switch(void *ctx, const char *vcluster, const char *to, const char *reason,
                       const char *actor, int force, int failback, json_t **result)
{
    fixture *f = ctx;
    pthread_mutex_lock(&f->lock);
    snprintf(f->last_actor, sizeof(f->last_actor), "%s", actor);
    f->switches++;
    pthread_mutex_unlock(&f->lock);
    json_t *details = json_pack("{s:s, s:s}", "vcluster", vcluster, "actor", actor);
    kg_store_audit_append(f->store, "switch", details);
    json_decref(details);
    *result = json_pack("{s:s, s:b}", "vcluster", vcluster, "changed", 1);
    return 200;
}

static fixture *fixture_start(const char *bootstrap)
{
    fixture *f = calloc(1, sizeof(*f));
    f->store = kt_temp_store(f->dir, "tokens");
    pthread_mutex_init(&f->lock, NULL);
    kg_admin_ops ops = {.ctx = f, .status = fake_status, .switch_vcluster = fake_switch};
    char err[256];
    f->admin = kg_admin_start("127.0.0.1:0", bootstrap, &ops, f->store, NULL, err, sizeof(err));
    if (!f->admin) {
        fprintf(stderr, "admin start: %s\n", err);
        abort();
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", kg_admin_port(f->admin));
    return f;
}

static void fixture_stop(fixture *f)
{
    kg_admin_stop(f->admin);
    kt_remove_store(f->store, f->dir);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* One call; returns the status, *REPLY the JSON (NULL: not wanted). */
/* POST /v1/tokens as CALLER; the new secret (malloc'd) or NULL. */
static char *add_token(fixture *f, const char *caller, const char *name, const char *role)
{
    char body[160];
    snprintf(body, sizeof(body), "{\"name\": \"%s\", \"role\": \"%s\"}", name, role);
    json_t *reply = NULL;
    long status = kt_call(f->base, caller, "POST", "/v1/tokens", body, &reply);
    char *secret = NULL;
    if (status == 201) secret = strdup(json_string_value(json_object_get(reply, "token")));
    json_decref(reply);
    return secret;
}

KT_TEST(roles_401_403_and_the_audit_names_the_token)
{
    fixture *f = fixture_start(BOOT);
    char *viewer = add_token(f, BOOT, "dash", "viewer");
    char *oper = add_token(f, BOOT, "oncall", "operator");
    char *admin = add_token(f, BOOT, "sec", "admin");
    KT_CHECK(viewer && oper && admin);
    if (!viewer || !oper || !admin) goto out;

    /* Viewer: reads, nothing else. */
    KT_CHECK_EQ_INT(kt_call(f->base, viewer, "GET", "/v1/status", NULL, NULL), 200);
    KT_CHECK_EQ_INT(kt_call(f->base, viewer, "GET", "/v1/audit", NULL, NULL), 200);
    json_t *reply = NULL;
    KT_CHECK_EQ_INT(
        kt_call(f->base, viewer, "POST", "/v1/vclusters/payments/failover", "{}", &reply), 403);
    KT_CHECK(strstr(kt_error_of(reply), "needs the operator role") != NULL);
    KT_CHECK(strstr(kt_error_of(reply), "\"dash\" has the viewer role") != NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(reply, "required_role")), "operator");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(reply, "role")), "viewer");
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, viewer, "GET", "/v1/tokens", NULL, NULL), 403);
    KT_CHECK_EQ_INT(f->switches, 0);

    /* Operator: switches, but no tokens. */
    KT_CHECK_EQ_INT(kt_call(f->base, oper, "POST", "/v1/vclusters/payments/failover", "{}", NULL),
                    200);
    KT_CHECK_EQ_INT(f->switches, 1);
    KT_CHECK_EQ_STR(f->last_actor, "token:oncall from 127.0.0.1");
    KT_CHECK_EQ_INT(kt_call(f->base, oper, "POST", "/v1/tokens",
                            "{\"name\":\"x\",\"role\":\"viewer\"}", &reply),
                    403);
    KT_CHECK(strstr(kt_error_of(reply), "needs the admin role") != NULL);
    json_decref(reply);

    /* Admin: everything; unknown routes are 404 for a known token, 401 for an unknown one. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "POST", "/v1/vclusters/payments/failback", "{}", NULL),
                    200);
    KT_CHECK_EQ_STR(f->last_actor, "token:sec from 127.0.0.1");
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "GET", "/v1/nothing", NULL, NULL), 404);
    KT_CHECK_EQ_INT(kt_call(f->base, "kgt_unknown", "GET", "/v1/nothing", NULL, NULL), 401);
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/status", NULL, NULL), 401);
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/healthz", NULL, NULL), 200);

    /* The list shows names and roles, never a secret nor its hash. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "GET", "/v1/tokens", NULL, &reply), 200);
    json_t *tokens = json_object_get(reply, "tokens");
    KT_CHECK_EQ_INT(json_array_size(tokens), 4);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(tokens, 0), "name")),
                    "bootstrap");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(tokens, 0), "source")),
                    "config");
    char *text = json_dumps(reply, 0);
    KT_CHECK(text && !strstr(text, viewer) && !strstr(text, "hash") && !strstr(text, BOOT));
    char hex[KG_STORE_HASH_HEX + 1];
    kg_admin_token_digest_hex(viewer, hex);
    KT_CHECK(text && !strstr(text, hex));
    free(text);
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "GET", "/v1/tokens/oncall", NULL, &reply), 200);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(reply, "role")), "operator");
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "GET", "/v1/tokens/nobody", NULL, NULL), 404);

    /* Bad requests. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "POST", "/v1/tokens",
                            "{\"name\":\"dash\",\"role\":\"viewer\"}", NULL),
                    409);
    KT_CHECK_EQ_INT(
        kt_call(f->base, admin, "POST", "/v1/tokens", "{\"name\":\"n\",\"role\":\"root\"}", NULL),
        400);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "POST", "/v1/tokens",
                            "{\"name\":\"bootstrap\",\"role\":\"admin\"}", NULL),
                    400);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "POST", "/v1/tokens", "{\"name\":\"n\"}", NULL), 400);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/bootstrap", NULL, NULL), 409);

    /* A removed token is unknown from then on. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/dash", NULL, NULL), 204);
    KT_CHECK_EQ_INT(kt_call(f->base, viewer, "GET", "/v1/status", NULL, NULL), 401);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/dash", NULL, NULL), 404);

    /* The audit: every change and every refusal, with the token's name, never a secret. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "GET", "/v1/audit?limit=100", NULL, &reply), 200);
    text = json_dumps(reply, 0);
    KT_CHECK(text && strstr(text, "\"token.add\"") && strstr(text, "\"token.remove\""));
    KT_CHECK(text && strstr(text, "\"admin.forbidden\"") &&
             strstr(text, "token:dash from 127.0.0.1"));
    KT_CHECK(text && strstr(text, "token:bootstrap from 127.0.0.1"));
    KT_CHECK(text && !strstr(text, viewer) && !strstr(text, oper) && !strstr(text, admin));
    free(text);
    json_decref(reply);
out:
    free(viewer);
    free(oper);
    free(admin);
    fixture_stop(f);
}

KT_TEST(without_bootstrap_the_first_token_is_admin_and_the_last_admin_stays)
{
    fixture *f = fixture_start(NULL);
    /* Open API: the anonymous caller is an admin, until a token exists. */
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/tokens", NULL, NULL), 200);
    json_t *reply = NULL;
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "POST", "/v1/tokens",
                            "{\"name\":\"v\",\"role\":\"viewer\"}", &reply),
                    409);
    KT_CHECK(strstr(kt_error_of(reply), "first token must have the admin role") != NULL);
    json_decref(reply);
    char *admin = add_token(f, NULL, "root", "admin");
    KT_CHECK(admin != NULL);
    if (!admin) goto out;
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/status", NULL, NULL), 401);
    char *viewer = add_token(f, admin, "v", "viewer");
    KT_CHECK(viewer != NULL);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/root", NULL, &reply), 409);
    KT_CHECK(strstr(kt_error_of(reply), "last admin token") != NULL);
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/v", NULL, NULL), 204);
    /* Alone, the last token may go: the API is open again. */
    KT_CHECK_EQ_INT(kt_call(f->base, admin, "DELETE", "/v1/tokens/root", NULL, NULL), 204);
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/status", NULL, NULL), 200);
    free(viewer);
out:
    free(admin);
    fixture_stop(f);
}

/* ---- the CLI ---- */

static void run_cli(const fixture *f, const char *token, const char *args, kt_cli *r)
{
    kt_cli_done(r);
    *r = kt_cli_run(kg_token_cli_run, f->base, token, args);
}

KT_TEST(cli_add_list_rm)
{
    fixture *f = fixture_start(BOOT);
    kt_cli *r = calloc(1, sizeof(*r));
    run_cli(f, BOOT, "token add ci --role operator", r);
    KT_CHECK_EQ_INT(r->rc, 0);
    KT_CHECK(strstr(r->out, "added token ci (role operator)\nkgt_") != NULL);
    char secret[KG_ADMIN_TOKEN_LEN + 1] = "";
    const char *p = strstr(r->out, "kgt_");
    if (p) snprintf(secret, sizeof(secret), "%.*s", KG_ADMIN_TOKEN_LEN, p);
    KT_CHECK_EQ_INT(strlen(secret), KG_ADMIN_TOKEN_LEN);
    KT_CHECK_EQ_INT(kt_call(f->base, secret, "POST", "/v1/vclusters/v/failover", "{}", NULL), 200);

    run_cli(f, BOOT, "token list", r);
    KT_CHECK_EQ_INT(r->rc, 0);
    KT_CHECK(strstr(r->out, "bootstrap") && strstr(r->out, "ci ") && strstr(r->out, "operator"));
    KT_CHECK(!strstr(r->out, "kgt_"));
    run_cli(f, BOOT, "token list --json", r);
    KT_CHECK_EQ_INT(r->rc, 0);
    KT_CHECK(strstr(r->out, "\"name\": \"ci\"") != NULL);

    run_cli(f, secret, "token list", r); /* an operator may not */
    KT_CHECK_EQ_INT(r->rc, 1);
    KT_CHECK(strstr(r->err, "needs the admin role") && strstr(r->err, "HTTP 403"));

    run_cli(f, BOOT, "token rm ci", r);
    KT_CHECK_EQ_INT(r->rc, 0);
    KT_CHECK(strstr(r->out, "removed token ci") != NULL);
    KT_CHECK_EQ_INT(kt_call(f->base, secret, "GET", "/v1/status", NULL, NULL), 401);

    run_cli(f, BOOT, "token add x", r);
    KT_CHECK_EQ_INT(r->rc, 2);
    KT_CHECK(strstr(r->err, "--role") != NULL);
    run_cli(f, BOOT, "token add a/b --role viewer", r);
    KT_CHECK_EQ_INT(r->rc, 2);
    run_cli(f, BOOT, "token frobnicate", r);
    KT_CHECK_EQ_INT(r->rc, 2);
    run_cli(f, BOOT, "token add y --role superuser", r);
    KT_CHECK_EQ_INT(r->rc, 1);
    KT_CHECK(strstr(r->err, "viewer, operator or admin") != NULL);
    kt_cli_done(r);
    free(r);
    fixture_stop(f);
}

/* ---- HTTPS start-up errors (the handshake itself: tests/integration/test_admin_tokens.py) ---- */

KT_TEST(tls_needs_readable_pem_cert_and_key)
{
    kg_admin_ops ops = {0};
    char err[256] = "";
    kg_admin_options opts = {.listen = "127.0.0.1:0", .tls_cert_file = "/nonexistent/cert.pem"};
    KT_CHECK(kg_admin_start_opts(&opts, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "cert_file and key_file go together") != NULL);
    opts.tls_key_file = "/nonexistent/key.pem";
    KT_CHECK(kg_admin_start_opts(&opts, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "admin.tls.cert_file: cannot read /nonexistent/cert.pem") != NULL);
    char path[] = "/tmp/kg_test_tls.XXXXXX";
    int fd = mkstemp(path);
    KT_CHECK(fd >= 0);
    if (fd >= 0) {
        KT_CHECK(write(fd, "not a certificate\n", 18) == 18);
        close(fd);
        opts.tls_cert_file = path;
        opts.tls_key_file = path;
        KT_CHECK(kg_admin_start_opts(&opts, &ops, NULL, NULL, err, sizeof(err)) == NULL);
        KT_CHECK(strstr(err, "is not a PEM file") != NULL);
        unlink(path);
    }
}

/* ---- config: admin.tls ---- */

#define CONFIG_HEAD                                                                                \
    "clusters: {east: {bootstrap: \"127.0.0.1:9092\"}}\n"                                          \
    "vclusters: {v: {port: 20000, primary: east}}\n"

static kg_config *parse(const char *yaml, char *errs, size_t errs_len, int *n_errors)
{
    FILE *e = fmemopen(errs, errs_len - 1, "w");
    memset(errs, 0, errs_len);
    kg_config *cfg = kg_config_parse("t.yaml", yaml, strlen(yaml), e, n_errors);
    fclose(e);
    return cfg;
}

KT_TEST(config_admin_tls)
{
    char errs[2048];
    int n = 0;
    kg_config *cfg = parse(CONFIG_HEAD "admin:\n  listen: 127.0.0.1:19644\n  token: t0k\n"
                                       "  tls: {cert_file: /etc/hostname, key_file: /etc/hostname,"
                                       " ca_file: /etc/hostname}\n",
                           errs, sizeof(errs), &n);
    KT_CHECK(cfg != NULL);
    if (cfg) {
        KT_CHECK_EQ_INT(cfg->admin_tls.enabled, 1);
        KT_CHECK_EQ_STR(cfg->admin_tls.cert_file, "/etc/hostname");
        KT_CHECK_EQ_STR(cfg->admin_tls.key_file, "/etc/hostname");
        KT_CHECK_EQ_STR(cfg->admin_tls.ca_file, "/etc/hostname");
        KT_CHECK_EQ_STR(cfg->admin_token, "t0k");
        kg_config_free(cfg);
    }
    cfg = parse(CONFIG_HEAD "admin: {listen: 127.0.0.1:19644}\n", errs, sizeof(errs), &n);
    KT_CHECK(cfg && !cfg->admin_tls.enabled);
    kg_config_free(cfg);

    cfg = parse(CONFIG_HEAD "admin: {tls: {cert_file: /etc/hostname}}\n", errs, sizeof(errs), &n);
    KT_CHECK(cfg == NULL);
    KT_CHECK(strstr(errs, "admin.tls: missing required key 'key_file'") != NULL);
    kg_config_free(cfg);
    cfg = parse(CONFIG_HEAD "admin: {tls: {cert_file: /etc/hostname, key_file: /nonexistent/k}}\n",
                errs, sizeof(errs), &n);
    KT_CHECK(cfg == NULL);
    KT_CHECK(strstr(errs, "admin.tls.key_file: cannot read '/nonexistent/k'") != NULL);
    kg_config_free(cfg);
    cfg = parse(CONFIG_HEAD "admin: {tls: {cert_file: /etc/hostname, key_file: /etc/hostname,"
                            " verify: false}}\n",
                errs, sizeof(errs), &n);
    KT_CHECK(cfg == NULL);
    KT_CHECK(strstr(errs, "unknown key 'verify' in admin.tls") != NULL);
    kg_config_free(cfg);
}

KT_MAIN()
