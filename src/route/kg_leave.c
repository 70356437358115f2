/* kg_leave — kgate leaves the old side's consumer groups at a switch (kg_leave.h). */
#include "route/kg_leave.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_loop.h"
#include "kp_msgs.h"
#include "route/kg_kafka.h"
#include "route/kg_offsets.h"
#include "util/kg_log.h"
#include "util/kg_time.h"

#define LEAVE_PROBES 16          /* a member lives in one of the 16 slots after its key's hash */
#define LEAVE_ATTEMPT_US 3000000 /* one try at one group (FindCoordinator, LeaveGroup) */
#define LEAVE_PAUSE_MS 1000      /* between tries while the old side does not answer */

#define ERR_COORDINATOR_LOAD_IN_PROGRESS 14
#define ERR_COORDINATOR_NOT_AVAILABLE 15
#define ERR_NOT_COORDINATOR 16
#define ERR_UNKNOWN_MEMBER_ID 25
#define ERR_GROUP_ID_NOT_FOUND 69

/* One member: KEY holds "group\0member\0instance\0" (instance empty when it has none). */
typedef struct leave_member {
    char *key;
    int cluster;
    int has_instance;
    int32_t generation;
    uint64_t used; /* when it was last seen (a counter): the oldest is replaced */
} leave_member;

static const char *member_group(const leave_member *m)
{
    return m->key;
}
static const char *member_id(const leave_member *m)
{
    return m->key + strlen(m->key) + 1;
}
static const char *member_instance(const leave_member *m)
{
    const char *id = member_id(m);
    return m->has_instance ? id + strlen(id) + 1 : NULL;
}

typedef struct leave_job {
    struct leave_job *next;
    kg_cluster *cluster;
    uint64_t created; /* the table's clock when it was made: members seen since are live */
    leave_member *m;  /* sorted by group */
    int *state;       /* per member: 0 to do, else its result (RESULT_*) */
    size_t n;
} leave_job;

enum { RESULT_LEFT = 1, RESULT_UNKNOWN, RESULT_FAILED, RESULT_SKIPPED };

struct kg_leave {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stopping;
    uint64_t clock;
    leave_member slots[KG_LEAVE_SLOTS]; /* key NULL = free */
    leave_job *head, *tail;
    int have_last;
    kg_leave_result last;
    kg_counter *left, *unknown, *failed;
};

/* ---------------------------------------------------------------- the table */

static uint32_t leave_hash(int cluster, const char *group, size_t glen, const char *member,
                           size_t mlen)
{
    uint32_t h = 2166136261u ^ (uint32_t)cluster; /* FNV-1a */
    for (size_t i = 0; i < glen; i++)
        h = (h ^ (uint8_t)group[i]) * 16777619u;
    h = (h ^ 0xff) * 16777619u; /* separates "ab"+"c" from "a"+"bc" */
    for (size_t i = 0; i < mlen; i++)
        h = (h ^ (uint8_t)member[i]) * 16777619u;
    return h;
}

static int same_member(const leave_member *s, int cluster, kp_str group, kp_str member)
{
    if (!s->key || s->cluster != cluster) return 0;
    const char *g = member_group(s), *m = member_id(s);
    return strlen(g) == (size_t)group.len && memcmp(g, group.ptr, (size_t)group.len) == 0 &&
           strlen(m) == (size_t)member.len && memcmp(m, member.ptr, (size_t)member.len) == 0;
}

/* The slot of the member, or NULL. Called with the lock held. */
static leave_member *leave_find(kg_leave *l, int cluster, kp_str group, kp_str member)
{
    uint32_t h = leave_hash(cluster, group.ptr, (size_t)group.len, member.ptr, (size_t)member.len);
    for (uint32_t i = 0; i < LEAVE_PROBES; i++) {
        leave_member *s = &l->slots[(h + i) % KG_LEAVE_SLOTS];
        if (same_member(s, cluster, group, member)) return s;
    }
    return NULL;
}

/* A free slot of the member's probes, else the one seen longest ago (freed). */
static leave_member *leave_place(kg_leave *l, int cluster, kp_str group, kp_str member)
{
    uint32_t h = leave_hash(cluster, group.ptr, (size_t)group.len, member.ptr, (size_t)member.len);
    leave_member *oldest = &l->slots[h % KG_LEAVE_SLOTS];
    for (uint32_t i = 0; i < LEAVE_PROBES; i++) {
        leave_member *s = &l->slots[(h + i) % KG_LEAVE_SLOTS];
        if (!s->key) return s;
        if (s->used < oldest->used) oldest = s;
    }
    free(oldest->key);
    oldest->key = NULL;
    return oldest;
}

/* A non-empty id kgate can keep as a C string. */
static int usable_id(kp_str s)
{
    return s.len > 0 && s.len <= KG_LEAVE_ID_MAX && !memchr(s.ptr, 0, (size_t)s.len);
}

static void leave_remember(kg_leave *l, int cluster, kp_str group, kp_str member, kp_str instance,
                           int32_t generation)
{
    if (!usable_id(group) || !usable_id(member)) return; /* not a member yet, or not storable */
    int has_instance = usable_id(instance);
    pthread_mutex_lock(&l->lock);
    leave_member *s = leave_find(l, cluster, group, member);
    if (!s) {
        s = leave_place(l, cluster, group, member);
        size_t glen = (size_t)group.len, mlen = (size_t)member.len;
        size_t ilen = has_instance ? (size_t)instance.len : 0;
        s->key = malloc(glen + mlen + ilen + 3);
        if (s->key) {
            memcpy(s->key, group.ptr, glen);
            s->key[glen] = '\0';
            memcpy(s->key + glen + 1, member.ptr, mlen);
            s->key[glen + 1 + mlen] = '\0';
            if (ilen) memcpy(s->key + glen + mlen + 2, instance.ptr, ilen);
            s->key[glen + mlen + 2 + ilen] = '\0';
            s->cluster = cluster;
            s->has_instance = has_instance;
        }
    }
    if (s->key) {
        if (generation > s->generation || s->used == 0) s->generation = generation;
        s->used = ++l->clock;
    }
    pthread_mutex_unlock(&l->lock);
}

static void leave_forget(kg_leave *l, int cluster, kp_str group, kp_str member)
{
    pthread_mutex_lock(&l->lock);
    leave_member *s = leave_find(l, cluster, group, member);
    if (s) {
        free(s->key);
        memset(s, 0, sizeof(*s));
    }
    pthread_mutex_unlock(&l->lock);
}

void kg_leave_note(kg_leave *l, int cluster_index, int16_t api_key, int16_t version,
                   const uint8_t *body, size_t len)
{
    if (!l || (api_key != KP_KEY_SYNC_GROUP && api_key != KP_KEY_HEARTBEAT &&
               api_key != KP_KEY_LEAVE_GROUP))
        return;
    kp_reader r;
    kp_arena arena;
    kp_reader_init(&r, body, len);
    kp_arena_init(&arena);
    if (api_key == KP_KEY_SYNC_GROUP) {
        kp_sync_group_request m;
        if (kp_sync_group_request_decode(&r, &arena, version, &m) == 0 && !r.err)
            leave_remember(l, cluster_index, m.group_id, m.member_id, m.group_instance_id,
                           m.generation_id);
    } else if (api_key == KP_KEY_HEARTBEAT) {
        kp_heartbeat_request m;
        if (kp_heartbeat_request_decode(&r, &arena, version, &m) == 0 && !r.err)
            leave_remember(l, cluster_index, m.group_id, m.member_id, m.group_instance_id,
                           m.generation_id);
    } else {
        kp_leave_group_request m;
        if (kp_leave_group_request_decode(&r, &arena, version, &m) == 0 && !r.err) {
            if (version <= 2) leave_forget(l, cluster_index, m.group_id, m.member_id);
            for (int32_t i = 0; version >= 3 && i < m.members.count; i++)
                leave_forget(l, cluster_index, m.group_id, m.members.items[i].member_id);
        }
    }
    kp_arena_free(&arena);
}

int kg_leave_count(kg_leave *l, int cluster_index)
{
    int n = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < KG_LEAVE_SLOTS; i++)
        n += l->slots[i].key && l->slots[i].cluster == cluster_index;
    pthread_mutex_unlock(&l->lock);
    return n;
}

/* ---------------------------------------------------------------- LeaveGroup */

typedef struct leave_request {
    const char *group;
    const leave_member *m; /* v3+: these N members; v0-2: the first */
    size_t n;
} leave_request;

static void encode_leave_group(kp_writer *w, int16_t version, void *ctx)
{
    const leave_request *q = ctx;
    kp_leave_group_request m;
    kp_leave_group_request_init(&m);
    m.group_id = kp_str_c(q->group);
    kp_leave_group_request_member_identity ids[64];
    if (version <= 2) {
        m.member_id = kp_str_c(member_id(&q->m[0]));
    } else {
        for (size_t i = 0; i < q->n; i++) {
            memset(&ids[i], 0, sizeof(ids[i]));
            ids[i].member_id = kp_str_c(member_id(&q->m[i]));
            ids[i].group_instance_id = kp_str_c(member_instance(&q->m[i]));
            ids[i].reason = kp_str_c("kgate: the virtual cluster switched to its other side");
        }
        m.members.count = (int32_t)q->n;
        m.members.items = ids;
    }
    kp_leave_group_request_encode(w, version, &m);
}

static int member_result(int16_t error)
{
    if (error == 0) return RESULT_LEFT;
    if (error == ERR_UNKNOWN_MEMBER_ID || error == ERR_GROUP_ID_NOT_FOUND) return RESULT_UNKNOWN;
    return RESULT_FAILED;
}

static int coordinator_error(int16_t error)
{
    return error == ERR_COORDINATOR_LOAD_IN_PROGRESS || error == ERR_COORDINATOR_NOT_AVAILABLE ||
           error == ERR_NOT_COORDINATOR;
}

/* One LeaveGroup v0-2 for member M: 1 answered (STATE set), 0 try again later. */
static int leave_one(kg_kafka *k, int32_t coordinator, const leave_member *m, int *state)
{
    leave_request q = {member_group(m), m, 1};
    kg_cluster_request_spec rq = {KP_KEY_LEAVE_GROUP, 0, 2, encode_leave_group, &q};
    kg_kafka_answer ans;
    if (kg_kafka_ask(k, coordinator, &rq, &ans) < 0) return 0;
    kp_leave_group_response r;
    int rc = kp_leave_group_response_decode(&ans.r, &ans.arena, ans.reply.version, &r);
    int done = 1;
    if (kg_kafka_decoded(k, &ans, rc, "LeaveGroup") < 0)
        *state = RESULT_FAILED;
    else if (coordinator_error(r.error_code))
        done = 0;
    else
        *state = member_result(r.error_code);
    kg_kafka_answer_free(&ans);
    return done;
}

/* One LeaveGroup v3+ for the N members at M (one group): 1 answered (STATE set), 0 try again
 * later, -1 when the answer is not what v3+ promises (the librdkafka mock cluster offers v3-4
 * but reads them as v0): the caller asks member by member instead. */
static int leave_batch(kg_kafka *k, int32_t coordinator, const leave_member *m, size_t n,
                       int *state)
{
    leave_request q = {member_group(m), m, n};
    kg_cluster_request_spec rq = {KP_KEY_LEAVE_GROUP, 3, 5, encode_leave_group, &q};
    kg_kafka_answer ans;
    int rc = kg_kafka_ask(k, coordinator, &rq, &ans);
    if (rc == -2) return -1; /* v3+ not offered */
    if (rc < 0) return -1;   /* it answered FindCoordinator: maybe it hung up on v3+ */
    kp_leave_group_response r;
    rc = kp_leave_group_response_decode(&ans.r, &ans.arena, ans.reply.version, &r);
    int out = -1;
    if (rc == 0 && !ans.r.err && coordinator_error(r.error_code)) {
        out = 0;
    } else if (rc == 0 && !ans.r.err && r.error_code == 0 && (size_t)r.members.count == n) {
        for (size_t i = 0; i < n; i++) {
            const kp_leave_group_response_member_response *a = &r.members.items[i];
            int16_t err = a->error_code;
            /* answers name their member: match them, whatever their order */
            for (size_t j = 0; j < n; j++)
                if ((size_t)a->member_id.len == strlen(member_id(&m[j])) &&
                    memcmp(a->member_id.ptr, member_id(&m[j]), (size_t)a->member_id.len) == 0)
                    state[j] = member_result(err);
        }
        for (size_t j = 0; j < n; j++)
            if (!state[j]) state[j] = RESULT_FAILED; /* not in the answer */
        out = 1;
    }
    kg_kafka_answer_free(&ans);
    return out;
}

/* 1 when the member was seen again on its side since the job was made: a client of kgate is its
 * member there again (the virtual cluster came back), and it must not be removed. */
static int seen_since(kg_leave *l, const leave_job *job, const leave_member *m)
{
    const char *g = member_group(m), *id = member_id(m);
    kp_str group = {.ptr = g, .len = (int32_t)strlen(g)};
    kp_str member = {.ptr = id, .len = (int32_t)strlen(id)};
    pthread_mutex_lock(&l->lock);
    const leave_member *s = leave_find(l, m->cluster, group, member);
    int seen = s && s->used > job->created;
    pthread_mutex_unlock(&l->lock);
    return seen;
}

/* The members of one group, at [FROM, TO) of JOB: 1 done, 0 try again later. */
static int leave_group(kg_leave *l, leave_job *job, size_t from, size_t to)
{
    /* "At a later generation": a member behind its group's newest generation but one is gone
     * (it crashed or got a new id); one generation behind may still be syncing. */
    int32_t newest = job->m[from].generation;
    for (size_t i = from; i < to; i++)
        if (job->m[i].generation > newest) newest = job->m[i].generation;
    leave_member todo[64];
    int *todo_state[64];
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        if (job->state[i]) continue;
        if (job->m[i].generation < newest - 1 || seen_since(l, job, &job->m[i]))
            job->state[i] = RESULT_SKIPPED;
        else if (n < 64) {
            todo[n] = job->m[i];
            todo_state[n++] = &job->state[i];
        }
    }
    if (n == 0) return 1;
    kg_kafka k = {.cluster = job->cluster, .deadline_us = kg_now_us() + LEAVE_ATTEMPT_US};
    int32_t coordinator = kg_offsets_coordinator(&k, member_group(&todo[0]));
    if (coordinator < 0) {
        kg_debug("leave groups: %s", k.err);
        return 0;
    }
    int state[64] = {0};
    int rc = leave_batch(&k, coordinator, todo, n, state);
    for (size_t i = 0; rc < 0 && i < n; i++) { /* one by one: each result kept as it comes */
        k.deadline_us = kg_now_us() + LEAVE_ATTEMPT_US;
        if (!leave_one(&k, coordinator, &todo[i], todo_state[i])) return 0;
    }
    if (rc == 0) return 0;
    for (size_t i = 0; rc > 0 && i < n; i++)
        *todo_state[i] = state[i];
    return to - from > n ? 0 : 1; /* more than 64 members: the rest on the next round */
}

/* One round over the job's groups: 1 when every member has a result. */
static int leave_round(kg_leave *l, leave_job *job)
{
    int done = 1;
    for (size_t from = 0; from < job->n;) {
        size_t to = from + 1;
        while (to < job->n && strcmp(member_group(&job->m[to]), member_group(&job->m[from])) == 0)
            to++;
        pthread_mutex_lock(&l->lock);
        int stopping = l->stopping;
        pthread_mutex_unlock(&l->lock);
        if (stopping) return 1;
        if (!leave_group(l, job, from, to)) done = 0;
        from = to;
    }
    return done;
}

static void leave_report(kg_leave *l, leave_job *job, uint64_t started)
{
    kg_leave_result res = {.members = (int)job->n};
    for (size_t i = 0; i < job->n; i++) {
        if (i == 0 || strcmp(member_group(&job->m[i]), member_group(&job->m[i - 1])) != 0)
            res.groups++;
        res.left += job->state[i] == RESULT_LEFT;
        res.unknown += job->state[i] == RESULT_UNKNOWN;
        res.failed += job->state[i] == RESULT_FAILED || job->state[i] == 0;
    }
    res.duration_us = kg_now_us() - started;
    kg_counter_add(l->left, (uint64_t)res.left);
    kg_counter_add(l->unknown, (uint64_t)res.unknown);
    kg_counter_add(l->failed, (uint64_t)res.failed);
    pthread_mutex_lock(&l->lock);
    l->last = res;
    l->have_last = 1;
    pthread_mutex_unlock(&l->lock);
    kg_info("left the consumer groups of the old side %s for kgate's clients: %d member(s) of %d "
            "group(s), %d left, %d no longer members, %d failed, in %.1f ms",
            job->cluster->cfg->name, res.members, res.groups, res.left, res.unknown, res.failed,
            (double)res.duration_us / 1000.0);
}

static void job_free(leave_job *job)
{
    for (size_t i = 0; i < job->n; i++)
        free(job->m[i].key);
    free(job->m);
    free(job->state);
    free(job);
}

/* Waits up to MS for a stop; 1 when stopping. Called with the lock held. */
static int leave_pause(kg_leave *l, int ms)
{
    struct timespec until = kg_time_after_ms(ms);
    while (!l->stopping && pthread_cond_timedwait(&l->wake, &l->lock, &until) != ETIMEDOUT) {
    }
    return l->stopping;
}

static void leave_run(kg_leave *l, leave_job *job)
{
    uint64_t started = kg_now_us();
    while (!leave_round(l, job)) {
        if (kg_now_us() - started > (uint64_t)KG_LEAVE_RETRY_MS * 1000) {
            kg_warn("the old side %s did not answer LeaveGroup within %d s: its consumer groups "
                    "keep kgate's old members until their sessions time out",
                    job->cluster->cfg->name, KG_LEAVE_RETRY_MS / 1000);
            break;
        }
        pthread_mutex_lock(&l->lock);
        int stopping = leave_pause(l, LEAVE_PAUSE_MS);
        pthread_mutex_unlock(&l->lock);
        if (stopping) break;
    }
    leave_report(l, job, started);
}

static void *leave_main(void *arg)
{
    kg_leave *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stopping) {
        leave_job *job = l->head;
        if (!job) {
            pthread_cond_wait(&l->wake, &l->lock);
            continue;
        }
        l->head = job->next;
        if (!l->head) l->tail = NULL;
        pthread_mutex_unlock(&l->lock);
        leave_run(l, job);
        job_free(job);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---------------------------------------------------------------- the switch */

static int by_group(const void *a, const void *b)
{
    return strcmp(member_group(a), member_group(b));
}

int kg_leave_switch(kg_leave *l, kg_cluster *from)
{
    if (!l) return 0;
    leave_job *job = calloc(1, sizeof(*job));
    if (!job) return 0;
    pthread_mutex_lock(&l->lock);
    size_t n = 0;
    for (size_t i = 0; i < KG_LEAVE_SLOTS; i++)
        n += l->slots[i].key && l->slots[i].cluster == from->index;
    job->m = n ? calloc(n, sizeof(*job->m)) : NULL;
    job->state = n ? calloc(n, sizeof(*job->state)) : NULL;
    if (n && (!job->m || !job->state)) {
        pthread_mutex_unlock(&l->lock);
        kg_warn("out of memory: kgate's consumer group members on %s are not left",
                from->cfg->name);
        job->n = 0;
        job_free(job);
        return 0;
    }
    for (size_t i = 0; i < KG_LEAVE_SLOTS; i++) {
        leave_member *s = &l->slots[i];
        if (!s->key || s->cluster != from->index) continue;
        job->m[job->n++] = *s; /* the key moves to the job */
        memset(s, 0, sizeof(*s));
    }
    job->cluster = from;
    job->created = l->clock;
    if (job->n == 0) {
        pthread_mutex_unlock(&l->lock);
        job_free(job);
        return 0;
    }
    qsort(job->m, job->n, sizeof(*job->m), by_group);
    if (l->tail)
        l->tail->next = job;
    else
        l->head = job;
    l->tail = job;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    return (int)n;
}

int kg_leave_last(kg_leave *l, kg_leave_result *out)
{
    pthread_mutex_lock(&l->lock);
    int have = l->have_last;
    if (have) *out = l->last;
    pthread_mutex_unlock(&l->lock);
    return have;
}

/* ---------------------------------------------------------------- life */

kg_leave *kg_leave_new(kg_metrics *metrics, const char *vcluster)
{
    kg_leave *l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, NULL);
    const char *help = "Consumer group members kgate's clients had on a virtual cluster's old side "
                       "that kgate left there after a switch (LeaveGroup), by result: left, "
                       "unknown (no longer members), failed";
    kg_counter **counters[3] = {&l->left, &l->unknown, &l->failed};
    const char *results[3] = {"left", "unknown", "failed"};
    for (int i = 0; i < 3; i++) {
        char labels[256];
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vcluster, "result", results[i],
                                 NULL);
        *counters[i] = kg_metrics_counter(metrics, "kgate_switch_group_leaves_total", help, labels);
    }
    if (pthread_create(&l->thread, NULL, leave_main, l) != 0) {
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
    }
    return l;
}

void kg_leave_free(kg_leave *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stopping = 1;
    pthread_cond_broadcast(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    while (l->head) {
        leave_job *job = l->head;
        l->head = job->next;
        job_free(job);
    }
    for (size_t i = 0; i < KG_LEAVE_SLOTS; i++)
        free(l->slots[i].key);
    pthread_cond_destroy(&l->wake);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
