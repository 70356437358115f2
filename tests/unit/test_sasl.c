/* kg_sasl, the SASL stage of the request path, on hand-made frames: what is served before
 * authentication, SaslHandshake v0/v1 and SaslAuthenticate, raw v0 tokens, Kafka's error codes,
 * KIP-368 expiry, and waiting for whole frames. */
#include "kt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jwt_keys.h"
#include "metrics/kg_metrics.h"
#include "security/kg_sasl.h"
#include "security/kg_users.h"
#include "state/kg_store.h"

typedef struct fixture {
    char path[128];
    kg_store *store;
    kg_users *users;
    kg_metrics *metrics;
    kg_vcluster_cfg cfg;
    kg_sasl_listener *l;
    kg_sasl_conn conn;
    kg_sasl_env env;
} fixture;

static void setup(fixture *f, int64_t session_ms)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/kg_test_sasl.%d.db", (int)getpid());
    unlink(f->path);
    char err[256];
    f->store = kg_store_open(f->path, err, sizeof(err));
    f->users = kg_users_new(f->store);
    kg_users_set_password(f->users, "alice", "SCRAM-SHA-256", "pw", 2, 0, 1, "t", err, sizeof(err));
    f->metrics = kg_metrics_new();
    snprintf(f->cfg.name, sizeof(f->cfg.name), "v");
    f->cfg.auth_gateway = 1;
    f->cfg.sasl_mechanisms = KG_SASL_BIT(KG_SASL_PLAIN) | KG_SASL_BIT(KG_SASL_SCRAM_SHA_256);
    f->cfg.sasl_session_ms = session_ms;
    f->l = kg_sasl_listener_new(&f->cfg, f->users, f->metrics);
    kg_sasl_conn_init(&f->conn, f->l);
    f->env = (kg_sasl_env){.peer = "test", .now_us = 1000000, .max_frame_bytes = 1 << 20};
}

static void teardown(fixture *f)
{
    kg_sasl_conn_free(&f->conn);
    kg_sasl_listener_free(f->l);
    kg_users_free(f->users);
    kg_store_close(f->store);
    kg_metrics_free(f->metrics);
    char side[160];
    unlink(f->path);
    snprintf(side, sizeof(side), "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", f->path);
    unlink(side);
}

static size_t put16(uint8_t *p, int v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* A request frame with header v1 (client id "t") and BODY. */
static size_t request(uint8_t *out, int api, int version, int corr, const uint8_t *body, size_t len)
{
    size_t at = 4;
    at += put16(out + at, api);
    at += put16(out + at, version);
    at += put32(out + at, (uint32_t)corr);
    at += put16(out + at, 1);
    out[at++] = 't';
    if (len) memcpy(out + at, body, len);
    at += len;
    put32(out, (uint32_t)(at - 4));
    return at;
}

static size_t handshake(uint8_t *out, int version, const char *mech)
{
    uint8_t body[64];
    size_t n = put16(body, (int)strlen(mech));
    memcpy(body + n, mech, strlen(mech));
    return request(out, 17, version, 7, body, n + strlen(mech));
}

static size_t authenticate(uint8_t *out, const void *token, size_t len)
{
    uint8_t body[256];
    size_t n = put32(body, (uint32_t)len);
    memcpy(body + n, token, len);
    return request(out, 36, 1, 8, body, n + len);
}

/* Error code of an answer (non-flexible response: size, correlation id, error). */
static int answer_error(const kg_sasl_verdict *v)
{
    return v->frame && v->frame_len >= 10 ? (int16_t)(v->frame[8] << 8 | v->frame[9]) : -1000;
}

static int feed(fixture *f, const uint8_t *buf, size_t len, kg_sasl_verdict *v)
{
    int rc = kg_sasl_on_frame(&f->conn, &f->env, buf, len, v);
    if (rc == KG_SASL_ANSWER) KT_CHECK_EQ_INT(v->consume, len);
    return rc;
}

KT_TEST(only_apiversions_and_sasl_before_authentication)
{
    fixture f;
    setup(&f, 0);
    uint8_t buf[512];
    kg_sasl_verdict v;
    KT_CHECK_EQ_INT(feed(&f, buf, request(buf, 18, 0, 1, NULL, 0), &v), KG_SASL_PASS);
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 2, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_CLOSE);
    KT_CHECK(strstr(v.reason, "before SASL authentication") != NULL);
    /* A partial frame waits; a huge SASL frame is refused at its header. */
    size_t n = handshake(buf, 1, "PLAIN");
    KT_CHECK_EQ_INT(kg_sasl_on_frame(&f.conn, &f.env, buf, n - 1, &v), KG_SASL_WAIT);
    put32(buf, 1 << 20);
    KT_CHECK_EQ_INT(kg_sasl_on_frame(&f.conn, &f.env, buf, n, &v), KG_SASL_CLOSE);
    teardown(&f);
}

KT_TEST(plain_v1_exchange_and_session)
{
    fixture f;
    setup(&f, 5000);
    uint8_t buf[512];
    kg_sasl_verdict v;
    KT_CHECK_EQ_INT(feed(&f, buf, handshake(buf, 1, "PLAIN"), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 0);
    KT_CHECK(!v.close_after);
    free(v.frame);
    KT_CHECK(kg_sasl_principal(&f.conn) == NULL);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate(buf, "\0alice\0pw", 9), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 0);
    /* v1: null message (-1), empty bytes, then the session lifetime */
    KT_CHECK(v.frame_len == 4 + 4 + 2 + 2 + 4 + 8);
    KT_CHECK(v.frame && v.frame[v.frame_len - 1] == (5000 & 0xff));
    free(v.frame);
    KT_CHECK(kg_sasl_principal(&f.conn) && strcmp(kg_sasl_principal(&f.conn), "User:alice") == 0);
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 3, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_PASS);
    /* KIP-368: past the lifetime, the next request closes. */
    f.env.now_us += 5000 * 1000u + 1;
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 4, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_CLOSE);
    KT_CHECK(strstr(v.reason, "expired") != NULL);
    teardown(&f);
}

KT_TEST(sasl_errors)
{
    fixture f;
    setup(&f, 0);
    uint8_t buf[512];
    kg_sasl_verdict v;
    KT_CHECK_EQ_INT(feed(&f, buf, handshake(buf, 1, "SCRAM-SHA-512"), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 33);
    KT_CHECK(v.close_after);
    free(v.frame);
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate(buf, "\0alice\0pw", 9), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 34);
    KT_CHECK(v.close_after);
    free(v.frame);
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 1, "PLAIN"), &v);
    free(v.frame);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate(buf, "\0alice\0nope", 11), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 58);
    KT_CHECK(v.close_after);
    KT_CHECK(kg_sasl_principal(&f.conn) == NULL);
    free(v.frame);
    teardown(&f);
}

KT_TEST(handshake_v0_then_raw_tokens)
{
    fixture f;
    setup(&f, 0);
    uint8_t buf[512];
    kg_sasl_verdict v;
    KT_CHECK_EQ_INT(feed(&f, buf, handshake(buf, 0, "PLAIN"), &v), KG_SASL_ANSWER);
    free(v.frame);
    /* The raw token: a length and the bytes, no Kafka header (shorter than any request). */
    size_t n = put32(buf, 9);
    memcpy(buf + n, "\0alice\0pw", 9);
    KT_CHECK_EQ_INT(kg_sasl_on_frame(&f.conn, &f.env, buf, 6, &v), KG_SASL_WAIT);
    KT_CHECK_EQ_INT(feed(&f, buf, n + 9, &v), KG_SASL_ANSWER);
    KT_CHECK(v.frame_len == 4 && memcmp(v.frame, "\0\0\0\0", 4) == 0);
    free(v.frame);
    KT_CHECK(kg_sasl_principal(&f.conn) != NULL);
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 3, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_PASS);
    /* A failed raw token closes (v0 has no way to carry an error). */
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 0, "PLAIN"), &v);
    free(v.frame);
    n = put32(buf, 11);
    memcpy(buf + n, "\0alice\0nope", 11);
    KT_CHECK_EQ_INT(kg_sasl_on_frame(&f.conn, &f.env, buf, n + 11, &v), KG_SASL_CLOSE);
    teardown(&f);
}

/* ---- OAUTHBEARER ---- */

#define WALL_MS 1800000000000LL
static int64_t test_wall_ms(void)
{
    return WALL_MS;
}

static EVP_PKEY *oauth_key;

/* The fixture with OAUTHBEARER too: a JWKS file with one EC key, audience "kgate". */
static void setup_oauth(fixture *f, int64_t session_ms, char *jwks_path, size_t cap)
{
    if (!oauth_key) oauth_key = jk_ec();
    snprintf(jwks_path, cap, "/tmp/kg_test_sasl_jwks.%d.json", (int)getpid());
    FILE *out = fopen(jwks_path, "w");
    char *jwk = jk_jwk(oauth_key, "k1");
    fprintf(out, "{\"keys\": [%s]}", jwk);
    fclose(out);
    free(jwk);
    memset(f, 0, sizeof(*f));
    kg_vcluster_cfg cfg = {0};
    snprintf(cfg.oauthbearer.jwks_file, sizeof(cfg.oauthbearer.jwks_file), "%s", jwks_path);
    snprintf(cfg.oauthbearer.audience, sizeof(cfg.oauthbearer.audience), "kgate");
    snprintf(cfg.oauthbearer.principal_claim, sizeof(cfg.oauthbearer.principal_claim), "sub");
    cfg.oauthbearer.clock_skew_s = 30;
    setup(f, session_ms);
    kg_sasl_conn_free(&f->conn);
    kg_sasl_listener_free(f->l);
    f->cfg.oauthbearer = cfg.oauthbearer;
    f->cfg.sasl_mechanisms |= KG_SASL_BIT(KG_SASL_OAUTHBEARER);
    f->l = kg_sasl_listener_new(&f->cfg, f->users, f->metrics);
    f->l->wall_ms = test_wall_ms;
    kg_sasl_conn_init(&f->conn, f->l);
}

/* An OAUTHBEARER client initial response with a token for SUB expiring EXP_IN seconds after
 * WALL_MS, for AUD (malloc'd; *LEN set). */
static char *oauth_message(const char *sub, long exp_in, const char *aud, const char *gs2,
                           size_t *len)
{
    char claims[256];
    snprintf(claims, sizeof(claims), "{\"sub\": \"%s\", \"aud\": \"%s\", \"exp\": %lld}", sub, aud,
             (long long)(WALL_MS / 1000 + exp_in));
    char *token = jk_sign(oauth_key, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", claims);
    char *msg = malloc(strlen(token) + 128);
    *len = (size_t)sprintf(msg, "%s\001auth=Bearer %s\001host=kgate\001\001", gs2, token);
    free(token);
    return msg;
}

/* SaslAuthenticate v1 with TOKEN of any size. */
static size_t authenticate_big(uint8_t *out, const void *token, size_t len)
{
    uint8_t *body = malloc(len + 4);
    size_t n = put32(body, (uint32_t)len);
    memcpy(body + n, token, len);
    size_t at = request(out, 36, 1, 8, body, n + len);
    free(body);
    return at;
}

/* A SaslAuthenticate v1 answer: error message (copied to MSG), auth bytes, session lifetime. */
static int parse_auth_answer(const kg_sasl_verdict *v, char *msg, size_t cap, char *bytes,
                             size_t bytes_cap, int64_t *lifetime)
{
    const uint8_t *p = v->frame + 10;
    int16_t ml = (int16_t)(p[0] << 8 | p[1]);
    p += 2;
    msg[0] = '\0';
    if (ml > 0) {
        snprintf(msg, cap, "%.*s", ml, (const char *)p);
        p += ml;
    }
    uint32_t bl = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    p += 4;
    snprintf(bytes, bytes_cap, "%.*s", (int)bl, (const char *)p);
    p += bl;
    *lifetime = 0;
    for (int i = 0; i < 8; i++)
        *lifetime = *lifetime << 8 | p[i];
    return answer_error(v);
}

KT_TEST(oauthbearer_parse)
{
    const char *tok, *why = NULL;
    size_t tl;
    char authz[64];
#define OP(s)                                                                                      \
    kg_sasl_oauth_parse((const uint8_t *)(s), sizeof(s) - 1, &tok, &tl, authz, sizeof(authz), &why)
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer a.b.c\001\001"), 0);
    KT_CHECK(tl == 5 && memcmp(tok, "a.b.c", 5) == 0 && authz[0] == '\0');
    KT_CHECK_EQ_INT(OP("y,a=al=2Cice=3D,\001host=h\001auth=bearer   x-_.9\001port=9092\001\001"),
                    0);
    KT_CHECK(tl == 5 && memcmp(tok, "x-_.9", 5) == 0);
    KT_CHECK_EQ_STR(authz, "al,ice=");
    KT_CHECK_EQ_INT(OP("p=tls-unique,,\001auth=Bearer a\001\001"), -1);
    KT_CHECK(strstr(why, "channel binding") != NULL);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer a.b.c\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer a.b.c\001\001x"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001\001"), -1);
    KT_CHECK(strstr(why, "no auth") != NULL);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Basic YWxpY2U6cHc=\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer \001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer a\001auth=Bearer b\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001auth=Bearer a+b\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,\001a1=b\001auth=Bearer a\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,a=x=41,\001auth=Bearer a\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,,auth=Bearer a\001\001"), -1);
    KT_CHECK_EQ_INT(OP("n,"), -1);
#undef OP
}

KT_TEST(oauthbearer_exchange)
{
    fixture f;
    char jwks[128], msg[400], bytes[128];
    int64_t lifetime;
    setup_oauth(&f, 0, jwks, sizeof(jwks));
    uint8_t *buf = malloc(8192);
    kg_sasl_verdict v;
    /* The handshake lists it; a valid token authenticates; the session ends with the token. */
    KT_CHECK_EQ_INT(feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(answer_error(&v), 0);
    free(v.frame);
    size_t len;
    char *m = oauth_message("alice", 600, "kgate", "n,,", &len);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate_big(buf, m, len), &v), KG_SASL_ANSWER);
    free(m);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 0);
    KT_CHECK_EQ_INT(lifetime, 600000);
    KT_CHECK(!v.close_after);
    free(v.frame);
    KT_CHECK_EQ_STR(kg_sasl_principal(&f.conn), "User:alice");
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 3, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_PASS);
    f.env.now_us += 600 * 1000000u + 1;
    KT_CHECK_EQ_INT(
        feed(&f, buf, request(buf, 3, 1, 4, (const uint8_t *)"\xff\xff\xff\xff", 4), &v),
        KG_SASL_CLOSE);

    /* A token past its exp but within the clock skew allowance: a session of 1 ms, not none. */
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
    free(v.frame);
    m = oauth_message("alice", -10, "kgate", "n,,", &len);
    feed(&f, buf, authenticate_big(buf, m, len), &v);
    free(m);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 0);
    KT_CHECK_EQ_INT(lifetime, 1);
    free(v.frame);
    teardown(&f);

    /* With sasl_session_ms shorter than the token, that wins. An expired token gets the error
     * challenge; the client's 0x01 then gets SASL_AUTHENTICATION_FAILED with the reason. */
    setup_oauth(&f, 5000, jwks, sizeof(jwks));
    feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
    free(v.frame);
    m = oauth_message("alice", 600, "kgate", "n,a=alice,", &len);
    feed(&f, buf, authenticate_big(buf, m, len), &v);
    free(m);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 0);
    KT_CHECK_EQ_INT(lifetime, 5000);
    free(v.frame);
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
    free(v.frame);
    m = oauth_message("alice", -120, "kgate", "n,,", &len);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate_big(buf, m, len), &v), KG_SASL_ANSWER);
    free(m);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 0);
    KT_CHECK_EQ_STR(bytes, "{\"status\":\"invalid_token\"}");
    KT_CHECK(!v.close_after);
    free(v.frame);
    KT_CHECK_EQ_INT(feed(&f, buf, authenticate(buf, "\001", 1), &v), KG_SASL_ANSWER);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 58);
    KT_CHECK(strstr(msg, "expired") != NULL);
    KT_CHECK(v.close_after);
    KT_CHECK(kg_sasl_principal(&f.conn) == NULL);
    free(v.frame);
    /* A wrong audience; an authzid that is not the token's principal; garbage */
    const char *cases[][3] = {{"alice", "billing", "n,,"}, {"alice", "kgate", "n,a=bob,"}};
    for (int i = 0; i < 2; i++) {
        kg_sasl_conn_free(&f.conn);
        kg_sasl_conn_init(&f.conn, f.l);
        feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
        free(v.frame);
        m = oauth_message(cases[i][0], 600, cases[i][1], cases[i][2], &len);
        feed(&f, buf, authenticate_big(buf, m, len), &v);
        free(m);
        int err = parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime);
        free(v.frame);
        if (i == 0) { /* the challenge, then the failure */
            KT_CHECK_EQ_INT(err, 0);
            feed(&f, buf, authenticate(buf, "\001", 1), &v);
            err = parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime);
            free(v.frame);
            KT_CHECK(strstr(msg, "audience") != NULL);
        } else {
            KT_CHECK(strstr(msg, "authorization id") != NULL);
        }
        KT_CHECK_EQ_INT(err, 58);
        KT_CHECK(kg_sasl_principal(&f.conn) == NULL);
    }
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
    free(v.frame);
    feed(&f, buf, authenticate(buf, "n,,\001auth=Bearer x.y.z\001\001", 23), &v);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 0);
    free(v.frame);
    feed(&f, buf, authenticate(buf, "\001", 1), &v);
    KT_CHECK_EQ_INT(parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime), 58);
    free(v.frame);
    teardown(&f);
    unlink(jwks);
    free(buf);
}

/* One OAUTHBEARER authentication on a fresh connection: the SaslAuthenticate error (0 ok). */
static int oauth_attempt(fixture *f, EVP_PKEY *key, const char *kid)
{
    uint8_t *buf = malloc(8192);
    kg_sasl_verdict v;
    char msg[400], bytes[128];
    int64_t lifetime;
    kg_sasl_conn_free(&f->conn);
    kg_sasl_conn_init(&f->conn, f->l);
    feed(f, buf, handshake(buf, 1, "OAUTHBEARER"), &v);
    free(v.frame);
    char claims[128], header[64];
    snprintf(claims, sizeof(claims), "{\"sub\": \"a\", \"aud\": \"kgate\", \"exp\": %lld}",
             (long long)(WALL_MS / 1000 + 60));
    snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    char *token = jk_sign(key, header, claims), *m = malloc(strlen(token) + 64);
    size_t len = (size_t)sprintf(m, "n,,\001auth=Bearer %s\001\001", token);
    feed(f, buf, authenticate_big(buf, m, len), &v);
    int err = parse_auth_answer(&v, msg, sizeof(msg), bytes, sizeof(bytes), &lifetime);
    free(v.frame);
    free(token);
    free(m);
    free(buf);
    return err == 0 && bytes[0] ? -1 : err; /* the error challenge: refused */
}

static void write_jwks(const char *path, EVP_PKEY *key, const char *kid)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    char *jwk = jk_jwk(key, kid);
    fprintf(out, "{\"keys\": [%s]}", jwk);
    fclose(out);
    free(jwk);
    rename(tmp, path); /* as a deployment replaces it: a new inode */
}

KT_TEST(oauthbearer_jwks_rotation)
{
    fixture f;
    char jwks[128];
    setup_oauth(&f, 0, jwks, sizeof(jwks));
    EVP_PKEY *next = jk_ec();
    KT_CHECK_EQ_INT(oauth_attempt(&f, oauth_key, "k1"), 0);
    KT_CHECK_EQ_INT(oauth_attempt(&f, next, "k2"), -1);
    /* The identity provider rotates: the file gets the new key; kgate sees it within a second. */
    write_jwks(jwks, next, "k2");
    f.env.now_us += 1100000;
    KT_CHECK_EQ_INT(oauth_attempt(&f, next, "k2"), 0);
    KT_CHECK_EQ_INT(oauth_attempt(&f, oauth_key, "k1"), -1);
    /* A broken file keeps the keys in use. */
    FILE *out = fopen(jwks, "w");
    fputs("{\"keys\": [", out);
    fclose(out);
    f.env.now_us += 1100000;
    KT_CHECK_EQ_INT(oauth_attempt(&f, next, "k2"), 0);
    teardown(&f);
    unlink(jwks);
    EVP_PKEY_free(next);
}

KT_TEST(oauthbearer_raw_v0)
{
    fixture f;
    char jwks[128];
    setup_oauth(&f, 0, jwks, sizeof(jwks));
    uint8_t *buf = malloc(8192);
    kg_sasl_verdict v;
    feed(&f, buf, handshake(buf, 0, "OAUTHBEARER"), &v);
    free(v.frame);
    size_t len;
    char *m = oauth_message("svc", 60, "kgate", "n,,", &len);
    size_t n = put32(buf, (uint32_t)len);
    memcpy(buf + n, m, len);
    free(m);
    KT_CHECK_EQ_INT(feed(&f, buf, n + len, &v), KG_SASL_ANSWER);
    KT_CHECK(v.frame_len == 4 && memcmp(v.frame, "\0\0\0\0", 4) == 0);
    free(v.frame);
    KT_CHECK_EQ_STR(kg_sasl_principal(&f.conn), "User:svc");
    KT_CHECK(f.conn.expires_us == f.env.now_us + 60 * 1000000u);
    /* refused: the challenge as a raw token, then whatever comes closes */
    kg_sasl_conn_free(&f.conn);
    kg_sasl_conn_init(&f.conn, f.l);
    feed(&f, buf, handshake(buf, 0, "OAUTHBEARER"), &v);
    free(v.frame);
    m = oauth_message("svc", 60, "other", "n,,", &len);
    n = put32(buf, (uint32_t)len);
    memcpy(buf + n, m, len);
    free(m);
    KT_CHECK_EQ_INT(feed(&f, buf, n + len, &v), KG_SASL_ANSWER);
    KT_CHECK(v.frame_len == 4 + 26 && memcmp(v.frame + 4, "{\"status\"", 9) == 0);
    free(v.frame);
    n = put32(buf, 1);
    buf[n] = 1;
    KT_CHECK_EQ_INT(feed(&f, buf, n + 1, &v), KG_SASL_CLOSE);
    KT_CHECK(strstr(v.reason, "audience") != NULL);
    teardown(&f);
    unlink(jwks);
    free(buf);
    EVP_PKEY_free(oauth_key);
    oauth_key = NULL;
}

KT_MAIN()
