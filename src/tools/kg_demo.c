/* kgate demo — the product in one command, with nothing but the binary.
 *
 * Two embedded clusters (east, west), kgate in front of them mirroring the demo topic from the
 * active side to the other (mirror:), a producer and a consumer group talking to kgate only. The
 * demo fails the virtual cluster over to west, then back, as a drill (drill/kg_drill.c) and prints
 * the drill's table: when each client was served again after each switch, what was lost, duplicated
 * or reordered.
 */
#include "tools/kg_demo.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/kg_config.h"
#include "drill/kg_drill.h"
#include "engine/kg_loop.h"
#include "route/kg_gateway.h"
#include "tools/kg_devcluster.h"
#include "util/kg_log.h"

#define DEMO_TOPIC "orders"

/* The planned step could not be planned (demo_switch): why, for the closing note. */
static char demo_unplanned_why[512];

/* The demo's switches, made in process: the same call the admin API makes. */
static int demo_switch(void *opaque, const kg_drill_spec *spec, const kg_drill_step *step,
                       json_t **reply)
{
    if (step->action == KG_DRILL_CHAOS) return 400; /* the demo's drill has switches only */
    kg_switch_request req = {.vcluster = spec->vcluster,
                             .failback = step->action == KG_DRILL_FAILBACK,
                             .reason = "kgate demo",
                             .actor = "demo",
                             .planned = step->planned};
    int status = kg_gateway_switch(opaque, &req, reply);
    if (status == 200 || !step->planned) return status;
    /* A planned switch needs the embedded mirror to measure its lag; where it cannot (an
     * older embedded cluster), the demo says why and switches unplanned. */
    const char *why = json_string_value(json_object_get(*reply, "error"));
    snprintf(demo_unplanned_why, sizeof(demo_unplanned_why), "%s", why ? why : "refused");
    printf("planned switch refused: %s\nswitching unplanned instead\n", demo_unplanned_why);
    json_decref(*reply);
    *reply = NULL;
    req.planned = 0;
    return kg_gateway_switch(opaque, &req, reply);
}

/* A planned failover to west (producers held until the embedded mirror has copied everything,
 * nothing lost) and an unplanned failback to east (what the mirror had not copied yet is lost)
 * under a steady producer and a consumer group, measured as `kgate drill run` measures. */
static void demo_spec(kg_drill_spec *spec, int port, int phase_ms)
{
    *spec = (kg_drill_spec){
        .producers = 1,
        .rate = 100,
        .consumers = 1,
        .between_ms = phase_ms,
        .consumer_wait_ms = 15000,
        .n_steps = 2,
        .steps = {{.action = KG_DRILL_FAILOVER, .planned = 1}, {.action = KG_DRILL_FAILBACK}},
        .max_producer_rto_ms = -1,
        .max_consumer_rto_ms = -1,
        .max_lost = -1,
        .max_duplicates = -1,
        .max_errors = -1};
    snprintf(spec->name, sizeof(spec->name),
             "kgate demo: planned failover to west, unplanned failback");
    snprintf(spec->vcluster, sizeof(spec->vcluster), "default");
    snprintf(spec->bootstrap, sizeof(spec->bootstrap), "127.0.0.1:%d", port);
    snprintf(spec->topic, sizeof(spec->topic), DEMO_TOPIC);
    snprintf(spec->group, sizeof(spec->group), "demo-group");
}

static int demo_drill(kg_gateway *gw, int port, int phase_ms)
{
    kg_drill_spec spec;
    demo_spec(&spec, port, phase_ms);
    json_t *result = kg_drill_run(&spec, demo_switch, gw, stdout);
    printf("\n");
    kg_drill_print_table(stdout, result);
    printf(
        "\nkgate's embedded mirror copies the demo topic to the other side every 100 ms. The\n"
        "planned failover held the producer until the mirror had copied everything: nothing\n"
        "acknowledged is lost. The unplanned failback switched at once: what the mirror had\n"
        "not copied yet is lost (RPO). With your own replication (MirrorMaker 2) between real\n"
        "clusters, `kgate drill run` measures the same table for your setup (docs/drills.md).\n");
    if (demo_unplanned_why[0])
        printf("\nHere the planned failover could not be planned (%s), so the demo switched\n"
               "unplanned: both switches lose what the mirror had not copied.\n",
               demo_unplanned_why);
    const json_t *clients = json_object_get(result, "clients");
    int ok = json_integer_value(json_object_get(json_array_get(clients, 0), "acked")) > 0 &&
             json_integer_value(json_object_get(json_array_get(clients, 1), "received")) > 0;
    json_decref(result);
    return ok ? 0 : 1;
}

static kg_config *demo_config(const char *east, const char *west, int port, const char *state)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml),
                     "listen: 127.0.0.1\n"
                     "advertised_host: 127.0.0.1\n"
                     "clusters:\n"
                     "  east:\n    bootstrap: %s\n"
                     "  west:\n    bootstrap: %s\n"
                     "vclusters:\n"
                     "  default:\n    port: %d\n    primary: east\n    secondary: west\n"
                     "    mirror:\n      topics: \"^" DEMO_TOPIC "$\"\n      interval_ms: 100\n"
                     "health:\n  probe_interval_ms: 250\n"
                     "admin:\n  enabled: false\n"
                     "state: %s\n",
                     east, west, port, state);
    int errors = 0;
    return kg_config_parse("demo", yaml, (size_t)n, stderr, &errors);
}

static int demo_wait_up(kg_gateway *gw)
{
    for (int i = 0; i < 100; i++) {
        if (atomic_load(&gw->clusters[0].up) && atomic_load(&gw->clusters[1].up)) return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int demo_run(int port, int phase_ms)
{
    /* The checkpoint topics: the mirror writes a group's translated offsets there, and a
     * switch commits them on the new side (offsets:), so the consumer resumes where it was. */
    static const char *const topics[] = {DEMO_TOPIC ":3", "east.checkpoints.internal:1",
                                         "west.checkpoints.internal:1", NULL};
    char err[256], state[] = "/tmp/kgate-demo-XXXXXX";
    kg_devcluster *east = kg_devcluster_start(3, topics, err, sizeof(err));
    kg_devcluster *west = east ? kg_devcluster_start(3, topics, err, sizeof(err)) : NULL;
    if (!west || !mkdtemp(state)) {
        fprintf(stderr, "demo: cannot start the embedded clusters: %s\n", err);
        kg_devcluster_stop(east);
        return 1;
    }
    char state_db[sizeof(state) + 16];
    snprintf(state_db, sizeof(state_db), "%s/state.db", state);
    kg_config *cfg =
        demo_config(kg_devcluster_bootstraps(east), kg_devcluster_bootstraps(west), port, state_db);
    kg_gateway *gw = cfg ? kg_gateway_start(cfg, NULL) : NULL;
    int rc = 1;
    if (gw && demo_wait_up(gw) == 0) {
        printf("east  %s\nwest  %s\nkgate 127.0.0.1:%d (clients only ever see this)\n\n",
               kg_devcluster_bootstraps(east), kg_devcluster_bootstraps(west), port);
        rc = demo_drill(gw, port, phase_ms);
    } else if (gw) {
        fprintf(stderr, "demo: the embedded clusters did not come up\n");
    }
    kg_gateway_stop(gw);
    kg_config_free(cfg);
    kg_devcluster_stop(west);
    kg_devcluster_stop(east);
    unlink(state_db);
    rmdir(state);
    return rc;
}

int kg_demo_main(int argc, char **argv)
{
    int port = 19092, phase_ms = 4000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--phase-ms") == 0 && i + 1 < argc)
            phase_ms = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: kgate demo [--port PORT] [--phase-ms MS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    kg_log_set_level(KG_LOG_WARN);
    return demo_run(port, phase_ms);
}
