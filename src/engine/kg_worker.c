#include "engine/kg_worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kg_conn.h"
#include "engine/kg_loop.h"
#include "route/kg_gateway.h"
#include "util/kg_log.h"

typedef enum {
    CMD_ADOPT,
    CMD_CLOSE_STALE,
    CMD_DRAIN,
    CMD_SOFT_DRAIN,
    CMD_SOFT_CANCEL,
    CMD_VISIT
} cmd_kind;

/* A request from another thread. Synchronous commands carry a done flag the sender waits on. */
typedef struct worker_cmd {
    struct worker_cmd *next;
    cmd_kind kind;
    int fd;
    kg_vcluster *vc;
    int32_t node_id;
    int tls; /* accepted on the vcluster's TLS port */
    uint64_t route_word;
    uint64_t deadline_us;
    uint64_t spread_us;     /* CMD_SOFT_DRAIN */
    kg_conn_visit_fn visit; /* CMD_VISIT */
    void *visit_arg;
    int result;
    int done;
    int synchronous;
} worker_cmd;

struct kg_worker {
    kg_gateway *gw;
    int id;
    kg_loop *loop;
    pthread_t thread;

    pthread_mutex_t lock; /* guards the command queue and done flags */
    pthread_cond_t done_cond;
    worker_cmd *cmd_head, *cmd_tail;

    kg_conn *conns; /* live connections (doubly linked) */
    kg_conn *dead;  /* closed this batch, freed after it */
    int draining;
    uint64_t drain_deadline_us;
    kg_timer drain_timer;

    /* kg_workers_drain: busy connections are asked to close one by one, at spread slots */
    int soft;
    uint64_t soft_start_us, soft_spread_us;
    int soft_busy, soft_asked;
    kg_timer soft_timer, soft_deadline_timer;
    kg_timer grace_timer; /* the next switch.grace_ms deadline of a retiring connection */
    atomic_uint_fast64_t heartbeat_us; /* kg_worker_heartbeat_us */
    uint64_t rng;
    uint8_t scratch[KG_WORKER_SCRATCH];
};

uint64_t *kg_worker_rng(kg_worker *w)
{
    return &w->rng;
}

uint8_t *kg_worker_scratch(kg_worker *w)
{
    return w->scratch;
}

/* ---------------------------------------------------------------- connection list */

static void worker_link(kg_worker *w, kg_conn *c)
{
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
}

void kg_worker_conn_closed(kg_worker *w, kg_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = w->dead;
    w->dead = c;
}

uint64_t kg_worker_heartbeat_us(kg_worker *w)
{
    return atomic_load_explicit(&w->heartbeat_us, memory_order_relaxed);
}

/* After every batch of events (and at least once a second). */
static void worker_free_dead(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    atomic_store_explicit(&w->heartbeat_us, kg_loop_now(loop), memory_order_relaxed);
    while (w->dead) {
        kg_conn *c = w->dead;
        w->dead = c->next;
        kg_conn_free(c);
    }
    if (w->draining && w->conns == NULL) kg_loop_stop(loop);
}

/* ---------------------------------------------------------------- commands */

static void worker_adopt_now(kg_worker *w, worker_cmd *cmd)
{
    /* A vcluster a reload removed: accepted before its listener closed, never served. */
    if (w->draining || w->soft || atomic_load(&cmd->vc->retired)) {
        close(cmd->fd);
        return;
    }
    kg_conn *c = kg_conn_open(w, w->loop, w->gw, cmd->fd, cmd->vc, cmd->node_id, cmd->tls);
    if (!c) {
        kg_error("out of memory accepting a connection");
        close(cmd->fd);
        return;
    }
    worker_link(w, c);
    kg_conn_start(c);
}

/* The connections whose switch grace ended with requests still in flight get kgate's answers
 * in the old side's place (kg_conn_expire); one still open a grace later (a response it was
 * streaming never ended) closes. Sets the timer for the next deadline. */
static void worker_grace_timeout(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    uint64_t now = kg_loop_now(loop), next = 0;
    uint64_t grace_us = (uint64_t)kg_gateway_limits(w->gw)->switch_grace_ms * 1000u;
    if (grace_us < 100000u) grace_us = 100000u;
    kg_conn *c = w->conns;
    while (c) {
        kg_conn *after = c->next;
        if (c->retire_at_us && c->retire_at_us <= now) kg_conn_expire(c, now + grace_us);
        if (c->state != KG_CONN_CLOSED && c->retire_at_us && (!next || c->retire_at_us < next))
            next = c->retire_at_us;
        c = after;
    }
    if (next) kg_loop_timer_at(loop, &w->grace_timer, next);
}

/* Every connection of VC opened before the switch to ROUTE_WORD goes: at once when nothing is
 * in flight, else once its requests are answered, within switch.grace_ms (kg_conn_retire). */
static int worker_close_stale_now(kg_worker *w, kg_vcluster *vc, uint64_t route_word)
{
    int closed = 0, retiring = 0;
    uint64_t deadline = kg_now_us() + (uint64_t)kg_gateway_limits(w->gw)->switch_grace_ms * 1000u;
    kg_conn *c = w->conns;
    while (c) {
        kg_conn *next = c->next;
        if (c->vc == vc && c->route != route_word) {
            retiring += kg_conn_retire(c, deadline);
            closed++;
        }
        c = next;
    }
    if (retiring) worker_grace_timeout(w->loop, w);
    return closed;
}

/* CMD_VISIT: FN on each open connection of VC; the sum of what it returned. */
static int worker_visit_now(kg_worker *w, worker_cmd *cmd)
{
    int sum = 0;
    kg_conn *c = w->conns;
    while (c) {
        kg_conn *next = c->next; /* FN may close C */
        if (c->vc == cmd->vc && c->state != KG_CONN_CLOSED) sum += cmd->visit(c, cmd->visit_arg);
        c = next;
    }
    return sum;
}

static void worker_drain_timeout(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    kg_conn *c;
    while ((c = w->conns) != NULL)
        kg_conn_close(c, KG_LOG_WARN, "drain timeout: closing with requests in flight");
}

static void worker_drain_now(kg_worker *w, uint64_t deadline_us)
{
    w->draining = 1;
    kg_conn *c = w->conns;
    while (c) {
        kg_conn *next = c->next;
        kg_conn_drain(c);
        c = next;
    }
    kg_loop_timer_at(w->loop, &w->drain_timer, deadline_us);
}

/* ---------------------------------------------------------------- drain (kg_workers_drain) */

/* The next connection not asked yet; asked ones stay in the list until their boundary. */
static kg_conn *worker_next_unasked(kg_worker *w)
{
    for (kg_conn *c = w->conns; c; c = c->next)
        if (!c->drain_boundary && c->state != KG_CONN_DRAINING) return c;
    return NULL;
}

/* Slot I of the busy connections is at start + spread * I / busy. */
static uint64_t worker_soft_slot(const kg_worker *w, int i)
{
    return w->soft_start_us + w->soft_spread_us * (uint64_t)i / (uint64_t)w->soft_busy;
}

static void worker_soft_tick(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    uint64_t now = kg_loop_now(loop);
    while (w->soft_asked < w->soft_busy && worker_soft_slot(w, w->soft_asked) <= now) {
        kg_conn *c = worker_next_unasked(w);
        if (!c) return; /* the rest closed on their own */
        kg_conn_drain(c);
        w->soft_asked++;
    }
    if (w->soft_asked < w->soft_busy)
        kg_loop_timer_at(loop, &w->soft_timer, worker_soft_slot(w, w->soft_asked));
}

static void worker_soft_deadline(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    kg_loop_timer_cancel(loop, &w->soft_timer);
    worker_drain_timeout(loop, w);
}

static void worker_soft_drain_now(kg_worker *w, uint64_t spread_us, uint64_t deadline_us)
{
    w->soft = 1;
    w->soft_start_us = kg_now_us();
    w->soft_spread_us = spread_us;
    w->soft_busy = w->soft_asked = 0;
    kg_conn *c = w->conns;
    while (c) {
        kg_conn *next = c->next;
        if (kg_conn_at_boundary(c))
            kg_conn_drain(c); /* idle: closes now */
        else if (!c->drain_boundary && c->state != KG_CONN_DRAINING)
            w->soft_busy++;
        c = next;
    }
    if (w->soft_busy > 0) kg_loop_timer_at(w->loop, &w->soft_timer, w->soft_start_us);
    kg_loop_timer_at(w->loop, &w->soft_deadline_timer, deadline_us);
}

static void worker_soft_cancel_now(kg_worker *w)
{
    w->soft = 0;
    kg_loop_timer_cancel(w->loop, &w->soft_timer);
    kg_loop_timer_cancel(w->loop, &w->soft_deadline_timer);
}

static worker_cmd *worker_take_commands(kg_worker *w)
{
    pthread_mutex_lock(&w->lock);
    worker_cmd *list = w->cmd_head;
    w->cmd_head = w->cmd_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    return list;
}

static void worker_finish(kg_worker *w, worker_cmd *cmd, int result)
{
    if (!cmd->synchronous) {
        free(cmd);
        return;
    }
    pthread_mutex_lock(&w->lock);
    cmd->result = result;
    cmd->done = 1;
    pthread_cond_broadcast(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
}

static void worker_on_wake(kg_loop *loop, void *arg)
{
    kg_worker *w = arg;
    worker_cmd *cmd = worker_take_commands(w);
    while (cmd) {
        worker_cmd *next = cmd->next;
        int result = 0;
        switch (cmd->kind) {
        case CMD_ADOPT:
            worker_adopt_now(w, cmd);
            break;
        case CMD_CLOSE_STALE:
            result = worker_close_stale_now(w, cmd->vc, cmd->route_word);
            break;
        case CMD_DRAIN:
            worker_drain_now(w, cmd->deadline_us);
            break;
        case CMD_SOFT_DRAIN:
            worker_soft_drain_now(w, cmd->spread_us, cmd->deadline_us);
            break;
        case CMD_SOFT_CANCEL:
            worker_soft_cancel_now(w);
            break;
        case CMD_VISIT:
            result = worker_visit_now(w, cmd);
            break;
        }
        worker_finish(w, cmd, result);
        cmd = next;
    }
}

/* Queues CMD and wakes the worker. An asynchronous command belongs to the worker from then
 * on: the caller must not touch it again. */
static void worker_post(kg_worker *w, worker_cmd *cmd)
{
    pthread_mutex_lock(&w->lock);
    cmd->next = NULL;
    if (w->cmd_tail)
        w->cmd_tail->next = cmd;
    else
        w->cmd_head = cmd;
    w->cmd_tail = cmd;
    pthread_mutex_unlock(&w->lock);
    kg_loop_wake(w->loop);
}

void kg_worker_adopt(kg_worker *w, int fd, kg_vcluster *vc, int32_t node_id, int tls)
{
    worker_cmd *cmd = calloc(1, sizeof(*cmd));
    if (!cmd) {
        close(fd);
        return;
    }
    cmd->kind = CMD_ADOPT;
    cmd->fd = fd;
    cmd->vc = vc;
    cmd->node_id = node_id;
    cmd->tls = tls;
    worker_post(w, cmd);
}

/* Waits for a synchronous command sent with worker_post. */
static int worker_wait(kg_worker *w, worker_cmd *cmd)
{
    pthread_mutex_lock(&w->lock);
    while (!cmd->done)
        pthread_cond_wait(&w->done_cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    return cmd->result;
}

int kg_workers_close_stale(kg_worker **workers, int n, kg_vcluster *vc, uint64_t route_word)
{
    /* No allocation on this path: a switch must not fail for want of memory. */
    worker_cmd cmds[KG_WORKERS_MAX];
    if (n > KG_WORKERS_MAX) n = KG_WORKERS_MAX;
    for (int i = 0; i < n; i++) {
        cmds[i] = (worker_cmd){
            .kind = CMD_CLOSE_STALE, .vc = vc, .route_word = route_word, .synchronous = 1};
        worker_post(workers[i], &cmds[i]);
    }
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += worker_wait(workers[i], &cmds[i]);
    return closed;
}

int kg_workers_visit(kg_worker **workers, int n, kg_vcluster *vc, kg_conn_visit_fn fn, void *arg)
{
    worker_cmd cmds[KG_WORKERS_MAX];
    if (n > KG_WORKERS_MAX) n = KG_WORKERS_MAX;
    for (int i = 0; i < n; i++) {
        cmds[i] = (worker_cmd){
            .kind = CMD_VISIT, .vc = vc, .visit = fn, .visit_arg = arg, .synchronous = 1};
        worker_post(workers[i], &cmds[i]);
    }
    int sum = 0;
    for (int i = 0; i < n; i++)
        sum += worker_wait(workers[i], &cmds[i]);
    return sum;
}

static void workers_post_all(kg_worker **workers, int n, cmd_kind kind, uint64_t spread_us,
                             uint64_t deadline_us)
{
    for (int i = 0; i < n; i++) {
        worker_cmd *cmd = calloc(1, sizeof(*cmd));
        if (!cmd) {
            kg_error("out of memory: worker %d does not get the drain command", i);
            continue;
        }
        cmd->kind = kind;
        cmd->spread_us = spread_us;
        cmd->deadline_us = deadline_us;
        worker_post(workers[i], cmd);
    }
}

void kg_workers_drain(kg_worker **workers, int n, uint64_t spread_us, uint64_t deadline_us)
{
    workers_post_all(workers, n, CMD_SOFT_DRAIN, spread_us, deadline_us);
}

void kg_workers_drain_cancel(kg_worker **workers, int n)
{
    workers_post_all(workers, n, CMD_SOFT_CANCEL, 0, 0);
}

/* ---------------------------------------------------------------- thread */

static void *worker_main(void *arg)
{
    kg_worker *w = arg;
    kg_loop_run(w->loop);
    /* The loop only stops once drained; anything left is closed here. */
    worker_drain_timeout(w->loop, w);
    worker_free_dead(w->loop, w);
    return NULL;
}

kg_worker *kg_worker_start(kg_gateway *gw, int id)
{
    kg_worker *w = calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->gw = gw;
    w->id = id;
    w->rng = kg_now_us() ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ull);
    atomic_init(&w->heartbeat_us, kg_now_us());
    w->loop = kg_loop_new();
    if (!w->loop) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->done_cond, NULL);
    kg_timer_init(&w->drain_timer, worker_drain_timeout, w);
    kg_timer_init(&w->soft_timer, worker_soft_tick, w);
    kg_timer_init(&w->soft_deadline_timer, worker_soft_deadline, w);
    kg_timer_init(&w->grace_timer, worker_grace_timeout, w);
    kg_loop_on_wake(w->loop, worker_on_wake, w);
    kg_loop_after_batch(w->loop, worker_free_dead, w);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        kg_loop_free(w->loop);
        free(w);
        return NULL;
    }
    return w;
}

void kg_worker_drain_and_join(kg_worker *w, uint64_t deadline_us)
{
    worker_cmd *cmd = calloc(1, sizeof(*cmd));
    if (cmd) {
        cmd->kind = CMD_DRAIN;
        cmd->deadline_us = deadline_us;
        worker_post(w, cmd);
    }
    pthread_join(w->thread, NULL);
    /* Commands that raced with the end of the loop: close adopted sockets, free the rest. */
    worker_cmd *rest = worker_take_commands(w);
    while (rest) {
        worker_cmd *next = rest->next;
        if (rest->kind == CMD_ADOPT) close(rest->fd);
        worker_finish(w, rest, 0);
        rest = next;
    }
    kg_loop_free(w->loop);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->done_cond);
    free(w);
}
