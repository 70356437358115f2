/* The group members kgate's clients have per side (kg_leave): remembered from SyncGroup and
 * Heartbeat requests, forgotten on LeaveGroup, taken by a switch. No switch here reaches a
 * cluster: those are the integration tests' (tests/integration/failover/test_fo_leave.py). */
#include "kt.h"

#include <stdint.h>
#include <string.h>

#include "kp_msgs.h"
#include "route/kg_leave.h"

#define EAST 0
#define WEST 1

static void note_heartbeat(kg_leave *l, int cluster, int16_t v, const char *group,
                           const char *member, int32_t generation)
{
    kp_heartbeat_request m;
    memset(&m, 0, sizeof(m));
    m.group_id = kp_str_c(group);
    m.member_id = kp_str_c(member);
    m.group_instance_id = kp_str_c(NULL);
    m.generation_id = generation;
    kp_writer w;
    kp_writer_init(&w, 64);
    kp_heartbeat_request_encode(&w, v, &m);
    kg_leave_note(l, cluster, KP_KEY_HEARTBEAT, v, w.buf, w.len);
    kp_writer_free(&w);
}

static void note_sync(kg_leave *l, int cluster, int16_t v, const char *group, const char *member,
                      const char *instance)
{
    kp_sync_group_request m;
    memset(&m, 0, sizeof(m));
    m.group_id = kp_str_c(group);
    m.member_id = kp_str_c(member);
    m.group_instance_id = kp_str_c(instance);
    m.protocol_type = kp_str_c(NULL);
    m.protocol_name = kp_str_c(NULL);
    m.generation_id = 3;
    kp_writer w;
    kp_writer_init(&w, 64);
    kp_sync_group_request_encode(&w, v, &m);
    kg_leave_note(l, cluster, KP_KEY_SYNC_GROUP, v, w.buf, w.len);
    kp_writer_free(&w);
}

static void note_leave(kg_leave *l, int cluster, int16_t v, const char *group, const char *member)
{
    kp_leave_group_request m;
    kp_leave_group_request_init(&m);
    m.group_id = kp_str_c(group);
    kp_leave_group_request_member_identity id;
    memset(&id, 0, sizeof(id));
    id.member_id = kp_str_c(member);
    id.group_instance_id = kp_str_c(NULL);
    id.reason = kp_str_c(NULL);
    if (v <= 2) {
        m.member_id = kp_str_c(member);
    } else {
        m.members.count = 1;
        m.members.items = &id;
    }
    kp_writer w;
    kp_writer_init(&w, 64);
    kp_leave_group_request_encode(&w, v, &m);
    kg_leave_note(l, cluster, KP_KEY_LEAVE_GROUP, v, w.buf, w.len);
    kp_writer_free(&w);
}

KT_TEST(members_per_side_from_sync_and_heartbeat)
{
    kg_metrics *metrics = kg_metrics_new();
    kg_leave *l = kg_leave_new(metrics, "v");
    KT_CHECK(l != NULL);
    note_sync(l, EAST, 0, "g1", "m1", NULL);
    note_sync(l, EAST, 4, "g1", "m2", "instance-2"); /* flexible, static member */
    note_heartbeat(l, EAST, 1, "g1", "m1", 3);       /* the same member again */
    note_heartbeat(l, EAST, 4, "g2", "m1", 7);       /* same id, another group */
    note_heartbeat(l, WEST, 0, "g1", "m1", 1);       /* the other side */
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 3);
    KT_CHECK_EQ_INT(kg_leave_count(l, WEST), 1);
    /* a client that has no member id yet is no member */
    note_heartbeat(l, EAST, 1, "g1", "", 0);
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 3);
    kg_leave_free(l);
    kg_metrics_free(metrics);
}

KT_TEST(leave_group_forgets_at_every_version)
{
    kg_metrics *metrics = kg_metrics_new();
    kg_leave *l = kg_leave_new(metrics, "v");
    note_sync(l, EAST, 1, "g", "a", NULL);
    note_sync(l, EAST, 1, "g", "b", NULL);
    note_sync(l, WEST, 1, "g", "a", NULL);
    note_leave(l, EAST, 0, "g", "a");
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 1);
    KT_CHECK_EQ_INT(kg_leave_count(l, WEST), 1); /* only on the side it left */
    note_leave(l, EAST, 4, "g", "b");
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 0);
    note_leave(l, EAST, 3, "g", "unknown"); /* nothing to forget: harmless */
    KT_CHECK_EQ_INT(kg_leave_count(l, WEST), 1);
    kg_leave_free(l);
    kg_metrics_free(metrics);
}

KT_TEST(bad_bodies_and_other_apis_are_ignored)
{
    kg_metrics *metrics = kg_metrics_new();
    kg_leave *l = kg_leave_new(metrics, "v");
    static const uint8_t junk[] = {0, 200, 'g'};
    kg_leave_note(l, EAST, KP_KEY_HEARTBEAT, 0, junk, sizeof(junk));
    kg_leave_note(l, EAST, KP_KEY_SYNC_GROUP, 3, junk, 0);
    kg_leave_note(l, EAST, KP_KEY_LEAVE_GROUP, 3, junk, sizeof(junk));
    kg_leave_note(l, EAST, KP_KEY_FETCH, 11, junk, sizeof(junk));
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 0);
    char group[400];
    memset(group, 'g', sizeof(group) - 1);
    group[sizeof(group) - 1] = '\0';
    note_heartbeat(l, EAST, 1, group, "m", 1); /* longer than kgate keeps: not remembered */
    KT_CHECK_EQ_INT(kg_leave_count(l, EAST), 0);
    kg_leave_note(NULL, EAST, KP_KEY_HEARTBEAT, 0, junk, sizeof(junk));
    kg_leave_free(l);
    kg_leave_free(NULL);
    kg_metrics_free(metrics);
}

KT_TEST(a_full_table_stays_bounded)
{
    kg_metrics *metrics = kg_metrics_new();
    kg_leave *l = kg_leave_new(metrics, "v");
    char id[32];
    for (int i = 0; i < 3 * KG_LEAVE_SLOTS; i++) {
        snprintf(id, sizeof(id), "member-%d", i);
        note_heartbeat(l, EAST, 1, "g", id, 1);
    }
    int n = kg_leave_count(l, EAST);
    KT_CHECK(n > KG_LEAVE_SLOTS / 2 && n <= KG_LEAVE_SLOTS);
    kg_leave_free(l);
    kg_metrics_free(metrics);
}

KT_TEST(a_switch_with_nothing_to_leave_schedules_nothing)
{
    kg_metrics *metrics = kg_metrics_new();
    kg_leave *l = kg_leave_new(metrics, "v");
    note_sync(l, WEST, 1, "g", "a", NULL);
    kg_cluster_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "east");
    kg_cluster east;
    memset(&east, 0, sizeof(east));
    east.index = EAST;
    east.cfg = &cfg;
    KT_CHECK_EQ_INT(kg_leave_switch(l, &east), 0);
    KT_CHECK_EQ_INT(kg_leave_count(l, WEST), 1);
    kg_leave_result res;
    KT_CHECK_EQ_INT(kg_leave_last(l, &res), 0);
    KT_CHECK_EQ_INT(kg_leave_switch(NULL, &east), 0);
    kg_leave_free(l);
    kg_metrics_free(metrics);
}

KT_MAIN()
