/* A chaos rule from its JSON form: validation (every refusal names the field), the parsed
 * representation the data plane matches against, and the stored/listed JSON. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/kg_duration.h"
#include "chaos/kg_chaos_internal.h"
#include "kp_msgs.h"
#include "util/kg_regex.h"
#include "util/kg_err.h"
#include "util/kg_time.h"

#define MAX_DELAY_MS (10 * 60 * 1000) /* longer holds would only look like a dead connection */
#define MAX_CORRUPT_BYTES (1024 * 1024)
#define MAX_NAME_LEN 255

/* ---------------------------------------------------------------- types and their fields */

/* Fields every rule may have. */
static const char *const common_fields[] = {
    "type",      "id",  "description", "vcluster", "topic", "group",      "client_id",
    "principal", "api", "broker",      "rate",     "for",   "expires_at", NULL,
};
/* Fields kgate adds to the stored form. */
static const char *const stored_fields[] = {"created_at", "source", NULL};

typedef struct type_info {
    const char *name;
    bool tcp;
    const char *const *params;
} type_info;

static const char *const p_broken[] = {"errors", "mode", NULL};
static const char *const p_leader[] = {"errors", NULL};
static const char *const p_latency[] = {"delay_ms", "on", NULL};
static const char *const p_slow_broker[] = {"min_ms", "max_ms", NULL};
static const char *const p_slow_clients[] = {"min_ms", "max_ms", "apis", NULL};
static const char *const p_corrupt[] = {"on", "bytes", "how", "crc", NULL};
static const char *const p_duplicate[] = {"on", NULL};
static const char *const p_schema[] = {"schema_id", "on", NULL};
static const char *const p_none[] = {NULL};
static const char *const p_reset[] = {"after_ms", NULL};
static const char *const p_timeout[] = {"direction", NULL};
static const char *const p_bandwidth[] = {"kib_per_s", "direction", NULL};
static const char *const p_slicer[] = {"bytes", "delay_us", "direction", NULL};
static const char *const p_limit[] = {"bytes", "direction", NULL};

static const type_info types[KG_CHAOS_TYPE_COUNT] = {
    [KG_CHAOS_BROKEN_BROKERS] = {"broken-brokers", false, p_broken},
    [KG_CHAOS_LEADER_ELECTION] = {"leader-election", false, p_leader},
    [KG_CHAOS_LATENCY] = {"latency", false, p_latency},
    [KG_CHAOS_SLOW_BROKER] = {"slow-broker", false, p_slow_broker},
    [KG_CHAOS_SLOW_CLIENTS] = {"slow-clients", false, p_slow_clients},
    [KG_CHAOS_CORRUPT_RECORDS] = {"corrupt-records", false, p_corrupt},
    [KG_CHAOS_DUPLICATE_RECORDS] = {"duplicate-records", false, p_duplicate},
    [KG_CHAOS_INVALID_SCHEMA_ID] = {"invalid-schema-id", false, p_schema},
    [KG_CHAOS_AUTH_FAILURE] = {"auth-failure", false, p_none},
    [KG_CHAOS_DOWN] = {"down", true, p_none},
    [KG_CHAOS_RESET] = {"reset", true, p_reset},
    [KG_CHAOS_TIMEOUT] = {"timeout", true, p_timeout},
    [KG_CHAOS_BANDWIDTH] = {"bandwidth", true, p_bandwidth},
    [KG_CHAOS_SLICER] = {"slicer", true, p_slicer},
    [KG_CHAOS_LIMIT_DATA] = {"limit-data", true, p_limit},
};

const char *kg_chaos_type_name(kg_chaos_type type)
{
    return type < KG_CHAOS_TYPE_COUNT ? types[type].name : "?";
}

int kg_chaos_type_parse(const char *name, kg_chaos_type *out)
{
    for (int i = 0; i < KG_CHAOS_TYPE_COUNT; i++)
        if (strcmp(types[i].name, name) == 0) {
            *out = (kg_chaos_type)i;
            return 0;
        }
    return -1;
}

bool kg_chaos_type_is_tcp(kg_chaos_type type)
{
    return type < KG_CHAOS_TYPE_COUNT && types[type].tcp;
}

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

/* ---------------------------------------------------------------- field helpers */

/* A non-empty string field; absent is fine (*OUT = NULL). */
static int get_string(json_t *in, const char *key, const char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(in, key);
    *out = NULL;
    if (!v) return 0;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return kg_errf(err, errlen, "field \"%s\" must be a non-empty string", key);
    if (json_string_length(v) > MAX_NAME_LEN && strcmp(key, "description") != 0)
        return kg_errf(err, errlen, "field \"%s\" is longer than %d characters", key, MAX_NAME_LEN);
    *out = json_string_value(v);
    return 0;
}

/* An integer field within [LO, HI]; absent leaves *OUT alone. 1 when present. */
static int get_int(json_t *in, const char *key, long long lo, long long hi, long long *out,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(in, key);
    if (!v) return 0;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 9e15) {
        x = (long long)json_real_value(v);
    } else {
        return kg_errf(err, errlen, "field \"%s\" must be an integer from %lld to %lld", key, lo,
                       hi);
    }
    if (x < lo || x > hi)
        return kg_errf(err, errlen, "field \"%s\" must be an integer from %lld to %lld, not %lld",
                       key, lo, hi, x);
    *out = x;
    return 1;
}

/* A string field that must be one of CHOICES (NULL-terminated); returns its index, DEF when
 * absent, -1 on error. */
static int get_choice(json_t *in, const char *key, const char *const *choices, int def, char *err,
                      size_t errlen)
{
    json_t *v = json_object_get(in, key);
    if (!v) return def;
    const char *s = json_string_value(v);
    for (int i = 0; s && choices[i]; i++)
        if (strcmp(s, choices[i]) == 0) return i;
    char list[128] = "";
    for (int i = 0; choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
    }
    kg_errf(err, errlen, "field \"%s\" must be one of: %s", key, list);
    return -1;
}

static int compile_regex(regex_t *re, const char *pattern, const char *key, char *err,
                         size_t errlen)
{
    char why[256];
    if (kg_regex_check(pattern, why, sizeof(why)) != 0)
        return kg_errf(err, errlen, "field \"%s\": %s", key, why);
    size_t n = strlen(pattern) + 5;
    char *anchored = malloc(n);
    if (!anchored) return kg_errf(err, errlen, "out of memory");
    snprintf(anchored, n, "^(%s)$", pattern);
    int rc = regcomp(re, anchored, REG_EXTENDED | REG_NOSUB);
    free(anchored);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        return kg_errf(err, errlen, "field \"%s\" is not a valid regular expression: %s", key, msg);
    }
    return 0;
}

/* ---------------------------------------------------------------- rule lifecycle */

kg_chaos_rule *kg_chaos_rule_ref(kg_chaos_rule *rule)
{
    atomic_fetch_add_explicit(&rule->refs, 1, memory_order_relaxed);
    return rule;
}

void kg_chaos_rule_unref(kg_chaos_rule *rule)
{
    if (!rule || atomic_fetch_sub_explicit(&rule->refs, 1, memory_order_acq_rel) != 1) return;
    if (rule->has_topic) regfree(&rule->topic_re);
    if (rule->has_client) regfree(&rule->client_re);
    free(rule->vcluster);
    free(rule->group);
    free(rule->principal);
    json_decref(rule->json);
    free(rule);
}

/* ---------------------------------------------------------------- scope */

/* The APIs a type acts on before the "api" field narrows them. */
static void type_apis(const kg_chaos_rule *r, kg_api_bits *out)
{
    static const int16_t partition_level[] = {KG_API_PRODUCE, KG_API_FETCH, KG_API_LIST_OFFSETS,
                                              KG_API_DELETE_RECORDS,
                                              KG_API_OFFSET_FOR_LEADER_EPOCH};
    memset(out, 0, sizeof(*out));
    switch (r->type) {
    case KG_CHAOS_BROKEN_BROKERS:
        if (r->produce_error) kg_api_bits_set(out, KG_API_PRODUCE);
        if (r->fetch_error) kg_api_bits_set(out, KG_API_FETCH);
        break;
    case KG_CHAOS_LEADER_ELECTION:
        for (size_t i = 0; i < sizeof(partition_level) / sizeof(partition_level[0]); i++)
            kg_api_bits_set(out, partition_level[i]);
        break;
    case KG_CHAOS_LATENCY:
    case KG_CHAOS_SLOW_BROKER:
        if (r->has_topic) {
            for (size_t i = 0; i < sizeof(partition_level) / sizeof(partition_level[0]); i++)
                kg_api_bits_set(out, partition_level[i]);
        } else {
            out->w[0] = out->w[1] = ~UINT64_C(0);
        }
        break;
    case KG_CHAOS_SLOW_CLIENTS:
        *out = r->apis; /* from "apis" */
        break;
    case KG_CHAOS_CORRUPT_RECORDS:
    case KG_CHAOS_DUPLICATE_RECORDS:
    case KG_CHAOS_INVALID_SCHEMA_ID:
        kg_api_bits_set(out, r->on_response ? KG_API_FETCH : KG_API_PRODUCE);
        break;
    default:
        break; /* auth-failure and TCP faults act on no request */
    }
}

/* One entry of "api": a name ("Produce", any case) or a key. */
static int parse_api_entry(json_t *v, int16_t *key, char *err, size_t errlen)
{
    if (json_is_integer(v)) {
        json_int_t k = json_integer_value(v);
        if (k >= 0 && k < KP_API_MAX && kp_api_get((int16_t)k)) {
            *key = (int16_t)k;
            return 0;
        }
        return kg_errf(err, errlen, "field \"api\": unknown API key %lld", (long long)k);
    }
    const char *name = json_string_value(v);
    if (!name) return kg_errf(err, errlen, "field \"api\" must be a list of API names or keys");
    for (int16_t k = 0; k < KP_API_MAX; k++) {
        const kp_api_info *info = kp_api_get(k);
        if (info && strcasecmp(info->name, name) == 0) {
            *key = k;
            return 0;
        }
    }
    return kg_errf(err, errlen, "field \"api\": unknown API \"%s\"", name);
}

static int parse_api_field(json_t *in, kg_api_bits *out, bool *given, char *err, size_t errlen)
{
    json_t *v = json_object_get(in, "api");
    memset(out, 0, sizeof(*out));
    *given = v != NULL;
    if (!v) return 0;
    if (!json_is_array(v) && (json_is_string(v) || json_is_integer(v))) {
        int16_t key;
        if (parse_api_entry(v, &key, err, errlen) != 0) return -1;
        kg_api_bits_set(out, key);
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return kg_errf(err, errlen, "field \"api\" must be a non-empty list of API names or keys");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        int16_t key;
        if (parse_api_entry(e, &key, err, errlen) != 0) return -1;
        kg_api_bits_set(out, key);
    }
    return 0;
}

static int parse_scope(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    const char *vcluster, *topic, *group, *client, *principal, *s;
    if (get_string(in, "vcluster", &vcluster, err, errlen) ||
        get_string(in, "topic", &topic, err, errlen) ||
        get_string(in, "group", &group, err, errlen) ||
        get_string(in, "client_id", &client, err, errlen) ||
        get_string(in, "principal", &principal, err, errlen) ||
        get_string(in, "description", &s, err, errlen))
        return -1;
    if (vcluster && !(r->vcluster = strdup(vcluster))) return kg_errf(err, errlen, "out of memory");
    if (group && !(r->group = strdup(group))) return kg_errf(err, errlen, "out of memory");
    if (principal && !(r->principal = strdup(principal)))
        return kg_errf(err, errlen, "out of memory");
    if (topic) {
        if (compile_regex(&r->topic_re, topic, "topic", err, errlen) != 0) return -1;
        r->has_topic = true;
    }
    if (client) {
        if (compile_regex(&r->client_re, client, "client_id", err, errlen) != 0) return -1;
        r->has_client = true;
    }
    long long broker = -1;
    if (get_int(in, "broker", 0, INT32_MAX, &broker, err, errlen) < 0) return -1;
    r->broker = (int32_t)broker;

    json_t *rate = json_object_get(in, "rate");
    double pct = 100;
    if (rate) {
        if (!json_is_number(rate) || json_number_value(rate) < 0 || json_number_value(rate) > 100)
            return kg_errf(err, errlen, "field \"rate\" must be a number from 0 to 100 (percent)");
        pct = json_number_value(rate);
    }
    r->rate_ppm = (uint32_t)llround(pct * (KG_CHAOS_RATE_ONE / 100));
    return 0;
}

/* ---------------------------------------------------------------- expiry */

static int parse_expiry(kg_chaos_rule *r, json_t *in, bool from_store, int64_t now_ms, char *err,
                        size_t errlen)
{
    json_t *dur = json_object_get(in, "for");
    json_t *at = json_object_get(in, "expires_at");
    if (dur && at)
        return kg_errf(err, errlen, "field \"for\": give either \"for\" or \"expires_at\"");
    r->expires_ms = 0;
    if (dur) {
        int64_t ms;
        if (!json_is_string(dur) || kg_duration_parse(json_string_value(dur), &ms) != 0)
            return kg_errf(err, errlen,
                           "field \"for\" must be a duration such as \"250ms\", \"30s\", \"15m\", "
                           "\"1h30m\"");
        r->expires_ms = now_ms + ms;
    } else if (at && !json_is_null(at)) {
        int64_t ms;
        if (!json_is_string(at) || kg_time_parse(json_string_value(at), &ms) != 0)
            return kg_errf(err, errlen,
                           "field \"expires_at\" must be an RFC 3339 time such as "
                           "\"2026-05-01T12:00:00Z\"");
        /* A stored rule that expired while kgate was down is dropped by the caller. */
        if (ms <= now_ms && !from_store)
            return kg_errf(err, errlen, "field \"expires_at\" is in the past");
        r->expires_ms = ms;
    }
    r->created_ms = now_ms;
    json_t *created = json_object_get(in, "created_at");
    int64_t created_ms;
    if (from_store && json_is_string(created) &&
        kg_time_parse(json_string_value(created), &created_ms) == 0)
        r->created_ms = created_ms;
    return 0;
}

/* ---------------------------------------------------------------- type parameters */

static int parse_error_name(json_t *v, const char *field, int16_t *code, char *err, size_t errlen)
{
    if (json_is_integer(v)) {
        json_int_t c = json_integer_value(v);
        if (c >= INT16_MIN && c <= INT16_MAX && kg_chaos_error_name((int16_t)c)) {
            *code = (int16_t)c;
            return 0;
        }
        return kg_errf(err, errlen, "field \"%s\": unknown Kafka error code %lld", field,
                       (long long)c);
    }
    const char *name = json_string_value(v);
    if (!name)
        return kg_errf(err, errlen,
                       "field \"%s\" must be a Kafka error name such as "
                       "\"NOT_LEADER_OR_FOLLOWER\"",
                       field);
    if (kg_chaos_error_code(name, code) != 0)
        return kg_errf(err, errlen, "field \"%s\": unknown Kafka error \"%s\"", field, name);
    return 0;
}

static int check_api_error(int16_t api, int16_t code, const char *field, char *err, size_t errlen)
{
    if (kg_chaos_error_allowed(api, code, NULL)) return 0;
    char list[1024];
    kg_chaos_error_list(api, list, sizeof(list));
    return kg_errf(err, errlen, "field \"%s\": %s cannot return %s; it can return: %s", field,
                   kp_api_name(api), kg_chaos_error_name(code), list);
}

static int parse_broken_brokers(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    static const char *const modes[] = {"reject", "lost-ack", NULL};
    int mode = get_choice(in, "mode", modes, 0, err, errlen);
    if (mode < 0) return -1;
    r->lost_ack = mode == 1;
    json_t *errors = json_object_get(in, "errors");
    if (!errors) {
        /* The default is the error a client meets most often from a failing broker. */
        r->produce_error = 6;
        r->fetch_error = r->lost_ack ? 0 : 6; /* there is no ack to lose on a fetch */
        return 0;
    }
    if (!json_is_object(errors) || json_object_size(errors) == 0)
        return kg_errf(err, errlen,
                       "field \"errors\" must be an object such as {\"produce\": "
                       "\"NOT_ENOUGH_REPLICAS\", \"fetch\": \"NOT_LEADER_OR_FOLLOWER\"}");
    const char *key;
    json_t *v;
    json_object_foreach(errors, key, v)
    {
        char field[64];
        snprintf(field, sizeof(field), "errors.%s", key);
        int16_t api, code;
        if (strcasecmp(key, "produce") == 0)
            api = KG_API_PRODUCE;
        else if (strcasecmp(key, "fetch") == 0)
            api = KG_API_FETCH;
        else
            return kg_errf(err, errlen,
                           "field \"%s\": broken-brokers answers \"produce\" and "
                           "\"fetch\" only",
                           field);
        if (parse_error_name(v, field, &code, err, errlen) != 0) return -1;
        if (code == 0) return kg_errf(err, errlen, "field \"%s\": NONE is not an error", field);
        if (check_api_error(api, code, field, err, errlen) != 0) return -1;
        if (r->lost_ack && api == KG_API_FETCH)
            return kg_errf(err, errlen,
                           "field \"mode\": lost-ack applies to produce only; remove "
                           "\"errors.fetch\" or use mode reject");
        if (api == KG_API_PRODUCE)
            r->produce_error = code;
        else
            r->fetch_error = code;
    }
    return 0;
}

static int parse_leader_election(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    json_t *errors = json_object_get(in, "errors");
    if (!errors) {
        r->errors[0] = 5; /* LEADER_NOT_AVAILABLE */
        r->errors[1] = 6; /* NOT_LEADER_OR_FOLLOWER */
        r->errors[2] = 8; /* BROKER_NOT_AVAILABLE */
        r->n_errors = 3;
        return 0;
    }
    if (!json_is_array(errors) || json_array_size(errors) == 0 ||
        json_array_size(errors) > KG_CHAOS_MAX_ERRORS)
        return kg_errf(err, errlen, "field \"errors\" must be a list of 1 to %d Kafka error names",
                       KG_CHAOS_MAX_ERRORS);
    size_t i;
    json_t *v;
    json_array_foreach(errors, i, v)
    {
        char field[32];
        snprintf(field, sizeof(field), "errors[%zu]", i);
        int16_t code;
        if (parse_error_name(v, field, &code, err, errlen) != 0) return -1;
        if (!kg_chaos_error_is_leadership(code))
            return kg_errf(err, errlen,
                           "field \"%s\": %s is not a leadership error; leader-election injects "
                           "LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, BROKER_NOT_AVAILABLE, "
                           "REPLICA_NOT_AVAILABLE, FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH",
                           field, kg_chaos_error_name(code));
        r->errors[r->n_errors++] = code;
    }
    return 0;
}

static int parse_on(kg_chaos_rule *r, json_t *in, bool records, char *err, size_t errlen)
{
    static const char *const when[] = {"request", "response", NULL};
    static const char *const where[] = {"fetch", "produce", NULL};
    int v = get_choice(in, "on", records ? where : when, 0, err, errlen);
    if (v < 0) return -1;
    r->on_response = records ? v == 0 : v == 1;
    return 0;
}

/* min_ms/max_ms, both required, min <= max. */
static int parse_range(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    long long lo = -1, hi = -1;
    if (get_int(in, "min_ms", 0, MAX_DELAY_MS, &lo, err, errlen) < 0 ||
        get_int(in, "max_ms", 0, MAX_DELAY_MS, &hi, err, errlen) < 0)
        return -1;
    if (hi < 0) return kg_errf(err, errlen, "field \"max_ms\" is required");
    if (lo < 0) lo = 0;
    if (lo > hi)
        return kg_errf(err, errlen, "field \"min_ms\" must not be greater than \"max_ms\"");
    r->min_us = (uint64_t)lo * 1000;
    r->max_us = (uint64_t)hi * 1000;
    return 0;
}

static int parse_slow_clients(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    if (parse_range(r, in, err, errlen) != 0) return -1;
    json_t *apis = json_object_get(in, "apis");
    memset(&r->apis, 0, sizeof(r->apis));
    if (!apis) {
        kg_api_bits_set(&r->apis, KG_API_PRODUCE);
        kg_api_bits_set(&r->apis, KG_API_FETCH);
        return 0;
    }
    if (!json_is_array(apis) || json_array_size(apis) == 0)
        return kg_errf(err, errlen,
                       "field \"apis\" must be a list of \"produce\" and/or \"fetch\"");
    size_t i;
    json_t *v;
    json_array_foreach(apis, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strcasecmp(s, "produce") == 0)
            kg_api_bits_set(&r->apis, KG_API_PRODUCE);
        else if (s && strcasecmp(s, "fetch") == 0)
            kg_api_bits_set(&r->apis, KG_API_FETCH);
        else
            return kg_errf(err, errlen, "field \"apis[%zu]\" must be \"produce\" or \"fetch\"", i);
    }
    return 0;
}

static int parse_corrupt(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    static const char *const hows[] = {"append", "overwrite", NULL};
    static const char *const crcs[] = {"valid", "invalid", NULL};
    if (parse_on(r, in, true, err, errlen) != 0) return -1;
    long long bytes = 8;
    if (get_int(in, "bytes", 1, MAX_CORRUPT_BYTES, &bytes, err, errlen) < 0) return -1;
    r->bytes = (uint32_t)bytes;
    int how = get_choice(in, "how", hows, 0, err, errlen);
    if (how < 0) return -1;
    r->overwrite = how == 1;
    int crc = get_choice(in, "crc", crcs, 0, err, errlen);
    if (crc < 0) return -1;
    r->crc_valid = crc == 0;
    return 0;
}

static int parse_schema_id(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    if (parse_on(r, in, true, err, errlen) != 0) return -1;
    long long id = -1;
    if (get_int(in, "schema_id", INT32_MIN, INT32_MAX, &id, err, errlen) < 0) return -1;
    if (!json_object_get(in, "schema_id"))
        return kg_errf(err, errlen, "field \"schema_id\" is required");
    r->schema_id = (int32_t)id;
    return 0;
}

static int parse_direction(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    static const char *const dirs[] = {"both", "upstream", "downstream", NULL};
    int d = get_choice(in, "direction", dirs, 0, err, errlen);
    if (d < 0) return -1;
    r->tcp.directions = d == 0   ? (KG_CHAOS_UPSTREAM | KG_CHAOS_DOWNSTREAM)
                        : d == 1 ? KG_CHAOS_UPSTREAM
                                 : KG_CHAOS_DOWNSTREAM;
    return 0;
}

static int require_int(json_t *in, const char *key, long long lo, long long hi, long long *out,
                       char *err, size_t errlen)
{
    int rc = get_int(in, key, lo, hi, out, err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) return kg_errf(err, errlen, "field \"%s\" is required", key);
    return 0;
}

static int parse_tcp(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    long long v;
    if (json_object_get(in, "topic") || json_object_get(in, "api"))
        return kg_errf(err, errlen,
                       "field \"%s\": %s acts on whole connections, not on topics or APIs",
                       json_object_get(in, "topic") ? "topic" : "api", kg_chaos_type_name(r->type));
    if (parse_direction(r, in, err, errlen) != 0) return -1;
    switch (r->type) {
    case KG_CHAOS_DOWN:
        r->tcp.faults = KG_CHAOS_TCP_DOWN;
        return 0;
    case KG_CHAOS_RESET:
        v = 0;
        if (get_int(in, "after_ms", 0, 24LL * 3600 * 1000, &v, err, errlen) < 0) return -1;
        r->tcp.faults = KG_CHAOS_TCP_RESET;
        r->tcp.reset_after_ms = (uint32_t)v;
        return 0;
    case KG_CHAOS_TIMEOUT:
        r->tcp.faults = KG_CHAOS_TCP_TIMEOUT;
        return 0;
    case KG_CHAOS_BANDWIDTH:
        if (require_int(in, "kib_per_s", 1, 10LL * 1024 * 1024, &v, err, errlen) != 0) return -1;
        r->tcp.faults = KG_CHAOS_TCP_BANDWIDTH;
        r->tcp.bandwidth_kib = (uint32_t)v;
        return 0;
    case KG_CHAOS_SLICER:
        v = 64;
        if (get_int(in, "bytes", 1, 1024 * 1024, &v, err, errlen) < 0) return -1;
        r->tcp.slice_bytes = (uint32_t)v;
        v = 0;
        if (get_int(in, "delay_us", 0, 10LL * 1000 * 1000, &v, err, errlen) < 0) return -1;
        r->tcp.slice_delay_us = (uint32_t)v;
        r->tcp.faults = KG_CHAOS_TCP_SLICER;
        return 0;
    case KG_CHAOS_LIMIT_DATA:
        if (require_int(in, "bytes", 1, INT64_MAX, &v, err, errlen) != 0) return -1;
        r->tcp.faults = KG_CHAOS_TCP_LIMIT_DATA;
        r->tcp.limit_bytes = (uint64_t)v;
        return 0;
    default:
        return kg_errf(err, errlen, "field \"type\": not a TCP fault");
    }
}

static int parse_params(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    long long v;
    switch (r->type) {
    case KG_CHAOS_BROKEN_BROKERS:
        return parse_broken_brokers(r, in, err, errlen);
    case KG_CHAOS_LEADER_ELECTION:
        return parse_leader_election(r, in, err, errlen);
    case KG_CHAOS_LATENCY:
        if (require_int(in, "delay_ms", 0, MAX_DELAY_MS, &v, err, errlen) != 0) return -1;
        r->min_us = r->max_us = (uint64_t)v * 1000;
        return parse_on(r, in, false, err, errlen);
    case KG_CHAOS_SLOW_BROKER:
        if (r->broker < 0)
            return kg_errf(err, errlen, "field \"broker\" is required: the broker id to slow down");
        return parse_range(r, in, err, errlen);
    case KG_CHAOS_SLOW_CLIENTS:
        return parse_slow_clients(r, in, err, errlen);
    case KG_CHAOS_CORRUPT_RECORDS:
        return parse_corrupt(r, in, err, errlen);
    case KG_CHAOS_DUPLICATE_RECORDS:
        return parse_on(r, in, true, err, errlen);
    case KG_CHAOS_INVALID_SCHEMA_ID:
        return parse_schema_id(r, in, err, errlen);
    case KG_CHAOS_AUTH_FAILURE:
        return 0;
    default:
        return parse_tcp(r, in, err, errlen);
    }
}

/* ---------------------------------------------------------------- the whole rule */

static int check_fields(json_t *in, const type_info *t, bool from_store, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        if (in_list(common_fields, key) || in_list(t->params, key)) continue;
        if (from_store && in_list(stored_fields, key)) continue;
        return kg_errf(err, errlen, "unknown field \"%s\" for type %s", key, t->name);
    }
    return 0;
}

static int check_id(const char *id, char *err, size_t errlen)
{
    size_t n = strlen(id);
    if (n == 0 || n >= KG_CHAOS_ID_MAX) goto bad;
    for (const char *p = id; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') goto bad;
    return 0;
bad:
    return kg_errf(err, errlen, "field \"id\" must be 1 to %d letters, digits, '-', '_' or '.'",
                   KG_CHAOS_ID_MAX - 1);
}

/* The narrowing "api" field must leave the type something to act on. */
static int apply_api_field(kg_chaos_rule *r, json_t *in, char *err, size_t errlen)
{
    kg_api_bits wanted, own;
    bool given;
    if (parse_api_field(in, &wanted, &given, err, errlen) != 0) return -1;
    type_apis(r, &own);
    if (given) {
        own.w[0] &= wanted.w[0];
        own.w[1] &= wanted.w[1];
        if (!kg_api_bits_any(&own))
            return kg_errf(err, errlen, "field \"api\": %s does not act on any of these APIs",
                           kg_chaos_type_name(r->type));
    }
    r->apis = own;
    return 0;
}

kg_chaos_rule *kg_chaos_rule_parse(json_t *in, bool from_store, int64_t now_ms, char *err,
                                   size_t errlen)
{
    if (!json_is_object(in)) {
        kg_errf(err, errlen, "a rule must be a JSON object");
        return NULL;
    }
    const char *type_name = json_string_value(json_object_get(in, "type"));
    kg_chaos_type type;
    if (!json_object_get(in, "type")) {
        kg_errf(err, errlen, "field \"type\" is required");
        return NULL;
    }
    if (!type_name || kg_chaos_type_parse(type_name, &type) != 0) {
        kg_errf(err, errlen,
                "field \"type\": unknown fault type \"%s\" (broken-brokers, leader-election, "
                "latency, slow-broker, slow-clients, corrupt-records, duplicate-records, "
                "invalid-schema-id, auth-failure, down, reset, timeout, bandwidth, slicer, "
                "limit-data)",
                type_name ? type_name : "(not a string)");
        return NULL;
    }
    kg_chaos_rule *r = calloc(1, sizeof(*r));
    if (!r) {
        kg_errf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&r->refs, 1);
    r->type = type;
    r->broker = -1;
    const char *id = NULL;
    if (check_fields(in, &types[type], from_store, err, errlen) != 0 ||
        get_string(in, "id", &id, err, errlen) != 0 || (id && check_id(id, err, errlen) != 0) ||
        parse_scope(r, in, err, errlen) != 0 ||
        parse_expiry(r, in, from_store, now_ms, err, errlen) != 0 ||
        parse_params(r, in, err, errlen) != 0 || apply_api_field(r, in, err, errlen) != 0) {
        kg_chaos_rule_unref(r);
        return NULL;
    }
    if (id) snprintf(r->id, sizeof(r->id), "%s", id);
    r->from_config = from_store && json_is_string(json_object_get(in, "source")) &&
                     strcmp(json_string_value(json_object_get(in, "source")), "config") == 0;
    r->json = json_deep_copy(in);
    if (!r->json) {
        kg_errf(err, errlen, "out of memory");
        kg_chaos_rule_unref(r);
        return NULL;
    }
    return r;
}

void kg_chaos_rule_finish(kg_chaos_rule *r, const char *id, bool from_config)
{
    char when[40];
    snprintf(r->id, sizeof(r->id), "%s", id);
    r->from_config = from_config;
    json_object_set_new(r->json, "id", json_string(r->id));
    json_object_del(r->json, "for");
    if (!json_object_get(r->json, "rate")) json_object_set_new(r->json, "rate", json_integer(100));
    kg_time_format_ms(r->created_ms, when, sizeof(when));
    json_object_set_new(r->json, "created_at", json_string(when));
    if (r->expires_ms) {
        kg_time_format_ms(r->expires_ms, when, sizeof(when));
        json_object_set_new(r->json, "expires_at", json_string(when));
    } else {
        json_object_del(r->json, "expires_at");
    }
    json_object_set_new(r->json, "source", json_string(from_config ? "config" : "api"));
}

json_t *kg_chaos_rule_to_json(const kg_chaos_rule *r)
{
    json_t *out = json_deep_copy(r->json);
    if (!out) return NULL;
    json_object_set_new(out, "matched",
                        json_integer((json_int_t)atomic_load_explicit(
                            &((kg_chaos_rule *)r)->matched, memory_order_relaxed)));
    json_object_set_new(out, "injected",
                        json_integer((json_int_t)atomic_load_explicit(
                            &((kg_chaos_rule *)r)->injected, memory_order_relaxed)));
    return out;
}
