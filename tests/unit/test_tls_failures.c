/* kg_tls_failures: the aggregate behind the tls.handshake_failures audit entry — nothing for a
 * quiet interval, at most one summary per interval, counts by short reason, a few peers. */
#include "kt.h"

#include <stdio.h>
#include <string.h>

#include "security/kg_tls.h"

static json_int_t reason_count(json_t *summary, const char *reason)
{
    return json_integer_value(json_object_get(json_object_get(summary, "reasons"), reason));
}

KT_TEST(no_summary_without_failures)
{
    kg_tls_failures *f = kg_tls_failures_new();
    KT_CHECK(kg_tls_failures_take(f, 1000, 60000) == NULL);
    KT_CHECK(kg_tls_failures_take(f, 500000, 60000) == NULL);
    kg_tls_failures_free(f);
}

KT_TEST(failures_are_counted_by_short_reason_with_sample_peers)
{
    kg_tls_failures *f = kg_tls_failures_new();
    kg_tls_failures_note(f, "error:0A00010B:SSL routines::wrong version number", "10.0.0.1");
    kg_tls_failures_note(f, "error:0A00010B:SSL routines::wrong version number", "10.0.0.1");
    kg_tls_failures_note(f, "certificate verify failed: certificate has expired", "10.0.0.2");
    json_t *s = kg_tls_failures_take(f, 1000, 60000);
    KT_CHECK(s != NULL);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(s, "failures")), 3);
    KT_CHECK_EQ_INT(reason_count(s, "wrong version number"), 2);
    KT_CHECK_EQ_INT(reason_count(s, "certificate verify failed: certificate has expired"), 1);
    json_t *peers = json_object_get(s, "sample_peers");
    KT_CHECK_EQ_INT(json_array_size(peers), 2); /* one sample per address */
    KT_CHECK_EQ_STR(json_string_value(json_array_get(peers, 0)), "10.0.0.1");
    json_decref(s);
    /* Taken: the counts start over. */
    KT_CHECK(kg_tls_failures_take(f, 200000, 60000) == NULL);
    kg_tls_failures_free(f);
}

KT_TEST(at_most_one_summary_per_interval)
{
    kg_tls_failures *f = kg_tls_failures_new();
    kg_tls_failures_note(f, "x", "10.0.0.1");
    json_t *s = kg_tls_failures_take(f, 1000, 60000);
    KT_CHECK(s != NULL);
    json_decref(s);
    kg_tls_failures_note(f, "x", "10.0.0.1");
    kg_tls_failures_note(f, "y", "10.0.0.1");
    KT_CHECK(kg_tls_failures_take(f, 1000 + 59999, 60000) == NULL);
    s = kg_tls_failures_take(f, 1000 + 60000, 60000);
    KT_CHECK(s != NULL);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(s, "failures")), 2);
    json_decref(s);
    kg_tls_failures_free(f);
}

KT_TEST(reasons_beyond_the_table_count_as_other_and_peers_are_capped)
{
    kg_tls_failures *f = kg_tls_failures_new();
    for (int i = 0; i < KG_TLS_FAILURE_REASONS + 3; i++) {
        char reason[32], peer[32];
        snprintf(reason, sizeof(reason), "reason %d", i);
        snprintf(peer, sizeof(peer), "10.0.0.%d", i);
        kg_tls_failures_note(f, reason, peer);
    }
    json_t *s = kg_tls_failures_take(f, 1, 60000);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(s, "failures")), KG_TLS_FAILURE_REASONS + 3);
    KT_CHECK_EQ_INT(json_object_size(json_object_get(s, "reasons")), KG_TLS_FAILURE_REASONS + 1);
    KT_CHECK_EQ_INT(reason_count(s, "other"), 3);
    KT_CHECK_EQ_INT(json_array_size(json_object_get(s, "sample_peers")), KG_TLS_FAILURE_PEERS);
    json_decref(s);
    kg_tls_failures_free(f);
}

KT_MAIN()
