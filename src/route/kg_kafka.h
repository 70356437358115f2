/* kg_kafka — a few Kafka client calls of kgate's own, for work kgate does itself against a
 * cluster (offset translation at a switch, the embedded mirror): partition leaders, an offset
 * by timestamp, the records of a partition. Every call of one kg_kafka shares its deadline, so a
 * caller with a budget is never held past it, however many brokers hang. Blocking; one
 * kg_kafka per thread.
 */
#ifndef KG_KAFKA_H
#define KG_KAFKA_H

#include <stdint.h>

#include <jansson.h>

#include "proto/kp_records.h"
#include "route/kg_cluster.h"

#define KG_KAFKA_LATEST (-1)   /* ListOffsets: the log end offset */
#define KG_KAFKA_EARLIEST (-2) /* ListOffsets: the log start offset */

typedef struct kg_kafka {
    kg_cluster *cluster;
    uint64_t deadline_us;        /* kg_now_us() */
    kg_cluster_session *session; /* NULL: a fresh connection a request; else kept in it */
    char err[512];               /* why the last call failed */
} kg_kafka;

/* One answer, ready to decode with the generated decoder (r, arena, reply.version). */
typedef struct kg_kafka_answer {
    kg_cluster_reply reply;
    kp_arena arena;
    kp_reader r;
} kg_kafka_answer;

/* Sends RQ to NODE (-1: any broker): 0 with ANS ready (free it with kg_kafka_answer_free), -1
 * with K->err set, -2 when the cluster does not offer the API (K->err says so). */
int kg_kafka_ask(kg_kafka *k, int32_t node, const kg_cluster_request_spec *rq,
                 kg_kafka_answer *ans);
void kg_kafka_answer_free(kg_kafka_answer *ans);
/* RC: what the generated decoder returned (or -1 for an answer of another shape). 0 when the
 * answer decoded, else -1 with K->err ("undecodable API answer"). */
int kg_kafka_decoded(kg_kafka *k, kg_kafka_answer *ans, int rc, const char *api);

/* Is NAME a topic of Kafka's own ("__*") or of a replicator's ("*.internal": MirrorMaker 2's
 * offset syncs and checkpoints), which no mirror or replication lag is about? */
int kg_kafka_internal_topic(const char *name);

/* {topic: {"<partition>": leader node}} of the topics T names that exist (T->n < 0: all
 * topics), learning the brokers on the way; NULL with K->err. Never creates a topic: from
 * Metadata v4 on it says so, and before (a cluster of Kafka < 0.11, librdkafka's older mocks)
 * it asks for every topic and keeps those of T. */
json_t *kg_kafka_leaders(kg_kafka *k, const kg_cluster_topics *t);

/* The offset of TIMESTAMP (or KG_KAFKA_EARLIEST / _LATEST) in TOPIC[PARTITION] at its LEADER,
 * or -1 with K->err. */
int64_t kg_kafka_list_offset(kg_kafka *k, int32_t leader, const char *topic, int32_t partition,
                             int64_t timestamp);

/* One partition of a batch of ListOffsets (kg_kafka_list_offsets). */
typedef struct kg_kafka_offset_ask {
    const char *topic;
    int32_t partition;
    int32_t leader; /* below 0: not asked, OFFSET left as it is */
    int64_t offset; /* the answer */
} kg_kafka_offset_ask;

/* The offsets of TIMESTAMP (or KG_KAFKA_EARLIEST / _LATEST) of the N partitions of ASKS, one
 * ListOffsets per leader (a measurement of many partitions costs a round trip per broker, not
 * per partition: the other side of a DR pair is often a region away). 0 with every asked
 * partition's offset set, or -1 with K->err when a leader or a partition did not answer. */
int kg_kafka_list_offsets(kg_kafka *k, kg_kafka_offset_ask *asks, size_t n, int64_t timestamp);

/* One Fetch of TOPIC[PARTITION] at OFFSET from its LEADER (at most MAX_BYTES; no waiting): FN
 * (kp_records_visit's callback: its return and *copies are ignored) sees each record at or
 * after OFFSET of the data batches, in order. 0 with *NEXT (the offset after the last record
 * seen, OFFSET when none) and *HIGH_WATERMARK; -1 with K->err (an error code, a malformed
 * batch). */
int kg_kafka_fetch(kg_kafka *k, int32_t leader, const char *topic, int32_t partition,
                   int64_t offset, int32_t max_bytes, kp_record_fn fn, void *ctx, int64_t *next,
                   int64_t *high_watermark);

/* kg_kafka_fetch from *OFFSET until END (MAX_BYTES a Fetch), advancing *OFFSET past each record
 * FN saw: 0 once *OFFSET >= END; -1 with K->err (and *OFFSET where it stopped) on an error or a
 * Fetch that makes no progress. */
int kg_kafka_read(kg_kafka *k, int32_t leader, const char *topic, int32_t partition,
                  int64_t *offset, int64_t end, int32_t max_bytes, kp_record_fn fn, void *ctx);

#endif
