/* kg_authz — the authorize stage of the request path (`acls: enabled`), with the decisions of
 * kg_acl and the answers a Kafka broker gives.
 *
 * A request is looked at as its API's resources (topics, groups, transactional ids, the
 * cluster) and the operation each needs, as Kafka's brokers check them:
 *   - every resource allowed: the request goes on untouched;
 *   - a request about one resource that is denied (a group's JoinGroup, a transaction's EndTxn,
 *     DescribeCluster, ...): kgate answers it itself with the API's error code
 *     (GROUP_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
 *     CLUSTER_AUTHORIZATION_FAILED) and nothing reaches a cluster;
 *   - a request about several resources, some of them denied (Produce, Fetch, ListOffsets,
 *     Metadata, OffsetCommit, OffsetFetch, DescribeGroups, DescribeConfigs, CreatePartitions,
 *     ...): the denied names are overwritten, in place and with the same length, by stand-ins
 *     (punctuation Kafka refuses in topic names, and no application uses in a group or
 *     transactional id), so the cluster acts on the allowed ones only and answers the others
 *     with an error; the answer is then patched back: the real names with the authorization
 *     error (TOPIC_, GROUP_, CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED). Renaming in
 *     place keeps the frame's size, so Produce records still stream (kg_authz_produce_walk)
 *     and nothing is buffered for it;
 *   - Metadata answers lose the topics the principal may not Describe (a request for every
 *     topic), or carry TOPIC_AUTHORIZATION_FAILED for them (a request naming them), as a broker
 *     does; ListGroups and ListTransactions answers lose what it may not Describe.
 * The stage decides and edits; the engine moves bytes (kg_conn).
 */
#ifndef KG_AUTHZ_H
#define KG_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#include "proto/kp_prim.h"
#include "security/kg_acl.h"

/* Who asks: the ACL snapshot, "User:NAME" ("User:ANONYMOUS" when unauthenticated) and the peer
 * address as kg_acl_canonical_host writes it. */
typedef struct kg_authz_who {
    const kg_acl_set *acls;
    const char *principal;
    const char *host;
} kg_authz_who;

/* What a response needs: the denied topics' stand-in names and real names, and filters. */
typedef struct kg_authz_patch {
    int n, cap;
    struct kg_authz_renamed {
        char *stand_in, *original; /* malloc'd, LEN bytes each */
        int32_t len;
    } * topics;
    int filter_topics;  /* Metadata, DescribeTopicPartitions: topics it may not Describe */
    int all_topics;     /* ... the request asked for every topic: drop them */
    int filter_listing; /* ListGroups, ListTransactions: what it may not Describe */
    int8_t key_type;    /* FindCoordinator: its keys are groups (0) or transactions (1) */
} kg_authz_patch;

enum {
    KG_AUTHZ_PASS = 0, /* forward as it is */
    KG_AUTHZ_ANSWER,   /* kgate answers: `answer` is the response body (after its header) */
    KG_AUTHZ_PATCH,    /* forward (denied names renamed in BODY); kg_authz_response fixes the
                        * answer with `patch` */
    KG_AUTHZ_CLOSE,    /* denied and the API has no way to say so: close, `why` says what */
};

typedef struct kg_authz_verdict {
    int action;
    kp_writer answer;
    kg_authz_patch *patch; /* PATCH: malloc'd, the caller frees it (kg_authz_patch_free) */
    char why[160];         /* the first denial: "Write on topic orders" (for logs) */
} kg_authz_verdict;

/* Produce and Fetch name topics by id from v13: kgate offers them up to this version only on a
 * virtual cluster with ACLs, and refuses newer ones. */
#define KG_AUTHZ_MAX_NAMED_VERSION 12

void kg_authz_verdict_init(kg_authz_verdict *v);
void kg_authz_verdict_free(kg_authz_verdict *v); /* not the patch the caller took */

/* BODY: the whole request body after its header (LEN bytes), writable: denied topic names are
 * renamed in it. 0, or -1 when the body does not decode (the engine validated it before). */
int kg_authz_request(const kg_authz_who *who, int16_t api_key, int16_t version, uint8_t *body,
                     size_t len, kg_authz_verdict *v);

/* The broker's answer BODY (after its header) with P applied, into W. 0, or -1 when it does not
 * decode. WHO: for the Metadata and ListGroups filters. */
int kg_authz_response(const kg_authz_patch *p, const kg_authz_who *who, int16_t api_key,
                      int16_t version, const uint8_t *body, size_t len, kp_writer *w);

/* Renames topic NAME (LEN bytes, writable, in the request) when WHO may not do OP on it;
 * records it in *P (allocated on first use). 1 denied (renamed), 0 allowed, -1 out of memory or
 * no stand-in left for that length. */
int kg_authz_topic(const kg_authz_who *who, uint8_t *name, int32_t len, kg_acl_op op,
                   kg_authz_patch **p);

void kg_authz_patch_free(kg_authz_patch *p);

/* ---- Produce, streamed: where the topic names are in a request that goes by in pieces ---- */

typedef struct kg_authz_produce_walk {
    int16_t version;
    int flexible;
    int state, after_tags, skip_then;
    int32_t topics_left, parts_left;
    uint32_t tags_left;
    uint64_t skip; /* bytes still to pass as they are (records, tagged fields) */
} kg_authz_produce_walk;

enum {
    KG_WALK_NEED = 0, /* the next field is not all here yet */
    KG_WALK_PASS,     /* *N bytes may go on */
    KG_WALK_TOPIC,    /* a topic name is at NAME_OFF (NAME_LEN bytes); *N bytes take it in */
    KG_WALK_DONE,     /* the body ended here */
    KG_WALK_BAD,      /* malformed */
};

void kg_authz_produce_walk_init(kg_authz_produce_walk *w, int16_t version);
/* Looks at the AVAIL bytes at the walk's position (all of the body that is here and not passed
 * yet). Returns a KG_WALK_ value; *N is how many bytes it consumed (pass them on). */
int kg_authz_produce_walk_step(kg_authz_produce_walk *w, const uint8_t *p, size_t avail, size_t *n,
                               size_t *name_off, int32_t *name_len);

#endif
