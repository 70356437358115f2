/* kg_cluster — what kgate knows about one physical Kafka cluster.
 *
 * The broker table (node id -> address) is learnt from the cluster itself: from kgate's own
 * health probe (Metadata over a connection of its own, on an interval) and from Metadata
 * responses flowing to clients. Workers read it only when they open a backend connection.
 */
#ifndef KG_CLUSTER_H
#define KG_CLUSTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/kg_config.h"
#include "proto/kp_prim.h"
#include "route/kg_versions.h"
#include "security/kg_sasl_client.h"
#include "security/kg_tls.h"

typedef struct kg_sockaddr {
    struct sockaddr_storage sa;
    socklen_t len;
} kg_sockaddr;

typedef struct kg_broker {
    int32_t node_id;
    char host[KG_HOST_MAX];
    uint16_t port;
    kg_sockaddr addr;
    int resolved;
} kg_broker;

typedef struct kg_cluster {
    const kg_cluster_cfg *cfg;
    int index;

    pthread_rwlock_t lock; /* guards everything below up to the atomics */
    kg_broker *brokers;
    int n_brokers;
    kg_hostport *boot_hp; /* the bootstrap list in use (the config's, or a reload's) */
    int n_boot;
    kg_sockaddr *bootstrap; /* boot_hp resolved (some may be unresolved: len 0) */
    kg_version_ranges versions;
    int versions_known;
    char last_error[256];
    char cluster_id[128];

    atomic_int up;                 /* 1 after a successful probe, 0 after a failed one */
    atomic_uint_fast64_t probe_us; /* latency of the last successful probe */
    atomic_uint_fast64_t last_probe_unix_ms;
    /* kg_now_us() of the first probe, then of each change of `up`: how long the cluster has
     * been up or down (auto_failover's verdicts); 0 before the first probe. */
    atomic_uint_fast64_t state_since_us;
    atomic_uint round_robin;
    kg_tls_client *tls;   /* clusters.NAME.tls; NULL = plaintext to the brokers */
    kg_sasl_creds creds;  /* clusters.NAME.sasl (mechanism NONE: no login) */
    kg_sasl_creds *swaps; /* sasl.principals: per-principal credentials (credential swap) */
    int n_swaps;
    atomic_int auth_failed; /* 1 when the last probe failed at kgate's own SASL login */
    int versions_only;      /* probe with ApiVersions only: clients log in (auth: passthrough) */
    atomic_int retired;     /* a reload removed it: not probed, listed or chosen any more */
    /* Bumped by kg_cluster_set_bootstrap: a connection opened before it reached the old
     * addresses, and the brokers its Metadata answers name are not learnt any more. */
    atomic_uint bootstrap_gen;
    kg_cluster_cfg *own_cfg; /* a reload's cluster: its config, owned by the gateway */
} kg_cluster;

int kg_cluster_init(kg_cluster *c, const kg_cluster_cfg *cfg, int index);
void kg_cluster_destroy(kg_cluster *c);

/* `kgate reload` with a new bootstrap list for C: the same cluster at other addresses. New
 * backend connections use it at once (the brokers learnt from the old addresses are forgotten
 * until the next probe's Metadata); connections already open keep theirs. 0, or -1 when out of
 * memory (nothing changed). */
int kg_cluster_set_bootstrap(kg_cluster *c, const kg_hostport *bootstrap, int n);
/* 1 when C's bootstrap list in use is BOOTSTRAP (N entries), else 0. */
int kg_cluster_bootstrap_is(kg_cluster *c, const kg_hostport *bootstrap, int n);

/* The credentials kgate logs in to C with for a client of PRINCIPAL ("User:alice", or NULL):
 * that principal's own (credential swap) when the cluster has them, else kgate's. */
kg_sasl_creds *kg_cluster_creds_for(kg_cluster *c, const char *principal);

/* Chooses where a backend connection goes: node NODE_ID when known, otherwise (node -1, or a
 * node the cluster does not have) any broker, rotating. ATTEMPT > 0 asks for the next
 * candidate after a failed connect. Returns 0 and fills OUT, -1 when nothing is known, -2 for a
 * broker of a cluster whose brokers kgate has not learnt yet (versions_only). */
int kg_cluster_pick(kg_cluster *c, int32_t node_id, int attempt, kg_sockaddr *out, char *desc,
                    size_t desclen);

/* The host part of a description kg_cluster_pick wrote ("host:port (node 1)", IPv6 in brackets
 * or not): the name a broker's TLS certificate must carry. */
void kg_cluster_desc_host(const char *desc, char *out, size_t len);

/* Records a broker seen in a Metadata response. Cheap when nothing changed. */
void kg_cluster_learn_broker(kg_cluster *c, int32_t node_id, const char *host, size_t host_len,
                             int32_t port);

/* One blocking health probe: ApiVersions then Metadata over a fresh connection. Updates up/down,
 * latency, versions and the broker table. Returns 0 when the cluster answered. */
int kg_cluster_probe(kg_cluster *c, int timeout_ms);

/* A request of kgate's own to a cluster (the parity check): its answer, after the response
 * header, at the version it was sent with. */
typedef struct kg_cluster_reply {
    uint8_t *frame; /* malloc'd: the whole response frame */
    const uint8_t *body;
    size_t len;
    int16_t version;
} kg_cluster_reply;
/* Encodes the request body at VERSION into W. */
typedef void (*kg_cluster_encode_fn)(kp_writer *w, int16_t version, void *ctx);
typedef struct kg_cluster_request_spec {
    int16_t api;
    int16_t min_version, max_version;
    kg_cluster_encode_fn encode;
    void *ctx;
} kg_cluster_request_spec;
/* Sends one request RQ to C over a fresh connection set up as the probe's (TLS, ApiVersions,
 * kgate's login), at the highest version the broker, kgate's codecs and RQ's range allow.
 * 0 with *OUT filled (free it with kg_cluster_reply_free); -1 when no broker could be reached
 * (ERR says why); -2 when the cluster cannot answer it (the API or a version in RQ's range not
 * offered, or no login of kgate's own: auth passthrough). Blocking, bounded by TIMEOUT_MS per
 * broker tried. */
int kg_cluster_request(kg_cluster *c, int timeout_ms, const kg_cluster_request_spec *rq,
                       kg_cluster_reply *out, char *err, size_t errlen);
/* Connections kept between requests to one cluster (the embedded mirror sends thousands of
 * Fetch and Produce requests a pass: a fresh connection each, with its ApiVersions and login,
 * cost more than the copy). One thread at a time; a connection that failed is dropped, one
 * the broker closed while idle is replaced before it is used. */
typedef struct kg_cluster_session kg_cluster_session;
kg_cluster_session *kg_cluster_session_new(void);
void kg_cluster_session_free(kg_cluster_session *s);

/* The same to broker NODE_ID (its leader or coordinator: one try), or to any broker when NODE_ID
 * is -1 (each tried in turn), all within DEADLINE_US (kg_now_us()): a caller with a budget for
 * many requests (kg_offsets at a switch) is never held past it however many brokers hang.
 * SESSION: NULL (a fresh connection), or where the connection is taken from and kept. */
int kg_cluster_request_at(kg_cluster *c, kg_cluster_session *session, int32_t node_id,
                          uint64_t deadline_us, const kg_cluster_request_spec *rq,
                          kg_cluster_reply *out, char *err, size_t errlen);
void kg_cluster_reply_free(kg_cluster_reply *r);

/* A Metadata request of kgate's own for N topics, all topics when N < 0 (a kg_cluster_encode_fn,
 * CTX a kg_cluster_topics). It never creates a topic: send it at v4+ (before v4 naming a topic may
 * create it). */
typedef struct kg_cluster_topics {
    int n;
    const char *const *names;
} kg_cluster_topics;
void kg_cluster_encode_metadata(kp_writer *w, int16_t version, void *ctx);

/* Copies the versions learnt by probing; returns 0 when none are known yet. */
int kg_cluster_versions(kg_cluster *c, kg_version_ranges *out);

#endif
