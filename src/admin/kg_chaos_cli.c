/* kg_chaos_cli — see kg_chaos_cli.h. */
#include "admin/kg_chaos_cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/kg_cli_session.h"

#define MAX_FIELDS 48
#define MAX_FIELD_NAME 64

static const char usage_text[] =
    "usage: kgate chaos [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  add TYPE [options]   add a fault rule; TYPE is one of broken-brokers, leader-election,\n"
    "                       latency, slow-broker, slow-clients, corrupt-records,\n"
    "                       duplicate-records, invalid-schema-id, auth-failure, down, reset,\n"
    "                       timeout, bandwidth, slicer, limit-data\n"
    "  list                 the rules, with what they matched and injected\n"
    "  rm ID                remove a rule\n"
    "\n"
    "scope and duration (add):\n"
    "  --vcluster V  --topic REGEX  --group G  --client-id REGEX  --principal P\n"
    "  --api Produce,Fetch  --broker N  --rate PERCENT  --for 15m | --expires-at TIME\n"
    "parameters (add), see docs/chaos.md:\n"
    "  --errors produce=NOT_ENOUGH_REPLICAS,fetch=NOT_LEADER_OR_FOLLOWER  (broken-brokers)\n"
    "  --errors LEADER_NOT_AVAILABLE,NOT_LEADER_OR_FOLLOWER  (leader-election)\n"
    "  --mode reject|lost-ack  --delay-ms N  --on request|response|fetch|produce\n"
    "  --min-ms N --max-ms N  --apis produce,fetch  --bytes N  --how append|overwrite\n"
    "  --crc valid|invalid  --schema-id N  --direction upstream|downstream|both\n"
    "  --kib-per-s N  --after-ms N  --delay-us N  --id ID  --description TEXT\n"
    "  (any --some-name VALUE is sent as the field some_name)\n"
    "\n" KG_CLI_OPTIONS_USAGE;

/* One "--some-name VALUE" of `add`: the rule field some_name. */
typedef struct field_arg {
    char name[MAX_FIELD_NAME]; /* option without "--" */
    const char *value;
} field_arg;

typedef struct chaos_cli {
    kg_cli_session s;
    field_arg fields[MAX_FIELDS];
    int n_fields;
} chaos_cli;

static const kg_cli_syntax chaos_syntax = {
    .name = "kgate chaos",
    .word = "chaos",
    .usage = usage_text,
    .max_args = 4,
    .command_names = " (add, list, rm)",
    .echo_json_errors = 1,
};

/* ---- add: options to JSON fields ---- */

/* Fields whose values are names or regexes: never turned into numbers. */
static const char *const string_fields[] = {
    "type", "id",         "description", "vcluster", "topic", "group", "client_id", "principal",
    "for",  "expires_at", "mode",        "on",       "how",   "crc",   "direction", NULL,
};
/* Fields that take a comma-separated list. */
static const char *const list_fields[] = {"api", "apis", NULL};

static int in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return 1;
    return 0;
}

/* A number when TEXT is one, else a string. */
static json_t *scalar(const char *text)
{
    char *end;
    errno = 0;
    long long i = strtoll(text, &end, 10);
    if (*text && !*end && !errno) return json_integer(i);
    double d = strtod(text, &end);
    if (*text && !*end && !errno) return json_real(d);
    return json_string(text);
}

static json_t *comma_list(const char *text, int numbers)
{
    json_t *arr = json_array();
    char *copy = strdup(text);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, numbers ? scalar(tok) : json_string(tok));
    free(copy);
    return arr;
}

/* "produce=X,fetch=Y" is an object; "X,Y" a list. */
static json_t *errors_value(const char *text)
{
    if (!strchr(text, '=')) return comma_list(text, 0);
    json_t *obj = json_object();
    char *copy = strdup(text);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            json_decref(obj);
            obj = NULL;
            break;
        }
        *eq = '\0';
        json_object_set_new(obj, tok, json_string(eq + 1));
    }
    free(copy);
    return obj;
}

static json_t *field_value(const char *field, const char *text)
{
    if (strcmp(field, "errors") == 0) return errors_value(text);
    if (in_list(list_fields, field)) return comma_list(text, 1);
    if (in_list(string_fields, field)) return json_string(text);
    return scalar(text);
}

static int build_rule(chaos_cli *c, const char *type, json_t **out)
{
    json_t *rule = json_pack("{s:s}", "type", type);
    for (int i = 0; i < c->n_fields; i++) {
        char field[128];
        snprintf(field, sizeof(field), "%s", c->fields[i].name);
        for (char *p = field; *p; p++)
            if (*p == '-') *p = '_';
        if (json_object_get(rule, field)) {
            json_decref(rule);
            return kg_cli_usage_error(&c->s, "option --%s given twice", c->fields[i].name);
        }
        json_t *v = field_value(field, c->fields[i].value);
        if (!v) {
            json_decref(rule);
            return kg_cli_usage_error(&c->s, "--%s: expected API=ERROR pairs separated by commas",
                                      c->fields[i].name);
        }
        json_object_set_new(rule, field, v);
    }
    *out = rule;
    return KG_CLI_EXIT_OK;
}

/* ---- formatting ---- */

static void append(char *buf, size_t len, const char *fmt, const char *value)
{
    size_t used = strlen(buf);
    if (used < len) snprintf(buf + used, len - used, fmt, value);
}

/* "vcluster=payments topic=orders.* api=Produce,Fetch", or "all". */
static void scope_text(json_t *rule, char *buf, size_t len)
{
    static const char *const keys[] = {"vcluster",  "topic",     "group",
                                       "client_id", "principal", NULL};
    buf[0] = '\0';
    for (int i = 0; keys[i]; i++) {
        const char *v = kg_cli_str(rule, keys[i], NULL);
        if (!v) continue;
        append(buf, len, buf[0] ? " %s" : "%s", keys[i]);
        append(buf, len, "=%s", v);
    }
    json_t *api = json_object_get(rule, "api");
    if (api) {
        char *text = json_dumps(api, JSON_COMPACT | JSON_ENCODE_ANY);
        append(buf, len, buf[0] ? " api=%s" : "api=%s", text ? text : "?");
        free(text);
    }
    json_t *broker = json_object_get(rule, "broker");
    if (json_is_integer(broker)) {
        char n[32];
        snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(broker));
        append(buf, len, buf[0] ? " broker=%s" : "broker=%s", n);
    }
    if (!buf[0]) snprintf(buf, len, "all");
}

static int parse_utc(const char *text, time_t *out)
{
    struct tm tm = {0};
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return 0;
}

/* "never", "in 14m59s", "expired" */
static void expires_text(json_t *rule, char *buf, size_t len)
{
    const char *at = kg_cli_str(rule, "expires_at", NULL);
    time_t t;
    if (!at || parse_utc(at, &t) != 0) {
        snprintf(buf, len, "%s", at ? at : "never");
        return;
    }
    long long left = (long long)(t - time(NULL));
    if (left <= 0)
        snprintf(buf, len, "expired");
    else if (left >= 3600)
        snprintf(buf, len, "in %lldh%02lldm", left / 3600, left % 3600 / 60);
    else
        snprintf(buf, len, "in %lldm%02llds", left / 60, left % 60);
}

static void rate_text(json_t *rule, char *buf, size_t len)
{
    json_t *rate = json_object_get(rule, "rate");
    if (json_is_number(rate))
        snprintf(buf, len, "%g%%", json_number_value(rate));
    else
        snprintf(buf, len, "100%%");
}

#define N_COLS 6

static void print_rules(chaos_cli *c, json_t *rules)
{
    size_t n = json_array_size(rules);
    char(*cells)[N_COLS][160] = calloc(n + 1, sizeof(*cells));
    if (!cells) return;
    const char *header[N_COLS] = {"ID", "TYPE", "SCOPE", "RATE", "EXPIRES", "INJECTED"};
    for (int k = 0; k < N_COLS; k++)
        snprintf(cells[0][k], sizeof(cells[0][k]), "%s", header[k]);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rules, i);
        snprintf(cells[i + 1][0], 160, "%s", kg_cli_str(r, "id", "?"));
        snprintf(cells[i + 1][1], 160, "%s", kg_cli_str(r, "type", "?"));
        scope_text(r, cells[i + 1][2], 160);
        rate_text(r, cells[i + 1][3], 160);
        expires_text(r, cells[i + 1][4], 160);
        snprintf(cells[i + 1][5], 160, "%lld",
                 (long long)json_integer_value(json_object_get(r, "injected")));
    }
    size_t width[N_COLS] = {0};
    for (size_t i = 0; i <= n; i++)
        for (int k = 0; k < N_COLS; k++)
            if (strlen(cells[i][k]) > width[k]) width[k] = strlen(cells[i][k]);
    for (size_t i = 0; i <= n; i++) {
        for (int k = 0; k < N_COLS - 1; k++)
            fprintf(c->s.out, "%-*s  ", (int)width[k], cells[i][k]);
        fprintf(c->s.out, "%s\n", cells[i][N_COLS - 1]);
    }
    free(cells);
}

/* ---- commands ---- */

static int cmd_add(chaos_cli *c)
{
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "add: expected exactly one fault TYPE");
    json_t *rule = NULL;
    int rc = build_rule(c, c->s.args[1], &rule);
    if (rc != KG_CLI_EXIT_OK) return rc;
    json_t *reply = NULL;
    rc = kg_cli_session_call(&c->s, "POST", "/v1/chaos/rules", rule, &reply);
    json_decref(rule);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json) {
        kg_cli_print_json(&c->s, reply);
    } else {
        char scope[256], expires[64], rate[32];
        scope_text(reply, scope, sizeof(scope));
        expires_text(reply, expires, sizeof(expires));
        rate_text(reply, rate, sizeof(rate));
        fprintf(c->s.out, "added rule %s (%s): scope %s, rate %s, expires %s\n",
                kg_cli_str(reply, "id", "?"), kg_cli_str(reply, "type", "?"), scope, rate, expires);
    }
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_list(chaos_cli *c)
{
    if (c->s.n_args != 1) return kg_cli_usage_error(&c->s, "list takes no arguments");
    if (c->n_fields)
        return kg_cli_usage_error(&c->s, "list: unexpected option --%s", c->fields[0].name);
    json_t *reply = NULL;
    int rc = kg_cli_session_call(&c->s, "GET", "/v1/chaos/rules", NULL, &reply);
    if (rc != KG_CLI_EXIT_OK) return rc;
    json_t *rules = json_object_get(reply, "rules");
    if (!json_is_array(rules)) {
        fprintf(c->s.err, "error: the admin API sent no rule list\n");
        json_decref(reply);
        return KG_CLI_EXIT_API;
    }
    if (c->s.json)
        kg_cli_print_json(&c->s, rules);
    else if (json_array_size(rules) == 0)
        fprintf(c->s.out, "(no chaos rules)\n");
    else
        print_rules(c, rules);
    json_decref(reply);
    return KG_CLI_EXIT_OK;
}

static int cmd_rm(chaos_cli *c)
{
    if (c->s.n_args != 2) return kg_cli_usage_error(&c->s, "rm: expected exactly one rule ID");
    if (c->n_fields)
        return kg_cli_usage_error(&c->s, "rm: unexpected option --%s", c->fields[0].name);
    const char *id = c->s.args[1];
    if (!kg_cli_valid_segment(id)) return kg_cli_usage_error(&c->s, "invalid rule id \"%s\"", id);
    char path[256];
    snprintf(path, sizeof(path), "/v1/chaos/rules/%s", id);
    /* 204 without a body. */
    int rc = kg_cli_session_call(&c->s, "DELETE", path, NULL, NULL);
    if (rc != KG_CLI_EXIT_OK) return rc;
    if (c->s.json)
        fprintf(c->s.out, "{\"removed\": \"%s\"}\n", id);
    else
        fprintf(c->s.out, "removed rule %s\n", id);
    return KG_CLI_EXIT_OK;
}

/* ---- command line ---- */

/* "--name VALUE" or "--name=VALUE": the value (NULL when missing), NAME without the dashes. */
static const char *split_option(int argc, char **argv, int *i, char *name, size_t name_len)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    if (eq) {
        snprintf(name, name_len, "%.*s", (int)(eq - arg), arg);
        return eq + 1;
    }
    snprintf(name, name_len, "%s", arg);
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* Every "--name VALUE" the session does not know is a rule field for `add`: the API, not this
 * table-less parser, knows the fields of each fault type and names a wrong one. */
static int take_rule_field(void *cli, int argc, char **argv, int *i)
{
    chaos_cli *c = cli;
    if (strncmp(argv[*i], "--", 2) != 0 || argv[*i][2] == '\0') return KG_CLI_NOT_MINE;
    char name[MAX_FIELD_NAME];
    const char *value = split_option(argc, argv, i, name, sizeof(name));
    if (!value) return kg_cli_usage_error(&c->s, "option --%s needs a value", name);
    if (c->n_fields >= MAX_FIELDS) return kg_cli_usage_error(&c->s, "too many options");
    field_arg *f = &c->fields[c->n_fields++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->value = value;
    return KG_CLI_GO_ON;
}

int kg_chaos_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err)
{
    chaos_cli c = {0};
    kg_cli_session_init(&c.s, &chaos_syntax, admin_url, token, out, err);
    int rc = kg_cli_session_parse(&c.s, argc, argv, NULL, take_rule_field, &c);
    if (rc != KG_CLI_GO_ON) return rc;
    const char *cmd = c.s.args[0];
    if (strcmp(cmd, "add") == 0) return cmd_add(&c);
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) return cmd_list(&c);
    if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0) return cmd_rm(&c);
    return kg_cli_unknown_command(&c.s);
}

int kg_chaos_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    return kg_cli_run_on_stdio(kg_chaos_cli_run, argc, argv, admin_url, token);
}
