/* The automatic failover's decision (fleet/kg_autofo.h): majorities of live instances only. */
#include <string.h>

#include <jansson.h>

#include "fleet/kg_autofo.h"
#include "kt.h"

/* One instance's verdicts: primary east down for DOWN_MS (< 0: up), west UP or down. */
static json_t *inst(const char *name, long long down_ms, int west_up)
{
    json_t *east = down_ms < 0 ? json_pack("{s:b, s:I}", "up", 1, "for_ms", 100000)
                               : json_pack("{s:b, s:I}", "up", 0, "for_ms", down_ms);
    return json_pack("{s:s, s:{s:o, s:{s:b, s:I}}}", "name", name, "clusters", "east", east, "west",
                     "up", west_up, "for_ms", 50000);
}

static int decide(json_t *verdicts, json_t **summary, char *reason, size_t len)
{
    int go = kg_autofo_decide(verdicts, "east", "west", 30000, summary, reason, len);
    json_decref(verdicts);
    return go;
}

KT_TEST(majority_down_for_after_and_target_up_fails_over)
{
    json_t *s = NULL;
    char reason[2048];
    int go = decide(
        json_pack("[o, o, o]", inst("gw-1", 31000, 1), inst("gw-2", 30000, 1), inst("gw-3", -1, 1)),
        &s, reason, sizeof(reason));
    KT_CHECK_EQ_INT(go, 1);
    KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(s, "live")), 3);
    KT_CHECK_EQ_INT((int)json_integer_value(json_object_get(s, "needed")), 2);
    KT_CHECK_EQ_INT((int)json_array_size(json_object_get(s, "active_down")), 2);
    KT_CHECK_EQ_INT((int)json_array_size(json_object_get(s, "target_up")), 3);
    KT_CHECK(strstr(reason, "on 2 of 3 live instances (gw-1, gw-2)") != NULL);
    KT_CHECK(strstr(reason, "gw-3: east up, west up") != NULL);
    KT_CHECK(strstr(reason, "gw-1: east down 31000 ms, west up") != NULL);
    json_decref(s);
}

KT_TEST(a_minority_never_fails_over)
{
    json_t *s = NULL;
    char reason[2048];
    /* One of three sees the primary down, for as long as you like. */
    KT_CHECK_EQ_INT(decide(json_pack("[o, o, o]", inst("gw-1", 999999, 1), inst("gw-2", -1, 1),
                                     inst("gw-3", -1, 1)),
                           &s, reason, sizeof(reason)),
                    0);
    KT_CHECK(strstr(json_string_value(json_object_get(s, "verdict")), "on 1 of 3") != NULL);
    json_decref(s);
    /* Two of four is not a majority. */
    KT_CHECK_EQ_INT(decide(json_pack("[o, o, o, o]", inst("a", 40000, 1), inst("b", 40000, 1),
                                     inst("c", -1, 1), inst("d", -1, 1)),
                           &s, reason, sizeof(reason)),
                    0);
    json_decref(s);
}

KT_TEST(down_not_long_enough_or_target_not_up_or_no_verdict)
{
    json_t *s = NULL;
    char reason[2048];
    KT_CHECK_EQ_INT(decide(json_pack("[o, o, o]", inst("a", 29999, 1), inst("b", 29999, 1),
                                     inst("c", 29999, 1)),
                           &s, reason, sizeof(reason)),
                    0);
    json_decref(s);
    /* The target is down on a majority too: nowhere to go. */
    KT_CHECK_EQ_INT(decide(json_pack("[o, o, o]", inst("a", 40000, 0), inst("b", 40000, 0),
                                     inst("c", 40000, 1)),
                           &s, reason, sizeof(reason)),
                    0);
    KT_CHECK(strstr(json_string_value(json_object_get(s, "verdict")), "west up on only 1 of 3") !=
             NULL);
    json_decref(s);
    /* An instance that has not probed yet has no verdict: it counts as live, not as down. */
    json_t *unprobed = json_pack("{s:s, s:{}}", "name", "c", "clusters");
    KT_CHECK_EQ_INT(decide(json_pack("[o, o, o]", inst("a", 40000, 1), unprobed,
                                     json_pack("{s:s}", "name", "d")),
                           &s, reason, sizeof(reason)),
                    0);
    json_decref(s);
    /* Nobody live: nothing. */
    KT_CHECK_EQ_INT(decide(json_array(), &s, reason, sizeof(reason)), 0);
    json_decref(s);
    /* Alone (SQLite): its own majority. */
    KT_CHECK_EQ_INT(decide(json_pack("[o]", inst("solo", 30000, 1)), &s, reason, sizeof(reason)),
                    1);
    json_decref(s);
}

KT_MAIN()
