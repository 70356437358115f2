/* kg_handover — what kgate answers in the old side's place at a switch (switch.grace_ms).
 *
 * A request the old cluster has not answered when the grace ends, and a request a client sends
 * on a connection that is being retired, gets an answer kgate makes: the error Kafka uses for
 * "leader or coordinator moved", which every client library retries after a metadata or
 * coordinator refresh, so it goes to the new side without the client reporting anything. The
 * answer has the request's correlation id, API version and header version (flexible or not).
 *
 *   Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, DeleteRecords:
 *                        NOT_LEADER_OR_FOLLOWER in every partition the request names
 *   JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, TxnOffsetCommit:
 *                        NOT_COORDINATOR (top level, or per partition / group where that is
 *                        where the version carries its errors)
 *   FindCoordinator:     COORDINATOR_NOT_AVAILABLE
 *   anything else:       no answer (kg_handover_answerable is 0): the connection closes with it
 *                        unanswered, as a broker going away does (docs/runbook.md).
 */
#ifndef KG_HANDOVER_H
#define KG_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"

#define KG_KAFKA_NOT_LEADER_OR_FOLLOWER 6
#define KG_KAFKA_COORDINATOR_NOT_AVAILABLE 15
#define KG_KAFKA_NOT_COORDINATOR 16
#define KG_KAFKA_UNKNOWN_MEMBER_ID 25

/* 1 when kgate can answer requests of API_KEY in the old side's place. */
int kg_handover_answerable(int16_t api_key);

/* The response body (after the response header) for the request BODY (after the request
 * header, LEN bytes) of API_KEY at API_VERSION, into OUT (reset first). 0, or -1 when the API is
 * not answerable, the body does not decode, or memory ran out. */
int kg_handover_answer(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                       kp_writer *out);
/* The same with ERROR in place of the API's usual error (0: the usual one). */
int kg_handover_answer_with(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                            int16_t error, kp_writer *out);

#endif
