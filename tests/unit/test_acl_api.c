/* The /v1/acls routes on a real kg_admin (ephemeral port, bearer token, real store), and the
 * `kgate acl` CLI against it: status codes, filters, audit with the caller's identity, output
 * and exit codes. */
#include "kt.h"
#include "kt_admin.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_acl_cli.h"
#include "admin/kg_admin.h"
#include "admin/kg_admin_acls.h"
#include "admin/kg_cli.h"
#include "security/kg_acl.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

#define TOKEN "acl-token"

__attribute__((constructor)) static void quiet(void)
{
    kg_log_set_level(KG_LOG_ERROR);
}

typedef struct fixture {
    char dir[64];
    kg_store *store;
    kg_acls *acls;
    kg_admin *admin;
    char base[64];
} fixture;

static fixture *start(void)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256];
    f->store = kt_temp_store(f->dir, "acl_api");
    f->acls = kg_acl_registry_new(f->store);
    kg_admin_route routes[KG_ADMIN_ACLS_N_ROUTES];
    kg_admin_ops ops = {.extra_routes = routes};
    ops.n_extra_routes = kg_admin_acls_routes(f->acls, routes);
    f->admin = kg_admin_start("127.0.0.1:0", TOKEN, &ops, f->store, NULL, err, sizeof(err));
    if (!f->admin) {
        fprintf(stderr, "admin: %s\n", err);
        abort();
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", kg_admin_port(f->admin));
    return f;
}

static void stop(fixture *f)
{
    kg_admin_stop(f->admin);
    kg_acl_registry_free(f->acls);
    kt_remove_store(f->store, f->dir);
    free(f);
}

static int allowed(fixture *f, const char *principal, kg_acl_resource type, const char *name,
                   kg_acl_op op)
{
    kg_acl_set *s = kg_acl_acquire(f->acls);
    int ok = kg_acl_allowed(s, principal, "127.0.0.1", type, name, strlen(name), op);
    kg_acl_release(s);
    return ok;
}

KT_TEST(routes_add_list_delete)
{
    fixture *f = start();
    json_t *r;
    KT_CHECK_EQ_INT(
        kt_call(f->base, TOKEN, "POST", "/v1/acls",
                "{\"principal\": \"User:alice\", \"permission\": \"allow\","
                " \"resource_type\": \"topic\", \"resource_name\": \"orders\","
                " \"pattern_type\": \"prefixed\", \"operations\": [\"Write\", \"Read\"]}",
                &r),
        201);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(r, "created")), 2);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 2);
    json_decref(r);
    /* The same again: nothing new, 200. */
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/acls",
                            "{\"principal\": \"User:alice\", \"permission\": \"allow\","
                            " \"resource_type\": \"topic\", \"resource_name\": \"orders\","
                            " \"pattern_type\": \"prefixed\", \"operation\": \"Write\"}",
                            &r),
                    200);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/acls",
                            "{\"principal\": \"User:bob\", \"permission\": \"deny\","
                            " \"resource_type\": \"group\", \"resource_name\": \"*\","
                            " \"operation\": \"All\"}",
                            &r),
                    201);
    json_decref(r);
    KT_CHECK(allowed(f, "User:alice", KG_ACL_TOPIC, "orders.eu", KG_ACL_DESCRIBE));
    KT_CHECK(!allowed(f, "User:alice", KG_ACL_TOPIC, "payments", KG_ACL_DESCRIBE));

    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls", NULL, &r), 200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 3);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?principal=User%3Aalice", NULL, &r),
                    200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 2);
    json_t *first = json_array_get(json_object_get(r, "acls"), 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "source")), "api");
    KT_CHECK(json_string_value(json_object_get(first, "created_ts")) != NULL);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?host=0:0::0:0", NULL, &r), 200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 0);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?host=localhost", NULL, &r), 400);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?resource_type=group", NULL, &r), 200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 1);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET",
                            "/v1/acls?operation=read,WRITE&pattern_type=prefixed", NULL, &r),
                    200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "acls")), 2);
    json_decref(r);

    /* DELETE: filters select, nothing matched is 404, no filter is refused. */
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE", "/v1/acls", NULL, &r), 400);
    KT_CHECK(strstr(kt_error_of(r), "filter") != NULL);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE",
                            "/v1/acls?principal=User:alice&operation=Write", NULL, &r),
                    200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(r, "removed")), 1);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE",
                            "/v1/acls?principal=User:alice&operation=Write", NULL, &r),
                    404);
    json_decref(r);
    KT_CHECK(!allowed(f, "User:alice", KG_ACL_TOPIC, "orders.eu", KG_ACL_WRITE));
    KT_CHECK(allowed(f, "User:alice", KG_ACL_TOPIC, "orders.eu", KG_ACL_READ));

    /* Audited with the caller's identity. */
    json_t *audit = kg_store_audit_list(f->store, 0, 100);
    int creates = 0, deletes = 0;
    size_t i;
    json_t *e;
    json_array_foreach(audit, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *actor =
            json_string_value(json_object_get(json_object_get(e, "details"), "actor"));
        creates += strcmp(type, "acl.create") == 0;
        deletes += strcmp(type, "acl.delete") == 0;
        KT_CHECK(actor && strncmp(actor, "token:", 6) == 0);
    }
    KT_CHECK_EQ_INT(creates, 3);
    KT_CHECK_EQ_INT(deletes, 1);
    json_decref(audit);
    stop(f);
}

KT_TEST(bad_requests_are_400_and_token_is_required)
{
    fixture *f = start();
    json_t *r;
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/acls", NULL, &r), 401);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/acls", NULL, &r), 400);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/acls",
                            "{\"principal\": \"User:alice\", \"permission\": \"allow\","
                            " \"resource_type\": \"group\", \"resource_name\": \"g\","
                            " \"operation\": \"Write\"}",
                            &r),
                    400);
    KT_CHECK(strstr(kt_error_of(r), "does not apply") != NULL);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/acls",
                            "{\"principal\": \"alice\", \"permission\": \"allow\","
                            " \"resource_type\": \"topic\", \"resource_name\": \"t\","
                            " \"operation\": \"Read\"}",
                            &r),
                    400);
    KT_CHECK(strstr(kt_error_of(r), "principal") != NULL);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?resource_type=broker", NULL, &r), 400);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/acls?operation=Fly", NULL, &r), 400);
    json_decref(r);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE", "/v1/acls?permission=maybe", NULL, &r), 400);
    json_decref(r);
    json_t *list = kg_acl_list(f->acls, NULL);
    KT_CHECK_EQ_INT(json_array_size(list), 0);
    json_decref(list);
    stop(f);
}

/* ---- the CLI ---- */

/* `kgate ...` as TOKEN against F's admin API (NULL: against nothing listening); see kt_cli_run. */
static kt_cli run(const fixture *f, const char *token, const char *args)
{
    return kt_cli_run(kg_acl_cli_run, f ? f->base : "127.0.0.1:1", token, args);
}

KT_TEST(cli_add_list_rm)
{
    fixture *f = start();
    kt_cli r = run(f, TOKEN,
                   "acl add --allow User:alice --operation Write,Describe --topic orders "
                   "--pattern prefixed");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "added 2 binding(s)") != NULL);
    KT_CHECK(strstr(r.out, "allow User:alice Write on topic orders (prefixed) from *") != NULL);
    kt_cli_done(&r);
    KT_CHECK(allowed(f, "User:alice", KG_ACL_TOPIC, "orders-1", KG_ACL_WRITE));

    r = run(f, TOKEN, "add --deny User:* --operation ALL --group g1 --host 10.0.0.1");
    KT_CHECK_EQ_INT(r.rc, 0);
    kt_cli_done(&r);
    r = run(f, TOKEN, "add --allow User:svc --operation IdempotentWrite --cluster --json");
    KT_CHECK_EQ_INT(r.rc, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(j, "acls"), 0),
                                                      "resource_name")),
                    "kafka-cluster");
    json_decref(j);
    kt_cli_done(&r);
    r = run(f, TOKEN, "add --allow User:svc --operation Write --transactional-id tx-1");
    KT_CHECK_EQ_INT(r.rc, 0);
    kt_cli_done(&r);

    r = run(f, TOKEN, "acl list --principal User:alice");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "Write on topic orders") && strstr(r.out, "Describe on topic orders"));
    KT_CHECK(strstr(r.out, "[api]") != NULL);
    KT_CHECK(strstr(r.out, "group") == NULL);
    kt_cli_done(&r);
    r = run(f, TOKEN, "list --json");
    KT_CHECK_EQ_INT(r.rc, 0);
    j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_INT(json_array_size(j), 5);
    json_decref(j);
    kt_cli_done(&r);
    r = run(f, TOKEN, "list --group g1");
    KT_CHECK(strstr(r.out, "deny  User:* All on group g1 (literal) from 10.0.0.1") != NULL);
    kt_cli_done(&r);

    /* rm: a resource without --pattern means literal (as kafka-acls): the prefixed ones stay. */
    r = run(f, TOKEN, "rm --allow User:alice --operation Write --topic orders");
    KT_CHECK_EQ_INT(r.rc, 1);
    kt_cli_done(&r);
    r = run(f, TOKEN, "rm --allow User:alice --operation Write --topic orders --pattern prefixed");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "removed 1 binding(s)") != NULL);
    kt_cli_done(&r);
    KT_CHECK(!allowed(f, "User:alice", KG_ACL_TOPIC, "orders-1", KG_ACL_WRITE));
    KT_CHECK(allowed(f, "User:alice", KG_ACL_TOPIC, "orders-1", KG_ACL_DESCRIBE));
    r = run(f, TOKEN, "rm --principal User:svc");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "removed 2 binding(s)") != NULL);
    kt_cli_done(&r);
    stop(f);
}

KT_TEST(cli_usage_errors_exit_2)
{
    static const char *const bad[] = {
        "acl add --operation Write --topic t",
        "acl add --allow User:a --deny User:b --operation Write --topic t",
        "acl add --allow User:a --topic t",
        "acl add --allow User:a --operation Write",
        "acl add --allow User:a --operation Write --topic t --group g",
        "acl add --allow User:a --operation Fly --topic t",
        "acl add --allow User:a --operation Write --topic t --pattern any",
        "acl add --allow User:a --operation Write --topic t --pattern glob",
        "acl rm",
        "acl rm --operation Write",
        "acl frobnicate",
        "acl",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_cli r = run(NULL, TOKEN, bad[i]);
        if (!kt_count(r.rc == 2)) kt_fail(__FILE__, __LINE__, "%s: exit %d", bad[i], r.rc);
        kt_cli_done(&r);
    }
    /* API errors exit 1 with the message. */
    fixture *f = start();
    kt_cli r = run(f, TOKEN, "acl add --allow alice --operation Write --topic t");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "principal") != NULL);
    kt_cli_done(&r);
    r = run(f, "wrong", "acl list");
    KT_CHECK_EQ_INT(r.rc, 1);
    kt_cli_done(&r);
    stop(f);
}

KT_MAIN()
