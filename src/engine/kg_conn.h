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

#include "engine/kg_buf.h"
#include "engine/kg_loop.h"

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
#define KG_INFLIGHT_LOCAL 4u       /* kgate answers; local_frame holds the whole response */

typedef struct kg_inflight {
    int32_t correlation_id;
    int16_t api_key;
    int16_t api_version;
    uint32_t flags;
    uint32_t local_len;
    uint8_t *local_frame;
    uint64_t sent_us;
} kg_inflight;

typedef struct kg_conn {
    struct kg_conn *prev, *next; /* the owning worker's list */
    kg_worker *worker;
    kg_loop *loop;
    kg_gateway *gw;
    kg_vcluster *vc;
    kg_cluster *cluster;
    uint64_t route;  /* the vcluster's routing word when this connection was opened */
    int32_t node_id; /* broker the client dialled, -1 = bootstrap */
    kg_conn_state state;
    int connect_attempt;
    char peer[64];
    char backend[64];

    kg_io client_io, backend_io;
    kg_timer connect_timer;
    kg_buf req_in, req_out;   /* client -> backend */
    kg_buf resp_in, resp_out; /* backend -> client */
    uint32_t req_pass;        /* bytes of the current request still to stream through */
    uint32_t resp_pass;       /* bytes of the current response still to stream through */

    kg_inflight *queue; /* ring buffer */
    uint32_t q_head, q_len, q_cap;
} kg_conn;

kg_conn *kg_conn_open(kg_worker *w, kg_loop *loop, kg_gateway *gw, int client_fd,
                      kg_vcluster *vc, int32_t node_id);
/* Starts connecting to the backend; call once the connection is linked into its worker. */
void kg_conn_start(kg_conn *c);
void kg_conn_close(kg_conn *c, int log_level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kg_conn_free(kg_conn *c);

/* Graceful shutdown: stop reading requests; the connection closes itself once every
 * in-flight response is delivered. */
void kg_conn_drain(kg_conn *c);

#endif
