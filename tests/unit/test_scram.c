/* kg_scram: the RFC 7677 SCRAM-SHA-256 test vector, a SHA-512 round trip computed the client's
 * way with OpenSSL, PLAIN, and messages a hostile or broken client sends. */
#include "kt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "security/kg_scram.h"

static const char rfc_first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char rfc_server_nonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
static const char rfc_server_first[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char rfc_final[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char rfc_server_final[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static void rfc_keys(kg_scram_keys *k)
{
    uint8_t salt[32];
    int n = kg_scram_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt));
    KT_CHECK_EQ_INT(n, 16);
    KT_CHECK_EQ_INT(kg_scram_derive(KG_SASL_SCRAM_SHA_256, "pencil", 6, salt, (size_t)n, 4096, k),
                    0);
}

/* Runs the RFC exchange up to the server-first-message. */
static int rfc_start(kg_scram_server *s, const kg_scram_keys *k)
{
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t len = 0;
    kg_scram_server_init(s, KG_SASL_SCRAM_SHA_256);
    if (kg_scram_client_first(s, (const uint8_t *)rfc_first, strlen(rfc_first), &why) != 0)
        return -1;
    if (kg_scram_server_first_nonce(s, k, rfc_server_nonce, &out, &len) != 0) return -1;
    int same = len == strlen(rfc_server_first) && memcmp(out, rfc_server_first, len) == 0;
    free(out);
    return same ? 0 : -1;
}

KT_TEST(rfc7677_sha256_vector)
{
    kg_scram_keys k;
    rfc_keys(&k);
    kg_scram_server s;
    KT_CHECK_EQ_INT(rfc_start(&s, &k), 0);
    KT_CHECK(strcmp(s.user, "user") == 0);
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t len = 0;
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *)rfc_final, strlen(rfc_final), &out, &len, &why),
        0);
    KT_CHECK(out && len == strlen(rfc_server_final) && memcmp(out, rfc_server_final, len) == 0);
    KT_CHECK_EQ_INT(s.step, KG_SCRAM_DONE);
    free(out);
    /* Replaying the final message on a finished exchange fails. */
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *)rfc_final, strlen(rfc_final), &out, &len, &why),
        -1);
    kg_scram_server_free(&s);
}

KT_TEST(rfc7677_wrong_password_and_unknown_user_fail)
{
    kg_scram_keys k;
    uint8_t salt[16];
    KT_CHECK_EQ_INT(kg_scram_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof(salt)), 16);
    kg_scram_derive(KG_SASL_SCRAM_SHA_256, "pencil2", 7, salt, 16, 4096, &k);
    kg_scram_server s;
    KT_CHECK_EQ_INT(rfc_start(&s, &k), 0);
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t len;
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *)rfc_final, strlen(rfc_final), &out, &len, &why),
        -1);
    KT_CHECK(why && strcmp(why, "invalid credentials") == 0);
    kg_scram_server_free(&s);

    /* Unknown user: a made-up salt, the exchange runs and fails at the end. */
    kg_scram_server_init(&s, KG_SASL_SCRAM_SHA_256);
    KT_CHECK_EQ_INT(kg_scram_client_first(&s, (const uint8_t *)rfc_first, strlen(rfc_first), &why),
                    0);
    KT_CHECK_EQ_INT(kg_scram_server_first(&s, NULL, &out, &len), 0);
    KT_CHECK(out && len > 40 && memcmp(out, "r=rOprNGfwEbeRWgbNEkqO", 22) == 0);
    free(out);
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *)rfc_final, strlen(rfc_final), &out, &len, &why),
        -1);
    kg_scram_server_free(&s);
}

KT_TEST(password_check_uses_stored_salt)
{
    kg_scram_keys k;
    rfc_keys(&k);
    KT_CHECK(kg_scram_check_password(&k, "pencil", 6));
    KT_CHECK(!kg_scram_check_password(&k, "pencil ", 7));
    KT_CHECK(!kg_scram_check_password(&k, "", 0));
    kg_scram_keys n;
    KT_CHECK_EQ_INT(kg_scram_derive_new(KG_SASL_SCRAM_SHA_512, "pw", 2, 4096, &n), 0);
    KT_CHECK_EQ_INT(n.key_len, 64);
    KT_CHECK_EQ_INT(n.salt_len, 32);
    KT_CHECK(kg_scram_check_password(&n, "pw", 2));
}

/* The client side, computed here with OpenSSL the way RFC 5802 section 3 describes. */
static void client_proof(const EVP_MD *md, const char *password, const uint8_t *salt,
                         size_t salt_len, int iters, const char *auth, char *proof64)
{
    size_t n = (size_t)EVP_MD_get_size(md);
    uint8_t salted[64], ck[64], sk[64], sig[64], proof[64];
    unsigned len;
    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iters, md, (int)n,
                      salted);
    HMAC(md, salted, (int)n, (const uint8_t *)"Client Key", 10, ck, &len);
    EVP_Digest(ck, n, sk, &len, md, NULL);
    HMAC(md, sk, (int)n, (const uint8_t *)auth, strlen(auth), sig, &len);
    for (size_t i = 0; i < n; i++)
        proof[i] = ck[i] ^ sig[i];
    kg_scram_b64_encode(proof, n, proof64);
}

KT_TEST(sha512_round_trip)
{
    kg_scram_keys k;
    KT_CHECK_EQ_INT(kg_scram_derive_new(KG_SASL_SCRAM_SHA_512, "s3cret", 6, 4096, &k), 0);
    kg_scram_server s;
    kg_scram_server_init(&s, KG_SASL_SCRAM_SHA_512);
    const char *first = "n,a=al=3Dice,n=al=3Dice,r=abcdefgh";
    const char *why = NULL;
    KT_CHECK_EQ_INT(kg_scram_client_first(&s, (const uint8_t *)first, strlen(first), &why), 0);
    KT_CHECK(strcmp(s.user, "al=ice") == 0);
    uint8_t *sf = NULL;
    size_t sf_len = 0;
    KT_CHECK_EQ_INT(kg_scram_server_first(&s, &k, &sf, &sf_len), 0);
    char server_first[512];
    snprintf(server_first, sizeof(server_first), "%.*s", (int)sf_len, (const char *)sf);
    free(sf);
    char nonce[256];
    KT_CHECK(sscanf(server_first, "r=%255[^,]", nonce) == 1);
    char without[600], auth[1200], proof64[100], final[800];
    /* c= is base64 of the GS2 header "n,a=al=3Dice," */
    char cb[64];
    kg_scram_b64_encode((const uint8_t *)"n,a=al=3Dice,", 13, cb);
    snprintf(without, sizeof(without), "c=%s,r=%s", cb, nonce);
    snprintf(auth, sizeof(auth), "%s,%s,%s", first + 13, server_first, without);
    client_proof(EVP_sha512(), "s3cret", k.salt, k.salt_len, 4096, auth, proof64);
    snprintf(final, sizeof(final), "%s,p=%s", without, proof64);
    uint8_t *out = NULL;
    size_t len = 0;
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *) final, strlen(final), &out, &len, &why), 0);
    KT_CHECK(out && len > 2 && memcmp(out, "v=", 2) == 0);
    free(out);
    kg_scram_server_free(&s);
}

/* librdkafka before 2.6.1 sends "r=" client nonce + the whole nonce: accepted, and the proof
 * is computed over what it sent. Any other prefix is not. */
static int legacy_exchange(const char *prefix)
{
    kg_scram_keys k;
    kg_scram_derive_new(KG_SASL_SCRAM_SHA_256, "pw", 2, 4096, &k);
    kg_scram_server s;
    kg_scram_server_init(&s, KG_SASL_SCRAM_SHA_256);
    const char *first = "n,,n=bob,r=cnonce";
    const char *why = NULL;
    uint8_t *sf = NULL, *out = NULL;
    size_t sf_len = 0, len = 0;
    kg_scram_client_first(&s, (const uint8_t *)first, strlen(first), &why);
    kg_scram_server_first(&s, &k, &sf, &sf_len);
    char server_first[512], nonce[256], without[600], auth[1200], proof64[100], final[800];
    snprintf(server_first, sizeof(server_first), "%.*s", (int)sf_len, (const char *)sf);
    free(sf);
    sscanf(server_first, "r=%255[^,]", nonce);
    snprintf(without, sizeof(without), "c=biws,r=%s%s", prefix, nonce);
    snprintf(auth, sizeof(auth), "%s,%s,%s", first + 3, server_first, without);
    client_proof(EVP_sha256(), "pw", k.salt, k.salt_len, 4096, auth, proof64);
    snprintf(final, sizeof(final), "%s,p=%s", without, proof64);
    int rc = kg_scram_client_final(&s, (const uint8_t *) final, strlen(final), &out, &len, &why);
    free(out);
    kg_scram_server_free(&s);
    return rc;
}

KT_TEST(librdkafka_legacy_final_nonce)
{
    KT_CHECK_EQ_INT(legacy_exchange(""), 0);
    KT_CHECK_EQ_INT(legacy_exchange("cnonce"), 0);
    KT_CHECK_EQ_INT(legacy_exchange("cnoncf"), -1);
    KT_CHECK_EQ_INT(legacy_exchange("x"), -1);
}

static int first_fails(const char *msg)
{
    kg_scram_server s;
    const char *why = NULL;
    kg_scram_server_init(&s, KG_SASL_SCRAM_SHA_256);
    int rc = kg_scram_client_first(&s, (const uint8_t *)msg, strlen(msg), &why);
    int failed = rc == -1 && why && s.step == KG_SCRAM_FAILED;
    kg_scram_server_free(&s);
    return failed;
}

KT_TEST(bad_client_first_messages)
{
    KT_CHECK(first_fails(""));
    KT_CHECK(first_fails("p=tls-unique,,n=user,r=abc"));     /* channel binding */
    KT_CHECK(first_fails("x,,n=user,r=abc"));                /* bad flag */
    KT_CHECK(first_fails("n,,r=abc"));                       /* no user */
    KT_CHECK(first_fails("n,,n=user"));                      /* no nonce */
    KT_CHECK(first_fails("n,,n=user,r="));                   /* empty nonce */
    KT_CHECK(first_fails("n,,m=ext,n=user,r=abc"));          /* mandatory extension */
    KT_CHECK(first_fails("n,,n=us=41er,r=abc"));             /* bad saslname escape */
    KT_CHECK(first_fails("n,,n=,r=abc"));                    /* empty user */
    KT_CHECK(first_fails("n,a=bob,n=user,r=abc"));           /* authzid differs */
    KT_CHECK(first_fails("n,,n=user,r=abc,tokenauth=true")); /* delegation tokens */
    KT_CHECK(first_fails("n,,n=user,r=a\x01"
                         "b"));
    KT_CHECK(!first_fails("n,,n=user,r=abc"));
    KT_CHECK(!first_fails("y,,n=user,r=abc"));
}

KT_TEST(bad_client_final_messages)
{
    kg_scram_keys k;
    rfc_keys(&k);
    const char *bad[] = {
        "",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", /* no proof */
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* channel binding "y,," != "n,," */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* nonce */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzb", /* short proof */
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1", /* proof not last */
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* order */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kg_scram_server s;
        KT_CHECK_EQ_INT(rfc_start(&s, &k), 0);
        const char *why = NULL;
        uint8_t *out = NULL;
        size_t len;
        KT_CHECK_EQ_INT(
            kg_scram_client_final(&s, (const uint8_t *)bad[i], strlen(bad[i]), &out, &len, &why),
            -1);
        KT_CHECK(why != NULL && out == NULL);
        kg_scram_server_free(&s);
    }
    /* Out of order: a final message first, a first message twice. */
    kg_scram_server s;
    const char *why;
    uint8_t *out;
    size_t len;
    kg_scram_server_init(&s, KG_SASL_SCRAM_SHA_256);
    KT_CHECK_EQ_INT(
        kg_scram_client_final(&s, (const uint8_t *)rfc_final, strlen(rfc_final), &out, &len, &why),
        -1);
    kg_scram_server_free(&s);
    KT_CHECK_EQ_INT(rfc_start(&s, &k), 0);
    KT_CHECK_EQ_INT(kg_scram_client_first(&s, (const uint8_t *)rfc_first, strlen(rfc_first), &why),
                    -1);
    kg_scram_server_free(&s);
}

KT_TEST(plain_messages)
{
    const char *u, *p, *why;
    size_t ul, pl;
    KT_CHECK_EQ_INT(kg_scram_plain_parse((const uint8_t *)"\0alice\0pw", 9, &u, &ul, &p, &pl, &why),
                    0);
    KT_CHECK(ul == 5 && memcmp(u, "alice", 5) == 0 && pl == 2 && memcmp(p, "pw", 2) == 0);
    KT_CHECK_EQ_INT(
        kg_scram_plain_parse((const uint8_t *)"alice\0alice\0pw", 14, &u, &ul, &p, &pl, &why), 0);
    KT_CHECK_EQ_INT(
        kg_scram_plain_parse((const uint8_t *)"bob\0alice\0pw", 12, &u, &ul, &p, &pl, &why), -1);
    KT_CHECK_EQ_INT(kg_scram_plain_parse((const uint8_t *)"\0alice", 6, &u, &ul, &p, &pl, &why),
                    -1);
    KT_CHECK_EQ_INT(kg_scram_plain_parse((const uint8_t *)"\0\0pw", 4, &u, &ul, &p, &pl, &why), -1);
    KT_CHECK_EQ_INT(kg_scram_plain_parse((const uint8_t *)"\0a\0p\0x", 7, &u, &ul, &p, &pl, &why),
                    -1);
    KT_CHECK_EQ_INT(kg_scram_plain_parse((const uint8_t *)"\0a\0", 3, &u, &ul, &p, &pl, &why), -1);
}

KT_TEST(base64_is_strict)
{
    uint8_t out[16];
    KT_CHECK_EQ_INT(kg_scram_b64_decode("biws", 4, out, sizeof(out)), 3);
    KT_CHECK_EQ_INT(kg_scram_b64_decode("bi w", 4, out, sizeof(out)), -1);
    KT_CHECK_EQ_INT(kg_scram_b64_decode("b=ws", 4, out, sizeof(out)), -1);
    KT_CHECK_EQ_INT(kg_scram_b64_decode("biw", 3, out, sizeof(out)), -1);
    KT_CHECK_EQ_INT(kg_scram_b64_decode("YQ==", 4, out, sizeof(out)), 1);
    KT_CHECK_EQ_INT(kg_scram_b64_decode("YWI=", 4, out, sizeof(out)), 2);
}

KT_MAIN()
