/* kg_cli_session — see kg_cli_session.h. */
#include "admin/kg_cli_session.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/kg_config.h"

#define FALLBACK_ADMIN_URL "127.0.0.1:19644"
#define MAX_RESPONSE (16 * 1024 * 1024)

/* ---------------------------------------------------------------- HTTP */

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

static char default_cacert[1024];

void kg_cli_set_default_cacert(const char *path)
{
    snprintf(default_cacert, sizeof(default_cacert), "%s", path ? path : "");
}

const char *kg_cli_default_cacert(void)
{
    const char *env = getenv("KGATE_ADMIN_CACERT");
    if (env && *env) return env;
    return default_cacert[0] ? default_cacert : NULL;
}

int kg_cli_request(const char *base_url, const char *token, const char *method, const char *path,
                   json_t *body, long *status, json_t **reply, char *errbuf, size_t errlen)
{
    return kg_cli_request_ca(base_url, token, NULL, method, path, body, status, reply, errbuf,
                             errlen);
}

int kg_cli_request_ca(const char *base_url, const char *token, const char *cacert,
                      const char *method, const char *path, json_t *body, long *status,
                      json_t **reply, char *errbuf, size_t errlen)
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
    /* Only http and https: a URL given by mistake never makes curl speak another protocol. */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (!cacert) cacert = kg_cli_default_cacert();
    if (cacert) curl_easy_setopt(curl, CURLOPT_CAINFO, cacert);

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

/* ---------------------------------------------------------------- calls and output */

static int is_success(long status)
{
    return status >= 200 && status < 300;
}

/* Why a call failed although a response arrived: an error status, or a 2xx without JSON. */
static void report_reply_error(const kg_cli_session *s, long status, json_t *doc)
{
    if (!is_success(status) && doc && s->json && s->syntax->echo_json_errors)
        kg_cli_print_json(s, doc);
    fprintf(s->err, "error: %s (HTTP %ld)\n",
            is_success(status) ? "the admin API sent a reply that is not JSON"
                               : kg_cli_error_message(doc, status),
            status);
}

int kg_cli_session_call(kg_cli_session *s, const char *method, const char *path, json_t *body,
                        json_t **reply)
{
    long status = 0;
    json_t *doc = NULL;
    char errbuf[512];
    if (reply) *reply = NULL;
    if (kg_cli_request_ca(s->url, s->token, s->cacert, method, path, body, &status, &doc, errbuf,
                          sizeof(errbuf)) != 0) {
        fprintf(s->err, "error: %s\n", errbuf);
        return KG_CLI_EXIT_API;
    }
    if (is_success(status) && !reply) {
        json_decref(doc);
        return KG_CLI_EXIT_OK;
    }
    if (is_success(status) && doc) {
        *reply = doc;
        return KG_CLI_EXIT_OK;
    }
    report_reply_error(s, status, doc);
    json_decref(doc);
    return KG_CLI_EXIT_API;
}

void kg_cli_print_json(const kg_cli_session *s, const json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(2));
    fprintf(s->out, "%s\n", text ? text : "null");
    free(text);
}

const char *kg_cli_str(const json_t *obj, const char *key, const char *fallback)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : fallback;
}

int kg_cli_valid_segment(const char *s)
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

int kg_cli_usage_error(const kg_cli_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(s->err, "%s: ", s->syntax->name);
    vfprintf(s->err, fmt, ap);
    fprintf(s->err, "\n%s", s->syntax->usage);
    va_end(ap);
    return KG_CLI_EXIT_USAGE;
}

static const char *command_names(const kg_cli_session *s)
{
    return s->syntax->command_names ? s->syntax->command_names : "";
}

int kg_cli_unknown_command(const kg_cli_session *s)
{
    return kg_cli_usage_error(s, "unknown command \"%s\"%s", s->args[0], command_names(s));
}

static int print_usage(const kg_cli_session *s)
{
    fputs(s->syntax->usage, s->out);
    return KG_CLI_EXIT_OK;
}

/* ---------------------------------------------------------------- command line */

void kg_cli_session_init(kg_cli_session *s, const kg_cli_syntax *syntax, const char *default_url,
                         const char *default_token, FILE *out, FILE *err)
{
    *s = (kg_cli_session){.syntax = syntax,
                          .out = out,
                          .err = err,
                          .default_url = default_url,
                          .default_token = default_token};
}

static void set_url(kg_cli_session *s, const char *url)
{
    snprintf(s->url, sizeof(s->url), "%s%s", strstr(url, "://") ? "" : "http://", url);
}

/* ARGV[*I] as value option NAME ("NAME VALUE" or "NAME=VALUE"): KG_CLI_NOT_MINE when it is
 * another argument, a usage error when the value is missing, else KG_CLI_GO_ON with *VALUE set
 * and *I on the last word the option used. */
static int take_value_option(const kg_cli_session *s, int argc, char **argv, int *i,
                             const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '=')) return KG_CLI_NOT_MINE;
    if (arg[n] == '=')
        *value = arg + n + 1;
    else if (*i + 1 < argc)
        *value = argv[++*i];
    else
        return kg_cli_usage_error(s, "option %s needs a value", name);
    return KG_CLI_GO_ON;
}

/* The options every client has. */
static int take_common_option(kg_cli_session *s, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "--json") == 0) {
        s->json = 1;
        return KG_CLI_GO_ON;
    }
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return print_usage(s);
    const char *admin = NULL, *ignored = NULL;
    int rc = take_value_option(s, argc, argv, i, "--admin", &admin);
    if (rc == KG_CLI_GO_ON) set_url(s, admin);
    if (rc == KG_CLI_NOT_MINE) rc = take_value_option(s, argc, argv, i, "--token", &s->token);
    if (rc == KG_CLI_NOT_MINE) rc = take_value_option(s, argc, argv, i, "--cacert", &s->cacert);
    /* main.c read the defaults from the config file; here it only has to be skipped. */
    if (rc == KG_CLI_NOT_MINE) rc = take_value_option(s, argc, argv, i, "--config", &ignored);
    if (rc == KG_CLI_NOT_MINE) rc = take_value_option(s, argc, argv, i, "-c", &ignored);
    return rc;
}

static int take_table_option(kg_cli_session *s, const kg_cli_option *options, int argc, char **argv,
                             int *i)
{
    for (const kg_cli_option *o = options; o && o->name; o++) {
        int rc;
        if (o->value)
            rc = take_value_option(s, argc, argv, i, o->name, o->value);
        else
            rc = strcmp(argv[*i], o->name) == 0 ? KG_CLI_GO_ON : KG_CLI_NOT_MINE;
        if (rc == KG_CLI_GO_ON) s->given |= o->flag;
        if (rc != KG_CLI_NOT_MINE) return rc;
    }
    return KG_CLI_NOT_MINE;
}

static int take_positional(kg_cli_session *s, const char *arg)
{
    if (arg[0] == '-' && arg[1] != '\0') return kg_cli_usage_error(s, "unknown option %s", arg);
    if (s->n_args >= s->syntax->max_args || s->n_args >= KG_CLI_MAX_ARGS)
        return kg_cli_usage_error(s, "too many arguments");
    s->args[s->n_args++] = arg;
    return KG_CLI_GO_ON;
}

static const char *nonempty_or(const char *s, const char *fallback)
{
    return s && *s ? s : fallback;
}

static void fill_defaults(kg_cli_session *s)
{
    if (!s->url[0])
        set_url(s, nonempty_or(nonempty_or(getenv("KGATE_ADMIN_URL"), s->default_url),
                               FALLBACK_ADMIN_URL));
    if (!s->token) s->token = nonempty_or(getenv("KGATE_ADMIN_TOKEN"), s->default_token);
}

int kg_cli_session_parse(kg_cli_session *s, int argc, char **argv, const kg_cli_option *options,
                         kg_cli_other_option_fn other, void *cli)
{
    /* main.c passes "chaos list ..." as it was typed; tests and embedders may start with the
     * subcommand. */
    const char *word = s->syntax->word;
    int first = argc > 0 && word && strcmp(argv[0], word) == 0 ? 1 : 0;
    for (int i = first; i < argc; i++) {
        int rc = take_common_option(s, argc, argv, &i);
        if (rc == KG_CLI_NOT_MINE) rc = take_table_option(s, options, argc, argv, &i);
        if (rc == KG_CLI_NOT_MINE && other) rc = other(cli, argc, argv, &i);
        if (rc == KG_CLI_NOT_MINE) rc = take_positional(s, argv[i]);
        if (rc != KG_CLI_GO_ON) return rc;
    }
    fill_defaults(s);
    if (s->n_args == 0) return kg_cli_usage_error(s, "missing command%s", command_names(s));
    if (strcmp(s->args[0], "help") == 0) return print_usage(s);
    return KG_CLI_GO_ON;
}

int kg_cli_run_on_stdio(kg_cli_run_fn run, int argc, char **argv, const char *default_url,
                        const char *default_token)
{
    int rc = run(argc, argv, default_url, default_token, stdout, stderr);
    fflush(stdout);
    return rc;
}

/* ---------------------------------------------------------------- documents */

#define MAX_DOCUMENT_BYTES (1024 * 1024)

static char *read_document(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_DOCUMENT_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_DOCUMENT_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > MAX_DOCUMENT_BYTES;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read %s%s", path,
                 n > MAX_DOCUMENT_BYTES ? ": larger than 1 MiB" : "");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

json_t *kg_cli_load_document(const kg_cli_session *s, const char *path)
{
    char err[512];
    size_t len;
    char *text = read_document(path, &len, err, sizeof(err));
    if (!text) {
        fprintf(s->err, "error: %s\n", err);
        return NULL;
    }
    json_t *doc = kg_config_yaml_to_json(text, len, err, sizeof(err));
    free(text);
    if (!doc) fprintf(s->err, "error: %s: %s\n", path, err);
    return doc;
}
