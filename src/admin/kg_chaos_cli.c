/* kg_chaos_cli — see kg_chaos_cli.h. */
#include "admin/kg_chaos_cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/kg_cli.h"

#define EXIT_OK 0
#define EXIT_API 1
#define EXIT_USAGE 2
#define MAX_POSITIONAL 4
#define MAX_FIELDS 48

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
    "\n"
    "options:\n"
    "  --admin URL    admin API (default from the config file, or $KGATE_ADMIN_URL)\n"
    "  --token TOKEN  bearer token (default from the config file, or $KGATE_ADMIN_TOKEN)\n"
    "  --json         print the API's JSON\n";

typedef struct field_arg {
    const char *name; /* option without "--" */
    const char *value;
} field_arg;

typedef struct chaos_cli {
    FILE *out, *err;
    char url[1024];
    const char *token;
    int json;
    const char *pos[MAX_POSITIONAL];
    int n_pos;
    field_arg fields[MAX_FIELDS];
    int n_fields;
} chaos_cli;

static int usage_error(chaos_cli *c, const char *fmt, const char *arg)
{
    fprintf(c->err, "kgate chaos: ");
    fprintf(c->err, fmt, arg ? arg : "");
    fprintf(c->err, "\n%s", usage_text);
    return EXIT_USAGE;
}

/* ---- HTTP ---- */

static int call_api(chaos_cli *c, const char *method, const char *path, json_t *body, long *status,
                    json_t **reply)
{
    char errbuf[512];
    if (kg_cli_request(c->url, c->token, method, path, body, status, reply, errbuf,
                       sizeof(errbuf)) != 0) {
        fprintf(c->err, "error: %s\n", errbuf);
        return EXIT_API;
    }
    if (*status >= 200 && *status < 300) return EXIT_OK;
    if (c->json && *reply) {
        char *text = json_dumps(*reply, JSON_INDENT(2));
        fprintf(c->out, "%s\n", text ? text : "");
        free(text);
    }
    fprintf(c->err, "error: %s (HTTP %ld)\n", kg_cli_error_message(*reply, *status), *status);
    json_decref(*reply);
    *reply = NULL;
    return EXIT_API;
}

static void print_json(chaos_cli *c, json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2));
    fprintf(c->out, "%s\n", text ? text : "null");
    free(text);
}

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
            return usage_error(c, "option --%s given twice", c->fields[i].name);
        }
        json_t *v = field_value(field, c->fields[i].value);
        if (!v) {
            json_decref(rule);
            return usage_error(c, "--%s: expected API=ERROR pairs separated by commas",
                               c->fields[i].name);
        }
        json_object_set_new(rule, field, v);
    }
    *out = rule;
    return EXIT_OK;
}

/* ---- formatting ---- */

static const char *str_or(json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : fallback;
}

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
        const char *v = str_or(rule, keys[i], NULL);
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
    const char *at = str_or(rule, "expires_at", NULL);
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
        snprintf(cells[i + 1][0], 160, "%s", str_or(r, "id", "?"));
        snprintf(cells[i + 1][1], 160, "%s", str_or(r, "type", "?"));
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
            fprintf(c->out, "%-*s  ", (int)width[k], cells[i][k]);
        fprintf(c->out, "%s\n", cells[i][N_COLS - 1]);
    }
    free(cells);
}

/* ---- commands ---- */

static int cmd_add(chaos_cli *c)
{
    if (c->n_pos != 2) return usage_error(c, "add: expected exactly one fault TYPE", NULL);
    json_t *rule = NULL;
    int rc = build_rule(c, c->pos[1], &rule);
    if (rc != EXIT_OK) return rc;
    long status;
    json_t *reply = NULL;
    rc = call_api(c, "POST", "/v1/chaos/rules", rule, &status, &reply);
    json_decref(rule);
    if (rc != EXIT_OK) return rc;
    if (c->json) {
        print_json(c, reply);
    } else {
        char scope[256], expires[64], rate[32];
        scope_text(reply, scope, sizeof(scope));
        expires_text(reply, expires, sizeof(expires));
        rate_text(reply, rate, sizeof(rate));
        fprintf(c->out, "added rule %s (%s): scope %s, rate %s, expires %s\n",
                str_or(reply, "id", "?"), str_or(reply, "type", "?"), scope, rate, expires);
    }
    json_decref(reply);
    return EXIT_OK;
}

static int cmd_list(chaos_cli *c)
{
    if (c->n_pos != 1) return usage_error(c, "list takes no arguments", NULL);
    if (c->n_fields) return usage_error(c, "list: unexpected option --%s", c->fields[0].name);
    long status;
    json_t *reply = NULL;
    int rc = call_api(c, "GET", "/v1/chaos/rules", NULL, &status, &reply);
    if (rc != EXIT_OK) return rc;
    json_t *rules = json_object_get(reply, "rules");
    if (!json_is_array(rules)) {
        fprintf(c->err, "error: the admin API sent no rule list\n");
        json_decref(reply);
        return EXIT_API;
    }
    if (c->json)
        print_json(c, rules);
    else if (json_array_size(rules) == 0)
        fprintf(c->out, "(no chaos rules)\n");
    else
        print_rules(c, rules);
    json_decref(reply);
    return EXIT_OK;
}

static int valid_id(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

static int cmd_rm(chaos_cli *c)
{
    if (c->n_pos != 2) return usage_error(c, "rm: expected exactly one rule ID", NULL);
    if (c->n_fields) return usage_error(c, "rm: unexpected option --%s", c->fields[0].name);
    const char *id = c->pos[1];
    if (!valid_id(id)) return usage_error(c, "invalid rule id \"%s\"", id);
    char path[256];
    snprintf(path, sizeof(path), "/v1/chaos/rules/%s", id);
    long status;
    json_t *reply = NULL;
    int rc = call_api(c, "DELETE", path, NULL, &status, &reply);
    json_decref(reply);
    if (rc != EXIT_OK) return rc;
    if (c->json)
        fprintf(c->out, "{\"removed\": \"%s\"}\n", id);
    else
        fprintf(c->out, "removed rule %s\n", id);
    return EXIT_OK;
}

/* ---- command line ---- */

static void set_url(chaos_cli *c, const char *url)
{
    if (strstr(url, "://"))
        snprintf(c->url, sizeof(c->url), "%s", url);
    else
        snprintf(c->url, sizeof(c->url), "http://%s", url);
}

/* "--opt VALUE" or "--opt=VALUE": the value, or NULL when missing. */
static const char *take_value(int argc, char **argv, int *i, const char **name_out, char *name_buf,
                              size_t name_len)
{
    const char *arg = argv[*i] + 2;
    const char *eq = strchr(arg, '=');
    if (eq) {
        snprintf(name_buf, name_len, "%.*s", (int)(eq - arg), arg);
        *name_out = name_buf;
        return eq + 1;
    }
    snprintf(name_buf, name_len, "%s", arg);
    *name_out = name_buf;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

/* Returns -1 to go on, or an exit code. */
static int parse_args(chaos_cli *c, int argc, char **argv, char (*names)[64])
{
    int start = argc > 0 && strcmp(argv[0], "chaos") == 0 ? 1 : 0;
    for (int i = start; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--json") == 0) {
            c->json = 1;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, c->out);
            return EXIT_OK;
        } else if (strcmp(arg, "-c") == 0) {
            if (++i >= argc) return usage_error(c, "option -c needs a value", NULL);
        } else if (strncmp(arg, "--", 2) == 0 && arg[2]) {
            const char *name;
            char buf[64];
            const char *value = take_value(argc, argv, &i, &name, buf, sizeof(buf));
            if (!value) return usage_error(c, "option --%s needs a value", buf);
            if (strcmp(name, "admin") == 0) {
                set_url(c, value);
            } else if (strcmp(name, "token") == 0) {
                c->token = value;
            } else if (strcmp(name, "config") == 0) {
                /* main.c read the defaults from it */
            } else if (c->n_fields < MAX_FIELDS) {
                snprintf(names[c->n_fields], 64, "%s", name);
                c->fields[c->n_fields].name = names[c->n_fields];
                c->fields[c->n_fields].value = value;
                c->n_fields++;
            } else {
                return usage_error(c, "too many options", NULL);
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error(c, "unknown option %s", arg);
        } else if (c->n_pos < MAX_POSITIONAL) {
            c->pos[c->n_pos++] = arg;
        } else {
            return usage_error(c, "too many arguments", NULL);
        }
    }
    return -1;
}

static void apply_defaults(chaos_cli *c, const char *default_url, const char *default_token)
{
    const char *env_url = getenv("KGATE_ADMIN_URL");
    const char *env_token = getenv("KGATE_ADMIN_TOKEN");
    if (!c->url[0]) {
        const char *url = env_url && *env_url ? env_url : default_url;
        set_url(c, url && *url ? url : "127.0.0.1:19644");
    }
    if (!c->token) c->token = env_token && *env_token ? env_token : default_token;
}

int kg_chaos_cli_run(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                     FILE *err)
{
    chaos_cli c = {.out = out, .err = err};
    char names[MAX_FIELDS][64];
    int rc = parse_args(&c, argc, argv, names);
    if (rc >= 0) return rc;
    apply_defaults(&c, admin_url, token);
    if (c.n_pos == 0) return usage_error(&c, "missing command (add, list, rm)", NULL);
    const char *cmd = c.pos[0];
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_text, out);
        return EXIT_OK;
    }
    if (strcmp(cmd, "add") == 0) return cmd_add(&c);
    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) return cmd_list(&c);
    if (strcmp(cmd, "rm") == 0 || strcmp(cmd, "remove") == 0) return cmd_rm(&c);
    return usage_error(&c, "unknown command \"%s\" (add, list, rm)", cmd);
}

int kg_chaos_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    int rc = kg_chaos_cli_run(argc, argv, admin_url, token, stdout, stderr);
    fflush(stdout);
    return rc;
}
