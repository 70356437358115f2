/* The chaos routes on a real kg_admin (ephemeral port, bearer token, real store), and the
 * `kgate chaos` CLI against it: status codes, field errors, audit with the caller's identity,
 * output and exit codes. */
#include "kt.h"
#include "kt_admin.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_admin.h"
#include "admin/kg_admin_chaos.h"
#include "admin/kg_chaos_cli.h"
#include "admin/kg_cli.h"
#include "chaos/kg_chaos.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

#define TOKEN "chaos-token"

__attribute__((constructor)) static void quiet(void)
{
    kg_log_set_level(KG_LOG_ERROR);
}

typedef struct fixture {
    char dir[64];
    kg_store *store;
    kg_chaos *chaos;
    kg_admin *admin;
    char base[64];
} fixture;

static fixture *start(void)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256];
    f->store = kt_temp_store(f->dir, "chaos_api");
    f->chaos = kg_chaos_new(f->store, NULL);
    kg_admin_route routes[KG_ADMIN_CHAOS_N_ROUTES];
    kg_admin_ops ops = {.extra_routes = routes};
    ops.n_extra_routes = kg_admin_chaos_routes(f->chaos, routes);
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
    kg_chaos_free(f->chaos);
    kt_remove_store(f->store, f->dir);
    free(f);
}

KT_TEST(routes_add_list_get_delete)
{
    fixture *f = start();
    json_t *reply;
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/chaos/rules", NULL, &reply), 200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(reply, "rules")), 0);
    json_decref(reply);

    KT_CHECK_EQ_INT(
        kt_call(f->base, TOKEN, "POST", "/v1/chaos/rules",
                "{\"type\": \"broken-brokers\", \"vcluster\": \"payments\", \"topic\": "
                "\"orders.*\", \"rate\": 10, \"for\": \"15m\", \"errors\": {\"produce\": "
                "\"NOT_ENOUGH_REPLICAS\", \"fetch\": \"NOT_LEADER_OR_FOLLOWER\"}}",
                &reply),
        201);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(reply, "id")));
    KT_CHECK(strncmp(id, "r-", 2) == 0);
    KT_CHECK(json_string_value(json_object_get(reply, "expires_at")) != NULL);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(reply, "injected")), 0);
    json_decref(reply);

    char path[128];
    snprintf(path, sizeof(path), "/v1/chaos/rules/%s", id);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", path, NULL, &reply), 200);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(reply, "topic")), "orders.*");
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", "/v1/chaos/rules", NULL, &reply), 200);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(reply, "rules")), 1);
    json_decref(reply);

    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE", path, NULL, &reply), 204);
    KT_CHECK(reply == NULL); /* no body */
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "DELETE", path, NULL, &reply), 404);
    KT_CHECK(strstr(kt_error_of(reply), id) != NULL);
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "GET", path, NULL, &reply), 404);
    json_decref(reply);

    /* The audit names the caller the way kg_admin identified it. */
    json_t *entries = kg_store_audit_list(f->store, 0, 100);
    KT_CHECK_EQ_INT(json_array_size(entries), 2);
    json_t *add = json_array_get(entries, 0), *rm = json_array_get(entries, 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(add, "type")), "chaos.rule.add");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(rm, "type")), "chaos.rule.remove");
    const char *actor = json_string_value(json_object_get(json_object_get(rm, "details"), "actor"));
    KT_CHECK(actor && strncmp(actor, "token:", 6) == 0);
    json_decref(entries);
    stop(f);
}

KT_TEST(bad_rules_are_400_naming_the_field_and_token_is_required)
{
    fixture *f = start();
    struct {
        const char *body;
        const char *want;
    } bad[] = {
        {"{\"type\": \"volcano\"}", "field \"type\": unknown fault type \"volcano\""},
        {"{\"type\": \"broken-brokers\", \"rate\": 150}", "field \"rate\""},
        {"{\"type\": \"broken-brokers\", \"topic\": \"(\"}", "field \"topic\""},
        {"{\"type\": \"broken-brokers\", \"errors\": {\"produce\": \"OFFSET_OUT_OF_RANGE\"}}",
         "field \"errors.produce\": Produce cannot return OFFSET_OUT_OF_RANGE"},
        {"{\"type\": \"latency\", \"delay_ms\": 5, \"sauce\": 1}", "unknown field \"sauce\""},
        {"{\"type\": \"down\", \"for\": \"soon\"}", "field \"for\""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *reply;
        KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/chaos/rules", bad[i].body, &reply),
                        400);
        if (!kt_count(strstr(kt_error_of(reply), bad[i].want) != NULL))
            kt_fail(__FILE__, __LINE__, "%s: got \"%s\"", bad[i].body, kt_error_of(reply));
        json_decref(reply);
    }
    json_t *reply;
    KT_CHECK_EQ_INT(kt_call(f->base, TOKEN, "POST", "/v1/chaos/rules", NULL, &reply), 400);
    json_decref(reply);
    KT_CHECK_EQ_INT(kt_call(f->base, NULL, "GET", "/v1/chaos/rules", NULL, &reply), 401);
    json_decref(reply);
    KT_CHECK_EQ_INT(
        kt_call(f->base, "wrong", "POST", "/v1/chaos/rules", "{\"type\": \"down\"}", &reply), 401);
    json_decref(reply);
    json_t *list = kg_chaos_list(f->chaos);
    KT_CHECK_EQ_INT(json_array_size(list), 0);
    json_decref(list);
    stop(f);
}

/* ---- the CLI ---- */

/* `kgate ...` as TOKEN against F's admin API (NULL: against nothing listening); see kt_cli_run. */
static kt_cli run(const fixture *f, const char *token, const char *args)
{
    return kt_cli_run(kg_chaos_cli_run, f ? f->base : "127.0.0.1:1", token, args);
}

KT_TEST(cli_add_list_rm)
{
    fixture *f = start();
    kt_cli r = run(f, TOKEN,
                   "chaos add broken-brokers --vcluster payments --topic orders.* --rate 10 "
                   "--errors produce=NOT_ENOUGH_REPLICAS,fetch=NOT_LEADER_OR_FOLLOWER --for 15m");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strncmp(r.out, "added rule r-", 13) == 0);
    KT_CHECK(strstr(r.out, "(broken-brokers): scope vcluster=payments topic=orders.*, rate 10%, "
                           "expires in 1") != NULL);
    kt_cli_done(&r);
    json_t *list = kg_chaos_list(f->chaos);
    json_t *rule = json_array_get(list, 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(rule, "errors"), "produce")),
                    "NOT_ENOUGH_REPLICAS");
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(rule, "rate")), 10);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(rule, "id")));
    json_decref(list);

    r = run(f, TOKEN,
            "add leader-election --errors LEADER_NOT_AVAILABLE --api Fetch,ListOffsets --broker 2 "
            "--rate 2.5 --id le-1");
    KT_CHECK_EQ_INT(r.rc, 0);
    kt_cli_done(&r);
    r = run(f, TOKEN, "chaos add slow-broker --broker 1 --min-ms 5 --max-ms 10 --json");
    KT_CHECK_EQ_INT(r.rc, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "max_ms")), 10);
    json_decref(j);
    kt_cli_done(&r);

    r = run(f, TOKEN, "chaos list");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strncmp(r.out, "ID ", 3) == 0);
    KT_CHECK(strstr(r.out, "TYPE") && strstr(r.out, "SCOPE") && strstr(r.out, "RATE") &&
             strstr(r.out, "EXPIRES") && strstr(r.out, "INJECTED"));
    KT_CHECK(strstr(r.out, id) != NULL);
    KT_CHECK(strstr(r.out, "le-1") != NULL);
    KT_CHECK(strstr(r.out, "api=[\"Fetch\",\"ListOffsets\"] broker=2") != NULL);
    KT_CHECK(strstr(r.out, "2.5%") != NULL);
    KT_CHECK(strstr(r.out, "never") != NULL);
    kt_cli_done(&r);

    r = run(f, TOKEN, "chaos list --json");
    KT_CHECK_EQ_INT(r.rc, 0);
    j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_INT(json_array_size(j), 3);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(j, 1), "id")), "le-1");
    json_decref(j);
    kt_cli_done(&r);

    char args[128];
    snprintf(args, sizeof(args), "chaos rm %s", id);
    r = run(f, TOKEN, args);
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "removed rule") != NULL);
    kt_cli_done(&r);
    r = run(f, TOKEN, args);
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "no chaos rule") != NULL && strstr(r.err, "(HTTP 404)") != NULL);
    kt_cli_done(&r);
    r = run(f, TOKEN, "rm le-1");
    KT_CHECK_EQ_INT(r.rc, 0);
    kt_cli_done(&r);
    stop(f);
}

KT_TEST(cli_prints_api_errors_and_usage_errors)
{
    fixture *f = start();
    kt_cli r = run(f, TOKEN, "chaos add broken-brokers --errors produce=OFFSET_OUT_OF_RANGE");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "error: field \"errors.produce\": Produce cannot return "
                           "OFFSET_OUT_OF_RANGE") != NULL);
    kt_cli_done(&r);
    /* Unknown options become fields; the API names them. */
    r = run(f, TOKEN, "chaos add latency --delay-ms 5 --colour red");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "unknown field \"colour\" for type latency") != NULL);
    kt_cli_done(&r);
    r = run(f, TOKEN, "chaos add meteor");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "unknown fault type \"meteor\"") != NULL);
    kt_cli_done(&r);
    r = run(f, "bad", "chaos list");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "(HTTP 401)") != NULL);
    kt_cli_done(&r);
    r = run(NULL, NULL, "chaos list");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "cannot reach the admin API") != NULL);
    kt_cli_done(&r);

    const char *usage[] = {"chaos",
                           "chaos frobnicate",
                           "chaos add",
                           "chaos add a b",
                           "chaos rm",
                           "chaos rm a/b",
                           "chaos list extra",
                           "chaos list --topic x",
                           "chaos add down --for",
                           "chaos add broken-brokers --errors produce=NOT_ENOUGH_REPLICAS,fetch"};
    for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
        r = run(f, TOKEN, usage[i]);
        if (!kt_count(r.rc == 2 && strstr(r.err, "usage: kgate chaos") != NULL))
            kt_fail(__FILE__, __LINE__, "\"%s\": rc %d, err %s", usage[i], r.rc, r.err);
        kt_cli_done(&r);
    }
    json_t *list = kg_chaos_list(f->chaos);
    KT_CHECK_EQ_INT(json_array_size(list), 0);
    json_decref(list);
    r = run(f, TOKEN, "chaos --help");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "add TYPE") != NULL);
    kt_cli_done(&r);
    stop(f);
}

KT_MAIN()
