/* kg_acl — access control lists at kgate, with Kafka's semantics (docs/security.md, "ACLs").
 *
 * A binding says: PRINCIPAL ("User:alice", or "User:*" for every principal) connecting from HOST
 * ("*" or one IP address) is ALLOWED or DENIED one OPERATION on the resources of one TYPE (topic,
 * group, cluster, transactional id) whose name matches a PATTERN: LITERAL (the exact name; the
 * name "*" matches every name of the type) or PREFIXED (every name starting with it).
 *
 * Decision (kg_acl_allowed), as a Kafka broker's authorizer decides:
 *   - a matching DENY binding wins over any ALLOW;
 *   - ALLOW of Read, Write, Delete or Alter also allows Describe; ALLOW of AlterConfigs also
 *     allows DescribeConfigs; All allows (or, as DENY, denies) every operation. Implications
 *     apply to ALLOW only: DENY Read does not deny Describe (as in Kafka);
 *   - no matching ALLOW binding: denied (default deny, for a virtual cluster with
 *     `acls: enabled`).
 * Kafka's rule that IdempotentWrite on the cluster is implied by Write on any topic needs a
 * question about a resource TYPE, not one name: kg_acl_allowed_any.
 *
 * The data plane never touches the store: it reads an immutable, reference-counted snapshot
 * (kg_acl_set), republished on every change exactly like the users' snapshot (kg_users), so a
 * change applies to the next request without a restart. The snapshot groups the bindings by
 * resource type and pattern (literal names sorted for binary search, the wildcard apart), with
 * the implications folded into per-binding operation masks: a decision allocates nothing and
 * takes no lock.
 */
#ifndef KG_ACL_H
#define KG_ACL_H

#include <jansson.h>
#include <stddef.h>

typedef struct kg_store kg_store;

typedef enum kg_acl_resource {
    KG_ACL_TOPIC = 0,
    KG_ACL_GROUP,
    KG_ACL_CLUSTER,
    KG_ACL_TRANSACTIONAL_ID,
    KG_ACL_N_RESOURCES
} kg_acl_resource;

typedef enum kg_acl_pattern {
    KG_ACL_LITERAL = 0,
    KG_ACL_PREFIXED,
    KG_ACL_N_PATTERNS
} kg_acl_pattern;

typedef enum kg_acl_op {
    KG_ACL_ALL = 0,
    KG_ACL_READ,
    KG_ACL_WRITE,
    KG_ACL_CREATE,
    KG_ACL_DELETE,
    KG_ACL_ALTER,
    KG_ACL_DESCRIBE,
    KG_ACL_CLUSTER_ACTION,
    KG_ACL_DESCRIBE_CONFIGS,
    KG_ACL_ALTER_CONFIGS,
    KG_ACL_IDEMPOTENT_WRITE,
    KG_ACL_N_OPS
} kg_acl_op;

typedef enum kg_acl_permission {
    KG_ACL_ALLOW = 0,
    KG_ACL_DENY,
    KG_ACL_N_PERMISSIONS
} kg_acl_permission;

#define KG_ACL_OP_BIT(op) (1u << (unsigned)(op))
#define KG_ACL_PRINCIPAL_MAX 256 /* bytes, with the NUL */
#define KG_ACL_HOST_MAX 64       /* an IPv6 address in text fits (46) */
#define KG_ACL_NAME_MAX 256      /* resource names: up to 255 bytes (Kafka's topics: 249) */
#define KG_ACL_WILDCARD "*"
#define KG_ACL_WILDCARD_PRINCIPAL "User:*"
#define KG_ACL_CLUSTER_NAME "kafka-cluster" /* the one cluster resource, as in Kafka */

/* One binding: one principal, host, resource pattern, operation and permission (a CLI line with
 * --operation Write,Describe makes two). Strings are canonical once parsed: host "*" or an
 * address as inet_ntop writes it. */
typedef struct kg_acl_binding {
    char principal[KG_ACL_PRINCIPAL_MAX];
    char host[KG_ACL_HOST_MAX];
    kg_acl_resource resource;
    kg_acl_pattern pattern;
    char name[KG_ACL_NAME_MAX];
    kg_acl_op op;
    kg_acl_permission permission;
} kg_acl_binding;

/* ---- names (case-insensitive on input, '_' and '-' ignored: "Write", "WRITE",
 * "describe_configs", "transactional-id"); -1 when unknown ---- */

int kg_acl_parse_op(const char *s);
int kg_acl_parse_resource(const char *s);
int kg_acl_parse_pattern(const char *s);
int kg_acl_parse_permission(const char *s);
/* Canonical names: "Write", "DescribeConfigs"; "topic", "transactional_id"; "literal",
 * "prefixed"; "allow", "deny". "?" when out of range. */
const char *kg_acl_op_name(kg_acl_op op);
const char *kg_acl_resource_name(kg_acl_resource r);
const char *kg_acl_pattern_name(kg_acl_pattern p);
const char *kg_acl_permission_name(kg_acl_permission p);
/* Bit mask of the operations a resource type has (Kafka's): e.g. a group has Read, Describe,
 * Delete (and All); an ACL for another operation is refused. */
unsigned kg_acl_ops_of(kg_acl_resource r);
/* "Write,Describe" (any case) to a mask of KG_ACL_OP_BIT()s; 0 with ERR when a name is unknown
 * or the list is empty. */
unsigned kg_acl_parse_op_list(const char *list, char *err, size_t errlen);

/* ---- bindings ---- */

/* Checks and canonicalizes B in place (principal, host, name, op valid for the type, ...).
 * 0 ok, -1 with a message in ERR. */
int kg_acl_binding_check(kg_acl_binding *b, char *err, size_t errlen);
/* Reads a binding request, the admin API's and the config file's form:
 *   {"principal": "User:alice", "permission": "allow"|"deny", "resource_type": "topic",
 *    "resource_name": "orders", "pattern_type": "literal"|"prefixed" (default literal),
 *    "host": "*" (default), "operation": "Write" | "operations": ["Write", "Describe"]}
 * (resource_name may be left out for the cluster: "kafka-cluster"). Unknown keys are errors.
 * Fills OUT with one checked binding per operation; returns how many (>= 1), or -1 with ERR. */
int kg_acl_bindings_from_json(const json_t *obj, kg_acl_binding out[KG_ACL_N_OPS], char *err,
                              size_t errlen);
/* {"principal", "host", "resource_type", "resource_name", "pattern_type", "operation",
 * "permission"}; NULL when out of memory. */
json_t *kg_acl_binding_to_json(const kg_acl_binding *b);
/* Same fields from a stored row (extra fields ignored): 0 ok, -1 with ERR. */
int kg_acl_binding_from_row(const json_t *row, kg_acl_binding *out, char *err, size_t errlen);
/* HOST ("*" or an IPv4/IPv6 address) as bindings store it (inet_ntop's text: "::1", "10.0.0.1")
 * into OUT: 0, or -1 when HOST is neither. The engine may use it on peer addresses. */
int kg_acl_canonical_host(const char *host, char out[KG_ACL_HOST_MAX]);
/* 1 when A and B are the same binding. */
int kg_acl_binding_equal(const kg_acl_binding *a, const kg_acl_binding *b);

/* Which bindings a list or a removal selects: NULL / -1 / 0 fields match anything. */
typedef struct kg_acl_filter {
    const char *principal;
    const char *host;
    int resource;     /* kg_acl_resource, or -1 */
    const char *name; /* the resource name (exact), or NULL */
    int pattern;      /* kg_acl_pattern, or -1 */
    unsigned ops;     /* mask of KG_ACL_OP_BIT()s, 0 = any */
    int permission;   /* kg_acl_permission, or -1 */
} kg_acl_filter;

#define KG_ACL_FILTER_ANY                                                                          \
    {                                                                                              \
        NULL, NULL, -1, NULL, -1, 0, -1                                                            \
    }

int kg_acl_filter_matches(const kg_acl_filter *f, const kg_acl_binding *b);

/* ---- snapshots and the decision (data plane) ---- */

typedef struct kg_acl_set kg_acl_set;

/* A snapshot of N bindings (copied; they need not be checked twice but must be valid). NULL
 * when out of memory. For the registry, tests and benchmarks; the engine gets its snapshot from
 * kg_acl_acquire. */
kg_acl_set *kg_acl_set_new(const kg_acl_binding *bindings, int n);
int kg_acl_set_count(const kg_acl_set *s);

/* Whether PRINCIPAL ("User:alice") connected from HOST (the peer address as inet_ntop writes
 * it; NULL = unknown, matching only "*" bindings) may do OP on the resource of type TYPE named
 * NAME (NAME_LEN bytes, need not be NUL-terminated; the cluster is KG_ACL_CLUSTER_NAME). 1
 * allowed, 0 denied. S NULL: denied. Thread-safe, lock-free, allocation-free. */
int kg_acl_allowed(const kg_acl_set *s, const char *principal, const char *host,
                   kg_acl_resource type, const char *name, size_t name_len, kg_acl_op op);

/* Whether PRINCIPAL from HOST may do OP on SOME resource of TYPE, as Kafka's
 * authorizeByResourceType decides (KIP-679): a DENY on the wildcard name denies; otherwise an
 * ALLOW of the wildcard, or an ALLOW pattern that no DENY covers (a DENY literal of the same
 * name, or a DENY prefix of its name), allows. Used for "Write on any topic implies
 * IdempotentWrite". 1 allowed, 0 denied. Scans the type's bindings: for rare requests only. */
int kg_acl_allowed_any(const kg_acl_set *s, const char *principal, const char *host,
                       kg_acl_resource type, kg_acl_op op);

/* ---- the registry: bindings in the state store, published as snapshots ---- */

typedef struct kg_acls kg_acls;

/* Loads the bindings of STORE (which must outlive the registry). NULL on error (logged). */
kg_acls *kg_acl_registry_new(kg_store *store);
void kg_acl_registry_free(kg_acls *a);

/* The current snapshot, held until kg_acl_release (never NULL). Cheap: a mutex-guarded pointer
 * copy and a reference count; take one per request (or per connection and refresh). */
kg_acl_set *kg_acl_acquire(kg_acls *a);
void kg_acl_release(kg_acl_set *s);

/* Adds the N bindings B (checked by the caller, e.g. kg_acl_bindings_from_json), each one
 * audited as acl.create with ACTOR unless it already existed. *CREATED (may be NULL) = how many
 * were new. Returns 0, or -1 with ERR (the ones added before the failure stay). */
int kg_acl_add(kg_acls *a, const kg_acl_binding *b, int n, const char *actor, int *created,
               char *err, size_t errlen);
/* Removes every binding F selects, each audited as acl.delete with ACTOR. Returns how many
 * (0: none matched), -1 on error; *REMOVED (may be NULL) = their JSON array. */
int kg_acl_remove(kg_acls *a, const kg_acl_filter *f, const char *actor, json_t **removed);
/* The bindings F selects (NULL: all), as kg_acl_binding_to_json plus "source" ("api" or
 * "config") and "created_ts", ordered; NULL on error. */
json_t *kg_acl_list(kg_acls *a, const kg_acl_filter *f);

/* Checks the config file's top-level `acls:` list without applying it: 0, or -1 with ERR
 * naming the bad entry ("acls[2]: ..."). */
int kg_acl_check_config(const json_t *bindings, char *err, size_t errlen);
/* The config file's top-level `acls:` list (the kg_acl_bindings_from_json form; NULL = none):
 * bindings it has that the store lacks are added with source "config"; bindings of source
 * "config" it no longer has are removed; those added through the API are left alone. Audited
 * (actor "config"). 0, or -1 with ERR naming the bad entry (nothing changed then). */
int kg_acl_apply_config(kg_acls *a, const json_t *bindings, char *err, size_t errlen);

#endif
