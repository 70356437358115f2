/* kg_chaos — fault injection at the protocol layer.
 *
 * The chaos module decides; the engine (src/engine/kg_conn.c) carries out. A rule set is an
 * immutable, reference-counted snapshot: a connection takes the current snapshot when it
 * opens and re-takes it only when kg_chaos_generation() changed, so every decision is made on
 * one consistent view, and a connection whose rules match nothing stays on the header-only
 * pass-through path (kg_chaos_request_wanted() is the cheap pre-filter that keeps it there).
 *
 * Everything that understands Kafka messages lives here: matching topics, fabricating error
 * responses with the right encoding for the request's version, rewriting records. The engine
 * only delays, drops, duplicates, swaps bytes and shapes TCP.
 */
#ifndef KG_CHAOS_H
#define KG_CHAOS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/kp_prim.h"

typedef struct kg_store kg_store;
typedef struct kg_metrics kg_metrics;
typedef struct kg_chaos kg_chaos;         /* the registry: rules, persistence, snapshots */
typedef struct kg_chaos_set kg_chaos_set; /* one immutable snapshot of the active rules */

/* ---------------------------------------------------------------- registry (control plane) */

/* Loads persisted rules from STORE (may be NULL: in-memory only). Expired rules are dropped
 * (and logged). */
kg_chaos *kg_chaos_new(kg_store *store, kg_metrics *metrics);
void kg_chaos_free(kg_chaos *ch);

/* Adds a rule from its JSON form (the API body / one entry of the config's `chaos:` list).
 * Returns 0 and the stored rule (with id, created and expires times) in *RULE_OUT (new
 * reference, may be NULL), or -1 with a message naming the wrong field in ERR, or -2 when the
 * rule is valid but could not be stored (state store failure). Writes the audit entry
 * "chaos.rule.add" with ACTOR; kg_chaos_remove writes "chaos.rule.remove". */
int kg_chaos_add(kg_chaos *ch, json_t *rule, const char *actor, json_t **rule_out, char *err,
                 size_t errlen);
/* 0 removed, 1 no such rule. */
int kg_chaos_remove(kg_chaos *ch, const char *id, const char *actor);
/* The same, and *FINAL (new reference) gets the rule as listed, with its counters read once
 * no new decision can see it: what an experiment reports as injected. */
int kg_chaos_remove_final(kg_chaos *ch, const char *id, const char *actor, json_t **final);
json_t *kg_chaos_list(kg_chaos *ch);                /* array of rules with id, counters, expires */
json_t *kg_chaos_get(kg_chaos *ch, const char *id); /* one rule as listed, or NULL */
/* Replaces the rules that came from the config file (source "config") with RULES (a JSON
 * array), leaving API-made rules alone: `kgate reload` / SIGHUP. */
int kg_chaos_apply_config(kg_chaos *ch, json_t *rules, char *err, size_t errlen);
/* Drops expired rules; called about once a second by the gateway. */
void kg_chaos_expire(kg_chaos *ch);

/* ---------------------------------------------------------------- snapshots (data plane) */

uint64_t kg_chaos_generation(const kg_chaos *ch); /* changes whenever the rule set changes */
kg_chaos_set *kg_chaos_acquire(kg_chaos *ch);     /* never NULL; may be the empty set */
/* Another reference to SET (the engine keeps a set alive while a response it decided on is in
 * flight, because the action's `mutation` points into it). Returns SET. */
kg_chaos_set *kg_chaos_retain(kg_chaos_set *set);
void kg_chaos_release(kg_chaos_set *set);
bool kg_chaos_set_empty(const kg_chaos_set *set);

/* What a connection is, for scope matching. */
typedef struct kg_chaos_conn {
    const char *vcluster;
    kp_str client_id;      /* from the latest request header; null until the first request */
    const char *principal; /* "User:NAME" once SASL at kgate authenticated it, else NULL */
    int32_t node_id;       /* broker the client dialled; -1 = bootstrap port */
    uint64_t *rng;         /* the worker's random state (rates, random delays, bytes) */
} kg_chaos_conn;

/* ---------------------------------------------------------------- TCP faults */

#define KG_CHAOS_TCP_DOWN 1u        /* refuse: close at accept / on next request */
#define KG_CHAOS_TCP_RESET 2u       /* RST after reset_after_ms */
#define KG_CHAOS_TCP_TIMEOUT 4u     /* stop forwarding in the given direction(s), keep the socket */
#define KG_CHAOS_TCP_BANDWIDTH 8u   /* at most bandwidth_kib KiB/s per direction */
#define KG_CHAOS_TCP_SLICER 16u     /* writes of at most slice_bytes, slice_delay_us apart */
#define KG_CHAOS_TCP_LIMIT_DATA 32u /* close after limit_bytes in the given direction(s) */

#define KG_CHAOS_UPSTREAM 1u   /* client -> broker */
#define KG_CHAOS_DOWNSTREAM 2u /* broker -> client */

typedef struct kg_chaos_tcp {
    unsigned faults;     /* KG_CHAOS_TCP_* */
    unsigned directions; /* KG_CHAOS_UPSTREAM | KG_CHAOS_DOWNSTREAM, for
                            timeout/bandwidth/slicer/limit */
    uint32_t reset_after_ms;
    uint32_t bandwidth_kib;
    uint32_t slice_bytes;
    uint32_t slice_delay_us;
    uint64_t limit_bytes;
} kg_chaos_tcp;

/* TCP faults for a connection; evaluated at accept (client id unknown) and again after the
 * first request (client id known). Returns true when any applies. Counts the injection. */
bool kg_chaos_tcp_faults(const kg_chaos_set *set, const kg_chaos_conn *conn, kg_chaos_tcp *out);

/* auth-failure: true when a rule in scope of CONN (its principal being the one that just proved
 * its credentials) makes this authentication fail. Counts the injection. */
bool kg_chaos_auth_fails(const kg_chaos_set *set, const kg_chaos_conn *conn);

/* ---------------------------------------------------------------- request / response faults */

/* Cheap pre-filter on header facts only: could any rule act on this request? When false the
 * request is streamed through untouched. When true the engine buffers the whole request and
 * calls kg_chaos_on_request. */
bool kg_chaos_request_wanted(const kg_chaos_set *set, const kg_chaos_conn *conn, int16_t api_key,
                             int16_t api_version);

/* What to do with a request. Flags combine: delays go with anything; a partly in-scope
 * Produce reject is REPLACE_REQUEST | MUTATE_RESPONSE (the in-scope partitions are forwarded
 * without records, so nothing is written there, and their answers get the rule's error);
 * REJECT comes alone (plus delays). */
/* REJECT: answer with `response` (a fabricated body); do not forward. An empty `response`
 * (a Produce with acks=0) means: drop the request, answer nothing. */
#define KG_CHAOS_REJECT 1u
#define KG_CHAOS_LOST_ACK 2u      /* forward, then answer with `response` instead of the broker's */
#define KG_CHAOS_DELAY_REQUEST 4u /* hold the request delay_request_us before forwarding */
#define KG_CHAOS_DELAY_RESPONSE 8u   /* hold the response delay_response_us before delivering */
#define KG_CHAOS_FORWARD_TWICE 16u   /* forward the request twice; swallow the second response */
#define KG_CHAOS_REPLACE_REQUEST 32u /* forward `request` (a rewritten body) instead */
#define KG_CHAOS_MUTATE_RESPONSE 64u /* pass the broker's response through kg_chaos_on_response */

typedef struct kg_chaos_action {
    unsigned flags;
    uint64_t delay_request_us;
    uint64_t delay_response_us;
    kp_writer request;  /* body (after the request header) when KG_CHAOS_REPLACE_REQUEST */
    kp_writer response; /* body (after the response header) when REJECT / LOST_ACK */
    /* What kg_chaos_on_response must do (partition errors, records faults): a pointer into the
     * set that decided, valid while that set is retained (kg_chaos_retain); copying it out and
     * freeing the action is fine. Deciding allocates nothing for it. */
    const void *mutation;
} kg_chaos_action;

void kg_chaos_action_init(kg_chaos_action *act);
void kg_chaos_action_free(kg_chaos_action *act); /* the writers; ACT can be initialised again */

/* Decides what happens to one request (BODY = bytes after the request header). Returns 0 and
 * fills ACT (flags 0 = nothing), or -1 when the body cannot be decoded (the engine then
 * forwards it untouched: chaos never breaks traffic it does not understand). ACT must have
 * been initialised; what a previous decision left in it is discarded. */
int kg_chaos_on_request(const kg_chaos_set *set, const kg_chaos_conn *conn, int16_t api_key,
                        int16_t api_version, const uint8_t *body, size_t len, kg_chaos_action *act);

/* The answer to a whole partition-level request (Produce, Fetch, ListOffsets,
 * OffsetForLeaderEpoch, DeleteRecords; BODY after the request header) with ERROR in every
 * partition it names, at its version, into OUT (reset first); MESSAGE (or NULL) is Produce's
 * error message (v8+). Fetch v13+ names topics by id only. 0, or -1 when the API is none of
 * these or BODY does not decode. */
int kg_chaos_fabricate(int16_t api_key, int16_t api_version, const uint8_t *body, size_t len,
                       int16_t error, const char *message, kp_writer *out);

/* Rewrites a response body per ACT->mutation: partition errors (Produce, Fetch, ListOffsets,
 * OffsetForLeaderEpoch, DeleteRecords) and records faults (corrupt, duplicate, schema id on
 * Fetch). The new body is appended to OUT. Returns 1 rewritten into OUT, 0 unchanged, -1
 * undecodable (forward the original); on 0 and -1 OUT is as it was. */
int kg_chaos_on_response(const kg_chaos_set *set, const kg_chaos_action *act, int16_t api_key,
                         int16_t api_version, const uint8_t *body, size_t len, kp_writer *out);

/* Group scope: consumer groups are named in group requests, not in Fetch. When the set has
 * group-scoped rules, the engine shows every group request (JoinGroup, SyncGroup, Heartbeat,
 * OffsetCommit, OffsetFetch, LeaveGroup; whole body) to kg_chaos_observe, which remembers
 * client id -> group so that Fetch and Produce from the same client id match by group. */
bool kg_chaos_group_scoped(const kg_chaos_set *set);
bool kg_chaos_is_group_api(int16_t api_key);
void kg_chaos_observe(kg_chaos *ch, const kg_chaos_conn *conn, int16_t api_key, int16_t api_version,
                      const uint8_t *body, size_t len);

/* Topic ids: Fetch v13+ names topics by id, so topic-scoped rules can act on it only once the
 * id's name is known. When kg_chaos_wants_topic_ids(set), the engine shows Metadata responses
 * (whole body, v10+) to kg_chaos_observe_metadata; until an id is known, its partitions are
 * out of every topic scope (chaos never guesses). */
bool kg_chaos_wants_topic_ids(const kg_chaos_set *set);
void kg_chaos_observe_metadata(kg_chaos *ch, int16_t api_version, const uint8_t *body, size_t len);
void kg_chaos_learn_topic(kg_chaos *ch, const kp_uuid *id, const char *name, size_t len);

#endif
