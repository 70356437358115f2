/* kg_sasl_client — kgate authenticating itself to a cluster's brokers (clusters.NAME.sasl).
 *
 * A pure exchange: it writes request frames and reads response frames, and the caller moves
 * them (the health probe over a blocking socket, the engine over a connection's buffers).
 * SaslHandshake v1, then SaslAuthenticate (v0-v2, as the broker offers) with PLAIN or
 * SCRAM-SHA-256/512 (RFC 5802); the broker's signature is checked, so a server that does not
 * know the password cannot pass for the cluster.
 *
 * PBKDF2 runs once per (salt, iterations) a cluster answers with, not per connection: the
 * derived keys are kept in the cluster's kg_sasl_creds, so a switch that opens thousands of
 * backend connections costs HMACs, not thousands of key derivations on the workers.
 */
#ifndef KG_SASL_CLIENT_H
#define KG_SASL_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config/kg_config.h"
#include "proto/kp_prim.h"
#include "security/kg_scram.h"

/* One cluster's credentials and the SCRAM keys derived from them. */
typedef struct kg_sasl_creds {
    const kg_sasl_cfg *cfg;
    pthread_mutex_t lock; /* guards the cache below */
    int cached;
    uint8_t salt[KG_SCRAM_SALT_MAX];
    size_t salt_len;
    uint32_t iterations;
    uint8_t client_key[KG_SCRAM_KEY_MAX], server_key[KG_SCRAM_KEY_MAX];
} kg_sasl_creds;

void kg_sasl_creds_init(kg_sasl_creds *c, const kg_sasl_cfg *cfg);
void kg_sasl_creds_destroy(kg_sasl_creds *c); /* wipes the keys */

typedef struct kg_sasl_client {
    kg_sasl_creds *creds;
    int16_t auth_version; /* SaslAuthenticate version used */
    int step;
    int32_t correlation_id; /* of the request in flight */
    char nonce[64];         /* random; a test may set it before the exchange (RFC vectors) */
    char *client_first_bare;
    char *server_first;
    uint8_t server_signature[KG_SCRAM_KEY_MAX];
    int64_t session_lifetime_ms; /* the broker's KIP-368 answer: 0 = none */
    char error[256];             /* why it FAILED; never a secret */
} kg_sasl_client;

enum { KG_SASL_CLIENT_SEND, KG_SASL_CLIENT_DONE, KG_SASL_CLIENT_FAILED };

/* AUTH_MAX: the highest SaslAuthenticate version the broker offers (-1: unknown). */
void kg_sasl_client_init(kg_sasl_client *s, kg_sasl_creds *creds, int16_t auth_max);
void kg_sasl_client_free(kg_sasl_client *s);
/* Appends the first request frame (size prefix included) to W. */
int kg_sasl_client_start(kg_sasl_client *s, kp_writer *w);
/* RESP: the response to the request in flight, LEN bytes after its size prefix. Returns SEND
 * (the next request frame appended to W), DONE or FAILED (s->error). */
int kg_sasl_client_next(kg_sasl_client *s, const uint8_t *resp, size_t len, kp_writer *w);

#endif
