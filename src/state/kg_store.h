/* kg_store — kgate's durable state behind one interface: the active side and epoch of every
 * virtual cluster, a tamper-evident audit log, and generic JSON documents (chaos rules,
 * experiments).
 *
 * The interface is backend-neutral: kg_store_open() picks a backend from the location string
 * ("sqlite:PATH" or a plain path: SQLite; "postgres://..." or "postgresql://...": PostgreSQL). The
 * audit chain (hashing, verification) is computed above the backend, so every backend produces and
 * verifies the same chain.
 *
 * Every function is thread-safe: the admin thread and the engine threads share one store.
 *
 * Audit chain: each entry is {seq, ts, type, details, prev_hash, hash}; seq starts at 1 and
 * increases by one; prev_hash of the first entry is 64 '0's; hash is the lowercase hex SHA-256 of
 * the compact, key-sorted JSON text of the array [seq, ts, type, details, prev_hash] (see
 * docs/api.md). A head record {last_seq, last_hash}, written in the same transaction as each
 * entry, lets verification see a deleted tail, not only a deleted middle.
 */
#ifndef KG_STORE_H
#define KG_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kg_store kg_store;

#define KG_STORE_HASH_HEX 64 /* characters of a hex SHA-256, without the NUL */

/* How a store reaches PostgreSQL (ignored by SQLite). */
typedef struct kg_store_options {
    /* kg_store_open keeps retrying an unreachable server, with backoff, for this long before
     * failing (0: one attempt). Each attempt is bounded by libpq's connect_timeout too. */
    int connect_timeout_ms;
    /* statement_timeout of every statement (0: PostgreSQL's default, none). */
    int statement_timeout_ms;
} kg_store_options;
#define KG_STORE_OPTIONS_DEFAULT                                                                   \
    {                                                                                              \
        .connect_timeout_ms = 30000, .statement_timeout_ms = 5000                                  \
    }

/* Opens (creating when needed) the store at LOCATION and applies its schema migrations:
 *   "postgres://..." or "postgresql://..."  PostgreSQL (libpq URL; see docs/fleet.md)
 *   "sqlite:PATH" or PATH                   SQLite
 * SQLite runs in WAL mode with synchronous=FULL: a committed switch survives power loss.
 * A store whose schema is newer than this binary knows is refused.
 * Returns NULL with a message in ERR on failure (never a password). OPTS NULL: defaults. */
kg_store *kg_store_open_with(const char *location, const kg_store_options *opts, char *err,
                             size_t errlen);
kg_store *kg_store_open(const char *location, char *err, size_t errlen);
void kg_store_close(kg_store *store);

/* "sqlite" or "postgres". */
const char *kg_store_backend_name(const kg_store *store);
/* PostgreSQL: the URL the store connected with, so another module (the fleet's LISTEN) can open
 * its own connection to the same database. It holds the password when the URL did: never log
 * it (kg_store_redact_location). NULL for SQLite. */
const char *kg_store_pg_conninfo(kg_store *store);
/* Schema version of the open store (after its migrations). */
int kg_store_schema_version(kg_store *store);
/* LOCATION fit for logs: a PostgreSQL URL without its password and query, a path as is. */
void kg_store_redact_location(const char *location, char *out, size_t len);

/* Copies every row of FROM (vclusters, audit chain and head, documents, users, ACLs, tokens)
 * into TO in one transaction of TO. Refuses a broken source chain, and a TO that holds any row
 * unless FORCE (which deletes TO's rows first). Verifies TO's chain afterwards: its head must
 * be FROM's. *SUMMARY (new reference) gets {"vclusters", "audit_entries", "documents", "users",
 * "acls", "tokens", "last_seq", "head_hash"}. 0 ok, -1 refused or failed (ERR says why). */
int kg_store_copy(kg_store *from, kg_store *to, int force, json_t **summary, char *err,
                  size_t errlen);

/* ---- virtual cluster state ---- */

/* 0 found (ACTIVE and *EPOCH filled), 1 not found, -1 error. */
int kg_store_get_vcluster(kg_store *store, const char *vcluster, char *active, size_t active_len,
                          uint64_t *epoch);

/* Array of {"vcluster", "active", "epoch", "updated_ts"}, sorted by name; NULL on error. */
json_t *kg_store_list_vclusters(kg_store *store);

/* In ONE transaction: sets VCLUSTER's active side and epoch and appends the audit entry
 * AUDIT_TYPE (default "switch") with AUDIT_DETAILS (borrowed, not stolen; NULL = {}).
 * A crash at any point leaves either the old state and chain or the new state with its entry.
 * EPOCH must be greater than the stored epoch (compare-and-set, so two writers can never both
 * win): 0 committed, 1 refused because the stored epoch is already >= EPOCH (nothing written),
 * -1 error (nothing written). On PostgreSQL the transaction locks the audit head and the
 * vcluster's row (several instances share one database: exactly one of two concurrent switches
 * wins) and runs pg_notify('kgate_switch', VCLUSTER), delivered at commit. */
int kg_store_commit_switch(kg_store *store, const char *vcluster, const char *active,
                           uint64_t epoch, const char *audit_type, json_t *audit_details);
/* kg_store_commit_switch for a fleet's planned switchover (fleet/kg_fleet_planned.h): in the
 * same transaction, on PostgreSQL, HOLD_ID's hold row goes 'holding' -> 'switched' (HOLD_ID 0,
 * any other switch: refused while a planned switch of VCLUSTER holds). Returns as
 * kg_store_commit_switch, or 2: refused by the hold, WHY says why (nothing written). */
int kg_store_commit_switch_held(kg_store *store, const char *vcluster, const char *active,
                                uint64_t epoch, const char *audit_type, json_t *audit_details,
                                int64_t hold_id, char *why, size_t whylen);

/* ---- audit log ---- */

/* Appends an entry (e.g. "switch.refused", "experiment.start"); DETAILS is borrowed, NULL = {}.
 * 0 ok, -1 error. */
int kg_store_audit_append(kg_store *store, const char *type, json_t *details);

/* Entries in ascending seq order. AFTER_SEQ >= 0: the first LIMIT entries with seq > AFTER_SEQ
 * (paging forward). AFTER_SEQ < 0: the LAST limit entries. LIMIT <= 0 means 100.
 * Each entry: {"seq", "ts", "type", "details", "prev_hash", "hash"}. NULL on error. */
json_t *kg_store_audit_list(kg_store *store, int64_t after_seq, int limit);

/* Head of the chain: 0 ok (LAST_SEQ 0 and 64 '0's when empty), -1 error. HASH may be NULL. */
int kg_store_audit_head(kg_store *store, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1]);

/* Walks the whole chain. 0 intact, 1 broken, -1 error (storage failure; REPORT has "error").
 * *REPORT (new reference, caller frees) is always set:
 *   intact: {"intact": true, "entries": N, "last_seq": S, "last_hash": H}
 *   broken: {"intact": false, "entries_checked": N, "first_bad_seq": S,
 *            "reason": "edited"|"deleted"|"reordered"|"inserted", "message": "..."} */
int kg_store_audit_verify(kg_store *store, json_t **report);

/* ---- generic JSON documents, keyed by (kind, id) ---- */

/* Inserts or replaces. DOC (borrowed) must be an object. 0 ok, -1 error. */
int kg_store_put_doc(kg_store *store, const char *kind, const char *id, json_t *doc);
/* New reference, or NULL when absent (*FOUND = 0) or on error (*FOUND = -1). FOUND may be NULL. */
json_t *kg_store_get_doc(kg_store *store, const char *kind, const char *id, int *found);
/* 0 deleted, 1 not found, -1 error. */
int kg_store_delete_doc(kg_store *store, const char *kind, const char *id);
/* Array of the documents of KIND in id order, each with "id" set; NULL on error. */
json_t *kg_store_list_docs(kg_store *store, const char *kind);

/* Chaos rules are documents of kind "chaos_rule" (issue 4). */
int kg_store_put_rule(kg_store *store, const char *id, json_t *rule);
int kg_store_delete_rule(kg_store *store, const char *id);
json_t *kg_store_list_rules(kg_store *store);

/* ---- users: SASL credentials kgate manages (issue 8) ---- */

/* Inserts or replaces NAME's credential for one mechanism, CRED = {"mechanism", "salt" (base64),
 * "iterations", "stored_key", "server_key" (base64)}: salted keys only, never a password. In the
 * same transaction appends the audit entry AUDIT_TYPE with AUDIT_DETAILS (borrowed; must hold
 * no secret). 0 ok, -1 error (nothing written). */
int kg_store_put_user_cred(kg_store *store, const char *name, json_t *cred, const char *audit_type,
                           json_t *audit_details);
/* Deletes NAME's credential for MECHANISM (NULL = every mechanism: the user), audited the same
 * way. 0 deleted, 1 no such user/credential (nothing audited), -1 error. */
int kg_store_delete_user(kg_store *store, const char *name, const char *mechanism,
                         const char *audit_type, json_t *audit_details);
/* Every credential row: [{"name", "mechanism", "salt", "iterations", "stored_key", "server_key",
 * "created_ts", "updated_ts"}] sorted by name and mechanism; NULL on error. */
json_t *kg_store_list_users(kg_store *store);

/* ---- ACL bindings kgate enforces (issue 8; security/kg_acl.h) ---- */

/* Inserts the binding ACL = {"principal", "host", "resource_type", "pattern_type",
 * "resource_name", "operation", "permission" (canonical names), "source"? ("api" default or
 * "config")} and in the same transaction appends the audit entry AUDIT_TYPE with AUDIT_DETAILS
 * (borrowed). 0 inserted, 1 already there (nothing written or audited), -1 error. */
int kg_store_put_acl(kg_store *store, json_t *acl, const char *audit_type, json_t *audit_details);
/* Deletes the binding with ACL's seven key fields, audited the same way. 0 deleted, 1 no such
 * binding (nothing audited), -1 error. */
int kg_store_delete_acl(kg_store *store, json_t *acl, const char *audit_type,
                        json_t *audit_details);
/* Every binding: [{the seven fields, "source", "created_ts"}] ordered by resource type, name,
 * pattern type, principal, host, permission, operation; NULL on error. */
json_t *kg_store_list_acls(kg_store *store);

/* ---- admin API tokens (issue 8, item 6; admin/kg_admin_tokens.h) ---- */

/* Inserts TOKEN = {"name", "role", "hash" (hex SHA-256 of the secret; never the secret),
 * "created_by"} and in the same transaction appends the audit entry AUDIT_TYPE with
 * AUDIT_DETAILS (borrowed). 0 inserted, 1 the name exists (nothing written or audited), -1 error.
 */
int kg_store_put_token(kg_store *store, json_t *token, const char *audit_type,
                       json_t *audit_details);
/* Deletes the token NAME, audited the same way. 0 deleted, 1 no such token (nothing audited),
 * -1 error. */
int kg_store_delete_token(kg_store *store, const char *name, const char *audit_type,
                          json_t *audit_details);
/* Every token: [{"name", "role", "hash", "created_ts", "created_by"}] by name; NULL on error. */
json_t *kg_store_list_tokens(kg_store *store);

/* Canonical JSON text used by the audit chain: compact, keys sorted at every level. malloc'd. */
char *kg_store_canonical_json(const json_t *value);

#endif
