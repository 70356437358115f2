#include "route/kg_vcmetrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_msgs.h"
#include "metrics/kg_metrics.h"
#include "route/kg_gateway.h"

#define VCM_APIS 128 /* api keys are small integers; higher ones share no series */

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct kg_vc_metrics {
    kg_metrics *registry;
    char vcluster[KG_NAME_MAX * 2];
    char labels[KG_NAME_MAX * 2 + 16];
    kg_gauge *connections;
    kg_counter *connections_total;
    kg_counter *bytes_in, *bytes_out;
    kg_histogram *latency;
    _Atomic(kg_counter *) requests[VCM_APIS];
    _Atomic(kg_counter *) unanswered[VCM_APIS];
    _Atomic(kg_counter *) handover[VCM_APIS];
    kg_counter *connections_closed;
    kg_counter *produce_bytes, *fetch_bytes;
    kg_counter *results[3], *errors[3]; /* Produce, Fetch, OffsetCommit */
    kg_gauge *epoch, *failovers, *last_switch;
};

static kg_counter *vcm_api_counter(kg_vc_metrics *m, _Atomic(kg_counter *) *slot, int16_t api,
                                   const char *name, const char *help)
{
    kg_counter *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c) return c;
    char labels[256];
    char api_name[64];
    const char *known = kp_api_name(api);
    if (known)
        snprintf(api_name, sizeof(api_name), "%s", known);
    else
        snprintf(api_name, sizeof(api_name), "api_%d", api);
    kg_metrics_format_labels(labels, sizeof(labels), "vcluster", m->vcluster, "api", api_name,
                             NULL);
    /* Registration is idempotent, so two workers racing here get the same counter. */
    c = kg_metrics_counter(m->registry, name, help, labels);
    atomic_store_explicit(slot, c, memory_order_release);
    return c;
}

kg_vc_metrics *kg_vcm_new(kg_metrics *registry, const char *vcluster)
{
    kg_vc_metrics *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->registry = registry;
    snprintf(m->vcluster, sizeof(m->vcluster), "%s", vcluster);
    kg_metrics_format_labels(m->labels, sizeof(m->labels), "vcluster", vcluster, NULL);
    m->connections = kg_metrics_gauge(registry, "kgate_client_connections",
                                      "Open client connections", m->labels);
    m->connections_total = kg_metrics_counter(registry, "kgate_client_connections_total",
                                              "Client connections accepted", m->labels);
    m->connections_closed = kg_metrics_counter(registry, "kgate_client_connections_closed_total",
                                               "Client connections closed", m->labels);
    m->produce_bytes = kg_metrics_counter(registry, "kgate_produce_bytes_total",
                                          "Bytes of Produce requests forwarded", m->labels);
    m->fetch_bytes = kg_metrics_counter(registry, "kgate_fetch_bytes_total",
                                        "Bytes of Fetch responses delivered", m->labels);
    static const char *const inspected_apis[3] = {"Produce", "Fetch", "OffsetCommit"};
    for (int i = 0; i < 3; i++) {
        char labels[256];
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", vcluster, "api",
                                 inspected_apis[i], NULL);
        m->results[i] = kg_metrics_counter(
            registry, "kgate_inspected_results_total",
            "Partition results inspected while an experiment watches the vcluster", labels);
        m->errors[i] = kg_metrics_counter(
            registry, "kgate_client_errors_total",
            "Partition results carrying an error code, as delivered to clients (inspected "
            "while an experiment watches the vcluster; chaos-made errors included)",
            labels);
    }
    m->bytes_in = kg_metrics_counter(registry, "kgate_client_bytes_in_total",
                                     "Bytes received from clients", m->labels);
    m->bytes_out = kg_metrics_counter(registry, "kgate_client_bytes_out_total",
                                      "Bytes sent to clients", m->labels);
    m->latency = kg_metrics_histogram(
        registry, "kgate_request_latency_seconds", "Time from forwarding a request to its response",
        m->labels, latency_bounds, (int)(sizeof(latency_bounds) / sizeof(latency_bounds[0])));
    m->epoch = kg_metrics_gauge(registry, "kgate_vcluster_epoch",
                                "Routing epoch, incremented by every switch", m->labels);
    m->failovers = kg_metrics_gauge(registry, "kgate_vcluster_switches_total",
                                    "Failovers and failbacks since start", m->labels);
    m->last_switch = kg_metrics_gauge(registry, "kgate_vcluster_last_switch_seconds",
                                      "Duration of the last switch", m->labels);
    return m;
}

void kg_vcm_free(kg_vc_metrics *m)
{
    free(m); /* the metrics themselves belong to the registry */
}

void kg_vcm_conn_opened(kg_vc_metrics *m)
{
    kg_gauge_add(m->connections, 1);
    kg_counter_inc(m->connections_total);
}

void kg_vcm_conn_closed(kg_vc_metrics *m)
{
    kg_gauge_add(m->connections, -1);
    kg_counter_inc(m->connections_closed);
}

void kg_vcm_payload(kg_vc_metrics *m, int16_t api_key, size_t frame_bytes)
{
    if (api_key == 0)
        kg_counter_add(m->produce_bytes, frame_bytes);
    else if (api_key == 1)
        kg_counter_add(m->fetch_bytes, frame_bytes);
}

static int inspected_index(int16_t api_key)
{
    return api_key == 0 ? 0 : api_key == 1 ? 1 : api_key == 8 ? 2 : -1;
}

void kg_vcm_inspected(kg_vc_metrics *m, int16_t api_key, uint32_t results, uint32_t errors)
{
    int i = inspected_index(api_key);
    if (i < 0) return;
    kg_counter_add(m->results[i], results);
    kg_counter_add(m->errors[i], errors);
}

static uint64_t api_count(kg_vc_metrics *m, int16_t api_key)
{
    kg_counter *c = atomic_load_explicit(&m->requests[api_key], memory_order_acquire);
    return c ? kg_counter_value(c) : 0;
}

void kg_vcm_sample(kg_vc_metrics *m, kg_vc_sample *out)
{
    memset(out, 0, sizeof(*out));
    for (int api = 0; api < VCM_APIS; api++)
        out->requests += api_count(m, (int16_t)api);
    out->produce_requests = api_count(m, 0);
    out->fetch_requests = api_count(m, 1);
    out->commit_requests = api_count(m, 8);
    out->produce_bytes = kg_counter_value(m->produce_bytes);
    out->fetch_bytes = kg_counter_value(m->fetch_bytes);
    out->produce_results = kg_counter_value(m->results[0]);
    out->produce_errors = kg_counter_value(m->errors[0]);
    out->fetch_results = kg_counter_value(m->results[1]);
    out->fetch_errors = kg_counter_value(m->errors[1]);
    out->commit_results = kg_counter_value(m->results[2]);
    out->commit_errors = kg_counter_value(m->errors[2]);
    out->connections_opened = kg_counter_value(m->connections_total);
    out->connections_closed = kg_counter_value(m->connections_closed);
    out->bytes_in = kg_counter_value(m->bytes_in);
    out->bytes_out = kg_counter_value(m->bytes_out);
    for (int api = 0; api < VCM_APIS; api++) {
        kg_counter *c = atomic_load_explicit(&m->unanswered[api], memory_order_acquire);
        if (c) out->unanswered += kg_counter_value(c);
    }
    out->latency_count = kg_histogram_count(m->latency);
    out->latency_sum_s = kg_histogram_sum(m->latency);
    out->connections = kg_gauge_value(m->connections);
}

void kg_vcm_request(kg_vc_metrics *m, int16_t api_key)
{
    if (api_key >= 0 && api_key < VCM_APIS)
        kg_counter_inc(vcm_api_counter(m, &m->requests[api_key], api_key, "kgate_requests_total",
                                       "Requests received from clients, by API"));
}

void kg_vcm_response(kg_vc_metrics *m, int16_t api_key, uint64_t latency_us)
{
    kg_histogram_observe(m->latency, (double)latency_us / 1e6);
}

/* One more in the per-API counter NAME (SLOTS: its counter per API, made on first use). */
static void vcm_api_inc(kg_vc_metrics *m, _Atomic(kg_counter *) *slots, int16_t api_key,
                        const char *name, const char *help)
{
    if (api_key >= 0 && api_key < VCM_APIS)
        kg_counter_inc(vcm_api_counter(m, &slots[api_key], api_key, name, help));
}

void kg_vcm_unanswered(kg_vc_metrics *m, int16_t api_key)
{
    vcm_api_inc(m, m->unanswered, api_key, "kgate_request_errors_total",
                "Requests whose response never reached the client (connection closed, switch, "
                "backend failure), by API");
}

void kg_vcm_handover(kg_vc_metrics *m, int16_t api_key)
{
    vcm_api_inc(m, m->handover, api_key, "kgate_switch_answers_total",
                "Requests kgate answered with a retriable error in the old side's place at a "
                "switch (switch.grace_ms), by API");
}

void kg_vcm_bytes_in(kg_vc_metrics *m, size_t n)
{
    kg_counter_add(m->bytes_in, n);
}

void kg_vcm_bytes_out(kg_vc_metrics *m, size_t n)
{
    kg_counter_add(m->bytes_out, n);
}

void kg_vcm_collect(kg_vc_metrics *m, kg_gateway *gw, kg_vcluster *vc)
{
    uint64_t word = atomic_load(&vc->route);
    kg_gauge_set(m->epoch, (double)KG_ROUTE_EPOCH(word));
    kg_gauge_set(m->failovers, (double)atomic_load(&vc->failovers_total));
    kg_gauge_set(m->last_switch, (double)atomic_load(&vc->last_switch_us) / 1e6);
    int sides[2] = {vc->cfg->primary, vc->cfg->secondary};
    for (int i = 0; i < 2; i++) {
        if (sides[i] < 0) continue;
        char labels[256];
        kg_metrics_format_labels(labels, sizeof(labels), "vcluster", m->vcluster, "cluster",
                                 gw->clusters[sides[i]].cfg->name, "role",
                                 i == 0 ? "primary" : "secondary", NULL);
        kg_gauge_set(kg_metrics_gauge(m->registry, "kgate_vcluster_active",
                                      "1 for the cluster a virtual cluster routes to", labels),
                     KG_ROUTE_ACTIVE(word) == sides[i]);
    }
}

void kg_vcm_collect_cluster(kg_metrics *registry, kg_cluster *c)
{
    char labels[256];
    kg_metrics_format_labels(labels, sizeof(labels), "cluster", c->cfg->name, NULL);
    kg_gauge_set(kg_metrics_gauge(registry, "kgate_cluster_up",
                                  "1 when kgate's last health probe of the cluster succeeded",
                                  labels),
                 atomic_load(&c->up));
    kg_gauge_set(kg_metrics_gauge(registry, "kgate_cluster_auth_failed",
                                  "1 when kgate's own SASL login to the cluster failed at the "
                                  "last probe (wrong or expired credentials)",
                                  labels),
                 atomic_load(&c->auth_failed));
    kg_gauge_set(kg_metrics_gauge(registry, "kgate_cluster_probe_latency_seconds",
                                  "Duration of the last successful health probe", labels),
                 (double)atomic_load(&c->probe_us) / 1e6);
    pthread_rwlock_rdlock(&c->lock);
    int n = c->n_brokers;
    pthread_rwlock_unlock(&c->lock);
    kg_gauge_set(kg_metrics_gauge(registry, "kgate_cluster_brokers",
                                  "Brokers in the cluster's last metadata", labels),
                 n);
}
