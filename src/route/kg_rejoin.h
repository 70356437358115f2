/* kg_rejoin — consumer group members that have not rejoined their group since a switch.
 *
 * Offsets are per cluster. A consumer keeps its fetch positions in memory across the reconnect a
 * switch forces, and some (librdkafka) fetch on the new side at the old cluster's offsets, and
 * commit them there, before their group rejoins: records are skipped or read twice. kgate
 * remembers, per virtual cluster, the clients (client id and address) whose SyncGroup succeeded,
 * and on which route. Until such a client has synced again on the current route, its first Fetch
 * is answered NOT_LEADER_OR_FOLLOWER (it refreshes metadata and asks again, keeping nothing;
 * KafkaJS rejoins), its later ones with no records (kg_rejoin_first), and its
 * OffsetCommit UNKNOWN_MEMBER_ID (what Kafka answers a member the group does not know: it rejoins,
 * and nothing of the old cluster is committed on the new one). From its JoinGroup on the current
 * route until it has synced there, its Heartbeats get kgate's answer without error
 * (kg_rejoin_in_join): the rejoin is under way. Once it has rejoined, its
 * positions come from the new side's committed offsets (translated ones, kg_offsets) or its
 * auto.offset.reset.
 *
 * A bounded table (oldest entry replaced); thread-safe (the workers share it). Clients with the
 * same client id on the same host count as one: the first of them to rejoin frees the others.
 */
#ifndef KG_REJOIN_H
#define KG_REJOIN_H

#include <stddef.h>
#include <stdint.h>

#include "kp_msgs.h"

typedef struct kg_rejoin kg_rejoin;

kg_rejoin *kg_rejoin_new(void);
void kg_rejoin_free(kg_rejoin *r);

/* The client CLIENT_ID (LEN bytes) from HOST completed SyncGroup on ROUTE. */
void kg_rejoin_synced(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route);
/* 1 when that client is a group member that has not synced on ROUTE (the current one) yet. */
int kg_rejoin_pending(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route);

/* 1 when that client has synced a group on some route (a group member kgate knows). A Fetch
 * of such a member that kgate answers in the old side's place at a switch gets no records
 * instead of NOT_LEADER_OR_FOLLOWER: its first Fetch on the new side starts its rejoin. */
int kg_rejoin_member(kg_rejoin *r, const char *client_id, size_t len, const char *host);

/* 1 the first time it is asked for that pending client on ROUTE, then 0 until it syncs there:
 * the one Fetch of a pending member kgate answers with NOT_LEADER_OR_FOLLOWER. KafkaJS rejoins
 * its group at once on that answer (a refresh of stale metadata) but does so on every Fetch
 * that gets it, from each broker connection, and each JoinGroup after the first restarts the
 * group's rebalance (13-30 s before it consumed again). Its later Fetches get an empty answer
 * after KG_REJOIN_FETCH_WAIT_MS, which moves no position and starts nothing. */
int kg_rejoin_first(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                    uint64_t route);
#define KG_REJOIN_FETCH_WAIT_MS 250

/* The client sent JoinGroup on ROUTE at NOW_US (a monotonic clock): when it is a pending member
 * there, its rejoin has started. */
void kg_rejoin_joining(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                       uint64_t route, uint64_t now_us);

/* 1 when that pending client sent JoinGroup on ROUTE less than KG_REJOIN_JOIN_WINDOW_MS before
 * NOW_US and has not synced there since. A Heartbeat it sends then still carries the member id
 * and generation of before its rejoin: the new side answers UNKNOWN_MEMBER_ID or
 * ILLEGAL_GENERATION, and KafkaJS, which sends Heartbeats from its fetch loop while a join is
 * under way, rejoins a second time on that answer (it stops its fetchers, and the group's
 * second rebalance waited 5 s on the mock). kgate answers such a Heartbeat itself, without
 * error (kg_rejoin_heartbeat_ok): the rejoin it would start is already running. librdkafka and
 * kafka-python send no Heartbeat while they join. The window bounds a join that never ends in a
 * sync: after it, the Heartbeat goes to the new side again and its answer starts a rejoin. */
int kg_rejoin_in_join(kg_rejoin *r, const char *client_id, size_t len, const char *host,
                      uint64_t route, uint64_t now_us);
#define KG_REJOIN_JOIN_WINDOW_MS 60000 /* KafkaJS's default rebalanceTimeout */

/* A Heartbeat response at VERSION with no error, into OUT. 0, or -1 for a version kgate cannot
 * encode. */
int kg_rejoin_heartbeat_ok(int16_t version, kp_writer *out);

/* The error code of a SyncGroup response BODY (after the response header) at VERSION, or -1. */
int kg_rejoin_sync_error(int16_t version, const uint8_t *body, size_t len);

#endif
