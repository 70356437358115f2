/* kg_cli — see kg_cli.h. */
#include "admin/kg_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_text[] =
    "usage: kgate [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                                   virtual clusters, active sides, cluster health,\n"
    "                                           the fleet's instances (PostgreSQL state)\n"
    "  failover VCLUSTER [--to CLUSTER] [--reason TEXT] [--force] [--planned [--hold-max 10s]]\n"
    "                                           switch VCLUSTER to CLUSTER (default: its\n"
    "                                           secondary); --force even if CLUSTER is down\n"
    "  failback VCLUSTER [--reason TEXT] [--force] [--planned [--hold-max 10s]]\n"
    "                                           switch VCLUSTER back to its primary\n"
    "                                           --planned: hold producers, wait for the\n"
    "                                           mirror, switch, nothing lost (docs/runbook.md)\n"
    "  parity VCLUSTER [--to CLUSTER]           what a switch would find on CLUSTER (default:\n"
    "                                           the other side): missing topics, partition\n"
    "                                           counts, topic configs; exit 3 on differences\n"
    "  audit [list] [--limit N] [--after SEQ]   audit log entries (default: the last 20)\n"
    "  audit verify                             check the audit log's hash chain\n"
    "  drain [--within 60s] [--no-wait]         stop serving without cutting a request: not\n"
    "                                           ready, idle connections closed, busy ones at\n"
    "                                           request boundaries; prints progress until drained\n"
    "  drain status | drain cancel              a drain's progress; serve again\n"
    "  drain NAME [--within 60s] [--no-wait]    drain the fleet's instance NAME through this\n"
    "                                           one (PostgreSQL state); progress from status\n"
    "  drain NAME cancel                        instance NAME serves again\n"
    "\n" KG_CLI_OPTIONS_USAGE;

/* Everything a command needs: the session and the options of kgate's own commands. */
typedef struct cli {
    kg_cli_session s;
    const char *to, *reason, *limit, *after, *within, *hold_max;
} cli;

/* Flags in s.given, to refuse options a command does not take. */
enum {
    OPT_TO = 1,
    OPT_REASON = 2,
    OPT_FORCE = 4,
    OPT_LIMIT = 8,
    OPT_AFTER = 16,
    OPT_WITHIN = 32,
    OPT_NO_WAIT = 64,
    OPT_PLANNED = 128,
    OPT_HOLD_MAX = 256
};

static const kg_cli_syntax kgate_syntax = {
    .name = "kgate",
    .usage = usage_text,
    .max_args = 8,
    .echo_json_errors = 1,
};

/* ---- formatting helpers ---- */

/* Integer field as text, or "-" when absent. */
static void int_field(json_t *obj, const char *key, char *out, size_t len)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(out, len, "-");
}

static void ms_field(json_t *obj, const char *key, char *out, size_t len)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v))
        snprintf(out, len, "%.1f ms", json_number_value(v));
    else
        snprintf(out, len, "-");
}

#define MAX_COLS 6

/* A table printed with columns as wide as their widest cell. */
typedef struct table {
    int n_cols;
    int n_rows;
    char **cells; /* n_rows * n_cols, row 0 = header */
} table;

static void table_add(table *t, const char *const *row)
{
    char **grown = realloc(t->cells, sizeof(char *) * (size_t)((t->n_rows + 1) * t->n_cols));
    if (!grown) return;
    t->cells = grown;
    for (int i = 0; i < t->n_cols; i++)
        t->cells[t->n_rows * t->n_cols + i] = strdup(row[i] ? row[i] : "");
    t->n_rows++;
}

static void table_print_free(table *t, FILE *out)
{
    size_t width[MAX_COLS] = {0};
    for (int r = 0; r < t->n_rows; r++)
        for (int col = 0; col < t->n_cols; col++) {
            const char *cell = t->cells[r * t->n_cols + col];
            size_t len = cell ? strlen(cell) : 0;
            if (len > width[col]) width[col] = len;
        }
    for (int r = 0; r < t->n_rows; r++) {
        for (int col = 0; col < t->n_cols; col++) {
            const char *cell = t->cells[r * t->n_cols + col];
            if (col == t->n_cols - 1)
                fputs(cell ? cell : "", out);
            else
                fprintf(out, "%-*s  ", (int)width[col], cell ? cell : "");
        }
        fputc('\n', out);
    }
    for (int i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* ---- commands ---- */

static void print_vclusters(cli *c, json_t *vclusters)
{
    table t = {.n_cols = 6};
    const char *header[] = {"VCLUSTER", "ACTIVE", "EPOCH", "CONNECTIONS", "PRIMARY", "SECONDARY"};
    table_add(&t, header);
    size_t i;
    json_t *vc;
    json_array_foreach(vclusters, i, vc)
    {
        char epoch[32], conns[32];
        int_field(vc, "epoch", epoch, sizeof(epoch));
        int_field(vc, "client_connections", conns, sizeof(conns));
        const char *row[] = {
            kg_cli_str(vc, "name", "?"),    kg_cli_str(vc, "active", "?"),   epoch, conns,
            kg_cli_str(vc, "primary", "-"), kg_cli_str(vc, "secondary", "-")};
        table_add(&t, row);
    }
    table_print_free(&t, c->s.out);
}

static void print_clusters(cli *c, json_t *clusters)
{
    table t = {.n_cols = 4};
    const char *header[] = {"CLUSTER", "STATE", "PROBE", "LAST ERROR"};
    table_add(&t, header);
    size_t i;
    json_t *cl;
    json_array_foreach(clusters, i, cl)
    {
        json_t *up = json_object_get(cl, "up");
        char probe[32];
        ms_field(cl, "probe_ms", probe, sizeof(probe));
        const char *state = json_is_true(up) ? "up" : json_is_false(up) ? "down" : "unknown";
        const char *row[] = {kg_cli_str(cl, "name", "?"), state, probe,
                             kg_cli_str(cl, "last_error", "-")};
        table_add(&t, row);
    }
    table_print_free(&t, c->s.out);
}

/* "gw-1 0.1.0 serving default=3 12 0.4s": every instance of a fleet (PostgreSQL state). */
static void print_fleet(cli *c, json_t *fleet)
{
    table t = {.n_cols = 6};
    const char *header[] = {"INSTANCE", "VERSION", "STATE", "EPOCHS", "CONNECTIONS", "LEASE AGE"};
    table_add(&t, header);
    size_t i;
    json_t *inst;
    json_array_foreach(json_object_get(fleet, "instances"), i, inst)
    {
        char conns[32], age[32], epochs[256] = "";
        int_field(inst, "connections", conns, sizeof(conns));
        ms_field(inst, "lease_age_ms", age, sizeof(age));
        const char *vc;
        json_t *e;
        size_t used = 0;
        json_object_foreach(json_object_get(inst, "epochs"), vc, e)
        {
            used += (size_t)snprintf(epochs + used,
                                     used < sizeof(epochs) ? sizeof(epochs) - used : 0, "%s%s=%lld",
                                     used ? "," : "", vc, (long long)json_integer_value(e));
            if (used >= sizeof(epochs)) break;
        }
        const char *row[] = {kg_cli_str(inst, "name", "?"),
                             kg_cli_str(inst, "version", "?"),
                             kg_cli_str(inst, "state", "?"),
                             epochs[0] ? epochs : "-",
                             conns,
                             age};
        table_add(&t, row);
    }
    table_print_free(&t, c->s.out);
    const char *lost = kg_cli_str(fleet, "state_lost", NULL);
    if (lost)
        fprintf(c->s.out, "this instance (%s): %s\n", kg_cli_str(fleet, "instance", "?"), lost);
}

/* "auto-failover: default (after 30000 ms): no failover: east down ... (controller: gw-2)",
 * one line per vcluster with auto_failover enabled. */
static void print_autofo(cli *c, json_t *reply)
{
    json_t *af = json_object_get(reply, "auto_failover");
    if (!af) return;
    const char *controller =
        json_is_true(json_object_get(af, "controller"))
            ? kg_cli_str(json_object_get(reply, "fleet"), "instance", "this instance")
            : NULL;
    size_t i;
    json_t *inst;
    json_array_foreach(json_object_get(json_object_get(reply, "fleet"), "instances"), i, inst)
    {
        if (json_is_true(json_object_get(json_object_get(inst, "probe"), "controller")))
            controller = kg_cli_str(inst, "name", "?");
    }
    fputc('\n', c->s.out);
    const char *vc;
    json_t *v;
    json_object_foreach(json_object_get(af, "vclusters"), vc, v)
    {
        if (!json_is_true(json_object_get(v, "enabled"))) continue;
        fprintf(c->s.out, "auto-failover %s (after %lld ms): %s\n", vc,
                (long long)json_integer_value(json_object_get(v, "after_ms")),
                kg_cli_str(json_object_get(v, "last"), "verdict", "not evaluated here"));
    }
    fprintf(c->s.out, "auto-failover controller: %s\n", controller ? controller : "none seen");
}

static int cmd_status(cli *c)
{
    if (c->s.n_args != 1 || c->s.given)
        return kg_cli_usage_error(&c->s, "status takes no arguments");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/status", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        print_vclusters(c, json_object_get(reply, "vclusters"));
        fputc('\n', c->s.out);
        print_clusters(c, json_object_get(reply, "clusters"));
        json_t *fleet = json_object_get(reply, "fleet");
        if (fleet) {
            fputc('\n', c->s.out);
            print_fleet(c, fleet);
        }
        print_autofo(c, reply);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

/* "payments: east -> west (epoch 4), 120 connections closed in 3.1 ms" */
static void print_switch_result(cli *c, const char *vcluster, json_t *r)
{
    json_t *changed = json_object_get(r, "changed");
    char epoch[32];
    int_field(r, "epoch", epoch, sizeof(epoch));
    const char *name = kg_cli_str(r, "vcluster", vcluster);
    if (json_is_false(changed)) {
        fprintf(c->s.out, "%s: already on %s (epoch %s), nothing to do\n", name,
                kg_cli_str(r, "active", "?"), epoch);
        return;
    }
    if (!json_is_true(changed)) {
        char *text = json_dumps(r, JSON_COMPACT);
        fprintf(c->s.out, "%s: %s\n", name, text ? text : "");
        free(text);
        return;
    }
    char conns[32];
    int_field(r, "connections_closed", conns, sizeof(conns));
    json_t *ms = json_object_get(r, "duration_ms");
    fprintf(c->s.out, "%s: %s -> %s (epoch %s), %s connections closed", name,
            kg_cli_str(r, "from", "?"), kg_cli_str(r, "to", "?"), epoch, conns);
    if (json_is_number(ms)) fprintf(c->s.out, " in %.1f ms", json_number_value(ms));
    fputc('\n', c->s.out);
    json_t *planned = json_object_get(r, "planned");
    if (!planned) return;
    char hold[32], held[32], lag[32];
    int_field(planned, "hold_ms", hold, sizeof(hold));
    int_field(planned, "held_requests", held, sizeof(held));
    int_field(planned, "lag_records_waited", lag, sizeof(lag));
    fprintf(c->s.out,
            "planned: producers held %s ms (%s request(s), sent on to the new side), waited for "
            "a replication lag of %s record(s)\n",
            hold, held, lag);
}

static long long parse_duration_ms(const char *text);

static int cmd_switch(cli *c, int failover)
{
    const char *cmd = failover ? "failover" : "failback";
    unsigned allowed =
        OPT_REASON | OPT_FORCE | OPT_PLANNED | OPT_HOLD_MAX | (failover ? OPT_TO : 0);
    if (c->s.given & ~allowed) return kg_cli_usage_error(&c->s, "%s: unexpected option", cmd);
    if (c->s.n_args != 2)
        return kg_cli_usage_error(&c->s, "%s: expected exactly one VCLUSTER", cmd);
    const char *vc = c->s.args[1];
    if (!kg_cli_valid_segment(vc))
        return kg_cli_usage_error(&c->s, "invalid virtual cluster name \"%s\"", vc);
    json_t *body = json_object();
    if (c->to) json_object_set_new(body, "to", json_string(c->to));
    if (c->reason) json_object_set_new(body, "reason", json_string(c->reason));
    if (c->s.given & OPT_FORCE) json_object_set_new(body, "force", json_true());
    if (c->s.given & OPT_PLANNED) json_object_set_new(body, "planned", json_true());
    if (c->hold_max) {
        long long ms = parse_duration_ms(c->hold_max);
        if (ms <= 0 || !(c->s.given & OPT_PLANNED)) {
            json_decref(body);
            return kg_cli_usage_error(&c->s,
                                      "%s: --hold-max takes a duration (10s, 500ms) and "
                                      "goes with --planned",
                                      cmd);
        }
        json_object_set_new(body, "hold_max_ms", json_integer(ms));
    }
    char path[256];
    snprintf(path, sizeof(path), "/v1/vclusters/%s/%s", vc, cmd);
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "POST", path, body, &reply);
    json_decref(body);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        kg_cli_print_json(&c->s, reply);
    else
        print_switch_result(c, vc, reply);
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

/* "payments: east -> west (epoch 4), 12 connections closed, by ACTOR "REASON"" */
static void print_switch_details(cli *c, json_t *d)
{
    fprintf(c->s.out, "%s: %s -> %s", kg_cli_str(d, "vcluster", "?"), kg_cli_str(d, "from", "?"),
            kg_cli_str(d, "to", "?"));
    char num[32];
    if (json_object_get(d, "epoch")) {
        int_field(d, "epoch", num, sizeof(num));
        fprintf(c->s.out, " (epoch %s)", num);
    }
    if (json_object_get(d, "connections_closed")) {
        int_field(d, "connections_closed", num, sizeof(num));
        fprintf(c->s.out, ", %s connections closed", num);
        json_t *ms = json_object_get(d, "duration_ms");
        if (json_is_number(ms)) fprintf(c->s.out, " in %.1f ms", json_number_value(ms));
    }
    const char *error = kg_cli_str(d, "error", NULL);
    if (error) fprintf(c->s.out, " refused: %s", error);
    fprintf(c->s.out, " by %s", kg_cli_str(d, "actor", "?"));
    const char *reason = kg_cli_str(d, "reason", NULL);
    if (reason) fprintf(c->s.out, " \"%s\"", reason);
}

/* One line per entry; switch entries are spelled out, others show their details. */
static void print_audit_entry(cli *c, json_t *e)
{
    json_t *d = json_object_get(e, "details");
    char seq[32];
    int_field(e, "seq", seq, sizeof(seq));
    fprintf(c->s.out, "%-5s %s  %-16s ", seq, kg_cli_str(e, "ts", "?"), kg_cli_str(e, "type", "?"));
    if (json_object_get(d, "vcluster") && json_object_get(d, "to")) {
        print_switch_details(c, d);
    } else {
        char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(c->s.out, "%s", text ? text : "");
        free(text);
    }
    fputc('\n', c->s.out);
}

static int parse_count(const char *text, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || !*text || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

static int cmd_audit_list(cli *c)
{
    long long limit = 20, after = -1;
    if (c->limit && (parse_count(c->limit, 1000, &limit) != 0 || limit == 0))
        return kg_cli_usage_error(&c->s, "--limit must be an integer from 1 to 1000, not \"%s\"",
                                  c->limit);
    if (c->after && parse_count(c->after, LLONG_MAX, &after) != 0)
        return kg_cli_usage_error(&c->s, "--after must be a non-negative integer, not \"%s\"",
                                  c->after);
    char path[128];
    if (after >= 0)
        snprintf(path, sizeof(path), "/v1/audit?after=%lld&limit=%lld", after, limit);
    else
        snprintf(path, sizeof(path), "/v1/audit?limit=%lld", limit);
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", path, NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        json_t *entries = json_object_get(reply, "entries");
        size_t i;
        json_t *e;
        if (json_array_size(entries) == 0) fprintf(c->s.out, "(no audit entries)\n");
        json_array_foreach(entries, i, e) print_audit_entry(c, e);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_audit_verify(cli *c)
{
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/audit/verify", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    int intact = json_is_true(json_object_get(reply, "intact"));
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else if (intact) {
        char entries[32];
        int_field(reply, "entries", entries, sizeof(entries));
        fprintf(c->s.out, "audit log intact: %s entries, head %s\n", entries,
                kg_cli_str(reply, "last_hash", "-"));
    } else {
        char seq[32];
        int_field(reply, "first_bad_seq", seq, sizeof(seq));
        fprintf(c->s.out, "audit log BROKEN at entry %s (%s): %s\n", seq,
                kg_cli_str(reply, "reason", "?"), kg_cli_str(reply, "message", ""));
    }
    json_decref(reply);
    return intact ? KG_CLI_EXIT_OK : KG_CLI_EXIT_API;
}

static int cmd_reload(cli *c)
{
    if (c->s.n_args != 1 || c->s.given)
        return kg_cli_usage_error(&c->s, "reload takes no arguments");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "POST", "/v1/reload", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        char rules[32];
        int_field(reply, "chaos_rules", rules, sizeof(rules));
        fprintf(c->s.out, "reloaded %s: %s chaos rule(s) from the file\n",
                kg_cli_str(reply, "reloaded", "?"), rules);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_audit(cli *c)
{
    const char *sub = c->s.n_args >= 2 ? c->s.args[1] : "list";
    if (c->s.n_args > 2)
        return kg_cli_usage_error(&c->s, "audit: unexpected argument \"%s\"", c->s.args[2]);
    if (strcmp(sub, "list") == 0) {
        if (c->s.given & ~(unsigned)(OPT_LIMIT | OPT_AFTER))
            return kg_cli_usage_error(&c->s, "audit list: unexpected option");
        return cmd_audit_list(c);
    }
    if (strcmp(sub, "verify") == 0) {
        if (c->s.given) return kg_cli_usage_error(&c->s, "audit verify: unexpected option");
        return cmd_audit_verify(c);
    }
    return kg_cli_usage_error(&c->s, "audit: unknown subcommand \"%s\" (list, verify)", sub);
}

/* ---- parity ---- */

/* Exit status of `kgate parity` when the check found differences (0: none). */
#define EXIT_PARITY_DIFFERS 3

static void print_parity(cli *c, json_t *r)
{
    char topics[32], count[32];
    int_field(r, "topics", topics, sizeof(topics));
    int_field(r, "count", count, sizeof(count));
    fprintf(c->s.out,
            "%s: %s -> %s, %s topic(s) used in the last %llds: ", kg_cli_str(r, "vcluster", "?"),
            kg_cli_str(r, "from", "?"), kg_cli_str(r, "to", "?"), topics,
            (long long)json_integer_value(json_object_get(r, "window_s")));
    if (json_object_get(r, "error")) {
        fprintf(c->s.out, "not checked: %s\n", kg_cli_str(r, "error", "?"));
        return;
    }
    fprintf(c->s.out, "%s difference(s); configs %s\n", count, kg_cli_str(r, "configs", "-"));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(r, "differences"), i, d)
    {
        char *from = json_dumps(json_object_get(d, "from"), JSON_ENCODE_ANY);
        char *to = json_dumps(json_object_get(d, "to"), JSON_ENCODE_ANY);
        fprintf(c->s.out, "  %-30s %-12s %s%s%s%s%s\n", kg_cli_str(d, "topic", "?"),
                kg_cli_str(d, "problem", "?"), kg_cli_str(d, "config", ""),
                json_object_get(d, "config") ? " " : "", from ? from : "", from ? " -> " : "",
                to ? to : "");
        free(from);
        free(to);
    }
}

static int cmd_parity(cli *c)
{
    if (c->s.given & ~OPT_TO) return kg_cli_usage_error(&c->s, "parity: unexpected option");
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "parity: expected one VCLUSTER");
    const char *vc = c->s.args[1];
    if (!kg_cli_valid_segment(vc) || (c->to && !kg_cli_valid_segment(c->to)))
        return kg_cli_usage_error(&c->s, "invalid virtual cluster or cluster name");
    char path[256];
    snprintf(path, sizeof(path), "/v1/vclusters/%s/parity%s%s", vc, c->to ? "?to=" : "",
             c->to ? c->to : "");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", path, NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        kg_cli_print_json(&c->s, reply);
    else
        print_parity(c, reply);
    int differs = json_integer_value(json_object_get(reply, "count")) > 0;
    json_decref(reply);
    return differs ? EXIT_PARITY_DIFFERS : KG_CLI_EXIT_OK;
}

/* ---- drain ---- */

/* "60s", "1500ms", "2m" or plain milliseconds; -1 when not a duration. */
static long long parse_duration_ms(const char *text)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text || n < 0) return -1;
    long long unit = strcmp(end, "") == 0 || strcmp(end, "ms") == 0 ? 1
                     : strcmp(end, "s") == 0                        ? 1000
                     : strcmp(end, "m") == 0                        ? 60000
                                                                    : -1;
    if (unit < 0 || n > LLONG_MAX / unit) return -1;
    return n * unit;
}

static void print_drain(cli *c, json_t *p)
{
    char left[32], within[32];
    int_field(p, "connections_left", left, sizeof(left));
    int_field(p, "within_ms", within, sizeof(within));
    const char *state = kg_cli_str(p, "state", "?");
    if (strcmp(state, "serving") == 0)
        fprintf(c->s.out, "serving (%s connections)\n", left);
    else
        fprintf(c->s.out, "%s: %s connection(s) left (started %s, within %s ms)\n", state, left,
                kg_cli_str(p, "started", "?"), within);
    fflush(c->s.out);
}

/* Prints the progress whenever the number of connections changes, until drained. */
static int drain_follow(cli *c)
{
    long long last = -1;
    for (;;) {
        json_t *p = NULL;
        int rc = kg_cli_session_call(&c->s, "GET", "/v1/drain", NULL, &p);
        if (rc != KG_CLI_EXIT_OK) return rc;
        long long left = json_integer_value(json_object_get(p, "connections_left"));
        const char *state = kg_cli_str(p, "state", "?");
        int done = strcmp(state, "draining") != 0;
        rc = strcmp(state, "drained") == 0 ? KG_CLI_EXIT_OK : KG_CLI_EXIT_API;
        if (left != last || done) c->s.json ? kg_cli_print_json(&c->s, p) : print_drain(c, p);
        last = left;
        json_decref(p);
        if (done) return rc; /* "serving": cancelled meanwhile */
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

/* INSTANCE's row in the fleet status, or NULL (borrowed from STATUS). */
static json_t *fleet_row(json_t *status, const char *instance)
{
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(json_object_get(status, "fleet"), "instances"), i, row)
    {
        if (strcmp(kg_cli_str(row, "name", ""), instance) == 0) return row;
    }
    return NULL;
}

/* Follows INSTANCE's row in the fleet's status until it is WANT ("drained", or "serving"
 * after a cancel), printing each change of state or connections. */
static int fleet_drain_follow(cli *c, const char *instance, const char *want)
{
    char last[160] = "";
    for (;;) {
        json_t *st = NULL;
        int rc = kg_cli_session_call(&c->s, "GET", "/v1/status", NULL, &st);
        if (rc != KG_CLI_EXIT_OK) return rc;
        json_t *row = fleet_row(st, instance);
        if (!row || !json_is_true(json_object_get(row, "live"))) {
            json_decref(st);
            fprintf(c->s.err, "kgate: instance %s is no longer live in the fleet\n", instance);
            return KG_CLI_EXIT_API;
        }
        const char *state = kg_cli_str(row, "state", "?");
        char line[160];
        snprintf(line, sizeof(line), "%s: %s, %lld connection(s)", instance, state,
                 (long long)json_integer_value(json_object_get(row, "connections")));
        int done = strcmp(state, want) == 0;
        if (strcmp(line, last) != 0) {
            c->s.json ? kg_cli_print_json(&c->s, row) : (void)fprintf(c->s.out, "%s\n", line);
            fflush(c->s.out);
            snprintf(last, sizeof(last), "%s", line);
        }
        json_decref(st);
        if (done) return KG_CLI_EXIT_OK;
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

/* drain NAME [cancel] [--within D] [--no-wait]: through this instance, of instance NAME. */
static int cmd_drain_instance(cli *c, const char *instance)
{
    int cancel = c->s.n_args == 3 && strcmp(c->s.args[2], "cancel") == 0;
    if (c->s.n_args > 3 || (c->s.n_args == 3 && !cancel))
        return kg_cli_usage_error(&c->s, "drain %s: expected cancel or [--within D]", instance);
    if (c->s.given & ~(unsigned)((cancel ? 0 : OPT_WITHIN) | OPT_NO_WAIT))
        return kg_cli_usage_error(&c->s, "drain: unexpected option");
    json_t *body = json_object();
    if (c->within) {
        long long ms = parse_duration_ms(c->within);
        if (ms < 0 || ms > INT_MAX) {
            json_decref(body);
            return kg_cli_usage_error(
                &c->s, "drain: --within %s is not a duration (60s, 500ms, 2m)", c->within);
        }
        json_object_set_new(body, "within_ms", json_integer(ms));
    }
    char path[256];
    snprintf(path, sizeof(path), "/v1/fleet/instances/%s/drain%s", instance,
             cancel ? "/cancel" : "");
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "POST", path, cancel ? NULL : body, &reply);
    json_decref(body);
    if (rc != KG_CLI_EXIT_OK) return rc;
    int fleet = json_object_get(reply, "requested") != NULL; /* else: it was this instance */
    if (c->s.given & OPT_NO_WAIT || (!fleet && cancel)) {
        if (c->s.json || !fleet)
            kg_cli_print_json(&c->s, reply);
        else
            fprintf(c->s.out, "%s of instance %s asked (picked up within %lld ms)\n",
                    cancel ? "drain cancel" : "drain", instance,
                    (long long)json_integer_value(json_object_get(reply, "picked_up_within_ms")));
        json_decref(reply);
        return KG_CLI_EXIT_OK;
    }
    json_decref(reply);
    return fleet ? fleet_drain_follow(c, instance, cancel ? "serving" : "drained")
                 : drain_follow(c);
}

static int cmd_drain(cli *c)
{
    const char *sub = c->s.n_args >= 2 ? c->s.args[1] : NULL;
    if (sub && strcmp(sub, "status") != 0 && strcmp(sub, "cancel") != 0)
        return cmd_drain_instance(c, sub);
    if (c->s.n_args > 2)
        return kg_cli_usage_error(&c->s, "drain: unexpected argument \"%s\"", c->s.args[2]);
    if (sub && (c->s.given || (strcmp(sub, "status") != 0 && strcmp(sub, "cancel") != 0)))
        return kg_cli_usage_error(&c->s, "drain: expected status, cancel, or [--within D]");
    if (c->s.given & ~(unsigned)(OPT_WITHIN | OPT_NO_WAIT))
        return kg_cli_usage_error(&c->s, "drain: unexpected option");
    json_t *reply = NULL, *body = NULL;
    int rc;
    if (sub && strcmp(sub, "status") == 0) {
        rc = kg_cli_session_call(&c->s, "GET", "/v1/drain", NULL, &reply);
    } else if (sub) {
        rc = kg_cli_session_call(&c->s, "POST", "/v1/drain/cancel", NULL, &reply);
    } else {
        body = json_object();
        if (c->within) {
            long long ms = parse_duration_ms(c->within);
            if (ms < 0 || ms > INT_MAX) {
                json_decref(body);
                return kg_cli_usage_error(&c->s,
                                          "drain: --within %s is not a duration (60s, "
                                          "500ms, 2m)",
                                          c->within);
            }
            json_object_set_new(body, "within_ms", json_integer(ms));
        }
        rc = kg_cli_session_call(&c->s, "POST", "/v1/drain", body, &reply);
        json_decref(body);
        if (rc == KG_CLI_EXIT_OK && !(c->s.given & OPT_NO_WAIT)) {
            json_decref(reply);
            return drain_follow(c);
        }
    }
    if (rc != KG_CLI_EXIT_OK) return rc;
    c->s.json ? kg_cli_print_json(&c->s, reply) : print_drain(c, reply);
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

/* ---- command line ---- */

int kg_cli_run(int argc, char **argv, const char *default_admin_url, const char *default_token,
               FILE *out, FILE *err)
{
    cli c = {0};
    kg_cli_session_init(&c.s, &kgate_syntax, default_admin_url, default_token, out, err);
    const kg_cli_option options[] = {
        {"--to", OPT_TO, &c.to},
        {"--reason", OPT_REASON, &c.reason},
        {"--limit", OPT_LIMIT, &c.limit},
        {"--after", OPT_AFTER, &c.after},
        {"--force", OPT_FORCE, NULL},
        {"--within", OPT_WITHIN, &c.within},
        {"--no-wait", OPT_NO_WAIT, NULL},
        {"--planned", OPT_PLANNED, NULL},
        {"--hold-max", OPT_HOLD_MAX, &c.hold_max},
        {NULL, 0, NULL},
    };
    int rc = kg_cli_session_parse(&c.s, argc, argv, options, NULL, NULL);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "status") == 0) return cmd_status(&c);
    if (strcmp(cmd, "failover") == 0) return cmd_switch(&c, 1);
    if (strcmp(cmd, "failback") == 0) return cmd_switch(&c, 0);
    if (strcmp(cmd, "audit") == 0) return cmd_audit(&c);
    if (strcmp(cmd, "reload") == 0) return cmd_reload(&c);
    if (strcmp(cmd, "drain") == 0) return cmd_drain(&c);
    if (strcmp(cmd, "parity") == 0) return cmd_parity(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_cli_main(int argc, char **argv, const char *default_admin_url, const char *default_token)
{
    return kg_cli_run_on_stdio(kg_cli_run, argc, argv, default_admin_url, default_token);
}
