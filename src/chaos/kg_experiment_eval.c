/* Measurements and checks of experiments: differences between observations, the expectations
 * and abort criteria a drill may state, and how each is observed and judged. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chaos/kg_experiment_internal.h"

/* ---------------------------------------------------------------- deltas */

/* Counters only grow; a smaller value means they were reset (e.g. a reload rebuilt them), and
 * that stretch counts as zero rather than as a huge wrapped number. */
static uint64_t grew(uint64_t from, uint64_t to)
{
    return to >= from ? to - from : 0;
}

kg_xp_delta kg_xp_diff(const kg_xp_point *from, const kg_xp_point *to)
{
    const kg_vc_sample *a = &from->vc, *b = &to->vc;
    kg_xp_delta d = {
        .seconds = to->t_ms > from->t_ms ? (double)(to->t_ms - from->t_ms) / 1000.0 : 0,
        .requests = grew(a->requests, b->requests),
        .produce_requests = grew(a->produce_requests, b->produce_requests),
        .fetch_requests = grew(a->fetch_requests, b->fetch_requests),
        .commit_requests = grew(a->commit_requests, b->commit_requests),
        .produce_bytes = grew(a->produce_bytes, b->produce_bytes),
        .fetch_bytes = grew(a->fetch_bytes, b->fetch_bytes),
        .produce_results = grew(a->produce_results, b->produce_results),
        .produce_errors = grew(a->produce_errors, b->produce_errors),
        .fetch_results = grew(a->fetch_results, b->fetch_results),
        .fetch_errors = grew(a->fetch_errors, b->fetch_errors),
        .commit_results = grew(a->commit_results, b->commit_results),
        .commit_errors = grew(a->commit_errors, b->commit_errors),
        .connections_opened = grew(a->connections_opened, b->connections_opened),
        .connections_closed = grew(a->connections_closed, b->connections_closed),
        .faults_injected = grew(from->injected, to->injected),
    };
    return d;
}

static double per_second(uint64_t n, double seconds)
{
    return seconds > 0 ? (double)n / seconds : 0;
}

/* Rounded so records stay readable; the counts beside them are exact. */
static json_t *rounded(double v)
{
    return json_real(round(v * 100) / 100);
}

static json_t *error_pct(uint64_t errors, uint64_t results)
{
    return results ? rounded(100.0 * (double)errors / (double)results) : json_null();
}

/* Field names of the counts, in the order of the struct (one table for both directions). */
#define DELTA_COUNTS(X)                                                                            \
    X(requests)                                                                                    \
    X(produce_requests)                                                                            \
    X(fetch_requests)                                                                              \
    X(commit_requests)                                                                             \
    X(produce_bytes)                                                                               \
    X(fetch_bytes)                                                                                 \
    X(produce_results)                                                                             \
    X(produce_errors)                                                                              \
    X(fetch_results)                                                                               \
    X(fetch_errors)                                                                                \
    X(commit_results)                                                                              \
    X(commit_errors)                                                                               \
    X(connections_opened)                                                                          \
    X(connections_closed)                                                                          \
    X(faults_injected)

json_t *kg_xp_delta_to_json(const kg_xp_delta *d)
{
    json_t *j = json_object();
    if (!j) return NULL;
    json_object_set_new(j, "seconds", rounded(d->seconds));
#define PUT_COUNT(f) json_object_set_new(j, #f, json_integer((json_int_t)d->f));
    DELTA_COUNTS(PUT_COUNT)
#undef PUT_COUNT
    json_object_set_new(j, "requests_per_s", rounded(per_second(d->requests, d->seconds)));
    json_object_set_new(j, "produce_bytes_per_s",
                        rounded(per_second(d->produce_bytes, d->seconds)));
    json_object_set_new(j, "fetch_bytes_per_s", rounded(per_second(d->fetch_bytes, d->seconds)));
    json_object_set_new(j, "commit_requests_per_s",
                        rounded(per_second(d->commit_requests, d->seconds)));
    json_object_set_new(j, "produce_error_pct", error_pct(d->produce_errors, d->produce_results));
    json_object_set_new(j, "fetch_error_pct", error_pct(d->fetch_errors, d->fetch_results));
    json_object_set_new(j, "commit_error_pct", error_pct(d->commit_errors, d->commit_results));
    return j;
}

int kg_xp_delta_from_json(const json_t *j, kg_xp_delta *d)
{
    memset(d, 0, sizeof(*d));
    json_t *seconds = json_object_get(j, "seconds");
    if (!json_is_number(seconds)) return -1;
    d->seconds = json_number_value(seconds);
#define GET_COUNT(f)                                                                               \
    {                                                                                              \
        json_t *v = json_object_get(j, #f);                                                        \
        if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;                           \
        d->f = (uint64_t)json_integer_value(v);                                                    \
    }
    DELTA_COUNTS(GET_COUNT)
#undef GET_COUNT
    return 0;
}

/* ---------------------------------------------------------------- observations */

static int no_span(const kg_xp_observed *o, char *detail, size_t len)
{
    if (o->span) return 0;
    snprintf(detail, len,
             "no faults were injected (the experiment ended before its injection "
             "phase)");
    return 1;
}

static int error_rate(uint64_t errors, uint64_t results, const char *what, double *value,
                      char *detail, size_t len)
{
    if (results == 0) {
        snprintf(detail, len, "no %s results were seen", what);
        return 0;
    }
    *value = 100.0 * (double)errors / (double)results;
    snprintf(detail, len, "%llu of %llu %s results were errors", (unsigned long long)errors,
             (unsigned long long)results, what);
    return 1;
}

static int observe_produce_errors(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    return error_rate(o->span->produce_errors, o->span->produce_results, "produce partition", value,
                      detail, len);
}

static int observe_fetch_errors(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    return error_rate(o->span->fetch_errors, o->span->fetch_results, "fetch partition", value,
                      detail, len);
}

static int observe_commit_errors(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    return error_rate(o->span->commit_errors, o->span->commit_results, "offset commit", value,
                      detail, len);
}

static int observe_client_errors(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    return error_rate(o->span->produce_errors + o->span->fetch_errors,
                      o->span->produce_results + o->span->fetch_results, "produce and fetch", value,
                      detail, len);
}

/* Throughput during the span as a fraction of the baseline's. */
static int throughput_ratio(uint64_t base_bytes, double base_s, uint64_t bytes, double s,
                            const char *what, double *value, char *detail, size_t len)
{
    double base_rate = per_second(base_bytes, base_s);
    if (base_rate <= 0) {
        snprintf(detail, len, "no %s traffic during the baseline to compare with", what);
        return 0;
    }
    double rate = per_second(bytes, s);
    *value = rate / base_rate;
    snprintf(detail, len, "%s %.0f B/s against %.0f B/s in the baseline", what, rate, base_rate);
    return 1;
}

static int observe_produce_ratio(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    if (!o->baseline) {
        snprintf(detail, len, "no baseline was measured");
        return 0;
    }
    return throughput_ratio(o->baseline->produce_bytes, o->baseline->seconds,
                            o->span->produce_bytes, o->span->seconds, "produce", value, detail,
                            len);
}

static int observe_fetch_ratio(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    if (!o->baseline) {
        snprintf(detail, len, "no baseline was measured");
        return 0;
    }
    return throughput_ratio(o->baseline->fetch_bytes, o->baseline->seconds, o->span->fetch_bytes,
                            o->span->seconds, "fetch", value, detail, len);
}

static int observe_produce_pct(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    int ok = observe_produce_ratio(o, value, detail, len);
    if (ok) *value *= 100;
    return ok;
}

static int observe_fetch_pct(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    int ok = observe_fetch_ratio(o, value, detail, len);
    if (ok) *value *= 100;
    return ok;
}

static int observe_churn(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    if (o->span->seconds <= 0) {
        snprintf(detail, len, "the injection phase lasted no time");
        return 0;
    }
    *value = 60.0 * (double)o->span->connections_opened / o->span->seconds;
    snprintf(detail, len, "%llu connections opened and %llu closed in %.0f s",
             (unsigned long long)o->span->connections_opened,
             (unsigned long long)o->span->connections_closed, o->span->seconds);
    return 1;
}

/* Commit progress only means something for workloads that committed before the faults. */
static int observe_commit_stall(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    if (!o->baseline || o->baseline->commit_requests == 0) {
        snprintf(detail, len, "no consumer group committed offsets during the baseline");
        return 0;
    }
    *value = (double)o->commit_stall_ms;
    snprintf(detail, len, "%llu offset commits during the injection (%llu in the baseline)",
             (unsigned long long)o->span->commit_requests,
             (unsigned long long)o->baseline->commit_requests);
    return 1;
}

static int observe_faults(const kg_xp_observed *o, double *value, char *detail, size_t len)
{
    if (no_span(o, detail, len)) return 0;
    *value = (double)o->span->faults_injected;
    snprintf(detail, len, "%llu faults injected in %llu requests",
             (unsigned long long)o->span->faults_injected, (unsigned long long)o->span->requests);
    return 1;
}

/* ---------------------------------------------------------------- the checks */

const kg_xp_check kg_xp_expectations[] = {
    {"max_produce_error_rate", KG_XP_PERCENT, KG_XP_AT_MOST, observe_produce_errors,
     "produce error rate seen by clients"},
    {"max_fetch_error_rate", KG_XP_PERCENT, KG_XP_AT_MOST, observe_fetch_errors,
     "fetch error rate seen by clients"},
    {"max_commit_error_rate", KG_XP_PERCENT, KG_XP_AT_MOST, observe_commit_errors,
     "offset commit error rate seen by clients"},
    {"max_client_error_rate", KG_XP_PERCENT, KG_XP_AT_MOST, observe_client_errors,
     "produce and fetch error rate seen by clients"},
    {"min_produce_throughput_ratio", KG_XP_RATIO, KG_XP_AT_LEAST, observe_produce_ratio,
     "produce throughput"},
    {"min_fetch_throughput_ratio", KG_XP_RATIO, KG_XP_AT_LEAST, observe_fetch_ratio,
     "fetch throughput"},
    {"max_connection_churn", KG_XP_PER_MINUTE, KG_XP_AT_MOST, observe_churn,
     "new client connections"},
    {"max_commit_stall", KG_XP_DURATION, KG_XP_AT_MOST, observe_commit_stall,
     "longest consumer group commit stall while producers kept producing"},
    {"min_faults_injected", KG_XP_COUNT, KG_XP_AT_LEAST, observe_faults, "faults injected"},
};
const int kg_xp_n_expectations = sizeof(kg_xp_expectations) / sizeof(kg_xp_expectations[0]);

const kg_xp_check kg_xp_aborts[] = {
    {"client_error_rate_above", KG_XP_PERCENT, KG_XP_AT_MOST, observe_client_errors,
     "produce and fetch error rate seen by clients"},
    {"produce_throughput_below", KG_XP_PCT_BASE, KG_XP_AT_LEAST, observe_produce_pct,
     "produce throughput"},
    {"fetch_throughput_below", KG_XP_PCT_BASE, KG_XP_AT_LEAST, observe_fetch_pct,
     "fetch throughput"},
    {"group_commit_stalled_for", KG_XP_DURATION, KG_XP_REACHES, observe_commit_stall,
     "consumer group commit stall while producers keep producing"},
    {"connection_churn_above", KG_XP_PER_MINUTE, KG_XP_AT_MOST, observe_churn,
     "new client connections"},
};
const int kg_xp_n_aborts = sizeof(kg_xp_aborts) / sizeof(kg_xp_aborts[0]);

_Static_assert(sizeof(kg_xp_expectations) / sizeof(kg_xp_expectations[0]) <=
                   sizeof(((kg_xp_drill *)0)->expect) / sizeof(double),
               "kg_xp_drill.expect has room for every expectation");
_Static_assert(sizeof(kg_xp_aborts) / sizeof(kg_xp_aborts[0]) <=
                   sizeof(((kg_xp_drill *)0)->abort_at) / sizeof(double),
               "kg_xp_drill.abort_at has room for every abort criterion");

void kg_xp_format_value(kg_xp_unit unit, double value, char *out, size_t len)
{
    switch (unit) {
    case KG_XP_PERCENT:
        snprintf(out, len, "%.2f %%", value);
        break;
    case KG_XP_RATIO:
        snprintf(out, len, "%.2f of baseline", value);
        break;
    case KG_XP_PCT_BASE:
        snprintf(out, len, "%.1f %% of baseline", value);
        break;
    case KG_XP_COUNT:
        snprintf(out, len, "%.0f", value);
        break;
    case KG_XP_PER_MINUTE:
        snprintf(out, len, "%.1f /min", value);
        break;
    case KG_XP_DURATION:
        snprintf(out, len, "%.1f s", value / 1000.0);
        break;
    }
}

/* Printed values are rounded; compare with a tolerance far below what is printed, so that a
 * threshold written as 0.8 is met by a ratio computed as 0.79999999. */
#define KG_XP_EPSILON 1e-9

bool kg_xp_expectation_met(const kg_xp_check *c, double observed, double threshold)
{
    if (c->compare == KG_XP_AT_LEAST) return observed >= threshold - KG_XP_EPSILON;
    return observed <= threshold + KG_XP_EPSILON;
}

bool kg_xp_abort_trips(const kg_xp_check *c, double observed, double threshold)
{
    switch (c->compare) {
    case KG_XP_AT_MOST:
        return observed > threshold + KG_XP_EPSILON;
    case KG_XP_AT_LEAST:
        return observed < threshold - KG_XP_EPSILON;
    case KG_XP_REACHES:
        return observed >= threshold - KG_XP_EPSILON;
    }
    return false;
}

void kg_xp_describe_check(const kg_xp_check *c, double threshold, char *out, size_t len)
{
    char value[64];
    kg_xp_format_value(c->unit, threshold, value, sizeof(value));
    const char *how = c->compare == KG_XP_AT_LEAST ? "at least" : "at most";
    snprintf(out, len, "%s %s %s", c->what, how, value);
}

/* ---------------------------------------------------------------- evaluation */

static json_t *evaluate_one(const kg_xp_check *c, double threshold, const kg_xp_observed *o)
{
    char expected[256], detail[256] = "", observed_text[64] = "-";
    kg_xp_describe_check(c, threshold, expected, sizeof(expected));
    double value = 0;
    int have = c->observe(o, &value, detail, sizeof(detail));
    const char *result = "no data";
    if (have) {
        kg_xp_format_value(c->unit, value, observed_text, sizeof(observed_text));
        result = kg_xp_expectation_met(c, value, threshold) ? "pass" : "fail";
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:f, s:s, s:s}", "expectation", c->name, "expected",
                     expected, "observed", observed_text, "observed_value",
                     have ? json_real(value) : json_null(), "threshold", threshold, "result",
                     result, "detail", detail);
}

json_t *kg_xp_evaluate(const kg_xp_drill *d, const kg_xp_observed *o)
{
    json_t *out = json_array();
    for (int i = 0; i < kg_xp_n_expectations; i++)
        if (d->has_expect[i])
            json_array_append_new(out, evaluate_one(&kg_xp_expectations[i], d->expect[i], o));
    json_t *other = json_object_get(json_object_get(d->json, "expect"), "other");
    size_t i;
    json_t *text;
    json_array_foreach(other, i, text)
    {
        json_array_append_new(
            out, json_pack("{s:s, s:O, s:s, s:n, s:n, s:s, s:s}", "expectation", "other",
                           "expected", text, "observed", "-", "observed_value", "threshold",
                           "result", "not machine-checkable", "detail",
                           "kgate cannot observe this; verify it from the application's side"));
    }
    return out;
}

json_t *kg_xp_count_results(const json_t *expectations)
{
    json_t *counts = json_pack("{s:i, s:i, s:i, s:i}", "pass", 0, "fail", 0, "no data", 0,
                               "not machine-checkable", 0);
    size_t i;
    json_t *e;
    json_array_foreach(expectations, i, e)
    {
        const char *result = json_string_value(json_object_get(e, "result"));
        json_t *n = result ? json_object_get(counts, result) : NULL;
        if (n) json_integer_set(n, json_integer_value(n) + 1);
    }
    return counts;
}

json_int_t kg_xp_faults_injected(const json_t *doc)
{
    json_int_t total = 0;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(doc, "rules"), i, rule) total +=
        json_integer_value(json_object_get(rule, "injected"));
    return total;
}
