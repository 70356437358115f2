/* kg_config — kgate's YAML configuration (libfyaml), validated in full.
 *
 * Every error names the file, line and column of the offending node; unknown keys are errors
 * so a typo never silently changes behaviour. The structure is plain data: it is loaded once,
 * then read-only (a reload builds a new one).
 */
#ifndef KG_CONFIG_H
#define KG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KG_NAME_MAX 64
#define KG_HOST_MAX 256

typedef struct kg_hostport {
    char host[KG_HOST_MAX];
    uint16_t port;
} kg_hostport;

/* A physical Kafka cluster kgate can route to. Room for upstream TLS/SASL later. */
typedef struct kg_cluster_cfg {
    char name[KG_NAME_MAX];
    kg_hostport *bootstrap;
    int n_bootstrap;
} kg_cluster_cfg;

/* A virtual cluster: what clients connect to. Broker node N is served on port + 1 + (N - node_id_min). */
typedef struct kg_vcluster_cfg {
    char name[KG_NAME_MAX];
    uint16_t port;
    int primary;   /* index into kg_config.clusters */
    int secondary; /* index, or -1 when there is none */
    int node_id_min; /* default 0 */
    int node_id_max; /* default 31 */
} kg_vcluster_cfg;

typedef struct kg_config {
    char path[1024];
    char listen[KG_HOST_MAX];          /* default 127.0.0.1 */
    char advertised_host[KG_HOST_MAX]; /* default: listen */
    kg_cluster_cfg *clusters;
    int n_clusters;
    kg_vcluster_cfg *vclusters;
    int n_vclusters;

    char admin_listen[KG_HOST_MAX]; /* "host:port", empty = admin API off; default 127.0.0.1:19644 */
    char admin_token[256];          /* empty = no token required */
    char state_path[1024];          /* default ./kgate-state.db */

    int workers;              /* 0 in the file = number of cores, resolved at load */
    uint32_t max_frame_bytes; /* limits.max_frame_bytes, default 100 MiB */
    uint32_t buffer_bytes;    /* limits.buffer_bytes: per-direction high-water mark, default 4 MiB */
    int max_connections;      /* limits.max_connections, default 10000 */
    int connect_timeout_ms;   /* limits.connect_timeout_ms, default 5000 */
    int drain_timeout_ms;     /* limits.drain_timeout_ms: shutdown grace, default 5000 */
    int probe_interval_ms;    /* health.probe_interval_ms, default 1000 */
    char log_level[16];       /* log.level: debug|info|warn|error, default info */
} kg_config;

/* Loads and validates PATH. Returns a config or NULL; every error is printed to ERRS as
 * "PATH:LINE:COL: message" and *n_errors is set to how many there were. */
kg_config *kg_config_load(const char *path, FILE *errs, int *n_errors);
/* Same, from a string in memory (NAME is used in messages). For tests and the demo. */
kg_config *kg_config_parse(const char *name, const char *yaml, size_t len, FILE *errs, int *n_errors);
void kg_config_free(kg_config *cfg);

int kg_config_cluster_index(const kg_config *cfg, const char *name);
int kg_config_vcluster_index(const kg_config *cfg, const char *name);

#endif
