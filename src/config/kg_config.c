/* kg_config — YAML configuration loader and validator (libfyaml).
 *
 * The loader never stops at the first problem: every section is checked, each error is
 * recorded with its line and column, and the list is printed sorted by position, so a user
 * fixes a file in one pass. Besides types and ranges it checks what only makes sense across
 * sections: vclusters naming clusters that exist, port ranges that collide, a wildcard listen
 * address without an address clients can actually connect to.
 *
 * The document is built with duplicate keys allowed on purpose: libfyaml would otherwise stop
 * at the first duplicate, while we want to report it alongside everything else.
 */
#include "config/kg_config.h"
#include "util/kg_regex.h"
#include "security/kg_principal.h"
#include "security/kg_jwt.h"
#include "state/kg_store.h"

#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libfyaml.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1"
#define DEFAULT_ADMIN_LISTEN "127.0.0.1:19644"
#define DEFAULT_STATE_PATH "./kgate-state.db"
#define DEFAULT_MAX_FRAME_BYTES (100u * 1024 * 1024)
#define DEFAULT_BUFFER_BYTES (4u * 1024 * 1024)
#define DEFAULT_MAX_CONNECTIONS 10000
#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_DRAIN_TIMEOUT_MS 5000
#define DEFAULT_SWITCH_GRACE_MS 200
#define DEFAULT_SWITCH_PLANNED_HOLD_MS 10000
#define DEFAULT_PROBE_INTERVAL_MS 1000
#define DEFAULT_NODE_ID_MIN 0
#define DEFAULT_NODE_ID_MAX 31
#define MAX_WORKERS 1024
#define MAX_FILE_BYTES (1024 * 1024) /* a configuration is a few KiB; see text_problem() */
#define MAX_SECRET_FILE_BYTES 4096
#define CFG_PATH_MAX 256 /* a dotted key path such as "clusters.east.sasl.password_file" */

/* 1-based position in the YAML text; line 0 means "the file as a whole". */
typedef struct cfg_loc {
    int line;
    int col;
} cfg_loc;

typedef struct cfg_error {
    cfg_loc loc;
    int seq; /* report order, so errors at the same position keep it after sorting */
    char *msg;
} cfg_error;

typedef struct cfg_parser {
    const char *name;
    kg_config *cfg;
    cfg_error *errs;
    int n_errs;
    int cap_errs;
    int n_lost; /* errors we could not record (out of memory) still count */
} cfg_parser;

/* A value read from the document. NODE is NULL when the key is absent or its value is null,
 * so "not set" has one representation whichever way the user wrote it. */
typedef struct cfg_val {
    struct fy_node *node;
    cfg_loc loc;     /* the value's own position, or its key's when the value has none */
    cfg_loc key_loc; /* where the key was written */
    int present;
    int bad; /* written but unusable (an alias to nowhere); already reported */
} cfg_val;

/* The keys one mapping may hold; WHERE is how messages name the mapping. */
typedef struct cfg_section {
    const char *where;
    const char *const *keys;
    int n_keys;
} cfg_section;

typedef struct cfg_named {
    char name[KG_NAME_MAX];
    cfg_val val;
} cfg_named;

/* ---- sections ---------------------------------------------------------------------- */

enum {
    ROOT_LISTEN,
    ROOT_ADVERTISED_HOST,
    ROOT_CLUSTERS,
    ROOT_VCLUSTERS,
    ROOT_ADMIN,
    ROOT_STATE,
    ROOT_WORKERS,
    ROOT_LIMITS,
    ROOT_HEALTH,
    ROOT_LOG,
    ROOT_CHAOS,
    ROOT_ACLS,
    ROOT_SWITCH,
    ROOT_STATE_CONNECT_TIMEOUT,
    ROOT_STATE_STATEMENT_TIMEOUT,
    ROOT_INSTANCE,
    ROOT_AUTO_FAILOVER,
    ROOT_N
};
static const char *const root_keys[ROOT_N] = {"listen",
                                              "advertised_host",
                                              "clusters",
                                              "vclusters",
                                              "admin",
                                              "state",
                                              "workers",
                                              "limits",
                                              "health",
                                              "log",
                                              "chaos",
                                              "acls",
                                              "switch",
                                              "state_connect_timeout_ms",
                                              "state_statement_timeout_ms",
                                              "instance",
                                              "auto_failover"};

enum { CLUSTER_BOOTSTRAP, CLUSTER_TLS, CLUSTER_SASL, CLUSTER_N };
static const char *const cluster_keys[CLUSTER_N] = {"bootstrap", "tls", "sasl"};

enum { TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE, TLS_VERIFY, TLS_N };
static const char *const tls_keys[TLS_N] = {"ca_file", "cert_file", "key_file", "verify"};

enum { SASL_MECHANISM, SASL_USERNAME, SASL_PASSWORD, SASL_PASSWORD_FILE, SASL_PRINCIPALS, SASL_N };
static const char *const sasl_keys[SASL_N] = {"mechanism", "username", "password", "password_file",
                                              "principals"};

enum { SWAP_USERNAME, SWAP_PASSWORD, SWAP_PASSWORD_FILE, SWAP_N };
static const char *const swap_keys[SWAP_N] = {"username", "password", "password_file"};

enum {
    VC_PORT,
    VC_PRIMARY,
    VC_SECONDARY,
    VC_NODE_IDS,
    VC_LEADER_EPOCHS,
    VC_AUTH,
    VC_LISTENER,
    VC_ACLS,
    VC_CLUSTER_ID,
    VC_PARITY,
    VC_AUTO_FAILOVER,
    VC_OFFSETS,
    VC_MIRROR,
    VC_REPLICATION,
    VC_N
};
static const char *const vcluster_keys[VC_N] = {
    "port", "primary",    "secondary", "node_ids",      "leader_epochs", "auth",   "listener",
    "acls", "cluster_id", "parity",    "auto_failover", "offsets",       "mirror", "replication"};

enum {
    LISTENER_SASL,
    LISTENER_ALLOW_PLAIN,
    LISTENER_SESSION_MS,
    LISTENER_TLS,
    LISTENER_OAUTHBEARER,
    LISTENER_N
};
static const char *const listener_keys[LISTENER_N] = {"sasl", "allow_plain_without_tls",
                                                      "sasl_session_ms", "tls", "oauthbearer"};

enum { OAUTH_JWKS_FILE, OAUTH_ISSUER, OAUTH_AUDIENCE, OAUTH_PRINCIPAL_CLAIM, OAUTH_SKEW, OAUTH_N };
static const char *const oauth_keys[OAUTH_N] = {"jwks_file", "issuer", "audience",
                                                "principal_claim", "clock_skew_s"};

enum {
    LTLS_CERT_FILE,
    LTLS_KEY_FILE,
    LTLS_CLIENT_CA_FILE,
    LTLS_CRL_FILE,
    LTLS_CLIENT_AUTH,
    LTLS_PORT,
    LTLS_MAPPING,
    LTLS_N
};
static const char *const listener_tls_keys[LTLS_N] = {
    "cert_file",   "key_file", "client_ca_file",   "crl_file",
    "client_auth", "port",     "principal_mapping"};

enum { PARITY_WINDOW_S, PARITY_INTERVAL_S, PARITY_ON_SWITCH, PARITY_N };
static const char *const parity_keys[PARITY_N] = {"window_s", "interval_s", "on_switch"};

enum { AF_ENABLED, AF_AFTER, AF_MIN_INTERVAL, AF_N };
static const char *const autofo_keys[AF_N] = {"enabled", "after", "min_interval"};
enum { OFFSETS_CHECKPOINTS, OFFSETS_ALIASES, OFFSETS_POLICY, OFFSETS_TIMEOUT_MS, OFFSETS_N };
static const char *const offsets_keys[OFFSETS_N] = {"checkpoints", "aliases", "policy",
                                                    "timeout_ms"};

enum { MIRROR_TOPICS, MIRROR_INTERVAL_MS, MIRROR_DLQ, MIRROR_N };
static const char *const mirror_keys[MIRROR_N] = {"topics", "interval_ms", "dlq"};

enum { REPL_KIND, REPL_OFFSET_SYNCS, REPL_TOPICS, REPL_N };
static const char *const replication_keys[REPL_N] = {"kind", "offset_syncs", "topics"};

enum { NODE_IDS_MIN, NODE_IDS_MAX, NODE_IDS_N };
static const char *const node_ids_keys[NODE_IDS_N] = {"min", "max"};

enum { ADMIN_ENABLED, ADMIN_LISTEN, ADMIN_TOKEN, ADMIN_TOKEN_FILE, ADMIN_TLS, ADMIN_N };
static const char *const admin_keys[ADMIN_N] = {"enabled", "listen", "token", "token_file", "tls"};

enum { ATLS_CERT_FILE, ATLS_KEY_FILE, ATLS_CA_FILE, ATLS_N };
static const char *const admin_tls_keys[ATLS_N] = {"cert_file", "key_file", "ca_file"};

enum {
    LIMIT_MAX_FRAME_BYTES,
    LIMIT_BUFFER_BYTES,
    LIMIT_MAX_CONNECTIONS,
    LIMIT_CONNECT_TIMEOUT_MS,
    LIMIT_DRAIN_TIMEOUT_MS,
    LIMIT_N
};
static const char *const limit_keys[LIMIT_N] = {
    "max_frame_bytes", "buffer_bytes", "max_connections", "connect_timeout_ms", "drain_timeout_ms"};

enum { SWITCH_GRACE_MS, SWITCH_LEAVE_GROUPS, SWITCH_PLANNED_HOLD_MS, SWITCH_N };
static const char *const switch_keys[SWITCH_N] = {"grace_ms", "leave_groups", "planned_hold_ms"};

enum { HEALTH_PROBE_INTERVAL_MS, HEALTH_N };
static const char *const health_keys[HEALTH_N] = {"probe_interval_ms"};

enum { LOG_LEVEL, LOG_FORMAT, LOG_N };
static const char *const log_keys[LOG_N] = {"level", "format"};

enum { INST_NAME, INST_LEASE_MS, INST_ON_STATE_LOSS, INST_ACK_TIMEOUT_MS, INST_N };
static const char *const instance_keys[INST_N] = {"name", "lease_ms", "on_state_loss",
                                                  "ack_timeout_ms"};

static const cfg_section root_section = {"the top level", root_keys, ROOT_N};
static const cfg_section cluster_section = {"clusters.NAME", cluster_keys, CLUSTER_N};
static const cfg_section tls_section = {"clusters.NAME.tls", tls_keys, TLS_N};
static const cfg_section sasl_section = {"clusters.NAME.sasl", sasl_keys, SASL_N};
static const cfg_section swap_section = {"clusters.NAME.sasl.principals.USER", swap_keys, SWAP_N};
static const cfg_section vcluster_section = {"vclusters.NAME", vcluster_keys, VC_N};
static const cfg_section node_ids_section = {"vclusters.NAME.node_ids", node_ids_keys, NODE_IDS_N};
static const cfg_section parity_section = {"vclusters.NAME.parity", parity_keys, PARITY_N};
static const cfg_section mirror_section = {"vclusters.NAME.mirror", mirror_keys, MIRROR_N};
static const cfg_section replication_section = {"vclusters.NAME.replication", replication_keys,
                                                REPL_N};
static const cfg_section offsets_section = {"vclusters.NAME.offsets", offsets_keys, OFFSETS_N};
static const cfg_section listener_section = {"vclusters.NAME.listener", listener_keys, LISTENER_N};
static const cfg_section listener_tls_section = {"vclusters.NAME.listener.tls", listener_tls_keys,
                                                 LTLS_N};
static const cfg_section oauth_section = {"vclusters.NAME.listener.oauthbearer", oauth_keys,
                                          OAUTH_N};
static const cfg_section admin_section = {"admin", admin_keys, ADMIN_N};
static const cfg_section admin_tls_section = {"admin.tls", admin_tls_keys, ATLS_N};
static const cfg_section limits_section = {"limits", limit_keys, LIMIT_N};
static const cfg_section health_section = {"health", health_keys, HEALTH_N};
static const cfg_section switch_section = {"switch", switch_keys, SWITCH_N};
static const cfg_section log_section = {"log", log_keys, LOG_N};
static const cfg_section instance_section = {"instance", instance_keys, INST_N};
static const cfg_section autofo_section = {"auto_failover", autofo_keys, AF_N};

/* Every section, so an unknown key can be pointed to the place where it does belong. */
static const cfg_section *const all_sections[] = {
    &root_section,     &cluster_section,   &tls_section,      &sasl_section,
    &vcluster_section, &admin_section,     &limits_section,   &health_section,
    &log_section,      &node_ids_section,  &listener_section, &listener_tls_section,
    &oauth_section,    &admin_tls_section, &swap_section,     &instance_section,
    &autofo_section};

static const char *const log_levels[] = {"debug", "info", "warn", "error"};

/* ---- errors ------------------------------------------------------------------------ */

static void cfg_err(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cfg_err(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
{
    if (p->n_errs == p->cap_errs) {
        int cap = p->cap_errs ? p->cap_errs * 2 : 16;
        cfg_error *grown = realloc(p->errs, (size_t)cap * sizeof(*grown));
        if (!grown) {
            p->n_lost++;
            return;
        }
        p->errs = grown;
        p->cap_errs = cap;
    }
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        p->n_lost++;
        return;
    }
    p->errs[p->n_errs] = (cfg_error){loc, p->n_errs, msg};
    p->n_errs++;
}

static int cfg_error_order(const void *a, const void *b)
{
    const cfg_error *x = a, *y = b;
    if (x->loc.line != y->loc.line) return x->loc.line < y->loc.line ? -1 : 1;
    if (x->loc.col != y->loc.col) return x->loc.col < y->loc.col ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static void print_errors(cfg_parser *p, FILE *out)
{
    if (p->n_errs > 1) qsort(p->errs, (size_t)p->n_errs, sizeof(*p->errs), cfg_error_order);
    for (int i = 0; out && i < p->n_errs; i++) {
        const cfg_error *e = &p->errs[i];
        if (e->loc.line > 0)
            fprintf(out, "%s:%d:%d: %s\n", p->name, e->loc.line, e->loc.col, e->msg);
        else
            fprintf(out, "%s: %s\n", p->name, e->msg);
    }
    if (out && p->n_lost)
        fprintf(out, "%s: %d more errors (out of memory while recording them)\n", p->name,
                p->n_lost);
}

static void free_errors(cfg_parser *p)
{
    for (int i = 0; i < p->n_errs; i++)
        free(p->errs[i].msg);
    free(p->errs);
}

/* ---- nodes --------------------------------------------------------------------------- */

/* Collections carry no token of their own in libfyaml's public API, so they are located at the
 * key that introduces them (FALLBACK), which is also where a reader looks. */
static cfg_loc node_loc(struct fy_node *node, cfg_loc fallback)
{
    struct fy_token *tok = node ? fy_node_get_scalar_token(node) : NULL;
    const struct fy_mark *mark = tok ? fy_token_start_mark(tok) : NULL;
    if (!mark) return fallback;
    return (cfg_loc){mark->line + 1, mark->column + 1};
}

static const char *scalar_text(struct fy_node *node, size_t *len)
{
    const char *text = fy_node_get_scalar(node, len);
    if (!text) {
        *len = 0;
        return "";
    }
    return text;
}

static int text_is(const char *text, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(text, word, len) == 0;
}

static int node_is_null(struct fy_node *node)
{
    if (!node) return 1;
    if (fy_node_get_type(node) != FYNT_SCALAR || fy_node_get_style(node) != FYNS_PLAIN) return 0;
    size_t len;
    const char *text = scalar_text(node, &len);
    return len == 0 || text_is(text, len, "~") || text_is(text, len, "null") ||
           text_is(text, len, "Null") || text_is(text, len, "NULL");
}

/* A short description of what the user wrote, for "expected X, got Y" messages. */
static const char *describe(struct fy_node *node, char *buf, size_t size)
{
    if (!node) return "nothing";
    switch (fy_node_get_type(node)) {
    case FYNT_MAPPING:
        return "a mapping";
    case FYNT_SEQUENCE:
        return "a list";
    default: {
        size_t len;
        const char *text = scalar_text(node, &len);
        if (len > 40)
            snprintf(buf, size, "'%.40s...'", text);
        else
            snprintf(buf, size, "'%.*s'", (int)len, text);
        return buf;
    }
    }
}

/* "parent.key" (or "key" at the top level) into BUF, which holds CFG_PATH_MAX bytes; names are
 * at most 63 characters, so the cut only ever applies to hostile input. */
static const char *join_path(char *buf, const char *parent, const char *key)
{
    size_t used = 0;
    const char *parts[] = {parent && *parent ? parent : "", parent && *parent ? "." : "", key};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > CFG_PATH_MAX - 1 - used) len = CFG_PATH_MAX - 1 - used;
        memcpy(buf + used, parts[i], len);
        used += len;
    }
    buf[used] = '\0';
    return buf;
}

/* Turns a (key, value) pair into a cfg_val, following an alias to its anchor. */
static cfg_val make_val(cfg_parser *p, struct fy_node *value, cfg_loc key_loc, const char *path)
{
    cfg_val v = {.loc = node_loc(value, key_loc), .key_loc = key_loc, .present = 1};
    if (value && fy_node_is_alias(value)) {
        struct fy_node *target = fy_node_resolve_alias(value);
        if (!target) {
            size_t len;
            const char *text = scalar_text(value, &len);
            cfg_err(p, v.loc, "%s: alias '*%.*s' does not refer to any anchor", path, (int)len,
                    text);
            v.bad = 1;
        }
        value = target;
    }
    v.node = node_is_null(value) ? NULL : value;
    return v;
}

static int expect_kind(cfg_parser *p, const cfg_val *v, const char *path, enum fy_node_type type,
                       const char *expected)
{
    if (fy_node_get_type(v->node) == type) return 1;
    char buf[64];
    cfg_err(p, v->loc, "%s: expected %s, got %s", path, expected,
            describe(v->node, buf, sizeof(buf)));
    return 0;
}

/* ---- unknown keys ----------------------------------------------------------------------- */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *closest_key(const cfg_section *sec, const char *key)
{
    const char *best = NULL;
    int best_distance = 3; /* beyond two edits a suggestion is more confusing than helpful */
    for (int i = 0; i < sec->n_keys; i++) {
        int d = edit_distance(key, sec->keys[i]);
        if (d < best_distance) {
            best_distance = d;
            best = sec->keys[i];
        }
    }
    return best;
}

static const cfg_section *section_holding(const char *key)
{
    for (size_t i = 0; i < sizeof(all_sections) / sizeof(all_sections[0]); i++)
        for (int k = 0; k < all_sections[i]->n_keys; k++)
            if (strcmp(all_sections[i]->keys[k], key) == 0) return all_sections[i];
    return NULL;
}

static void report_unknown_key(cfg_parser *p, cfg_loc loc, const char *key, const char *path,
                               const cfg_section *sec)
{
    char allowed[256] = "";
    size_t used = 0;
    for (int i = 0; i < sec->n_keys && used < sizeof(allowed); i++)
        used += (size_t)snprintf(allowed + used, sizeof(allowed) - used, "%s%s", i ? ", " : "",
                                 sec->keys[i]);
    char hint[160] = "";
    const char *typo = closest_key(sec, key);
    const cfg_section *home = section_holding(key);
    if (home)
        snprintf(hint, sizeof(hint), "; '%s' belongs in %s", key, home->where);
    else if (typo)
        snprintf(hint, sizeof(hint), "; did you mean '%s'?", typo);
    if (*path)
        cfg_err(p, loc, "unknown key '%s' in %s (allowed there: %s)%s", key, path, allowed, hint);
    else
        cfg_err(p, loc, "unknown top-level key '%s' (allowed: %s)%s", key, allowed, hint);
}

/* Reads a mapping key as text; keys must be scalars (YAML allows lists as keys, we do not). */
static int key_text(cfg_parser *p, struct fy_node *key, cfg_loc loc, const char *path, char *out,
                    size_t size)
{
    if (!key || fy_node_get_type(key) != FYNT_SCALAR || fy_node_is_alias(key)) {
        cfg_err(p, loc, "%s: keys must be plain names", *path ? path : "top level");
        return 0;
    }
    size_t len;
    const char *text = scalar_text(key, &len);
    if (len >= size || memchr(text, '\0', len)) {
        cfg_err(p, loc, "%s: key '%.40s...' is not a valid key", *path ? path : "top level", text);
        return 0;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return 1;
}

/* Fills FIELDS (one per key of SEC) from the mapping V, reporting unknown and duplicate keys.
 * Returns 1 when V is a mapping (or absent), 0 when it is something else. */
static int collect_section(cfg_parser *p, const cfg_val *v, const char *path,
                           const cfg_section *sec, cfg_val *fields)
{
    memset(fields, 0, sizeof(*fields) * (size_t)sec->n_keys);
    for (int i = 0; i < sec->n_keys; i++)
        fields[i].loc = fields[i].key_loc = v->loc;
    if (!v->node) return 1;
    if (!expect_kind(p, v, *path ? path : "the configuration", FYNT_MAPPING, "a mapping")) return 0;
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(v->node, &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        cfg_loc key_loc = node_loc(key, v->loc);
        char name[128];
        if (!key_text(p, key, key_loc, path, name, sizeof(name))) continue;
        int idx = -1;
        for (int i = 0; i < sec->n_keys && idx < 0; i++)
            if (strcmp(sec->keys[i], name) == 0) idx = i;
        char sub[CFG_PATH_MAX];
        join_path(sub, path, name);
        if (idx < 0) {
            report_unknown_key(p, key_loc, name, path, sec);
        } else if (fields[idx].present) {
            cfg_err(p, key_loc, "%s%sduplicate key '%s' (first given on line %d)", path,
                    *path ? ": " : "", name, fields[idx].key_loc.line);
        } else {
            fields[idx] = make_val(p, fy_node_pair_value(pair), key_loc, sub);
        }
    }
    return 1;
}

/* ---- typed values ------------------------------------------------------------------------- */

/* Copies a string value into OUT. Returns 1 when set, 0 when absent, -1 on error (reported). */
static int get_string(cfg_parser *p, const cfg_val *v, const char *path, char *out, size_t size)
{
    if (!v->node) return 0;
    if (!expect_kind(p, v, path, FYNT_SCALAR, "a string")) return -1;
    size_t len;
    const char *text = scalar_text(v->node, &len);
    if (len == 0) {
        cfg_err(p, v->loc, "%s: must not be empty", path);
        return -1;
    }
    if (memchr(text, '\0', len)) {
        cfg_err(p, v->loc, "%s: must not contain a NUL character", path);
        return -1;
    }
    if (len >= size) {
        cfg_err(p, v->loc, "%s: too long (%zu characters, at most %zu)", path, len, size - 1);
        return -1;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return 1;
}

/* Numbers and booleans must be plain scalars: a quoted "5" is a string in YAML, and accepting
 * it would hide a quoting mistake elsewhere in the same file. */
static int plain_scalar(cfg_parser *p, const cfg_val *v, const char *path, const char *expected,
                        const char **text, size_t *len)
{
    if (!expect_kind(p, v, path, FYNT_SCALAR, expected)) return 0;
    *text = scalar_text(v->node, len);
    if (fy_node_get_style(v->node) != FYNS_PLAIN) {
        cfg_err(p, v->loc, "%s: expected %s, got the quoted string '%.*s' (remove the quotes)",
                path, expected, (int)(*len > 40 ? 40 : *len), *text);
        return 0;
    }
    return 1;
}

/* Decimal integer, optional sign, nothing else. Returns 0 on success. */
static int parse_integer(const char *text, size_t len, long long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf)) return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    size_t start = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
    if (buf[start] == '\0') return -1;
    for (size_t i = start; buf[i]; i++)
        if (buf[i] < '0' || buf[i] > '9') return -1;
    errno = 0;
    *out = strtoll(buf, NULL, 10);
    return errno ? -1 : 0;
}

static void report_range(cfg_parser *p, const cfg_val *v, const char *path, long long value,
                         long long min, long long max)
{
    if (min == 1 && value < 1)
        cfg_err(p, v->loc, "%s: must be greater than 0, got %lld", path, value);
    else
        cfg_err(p, v->loc, "%s: must be between %lld and %lld, got %lld", path, min, max, value);
}

static int get_int(cfg_parser *p, const cfg_val *v, const char *path, long long min, long long max,
                   long long *out)
{
    if (!v->node) return 0;
    const char *text;
    size_t len;
    if (!plain_scalar(p, v, path, "an integer", &text, &len)) return -1;
    long long value;
    if (parse_integer(text, len, &value) != 0) {
        cfg_err(p, v->loc, "%s: expected an integer, got '%.*s'", path, (int)(len > 40 ? 40 : len),
                text);
        return -1;
    }
    if (value < min || value > max) {
        report_range(p, v, path, value, min, max);
        return -1;
    }
    *out = value;
    return 1;
}

/* A byte count: an integer, or an integer followed by KiB, MiB or GiB ("4MiB", "64 KiB"). */
static int get_bytes(cfg_parser *p, const cfg_val *v, const char *path, long long max,
                     long long *out)
{
    if (!v->node) return 0;
    const char *text;
    size_t len;
    if (!plain_scalar(p, v, path, "a byte count", &text, &len)) return -1;
    static const struct {
        const char *suffix;
        long long scale;
    } units[] = {{"KiB", 1024LL}, {"MiB", 1024LL * 1024}, {"GiB", 1024LL * 1024 * 1024}};
    long long scale = 1;
    size_t digits = len;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t sl = strlen(units[i].suffix);
        if (len > sl && memcmp(text + len - sl, units[i].suffix, sl) == 0) {
            scale = units[i].scale;
            digits = len - sl;
            while (digits > 0 && text[digits - 1] == ' ')
                digits--;
        }
    }
    long long value;
    if (parse_integer(text, digits, &value) != 0) {
        cfg_err(p, v->loc,
                "%s: expected a byte count such as 1048576, 512KiB, 4MiB or 1GiB, got '%.*s'", path,
                (int)(len > 40 ? 40 : len), text);
        return -1;
    }
    if (value < 1) {
        report_range(p, v, path, value, 1, max);
        return -1;
    }
    if (value > max / scale) {
        cfg_err(p, v->loc, "%s: must be at most %lld bytes, got '%.*s'", path, max, (int)len, text);
        return -1;
    }
    *out = value * scale;
    return 1;
}

static int get_bool(cfg_parser *p, const cfg_val *v, const char *path, int *out)
{
    if (!v->node) return 0;
    const char *text;
    size_t len;
    if (!plain_scalar(p, v, path, "true or false", &text, &len)) return -1;
    if (text_is(text, len, "true") || text_is(text, len, "True") || text_is(text, len, "TRUE")) {
        *out = 1;
        return 1;
    }
    if (text_is(text, len, "false") || text_is(text, len, "False") || text_is(text, len, "FALSE")) {
        *out = 0;
        return 1;
    }
    cfg_err(p, v->loc, "%s: expected true or false, got '%.*s'", path, (int)(len > 40 ? 40 : len),
            text);
    return -1;
}

/* A required key is absent (FIELD NULL or not present) or written without a value. */
static void report_missing(cfg_parser *p, const cfg_val *section, const cfg_val *field,
                           const char *path, const char *key, const char *what)
{
    char sub[CFG_PATH_MAX];
    if (field && field->bad) return; /* already reported */
    if (field && field->present)
        cfg_err(p, field->loc, "%s: has no value (expected %s)", join_path(sub, path, key), what);
    else if (*path)
        cfg_err(p, section->key_loc, "%s: missing required key '%s' (%s)", path, key, what);
    else
        cfg_err(p, (cfg_loc){1, 1}, "missing required top-level key '%s' (%s)", key, what);
}

/* ---- addresses ---------------------------------------------------------------------------- */

static int is_ipv6(const char *s)
{
    struct in6_addr addr;
    return inet_pton(AF_INET6, s, &addr) == 1;
}

/* NULL when HOST is an IP address or a plausible DNS name, else the reason it is not. */
static const char *host_problem(const char *host)
{
    size_t len = strlen(host);
    if (len == 0) return "the host is empty";
    if (strchr(host, ':')) return is_ipv6(host) ? NULL : "not a valid IPv6 address";
    if (strspn(host, "0123456789.") == len) {
        struct in_addr addr;
        return inet_pton(AF_INET, host, &addr) == 1 ? NULL : "not a valid IPv4 address";
    }
    if (len > 253) return "the host name is longer than 253 characters";
    if (strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != len)
        return "the host name may only contain letters, digits, '.', '-' and '_'";
    if (host[0] == '.' || host[0] == '-' || strstr(host, "..")) return "not a valid host name";
    return NULL;
}

/* Splits "host:port" or "[ipv6]:port". Returns NULL, or why TEXT is not of that form. */
static const char *split_hostport(const char *text, const char **host, size_t *host_len,
                                  const char **port_text)
{
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close) return "missing ']' after the IPv6 address";
        if (close[1] != ':') return "missing ':port' after ']' (expected [ipv6]:port)";
        *host = text + 1;
        *host_len = (size_t)(close - *host);
        *port_text = close + 2;
        return NULL;
    }
    const char *colon = strrchr(text, ':');
    if (!colon) return "missing ':port' (expected host:port)";
    if (strchr(text, ':') != colon) return "an IPv6 address must be in brackets, e.g. [::1]:9092";
    *host = text;
    *host_len = (size_t)(colon - text);
    *port_text = colon + 1;
    return NULL;
}

static int parse_port(const char *text, uint16_t *out, char *why, size_t why_size)
{
    long long port;
    if (text[0] == '+' || text[0] == '-' || parse_integer(text, strlen(text), &port) != 0) {
        snprintf(why, why_size, "the port '%.20s' is not a number", text);
        return -1;
    }
    if (port < 1 || port > 65535) {
        snprintf(why, why_size, "port %lld out of range (1-65535)", port);
        return -1;
    }
    *out = (uint16_t)port;
    return 0;
}

/* Parses "host:port" or "[ipv6]:port" into OUT (brackets dropped). On error writes the reason
 * to WHY and returns -1. */
static int parse_hostport(const char *text, kg_hostport *out, char *why, size_t why_size)
{
    const char *host, *port_text;
    size_t host_len;
    const char *problem = split_hostport(text, &host, &host_len, &port_text);
    if (!problem && host_len >= sizeof(out->host)) problem = "the host is too long";
    if (!problem) {
        memcpy(out->host, host, host_len);
        out->host[host_len] = '\0';
        problem = host_problem(out->host);
    }
    if (!problem && text[0] == '[' && !is_ipv6(out->host))
        problem = "brackets are only for IPv6 addresses";
    if (problem) {
        snprintf(why, why_size, "%s", problem);
        return -1;
    }
    return parse_port(port_text, &out->port, why, why_size);
}

/* listen and advertised_host take a bare address: ports come from each vcluster. */
static int get_host(cfg_parser *p, const cfg_val *v, const char *path, char *out, size_t size)
{
    char text[KG_HOST_MAX];
    int rc = get_string(p, v, path, text, sizeof(text));
    if (rc <= 0) return rc;
    size_t len = strlen(text);
    if (text[0] == '[' && len > 2 && text[len - 1] == ']') {
        memmove(text, text + 1, len - 2);
        text[len - 2] = '\0';
    }
    const char *problem = host_problem(text);
    if (problem && strchr(text, ':') && !is_ipv6(text)) {
        cfg_err(p, v->loc,
                "%s: '%s' is not an address; give the host only (ports come from "
                "vclusters.NAME.port)",
                path, text);
        return -1;
    }
    if (problem) {
        cfg_err(p, v->loc, "%s: '%s': %s", path, text, problem);
        return -1;
    }
    snprintf(out, size, "%s", text);
    return 1;
}

static int is_wildcard(const char *host)
{
    return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* ---- files ---------------------------------------------------------------------------------- */

static int check_readable(cfg_parser *p, const cfg_val *v, const char *path, const char *file)
{
    if (access(file, R_OK) == 0) return 1;
    cfg_err(p, v->loc, "%s: cannot read '%s': %s", path, file, strerror(errno));
    return 0;
}

/* Reads a one-line secret (token, password) from FILE; trailing newlines and blanks are not
 * part of it, since editors and `echo` add them. */
static int read_secret_file(cfg_parser *p, const cfg_val *v, const char *path, const char *file,
                            char *out, size_t size)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        cfg_err(p, v->loc, "%s: cannot read '%s': %s", path, file, strerror(errno));
        return -1;
    }
    char buf[MAX_SECRET_FILE_BYTES + 1];
    size_t len = fread(buf, 1, sizeof(buf), f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        cfg_err(p, v->loc, "%s: cannot read '%s'", path, file);
        return -1;
    }
    while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
        len--;
    if (len == 0) {
        cfg_err(p, v->loc, "%s: '%s' is empty", path, file);
        return -1;
    }
    if (len >= size || memchr(buf, '\0', len) || memchr(buf, '\n', len)) {
        cfg_err(p, v->loc, "%s: '%s' must hold a single line of at most %zu characters", path, file,
                size - 1);
        return -1;
    }
    memcpy(out, buf, len);
    out[len] = '\0';
    return 1;
}

/* A secret given inline or as a file holding it, never both. Returns 1 when set, 0 when neither
 * was given, -1 on error (reported). */
static int get_secret(cfg_parser *p, const char *path, const cfg_val *inline_v,
                      const char *inline_key, const cfg_val *file_v, const char *file_key,
                      char *out, char *file_out)
{
    char inline_path[CFG_PATH_MAX], file_path[CFG_PATH_MAX];
    join_path(inline_path, path, inline_key);
    join_path(file_path, path, file_key);
    if (inline_v->node && file_v->node) {
        cfg_err(p, file_v->key_loc, "%s: give either %s or %s, not both", path, inline_key,
                file_key);
        return -1;
    }
    if (inline_v->node) return get_string(p, inline_v, inline_path, out, KG_SECRET_MAX);
    int rc = get_string(p, file_v, file_path, file_out, KG_PATH_MAX);
    if (rc <= 0) return rc;
    return read_secret_file(p, file_v, file_path, file_out, out, KG_SECRET_MAX);
}

/* ---- names ------------------------------------------------------------------------------------
 */

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    return len >= 1 && len <= 63 &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/* Splits the mapping V ("NAME: body" entries) into *OUT; bad and duplicate names are reported
 * and skipped. Returns the number of entries. */
static int collect_named(cfg_parser *p, const cfg_val *v, const char *path, const char *what,
                         cfg_named **out)
{
    *out = NULL;
    if (!expect_kind(p, v, path, FYNT_MAPPING, "a mapping of names")) return 0;
    int n = fy_node_mapping_item_count(v->node);
    cfg_named *entries = calloc(n > 0 ? (size_t)n : 1, sizeof(*entries));
    if (!entries) {
        cfg_err(p, v->loc, "%s: out of memory", path);
        return 0;
    }
    int count = 0;
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(v->node, &iter)) && count < n) {
        struct fy_node *key = fy_node_pair_key(pair);
        cfg_loc key_loc = node_loc(key, v->loc);
        char name[128];
        if (!key_text(p, key, key_loc, path, name, sizeof(name))) continue;
        if (!valid_name(name)) {
            cfg_err(p, key_loc,
                    "%s: invalid %s name '%s' (use 1-63 letters, digits, '.', '_' or '-')", path,
                    what, name);
            continue;
        }
        int dup = -1;
        for (int i = 0; i < count && dup < 0; i++)
            if (strcmp(entries[i].name, name) == 0) dup = i;
        if (dup >= 0) {
            cfg_err(p, key_loc, "%s: duplicate %s '%s' (first defined on line %d)", path, what,
                    name, entries[dup].val.key_loc.line);
            continue;
        }
        char sub[CFG_PATH_MAX];
        memcpy(entries[count].name, name, strlen(name) + 1); /* valid_name: at most 63 */
        entries[count].val =
            make_val(p, fy_node_pair_value(pair), key_loc, join_path(sub, path, name));
        count++;
    }
    *out = entries;
    return count;
}

/* ---- clusters
 * ------------------------------------------------------------------------------------ */

static int add_bootstrap(kg_cluster_cfg *c, const kg_hostport *hp)
{
    kg_hostport *grown = realloc(c->bootstrap, (size_t)(c->n_bootstrap + 1) * sizeof(*grown));
    if (!grown) return -1;
    c->bootstrap = grown;
    c->bootstrap[c->n_bootstrap++] = *hp;
    return 0;
}

static void parse_bootstrap_entry(cfg_parser *p, kg_cluster_cfg *c, const char *path,
                                  const char *text, size_t len, cfg_loc loc)
{
    char entry[KG_HOST_MAX + 16];
    char why[128];
    kg_hostport hp;
    if (len == 0) {
        cfg_err(p, loc, "%s: empty address in the list (expected host:port)", path);
        return;
    }
    if (len >= sizeof(entry)) {
        cfg_err(p, loc, "%s: address '%.40s...' is too long", path, text);
        return;
    }
    memcpy(entry, text, len);
    entry[len] = '\0';
    if (parse_hostport(entry, &hp, why, sizeof(why)) != 0) {
        cfg_err(p, loc, "%s: bad address '%s': %s", path, entry, why);
        return;
    }
    if (add_bootstrap(c, &hp) != 0) cfg_err(p, loc, "%s: out of memory", path);
}

/* "host:port,host:port" in one string; each address is located at its own column. */
static void parse_bootstrap_string(cfg_parser *p, kg_cluster_cfg *c, const cfg_val *v,
                                   const char *path)
{
    size_t len;
    const char *text = scalar_text(v->node, &len);
    /* Offsets map to columns only for one-line styles (marks point past any opening quote). */
    enum fy_node_style style = fy_node_get_style(v->node);
    int one_line =
        style == FYNS_PLAIN || style == FYNS_SINGLE_QUOTED || style == FYNS_DOUBLE_QUOTED;
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && text[end] != ',')
            end++;
        size_t a = start, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t'))
            b--;
        cfg_loc loc = {v->loc.line, v->loc.col + (one_line ? (int)a : 0)};
        parse_bootstrap_entry(p, c, path, text + a, b - a, loc);
        start = end + 1;
    }
}

static void parse_bootstrap(cfg_parser *p, kg_cluster_cfg *c, const cfg_val *v, const char *path)
{
    if (fy_node_get_type(v->node) == FYNT_SCALAR) {
        parse_bootstrap_string(p, c, v, path);
        return;
    }
    if (!expect_kind(p, v, path, FYNT_SEQUENCE, "a host:port string or a list of them")) return;
    void *iter = NULL;
    struct fy_node *item;
    int items = 0;
    while ((item = fy_node_sequence_iterate(v->node, &iter))) {
        cfg_val iv = make_val(p, item, v->loc, path);
        items++;
        if (!iv.node) {
            cfg_err(p, iv.loc, "%s: empty address in the list (expected host:port)", path);
            continue;
        }
        if (!expect_kind(p, &iv, path, FYNT_SCALAR, "a host:port string")) continue;
        size_t len;
        const char *text = scalar_text(iv.node, &len);
        parse_bootstrap_entry(p, c, path, text, len, iv.loc);
    }
    if (items == 0) cfg_err(p, v->loc, "%s: must list at least one host:port", path);
}

static void parse_tls(cfg_parser *p, kg_tls_cfg *tls, const cfg_val *v, const char *path)
{
    cfg_val f[TLS_N];
    tls->verify = 1;
    if (!v->present) return;
    tls->enabled = 1; /* "tls:" alone means TLS with the system trust store */
    if (!collect_section(p, v, path, &tls_section, f)) return;
    char fp[CFG_PATH_MAX];
    char *files[] = {tls->ca_file, tls->cert_file, tls->key_file};
    for (int i = TLS_CA_FILE; i <= TLS_KEY_FILE; i++) {
        join_path(fp, path, tls_keys[i]);
        if (get_string(p, &f[i], fp, files[i], KG_PATH_MAX) > 0)
            check_readable(p, &f[i], fp, files[i]);
    }
    get_bool(p, &f[TLS_VERIFY], join_path(fp, path, "verify"), &tls->verify);
    if (!f[TLS_CERT_FILE].node != !f[TLS_KEY_FILE].node) {
        const cfg_val *given = f[TLS_CERT_FILE].node ? &f[TLS_CERT_FILE] : &f[TLS_KEY_FILE];
        cfg_err(p, given->key_loc,
                "%s: cert_file and key_file go together (a client certificate needs its key)",
                path);
    }
}

static const char *const sasl_names[] = {"none", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512",
                                         "OAUTHBEARER"};

/* sasl.principals: USER: {username, password | password_file}, one a kgate user. */
static void parse_swaps(cfg_parser *p, kg_sasl_cfg *sasl, const cfg_val *v, const char *path)
{
    cfg_named *entries;
    int n = collect_named(p, v, path, "user", &entries);
    sasl->swaps = calloc(n > 0 ? (size_t)n : 1, sizeof(*sasl->swaps));
    if (!sasl->swaps) {
        cfg_err(p, v->loc, "%s: out of memory", path);
        free(entries);
        return;
    }
    for (int i = 0; i < n; i++) {
        kg_swap_cfg *s = &sasl->swaps[sasl->n_swaps];
        char sp[CFG_PATH_MAX], fp[CFG_PATH_MAX];
        cfg_val f[SWAP_N];
        join_path(sp, path, entries[i].name);
        if (!entries[i].val.node) {
            cfg_err(p, entries[i].val.loc, "%s: expected a mapping with username and password", sp);
            continue;
        }
        if (!collect_section(p, &entries[i].val, sp, &swap_section, f)) continue;
        snprintf(s->principal, sizeof(s->principal), "User:%s", entries[i].name);
        s->sasl.mechanism = sasl->mechanism;
        if (get_string(p, &f[SWAP_USERNAME], join_path(fp, sp, "username"), s->sasl.username,
                       sizeof(s->sasl.username)) == 0)
            report_missing(p, &entries[i].val, &f[SWAP_USERNAME], sp, "username",
                           "the user on this cluster");
        if (get_secret(p, sp, &f[SWAP_PASSWORD], "password", &f[SWAP_PASSWORD_FILE],
                       "password_file", s->sasl.password, s->sasl.password_file) == 0)
            report_missing(p, &entries[i].val, &f[SWAP_PASSWORD], sp, "password",
                           "the password, or password_file");
        sasl->n_swaps++;
    }
    free(entries);
}

static void parse_sasl(cfg_parser *p, kg_sasl_cfg *sasl, const cfg_val *v, const char *path)
{
    cfg_val f[SASL_N];
    if (!v->present) return;
    if (!v->node) {
        cfg_err(p, v->loc, "%s: expected a mapping with mechanism, username and password", path);
        return;
    }
    if (!collect_section(p, v, path, &sasl_section, f)) return;
    char fp[CFG_PATH_MAX], mech[32];
    int rc =
        get_string(p, &f[SASL_MECHANISM], join_path(fp, path, "mechanism"), mech, sizeof(mech));
    if (rc == 0)
        report_missing(p, v, &f[SASL_MECHANISM], path, "mechanism",
                       "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    for (int m = KG_SASL_PLAIN; rc > 0 && m <= KG_SASL_SCRAM_SHA_512; m++)
        if (strcmp(mech, sasl_names[m]) == 0) sasl->mechanism = (enum kg_sasl_mechanism)m;
    if (rc > 0 && sasl->mechanism == KG_SASL_NONE)
        cfg_err(p, f[SASL_MECHANISM].loc,
                "%s: unknown mechanism '%s' (use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", fp, mech);
    if (get_string(p, &f[SASL_USERNAME], join_path(fp, path, "username"), sasl->username,
                   sizeof(sasl->username)) == 0)
        report_missing(p, v, &f[SASL_USERNAME], path, "username", "the SASL user");
    rc = get_secret(p, path, &f[SASL_PASSWORD], "password", &f[SASL_PASSWORD_FILE], "password_file",
                    sasl->password, sasl->password_file);
    if (rc == 0)
        report_missing(p, v, &f[SASL_PASSWORD], path, "password", "the password, or password_file");
    if (f[SASL_PRINCIPALS].node)
        parse_swaps(p, sasl, &f[SASL_PRINCIPALS], join_path(fp, path, "principals"));
}

static void parse_cluster(cfg_parser *p, kg_cluster_cfg *c, const cfg_named *entry)
{
    char path[CFG_PATH_MAX], fp[CFG_PATH_MAX];
    cfg_val f[CLUSTER_N];
    snprintf(c->name, sizeof(c->name), "%s", entry->name);
    join_path(path, "clusters", entry->name);
    c->tls.verify = 1;
    if (!entry->val.node) {
        report_missing(p, &entry->val, NULL, path, "bootstrap", "host:port of its brokers");
        return;
    }
    if (!collect_section(p, &entry->val, path, &cluster_section, f)) return;
    if (f[CLUSTER_BOOTSTRAP].node)
        parse_bootstrap(p, c, &f[CLUSTER_BOOTSTRAP], join_path(fp, path, "bootstrap"));
    else
        report_missing(p, &entry->val, &f[CLUSTER_BOOTSTRAP], path, "bootstrap",
                       "host:port of its brokers");
    parse_tls(p, &c->tls, &f[CLUSTER_TLS], join_path(fp, path, "tls"));
    parse_sasl(p, &c->sasl, &f[CLUSTER_SASL], join_path(fp, path, "sasl"));
}

static void parse_clusters(cfg_parser *p, const cfg_val *v)
{
    if (!v->node) {
        report_missing(p, v, v, "", "clusters", "the physical Kafka clusters");
        return;
    }
    cfg_named *entries;
    int n = collect_named(p, v, "clusters", "cluster", &entries);
    if (n == 0 && fy_node_get_type(v->node) == FYNT_MAPPING &&
        fy_node_mapping_item_count(v->node) == 0)
        cfg_err(p, v->loc, "clusters: define at least one cluster");
    kg_config *cfg = p->cfg;
    cfg->clusters = calloc(n > 0 ? (size_t)n : 1, sizeof(*cfg->clusters));
    if (!cfg->clusters) {
        cfg_err(p, v->loc, "clusters: out of memory");
        n = 0;
    }
    for (int i = 0; i < n; i++)
        parse_cluster(p, &cfg->clusters[i], &entries[i]);
    cfg->n_clusters = n;
    free(entries);
}

/* ---- vclusters
 * ------------------------------------------------------------------------------------ */

/* The ports a vcluster occupies: its bootstrap port and one per node id. */
typedef struct vc_ports {
    int valid;
    long lo, hi;
    cfg_loc loc;
} vc_ports;

static void parse_node_ids_range(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                 const char *path)
{
    size_t len;
    const char *text = scalar_text(v->node, &len);
    const char *dash = memchr(text, '-', len);
    long long lo, hi;
    if (!dash || parse_integer(text, (size_t)(dash - text), &lo) != 0 ||
        parse_integer(dash + 1, len - (size_t)(dash - text) - 1, &hi) != 0 || text[0] == '+' ||
        dash[1] == '+' || dash[1] == '-') {
        cfg_err(p, v->loc, "%s: expected a range such as \"0-31\" or {min: 0, max: 31}, got '%.*s'",
                path, (int)(len > 40 ? 40 : len), text);
        vc->node_id_min = -1;
        return;
    }
    if (lo > INT32_MAX || hi > INT32_MAX) {
        cfg_err(p, v->loc, "%s: node ids are at most %d", path, INT32_MAX);
        vc->node_id_min = -1;
        return;
    }
    vc->node_id_min = (int)lo;
    vc->node_id_max = (int)hi;
}

static void parse_node_ids_map(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                               const char *path)
{
    cfg_val f[NODE_IDS_N];
    char fp[CFG_PATH_MAX];
    long long lo = 0, hi = 0;
    collect_section(p, v, path, &node_ids_section, f);
    int rc_lo = get_int(p, &f[NODE_IDS_MIN], join_path(fp, path, "min"), 0, INT32_MAX, &lo);
    if (rc_lo == 0)
        report_missing(p, v, &f[NODE_IDS_MIN], path, "min", "the lowest broker node id");
    int rc_hi = get_int(p, &f[NODE_IDS_MAX], join_path(fp, path, "max"), 0, INT32_MAX, &hi);
    if (rc_hi == 0)
        report_missing(p, v, &f[NODE_IDS_MAX], path, "max", "the highest broker node id");
    if (rc_lo <= 0 || rc_hi <= 0) {
        vc->node_id_min = -1;
        return;
    }
    vc->node_id_min = (int)lo;
    vc->node_id_max = (int)hi;
}

/* node_ids as "MIN-MAX" or {min, max}. node_id_min = -1 afterwards marks it invalid. */
static void parse_node_ids(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    if (!v->node) return;
    int type = fy_node_get_type(v->node);
    if (type == FYNT_SCALAR)
        parse_node_ids_range(p, vc, v, path);
    else if (type == FYNT_MAPPING)
        parse_node_ids_map(p, vc, v, path);
    else if (!expect_kind(p, v, path, FYNT_MAPPING, "a range such as \"0-31\" or {min, max}"))
        vc->node_id_min = -1;
    if (vc->node_id_min >= 0 && vc->node_id_max < vc->node_id_min) {
        cfg_err(p, v->loc, "%s: max (%d) is below min (%d)", path, vc->node_id_max,
                vc->node_id_min);
        vc->node_id_min = -1;
    }
}

/* Resolves a cluster name to its index; -1 (reported) when absent or unknown. */
static int cluster_ref(cfg_parser *p, const cfg_val *v, const char *path)
{
    char name[KG_NAME_MAX + 64];
    if (get_string(p, v, path, name, sizeof(name)) <= 0) return -1;
    int idx = kg_config_cluster_index(p->cfg, name);
    if (idx >= 0) return idx;
    char known[256] = "";
    size_t used = 0;
    for (int i = 0; i < p->cfg->n_clusters && used < sizeof(known); i++)
        used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
                                 p->cfg->clusters[i].name);
    cfg_err(p, v->loc, "%s: unknown cluster '%s' (defined under clusters: %s)", path, name,
            used ? known : "none");
    return -1;
}

/* Leader epochs are per cluster: after a switch, epochs a client cached from the other
 * cluster look like log truncation (KIP-320) or stale metadata. "hide" (the default when there
 * is a secondary) answers Metadata with unknown epochs (-1) so clients never rely on them. */
static void parse_leader_epochs(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                const char *path)
{
    char mode[16] = "";
    vc->hide_leader_epochs = vc->secondary >= 0;
    if (get_string(p, v, path, mode, sizeof(mode)) <= 0) return;
    if (strcmp(mode, "hide") == 0)
        vc->hide_leader_epochs = 1;
    else if (strcmp(mode, "pass") == 0)
        vc->hide_leader_epochs = 0;
    else
        cfg_err(p, v->loc, "%s: must be hide or pass, not '%s'", path, mode);
}

/* The default cluster id: 16 bytes of SHA-256 over the address clients use and the vcluster's
 * name, in base64url without padding (22 characters, the form of Kafka's own ids). It stays the
 * same across restarts and on every instance of a fleet, and differs between gateways. */
static void derive_cluster_id(const kg_config *cfg, const kg_vcluster_cfg *vc,
                              char out[KG_CLUSTER_ID_MAX])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char seed[KG_HOST_MAX + KG_NAME_MAX + 32];
    int n =
        snprintf(seed, sizeof(seed), "kgate:%s:%u:%s", cfg->advertised_host, vc->port, vc->name);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (n < 0 || !EVP_Digest(seed, strlen(seed), md, &md_len, EVP_sha256(), NULL)) md_len = 0;
    if (md_len < 16) memset(md, 0, 16);
    int o = 0;
    for (int i = 0; i < 16; i += 3) { /* 16 bytes: five groups of 3, then one byte */
        uint32_t v = (uint32_t)md[i] << 16;
        if (i + 1 < 16) v |= (uint32_t)md[i + 1] << 8;
        if (i + 2 < 16) v |= md[i + 2];
        int chars = i + 2 < 16 ? 4 : 2;
        for (int k = 0; k < chars; k++)
            out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

/* cluster_id: what clients are told the cluster's id is, whichever cluster is active, so a
 * switch never looks like another cluster to them (librdkafka: "reports different ClusterId").
 */
static void parse_cluster_id(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    int rc = get_string(p, v, path, vc->cluster_id, sizeof(vc->cluster_id));
    if (rc <= 0) {
        if (rc == 0) derive_cluster_id(p->cfg, vc, vc->cluster_id);
        return;
    }
    if (strspn(vc->cluster_id,
               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
        strlen(vc->cluster_id))
        cfg_err(p, v->loc, "%s: '%s' must be 1 to %d characters of A-Z, a-z, 0-9, '_' and '-'",
                path, vc->cluster_id, KG_CLUSTER_ID_MAX - 1);
}

/* A string that must be one of the N WORDS: its index into *OUT (left as it is when absent or
 * not one of them; the error lists the choices). */
static void get_word(cfg_parser *p, const cfg_val *v, const char *path, const char *const *words,
                     int n, int *out)
{
    char word[32] = "", choices[256] = "";
    if (get_string(p, v, path, word, sizeof(word)) <= 0) return;
    for (int i = 0; i < n; i++) {
        if (strcmp(word, words[i]) == 0) {
            *out = i;
            return;
        }
        size_t used = strlen(choices);
        snprintf(choices + used, sizeof(choices) - used, "%s%s",
                 i == 0       ? ""
                 : i == n - 1 ? " or "
                              : ", ",
                 words[i]);
    }
    cfg_err(p, v->loc, "%s: must be %s, not '%s'", path, choices, word);
}

/* parity: what a switch checks on the target first (route/kg_parity.h). */
static void parse_parity(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    vc->parity_window_s = 600;
    vc->parity_interval_s = 60;
    vc->parity_on_switch = KG_PARITY_REFUSE;
    if (!v->node) return;
    cfg_val f[PARITY_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, path, &parity_section, f)) return;
    long long n;
    if (get_int(p, &f[PARITY_WINDOW_S], join_path(fp, path, "window_s"), 1, 7 * 86400, &n) > 0)
        vc->parity_window_s = (int)n;
    if (get_int(p, &f[PARITY_INTERVAL_S], join_path(fp, path, "interval_s"), 0, 86400, &n) > 0)
        vc->parity_interval_s = (int)n;
    static const char *const modes[] = {"refuse", "warn", "off"}; /* KG_PARITY_* */
    get_word(p, &f[PARITY_ON_SWITCH], join_path(fp, path, "on_switch"), modes, 3,
             &vc->parity_on_switch);
}

/* offsets.aliases: CLUSTER: ALIAS for the vcluster's own clusters; an alias is a topic name's
 * prefix in MirrorMaker 2 ("<alias>.checkpoints.internal"). */
static void parse_offsets_aliases(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                  const char *path)
{
    cfg_named *entries;
    int n = collect_named(p, v, path, "cluster", &entries);
    for (int i = 0; i < n; i++) {
        char fp[CFG_PATH_MAX], alias[KG_NAME_MAX] = "";
        int idx = kg_config_cluster_index(p->cfg, entries[i].name);
        int side = idx < 0 ? -1 : idx == vc->primary ? 0 : idx == vc->secondary ? 1 : -1;
        join_path(fp, path, entries[i].name);
        if (side < 0) {
            cfg_err(p, entries[i].val.key_loc, "%s: '%s' is not the primary or secondary of %s",
                    path, entries[i].name, vc->name);
            continue;
        }
        if (get_string(p, &entries[i].val, fp, alias, sizeof(alias)) <= 0) continue;
        if (!*alias ||
            strspn(alias, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                          "._-") != strlen(alias))
            cfg_err(p, entries[i].val.loc,
                    "%s: '%s' must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_' and '-' (it "
                    "names a topic)",
                    fp, alias, KG_NAME_MAX - 1);
        else
            snprintf(vc->offsets_alias[side], sizeof(vc->offsets_alias[side]), "%s", alias);
    }
    free(entries);
}

/* offsets: what a switch does with consumer group offsets on the target (route/kg_offsets.h). */
static void parse_offsets(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    int sides[2] = {vc->primary, vc->secondary};
    for (int s = 0; s < 2; s++)
        snprintf(vc->offsets_alias[s], sizeof(vc->offsets_alias[s]), "%s",
                 sides[s] >= 0 ? p->cfg->clusters[sides[s]].name : "");
    vc->offsets_checkpoints = 1;
    vc->offsets_policy = KG_OFFSETS_LEAVE;
    vc->offsets_timeout_ms = 5000;
    if (!v->node) return;
    cfg_val f[OFFSETS_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, path, &offsets_section, f)) return;
    long long n;
    if (get_int(p, &f[OFFSETS_TIMEOUT_MS], join_path(fp, path, "timeout_ms"), 100, 600000, &n) > 0)
        vc->offsets_timeout_ms = (int)n;
    if (f[OFFSETS_ALIASES].node)
        parse_offsets_aliases(p, vc, &f[OFFSETS_ALIASES], join_path(fp, path, "aliases"));
    static const char *const checkpoints[] = {"off", "auto"};
    static const char *const policies[] = {"leave", "earliest", "latest"}; /* KG_OFFSETS_* */
    get_word(p, &f[OFFSETS_CHECKPOINTS], join_path(fp, path, "checkpoints"), checkpoints, 2,
             &vc->offsets_checkpoints);
    get_word(p, &f[OFFSETS_POLICY], join_path(fp, path, "policy"), policies, 3,
             &vc->offsets_policy);
}

/* A duration: a number with its unit, "500ms", "30s", "10m", "1h", "1d", or several
 * ("1m30s"). A bare number is refused: which unit it meant cannot be told. */
static int get_duration(cfg_parser *p, const cfg_val *v, const char *path, int64_t min_ms,
                        int64_t max_ms, int64_t *out)
{
    if (!v->node) return 0;
    const char *text;
    size_t len;
    if (!plain_scalar(p, v, path, "a duration", &text, &len)) return -1;
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t total = 0;
    size_t i = 0;
    int ok = len > 0 && len < 40;
    while (ok && i < len) {
        int64_t n = 0;
        size_t digits = 0;
        for (; i < len && text[i] >= '0' && text[i] <= '9' && n < 100000000; i++, digits++)
            n = n * 10 + (text[i] - '0');
        int64_t scale = 0;
        for (size_t u = 0; digits && u < sizeof(units) / sizeof(units[0]) && !scale; u++) {
            size_t ul = strlen(units[u].unit);
            /* "m" must not take the "m" of "ms" */
            if (len - i >= ul && memcmp(text + i, units[u].unit, ul) == 0 &&
                !(ul == 1 && text[i] == 'm' && i + 1 < len && text[i + 1] == 's')) {
                scale = units[u].ms;
                i += ul;
            }
        }
        ok = digits > 0 && scale > 0;
        total += n * scale;
    }
    if (!ok) {
        cfg_err(p, v->loc,
                "%s: expected a duration with its unit such as 500ms, 30s, 10m or 1h, got '%.*s'",
                path, (int)(len > 40 ? 40 : len), text);
        return -1;
    }
    if (total < min_ms || total > max_ms) {
        cfg_err(p, v->loc, "%s: must be between %lld ms and %lld ms, got '%.*s' (%lld ms)", path,
                (long long)min_ms, (long long)max_ms, (int)len, text, (long long)total);
        return -1;
    }
    *out = total;
    return 1;
}

#define AF_AFTER_MAX_MS (86400000LL)
#define AF_MIN_INTERVAL_MAX_MS (30LL * 86400000LL)

/* auto_failover (top level or a vcluster's): fleet/kg_autofo.h. Unset keys keep what AF has
 * (the defaults, or the top level's for a vcluster). *ENABLED_AT: where enabled was written
 * here (line 0: it was not). */
static void parse_autofo(cfg_parser *p, kg_autofo_cfg *af, const cfg_val *v, const char *path,
                         cfg_loc *enabled_at)
{
    enabled_at->line = 0;
    if (!v->node) return;
    cfg_val f[AF_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, path, &autofo_section, f)) return;
    if (get_bool(p, &f[AF_ENABLED], join_path(fp, path, "enabled"), &af->enabled) > 0)
        *enabled_at = f[AF_ENABLED].loc;
    int64_t ms;
    /* Below two health probes, one lost probe would count as "down for after". */
    int64_t min_after = 2LL * p->cfg->probe_interval_ms;
    if (min_after < 1000) min_after = 1000;
    if (get_duration(p, &f[AF_AFTER], join_path(fp, path, "after"), min_after, AF_AFTER_MAX_MS,
                     &ms) > 0)
        af->after_ms = ms;
    if (get_duration(p, &f[AF_MIN_INTERVAL], join_path(fp, path, "min_interval"), 0,
                     AF_MIN_INTERVAL_MAX_MS, &ms) > 0)
        af->min_interval_ms = ms;
}

/* A vcluster's auto_failover: the top level's, overridden by its own keys. Enabling it where
 * there is no secondary is an error when written on the vcluster; the top level's enabled
 * leaves such vclusters out (nothing to fail over to). */
static void parse_vcluster_autofo(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                  const char *path)
{
    vc->auto_failover = p->cfg->auto_failover;
    cfg_loc enabled_at;
    parse_autofo(p, &vc->auto_failover, v, path, &enabled_at);
    if (vc->secondary >= 0 || !vc->auto_failover.enabled) return;
    if (enabled_at.line)
        cfg_err(p, enabled_at,
                "%s.enabled: vcluster '%s' has no secondary cluster to fail over to (add "
                "secondary, or remove auto_failover)",
                path, vc->name);
    vc->auto_failover.enabled = 0;
}

/* A POSIX extended regex at V (RE_TEXT): reported when kgate would refuse it. */
static void check_regex(cfg_parser *p, const cfg_val *v, const char *path, const char *re_text)
{
    char why[256];
    regex_t re;
    if (kg_regex_check(re_text, why, sizeof(why)) < 0)
        cfg_err(p, v->loc, "%s: %s", path, why);
    else if (regcomp(&re, re_text, REG_EXTENDED | REG_NOSUB) != 0)
        cfg_err(p, v->loc, "%s: '%s' is not a valid regular expression", path, re_text);
    else
        regfree(&re);
}

/* mirror: topics (a regex) copied from the active cluster to the other one (route/kg_mirror.h). */
static void parse_mirror(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    vc->mirror_interval_ms = 1000;
    if (!v->node) return;
    cfg_val f[MIRROR_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, path, &mirror_section, f)) return;
    long long n;
    if (get_int(p, &f[MIRROR_INTERVAL_MS], join_path(fp, path, "interval_ms"), 10, 3600000, &n) > 0)
        vc->mirror_interval_ms = (int)n;
    if (vc->secondary < 0)
        cfg_err(p, v->loc, "%s: a mirror needs a secondary cluster to copy to", path);
    if (get_string(p, &f[MIRROR_DLQ], join_path(fp, path, "dlq"), vc->mirror_dlq,
                   sizeof(vc->mirror_dlq)) > 0 &&
        strspn(vc->mirror_dlq,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(vc->mirror_dlq))
        cfg_err(p, f[MIRROR_DLQ].loc,
                "%s: '%s' is not a Kafka topic name (letters, digits, '.', '_', '-')", fp,
                vc->mirror_dlq);
    if (get_string(p, &f[MIRROR_TOPICS], join_path(fp, path, "topics"), vc->mirror_topics,
                   sizeof(vc->mirror_topics)) == 0) {
        report_missing(p, v, &f[MIRROR_TOPICS], path, "topics",
                       "a regular expression of the topics to copy");
        return;
    }
    check_regex(p, &f[MIRROR_TOPICS], fp, vc->mirror_topics);
}

/* replication: what copies the topics to the other side (after mirror:, which it checks). */
static void parse_replication(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                              const char *path)
{
    vc->replication_kind = vc->mirror_topics[0] ? KG_REPLICATION_EMBEDDED : KG_REPLICATION_NONE;
    if (!v->node) return;
    cfg_val f[REPL_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, path, &replication_section, f)) return;
    static const char *const kinds[] = {"none", "embedded", "mirrormaker2"}; /* KG_REPLICATION_* */
    static const char *const places[] = {"source", "target"};
    int kind = -1;
    get_word(p, &f[REPL_KIND], join_path(fp, path, "kind"), kinds, 3, &kind);
    get_word(p, &f[REPL_OFFSET_SYNCS], join_path(fp, path, "offset_syncs"), places, 2,
             &vc->replication_syncs_on_target);
    if (get_string(p, &f[REPL_TOPICS], join_path(fp, path, "topics"), vc->replication_topics,
                   sizeof(vc->replication_topics)) > 0)
        check_regex(p, &f[REPL_TOPICS], fp, vc->replication_topics);
    if (!f[REPL_KIND].present) {
        report_missing(p, v, &f[REPL_KIND], path, "kind", "none, embedded or mirrormaker2");
        return;
    }
    if (kind < 0) return; /* reported */
    vc->replication_kind = kind;
    if (kind != KG_REPLICATION_NONE && vc->secondary < 0)
        cfg_err(p, f[REPL_KIND].loc, "%s.kind: replication needs a secondary cluster to copy to",
                path);
    if (kind == KG_REPLICATION_EMBEDDED && !vc->mirror_topics[0])
        cfg_err(p, f[REPL_KIND].loc,
                "%s.kind: embedded is kgate's own mirror: it needs mirror.topics (or say "
                "mirrormaker2 when MirrorMaker 2 copies the topics)",
                path);
    if (kind != KG_REPLICATION_EMBEDDED && vc->mirror_topics[0])
        cfg_err(p, f[REPL_KIND].loc,
                "%s.kind: %s, but mirror.topics is set: kgate's mirror would copy the topics too "
                "(remove mirror:, or say embedded)",
                path, kinds[kind]);
    const char *mm2_only = f[REPL_OFFSET_SYNCS].present ? "offset_syncs"
                           : f[REPL_TOPICS].present     ? "topics"
                                                        : NULL;
    if (kind != KG_REPLICATION_MM2 && mm2_only)
        cfg_err(p, f[f[REPL_OFFSET_SYNCS].present ? REPL_OFFSET_SYNCS : REPL_TOPICS].key_loc,
                "%s.%s: only with kind: mirrormaker2 (the embedded mirror waits for mirror.topics)",
                path, mm2_only);
}

/* listener.sasl: a list of mechanism names, each once. */
static void parse_listener_sasl(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                const char *path)
{
    if (!v->node || !expect_kind(p, v, path, FYNT_SEQUENCE, "a list of SASL mechanisms")) return;
    void *iter = NULL;
    struct fy_node *item;
    int n = 0;
    while ((item = fy_node_sequence_iterate(v->node, &iter))) {
        n++;
        cfg_val iv = make_val(p, item, v->loc, path);
        char mech[32];
        if (get_string(p, &iv, path, mech, sizeof(mech)) <= 0) continue;
        int m = KG_SASL_NONE;
        for (int i = KG_SASL_PLAIN; i <= KG_SASL_OAUTHBEARER; i++)
            if (strcmp(mech, sasl_names[i]) == 0) m = i;
        if (m == KG_SASL_NONE)
            cfg_err(p, iv.loc,
                    "%s: '%s' is not a mechanism kgate offers (PLAIN, SCRAM-SHA-256, "
                    "SCRAM-SHA-512, OAUTHBEARER)",
                    path, mech);
        else if (vc->sasl_mechanisms & KG_SASL_BIT(m))
            cfg_err(p, iv.loc, "%s: %s listed twice", path, mech);
        vc->sasl_mechanisms |= m == KG_SASL_NONE ? 0 : KG_SASL_BIT(m);
    }
    if (n == 0) cfg_err(p, v->loc, "%s: list at least one mechanism", path);
}

static const char *const client_auth_names[] = {"none", "requested", "required"};

/* listener.tls.principal_mapping: a list of rules, checked as kg_principal will read them. */
static void parse_mapping_rules(cfg_parser *p, kg_listener_tls_cfg *tls, const cfg_val *v,
                                const char *path)
{
    if (!v->node || !expect_kind(p, v, path, FYNT_SEQUENCE, "a list of mapping rules")) return;
    void *iter = NULL;
    struct fy_node *item;
    while ((item = fy_node_sequence_iterate(v->node, &iter))) {
        cfg_val iv = make_val(p, item, v->loc, path);
        if (tls->n_mapping_rules == KG_MAPPING_RULES_MAX) {
            cfg_err(p, iv.loc, "%s: at most %d rules", path, KG_MAPPING_RULES_MAX);
            return;
        }
        char *rule = tls->mapping_rules[tls->n_mapping_rules];
        if (get_string(p, &iv, path, rule, KG_MAPPING_RULE_MAX) <= 0) continue;
        char why[256];
        if (kg_principal_rule_check(rule, why, sizeof(why)) != 0)
            cfg_err(p, iv.loc, "%s: '%s': %s", path, rule, why);
        tls->n_mapping_rules++;
    }
}

/* listener.tls: kgate's certificate, and what it asks of clients'. */
static void parse_listener_tls(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                               const char *path)
{
    kg_listener_tls_cfg *tls = &vc->tls;
    cfg_val f[LTLS_N];
    if (!v->present) return;
    if (!v->node) {
        cfg_err(p, v->loc, "%s: expected a mapping with cert_file and key_file", path);
        return;
    }
    if (!collect_section(p, v, path, &listener_tls_section, f)) return;
    tls->enabled = 1;
    char fp[CFG_PATH_MAX];
    char *files[] = {tls->cert_file, tls->key_file, tls->client_ca_file, tls->crl_file};
    const char *what[] = {"the certificate chain (PEM) kgate presents",
                          "the private key of cert_file", NULL, NULL};
    for (int i = LTLS_CERT_FILE; i <= LTLS_CRL_FILE; i++) {
        join_path(fp, path, listener_tls_keys[i]);
        int rc = get_string(p, &f[i], fp, files[i], KG_PATH_MAX);
        if (rc > 0)
            check_readable(p, &f[i], fp, files[i]);
        else if (rc == 0 && what[i])
            report_missing(p, v, &f[i], path, listener_tls_keys[i], what[i]);
    }
    char mode[16];
    if (get_string(p, &f[LTLS_CLIENT_AUTH], join_path(fp, path, "client_auth"), mode,
                   sizeof(mode)) > 0) {
        int found = 0;
        for (int m = KG_CLIENT_AUTH_NONE; m <= KG_CLIENT_AUTH_REQUIRED; m++)
            if (strcmp(mode, client_auth_names[m]) == 0) {
                tls->client_auth = (kg_client_auth)m;
                found = 1;
            }
        if (!found)
            cfg_err(p, f[LTLS_CLIENT_AUTH].loc, "%s: must be none, requested or required, not '%s'",
                    fp, mode);
    }
    if (tls->client_auth != KG_CLIENT_AUTH_NONE && !tls->client_ca_file[0])
        cfg_err(p, f[LTLS_CLIENT_AUTH].loc,
                "%s: client certificates need %s.client_ca_file (the CAs they must chain to)", fp,
                path);
    long long port = 0;
    if (get_int(p, &f[LTLS_PORT], join_path(fp, path, "port"), 1, 65535, &port) > 0)
        tls->port = (uint16_t)port;
    parse_mapping_rules(p, tls, &f[LTLS_MAPPING], join_path(fp, path, "principal_mapping"));
    if (f[LTLS_MAPPING].node && tls->client_auth == KG_CLIENT_AUTH_NONE)
        cfg_err(p, f[LTLS_MAPPING].loc,
                "%s: maps client certificates, but client_auth is none (no certificate is "
                "asked for)",
                fp);
}

/* listener.oauthbearer: where the keys are and what tokens must say. Required with OAUTHBEARER
 * in listener.sasl; the JWKS file is read and checked now, as kgate will read it at start. */
static void parse_listener_oauth(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v,
                                 const cfg_val *sasl, const char *path)
{
    kg_oauthbearer_cfg *o = &vc->oauthbearer;
    cfg_val f[OAUTH_N];
    int listed = (vc->sasl_mechanisms & KG_SASL_BIT(KG_SASL_OAUTHBEARER)) != 0;
    snprintf(o->principal_claim, sizeof(o->principal_claim), "sub");
    o->clock_skew_s = KG_JWT_DEFAULT_SKEW_S;
    if (!v->present) {
        if (listed)
            cfg_err(p, sasl->loc,
                    "%s: missing, and OAUTHBEARER in listener.sasl needs it (jwks_file: the keys "
                    "tokens are signed with)",
                    path);
        return;
    }
    if (!v->node) {
        cfg_err(p, v->loc, "%s: expected a mapping with jwks_file", path);
        return;
    }
    if (!listed)
        cfg_err(p, v->key_loc, "%s: configures OAUTHBEARER, which listener.sasl does not list",
                path);
    if (!collect_section(p, v, path, &oauth_section, f)) return;
    char fp[CFG_PATH_MAX];
    int rc = get_string(p, &f[OAUTH_JWKS_FILE], join_path(fp, path, "jwks_file"), o->jwks_file,
                        sizeof(o->jwks_file));
    if (rc == 0)
        report_missing(p, v, &f[OAUTH_JWKS_FILE], path, "jwks_file",
                       "the JWKS file with the keys tokens are signed with");
    if (rc > 0) {
        char why[300];
        kg_jwt_jwks *jwks = kg_jwt_jwks_load(o->jwks_file, why, sizeof(why));
        if (!jwks) cfg_err(p, f[OAUTH_JWKS_FILE].loc, "%s: %s", fp, why);
        kg_jwt_jwks_free(jwks);
    }
    get_string(p, &f[OAUTH_ISSUER], join_path(fp, path, "issuer"), o->issuer, sizeof(o->issuer));
    get_string(p, &f[OAUTH_AUDIENCE], join_path(fp, path, "audience"), o->audience,
               sizeof(o->audience));
    if (get_string(p, &f[OAUTH_PRINCIPAL_CLAIM], join_path(fp, path, "principal_claim"),
                   o->principal_claim, sizeof(o->principal_claim)) == 0)
        snprintf(o->principal_claim, sizeof(o->principal_claim), "sub");
    long long skew = 0;
    if (get_int(p, &f[OAUTH_SKEW], join_path(fp, path, "clock_skew_s"), 0, 600, &skew) > 0)
        o->clock_skew_s = (int)skew;
}

/* auth: none (default) | gateway, and the listener: section that goes with it. */
static void parse_auth(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *auth,
                       const cfg_val *listener, const char *path)
{
    char fp[CFG_PATH_MAX], mode[16] = "";
    cfg_val f[LISTENER_N];
    if (get_string(p, auth, join_path(fp, path, "auth"), mode, sizeof(mode)) > 0) {
        if (strcmp(mode, "gateway") == 0)
            vc->auth_gateway = 1;
        else if (strcmp(mode, "passthrough") == 0)
            vc->auth_passthrough = 1;
        else if (strcmp(mode, "none") != 0)
            cfg_err(p, auth->loc, "%s: must be none, gateway or passthrough, not '%s'", fp, mode);
    }
    char lp[CFG_PATH_MAX];
    join_path(lp, path, "listener");
    if (!collect_section(p, listener, lp, &listener_section, f)) return;
    parse_listener_sasl(p, vc, &f[LISTENER_SASL], join_path(fp, lp, "sasl"));
    parse_listener_tls(p, vc, &f[LISTENER_TLS], join_path(fp, lp, "tls"));
    parse_listener_oauth(p, vc, &f[LISTENER_OAUTHBEARER], &f[LISTENER_SASL],
                         join_path(fp, lp, "oauthbearer"));
    get_bool(p, &f[LISTENER_ALLOW_PLAIN], join_path(fp, lp, "allow_plain_without_tls"),
             &vc->allow_plain_without_tls);
    long long ms = 0;
    if (get_int(p, &f[LISTENER_SESSION_MS], join_path(fp, lp, "sasl_session_ms"), 0,
                7LL * 24 * 3600 * 1000, &ms) > 0)
        vc->sasl_session_ms = ms;
    if (!vc->auth_gateway && (f[LISTENER_SASL].node || f[LISTENER_SESSION_MS].node))
        cfg_err(p, f[LISTENER_SASL].node ? f[LISTENER_SASL].loc : f[LISTENER_SESSION_MS].loc,
                "%s: SASL at kgate needs %s.auth: gateway", lp, path);
    if (vc->auth_gateway && !f[LISTENER_SASL].node)
        vc->sasl_mechanisms =
            KG_SASL_BIT(KG_SASL_SCRAM_SHA_256) | KG_SASL_BIT(KG_SASL_SCRAM_SHA_512);
    /* PLAIN puts passwords on the wire: only over TLS, unless the operator says otherwise. A
     * TLS port beside a plaintext one still leaves the plaintext one. */
    int plaintext_port = !vc->tls.enabled || vc->tls.port != 0;
    if ((vc->sasl_mechanisms & KG_SASL_BIT(KG_SASL_PLAIN)) && plaintext_port &&
        !vc->allow_plain_without_tls)
        cfg_err(p, f[LISTENER_SASL].loc,
                "%s: PLAIN sends passwords in clear on a plaintext port; give the listener "
                "tls: (without a second port), or set %s.allow_plain_without_tls: true to "
                "accept that",
                join_path(fp, lp, "sasl"), lp);
}

/* acls: enabled | disabled (default). */
static void parse_acls_mode(cfg_parser *p, kg_vcluster_cfg *vc, const cfg_val *v, const char *path)
{
    char mode[16] = "";
    if (get_string(p, v, path, mode, sizeof(mode)) <= 0) return;
    if (strcmp(mode, "enabled") == 0)
        vc->acls_enabled = 1;
    else if (strcmp(mode, "disabled") != 0)
        cfg_err(p, v->loc, "%s: must be enabled or disabled, not '%s'", path, mode);
}

static void parse_vcluster(cfg_parser *p, kg_vcluster_cfg *vc, vc_ports *ports,
                           const cfg_named *entry)
{
    char path[CFG_PATH_MAX], fp[CFG_PATH_MAX];
    cfg_val f[VC_N];
    snprintf(vc->name, sizeof(vc->name), "%s", entry->name);
    join_path(path, "vclusters", entry->name);
    vc->primary = vc->secondary = -1;
    vc->node_id_min = DEFAULT_NODE_ID_MIN;
    vc->node_id_max = DEFAULT_NODE_ID_MAX;
    if (!collect_section(p, &entry->val, path, &vcluster_section, f)) return;
    long long port = 0;
    int port_rc = get_int(p, &f[VC_PORT], join_path(fp, path, "port"), 1, 65535, &port);
    if (port_rc == 0)
        report_missing(p, &entry->val, &f[VC_PORT], path, "port",
                       "the bootstrap port clients connect to");
    vc->port = (uint16_t)port;
    if (!f[VC_PRIMARY].node)
        report_missing(p, &entry->val, &f[VC_PRIMARY], path, "primary",
                       "the cluster that is active by default");
    vc->primary = cluster_ref(p, &f[VC_PRIMARY], join_path(fp, path, "primary"));
    vc->secondary = cluster_ref(p, &f[VC_SECONDARY], join_path(fp, path, "secondary"));
    if (vc->secondary >= 0 && vc->secondary == vc->primary) {
        cfg_err(p, f[VC_SECONDARY].loc,
                "%s: secondary must be a different cluster than primary ('%s')", fp,
                p->cfg->clusters[vc->primary].name);
        vc->secondary = -1;
    }
    parse_node_ids(p, vc, &f[VC_NODE_IDS], join_path(fp, path, "node_ids"));
    parse_leader_epochs(p, vc, &f[VC_LEADER_EPOCHS], join_path(fp, path, "leader_epochs"));
    parse_cluster_id(p, vc, &f[VC_CLUSTER_ID], join_path(fp, path, "cluster_id"));
    parse_parity(p, vc, &f[VC_PARITY], join_path(fp, path, "parity"));
    parse_vcluster_autofo(p, vc, &f[VC_AUTO_FAILOVER], join_path(fp, path, "auto_failover"));
    parse_offsets(p, vc, &f[VC_OFFSETS], join_path(fp, path, "offsets"));
    parse_mirror(p, vc, &f[VC_MIRROR], join_path(fp, path, "mirror"));
    parse_replication(p, vc, &f[VC_REPLICATION], join_path(fp, path, "replication"));
    parse_auth(p, vc, &f[VC_AUTH], &f[VC_LISTENER], path);
    /* Passthrough: the client's own login goes to the cluster; kgate logging in itself on the
     * same connection would make the two logins collide. */
    int sides[2] = {vc->primary, vc->secondary};
    for (int i = 0; i < 2 && vc->auth_passthrough; i++)
        if (sides[i] >= 0 && p->cfg->clusters[sides[i]].sasl.mechanism != KG_SASL_NONE)
            cfg_err(p, f[VC_AUTH].loc,
                    "%s.auth: passthrough lets clients log in to the clusters themselves, but "
                    "clusters.%s.sasl has kgate log in; remove one of them",
                    path, p->cfg->clusters[sides[i]].name);
    parse_acls_mode(p, vc, &f[VC_ACLS], join_path(fp, path, "acls"));
    /* ports[0]: the vcluster's port range; ports[1]: its TLS one beside it, if any. */
    long span = 1 + ((long)vc->node_id_max - vc->node_id_min);
    if (port_rc > 0 && vc->node_id_min >= 0)
        ports[0] = (vc_ports){1, (long)port, (long)port + span, f[VC_PORT].loc};
    if (vc->tls.port && vc->node_id_min >= 0)
        ports[1] = (vc_ports){1, vc->tls.port, (long)vc->tls.port + span, f[VC_LISTENER].loc};
}

static void check_port_ranges(cfg_parser *p, vc_ports *ports)
{
    kg_config *cfg = p->cfg;
    int n = 2 * cfg->n_vclusters; /* two ranges a vcluster, see parse_vcluster */
    static const char *const key[2] = {"port", "listener.tls.port"};
    for (int i = 0; i < n; i++) {
        const kg_vcluster_cfg *vc = &cfg->vclusters[i / 2];
        if (ports[i].valid && ports[i].hi > 65535) {
            cfg_err(p, ports[i].loc,
                    "vclusters.%s.%s: broker ports run to %ld (port + 1 + node ids %d-%d), "
                    "past 65535; lower port or narrow node_ids",
                    vc->name, key[i % 2], ports[i].hi, vc->node_id_min, vc->node_id_max);
            ports[i].valid = 0;
        }
    }
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < j && ports[j].valid; i++) {
            if (!ports[i].valid || ports[i].hi < ports[j].lo || ports[j].hi < ports[i].lo) continue;
            cfg_err(p, ports[j].loc,
                    "vclusters.%s.%s: ports %ld-%ld (bootstrap + broker ports) overlap "
                    "vcluster '%s' ports %ld-%ld (line %d)",
                    cfg->vclusters[j / 2].name, key[j % 2], ports[j].lo, ports[j].hi,
                    cfg->vclusters[i / 2].name, ports[i].lo, ports[i].hi, ports[i].loc.line);
        }
    }
}

static void check_admin_port(cfg_parser *p, const vc_ports *ports, cfg_loc admin_loc)
{
    kg_config *cfg = p->cfg;
    if (!cfg->admin_listen[0]) return;
    const char *host = cfg->admin_addr.host;
    /* Different explicit addresses can share a port number; a wildcard or the same address
     * cannot. */
    if (strcmp(host, cfg->listen) != 0 && !is_wildcard(host) && !is_wildcard(cfg->listen)) return;
    for (int i = 0; i < 2 * cfg->n_vclusters; i++) {
        if (ports[i].valid && cfg->admin_addr.port >= ports[i].lo &&
            cfg->admin_addr.port <= ports[i].hi)
            cfg_err(p, admin_loc, "admin.listen: port %u is inside vcluster '%s' ports %ld-%ld",
                    cfg->admin_addr.port, cfg->vclusters[i / 2].name, ports[i].lo, ports[i].hi);
    }
}

static void parse_vclusters(cfg_parser *p, const cfg_val *v, cfg_loc admin_loc)
{
    if (!v->node) {
        report_missing(p, v, v, "", "vclusters", "the virtual clusters clients connect to");
        return;
    }
    cfg_named *entries;
    int n = collect_named(p, v, "vclusters", "vcluster", &entries);
    if (n == 0 && fy_node_get_type(v->node) == FYNT_MAPPING &&
        fy_node_mapping_item_count(v->node) == 0)
        cfg_err(p, v->loc, "vclusters: define at least one virtual cluster");
    kg_config *cfg = p->cfg;
    cfg->vclusters = calloc(n > 0 ? (size_t)n : 1, sizeof(*cfg->vclusters));
    vc_ports *ports = calloc(n > 0 ? 2 * (size_t)n : 1, sizeof(*ports));
    if (!cfg->vclusters || !ports) {
        cfg_err(p, v->loc, "vclusters: out of memory");
        n = 0;
    }
    for (int i = 0; i < n; i++)
        parse_vcluster(p, &cfg->vclusters[i], &ports[2 * i], &entries[i]);
    cfg->n_vclusters = n;
    check_port_ranges(p, ports);
    check_admin_port(p, ports, admin_loc);
    free(ports);
    free(entries);
}

/* ---- other sections
 * ------------------------------------------------------------------------------- */

/* admin.tls: the admin API's certificate and key (both required), and the CA the CLI trusts. */
static void parse_admin_tls(cfg_parser *p, const cfg_val *v)
{
    kg_tls_cfg *tls = &p->cfg->admin_tls;
    cfg_val f[ATLS_N];
    if (!v->present) return;
    if (!v->node) {
        cfg_err(p, v->loc, "admin.tls: expected a mapping with cert_file and key_file");
        return;
    }
    if (!collect_section(p, v, "admin.tls", &admin_tls_section, f)) return;
    tls->enabled = 1;
    char fp[CFG_PATH_MAX];
    char *files[] = {tls->cert_file, tls->key_file, tls->ca_file};
    const char *what[] = {"the certificate chain (PEM) of the admin API",
                          "the private key of cert_file", NULL};
    for (int i = ATLS_CERT_FILE; i <= ATLS_CA_FILE; i++) {
        join_path(fp, "admin.tls", admin_tls_keys[i]);
        int rc = get_string(p, &f[i], fp, files[i], KG_PATH_MAX);
        if (rc > 0)
            check_readable(p, &f[i], fp, files[i]);
        else if (rc == 0 && what[i])
            report_missing(p, v, &f[i], "admin.tls", admin_tls_keys[i], what[i]);
    }
}

/* Returns the location of admin.listen, for the port collision check. */
static cfg_loc parse_admin(cfg_parser *p, const cfg_val *v)
{
    kg_config *cfg = p->cfg;
    cfg_val f[ADMIN_N];
    char fp[CFG_PATH_MAX];
    if (!collect_section(p, v, "admin", &admin_section, f)) return v->loc;
    int enabled = 1;
    get_bool(p, &f[ADMIN_ENABLED], "admin.enabled", &enabled);
    if (get_string(p, &f[ADMIN_LISTEN], "admin.listen", cfg->admin_listen,
                   sizeof(cfg->admin_listen)) < 0)
        cfg->admin_listen[0] = '\0';
    char why[128];
    if (cfg->admin_listen[0] &&
        parse_hostport(cfg->admin_listen, &cfg->admin_addr, why, sizeof(why)) != 0) {
        cfg_err(p, f[ADMIN_LISTEN].loc, "admin.listen: bad address '%s': %s", cfg->admin_listen,
                why);
        cfg->admin_listen[0] = '\0';
    }
    if (get_secret(p, "admin", &f[ADMIN_TOKEN], "token", &f[ADMIN_TOKEN_FILE], "token_file",
                   cfg->admin_token, cfg->admin_token_file) > 0) {
        const cfg_val *src = f[ADMIN_TOKEN].node ? &f[ADMIN_TOKEN] : &f[ADMIN_TOKEN_FILE];
        for (const char *c = cfg->admin_token; *c; c++) {
            if (*c <= ' ' || *c > '~') {
                cfg_err(p, src->loc, "%s: the token may only contain visible ASCII characters",
                        join_path(fp, "admin", f[ADMIN_TOKEN].node ? "token" : "token_file"));
                break;
            }
        }
    }
    parse_admin_tls(p, &f[ADMIN_TLS]);
    if (!enabled) {
        cfg->admin_listen[0] = '\0';
        memset(&cfg->admin_addr, 0, sizeof(cfg->admin_addr));
    }
    return f[ADMIN_LISTEN].loc;
}

static void parse_limits(cfg_parser *p, const cfg_val *v)
{
    kg_config *cfg = p->cfg;
    cfg_val f[LIMIT_N];
    if (!collect_section(p, v, "limits", &limits_section, f)) return;
    long long n;
    if (get_bytes(p, &f[LIMIT_MAX_FRAME_BYTES], "limits.max_frame_bytes", INT32_MAX, &n) > 0)
        cfg->max_frame_bytes = (uint32_t)n;
    if (get_bytes(p, &f[LIMIT_BUFFER_BYTES], "limits.buffer_bytes", INT32_MAX, &n) > 0)
        cfg->buffer_bytes = (uint32_t)n;
    if (get_int(p, &f[LIMIT_MAX_CONNECTIONS], "limits.max_connections", 1, INT_MAX, &n) > 0)
        cfg->max_connections = (int)n;
    if (get_int(p, &f[LIMIT_CONNECT_TIMEOUT_MS], "limits.connect_timeout_ms", 1, INT_MAX, &n) > 0)
        cfg->connect_timeout_ms = (int)n;
    if (get_int(p, &f[LIMIT_DRAIN_TIMEOUT_MS], "limits.drain_timeout_ms", 1, INT_MAX, &n) > 0)
        cfg->drain_timeout_ms = (int)n;
}

static void parse_switch(cfg_parser *p, const cfg_val *v)
{
    cfg_val f[SWITCH_N];
    long long n;
    if (!collect_section(p, v, "switch", &switch_section, f)) return;
    if (get_int(p, &f[SWITCH_GRACE_MS], "switch.grace_ms", 0, 60000, &n) > 0)
        p->cfg->switch_grace_ms = (int)n;
    get_bool(p, &f[SWITCH_LEAVE_GROUPS], "switch.leave_groups", &p->cfg->switch_leave);
    if (get_int(p, &f[SWITCH_PLANNED_HOLD_MS], "switch.planned_hold_ms", 1, 600000, &n) > 0)
        p->cfg->switch_planned_hold_ms = (int)n;
}

static void parse_health(cfg_parser *p, const cfg_val *v)
{
    cfg_val f[HEALTH_N];
    long long n;
    if (collect_section(p, v, "health", &health_section, f) &&
        get_int(p, &f[HEALTH_PROBE_INTERVAL_MS], "health.probe_interval_ms", 1, INT_MAX, &n) > 0)
        p->cfg->probe_interval_ms = (int)n;
}

/* log.format: text (default) | json — one JSON object per line, for log shippers. */
static void parse_log_format(cfg_parser *p, const cfg_val *v)
{
    char format[64];
    if (get_string(p, v, "log.format", format, sizeof(format)) <= 0) return;
    if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        cfg_err(p, v->loc, "log.format: unknown format '%s' (use text or json)", format);
        return;
    }
    snprintf(p->cfg->log_format, sizeof(p->cfg->log_format), "%s", format);
}

static void parse_log(cfg_parser *p, const cfg_val *v)
{
    cfg_val f[LOG_N];
    char level[64];
    if (!collect_section(p, v, "log", &log_section, f)) return;
    parse_log_format(p, &f[LOG_FORMAT]);
    if (get_string(p, &f[LOG_LEVEL], "log.level", level, sizeof(level)) <= 0) return;
    for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
        if (strcmp(level, log_levels[i]) == 0) {
            snprintf(p->cfg->log_level, sizeof(p->cfg->log_level), "%s", log_levels[i]);
            return;
        }
    }
    cfg_err(p, f[LOG_LEVEL].loc, "log.level: unknown level '%s' (use debug, info, warn or error)",
            level);
}

/* instance: who this kgate is in a fleet sharing a PostgreSQL state (fleet/kg_fleet.h). The
 * lease bounds how long an instance cut off from the state may go on routing, so it must leave
 * room for a few renewals (every lease_ms / 3) over a real network. */
static void parse_instance(cfg_parser *p, const cfg_val *v)
{
    kg_config *cfg = p->cfg;
    cfg_val f[INST_N];
    if (!collect_section(p, v, "instance", &instance_section, f)) return;
    if (get_string(p, &f[INST_NAME], "instance.name", cfg->instance_name,
                   sizeof(cfg->instance_name)) > 0 &&
        !valid_name(cfg->instance_name))
        cfg_err(p, f[INST_NAME].loc,
                "instance.name: '%s' is not a valid name (letters, digits, '.', '_' and '-', "
                "at most %d characters)",
                cfg->instance_name, KG_NAME_MAX - 1);
    long long n;
    if (get_int(p, &f[INST_LEASE_MS], "instance.lease_ms", KG_LEASE_MIN_MS, KG_LEASE_MAX_MS, &n) >
        0)
        cfg->lease_ms = (int)n;
    if (get_int(p, &f[INST_ACK_TIMEOUT_MS], "instance.ack_timeout_ms", 1, 600000, &n) > 0)
        cfg->ack_timeout_ms = (int)n;
    char mode[64];
    if (get_string(p, &f[INST_ON_STATE_LOSS], "instance.on_state_loss", mode, sizeof(mode)) <= 0)
        return;
    if (strcmp(mode, "fail-closed") == 0)
        cfg->serve_last_known = 0;
    else if (strcmp(mode, "serve-last-known") == 0)
        cfg->serve_last_known = 1;
    else
        cfg_err(p, f[INST_ON_STATE_LOSS].loc,
                "instance.on_state_loss: unknown mode '%s' (use fail-closed or serve-last-known)",
                mode);
}

/* instance.name defaults to the host name, cut to a valid name. */
static void default_instance_name(kg_config *cfg)
{
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) snprintf(host, sizeof(host), "kgate");
    static const char allowed[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    size_t n = 0;
    for (const char *c = host; *c && n < sizeof(cfg->instance_name) - 1; c++)
        cfg->instance_name[n++] = strchr(allowed, *c) ? *c : '-';
    cfg->instance_name[n] = '\0';
}

static void parse_addresses(cfg_parser *p, const cfg_val *f)
{
    kg_config *cfg = p->cfg;
    get_host(p, &f[ROOT_LISTEN], "listen", cfg->listen, sizeof(cfg->listen));
    int advertised = get_host(p, &f[ROOT_ADVERTISED_HOST], "advertised_host", cfg->advertised_host,
                              sizeof(cfg->advertised_host));
    if (advertised > 0 && is_wildcard(cfg->advertised_host))
        cfg_err(p, f[ROOT_ADVERTISED_HOST].loc,
                "advertised_host: '%s' is not an address clients can connect to; give the host "
                "name or IP clients use to reach kgate",
                cfg->advertised_host);
    if (advertised == 0 && is_wildcard(cfg->listen))
        cfg_err(p, f[ROOT_LISTEN].loc,
                "listen: '%s' listens on all interfaces, so advertised_host is required: clients "
                "cannot connect to %s; set advertised_host to the name or IP they use to reach "
                "kgate",
                cfg->listen, cfg->listen);
    if (advertised == 0)
        snprintf(cfg->advertised_host, sizeof(cfg->advertised_host), "%s", cfg->listen);
}

/* ---- chaos rules ------------------------------------------------------------------------ */

/* Chaos rules are validated by the chaos module (which knows the fault types); here they only
 * become JSON, the form the admin API takes too, with the line each rule starts on. */
static json_t *yaml_to_json(struct fy_node *node);

static json_t *yaml_scalar_to_json(struct fy_node *node)
{
    size_t len;
    const char *text = scalar_text(node, &len);
    if (fy_node_get_style(node) != FYNS_PLAIN) return json_stringn(text, len);
    if (node_is_null(node)) return json_null();
    if (text_is(text, len, "true")) return json_true();
    if (text_is(text, len, "false")) return json_false();
    char buf[64];
    if (len > 0 && len < sizeof(buf)) {
        memcpy(buf, text, len);
        buf[len] = '\0';
        char *end;
        long long i = strtoll(buf, &end, 10);
        if (*end == '\0') return json_integer(i);
        double d = strtod(buf, &end);
        if (*end == '\0') return json_real(d);
    }
    return json_stringn(text, len);
}

static json_t *yaml_to_json(struct fy_node *node)
{
    if (!node) return json_null();
    switch (fy_node_get_type(node)) {
    case FYNT_MAPPING: {
        json_t *obj = json_object();
        void *iter = NULL;
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(node, &iter))) {
            size_t len;
            const char *key = scalar_text(fy_node_pair_key(pair), &len);
            char k[128];
            snprintf(k, sizeof(k), "%.*s", (int)len, key);
            json_object_set_new(obj, k, yaml_to_json(fy_node_pair_value(pair)));
        }
        return obj;
    }
    case FYNT_SEQUENCE: {
        json_t *arr = json_array();
        void *iter = NULL;
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(node, &iter)))
            json_array_append_new(arr, yaml_to_json(item));
        return arr;
    }
    default:
        return yaml_scalar_to_json(node);
    }
}

static int text_problem(const unsigned char *s, size_t len, cfg_loc *loc, char *why,
                        size_t why_size);

struct json_t *kg_config_yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
    /* The same libfyaml, so the same refusals as a configuration file. */
    cfg_loc bad;
    char why[160];
    if (text_problem((const unsigned char *)text, len, &bad, why, sizeof(why)) != 0) {
        if (bad.line > 0)
            snprintf(err, errlen, "line %d, column %d: %s", bad.line, bad.col, why);
        else
            snprintf(err, errlen, "%s", why);
        return NULL;
    }
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET};
    struct fy_document *doc = fy_document_build_from_string(&pcfg, text, len);
    if (!doc) {
        snprintf(err, errlen, "not valid YAML (or JSON)");
        return NULL;
    }
    json_t *out = yaml_to_json(fy_document_root(doc));
    fy_document_destroy(doc);
    return out;
}

/* The line a rule starts on: that of its first key. */
static int rule_line(struct fy_node *rule, cfg_loc fallback)
{
    void *iter = NULL;
    struct fy_node_pair *pair =
        fy_node_get_type(rule) == FYNT_MAPPING ? fy_node_mapping_iterate(rule, &iter) : NULL;
    return node_loc(pair ? fy_node_pair_key(pair) : rule, fallback).line;
}

static void parse_chaos(cfg_parser *p, const cfg_val *v)
{
    if (!v->node) return;
    if (fy_node_get_type(v->node) != FYNT_SEQUENCE) {
        char what[64];
        cfg_err(p, v->loc, "chaos: expected a list of rules, got %s",
                describe(v->node, what, sizeof(what)));
        return;
    }
    kg_config *cfg = p->cfg;
    cfg->chaos_rules = json_array();
    int n = fy_node_sequence_item_count(v->node);
    cfg->chaos_rule_lines = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    void *iter = NULL;
    struct fy_node *item;
    for (int i = 0; (item = fy_node_sequence_iterate(v->node, &iter)); i++) {
        if (fy_node_get_type(item) != FYNT_MAPPING) {
            cfg_err(p, node_loc(item, v->loc), "chaos[%d]: expected a rule (a mapping)", i);
            continue;
        }
        if (cfg->chaos_rule_lines)
            cfg->chaos_rule_lines[json_array_size(cfg->chaos_rules)] = rule_line(item, v->loc);
        json_array_append_new(cfg->chaos_rules, yaml_to_json(item));
    }
}

/* acls: a list of bindings (mappings), kept as JSON; kg_acl checks their fields (kgate check,
 * start). */
static void parse_acls(cfg_parser *p, const cfg_val *v)
{
    if (!v->node) return;
    if (fy_node_get_type(v->node) != FYNT_SEQUENCE) {
        char what[64];
        cfg_err(p, v->loc, "acls: expected a list of ACL bindings, got %s",
                describe(v->node, what, sizeof(what)));
        return;
    }
    kg_config *cfg = p->cfg;
    cfg->acl_bindings = json_array();
    int n = fy_node_sequence_item_count(v->node);
    cfg->acl_binding_lines = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    void *iter = NULL;
    struct fy_node *item;
    for (int i = 0; (item = fy_node_sequence_iterate(v->node, &iter)); i++) {
        if (fy_node_get_type(item) != FYNT_MAPPING) {
            cfg_err(p, node_loc(item, v->loc), "acls[%d]: expected a binding (a mapping)", i);
            continue;
        }
        if (cfg->acl_binding_lines)
            cfg->acl_binding_lines[json_array_size(cfg->acl_bindings)] = rule_line(item, v->loc);
        json_array_append_new(cfg->acl_bindings, yaml_to_json(item));
    }
}

static void parse_root(cfg_parser *p, struct fy_node *root)
{
    kg_config *cfg = p->cfg;
    cfg_val top = {.node = node_is_null(root) ? NULL : root, .loc = {1, 1}, .key_loc = {1, 1}};
    cfg_val f[ROOT_N];
    if (!top.node) {
        cfg_err(p, top.loc, "the configuration is empty; it needs at least clusters and vclusters");
        return;
    }
    if (!collect_section(p, &top, "", &root_section, f)) return;
    parse_addresses(p, f);
    parse_clusters(p, &f[ROOT_CLUSTERS]);
    /* admin first: its port must not collide with a vcluster's. */
    cfg_loc admin_loc = parse_admin(p, &f[ROOT_ADMIN]);
    /* Before the vclusters: they inherit auto_failover, whose bound needs the probe interval. */
    parse_health(p, &f[ROOT_HEALTH]);
    cfg_loc global_enabled_at;
    parse_autofo(p, &cfg->auto_failover, &f[ROOT_AUTO_FAILOVER], "auto_failover",
                 &global_enabled_at);
    parse_vclusters(p, &f[ROOT_VCLUSTERS], admin_loc);
    get_string(p, &f[ROOT_STATE], "state", cfg->state_path, sizeof(cfg->state_path));
    long long ms;
    if (get_int(p, &f[ROOT_STATE_CONNECT_TIMEOUT], "state_connect_timeout_ms", 0, 3600000, &ms) > 0)
        cfg->state_connect_timeout_ms = (int)ms;
    if (get_int(p, &f[ROOT_STATE_STATEMENT_TIMEOUT], "state_statement_timeout_ms", 0, 3600000,
                &ms) > 0)
        cfg->state_statement_timeout_ms = (int)ms;
    long long workers;
    if (get_int(p, &f[ROOT_WORKERS], "workers", 0, MAX_WORKERS, &workers) > 0)
        cfg->workers = (int)workers;
    parse_limits(p, &f[ROOT_LIMITS]);
    parse_switch(p, &f[ROOT_SWITCH]);
    parse_log(p, &f[ROOT_LOG]);
    parse_chaos(p, &f[ROOT_CHAOS]);
    parse_acls(p, &f[ROOT_ACLS]);
    parse_instance(p, &f[ROOT_INSTANCE]);
}

/* ---- document ----------------------------------------------------------------------------------
 */

/* libfyaml reports through this as well as collecting; the collected copy is what we print. */
static void discard_diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len) {}

static void report_yaml_errors(cfg_parser *p, struct fy_diag *diag)
{
    void *iter = NULL;
    struct fy_diag_error *e;
    while ((e = fy_diag_errors_iterate(diag, &iter))) {
        if (e->type < FYET_ERROR) continue;
        cfg_loc loc = {e->line > 0 ? e->line : 1, e->column > 0 ? e->column : 1};
        cfg_err(p, loc, "YAML syntax error: %s", e->msg ? e->msg : "malformed document");
    }
}

/* What a configuration never needs is refused before libfyaml (0.7.12) sees it, because
 * libfyaml does not handle all of it safely (found by fuzz_config, and by timing it):
 *   - a reserved directive holding UTF-8 its decoder rejects (an overlong form or a surrogate:
 *     "%a\xe0\x91\x90" at the start of a line) makes fy_scan_directive loop forever -- in
 *     `kgate check` and in the reload a SIGHUP starts;
 *   - a tab where a block indicator follows an explicit key ("? a:\t? b") crashes it
 *     (fy_indent_vacuum_internal, at fy_parser_destroy);
 *   - two escaped quotes in a row in a single-quoted string ("'a''''b'", more than once) leak
 *     the text buffer (fy_atom_iter_grow_chunk);
 *   - it takes quadratic time over a run of blank lines inside a scalar (160000 take 15 s) and
 *     over anchors (20000 take 1 s); and it silently accepts malformed UTF-8 and stops at a NUL.
 * So a file is refused when it is larger than MAX_FILE_BYTES, holds a NUL, a tab or another
 * control character (CR and LF are line ends), anything but strict UTF-8, a directive (a line
 * starting with '%'; a kgate file has no use for %YAML or %TAG), four single quotes in a row,
 * more than MAX_BLANK_RUN blank lines in a row or more than MAX_ANCHORS '&'. YAML never
 * allows tabs for indentation, so a file only loses tabs between tokens, which spaces replace.
 * What remains is bounded by libfyaml itself (nesting deeper than 64 levels is a syntax error,
 * aliases are not expanded) and by the size: the rest is linear, well under 1 s per MiB.
 * Returns 0, or -1 with *LOC and WHY set. */
#define MAX_BLANK_RUN 1000
#define MAX_ANCHORS 1000

/* The length of the UTF-8 sequence at S[I] (of LEN), or 0 when it is not strict RFC 3629 UTF-8
 * (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_length(const unsigned char *s, size_t i, size_t len)
{
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > len || c == 0xc0 || c == 0xc1 || c > 0xf4) return 0;
    for (size_t k = 1; k < n; k++)
        if ((s[i + k] & 0xc0) != 0x80) return 0;
    unsigned char b = n > 2 ? s[i + 1] : 0x80;
    if ((c == 0xe0 && b < 0xa0) || (c == 0xed && b > 0x9f) || (c == 0xf0 && b < 0x90) ||
        (c == 0xf4 && b > 0x8f))
        return 0;
    return n;
}

static int text_problem(const unsigned char *s, size_t len, cfg_loc *loc, char *why,
                        size_t why_size)
{
    *loc = (cfg_loc){0, 0};
    if (len > MAX_FILE_BYTES) {
        snprintf(why, why_size, "the configuration is larger than %d MiB",
                 MAX_FILE_BYTES / (1024 * 1024));
        return -1;
    }
    int line = 1, col = 1, quotes = 0, blank_run = 0, anchors = 0;
    int blank = 1; /* the line so far holds only spaces */
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = utf8_length(s, i, len);
        *loc = (cfg_loc){line, col};
        quotes = c == '\'' ? quotes + 1 : 0;
        anchors += c == '&';
        if (c == 0) {
            snprintf(why, why_size, "the file contains a NUL byte");
        } else if (n == 0) {
            snprintf(why, why_size, "the file is not valid UTF-8 (byte 0x%02x)", c);
        } else if (c == '\t') {
            snprintf(why, why_size,
                     "the file contains a tab; indent and separate with spaces (in a "
                     "double-quoted string, write \\t)");
        } else if ((c < 0x20 && c != '\n' && c != '\r') || c == 0x7f) {
            snprintf(why, why_size, "the file contains a control character (byte 0x%02x)", c);
        } else if (c == '%' && col == 1) {
            snprintf(why, why_size,
                     "YAML directives (a line starting with '%%') are not supported in a kgate "
                     "configuration; quote a value that starts with '%%'");
        } else if (quotes == 4) {
            snprintf(why, why_size,
                     "four single quotes in a row are not supported; write the value in double "
                     "quotes");
        } else if (anchors > MAX_ANCHORS) {
            snprintf(why, why_size, "more than %d anchors ('&') in one file", MAX_ANCHORS);
        } else {
            /* Columns as libfyaml counts them, so that every '%' it would scan as a directive
             * is seen here at column 1: a lone CR ends a line too, and a byte order mark takes
             * no room (both "\xef\xbb\xbf%..." and "a\r%..." reach the loop). */
            int bom = n == 3 && c == 0xef && s[i + 1] == 0xbb && s[i + 2] == 0xbf;
            if (c == '\n' || (c == '\r' && (i + 1 == len || s[i + 1] != '\n'))) {
                blank_run = blank ? blank_run + 1 : 0;
                if (blank_run > MAX_BLANK_RUN) {
                    loc->col = 1;
                    snprintf(why, why_size, "more than %d blank lines in a row", MAX_BLANK_RUN);
                    return -1;
                }
                blank = 1;
                line++;
                col = 1;
            } else if (c != '\r' && !bom) {
                blank &= c == ' ';
                col++;
            }
            i += n;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Parses YAML into *DOC (NULL on failure, errors reported). A second document in the stream is
 * an error rather than silently ignored. */
static struct fy_document *load_document(cfg_parser *p, const char *yaml, size_t len,
                                         struct fy_parser **parser_out, struct fy_diag **diag_out)
{
    *parser_out = NULL;
    *diag_out = NULL;
    cfg_loc bad;
    char why[160];
    if (text_problem((const unsigned char *)yaml, len, &bad, why, sizeof(why)) != 0) {
        cfg_err(p, bad, "%s", why);
        return NULL;
    }
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = discard_diag_output;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_ALLOW_DUPLICATE_KEYS, .diag = diag};
    struct fy_parser *parser = diag ? fy_parser_create(&pcfg) : NULL;
    *parser_out = parser;
    *diag_out = diag;
    if (!parser || fy_parser_set_string(parser, yaml, len) != 0) {
        cfg_err(p, (cfg_loc){0, 0}, "cannot set up the YAML parser (out of memory)");
        return NULL;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_document *doc = fy_parse_load_document(parser);
    if (doc) {
        struct fy_document *extra = fy_parse_load_document(parser);
        if (extra) {
            struct fy_document_state *st = fy_document_get_document_state(extra);
            const struct fy_mark *m = st ? fy_document_state_start_mark(st) : NULL;
            cfg_loc loc = m ? (cfg_loc){m->line + 1, m->column + 1} : (cfg_loc){1, 1};
            cfg_err(p, loc, "only one YAML document is allowed; a second one starts here");
            fy_parse_document_destroy(parser, extra);
        }
    }
    int before = p->n_errs;
    report_yaml_errors(p, diag);
    if (!doc && p->n_errs == before)
        cfg_err(p, (cfg_loc){1, 1},
                "the configuration is empty; it needs at least clusters and vclusters");
    return doc;
}

static void set_defaults(kg_config *cfg, const char *name)
{
    snprintf(cfg->path, sizeof(cfg->path), "%s", name);
    snprintf(cfg->listen, sizeof(cfg->listen), "%s", DEFAULT_LISTEN);
    snprintf(cfg->admin_listen, sizeof(cfg->admin_listen), "%s", DEFAULT_ADMIN_LISTEN);
    snprintf(cfg->admin_addr.host, sizeof(cfg->admin_addr.host), "127.0.0.1");
    cfg->admin_addr.port = 19644;
    snprintf(cfg->state_path, sizeof(cfg->state_path), "%s", DEFAULT_STATE_PATH);
    kg_store_options store_defaults = KG_STORE_OPTIONS_DEFAULT;
    cfg->state_connect_timeout_ms = store_defaults.connect_timeout_ms;
    cfg->state_statement_timeout_ms = store_defaults.statement_timeout_ms;
    cfg->max_frame_bytes = DEFAULT_MAX_FRAME_BYTES;
    cfg->buffer_bytes = DEFAULT_BUFFER_BYTES;
    cfg->max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    cfg->drain_timeout_ms = DEFAULT_DRAIN_TIMEOUT_MS;
    cfg->switch_grace_ms = DEFAULT_SWITCH_GRACE_MS;
    cfg->switch_leave = 1;
    cfg->switch_planned_hold_ms = DEFAULT_SWITCH_PLANNED_HOLD_MS;
    cfg->probe_interval_ms = DEFAULT_PROBE_INTERVAL_MS;
    default_instance_name(cfg);
    cfg->lease_ms = 3000;
    cfg->ack_timeout_ms = 2000;
    cfg->auto_failover.after_ms = 30000;
    cfg->auto_failover.min_interval_ms = 600000;
    snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
    snprintf(cfg->log_format, sizeof(cfg->log_format), "text");
}

static void resolve_workers(kg_config *cfg)
{
    if (cfg->workers > 0) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cores > 0 ? (int)(cores < MAX_WORKERS ? cores : MAX_WORKERS) : 1;
}

/* ---- public API
 * ----------------------------------------------------------------------------------- */

kg_config *kg_config_parse(const char *name, const char *yaml, size_t len, FILE *errs,
                           int *n_errors)
{
    cfg_parser p = {.name = name ? name : "<config>"};
    p.cfg = calloc(1, sizeof(*p.cfg));
    if (!p.cfg) {
        cfg_err(&p, (cfg_loc){0, 0}, "out of memory");
    } else {
        set_defaults(p.cfg, p.name);
        struct fy_parser *parser = NULL;
        struct fy_diag *diag = NULL;
        struct fy_document *doc =
            load_document(&p, yaml ? yaml : "", yaml ? len : 0, &parser, &diag);
        if (doc) parse_root(&p, fy_document_root(doc));
        if (doc) fy_parse_document_destroy(parser, doc);
        if (parser) fy_parser_destroy(parser);
        if (diag) fy_diag_destroy(diag);
        resolve_workers(p.cfg);
    }
    int total = p.n_errs + p.n_lost;
    print_errors(&p, errs);
    free_errors(&p);
    if (n_errors) *n_errors = total;
    if (total > 0) {
        kg_config_free(p.cfg);
        return NULL;
    }
    return p.cfg;
}

kg_config *kg_config_load(const char *path, FILE *errs, int *n_errors)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errs) fprintf(errs, "%s: cannot open: %s\n", path, strerror(errno));
        if (n_errors) *n_errors = 1;
        return NULL;
    }
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t len = buf ? fread(buf, 1, MAX_FILE_BYTES + 1, f) : 0;
    const char *problem = !buf ? "out of memory" : ferror(f) ? "read error" : NULL;
    if (!problem && len > MAX_FILE_BYTES) problem = "file is larger than 1 MiB";
    fclose(f);
    if (problem) {
        if (errs) fprintf(errs, "%s: cannot load: %s\n", path, problem);
        if (n_errors) *n_errors = 1;
        free(buf);
        return NULL;
    }
    kg_config *cfg = kg_config_parse(path, buf, len, errs, n_errors);
    free(buf);
    return cfg;
}

void kg_config_free(kg_config *cfg)
{
    if (!cfg) return;
    /* Secrets (passwords, the admin token) should not linger in freed heap memory. */
    for (int i = 0; i < cfg->n_clusters; i++) {
        free(cfg->clusters[i].bootstrap);
        kg_sasl_cfg *sasl = &cfg->clusters[i].sasl;
        if (sasl->swaps) explicit_bzero(sasl->swaps, (size_t)sasl->n_swaps * sizeof(*sasl->swaps));
        free(sasl->swaps);
        explicit_bzero(sasl, sizeof(*sasl));
    }
    free(cfg->clusters);
    free(cfg->vclusters);
    json_decref(cfg->chaos_rules);
    free(cfg->chaos_rule_lines);
    json_decref(cfg->acl_bindings);
    free(cfg->acl_binding_lines);
    explicit_bzero(cfg, sizeof(*cfg));
    free(cfg);
}

int kg_config_cluster_index(const kg_config *cfg, const char *name)
{
    for (int i = 0; cfg && name && i < cfg->n_clusters; i++)
        if (strcmp(cfg->clusters[i].name, name) == 0) return i;
    return -1;
}

int kg_config_vcluster_index(const kg_config *cfg, const char *name)
{
    for (int i = 0; cfg && name && i < cfg->n_vclusters; i++)
        if (strcmp(cfg->vclusters[i].name, name) == 0) return i;
    return -1;
}

const char *kg_config_sasl_mechanism_name(enum kg_sasl_mechanism mechanism)
{
    if ((int)mechanism < 0 || (size_t)mechanism >= sizeof(sasl_names) / sizeof(sasl_names[0]))
        return "unknown";
    return sasl_names[mechanism];
}
