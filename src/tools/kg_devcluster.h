/* kg_devcluster — an embedded Kafka cluster (librdkafka's mock cluster) for trying and testing
 * kgate without a real Kafka.
 *
 * The mock cluster speaks the Kafka protocol of the librdkafka it is linked with: Debian's 2.0.2
 * gives an older broker, the 2.12 build from the test setup a modern one. Both are used by the
 * integration tests, so the version is logged at start-up for the tests to assert.
 */
#ifndef KG_DEVCLUSTER_H
#define KG_DEVCLUSTER_H

#include <stddef.h>

typedef struct kg_devcluster kg_devcluster;

/* Starts a cluster of `brokers` brokers (node ids 1..brokers) on 127.0.0.1, ephemeral ports.
 * `topics` is a NULL-terminated list of "name:partitions" (or NULL for none); each topic gets
 * replication factor min(3, brokers). Returns NULL with a message in err on failure. */
kg_devcluster *kg_devcluster_start(int brokers, const char *const *topics, char *err,
                                   size_t errlen);

/* The same, with the mock's group.initial.rebalance.delay.ms set to REBALANCE_DELAY_MS (-1: its
 * default, KG_DEVCLUSTER_DEFAULT_REBALANCE_DELAY_MS). A group that is empty waits that long for
 * more members before its first rebalance: a DR cluster whose consumers must resume fast after
 * a switch sets 0. Only librdkafka 2.12's mock has the setting: with 2.0.2 any other value than
 * its built-in 3000 fails with a message saying so. */
#define KG_DEVCLUSTER_DEFAULT_REBALANCE_DELAY_MS 3000
kg_devcluster *kg_devcluster_start_with(int brokers, const char *const *topics,
                                        int rebalance_delay_ms, char *err, size_t errlen);

/* "host:port,host:port,...", valid until kg_devcluster_stop(). */
const char *kg_devcluster_bootstraps(const kg_devcluster *dc);

/* librdkafka's version string, e.g. "2.12.0". */
const char *kg_devcluster_librdkafka_version(void);

void kg_devcluster_stop(kg_devcluster *dc);

/* `kgate dev-cluster [--brokers N] [--topic name:partitions]...
 *  [--group-initial-rebalance-delay-ms MS] [--debug CONTEXTS] [--help]` (argv[0] is the
 * sub-command name). Prints the bootstrap list as the first line on stdout, runs until SIGINT or
 * SIGTERM, returns the process exit code. */
int kg_devcluster_main(int argc, char **argv);

#endif
