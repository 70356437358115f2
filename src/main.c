/* kgate — command line entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_acl_cli.h"
#include "admin/kg_chaos_cli.h"
#include "admin/kg_token_cli.h"
#include "admin/kg_users_cli.h"
#include "admin/kg_cli.h"
#include "admin/kg_admin_gateway.h"
#include "admin/kg_drill_cli.h"
#include "admin/kg_experiment_cli.h"
#include "chaos/kg_chaos.h"
#include "config/kg_config.h"
#include "route/kg_gateway.h"
#include "security/kg_acl.h"
#include "state/kg_store.h"
#include "tools/kg_demo.h"
#include "tools/kg_devcluster.h"
#include "util/kg_log.h"

#define KGATE_DEFAULT_CONFIG "kgate.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "kgate " KGATE_VERSION " — Kafka disaster-recovery gateway\n"
            "\n"
            "Usage: kgate <command> [options]\n"
            "\n"
            "Gateway:\n"
            "  serve -c FILE          run the gateway\n"
            "  check -c FILE [--json] validate a configuration file and print every error\n"
            "  version [--json]       print the version\n"
            "\n"
            "State store (see docs/fleet.md):\n"
            "  migrate [--state LOCATION | -c FILE] [--json]\n"
            "                         apply the schema migrations and print the version\n"
            "  migrate-state --from LOCATION --to LOCATION [--force] [--json]\n"
            "                         copy a state (e.g. SQLite) into another (e.g. PostgreSQL)\n"
            "  LOCATION: a SQLite file path or postgres://USER@HOST[:PORT]/DB[?...]\n"
            "\n"
            "Operations (talk to a running kgate's admin API):\n"
            "  status                 virtual clusters, active sides, cluster health\n"
            "  failover VC [--to CLUSTER] [--reason TEXT] [--force]\n"
            "  failback VC [--reason TEXT]\n"
            "  parity VC [--to CLUSTER]\n"
            "                         what a switch would find on the other side (exit 3 on "
            "differences)\n"
            "  audit [list|verify]    the tamper-evident audit log\n"
            "  chaos add TYPE [scope and fault options] | chaos list | chaos rm ID\n"
            "                         fault injection rules (see docs/chaos.md)\n"
            "  experiment run FILE [--wait] | list | status ID | stop ID | report ID [--format "
            "md|json]\n"
            "             | annotate ID --remediation TEXT --retest ID --retest-result TEXT\n"
            "                         chaos drills with abort criteria and a six-field report\n"
            "  drill run FILE [--format md|json] [--out F] | drill list | drill report ID\n"
            "                         a measured failover drill: RTO, RPO, duplicates per client\n"
            "  reload                 re-read the config file's chaos rules (same as SIGHUP)\n"
            "  drain [--within 60s] | drain status | drain cancel\n"
            "                         stop serving without cutting a request (docs/fleet.md)\n"
            "  users add NAME --mechanism M (--password-file F | --password-stdin)\n"
            "        | passwd NAME ... | rm NAME | list\n"
            "                         SASL users of auth: gateway virtual clusters (see "
            "docs/security.md)\n"
            "  acl add (--allow P | --deny P) --operation OPS (--topic T | --group G | --cluster\n"
            "          | --transactional-id T) [--pattern literal|prefixed] [--host IP]\n"
            "    | rm [same options] | list [--principal P] [...]\n"
            "                         ACLs of acls: enabled virtual clusters (see "
            "docs/security.md)\n"
            "  token add NAME --role viewer|operator|admin | token list | token rm NAME\n"
            "                         admin API tokens with roles (see docs/security.md)\n"
            "  common options: -c FILE (admin address, token and CA from the config),\n"
            "                  --admin URL, --token TOKEN, --cacert FILE, --json\n"
            "\n"
            "Tools:\n"
            "  dev-cluster [--brokers N] [--topic NAME:PARTITIONS]...\n"
            "                         an embedded mock Kafka cluster for trying kgate\n"
            "  demo                   two embedded clusters, kgate in front, a failover and back\n"
            "\n"
            "Options for serve/check: -c FILE (default " KGATE_DEFAULT_CONFIG
            "), --log-level LEVEL\n");
}

/* Finds "-c FILE" / "--config FILE" and removes it from argv; returns NULL when absent. */
static const char *take_config_arg(int *argc, char **argv)
{
    for (int i = 1; i < *argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < *argc) {
            const char *path = argv[i + 1];
            memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(*argv));
            *argc -= 2;
            argv[*argc] = NULL;
            return path;
        }
    }
    return NULL;
}

static const char *take_option(int *argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < *argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            const char *v = argv[i + 1];
            memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 2) * sizeof(*argv));
            *argc -= 2;
            argv[*argc] = NULL;
            return v;
        }
    }
    return NULL;
}

static int take_flag(int *argc, char **argv, const char *name);

/* Where configuration errors go: stderr, or `check --json`'s buffer (its report lists them). */
static FILE *config_errors;

static FILE *diag(void)
{
    return config_errors ? config_errors : stderr;
}

static kg_config *load_config(const char *path)
{
    int n_errors = 0;
    kg_config *cfg = kg_config_load(path, diag(), &n_errors);
    if (!cfg) fprintf(diag(), "%s: %d error%s\n", path, n_errors, n_errors == 1 ? "" : "s");
    return cfg;
}

/* The config file's chaos rules go through the same validation as the admin API's. */
static int check_chaos_rules(const kg_config *cfg)
{
    if (!cfg->chaos_rules) return 0;
    kg_log_set_level(KG_LOG_WARN); /* a scratch registry: its "rule added" lines are noise */
    kg_chaos *ch = kg_chaos_new(NULL, NULL);
    int bad = 0;
    for (size_t i = 0; ch && i < json_array_size(cfg->chaos_rules); i++) {
        char err[512];
        json_t *rule = json_deep_copy(json_array_get(cfg->chaos_rules, i));
        if (kg_chaos_add(ch, rule, "kgate check", NULL, err, sizeof(err)) < 0) {
            fprintf(diag(), "%s:%d: chaos rule %zu: %s\n", cfg->path,
                    cfg->chaos_rule_lines ? cfg->chaos_rule_lines[i] : 0, i + 1, err);
            bad++;
        }
        json_decref(rule);
    }
    kg_chaos_free(ch);
    return bad;
}

/* The config file's ACL bindings go through the same checks as the admin API's. */
static int check_acl_bindings(const kg_config *cfg)
{
    int bad = 0;
    for (size_t i = 0; i < json_array_size(cfg->acl_bindings); i++) {
        char err[512];
        kg_acl_binding b[KG_ACL_N_OPS];
        if (kg_acl_bindings_from_json(json_array_get(cfg->acl_bindings, i), b, err, sizeof(err)) <
            0) {
            fprintf(diag(), "%s:%d: acls[%zu]: %s\n", cfg->path,
                    cfg->acl_binding_lines ? cfg->acl_binding_lines[i] : 0, i, err);
            bad++;
        }
    }
    return bad;
}

/* 0 when the file at PATH loads and its chaos rules and ACL bindings pass, else 1 with the
 * errors written to diag(). Fills *CLUSTERS and *VCLUSTERS. */
static int check_config(const char *path, int *clusters, int *vclusters)
{
    kg_config *cfg = load_config(path);
    if (!cfg) return 1;
    int bad_rules = check_chaos_rules(cfg) + check_acl_bindings(cfg);
    if (bad_rules)
        fprintf(diag(), "%s: %d error%s\n", cfg->path, bad_rules, bad_rules == 1 ? "" : "s");
    *clusters = cfg->n_clusters;
    *vclusters = cfg->n_vclusters;
    kg_config_free(cfg);
    return bad_rules ? 1 : 0;
}

/* One JSON document on stdout (a report for scripts: --json). */
static void print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text) printf("%s\n", text);
    free(text);
    json_decref(doc);
}

/* check --json: {"path", "ok", "clusters", "vclusters"} or {"path", "ok": false, "errors":
 * [the lines the text form prints]}. */
static int check_json(const char *path)
{
    char *errors = NULL;
    size_t len = 0;
    config_errors = open_memstream(&errors, &len);
    if (!config_errors) return 1;
    int clusters = 0, vclusters = 0;
    int rc = check_config(path, &clusters, &vclusters);
    fclose(config_errors);
    config_errors = NULL;
    json_t *doc = json_pack("{s:s, s:b}", "path", path, "ok", rc == 0);
    if (rc == 0) {
        json_object_set_new(doc, "clusters", json_integer(clusters));
        json_object_set_new(doc, "vclusters", json_integer(vclusters));
    } else {
        json_t *lines = json_array();
        for (char *line = strtok(errors ? errors : "", "\n"); line; line = strtok(NULL, "\n"))
            json_array_append_new(lines, json_string(line));
        json_object_set_new(doc, "errors", lines);
    }
    free(errors);
    print_json(doc);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    int json = take_flag(&argc, argv, "--json");
    const char *path = take_config_arg(&argc, argv);
    if (!path) path = KGATE_DEFAULT_CONFIG;
    if (json) return check_json(path);
    int clusters = 0, vclusters = 0;
    if (check_config(path, &clusters, &vclusters) != 0) return 1;
    printf("%s: ok (%d cluster%s, %d virtual cluster%s)\n", path, clusters,
           clusters == 1 ? "" : "s", vclusters, vclusters == 1 ? "" : "s");
    return 0;
}

static int apply_log_level(const char *name)
{
    enum kg_log_level level;
    if (kg_log_parse_level(name, &level) < 0) {
        fprintf(stderr, "kgate: unknown log level '%s' (debug, info, warn, error)\n", name);
        return -1;
    }
    kg_log_set_level(level);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *path = take_config_arg(&argc, argv);
    const char *level = take_option(&argc, argv, "--log-level");
    if (argc > 1) {
        fprintf(stderr, "kgate serve: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    kg_config *cfg = load_config(path ? path : KGATE_DEFAULT_CONFIG);
    if (!cfg) return 1;
    if (apply_log_level(level ? level : cfg->log_level) < 0) {
        kg_config_free(cfg);
        return 2;
    }
    enum kg_log_format format = KG_LOG_TEXT;
    kg_log_parse_format(cfg->log_format, &format); /* the config accepts text and json only */
    kg_log_set_format(format);
    /* The admin API is the gateway's front end: wired here, so route/ never includes admin/. */
    static const kg_gateway_frontend admin = {kg_admin_gateway_start, kg_admin_gateway_stop,
                                              kg_admin_gateway_reload,
                                              kg_admin_gateway_vclusters_changed};
    int rc = kg_gateway_serve(cfg, &admin);
    kg_config_free(cfg);
    return rc;
}

/* The state location and its timeouts: --state, else the config file's (-c or kgate.yaml). */
static int store_target(int *argc, char **argv, char *location, size_t len, kg_store_options *opts)
{
    const char *state = take_option(argc, argv, "--state");
    const char *path = take_config_arg(argc, argv);
    if (state) {
        snprintf(location, len, "%s", state);
        return 0;
    }
    kg_config *cfg = load_config(path ? path : KGATE_DEFAULT_CONFIG);
    if (!cfg) return -1;
    snprintf(location, len, "%s", cfg->state_path);
    opts->connect_timeout_ms = cfg->state_connect_timeout_ms;
    opts->statement_timeout_ms = cfg->state_statement_timeout_ms;
    kg_config_free(cfg);
    return 0;
}

/* kgate migrate: opening a store applies its migrations (under a lock: safe while instances
 * start); this runs only that, e.g. before a rolling upgrade. */
static int cmd_migrate(int argc, char **argv)
{
    char location[KG_PATH_MAX], where[KG_PATH_MAX], err[512];
    kg_store_options opts = KG_STORE_OPTIONS_DEFAULT;
    int json = take_flag(&argc, argv, "--json");
    if (store_target(&argc, argv, location, sizeof(location), &opts) != 0) return 2;
    if (argc > 1) {
        fprintf(stderr, "kgate migrate: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    kg_store_redact_location(location, where, sizeof(where));
    kg_store *store = kg_store_open_with(location, &opts, err, sizeof(err));
    if (!store) {
        fprintf(stderr, "kgate migrate: %s: %s\n", where, err);
        return 1;
    }
    if (json)
        print_json(json_pack("{s:s, s:s, s:i}", "state", where, "backend",
                             kg_store_backend_name(store), "schema_version",
                             kg_store_schema_version(store)));
    else
        printf("%s (%s): schema version %d\n", where, kg_store_backend_name(store),
               kg_store_schema_version(store));
    kg_store_close(store);
    return 0;
}

static int take_flag(int *argc, char **argv, const char *name)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof(*argv));
            argv[--*argc] = NULL;
            return 1;
        }
    }
    return 0;
}

static int is_url(const char *location)
{
    return strstr(location, "://") != NULL;
}

/* kgate migrate-state --from A --to B [--force]: one store's rows into another, the audit
 * chain verified on both sides. */
static int cmd_migrate_state(int argc, char **argv)
{
    const char *from = take_option(&argc, argv, "--from");
    const char *to = take_option(&argc, argv, "--to");
    int force = take_flag(&argc, argv, "--force");
    int json = take_flag(&argc, argv, "--json");
    if (!from || !to || argc > 1) {
        fprintf(stderr,
                "usage: kgate migrate-state --from LOCATION --to LOCATION [--force] [--json]\n");
        return 2;
    }
    char from_w[KG_PATH_MAX], to_w[KG_PATH_MAX], err[512];
    kg_store_redact_location(from, from_w, sizeof(from_w));
    kg_store_redact_location(to, to_w, sizeof(to_w));
    /* Opening a missing SQLite file would create an empty one: say it is missing instead. */
    const char *from_file = strncmp(from, "sqlite:", 7) == 0 ? from + 7 : from;
    if (!is_url(from) && access(from_file, R_OK) != 0) {
        fprintf(stderr, "kgate migrate-state: %s: no such state file\n", from_w);
        return 1;
    }
    kg_store *src = kg_store_open(from, err, sizeof(err));
    if (!src) {
        fprintf(stderr, "kgate migrate-state: source %s: %s\n", from_w, err);
        return 1;
    }
    kg_store *dst = kg_store_open(to, err, sizeof(err));
    if (!dst) {
        fprintf(stderr, "kgate migrate-state: target %s: %s\n", to_w, err);
        kg_store_close(src);
        return 1;
    }
    json_t *summary = NULL;
    int rc = kg_store_copy(src, dst, force, &summary, err, sizeof(err));
    if (rc == 0 && json) {
        print_json(json_pack("{s:s, s:s, s:s, s:s, s:O, s:b}", "from", from_w, "from_backend",
                             kg_store_backend_name(src), "to", to_w, "to_backend",
                             kg_store_backend_name(dst), "copied", summary, "audit_chain_verified",
                             1));
    } else if (rc == 0) {
        printf("copied %s (%s) -> %s (%s)\n", from_w, kg_store_backend_name(src), to_w,
               kg_store_backend_name(dst));
        const char *key;
        json_t *value;
        json_object_foreach(summary, key, value)
        {
            if (json_is_integer(value))
                printf("  %-14s %lld\n", key, (long long)json_integer_value(value));
            else
                printf("  %-14s %s\n", key, json_string_value(value));
        }
        printf("audit chain verified on both sides: same head\n");
    } else {
        fprintf(stderr, "kgate migrate-state: %s\n", err);
    }
    json_decref(summary);
    kg_store_close(dst);
    kg_store_close(src);
    return rc == 0 ? 0 : 1;
}

/* Operations commands find the admin API from --admin, else from the config file. */
static int cmd_operate(int argc, char **argv)
{
    const char *path = take_config_arg(&argc, argv);
    char url[512] = "http://127.0.0.1:19644";
    char token[256] = "";
    if (!path && access(KGATE_DEFAULT_CONFIG, R_OK) == 0) path = KGATE_DEFAULT_CONFIG;
    if (path) {
        kg_config *cfg = load_config(path);
        if (!cfg) return 2;
        const char *scheme = cfg->admin_tls.enabled ? "https" : "http";
        if (cfg->admin_listen[0]) snprintf(url, sizeof(url), "%s://%s", scheme, cfg->admin_listen);
        snprintf(token, sizeof(token), "%s", cfg->admin_token);
        if (cfg->admin_tls.enabled) kg_cli_set_default_cacert(cfg->admin_tls.ca_file);
        kg_config_free(cfg);
    }
    if (strcmp(argv[0], "chaos") == 0)
        return kg_chaos_cli_main(argc, argv, url, token[0] ? token : NULL);
    if (strcmp(argv[0], "users") == 0)
        return kg_users_cli_main(argc, argv, url, token[0] ? token : NULL);
    if (strcmp(argv[0], "acl") == 0)
        return kg_acl_cli_main(argc, argv, url, token[0] ? token : NULL);
    if (strcmp(argv[0], "token") == 0)
        return kg_token_cli_main(argc, argv, url, token[0] ? token : NULL);
    if (strcmp(argv[0], "experiment") == 0)
        return kg_experiment_cli_main(argc, argv, url, token[0] ? token : NULL);
    if (strcmp(argv[0], "drill") == 0)
        return kg_drill_cli_main(argc, argv, url, token[0] ? token : NULL);
    return kg_cli_main(argc, argv, url, token[0] ? token : NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2 && strcmp(argv[2], "--json") == 0)
            print_json(json_pack("{s:s}", "version", KGATE_VERSION));
        else
            printf("kgate %s\n", KGATE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0) return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate-state") == 0) return cmd_migrate_state(argc - 1, argv + 1);
    if (strcmp(cmd, "dev-cluster") == 0) return kg_devcluster_main(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return kg_demo_main(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0 || strcmp(cmd, "failover") == 0 ||
        strcmp(cmd, "failback") == 0 || strcmp(cmd, "audit") == 0 || strcmp(cmd, "chaos") == 0 ||
        strcmp(cmd, "experiment") == 0 || strcmp(cmd, "reload") == 0 || strcmp(cmd, "users") == 0 ||
        strcmp(cmd, "acl") == 0 || strcmp(cmd, "token") == 0 || strcmp(cmd, "drain") == 0 ||
        strcmp(cmd, "parity") == 0 || strcmp(cmd, "drill") == 0)
        return cmd_operate(argc - 1, argv + 1);
    fprintf(stderr, "kgate: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
