/* kg_config: the README example loads with exact values, defaults are applied, every optional key
 * is read, and each class of mistake is reported as "NAME:LINE:COL: message" at the right place,
 * all of them in one pass. Errors are captured with open_memstream, exactly as `kgate check`
 * would print them. */
#include "kt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/kg_config.h"

#include <jansson.h>

#define README_YAML                                                                                \
    "listen: 127.0.0.1\n"                                                                          \
    "advertised_host: 127.0.0.1\n"                                                                 \
    "clusters:\n"                                                                                  \
    "  east:\n"                                                                                    \
    "    bootstrap: 127.0.0.1:9092,127.0.0.1:9093\n"                                               \
    "  west:\n"                                                                                    \
    "    bootstrap: 127.0.0.1:9192\n"                                                              \
    "vclusters:\n"                                                                                 \
    "  default:\n"                                                                                 \
    "    port: 19092          # bootstrap port; broker N on 19092 + 1 + N\n"                       \
    "    primary: east\n"                                                                          \
    "    secondary: west      # optional\n"                                                        \
    "admin:\n"                                                                                     \
    "  listen: 127.0.0.1:19644\n"                                                                  \
    "state: ./kgate-state.db\n"

/* The smallest valid file; tests append or prepend what they exercise. */
#define MINIMAL_YAML                                                                               \
    "clusters:\n"                                                                                  \
    "  a:\n"                                                                                       \
    "    bootstrap: 10.0.0.1:9092\n"                                                               \
    "vclusters:\n"                                                                                 \
    "  v:\n"                                                                                       \
    "    port: 20000\n"                                                                            \
    "    primary: a\n"

/* Result of one parse: the config (or NULL), the error count and the printed error text. */
typedef struct parsed {
    kg_config *cfg;
    int n_errors;
    char *errs;
} parsed;

static parsed parse(const char *yaml)
{
    parsed r = {0};
    size_t size = 0;
    FILE *errs = open_memstream(&r.errs, &size);
    r.n_errors = -1;
    r.cfg = kg_config_parse("t.yaml", yaml, strlen(yaml), errs, &r.n_errors);
    fclose(errs);
    return r;
}

static void done(parsed *r)
{
    kg_config_free(r->cfg);
    free(r->errs);
}

/* True when one line of ERRS is exactly LINE. */
static int has_line(const char *errs, const char *line)
{
    size_t len = strlen(line);
    for (const char *at = errs; at && *at;) {
        const char *end = strchr(at, '\n');
        size_t n = end ? (size_t)(end - at) : strlen(at);
        if (n == len && memcmp(at, line, len) == 0) return 1;
        at = end ? end + 1 : NULL;
    }
    return 0;
}

/* True when one line of ERRS starts with PREFIX (for long messages with a fixed head). */
static int has_prefix(const char *errs, const char *prefix)
{
    size_t len = strlen(prefix);
    for (const char *at = errs; at && *at;) {
        if (strncmp(at, prefix, len) == 0) return 1;
        const char *end = strchr(at, '\n');
        at = end ? end + 1 : NULL;
    }
    return 0;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *c = text; c && *c; c++)
        n += *c == '\n';
    return n;
}

/* Expects the parse of YAML to fail with exactly one error, LINE. */
static void expect_single_error(const char *yaml, const char *line)
{
    parsed r = parse(yaml);
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 1);
    KT_CHECK_EQ_STR(r.errs, line);
    done(&r);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    KT_CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

KT_TEST(readme_example_loads_with_exact_values)
{
    parsed r = parse(README_YAML);
    KT_CHECK_EQ_STR(r.errs, "");
    KT_CHECK_EQ_INT(r.n_errors, 0);
    kg_config *c = r.cfg;
    KT_CHECK(c != NULL);
    if (!c) return;
    KT_CHECK_EQ_STR(c->path, "t.yaml");
    KT_CHECK_EQ_STR(c->listen, "127.0.0.1");
    KT_CHECK_EQ_STR(c->advertised_host, "127.0.0.1");
    KT_CHECK_EQ_INT(c->n_clusters, 2);
    KT_CHECK_EQ_STR(c->clusters[0].name, "east");
    KT_CHECK_EQ_INT(c->clusters[0].n_bootstrap, 2);
    KT_CHECK_EQ_STR(c->clusters[0].bootstrap[0].host, "127.0.0.1");
    KT_CHECK_EQ_INT(c->clusters[0].bootstrap[0].port, 9092);
    KT_CHECK_EQ_STR(c->clusters[0].bootstrap[1].host, "127.0.0.1");
    KT_CHECK_EQ_INT(c->clusters[0].bootstrap[1].port, 9093);
    KT_CHECK_EQ_STR(c->clusters[1].name, "west");
    KT_CHECK_EQ_INT(c->clusters[1].n_bootstrap, 1);
    KT_CHECK_EQ_INT(c->clusters[1].bootstrap[0].port, 9192);
    KT_CHECK_EQ_INT(c->n_vclusters, 1);
    KT_CHECK_EQ_STR(c->vclusters[0].name, "default");
    KT_CHECK_EQ_INT(c->vclusters[0].port, 19092);
    KT_CHECK_EQ_INT(c->vclusters[0].primary, 0);
    KT_CHECK_EQ_INT(c->vclusters[0].secondary, 1);
    KT_CHECK_EQ_INT(c->vclusters[0].node_id_min, 0);
    KT_CHECK_EQ_INT(c->vclusters[0].node_id_max, 31);
    KT_CHECK_EQ_STR(c->admin_listen, "127.0.0.1:19644");
    KT_CHECK_EQ_STR(c->admin_addr.host, "127.0.0.1");
    KT_CHECK_EQ_INT(c->admin_addr.port, 19644);
    KT_CHECK_EQ_STR(c->admin_token, "");
    KT_CHECK_EQ_STR(c->state_path, "./kgate-state.db");
    KT_CHECK_EQ_INT(kg_config_cluster_index(c, "west"), 1);
    KT_CHECK_EQ_INT(kg_config_cluster_index(c, "north"), -1);
    KT_CHECK_EQ_INT(kg_config_vcluster_index(c, "default"), 0);
    KT_CHECK_EQ_INT(kg_config_vcluster_index(c, "payments"), -1);
    done(&r);
}

KT_TEST(load_reads_the_file_and_names_it_in_errors)
{
    char dir[] = "/tmp/kg_test_config.XXXXXX";
    KT_CHECK(mkdtemp(dir) != NULL);
    char path[128], bad[128];
    snprintf(path, sizeof(path), "%s/kgate.yaml", dir);
    snprintf(bad, sizeof(bad), "%s/bad.yaml", dir);
    write_file(path, README_YAML);
    write_file(bad, "clusters: [\n");
    int n = -1;
    kg_config *c = kg_config_load(path, stderr, &n);
    KT_CHECK(c != NULL);
    KT_CHECK_EQ_INT(n, 0);
    if (c) {
        KT_CHECK_EQ_STR(c->path, path);
        KT_CHECK_EQ_INT(c->vclusters[0].port, 19092);
    }
    kg_config_free(c);

    char *text = NULL;
    size_t size = 0;
    FILE *errs = open_memstream(&text, &size);
    c = kg_config_load(bad, errs, &n);
    fclose(errs);
    KT_CHECK(c == NULL);
    KT_CHECK_EQ_INT(n, 1);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s:2:1: YAML syntax error: ", bad);
    KT_CHECK(has_prefix(text, expected));
    free(text);

    snprintf(expected, sizeof(expected), "%s/missing.yaml", dir);
    text = NULL;
    errs = open_memstream(&text, &size);
    c = kg_config_load(expected, errs, &n);
    fclose(errs);
    KT_CHECK(c == NULL);
    KT_CHECK_EQ_INT(n, 1);
    KT_CHECK(strstr(text, "cannot open: No such file or directory") != NULL);
    free(text);
    unlink(path);
    unlink(bad);
    rmdir(dir);
}

KT_TEST(defaults_are_applied)
{
    parsed r = parse(MINIMAL_YAML);
    KT_CHECK_EQ_STR(r.errs, "");
    kg_config *c = r.cfg;
    KT_CHECK(c != NULL);
    if (!c) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    KT_CHECK_EQ_STR(c->listen, "127.0.0.1");
    KT_CHECK_EQ_STR(c->advertised_host, "127.0.0.1");
    KT_CHECK_EQ_STR(c->admin_listen, "127.0.0.1:19644");
    KT_CHECK_EQ_INT(c->admin_addr.port, 19644);
    KT_CHECK_EQ_STR(c->admin_token, "");
    KT_CHECK_EQ_STR(c->admin_token_file, "");
    KT_CHECK_EQ_STR(c->state_path, "./kgate-state.db");
    KT_CHECK_EQ_INT(c->workers, cores > 0 ? cores : 1);
    KT_CHECK_EQ_INT(c->max_frame_bytes, 100 * 1024 * 1024);
    KT_CHECK_EQ_INT(c->buffer_bytes, 4 * 1024 * 1024);
    KT_CHECK_EQ_INT(c->max_connections, 10000);
    KT_CHECK_EQ_INT(c->connect_timeout_ms, 5000);
    KT_CHECK_EQ_INT(c->drain_timeout_ms, 5000);
    KT_CHECK_EQ_INT(c->probe_interval_ms, 1000);
    KT_CHECK_EQ_STR(c->log_level, "info");
    KT_CHECK_EQ_STR(c->log_format, "text");
    KT_CHECK_EQ_INT(c->vclusters[0].secondary, -1);
    KT_CHECK_EQ_INT(c->vclusters[0].node_id_min, 0);
    KT_CHECK_EQ_INT(c->vclusters[0].node_id_max, 31);
    KT_CHECK_EQ_INT(c->clusters[0].tls.enabled, 0);
    KT_CHECK_EQ_INT(c->clusters[0].tls.verify, 1);
    KT_CHECK_EQ_INT(c->clusters[0].sasl.mechanism, KG_SASL_NONE);
    done(&r);

    /* workers: 0 means "one per core", the same as leaving it out. */
    r = parse(MINIMAL_YAML "workers: 0\n");
    KT_CHECK(r.cfg != NULL);
    if (r.cfg) KT_CHECK_EQ_INT(r.cfg->workers, cores > 0 ? cores : 1);
    done(&r);
}

KT_TEST(bootstrap_list_and_ipv6)
{
    parsed r = parse("clusters:\n"
                     "  a:\n"
                     "    bootstrap: [\"[::1]:9092\", 'broker-1.example.com:9093', 10.1.2.3:1]\n"
                     "  b:\n"
                     "    bootstrap:\n"
                     "      - \"[fe80::1]:19092\"\n"
                     "  c:\n"
                     "    bootstrap: \" [::1]:1 , h:2 \"\n"
                     "vclusters:\n"
                     "  v: {port: 20000, primary: a, secondary: b}\n");
    KT_CHECK_EQ_STR(r.errs, "");
    kg_config *c = r.cfg;
    KT_CHECK(c != NULL);
    if (!c) return;
    KT_CHECK_EQ_INT(c->clusters[0].n_bootstrap, 3);
    KT_CHECK_EQ_STR(c->clusters[0].bootstrap[0].host, "::1");
    KT_CHECK_EQ_INT(c->clusters[0].bootstrap[0].port, 9092);
    KT_CHECK_EQ_STR(c->clusters[0].bootstrap[1].host, "broker-1.example.com");
    KT_CHECK_EQ_INT(c->clusters[0].bootstrap[1].port, 9093);
    KT_CHECK_EQ_STR(c->clusters[0].bootstrap[2].host, "10.1.2.3");
    KT_CHECK_EQ_INT(c->clusters[0].bootstrap[2].port, 1);
    KT_CHECK_EQ_STR(c->clusters[1].bootstrap[0].host, "fe80::1");
    KT_CHECK_EQ_INT(c->clusters[2].n_bootstrap, 2);
    KT_CHECK_EQ_STR(c->clusters[2].bootstrap[0].host, "::1");
    KT_CHECK_EQ_STR(c->clusters[2].bootstrap[1].host, "h");
    KT_CHECK_EQ_INT(c->clusters[2].bootstrap[1].port, 2);
    KT_CHECK_EQ_INT(c->vclusters[0].secondary, 1);
    done(&r);
}

KT_TEST(optional_keys_are_read)
{
    char dir[] = "/tmp/kg_test_config.XXXXXX";
    KT_CHECK(mkdtemp(dir) != NULL);
    char token_file[128], password_file[128], ca[128], yaml[2048];
    snprintf(token_file, sizeof(token_file), "%s/token", dir);
    snprintf(password_file, sizeof(password_file), "%s/password", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    write_file(token_file, "s3cr3t-token\n");
    write_file(password_file, "pw from file\r\n");
    write_file(ca, "not parsed yet\n");
    snprintf(yaml, sizeof(yaml),
             "listen: \"::\"\n"
             "advertised_host: kgate.internal\n"
             "workers: 3\n"
             "clusters:\n"
             "  a:\n"
             "    bootstrap: a:1\n"
             "    tls: {ca_file: %s, verify: false}\n"
             "    sasl: {mechanism: SCRAM-SHA-512, username: svc, password_file: %s}\n"
             "  b:\n"
             "    bootstrap: b:1\n"
             "    tls:\n"
             "    sasl: {mechanism: PLAIN, username: u, password: p}\n"
             "vclusters:\n"
             "  v: {port: 20000, primary: a, node_ids: \"10-20\"}\n"
             "  w: {port: 21000, primary: b, node_ids: {min: 100, max: 103}}\n"
             "admin: {listen: \"[::1]:9644\", token_file: %s}\n"
             "state: /var/lib/kgate/state.db\n"
             "limits:\n"
             "  max_frame_bytes: 8MiB\n"
             "  buffer_bytes: 65536\n"
             "  max_connections: 50\n"
             "  connect_timeout_ms: 250\n"
             "  drain_timeout_ms: 100\n"
             "health: {probe_interval_ms: 300}\n"
             "log: {level: debug, format: json}\n",
             ca, password_file, token_file);
    parsed r = parse(yaml);
    KT_CHECK_EQ_STR(r.errs, "");
    kg_config *c = r.cfg;
    KT_CHECK(c != NULL);
    if (c) {
        KT_CHECK_EQ_STR(c->listen, "::");
        KT_CHECK_EQ_STR(c->advertised_host, "kgate.internal");
        KT_CHECK_EQ_INT(c->workers, 3);
        KT_CHECK_EQ_INT(c->clusters[0].tls.enabled, 1);
        KT_CHECK_EQ_INT(c->clusters[0].tls.verify, 0);
        KT_CHECK_EQ_STR(c->clusters[0].tls.ca_file, ca);
        KT_CHECK_EQ_INT(c->clusters[0].sasl.mechanism, KG_SASL_SCRAM_SHA_512);
        KT_CHECK_EQ_STR(c->clusters[0].sasl.username, "svc");
        KT_CHECK_EQ_STR(c->clusters[0].sasl.password, "pw from file");
        KT_CHECK_EQ_STR(c->clusters[0].sasl.password_file, password_file);
        KT_CHECK_EQ_INT(c->clusters[1].tls.enabled, 1);
        KT_CHECK_EQ_INT(c->clusters[1].tls.verify, 1);
        KT_CHECK_EQ_STR(c->clusters[1].tls.ca_file, "");
        KT_CHECK_EQ_INT(c->clusters[1].sasl.mechanism, KG_SASL_PLAIN);
        KT_CHECK_EQ_STR(c->clusters[1].sasl.password, "p");
        KT_CHECK_EQ_STR(c->clusters[1].sasl.password_file, "");
        KT_CHECK_EQ_INT(c->vclusters[0].node_id_min, 10);
        KT_CHECK_EQ_INT(c->vclusters[0].node_id_max, 20);
        KT_CHECK_EQ_INT(c->vclusters[1].node_id_min, 100);
        KT_CHECK_EQ_INT(c->vclusters[1].node_id_max, 103);
        KT_CHECK_EQ_STR(c->admin_listen, "[::1]:9644");
        KT_CHECK_EQ_STR(c->admin_addr.host, "::1");
        KT_CHECK_EQ_INT(c->admin_addr.port, 9644);
        KT_CHECK_EQ_STR(c->admin_token, "s3cr3t-token");
        KT_CHECK_EQ_STR(c->admin_token_file, token_file);
        KT_CHECK_EQ_STR(c->state_path, "/var/lib/kgate/state.db");
        KT_CHECK_EQ_INT(c->max_frame_bytes, 8 * 1024 * 1024);
        KT_CHECK_EQ_INT(c->buffer_bytes, 65536);
        KT_CHECK_EQ_INT(c->max_connections, 50);
        KT_CHECK_EQ_INT(c->connect_timeout_ms, 250);
        KT_CHECK_EQ_INT(c->drain_timeout_ms, 100);
        KT_CHECK_EQ_INT(c->probe_interval_ms, 300);
        KT_CHECK_EQ_STR(c->log_level, "debug");
        KT_CHECK_EQ_STR(c->log_format, "json");
    }
    done(&r);
    unlink(token_file);
    unlink(password_file);
    unlink(ca);
    rmdir(dir);
}

KT_TEST(admin_inline_token_and_disabled_admin)
{
    parsed r = parse(MINIMAL_YAML "admin: {token: abc.DEF-123}\n");
    KT_CHECK(r.cfg != NULL);
    if (r.cfg) {
        KT_CHECK_EQ_STR(r.cfg->admin_token, "abc.DEF-123");
        KT_CHECK_EQ_STR(r.cfg->admin_listen, "127.0.0.1:19644");
    }
    done(&r);
    r = parse(MINIMAL_YAML "admin: {enabled: false}\n");
    KT_CHECK(r.cfg != NULL);
    if (r.cfg) KT_CHECK_EQ_STR(r.cfg->admin_listen, "");
    done(&r);
}

#define TWO_CLUSTERS_YAML(extra)                                                                   \
    "clusters:\n  a: {bootstrap: 10.0.0.1:9092}\n  b: {bootstrap: 10.0.0.2:9092}\n"                \
    "vclusters:\n  v:\n    port: 20000\n    primary: a\n    secondary: b\n" extra

KT_TEST(leader_epochs_hidden_by_default_only_with_a_secondary)
{
    parsed r = parse(MINIMAL_YAML);
    KT_CHECK(r.cfg && r.cfg->vclusters[0].hide_leader_epochs == 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].hide_leader_epochs == 1);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    leader_epochs: pass\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].hide_leader_epochs == 0);
    done(&r);
    expect_single_error(
        TWO_CLUSTERS_YAML("    leader_epochs: drop\n"),
        "t.yaml:9:20: vclusters.v.leader_epochs: must be hide or pass, not 'drop'\n");
}

KT_TEST(cluster_id_configured_or_derived_stably)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    char first[KG_CLUSTER_ID_MAX] = "";
    if (r.cfg) snprintf(first, sizeof(first), "%s", r.cfg->vclusters[0].cluster_id);
    KT_CHECK_EQ_INT((int)strlen(first), 22); /* Kafka's form: 16 bytes in base64url */
    KT_CHECK(strspn(first, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
             22);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("")); /* the same config: the same id, every time */
    KT_CHECK(r.cfg && strcmp(r.cfg->vclusters[0].cluster_id, first) == 0);
    done(&r);
    r = parse("advertised_host: gw.example\n" TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && strcmp(r.cfg->vclusters[0].cluster_id, first) != 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    cluster_id: orders-prod_1\n"));
    KT_CHECK(r.cfg && strcmp(r.cfg->vclusters[0].cluster_id, "orders-prod_1") == 0);
    done(&r);
    expect_single_error(TWO_CLUSTERS_YAML("    cluster_id: \"a b\"\n"),
                        "t.yaml:9:18: vclusters.v.cluster_id: 'a b' must be 1 to 64 characters "
                        "of A-Z, a-z, 0-9, '_' and '-'\n");
}

KT_TEST(parity_defaults_values_and_errors)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].parity_window_s == 600 &&
             r.cfg->vclusters[0].parity_interval_s == 60 &&
             r.cfg->vclusters[0].parity_on_switch == KG_PARITY_REFUSE);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    parity: {window_s: 30, interval_s: 0, on_switch: warn}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].parity_window_s == 30 &&
             r.cfg->vclusters[0].parity_interval_s == 0 &&
             r.cfg->vclusters[0].parity_on_switch == KG_PARITY_WARN);
    done(&r);
    expect_single_error(TWO_CLUSTERS_YAML("    parity: {on_switch: block}\n"),
                        "t.yaml:9:25: vclusters.v.parity.on_switch: must be refuse, warn or off, "
                        "not 'block'\n");
}

KT_TEST(auto_failover_defaults_inheritance_and_errors)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && !r.cfg->vclusters[0].auto_failover.enabled &&
             r.cfg->vclusters[0].auto_failover.after_ms == 30000 &&
             r.cfg->vclusters[0].auto_failover.min_interval_ms == 600000);
    done(&r);
    /* The top level is every vcluster's default; a vcluster overrides key by key. */
    r = parse(TWO_CLUSTERS_YAML("    auto_failover: {min_interval: 1h}\n"
                                "auto_failover: {enabled: true, after: 1m30s}\n"));
    KT_CHECK_EQ_STR(r.errs, "");
    KT_CHECK(r.cfg && r.cfg->vclusters[0].auto_failover.enabled &&
             r.cfg->vclusters[0].auto_failover.after_ms == 90000 &&
             r.cfg->vclusters[0].auto_failover.min_interval_ms == 3600000);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    auto_failover: {enabled: true, after: 2500ms, "
                                "min_interval: 0s}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].auto_failover.enabled &&
             r.cfg->vclusters[0].auto_failover.after_ms == 2500 &&
             r.cfg->vclusters[0].auto_failover.min_interval_ms == 0);
    done(&r);
    /* Enabled at the top level: a vcluster without a secondary is simply left out. */
    r = parse(MINIMAL_YAML "auto_failover: {enabled: true}\n");
    KT_CHECK_EQ_STR(r.errs, "");
    KT_CHECK(r.cfg && !r.cfg->vclusters[0].auto_failover.enabled);
    done(&r);
    expect_single_error(MINIMAL_YAML "    auto_failover: {enabled: true}\n",
                        "t.yaml:8:30: vclusters.v.auto_failover.enabled: vcluster 'v' has no "
                        "secondary cluster to fail over to (add secondary, or remove "
                        "auto_failover)\n");
    expect_single_error(TWO_CLUSTERS_YAML("    auto_failover: {after: 30}\n"),
                        "t.yaml:9:28: vclusters.v.auto_failover.after: expected a duration with "
                        "its unit such as 500ms, 30s, 10m or 1h, got '30'\n");
    /* Two health probes at least: one lost probe is not "down for after". */
    expect_single_error(TWO_CLUSTERS_YAML("    auto_failover: {after: 3s}\n"
                                          "health: {probe_interval_ms: 2000}\n"),
                        "t.yaml:9:28: vclusters.v.auto_failover.after: must be between 4000 ms "
                        "and 86400000 ms, got '3s' (3000 ms)\n");
    expect_single_error(TWO_CLUSTERS_YAML("auto_failover: {enabled: yes please}\n"),
                        "t.yaml:9:26: auto_failover.enabled: expected true or false, got 'yes "
                        "please'\n");
    expect_single_error(TWO_CLUSTERS_YAML("auto_failover: {after: 10s, backoff: 1m}\n"),
                        "t.yaml:9:29: unknown key 'backoff' in auto_failover (allowed there: "
                        "enabled, after, min_interval)\n");
}

KT_TEST(offsets_defaults_values_and_errors)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].offsets_checkpoints == 1 &&
             r.cfg->vclusters[0].offsets_policy == KG_OFFSETS_LEAVE &&
             r.cfg->vclusters[0].offsets_timeout_ms == 5000 &&
             strcmp(r.cfg->vclusters[0].offsets_alias[0], "a") == 0 &&
             strcmp(r.cfg->vclusters[0].offsets_alias[1], "b") == 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    offsets: {checkpoints: off, policy: earliest, timeout_ms: "
                                "900, aliases: {b: us-west.2}}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].offsets_checkpoints == 0 &&
             r.cfg->vclusters[0].offsets_policy == KG_OFFSETS_EARLIEST &&
             r.cfg->vclusters[0].offsets_timeout_ms == 900 &&
             strcmp(r.cfg->vclusters[0].offsets_alias[0], "a") == 0 &&
             strcmp(r.cfg->vclusters[0].offsets_alias[1], "us-west.2") == 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    offsets: {policy: latest}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].offsets_policy == KG_OFFSETS_LATEST);
    done(&r);
    expect_single_error(TWO_CLUSTERS_YAML("    offsets: {policy: newest}\n"),
                        "t.yaml:9:23: vclusters.v.offsets.policy: must be leave, earliest or "
                        "latest, not 'newest'\n");
    expect_single_error(TWO_CLUSTERS_YAML("    offsets: {checkpoints: on}\n"),
                        "t.yaml:9:28: vclusters.v.offsets.checkpoints: must be off or auto, not "
                        "'on'\n");
    r = parse(TWO_CLUSTERS_YAML("    offsets: {aliases: {c: x}}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "'c' is not the primary or secondary of v"));
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    offsets: {aliases: {a: \"x y\"}}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "vclusters.v.offsets.aliases.a: 'x y' must be"));
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    offsets: {timeout_ms: 10}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "vclusters.v.offsets.timeout_ms"));
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    offsets: {source_alias: east}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "source_alias"));
    done(&r);
}

KT_TEST(mirror_values_and_errors)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].mirror_topics[0] == 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    mirror: {topics: \"^orders\\\\..*\", interval_ms: 250}\n"));
    KT_CHECK(r.cfg && strcmp(r.cfg->vclusters[0].mirror_topics, "^orders\\..*") == 0 &&
             r.cfg->vclusters[0].mirror_interval_ms == 250);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    mirror: {interval_ms: 250}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "topics"));
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    mirror: {topics: \"(a\"}\n"));
    KT_CHECK(!r.cfg && strstr(r.errs, "vclusters.v.mirror.topics"));
    done(&r);
    r = parse("clusters:\n  a: {bootstrap: 10.0.0.1:9092}\n"
              "vclusters:\n  v:\n    port: 20000\n    primary: a\n    mirror: {topics: x}\n");
    KT_CHECK(!r.cfg && strstr(r.errs, "a mirror needs a secondary"));
    done(&r);
}

KT_TEST(replication_values_and_errors)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].replication_kind == KG_REPLICATION_NONE);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    mirror: {topics: x}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].replication_kind == KG_REPLICATION_EMBEDDED);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML("    replication: {kind: mirrormaker2}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].replication_kind == KG_REPLICATION_MM2 &&
             r.cfg->vclusters[0].replication_syncs_on_target == 0 &&
             r.cfg->vclusters[0].replication_topics[0] == 0);
    done(&r);
    r = parse(TWO_CLUSTERS_YAML(
        "    replication: {kind: mirrormaker2, offset_syncs: target, topics: \"^orders\"}\n"));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].replication_syncs_on_target == 1 &&
             strcmp(r.cfg->vclusters[0].replication_topics, "^orders") == 0);
    done(&r);
    static const struct {
        const char *yaml, *error;
    } bad[] = {
        {"    replication: {kind: mm2}\n",
         "replication.kind: must be none, embedded or mirrormaker2"},
        {"    replication: {offset_syncs: source}\n", "missing required key 'kind'"},
        {"    replication: {kind: mirrormaker2, offset_syncs: remote}\n",
         "replication.offset_syncs: must be source or target"},
        {"    replication: {kind: mirrormaker2, topics: \"(a\"}\n", "replication.topics"},
        {"    replication: {kind: embedded}\n", "it needs mirror.topics"},
        {"    mirror: {topics: x}\n    replication: {kind: mirrormaker2}\n",
         "kgate's mirror would copy the topics too"},
        {"    replication: {kind: embedded, offset_syncs: source}\n    mirror: {topics: x}\n",
         "replication.offset_syncs: only with kind: mirrormaker2"},
        {"    replication: {kind: mirrormaker2, lag: 0}\n", "lag"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char yaml[1024];
        snprintf(yaml, sizeof(yaml), TWO_CLUSTERS_YAML("%s"), bad[i].yaml);
        r = parse(yaml);
        KT_CHECK(!r.cfg);
        KT_CHECK(strstr(r.errs, bad[i].error) != NULL);
        if (!strstr(r.errs, bad[i].error)) fprintf(stderr, "case %zu: %s\n", i, r.errs);
        done(&r);
    }
    r = parse("clusters:\n  a: {bootstrap: 10.0.0.1:9092}\n"
              "vclusters:\n  v:\n    port: 20000\n    primary: a\n"
              "    replication: {kind: mirrormaker2}\n");
    KT_CHECK(!r.cfg && strstr(r.errs, "replication needs a secondary"));
    done(&r);
}

KT_TEST(switch_grace)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->switch_grace_ms == 200);
    done(&r);
    r = parse("switch: { grace_ms: 0 }\n" TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->switch_grace_ms == 0);
    done(&r);
    r = parse("switch: { grace_ms: 60001 }\n" TWO_CLUSTERS_YAML(""));
    KT_CHECK(!r.cfg && strstr(r.errs, "switch.grace_ms"));
    done(&r);
}

KT_TEST(switch_leave_groups)
{
    parsed r = parse(TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->switch_leave == 1);
    done(&r);
    r = parse("switch: { leave_groups: false }\n" TWO_CLUSTERS_YAML(""));
    KT_CHECK(r.cfg && r.cfg->switch_leave == 0 && r.cfg->switch_grace_ms == 200);
    done(&r);
    r = parse("switch: { leave_groups: sometimes }\n" TWO_CLUSTERS_YAML(""));
    KT_CHECK(!r.cfg && strstr(r.errs, "switch.leave_groups: expected true or false"));
    done(&r);
}

KT_TEST(auth_gateway_and_listener_sasl)
{
    parsed r = parse(MINIMAL_YAML);
    KT_CHECK(r.cfg && !r.cfg->vclusters[0].auth_gateway && !r.cfg->vclusters[0].sasl_mechanisms);
    done(&r);
    /* gateway without a list offers both SCRAM mechanisms */
    r = parse(MINIMAL_YAML "    auth: gateway\n");
    KT_CHECK(r.cfg && r.cfg->vclusters[0].auth_gateway);
    KT_CHECK(r.cfg && r.cfg->vclusters[0].sasl_mechanisms == (KG_SASL_BIT(KG_SASL_SCRAM_SHA_256) |
                                                              KG_SASL_BIT(KG_SASL_SCRAM_SHA_512)));
    done(&r);
    r = parse(MINIMAL_YAML "    auth: gateway\n"
                           "    listener:\n"
                           "      sasl: [SCRAM-SHA-512, PLAIN]\n"
                           "      allow_plain_without_tls: true\n"
                           "      sasl_session_ms: 60000\n");
    KT_CHECK_EQ_INT(r.n_errors, 0);
    KT_CHECK(r.cfg && r.cfg->vclusters[0].sasl_mechanisms ==
                          (KG_SASL_BIT(KG_SASL_SCRAM_SHA_512) | KG_SASL_BIT(KG_SASL_PLAIN)));
    KT_CHECK(r.cfg && r.cfg->vclusters[0].sasl_session_ms == 60000);
    done(&r);
    expect_single_error(
        MINIMAL_YAML "    auth: ldap\n",
        "t.yaml:8:11: vclusters.v.auth: must be none, gateway or passthrough, not 'ldap'\n");
    expect_single_error(MINIMAL_YAML "    auth: gateway\n    listener:\n      sasl: [PLAIN]\n",
                        "t.yaml:10:7: vclusters.v.listener.sasl: PLAIN sends passwords in clear "
                        "on a plaintext port; give the listener tls: (without a second port), or "
                        "set vclusters.v.listener.allow_plain_without_tls: true to accept that\n");
    expect_single_error(MINIMAL_YAML "    auth: gateway\n    listener:\n      sasl: [GSSAPI]\n",
                        "t.yaml:10:14: vclusters.v.listener.sasl: 'GSSAPI' is not a mechanism "
                        "kgate offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)\n");
    expect_single_error(
        MINIMAL_YAML
        "    auth: gateway\n    listener:\n      sasl: [SCRAM-SHA-256, SCRAM-SHA-256]\n",
        "t.yaml:10:29: vclusters.v.listener.sasl: SCRAM-SHA-256 listed twice\n");
    expect_single_error(MINIMAL_YAML "    listener:\n      sasl: [SCRAM-SHA-256]\n",
                        "t.yaml:9:7: vclusters.v.listener: SASL at kgate needs vclusters.v.auth: "
                        "gateway\n");
    r = parse(MINIMAL_YAML "    auth: gateway\n    listener:\n      sasl_sesion_ms: 5\n");
    KT_CHECK(r.cfg == NULL && r.errs && strstr(r.errs, "sasl_sesion_ms"));
    done(&r);
}

KT_TEST(chaos_rules_become_json_with_their_lines)
{
    parsed r = parse(MINIMAL_YAML "chaos:\n"
                                  "  - type: latency\n"
                                  "    delay_ms: 20\n"
                                  "    topic: \"007\"\n"
                                  "  - {type: down, rate: 12.5, enabled: true}\n");
    KT_CHECK(r.cfg != NULL);
    if (r.cfg) {
        KT_CHECK_EQ_INT((int)json_array_size(r.cfg->chaos_rules), 2);
        json_t *first = json_array_get(r.cfg->chaos_rules, 0);
        KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "type")), "latency");
        KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(first, "delay_ms")), 20);
        KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "topic")), "007");
        json_t *second = json_array_get(r.cfg->chaos_rules, 1);
        KT_CHECK(json_real_value(json_object_get(second, "rate")) == 12.5);
        KT_CHECK(json_is_true(json_object_get(second, "enabled")));
        KT_CHECK_EQ_INT(r.cfg->chaos_rule_lines[0], 9);
        KT_CHECK_EQ_INT(r.cfg->chaos_rule_lines[1], 12);
    }
    done(&r);
    expect_single_error(MINIMAL_YAML "chaos: {type: down}\n",
                        "t.yaml:8:1: chaos: expected a list of rules, got a mapping\n");
}

KT_TEST(unknown_keys_say_where_they_belong)
{
    expect_single_error(
        MINIMAL_YAML "port: 5\n",
        "t.yaml:8:1: unknown top-level key 'port' (allowed: listen, "
        "advertised_host, clusters, vclusters, admin, state, workers, limits, "
        "health, log, chaos, acls, switch, state_connect_timeout_ms, "
        "state_statement_timeout_ms, instance, auto_failover); 'port' belongs in vclusters.NAME\n");
    expect_single_error("clusters:\n"
                        "  a:\n"
                        "    bootstrap: a:1\n"
                        "    bootstrp: b:2\n"
                        "vclusters: {v: {port: 20000, primary: a}}\n",
                        "t.yaml:4:5: unknown key 'bootstrp' in clusters.a (allowed there: "
                        "bootstrap, tls, sasl); did you mean 'bootstrap'?\n");
    expect_single_error(MINIMAL_YAML "limits: {level: debug}\n",
                        "t.yaml:8:10: unknown key 'level' in limits (allowed there: "
                        "max_frame_bytes, buffer_bytes, max_connections, connect_timeout_ms, "
                        "drain_timeout_ms); 'level' belongs in log\n");
}

KT_TEST(wrong_types)
{
    expect_single_error(MINIMAL_YAML "limits: 5\n",
                        "t.yaml:8:9: limits: expected a mapping, got '5'\n");
    expect_single_error(MINIMAL_YAML "workers: many\n",
                        "t.yaml:8:10: workers: expected an integer, got 'many'\n");
    expect_single_error(MINIMAL_YAML "workers: \"4\"\n",
                        "t.yaml:8:11: workers: expected an integer, got the quoted string '4' "
                        "(remove the quotes)\n");
    expect_single_error(MINIMAL_YAML "state: [a, b]\n",
                        "t.yaml:8:1: state: expected a string, got a list\n");
    expect_single_error(MINIMAL_YAML "admin: {enabled: maybe}\n",
                        "t.yaml:8:18: admin.enabled: expected true or false, got 'maybe'\n");
    expect_single_error("- a\n- b\n", "t.yaml:1:1: the configuration: expected a mapping, got a "
                                      "list\n");
}

KT_TEST(missing_required_keys)
{
    expect_single_error("listen: 127.0.0.1\n"
                        "clusters:\n"
                        "  a: {bootstrap: a:1}\n",
                        "t.yaml:1:1: missing required top-level key 'vclusters' (the virtual "
                        "clusters clients connect to)\n");
    parsed r = parse("vclusters:\n"
                     "  v:\n"
                     "    secondary: a\n"
                     "clusters:\n"
                     "  a:\n"
                     "    tls: {verify: true}\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 3);
    KT_CHECK(has_line(r.errs, "t.yaml:2:3: vclusters.v: missing required key 'port' (the "
                              "bootstrap port clients connect to)"));
    KT_CHECK(has_line(r.errs, "t.yaml:2:3: vclusters.v: missing required key 'primary' (the "
                              "cluster that is active by default)"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:3: clusters.a: missing required key 'bootstrap' "
                              "(host:port of its brokers)"));
    done(&r);
    expect_single_error("clusters:\n"
                        "  a:\n"
                        "    bootstrap:\n"
                        "vclusters: {v: {port: 20000, primary: a}}\n",
                        "t.yaml:3:5: clusters.a.bootstrap: has no value (expected host:port of "
                        "its brokers)\n");
    r = parse("clusters: {}\nvclusters: {v: {port: 1, primary: a}}\n");
    KT_CHECK_EQ_INT(r.n_errors, 2);
    KT_CHECK_EQ_STR(r.errs, "t.yaml:1:1: clusters: define at least one cluster\n"
                            "t.yaml:2:35: vclusters.v.primary: unknown cluster 'a' (defined under "
                            "clusters: none)\n");
    done(&r);
}

KT_TEST(bad_addresses_and_ports)
{
    parsed r = parse("clusters:\n"
                     "  a:\n"
                     "    bootstrap: ok:1,nohost,::1:9092, h:0,h:70000,[::1]\n"
                     "  b:\n"
                     "    bootstrap: [\"999.1.1.1:5\", \"[not-v6]:5\", \"bad host:5\"]\n"
                     "vclusters:\n"
                     "  v:\n"
                     "    port: 70000\n"
                     "    primary: a\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 9);
    KT_CHECK(has_line(r.errs, "t.yaml:3:21: clusters.a.bootstrap: bad address 'nohost': missing "
                              "':port' (expected host:port)"));
    KT_CHECK(has_line(r.errs, "t.yaml:3:28: clusters.a.bootstrap: bad address '::1:9092': an "
                              "IPv6 address must be in brackets, e.g. [::1]:9092"));
    KT_CHECK(has_line(r.errs, "t.yaml:3:38: clusters.a.bootstrap: bad address 'h:0': port 0 out "
                              "of range (1-65535)"));
    KT_CHECK(has_line(r.errs, "t.yaml:3:42: clusters.a.bootstrap: bad address 'h:70000': port "
                              "70000 out of range (1-65535)"));
    KT_CHECK(has_line(r.errs, "t.yaml:3:50: clusters.a.bootstrap: bad address '[::1]': missing "
                              "':port' after ']' (expected [ipv6]:port)"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:18: clusters.b.bootstrap: bad address '999.1.1.1:5': not "
                              "a valid IPv4 address"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:33: clusters.b.bootstrap: bad address '[not-v6]:5': "
                              "brackets are only for IPv6 addresses"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:5:47: clusters.b.bootstrap: bad address 'bad host:5': "));
    KT_CHECK(has_line(r.errs, "t.yaml:8:11: vclusters.v.port: must be between 1 and 65535, got "
                              "70000"));
    done(&r);
    expect_single_error(MINIMAL_YAML "admin: {listen: localhost}\n",
                        "t.yaml:8:17: admin.listen: bad address 'localhost': missing ':port' "
                        "(expected host:port)\n");
    expect_single_error(MINIMAL_YAML "listen: 127.0.0.1:9092\n",
                        "t.yaml:8:9: listen: '127.0.0.1:9092' is not an address; give the host "
                        "only (ports come from vclusters.NAME.port)\n");
}

KT_TEST(cluster_references)
{
    expect_single_error("clusters: {east: {bootstrap: e:1}, west: {bootstrap: w:1}}\n"
                        "vclusters:\n"
                        "  v:\n"
                        "    port: 20000\n"
                        "    primary: eats\n",
                        "t.yaml:5:14: vclusters.v.primary: unknown cluster 'eats' (defined under "
                        "clusters: east, west)\n");
    expect_single_error("clusters: {east: {bootstrap: e:1}, west: {bootstrap: w:1}}\n"
                        "vclusters:\n"
                        "  v:\n"
                        "    port: 20000\n"
                        "    primary: east\n"
                        "    secondary: north\n",
                        "t.yaml:6:16: vclusters.v.secondary: unknown cluster 'north' (defined "
                        "under clusters: east, west)\n");
    expect_single_error("clusters: {east: {bootstrap: e:1}}\n"
                        "vclusters:\n"
                        "  v:\n"
                        "    port: 20000\n"
                        "    primary: east\n"
                        "    secondary: east\n",
                        "t.yaml:6:16: vclusters.v.secondary: secondary must be a different "
                        "cluster than primary ('east')\n");
}

KT_TEST(port_ranges)
{
    /* a: 20000 + 32 node ports = 20000-20032; b starts inside it. */
    expect_single_error("clusters: {c: {bootstrap: c:1}}\n"
                        "vclusters:\n"
                        "  a: {port: 20000, primary: c}\n"
                        "  b: {port: 20032, primary: c}\n",
                        "t.yaml:4:13: vclusters.b.port: ports 20032-20064 (bootstrap + broker "
                        "ports) overlap vcluster 'a' ports 20000-20032 (line 3)\n");
    /* Narrowing node_ids makes room. */
    parsed r = parse("clusters: {c: {bootstrap: c:1}}\n"
                     "vclusters:\n"
                     "  a: {port: 20000, primary: c, node_ids: 0-2}\n"
                     "  b: {port: 20004, primary: c}\n");
    KT_CHECK_EQ_STR(r.errs, "");
    KT_CHECK(r.cfg != NULL);
    done(&r);
    expect_single_error("clusters: {c: {bootstrap: c:1}}\n"
                        "vclusters:\n"
                        "  a: {port: 65510, primary: c}\n",
                        "t.yaml:3:13: vclusters.a.port: broker ports run to 65542 (port + 1 + "
                        "node ids 0-31), past 65535; lower port or narrow node_ids\n");
    r = parse("clusters: {c: {bootstrap: c:1}}\n"
              "vclusters:\n"
              "  a: {port: 65503, primary: c}\n");
    KT_CHECK_EQ_STR(r.errs, ""); /* 65503 + 1 + 31 = 65535 exactly */
    done(&r);
    expect_single_error("clusters: {c: {bootstrap: c:1}}\n"
                        "vclusters:\n"
                        "  a: {port: 20000, primary: c}\n"
                        "admin: {listen: 127.0.0.1:20010}\n",
                        "t.yaml:4:17: admin.listen: port 20010 is inside vcluster 'a' ports "
                        "20000-20032\n");
    expect_single_error("clusters: {c: {bootstrap: c:1}}\n"
                        "vclusters:\n"
                        "  a: {port: 20000, primary: c, node_ids: {min: 5, max: 2}}\n",
                        "t.yaml:3:32: vclusters.a.node_ids: max (2) is below min (5)\n");
    expect_single_error("clusters: {c: {bootstrap: c:1}}\n"
                        "vclusters:\n"
                        "  a: {port: 20000, primary: c, node_ids: 0..31}\n",
                        "t.yaml:3:42: vclusters.a.node_ids: expected a range such as \"0-31\" or "
                        "{min: 0, max: 31}, got '0..31'\n");
}

KT_TEST(duplicate_keys_and_names)
{
    parsed r = parse("clusters:\n"
                     "  a: {bootstrap: a:1}\n"
                     "  a: {bootstrap: b:1}\n"
                     "  \"bad name\": {bootstrap: c:1}\n"
                     "vclusters:\n"
                     "  v:\n"
                     "    port: 20000\n"
                     "    primary: a\n"
                     "    port: 30000\n"
                     "clusters: {}\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 4);
    KT_CHECK(has_line(r.errs, "t.yaml:3:3: clusters: duplicate cluster 'a' (first defined on "
                              "line 2)"));
    KT_CHECK(has_line(r.errs, "t.yaml:4:4: clusters: invalid cluster name 'bad name' (use 1-63 "
                              "letters, digits, '.', '_' or '-')"));
    KT_CHECK(has_line(r.errs, "t.yaml:9:5: vclusters.v: duplicate key 'port' (first given on "
                              "line 7)"));
    /* The second clusters: is reported; the first one is the one validated. */
    KT_CHECK(has_line(r.errs, "t.yaml:10:1: duplicate key 'clusters' (first given on line 1)"));
    done(&r);
    expect_single_error(MINIMAL_YAML "listen: 127.0.0.1\nlisten: 127.0.0.2\n",
                        "t.yaml:9:1: duplicate key 'listen' (first given on line 8)\n");
}

KT_TEST(bad_log_level_and_limits)
{
    expect_single_error(MINIMAL_YAML "log:\n  level: verbose\n",
                        "t.yaml:9:10: log.level: unknown level 'verbose' (use debug, info, warn "
                        "or error)\n");
    expect_single_error(MINIMAL_YAML "log:\n  format: xml\n",
                        "t.yaml:9:11: log.format: unknown format 'xml' (use text or json)\n");
    parsed r = parse(MINIMAL_YAML "limits:\n"
                                  "  max_frame_bytes: 0\n"
                                  "  buffer_bytes: -4KiB\n"
                                  "  max_connections: -1\n"
                                  "  connect_timeout_ms: 0\n"
                                  "  drain_timeout_ms: 3GiB\n"
                                  "health: {probe_interval_ms: 0}\n"
                                  "workers: -2\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 7);
    KT_CHECK(has_line(r.errs, "t.yaml:9:20: limits.max_frame_bytes: must be greater than 0, got "
                              "0"));
    KT_CHECK(has_line(r.errs, "t.yaml:10:17: limits.buffer_bytes: must be greater than 0, got "
                              "-4"));
    KT_CHECK(has_line(r.errs, "t.yaml:11:20: limits.max_connections: must be greater than 0, got "
                              "-1"));
    KT_CHECK(has_line(r.errs, "t.yaml:12:23: limits.connect_timeout_ms: must be greater than 0, "
                              "got 0"));
    KT_CHECK(has_line(r.errs, "t.yaml:13:21: limits.drain_timeout_ms: expected an integer, got "
                              "'3GiB'"));
    KT_CHECK(has_line(r.errs, "t.yaml:14:29: health.probe_interval_ms: must be greater than 0, "
                              "got 0"));
    KT_CHECK(has_line(r.errs, "t.yaml:15:10: workers: must be between 0 and 1024, got -2"));
    done(&r);
    expect_single_error(MINIMAL_YAML "limits: {max_frame_bytes: 2GiB}\n",
                        "t.yaml:8:27: limits.max_frame_bytes: must be at most 2147483647 bytes, "
                        "got '2GiB'\n");
}

KT_TEST(yaml_syntax_errors_have_a_line)
{
    parsed r = parse("clusters:\n"
                     "  a:\n"
                     "    bootstrap: a:1\n"
                     "   b: {bootstrap: b:1}\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 1);
    KT_CHECK(has_prefix(r.errs, "t.yaml:4:4: YAML syntax error: "));
    done(&r);
    expect_single_error(MINIMAL_YAML "---\nlisten: 127.0.0.1\n",
                        "t.yaml:8:1: only one YAML document is allowed; a second one starts "
                        "here\n");
    expect_single_error(MINIMAL_YAML "state: \"\xc3\x28\"\n",
                        "t.yaml:8:9: the file is not valid UTF-8 (byte 0xc3)\n");
    expect_single_error("# just a comment\n",
                        "t.yaml:1:1: the configuration is empty; it needs at least clusters and "
                        "vclusters\n");
    expect_single_error("", "t.yaml:1:1: the configuration is empty; it needs at least clusters "
                            "and vclusters\n");
    expect_single_error("clusters:\n  a:\n    bootstrap: *nowhere\n"
                        "vclusters: {v: {port: 20000, primary: a}}\n",
                        "t.yaml:3:17: clusters.a.bootstrap: alias '*nowhere' does not refer to "
                        "any anchor\n");
}

KT_TEST(anchors_and_aliases_are_followed)
{
    parsed r = parse("clusters:\n"
                     "  a: {bootstrap: &brokers \"h1:1,h2:2\"}\n"
                     "  b: {bootstrap: *brokers}\n"
                     "vclusters: {v: {port: 20000, primary: a, secondary: b}}\n");
    KT_CHECK_EQ_STR(r.errs, "");
    if (r.cfg) {
        KT_CHECK_EQ_INT(r.cfg->clusters[1].n_bootstrap, 2);
        KT_CHECK_EQ_STR(r.cfg->clusters[1].bootstrap[1].host, "h2");
    }
    done(&r);
}

KT_TEST(wildcard_listen_needs_advertised_host)
{
    expect_single_error(MINIMAL_YAML "listen: 0.0.0.0\n",
                        "t.yaml:8:9: listen: '0.0.0.0' listens on all interfaces, so "
                        "advertised_host is required: clients cannot connect to 0.0.0.0; set "
                        "advertised_host to the name or IP they use to reach kgate\n");
    expect_single_error(MINIMAL_YAML "listen: '::'\n",
                        "t.yaml:8:10: listen: '::' listens on all interfaces, so advertised_host "
                        "is required: clients cannot connect to ::; set advertised_host to the "
                        "name or IP they use to reach kgate\n");
    expect_single_error(MINIMAL_YAML "advertised_host: 0.0.0.0\n",
                        "t.yaml:8:18: advertised_host: '0.0.0.0' is not an address clients can "
                        "connect to; give the host name or IP clients use to reach kgate\n");
    parsed r = parse(MINIMAL_YAML "listen: 0.0.0.0\nadvertised_host: 192.0.2.7\n");
    KT_CHECK_EQ_STR(r.errs, "");
    if (r.cfg) {
        KT_CHECK_EQ_STR(r.cfg->listen, "0.0.0.0");
        KT_CHECK_EQ_STR(r.cfg->advertised_host, "192.0.2.7");
    }
    done(&r);
}

KT_TEST(secrets_and_tls_files)
{
    parsed r = parse(MINIMAL_YAML "admin:\n"
                                  "  token: abc\n"
                                  "  token_file: /nonexistent/token\n");
    KT_CHECK_EQ_INT(r.n_errors, 1);
    KT_CHECK(has_line(r.errs, "t.yaml:10:3: admin: give either token or token_file, not both"));
    done(&r);
    expect_single_error(MINIMAL_YAML "admin: {token_file: /nonexistent/token}\n",
                        "t.yaml:8:21: admin.token_file: cannot read '/nonexistent/token': No such "
                        "file or directory\n");
    expect_single_error(MINIMAL_YAML "admin: {token: \"has space\"}\n",
                        "t.yaml:8:17: admin.token: the token may only contain visible ASCII "
                        "characters\n");
    r = parse("clusters:\n"
              "  a:\n"
              "    bootstrap: a:1\n"
              "    tls: {ca_file: /nonexistent/ca.pem, key_file: /dev/null}\n"
              "    sasl: {mechanism: GSSAPI}\n"
              "vclusters: {v: {port: 20000, primary: a}}\n");
    KT_CHECK_EQ_INT(r.n_errors, 5);
    KT_CHECK(has_line(r.errs, "t.yaml:4:20: clusters.a.tls.ca_file: cannot read "
                              "'/nonexistent/ca.pem': No such file or directory"));
    KT_CHECK(has_line(r.errs, "t.yaml:4:41: clusters.a.tls: cert_file and key_file go together "
                              "(a client certificate needs its key)"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:5: clusters.a.sasl: missing required key 'username' (the "
                              "SASL user)"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:5: clusters.a.sasl: missing required key 'password' (the "
                              "password, or password_file)"));
    KT_CHECK(has_line(r.errs, "t.yaml:5:23: clusters.a.sasl.mechanism: unknown mechanism "
                              "'GSSAPI' (use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"));
    done(&r);
    KT_CHECK_EQ_STR(kg_config_sasl_mechanism_name(KG_SASL_SCRAM_SHA_256), "SCRAM-SHA-256");
    KT_CHECK_EQ_STR(kg_config_sasl_mechanism_name(KG_SASL_PLAIN), "PLAIN");
}

/* Every problem in one file is reported in one pass, sorted by position. */
KT_TEST(all_errors_are_reported_in_order)
{
    parsed r = parse("listen: 0.0.0.0\n"
                     "clusters:\n"
                     "  east:\n"
                     "    bootstrap: east:99999\n"
                     "    color: blue\n"
                     "vclusters:\n"
                     "  a: {port: 20000, primary: west}\n"
                     "  b: {port: 20001, primary: east, secondary: east}\n"
                     "log: {level: loud}\n"
                     "limits: {max_connections: 0}\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 8);
    KT_CHECK_EQ_INT(count_lines(r.errs), 8);
    int last_line = 0, sorted = 1;
    for (const char *at = r.errs; at && *at;) {
        int line = atoi(at + strlen("t.yaml:"));
        sorted &= line >= last_line;
        last_line = line;
        const char *end = strchr(at, '\n');
        at = end ? end + 1 : NULL;
    }
    KT_CHECK(sorted);
    KT_CHECK(has_prefix(r.errs, "t.yaml:1:9: listen: '0.0.0.0' listens on all interfaces"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:4:16: clusters.east.bootstrap: bad address"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:5:5: unknown key 'color' in clusters.east"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:7:29: vclusters.a.primary: unknown cluster 'west'"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:8:13: vclusters.b.port: ports 20001-20033"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:8:46: vclusters.b.secondary: secondary must be"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:9:14: log.level: unknown level 'loud'"));
    KT_CHECK(has_prefix(r.errs, "t.yaml:10:27: limits.max_connections: must be greater than 0"));
    done(&r);
}

static void parse_hung(int sig)
{
    static const char msg[] = "  test_config: a parse did not finish within 10 s (it hangs)\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(1);
}

/* parse() under a 10 s alarm: a parse that hangs fails the test binary rather than stalling
 * `make unit` forever. */
static parsed parse_bounded(const char *yaml)
{
    struct sigaction hung = {.sa_handler = parse_hung}, saved;
    sigemptyset(&hung.sa_mask);
    sigaction(SIGALRM, &hung, &saved);
    alarm(10);
    parsed r = parse(yaml);
    alarm(0);
    sigaction(SIGALRM, &saved, NULL);
    return r;
}

static void expect_refused_bounded(const char *yaml, const char *line)
{
    parsed r = parse_bounded(yaml);
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 1);
    KT_CHECK_EQ_STR(r.errs, line);
    done(&r);
}

#define DIRECTIVE_ERROR                                                                            \
    "YAML directives (a line starting with '%') are not supported in a kgate configuration; "      \
    "quote a value that starts with '%'\n"

/* libfyaml loops forever in fy_scan_directive on a reserved directive holding UTF-8 its decoder
 * rejects (found by fuzz_config; tests/fuzz/corpus/fuzz_config/hang-yaml-directive.yaml).
 * kgate refuses directives before libfyaml sees them, wherever libfyaml would take a line to
 * start (after LF, after a lone CR, after a byte order mark, inside a block scalar), and
 * refuses the overlong and surrogate forms too. */
KT_TEST(yaml_directives_are_refused_before_they_can_hang_the_parser)
{
    expect_refused_bounded("listen: 127.0.80.1\n"
                           "%a;dve0.1 {type: latenCy, del,\xe0\x91\x90uwters:o\n"
                           " Cy, del,\xe0\x91\x90uster{1-3\"}\n"
                           "chaos:haos:\n"
                           "  , {type: latenCy, del,\xe0\x91\x90usters:o\n"
                           "rtise\n"
                           "  li\n",
                           "t.yaml:2:1: " DIRECTIVE_ERROR);
    expect_refused_bounded("\xef\xbb\xbf%a\xe0\x91\x90\n", "t.yaml:1:1: " DIRECTIVE_ERROR);
    expect_refused_bounded("listen: 127.0.0.1\r%a\xe0\x91\x90\n", "t.yaml:2:1: " DIRECTIVE_ERROR);
    expect_refused_bounded("state: |\n%a\xe0\x91\x90\n", "t.yaml:2:1: " DIRECTIVE_ERROR);
    expect_refused_bounded("%YAML 1.2\n---\n" MINIMAL_YAML, "t.yaml:1:1: " DIRECTIVE_ERROR);
    expect_refused_bounded(MINIMAL_YAML "state: \"\xe0\x91\x90\"\n",
                           "t.yaml:8:9: the file is not valid UTF-8 (byte 0xe0)\n");
    expect_refused_bounded(MINIMAL_YAML "state: \xed\xa0\x80\n",
                           "t.yaml:8:8: the file is not valid UTF-8 (byte 0xed)\n");
    expect_refused_bounded(MINIMAL_YAML "state: \xf4\x90\x80\x80\n",
                           "t.yaml:8:8: the file is not valid UTF-8 (byte 0xf4)\n");
    /* A '%' anywhere else is plain text, and so is UTF-8 in any of its forms. */
    parsed r = parse_bounded(MINIMAL_YAML "state: \"%a\xc3\xa9\xe0\xa1\x90\xf0\x90\x80\x80\"\n"
                                          "log: {level: info} # %x\n");
    KT_CHECK_EQ_STR(r.errs, "");
    if (r.cfg) KT_CHECK_EQ_STR(r.cfg->state_path, "%a\xc3\xa9\xe0\xa1\x90\xf0\x90\x80\x80");
    done(&r);
    /* Drill files for `kgate experiment` go through the same libfyaml. */
    char err[256] = "";
    json_t *j = kg_config_yaml_to_json("a: 1\n%a\xe0\x91\x90\n", 9, err, sizeof(err));
    KT_CHECK(j == NULL);
    KT_CHECK(strncmp(err, "line 2, column 1: YAML directives", 33) == 0);
    json_decref(j);
}

KT_TEST(control_characters_tabs_and_huge_files_are_refused)
{
    expect_refused_bounded(MINIMAL_YAML "state: \"a\x01"
                                        "b\"\n",
                           "t.yaml:8:10: the file contains a control character (byte 0x01)\n");
    expect_refused_bounded(MINIMAL_YAML "state: a\x7f\n",
                           "t.yaml:8:9: the file contains a control character (byte 0x7f)\n");
    /* libfyaml 0.7.12 crashes on a tab after an explicit key (found by fuzz_config;
     * tests/fuzz/corpus/fuzz_config/crash-tab-after-explicit-key.yaml); no file needs tabs. */
    expect_refused_bounded("clusters:\n\tbootstrap: a:1\n",
                           "t.yaml:2:1: the file contains a tab; indent and separate with spaces "
                           "(in a double-quoted string, write \\t)\n");
    expect_refused_bounded("listen927.0.0s:\n? vsters:\t? n927.0.0s:\n? vsters:\n? v:v: {;or;ds}\n",
                           "t.yaml:2:10: the file contains a tab; indent and separate with spaces "
                           "(in a double-quoted string, write \\t)\n");
    /* CRLF line ends are text. */
    parsed r = parse_bounded("clusters:\r\n  a: {bootstrap: 10.0.0.1:9092} # x\r\n"
                             "vclusters: {v: {port: 20000, primary: a}}\r\n");
    KT_CHECK_EQ_STR(r.errs, "");
    KT_CHECK(r.cfg != NULL);
    done(&r);
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    KT_CHECK(text != NULL);
    if (!text) return;
    memset(text, '#', big);
    char *errs = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&errs, &size);
    int n = -1;
    KT_CHECK(kg_config_parse("t.yaml", text, big, out, &n) == NULL);
    fclose(out);
    KT_CHECK_EQ_INT(n, 1);
    KT_CHECK_EQ_STR(errs, "t.yaml: the configuration is larger than 1 MiB\n");
    free(errs);
    free(text);
}

/* Texts libfyaml leaks on or takes quadratic time over (found by fuzz_config and by timing it;
 * tests/fuzz/corpus/fuzz_config/leak-single-quotes.yaml) are refused with a position. */
KT_TEST(texts_libfyaml_mishandles_are_refused)
{
    expect_refused_bounded(MINIMAL_YAML "state: 'a''''b'\n",
                           "t.yaml:8:13: four single quotes in a row are not supported; write "
                           "the value in double quotes\n");
    /* One escaped quote, and two separated by text, are fine. */
    parsed r = parse_bounded(MINIMAL_YAML "state: 'it''s a ''b'''\n");
    KT_CHECK_EQ_STR(r.errs, "");
    if (r.cfg) KT_CHECK_EQ_STR(r.cfg->state_path, "it's a 'b'");
    done(&r);

    /* 1000 blank lines in a row are fine, 1001 are not. */
    size_t cap = 64 * 1024;
    char *text = malloc(cap);
    KT_CHECK(text != NULL);
    if (!text) return;
    for (int blanks = 1000; blanks <= 1001; blanks++) {
        int n = snprintf(text, cap, MINIMAL_YAML "chaos:\n- type: down\n  description: |\n    a\n");
        for (int i = 0; i < blanks; i++)
            n += snprintf(text + n, cap - (size_t)n, i % 2 ? "\n" : "   \r\n");
        snprintf(text + n, cap - (size_t)n, "    b\n");
        r = parse_bounded(text);
        if (blanks == 1000) {
            KT_CHECK_EQ_STR(r.errs, "");
        } else {
            KT_CHECK(r.cfg == NULL);
            KT_CHECK_EQ_STR(r.errs, "t.yaml:1012:1: more than 1000 blank lines in a row\n");
        }
        done(&r);
    }

    /* 1000 anchors are fine, 1001 are not. */
    int n = snprintf(text, cap, MINIMAL_YAML "chaos:\n");
    for (int i = 0; i < 1000; i++)
        n += snprintf(text + n, cap - (size_t)n, "- &r%d {type: down}\n", i);
    r = parse_bounded(text);
    KT_CHECK_EQ_STR(r.errs, "");
    done(&r);
    snprintf(text + n, cap - (size_t)n, "- &r1000 {type: down}\n");
    r = parse_bounded(text);
    KT_CHECK_EQ_STR(r.errs, "t.yaml:1009:3: more than 1000 anchors ('&') in one file\n");
    done(&r);
    free(text);
}

KT_TEST(null_arguments_are_safe)
{
    int n = -1;
    KT_CHECK(kg_config_parse(NULL, NULL, 0, NULL, &n) == NULL);
    KT_CHECK_EQ_INT(n, 1);
    kg_config_free(NULL);
    KT_CHECK_EQ_INT(kg_config_cluster_index(NULL, "a"), -1);
}

/* listener.oauthbearer: required with OAUTHBEARER, its JWKS file read and checked at load. */
#define OAUTH_YAML(extra)                                                                          \
    MINIMAL_YAML "    auth: gateway\n"                                                             \
                 "    listener:\n"                                                                 \
                 "      sasl: [OAUTHBEARER]\n" extra

KT_TEST(listener_oauthbearer)
{
    char jwks[64], yaml[1024];
    snprintf(jwks, sizeof(jwks), "/tmp/kg_test_config_jwks.%d.json", (int)getpid());
    write_file(jwks, "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"k\", \"x\": "
                     "\"odfh10DedsAItbEz4rGEMMQpVLEQBYa6Rnfoh7Bry5w\", \"y\": "
                     "\"uXWpjCiWuPtwepQr8xJ_B3RQMXcoZHN81-5mPD76SS0\"}]}");
    snprintf(yaml, sizeof(yaml),
             OAUTH_YAML("      oauthbearer:\n        jwks_file: %s\n        issuer: https://idp\n"
                        "        audience: kafka\n        principal_claim: client_id\n"
                        "        clock_skew_s: 5\n"),
             jwks);
    parsed r = parse(yaml);
    KT_CHECK_EQ_STR(r.errs, "");
    const kg_oauthbearer_cfg *o = r.cfg ? &r.cfg->vclusters[0].oauthbearer : NULL;
    KT_CHECK(r.cfg && r.cfg->vclusters[0].sasl_mechanisms == KG_SASL_BIT(KG_SASL_OAUTHBEARER));
    KT_CHECK(o && strcmp(o->jwks_file, jwks) == 0 && strcmp(o->issuer, "https://idp") == 0 &&
             strcmp(o->audience, "kafka") == 0 && strcmp(o->principal_claim, "client_id") == 0 &&
             o->clock_skew_s == 5);
    done(&r);
    /* defaults */
    snprintf(yaml, sizeof(yaml), OAUTH_YAML("      oauthbearer: { jwks_file: %s }\n"), jwks);
    r = parse(yaml);
    o = r.cfg ? &r.cfg->vclusters[0].oauthbearer : NULL;
    KT_CHECK(o && strcmp(o->principal_claim, "sub") == 0 && o->clock_skew_s == 30 &&
             !o->issuer[0] && !o->audience[0]);
    done(&r);
    KT_CHECK_EQ_STR(kg_config_sasl_mechanism_name(KG_SASL_OAUTHBEARER), "OAUTHBEARER");
    expect_single_error(OAUTH_YAML(""),
                        "t.yaml:10:7: vclusters.v.listener.oauthbearer: missing, and OAUTHBEARER "
                        "in listener.sasl needs it (jwks_file: the keys tokens are signed with)\n");
    snprintf(yaml, sizeof(yaml),
             MINIMAL_YAML
             "    auth: gateway\n    listener:\n      oauthbearer: { jwks_file: %s }\n",
             jwks);
    expect_single_error(yaml, "t.yaml:10:7: vclusters.v.listener.oauthbearer: configures "
                              "OAUTHBEARER, which listener.sasl does not list\n");
    snprintf(yaml, sizeof(yaml),
             OAUTH_YAML("      oauthbearer: { jwks_file: %s, clock_skew_s: 3600 }\n"), jwks);
    r = parse(yaml);
    KT_CHECK(r.cfg == NULL && strstr(r.errs, "clock_skew_s") != NULL);
    done(&r);
    r = parse(OAUTH_YAML("      oauthbearer: { issuer: x }\n"));
    KT_CHECK(r.cfg == NULL && strstr(r.errs, "jwks_file") != NULL);
    done(&r);
    /* The JWKS file is read now: a broken or missing one is an error at its line. */
    write_file(jwks,
               "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"AA\", \"y\": \"AA\"}]}");
    snprintf(yaml, sizeof(yaml), OAUTH_YAML("      oauthbearer:\n        jwks_file: %s\n"), jwks);
    r = parse(yaml);
    KT_CHECK(r.cfg == NULL && has_prefix(r.errs, "t.yaml:12:20: vclusters.v.listener.oauthbearer."
                                                 "jwks_file: keys[0]: P-256 coordinates"));
    done(&r);
    unlink(jwks);
    r = parse(yaml);
    KT_CHECK(r.cfg == NULL && strstr(r.errs, "cannot open") != NULL);
    done(&r);
}

KT_TEST(instance_section)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    parsed r = parse(MINIMAL_YAML);
    KT_CHECK(r.cfg != NULL);
    if (r.cfg) {
        /* The name defaults to the host name (its characters outside a name become '-'). */
        KT_CHECK(r.cfg->instance_name[0] != '\0');
        KT_CHECK(strlen(r.cfg->instance_name) == strlen(host) || strlen(host) >= KG_NAME_MAX);
        KT_CHECK_EQ_INT(r.cfg->lease_ms, 3000);
        KT_CHECK_EQ_INT(r.cfg->ack_timeout_ms, 2000);
        KT_CHECK_EQ_INT(r.cfg->serve_last_known, 0);
    }
    done(&r);
    r = parse(MINIMAL_YAML "instance: {name: gw-1, lease_ms: 1500, on_state_loss: "
                           "serve-last-known, ack_timeout_ms: 500}\n");
    KT_CHECK_EQ_STR(r.errs, "");
    if (r.cfg) {
        KT_CHECK_EQ_STR(r.cfg->instance_name, "gw-1");
        KT_CHECK_EQ_INT(r.cfg->lease_ms, 1500);
        KT_CHECK_EQ_INT(r.cfg->ack_timeout_ms, 500);
        KT_CHECK_EQ_INT(r.cfg->serve_last_known, 1);
    }
    done(&r);
    r = parse(MINIMAL_YAML "instance:\n"
                           "  name: gw 1\n"
                           "  lease_ms: 100\n"
                           "  on_state_loss: keep-going\n"
                           "  ack_timeout_ms: 0\n");
    KT_CHECK(r.cfg == NULL);
    KT_CHECK_EQ_INT(r.n_errors, 4);
    KT_CHECK(has_line(r.errs, "t.yaml:9:9: instance.name: 'gw 1' is not a valid name (letters, "
                              "digits, '.', '_' and '-', at most 63 characters)"));
    KT_CHECK(has_line(r.errs, "t.yaml:10:13: instance.lease_ms: must be between 300 and 600000, "
                              "got 100"));
    KT_CHECK(has_line(r.errs, "t.yaml:11:18: instance.on_state_loss: unknown mode 'keep-going' "
                              "(use fail-closed or serve-last-known)"));
    KT_CHECK(has_line(r.errs, "t.yaml:12:19: instance.ack_timeout_ms: must be greater than 0, "
                              "got 0"));
    done(&r);
    expect_single_error(
        MINIMAL_YAML "instance: {lease: 3000}\n",
        "t.yaml:8:12: unknown key 'lease' in instance (allowed there: name, lease_ms, "
        "on_state_loss, ack_timeout_ms)\n");
}

KT_MAIN()
