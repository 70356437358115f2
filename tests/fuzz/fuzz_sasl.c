/* libFuzzer target: the SCRAM and PLAIN message parsers of the SASL server, and the SASL stage
 * of the request path (what an unauthenticated client can send).
 *
 * Byte 0 picks what is fed: 0/1 a SCRAM-SHA-256/512 exchange (client-first, then, when it was
 * accepted, client-final: the rest of the input split at the first 0xff byte), 2 a PLAIN
 * message, 3 base64, 4 a byte stream of frames to one connection's SASL stage (PLAIN, SCRAM and
 * OAUTHBEARER, whose tokens are checked against a one-key JWKS written at start). Properties: no
 * crash, no leak; a failed step leaves the exchange failed (every later message fails); a PLAIN
 * parse hands back slices inside the input; the stage consumes only whole frames it has, and
 * answers with frames whose size prefix is right.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/kg_metrics.h"
#include "security/kg_sasl.h"
#include "security/kg_scram.h"
#include "security/kg_users.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kg_scram_keys keys[2];
static int keys_made;

static void make_keys(void)
{
    static const uint8_t salt[16] = "kgate-fuzz-salt";
    kg_scram_derive(KG_SASL_SCRAM_SHA_256, "pencil", 6, salt, sizeof(salt), 4096, &keys[0]);
    kg_scram_derive(KG_SASL_SCRAM_SHA_512, "pencil", 6, salt, sizeof(salt), 4096, &keys[1]);
    keys_made = 1;
}

static void fuzz_scram(int sha512, const uint8_t *p, size_t n)
{
    const uint8_t *cut = memchr(p, 0xff, n);
    size_t first_len = cut ? (size_t)(cut - p) : n;
    kg_scram_server s;
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t len = 0;
    kg_scram_server_init(&s, sha512 ? KG_SASL_SCRAM_SHA_512 : KG_SASL_SCRAM_SHA_256);
    if (kg_scram_client_first(&s, p, first_len, &why) == 0) {
        if (kg_scram_server_first_nonce(&s, &keys[sha512], "fuzznonce", &out, &len) != 0) abort();
        free(out);
        out = NULL;
        if (cut) {
            int rc = kg_scram_client_final(&s, cut + 1, n - first_len - 1, &out, &len, &why);
            if (rc == 0 && (len < 2 || memcmp(out, "v=", 2) != 0)) abort();
            if (rc != 0 && (out || s.step != KG_SCRAM_FAILED || !why)) abort();
            free(out);
            out = NULL;
        }
    } else if (s.step != KG_SCRAM_FAILED || !why) {
        abort();
    }
    /* Whatever happened, the exchange accepts no first message again. */
    if (kg_scram_client_first(&s, p, first_len, &why) == 0) abort();
    kg_scram_server_free(&s);
}

/* One connection's SASL stage over the stream P: whole frames are taken one by one. */
static kg_sasl_listener *listener;
static kg_vcluster_cfg stage_cfg;
static kg_metrics *stage_metrics; /* kept for the process, like the listener */

/* Tokens are checked at a fixed time: the seed tokens (valid then) stay valid. */
static int64_t fuzz_wall_ms(void)
{
    return 1800000000000LL;
}

static void make_listener(void)
{
    char err[256];
    kg_log_set_level(KG_LOG_ERROR); /* failures are logged as warnings: not here */
    kg_store *store = kg_store_open(":memory:", err, sizeof(err));
    kg_users *users = store ? kg_users_new(store) : NULL;
    if (!users) abort();
    kg_users_set_password(users, "user", "SCRAM-SHA-256", "pencil", 6, 0, 1, "fuzz", err,
                          sizeof(err));
    snprintf(stage_cfg.name, sizeof(stage_cfg.name), "fuzz");
    stage_cfg.auth_gateway = 1;
    stage_cfg.sasl_mechanisms = KG_SASL_BIT(KG_SASL_PLAIN) | KG_SASL_BIT(KG_SASL_SCRAM_SHA_256) |
                                KG_SASL_BIT(KG_SASL_SCRAM_SHA_512) |
                                KG_SASL_BIT(KG_SASL_OAUTHBEARER);
    /* OAUTHBEARER's keys: a public P-256 key (its private half is in fuzz_jwt.c) */
    snprintf(stage_cfg.oauthbearer.jwks_file, sizeof(stage_cfg.oauthbearer.jwks_file),
             "/tmp/kgate-fuzz-sasl-jwks.%d.json", (int)getpid());
    FILE *f = fopen(stage_cfg.oauthbearer.jwks_file, "w");
    if (!f) abort();
    fputs("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"kid\": \"ec-1\", \"x\": "
          "\"odfh10DedsAItbEz4rGEMMQpVLEQBYa6Rnfoh7Bry5w\", \"y\": "
          "\"uXWpjCiWuPtwepQr8xJ_B3RQMXcoZHN81-5mPD76SS0\"}]}",
          f);
    fclose(f);
    snprintf(stage_cfg.oauthbearer.principal_claim, sizeof(stage_cfg.oauthbearer.principal_claim),
             "sub");
    stage_cfg.sasl_session_ms = 1000;
    stage_metrics = kg_metrics_new();
    listener = kg_sasl_listener_new(&stage_cfg, users, stage_metrics);
    unlink(stage_cfg.oauthbearer.jwks_file); /* loaded; a change is looked for, never found */
    if (!listener) abort();
    listener->wall_ms = fuzz_wall_ms;
}

static void fuzz_stage(const uint8_t *p, size_t n)
{
    if (!listener) make_listener();
    kg_sasl_conn conn;
    kg_sasl_conn_init(&conn, listener);
    kg_sasl_env env = {.peer = "fuzz", .now_us = 1000000, .max_frame_bytes = 1 << 20};
    size_t at = 0;
    for (int i = 0; i < 64 && at < n; i++) {
        kg_sasl_verdict v;
        int rc = kg_sasl_on_frame(&conn, &env, p + at, n - at, &v);
        env.now_us += 400000; /* sessions end along the way */
        if (rc == KG_SASL_ANSWER) {
            if (v.consume == 0 || v.consume > n - at || v.frame_len < 4) abort();
            uint32_t size = (uint32_t)v.frame[0] << 24 | (uint32_t)v.frame[1] << 16 |
                            (uint32_t)v.frame[2] << 8 | v.frame[3];
            if (size + 4 != v.frame_len) abort();
            free(v.frame);
            at += v.consume;
            if (v.close_after) break;
        } else if (rc == KG_SASL_PASS && n - at >= 4) {
            uint32_t size = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 |
                            (uint32_t)p[at + 2] << 8 | p[at + 3];
            if (size > n - at - 4) break;
            at += 4 + (size_t)size; /* the engine passes it on */
        } else {
            break; /* WAIT (no more bytes) or CLOSE */
        }
    }
    kg_sasl_conn_free(&conn);
}

static void fuzz_plain(const uint8_t *p, size_t n)
{
    const char *u, *pw, *why;
    size_t ul, pl;
    if (kg_scram_plain_parse(p, n, &u, &ul, &pw, &pl, &why) != 0) return;
    const char *lo = (const char *)p, *hi = lo + n;
    if (u < lo || u + ul > hi || pw < lo || pw + pl > hi || ul == 0 || pl == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!keys_made) make_keys();
    uint8_t buf[128];
    switch (data[0] % 5) {
    case 0:
    case 1:
        fuzz_scram(data[0] % 5, data + 1, size - 1);
        break;
    case 2:
        fuzz_plain(data + 1, size - 1);
        break;
    case 4:
        fuzz_stage(data + 1, size - 1);
        break;
    default:
        kg_scram_b64_decode((const char *)data + 1, size - 1, buf, sizeof(buf));
        break;
    }
    return 0;
}
