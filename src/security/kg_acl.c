/* kg_acl — see kg_acl.h. */
#include "security/kg_acl.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/kg_store.h"
#include "util/kg_log.h"

/* ---------------------------------------------------------------- names */

static const char *const op_names[KG_ACL_N_OPS] = {
    "All",      "Read",          "Write",           "Create",       "Delete",         "Alter",
    "Describe", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite"};
static const char *const resource_names[KG_ACL_N_RESOURCES] = {"topic", "group", "cluster",
                                                               "transactional_id"};
static const char *const pattern_names[KG_ACL_N_PATTERNS] = {"literal", "prefixed"};
static const char *const permission_names[KG_ACL_N_PERMISSIONS] = {"allow", "deny"};

/* Compares ignoring case, '_' and '-': "DESCRIBE_CONFIGS" is "DescribeConfigs". */
static int loose_equal(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_' || *a == '-')
            a++;
        while (*b == '_' || *b == '-')
            b++;
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
        a++;
        b++;
    }
}

static int lookup(const char *s, const char *const *names, int n)
{
    if (!s || !*s) return -1;
    for (int i = 0; i < n; i++)
        if (loose_equal(s, names[i])) return i;
    return -1;
}

int kg_acl_parse_op(const char *s)
{
    return lookup(s, op_names, KG_ACL_N_OPS);
}

int kg_acl_parse_resource(const char *s)
{
    return lookup(s, resource_names, KG_ACL_N_RESOURCES);
}

int kg_acl_parse_pattern(const char *s)
{
    return lookup(s, pattern_names, KG_ACL_N_PATTERNS);
}

int kg_acl_parse_permission(const char *s)
{
    return lookup(s, permission_names, KG_ACL_N_PERMISSIONS);
}

const char *kg_acl_op_name(kg_acl_op op)
{
    return (unsigned)op < KG_ACL_N_OPS ? op_names[op] : "?";
}

const char *kg_acl_resource_name(kg_acl_resource r)
{
    return (unsigned)r < KG_ACL_N_RESOURCES ? resource_names[r] : "?";
}

const char *kg_acl_pattern_name(kg_acl_pattern p)
{
    return (unsigned)p < KG_ACL_N_PATTERNS ? pattern_names[p] : "?";
}

const char *kg_acl_permission_name(kg_acl_permission p)
{
    return (unsigned)p < KG_ACL_N_PERMISSIONS ? permission_names[p] : "?";
}

#define B(op) KG_ACL_OP_BIT(KG_ACL_##op)
#define ALL_OPS ((1u << KG_ACL_N_OPS) - 1u)

unsigned kg_acl_ops_of(kg_acl_resource r)
{
    switch (r) {
    case KG_ACL_TOPIC:
        return B(ALL) | B(READ) | B(WRITE) | B(CREATE) | B(DELETE) | B(ALTER) | B(DESCRIBE) |
               B(DESCRIBE_CONFIGS) | B(ALTER_CONFIGS);
    case KG_ACL_GROUP:
        return B(ALL) | B(READ) | B(DESCRIBE) | B(DELETE);
    case KG_ACL_CLUSTER:
        return B(ALL) | B(CREATE) | B(CLUSTER_ACTION) | B(DESCRIBE_CONFIGS) | B(ALTER_CONFIGS) |
               B(IDEMPOTENT_WRITE) | B(ALTER) | B(DESCRIBE);
    case KG_ACL_TRANSACTIONAL_ID:
        return B(ALL) | B(DESCRIBE) | B(WRITE);
    default:
        return 0;
    }
}

unsigned kg_acl_parse_op_list(const char *list, char *err, size_t errlen)
{
    unsigned mask = 0;
    const char *p = list ? list : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char word[32];
        if (n == 0 || n >= sizeof(word)) {
            snprintf(err, errlen, "operation: a comma-separated list of operations expected");
            return 0;
        }
        memcpy(word, p, n);
        word[n] = '\0';
        int op = kg_acl_parse_op(word);
        if (op < 0) {
            snprintf(err, errlen,
                     "operation: unknown operation '%s' (All, Read, Write, Create, Delete, Alter, "
                     "Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite)",
                     word);
            return 0;
        }
        mask |= KG_ACL_OP_BIT(op);
        if (!comma) break;
        p = comma + 1;
    }
    return mask;
}

/* ---------------------------------------------------------------- bindings */

/* Text for a name or principal: no control characters, no DEL; UTF-8 passes as bytes. */
static int clean_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

static int check_principal(const char *p, char *err, size_t errlen)
{
    size_t n = strnlen(p, KG_ACL_PRINCIPAL_MAX);
    if (n >= KG_ACL_PRINCIPAL_MAX || strncmp(p, "User:", 5) != 0 || n == 5 || !clean_text(p) ||
        p[5] == ' ' || p[n - 1] == ' ') {
        snprintf(err, errlen,
                 "principal: \"User:NAME\" or \"User:*\" expected (at most %d bytes, no control "
                 "characters)",
                 KG_ACL_PRINCIPAL_MAX - 1);
        return -1;
    }
    return 0;
}

int kg_acl_canonical_host(const char *host, char out[KG_ACL_HOST_MAX])
{
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    if (!host) return -1;
    if (strcmp(host, KG_ACL_WILDCARD) == 0) {
        snprintf(out, KG_ACL_HOST_MAX, "%s", KG_ACL_WILDCARD);
        return 0;
    }
    if ((inet_pton(AF_INET, host, addr) == 1 && inet_ntop(AF_INET, addr, text, sizeof(text))) ||
        (inet_pton(AF_INET6, host, addr) == 1 && inet_ntop(AF_INET6, addr, text, sizeof(text)))) {
        snprintf(out, KG_ACL_HOST_MAX, "%s", text);
        return 0;
    }
    return -1;
}

/* "*" or an IP address, rewritten as inet_ntop writes it ("::1", not "0:0::1"). */
static int check_host(char *host, char *err, size_t errlen)
{
    char out[KG_ACL_HOST_MAX];
    if (kg_acl_canonical_host(host, out) < 0) {
        snprintf(err, errlen, "host: \"*\" or an IPv4/IPv6 address expected");
        return -1;
    }
    memcpy(host, out, KG_ACL_HOST_MAX);
    return 0;
}

int kg_acl_binding_check(kg_acl_binding *b, char *err, size_t errlen)
{
    if ((unsigned)b->resource >= KG_ACL_N_RESOURCES || (unsigned)b->pattern >= KG_ACL_N_PATTERNS ||
        (unsigned)b->op >= KG_ACL_N_OPS || (unsigned)b->permission >= KG_ACL_N_PERMISSIONS) {
        snprintf(err, errlen, "binding out of range");
        return -1;
    }
    /* Fixed-size fields filled by a caller: make sure they end. */
    b->principal[KG_ACL_PRINCIPAL_MAX - 1] = b->host[KG_ACL_HOST_MAX - 1] =
        b->name[KG_ACL_NAME_MAX - 1] = '\0';
    if (check_principal(b->principal, err, errlen) < 0) return -1;
    if (!b->host[0]) snprintf(b->host, sizeof(b->host), "%s", KG_ACL_WILDCARD);
    if (check_host(b->host, err, errlen) < 0) return -1;
    size_t n = strlen(b->name);
    if (n == 0 && b->resource == KG_ACL_CLUSTER) {
        snprintf(b->name, sizeof(b->name), "%s", KG_ACL_CLUSTER_NAME);
        n = strlen(b->name);
    }
    if (n == 0 || n >= KG_ACL_NAME_MAX || !clean_text(b->name)) {
        snprintf(err, errlen,
                 "resource_name: 1-%d bytes expected, no control characters (\"*\" for every "
                 "name)",
                 KG_ACL_NAME_MAX - 1);
        return -1;
    }
    if (b->resource == KG_ACL_CLUSTER &&
        (strcmp(b->name, KG_ACL_CLUSTER_NAME) != 0 || b->pattern != KG_ACL_LITERAL)) {
        snprintf(err, errlen, "resource_name: the cluster is the literal \"%s\"",
                 KG_ACL_CLUSTER_NAME);
        return -1;
    }
    if (b->pattern == KG_ACL_PREFIXED && strcmp(b->name, KG_ACL_WILDCARD) == 0) {
        snprintf(err, errlen,
                 "resource_name: \"*\" with pattern_type prefixed would match names starting "
                 "with '*'; use a literal \"*\" for every name");
        return -1;
    }
    if (!(kg_acl_ops_of(b->resource) & KG_ACL_OP_BIT(b->op))) {
        snprintf(err, errlen, "operation: %s does not apply to a %s", kg_acl_op_name(b->op),
                 kg_acl_resource_name(b->resource));
        return -1;
    }
    return 0;
}

static const char *const binding_keys[] = {"principal",     "permission",   "resource_type",
                                           "resource_name", "pattern_type", "host",
                                           "operation",     "operations",   NULL};

/* A string field, copied into OUT; 0 absent (OUT untouched), 1 copied, -1 wrong (ERR set). */
static int string_field(const json_t *obj, const char *key, char *out, size_t cap, char *err,
                        size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v) return 0;
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "%s: a string of at most %zu bytes expected", key, cap - 1);
        return -1;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

/* An enumerated field through PARSE; -1 with ERR listing CHOICES when bad. */
static int enum_field(const json_t *obj, const char *key, int (*parse)(const char *), int dflt,
                      const char *choices, char *err, size_t errlen)
{
    char text[64];
    int rc = string_field(obj, key, text, sizeof(text), err, errlen);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (dflt < 0) snprintf(err, errlen, "%s: required (%s)", key, choices);
        return dflt;
    }
    int v = parse(text);
    if (v < 0) snprintf(err, errlen, "%s: %s expected, not \"%s\"", key, choices, text);
    return v;
}

static unsigned ops_field(const json_t *obj, char *err, size_t errlen)
{
    json_t *one = json_object_get(obj, "operation");
    json_t *many = json_object_get(obj, "operations");
    if ((one != NULL) == (many != NULL)) {
        snprintf(err, errlen, "give one of operation (a string) or operations (a list)");
        return 0;
    }
    if (one) {
        if (!json_is_string(one)) {
            snprintf(err, errlen, "operation: a string expected (e.g. \"Write\")");
            return 0;
        }
        return kg_acl_parse_op_list(json_string_value(one), err, errlen);
    }
    if (!json_is_array(many) || json_array_size(many) == 0) {
        snprintf(err, errlen, "operations: a non-empty list of operation names expected");
        return 0;
    }
    unsigned mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(many, i, v)
    {
        int op = json_is_string(v) ? kg_acl_parse_op(json_string_value(v)) : -1;
        if (op < 0) {
            snprintf(err, errlen, "operations[%zu]: unknown operation", i);
            return 0;
        }
        mask |= KG_ACL_OP_BIT(op);
    }
    return mask;
}

int kg_acl_bindings_from_json(const json_t *obj, kg_acl_binding out[KG_ACL_N_OPS], char *err,
                              size_t errlen)
{
    if (!json_is_object(obj)) {
        snprintf(err, errlen, "a binding is an object");
        return -1;
    }
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        int known = 0;
        for (int i = 0; binding_keys[i]; i++)
            known |= strcmp(key, binding_keys[i]) == 0;
        if (!known) {
            snprintf(err, errlen, "%s: unknown field", key);
            return -1;
        }
    }
    kg_acl_binding b;
    memset(&b, 0, sizeof(b));
    if (string_field(obj, "principal", b.principal, sizeof(b.principal), err, errlen) <= 0) {
        if (!json_object_get(obj, "principal"))
            snprintf(err, errlen, "principal: required (\"User:NAME\" or \"User:*\")");
        return -1;
    }
    if (string_field(obj, "host", b.host, sizeof(b.host), err, errlen) < 0) return -1;
    if (string_field(obj, "resource_name", b.name, sizeof(b.name), err, errlen) < 0) return -1;
    int perm =
        enum_field(obj, "permission", kg_acl_parse_permission, -1, "allow or deny", err, errlen);
    int res = perm < 0 ? -1
                       : enum_field(obj, "resource_type", kg_acl_parse_resource, -1,
                                    "topic, group, cluster or transactional_id", err, errlen);
    int pat = res < 0 ? -1
                      : enum_field(obj, "pattern_type", kg_acl_parse_pattern, KG_ACL_LITERAL,
                                   "literal or prefixed", err, errlen);
    if (pat < 0) return -1;
    if (!b.name[0] && res != KG_ACL_CLUSTER) {
        snprintf(err, errlen, "resource_name: required (\"*\" for every name)");
        return -1;
    }
    unsigned ops = ops_field(obj, err, errlen);
    if (!ops) return -1;
    b.permission = (kg_acl_permission)perm;
    b.resource = (kg_acl_resource)res;
    b.pattern = (kg_acl_pattern)pat;
    int n = 0;
    for (int op = 0; op < KG_ACL_N_OPS; op++) {
        if (!(ops & KG_ACL_OP_BIT(op))) continue;
        out[n] = b;
        out[n].op = (kg_acl_op)op;
        if (kg_acl_binding_check(&out[n], err, errlen) < 0) return -1;
        n++;
    }
    return n;
}

json_t *kg_acl_binding_to_json(const kg_acl_binding *b)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "principal", b->principal, "host",
                     b->host, "resource_type", kg_acl_resource_name(b->resource), "resource_name",
                     b->name, "pattern_type", kg_acl_pattern_name(b->pattern), "operation",
                     kg_acl_op_name(b->op), "permission", kg_acl_permission_name(b->permission));
}

int kg_acl_binding_from_row(const json_t *row, kg_acl_binding *out, char *err, size_t errlen)
{
    kg_acl_binding b;
    memset(&b, 0, sizeof(b));
    if (!json_is_object(row) ||
        string_field(row, "principal", b.principal, sizeof(b.principal), err, errlen) <= 0 ||
        string_field(row, "host", b.host, sizeof(b.host), err, errlen) <= 0 ||
        string_field(row, "resource_name", b.name, sizeof(b.name), err, errlen) <= 0) {
        snprintf(err, errlen, "a stored binding lacks a field");
        return -1;
    }
    int res = enum_field(row, "resource_type", kg_acl_parse_resource, -1, "a type", err, errlen);
    int pat = enum_field(row, "pattern_type", kg_acl_parse_pattern, -1, "a pattern", err, errlen);
    int op = enum_field(row, "operation", kg_acl_parse_op, -1, "an operation", err, errlen);
    int perm =
        enum_field(row, "permission", kg_acl_parse_permission, -1, "a permission", err, errlen);
    if (res < 0 || pat < 0 || op < 0 || perm < 0) return -1;
    b.resource = (kg_acl_resource)res;
    b.pattern = (kg_acl_pattern)pat;
    b.op = (kg_acl_op)op;
    b.permission = (kg_acl_permission)perm;
    if (kg_acl_binding_check(&b, err, errlen) < 0) return -1;
    *out = b;
    return 0;
}

int kg_acl_binding_equal(const kg_acl_binding *a, const kg_acl_binding *b)
{
    return a->resource == b->resource && a->pattern == b->pattern && a->op == b->op &&
           a->permission == b->permission && strcmp(a->principal, b->principal) == 0 &&
           strcmp(a->host, b->host) == 0 && strcmp(a->name, b->name) == 0;
}

int kg_acl_filter_matches(const kg_acl_filter *f, const kg_acl_binding *b)
{
    if (!f) return 1;
    return (!f->principal || strcmp(f->principal, b->principal) == 0) &&
           (!f->host || strcmp(f->host, b->host) == 0) &&
           (f->resource < 0 || f->resource == (int)b->resource) &&
           (!f->name || strcmp(f->name, b->name) == 0) &&
           (f->pattern < 0 || f->pattern == (int)b->pattern) &&
           (!f->ops || (f->ops & KG_ACL_OP_BIT(b->op))) &&
           (f->permission < 0 || f->permission == (int)b->permission);
}

/* ---------------------------------------------------------------- snapshots */

/* One binding as the decision reads it. PRINCIPAL / HOST NULL: the wildcard. MASK: the
 * operations it decides, with Kafka's implications folded in for ALLOW. */
typedef struct acl_entry {
    const char *principal;
    const char *host;
    const char *name;
    size_t name_len;
    unsigned mask;
    int deny;
} acl_entry;

enum { SLOT_LITERAL, SLOT_WILDCARD, SLOT_PREFIXED, N_SLOTS };

typedef struct acl_slot {
    acl_entry *e; /* SLOT_LITERAL: sorted by name */
    int n;
} acl_slot;

struct kg_acl_set {
    atomic_int refs;
    kg_acl_binding *bindings; /* the entries point into these */
    int n;
    acl_slot slots[KG_ACL_N_RESOURCES][N_SLOTS];
    acl_entry *storage;
};

static unsigned mask_of(const kg_acl_binding *b)
{
    if (b->op == KG_ACL_ALL) return ALL_OPS;
    unsigned m = KG_ACL_OP_BIT(b->op);
    if (b->permission == KG_ACL_DENY) return m;
    switch (b->op) {
    case KG_ACL_READ:
    case KG_ACL_WRITE:
    case KG_ACL_DELETE:
    case KG_ACL_ALTER:
        return m | B(DESCRIBE);
    case KG_ACL_ALTER_CONFIGS:
        return m | B(DESCRIBE_CONFIGS);
    default:
        return m;
    }
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : an < bn ? -1 : an > bn ? 1 : 0;
}

static int entry_cmp(const void *x, const void *y)
{
    const acl_entry *a = x, *b = y;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int slot_of(const kg_acl_binding *b)
{
    if (b->pattern == KG_ACL_PREFIXED) return SLOT_PREFIXED;
    return strcmp(b->name, KG_ACL_WILDCARD) == 0 ? SLOT_WILDCARD : SLOT_LITERAL;
}

kg_acl_set *kg_acl_set_new(const kg_acl_binding *bindings, int n)
{
    if (n < 0) n = 0;
    kg_acl_set *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->bindings = calloc((size_t)(n ? n : 1), sizeof(*s->bindings));
    s->storage = calloc((size_t)(n ? n : 1), sizeof(*s->storage));
    if (!s->bindings || !s->storage) {
        free(s->bindings);
        free(s->storage);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    if (n) memcpy(s->bindings, bindings, sizeof(*bindings) * (size_t)n);
    s->n = n;
    /* Count per (type, slot), lay the slots out in one array, then fill. */
    int count[KG_ACL_N_RESOURCES][N_SLOTS] = {{0}};
    for (int i = 0; i < n; i++)
        count[s->bindings[i].resource][slot_of(&s->bindings[i])]++;
    acl_entry *next = s->storage;
    for (int r = 0; r < KG_ACL_N_RESOURCES; r++)
        for (int k = 0; k < N_SLOTS; k++) {
            s->slots[r][k].e = next;
            next += count[r][k];
        }
    for (int i = 0; i < n; i++) {
        const kg_acl_binding *b = &s->bindings[i];
        acl_slot *slot = &s->slots[b->resource][slot_of(b)];
        slot->e[slot->n++] = (acl_entry){
            .principal = strcmp(b->principal, KG_ACL_WILDCARD_PRINCIPAL) == 0 ? NULL : b->principal,
            .host = strcmp(b->host, KG_ACL_WILDCARD) == 0 ? NULL : b->host,
            .name = b->name,
            .name_len = strlen(b->name),
            .mask = mask_of(b),
            .deny = b->permission == KG_ACL_DENY,
        };
    }
    for (int r = 0; r < KG_ACL_N_RESOURCES; r++)
        qsort(s->slots[r][SLOT_LITERAL].e, (size_t)s->slots[r][SLOT_LITERAL].n, sizeof(acl_entry),
              entry_cmp);
    return s;
}

int kg_acl_set_count(const kg_acl_set *s)
{
    return s ? s->n : 0;
}

static void set_free(kg_acl_set *s)
{
    free(s->bindings);
    free(s->storage);
    free(s);
}

void kg_acl_release(kg_acl_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) set_free(s);
}

/* What one entry says about the request: 0 nothing, 1 allows, 2 denies. */
static inline int judge(const acl_entry *e, const char *principal, const char *host, unsigned bit)
{
    if (!(e->mask & bit)) return 0;
    if (e->principal && (!principal || strcmp(e->principal, principal) != 0)) return 0;
    if (e->host && (!host || strcmp(e->host, host) != 0)) return 0;
    return e->deny ? 2 : 1;
}

int kg_acl_allowed(const kg_acl_set *s, const char *principal, const char *host,
                   kg_acl_resource type, const char *name, size_t name_len, kg_acl_op op)
{
    if (!s || (unsigned)type >= KG_ACL_N_RESOURCES || (unsigned)op >= KG_ACL_N_OPS) return 0;
    if (!name) name_len = 0;
    const unsigned bit = KG_ACL_OP_BIT(op);
    const acl_slot *slots = s->slots[type];
    int allowed = 0;
    /* Wildcard and prefixed bindings: a scan (few, in practice). */
    for (int k = SLOT_WILDCARD; k <= SLOT_PREFIXED; k++) {
        const acl_slot *slot = &slots[k];
        for (int i = 0; i < slot->n; i++) {
            const acl_entry *e = &slot->e[i];
            if (k == SLOT_PREFIXED &&
                (e->name_len > name_len || memcmp(e->name, name, e->name_len) != 0))
                continue;
            int v = judge(e, principal, host, bit);
            if (v == 2) return 0;
            allowed |= v;
        }
    }
    /* Literal bindings: binary search for the first entry of NAME, then its run. */
    const acl_slot *lit = &slots[SLOT_LITERAL];
    int lo = 0, hi = lit->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (name_cmp(lit->e[mid].name, lit->e[mid].name_len, name, name_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = lo;
         i < lit->n && name_cmp(lit->e[i].name, lit->e[i].name_len, name, name_len) == 0; i++) {
        int v = judge(&lit->e[i], principal, host, bit);
        if (v == 2) return 0;
        allowed |= v;
    }
    return allowed;
}

/* The slots of bindings that name resources (not the wildcard). */
static const int named_slots[] = {SLOT_LITERAL, SLOT_PREFIXED};

/* 1 when a DENY binding matching PRINCIPAL/HOST/BIT covers ALLOW's pattern (a literal one
 * when !PREFIXED): a DENY literal of the same name, or a DENY prefix its name starts with. */
static int deny_covers(const acl_slot *slots, const char *principal, const char *host, unsigned bit,
                       const acl_entry *allow, int prefixed)
{
    for (int n = 0; n < 2; n++) {
        int k = named_slots[n];
        const acl_slot *slot = &slots[k];
        for (int i = 0; i < slot->n; i++) {
            const acl_entry *d = &slot->e[i];
            if (judge(d, principal, host, bit) != 2) continue;
            if (k == SLOT_LITERAL
                    ? !prefixed && name_cmp(d->name, d->name_len, allow->name, allow->name_len) == 0
                    : d->name_len <= allow->name_len &&
                          memcmp(d->name, allow->name, d->name_len) == 0)
                return 1;
        }
    }
    return 0;
}

int kg_acl_allowed_any(const kg_acl_set *s, const char *principal, const char *host,
                       kg_acl_resource type, kg_acl_op op)
{
    if (!s || (unsigned)type >= KG_ACL_N_RESOURCES || (unsigned)op >= KG_ACL_N_OPS) return 0;
    const unsigned bit = KG_ACL_OP_BIT(op);
    const acl_slot *slots = s->slots[type];
    int wildcard_allow = 0;
    for (int i = 0; i < slots[SLOT_WILDCARD].n; i++) {
        int v = judge(&slots[SLOT_WILDCARD].e[i], principal, host, bit);
        if (v == 2) return 0;
        wildcard_allow |= v;
    }
    if (wildcard_allow) return 1;
    for (int n = 0; n < 2; n++) {
        const acl_slot *slot = &slots[named_slots[n]];
        for (int i = 0; i < slot->n; i++)
            if (judge(&slot->e[i], principal, host, bit) == 1 &&
                !deny_covers(slots, principal, host, bit, &slot->e[i],
                             named_slots[n] == SLOT_PREFIXED))
                return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the registry */

struct kg_acls {
    kg_store *store;
    /* As in kg_users: ADMIN_LOCK serializes management calls (which write SQLite); LOCK only
     * guards the swap of CURRENT, all that kg_acl_acquire takes. */
    pthread_mutex_t admin_lock;
    pthread_mutex_t lock;
    kg_acl_set *current;
};

kg_acl_set *kg_acl_acquire(kg_acls *a)
{
    pthread_mutex_lock(&a->lock);
    kg_acl_set *s = a->current;
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&a->lock);
    return s;
}

/* The store's rows as bindings (damaged rows skipped, logged); *N set. NULL on error. */
static kg_acl_binding *rows_to_bindings(json_t *rows, int *n)
{
    size_t total = json_array_size(rows);
    kg_acl_binding *out = calloc(total ? total : 1, sizeof(*out));
    if (!out) return NULL;
    *n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        char err[256];
        if (kg_acl_binding_from_row(row, &out[*n], err, sizeof(err)) == 0)
            (*n)++;
        else
            kg_warn("acls: damaged binding skipped: %s", err);
    }
    return out;
}

/* Re-reads the store and publishes a fresh snapshot (ADMIN_LOCK held). On failure the old one
 * stays. */
static int publish(kg_acls *a)
{
    json_t *rows = kg_store_list_acls(a->store);
    int n = 0;
    kg_acl_binding *b = rows ? rows_to_bindings(rows, &n) : NULL;
    json_decref(rows);
    kg_acl_set *s = b ? kg_acl_set_new(b, n) : NULL;
    free(b);
    if (!s) {
        kg_error("acls: cannot read the ACL bindings from the state store");
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    kg_acl_set *old = a->current;
    a->current = s;
    pthread_mutex_unlock(&a->lock);
    kg_acl_release(old);
    return 0;
}

kg_acls *kg_acl_registry_new(kg_store *store)
{
    kg_acls *a = calloc(1, sizeof(*a));
    if (!a) return NULL;
    a->store = store;
    pthread_mutex_init(&a->admin_lock, NULL);
    pthread_mutex_init(&a->lock, NULL);
    if (publish(a) < 0) {
        kg_acl_registry_free(a);
        return NULL;
    }
    return a;
}

void kg_acl_registry_free(kg_acls *a)
{
    if (!a) return;
    kg_acl_release(a->current);
    pthread_mutex_destroy(&a->admin_lock);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

static json_t *audit_details(const kg_acl_binding *b, const char *actor)
{
    json_t *d = kg_acl_binding_to_json(b);
    if (d) json_object_set_new(d, "actor", json_string(actor ? actor : ""));
    return d;
}

/* Stores one binding (ADMIN_LOCK held): 0 added, 1 was there, -1 error. */
static int put_one(kg_acls *a, const kg_acl_binding *b, const char *source, const char *actor)
{
    json_t *row = kg_acl_binding_to_json(b);
    json_t *audit = audit_details(b, actor);
    int rc = -1;
    if (row && audit) {
        json_object_set_new(row, "source", json_string(source));
        json_object_set_new(audit, "source", json_string(source));
        rc = kg_store_put_acl(a->store, row, "acl.create", audit);
    }
    json_decref(row);
    json_decref(audit);
    return rc;
}

static int delete_one(kg_acls *a, const kg_acl_binding *b, const char *actor)
{
    json_t *row = kg_acl_binding_to_json(b);
    json_t *audit = audit_details(b, actor);
    int rc = row && audit ? kg_store_delete_acl(a->store, row, "acl.delete", audit) : -1;
    json_decref(row);
    json_decref(audit);
    return rc;
}

int kg_acl_add(kg_acls *a, const kg_acl_binding *b, int n, const char *actor, int *created,
               char *err, size_t errlen)
{
    int added = 0, rc = 0;
    pthread_mutex_lock(&a->admin_lock);
    for (int i = 0; i < n && rc == 0; i++) {
        int r = put_one(a, &b[i], "api", actor);
        if (r < 0) {
            snprintf(err, errlen, "cannot store the binding");
            rc = -1;
        } else if (r == 0) {
            added++;
        }
    }
    if (added && publish(a) < 0 && rc == 0) {
        snprintf(err, errlen, "cannot publish the bindings");
        rc = -1;
    }
    pthread_mutex_unlock(&a->admin_lock);
    if (created) *created = added;
    if (added) kg_info("acls: %d binding(s) added by %s", added, actor ? actor : "?");
    return rc;
}

int kg_acl_remove(kg_acls *a, const kg_acl_filter *f, const char *actor, json_t **removed)
{
    json_t *gone = json_array();
    int count = 0;
    pthread_mutex_lock(&a->admin_lock);
    kg_acl_set *s = a->current; /* only management calls replace it, and we hold their lock */
    for (int i = 0; i < s->n && count >= 0; i++) {
        if (!kg_acl_filter_matches(f, &s->bindings[i])) continue;
        int rc = delete_one(a, &s->bindings[i], actor);
        if (rc < 0) count = -1;
        if (rc == 0) {
            count++;
            json_array_append_new(gone, kg_acl_binding_to_json(&s->bindings[i]));
        }
    }
    if (json_array_size(gone)) publish(a);
    pthread_mutex_unlock(&a->admin_lock);
    if (json_array_size(gone))
        kg_info("acls: %zu binding(s) removed by %s", json_array_size(gone), actor ? actor : "?");
    if (removed)
        *removed = gone;
    else
        json_decref(gone);
    return count;
}

json_t *kg_acl_list(kg_acls *a, const kg_acl_filter *f)
{
    json_t *rows = kg_store_list_acls(a->store);
    if (!rows) return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        kg_acl_binding b;
        char err[256];
        if (kg_acl_binding_from_row(row, &b, err, sizeof(err)) < 0 || !kg_acl_filter_matches(f, &b))
            continue;
        json_t *item = kg_acl_binding_to_json(&b);
        json_object_set(item, "source", json_object_get(row, "source"));
        json_object_set(item, "created_ts", json_object_get(row, "created_ts"));
        json_array_append_new(out, item);
    }
    json_decref(rows);
    return out;
}

int kg_acl_check_config(const json_t *bindings, char *err, size_t errlen)
{
    if (bindings && !json_is_array(bindings)) {
        snprintf(err, errlen, "acls: a list of bindings expected");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(bindings); i++) {
        kg_acl_binding b[KG_ACL_N_OPS];
        char why[256];
        if (kg_acl_bindings_from_json(json_array_get(bindings, i), b, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "acls[%zu]: %s", i, why);
            return -1;
        }
    }
    return 0;
}

int kg_acl_apply_config(kg_acls *a, const json_t *bindings, char *err, size_t errlen)
{
    size_t n_items = json_array_size(bindings);
    kg_acl_binding *want = calloc(n_items * KG_ACL_N_OPS + 1, sizeof(*want));
    if (!want) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n_want = 0;
    for (size_t i = 0; i < n_items; i++) {
        char why[256];
        int n =
            kg_acl_bindings_from_json(json_array_get(bindings, i), &want[n_want], why, sizeof(why));
        if (n < 0) {
            snprintf(err, errlen, "acls[%zu]: %s", i, why);
            free(want);
            return -1;
        }
        n_want += n;
    }
    pthread_mutex_lock(&a->admin_lock);
    json_t *rows = kg_store_list_acls(a->store);
    int rc = rows ? 0 : -1, changed = 0;
    size_t i;
    json_t *row;
    /* Bindings the file put there before and no longer has. */
    json_array_foreach(rows, i, row)
    {
        const char *source = json_string_value(json_object_get(row, "source"));
        kg_acl_binding b;
        char why[256];
        if (!source || strcmp(source, "config") != 0 ||
            kg_acl_binding_from_row(row, &b, why, sizeof(why)) < 0)
            continue;
        int keep = 0;
        for (int k = 0; k < n_want && !keep; k++)
            keep = kg_acl_binding_equal(&b, &want[k]);
        if (!keep) {
            if (delete_one(a, &b, "config") < 0) rc = -1;
            changed++;
        }
    }
    for (int k = 0; k < n_want && rc == 0; k++) {
        int r = put_one(a, &want[k], "config", "config");
        if (r < 0) rc = -1;
        if (r == 0) changed++;
    }
    if (changed && publish(a) < 0) rc = -1;
    pthread_mutex_unlock(&a->admin_lock);
    json_decref(rows);
    free(want);
    if (rc < 0)
        snprintf(err, errlen, "cannot store the ACL bindings of the configuration");
    else if (changed)
        kg_info("acls: %d change(s) from the configuration (%d binding(s) in it)", changed, n_want);
    return rc;
}
