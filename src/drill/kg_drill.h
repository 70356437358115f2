/* kg_drill — a measured DR drill: kgate drives a workload through a virtual cluster (producers
 * writing numbered records, a consumer group reading them), performs the switches the drill
 * lists, and measures what its own clients lived through:
 *   - RTO per client and per switch: from the switch call to the first acknowledged record sent
 *     after it (producers), to the first record received that was sent after it (consumers);
 *   - RPO: acknowledged records that are not on the side active at the end, by the switch that
 *     lost them, and how much time they cover;
 *   - duplicates, reordering, acknowledged records the group never received, client errors.
 *
 * The clients are librdkafka (the one kgate is linked with), in this process. The switch itself
 * is a callback: the CLI (`kgate drill run`) calls the admin API, the demo calls the gateway.
 * The engine knows nothing of either. */
#ifndef KG_DRILL_H
#define KG_DRILL_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define KG_DRILL_MAX_STEPS 8
#define KG_DRILL_MAX_PRODUCERS 16
#define KG_DRILL_MAX_CONSUMERS 8

typedef enum kg_drill_action {
    KG_DRILL_FAILOVER,
    KG_DRILL_FAILBACK,
    KG_DRILL_CHAOS
} kg_drill_action;

typedef struct kg_drill_step {
    kg_drill_action action;
    char to[64];      /* failover target; "" = the other side */
    char reason[256]; /* "" = the drill's name */
    int force;        /* switch even when the parity pre-flight finds differences */
    int planned;      /* a planned switchover (route/kg_planned.h): producers held, no loss */
    /* KG_DRILL_CHAOS: a chaos rule (JSON text, as POST /v1/chaos/rules takes it) injected for
     * FAULT_MS, then removed. Its RTO counts from the end of the fault: how long clients take
     * to recover once the fault is gone. */
    char rule[4096];
    int64_t fault_ms;
} kg_drill_step;

#define KG_DRILL_MAX_PROPS 16

/* librdkafka properties the drill's clients take, so that they behave like the team's own. */
typedef struct kg_drill_props {
    struct {
        char key[64], value[256];
    } items[KG_DRILL_MAX_PROPS];
    int n;
} kg_drill_props;

typedef struct kg_drill_spec {
    char name[128];
    char hypothesis[1024];
    char vcluster[64];
    char bootstrap[256]; /* kgate's listener of that virtual cluster */
    char topic[250];     /* must exist on both clusters */
    char group[128];     /* "" = kgate-drill */
    int producers, rate, consumers;
    kg_drill_props producer_config, consumer_config; /* applied over the drill's defaults */
    int64_t between_ms;       /* before the first step, between steps, after the last */
    int64_t consumer_wait_ms; /* after a step, how long to wait for consumers on the new side */
    kg_drill_step steps[KG_DRILL_MAX_STEPS]; /* switches and chaos faults, in order */
    int n_steps;
    /* Expectations, -1 = none. */
    int64_t max_producer_rto_ms, max_consumer_rto_ms, max_lost, max_duplicates, max_errors;
} kg_drill_spec;

/* Performs STEP (the drill's SPEC): a switch, or a chaos rule injected for its duration and
 * removed (the call returns when the fault is over). *REPLY (new reference, may stay NULL) is
 * what to keep in the report (the switch result, the rule's final counters). Returns an
 * HTTP-like status: 200 done, anything else failed (the drill goes on measuring: a refused
 * switch is a drill result too). */
typedef int (*kg_drill_step_fn)(void *opaque, const kg_drill_spec *spec, const kg_drill_step *step,
                                json_t **reply);

/* "failover", "failback" or "chaos". */
const char *kg_drill_action_name(kg_drill_action action);

/* Reads a drill file already turned into JSON (YAML and JSON both come through
 * kg_config_yaml_to_json). 0, or -1 with a message naming the field in ERR. */
int kg_drill_spec_parse(const json_t *in, kg_drill_spec *out, char *err, size_t errlen);

/* Runs the drill; returns its result (new reference; "outcome" is "passed", "failed" or
 * "error" with "error" saying why, e.g. no client could be created). PROGRESS (may be NULL)
 * gets one line per phase as it happens. */
json_t *kg_drill_run(const kg_drill_spec *spec, kg_drill_step_fn do_step, void *opaque,
                     FILE *progress);

/* The result as a Markdown report: the per-client table, then the six fields an auditor asks
 * for (hypothesis, configuration, observed, delta from expected, remediation, re-test). */
void kg_drill_print_md(FILE *out, const json_t *result);

/* The per-client table alone (what `make demo` prints). */
void kg_drill_print_table(FILE *out, const json_t *result);

#endif
