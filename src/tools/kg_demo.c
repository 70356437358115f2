/* kgate demo — the product in one command, with nothing but the binary.
 *
 * Two embedded clusters (east, west), kgate in front of them, a producer and a consumer group
 * talking to kgate only. The demo fails the virtual cluster over to west, then back, and prints
 * when each switch happened and when clients were served again.
 */
#include "tools/kg_demo.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/kg_config.h"
#include "engine/kg_loop.h"
#include "route/kg_gateway.h"
#include "tools/kg_devcluster.h"
#include "util/kg_log.h"

#define DEMO_TOPIC "orders"
#define DEMO_SWITCHES 2

typedef struct demo_switch {
    const char *what;
    uint64_t called_us, returned_us;
    int closed;
    atomic_uint_fast64_t first_ack_us;    /* first acknowledged produce sent after it */
    atomic_uint_fast64_t first_record_us; /* first record consumed that was produced after it */
} demo_switch;

typedef struct demo {
    uint64_t start_us;
    char bootstrap[64];
    atomic_int stop;
    atomic_long produced, acked, failed, consumed;
    demo_switch switches[DEMO_SWITCHES];
    atomic_int switches_done;
} demo;

static double ms_since(const demo *d, uint64_t t)
{
    return t ? (double)(t - d->start_us) / 1000.0 : -1;
}

/* Marks FIELD of every switch that happened before SENT_US, the first time only. */
static void demo_mark_first(demo *d, uint64_t sent_us, size_t field_offset)
{
    uint64_t now = kg_now_us();
    int n = atomic_load(&d->switches_done);
    for (int i = 0; i < n; i++) {
        demo_switch *s = &d->switches[i];
        if (sent_us < s->returned_us) continue;
        atomic_uint_fast64_t *slot = (atomic_uint_fast64_t *)((char *)s + field_offset);
        uint_fast64_t zero = 0;
        atomic_compare_exchange_strong(slot, &zero, now);
    }
}

static void demo_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    demo *d = opaque;
    if (m->err) {
        atomic_fetch_add(&d->failed, 1);
        return;
    }
    atomic_fetch_add(&d->acked, 1);
    demo_mark_first(d, (uint64_t)(uintptr_t)m->_private, offsetof(demo_switch, first_ack_us));
}

static rd_kafka_conf_t *demo_conf(demo *d, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", d->bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "client.id", group ? "demo-consumer" : "demo-producer", err,
                      sizeof(err));
    rd_kafka_conf_set(conf, "reconnect.backoff.ms", "20", err, sizeof(err));
    rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "200", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    if (group) {
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        /* A switch makes the group rejoin; members that vanished with the old cluster's
         * connections are given up after the session timeout, so keep it short for a demo. */
        rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", err, sizeof(err));
    } else {
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", err, sizeof(err));
        rd_kafka_conf_set_dr_msg_cb(conf, demo_delivered);
    }
    rd_kafka_conf_set_opaque(conf, d);
    return conf;
}

static void *demo_producer(void *arg)
{
    demo *d = arg;
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, demo_conf(d, NULL), err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "demo: producer: %s\n", err);
        return NULL;
    }
    long seq = 0;
    while (!atomic_load(&d->stop)) {
        char value[64];
        uint64_t now = kg_now_us();
        int len = snprintf(value, sizeof(value), "%llu order-%ld", (unsigned long long)now, seq);
        if (rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(DEMO_TOPIC), RD_KAFKA_V_VALUE(value, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)now),
                RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            seq++;
            atomic_fetch_add(&d->produced, 1);
        }
        rd_kafka_poll(rk, 10);
    }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    return NULL;
}

static void *demo_consumer(void *arg)
{
    demo *d = arg;
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, demo_conf(d, "demo-group"), err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "demo: consumer: %s\n", err);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, DEMO_TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    while (!atomic_load(&d->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) continue;
        if (!m->err && m->len > 0) {
            atomic_fetch_add(&d->consumed, 1);
            uint64_t sent = strtoull(m->payload, NULL, 10);
            demo_mark_first(d, sent, offsetof(demo_switch, first_record_us));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static void demo_sleep_ms(demo *d, int ms)
{
    for (int i = 0; i < ms / 50 && !atomic_load(&d->stop); i++)
        usleep(50 * 1000);
}

/* Lets the phase after switch I last until the consumer group got a record from the new side
 * (rejoining takes up to a session timeout), but no longer than LIMIT_MS. */
static void demo_wait_for_consumer(demo *d, int i, int limit_ms)
{
    for (int waited = 0; waited < limit_ms && !atomic_load(&d->switches[i].first_record_us);
         waited += 50)
        usleep(50 * 1000);
}

static void demo_switch_now(demo *d, kg_gateway *gw, int i, int failback)
{
    demo_switch *s = &d->switches[i];
    s->what = failback ? "failback to east" : "failover to west";
    kg_switch_request req = {
        .vcluster = "default", .failback = failback, .reason = "kgate demo", .actor = "demo"};
    json_t *result = NULL;
    s->called_us = kg_now_us();
    int status = kg_gateway_switch(gw, &req, &result);
    s->returned_us = kg_now_us();
    s->closed = (int)json_integer_value(json_object_get(result, "connections_closed"));
    if (status != 200)
        fprintf(stderr, "demo: %s failed: %s\n", s->what,
                json_string_value(json_object_get(result, "error")));
    json_decref(result);
    atomic_store(&d->switches_done, i + 1);
    printf("%8.0f ms  %s: %d client connections closed, switch took %.2f ms\n",
           ms_since(d, s->called_us), s->what, s->closed,
           (double)(s->returned_us - s->called_us) / 1000.0);
    fflush(stdout);
}

static void demo_report(demo *d)
{
    printf("\nTimeline (ms since start):\n");
    for (int i = 0; i < DEMO_SWITCHES; i++) {
        demo_switch *s = &d->switches[i];
        uint64_t ack = atomic_load(&s->first_ack_us), rec = atomic_load(&s->first_record_us);
        char ack_text[48] = "none", rec_text[48] = "none";
        if (ack)
            snprintf(ack_text, sizeof(ack_text), "%7.0f (+%.0f)", ms_since(d, ack),
                     (double)(ack - s->called_us) / 1000.0);
        if (rec)
            snprintf(rec_text, sizeof(rec_text), "%7.0f (+%.0f)", ms_since(d, rec),
                     (double)(rec - s->called_us) / 1000.0);
        printf("  %-17s called %7.0f   first ack after it %s   first record after it %s\n", s->what,
               ms_since(d, s->called_us), ack_text, rec_text);
    }
    printf("\nMessages: %ld produced, %ld acknowledged, %ld failed, %ld consumed\n",
           atomic_load(&d->produced), atomic_load(&d->acked), atomic_load(&d->failed),
           atomic_load(&d->consumed));
}

static kg_config *demo_config(const char *east, const char *west, int port, const char *state)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml),
                     "listen: 127.0.0.1\n"
                     "advertised_host: 127.0.0.1\n"
                     "clusters:\n"
                     "  east:\n    bootstrap: %s\n"
                     "  west:\n    bootstrap: %s\n"
                     "vclusters:\n"
                     "  default:\n    port: %d\n    primary: east\n    secondary: west\n"
                     "health:\n  probe_interval_ms: 250\n"
                     "admin:\n  enabled: false\n"
                     "state: %s\n",
                     east, west, port, state);
    int errors = 0;
    return kg_config_parse("demo", yaml, (size_t)n, stderr, &errors);
}

static int demo_wait_up(kg_gateway *gw)
{
    for (int i = 0; i < 100; i++) {
        if (atomic_load(&gw->clusters[0].up) && atomic_load(&gw->clusters[1].up)) return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int demo_run(int port, int phase_ms)
{
    static const char *const topics[] = {DEMO_TOPIC ":3", NULL};
    char err[256], state[] = "/tmp/kgate-demo-XXXXXX";
    kg_devcluster *east = kg_devcluster_start(3, topics, err, sizeof(err));
    kg_devcluster *west = east ? kg_devcluster_start(3, topics, err, sizeof(err)) : NULL;
    if (!west || !mkdtemp(state)) {
        fprintf(stderr, "demo: cannot start the embedded clusters: %s\n", err);
        kg_devcluster_stop(east);
        return 1;
    }
    char state_db[sizeof(state) + 16];
    snprintf(state_db, sizeof(state_db), "%s/state.db", state);
    kg_config *cfg =
        demo_config(kg_devcluster_bootstraps(east), kg_devcluster_bootstraps(west), port, state_db);
    kg_gateway *gw = cfg ? kg_gateway_start(cfg, NULL) : NULL;
    int rc = 1;
    if (gw && demo_wait_up(gw) == 0) {
        demo d = {0};
        snprintf(d.bootstrap, sizeof(d.bootstrap), "127.0.0.1:%d", port);
        printf("east  %s\nwest  %s\nkgate %s (clients only ever see this)\n\n",
               kg_devcluster_bootstraps(east), kg_devcluster_bootstraps(west), d.bootstrap);
        d.start_us = kg_now_us();
        pthread_t prod, cons;
        pthread_create(&prod, NULL, demo_producer, &d);
        pthread_create(&cons, NULL, demo_consumer, &d);
        demo_sleep_ms(&d, phase_ms);
        demo_switch_now(&d, gw, 0, 0);
        demo_sleep_ms(&d, phase_ms);
        demo_wait_for_consumer(&d, 0, 15000);
        demo_switch_now(&d, gw, 1, 1);
        demo_sleep_ms(&d, phase_ms);
        demo_wait_for_consumer(&d, 1, 15000);
        atomic_store(&d.stop, 1);
        pthread_join(prod, NULL);
        pthread_join(cons, NULL);
        demo_report(&d);
        rc = atomic_load(&d.acked) > 0 && atomic_load(&d.consumed) > 0 ? 0 : 1;
    } else if (gw) {
        fprintf(stderr, "demo: the embedded clusters did not come up\n");
    }
    kg_gateway_stop(gw);
    kg_config_free(cfg);
    kg_devcluster_stop(west);
    kg_devcluster_stop(east);
    unlink(state_db);
    rmdir(state);
    return rc;
}

int kg_demo_main(int argc, char **argv)
{
    int port = 19092, phase_ms = 4000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--phase-ms") == 0 && i + 1 < argc)
            phase_ms = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: kgate demo [--port PORT] [--phase-ms MS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    kg_log_set_level(KG_LOG_WARN);
    return demo_run(port, phase_ms);
}
