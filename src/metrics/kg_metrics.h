/* kg_metrics — a small metrics registry rendered in the Prometheus text exposition format.
 *
 * A layer of its own (src/metrics/, beside src/util/): every module records metrics (engine,
 * route, chaos), so the registry must sit below all of them and depend on nothing but util/;
 * it is not a util/ helper because it owns state and a prefix (kg_metrics_*, kg_counter_*, ...)
 * of its own. Serving the text over HTTP (/metrics) is the admin API's job (src/admin/).
 *
 * Registration (at start-up, or when a virtual or physical cluster appears) takes a lock and may
 * allocate; it returns a stable pointer. Updates through that pointer are lock-free and
 * allocation-free (C11 atomics), safe from any thread, and accept NULL (a no-op) so code paths
 * without a registry need no checks.
 *
 * A metric is identified by name + labels: registering the same pair again returns the same
 * pointer. LABELS is the text between the braces, e.g. `vcluster="payments",api="Produce"`, or
 * "" / NULL for none; build it with kg_metrics_format_labels() when values come from users.
 */
#ifndef KG_METRICS_H
#define KG_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct kg_metrics kg_metrics;
typedef struct kg_counter kg_counter;
typedef struct kg_gauge kg_gauge;
typedef struct kg_histogram kg_histogram;

#define KG_METRICS_MAX_BUCKETS 32

/* Latency buckets in seconds, 100 µs to 10 s, for request and switch timings. */
extern const double kg_metrics_latency_buckets[];
extern const int kg_metrics_latency_buckets_n;

kg_metrics *kg_metrics_new(void);
void kg_metrics_free(kg_metrics *m);

/* Return NULL (and log why) when NAME or LABELS are malformed, or NAME is already registered
 * with another type (or, for histograms, other bounds). BOUNDS: strictly increasing finite
 * upper bounds, 1..KG_METRICS_MAX_BUCKETS of them; +Inf is implicit. HELP of the first
 * registration wins. */
kg_counter *kg_metrics_counter(kg_metrics *m, const char *name, const char *help,
                               const char *labels);
kg_gauge *kg_metrics_gauge(kg_metrics *m, const char *name, const char *help, const char *labels);
kg_histogram *kg_metrics_histogram(kg_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, int n);

void kg_counter_add(kg_counter *c, uint64_t n);
void kg_counter_inc(kg_counter *c);
uint64_t kg_counter_value(const kg_counter *c);

void kg_gauge_set(kg_gauge *g, double v);
void kg_gauge_add(kg_gauge *g, double delta);
double kg_gauge_value(const kg_gauge *g);

void kg_histogram_observe(kg_histogram *h, double v);
uint64_t kg_histogram_count(const kg_histogram *h);
double kg_histogram_sum(const kg_histogram *h); /* of the values observed */

/* The whole registry in the text exposition format (version 0.0.4), families in registration
 * order. malloc'd; NULL only when out of memory. */
char *kg_metrics_render(kg_metrics *m);

/* Writes `k1="v1",k2="v2"` into BUF from NULL-terminated key/value string pairs, escaping
 * backslash, double quote and newline in values. Returns 0, or -1 when BUF is too small or a key
 * is not a valid label name. Example:
 *   kg_metrics_format_labels(buf, sizeof buf, "vcluster", vc->name, "api", "Produce", NULL); */
int kg_metrics_format_labels(char *buf, size_t len, ...) __attribute__((sentinel));

#endif
