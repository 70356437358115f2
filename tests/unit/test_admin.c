/* kg_admin and kg_cli against a real HTTP server on an ephemeral port: authentication, routing
 * errors, body validation, serialized concurrent failovers, audit and metrics routes, and the
 * CLI's output and exit codes. The gateway is a fake behind kg_admin_ops that keeps real state
 * in a real kg_store. */
#include "kt.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_admin.h"
#include "admin/kg_cli.h"
#include "metrics/kg_metrics.h"
#include "state/kg_store.h"

#define TOKEN "s3cret-token"

/* ---- a fake gateway: one vcluster "payments" (east primary, west secondary), "down" is a
 * cluster that is down ---- */

typedef struct fake_gateway {
    pthread_mutex_t lock;
    kg_store *store;
    kg_gauge *collected;
    char active[32];
    uint64_t epoch;
    int switches;
    int ready;
    char last_actor[256];
} fake_gateway;

static json_t *fake_status(void *ctx)
{
    fake_gateway *g = ctx;
    pthread_mutex_lock(&g->lock);
    json_t *s =
        json_pack("{s:[{s:s, s:i, s:s, s:s, s:s, s:I, s:i}], s:[{s:s, s:b, s:f, s:n},"
                  " {s:s, s:b, s:f, s:n}, {s:s, s:b, s:n, s:s}]}",
                  "vclusters", "name", "payments", "port", 19092, "primary", "east", "secondary",
                  "west", "active", g->active, "epoch", (json_int_t)g->epoch, "client_connections",
                  7, "clusters", "name", "east", "up", 1, "probe_ms", 1.25, "last_error", "name",
                  "west", "up", 1, "probe_ms", 2.5, "last_error", "name", "down", "up", 0,
                  "probe_ms", "last_error", "connection refused");
    pthread_mutex_unlock(&g->lock);
    return s;
}

/* Resolves the target like the gateway does: without TO, failover goes to the secondary and
 * failback to the primary. */
static const char *fake_target(const char *to, int failback)
{
    if (!to) return failback ? "east" : "west";
    if (strcmp(to, "east") == 0 || strcmp(to, "west") == 0 || strcmp(to, "down") == 0) return to;
    return NULL;
}

/* Like the gateway: serialized by a lock, committed through the store, the reply shaped as
 * kg_admin_ops documents. */
static int fake_switch(void *ctx, const char *vcluster, const char *to, const char *reason,
                       const char *actor, int force, int failback, json_t **result)
{
    fake_gateway *g = ctx;
    if (strcmp(vcluster, "payments") != 0) {
        *result = json_pack("{s:s}", "error", "unknown virtual cluster");
        return 404;
    }
    const char *target = fake_target(to, failback);
    if (!target) {
        *result = json_pack("{s:s}", "error", "unknown cluster");
        return 404;
    }
    if (strcmp(target, "down") == 0 && !force) {
        *result = json_pack("{s:s}", "error", "cluster down is down; use force to switch anyway");
        return 409;
    }
    pthread_mutex_lock(&g->lock);
    snprintf(g->last_actor, sizeof(g->last_actor), "%s", actor);
    int status = 200;
    if (strcmp(g->active, target) == 0) {
        *result = json_pack("{s:s, s:s, s:I, s:b}", "vcluster", vcluster, "active", target, "epoch",
                            (json_int_t)g->epoch, "changed", 0);
    } else {
        json_t *audit = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "vcluster", vcluster, "from",
                                  g->active, "to", target, "epoch", (json_int_t)(g->epoch + 1),
                                  "reason", reason, "actor", actor);
        if (kg_store_commit_switch(g->store, vcluster, target, g->epoch + 1, "switch", audit) ==
            0) {
            *result = json_pack("{s:s, s:s, s:s, s:I, s:i, s:f, s:b}", "vcluster", vcluster, "from",
                                g->active, "to", target, "epoch", (json_int_t)(g->epoch + 1),
                                "connections_closed", 7, "duration_ms", 3.14, "changed", 1);
            g->epoch++;
            g->switches++;
            snprintf(g->active, sizeof(g->active), "%s", target);
        } else {
            *result = json_pack("{s:s}", "error", "could not persist the switch");
            status = 500;
        }
        json_decref(audit);
    }
    pthread_mutex_unlock(&g->lock);
    return status;
}

static int fake_ready(void *ctx)
{
    fake_gateway *g = ctx;
    return g->ready;
}

static void fake_collect(void *ctx)
{
    fake_gateway *g = ctx;
    kg_gauge_set(g->collected, 42);
}

/* An extra route, the way the chaos module will add its own. */
static int echo_rule(void *ctx, kg_admin_request *req)
{
    return kg_admin_reply(req, 200, json_pack("{s:s, s:s}", "id", req->params[0], "ctx", ctx));
}

static const kg_admin_route extra_routes[] = {
    {"GET", "/v1/chaos/rules/{}", echo_rule, "chaos", 0, KG_ROLE_VIEWER},
};

typedef struct fixture {
    fake_gateway gw;
    kg_store *store;
    kg_metrics *metrics;
    kg_admin *admin;
    char base[64];
    char dir[64];
} fixture;

static fixture *fixture_start(const char *token)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kg_test_admin.XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/state.db", f->dir);
    f->store = kg_store_open(path, err, sizeof(err));
    f->metrics = kg_metrics_new();
    pthread_mutex_init(&f->gw.lock, NULL);
    f->gw.store = f->store;
    f->gw.ready = 1;
    f->gw.collected = kg_metrics_gauge(f->metrics, "kgate_test_collected", "Set on collect.", "");
    snprintf(f->gw.active, sizeof(f->gw.active), "east");
    kg_admin_ops ops = {.ctx = &f->gw,
                        .status = fake_status,
                        .switch_vcluster = fake_switch,
                        .ready = fake_ready,
                        .collect_metrics = fake_collect,
                        .extra_routes = extra_routes,
                        .n_extra_routes = 1};
    f->admin = kg_admin_start("127.0.0.1:0", token, &ops, f->store, f->metrics, err, sizeof(err));
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
    kg_store_close(f->store);
    kg_metrics_free(f->metrics);
    pthread_mutex_destroy(&f->gw.lock);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
}

/* ---- a tiny HTTP client ---- */

typedef struct http_result {
    long status;
    char *body;
    size_t len;
    char headers[2048];
    size_t headers_len;
} http_result;

static size_t collect_body(char *p, size_t size, size_t n, void *arg)
{
    http_result *r = arg;
    size_t len = size * n;
    r->body = realloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t collect_header(char *p, size_t size, size_t n, void *arg)
{
    http_result *r = arg;
    size_t len = size * n;
    if (r->headers_len + len < sizeof(r->headers)) {
        memcpy(r->headers + r->headers_len, p, len);
        r->headers_len += len;
        r->headers[r->headers_len] = '\0';
    }
    return len;
}

/* EXTRA_HEADER: one more request header, or NULL. */
static http_result http_hdr(const fixture *f, const char *method, const char *path,
                            const char *token, const char *body, const char *extra_header)
{
    http_result r = {0};
    char url[256], auth[128];
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    if (extra_header) h = curl_slist_append(h, extra_header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body) r.body = strdup("");
    return r;
}

static http_result http(const fixture *f, const char *method, const char *path, const char *token,
                        const char *body)
{
    return http_hdr(f, method, path, token, body, NULL);
}

static json_t *body_json(const http_result *r)
{
    return json_loads(r->body, 0, NULL);
}

/* The "error" of a JSON error reply; "" when the reply is not one. */
static const char *error_of(json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "";
}

/* Checks status and that the reply is a JSON error mentioning NEEDLE. */
static void check_error(fixture *f, const char *method, const char *path, const char *token,
                        const char *body, long status, const char *needle)
{
    http_result r = http(f, method, path, token, body);
    KT_CHECK_EQ_INT(r.status, status);
    json_t *j = body_json(&r);
    KT_CHECK(strstr(error_of(j), needle) != NULL);
    if (!strstr(error_of(j), needle))
        fprintf(stderr, "  %s %s -> %ld %s\n", method, path, r.status, r.body);
    json_decref(j);
    free(r.body);
}

KT_TEST(health_probes_need_no_token)
{
    fixture *f = fixture_start(TOKEN);
    http_result r = http(f, "GET", "/healthz", NULL, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(f, "GET", "/readyz", NULL, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    free(r.body);
    f->gw.ready = 0;
    r = http(f, "GET", "/readyz", NULL, NULL);
    KT_CHECK_EQ_INT(r.status, 503);
    json_t *j = body_json(&r);
    KT_CHECK(json_is_false(json_object_get(j, "ready")));
    json_decref(j);
    free(r.body);
    fixture_stop(f);
}

KT_TEST(missing_or_wrong_token_is_401)
{
    fixture *f = fixture_start(TOKEN);
    http_result r = http(f, "GET", "/v1/status", NULL, NULL);
    KT_CHECK_EQ_INT(r.status, 401);
    KT_CHECK(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL);
    free(r.body);
    check_error(f, "GET", "/v1/status", NULL, NULL, 401, "missing bearer token");
    check_error(f, "GET", "/v1/status", "wrong", NULL, 401, "invalid bearer token");
    check_error(f, "GET", "/v1/status", TOKEN "x", NULL, 401, "invalid bearer token");
    check_error(f, "POST", "/v1/vclusters/payments/failover", "wrong", "{\"to\":\"west\"}", 401,
                "invalid");
    /* Unknown routes do not tell an unauthenticated caller what exists. */
    check_error(f, "GET", "/v1/nothing", NULL, NULL, 401, "missing");
    check_error(f, "GET", "/metrics", NULL, NULL, 401, "missing");
    /* Nothing was switched by the rejected call. */
    KT_CHECK_EQ_INT(f->gw.switches, 0);

    r = http(f, "GET", "/v1/status", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    json_t *j = body_json(&r);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(
                        json_array_get(json_object_get(j, "vclusters"), 0), "active")),
                    "east");
    json_decref(j);
    free(r.body);
    fixture_stop(f);
}

KT_TEST(no_token_configured_means_open_and_anonymous)
{
    fixture *f = fixture_start(NULL);
    http_result r = http(f, "POST", "/v1/vclusters/payments/failover", NULL, "{}");
    KT_CHECK_EQ_INT(r.status, 200);
    KT_CHECK(strncmp(f->gw.last_actor, "anonymous from 127.0.0.1", 24) == 0);
    free(r.body);
    fixture_stop(f);
}

KT_TEST(unknown_routes_and_vclusters_are_404_wrong_method_405)
{
    fixture *f = fixture_start(TOKEN);
    check_error(f, "GET", "/v1/nothing", TOKEN, NULL, 404, "no such endpoint");
    check_error(f, "GET", "/v1/status/", TOKEN, NULL, 404, "no such endpoint");
    check_error(f, "POST", "/v1/vclusters//failover", TOKEN, "{}", 404, "no such endpoint");
    check_error(f, "POST", "/v1/vclusters/nope/failover", TOKEN, "{}", 404,
                "unknown virtual cluster");
    check_error(f, "POST", "/v1/vclusters/payments/failover", TOKEN, "{\"to\":\"mars\"}", 404,
                "unknown cluster");
    http_result r = http(f, "GET", "/v1/vclusters/payments/failover", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 405);
    KT_CHECK(strstr(r.headers, "Allow: POST") != NULL);
    free(r.body);
    check_error(f, "DELETE", "/v1/status", TOKEN, NULL, 405, "not allowed");
    fixture_stop(f);
}

KT_TEST(bad_bodies_are_400_and_too_large_413)
{
    fixture *f = fixture_start(TOKEN);
    const char *path = "/v1/vclusters/payments/failover";
    check_error(f, "POST", path, TOKEN, "{\"to\": \"west\"", 400, "invalid JSON");
    check_error(f, "POST", path, TOKEN, "not json", 400, "invalid JSON");
    check_error(f, "POST", path, TOKEN, "[\"west\"]", 400, "must be a JSON object");
    check_error(f, "POST", path, TOKEN, "{\"to\": 5}", 400, "\"to\" must be a string");
    check_error(f, "POST", path, TOKEN, "{\"force\": \"yes\"}", 400, "\"force\" must be a boolean");
    check_error(f, "POST", path, TOKEN, "{\"to\": \"west\", \"tooo\": 1}", 400,
                "unknown field \"tooo\"");
    check_error(f, "POST", path, TOKEN, "{\"to\": \"\"}", 400, "must not be empty");
    check_error(f, "POST", path, TOKEN, "{\"to\": \"west\", \"to\": \"east\"}", 400,
                "invalid JSON");
    check_error(f, "POST", "/v1/vclusters/payments/failback", TOKEN, "{\"to\": \"west\"}", 400,
                "unknown field \"to\"");
    check_error(f, "GET", "/v1/audit?limit=abc", TOKEN, NULL, 400, "limit");
    check_error(f, "GET", "/v1/audit?limit=0", TOKEN, NULL, 400, "limit");
    check_error(f, "GET", "/v1/audit?after=-3", TOKEN, NULL, 400, "after");

    size_t big = KG_ADMIN_MAX_BODY + 100;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "{\"reason\":\"", 11);
    memcpy(huge + big - 2, "\"}", 2);
    for (size_t i = 11; i < big - 2; i++)
        huge[i] = 'x';
    huge[big] = '\0';
    check_error(f, "POST", path, TOKEN, huge, 413, "larger than");
    /* Chunked: no Content-Length to refuse up front, so the limit applies while reading. */
    http_result r = http_hdr(f, "POST", path, TOKEN, huge, "Transfer-Encoding: chunked");
    KT_CHECK_EQ_INT(r.status, 413);
    free(r.body);
    /* Just under the limit is read and parsed (then refused for its content). */
    huge[KG_ADMIN_MAX_BODY - 2] = '"';
    huge[KG_ADMIN_MAX_BODY - 1] = '}';
    huge[KG_ADMIN_MAX_BODY] = '\0';
    r = http_hdr(f, "POST", path, TOKEN, huge, "Transfer-Encoding: chunked");
    KT_CHECK_EQ_INT(r.status, 400);
    KT_CHECK(strstr(r.body, "longer than 1024") != NULL);
    free(r.body);
    free(huge);
    /* None of these reached the switch. */
    KT_CHECK_EQ_INT(f->gw.switches, 0);
    KT_CHECK_EQ_STR(f->gw.active, "east");
    fixture_stop(f);
}

KT_TEST(failover_failback_and_the_audit_routes)
{
    fixture *f = fixture_start(TOKEN);
    http_result r = http(f, "POST", "/v1/vclusters/payments/failover", TOKEN,
                         "{\"to\": \"west\", \"reason\": \"us-east-1 outage\"}");
    KT_CHECK_EQ_INT(r.status, 200);
    json_t *j = body_json(&r);
    KT_CHECK(json_is_true(json_object_get(j, "changed")));
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "epoch")), 1);
    json_decref(j);
    free(r.body);

    /* The actor names the token (the config's is "bootstrap"), never the token itself. */
    KT_CHECK_EQ_STR(f->gw.last_actor, "token:bootstrap from 127.0.0.1");

    check_error(f, "POST", "/v1/vclusters/payments/failover", TOKEN, "{\"to\": \"down\"}", 409,
                "is down");
    r = http(f, "POST", "/v1/vclusters/payments/failover", TOKEN,
             "{\"to\": \"down\", \"force\": true}");
    KT_CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(f, "POST", "/v1/vclusters/payments/failback", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    j = body_json(&r);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "to")), "east");
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "epoch")), 3);
    json_decref(j);
    free(r.body);

    /* The three switches the gateway committed, and nothing written by kg_admin itself (the
     * refusal is the gateway's to record, so it is never recorded twice). */
    r = http(f, "GET", "/v1/audit", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    j = body_json(&r);
    json_t *entries = json_object_get(j, "entries");
    KT_CHECK_EQ_INT(json_array_size(entries), 3);
    const char *to[] = {"west", "down", "east"};
    for (int i = 0; i < 3; i++) {
        json_t *e = json_array_get(entries, (size_t)i);
        KT_CHECK_EQ_INT(json_integer_value(json_object_get(e, "seq")), i + 1);
        KT_CHECK_EQ_STR(json_string_value(json_object_get(e, "type")), "switch");
        KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(e, "details"), "to")),
                        to[i]);
    }
    KT_CHECK_EQ_STR(json_string_value(json_object_get(
                        json_object_get(json_array_get(entries, 0), "details"), "reason")),
                    "us-east-1 outage");
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "head"), "last_seq")), 3);
    json_decref(j);
    free(r.body);
    /* Without "after": the most recent entries. */
    r = http(f, "GET", "/v1/audit?limit=1", TOKEN, NULL);
    j = body_json(&r);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(j, "entries")), 1);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "next_after")), 3);
    json_decref(j);
    free(r.body);

    r = http(f, "GET", "/v1/audit?after=1&limit=1", TOKEN, NULL);
    j = body_json(&r);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(j, "entries")), 1);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "next_after")), 2);
    json_decref(j);
    free(r.body);

    r = http(f, "GET", "/v1/audit/verify", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    j = body_json(&r);
    KT_CHECK(json_is_true(json_object_get(j, "intact")));
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(j, "entries")), 3);
    json_decref(j);
    free(r.body);
    fixture_stop(f);
}

typedef struct racer {
    fixture *f;
    long status;
    int changed; /* 1 switched, 0 already active, -1 no answer */
} racer;

static void *race_failover(void *p)
{
    racer *r = p;
    http_result h = http(r->f, "POST", "/v1/vclusters/payments/failover", TOKEN,
                         "{\"to\": \"west\", \"reason\": \"race\"}");
    r->status = h.status;
    json_t *j = body_json(&h);
    json_t *changed = json_object_get(j, "changed");
    r->changed = json_is_boolean(changed) ? json_is_true(changed) : -1;
    json_decref(j);
    free(h.body);
    return NULL;
}

KT_TEST(concurrent_failovers_switch_exactly_once)
{
    fixture *f = fixture_start(TOKEN);
    pthread_t th[8];
    racer racers[8];
    for (int i = 0; i < 8; i++) {
        racers[i] = (racer){.f = f};
        pthread_create(&th[i], NULL, race_failover, &racers[i]);
    }
    int switched = 0, already = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        KT_CHECK_EQ_INT(racers[i].status, 200);
        switched += racers[i].changed == 1;
        already += racers[i].changed == 0;
    }
    KT_CHECK_EQ_INT(switched, 1);
    KT_CHECK_EQ_INT(already, 7);
    char active[32];
    uint64_t epoch = 0;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(f->store, "payments", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "west");
    KT_CHECK_EQ_INT(epoch, 1);
    fixture_stop(f);
}

KT_TEST(metrics_are_served_as_prometheus_text)
{
    fixture *f = fixture_start(TOKEN);
    http_result r = http(f, "GET", "/v1/status", TOKEN, NULL);
    free(r.body);
    r = http(f, "GET", "/metrics", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    KT_CHECK(strstr(r.headers, "Content-Type: text/plain; version=0.0.4") != NULL);
    /* collect_metrics ran before rendering. */
    KT_CHECK(strstr(r.body, "# TYPE kgate_test_collected gauge\nkgate_test_collected 42\n") !=
             NULL);
    KT_CHECK(strstr(r.body, "kgate_admin_requests_total{route=\"/v1/status\",code=\"200\"} 1\n") !=
             NULL);
    free(r.body);
    fixture_stop(f);
}

KT_TEST(extra_routes_plug_in_with_their_context)
{
    fixture *f = fixture_start(TOKEN);
    http_result r = http(f, "GET", "/v1/chaos/rules/r-42", TOKEN, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    json_t *j = body_json(&r);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "id")), "r-42");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "ctx")), "chaos");
    json_decref(j);
    free(r.body);
    check_error(f, "GET", "/v1/chaos/rules/r-42", NULL, NULL, 401, "missing");
    check_error(f, "DELETE", "/v1/chaos/rules/r-42", TOKEN, NULL, 405, "not allowed");
    fixture_stop(f);
}

KT_TEST(bad_listen_addresses_fail_with_a_message)
{
    char err[256] = "";
    kg_admin_ops ops = {0};
    KT_CHECK(kg_admin_start("127.0.0.1", NULL, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "host:port") != NULL);
    KT_CHECK(kg_admin_start("127.0.0.1:99999", NULL, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "invalid port") != NULL);
    /* A port already in use. */
    kg_admin *a = kg_admin_start("127.0.0.1:0", NULL, &ops, NULL, NULL, err, sizeof(err));
    KT_CHECK(a != NULL);
    char busy[32];
    snprintf(busy, sizeof(busy), "127.0.0.1:%u", kg_admin_port(a));
    err[0] = '\0';
    KT_CHECK(kg_admin_start(busy, NULL, &ops, NULL, NULL, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, busy) != NULL);
    /* Without a store and ops, routes answer 503 rather than crash. */
    fixture probe = {.admin = a};
    snprintf(probe.base, sizeof(probe.base), "http://%s", busy);
    check_error(&probe, "GET", "/v1/audit", NULL, NULL, 503, "no state store");
    check_error(&probe, "GET", "/v1/status", NULL, NULL, 503, "not available");
    check_error(&probe, "POST", "/v1/vclusters/x/failover", NULL, NULL, 503, "not available");
    kg_admin_stop(a);
}

/* ---- CLI ---- */

typedef struct cli_result {
    int rc;
    char *out;
    char *err;
} cli_result;

static cli_result run_cli(const fixture *f, const char *token, const char *args)
{
    char *copy = strdup(args);
    char *argv[32];
    int argc = 0;
    for (char *tok = strtok(copy, " "); tok && argc < 32; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    /* Words joined by '+' stand for one argument with spaces. */
    for (int i = 0; i < argc; i++)
        for (char *p = argv[i]; *p; p++)
            if (*p == '+') *p = ' ';
    cli_result r = {0};
    size_t out_len, err_len;
    FILE *out = open_memstream(&r.out, &out_len);
    FILE *err = open_memstream(&r.err, &err_len);
    r.rc = kg_cli_run(argc, argv, f ? f->base : "127.0.0.1:1", token, out, err);
    fclose(out);
    fclose(err);
    free(copy);
    return r;
}

static void cli_free(cli_result *r)
{
    free(r->out);
    free(r->err);
}

KT_TEST(cli_status_failover_failback_and_audit)
{
    fixture *f = fixture_start(TOKEN);
    cli_result r = run_cli(f, TOKEN, "status");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "VCLUSTER  ACTIVE  EPOCH  CONNECTIONS  PRIMARY  SECONDARY\n"
                           "payments  east    0      7            east     west\n") != NULL);
    KT_CHECK(strstr(r.out, "east     up     1.2 ms  -\n") != NULL);
    KT_CHECK(strstr(r.out, "down     down   -       connection refused\n") != NULL);
    cli_free(&r);

    r = run_cli(f, TOKEN, "failover payments --to west --reason us-east-1+outage");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK_EQ_STR(r.out, "payments: east -> west (epoch 1), 7 connections closed in 3.1 ms\n");
    cli_free(&r);
    r = run_cli(f, TOKEN, "failover payments");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK_EQ_STR(r.out, "payments: already on west (epoch 1), nothing to do\n");
    cli_free(&r);
    r = run_cli(f, TOKEN, "--json failback payments");
    KT_CHECK_EQ_INT(r.rc, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    KT_CHECK(json_is_true(json_object_get(j, "changed")));
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "to")), "east");
    json_decref(j);
    cli_free(&r);

    r = run_cli(f, TOKEN, "audit");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "switch") != NULL);
    KT_CHECK(strstr(r.out, "payments: east -> west (epoch 1) by token:") != NULL);
    KT_CHECK(strstr(r.out, "payments: west -> east (epoch 2) by token:") != NULL);
    KT_CHECK(strstr(r.out, "\"us-east-1 outage\"") != NULL);
    cli_free(&r);
    r = run_cli(f, TOKEN, "audit list --limit 1");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "west -> east (epoch 2)") != NULL);
    KT_CHECK(strstr(r.out, "east -> west") == NULL);
    cli_free(&r);
    r = run_cli(f, TOKEN, "audit verify");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strncmp(r.out, "audit log intact: 2 entries", 27) == 0);
    cli_free(&r);
    fixture_stop(f);
}

KT_TEST(cli_reports_api_errors_with_exit_1)
{
    fixture *f = fixture_start(TOKEN);
    cli_result r = run_cli(f, TOKEN, "failover nope");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "unknown virtual cluster (HTTP 404)") != NULL);
    cli_free(&r);
    r = run_cli(f, TOKEN, "failover payments --to down");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "use force") != NULL);
    cli_free(&r);
    r = run_cli(f, "wrong", "status");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "invalid bearer token (HTTP 401)") != NULL);
    cli_free(&r);
    /* --token on the command line wins over the default. */
    r = run_cli(f, "wrong", "status --token " TOKEN);
    KT_CHECK_EQ_INT(r.rc, 0);
    cli_free(&r);
    fixture_stop(f);

    /* Nobody listening. */
    r = run_cli(NULL, NULL, "status");
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "cannot reach the admin API") != NULL);
    cli_free(&r);
}

KT_TEST(cli_usage_errors_exit_2)
{
    const char *bad[] = {"",
                         "frobnicate",
                         "failover",
                         "failover a b",
                         "failover payments --to",
                         "failback payments --to west",
                         "status --force",
                         "audit list --limit 0",
                         "audit list --limit x",
                         "audit verify --limit 3",
                         "audit nonsense",
                         "status --bogus",
                         "failover pay/ments"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cli_result r = run_cli(NULL, NULL, bad[i]);
        KT_CHECK_EQ_INT(r.rc, 2);
        KT_CHECK(strstr(r.err, "usage: kgate") != NULL);
        if (r.rc != 2) fprintf(stderr, "  args \"%s\" -> %d\n", bad[i], r.rc);
        cli_free(&r);
    }
    cli_result r = run_cli(NULL, NULL, "--help");
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "failover VCLUSTER") != NULL);
    cli_free(&r);
}

KT_TEST(cli_admin_option_and_config_flag)
{
    fixture *f = fixture_start(TOKEN);
    char args[256];
    /* --admin overrides the default; -c FILE is accepted (main.c used it for the defaults). */
    snprintf(args, sizeof(args), "-c kgate.yaml status --admin %s --token=%s", f->base + 7, TOKEN);
    cli_result r = run_cli(NULL, NULL, args);
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "payments") != NULL);
    cli_free(&r);
    fixture_stop(f);
}

KT_MAIN()
