/* rdk_reader — reads a topic from its beginning with the librdkafka it is linked with, and prints
 * what the application sees. The chaos tests build it against librdkafka 2.12 (Fetch v13+,
 * which names topics by id), since the Python client links Debian's 2.0.2.
 *
 * Usage: rdk_reader BOOTSTRAP TOPIC PARTITIONS WANT SECONDS CLIENT_ID [PROPERTY=VALUE...]
 * Prints "version X" first, then one line per record "R partition offset value-hex" and per
 * error "E code name"; stops after WANT records or SECONDS. Exit 0 unless setup failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static int set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdk_reader: %s=%s: %s\n", name, value, err);
        return -1;
    }
    return 0;
}

static rd_kafka_t *make_consumer(int argc, char **argv)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[64];
    snprintf(group, sizeof(group), "rdk-reader-%ld-%d", (long)time(NULL), rand());
    if (set_conf(conf, "bootstrap.servers", argv[1]) || set_conf(conf, "client.id", argv[6]) ||
        set_conf(conf, "group.id", group) || set_conf(conf, "enable.auto.commit", "false") ||
        set_conf(conf, "broker.address.family", "v4") ||
        set_conf(conf, "enable.partition.eof", "false"))
        return NULL;
    for (int i = 7; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "rdk_reader: expected PROPERTY=VALUE, got %s\n", argv[i]);
            return NULL;
        }
        *eq = '\0';
        if (set_conf(conf, argv[i], eq + 1)) return NULL;
    }
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) fprintf(stderr, "rdk_reader: %s\n", err);
    return rk;
}

static void print_record(const rd_kafka_message_t *m)
{
    printf("R %d %lld ", (int)m->partition, (long long)m->offset);
    const unsigned char *p = m->payload;
    for (size_t i = 0; p && i < m->len; i++)
        printf("%02x", p[i]);
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr,
                "usage: rdk_reader BOOTSTRAP TOPIC PARTITIONS WANT SECONDS CLIENT_ID [P=V...]\n");
        return 2;
    }
    int partitions = atoi(argv[3]);
    long want = atol(argv[4]);
    long seconds = atol(argv[5]);
    rd_kafka_t *rk = make_consumer(argc, argv);
    if (!rk) return 1;
    printf("version %s\n", rd_kafka_version_str());
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(parts, argv[2], i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);

    long got = 0;
    time_t deadline = time(NULL) + seconds;
    while (got < want && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err) {
            printf("E %d %s\n", (int)m->err, rd_kafka_err2name(m->err));
        } else {
            print_record(m);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
