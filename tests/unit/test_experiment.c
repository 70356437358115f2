/* Experiments with a fake clock and fake per-vcluster counters, but a real chaos registry (its
 * rules really injected through kg_chaos_tcp_faults, which counts injections the way the
 * engine does) and a real state store: lifecycle, rules added and removed, abort criteria
 * tripping at the exact second the window crosses the limit, per-minute records, expectations,
 * audit entries, restart handling, the report, the admin routes and the CLI. */
#include "kt.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_admin.h"
#include "admin/kg_admin_experiments.h"
#include "admin/kg_experiment_cli.h"
#include "chaos/kg_chaos.h"
#include "chaos/kg_experiment.h"
#include "config/kg_config.h"
#include "metrics/kg_metrics.h"
#include "state/kg_store.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z: the fake clock's start */

/* ---------------------------------------------------------------- fixture */

typedef struct fake_env {
    pthread_mutex_t lock;
    kg_vc_sample s; /* the counters of virtual cluster "payments" */
    int inspecting; /* inspection level: on calls minus off calls */
    int inspect_calls;
    int gone; /* "payments" disappeared (a reload removed it) */
} fake_env;

static int fake_sample(void *ctx, const char *vcluster, kg_vc_sample *out)
{
    fake_env *e = ctx;
    pthread_mutex_lock(&e->lock);
    int ok = strcmp(vcluster, "payments") == 0 && !e->gone;
    if (ok) *out = e->s;
    pthread_mutex_unlock(&e->lock);
    return ok ? 0 : -1;
}

static int fake_inspect(void *ctx, const char *vcluster, int on)
{
    fake_env *e = ctx;
    if (strcmp(vcluster, "payments") != 0) return -1;
    pthread_mutex_lock(&e->lock);
    e->inspecting += on ? 1 : -1;
    e->inspect_calls++;
    pthread_mutex_unlock(&e->lock);
    return 0;
}

typedef struct fx {
    char dir[64];
    kg_store *store;
    kg_metrics *metrics;
    kg_chaos *chaos;
    fake_env env;
    kg_experiments *xs;
    int64_t now;
    uint64_t rng;
    kg_admin *admin;
    char base[64];
} fx;

static kg_experiments *open_experiments(fx *f)
{
    kg_experiment_env env = {.ctx = &f->env, .sample = fake_sample, .inspect = fake_inspect};
    return kg_experiments_new(f->chaos, f->store, &env);
}

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kg_test_experiment.XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/state.db", f->dir);
    f->store = kg_store_open(path, err, sizeof(err));
    if (!f->store) {
        fprintf(stderr, "store: %s\n", err);
        abort();
    }
    f->metrics = kg_metrics_new();
    f->chaos = kg_chaos_new(f->store, f->metrics);
    pthread_mutex_init(&f->env.lock, NULL);
    f->xs = open_experiments(f);
    f->now = T0;
    f->rng = 12345;
    return f;
}

static void fx_start_admin(fx *f)
{
    kg_admin_route routes[KG_ADMIN_EXPERIMENTS_N_ROUTES];
    kg_admin_ops ops = {.extra_routes = routes};
    ops.n_extra_routes = kg_admin_experiments_routes(f->xs, routes);
    char err[256];
    f->admin = kg_admin_start("127.0.0.1:0", NULL, &ops, f->store, f->metrics, err, sizeof(err));
    if (!f->admin) {
        fprintf(stderr, "admin: %s\n", err);
        abort();
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", kg_admin_port(f->admin));
}

static void fx_free(fx *f)
{
    if (f->admin) kg_admin_stop(f->admin);
    kg_experiments_free(f->xs);
    kg_chaos_free(f->chaos);
    kg_store_close(f->store);
    kg_metrics_free(f->metrics);
    pthread_mutex_destroy(&f->env.lock);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", f->dir);
    free(f);
}

/* What clients do in one second (counter increments) and how many connections kgate would
 * check against the chaos rules (each a potential injection). */
typedef struct traffic {
    uint64_t requests, produce_bytes, fetch_bytes;
    uint64_t produce_results, produce_errors, fetch_results, fetch_errors;
    uint64_t commits, commit_errors, opened, closed;
    int payments_conns, other_conns; /* connections checked for TCP faults */
} traffic;

/* Checks N connections of VCLUSTER against the live rules, as the engine does at accept. */
static int check_connections(fx *f, const char *vcluster, int n)
{
    int hits = 0;
    for (int i = 0; i < n; i++) {
        kg_chaos_set *set = kg_chaos_acquire(f->chaos);
        kg_chaos_conn conn = {.vcluster = vcluster, .node_id = -1, .rng = &f->rng};
        kg_chaos_tcp tcp;
        hits += kg_chaos_tcp_faults(set, &conn, &tcp);
        kg_chaos_release(set);
    }
    return hits;
}

/* One second of TRAFFIC, then the housekeeping tick at its end. Returns the faults injected. */
static int second(fx *f, const traffic *t)
{
    pthread_mutex_lock(&f->env.lock);
    kg_vc_sample *s = &f->env.s;
    s->requests += t->requests;
    s->produce_requests += t->produce_results ? 1 : 0;
    s->fetch_requests += t->fetch_results ? 1 : 0;
    s->commit_requests += t->commits;
    s->produce_bytes += t->produce_bytes;
    s->fetch_bytes += t->fetch_bytes;
    s->produce_results += t->produce_results;
    s->produce_errors += t->produce_errors;
    s->fetch_results += t->fetch_results;
    s->fetch_errors += t->fetch_errors;
    s->commit_results += t->commits;
    s->commit_errors += t->commit_errors;
    s->connections_opened += t->opened;
    s->connections_closed += t->closed;
    pthread_mutex_unlock(&f->env.lock);
    int hits = check_connections(f, "payments", t->payments_conns);
    hits += check_connections(f, "other", t->other_conns);
    f->now += 1000;
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    return hits;
}

static int seconds(fx *f, int n, const traffic *t)
{
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += second(f, t);
    return hits;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) {
        fprintf(stderr, "bad test JSON: %s: %s\n", jerr.text, text);
        abort();
    }
    return j;
}

/* Creates an experiment from DRILL (JSON text); returns its id (malloc'd) or NULL. */
static char *create(fx *f, const char *drill)
{
    json_t *in = parse(drill), *out = NULL;
    char err[512] = "";
    int status = kg_experiments_create(f->xs, in, "tester", &out, err, sizeof(err));
    json_decref(in);
    if (!kt_count(status == 201)) {
        kt_fail(__FILE__, __LINE__, "create returned %d: %s", status, err);
        json_decref(out);
        return NULL;
    }
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

/* The refusal of DRILL: status and message. */
static int refuse(fx *f, const char *drill, char *err, size_t errlen)
{
    json_t *in = parse(drill), *out = NULL;
    err[0] = '\0';
    int status = kg_experiments_create(f->xs, in, "tester", &out, err, errlen);
    json_decref(in);
    json_decref(out);
    return status;
}

static json_t *record(fx *f, const char *id)
{
    return kg_experiments_get(f->xs, id, 0);
}

static const char *status_in(json_t *doc)
{
    const char *s = json_string_value(json_object_get(doc, "status"));
    return s ? s : "(none)";
}

/* Status of ID right now (static buffer). */
static const char *status_of(fx *f, const char *id)
{
    static char buf[32];
    json_t *doc = record(f, id);
    snprintf(buf, sizeof(buf), "%s", status_in(doc));
    json_decref(doc);
    return buf;
}

static int n_rules(fx *f)
{
    json_t *rules = kg_chaos_list(f->chaos);
    int n = (int)json_array_size(rules);
    json_decref(rules);
    return n;
}

/* Audit entries of TYPE about experiment ID. Array (new reference). */
static json_t *audit_entries(fx *f, const char *type, const char *id)
{
    json_t *all = kg_store_audit_list(f->store, -1, 1000), *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        json_t *d = json_object_get(e, "details");
        if (strcmp(json_string_value(json_object_get(e, "type")), type) == 0 &&
            strcmp(json_string_value(json_object_get(d, "id")) ?: "", id) == 0)
            json_array_append(out, d);
    }
    json_decref(all);
    return out;
}

/* The evaluated expectation called NAME in DOC. */
static json_t *expectation(json_t *doc, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(doc, "expectations"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "expectation")), name) == 0) return e;
    }
    return NULL;
}

static const char *result_of(json_t *doc, const char *name)
{
    const char *r = json_string_value(json_object_get(expectation(doc, name), "result"));
    return r ? r : "(missing)";
}

static long long int_at(json_t *obj, const char *key)
{
    return (long long)json_integer_value(json_object_get(obj, key));
}

static double num_at(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static const traffic steady = {.requests = 12,
                               .produce_bytes = 1000,
                               .fetch_bytes = 2000,
                               .produce_results = 10,
                               .fetch_results = 5,
                               .commits = 1,
                               .payments_conns = 2,
                               .other_conns = 1};

static const char *const drill_main =
    "{\"name\": \"broker errors at 100%\", \"hypothesis\": \"producers retry, nothing is lost\","
    " \"vcluster\": \"payments\", \"duration\": \"2m\", \"baseline\": \"10s\","
    " \"rules\": [{\"type\": \"down\"}],"
    " \"expect\": {\"max_produce_error_rate\": 1, \"min_produce_throughput_ratio\": 0.5,"
    "  \"min_faults_injected\": 1, \"max_commit_stall\": \"20s\", \"max_fetch_error_rate\": 0,"
    "  \"other\": [\"every message is delivered exactly once\"]}}";

/* Runs drill_main to completion: baseline at 1000 B/s produce; injection at 800 B/s, produce
 * errors 1/s in its second minute only, 2 connections a second checked against the rules. */
static char *run_main_drill(fx *f, int *faults)
{
    char *id = create(f, drill_main);
    if (!id) return NULL;
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    *faults = seconds(f, 10, &steady);
    traffic slower = steady;
    slower.produce_bytes = 800;
    *faults += seconds(f, 60, &slower);
    slower.produce_errors = 1;
    *faults += seconds(f, 60, &slower);
    return id;
}

/* ---------------------------------------------------------------- lifecycle */

KT_TEST(lifecycle_adds_rules_after_the_baseline_and_removes_them_at_the_end)
{
    fx *f = fx_new();
    char *id = create(f, drill_main);
    KT_CHECK(id && strncmp(id, "x-", 2) == 0);
    KT_CHECK_EQ_STR(status_of(f, id), "pending");
    KT_CHECK_EQ_INT(n_rules(f), 0);

    kg_experiments_tick(f->xs, (uint64_t)f->now);
    KT_CHECK_EQ_STR(status_of(f, id), "baseline");
    KT_CHECK_EQ_INT(f->env.inspecting, 1);
    /* Nothing is injected while the baseline is measured. */
    KT_CHECK_EQ_INT(seconds(f, 9, &steady), 0);
    KT_CHECK_EQ_STR(status_of(f, id), "baseline");
    KT_CHECK_EQ_INT(second(f, &steady), 0);
    KT_CHECK_EQ_STR(status_of(f, id), "running");

    json_t *rules = kg_chaos_list(f->chaos);
    KT_CHECK_EQ_INT(json_array_size(rules), 1);
    json_t *rule = json_array_get(rules, 0);
    char want_id[80];
    snprintf(want_id, sizeof(want_id), "%s-r1", id);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(rule, "id")), want_id);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(rule, "vcluster")), "payments");
    KT_CHECK(json_is_string(json_object_get(rule, "expires_at")));
    json_decref(rules);

    /* Injection: only the experiment's virtual cluster is hit (2 of 3 connections). */
    KT_CHECK_EQ_INT(seconds(f, 60, &steady), 120);
    json_t *doc = record(f, id);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(doc, "minutes")), 1);
    json_decref(doc);
    KT_CHECK_EQ_INT(seconds(f, 59, &steady), 118);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    KT_CHECK_EQ_INT(second(f, &steady), 2);
    KT_CHECK_EQ_STR(status_of(f, id), "completed");
    KT_CHECK_EQ_INT(n_rules(f), 0);
    KT_CHECK_EQ_INT(f->env.inspecting, 0);
    KT_CHECK_EQ_INT(f->env.inspect_calls, 2);
    /* After the end the rule is gone: nothing more is injected. */
    KT_CHECK_EQ_INT(second(f, &steady), 0);

    doc = record(f, id);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(doc, "end_reason")),
                    "ran for its planned duration");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(doc, "injection_started_at")),
                    "2026-01-01T00:00:10.000Z");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(doc, "ended_at")),
                    "2026-01-01T00:02:10.000Z");
    KT_CHECK_EQ_INT(int_at(json_array_get(json_object_get(doc, "rules"), 0), "injected"), 240);
    json_decref(doc);
    free(id);
    fx_free(f);
}

KT_TEST(per_minute_records_and_expectations_come_from_the_measurements)
{
    fx *f = fx_new();
    int faults = 0;
    char *id = run_main_drill(f, &faults);
    KT_CHECK_EQ_INT(faults, 240);
    json_t *doc = record(f, id);
    KT_CHECK_EQ_STR(status_in(doc), "completed");

    json_t *baseline = json_object_get(doc, "baseline");
    KT_CHECK(num_at(baseline, "seconds") == 10);
    KT_CHECK(num_at(baseline, "produce_bytes_per_s") == 1000);
    KT_CHECK_EQ_INT(int_at(baseline, "faults_injected"), 0);
    KT_CHECK_EQ_INT(int_at(baseline, "commit_requests"), 10);

    json_t *minutes = json_object_get(doc, "minutes");
    KT_CHECK_EQ_INT(json_array_size(minutes), 2);
    json_t *m1 = json_array_get(minutes, 0), *m2 = json_array_get(minutes, 1);
    KT_CHECK_EQ_INT(int_at(m1, "minute"), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(m1, "start")), "2026-01-01T00:00:10.000Z");
    KT_CHECK_EQ_INT(int_at(m1, "requests"), 720);
    KT_CHECK_EQ_INT(int_at(m1, "faults_injected"), 120);
    KT_CHECK_EQ_INT(int_at(m1, "produce_errors"), 0);
    KT_CHECK_EQ_INT(int_at(m2, "produce_errors"), 60);
    KT_CHECK_EQ_INT(int_at(m2, "produce_results"), 600);
    KT_CHECK(num_at(m2, "produce_bytes_per_s") == 800);
    KT_CHECK(num_at(m2, "fetch_bytes_per_s") == 2000);
    KT_CHECK(num_at(m2, "commit_requests_per_s") == 1);

    json_t *during = json_object_get(doc, "during");
    KT_CHECK(num_at(during, "seconds") == 120);
    KT_CHECK_EQ_INT(int_at(during, "faults_injected"), 240);
    KT_CHECK(num_at(during, "produce_error_pct") == 5.0);

    /* 60 errors in 1200 produce results = 5 % against a limit of 1 %. */
    KT_CHECK_EQ_STR(result_of(doc, "max_produce_error_rate"), "fail");
    KT_CHECK(num_at(expectation(doc, "max_produce_error_rate"), "observed_value") == 5.0);
    KT_CHECK_EQ_STR(result_of(doc, "min_produce_throughput_ratio"), "pass");
    KT_CHECK(num_at(expectation(doc, "min_produce_throughput_ratio"), "observed_value") == 0.8);
    KT_CHECK_EQ_STR(result_of(doc, "min_faults_injected"), "pass");
    KT_CHECK_EQ_STR(result_of(doc, "max_commit_stall"), "pass");
    /* Fetch results were seen and none was an error. */
    KT_CHECK_EQ_STR(result_of(doc, "max_fetch_error_rate"), "pass");
    KT_CHECK_EQ_STR(result_of(doc, "other"), "not machine-checkable");
    json_decref(doc);
    free(id);
    fx_free(f);
}

KT_TEST(expectations_without_traffic_have_no_data_rather_than_passing)
{
    fx *f = fx_new();
    char *id = create(f, "{\"name\": \"quiet\", \"hypothesis\": \"h\", \"vcluster\": \"payments\","
                         " \"duration\": \"5s\", \"baseline\": \"2s\", \"rules\": [{\"type\": "
                         "\"down\"}], \"expect\": {\"max_produce_error_rate\": 0,"
                         " \"min_fetch_throughput_ratio\": 0.9, \"max_commit_stall\": \"1s\","
                         " \"min_faults_injected\": 1}}");
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    traffic idle = {.requests = 1};
    seconds(f, 7, &idle);
    json_t *doc = record(f, id);
    KT_CHECK_EQ_STR(status_in(doc), "completed");
    KT_CHECK_EQ_STR(result_of(doc, "max_produce_error_rate"), "no data");
    KT_CHECK_EQ_STR(result_of(doc, "min_fetch_throughput_ratio"), "no data");
    KT_CHECK_EQ_STR(result_of(doc, "max_commit_stall"), "no data");
    /* No connection was checked against the rule: nothing injected, the expectation fails. */
    KT_CHECK_EQ_STR(result_of(doc, "min_faults_injected"), "fail");
    json_decref(doc);
    free(id);
    fx_free(f);
}

/* ---------------------------------------------------------------- abort criteria */

KT_TEST(client_error_rate_abort_trips_when_the_window_crosses_the_limit)
{
    fx *f = fx_new();
    char *id = create(f, "{\"name\": \"errors\", \"hypothesis\": \"h\", \"vcluster\": \"payments\","
                         " \"duration\": \"10m\", \"baseline\": \"2s\", \"rules\": [{\"type\": "
                         "\"down\"}], \"abort\": {\"client_error_rate_above\": 50, \"window\": "
                         "\"5s\"}}");
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    traffic ok = {.requests = 10, .produce_results = 10, .produce_bytes = 100};
    traffic failing = ok;
    failing.produce_errors = 10;
    seconds(f, 2, &ok);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    seconds(f, 5, &ok);
    /* Each failing second adds 10 errors to the 5-second window of 50 results: 20 % ... 40 %
     * does not trip, 60 % does. */
    seconds(f, 2, &failing);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    KT_CHECK_EQ_INT(n_rules(f), 1);
    second(f, &failing);
    KT_CHECK_EQ_STR(status_of(f, id), "aborted");
    KT_CHECK_EQ_INT(n_rules(f), 0);
    KT_CHECK_EQ_INT(f->env.inspecting, 0);

    json_t *doc = record(f, id);
    json_t *a = json_object_get(doc, "abort");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(a, "criterion")), "client_error_rate_above");
    KT_CHECK(num_at(a, "observed") == 60.0);
    KT_CHECK(num_at(a, "window_s") == 5.0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(a, "at")), "2026-01-01T00:00:10.000Z");
    const char *reason = json_string_value(json_object_get(doc, "end_reason"));
    KT_CHECK(reason && strstr(reason, "client_error_rate_above") && strstr(reason, "60.00 %"));
    json_decref(doc);

    json_t *aborts = audit_entries(f, "experiment.abort", id);
    KT_CHECK_EQ_INT(json_array_size(aborts), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(aborts, 0), "criterion")),
                    "client_error_rate_above");
    json_decref(aborts);
    json_t *ends = audit_entries(f, "experiment.end", id);
    KT_CHECK_EQ_INT(json_array_size(ends), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(ends, 0), "status")),
                    "aborted");
    json_decref(ends);
    free(id);
    fx_free(f);
}

KT_TEST(throughput_abort_compares_with_the_baseline_and_needs_baseline_traffic)
{
    fx *f = fx_new();
    char *id = create(f, "{\"name\": \"slow\", \"hypothesis\": \"h\", \"vcluster\": \"payments\","
                         " \"duration\": \"10m\", \"baseline\": \"4s\", \"rules\": [{\"type\": "
                         "\"down\"}], \"abort\": {\"produce_throughput_below\": 50,"
                         " \"fetch_throughput_below\": 50, \"window\": \"4s\"}}");
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    /* No fetch traffic in the baseline: the fetch criterion can never trip. */
    traffic t = {.requests = 5, .produce_results = 5, .produce_bytes = 1000};
    seconds(f, 4, &t);
    seconds(f, 6, &t);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    /* 300 B/s for the whole window = 30 % of the baseline; the window first holds only
     * slow seconds after 4 of them, but crosses 50 % earlier: (1000+1000+300+300)/4 = 65 %,
     * (1000+300*3)/4 = 47.5 %. */
    t.produce_bytes = 300;
    seconds(f, 2, &t);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    second(f, &t);
    KT_CHECK_EQ_STR(status_of(f, id), "aborted");
    json_t *doc = record(f, id);
    json_t *a = json_object_get(doc, "abort");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(a, "criterion")), "produce_throughput_below");
    KT_CHECK(num_at(a, "observed") == 47.5);
    json_decref(doc);
    free(id);
    fx_free(f);
}

KT_TEST(group_commit_stall_abort_needs_producers_to_keep_producing)
{
    fx *f = fx_new();
    const char *drill =
        "{\"name\": \"stall\", \"hypothesis\": \"h\", \"vcluster\": \"payments\","
        " \"duration\": \"10m\", \"baseline\": \"5s\", \"rules\": [{\"type\": \"down\"}],"
        " \"abort\": {\"group_commit_stalled_for\": \"30s\"}}";
    char *id = create(f, drill);
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    traffic busy = {.requests = 5, .produce_results = 5, .produce_bytes = 100, .commits = 1};
    seconds(f, 5, &busy);
    traffic stalled = busy;
    stalled.commits = 0;
    seconds(f, 29, &stalled);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    second(f, &stalled);
    KT_CHECK_EQ_STR(status_of(f, id), "aborted");
    json_t *doc = record(f, id);
    KT_CHECK(num_at(json_object_get(doc, "abort"), "observed") == 30000);
    json_decref(doc);
    free(id);

    /* Same stall with producers idle: nothing to commit, no abort. */
    id = create(f, drill);
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 5, &busy);
    traffic idle = {.requests = 1};
    seconds(f, 60, &idle);
    KT_CHECK_EQ_STR(status_of(f, id), "running");
    free(id);
    fx_free(f);
}

KT_TEST(an_unobservable_vcluster_aborts_the_experiment)
{
    fx *f = fx_new();
    char *id = create(f, "{\"name\": \"gone\", \"hypothesis\": \"h\", \"vcluster\": \"payments\","
                         " \"duration\": \"1m\", \"baseline\": \"1s\", \"rules\": [{\"type\": "
                         "\"down\"}]}");
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 3, &steady);
    KT_CHECK_EQ_INT(n_rules(f), 1);
    f->env.gone = 1;
    seconds(f, 1, &steady);
    KT_CHECK_EQ_STR(status_of(f, id), "aborted");
    KT_CHECK_EQ_INT(n_rules(f), 0);
    KT_CHECK_EQ_INT(f->env.inspecting, 0);
    free(id);
    fx_free(f);
}

/* ---------------------------------------------------------------- stop, validation, audit */

KT_TEST(stop_ends_it_now_removes_rules_and_records_who)
{
    fx *f = fx_new();
    char *id = create(f, drill_main);
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 15, &steady);
    KT_CHECK_EQ_INT(n_rules(f), 1);
    json_t *out = NULL;
    char err[256];
    KT_CHECK_EQ_INT(kg_experiments_stop(f->xs, id, "alice", &out, err, sizeof(err)), 200);
    KT_CHECK_EQ_STR(status_in(out), "stopped");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(out, "stopped_by")), "alice");
    /* The partial minute is recorded. */
    KT_CHECK_EQ_INT(json_array_size(json_object_get(out, "minutes")), 1);
    KT_CHECK(num_at(json_object_get(out, "during"), "seconds") == 5);
    json_decref(out);
    KT_CHECK_EQ_INT(n_rules(f), 0);
    KT_CHECK_EQ_INT(f->env.inspecting, 0);
    KT_CHECK_EQ_INT(kg_experiments_stop(f->xs, id, "alice", &out, err, sizeof(err)), 409);
    KT_CHECK_EQ_INT(kg_experiments_stop(f->xs, "x-nope", "alice", &out, err, sizeof(err)), 404);

    json_t *starts = audit_entries(f, "experiment.start", id);
    KT_CHECK_EQ_INT(json_array_size(starts), 1);
    json_t *s = json_array_get(starts, 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(s, "actor")), "tester");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(s, "name")), "broker errors at 100%");
    json_decref(starts);
    json_t *ends = audit_entries(f, "experiment.end", id);
    KT_CHECK_EQ_INT(json_array_size(ends), 1);
    json_t *e = json_array_get(ends, 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(e, "status")), "stopped");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(e, "actor")), "alice");
    KT_CHECK_EQ_INT(int_at(e, "faults_injected"), 10);
    json_decref(ends);
    json_t *aborts = audit_entries(f, "experiment.abort", id);
    KT_CHECK_EQ_INT(json_array_size(aborts), 0);
    json_decref(aborts);
    free(id);
    fx_free(f);
}

/* The drill is refused with STATUS and a message containing WANT. */
static void check_refused(fx *f, const char *drill, int status, const char *want)
{
    char err[768];
    int got = refuse(f, drill, err, sizeof(err));
    if (!kt_count(got == status && strstr(err, want)))
        kt_fail(__FILE__, __LINE__, "drill %s: expected %d mentioning %s, got %d: %s", drill,
                status, want, got, err);
}

#define HEAD "\"name\": \"n\", \"hypothesis\": \"h\", \"vcluster\": \"payments\", "
#define RULES "\"rules\": [{\"type\": \"down\"}]"

KT_TEST(bad_drills_are_refused_naming_the_field)
{
    fx *f = fx_new();
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES ", \"colour\": 1}", 400, "\"colour\"");
    check_refused(f,
                  "{\"name\": \"n\", \"vcluster\": \"payments\", \"duration\": \"1m\", " RULES "}",
                  400, "\"hypothesis\"");
    check_refused(f, "{" HEAD "\"duration\": \"5 minutes\", " RULES "}", 400, "\"duration\"");
    check_refused(f, "{" HEAD "\"duration\": 300, " RULES "}", 400, "\"duration\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", \"baseline\": \"0s\", " RULES "}", 400,
                  "\"baseline\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", \"rules\": []}", 400, "\"rules\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", \"rules\": [{\"type\": \"meteor\"}]}", 400,
                  "rules[0]: field \"type\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", \"rules\": [{\"type\": \"down\"}, {\"type\": "
                  "\"latency\", \"rate\": 150}]}",
                  400, "rules[1]: field \"rate\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", \"rules\": [{\"type\": \"down\", \"vcluster\": "
                  "\"orders\"}]}",
                  400, "\"rules[0].vcluster\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", \"rules\": [{\"type\": \"down\", \"for\": "
                  "\"5m\"}]}",
                  400, "\"rules[0].for\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES ", \"expect\": {\"no_bugs\": 1}}", 400,
                  "\"expect.no_bugs\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", " RULES
                  ", \"expect\": {\"min_produce_throughput_ratio\": 90}}",
                  400, "\"expect.min_produce_throughput_ratio\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", " RULES
                  ", \"expect\": {\"max_produce_error_rate\": \"none\"}}",
                  400, "\"expect.max_produce_error_rate\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES ", \"expect\": {\"other\": [1]}}", 400,
                  "\"expect.other[0]\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES ", \"abort\": {\"window\": \"0s\"}}",
                  400, "\"abort.window\"");
    check_refused(f,
                  "{" HEAD "\"duration\": \"1m\", " RULES
                  ", \"abort\": {\"group_commit_stalled_for\": 30}}",
                  400, "\"abort.group_commit_stalled_for\"");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES ", \"abort\": {\"panic\": 1}}", 400,
                  "\"abort.panic\"");
    check_refused(f,
                  "{\"name\": \"n\", \"hypothesis\": \"h\", \"vcluster\": \"nowhere\", "
                  "\"duration\": \"1m\", " RULES "}",
                  400, "\"vcluster\"");
    check_refused(f, "[1, 2]", 400, "object");
    KT_CHECK_EQ_INT(n_rules(f), 0);

    /* One active experiment per virtual cluster. */
    char *id = create(f, "{" HEAD "\"duration\": \"1m\", " RULES "}");
    check_refused(f, "{" HEAD "\"duration\": \"1m\", " RULES "}", 409, id ? id : "?");
    free(id);
    fx_free(f);
}

/* ---------------------------------------------------------------- restarts */

KT_TEST(experiments_running_at_shutdown_or_found_at_start_are_interrupted)
{
    fx *f = fx_new();
    char *id = create(f, drill_main);
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 75, &steady);
    KT_CHECK_EQ_INT(n_rules(f), 1);
    /* What a crash would leave behind: the running record and the persisted rule. */
    json_t *snapshot = kg_store_get_doc(f->store, "experiment", id, NULL);
    json_t *rule = kg_chaos_list(f->chaos);
    json_t *rule_copy = json_deep_copy(json_array_get(rule, 0));
    json_decref(rule);

    /* Orderly shutdown: interrupted, rule removed, inspection off. */
    kg_experiments_free(f->xs);
    f->xs = NULL;
    KT_CHECK_EQ_INT(n_rules(f), 0);
    KT_CHECK_EQ_INT(f->env.inspecting, 0);
    json_t *doc = kg_store_get_doc(f->store, "experiment", id, NULL);
    KT_CHECK_EQ_STR(status_in(doc), "interrupted");
    KT_CHECK_EQ_INT(json_array_size(json_object_get(doc, "minutes")), 2);
    json_decref(doc);

    /* Crash: the record still says running and the rule is still registered. */
    KT_CHECK_EQ_STR(status_in(snapshot), "running");
    kg_store_put_doc(f->store, "experiment", id, snapshot);
    json_object_del(rule_copy, "expires_at");
    json_object_del(rule_copy, "created_at");
    json_object_del(rule_copy, "source");
    json_object_del(rule_copy, "matched");
    json_object_del(rule_copy, "injected");
    char err[256];
    KT_CHECK_EQ_INT(kg_chaos_add(f->chaos, rule_copy, "test", NULL, err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(n_rules(f), 1);
    f->xs = open_experiments(f);
    KT_CHECK_EQ_INT(n_rules(f), 0);
    doc = record(f, id);
    KT_CHECK_EQ_STR(status_in(doc), "interrupted");
    const char *reason = json_string_value(json_object_get(doc, "end_reason"));
    KT_CHECK(reason && strstr(reason, "running"));
    /* Judged from what was persisted: the first minute's measurements. */
    KT_CHECK_EQ_STR(result_of(doc, "min_faults_injected"), "pass");
    json_decref(doc);
    json_t *ends = audit_entries(f, "experiment.end", id);
    KT_CHECK_EQ_INT(json_array_size(ends), 2);
    json_decref(ends);
    /* A new experiment may start on the same virtual cluster. */
    char *again = create(f, drill_main);
    KT_CHECK(again != NULL);
    free(again);
    json_decref(snapshot);
    json_decref(rule_copy);
    free(id);
    fx_free(f);
}

/* ---------------------------------------------------------------- report and annotations */

static json_t *annotate(fx *f, const char *id, const char *patch_text, int want_status,
                        const char *want_err)
{
    json_t *patch = parse(patch_text), *out = NULL;
    char err[512] = "";
    int status = kg_experiments_annotate(f->xs, id, patch, "bob", &out, err, sizeof(err));
    json_decref(patch);
    if (!kt_count(status == want_status && (!want_err || strstr(err, want_err))))
        kt_fail(__FILE__, __LINE__, "annotate %s: expected %d (%s), got %d: %s", patch_text,
                want_status, want_err ? want_err : "", status, err);
    return out;
}

KT_TEST(report_has_the_six_fields_filled_from_the_measurements)
{
    fx *f = fx_new();
    int faults;
    char *id = run_main_drill(f, &faults);
    json_t *r = kg_experiments_report(f->xs, id);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(r, "experiment")), id);
    json_t *h = json_object_get(r, "hypothesis");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(h, "statement")),
                    "producers retry, nothing is lost");
    KT_CHECK_EQ_INT(json_array_size(json_object_get(h, "expectations")), 6);

    json_t *c = json_object_get(r, "test_configuration");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(c, "vcluster")), "payments");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(c, "duration")), "2m");
    json_t *rule = json_array_get(json_object_get(c, "rules"), 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(rule, "type")), "down");
    KT_CHECK_EQ_INT(int_at(rule, "rate"), 100);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(rule, "scope"), "vcluster")),
                    "payments");
    KT_CHECK_EQ_INT(int_at(rule, "injected"), 240);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(c, "injection_started_at")),
                    "2026-01-01T00:00:10.000Z");
    KT_CHECK(num_at(c, "injected_for_s") == 120);

    json_t *o = json_object_get(r, "observed_behaviour");
    KT_CHECK(num_at(json_object_get(o, "baseline"), "produce_bytes_per_s") == 1000);
    KT_CHECK(num_at(json_object_get(o, "during"), "produce_bytes_per_s") == 800);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(o, "minutes")), 2);
    KT_CHECK_EQ_INT(int_at(o, "faults_injected"), 240);

    json_t *d = json_object_get(r, "delta_from_expected");
    KT_CHECK_EQ_INT(int_at(json_object_get(d, "summary"), "fail"), 1);
    KT_CHECK_EQ_INT(int_at(json_object_get(d, "summary"), "pass"), 4);
    KT_CHECK_EQ_INT(int_at(json_object_get(d, "summary"), "not machine-checkable"), 1);
    KT_CHECK(json_is_null(json_object_get(json_object_get(r, "remediation"), "text")));
    KT_CHECK(json_is_null(json_object_get(json_object_get(r, "retest"), "experiment")));

    char *md = kg_experiment_report_md(r);
    const char *headings[] = {"## 1. Hypothesis",         "## 2. Test configuration",
                              "## 3. Observed behaviour", "## 4. Delta from expected",
                              "## 5. Remediation",        "## 6. Re-test result"};
    for (size_t i = 0; i < 6; i++)
        KT_CHECK(md && strstr(md, headings[i]));
    KT_CHECK(md && strstr(md, "producers retry, nothing is lost"));
    KT_CHECK(md && strstr(md, "| max_produce_error_rate |") && strstr(md, "**fail**"));
    KT_CHECK(md && strstr(md, "60 of 1200 (5.00 %)"));
    KT_CHECK(md && strstr(md, "| Produce throughput | 1000 B/s | 800 B/s |"));
    free(md);
    json_decref(r);
    free(id);
    fx_free(f);
}

KT_TEST(remediation_and_retest_are_recorded_afterwards_and_linked)
{
    fx *f = fx_new();
    int faults;
    char *first = run_main_drill(f, &faults);
    json_decref(annotate(f, first, "{\"colour\": \"red\"}", 400, "\"colour\""));
    json_decref(annotate(f, first, "{}", 400, "nothing to change"));
    json_decref(annotate(f, first, "{\"remediation\": 5}", 400, "\"remediation\""));
    json_decref(annotate(f, first, "{\"retest\": {\"experiment\": \"x-none\"}}", 400,
                         "\"retest.experiment\": no such experiment"));
    json_decref(annotate(f, first, "{\"retest\": {\"when\": \"now\"}}", 400, "\"retest.when\""));
    char self[160];
    snprintf(self, sizeof(self), "{\"retest\": {\"experiment\": \"%s\"}}", first);
    json_decref(annotate(f, first, self, 400, "after this one"));
    json_decref(annotate(f, "x-none", "{\"remediation\": \"r\"}", 404, "no experiment"));

    char *second = run_main_drill(f, &faults);
    char patch[512];
    snprintf(patch, sizeof(patch),
             "{\"remediation\": \"producer retries raised to 10\", \"retest\": {\"experiment\": "
             "\"%s\", \"result\": \"no produce error reached the application\"}}",
             second);
    json_t *out = annotate(f, first, patch, 200, NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(out, "remediation")),
                    "producer retries raised to 10");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(out, "annotated_by")), "bob");
    json_decref(out);
    /* The earlier experiment cannot be the re-test of the later one. */
    snprintf(patch, sizeof(patch), "{\"retest\": {\"experiment\": \"%s\"}}", first);
    json_decref(annotate(f, second, patch, 400, "after this one"));

    json_t *r = kg_experiments_report(f->xs, first);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(r, "remediation"), "text")),
                    "producer retries raised to 10");
    json_t *retest = json_object_get(r, "retest");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(retest, "experiment")), second);
    json_t *linked = json_object_get(retest, "linked");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(linked, "status")), "completed");
    KT_CHECK_EQ_INT(int_at(json_object_get(linked, "expectations"), "fail"), 1);
    char *md = kg_experiment_report_md(r);
    KT_CHECK(md && strstr(md, "producer retries raised to 10"));
    KT_CHECK(md && strstr(md, "no produce error reached the application"));
    KT_CHECK(md && strstr(md, second));
    free(md);
    json_decref(r);

    json_t *notes = audit_entries(f, "experiment.annotate", first);
    KT_CHECK_EQ_INT(json_array_size(notes), 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(notes, 0), "actor")), "bob");
    json_decref(notes);

    /* Active experiments are annotated once they have ended. */
    char *third = create(f, drill_main);
    json_decref(annotate(f, third, "{\"remediation\": \"r\"}", 409, "still active"));
    free(third);
    free(first);
    free(second);
    fx_free(f);
}

KT_TEST(live_view_shows_the_recent_seconds)
{
    fx *f = fx_new();
    char *id = create(f, drill_main);
    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 12, &steady);
    traffic burst = steady;
    burst.produce_bytes = 5000;
    second(f, &burst);
    json_t *doc = kg_experiments_get(f->xs, id, 3);
    json_t *live = json_object_get(doc, "live");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(live, "phase")), "running");
    json_t *recent = json_object_get(live, "recent_seconds");
    KT_CHECK_EQ_INT(json_array_size(recent), 3);
    KT_CHECK_EQ_INT(int_at(json_array_get(recent, 2), "produce_bytes"), 5000);
    KT_CHECK_EQ_INT(int_at(json_array_get(recent, 1), "produce_bytes"), 1000);
    KT_CHECK_EQ_INT(int_at(json_array_get(recent, 2), "faults_injected"), 2);
    KT_CHECK_EQ_INT(int_at(json_object_get(live, "during_so_far"), "produce_bytes"), 7000);
    json_decref(doc);
    free(id);
    fx_free(f);
}

/* ---------------------------------------------------------------- admin routes */

typedef struct http_result {
    long status;
    char *body;
    size_t len;
    char content_type[128];
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

static http_result http(const fx *f, const char *method, const char *path, const char *body)
{
    http_result r = {0};
    char url[256];
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        char *type = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        if (type) snprintf(r.content_type, sizeof(r.content_type), "%s", type);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body) r.body = strdup("");
    return r;
}

/* METHOD PATH answers STATUS; returns the JSON body (NULL when not JSON). */
static json_t *api(const fx *f, const char *method, const char *path, const char *body, long status)
{
    http_result r = http(f, method, path, body);
    if (!kt_count(r.status == status))
        kt_fail(__FILE__, __LINE__, "%s %s: expected %ld, got %ld: %s", method, path, status,
                r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    free(r.body);
    return j;
}

static const char *error_of(json_t *j)
{
    const char *e = json_string_value(json_object_get(j, "error"));
    return e ? e : "";
}

KT_TEST(admin_routes_run_stop_annotate_and_report)
{
    fx *f = fx_new();
    fx_start_admin(f);
    json_t *j = api(f, "POST", "/v1/experiments", "{\"name\": \"n\"}", 400);
    KT_CHECK(strstr(error_of(j), "\"hypothesis\""));
    json_decref(j);
    j = api(f, "POST", "/v1/experiments", "{" HEAD "\"duration\": \"1m\", " RULES ", \"x\": 1}",
            400);
    KT_CHECK(strstr(error_of(j), "\"x\""));
    json_decref(j);
    j = api(f, "POST", "/v1/experiments", NULL, 400);
    json_decref(j);

    j = api(f, "POST", "/v1/experiments", drill_main, 201);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "id")) ?: "?");
    KT_CHECK_EQ_STR(status_in(j), "pending");
    /* kg_admin's actor identity is recorded. */
    KT_CHECK(strstr(json_string_value(json_object_get(j, "created_by")) ?: "", "anonymous"));
    json_decref(j);
    j = api(f, "POST", "/v1/experiments", drill_main, 409);
    json_decref(j);

    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 12, &steady);
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s?seconds=2", id);
    j = api(f, "GET", path, NULL, 200);
    KT_CHECK_EQ_STR(status_in(j), "running");
    KT_CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(j, "live"), "recent_seconds")),
                    2);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/experiments/%s?seconds=lots", id);
    json_decref(api(f, "GET", path, NULL, 400));

    j = api(f, "GET", "/v1/experiments", NULL, 200);
    json_t *first = json_array_get(json_object_get(j, "experiments"), 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "id")), id);
    KT_CHECK_EQ_STR(status_in(first), "running");
    json_decref(j);

    snprintf(path, sizeof(path), "/v1/experiments/%s", id);
    json_decref(api(f, "PATCH", path, "{\"remediation\": \"x\"}", 409));
    snprintf(path, sizeof(path), "/v1/experiments/%s/stop", id);
    j = api(f, "POST", path, NULL, 200);
    KT_CHECK_EQ_STR(status_in(j), "stopped");
    json_decref(j);
    KT_CHECK_EQ_INT(n_rules(f), 0);
    json_decref(api(f, "POST", path, NULL, 409));
    json_decref(api(f, "POST", "/v1/experiments/x-none/stop", NULL, 404));
    json_decref(api(f, "GET", "/v1/experiments/x-none", NULL, 404));
    json_decref(api(f, "GET", "/v1/experiments/x-none/report", NULL, 404));

    snprintf(path, sizeof(path), "/v1/experiments/%s", id);
    j = api(f, "PATCH", path, "{\"remediation\": \"added retries\"}", 200);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "remediation")), "added retries");
    json_decref(j);
    j = api(f, "PATCH", path, "{\"retest\": 3}", 400);
    KT_CHECK(strstr(error_of(j), "\"retest\""));
    json_decref(j);

    snprintf(path, sizeof(path), "/v1/experiments/%s/report", id);
    j = api(f, "GET", path, NULL, 200);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "status")), "stopped");
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(j, "remediation"), "text")),
                    "added retries");
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/experiments/%s/report?format=md", id);
    http_result r = http(f, "GET", path, NULL);
    KT_CHECK_EQ_INT(r.status, 200);
    KT_CHECK(strstr(r.content_type, "text/markdown"));
    KT_CHECK(strstr(r.body, "## 4. Delta from expected") && strstr(r.body, "added retries"));
    free(r.body);
    snprintf(path, sizeof(path), "/v1/experiments/%s/report?format=pdf", id);
    json_decref(api(f, "GET", path, NULL, 400));
    json_decref(api(f, "DELETE", "/v1/experiments", NULL, 405));
    fx_free(f);
}

/* ---------------------------------------------------------------- CLI */

typedef struct cli_result {
    int rc;
    char *out, *err;
} cli_result;

static cli_result cli(fx *f, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    for (; args[argc] && argc < 15; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    cli_result r = {0};
    size_t out_len, err_len;
    FILE *out = open_memstream(&r.out, &out_len), *err = open_memstream(&r.err, &err_len);
    r.rc = kg_experiment_cli_run(argc, argv, f->base, NULL, out, err);
    fclose(out);
    fclose(err);
    return r;
}

static void cli_free(cli_result *r)
{
    free(r->out);
    free(r->err);
}

static char *write_drill(fx *f, const char *yaml)
{
    char *path = malloc(128);
    snprintf(path, 128, "%s/drill.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    fputs(yaml, fp);
    fclose(fp);
    return path;
}

static const char *const yaml_drill =
    "name: leader elections on payments\n"
    "hypothesis: |\n"
    "  Producers ride through leader elections without errors reaching the application.\n"
    "vcluster: payments\n"
    "duration: 1m\n"
    "baseline: 5s\n"
    "rules:\n"
    "  - type: down\n"
    "    rate: 100\n"
    "expect:\n"
    "  min_faults_injected: 1\n"
    "  max_produce_error_rate: 0\n"
    "abort:\n"
    "  client_error_rate_above: 50\n";

/* Advances the fake clock from another thread while `run --wait` polls. The drill needs a few
 * hundred fake seconds; past MAX_TICKS the experiment is stuck, so the ticker stops every
 * experiment still active (its --wait then returns non-zero) instead of letting the test hang.
 * The pause only keeps this thread from starving the CLI's polls; no check depends on it. */
#define MAX_TICKS 20000

typedef struct ticker {
    fx *f;
    int stop, exhausted;
    pthread_mutex_t lock;
} ticker;

static void stop_active(fx *f)
{
    json_t *list = kg_experiments_list(f->xs);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(list, "experiments"), i, x)
    {
        json_t *out = NULL;
        char err[256];
        const char *id = json_string_value(json_object_get(x, "id"));
        if (id) kg_experiments_stop(f->xs, id, "test", &out, err, sizeof(err));
        json_decref(out);
    }
    json_decref(list);
}

static void *tick_main(void *arg)
{
    ticker *t = arg;
    for (int tick = 0;; tick++) {
        pthread_mutex_lock(&t->lock);
        int stop = t->stop;
        pthread_mutex_unlock(&t->lock);
        if (stop) return NULL;
        if (tick == MAX_TICKS) {
            t->exhausted = 1;
            stop_active(t->f);
        }
        if (tick < MAX_TICKS) second(t->f, &steady);
        usleep(2000);
    }
}

KT_TEST(cli_runs_lists_reports_stops_and_annotates)
{
    fx *f = fx_new();
    fx_start_admin(f);
    char *path = write_drill(f, yaml_drill);

    cli_result r = cli(f, (const char *[]){"experiment", "run", path, NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    char id[64] = "";
    sscanf(r.out, "%63s", id);
    KT_CHECK(strncmp(id, "x-", 2) == 0);
    KT_CHECK(strstr(r.err, "leader elections on payments"));
    cli_free(&r);

    r = cli(f, (const char *[]){"list", NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, id) && strstr(r.out, "pending"));
    cli_free(&r);

    kg_experiments_tick(f->xs, (uint64_t)f->now);
    seconds(f, 8, &steady);
    r = cli(f, (const char *[]){"status", id, NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "running") && strstr(r.out, "so far:"));
    cli_free(&r);

    r = cli(f, (const char *[]){"stop", id, "--json", NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_STR(status_in(j), "stopped");
    json_decref(j);
    cli_free(&r);
    r = cli(f, (const char *[]){"stop", id, NULL});
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "already ended") && strstr(r.err, "409"));
    cli_free(&r);

    r = cli(f, (const char *[]){"report", id, NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "## 1. Hypothesis") && strstr(r.out, "ride through leader elections"));
    cli_free(&r);
    r = cli(f, (const char *[]){"report", id, "--format", "json", NULL});
    j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "experiment")), id);
    json_decref(j);
    cli_free(&r);

    r = cli(f, (const char *[]){"annotate", id, "--remediation", "tuned retries", NULL});
    KT_CHECK_EQ_INT(r.rc, 0);
    cli_free(&r);
    r = cli(f, (const char *[]){"status", id, "--json", NULL});
    j = json_loads(r.out, 0, NULL);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(j, "remediation")), "tuned retries");
    json_decref(j);
    cli_free(&r);

    /* Usage errors. */
    const char *const *bad[] = {
        (const char *[]){"run", NULL},
        (const char *[]){"report", id, "--format", "pdf", NULL},
        (const char *[]){"annotate", id, NULL},
        (const char *[]){"status", "../etc", NULL},
        (const char *[]){"list", "--wait", NULL},
        (const char *[]){"explode", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = cli(f, bad[i]);
        KT_CHECK_EQ_INT(r.rc, 2);
        cli_free(&r);
    }
    r = cli(f, (const char *[]){"run", "/nonexistent/drill.yaml", NULL});
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "/nonexistent/drill.yaml"));
    cli_free(&r);
    /* The API's refusal names the field. */
    char *bad_drill = write_drill(f, "name: x\nhypothesis: y\nvcluster: payments\nduration: 1m\n"
                                     "rules: [{type: down}]\nexpect: {max_produce_error_rate: "
                                     "-1}\n");
    r = cli(f, (const char *[]){"run", bad_drill, NULL});
    KT_CHECK_EQ_INT(r.rc, 1);
    KT_CHECK(strstr(r.err, "expect.max_produce_error_rate") && strstr(r.err, "400"));
    cli_free(&r);
    free(bad_drill);

    /* --wait follows the experiment to its end and prints the report; the drill's expectations
     * hold (faults injected, no produce errors), so the exit code is 0. */
    free(path);
    path = write_drill(f, yaml_drill);
    ticker t = {.f = f};
    pthread_mutex_init(&t.lock, NULL);
    pthread_t th;
    pthread_create(&th, NULL, tick_main, &t);
    r = cli(f, (const char *[]){"run", path, "--wait", NULL});
    pthread_mutex_lock(&t.lock);
    t.stop = 1;
    pthread_mutex_unlock(&t.lock);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&t.lock);
    if (!kt_count(!t.exhausted))
        kt_fail(__FILE__, __LINE__, "the experiment did not end within %d fake seconds", MAX_TICKS);
    KT_CHECK_EQ_INT(r.rc, 0);
    KT_CHECK(strstr(r.out, "## 6. Re-test result") && strstr(r.out, "completed"));
    KT_CHECK(strstr(r.err, ": completed"));
    cli_free(&r);
    free(path);
    fx_free(f);
}

KT_TEST(the_example_drill_is_accepted)
{
    fx *f = fx_new();
    FILE *fp = fopen("examples/drill.yaml", "rb");
    KT_CHECK(fp != NULL);
    if (!fp) {
        fx_free(f);
        return;
    }
    char text[8192];
    size_t n = fread(text, 1, sizeof(text), fp);
    fclose(fp);
    char err[512] = "";
    json_t *drill = kg_config_yaml_to_json(text, n, err, sizeof(err));
    KT_CHECK(drill != NULL);
    json_t *out = NULL;
    int status = kg_experiments_create(f->xs, drill, "tester", &out, err, sizeof(err));
    if (!kt_count(status == 201)) kt_fail(__FILE__, __LINE__, "example drill: %d %s", status, err);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(out, "drill"), "duration")),
                    "15m");
    json_decref(out);
    json_decref(drill);
    fx_free(f);
}

KT_MAIN()
