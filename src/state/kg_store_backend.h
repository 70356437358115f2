/* kg_store_backend — what a storage backend of kg_store implements (private to src/state).
 *
 * The generic layer (kg_store.c) owns the mutex, the transactions' shape, the audit hashing and
 * verification; a backend (kg_store_sqlite.c, kg_store_pg.c) implements only primitive reads
 * and writes, and its own schema migrations at open. */
#ifndef KG_STORE_BACKEND_H
#define KG_STORE_BACKEND_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "state/kg_store.h"
#include "util/kg_err.h"

#define KG_STORE_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* One audit row as the backend stores it: every field is text except seq. */
typedef struct audit_row {
    int64_t seq;
    const char *ts;
    const char *type;
    const char *details; /* canonical JSON text */
    const char *prev_hash;
    const char *hash;
} audit_row;

typedef int (*audit_row_fn)(void *arg, const audit_row *row);
typedef int (*doc_fn)(void *arg, const char *id, const char *body);
/* Every document of every kind, for migrate-state. */
typedef int (*doc_row_fn)(void *arg, const char *kind, const char *id, const char *body,
                          const char *created_ts, const char *updated_ts);

/* Primitive operations of a backend. Return 0 ok, -1 error unless stated. The generic layer
 * holds the store mutex around every call, so backends need no locking of their own. */
typedef struct kg_store_backend {
    const char *name;
    void (*close)(void *be);
    const char *(*errmsg)(void *be);
    /* Schema version the open applied or found. */
    int (*schema_version)(void *be);
    /* Write transaction, taking the write lock up front: every writer (of any instance sharing
     * the store) is serialized from here to commit/rollback. */
    int (*begin)(void *be);
    int (*commit)(void *be);
    void (*rollback)(void *be);
    /* 0 found, 1 not found. Inside a transaction the row stays locked until its end. */
    int (*get_vcluster)(void *be, const char *vc, char *active, size_t len, uint64_t *epoch);
    int (*put_vcluster)(void *be, const char *vc, const char *active, uint64_t epoch,
                        const char *ts);
    json_t *(*list_vclusters)(void *be);
    /* Inside a switch's transaction: tell other instances at commit (NULL: nothing to tell). */
    int (*notify_switch)(void *be, const char *vc);
    /* Inside a switch's transaction, before the state is written (NULL: no guard): a fleet's
     * planned switchover (fleet/kg_fleet_planned.h). HOLD_ID 0 (any other switch): refused
     * while a planned switch of VC holds; HOLD_ID > 0: that hold's 'holding' -> 'switched',
     * refused when it is no longer holding or a live instance has not acknowledged it.
     * 0 go on, 2 refused (WHY), -1 error. */
    int (*switch_guard)(void *be, const char *vc, int64_t hold_id, char *why, size_t len);
    /* 0 found, 1 no head yet */
    int (*get_head)(void *be, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1]);
    int (*put_head)(void *be, int64_t last_seq, const char *hash);
    int (*insert_audit)(void *be, const audit_row *row);
    /* Calls FN for each row in ascending seq: rows with seq > AFTER (TAIL = 0) or the last
     * LIMIT rows (TAIL = 1). Stops early when FN returns non-zero. */
    int (*scan_audit)(void *be, int64_t after, int limit, int tail, audit_row_fn fn, void *arg);
    /* seq of a row whose hash is HASH: 0 found, 1 not found */
    int (*find_audit_hash)(void *be, const char *hash, int64_t *seq);
    /* Inserts (with CREATED_TS) or replaces the body (keeping created_ts). */
    int (*put_doc)(void *be, const char *kind, const char *id, const char *body,
                   const char *created_ts, const char *updated_ts);
    /* 0 found (*BODY malloc'd), 1 not found */
    int (*get_doc)(void *be, const char *kind, const char *id, char **body);
    /* 0 deleted, 1 not found */
    int (*delete_doc)(void *be, const char *kind, const char *id);
    int (*list_docs)(void *be, const char *kind, doc_fn fn, void *arg);
    int (*scan_all_docs)(void *be, doc_row_fn fn, void *arg);
    /* users: one row per (name, mechanism); CRED is {mechanism, salt, iterations, stored_key,
     * server_key, created_ts?}; created_ts is kept when the row exists, else CRED's or TS */
    int (*put_user_cred)(void *be, const char *name, json_t *cred, const char *ts);
    /* 0 deleted, 1 not found */
    int (*delete_user)(void *be, const char *name, const char *mechanism);
    json_t *(*list_users)(void *be);
    /* ACL bindings: one row per binding, every field of it in the key. put: 0 inserted, 1
     * already there; delete: 0 deleted, 1 not found */
    int (*put_acl)(void *be, json_t *acl, const char *ts);
    int (*delete_acl)(void *be, json_t *acl);
    json_t *(*list_acls)(void *be);
    /* admin API tokens: put: 0 inserted, 1 name exists; delete: 0 deleted, 1 not found */
    int (*put_token)(void *be, json_t *token, const char *ts);
    int (*delete_token)(void *be, const char *name);
    json_t *(*list_tokens)(void *be);
    /* Rows of state (vclusters, audit entries, documents, users, ACLs, tokens); -1 error. */
    int64_t (*count_rows)(void *be);
    /* Inside a transaction: deletes every row of state, the audit head included. */
    int (*wipe)(void *be);
} kg_store_backend;

extern const kg_store_backend kg_store_sqlite_backend;
extern const kg_store_backend kg_store_pg_backend;

/* Open a backend, creating or migrating its schema. NULL with a message in ERR on failure. */
void *kg_store_sqlite_open(const char *path, char *err, size_t errlen);
void *kg_store_pg_open(const char *url, const kg_store_options *opts, char *err, size_t errlen);
/* The PostgreSQL URL of an open backend with its password removed (for logs and the fleet
 * module's own connection it is the original: see kg_store_pg_conninfo). */
const char *kg_store_pg_be_conninfo(void *be);

/* The seven key columns of an ACL row, in the order the backends bind them. */
extern const char *const kg_store_acl_fields[7];

#endif
