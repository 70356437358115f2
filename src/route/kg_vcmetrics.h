/* kg_vcmetrics — the Prometheus metrics of one virtual cluster, as handles the proxy updates
 * without locks or allocation (per-API series are registered on first use). */
#ifndef KG_VCMETRICS_H
#define KG_VCMETRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kg_metrics kg_metrics;
typedef struct kg_vc_metrics kg_vc_metrics;
typedef struct kg_gateway kg_gateway;
typedef struct kg_vcluster kg_vcluster;
typedef struct kg_cluster kg_cluster;

kg_vc_metrics *kg_vcm_new(kg_metrics *registry, const char *vcluster);
void kg_vcm_free(kg_vc_metrics *m);

void kg_vcm_conn_opened(kg_vc_metrics *m);
void kg_vcm_conn_closed(kg_vc_metrics *m);
void kg_vcm_request(kg_vc_metrics *m, int16_t api_key);
void kg_vcm_response(kg_vc_metrics *m, int16_t api_key, uint64_t latency_us);
/* A request that will never get its response (its connection closed first). */
void kg_vcm_unanswered(kg_vc_metrics *m, int16_t api_key);
/* kgate answered a request retriably in the old side's place at a switch (kg_handover). */
void kg_vcm_handover(kg_vc_metrics *m, int16_t api_key);
void kg_vcm_bytes_in(kg_vc_metrics *m, size_t n);
void kg_vcm_bytes_out(kg_vc_metrics *m, size_t n);

/* Produce request bytes / Fetch response bytes: the throughput experiments watch. */
void kg_vcm_payload(kg_vc_metrics *m, int16_t api_key, size_t frame_bytes);
/* An inspected response (experiments): RESULTS partition results, ERRORS of them errors. */
void kg_vcm_inspected(kg_vc_metrics *m, int16_t api_key, uint32_t results, uint32_t errors);

/* Cumulative counters of one virtual cluster, for experiments (rates come from differences). */
typedef struct kg_vc_sample {
    uint64_t requests;
    uint64_t produce_requests, fetch_requests, commit_requests;
    uint64_t produce_bytes, fetch_bytes;
    uint64_t produce_results, produce_errors; /* inspected Produce partition results */
    uint64_t fetch_results, fetch_errors;
    uint64_t commit_results, commit_errors;
    uint64_t connections_opened, connections_closed;
    uint64_t bytes_in, bytes_out; /* client traffic, both directions */
    uint64_t unanswered;          /* requests whose response never reached the client */
    uint64_t latency_count;       /* responses timed */
    double latency_sum_s;         /* their total latency */
    double connections;           /* open client connections now */
} kg_vc_sample;
void kg_vcm_sample(kg_vc_metrics *m, kg_vc_sample *out);

/* Scrape time: copy routing and health state into gauges. */
void kg_vcm_collect(kg_vc_metrics *m, kg_gateway *gw, kg_vcluster *vc);
void kg_vcm_collect_cluster(kg_metrics *registry, kg_cluster *c);

#endif
