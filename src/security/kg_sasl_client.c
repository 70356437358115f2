#include "security/kg_sasl_client.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_wire.h"
#include "kp_msgs.h"

#define CLIENT_ID "kgate"
#define FIRST_CORRELATION 0x6b670000 /* "kg": kgate's own requests, never a client's */

enum { STEP_HANDSHAKE, STEP_PLAIN, STEP_SCRAM_FIRST, STEP_SCRAM_FINAL, STEP_DONE };

void kg_sasl_creds_init(kg_sasl_creds *c, const kg_sasl_cfg *cfg)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    pthread_mutex_init(&c->lock, NULL);
}

void kg_sasl_creds_destroy(kg_sasl_creds *c)
{
    pthread_mutex_destroy(&c->lock);
    OPENSSL_cleanse(c->client_key, sizeof(c->client_key));
    OPENSSL_cleanse(c->server_key, sizeof(c->server_key));
}

void kg_sasl_client_init(kg_sasl_client *s, kg_sasl_creds *creds, int16_t auth_max)
{
    memset(s, 0, sizeof(*s));
    s->creds = creds;
    /* v1 brings the session lifetime (KIP-368); v2 is v1 in flexible form. */
    s->auth_version = auth_max < 0 ? 1 : auth_max > 2 ? 2 : auth_max;
    s->correlation_id = FIRST_CORRELATION;
}

void kg_sasl_client_free(kg_sasl_client *s)
{
    free(s->client_first_bare);
    free(s->server_first);
    s->client_first_bare = s->server_first = NULL;
    OPENSSL_cleanse(s->server_signature, sizeof(s->server_signature));
}

static int client_fail(kg_sasl_client *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int client_fail(kg_sasl_client *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    return KG_SASL_CLIENT_FAILED;
}

/* ---------------------------------------------------------------- frames */

static void write_request(kg_sasl_client *s, kp_writer *w, int16_t api_key, int16_t version,
                          const void *body)
{
    size_t at = kp_writer_reserve_len(w);
    kg_wire_request_header(w, api_key, version, ++s->correlation_id, CLIENT_ID);
    if (api_key == KG_API_SASL_HANDSHAKE)
        kp_sasl_handshake_request_encode(w, version, body);
    else
        kp_sasl_authenticate_request_encode(w, version, body);
    kp_writer_patch_len(w, at);
}

static int send_authenticate(kg_sasl_client *s, kp_writer *w, const void *bytes, size_t len)
{
    kp_sasl_authenticate_request req;
    kp_sasl_authenticate_request_init(&req);
    req.auth_bytes = (kp_bytes){bytes, (int32_t)len};
    write_request(s, w, KG_API_SASL_AUTHENTICATE, s->auth_version, &req);
    return w->err ? client_fail(s, "out of memory") : KG_SASL_CLIENT_SEND;
}

int kg_sasl_client_start(kg_sasl_client *s, kp_writer *w)
{
    kp_sasl_handshake_request req;
    kp_sasl_handshake_request_init(&req);
    req.mechanism = kp_str_c(kg_config_sasl_mechanism_name(s->creds->cfg->mechanism));
    write_request(s, w, KG_API_SASL_HANDSHAKE, 1, &req);
    s->step = STEP_HANDSHAKE;
    return w->err ? -1 : 0;
}

/* The body of response RESP (after its correlation id and header tags), or NULL. */
static const uint8_t *response_body(kg_sasl_client *s, int16_t api_key, int16_t version,
                                    const uint8_t *resp, size_t len, size_t *body_len)
{
    if (len < 4 || (int32_t)kg_wire_get_u32(resp) != s->correlation_id) return NULL;
    size_t off = kg_wire_response_header_len(api_key, version, resp, len);
    if (!off) return NULL;
    *body_len = len - off;
    return resp + off;
}

/* ---------------------------------------------------------------- SCRAM (RFC 5802) */

static const EVP_MD *scram_md(const kg_sasl_client *s)
{
    return s->creds->cfg->mechanism == KG_SASL_SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

/* "n=NAME" needs '=' and ',' escaped. */
static void scram_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        const char *esc = *in == '=' ? "=3D" : *in == ',' ? "=2C" : NULL;
        if (esc) {
            memcpy(out + o, esc, 3);
            o += 3;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static int scram_first(kg_sasl_client *s, kp_writer *w)
{
    uint8_t raw[24];
    if (s->nonce[0]) {
        /* set by the caller: test vectors only */
    } else if (RAND_bytes(raw, sizeof(raw)) == 1) {
        kg_scram_b64_encode(raw, sizeof(raw), s->nonce);
    } else {
        return client_fail(s, "no randomness for a nonce");
    }
    char user[2 * KG_SECRET_MAX];
    scram_escape(s->creds->cfg->username, user, sizeof(user) / 2);
    size_t n = strlen(user) + strlen(s->nonce) + 8;
    s->client_first_bare = malloc(n);
    if (!s->client_first_bare) return client_fail(s, "out of memory");
    snprintf(s->client_first_bare, n, "n=%s,r=%s", user, s->nonce);
    char msg[2 * KG_SECRET_MAX + 80];
    int len = snprintf(msg, sizeof(msg), "n,,%s", s->client_first_bare);
    s->step = STEP_SCRAM_FIRST;
    return send_authenticate(s, w, msg, (size_t)len);
}

/* The value of attribute KEY ("r", "s", "i", "v", "e") in a comma-separated SCRAM message. */
static int scram_attr(const char *msg, size_t len, char key, const char **val, size_t *val_len)
{
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (stop - p >= 2 && p[0] == key && p[1] == '=') {
            *val = p + 2;
            *val_len = (size_t)(stop - p - 2);
            return 1;
        }
        p = stop + 1;
    }
    return 0;
}

/* ClientKey and ServerKey for SALT and ITERATIONS: from the cache, or derived (and cached). */
static int scram_keys(kg_sasl_client *s, const uint8_t *salt, size_t salt_len, uint32_t iterations,
                      uint8_t *client_key, uint8_t *server_key, unsigned key_len)
{
    kg_sasl_creds *c = s->creds;
    pthread_mutex_lock(&c->lock);
    int hit = c->cached && c->iterations == iterations && c->salt_len == salt_len &&
              memcmp(c->salt, salt, salt_len) == 0;
    if (hit) {
        memcpy(client_key, c->client_key, key_len);
        memcpy(server_key, c->server_key, key_len);
    }
    pthread_mutex_unlock(&c->lock);
    if (hit) return 0;
    uint8_t salted[KG_SCRAM_KEY_MAX];
    const char *pw = c->cfg->password;
    unsigned n = key_len;
    int ok =
        PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, (int)salt_len, (int)iterations, scram_md(s),
                          (int)key_len, salted) == 1 &&
        HMAC(scram_md(s), salted, (int)key_len, (const uint8_t *)"Client Key", 10, client_key,
             &n) &&
        HMAC(scram_md(s), salted, (int)key_len, (const uint8_t *)"Server Key", 10, server_key, &n);
    OPENSSL_cleanse(salted, sizeof(salted));
    if (!ok) return -1;
    pthread_mutex_lock(&c->lock);
    memcpy(c->salt, salt, salt_len);
    c->salt_len = salt_len;
    c->iterations = iterations;
    memcpy(c->client_key, client_key, key_len);
    memcpy(c->server_key, server_key, key_len);
    c->cached = 1;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* server-first-message in, client-final-message out. */
static int scram_final(kg_sasl_client *s, const uint8_t *msg, size_t len, kp_writer *w)
{
    const char *r, *salt64, *iter;
    size_t r_len, salt64_len, iter_len;
    if (len > KG_SCRAM_MSG_MAX || !scram_attr((const char *)msg, len, 'r', &r, &r_len) ||
        !scram_attr((const char *)msg, len, 's', &salt64, &salt64_len) ||
        !scram_attr((const char *)msg, len, 'i', &iter, &iter_len))
        return client_fail(s, "malformed SCRAM server-first-message");
    size_t nlen = strlen(s->nonce);
    if (r_len <= nlen || memcmp(r, s->nonce, nlen) != 0 || memchr(r, ',', r_len))
        return client_fail(s, "the broker's SCRAM nonce does not extend kgate's");
    uint8_t salt[KG_SCRAM_SALT_MAX];
    int salt_len = kg_scram_b64_decode(salt64, salt64_len, salt, sizeof(salt));
    char digits[16];
    snprintf(digits, sizeof(digits), "%.*s", (int)(iter_len < 15 ? iter_len : 15), iter);
    char *endp;
    unsigned long iterations = strtoul(digits, &endp, 10);
    if (salt_len <= 0 || *endp || iter_len == 0 || iterations < 1 ||
        iterations > KG_SCRAM_MAX_ITERATIONS)
        return client_fail(s, "unusable SCRAM salt or iteration count from the broker");
    s->server_first = strndup((const char *)msg, len);
    unsigned key_len = (unsigned)EVP_MD_get_size(scram_md(s));
    uint8_t client_key[KG_SCRAM_KEY_MAX], server_key[KG_SCRAM_KEY_MAX], stored[KG_SCRAM_KEY_MAX];
    if (!s->server_first || scram_keys(s, salt, (size_t)salt_len, (uint32_t)iterations, client_key,
                                       server_key, key_len) < 0)
        return client_fail(s, "SCRAM key derivation failed");
    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    char without_proof[300], auth[4 * KG_SCRAM_MSG_MAX];
    snprintf(without_proof, sizeof(without_proof), "c=biws,r=%.*s", (int)r_len, r);
    int auth_len = snprintf(auth, sizeof(auth), "%s,%s,%s", s->client_first_bare, s->server_first,
                            without_proof);
    uint8_t signature[KG_SCRAM_KEY_MAX];
    unsigned n = key_len;
    int ok =
        EVP_Digest(client_key, key_len, stored, &n, scram_md(s), NULL) == 1 &&
        HMAC(scram_md(s), stored, (int)key_len, (uint8_t *)auth, (size_t)auth_len, signature, &n) &&
        HMAC(scram_md(s), server_key, (int)key_len, (uint8_t *)auth, (size_t)auth_len,
             s->server_signature, &n);
    for (unsigned i = 0; i < key_len; i++)
        client_key[i] ^= signature[i]; /* ClientProof */
    char proof[2 * KG_SCRAM_KEY_MAX + 4], final[600];
    kg_scram_b64_encode(client_key, key_len, proof);
    int final_len = snprintf(final, sizeof(final), "%s,p=%s", without_proof, proof);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(server_key, sizeof(server_key));
    if (!ok) return client_fail(s, "SCRAM proof computation failed");
    s->step = STEP_SCRAM_FINAL;
    return send_authenticate(s, w, final, (size_t)final_len);
}

static int scram_verify(kg_sasl_client *s, const uint8_t *msg, size_t len)
{
    const char *v;
    size_t v_len;
    if (scram_attr((const char *)msg, len, 'e', &v, &v_len))
        return client_fail(s, "the broker ended the SCRAM exchange: %.*s", (int)v_len, v);
    uint8_t got[KG_SCRAM_KEY_MAX];
    size_t key_len = (size_t)EVP_MD_get_size(scram_md(s));
    if (!scram_attr((const char *)msg, len, 'v', &v, &v_len) ||
        kg_scram_b64_decode(v, v_len, got, sizeof(got)) != (int)key_len ||
        CRYPTO_memcmp(got, s->server_signature, key_len) != 0)
        return client_fail(s, "the broker's SCRAM signature is wrong: it does not know "
                              "kgate's password (not the cluster it claims to be?)");
    s->step = STEP_DONE;
    return KG_SASL_CLIENT_DONE;
}

/* ---------------------------------------------------------------- the exchange */

static int on_handshake(kg_sasl_client *s, const uint8_t *body, size_t len, kp_writer *w)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_handshake_response resp;
    kp_sasl_handshake_response_init(&resp);
    int rc;
    if (kp_sasl_handshake_response_decode(&r, &arena, 1, &resp) < 0 || r.err) {
        rc = client_fail(s, "malformed SaslHandshake response");
    } else if (resp.error_code != 0) {
        char offered[200] = "";
        for (int32_t i = 0; i < resp.mechanisms.count; i++)
            snprintf(offered + strlen(offered), sizeof(offered) - strlen(offered), "%s%.*s",
                     i ? ", " : "", (int)resp.mechanisms.items[i].len,
                     resp.mechanisms.items[i].ptr);
        rc = client_fail(s, "the broker does not offer %s (it offers: %s)",
                         kg_config_sasl_mechanism_name(s->creds->cfg->mechanism), offered);
    } else if (s->creds->cfg->mechanism == KG_SASL_PLAIN) {
        const kg_sasl_cfg *cfg = s->creds->cfg;
        size_t u = strlen(cfg->username), p = strlen(cfg->password);
        uint8_t msg[2 * KG_SECRET_MAX + 2];
        msg[0] = 0;
        memcpy(msg + 1, cfg->username, u);
        msg[1 + u] = 0;
        memcpy(msg + 2 + u, cfg->password, p);
        s->step = STEP_PLAIN;
        rc = send_authenticate(s, w, msg, u + p + 2);
        OPENSSL_cleanse(msg, sizeof(msg));
    } else {
        rc = scram_first(s, w);
    }
    kp_arena_free(&arena);
    return rc;
}

static int on_authenticate(kg_sasl_client *s, const uint8_t *body, size_t len, kp_writer *w)
{
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_authenticate_response resp;
    kp_sasl_authenticate_response_init(&resp);
    int rc;
    if (kp_sasl_authenticate_response_decode(&r, &arena, s->auth_version, &resp) < 0 || r.err) {
        rc = client_fail(s, "malformed SaslAuthenticate response");
    } else if (resp.error_code != 0) {
        rc = client_fail(s, "authentication failed (error %d): %.*s", resp.error_code,
                         resp.error_message.len > 0 ? (int)resp.error_message.len : 0,
                         resp.error_message.len > 0 ? resp.error_message.ptr : "");
    } else {
        s->session_lifetime_ms = resp.session_lifetime_ms;
        const uint8_t *bytes = resp.auth_bytes.ptr;
        size_t n = resp.auth_bytes.len > 0 ? (size_t)resp.auth_bytes.len : 0;
        if (s->step == STEP_PLAIN) {
            s->step = STEP_DONE;
            rc = KG_SASL_CLIENT_DONE;
        } else if (s->step == STEP_SCRAM_FIRST) {
            rc = scram_final(s, bytes, n, w);
        } else {
            rc = scram_verify(s, bytes, n);
        }
    }
    kp_arena_free(&arena);
    return rc;
}

int kg_sasl_client_next(kg_sasl_client *s, const uint8_t *resp, size_t len, kp_writer *w)
{
    int handshake = s->step == STEP_HANDSHAKE;
    int16_t api = handshake ? KG_API_SASL_HANDSHAKE : KG_API_SASL_AUTHENTICATE;
    int16_t version = handshake ? 1 : s->auth_version;
    if (s->step == STEP_DONE) return client_fail(s, "a response after the exchange ended");
    size_t body_len;
    const uint8_t *body = response_body(s, api, version, resp, len, &body_len);
    if (!body) return client_fail(s, "a response that does not answer kgate's request");
    return handshake ? on_handshake(s, body, body_len, w) : on_authenticate(s, body, body_len, w);
}
