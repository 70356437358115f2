/* kg_cli — see kg_cli.h. */
#include "admin/kg_cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_OK 0
#define EXIT_API 1
#define EXIT_USAGE 2
#define MAX_POSITIONAL 8
#define MAX_RESPONSE (16 * 1024 * 1024)

static const char usage_text[] =
    "usage: kgate [--admin URL] [--token TOKEN] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                                   virtual clusters, active sides, cluster health\n"
    "  failover VCLUSTER [--to CLUSTER] [--reason TEXT] [--force]\n"
    "                                           switch VCLUSTER to CLUSTER (default: its\n"
    "                                           secondary); --force even if CLUSTER is down\n"
    "  failback VCLUSTER [--reason TEXT] [--force]\n"
    "                                           switch VCLUSTER back to its primary\n"
    "  audit [list] [--limit N] [--after SEQ]   audit log entries (default: the last 20)\n"
    "  audit verify                             check the audit log's hash chain\n"
    "\n"
    "options:\n"
    "  --admin URL    admin API (default from the config file, or $KGATE_ADMIN_URL)\n"
    "  --token TOKEN  bearer token (default from the config file, or $KGATE_ADMIN_TOKEN)\n"
    "  --json         print the API's JSON\n";

/* Everything a command needs: the connection and the parsed command line. */
typedef struct cli {
    FILE *out, *err;
    char url[1024];
    const char *token;
    int json;
    const char *pos[MAX_POSITIONAL];
    int n_pos;
    const char *to, *reason, *limit, *after;
    int force;
    unsigned given; /* which subcommand options were given, to refuse misplaced ones */
} cli;

enum { OPT_TO = 1, OPT_REASON = 2, OPT_FORCE = 4, OPT_LIMIT = 8, OPT_AFTER = 16 };

/* ---- HTTP ---- */

typedef struct response_buf {
    char *data;
    size_t len;
    int overflow;
} response_buf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    response_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > MAX_RESPONSE) {
        b->overflow = 1;
        return 0;
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + b->len, ptr, n);
    b->data = grown;
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct curl_slist *request_headers(const char *token, int has_body)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (has_body) h = curl_slist_append(h, "Content-Type: application/json");
    if (token && *token) {
        char line[1024];
        snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
        h = curl_slist_append(h, line);
    }
    /* Informational: lands in the audit next to the token identity. */
    const char *user = getenv("USER");
    if (user && *user) {
        char line[160];
        snprintf(line, sizeof(line), "X-Kgate-User: %.64s", user);
        h = curl_slist_append(h, line);
    }
    return h;
}

int kg_cli_request(const char *base_url, const char *token, const char *method, const char *path,
                   json_t *body, long *status, json_t **reply, char *errbuf, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    *reply = NULL;
    *status = 0;
    char url[2048];
    size_t base_len = strlen(base_url);
    while (base_len > 0 && base_url[base_len - 1] == '/')
        base_len--;
    snprintf(url, sizeof(url), "%.*s%s", (int)base_len, base_url, path);

    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(errbuf, errlen, "cannot initialise libcurl");
        return -1;
    }
    char *body_text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *headers = request_headers(token, body_text != NULL);
    response_buf resp = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body_text) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body_text);

    CURLcode rc = curl_easy_perform(curl);
    int result = 0;
    if (rc != CURLE_OK) {
        snprintf(errbuf, errlen, "cannot reach the admin API at %s: %s", url,
                 resp.overflow ? "response too large"
                 : curl_err[0] ? curl_err
                               : curl_easy_strerror(rc));
        result = -1;
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
        if (resp.data) *reply = json_loadb(resp.data, resp.len, 0, NULL);
    }
    free(resp.data);
    curl_slist_free_all(headers);
    free(body_text);
    curl_easy_cleanup(curl);
    return result;
}

const char *kg_cli_error_message(json_t *reply, long status)
{
    const char *msg = json_string_value(json_object_get(reply, "error"));
    if (msg) return msg;
    static __thread char generic[64];
    snprintf(generic, sizeof(generic), "the admin API answered HTTP %ld", status);
    return generic;
}

/* Runs one call; on success *REPLY is the body. Prints the error and returns EXIT_API on
 * failure. Statuses in ACCEPT_ALSO (e.g. 503 for readiness) are not errors. */
static int call_api(cli *c, const char *method, const char *path, json_t *body, json_t **reply)
{
    long status = 0;
    char errbuf[512];
    if (kg_cli_request(c->url, c->token, method, path, body, &status, reply, errbuf,
                       sizeof(errbuf)) != 0) {
        fprintf(c->err, "error: %s\n", errbuf);
        return EXIT_API;
    }
    if (status >= 200 && status < 300 && *reply) return EXIT_OK;
    if (status >= 200 && status < 300) {
        fprintf(c->err, "error: the admin API sent a reply that is not JSON\n");
        return EXIT_API;
    }
    if (c->json && *reply) {
        char *text = json_dumps(*reply, JSON_INDENT(2));
        fprintf(c->out, "%s\n", text ? text : "");
        free(text);
    }
    fprintf(c->err, "error: %s (HTTP %ld)\n", kg_cli_error_message(*reply, status), status);
    json_decref(*reply);
    *reply = NULL;
    return EXIT_API;
}

static void print_json(cli *c, json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2));
    fprintf(c->out, "%s\n", text ? text : "null");
    free(text);
}

/* ---- formatting helpers ---- */

static const char *str_or(json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : fallback;
}

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
        const char *row[] = {str_or(vc, "name", "?"),    str_or(vc, "active", "?"),   epoch, conns,
                             str_or(vc, "primary", "-"), str_or(vc, "secondary", "-")};
        table_add(&t, row);
    }
    table_print_free(&t, c->out);
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
        const char *row[] = {str_or(cl, "name", "?"), state, probe, str_or(cl, "last_error", "-")};
        table_add(&t, row);
    }
    table_print_free(&t, c->out);
}

static int cmd_status(cli *c)
{
    json_t *reply = NULL;
    int rc = call_api(c, "GET", "/v1/status", NULL, &reply);
    if (rc != EXIT_OK) return rc;
    if (c->json) {
        print_json(c, reply);
    } else {
        print_vclusters(c, json_object_get(reply, "vclusters"));
        fputc('\n', c->out);
        print_clusters(c, json_object_get(reply, "clusters"));
    }
    json_decref(reply);
    return EXIT_OK;
}

/* "payments: east -> west (epoch 4), 120 connections closed in 3.1 ms" */
static void print_switch_result(cli *c, const char *vcluster, json_t *r)
{
    json_t *changed = json_object_get(r, "changed");
    char epoch[32];
    int_field(r, "epoch", epoch, sizeof(epoch));
    const char *name = str_or(r, "vcluster", vcluster);
    if (json_is_false(changed)) {
        fprintf(c->out, "%s: already on %s (epoch %s), nothing to do\n", name,
                str_or(r, "active", "?"), epoch);
        return;
    }
    if (!json_is_true(changed)) {
        char *text = json_dumps(r, JSON_COMPACT);
        fprintf(c->out, "%s: %s\n", name, text ? text : "");
        free(text);
        return;
    }
    char conns[32];
    int_field(r, "connections_closed", conns, sizeof(conns));
    json_t *ms = json_object_get(r, "duration_ms");
    fprintf(c->out, "%s: %s -> %s (epoch %s), %s connections closed", name, str_or(r, "from", "?"),
            str_or(r, "to", "?"), epoch, conns);
    if (json_is_number(ms)) fprintf(c->out, " in %.1f ms", json_number_value(ms));
    fputc('\n', c->out);
}

/* Path segment from user input: vcluster names are simple, refuse what would need escaping. */
static int valid_segment(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.';
        if (!ok) return 0;
    }
    return 1;
}

static int usage_error(cli *c, const char *fmt, const char *arg)
{
    fprintf(c->err, "kgate: ");
    fprintf(c->err, fmt, arg ? arg : "");
    fprintf(c->err, "\n%s", usage_text);
    return EXIT_USAGE;
}

static int cmd_switch(cli *c, int failover)
{
    const char *cmd = failover ? "failover" : "failback";
    unsigned allowed = OPT_REASON | OPT_FORCE | (failover ? OPT_TO : 0);
    if (c->given & ~allowed) return usage_error(c, "%s: unexpected option", cmd);
    if (c->n_pos != 2) return usage_error(c, "%s: expected exactly one VCLUSTER", cmd);
    const char *vc = c->pos[1];
    if (!valid_segment(vc)) return usage_error(c, "invalid virtual cluster name \"%s\"", vc);
    json_t *body = json_object();
    if (c->to) json_object_set_new(body, "to", json_string(c->to));
    if (c->reason) json_object_set_new(body, "reason", json_string(c->reason));
    if (c->force) json_object_set_new(body, "force", json_true());
    char path[256];
    snprintf(path, sizeof(path), "/v1/vclusters/%s/%s", vc, cmd);
    json_t *reply = NULL;
    int rc = call_api(c, "POST", path, body, &reply);
    json_decref(body);
    if (rc != EXIT_OK) return rc;
    if (c->json)
        print_json(c, reply);
    else
        print_switch_result(c, vc, reply);
    json_decref(reply);
    return EXIT_OK;
}

/* "payments: east -> west (epoch 4), 12 connections closed, by ACTOR "REASON"" */
static void print_switch_details(cli *c, json_t *d)
{
    fprintf(c->out, "%s: %s -> %s", str_or(d, "vcluster", "?"), str_or(d, "from", "?"),
            str_or(d, "to", "?"));
    char num[32];
    if (json_object_get(d, "epoch")) {
        int_field(d, "epoch", num, sizeof(num));
        fprintf(c->out, " (epoch %s)", num);
    }
    if (json_object_get(d, "connections_closed")) {
        int_field(d, "connections_closed", num, sizeof(num));
        fprintf(c->out, ", %s connections closed", num);
        json_t *ms = json_object_get(d, "duration_ms");
        if (json_is_number(ms)) fprintf(c->out, " in %.1f ms", json_number_value(ms));
    }
    const char *error = str_or(d, "error", NULL);
    if (error) fprintf(c->out, " refused: %s", error);
    fprintf(c->out, " by %s", str_or(d, "actor", "?"));
    const char *reason = str_or(d, "reason", NULL);
    if (reason) fprintf(c->out, " \"%s\"", reason);
}

/* One line per entry; switch entries are spelled out, others show their details. */
static void print_audit_entry(cli *c, json_t *e)
{
    json_t *d = json_object_get(e, "details");
    char seq[32];
    int_field(e, "seq", seq, sizeof(seq));
    fprintf(c->out, "%-5s %s  %-16s ", seq, str_or(e, "ts", "?"), str_or(e, "type", "?"));
    if (json_object_get(d, "vcluster") && json_object_get(d, "to")) {
        print_switch_details(c, d);
    } else {
        char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(c->out, "%s", text ? text : "");
        free(text);
    }
    fputc('\n', c->out);
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
        return usage_error(c, "--limit must be an integer from 1 to 1000, not \"%s\"", c->limit);
    if (c->after && parse_count(c->after, LLONG_MAX, &after) != 0)
        return usage_error(c, "--after must be a non-negative integer, not \"%s\"", c->after);
    char path[128];
    if (after >= 0)
        snprintf(path, sizeof(path), "/v1/audit?after=%lld&limit=%lld", after, limit);
    else
        snprintf(path, sizeof(path), "/v1/audit?limit=%lld", limit);
    json_t *reply = NULL;
    int rc = call_api(c, "GET", path, NULL, &reply);
    if (rc != EXIT_OK) return rc;
    if (c->json) {
        print_json(c, reply);
    } else {
        json_t *entries = json_object_get(reply, "entries");
        size_t i;
        json_t *e;
        if (json_array_size(entries) == 0) fprintf(c->out, "(no audit entries)\n");
        json_array_foreach(entries, i, e) print_audit_entry(c, e);
    }
    json_decref(reply);
    return EXIT_OK;
}

static int cmd_audit_verify(cli *c)
{
    json_t *reply = NULL;
    int rc = call_api(c, "GET", "/v1/audit/verify", NULL, &reply);
    if (rc != EXIT_OK) return rc;
    int intact = json_is_true(json_object_get(reply, "intact"));
    if (c->json) {
        print_json(c, reply);
    } else if (intact) {
        char entries[32];
        int_field(reply, "entries", entries, sizeof(entries));
        fprintf(c->out, "audit log intact: %s entries, head %s\n", entries,
                str_or(reply, "last_hash", "-"));
    } else {
        char seq[32];
        int_field(reply, "first_bad_seq", seq, sizeof(seq));
        fprintf(c->out, "audit log BROKEN at entry %s (%s): %s\n", seq,
                str_or(reply, "reason", "?"), str_or(reply, "message", ""));
    }
    json_decref(reply);
    return intact ? EXIT_OK : EXIT_API;
}

static int cmd_reload(cli *c)
{
    if (c->n_pos != 1 || c->given) return usage_error(c, "reload takes no arguments", NULL);
    json_t *reply = NULL;
    int rc = call_api(c, "POST", "/v1/reload", NULL, &reply);
    if (rc != EXIT_OK) return rc;
    if (c->json) {
        print_json(c, reply);
    } else {
        char rules[32];
        int_field(reply, "chaos_rules", rules, sizeof(rules));
        fprintf(c->out, "reloaded %s: %s chaos rule(s) from the file\n",
                str_or(reply, "reloaded", "?"), rules);
    }
    json_decref(reply);
    return EXIT_OK;
}

static int cmd_audit(cli *c)
{
    const char *sub = c->n_pos >= 2 ? c->pos[1] : "list";
    if (c->n_pos > 2) return usage_error(c, "audit: unexpected argument \"%s\"", c->pos[2]);
    if (strcmp(sub, "list") == 0) {
        if (c->given & ~(unsigned)(OPT_LIMIT | OPT_AFTER))
            return usage_error(c, "audit list: unexpected option", NULL);
        return cmd_audit_list(c);
    }
    if (strcmp(sub, "verify") == 0) {
        if (c->given) return usage_error(c, "audit verify: unexpected option", NULL);
        return cmd_audit_verify(c);
    }
    return usage_error(c, "audit: unknown subcommand \"%s\" (list, verify)", sub);
}

/* ---- command line ---- */

/* Options that take a value; FIELD is where it goes (NULL: handled specially). */
typedef struct value_option {
    const char *name;
    unsigned flag;
    size_t offset;
    enum { STORE, ADMIN_URL, IGNORE } action;
} value_option;

static const value_option value_options[] = {
    {"--admin", 0, 0, ADMIN_URL},
    {"--token", 0, offsetof(cli, token), STORE},
    {"--to", OPT_TO, offsetof(cli, to), STORE},
    {"--reason", OPT_REASON, offsetof(cli, reason), STORE},
    {"--limit", OPT_LIMIT, offsetof(cli, limit), STORE},
    {"--after", OPT_AFTER, offsetof(cli, after), STORE},
    {"--config", 0, 0, IGNORE}, /* main.c read the defaults from it */
    {"-c", 0, 0, IGNORE},
};

/* The value option ARG names ("--opt" or "--opt=VALUE"), or NULL. */
static const value_option *find_value_option(const char *arg)
{
    for (size_t i = 0; i < sizeof(value_options) / sizeof(value_options[0]); i++) {
        size_t n = strlen(value_options[i].name);
        if (strncmp(arg, value_options[i].name, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
            return &value_options[i];
    }
    return NULL;
}

/* The value of option ARGV[*I] ("--opt VALUE" or "--opt=VALUE"); NULL when missing. */
static const char *option_value(int argc, char **argv, int *i, const value_option *opt)
{
    const char *arg = argv[*i];
    size_t n = strlen(opt->name);
    if (arg[n] == '=') return arg + n + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

static void set_url(cli *c, const char *url)
{
    if (strstr(url, "://"))
        snprintf(c->url, sizeof(c->url), "%s", url);
    else
        snprintf(c->url, sizeof(c->url), "http://%s", url);
}

/* Returns -1 to go on, or an exit code (help printed, usage error). */
static int parse_args(cli *c, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const value_option *opt = find_value_option(arg);
        if (opt) {
            const char *value = option_value(argc, argv, &i, opt);
            if (!value) return usage_error(c, "option %s needs a value", opt->name);
            if (opt->action == ADMIN_URL)
                set_url(c, value);
            else if (opt->action == STORE)
                *(const char **)((char *)c + opt->offset) = value;
            c->given |= opt->flag;
        } else if (strcmp(arg, "--json") == 0) {
            c->json = 1;
        } else if (strcmp(arg, "--force") == 0) {
            c->force = 1;
            c->given |= OPT_FORCE;
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, c->out);
            return EXIT_OK;
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

static void apply_defaults(cli *c, const char *default_url, const char *default_token)
{
    const char *env_url = getenv("KGATE_ADMIN_URL");
    const char *env_token = getenv("KGATE_ADMIN_TOKEN");
    if (!c->url[0]) {
        const char *url = env_url && *env_url ? env_url : default_url;
        set_url(c, url && *url ? url : "127.0.0.1:19644");
    }
    if (!c->token) c->token = env_token && *env_token ? env_token : default_token;
}

int kg_cli_run(int argc, char **argv, const char *default_admin_url, const char *default_token,
               FILE *out, FILE *err)
{
    cli c = {.out = out, .err = err};
    int rc = parse_args(&c, argc, argv);
    if (rc >= 0) return rc;
    apply_defaults(&c, default_admin_url, default_token);
    if (c.n_pos == 0) return usage_error(&c, "missing command", NULL);
    const char *cmd = c.pos[0];
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_text, out);
        return EXIT_OK;
    }
    if (strcmp(cmd, "status") == 0) {
        if (c.n_pos != 1 || c.given) return usage_error(&c, "status takes no arguments", NULL);
        return cmd_status(&c);
    }
    if (strcmp(cmd, "failover") == 0) return cmd_switch(&c, 1);
    if (strcmp(cmd, "failback") == 0) return cmd_switch(&c, 0);
    if (strcmp(cmd, "audit") == 0) return cmd_audit(&c);
    if (strcmp(cmd, "reload") == 0) return cmd_reload(&c);
    return usage_error(&c, "unknown command \"%s\"", cmd);
}

int kg_cli_main(int argc, char **argv, const char *default_admin_url, const char *default_token)
{
    int rc = kg_cli_run(argc, argv, default_admin_url, default_token, stdout, stderr);
    fflush(stdout);
    return rc;
}
