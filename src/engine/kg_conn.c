#include "engine/kg_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/kg_reaper.h"
#include "engine/kg_worker.h"
#include "metrics/kg_metrics.h"
#include "engine/kg_wire.h"
#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "route/kg_gateway.h"
#include "route/kg_handover.h"
#include "route/kg_planned.h"
#include "route/kg_inspect.h"
#include "route/kg_offsets.h"
#include "route/kg_parity.h"
#include "route/kg_leave.h"
#include "route/kg_rejoin.h"
#include "route/kg_rewrite.h"
#include "route/kg_versions.h"
#include "route/kg_vcmetrics.h"
#include "util/kg_log.h"

#define KG_READ_CHUNK (128 * 1024)
#define KG_IDLE_BUF_CAP (256 * 1024)
#define KG_MAX_CONNECT_ATTEMPTS 4
#define KG_MAX_INFLIGHT 100000

enum { TO_BACKEND = KG_SIDE_BACKEND, TO_CLIENT = KG_SIDE_CLIENT };

static void conn_client_event(kg_loop *loop, int fd, unsigned mask, void *arg);
static void conn_backend_event(kg_loop *loop, int fd, unsigned mask, void *arg);
static void conn_connect_next(kg_conn *c);
static int conn_flush(kg_conn *c, int side);
static void conn_after_io(kg_conn *c);
static size_t conn_read_allowance(const kg_conn *c);
static void conn_quiet_due(kg_loop *loop, void *arg);

/* A retiring connection at a request boundary closes after this long without a request. */
#define KG_RETIRE_QUIET_US 20000u

/* ---------------------------------------------------------------- helpers */

static uint32_t high_water(const kg_conn *c)
{
    return c->limits->buffer_bytes;
}

static unsigned side_direction(int side)
{
    return side == TO_BACKEND ? KG_CHAOS_UPSTREAM : KG_CHAOS_DOWNSTREAM;
}

/* Chaos TCP faults that pace a side: its output is written by timers, never directly. */
static int side_shaped(const kg_conn *c, int side)
{
    return (c->tcp.faults &
            (KG_CHAOS_TCP_TIMEOUT | KG_CHAOS_TCP_BANDWIDTH | KG_CHAOS_TCP_SLICER)) &&
           (c->tcp.directions & side_direction(side));
}

static int side_frozen(const kg_conn *c, int side)
{
    return (c->tcp.faults & KG_CHAOS_TCP_TIMEOUT) && (c->tcp.directions & side_direction(side));
}

static void conn_update_interest(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED) return;
    unsigned cmask = 0, bmask = 0;
    /* A held request keeps later ones in req_in: stop reading once that is full. */
    int can_read_requests = conn_read_allowance(c) > 0 && kg_buf_len(&c->req_out) < high_water(c) &&
                            !((c->held.active || c->upstream_wait || c->planned_wait) &&
                              kg_buf_len(&c->req_in) >= high_water(c)) &&
                            !side_frozen(c, TO_BACKEND);
    if (can_read_requests) cmask |= KG_EV_READ;
    if (kg_buf_len(&c->resp_out) > 0 && !side_shaped(c, TO_CLIENT)) cmask |= KG_EV_WRITE;
    if (c->handshaking[TO_CLIENT]) cmask = c->hs_want_write[TO_CLIENT] ? KG_EV_WRITE : KG_EV_READ;
    if (c->handshaking[TO_BACKEND]) {
        bmask = c->hs_want_write[TO_BACKEND] ? KG_EV_WRITE : KG_EV_READ;
    } else if (c->state == KG_CONN_CONNECTING) {
        bmask = KG_EV_WRITE;
    } else {
        if (kg_buf_len(&c->resp_out) < high_water(c) && !side_frozen(c, TO_CLIENT) &&
            !(c->expired && c->resp_pass == 0)) /* expired: nothing more is taken from there */
            bmask |= KG_EV_READ;
        if (kg_buf_len(&c->req_out) > 0 && !side_shaped(c, TO_BACKEND)) bmask |= KG_EV_WRITE;
    }
    if (kg_loop_io_set(c->loop, &c->client_io, cmask) < 0 ||
        (c->backend_io.fd >= 0 && kg_loop_io_set(c->loop, &c->backend_io, bmask) < 0))
        kg_conn_close(c, KG_LOG_ERROR, "epoll_ctl failed: %s", strerror(errno));
}

/* chaos limit-data: how much of N bytes may still go to SIDE. */
static size_t conn_limit_allows(const kg_conn *c, int side, size_t n)
{
    if (!(c->tcp.faults & KG_CHAOS_TCP_LIMIT_DATA) || !(c->tcp.directions & side_direction(side)))
        return n;
    uint64_t left = c->tcp.limit_bytes > c->sent[side] ? c->tcp.limit_bytes - c->sent[side] : 0;
    return n < left ? n : (size_t)left;
}

/* ---------------------------------------------------------------- socket I/O, plain or TLS */

static int side_fd(const kg_conn *c, int side)
{
    return side == TO_CLIENT ? c->client_io.fd : c->backend_io.fd;
}

static const char *side_name(int side)
{
    return side == TO_CLIENT ? "client" : "backend";
}

/* One write of up to N bytes towards SIDE: bytes written, KG_TLS_AGAIN or KG_TLS_FAIL. */
static ssize_t conn_send(kg_conn *c, int side, const uint8_t *p, size_t n)
{
    SSL *ssl = c->ssl[side];
    if (!ssl) {
        ssize_t w = send(side_fd(c, side), p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) return w;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? KG_TLS_AGAIN
                                                                         : KG_TLS_FAIL;
    }
    ssize_t w = kg_tls_write(ssl, p, n);
    /* OpenSSL wants a blocked write retried with the same bytes first: remember how many. */
    c->tls_retry[side] = w == KG_TLS_AGAIN ? (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n) : 0;
    return w;
}

/* Closes C after a failed read or write on SIDE, with the socket's or TLS's reason. */
static void conn_io_failed(kg_conn *c, int side, const char *what)
{
    char reason[256];
    if (c->ssl[side])
        kg_tls_error(c->ssl[side], reason, sizeof(reason));
    else
        snprintf(reason, sizeof(reason), "%s", strerror(errno));
    kg_conn_close(c, KG_LOG_DEBUG, "%s %s failed: %s", what, side_name(side), reason);
}

/* Writes N bytes towards one side: straight to the socket when nothing is queued before them
 * (the common case, which saves a copy), the rest into that side's output buffer. */
static int conn_emit(kg_conn *c, int side, const uint8_t *p, size_t n)
{
    kg_buf *out = side == TO_CLIENT ? &c->resp_out : &c->req_out;
    int connected = side == TO_CLIENT || c->state != KG_CONN_CONNECTING;
    size_t allowed = conn_limit_allows(c, side, n);
    int limit_hit = allowed < n;
    n = allowed;
    c->sent[side] += n;
    if (side == TO_CLIENT) kg_vcm_bytes_out(c->vc->metrics, n);
    if (kg_buf_len(out) == 0 && connected && n > 0 && !side_shaped(c, side)) {
        ssize_t w = conn_send(c, side, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w == KG_TLS_FAIL) {
            conn_io_failed(c, side, "write to");
            return -1;
        }
    }
    if (n > 0 && kg_buf_append(out, p, n) < 0) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory buffering %zu bytes", n);
        return -1;
    }
    /* A shaped side is written by its timer only: make sure one is coming. */
    if (n > 0 && side_shaped(c, side) && c->shape_timer[side].heap_index < 0)
        kg_loop_timer_at(c->loop, &c->shape_timer[side], kg_now_us());
    if (limit_hit) {
        kg_conn_close(c, KG_LOG_INFO, "chaos limit-data: %llu bytes reached",
                      (unsigned long long)c->tcp.limit_bytes);
        return -1;
    }
    return 0;
}

/* Builds a whole response frame (size, header for API/VERSION, BODY) that kgate delivers
 * itself. The frame is malloc'd; NULL on failure. */
static uint8_t *conn_make_frame(int16_t api_key, int16_t api_version, int32_t correlation_id,
                                const uint8_t *body, size_t len, uint32_t *frame_len)
{
    kp_writer w;
    kp_writer_init(&w, len + 16);
    size_t at = kp_writer_reserve_len(&w);
    kg_wire_response_header(&w, api_key, api_version, correlation_id);
    kp_write_raw(&w, body, len);
    kp_writer_patch_len(&w, at);
    if (w.err) {
        kp_writer_free(&w);
        return NULL;
    }
    *frame_len = (uint32_t)w.len;
    return w.buf;
}

/* Experiments: count the errors in the response the client gets. */
static void conn_inspect(kg_conn *c, int16_t api_key, int16_t api_version, const uint8_t *frame,
                         uint32_t frame_len)
{
    if (frame_len < 8) return;
    size_t hdr = kg_wire_response_header_len(api_key, api_version, frame + 4, frame_len - 4);
    uint32_t results, errors;
    if (hdr && kg_inspect_errors(api_key, api_version, frame + 4 + hdr, frame_len - 4 - hdr,
                                 &results, &errors) == 0)
        kg_vcm_inspected(c->vc->metrics, api_key, results, errors);
}

/* ---------------------------------------------------------------- in-flight queue */

static kg_inflight *queue_at(kg_conn *c, uint32_t i)
{
    return &c->queue[(c->q_head + i) % c->q_cap];
}

static kg_inflight *queue_head(kg_conn *c)
{
    return c->q_len ? queue_at(c, 0) : NULL;
}

static kg_inflight *queue_push(kg_conn *c)
{
    if (c->q_len == c->q_cap) {
        uint32_t cap = c->q_cap ? c->q_cap * 2 : 16;
        kg_inflight *q = malloc(cap * sizeof(*q));
        if (!q) return NULL;
        for (uint32_t i = 0; i < c->q_len; i++)
            q[i] = *queue_at(c, i);
        free(c->queue);
        c->queue = q;
        c->q_head = 0;
        c->q_cap = cap;
    }
    kg_inflight *e = &c->queue[(c->q_head + c->q_len) % c->q_cap];
    c->q_len++;
    memset(e, 0, sizeof(*e));
    return e;
}

static void inflight_clear(kg_inflight *e)
{
    free(e->frame);
    e->frame = NULL;
    free(e->handover);
    e->handover = NULL;
    kg_authz_patch_free(e->authz);
    e->authz = NULL;
    if (e->chaos) kg_chaos_release(e->chaos);
    e->chaos = NULL;
}

static void queue_pop(kg_conn *c)
{
    inflight_clear(queue_head(c));
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
}

/* The entry the next backend response answers: the oldest one still waiting for it (kgate's
 * own answers and held responses may sit before it). */
static kg_inflight *queue_first_waiting(kg_conn *c)
{
    for (uint32_t i = 0; i < c->q_len; i++) {
        kg_inflight *e = queue_at(c, i);
        if (!(e->flags & (KG_INFLIGHT_READY | KG_INFLIGHT_PLANNED))) return e;
    }
    return NULL;
}

/* Delivers ready responses from the head of the queue, in order; a response held by chaos
 * latency holds every later one too. */
static int queue_deliver_ready(kg_conn *c)
{
    /* A response streaming through goes out whole first; its end delivers these
     * (conn_pass_response_bytes). */
    if (c->resp_pass > 0) return 0;
    kg_inflight *e;
    while ((e = queue_head(c)) && (e->flags & KG_INFLIGHT_READY)) {
        if (e->release_us > kg_now_us()) {
            kg_loop_timer_at(c->loop, &c->response_timer, e->release_us);
            return 0;
        }
        if (e->frame_len && conn_emit(c, TO_CLIENT, e->frame, e->frame_len) < 0) return -1;
        queue_pop(c);
    }
    return 0;
}

/* Makes E ready with FRAME (ownership moves), delivered after E's chaos delay. */
static void inflight_ready(kg_conn *c, kg_inflight *e, uint8_t *frame, uint32_t frame_len)
{
    free(e->frame);
    e->frame = frame;
    e->frame_len = frame_len;
    e->flags |= KG_INFLIGHT_READY;
    e->release_us = kg_now_us() + e->delay_us;
    if (e->chaos) kg_chaos_release(e->chaos);
    e->chaos = NULL;
}

/* ---------------------------------------------------------------- closing */

void kg_conn_close(kg_conn *c, int log_level, const char *fmt, ...)
{
    if (c->state == KG_CONN_CLOSED) return;
    /* Formatted only when logged: a switch closes thousands at debug level. */
    if (kg_log_enabled((enum kg_log_level)log_level)) {
        char reason[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        kg_log((enum kg_log_level)log_level,
               "closing connection from %s (vcluster %s, backend %s, %u in flight): %s", c->peer,
               c->vc->cfg->name, c->backend[0] ? c->backend : "-", c->q_len, reason);
    }
    for (uint32_t i = 0; i < c->q_len; i++)
        kg_vcm_unanswered(c->vc->metrics, queue_at(c, i)->api_key);
    c->state = KG_CONN_CLOSED;
    kg_timer *timers[] = {&c->connect_timer,  &c->request_timer,  &c->response_timer,
                          &c->shape_timer[0], &c->shape_timer[1], &c->reset_timer,
                          &c->recheck_timer,  &c->reauth_timer,   &c->quiet_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        kg_loop_timer_cancel(c->loop, timers[i]);
    /* Closing is on the switch's critical path (thousands at once): close() alone also takes
     * the fd out of epoll, and the backend socket goes to the reaper thread from kg_conn_free,
     * after the current batch: once CLOSED nothing more is read or forwarded on it. */
    kg_loop_io_forget(&c->client_io);
    kg_tls_free(c->ssl[TO_CLIENT]);
    c->ssl[TO_CLIENT] = NULL;
    close(c->client_io.fd);
    c->client_io.fd = -1;
    atomic_fetch_sub(&c->vc->client_conns, 1);
    kg_vcm_conn_closed(c->vc->metrics);
    kg_worker_conn_closed(c->worker, c);
}

static void conn_free_stages(kg_conn *c)
{
    if (c->sasl) kg_sasl_conn_free(c->sasl);
    free(c->sasl);
    free(c->pass);
    free(c->cert_principal);
    kg_authz_patch_free(c->authz_pending);
    kg_authz_patch_free(c->walk_patch);
    kg_tls_free(c->ssl[TO_CLIENT]); /* NULL unless the client fd never got to kg_conn_close */
    c->ssl[TO_CLIENT] = NULL;
    if (c->upstream) kg_sasl_client_free(c->upstream);
    free(c->upstream);
}

void kg_conn_free(kg_conn *c)
{
    if (c->backend_io.fd >= 0) {
        /* Out of epoll now: the reaper closes the fd later, and until then epoll would still
         * report events for a connection that no longer exists. */
        kg_loop_io_del(c->loop, &c->backend_io);
        kg_tls_free(c->ssl[TO_BACKEND]);
        kg_reaper_close(c->gw->reaper, c->backend_io.fd);
    }
    while (c->q_len)
        queue_pop(c);
    free(c->queue);
    kg_chaos_action_free(&c->held.action);
    if (c->chaos) kg_chaos_release(c->chaos);
    conn_free_stages(c);
    kg_buf_free(&c->req_in);
    kg_buf_free(&c->req_out);
    kg_buf_free(&c->resp_in);
    kg_buf_free(&c->resp_out);
    free(c);
}

static int conn_is_idle(const kg_conn *c)
{
    return c->q_len == 0 && kg_buf_len(&c->resp_out) == 0 && c->resp_pass == 0;
}

/* A request is partly here: its first bytes were read, its last ones not yet. */
static int conn_mid_request(const kg_conn *c)
{
    return c->req_pass > 0 || kg_buf_len(&c->req_in) > 0;
}

int kg_conn_at_boundary(const kg_conn *c)
{
    return c->state != KG_CONN_CLOSED && conn_is_idle(c) && !conn_mid_request(c) &&
           kg_buf_len(&c->req_out) == 0 && !c->held.active && !c->upstream;
}

/* Drain: the client's requests after the boundary were never read; they stay unanswered, and
 * the client sends them again on its next connection. Reading them away first lets close()
 * send a FIN behind the last response, where unread bytes would make it a reset that may
 * destroy that response before the client reads it. */
static void conn_close_at_boundary(kg_conn *c, const char *why)
{
    uint8_t *scratch = kg_worker_scratch(c->worker);
    /* Bounded: a client still sending as fast as it can must not hold the worker here. */
    for (int i = 0; i < 8 && !c->ssl[TO_CLIENT]; i++)
        if (recv(c->client_io.fd, scratch, KG_WORKER_SCRATCH, MSG_DONTWAIT) <= 0) break;
    kg_conn_close(c, KG_LOG_DEBUG, "%s", why);
}

void kg_conn_drain(kg_conn *c)
{
    /* Already draining: at a boundary (an earlier call) or after a failed login (which must not
     * read on). */
    if (c->state == KG_CONN_CLOSED || c->state == KG_CONN_DRAINING || c->drain_boundary) return;
    c->drain_boundary = 1;
    if (kg_conn_at_boundary(c)) {
        conn_close_at_boundary(c, "gateway draining: idle");
        return;
    }
    /* A connection still connecting becomes DRAINING once connected (conn_backend_connected). */
    if (c->state == KG_CONN_CONNECTING) return;
    c->state = KG_CONN_DRAINING;
    conn_update_interest(c);
}

static int conn_planned_rehome(kg_conn *c);

static void conn_unhold(kg_conn *c);
static void conn_process_requests(kg_conn *c);

/* Retires C (see kg_conn_retire); IN_STAGE: called while C's requests are being processed. */
static int conn_retire(kg_conn *c, uint64_t deadline_us, int in_stage)
{
    if (c->state == KG_CONN_CLOSED) return 0;
    if (conn_planned_rehome(c)) return 1; /* a planned switch: C goes on, on the new side */
    /* A request a chaos latency rule holds has not reached the old side, and must not now: sent
     * on after its delay, the old side would acknowledge a record after the switch, which the
     * new side never gets. It is answered like every request read after the switch
     * (stage_retired), and the client sends it again on the new side. */
    int unheld = c->held.active;
    conn_unhold(c);
    if (c->state == KG_CONN_CONNECTING || deadline_us <= kg_now_us() || kg_conn_at_boundary(c)) {
        kg_conn_close(c, KG_LOG_DEBUG, "virtual cluster %s switched", c->vc->cfg->name);
        return 0;
    }
    c->retire_at_us = deadline_us;
    kg_conn_drain(c);
    if (unheld && !in_stage && c->state != KG_CONN_CLOSED) { /* its timer was cancelled */
        conn_process_requests(c);
        conn_after_io(c);
    }
    return c->state != KG_CONN_CLOSED;
}

int kg_conn_retire(kg_conn *c, uint64_t deadline_us)
{
    return conn_retire(c, deadline_us, 0);
}

/* The in-flight entry E gets kgate's answer in the old side's place, when it has one. 0, or -1
 * when E must stay unanswered. */
static int conn_expire_entry(kg_conn *c, kg_inflight *e, uint64_t now)
{
    int delivered = (e->flags & KG_INFLIGHT_READY) && e->release_us <= now;
    if (delivered) return 0;                      /* waits behind an earlier response only */
    if (e->flags & KG_INFLIGHT_PLANNED) return 0; /* the new side's answer is on its way */
    if (e->flags & KG_INFLIGHT_SWALLOW) {
        inflight_ready(c, e, NULL, 0); /* the client never sent it: nothing to answer */
    } else if (e->handover) {
        uint32_t len = 0;
        uint8_t *frame = conn_make_frame(e->api_key, e->api_version, e->correlation_id, e->handover,
                                         e->handover_len, &len);
        if (!frame) return -1;
        e->delay_us = 0;
        inflight_ready(c, e, frame, len);
        kg_vcm_handover(c->vc->metrics, e->api_key);
    } else if (e->flags & KG_INFLIGHT_READY) {
        e->release_us = now; /* kgate's own answer, held by chaos: it goes now */
    } else {
        return -1;
    }
    e->release_us = now;
    return 0;
}

/* A chaos latency rule holds a request that never reached the old side: it is answered like
 * every request read after the switch (stage_retired). */
static void conn_unhold(kg_conn *c)
{
    if (!c->held.active) return;
    c->held.active = 0;
    kg_chaos_action_free(&c->held.action);
    kg_chaos_action_init(&c->held.action);
    kg_loop_timer_cancel(c->loop, &c->request_timer);
}

/* A request released to the new side (kg_planned) still waits for its answer. */
static int conn_planned_pending(kg_conn *c)
{
    return c->planned_pending > 0;
}

int kg_conn_expire(kg_conn *c, uint64_t close_by_us)
{
    if (c->state == KG_CONN_CLOSED) return 0;
    /* The release thread answers within its own bound (10 s a request): the grace waits for
     * it (closing would cut the client's requests), the old side's answers are still taken. */
    if (conn_planned_pending(c)) {
        c->retire_at_us = close_by_us;
        return 1;
    }
    if (c->expired || c->upstream) {
        kg_conn_close(c, KG_LOG_INFO,
                      "virtual cluster %s switched: requests still unanswered after "
                      "switch.grace_ms",
                      c->vc->cfg->name);
        return 0;
    }
    c->expired = 1;
    c->retire_at_us = close_by_us;
    uint64_t now = kg_now_us();
    uint32_t answered = 0;
    while (answered < c->q_len && conn_expire_entry(c, queue_at(c, answered), now) == 0)
        answered++;
    if (answered < c->q_len) {
        kg_info("virtual cluster %s switched: %u requests from %s left unanswered after "
                "switch.grace_ms (first: %s, which kgate cannot answer in the old side's place)",
                c->vc->cfg->name, c->q_len - answered, c->peer,
                kp_api_name(queue_at(c, answered)->api_key));
        while (c->q_len > answered) { /* from the tail: the ring's last entries */
            kg_inflight *e = queue_at(c, c->q_len - 1);
            kg_vcm_unanswered(c->vc->metrics, e->api_key);
            inflight_clear(e);
            c->q_len--;
        }
        c->retire_stuck = 1; /* nothing more is read: the connection closes after these */
    }
    conn_unhold(c);
    /* A response streaming to the client finishes first; what the old side sends after it is
     * dropped (conn_process_responses). */
    if (c->resp_pass == 0) {
        kg_buf_consume(&c->resp_in, kg_buf_len(&c->resp_in));
        if (queue_deliver_ready(c) < 0) return 0;
    }
    conn_process_requests(c);
    conn_after_io(c);
    return c->state != KG_CONN_CLOSED;
}

/* While draining, how much the client may still send: the rest of the request begun, nothing
 * beyond it (so that a client pipelining requests cannot keep the connection open). */
static size_t conn_read_allowance(const kg_conn *c)
{
    if (c->state != KG_CONN_DRAINING) return SIZE_MAX;
    if (!c->drain_boundary) return 0;
    /* Retiring, requests are answered by kgate as they come (stage_retired), until one it
     * cannot answer. */
    if (c->retire_at_us) return c->retire_stuck ? 0 : SIZE_MAX;
    size_t have = kg_buf_len(&c->req_in);
    if (c->req_pass > 0) return c->req_pass > have ? c->req_pass - have : 0;
    if (have == 0) return 0;
    if (have < 4) return 4 - have;
    size_t frame = 4 + (size_t)kg_wire_get_u32(kg_buf_begin(&c->req_in));
    return frame > have ? frame - have : 0;
}

/* ---------------------------------------------------------------- chaos: snapshots, TCP */

/* Who the client is: its SASL identity, else its certificate's, else NULL (anonymous). */
static const char *conn_principal(const kg_conn *c)
{
    const char *sasl = kg_sasl_principal(c->sasl);
    if (!sasl) sasl = kg_passthrough_principal(c->pass);
    return sasl ? sasl : c->cert_principal;
}

static kg_chaos_conn conn_chaos_view(kg_conn *c)
{
    kg_chaos_conn v = {.vcluster = c->vc->cfg->name,
                       .client_id = {c->client_id, c->client_id_len},
                       .principal = conn_principal(c),
                       .node_id = c->node_id,
                       .rng = kg_worker_rng(c->worker)};
    if (c->client_id_len < 0) v.client_id = KP_STR_NULL;
    return v;
}

static void conn_reset_now(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    /* SO_LINGER with a zero timeout turns close() into a TCP reset. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->client_io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    kg_conn_close(c, KG_LOG_INFO, "chaos reset");
}

static void conn_shape_flush(kg_loop *loop, void *arg);

/* A connection under TCP faults may be frozen or idle, with no request to notice that the
 * rules changed: it looks again this often. */
#define KG_CHAOS_RECHECK_US 250000u

/* Applies the TCP faults of the current snapshot (none clears them). Returns -1 when the
 * connection was closed. */
static int conn_chaos_tcp(kg_conn *c)
{
    kg_chaos_conn view = conn_chaos_view(c);
    kg_chaos_tcp tcp = {0};
    if (!kg_chaos_tcp_faults(c->chaos, &view, &tcp)) memset(&tcp, 0, sizeof(tcp));
    if (tcp.faults & KG_CHAOS_TCP_DOWN) {
        kg_conn_close(c, KG_LOG_INFO, "chaos down");
        return -1;
    }
    uint64_t now = kg_now_us();
    if ((tcp.faults & KG_CHAOS_TCP_RESET) && !(c->tcp.faults & KG_CHAOS_TCP_RESET))
        kg_loop_timer_at(c->loop, &c->reset_timer, now + (uint64_t)tcp.reset_after_ms * 1000u);
    else if (!(tcp.faults & KG_CHAOS_TCP_RESET))
        kg_loop_timer_cancel(c->loop, &c->reset_timer);
    for (int side = 0; side < 2; side++) {
        int shaped = (tcp.faults & (KG_CHAOS_TCP_BANDWIDTH | KG_CHAOS_TCP_SLICER)) &&
                     (tcp.directions & side_direction(side));
        kg_shape_init(&c->shape[side],
                      shaped && (tcp.faults & KG_CHAOS_TCP_BANDWIDTH)
                          ? (uint64_t)tcp.bandwidth_kib * 1024u
                          : 0,
                      shaped && (tcp.faults & KG_CHAOS_TCP_SLICER) ? tcp.slice_bytes : 0,
                      tcp.slice_delay_us, now);
    }
    c->tcp = tcp;
    if (tcp.faults)
        kg_loop_timer_at(c->loop, &c->recheck_timer, now + KG_CHAOS_RECHECK_US);
    else
        kg_loop_timer_cancel(c->loop, &c->recheck_timer);
    return 0;
}

/* Re-takes the rule snapshot when the rules changed and re-applies the TCP faults, so rules
 * added or removed reach connections that are already open. Returns -1 when the connection was
 * closed, else 1 when some rules exist and 0 when none do. */
static int conn_chaos_sync(kg_conn *c)
{
    kg_chaos *ch = c->gw->chaos;
    uint64_t gen = kg_chaos_generation(ch);
    if (!c->chaos || gen != c->chaos_gen) {
        if (c->chaos) kg_chaos_release(c->chaos);
        c->chaos_gen = gen;
        c->chaos = kg_chaos_acquire(ch);
        if (conn_chaos_tcp(c) < 0) return -1;
    }
    return !kg_chaos_set_empty(c->chaos);
}

/* Writes what pacing allows of a shaped side's output, then sleeps until more is allowed. */
static int conn_flush_shaped(kg_conn *c, int side)
{
    kg_buf *out = side == TO_CLIENT ? &c->resp_out : &c->req_out;
    uint64_t now = kg_now_us();
    if (side_frozen(c, side) || (side == TO_BACKEND && c->state == KG_CONN_CONNECTING)) return 0;
    size_t n = kg_shape_allowance(&c->shape[side], kg_buf_len(out), now);
    if (n > 0 && n < c->tls_retry[side]) n = c->tls_retry[side]; /* see conn_send */
    if (n > 0) {
        ssize_t w = conn_send(c, side, kg_buf_begin(out), n);
        if (w == KG_TLS_FAIL) {
            conn_io_failed(c, side, "write to");
            return -1;
        }
        if (w > 0) {
            kg_buf_consume(out, (size_t)w);
            kg_shape_spent(&c->shape[side], (size_t)w, now);
        }
    }
    if (kg_buf_len(out) > 0)
        kg_loop_timer_at(c->loop, &c->shape_timer[side],
                         kg_shape_next_us(&c->shape[side], kg_buf_len(out), now));
    return 0;
}

/* ---------------------------------------------------------------- requests */

/* A switch changed the routing word: nothing more may reach the old cluster. */
static int conn_route_is_stale(const kg_conn *c)
{
    return atomic_load_explicit(&c->vc->route, memory_order_acquire) != c->route;
}

/* Remembers the client id (chaos scopes on it); re-checks TCP faults once it is known. */
static int conn_note_client_id(kg_conn *c, const kg_wire_request *rq)
{
    kp_str id = rq->client_id;
    if (id.len < 0 ||
        (id.len == c->client_id_len && memcmp(id.ptr, c->client_id, (size_t)id.len) == 0))
        return 0;
    size_t n = (size_t)id.len < sizeof(c->client_id) ? (size_t)id.len : sizeof(c->client_id) - 1;
    memcpy(c->client_id, id.ptr, n);
    c->client_id_len = (int32_t)n;
    if (c->tcp_rechecked) return 0;
    c->tcp_rechecked = 1;
    return conn_chaos_tcp(c);
}

/* A virtual cluster that can switch: its requests get the answer kgate gives in the old side's
 * place should a switch's grace end before the old side answers (kg_conn_expire). */
/* The client's address without the port (a member is its client id and this). */
static void conn_peer_address(const kg_conn *c, char host[64]);

/* kg_handover's answer, except to a Fetch of a consumer group member (kg_rejoin): no records, so
 * that only its first Fetch on the new side starts its rejoin (kg_rejoin_first; KafkaJS rejoins
 * on every NOT_LEADER_OR_FOLLOWER Fetch answer, and one rejoin per connection restarts the
 * group's rebalance over and over). */
static int conn_handover_answer(kg_conn *c, int16_t api_key, int16_t version, const uint8_t *body,
                                size_t len, kp_writer *w)
{
    char host[64];
    if (api_key == KG_API_FETCH && c->vc->rejoin && c->client_id_len >= 0) {
        conn_peer_address(c, host);
        if (kg_rejoin_member(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host))
            return kg_chaos_fabricate(api_key, version, body, len, 0, NULL, w);
    }
    return kg_handover_answer(api_key, version, body, len, w);
}

static void conn_note_handover(kg_conn *c, kg_inflight *e, const uint8_t *body, size_t len)
{
    if (c->vc->cfg->secondary < 0 || !body || !kg_handover_answerable(e->api_key)) return;
    kp_writer w;
    kp_writer_init(&w, 64);
    if (conn_handover_answer(c, e->api_key, e->api_version, body, len, &w) == 0) {
        e->handover = w.buf;
        e->handover_len = (uint32_t)w.len;
    } else {
        kp_writer_free(&w);
    }
}

/* BODY (LEN bytes after the request header) is the whole request when it is here, else NULL. */
static kg_inflight *conn_track_request(kg_conn *c, const kg_wire_request *rq, const uint8_t *body,
                                       size_t len)
{
    if (c->q_len >= KG_MAX_INFLIGHT) {
        kg_conn_close(c, KG_LOG_WARN, "more than %d requests in flight", KG_MAX_INFLIGHT);
        return NULL;
    }
    kg_inflight *e = queue_push(c);
    if (!e) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory");
        return NULL;
    }
    e->correlation_id = rq->correlation_id;
    e->api_key = rq->api_key;
    e->api_version = rq->api_version;
    e->sent_us = kg_loop_now(c->loop);
    if (rq->api_key == KG_API_APIVERSIONS)
        e->flags |= KG_INFLIGHT_APIVERSIONS;
    else if (kg_rewrite_wanted(rq->api_key, rq->api_version))
        e->flags |= KG_INFLIGHT_REWRITE;
    if (atomic_load_explicit(&c->vc->inspect, memory_order_relaxed) > 0 &&
        kg_inspect_wanted(rq->api_key))
        e->flags |= KG_INFLIGHT_INSPECT;
    /* Only a virtual cluster that can switch has members from "the other" cluster. */
    if (c->vc->cfg->secondary >= 0 && kg_rewrite_group_wanted(rq->api_key))
        e->flags |= KG_INFLIGHT_GROUP;
    if (c->pass && rq->api_key == KG_API_SASL_AUTHENTICATE) e->flags |= KG_INFLIGHT_SASL;
    if (c->authz_pending) {
        e->authz = c->authz_pending;
        e->flags |= KG_INFLIGHT_AUTHZ;
        c->authz_pending = NULL;
    }
    conn_note_handover(c, e, body, len);
    return e;
}

/* Queues a response kgate made itself, delivered in order after DELAY_US. */
static int conn_answer_locally(kg_conn *c, const kg_wire_request *rq, uint8_t *frame,
                               uint32_t frame_len, uint64_t delay_us)
{
    kg_inflight *e = frame ? queue_push(c) : NULL;
    if (!e) {
        free(frame);
        kg_conn_close(c, KG_LOG_ERROR, "cannot build a response kgate owes the client");
        return -1;
    }
    e->correlation_id = rq->correlation_id;
    e->api_key = rq->api_key;
    e->api_version = rq->api_version;
    e->delay_us = delay_us;
    inflight_ready(c, e, frame, frame_len);
    return queue_deliver_ready(c);
}

/* ApiVersions is answered by kgate from what it learnt by probing both clusters of the
 * virtual cluster, so the versions a client negotiates keep working after a switch. A version
 * newer than that gets what a broker sends: v0 with UNSUPPORTED_VERSION and the ranges. */
static int conn_answer_apiversions(kg_conn *c, const kg_wire_request *rq,
                                   const kg_version_ranges *ranges)
{
    int unsupported = rq->api_version > ranges->max[KG_API_APIVERSIONS];
    kp_writer w = {0};
    kg_versions_build_response(&w, unsupported ? 0 : rq->api_version, rq->correlation_id, ranges,
                               unsupported ? KG_KAFKA_UNSUPPORTED_VERSION : 0, 0);
    if (w.err) kp_writer_free(&w);
    return conn_answer_locally(c, rq, w.err ? NULL : w.buf, (uint32_t)w.len, 0);
}

/* Sends a whole request frame, with BODY in place of its own when BODY is not NULL. */
static int conn_forward_frame(kg_conn *c, const uint8_t *frame, uint32_t size, size_t header_len,
                              const kp_writer *body)
{
    if (!body) return conn_emit(c, TO_BACKEND, frame, 4 + (size_t)size);
    uint8_t be[4];
    kg_wire_put_u32(be, (uint32_t)(header_len + body->len));
    if (conn_emit(c, TO_BACKEND, be, 4) < 0 || conn_emit(c, TO_BACKEND, frame + 4, header_len) < 0)
        return -1;
    return conn_emit(c, TO_BACKEND, body->buf, body->len);
}

/* Carries out what the chaos rules decided for the whole request frame at the head of
 * req_in, and consumes it. */
static int conn_execute_action(kg_conn *c, const kg_wire_request *rq, const uint8_t *frame,
                               uint32_t size, kg_chaos_action *act)
{
    unsigned f = act->flags;
    int rc = 0;
    if (f & KG_CHAOS_REJECT) {
        if (!rq->no_response) {
            uint32_t len = 0;
            uint8_t *resp = conn_make_frame(rq->api_key, rq->api_version, rq->correlation_id,
                                            act->response.buf, act->response.len, &len);
            if (resp && atomic_load(&c->vc->inspect) > 0 && kg_inspect_wanted(rq->api_key))
                conn_inspect(c, rq->api_key, rq->api_version, resp, len);
            rc = conn_answer_locally(c, rq, resp, len, act->delay_response_us);
        }
        kg_buf_consume(&c->req_in, 4 + (size_t)size);
        return rc < 0 ? -1 : 1;
    }
    const kp_writer *body = (f & KG_CHAOS_REPLACE_REQUEST) ? &act->request : NULL;
    if (conn_forward_frame(c, frame, size, rq->header_len, body) < 0 ||
        ((f & KG_CHAOS_FORWARD_TWICE) &&
         conn_forward_frame(c, frame, size, rq->header_len, body) < 0))
        return -1;
    if (!rq->no_response) {
        const uint8_t *rbody = frame + 4 + rq->header_len;
        size_t rlen = size - rq->header_len;
        kg_inflight *e = conn_track_request(c, rq, rbody, rlen);
        if (!e) return -1;
        e->delay_us = act->delay_response_us;
        if (f & KG_CHAOS_LOST_ACK) {
            e->flags |= KG_INFLIGHT_REPLACE;
            e->frame = conn_make_frame(rq->api_key, rq->api_version, rq->correlation_id,
                                       act->response.buf, act->response.len, &e->frame_len);
        }
        if (f & KG_CHAOS_MUTATE_RESPONSE) {
            e->flags |= KG_INFLIGHT_MUTATE;
            e->mutation = act->mutation;
            e->chaos = kg_chaos_retain(c->chaos);
        }
        kg_inflight *twin =
            (f & KG_CHAOS_FORWARD_TWICE) ? conn_track_request(c, rq, NULL, 0) : NULL;
        if (twin)
            twin->flags |= KG_INFLIGHT_SWALLOW;
        else if (f & KG_CHAOS_FORWARD_TWICE)
            return -1;
    }
    kg_buf_consume(&c->req_in, 4 + (size_t)size);
    return 1;
}

static void conn_release_held(kg_loop *loop, void *arg);

/* Chaos on one request. Returns 1 handled, 0 wait (more bytes, or held), -1 closed, 2 not
 * chaos's business: pass it through. */
static int conn_chaos_request(kg_conn *c, const kg_wire_request *rq, const uint8_t *frame,
                              uint32_t size, int complete)
{
    const kg_chaos_set *set = c->chaos;
    kg_chaos_conn view = conn_chaos_view(c);
    int observe = kg_chaos_group_scoped(set) && kg_chaos_is_group_api(rq->api_key);
    int wanted = kg_chaos_request_wanted(set, &view, rq->api_key, rq->api_version);
    if (!observe && !wanted) return 2;
    if (!complete) return 0;
    const uint8_t *body = frame + 4 + rq->header_len;
    size_t len = size - rq->header_len;
    if (observe) kg_chaos_observe(c->gw->chaos, &view, rq->api_key, rq->api_version, body, len);
    kg_chaos_action act;
    kg_chaos_action_init(&act);
    if (!wanted ||
        kg_chaos_on_request(set, &view, rq->api_key, rq->api_version, body, len, &act) < 0 ||
        act.flags == 0) {
        kg_chaos_action_free(&act);
        return 2;
    }
    if (act.flags & KG_CHAOS_DELAY_REQUEST) {
        act.flags &= ~KG_CHAOS_DELAY_REQUEST;
        c->held.action = act;
        c->held.active = 1;
        c->held.until_us = kg_now_us() + act.delay_request_us;
        kg_loop_timer_at(c->loop, &c->request_timer, c->held.until_us);
        return 0;
    }
    int rc = conn_execute_action(c, rq, frame, size, &act);
    kg_chaos_action_free(&act);
    return rc;
}

/* The request at the head of req_in was held by chaos latency; forward it once its time came. */
static int conn_take_held(kg_conn *c, const kg_wire_request *rq, const uint8_t *frame,
                          uint32_t size)
{
    if (kg_now_us() < c->held.until_us) return 0;
    c->held.active = 0;
    int rc = conn_execute_action(c, rq, frame, size, &c->held.action);
    kg_chaos_action_free(&c->held.action);
    kg_chaos_action_init(&c->held.action);
    return rc;
}

/* SASL at kgate (auth: gateway) sees every request first (kg_sasl.h): it answers the SASL
 * requests itself and closes connections that send anything else before authenticating.
 * Returns 2 when the request goes on as usual, else conn_take_request's convention. */
static int conn_sasl_stage(kg_conn *c, const uint8_t *p, size_t avail)
{
    if (conn_chaos_sync(c) < 0) return -1;
    kg_sasl_env env = {.peer = c->peer,
                       .chaos = c->chaos,
                       .chaos_view = conn_chaos_view(c),
                       .now_us = kg_loop_now(c->loop),
                       .max_frame_bytes = c->limits->max_frame_bytes};
    kg_sasl_verdict v;
    int rc = kg_sasl_on_frame(c->sasl, &env, p, avail, &v);
    if (rc == KG_SASL_PASS) return 2;
    if (rc == KG_SASL_WAIT) return 0;
    if (rc == KG_SASL_CLOSE) {
        kg_conn_close(c, KG_LOG_INFO, "%s", v.reason);
        return -1;
    }
    kg_vcm_request(c->vc->metrics, v.api_key);
    kg_buf_consume(&c->req_in, v.consume);
    kg_wire_request rq = {
        .api_key = v.api_key, .api_version = v.api_version, .correlation_id = v.correlation_id};
    if (conn_answer_locally(c, &rq, v.frame, v.frame_len, 0) < 0) return -1;
    if (!v.close_after) return 1;
    /* A failed authentication: the client gets its answer, then the connection ends. */
    if (conn_is_idle(c) || c->state == KG_CONN_CONNECTING) {
        kg_conn_close(c, KG_LOG_DEBUG, "SASL authentication failed");
        return -1;
    }
    c->state = KG_CONN_DRAINING;
    conn_update_interest(c);
    return -1;
}

/* ---------------------------------------------------------------- authorize (acls: enabled) */

#define KG_ACL_LOG_PER_SECOND 10

/* Who the request comes from, with the ACL snapshot it is decided on (release it after). */
static kg_authz_who conn_authz_who(kg_conn *c)
{
    const char *principal = conn_principal(c);
    return (kg_authz_who){.acls = kg_acl_acquire(c->gw->acls),
                          .principal = principal ? principal : "User:ANONYMOUS",
                          .host = c->peer_host[0] ? c->peer_host : NULL};
}

static void conn_authz_denied(kg_conn *c, const kg_authz_who *who, const char *what)
{
    kg_counter_inc(c->vc->acl_denials);
    if (kg_log_limit_allows(&c->vc->acl_log, KG_ACL_LOG_PER_SECOND))
        kg_info("vcluster %s: ACLs deny %s to %s from %s", c->vc->cfg->name, what, who->principal,
                c->peer);
}

/* A Produce topic name, in the request: renamed (and logged) when WHO may not Write it. 0 or
 * 1 (denied); -1 out of memory. */
static int conn_authz_produce_topic(kg_conn *c, const kg_authz_who *who, uint8_t *name, int32_t len,
                                    kg_authz_patch **patch)
{
    char what[160];
    snprintf(what, sizeof(what), "Write on topic %.*s", len > 100 ? 100 : (int)len, name);
    int d = kg_authz_topic(who, name, len, KG_ACL_WRITE, patch);
    if (d == 1) conn_authz_denied(c, who, what);
    return d;
}

/* Produce: the body streams through the walk, which renames denied topics as they pass. */
static void conn_walk_start(kg_conn *c, const kg_wire_request *rq)
{
    c->walk_pending = 0;
    c->walking = 1;
    c->walk_head = 4 + (uint32_t)rq->header_len;
    c->walk_correlation = rq->correlation_id;
    kg_authz_produce_walk_init(&c->walk, rq->api_version);
}

/* The walk ended: its denied topics go with the request's in-flight entry (when it has one:
 * acks=0 has no answer to fix). */
static void conn_walk_end(kg_conn *c)
{
    c->walking = 0;
    if (!c->walk_patch) return;
    for (uint32_t i = c->q_len; i-- > 0;) {
        kg_inflight *e = queue_at(c, i);
        if (e->correlation_id == c->walk_correlation && !e->authz) {
            e->authz = c->walk_patch;
            e->flags |= KG_INFLIGHT_AUTHZ;
            c->walk_patch = NULL;
            break;
        }
    }
    kg_authz_patch_free(c->walk_patch);
    c->walk_patch = NULL;
}

/* Streams what is here of the current Produce request, deciding each topic name as it comes.
 * 0: wait for more bytes; -1: C was closed. */
static int conn_pass_walk(kg_conn *c)
{
    while (c->req_pass > 0 && kg_buf_len(&c->req_in) > 0) {
        uint8_t *p = kg_buf_begin(&c->req_in);
        size_t avail = kg_buf_len(&c->req_in);
        if (avail > c->req_pass) avail = c->req_pass;
        size_t n = 0, name_off = 0;
        int32_t name_len = 0;
        int rc = KG_WALK_PASS;
        if (c->walk_head > 0)
            n = avail < c->walk_head ? avail : c->walk_head;
        else
            rc = kg_authz_produce_walk_step(&c->walk, p, avail, &n, &name_off, &name_len);
        if (rc == KG_WALK_NEED && avail == c->req_pass) rc = KG_WALK_BAD; /* frame ended */
        if (rc == KG_WALK_NEED) return 0;
        if (rc == KG_WALK_BAD) {
            kg_conn_close(c, KG_LOG_WARN, "malformed Produce request body");
            return -1;
        }
        if (rc == KG_WALK_TOPIC) {
            kg_authz_who who = conn_authz_who(c);
            int d = conn_authz_produce_topic(c, &who, p + name_off, name_len, &c->walk_patch);
            kg_acl_release((kg_acl_set *)who.acls);
            if (d < 0) {
                kg_conn_close(c, KG_LOG_ERROR, "out of memory authorizing a Produce request");
                return -1;
            }
        }
        if (c->walk_head > 0) c->walk_head -= (uint32_t)n;
        if (conn_emit(c, TO_BACKEND, p, n) < 0) return -1;
        kg_buf_consume(&c->req_in, n);
        c->req_pass -= (uint32_t)n;
        if (rc == KG_WALK_DONE && c->req_pass > 0) {
            kg_conn_close(c, KG_LOG_WARN, "Produce request longer than its body");
            return -1;
        }
    }
    if (c->req_pass == 0) conn_walk_end(c);
    return 0;
}

/* The authorize stage. 2: go on (maybe with authz_pending set); 1: answered; 0: the whole
 * frame is needed first; -1: closed. */
/* A Produce request that is all here: its names are decided at once, in place. */
static int conn_walk_whole(kg_conn *c, const kg_wire_request *rq, uint8_t *frame, uint32_t size)
{
    kg_authz_produce_walk w;
    kg_authz_produce_walk_init(&w, rq->api_version);
    uint8_t *p = frame + 4 + rq->header_len, *end = frame + 4 + size;
    kg_authz_who who = conn_authz_who(c);
    int rc = KG_WALK_PASS;
    while (rc != KG_WALK_DONE) {
        size_t n = 0, off = 0;
        int32_t len = 0;
        rc = kg_authz_produce_walk_step(&w, p, (size_t)(end - p), &n, &off, &len);
        if (rc == KG_WALK_NEED || rc == KG_WALK_BAD) break;
        if (rc == KG_WALK_TOPIC) {
            if (conn_authz_produce_topic(c, &who, p + off, len, &c->authz_pending) < 0) break;
        }
        p += n;
    }
    kg_acl_release((kg_acl_set *)who.acls);
    if (rc == KG_WALK_DONE && p == end) return 2;
    kg_conn_close(c, KG_LOG_WARN, "malformed Produce v%d request body", rq->api_version);
    return -1;
}

static int conn_authorize(kg_conn *c, const kg_wire_request *rq, uint8_t *frame, uint32_t size,
                          int complete)
{
    kg_authz_patch_free(c->authz_pending); /* of a request that was answered, not tracked */
    c->authz_pending = NULL;
    c->walk_pending = 0;
    if (rq->api_key == KG_API_PRODUCE && rq->api_version <= KG_AUTHZ_MAX_NAMED_VERSION) {
        if (complete) return conn_walk_whole(c, rq, frame, size);
        c->walk_pending = 1; /* decided as it streams, once it is tracked */
        return 2;
    }
    if (!complete) return 0;
    kg_authz_who who = conn_authz_who(c);
    kg_authz_verdict v;
    kg_authz_verdict_init(&v);
    int rc = kg_authz_request(&who, rq->api_key, rq->api_version, frame + 4 + rq->header_len,
                              size - rq->header_len, &v);
    if (rc < 0) {
        kg_conn_close(c, KG_LOG_WARN, "malformed %s v%d request", kp_api_name(rq->api_key),
                      rq->api_version);
    } else if (v.action == KG_AUTHZ_CLOSE) {
        conn_authz_denied(c, &who, v.why);
        kg_conn_close(c, KG_LOG_INFO, "ACLs deny %s, which %s v%d cannot answer", v.why,
                      kp_api_name(rq->api_key), rq->api_version);
        rc = -1;
    } else if (v.action == KG_AUTHZ_ANSWER) {
        conn_authz_denied(c, &who, v.why);
        uint32_t len = 0;
        uint8_t *out = conn_make_frame(rq->api_key, rq->api_version, rq->correlation_id,
                                       v.answer.buf, v.answer.len, &len);
        kg_vcm_request(c->vc->metrics, rq->api_key);
        kg_buf_consume(&c->req_in, 4 + (size_t)size);
        rc = out && conn_answer_locally(c, rq, out, len, 0) == 0 ? 1 : -1;
        if (!out) kg_conn_close(c, KG_LOG_ERROR, "out of memory answering a denied request");
    } else {
        if (v.patch && v.patch->n > 0) conn_authz_denied(c, &who, v.why);
        c->authz_pending = v.patch;
        rc = 2;
    }
    kg_acl_release((kg_acl_set *)who.acls);
    kg_authz_verdict_free(&v);
    return rc;
}

/* ---------------------------------------------------------------- the request path
 *
 * A request goes through a chain of stages, each deciding on the frame at the head of req_in
 * (as far as it is here) and returning what becomes of it:
 *   STAGE_NEXT    the next stage decides;
 *   STAGE_TAKEN   the frame was handled (answered, forwarded or made a pass-through);
 *   STAGE_WAIT    more bytes (or time) are needed first: the chain runs again on them;
 *   STAGE_CLOSED  the connection was closed.
 * Authentication (SASL at kgate) comes before the frame is parsed, since a v0 handshake is
 * followed by bare tokens that are no Kafka frames; the others see the parsed header. */

enum { STAGE_CLOSED = -1, STAGE_WAIT = 0, STAGE_TAKEN = 1, STAGE_NEXT = 2 };

typedef struct conn_request {
    kg_wire_request rq;
    uint8_t *frame; /* size prefix included; writable (the authorize stage renames in place) */
    uint32_t size;  /* after the size prefix */
    int complete;   /* the whole frame is in req_in */
} conn_request;

typedef int (*conn_stage)(kg_conn *c, conn_request *r);

static const uint8_t *request_body(const conn_request *r)
{
    return r->frame + 4 + r->rq.header_len;
}

static size_t request_body_len(const conn_request *r)
{
    return (size_t)r->size - r->rq.header_len;
}

/* validate: the route still holds, kgate knows the API and version, clients may send it, and
 * its body decodes (APIs other than Produce and Fetch, which stream). */
static int stage_validate(kg_conn *c, conn_request *r)
{
    const kg_wire_request *rq = &r->rq;
    /* The switch came before the worker's order to retire this connection (kg_worker): it
     * retires now, so that this request gets kgate's answer (stage_retired) and the ones in
     * flight keep the old side's, as the order would have it. */
    if (conn_route_is_stale(c) && !c->retire_at_us &&
        !conn_retire(c, kg_now_us() + (uint64_t)c->limits->switch_grace_ms * 1000u, 1))
        return STAGE_CLOSED;
    /* ApiVersions of any version is answered (a too-new one as a broker does). */
    int apiversions = rq->api_key == KG_API_APIVERSIONS;
    if (!apiversions && !kp_api_supported(rq->api_key, rq->api_version)) {
        /* A broker closes the connection too; kgate could not even frame the answer. */
        kg_conn_close(c, KG_LOG_WARN, "request for %s (api key %d) v%d, which kgate does not know",
                      kp_api_name(rq->api_key), rq->api_key, rq->api_version);
        return STAGE_CLOSED;
    }
    if (!kp_api_client_facing(rq->api_key)) {
        /* Only brokers and controllers send these; a client that does is hostile or lost. */
        kg_conn_close(c, KG_LOG_WARN,
                      "request for %s (api key %d), an inter-broker/controller API "
                      "kgate never forwards",
                      kp_api_name(rq->api_key), rq->api_key);
        return STAGE_CLOSED;
    }
    if (apiversions || !kg_wire_validated(rq->api_key) || c->held.active) return STAGE_NEXT;
    if (!r->complete) return STAGE_WAIT;
    const char *why;
    if (kg_wire_validate_request(rq->api_key, rq->api_version, request_body(r), request_body_len(r),
                                 &why) < 0) {
        kg_conn_close(c, KG_LOG_WARN, "malformed %s v%d request: %s", kp_api_name(rq->api_key),
                      rq->api_version, why);
        return STAGE_CLOSED;
    }
    return STAGE_NEXT;
}

static void conn_count_request(kg_conn *c, const conn_request *r)
{
    kg_vcm_request(c->vc->metrics, r->rq.api_key);
    kg_vcm_payload(c->vc->metrics, r->rq.api_key, 4 + (size_t)r->size);
    kg_gateway_note_request(c->vc, c->route);
}

static int conn_planned_pending(kg_conn *c);

/* planned: a planned switch (kg_planned) holds new Produce requests at the head of req_in
 * (every later request waits behind, the client is back-pressured); after it switched, a
 * retiring connection's Produce requests go to the new side through kgate instead of getting
 * the retriable answer, so that a client that does not retry sees no error. */
static int stage_planned(kg_conn *c, conn_request *r)
{
    const kg_wire_request *rq = &r->rq;
    if (rq->api_key != KG_API_PRODUCE || !c->vc->planned) return STAGE_NEXT;
    uint64_t route = atomic_load_explicit(&c->vc->route, memory_order_acquire);
    int mode = kg_planned_mode(c->vc->planned, c->route, route);
    /* Another switch came since (not planned): this connection retires as at any switch. */
    if (route != c->route && mode != KG_PLANNED_RELEASE) return STAGE_NEXT;
    int relayed = mode == KG_PLANNED_RELEASE || c->planned_release > 0 || c->planned_relay;
    /* A request a chaos latency rule holds is held, or relayed, by the planned switch instead:
     * sent on after its delay it would reach the old side after the mirror's last pass (an
     * acknowledged record the new side never gets), or bypass the relay. */
    if (mode == KG_PLANNED_HOLD || relayed) conn_unhold(c);
    if (mode == KG_PLANNED_HOLD) {
        if (!c->planned_wait) kg_planned_note_held(c->vc->planned, 4 + r->size);
        c->planned_wait = 1;
        return STAGE_WAIT;
    }
    /* Released: held when the switch came (and read before it), or read by a connection that
     * could not move to the new side; else it goes to the new side as any request does. */
    if (!relayed) {
        /* Straight to the broker again: after the relayed ones only, so that no record
         * overtakes one relayed before it. */
        return conn_planned_pending(c) ? STAGE_WAIT : STAGE_NEXT;
    }
    c->planned_wait = 0;
    if (!r->complete) return STAGE_WAIT;
    uint32_t frame = 4 + r->size;
    c->planned_release = c->planned_release > frame ? c->planned_release - frame : 0;
    kg_inflight *e = NULL;
    if (!rq->no_response) {
        if (c->q_len >= KG_MAX_INFLIGHT || !(e = queue_push(c))) return STAGE_NEXT;
        e->correlation_id = rq->correlation_id;
        e->api_key = rq->api_key;
        e->api_version = rq->api_version;
        e->sent_us = kg_loop_now(c->loop);
        e->flags = KG_INFLIGHT_PLANNED;
        c->planned_pending++;
    }
    if (kg_planned_release(c->vc->planned, c->worker, c->serial, c->node_id, rq->api_version,
                           rq->correlation_id, !rq->no_response, request_body(r),
                           request_body_len(r)) < 0) {
        if (e) { /* the last one pushed: stage_retired answers it */
            c->q_len--;
            c->planned_pending--;
        }
        return STAGE_NEXT;
    }
    conn_count_request(c, r);
    kg_buf_consume(&c->req_in, 4 + (size_t)r->size);
    return STAGE_TAKEN;
}

/* whole: on a virtual cluster that can switch, Produce and Fetch are read whole before they go
 * on (not streamed), so that kgate knows their partitions and can answer them in the old side's
 * place should a switch's grace end first (kg_conn_expire). Other APIs are whole already.
 * Requests above KG_CONN_HANDOVER_WHOLE_MAX (bulk producers' batches) still stream: reading them
 * whole cost a sixth of kgate's 1 KiB-record produce throughput (make bench); at a grace end
 * they are left unanswered and the connection closes, as a broker going away does. */
static int stage_whole(kg_conn *c, conn_request *r)
{
    if (r->complete || c->vc->cfg->secondary < 0 || !kg_handover_answerable(r->rq.api_key) ||
        r->size > KG_CONN_HANDOVER_WHOLE_MAX)
        return STAGE_NEXT;
    return STAGE_WAIT;
}

/* Answers request R with the response body in W (freed), after DELAY_US: the request is
 * taken, it never reaches a broker. */
static int conn_answer_body(kg_conn *c, conn_request *r, kp_writer *w, uint64_t delay_us)
{
    const kg_wire_request *rq = &r->rq;
    uint32_t len = 0;
    uint8_t *frame =
        conn_make_frame(rq->api_key, rq->api_version, rq->correlation_id, w->buf, w->len, &len);
    kp_writer_free(w);
    conn_count_request(c, r);
    kg_buf_consume(&c->req_in, 4 + (size_t)r->size);
    return conn_answer_locally(c, rq, frame, len, delay_us) < 0 ? STAGE_CLOSED : STAGE_TAKEN;
}

/* retired: the virtual cluster switched while this connection was open (kg_conn_retire). A
 * request read from now on never reaches the old side: kgate answers it at once with the
 * retriable error a moved leader or coordinator gives, and the client sends it again on its
 * new connection. One kgate cannot answer stops the reading; the connection closes with it
 * unread once the answers before it are out. */
static int stage_retired(kg_conn *c, conn_request *r)
{
    if (!c->retire_at_us || c->held.active) return STAGE_NEXT;
    if (!r->complete) return STAGE_WAIT;
    const kg_wire_request *rq = &r->rq;
    if (rq->no_response) { /* acks=0: the client expects no answer, and gets none */
        conn_count_request(c, r);
        kg_buf_consume(&c->req_in, 4 + (size_t)r->size);
        return STAGE_TAKEN;
    }
    kp_writer w;
    kp_writer_init(&w, 64);
    if (conn_handover_answer(c, rq->api_key, rq->api_version, request_body(r), request_body_len(r),
                             &w) != 0) {
        kp_writer_free(&w);
        c->retire_stuck = 1;
        return STAGE_WAIT;
    }
    kg_vcm_handover(c->vc->metrics, rq->api_key);
    return conn_answer_body(c, r, &w, 0);
}

/* A Heartbeat of a member whose JoinGroup on the new side is under way (kg_rejoin_in_join):
 * kgate's answer without error, so that it does not rejoin a second time. */
static int conn_answer_heartbeat_ok(kg_conn *c, conn_request *r)
{
    const kg_wire_request *rq = &r->rq;
    kp_writer w;
    kp_writer_init(&w, 16);
    if (kg_rejoin_heartbeat_ok(rq->api_version, &w) != 0) {
        kp_writer_free(&w);
        return STAGE_NEXT; /* a version kgate cannot encode: the new side answers */
    }
    return conn_answer_body(c, r, &w, 0);
}

/* rejoin: a consumer group member that has not rejoined its group since a switch neither
 * fetches nor commits at the old cluster's positions (kg_rejoin.h): its first Fetch gets
 * NOT_LEADER_OR_FOLLOWER, its later ones no records, its OffsetCommit UNKNOWN_MEMBER_ID, from
 * kgate; once it sends JoinGroup, its Heartbeats get no error until it has synced. */
static int stage_rejoin(kg_conn *c, conn_request *r)
{
    const kg_wire_request *rq = &r->rq;
    if (!c->vc->rejoin || c->client_id_len < 0 ||
        (rq->api_key != KG_API_FETCH && rq->api_key != KG_API_OFFSET_COMMIT &&
         rq->api_key != KP_KEY_HEARTBEAT && rq->api_key != KP_KEY_JOIN_GROUP))
        return STAGE_NEXT;
    char host[64];
    conn_peer_address(c, host);
    uint64_t route = atomic_load_explicit(&c->vc->route, memory_order_acquire);
    if (!kg_rejoin_pending(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host, route))
        return STAGE_NEXT;
    if (rq->api_key == KP_KEY_JOIN_GROUP) {
        kg_rejoin_joining(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host, route,
                          kg_now_us());
        return STAGE_NEXT;
    }
    if (!r->complete) return STAGE_WAIT;
    if (rq->api_key == KP_KEY_HEARTBEAT &&
        kg_rejoin_in_join(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host, route,
                          kg_now_us()))
        return conn_answer_heartbeat_ok(c, r);
    /* One request starts its rejoin: its Heartbeat (the new side answers UNKNOWN_MEMBER_ID), its
     * OffsetCommit (kgate does) or its first Fetch (kg_rejoin_first); later Fetches must not. */
    int first = kg_rejoin_first(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host, route);
    if (rq->api_key == KP_KEY_HEARTBEAT) return STAGE_NEXT;
    kp_writer w;
    kp_writer_init(&w, 64);
    int16_t error = rq->api_key == KG_API_FETCH ? 0 : KG_KAFKA_UNKNOWN_MEMBER_ID;
    uint64_t delay_us = 0;
    int rc;
    if (rq->api_key == KG_API_FETCH && !first) {
        delay_us = KG_REJOIN_FETCH_WAIT_MS * 1000; /* no records, as a broker with none */
        rc = kg_chaos_fabricate(rq->api_key, rq->api_version, request_body(r), request_body_len(r),
                                0, NULL, &w);
    } else {
        rc = kg_handover_answer_with(rq->api_key, rq->api_version, request_body(r),
                                     request_body_len(r), error, &w);
    }
    if (rc != 0) {
        kp_writer_free(&w);
        return STAGE_NEXT; /* undecodable: the broker says what is wrong with it */
    }
    return conn_answer_body(c, r, &w, delay_us);
}

/* A request held by chaos latency goes on, with the decision made when it arrived. */
static int stage_held(kg_conn *c, conn_request *r)
{
    if (!c->held.active) return STAGE_NEXT;
    if (c->upstream_wait) return STAGE_WAIT; /* not into kgate's own login exchange */
    return conn_take_held(c, &r->rq, r->frame, r->size);
}

/* Nothing goes to the broker before kgate's own login to it (clusters.NAME.sasl) is done; what
 * kgate answers itself (SASL at kgate, ApiVersions) does not wait for it. */
static int stage_upstream_ready(kg_conn *c, conn_request *r)
{
    return c->upstream_wait ? STAGE_WAIT : STAGE_NEXT;
}

/* The client id the request names (chaos scopes and TCP faults use it). */
static int stage_client_id(kg_conn *c, conn_request *r)
{
    return conn_note_client_id(c, &r->rq) < 0 ? STAGE_CLOSED : STAGE_NEXT;
}

/* ApiVersions ends at kgate: the versions both clusters (and kgate) support. */
static int stage_api_versions(kg_conn *c, conn_request *r)
{
    kg_version_ranges ranges;
    if (r->rq.api_key != KG_API_APIVERSIONS || !kg_gateway_version_ranges(c->gw, c->vc, &ranges))
        return STAGE_NEXT;
    if (!r->complete) return STAGE_WAIT;
    kg_vcm_request(c->vc->metrics, r->rq.api_key);
    kg_buf_consume(&c->req_in, 4 + (size_t)r->size);
    return conn_answer_apiversions(c, &r->rq, &ranges) < 0 ? STAGE_CLOSED : STAGE_TAKEN;
}

/* authorize (acls: enabled), see conn_authorize. */
static int stage_authorize(kg_conn *c, conn_request *r)
{
    if (!c->vc->cfg->acls_enabled) return STAGE_NEXT;
    return conn_authorize(c, &r->rq, r->frame, r->size, r->complete);
}

/* auth: passthrough — the client's login goes to the cluster; kgate reads along. */
static int stage_passthrough_login(kg_conn *c, conn_request *r)
{
    int16_t api = r->rq.api_key;
    if (!c->pass || (api != KG_API_SASL_HANDSHAKE && api != KG_API_SASL_AUTHENTICATE))
        return STAGE_NEXT;
    if (api == KG_API_SASL_HANDSHAKE && r->rq.api_version == 0) {
        /* v0 is followed by bare SASL tokens, which are not Kafka frames. Clients that know
         * SaslAuthenticate (Kafka 1.0+, every librdkafka) use v1. */
        kg_conn_close(c, KG_LOG_WARN,
                      "SaslHandshake v0 (bare SASL tokens) cannot pass through kgate; the client "
                      "library predates SaslAuthenticate");
        return STAGE_CLOSED;
    }
    /* validated, so the frame is whole */
    kg_passthrough_request(c->pass, api, r->rq.api_version, request_body(r), request_body_len(r));
    return STAGE_NEXT;
}

/* chaos: the rules of the connection's snapshot that match this request. */
static int stage_chaos(kg_conn *c, conn_request *r)
{
    int with_rules = conn_chaos_sync(c);
    if (with_rules <= 0) return with_rules < 0 ? STAGE_CLOSED : STAGE_NEXT;
    int rc = conn_chaos_request(c, &r->rq, r->frame, r->size, r->complete);
    if (rc == STAGE_TAKEN) conn_count_request(c, r);
    return rc;
}

/* route: to the backend of the connection's route, streamed after the header. */
static int stage_forward(kg_conn *c, conn_request *r)
{
    conn_count_request(c, r);
    /* The groups committing through kgate: a switch applies offsets.policy to them. */
    if (r->rq.api_key == KG_API_OFFSET_COMMIT && r->complete && c->vc->offsets)
        kg_offsets_note_commit(c->vc->offsets, c->cluster->index, r->rq.api_version,
                               request_body(r), request_body_len(r));
    /* The group members kgate's clients have on this side: a switch leaves them (kg_leave). */
    if (r->complete && c->vc->leave)
        kg_leave_note(c->vc->leave, c->cluster->index, r->rq.api_key, r->rq.api_version,
                      request_body(r), request_body_len(r));
    if (!r->rq.no_response && !conn_track_request(c, &r->rq, r->complete ? request_body(r) : NULL,
                                                  r->complete ? request_body_len(r) : 0))
        return STAGE_CLOSED;
    c->req_pass = 4 + r->size;
    if (c->walk_pending) conn_walk_start(c, &r->rq);
    return STAGE_TAKEN;
}

static const conn_stage request_stages[] = {
    stage_validate,          stage_planned, stage_whole,   stage_held,           stage_client_id,
    stage_api_versions,      stage_retired, stage_rejoin,  stage_upstream_ready, stage_authorize,
    stage_passthrough_login, stage_chaos,   stage_forward,
};

/* Looks at the frame at the start of req_in. Returns 1 when it was handled (consumed or made a
 * pass-through), 0 when more bytes (or time) are needed, -1 when the connection was closed. */
static int conn_take_request(kg_conn *c)
{
    uint8_t *p = kg_buf_begin(&c->req_in);
    size_t avail = kg_buf_len(&c->req_in);
    if (avail < 4) return STAGE_WAIT;
    if (c->sasl) { /* authenticate: SASL at kgate */
        int rc = conn_sasl_stage(c, p, avail);
        if (rc != STAGE_NEXT) return rc;
    }
    conn_request r = {.frame = p, .size = kg_wire_get_u32(p)};
    if ((int32_t)r.size < KG_WIRE_MIN_REQUEST || r.size > c->limits->max_frame_bytes) {
        kg_conn_close(c, KG_LOG_WARN, "bad request frame size %d (allowed %d..%u)", (int32_t)r.size,
                      KG_WIRE_MIN_REQUEST, c->limits->max_frame_bytes);
        return STAGE_CLOSED;
    }
    r.complete = avail >= 4 + (size_t)r.size;
    int rc = kg_wire_parse_request(p + 4, r.complete ? r.size : avail - 4, r.size, &r.rq);
    if (rc == KG_WIRE_NEED_MORE) return STAGE_WAIT;
    if (rc == KG_WIRE_BAD) {
        kg_conn_close(c, KG_LOG_WARN, "malformed request header (api %d v%d): %s", r.rq.api_key,
                      r.rq.api_version, r.rq.error);
        return STAGE_CLOSED;
    }
    for (size_t i = 0; i < sizeof(request_stages) / sizeof(request_stages[0]); i++) {
        rc = request_stages[i](c, &r);
        if (rc != STAGE_NEXT) return rc;
    }
    return STAGE_TAKEN; /* not reached: the last stage always takes the request */
}

/* Streams pass-through bytes of the current frame from IN to SIDE, as many as are here, and
 * counts them off *PASS. */
static int conn_pass_bytes(kg_conn *c, kg_buf *in, uint32_t *pass, int side)
{
    size_t n = kg_buf_len(in);
    if (n > *pass) n = *pass;
    if (conn_emit(c, side, kg_buf_begin(in), n) < 0) return -1;
    kg_buf_consume(in, n);
    *pass -= (uint32_t)n;
    return 0;
}

static void conn_process_requests(kg_conn *c)
{
    while (c->state == KG_CONN_PROXYING || c->state == KG_CONN_CONNECTING ||
           (c->state == KG_CONN_DRAINING && c->drain_boundary)) {
        if (c->req_pass > 0) {
            uint32_t before = c->req_pass;
            if (kg_buf_len(&c->req_in) == 0) return;
            if (c->walking ? conn_pass_walk(c) < 0
                           : conn_pass_bytes(c, &c->req_in, &c->req_pass, TO_BACKEND) < 0)
                return;
            if (c->req_pass == before) return; /* the walk waits for more of a field */
            continue;
        }
        if (kg_buf_len(&c->req_out) >= high_water(c))
            return; /* backpressure: the backend is slower than the client */
        if (conn_take_request(c) <= 0) return;
    }
}

/* ---------------------------------------------------------------- kgate's login upstream */

static int conn_upstream_send(kg_conn *c, const kp_writer *w)
{
    if (w->err || kg_buf_append(&c->req_out, w->buf, w->len) < 0) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory logging in to %s", c->backend);
        return -1;
    }
    return conn_flush(c, TO_BACKEND);
}

/* Starts the login once nothing of the client's is in flight at the broker (a broker takes a
 * re-authentication only between requests). */
static void conn_upstream_maybe_start(kg_conn *c)
{
    if (c->upstream || c->state != KG_CONN_PROXYING || c->req_pass || c->resp_pass ||
        queue_first_waiting(c))
        return;
    /* Credential swap: the login is the client's own, so it waits for the client to log in to
     * kgate first (kgate answers that exchange itself). */
    if (c->cluster->n_swaps && c->sasl && !kg_sasl_principal(c->sasl)) return;
    kg_version_ranges ranges;
    int known = kg_cluster_versions(c->cluster, &ranges);
    c->upstream = malloc(sizeof(*c->upstream));
    if (!c->upstream) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory logging in to %s", c->backend);
        return;
    }
    kg_sasl_client_init(c->upstream, kg_cluster_creds_for(c->cluster, conn_principal(c)),
                        known ? ranges.max[KG_API_SASL_AUTHENTICATE] : -1);
    kp_writer w;
    kp_writer_init(&w, 128);
    if (kg_sasl_client_start(c->upstream, &w) < 0) w.err = 1;
    conn_upstream_send(c, &w);
    kp_writer_free(&w);
}

static void conn_upstream_done(kg_conn *c)
{
    int64_t lifetime_ms = c->upstream->session_lifetime_ms;
    kg_sasl_client_free(c->upstream);
    free(c->upstream);
    c->upstream = NULL;
    c->upstream_wait = 0;
    /* Like Kafka's clients: log in again at 85-95 % of the session the broker granted. */
    if (lifetime_ms > 0) {
        uint64_t us = (uint64_t)lifetime_ms * 1000u;
        uint64_t jitter = kg_now_us() % (us / 10 + 1);
        kg_loop_timer_in(c->loop, &c->reauth_timer, us * 85 / 100 + jitter);
    }
}

/* The broker's answers during the login: they belong to kgate, not to the client. */
static void conn_upstream_responses(kg_conn *c)
{
    while (c->upstream && c->state != KG_CONN_CLOSED) {
        const uint8_t *p = kg_buf_begin(&c->resp_in);
        size_t avail = kg_buf_len(&c->resp_in);
        if (avail < 4) return;
        uint32_t size = kg_wire_get_u32(p);
        if (size < 4 || size > KG_SCRAM_MSG_MAX * 4) {
            kg_conn_close(c, KG_LOG_WARN, "bad response frame size %u during SASL login", size);
            return;
        }
        if (avail < 4 + (size_t)size) return;
        kp_writer w;
        kp_writer_init(&w, 0);
        int rc = kg_sasl_client_next(c->upstream, p + 4, size, &w);
        kg_buf_consume(&c->resp_in, 4 + (size_t)size);
        if (rc == KG_SASL_CLIENT_SEND) {
            conn_upstream_send(c, &w);
        } else if (rc == KG_SASL_CLIENT_DONE) {
            conn_upstream_done(c);
            conn_process_requests(c);
        } else {
            kg_warn("vcluster %s: kgate's SASL login to broker %s of cluster %s failed: %s",
                    c->vc->cfg->name, c->backend, c->cluster->cfg->name, c->upstream->error);
            kg_conn_close(c, KG_LOG_DEBUG, "SASL login to the broker failed");
        }
        kp_writer_free(&w);
    }
}

static void conn_reauth_due(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    c->upstream_wait = 1; /* new requests wait; the login starts once in-flight ones are done */
    conn_upstream_maybe_start(c);
    conn_after_io(c);
}

/* ---------------------------------------------------------------- responses */

/* Brokers are advertised on the port range the client came in on (plain or TLS). */
static int conn_port_for_node(void *ctx, int32_t node_id)
{
    const kg_conn *c = ctx;
    int port = kg_vcluster_node_port(c->vc, node_id);
    return port < 0 ? port : port - c->vc->cfg->port + c->port_base;
}

static void conn_broker_seen(void *ctx, int32_t node_id, const kp_str *host, int32_t port,
                             const kp_str *rack)
{
    kg_conn *c = ctx;
    /* A connection opened before a reload moved the cluster's bootstrap would teach the brokers
     * of the old addresses back. */
    if (host->len > 0 && c->cluster_gen == atomic_load(&c->cluster->bootstrap_gen))
        kg_cluster_learn_broker(c->cluster, node_id, host->ptr, (size_t)host->len, port);
}

/* Mutation (chaos) then address rewriting of one whole response frame. Returns 1 with the new
 * frame in OUT, 0 when the original frame stands, -1 when the connection was closed. */
/* A topic a Metadata answer described: the virtual cluster's parity record (kg_parity). */
static void conn_topic_seen(void *ctx, const kp_str *name, int32_t partitions)
{
    kg_parity_note_topic(ctx, name->ptr, (size_t)name->len, partitions);
}

static int conn_transform_response(kg_conn *c, const kg_inflight *e, const uint8_t *frame,
                                   uint32_t size, kp_writer *out)
{
    size_t hdr_len = kg_wire_response_header_len(e->api_key, e->api_version, frame + 4, size);
    if (hdr_len == 0) {
        kg_conn_close(c, KG_LOG_WARN, "malformed %s response header from backend",
                      kp_api_name(e->api_key));
        return -1;
    }
    const uint8_t *body = frame + 4 + hdr_len;
    size_t body_len = size - hdr_len;
    /* Fetch v13+ names topics by id: topic-scoped chaos rules learn the ids from Metadata. */
    if (e->api_key == KG_API_METADATA && e->api_version >= 10 && c->chaos &&
        kg_chaos_wants_topic_ids(c->chaos))
        kg_chaos_observe_metadata(c->gw->chaos, e->api_version, body, body_len);
    kp_writer mutated = {0};
    int changed = 0, rc = 0;
    if (e->flags & KG_INFLIGHT_MUTATE) {
        kg_chaos_action act = {.mutation = e->mutation};
        if (kg_chaos_on_response(e->chaos, &act, e->api_key, e->api_version, body, body_len,
                                 &mutated) == 1) {
            body = mutated.buf;
            body_len = mutated.len;
            changed = 1;
        }
    }
    size_t len_at = kp_writer_reserve_len(out);
    kp_write_raw(out, frame + 4, hdr_len);
    size_t body_at = out->len;
    if (e->flags & KG_INFLIGHT_GROUP) {
        rc = kg_rewrite_group_errors(e->api_key, e->api_version, body, body_len, out);
        changed |= rc == 1;
        if (rc < 0) /* not ours to judge: deliver what the broker sent */
            rc = 0;
    } else if (e->flags & KG_INFLIGHT_REWRITE) {
        kg_node_map map = {.host = c->gw->cfg->advertised_host,
                           .port_for_node = conn_port_for_node,
                           .ctx = c,
                           .fallback_port = c->vc->cfg->port,
                           .hide_leader_epochs = c->vc->cfg->hide_leader_epochs,
                           .cluster_id = c->vc->cfg->cluster_id,
                           .topic_seen = conn_topic_seen,
                           .topic_ctx = c->vc->parity};
        rc = kg_rewrite_response(e->api_key, e->api_version, body, body_len, &map, conn_broker_seen,
                                 c, out);
        changed |= rc == 1;
    }
    if (rc == 0 && changed) {
        out->len = body_at;
        kp_write_raw(out, body, body_len);
    }
    kp_writer_patch_len(out, len_at);
    kp_writer_free(&mutated);
    if (rc < 0 || out->err) {
        kg_conn_close(c, KG_LOG_WARN, "cannot decode %s v%d response from backend to rewrite it",
                      kp_api_name(e->api_key), e->api_version);
        return -1;
    }
    return changed;
}

/* kgate's ApiVersions answer for a request it forwarded (before the cluster was probed). */
static uint8_t *conn_apiversions_frame(kg_conn *c, const kg_inflight *e, const uint8_t *frame,
                                       uint32_t size, uint32_t *frame_len)
{
    /* ApiVersions responses always have header v0: the body starts after the correlation id. */
    kg_version_ranges backend, ranges;
    int16_t error = 0;
    kg_gateway_version_ranges(c->gw, c->vc, &ranges);
    if (kg_versions_parse(frame + 8, size - 4, e->api_version, &backend, &error) == 0) {
        kg_versions_intersect(&ranges, &backend);
    } else if (size >= 6 && (int16_t)(frame[8] << 8 | frame[9]) == KG_KAFKA_UNSUPPORTED_VERSION) {
        /* Some brokers answer a too-new version in a layout of their own; the error code
         * leads every layout, and kgate's own ranges are what the client needs. */
        error = KG_KAFKA_UNSUPPORTED_VERSION;
    } else {
        return NULL;
    }
    kp_writer w = {0};
    int16_t version = error == KG_KAFKA_UNSUPPORTED_VERSION ? 0 : e->api_version;
    kg_versions_build_response(&w, version, e->correlation_id, &ranges, error, 0);
    if (w.err) {
        kp_writer_free(&w);
        return NULL;
    }
    *frame_len = (uint32_t)w.len;
    return w.buf;
}

/* A whole response frame for entry E: work out what the client gets and make E ready. */
/* acls: enabled — the broker's answer with the denied topics named again (and filtered): a new
 * frame in W, which *FRAME / *SIZE then point to. -1 when C was closed. */
static int conn_authz_response(kg_conn *c, const kg_inflight *e, const uint8_t **frame,
                               uint32_t *size, kp_writer *w)
{
    size_t head = kg_wire_response_header_len(e->api_key, e->api_version, *frame + 4, *size);
    kg_authz_who who = conn_authz_who(c);
    kp_writer_init(w, *size + 64);
    size_t at = kp_writer_reserve_len(w);
    kp_write_raw(w, *frame + 4, head);
    int rc = head ? kg_authz_response(e->authz, &who, e->api_key, e->api_version, *frame + 4 + head,
                                      *size - head, w)
                  : -1;
    kg_acl_release((kg_acl_set *)who.acls);
    if (rc < 0) {
        kg_conn_close(c, KG_LOG_WARN, "cannot decode the %s v%d response to patch it for ACLs",
                      kp_api_name(e->api_key), e->api_version);
        return -1;
    }
    kp_writer_patch_len(w, at);
    *frame = w->buf;
    *size = (uint32_t)w->len - 4;
    return 0;
}

/* auth: passthrough — the cluster's answer to a SaslAuthenticate the client sent. */
static void conn_read_sasl_verdict(kg_conn *c, const kg_inflight *e, const uint8_t *frame,
                                   uint32_t size)
{
    size_t off = kg_wire_response_header_len(e->api_key, e->api_version, frame + 4, size);
    if (off &&
        kg_passthrough_response(c->pass, e->api_key, e->api_version, frame + 4 + off, size - off))
        kg_debug("connection from %s (vcluster %s) logged in to cluster %s as %s", c->peer,
                 c->vc->cfg->name, c->cluster->cfg->name, c->pass->principal);
}

/* A SyncGroup that succeeded: its client has (re)joined its group on this connection's route. */
static void conn_note_sync(kg_conn *c, const kg_inflight *e, const uint8_t *frame, uint32_t size)
{
    size_t hdr = kg_wire_response_header_len(e->api_key, e->api_version, frame + 4, size);
    if (!hdr || c->client_id_len < 0 ||
        kg_rejoin_sync_error(e->api_version, frame + 4 + hdr, size - hdr) != 0)
        return;
    char host[64];
    conn_peer_address(c, host);
    kg_rejoin_synced(c->vc->rejoin, c->client_id, (size_t)c->client_id_len, host, c->route);
}

static int conn_finish_response(kg_conn *c, kg_inflight *e, const uint8_t *frame, uint32_t size)
{
    if (e->api_key == KG_API_SYNC_GROUP && c->vc->rejoin) conn_note_sync(c, e, frame, size);
    uint8_t *out = NULL;
    uint32_t out_len = 0;
    if (e->flags & KG_INFLIGHT_SWALLOW) {
        /* the client never sent this request: nothing to deliver */
    } else if (e->flags & KG_INFLIGHT_REPLACE) {
        out = e->frame;
        out_len = e->frame_len;
        e->frame = NULL;
        if (!out) {
            kg_conn_close(c, KG_LOG_ERROR, "out of memory for a chaos response");
            return -1;
        }
    } else if (e->flags & KG_INFLIGHT_APIVERSIONS) {
        out = conn_apiversions_frame(c, e, frame, size, &out_len);
        if (!out) {
            kg_conn_close(c, KG_LOG_WARN, "cannot decode ApiVersions v%d response from backend",
                          e->api_version);
            return -1;
        }
    } else {
        kp_writer authz = {0};
        if ((e->flags & KG_INFLIGHT_AUTHZ) && conn_authz_response(c, e, &frame, &size, &authz) < 0)
            return -1;
        if (e->flags & KG_INFLIGHT_SASL) conn_read_sasl_verdict(c, e, frame, size);
        kp_writer w = {0};
        int rc = conn_transform_response(c, e, frame, size, &w);
        if (rc == 0 && authz.buf) { /* the patched frame is the answer: keep its buffer */
            out = authz.buf;
            out_len = 4 + size;
        } else if (rc == 0) {
            out = malloc(4 + (size_t)size);
            if (out) memcpy(out, frame, 4 + (size_t)size);
            out_len = 4 + size;
        } else if (rc > 0) {
            out = w.buf;
            out_len = (uint32_t)w.len;
        }
        if (rc != 0 || !authz.buf) kp_writer_free(&authz);
        if (rc <= 0) kp_writer_free(&w);
        if (rc < 0) return -1;
        if (!out) {
            kg_conn_close(c, KG_LOG_ERROR, "out of memory for a %u-byte response", size);
            return -1;
        }
    }
    if (out && (e->flags & KG_INFLIGHT_INSPECT))
        conn_inspect(c, e->api_key, e->api_version, out, out_len);
    inflight_ready(c, e, out, out_len);
    return 0;
}

/* Looks at the response at the start of resp_in. Same return convention as
 * conn_take_request. */
static int conn_take_response(kg_conn *c)
{
    const uint8_t *p = kg_buf_begin(&c->resp_in);
    size_t avail = kg_buf_len(&c->resp_in);
    if (avail < 8) return 0;
    int32_t size = (int32_t)kg_wire_get_u32(p);
    int32_t corr = (int32_t)kg_wire_get_u32(p + 4);
    kg_inflight *e = queue_first_waiting(c);
    if (size < 4 || (uint32_t)size > c->limits->max_frame_bytes) {
        kg_conn_close(c, KG_LOG_WARN, "bad response frame size %d from backend", size);
        return -1;
    }
    if (!e || e->correlation_id != corr) {
        kg_conn_close(c, KG_LOG_WARN, "backend sent correlation id %d, expected %d", corr,
                      e ? e->correlation_id : -1);
        return -1;
    }
    int plain = !(e->flags & (KG_INFLIGHT_REWRITE | KG_INFLIGHT_APIVERSIONS | KG_INFLIGHT_SWALLOW |
                              KG_INFLIGHT_REPLACE | KG_INFLIGHT_MUTATE | KG_INFLIGHT_INSPECT |
                              KG_INFLIGHT_GROUP | KG_INFLIGHT_SASL | KG_INFLIGHT_AUTHZ)) &&
                e->delay_us == 0 && e == queue_head(c);
    if (!(e->flags & KG_INFLIGHT_SWALLOW)) {
        kg_vcm_response(c->vc->metrics, e->api_key, kg_loop_now(c->loop) - e->sent_us);
        kg_vcm_payload(c->vc->metrics, e->api_key, 4 + (size_t)size);
    }
    if (plain) {
        queue_pop(c);
        c->resp_pass = 4 + (uint32_t)size;
        return 1;
    }
    if (avail < 4 + (size_t)size) {
        /* Whole frame needed; make sure the buffer can hold it. */
        if (kg_buf_reserve(&c->resp_in, 4 + (size_t)size - avail) < 0) {
            kg_conn_close(c, KG_LOG_ERROR, "out of memory for a %d-byte response", size);
            return -1;
        }
        return 0;
    }
    if (conn_finish_response(c, e, p, (uint32_t)size) < 0) return -1;
    kg_buf_consume(&c->resp_in, 4 + (size_t)size);
    return queue_deliver_ready(c) < 0 ? -1 : 1;
}

/* A response streamed to its end may have kgate's own answers queued right behind it. */
static int conn_pass_response_bytes(kg_conn *c)
{
    if (conn_pass_bytes(c, &c->resp_in, &c->resp_pass, TO_CLIENT) < 0) return -1;
    return c->resp_pass == 0 ? queue_deliver_ready(c) : 0;
}

static void conn_process_responses(kg_conn *c)
{
    if (c->upstream) {
        conn_upstream_responses(c);
        return;
    }
    while (c->state != KG_CONN_CLOSED) {
        if (c->resp_pass > 0) {
            if (kg_buf_len(&c->resp_in) == 0 || conn_pass_response_bytes(c) < 0) return;
            continue;
        }
        if (c->expired) { /* kgate answered in the old side's place: its answers come too late */
            kg_buf_consume(&c->resp_in, kg_buf_len(&c->resp_in));
            return;
        }
        if (kg_buf_len(&c->resp_out) >= high_water(c) || side_frozen(c, TO_CLIENT))
            return; /* backpressure: the client is slower than the backend */
        if (conn_take_response(c) <= 0) return;
    }
}

/* ---------------------------------------------------------------- socket events */

/* A TLS record carries at most this much: a read with this much room takes a whole one, so
 * OpenSSL never keeps decrypted bytes that epoll would not announce. */
#define KG_TLS_RECORD_MAX 16384

/* Decrypts what SSL has into BUF, record by record, while BUF has room for a whole record. */
static ssize_t conn_read_tls(SSL *ssl, kg_buf *buf, size_t max)
{
    ssize_t total = 0;
    for (;;) {
        size_t room = buf->cap - buf->tail;
        if (room > max - (size_t)total) room = max - (size_t)total;
        ssize_t n = kg_tls_read(ssl, buf->data + buf->tail, room);
        if (n <= 0) return total > 0 ? total : n;
        buf->tail += (size_t)n;
        total += n;
        if ((size_t)total == max) return total; /* draining: the rest is after the boundary */
        if (buf->cap - buf->tail < KG_TLS_RECORD_MAX && SSL_pending(ssl) == 0) return total;
        if (kg_buf_reserve(buf, KG_TLS_RECORD_MAX) < 0) return KG_TLS_FAIL;
    }
}

/* Reads once from the socket of SIDE into BUF (into the worker's scratch when BUF is empty).
 * Returns bytes read, 0 on EOF, -1 on would-block, -2 on error. */
static ssize_t conn_read(kg_conn *c, int side, kg_buf *buf, size_t max)
{
    if (kg_buf_len(buf) == 0) kg_buf_lend(buf, kg_worker_scratch(c->worker), KG_WORKER_SCRATCH);
    if (kg_buf_reserve(buf, KG_READ_CHUNK) < 0) return -2;
    size_t room = buf->cap - buf->tail;
    if (max < room) room = max;
    if (c->ssl[side]) return conn_read_tls(c->ssl[side], buf, room);
    ssize_t n = recv(side_fd(c, side), buf->data + buf->tail, room, 0);
    if (n > 0)
        buf->tail += (size_t)n;
    else if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
    return n;
}

/* Sends what is queued for one side. Returns -1 when the connection was closed. */
static int conn_flush(kg_conn *c, int side)
{
    if (side_shaped(c, side)) return conn_flush_shaped(c, side);
    kg_buf *out = side == TO_CLIENT ? &c->resp_out : &c->req_out;
    while (kg_buf_len(out) > 0) {
        ssize_t w = conn_send(c, side, kg_buf_begin(out), kg_buf_len(out));
        if (w == KG_TLS_AGAIN) break;
        if (w == KG_TLS_FAIL) {
            conn_io_failed(c, side, "write to");
            return -1;
        }
        kg_buf_consume(out, (size_t)w);
    }
    kg_buf_trim(out, KG_IDLE_BUF_CAP);
    return 0;
}

static void conn_after_io(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED) return;
    /* Retiring after a planned switch, its last old-side answer out: it moves after all. */
    if (c->retire_at_us && !c->expired && conn_planned_rehome(c)) {
        conn_process_requests(c);
        if (c->state == KG_CONN_CLOSED) return;
    }
    if (kg_buf_settle(&c->req_in) < 0 || kg_buf_settle(&c->resp_in) < 0) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory keeping a partial frame");
        return;
    }
    kg_buf_trim(&c->req_in, KG_IDLE_BUF_CAP);
    kg_buf_trim(&c->resp_in, KG_IDLE_BUF_CAP);
    if (c->state == KG_CONN_DRAINING && c->drain_boundary && kg_conn_at_boundary(c)) {
        if (!c->retire_at_us) {
            conn_close_at_boundary(c, "drained at a request boundary");
            return;
        }
        /* Retiring: a client may have sent its next request as the last answer left; closing
         * now would cut it (a transport error, which a client without retries reports). It
         * gets kgate's retriable answer instead (stage_retired), and the connection closes once
         * nothing has come for a moment, which a client backing off after that answer gives. */
        kg_loop_timer_in(c->loop, &c->quiet_timer, KG_RETIRE_QUIET_US);
    }
    if (c->retire_stuck && conn_is_idle(c) && c->req_pass == 0 && kg_buf_len(&c->req_out) == 0 &&
        !c->held.active && !c->upstream) {
        conn_close_at_boundary(c,
                               "switched: answered all kgate could, a request it cannot is left");
        return;
    }
    if (c->state == KG_CONN_DRAINING && !c->drain_boundary && conn_is_idle(c)) {
        kg_conn_close(c, KG_LOG_DEBUG, "drained");
        return;
    }
    if (c->upstream_wait && !c->upstream) {
        conn_upstream_maybe_start(c);
        if (c->state == KG_CONN_CLOSED) return;
    }
    conn_update_interest(c);
}

/* Timers: a held request's time came, a held response's time came, a shaped side may write. */
static void conn_quiet_due(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    if (c->state != KG_CONN_CLOSED && kg_conn_at_boundary(c))
        conn_close_at_boundary(c, "switched: every answer out, the client quiet");
}

static void conn_release_held(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    conn_process_requests(c);
    conn_after_io(c);
}

static void conn_release_response(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    if (queue_deliver_ready(c) < 0) return;
    conn_process_responses(c);
    conn_after_io(c);
}

static void conn_chaos_recheck(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    if (conn_chaos_sync(c) < 0) return;
    if (c->tcp.faults && c->recheck_timer.heap_index < 0)
        kg_loop_timer_in(loop, &c->recheck_timer, KG_CHAOS_RECHECK_US);
    /* A side that is no longer frozen or shaped has bytes waiting, and may read again. */
    if (conn_flush(c, TO_BACKEND) < 0 || conn_flush(c, TO_CLIENT) < 0) return;
    conn_process_requests(c);
    if (c->state != KG_CONN_CLOSED) conn_process_responses(c);
    conn_after_io(c);
}

static void conn_shape_flush(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    if (conn_flush(c, TO_BACKEND) < 0 || conn_flush(c, TO_CLIENT) < 0) return;
    /* Output drained below the high-water mark: both directions may read again. */
    conn_process_requests(c);
    if (c->state != KG_CONN_CLOSED) conn_process_responses(c);
    conn_after_io(c);
}

/* ---------------------------------------------------------------- TLS handshakes */

#define KG_TLS_LOG_PER_SECOND 10

/* mTLS: the client certificate's subject, mapped to the principal chaos rules and logs see (and
 * that SASL at kgate, when the vcluster has it too, replaces). -1 when C was closed. */
/* The client's address without the port: "10.0.0.1:5000" -> "10.0.0.1". */
static void conn_peer_address(const kg_conn *c, char host[64])
{
    snprintf(host, 64, "%s", c->peer);
    char *colon = strrchr(host, ':');
    if (colon) *colon = '\0';
}

/* A failed client handshake, for the aggregated audit entry (one client, one sample). */
static void conn_note_tls_failure(kg_conn *c, const char *reason)
{
    char host[64];
    conn_peer_address(c, host);
    kg_tls_failures_note(c->vc->tls_failures, reason, host);
}

static int conn_take_cert_principal(kg_conn *c)
{
    char subject[512], name[256];
    if (!kg_tls_peer_subject(c->ssl[TO_CLIENT], subject, sizeof(subject))) return 0;
    if (kg_principal_map_apply(&c->vc->principals, subject, name, sizeof(name)) < 0) {
        kg_counter_inc(c->vc->tls_handshakes[0]);
        conn_note_tls_failure(c, "no principal_mapping rule matches");
        if (kg_log_limit_allows(&c->vc->tls_log, KG_TLS_LOG_PER_SECOND))
            kg_warn("vcluster %s: client %s: no principal_mapping rule matches certificate "
                    "subject '%s'",
                    c->vc->cfg->name, c->peer, subject);
        kg_conn_close(c, KG_LOG_DEBUG, "no principal for the client certificate");
        return -1;
    }
    size_t len = strlen(name) + 6;
    c->cert_principal = malloc(len);
    if (!c->cert_principal) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory");
        return -1;
    }
    snprintf(c->cert_principal, len, "User:%s", name);
    return 0;
}

static void conn_tls_failed(kg_conn *c, int side)
{
    char reason[256];
    kg_tls_error(c->ssl[side], reason, sizeof(reason));
    if (side == TO_CLIENT) {
        kg_counter_inc(c->vc->tls_handshakes[0]);
        conn_note_tls_failure(c, reason);
        if (kg_log_limit_allows(&c->vc->tls_log, KG_TLS_LOG_PER_SECOND))
            kg_info("vcluster %s: TLS handshake with client %s failed: %s", c->vc->cfg->name,
                    c->peer, reason);
        kg_conn_close(c, KG_LOG_DEBUG, "TLS handshake failed");
    } else {
        kg_warn("vcluster %s: TLS handshake with broker %s of cluster %s failed: %s",
                c->vc->cfg->name, c->backend, c->cluster->cfg->name, reason);
    }
}

/* Drives the TLS handshake on SIDE: 1 when done (or there is none), 0 while it waits, -1 when
 * it failed (the client side closes C; the caller decides for a broker). */
static int conn_tls_handshake(kg_conn *c, int side)
{
    if (!c->handshaking[side]) return 1;
    int want_write = 0;
    int rc = kg_tls_handshake(c->ssl[side], &want_write);
    if (rc == 0) {
        c->hs_want_write[side] = (uint8_t)want_write;
        return 0;
    }
    if (rc < 0) {
        conn_tls_failed(c, side);
        return -1;
    }
    c->handshaking[side] = 0;
    if (side == TO_BACKEND) return 1;
    kg_counter_inc(c->vc->tls_handshakes[1]);
    return conn_take_cert_principal(c) < 0 ? -1 : 1;
}

static void conn_client_event(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    kg_conn *c = arg;
    if (c->state == KG_CONN_CLOSED) return;
    int hs = conn_tls_handshake(c, TO_CLIENT);
    if (hs <= 0) {
        if (hs == 0) conn_update_interest(c);
        return;
    }
    if ((mask & KG_EV_WRITE) && conn_flush(c, TO_CLIENT) < 0) return;
    size_t allowance = conn_read_allowance(c);
    if ((mask & KG_EV_READ) && allowance > 0) {
        ssize_t n = conn_read(c, TO_CLIENT, &c->req_in, allowance);
        if (n == 0 && (kg_buf_len(&c->req_in) > 0 || c->req_pass > 0)) {
            kg_conn_close(c, KG_LOG_WARN,
                          "client closed the connection in the middle of a "
                          "request (%zu bytes of it unsent)",
                          kg_buf_len(&c->req_in) + c->req_pass);
            return;
        }
        if (n == 0) {
            kg_conn_close(c, KG_LOG_DEBUG, "client closed the connection");
            return;
        }
        if (n == -2) {
            conn_io_failed(c, TO_CLIENT, "read from");
            return;
        }
        if (n > 0) {
            kg_vcm_bytes_in(c->vc->metrics, (size_t)n);
            conn_process_requests(c);
        }
    }
    /* Output made room again: responses held back by backpressure can move on. */
    if (c->state != KG_CONN_CLOSED && kg_buf_len(&c->resp_in) > 0) conn_process_responses(c);
    conn_after_io(c);
}

static void conn_backend_connected(kg_conn *c)
{
    kg_loop_timer_cancel(c->loop, &c->connect_timer);
    if (c->state == KG_CONN_CONNECTING)
        c->state = c->drain_boundary ? KG_CONN_DRAINING : KG_CONN_PROXYING;
    kg_debug("connection from %s (vcluster %s) proxied to %s", c->peer, c->vc->cfg->name,
             c->backend);
}

/* TCP is up to a TLS cluster: start the handshake. -1 when C was closed. */
static int conn_backend_tls_start(kg_conn *c)
{
    char host[KG_HOST_MAX];
    kg_cluster_desc_host(c->backend, host, sizeof(host));
    c->ssl[TO_BACKEND] = kg_tls_client_session(c->cluster->tls, c->backend_io.fd, host);
    if (!c->ssl[TO_BACKEND]) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory starting TLS to %s", c->backend);
        return -1;
    }
    c->handshaking[TO_BACKEND] = 1;
    return 0;
}

static void conn_backend_event(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    kg_conn *c = arg;
    if (c->state == KG_CONN_CLOSED) return;
    if (c->state == KG_CONN_CONNECTING) {
        if (!c->ssl[TO_BACKEND]) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
            if (err != 0) {
                kg_warn("vcluster %s: backend %s unreachable: %s", c->vc->cfg->name, c->backend,
                        strerror(err));
                conn_connect_next(c);
                return;
            }
            if (c->cluster->tls && conn_backend_tls_start(c) < 0) return;
        }
        int hs = conn_tls_handshake(c, TO_BACKEND);
        if (hs < 0) {
            conn_connect_next(c);
            return;
        }
        if (hs == 0) {
            conn_update_interest(c);
            return;
        }
        conn_backend_connected(c);
        conn_process_requests(c);
        if (c->state != KG_CONN_CLOSED && side_shaped(c, TO_BACKEND) &&
            conn_flush_shaped(c, TO_BACKEND) < 0)
            return;
    }
    if ((mask & KG_EV_WRITE) && conn_flush(c, TO_BACKEND) < 0) return;
    if (mask & KG_EV_READ) {
        ssize_t n = conn_read(c, TO_BACKEND, &c->resp_in, SIZE_MAX);
        if (n == 0 || n == -2) {
            conn_flush(c, TO_CLIENT);
            kg_conn_close(c, KG_LOG_DEBUG,
                          n == 0 ? "backend closed the connection" : "backend read error");
            return;
        }
        if (n > 0) conn_process_responses(c);
    }
    if (c->state != KG_CONN_CLOSED && kg_buf_len(&c->req_in) > 0) conn_process_requests(c);
    conn_after_io(c);
}

/* ---------------------------------------------------------------- backend connect */

static void conn_connect_timeout(kg_loop *loop, void *arg)
{
    kg_conn *c = arg;
    kg_warn("vcluster %s: connect to backend %s timed out", c->vc->cfg->name, c->backend);
    conn_connect_next(c);
}

static int conn_socket_for(const kg_sockaddr *addr)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Opens the backend connection, trying the next candidate broker on each call. */
static void conn_connect_next(kg_conn *c)
{
    if (c->backend_io.fd >= 0) {
        kg_loop_io_del(c->loop, &c->backend_io);
        kg_tls_free(c->ssl[TO_BACKEND]);
        c->ssl[TO_BACKEND] = NULL;
        c->handshaking[TO_BACKEND] = 0;
        c->tls_retry[TO_BACKEND] = 0;
        close(c->backend_io.fd);
        c->backend_io.fd = -1;
    }
    c->cluster_gen = atomic_load(&c->cluster->bootstrap_gen);
    while (c->connect_attempt < KG_MAX_CONNECT_ATTEMPTS) {
        kg_sockaddr addr;
        int picked = kg_cluster_pick(c->cluster, c->node_id, c->connect_attempt++, &addr,
                                     c->backend, sizeof(c->backend));
        if (picked == -2) {
            /* the client retries once a Metadata answer through kgate named the brokers */
            kg_conn_close(c, KG_LOG_DEBUG, "broker %d of cluster %s not known yet", c->node_id,
                          c->cluster->cfg->name);
            return;
        }
        if (picked < 0) break;
        int fd = conn_socket_for(&addr);
        if (fd < 0) continue;
        if (connect(fd, (struct sockaddr *)&addr.sa, addr.len) < 0 && errno != EINPROGRESS) {
            kg_warn("vcluster %s: backend %s unreachable: %s", c->vc->cfg->name, c->backend,
                    strerror(errno));
            close(fd);
            continue;
        }
        c->backend_io = (kg_io){.fd = fd, .fn = conn_backend_event, .arg = c};
        c->state = KG_CONN_CONNECTING;
        kg_loop_timer_in(c->loop, &c->connect_timer,
                         (uint64_t)c->limits->connect_timeout_ms * 1000u);
        conn_update_interest(c);
        return;
    }
    kg_conn_close(c, KG_LOG_WARN, "no broker of cluster %s reachable", c->cluster->cfg->name);
}

static void conn_describe_peer(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(out, len, "%s:%d", host, port);
}

/* The per-connection state of the security stages the vcluster has. -1 when out of memory
 * (conn_free_stages releases what was made). */
static int conn_open_stages(kg_conn *c, int client_fd, int tls)
{
    kg_vcluster *vc = c->vc;
    if (vc->sasl) {
        if (!(c->sasl = malloc(sizeof(*c->sasl)))) return -1;
        kg_sasl_conn_init(c->sasl, vc->sasl);
    }
    if (vc->cfg->auth_passthrough && !(c->pass = calloc(1, sizeof(*c->pass)))) return -1;
    if (tls) {
        if (!(c->ssl[TO_CLIENT] = kg_tls_server_session(vc->tls, client_fd))) return -1;
        c->handshaking[TO_CLIENT] = 1;
    }
    return 0;
}

kg_conn *kg_conn_open(kg_worker *w, kg_loop *loop, kg_gateway *gw, int client_fd, kg_vcluster *vc,
                      int32_t node_id, int tls)
{
    kg_conn *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->worker = w;
    c->loop = loop;
    c->gw = gw;
    c->limits = kg_gateway_limits(gw); /* this connection's, for its whole life */
    c->vc = vc;
    c->node_id = node_id;
    /* The routing snapshot: this connection serves this epoch's active cluster, or nothing. */
    c->route = atomic_load_explicit(&vc->route, memory_order_acquire);
    c->cluster = &gw->clusters[KG_ROUTE_ACTIVE(c->route)];
    c->client_io = (kg_io){.fd = client_fd, .fn = conn_client_event, .arg = c};
    c->backend_io.fd = -1;
    c->client_id_len = -1;
    static atomic_uint_fast64_t serials;
    c->serial = atomic_fetch_add(&serials, 1) + 1;
    kg_timer_init(&c->connect_timer, conn_connect_timeout, c);
    kg_timer_init(&c->request_timer, conn_release_held, c);
    kg_timer_init(&c->response_timer, conn_release_response, c);
    kg_timer_init(&c->shape_timer[0], conn_shape_flush, c);
    kg_timer_init(&c->shape_timer[1], conn_shape_flush, c);
    kg_timer_init(&c->reset_timer, conn_reset_now, c);
    kg_timer_init(&c->recheck_timer, conn_chaos_recheck, c);
    kg_timer_init(&c->quiet_timer, conn_quiet_due, c);
    kg_timer_init(&c->reauth_timer, conn_reauth_due, c);
    c->upstream_wait = c->cluster->cfg->sasl.mechanism != KG_SASL_NONE;
    kg_chaos_action_init(&c->held.action);
    c->port_base = tls && vc->cfg->tls.port ? vc->cfg->tls.port : vc->cfg->port;
    if (conn_open_stages(c, client_fd, tls) < 0) {
        conn_free_stages(c);
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_describe_peer(client_fd, c->peer, sizeof(c->peer));
    if (vc->cfg->acls_enabled) {
        /* ACL hosts are addresses without the port */
        char host[64];
        conn_peer_address(c, host);
        if (kg_acl_canonical_host(host, c->peer_host) < 0) c->peer_host[0] = '\0';
    }
    atomic_fetch_add(&vc->client_conns, 1);
    kg_vcm_conn_opened(vc->metrics);
    kg_debug("connection from %s to vcluster %s %s %d", c->peer, vc->cfg->name,
             node_id < 0 ? "bootstrap port" : "broker", node_id < 0 ? vc->cfg->port : node_id);
    return c;
}

void kg_conn_start(kg_conn *c)
{
    if (conn_chaos_sync(c) < 0) return;
    conn_connect_next(c);
}

/* ---------------------------------------------------------------- planned switchover */

int kg_conn_planned_inflight(kg_conn *c)
{
    int n = c->req_pass > 0 || kg_buf_len(&c->req_out) > 0;
    for (uint32_t i = 0; i < c->q_len; i++) {
        const kg_inflight *e = queue_at(c, i);
        if (e->api_key == KG_API_PRODUCE && !(e->flags & (KG_INFLIGHT_READY | KG_INFLIGHT_PLANNED)))
            n++;
    }
    return n;
}

/* A planned switch (kg_planned) published the route C's virtual cluster now has: C moves to
 * the new side instead of retiring, when nothing of it waits for the old side (no answer, no
 * byte half sent either way) and it logged in to nothing there (auth: passthrough). The
 * requests it read and holds go to the new side through kgate's release step (their leaders
 * may be other brokers there); what the client sends from now on goes to the same broker id on
 * the new side, as on a new connection. So the client sees no disconnect: no connection
 * closes with requests outstanding, and no client refreshes its metadata on one that would.
 * Returns 1 when C moved. */
static int conn_planned_rehome(kg_conn *c)
{
    uint64_t route = atomic_load_explicit(&c->vc->route, memory_order_acquire);
    if (!c->vc->planned || route == c->route ||
        kg_planned_mode(c->vc->planned, c->route, route) != KG_PLANNED_RELEASE)
        return 0;
    int retiring = c->state == KG_CONN_DRAINING && c->retire_at_us && !c->expired;
    if ((c->state != KG_CONN_PROXYING && !retiring) || c->pass || c->upstream || c->upstream_wait ||
        c->walking || c->held.active || c->req_pass || c->resp_pass || kg_buf_len(&c->req_out) ||
        kg_buf_len(&c->resp_in) || kg_buf_len(&c->resp_out))
        return 0;
    for (uint32_t i = 0; i < c->q_len; i++)
        if (!(queue_at(c, i)->flags & (KG_INFLIGHT_READY | KG_INFLIGHT_PLANNED))) return 0;
    c->route = route;
    c->cluster = &c->gw->clusters[KG_ROUTE_ACTIVE(route)];
    c->planned_release = (uint32_t)kg_buf_len(&c->req_in);
    c->planned_relay = 1;
    c->retire_at_us = 0;
    c->drain_boundary = 0;
    c->retire_stuck = 0;
    kg_loop_timer_cancel(c->loop, &c->quiet_timer);
    c->upstream_wait = c->cluster->cfg->sasl.mechanism != KG_SASL_NONE;
    kg_loop_timer_cancel(c->loop, &c->reauth_timer);
    c->state = KG_CONN_CONNECTING;
    c->connect_attempt = 0;
    kg_debug("connection from %s (vcluster %s) moves to cluster %s (planned switch)", c->peer,
             c->vc->cfg->name, c->cluster->cfg->name);
    conn_connect_next(c); /* closes the old side's socket first */
    return c->state != KG_CONN_CLOSED;
}

void kg_conn_planned_kick(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED) return;
    if (!c->planned_wait && kg_buf_len(&c->req_in) == 0) return;
    c->planned_wait = 0;
    conn_process_requests(c);
    conn_after_io(c);
}

int kg_conn_planned_answer(kg_conn *c, uint64_t serial, int32_t correlation_id, uint8_t *frame,
                           uint32_t len, int direct)
{
    if (c->serial != serial) return 0;
    if (direct) c->planned_relay = 0;
    for (uint32_t i = 0; i < c->q_len; i++) {
        kg_inflight *e = queue_at(c, i);
        if (!(e->flags & KG_INFLIGHT_PLANNED) || (e->flags & KG_INFLIGHT_READY) ||
            e->correlation_id != correlation_id)
            continue;
        inflight_ready(c, e, frame, len);
        c->planned_pending--;
        if (queue_deliver_ready(c) < 0) return 1;
        conn_process_requests(c); /* a Produce may have waited for the relayed ones */
        conn_after_io(c);
        return 1;
    }
    return 0;
}
