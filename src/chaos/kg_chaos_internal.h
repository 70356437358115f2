/* kg_chaos_internal — what the chaos module's files share: the parsed rule, the snapshot, the
 * registry, and the helpers each file exports to the others. Not for use outside src/chaos. */
#ifndef KG_CHAOS_INTERNAL_H
#define KG_CHAOS_INTERNAL_H

#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "chaos/kg_chaos.h"
#include "kp_msgs.h"
#include "metrics/kg_metrics.h"
#include "proto/kp_prim.h"
#include "util/kg_err.h"
#include "util/kg_time.h"

/* ---------------------------------------------------------------- fault types */

typedef enum kg_chaos_type {
    KG_CHAOS_BROKEN_BROKERS,
    KG_CHAOS_LEADER_ELECTION,
    KG_CHAOS_LATENCY,
    KG_CHAOS_SLOW_BROKER,
    KG_CHAOS_SLOW_CLIENTS,
    KG_CHAOS_CORRUPT_RECORDS,
    KG_CHAOS_DUPLICATE_RECORDS,
    KG_CHAOS_INVALID_SCHEMA_ID,
    KG_CHAOS_AUTH_FAILURE,
    KG_CHAOS_DOWN,
    KG_CHAOS_RESET,
    KG_CHAOS_TIMEOUT,
    KG_CHAOS_BANDWIDTH,
    KG_CHAOS_SLICER,
    KG_CHAOS_LIMIT_DATA,
    KG_CHAOS_TYPE_COUNT
} kg_chaos_type;

const char *kg_chaos_type_name(kg_chaos_type type);
int kg_chaos_type_parse(const char *name, kg_chaos_type *out); /* 0 ok, -1 unknown */
bool kg_chaos_type_is_tcp(kg_chaos_type type);

#define KG_CHAOS_ID_MAX 65
#define KG_CHAOS_MAX_MUT 12 /* mutating rules per set (see kg_chaos_mutation) */
#define KG_CHAOS_MAX_ERRORS 8
#define KG_CHAOS_RATE_ONE 1000000u /* rates are kept in parts per million */

/* API keys the module understands at the partition level. */
#define KG_API_PRODUCE 0
#define KG_API_FETCH 1
#define KG_API_LIST_OFFSETS 2
#define KG_API_DELETE_RECORDS 21
#define KG_API_OFFSET_FOR_LEADER_EPOCH 23

/* A set of API keys, one bit per key (keys 0..127). */
typedef struct kg_api_bits {
    uint64_t w[2];
} kg_api_bits;

static inline bool kg_api_bits_has(const kg_api_bits *b, int16_t key)
{
    return key >= 0 && key < 128 && (b->w[key >> 6] >> (key & 63)) & 1u;
}
static inline void kg_api_bits_set(kg_api_bits *b, int16_t key)
{
    if (key >= 0 && key < 128) b->w[key >> 6] |= UINT64_C(1) << (key & 63);
}
static inline bool kg_api_bits_any(const kg_api_bits *b)
{
    return b->w[0] || b->w[1];
}

/* ---------------------------------------------------------------- a parsed, immutable rule */

typedef struct kg_chaos_rule {
    atomic_int refs;
    char id[KG_CHAOS_ID_MAX];
    kg_chaos_type type;
    bool from_config;
    int64_t created_ms;
    int64_t expires_ms; /* 0 = never */

    /* scope */
    char *vcluster;
    char *group;
    char *principal;
    bool has_topic, has_client;
    regex_t topic_re, client_re; /* anchored: the whole name must match */
    int32_t broker;              /* -1 = any */
    kg_api_bits apis;            /* the APIs this rule acts on (type's APIs ∩ the "api" field) */
    uint32_t rate_ppm;

    /* parameters (which ones mean something depends on the type) */
    int16_t produce_error, fetch_error;  /* broken-brokers; 0 = that API is not answered */
    bool lost_ack;                       /* broken-brokers mode */
    int16_t errors[KG_CHAOS_MAX_ERRORS]; /* leader-election: one is picked per injection */
    int n_errors;
    bool on_response;        /* latency "on": response; records faults "on": fetch */
    uint64_t min_us, max_us; /* delays; latency has min == max */
    uint32_t bytes;          /* corrupt-records */
    bool overwrite;          /* corrupt-records "how" */
    bool crc_valid;          /* corrupt-records "crc" */
    int32_t schema_id;       /* invalid-schema-id */
    kg_chaos_tcp tcp;        /* TCP faults: the one fault bit plus its parameters */

    json_t *json; /* the stored form: the body as given, normalized, with id and times */

    atomic_uint_fast64_t matched, injected;
    kg_counter *metric; /* kgate_chaos_injected_total{rule,type} */
} kg_chaos_rule;

/* Parses and validates one rule. FROM_STORE accepts the fields kgate itself adds (id,
 * created_at, source). NOW_MS is the creation time for "for". NULL with a message naming the
 * field in ERR. The rule has one reference and no id unless the JSON had one. */
kg_chaos_rule *kg_chaos_rule_parse(json_t *in, bool from_store, int64_t now_ms, char *err,
                                   size_t errlen);
kg_chaos_rule *kg_chaos_rule_ref(kg_chaos_rule *rule);
void kg_chaos_rule_unref(kg_chaos_rule *rule);
/* Sets the id and the stored JSON's id/created_at/expires_at/source fields. */
void kg_chaos_rule_finish(kg_chaos_rule *rule, const char *id, bool from_config);
/* The rule as listed: the stored JSON plus counters. New reference. */
json_t *kg_chaos_rule_to_json(const kg_chaos_rule *rule);

/* ---------------------------------------------------------------- Kafka errors */

/* Code of a Kafka error name (upper case, e.g. "NOT_LEADER_OR_FOLLOWER"); 0 found, -1 not. */
int kg_chaos_error_code(const char *name, int16_t *code);
const char *kg_chaos_error_name(int16_t code); /* NULL when unknown */
/* Whether API can return CODE per partition, and from which version (*MIN_VERSION). */
bool kg_chaos_error_allowed(int16_t api_key, int16_t code, int16_t *min_version);
/* Whether CODE is a leadership error (leader-election's vocabulary). */
bool kg_chaos_error_is_leadership(int16_t code);
/* Comma-separated names of the codes API can return (for error messages). */
void kg_chaos_error_list(int16_t api_key, char *buf, size_t len);

/* ---------------------------------------------------------------- snapshots and registry */

struct kg_chaos_set {
    atomic_int refs;
    kg_chaos *owner;
    int n;
    kg_chaos_rule **rules;
    kg_api_bits apis; /* union of the request-level rules' APIs */
    bool has_group;   /* some rule is scoped to a consumer group */
    bool has_tcp;
    bool wants_topic_ids; /* a topic-scoped rule acts on Fetch, which names topics by id (v13+) */
    int n_mut;            /* rules that mutate responses (error faults, records faults on fetch) */
    kg_chaos_rule *mut_rules[KG_CHAOS_MAX_MUT];
    uint8_t *mut_table; /* 1 << n_mut bytes; a mutation is a pointer into it (see below) */
};

/* A small bounded map of byte-string keys to strings (client id -> group, topic id -> name). */
typedef struct kg_chaos_map_entry {
    char *key;
    size_t key_len;
    char *value;
} kg_chaos_map_entry;

typedef struct kg_chaos_map {
    kg_chaos_map_entry *slots;
    size_t cap, used;
} kg_chaos_map;

struct kg_chaos {
    pthread_mutex_t lock; /* rules, current, store writes */
    kg_store *store;
    kg_metrics *metrics;
    kg_gauge *rules_gauge;
    kg_chaos_rule **rules; /* in creation order */
    int n_rules, cap_rules;
    kg_chaos_set *current;
    atomic_uint_fast64_t generation;

    pthread_rwlock_t maps_lock;
    kg_chaos_map groups;    /* "vcluster\0client id" -> group */
    kg_chaos_map topic_ids; /* 16-byte uuid -> topic name */
};

/* Copies the group of (VCLUSTER, CLIENT_ID) into BUF; false when unknown. */
bool kg_chaos_lookup_group(kg_chaos *ch, const char *vcluster, kp_str client_id, char *buf,
                           size_t len);
/* The name of topic ID as an arena copy; null kp_str when unknown. */
kp_str kg_chaos_lookup_topic(kg_chaos *ch, const kp_uuid *id, kp_arena *a);

/* ---------------------------------------------------------------- matching */

/* Anchored match of REGEX against the slice S (not NUL-terminated). */
bool kg_chaos_regex_slice(const regex_t *re, const char *s, size_t len);
/* Connection-level scope: vcluster, broker, principal, client id, group. */
bool kg_chaos_match_conn(const kg_chaos_set *set, const kg_chaos_rule *rule,
                         const kg_chaos_conn *conn);
bool kg_chaos_match_topic(const kg_chaos_rule *rule, kp_str topic);
/* Rolls the rule's rate. */
bool kg_chaos_roll(const kg_chaos_rule *rule, uint64_t *rng);
uint64_t kg_chaos_random_between(uint64_t *rng, uint64_t lo, uint64_t hi);
/* The worker's random state, or a thread-local one when the connection has none. */
uint64_t *kg_chaos_rng(const kg_chaos_conn *conn);
void kg_chaos_count_injected(kg_chaos_rule *rule);
void kg_chaos_count_matched(kg_chaos_rule *rule);

/* ---------------------------------------------------------------- mutations */

/* A decision's `mutation` points into its set's mut_table: the byte at index MASK stands for
 * "apply the set's mutating rules whose bits are in MASK". So a mutation is owned by the set
 * (alive while the set is retained) and deciding allocates nothing. Rules past the first
 * KG_CHAOS_MAX_MUT mutating rules of a set never mutate responses. */
/* What kg_chaos_on_response does to one response, rebuilt from the mask. */
typedef struct kg_chaos_mutation {
    int n_err; /* partition errors: partitions of topics RULE matches get ERROR */
    struct {
        kg_chaos_rule *rule;
        int16_t error;
    } err[KG_CHAOS_MAX_MUT];
    int n_rec; /* records faults on Fetch responses */
    kg_chaos_rule *rec[KG_CHAOS_MAX_MUT];
    uint64_t *rng;
} kg_chaos_mutation;

/* Whether RULE is decided at request time but applied to the response. */
bool kg_chaos_rule_mutates(const kg_chaos_rule *rule);
/* The error RULE injects into API at VERSION, 0 when none applies there. */
int16_t kg_chaos_pick_error(const kg_chaos_rule *rule, int16_t api, int16_t version, uint64_t *rng);

/* Records faults on a records blob (corrupt, duplicate, schema id): every rule in OPS (the
 * caller has matched their topics) is applied per record with its rate. Returns 1 rewritten
 * into OUT (arena memory), 0 unchanged, -1 malformed. INJECTED[i] is set when OPS[i] changed
 * something. */
int kg_chaos_mutate_records(kg_chaos_rule *const *ops, int n_ops, kp_bytes in, uint64_t *rng,
                            kp_arena *a, kp_bytes *out, bool *injected);

/* Produce request rewriting for records faults on produce: 1 rewritten into OUT, 0 not. */
int kg_chaos_rewrite_produce(kg_chaos_rule *const *ops, int n_ops, int16_t version,
                             const uint8_t *body, size_t len, uint64_t *rng, kp_writer *out,
                             bool *injected);

/* "injected by kgate chaos rule ID", for error_message fields. */
kp_str kg_chaos_injected_message(kp_arena *a, const kg_chaos_rule *rule);
extern const uint8_t kg_chaos_no_records[1]; /* an empty, non-null records field */

/* One partition answered with an error, as a broker would (offsets -1, no records). */
void kg_chaos_produce_partition_error(kp_produce_response_partition_produce_response *p,
                                      int32_t index, int16_t error, kp_str message);
void kg_chaos_fetch_partition_error(kp_fetch_response_partition_data *p, int32_t index,
                                    int16_t error);
void kg_chaos_list_offsets_partition_error(
    kp_list_offsets_response_list_offsets_partition_response *p, int32_t index, int16_t error);
void kg_chaos_ofle_partition_error(kp_offset_for_leader_epoch_response_epoch_end_offset *p,
                                   int32_t index, int16_t error);
void kg_chaos_delete_records_partition_error(
    kp_delete_records_response_delete_records_partition_result *p, int32_t index, int16_t error);

#endif
