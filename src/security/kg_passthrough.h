/* kg_passthrough — `auth: passthrough`: clients log in to the active cluster themselves.
 *
 * kgate forwards SaslHandshake and SaslAuthenticate untouched and reads along: the mechanism
 * from the handshake, the user name the client claims from its first SASL message (PLAIN's
 * authcid, SCRAM's n=), and the cluster's verdict from the answers. Once the cluster accepted
 * the exchange, the connection's principal is "User:NAME" (for metrics, chaos scopes, logs),
 * exactly as the cluster will see it. Passwords and proofs are never kept. Other mechanisms
 * (OAUTHBEARER, GSSAPI) pass too; kgate then learns no name.
 */
#ifndef KG_PASSTHROUGH_H
#define KG_PASSTHROUGH_H

#include <stddef.h>
#include <stdint.h>

#include "config/kg_config.h"
#include "security/kg_scram.h"

typedef struct kg_passthrough {
    enum kg_sasl_mechanism mechanism; /* of the running exchange; NONE when kgate cannot read it */
    int accepted;                     /* SaslAuthenticate answers without error in this exchange */
    char claimed[KG_SCRAM_NAME_MAX];  /* the name the client sent, "" when none yet */
    char principal[8 + KG_SCRAM_NAME_MAX]; /* "User:NAME" once the cluster accepted, else "" */
} kg_passthrough;

/* A SaslHandshake or SaslAuthenticate request BODY (after its header) on its way out. */
void kg_passthrough_request(kg_passthrough *p, int16_t api_key, int16_t version,
                            const uint8_t *body, size_t len);
/* The cluster's answer BODY (after the response header). 1 when it completed a login (the
 * principal is set), else 0. */
int kg_passthrough_response(kg_passthrough *p, int16_t api_key, int16_t version,
                            const uint8_t *body, size_t len);

static inline const char *kg_passthrough_principal(const kg_passthrough *p)
{
    return p && p->principal[0] ? p->principal : NULL;
}

#endif
