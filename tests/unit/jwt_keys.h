/* jwt_keys — test helpers (header only): key pairs made with OpenSSL, their JWKS entries, and
 * signed compact JWS tokens, for tests of kg_jwt and of SASL OAUTHBEARER. */
#ifndef JWT_KEYS_H
#define JWT_KEYS_H

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/kg_jwt.h"

#define JK_UNUSED __attribute__((unused))

static JK_UNUSED EVP_PKEY *jk_rsa(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static JK_UNUSED EVP_PKEY *jk_ec(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* base64url of a BIGNUM parameter of KEY, left-padded to PAD bytes (0: minimal). */
static JK_UNUSED void jk_param_b64(EVP_PKEY *key, const char *param, int pad, char *out)
{
    BIGNUM *bn = NULL;
    uint8_t bin[1100];
    EVP_PKEY_get_bn_param(key, param, &bn);
    int n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
    kg_jwt_b64url_encode(bin, (size_t)n, out);
    BN_free(bn);
}

/* One JWKS entry for KEY (public part) with KID (NULL: none); malloc'd JSON text. */
static JK_UNUSED char *jk_jwk(EVP_PKEY *key, const char *kid)
{
    char a[1500], b[1500], kidpart[200] = "";
    char *out = malloc(4096);
    if (kid) snprintf(kidpart, sizeof(kidpart), "\"kid\": \"%s\", ", kid);
    if (EVP_PKEY_is_a(key, "RSA")) {
        jk_param_b64(key, OSSL_PKEY_PARAM_RSA_N, 0, a);
        jk_param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0, b);
        snprintf(out, 4096, "{%s\"kty\": \"RSA\", \"use\": \"sig\", \"n\": \"%s\", \"e\": \"%s\"}",
                 kidpart, a, b);
    } else {
        jk_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, 32, a);
        jk_param_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32, b);
        snprintf(out, 4096, "{%s\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"%s\", \"y\": \"%s\"}",
                 kidpart, a, b);
    }
    return out;
}

/* A compact JWS of HEADER and PAYLOAD (JSON texts) signed by KEY (RS256 or ES256 after its
 * type; NULL: an empty signature). malloc'd. */
static JK_UNUSED char *jk_sign(EVP_PKEY *key, const char *header, const char *payload)
{
    size_t hl = strlen(header), pl = strlen(payload);
    char *out = malloc(hl * 2 + pl * 2 + 2048);
    size_t at = kg_jwt_b64url_encode((const uint8_t *)header, hl, out);
    out[at++] = '.';
    at += kg_jwt_b64url_encode((const uint8_t *)payload, pl, out + at);
    size_t signed_len = at;
    out[at++] = '.';
    out[at] = '\0';
    if (!key) return out;
    uint8_t sig[1100], raw[64];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, key, NULL);
    EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)out, signed_len);
    EVP_MD_CTX_free(ctx);
    const uint8_t *s = sig;
    if (EVP_PKEY_is_a(key, "EC")) { /* DER -> JWS's raw r||s */
        const uint8_t *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
        ECDSA_SIG_free(es);
        s = raw;
        sig_len = 64;
    }
    kg_jwt_b64url_encode(s, sig_len, out + at);
    return out;
}

#endif
