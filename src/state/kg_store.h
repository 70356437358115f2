/* kg_store — kgate's durable state behind one interface: the active side and epoch of every
 * virtual cluster, a tamper-evident audit log, and generic JSON documents (chaos rules,
 * experiments).
 *
 * The interface is backend-neutral: kg_store_open() picks a backend from the location string
 * ("sqlite:PATH" or a plain path today; a PostgreSQL URL later). The audit chain (hashing,
 * verification) is computed above the backend, so every backend produces and verifies the same
 * chain.
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

/* Opens (creating when needed) the store at LOCATION: "sqlite:PATH", or PATH for SQLite.
 * SQLite runs in WAL mode with synchronous=FULL: a committed switch survives power loss.
 * Returns NULL with a message in ERR on failure. */
kg_store *kg_store_open(const char *location, char *err, size_t errlen);
void kg_store_close(kg_store *store);

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
 * -1 error (nothing written). */
int kg_store_commit_switch(kg_store *store, const char *vcluster, const char *active,
                           uint64_t epoch, const char *audit_type, json_t *audit_details);

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
