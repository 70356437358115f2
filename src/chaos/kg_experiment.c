/* The experiment runner: lifecycle, observation, abort criteria, per-minute records and the
 * persisted record of every experiment (see kg_experiment.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chaos/kg_chaos.h"
#include "chaos/kg_experiment_internal.h"
#include "state/kg_store.h"
#include "util/kg_log.h"

#define DOC_KIND "experiment"
#define RING_POINTS 600 /* per-second observations kept: windows reach at most 5 minutes back */
#define MINUTE_MS 60000
/* Rules outlive the planned end by this much, so the runner (which reads their final counters
 * and then removes them) always ends them first; they still expire by themselves if kgate
 * dies mid-experiment. */
#define RULE_GRACE_MS 10000
#define MAX_RECENT_SECONDS 600

typedef enum xp_phase { PHASE_PENDING, PHASE_BASELINE, PHASE_RUNNING } xp_phase;

static const char *const phase_names[] = {"pending", "baseline", "running"};

/* One active experiment. Ended experiments exist only as store documents. */
typedef struct xp_run {
    struct xp_run *next;
    char id[48];
    char actor[256];
    kg_xp_drill drill;
    json_t *doc; /* the record, kept current and persisted at every change of phase and minute */
    xp_phase phase;
    int inspecting;

    kg_xp_point ring[RING_POINTS]; /* the latest observations, one a tick */
    int ring_len, ring_next;
    kg_xp_point last; /* valid when ring_len > 0 */
    kg_xp_point baseline_start, run_start, minute_start;
    kg_xp_delta baseline;
    int minute_index;

    /* Consumer group commit progress: stalled while commit requests do not grow although
     * producers keep producing. */
    uint64_t commits_seen;
    int64_t stall_since_ms, current_stall_ms, longest_stall_ms;
} xp_run;

struct kg_experiments {
    pthread_mutex_t lock;
    kg_chaos *chaos;
    kg_store *store;
    kg_experiment_env env;
    xp_run *active;
};

/* ---------------------------------------------------------------- small helpers */

static void set_time(json_t *doc, const char *key, int64_t ms)
{
    char text[40];
    kg_time_format_ms(ms, text, sizeof(text));
    json_object_set_new(doc, key, json_string(text));
}

static void persist(kg_experiments *xs, const char *id, json_t *doc)
{
    if (kg_store_put_doc(xs->store, DOC_KIND, id, doc) != 0)
        kg_error("experiment %s: cannot write its record to the state store", id);
}

static void audit(kg_experiments *xs, const char *type, json_t *details)
{
    if (kg_store_audit_append(xs->store, type, details) != 0)
        kg_error("experiments: cannot append the audit entry %s", type);
    json_decref(details);
}

static bool status_is_active(const char *status)
{
    return status && (strcmp(status, "pending") == 0 || strcmp(status, "baseline") == 0 ||
                      strcmp(status, "running") == 0);
}

static xp_run *find_run(kg_experiments *xs, const char *id)
{
    for (xp_run *r = xs->active; r; r = r->next)
        if (strcmp(r->id, id) == 0) return r;
    return NULL;
}

static xp_run *find_run_on(kg_experiments *xs, const char *vcluster)
{
    for (xp_run *r = xs->active; r; r = r->next)
        if (strcmp(r->drill.vcluster, vcluster) == 0) return r;
    return NULL;
}

static void detach_run(kg_experiments *xs, xp_run *run)
{
    for (xp_run **p = &xs->active; *p; p = &(*p)->next)
        if (*p == run) {
            *p = run->next;
            return;
        }
}

static void free_run(xp_run *r)
{
    if (!r) return;
    kg_xp_drill_free(&r->drill);
    json_decref(r->doc);
    free(r);
}

/* ---------------------------------------------------------------- the record */

/* "x-20260102-030405-a1b2": sorts by creation time, readable in a report, and short enough to
 * prefix the ids of the experiment's chaos rules. */
static void new_id(kg_experiments *xs, char *out, size_t len)
{
    for (;;) {
        int64_t now = kg_time_now_ms();
        time_t t = (time_t)(now / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y%m%d-%H%M%S", &tm);
        uint16_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) rnd = (uint16_t)now;
        snprintf(out, len, "x-%s-%04x", when, rnd);
        int found = 0;
        json_t *clash = kg_store_get_doc(xs->store, DOC_KIND, out, &found);
        json_decref(clash);
        if (found == 0 && !find_run(xs, out)) return;
    }
}

static json_t *new_record(const xp_run *r, int64_t now)
{
    const kg_xp_drill *d = &r->drill;
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:O, s:s, s:n, s:n, s:n, s:n, s:n, s:[], s:n, s:n, s:[], "
        "s:I, s:n, s:n, s:n, s:n}",
        "id", r->id, "name", d->name, "hypothesis", d->hypothesis, "vcluster", d->vcluster,
        "status", "pending", "drill", d->json, "created_by", r->actor, "baseline_started_at",
        "injection_started_at", "ended_at", "end_reason", "stopped_by", "rules", "baseline",
        "during", "minutes", "longest_commit_stall_ms", (json_int_t)0, "abort", "expectations",
        "remediation", "retest");
    if (doc) set_time(doc, "created_at", now);
    return doc;
}

static void set_status(xp_run *r, const char *status)
{
    json_object_set_new(r->doc, "status", json_string(status));
}

/* Expectations are judged from the record alone, so that an experiment interrupted by a
 * restart gets the same evaluation from what was persisted. */
static json_t *evaluate_record(const json_t *doc)
{
    kg_xp_drill d;
    char err[256];
    if (kg_xp_drill_parse(json_object_get(doc, "drill"), &d, err, sizeof(err)) != 0) {
        kg_error("experiment %s: its stored drill no longer parses: %s",
                 json_string_value(json_object_get(doc, "id")), err);
        return json_array();
    }
    kg_xp_delta baseline, during;
    int have_baseline = kg_xp_delta_from_json(json_object_get(doc, "baseline"), &baseline) == 0;
    int have_during = kg_xp_delta_from_json(json_object_get(doc, "during"), &during) == 0;
    kg_xp_observed o = {
        .baseline = have_baseline ? &baseline : NULL,
        .span = have_during ? &during : NULL,
        .commit_stall_ms = json_integer_value(json_object_get(doc, "longest_commit_stall_ms")),
    };
    json_t *results = kg_xp_evaluate(&d, &o);
    kg_xp_drill_free(&d);
    return results;
}

static void audit_end(kg_experiments *xs, const json_t *doc, const char *actor)
{
    json_t *details = json_pack(
        "{s:O, s:O, s:O, s:O, s:O, s:s, s:I, s:o}", "id", json_object_get(doc, "id"), "name",
        json_object_get(doc, "name"), "vcluster", json_object_get(doc, "vcluster"), "status",
        json_object_get(doc, "status"), "reason", json_object_get(doc, "end_reason"), "actor",
        actor, "faults_injected", kg_xp_faults_injected(doc), "expectations",
        kg_xp_count_results(json_object_get(doc, "expectations")));
    audit(xs, "experiment.end", details);
}

/* ---------------------------------------------------------------- rules */

/* Reads the live counters of the experiment's rules into the record (a rule someone removed
 * by hand keeps its last known counters) and returns the faults injected so far. */
static uint64_t refresh_rule_counters(kg_experiments *xs, xp_run *r)
{
    uint64_t total = 0;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(r->doc, "rules"), i, rule)
    {
        json_t *live = kg_chaos_get(xs->chaos, json_string_value(json_object_get(rule, "id")));
        if (live) {
            json_object_set(rule, "matched", json_object_get(live, "matched"));
            json_object_set(rule, "injected", json_object_get(live, "injected"));
            json_decref(live);
        }
        json_int_t injected = json_integer_value(json_object_get(rule, "injected"));
        total += injected > 0 ? (uint64_t)injected : 0;
    }
    return total;
}

/* Removes the experiment's rules and keeps their final counters in the record. */
static void remove_rules(kg_experiments *xs, const json_t *doc, const char *actor)
{
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(doc, "rules"), i, rule)
    {
        const char *id = json_string_value(json_object_get(rule, "id"));
        json_t *final = NULL;
        if (id && kg_chaos_remove_final(xs->chaos, id, actor, &final) == 0 && final) {
            json_object_set(rule, "matched", json_object_get(final, "matched"));
            json_object_set(rule, "injected", json_object_get(final, "injected"));
        }
        json_decref(final);
    }
}

/* Adds the drill's rules, each "for" the injection phase. 0, or -1 with ERR (the rules added
 * so far are in the record, so ending the experiment removes them). */
static int add_rules(kg_experiments *xs, xp_run *r, char *err, size_t errlen)
{
    char actor[320], life[32];
    snprintf(actor, sizeof(actor), "experiment %s (started by %s)", r->id, r->actor);
    snprintf(life, sizeof(life), "%lldms", (long long)(r->drill.duration_ms + RULE_GRACE_MS));
    json_t *added = json_object_get(r->doc, "rules");
    size_t i;
    json_t *given;
    json_array_foreach(r->drill.rules, i, given)
    {
        json_t *rule = json_deep_copy(given);
        char id[64], why[400];
        snprintf(id, sizeof(id), "%s-r%zu", r->id, i + 1);
        json_object_set_new(rule, "id", json_string(id));
        json_object_set_new(rule, "for", json_string(life));
        if (!json_object_get(rule, "description")) {
            char text[256];
            snprintf(text, sizeof(text), "experiment %s: %s", r->id, r->drill.name);
            json_object_set_new(rule, "description", json_string(text));
        }
        json_t *stored = NULL;
        int rc = kg_chaos_add(xs->chaos, rule, actor, &stored, why, sizeof(why));
        json_decref(rule);
        if (rc != 0) {
            snprintf(err, errlen, "cannot inject rule %zu: %s", i + 1, why);
            return -1;
        }
        json_array_append_new(added, stored ? stored : json_pack("{s:s}", "id", id));
    }
    return 0;
}

/* ---------------------------------------------------------------- observations */

static int take_point(kg_experiments *xs, xp_run *r, int64_t now, kg_xp_point *p)
{
    memset(p, 0, sizeof(*p));
    if (xs->env.sample(xs->env.ctx, r->drill.vcluster, &p->vc) != 0) return -1;
    /* The phases need a clock that never runs backwards. */
    p->t_ms = r->ring_len && now < r->last.t_ms ? r->last.t_ms : now;
    p->injected = refresh_rule_counters(xs, r);
    return 0;
}

static void remember_point(xp_run *r, const kg_xp_point *p)
{
    r->ring[r->ring_next] = *p;
    r->ring_next = (r->ring_next + 1) % RING_POINTS;
    if (r->ring_len < RING_POINTS) r->ring_len++;
    r->last = *p;
}

/* The I-th newest observation (0 = the latest). */
static const kg_xp_point *ring_at(const xp_run *r, int i)
{
    return &r->ring[(r->ring_next - 1 - i + 2 * RING_POINTS) % RING_POINTS];
}

/* The newest observation taken at or before AT_MS, or NULL. */
static const kg_xp_point *point_at_or_before(const xp_run *r, int64_t at_ms)
{
    for (int i = 0; i < r->ring_len; i++) {
        const kg_xp_point *p = ring_at(r, i);
        if (p->t_ms <= at_ms) return p;
    }
    return NULL;
}

/* Producers "keep producing" when Produce requests grew within the abort window. */
static bool produce_continues(const xp_run *r, const kg_xp_point *p)
{
    const kg_xp_point *w = point_at_or_before(r, p->t_ms - r->drill.window_ms);
    if (!w || w->t_ms < r->run_start.t_ms) w = &r->run_start;
    return p->vc.produce_requests > w->vc.produce_requests;
}

static void track_commit_stall(xp_run *r, const kg_xp_point *p)
{
    if (p->vc.commit_requests > r->commits_seen || !produce_continues(r, p))
        r->stall_since_ms = p->t_ms;
    r->commits_seen = p->vc.commit_requests;
    r->current_stall_ms = p->t_ms - r->stall_since_ms;
    if (r->current_stall_ms > r->longest_stall_ms) r->longest_stall_ms = r->current_stall_ms;
}

static void close_minute(xp_run *r, const kg_xp_point *p)
{
    kg_xp_delta d = kg_xp_diff(&r->minute_start, p);
    json_t *rec = kg_xp_delta_to_json(&d);
    json_object_set_new(rec, "minute", json_integer(++r->minute_index));
    set_time(rec, "start", r->minute_start.t_ms);
    json_array_append_new(json_object_get(r->doc, "minutes"), rec);
    r->minute_start = *p;
    kg_xp_delta during = kg_xp_diff(&r->run_start, p);
    json_object_set_new(r->doc, "during", kg_xp_delta_to_json(&during));
    json_object_set_new(r->doc, "longest_commit_stall_ms", json_integer(r->longest_stall_ms));
}

/* ---------------------------------------------------------------- ending */

/* Ends R: closes its records, removes its rules, stops inspection, judges the expectations,
 * writes the audit entries and the record, and frees R. ABORT (stolen, may be NULL) is the
 * observation that tripped an abort criterion. Returns the final record (new reference). */
static json_t *finish_run(kg_experiments *xs, xp_run *r, const char *status, const char *reason,
                          const char *actor, json_t *abort_info)
{
    char rules_actor[320];
    snprintf(rules_actor, sizeof(rules_actor), "experiment %s (%s)", r->id, status);
    /* Rules out first, then one last observation: the record then counts every fault the
     * rules injected and every error clients saw up to the end, not as of the last tick. */
    refresh_rule_counters(xs, r);
    remove_rules(xs, r->doc, rules_actor);
    kg_xp_point last;
    /* Stamped with the last tick's time: the runner's clock is the tick's, and the counters,
     * not the extra fraction of a second, are what this observation adds. */
    if (r->phase == PHASE_RUNNING && r->ring_len && take_point(xs, r, r->last.t_ms, &last) == 0)
        remember_point(r, &last);
    if (r->inspecting) xs->env.inspect(xs->env.ctx, r->drill.vcluster, 0);
    r->inspecting = 0;
    if (r->phase == PHASE_RUNNING) {
        if (r->last.t_ms > r->minute_start.t_ms) close_minute(r, &r->last);
        kg_xp_delta during = kg_xp_diff(&r->run_start, &r->last);
        json_object_set_new(r->doc, "during", kg_xp_delta_to_json(&during));
        json_object_set_new(r->doc, "longest_commit_stall_ms", json_integer(r->longest_stall_ms));
    }
    set_status(r, status);
    set_time(r->doc, "ended_at", r->ring_len ? r->last.t_ms : kg_time_now_ms());
    json_object_set_new(r->doc, "end_reason", json_string(reason));
    if (strcmp(status, "stopped") == 0)
        json_object_set_new(r->doc, "stopped_by", json_string(actor));
    if (abort_info) json_object_set_new(r->doc, "abort", abort_info);
    json_object_set_new(r->doc, "expectations", evaluate_record(r->doc));
    if (abort_info)
        audit(xs, "experiment.abort",
              json_pack("{s:s, s:s, s:s, s:O, s:s, s:s}", "id", r->id, "name", r->drill.name,
                        "vcluster", r->drill.vcluster, "criterion",
                        json_object_get(abort_info, "criterion"), "reason", reason, "actor",
                        "kgate"));
    audit_end(xs, r->doc, actor);
    persist(xs, r->id, r->doc);
    kg_info("experiment %s (%s) %s: %s", r->id, r->drill.name, status, reason);
    json_t *final_doc = json_incref(r->doc);
    detach_run(xs, r);
    free_run(r);
    return final_doc;
}

static void finish_quietly(kg_experiments *xs, xp_run *r, const char *status, const char *reason,
                           const char *actor, json_t *abort_info)
{
    json_decref(finish_run(xs, r, status, reason, actor, abort_info));
}

/* ---------------------------------------------------------------- abort criteria */

static const char *trip_words(const kg_xp_check *c)
{
    switch (c->compare) {
    case KG_XP_AT_MOST:
        return "above";
    case KG_XP_AT_LEAST:
        return "below";
    case KG_XP_REACHES:
        return "at or above";
    }
    return "past";
}

static json_t *abort_observation(const xp_run *r, const kg_xp_check *c, double threshold,
                                 double value, const char *detail, const kg_xp_delta *window,
                                 char *reason, size_t len)
{
    char observed[64], limit[64];
    kg_xp_format_value(c->unit, value, observed, sizeof(observed));
    kg_xp_format_value(c->unit, threshold, limit, sizeof(limit));
    snprintf(reason, len, "abort.%s: %s was %s over the last %.0f s (abort %s %s; %s)", c->name,
             c->what, observed, window->seconds, trip_words(c), limit, detail);
    json_t *info =
        json_pack("{s:s, s:f, s:f, s:s, s:f, s:s, s:o}", "criterion", c->name, "threshold",
                  threshold, "observed", value, "observed_text", observed, "window_s",
                  window->seconds, "detail", detail, "window", kg_xp_delta_to_json(window));
    set_time(info, "at", r->last.t_ms);
    return info;
}

/* Checks the abort criteria over the last window of the injection phase; ends R and returns 1
 * when one trips. */
static int check_abort(kg_experiments *xs, xp_run *r, const kg_xp_point *p)
{
    const kg_xp_point *w = point_at_or_before(r, p->t_ms - r->drill.window_ms);
    if (!w || w->t_ms < r->run_start.t_ms) return 0; /* not a full window of injection yet */
    kg_xp_delta window = kg_xp_diff(w, p);
    kg_xp_observed o = {
        .baseline = &r->baseline, .span = &window, .commit_stall_ms = r->current_stall_ms};
    for (int i = 0; i < kg_xp_n_aborts; i++) {
        if (!r->drill.has_abort[i]) continue;
        const kg_xp_check *c = &kg_xp_aborts[i];
        double value;
        char detail[256] = "", reason[768];
        if (!c->observe(&o, &value, detail, sizeof(detail))) continue;
        if (!kg_xp_abort_trips(c, value, r->drill.abort_at[i])) continue;
        json_t *info = abort_observation(r, c, r->drill.abort_at[i], value, detail, &window, reason,
                                         sizeof(reason));
        finish_quietly(xs, r, "aborted", reason, "kgate", info);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- phases */

static void begin_baseline(kg_experiments *xs, xp_run *r, const kg_xp_point *p)
{
    /* Error counters only move while responses are inspected: from the baseline on, so that
     * baseline and injection are measured alike. */
    if (xs->env.inspect(xs->env.ctx, r->drill.vcluster, 1) == 0) r->inspecting = 1;
    r->baseline_start = *p;
    r->phase = PHASE_BASELINE;
    set_status(r, "baseline");
    set_time(r->doc, "baseline_started_at", p->t_ms);
    persist(xs, r->id, r->doc);
}

static void begin_injection(kg_experiments *xs, xp_run *r, const kg_xp_point *p)
{
    r->baseline = kg_xp_diff(&r->baseline_start, p);
    json_object_set_new(r->doc, "baseline", kg_xp_delta_to_json(&r->baseline));
    r->run_start = r->minute_start = *p;
    r->commits_seen = p->vc.commit_requests;
    r->stall_since_ms = p->t_ms;
    char err[512];
    if (add_rules(xs, r, err, sizeof(err)) != 0) {
        finish_quietly(xs, r, "aborted", err, "kgate", NULL);
        return;
    }
    r->phase = PHASE_RUNNING;
    set_status(r, "running");
    set_time(r->doc, "injection_started_at", p->t_ms);
    persist(xs, r->id, r->doc);
    kg_info("experiment %s (%s): injecting %zu rule(s) into %s for %llds", r->id, r->drill.name,
            json_array_size(r->drill.rules), r->drill.vcluster,
            (long long)(r->drill.duration_ms / 1000));
}

static void advance_running(kg_experiments *xs, xp_run *r, const kg_xp_point *p)
{
    track_commit_stall(r, p);
    if (p->t_ms - r->minute_start.t_ms >= MINUTE_MS) {
        close_minute(r, p);
        persist(xs, r->id, r->doc);
    }
    if (check_abort(xs, r, p)) return;
    if (p->t_ms - r->run_start.t_ms >= r->drill.duration_ms)
        finish_quietly(xs, r, "completed", "ran for its planned duration", "kgate", NULL);
}

static void tick_run(kg_experiments *xs, xp_run *r, int64_t now)
{
    kg_xp_point p;
    if (take_point(xs, r, now, &p) != 0) {
        char reason[256];
        snprintf(reason, sizeof(reason), "virtual cluster %s can no longer be observed",
                 r->drill.vcluster);
        finish_quietly(xs, r, "aborted", reason, "kgate", NULL);
        return;
    }
    remember_point(r, &p);
    switch (r->phase) {
    case PHASE_PENDING:
        begin_baseline(xs, r, &p);
        break;
    case PHASE_BASELINE:
        if (p.t_ms - r->baseline_start.t_ms >= r->drill.baseline_ms) begin_injection(xs, r, &p);
        break;
    case PHASE_RUNNING:
        advance_running(xs, r, &p);
        break;
    }
}

void kg_experiments_tick(kg_experiments *xs, uint64_t now_unix_ms)
{
    /* The tick runs on the gateway's accept thread: rather than wait behind an admin request
     * that is writing to the state store, skip this second (phases and windows go by the
     * observations' own times, so a skipped second only widens one interval). */
    if (!xs || pthread_mutex_trylock(&xs->lock) != 0) return;
    xp_run *next;
    for (xp_run *r = xs->active; r; r = next) {
        next = r->next; /* tick_run may end and free R */
        tick_run(xs, r, (int64_t)now_unix_ms);
    }
    pthread_mutex_unlock(&xs->lock);
}

/* ---------------------------------------------------------------- start-up and shutdown */

/* A record still marked active means kgate died while it ran: its rules may still be in the
 * chaos registry (they were persisted), so remove them and close the record. */
static void close_interrupted(kg_experiments *xs, json_t *doc)
{
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *was = json_string_value(json_object_get(doc, "status"));
    char reason[160], actor[128];
    snprintf(reason, sizeof(reason), "kgate stopped while the experiment was in its %s phase", was);
    snprintf(actor, sizeof(actor), "experiment %s (interrupted)", id);
    remove_rules(xs, doc, actor);
    json_object_set_new(doc, "status", json_string("interrupted"));
    set_time(doc, "ended_at", kg_time_now_ms());
    json_object_set_new(doc, "end_reason", json_string(reason));
    json_object_set_new(doc, "expectations", evaluate_record(doc));
    audit_end(xs, doc, "kgate");
    persist(xs, id, doc);
    kg_warn("experiment %s: %s; marked interrupted", id, reason);
}

kg_experiments *kg_experiments_new(kg_chaos *chaos, kg_store *store, const kg_experiment_env *env)
{
    if (!chaos || !store || !env || !env->sample || !env->inspect) return NULL;
    kg_experiments *xs = calloc(1, sizeof(*xs));
    if (!xs) return NULL;
    pthread_mutex_init(&xs->lock, NULL);
    xs->chaos = chaos;
    xs->store = store;
    xs->env = *env;
    json_t *docs = kg_store_list_docs(store, DOC_KIND);
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        if (status_is_active(json_string_value(json_object_get(doc, "status"))))
            close_interrupted(xs, doc);
    }
    json_decref(docs);
    return xs;
}

void kg_experiments_free(kg_experiments *xs)
{
    if (!xs) return;
    pthread_mutex_lock(&xs->lock);
    while (xs->active) {
        xp_run *r = xs->active;
        char reason[160];
        snprintf(reason, sizeof(reason), "kgate stopped while the experiment was in its %s phase",
                 phase_names[r->phase]);
        finish_quietly(xs, r, "interrupted", reason, "kgate", NULL);
    }
    pthread_mutex_unlock(&xs->lock);
    pthread_mutex_destroy(&xs->lock);
    free(xs);
}

/* ---------------------------------------------------------------- operations */

static json_t *start_audit_details(const xp_run *r)
{
    json_t *types = json_array();
    size_t i;
    json_t *rule;
    json_array_foreach(r->drill.rules, i, rule)
        json_array_append(types, json_object_get(rule, "type"));
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:o, s:s}", "id", r->id, "name", r->drill.name,
                     "vcluster", r->drill.vcluster, "hypothesis", r->drill.hypothesis, "duration",
                     json_object_get(r->drill.json, "duration"), "baseline",
                     json_object_get(r->drill.json, "baseline"), "rules", types, "actor", r->actor);
}

int kg_experiments_create(kg_experiments *xs, json_t *drill, const char *actor, json_t **out,
                          char *err, size_t errlen)
{
    *out = NULL;
    xp_run *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    if (kg_xp_drill_parse(drill, &r->drill, err, errlen) != 0) {
        free(r);
        return 400;
    }
    kg_vc_sample probe;
    if (xs->env.sample(xs->env.ctx, r->drill.vcluster, &probe) != 0) {
        snprintf(err, errlen, "field \"vcluster\": no virtual cluster \"%s\"", r->drill.vcluster);
        free_run(r);
        return 400;
    }
    snprintf(r->actor, sizeof(r->actor), "%s", actor ? actor : "unknown");
    pthread_mutex_lock(&xs->lock);
    xp_run *busy = find_run_on(xs, r->drill.vcluster);
    if (busy) {
        snprintf(err, errlen, "experiment %s is already active on virtual cluster %s", busy->id,
                 r->drill.vcluster);
        pthread_mutex_unlock(&xs->lock);
        free_run(r);
        return 409;
    }
    new_id(xs, r->id, sizeof(r->id));
    r->doc = new_record(r, kg_time_now_ms());
    if (!r->doc || kg_store_put_doc(xs->store, DOC_KIND, r->id, r->doc) != 0) {
        snprintf(err, errlen, "cannot store the experiment in the state store");
        pthread_mutex_unlock(&xs->lock);
        free_run(r);
        return 500;
    }
    audit(xs, "experiment.start", start_audit_details(r));
    r->next = xs->active;
    xs->active = r;
    *out = json_deep_copy(r->doc);
    kg_info("experiment %s (%s) on %s started by %s", r->id, r->drill.name, r->drill.vcluster,
            r->actor);
    pthread_mutex_unlock(&xs->lock);
    return 201;
}

static json_t *summary_of(const json_t *doc)
{
    static const char *const keys[] = {"id",       "name",       "vcluster",
                                       "status",   "created_at", "created_by",
                                       "ended_at", "end_reason", NULL};
    json_t *s = json_object();
    for (const char *const *k = keys; *k; k++)
        json_object_set(s, *k, json_object_get(doc, *k) ? json_object_get(doc, *k) : json_null());
    json_t *expectations = json_object_get(doc, "expectations");
    json_object_set_new(s, "expectations",
                        json_is_array(expectations) ? kg_xp_count_results(expectations)
                                                    : json_null());
    return s;
}

json_t *kg_experiments_list(kg_experiments *xs)
{
    json_t *docs = kg_store_list_docs(xs->store, DOC_KIND);
    if (!docs) return NULL;
    json_t *list = json_array();
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) json_array_append_new(list, summary_of(doc));
    json_decref(docs);
    return json_pack("{s:o}", "experiments", list);
}

/* What the last observations of an active experiment show, second by second. */
static json_t *live_view(const xp_run *r, int recent_seconds)
{
    json_t *live = json_pack("{s:s, s:I}", "phase", phase_names[r->phase],
                             "current_commit_stall_ms", (json_int_t)r->current_stall_ms);
    if (r->ring_len) set_time(live, "observed_at", r->last.t_ms);
    if (r->phase == PHASE_RUNNING) {
        kg_xp_delta sofar = kg_xp_diff(&r->run_start, &r->last);
        kg_xp_delta minute = kg_xp_diff(&r->minute_start, &r->last);
        json_object_set_new(live, "during_so_far", kg_xp_delta_to_json(&sofar));
        json_object_set_new(live, "current_minute", kg_xp_delta_to_json(&minute));
    }
    json_t *seconds = json_array();
    int n = recent_seconds < r->ring_len - 1 ? recent_seconds : r->ring_len - 1;
    for (int i = n - 1; i >= 0; i--) {
        kg_xp_delta d = kg_xp_diff(ring_at(r, i + 1), ring_at(r, i));
        json_t *s = kg_xp_delta_to_json(&d);
        set_time(s, "at", ring_at(r, i)->t_ms);
        json_array_append_new(seconds, s);
    }
    json_object_set_new(live, "recent_seconds", seconds);
    return live;
}

json_t *kg_experiments_get(kg_experiments *xs, const char *id, int recent_seconds)
{
    if (recent_seconds < 0) recent_seconds = 0;
    if (recent_seconds > MAX_RECENT_SECONDS) recent_seconds = MAX_RECENT_SECONDS;
    pthread_mutex_lock(&xs->lock);
    xp_run *r = find_run(xs, id);
    json_t *doc = NULL;
    if (r) {
        doc = json_deep_copy(r->doc);
        if (doc) json_object_set_new(doc, "live", live_view(r, recent_seconds));
    }
    pthread_mutex_unlock(&xs->lock);
    if (!r) doc = kg_store_get_doc(xs->store, DOC_KIND, id, NULL);
    return doc;
}

int kg_experiments_stop(kg_experiments *xs, const char *id, const char *actor, json_t **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    pthread_mutex_lock(&xs->lock);
    xp_run *r = find_run(xs, id);
    if (r) {
        char reason[320];
        snprintf(reason, sizeof(reason), "stopped by %s", actor ? actor : "unknown");
        *out = finish_run(xs, r, "stopped", reason, actor ? actor : "unknown", NULL);
    }
    pthread_mutex_unlock(&xs->lock);
    if (r) return 200;
    json_t *doc = kg_store_get_doc(xs->store, DOC_KIND, id, NULL);
    if (!doc) {
        snprintf(err, errlen, "no experiment \"%s\"", id);
        return 404;
    }
    snprintf(err, errlen, "experiment %s has already ended (%s)", id,
             json_string_value(json_object_get(doc, "status")));
    json_decref(doc);
    return 409;
}

/* ---------------------------------------------------------------- annotations */

static int check_retest(kg_experiments *xs, const char *id, const json_t *doc, json_t *retest,
                        char *err, size_t errlen)
{
    if (json_is_null(retest)) return 0;
    if (!json_is_object(retest)) {
        snprintf(err, errlen, "field \"retest\" must be {\"experiment\": ID, \"result\": TEXT}");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(retest, key, v)
    {
        if ((strcmp(key, "experiment") != 0 && strcmp(key, "result") != 0) || !json_is_string(v)) {
            snprintf(err, errlen, "field \"retest.%s\": %s", key,
                     json_is_string(v) ? "unknown field (experiment, result)" : "must be a string");
            return -1;
        }
    }
    const char *later = json_string_value(json_object_get(retest, "experiment"));
    if (!later) return 0;
    json_t *other = find_run(xs, later) ? json_incref(find_run(xs, later)->doc)
                                        : kg_store_get_doc(xs->store, DOC_KIND, later, NULL);
    const char *mine = json_string_value(json_object_get(doc, "created_at"));
    const char *theirs = json_string_value(json_object_get(other, "created_at"));
    int ok = other && strcmp(later, id) != 0 && mine && theirs && strcmp(theirs, mine) >= 0;
    if (!ok)
        snprintf(err, errlen, "field \"retest.experiment\": %s",
                 other ? "must be an experiment started after this one" : "no such experiment");
    json_decref(other);
    return ok ? 0 : -1;
}

static int check_patch(kg_experiments *xs, const char *id, const json_t *doc, json_t *patch,
                       char *err, size_t errlen)
{
    if (!json_is_object(patch) || json_object_size(patch) == 0) {
        snprintf(err, errlen, "nothing to change: give \"remediation\" and/or \"retest\"");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(patch, key, v)
    {
        if (strcmp(key, "remediation") == 0) {
            if (!json_is_string(v) && !json_is_null(v)) {
                snprintf(err, errlen, "field \"remediation\" must be a string (or null)");
                return -1;
            }
        } else if (strcmp(key, "retest") == 0) {
            if (check_retest(xs, id, doc, v, err, errlen) != 0) return -1;
        } else {
            snprintf(err, errlen, "unknown field \"%s\" (remediation, retest)", key);
            return -1;
        }
    }
    return 0;
}

/* A retest given in parts keeps the part given earlier. */
static void apply_patch(json_t *doc, json_t *patch, const char *actor)
{
    json_t *remediation = json_object_get(patch, "remediation");
    if (remediation) json_object_set(doc, "remediation", remediation);
    json_t *retest = json_object_get(patch, "retest");
    if (json_is_object(retest)) {
        json_t *merged = json_is_object(json_object_get(doc, "retest"))
                             ? json_deep_copy(json_object_get(doc, "retest"))
                             : json_object();
        json_object_update(merged, retest);
        json_object_set_new(doc, "retest", merged);
    } else if (retest) {
        json_object_set(doc, "retest", retest);
    }
    set_time(doc, "annotated_at", kg_time_now_ms());
    json_object_set_new(doc, "annotated_by", json_string(actor));
}

int kg_experiments_annotate(kg_experiments *xs, const char *id, json_t *patch, const char *actor,
                            json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    actor = actor ? actor : "unknown";
    pthread_mutex_lock(&xs->lock);
    int status = 200;
    json_t *doc = NULL;
    if (find_run(xs, id)) {
        snprintf(err, errlen, "experiment %s is still active; annotate it once it has ended", id);
        status = 409;
    } else if (!(doc = kg_store_get_doc(xs->store, DOC_KIND, id, NULL))) {
        snprintf(err, errlen, "no experiment \"%s\"", id);
        status = 404;
    } else if (check_patch(xs, id, doc, patch, err, errlen) != 0) {
        status = 400;
    } else {
        apply_patch(doc, patch, actor);
        if (kg_store_put_doc(xs->store, DOC_KIND, id, doc) != 0) {
            snprintf(err, errlen, "cannot store the experiment in the state store");
            status = 500;
        } else {
            json_t *details = json_pack("{s:s, s:O, s:s}", "id", id, "name",
                                        json_object_get(doc, "name"), "actor", actor);
            json_object_update(details, patch);
            audit(xs, "experiment.annotate", details);
            *out = json_incref(doc);
        }
    }
    pthread_mutex_unlock(&xs->lock);
    json_decref(doc);
    return status;
}

json_t *kg_experiments_report(kg_experiments *xs, const char *id)
{
    json_t *doc = kg_experiments_get(xs, id, 0);
    if (!doc) return NULL;
    json_object_del(doc, "live");
    const char *later =
        json_string_value(json_object_get(json_object_get(doc, "retest"), "experiment"));
    json_t *retest_doc = later ? kg_experiments_get(xs, later, 0) : NULL;
    json_t *report = kg_xp_report_json(doc, retest_doc);
    json_decref(retest_doc);
    json_decref(doc);
    return report;
}
