#include "security/kg_scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KG_SCRAM_SALT_NEW 32
#define KG_SCRAM_NONCE_BYTES 24

size_t kg_scram_key_len(enum kg_sasl_mechanism mechanism)
{
    return mechanism == KG_SASL_SCRAM_SHA_256 ? 32 : mechanism == KG_SASL_SCRAM_SHA_512 ? 64 : 0;
}

static const EVP_MD *scram_md(enum kg_sasl_mechanism mechanism)
{
    return mechanism == KG_SASL_SCRAM_SHA_256   ? EVP_sha256()
           : mechanism == KG_SASL_SCRAM_SHA_512 ? EVP_sha512()
                                                : NULL;
}

static int scram_hmac(const EVP_MD *md, const uint8_t *key, size_t key_len, const void *data,
                      size_t len, uint8_t *out)
{
    unsigned int out_len = 0;
    return HMAC(md, key, (int)key_len, data, len, out, &out_len) ? 0 : -1;
}

/* ---------------------------------------------------------------- keys */

/* SaltedPassword = PBKDF2(password, salt, i); ClientKey = HMAC(SaltedPassword, "Client Key");
 * StoredKey = H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key"). */
int kg_scram_derive(enum kg_sasl_mechanism mechanism, const char *password, size_t password_len,
                    const uint8_t *salt, size_t salt_len, uint32_t iterations, kg_scram_keys *out)
{
    const EVP_MD *md = scram_md(mechanism);
    size_t n = kg_scram_key_len(mechanism);
    if (!md || salt_len == 0 || salt_len > KG_SCRAM_SALT_MAX || iterations == 0 ||
        iterations > KG_SCRAM_MAX_ITERATIONS || password_len > KG_SCRAM_MSG_MAX)
        return -1;
    uint8_t salted[KG_SCRAM_KEY_MAX], client_key[KG_SCRAM_KEY_MAX];
    memset(out, 0, sizeof(*out));
    int rc = -1;
    unsigned int dlen = 0;
    if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations, md,
                          (int)n, salted) == 1 &&
        scram_hmac(md, salted, n, "Client Key", 10, client_key) == 0 &&
        EVP_Digest(client_key, n, out->stored_key, &dlen, md, NULL) == 1 &&
        scram_hmac(md, salted, n, "Server Key", 10, out->server_key) == 0)
        rc = 0;
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    out->mechanism = mechanism;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    out->iterations = iterations;
    out->key_len = n;
    return rc;
}

int kg_scram_derive_new(enum kg_sasl_mechanism mechanism, const char *password, size_t password_len,
                        uint32_t iterations, kg_scram_keys *out)
{
    uint8_t salt[KG_SCRAM_SALT_NEW];
    if (RAND_bytes(salt, sizeof(salt)) != 1) return -1;
    return kg_scram_derive(mechanism, password, password_len, salt, sizeof(salt), iterations, out);
}

int kg_scram_check_password(const kg_scram_keys *keys, const char *password, size_t password_len)
{
    kg_scram_keys fresh;
    int ok = kg_scram_derive(keys->mechanism, password, password_len, keys->salt, keys->salt_len,
                             keys->iterations, &fresh) == 0 &&
             CRYPTO_memcmp(fresh.stored_key, keys->stored_key, keys->key_len) == 0;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return ok;
}

/* ---------------------------------------------------------------- base64 */

size_t kg_scram_b64_encode(const uint8_t *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int b64_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

/* EVP_DecodeBlock accepts whitespace and reports padding as zero bytes: check the text is
 * canonical first, then trim what the padding stands for. */
int kg_scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap)
{
    uint8_t tmp[KG_SCRAM_MSG_MAX];
    if (n % 4 != 0 || n / 4 * 3 > sizeof(tmp)) return -1;
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=' && i + 2 >= n) {
            pad++;
        } else if (pad || !b64_char(in[i])) {
            return -1;
        }
    }
    if (n == 0) return 0;
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
    if (len < 0 || (size_t)len < pad || (size_t)len - pad > out_cap) return -1;
    memcpy(out, tmp, (size_t)len - pad);
    OPENSSL_cleanse(tmp, (size_t)len);
    return len - (int)pad;
}

/* ---------------------------------------------------------------- message parsing */

/* One "x=value" attribute of a comma-separated SCRAM message. */
typedef struct scram_attr {
    char name;
    const char *val;
    size_t len;
} scram_attr;

/* Takes the next attribute from [*P, END); moves *P past it and its comma. */
static int next_attr(const char **p, const char *end, scram_attr *a)
{
    const char *s = *p;
    if (end - s < 2 || s[1] != '=' ||
        !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return -1;
    const char *comma = memchr(s + 2, ',', (size_t)(end - s - 2));
    const char *stop = comma ? comma : end;
    a->name = s[0];
    a->val = s + 2;
    a->len = (size_t)(stop - a->val);
    *p = comma ? comma + 1 : end;
    return 0;
}

int kg_scram_saslname_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = in[i];
        if (ch == '\0' || ch == ',') return -1;
        if (ch == '=') {
            if (len - i < 3) return -1;
            if (in[i + 1] == '2' && in[i + 2] == 'C')
                ch = ',';
            else if (in[i + 1] == '3' && in[i + 2] == 'D')
                ch = '=';
            else
                return -1;
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return o > 0 ? 0 : -1;
}

/* printable except ',' (RFC 5802 "printable"). */
static int nonce_ok(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') return 0;
    return 1;
}

static char *dup_slice(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void kg_scram_server_init(kg_scram_server *s, enum kg_sasl_mechanism mechanism)
{
    memset(s, 0, sizeof(*s));
    s->mechanism = mechanism;
}

void kg_scram_server_free(kg_scram_server *s)
{
    free(s->gs2_header);
    free(s->client_first_bare);
    free(s->server_first);
    OPENSSL_cleanse(s, sizeof(*s));
}

static int scram_fail(kg_scram_server *s, const char **why, const char *reason)
{
    s->step = KG_SCRAM_FAILED;
    *why = reason;
    return -1;
}

/* gs2-header: ("n" | "y" | "p=cb") "," ["a=" saslname] ",". Sets *BARE past it. */
static int parse_gs2(kg_scram_server *s, const char *m, const char *end, const char **bare,
                     char *authzid, size_t authzid_cap, const char **why)
{
    if (end - m < 3) return scram_fail(s, why, "client-first-message too short");
    if (m[0] == 'p') return scram_fail(s, why, "channel binding is not supported");
    if ((m[0] != 'n' && m[0] != 'y') || m[1] != ',')
        return scram_fail(s, why, "bad channel-binding flag in the GS2 header");
    const char *authz = m + 2;
    const char *comma = memchr(authz, ',', (size_t)(end - authz));
    if (!comma) return scram_fail(s, why, "GS2 header not terminated");
    authzid[0] = '\0';
    if (comma > authz && (comma - authz < 3 || authz[0] != 'a' || authz[1] != '=' ||
                          kg_scram_saslname_decode(authz + 2, (size_t)(comma - authz - 2), authzid,
                                                   authzid_cap) < 0))
        return scram_fail(s, why, "malformed authorization identity in the GS2 header");
    s->gs2_header = dup_slice(m, (size_t)(comma + 1 - m));
    if (!s->gs2_header) return scram_fail(s, why, "out of memory");
    *bare = comma + 1;
    return 0;
}

int kg_scram_client_first(kg_scram_server *s, const uint8_t *msg, size_t len, const char **why)
{
    if (s->step != KG_SCRAM_WANT_FIRST)
        return scram_fail(s, why, "unexpected client-first-message");
    if (len > KG_SCRAM_MSG_MAX) return scram_fail(s, why, "client-first-message too long");
    const char *m = (const char *)msg, *end = m + len;
    if (memchr(m, '\0', len)) return scram_fail(s, why, "NUL in client-first-message");
    const char *bare;
    char authzid[KG_SCRAM_NAME_MAX];
    if (parse_gs2(s, m, end, &bare, authzid, sizeof(authzid), why) < 0) return -1;
    const char *p = bare;
    scram_attr a;
    if (next_attr(&p, end, &a) < 0 || a.name != 'n')
        return scram_fail(s, why,
                          a.name == 'm' ? "mandatory extensions are not supported"
                                        : "client-first-message has no user name");
    if (kg_scram_saslname_decode(a.val, a.len, s->user, sizeof(s->user)) < 0)
        return scram_fail(s, why, "malformed user name");
    /* Kafka: an authorization id, when given, must be the user itself. */
    if (authzid[0] && strcmp(authzid, s->user) != 0)
        return scram_fail(s, why, "authorization identity differs from the user name");
    if (next_attr(&p, end, &a) < 0 || a.name != 'r' || !nonce_ok(a.val, a.len) ||
        a.len > sizeof(s->nonce) / 2)
        return scram_fail(s, why, "client-first-message has no valid nonce");
    memcpy(s->nonce, a.val, a.len);
    s->nonce[a.len] = '\0';
    s->client_nonce_len = a.len;
    while (p < end) {
        scram_attr ext;
        if (next_attr(&p, end, &ext) < 0) return scram_fail(s, why, "malformed extension");
        if (ext.len == 0) return scram_fail(s, why, "malformed extension");
    }
    /* Kafka's delegation tokens ride on the tokenauth extension; kgate has none to check. */
    if (memmem(bare, (size_t)(end - bare), ",tokenauth=", 11))
        return scram_fail(s, why, "delegation tokens are not supported");
    s->client_first_bare = dup_slice(bare, (size_t)(end - bare));
    if (!s->client_first_bare) return scram_fail(s, why, "out of memory");
    return 0;
}

/* A stable made-up salt for an unknown user (an HMAC of the name under a per-process secret),
 * so that probing names learns nothing from the exchange. */
static uint8_t fake_secret[32];
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;

static void fake_secret_init(void)
{
    if (RAND_bytes(fake_secret, sizeof(fake_secret)) != 1) abort();
}

static void fake_keys(kg_scram_server *s)
{
    uint8_t mac[32];
    pthread_once(&fake_once, fake_secret_init);
    memset(&s->keys, 0, sizeof(s->keys));
    if (scram_hmac(EVP_sha256(), fake_secret, sizeof(fake_secret), s->user, strlen(s->user), mac) !=
        0)
        memset(mac, 0x5a, sizeof(mac));
    s->keys.mechanism = s->mechanism;
    memcpy(s->keys.salt, mac, sizeof(mac));
    s->keys.salt_len = sizeof(mac);
    s->keys.iterations = KG_SCRAM_MIN_ITERATIONS;
    s->keys.key_len = kg_scram_key_len(s->mechanism);
}

int kg_scram_server_first(kg_scram_server *s, const kg_scram_keys *keys, uint8_t **out,
                          size_t *out_len)
{
    uint8_t rnd[KG_SCRAM_NONCE_BYTES];
    char rnd64[KG_SCRAM_NONCE_BYTES * 2];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) return -1;
    kg_scram_b64_encode(rnd, sizeof(rnd), rnd64);
    return kg_scram_server_first_nonce(s, keys, rnd64, out, out_len);
}

int kg_scram_server_first_nonce(kg_scram_server *s, const kg_scram_keys *keys,
                                const char *server_nonce, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    if (s->step != KG_SCRAM_WANT_FIRST || !s->client_first_bare ||
        !nonce_ok(server_nonce, strlen(server_nonce)))
        return -1;
    if (keys && keys->mechanism == s->mechanism &&
        keys->key_len == kg_scram_key_len(s->mechanism)) {
        s->keys = *keys;
        s->user_known = 1;
    } else {
        fake_keys(s);
        s->user_known = 0;
    }
    char salt64[KG_SCRAM_SALT_MAX * 2];
    kg_scram_b64_encode(s->keys.salt, s->keys.salt_len, salt64);
    size_t cn = strlen(s->nonce);
    if (cn + strlen(server_nonce) >= sizeof(s->nonce)) return -1;
    memcpy(s->nonce + cn, server_nonce, strlen(server_nonce) + 1);
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "r=%s,s=%s,i=%u", s->nonce, salt64, s->keys.iterations);
    if (n < 0 || (size_t)n >= sizeof(buf)) return -1;
    s->server_first = dup_slice(buf, (size_t)n);
    *out = (uint8_t *)dup_slice(buf, (size_t)n);
    if (!s->server_first || !*out) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *out_len = (size_t)n;
    s->step = KG_SCRAM_WANT_FINAL;
    return 0;
}

/* RFC 5802: the final nonce is the whole nonce of server-first-message. librdkafka before 2.6.1
 * sends the client nonce once more in front of it (its issue #4895; Kafka before 4.0 accepted
 * that), and Debian's librdkafka is 2.0.2: that exact form is accepted too. Either way the
 * server's random part must come back, so a replayed exchange still fails. */
static int nonce_matches(const kg_scram_server *s, const char *got, size_t len)
{
    size_t n = strlen(s->nonce), c = s->client_nonce_len;
    if (len == n) return CRYPTO_memcmp(got, s->nonce, n) == 0;
    return len == c + n && CRYPTO_memcmp(got, s->nonce, c) == 0 &&
           CRYPTO_memcmp(got + c, s->nonce, n) == 0;
}

/* client-final-message-without-proof = "c=" b64(gs2-header) ",r=" nonce *("," ext);
 * the proof comes last. Fills the slices; checks the channel binding and the nonce. */
static int parse_final(kg_scram_server *s, const char *m, const char *end, size_t *without_proof,
                       uint8_t *proof, const char **why)
{
    const char *p = m;
    scram_attr a;
    uint8_t cb[256];
    if (next_attr(&p, end, &a) < 0 || a.name != 'c')
        return scram_fail(s, why, "client-final-message has no channel binding");
    int cb_len = kg_scram_b64_decode(a.val, a.len, cb, sizeof(cb));
    size_t gs2_len = strlen(s->gs2_header);
    if (cb_len < 0 || (size_t)cb_len != gs2_len || memcmp(cb, s->gs2_header, gs2_len) != 0)
        return scram_fail(s, why, "channel binding differs from the GS2 header");
    if (next_attr(&p, end, &a) < 0 || a.name != 'r')
        return scram_fail(s, why, "client-final-message has no nonce");
    if (!nonce_matches(s, a.val, a.len))
        return scram_fail(s, why, "nonce differs from the one of this exchange");
    for (;;) {
        const char *at = p;
        if (next_attr(&p, end, &a) < 0)
            return scram_fail(s, why, "client-final-message has no proof");
        if (a.name != 'p') continue;
        if (p != end) return scram_fail(s, why, "the proof must be the last attribute");
        if (kg_scram_b64_decode(a.val, a.len, proof, KG_SCRAM_KEY_MAX + 2) != (int)s->keys.key_len)
            return scram_fail(s, why, "malformed proof");
        *without_proof = (size_t)(at - 1 - m);
        return 0;
    }
}

int kg_scram_client_final(kg_scram_server *s, const uint8_t *msg, size_t len, uint8_t **out,
                          size_t *out_len, const char **why)
{
    *out = NULL;
    if (s->step != KG_SCRAM_WANT_FINAL)
        return scram_fail(s, why, "unexpected client-final-message");
    if (len > KG_SCRAM_MSG_MAX) return scram_fail(s, why, "client-final-message too long");
    const char *m = (const char *)msg;
    if (memchr(m, '\0', len)) return scram_fail(s, why, "NUL in client-final-message");
    uint8_t proof[KG_SCRAM_KEY_MAX + 2];
    size_t wp;
    if (parse_final(s, m, m + len, &wp, proof, why) < 0) return -1;
    const EVP_MD *md = scram_md(s->mechanism);
    size_t n = s->keys.key_len;
    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    size_t a1 = strlen(s->client_first_bare), a2 = strlen(s->server_first);
    char *auth = malloc(a1 + a2 + wp + 3);
    if (!auth) return scram_fail(s, why, "out of memory");
    memcpy(auth, s->client_first_bare, a1);
    auth[a1] = ',';
    memcpy(auth + a1 + 1, s->server_first, a2);
    auth[a1 + 1 + a2] = ',';
    memcpy(auth + a1 + 2 + a2, m, wp);
    size_t alen = a1 + 2 + a2 + wp;
    uint8_t sig[KG_SCRAM_KEY_MAX], client_key[KG_SCRAM_KEY_MAX], stored[KG_SCRAM_KEY_MAX];
    unsigned int dlen = 0;
    int ok = scram_hmac(md, s->keys.stored_key, n, auth, alen, sig) == 0;
    for (size_t i = 0; ok && i < n; i++)
        client_key[i] = proof[i] ^ sig[i];
    ok = ok && EVP_Digest(client_key, n, stored, &dlen, md, NULL) == 1;
    int match = ok && CRYPTO_memcmp(stored, s->keys.stored_key, n) == 0 && s->user_known;
    uint8_t server_sig[KG_SCRAM_KEY_MAX];
    ok = ok && scram_hmac(md, s->keys.server_key, n, auth, alen, server_sig) == 0;
    free(auth);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (!ok) return scram_fail(s, why, "internal error computing the proof");
    if (!match) return scram_fail(s, why, "invalid credentials");
    char b64[KG_SCRAM_KEY_MAX * 2];
    size_t blen = kg_scram_b64_encode(server_sig, n, b64);
    *out = malloc(blen + 2);
    if (!*out) return scram_fail(s, why, "out of memory");
    memcpy(*out, "v=", 2);
    memcpy(*out + 2, b64, blen);
    *out_len = blen + 2;
    s->step = KG_SCRAM_DONE;
    return 0;
}

/* ---------------------------------------------------------------- PLAIN */

int kg_scram_plain_parse(const uint8_t *msg, size_t len, const char **user, size_t *user_len,
                         const char **password, size_t *password_len, const char **why)
{
    const char *m = (const char *)msg, *end = m + len;
    const char *z1 = memchr(m, '\0', len);
    const char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(end - z1 - 1)) : NULL;
    if (len > KG_SCRAM_MSG_MAX || !z2 || memchr(z2 + 1, '\0', (size_t)(end - z2 - 1))) {
        *why = "PLAIN message is not authzid NUL authcid NUL password";
        return -1;
    }
    size_t authz_len = (size_t)(z1 - m);
    *user = z1 + 1;
    *user_len = (size_t)(z2 - z1 - 1);
    *password = z2 + 1;
    *password_len = (size_t)(end - z2 - 1);
    if (*user_len == 0 || *user_len >= KG_SCRAM_NAME_MAX || *password_len == 0) {
        *why = "PLAIN user name or password empty or too long";
        return -1;
    }
    if (authz_len && (authz_len != *user_len || memcmp(m, *user, authz_len) != 0)) {
        *why = "PLAIN authorization identity differs from the user name";
        return -1;
    }
    return 0;
}
