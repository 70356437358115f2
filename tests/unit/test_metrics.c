/* kg_metrics: registration identity, the exact exposition text, and lock-free updates from many
 * threads adding up exactly. */
#include "kt.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/kg_metrics.h"

KT_TEST(same_name_and_labels_is_the_same_metric)
{
    kg_metrics *m = kg_metrics_new();
    kg_counter *a = kg_metrics_counter(m, "kgate_requests_total", "Requests.", "api=\"Produce\"");
    kg_counter *b = kg_metrics_counter(m, "kgate_requests_total", "ignored", "api=\"Produce\"");
    kg_counter *c = kg_metrics_counter(m, "kgate_requests_total", "Requests.", "api=\"Fetch\"");
    KT_CHECK(a != NULL);
    KT_CHECK(a == b);
    KT_CHECK(c != NULL && c != a);
    /* Another type under a registered name is refused, not silently mixed. */
    KT_CHECK(kg_metrics_gauge(m, "kgate_requests_total", "x", "") == NULL);
    kg_metrics_free(m);
}

KT_TEST(malformed_names_labels_and_bounds_are_refused)
{
    kg_metrics *m = kg_metrics_new();
    double ok[] = {1, 2};
    double unsorted[] = {2, 1};
    double inf[] = {1, INFINITY};
    KT_CHECK(kg_metrics_counter(m, "1bad", "", "") == NULL);
    KT_CHECK(kg_metrics_counter(m, "bad-name", "", "") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=b") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=\"b\",") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=\"b\"c=\"d\"") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=\"b\\x\"") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=\"unterminated") == NULL);
    KT_CHECK(kg_metrics_counter(m, "good", "", "a=\"b\",c=\"d\\\"e\"") != NULL);
    KT_CHECK(kg_metrics_histogram(m, "h", "", "", unsorted, 2) == NULL);
    KT_CHECK(kg_metrics_histogram(m, "h", "", "", inf, 2) == NULL);
    KT_CHECK(kg_metrics_histogram(m, "h", "", "", ok, 0) == NULL);
    KT_CHECK(kg_metrics_histogram(m, "h", "", "le=\"1\"", ok, 2) == NULL);
    KT_CHECK(kg_metrics_histogram(m, "h", "", "", ok, 2) != NULL);
    /* Same histogram name with other buckets would render inconsistent series. */
    KT_CHECK(kg_metrics_histogram(m, "h", "", "x=\"1\"", ok, 1) == NULL);
    kg_metrics_free(m);
}

KT_TEST(render_is_exact_exposition_text)
{
    kg_metrics *m = kg_metrics_new();
    kg_counter *produce =
        kg_metrics_counter(m, "kgate_requests_total", "Requests forwarded, by API.",
                           "vcluster=\"payments\",api=\"Produce\"");
    kg_counter *fetch =
        kg_metrics_counter(m, "kgate_requests_total", "", "vcluster=\"payments\",api=\"Fetch\"");
    kg_gauge *active = kg_metrics_gauge(m, "kgate_vcluster_epoch", "Epoch.\nWith \\ newline.",
                                        "vcluster=\"payments\"");
    kg_gauge *plain = kg_metrics_gauge(m, "kgate_up", "Up.", "");
    double bounds[] = {0.001, 0.5, 2};
    kg_histogram *lat =
        kg_metrics_histogram(m, "kgate_latency_seconds", "Latency.", "api=\"Produce\"", bounds, 3);
    kg_histogram *bare = kg_metrics_histogram(m, "kgate_switch_seconds", "Switch.", "", bounds, 3);

    kg_counter_add(produce, 41);
    kg_counter_inc(produce);
    kg_counter_inc(fetch);
    kg_gauge_set(active, 3);
    kg_gauge_add(active, 0.25);
    kg_gauge_set(plain, -INFINITY);
    kg_histogram_observe(lat, 0.0005);
    kg_histogram_observe(lat, 0.001); /* le is inclusive: lands in the 0.001 bucket */
    kg_histogram_observe(lat, 1.5);
    kg_histogram_observe(lat, 100);
    kg_histogram_observe(bare, 0.1);

    char *text = kg_metrics_render(m);
    const char *expected = "# HELP kgate_requests_total Requests forwarded, by API.\n"
                           "# TYPE kgate_requests_total counter\n"
                           "kgate_requests_total{vcluster=\"payments\",api=\"Produce\"} 42\n"
                           "kgate_requests_total{vcluster=\"payments\",api=\"Fetch\"} 1\n"
                           "# HELP kgate_vcluster_epoch Epoch.\\nWith \\\\ newline.\n"
                           "# TYPE kgate_vcluster_epoch gauge\n"
                           "kgate_vcluster_epoch{vcluster=\"payments\"} 3.25\n"
                           "# HELP kgate_up Up.\n"
                           "# TYPE kgate_up gauge\n"
                           "kgate_up -Inf\n"
                           "# HELP kgate_latency_seconds Latency.\n"
                           "# TYPE kgate_latency_seconds histogram\n"
                           "kgate_latency_seconds_bucket{api=\"Produce\",le=\"0.001\"} 2\n"
                           "kgate_latency_seconds_bucket{api=\"Produce\",le=\"0.5\"} 2\n"
                           "kgate_latency_seconds_bucket{api=\"Produce\",le=\"2\"} 3\n"
                           "kgate_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 4\n"
                           "kgate_latency_seconds_sum{api=\"Produce\"} 101.5015\n"
                           "kgate_latency_seconds_count{api=\"Produce\"} 4\n"
                           "# HELP kgate_switch_seconds Switch.\n"
                           "# TYPE kgate_switch_seconds histogram\n"
                           "kgate_switch_seconds_bucket{le=\"0.001\"} 0\n"
                           "kgate_switch_seconds_bucket{le=\"0.5\"} 1\n"
                           "kgate_switch_seconds_bucket{le=\"2\"} 1\n"
                           "kgate_switch_seconds_bucket{le=\"+Inf\"} 1\n"
                           "kgate_switch_seconds_sum 0.1\n"
                           "kgate_switch_seconds_count 1\n";
    KT_CHECK_EQ_STR(text, expected);
    free(text);
    kg_metrics_free(m);
}

KT_TEST(empty_registry_renders_empty_text)
{
    kg_metrics *m = kg_metrics_new();
    char *text = kg_metrics_render(m);
    KT_CHECK_EQ_STR(text, "");
    free(text);
    kg_metrics_free(m);
}

KT_TEST(null_metrics_are_no_ops)
{
    kg_counter_add(NULL, 5);
    kg_gauge_set(NULL, 1);
    kg_gauge_add(NULL, 1);
    kg_histogram_observe(NULL, 1);
    KT_CHECK_EQ_INT(kg_counter_value(NULL), 0);
}

KT_TEST(format_labels_escapes_values)
{
    char buf[128];
    KT_CHECK_EQ_INT(
        kg_metrics_format_labels(buf, sizeof(buf), "vcluster", "a\"b\\c\nd", "api", "Fetch", NULL),
        0);
    KT_CHECK_EQ_STR(buf, "vcluster=\"a\\\"b\\\\c\\nd\",api=\"Fetch\"");
    /* The escaped result is accepted back as labels. */
    kg_metrics *m = kg_metrics_new();
    KT_CHECK(kg_metrics_counter(m, "x_total", "", buf) != NULL);
    kg_metrics_free(m);

    char small[10];
    KT_CHECK_EQ_INT(kg_metrics_format_labels(small, sizeof(small), "vcluster", "payments", NULL),
                    -1);
    KT_CHECK_EQ_STR(small, "");
    KT_CHECK_EQ_INT(kg_metrics_format_labels(buf, sizeof(buf), "bad-key", "v", NULL), -1);
    KT_CHECK_EQ_INT(kg_metrics_format_labels(buf, sizeof(buf), NULL), 0);
    KT_CHECK_EQ_STR(buf, "");
}

#define THREADS 4
#define ROUNDS 100000

typedef struct hammer_arg {
    kg_metrics *m;
    int id;
} hammer_arg;

static const double hammer_bounds[] = {1, 2};

/* Registers (concurrently with the other threads) and then updates the shared metrics. */
static void *hammer(void *p)
{
    hammer_arg *a = p;
    kg_counter *c = kg_metrics_counter(a->m, "hammer_total", "", "");
    kg_gauge *g = kg_metrics_gauge(a->m, "hammer_gauge", "", "");
    kg_histogram *h = kg_metrics_histogram(a->m, "hammer_seconds", "", "", hammer_bounds, 2);
    char labels[32];
    kg_metrics_format_labels(labels, sizeof(labels), "thread", a->id % 2 ? "odd" : "even", NULL);
    kg_counter *per = kg_metrics_counter(a->m, "hammer_by_parity_total", "", labels);
    for (int i = 0; i < ROUNDS; i++) {
        kg_counter_inc(c);
        kg_counter_add(per, 2);
        kg_gauge_add(g, 1.0);
        kg_histogram_observe(h, (i % 3) + 0.5);           /* 0.5, 1.5, 2.5 */
        if (i % 1000 == 0) free(kg_metrics_render(a->m)); /* rendering concurrently with updates */
    }
    return NULL;
}

KT_TEST(concurrent_updates_add_up_exactly)
{
    kg_metrics *m = kg_metrics_new();
    pthread_t th[THREADS];
    hammer_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (hammer_arg){.m = m, .id = i};
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    KT_CHECK_EQ_INT(kg_counter_value(kg_metrics_counter(m, "hammer_total", "", "")),
                    THREADS * ROUNDS);
    KT_CHECK(kg_gauge_value(kg_metrics_gauge(m, "hammer_gauge", "", "")) == THREADS * ROUNDS);
    kg_histogram *h = kg_metrics_histogram(m, "hammer_seconds", "", "", hammer_bounds, 2);
    KT_CHECK_EQ_INT(kg_histogram_count(h), THREADS * ROUNDS);
    char *text = kg_metrics_render(m);
    KT_CHECK(strstr(text, "hammer_by_parity_total{thread=\"odd\"} 400000\n") != NULL);
    KT_CHECK(strstr(text, "hammer_by_parity_total{thread=\"even\"} 400000\n") != NULL);
    /* i % 3 over 100000 rounds: 33334 at 0.5, 33333 at 1.5, 33333 at 2.5, per thread. */
    KT_CHECK(strstr(text, "hammer_seconds_bucket{le=\"1\"} 133336\n") != NULL);
    KT_CHECK(strstr(text, "hammer_seconds_bucket{le=\"2\"} 266668\n") != NULL);
    KT_CHECK(strstr(text, "hammer_seconds_bucket{le=\"+Inf\"} 400000\n") != NULL);
    KT_CHECK(strstr(text, "hammer_seconds_sum 599996\n") != NULL);
    free(text);
    kg_metrics_free(m);
}

KT_MAIN()
