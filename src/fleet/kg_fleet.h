/* kg_fleet — this kgate as one instance of a fleet sharing a PostgreSQL state store.
 *
 * One thread with its own libpq connection (LISTEN needs one that nothing else uses):
 *   - registers the instance in kg_instances (refusing a name a live instance holds) and renews
 *     its lease every lease_ms / 3 with lease_until = now() + lease_ms, the DATABASE's clock,
 *     so clock skew between instances never makes a lease look live or dead;
 *   - LISTENs on "kgate_switch" (the store notifies it in the switch transaction) and, on a
 *     notification and on every renewal as a fallback, applies every vcluster epoch NEWER than
 *     the local one through kg_gateway_apply_route, then acknowledges by writing its epochs to
 *     its row (and notifying "kgate_ack", which a switch waits on);
 *   - fences the instance when the lease was not renewed in time, measured on the local
 *     monotonic clock from the moment the last successful renewal was SENT (so the local
 *     deadline is never later than the database's lease_until): on_state_loss fail-closed
 *     closes every client connection and refuses new ones, serve-last-known keeps routing on
 *     the epochs it has and refuses mutations; both end when the lease is renewed again, after
 *     the epochs were re-read.
 * A second connection (guarded by a lock) serves the admin thread: the wait for acks.
 *
 * Every database call is asynchronous with its own deadline, so a database that stops
 * answering (a cut network) delays nothing past the lease.
 */
#ifndef KG_FLEET_H
#define KG_FLEET_H

/* Drains asked through another instance (`kgate drain NAME`): a document of this kind in the
 * store, id = the instance's name, body {"within_ms", "actor", "via"} or {"cancel": true,
 * "actor", "via"}. The named instance reads it with its lease renewal (so within one renewal
 * interval, lease_ms / 3), starts or cancels its drain, and deletes it. */
#define KG_FLEET_DRAIN_KIND "drain_request"

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct kg_fleet kg_fleet;
typedef struct kg_gateway kg_gateway;

/* Connects to CONNINFO (a libpq connection string or URL; never logged), registers the
 * instance gw->cfg->instance_name, re-reads and applies the stored epochs and starts the
 * thread. NULL with the reason in ERR (a live instance holds the name, the database cannot be
 * reached, ...). */
kg_fleet *kg_fleet_start(kg_gateway *gw, const char *conninfo, char *err, size_t errlen);
/* The planned switchover's part of this instance (fleet/kg_fleet_planned.h); NULL when its
 * thread could not start. */
struct kg_fleet_planned *kg_fleet_planner(kg_fleet *fleet);
/* Stops the thread and gives the lease up (deletes the row), then closes both connections. */
void kg_fleet_stop(kg_fleet *fleet);

/* NULL while the instance holds its lease; else why it does not ("state store unreachable:
 * ..."), for a 503 on a mutation and for /readyz. The string stays valid until the next call
 * from the same thread (thread-local copy). */
const char *kg_fleet_state_lost(kg_fleet *fleet);

/* After a switch of VCLUSTER to EPOCH committed through this instance: waits up to TIMEOUT_MS
 * until every live instance (lease_until > now()) has acknowledged EPOCH. Returns
 * {"acked": [names], "pending": [names], "wait_ms": ms} (new reference; "error" when the
 * database could not be asked). */
json_t *kg_fleet_wait_acks(kg_fleet *fleet, const char *vcluster, uint64_t epoch, int timeout_ms);

/* GET /v1/status "fleet": {"instance", "lease_ok", "on_state_loss", "state_lost"?,
 * "instances": [{"name", "version", "state", "live", "epochs", "connections", "lease_age_ms",
 * "admin_url"}]} as of the last renewal (new reference). */
json_t *kg_fleet_status(kg_fleet *fleet);
/* Refreshes kgate_fleet_instances{state}, kgate_instance_lease_ok, kgate_instance_epoch. */
void kg_fleet_collect_metrics(kg_fleet *fleet);

#endif
