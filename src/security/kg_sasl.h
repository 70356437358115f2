/* kg_sasl — SASL at kgate (`auth: gateway`): the authentication stage of the request path.
 *
 * kgate itself answers SaslHandshake v0/v1 and SaslAuthenticate v0-v2 (never forwarded), and
 * after a v0 handshake reads the raw length-prefixed SASL tokens that follow it, as the protocol
 * defines. Until a client has authenticated only ApiVersions, SaslHandshake and SaslAuthenticate
 * are served; anything else closes that connection, as a broker does. KIP-368: answers carry the
 * configured session lifetime; a connection that outlives it without re-authenticating is closed
 * at its next request.
 *
 * The stage decides; the engine acts (queues the answer, closes): it sees one frame at a time
 * and returns a verdict, so kg_conn keeps one call and no SASL branches of its own.
 */
#ifndef KG_SASL_H
#define KG_SASL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "chaos/kg_chaos.h"
#include "config/kg_config.h"
#include "security/kg_jwt.h"
#include "security/kg_scram.h"
#include "util/kg_log.h"

typedef struct kg_users kg_users;
typedef struct kg_metrics kg_metrics;
typedef struct kg_counter kg_counter;

/* What one `auth: gateway` virtual cluster shares between its connections. */
typedef struct kg_sasl_listener {
    const kg_vcluster_cfg *cfg;
    kg_users *users;
    /* by enum kg_sasl_mechanism (0: before a mechanism) */
    kg_counter *ok[KG_SASL_MECHANISMS], *failed[KG_SASL_MECHANISMS];
    kg_counter *refused;    /* connections closed for a request before authentication */
    kg_log_limit log_limit; /* failure log lines: at most a few a second */
    /* OAUTHBEARER: the keys of listener.oauthbearer.jwks_file and what tokens must say; wall_ms
     * is the clock tokens are checked at (a test may replace it). The file is loaded at start,
     * and again when it changes (looked at once a second at most, when a token comes): an
     * identity provider's key rotation needs no restart. A file that does not load keeps the
     * keys in use (logged). */
    pthread_mutex_t keys_lock;
    struct kg_sasl_keys *keys; /* in use; refcounted under keys_lock */
    uint64_t keys_checked_us;  /* when the file was last looked at (env->now_us) */
    uint64_t keys_stamp[3];    /* what it looked like: device+inode, size, mtime (ns) */
    kg_jwt_policy policy;
    int64_t (*wall_ms)(void);
} kg_sasl_listener;

/* NULL when VC is not `auth: gateway`, out of memory, or the JWKS file of OAUTHBEARER cannot be
 * loaded (logged; check cfg->auth_gateway). */
kg_sasl_listener *kg_sasl_listener_new(const kg_vcluster_cfg *vc, kg_users *users,
                                       kg_metrics *metrics);
void kg_sasl_listener_free(kg_sasl_listener *l);

typedef enum kg_sasl_state {
    KG_SASL_WANT_HANDSHAKE = 0,
    KG_SASL_WANT_AUTHENTICATE, /* after SaslHandshake v1 */
    KG_SASL_WANT_RAW,          /* after SaslHandshake v0: raw tokens */
    KG_SASL_AUTHENTICATED,
} kg_sasl_state;

/* One connection's SASL state. */
typedef struct kg_sasl_conn {
    kg_sasl_listener *l;
    kg_sasl_state state;
    int authenticated; /* stays set while a KIP-368 re-authentication runs */
    enum kg_sasl_mechanism mechanism;
    kg_scram_server scram;
    int oauth_refused;      /* OAUTHBEARER: the error challenge was sent, the exchange will fail */
    char oauth_reason[200]; /* why the token was refused (logged, never the token) */
    int64_t lifetime_ms;    /* KIP-368 lifetime announced (0 = none) */
    uint64_t expires_us;    /* KIP-368 session end (0 = none) */
    char principal[8 + KG_SCRAM_NAME_MAX]; /* "User:NAME" once authenticated */
} kg_sasl_conn;

void kg_sasl_conn_init(kg_sasl_conn *s, kg_sasl_listener *l);
void kg_sasl_conn_free(kg_sasl_conn *s);

/* The authenticated principal ("User:alice"), or NULL (also for S NULL). */
static inline const char *kg_sasl_principal(const kg_sasl_conn *s)
{
    return s && s->authenticated ? s->principal : NULL;
}

enum {
    KG_SASL_PASS = 0, /* not the stage's business: the request goes on as usual */
    KG_SASL_WAIT,     /* the whole frame is needed first */
    KG_SASL_ANSWER,   /* consume the frame, deliver `frame`; close after it when close_after */
    KG_SASL_CLOSE,    /* close the connection, `reason` says why (logged by the engine) */
};

typedef struct kg_sasl_verdict {
    uint8_t *frame; /* malloc'd whole response frame (size prefix included) */
    uint32_t frame_len;
    size_t consume; /* bytes of input the request took */
    int16_t api_key, api_version;
    int32_t correlation_id;
    int close_after;
    char reason[200];
} kg_sasl_verdict;

/* What the stage needs to know of the connection besides its SASL state. */
typedef struct kg_sasl_env {
    const char *peer;
    kg_chaos_set *chaos;      /* the connection's rule snapshot (auth-failure), may be NULL */
    kg_chaos_conn chaos_view; /* its scope; principal is filled in by the stage */
    uint64_t now_us;
    uint32_t max_frame_bytes;
} kg_sasl_env;

/* Parses the RFC 7628 client initial response of OAUTHBEARER: a gs2 header ("n,," "y,," or with
 * "a=authzid"), 0x01, "auth=Bearer TOKEN" 0x01, optional "key=value" 0x01 extensions, 0x01.
 * On success (0) *TOKEN points into MSG and the decoded authzid ("" when none) is in AUTHZID;
 * extensions are checked for syntax and ignored. -1: malformed, *WHY says why. */
int kg_sasl_oauth_parse(const uint8_t *msg, size_t len, const char **token, size_t *token_len,
                        char *authzid, size_t authzid_cap, const char **why);

/* Looks at the frame at the start of BUF (AVAIL bytes so far). Returns a KG_SASL_* verdict. */
int kg_sasl_on_frame(kg_sasl_conn *s, const kg_sasl_env *env, const uint8_t *buf, size_t avail,
                     kg_sasl_verdict *v);

#endif
