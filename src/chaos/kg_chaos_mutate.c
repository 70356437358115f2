/* Rewriting messages: records faults (corrupt, duplicate, schema id) on Produce requests and
 * Fetch responses, and partition errors patched into brokers' responses
 * (kg_chaos_on_response). Everything is decoded with the generated codecs and re-encoded at
 * the same version, so what the client reads is a well-formed message of its version. */
#include <stdlib.h>
#include <string.h>

#include "chaos/kg_chaos_internal.h"
#include "proto/kp_records.h"

/* ---------------------------------------------------------------- records */

typedef struct records_ctx {
    kg_chaos_rule *const *ops;
    int n_ops;
    uint64_t *rng;
    kp_arena *a;
    bool *injected;
} records_ctx;

/* Appends or overwrites RULE->bytes random bytes. Overwritten bytes are XORed with a non-zero
 * value, so every one of them really changes. */
static bool corrupt_value(const kg_chaos_rule *rule, kp_record *rec, uint64_t *rng, kp_arena *a)
{
    if (rec->value.len < 0) return false; /* a tombstone stays a tombstone */
    size_t len = (size_t)rec->value.len;
    size_t n = rule->bytes;
    if (rule->overwrite && len == 0) return false;
    size_t out_len = rule->overwrite ? len : len + n;
    uint8_t *v = kp_arena_alloc(a, out_len ? out_len : 1);
    if (!v) return false;
    if (len) memcpy(v, rec->value.ptr, len);
    if (rule->overwrite) {
        if (n > len) n = len;
        size_t at = (size_t)kg_chaos_random_between(rng, 0, len - n);
        for (size_t i = 0; i < n; i++)
            v[at + i] ^= (uint8_t)(1 + kp_rand_below(rng, 255));
    } else {
        for (size_t i = 0; i < n; i++)
            v[len + i] = (uint8_t)kp_rand_below(rng, 256);
    }
    rec->value = (kp_bytes){v, (int32_t)out_len};
    return true;
}

/* Confluent wire format: magic byte 0, then the schema id as a big-endian int32. */
static bool set_schema_id(const kg_chaos_rule *rule, kp_record *rec, kp_arena *a)
{
    if (rec->value.len < 5 || rec->value.ptr[0] != 0) return false;
    uint8_t *v = kp_arena_alloc(a, (size_t)rec->value.len);
    if (!v) return false;
    memcpy(v, rec->value.ptr, (size_t)rec->value.len);
    uint32_t id = (uint32_t)rule->schema_id;
    v[1] = (uint8_t)(id >> 24);
    v[2] = (uint8_t)(id >> 16);
    v[3] = (uint8_t)(id >> 8);
    v[4] = (uint8_t)id;
    rec->value = (kp_bytes){v, rec->value.len};
    return true;
}

static bool on_record(void *arg, const kp_batch_info *batch, kp_record *rec, int *copies)
{
    records_ctx *c = arg;
    bool changed = false;
    for (int i = 0; i < c->n_ops; i++) {
        const kg_chaos_rule *r = c->ops[i];
        if (!kg_chaos_roll(r, c->rng)) continue;
        bool did = false;
        switch (r->type) {
        case KG_CHAOS_CORRUPT_RECORDS:
            did = corrupt_value(r, rec, c->rng, c->a);
            break;
        case KG_CHAOS_DUPLICATE_RECORDS:
            *copies = 2;
            did = true;
            break;
        case KG_CHAOS_INVALID_SCHEMA_ID:
            did = set_schema_id(r, rec, c->a);
            break;
        default:
            break;
        }
        if (did) c->injected[i] = true;
        changed |= did;
    }
    return changed;
}

int kg_chaos_mutate_records(kg_chaos_rule *const *ops, int n_ops, kp_bytes in, uint64_t *rng,
                            kp_arena *a, kp_bytes *out, bool *injected)
{
    if (n_ops == 0 || in.len <= 0) return 0;
    bool keep_crc = true;
    for (int i = 0; i < n_ops; i++)
        if (ops[i]->type == KG_CHAOS_CORRUPT_RECORDS && !ops[i]->crc_valid) keep_crc = false;
    records_ctx c = {.ops = ops, .n_ops = n_ops, .rng = rng, .a = a, .injected = injected};
    kp_writer w;
    kp_writer_init(&w, 0);
    int rc = kp_records_rewrite(in.ptr, (size_t)in.len, on_record, &c, keep_crc, a, &w);
    if (rc == 1 && !w.err && w.len <= INT32_MAX) {
        uint8_t *copy = kp_arena_alloc(a, w.len ? w.len : 1);
        if (copy) {
            memcpy(copy, w.buf, w.len);
            *out = (kp_bytes){copy, (int32_t)w.len};
        } else {
            rc = -1;
        }
    } else if (rc == 1) {
        rc = -1;
    }
    kp_writer_free(&w);
    return rc;
}

/* The rules of OPS whose topic scope has TOPIC, into ACTIVE; returns how many. */
static int ops_for_topic(kg_chaos_rule *const *ops, int n, kp_str topic, kg_chaos_rule **active,
                         int *index)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (kg_chaos_match_topic(ops[i], topic)) {
            index[k] = i;
            active[k++] = ops[i];
        }
    return k;
}

/* Mutates one partition's records with the ops for its topic; true when changed. */
static bool mutate_partition(kg_chaos_rule *const *ops, int n_ops, kp_str topic, kp_bytes *records,
                             uint64_t *rng, kp_arena *a, bool *injected)
{
    kg_chaos_rule *active[KG_CHAOS_MAX_MUT];
    int index[KG_CHAOS_MAX_MUT];
    int k = ops_for_topic(ops, n_ops, topic, active, index);
    bool hit[KG_CHAOS_MAX_MUT] = {0};
    kp_bytes out;
    if (k == 0 || kg_chaos_mutate_records(active, k, *records, rng, a, &out, hit) != 1)
        return false;
    *records = out;
    for (int i = 0; i < k; i++)
        if (hit[i]) injected[index[i]] = true;
    return true;
}

int kg_chaos_rewrite_produce(kg_chaos_rule *const *ops, int n_ops, int16_t version,
                             const uint8_t *body, size_t len, uint64_t *rng, kp_writer *out,
                             bool *injected)
{
    if (!kp_api_supported(KG_API_PRODUCE, version)) return 0;
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_produce_request m;
    int rc = 0;
    if (kp_produce_request_decode(&r, &a, version, &m) == 0 && !r.err) {
        bool changed = false;
        for (int32_t i = 0; i < m.topic_data.count; i++) {
            kp_produce_request_topic_produce_data *t = &m.topic_data.items[i];
            for (int32_t j = 0; j < t->partition_data.count; j++)
                changed |= mutate_partition(ops, n_ops, t->name,
                                            &t->partition_data.items[j].records, rng, &a, injected);
        }
        if (changed) {
            kp_writer_reset(out);
            kp_produce_request_encode(out, version, &m);
            rc = out->err ? 0 : 1;
            if (!rc) kp_writer_reset(out);
        }
    }
    kp_arena_free(&a);
    return rc;
}

/* ---------------------------------------------------------------- responses */

/* The error op of M for TOPIC's partitions, or -1. */
static int op_for(const kg_chaos_mutation *m, kp_str topic)
{
    for (int i = 0; i < m->n_err; i++)
        if (kg_chaos_match_topic(m->err[i].rule, topic)) return i;
    return -1;
}

static int16_t error_for(const kg_chaos_mutation *m, kp_str topic)
{
    int i = op_for(m, topic);
    return i < 0 ? 0 : m->err[i].error;
}

static bool patch_produce(kp_produce_response *resp, kg_chaos_mutation *m, int16_t version,
                          kp_arena *a)
{
    bool changed = false;
    for (int32_t i = 0; i < resp->responses.count; i++) {
        kp_produce_response_topic_produce_response *t = &resp->responses.items[i];
        int op = op_for(m, t->name);
        if (op < 0) continue;
        int16_t error = m->err[op].error;
        kp_str msg = version >= 8 ? kg_chaos_injected_message(a, m->err[op].rule) : KP_STR_NULL;
        for (int32_t j = 0; j < t->partition_responses.count; j++) {
            kp_produce_response_partition_produce_response *p = &t->partition_responses.items[j];
            kg_chaos_produce_partition_error(p, p->index, error, msg);
        }
        changed = true;
    }
    return changed;
}

static bool patch_fetch(const kg_chaos_set *set, kp_fetch_response *resp, kg_chaos_mutation *m,
                        int16_t version, kp_arena *a)
{
    bool changed = false;
    bool injected[KG_CHAOS_MAX_MUT] = {0};
    for (int32_t i = 0; i < resp->responses.count; i++) {
        kp_fetch_response_fetchable_topic_response *t = &resp->responses.items[i];
        kp_str name = t->topic;
        if (version >= 13)
            name = set && set->owner ? kg_chaos_lookup_topic(set->owner, &t->topic_id, a)
                                     : KP_STR_NULL;
        int16_t error = error_for(m, name);
        for (int32_t j = 0; j < t->partitions.count; j++) {
            kp_fetch_response_partition_data *p = &t->partitions.items[j];
            if (error) {
                kg_chaos_fetch_partition_error(p, p->partition_index, error);
                changed = true;
            } else if (m->n_rec && p->error_code == 0 && p->records.len > 0) {
                changed |=
                    mutate_partition(m->rec, m->n_rec, name, &p->records, m->rng, a, injected);
            }
        }
    }
    for (int i = 0; i < m->n_rec; i++)
        if (injected[i]) kg_chaos_count_injected(m->rec[i]);
    return changed;
}

/* ListOffsets, OffsetForLeaderEpoch, DeleteRecords: errors on in-scope partitions. */
#define PATCH_ERRORS(resp, name_field, setter, index_field)                                        \
    do {                                                                                           \
        for (int32_t i = 0; i < (resp).topics.count; i++) {                                        \
            int16_t error = error_for(m, (resp).topics.items[i].name_field);                       \
            if (!error) continue;                                                                  \
            for (int32_t j = 0; j < (resp).topics.items[i].partitions.count; j++) {                \
                setter(&(resp).topics.items[i].partitions.items[j],                                \
                       (resp).topics.items[i].partitions.items[j].index_field, error);             \
                changed = true;                                                                    \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Rebuilds what ACT's decision asked for from the set's table (see kg_chaos_mutation). */
static bool mutation_from(const kg_chaos_set *set, const kg_chaos_action *act, int16_t api_key,
                          int16_t api_version, kg_chaos_mutation *m)
{
    memset(m, 0, sizeof(*m));
    if (!set || !set->mut_table || !act->mutation) return false;
    uintptr_t base = (uintptr_t)set->mut_table, at = (uintptr_t)act->mutation;
    uintptr_t n = (uintptr_t)1 << set->n_mut;
    if (at <= base || at >= base + n) return false; /* not this set's (or an empty) mutation */
    unsigned mask = (unsigned)(at - base);
    m->rng = kg_chaos_rng(NULL);
    for (int i = 0; i < set->n_mut; i++) {
        if (!(mask & (1u << i))) continue;
        kg_chaos_rule *r = set->mut_rules[i];
        if (r->type == KG_CHAOS_BROKEN_BROKERS || r->type == KG_CHAOS_LEADER_ELECTION) {
            int16_t error = kg_chaos_pick_error(r, api_key, api_version, m->rng);
            if (!error) continue;
            m->err[m->n_err].rule = r;
            m->err[m->n_err].error = error;
            m->n_err++;
        } else if (api_key == KG_API_FETCH) {
            m->rec[m->n_rec++] = r;
        }
    }
    return m->n_err || m->n_rec;
}

int kg_chaos_on_response(const kg_chaos_set *set, const kg_chaos_action *act, int16_t api_key,
                         int16_t api_version, const uint8_t *body, size_t len, kp_writer *out)
{
    kg_chaos_mutation mutation;
    kg_chaos_mutation *m = &mutation;
    if (!mutation_from(set, act, api_key, api_version, m)) return 0;
    if (!kp_api_supported(api_key, api_version)) return -1;
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    size_t start = out->len;
    bool changed = false;
    int rc = -1;
#define DECODE_PATCH_ENCODE(type, patch)                                                           \
    do {                                                                                           \
        type resp;                                                                                 \
        if (type##_decode(&r, &a, api_version, &resp) != 0 || r.err) break;                        \
        patch;                                                                                     \
        rc = 0;                                                                                    \
        if (changed) {                                                                             \
            type##_encode(out, api_version, &resp);                                                \
            rc = out->err ? -1 : 1;                                                                \
        }                                                                                          \
    } while (0)
    switch (api_key) {
    case KG_API_PRODUCE:
        DECODE_PATCH_ENCODE(kp_produce_response,
                            changed = patch_produce(&resp, m, api_version, &a));
        break;
    case KG_API_FETCH:
        DECODE_PATCH_ENCODE(kp_fetch_response,
                            changed = patch_fetch(set, &resp, m, api_version, &a));
        break;
    case KG_API_LIST_OFFSETS:
        DECODE_PATCH_ENCODE(
            kp_list_offsets_response,
            PATCH_ERRORS(resp, name, kg_chaos_list_offsets_partition_error, partition_index));
        break;
    case KG_API_OFFSET_FOR_LEADER_EPOCH:
        DECODE_PATCH_ENCODE(kp_offset_for_leader_epoch_response,
                            PATCH_ERRORS(resp, topic, kg_chaos_ofle_partition_error, partition));
        break;
    case KG_API_DELETE_RECORDS:
        DECODE_PATCH_ENCODE(
            kp_delete_records_response,
            PATCH_ERRORS(resp, name, kg_chaos_delete_records_partition_error, partition_index));
        break;
    default:
        rc = 0;
        break;
    }
#undef DECODE_PATCH_ENCODE
    if (rc != 1) {
        out->len = start; /* nothing half-written reaches the client */
        out->err = 0;
    }
    kp_arena_free(&a);
    return rc;
}
