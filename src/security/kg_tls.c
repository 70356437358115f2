#include "security/kg_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kg_tls_server {
    kg_listener_tls_cfg cfg; /* a copy: reloads read the same paths */
    pthread_mutex_t lock;    /* guards ctx against a reload swapping it */
    SSL_CTX *ctx;
};

struct kg_tls_client {
    SSL_CTX *ctx;
    int verify;
};

/* OpenSSL's reason for the newest error on this thread's queue, then an empty queue. */
static void tls_reason(char *out, size_t len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, out, len);
    else
        snprintf(out, len, "%s", fallback);
    ERR_clear_error();
}

static int tls_fail(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[256];
    tls_reason(reason, sizeof(reason), "unknown error");
    snprintf(err, errlen, "%s %s: %s", what, file, reason);
    return -1;
}

static SSL_CTX *tls_ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* The engine retries a write that would block with its buffer, which may have moved and
     * grown since; and it takes what a partial write sent. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

static int tls_load_crl(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (!lookup || X509_load_crl_file(lookup, file, X509_FILETYPE_PEM) <= 0)
        return tls_fail(err, errlen, "cannot load CRLs from", file);
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return 0;
}

static int tls_load_client_cas(SSL_CTX *ctx, const kg_listener_tls_cfg *cfg, char *err,
                               size_t errlen)
{
    if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1)
        return tls_fail(err, errlen, "cannot load client CAs from", cfg->client_ca_file);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
    if (!names) return tls_fail(err, errlen, "no CA certificate in", cfg->client_ca_file);
    SSL_CTX_set_client_CA_list(ctx, names);
    if (cfg->crl_file[0] && tls_load_crl(ctx, cfg->crl_file, err, errlen) < 0) return -1;
    int mode = SSL_VERIFY_PEER;
    if (cfg->client_auth == KG_CLIENT_AUTH_REQUIRED) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, NULL);
    return 0;
}

static SSL_CTX *tls_server_ctx(const kg_listener_tls_cfg *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    static const unsigned char sid_ctx[] = "kgate";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
        tls_fail(err, errlen, "cannot load the certificate chain", cfg->cert_file);
    else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        tls_fail(err, errlen, "cannot load the private key", cfg->key_file);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        tls_fail(err, errlen, "the private key does not match the certificate in", cfg->cert_file);
    else if (cfg->client_auth == KG_CLIENT_AUTH_NONE ||
             tls_load_client_cas(ctx, cfg, err, errlen) == 0)
        return ctx;
    SSL_CTX_free(ctx);
    return NULL;
}

kg_tls_server *kg_tls_server_new(const kg_listener_tls_cfg *cfg, char *err, size_t errlen)
{
    kg_tls_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->ctx = tls_server_ctx(cfg, err, errlen);
    if (!s->ctx) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

int kg_tls_server_reload(kg_tls_server *s, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_server_ctx(&s->cfg, err, errlen);
    if (!ctx) return -1;
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old = s->ctx;
    s->ctx = ctx;
    pthread_mutex_unlock(&s->lock);
    SSL_CTX_free(old); /* sessions made from it hold references of their own */
    return 0;
}

void kg_tls_server_free(kg_tls_server *s)
{
    if (!s) return;
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

SSL *kg_tls_server_session(kg_tls_server *s, int fd)
{
    pthread_mutex_lock(&s->lock);
    SSL *ssl = SSL_new(s->ctx);
    pthread_mutex_unlock(&s->lock);
    if (!ssl) return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

kg_tls_client *kg_tls_client_new(const kg_tls_cfg *cfg, char *err, size_t errlen)
{
    kg_tls_client *c = calloc(1, sizeof(*c));
    SSL_CTX *ctx = c ? tls_ctx_new(TLS_client_method()) : NULL;
    if (!ctx) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
    c->verify = cfg->verify;
    int ok = 1;
    if (cfg->ca_file[0])
        ok = SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) == 1 ||
             tls_fail(err, errlen, "cannot load CAs from", cfg->ca_file) == 0;
    else
        ok = SSL_CTX_set_default_verify_paths(ctx) == 1 ||
             tls_fail(err, errlen, "cannot load the system trust store", "") == 0;
    if (ok && cfg->cert_file[0])
        ok = (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) == 1 ||
              tls_fail(err, errlen, "cannot load the client certificate", cfg->cert_file) == 0) &&
             (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) == 1 ||
              tls_fail(err, errlen, "cannot load the client key", cfg->key_file) == 0) &&
             (SSL_CTX_check_private_key(ctx) == 1 ||
              tls_fail(err, errlen, "the client key does not match", cfg->cert_file) == 0);
    if (!ok) {
        kg_tls_client_free(c);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return c;
}

void kg_tls_client_free(kg_tls_client *c)
{
    if (!c) return;
    SSL_CTX_free(c->ctx);
    free(c);
}

static int is_ip_address(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *kg_tls_client_session(kg_tls_client *c, int fd, const char *host)
{
    SSL *ssl = SSL_new(c->ctx);
    if (!ssl) return NULL;
    int ip = is_ip_address(host);
    int ok = SSL_set_fd(ssl, fd) == 1 && (ip || SSL_set_tlsext_host_name(ssl, host) == 1);
    if (ok && c->verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1
                : X509_VERIFY_PARAM_set1_host(param, host, 0) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Maps SSL_get_error(RC) for a read or write. */
static ssize_t tls_result(SSL *ssl, int rc)
{
    if (rc > 0) return rc;
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return KG_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        /* A peer that closes without close_notify: most clients do; treat it as a close. */
        if (ERR_peek_error() == 0 && (rc == 0 || errno == 0 || errno == ECONNRESET)) return 0;
        return KG_TLS_FAIL;
    default:
        return KG_TLS_FAIL;
    }
}

int kg_tls_handshake(SSL *ssl, int *want_write)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) return 1;
    int e = SSL_get_error(ssl, rc);
    *want_write = e == SSL_ERROR_WANT_WRITE;
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : KG_TLS_FAIL;
}

ssize_t kg_tls_read(SSL *ssl, void *buf, size_t n)
{
    ERR_clear_error();
    errno = 0;
    return tls_result(ssl, SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
}

ssize_t kg_tls_write(SSL *ssl, const void *buf, size_t n)
{
    ERR_clear_error();
    errno = 0;
    ssize_t rc = tls_result(ssl, SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n));
    return rc == 0 ? KG_TLS_FAIL : rc;
}

void kg_tls_error(SSL *ssl, char *out, size_t len)
{
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        snprintf(out, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    tls_reason(out, len, errno ? strerror(errno) : "connection closed during the handshake");
}

int kg_tls_peer_subject(SSL *ssl, char *out, size_t len)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert) return 0;
    BIO *bio = BIO_new(BIO_s_mem());
    int n = -1;
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0)
        n = BIO_read(bio, out, (int)len - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(bio);
    X509_free(cert);
    return n >= 0;
}

void kg_tls_free(SSL *ssl)
{
    if (!ssl) return;
    ERR_clear_error();
    if (SSL_is_init_finished(ssl)) SSL_shutdown(ssl); /* one try, never waits */
    SSL_free(ssl);
    ERR_clear_error();
}

/* ---------------------------------------------------------------- failed handshakes, audited */

#define KG_TLS_REASON_MAX 96

struct kg_tls_failures {
    pthread_mutex_t lock;
    uint64_t total;
    char reason[KG_TLS_FAILURE_REASONS][KG_TLS_REASON_MAX];
    uint64_t count[KG_TLS_FAILURE_REASONS];
    uint64_t other;
    char peer[KG_TLS_FAILURE_PEERS][64];
    int n_peers;
    uint64_t last_taken_ms; /* 0: never */
};

kg_tls_failures *kg_tls_failures_new(void)
{
    kg_tls_failures *f = calloc(1, sizeof(*f));
    if (f) pthread_mutex_init(&f->lock, NULL);
    return f;
}

void kg_tls_failures_free(kg_tls_failures *f)
{
    if (!f) return;
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* "error:0A00010B:SSL routines::wrong version number" -> "wrong version number": the reason
 * alone, so that one cause counts once whatever OpenSSL's codes around it. */
static void tls_short_reason(const char *reason, char *out, size_t len)
{
    const char *r = strrchr(reason, ':');
    r = r && strncmp(reason, "error:", 6) == 0 ? r + 1 : reason;
    snprintf(out, len, "%s", *r ? r : "unknown");
}

static void failures_count_reason(kg_tls_failures *f, const char *reason)
{
    for (int i = 0; i < KG_TLS_FAILURE_REASONS; i++) {
        if (f->count[i] == 0) snprintf(f->reason[i], sizeof(f->reason[i]), "%s", reason);
        if (strcmp(f->reason[i], reason) == 0) {
            f->count[i]++;
            return;
        }
    }
    f->other++;
}

static void failures_sample_peer(kg_tls_failures *f, const char *peer)
{
    for (int i = 0; i < f->n_peers; i++)
        if (strcmp(f->peer[i], peer) == 0) return;
    if (f->n_peers < KG_TLS_FAILURE_PEERS)
        snprintf(f->peer[f->n_peers++], sizeof(f->peer[0]), "%s", peer);
}

void kg_tls_failures_note(kg_tls_failures *f, const char *reason, const char *peer)
{
    if (!f) return;
    char brief[KG_TLS_REASON_MAX];
    tls_short_reason(reason ? reason : "", brief, sizeof(brief));
    pthread_mutex_lock(&f->lock);
    f->total++;
    failures_count_reason(f, brief);
    if (peer && *peer) failures_sample_peer(f, peer);
    pthread_mutex_unlock(&f->lock);
}

json_t *kg_tls_failures_take(kg_tls_failures *f, uint64_t now_ms, uint64_t interval_ms)
{
    if (!f) return NULL;
    pthread_mutex_lock(&f->lock);
    json_t *out = NULL;
    if (f->total > 0 && (f->last_taken_ms == 0 || now_ms >= f->last_taken_ms + interval_ms)) {
        json_t *reasons = json_object(), *peers = json_array();
        for (int i = 0; i < KG_TLS_FAILURE_REASONS && f->count[i]; i++)
            json_object_set_new(reasons, f->reason[i], json_integer((json_int_t)f->count[i]));
        if (f->other) json_object_set_new(reasons, "other", json_integer((json_int_t)f->other));
        for (int i = 0; i < f->n_peers; i++)
            json_array_append_new(peers, json_string(f->peer[i]));
        out = json_pack("{s:I, s:o, s:o}", "failures", (json_int_t)f->total, "reasons", reasons,
                        "sample_peers", peers);
        f->total = f->other = 0;
        memset(f->count, 0, sizeof(f->count));
        f->n_peers = 0;
        f->last_taken_ms = now_ms;
    }
    pthread_mutex_unlock(&f->lock);
    return out;
}
