/* kg_planned — the zero-loss planned switchover (issue 10, item 6; docs/runbook.md).
 *
 * `kgate failover VC --planned`: kgate holds every new Produce request of the virtual cluster
 * at the head of its connection's input (the client is back-pressured; memory is bounded by the
 * connection's buffer), waits until no Produce is in flight to the old side, waits until the
 * embedded mirror has copied everything of the mirrored topics to the target (lag 0), then
 * switches as any switch does (parity, offsets, compare-and-set of the epoch, audit, retire).
 * The held requests, and every Produce the retiring connections read after the switch, go to
 * the NEW side through kgate itself (a release thread with kgate's own Kafka client): the
 * client gets the new side's answer under its own correlation id, in its place in the response
 * order, and never an error. If the lag does not reach 0 within the hold bound, or the target
 * or old side cannot be read, the switch is aborted: the hold is lifted and the held requests
 * go to the old side as if nothing happened.
 *
 * Threads: the admin thread runs kg_planned_switch; workers read the hold state (atomics) and
 * hand released requests to the release thread, which posts the answers back to them.
 */
#ifndef KG_PLANNED_H
#define KG_PLANNED_H

#include <stdint.h>

#include <jansson.h>

typedef struct kg_planned kg_planned;
typedef struct kg_gateway kg_gateway;
typedef struct kg_vcluster kg_vcluster;
typedef struct kg_worker kg_worker;
typedef struct kg_switch_request kg_switch_request;
typedef struct kg_metrics kg_metrics;

/* For a virtual cluster with a secondary; NULL out of memory. */
kg_planned *kg_planned_new(kg_metrics *metrics, const char *vcluster);
/* Stops the release thread (answers still queued are dropped: their connections close with
 * the gateway). Before the workers stop: it posts answers to them. */
void kg_planned_stop(kg_planned *p);
/* After the workers stopped (their connections read the hold state). */
void kg_planned_free(kg_planned *p);

/* What a connection opened under CONN_ROUTE does with a Produce request now (worker thread;
 * two atomic loads). */
enum {
    KG_PLANNED_PASS = 0,    /* as usual */
    KG_PLANNED_HOLD = 1,    /* leave it at the head of the input: a planned switch holds */
    KG_PLANNED_RELEASE = 2, /* hand it to kg_planned_release: it goes to the new side */
};
int kg_planned_mode(kg_planned *p, uint64_t conn_route, uint64_t current_route);
/* A connection starts holding a Produce request of SIZE bytes (counted once per request). */
void kg_planned_note_held(kg_planned *p, uint32_t size);

/* Sends a Produce request (BODY: after the request header, LEN bytes; copied) to the new side
 * for connection CONN_SERIAL (to broker NODE_ID, -1: bootstrap) of worker W, split by the
 * partitions' leaders there; ANSWER (acks != 0) says the client waits for the
 * answer, which comes back through kg_conn_planned_answer. 0, or -1 (out of memory: the caller
 * answers it itself). */
int kg_planned_release(kg_planned *p, kg_worker *w, uint64_t conn_serial, int32_t node_id,
                       int16_t api_version, int32_t correlation_id, int answer, const uint8_t *body,
                       size_t len);

/* The planned switch of VC (REQ->planned). Returns an HTTP-style status with *RESULT, like
 * kg_gateway_switch. */
int kg_planned_switch(kg_gateway *gw, kg_vcluster *vc, const kg_switch_request *req,
                      json_t **result);
/* The lag of VC's replication from its active side to the other one now, as a planned switch
 * measures it (GET /v1/vclusters/NAME/replication): the embedded mirror's (kg_mirror_lag) or
 * MirrorMaker 2's (kg_offsync_lag, the topics clients used and replication.topics), with
 * "from", "to" and "replication". NULL with ERR (no such replication, a side unreadable). */
json_t *kg_planned_lag(kg_gateway *gw, kg_vcluster *vc, char *err, size_t len);
/* 1 with WHY filled when a planned switch of P holds right now (another switch must wait). */
int kg_planned_busy(kg_planned *p, char *why, size_t len);

/* In a fleet (fleet/kg_fleet_planned.h) every instance holds for the one that coordinates. */
/* 1 while P holds new Produce requests (the mirror owner runs its passes back to back then). */
int kg_planned_holding(kg_planned *p);
/* Starts holding VC's Produce requests for a planned switch FROM -> TO (epoch FROM_EPOCH + 1
 * when it happens) coordinated by instance COORDINATOR: 0, or -1 when a switch of VC is in
 * progress here (try again). */
int kg_planned_fleet_hold(kg_planned *p, kg_gateway *gw, kg_vcluster *vc, int from, int to,
                          uint64_t from_epoch, const char *coordinator);
/* What the current (last) hold held so far. */
void kg_planned_held(kg_planned *p, uint64_t *held, uint64_t *held_bytes);
/* Produce requests of P's vcluster in flight to the old side now (0: the hold is reached). */
int kg_planned_inflight(kg_planned *p);
/* Ends the hold started by kg_planned_fleet_hold: SWITCHED (the caller applied the new route
 * first), the held requests go to the new side, else to the old one. *HELD, *HELD_BYTES: what
 * it held. */
void kg_planned_fleet_end(kg_planned *p, int switched, uint64_t *held, uint64_t *held_bytes);

#endif
