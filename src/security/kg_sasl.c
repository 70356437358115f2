#include "security/kg_sasl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/kg_wire.h"
#include "kp_msgs.h"
#include "metrics/kg_metrics.h"
#include "proto/kp_prim.h"
#include "security/kg_users.h"
#include "util/kg_log.h"
#include "util/kg_time.h"

#define KG_KAFKA_UNSUPPORTED_SASL_MECHANISM 33
#define KG_KAFKA_ILLEGAL_SASL_STATE 34
#define KG_KAFKA_SASL_AUTHENTICATION_FAILED 58
#define RAW_TOKEN_MAX 65536
#define LOG_LINES_PER_SECOND 10

static const char *const mech_names[KG_SASL_MECHANISMS] = {"", "PLAIN", "SCRAM-SHA-256",
                                                           "SCRAM-SHA-512", "OAUTHBEARER"};
/* RFC 7628 §3.2.2: the error a server sends instead of failing at once; the client answers 0x01. */
static const char oauth_error_challenge[] = "{\"status\":\"invalid_token\"}";

/* ---------------------------------------------------------------- listener */

#define KEYS_CHECK_US 1000000u /* how often the JWKS file is looked at, at most */

/* One loaded JWKS, shared by the authentications that use it while the file is replaced. */
typedef struct kg_sasl_keys {
    kg_jwt_jwks *jwks;
    int refs; /* under the listener's keys_lock */
} kg_sasl_keys;

static void keys_unref_locked(kg_sasl_keys *k)
{
    if (k && --k->refs == 0) {
        kg_jwt_jwks_free(k->jwks);
        free(k);
    }
}

/* What the JWKS file looks like now (0), or -1 when it cannot be looked at. */
static int keys_file_stamp(const char *path, uint64_t stamp[3])
{
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    stamp[0] = (uint64_t)st.st_dev * 1000003u ^ (uint64_t)st.st_ino;
    stamp[1] = (uint64_t)st.st_size;
    stamp[2] = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    return 0;
}

/* Loads the JWKS file as the keys in use. 0 ok, -1 (ERR) and the keys in use stay. */
static int keys_load_locked(kg_sasl_listener *l, char *err, size_t errlen)
{
    kg_jwt_jwks *jwks = kg_jwt_jwks_load(l->cfg->oauthbearer.jwks_file, err, errlen);
    kg_sasl_keys *k = jwks ? calloc(1, sizeof(*k)) : NULL;
    if (!k) {
        if (jwks) snprintf(err, errlen, "out of memory");
        kg_jwt_jwks_free(jwks);
        return -1;
    }
    k->jwks = jwks;
    k->refs = 1; /* the listener's */
    keys_unref_locked(l->keys);
    l->keys = k;
    return 0;
}

/* The keys to check a token with (release with keys_release), reloaded first when the file
 * changed since it was last looked at. */
static kg_sasl_keys *keys_acquire(kg_sasl_listener *l, uint64_t now_us)
{
    pthread_mutex_lock(&l->keys_lock);
    if (now_us - l->keys_checked_us >= KEYS_CHECK_US) {
        l->keys_checked_us = now_us;
        uint64_t stamp[3];
        const char *path = l->cfg->oauthbearer.jwks_file;
        if (keys_file_stamp(path, stamp) == 0 && memcmp(stamp, l->keys_stamp, sizeof(stamp))) {
            memcpy(l->keys_stamp, stamp, sizeof(stamp)); /* a bad file is reported once */
            char err[300];
            if (keys_load_locked(l, err, sizeof(err)) == 0)
                kg_info("vcluster %s: OAUTHBEARER keys reloaded from %s: %d key(s)", l->cfg->name,
                        path, kg_jwt_jwks_count(l->keys->jwks));
            else
                kg_warn("vcluster %s: OAUTHBEARER keys in %s changed but do not load, the "
                        "previous ones stay in use: %s",
                        l->cfg->name, path, err);
        }
    }
    kg_sasl_keys *k = l->keys;
    k->refs++;
    pthread_mutex_unlock(&l->keys_lock);
    return k;
}

static void keys_release(kg_sasl_listener *l, kg_sasl_keys *k)
{
    pthread_mutex_lock(&l->keys_lock);
    keys_unref_locked(k);
    pthread_mutex_unlock(&l->keys_lock);
}

kg_sasl_listener *kg_sasl_listener_new(const kg_vcluster_cfg *vc, kg_users *users,
                                       kg_metrics *metrics)
{
    if (!vc->auth_gateway) return NULL;
    kg_sasl_listener *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    l->cfg = vc;
    l->users = users;
    l->wall_ms = kg_time_now_ms;
    pthread_mutex_init(&l->keys_lock, NULL);
    if (vc->sasl_mechanisms & KG_SASL_BIT(KG_SASL_OAUTHBEARER)) {
        char err[300];
        /* The stamp first: a change while the file is read is seen at the next look. */
        keys_file_stamp(vc->oauthbearer.jwks_file, l->keys_stamp);
        if (keys_load_locked(l, err, sizeof(err)) < 0) {
            kg_error("vcluster %s: listener.oauthbearer.jwks_file: %s", vc->name, err);
            pthread_mutex_destroy(&l->keys_lock);
            free(l);
            return NULL;
        }
        l->policy = (kg_jwt_policy){.issuer = vc->oauthbearer.issuer,
                                    .audience = vc->oauthbearer.audience,
                                    .principal_claim = vc->oauthbearer.principal_claim,
                                    .clock_skew_s = vc->oauthbearer.clock_skew_s};
        kg_info("vcluster %s: OAUTHBEARER with %d key(s) from %s", vc->name,
                kg_jwt_jwks_count(l->keys->jwks), vc->oauthbearer.jwks_file);
    }
    char labels[256];
    for (int m = 0; m < KG_SASL_MECHANISMS; m++) {
        const char *name = m ? mech_names[m] : "none";
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->name, "mechanism", name,
                                 "result", "ok", NULL);
        l->ok[m] = kg_metrics_counter(metrics, "kgate_sasl_authentications_total",
                                      "SASL authentications at kgate, by result.", labels);
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->name, "mechanism", name,
                                 "result", "failed", NULL);
        l->failed[m] = kg_metrics_counter(metrics, "kgate_sasl_authentications_total",
                                          "SASL authentications at kgate, by result.", labels);
    }
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vc->name, NULL);
    l->refused = kg_metrics_counter(metrics, "kgate_sasl_unauthenticated_requests_total",
                                    "Connections closed for a request sent before SASL "
                                    "authentication completed.",
                                    labels);
    return l;
}

void kg_sasl_listener_free(kg_sasl_listener *l)
{
    if (!l) return;
    keys_unref_locked(l->keys);
    pthread_mutex_destroy(&l->keys_lock);
    free(l);
}

void kg_sasl_conn_init(kg_sasl_conn *s, kg_sasl_listener *l)
{
    memset(s, 0, sizeof(*s));
    s->l = l;
    kg_scram_server_init(&s->scram, KG_SASL_NONE);
}

void kg_sasl_conn_free(kg_sasl_conn *s)
{
    kg_scram_server_free(&s->scram);
}

/* ---------------------------------------------------------------- failures */

/* A client-supplied name, fit for a log line: printable ASCII only. */
static void printable(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; in && *in && o + 1 < cap; in++)
        out[o++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
    out[o] = '\0';
}

/* Counts, logs (rate-limited) and audits a failed authentication. REASON and USER are never
 * secrets: the reason comes from kgate's parsers, the user is the name the client claimed. */
static void note_failure(kg_sasl_conn *s, const kg_sasl_env *env, const char *user,
                         const char *reason)
{
    kg_sasl_listener *l = s->l;
    kg_counter_inc(l->failed[s->mechanism]);
    char who[KG_SCRAM_NAME_MAX];
    printable(user, who, sizeof(who));
    if (kg_log_limit_allows(&l->log_limit, LOG_LINES_PER_SECOND))
        kg_warn("vcluster %s: SASL %s authentication from %s%s%s failed: %s", l->cfg->name,
                s->mechanism ? mech_names[s->mechanism] : "handshake", env->peer,
                who[0] ? " as " : "", who, reason);
    json_t *details = json_pack(
        "{s:s, s:s, s:s, s:s, s:s}", "vcluster", l->cfg->name, "peer", env->peer, "mechanism",
        s->mechanism ? mech_names[s->mechanism] : "", "user", who, "reason", reason);
    if (details) kg_users_audit_later(l->users, "auth.failure", details);
}

/* ---------------------------------------------------------------- responses */

static int finish_frame(kp_writer *w, size_t at, kg_sasl_verdict *v)
{
    kp_writer_patch_len(w, at);
    if (w->err) {
        kp_writer_free(w);
        snprintf(v->reason, sizeof(v->reason), "out of memory building a SASL response");
        return KG_SASL_CLOSE;
    }
    v->frame = w->buf;
    v->frame_len = (uint32_t)w->len;
    return KG_SASL_ANSWER;
}

static int answer_handshake(const kg_sasl_conn *s, int16_t error, kg_sasl_verdict *v)
{
    kp_str names[KG_SASL_MECHANISMS];
    kp_sasl_handshake_response resp;
    kp_sasl_handshake_response_init(&resp);
    resp.error_code = error;
    resp.mechanisms.items = names;
    resp.mechanisms.count = 0;
    for (int m = KG_SASL_PLAIN; m < KG_SASL_MECHANISMS; m++)
        if (s->l->cfg->sasl_mechanisms & KG_SASL_BIT(m))
            names[resp.mechanisms.count++] = kp_str_c(mech_names[m]);
    kp_writer w;
    kp_writer_init(&w, 128);
    size_t at = kp_writer_reserve_len(&w);
    kg_wire_response_header(&w, v->api_key, v->api_version, v->correlation_id);
    kp_sasl_handshake_response_encode(&w, v->api_version, &resp);
    return finish_frame(&w, at, v);
}

static int answer_authenticate(int16_t error, const char *message, const uint8_t *bytes, size_t len,
                               int64_t lifetime_ms, kg_sasl_verdict *v)
{
    kp_sasl_authenticate_response resp;
    kp_sasl_authenticate_response_init(&resp);
    resp.error_code = error;
    resp.error_message = message ? kp_str_c(message) : KP_STR_NULL;
    resp.auth_bytes = (kp_bytes){bytes ? bytes : (const uint8_t *)"", (int32_t)len};
    resp.session_lifetime_ms = lifetime_ms;
    kp_writer w;
    kp_writer_init(&w, 128 + len);
    size_t at = kp_writer_reserve_len(&w);
    kg_wire_response_header(&w, v->api_key, v->api_version, v->correlation_id);
    kp_sasl_authenticate_response_encode(&w, v->api_version, &resp);
    return finish_frame(&w, at, v);
}

/* A raw token (after SaslHandshake v0): its length, then its bytes. */
static int answer_raw(const uint8_t *bytes, size_t len, kg_sasl_verdict *v)
{
    kp_writer w;
    kp_writer_init(&w, 4 + len);
    size_t at = kp_writer_reserve_len(&w);
    kp_write_raw(&w, bytes, len);
    return finish_frame(&w, at, v);
}

static int close_with(kg_sasl_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int close_with(kg_sasl_verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
    return KG_SASL_CLOSE;
}

/* ---------------------------------------------------------------- mechanisms */

/* STEP_FAILED_NOTED: failed, and already counted, logged and audited. */
enum { STEP_FAILED_NOTED = -2, STEP_FAILED = -1, STEP_CONTINUE = 0, STEP_DONE = 1 };
#define NO_EXPIRY INT64_MAX

/* Credentials proved for USER: KIP-368 and chaos may still refuse them. CREDENTIAL_LEFT_MS is
 * how long the credential itself stays valid (a token's exp - now: negative for a token only
 * the clock skew allowance let in), NO_EXPIRY for a password. */
static int step_succeeded(kg_sasl_conn *s, const kg_sasl_env *env, const char *user,
                          int64_t credential_left_ms, const char **why)
{
    char principal[sizeof(s->principal)];
    snprintf(principal, sizeof(principal), "User:%s", user);
    if (s->authenticated && strcmp(principal, s->principal) != 0) {
        *why = "re-authentication as another principal";
        return STEP_FAILED;
    }
    kg_chaos_conn view = env->chaos_view;
    view.principal = principal;
    if (env->chaos && kg_chaos_auth_fails(env->chaos, &view)) {
        *why = "refused by a chaos auth-failure rule";
        return STEP_FAILED;
    }
    memcpy(s->principal, principal, sizeof(principal));
    s->authenticated = 1;
    s->state = KG_SASL_AUTHENTICATED;
    /* KIP-368: the configured lifetime, cut to what is left of the credential (as Kafka does
     * for OAUTHBEARER: the session ends when the token does). */
    int64_t lifetime = s->l->cfg->sasl_session_ms;
    if (credential_left_ms != NO_EXPIRY) {
        int64_t left = credential_left_ms > 0 ? credential_left_ms : 1;
        lifetime = lifetime && lifetime < left ? lifetime : left;
    }
    s->lifetime_ms = lifetime;
    s->expires_us = lifetime ? env->now_us + (uint64_t)lifetime * 1000u : 0;
    kg_counter_inc(s->l->ok[s->mechanism]);
    return STEP_DONE;
}

static int step_plain(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *tok, size_t len,
                      char *user, const char **why)
{
    const char *u, *pw;
    size_t ul, pl;
    if (kg_scram_plain_parse(tok, len, &u, &ul, &pw, &pl, why) < 0) return STEP_FAILED;
    memcpy(user, u, ul);
    user[ul] = '\0';
    kg_users_set *set = kg_users_acquire(s->l->users);
    int ok = kg_users_check_password(set, user, pw, pl);
    kg_users_release(set);
    if (!ok) {
        *why = "invalid credentials";
        return STEP_FAILED;
    }
    return step_succeeded(s, env, user, NO_EXPIRY, why);
}

static int step_scram(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *tok, size_t len,
                      uint8_t **out, size_t *out_len, char *user, const char **why)
{
    if (s->scram.step == KG_SCRAM_WANT_FIRST) {
        if (kg_scram_client_first(&s->scram, tok, len, why) < 0) return STEP_FAILED;
        snprintf(user, KG_SCRAM_NAME_MAX, "%s", s->scram.user);
        kg_users_set *set = kg_users_acquire(s->l->users);
        int rc =
            kg_scram_server_first(&s->scram, kg_users_find(set, user, s->mechanism), out, out_len);
        kg_users_release(set);
        if (rc < 0) *why = "cannot build the server-first-message";
        return rc < 0 ? STEP_FAILED : STEP_CONTINUE;
    }
    snprintf(user, KG_SCRAM_NAME_MAX, "%s", s->scram.user);
    if (kg_scram_client_final(&s->scram, tok, len, out, out_len, why) < 0) return STEP_FAILED;
    int rc = step_succeeded(s, env, user, NO_EXPIRY, why);
    if (rc == STEP_FAILED) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* A saslname of RFC 5801 (",", "=" written "=2C", "=3D") from IN (N bytes) into OUT. */
static int oauth_saslname(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (c == '=') {
            if (i + 2 < n && in[i + 1] == '2' && in[i + 2] == 'C')
                c = ',';
            else if (i + 2 < n && in[i + 1] == '3' && in[i + 2] == 'D')
                c = '=';
            else
                return -1;
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            return -1;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int oauth_fail(const char **why, const char *reason)
{
    *why = reason;
    return -1;
}

int kg_sasl_oauth_parse(const uint8_t *msg, size_t len, const char **token, size_t *token_len,
                        char *authzid, size_t authzid_cap, const char **why)
{
    *token = NULL;
    *token_len = 0;
    if (authzid_cap) authzid[0] = '\0';
    if (len > 0 && msg[0] == 'p') return oauth_fail(why, "channel binding is not supported");
    if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
        return oauth_fail(why, "not an OAUTHBEARER client initial response (gs2 header)");
    size_t at = 2;
    if (msg[at] == 'a') {
        const uint8_t *comma = memchr(msg + at, ',', len - at);
        if (at + 1 >= len || msg[at + 1] != '=' || !comma ||
            oauth_saslname(msg + at + 2, (size_t)(comma - msg) - at - 2, authzid, authzid_cap) < 0)
            return oauth_fail(why, "malformed authorization id (a=) in the gs2 header");
        at = (size_t)(comma - msg);
    }
    if (at + 1 >= len || msg[at] != ',' || msg[at + 1] != 0x01)
        return oauth_fail(why, "not an OAUTHBEARER client initial response (gs2 header)");
    at += 2;
    int have_auth = 0;
    for (;;) {
        if (at >= len) return oauth_fail(why, "OAUTHBEARER message without its final separator");
        if (msg[at] == 0x01) {
            at++;
            break;
        }
        size_t key = at;
        while (at < len &&
               ((msg[at] >= 'a' && msg[at] <= 'z') || (msg[at] >= 'A' && msg[at] <= 'Z')))
            at++;
        if (at == key || at >= len || msg[at] != '=')
            return oauth_fail(why, "malformed key=value pair in the OAUTHBEARER message");
        size_t key_len = at - key, value = ++at;
        while (at < len && msg[at] != 0x01) {
            uint8_t c = msg[at++];
            if ((c < 0x20 || c > 0x7e) && c != '\t' && c != '\r' && c != '\n')
                return oauth_fail(why, "a value of the OAUTHBEARER message has a control byte");
        }
        if (at >= len) return oauth_fail(why, "OAUTHBEARER message without its final separator");
        size_t value_len = at++ - value;
        if (key_len != 4 || memcmp(msg + key, "auth", 4) != 0) continue; /* an extension */
        if (have_auth) return oauth_fail(why, "auth given twice in the OAUTHBEARER message");
        have_auth = 1;
        /* "Bearer" (any case), one or more spaces, the token (a JWT's characters) */
        const uint8_t *v = msg + value;
        if (value_len < 7 || strncasecmp((const char *)v, "bearer ", 7) != 0)
            return oauth_fail(why, "auth is not \"Bearer <token>\"");
        size_t t = 7;
        while (t < value_len && v[t] == ' ')
            t++;
        if (t == value_len) return oauth_fail(why, "auth=Bearer without a token");
        for (size_t i = t; i < value_len; i++)
            if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
                  (v[i] >= '0' && v[i] <= '9') || v[i] == '-' || v[i] == '_' || v[i] == '.'))
                return oauth_fail(why, "the bearer token has characters a JWT does not have");
        *token = (const char *)v + t;
        *token_len = value_len - t;
    }
    if (at != len) return oauth_fail(why, "bytes after the end of the OAUTHBEARER message");
    if (!have_auth) return oauth_fail(why, "no auth=Bearer <token> in the OAUTHBEARER message");
    return 0;
}

/* OAUTHBEARER, one round (RFC 7628): the client initial response carries the token. A refused
 * token gets the error challenge of §3.2.2 (as Kafka sends it); the client answers 0x01 and
 * the exchange fails then, with the reason in SaslAuthenticate's error message. */
static int step_oauth(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *tok, size_t len,
                      uint8_t **out, size_t *out_len, char *user, const char **why)
{
    if (s->oauth_refused) { /* 0x01, or anything: the exchange has failed already */
        *why = s->oauth_reason;
        return STEP_FAILED_NOTED;
    }
    const char *token;
    size_t token_len;
    char authzid[KG_SCRAM_NAME_MAX];
    if (kg_sasl_oauth_parse(tok, len, &token, &token_len, authzid, sizeof(authzid), why) < 0)
        return STEP_FAILED;
    kg_jwt_claims claims;
    int64_t now_ms = s->l->wall_ms();
    kg_sasl_keys *keys = keys_acquire(s->l, env->now_us);
    int verified = kg_jwt_verify(keys->jwks, &s->l->policy, token, token_len, now_ms, &claims,
                                 s->oauth_reason, sizeof(s->oauth_reason));
    keys_release(s->l, keys);
    if (verified < 0) {
        note_failure(s, env, "", s->oauth_reason);
        s->oauth_refused = 1;
        *out = malloc(sizeof(oauth_error_challenge));
        if (!*out) {
            *why = s->oauth_reason;
            return STEP_FAILED_NOTED;
        }
        memcpy(*out, oauth_error_challenge, sizeof(oauth_error_challenge) - 1);
        *out_len = sizeof(oauth_error_challenge) - 1;
        return STEP_CONTINUE;
    }
    snprintf(user, KG_SCRAM_NAME_MAX, "%s", claims.principal);
    if (authzid[0] && strcmp(authzid, claims.principal) != 0) {
        *why = "the authorization id (a=) is not the token's principal";
        return STEP_FAILED;
    }
    return step_succeeded(s, env, user, claims.exp_ms - now_ms, why);
}

/* One client token of the current exchange. */
static int sasl_step(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *tok, size_t len,
                     uint8_t **out, size_t *out_len, const char **why)
{
    char user[KG_SCRAM_NAME_MAX] = "";
    *out = NULL;
    *out_len = 0;
    int rc = s->mechanism == KG_SASL_PLAIN ? step_plain(s, env, tok, len, user, why)
             : s->mechanism == KG_SASL_OAUTHBEARER
                 ? step_oauth(s, env, tok, len, out, out_len, user, why)
                 : step_scram(s, env, tok, len, out, out_len, user, why);
    if (rc == STEP_FAILED) note_failure(s, env, user, *why);
    if (rc < 0) s->state = s->authenticated ? KG_SASL_AUTHENTICATED : KG_SASL_WANT_HANDSHAKE;
    if (rc != STEP_CONTINUE) {
        kg_scram_server_free(&s->scram);
        kg_scram_server_init(&s->scram, s->mechanism);
        s->oauth_refused = 0;
    }
    return rc;
}

/* ---------------------------------------------------------------- requests */

static int on_handshake(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *body, size_t len,
                        kg_sasl_verdict *v)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_handshake_request req;
    kp_sasl_handshake_request_init(&req);
    int bad = kp_sasl_handshake_request_decode(&r, &arena, v->api_version, &req) < 0 || r.err;
    char mech[32] = "";
    if (!bad && req.mechanism.len > 0 && (size_t)req.mechanism.len < sizeof(mech))
        memcpy(mech, req.mechanism.ptr, (size_t)req.mechanism.len);
    kp_arena_free(&arena);
    if (bad) return close_with(v, "malformed SaslHandshake v%d request", v->api_version);
    int m = KG_SASL_NONE;
    for (int i = KG_SASL_PLAIN; i < KG_SASL_MECHANISMS; i++)
        if (strcmp(mech, mech_names[i]) == 0 && (s->l->cfg->sasl_mechanisms & KG_SASL_BIT(i)))
            m = i;
    int reauth = s->state == KG_SASL_AUTHENTICATED;
    if ((s->state != KG_SASL_WANT_HANDSHAKE && !reauth) || (reauth && v->api_version == 0)) {
        v->close_after = 1;
        note_failure(s, env, "", "SaslHandshake out of order");
        return answer_handshake(s, KG_KAFKA_ILLEGAL_SASL_STATE, v);
    }
    if (m == KG_SASL_NONE || (reauth && m != (int)s->mechanism)) {
        char why[96];
        char shown[32];
        printable(mech, shown, sizeof(shown));
        snprintf(why, sizeof(why), "mechanism '%s' is not enabled", shown);
        v->close_after = 1;
        note_failure(s, env, "", why);
        return answer_handshake(s, KG_KAFKA_UNSUPPORTED_SASL_MECHANISM, v);
    }
    s->mechanism = (enum kg_sasl_mechanism)m;
    kg_scram_server_free(&s->scram);
    kg_scram_server_init(&s->scram, s->mechanism);
    s->oauth_refused = 0;
    s->state = v->api_version == 0 ? KG_SASL_WANT_RAW : KG_SASL_WANT_AUTHENTICATE;
    return answer_handshake(s, 0, v);
}

static int on_authenticate(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *body, size_t len,
                           kg_sasl_verdict *v)
{
    if (s->state != KG_SASL_WANT_AUTHENTICATE) {
        v->close_after = 1;
        note_failure(s, env, "", "SaslAuthenticate without a SaslHandshake before it");
        return answer_authenticate(KG_KAFKA_ILLEGAL_SASL_STATE,
                                   "SaslAuthenticate must follow a SaslHandshake", NULL, 0, 0, v);
    }
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_authenticate_request req;
    kp_sasl_authenticate_request_init(&req);
    if (kp_sasl_authenticate_request_decode(&r, &arena, v->api_version, &req) < 0 || r.err ||
        req.auth_bytes.len < 0) {
        kp_arena_free(&arena);
        return close_with(v, "malformed SaslAuthenticate v%d request", v->api_version);
    }
    uint8_t *out;
    size_t out_len;
    const char *why = NULL;
    int rc =
        sasl_step(s, env, req.auth_bytes.ptr, (size_t)req.auth_bytes.len, &out, &out_len, &why);
    kp_arena_free(&arena);
    if (rc < 0) {
        v->close_after = 1;
        /* Kafka's wording for bad credentials (clients and operators know it), else why. */
        char msg[320];
        if (strcmp(why, "invalid credentials") == 0)
            snprintf(msg, sizeof(msg),
                     "Authentication failed during authentication due to invalid credentials "
                     "with SASL mechanism %s",
                     mech_names[s->mechanism]);
        else
            snprintf(msg, sizeof(msg), "Authentication failed: %s", why);
        return answer_authenticate(KG_KAFKA_SASL_AUTHENTICATION_FAILED, msg, NULL, 0, 0, v);
    }
    int64_t lifetime = rc == STEP_DONE ? s->lifetime_ms : 0;
    int verdict = answer_authenticate(0, NULL, out, out_len, lifetime, v);
    free(out);
    return verdict;
}

/* After SaslHandshake v0 the next frames are bare tokens; a failure just closes (v0 has no way
 * to carry an error). */
static int on_raw_token(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *buf, size_t avail,
                        kg_sasl_verdict *v)
{
    if (avail < 4) return KG_SASL_WAIT;
    uint32_t size = kg_wire_get_u32(buf);
    if (size > RAW_TOKEN_MAX) return close_with(v, "SASL token of %u bytes", size);
    if (avail < 4 + (size_t)size) return KG_SASL_WAIT;
    v->consume = 4 + (size_t)size;
    v->api_key = KG_API_SASL_AUTHENTICATE; /* what the token stands for, for the engine's books */
    v->api_version = 0;
    v->correlation_id = 0;
    uint8_t *out;
    size_t out_len;
    const char *why = NULL;
    int rc = sasl_step(s, env, buf + 4, size, &out, &out_len, &why);
    if (rc < 0) return close_with(v, "SASL authentication failed: %s", why);
    int verdict = answer_raw(out, out_len, v);
    free(out);
    return verdict;
}

int kg_sasl_on_frame(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *buf, size_t avail,
                     kg_sasl_verdict *v)
{
    v->frame = NULL;
    v->close_after = 0;
    if (s->state == KG_SASL_WANT_RAW) return on_raw_token(s, env, buf, avail, v);
    if (avail < 4) return KG_SASL_WAIT;
    uint32_t size = kg_wire_get_u32(buf);
    if (size < KG_WIRE_MIN_REQUEST || size > env->max_frame_bytes) return KG_SASL_PASS;
    if (avail < 6) return KG_SASL_WAIT;
    int16_t api = (int16_t)(buf[4] << 8 | buf[5]);
    int sasl_api = api == KG_API_SASL_HANDSHAKE || api == KG_API_SASL_AUTHENTICATE;
    if (s->authenticated && !sasl_api) {
        if (s->expires_us && env->now_us >= s->expires_us)
            return close_with(v, "SASL session of %s expired without re-authentication (KIP-368)",
                              s->principal);
        return KG_SASL_PASS;
    }
    if (api == KG_API_APIVERSIONS) return KG_SASL_PASS;
    if (!sasl_api) {
        kg_counter_inc(s->l->refused);
        return close_with(v, "request for %s (api key %d) before SASL authentication",
                          kp_api_name(api), api);
    }
    /* SASL requests are small: an unauthenticated client must not make kgate buffer more. */
    if (size > RAW_TOKEN_MAX)
        return close_with(v, "%s request of %u bytes", kp_api_name(api), size);
    kg_wire_request rq;
    if (avail < 4 + (size_t)size) return KG_SASL_WAIT;
    if (kg_wire_parse_request(buf + 4, size, size, &rq) != KG_WIRE_OK) return KG_SASL_PASS;
    if (rq.api_version < 0 || rq.api_version > (api == KG_API_SASL_HANDSHAKE ? 1 : 2))
        return close_with(v, "%s v%d, which kgate does not serve", kp_api_name(api),
                          rq.api_version);
    v->consume = 4 + (size_t)size;
    v->api_key = api;
    v->api_version = rq.api_version;
    v->correlation_id = rq.correlation_id;
    const uint8_t *body = buf + 4 + rq.header_len;
    size_t len = size - rq.header_len;
    return api == KG_API_SASL_HANDSHAKE ? on_handshake(s, env, body, len, v)
                                        : on_authenticate(s, env, body, len, v);
}
