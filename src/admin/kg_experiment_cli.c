/* kg_experiment_cli — see kg_experiment_cli.h. */
#include "admin/kg_experiment_cli.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "admin/kg_cli_session.h"
#include "chaos/kg_experiment.h"
#include "util/kg_time.h"

/* `run --wait`: the experiment did not complete, or an expectation failed. */
#define EXIT_NOT_MET 3
#define MAX_ID_LEN 64
#define WAIT_RETRIES 5 /* consecutive failed polls before --wait gives up */

static const char usage_text[] =
    "usage: kgate experiment [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  run DRILL.yaml [--wait]     start an experiment (prints its id); --wait follows it to\n"
    "                              the end and prints the report (exit 3: aborted, stopped or\n"
    "                              an expectation failed)\n"
    "  list                        experiments, newest last\n"
    "  status ID                   phase, measurements so far, result\n"
    "  stop ID                     end it now and remove its chaos rules\n"
    "  report ID [--format md|json]\n"
    "                              the six-field report (default: Markdown)\n"
    "  annotate ID [--remediation TEXT] [--retest ID] [--retest-result TEXT]\n"
    "                              record remediation and the re-test experiment\n"
    "\n" KG_CLI_OPTIONS_USAGE;

typedef struct xcli {
    kg_cli_session s;
    const char *format, *remediation, *retest, *retest_result;
} xcli;

/* Flags in s.given, to refuse options a subcommand does not take. */
enum { OPT_WAIT = 1, OPT_FORMAT = 2, OPT_REMEDIATION = 4, OPT_RETEST = 8, OPT_RETEST_RESULT = 16 };

static const kg_cli_syntax experiment_syntax = {
    .name = "kgate experiment",
    .word = "experiment",
    .usage = usage_text,
    .max_args = 4,
    /* Off: `run --wait --json` polls, and failed polls must not put error documents on stdout
     * ahead of the report. */
    .echo_json_errors = 0,
};

/* Experiment ids are made by kgate: short, and safe in a URL path. */
static int valid_id(const char *s)
{
    return strlen(s) <= MAX_ID_LEN && kg_cli_valid_segment(s);
}

/* ---------------------------------------------------------------- run */

static int is_active(const char *status)
{
    return strcmp(status, "pending") == 0 || strcmp(status, "baseline") == 0 ||
           strcmp(status, "running") == 0;
}

/* Polls until the experiment ends, telling each phase change on ERR; the final record in
 * *RECORD. */
static int wait_for_end(xcli *c, const char *id, json_t **record)
{
    char path[160], last[32] = "";
    snprintf(path, sizeof(path), "/v1/experiments/%s?seconds=0", id);
    for (int failures = 0;;) {
        json_t *doc = NULL;
        if (kg_cli_session_call(&c->s, "GET", path, NULL, &doc) != KG_CLI_EXIT_OK) {
            if (++failures >= WAIT_RETRIES) return KG_CLI_EXIT_API;
            kg_time_sleep_ms(1000);
            continue;
        }
        failures = 0;
        const char *status = kg_cli_str(doc, "status", "?");
        if (strcmp(status, last) != 0) {
            fprintf(c->s.err, "%s: %s\n", id, status);
            snprintf(last, sizeof(last), "%s", status);
        }
        if (!is_active(status)) {
            *record = doc;
            return KG_CLI_EXIT_OK;
        }
        json_decref(doc);
        kg_time_sleep_ms(1000);
    }
}

static int print_report(xcli *c, const char *id, int as_json)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s/report?format=json", id);
    json_t *report = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", path, NULL, &report);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (as_json) {
        kg_cli_print_json(&c->s, report);
    } else {
        char *md = kg_experiment_report_md(report);
        fputs(md ? md : "(out of memory)\n", c->s.out);
        free(md);
    }
    json_decref(report);
    return KG_CLI_EXIT_OK;
}

/* Exit code of a finished experiment: did it complete with every checkable expectation met? */
static int outcome(const json_t *record)
{
    if (strcmp(kg_cli_str(record, "status", "?"), "completed") != 0) return EXIT_NOT_MET;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(record, "expectations"), i, e)
    {
        if (strcmp(kg_cli_str(e, "result", ""), "fail") == 0) return EXIT_NOT_MET;
    }
    return KG_CLI_EXIT_OK;
}

static int cmd_run(xcli *c)
{
    if (c->s.given & ~(unsigned)OPT_WAIT)
        return kg_cli_usage_error(&c->s, "run: unexpected option");
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "run: expected exactly one drill file");
    int wait = (c->s.given & OPT_WAIT) != 0;
    json_t *drill = kg_cli_load_document(&c->s, c->s.args[1]);
    if (!drill) return KG_CLI_EXIT_API;
    json_t *created = NULL;
    int rc = kg_cli_session_call(&c->s, "POST", "/v1/experiments", drill, &created);
    json_decref(drill);
    if (rc != KG_CLI_EXIT_OK) return rc;
    char id[80];
    snprintf(id, sizeof(id), "%s", kg_cli_str(created, "id", "?"));
    if (c->s.json && !wait)
        kg_cli_print_json(&c->s, created);
    else
        fprintf(c->s.out, "%s\n", id);
    fprintf(c->s.err, "experiment %s (%s) started on %s: baseline %s, then %s of faults\n", id,
            kg_cli_str(created, "name", "?"), kg_cli_str(created, "vcluster", "?"),
            kg_cli_str(json_object_get(created, "drill"), "baseline", "?"),
            kg_cli_str(json_object_get(created, "drill"), "duration", "?"));
    json_decref(created);
    if (!wait) return KG_CLI_EXIT_OK;
    json_t *record = NULL;
    rc = wait_for_end(c, id, &record);
    if (rc != KG_CLI_EXIT_OK) return rc;
    rc = print_report(c, id, c->s.json);
    int result = rc == KG_CLI_EXIT_OK ? outcome(record) : rc;
    json_decref(record);
    return result;
}

/* ---------------------------------------------------------------- list / status */

static void expectation_counts(const json_t *counts, char *out, size_t len)
{
    if (!json_is_object(counts)) {
        snprintf(out, len, "-");
        return;
    }
    snprintf(out, len, "%lld pass, %lld fail",
             (long long)json_integer_value(json_object_get(counts, "pass")),
             (long long)json_integer_value(json_object_get(counts, "fail")));
}

static int cmd_list(xcli *c)
{
    if (c->s.given || c->s.n_args != 1) return kg_cli_usage_error(&c->s, "list takes no arguments");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/experiments", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
        json_decref(reply);
        return KG_CLI_EXIT_OK;
    }
    json_t *list = json_object_get(reply, "experiments");
    if (json_array_size(list) == 0)
        fprintf(c->s.out, "(no experiments)\n");
    else
        fprintf(c->s.out, "%-24s %-12s %-12s %-25s %-18s %s\n", "ID", "STATUS", "VCLUSTER",
                "CREATED", "EXPECTATIONS", "NAME");
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        char counts[64];
        expectation_counts(json_object_get(x, "expectations"), counts, sizeof(counts));
        fprintf(c->s.out, "%-24s %-12s %-12s %-25s %-18s %s\n", kg_cli_str(x, "id", "?"),
                kg_cli_str(x, "status", "?"), kg_cli_str(x, "vcluster", "?"),
                kg_cli_str(x, "created_at", "?"), counts, kg_cli_str(x, "name", "?"));
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static void print_measure(xcli *c, const char *label, const json_t *rec)
{
    if (!json_is_object(rec)) return;
    fprintf(c->s.out,
            "%-14s %.0f s: %.1f req/s, produce %.0f B/s, fetch %.0f B/s, produce errors %lld/%lld, "
            "fetch errors %lld/%lld, commits %.2f/s, connections +%lld -%lld, faults %lld\n",
            label, json_number_value(json_object_get(rec, "seconds")),
            json_number_value(json_object_get(rec, "requests_per_s")),
            json_number_value(json_object_get(rec, "produce_bytes_per_s")),
            json_number_value(json_object_get(rec, "fetch_bytes_per_s")),
            (long long)json_integer_value(json_object_get(rec, "produce_errors")),
            (long long)json_integer_value(json_object_get(rec, "produce_results")),
            (long long)json_integer_value(json_object_get(rec, "fetch_errors")),
            (long long)json_integer_value(json_object_get(rec, "fetch_results")),
            json_number_value(json_object_get(rec, "commit_requests_per_s")),
            (long long)json_integer_value(json_object_get(rec, "connections_opened")),
            (long long)json_integer_value(json_object_get(rec, "connections_closed")),
            (long long)json_integer_value(json_object_get(rec, "faults_injected")));
}

static void print_status(xcli *c, const json_t *x)
{
    fprintf(c->s.out, "%s  %s\n", kg_cli_str(x, "id", "?"), kg_cli_str(x, "name", "?"));
    fprintf(c->s.out, "status:        %s", kg_cli_str(x, "status", "?"));
    const char *reason = kg_cli_str(x, "end_reason", NULL);
    fprintf(c->s.out, "%s%s\n", reason ? " — " : "", reason ? reason : "");
    fprintf(c->s.out, "vcluster:      %s\n", kg_cli_str(x, "vcluster", "?"));
    fprintf(c->s.out, "started by:    %s at %s\n", kg_cli_str(x, "created_by", "?"),
            kg_cli_str(x, "created_at", "?"));
    fprintf(c->s.out, "injection:     %s .. %s\n", kg_cli_str(x, "injection_started_at", "-"),
            kg_cli_str(x, "ended_at", "-"));
    print_measure(c, "baseline:", json_object_get(x, "baseline"));
    const json_t *live = json_object_get(x, "live");
    print_measure(c, "so far:", json_object_get(live, "during_so_far"));
    if (!live) print_measure(c, "during:", json_object_get(x, "during"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(x, "expectations"), i, e)
    {
        fprintf(c->s.out, "  [%s] %s: observed %s\n", kg_cli_str(e, "result", "?"),
                kg_cli_str(e, "expected", "?"), kg_cli_str(e, "observed", "-"));
    }
}

static int with_id(xcli *c, const char *cmd, unsigned allowed)
{
    if (c->s.given & ~allowed) return kg_cli_usage_error(&c->s, "%s: unexpected option", cmd);
    if (c->s.n_args != 2)
        return kg_cli_usage_error(&c->s, "%s: expected exactly one experiment ID", cmd);
    if (!valid_id(c->s.args[1]))
        return kg_cli_usage_error(&c->s, "invalid experiment id \"%s\"", c->s.args[1]);
    return -1;
}

static int cmd_status(xcli *c)
{
    int rc = with_id(c, "status", 0);
    if (rc >= 0) return rc;
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s", c->s.args[1]);
    json_t *x = NULL;
    if ((rc = kg_cli_session_call(&c->s, "GET", path, NULL, &x)) != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        kg_cli_print_json(&c->s, x);
    else
        print_status(c, x);
    json_decref(x);
    return KG_CLI_EXIT_OK;
}

static int cmd_stop(xcli *c)
{
    int rc = with_id(c, "stop", 0);
    if (rc >= 0) return rc;
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s/stop", c->s.args[1]);
    json_t *x = NULL;
    if ((rc = kg_cli_session_call(&c->s, "POST", path, NULL, &x)) != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        kg_cli_print_json(&c->s, x);
    else
        fprintf(c->s.out, "%s: %s (%s); its chaos rules are removed\n", c->s.args[1],
                kg_cli_str(x, "status", "?"), kg_cli_str(x, "end_reason", "-"));
    json_decref(x);
    return KG_CLI_EXIT_OK;
}

static int cmd_report(xcli *c)
{
    int rc = with_id(c, "report", OPT_FORMAT);
    if (rc >= 0) return rc;
    const char *format = c->format ? c->format : (c->s.json ? "json" : "md");
    if (strcmp(format, "md") != 0 && strcmp(format, "json") != 0)
        return kg_cli_usage_error(&c->s, "--format must be md or json, not \"%s\"", format);
    return print_report(c, c->s.args[1], strcmp(format, "json") == 0);
}

static int cmd_annotate(xcli *c)
{
    int rc = with_id(c, "annotate", OPT_REMEDIATION | OPT_RETEST | OPT_RETEST_RESULT);
    if (rc >= 0) return rc;
    if (!c->s.given)
        return kg_cli_usage_error(&c->s,
                                  "annotate: give --remediation, --retest and/or --retest-result");
    if (c->retest && !valid_id(c->retest))
        return kg_cli_usage_error(&c->s, "invalid experiment id \"%s\" for --retest", c->retest);
    json_t *patch = json_object();
    if (c->remediation) json_object_set_new(patch, "remediation", json_string(c->remediation));
    if (c->retest || c->retest_result) {
        json_t *retest = json_object();
        if (c->retest) json_object_set_new(retest, "experiment", json_string(c->retest));
        if (c->retest_result) json_object_set_new(retest, "result", json_string(c->retest_result));
        json_object_set_new(patch, "retest", retest);
    }
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s", c->s.args[1]);
    json_t *x = NULL;
    rc = kg_cli_session_call(&c->s, "PATCH", path, patch, &x);
    json_decref(patch);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        kg_cli_print_json(&c->s, x);
    else
        fprintf(c->s.out, "%s: annotated\n", c->s.args[1]);
    json_decref(x);
    return KG_CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- command line */

int kg_experiment_cli_run(int argc, char **argv, const char *admin_url, const char *token,
                          FILE *out, FILE *err)
{
    xcli c = {0};
    kg_cli_session_init(&c.s, &experiment_syntax, admin_url, token, out, err);
    const kg_cli_option options[] = {
        {"--format", OPT_FORMAT, &c.format},
        {"--remediation", OPT_REMEDIATION, &c.remediation},
        {"--retest-result", OPT_RETEST_RESULT, &c.retest_result},
        {"--retest", OPT_RETEST, &c.retest},
        {"--wait", OPT_WAIT, NULL},
        {NULL, 0, NULL},
    };
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "run") == 0) return cmd_run(&c);
    if (strcmp(cmd, "list") == 0) return cmd_list(&c);
    if (strcmp(cmd, "status") == 0) return cmd_status(&c);
    if (strcmp(cmd, "stop") == 0) return cmd_stop(&c);
    if (strcmp(cmd, "report") == 0) return cmd_report(&c);
    if (strcmp(cmd, "annotate") == 0) return cmd_annotate(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_experiment_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_experiment_cli_run, argc, argv, admin_url, token);
}
