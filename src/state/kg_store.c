/* kg_store — durable state and the audit chain. See kg_store.h.
 *
 * Layering: the generic part (this file's top and bottom) owns the mutex, the transactions'
 * shape, the audit hashing and verification; a backend (SQLite below, PostgreSQL later)
 * implements only primitive reads and writes through kg_store_backend. */
#include "state/kg_store.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util/kg_log.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define SCHEMA_VERSION 1
#define VERIFY_PAGE 512

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

/* Primitive operations of a backend. Return 0 ok, -1 error unless stated. The generic layer
 * holds the store mutex around every call, so backends need no locking of their own. */
typedef struct kg_store_backend {
    const char *name;
    void (*close)(void *be);
    const char *(*errmsg)(void *be);
    int (*begin)(void *be); /* write transaction, taking the write lock up front */
    int (*commit)(void *be);
    void (*rollback)(void *be);
    /* 0 found, 1 not found */
    int (*get_vcluster)(void *be, const char *vc, char *active, size_t len, uint64_t *epoch);
    int (*put_vcluster)(void *be, const char *vc, const char *active, uint64_t epoch,
                        const char *ts);
    json_t *(*list_vclusters)(void *be);
    /* 0 found, 1 no head yet */
    int (*get_head)(void *be, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1]);
    int (*put_head)(void *be, int64_t last_seq, const char *hash);
    int (*insert_audit)(void *be, const audit_row *row);
    /* Calls FN for each row in ascending seq: rows with seq > AFTER (TAIL = 0) or the last
     * LIMIT rows (TAIL = 1). Stops early when FN returns non-zero. */
    int (*scan_audit)(void *be, int64_t after, int limit, int tail, audit_row_fn fn, void *arg);
    /* seq of a row whose hash is HASH: 0 found, 1 not found */
    int (*find_audit_hash)(void *be, const char *hash, int64_t *seq);
    int (*put_doc)(void *be, const char *kind, const char *id, const char *body, const char *ts);
    /* 0 found (*BODY malloc'd), 1 not found */
    int (*get_doc)(void *be, const char *kind, const char *id, char **body);
    /* 0 deleted, 1 not found */
    int (*delete_doc)(void *be, const char *kind, const char *id);
    int (*list_docs)(void *be, const char *kind, doc_fn fn, void *arg);
    /* users: one row per (name, mechanism); CRED is {mechanism, salt, iterations, stored_key,
     * server_key}; created_ts is kept when the row exists */
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
} kg_store_backend;

struct kg_store {
    const kg_store_backend *ops;
    void *be;
    pthread_mutex_t lock;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* UTC, millisecond precision: "2025-01-31T12:00:00.123Z". */
static void now_iso8601(char out[32])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(tv.tv_usec / 1000) % 1000);
}

/* ======================================================================================
 * SQLite backend
 * ====================================================================================== */

typedef struct sqlite_be {
    sqlite3 *db;
} sqlite_be;

static const char *const sqlite_schema =
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
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
    "  created_ts TEXT NOT NULL, created_by TEXT NOT NULL);";

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

static int sq_put_doc(void *be, const char *kind, const char *id, const char *body, const char *ts)
{
    sqlite3_stmt *st = sq_prepare(be, "INSERT INTO docs (kind, id, body, created_ts, updated_ts)"
                                      " VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE"
                                      " SET body = excluded.body,"
                                      " updated_ts = excluded.updated_ts");
    if (!st) return -1;
    sq_bind_text(st, 1, kind);
    sq_bind_text(st, 2, id);
    sq_bind_text(st, 3, body);
    sq_bind_text(st, 4, ts);
    sq_bind_text(st, 5, ts);
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
    sq_bind_text(st, 7, ts);
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

/* The seven key columns of an ACL row, in the order the statements below bind them. */
static const char *const acl_key_fields[7] = {"principal",    "host",          "resource_type",
                                              "pattern_type", "resource_name", "operation",
                                              "permission"};

static int sq_put_acl(void *be, json_t *acl, const char *ts)
{
    sqlite_be *s = be;
    sqlite3_stmt *st = sq_prepare(
        s, "INSERT INTO acls (principal, host, resource_type, pattern_type, resource_name,"
           " operation, permission, source, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
           " ON CONFLICT DO NOTHING");
    if (!st) return -1;
    for (int i = 0; i < 7; i++)
        sq_bind_text(st, i + 1, json_string_value(json_object_get(acl, acl_key_fields[i])));
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
        sq_bind_text(st, i + 1, json_string_value(json_object_get(acl, acl_key_fields[i])));
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
            json_object_set_new(row, acl_key_fields[i], json_string(column_text_or_empty(st, i)));
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

static const kg_store_backend sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .errmsg = sq_errmsg,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .get_vcluster = sq_get_vcluster,
    .put_vcluster = sq_put_vcluster,
    .list_vclusters = sq_list_vclusters,
    .get_head = sq_get_head,
    .put_head = sq_put_head,
    .insert_audit = sq_insert_audit,
    .scan_audit = sq_scan_audit,
    .find_audit_hash = sq_find_audit_hash,
    .put_doc = sq_put_doc,
    .get_doc = sq_get_doc,
    .delete_doc = sq_delete_doc,
    .list_docs = sq_list_docs,
    .put_user_cred = sq_put_user_cred,
    .delete_user = sq_delete_user,
    .list_users = sq_list_users,
    .put_acl = sq_put_acl,
    .delete_acl = sq_delete_acl,
    .list_acls = sq_list_acls,
    .put_token = sq_put_token,
    .delete_token = sq_delete_token,
    .list_tokens = sq_list_tokens,
};

/* Refuses a file written by a newer kgate instead of silently misreading it. */
static int sq_check_schema_version(sqlite_be *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = sq_prepare(s, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (!st) {
        set_err(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    int rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? atoi(column_text_or_empty(st, 0)) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        set_err(err, errlen, "cannot read schema version: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    if (version > SCHEMA_VERSION) {
        set_err(err, errlen, "state schema version %d is newer than this kgate's (%d)", version,
                SCHEMA_VERSION);
        return -1;
    }
    if (version == 0 &&
        sq_exec(s, "INSERT INTO meta (key, value) VALUES ('schema_version', '1')") != 0) {
        set_err(err, errlen, "cannot write schema version: %s", sqlite3_errmsg(s->db));
        return -1;
    }
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
        set_err(err, errlen, "cannot enable WAL journal mode (got %s): %s", mode ? mode : "none",
                sqlite3_errmsg(s->db));
        free(mode);
        return -1;
    }
    free(mode);
    if (sq_exec(s, "PRAGMA synchronous=FULL") != 0 || sq_exec(s, sqlite_schema) != 0) {
        set_err(err, errlen, "cannot initialise the schema: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    return sq_check_schema_version(s, err, errlen);
}

static void *sq_open(const char *path, char *err, size_t errlen)
{
    sqlite_be *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    /* NOMUTEX: kg_store's own mutex serializes every use of the connection. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        set_err(err, errlen, "cannot open %s: %s", path,
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

/* ======================================================================================
 * Generic layer
 * ====================================================================================== */

kg_store *kg_store_open(const char *location, char *err, size_t errlen)
{
    if (!location || !*location) {
        set_err(err, errlen, "empty state location");
        return NULL;
    }
    if (strncmp(location, "postgres://", 11) == 0 || strncmp(location, "postgresql://", 13) == 0) {
        set_err(err, errlen, "PostgreSQL state is not supported by this build");
        return NULL;
    }
    const char *path = strncmp(location, "sqlite:", 7) == 0 ? location + 7 : location;
    kg_store *store = calloc(1, sizeof(*store));
    if (!store) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    store->ops = &sqlite_backend;
    store->be = sq_open(path, err, errlen);
    if (!store->be) {
        free(store);
        return NULL;
    }
    pthread_mutex_init(&store->lock, NULL);
    return store;
}

void kg_store_close(kg_store *store)
{
    if (!store) return;
    store->ops->close(store->be);
    pthread_mutex_destroy(&store->lock);
    free(store);
}

static void store_lock(kg_store *store)
{
    pthread_mutex_lock(&store->lock);
}

static void store_unlock(kg_store *store)
{
    pthread_mutex_unlock(&store->lock);
}

char *kg_store_canonical_json(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static void hex_encode(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int sha256_hex(const char *data, size_t len, char out[KG_STORE_HASH_HEX + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1 || digest_len != 32)
        return -1;
    hex_encode(digest, digest_len, out);
    return 0;
}

/* hash = SHA-256(canonical JSON of [seq, ts, type, details, prev_hash]). DETAILS_TEXT is parsed
 * and re-canonicalised, so a backend that stores JSON in another layout still verifies.
 * Returns -1 when the details are not JSON (which verification reports as an edit). */
static int audit_hash(int64_t seq, const char *ts, const char *type, const char *details_text,
                      const char *prev_hash, char out[KG_STORE_HASH_HEX + 1])
{
    json_t *details = json_loads(details_text, JSON_DECODE_ANY, NULL);
    if (!details) return -1;
    json_t *arr = json_pack("[I, s, s, o, s]", (json_int_t)seq, ts, type, details, prev_hash);
    char *text = arr ? kg_store_canonical_json(arr) : NULL;
    json_decref(arr);
    if (!text) return -1;
    int rc = sha256_hex(text, strlen(text), out);
    free(text);
    return rc;
}

/* Head of the chain; an empty chain has seq 0 and the zero hash. Caller holds the lock. */
static int read_head(kg_store *store, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1])
{
    int rc = store->ops->get_head(store->be, last_seq, hash);
    if (rc == 1) {
        *last_seq = 0;
        memcpy(hash, ZERO_HASH, KG_STORE_HASH_HEX + 1);
        return 0;
    }
    return rc;
}

/* Appends one entry inside the caller's transaction. Caller holds the lock. */
static int append_in_tx(kg_store *store, const char *type, json_t *details)
{
    int64_t last_seq;
    char prev_hash[KG_STORE_HASH_HEX + 1];
    if (read_head(store, &last_seq, prev_hash) != 0) return -1;
    json_t *empty = details ? NULL : json_object();
    char *details_text = kg_store_canonical_json(details ? details : empty);
    json_decref(empty);
    if (!details_text) {
        kg_error("store: audit details of \"%s\" cannot be encoded as JSON", type);
        return -1;
    }
    char ts[32];
    now_iso8601(ts);
    audit_row row = {.seq = last_seq + 1,
                     .ts = ts,
                     .type = type,
                     .details = details_text,
                     .prev_hash = prev_hash};
    char hash[KG_STORE_HASH_HEX + 1];
    int rc = audit_hash(row.seq, ts, type, details_text, prev_hash, hash);
    row.hash = hash;
    if (rc == 0) rc = store->ops->insert_audit(store->be, &row);
    if (rc == 0) rc = store->ops->put_head(store->be, row.seq, hash);
    free(details_text);
    return rc;
}

/* Runs the end of a write transaction: commit when RC is 0 (or 1: nothing to write, but
 * nothing went wrong), roll back otherwise. Returns the final result. */
static int finish_tx(kg_store *store, int rc)
{
    if (rc == 0) {
        if (store->ops->commit(store->be) == 0) return 0;
        rc = -1;
    }
    store->ops->rollback(store->be);
    return rc;
}

int kg_store_audit_append(kg_store *store, const char *type, json_t *details)
{
    if (!store || !type || !*type) return -1;
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = append_in_tx(store, type, details);
    rc = finish_tx(store, rc);
    store_unlock(store);
    return rc;
}

int kg_store_get_vcluster(kg_store *store, const char *vcluster, char *active, size_t active_len,
                          uint64_t *epoch)
{
    if (!store || !vcluster) return -1;
    store_lock(store);
    int rc = store->ops->get_vcluster(store->be, vcluster, active, active_len, epoch);
    store_unlock(store);
    return rc;
}

json_t *kg_store_list_vclusters(kg_store *store)
{
    if (!store) return NULL;
    store_lock(store);
    json_t *arr = store->ops->list_vclusters(store->be);
    store_unlock(store);
    return arr;
}

/* 0 when EPOCH may be written over the stored state, 1 when it is stale. Caller holds lock. */
static int check_epoch_advances(kg_store *store, const char *vcluster, uint64_t epoch)
{
    uint64_t stored = 0;
    int rc = store->ops->get_vcluster(store->be, vcluster, NULL, 0, &stored);
    if (rc < 0) return -1;
    return rc == 0 && stored >= epoch ? 1 : 0;
}

int kg_store_commit_switch(kg_store *store, const char *vcluster, const char *active,
                           uint64_t epoch, const char *audit_type, json_t *audit_details)
{
    if (!store || !vcluster || !*vcluster || !active || !*active) return -1;
    char ts[32];
    now_iso8601(ts);
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = check_epoch_advances(store, vcluster, epoch);
    if (rc == 0) rc = store->ops->put_vcluster(store->be, vcluster, active, epoch, ts);
    if (rc == 0)
        rc = append_in_tx(store, audit_type && *audit_type ? audit_type : "switch", audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* stale epoch: nothing was written */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    if (rc == 1)
        kg_warn("store: switch of %s to epoch %" PRIu64 " refused: stored epoch is newer", vcluster,
                epoch);
    return rc;
}

int kg_store_audit_head(kg_store *store, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1])
{
    if (!store || !last_seq) return -1;
    char buf[KG_STORE_HASH_HEX + 1];
    store_lock(store);
    int rc = read_head(store, last_seq, buf);
    store_unlock(store);
    if (rc == 0 && hash) memcpy(hash, buf, sizeof(buf));
    return rc;
}

static json_t *row_to_json(const audit_row *row)
{
    json_t *details = json_loads(row->details, JSON_DECODE_ANY, NULL);
    /* A row edited into invalid JSON is still listed (verify reports it), as a string. */
    if (!details) details = json_string(row->details);
    return json_pack("{s:I, s:s, s:s, s:o, s:s, s:s}", "seq", (json_int_t)row->seq, "ts", row->ts,
                     "type", row->type, "details", details, "prev_hash", row->prev_hash, "hash",
                     row->hash);
}

static int collect_row(void *arg, const audit_row *row)
{
    json_t *entry = row_to_json(row);
    if (!entry) return -1;
    json_array_append_new(arg, entry);
    return 0;
}

json_t *kg_store_audit_list(kg_store *store, int64_t after_seq, int limit)
{
    if (!store) return NULL;
    if (limit <= 0) limit = 100;
    json_t *arr = json_array();
    store_lock(store);
    int tail = after_seq < 0;
    int rc = store->ops->scan_audit(store->be, tail ? 0 : after_seq, limit, tail, collect_row, arr);
    store_unlock(store);
    if (rc != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ---- verification ---- */

typedef struct verify_state {
    kg_store *store;
    int64_t expected_seq;
    char expected_prev[KG_STORE_HASH_HEX + 1];
    int64_t checked;
    int broken;
    int error;
    int64_t bad_seq;
    const char *reason;
    char message[256];
} verify_state;

static void verify_fail(verify_state *v, int64_t seq, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void verify_fail(verify_state *v, int64_t seq, const char *reason, const char *fmt, ...)
{
    v->broken = 1;
    v->bad_seq = seq;
    v->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
}

/* The row does not link to its predecessor. Classify: its prev_hash names another row (rows
 * were moved), or the row is intact and so its predecessor was rewritten, or it was itself
 * edited. */
static void classify_broken_link(verify_state *v, const audit_row *row, int content_ok)
{
    int64_t linked_seq = 0;
    int found = v->store->ops->find_audit_hash(v->store->be, row->prev_hash, &linked_seq);
    if (found < 0) {
        v->error = 1;
        return;
    }
    if (found == 0 && linked_seq != row->seq - 1) {
        verify_fail(v, row->seq, "reordered",
                    "entry %" PRId64 " follows entry %" PRId64 " in the chain, not entry %" PRId64,
                    row->seq, linked_seq, row->seq - 1);
    } else if (content_ok && row->seq > 1) {
        verify_fail(v, row->seq - 1, "edited",
                    "entry %" PRId64 " was rewritten: entry %" PRId64
                    " recorded a different hash for it",
                    row->seq - 1, row->seq);
    } else {
        verify_fail(v, row->seq, "edited",
                    "entry %" PRId64 " was modified: its contents and link do not match its hash",
                    row->seq);
    }
}

/* "entry 5 is" or "entries 5 to 7 are", for messages. */
static void format_range(int64_t first, int64_t last, char *out, size_t len)
{
    if (first == last)
        snprintf(out, len, "entry %" PRId64 " is", first);
    else
        snprintf(out, len, "entries %" PRId64 " to %" PRId64 " are", first, last);
}

static int verify_row(void *arg, const audit_row *row)
{
    verify_state *v = arg;
    char computed[KG_STORE_HASH_HEX + 1];
    int content_ok =
        audit_hash(row->seq, row->ts, row->type, row->details, row->prev_hash, computed) == 0 &&
        strcmp(computed, row->hash) == 0;
    if (row->seq != v->expected_seq) {
        char range[64];
        format_range(v->expected_seq, row->seq - 1, range, sizeof(range));
        verify_fail(v, v->expected_seq, "deleted", "%s missing", range);
    } else if (strcmp(row->prev_hash, v->expected_prev) != 0) {
        classify_broken_link(v, row, content_ok);
    } else if (!content_ok) {
        verify_fail(v, row->seq, "edited",
                    "entry %" PRId64 " was modified: its hash does not match its contents",
                    row->seq);
    }
    if (v->broken || v->error) return 1;
    v->checked++;
    v->expected_seq = row->seq + 1;
    snprintf(v->expected_prev, sizeof(v->expected_prev), "%s", row->hash);
    return 0;
}

/* After the last row: the head record must point at it, or the tail was cut or extended. */
static void verify_head(verify_state *v)
{
    int64_t head_seq;
    char head_hash[KG_STORE_HASH_HEX + 1];
    int rc = v->store->ops->get_head(v->store->be, &head_seq, head_hash);
    if (rc < 0) {
        v->error = 1;
        return;
    }
    int64_t last_seq = v->expected_seq - 1;
    if (rc == 1) {
        if (last_seq > 0) verify_fail(v, 1, "edited", "the chain head record is missing");
        return;
    }
    if (head_seq > last_seq) {
        char range[64];
        format_range(last_seq + 1, head_seq, range, sizeof(range));
        verify_fail(v, last_seq + 1, "deleted", "%s missing at the end of the log", range);
    } else if (head_seq < last_seq) {
        char range[64];
        format_range(head_seq + 1, last_seq, range, sizeof(range));
        verify_fail(v, head_seq + 1, "inserted", "%s after the chain head: added outside kgate",
                    range);
    } else if (strcmp(head_hash, v->expected_prev) != 0) {
        verify_fail(v, last_seq, "edited",
                    "entry %" PRId64 " was rewritten: the chain head recorded a different hash",
                    last_seq);
    }
}

static json_t *verify_report(const verify_state *v)
{
    if (v->broken)
        return json_pack("{s:b, s:I, s:I, s:s, s:s}", "intact", 0, "entries_checked",
                         (json_int_t)v->checked, "first_bad_seq", (json_int_t)v->bad_seq, "reason",
                         v->reason, "message", v->message);
    return json_pack("{s:b, s:I, s:I, s:s}", "intact", 1, "entries", (json_int_t)v->checked,
                     "last_seq", (json_int_t)(v->expected_seq - 1), "last_hash", v->expected_prev);
}

int kg_store_audit_verify(kg_store *store, json_t **report)
{
    verify_state v = {.store = store, .expected_seq = 1};
    memcpy(v.expected_prev, ZERO_HASH, sizeof(v.expected_prev));
    if (!store) {
        if (report) *report = json_pack("{s:s}", "error", "no store");
        return -1;
    }
    store_lock(store);
    /* Paged so a long log is never held in memory at once; the lock keeps it consistent. */
    int64_t after = 0;
    while (!v.broken && !v.error) {
        int64_t before = v.checked;
        if (store->ops->scan_audit(store->be, after, VERIFY_PAGE, 0, verify_row, &v) != 0)
            v.error = 1;
        if (v.checked - before < VERIFY_PAGE) break;
        after = v.expected_seq - 1;
    }
    if (!v.broken && !v.error) verify_head(&v);
    const char *errmsg = v.error ? store->ops->errmsg(store->be) : NULL;
    json_t *out = v.error ? json_pack("{s:s}", "error", errmsg ? errmsg : "storage error")
                          : verify_report(&v);
    store_unlock(store);
    if (report)
        *report = out;
    else
        json_decref(out);
    return v.error ? -1 : v.broken ? 1 : 0;
}

/* ---- documents ---- */

int kg_store_put_doc(kg_store *store, const char *kind, const char *id, json_t *doc)
{
    if (!store || !kind || !id || !*id || !json_is_object(doc)) return -1;
    char *body = kg_store_canonical_json(doc);
    if (!body) return -1;
    char ts[32];
    now_iso8601(ts);
    store_lock(store);
    int rc = store->ops->put_doc(store->be, kind, id, body, ts);
    store_unlock(store);
    free(body);
    return rc;
}

json_t *kg_store_get_doc(kg_store *store, const char *kind, const char *id, int *found)
{
    int dummy;
    if (!found) found = &dummy;
    *found = -1;
    if (!store || !kind || !id) return NULL;
    char *body = NULL;
    store_lock(store);
    int rc = store->ops->get_doc(store->be, kind, id, &body);
    store_unlock(store);
    if (rc == 1) *found = 0;
    if (rc != 0) return NULL;
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    if (doc) *found = 1;
    return doc;
}

int kg_store_delete_doc(kg_store *store, const char *kind, const char *id)
{
    if (!store || !kind || !id) return -1;
    store_lock(store);
    int rc = store->ops->delete_doc(store->be, kind, id);
    store_unlock(store);
    return rc;
}

static int collect_doc(void *arg, const char *id, const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        kg_warn("store: document %s is not a JSON object, skipped", id);
        return 0;
    }
    json_object_set_new(doc, "id", json_string(id));
    json_array_append_new(arg, doc);
    return 0;
}

json_t *kg_store_list_docs(kg_store *store, const char *kind)
{
    if (!store || !kind) return NULL;
    json_t *arr = json_array();
    store_lock(store);
    int rc = store->ops->list_docs(store->be, kind, collect_doc, arr);
    store_unlock(store);
    if (rc != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

#define RULE_KIND "chaos_rule"

int kg_store_put_rule(kg_store *store, const char *id, json_t *rule)
{
    return kg_store_put_doc(store, RULE_KIND, id, rule);
}

int kg_store_delete_rule(kg_store *store, const char *id)
{
    return kg_store_delete_doc(store, RULE_KIND, id);
}

json_t *kg_store_list_rules(kg_store *store)
{
    return kg_store_list_docs(store, RULE_KIND);
}

/* ---- users ---- */

int kg_store_put_user_cred(kg_store *store, const char *name, json_t *cred, const char *audit_type,
                           json_t *audit_details)
{
    if (!store || !name || !*name || !json_is_object(cred)) return -1;
    char ts[32];
    now_iso8601(ts);
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->put_user_cred(store->be, name, cred, ts);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    rc = finish_tx(store, rc);
    store_unlock(store);
    return rc;
}

int kg_store_delete_user(kg_store *store, const char *name, const char *mechanism,
                         const char *audit_type, json_t *audit_details)
{
    if (!store || !name) return -1;
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->delete_user(store->be, name, mechanism);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* nothing to delete: nothing audited */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    return rc;
}

json_t *kg_store_list_users(kg_store *store)
{
    if (!store) return NULL;
    store_lock(store);
    json_t *arr = store->ops->list_users(store->be);
    store_unlock(store);
    return arr;
}

/* ---- ACL bindings ---- */

int kg_store_put_acl(kg_store *store, json_t *acl, const char *audit_type, json_t *audit_details)
{
    if (!store || !json_is_object(acl)) return -1;
    for (int i = 0; i < 7; i++)
        if (!json_string_value(json_object_get(acl, acl_key_fields[i]))) return -1;
    char ts[32];
    now_iso8601(ts);
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->put_acl(store->be, acl, ts);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* already there: nothing written, nothing audited */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    return rc;
}

int kg_store_delete_acl(kg_store *store, json_t *acl, const char *audit_type, json_t *audit_details)
{
    if (!store || !json_is_object(acl)) return -1;
    for (int i = 0; i < 7; i++)
        if (!json_string_value(json_object_get(acl, acl_key_fields[i]))) return -1;
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->delete_acl(store->be, acl);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* no such binding: nothing audited */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    return rc;
}

json_t *kg_store_list_acls(kg_store *store)
{
    if (!store) return NULL;
    store_lock(store);
    json_t *arr = store->ops->list_acls(store->be);
    store_unlock(store);
    return arr;
}

/* ---- admin API tokens ---- */

int kg_store_put_token(kg_store *store, json_t *token, const char *audit_type,
                       json_t *audit_details)
{
    if (!store || !json_is_object(token)) return -1;
    static const char *const required[] = {"name", "role", "hash"};
    for (int i = 0; i < 3; i++)
        if (!json_string_value(json_object_get(token, required[i]))) return -1;
    char ts[32];
    now_iso8601(ts);
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->put_token(store->be, token, ts);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* the name exists: nothing written, nothing audited */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    return rc;
}

int kg_store_delete_token(kg_store *store, const char *name, const char *audit_type,
                          json_t *audit_details)
{
    if (!store || !name) return -1;
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = store->ops->delete_token(store->be, name);
    if (rc == 0) rc = append_in_tx(store, audit_type, audit_details);
    if (rc == 1) {
        store->ops->rollback(store->be); /* no such token: nothing audited */
    } else {
        rc = finish_tx(store, rc);
    }
    store_unlock(store);
    return rc;
}

json_t *kg_store_list_tokens(kg_store *store)
{
    if (!store) return NULL;
    store_lock(store);
    json_t *arr = store->ops->list_tokens(store->be);
    store_unlock(store);
    return arr;
}
