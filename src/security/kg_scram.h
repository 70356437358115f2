/* kg_scram — SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and PLAIN (RFC 4616) on the server side,
 * as Kafka runs them: only salted keys are stored (salt, iterations, StoredKey, ServerKey),
 * never a password; every primitive comes from OpenSSL's libcrypto (PBKDF2, HMAC, digests).
 *
 * The message parsers and the exchange state machine are pure: no I/O, no lookup of their own
 * (the caller hands the user's keys over), so they are unit-tested and fuzzed on their own.
 */
#ifndef KG_SCRAM_H
#define KG_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#include "config/kg_config.h" /* enum kg_sasl_mechanism */

#define KG_SCRAM_MIN_ITERATIONS 4096 /* Kafka's minimum */
#define KG_SCRAM_MAX_ITERATIONS 65536
#define KG_SCRAM_SALT_MAX 64
#define KG_SCRAM_KEY_MAX 64 /* SHA-512 */
#define KG_SCRAM_NAME_MAX 256
#define KG_SCRAM_MSG_MAX 4096 /* longest SCRAM/PLAIN message accepted */

/* What is stored for one user and one SCRAM mechanism. */
typedef struct kg_scram_keys {
    enum kg_sasl_mechanism mechanism; /* KG_SASL_SCRAM_SHA_256 or _512 */
    uint8_t salt[KG_SCRAM_SALT_MAX];
    size_t salt_len;
    uint32_t iterations;
    uint8_t stored_key[KG_SCRAM_KEY_MAX];
    uint8_t server_key[KG_SCRAM_KEY_MAX];
    size_t key_len; /* digest size of the mechanism */
} kg_scram_keys;

/* Digest size of a SCRAM mechanism, 0 for anything else. */
size_t kg_scram_key_len(enum kg_sasl_mechanism mechanism);

/* Derives the stored keys from PASSWORD with SALT and ITERATIONS. 0 ok, -1 error. */
int kg_scram_derive(enum kg_sasl_mechanism mechanism, const char *password, size_t password_len,
                    const uint8_t *salt, size_t salt_len, uint32_t iterations, kg_scram_keys *out);
/* The same with a fresh random salt (RAND_bytes, 32 bytes). */
int kg_scram_derive_new(enum kg_sasl_mechanism mechanism, const char *password, size_t password_len,
                        uint32_t iterations, kg_scram_keys *out);
/* 1 when PASSWORD matches KEYS (recomputed with the stored salt and iterations, compared in
 * constant time), else 0. What PLAIN uses. */
int kg_scram_check_password(const kg_scram_keys *keys, const char *password, size_t password_len);

/* SCRAM's saslname (LEN bytes at IN): '=' only as "=2C" (',') or "=3D" ('='), no NUL, not
 * empty. Decodes into OUT (CAP bytes with the NUL). 0, or -1 when malformed or too long. */
int kg_scram_saslname_decode(const char *in, size_t len, char *out, size_t cap);

/* Standard base64 with padding. Encode returns the length written (OUT holds 4*ceil(n/3)+1);
 * decode returns the decoded length or -1 on anything that is not canonical base64. */
size_t kg_scram_b64_encode(const uint8_t *in, size_t n, char *out);
int kg_scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap);

/* ---- the server side of one exchange ---- */

typedef enum kg_scram_step {
    KG_SCRAM_WANT_FIRST = 0, /* waiting for client-first-message */
    KG_SCRAM_WANT_FINAL,     /* server-first sent; waiting for client-final-message */
    KG_SCRAM_DONE,           /* authenticated */
    KG_SCRAM_FAILED,         /* failed; every later message fails */
} kg_scram_step;

typedef struct kg_scram_server {
    enum kg_sasl_mechanism mechanism;
    kg_scram_step step;
    char user[KG_SCRAM_NAME_MAX]; /* decoded user name (saslname =2C / =3D undone) */
    kg_scram_keys keys;
    int user_known;   /* 0: a made-up salt is offered and the exchange fails at the end */
    char *gs2_header; /* as the client sent it: "n,," or "y,," or with a=authzid */
    char *client_first_bare;
    char *server_first;
    char nonce[256];         /* client nonce + server nonce */
    size_t client_nonce_len; /* the client's part of it */
} kg_scram_server;

void kg_scram_server_init(kg_scram_server *s, enum kg_sasl_mechanism mechanism);
void kg_scram_server_free(kg_scram_server *s); /* wipes the keys too */

/* Parses client-first-message MSG. On success (0) the user name is in s->user: the caller looks
 * it up and calls kg_scram_server_first with its keys (or NULL when unknown). -1 on a malformed
 * or unsupported message, with the reason in *WHY (safe to log: never a secret). */
int kg_scram_client_first(kg_scram_server *s, const uint8_t *msg, size_t len, const char **why);
/* Builds server-first-message into *OUT (malloc'd, *OUT_LEN bytes). KEYS NULL = unknown user:
 * a salt derived from the name is offered so that the exchange looks the same, and fails at
 * the end. 0 ok, -1 error. */
int kg_scram_server_first(kg_scram_server *s, const kg_scram_keys *keys, uint8_t **out,
                          size_t *out_len);
/* The same with SERVER_NONCE (printable, no ',') instead of a random one: for test vectors. */
int kg_scram_server_first_nonce(kg_scram_server *s, const kg_scram_keys *keys,
                                const char *server_nonce, uint8_t **out, size_t *out_len);
/* Checks client-final-message MSG. 0: authenticated, server-final-message in *OUT (malloc'd).
 * -1: failed, reason in *WHY (the proof is wrong, the nonce differs, ...). */
int kg_scram_client_final(kg_scram_server *s, const uint8_t *msg, size_t len, uint8_t **out,
                          size_t *out_len, const char **why);

/* ---- PLAIN ---- */

/* Splits "authzid NUL authcid NUL passwd". The authzid must be empty or equal to the authcid.
 * Slices point into MSG. 0 ok, -1 malformed (*WHY). */
int kg_scram_plain_parse(const uint8_t *msg, size_t len, const char **user, size_t *user_len,
                         const char **password, size_t *password_len, const char **why);

#endif
