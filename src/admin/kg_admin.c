/* kg_admin — see kg_admin.h and docs/api.md. */
#include "admin/kg_admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "admin/kg_admin_tokens.h"
#include "security/kg_tls.h"
#include "util/kg_log.h"

#define THREAD_POOL_SIZE 4
#define CONNECTION_LIMIT 128
#define CONNECTION_TIMEOUT_S 30
#define MAX_REASON 1024
#define AUDIT_DEFAULT_LIMIT 50
#define AUDIT_MAX_LIMIT 1000
/* GnuTLS priorities of the HTTPS admin API: its defaults, without TLS 1.0 and 1.1. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#define ADMIN_CHAIN_MAX 8

/* The certificate chain and key new HTTPS handshakes get (libmicrohttpd asks through
 * admin_pick_cert). A reload puts a new one in front; replaced ones stay alive until the API
 * stops, since a handshake that picked one may still be using it (reloads are rare). */
typedef struct admin_cert {
    struct admin_cert *older;
    gnutls_pcert_st chain[ADMIN_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
} admin_cert;

struct kg_admin {
    struct MHD_Daemon *daemon;
    kg_admin_ops ops;
    kg_store *store;
    kg_metrics *metrics;
    int has_token; /* a bootstrap token is configured */
    unsigned char token_digest[32];
    pthread_mutex_t cert_lock; /* guards `cert` */
    admin_cert *cert;          /* newest first; NULL: plain HTTP */
    char *cert_file, *key_file;
    kg_admin_route *routes;
    int n_routes;
    uint16_t port;
};

/* Per-request state across libmicrohttpd's calls: headers, body chunks, final dispatch. */
typedef struct request_state {
    kg_admin_request req;
    const kg_admin_route *route;
    char *body;
    size_t body_len;
    int body_too_large;
    int replied;
    char actor[256];
    char token_name[KG_ADMIN_TOKEN_NAME_MAX + 1];
    char param_buf[512];
    char allow[64];
} request_state;

/* ---- reply helpers ---- */

int kg_admin_reply(kg_admin_request *req, int status, json_t *body)
{
    json_decref(req->reply);
    req->reply = body;
    req->status = status;
    return status;
}

int kg_admin_reply_markdown(kg_admin_request *req, char *markdown)
{
    if (!markdown) return kg_admin_error(req, 500, "out of memory");
    free(req->reply_text);
    req->reply_text = markdown;
    req->reply_type = "text/markdown; charset=utf-8";
    return 200;
}

int kg_admin_no_content(kg_admin_request *req)
{
    /* 204 has no body: an empty text reply keeps kg_admin from sending "{}". */
    free(req->reply_text);
    req->reply_text = strdup("");
    req->reply_type = "application/json";
    return 204;
}

int kg_admin_error(kg_admin_request *req, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return kg_admin_reply(req, status, json_pack("{s:s}", "error", msg));
}

int kg_admin_add_header(kg_admin_request *req, const char *name, const char *value)
{
    if (req->n_reply_headers >= KG_ADMIN_MAX_HEADERS) return -1;
    req->reply_headers[req->n_reply_headers][0] = name;
    req->reply_headers[req->n_reply_headers++][1] = value;
    return 0;
}

const char *kg_admin_header(const kg_admin_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *kg_admin_query(const kg_admin_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

static const char *field_type_name(kg_admin_field_type type)
{
    static const char *const names[] = {"a string",  "a boolean", "an integer", "a number",
                                        "an object", "an array",  "any value"};
    return names[type];
}

static int field_type_matches(const json_t *value, kg_admin_field_type type)
{
    switch (type) {
    case KG_FIELD_STRING:
        return json_is_string(value);
    case KG_FIELD_BOOL:
        return json_is_boolean(value);
    case KG_FIELD_INT:
        return json_is_integer(value);
    case KG_FIELD_NUMBER:
        return json_is_number(value);
    case KG_FIELD_OBJECT:
        return json_is_object(value);
    case KG_FIELD_ARRAY:
        return json_is_array(value);
    case KG_FIELD_ANY:
        return 1;
    }
    return 0;
}

static const kg_admin_field *find_field(const kg_admin_field *fields, const char *name)
{
    for (const kg_admin_field *f = fields; f->name; f++)
        if (strcmp(f->name, name) == 0) return f;
    return NULL;
}

int kg_admin_check_fields(kg_admin_request *req, const kg_admin_field *fields)
{
    const char *key;
    json_t *value;
    json_object_foreach(req->body, key, value)
    {
        const kg_admin_field *f = find_field(fields, key);
        if (!f) return kg_admin_error(req, 400, "unknown field \"%s\"", key);
        if (!field_type_matches(value, f->type))
            return kg_admin_error(req, 400, "field \"%s\" must be %s", key,
                                  field_type_name(f->type));
    }
    for (const kg_admin_field *f = fields; f->name; f++)
        if (f->required && !json_object_get(req->body, f->name))
            return kg_admin_error(req, 400, "missing field \"%s\"", f->name);
    return 0;
}

static const char *body_string(const kg_admin_request *req, const char *name)
{
    return json_string_value(json_object_get(req->body, name));
}

/* ---- built-in handlers ---- */

static int handle_healthz(void *ctx, kg_admin_request *req)
{
    return kg_admin_reply(req, 200, json_pack("{s:s}", "status", "ok"));
}

static int handle_readyz(void *ctx, kg_admin_request *req)
{
    const kg_admin_ops *ops = &req->admin->ops;
    if (ops->readiness) {
        json_t *body = ops->readiness(ops->ctx);
        return kg_admin_reply(req, json_is_true(json_object_get(body, "ready")) ? 200 : 503, body);
    }
    int ready = ops->ready ? ops->ready(ops->ctx) : 1;
    json_t *body = json_pack("{s:b}", "ready", ready);
    char buf[256];
    const char *why =
        !ready && ops->unready_reason ? ops->unready_reason(ops->ctx, buf, sizeof(buf)) : NULL;
    if (why) json_object_set_new(body, "reason", json_string(why));
    return kg_admin_reply(req, ready ? 200 : 503, body);
}

static int handle_status(void *ctx, kg_admin_request *req)
{
    const kg_admin_ops *ops = &req->admin->ops;
    json_t *status = ops->status ? ops->status(ops->ctx) : NULL;
    if (!status) return kg_admin_error(req, 503, "status is not available");
    return kg_admin_reply(req, 200, status);
}

static int handle_metrics(void *ctx, kg_admin_request *req)
{
    kg_admin *a = req->admin;
    if (!a->metrics) return kg_admin_error(req, 503, "metrics are not enabled");
    if (a->ops.collect_metrics) a->ops.collect_metrics(a->ops.ctx);
    char *text = kg_metrics_render(a->metrics);
    if (!text) return kg_admin_error(req, 500, "out of memory rendering metrics");
    req->reply_text = text;
    req->reply_type = "text/plain; version=0.0.4; charset=utf-8";
    req->status = 200;
    return 200;
}

static int run_switch(kg_admin_request *req, int failback, const char *to)
{
    const char *action = failback ? "failback" : "failover";
    kg_admin *a = req->admin;
    const char *reason = body_string(req, "reason");
    int force = json_is_true(json_object_get(req->body, "force"));
    if (!reason) reason = "";
    if (strlen(reason) > MAX_REASON)
        return kg_admin_error(req, 400, "field \"reason\" is longer than %d bytes", MAX_REASON);
    if (!a->ops.switch_vcluster) return kg_admin_error(req, 503, "switching is not available");
    int planned = json_is_true(json_object_get(req->body, "planned"));
    json_t *hold = json_object_get(req->body, "hold_max_ms");
    if (hold && !planned)
        return kg_admin_error(req, 400, "field \"hold_max_ms\" applies to a planned switch only");
    if (hold && (json_integer_value(hold) < 1 || json_integer_value(hold) > 600000))
        return kg_admin_error(req, 400, "field \"hold_max_ms\" must be 1..600000");
    if (planned && force)
        return kg_admin_error(req, 400,
                              "\"planned\" and \"force\" do not go together: a planned switch "
                              "needs both sides up and in sync");
    if (planned && !a->ops.switch_planned)
        return kg_admin_error(req, 503, "planned switching is not available");

    json_t *result = NULL;
    int status = planned ? a->ops.switch_planned(a->ops.ctx, req->params[0], to, reason, req->actor,
                                                 failback, (int)json_integer_value(hold), &result)
                         : a->ops.switch_vcluster(a->ops.ctx, req->params[0], to, reason,
                                                  req->actor, force, failback, &result);
    if (status < 100 || status > 599) {
        kg_error("admin: switch callback returned invalid status %d", status);
        json_decref(result);
        result = json_pack("{s:s}", "error", "internal error");
        status = 500;
    }
    if (!result)
        result = status >= 400 ? json_pack("{s:s}", "error", "switch refused") : json_object();
    kg_info("admin: %s of %s%s%s by %s: %d", action, req->params[0], to ? " to " : "", to ? to : "",
            req->actor, status);
    return kg_admin_reply(req, status, result);
}

static int handle_failover(void *ctx, kg_admin_request *req)
{
    static const kg_admin_field fields[] = {
        {"to", KG_FIELD_STRING, 0},       {"reason", KG_FIELD_STRING, 0},
        {"force", KG_FIELD_BOOL, 0},      {"planned", KG_FIELD_BOOL, 0},
        {"hold_max_ms", KG_FIELD_INT, 0}, {NULL}};
    int bad = kg_admin_check_fields(req, fields);
    if (bad) return bad;
    const char *to = body_string(req, "to");
    if (to && !*to) return kg_admin_error(req, 400, "field \"to\" must not be empty");
    return run_switch(req, 0, to);
}

static int handle_failback(void *ctx, kg_admin_request *req)
{
    static const kg_admin_field fields[] = {{"reason", KG_FIELD_STRING, 0},
                                            {"force", KG_FIELD_BOOL, 0},
                                            {"planned", KG_FIELD_BOOL, 0},
                                            {"hold_max_ms", KG_FIELD_INT, 0},
                                            {NULL}};
    int bad = kg_admin_check_fields(req, fields);
    if (bad) return bad;
    return run_switch(req, 1, NULL);
}

/* Strict decimal parse: the whole string, within [MIN, MAX]. */
static int parse_int_arg(const char *text, long long min, long long max, long long *out)
{
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static json_t *audit_head_json(kg_store *store)
{
    int64_t last_seq;
    char hash[KG_STORE_HASH_HEX + 1];
    if (kg_store_audit_head(store, &last_seq, hash) != 0) return NULL;
    return json_pack("{s:I, s:s}", "last_seq", (json_int_t)last_seq, "last_hash", hash);
}

static int handle_audit_list(void *ctx, kg_admin_request *req)
{
    kg_store *store = req->admin->store;
    if (!store) return kg_admin_error(req, 503, "no state store");
    const char *after_arg = kg_admin_query(req, "after");
    const char *limit_arg = kg_admin_query(req, "limit");
    long long after = -1, limit = AUDIT_DEFAULT_LIMIT;
    if (after_arg && parse_int_arg(after_arg, 0, LLONG_MAX, &after) != 0)
        return kg_admin_error(req, 400, "query \"after\" must be a non-negative integer");
    if (limit_arg && parse_int_arg(limit_arg, 1, AUDIT_MAX_LIMIT, &limit) != 0)
        return kg_admin_error(req, 400, "query \"limit\" must be an integer from 1 to %d",
                              AUDIT_MAX_LIMIT);
    json_t *entries = kg_store_audit_list(store, after, (int)limit);
    json_t *head = audit_head_json(store);
    if (!entries || !head) {
        json_decref(entries);
        json_decref(head);
        return kg_admin_error(req, 500, "cannot read the audit log");
    }
    size_t n = json_array_size(entries);
    json_t *last_seq = n ? json_object_get(json_array_get(entries, n - 1), "seq") : NULL;
    return kg_admin_reply(
        req, 200,
        json_pack("{s:o, s:o, s:O?}", "entries", entries, "head", head, "next_after", last_seq));
}

static int handle_audit_verify(void *ctx, kg_admin_request *req)
{
    kg_store *store = req->admin->store;
    if (!store) return kg_admin_error(req, 503, "no state store");
    json_t *report = NULL;
    int rc = kg_store_audit_verify(store, &report);
    if (rc < 0) {
        const char *msg = json_string_value(json_object_get(report, "error"));
        kg_admin_error(req, 500, "cannot verify the audit log: %s", msg ? msg : "storage error");
        json_decref(report);
        return 500;
    }
    if (rc == 1)
        kg_warn("admin: audit chain broken: %s",
                json_string_value(json_object_get(report, "message")));
    /* A broken chain is a finding, not a failed request: 200 with "intact": false. */
    return kg_admin_reply(req, 200, report);
}

/* GET /v1/whoami: the caller's token and role, so the console shows only what it may do. */
static int handle_whoami(void *ctx, kg_admin_request *req)
{
    return kg_admin_reply(
        req, 200,
        json_pack("{s:s?, s:s}", "token", req->token_name, "role", kg_admin_role_name(req->role)));
}

/* Adding a route is one line here (or an entry in kg_admin_ops.extra_routes), with the role it
 * needs. */
static const kg_admin_route builtin_routes[] = {
    {"GET", "/healthz", handle_healthz, NULL, KG_ADMIN_PUBLIC, KG_ROLE_UNDECLARED},
    {"GET", "/readyz", handle_readyz, NULL, KG_ADMIN_PUBLIC, KG_ROLE_UNDECLARED},
    {"GET", "/metrics", handle_metrics, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/status", handle_status, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/whoami", handle_whoami, NULL, 0, KG_ROLE_VIEWER},
    {"POST", "/v1/vclusters/{}/failover", handle_failover, NULL, KG_ADMIN_JSON_BODY,
     KG_ROLE_OPERATOR},
    {"POST", "/v1/vclusters/{}/failback", handle_failback, NULL, KG_ADMIN_JSON_BODY,
     KG_ROLE_OPERATOR},
    {"GET", "/v1/audit", handle_audit_list, NULL, 0, KG_ROLE_VIEWER},
    {"GET", "/v1/audit/verify", handle_audit_verify, NULL, 0, KG_ROLE_VIEWER},
};
#define N_BUILTIN_ROUTES ((int)(sizeof(builtin_routes) / sizeof(builtin_routes[0])))

/* ---- roles ---- */

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *kg_admin_role_name(int role)
{
    return role >= KG_ROLE_VIEWER && role <= KG_ROLE_ADMIN ? role_names[role] : role_names[0];
}

kg_admin_role kg_admin_role_parse(const char *name)
{
    for (int r = KG_ROLE_VIEWER; name && r <= KG_ROLE_ADMIN; r++)
        if (strcasecmp(name, role_names[r]) == 0) return (kg_admin_role)r;
    return KG_ROLE_UNDECLARED;
}

/* ---- routing ---- */

/* Matches PATH against PATTERN segment by segment; "{}" matches one non-empty segment, whose
 * start and length are recorded in CAPS. Returns the number of captures, or -1: no match. */
static int match_pattern(const char *pattern, const char *path, const char *caps[],
                         size_t cap_lens[])
{
    int n = 0;
    const char *p = pattern, *s = path;
    while (*p == '/' && *s == '/') {
        p++;
        s++;
        size_t p_len = strcspn(p, "/");
        size_t s_len = strcspn(s, "/");
        if (p_len == 2 && strncmp(p, "{}", 2) == 0) {
            if (s_len == 0 || n == KG_ADMIN_MAX_PARAMS) return -1;
            caps[n] = s;
            cap_lens[n++] = s_len;
        } else if (p_len != s_len || strncmp(p, s, p_len) != 0) {
            return -1;
        }
        p += p_len;
        s += s_len;
    }
    return *p || *s ? -1 : n;
}

/* Copies the captured segments into the request's own NUL-terminated storage. */
static int store_params(request_state *rs, const char *caps[], const size_t cap_lens[], int n)
{
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (used + cap_lens[i] + 1 > sizeof(rs->param_buf)) return -1;
        memcpy(rs->param_buf + used, caps[i], cap_lens[i]);
        rs->param_buf[used + cap_lens[i]] = '\0';
        rs->req.params[i] = rs->param_buf + used;
        used += cap_lens[i] + 1;
    }
    rs->req.n_params = n;
    return 0;
}

/* Finds the route for the request's method and path. When another method has this path, fills
 * rs->allow with the methods that do (405 rather than 404). */
static const kg_admin_route *find_route(kg_admin *a, request_state *rs)
{
    rs->allow[0] = '\0';
    for (int i = 0; i < a->n_routes; i++) {
        const kg_admin_route *r = &a->routes[i];
        const char *caps[KG_ADMIN_MAX_PARAMS];
        size_t cap_lens[KG_ADMIN_MAX_PARAMS];
        int n = match_pattern(r->pattern, rs->req.path, caps, cap_lens);
        if (n < 0) continue;
        if (strcmp(r->method, rs->req.method) == 0)
            return store_params(rs, caps, cap_lens, n) == 0 ? r : NULL;
        size_t used = strlen(rs->allow);
        snprintf(rs->allow + used, sizeof(rs->allow) - used, "%s%s", used ? ", " : "", r->method);
    }
    return NULL;
}

/* ---- authentication and identity ---- */

/* The token of "Authorization: Bearer TOKEN", or NULL. */
static const char *bearer_token(struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return NULL;
    auth += 7;
    while (*auth == ' ')
        auth++;
    return *auth ? auth : NULL;
}

static void peer_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "unknown");
    if (!info || !info->client_addr) return;
    socklen_t slen = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                              : sizeof(struct sockaddr_in);
    if (getnameinfo(info->client_addr, slen, out, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, len, "unknown");
}

/* Copies an optional user name, keeping only characters that cannot forge log structure. */
static void sanitize_user(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < len && o < 64; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_' || c == '@';
        if (ok) out[o++] = c;
    }
    out[o] = '\0';
}

/* "token:NAME" (TOKEN_NAME, the verified token's name) or "anonymous" (NULL), then the optional
 * user and the peer: the same shape for every route, in logs and audit entries. */
static void build_actor(const char *token_name, struct MHD_Connection *conn, char *out, size_t len)
{
    char peer[INET6_ADDRSTRLEN + 8];
    peer_address(conn, peer, sizeof(peer));
    char user[72] = "";
    const char *user_hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Kgate-User");
    if (user_hdr) sanitize_user(user_hdr, user, sizeof(user));
    snprintf(out, len, "%s%s%s%s from %s", token_name ? "token:" : "anonymous",
             token_name ? token_name : "", user[0] ? " user:" : "", user, peer);
}

/* Who is calling. Sets the actor, the caller's role and token name. Returns 0 when the caller
 * may go on to routing (authenticated, or no token is needed), else the status of the error
 * reply it has set (401, or 503 when the tokens cannot be read). */
static int authenticate(kg_admin *a, struct MHD_Connection *conn, request_state *rs,
                        int public_route)
{
    kg_admin_request *req = &rs->req;
    const char *token = bearer_token(conn);
    kg_admin_identity who = {.role = KG_ROLE_UNDECLARED};
    int any_token = 0, found = 0;
    if (public_route) {
        any_token = a->has_token; /* health probes: no store read, no identity needed */
    } else {
        found = kg_admin_token_identify(a->store, a->has_token ? a->token_digest : NULL, token,
                                        &who, &any_token);
    }
    if (found == 1) {
        snprintf(rs->token_name, sizeof(rs->token_name), "%s", who.name);
        req->token_name = rs->token_name;
        req->role = who.role;
    } else {
        /* An open API (no token anywhere) lets the anonymous caller do everything. */
        req->role = any_token ? KG_ROLE_UNDECLARED : KG_ROLE_ADMIN;
    }
    build_actor(req->token_name, conn, rs->actor, sizeof(rs->actor));
    if (public_route || !any_token || found == 1) return 0;
    if (found < 0) {
        kg_error("admin: cannot read the admin tokens from the state store (%s %s, %s)",
                 req->method, req->path, rs->actor);
        return kg_admin_error(req, 503, "cannot read the admin tokens");
    }
    if (token)
        kg_warn("admin: unknown bearer token for %s %s (%s)", req->method, req->path, rs->actor);
    return kg_admin_error(req, 401, token ? "invalid bearer token" : "missing bearer token");
}

/* 403 for a caller whose role is below the route's, audited (the caller is authenticated, so
 * this cannot be used to flood the audit log anonymously). 0 when allowed. */
static int authorize(kg_admin *a, request_state *rs)
{
    kg_admin_request *req = &rs->req;
    const kg_admin_route *r = rs->route;
    if ((r->flags & KG_ADMIN_PUBLIC) || req->role >= (int)r->role) return 0;
    const char *needed = kg_admin_role_name(r->role), *has = kg_admin_role_name(req->role);
    kg_warn("admin: %s %s refused: needs the %s role, %s has %s", req->method, req->path, needed,
            rs->actor, has);
    if (a->store) {
        json_t *details =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "method", req->method, "path", req->path,
                      "required_role", needed, "role", has, "actor", rs->actor);
        kg_store_audit_append(a->store, "admin.forbidden", details);
        json_decref(details);
    }
    kg_admin_error(req, 403, "%s %s needs the %s role; token \"%s\" has the %s role", req->method,
                   req->path, needed, req->token_name ? req->token_name : "", has);
    json_object_set_new(req->reply, "required_role", json_string(needed));
    json_object_set_new(req->reply, "role", json_string(has));
    return 403;
}

/* ---- libmicrohttpd plumbing ---- */

/* The reply's body as a libmicrohttpd response: the static bytes, the text, or the JSON. */
static struct MHD_Response *reply_body(kg_admin_request *req, const char **type)
{
    *type = req->reply_type ? req->reply_type : "text/plain; charset=utf-8";
    if (req->reply_static)
        return MHD_create_response_from_buffer(req->reply_static_len, (void *)req->reply_static,
                                               MHD_RESPMEM_PERSISTENT);
    char *text = req->reply_text;
    if (!text) {
        if (!req->reply) req->reply = json_object();
        char *json = json_dumps(req->reply, JSON_INDENT(2));
        size_t n = json ? strlen(json) : 0;
        text = json ? realloc(json, n + 2) : NULL;
        if (!text) {
            free(json);
            return NULL;
        }
        memcpy(text + n, "\n", 2);
        *type = "application/json";
    }
    req->reply_text = NULL;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) free(text);
    return resp;
}

static enum MHD_Result send_reply(kg_admin *a, struct MHD_Connection *conn, request_state *rs)
{
    kg_admin_request *req = &rs->req;
    const char *type;
    struct MHD_Response *resp = reply_body(req, &type);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    int cache_set = 0;
    for (int i = 0; i < req->n_reply_headers; i++) {
        MHD_add_response_header(resp, req->reply_headers[i][0], req->reply_headers[i][1]);
        cache_set |= strcasecmp(req->reply_headers[i][0], "Cache-Control") == 0;
    }
    if (!cache_set) MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"kgate\"");
    if (req->status == 405 && rs->allow[0]) MHD_add_response_header(resp, "Allow", rs->allow);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    rs->replied = 1;
    if (a->metrics) {
        char labels[256], code[8];
        snprintf(code, sizeof(code), "%d", req->status);
        if (kg_metrics_format_labels(labels, sizeof(labels), "route",
                                     rs->route ? rs->route->pattern : "unmatched", "code", code,
                                     NULL) == 0)
            kg_counter_inc(kg_metrics_counter(a->metrics, "kgate_admin_requests_total",
                                              "Admin API requests, by route and status.", labels));
    }
    kg_debug("admin: %s %s -> %d (%s)", req->method, req->path, req->status, req->actor);
    return ok;
}

/* Checks what can be answered from the headers alone: route, method, token, declared size.
 * Returns 0 to go on reading the request, or the status of the error reply it has set. */
static int check_headers(kg_admin *a, struct MHD_Connection *conn, request_state *rs)
{
    kg_admin_request *req = &rs->req;
    rs->route = find_route(a, rs);
    int public_route = rs->route && (rs->route->flags & KG_ADMIN_PUBLIC);
    /* Authentication before routing errors, so an unauthenticated caller learns nothing. */
    int status = authenticate(a, conn, rs, public_route);
    if (status) return status;
    if (!rs->route && rs->allow[0])
        return kg_admin_error(req, 405, "method %s is not allowed on %s (allowed: %s)", req->method,
                              req->path, rs->allow);
    if (!rs->route)
        return kg_admin_error(req, 404, "no such endpoint: %s %s", req->method, req->path);
    status = authorize(a, rs);
    if (status) return status;
    const char *length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long long declared;
    if (length && parse_int_arg(length, 0, LLONG_MAX, &declared) == 0 &&
        declared > KG_ADMIN_MAX_BODY)
        return kg_admin_error(req, 413, "request body larger than %d bytes", KG_ADMIN_MAX_BODY);
    return 0;
}

static request_state *request_state_new(kg_admin *a, struct MHD_Connection *conn, const char *url,
                                        const char *method)
{
    request_state *rs = calloc(1, sizeof(*rs));
    if (!rs) return NULL;
    rs->req.admin = a;
    rs->req.method = method;
    rs->req.path = url;
    rs->req.connection = conn;
    rs->req.actor = rs->actor; /* filled in once the token is checked */
    return rs;
}

static void request_state_free(request_state *rs)
{
    if (!rs) return;
    json_decref(rs->req.body);
    json_decref(rs->req.reply);
    free(rs->req.reply_text);
    free(rs->body);
    free(rs);
}

static void append_body(request_state *rs, const char *data, size_t len)
{
    if (rs->body_too_large || rs->body_len + len > KG_ADMIN_MAX_BODY) {
        rs->body_too_large = 1;
        return;
    }
    char *grown = realloc(rs->body, rs->body_len + len + 1);
    if (!grown) {
        rs->body_too_large = 1;
        return;
    }
    memcpy(grown + rs->body_len, data, len);
    rs->body = grown;
    rs->body_len += len;
    rs->body[rs->body_len] = '\0';
}

/* Parses the body for routes that take one. Returns 0, or the status of the error set. */
static int parse_body(request_state *rs)
{
    kg_admin_request *req = &rs->req;
    if (rs->body_too_large)
        return kg_admin_error(req, 413, "request body larger than %d bytes", KG_ADMIN_MAX_BODY);
    if (!(rs->route->flags & KG_ADMIN_JSON_BODY) || rs->body_len == 0) return 0;
    json_error_t jerr;
    req->body = json_loadb(rs->body, rs->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req->body)
        return kg_admin_error(req, 400, "invalid JSON body: %s (line %d, column %d)", jerr.text,
                              jerr.line, jerr.column);
    if (!json_is_object(req->body))
        return kg_admin_error(req, 400, "the request body must be a JSON object");
    return 0;
}

static void dispatch(request_state *rs)
{
    kg_admin_request *req = &rs->req;
    if (parse_body(rs) != 0) return;
    const kg_admin_ops *ops = &req->admin->ops;
    const char *lost = NULL;
    if (strcmp(req->method, "GET") != 0 &&
        !(rs->route->flags & (KG_ADMIN_PUBLIC | KG_ADMIN_NO_STATE)) && ops->state_lost &&
        (lost = ops->state_lost(ops->ctx)) != NULL) {
        kg_admin_error(req, 503, "%s", lost);
        return;
    }
    int status = rs->route->handler(rs->route->ctx, req);
    if (status < 100 || status > 599) {
        kg_error("admin: handler for %s %s returned status %d", req->method, rs->route->pattern,
                 status);
        kg_admin_error(req, 500, "internal error");
        return;
    }
    req->status = status;
    if (!req->reply && !req->reply_text && !req->reply_static) req->reply = json_object();
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    kg_admin *a = cls;
    request_state *rs = *con_cls;
    if (!rs) {
        rs = request_state_new(a, conn, url, method);
        if (!rs) return MHD_NO;
        *con_cls = rs;
        if (check_headers(a, conn, rs) != 0) return send_reply(a, conn, rs);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!rs->replied) append_body(rs, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (rs->replied) return MHD_YES;
    dispatch(rs);
    return send_reply(a, conn, rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_state_free(*con_cls);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    kg_warn("admin: httpd: %s", msg);
}

/* ---- start / stop ---- */

/* Splits "host:port" / "[v6]:port" and resolves it numerically-or-by-name. */
static int resolve_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *addr_len,
                          char *err, size_t errlen)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "admin listen \"%s\": expected [address]:port", listen);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(close - listen - 1), listen + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon) {
            snprintf(err, errlen, "admin listen \"%s\": expected host:port", listen);
            return -1;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
        port = colon + 1;
    }
    long long port_num;
    if (parse_int_arg(port, 0, 65535, &port_num) != 0) {
        snprintf(err, errlen, "admin listen \"%s\": invalid port", listen);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "admin listen \"%s\": %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int kg_admin_bind_routes(kg_admin_route *out, const kg_admin_route *table, int n, void *ctx)
{
    for (int i = 0; i < n; i++) {
        out[i] = table[i];
        out[i].ctx = ctx;
    }
    return n;
}

/* The built-in routes, the token routes and OPS's, each checked to declare a role. */
static int build_routes(kg_admin *a, const kg_admin_ops *ops, char *err, size_t errlen)
{
    int n_extra = ops && ops->extra_routes ? ops->n_extra_routes : 0;
    int n = N_BUILTIN_ROUTES + KG_ADMIN_TOKENS_N_ROUTES + n_extra;
    a->routes = calloc((size_t)n, sizeof(kg_admin_route));
    if (!a->routes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(a->routes, builtin_routes, sizeof(builtin_routes));
    kg_admin_tokens_routes(a->routes + N_BUILTIN_ROUTES);
    if (n_extra)
        memcpy(a->routes + N_BUILTIN_ROUTES + KG_ADMIN_TOKENS_N_ROUTES, ops->extra_routes,
               sizeof(kg_admin_route) * (size_t)n_extra);
    a->n_routes = n;
    for (int i = 0; i < n; i++) {
        const kg_admin_route *r = &a->routes[i];
        if (!(r->flags & KG_ADMIN_PUBLIC) &&
            (r->role < KG_ROLE_VIEWER || r->role > KG_ROLE_ADMIN)) {
            snprintf(err, errlen, "admin route %s %s declares no role", r->method, r->pattern);
            return -1;
        }
    }
    return 0;
}

static void set_token(kg_admin *a, const char *token)
{
    if (!token || !*token) return;
    a->has_token = 1;
    kg_admin_token_digest(token, a->token_digest);
}

/* The whole of PATH as a NUL-terminated string (PEM for libmicrohttpd), or NULL + ERR. */
static char *read_pem(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "admin.tls.%s: cannot read %s: %s", what, path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = cap <= 1024 * 1024 ? realloc(text, cap) : NULL;
            if (!grown) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "admin.tls.%s: %s is too large", what, path);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    int failed = ferror(f);
    fclose(f);
    text[len] = '\0';
    if (failed || len == 0 || !strstr(text, "-----BEGIN ")) {
        snprintf(err, errlen, "admin.tls.%s: %s is not a PEM file", what, path);
        OPENSSL_cleanse(text, len);
        free(text);
        return NULL;
    }
    return text;
}

/* ---- HTTPS certificate (reloadable) ---- */

static void admin_cert_free(admin_cert *c)
{
    while (c) {
        admin_cert *older = c->older;
        for (unsigned i = 0; i < c->n; i++)
            gnutls_pcert_deinit(&c->chain[i]);
        if (c->key) gnutls_privkey_deinit(c->key);
        free(c);
        c = older;
    }
}

/* The PEM texts as libmicrohttpd's TLS (GnuTLS) takes them. */
static admin_cert *admin_cert_import(const char *cert_pem, const char *key_pem, char *err,
                                     size_t errlen)
{
    admin_cert *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gnutls_datum_t cert = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    gnutls_datum_t key = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)};
    c->n = ADMIN_CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(c->chain, &c->n, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        c->n = 0;
        snprintf(err, errlen, "admin.tls.cert_file: %s", gnutls_strerror(rc));
    } else if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
               (rc = gnutls_privkey_import_x509_raw(c->key, &key, GNUTLS_X509_FMT_PEM, NULL, 0)) <
                   0) {
        snprintf(err, errlen, "admin.tls.key_file: %s", gnutls_strerror(rc));
    } else {
        return c;
    }
    admin_cert_free(c);
    return NULL;
}

/* Reads and checks CERT_FILE and KEY_FILE: the same checks (and words) as a listener's
 * certificate (kg_tls: a PEM chain, a key that is the certificate's), then the import. */
static admin_cert *admin_cert_load(const char *cert_file, const char *key_file, char *err,
                                   size_t errlen)
{
    char *cert_pem = read_pem("cert_file", cert_file, err, errlen);
    char *key_pem = cert_pem ? read_pem("key_file", key_file, err, errlen) : NULL;
    admin_cert *c = NULL;
    if (key_pem) {
        kg_listener_tls_cfg check = {.enabled = 1};
        snprintf(check.cert_file, sizeof(check.cert_file), "%s", cert_file);
        snprintf(check.key_file, sizeof(check.key_file), "%s", key_file);
        char why[256];
        kg_tls_server *probe = kg_tls_server_new(&check, why, sizeof(why));
        if (probe)
            c = admin_cert_import(cert_pem, key_pem, err, errlen);
        else
            snprintf(err, errlen, "admin.tls: %s", why);
        kg_tls_server_free(probe);
    }
    if (key_pem) OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    free(cert_pem);
    return c;
}

/* The certificate callback has no argument of ours: it finds the API here by the listening
 * socket of the daemon the connection came to (the thread pool's daemons share it). */
#define ADMIN_HTTPS_MAX 16
static pthread_mutex_t https_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int listen_fd;
    kg_admin *admin;
} https_apis[ADMIN_HTTPS_MAX];

static int daemon_listen_fd(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_LISTEN_FD);
    return info ? info->listen_fd : -1;
}

static int https_register(kg_admin *a, struct MHD_Daemon *daemon)
{
    int fd = daemon_listen_fd(daemon);
    int ok = 0;
    pthread_mutex_lock(&https_lock);
    for (int i = 0; i < ADMIN_HTTPS_MAX && !ok; i++)
        if (!https_apis[i].admin || https_apis[i].admin == a) {
            https_apis[i].listen_fd = fd;
            https_apis[i].admin = a;
            ok = 1;
        }
    pthread_mutex_unlock(&https_lock);
    return ok && fd >= 0 ? 0 : -1;
}

static void https_unregister(kg_admin *a)
{
    pthread_mutex_lock(&https_lock);
    for (int i = 0; i < ADMIN_HTTPS_MAX; i++)
        if (https_apis[i].admin == a) https_apis[i].admin = NULL;
    pthread_mutex_unlock(&https_lock);
}

/* The newest certificate of the API that DAEMON serves, or NULL. */
static admin_cert *https_current(struct MHD_Daemon *daemon)
{
    admin_cert *c = NULL;
    int fd = daemon_listen_fd(daemon);
    pthread_mutex_lock(&https_lock);
    for (int i = 0; i < ADMIN_HTTPS_MAX && !c && fd >= 0; i++)
        if (https_apis[i].admin && https_apis[i].listen_fd == fd) {
            pthread_mutex_lock(&https_apis[i].admin->cert_lock);
            c = https_apis[i].admin->cert;
            pthread_mutex_unlock(&https_apis[i].admin->cert_lock);
        }
    pthread_mutex_unlock(&https_lock);
    return c;
}

/* libmicrohttpd (GnuTLS) asks which certificate a new handshake gets: the newest. Its session
 * pointer is the libmicrohttpd connection. */
static int admin_pick_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn,
                           int n_req_ca_dn, const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos,
                           gnutls_pcert_st **chain, unsigned int *n_chain, gnutls_privkey_t *key)
{
    struct MHD_Connection *conn = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *info =
        conn ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON) : NULL;
    admin_cert *c = info ? https_current(info->daemon) : NULL;
    if (!c) return -1;
    *chain = c->chain;
    *n_chain = c->n;
    *key = c->key;
    return 0;
}

int kg_admin_reload_tls(kg_admin *a, char *err, size_t errlen)
{
    if (!a || !a->cert) return 0;
    admin_cert *fresh = admin_cert_load(a->cert_file, a->key_file, err, errlen);
    if (!fresh) return -1;
    pthread_mutex_lock(&a->cert_lock);
    fresh->older = a->cert;
    a->cert = fresh;
    pthread_mutex_unlock(&a->cert_lock);
    kg_info("admin: HTTPS certificate reloaded from %s", a->cert_file);
    return 0;
}

static void free_admin(kg_admin *a)
{
    https_unregister(a);
    admin_cert_free(a->cert);
    pthread_mutex_destroy(&a->cert_lock);
    free(a->cert_file);
    free(a->key_file);
    free(a->routes);
    free(a);
}

kg_store *kg_admin_store(const kg_admin *admin)
{
    return admin ? admin->store : NULL;
}

int kg_admin_has_bootstrap_token(const kg_admin *admin)
{
    return admin && admin->has_token;
}

int kg_admin_is_tls(const kg_admin *admin)
{
    return admin && admin->cert != NULL;
}

kg_admin *kg_admin_start(const char *listen, const char *token, const kg_admin_ops *ops,
                         kg_store *store, kg_metrics *metrics, char *err, size_t errlen)
{
    kg_admin_options opts = {.listen = listen, .token = token};
    return kg_admin_start_opts(&opts, ops, store, metrics, err, errlen);
}

kg_admin *kg_admin_start_opts(const kg_admin_options *opts, const kg_admin_ops *ops,
                              kg_store *store, kg_metrics *metrics, char *err, size_t errlen)
{
    const char *listen = opts->listen;
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    if (!listen || resolve_listen(listen, &addr, &addr_len, err, errlen) != 0) {
        if (!listen) snprintf(err, errlen, "no admin listen address");
        return NULL;
    }
    int tls = opts->tls_cert_file && *opts->tls_cert_file;
    if (tls != (opts->tls_key_file && *opts->tls_key_file)) {
        snprintf(err, errlen, "admin.tls: cert_file and key_file go together");
        return NULL;
    }
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "admin.tls: this libmicrohttpd was built without TLS");
        return NULL;
    }
    kg_admin *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->cert_lock, NULL);
    if (build_routes(a, ops, err, errlen) != 0) {
        free_admin(a);
        return NULL;
    }
    if (tls && (!(a->cert_file = strdup(opts->tls_cert_file)) ||
                !(a->key_file = strdup(opts->tls_key_file)) ||
                !(a->cert = admin_cert_load(a->cert_file, a->key_file, err, errlen)))) {
        free_admin(a);
        return NULL;
    }
    if (ops) a->ops = *ops;
    /* The routes now live in a->routes: the caller's table may be gone once we return. */
    a->ops.extra_routes = NULL;
    a->ops.n_extra_routes = 0;
    a->store = store;
    a->metrics = metrics;
    set_token(a, opts->token);

    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    if (tls) flags |= MHD_USE_TLS;
    /* The TLS options go last: without TLS, MHD_OPTION_END ends the list before them. */
    errno = 0;
    a->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)THREAD_POOL_SIZE, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, a, tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, admin_pick_cert,
        MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(err, errlen, "cannot serve the admin API on %s: %s", listen,
                 errno ? strerror(errno)
                 : tls ? "libmicrohttpd failed to start (is the key the certificate's?)"
                       : "libmicrohttpd failed to start");
        free_admin(a);
        return NULL;
    }
    if (tls && https_register(a, a->daemon) < 0) {
        snprintf(err, errlen, "more than %d HTTPS admin APIs in one process", ADMIN_HTTPS_MAX);
        MHD_stop_daemon(a->daemon);
        free_admin(a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : 0;
    kg_info("admin: API on %s (port %u, %s)%s", listen, a->port, tls ? "HTTPS" : "HTTP",
            a->has_token ? ", bootstrap token configured" : "");
    return a;
}

void kg_admin_stop(kg_admin *admin)
{
    if (!admin) return;
    MHD_stop_daemon(admin->daemon);
    free_admin(admin);
}

uint16_t kg_admin_port(const kg_admin *admin)
{
    return admin ? admin->port : 0;
}
