/* Drills: the experiment definition a user writes (YAML or JSON), validated field by field so
 * that every refusal names the field that is wrong. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/kg_duration.h"
#include "chaos/kg_chaos_internal.h"
#include "chaos/kg_experiment_internal.h"
#include "util/kg_json.h"

#define MAX_NAME 128
#define MAX_TEXT 8192
#define SECOND_MS 1000
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS (60 * MINUTE_MS)

static const char *const drill_fields[] = {
    "name", "hypothesis", "vcluster", "duration", "baseline", "rules", "expect", "abort", NULL};

static int get_text(json_t *in, const char *field, size_t max, const char **out, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(in, field);
    if (!v) return kg_errf(err, errlen, "field \"%s\" is required", field);
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > max)
        return kg_errf(err, errlen,
                       "field \"%s\" must be a non-empty string of at most %zu characters", field,
                       max);
    *out = s;
    return 0;
}

/* A duration field ("30s", "5m") between MIN_MS and MAX_MS; DEFAULT_MS when absent (< 0:
 * required). FIELD is the name used in messages. */
static int get_duration(json_t *v, const char *field, int64_t default_ms, int64_t min_ms,
                        int64_t max_ms, int64_t *out, char *err, size_t errlen)
{
    if (!v) {
        if (default_ms < 0) return kg_errf(err, errlen, "field \"%s\" is required", field);
        *out = default_ms;
        return 0;
    }
    int64_t ms;
    if (!json_is_string(v) || kg_duration_parse(json_string_value(v), &ms) != 0)
        return kg_errf(err, errlen,
                       "field \"%s\" must be a duration such as \"30s\", \"5m\", \"1h\"", field);
    if (ms < min_ms || ms > max_ms)
        return kg_errf(err, errlen, "field \"%s\" must be from %llds to %llds", field,
                       (long long)(min_ms / 1000), (long long)(max_ms / 1000));
    *out = ms;
    return 0;
}

/* ---------------------------------------------------------------- rules */

/* A rule as the experiment will add it: in the experiment's virtual cluster, alive for the
 * experiment (the runner sets the real "for" when it injects). Validated by the chaos module
 * itself, so a drill is refused now rather than failing at injection time. */
static int check_rule(json_t *rule, int index, const kg_xp_drill *d, char *err, size_t errlen)
{
    if (!json_is_object(rule))
        return kg_errf(err, errlen, "field \"rules[%d]\" must be a chaos rule (an object)", index);
    static const char *const managed[] = {"for", "expires_at", "id"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (json_object_get(rule, managed[i]))
            return kg_errf(err, errlen,
                           "field \"rules[%d].%s\": the experiment sets its rules' ids and "
                           "lifetimes",
                           index, managed[i]);
    json_t *vc = json_object_get(rule, "vcluster");
    if (vc && !(json_is_string(vc) && strcmp(json_string_value(vc), d->vcluster) == 0))
        return kg_errf(err, errlen,
                       "field \"rules[%d].vcluster\" must be the experiment's (\"%s\")", index,
                       d->vcluster);
    json_object_set_new(rule, "vcluster", json_string(d->vcluster));
    json_t *probe = json_deep_copy(rule);
    if (!probe) return kg_errf(err, errlen, "out of memory");
    char dur[32], why[400];
    snprintf(dur, sizeof(dur), "%lldms", (long long)d->duration_ms);
    json_object_set_new(probe, "for", json_string(dur));
    kg_chaos_rule *parsed = kg_chaos_rule_parse(probe, false, kg_time_now_ms(), why, sizeof(why));
    json_decref(probe);
    if (!parsed) return kg_errf(err, errlen, "rules[%d]: %s", index, why);
    kg_chaos_rule_unref(parsed);
    return 0;
}

static int parse_rules(kg_xp_drill *d, char *err, size_t errlen)
{
    json_t *rules = json_object_get(d->json, "rules");
    if (!rules) return kg_errf(err, errlen, "field \"rules\" is required");
    if (!json_is_array(rules) || json_array_size(rules) == 0 ||
        json_array_size(rules) > KG_XP_MAX_RULES)
        return kg_errf(err, errlen, "field \"rules\" must be a list of 1 to %d chaos rules",
                       KG_XP_MAX_RULES);
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        if (check_rule(rule, (int)i, d, err, errlen) != 0) return -1;
    }
    d->rules = rules;
    return 0;
}

/* ---------------------------------------------------------------- checks */

static int parse_check_value(const kg_xp_check *c, const char *section, json_t *v, double *out,
                             char *err, size_t errlen)
{
    char field[96];
    snprintf(field, sizeof(field), "%s.%s", section, c->name);
    double x = json_number_value(v);
    switch (c->unit) {
    case KG_XP_PERCENT:
    case KG_XP_PCT_BASE:
        if (!json_is_number(v) || x < 0 || x > 100)
            return kg_errf(err, errlen, "field \"%s\" must be a percentage from 0 to 100", field);
        break;
    case KG_XP_RATIO:
        if (!json_is_number(v) || x < 0 || x > 1)
            return kg_errf(
                err, errlen,
                "field \"%s\" must be a fraction of the baseline from 0 to 1 (0.9 = 90%%)", field);
        break;
    case KG_XP_COUNT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return kg_errf(err, errlen, "field \"%s\" must be an integer >= 0", field);
        x = (double)json_integer_value(v);
        break;
    case KG_XP_PER_MINUTE:
        if (!json_is_number(v) || x < 0)
            return kg_errf(err, errlen, "field \"%s\" must be a number >= 0 (per minute)", field);
        break;
    case KG_XP_DURATION: {
        int64_t ms;
        if (get_duration(v, field, -1, 0, 24LL * HOUR_MS, &ms, err, errlen) != 0) return -1;
        x = (double)ms;
        break;
    }
    }
    *out = x;
    return 0;
}

static const kg_xp_check *find_check(const kg_xp_check *checks, int n, const char *name, int *idx)
{
    for (int i = 0; i < n; i++)
        if (strcmp(checks[i].name, name) == 0) {
            *idx = i;
            return &checks[i];
        }
    return NULL;
}

static void list_names(const kg_xp_check *checks, int n, const char *extra, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", checks[i].name);
    if (used < len) snprintf(out + used, len - used, ", %s", extra);
}

static int parse_other(json_t *other, char *err, size_t errlen)
{
    size_t i;
    json_t *text;
    if (!json_is_array(other))
        return kg_errf(err, errlen, "field \"expect.other\" must be a list of statements (text)");
    json_array_foreach(other, i, text)
    {
        if (!json_is_string(text) || !*json_string_value(text) ||
            strlen(json_string_value(text)) > MAX_TEXT)
            return kg_errf(err, errlen, "field \"expect.other[%zu]\" must be a non-empty string",
                           i);
    }
    return 0;
}

static int parse_expect(kg_xp_drill *d, char *err, size_t errlen)
{
    json_t *expect = json_object_get(d->json, "expect");
    if (!expect) return 0;
    if (!json_is_object(expect))
        return kg_errf(err, errlen, "field \"expect\" must be a map of expectations");
    const char *key;
    json_t *v;
    json_object_foreach(expect, key, v)
    {
        if (strcmp(key, "other") == 0) {
            if (parse_other(v, err, errlen) != 0) return -1;
            continue;
        }
        int idx;
        if (!find_check(kg_xp_expectations, kg_xp_n_expectations, key, &idx)) {
            char names[512];
            list_names(kg_xp_expectations, kg_xp_n_expectations, "other", names, sizeof(names));
            return kg_errf(err, errlen, "unknown field \"expect.%s\" (known: %s)", key, names);
        }
        if (parse_check_value(&kg_xp_expectations[idx], "expect", v, &d->expect[idx], err,
                              errlen) != 0)
            return -1;
        d->has_expect[idx] = true;
    }
    return 0;
}

static int parse_abort(kg_xp_drill *d, char *err, size_t errlen)
{
    json_t *abort_map = json_object_get(d->json, "abort");
    d->window_ms = KG_XP_DEFAULT_WINDOW_MS;
    if (!abort_map) return 0;
    if (!json_is_object(abort_map))
        return kg_errf(err, errlen, "field \"abort\" must be a map of abort criteria");
    const char *key;
    json_t *v;
    json_object_foreach(abort_map, key, v)
    {
        if (strcmp(key, "window") == 0) {
            if (get_duration(v, "abort.window", 0, SECOND_MS, 5 * MINUTE_MS, &d->window_ms, err,
                             errlen) != 0)
                return -1;
            continue;
        }
        int idx;
        if (!find_check(kg_xp_aborts, kg_xp_n_aborts, key, &idx)) {
            char names[512];
            list_names(kg_xp_aborts, kg_xp_n_aborts, "window", names, sizeof(names));
            return kg_errf(err, errlen, "unknown field \"abort.%s\" (known: %s)", key, names);
        }
        if (parse_check_value(&kg_xp_aborts[idx], "abort", v, &d->abort_at[idx], err, errlen) != 0)
            return -1;
        d->has_abort[idx] = true;
    }
    return 0;
}

/* ---------------------------------------------------------------- the drill */

static int parse_fields(kg_xp_drill *d, char *err, size_t errlen)
{
    json_t *j = d->json;
    if (kg_json_check_keys(j, drill_fields, NULL, err, errlen) != 0 ||
        get_text(j, "name", MAX_NAME, &d->name, err, errlen) != 0 ||
        get_text(j, "hypothesis", MAX_TEXT, &d->hypothesis, err, errlen) != 0 ||
        get_text(j, "vcluster", MAX_NAME, &d->vcluster, err, errlen) != 0 ||
        get_duration(json_object_get(j, "duration"), "duration", -1, SECOND_MS, 24LL * HOUR_MS,
                     &d->duration_ms, err, errlen) != 0 ||
        get_duration(json_object_get(j, "baseline"), "baseline", KG_XP_DEFAULT_BASELINE_MS,
                     SECOND_MS, HOUR_MS, &d->baseline_ms, err, errlen) != 0)
        return -1;
    if (!json_object_get(j, "baseline")) {
        char text[32];
        snprintf(text, sizeof(text), "%llds", (long long)(d->baseline_ms / 1000));
        json_object_set_new(j, "baseline", json_string(text));
    }
    return parse_rules(d, err, errlen) != 0 || parse_expect(d, err, errlen) != 0 ||
                   parse_abort(d, err, errlen) != 0
               ? -1
               : 0;
}

int kg_xp_drill_parse(json_t *in, kg_xp_drill *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(in)) return kg_errf(err, errlen, "a drill must be a JSON/YAML object");
    out->json = json_deep_copy(in);
    if (!out->json) return kg_errf(err, errlen, "out of memory");
    if (parse_fields(out, err, errlen) != 0) {
        kg_xp_drill_free(out);
        return -1;
    }
    return 0;
}

void kg_xp_drill_free(kg_xp_drill *d)
{
    json_decref(d->json);
    memset(d, 0, sizeof(*d));
}
