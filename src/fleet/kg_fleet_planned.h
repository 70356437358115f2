/* kg_fleet_planned — the planned switchover (route/kg_planned.h) in a fleet: every live
 * instance holds its producers, the switch happens once, every instance relays its held
 * requests to the new side (docs/runbook.md, "Planned switchover in a fleet").
 *
 * The state is one row per vcluster in planned_holds (the current or last hold) and one row
 * per instance and hold in planned_acks (kg_store_pg.c, migration 2):
 *   - the instance that gets the call (the coordinator) writes the row ('holding', deadline =
 *     now() + hold max) unless another hold of the vcluster is 'holding', and notifies
 *     "kgate_planned";
 *   - every instance's planned thread (its own connection, LISTEN kgate_planned and
 *     kgate_switch) sees it, holds as one instance does, and once nothing of the vcluster is
 *     in flight to the old side writes its ack;
 *   - the coordinator waits for the ack of every live instance (lease valid), closes the acks
 *     (acks_closed_at), waits for the embedded mirror's lag to be 0 (the instance that runs
 *     the mirror copies back to back while it holds), and switches: the epoch's
 *     compare-and-set and the row's 'holding' -> 'switched' in ONE transaction, refused when a
 *     live instance has no ack from before acks_closed_at (kg_store_commit_switch_held);
 *   - or it aborts: 'holding' -> 'aborted' (only from 'holding');
 *   - every instance follows the row: 'switched', it applies the new route, then lifts its
 *     hold (the held requests go to the new side); 'aborted', it lifts its hold (old side);
 *   - an instance that sees no decision by deadline + margin marks the row 'aborted' itself,
 *     only when it is still 'holding' (a coordinator that died).
 * The row decides for every instance alike, so no instance releases to the old side while
 * another relays to the new one. Any other switch of the vcluster is refused while it holds
 * (by every instance, and in the switch transaction). */
#ifndef KG_FLEET_PLANNED_H
#define KG_FLEET_PLANNED_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "route/kg_gateway.h"

typedef struct kg_fleet_planned kg_fleet_planned;
typedef struct kg_fleet_hold kg_fleet_hold;

/* Starts the planned thread of this instance (its own connection to CONNINFO). NULL out of
 * resources. */
kg_fleet_planned *kg_fleet_planned_start(kg_gateway *gw, const char *conninfo);
/* Stops the thread (before the workers stop: it lifts holds through them). */
void kg_fleet_planned_stop(kg_fleet_planned *fp);

/* The coordinator's side (the admin thread, inside kg_planned_switch). */

/* Writes the hold row of VC (FROM -> TO, from epoch FROM_EPOCH, deadline now + HOLD_MAX_MS):
 * 0 with *HOLD, else an HTTP status with *RESULT (409: another hold of VC is holding; 503:
 * the state store did not answer). */
int kg_fleet_hold_begin(kg_fleet_planned *fp, kg_vcluster *vc, int from, int to,
                        uint64_t from_epoch, uint64_t hold_max_ms, const char *actor,
                        kg_fleet_hold **hold, json_t **result);
/* The hold's id (0 for NULL: the switch of an instance alone). */
int64_t kg_fleet_hold_id(const kg_fleet_hold *hold);
/* Writes this instance's ack (HELD requests of HELD_BYTES so far), waits until every live
 * instance acked, at most until DEADLINE_US (kg_now_us), and closes the acks: 0, or -1 with
 * WHY naming the instances that did not ack (or the database's error). */
int kg_fleet_hold_acks(kg_fleet_hold *hold, uint64_t held, uint64_t held_bytes,
                       uint64_t deadline_us, char *why, size_t len);
/* Marks the hold aborted (WHY) unless it was decided already: 0 aborted (every instance
 * releases to the old side), 1 the row says switched (an ambiguous commit that did commit),
 * -1 unknown (the database does not answer: this instance's planned thread follows the row
 * once it does, and ends this instance's hold then; H is its from then on). */
int kg_fleet_hold_abort(kg_fleet_hold *hold, const char *why);
/* The hold is over here (its requests went to WENT_TO, "new side" or "old side"): records
 * this instance's counts, waits up to WAIT_MS for the other instances' and returns
 * {instance: {"held", "held_bytes", "released_to"}} (new reference). Frees HOLD. */
json_t *kg_fleet_hold_end(kg_fleet_hold *hold, const char *went_to, uint64_t held,
                          uint64_t held_bytes, int wait_ms);

#endif
