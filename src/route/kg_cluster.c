#include "route/kg_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/kg_loop.h"
#include "engine/kg_wire.h"
#include "kp_msgs.h"
#include "proto/kp_prim.h"
#include "util/kg_log.h"
#include "security/kg_sasl_client.h"

#define KG_PROBE_METADATA_MAX_VERSION 12
#define KG_PROBE_CLIENT_ID "kgate-probe"

static int resolve(const char *host, uint16_t port, int numeric_only, kg_sockaddr *out)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = numeric_only ? AI_NUMERICHOST : 0;
    snprintf(portstr, sizeof(portstr), "%u", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res) return -1;
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A copy of the list HP (N) and its addresses, resolved now (an unresolved one has len 0 and
 * is skipped until a reload). Sets c->n_boot on success: the caller holds the write lock or
 * is alone. */
static int cluster_resolve_bootstrap(kg_cluster *c, const kg_hostport *hp, int n,
                                     kg_hostport **hp_out, kg_sockaddr **addr_out)
{
    kg_hostport *copy = calloc(n > 0 ? (size_t)n : 1, sizeof(*copy));
    kg_sockaddr *addrs = calloc(n > 0 ? (size_t)n : 1, sizeof(*addrs));
    if (!copy || !addrs) {
        free(copy);
        free(addrs);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        copy[i] = hp[i];
        if (resolve(hp[i].host, hp[i].port, 0, &addrs[i]) < 0)
            kg_warn("cluster %s: cannot resolve bootstrap %s:%u yet", c->cfg->name, hp[i].host,
                    hp[i].port);
    }
    *hp_out = copy;
    *addr_out = addrs;
    c->n_boot = n;
    return 0;
}

int kg_cluster_bootstrap_is(kg_cluster *c, const kg_hostport *bootstrap, int n)
{
    pthread_rwlock_rdlock(&c->lock);
    int same = n == c->n_boot;
    for (int i = 0; same && i < n; i++)
        same = strcmp(bootstrap[i].host, c->boot_hp[i].host) == 0 &&
               bootstrap[i].port == c->boot_hp[i].port;
    pthread_rwlock_unlock(&c->lock);
    return same;
}

int kg_cluster_set_bootstrap(kg_cluster *c, const kg_hostport *bootstrap, int n)
{
    kg_hostport *hp;
    kg_sockaddr *addrs;
    int old_n = c->n_boot;
    /* Resolving may wait on DNS: not under the lock every new connection takes. */
    if (cluster_resolve_bootstrap(c, bootstrap, n, &hp, &addrs) < 0) return -1;
    int new_n = c->n_boot;
    c->n_boot = old_n;
    pthread_rwlock_wrlock(&c->lock);
    free(c->boot_hp);
    free(c->bootstrap);
    c->boot_hp = hp;
    c->bootstrap = addrs;
    c->n_boot = new_n;
    /* Learnt from the old addresses: the next probe learns them again from the new ones (and
     * connections still on the old ones teach nothing: kg_cluster_learn_broker's callers). */
    atomic_fetch_add(&c->bootstrap_gen, 1);
    free(c->brokers);
    c->brokers = NULL;
    c->n_brokers = 0;
    pthread_rwlock_unlock(&c->lock);
    return 0;
}

int kg_cluster_init(kg_cluster *c, const kg_cluster_cfg *cfg, int index)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->index = index;
    pthread_rwlock_init(&c->lock, NULL);
    kg_sasl_creds_init(&c->creds, &cfg->sasl);
    c->swaps = calloc(cfg->sasl.n_swaps > 0 ? (size_t)cfg->sasl.n_swaps : 1, sizeof(*c->swaps));
    if (!c->swaps) return -1;
    for (int i = 0; i < cfg->sasl.n_swaps; i++)
        kg_sasl_creds_init(&c->swaps[c->n_swaps++], &cfg->sasl.swaps[i].sasl);
    return cluster_resolve_bootstrap(c, cfg->bootstrap, cfg->n_bootstrap, &c->boot_hp,
                                     &c->bootstrap);
}

void kg_cluster_destroy(kg_cluster *c)
{
    free(c->brokers);
    free(c->boot_hp);
    free(c->bootstrap);
    kg_sasl_creds_destroy(&c->creds);
    for (int i = 0; i < c->n_swaps; i++)
        kg_sasl_creds_destroy(&c->swaps[i]);
    free(c->swaps);
    pthread_rwlock_destroy(&c->lock);
}

void kg_cluster_desc_host(const char *desc, char *out, size_t len)
{
    const char *colon = strrchr(desc, ':');
    size_t n = colon ? (size_t)(colon - desc) : strlen(desc);
    if (n >= 2 && desc[0] == '[' && desc[n - 1] == ']') {
        desc++;
        n -= 2;
    }
    snprintf(out, len, "%.*s", (int)n, desc);
}

kg_sasl_creds *kg_cluster_creds_for(kg_cluster *c, const char *principal)
{
    for (int i = 0; principal && i < c->n_swaps; i++)
        if (strcmp(c->cfg->sasl.swaps[i].principal, principal) == 0) return &c->swaps[i];
    return &c->creds;
}

/* ---------------------------------------------------------------- choosing a broker */

static const kg_broker *cluster_find(const kg_cluster *c, int32_t node_id)
{
    for (int i = 0; i < c->n_brokers; i++)
        if (c->brokers[i].node_id == node_id) return &c->brokers[i];
    return NULL;
}

/* Candidate I of the "any broker" list: known brokers first, then the bootstrap list. */
static int cluster_candidate(const kg_cluster *c, unsigned i, kg_sockaddr *out, char *desc,
                             size_t desclen)
{
    unsigned n = (unsigned)(c->n_brokers + c->n_boot);
    for (unsigned k = 0; k < n; k++) {
        unsigned j = (i + k) % n;
        if (j < (unsigned)c->n_brokers) {
            const kg_broker *b = &c->brokers[j];
            if (!b->resolved) continue;
            *out = b->addr;
            snprintf(desc, desclen, "%s:%u (node %d)", b->host, b->port, b->node_id);
            return 0;
        }
        j -= (unsigned)c->n_brokers;
        if (c->bootstrap[j].len == 0) continue;
        *out = c->bootstrap[j];
        snprintf(desc, desclen, "%s:%u (bootstrap)", c->boot_hp[j].host, c->boot_hp[j].port);
        return 0;
    }
    return -1;
}

int kg_cluster_pick(kg_cluster *c, int32_t node_id, int attempt, kg_sockaddr *out, char *desc,
                    size_t desclen)
{
    int rc = -1;
    pthread_rwlock_rdlock(&c->lock);
    const kg_broker *b = node_id >= 0 ? cluster_find(c, node_id) : NULL;
    if (node_id >= 0 && c->versions_only && c->n_brokers == 0) {
        /* Its brokers come from the clients' Metadata (auth: passthrough), none has come yet:
         * a broker connection sent to a bootstrap server would stay with the wrong broker. */
        rc = -2;
    } else if (b && b->resolved && attempt == 0) {
        *out = b->addr;
        snprintf(desc, desclen, "%s:%u (node %d)", b->host, b->port, b->node_id);
        rc = 0;
    } else {
        unsigned start = attempt == 0 ? atomic_fetch_add(&c->round_robin, 1)
                                      : atomic_load(&c->round_robin) + (unsigned)attempt;
        rc = cluster_candidate(c, start, out, desc, desclen);
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

/* ---------------------------------------------------------------- learning brokers */

static int broker_matches(const kg_broker *b, const char *host, size_t host_len, int32_t port)
{
    return b->port == port && strlen(b->host) == host_len && memcmp(b->host, host, host_len) == 0;
}

static void broker_fill(kg_broker *b, int32_t node_id, const char *host, size_t host_len,
                        int32_t port)
{
    b->node_id = node_id;
    if (host_len >= sizeof(b->host)) host_len = sizeof(b->host) - 1;
    memcpy(b->host, host, host_len);
    b->host[host_len] = '\0';
    b->port = (uint16_t)port;
    /* Only numeric addresses resolve here (workers must not block on DNS); names are
     * resolved by the prober thread. */
    b->resolved = resolve(b->host, b->port, 1, &b->addr) == 0;
}

void kg_cluster_learn_broker(kg_cluster *c, int32_t node_id, const char *host, size_t host_len,
                             int32_t port)
{
    if (port <= 0 || port > 65535 || node_id < 0) return;
    pthread_rwlock_rdlock(&c->lock);
    const kg_broker *known = cluster_find(c, node_id);
    int same = known && broker_matches(known, host, host_len, port);
    pthread_rwlock_unlock(&c->lock);
    if (same) return;
    pthread_rwlock_wrlock(&c->lock);
    kg_broker *b = (kg_broker *)cluster_find(c, node_id);
    if (!b) {
        kg_broker *grown = realloc(c->brokers, (size_t)(c->n_brokers + 1) * sizeof(*grown));
        if (grown) {
            c->brokers = grown;
            b = &c->brokers[c->n_brokers++];
        }
    }
    if (b) {
        broker_fill(b, node_id, host, host_len, port);
        kg_info("cluster %s: broker %d is %s:%u", c->cfg->name, node_id, b->host, b->port);
    }
    pthread_rwlock_unlock(&c->lock);
}

int kg_cluster_versions(kg_cluster *c, kg_version_ranges *out)
{
    pthread_rwlock_rdlock(&c->lock);
    int known = c->versions_known;
    if (known) *out = c->versions;
    pthread_rwlock_unlock(&c->lock);
    return known;
}

/* ---------------------------------------------------------------- the health probe */

typedef struct probe_conn {
    int fd;
    SSL *ssl;          /* clusters.NAME.tls */
    char tls_why[200]; /* why TLS failed after the handshake (a broker's alert, ...) */
    uint64_t deadline_us;
    int32_t next_correlation;
} probe_conn;

static int probe_wait(probe_conn *pc, short events)
{
    uint64_t now = kg_now_us();
    struct pollfd pfd = {.fd = pc->fd, .events = events};
    int n = now < pc->deadline_us ? poll(&pfd, 1, (int)((pc->deadline_us - now) / 1000) + 1) : 0;
    if (n == 1) return 0;
    /* Say "timed out" rather than whatever the last would-block left in errno. */
    errno = n == 0 ? ETIMEDOUT : errno;
    return -1;
}

static int probe_connect(probe_conn *pc, const kg_sockaddr *addr)
{
    pc->fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (pc->fd < 0) return -1;
    if (connect(pc->fd, (const struct sockaddr *)&addr->sa, addr->len) < 0 && errno != EINPROGRESS)
        return -1;
    if (probe_wait(pc, POLLOUT) < 0) return -1;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    /* A request's header and body may go in two writes: Nagle would hold the second until the
     * broker's delayed ACK of the first (40 ms a request on a kept connection). */
    int one = 1;
    if (!err) setsockopt(pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return err ? -1 : 0;
}

/* The TLS handshake with the broker named in DESC ("host:port"). */
static int probe_tls(probe_conn *pc, kg_tls_client *tls, const char *desc, char *err, size_t errlen)
{
    char host[KG_HOST_MAX];
    kg_cluster_desc_host(desc, host, sizeof(host));
    pc->ssl = kg_tls_client_session(tls, pc->fd, host);
    if (!pc->ssl) {
        snprintf(err, errlen, "TLS: out of memory");
        return -1;
    }
    for (;;) {
        int want_write = 0;
        int rc = kg_tls_handshake(pc->ssl, &want_write);
        if (rc == 1) return 0;
        if (rc < 0) {
            char why[200];
            kg_tls_error(pc->ssl, why, sizeof(why));
            snprintf(err, errlen, "TLS handshake: %s", why);
            return -1;
        }
        if (probe_wait(pc, want_write ? POLLOUT : POLLIN) < 0) {
            snprintf(err, errlen, "TLS handshake: %s", strerror(errno));
            return -1;
        }
    }
}

static ssize_t probe_io(probe_conn *pc, uint8_t *p, size_t n, int writing)
{
    if (pc->ssl) {
        ssize_t rc = writing ? kg_tls_write(pc->ssl, p, n) : kg_tls_read(pc->ssl, p, n);
        if (rc == KG_TLS_AGAIN) errno = EAGAIN;
        if (rc != KG_TLS_FAIL) return rc;
        kg_tls_error(pc->ssl, pc->tls_why, sizeof(pc->tls_why));
        return -2;
    }
    return writing ? send(pc->fd, p, n, MSG_NOSIGNAL) : recv(pc->fd, p, n, 0);
}

/* Moves all N bytes, waiting (bounded by the deadline) while the socket is not ready. */
static int probe_transfer(probe_conn *pc, uint8_t *p, size_t n, int writing)
{
    while (n > 0) {
        ssize_t r = probe_io(pc, p, n, writing);
        if (r == -1 && (errno == EAGAIN || errno == EINTR)) {
            if (probe_wait(pc, writing ? POLLOUT : POLLIN) < 0) return -1;
            continue;
        }
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int probe_write_all(probe_conn *pc, const uint8_t *p, size_t n)
{
    return probe_transfer(pc, (uint8_t *)p, n, 1);
}

static int probe_read_all(probe_conn *pc, uint8_t *p, size_t n)
{
    return probe_transfer(pc, p, n, 0);
}

/* One whole response frame (after its size) into *RESP (malloc'd). */
static int probe_read_frame(probe_conn *pc, uint8_t **resp, uint32_t *size)
{
    uint8_t sz[4];
    if (probe_read_all(pc, sz, 4) < 0) return -1;
    *size = kg_wire_get_u32(sz);
    if (*size < 4 || *size > 64u * 1024 * 1024) return -1;
    *resp = malloc(*size);
    if (*resp && probe_read_all(pc, *resp, *size) == 0) return 0;
    free(*resp);
    *resp = NULL;
    return -1;
}

/* clusters.NAME.sasl: kgate's own login, as every backend connection does it. */
static int probe_authenticate(kg_cluster *c, probe_conn *pc, const kg_version_ranges *ranges,
                              char *err, size_t errlen)
{
    kg_sasl_client s;
    kg_sasl_client_init(&s, &c->creds, ranges->max[KG_API_SASL_AUTHENTICATE]);
    kp_writer w;
    kp_writer_init(&w, 256);
    int rc = kg_sasl_client_start(&s, &w) < 0 ? KG_SASL_CLIENT_FAILED : KG_SASL_CLIENT_SEND;
    while (rc == KG_SASL_CLIENT_SEND) {
        uint8_t *resp = NULL;
        uint32_t size = 0;
        if (probe_write_all(pc, w.buf, w.len) < 0 || probe_read_frame(pc, &resp, &size) < 0) {
            snprintf(s.error, sizeof(s.error), "%s", errno ? strerror(errno) : "no answer");
            rc = KG_SASL_CLIENT_FAILED;
            break;
        }
        kp_writer_reset(&w);
        rc = kg_sasl_client_next(&s, resp, size, &w);
        free(resp);
    }
    if (rc != KG_SASL_CLIENT_DONE)
        snprintf(err, errlen, "SASL %s as %s: %s",
                 kg_config_sasl_mechanism_name(c->cfg->sasl.mechanism), c->cfg->sasl.username,
                 s.error);
    kp_writer_free(&w);
    kg_sasl_client_free(&s);
    return rc == KG_SASL_CLIENT_DONE ? 0 : -1;
}

/* Sends one request (header + BODY) and returns the response body after its header in
 * *RESP (malloc'd, the caller frees) with *BODY_OFF the header length. */
#define PROBE_BODY_APART (16 * 1024)

static int probe_roundtrip(probe_conn *pc, int16_t api_key, int16_t version, const kp_writer *body,
                           uint8_t **resp, size_t *resp_len, size_t *body_off)
{
    /* A large body (the mirror's Produce: half a megabyte) goes in a write of its own, after
     * the header: copying it behind the header cost a tenth of the mirror's time. */
    int apart = body->len > PROBE_BODY_APART;
    kp_writer w;
    kp_writer_init(&w, 64 + (apart ? 0 : body->len));
    size_t len_at = kp_writer_reserve_len(&w);
    int32_t corr = pc->next_correlation++;
    kg_wire_request_header(&w, api_key, version, corr, KG_PROBE_CLIENT_ID);
    if (!apart) kp_write_raw(&w, body->buf, body->len);
    if (!w.err)
        kg_wire_put_u32(w.buf + len_at, (uint32_t)(w.len - len_at - 4 + (apart ? body->len : 0)));
    int rc = w.err ? -1 : probe_write_all(pc, w.buf, w.len);
    if (rc == 0 && apart) rc = probe_write_all(pc, body->buf, body->len);
    kp_writer_free(&w);
    uint32_t size;
    if (rc < 0 || probe_read_frame(pc, resp, &size) < 0) return -1;
    if ((int32_t)kg_wire_get_u32(*resp) != corr) {
        free(*resp);
        *resp = NULL;
        return -1;
    }
    *resp_len = size;
    *body_off = kg_wire_response_header_len(api_key, version, *resp, size);
    return *body_off ? 0 : -1;
}

static int probe_versions(probe_conn *pc, kg_version_ranges *ranges, char *err, size_t errlen)
{
    kp_writer body = {0};
    uint8_t *resp = NULL;
    size_t len, off;
    /* v0 has an empty body and every broker understands it. */
    if (probe_roundtrip(pc, KG_API_APIVERSIONS, 0, &body, &resp, &len, &off) < 0) {
        snprintf(err, errlen, "ApiVersions: %s%s", pc->tls_why[0] ? "TLS: " : "",
                 pc->tls_why[0] ? pc->tls_why
                 : errno        ? strerror(errno)
                                : "bad response");
        return -1;
    }
    int16_t error = 0;
    int rc = kg_versions_parse(resp + off, len - off, 0, ranges, &error);
    free(resp);
    if (rc < 0 || error != 0) {
        snprintf(err, errlen, "ApiVersions: error %d", error);
        return -1;
    }
    return 0;
}

static int16_t probe_metadata_version(const kg_version_ranges *ranges)
{
    int16_t v = ranges->max[3];
    return v > KG_PROBE_METADATA_MAX_VERSION ? KG_PROBE_METADATA_MAX_VERSION : v;
}

static void cluster_replace_brokers(kg_cluster *c, const kp_metadata_response *md)
{
    kg_broker *list =
        calloc((size_t)(md->brokers.count > 0 ? md->brokers.count : 1), sizeof(*list));
    if (!list) return;
    int n = 0;
    for (int32_t i = 0; i < md->brokers.count; i++) {
        const kp_metadata_response_metadata_response_broker *b = &md->brokers.items[i];
        if (b->port <= 0 || b->port > 65535 || b->host.len <= 0) continue;
        broker_fill(&list[n], b->node_id, b->host.ptr, (size_t)b->host.len, b->port);
        if (!list[n].resolved)
            list[n].resolved = resolve(list[n].host, list[n].port, 0, &list[n].addr) == 0;
        n++;
    }
    pthread_rwlock_wrlock(&c->lock);
    free(c->brokers);
    c->brokers = list;
    c->n_brokers = n;
    if (md->cluster_id.len > 0 && (size_t)md->cluster_id.len < sizeof(c->cluster_id)) {
        memcpy(c->cluster_id, md->cluster_id.ptr, (size_t)md->cluster_id.len);
        c->cluster_id[md->cluster_id.len] = '\0';
    }
    pthread_rwlock_unlock(&c->lock);
}

static int probe_metadata(kg_cluster *c, probe_conn *pc, int16_t version, char *err, size_t errlen)
{
    kp_metadata_request req;
    kp_metadata_request_init(&req);
    req.topics.count = 0; /* v1+: no topics, brokers only */
    req.topics.items = NULL;
    kp_writer body = {0};
    kp_metadata_request_encode(&body, version, &req);
    uint8_t *resp = NULL;
    size_t len, off;
    int rc = body.err ? -1 : probe_roundtrip(pc, 3, version, &body, &resp, &len, &off);
    kp_writer_free(&body);
    if (rc < 0) {
        snprintf(err, errlen, "Metadata v%d: %s", version,
                 errno ? strerror(errno) : "bad response");
        return -1;
    }
    kp_arena arena;
    kp_arena_init(&arena);
    kp_reader r;
    kp_reader_init(&r, resp + off, len - off);
    kp_metadata_response md;
    rc = kp_metadata_response_decode(&r, &arena, version, &md);
    if (rc == 0 && !r.err && md.brokers.count > 0)
        cluster_replace_brokers(c, &md);
    else
        snprintf(err, errlen, "Metadata v%d: undecodable or empty response", version);
    kp_arena_free(&arena);
    free(resp);
    return rc == 0 && !r.err && md.brokers.count > 0 ? 0 : -1;
}

static void cluster_record_probe(kg_cluster *c, int ok, uint64_t took_us, const char *err,
                                 const kg_version_ranges *ranges)
{
    int was_up = atomic_exchange(&c->up, ok);
    if (ok != was_up || atomic_load(&c->state_since_us) == 0)
        atomic_store(&c->state_since_us, kg_now_us());
    struct timeval tv;
    gettimeofday(&tv, NULL);
    atomic_store(&c->last_probe_unix_ms, (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000);
    pthread_rwlock_wrlock(&c->lock);
    if (ok) {
        atomic_store(&c->probe_us, took_us);
        c->versions = *ranges;
        c->versions_known = 1;
        c->last_error[0] = '\0';
    } else {
        snprintf(c->last_error, sizeof(c->last_error), "%s", err);
    }
    pthread_rwlock_unlock(&c->lock);
    if (ok && !was_up)
        kg_info("cluster %s is up (probe %.1f ms)", c->cfg->name, (double)took_us / 1000.0);
    else if (!ok && was_up)
        kg_warn("cluster %s is down: %s", c->cfg->name, err);
}

/* "ApiVersions: Connection timed out" becomes "host:port (node 1): ApiVersions: no answer
 * within 1000 ms": which broker, and what the time limit was. */
static void prefix_error(char *err, size_t len, const char *broker, int timeout_ms)
{
    char what[256];
    const char *timed_out = strstr(err, strerror(ETIMEDOUT));
    if (timed_out)
        snprintf(what, sizeof(what), "%.*stimed out, no answer within %d ms",
                 (int)(timed_out - err), err, timeout_ms);
    else
        snprintf(what, sizeof(what), "%s", err);
    snprintf(err, len, "%s: %s", broker, what);
}

/* Connects to candidate ATTEMPT of C (bootstrap servers, then known brokers; DESC names it):
 * 1 connected, 0 not (ERR says why; try the next), -1 no candidate left. Close with
 * probe_close either way. */
static int probe_open_node(kg_cluster *c, int32_t node_id, int attempt, int timeout_ms,
                           probe_conn *pc, char *desc, size_t desclen, char *err, size_t errlen)
{
    *pc = (probe_conn){
        .fd = -1, .deadline_us = kg_now_us() + (uint64_t)timeout_ms * 1000u, .next_correlation = 1};
    kg_sockaddr addr;
    pthread_rwlock_rdlock(&c->lock);
    int candidates = c->n_boot + c->n_brokers;
    pthread_rwlock_unlock(&c->lock);
    if (attempt > candidates || kg_cluster_pick(c, node_id, attempt, &addr, desc, desclen) < 0)
        return -1;
    errno = 0;
    if (probe_connect(pc, &addr) == 0) return 1;
    snprintf(err, errlen, "%s: connect: %s", desc, strerror(errno));
    return 0;
}

static int probe_open(kg_cluster *c, int attempt, int timeout_ms, probe_conn *pc, char *desc,
                      size_t desclen, char *err, size_t errlen)
{
    return probe_open_node(c, -1, attempt, timeout_ms, pc, desc, desclen, err, errlen);
}

static void probe_close(probe_conn *pc)
{
    kg_tls_free(pc->ssl);
    if (pc->fd >= 0) close(pc->fd);
}

/* TLS, ApiVersions, kgate's login: what every backend connection goes through. */
static int probe_setup(kg_cluster *c, probe_conn *pc, const char *desc, kg_version_ranges *ranges,
                       char *err, size_t errlen, int *auth_failed)
{
    if (c->tls && probe_tls(pc, c->tls, desc, err, errlen) < 0) return -1;
    if (probe_versions(pc, ranges, err, errlen) < 0) return -1;
    if (c->cfg->sasl.mechanism != KG_SASL_NONE &&
        probe_authenticate(c, pc, ranges, err, errlen) < 0) {
        *auth_failed = 1;
        return -1;
    }
    return 0;
}

/* The connection setup, then Metadata. */
static int probe_broker(kg_cluster *c, probe_conn *pc, const char *desc, kg_version_ranges *ranges,
                        char *err, size_t errlen, int *auth_failed)
{
    if (probe_setup(c, pc, desc, ranges, err, errlen, auth_failed) < 0) return -1;
    /* Without a login of its own kgate cannot read the metadata of a cluster whose clients log
     * in themselves (auth: passthrough): a broker that answers ApiVersions is up, and the
     * brokers are learnt from the clients' Metadata answers. */
    if (c->versions_only) return 0;
    return probe_metadata(c, pc, probe_metadata_version(ranges), err, errlen);
}

int kg_cluster_probe(kg_cluster *c, int timeout_ms)
{
    char err[256] = "no reachable broker";
    kg_version_ranges ranges;
    uint64_t start = kg_now_us();
    int ok = 0, auth_failed = 0;
    /* Try each candidate until one answers both requests. */
    for (int attempt = 0; !ok; attempt++) {
        char desc[300];
        probe_conn pc;
        int opened = probe_open(c, attempt, timeout_ms, &pc, desc, sizeof(desc), err, sizeof(err));
        if (opened < 0) break;
        auth_failed = 0;
        if (opened == 1 && probe_broker(c, &pc, desc, &ranges, err, sizeof(err), &auth_failed) == 0)
            ok = 1;
        else if (opened == 1)
            prefix_error(err, sizeof(err), desc, timeout_ms);
        probe_close(&pc);
    }
    atomic_store(&c->auth_failed, auth_failed);
    cluster_record_probe(c, ok, kg_now_us() - start, err, &ranges);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- one request of kgate's own */

void kg_cluster_reply_free(kg_cluster_reply *r)
{
    free(r->frame);
    memset(r, 0, sizeof(*r));
}

/* The version of API to use with a broker that offers RANGES: the highest both sides and
 * MAX_VERSION allow, or -1. */
static int16_t request_version(const kg_version_ranges *ranges, int16_t api, int16_t max_version)
{
    int16_t v = ranges->max[api] < max_version ? ranges->max[api] : max_version;
    while (v >= 0 && v >= ranges->min[api] && !kp_api_supported(api, v))
        v--;
    return v >= 0 && v >= ranges->min[api] ? v : -1;
}

/* Sends RQ on PC, whose broker offers RANGES, encoding its body into BODY. */
static int request_send(kg_cluster *c, probe_conn *pc, const char *desc,
                        const kg_version_ranges *ranges, const kg_cluster_request_spec *rq,
                        kp_writer *body, kg_cluster_reply *out, char *err, size_t errlen)
{
    int16_t api = rq->api;
    int16_t version = request_version(ranges, api, rq->max_version);
    if (version < rq->min_version) {
        snprintf(err, errlen, "%s does not support %s v%d+ (kgate's check needs it)", c->cfg->name,
                 kp_api_name(api), rq->min_version);
        return -2; /* the cluster's answer, not a failure to reach it */
    }
    kp_writer_reset(body);
    rq->encode(body, version, rq->ctx);
    size_t len = 0, off = 0;
    int rc = body->err ? -1 : probe_roundtrip(pc, api, version, body, &out->frame, &len, &off);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s v%d: %s", desc, kp_api_name(api), version,
                 errno ? strerror(errno) : "bad response");
        return -1;
    }
    out->body = out->frame + off;
    out->len = len - off;
    out->version = version;
    return 0;
}

static int request_on(kg_cluster *c, probe_conn *pc, const char *desc,
                      const kg_cluster_request_spec *rq, kg_cluster_reply *out, char *err,
                      size_t errlen)
{
    kg_version_ranges ranges;
    int auth_failed = 0;
    if (probe_setup(c, pc, desc, &ranges, err, errlen, &auth_failed) < 0) return -1;
    kp_writer body;
    kp_writer_init(&body, 128);
    int rc = request_send(c, pc, desc, &ranges, rq, &body, out, err, errlen);
    kp_writer_free(&body);
    return rc;
}

/* ---------------------------------------------------------------- sessions */

/* A connection a session keeps, set up (TLS, ApiVersions, login) once. */
typedef struct session_conn {
    int32_t node_id; /* as asked for: -1 is "any broker" */
    probe_conn pc;
    kg_version_ranges ranges;
    char desc[300];
} session_conn;

#define SESSION_CONNS 16

struct kg_cluster_session {
    session_conn conns[SESSION_CONNS];
    int n;
    kp_writer body; /* request bodies are encoded here: no fresh pages a request */
};

kg_cluster_session *kg_cluster_session_new(void)
{
    kg_cluster_session *s = calloc(1, sizeof(*s));
    if (s) kp_writer_init(&s->body, 4096);
    return s;
}

static void session_drop(kg_cluster_session *s, int i)
{
    probe_close(&s->conns[i].pc);
    s->conns[i] = s->conns[--s->n];
}

void kg_cluster_session_free(kg_cluster_session *s)
{
    if (!s) return;
    while (s->n > 0)
        session_drop(s, s->n - 1);
    kp_writer_free(&s->body);
    free(s);
}

/* An idle connection has nothing to read: a broker that closed it (idle timeout, restart) made
 * it readable. */
static int session_conn_usable(const session_conn *sc)
{
    struct pollfd pfd = {.fd = sc->pc.fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* The kept connection for NODE_ID, or -1. */
static int session_find(kg_cluster_session *s, int32_t node_id)
{
    for (int i = 0; i < s->n; i++) {
        if (s->conns[i].node_id != node_id) continue;
        if (session_conn_usable(&s->conns[i])) return i;
        session_drop(s, i);
        return -1;
    }
    return -1;
}

/* Opens candidate ATTEMPT for NODE_ID and sets it up, kept in S: its index, -1 (ERR says why:
 * try the next), -3 no candidate left. */
static int session_open(kg_cluster *c, kg_cluster_session *s, int32_t node_id, int attempt,
                        int try_ms, char *err, size_t errlen)
{
    if (s->n == SESSION_CONNS) session_drop(s, 0);
    session_conn *sc = &s->conns[s->n];
    int opened = probe_open_node(c, node_id, attempt, try_ms, &sc->pc, sc->desc, sizeof(sc->desc),
                                 err, errlen);
    int auth_failed = 0;
    if (opened == 1 &&
        probe_setup(c, &sc->pc, sc->desc, &sc->ranges, err, errlen, &auth_failed) == 0) {
        sc->node_id = node_id;
        return s->n++;
    }
    probe_close(&sc->pc);
    return opened < 0 ? -3 : -1;
}

/* One try of RQ through S: a kept connection, else a new one (kept). Dropped after an error:
 * what it would read next is unknown. */
static int session_request(kg_cluster *c, kg_cluster_session *s, int32_t node_id, int attempt,
                           int try_ms, const kg_cluster_request_spec *rq, kg_cluster_reply *out,
                           char *err, size_t errlen)
{
    int i = attempt == 0 ? session_find(s, node_id) : -1;
    if (i < 0) i = session_open(c, s, node_id, attempt, try_ms, err, errlen);
    if (i < 0) return i;
    session_conn *sc = &s->conns[i];
    sc->pc.deadline_us = kg_now_us() + (uint64_t)try_ms * 1000u;
    int rc = request_send(c, &sc->pc, sc->desc, &sc->ranges, rq, &s->body, out, err, errlen);
    if (rc == -1) session_drop(s, i);
    return rc;
}

/* Tries the candidates for NODE_ID (-1: any broker, each in turn; a node: once, another broker
 * would only answer NOT_LEADER or NOT_COORDINATOR) until one answers, each try bounded by
 * TIMEOUT_MS (0: what is left until DEADLINE_US) and all of them by DEADLINE_US. */
static int request_loop(kg_cluster *c, kg_cluster_session *s, int32_t node_id, int timeout_ms,
                        uint64_t deadline_us, const kg_cluster_request_spec *rq,
                        kg_cluster_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    snprintf(err, errlen, "no reachable broker");
    if (c->versions_only) {
        snprintf(err, errlen, "kgate has no login of its own to this cluster (auth: passthrough)");
        return -2;
    }
    int rc = -1;
    for (int attempt = 0; rc == -1 && (node_id < 0 || attempt == 0); attempt++) {
        uint64_t now = kg_now_us();
        if (now >= deadline_us) {
            snprintf(err, errlen, "%s: no answer before the deadline", c->cfg->name);
            break;
        }
        int try_ms = timeout_ms > 0 ? timeout_ms : (int)((deadline_us - now + 999) / 1000);
        if (s) {
            rc = session_request(c, s, node_id, attempt, try_ms, rq, out, err, errlen);
            if (rc == -3) { /* no candidate left */
                rc = -1;
                break;
            }
            continue;
        }
        char desc[300];
        probe_conn pc;
        int opened =
            probe_open_node(c, node_id, attempt, try_ms, &pc, desc, sizeof(desc), err, errlen);
        if (opened < 0) break;
        if (opened == 1) rc = request_on(c, &pc, desc, rq, out, err, errlen);
        probe_close(&pc);
    }
    return rc;
}

int kg_cluster_request(kg_cluster *c, int timeout_ms, const kg_cluster_request_spec *rq,
                       kg_cluster_reply *out, char *err, size_t errlen)
{
    return request_loop(c, NULL, -1, timeout_ms, UINT64_MAX, rq, out, err, errlen);
}

int kg_cluster_request_at(kg_cluster *c, kg_cluster_session *session, int32_t node_id,
                          uint64_t deadline_us, const kg_cluster_request_spec *rq,
                          kg_cluster_reply *out, char *err, size_t errlen)
{
    return request_loop(c, session, node_id, 0, deadline_us, rq, out, err, errlen);
}

void kg_cluster_encode_metadata(kp_writer *w, int16_t version, void *ctx)
{
    const kg_cluster_topics *t = ctx;
    kp_metadata_request m;
    kp_metadata_request_init(&m);
    int n = t->n < 0 ? 0 : t->n; /* below 0: all topics (a null list) */
    kp_metadata_request_metadata_request_topic *items = calloc((size_t)n + 1, sizeof(*items));
    if (!items) {
        w->err = KP_ERR_NOMEM;
        return;
    }
    for (int i = 0; i < n; i++)
        items[i].name = kp_str_c(t->names[i]);
    m.topics.count = t->n < 0 ? -1 : n;
    m.topics.items = items;
    m.allow_auto_topic_creation = false;
    kp_metadata_request_encode(w, version, &m);
    free(items);
}
