/* libFuzzer target: JWT verification (kg_jwt) and the OAUTHBEARER message of SASL.
 *
 * The keys are fixed (test-only private keys below, made once with `openssl genpkey`), so the
 * JWKS is the same in every run and the seed tokens in tests/fuzz/corpus/fuzz_jwt/ carry valid
 * signatures. Byte 0 picks what is fed:
 *   0  a compact token, verified against the JWKS with an issuer and audience;
 *   1  a JWS header and a claims set (JSON texts split at the first 0xff byte), signed here with
 *      the RSA key (RS256 signatures are deterministic), then verified: the claim checks see
 *      whatever the fuzzer writes behind a valid signature;
 *   2  a JWKS document;
 *   3  an OAUTHBEARER client initial response (kg_sasl_oauth_parse), its token then verified;
 *   4  base64url: decode, and encode what decoded (must give the input back).
 * Properties: no crash, no leak; a refusal always has a reason and no principal; a success has
 * a principal and an expiry; no reason quotes the token's signature; a parsed OAUTHBEARER token
 * lies inside the message.
 */
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/jwt_keys.h"
#include "security/kg_jwt.h"
#include "security/kg_sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW_MS 1800000000000LL /* the seed tokens are valid at this time */

static const char rsa_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDJmN7ynD7tHdks\n"
                              "ONxbwOJyKYeE4plTH/gq2ds5F3qV0Wsd+QYweTZEZYLIVZbHkQRkhV9WZuwNi2mh\n"
                              "cAYqTSABBrEB3KO4P5nk+hwqdeRYnDV4q+FYa+vYkMMy57J0zLukzJCwpCXcbxlc\n"
                              "LMz3tFoRLJFXP3JLqwEEPY2nadY6kkvNmEf/TOu4kFISvS6jjVQxfT0ZoW5gHtRU\n"
                              "Y8lPSCQr0WRgkvsZjo1aaH8Dx1NAIH6jU9umPE5RWozhVgS4qm8zLHy4jbT8t8Vx\n"
                              "0hocI11dMEyJZTGqqFn4mT+1A31s/xO6hJSwJr1fqgtA0oKkwfkVbO20vpkDQ6vS\n"
                              "seJNv7W5AgMBAAECggEAE5FnHUgqmNGA4a396wS59jgvE1L7bE96GI608hcOqw7S\n"
                              "Gu1aZcdzi7K0ExtbsLCpgH2sV11Tea0X6mJOoY8tlWvqL91pdtpAPIhFG59TNCwA\n"
                              "H1/FASmDPFjbhEwWd7KNCYi3CAOm49KqNNbpvlF0kfOFgraB3Z5nptsNWOazs1OR\n"
                              "K3zkVXO9amYO7+zhsTV1eOoLHSiDJ7DPNbB8rsqvSCreg0zgyZGRS+IBYaW382GM\n"
                              "ve3yFh0riNIQe5sUcIg2QLHVmCgF7AwewhzBAv6sjExmnBiWQofjff+Munhhu1xk\n"
                              "SYdBG8p1L1zvDFAmyN0NXB5acuPB4K53H3CrlujakQKBgQDtJC/k9axGPWPpsUc+\n"
                              "M4qCcsHg01Nzd3CCyeL/d26Rh/RWYYaWEbi3u0Jrfp4u8Q5kRf2z98qjgftqWjWl\n"
                              "lfkyA71Ib3KE/B8sg3vEmL6o4X/fTgazI41qff7KoM/RKWxXTrU6FiYaba3yALiq\n"
                              "wHoymBoW8rsC3Q4q+dBm4URw4wKBgQDZoQ/Ad+QIO3MTF74Y3WYxRGmIF16MNI3Y\n"
                              "qEuScahkinNZTDuAnpJhBOlWtp2RZ2ysAxVxgwLnyszP4bfKks9xhL8P017EGB+K\n"
                              "WofJsR9KY9O5Pp7zDcC1nSTItA566M54kw1UXLB8j33aUEi4/3AJTLivUr8yKurE\n"
                              "KhKr5LXNswKBgQDRxYIMgnnbRHD+h1BjKIqs7ECu1aFrcct4FoiTvZ10ZRRx2SGJ\n"
                              "3LFO7fpKRp49HgXCE9vh+B8r1k6FfLkZ+fmPEZm92sAt/SzCXqj8drWphJht+4KX\n"
                              "sqpk+oGJ0wkimAb7kGdls7QPCtilS5gPi+ZMnRnvFNbzKIJg580/RKQbSwKBgQC5\n"
                              "j6MmsRM2Ebqk5PGpsd2Y1IRHDeYIFid8PMNzMoYqdAK2eVGi8ZJONyneTgc8G7uF\n"
                              "T3vRNawch8bq2cMkbtmCKXXfwJJlEUyTY220g9nyS/wTT1moVGmkcUEUALL4CdlC\n"
                              "5d/Pttik3JSquRnI48RbqZcvppZv6DgU2urgtjpuEQKBgQDLu3W9iqo7JVhtYtr0\n"
                              "TFQucqtFIu+kwdTvjWPbmFHxBATW9aF5Vncg2luHCfpY+R6s/a4IHzTc7jgKPKsJ\n"
                              "5Or1fWYHHQGM7qaViv2wzyXgDhojnDuMVrjUUYcaqxiIsi9T1Vm44/ovpq7Gk3e5\n"
                              "/7p/lLXffEswv2VO94pxPVvfLQ==\n"
                              "-----END PRIVATE KEY-----\n";

static const char ec_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgorLKFAMcYMXTNU2x\n"
                             "qZtUkjB7xKoRfqbjDPQHFkpsZqqhRANCAASh1+HXQN52wAi1sTPisYQwxClUsRAF\n"
                             "hrpGd+iHsGvLnLl1qYwolrj7cHqUK/MSfwd0UDF3KGRzfNfuZjw++kkt\n"
                             "-----END PRIVATE KEY-----\n";

static EVP_PKEY *rsa_key, *ec_key;
static kg_jwt_jwks *jwks;
static const kg_jwt_policy policy = {
    .issuer = "https://idp.fuzz", .audience = "kgate", .clock_skew_s = 30};

static EVP_PKEY *load_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!key) abort();
    return key;
}

static void init(void)
{
    rsa_key = load_pem(rsa_pem);
    ec_key = load_pem(ec_pem);
    char *a = jk_jwk(rsa_key, "rsa-1"), *b = jk_jwk(ec_key, "ec-1");
    char text[8192];
    int n = snprintf(text, sizeof(text), "{\"keys\": [%s, %s]}", a, b);
    free(a);
    free(b);
    char err[256];
    jwks = kg_jwt_jwks_parse(text, (size_t)n, err, sizeof(err));
    if (!jwks || kg_jwt_jwks_count(jwks) != 2) abort();
}

static void check_verify(const char *token, size_t len)
{
    kg_jwt_claims claims;
    char err[256] = "";
    int rc = kg_jwt_verify(jwks, &policy, token, len, FUZZ_NOW_MS, &claims, err, sizeof(err));
    if (rc == 0) {
        if (!claims.principal[0] || claims.exp_ms <= 0 || err[0]) abort();
        return;
    }
    if (rc != -1 || !err[0] || claims.principal[0]) abort();
    /* The reason never quotes the signature (a long enough one to be recognised). */
    const char *dot = memrchr(token, '.', len);
    size_t sig_len = dot ? len - (size_t)(dot + 1 - token) : 0;
    if (sig_len >= 16 && sig_len < sizeof(err) && !memchr(dot + 1, '\0', sig_len)) {
        char sig[256];
        memcpy(sig, dot + 1, sig_len);
        sig[sig_len] = '\0';
        if (strstr(err, sig)) abort();
    }
}

static void fuzz_signed(const uint8_t *p, size_t n)
{
    const uint8_t *cut = memchr(p, 0xff, n);
    if (!cut) return;
    char *header = strndup((const char *)p, (size_t)(cut - p));
    char *payload = strndup((const char *)cut + 1, n - (size_t)(cut - p) - 1);
    if (header && payload && strlen(header) < 2048 && strlen(payload) < 4096) {
        char *token = jk_sign(rsa_key, header, payload);
        check_verify(token, strlen(token));
        free(token);
    }
    free(header);
    free(payload);
}

static void fuzz_oauth_message(const uint8_t *p, size_t n)
{
    const char *token, *why = NULL;
    size_t token_len;
    char authzid[256];
    if (kg_sasl_oauth_parse(p, n, &token, &token_len, authzid, sizeof(authzid), &why) != 0) {
        if (!why) abort();
        return;
    }
    if (token < (const char *)p || token + token_len > (const char *)p + n || token_len == 0)
        abort();
    check_verify(token, token_len);
}

static void fuzz_b64url(const uint8_t *p, size_t n)
{
    uint8_t out[512];
    char back[700];
    if (n > 600) return;
    long got = kg_jwt_b64url_decode((const char *)p, n, out, sizeof(out));
    if (got < 0) return;
    size_t len = kg_jwt_b64url_encode(out, (size_t)got, back);
    if (len != n || memcmp(back, p, n) != 0) abort(); /* canonical: one text per byte string */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!jwks) init();
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        check_verify((const char *)p, n);
        break;
    case 1:
        fuzz_signed(p, n);
        break;
    case 2: {
        char err[256];
        kg_jwt_jwks *j = kg_jwt_jwks_parse((const char *)p, n, err, sizeof(err));
        if (j && kg_jwt_jwks_count(j) < 1) abort();
        if (!j && !err[0]) abort();
        kg_jwt_jwks_free(j);
        break;
    }
    case 3:
        fuzz_oauth_message(p, n);
        break;
    default:
        fuzz_b64url(p, n);
        break;
    }
    return 0;
}
