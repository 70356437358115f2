/* kg_drill_cli — see kg_drill_cli.h. */
#include "admin/kg_drill_cli.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "admin/kg_cli_session.h"
#include "drill/kg_drill.h"
#include "util/kg_time.h"

/* `run`: a switch failed or an expectation was not met. */
#define EXIT_NOT_MET 3

static const char usage_text[] =
    "usage: kgate drill [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  run DRILL.yaml [--format md|json] [--out FILE]\n"
    "                       drive producers and a consumer group through kgate, switch or\n"
    "                       inject faults as the drill says, measure RTO, RPO, duplicates and\n"
    "                       errors per client,\n"
    "                       record the result (audited) and print its report (exit 3: a switch\n"
    "                       failed or an expectation was not met)\n"
    "  list                 recorded drills\n"
    "  report ID [--format md|json]\n"
    "                       a recorded drill's report (default: Markdown)\n"
    "\n" KG_CLI_OPTIONS_USAGE;

enum { OPT_FORMAT = 1, OPT_OUT = 2 };

static const kg_cli_syntax drill_syntax = {
    .name = "kgate drill",
    .word = "drill",
    .usage = usage_text,
    .max_args = 2,
    .echo_json_errors = 1,
};

typedef struct dcli {
    kg_cli_session s;
    const char *format, *out;
} dcli;

static int wants_json(const dcli *c)
{
    return c->s.json || (c->format && strcmp(c->format, "json") == 0);
}

/* One API call; *REPLY (NULL: not wanted) gets the body, or {"error"} when kgate is out of
 * reach (status 0). */
static int call(dcli *c, const char *method, const char *path, json_t *body, json_t **reply)
{
    char err[256];
    long status = 0;
    json_t *got = NULL;
    if (kg_cli_request_ca(c->s.url, c->s.token, c->s.cacert, method, path, body, &status, &got, err,
                          sizeof(err)) != 0)
        got = json_pack("{s:s}", "error", err);
    if (reply)
        *reply = got;
    else
        json_decref(got);
    return (int)status;
}

/* The switches go through the admin API, as an operator's would: audited, propagated to the
 * fleet, refused by the parity pre-flight unless the step says force. */
static int switch_via_api(dcli *c, const kg_drill_spec *spec, const kg_drill_step *step,
                          json_t **reply)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/vclusters/%s/%s", spec->vcluster,
             kg_drill_action_name(step->action));
    json_t *body = json_pack("{s:s, s:b}", "reason", step->reason[0] ? step->reason : spec->name,
                             "force", step->force);
    if (step->planned) json_object_set_new(body, "planned", json_true());
    if (step->to[0]) json_object_set_new(body, "to", json_string(step->to));
    int status = call(c, "POST", path, body, reply);
    json_decref(body);
    return status;
}

/* A chaos step: the rule is added through the API for the step's duration (its own expiry a
 * little later, in case this process dies), then its final counters are read and it is
 * removed. *REPLY gets the rule as last listed, or the API's refusal. */
static int chaos_via_api(dcli *c, const kg_drill_spec *spec, const kg_drill_step *step,
                         json_t **reply)
{
    json_t *rule = json_loads(step->rule, 0, NULL);
    char expiry[32], path[160];
    snprintf(expiry, sizeof(expiry), "%lldms", (long long)step->fault_ms + 30000);
    json_object_set_new(rule, "for", json_string(expiry));
    if (!json_object_get(rule, "vcluster"))
        json_object_set_new(rule, "vcluster", json_string(spec->vcluster));
    if (!json_object_get(rule, "description"))
        json_object_set_new(rule, "description",
                            json_string(step->reason[0] ? step->reason : spec->name));
    json_t *added = NULL;
    int status = call(c, "POST", "/v1/chaos/rules", rule, &added);
    json_decref(rule);
    const char *id = json_string_value(json_object_get(added, "id"));
    if (status != 201 || !id || !kg_cli_valid_segment(id)) {
        *reply = added;
        return status;
    }
    kg_time_sleep_ms(step->fault_ms);
    snprintf(path, sizeof(path), "/v1/chaos/rules/%s", id);
    if (call(c, "GET", path, NULL, reply) != 200) {
        json_decref(*reply);
        *reply = json_incref(added);
    }
    json_decref(added);
    return call(c, "DELETE", path, NULL, NULL) == 204 ? 200 : 500;
}

static int step_via_api(void *opaque, const kg_drill_spec *spec, const kg_drill_step *step,
                        json_t **reply)
{
    if (step->action == KG_DRILL_CHAOS) return chaos_via_api(opaque, spec, step, reply);
    return switch_via_api(opaque, spec, step, reply);
}

static void print_result(dcli *c, FILE *out, const json_t *result)
{
    if (wants_json(c)) {
        char *text = json_dumps(result, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (text) fprintf(out, "%s\n", text);
        free(text);
    } else {
        kg_drill_print_md(out, result);
    }
}

static int write_out_file(dcli *c, const json_t *result)
{
    FILE *f = fopen(c->out, "w");
    if (!f) {
        fprintf(c->s.err, "error: cannot write %s\n", c->out);
        return -1;
    }
    print_result(c, f, result);
    return fclose(f) == 0 ? 0 : -1;
}

/* Before any client starts: the admin API answers and knows the virtual cluster, so that a drill
 * with a wrong address or name fails in a second rather than after its workload. */
static int preflight(dcli *c, const kg_drill_spec *spec)
{
    json_t *status = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/status", NULL, &status);
    if (rc != KG_CLI_EXIT_OK) return rc;
    size_t i;
    json_t *vc;
    int known = 0;
    json_array_foreach(json_object_get(status, "vclusters"), i, vc) known |=
        strcmp(kg_cli_str(vc, "name", ""), spec->vcluster) == 0;
    json_decref(status);
    if (known) return KG_CLI_EXIT_OK;
    fprintf(c->s.err, "error: kgate at %s has no virtual cluster \"%s\"\n", c->s.url,
            spec->vcluster);
    return KG_CLI_EXIT_API;
}

/* Records RESULT through the admin API (stored and audited); a drill that could not run is not
 * a result to keep. */
static int record(dcli *c, json_t *result)
{
    if (strcmp(kg_cli_str(result, "outcome", ""), "error") == 0) {
        fprintf(c->s.err, "error: %s\n", kg_cli_str(result, "error", "the drill could not run"));
        return KG_CLI_EXIT_API;
    }
    json_t *recorded = NULL;
    int rc = kg_cli_session_call(&c->s, "POST", "/v1/drills", result, &recorded);
    if (rc == KG_CLI_EXIT_OK)
        fprintf(c->s.err, "recorded as drill %s (sha256 %s)\n", kg_cli_str(recorded, "id", "?"),
                kg_cli_str(recorded, "sha256", "?"));
    json_decref(recorded);
    return rc;
}

static int cmd_run(dcli *c)
{
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "run: expected exactly one drill file");
    json_t *doc = kg_cli_load_document(&c->s, c->s.args[1]);
    if (!doc) return KG_CLI_EXIT_API;
    kg_drill_spec spec;
    char err[512];
    int bad = kg_drill_spec_parse(doc, &spec, err, sizeof(err));
    json_decref(doc);
    if (bad) {
        fprintf(c->s.err, "error: %s: %s\n", c->s.args[1], err);
        return KG_CLI_EXIT_USAGE;
    }
    int rc = preflight(c, &spec);
    if (rc != KG_CLI_EXIT_OK) return rc;
    signal(SIGPIPE, SIG_IGN);
    json_t *result = kg_drill_run(&spec, step_via_api, c, c->s.err);
    rc = record(c, result);
    print_result(c, c->s.out, result);
    if (c->out && write_out_file(c, result) != 0) rc = KG_CLI_EXIT_API;
    int passed = strcmp(kg_cli_str(result, "outcome", ""), "passed") == 0;
    json_decref(result);
    if (rc != KG_CLI_EXIT_OK) return rc;
    return passed ? KG_CLI_EXIT_OK : EXIT_NOT_MET;
}

static int cmd_list(dcli *c)
{
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/drills", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(reply, "drills"), i, d)
        {
            char lost[32] = "-";
            if (json_is_integer(json_object_get(d, "lost")))
                snprintf(lost, sizeof(lost), "%lld",
                         (long long)json_integer_value(json_object_get(d, "lost")));
            fprintf(c->s.out, "%-18s %-8s %-12s lost %-6s %s  %s\n", kg_cli_str(d, "id", "?"),
                    kg_cli_str(d, "outcome", "?"), kg_cli_str(d, "vcluster", "?"), lost,
                    kg_cli_str(d, "recorded_at", "?"), kg_cli_str(d, "name", ""));
        }
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_report(dcli *c)
{
    if (c->s.n_args != 2 || !kg_cli_valid_segment(c->s.args[1]))
        return kg_cli_usage_error(&c->s, "report: expected one drill id");
    char path[160];
    snprintf(path, sizeof(path), "/v1/drills/%s", c->s.args[1]);
    json_t *doc = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", path, NULL, &doc);
    if (rc != KG_CLI_EXIT_OK) return rc;
    print_result(c, c->s.out, doc);
    json_decref(doc);
    return KG_CLI_EXIT_OK;
}

int kg_drill_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err)
{
    dcli c = {0};
    kg_cli_session_init(&c.s, &drill_syntax, admin_url, token, out, err);
    const kg_cli_option options[] = {
        {"--format", OPT_FORMAT, &c.format},
        {"--out", OPT_OUT, &c.out},
        {NULL, 0, NULL},
    };
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    if (c.format && strcmp(c.format, "md") != 0 && strcmp(c.format, "json") != 0)
        return kg_cli_usage_error(&c.s, "--format must be md or json");
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "run") == 0) return cmd_run(&c);
    if (c.s.given & OPT_OUT) return kg_cli_usage_error(&c.s, "%s: unexpected option --out", cmd);
    if (strcmp(cmd, "list") == 0) return cmd_list(&c);
    if (strcmp(cmd, "report") == 0) return cmd_report(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_drill_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_drill_cli_run, argc, argv, admin_url, token);
}
