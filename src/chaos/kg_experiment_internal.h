/* kg_experiment_internal — what the experiment files share: drills, measurements, checks.
 * Not for use outside src/chaos/kg_experiment*.c. */
#ifndef KG_EXPERIMENT_INTERNAL_H
#define KG_EXPERIMENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "chaos/kg_experiment.h"
#include "util/kg_time.h"

#define KG_XP_MAX_RULES 16
#define KG_XP_DEFAULT_BASELINE_MS 10000
#define KG_XP_DEFAULT_WINDOW_MS 10000

/* ---------------------------------------------------------------- measurements */

/* One observation: the virtual cluster's cumulative counters and the faults the experiment's
 * rules injected so far, at T_MS. */
typedef struct kg_xp_point {
    int64_t t_ms;
    kg_vc_sample vc;
    uint64_t injected;
} kg_xp_point;

/* What happened between two observations. */
typedef struct kg_xp_delta {
    double seconds;
    uint64_t requests, produce_requests, fetch_requests, commit_requests;
    uint64_t produce_bytes, fetch_bytes;
    uint64_t produce_results, produce_errors;
    uint64_t fetch_results, fetch_errors;
    uint64_t commit_results, commit_errors;
    uint64_t connections_opened, connections_closed;
    uint64_t faults_injected;
} kg_xp_delta;

kg_xp_delta kg_xp_diff(const kg_xp_point *from, const kg_xp_point *to);
/* Counts plus derived rates (bytes/s, requests/s, error %); the persisted form. */
json_t *kg_xp_delta_to_json(const kg_xp_delta *d);
/* 0 ok, -1 when J is not such an object. */
int kg_xp_delta_from_json(const json_t *j, kg_xp_delta *d);

/* ---------------------------------------------------------------- checks */

typedef enum kg_xp_unit {
    KG_XP_PERCENT,    /* 0..100 */
    KG_XP_RATIO,      /* fraction of the baseline, 0..1 */
    KG_XP_PCT_BASE,   /* percent of the baseline, 0..100 */
    KG_XP_COUNT,      /* integer >= 0 */
    KG_XP_PER_MINUTE, /* number >= 0 */
    KG_XP_DURATION,   /* "30s" in the drill, milliseconds inside */
} kg_xp_unit;

/* What a check looks at: the baseline, the span it is judged over (the injection phase for
 * expectations, the sliding window for abort criteria), and commit stall time (the longest for
 * expectations, the current one for abort criteria). */
typedef struct kg_xp_observed {
    const kg_xp_delta *baseline; /* NULL: no baseline was measured */
    const kg_xp_delta *span;     /* NULL: the injection phase never ran */
    int64_t commit_stall_ms;
} kg_xp_observed;

/* 1 with *VALUE, or 0 when there is nothing to judge on (DETAIL says why). DETAIL also gets
 * the counts behind a value. */
typedef int (*kg_xp_observe_fn)(const kg_xp_observed *o, double *value, char *detail, size_t len);

typedef enum kg_xp_compare {
    KG_XP_AT_MOST,  /* expectation: observed <= threshold; abort: trips when observed > it */
    KG_XP_AT_LEAST, /* expectation: observed >= threshold; abort: trips when observed < it */
    KG_XP_REACHES,  /* abort only: trips when observed >= threshold (durations) */
} kg_xp_compare;

typedef struct kg_xp_check {
    const char *name; /* the drill's key */
    kg_xp_unit unit;
    kg_xp_compare compare;
    kg_xp_observe_fn observe;
    const char *what; /* "produce error rate seen by clients" */
} kg_xp_check;

extern const kg_xp_check kg_xp_expectations[];
extern const int kg_xp_n_expectations;
extern const kg_xp_check kg_xp_aborts[];
extern const int kg_xp_n_aborts;

/* "0.42 %", "0.85 of baseline", "12.0 s" ... */
void kg_xp_format_value(kg_xp_unit unit, double value, char *out, size_t len);
/* Whether OBSERVED satisfies an expectation / trips an abort criterion with THRESHOLD. */
bool kg_xp_expectation_met(const kg_xp_check *c, double observed, double threshold);
bool kg_xp_abort_trips(const kg_xp_check *c, double observed, double threshold);

/* ---------------------------------------------------------------- drills */

typedef struct kg_xp_drill {
    json_t *json; /* the drill as accepted (owned); the strings below point into it */
    const char *name, *hypothesis, *vcluster;
    int64_t duration_ms, baseline_ms, window_ms;
    json_t *rules; /* borrowed from json */
    double expect[16];
    bool has_expect[16];
    double abort_at[16];
    bool has_abort[16];
} kg_xp_drill;

/* Validates IN (a drill as JSON) into OUT. 0, or -1 with ERR naming the field. */
int kg_xp_drill_parse(json_t *in, kg_xp_drill *out, char *err, size_t errlen);
void kg_xp_drill_free(kg_xp_drill *d);
/* The drill's checks in words ("produce error rate seen by clients at most 0 %"). */
void kg_xp_describe_check(const kg_xp_check *c, double threshold, char *out, size_t len);

/* Evaluates every expectation of D (machine-checkable ones against O, the others listed as
 * not machine-checkable). Array of {expectation, expected, observed, observed_value,
 * threshold, result: pass|fail|no data|not machine-checkable, detail}. */
json_t *kg_xp_evaluate(const kg_xp_drill *d, const kg_xp_observed *o);

/* {"pass": n, "fail": n, "no data": n, "not machine-checkable": n} of evaluated EXPECTATIONS. */
json_t *kg_xp_count_results(const json_t *expectations);
/* Faults injected by the rules of record DOC (their last known counters). */
json_int_t kg_xp_faults_injected(const json_t *doc);

/* ---------------------------------------------------------------- reports */

/* The six-field report of record DOC; RETEST_DOC is the record of the re-test experiment
 * (NULL when none is linked or it is unknown). */
json_t *kg_xp_report_json(const json_t *doc, const json_t *retest_doc);

#endif
