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

#include "engine/kg_worker.h"
#include "engine/kg_wire.h"
#include "proto/kp_prim.h"
#include "route/kg_gateway.h"
#include "route/kg_rewrite.h"
#include "route/kg_versions.h"
#include "route/kg_vcmetrics.h"
#include "util/kg_log.h"

#define KG_READ_CHUNK (128 * 1024)
#define KG_IDLE_BUF_CAP (256 * 1024)
#define KG_MAX_CONNECT_ATTEMPTS 4
#define KG_MAX_INFLIGHT 100000

enum { TO_BACKEND = 0, TO_CLIENT = 1 };

static void conn_client_event(kg_loop *loop, int fd, unsigned mask, void *arg);
static void conn_backend_event(kg_loop *loop, int fd, unsigned mask, void *arg);
static void conn_connect_next(kg_conn *c);

/* ---------------------------------------------------------------- helpers */

static uint32_t high_water(const kg_conn *c)
{
    return c->gw->cfg->buffer_bytes;
}

static void conn_update_interest(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED)
        return;
    unsigned cmask = 0, bmask = 0;
    int can_read_requests = c->state != KG_CONN_DRAINING && kg_buf_len(&c->req_out) < high_water(c);
    if (can_read_requests)
        cmask |= KG_EV_READ;
    if (kg_buf_len(&c->resp_out) > 0)
        cmask |= KG_EV_WRITE;
    if (c->state == KG_CONN_CONNECTING) {
        bmask = KG_EV_WRITE;
    } else {
        if (kg_buf_len(&c->resp_out) < high_water(c))
            bmask |= KG_EV_READ;
        if (kg_buf_len(&c->req_out) > 0)
            bmask |= KG_EV_WRITE;
    }
    if (kg_loop_io_set(c->loop, &c->client_io, cmask) < 0 ||
        (c->backend_io.fd >= 0 && kg_loop_io_set(c->loop, &c->backend_io, bmask) < 0))
        kg_conn_close(c, KG_LOG_ERROR, "epoll_ctl failed: %s", strerror(errno));
}

/* Writes N bytes towards one side: straight to the socket when nothing is queued before them
 * (the common case, which saves a copy), the rest into that side's output buffer. */
static int conn_emit(kg_conn *c, int side, const uint8_t *p, size_t n)
{
    kg_buf *out = side == TO_CLIENT ? &c->resp_out : &c->req_out;
    int fd = side == TO_CLIENT ? c->client_io.fd : c->backend_io.fd;
    int connected = side == TO_CLIENT || c->state != KG_CONN_CONNECTING;
    if (side == TO_CLIENT)
        kg_vcm_bytes_out(c->vc->metrics, n);
    if (kg_buf_len(out) == 0 && connected && n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            kg_conn_close(c, KG_LOG_DEBUG, "write to %s failed: %s",
                          side == TO_CLIENT ? "client" : "backend", strerror(errno));
            return -1;
        }
    }
    if (n > 0 && kg_buf_append(out, p, n) < 0) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory buffering %zu bytes", n);
        return -1;
    }
    return 0;
}

static int conn_emit_frame_size(kg_conn *c, int side, uint32_t size)
{
    uint8_t be[4];
    kg_wire_put_u32(be, size);
    return conn_emit(c, side, be, 4);
}

/* ---------------------------------------------------------------- in-flight queue */

static kg_inflight *queue_head(kg_conn *c)
{
    return c->q_len ? &c->queue[c->q_head] : NULL;
}

static kg_inflight *queue_push(kg_conn *c)
{
    if (c->q_len == c->q_cap) {
        uint32_t cap = c->q_cap ? c->q_cap * 2 : 16;
        kg_inflight *q = malloc(cap * sizeof(*q));
        if (!q)
            return NULL;
        for (uint32_t i = 0; i < c->q_len; i++)
            q[i] = c->queue[(c->q_head + i) % c->q_cap];
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

static void queue_pop(kg_conn *c)
{
    kg_inflight *e = &c->queue[c->q_head];
    free(e->local_frame);
    e->local_frame = NULL;
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
}

/* Responses kgate made itself go out as soon as every earlier response has. */
static int queue_flush_local(kg_conn *c)
{
    kg_inflight *e;
    while ((e = queue_head(c)) && (e->flags & KG_INFLIGHT_LOCAL)) {
        if (conn_emit(c, TO_CLIENT, e->local_frame, e->local_len) < 0)
            return -1;
        queue_pop(c);
    }
    return 0;
}

/* ---------------------------------------------------------------- closing */

void kg_conn_close(kg_conn *c, int log_level, const char *fmt, ...)
{
    if (c->state == KG_CONN_CLOSED)
        return;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (kg_log_enabled((enum kg_log_level)log_level))
        kg_log((enum kg_log_level)log_level,
               "closing connection from %s (vcluster %s, backend %s, %u in flight): %s", c->peer,
               c->vc->cfg->name, c->backend[0] ? c->backend : "-", c->q_len, reason);
    for (uint32_t i = 0; i < c->q_len; i++)
        kg_vcm_unanswered(c->vc->metrics, c->queue[(c->q_head + i) % c->q_cap].api_key);
    c->state = KG_CONN_CLOSED;
    kg_loop_timer_cancel(c->loop, &c->connect_timer);
    kg_loop_io_del(c->loop, &c->client_io);
    close(c->client_io.fd);
    c->client_io.fd = -1;
    if (c->backend_io.fd >= 0) {
        kg_loop_io_del(c->loop, &c->backend_io);
        close(c->backend_io.fd);
        c->backend_io.fd = -1;
    }
    atomic_fetch_sub(&c->vc->client_conns, 1);
    kg_vcm_conn_closed(c->vc->metrics);
    kg_worker_conn_closed(c->worker, c);
}

void kg_conn_free(kg_conn *c)
{
    while (c->q_len)
        queue_pop(c);
    free(c->queue);
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

void kg_conn_drain(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED)
        return;
    if (conn_is_idle(c) || c->state == KG_CONN_CONNECTING) {
        kg_conn_close(c, KG_LOG_DEBUG, "gateway shutting down");
        return;
    }
    c->state = KG_CONN_DRAINING;
    conn_update_interest(c);
}

/* ---------------------------------------------------------------- requests */

/* A switch changed the routing word: nothing more may reach the old cluster. */
static int conn_route_is_stale(const kg_conn *c)
{
    return atomic_load_explicit(&c->vc->route, memory_order_acquire) != c->route;
}

static int conn_answer_locally(kg_conn *c, const kg_wire_request *rq, kp_writer *w)
{
    kg_inflight *e = queue_push(c);
    if (!e)
        return -1;
    e->correlation_id = rq->correlation_id;
    e->api_key = rq->api_key;
    e->api_version = rq->api_version;
    e->flags = KG_INFLIGHT_LOCAL;
    e->local_frame = w->buf; /* ownership moves to the queue entry */
    e->local_len = (uint32_t)w->len;
    w->buf = NULL;
    return queue_flush_local(c);
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
    int rc = w.err ? -1 : conn_answer_locally(c, rq, &w);
    kp_writer_free(&w);
    if (rc < 0)
        kg_conn_close(c, KG_LOG_ERROR, "cannot build an ApiVersions response");
    return rc;
}

static int conn_track_request(kg_conn *c, const kg_wire_request *rq)
{
    if (c->q_len >= KG_MAX_INFLIGHT) {
        kg_conn_close(c, KG_LOG_WARN, "more than %d requests in flight", KG_MAX_INFLIGHT);
        return -1;
    }
    kg_inflight *e = queue_push(c);
    if (!e) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory");
        return -1;
    }
    e->correlation_id = rq->correlation_id;
    e->api_key = rq->api_key;
    e->api_version = rq->api_version;
    e->sent_us = kg_loop_now(c->loop);
    if (rq->api_key == KG_API_APIVERSIONS)
        e->flags |= KG_INFLIGHT_APIVERSIONS;
    else if (kg_rewrite_wanted(rq->api_key, rq->api_version))
        e->flags |= KG_INFLIGHT_REWRITE;
    return 0;
}

/* Looks at the frame at the start of req_in. Returns 1 when it was handled (consumed or made a
 * pass-through), 0 when more bytes are needed, -1 when the connection was closed. */
static int conn_take_request(kg_conn *c)
{
    const uint8_t *p = kg_buf_begin(&c->req_in);
    size_t avail = kg_buf_len(&c->req_in);
    if (avail < 4)
        return 0;
    int32_t size = (int32_t)kg_wire_get_u32(p);
    if (size < KG_WIRE_MIN_REQUEST || (uint32_t)size > c->gw->cfg->max_frame_bytes) {
        kg_conn_close(c, KG_LOG_WARN, "bad request frame size %d (allowed %d..%u)", size,
                      KG_WIRE_MIN_REQUEST, c->gw->cfg->max_frame_bytes);
        return -1;
    }
    kg_wire_request rq;
    int complete = avail >= 4 + (size_t)size;
    int rc = kg_wire_parse_request(p + 4, complete ? (size_t)size : avail - 4, (size_t)size, &rq);
    if (rc == KG_WIRE_NEED_MORE)
        return 0;
    if (rc == KG_WIRE_BAD) {
        kg_conn_close(c, KG_LOG_WARN, "malformed request header (api %d v%d): %s", rq.api_key,
                      rq.api_version, rq.error);
        return -1;
    }
    if (conn_route_is_stale(c)) {
        kg_conn_close(c, KG_LOG_INFO, "virtual cluster %s switched", c->vc->cfg->name);
        return -1;
    }
    kg_vcm_request(c->vc->metrics, rq.api_key);
    kg_version_ranges ranges;
    if (rq.api_key == KG_API_APIVERSIONS && kg_gateway_version_ranges(c->gw, c->vc, &ranges)) {
        if (!complete)
            return 0;
        kg_buf_consume(&c->req_in, 4 + (size_t)size);
        return conn_answer_apiversions(c, &rq, &ranges) < 0 ? -1 : 1;
    }
    if (!rq.no_response && conn_track_request(c, &rq) < 0)
        return -1;
    c->req_pass = 4 + (uint32_t)size;
    return 1;
}

/* Streams pass-through bytes of the current request to the backend, as many as are here. */
static int conn_pass_request_bytes(kg_conn *c)
{
    size_t n = kg_buf_len(&c->req_in);
    if (n > c->req_pass)
        n = c->req_pass;
    if (conn_emit(c, TO_BACKEND, kg_buf_begin(&c->req_in), n) < 0)
        return -1;
    kg_buf_consume(&c->req_in, n);
    c->req_pass -= (uint32_t)n;
    return 0;
}

static void conn_process_requests(kg_conn *c)
{
    while (c->state == KG_CONN_PROXYING || c->state == KG_CONN_CONNECTING) {
        if (c->req_pass > 0) {
            if (kg_buf_len(&c->req_in) == 0 || conn_pass_request_bytes(c) < 0)
                return;
            continue;
        }
        if (kg_buf_len(&c->req_out) >= high_water(c))
            return; /* backpressure: the backend is slower than the client */
        if (conn_take_request(c) <= 0)
            return;
    }
}

/* ---------------------------------------------------------------- responses */

static int conn_port_for_node(void *ctx, int32_t node_id)
{
    return kg_vcluster_node_port(ctx, node_id);
}

static void conn_broker_seen(void *ctx, int32_t node_id, const kp_str *host, int32_t port,
                             const kp_str *rack)
{
    if (host->len > 0)
        kg_cluster_learn_broker(ctx, node_id, host->ptr, (size_t)host->len, port);
}

static int conn_emit_rewritten(kg_conn *c, const uint8_t *frame, size_t hdr_len, kp_writer *body)
{
    if (conn_emit_frame_size(c, TO_CLIENT, (uint32_t)(hdr_len + body->len)) < 0 ||
        conn_emit(c, TO_CLIENT, frame + 4, hdr_len) < 0)
        return -1;
    return conn_emit(c, TO_CLIENT, body->buf, body->len);
}

static int conn_rewrite_addresses(kg_conn *c, const kg_inflight *e, const uint8_t *frame,
                                  uint32_t size)
{
    size_t hdr_len = kg_wire_response_header_len(e->api_key, e->api_version, frame + 4, size);
    if (hdr_len == 0) {
        kg_conn_close(c, KG_LOG_WARN, "malformed response header from backend");
        return -1;
    }
    kg_node_map map = {.host = c->gw->cfg->advertised_host,
                       .port_for_node = conn_port_for_node,
                       .ctx = c->vc,
                       .fallback_port = c->vc->cfg->port};
    kp_writer body = {0};
    int rc = kg_rewrite_response(e->api_key, e->api_version, frame + 4 + hdr_len, size - hdr_len,
                                 &map, conn_broker_seen, c->cluster, &body);
    if (rc < 0 || body.err) {
        kp_writer_free(&body);
        kg_conn_close(c, KG_LOG_WARN, "cannot decode %s v%d response from backend to rewrite it",
                      kp_api_name(e->api_key), e->api_version);
        return -1;
    }
    rc = rc == 0 ? conn_emit(c, TO_CLIENT, frame, 4 + (size_t)size)
                 : conn_emit_rewritten(c, frame, hdr_len, &body);
    kp_writer_free(&body);
    return rc;
}

static int conn_replace_apiversions(kg_conn *c, const kg_inflight *e, const uint8_t *frame,
                                    uint32_t size)
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
        kg_conn_close(c, KG_LOG_WARN, "cannot decode ApiVersions v%d response from backend",
                      e->api_version);
        return -1;
    }
    kp_writer w = {0};
    int16_t version = error == KG_KAFKA_UNSUPPORTED_VERSION ? 0 : e->api_version;
    kg_versions_build_response(&w, version, e->correlation_id, &ranges, error, 0);
    int rc = w.err ? -1 : conn_emit(c, TO_CLIENT, w.buf, w.len);
    kp_writer_free(&w);
    return rc;
}

/* Looks at the response at the start of resp_in. Same return convention as
 * conn_take_request. */
static int conn_take_response(kg_conn *c)
{
    const uint8_t *p = kg_buf_begin(&c->resp_in);
    size_t avail = kg_buf_len(&c->resp_in);
    if (avail < 8)
        return 0;
    int32_t size = (int32_t)kg_wire_get_u32(p);
    int32_t corr = (int32_t)kg_wire_get_u32(p + 4);
    kg_inflight *e = queue_head(c);
    if (size < 4 || (uint32_t)size > c->gw->cfg->max_frame_bytes) {
        kg_conn_close(c, KG_LOG_WARN, "bad response frame size %d from backend", size);
        return -1;
    }
    if (!e || e->correlation_id != corr) {
        kg_conn_close(c, KG_LOG_WARN, "backend sent correlation id %d, expected %d", corr,
                      e ? e->correlation_id : -1);
        return -1;
    }
    kg_vcm_response(c->vc->metrics, e->api_key, kg_loop_now(c->loop) - e->sent_us);
    if (!(e->flags & (KG_INFLIGHT_REWRITE | KG_INFLIGHT_APIVERSIONS))) {
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
    int rc = (e->flags & KG_INFLIGHT_APIVERSIONS) ? conn_replace_apiversions(c, e, p, (uint32_t)size)
                                                  : conn_rewrite_addresses(c, e, p, (uint32_t)size);
    if (rc < 0)
        return -1;
    kg_buf_consume(&c->resp_in, 4 + (size_t)size);
    queue_pop(c);
    return queue_flush_local(c) < 0 ? -1 : 1;
}

static int conn_pass_response_bytes(kg_conn *c)
{
    size_t n = kg_buf_len(&c->resp_in);
    if (n > c->resp_pass)
        n = c->resp_pass;
    if (conn_emit(c, TO_CLIENT, kg_buf_begin(&c->resp_in), n) < 0)
        return -1;
    kg_buf_consume(&c->resp_in, n);
    c->resp_pass -= (uint32_t)n;
    if (c->resp_pass == 0 && queue_flush_local(c) < 0)
        return -1;
    return 0;
}

static void conn_process_responses(kg_conn *c)
{
    while (c->state != KG_CONN_CLOSED) {
        if (c->resp_pass > 0) {
            if (kg_buf_len(&c->resp_in) == 0 || conn_pass_response_bytes(c) < 0)
                return;
            continue;
        }
        if (kg_buf_len(&c->resp_out) >= high_water(c))
            return; /* backpressure: the client is slower than the backend */
        if (conn_take_response(c) <= 0)
            return;
    }
}

/* ---------------------------------------------------------------- socket events */

/* Reads once into BUF (into the worker's scratch when BUF is empty). Returns bytes read, 0 on
 * EOF, -1 on would-block, -2 on error. */
static ssize_t conn_read(kg_conn *c, int fd, kg_buf *buf)
{
    if (kg_buf_len(buf) == 0)
        kg_buf_lend(buf, kg_worker_scratch(c->worker), KG_WORKER_SCRATCH);
    if (kg_buf_reserve(buf, KG_READ_CHUNK) < 0)
        return -2;
    ssize_t n = recv(fd, buf->data + buf->tail, buf->cap - buf->tail, 0);
    if (n > 0)
        buf->tail += (size_t)n;
    else if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
    return n;
}

/* Sends what is queued for one side. Returns -1 when the connection was closed. */
static int conn_flush(kg_conn *c, int side)
{
    kg_buf *out = side == TO_CLIENT ? &c->resp_out : &c->req_out;
    int fd = side == TO_CLIENT ? c->client_io.fd : c->backend_io.fd;
    while (kg_buf_len(out) > 0) {
        ssize_t w = send(fd, kg_buf_begin(out), kg_buf_len(out), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            kg_conn_close(c, KG_LOG_DEBUG, "write to %s failed: %s",
                          side == TO_CLIENT ? "client" : "backend", strerror(errno));
            return -1;
        }
        kg_buf_consume(out, (size_t)w);
    }
    kg_buf_trim(out, KG_IDLE_BUF_CAP);
    return 0;
}

static void conn_after_io(kg_conn *c)
{
    if (c->state == KG_CONN_CLOSED)
        return;
    if (kg_buf_settle(&c->req_in) < 0 || kg_buf_settle(&c->resp_in) < 0) {
        kg_conn_close(c, KG_LOG_ERROR, "out of memory keeping a partial frame");
        return;
    }
    kg_buf_trim(&c->req_in, KG_IDLE_BUF_CAP);
    kg_buf_trim(&c->resp_in, KG_IDLE_BUF_CAP);
    if (c->state == KG_CONN_DRAINING && conn_is_idle(c)) {
        kg_conn_close(c, KG_LOG_DEBUG, "drained");
        return;
    }
    conn_update_interest(c);
}

static void conn_client_event(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    kg_conn *c = arg;
    if (c->state == KG_CONN_CLOSED)
        return;
    if ((mask & KG_EV_WRITE) && conn_flush(c, TO_CLIENT) < 0)
        return;
    if ((mask & KG_EV_READ) && c->state != KG_CONN_DRAINING) {
        ssize_t n = conn_read(c, fd, &c->req_in);
        if (n == 0 || n == -2) {
            kg_conn_close(c, KG_LOG_DEBUG, n == 0 ? "client closed the connection"
                                                  : "client read error");
            return;
        }
        if (n > 0) {
            kg_vcm_bytes_in(c->vc->metrics, (size_t)n);
            conn_process_requests(c);
        }
    }
    /* Output made room again: responses held back by backpressure can move on. */
    if (c->state != KG_CONN_CLOSED && kg_buf_len(&c->resp_in) > 0)
        conn_process_responses(c);
    conn_after_io(c);
}

static void conn_backend_connected(kg_conn *c)
{
    kg_loop_timer_cancel(c->loop, &c->connect_timer);
    if (c->state == KG_CONN_CONNECTING)
        c->state = KG_CONN_PROXYING;
    kg_debug("connection from %s (vcluster %s) proxied to %s", c->peer, c->vc->cfg->name,
             c->backend);
}

static void conn_backend_event(kg_loop *loop, int fd, unsigned mask, void *arg)
{
    kg_conn *c = arg;
    if (c->state == KG_CONN_CLOSED)
        return;
    if (c->state == KG_CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            kg_warn("vcluster %s: backend %s unreachable: %s", c->vc->cfg->name, c->backend,
                    strerror(err));
            conn_connect_next(c);
            return;
        }
        conn_backend_connected(c);
        conn_process_requests(c);
    }
    if ((mask & KG_EV_WRITE) && conn_flush(c, TO_BACKEND) < 0)
        return;
    if (mask & KG_EV_READ) {
        ssize_t n = conn_read(c, fd, &c->resp_in);
        if (n == 0 || n == -2) {
            conn_flush(c, TO_CLIENT);
            kg_conn_close(c, KG_LOG_DEBUG, n == 0 ? "backend closed the connection"
                                                  : "backend read error");
            return;
        }
        if (n > 0)
            conn_process_responses(c);
    }
    if (c->state != KG_CONN_CLOSED && kg_buf_len(&c->req_in) > 0)
        conn_process_requests(c);
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
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Opens the backend connection, trying the next candidate broker on each call. */
static void conn_connect_next(kg_conn *c)
{
    if (c->backend_io.fd >= 0) {
        kg_loop_io_del(c->loop, &c->backend_io);
        close(c->backend_io.fd);
        c->backend_io.fd = -1;
    }
    while (c->connect_attempt < KG_MAX_CONNECT_ATTEMPTS) {
        kg_sockaddr addr;
        if (kg_cluster_pick(c->cluster, c->node_id, c->connect_attempt++, &addr, c->backend,
                            sizeof(c->backend)) < 0)
            break;
        int fd = conn_socket_for(&addr);
        if (fd < 0)
            continue;
        if (connect(fd, (struct sockaddr *)&addr.sa, addr.len) < 0 && errno != EINPROGRESS) {
            kg_warn("vcluster %s: backend %s unreachable: %s", c->vc->cfg->name, c->backend,
                    strerror(errno));
            close(fd);
            continue;
        }
        c->backend_io = (kg_io){.fd = fd, .fn = conn_backend_event, .arg = c};
        c->state = KG_CONN_CONNECTING;
        kg_loop_timer_in(c->loop, &c->connect_timer,
                         (uint64_t)c->gw->cfg->connect_timeout_ms * 1000u);
        conn_update_interest(c);
        return;
    }
    kg_conn_close(c, KG_LOG_WARN, "no broker of cluster %s reachable",
                  c->cluster->cfg->name);
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

kg_conn *kg_conn_open(kg_worker *w, kg_loop *loop, kg_gateway *gw, int client_fd,
                      kg_vcluster *vc, int32_t node_id)
{
    kg_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->worker = w;
    c->loop = loop;
    c->gw = gw;
    c->vc = vc;
    c->node_id = node_id;
    /* The routing snapshot: this connection serves this epoch's active cluster, or nothing. */
    c->route = atomic_load_explicit(&vc->route, memory_order_acquire);
    c->cluster = &gw->clusters[KG_ROUTE_ACTIVE(c->route)];
    c->client_io = (kg_io){.fd = client_fd, .fn = conn_client_event, .arg = c};
    c->backend_io.fd = -1;
    kg_timer_init(&c->connect_timer, conn_connect_timeout, c);
    int one = 1;
    setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_describe_peer(client_fd, c->peer, sizeof(c->peer));
    atomic_fetch_add(&vc->client_conns, 1);
    kg_vcm_conn_opened(vc->metrics);
    kg_debug("connection from %s to vcluster %s %s %d", c->peer, vc->cfg->name,
             node_id < 0 ? "bootstrap port" : "broker", node_id < 0 ? vc->cfg->port : node_id);
    return c;
}

void kg_conn_start(kg_conn *c)
{
    conn_connect_next(c);
}
