/* rdk-driver — the failover tests' driver for a librdkafka 2.12 *client* (built by
 * scripts/test-setup into build/deps/rdk-driver-2.12): a producer sending one message every
 * INTERVAL_MS and a consumer group member, both with librdkafka's defaults except
 * auto.offset.reset=earliest and session.timeout.ms=6000 for the group, plus the -X overrides of
 * the consumer. The same JSON events on stdout as the Python drivers (fohelpers.py); runs until
 * stdin closes or SIGTERM, exits 0 (3 after a fatal librdkafka error, 2 on bad usage).
 *
 *   rdk-driver BOOTSTRAP TOPIC GROUP RUN_ID INTERVAL_MS [-X key=value]...
 *
 * One thread serves both clients: it sends when a message is due, serves the producer's
 * delivery reports and polls the consumer for up to 10 ms. */
#include <librdkafka/rdkafka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_OVERRIDES 32

static volatile sig_atomic_t stopping;
static int failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A JSON string value: the messages printed here are librdkafka's, escaped minimally. */
static void print_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void emit_error(const char *ev, const char *role, const char *err)
{
    printf("{\"ev\": \"%s\", \"role\": \"%s\", \"t\": %.6f, \"err\": ", ev, role, now_s());
    print_json_str(err);
    printf("}\n");
    fflush(stdout);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    const char *role = opaque;
    char buf[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        emit_error("fatal", role, buf);
        failed = 1;
        stopping = 1;
        return;
    }
    snprintf(buf, sizeof(buf), "%s: %s", rd_kafka_err2name(err), reason);
    emit_error("error", role, buf);
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    long seq = (long)(intptr_t)m->_private;
    if (m->err) {
        printf("{\"ev\": \"nack\", \"seq\": %ld, \"t\": %.6f, \"err\": ", seq, now_s());
        print_json_str(rd_kafka_err2str(m->err));
        printf("}\n");
    } else {
        printf("{\"ev\": \"ack\", \"seq\": %ld, \"t\": %.6f, \"p\": %d, \"o\": %lld}\n", seq,
               now_s(), (int)m->partition, (long long)m->offset);
    }
    fflush(stdout);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        printf("{\"ev\": \"joined\", \"t\": %.6f}\n", now_s());
        fflush(stdout);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK) return 0;
    fprintf(stderr, "rdk-driver: %s=%s: %s\n", key, value, errstr);
    return -1;
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *bootstrap, const char *role,
                              rd_kafka_conf_t *conf)
{
    char errstr[256], id[64];
    snprintf(id, sizeof(id), "fo-rdk212-%s", role);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, (void *)role);
    if (conf_set(conf, "bootstrap.servers", bootstrap) || conf_set(conf, "client.id", id) ||
        conf_set(conf, "broker.address.family", "v4"))
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "rdk-driver: %s: %s\n", role, errstr);
        return NULL;
    }
    printf("{\"ev\": \"client\", \"role\": \"%s\", \"pid\": %d, \"id\": \"%s@%d\", \"t\": %.6f}\n",
           role, (int)getpid(), role, (int)getpid(), now_s());
    fflush(stdout);
    return rk;
}

/* The consumer: the group member, with the overrides (-X key=value) given. */
static rd_kafka_t *new_consumer(const char *bootstrap, const char *group, char **overrides, int n)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    if (conf_set(conf, "group.id", group) || conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "session.timeout.ms", "6000"))
        return NULL;
    for (int i = 0; i < n; i++) {
        char *eq = strchr(overrides[i], '=');
        if (!eq) return NULL;
        *eq = '\0';
        if (conf_set(conf, overrides[i], eq + 1)) return NULL;
    }
    return new_client(RD_KAFKA_CONSUMER, bootstrap, "consumer", conf);
}

static void on_record(const rd_kafka_message_t *m, const char *prefix)
{
    size_t n = strlen(prefix);
    if (m->err || m->len <= n || memcmp(m->payload, prefix, n) != 0) return;
    char digits[24];
    size_t d = m->len - n < sizeof(digits) - 1 ? m->len - n : sizeof(digits) - 1;
    memcpy(digits, (const char *)m->payload + n, d);
    digits[d] = '\0';
    printf("{\"ev\": \"recv\", \"seq\": %ld, \"t\": %.6f, \"p\": %d, \"o\": %lld}\n",
           strtol(digits, NULL, 10), now_s(), (int)m->partition, (long long)m->offset);
    fflush(stdout);
}

/* 1 once stdin has closed (the test stops the driver that way). */
static int stdin_closed(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) return 0;
    char buf[256];
    ssize_t r = read(0, buf, sizeof(buf));
    return r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN);
}

static void run(rd_kafka_t *producer, rd_kafka_t *consumer, const char *topic, const char *run_id,
                double interval_s)
{
    char prefix[128], value[160], key[24];
    snprintf(prefix, sizeof(prefix), "%s:", run_id);
    double next_at = now_s();
    for (long seq = 0; !stopping && !stdin_closed();) {
        if (now_s() >= next_at) {
            snprintf(key, sizeof(key), "%ld", seq);
            snprintf(value, sizeof(value), "%s%ld", prefix, seq);
            printf("{\"ev\": \"sent\", \"seq\": %ld, \"t\": %.6f}\n", seq, now_s());
            fflush(stdout);
            rd_kafka_resp_err_t err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                RD_KAFKA_V_VALUE(value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(intptr_t)seq), RD_KAFKA_V_END);
            if (err) {
                emit_error("fatal", "producer", rd_kafka_err2str(err));
                failed = 1;
                return;
            }
            seq++;
            next_at += interval_s;
        }
        rd_kafka_poll(producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 10);
        if (m) {
            on_record(m, prefix);
            rd_kafka_message_destroy(m);
        }
    }
}

static void on_sigterm(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    char *overrides[MAX_OVERRIDES];
    int n = 0;
    if (argc < 6) {
        fprintf(stderr, "usage: rdk-driver BOOTSTRAP TOPIC GROUP RUN_ID INTERVAL_MS "
                        "[-X key=value]...\n");
        return 2;
    }
    for (int i = 6; i < argc; i++) {
        if (strcmp(argv[i], "-X") != 0 || i + 1 >= argc || n == MAX_OVERRIDES) return 2;
        overrides[n++] = argv[++i];
    }
    signal(SIGTERM, on_sigterm);
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    rd_kafka_conf_set_dr_msg_cb(pconf, delivery_cb);
    rd_kafka_t *producer = new_client(RD_KAFKA_PRODUCER, argv[1], "producer", pconf);
    rd_kafka_t *consumer = new_consumer(argv[1], argv[3], overrides, n);
    if (!producer || !consumer) return 2;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, argv[2], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    run(producer, consumer, argv[2], argv[4], strtod(argv[5], NULL) / 1000.0);
    rd_kafka_flush(producer, 5000);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_destroy(producer);
    return failed ? 3 : 0;
}
