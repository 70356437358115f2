/* Experiment reports: the six fields auditors ask for (hypothesis, test configuration,
 * observed behaviour, delta from expected, remediation, re-test result), built from an
 * experiment's record as JSON, and rendered as Markdown from that JSON alone (so the CLI
 * renders what it fetched exactly as the API would). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chaos/kg_experiment_internal.h"

static const char *const rule_scope_keys[] = {"vcluster",  "topic", "group",  "client_id",
                                              "principal", "api",   "broker", NULL};
/* Kept out of a rule's "parameters": shown elsewhere or bookkeeping. */
static const char *const rule_meta_keys[] = {"id",         "type",       "rate",   "description",
                                             "created_at", "expires_at", "source", "matched",
                                             "injected",   "for",        NULL};

static bool listed(const char *key, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(key, *names) == 0) return true;
    return false;
}

static json_t *field_or_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v ? json_incref(v) : json_null();
}

/* ---------------------------------------------------------------- JSON sections */

static json_t *rule_summary(json_t *rule)
{
    json_t *scope = json_object(), *params = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(rule, key, v)
    {
        if (listed(key, rule_scope_keys))
            json_object_set(scope, key, v);
        else if (!listed(key, rule_meta_keys))
            json_object_set(params, key, v);
    }
    json_t *rate = json_object_get(rule, "rate");
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", field_or_null(rule, "id"), "type",
                     field_or_null(rule, "type"), "rate",
                     rate ? json_incref(rate) : json_integer(100), "scope", scope, "parameters",
                     params, "matched", field_or_null(rule, "matched"), "injected",
                     field_or_null(rule, "injected"));
}

/* The rules as injected (with ids and counters), or as the drill states them when the
 * experiment ended before injecting. */
static json_t *rules_section(const json_t *doc)
{
    json_t *rules = json_object_get(doc, "rules");
    if (json_array_size(rules) == 0)
        rules = json_object_get(json_object_get(doc, "drill"), "rules");
    json_t *out = json_array();
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule) json_array_append_new(out, rule_summary(rule));
    return out;
}

static json_t *stated_expectations(const kg_xp_drill *d)
{
    json_t *out = json_array();
    char text[320];
    for (int i = 0; i < kg_xp_n_expectations; i++) {
        if (!d->has_expect[i]) continue;
        kg_xp_describe_check(&kg_xp_expectations[i], d->expect[i], text, sizeof(text));
        json_array_append_new(out, json_string(text));
    }
    size_t i;
    json_t *other;
    json_array_foreach(json_object_get(json_object_get(d->json, "expect"), "other"), i, other)
        json_array_append(out, other);
    return out;
}

static json_t *abort_criteria(const kg_xp_drill *d)
{
    json_t *out = json_array();
    char what[320], limit[64], text[400];
    for (int i = 0; i < kg_xp_n_aborts; i++) {
        if (!d->has_abort[i]) continue;
        const kg_xp_check *c = &kg_xp_aborts[i];
        kg_xp_format_value(c->unit, d->abort_at[i], limit, sizeof(limit));
        snprintf(what, sizeof(what), "%s", c->what);
        snprintf(text, sizeof(text), "abort when %s is %s %s", what,
                 c->compare == KG_XP_AT_LEAST  ? "below"
                 : c->compare == KG_XP_AT_MOST ? "above"
                                               : "at or above",
                 limit);
        json_array_append_new(out, json_string(text));
    }
    return out;
}

static json_t *hypothesis_section(const json_t *doc, const kg_xp_drill *d)
{
    return json_pack("{s:o, s:o}", "statement", field_or_null(doc, "hypothesis"), "expectations",
                     d ? stated_expectations(d) : json_array());
}

static json_t *configuration_section(const json_t *doc, const kg_xp_drill *d)
{
    json_t *drill = json_object_get(doc, "drill");
    json_t *during = json_object_get(doc, "during");
    char window[32] = "";
    if (d) snprintf(window, sizeof(window), "%llds", (long long)(d->window_ms / 1000));
    json_t *c = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "vcluster",
        field_or_null(doc, "vcluster"), "rules", rules_section(doc), "duration",
        field_or_null(drill, "duration"), "baseline", field_or_null(drill, "baseline"),
        "abort_criteria", d ? abort_criteria(d) : json_array(), "abort_window", window,
        "created_at", field_or_null(doc, "created_at"), "created_by",
        field_or_null(doc, "created_by"), "baseline_started_at",
        field_or_null(doc, "baseline_started_at"), "injection_started_at",
        field_or_null(doc, "injection_started_at"), "ended_at", field_or_null(doc, "ended_at"),
        "injected_for_s", field_or_null(during, "seconds"));
    return c;
}

static json_t *observed_section(const json_t *doc)
{
    json_t *minutes = json_object_get(doc, "minutes");
    return json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:f, s:I}", "status", field_or_null(doc, "status"),
        "end_reason", field_or_null(doc, "end_reason"), "baseline", field_or_null(doc, "baseline"),
        "during", field_or_null(doc, "during"), "minutes",
        minutes ? json_incref(minutes) : json_array(), "abort", field_or_null(doc, "abort"),
        "longest_commit_stall_s",
        (double)json_integer_value(json_object_get(doc, "longest_commit_stall_ms")) / 1000.0,
        "faults_injected", kg_xp_faults_injected(doc));
}

static json_t *delta_section(const json_t *doc)
{
    json_t *expectations = json_object_get(doc, "expectations");
    if (!json_is_array(expectations))
        return json_pack("{s:n, s:[], s:s}", "summary", "expectations", "note",
                         "evaluated when the experiment ends");
    return json_pack("{s:o, s:O}", "summary", kg_xp_count_results(expectations), "expectations",
                     expectations);
}

static json_t *remediation_section(const json_t *doc)
{
    return json_pack("{s:o, s:o, s:o}", "text", field_or_null(doc, "remediation"), "annotated_at",
                     field_or_null(doc, "annotated_at"), "annotated_by",
                     field_or_null(doc, "annotated_by"));
}

/* The re-test as stated, plus what the linked experiment's own record shows. */
static json_t *retest_section(const json_t *doc, const json_t *retest_doc)
{
    json_t *retest = json_object_get(doc, "retest");
    json_t *linked = json_null();
    if (retest_doc) {
        json_t *exp = json_object_get(retest_doc, "expectations");
        linked = json_pack(
            "{s:o, s:o, s:o, s:o, s:o}", "experiment", field_or_null(retest_doc, "id"), "name",
            field_or_null(retest_doc, "name"), "status", field_or_null(retest_doc, "status"),
            "ended_at", field_or_null(retest_doc, "ended_at"), "expectations",
            json_is_array(exp) ? kg_xp_count_results(exp) : json_null());
    }
    return json_pack("{s:o, s:o, s:o}", "experiment", field_or_null(retest, "experiment"), "result",
                     field_or_null(retest, "result"), "linked", linked);
}

json_t *kg_xp_report_json(const json_t *doc, const json_t *retest_doc)
{
    kg_xp_drill drill;
    char err[256];
    int have_drill =
        kg_xp_drill_parse(json_object_get(doc, "drill"), &drill, err, sizeof(err)) == 0;
    const kg_xp_drill *d = have_drill ? &drill : NULL;
    char now[40];
    kg_time_format_ms(kg_time_now_ms(), now, sizeof(now));
    json_t *report = json_pack(
        "{s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "experiment",
        field_or_null(doc, "id"), "name", field_or_null(doc, "name"), "status",
        field_or_null(doc, "status"), "generated_at", now, "hypothesis", hypothesis_section(doc, d),
        "test_configuration", configuration_section(doc, d), "observed_behaviour",
        observed_section(doc), "delta_from_expected", delta_section(doc), "remediation",
        remediation_section(doc), "retest", retest_section(doc, retest_doc));
    if (have_drill) kg_xp_drill_free(&drill);
    return report;
}

/* ---------------------------------------------------------------- Markdown */

static const char *str(const json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : fallback;
}

/* Table cells and inline text: pipes would end the cell, newlines the row. */
static void md_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static void md_json(FILE *f, const json_t *v)
{
    if (json_is_string(v)) {
        md_text(f, json_string_value(v));
        return;
    }
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    md_text(f, text ? text : "?");
    free(text);
}

static void md_row(FILE *f, const char *label, const char *value)
{
    fprintf(f, "| %s | ", label);
    md_text(f, value ? value : "-");
    fputs(" |\n", f);
}

static double num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static void format_rate(double bytes_per_s, char *out, size_t len)
{
    if (bytes_per_s >= 1048576)
        snprintf(out, len, "%.2f MiB/s", bytes_per_s / 1048576);
    else if (bytes_per_s >= 1024)
        snprintf(out, len, "%.1f KiB/s", bytes_per_s / 1024);
    else
        snprintf(out, len, "%.0f B/s", bytes_per_s);
}

static void format_errors(const json_t *rec, const char *errors, const char *results, char *out,
                          size_t len)
{
    json_int_t e = json_integer_value(json_object_get(rec, errors));
    json_int_t r = json_integer_value(json_object_get(rec, results));
    if (r == 0)
        snprintf(out, len, "%lld of 0", (long long)e);
    else
        snprintf(out, len, "%lld of %lld (%.2f %%)", (long long)e, (long long)r,
                 100.0 * (double)e / (double)r);
}

static void md_header(FILE *f, const json_t *report)
{
    fprintf(f, "# Chaos experiment report: ");
    md_text(f, str(report, "name", "?"));
    fprintf(f, " (%s)\n\n", str(report, "experiment", "?"));
    const json_t *obs = json_object_get(report, "observed_behaviour");
    fprintf(f, "Status: **%s**", str(report, "status", "?"));
    const char *reason = str(obs, "end_reason", NULL);
    if (reason) {
        fputs(" — ", f);
        md_text(f, reason);
    }
    fprintf(f, "  \nGenerated at %s by kgate.\n\n", str(report, "generated_at", "?"));
}

static void md_hypothesis(FILE *f, const json_t *report)
{
    const json_t *h = json_object_get(report, "hypothesis");
    fputs("## 1. Hypothesis\n\n", f);
    fprintf(f, "%s\n\n", str(h, "statement", "(none stated)"));
    json_t *exp = json_object_get(h, "expectations");
    if (json_array_size(exp) == 0) return;
    fputs("Stated expectations:\n\n", f);
    size_t i;
    json_t *e;
    json_array_foreach(exp, i, e)
    {
        fputs("- ", f);
        md_text(f, json_string_value(e) ? json_string_value(e) : "?");
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void md_rules(FILE *f, const json_t *rules)
{
    fputs("| Rule | Type | Rate | Scope | Parameters | Matched | Injected |\n", f);
    fputs("|---|---|---|---|---|---|---|\n", f);
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r)
    {
        fprintf(f, "| %s | %s | ", str(r, "id", "(not injected)"), str(r, "type", "?"));
        md_json(f, json_object_get(r, "rate"));
        fputs(" % | ", f);
        const char *key;
        json_t *v;
        int first = 1;
        json_object_foreach(json_object_get(r, "scope"), key, v)
        {
            fprintf(f, "%s%s=", first ? "" : ", ", key);
            md_json(f, v);
            first = 0;
        }
        fputs(" | ", f);
        json_t *params = json_object_get(r, "parameters");
        if (json_object_size(params)) md_json(f, params);
        fputs(" | ", f);
        md_json(f, json_object_get(r, "matched"));
        fputs(" | ", f);
        md_json(f, json_object_get(r, "injected"));
        fputs(" |\n", f);
    }
    fputc('\n', f);
}

static void md_configuration(FILE *f, const json_t *report)
{
    const json_t *c = json_object_get(report, "test_configuration");
    fputs("## 2. Test configuration\n\n| Item | Value |\n|---|---|\n", f);
    md_row(f, "Virtual cluster (scope)", str(c, "vcluster", NULL));
    char text[128];
    json_t *injected_for = json_object_get(c, "injected_for_s");
    if (json_is_number(injected_for))
        snprintf(text, sizeof(text), "%s planned, faults injected for %.0f s",
                 str(c, "duration", "?"), json_number_value(injected_for));
    else
        snprintf(text, sizeof(text), "%s planned, no faults injected", str(c, "duration", "?"));
    md_row(f, "Duration", text);
    md_row(f, "Baseline (before injecting)", str(c, "baseline", NULL));
    md_row(f, "Started by", str(c, "created_by", NULL));
    md_row(f, "Created", str(c, "created_at", NULL));
    md_row(f, "Baseline started", str(c, "baseline_started_at", NULL));
    md_row(f, "Injection started", str(c, "injection_started_at", NULL));
    md_row(f, "Ended", str(c, "ended_at", NULL));
    fputs("| Abort criteria | ", f);
    json_t *criteria = json_object_get(c, "abort_criteria");
    size_t i;
    json_t *a;
    json_array_foreach(criteria, i, a)
    {
        fputs(i ? "; " : "", f);
        md_text(f, json_string_value(a) ? json_string_value(a) : "?");
    }
    if (json_array_size(criteria))
        fprintf(f, " (over a sliding %s window)", str(c, "abort_window", "?"));
    else
        fputs("none", f);
    fputs(" |\n\nRules:\n\n", f);
    md_rules(f, json_object_get(c, "rules"));
}

/* One row of the baseline-versus-injection table. */
typedef void (*md_cell_fn)(const json_t *rec, char *out, size_t len);

static void cell_requests(const json_t *rec, char *out, size_t len)
{
    snprintf(out, len, "%.1f", num(rec, "requests_per_s"));
}
static void cell_produce(const json_t *rec, char *out, size_t len)
{
    format_rate(num(rec, "produce_bytes_per_s"), out, len);
}
static void cell_fetch(const json_t *rec, char *out, size_t len)
{
    format_rate(num(rec, "fetch_bytes_per_s"), out, len);
}
static void cell_produce_errors(const json_t *rec, char *out, size_t len)
{
    format_errors(rec, "produce_errors", "produce_results", out, len);
}
static void cell_fetch_errors(const json_t *rec, char *out, size_t len)
{
    format_errors(rec, "fetch_errors", "fetch_results", out, len);
}
static void cell_commit_errors(const json_t *rec, char *out, size_t len)
{
    format_errors(rec, "commit_errors", "commit_results", out, len);
}
static void cell_commits(const json_t *rec, char *out, size_t len)
{
    snprintf(out, len, "%.2f", num(rec, "commit_requests_per_s"));
}
static void cell_connections(const json_t *rec, char *out, size_t len)
{
    snprintf(out, len, "%lld / %lld",
             (long long)json_integer_value(json_object_get(rec, "connections_opened")),
             (long long)json_integer_value(json_object_get(rec, "connections_closed")));
}
static void cell_faults(const json_t *rec, char *out, size_t len)
{
    snprintf(out, len, "%lld",
             (long long)json_integer_value(json_object_get(rec, "faults_injected")));
}
static void cell_seconds(const json_t *rec, char *out, size_t len)
{
    snprintf(out, len, "%.0f", num(rec, "seconds"));
}

static void md_compare(FILE *f, const json_t *baseline, const json_t *during)
{
    static const struct {
        const char *label;
        md_cell_fn cell;
    } rows[] = {
        {"Seconds measured", cell_seconds},
        {"Requests/s", cell_requests},
        {"Produce throughput", cell_produce},
        {"Fetch throughput", cell_fetch},
        {"Produce errors seen by clients (partition results)", cell_produce_errors},
        {"Fetch errors seen by clients (partition results)", cell_fetch_errors},
        {"Offset commit errors seen by clients", cell_commit_errors},
        {"Offset commits/s (consumer group progress)", cell_commits},
        {"Connections opened / closed", cell_connections},
        {"Faults injected", cell_faults},
    };
    fputs("| Measure | Baseline | During injection |\n|---|---|---|\n", f);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char a[96] = "-", b[96] = "-";
        if (json_is_object(baseline)) rows[i].cell(baseline, a, sizeof(a));
        if (json_is_object(during)) rows[i].cell(during, b, sizeof(b));
        fprintf(f, "| %s | %s | %s |\n", rows[i].label, a, b);
    }
    fputc('\n', f);
}

static void md_minutes(FILE *f, const json_t *minutes)
{
    if (json_array_size(minutes) == 0) {
        fputs("No per-minute records (no faults were injected).\n\n", f);
        return;
    }
    fputs("Per minute of injection:\n\n| Minute | Start | Seconds | Requests | Faults injected | "
          "Produce errors | Fetch errors | Commit errors | Produce | Fetch | Conns opened / "
          "closed | Commits/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
          f);
    size_t i;
    json_t *m;
    json_array_foreach(minutes, i, m)
    {
        char pe[64], fe[64], ce[64], pr[32], fr[32], conns[48], commits[32];
        cell_produce_errors(m, pe, sizeof(pe));
        cell_fetch_errors(m, fe, sizeof(fe));
        cell_commit_errors(m, ce, sizeof(ce));
        cell_produce(m, pr, sizeof(pr));
        cell_fetch(m, fr, sizeof(fr));
        cell_connections(m, conns, sizeof(conns));
        cell_commits(m, commits, sizeof(commits));
        fprintf(f, "| %lld | %s | %.0f | %lld | %lld | %s | %s | %s | %s | %s | %s | %s |\n",
                (long long)json_integer_value(json_object_get(m, "minute")), str(m, "start", "?"),
                num(m, "seconds"), (long long)json_integer_value(json_object_get(m, "requests")),
                (long long)json_integer_value(json_object_get(m, "faults_injected")), pe, fe, ce,
                pr, fr, conns, commits);
    }
    fputc('\n', f);
}

static void md_observed(FILE *f, const json_t *report)
{
    const json_t *o = json_object_get(report, "observed_behaviour");
    fputs("## 3. Observed behaviour\n\n", f);
    const json_t *abort_info = json_object_get(o, "abort");
    if (json_is_object(abort_info)) {
        fprintf(f, "**Aborted at %s** by criterion `%s`: observed %s over %.0f s (%s).\n\n",
                str(abort_info, "at", "?"), str(abort_info, "criterion", "?"),
                str(abort_info, "observed_text", "?"), num(abort_info, "window_s"),
                str(abort_info, "detail", ""));
    }
    md_compare(f, json_object_get(o, "baseline"), json_object_get(o, "during"));
    fprintf(f, "Longest consumer group commit stall while producers kept producing: %.1f s.  \n",
            num(o, "longest_commit_stall_s"));
    fprintf(f, "Faults injected by the experiment's rules: %lld.\n\n",
            (long long)json_integer_value(json_object_get(o, "faults_injected")));
    md_minutes(f, json_object_get(o, "minutes"));
}

static void md_delta(FILE *f, const json_t *report)
{
    const json_t *d = json_object_get(report, "delta_from_expected");
    fputs("## 4. Delta from expected\n\n", f);
    json_t *exp = json_object_get(d, "expectations");
    if (json_array_size(exp) == 0) {
        fprintf(f, "%s\n\n", str(d, "note", "No expectations were stated."));
        return;
    }
    fputs("| Expectation | Expected | Observed | Result | Detail |\n|---|---|---|---|---|\n", f);
    size_t i;
    json_t *e;
    json_array_foreach(exp, i, e)
    {
        const char *result = str(e, "result", "?");
        int fail = strcmp(result, "fail") == 0;
        fprintf(f, "| %s | ", str(e, "expectation", "?"));
        md_text(f, str(e, "expected", "?"));
        fprintf(f, " | %s | %s%s%s | ", str(e, "observed", "-"), fail ? "**" : "", result,
                fail ? "**" : "");
        md_text(f, str(e, "detail", ""));
        fputs(" |\n", f);
    }
    const json_t *s = json_object_get(d, "summary");
    fprintf(f, "\n%lld passed, %lld failed, %lld without data, %lld not machine-checkable.\n\n",
            (long long)json_integer_value(json_object_get(s, "pass")),
            (long long)json_integer_value(json_object_get(s, "fail")),
            (long long)json_integer_value(json_object_get(s, "no data")),
            (long long)json_integer_value(json_object_get(s, "not machine-checkable")));
}

static void md_remediation(FILE *f, const json_t *report)
{
    const json_t *r = json_object_get(report, "remediation");
    fputs("## 5. Remediation\n\n", f);
    const char *text = str(r, "text", NULL);
    if (!text) {
        fprintf(f, "_Not recorded yet_ (`kgate experiment annotate %s --remediation TEXT`).\n\n",
                str(report, "experiment", "ID"));
        return;
    }
    fprintf(f, "%s\n\n_Recorded %s by %s._\n\n", text, str(r, "annotated_at", "?"),
            str(r, "annotated_by", "?"));
}

static void md_retest(FILE *f, const json_t *report)
{
    const json_t *r = json_object_get(report, "retest");
    fputs("## 6. Re-test result\n\n", f);
    const char *id = str(r, "experiment", NULL), *result = str(r, "result", NULL);
    if (!id && !result) {
        fprintf(f,
                "_Not recorded yet_ (`kgate experiment annotate %s --retest ID "
                "--retest-result TEXT`).\n",
                str(report, "experiment", "ID"));
        return;
    }
    if (result) fprintf(f, "%s\n\n", result);
    if (!id) return;
    const json_t *linked = json_object_get(r, "linked");
    fprintf(f, "Re-test experiment: %s", id);
    if (json_is_object(linked)) {
        const json_t *s = json_object_get(linked, "expectations");
        fprintf(f, " (\"%s\", %s", str(linked, "name", "?"), str(linked, "status", "?"));
        if (json_is_object(s))
            fprintf(f, "; %lld expectations passed, %lld failed",
                    (long long)json_integer_value(json_object_get(s, "pass")),
                    (long long)json_integer_value(json_object_get(s, "fail")));
        fputc(')', f);
    } else {
        fputs(" (record not found)", f);
    }
    fputs(".\n", f);
}

char *kg_experiment_report_md(const json_t *report)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    md_header(f, report);
    md_hypothesis(f, report);
    md_configuration(f, report);
    md_observed(f, report);
    md_delta(f, report);
    md_remediation(f, report);
    md_retest(f, report);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
