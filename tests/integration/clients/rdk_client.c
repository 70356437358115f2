/* rdk-client — a minimal librdkafka client for the integration tests, built by scripts/test-setup
 * against librdkafka 2.12 (build/deps/rdk-client-2.12) so the tests have a modern-protocol
 * *client* (Produce v10+, Fetch v16, Metadata v12) next to Debian's 2.0.2 ones.
 *
 *   rdk-client produce -b BOOTSTRAP -t TOPIC -n COUNT [-p PREFIX] [-X key=value]...
 *       produces COUNT messages (key "k<i>", value "<PREFIX>-<i>"), waits for every delivery
 *       report, prints {"version": ..., "acked": N, "errors": [...]}
 *   rdk-client consume -b BOOTSTRAP -t TOPIC -g GROUP -n COUNT [-s SECONDS] [-X key=value]...
 *       joins GROUP, reads until COUNT messages (or SECONDS, default 60), commits synchronously,
 *       leaves, prints {"version": ..., "records": [[partition, offset, "value"], ...]}
 *
 * Values are printed as JSON strings; the tests only produce printable ASCII values.
 * Exit code 0 on success, 1 on a client error, 2 on bad usage.
 */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OVERRIDES 32

typedef struct client_args {
    const char *mode;
    const char *bootstrap;
    const char *topic;
    const char *group;
    const char *prefix;
    long count;
    long seconds;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
} client_args;

static int parse_args(int argc, char **argv, client_args *a)
{
    if (argc < 2) return -1;
    a->mode = argv[1];
    a->prefix = "m";
    a->seconds = 60;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (strcmp(opt, "-b") == 0)
            a->bootstrap = val;
        else if (strcmp(opt, "-t") == 0)
            a->topic = val;
        else if (strcmp(opt, "-g") == 0)
            a->group = val;
        else if (strcmp(opt, "-p") == 0)
            a->prefix = val;
        else if (strcmp(opt, "-n") == 0)
            a->count = strtol(val, NULL, 10);
        else if (strcmp(opt, "-s") == 0)
            a->seconds = strtol(val, NULL, 10);
        else if (strcmp(opt, "-X") == 0 && a->n_overrides < MAX_OVERRIDES)
            a->overrides[a->n_overrides++] = val;
        else
            return -1;
    }
    if ((argc % 2) != 0 || !a->bootstrap || !a->topic || a->count <= 0) return -1;
    if (strcmp(a->mode, "consume") == 0 && !a->group) return -1;
    return 0;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdk-client: %s=%s: %s\n", key, value, errstr);
        return -1;
    }
    return 0;
}

/* -X key=value settings; applied last so they override the defaults here. */
static int apply_overrides(rd_kafka_conf_t *conf, const client_args *a)
{
    for (int i = 0; i < a->n_overrides; i++) {
        char key[256];
        const char *eq = strchr(a->overrides[i], '=');
        if (!eq || (size_t)(eq - a->overrides[i]) >= sizeof(key)) {
            fprintf(stderr, "rdk-client: -X %s: expected key=value\n", a->overrides[i]);
            return -1;
        }
        memcpy(key, a->overrides[i], (size_t)(eq - a->overrides[i]));
        key[eq - a->overrides[i]] = '\0';
        if (conf_set(conf, key, eq + 1) != 0) return -1;
    }
    return 0;
}

static rd_kafka_conf_t *make_conf(const client_args *a)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = conf_set(conf, "bootstrap.servers", a->bootstrap);
    rc |= conf_set(conf, "client.id", "kgate-it-rdk-2.12");
    rc |= conf_set(conf, "broker.address.family", "v4");
    rc |= conf_set(conf, "socket.timeout.ms", "10000");
    if (rc != 0 || apply_overrides(conf, a) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* ---- produce ---- */

typedef struct produce_state {
    long acked;
    long failed;
    char first_error[256];
} produce_state;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    produce_state *st = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->acked++;
        return;
    }
    if (st->failed++ == 0)
        snprintf(st->first_error, sizeof(st->first_error), "%s", rd_kafka_err2str(m->err));
}

static int run_produce(const client_args *a)
{
    rd_kafka_conf_t *conf = make_conf(a);
    if (!conf) return 2;
    /* Fail within the tests' own timeouts rather than librdkafka's 5-minute default. */
    if (conf_set(conf, "message.timeout.ms", "30000") || apply_overrides(conf, a)) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    produce_state st = {0};
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "rdk-client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    for (long i = 0; i < a->count; i++) {
        char key[32], value[256];
        snprintf(key, sizeof(key), "k%ld", i);
        snprintf(value, sizeof(value), "%s-%ld", a->prefix, i);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(a->topic),
                                        RD_KAFKA_V_KEY(key, strlen(key)),
                                        RD_KAFKA_V_VALUE(value, strlen(value)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (err) {
            fprintf(stderr, "rdk-client: produce: %s\n", rd_kafka_err2str(err));
            rd_kafka_destroy(rk);
            return 1;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 45 * 1000);
    printf("{\"version\": \"%s\", \"acked\": %ld, \"failed\": %ld, \"first_error\": \"%s\"}\n",
           rd_kafka_version_str(), st.acked, st.failed, st.first_error);
    rd_kafka_destroy(rk);
    return st.failed == 0 && st.acked == a->count ? 0 : 1;
}

/* ---- consume ---- */

static void print_json_string(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c > 0x7e)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int run_consume(const client_args *a)
{
    rd_kafka_conf_t *conf = make_conf(a);
    if (!conf) return 2;
    /* A short session: librdkafka's mock keeps an emptied group waiting for its last session
     * timeout before a new member's join completes (45 s with the default). -X overrides. */
    if (conf_set(conf, "group.id", a->group) || conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "enable.auto.commit", "false") ||
        conf_set(conf, "session.timeout.ms", "6000") ||
        conf_set(conf, "heartbeat.interval.ms", "500") || apply_overrides(conf, a)) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "rdk-client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, a->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        fprintf(stderr, "rdk-client: subscribe: %s\n", rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("{\"version\": \"%s\", \"records\": [", rd_kafka_version_str());
    long got = 0;
    time_t deadline = time(NULL) + a->seconds;
    while (got < a->count && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (!m->err) {
            printf("%s[%d, %lld, ", got ? ", " : "", m->partition, (long long)m->offset);
            print_json_string(m->payload, m->len);
            putchar(']');
            got++;
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "rdk-client: consume: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    err = rd_kafka_commit(rk, NULL, 0);
    printf("], \"commit\": \"%s\"}\n", rd_kafka_err2name(err));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got == a->count ? 0 : 1;
}

int main(int argc, char **argv)
{
    client_args a = {0};
    if (parse_args(argc, argv, &a) < 0) {
        fprintf(stderr, "usage: rdk-client produce -b B -t T -n N [-p PREFIX] [-X k=v]...\n"
                        "       rdk-client consume -b B -t T -g G -n N [-s SECONDS] [-X k=v]...\n");
        return 2;
    }
    if (strcmp(a.mode, "produce") == 0) return run_produce(&a);
    if (strcmp(a.mode, "consume") == 0) return run_consume(&a);
    fprintf(stderr, "rdk-client: unknown mode '%s'\n", a.mode);
    return 2;
}
