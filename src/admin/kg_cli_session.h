/* kg_cli_session — what the admin-API command-line clients share (kg_cli: status, failover,
 * failback, audit, reload; kg_chaos_cli; kg_experiment_cli): the command line they have in
 * common, the HTTP call to the admin API, and how errors and JSON are printed. Each client keeps
 * only its own commands and options.
 *
 * Common command line, options anywhere among the arguments:
 *   --admin URL     admin API base URL ("host:port" gets "http://" prepended)
 *   --token TOKEN   bearer token
 *   --cacert FILE   CA certificate(s) (PEM) to verify an https:// admin API with, instead of the
 *                   system's trust store
 *   --json          print the API's JSON instead of human-readable text
 *   -c/--config F   accepted and ignored (main.c reads the defaults from it)
 *   -h/--help, or the command "help": print the usage, exit 0
 * Value options take "--opt VALUE" or "--opt=VALUE".
 * Precedence: options, then $KGATE_ADMIN_URL / $KGATE_ADMIN_TOKEN / $KGATE_ADMIN_CACERT, then the
 * defaults passed in (main.c passes the ones of the config file; the CA through
 * kg_cli_set_default_cacert), then http://127.0.0.1:19644.
 * Exit codes: 0 ok, 1 API or transport error (message on stderr), 2 usage error.
 */
#ifndef KG_CLI_SESSION_H
#define KG_CLI_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { KG_CLI_EXIT_OK = 0, KG_CLI_EXIT_API = 1, KG_CLI_EXIT_USAGE = 2 };

/* Results of parsing steps besides exit codes: keep going / the argument is someone else's. */
#define KG_CLI_GO_ON (-1)
#define KG_CLI_NOT_MINE (-2)

#define KG_CLI_MAX_ARGS 8

/* The end of every client's usage text: the common options. */
#define KG_CLI_OPTIONS_USAGE                                                                       \
    "options:\n"                                                                                   \
    "  --admin URL    admin API (default from the config file, or $KGATE_ADMIN_URL)\n"             \
    "  --token TOKEN  bearer token (default from the config file, or $KGATE_ADMIN_TOKEN)\n"        \
    "  --cacert FILE  CA (PEM) to verify an https admin API (default admin.tls.ca_file)\n"         \
    "  --json         print the API's JSON\n"

/* What tells one client's command line apart; a static constant per client. */
typedef struct kg_cli_syntax {
    const char *name;          /* "kgate chaos": starts every usage error */
    const char *word;          /* "chaos": skipped when ARGV starts with it; NULL: none */
    const char *usage;         /* printed for --help and after every usage error */
    int max_args;              /* positional arguments, command included (<= KG_CLI_MAX_ARGS) */
    const char *command_names; /* " (add, list, rm)" after "missing/unknown command"; NULL */
    /* With --json, an API error's JSON document goes to OUT as well, for scripts. Off for
     * experiments: `run --wait --json` polls, and a failed poll must not land in the report. */
    int echo_json_errors;
} kg_cli_syntax;

/* One run of a client: where it prints, the API it talks to, the parsed command line. Clients
 * embed it in their own state. */
typedef struct kg_cli_session {
    const kg_cli_syntax *syntax;
    FILE *out, *err;
    const char *default_url, *default_token; /* the caller's, used when nothing else is given */
    char url[1024];
    const char *token;
    const char *cacert; /* NULL: the process default (kg_cli_default_cacert) */
    int json;
    const char *args[KG_CLI_MAX_ARGS]; /* positional arguments; args[0] is the command */
    int n_args;
    unsigned given; /* flags of the client's own options seen, to refuse misplaced ones */
} kg_cli_session;

/* One of a client's own options: "--to VALUE" / "--to=VALUE", or a switch like "--force". */
typedef struct kg_cli_option {
    const char *name;   /* with its dashes */
    unsigned flag;      /* set in kg_cli_session.given when the option is on the line */
    const char **value; /* where its value goes; NULL: a switch, which takes none */
} kg_cli_option;

/* For options no table can list (chaos: any --some-name VALUE is a rule field). Called with
 * ARGV[*I]; returns KG_CLI_GO_ON when it took it (and moved *I past its value), KG_CLI_NOT_MINE
 * when not, or an exit code. */
typedef int (*kg_cli_other_option_fn)(void *cli, int argc, char **argv, int *i);

/* A client's kg_*_cli_run. */
typedef int (*kg_cli_run_fn)(int argc, char **argv, const char *default_url,
                             const char *default_token, FILE *out, FILE *err);

void kg_cli_session_init(kg_cli_session *s, const kg_cli_syntax *syntax, const char *default_url,
                         const char *default_token, FILE *out, FILE *err);

/* Reads ARGV: the common options, the client's OPTIONS (a table ended by a NULL name; NULL: none)
 * and, for the rest of the options, OTHER (NULL: none) with CLI; then the positional arguments.
 * Fills what the line left open from the environment and the defaults. Returns KG_CLI_GO_ON when
 * s->args[0] is a command to run, else the exit code (help printed, usage error). */
int kg_cli_session_parse(kg_cli_session *s, int argc, char **argv, const kg_cli_option *options,
                         kg_cli_other_option_fn other, void *cli);

/* Prints "NAME: MESSAGE" and the usage on ERR; returns KG_CLI_EXIT_USAGE. */
int kg_cli_usage_error(const kg_cli_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usage error for a command s->args[0] the client does not have. */
int kg_cli_unknown_command(const kg_cli_session *s);

/* One API call. On a 2xx reply returns KG_CLI_EXIT_OK with *REPLY = its JSON body (the caller
 * frees it); a 2xx reply that is not JSON is an error. REPLY NULL: no body is expected (204), any
 * 2xx is success. Otherwise prints why on ERR and returns KG_CLI_EXIT_API. */
int kg_cli_session_call(kg_cli_session *s, const char *method, const char *path, json_t *body,
                        json_t **reply);

/* A YAML or JSON file the user gave (a drill, an experiment), at most 1 MiB, as JSON (new
 * reference); NULL with the reason printed on ERR. */
json_t *kg_cli_load_document(const kg_cli_session *s, const char *path);

/* VALUE as indented JSON on OUT. */
void kg_cli_print_json(const kg_cli_session *s, const json_t *value);

/* The non-empty string field KEY of OBJ, or FALLBACK. */
const char *kg_cli_str(const json_t *obj, const char *key, const char *fallback);

/* Whether S may go into a URL path as is: names and ids made of [A-Za-z0-9._-]. User input that
 * would need escaping is refused rather than escaped, since no valid name needs it. */
int kg_cli_valid_segment(const char *s);

/* RUN on stdout and stderr: a client's kg_*_cli_main. */
int kg_cli_run_on_stdio(kg_cli_run_fn run, int argc, char **argv, const char *default_url,
                        const char *default_token);

/* The CA file every admin API call of this process verifies https:// URLs with when the command
 * line gives none: PATH (copied; NULL or "" = none), unless $KGATE_ADMIN_CACERT is set, which
 * wins. main.c sets it from the config file's admin.tls.ca_file. Without any, https:// uses the
 * system's trust store. */
void kg_cli_set_default_cacert(const char *path);
/* That default (after $KGATE_ADMIN_CACERT), or NULL. */
const char *kg_cli_default_cacert(void);

/* kg_cli_request with CACERT (NULL: kg_cli_default_cacert()) for https:// URLs. */
int kg_cli_request_ca(const char *base_url, const char *token, const char *cacert,
                      const char *method, const char *path, json_t *body, long *status,
                      json_t **reply, char *errbuf, size_t errlen);

/* One admin API call, for the clients and tests. BODY (borrowed) is sent as JSON when not NULL.
 * Returns 0 when an HTTP response arrived (*STATUS set, *REPLY = parsed JSON body or NULL), -1
 * on transport failure with a message in ERRBUF. */
int kg_cli_request(const char *base_url, const char *token, const char *method, const char *path,
                   json_t *body, long *status, json_t **reply, char *errbuf, size_t errlen);

/* The "error" message of an API reply, or a generic one for STATUS. */
const char *kg_cli_error_message(json_t *reply, long status);

#endif
