#include "security/kg_authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_wire.h"
#include "kp_msgs.h"

/* Kafka's error codes for what a principal may not do. */
#define TOPIC_AUTHORIZATION_FAILED 29
#define GROUP_AUTHORIZATION_FAILED 30
#define CLUSTER_AUTHORIZATION_FAILED 31
#define TRANSACTIONAL_ID_AUTHORIZATION_FAILED 53

void kg_authz_verdict_init(kg_authz_verdict *v)
{
    memset(v, 0, sizeof(*v));
    kp_writer_init(&v->answer, 0);
}

void kg_authz_verdict_free(kg_authz_verdict *v)
{
    kp_writer_free(&v->answer);
}

void kg_authz_patch_free(kg_authz_patch *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->topics[i].stand_in);
        free(p->topics[i].original);
    }
    free(p->topics);
    free(p);
}

static int allowed(const kg_authz_who *who, kg_acl_resource type, kp_str name, kg_acl_op op)
{
    if (name.len < 0) return 0;
    return kg_acl_allowed(who->acls, who->principal, who->host, type, name.len ? name.ptr : "",
                          (size_t)name.len, op);
}

static void note_denial(kg_authz_verdict *v, kg_acl_op op, kg_acl_resource type, kp_str name)
{
    if (v->why[0]) return;
    snprintf(v->why, sizeof(v->why), "%s on %s %.*s", kg_acl_op_name(op),
             kg_acl_resource_name(type), name.len > 0 ? (int)(name.len > 100 ? 100 : name.len) : 0,
             name.len > 0 ? name.ptr : "");
}

static kp_str cluster_name(void)
{
    return kp_str_c(KG_ACL_CLUSTER_NAME);
}

/* ---------------------------------------------------------------- stand-in topic names */

/* Characters Kafka refuses in topic names ([a-zA-Z0-9._-] only): a name made of them can exist
 * on no cluster, so a renamed topic is never written to nor read from. */
static const char stand_in_chars[] = "!#$%&()*+,:;<=>?@[]^{|}~";
#define STAND_IN_BASE ((int)sizeof(stand_in_chars) - 1)

/* The K-th stand-in of LEN bytes into OUT; -1 when LEN bytes cannot count that far. */
static int stand_in(int k, int32_t len, char *out)
{
    memset(out, '!', (size_t)len);
    for (int32_t i = len - 1; i >= 0 && k > 0; i--) {
        out[i] = stand_in_chars[k % STAND_IN_BASE];
        k /= STAND_IN_BASE;
    }
    return k == 0 ? 0 : -1;
}

static int patch_add(kg_authz_patch **pp, uint8_t *name, int32_t len)
{
    kg_authz_patch *p = *pp;
    if (!p && !(p = *pp = calloc(1, sizeof(*p)))) return -1;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 4;
        void *t = realloc(p->topics, (size_t)cap * sizeof(*p->topics));
        if (!t) return -1;
        p->topics = t;
        p->cap = cap;
    }
    struct kg_authz_renamed *r = &p->topics[p->n];
    r->len = len;
    r->original = malloc((size_t)len + 1);
    r->stand_in = malloc((size_t)len + 1);
    if (!r->original || !r->stand_in || stand_in(p->n, len, r->stand_in) < 0) {
        free(r->original);
        free(r->stand_in);
        return -1;
    }
    memcpy(r->original, name, (size_t)len);
    memcpy(name, r->stand_in, (size_t)len);
    p->n++;
    return 0;
}

int kg_authz_topic(const kg_authz_who *who, uint8_t *name, int32_t len, kg_acl_op op,
                   kg_authz_patch **p)
{
    if (len <= 0) return 0; /* a null name (a topic id) is the cluster's to answer */
    if (kg_acl_allowed(who->acls, who->principal, who->host, KG_ACL_TOPIC, (const char *)name,
                       (size_t)len, op))
        return 0;
    return patch_add(p, name, len) < 0 ? -1 : 1;
}

/* OP on the resource (TYPE, NAME) is denied: TARGET, the bytes that name it in the request
 * (writable), becomes a stand-in, or the connection closes when there are none to rename. */
static int rename_denied(kg_authz_verdict *v, kg_acl_op op, kg_acl_resource type, kp_str name,
                         kp_str target)
{
    note_denial(v, op, type, name); /* before the name is overwritten */
    if (target.len <= 0) {
        v->action = KG_AUTHZ_CLOSE;
        return 0;
    }
    return patch_add(&v->patch, (uint8_t *)target.ptr, target.len);
}

/* Renames topic S of the request when OP is denied. An empty or null name (a topic id) is
 * the cluster's to answer: no topic has it. */
static int check_topic(const kg_authz_who *who, kg_authz_verdict *v, kp_str s, kg_acl_op op)
{
    if (s.len <= 0 || allowed(who, KG_ACL_TOPIC, s, op)) return 0;
    return rename_denied(v, op, KG_ACL_TOPIC, s, s);
}

/* The same for group and transactional ids. Their stand-ins are valid ids, but made of
 * punctuation only, of the same length as a denied id: names no application picks. What the
 * cluster answers about them is replaced by the authorization error anyway. */
static int check_names(const kg_authz_who *who, kg_authz_verdict *v, kg_acl_resource type,
                       const kp_str *names, int32_t count, kg_acl_op op)
{
    for (int32_t i = 0; i < count; i++)
        if (names[i].len >= 0 && !allowed(who, type, names[i], op) &&
            rename_denied(v, op, type, names[i], names[i]) < 0)
            return -1;
    return 0;
}

/* ---------------------------------------------------------------- answers kgate makes */

/* The answer kgate encoded into v->answer is the response (or, when it failed, close). */
static int answered(kg_authz_verdict *v)
{
    v->action = v->answer.err ? KG_AUTHZ_CLOSE : KG_AUTHZ_ANSWER;
    return 0;
}

/* The API's response with only its top-level error_code set, when it has one at VERSION. */
static int answer_error(kg_authz_verdict *v, int16_t api, int16_t version, int16_t code)
{
    const kp_api_info *info = kp_api_get(api);
    const kp_msg_codec *c = info ? info->response : NULL;
    if (!c || c->error_code_offset < 0 || version < c->error_code_min ||
        version > c->error_code_max)
        return -1;
    void *m = calloc(1, c->size);
    if (!m) return -1;
    c->init(m);
    memcpy((char *)m + c->error_code_offset, &code, sizeof(code));
    kp_writer_reset(&v->answer);
    c->encode(&v->answer, version, m);
    free(m);
    return answered(v);
}

/* Denied: answer with CODE, or close when the API cannot carry it at this version. */
static int deny(kg_authz_verdict *v, int16_t api, int16_t version, int16_t code)
{
    if (answer_error(v, api, version, code) < 0) v->action = KG_AUTHZ_CLOSE;
    return 0;
}

/* OUT (a response's topics) gets REQ's topics (a request's), every partition with CODE:
 * OUT_PARTS / OUT_ERR name the response's fields, REQ_PARTS the request's, INDEX(p) a request
 * partition's index. Returns -1 from the caller when out of memory. */
#define ANSWER_PARTITIONS(a, req, out, out_parts, out_err, req_parts, INDEX, code)                 \
    do {                                                                                           \
        (out).count = (req).count > 0 ? (req).count : 0;                                           \
        (out).items = kp_arena_calloc(a, (size_t)(out).count + 1, sizeof(*(out).items));           \
        if (!(out).items) return -1;                                                               \
        for (int32_t i_ = 0; i_ < (out).count; i_++) {                                             \
            __typeof__((req).items[0].req_parts) *rp_ = &(req).items[i_].req_parts;                \
            __typeof__((out).items[0].out_parts) *op_ = &(out).items[i_].out_parts;                \
            (out).items[i_].name = (req).items[i_].name;                                           \
            op_->count = rp_->count > 0 ? rp_->count : 0;                                          \
            op_->items = kp_arena_calloc(a, (size_t)op_->count + 1, sizeof(*op_->items));          \
            if (!op_->items) return -1;                                                            \
            for (int32_t j_ = 0; j_ < op_->count; j_++) {                                          \
                op_->items[j_].partition_index = INDEX(&rp_->items[j_]);                           \
                op_->items[j_].out_err = (code);                                                   \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define FIELD_PARTITION_INDEX(p) ((p)->partition_index)
#define ITEM_VALUE(p) (*(p))

/* The first string of a request body: the group or transactional id most group and
 * transaction APIs start with. */
static int first_string(int16_t api, int16_t version, const uint8_t *body, size_t len, kp_str *out)
{
    const kp_api_info *info = kp_api_get(api);
    kp_reader r;
    kp_reader_init(&r, body, len);
    int flexible = info && info->flexible_min >= 0 && version >= info->flexible_min;
    int64_t n = flexible ? (int64_t)kp_read_uvarint(&r) - 1 : kp_read_i16(&r);
    const uint8_t *p = n > 0 ? kp_read_skip(&r, (size_t)n) : NULL;
    if (r.err) return -1;
    *out = n < 0 ? KP_STR_NULL : (kp_str){(const char *)p, (int32_t)n};
    return 0;
}

/* ---------------------------------------------------------------- requests, per API */

#define DECODE(type, var)                                                                          \
    type var;                                                                                      \
    type##_init(&var);                                                                             \
    kp_reader r;                                                                                   \
    kp_reader_init(&r, body, len);                                                                 \
    if (type##_decode(&r, a, version, &var) < 0 || r.err) return -1

/* A broker's own request (a follower's Fetch or OffsetForLeaderEpoch): ClusterAction, which no
 * client has; denied, it is closed, as there is nothing a client could do with an answer. */
static int broker_only(const kg_authz_who *who, kg_authz_verdict *v)
{
    if (allowed(who, KG_ACL_CLUSTER, cluster_name(), KG_ACL_CLUSTER_ACTION)) return 0;
    note_denial(v, KG_ACL_CLUSTER_ACTION, KG_ACL_CLUSTER, cluster_name());
    v->action = KG_AUTHZ_CLOSE;
    return 0;
}

static int on_fetch(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                    const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_fetch_request, m);
    if (m.replica_id >= 0 || (m.has_replica_state && m.replica_state.replica_id >= 0))
        return broker_only(who, v);
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].topic, KG_ACL_READ) < 0) return -1;
    for (int32_t i = 0; i < m.forgotten_topics_data.count; i++)
        if (check_topic(who, v, m.forgotten_topics_data.items[i].topic, KG_ACL_READ) < 0) return -1;
    return 0;
}

static int on_list_offsets(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                           const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_list_offsets_request, m);
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DESCRIBE) < 0) return -1;
    return 0;
}

/* Consumers ask it to validate their position after a leader change (KIP-320). */
static int on_offset_for_leader_epoch(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                                      const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_offset_for_leader_epoch_request, m);
    if (m.replica_id >= 0) return broker_only(who, v);
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].topic, KG_ACL_DESCRIBE) < 0) return -1;
    return 0;
}

/* A Metadata request naming a stand-in must not ask for auto-creation: Kafka refuses such a
 * name anyway, but a lenient broker (librdkafka's mock cluster) would create it. BODY (LEN
 * bytes, the stand-ins already in it) is rewritten with the flag off when the re-encoded
 * request has the very same length, which it has: one boolean byte changes. */
static void no_auto_creation(uint8_t *body, size_t len, int16_t version, kp_metadata_request *m)
{
    m->allow_auto_topic_creation = false;
    kp_writer w;
    kp_writer_init(&w, len);
    kp_metadata_request_encode(&w, version, m);
    if (!w.err && w.len == len) memcpy(body, w.buf, len);
    kp_writer_free(&w);
}

static int on_metadata(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                       const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_metadata_request, m);
    /* Named topics the principal may not Describe are renamed, so asking cannot create them
     * (auto-creation); the answer names them again with TOPIC_AUTHORIZATION_FAILED. */
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DESCRIBE) < 0) return -1;
    if (v->patch && v->patch->n > 0 && version >= 4 && m.allow_auto_topic_creation)
        no_auto_creation((uint8_t *)body, len, version, &m);
    if (!v->patch && !(v->patch = calloc(1, sizeof(*v->patch)))) return -1;
    v->patch->filter_topics = 1;
    v->patch->all_topics = m.topics.count < 0 || (version == 0 && m.topics.count == 0);
    return 0;
}

/* DescribeTopicPartitions (KIP-966): as Metadata; no topics named means every topic. */
static int on_describe_topic_partitions(const kg_authz_who *who, kg_authz_verdict *v,
                                        int16_t version, const uint8_t *body, size_t len,
                                        kp_arena *a)
{
    DECODE(kp_describe_topic_partitions_request, m);
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DESCRIBE) < 0) return -1;
    if (!v->patch && !(v->patch = calloc(1, sizeof(*v->patch)))) return -1;
    v->patch->filter_topics = 1;
    v->patch->all_topics = m.topics.count <= 0;
    return 0;
}

static int on_offset_commit(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                            const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_offset_commit_request, m);
    if (!allowed(who, KG_ACL_GROUP, m.group_id, KG_ACL_READ)) {
        note_denial(v, KG_ACL_READ, KG_ACL_GROUP, m.group_id);
        kp_offset_commit_response out;
        kp_offset_commit_response_init(&out);
        ANSWER_PARTITIONS(a, m.topics, out.topics, partitions, error_code, partitions,
                          FIELD_PARTITION_INDEX, GROUP_AUTHORIZATION_FAILED);
        kp_offset_commit_response_encode(&v->answer, version, &out);
        return answered(v);
    }
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_READ) < 0) return -1;
    return 0;
}

static int on_offset_fetch(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                           const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_offset_fetch_request, m);
    if (version < 8) {
        if (!allowed(who, KG_ACL_GROUP, m.group_id, KG_ACL_DESCRIBE)) {
            note_denial(v, KG_ACL_DESCRIBE, KG_ACL_GROUP, m.group_id);
            return deny(v, KP_KEY_OFFSET_FETCH, version, GROUP_AUTHORIZATION_FAILED);
        }
        for (int32_t i = 0; i < m.topics.count; i++)
            if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DESCRIBE) < 0) return -1;
        return 0;
    }
    /* v8+: several groups; a denied one is renamed and answered GROUP_AUTHORIZATION_FAILED */
    for (int32_t g = 0; g < m.groups.count; g++) {
        kp_offset_fetch_request_offset_fetch_request_group *grp = &m.groups.items[g];
        if (!allowed(who, KG_ACL_GROUP, grp->group_id, KG_ACL_DESCRIBE)) {
            if (rename_denied(v, KG_ACL_DESCRIBE, KG_ACL_GROUP, grp->group_id, grp->group_id) < 0)
                return -1;
            continue;
        }
        for (int32_t i = 0; i < grp->topics.count; i++)
            if (check_topic(who, v, grp->topics.items[i].name, KG_ACL_DESCRIBE) < 0) return -1;
    }
    return 0;
}

static int on_find_coordinator(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                               const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_find_coordinator_request, m);
    kg_acl_resource type = m.key_type == 1 ? KG_ACL_TRANSACTIONAL_ID : KG_ACL_GROUP;
    if (version < 4) {
        if (allowed(who, type, m.key, KG_ACL_DESCRIBE)) return 0;
        note_denial(v, KG_ACL_DESCRIBE, type, m.key);
        /* as a broker answers: no coordinator (-1), and no message, so that clients print
         * the code's own words ("Group authorization failed") */
        kp_find_coordinator_response out;
        kp_find_coordinator_response_init(&out);
        out.error_code = type == KG_ACL_GROUP ? GROUP_AUTHORIZATION_FAILED
                                              : TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        out.error_message = KP_STR_NULL;
        out.node_id = -1;
        out.host = kp_str_c("");
        out.port = -1;
        kp_find_coordinator_response_encode(&v->answer, version, &out);
        return answered(v);
    }
    if (check_names(who, v, type, m.coordinator_keys.items, m.coordinator_keys.count,
                    KG_ACL_DESCRIBE) < 0)
        return -1;
    if (v->patch) v->patch->key_type = m.key_type;
    return 0;
}

/* APIs about one group (its id first in the request): Read, or Delete for OffsetDelete. */
static int on_group(const kg_authz_who *who, kg_authz_verdict *v, int16_t api, int16_t version,
                    const uint8_t *body, size_t len)
{
    kp_str group;
    if (first_string(api, version, body, len, &group) < 0) return -1;
    kg_acl_op op = api == KP_KEY_OFFSET_DELETE ? KG_ACL_DELETE : KG_ACL_READ;
    if (allowed(who, KG_ACL_GROUP, group, op)) return 0;
    note_denial(v, op, KG_ACL_GROUP, group);
    return deny(v, api, version, GROUP_AUTHORIZATION_FAILED);
}

/* APIs about several groups, transactional ids or topics named in one array of strings or of
 * entries with a name: every denied one renamed, answered with its error. */
static int on_named(const kg_authz_who *who, kg_authz_verdict *v, int16_t api, int16_t version,
                    const uint8_t *body, size_t len, kp_arena *a)
{
    switch (api) {
    case KP_KEY_DESCRIBE_GROUPS: {
        DECODE(kp_describe_groups_request, m);
        return check_names(who, v, KG_ACL_GROUP, m.groups.items, m.groups.count, KG_ACL_DESCRIBE);
    }
    case KP_KEY_CONSUMER_GROUP_DESCRIBE: {
        DECODE(kp_consumer_group_describe_request, m);
        return check_names(who, v, KG_ACL_GROUP, m.group_ids.items, m.group_ids.count,
                           KG_ACL_DESCRIBE);
    }
    case KP_KEY_DELETE_GROUPS: {
        DECODE(kp_delete_groups_request, m);
        return check_names(who, v, KG_ACL_GROUP, m.groups_names.items, m.groups_names.count,
                           KG_ACL_DELETE);
    }
    case KP_KEY_DESCRIBE_TRANSACTIONS: {
        DECODE(kp_describe_transactions_request, m);
        return check_names(who, v, KG_ACL_TRANSACTIONAL_ID, m.transactional_ids.items,
                           m.transactional_ids.count, KG_ACL_DESCRIBE);
    }
    case KP_KEY_DELETE_RECORDS: {
        DECODE(kp_delete_records_request, m);
        for (int32_t i = 0; i < m.topics.count; i++)
            if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DELETE) < 0) return -1;
        return 0;
    }
    case KP_KEY_CREATE_PARTITIONS: {
        DECODE(kp_create_partitions_request, m);
        for (int32_t i = 0; i < m.topics.count; i++)
            if (check_topic(who, v, m.topics.items[i].name, KG_ACL_ALTER) < 0) return -1;
        return 0;
    }
    case KP_KEY_DESCRIBE_PRODUCERS: {
        DECODE(kp_describe_producers_request, m);
        for (int32_t i = 0; i < m.topics.count; i++)
            if (check_topic(who, v, m.topics.items[i].name, KG_ACL_READ) < 0) return -1;
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- configs: resources of several types in one request ---- */

/* Kafka's ConfigResource types. */
#define CONFIG_TOPIC 2
#define CONFIG_GROUP 32

/* Topics and groups are checked by name; brokers, broker loggers and client metrics are the
 * cluster's. */
static kg_acl_resource config_acl_type(int8_t type)
{
    return type == CONFIG_TOPIC   ? KG_ACL_TOPIC
           : type == CONFIG_GROUP ? KG_ACL_GROUP
                                  : KG_ACL_CLUSTER;
}

static int16_t config_denied_code(int8_t type)
{
    kg_acl_resource t = config_acl_type(type);
    return t == KG_ACL_TOPIC   ? TOPIC_AUTHORIZATION_FAILED
           : t == KG_ACL_GROUP ? GROUP_AUTHORIZATION_FAILED
                               : CLUSTER_AUTHORIZATION_FAILED;
}

/* A denied resource's name becomes a stand-in: the cluster answers it with an error (no such
 * topic or group, or a broker id that is no number), which the answer then replaces. The
 * empty name of the cluster-wide broker defaults has no stand-in: denied, it closes. */
static int check_config(const kg_authz_who *who, kg_authz_verdict *v, int8_t type, kp_str name,
                        kg_acl_op op)
{
    kg_acl_resource t = config_acl_type(type);
    kp_str acl_name = t == KG_ACL_CLUSTER ? cluster_name() : name;
    if (allowed(who, t, acl_name, op)) return 0;
    return rename_denied(v, op, t, acl_name, name);
}

#define CHECK_CONFIGS(type, op)                                                                    \
    do {                                                                                           \
        DECODE(type, m);                                                                           \
        for (int32_t i = 0; i < m.resources.count; i++)                                            \
            if (check_config(who, v, m.resources.items[i].resource_type,                           \
                             m.resources.items[i].resource_name, op) < 0)                          \
                return -1;                                                                         \
        return 0;                                                                                  \
    } while (0)

static int on_configs(const kg_authz_who *who, kg_authz_verdict *v, int16_t api, int16_t version,
                      const uint8_t *body, size_t len, kp_arena *a)
{
    if (api == KP_KEY_DESCRIBE_CONFIGS)
        CHECK_CONFIGS(kp_describe_configs_request, KG_ACL_DESCRIBE_CONFIGS);
    if (api == KP_KEY_ALTER_CONFIGS) CHECK_CONFIGS(kp_alter_configs_request, KG_ACL_ALTER_CONFIGS);
    CHECK_CONFIGS(kp_incremental_alter_configs_request, KG_ACL_ALTER_CONFIGS);
}

/* ---- transactions ---- */

/* 1 (noted) when Write on transactional id TXN is denied, else 0. */
static int deny_transaction(const kg_authz_who *who, kg_authz_verdict *v, kp_str txn)
{
    if (allowed(who, KG_ACL_TRANSACTIONAL_ID, txn, KG_ACL_WRITE)) return 0;
    note_denial(v, KG_ACL_WRITE, KG_ACL_TRANSACTIONAL_ID, txn);
    return 1;
}

/* An idempotent producer without a transaction: IdempotentWrite on the cluster, which Write on
 * any topic implies (as in Kafka since KIP-679). */
static int on_idempotent(const kg_authz_who *who, kg_authz_verdict *v, int16_t version)
{
    if (allowed(who, KG_ACL_CLUSTER, cluster_name(), KG_ACL_IDEMPOTENT_WRITE) ||
        kg_acl_allowed_any(who->acls, who->principal, who->host, KG_ACL_TOPIC, KG_ACL_WRITE))
        return 0;
    note_denial(v, KG_ACL_IDEMPOTENT_WRITE, KG_ACL_CLUSTER, cluster_name());
    return deny(v, KP_KEY_INIT_PRODUCER_ID, version, CLUSTER_AUTHORIZATION_FAILED);
}

/* APIs about one transaction (its id first): Write on it. */
static int on_transaction(const kg_authz_who *who, kg_authz_verdict *v, int16_t api,
                          int16_t version, const uint8_t *body, size_t len, kp_arena *a)
{
    kp_str txn;
    if (first_string(api, version, body, len, &txn) < 0) return -1;
    if (api == KP_KEY_INIT_PRODUCER_ID && txn.len < 0) return on_idempotent(who, v, version);
    if (deny_transaction(who, v, txn))
        return deny(v, api, version, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    if (api == KP_KEY_ADD_OFFSETS_TO_TXN) {
        DECODE(kp_add_offsets_to_txn_request, m);
        if (!allowed(who, KG_ACL_GROUP, m.group_id, KG_ACL_READ)) {
            note_denial(v, KG_ACL_READ, KG_ACL_GROUP, m.group_id);
            return deny(v, api, version, GROUP_AUTHORIZATION_FAILED);
        }
    }
    return 0;
}

/* AddPartitionsToTxn: Write on the transaction and on each topic. Versions 4+ are the
 * brokers' own (batched for several transactions). */
static int on_add_partitions_to_txn(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                                    const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_add_partitions_to_txn_request, m);
    if (version >= 4) return broker_only(who, v);
    if (deny_transaction(who, v, m.v3_and_below_transactional_id)) {
        kp_add_partitions_to_txn_response out;
        kp_add_partitions_to_txn_response_init(&out);
        ANSWER_PARTITIONS(a, m.v3_and_below_topics, out.results_by_topic_v3_and_below,
                          results_by_partition, partition_error_code, partitions, ITEM_VALUE,
                          TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        kp_add_partitions_to_txn_response_encode(&v->answer, version, &out);
        return answered(v);
    }
    /* a denied topic fails the whole request at the cluster: the others come back
     * OPERATION_NOT_ATTEMPTED, as from a broker that checks them itself */
    for (int32_t i = 0; i < m.v3_and_below_topics.count; i++)
        if (check_topic(who, v, m.v3_and_below_topics.items[i].name, KG_ACL_WRITE) < 0) return -1;
    return 0;
}

/* TxnOffsetCommit: Write on the transaction, Read on the group, Read on each topic. */
static int on_txn_offset_commit(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                                const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_txn_offset_commit_request, m);
    int16_t code = 0;
    if (deny_transaction(who, v, m.transactional_id)) {
        code = TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
    } else if (!allowed(who, KG_ACL_GROUP, m.group_id, KG_ACL_READ)) {
        note_denial(v, KG_ACL_READ, KG_ACL_GROUP, m.group_id);
        code = GROUP_AUTHORIZATION_FAILED;
    }
    if (code) {
        kp_txn_offset_commit_response out;
        kp_txn_offset_commit_response_init(&out);
        ANSWER_PARTITIONS(a, m.topics, out.topics, partitions, error_code, partitions,
                          FIELD_PARTITION_INDEX, code);
        kp_txn_offset_commit_response_encode(&v->answer, version, &out);
        return answered(v);
    }
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_READ) < 0) return -1;
    return 0;
}

static int on_create_topics(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                            const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_create_topics_request, m);
    if (allowed(who, KG_ACL_CLUSTER, cluster_name(), KG_ACL_CREATE)) return 0;
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_CREATE) < 0) return -1;
    return 0;
}

static int on_delete_topics(const kg_authz_who *who, kg_authz_verdict *v, int16_t version,
                            const uint8_t *body, size_t len, kp_arena *a)
{
    DECODE(kp_delete_topics_request, m);
    for (int32_t i = 0; i < m.topics.count; i++)
        if (m.topics.items[i].name.len < 0) { /* by topic id: no name to decide on */
            snprintf(v->why, sizeof(v->why), "DeleteTopics by topic id");
            v->action = KG_AUTHZ_CLOSE;
            return 0;
        }
    for (int32_t i = 0; i < m.topic_names.count; i++)
        if (check_topic(who, v, m.topic_names.items[i], KG_ACL_DELETE) < 0) return -1;
    for (int32_t i = 0; i < m.topics.count; i++)
        if (check_topic(who, v, m.topics.items[i].name, KG_ACL_DELETE) < 0) return -1;
    return 0;
}

/* The operation on the cluster an API needs, as brokers check it: quotas and client metrics
 * are configs; otherwise Describe for what only reads, Alter for the rest. */
static kg_acl_op cluster_op(int16_t api)
{
    switch (api) {
    case KP_KEY_DESCRIBE_CLIENT_QUOTAS:
    case KP_KEY_LIST_CLIENT_METRICS_RESOURCES:
        return KG_ACL_DESCRIBE_CONFIGS;
    case KP_KEY_ALTER_CLIENT_QUOTAS:
        return KG_ACL_ALTER_CONFIGS;
    default: {
        const char *name = kp_api_name(api);
        return strncmp(name, "Describe", 8) == 0 || strncmp(name, "List", 4) == 0 ? KG_ACL_DESCRIBE
                                                                                  : KG_ACL_ALTER;
    }
    }
}

/* Everything else (ACLs, quotas, log dirs, reassignments, leader elections, SCRAM users, ...):
 * an operation on the cluster. */
static int on_cluster(const kg_authz_who *who, kg_authz_verdict *v, int16_t api, int16_t version)
{
    kg_acl_op op = cluster_op(api);
    if (allowed(who, KG_ACL_CLUSTER, cluster_name(), op)) return 0;
    note_denial(v, op, KG_ACL_CLUSTER, cluster_name());
    return deny(v, api, version, CLUSTER_AUTHORIZATION_FAILED);
}

static int authorize(const kg_authz_who *who, int16_t api, int16_t version, const uint8_t *body,
                     size_t len, kg_authz_verdict *v, kp_arena *a)
{
    if ((api == KP_KEY_PRODUCE || api == KP_KEY_FETCH) && version > KG_AUTHZ_MAX_NAMED_VERSION) {
        /* topic ids, not names: never offered with ACLs, so a client sending it is refused */
        snprintf(v->why, sizeof(v->why), "%s v%d (topic ids)", kp_api_name(api), version);
        v->action = KG_AUTHZ_CLOSE;
        return 0;
    }
    switch (api) {
    case KP_KEY_API_VERSIONS:
    case KP_KEY_SASL_HANDSHAKE:
    case KP_KEY_SASL_AUTHENTICATE:
    case KP_KEY_GET_TELEMETRY_SUBSCRIPTIONS: /* KIP-714: brokers check nothing either */
    case KP_KEY_PUSH_TELEMETRY:
    case KP_KEY_PRODUCE: /* streamed: kg_authz_produce_walk */
        return 0;
    case KP_KEY_FETCH:
        return on_fetch(who, v, version, body, len, a);
    case KP_KEY_LIST_OFFSETS:
        return on_list_offsets(who, v, version, body, len, a);
    case KP_KEY_OFFSET_FOR_LEADER_EPOCH:
        return on_offset_for_leader_epoch(who, v, version, body, len, a);
    case KP_KEY_METADATA:
        return on_metadata(who, v, version, body, len, a);
    case KP_KEY_DESCRIBE_TOPIC_PARTITIONS:
        return on_describe_topic_partitions(who, v, version, body, len, a);
    case KP_KEY_OFFSET_COMMIT:
        return on_offset_commit(who, v, version, body, len, a);
    case KP_KEY_OFFSET_FETCH:
        return on_offset_fetch(who, v, version, body, len, a);
    case KP_KEY_FIND_COORDINATOR:
        return on_find_coordinator(who, v, version, body, len, a);
    case KP_KEY_JOIN_GROUP:
    case KP_KEY_SYNC_GROUP:
    case KP_KEY_HEARTBEAT:
    case KP_KEY_LEAVE_GROUP:
    case KP_KEY_OFFSET_DELETE:
    case KP_KEY_CONSUMER_GROUP_HEARTBEAT:
        return on_group(who, v, api, version, body, len);
    case KP_KEY_DESCRIBE_GROUPS:
    case KP_KEY_CONSUMER_GROUP_DESCRIBE:
    case KP_KEY_DELETE_GROUPS:
    case KP_KEY_DESCRIBE_TRANSACTIONS:
    case KP_KEY_DELETE_RECORDS:
    case KP_KEY_CREATE_PARTITIONS:
    case KP_KEY_DESCRIBE_PRODUCERS:
        return on_named(who, v, api, version, body, len, a);
    case KP_KEY_LIST_GROUPS:
    case KP_KEY_LIST_TRANSACTIONS:
        if (!(v->patch = calloc(1, sizeof(*v->patch)))) return -1;
        v->patch->filter_listing = 1;
        return 0;
    case KP_KEY_DESCRIBE_CONFIGS:
    case KP_KEY_ALTER_CONFIGS:
    case KP_KEY_INCREMENTAL_ALTER_CONFIGS:
        return on_configs(who, v, api, version, body, len, a);
    case KP_KEY_INIT_PRODUCER_ID:
    case KP_KEY_ADD_OFFSETS_TO_TXN:
    case KP_KEY_END_TXN:
        return on_transaction(who, v, api, version, body, len, a);
    case KP_KEY_ADD_PARTITIONS_TO_TXN:
        return on_add_partitions_to_txn(who, v, version, body, len, a);
    case KP_KEY_TXN_OFFSET_COMMIT:
        return on_txn_offset_commit(who, v, version, body, len, a);
    case KP_KEY_CREATE_TOPICS:
        return on_create_topics(who, v, version, body, len, a);
    case KP_KEY_DELETE_TOPICS:
        return on_delete_topics(who, v, version, body, len, a);
    default:
        return on_cluster(who, v, api, version);
    }
}

int kg_authz_request(const kg_authz_who *who, int16_t api_key, int16_t version, uint8_t *body,
                     size_t len, kg_authz_verdict *v)
{
    kp_arena a;
    kp_arena_init(&a);
    v->action = KG_AUTHZ_PASS;
    int rc = authorize(who, api_key, version, body, len, v, &a);
    kp_arena_free(&a);
    if (rc == 0 && v->action == KG_AUTHZ_PASS && v->patch) v->action = KG_AUTHZ_PATCH;
    if (rc < 0 || v->action != KG_AUTHZ_PATCH) { /* answered, closed or malformed */
        kg_authz_patch_free(v->patch);
        v->patch = NULL;
    }
    return rc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- answers, patched */

/* The real name of stand-in NAME, or NULL when NAME is no stand-in. */
static const struct kg_authz_renamed *renamed(const kg_authz_patch *p, kp_str name)
{
    for (int i = 0; p && i < p->n; i++)
        if (p->topics[i].len == name.len &&
            memcmp(p->topics[i].stand_in, name.ptr, (size_t)name.len) == 0)
            return &p->topics[i];
    return NULL;
}

/* Puts the real name back into *NAME when it is a stand-in: 1 then (the caller sets the
 * entry's errors), else 0. */
static int restore(const kg_authz_patch *p, kp_str *name)
{
    const struct kg_authz_renamed *r = renamed(p, *name);
    if (!r) return 0;
    *name = (kp_str){r->original, r->len};
    return 1;
}

/* Empty, not null: librdkafka before 2.1 cannot parse a null record set in a Fetch answer. */
static kp_bytes no_records(void)
{
    static const uint8_t none[1];
    return (kp_bytes){none, 0};
}

static kp_str denied_message(void)
{
    return kp_str_c("Not authorized by kgate's ACLs");
}

/* For each entry of ARR whose NAME_FIELD is a stand-in: the real name back, and CODE in the
 * ERROR_FIELD of every element of its PARTS_FIELD (EXTRA: more statements per partition). */
#define RESTORE_TOPICS(arr, name_field, parts_field, error_field, extra)                           \
    for (int32_t i = 0; i < (arr).count; i++) {                                                    \
        if (!restore(p, &(arr).items[i].name_field)) continue;                                     \
        for (int32_t j = 0; j < (arr).items[i].parts_field.count; j++) {                           \
            (arr).items[i].parts_field.items[j].error_field = TOPIC_AUTHORIZATION_FAILED;          \
            extra;                                                                                 \
        }                                                                                          \
    }

#define PATCH(type, var, fix)                                                                      \
    do {                                                                                           \
        type var;                                                                                  \
        type##_init(&var);                                                                         \
        if (type##_decode(r, a, version, &var) < 0 || r->err) {                                    \
            rc = -1;                                                                               \
            break;                                                                                 \
        }                                                                                          \
        fix;                                                                                       \
        type##_encode(w, version, &var);                                                           \
    } while (0)

/* Metadata and DescribeTopicPartitions (ARR: the answer's topics): topics the principal may
 * not Describe are dropped (every topic was asked for) or answered with
 * TOPIC_AUTHORIZATION_FAILED (they were named). */
#define FILTER_TOPICS(arr)                                                                         \
    do {                                                                                           \
        int32_t kept_ = 0;                                                                         \
        for (int32_t i_ = 0; i_ < (arr).count; i_++) {                                             \
            __typeof__((arr).items[0]) t_ = (arr).items[i_];                                       \
            int stand_in_ = restore(p, &t_.name);                                                  \
            if (stand_in_ || !allowed(who, KG_ACL_TOPIC, t_.name, KG_ACL_DESCRIBE)) {              \
                if (p->all_topics && !stand_in_) continue;                                         \
                t_.error_code = TOPIC_AUTHORIZATION_FAILED;                                        \
                t_.partitions.count = 0;                                                           \
                t_.is_internal = false;                                                            \
            }                                                                                      \
            (arr).items[kept_++] = t_;                                                             \
        }                                                                                          \
        (arr).count = kept_;                                                                       \
    } while (0)

/* ListGroups and ListTransactions (ARR, each entry's id in FIELD): only what the principal may
 * Describe (of resource TYPE) stays. */
#define FILTER_LISTING(arr, field, type)                                                           \
    do {                                                                                           \
        int32_t kept_ = 0;                                                                         \
        for (int32_t i_ = 0; i_ < (arr).count; i_++)                                               \
            if (allowed(who, type, (arr).items[i_].field, KG_ACL_DESCRIBE))                        \
                (arr).items[kept_++] = (arr).items[i_];                                            \
        (arr).count = kept_;                                                                       \
    } while (0)

/* For each entry of ARR whose NAME_FIELD is a stand-in: the real name back, CODE in its
 * ERROR_FIELD, and EXTRA (more statements on `e_`, the entry). */
#define RESTORE_ENTRIES(arr, name_field, error_field, code, extra)                                 \
    for (int32_t i_ = 0; i_ < (arr).count; i_++) {                                                 \
        __typeof__((arr).items[0]) *e_ = &(arr).items[i_];                                         \
        if (!restore(p, &e_->name_field)) continue;                                                \
        e_->error_field = (code);                                                                  \
        extra;                                                                                     \
    }

/* The answers to requests kgate renamed or filters, per API: 0, or -1 when the API has none. */
static int patch_response(const kg_authz_patch *p, const kg_authz_who *who, int16_t api_key,
                          int16_t version, kp_reader *r, kp_arena *a, kp_writer *w)
{
    int rc = 0;
    switch (api_key) {
    case KP_KEY_PRODUCE:
        PATCH(kp_produce_response, m,
              RESTORE_TOPICS(m.responses, name, partition_responses, error_code,
                             m.responses.items[i].partition_responses.items[j].error_message =
                                 version >= 8 ? denied_message() : KP_STR_NULL));
        break;
    case KP_KEY_FETCH:
        PATCH(kp_fetch_response, m,
              RESTORE_TOPICS(m.responses, topic, partitions, error_code,
                             m.responses.items[i].partitions.items[j].records = no_records()));
        break;
    case KP_KEY_LIST_OFFSETS:
        PATCH(kp_list_offsets_response, m,
              RESTORE_TOPICS(m.topics, name, partitions, error_code, (void)0));
        break;
    case KP_KEY_OFFSET_FOR_LEADER_EPOCH:
        PATCH(kp_offset_for_leader_epoch_response, m,
              RESTORE_TOPICS(m.topics, topic, partitions, error_code, (void)0));
        break;
    case KP_KEY_OFFSET_COMMIT:
        PATCH(kp_offset_commit_response, m,
              RESTORE_TOPICS(m.topics, name, partitions, error_code, (void)0));
        break;
    case KP_KEY_TXN_OFFSET_COMMIT:
        PATCH(kp_txn_offset_commit_response, m,
              RESTORE_TOPICS(m.topics, name, partitions, error_code, (void)0));
        break;
    case KP_KEY_ADD_PARTITIONS_TO_TXN:
        PATCH(kp_add_partitions_to_txn_response, m,
              RESTORE_TOPICS(m.results_by_topic_v3_and_below, name, results_by_partition,
                             partition_error_code, (void)0));
        break;
    case KP_KEY_DELETE_RECORDS:
        PATCH(kp_delete_records_response, m,
              RESTORE_TOPICS(m.topics, name, partitions, error_code, (void)0));
        break;
    case KP_KEY_DESCRIBE_PRODUCERS:
        PATCH(kp_describe_producers_response, m,
              RESTORE_TOPICS(m.topics, name, partitions, error_code, {
                  m.topics.items[i].partitions.items[j].error_message = denied_message();
                  m.topics.items[i].partitions.items[j].active_producers.count = 0;
              }));
        break;
    case KP_KEY_OFFSET_FETCH:
        PATCH(kp_offset_fetch_response, m, {
            RESTORE_TOPICS(m.topics, name, partitions, error_code, (void)0);
            for (int32_t g = 0; g < m.groups.count; g++)
                RESTORE_TOPICS(m.groups.items[g].topics, name, partitions, error_code, (void)0);
            RESTORE_ENTRIES(m.groups, group_id, error_code, GROUP_AUTHORIZATION_FAILED,
                            e_->topics.count = 0);
        });
        break;
    case KP_KEY_FIND_COORDINATOR:
        PATCH(kp_find_coordinator_response, m,
              RESTORE_ENTRIES(m.coordinators, key, error_code,
                              p->key_type == 1 ? TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                                               : GROUP_AUTHORIZATION_FAILED,
                              {
                                  e_->node_id = -1;
                                  e_->host = kp_str_c("");
                                  e_->port = -1;
                                  e_->error_message = KP_STR_NULL;
                              }));
        break;
    case KP_KEY_DESCRIBE_GROUPS:
        PATCH(kp_describe_groups_response, m,
              RESTORE_ENTRIES(m.groups, group_id, error_code, GROUP_AUTHORIZATION_FAILED, {
                  e_->group_state = e_->protocol_type = e_->protocol_data = kp_str_c("");
                  e_->members.count = 0;
              }));
        break;
    case KP_KEY_CONSUMER_GROUP_DESCRIBE:
        PATCH(kp_consumer_group_describe_response, m,
              RESTORE_ENTRIES(m.groups, group_id, error_code, GROUP_AUTHORIZATION_FAILED, {
                  e_->error_message = denied_message();
                  e_->group_state = e_->assignor_name = kp_str_c("");
                  e_->members.count = 0;
              }));
        break;
    case KP_KEY_DELETE_GROUPS:
        PATCH(
            kp_delete_groups_response, m,
            RESTORE_ENTRIES(m.results, group_id, error_code, GROUP_AUTHORIZATION_FAILED, (void)0));
        break;
    case KP_KEY_DESCRIBE_TRANSACTIONS:
        PATCH(kp_describe_transactions_response, m,
              RESTORE_ENTRIES(m.transaction_states, transactional_id, error_code,
                              TRANSACTIONAL_ID_AUTHORIZATION_FAILED, e_->topics.count = 0));
        break;
    case KP_KEY_CREATE_PARTITIONS:
        PATCH(kp_create_partitions_response, m,
              RESTORE_ENTRIES(m.results, name, error_code, TOPIC_AUTHORIZATION_FAILED,
                              e_->error_message = denied_message()));
        break;
    case KP_KEY_CREATE_TOPICS:
        PATCH(kp_create_topics_response, m,
              RESTORE_ENTRIES(m.topics, name, error_code, TOPIC_AUTHORIZATION_FAILED,
                              e_->error_message = denied_message()));
        break;
    case KP_KEY_DELETE_TOPICS:
        PATCH(kp_delete_topics_response, m,
              RESTORE_ENTRIES(m.responses, name, error_code, TOPIC_AUTHORIZATION_FAILED, (void)0));
        break;
    case KP_KEY_DESCRIBE_CONFIGS:
        PATCH(kp_describe_configs_response, m,
              RESTORE_ENTRIES(m.results, resource_name, error_code,
                              config_denied_code(e_->resource_type), {
                                  e_->error_message = denied_message();
                                  e_->configs.count = 0;
                              }));
        break;
    case KP_KEY_ALTER_CONFIGS:
        PATCH(kp_alter_configs_response, m,
              RESTORE_ENTRIES(m.responses, resource_name, error_code,
                              config_denied_code(e_->resource_type),
                              e_->error_message = denied_message()));
        break;
    case KP_KEY_INCREMENTAL_ALTER_CONFIGS:
        PATCH(kp_incremental_alter_configs_response, m,
              RESTORE_ENTRIES(m.responses, resource_name, error_code,
                              config_denied_code(e_->resource_type),
                              e_->error_message = denied_message()));
        break;
    case KP_KEY_METADATA:
        PATCH(kp_metadata_response, m, FILTER_TOPICS(m.topics));
        break;
    case KP_KEY_DESCRIBE_TOPIC_PARTITIONS:
        PATCH(kp_describe_topic_partitions_response, m, FILTER_TOPICS(m.topics));
        break;
    case KP_KEY_LIST_GROUPS:
        PATCH(kp_list_groups_response, m, FILTER_LISTING(m.groups, group_id, KG_ACL_GROUP));
        break;
    case KP_KEY_LIST_TRANSACTIONS:
        PATCH(kp_list_transactions_response, m,
              FILTER_LISTING(m.transaction_states, transactional_id, KG_ACL_TRANSACTIONAL_ID));
        break;
    default:
        rc = -1;
    }
    return rc;
}

int kg_authz_response(const kg_authz_patch *p, const kg_authz_who *who, int16_t api_key,
                      int16_t version, const uint8_t *body, size_t len, kp_writer *w)
{
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    int rc = patch_response(p, who, api_key, version, &r, &a, w);
    kp_arena_free(&a);
    return rc < 0 || w->err ? -1 : 0;
}

/* ---------------------------------------------------------------- Produce, streamed */

enum {
    W_HEAD,  /* transactional_id (v3+), acks, timeout_ms, the topics' count */
    W_TOPIC, /* a topic: name, its partitions' count */
    W_PART,  /* a partition: index, records' length */
    W_TAGS,  /* tagged fields (flexible versions): their count */
    W_TAG,   /* one tagged field: tag, size */
    W_SKIP,  /* bytes that pass as they are, then `skip_then` */
    W_RECORDS_DONE,
    W_END_PART,
    W_END_TOPIC,
    W_DONE,
};

void kg_authz_produce_walk_init(kg_authz_produce_walk *w, int16_t version)
{
    memset(w, 0, sizeof(*w));
    w->version = version;
    const kp_api_info *info = kp_api_get(KP_KEY_PRODUCE);
    w->flexible = info && info->flexible_min >= 0 && version >= info->flexible_min;
}

/* A cursor over the bytes that are here: reads fail (need = 1) past AVAIL. */
typedef struct cursor {
    const uint8_t *p;
    size_t avail, at;
    int need, bad;
} cursor;

static uint64_t cur_uvarint(cursor *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (c->at >= c->avail) {
            c->need = 1;
            return 0;
        }
        uint8_t b = c->p[c->at++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
    c->bad = 1;
    return 0;
}

static int64_t cur_int(cursor *c, int bytes)
{
    if (c->avail - c->at < (size_t)bytes || c->at > c->avail) {
        c->need = 1;
        return 0;
    }
    int64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | c->p[c->at++];
    return bytes == 2 ? (int16_t)v : bytes == 4 ? (int32_t)v : v;
}

/* A (compact) string's or bytes' length: -1 for null. */
static int64_t cur_len(cursor *c, int flexible, int bytes_field)
{
    if (flexible) return (int64_t)cur_uvarint(c) - 1;
    return cur_int(c, bytes_field ? 4 : 2);
}

static int32_t cur_count(cursor *c, int flexible)
{
    return flexible ? (int32_t)cur_uvarint(c) - 1 : (int32_t)cur_int(c, 4);
}

/* Goes on to the tagged fields (flexible versions) and then to NEXT, or straight to NEXT. */
static void then_tags(kg_authz_produce_walk *w, int next)
{
    w->after_tags = next;
    w->state = w->flexible ? W_TAGS : next;
}

/* One step on a copy of the walk; the caller keeps it only when the step's bytes were here. */
static int walk_step(kg_authz_produce_walk *w, cursor *c, size_t *name_off, int32_t *name_len)
{
    switch (w->state) {
    case W_HEAD:
        if (w->version >= 3) {
            int64_t l = cur_len(c, w->flexible, 0); /* transactional_id */
            if (l > 0) c->at += (size_t)l;
        }
        cur_int(c, 2); /* acks */
        cur_int(c, 4); /* timeout_ms */
        w->topics_left = cur_count(c, w->flexible);
        if (c->at > c->avail) c->need = 1;
        c->bad |= !c->need && w->topics_left < 0;
        w->state = W_END_TOPIC;
        return KG_WALK_PASS;
    case W_TOPIC: {
        int64_t l = cur_len(c, w->flexible, 0);
        c->bad |= !c->need && l < 0;
        if (c->need || c->bad) return KG_WALK_NEED;
        *name_off = c->at;
        *name_len = (int32_t)l;
        c->at += (size_t)l;
        w->parts_left = cur_count(c, w->flexible);
        if (c->at > c->avail) c->need = 1;
        c->bad |= !c->need && w->parts_left < 0;
        w->state = W_END_PART;
        return KG_WALK_TOPIC;
    }
    case W_PART: {
        cur_int(c, 4); /* partition index */
        int64_t l = cur_len(c, w->flexible, 1);
        w->skip = l > 0 ? (uint64_t)l : 0;
        w->skip_then = W_RECORDS_DONE;
        w->state = W_SKIP;
        return KG_WALK_PASS;
    }
    case W_RECORDS_DONE:
        then_tags(w, W_END_PART);
        return KG_WALK_PASS;
    case W_TAGS:
        w->tags_left = (uint32_t)cur_uvarint(c);
        w->state = W_TAG;
        return KG_WALK_PASS;
    case W_TAG:
        if (w->tags_left == 0) {
            w->state = w->after_tags;
            return KG_WALK_PASS;
        }
        cur_uvarint(c); /* tag */
        w->skip = cur_uvarint(c);
        w->tags_left--;
        w->skip_then = W_TAG;
        w->state = W_SKIP;
        return KG_WALK_PASS;
    case W_SKIP: {
        size_t take = c->avail < w->skip ? c->avail : (size_t)w->skip;
        w->skip -= take;
        c->at = take;
        if (w->skip == 0) w->state = w->skip_then;
        return take || w->skip == 0 ? KG_WALK_PASS : KG_WALK_NEED;
    }
    case W_END_PART:
        if (w->parts_left-- > 0)
            w->state = W_PART;
        else
            then_tags(w, W_END_TOPIC);
        return KG_WALK_PASS;
    case W_END_TOPIC:
        if (w->topics_left-- > 0)
            w->state = W_TOPIC;
        else
            then_tags(w, W_DONE);
        return KG_WALK_PASS;
    case W_DONE:
        return KG_WALK_DONE;
    default:
        return KG_WALK_BAD;
    }
}

int kg_authz_produce_walk_step(kg_authz_produce_walk *w, const uint8_t *p, size_t avail, size_t *n,
                               size_t *name_off, int32_t *name_len)
{
    cursor c = {p, avail, 0, 0, 0};
    kg_authz_produce_walk next = *w;
    int rc = walk_step(&next, &c, name_off, name_len);
    *n = 0;
    if (c.bad) return KG_WALK_BAD;
    if (c.need || rc == KG_WALK_NEED) return KG_WALK_NEED;
    *w = next;
    *n = c.at;
    return rc;
}
