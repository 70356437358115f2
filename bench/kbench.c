/* kbench — the one client every kgate benchmark uses, so "direct" and "through kgate" differ only
 * in the address it is given.
 *
 *   kbench produce --brokers B --topic T --size S --count N [--round-robin 1]
 *   kbench consume --brokers B --topic T [--bytes N]     (0 or absent: the whole backlog)
 *   kbench latency --brokers B --topic T --size S --count N --samples FILE
 *   kbench stream  --brokers B --topic T --size S --rate R --seconds D
 *   kbench dump    --brokers B --topic T
 *   kbench switch  --bootstrap H:P[,H:P...] --admin H:P --vcluster V --action failover|failback
 *                  [--to SIDE] --conns N --expect-topic T [--pause-ms MS]
 *                  (several bootstraps: the instances of a fleet, N connections to each; the
 *                  new side is probed through the last one, the API called on --admin)
 *   kbench closefloor --conns N
 *                  (no kgate: N idle loopback TCP connections of its own, the accepted ends
 *                  closed in one loop, until every peer saw its EOF: what closing costs the
 *                  kernel of this machine, the floor under a switch's "all closed")
 *   every librdkafka mode: [--set key=value]... (client settings, e.g. for filling topics)
 *
 * Results go to stdout as one JSON object (stream and dump print one line per event instead);
 * diagnostics go to stderr. All times come from CLOCK_MONOTONIC so the orchestrator (bench/run)
 * can put them on one time line with its own timestamps.
 *
 * Why a client of our own rather than rdkafka_performance or kcat: Debian ships neither the
 * librdkafka examples nor a kcat mode that measures, and we need the same code path for
 * throughput, single in-flight latency, continuous production across a failover, and raw
 * protocol connections that do nothing but ApiVersions (a librdkafka client would add metadata
 * refreshes and reconnects of its own to the switch measurement).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KB_MAX_PARTITIONS 256

/* ------------------------------------------------------------------------------------------ */
/* Small utilities                                                                            */

static void kb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void kb_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t kb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double kb_ms_between(int64_t from_ns, int64_t to_ns)
{
    return (double)(to_ns - from_ns) / 1e6;
}

static volatile sig_atomic_t kb_stop_requested;

static void kb_on_signal(int sig)
{
    (void)sig;
    kb_stop_requested = 1;
}

/* 5,000 held connections need more descriptors than the usual soft limit of 1,024. */
static void kb_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Command line: every option is "--name value"; unknown options are errors.                  */

typedef struct kb_args {
    const char *mode;
    const char *brokers;
    const char *topic;
    const char *samples;
    const char *bootstrap;
    const char *admin;
    const char *vcluster;
    const char *action;
    const char *to;
    const char *expect_topic;
    long long size;
    long long count;
    long long bytes;
    long long rate;
    long long seconds;
    long long conns;
    long long pause_ms;    /* switch: wait after set-up (to attach a profiler to kgate) */
    long long round_robin; /* produce: partition i % partitions instead of the partitioner */
    const char *conf[16];  /* --set key=value, applied last to every librdkafka client */
    int n_conf;
} kb_args;

static long long kb_parse_count(const char *name, const char *text)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < 0)
        kb_die("--%s: expected a non-negative integer, got '%s'", name, text);
    return v;
}

static void kb_set_option(kb_args *a, const char *name, const char *value)
{
    struct {
        const char *name;
        const char **str;
        long long *num;
    } table[] = {
        {"brokers", &a->brokers, NULL},
        {"topic", &a->topic, NULL},
        {"samples", &a->samples, NULL},
        {"bootstrap", &a->bootstrap, NULL},
        {"admin", &a->admin, NULL},
        {"vcluster", &a->vcluster, NULL},
        {"action", &a->action, NULL},
        {"to", &a->to, NULL},
        {"expect-topic", &a->expect_topic, NULL},
        {"size", NULL, &a->size},
        {"count", NULL, &a->count},
        {"bytes", NULL, &a->bytes},
        {"rate", NULL, &a->rate},
        {"seconds", NULL, &a->seconds},
        {"conns", NULL, &a->conns},
        {"round-robin", NULL, &a->round_robin},
        {"pause-ms", NULL, &a->pause_ms},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(table[i].name, name) != 0) continue;
        if (table[i].str)
            *table[i].str = value;
        else
            *table[i].num = kb_parse_count(name, value);
        return;
    }
    kb_die("unknown option --%s", name);
}

static void kb_add_conf(kb_args *a, const char *kv)
{
    if (!strchr(kv, '=')) kb_die("--set expects key=value, got '%s'", kv);
    /* Two slots stay free for the consume mode's own settings. */
    if (a->n_conf + 2 >= (int)(sizeof(a->conf) / sizeof(a->conf[0]))) kb_die("too many --set");
    a->conf[a->n_conf++] = kv;
}

static kb_args kb_parse_args(int argc, char **argv)
{
    kb_args a = {
        .size = 1024, .bytes = 0, .count = 0, .rate = 1000, .seconds = 10, .vcluster = "default"};
    if (argc < 2) kb_die("usage: kbench produce|consume|latency|stream|dump|switch|closefloor [options]");
    a.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc)
            kb_die("expected --option value at '%s'", argv[i]);
        if (strcmp(argv[i], "--set") == 0)
            kb_add_conf(&a, argv[i + 1]);
        else
            kb_set_option(&a, argv[i] + 2, argv[i + 1]);
        i++;
    }
    return a;
}

static void kb_require(const char *value, const char *name)
{
    if (!value || !*value) kb_die("%s needs --%s", "this mode", name);
}

/* ------------------------------------------------------------------------------------------ */
/* librdkafka helpers                                                                         */

static void kb_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        kb_die("config %s=%s: %s", key, value, err);
}

/* The --set overrides go last so they win over the mode's own settings. */
static rd_kafka_t *kb_client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, const kb_args *a)
{
    char err[512];
    for (int i = 0; i < a->n_conf; i++) {
        char key[128];
        const char *eq = strchr(a->conf[i], '=');
        snprintf(key, sizeof(key), "%.*s", (int)(eq - a->conf[i]), a->conf[i]);
        kb_conf_set(conf, key, eq + 1);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk) kb_die("rd_kafka_new: %s", err);
    return rk;
}

/* Partition count of the topic, from a Metadata request (the same path through kgate). */
static int kb_partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (err) kb_die("metadata for %s: %s", topic, rd_kafka_err2str(err));
    if (md->topic_cnt != 1 || md->topics[0].err)
        kb_die("metadata for %s: %s", topic,
               md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no topic");
    int n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (n < 1 || n > KB_MAX_PARTITIONS) kb_die("topic %s has %d partitions", topic, n);
    return n;
}

typedef struct kb_dr_state {
    long long delivered;
    long long failed;
    int64_t last_ns;
    char first_error[256];
} kb_dr_state;

static void kb_count_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kb_dr_state *st = opaque;
    if (m->err) {
        if (!st->failed)
            snprintf(st->first_error, sizeof(st->first_error), "%s", rd_kafka_err2str(m->err));
        st->failed++;
    } else {
        st->delivered++;
    }
    st->last_ns = kb_now_ns();
}

static void kb_produce_or_wait(rd_kafka_t *rk, const char *topic, int32_t partition, void *value,
                               size_t len, void *msg_opaque, int copy)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(copy ? RD_KAFKA_MSG_F_COPY : 0),
            RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (!err) return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) kb_die("produce: %s", rd_kafka_err2str(err));
        rd_kafka_poll(rk, 5);
    }
}

static void kb_flush_or_die(rd_kafka_t *rk, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(rk, timeout_ms);
    if (err) kb_die("flush: %s (%d messages left)", rd_kafka_err2str(err), rd_kafka_outq_len(rk));
}

/* ------------------------------------------------------------------------------------------ */
/* produce: throughput with the client's default settings                                     */

/* One message to every partition first, so connections to every leader exist and the metadata
 * lookup is not part of the timed section. */
static int kb_warm_up_producer(rd_kafka_t *rk, const char *topic, char *buf, size_t len)
{
    int parts = kb_partition_count(rk, topic);
    for (int p = 0; p < parts; p++)
        kb_produce_or_wait(rk, topic, p, buf, len, NULL, 0);
    kb_flush_or_die(rk, 30000);
    return parts;
}

static int kb_mode_produce(const kb_args *a)
{
    kb_require(a->brokers, "brokers");
    kb_require(a->topic, "topic");
    if (a->size < 1 || a->count < 1) kb_die("produce needs --size and --count > 0");
    kb_dr_state st = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kb_conf_set(conf, "bootstrap.servers", a->brokers);
    rd_kafka_conf_set_dr_msg_cb(conf, kb_count_dr);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = kb_client_new(RD_KAFKA_PRODUCER, conf, a);

    char *buf = malloc((size_t)a->size);
    if (!buf) kb_die("out of memory");
    memset(buf, 'k', (size_t)a->size);
    int parts = kb_warm_up_producer(rk, a->topic, buf, (size_t)a->size);
    st = (kb_dr_state){0};

    int64_t start = kb_now_ns();
    for (long long i = 0; i < a->count; i++) {
        /* No copy flag: the buffer outlives the client, and copying would be client cost. */
        int32_t partition = a->round_robin ? (int32_t)(i % parts) : RD_KAFKA_PARTITION_UA;
        kb_produce_or_wait(rk, a->topic, partition, buf, (size_t)a->size, NULL, 0);
        if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
    }
    kb_flush_or_die(rk, 120000);
    int64_t end = kb_now_ns();

    double secs = (double)(end - start) / 1e9;
    double bytes = (double)a->size * (double)a->count;
    printf("{\"mode\":\"produce\",\"size\":%lld,\"count\":%lld,\"bytes\":%.0f,\"seconds\":%.6f,"
           "\"mb_per_s\":%.3f,\"msgs_per_s\":%.1f,\"delivered\":%lld,\"failed\":%lld,"
           "\"first_error\":\"%s\"}\n",
           a->size, a->count, bytes, secs, bytes / 1e6 / secs, (double)a->count / secs,
           st.delivered, st.failed, st.first_error);
    rd_kafka_destroy(rk);
    free(buf);
    return st.failed ? 2 : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* consume: the retained backlog of a topic                                                    */

/* The dev cluster keeps only the last ~5 MB of each partition, so the benchmark topics have many
 * partitions and the consumer reads the retained backlog of all of them, from the first offset
 * to the last (or until --bytes), like a consumer catching up. */
typedef struct kb_consume_state {
    int parts;
    int64_t low[KB_MAX_PARTITIONS];
    int64_t high[KB_MAX_PARTITIONS];
} kb_consume_state;

static rd_kafka_t *kb_consumer_new(const kb_args *a)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kb_conf_set(conf, "bootstrap.servers", a->brokers);
    kb_conf_set(conf, "group.id", "kbench");
    kb_conf_set(conf, "enable.auto.commit", "false");
    kb_conf_set(conf, "enable.auto.offset.store", "false");
    kb_conf_set(conf, "enable.partition.eof", "true");
    rd_kafka_t *rk = kb_client_new(RD_KAFKA_CONSUMER, conf, a);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void kb_load_watermarks(rd_kafka_t *rk, const char *topic, kb_consume_state *cs)
{
    cs->parts = kb_partition_count(rk, topic);
    for (int p = 0; p < cs->parts; p++) {
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic, p, &cs->low[p], &cs->high[p], 10000);
        if (err) kb_die("watermarks %s [%d]: %s", topic, p, rd_kafka_err2str(err));
    }
}

static void kb_assign_at(rd_kafka_t *rk, const char *topic, int parts, const int64_t *offsets)
{
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset =
            offsets ? offsets[p] : RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, tp);
    if (err) kb_die("assign: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(tp);
}

static int kb_mode_consume(const kb_args *a)
{
    kb_require(a->brokers, "brokers");
    kb_require(a->topic, "topic");
    /* librdkafka stops prefetching once 100,000 records or 64 MB are queued and then backs off
     * for fetch.error.backoff.ms (500 ms): the run turns into bursts and pauses whose timing,
     * not the network path, sets the figure (runs varied 3x). Both limits are raised so the
     * client fetches as fast as the path delivers, for both paths alike. */
    kb_args tuned = *a;
    memmove(tuned.conf + 2, tuned.conf, sizeof(tuned.conf[0]) * (size_t)tuned.n_conf);
    tuned.conf[0] = "queued.min.messages=10000000";
    tuned.conf[1] = "queued.max.messages.kbytes=2097151";
    tuned.n_conf += 2;
    rd_kafka_t *rk = kb_consumer_new(&tuned);
    static kb_consume_state cs;
    kb_load_watermarks(rk, a->topic, &cs);
    long long retained = 0;
    for (int p = 0; p < cs.parts; p++)
        retained += cs.high[p] - cs.low[p];
    if (retained == 0) kb_die("topic %s is empty: produce first", a->topic);
    kb_assign_at(rk, a->topic, cs.parts, cs.low);

    long long bytes = 0, msgs = 0;
    int done = 0;
    int64_t first = 0, deadline = kb_now_ns() + 300LL * 1000000000LL;
    while ((a->bytes == 0 || bytes < a->bytes) && done < cs.parts) {
        if (kb_now_ns() > deadline) kb_die("consume: no progress in time (%lld bytes)", bytes);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) kb_die("consume: %s", rd_kafka_message_errstr(m));
        /* The clock starts at the first record: connection set-up is not throughput. */
        if (!first)
            first = kb_now_ns();
        else {
            bytes += (long long)m->len;
            msgs++;
        }
        if (m->offset + 1 == cs.high[m->partition]) done++;
        rd_kafka_message_destroy(m);
    }
    int64_t end = kb_now_ns();
    double secs = (double)(end - first) / 1e9;
    printf("{\"mode\":\"consume\",\"bytes\":%lld,\"msgs\":%lld,\"seconds\":%.6f,"
           "\"mb_per_s\":%.3f,\"msgs_per_s\":%.1f,\"retained_msgs\":%lld,"
           "\"partitions_read_to_end\":%d}\n",
           bytes, msgs, secs, (double)bytes / 1e6 / secs, (double)msgs / secs, retained, done);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* latency: one produce in flight, acks=1, linger 0                                           */

static int kb_mode_latency(const kb_args *a)
{
    kb_require(a->brokers, "brokers");
    kb_require(a->topic, "topic");
    kb_require(a->samples, "samples");
    if (a->count < 1) kb_die("latency needs --count > 0");
    kb_dr_state st = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    kb_conf_set(conf, "bootstrap.servers", a->brokers);
    kb_conf_set(conf, "acks", "1");
    kb_conf_set(conf, "linger.ms", "0");
    kb_conf_set(conf, "max.in.flight", "1");
    /* Request/response with one message: Nagle would only add delay, for both paths alike. */
    kb_conf_set(conf, "socket.nagle.disable", "true");
    rd_kafka_conf_set_dr_msg_cb(conf, kb_count_dr);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = kb_client_new(RD_KAFKA_PRODUCER, conf, a);

    char *buf = malloc((size_t)a->size);
    int64_t *samples = calloc((size_t)a->count, sizeof(*samples));
    if (!buf || !samples) kb_die("out of memory");
    memset(buf, 'l', (size_t)a->size);
    /* Partition 0 only: one leader, one connection, the same path for every sample. */
    const long long warm = 200;
    for (long long i = -warm; i < a->count; i++) {
        long long before = st.delivered + st.failed;
        int64_t t0 = kb_now_ns();
        kb_produce_or_wait(rk, a->topic, 0, buf, (size_t)a->size, NULL, 0);
        while (st.delivered + st.failed == before)
            rd_kafka_poll(rk, 1000);
        if (i >= 0) samples[i] = st.last_ns - t0;
    }
    if (st.failed) kb_die("latency: %lld deliveries failed: %s", st.failed, st.first_error);

    FILE *f = fopen(a->samples, "w");
    if (!f) kb_die("%s: %s", a->samples, strerror(errno));
    for (long long i = 0; i < a->count; i++)
        fprintf(f, "%" PRId64 "\n", samples[i]);
    if (fclose(f) != 0) kb_die("%s: %s", a->samples, strerror(errno));
    printf("{\"mode\":\"latency\",\"count\":%lld,\"size\":%lld,\"samples\":\"%s\"}\n", a->count,
           a->size, a->samples);
    rd_kafka_destroy(rk);
    free(buf);
    free(samples);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* stream: a producer with default settings producing at a fixed rate until told to stop      */

static void kb_stream_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kb_dr_state *st = opaque;
    long long seq = (long long)(intptr_t)m->_private;
    if (m->err) {
        st->failed++;
        printf("err %" PRId64 " %lld %s\n", kb_now_ns(), seq, rd_kafka_err2name(m->err));
    } else {
        st->delivered++;
        printf("ack %" PRId64 " %lld %d %" PRId64 "\n", kb_now_ns(), seq, (int)m->partition,
               m->offset);
    }
}

static void kb_stream_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    fprintf(stderr, "%" PRId64 " rdkafka %d %s: %s\n", kb_now_ns(), level, fac, buf);
}

static int kb_mode_stream(const kb_args *a)
{
    kb_require(a->brokers, "brokers");
    kb_require(a->topic, "topic");
    if (a->rate < 1 || a->size < 16) kb_die("stream needs --rate >= 1 and --size >= 16");
    kb_dr_state st = {0};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Nothing but the bootstrap address: the point is what a default client does. */
    kb_conf_set(conf, "bootstrap.servers", a->brokers);
    rd_kafka_conf_set_dr_msg_cb(conf, kb_stream_dr);
    rd_kafka_conf_set_log_cb(conf, kb_stream_log);
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_t *rk = kb_client_new(RD_KAFKA_PRODUCER, conf, a);
    signal(SIGTERM, kb_on_signal);
    signal(SIGINT, kb_on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char *buf = malloc((size_t)a->size);
    if (!buf) kb_die("out of memory");
    int64_t interval = 1000000000LL / a->rate;
    int64_t start = kb_now_ns(), next = start;
    int64_t stop = start + a->seconds * 1000000000LL;
    long long seq = 0;
    printf("start %" PRId64 " %s\n", start, rd_kafka_version_str());
    while (!kb_stop_requested && kb_now_ns() < stop) {
        int64_t now = kb_now_ns();
        if (now < next) {
            rd_kafka_poll(rk, (int)((next - now) / 1000000) + 1);
            continue;
        }
        /* The sequence number in the value lets the orchestrator find the record on a cluster. */
        memset(buf, '.', (size_t)a->size);
        int n = snprintf(buf, (size_t)a->size, "seq=%lld;", seq);
        buf[n] = '.';
        kb_produce_or_wait(rk, a->topic, RD_KAFKA_PARTITION_UA, buf, (size_t)a->size,
                           (void *)(intptr_t)seq, 1);
        seq++;
        next += interval;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 30000);
    printf("done %" PRId64 " produced=%lld delivered=%lld failed=%lld unfinished=%d\n", kb_now_ns(),
           seq, st.delivered, st.failed, rd_kafka_outq_len(rk));
    rd_kafka_destroy(rk);
    free(buf);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* dump: every "seq=N;" record of a topic, read directly from one cluster                     */

static int kb_mode_dump(const kb_args *a)
{
    kb_require(a->brokers, "brokers");
    kb_require(a->topic, "topic");
    rd_kafka_t *rk = kb_consumer_new(a);
    int parts = kb_partition_count(rk, a->topic);
    kb_assign_at(rk, a->topic, parts, NULL);
    int eof = 0;
    long long n = 0;
    int64_t deadline = kb_now_ns() + 60LL * 1000000000LL;
    /* enable.partition.eof also reports empty partitions, so every partition reports once. */
    while (eof < parts && kb_now_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (m->err) {
            kb_die("dump: %s", rd_kafka_message_errstr(m));
        } else if (m->len > 4 && memcmp(m->payload, "seq=", 4) == 0) {
            printf("%lld %d %" PRId64 "\n", strtoll((const char *)m->payload + 4, NULL, 10),
                   (int)m->partition, m->offset);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    if (eof < parts) kb_die("dump: only %d of %d partitions reached their end", eof, parts);
    fprintf(stderr, "kbench: dump: %lld records\n", n);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* switch: raw connections, one failover call, and what a new connection sees afterwards      */

static void kb_parse_hostport(const char *text, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host)) kb_die("bad address '%s'", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) kb_die("bad IPv4 address '%s'", host);
}

static int kb_connect_nonblocking(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) kb_die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void kb_put16(uint8_t *p, int v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void kb_put32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(u >> 24);
    p[1] = (uint8_t)(u >> 16);
    p[2] = (uint8_t)(u >> 8);
    p[3] = (uint8_t)u;
}

static int32_t kb_get32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int kb_get16(const uint8_t *p)
{
    return (int16_t)((uint16_t)p[0] << 8 | p[1]);
}

/* Request header v1: api key, version, correlation id, client id "kbench"; then `body`. */
static size_t kb_encode_request(uint8_t *out, int api_key, int version, int32_t corr,
                                const uint8_t *body, size_t body_len)
{
    static const char client_id[] = "kbench";
    size_t id_len = sizeof(client_id) - 1;
    size_t len = 2 + 2 + 4 + 2 + id_len + body_len;
    kb_put32(out, (int32_t)len);
    kb_put16(out + 4, api_key);
    kb_put16(out + 6, version);
    kb_put32(out + 8, corr);
    kb_put16(out + 12, (int)id_len);
    memcpy(out + 14, client_id, id_len);
    if (body_len) memcpy(out + 14 + id_len, body, body_len);
    return 4 + len;
}

/* A connection that reads one length-prefixed response frame. */
typedef struct kb_conn {
    int fd;
    int state; /* KB_CONNECTING .. KB_CLOSED */
    uint8_t *rx;
    size_t rx_len;
    size_t rx_cap;
} kb_conn;

enum { KB_CONNECTING, KB_AWAITING, KB_READY, KB_PEER_CLOSED, KB_CLOSED };

static int kb_send_all(int fd, const uint8_t *buf, size_t len)
{
    /* Small requests on a fresh socket: the send buffer always takes them whole. */
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : -1;
}

/* Reads what is available; returns 1 when a whole frame is in rx, 0 when more is needed,
 * -1 when the peer closed or failed. */
static int kb_read_frame(kb_conn *c)
{
    for (;;) {
        if (c->rx_len == c->rx_cap) {
            size_t cap = c->rx_cap ? c->rx_cap * 2 : 4096;
            uint8_t *p = realloc(c->rx, cap);
            if (!p) kb_die("out of memory");
            c->rx = p;
            c->rx_cap = cap;
        }
        ssize_t n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
        if (n == 0) return -1;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        c->rx_len += (size_t)n;
        if (c->rx_len >= 4) {
            int32_t size = kb_get32(c->rx);
            if (size < 4 || size > 64 * 1024 * 1024) return -1;
            if (c->rx_len >= (size_t)size + 4) return 1;
        }
    }
}

static void kb_conn_close(kb_conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = KB_CLOSED;
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_cap = 0;
}

static int kb_epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void kb_epoll_mod(int ep, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0) kb_die("epoll_ctl: %s", strerror(errno));
}

static void kb_send_api_versions(kb_conn *c, int32_t corr)
{
    uint8_t req[64];
    size_t n = kb_encode_request(req, 18, 0, corr, NULL, 0);
    if (kb_send_all(c->fd, req, n) < 0) kb_die("ApiVersions send: %s", strerror(errno));
}

/* Advances one held connection during set-up; returns 1 when it became ready. */
static int kb_held_conn_event(int ep, kb_conn *c, size_t idx, uint32_t events)
{
    if (c->state == KB_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) kb_die("connection %zu: connect: %s", idx, strerror(err));
        kb_send_api_versions(c, (int32_t)idx);
        c->state = KB_AWAITING;
        kb_epoll_mod(ep, c->fd, EPOLLIN | EPOLLRDHUP, idx);
        return 0;
    }
    if (c->state != KB_AWAITING) return 0;
    int r = kb_read_frame(c);
    if (r < 0) kb_die("connection %zu closed during ApiVersions", idx);
    if (r == 0) return 0;
    if (kb_get32(c->rx + 4) != (int32_t)idx || kb_get16(c->rx + 8) != 0)
        kb_die("connection %zu: bad ApiVersions response", idx);
    c->rx_len = 0;
    c->state = KB_READY;
    (void)events;
    return 1;
}

/* Opens `n` connections, at most `window` connecting at once (so neither kgate's accept queue
 * nor the dev cluster's listen backlog of 5 overflows into SYN retries), each completing one
 * ApiVersions round trip, which also makes kgate open its backend connection. */
static void kb_open_held(int ep, kb_conn *conns, size_t n, const struct sockaddr_in *sa)
{
    const size_t window = 32;
    size_t started = 0, ready = 0;
    int64_t deadline = kb_now_ns() + 120LL * 1000000000LL;
    struct epoll_event evs[256];
    while (ready < n) {
        while (started < n && started - ready < window) {
            kb_conn *c = &conns[started];
            c->fd = kb_connect_nonblocking(sa);
            if (c->fd < 0) kb_die("connection %zu: connect: %s", started, strerror(errno));
            c->state = KB_CONNECTING;
            if (kb_epoll_add(ep, c->fd, EPOLLOUT, started) < 0) kb_die("epoll_ctl");
            started++;
        }
        if (kb_now_ns() > deadline) kb_die("only %zu of %zu connections ready in time", ready, n);
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < k; i++) {
            size_t idx = (size_t)evs[i].data.u64;
            ready += (size_t)kb_held_conn_event(ep, &conns[idx], idx, evs[i].events);
        }
    }
}

/* Topic names of a Metadata v1 response (header v0), as a count of matches of `want`. */
static int kb_metadata_has_topic(const uint8_t *p, size_t len, const char *want, int *topics_seen)
{
    size_t off = 8; /* size + correlation id */
#define KB_NEED(n)                                                                                 \
    do {                                                                                           \
        if (off + (n) > len) return -1;                                                            \
    } while (0)
    KB_NEED(4);
    int32_t brokers = kb_get32(p + off);
    off += 4;
    for (int32_t b = 0; b < brokers; b++) {
        KB_NEED(6);
        int hl = kb_get16(p + off + 4);
        off += 6 + (size_t)(hl > 0 ? hl : 0);
        KB_NEED(6);
        int rl = kb_get16(p + off + 4);
        off += 6 + (size_t)(rl > 0 ? rl : 0);
    }
    KB_NEED(8);
    off += 4; /* controller id */
    int32_t topics = kb_get32(p + off);
    off += 4;
    int found = 0;
    *topics_seen = topics;
    for (int32_t t = 0; t < topics; t++) {
        KB_NEED(4);
        int nl = kb_get16(p + off + 2);
        off += 4;
        KB_NEED((size_t)(nl > 0 ? nl : 0) + 5);
        if (nl == (int)strlen(want) && memcmp(p + off, want, (size_t)nl) == 0) found = 1;
        off += (size_t)(nl > 0 ? nl : 0) + 1;
        int32_t parts = kb_get32(p + off);
        off += 4;
        for (int32_t q = 0; q < parts; q++) {
            KB_NEED(14);
            int32_t replicas = kb_get32(p + off + 10);
            off += 14 + 4 * (size_t)(replicas > 0 ? replicas : 0);
            KB_NEED(4);
            int32_t isr = kb_get32(p + off);
            off += 4 + 4 * (size_t)(isr > 0 ? isr : 0);
        }
    }
#undef KB_NEED
    return found;
}

typedef struct kb_switch_result {
    int64_t t_call;
    double call_unix_ms; /* t_call on the wall clock: kgate's own timestamps are compared to it */
    int64_t t_return;
    int64_t t_all_closed;
    int64_t t_first_new;
    size_t closed;
    int probes;
    int probes_old_side;
    int probe_failures;
    int http_status;
    json_t *response;
} kb_switch_result;

/* The admin call, as plain HTTP/1.1 on a socket so its bytes are timed by the same loop. */
typedef struct kb_http {
    kb_conn conn;
    char request[1024];
    size_t request_len;
} kb_http;

static void kb_http_start(kb_http *h, const kb_args *a, int ep, uint64_t tag)
{
    struct sockaddr_in sa;
    kb_parse_hostport(a->admin, &sa);
    char body[256];
    if (strcmp(a->action, "failover") == 0)
        snprintf(body, sizeof(body), "{\"to\":\"%s\",\"reason\":\"bench\"}", a->to ? a->to : "");
    else
        snprintf(body, sizeof(body), "{\"reason\":\"bench\"}");
    h->request_len = (size_t)snprintf(
        h->request, sizeof(h->request),
        "POST /v1/vclusters/%s/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
        a->vcluster, a->action, a->admin, strlen(body), body);
    h->conn.fd = kb_connect_nonblocking(&sa);
    if (h->conn.fd < 0) kb_die("admin connect: %s", strerror(errno));
    h->conn.state = KB_CONNECTING;
    if (kb_epoll_add(ep, h->conn.fd, EPOLLOUT, tag) < 0) kb_die("epoll_ctl");
}

/* Returns 1 once the whole response has arrived (the server closes: Connection: close). */
static int kb_http_event(kb_http *h, int ep, uint64_t tag, kb_switch_result *r)
{
    kb_conn *c = &h->conn;
    if (c->state == KB_CONNECTING) {
        if (kb_send_all(c->fd, (const uint8_t *)h->request, h->request_len) < 0)
            kb_die("admin send: %s", strerror(errno));
        c->state = KB_AWAITING;
        kb_epoll_mod(ep, c->fd, EPOLLIN | EPOLLRDHUP, tag);
        return 0;
    }
    for (;;) {
        if (c->rx_len + 1 >= c->rx_cap) {
            c->rx_cap = c->rx_cap ? c->rx_cap * 2 : 8192;
            c->rx = realloc(c->rx, c->rx_cap);
            if (!c->rx) kb_die("out of memory");
        }
        ssize_t n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len - 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n <= 0) break;
        c->rx_len += (size_t)n;
    }
    c->rx[c->rx_len] = '\0';
    const char *text = (const char *)c->rx;
    if (sscanf(text, "HTTP/1.%*d %d", &r->http_status) != 1) kb_die("admin: bad reply: %s", text);
    const char *open = strchr(text, '{'), *close_brace = strrchr(text, '}');
    if (open && close_brace && close_brace > open)
        r->response = json_loadb(open, (size_t)(close_brace - open + 1), 0, NULL);
    if (!r->response) kb_die("admin: reply without JSON: %s", text);
    kb_conn_close(c);
    return 1;
}

/* A fresh connection sending Metadata v1 for all topics; the answer names the side. */
typedef struct kb_probe {
    kb_conn conn;
    int active;
    int64_t retry_at;
} kb_probe;

static void kb_probe_start(kb_probe *pr, int ep, const struct sockaddr_in *sa, uint64_t tag)
{
    pr->conn = (kb_conn){.fd = kb_connect_nonblocking(sa), .state = KB_CONNECTING};
    if (pr->conn.fd < 0) {
        pr->conn.state = KB_CLOSED;
        pr->active = 0;
        pr->retry_at = kb_now_ns() + 1000000;
        return;
    }
    pr->active = 1;
    if (kb_epoll_add(ep, pr->conn.fd, EPOLLOUT, tag) < 0) kb_die("epoll_ctl");
}

/* Returns 1 when the new side answered, 0 to keep waiting, -1 to retry with a new probe. */
static int kb_probe_event(kb_probe *pr, int ep, uint64_t tag, const char *want, kb_switch_result *r)
{
    kb_conn *c = &pr->conn;
    if (c->state == KB_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        uint8_t req[64], body[4];
        kb_put32(body, -1); /* null topic array: all topics */
        size_t n = kb_encode_request(req, 3, 1, 7, body, sizeof(body));
        if (err || kb_send_all(c->fd, req, n) < 0) return -1;
        c->state = KB_AWAITING;
        kb_epoll_mod(ep, c->fd, EPOLLIN | EPOLLRDHUP, tag);
        return 0;
    }
    int rf = kb_read_frame(c);
    if (rf <= 0) return rf;
    int topics = 0;
    int found = kb_metadata_has_topic(c->rx, c->rx_len, want, &topics);
    if (found < 0) kb_die("probe: malformed Metadata response");
    if (found) return 1;
    r->probes_old_side++;
    return -1;
}

static void kb_probe_finish(kb_probe *pr, int64_t retry_delay_ns)
{
    kb_conn_close(&pr->conn);
    pr->active = 0;
    pr->retry_at = kb_now_ns() + retry_delay_ns;
}

static void kb_watch_closures(int ep, kb_conn *conns, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kb_epoll_mod(ep, conns[i].fd, EPOLLIN | EPOLLRDHUP, i);
}

/* One held connection reported an event after the switch: anything but data means kgate closed
 * it. Only the time is taken here; our side is closed after the measurement, so neither our
 * close() calls nor the FINs they send compete with kgate for the CPU during the switch. */
static int kb_held_closed(int ep, kb_conn *c)
{
    uint8_t scratch[512];
    ssize_t k = recv(c->fd, scratch, sizeof(scratch), 0);
    if (k > 0 || (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return 0;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->state = KB_PEER_CLOSED;
    return 1;
}

static void kb_switch_loop(int ep, const kb_args *a, kb_conn *conns, size_t n,
                           const struct sockaddr_in *boot, kb_switch_result *r)
{
    const uint64_t TAG_HTTP = UINT64_MAX, TAG_PROBE = UINT64_MAX - 1;
    kb_http http = {0};
    kb_probe probe = {0};
    int http_done = 0, probe_done = 0;
    struct epoll_event evs[512];
    r->t_call = kb_now_ns();
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    r->call_unix_ms = (double)wall.tv_sec * 1000.0 + (double)wall.tv_nsec / 1e6;
    kb_http_start(&http, a, ep, TAG_HTTP);
    int64_t deadline = r->t_call + 30LL * 1000000000LL;
    while (!(http_done && probe_done && r->closed == n)) {
        int64_t now = kb_now_ns();
        if (now > deadline) {
            fprintf(stderr, "kbench: switch: gave up waiting (closed %zu/%zu, new side %s)\n",
                    r->closed, n, probe_done ? "seen" : "not seen");
            return;
        }
        /* Probing starts when the call has returned: from then on only the new side may answer. */
        if (http_done && !probe_done && !probe.active && now >= probe.retry_at) {
            r->probes++;
            kb_probe_start(&probe, ep, boot, TAG_PROBE);
        }
        int k = epoll_wait(ep, evs, 512, 1);
        for (int i = 0; i < k; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_HTTP) {
                if (kb_http_event(&http, ep, tag, r)) {
                    http_done = 1;
                    r->t_return = kb_now_ns();
                }
            } else if (tag == TAG_PROBE) {
                int pr = kb_probe_event(&probe, ep, tag, a->expect_topic, r);
                if (pr == 1) {
                    probe_done = 1;
                    r->t_first_new = kb_now_ns();
                    kb_probe_finish(&probe, 0);
                } else if (pr < 0) {
                    r->probe_failures++;
                    kb_probe_finish(&probe, 1000000);
                }
            } else if (conns[tag].state == KB_READY && kb_held_closed(ep, &conns[tag])) {
                if (++r->closed == n) r->t_all_closed = kb_now_ns();
            }
        }
    }
}

static double kb_json_number(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static void kb_print_switch(const kb_args *a, size_t n, const kb_switch_result *r, double setup_ms)
{
    double all_closed = r->closed == n ? kb_ms_between(r->t_call, r->t_all_closed) : -1;
    double first_new = r->t_first_new ? kb_ms_between(r->t_call, r->t_first_new) : -1;
    double total =
        (all_closed < 0 || first_new < 0) ? -1 : (all_closed > first_new ? all_closed : first_new);
    printf("{\"mode\":\"switch\",\"action\":\"%s\",\"conns\":%zu,\"setup_ms\":%.3f,"
           "\"http_status\":%d,\"api_wall_ms\":%.3f,\"api_duration_ms\":%.3f,"
           "\"connections_closed\":%.0f,\"epoch\":%.0f,\"closed_seen\":%zu,"
           "\"all_closed_ms\":%.3f,\"first_new_side_ms\":%.3f,\"switch_ms\":%.3f,"
           "\"probes\":%d,\"probes_old_side\":%d,\"probe_failures\":%d,\"call_unix_ms\":%.3f}\n",
           a->action, n, setup_ms, r->http_status,
           r->t_return ? kb_ms_between(r->t_call, r->t_return) : -1,
           kb_json_number(r->response, "duration_ms"),
           kb_json_number(r->response, "connections_closed"), kb_json_number(r->response, "epoch"),
           r->closed, all_closed, first_new, total, r->probes, r->probes_old_side,
           r->probe_failures, r->call_unix_ms);
}

static int kb_mode_switch(const kb_args *a)
{
    kb_require(a->bootstrap, "bootstrap");
    kb_require(a->admin, "admin");
    kb_require(a->action, "action");
    kb_require(a->expect_topic, "expect-topic");
    if (strcmp(a->action, "failover") != 0 && strcmp(a->action, "failback") != 0)
        kb_die("--action must be failover or failback");
    kb_raise_nofile();
    struct sockaddr_in boots[8];
    size_t n_boots = 0;
    char list[512];
    snprintf(list, sizeof(list), "%s", a->bootstrap);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n_boots < 8;
         tok = strtok_r(NULL, ",", &save))
        kb_parse_hostport(tok, &boots[n_boots++]);
    if (n_boots == 0) kb_die("--bootstrap: no address");
    size_t per = (size_t)a->conns, n = per * n_boots;
    kb_conn *conns = calloc(n ? n : 1, sizeof(*conns));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0) kb_die("set-up: %s", strerror(errno));

    int64_t t0 = kb_now_ns();
    if (n_boots == 1) {
        kb_open_held(ep, conns, n, &boots[0]);
        kb_watch_closures(ep, conns, n);
    } else {
        /* Each instance's connections are set up on an epoll set of their own (their tags are
         * indexes into their part), then watched on the main one by their global index. */
        for (size_t b = 0; b < n_boots; b++) {
            int ep_b = epoll_create1(EPOLL_CLOEXEC);
            if (ep_b < 0) kb_die("set-up: %s", strerror(errno));
            kb_open_held(ep_b, conns + b * per, per, &boots[b]);
            close(ep_b);
        }
        for (size_t i = 0; i < n; i++)
            if (kb_epoll_add(ep, conns[i].fd, EPOLLIN | EPOLLRDHUP, i) < 0)
                kb_die("epoll_ctl: %s", strerror(errno));
    }
    struct sockaddr_in boot = boots[n_boots - 1];
    double setup_ms = kb_ms_between(t0, kb_now_ns());
    if (a->pause_ms) {
        fprintf(stderr, "kbench: %zu connections ready; switching in %lld ms\n", n, a->pause_ms);
        usleep((useconds_t)a->pause_ms * 1000);
    }

    kb_switch_result r = {0};
    kb_switch_loop(ep, a, conns, n, &boot, &r);
    kb_print_switch(a, n, &r, setup_ms);
    for (size_t i = 0; i < n; i++)
        if (conns[i].state != KB_CLOSED) kb_conn_close(&conns[i]);
    json_decref(r.response);
    free(conns);
    close(ep);
    int ok = r.http_status == 200 && r.closed == n && r.t_first_new;
    return ok ? 0 : 2;
}

/* closefloor: the kernel's share of a switch, measured without kgate ------------------------ */

static int kb_mode_closefloor(const kb_args *a)
{
    size_t n = (size_t)a->conns;
    if (n == 0) kb_die("--conns must be positive");
    kb_raise_nofile();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0)
        kb_die("closefloor: listen: %s", strerror(errno));
    int *peers = calloc(n, sizeof(*peers)), *ours = calloc(n, sizeof(*ours));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!peers || !ours || ep < 0) kb_die("closefloor: %s", strerror(errno));
    for (size_t i = 0; i < n; i++) {
        peers[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (peers[i] < 0 || connect(peers[i], (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            (ours[i] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
            kb_die("closefloor: connection %zu: %s", i, strerror(errno));
        if (kb_epoll_add(ep, peers[i], EPOLLIN | EPOLLRDHUP, i) < 0)
            kb_die("closefloor: epoll_ctl: %s", strerror(errno));
    }
    int64_t t0 = kb_now_ns();
    for (size_t i = 0; i < n; i++)
        close(ours[i]);
    int64_t t_closed = kb_now_ns();
    size_t seen = 0;
    struct epoll_event evs[512];
    while (seen < n) {
        int k = epoll_wait(ep, evs, 512, 1000);
        if (k <= 0) kb_die("closefloor: %zu of %zu EOFs seen", seen, n);
        for (int i = 0; i < k; i++) {
            uint8_t scratch[64];
            if (recv(peers[evs[i].data.u64], scratch, sizeof(scratch), 0) > 0) continue;
            epoll_ctl(ep, EPOLL_CTL_DEL, peers[evs[i].data.u64], NULL);
            seen++;
        }
    }
    int64_t t_seen = kb_now_ns();
    printf("{\"mode\":\"closefloor\",\"conns\":%zu,\"close_ms\":%.3f,\"all_seen_ms\":%.3f,"
           "\"close_us_each\":%.2f}\n",
           n, kb_ms_between(t0, t_closed), kb_ms_between(t0, t_seen),
           kb_ms_between(t0, t_closed) * 1000.0 / (double)n);
    for (size_t i = 0; i < n; i++)
        close(peers[i]);
    close(lfd);
    close(ep);
    free(peers);
    free(ours);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    kb_args a = kb_parse_args(argc, argv);
    if (strcmp(a.mode, "produce") == 0) return kb_mode_produce(&a);
    if (strcmp(a.mode, "consume") == 0) return kb_mode_consume(&a);
    if (strcmp(a.mode, "latency") == 0) return kb_mode_latency(&a);
    if (strcmp(a.mode, "stream") == 0) return kb_mode_stream(&a);
    if (strcmp(a.mode, "dump") == 0) return kb_mode_dump(&a);
    if (strcmp(a.mode, "switch") == 0) return kb_mode_switch(&a);
    if (strcmp(a.mode, "closefloor") == 0) return kb_mode_closefloor(&a);
    kb_die("unknown mode '%s'", a.mode);
}
