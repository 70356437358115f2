/* The chaos registry: the rules, their persistence, expiry and audit, and the immutable
 * snapshots the data plane reads.
 *
 * Publishing: every change builds a new kg_chaos_set under `lock`, swaps it into `current` and
 * bumps `generation`. A set is reference-counted (atomics): the registry holds one reference to
 * the current set, each reader one more, and the last release frees it. Rules are shared between
 * consecutive sets and reference-counted the same way, so their counters survive a publish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "chaos/kg_chaos_internal.h"
#include "kp_msgs.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

#define GROUP_MAP_CAP 4096
#define TOPIC_MAP_CAP 8192
#define CONFIG_ACTOR "config"
#define EXPIRY_ACTOR "kgate"

/* ---------------------------------------------------------------- bounded string maps */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static void map_clear(kg_chaos_map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        free(m->slots[i].value);
        m->slots[i] = (kg_chaos_map_entry){0};
    }
    m->used = 0;
}

static int map_init(kg_chaos_map *m, size_t cap)
{
    m->slots = calloc(cap, sizeof(*m->slots));
    m->cap = m->slots ? cap : 0;
    m->used = 0;
    return m->slots ? 0 : -1;
}

static void map_free(kg_chaos_map *m)
{
    map_clear(m);
    free(m->slots);
}

static kg_chaos_map_entry *map_slot(const kg_chaos_map *m, const void *key, size_t len)
{
    if (!m->cap) return NULL;
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    for (size_t probes = 0; probes < m->cap; probes++, i = (i + 1) & (m->cap - 1)) {
        kg_chaos_map_entry *e = &m->slots[i];
        if (!e->key || (e->key_len == len && memcmp(e->key, key, len) == 0)) return e;
    }
    return NULL;
}

/* Sets KEY to VALUE. The map is a cache of what clients told us: when it fills up, it starts
 * over rather than grow without bound (clients repeat group requests every few seconds). */
static void map_put(kg_chaos_map *m, const void *key, size_t len, const char *value, size_t vlen)
{
    if (m->used >= m->cap * 3 / 4) map_clear(m);
    kg_chaos_map_entry *e = map_slot(m, key, len);
    if (!e) return;
    if (e->key && strlen(e->value) == vlen && memcmp(e->value, value, vlen) == 0) return;
    char *v = strndup(value, vlen);
    if (!v) return;
    if (!e->key) {
        e->key = malloc(len ? len : 1);
        if (!e->key) {
            free(v);
            return;
        }
        memcpy(e->key, key, len);
        e->key_len = len;
        m->used++;
    }
    free(e->value);
    e->value = v;
}

/* ---------------------------------------------------------------- snapshots */

static void set_free(kg_chaos_set *set)
{
    for (int i = 0; i < set->n; i++)
        kg_chaos_rule_unref(set->rules[i]);
    free(set->rules);
    free(set->mut_table);
    free(set);
}

static kg_chaos_set *set_build(kg_chaos *ch)
{
    kg_chaos_set *set = calloc(1, sizeof(*set));
    if (!set) return NULL;
    set->rules = calloc((size_t)(ch->n_rules ? ch->n_rules : 1), sizeof(*set->rules));
    if (!set->rules) {
        free(set);
        return NULL;
    }
    atomic_init(&set->refs, 1);
    set->owner = ch;
    for (int i = 0; i < ch->n_rules; i++) {
        kg_chaos_rule *r = ch->rules[i];
        set->rules[set->n++] = kg_chaos_rule_ref(r);
        set->apis.w[0] |= r->apis.w[0];
        set->apis.w[1] |= r->apis.w[1];
        if (r->group) set->has_group = true;
        if (kg_chaos_type_is_tcp(r->type)) set->has_tcp = true;
        if (r->has_topic && kg_api_bits_has(&r->apis, KG_API_FETCH)) set->wants_topic_ids = true;
        if (kg_chaos_rule_mutates(r) && set->n_mut < KG_CHAOS_MAX_MUT)
            set->mut_rules[set->n_mut++] = r;
    }
    /* One byte per subset of the mutating rules: a mutation is a pointer to its subset. */
    set->mut_table = calloc((size_t)1 << set->n_mut, 1);
    if (!set->mut_table) {
        set_free(set);
        return NULL;
    }
    return set;
}

/* Replaces the current set with one built from the rules (LOCK held). On allocation failure the
 * old set stays: the data plane keeps a consistent, if stale, view. */
static void publish(kg_chaos *ch)
{
    kg_chaos_set *set = set_build(ch);
    if (!set) {
        kg_error("chaos: out of memory publishing the rule set");
        return;
    }
    kg_chaos_set *old = ch->current;
    ch->current = set;
    atomic_fetch_add_explicit(&ch->generation, 1, memory_order_release);
    kg_gauge_set(ch->rules_gauge, ch->n_rules);
    if (old) kg_chaos_release(old);
}

uint64_t kg_chaos_generation(const kg_chaos *ch)
{
    return atomic_load_explicit(&((kg_chaos *)ch)->generation, memory_order_acquire);
}

kg_chaos_set *kg_chaos_acquire(kg_chaos *ch)
{
    pthread_mutex_lock(&ch->lock);
    kg_chaos_set *set = kg_chaos_retain(ch->current);
    pthread_mutex_unlock(&ch->lock);
    return set;
}

kg_chaos_set *kg_chaos_retain(kg_chaos_set *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

void kg_chaos_release(kg_chaos_set *set)
{
    if (set && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1) set_free(set);
}

bool kg_chaos_set_empty(const kg_chaos_set *set)
{
    return set->n == 0;
}

/* ---------------------------------------------------------------- rule list (LOCK held) */

static int find_rule(const kg_chaos *ch, const char *id)
{
    for (int i = 0; i < ch->n_rules; i++)
        if (strcmp(ch->rules[i]->id, id) == 0) return i;
    return -1;
}

static int append_rule(kg_chaos *ch, kg_chaos_rule *r)
{
    if (ch->n_rules == ch->cap_rules) {
        int cap = ch->cap_rules ? ch->cap_rules * 2 : 16;
        kg_chaos_rule **grown = realloc(ch->rules, (size_t)cap * sizeof(*grown));
        if (!grown) return -1;
        ch->rules = grown;
        ch->cap_rules = cap;
    }
    char labels[160];
    if (kg_metrics_format_labels(labels, sizeof(labels), "rule", r->id, "type",
                                 kg_chaos_type_name(r->type), NULL) == 0)
        r->metric = kg_metrics_counter(ch->metrics, "kgate_chaos_injected_total",
                                       "Faults injected by chaos rules.", labels);
    ch->rules[ch->n_rules++] = r;
    return 0;
}

/* Takes rule I out of the list; returns it (the caller owns the list's reference). */
static kg_chaos_rule *take_rule(kg_chaos *ch, int i)
{
    kg_chaos_rule *r = ch->rules[i];
    memmove(&ch->rules[i], &ch->rules[i + 1], (size_t)(ch->n_rules - i - 1) * sizeof(*ch->rules));
    ch->n_rules--;
    return r;
}

static void new_id(const kg_chaos *ch, char *id, size_t len)
{
    for (;;) {
        uint32_t v;
        if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
            v = (uint32_t)kg_time_now_ms() ^ (uint32_t)(uintptr_t)id;
        snprintf(id, len, "r-%08x", v);
        if (find_rule(ch, id) < 0) return;
    }
}

/* ---------------------------------------------------------------- audit */

static void audit(kg_chaos *ch, const char *type, const kg_chaos_rule *r, const char *actor)
{
    if (!ch->store) return;
    json_t *details =
        json_pack("{s:s, s:s, s:O, s:s}", "id", r->id, "type", kg_chaos_type_name(r->type), "rule",
                  r->json, "actor", actor ? actor : "unknown");
    if (!details || kg_store_audit_append(ch->store, type, details) != 0)
        kg_error("chaos: cannot write the audit entry %s for rule %s", type, r->id);
    json_decref(details);
}

/* ---------------------------------------------------------------- registry */

static void load_stored(kg_chaos *ch)
{
    json_t *docs = kg_store_list_rules(ch->store);
    if (!docs) {
        kg_error("chaos: cannot read the stored rules");
        return;
    }
    int64_t now = kg_time_now_ms();
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        const char *id = json_string_value(json_object_get(doc, "id"));
        char err[256];
        kg_chaos_rule *r = kg_chaos_rule_parse(doc, true, now, err, sizeof(err));
        if (!r || !id) {
            kg_warn("chaos: stored rule %s is not valid (%s); ignored", id ? id : "?",
                    r ? "no id" : err);
            kg_chaos_rule_unref(r);
            continue;
        }
        kg_chaos_rule_finish(r, id, false);
        if (r->expires_ms && r->expires_ms <= now) {
            kg_info("chaos: rule %s (%s) expired while kgate was stopped; removed", id,
                    kg_chaos_type_name(r->type));
            kg_store_delete_rule(ch->store, id);
            audit(ch, "chaos.rule.expire", r, EXPIRY_ACTOR);
            kg_chaos_rule_unref(r);
            continue;
        }
        if (append_rule(ch, r) != 0) kg_chaos_rule_unref(r);
    }
    json_decref(docs);
    if (ch->n_rules) kg_info("chaos: %d stored rule(s) loaded", ch->n_rules);
}

kg_chaos *kg_chaos_new(kg_store *store, kg_metrics *metrics)
{
    kg_chaos *ch = calloc(1, sizeof(*ch));
    if (!ch) return NULL;
    if (map_init(&ch->groups, GROUP_MAP_CAP) != 0 || map_init(&ch->topic_ids, TOPIC_MAP_CAP) != 0) {
        map_free(&ch->groups);
        free(ch);
        return NULL;
    }
    pthread_mutex_init(&ch->lock, NULL);
    pthread_rwlock_init(&ch->maps_lock, NULL);
    ch->store = store;
    ch->metrics = metrics;
    ch->rules_gauge = kg_metrics_gauge(metrics, "kgate_chaos_rules", "Active chaos rules.", "");
    pthread_mutex_lock(&ch->lock);
    if (store) load_stored(ch);
    publish(ch);
    pthread_mutex_unlock(&ch->lock);
    if (!ch->current) {
        kg_chaos_free(ch);
        return NULL;
    }
    return ch;
}

void kg_chaos_free(kg_chaos *ch)
{
    if (!ch) return;
    kg_chaos_release(ch->current);
    for (int i = 0; i < ch->n_rules; i++)
        kg_chaos_rule_unref(ch->rules[i]);
    free(ch->rules);
    map_free(&ch->groups);
    map_free(&ch->topic_ids);
    pthread_rwlock_destroy(&ch->maps_lock);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

int kg_chaos_add(kg_chaos *ch, json_t *rule, const char *actor, json_t **rule_out, char *err,
                 size_t errlen)
{
    if (rule_out) *rule_out = NULL;
    kg_chaos_rule *r = kg_chaos_rule_parse(rule, false, kg_time_now_ms(), err, errlen);
    if (!r) return -1;
    pthread_mutex_lock(&ch->lock);
    char id[KG_CHAOS_ID_MAX];
    if (r->id[0]) {
        if (find_rule(ch, r->id) >= 0) {
            snprintf(err, errlen, "field \"id\": a rule with id \"%s\" exists", r->id);
            pthread_mutex_unlock(&ch->lock);
            kg_chaos_rule_unref(r);
            return -1;
        }
        snprintf(id, sizeof(id), "%s", r->id);
    } else {
        new_id(ch, id, sizeof(id));
    }
    kg_chaos_rule_finish(r, id, false);
    if (ch->store && kg_store_put_rule(ch->store, r->id, r->json) != 0) {
        snprintf(err, errlen, "cannot store the rule in the state store");
        pthread_mutex_unlock(&ch->lock);
        kg_chaos_rule_unref(r);
        return -2;
    }
    if (append_rule(ch, r) != 0) {
        if (ch->store) kg_store_delete_rule(ch->store, r->id);
        snprintf(err, errlen, "out of memory");
        pthread_mutex_unlock(&ch->lock);
        kg_chaos_rule_unref(r);
        return -2;
    }
    publish(ch);
    if (rule_out) *rule_out = kg_chaos_rule_to_json(r);
    kg_info("chaos: rule %s (%s) added by %s", r->id, kg_chaos_type_name(r->type),
            actor ? actor : "unknown");
    audit(ch, "chaos.rule.add", r, actor);
    pthread_mutex_unlock(&ch->lock);
    return 0;
}

int kg_chaos_remove_final(kg_chaos *ch, const char *id, const char *actor, json_t **final)
{
    if (final) *final = NULL;
    pthread_mutex_lock(&ch->lock);
    int i = find_rule(ch, id);
    if (i < 0) {
        pthread_mutex_unlock(&ch->lock);
        return 1;
    }
    kg_chaos_rule *r = take_rule(ch, i);
    /* Unpublished first: from here on no new decision sees the rule. */
    publish(ch);
    if (ch->store && !r->from_config && kg_store_delete_rule(ch->store, id) < 0)
        kg_error("chaos: cannot delete rule %s from the state store", id);
    kg_info("chaos: rule %s (%s) removed by %s", id, kg_chaos_type_name(r->type),
            actor ? actor : "unknown");
    audit(ch, "chaos.rule.remove", r, actor);
    pthread_mutex_unlock(&ch->lock);
    if (final) *final = kg_chaos_rule_to_json(r);
    kg_chaos_rule_unref(r);
    return 0;
}

int kg_chaos_remove(kg_chaos *ch, const char *id, const char *actor)
{
    return kg_chaos_remove_final(ch, id, actor, NULL);
}

json_t *kg_chaos_list(kg_chaos *ch)
{
    json_t *out = json_array();
    pthread_mutex_lock(&ch->lock);
    for (int i = 0; out && i < ch->n_rules; i++)
        json_array_append_new(out, kg_chaos_rule_to_json(ch->rules[i]));
    pthread_mutex_unlock(&ch->lock);
    return out;
}

json_t *kg_chaos_get(kg_chaos *ch, const char *id)
{
    pthread_mutex_lock(&ch->lock);
    int i = find_rule(ch, id);
    json_t *out = i >= 0 ? kg_chaos_rule_to_json(ch->rules[i]) : NULL;
    pthread_mutex_unlock(&ch->lock);
    return out;
}

/* Parses every config rule before touching anything: a bad config changes nothing. */
static kg_chaos_rule **parse_config(json_t *rules, int64_t now, size_t *n, char *err, size_t errlen)
{
    *n = json_array_size(rules);
    kg_chaos_rule **parsed = calloc(*n ? *n : 1, sizeof(*parsed));
    if (!parsed) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < *n; i++) {
        char msg[512];
        parsed[i] = kg_chaos_rule_parse(json_array_get(rules, i), false, now, msg, sizeof(msg));
        const char *id = parsed[i] ? parsed[i]->id : "";
        for (size_t j = 0; parsed[i] && id[0] && j < i; j++)
            if (strcmp(parsed[j]->id, id) == 0) {
                snprintf(msg, sizeof(msg), "field \"id\": \"%s\" is used twice", id);
                kg_chaos_rule_unref(parsed[i]);
                parsed[i] = NULL;
            }
        if (!parsed[i]) {
            snprintf(err, errlen, "chaos[%zu]: %s", i, msg);
            for (size_t j = 0; j < i; j++)
                kg_chaos_rule_unref(parsed[j]);
            free(parsed);
            return NULL;
        }
    }
    return parsed;
}

int kg_chaos_apply_config(kg_chaos *ch, json_t *rules, char *err, size_t errlen)
{
    if (rules && !json_is_array(rules)) {
        snprintf(err, errlen, "chaos: must be a list of rules");
        return -1;
    }
    size_t n;
    kg_chaos_rule **parsed = parse_config(rules, kg_time_now_ms(), &n, err, errlen);
    if (!parsed) return -1;
    pthread_mutex_lock(&ch->lock);
    for (size_t i = 0; i < n; i++) {
        int at = parsed[i]->id[0] ? find_rule(ch, parsed[i]->id) : -1;
        if (at >= 0 && !ch->rules[at]->from_config) {
            snprintf(err, errlen, "chaos[%zu]: field \"id\": an API rule has id \"%s\"", i,
                     parsed[i]->id);
            pthread_mutex_unlock(&ch->lock);
            for (size_t j = 0; j < n; j++)
                kg_chaos_rule_unref(parsed[j]);
            free(parsed);
            return -1;
        }
    }
    for (int i = ch->n_rules - 1; i >= 0; i--)
        if (ch->rules[i]->from_config) {
            kg_chaos_rule *old = take_rule(ch, i);
            audit(ch, "chaos.rule.remove", old, CONFIG_ACTOR);
            kg_chaos_rule_unref(old);
        }
    for (size_t i = 0; i < n; i++) {
        char id[KG_CHAOS_ID_MAX];
        if (parsed[i]->id[0])
            snprintf(id, sizeof(id), "%s", parsed[i]->id);
        else
            new_id(ch, id, sizeof(id));
        kg_chaos_rule_finish(parsed[i], id, true);
        if (append_rule(ch, parsed[i]) != 0) {
            kg_chaos_rule_unref(parsed[i]);
            continue;
        }
        audit(ch, "chaos.rule.add", parsed[i], CONFIG_ACTOR);
    }
    publish(ch);
    pthread_mutex_unlock(&ch->lock);
    free(parsed);
    kg_info("chaos: %zu rule(s) from the configuration applied", n);
    return 0;
}

void kg_chaos_expire(kg_chaos *ch)
{
    int64_t now = kg_time_now_ms();
    kg_chaos_rule *expired[64];
    int n = 0;
    pthread_mutex_lock(&ch->lock);
    for (int i = ch->n_rules - 1; i >= 0 && n < 64; i--) {
        kg_chaos_rule *r = ch->rules[i];
        if (r->expires_ms && r->expires_ms <= now) expired[n++] = take_rule(ch, i);
    }
    if (n) publish(ch);
    for (int i = 0; i < n; i++) {
        kg_chaos_rule *r = expired[i];
        kg_info("chaos: rule %s (%s) expired after injecting %llu fault(s); removed", r->id,
                kg_chaos_type_name(r->type),
                (unsigned long long)atomic_load_explicit(&r->injected, memory_order_relaxed));
        if (ch->store && !r->from_config) kg_store_delete_rule(ch->store, r->id);
        audit(ch, "chaos.rule.expire", r, EXPIRY_ACTOR);
    }
    pthread_mutex_unlock(&ch->lock);
    for (int i = 0; i < n; i++)
        kg_chaos_rule_unref(expired[i]);
}

/* ---------------------------------------------------------------- learned facts */

static size_t group_key(char *buf, size_t len, const char *vcluster, kp_str client_id)
{
    size_t vlen = strlen(vcluster ? vcluster : "");
    if (client_id.len < 0 || vlen + 1 + (size_t)client_id.len > len) return 0;
    memcpy(buf, vcluster ? vcluster : "", vlen);
    buf[vlen] = '\0';
    memcpy(buf + vlen + 1, client_id.ptr, (size_t)client_id.len);
    return vlen + 1 + (size_t)client_id.len;
}

bool kg_chaos_lookup_group(kg_chaos *ch, const char *vcluster, kp_str client_id, char *buf,
                           size_t len)
{
    char key[1024];
    size_t klen = group_key(key, sizeof(key), vcluster, client_id);
    if (!klen) return false;
    bool found = false;
    pthread_rwlock_rdlock(&ch->maps_lock);
    kg_chaos_map_entry *e = map_slot(&ch->groups, key, klen);
    if (e && e->key) {
        snprintf(buf, len, "%s", e->value);
        found = true;
    }
    pthread_rwlock_unlock(&ch->maps_lock);
    return found;
}

kp_str kg_chaos_lookup_topic(kg_chaos *ch, const kp_uuid *id, kp_arena *a)
{
    kp_str out = KP_STR_NULL;
    pthread_rwlock_rdlock(&ch->maps_lock);
    kg_chaos_map_entry *e = map_slot(&ch->topic_ids, id->b, sizeof(id->b));
    if (e && e->key) {
        size_t n = strlen(e->value);
        char *copy = kp_arena_alloc(a, n + 1);
        if (copy) {
            memcpy(copy, e->value, n + 1);
            out.ptr = copy;
            out.len = (int32_t)n;
        }
    }
    pthread_rwlock_unlock(&ch->maps_lock);
    return out;
}

void kg_chaos_learn_topic(kg_chaos *ch, const kp_uuid *id, const char *name, size_t len)
{
    if (kp_uuid_is_zero(id) || !name || !len) return;
    pthread_rwlock_wrlock(&ch->maps_lock);
    map_put(&ch->topic_ids, id->b, sizeof(id->b), name, len);
    pthread_rwlock_unlock(&ch->maps_lock);
}

bool kg_chaos_wants_topic_ids(const kg_chaos_set *set)
{
    return set->wants_topic_ids;
}

void kg_chaos_observe_metadata(kg_chaos *ch, int16_t api_version, const uint8_t *body, size_t len)
{
    if (api_version < 10 || !kp_api_supported(3, api_version)) return; /* ids came with v10 */
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_metadata_response m;
    if (kp_metadata_response_decode(&r, &a, api_version, &m) == 0 && !r.err)
        for (int32_t i = 0; i < m.topics.count; i++) {
            const kp_metadata_response_metadata_response_topic *t = &m.topics.items[i];
            if (t->name.len > 0)
                kg_chaos_learn_topic(ch, &t->topic_id, t->name.ptr, (size_t)t->name.len);
        }
    kp_arena_free(&a);
}

bool kg_chaos_group_scoped(const kg_chaos_set *set)
{
    return set->has_group;
}

bool kg_chaos_is_group_api(int16_t api_key)
{
    switch (api_key) {
    case 8:  /* OffsetCommit */
    case 9:  /* OffsetFetch */
    case 11: /* JoinGroup */
    case 12: /* Heartbeat */
    case 13: /* LeaveGroup */
    case 14: /* SyncGroup */
    case 28: /* TxnOffsetCommit */
    case 68: /* ConsumerGroupHeartbeat */
        return true;
    default:
        return false;
    }
}

/* The group a group request names. */
static kp_str group_of(int16_t api_key, int16_t version, const uint8_t *body, size_t len,
                       kp_arena *a)
{
    const kp_api_info *info = kp_api_get(api_key);
    if (!info || !kp_api_supported(api_key, version)) return KP_STR_NULL;
    bool flexible = info->flexible_min >= 0 && version >= info->flexible_min;
    kp_reader r;
    kp_reader_init(&r, body, len);
    if (api_key == 9 && version >= 8) {
        kp_offset_fetch_request m;
        if (kp_offset_fetch_request_decode(&r, a, version, &m) != 0 || r.err || m.groups.count < 1)
            return KP_STR_NULL;
        return m.groups.items[0].group_id;
    }
    if (api_key == 28) {
        kp_txn_offset_commit_request m;
        if (kp_txn_offset_commit_request_decode(&r, a, version, &m) != 0 || r.err)
            return KP_STR_NULL;
        return m.group_id;
    }
    /* Every other group request starts with the group id. */
    kp_str group = kp_read_str(&r, flexible, false);
    return r.err ? KP_STR_NULL : group;
}

void kg_chaos_observe(kg_chaos *ch, const kg_chaos_conn *conn, int16_t api_key, int16_t api_version,
                      const uint8_t *body, size_t len)
{
    if (!kg_chaos_is_group_api(api_key) || conn->client_id.len <= 0) return;
    kp_arena a;
    kp_arena_init(&a);
    kp_str group = group_of(api_key, api_version, body, len, &a);
    char key[1024];
    size_t klen = group_key(key, sizeof(key), conn->vcluster, conn->client_id);
    if (group.len > 0 && klen) {
        pthread_rwlock_wrlock(&ch->maps_lock);
        map_put(&ch->groups, key, klen, group.ptr, (size_t)group.len);
        pthread_rwlock_unlock(&ch->maps_lock);
    }
    kp_arena_free(&a);
}
