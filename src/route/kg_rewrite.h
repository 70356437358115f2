/* kg_rewrite — broker address rewriting in response bodies, so a client only ever sees kgate.
 *
 * Addresses appear in Metadata (brokers), FindCoordinator (v0-3 top level, v4+ coordinators),
 * DescribeCluster (brokers) and the KIP-951 NodeEndpoints (top-level tagged field 0) of
 * Produce v10+ / Fetch v16+ responses. Every one of them is replaced by the advertised host and
 * the port kgate serves that node on; no backend host or port survives. The cluster id in
 * Metadata and DescribeCluster becomes the virtual cluster's, the same on either side.
 */
#ifndef KG_REWRITE_H
#define KG_REWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"

typedef struct kg_node_map {
    const char *host; /* advertised host */
    /* Port kgate serves node_id on; -1 if outside the configured range. */
    int (*port_for_node)(void *ctx, int32_t node_id);
    void *ctx;
    uint16_t fallback_port; /* used when port_for_node gives -1, and for node id -1 */
    int hide_leader_epochs; /* Metadata: report partition leader epochs as unknown (-1) */
    const char *cluster_id; /* Metadata v2+, DescribeCluster: the virtual cluster's id */
    /* Called with every topic a Metadata answer describes without error (the parity check's
     * record of what clients use); NULL = not wanted. */
    void (*topic_seen)(void *ctx, const kp_str *name, int32_t partitions);
    void *topic_ctx;
} kg_node_map;

/* Called with every real broker address seen (node id >= 0), before it is rewritten, so the
 * engine can learn where brokers are. host/rack point into the response (valid during the call);
 * rack may be a null string (len -1). */
typedef void (*kg_broker_seen_fn)(void *ctx, int32_t node_id, const kp_str *host, int32_t port,
                                  const kp_str *rack);

/* True when responses of this api/version carry broker addresses: Metadata, FindCoordinator and
 * DescribeCluster (all versions), Produce v10+, Fetch v16+. */
int kg_rewrite_wanted(int16_t api_key, int16_t api_version);

/* Group membership lives in one cluster. After a switch, members of the old cluster's groups
 * reach a coordinator that has never heard of them; Kafka answers UNKNOWN_MEMBER_ID and
 * clients rejoin and re-read their committed offsets. Some brokers answer GROUP_ID_NOT_FOUND
 * instead, which clients treat as final (they keep fetching from their old positions, or stop).
 * True for the group APIs whose responses kgate translates to what Kafka sends. */
int kg_rewrite_group_wanted(int16_t api_key);
/* Heartbeat, SyncGroup, OffsetCommit: GROUP_ID_NOT_FOUND becomes UNKNOWN_MEMBER_ID. Same
 * return convention as kg_rewrite_response. */
int kg_rewrite_group_errors(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                            kp_writer *out);

/* Rewrites the response BODY (the bytes after the response header) of api_key/api_version.
 * Returns 1 = rewritten body appended to `out`; 0 = nothing to change, forward the original
 * bytes (e.g. Produce/Fetch without NodeEndpoints, or an api without addresses); -1 = the body
 * could not be decoded (or the version is one kgate has no codec for): do not forward it.
 * `seen` may be NULL. Produce/Fetch record data is never copied into a decoded form: the
 * rewritten body is the original bytes up to the top-level tagged fields plus a new section. */
int kg_rewrite_response(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                        const kg_node_map *map, kg_broker_seen_fn seen, void *seen_ctx,
                        kp_writer *out);

#endif
