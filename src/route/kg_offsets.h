/* kg_offsets — consumer groups resume on the other side where they stopped (issue 10, item 4).
 *
 * A replicated record has another offset on the other cluster (MirrorMaker 2 copies records, not
 * offsets), so a group's committed offsets on the old side mean nothing on the new one. MM2's
 * checkpoint connector writes, on the target, the topic "<source alias>.checkpoints.internal":
 * per (group, topic, partition) the group's committed offset upstream and its translation
 * downstream. At a switch, before clients reconnect, kgate reads that topic on the target with
 * its own connection, keeps the latest checkpoint per (group, topic, partition), and commits the
 * translated offsets for each group on the target, only where that is safe:
 *   - the target group is empty (no member there would have its position moved under it);
 *   - it has no committed offset past the translated one (someone committed there since).
 * Groups kgate saw committing on the old side that have no checkpoint follow a policy:
 * earliest / latest (commit that end of the target's log) or leave (do nothing).
 *
 * The checkpoint record format (Kafka's connect/mirror Checkpoint, version 0):
 *   key:   group STRING, topic STRING, partition INT32
 *   value: version INT16 (0), upstream offset INT64, downstream offset INT64, metadata STRING
 * (STRING: INT16 length then bytes). A record that does not decode to exactly that is skipped
 * and counted (kgate_offsets_checkpoint_records_skipped_total).
 */
#ifndef KG_OFFSETS_H
#define KG_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "metrics/kg_metrics.h"
#include "route/kg_cluster.h"
#include "route/kg_kafka.h"

typedef struct kg_offsets kg_offsets; /* one per virtual cluster with a secondary */

/* One checkpoint, its slices pointing into the record it was decoded from. */
typedef struct kg_offsets_checkpoint {
    kp_str group, topic;
    int32_t partition;
    int64_t upstream, downstream;
    kp_str metadata;
} kg_offsets_checkpoint;

/* Decodes a checkpoint record's KEY and VALUE: 0, or -1 when they are not exactly a version 0
 * checkpoint (null, short, bytes left over, another version, an empty group, a topic name Kafka
 * would refuse, a negative partition or offset). */
int kg_offsets_checkpoint_decode(kp_bytes key, kp_bytes value, kg_offsets_checkpoint *out);

/* 1 when S is a name Kafka accepts for a topic (1-249 of [A-Za-z0-9._-]). */
int kg_offsets_legal_topic(kp_str s);

/* What MM2's checkpoints and offset syncs share: a topic and partition next in K, an upstream
 * and a downstream offset next in V. 0 when they read and are valid (a topic name Kafka takes,
 * no negative partition or offset), else -1. */
int kg_offsets_read_mapping(kp_reader *k, kp_reader *v, kp_str *topic, int32_t *partition,
                            int64_t *upstream, int64_t *downstream);

/* Encodes CP as MirrorMaker 2 does: the key into KEY, the value into VALUE. */
void kg_offsets_checkpoint_encode(const kg_offsets_checkpoint *cp, kp_writer *key,
                                  kp_writer *value);

/* Counters are labelled with VCLUSTER. NULL when out of memory. */
kg_offsets *kg_offsets_new(kg_metrics *metrics, const char *vcluster);
void kg_offsets_free(kg_offsets *o);

/* An OffsetCommit request (BODY, LEN bytes after the request header, at VERSION) went to
 * cluster CLUSTER_INDEX: remembers the group and its partitions (for the policy). Thread-safe;
 * a body that does not decode is ignored (the broker answers it). */
void kg_offsets_note_commit(kg_offsets *o, int cluster_index, int16_t version, const uint8_t *body,
                            size_t len);

typedef struct kg_offsets_switch {
    kg_cluster *from, *to;
    const char *from_alias; /* MM2's alias of FROM: "<alias>.checkpoints.internal" on TO */
    int checkpoints;        /* read them (offsets.checkpoints: auto) */
    int policy;             /* KG_OFFSETS_LEAVE | _EARLIEST | _LATEST */
    int timeout_ms;         /* the whole run */
} kg_offsets_switch;

/* Runs the translation for a switch FROM -> TO. Never takes longer than about timeout_ms (each
 * request is bounded by what is left). Returns the report (new reference):
 *   {"checkpoint_topic", "checkpoints": records read, "records_skipped", "policy",
 *    "groups": [{"group", "result": "translated" | "reset earliest" | "reset latest" | "left" |
 *                "skipped: not empty" | "skipped: newer commit" | "failed",
 *                "partitions"?: N, "state"?: "...", "error"?: "..."}],
 *    "duration_us", "error"?: "..."}
 * "error" says the step stopped early (target unreachable, out of time); the groups not reached
 * are listed as "failed" then. NULL only when out of memory. */
json_t *kg_offsets_run(kg_offsets *o, const kg_offsets_switch *s);

/* A copy of the groups seen committing through kgate on cluster INDEX (kg_offsets_note_commit):
 * {group: {topic: {"<partition>": true}}}. */
json_t *kg_offsets_seen(kg_offsets *o, int index);

/* The coordinator of GROUP on K's cluster (its node id), or -1 with K->err. */
int32_t kg_offsets_coordinator(kg_kafka *k, const char *group);

/* {topic: {"<partition>": committed offset}} of GROUP at its COORDINATOR for the partitions of
 * WANTED ({topic: {"<partition>": anything}}; those without a commit are left out), or NULL with
 * K->err. */
json_t *kg_offsets_committed(kg_kafka *k, int32_t coordinator, const char *group, json_t *wanted);

#endif
