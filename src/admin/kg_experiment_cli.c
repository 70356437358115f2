/* kg_experiment_cli — see kg_experiment_cli.h. */
#include "admin/kg_experiment_cli.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/kg_cli.h"
#include "chaos/kg_experiment.h"
#include "config/kg_config.h"

#define EXIT_OK 0
#define EXIT_API 1
#define EXIT_USAGE 2
#define EXIT_NOT_MET 3
#define MAX_POSITIONAL 4
#define MAX_DRILL_BYTES (1024 * 1024)
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
    "\n"
    "options:\n"
    "  --admin URL    admin API (default from the config file, or $KGATE_ADMIN_URL)\n"
    "  --token TOKEN  bearer token (default from the config file, or $KGATE_ADMIN_TOKEN)\n"
    "  --json         print the API's JSON\n";

typedef struct xcli {
    FILE *out, *err;
    char url[1024];
    const char *token;
    int json, wait;
    const char *format, *remediation, *retest, *retest_result;
    const char *pos[MAX_POSITIONAL];
    int n_pos;
    unsigned given; /* OPT_* seen, to refuse options the subcommand does not take */
} xcli;

enum { OPT_WAIT = 1, OPT_FORMAT = 2, OPT_REMEDIATION = 4, OPT_RETEST = 8, OPT_RETEST_RESULT = 16 };

static int usage_error(xcli *c, const char *fmt, const char *arg)
{
    fprintf(c->err, "kgate experiment: ");
    fprintf(c->err, fmt, arg ? arg : "");
    fprintf(c->err, "\n%s", usage_text);
    return EXIT_USAGE;
}

/* ---------------------------------------------------------------- API calls */

/* One call; on a 2xx JSON reply returns EXIT_OK with *REPLY, else prints why. */
static int call(xcli *c, const char *method, const char *path, json_t *body, json_t **reply)
{
    long status = 0;
    char errbuf[512];
    *reply = NULL;
    if (kg_cli_request(c->url, c->token, method, path, body, &status, reply, errbuf,
                       sizeof(errbuf)) != 0) {
        fprintf(c->err, "error: %s\n", errbuf);
        return EXIT_API;
    }
    if (status >= 200 && status < 300 && *reply) return EXIT_OK;
    fprintf(c->err, "error: %s (HTTP %ld)\n",
            status >= 200 && status < 300 ? "the admin API sent a reply that is not JSON"
                                          : kg_cli_error_message(*reply, status),
            status);
    json_decref(*reply);
    *reply = NULL;
    return EXIT_API;
}

static void print_json(xcli *c, const json_t *v)
{
    char *text = json_dumps(v, JSON_INDENT(2));
    fprintf(c->out, "%s\n", text ? text : "null");
    free(text);
}

static const char *str_or(const json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : fallback;
}

/* Experiment ids are made by kgate; refuse what would need escaping in a URL path. */
static int valid_id(const char *s)
{
    if (!*s || strlen(s) > 64) return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_' || ch == '.';
        if (!ok) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- run */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_DRILL_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_DRILL_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_DRILL_BYTES;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read %s%s", path,
                 n > MAX_DRILL_BYTES ? ": larger than 1 MiB" : "");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static json_t *load_drill(xcli *c, const char *path)
{
    char err[512];
    size_t len;
    char *text = read_file(path, &len, err, sizeof(err));
    if (!text) {
        fprintf(c->err, "error: %s\n", err);
        return NULL;
    }
    json_t *drill = kg_config_yaml_to_json(text, len, err, sizeof(err));
    free(text);
    if (!drill) fprintf(c->err, "error: %s: %s\n", path, err);
    return drill;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

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
        if (call(c, "GET", path, NULL, &doc) != EXIT_OK) {
            if (++failures >= WAIT_RETRIES) return EXIT_API;
            sleep_ms(1000);
            continue;
        }
        failures = 0;
        const char *status = str_or(doc, "status", "?");
        if (strcmp(status, last) != 0) {
            fprintf(c->err, "%s: %s\n", id, status);
            snprintf(last, sizeof(last), "%s", status);
        }
        if (!is_active(status)) {
            *record = doc;
            return EXIT_OK;
        }
        json_decref(doc);
        sleep_ms(1000);
    }
}

static int print_report(xcli *c, const char *id, int as_json)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s/report?format=json", id);
    json_t *report = NULL;
    int rc = call(c, "GET", path, NULL, &report);
    if (rc != EXIT_OK) return rc;
    if (as_json) {
        print_json(c, report);
    } else {
        char *md = kg_experiment_report_md(report);
        fputs(md ? md : "(out of memory)\n", c->out);
        free(md);
    }
    json_decref(report);
    return EXIT_OK;
}

/* Exit code of a finished experiment: did it complete with every checkable expectation met? */
static int outcome(const json_t *record)
{
    if (strcmp(str_or(record, "status", "?"), "completed") != 0) return EXIT_NOT_MET;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(record, "expectations"), i, e)
    {
        if (strcmp(str_or(e, "result", ""), "fail") == 0) return EXIT_NOT_MET;
    }
    return EXIT_OK;
}

static int cmd_run(xcli *c)
{
    if (c->given & ~(unsigned)OPT_WAIT) return usage_error(c, "run: unexpected option", NULL);
    if (c->n_pos != 2) return usage_error(c, "run: expected exactly one drill file", NULL);
    json_t *drill = load_drill(c, c->pos[1]);
    if (!drill) return EXIT_API;
    json_t *created = NULL;
    int rc = call(c, "POST", "/v1/experiments", drill, &created);
    json_decref(drill);
    if (rc != EXIT_OK) return rc;
    char id[80];
    snprintf(id, sizeof(id), "%s", str_or(created, "id", "?"));
    if (c->json && !c->wait)
        print_json(c, created);
    else
        fprintf(c->out, "%s\n", id);
    fprintf(c->err, "experiment %s (%s) started on %s: baseline %s, then %s of faults\n", id,
            str_or(created, "name", "?"), str_or(created, "vcluster", "?"),
            str_or(json_object_get(created, "drill"), "baseline", "?"),
            str_or(json_object_get(created, "drill"), "duration", "?"));
    json_decref(created);
    if (!c->wait) return EXIT_OK;
    json_t *record = NULL;
    rc = wait_for_end(c, id, &record);
    if (rc != EXIT_OK) return rc;
    rc = print_report(c, id, c->json);
    int result = rc == EXIT_OK ? outcome(record) : rc;
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
    if (c->given || c->n_pos != 1) return usage_error(c, "list takes no arguments", NULL);
    json_t *reply = NULL;
    int rc = call(c, "GET", "/v1/experiments", NULL, &reply);
    if (rc != EXIT_OK) return rc;
    if (c->json) {
        print_json(c, reply);
        json_decref(reply);
        return EXIT_OK;
    }
    json_t *list = json_object_get(reply, "experiments");
    if (json_array_size(list) == 0)
        fprintf(c->out, "(no experiments)\n");
    else
        fprintf(c->out, "%-24s %-12s %-12s %-25s %-18s %s\n", "ID", "STATUS", "VCLUSTER", "CREATED",
                "EXPECTATIONS", "NAME");
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        char counts[64];
        expectation_counts(json_object_get(x, "expectations"), counts, sizeof(counts));
        fprintf(c->out, "%-24s %-12s %-12s %-25s %-18s %s\n", str_or(x, "id", "?"),
                str_or(x, "status", "?"), str_or(x, "vcluster", "?"), str_or(x, "created_at", "?"),
                counts, str_or(x, "name", "?"));
    }
    json_decref(reply);
    return EXIT_OK;
}

static void print_measure(xcli *c, const char *label, const json_t *rec)
{
    if (!json_is_object(rec)) return;
    fprintf(c->out,
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
    fprintf(c->out, "%s  %s\n", str_or(x, "id", "?"), str_or(x, "name", "?"));
    fprintf(c->out, "status:        %s", str_or(x, "status", "?"));
    const char *reason = str_or(x, "end_reason", NULL);
    fprintf(c->out, "%s%s\n", reason ? " — " : "", reason ? reason : "");
    fprintf(c->out, "vcluster:      %s\n", str_or(x, "vcluster", "?"));
    fprintf(c->out, "started by:    %s at %s\n", str_or(x, "created_by", "?"),
            str_or(x, "created_at", "?"));
    fprintf(c->out, "injection:     %s .. %s\n", str_or(x, "injection_started_at", "-"),
            str_or(x, "ended_at", "-"));
    print_measure(c, "baseline:", json_object_get(x, "baseline"));
    const json_t *live = json_object_get(x, "live");
    print_measure(c, "so far:", json_object_get(live, "during_so_far"));
    if (!live) print_measure(c, "during:", json_object_get(x, "during"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(x, "expectations"), i, e)
    {
        fprintf(c->out, "  [%s] %s: observed %s\n", str_or(e, "result", "?"),
                str_or(e, "expected", "?"), str_or(e, "observed", "-"));
    }
}

static int with_id(xcli *c, const char *cmd, unsigned allowed)
{
    if (c->given & ~allowed) return usage_error(c, "%s: unexpected option", cmd);
    if (c->n_pos != 2) return usage_error(c, "%s: expected exactly one experiment ID", cmd);
    if (!valid_id(c->pos[1])) return usage_error(c, "invalid experiment id \"%s\"", c->pos[1]);
    return -1;
}

static int cmd_status(xcli *c)
{
    int rc = with_id(c, "status", 0);
    if (rc >= 0) return rc;
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s", c->pos[1]);
    json_t *x = NULL;
    if ((rc = call(c, "GET", path, NULL, &x)) != EXIT_OK) return rc;
    if (c->json)
        print_json(c, x);
    else
        print_status(c, x);
    json_decref(x);
    return EXIT_OK;
}

static int cmd_stop(xcli *c)
{
    int rc = with_id(c, "stop", 0);
    if (rc >= 0) return rc;
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s/stop", c->pos[1]);
    json_t *x = NULL;
    if ((rc = call(c, "POST", path, NULL, &x)) != EXIT_OK) return rc;
    if (c->json)
        print_json(c, x);
    else
        fprintf(c->out, "%s: %s (%s); its chaos rules are removed\n", c->pos[1],
                str_or(x, "status", "?"), str_or(x, "end_reason", "-"));
    json_decref(x);
    return EXIT_OK;
}

static int cmd_report(xcli *c)
{
    int rc = with_id(c, "report", OPT_FORMAT);
    if (rc >= 0) return rc;
    const char *format = c->format ? c->format : (c->json ? "json" : "md");
    if (strcmp(format, "md") != 0 && strcmp(format, "json") != 0)
        return usage_error(c, "--format must be md or json, not \"%s\"", format);
    return print_report(c, c->pos[1], strcmp(format, "json") == 0);
}

static int cmd_annotate(xcli *c)
{
    int rc = with_id(c, "annotate", OPT_REMEDIATION | OPT_RETEST | OPT_RETEST_RESULT);
    if (rc >= 0) return rc;
    if (!c->given)
        return usage_error(c, "annotate: give --remediation, --retest and/or --retest-result",
                           NULL);
    if (c->retest && !valid_id(c->retest))
        return usage_error(c, "invalid experiment id \"%s\" for --retest", c->retest);
    json_t *patch = json_object();
    if (c->remediation) json_object_set_new(patch, "remediation", json_string(c->remediation));
    if (c->retest || c->retest_result) {
        json_t *retest = json_object();
        if (c->retest) json_object_set_new(retest, "experiment", json_string(c->retest));
        if (c->retest_result) json_object_set_new(retest, "result", json_string(c->retest_result));
        json_object_set_new(patch, "retest", retest);
    }
    char path[160];
    snprintf(path, sizeof(path), "/v1/experiments/%s", c->pos[1]);
    json_t *x = NULL;
    rc = call(c, "PATCH", path, patch, &x);
    json_decref(patch);
    if (rc != EXIT_OK) return rc;
    if (c->json)
        print_json(c, x);
    else
        fprintf(c->out, "%s: annotated\n", c->pos[1]);
    json_decref(x);
    return EXIT_OK;
}

/* ---------------------------------------------------------------- command line */

typedef struct value_option {
    const char *name;
    unsigned flag;
    size_t offset; /* where the value goes; 0 with flag 0: --admin or ignored */
} value_option;

static const value_option value_options[] = {
    {"--admin", 0, 0},
    {"--token", 0, offsetof(xcli, token)},
    {"--format", OPT_FORMAT, offsetof(xcli, format)},
    {"--remediation", OPT_REMEDIATION, offsetof(xcli, remediation)},
    {"--retest-result", OPT_RETEST_RESULT, offsetof(xcli, retest_result)},
    {"--retest", OPT_RETEST, offsetof(xcli, retest)},
    {"--config", 0, 0},
    {"-c", 0, 0},
};

static const value_option *find_value_option(const char *arg)
{
    for (size_t i = 0; i < sizeof(value_options) / sizeof(value_options[0]); i++) {
        size_t n = strlen(value_options[i].name);
        if (strncmp(arg, value_options[i].name, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
            return &value_options[i];
    }
    return NULL;
}

static void set_url(xcli *c, const char *url)
{
    snprintf(c->url, sizeof(c->url), "%s%s", strstr(url, "://") ? "" : "http://", url);
}

static void take_value(xcli *c, const value_option *opt, const char *value)
{
    if (strcmp(opt->name, "--admin") == 0)
        set_url(c, value);
    else if (opt->offset)
        *(const char **)((char *)c + opt->offset) = value;
    c->given |= opt->flag;
}

/* Returns -1 to go on, or an exit code (help printed, usage error). */
static int parse_args(xcli *c, int argc, char **argv)
{
    int start = argc > 0 && strcmp(argv[0], "experiment") == 0 ? 1 : 0;
    for (int i = start; i < argc; i++) {
        const char *arg = argv[i];
        const value_option *opt = find_value_option(arg);
        if (opt) {
            size_t n = strlen(opt->name);
            const char *value = arg[n] == '=' ? arg + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!value) return usage_error(c, "option %s needs a value", opt->name);
            take_value(c, opt, value);
        } else if (strcmp(arg, "--json") == 0) {
            c->json = 1;
        } else if (strcmp(arg, "--wait") == 0) {
            c->wait = 1;
            c->given |= OPT_WAIT;
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

static void apply_defaults(xcli *c, const char *default_url, const char *default_token)
{
    const char *env_url = getenv("KGATE_ADMIN_URL");
    const char *env_token = getenv("KGATE_ADMIN_TOKEN");
    if (!c->url[0]) {
        const char *url = env_url && *env_url ? env_url : default_url;
        set_url(c, url && *url ? url : "127.0.0.1:19644");
    }
    if (!c->token) c->token = env_token && *env_token ? env_token : default_token;
}

int kg_experiment_cli_run(int argc, char **argv, const char *admin_url, const char *token,
                          FILE *out, FILE *err)
{
    xcli c = {.out = out, .err = err};
    int rc = parse_args(&c, argc, argv);
    if (rc >= 0) return rc;
    apply_defaults(&c, admin_url, token);
    if (c.n_pos == 0) return usage_error(&c, "missing command", NULL);
    const char *cmd = c.pos[0];
    if (strcmp(cmd, "help") == 0) {
        fputs(usage_text, out);
        return EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0) return cmd_run(&c);
    if (strcmp(cmd, "list") == 0) return cmd_list(&c);
    if (strcmp(cmd, "status") == 0) return cmd_status(&c);
    if (strcmp(cmd, "stop") == 0) return cmd_stop(&c);
    if (strcmp(cmd, "report") == 0) return cmd_report(&c);
    if (strcmp(cmd, "annotate") == 0) return cmd_annotate(&c);
    return usage_error(&c, "unknown command \"%s\"", cmd);
}

int kg_experiment_cli_main(int argc, char **argv, const char *admin_url, const char *token)
{
    int rc = kg_experiment_cli_run(argc, argv, admin_url, token, stdout, stderr);
    fflush(stdout);
    return rc;
}
