/* Group members not rejoined since a switch (kg_rejoin): who is held back, until when. */
#include "kt.h"

#include <stdint.h>

#include "route/kg_rejoin.h"

#define ROUTE_EAST 1u
#define ROUTE_WEST 2u

KT_TEST(a_member_is_pending_on_a_new_route_until_it_syncs_there)
{
    kg_rejoin *r = kg_rejoin_new();
    KT_CHECK(r != NULL);
    /* never synced: not a member, never held back */
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_EAST), 0);
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_EAST);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_EAST), 0);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 1);
    /* another host, another client id: another client */
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.2", ROUTE_WEST), 0);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c2", 2, "10.0.0.1", ROUTE_WEST), 0);
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_WEST);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 0);
    /* a failback: pending again until it syncs on east */
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_EAST + 2), 1);
    kg_rejoin_free(r);
}

KT_TEST(one_first_fetch_per_pending_client_and_route)
{
    kg_rejoin *r = kg_rejoin_new();
    /* not a member: never the first of anything */
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 0);
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_EAST);
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_EAST), 0); /* not pending */
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 1);
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 0);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 1); /* still held */
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_WEST);
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_WEST), 0);
    /* the next switch: a first Fetch again */
    KT_CHECK_EQ_INT(kg_rejoin_first(r, "c1", 2, "10.0.0.1", ROUTE_EAST + 2), 1);
    kg_rejoin_free(r);
}

KT_TEST(a_heartbeat_during_its_join_on_the_new_route)
{
    kg_rejoin *r = kg_rejoin_new();
    const uint64_t t0 = 1000000;
    /* not a member: its JoinGroup notes nothing */
    kg_rejoin_joining(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0);
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0), 0);
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_EAST);
    /* pending on west, no JoinGroup yet: its Heartbeat goes to west */
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0), 0);
    kg_rejoin_joining(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0);
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0 + 1000), 1);
    /* another client, another route: not this join */
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c2", 2, "10.0.0.1", ROUTE_WEST, t0), 0);
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_EAST + 2, t0), 0);
    /* a join that never ends in a sync stops counting after the window */
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST,
                                      t0 + KG_REJOIN_JOIN_WINDOW_MS * 1000ull),
                    0);
    /* synced on west: no longer pending there, nothing held */
    kg_rejoin_synced(r, "c1", 2, "10.0.0.1", ROUTE_WEST);
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0 + 1000), 0);
    /* JoinGroup on the route it is synced on (a rebalance in its group): nothing noted */
    kg_rejoin_joining(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0);
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_WEST, t0 + 1000), 0);
    /* the next switch: its earlier join does not count there */
    KT_CHECK_EQ_INT(kg_rejoin_in_join(r, "c1", 2, "10.0.0.1", ROUTE_EAST + 2, t0 + 1000), 0);
    kg_rejoin_free(r);
}

KT_TEST(heartbeat_ok_encodes_no_error)
{
    kp_writer w;
    kp_writer_init(&w, 16);
    KT_CHECK_EQ_INT(kg_rejoin_heartbeat_ok(0, &w), 0);
    KT_CHECK_EQ_INT((int)w.len, 2); /* v0: error_code only */
    KT_CHECK(w.buf[0] == 0 && w.buf[1] == 0);
    kp_writer_reset(&w);
    KT_CHECK_EQ_INT(kg_rejoin_heartbeat_ok(3, &w), 0);
    KT_CHECK_EQ_INT((int)w.len, 6); /* throttle_time_ms, error_code */
    for (size_t i = 0; i < w.len; i++)
        KT_CHECK(w.buf[i] == 0);
    kp_writer_reset(&w);
    KT_CHECK_EQ_INT(kg_rejoin_heartbeat_ok(4, &w), 0);
    KT_CHECK_EQ_INT((int)w.len, 7); /* flexible: and no tagged fields */
    KT_CHECK_EQ_INT(kg_rejoin_heartbeat_ok(99, &w), -1);
    kp_writer_free(&w);
}

KT_TEST(long_client_ids_are_cut)
{
    kg_rejoin *r = kg_rejoin_new();
    char id[400];
    memset(id, 'x', sizeof(id));
    kg_rejoin_synced(r, id, sizeof(id), "::1", ROUTE_EAST);
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, id, sizeof(id), "::1", ROUTE_WEST), 1);
    kg_rejoin_free(r);
}

KT_TEST(a_full_table_forgets_the_oldest)
{
    kg_rejoin *r = kg_rejoin_new();
    char id[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(id, sizeof(id), "client-%d", i);
        kg_rejoin_synced(r, id, (size_t)n, "10.0.0.1", ROUTE_EAST);
    }
    /* the last one is remembered; forgotten ones are simply not held back */
    KT_CHECK_EQ_INT(kg_rejoin_pending(r, "client-4999", 11, "10.0.0.1", ROUTE_WEST), 1);
    int remembered = 0;
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(id, sizeof(id), "client-%d", i);
        remembered += kg_rejoin_pending(r, id, (size_t)n, "10.0.0.1", ROUTE_WEST);
    }
    KT_CHECK(remembered > 0 && remembered <= 1024);
    kg_rejoin_free(r);
}

KT_TEST(sync_group_error_by_version)
{
    static const uint8_t v0_ok[] = {0, 0, 0, 0, 0, 0};               /* error, assignment */
    static const uint8_t v1_err[] = {0, 0, 0, 0, 0, 25, 0, 0, 0, 0}; /* throttle, error */
    KT_CHECK_EQ_INT(kg_rejoin_sync_error(0, v0_ok, sizeof(v0_ok)), 0);
    KT_CHECK_EQ_INT(kg_rejoin_sync_error(1, v1_err, sizeof(v1_err)), 25);
    KT_CHECK_EQ_INT(kg_rejoin_sync_error(5, v1_err, 5), -1); /* cut short */
}

KT_MAIN()
