/* kg_jwt — signed JSON Web Tokens (RFC 7519) for SASL OAUTHBEARER at kgate: a JWKS file
 * (RFC 7517) of public keys, and the check of a compact JWS (RFC 7515) against it.
 *
 * Only RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RSA keys of 2048-8192 bits) and ES256 (ECDSA on
 * P-256 with SHA-256) are accepted: "none", HMAC (HS*) and every other algorithm are refused,
 * and so is a key whose type does not fit the algorithm. Claims: exp is required, nbf and iat
 * are checked with a clock skew allowance, iss and aud when configured; the principal comes
 * from a configurable claim ("sub" by default).
 *
 * Every primitive is OpenSSL 3's EVP API. A key set is read-only once loaded, so worker threads
 * share it. Error strings never contain the token or any part of it: they are logged.
 */
#ifndef KG_JWT_H
#define KG_JWT_H

#include <stddef.h>
#include <stdint.h>

#define KG_JWT_TOKEN_MAX 16384        /* longest compact token accepted, in bytes */
#define KG_JWT_JWKS_MAX (1024 * 1024) /* largest JWKS file */
#define KG_JWT_KEYS_MAX 256           /* keys in one JWKS */
#define KG_JWT_PRINCIPAL_MAX 256      /* principal name, NUL included */
#define KG_JWT_KID_MAX 128            /* kid, NUL included */
#define KG_JWT_DEFAULT_SKEW_S 30

typedef struct kg_jwt_jwks kg_jwt_jwks;

/* Parses a JWKS document ({"keys": [...]}) of LEN bytes. Keys of types kgate does not verify
 * with (oct, OKP, EC curves other than P-256, "use": "enc") are skipped; a malformed RSA or EC
 * key, a duplicate kid or a set with no usable key is an error. NULL + ERR on error. */
kg_jwt_jwks *kg_jwt_jwks_parse(const char *json, size_t len, char *err, size_t errlen);
/* The same from a file (at most KG_JWT_JWKS_MAX bytes). */
kg_jwt_jwks *kg_jwt_jwks_load(const char *path, char *err, size_t errlen);
void kg_jwt_jwks_free(kg_jwt_jwks *jwks);
/* Usable keys in the set. */
int kg_jwt_jwks_count(const kg_jwt_jwks *jwks);

/* What a token must satisfy besides its signature. NULL or "" strings are not checked. */
typedef struct kg_jwt_policy {
    const char *issuer;          /* iss must equal it */
    const char *audience;        /* aud (a string or an array of strings) must contain it */
    const char *principal_claim; /* claim holding the principal name; NULL/"" = "sub" */
    int64_t clock_skew_s;        /* allowance for exp, nbf and iat */
} kg_jwt_policy;

/* What a valid token says. */
typedef struct kg_jwt_claims {
    char principal[KG_JWT_PRINCIPAL_MAX];
    int64_t exp_ms; /* expiry, ms since the epoch */
    char kid[KG_JWT_KID_MAX];
    char alg[8]; /* "RS256" or "ES256" */
} kg_jwt_claims;

/* Checks the compact token TOKEN (LEN bytes) against JWKS and POLICY at NOW_MS (ms since the
 * epoch). 0: valid, OUT filled. -1: refused, the reason in ERR (safe to log: never the token). */
int kg_jwt_verify(const kg_jwt_jwks *jwks, const kg_jwt_policy *policy, const char *token,
                  size_t len, int64_t now_ms, kg_jwt_claims *out, char *err, size_t errlen);

/* Unpadded base64url (RFC 4648 §5), as JWS uses it. Decode returns the decoded length, or -1
 * for anything that is not canonical unpadded base64url or does not fit OUT_CAP. Encode writes
 * a NUL-terminated string (OUT holds 4*ceil(n/3)+1) and returns its length. */
long kg_jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t out_cap);
size_t kg_jwt_b64url_encode(const uint8_t *in, size_t n, char *out);

#endif
