/* Scope matching (connection facts, topics, rates) and the TCP faults of a connection.
 *
 * This is the hot path of every request a rule could act on: no allocation unless a name is
 * longer than the stack buffer, and regexes run only for rules that have one. */
#include <stdlib.h>
#include <string.h>

#include "chaos/kg_chaos_internal.h"

#define SLICE_STACK 512

bool kg_chaos_regex_slice(const regex_t *re, const char *s, size_t len)
{
    char stack[SLICE_STACK];
    char *buf = len < sizeof(stack) ? stack : malloc(len + 1);
    if (!buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* A name with an embedded NUL cannot equal what the pattern was written against. */
    bool ok = strlen(buf) == len && regexec(re, buf, 0, NULL, 0) == 0;
    if (buf != stack) free(buf);
    return ok;
}

bool kg_chaos_match_topic(const kg_chaos_rule *rule, kp_str topic)
{
    if (!rule->has_topic) return true;
    if (topic.len < 0 || !topic.ptr) return false; /* unknown (e.g. an unlearned topic id) */
    return kg_chaos_regex_slice(&rule->topic_re, topic.ptr, (size_t)topic.len);
}

static bool str_eq(const char *want, const char *have)
{
    return have && strcmp(want, have) == 0;
}

bool kg_chaos_match_conn(const kg_chaos_set *set, const kg_chaos_rule *rule,
                         const kg_chaos_conn *conn)
{
    if (rule->vcluster && !str_eq(rule->vcluster, conn->vcluster)) return false;
    if (rule->broker >= 0 && conn->node_id != rule->broker) return false;
    if (rule->principal && !str_eq(rule->principal, conn->principal)) return false;
    if (rule->has_client) {
        if (conn->client_id.len < 0 || !conn->client_id.ptr) return false;
        if (!kg_chaos_regex_slice(&rule->client_re, conn->client_id.ptr,
                                  (size_t)conn->client_id.len))
            return false;
    }
    if (rule->group) {
        char group[256];
        if (!set || !set->owner ||
            !kg_chaos_lookup_group(set->owner, conn->vcluster, conn->client_id, group,
                                   sizeof(group)) ||
            strcmp(group, rule->group) != 0)
            return false;
    }
    return true;
}

static _Thread_local uint64_t fallback_rng;

uint64_t *kg_chaos_rng(const kg_chaos_conn *conn)
{
    if (conn && conn->rng) return conn->rng;
    if (!fallback_rng) fallback_rng = (uint64_t)(uintptr_t)&fallback_rng ^ 0x9e3779b97f4a7c15u;
    return &fallback_rng;
}

bool kg_chaos_roll(const kg_chaos_rule *rule, uint64_t *rng)
{
    if (rule->rate_ppm >= KG_CHAOS_RATE_ONE) return true;
    if (rule->rate_ppm == 0) return false;
    return kp_rand_below(rng, KG_CHAOS_RATE_ONE) < rule->rate_ppm;
}

uint64_t kg_chaos_random_between(uint64_t *rng, uint64_t lo, uint64_t hi)
{
    if (hi <= lo) return lo;
    return lo + kp_rand_next(rng) % (hi - lo + 1);
}

void kg_chaos_count_injected(kg_chaos_rule *rule)
{
    atomic_fetch_add_explicit(&rule->injected, 1, memory_order_relaxed);
    kg_counter_inc(rule->metric);
}

static void count_matched(kg_chaos_rule *rule)
{
    atomic_fetch_add_explicit(&rule->matched, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- pre-filter */

bool kg_chaos_request_wanted(const kg_chaos_set *set, const kg_chaos_conn *conn, int16_t api_key,
                             int16_t api_version)
{
    if (!set || set->n == 0 || !kg_api_bits_has(&set->apis, api_key)) return false;
    for (int i = 0; i < set->n; i++) {
        const kg_chaos_rule *r = set->rules[i];
        if (!kg_api_bits_has(&r->apis, api_key)) continue;
        /* The group is checked in kg_chaos_on_request: it needs the shared map's lock. */
        if (r->vcluster && !str_eq(r->vcluster, conn->vcluster)) continue;
        if (r->broker >= 0 && conn->node_id != r->broker) continue;
        if (r->principal && !str_eq(r->principal, conn->principal)) continue;
        if (r->has_client && (conn->client_id.len < 0 || !conn->client_id.ptr ||
                              !kg_chaos_regex_slice(&r->client_re, conn->client_id.ptr,
                                                    (size_t)conn->client_id.len)))
            continue;
        return true;
    }
    return false;
}

/* ---------------------------------------------------------------- TCP faults */

/* Merges one rule's fault into OUT: the first rule of each kind sets its parameters. */
static void merge_tcp(kg_chaos_tcp *out, const kg_chaos_tcp *in)
{
    unsigned fresh = in->faults & ~out->faults;
    if (fresh & KG_CHAOS_TCP_RESET) out->reset_after_ms = in->reset_after_ms;
    if (fresh & KG_CHAOS_TCP_BANDWIDTH) out->bandwidth_kib = in->bandwidth_kib;
    if (fresh & KG_CHAOS_TCP_SLICER) {
        out->slice_bytes = in->slice_bytes;
        out->slice_delay_us = in->slice_delay_us;
    }
    if (fresh & KG_CHAOS_TCP_LIMIT_DATA) out->limit_bytes = in->limit_bytes;
    out->faults |= in->faults;
    if (in->faults & (KG_CHAOS_TCP_TIMEOUT | KG_CHAOS_TCP_BANDWIDTH | KG_CHAOS_TCP_SLICER |
                      KG_CHAOS_TCP_LIMIT_DATA))
        out->directions |= in->directions;
}

bool kg_chaos_tcp_faults(const kg_chaos_set *set, const kg_chaos_conn *conn, kg_chaos_tcp *out)
{
    memset(out, 0, sizeof(*out));
    if (!set || !set->has_tcp) return false;
    uint64_t *rng = kg_chaos_rng(conn);
    for (int i = 0; i < set->n; i++) {
        kg_chaos_rule *r = set->rules[i];
        if (!kg_chaos_type_is_tcp(r->type) || !kg_chaos_match_conn(set, r, conn)) continue;
        count_matched(r);
        if (!kg_chaos_roll(r, rng)) continue;
        merge_tcp(out, &r->tcp);
        kg_chaos_count_injected(r);
    }
    return out->faults != 0;
}

bool kg_chaos_auth_fails(const kg_chaos_set *set, const kg_chaos_conn *conn)
{
    if (!set || set->n == 0) return false;
    bool fail = false;
    for (int i = 0; i < set->n && !fail; i++) {
        kg_chaos_rule *r = set->rules[i];
        if (r->type != KG_CHAOS_AUTH_FAILURE || !kg_chaos_match_conn(set, r, conn)) continue;
        count_matched(r);
        if (!kg_chaos_roll(r, kg_chaos_rng(conn))) continue;
        kg_chaos_count_injected(r);
        fail = true;
    }
    return fail;
}

void kg_chaos_count_matched(kg_chaos_rule *rule)
{
    count_matched(rule);
}
