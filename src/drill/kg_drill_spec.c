/* The drill file, validated field by field: every refusal names the field that is wrong, so a
 * drill fails at submission rather than half-way through a switch. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drill/kg_drill.h"
#include "util/kg_duration.h"
#include "util/kg_err.h"
#include "util/kg_json.h"

static const char *const top_fields[] = {"name",          "hypothesis", "vcluster", "bootstrap",
                                         "topic",         "workload",   "steps",    "between",
                                         "consumer_wait", "expect",     NULL};
static const char *const workload_fields[] = {
    "producers", "rate", "consumers", "group", "producer_config", "consumer_config", NULL};
static const char *const step_fields[] = {"action",  "to",   "reason", "force",
                                          "planned", "rule", "for",    NULL};
static const char *const action_names[] = {"failover", "failback", "chaos"};

const char *kg_drill_action_name(kg_drill_action action)
{
    return action_names[action];
}
static const char *const expect_fields[] = {"max_producer_rto", "max_consumer_rto",  "max_lost",
                                            "max_duplicates",   "max_client_errors", NULL};

/* OBJ is a mapping whose keys are all among NAMES. */
static int check_mapping(const json_t *obj, const char *const *names, const char *where, char *err,
                         size_t errlen)
{
    if (!json_is_object(obj)) return kg_errf(err, errlen, "%s must be a mapping", where);
    return kg_json_check_keys(obj, names, where, err, errlen);
}

/* Copies the string field KEY into DST (size CAP); absent is fine unless REQUIRED. */
static int get_text(const json_t *obj, const char *key, const char *where, int required, char *dst,
                    size_t cap, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return required ? kg_errf(err, errlen, "field \"%s%s\" is required", where, key) : 0;
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) >= cap)
        return kg_errf(err, errlen, "field \"%s%s\" must be a text of 1 to %zu characters", where,
                       key, cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static int get_int(const json_t *obj, const char *key, const char *where, long lo, long hi,
                   int *dst, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kg_errf(err, errlen, "field \"%s%s\" must be a whole number from %ld to %ld", where,
                       key, lo, hi);
    *dst = (int)json_integer_value(v);
    return 0;
}

static int get_duration(const json_t *obj, const char *key, const char *where, int64_t *dst,
                        char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_string(v) || kg_duration_parse(json_string_value(v), dst) != 0)
        return kg_errf(err, errlen,
                       "field \"%s%s\" must be a duration such as \"500ms\" or \"10s\"", where,
                       key);
    return 0;
}

static int get_count(const json_t *obj, const char *key, int64_t *dst, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kg_errf(err, errlen, "field \"expect.%s\" must be a whole number, 0 or more", key);
    *dst = json_integer_value(v);
    return 0;
}

/* A map of librdkafka properties, each tried on a configuration so that a misspelt
 * property or a bad value is refused now, naming the field, not when the clients start. */
static int parse_props(const json_t *w, const char *key, kg_drill_props *out, char *err,
                       size_t errlen)
{
    const json_t *map = json_object_get(w, key);
    if (!map) return 0;
    if (!json_is_object(map) || json_object_size(map) > KG_DRILL_MAX_PROPS)
        return kg_errf(err, errlen,
                       "field \"workload.%s\" must map up to %d librdkafka properties "
                       "to values",
                       key, KG_DRILL_MAX_PROPS);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)map, name, v)
    {
        const char *value = json_string_value(v);
        char why[256];
        if (!value || strlen(name) >= sizeof(out->items[0].key) ||
            strlen(value) >= sizeof(out->items[0].value)) {
            rc = kg_errf(err, errlen, "field \"workload.%s.%s\" must be a short text", key, name);
            break;
        }
        if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            rc = kg_errf(err, errlen, "field \"workload.%s.%s\": %s", key, name, why);
            break;
        }
        snprintf(out->items[out->n].key, sizeof(out->items[0].key), "%s", name);
        snprintf(out->items[out->n].value, sizeof(out->items[0].value), "%s", value);
        out->n++;
    }
    rd_kafka_conf_destroy(conf);
    return rc;
}

static int parse_workload(const json_t *w, kg_drill_spec *out, char *err, size_t errlen)
{
    if (!w) return 0;
    if (check_mapping(w, workload_fields, "workload", err, errlen) != 0 ||
        get_int(w, "producers", "workload.", 1, KG_DRILL_MAX_PRODUCERS, &out->producers, err,
                errlen) != 0 ||
        get_int(w, "rate", "workload.", 1, 5000, &out->rate, err, errlen) != 0 ||
        get_int(w, "consumers", "workload.", 0, KG_DRILL_MAX_CONSUMERS, &out->consumers, err,
                errlen) != 0)
        return -1;
    if (parse_props(w, "producer_config", &out->producer_config, err, errlen) != 0 ||
        parse_props(w, "consumer_config", &out->consumer_config, err, errlen) != 0)
        return -1;
    return get_text(w, "group", "workload.", 0, out->group, sizeof(out->group), err, errlen);
}

/* A chaos step: the rule (its own module checks it when the step runs: kgate's API answers 400
 * naming the field, and the drill reports it) and how long it stays. */
static int parse_chaos_step(const json_t *s, const char *where, kg_drill_step *out, char *err,
                            size_t errlen)
{
    json_t *rule = json_object_get(s, "rule");
    if (!json_is_object(rule))
        return kg_errf(err, errlen, "field \"%srule\" must be a chaos rule (a mapping)", where);
    if (json_object_get(rule, "for") || json_object_get(rule, "expires_at"))
        return kg_errf(err, errlen, "field \"%srule\": its duration is the step's \"for\"", where);
    char *text = json_dumps(rule, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    if (!text || len >= sizeof(out->rule)) {
        free(text);
        return kg_errf(err, errlen, "field \"%srule\" is too large", where);
    }
    memcpy(out->rule, text, len + 1);
    free(text);
    out->fault_ms = -1;
    if (get_duration(s, "for", where, &out->fault_ms, err, errlen) != 0) return -1;
    if (out->fault_ms < 0 || out->fault_ms > 600000)
        return kg_errf(err, errlen, "field \"%sfor\" is required: a duration of at most 10m",
                       where);
    return 0;
}

static int parse_step(const json_t *s, int i, kg_drill_step *out, char *err, size_t errlen)
{
    char where[32];
    snprintf(where, sizeof(where), "steps[%d]", i);
    if (check_mapping(s, step_fields, where, err, errlen) != 0) return -1;
    const char *action = json_string_value(json_object_get(s, "action"));
    int a = 0;
    while (action && a <= KG_DRILL_CHAOS && strcmp(action, action_names[a]) != 0)
        a++;
    if (!action || a > KG_DRILL_CHAOS)
        return kg_errf(err, errlen,
                       "field \"%s.action\" must be \"failover\", \"failback\" or \"chaos\"",
                       where);
    out->action = (kg_drill_action)a;
    strcat(where, ".");
    if (out->action == KG_DRILL_CHAOS) {
        if (json_object_get(s, "to") || json_object_get(s, "force") ||
            json_object_get(s, "planned"))
            return kg_errf(err, errlen,
                           "fields \"%sto\", \"%sforce\" and \"%splanned\" are for switches", where,
                           where, where);
        return parse_chaos_step(s, where, out, err, errlen);
    }
    if (json_object_get(s, "rule") || json_object_get(s, "for"))
        return kg_errf(err, errlen, "fields \"%srule\" and \"%sfor\" are for chaos steps", where,
                       where);
    if (get_text(s, "to", where, 0, out->to, sizeof(out->to), err, errlen) != 0 ||
        get_text(s, "reason", where, 0, out->reason, sizeof(out->reason), err, errlen) != 0)
        return -1;
    if (out->action == KG_DRILL_FAILBACK && out->to[0])
        return kg_errf(err, errlen, "field \"%sto\": a failback goes to the primary", where);
    json_t *force = json_object_get(s, "force");
    if (force && !json_is_boolean(force))
        return kg_errf(err, errlen, "field \"%sforce\" must be true or false", where);
    out->force = json_is_true(force);
    json_t *planned = json_object_get(s, "planned");
    if (planned && !json_is_boolean(planned))
        return kg_errf(err, errlen, "field \"%splanned\" must be true or false", where);
    out->planned = json_is_true(planned);
    if (out->planned && out->force)
        return kg_errf(err, errlen, "fields \"%splanned\" and \"%sforce\" do not go together",
                       where, where);
    return 0;
}

static int parse_steps(const json_t *steps, kg_drill_spec *out, char *err, size_t errlen)
{
    if (!json_is_array(steps) || json_array_size(steps) < 1 ||
        json_array_size(steps) > KG_DRILL_MAX_STEPS)
        return kg_errf(err, errlen, "field \"steps\" must list 1 to %d switches or chaos faults",
                       KG_DRILL_MAX_STEPS);
    size_t i;
    json_t *s;
    json_array_foreach(steps, i, s)
    {
        if (parse_step(s, (int)i, &out->steps[i], err, errlen) != 0) return -1;
    }
    out->n_steps = (int)json_array_size(steps);
    return 0;
}

static int parse_expect(const json_t *e, kg_drill_spec *out, char *err, size_t errlen)
{
    if (!e) return 0;
    if (check_mapping(e, expect_fields, "expect", err, errlen) != 0 ||
        get_duration(e, "max_producer_rto", "expect.", &out->max_producer_rto_ms, err, errlen) !=
            0 ||
        get_duration(e, "max_consumer_rto", "expect.", &out->max_consumer_rto_ms, err, errlen) != 0)
        return -1;
    if (get_count(e, "max_lost", &out->max_lost, err, errlen) != 0 ||
        get_count(e, "max_duplicates", &out->max_duplicates, err, errlen) != 0)
        return -1;
    return get_count(e, "max_client_errors", &out->max_errors, err, errlen);
}

int kg_drill_spec_parse(const json_t *in, kg_drill_spec *out, char *err, size_t errlen)
{
    *out = (kg_drill_spec){.producers = 1,
                           .rate = 50,
                           .consumers = 1,
                           .between_ms = 5000,
                           .consumer_wait_ms = 30000,
                           .max_producer_rto_ms = -1,
                           .max_consumer_rto_ms = -1,
                           .max_lost = -1,
                           .max_duplicates = -1,
                           .max_errors = -1};
    if (check_mapping(in, top_fields, "the drill", err, errlen) != 0 ||
        get_text(in, "name", "", 1, out->name, sizeof(out->name), err, errlen) != 0 ||
        get_text(in, "hypothesis", "", 0, out->hypothesis, sizeof(out->hypothesis), err, errlen) !=
            0 ||
        get_text(in, "vcluster", "", 1, out->vcluster, sizeof(out->vcluster), err, errlen) != 0 ||
        get_text(in, "bootstrap", "", 1, out->bootstrap, sizeof(out->bootstrap), err, errlen) !=
            0 ||
        get_text(in, "topic", "", 1, out->topic, sizeof(out->topic), err, errlen) != 0)
        return -1;
    if (parse_workload(json_object_get(in, "workload"), out, err, errlen) != 0 ||
        parse_steps(json_object_get(in, "steps"), out, err, errlen) != 0 ||
        get_duration(in, "between", "", &out->between_ms, err, errlen) != 0 ||
        get_duration(in, "consumer_wait", "", &out->consumer_wait_ms, err, errlen) != 0)
        return -1;
    if (out->between_ms > 600000 || out->consumer_wait_ms > 600000)
        return kg_errf(err, errlen, "fields \"between\" and \"consumer_wait\" are at most 10m");
    return parse_expect(json_object_get(in, "expect"), out, err, errlen);
}
