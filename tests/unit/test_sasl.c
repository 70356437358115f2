/* kg_sasl, the SASL stage of the request path, on hand-made frames: what is served before
 * authentication, SaslHandshake v0/v1 and SaslAuthenticate, raw v0 tokens, Kafka's error codes,
 * KIP-368 expiry, and waiting for whole frames. */
#include "kt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

KT_MAIN()
