/* kg_config — kgate's YAML configuration (libfyaml), validated in full.
 *
 * Every error names the file, line and column of the offending node; unknown keys are errors
 * so a typo never silently changes behaviour. The structure is plain data: it is loaded once,
 * then read-only (a reload builds a new one).
 */
#ifndef KG_CONFIG_H
#define KG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KG_NAME_MAX 64
#define KG_HOST_MAX 256
#define KG_PATH_MAX 1024
#define KG_SECRET_MAX 256

/* HOST is stored without IPv6 brackets ("::1", not "[::1]"), ready for getaddrinfo(). */
typedef struct kg_hostport {
    char host[KG_HOST_MAX];
    uint16_t port;
} kg_hostport;

/* clusters.NAME.tls: parsed and validated now (files must be readable), used by the upstream
 * TLS work later. enabled = the tls: section is present. */
typedef struct kg_tls_cfg {
    int enabled;
    int verify;                  /* verify the broker certificate and host name; default 1 */
    char ca_file[KG_PATH_MAX];   /* empty = system trust store */
    char cert_file[KG_PATH_MAX]; /* client certificate (mTLS); set together with key_file */
    char key_file[KG_PATH_MAX];
} kg_tls_cfg;

enum kg_sasl_mechanism {
    KG_SASL_NONE = 0, /* no sasl: section */
    KG_SASL_PLAIN,
    KG_SASL_SCRAM_SHA_256,
    KG_SASL_SCRAM_SHA_512,
    KG_SASL_OAUTHBEARER, /* at kgate only (listener.sasl), not upstream */
};
#define KG_SASL_MECHANISMS (KG_SASL_OAUTHBEARER + 1) /* arrays by mechanism, 0 included */

/* clusters.NAME.sasl: parsed now, used by the upstream SASL work later. password holds the
 * secret whether it was written inline or read from password_file at load time. */
typedef struct kg_sasl_cfg {
    enum kg_sasl_mechanism mechanism;
    char username[KG_SECRET_MAX];
    char password[KG_SECRET_MAX];
    char password_file[KG_PATH_MAX]; /* where password came from; empty when inline */
    /* sasl.principals: credential swap — kgate user NAME logs in to this cluster with these
     * credentials (same mechanism) instead of kgate's own. */
    struct kg_swap_cfg *swaps;
    int n_swaps;
} kg_sasl_cfg;

typedef struct kg_swap_cfg {
    char principal[8 + KG_NAME_MAX]; /* "User:NAME" */
    kg_sasl_cfg sasl;                /* mechanism: the cluster's; no swaps of its own */
} kg_swap_cfg;

/* A physical Kafka cluster kgate can route to. */
typedef struct kg_cluster_cfg {
    char name[KG_NAME_MAX];
    kg_hostport *bootstrap;
    int n_bootstrap;
    kg_tls_cfg tls;
    kg_sasl_cfg sasl;
} kg_cluster_cfg;

typedef enum kg_client_auth {
    KG_CLIENT_AUTH_NONE = 0,  /* no client certificate asked for */
    KG_CLIENT_AUTH_REQUESTED, /* asked for; verified when sent; the connection goes on without */
    KG_CLIENT_AUTH_REQUIRED,  /* a verified client certificate or no connection (mTLS) */
} kg_client_auth;

#define KG_MAPPING_RULES_MAX 16
#define KG_MAPPING_RULE_MAX 512

/* vclusters.NAME.listener.tls: kgate's TLS towards clients. */
typedef struct kg_listener_tls_cfg {
    int enabled;
    uint16_t port; /* 0: the vcluster's own ports speak TLS; else TLS on this second port range
                    * (port + 1 + node id), beside the plaintext one */
    char cert_file[KG_PATH_MAX]; /* certificate chain, PEM */
    char key_file[KG_PATH_MAX];
    char client_ca_file[KG_PATH_MAX]; /* CAs client certificates must chain to */
    char crl_file[KG_PATH_MAX];       /* revoked client certificates (PEM CRLs), optional */
    kg_client_auth client_auth;
    /* principal_mapping: Kafka's ssl.principal.mapping.rules, one rule an entry
     * ("RULE:pattern/replacement/[LU]" or "DEFAULT"), applied to the certificate subject in
     * RFC 2253 form. Empty = DEFAULT (the whole subject). */
    char mapping_rules[KG_MAPPING_RULES_MAX][KG_MAPPING_RULE_MAX];
    int n_mapping_rules;
} kg_listener_tls_cfg;

/* vclusters.NAME.listener.oauthbearer: SASL OAUTHBEARER at kgate, signed JWTs checked against
 * a JWKS file (read and validated at load; see security/kg_jwt.h). Empty strings: not checked. */
#define KG_OAUTH_STR_MAX 512
typedef struct kg_oauthbearer_cfg {
    char jwks_file[KG_PATH_MAX];
    char issuer[KG_OAUTH_STR_MAX];     /* iss must equal it */
    char audience[KG_OAUTH_STR_MAX];   /* aud must contain it */
    char principal_claim[KG_NAME_MAX]; /* default "sub" */
    int clock_skew_s;                  /* default 30 */
} kg_oauthbearer_cfg;

#define KG_CLUSTER_ID_MAX 65
enum { KG_OFFSETS_LEAVE, KG_OFFSETS_EARLIEST, KG_OFFSETS_LATEST };
enum { KG_REPLICATION_NONE, KG_REPLICATION_EMBEDDED, KG_REPLICATION_MM2 };
enum {
    KG_PARITY_REFUSE,
    KG_PARITY_WARN,
    KG_PARITY_OFF
}; /* 64 characters of [A-Za-z0-9_-], with the NUL */

/* auto_failover (top level: the default of every vcluster; vclusters.NAME.auto_failover overrides
 * it key by key): fleet/kg_autofo.h. */
typedef struct kg_autofo_cfg {
    int enabled;             /* default false */
    int64_t after_ms;        /* a majority saw the active cluster down this long (default 30 s) */
    int64_t min_interval_ms; /* between two automatic switches of a vcluster (default 10 min) */
} kg_autofo_cfg;

/* A virtual cluster: what clients connect to. Broker node N is served on port + 1 + (N -
 * node_id_min). */
typedef struct kg_vcluster_cfg {
    char name[KG_NAME_MAX];
    uint16_t port;
    int primary;            /* index into kg_config.clusters */
    int secondary;          /* index, or -1 when there is none */
    int node_id_min;        /* default 0 */
    int node_id_max;        /* default 31 */
    int hide_leader_epochs; /* leader_epochs: hide (default with a secondary) | pass */
    /* cluster_id: the id clients see in Metadata and DescribeCluster, whichever cluster is
     * active (default: derived from advertised_host, port and name; see docs/config.md). */
    char cluster_id[KG_CLUSTER_ID_MAX];
    /* parity: the pre-flight of a switch (route/kg_parity.h) */
    int parity_window_s;   /* topics used in the last window_s (default 600) */
    int parity_interval_s; /* checked in the background this often; 0 = never (default 60) */
    int parity_on_switch;  /* KG_PARITY_REFUSE (default) | _WARN | _OFF */
    kg_autofo_cfg auto_failover;
    /* offsets: consumer group offsets on the target at a switch (route/kg_offsets.h) */
    int offsets_checkpoints; /* 1: read MM2 checkpoints (auto, default); 0: off */
    int offsets_policy;      /* KG_OFFSETS_LEAVE (default) | _EARLIEST | _LATEST */
    int offsets_timeout_ms;  /* the whole step at a switch (default 5000) */
    /* MirrorMaker 2's alias of the primary [0] and secondary [1] cluster (default: their names):
     * a switch away from side S reads "<alias of S>.checkpoints.internal" on the target. */
    char offsets_alias[2][KG_NAME_MAX];
    /* mirror: kgate copies topics from the active cluster to the other (route/kg_mirror.h) */
    char mirror_topics[256]; /* POSIX extended regex of topic names; "" = no mirror */
    int mirror_interval_ms;  /* a pass this often (default 1000) */
    char mirror_dlq[250];    /* a topic of the target for records it refuses; "" = none */
    /* replication: what copies the topics to the other side, so what a planned switch waits
     * for (route/kg_planned.h, route/kg_offsync.h) */
    int replication_kind; /* KG_REPLICATION_*; default embedded with a mirror, else none */
    int replication_syncs_on_target; /* replication.offset_syncs: source (0, default) | target */
    char replication_topics[256];    /* replication.topics: regex of more topics to wait for */
    /* auth: gateway — clients authenticate to kgate (SASL) with users kgate manages. */
    int auth_gateway;
    /* auth: passthrough — clients log in to the active cluster; kgate reads the name along. */
    int auth_passthrough;
    unsigned sasl_mechanisms;       /* listener.sasl: bit (1 << enum kg_sasl_mechanism) each */
    int allow_plain_without_tls;    /* listener.allow_plain_without_tls (PLAIN sends passwords) */
    int64_t sasl_session_ms;        /* listener.sasl_session_ms: KIP-368 lifetime, 0 = none */
    int acls_enabled;               /* acls: enabled | disabled (default) */
    kg_listener_tls_cfg tls;        /* listener.tls */
    kg_oauthbearer_cfg oauthbearer; /* listener.oauthbearer (when OAUTHBEARER is listed) */
} kg_vcluster_cfg;

#define KG_SASL_BIT(m) (1u << (unsigned)(m))

typedef struct kg_config {
    char path[1024];
    char listen[KG_HOST_MAX];          /* default 127.0.0.1 */
    char advertised_host[KG_HOST_MAX]; /* default: listen */
    kg_cluster_cfg *clusters;
    int n_clusters;
    kg_vcluster_cfg *vclusters;
    int n_vclusters;

    char
        admin_listen[KG_HOST_MAX]; /* "host:port", empty = admin API off; default 127.0.0.1:19644 */
    kg_hostport admin_addr;        /* admin_listen split into host and port (when not empty) */
    char admin_token[KG_SECRET_MAX]; /* empty = no token required; from admin.token or token_file */
    char admin_token_file[KG_PATH_MAX]; /* admin.token_file the token was read from, or empty */
    /* admin.tls: HTTPS for the admin API when enabled (cert_file and key_file, both required);
     * ca_file is for the CLI (`kgate ... -c`): the CA it trusts for the API's certificate. */
    kg_tls_cfg admin_tls;
    char state_path[KG_PATH_MAX];   /* default ./kgate-state.db; or a postgres:// URL */
    int state_connect_timeout_ms;   /* PostgreSQL: keep retrying at start this long */
    int state_statement_timeout_ms; /* PostgreSQL: statement_timeout */

    int workers;              /* 0 in the file = number of cores, resolved at load */
    uint32_t max_frame_bytes; /* limits.max_frame_bytes, default 100 MiB */
    uint32_t buffer_bytes;  /* limits.buffer_bytes: per-direction high-water mark, default 4 MiB */
    int max_connections;    /* limits.max_connections, default 10000 */
    int connect_timeout_ms; /* limits.connect_timeout_ms, default 5000 */
    int drain_timeout_ms;   /* limits.drain_timeout_ms: shutdown grace, default 5000 */
    int switch_grace_ms;    /* switch.grace_ms: in-flight requests' answers, default 200 */
    int switch_leave;       /* switch.leave_groups: leave the old side's groups, default 1 */
    int switch_planned_hold_ms; /* switch.planned_hold_ms: a planned switch's hold bound */
    int probe_interval_ms;      /* health.probe_interval_ms, default 1000 */
    char log_level[16];         /* log.level: debug|info|warn|error, default info */
    char log_format[8];         /* log.format: text|json, default text */

    /* chaos: the declarative fault rules, as JSON objects (the admin API's form), validated
     * by the chaos module when applied; chaos_rule_lines[i] is the line rule i starts on. */
    struct json_t *chaos_rules; /* NULL when the file has none */
    int *chaos_rule_lines;

    /* acls: ACL bindings kept in the state store from the start (security/kg_acl.h), as
     * JSON objects in the admin API's form, checked by kg_acl when applied;
     * acl_binding_lines[i] is the line binding i starts on. NULL when the file has none. */
    struct json_t *acl_bindings;
    int *acl_binding_lines;

    /* instance: this kgate in a fleet sharing a PostgreSQL state (fleet/kg_fleet.h); unused
     * with SQLite. */
    char instance_name[KG_NAME_MAX]; /* instance.name, default the host name */
    int lease_ms;                    /* instance.lease_ms, default 3000 */
    int serve_last_known; /* instance.on_state_loss: 0 fail-closed (default), 1 serve-last-known */
    int ack_timeout_ms;   /* instance.ack_timeout_ms: a switch waits this long for the fleet */

    kg_autofo_cfg auto_failover; /* the top level's: what vclusters inherit */
} kg_config;

#define KG_LEASE_MIN_MS 300 /* below, renewals (every lease / 3) outrun a slow database */
#define KG_LEASE_MAX_MS 600000

/* Loads and validates PATH. Returns a config or NULL; every error is printed to ERRS as
 * "PATH:LINE:COL: message" and *n_errors is set to how many there were. */
kg_config *kg_config_load(const char *path, FILE *errs, int *n_errors);
/* Same, from a string in memory (NAME is used in messages). For tests and the demo. */
kg_config *kg_config_parse(const char *name, const char *yaml, size_t len, FILE *errs,
                           int *n_errors);
void kg_config_free(kg_config *cfg);

/* Index of the (v)cluster called NAME, or -1. */
/* A YAML (or JSON) document as JSON: plain scalars become numbers, booleans and null where
 * they read as such. For drill files (`kgate experiment run drill.yaml`). NULL + ERR on error. */
struct json_t *kg_config_yaml_to_json(const char *text, size_t len, char *err, size_t errlen);

int kg_config_cluster_index(const kg_config *cfg, const char *name);
int kg_config_vcluster_index(const kg_config *cfg, const char *name);
const char *kg_config_sasl_mechanism_name(enum kg_sasl_mechanism mechanism);

#endif
