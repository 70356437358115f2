/* kg_worker — one proxy thread: an event loop owning a set of client connections.
 *
 * Other threads talk to a worker only through its command queue (kg_worker_* below), so a
 * connection is only ever touched by the thread that owns it.
 */
#ifndef KG_WORKER_H
#define KG_WORKER_H

#include <stdint.h>

typedef struct kg_worker kg_worker;
typedef struct kg_gateway kg_gateway;
typedef struct kg_vcluster kg_vcluster;

#define KG_WORKERS_MAX 1024 /* the config refuses more */

kg_worker *kg_worker_start(kg_gateway *gw, int id);

/* Hands an accepted client socket to the worker (ownership moves with it). NODE_ID is the
 * broker the client dialled, or -1 for the bootstrap port. */
/* Hands an accepted socket to W; TLS says it came in on the vcluster's TLS port. */
void kg_worker_adopt(kg_worker *w, int fd, kg_vcluster *vc, int32_t node_id, int tls);

/* Closes every connection of virtual cluster VC opened under an older route than ROUTE_WORD, on
 * all N workers in parallel, and waits until they are done. Returns how many client
 * connections were closed. */
int kg_workers_close_stale(kg_worker **workers, int n, kg_vcluster *vc, uint64_t route_word);

/* Runs FN(connection, ARG) on every open connection of VC, on all N workers in parallel (each
 * on its own thread), and waits: the sum of what FN returned. Not from a worker thread. */
typedef struct kg_conn kg_conn;
typedef int (*kg_conn_visit_fn)(kg_conn *c, void *arg);
int kg_workers_visit(kg_worker **workers, int n, kg_vcluster *vc, kg_conn_visit_fn fn, void *arg);

/* Stops reading new requests, waits for in-flight ones until DEADLINE_US, closes the rest, and
 * joins the thread. */
void kg_worker_drain_and_join(kg_worker *w, uint64_t deadline_us);

/* Drain (the gateway stops serving without cutting a request): on each of the N workers, idle
 * connections close at once and busy ones are asked to close at their next request boundary
 * (kg_conn_drain), one after the other spread evenly over SPREAD_US so their clients do not all
 * reconnect at the same moment; whatever is still open at DEADLINE_US (monotonic) is closed.
 * Connections handed over meanwhile are closed. Returns at once. */
void kg_workers_drain(kg_worker **workers, int n, uint64_t spread_us, uint64_t deadline_us);
/* Ends a drain: no more connections are asked to close (those asked finish as they were), new
 * ones are served again. */
void kg_workers_drain_cancel(kg_worker **workers, int n);

/* When the worker's loop last went round (monotonic µs; it does at least once a second), for
 * the watchdog: a worker stuck longer is not healthy. Any thread. */
uint64_t kg_worker_heartbeat_us(kg_worker *w);

/* The worker's read scratch: connections read into it and keep only leftovers. */
#define KG_WORKER_SCRATCH (256 * 1024)
uint8_t *kg_worker_scratch(kg_worker *w);
/* The worker's random state (chaos rates and delays); worker thread only. */
uint64_t *kg_worker_rng(kg_worker *w);

/* Called by a connection of this worker when it closes (worker thread only). */
void kg_worker_conn_closed(kg_worker *w, kg_conn *c);

#endif
