/* kg_jwt — JWKS loading and compact JWS (RS256, ES256) verification with OpenSSL 3's EVP API.
 *
 * Order of the checks of a token: its shape (three base64url parts, a size limit), its header
 * (alg, crit, kid), the signature with the key(s) the header selects, and only then its claims:
 * nothing a forger wrote is looked at beyond the header before the signature is proved.
 */
#include "security/kg_jwt.h"

#include <jansson.h>
#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/kg_err.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 8192
#define P256_COORD 32
#define SHOWN_MAX 64   /* longest excerpt of a client-supplied string in an error */
#define NO_KID_TRIES 8 /* keys tried for a token without a kid, at most */
#define NUMERIC_DATE_MAX 100000000000.0 /* year 5138: larger is garbage, and ms would overflow */

typedef enum key_type { KEY_RSA, KEY_EC } key_type;

typedef struct jwk {
    char kid[KG_JWT_KID_MAX];
    int has_kid;
    key_type type;
    EVP_PKEY *pkey;
} jwk;

struct kg_jwt_jwks {
    jwk *keys;
    int n;
};

/* An excerpt of a string from outside, fit for a message: printable ASCII, at most SHOWN_MAX. */
static const char *shown(const char *in, char out[SHOWN_MAX + 4])
{
    size_t o = 0;
    for (; in && *in && o < SHOWN_MAX; in++)
        out[o++] = (*in >= 0x20 && *in < 0x7f && *in != '"') ? *in : '?';
    if (in && *in) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---------------------------------------------------------------- base64url */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

long kg_jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t out_cap)
{
    if (n % 4 == 1) return -1;
    size_t want = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (want > out_cap) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = ((acc << 6) | (uint32_t)v) & 0x3fff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) return -1; /* non-zero padding bits: not canonical */
    return (long)o;
}

size_t kg_jwt_b64url_encode(const uint8_t *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* A base64url member of a JWK, decoded into OUT. Length, or -1 (reported). */
static long jwk_bytes(json_t *key, const char *member, uint8_t *out, size_t cap, const char *where,
                      char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(key, member));
    if (!s) {
        kg_errf(err, errlen, "%s: \"%s\" missing or not a string", where, member);
        return -1;
    }
    long n = kg_jwt_b64url_decode(s, strlen(s), out, cap);
    if (n <= 0) {
        kg_errf(err, errlen, "%s: \"%s\" is not base64url of at most %zu bytes", where, member,
                cap);
        return -1;
    }
    return n;
}

/* ---------------------------------------------------------------- keys */

static EVP_PKEY *pkey_from_params(const char *type, const OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *key, const char *where, char *err, size_t errlen)
{
    uint8_t n[RSA_MAX_BITS / 8 + 1], e[8];
    long nl = jwk_bytes(key, "n", n, sizeof(n), where, err, errlen);
    if (nl < 0) return NULL;
    long el = jwk_bytes(key, "e", e, sizeof(e), where, err, errlen);
    if (el < 0) return NULL;
    if (!(e[el - 1] & 1) || (el == 1 && e[0] < 3)) {
        kg_errf(err, errlen, "%s: RSA exponent \"e\" is not an odd number of at least 3", where);
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn_n = BN_bin2bn(n, (int)nl, NULL), *bn_e = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)))
        pkey = pkey_from_params("RSA", params);
    int bits = bn_n ? BN_num_bits(bn_n) : 0;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    if (!pkey) {
        kg_errf(err, errlen, "%s: OpenSSL does not accept it as an RSA public key", where);
    } else if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
        kg_errf(err, errlen, "%s: RSA key of %d bits (%d-%d accepted)", where, bits, RSA_MIN_BITS,
                RSA_MAX_BITS);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

static EVP_PKEY *ec_key(json_t *key, const char *where, char *err, size_t errlen)
{
    uint8_t point[1 + 2 * P256_COORD];
    point[0] = 0x04; /* uncompressed: x then y */
    long xl = jwk_bytes(key, "x", point + 1, P256_COORD, where, err, errlen);
    if (xl < 0) return NULL;
    long yl = jwk_bytes(key, "y", point + 1 + P256_COORD, P256_COORD, where, err, errlen);
    if (yl < 0) return NULL;
    if (xl != P256_COORD || yl != P256_COORD) {
        kg_errf(err, errlen, "%s: P-256 coordinates \"x\" and \"y\" must be 32 bytes each", where);
        return NULL;
    }
    char group[] = "P-256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end()};
    EVP_PKEY *pkey = pkey_from_params("EC", params);
    EVP_PKEY_CTX *check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    if (!check || EVP_PKEY_public_check(check) != 1) {
        kg_errf(err, errlen, "%s: not a point of the P-256 curve", where);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(check);
    return pkey;
}

void kg_jwt_jwks_free(kg_jwt_jwks *jwks)
{
    if (!jwks) return;
    for (int i = 0; i < jwks->n; i++)
        EVP_PKEY_free(jwks->keys[i].pkey);
    free(jwks->keys);
    free(jwks);
}

int kg_jwt_jwks_count(const kg_jwt_jwks *jwks)
{
    return jwks ? jwks->n : 0;
}

/* One member of "keys": 1 added, 0 skipped (a type kgate does not verify with), -1 error. */
static int add_key(kg_jwt_jwks *jwks, json_t *key, size_t index, char *err, size_t errlen)
{
    char where[64 + KG_JWT_KID_MAX];
    if (!json_is_object(key)) {
        kg_errf(err, errlen, "keys[%zu]: not an object", index);
        return -1;
    }
    json_t *kid = json_object_get(key, "kid");
    const char *kty = json_string_value(json_object_get(key, "kty"));
    const char *use = json_string_value(json_object_get(key, "use"));
    const char *alg = json_string_value(json_object_get(key, "alg"));
    char kid_shown[SHOWN_MAX + 4];
    if (kid && !json_is_string(kid)) {
        kg_errf(err, errlen, "keys[%zu]: \"kid\" is not a string", index);
        return -1;
    }
    if (kid && strlen(json_string_value(kid)) >= KG_JWT_KID_MAX) {
        kg_errf(err, errlen, "keys[%zu]: \"kid\" longer than %d bytes", index, KG_JWT_KID_MAX - 1);
        return -1;
    }
    if (kid)
        snprintf(where, sizeof(where), "keys[%zu] (kid \"%s\")", index,
                 shown(json_string_value(kid), kid_shown));
    else
        snprintf(where, sizeof(where), "keys[%zu]", index);
    if (!kty) {
        kg_errf(err, errlen, "%s: \"kty\" missing or not a string", where);
        return -1;
    }
    if (use && strcmp(use, "sig") != 0) return 0;
    key_type type;
    EVP_PKEY *pkey;
    if (strcmp(kty, "RSA") == 0) {
        if (alg && strcmp(alg, "RS256") != 0) return 0;
        type = KEY_RSA;
        pkey = rsa_key(key, where, err, errlen);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(key, "crv"));
        if (!crv) {
            kg_errf(err, errlen, "%s: \"crv\" missing or not a string", where);
            return -1;
        }
        if (strcmp(crv, "P-256") != 0 || (alg && strcmp(alg, "ES256") != 0)) return 0;
        type = KEY_EC;
        pkey = ec_key(key, where, err, errlen);
    } else {
        return 0;
    }
    if (!pkey) return -1;
    jwk *k = &jwks->keys[jwks->n];
    memset(k, 0, sizeof(*k));
    k->type = type;
    k->pkey = pkey;
    if (kid) {
        k->has_kid = 1;
        snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
        for (int i = 0; i < jwks->n; i++)
            if (jwks->keys[i].has_kid && strcmp(jwks->keys[i].kid, k->kid) == 0) {
                kg_errf(err, errlen, "%s: a second key with this kid", where);
                EVP_PKEY_free(pkey);
                return -1;
            }
    }
    jwks->n++;
    return 1;
}

kg_jwt_jwks *kg_jwt_jwks_parse(const char *json, size_t len, char *err, size_t errlen)
{
    if (len > KG_JWT_JWKS_MAX) {
        kg_errf(err, errlen, "JWKS of %zu bytes (at most %d)", len, KG_JWT_JWKS_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        kg_errf(err, errlen, "not JSON (line %d: %s)", jerr.line, jerr.text);
        return NULL;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        kg_errf(err, errlen, "not a JWKS: no \"keys\" array");
        json_decref(root);
        return NULL;
    }
    if (json_array_size(keys) > KG_JWT_KEYS_MAX) {
        kg_errf(err, errlen, "%zu keys (at most %d)", json_array_size(keys), KG_JWT_KEYS_MAX);
        json_decref(root);
        return NULL;
    }
    kg_jwt_jwks *jwks = calloc(1, sizeof(*jwks));
    if (jwks) jwks->keys = calloc(json_array_size(keys) + 1, sizeof(*jwks->keys));
    if (!jwks || !jwks->keys) {
        kg_errf(err, errlen, "out of memory");
        kg_jwt_jwks_free(jwks);
        json_decref(root);
        return NULL;
    }
    int failed = 0;
    for (size_t i = 0; i < json_array_size(keys) && !failed; i++)
        failed = add_key(jwks, json_array_get(keys, i), i, err, errlen) < 0;
    json_decref(root);
    ERR_clear_error();
    if (!failed && jwks->n == 0) {
        kg_errf(err, errlen,
                "no usable key: kgate verifies with RSA keys (RS256) and EC P-256 keys (ES256)");
        failed = 1;
    }
    if (failed) {
        kg_jwt_jwks_free(jwks);
        return NULL;
    }
    return jwks;
}

kg_jwt_jwks *kg_jwt_jwks_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        kg_errf(err, errlen, "cannot open %s: %m", path);
        return NULL;
    }
    char *buf = malloc(KG_JWT_JWKS_MAX + 1);
    size_t n = buf ? fread(buf, 1, KG_JWT_JWKS_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    kg_jwt_jwks *jwks = NULL;
    if (bad)
        kg_errf(err, errlen, "cannot read %s", path);
    else if (n > KG_JWT_JWKS_MAX)
        kg_errf(err, errlen, "%s is larger than %d bytes", path, KG_JWT_JWKS_MAX);
    else
        jwks = kg_jwt_jwks_parse(buf, n, err, errlen);
    free(buf);
    return jwks;
}

/* ---------------------------------------------------------------- tokens */

/* Verifies SIG over DATA with KEY. ES256 signatures are JWS's raw r||s; OpenSSL wants DER. */
static int signature_ok(const jwk *key, const uint8_t *sig, size_t sig_len, const char *data,
                        size_t data_len)
{
    uint8_t der[96];
    const uint8_t *s = sig;
    size_t s_len = sig_len;
    if (key->type == KEY_EC) {
        if (sig_len != 2 * P256_COORD) return 0;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, P256_COORD, NULL), *sv = BN_bin2bn(sig + P256_COORD, 32, NULL);
        int len = -1;
        if (es && r && sv && ECDSA_SIG_set0(es, r, sv) == 1) {
            r = sv = NULL; /* owned by es now */
            if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der)) {
                uint8_t *p = der;
                len = i2d_ECDSA_SIG(es, &p);
            }
        }
        BN_free(r);
        BN_free(sv);
        ECDSA_SIG_free(es);
        if (len <= 0) return 0;
        s = der;
        s_len = (size_t)len;
    } else if ((int)sig_len != EVP_PKEY_get_size(key->pkey)) {
        return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx &&
             EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, key->pkey, NULL) == 1 &&
             EVP_DigestVerify(ctx, s, s_len, (const uint8_t *)data, data_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* A base64url part of the token decoded into a fresh NUL-terminated buffer, or NULL. */
static uint8_t *decode_part(const char *p, size_t n, size_t *out_len)
{
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    long got = buf ? kg_jwt_b64url_decode(p, n, buf, n / 4 * 3 + 2) : -1;
    if (got < 0) {
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *out_len = (size_t)got;
    return buf;
}

static json_t *decode_json_part(const char *p, size_t n)
{
    size_t len;
    uint8_t *raw = decode_part(p, n, &len);
    json_t *obj = raw ? json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

/* A NumericDate claim in ms: 1 present and valid, 0 absent, -1 not a number in range. */
static int numeric_date(json_t *claims, const char *name, int64_t *ms)
{
    json_t *v = json_object_get(claims, name);
    if (!v) return 0;
    double d;
    if (json_is_integer(v))
        d = (double)json_integer_value(v);
    else if (json_is_real(v))
        d = json_real_value(v);
    else
        return -1;
    if (!isfinite(d) || d < 0 || d > NUMERIC_DATE_MAX) return -1;
    *ms = (int64_t)(d * 1000.0);
    return 1;
}

static int check_claims(json_t *claims, const kg_jwt_policy *policy, int64_t now_ms,
                        kg_jwt_claims *out, char *err, size_t errlen)
{
    char a[SHOWN_MAX + 4], b[SHOWN_MAX + 4];
    int64_t skew_ms = (policy->clock_skew_s > 0 ? policy->clock_skew_s : 0) * 1000;
    int64_t exp_ms = 0, nbf_ms = 0, iat_ms = 0;
    int rc = numeric_date(claims, "exp", &exp_ms);
    if (rc <= 0) {
        kg_errf(err, errlen, "%s",
                rc == 0 ? "token has no exp claim (an expiry is required)"
                        : "exp claim is not a NumericDate");
        return -1;
    }
    if (now_ms >= exp_ms + skew_ms) {
        kg_errf(err, errlen, "token expired %lld s ago", (long long)((now_ms - exp_ms) / 1000));
        return -1;
    }
    rc = numeric_date(claims, "nbf", &nbf_ms);
    if (rc < 0) {
        kg_errf(err, errlen, "nbf claim is not a NumericDate");
        return -1;
    }
    if (rc > 0 && nbf_ms > now_ms + skew_ms) {
        kg_errf(err, errlen, "token not valid yet (nbf is %lld s in the future)",
                (long long)((nbf_ms - now_ms) / 1000));
        return -1;
    }
    rc = numeric_date(claims, "iat", &iat_ms);
    if (rc < 0) {
        kg_errf(err, errlen, "iat claim is not a NumericDate");
        return -1;
    }
    if (rc > 0 && iat_ms > now_ms + skew_ms) {
        kg_errf(err, errlen, "token issued in the future (iat is %lld s ahead)",
                (long long)((iat_ms - now_ms) / 1000));
        return -1;
    }
    if (policy->issuer && policy->issuer[0]) {
        const char *iss = json_string_value(json_object_get(claims, "iss"));
        if (!iss) {
            kg_errf(err, errlen, "token has no iss claim (issuer \"%s\" required)",
                    shown(policy->issuer, a));
            return -1;
        }
        if (strcmp(iss, policy->issuer) != 0) {
            kg_errf(err, errlen, "issuer \"%s\" is not \"%s\"", shown(iss, a),
                    shown(policy->issuer, b));
            return -1;
        }
    }
    if (policy->audience && policy->audience[0]) {
        json_t *aud = json_object_get(claims, "aud");
        int found = 0;
        if (json_is_string(aud)) {
            found = strcmp(json_string_value(aud), policy->audience) == 0;
        } else if (json_is_array(aud)) {
            for (size_t i = 0; i < json_array_size(aud) && !found; i++) {
                const char *s = json_string_value(json_array_get(aud, i));
                found = s && strcmp(s, policy->audience) == 0;
            }
        }
        if (!found) {
            kg_errf(err, errlen,
                    aud ? "audience \"%s\" is not among the token's aud"
                        : "token has no aud claim (audience \"%s\" required)",
                    shown(policy->audience, a));
            return -1;
        }
    }
    const char *claim =
        policy->principal_claim && policy->principal_claim[0] ? policy->principal_claim : "sub";
    const char *name = json_string_value(json_object_get(claims, claim));
    if (!name || !name[0]) {
        kg_errf(err, errlen, "token has no \"%s\" claim (the principal) or it is not a string",
                shown(claim, a));
        return -1;
    }
    size_t len = strlen(name);
    if (len >= KG_JWT_PRINCIPAL_MAX) {
        kg_errf(err, errlen, "principal (claim \"%s\") longer than %d bytes", shown(claim, a),
                KG_JWT_PRINCIPAL_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            kg_errf(err, errlen, "principal (claim \"%s\") contains control characters",
                    shown(claim, a));
            return -1;
        }
    memcpy(out->principal, name, len + 1);
    out->exp_ms = exp_ms;
    return 0;
}

/* The header's alg: 0 RS256, 1 ES256, -1 refused (reported). */
static int header_alg(json_t *header, char *err, size_t errlen)
{
    char a[SHOWN_MAX + 4];
    const char *alg = json_string_value(json_object_get(header, "alg"));
    if (!alg) {
        kg_errf(err, errlen, "JWS header has no alg");
        return -1;
    }
    if (strcmp(alg, "RS256") == 0) return KEY_RSA;
    if (strcmp(alg, "ES256") == 0) return KEY_EC;
    if (strcmp(alg, "none") == 0 || strcmp(alg, "None") == 0 || strcmp(alg, "NONE") == 0)
        kg_errf(err, errlen, "alg \"none\" (an unsigned token) is refused");
    else if (strncmp(alg, "HS", 2) == 0)
        kg_errf(err, errlen,
                "alg \"%s\" (HMAC with a shared secret) is refused: RS256 and ES256 only",
                shown(alg, a));
    else
        kg_errf(err, errlen, "alg \"%s\" is not supported: RS256 and ES256 only", shown(alg, a));
    return -1;
}

int kg_jwt_verify(const kg_jwt_jwks *jwks, const kg_jwt_policy *policy, const char *token,
                  size_t len, int64_t now_ms, kg_jwt_claims *out, char *err, size_t errlen)
{
    char a[SHOWN_MAX + 4];
    memset(out, 0, sizeof(*out));
    if (!jwks || !policy) {
        kg_errf(err, errlen, "no keys to verify tokens with");
        return -1;
    }
    if (len == 0 || len > KG_JWT_TOKEN_MAX) {
        kg_errf(err, errlen, "token of %zu bytes (1-%d accepted)", len, KG_JWT_TOKEN_MAX);
        return -1;
    }
    const char *dot1 = NULL, *dot2 = NULL;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (dot2) {
                kg_errf(err, errlen, "not a compact JWS: more than three parts (a JWE?)");
                return -1;
            }
            *(dot1 ? &dot2 : &dot1) = token + i;
        } else if (b64url_value((unsigned char)token[i]) < 0) {
            kg_errf(err, errlen, "not a compact JWS: a byte outside base64url");
            return -1;
        }
    }
    if (!dot2 || dot1 == token || dot2 == dot1 + 1) {
        kg_errf(err, errlen, "not a compact JWS: header.payload.signature expected");
        return -1;
    }
    json_t *header = decode_json_part(token, (size_t)(dot1 - token));
    if (!header) {
        kg_errf(err, errlen, "JWS header is not base64url of a JSON object");
        return -1;
    }
    int alg = header_alg(header, err, errlen);
    json_t *kid_v = json_object_get(header, "kid");
    const char *kid = json_string_value(kid_v);
    int bad = alg < 0;
    if (!bad && json_object_get(header, "crit")) {
        kg_errf(err, errlen, "JWS header has crit parameters, which kgate does not understand");
        bad = 1;
    } else if (!bad && kid_v && !kid) {
        kg_errf(err, errlen, "JWS header kid is not a string");
        bad = 1;
    }
    if (!bad) {
        snprintf(out->alg, sizeof(out->alg), "%s", alg == KEY_RSA ? "RS256" : "ES256");
        if (kid) snprintf(out->kid, sizeof(out->kid), "%s", shown(kid, a));
    }
    /* Which keys may have signed it: the one its kid names, or every key fit for alg. */
    int candidates = 0, matched_kid = 0;
    const jwk *cand[KG_JWT_KEYS_MAX];
    for (int i = 0; !bad && i < jwks->n; i++) {
        const jwk *k = &jwks->keys[i];
        if (kid && (!k->has_kid || strcmp(k->kid, kid) != 0)) continue;
        matched_kid = 1;
        if ((int)k->type == alg) cand[candidates++] = k;
    }
    if (!bad && candidates == 0) {
        if (kid && !matched_kid)
            kg_errf(err, errlen, "unknown kid \"%s\": no such key in the JWKS", shown(kid, a));
        else if (kid)
            kg_errf(err, errlen, "alg %s does not fit key \"%s\" (an %s key)", out->alg,
                    shown(kid, a), alg == KEY_RSA ? "EC" : "RSA");
        else
            kg_errf(err, errlen, "no %s key in the JWKS for alg %s (the token names no kid)",
                    alg == KEY_RSA ? "RSA" : "EC", out->alg);
        bad = 1;
    } else if (!bad && candidates > NO_KID_TRIES) {
        /* Each try is a signature check an unauthenticated client makes kgate do. */
        kg_errf(err, errlen,
                "the token names no kid and the JWKS has %d %s keys (at most %d are tried)",
                candidates, alg == KEY_RSA ? "RSA" : "EC", NO_KID_TRIES);
        bad = 1;
    }
    int has_kid = kid != NULL; /* kid points into the header, freed now */
    json_decref(header);
    kid = NULL;
    if (bad) return -1;
    const char *sig_b64 = dot2 + 1;
    size_t sig_b64_len = len - (size_t)(sig_b64 - token);
    if (sig_b64_len == 0) {
        kg_errf(err, errlen, "token has no signature");
        return -1;
    }
    size_t sig_len;
    uint8_t *sig = decode_part(sig_b64, sig_b64_len, &sig_len);
    if (!sig) {
        kg_errf(err, errlen, "signature is not canonical base64url");
        return -1;
    }
    int verified = 0;
    for (int i = 0; i < candidates && !verified; i++)
        verified = signature_ok(cand[i], sig, sig_len, token, (size_t)(dot2 - token));
    free(sig);
    if (!verified) {
        if (alg == KEY_EC && sig_len != 2 * P256_COORD)
            kg_errf(err, errlen, "ES256 signature of %zu bytes (64 expected)", sig_len);
        else
            kg_errf(err, errlen, "signature does not verify (alg %s, %s%s%s)", out->alg,
                    has_kid ? "kid \"" : "no kid", out->kid, has_kid ? "\"" : "");
        return -1;
    }
    json_t *claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims) {
        kg_errf(err, errlen, "JWT payload is not base64url of a JSON object");
        return -1;
    }
    int rc = check_claims(claims, policy, now_ms, out, err, errlen);
    json_decref(claims);
    if (rc < 0) out->principal[0] = '\0';
    return rc;
}
