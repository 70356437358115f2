/* kg_admin — the admin HTTP API (libmicrohttpd + jansson). docs/api.md documents every route.
 *
 * The server runs on its own threads (a small pool, so a slow switch never blocks /metrics or
 * /healthz) and knows nothing about the engine: the gateway plugs in through kg_admin_ops
 * callbacks (kg_admin_gateway), and the routes of other modules are table entries
 * (kg_admin_route) defined beside it in admin/ (kg_admin_chaos, kg_admin_experiments): the
 * modules themselves know nothing of HTTP.
 *
 * Authentication: when a bootstrap token is configured (admin.token) or any token is kept in the
 * state store (kgate token add), every route except /healthz and /readyz needs
 * "Authorization: Bearer TOKEN"; otherwise 401 with "WWW-Authenticate: Bearer". Tokens are known
 * by their SHA-256 only, compared in constant time (kg_admin_tokens.h).
 * Authorization: every route declares the role it needs (kg_admin_route.role): viewer (reads),
 * operator (switches, chaos, experiments, reload), admin (users, ACLs, tokens). A token whose role
 * is lower gets 403 naming the role needed. The bootstrap token has the admin role; with no token
 * at all the API is open and the anonymous caller is an admin.
 * Every error is a JSON body {"error": "message"}.
 */
#ifndef KG_ADMIN_H
#define KG_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics/kg_metrics.h"
#include "state/kg_store.h"

typedef struct kg_admin kg_admin;

#define KG_ADMIN_MAX_PARAMS 4
#define KG_ADMIN_MAX_BODY (64 * 1024)
#define KG_ADMIN_MAX_HEADERS 8

/* One request as a handler sees it, and the reply it fills in (through the helpers below). */
typedef struct kg_admin_request {
    kg_admin *admin;
    const char *method;
    const char *path;
    const char *params[KG_ADMIN_MAX_PARAMS]; /* the "{}" segments of the route, URL-decoded */
    int n_params;
    json_t *body; /* the JSON object sent (NULL when the request had no body) */
    /* Who is calling, for logs and audit entries: "token:NAME" (the token's name, "bootstrap" for
     * the config's token; never the token) or "anonymous", plus " user:NAME" when an X-Kgate-User
     * header was sent (informational, not authenticated) and " from ADDR". */
    const char *actor;
    const char *token_name; /* the caller's token name, or NULL when anonymous */
    int role;               /* the caller's kg_admin_role */
    void *connection;       /* libmicrohttpd's, for kg_admin_query */

    /* Reply: JSON (reply) or text (reply_text + reply_type, malloc'd), or bytes that outlive
     * the server (reply_static + reply_static_len + reply_type: the console's assets). */
    int status;
    json_t *reply;
    char *reply_text;
    const char *reply_type;
    const unsigned char *reply_static;
    size_t reply_static_len;
    /* Extra reply headers, name and value (static strings or the request's own storage); a
     * "Cache-Control" here replaces the default "no-store". See kg_admin_add_header. */
    const char *reply_headers[KG_ADMIN_MAX_HEADERS][2];
    int n_reply_headers;
} kg_admin_request;

/* Handles a routed request; returns the HTTP status, having set the reply. CTX is the route's. */
typedef int (*kg_admin_handler)(void *ctx, kg_admin_request *req);

/* Roles, each including the ones below it. KG_ROLE_UNDECLARED is not a role: a non-public route
 * that declares none is refused by kg_admin_start (fail closed). */
typedef enum kg_admin_role {
    KG_ROLE_UNDECLARED = 0,
    KG_ROLE_VIEWER = 1,   /* GET: status, metrics, audit, lists */
    KG_ROLE_OPERATOR = 2, /* + failover/failback, chaos rules, experiments, reload */
    KG_ROLE_ADMIN = 3,    /* + users, ACLs, tokens, config */
} kg_admin_role;

/* "viewer", "operator", "admin" ("none" for KG_ROLE_UNDECLARED). */
const char *kg_admin_role_name(int role);
/* KG_ROLE_VIEWER..KG_ROLE_ADMIN from its name (case-insensitive), or KG_ROLE_UNDECLARED. */
kg_admin_role kg_admin_role_parse(const char *name);

enum {
    KG_ADMIN_PUBLIC = 1,    /* no token needed (health probes) */
    KG_ADMIN_JSON_BODY = 2, /* a JSON object body is read and parsed (optional for the client) */
    /* A change that needs no shared state (e.g. draining this instance): allowed while
     * kg_admin_ops.state_lost says the state store is out of reach. */
    KG_ADMIN_NO_STATE = 4,
};

typedef struct kg_admin_route {
    const char *method;  /* "GET", "POST", "PUT", "DELETE" */
    const char *pattern; /* e.g. "/v1/chaos/rules/{}"; "{}" matches one non-empty segment */
    kg_admin_handler handler;
    void *ctx;
    unsigned flags;
    kg_admin_role role; /* the least role a caller needs (ignored for KG_ADMIN_PUBLIC routes) */
} kg_admin_route;

typedef struct kg_admin_ops {
    void *ctx;
    /* GET /v1/status body (new reference): {"vclusters": [{"name", "port", "primary",
     * "secondary", "active", "epoch", "client_connections", ...}], "clusters": [{"name", "up",
     * "probe_ms", "last_error", ...}]} — the fields `kgate status` shows (docs/api.md). */
    json_t *(*status)(void *ctx);
    /* Failover (FAILBACK 0) or failback (FAILBACK 1) of VCLUSTER to cluster TO, or when TO is
     * NULL to the default side (failover: the secondary; failback: the primary). Returns the
     * HTTP status (200 switched or already active, 404 unknown vcluster or cluster, 409 refused,
     * e.g. target down without FORCE) and sets *RESULT to the JSON body (new reference):
     *   switched:       {"vcluster", "from", "to", "epoch", "connections_closed",
     *                    "duration_ms", "changed": true, ...}
     *   already active: {"vcluster", "active", "epoch", "changed": false, ...}
     *   refused:        {"error": "...", ...}
     * The callback serializes concurrent switches and writes the audit log itself: successful
     * switches through kg_store_commit_switch(), refusals as "switch.refused". kg_admin writes
     * no switch entry, so nothing is recorded twice (it audits only its own events: a 403,
     * "admin.forbidden", and the tokens, "token.add" / "token.remove"). */
    int (*switch_vcluster)(void *ctx, const char *vcluster, const char *to, const char *reason,
                           const char *actor, int force, int failback, json_t **result);
    /* The same as a planned switchover ("planned": true; route/kg_planned.h), holding Produce
     * requests at most HOLD_MAX_MS (0: the config's). NULL: planned switches are refused. */
    int (*switch_planned)(void *ctx, const char *vcluster, const char *to, const char *reason,
                          const char *actor, int failback, int hold_max_ms, json_t **result);
    int (*ready)(void *ctx); /* /readyz: 1 ready; NULL = always ready */
    /* /readyz when not ready: why ("draining", ...), written to BUF or static; may be NULL */
    const char *(*unready_reason)(void *ctx, char *buf, size_t len);
    /* /readyz body {"ready": bool, "reason"?, ...} (new reference); when set, it answers
     * instead of READY and UNREADY_REASON (503 when "ready" is false). May be NULL. */
    json_t *(*readiness)(void *ctx);
    /* NULL while the state can be changed; else why not ("state store unreachable: ..."):
     * every request but a GET (and KG_ADMIN_NO_STATE routes) is then answered 503. May be NULL. */
    const char *(*state_lost)(void *ctx);
    void (*collect_metrics)(void *ctx); /* refresh gauges before /metrics renders; may be NULL */
    /* Routes of other modules (chaos rules, experiments), matched after the built-in ones. */
    const kg_admin_route *extra_routes;
    int n_extra_routes;
} kg_admin_ops;

/* Copies the N routes of TABLE (whose ctx is ignored) into OUT with CTX as every route's
 * context, so a module keeps one static table and binds it to its object. Returns N. */
int kg_admin_bind_routes(kg_admin_route *out, const kg_admin_route *table, int n, void *ctx);

/* HTTPS: reads the certificate and key files again; new connections get them, open ones keep
 * theirs. 0 (also without TLS), or -1 with the reason in ERR and the old certificate kept. */
int kg_admin_reload_tls(kg_admin *admin, char *err, size_t errlen);

/* Starts serving on LISTEN ("host:port", "[v6]:port"; port 0 = ephemeral, see kg_admin_port).
 * TOKEN NULL or "" = no authentication. OPS and its extra routes are copied; STORE and METRICS are
 * borrowed and may be NULL (their routes then answer 503). NULL with a message in ERR on failure.
 */
kg_admin *kg_admin_start(const char *listen, const char *token, const kg_admin_ops *ops,
                         kg_store *store, kg_metrics *metrics, char *err, size_t errlen);

typedef struct kg_admin_options {
    const char *listen; /* as for kg_admin_start */
    const char *token;  /* the bootstrap token (admin role); NULL or "" = none */
    /* HTTPS when both are set: PEM certificate chain and its (unencrypted) private key, read
     * once at start. TLS 1.2 and 1.3 only. */
    const char *tls_cert_file;
    const char *tls_key_file;
} kg_admin_options;

/* kg_admin_start with the options above. */
kg_admin *kg_admin_start_opts(const kg_admin_options *opts, const kg_admin_ops *ops,
                              kg_store *store, kg_metrics *metrics, char *err, size_t errlen);
/* The store the API was started with (NULL when none); for the routes of kg_admin_tokens. */
kg_store *kg_admin_store(const kg_admin *admin);
/* 1 when a bootstrap token is configured. */
int kg_admin_has_bootstrap_token(const kg_admin *admin);
/* 1 when the API is served over TLS. */
int kg_admin_is_tls(const kg_admin *admin);
/* Stops accepting, waits for requests being handled, frees. */
void kg_admin_stop(kg_admin *admin);
uint16_t kg_admin_port(const kg_admin *admin);

/* ---- helpers for handlers ---- */

/* Sets {"error": message} and returns STATUS. */
int kg_admin_error(kg_admin_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets BODY (stolen) as the reply and returns STATUS. */
int kg_admin_reply(kg_admin_request *req, int status, json_t *body);
/* MARKDOWN (stolen; NULL: out of memory, answered 500) as a 200 text/markdown reply. */
int kg_admin_reply_markdown(kg_admin_request *req, char *markdown);
/* An empty reply; returns 204. */
int kg_admin_no_content(kg_admin_request *req);
/* Adds reply header NAME: VALUE (both must outlive the request); -1 when there are
 * KG_ADMIN_MAX_HEADERS already. */
int kg_admin_add_header(kg_admin_request *req, const char *name, const char *value);
/* A request header, or NULL. */
const char *kg_admin_header(const kg_admin_request *req, const char *name);
/* A query-string argument (already URL-decoded), or NULL. */
const char *kg_admin_query(const kg_admin_request *req, const char *key);

typedef enum kg_admin_field_type {
    KG_FIELD_STRING,
    KG_FIELD_BOOL,
    KG_FIELD_INT,
    KG_FIELD_NUMBER,
    KG_FIELD_OBJECT,
    KG_FIELD_ARRAY,
    KG_FIELD_ANY,
} kg_admin_field_type;

typedef struct kg_admin_field {
    const char *name;
    kg_admin_field_type type;
    int required;
} kg_admin_field;

/* Checks req->body against FIELDS (terminated by {NULL}): unknown fields, wrong types and
 * missing required fields are a 400 naming the field. Returns 0 when the body is acceptable
 * (a missing body counts as {}), else the 400 it has set. */
int kg_admin_check_fields(kg_admin_request *req, const kg_admin_field *fields);

#endif
