/* kg_parity — is the other cluster ready for this virtual cluster's clients? (issue 10, item 3)
 *
 * A switch is only as good as what clients find on the other side: a topic that is missing
 * there gives producers UNKNOWN_TOPIC_OR_PARTITION, a different partition count sends keyed
 * records to other partitions, a different cleanup.policy or retention changes what consumers
 * read. kg_parity compares the target cluster with what the virtual cluster's clients used on
 * the active one:
 *   - usage: every topic named in a Metadata answer the active cluster gave a client of the
 *     virtual cluster, with its partition count, in the last `parity.window_s` (recorded as the
 *     answers pass: they are decoded anyway, to rewrite broker addresses);
 *   - the topic configs that change behaviour (cleanup.policy, retention.ms, retention.bytes,
 *     max.message.bytes, min.insync.replicas) of the active side, read by kgate itself while the
 *     active cluster is up, and kept: a failover happens when it is not;
 *   - the target, asked at check time: Metadata for those topics (never creating one) and
 *     DescribeConfigs.
 * The switch runs the check against the target and refuses on differences unless forced; the
 * prober runs it every `parity.interval_s` so a gauge can alert before the outage.
 */
#ifndef KG_PARITY_H
#define KG_PARITY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "route/kg_cluster.h"

typedef struct kg_parity kg_parity; /* one per virtual cluster */

kg_parity *kg_parity_new(void);
void kg_parity_free(kg_parity *p);

/* A Metadata answer told a client that topic NAME (LEN bytes) has PARTITIONS partitions on the
 * active cluster. Thread-safe; cheap when the topic is known. */
void kg_parity_note_topic(kg_parity *p, const char *name, size_t len, int32_t partitions);

typedef struct kg_parity_check {
    kg_cluster *active; /* where clients are now */
    kg_cluster *target; /* where a switch would send them */
    int read_active;    /* ask the active side for its configs now (it is up) */
    int window_s;       /* topics used in the last WINDOW_S seconds */
    int timeout_ms;     /* per request */
} kg_parity_check;

/* Compares CHECK->target with the topics used in the window. Returns the report (new
 * reference, never NULL unless out of memory):
 *   {"from", "to", "window_s", "checked_at" (unix ms), "topics": N, "configs": "compared" |
 *    "not compared: ...", "differences": [{"topic", "problem": "missing" | "partitions" |
 *    "config", "from"?, "to"?, "config"?}], "count": D, "error"?: "..."}
 * "error" says the target could not be asked (then nothing is compared and count is 0).
 * Blocking: up to a few requests of TIMEOUT_MS each. Thread-safe (runs unlocked). */
json_t *kg_parity_run(kg_parity *p, const kg_parity_check *check);

/* The names of the topics used in the last WINDOW_S seconds, sorted (a new JSON array), or NULL
 * out of memory. */
json_t *kg_parity_used(kg_parity *p, int window_s);

/* The last report kg_parity_run produced (new reference), or NULL before the first. */
json_t *kg_parity_last(kg_parity *p);

#endif
