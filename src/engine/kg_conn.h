/* kg_conn — one proxied client connection and its backend connection.
 *
 * Bytes flow one way per direction: socket -> input buffer -> framing -> (pass through or
 * transform) -> output buffer -> socket. A frame is looked at only as far as a decision needs:
 * pass-through frames are streamed after their header, without waiting for the whole frame;
 * only responses that carry broker addresses (and ApiVersions) are buffered whole and decoded.
 *
 * Responses go back in request order: every forwarded request has an entry in the in-flight
 * queue, and responses kgate makes itself take their place in that queue too.
 */
#ifndef KG_CONN_H
#define KG_CONN_H

#include <stdint.h>

#include "chaos/kg_chaos.h"
#include "engine/kg_buf.h"
#include "engine/kg_loop.h"
#include "engine/kg_shape.h"
#include "security/kg_sasl.h"
#include "security/kg_authz.h"
#include "security/kg_passthrough.h"
#include "security/kg_sasl_client.h"
#include "security/kg_tls.h"

/* Produce and Fetch requests up to this size are read whole on a virtual cluster that can
 * switch, so that kgate can answer them in the old side's place (route/kg_handover.h). */
#define KG_CONN_HANDOVER_WHOLE_MAX (64 * 1024)

typedef struct kg_worker kg_worker;
typedef struct kg_gateway kg_gateway;
typedef struct kg_vcluster kg_vcluster;
typedef struct kg_cluster kg_cluster;

typedef enum kg_conn_state {
    KG_CONN_CONNECTING, /* backend connect in progress; requests queue up */
    KG_CONN_PROXYING,
    KG_CONN_DRAINING, /* no new requests read; waiting for in-flight responses */
    KG_CONN_CLOSED,   /* sockets closed; freed by the worker after the current batch */
} kg_conn_state;

#define KG_INFLIGHT_REWRITE 1u     /* response carries broker addresses */
#define KG_INFLIGHT_APIVERSIONS 2u /* response is replaced by kgate's version intersection */
#define KG_INFLIGHT_READY 4u       /* `frame` is the response to deliver, not before release_us */
#define KG_INFLIGHT_SWALLOW 8u    /* the broker's response is dropped (chaos: request sent twice) */
#define KG_INFLIGHT_REPLACE 16u   /* `frame` replaces the broker's response (chaos: lost ack) */
#define KG_INFLIGHT_MUTATE 32u    /* the broker's response goes through chaos (records) */
#define KG_INFLIGHT_INSPECT 64u   /* count the errors of the delivered response (experiments) */
#define KG_INFLIGHT_GROUP 128u    /* group response: translate errors to Kafka's (kg_rewrite) */
#define KG_INFLIGHT_SASL 256u     /* auth: passthrough — read the cluster's SASL verdict */
#define KG_INFLIGHT_AUTHZ 512u    /* acls: enabled — `authz` fixes the answer (kg_authz) */
#define KG_INFLIGHT_PLANNED 1024u /* the new side answers, through kgate (kg_planned) */

typedef struct kg_inflight {
    int32_t correlation_id;
    int16_t api_key;
    int16_t api_version;
    uint32_t flags;
    uint32_t frame_len;
    uint8_t *frame; /* a whole response frame (size prefix included), see the flags */
    uint64_t sent_us;
    uint64_t release_us; /* READY: deliver at or after this time */
    uint64_t delay_us;   /* chaos: hold the response this long once it arrives */
    const void *mutation;
    kg_chaos_set *chaos;   /* keeps `mutation` alive */
    kg_authz_patch *authz; /* AUTHZ: denied topics to name again, filters */
    /* The body kgate answers with in the old side's place when a switch's grace ends first
     * (kg_handover); made when the request is forwarded, on virtual clusters that can switch. */
    uint8_t *handover;
    uint32_t handover_len;
} kg_inflight;

/* A request the chaos rules decided to hold (latency): it stays at the head of req_in, and
 * every later request waits behind it, until `until_us`. */
typedef struct kg_held_request {
    int active;
    uint64_t until_us;
    kg_chaos_action action;
} kg_held_request;

enum { KG_SIDE_BACKEND = 0, KG_SIDE_CLIENT = 1 }; /* the direction bytes are written to */

typedef struct kg_conn {
    struct kg_conn *prev, *next; /* the owning worker's list */
    kg_worker *worker;
    kg_loop *loop;
    kg_gateway *gw;
    const struct kg_limits *limits; /* the gateway's when it was opened (kg_gateway_limits) */
    kg_vcluster *vc;
    kg_cluster *cluster;
    unsigned cluster_gen; /* cluster->bootstrap_gen when the backend was picked */
    uint64_t route;       /* the vcluster's routing word when this connection was opened */
    int32_t node_id;      /* broker the client dialled, -1 = bootstrap */
    kg_conn_state state;
    int connect_attempt;
    char peer[64];
    char backend[64];
    char client_id[256];
    int32_t client_id_len; /* -1 until a request names it */

    kg_io client_io, backend_io;
    kg_timer connect_timer;
    kg_buf req_in, req_out;   /* client -> backend */
    kg_buf resp_in, resp_out; /* backend -> client */
    uint32_t req_pass;        /* bytes of the current request still to stream through */
    uint32_t resp_pass;       /* bytes of the current response still to stream through */

    kg_inflight *queue; /* ring buffer */
    uint32_t q_head, q_len, q_cap;

    /* chaos */
    kg_chaos_set *chaos; /* the rule snapshot this connection decides on */
    uint64_t chaos_gen;
    kg_held_request held;
    kg_timer request_timer;  /* releases a held request */
    kg_timer response_timer; /* delivers a held response */
    kg_chaos_tcp tcp;
    int tcp_rechecked; /* TCP faults re-evaluated once the client id is known */
    uint64_t sent[2];  /* bytes written per side, for limit-data */
    kg_shape shape[2]; /* bandwidth / slicer per side */
    kg_timer shape_timer[2];
    kg_timer reset_timer;
    kg_timer recheck_timer; /* re-reads the rules while TCP faults apply */

    kg_sasl_conn
        *sasl; /* auth: gateway — the SASL stage's state; NULL when the vcluster has none */

    /* TLS, per socket (indexed like `sent`: the side the socket leads to); NULL = plaintext */
    SSL *ssl[2];
    uint8_t handshaking[2];   /* the handshake of that side is not done yet */
    uint8_t hs_want_write[2]; /* ... and waits for the socket to take bytes */
    uint32_t tls_retry[2];    /* a write that would block: the next starts with these bytes */
    uint16_t port_base;       /* the port range the client came in on (plain or TLS) */
    char *cert_principal;     /* "User:NAME" from the client certificate (mTLS), or NULL */
    kg_passthrough *pass;     /* auth: passthrough — the client's login, read along */

    /* acls: enabled (kg_authz) */
    char peer_host[64];            /* the peer's address as ACL bindings name hosts */
    kg_authz_patch *authz_pending; /* for the request being taken, until it is tracked */
    int walk_pending;              /* the Produce being taken is to be walked as it streams */
    int walking;                   /* a Produce body streams through the walk */
    uint32_t walk_head;            /* frame bytes before the body still to pass */
    int32_t walk_correlation;      /* the request being walked */
    kg_authz_produce_walk walk;
    kg_authz_patch *walk_patch; /* its denied topics so far */

    /* kgate's own SASL login to the broker (clusters.NAME.sasl) */
    kg_sasl_client *upstream; /* the exchange while it runs, else NULL */
    uint8_t upstream_wait;    /* client requests wait: a login runs or is due */
    kg_timer reauth_timer;    /* KIP-368: log in again before the broker's session ends */

    /* kg_conn_drain: the gateway drains; requests already begun are finished, none is cut */
    uint8_t drain_boundary;
    /* kg_conn_retire: the virtual cluster switched; the grace ends at this time (and after
     * kg_conn_expire, the connection closes at it at the latest) */
    uint64_t retire_at_us;
    uint8_t expired;      /* kg_conn_expire: the old side's answers are no longer taken */
    kg_timer quiet_timer; /* retiring: closes once nothing came for a moment (conn_after_io) */
    uint8_t retire_stuck; /* retiring: a request kgate cannot answer waits in req_in */

    /* kg_planned: a planned switch holds the Produce request at the head of req_in */
    uint8_t planned_wait;
    uint32_t planned_release; /* bytes of req_in held at the switch: released to the new side */
    uint32_t planned_pending; /* released requests whose answer has not come yet */
    uint8_t planned_relay;    /* moved by a planned switch: Produce is relayed by kgate until
                               * the new side's leaders are this broker id's (kg_planned) */
    uint64_t serial;          /* unique in the process: the release thread's answers find C by it */
} kg_conn;

/* TLS: the client came in on the vcluster's TLS port (its listener's TLS context applies). */
kg_conn *kg_conn_open(kg_worker *w, kg_loop *loop, kg_gateway *gw, int client_fd, kg_vcluster *vc,
                      int32_t node_id, int tls);
/* Starts connecting to the backend; call once the connection is linked into its worker. */
void kg_conn_start(kg_conn *c);
void kg_conn_close(kg_conn *c, int log_level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kg_conn_free(kg_conn *c);

/* Graceful close at a request boundary (the gateway drains or stops): the request the client is
 * sending is read to its end and forwarded, no later one is read, and the connection closes
 * itself once every response is delivered. An idle connection closes at once. */
void kg_conn_drain(kg_conn *c);
/* The virtual cluster switched (switch.grace_ms): the requests C has in flight keep their
 * answers from the old side until DEADLINE_US; requests the client sends from now on never
 * reach the old side: kgate answers them at once with a retriable error (kg_handover). C closes
 * at its next request boundary, as kg_conn_drain does, or kg_conn_expire runs at the deadline
 * (kg_worker). A connection at a boundary, or not connected yet, closes now. Returns 1 when C
 * is still open (retiring). */
int kg_conn_retire(kg_conn *c, uint64_t deadline_us);
/* The grace of a retiring connection ended: every request still unanswered gets kgate's
 * retriable answer in its place in the response order, the old side's later answers are
 * dropped, and C closes once those answers are out, by CLOSE_BY_US at the latest. A request
 * kgate cannot answer (kg_handover_answerable) stays unanswered, with all after it. Returns 1
 * when C is still open. */
int kg_conn_expire(kg_conn *c, uint64_t close_by_us);
/* 1 when C has nothing in flight either way: no request partly read, queued or unanswered, no
 * response partly sent. Closing it then cuts nothing. */
int kg_conn_at_boundary(const kg_conn *c);

/* Planned switchover (route/kg_planned.h), worker thread. Requests of C in flight that a
 * planned switch waits for (Produce to the old side, or bytes not written to it yet). */
int kg_conn_planned_inflight(kg_conn *c);
/* The hold was lifted (or the switch published): C takes its requests again. */
void kg_conn_planned_kick(kg_conn *c);
/* The new side's answer FRAME (LEN bytes; ownership moves on 1) to the released request
 * CORRELATION_ID of connection SERIAL: 1 when C is that connection and took it, else 0.
 * DIRECT: the request's partitions are led by C's broker id on the new side, so C's Produce
 * requests go straight there from now on. */
int kg_conn_planned_answer(kg_conn *c, uint64_t serial, int32_t correlation_id, uint8_t *frame,
                           uint32_t len, int direct);

#endif
