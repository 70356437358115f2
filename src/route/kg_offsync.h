/* kg_offsync — MirrorMaker 2's replication lag, read from its offset syncs, so that a planned
 * switchover (route/kg_planned.h) can wait until MM2 has copied everything (issue 10, item 6).
 *
 * MM2's source connector writes, for each replicated partition, "offset syncs": the offset a
 * record had upstream and the offset its copy got downstream. They go to the compacted topic
 * "mm2-offset-syncs.<alias of the target>.internal", on the source cluster by default (MM2's
 * offset-syncs.topic.location=source) or on the target (=target). The record format (Kafka's
 * connect/mirror OffsetSync, no version field):
 *   key:   topic STRING, partition INT32
 *   value: upstream offset INT64, downstream offset INT64
 * (STRING: INT16 length then bytes). A record that does not decode to exactly that (a tombstone,
 * another layout, a negative offset, a topic name Kafka would refuse) is skipped and counted
 * (kgate_offsync_records_skipped_total).
 *
 * MM2 writes a sync when the upstream -> downstream delta changes or when more than
 * offset.lag.max (100) records went by since the last one, so the latest sync (u, d) of a
 * partition is a point where the two logs are known to line up; every record after u upstream
 * is copied after d downstream. With the source's end offset Es and the target's Et, the
 * partition is caught up when Et - d >= Es - u; its lag is (Es - u) - (Et - d) records.
 * Two assumptions (docs/runbook.md):
 *   - source offsets without a gap after u: transaction markers and compacted-away records make
 *     Es - u larger than the records there are, so the partition looks behind for good and a
 *     planned switch aborts (safe: nothing is lost, the switch does not happen);
 *   - nothing but MM2 writes to the target's copy while the source is active (another writer
 *     would make the target look ahead), and topics keep their names (MM2's
 *     IdentityReplicationPolicy, as kgate's offset translation assumes too).
 * A partition with records and no sync is behind by all its records; a topic none of whose
 * partitions has a sync (and that has records) is "not replicated".
 */
#ifndef KG_OFFSYNC_H
#define KG_OFFSYNC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "metrics/kg_metrics.h"
#include "proto/kp_records.h"
#include "route/kg_cluster.h"

/* One offset sync, its topic pointing into the record it was decoded from. */
typedef struct kg_offsync_rec {
    kp_str topic;
    int32_t partition;
    int64_t upstream, downstream;
} kg_offsync_rec;

/* Decodes an offset-sync record's KEY and VALUE: 0, or -1 when they are not exactly one (null,
 * short, bytes left over, a topic name Kafka would refuse, a negative partition or offset). */
int kg_offsync_decode(kp_bytes key, kp_bytes value, kg_offsync_rec *out);

/* Encodes S as MirrorMaker 2 does: the key into KEY, the value into VALUE. */
void kg_offsync_encode(const kg_offsync_rec *s, kp_writer *key, kp_writer *value);

typedef struct kg_offsync kg_offsync; /* one per virtual cluster: its counters */

/* Counters labelled with VCLUSTER; NULL out of memory. */
kg_offsync *kg_offsync_new(kg_metrics *metrics, const char *vcluster);
void kg_offsync_free(kg_offsync *o);

/* What to measure: MM2 replicating SOURCE to TARGET. */
typedef struct kg_offsync_spec {
    kg_cluster *source, *target;
    const char *target_alias; /* MM2's alias of TARGET: "mm2-offset-syncs.<alias>.internal" */
    int syncs_on_target;      /* offset-syncs.topic.location=target */
    json_t *topics;           /* the topics to wait for: an array of names (borrowed, may be
                               * NULL); internal ones ("__*", "*.internal") are left out */
    const char *topics_regex; /* and every topic of the source matching it (NULL or "": none) */
} kg_offsync_spec;

/* One planned switch's reading of the offset syncs: each kg_offsync_lag reads only the syncs
 * written since the last one. Not thread-safe (the switch's thread). */
typedef struct kg_offsync_watch kg_offsync_watch;

/* NULL out of memory or when SPEC->topics_regex does not compile (config validated it). */
kg_offsync_watch *kg_offsync_watch_new(kg_offsync *o, const kg_offsync_spec *spec);
void kg_offsync_watch_free(kg_offsync_watch *w);

/* The lag now, read within TIMEOUT_MS. Returns (new reference)
 *   {"replication": "mirrormaker2", "offset_syncs_topic", "offset_syncs_on": cluster,
 *    "syncs": syncs known, "records_skipped": records of the topic that are no sync (this
 *    watch), "total": records not copied yet (sum of "partitions"),
 *    "partitions": {topic: {"<partition>": records not copied yet}} of every partition measured,
 *    "not_replicated": {topic: why}   MM2 does not copy it: no sync at all (and records), or
 *                                     absent on the target}
 * or NULL with ERR (a cluster does not answer, the offset-syncs topic does not exist). */
json_t *kg_offsync_lag(kg_offsync_watch *w, int timeout_ms, char *err, size_t errlen);

#endif
