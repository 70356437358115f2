/* kg_mirror — the embedded mirror (issue 10, item 5): kgate copies a virtual cluster's topics
 * from its active cluster to the other one, for small deployments without MirrorMaker 2.
 *
 * Each pass (every mirror.interval_ms, on a thread of its own) asks the active cluster for its
 * topics, keeps those matching mirror.topics (never internal ones: "__*", "*.internal"), and for
 * every partition fetches from the stored position and produces the records to the same
 * partition of the same topic on the other cluster: key, value, headers and timestamps as they
 * were (CreateTime; a LogAppendTime record gets its append time as its timestamp). Each copy
 * carries one header more, kgate.mirror.source = the cluster it was read from: after a switch
 * the direction reverses (the newly active side is the source), and records that came from the
 * new target are not copied back to it.
 *
 * The position (per direction, topic and partition: the next source offset) is a document of
 * the state store (kind "mirror", id "VCLUSTER:SOURCE:TARGET"), written after each produce the
 * target acknowledged: a restart resumes there; a crash between the two copies that batch
 * again (at least once). Nothing is skipped: a partition whose records cannot be written stays
 * where it is and its lag grows (kgate_mirror_lag_records{vcluster, topic, partition}).
 *
 * Offset syncs (source offset -> target offset at both ends of each batch copied, the last 64 a
 * partition) are kept with the positions; from them each pass writes MirrorMaker 2 checkpoints
 * for the groups kgate saw committing on the source, so the offsets step of a switch
 * (kg_offsets) works with the embedded mirror as with MM2. MM2's offset-syncs topic is not
 * written (kgate keeps its syncs in the state store).
 */
#ifndef KG_MIRROR_H
#define KG_MIRROR_H

#include <jansson.h>

#include "config/kg_config.h"
#include "metrics/kg_metrics.h"
#include "route/kg_cluster.h"
#include "state/kg_store.h"

typedef struct kg_mirror kg_mirror;

/* NULL when CFG has no mirror or out of memory. */
kg_mirror *kg_mirror_new(const kg_vcluster_cfg *cfg, kg_metrics *metrics, kg_store *store);
void kg_mirror_free(kg_mirror *m);

/* Thread safety: the calls below may come from any thread (the gateway's mirror thread, a
 * planned switchover, the admin API); the mirror's lock serializes them, and a call waits for
 * the one in progress at most its own TIMEOUT_MS (then fails with "busy": a caller's budget
 * always holds). */

/* Whether this instance runs the mirror (default 1). With a PostgreSQL state the gateway's
 * mirror thread sets it from the fleet's mirror lock: one instance copies; on the others a pass
 * fails ("another instance of the fleet runs the mirror") and kg_mirror_lag reads the
 * positions the running one stored. Taking it over reads the stored positions first. */
void kg_mirror_set_owner(kg_mirror *m, int owner);
int kg_mirror_owner(kg_mirror *m);

/* One pass from SOURCE to TARGET, bounded by TIMEOUT_MS. Then, for GROUPS (kg_offsets_seen on
 * SOURCE; NULL: none), MirrorMaker 2 checkpoints of their committed offsets on the source,
 * translated with the mirror's offset syncs, into "<ALIAS>.checkpoints.internal" on the target
 * (when that topic exists there): a switch then translates them (kg_offsets) as with MM2.
 * Returns the records copied, or -1 when the pass stopped on an error (logged, counted in
 * kgate_mirror_errors_total; the next pass tries again from the stored position). */
int kg_mirror_pass(kg_mirror *m, kg_cluster *source, kg_cluster *target, int timeout_ms,
                   json_t *groups, const char *alias);

/* "Run a pass now" (a planned switchover, POST /v1/vclusters/VC/mirror/pass): kg_mirror_pass
 * for the mirrored topics among ONLY (NULL or ->n < 0: every mirrored topic), so a caller that
 * holds new produce requests copies what is left of the partitions it waits for, and, with
 * GROUPS, writes the final checkpoints. Same return as kg_mirror_pass. */
int kg_mirror_pass_topics(kg_mirror *m, kg_cluster *source, kg_cluster *target,
                          const kg_cluster_topics *only, int timeout_ms, json_t *groups,
                          const char *alias);

/* "Lag of these partitions", measured now: the source's end offsets (ListOffsets) against the
 * mirror's stored positions for SOURCE -> TARGET, for TOPICS (NULL or ->n < 0: every mirrored
 * topic of the source). Copies nothing. Returns
 *   {"source": S, "target": T,
 *    "total": records of those partitions not copied yet (sum of "partitions"),
 *    "partitions": {topic: {"<partition>": records not copied yet}},
 *    "not_mirrored": {topic: why}   the mirror does not copy it: outside mirror.topics, a
 *                                   kgate/replicator topic, absent on the source or on the
 *                                   target; its lag never reaches 0,
 *    "stopped": {topic: {"<partition>": why}}  partitions the mirror stopped (a record the
 *                                   target refuses and no DLQ): their lag grows until an
 *                                   operator acts,
 *    "last_error": why the last pass stopped, or null when it ended well}
 * The lag is 0 for every partition when "total" is 0 and "not_mirrored" and "stopped" are
 * empty. NULL with ERR set when a cluster does not answer within TIMEOUT_MS. */
json_t *kg_mirror_lag(kg_mirror *m, kg_cluster *source, kg_cluster *target,
                      const kg_cluster_topics *topics, int timeout_ms, char *err, size_t errlen);

#endif
