#include "tools/kg_devcluster.h"

#include "util/kg_log.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "util/kg_err.h"

#define KG_DEVCLUSTER_MAX_BROKERS 32
#define KG_DEVCLUSTER_MAX_TOPICS 64
#define KG_DEVCLUSTER_MAX_PARTITIONS 10000
#define KG_DEVCLUSTER_MAX_DELAY_MS 300000 /* Kafka's own upper bound for the setting: 5 minutes */

/* The mock's group.initial.rebalance.delay.ms has a setter from librdkafka 2.12 on (the first
 * version kgate is built with that has one); Debian's 2.0.2 has 3000 ms built in. */
#if RD_KAFKA_VERSION >= 0x020c0000
#define DEVCLUSTER_HAS_REBALANCE_DELAY 1
#else
#define DEVCLUSTER_HAS_REBALANCE_DELAY 0
#endif

/* librdkafka "debug" contexts (e.g. "mock") for diagnosing a client against the mock; set by
 * --debug before the cluster starts. Debug lines are logged at info level so they show. */
static const char *devcluster_debug_contexts;

struct kg_devcluster {
    /* The mock cluster lives inside a client handle; the handle itself never connects. */
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mock;
};

/* librdkafka's syslog levels; notices (5) are routine chatter such as "no bootstrap.servers". */
static void devcluster_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        kg_error("dev-cluster: librdkafka %s: %s", fac, buf);
    else if (level == 4)
        kg_warn("dev-cluster: librdkafka %s: %s", fac, buf);
    else if (level == 7 && devcluster_debug_contexts)
        kg_info("dev-cluster: librdkafka %s: %s", fac, buf);
    else
        kg_debug("dev-cluster: librdkafka %s: %s", fac, buf);
}

/* Splits "name:partitions"; the last ':' separates them because topic names never contain one. */
static int devcluster_parse_topic(const char *spec, char *name, size_t namelen, int *partitions,
                                  char *err, size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec) {
        kg_errf(err, errlen, "topic '%s': expected name:partitions", spec);
        return -1;
    }
    size_t n = (size_t)(colon - spec);
    if (n >= namelen) {
        kg_errf(err, errlen, "topic '%s': name too long", spec);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long parts = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || parts < 1 ||
        parts > KG_DEVCLUSTER_MAX_PARTITIONS) {
        kg_errf(err, errlen, "topic '%s': partitions must be 1..%d", spec,
                KG_DEVCLUSTER_MAX_PARTITIONS);
        return -1;
    }
    memcpy(name, spec, n);
    name[n] = '\0';
    *partitions = (int)parts;
    return 0;
}

static rd_kafka_t *devcluster_new_handle(char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, devcluster_log_cb);
    if (rd_kafka_conf_set(conf, "client.id", "kgate-dev-cluster", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        (devcluster_debug_contexts &&
         rd_kafka_conf_set(conf, "debug", devcluster_debug_contexts, errstr, sizeof(errstr)) !=
             RD_KAFKA_CONF_OK)) {
        kg_errf(err, errlen, "librdkafka config: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        kg_errf(err, errlen, "librdkafka handle: %s", errstr);
        rd_kafka_conf_destroy(conf); /* rd_kafka_new only takes ownership on success */
    }
    return rk;
}

static int devcluster_create_topics(kg_devcluster *dc, int brokers, const char *const *topics,
                                    char *err, size_t errlen)
{
    int replication = brokers < 3 ? brokers : 3;
    for (const char *const *t = topics; t && *t; t++) {
        char name[256];
        int partitions = 0;
        if (devcluster_parse_topic(*t, name, sizeof(name), &partitions, err, errlen) < 0) return -1;
        rd_kafka_resp_err_t rc =
            rd_kafka_mock_topic_create(dc->mock, name, partitions, replication);
        if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
            kg_errf(err, errlen, "topic '%s': %s", name, rd_kafka_err2str(rc));
            return -1;
        }
        kg_info("dev-cluster: topic %s with %d partitions, replication %d", name, partitions,
                replication);
    }
    return 0;
}

kg_devcluster *kg_devcluster_start(int brokers, const char *const *topics, char *err, size_t errlen)
{
    return kg_devcluster_start_with(brokers, topics, -1, err, errlen);
}

/* Sets the mock's group.initial.rebalance.delay.ms, or says why it cannot. */
static int devcluster_set_rebalance_delay(kg_devcluster *dc, int delay_ms, char *err, size_t errlen)
{
#if DEVCLUSTER_HAS_REBALANCE_DELAY
    rd_kafka_mock_group_initial_rebalance_delay_ms(dc->mock, delay_ms);
    kg_info("dev-cluster: group.initial.rebalance.delay.ms %d", delay_ms);
    return 0;
#else
    (void)dc;
    if (delay_ms == KG_DEVCLUSTER_DEFAULT_REBALANCE_DELAY_MS) return 0;
    kg_errf(err, errlen,
            "--group-initial-rebalance-delay-ms: librdkafka %s's mock cluster has %d ms built in "
            "and no setting for it (librdkafka 2.12's has one)",
            rd_kafka_version_str(), KG_DEVCLUSTER_DEFAULT_REBALANCE_DELAY_MS);
    return -1;
#endif
}

kg_devcluster *kg_devcluster_start_with(int brokers, const char *const *topics,
                                        int rebalance_delay_ms, char *err, size_t errlen)
{
    if (brokers < 1 || brokers > KG_DEVCLUSTER_MAX_BROKERS) {
        kg_errf(err, errlen, "brokers must be 1..%d", KG_DEVCLUSTER_MAX_BROKERS);
        return NULL;
    }
    kg_devcluster *dc = calloc(1, sizeof(*dc));
    if (!dc) {
        kg_errf(err, errlen, "out of memory");
        return NULL;
    }
    dc->rk = devcluster_new_handle(err, errlen);
    if (!dc->rk) {
        free(dc);
        return NULL;
    }
    dc->mock = rd_kafka_mock_cluster_new(dc->rk, brokers);
    if (!dc->mock) {
        kg_errf(err, errlen, "librdkafka could not create the mock cluster");
        kg_devcluster_stop(dc);
        return NULL;
    }
    if (devcluster_create_topics(dc, brokers, topics, err, errlen) < 0 ||
        (rebalance_delay_ms >= 0 &&
         devcluster_set_rebalance_delay(dc, rebalance_delay_ms, err, errlen) < 0)) {
        kg_devcluster_stop(dc);
        return NULL;
    }
    kg_info("dev-cluster: librdkafka %s, %d brokers at %s", rd_kafka_version_str(), brokers,
            kg_devcluster_bootstraps(dc));
    return dc;
}

const char *kg_devcluster_bootstraps(const kg_devcluster *dc)
{
    return rd_kafka_mock_cluster_bootstraps(dc->mock);
}

const char *kg_devcluster_librdkafka_version(void)
{
    return rd_kafka_version_str();
}

void kg_devcluster_stop(kg_devcluster *dc)
{
    if (!dc) return;
    /* The mock cluster must go before the handle that hosts it. */
    if (dc->mock) rd_kafka_mock_cluster_destroy(dc->mock);
    if (dc->rk) rd_kafka_destroy(dc->rk);
    free(dc);
}

/* ---- command line ---- */

static void devcluster_usage(FILE *out)
{
    fputs("usage: kgate dev-cluster [--brokers N] [--topic name:partitions]...\n"
          "\n"
          "Runs an embedded Kafka cluster (librdkafka's mock cluster) on 127.0.0.1.\n"
          "The first line on stdout is its bootstrap list host:port,host:port,...\n"
          "Runs until SIGINT or SIGTERM.\n"
          "\n"
          "  --brokers N               number of brokers, node ids 1..N (default 3, max 32)\n"
          "  --topic name:partitions   create a topic (repeatable)\n"
          "  --group-initial-rebalance-delay-ms MS\n"
          "                            how long a group with no members waits for more before\n"
          "                            its first rebalance (Kafka's "
          "group.initial.rebalance.delay.ms,\n"
          "                            default 3000; 0 lets consumers resume at once after a\n"
          "                            switch; librdkafka 2.12's mock only, 2.0.2's is fixed)\n"
          "  --debug CONTEXTS          librdkafka debug contexts to log, e.g. mock,protocol\n"
          "  --help                    this text\n",
          out);
}

typedef struct devcluster_args {
    int brokers;
    const char *topics[KG_DEVCLUSTER_MAX_TOPICS + 1];
    int n_topics;
    int rebalance_delay_ms; /* -1: the mock's default */
    int help;
} devcluster_args;

/* Accepts "--opt value" and "--opt=value"; returns the value or NULL when absent. */
static const char *devcluster_opt_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) return "";
    return argv[++*i];
}

static int devcluster_parse_args(int argc, char **argv, devcluster_args *a)
{
    a->brokers = 3;
    a->rebalance_delay_ms = -1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            a->help = 1;
        } else if ((v = devcluster_opt_value(argc, argv, &i, "--brokers")) != NULL) {
            char *end = NULL;
            long b = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || b < 1 || b > KG_DEVCLUSTER_MAX_BROKERS) {
                kg_error("dev-cluster: --brokers must be 1..%d, got '%s'",
                         KG_DEVCLUSTER_MAX_BROKERS, v);
                return -1;
            }
            a->brokers = (int)b;
        } else if ((v = devcluster_opt_value(argc, argv, &i, "--topic")) != NULL) {
            if (a->n_topics == KG_DEVCLUSTER_MAX_TOPICS) {
                kg_error("dev-cluster: at most %d topics", KG_DEVCLUSTER_MAX_TOPICS);
                return -1;
            }
            a->topics[a->n_topics++] = v;
        } else if ((v = devcluster_opt_value(argc, argv, &i,
                                             "--group-initial-rebalance-delay-ms")) != NULL) {
            char *end = NULL;
            errno = 0;
            long ms = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno || ms < 0 || ms > KG_DEVCLUSTER_MAX_DELAY_MS) {
                kg_error("dev-cluster: --group-initial-rebalance-delay-ms must be 0..%d, got '%s'",
                         KG_DEVCLUSTER_MAX_DELAY_MS, v);
                return -1;
            }
            a->rebalance_delay_ms = (int)ms;
        } else if ((v = devcluster_opt_value(argc, argv, &i, "--debug")) != NULL) {
            devcluster_debug_contexts = v;
        } else {
            kg_error("dev-cluster: unknown argument '%s' (see --help)", argv[i]);
            return -1;
        }
    }
    a->topics[a->n_topics] = NULL;
    return 0;
}

/* Blocks the stop signals in this thread *before* librdkafka starts its threads, so they inherit
 * the mask and the signal is always delivered to sigwait() here. */
static void devcluster_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Each client of the cluster costs a socket; tests hold 1,000 connections through kgate, so lift
 * the soft descriptor limit to the hard one (the default soft 1024 would refuse them). */
static void devcluster_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            kg_warn("dev-cluster: cannot raise the open-file limit: %s", strerror(errno));
    }
}

int kg_devcluster_main(int argc, char **argv)
{
    devcluster_args args = {0};
    if (devcluster_parse_args(argc, argv, &args) < 0) {
        devcluster_usage(stderr);
        return 2;
    }
    if (args.help) {
        devcluster_usage(stdout);
        return 0;
    }
    devcluster_raise_fd_limit();
    sigset_t stop;
    devcluster_block_stop_signals(&stop);

    char err[512];
    kg_devcluster *dc = kg_devcluster_start_with(args.brokers, args.topics, args.rebalance_delay_ms,
                                                 err, sizeof(err));
    if (!dc) {
        kg_error("dev-cluster: %s", err);
        return 1;
    }
    /* The first stdout line is the contract with scripts and tests: flush it now. */
    printf("%s\n", kg_devcluster_bootstraps(dc));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    kg_info("dev-cluster: %s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    kg_devcluster_stop(dc);
    kg_info("dev-cluster: stopped");
    return 0;
}
