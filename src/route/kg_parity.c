#include "route/kg_parity.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "engine/kg_loop.h"
#include "kp_msgs.h"

/* Bounds the usage table: an all-topics Metadata answer of a very large cluster must not grow
 * it without end. Topics past it are not compared (the report says how many were dropped). */
#define PARITY_MAX_TOPICS 100000
#define UNKNOWN_TOPIC_OR_PARTITION 3
#define CONFIG_RESOURCE_TOPIC 2

/* The topic configs whose difference changes what clients see or may do. */
static const char *const compared_configs[] = {"cleanup.policy", "retention.ms", "retention.bytes",
                                               "max.message.bytes", "min.insync.replicas"};
#define N_CONFIGS ((int)(sizeof(compared_configs) / sizeof(compared_configs[0])))

typedef struct usage_entry {
    char *name; /* NULL: a free slot */
    int32_t partitions;
    uint64_t seen_us;
} usage_entry;

struct kg_parity {
    pthread_mutex_t lock;
    usage_entry *slots; /* open addressing, cap a power of two */
    size_t cap, n;
    size_t dropped;         /* topics not recorded: the table was full */
    json_t *active_configs; /* {topic: {config: value}} of the cluster named below */
    char configs_of[KG_NAME_MAX];
    json_t *last;
};

kg_parity *kg_parity_new(void)
{
    kg_parity *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

void kg_parity_free(kg_parity *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->cap; i++)
        free(p->slots[i].name);
    free(p->slots);
    json_decref(p->active_configs);
    json_decref(p->last);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---------------------------------------------------------------- usage */

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static usage_entry *usage_slot(usage_entry *slots, size_t cap, const char *name, size_t len)
{
    for (size_t i = name_hash(name, len) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!slots[i].name ||
            (strlen(slots[i].name) == len && memcmp(slots[i].name, name, len) == 0))
            return &slots[i];
}

static int usage_grow(kg_parity *p)
{
    size_t cap = p->cap ? 2 * p->cap : 64;
    usage_entry *slots = calloc(cap, sizeof(*slots));
    if (!slots) return -1;
    for (size_t i = 0; i < p->cap; i++)
        if (p->slots[i].name)
            *usage_slot(slots, cap, p->slots[i].name, strlen(p->slots[i].name)) = p->slots[i];
    free(p->slots);
    p->slots = slots;
    p->cap = cap;
    return 0;
}

/* Kafka's topic names: [a-zA-Z0-9._-]. Anything else (the stand-ins of kgate's ACLs, which a
 * lenient mock cluster may list) is no topic a client can use. */
static int legal_topic(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return len > 0 && len <= 249;
}

void kg_parity_note_topic(kg_parity *p, const char *name, size_t len, int32_t partitions)
{
    if (!p || !name || !legal_topic(name, len)) return;
    uint64_t now = kg_now_us();
    pthread_mutex_lock(&p->lock);
    usage_entry *e = p->cap ? usage_slot(p->slots, p->cap, name, len) : NULL;
    if (!e || !e->name) {
        if (p->n >= PARITY_MAX_TOPICS || (10 * (p->n + 1) > 7 * p->cap && usage_grow(p) < 0)) {
            p->dropped++;
            pthread_mutex_unlock(&p->lock);
            return;
        }
        e = usage_slot(p->slots, p->cap, name, len);
        if ((e->name = strndup(name, len))) p->n++;
    }
    e->partitions = partitions;
    e->seen_us = now;
    pthread_mutex_unlock(&p->lock);
}

/* The topics used since SINCE_US, sorted by name. */
typedef struct topic_list {
    int n;
    char **names;
    int32_t *partitions;
} topic_list;

static void topics_free(topic_list *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->partitions);
    memset(t, 0, sizeof(*t));
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const usage_entry *)a)->name, ((const usage_entry *)b)->name);
}

static int usage_since(kg_parity *p, uint64_t since_us, topic_list *out, size_t *dropped)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&p->lock);
    *dropped = p->dropped;
    usage_entry *used = calloc(p->n + 1, sizeof(*used));
    int n = 0;
    for (size_t i = 0; used && i < p->cap; i++)
        if (p->slots[i].name && p->slots[i].seen_us >= since_us) used[n++] = p->slots[i];
    qsort(used, (size_t)n, sizeof(*used), by_name);
    out->names = calloc((size_t)n + 1, sizeof(*out->names));
    out->partitions = calloc((size_t)n + 1, sizeof(*out->partitions));
    int ok = used && out->names && out->partitions;
    for (int i = 0; ok && i < n; i++) {
        out->partitions[i] = used[i].partitions;
        ok = (out->names[out->n++] = strdup(used[i].name)) != NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(used);
    if (!ok) topics_free(out);
    return ok ? 0 : -1;
}

json_t *kg_parity_used(kg_parity *p, int window_s)
{
    topic_list t;
    size_t dropped;
    uint64_t window_us = (uint64_t)window_s * 1000000u, now = kg_now_us();
    if (!p || usage_since(p, now > window_us ? now - window_us : 0, &t, &dropped) < 0) return NULL;
    json_t *out = json_array();
    for (int i = 0; out && i < t.n; i++)
        json_array_append_new(out, json_string(t.names[i]));
    topics_free(&t);
    return out;
}

/* ---------------------------------------------------------------- asking a cluster */

static void encode_describe_configs(kp_writer *w, int16_t version, void *ctx)
{
    const topic_list *t = ctx;
    kp_describe_configs_request m;
    kp_describe_configs_request_init(&m);
    kp_describe_configs_request_describe_configs_resource *res =
        calloc((size_t)t->n + 1, sizeof(*res));
    kp_str keys[N_CONFIGS];
    if (!res) {
        w->err = KP_ERR_NOMEM;
        return;
    }
    for (int k = 0; k < N_CONFIGS; k++)
        keys[k] = kp_str_c(compared_configs[k]);
    for (int i = 0; i < t->n; i++) {
        res[i].resource_type = CONFIG_RESOURCE_TOPIC;
        res[i].resource_name = kp_str_c(t->names[i]);
        res[i].configuration_keys.count = N_CONFIGS;
        res[i].configuration_keys.items = keys;
    }
    m.resources.count = t->n;
    m.resources.items = res;
    kp_describe_configs_request_encode(w, version, &m);
    free(res);
}

static json_t *str_json(kp_str s)
{
    return s.len < 0 ? json_null() : json_stringn(s.ptr, (size_t)s.len);
}

/* {topic: {config: value}} of cluster C for the topics T, or NULL with ERR. */
static json_t *read_configs(kg_cluster *c, const topic_list *t, int timeout_ms, char *err,
                            size_t errlen)
{
    kg_cluster_reply reply;
    kg_cluster_request_spec rq = {KP_KEY_DESCRIBE_CONFIGS, 0, 4, encode_describe_configs,
                                  (void *)t};
    if (kg_cluster_request(c, timeout_ms, &rq, &reply, err, errlen) < 0) return NULL;
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, reply.body, reply.len);
    kp_describe_configs_response m;
    kp_describe_configs_response_init(&m);
    json_t *out = NULL;
    if (kp_describe_configs_response_decode(&r, &a, reply.version, &m) < 0 || r.err) {
        snprintf(err, errlen, "%s: undecodable DescribeConfigs answer", c->cfg->name);
    } else {
        out = json_object();
        for (int32_t i = 0; out && i < m.results.count; i++) {
            const kp_describe_configs_response_describe_configs_result *res = &m.results.items[i];
            if (res->error_code != 0 || res->resource_name.len <= 0) continue;
            json_t *cfg = json_object();
            for (int32_t j = 0; cfg && j < res->configs.count; j++)
                json_object_setn_new(cfg, res->configs.items[j].name.ptr,
                                     (size_t)res->configs.items[j].name.len,
                                     str_json(res->configs.items[j].value));
            json_object_setn_new(out, res->resource_name.ptr, (size_t)res->resource_name.len, cfg);
        }
    }
    kp_arena_free(&a);
    kg_cluster_reply_free(&reply);
    return out;
}

/* ---------------------------------------------------------------- the comparison */

static void add_difference(json_t *diffs, const char *topic, const char *problem, json_t *from,
                           json_t *to, const char *config)
{
    json_t *d = json_pack("{s:s, s:s}", "topic", topic, "problem", problem);
    if (config) json_object_set_new(d, "config", json_string(config));
    if (from) json_object_set_new(d, "from", from);
    if (to) json_object_set_new(d, "to", to);
    json_array_append_new(diffs, d);
}

/* Topics missing on the target or with another partition count. 0, or -1 with ERR. */
static int compare_topics(kg_cluster *target, const topic_list *t, int timeout_ms, json_t *diffs,
                          json_t *present, char *err, size_t errlen)
{
    kg_cluster_reply reply;
    kg_cluster_topics names = {t->n, (const char *const *)t->names};
    /* v4+: before it, a Metadata request may create the topics it names */
    kg_cluster_request_spec rq = {KP_KEY_METADATA, 4, 12, kg_cluster_encode_metadata, &names};
    if (kg_cluster_request(target, timeout_ms, &rq, &reply, err, errlen) < 0) return -1;
    int rc = 0;
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, reply.body, reply.len);
    kp_metadata_response m;
    kp_metadata_response_init(&m);
    if (rc == 0 && (kp_metadata_response_decode(&r, &a, reply.version, &m) < 0 || r.err)) {
        snprintf(err, errlen, "%s: undecodable Metadata answer", target->cfg->name);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < t->n; i++) {
        const kp_metadata_response_metadata_response_topic *found = NULL;
        for (int32_t j = 0; j < m.topics.count && !found; j++)
            if (m.topics.items[j].name.len == (int32_t)strlen(t->names[i]) &&
                memcmp(m.topics.items[j].name.ptr, t->names[i], strlen(t->names[i])) == 0)
                found = &m.topics.items[j];
        if (!found || found->error_code == UNKNOWN_TOPIC_OR_PARTITION) {
            add_difference(diffs, t->names[i], "missing", NULL, NULL, NULL);
        } else if (found->error_code != 0) {
            add_difference(diffs, t->names[i], "unavailable", NULL, json_integer(found->error_code),
                           NULL);
        } else {
            json_array_append_new(present, json_string(t->names[i]));
            if (found->partitions.count != t->partitions[i])
                add_difference(diffs, t->names[i], "partitions", json_integer(t->partitions[i]),
                               json_integer(found->partitions.count), NULL);
        }
    }
    kp_arena_free(&a);
    kg_cluster_reply_free(&reply);
    return rc;
}

static void compare_configs(const json_t *from, const json_t *to, const json_t *present,
                            json_t *diffs)
{
    size_t i;
    json_t *name;
    json_array_foreach(present, i, name)
    {
        const char *topic = json_string_value(name);
        json_t *a = json_object_get(from, topic), *b = json_object_get(to, topic);
        if (!a || !b) continue; /* not known on one side: nothing to say */
        for (int k = 0; k < N_CONFIGS; k++) {
            json_t *va = json_object_get(a, compared_configs[k]);
            json_t *vb = json_object_get(b, compared_configs[k]);
            if (va && vb && !json_equal(va, vb))
                add_difference(diffs, topic, "config", json_incref(va), json_incref(vb),
                               compared_configs[k]);
        }
    }
}

/* The active side's configs: read now when it is up, else the copy from the last time. */
static json_t *active_configs(kg_parity *p, const kg_parity_check *c, const topic_list *t,
                              char *why, size_t whylen)
{
    if (c->read_active) {
        json_t *fresh = read_configs(c->active, t, c->timeout_ms, why, whylen);
        if (fresh) {
            pthread_mutex_lock(&p->lock);
            json_decref(p->active_configs);
            p->active_configs = json_incref(fresh);
            snprintf(p->configs_of, sizeof(p->configs_of), "%s", c->active->cfg->name);
            pthread_mutex_unlock(&p->lock);
            return fresh;
        }
    }
    pthread_mutex_lock(&p->lock);
    json_t *kept =
        strcmp(p->configs_of, c->active->cfg->name) == 0 ? json_incref(p->active_configs) : NULL;
    pthread_mutex_unlock(&p->lock);
    if (!kept && !c->read_active)
        snprintf(why, whylen, "%s is not up and kgate has not read its configs before",
                 c->active->cfg->name);
    return kept;
}

static json_t *report_new(const kg_parity_check *c, int n_topics)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return json_pack("{s:s, s:s, s:i, s:I, s:i}", "from", c->active->cfg->name, "to",
                     c->target->cfg->name, "window_s", c->window_s, "checked_at",
                     (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, "topics", n_topics);
}

json_t *kg_parity_run(kg_parity *p, const kg_parity_check *c)
{
    topic_list t;
    size_t dropped = 0;
    uint64_t window_us = (uint64_t)c->window_s * 1000000u, now = kg_now_us();
    if (usage_since(p, now > window_us ? now - window_us : 0, &t, &dropped) < 0) return NULL;
    json_t *report = report_new(c, t.n), *diffs = json_array(), *present = json_array();
    char err[512] = "";
    if (dropped)
        json_object_set_new(report, "topics_not_tracked", json_integer((json_int_t)dropped));
    if (t.n > 0 &&
        compare_topics(c->target, &t, c->timeout_ms, diffs, present, err, sizeof(err)) < 0) {
        json_object_set_new(report, "error", json_string(err));
        json_array_clear(diffs);
    } else if (json_array_size(present) > 0) {
        char why[512] = "";
        json_t *from = active_configs(p, c, &t, why, sizeof(why));
        json_t *to = from ? read_configs(c->target, &t, c->timeout_ms, why, sizeof(why)) : NULL;
        if (from && to) compare_configs(from, to, present, diffs);
        char says[600];
        snprintf(says, sizeof(says), "not compared: %s", why);
        json_object_set_new(report, "configs", json_string(from && to ? "compared" : says));
        json_decref(from);
        json_decref(to);
    }
    json_object_set_new(report, "count", json_integer((json_int_t)json_array_size(diffs)));
    json_object_set_new(report, "differences", diffs);
    json_decref(present);
    topics_free(&t);
    pthread_mutex_lock(&p->lock);
    json_decref(p->last);
    p->last = json_incref(report);
    pthread_mutex_unlock(&p->lock);
    return report;
}

json_t *kg_parity_last(kg_parity *p)
{
    pthread_mutex_lock(&p->lock);
    json_t *last = json_incref(p->last);
    pthread_mutex_unlock(&p->lock);
    return last;
}
