/* kg_admin_history: rates between two reads, the mean latency, the ring keeping the newest
 * points, the "seconds" window, unreadable series, and the sampler thread's start and stop. */
#include "kt.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "admin/kg_admin_history.h"

typedef struct fake_series {
    kg_admin_counters now;
    int unreadable;
    int reads;
} fake_series;

static int fake_read(void *ctx, const char *name, kg_admin_counters *out)
{
    fake_series *s = ctx;
    s += strcmp(name, "payments") == 0 ? 0 : 1;
    s->reads++;
    if (s->unreadable) return -1;
    *out = s->now;
    return 0;
}

static const char *const names[] = {"payments", "orders"};

static json_t *points(kg_admin_history *h, const char *name, int seconds)
{
    json_t *j = kg_admin_history_json(h, name, seconds);
    json_t *p = json_incref(json_object_get(j, "points"));
    json_decref(j);
    return p;
}

static double num(json_t *points, size_t i, const char *key)
{
    return json_number_value(json_object_get(json_array_get(points, i), key));
}

KT_TEST(history_rates_latency_and_levels_between_two_reads)
{
    fake_series s[2] = {0};
    kg_admin_history *h = kg_admin_history_new(names, 2, 5000, 10, fake_read, s);
    KT_CHECK(h != NULL);
    /* requests, bytes in, bytes out, errors, responses timed, their latency, connections */
    static const kg_admin_counters reads[2] = {{100, 1000, 4000, 1, 50, 1.0, 3},
                                               {200, 6000, 4000, 11, 100, 1.5, 7}};
    s[0].now = reads[0];
    kg_admin_history_tick(h, 1000000);
    json_t *p = points(h, "payments", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 0); /* one read: no interval yet */
    json_decref(p);

    s[0].now = reads[1];
    kg_admin_history_tick(h, 1005000);
    p = points(h, "payments", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 1);
    KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(p, 0), "t")), 1005000);
    KT_CHECK(num(p, 0, "requests_per_s") == 20.0);
    KT_CHECK(num(p, 0, "bytes_in_per_s") == 1000.0);
    KT_CHECK(num(p, 0, "bytes_out_per_s") == 0.0);
    KT_CHECK(num(p, 0, "errors_per_s") == 2.0);
    KT_CHECK(num(p, 0, "latency_ms") == 10.0); /* 0.5 s over 50 responses */
    KT_CHECK(num(p, 0, "connections") == 7.0);
    json_decref(p);

    /* The other series had only zeros: rates 0, latency 0 (nothing answered), not NaN. */
    p = points(h, "orders", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 1);
    KT_CHECK(num(p, 0, "latency_ms") == 0.0 && num(p, 0, "requests_per_s") == 0.0);
    json_decref(p);
    KT_CHECK(kg_admin_history_json(h, "nosuch", 0) == NULL);
    kg_admin_history_stop(h);
}

KT_TEST(history_counter_going_back_counts_zero_and_unreadable_reads_are_skipped)
{
    fake_series s[2] = {0};
    kg_admin_history *h = kg_admin_history_new(names, 2, 5000, 10, fake_read, s);
    s[0].now.requests = 500;
    kg_admin_history_tick(h, 10000);
    s[0].now.requests = 100; /* a reset */
    kg_admin_history_tick(h, 15000);
    s[0].unreadable = 1;
    kg_admin_history_tick(h, 20000);
    s[0].unreadable = 0;
    s[0].now.requests = 150;
    kg_admin_history_tick(h, 25000); /* 50 requests over the 10 s since the last good read */
    json_t *p = points(h, "payments", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 2);
    KT_CHECK(num(p, 0, "requests_per_s") == 0.0);
    KT_CHECK(num(p, 1, "requests_per_s") == 5.0);
    json_decref(p);
    kg_admin_history_stop(h);
}

KT_TEST(history_ring_keeps_the_newest_points_and_seconds_window)
{
    fake_series s[2] = {0};
    kg_admin_history *h = kg_admin_history_new(names, 2, 5000, 4, fake_read, s);
    for (int i = 0; i <= 10; i++) {
        s[0].now.requests = (uint64_t)i * 5 * (uint64_t)i; /* rates 5, 15, 25, ... */
        kg_admin_history_tick(h, 1000000 + i * 5000);
    }
    json_t *p = points(h, "payments", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 4); /* the capacity: the newest four, in order */
    for (size_t i = 0; i < 4; i++) {
        KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(p, i), "t")),
                        1000000 + (int)(7 + i) * 5000);
        KT_CHECK(num(p, i, "requests_per_s") == (double)(2 * (7 + i) - 1) * 5.0 / 5.0);
    }
    json_decref(p);
    p = points(h, "payments", 10); /* the last 10 s: two points */
    KT_CHECK_EQ_INT((int)json_array_size(p), 2);
    KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(p, 1), "t")), 1050000);
    json_decref(p);
    kg_admin_history_stop(h);
}

KT_TEST(history_series_added_later_are_sampled_and_never_twice)
{
    /* A reload adds vclusters: their series start then; a name already there is not doubled. */
    fake_series s[2] = {0};
    kg_admin_history *h = kg_admin_history_new(names, 1, 5000, 10, fake_read, s);
    KT_CHECK(h != NULL);
    KT_CHECK(kg_admin_history_json(h, "orders", 0) == NULL);
    kg_admin_history_tick(h, 1000000);
    KT_CHECK_EQ_INT(s[1].reads, 0);
    KT_CHECK_EQ_INT(kg_admin_history_add(h, "orders"), 0);
    KT_CHECK_EQ_INT(kg_admin_history_add(h, "orders"), 0);
    KT_CHECK_EQ_INT(kg_admin_history_add(h, "payments"), 0);
    s[1].now = (kg_admin_counters){.requests = 10};
    kg_admin_history_tick(h, 1005000);
    s[1].now = (kg_admin_counters){.requests = 60};
    kg_admin_history_tick(h, 1010000);
    KT_CHECK_EQ_INT(s[1].reads, 2); /* once per tick: one series */
    KT_CHECK_EQ_INT(s[0].reads, 3);
    json_t *p = points(h, "orders", 0);
    KT_CHECK_EQ_INT((int)json_array_size(p), 1);
    KT_CHECK(num(p, 0, "requests_per_s") == 10.0);
    json_decref(p);
    kg_admin_history_stop(h);
}

KT_TEST(history_thread_reads_at_once_and_stops_promptly)
{
    fake_series s[2] = {0};
    kg_admin_history *h = kg_admin_history_new(names, 2, 3600 * 1000, 10, fake_read, s);
    KT_CHECK_EQ_INT(kg_admin_history_run(h), 0);
    for (int i = 0; i < 2000 && (s[0].reads == 0 || s[1].reads == 0); i++)
        usleep(5000);
    KT_CHECK(s[0].reads >= 1 && s[1].reads >= 1);
    kg_admin_history_stop(h); /* wakes the thread from its hour-long wait */
    kg_admin_history_stop(NULL);
}

KT_MAIN()
