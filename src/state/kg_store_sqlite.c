/* kg_store_sqlite — the SQLite backend of kg_store (the embedded default). See
 * kg_store_backend.h. One file, WAL journal, synchronous=FULL: a committed switch survives power
 * loss. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state/kg_store_backend.h"
#include "util/kg_log.h"

typedef struct sqlite_be {
    sqlite3 *db;
    int schema_version;
} sqlite_be;

/* Numbered migrations: entry N-1 takes the schema from version N-1 to N. Append, never edit.
 * Migration 1 is idempotent (IF NOT EXISTS) and is also re-applied to version-1 files: before
 * migrations were numbered, users, acls and tokens were added to version 1 without a bump, so
 * an older version-1 file may lack them. */
static const char *const sqlite_migrations[] = {
    /* 1: the schema of kgate before PostgreSQL support. */
    "CREATE TABLE IF NOT EXISTS vcluster_state ("
    "  name TEXT PRIMARY KEY, active TEXT NOT NULL, epoch INTEGER NOT NULL,"
    "  updated_ts TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_log ("
    "  seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, type TEXT NOT NULL, details TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit_head ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL,"
    "  last_hash TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS docs ("
    "  kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, created_ts TEXT NOT NULL,"
    "  updated_ts TEXT NOT NULL, PRIMARY KEY (kind, id));"
    /* SASL users kgate manages: salted keys only (base64), never a password. Added without a
     * schema_version bump: older files gain the table, older kgates never look at it. */
    "CREATE TABLE IF NOT EXISTS users ("
    "  name TEXT NOT NULL, mechanism TEXT NOT NULL, salt TEXT NOT NULL,"
    "  iterations INTEGER NOT NULL, stored_key TEXT NOT NULL, server_key TEXT NOT NULL,"
    "  created_ts TEXT NOT NULL, updated_ts TEXT NOT NULL, PRIMARY KEY (name, mechanism));"
    /* ACL bindings (issue 8), names canonical (security/kg_acl.h); source is "api" or "config".
     * Added like users, without a schema_version bump. */
    "CREATE TABLE IF NOT EXISTS acls ("
    "  principal TEXT NOT NULL, host TEXT NOT NULL, resource_type TEXT NOT NULL,"
    "  pattern_type TEXT NOT NULL, resource_name TEXT NOT NULL, operation TEXT NOT NULL,"
    "  permission TEXT NOT NULL, source TEXT NOT NULL, created_ts TEXT NOT NULL,"
    "  PRIMARY KEY (principal, host, resource_type, pattern_type, resource_name, operation,"
    "  permission));"
    /* Admin API tokens (issue 8): the SHA-256 of each secret (hex), never the secret. Added
     * like users, without a schema_version bump. */
    "CREATE TABLE IF NOT EXISTS tokens ("
    "  name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,"
    "  created_ts TEXT NOT NULL, created_by TEXT NOT NULL);",
};
#define SQLITE_SCHEMA_VERSION ((int)(sizeof(sqlite_migrations) / sizeof(sqlite_migrations[0])))

static const char *sq_errmsg(void *be)
{
    return sqlite3_errmsg(((sqlite_be *)be)->db);
}

static sqlite3_stmt *sq_prepare(sqlite_be *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        kg_error("store: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(s->db));
        return NULL;
    }
    return st;
}

static void sq_bind_text(sqlite3_stmt *st, int idx, const char *text)
{
    sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
}

/* Steps a statement expected to finish without rows; finalizes it. */
static int sq_exec_stmt(sqlite_be *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) kg_error("store: sqlite: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_exec(sqlite_be *s, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        kg_error("store: \"%s\": %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void sq_close(void *be)
{
    sqlite_be *s = be;
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

static int sq_begin(void *be)
{
    return sq_exec(be, "BEGIN IMMEDIATE");
}

static int sq_commit(void *be)
{
    return sq_exec(be, "COMMIT");
}

static void sq_rollback(void *be)
{
    sqlite_be *s = be;
    if (!sqlite3_get_autocommit(s->db)) sq_exec(s, "ROLLBACK");
}

static int sq_get_vcluster(void *be, const char *vc, char *active, size_t len, uint64_t *epoch)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT active, epoch FROM vcluster_state WHERE name = ?");
    if (!st) return -1;
    sq_bind_text(st, 1, vc);
    int rc = sqlite3_step(st);
    int result = -1;
    if (rc == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(st, 0);
        if (active && len > 0) snprintf(active, len, "%s", a ? a : "");
        if (epoch) *epoch = (uint64_t)sqlite3_column_int64(st, 1);
        result = 0;
    } else if (rc == SQLITE_DONE) {
        result = 1;
    }
    sqlite3_finalize(st);
    return result;
}

static int sq_put_vcluster(void *be, const char *vc, const char *active, uint64_t epoch,
                           const char *ts)
{
    sqlite3_stmt *st = sq_prepare(be, "INSERT INTO vcluster_state (name, active, epoch, updated_ts)"
                                      " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                                      " active = excluded.active, epoch = excluded.epoch,"
                                      " updated_ts = excluded.updated_ts");
    if (!st) return -1;
    sq_bind_text(st, 1, vc);
    sq_bind_text(st, 2, active);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)epoch);
    sq_bind_text(st, 4, ts);
    return sq_exec_stmt(be, st);
}

static json_t *sq_list_vclusters(void *be)
{
    sqlite3_stmt *st =
        sq_prepare(be, "SELECT name, active, epoch, updated_ts FROM vcluster_state ORDER BY name");
    if (!st) return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:s}", "vcluster",
                                             sqlite3_column_text(st, 0), "active",
                                             sqlite3_column_text(st, 1), "epoch",
                                             (json_int_t)sqlite3_column_int64(st, 2), "updated_ts",
                                             sqlite3_column_text(st, 3)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int sq_get_head(void *be, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1])
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT last_seq, last_hash FROM audit_head WHERE id = 1");
    if (!st) return -1;
    int rc = sqlite3_step(st);
    int result = -1;
    if (rc == SQLITE_ROW) {
        *last_seq = sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(hash, KG_STORE_HASH_HEX + 1, "%s", h ? h : "");
        result = 0;
    } else if (rc == SQLITE_DONE) {
        result = 1;
    }
    sqlite3_finalize(st);
    return result;
}

static int sq_put_head(void *be, int64_t last_seq, const char *hash)
{
    sqlite3_stmt *st = sq_prepare(be, "INSERT INTO audit_head (id, last_seq, last_hash)"
                                      " VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                                      " last_seq = excluded.last_seq,"
                                      " last_hash = excluded.last_hash");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, last_seq);
    sq_bind_text(st, 2, hash);
    return sq_exec_stmt(be, st);
}

static int sq_insert_audit(void *be, const audit_row *row)
{
    sqlite3_stmt *st = sq_prepare(be, "INSERT INTO audit_log (seq, ts, type, details, prev_hash,"
                                      " hash) VALUES (?, ?, ?, ?, ?, ?)");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, row->seq);
    sq_bind_text(st, 2, row->ts);
    sq_bind_text(st, 3, row->type);
    sq_bind_text(st, 4, row->details);
    sq_bind_text(st, 5, row->prev_hash);
    sq_bind_text(st, 6, row->hash);
    return sq_exec_stmt(be, st);
}

static const char *column_text_or_empty(sqlite3_stmt *st, int col)
{
    const char *t = (const char *)sqlite3_column_text(st, col);
    return t ? t : "";
}

static int sq_scan_audit(void *be, int64_t after, int limit, int tail, audit_row_fn fn, void *arg)
{
    /* The tail query reads newest-first and re-sorts, so callers always see ascending seq. */
    const char *sql = tail ? "SELECT * FROM (SELECT seq, ts, type, details, prev_hash, hash"
                             " FROM audit_log ORDER BY seq DESC LIMIT ?) ORDER BY seq"
                           : "SELECT seq, ts, type, details, prev_hash, hash FROM audit_log"
                             " WHERE seq > ? ORDER BY seq LIMIT ?";
    sqlite3_stmt *st = sq_prepare(be, sql);
    if (!st) return -1;
    if (tail) {
        sqlite3_bind_int(st, 1, limit);
    } else {
        sqlite3_bind_int64(st, 1, after);
        sqlite3_bind_int(st, 2, limit);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        audit_row row = {
            .seq = sqlite3_column_int64(st, 0),
            .ts = column_text_or_empty(st, 1),
            .type = column_text_or_empty(st, 2),
            .details = column_text_or_empty(st, 3),
            .prev_hash = column_text_or_empty(st, 4),
            .hash = column_text_or_empty(st, 5),
        };
        if (fn(arg, &row) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_find_audit_hash(void *be, const char *hash, int64_t *seq)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT seq FROM audit_log WHERE hash = ? LIMIT 1");
    if (!st) return -1;
    sq_bind_text(st, 1, hash);
    int rc = sqlite3_step(st);
    int result = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
    if (rc == SQLITE_ROW) *seq = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return result;
}

static int sq_put_doc(void *be, const char *kind, const char *id, const char *body,
                      const char *created_ts, const char *updated_ts)
{
    sqlite3_stmt *st = sq_prepare(be, "INSERT INTO docs (kind, id, body, created_ts, updated_ts)"
                                      " VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE"
                                      " SET body = excluded.body,"
                                      " updated_ts = excluded.updated_ts");
    if (!st) return -1;
    sq_bind_text(st, 1, kind);
    sq_bind_text(st, 2, id);
    sq_bind_text(st, 3, body);
    sq_bind_text(st, 4, created_ts);
    sq_bind_text(st, 5, updated_ts);
    return sq_exec_stmt(be, st);
}

static int sq_get_doc(void *be, const char *kind, const char *id, char **body)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT body FROM docs WHERE kind = ? AND id = ?");
    if (!st) return -1;
    sq_bind_text(st, 1, kind);
    sq_bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    int result = -1;
    if (rc == SQLITE_ROW) {
        *body = strdup(column_text_or_empty(st, 0));
        result = *body ? 0 : -1;
    } else if (rc == SQLITE_DONE) {
        result = 1;
    }
    sqlite3_finalize(st);
    return result;
}

static int sq_delete_doc(void *be, const char *kind, const char *id)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(s, "DELETE FROM docs WHERE kind = ? AND id = ?");
    if (!st) return -1;
    sq_bind_text(st, 1, kind);
    sq_bind_text(st, 2, id);
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static int sq_list_docs(void *be, const char *kind, doc_fn fn, void *arg)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT id, body FROM docs WHERE kind = ? ORDER BY id");
    if (!st) return -1;
    sq_bind_text(st, 1, kind);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(arg, column_text_or_empty(st, 0), column_text_or_empty(st, 1)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int sq_put_user_cred(void *be, const char *name, json_t *cred, const char *ts)
{
    sqlite3_stmt *st = sq_prepare(
        be, "INSERT INTO users (name, mechanism, salt, iterations, stored_key, server_key,"
            " created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name, mechanism) DO UPDATE SET salt = excluded.salt,"
            " iterations = excluded.iterations, stored_key = excluded.stored_key,"
            " server_key = excluded.server_key, updated_ts = excluded.updated_ts");
    if (!st) return -1;
    sq_bind_text(st, 1, name);
    sq_bind_text(st, 2, json_string_value(json_object_get(cred, "mechanism")));
    sq_bind_text(st, 3, json_string_value(json_object_get(cred, "salt")));
    sqlite3_bind_int64(st, 4, json_integer_value(json_object_get(cred, "iterations")));
    sq_bind_text(st, 5, json_string_value(json_object_get(cred, "stored_key")));
    sq_bind_text(st, 6, json_string_value(json_object_get(cred, "server_key")));
    const char *created = json_string_value(json_object_get(cred, "created_ts"));
    sq_bind_text(st, 7, created ? created : ts);
    sq_bind_text(st, 8, ts);
    return sq_exec_stmt(be, st);
}

static int sq_delete_user(void *be, const char *name, const char *mechanism)
{
    sqlite_be *s = be;
    sqlite3_stmt *st =
        sq_prepare(s, mechanism ? "DELETE FROM users WHERE name = ? AND mechanism = ?"
                                : "DELETE FROM users WHERE name = ?");
    if (!st) return -1;
    sq_bind_text(st, 1, name);
    if (mechanism) sq_bind_text(st, 2, mechanism);
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static json_t *sq_list_users(void *be)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT name, mechanism, salt, iterations, stored_key,"
                                      " server_key, created_ts, updated_ts FROM users"
                                      " ORDER BY name, mechanism");
    if (!st) return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "name",
                           column_text_or_empty(st, 0), "mechanism", column_text_or_empty(st, 1),
                           "salt", column_text_or_empty(st, 2), "iterations",
                           (json_int_t)sqlite3_column_int64(st, 3), "stored_key",
                           column_text_or_empty(st, 4), "server_key", column_text_or_empty(st, 5),
                           "created_ts", column_text_or_empty(st, 6), "updated_ts",
                           column_text_or_empty(st, 7)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int sq_put_acl(void *be, json_t *acl, const char *ts)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(
        s, "INSERT INTO acls (principal, host, resource_type, pattern_type, resource_name,"
           " operation, permission, source, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
           " ON CONFLICT DO NOTHING");
    if (!st) return -1;
    for (int i = 0; i < 7; i++)
        sq_bind_text(st, i + 1, json_string_value(json_object_get(acl, kg_store_acl_fields[i])));
    const char *source = json_string_value(json_object_get(acl, "source"));
    sq_bind_text(st, 8, source ? source : "api");
    sq_bind_text(st, 9, ts);
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static int sq_delete_acl(void *be, json_t *acl)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(
        s, "DELETE FROM acls WHERE principal = ? AND host = ? AND resource_type = ? AND"
           " pattern_type = ? AND resource_name = ? AND operation = ? AND permission = ?");
    if (!st) return -1;
    for (int i = 0; i < 7; i++)
        sq_bind_text(st, i + 1, json_string_value(json_object_get(acl, kg_store_acl_fields[i])));
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static json_t *sq_list_acls(void *be)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT principal, host, resource_type, pattern_type,"
                                      " resource_name, operation, permission, source, created_ts"
                                      " FROM acls ORDER BY resource_type, resource_name,"
                                      " pattern_type, principal, host, permission, operation");
    if (!st) return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = json_object();
        for (int i = 0; i < 7; i++)
            json_object_set_new(row, kg_store_acl_fields[i],
                                json_string(column_text_or_empty(st, i)));
        json_object_set_new(row, "source", json_string(column_text_or_empty(st, 7)));
        json_object_set_new(row, "created_ts", json_string(column_text_or_empty(st, 8)));
        json_array_append_new(arr, row);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int sq_put_token(void *be, json_t *token, const char *ts)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(s, "INSERT INTO tokens (name, role, hash, created_ts, created_by)"
                                     " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
    if (!st) return -1;
    sq_bind_text(st, 1, json_string_value(json_object_get(token, "name")));
    sq_bind_text(st, 2, json_string_value(json_object_get(token, "role")));
    sq_bind_text(st, 3, json_string_value(json_object_get(token, "hash")));
    sq_bind_text(st, 4, ts);
    const char *by = json_string_value(json_object_get(token, "created_by"));
    sq_bind_text(st, 5, by ? by : "");
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static int sq_delete_token(void *be, const char *name)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(s, "DELETE FROM tokens WHERE name = ?");
    if (!st) return -1;
    sq_bind_text(st, 1, name);
    if (sq_exec_stmt(s, st) != 0) return -1;
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
}

static json_t *sq_list_tokens(void *be)
{
    sqlite3_stmt *st =
        sq_prepare(be, "SELECT name, role, hash, created_ts, created_by FROM tokens ORDER BY name");
    if (!st) return NULL;
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", column_text_or_empty(st, 0), "role",
                           column_text_or_empty(st, 1), "hash", column_text_or_empty(st, 2),
                           "created_ts", column_text_or_empty(st, 3), "created_by",
                           column_text_or_empty(st, 4)));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int sq_scan_all_docs(void *be, doc_row_fn fn, void *arg)
{
    sqlite3_stmt *st = sq_prepare(be, "SELECT kind, id, body, created_ts, updated_ts FROM docs"
                                      " ORDER BY kind, id");
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fn(arg, column_text_or_empty(st, 0), column_text_or_empty(st, 1),
               column_text_or_empty(st, 2), column_text_or_empty(st, 3),
               column_text_or_empty(st, 4)) != 0) {
            rc = SQLITE_ERROR;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int64_t sq_count_rows(void *be)
{
    sqlite3_stmt *st = sq_prepare(
        be, "SELECT (SELECT count(*) FROM vcluster_state) + (SELECT count(*) FROM audit_log)"
            " + (SELECT count(*) FROM docs) + (SELECT count(*) FROM users)"
            " + (SELECT count(*) FROM acls) + (SELECT count(*) FROM tokens)");
    if (!st) return -1;
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

static int sq_wipe(void *be)
{
    return sq_exec(be, "DELETE FROM vcluster_state; DELETE FROM audit_log; DELETE FROM audit_head;"
                       " DELETE FROM docs; DELETE FROM users; DELETE FROM acls;"
                       " DELETE FROM tokens");
}

static int sq_schema_version(void *be)
{
    return ((sqlite_be *)be)->schema_version;
}

const kg_store_backend kg_store_sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .errmsg = sq_errmsg,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .get_vcluster = sq_get_vcluster,
    .put_vcluster = sq_put_vcluster,
    .list_vclusters = sq_list_vclusters,
    .notify_switch = NULL, /* one process per file: nobody else to tell */
    .get_head = sq_get_head,
    .put_head = sq_put_head,
    .insert_audit = sq_insert_audit,
    .scan_audit = sq_scan_audit,
    .find_audit_hash = sq_find_audit_hash,
    .put_doc = sq_put_doc,
    .get_doc = sq_get_doc,
    .delete_doc = sq_delete_doc,
    .list_docs = sq_list_docs,
    .scan_all_docs = sq_scan_all_docs,
    .put_user_cred = sq_put_user_cred,
    .delete_user = sq_delete_user,
    .list_users = sq_list_users,
    .put_acl = sq_put_acl,
    .delete_acl = sq_delete_acl,
    .list_acls = sq_list_acls,
    .put_token = sq_put_token,
    .delete_token = sq_delete_token,
    .list_tokens = sq_list_tokens,
    .count_rows = sq_count_rows,
    .wipe = sq_wipe,
};

/* Stored schema version: 0 when the file is new (no meta row yet), -1 on error. */
static int sq_read_version(sqlite_be *s)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (!st) return -1;
    int rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? atoi(column_text_or_empty(st, 0)) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? version : -1;
}

/* Applies the missing migrations in ONE write transaction (BEGIN IMMEDIATE: a second kgate
 * opening the same file waits, then finds the work done). A file written by a newer kgate is
 * refused instead of silently misread. */
static int sq_migrate(sqlite_be *s, char *err, size_t errlen)
{
    if (sq_exec(s, "BEGIN IMMEDIATE") != 0 ||
        sq_exec(s, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)") !=
            0) {
        kg_errf(err, errlen, "cannot initialise the schema: %s", sqlite3_errmsg(s->db));
        sq_rollback(s);
        return -1;
    }
    int version = sq_read_version(s);
    if (version < 0) {
        kg_errf(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(s->db));
        sq_rollback(s);
        return -1;
    }
    if (version > SQLITE_SCHEMA_VERSION) {
        kg_errf(err, errlen,
                "state schema version %d is newer than this kgate's (%d): upgrade kgate", version,
                SQLITE_SCHEMA_VERSION);
        sq_rollback(s);
        return -1;
    }
    int from = version == 1 ? 1 : version + 1; /* see sqlite_migrations */
    for (int v = from; v <= SQLITE_SCHEMA_VERSION; v++) {
        if (sq_exec(s, sqlite_migrations[v - 1]) != 0) {
            kg_errf(err, errlen, "schema migration %d failed: %s", v, sqlite3_errmsg(s->db));
            sq_rollback(s);
            return -1;
        }
    }
    char sql[128];
    snprintf(sql, sizeof(sql),
             "INSERT INTO meta (key, value) VALUES ('schema_version', '%d')"
             " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
             SQLITE_SCHEMA_VERSION);
    if (sq_exec(s, sql) != 0 || sq_exec(s, "COMMIT") != 0) {
        kg_errf(err, errlen, "cannot write schema version: %s", sqlite3_errmsg(s->db));
        sq_rollback(s);
        return -1;
    }
    s->schema_version = SQLITE_SCHEMA_VERSION;
    return 0;
}

static int sq_configure(sqlite_be *s, char *err, size_t errlen)
{
    /* A busy timeout instead of instant SQLITE_BUSY: another process (an operator's sqlite3
     * shell, a second kgate during a restart) may briefly hold the lock. */
    sqlite3_busy_timeout(s->db, 5000);
    char *mode = NULL;
    sqlite3_stmt *st = sq_prepare(s, "PRAGMA journal_mode=WAL");
    if (st && sqlite3_step(st) == SQLITE_ROW) mode = strdup(column_text_or_empty(st, 0));
    sqlite3_finalize(st);
    /* In-memory databases (tests) report "memory": that is fine, anything else is not. */
    int mode_ok = mode && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
    if (!mode_ok) {
        kg_errf(err, errlen, "cannot enable WAL journal mode (got %s): %s", mode ? mode : "none",
                sqlite3_errmsg(s->db));
        free(mode);
        return -1;
    }
    free(mode);
    if (sq_exec(s, "PRAGMA synchronous=FULL") != 0) {
        kg_errf(err, errlen, "cannot set synchronous=FULL: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return sq_migrate(s, err, errlen);
}

void *kg_store_sqlite_open(const char *path, char *err, size_t errlen)
{
    sqlite_be *s = calloc(1, sizeof(*s));
    if (!s) {
        kg_errf(err, errlen, "out of memory");
        return NULL;
    }
    /* NOMUTEX: kg_store's own mutex serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        kg_errf(err, errlen, "cannot open %s: %s", path,
                s->db ? sqlite3_errmsg(s->db) : "out of memory");
        sq_close(s);
        return NULL;
    }
    if (sq_configure(s, err, errlen) != 0) {
        sq_close(s);
        return NULL;
    }
    return s;
}
