/* kg_tls — TLS for both sides of a connection (OpenSSL 3), as the engine needs it.
 *
 * Towards clients a kg_tls_server holds a virtual cluster's certificate, key and client CAs;
 * kg_tls_server_reload() swaps in new files without a restart (connections keep the context
 * they started with). Towards brokers a kg_tls_client holds a cluster's trust store and client
 * certificate, and checks the broker's name (DNS name or IP address) on every connection.
 *
 * Sockets stay non-blocking: every call returns at once and says what it waits for. TLS 1.2 is
 * the oldest version offered, renegotiation is off, and so are TLS compression and tickets
 * towards brokers kgate does not resume with.
 */
#ifndef KG_TLS_H
#define KG_TLS_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/kg_config.h"

typedef struct kg_tls_server kg_tls_server;
typedef struct kg_tls_client kg_tls_client;

/* NULL and ERR when a file cannot be used. */
kg_tls_server *kg_tls_server_new(const kg_listener_tls_cfg *cfg, char *err, size_t errlen);
/* Re-reads the files. 0, or -1 and ERR with the old context kept. */
int kg_tls_server_reload(kg_tls_server *s, char *err, size_t errlen);
void kg_tls_server_free(kg_tls_server *s);
/* A TLS session for an accepted socket, in server mode; NULL when out of memory. */
SSL *kg_tls_server_session(kg_tls_server *s, int fd);

kg_tls_client *kg_tls_client_new(const kg_tls_cfg *cfg, char *err, size_t errlen);
void kg_tls_client_free(kg_tls_client *c);
/* A TLS session for a connected socket to broker HOST (name or IP, for SNI and the name
 * check); NULL when out of memory. */
SSL *kg_tls_client_session(kg_tls_client *c, int fd, const char *host);

enum { KG_TLS_AGAIN = -1, KG_TLS_FAIL = -2 };

/* The handshake: 1 done, 0 waiting (*want_write says for what), KG_TLS_FAIL failed. */
int kg_tls_handshake(SSL *ssl, int *want_write);
/* Bytes read (> 0), 0 when the peer closed, KG_TLS_AGAIN, or KG_TLS_FAIL. */
ssize_t kg_tls_read(SSL *ssl, void *buf, size_t n);
/* Bytes written (> 0), KG_TLS_AGAIN, or KG_TLS_FAIL. After KG_TLS_AGAIN the next call must
 * start with the same bytes (it may offer more). */
ssize_t kg_tls_write(SSL *ssl, const void *buf, size_t n);
/* Why the last call on SSL failed: the certificate check's verdict or OpenSSL's reason. */
void kg_tls_error(SSL *ssl, char *out, size_t len);
/* The verified peer certificate's subject (RFC 2253). 1, or 0 when the peer sent none. */
int kg_tls_peer_subject(SSL *ssl, char *out, size_t len);
/* Sends close_notify if it can and frees the session (the socket stays open). */
void kg_tls_free(SSL *ssl);

/* Failed client handshakes of one listener, aggregated for the audit log: counts by short
 * reason (OpenSSL's reason string, e.g. "wrong version number"; at most KG_TLS_FAILURE_REASONS,
 * the rest as "other") and a few sample peer addresses. Noting is for any thread (the failure
 * path only); taking is for one (the gateway's housekeeping). */
#define KG_TLS_FAILURE_REASONS 8
#define KG_TLS_FAILURE_PEERS 5
typedef struct kg_tls_failures kg_tls_failures;
kg_tls_failures *kg_tls_failures_new(void);
void kg_tls_failures_free(kg_tls_failures *f);
/* One failed handshake with PEER (an address) for REASON (as kg_tls_error says it). */
void kg_tls_failures_note(kg_tls_failures *f, const char *reason, const char *peer);
/* When there were failures and none was taken in the INTERVAL_MS before NOW_MS (or never):
 * {"failures": N, "reasons": {reason: count}, "sample_peers": [address]} (a new reference), and
 * the counts start over. Else NULL: at most one summary per interval, none for a quiet one. */
json_t *kg_tls_failures_take(kg_tls_failures *f, uint64_t now_ms, uint64_t interval_ms);

#endif
