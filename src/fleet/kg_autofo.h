/* kg_autofo — automatic failover (auto_failover in the config; off by default).
 *
 * Every instance reports its health probe verdict of every cluster (up or down, and for how
 * long on its own monotonic clock) with each lease renewal into kg_instances.probe. One
 * instance is the CONTROLLER: it holds a PostgreSQL session advisory lock on a connection of
 * its own, so a controller that loses that connection (crash, cut network) loses the lock and
 * another instance takes it over at its next attempt. The controller fails a vcluster over
 * from its PRIMARY to its SECONDARY when, among the LIVE instances (lease valid):
 *   - a strict majority report the primary down continuously for at least `after`, and
 *   - a strict majority report the secondary up;
 * never back (an automatic switch only ever leaves the primary), at most once per
 * `min_interval` per vcluster (remembered in the store: document kind "auto_failover"), and
 * through the normal switch path (compare-and-set on the epoch, propagation, audit) with actor
 * "auto-failover" and a reason naming the verdicts. The parity pre-flight runs and is recorded
 * in the audit entry but never refuses an automatic switch: it is a disaster failover.
 *
 * A minority that sees the primary down (its own network to the primary is cut) changes
 * nothing; an instance cut off from the store loses its lease and is no longer counted, nor can
 * it be the controller.
 *
 * With SQLite state there is one instance: it is its own majority and its own controller (its
 * local verdicts decide), documented in docs/fleet.md.
 */
#ifndef KG_AUTOFO_H
#define KG_AUTOFO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct kg_autofo kg_autofo;
typedef struct kg_gateway kg_gateway;

/* The decision for one vcluster. VERDICTS: the LIVE instances' reports, an array of
 * {"name", "clusters": {"<cluster>": {"up": bool, "for_ms": int}}} (for_ms: how long the
 * instance has seen that state, as of now). Returns 1 when ACTIVE is down on a strict majority
 * for at least AFTER_MS and TARGET up on a strict majority, else 0. *SUMMARY (new reference):
 * {"live", "needed", "active_down": [names], "target_up": [names], "verdict": "..."}; REASON
 * gets one line naming the verdicts (for the audit entry and the log). */
int kg_autofo_decide(json_t *verdicts, const char *active, const char *target, int64_t after_ms,
                     json_t **summary, char *reason, size_t reason_len);

/* This instance's probe verdicts, the kg_instances.probe document:
 * {"clusters": {"<cluster>": {"up", "for_ms"}}, "controller": bool} (malloc'd JSON text). */
char *kg_autofo_probe_text(kg_gateway *gw);

/* Starts the controller thread when some vcluster has auto_failover enabled (NULL when none
 * has: nothing to do, not an error). CONNINFO: the PostgreSQL store's (NULL with SQLite). */
kg_autofo *kg_autofo_start(kg_gateway *gw, const char *conninfo);
void kg_autofo_stop(kg_autofo *af);

/* GET /v1/status "auto_failover": {"controller": bool, "vclusters": {"<vc>": {"enabled",
 * "after_ms", "min_interval_ms", "last": summary of the last evaluation, "last_auto_ms"?}}}. */
json_t *kg_autofo_status(kg_autofo *af);

#endif
