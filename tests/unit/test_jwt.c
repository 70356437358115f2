/* kg_jwt: JWKS loading and token verification, with keys made here by OpenSSL: valid RS256
 * and ES256 tokens, every claim refusal (exp, nbf, iat, iss, aud, principal), the algorithms
 * refused (none, HS256, a key of the other type), tampering and garbage, and bad JWKS files. */
#include "kt.h"

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jwt_keys.h"
#include "security/kg_jwt.h"

#define NOW_MS 1800000000000LL /* 2027-01-15 */
#define NOW_S (NOW_MS / 1000)

static EVP_PKEY *rsa, *ec, *other_rsa;
static kg_jwt_jwks *jwks;
static const kg_jwt_policy policy = {
    .issuer = "https://idp.example", .audience = "kgate", .clock_skew_s = 30};

static void keys(void)
{
    if (jwks) return;
    rsa = jk_rsa(2048);
    ec = jk_ec();
    other_rsa = jk_rsa(2048);
    char *a = jk_jwk(rsa, "rsa-1"), *b = jk_jwk(ec, "ec-1");
    char text[8192];
    /* An HMAC key and an encryption key next to them are skipped, not errors. */
    snprintf(text, sizeof(text),
             "{\"keys\": [%s, %s, {\"kty\": \"oct\", \"k\": \"c2VjcmV0\", \"kid\": \"hmac\"}, "
             "{\"kty\": \"RSA\", \"use\": \"enc\", \"kid\": \"enc\", \"n\": \"AQAB\", \"e\": "
             "\"AQAB\"}]}",
             a, b);
    free(a);
    free(b);
    char err[256] = "";
    jwks = kg_jwt_jwks_parse(text, strlen(text), err, sizeof(err));
    if (!jwks) fprintf(stderr, "jwks: %s\n", err);
}

static char *claims(const char *extra)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"sub\": \"alice\", \"iss\": \"https://idp.example\", \"aud\": \"kgate\", \"iat\": "
             "%lld, \"exp\": %lld%s}",
             (long long)NOW_S - 10, (long long)NOW_S + 600, extra ? extra : "");
    return buf;
}

/* Verifies TOKEN (freed) with POL; returns the result and leaves the reason in ERR. */
static int verify(char *token, const kg_jwt_policy *pol, kg_jwt_claims *out, char *err)
{
    int rc = kg_jwt_verify(jwks, pol, token, strlen(token), NOW_MS, out, err, 256);
    free(token);
    return rc;
}

#define CHECK_REFUSED(token, pol, needle)                                                          \
    do {                                                                                           \
        kg_jwt_claims c_;                                                                          \
        char e_[256] = "";                                                                         \
        KT_CHECK_EQ_INT(verify((token), (pol), &c_, e_), -1);                                      \
        if (!kt_count(strstr(e_, (needle)) != NULL))                                               \
            kt_fail(__FILE__, __LINE__, "reason \"%s\" lacks \"%s\"", e_, (needle));               \
        KT_CHECK_EQ_STR(c_.principal, "");                                                         \
    } while (0)

KT_TEST(valid_rs256_and_es256)
{
    keys();
    KT_CHECK(jwks != NULL);
    KT_CHECK_EQ_INT(kg_jwt_jwks_count(jwks), 2);
    kg_jwt_claims c;
    char err[256] = "";
    KT_CHECK_EQ_INT(
        verify(jk_sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}", claims(NULL)),
               &policy, &c, err),
        0);
    KT_CHECK_EQ_STR(c.principal, "alice");
    KT_CHECK_EQ_STR(c.alg, "RS256");
    KT_CHECK_EQ_STR(c.kid, "rsa-1");
    KT_CHECK_EQ_INT(c.exp_ms, NOW_MS + 600000);
    KT_CHECK_EQ_INT(
        verify(jk_sign(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", claims(NULL)), &policy, &c, err),
        0);
    KT_CHECK_EQ_STR(c.principal, "alice");
    KT_CHECK_EQ_STR(c.alg, "ES256");
    /* Without a kid, every key of the algorithm's type is tried. */
    KT_CHECK_EQ_INT(verify(jk_sign(ec, "{\"alg\":\"ES256\"}", claims(NULL)), &policy, &c, err), 0);
    /* aud as an array; a fractional exp; no iss/aud policy at all; another principal claim. */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"sub\": \"alice\", \"iss\": \"https://idp.example\", \"aud\": [\"x\", \"kgate\"], "
             "\"exp\": %lld.5, \"client_id\": \"svc-orders\"}",
             (long long)NOW_S + 60);
    KT_CHECK_EQ_INT(
        verify(jk_sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", body), &policy, &c, err), 0);
    KT_CHECK_EQ_INT(c.exp_ms, NOW_MS + 60500);
    kg_jwt_policy loose = {.principal_claim = "client_id"};
    KT_CHECK_EQ_INT(verify(jk_sign(rsa, "{\"alg\":\"RS256\"}", body), &loose, &c, err), 0);
    KT_CHECK_EQ_STR(c.principal, "svc-orders");
    KT_CHECK_EQ_STR(err, "");
}

KT_TEST(time_claims)
{
    keys();
    char body[256];
    /* expired (beyond the skew), and within the skew */
    snprintf(body, sizeof(body), "{\"sub\": \"a\", \"exp\": %lld}", (long long)NOW_S - 31);
    kg_jwt_policy p = {.clock_skew_s = 30};
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\"}", body), &p, "expired");
    snprintf(body, sizeof(body), "{\"sub\": \"a\", \"exp\": %lld}", (long long)NOW_S - 29);
    kg_jwt_claims c;
    char err[256];
    KT_CHECK_EQ_INT(verify(jk_sign(rsa, "{\"alg\":\"RS256\"}", body), &p, &c, err), 0);
    /* exp is required, and must be a number */
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\"}", "{\"sub\": \"a\"}"), &p, "no exp");
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\"}", "{\"sub\": \"a\", \"exp\": \"soon\"}"), &p,
                  "exp claim is not a NumericDate");
    /* nbf in the future, iat in the future */
    snprintf(body, sizeof(body), "{\"sub\": \"a\", \"exp\": %lld, \"nbf\": %lld}",
             (long long)NOW_S + 600, (long long)NOW_S + 120);
    CHECK_REFUSED(jk_sign(ec, "{\"alg\":\"ES256\"}", body), &p, "not valid yet");
    snprintf(body, sizeof(body), "{\"sub\": \"a\", \"exp\": %lld, \"nbf\": %lld}",
             (long long)NOW_S + 600, (long long)NOW_S + 20);
    KT_CHECK_EQ_INT(verify(jk_sign(ec, "{\"alg\":\"ES256\"}", body), &p, &c, err), 0);
    snprintf(body, sizeof(body), "{\"sub\": \"a\", \"exp\": %lld, \"iat\": %lld}",
             (long long)NOW_S + 600, (long long)NOW_S + 3600);
    CHECK_REFUSED(jk_sign(ec, "{\"alg\":\"ES256\"}", body), &p, "issued in the future");
}

KT_TEST(issuer_audience_principal)
{
    keys();
    const char *h = "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}";
    kg_jwt_policy other_iss = policy, other_aud = policy, claim = policy;
    other_iss.issuer = "https://evil.example";
    CHECK_REFUSED(jk_sign(rsa, h, claims(NULL)), &other_iss, "issuer");
    other_aud.audience = "billing";
    CHECK_REFUSED(jk_sign(rsa, h, claims(NULL)), &other_aud, "audience \"billing\"");
    char body[256];
    snprintf(body, sizeof(body),
             "{\"sub\": \"a\", \"iss\": \"https://idp.example\", \"aud\": [\"x\", \"y\"], "
             "\"exp\": %lld}",
             (long long)NOW_S + 60);
    CHECK_REFUSED(jk_sign(rsa, h, body), &policy, "audience");
    snprintf(body, sizeof(body),
             "{\"sub\": \"a\", \"iss\": \"https://idp.example\", \"exp\": %lld}",
             (long long)NOW_S + 60);
    CHECK_REFUSED(jk_sign(rsa, h, body), &policy, "no aud");
    snprintf(body, sizeof(body), "{\"aud\": \"kgate\", \"exp\": %lld}", (long long)NOW_S + 60);
    CHECK_REFUSED(jk_sign(rsa, h, body), &(kg_jwt_policy){.audience = "kgate"}, "\"sub\" claim");
    claim.principal_claim = "email";
    CHECK_REFUSED(jk_sign(rsa, h, claims(NULL)), &claim, "\"email\" claim");
    CHECK_REFUSED(jk_sign(rsa, h, claims(", \"email\": \"a\\nb\"")), &claim, "control");
}

KT_TEST(algorithms_refused)
{
    keys();
    CHECK_REFUSED(jk_sign(NULL, "{\"alg\":\"none\"}", claims(NULL)), &policy, "alg \"none\"");
    CHECK_REFUSED(jk_sign(NULL, "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", claims(NULL)), &policy,
                  "alg \"none\"");
    CHECK_REFUSED(jk_sign(NULL, "{\"kid\":\"rsa-1\"}", claims(NULL)), &policy, "no alg");
    CHECK_REFUSED(jk_sign(ec, "{\"alg\":\"ES384\"}", claims(NULL)), &policy, "not supported");
    /* HS256 keyed with the RSA key's public modulus (the classic confusion attack). */
    char *unsigned_tok = jk_sign(NULL, "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", claims(NULL));
    uint8_t mac[32];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), "secret", 6, (const uint8_t *)unsigned_tok, strlen(unsigned_tok) - 1, mac,
         &mac_len);
    char *tok = malloc(strlen(unsigned_tok) + 64);
    strcpy(tok, unsigned_tok);
    kg_jwt_b64url_encode(mac, mac_len, tok + strlen(tok));
    free(unsigned_tok);
    CHECK_REFUSED(tok, &policy, "HMAC");
    /* alg and key type must agree: an ES256 header naming the RSA key, and the reverse */
    CHECK_REFUSED(jk_sign(ec, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", claims(NULL)), &policy,
                  "does not fit key");
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", claims(NULL)), &policy,
                  "does not fit key");
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"hmac\"}", claims(NULL)), &policy,
                  "unknown kid");
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-9\"}", claims(NULL)), &policy,
                  "unknown kid \"rsa-9\"");
    CHECK_REFUSED(jk_sign(rsa, "{\"alg\":\"RS256\",\"crit\":[\"exp\"]}", claims(NULL)), &policy,
                  "crit");
}

KT_TEST(signatures_and_garbage)
{
    keys();
    /* Signed by a key that is not in the set */
    CHECK_REFUSED(jk_sign(other_rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims(NULL)),
                  &policy, "signature does not verify");
    CHECK_REFUSED(jk_sign(other_rsa, "{\"alg\":\"RS256\"}", claims(NULL)), &policy,
                  "signature does not verify");
    /* A payload swapped under a valid signature (sub changed to "admin") */
    char *good = jk_sign(ec, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", claims(NULL));
    char *evil = jk_sign(NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
                         "{\"sub\": \"admin\", \"exp\": 9999999999}");
    char *tok = malloc(strlen(evil) + strlen(good));
    strcpy(tok, evil);
    strcat(tok, strrchr(good, '.') + 1);
    CHECK_REFUSED(tok, &policy, "signature does not verify");
    /* One flipped bit in the signature */
    tok = strdup(good);
    char *last = tok + strlen(tok) - 5;
    *last = *last == 'A' ? 'B' : 'A';
    CHECK_REFUSED(tok, &policy, "signature");
    /* A truncated ES256 signature */
    tok = strdup(good);
    tok[strlen(tok) - 2] = '\0'; /* 84 characters: 63 bytes */
    CHECK_REFUSED(tok, &policy, "ES256 signature of");
    free(evil);
    free(good);
    CHECK_REFUSED(strdup(""), &policy, "token of 0 bytes");
    CHECK_REFUSED(strdup("garbage"), &policy, "compact JWS");
    CHECK_REFUSED(strdup("a.b.c.d.e"), &policy, "more than three parts");
    CHECK_REFUSED(strdup("a b.c.d"), &policy, "outside base64url");
    CHECK_REFUSED(strdup("..sig"), &policy, "compact JWS");
    CHECK_REFUSED(strdup("eyJhbGciOiJSUzI1NiJ9.e30."), &policy, "no signature");
    CHECK_REFUSED(strdup("bm90IGpzb24.e30.c2ln"), &policy, "JWS header");
    CHECK_REFUSED(strdup("W10.e30.c2ln"), &policy, "JSON object"); /* header "[]" */
    char *huge = malloc(KG_JWT_TOKEN_MAX + 2);
    memset(huge, 'A', KG_JWT_TOKEN_MAX + 1);
    huge[KG_JWT_TOKEN_MAX + 1] = '\0';
    CHECK_REFUSED(huge, &policy, "bytes");
}

KT_TEST(base64url)
{
    uint8_t out[16];
    char enc[32];
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("", 0, out, sizeof(out)), 0);
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("-_8", 3, out, sizeof(out)), 2);
    KT_CHECK(out[0] == 0xfb && out[1] == 0xff);
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("-_9", 3, out, sizeof(out)), -1);  /* stray bits */
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("YQ==", 4, out, sizeof(out)), -1); /* padding */
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("YWJj+A", 6, out, sizeof(out)), -1);
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("Y", 1, out, sizeof(out)), -1);
    KT_CHECK_EQ_INT(kg_jwt_b64url_decode("YWJjZA", 6, out, 3), -1); /* does not fit */
    KT_CHECK_EQ_INT(kg_jwt_b64url_encode((const uint8_t *)"\xfb\xff", 2, enc), 3);
    KT_CHECK_EQ_STR(enc, "-_8");
}

static char *jwks_error(const char *text)
{
    static char err[256];
    err[0] = '\0';
    kg_jwt_jwks *j = kg_jwt_jwks_parse(text, strlen(text), err, sizeof(err));
    if (j) snprintf(err, sizeof(err), "(loaded)");
    kg_jwt_jwks_free(j);
    return err;
}

KT_TEST(jwks_refusals)
{
    keys();
    KT_CHECK(strstr(jwks_error("not json"), "not JSON") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": {}}"), "no \"keys\" array") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": []}"), "no usable key") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": [{\"kty\": \"oct\", \"k\": \"AA\"}]}"),
                    "no usable key") != NULL);
    KT_CHECK(
        strstr(jwks_error("{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}"),
               "bits") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": [{\"kty\": \"RSA\", \"n\": \"a+b\", \"e\": \"AQAB\"}]}"),
                    "\"n\" is not base64url") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"AQ\", "
                               "\"y\": \"AQ\"}]}"),
                    "32 bytes") != NULL);
    /* A point that is not on the curve: (1, 1) */
    char text[1024], x[64];
    uint8_t one[32] = {0};
    one[31] = 1;
    kg_jwt_b64url_encode(one, 32, x);
    snprintf(text, sizeof(text),
             "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"%s\", \"y\": \"%s\"}]}", x,
             x);
    KT_CHECK(strstr(jwks_error(text), "P-256") != NULL);
    /* A weak RSA key, a duplicate kid, a duplicate member */
    EVP_PKEY *weak = jk_rsa(1024);
    char *w = jk_jwk(weak, "weak"), *a = jk_jwk(ec, "k"), *b = jk_jwk(rsa, "k");
    snprintf(text, sizeof(text), "{\"keys\": [%s]}", w);
    KT_CHECK(strstr(jwks_error(text), "1024 bits") != NULL);
    char big[8192];
    snprintf(big, sizeof(big), "{\"keys\": [%s, %s]}", a, b);
    KT_CHECK(strstr(jwks_error(big), "a second key with this kid") != NULL);
    KT_CHECK(strstr(jwks_error("{\"keys\": [], \"keys\": []}"), "not JSON") != NULL);
    free(w);
    free(a);
    free(b);
    EVP_PKEY_free(weak);
    /* From a file; a missing file */
    char path[64];
    snprintf(path, sizeof(path), "/tmp/kg_test_jwt.%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    char *k = jk_jwk(ec, NULL);
    fprintf(f, "{\"keys\": [%s]}", k);
    fclose(f);
    free(k);
    char err[256];
    kg_jwt_jwks *j = kg_jwt_jwks_load(path, err, sizeof(err));
    KT_CHECK(j && kg_jwt_jwks_count(j) == 1);
    kg_jwt_jwks_free(j);
    unlink(path);
    KT_CHECK(kg_jwt_jwks_load(path, err, sizeof(err)) == NULL && strstr(err, "cannot open"));
}

KT_TEST(token_without_kid_tries_few_keys)
{
    keys();
    /* Nine EC keys without kids: a token without a kid would cost nine signature checks. */
    char text[8192] = "{\"keys\": [";
    EVP_PKEY *many[9];
    for (int i = 0; i < 9; i++) {
        many[i] = jk_ec();
        char *k = jk_jwk(many[i], NULL);
        strcat(text, i ? ", " : "");
        strcat(text, k);
        free(k);
    }
    strcat(text, "]}");
    char err[256];
    kg_jwt_jwks *set = kg_jwt_jwks_parse(text, strlen(text), err, sizeof(err));
    KT_CHECK(set != NULL);
    char *tok = jk_sign(many[8], "{\"alg\":\"ES256\"}", claims(NULL));
    kg_jwt_claims c;
    KT_CHECK_EQ_INT(kg_jwt_verify(set, &policy, tok, strlen(tok), NOW_MS, &c, err, sizeof(err)),
                    -1);
    KT_CHECK(strstr(err, "names no kid") != NULL);
    free(tok);
    kg_jwt_jwks_free(set);
    for (int i = 0; i < 9; i++)
        EVP_PKEY_free(many[i]);
}

KT_TEST(cleanup)
{
    kg_jwt_jwks_free(jwks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(other_rsa);
    jwks = NULL;
}

KT_MAIN()
