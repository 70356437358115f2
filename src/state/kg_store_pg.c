/* kg_store_pg — the PostgreSQL backend of kg_store (libpq): several kgate instances share one
 * database. See kg_store_backend.h and docs/fleet.md ("State store").
 *
 * Concurrency between instances: every write transaction starts by locking the audit head row
 * (SELECT ... FOR UPDATE), so writers of all instances are serialized and the audit chain stays
 * one chain; a switch also locks its vcluster's row and compare-and-sets the epoch.
 *
 * Faults: the connection is checked before each statement; a lost one is reset (PQreset), and
 * statements fail cleanly (-1) while the server is away. Reads and
 * BEGIN are retried once after a reset; other writes are not (their outcome is unknown). The
 * password never reaches a log or an error message: only the redacted URL does. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "state/kg_store_backend.h"
#include "util/kg_log.h"

/* pg_advisory_xact_lock key of schema migrations: "kgate" in ASCII. */
#define MIGRATION_LOCK_KEY "461295940709"
/* A reset that failed slowly (a server that does not answer: connect_timeout) is not tried
 * again for RESET_INTERVAL_MS, so callers do not each wait that long; a quick failure
 * (connection refused) is retried at once: the server may be back already. */
#define RESET_INTERVAL_MS 1000
#define RESET_QUICK_MS 200
#define DEFAULT_CONNECT_TIMEOUT_S "5"
/* Type OIDs of bigint and integer (pg_type.dat; fixed since PostgreSQL 7). */
#define PG_INT8_OID 20
#define PG_INT4_OID 23

/* Numbered migrations: entry N-1 takes the schema from version N-1 to N. Append, never edit.
 * Tables are named as in SQLite, so tools and tests read both alike; timestamps of state are
 * the same ISO 8601 text as in SQLite (the audit hash covers them byte for byte). */
static const char *const pg_migrations[] = {
    /* 1: the state of kgate, and the fleet's instance registry. */
    "CREATE TABLE vcluster_state ("
    "  name text PRIMARY KEY, active text NOT NULL, epoch bigint NOT NULL,"
    "  updated_ts text NOT NULL);"
    "CREATE TABLE audit_log ("
    "  seq bigint PRIMARY KEY, ts text NOT NULL, type text NOT NULL, details text NOT NULL,"
    "  prev_hash text NOT NULL, hash text NOT NULL);"
    "CREATE INDEX audit_log_hash ON audit_log (hash);"
    /* The head row always exists: writers lock it to serialize (see the file comment). */
    "CREATE TABLE audit_head ("
    "  id integer PRIMARY KEY CHECK (id = 1), last_seq bigint NOT NULL, last_hash text NOT NULL);"
    "INSERT INTO audit_head VALUES (1, 0, '" KG_STORE_ZERO_HASH "');"
    "CREATE TABLE docs ("
    "  kind text NOT NULL, id text NOT NULL, body text NOT NULL, created_ts text NOT NULL,"
    "  updated_ts text NOT NULL, PRIMARY KEY (kind, id));"
    "CREATE TABLE users ("
    "  name text NOT NULL, mechanism text NOT NULL, salt text NOT NULL,"
    "  iterations bigint NOT NULL, stored_key text NOT NULL, server_key text NOT NULL,"
    "  created_ts text NOT NULL, updated_ts text NOT NULL, PRIMARY KEY (name, mechanism));"
    "CREATE TABLE acls ("
    "  principal text NOT NULL, host text NOT NULL, resource_type text NOT NULL,"
    "  pattern_type text NOT NULL, resource_name text NOT NULL, operation text NOT NULL,"
    "  permission text NOT NULL, source text NOT NULL, created_ts text NOT NULL,"
    "  PRIMARY KEY (principal, host, resource_type, pattern_type, resource_name, operation,"
    "  permission));"
    "CREATE TABLE tokens ("
    "  name text PRIMARY KEY, role text NOT NULL, hash text NOT NULL,"
    "  created_ts text NOT NULL, created_by text NOT NULL);"
    /* Written by the fleet module (src/fleet), created here with the rest of the schema. */
    "CREATE TABLE kg_instances ("
    "  name text PRIMARY KEY, version text NOT NULL, started_at timestamptz NOT NULL,"
    "  lease_until timestamptz NOT NULL, renewed_at timestamptz NOT NULL,"
    "  state text NOT NULL DEFAULT 'serving', epochs jsonb NOT NULL DEFAULT '{}',"
    "  connections integer NOT NULL DEFAULT 0, probe jsonb NOT NULL DEFAULT '{}',"
    "  admin_url text);",
    /* 2: a fleet's planned switchover (fleet/kg_fleet_planned.h): one hold row per vcluster
     * (the current or last hold) and the acknowledgements of the instances holding for it. */
    "CREATE SEQUENCE planned_hold_ids;"
    "CREATE TABLE planned_holds ("
    "  vcluster text PRIMARY KEY, hold_id bigint NOT NULL, from_cluster text NOT NULL,"
    "  to_cluster text NOT NULL, from_epoch bigint NOT NULL, coordinator text NOT NULL,"
    "  coordinator_token text NOT NULL, state text NOT NULL, deadline timestamptz NOT NULL,"
    "  acks_closed_at timestamptz, reason text NOT NULL DEFAULT '',"
    "  updated_at timestamptz NOT NULL);"
    "CREATE TABLE planned_acks ("
    "  vcluster text NOT NULL, hold_id bigint NOT NULL, instance text NOT NULL,"
    "  acked_at timestamptz NOT NULL, held bigint NOT NULL DEFAULT 0,"
    "  held_bytes bigint NOT NULL DEFAULT 0, released_to text,"
    "  PRIMARY KEY (vcluster, hold_id, instance));",
};
#define PG_SCHEMA_VERSION ((int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

typedef struct pg_be {
    PGconn *conn;
    char *url;          /* as configured: may hold the password, never logged */
    char redacted[512]; /* for logs and errors */
    int in_tx;
    int schema_version;
    long long last_reset_ms;
    long long last_reset_cost_ms;
    char err[512];
} pg_be;

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq messages end with a newline and may span lines: one line for logs. */
static void one_line(char *out, size_t len, const char *msg)
{
    snprintf(out, len, "%s", msg && *msg ? msg : "unknown error");
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

void kg_store_redact_location(const char *location, char *out, size_t len)
{
    const char *scheme_end = location ? strstr(location, "://") : NULL;
    if (!scheme_end || (strncmp(location, "postgres://", 11) != 0 &&
                        strncmp(location, "postgresql://", 13) != 0)) {
        snprintf(out, len, "%s", location ? location : "");
        return;
    }
    const char *rest = scheme_end + 3;
    /* userinfo ends at the last '@' before the path; a password may hold '/' too, so look at
     * the whole authority up to the query. */
    const char *query = strchr(rest, '?');
    const char *end = query ? query : rest + strlen(rest);
    const char *at = NULL;
    for (const char *c = rest; c < end; c++)
        if (*c == '@') at = c;
    const char *host = at ? at + 1 : rest;
    int user_len = 0;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        user_len = (int)((colon ? colon : at) - rest);
    }
    /* The query may carry password=...: drop it whole, saying so. */
    snprintf(out, len, "%.*s%.*s%s%.*s%s", (int)(rest - location), location, user_len, rest,
             at ? "@" : "", (int)(end - host), host, query ? "?..." : "");
}

static const char *pg_errmsg(void *be)
{
    return ((pg_be *)be)->err;
}

static void pg_set_error(pg_be *p, const char *what, const char *msg)
{
    char line[400];
    one_line(line, sizeof(line), msg);
    snprintf(p->err, sizeof(p->err), "%s%s%s", what ? what : "", what ? ": " : "", line);
}

/* 0 when the connection is usable. A lost connection is reset (see RESET_INTERVAL_MS); inside
 * a transaction it cannot be: that fails. */
static int pg_alive(pg_be *p)
{
    if (PQstatus(p->conn) == CONNECTION_OK) return 0;
    if (p->in_tx) {
        snprintf(p->err, sizeof(p->err), "PostgreSQL connection lost in a transaction");
        return -1;
    }
    long long now = mono_ms();
    if (p->last_reset_cost_ms > RESET_QUICK_MS && now - p->last_reset_ms < RESET_INTERVAL_MS) {
        snprintf(p->err, sizeof(p->err), "PostgreSQL %s is unreachable", p->redacted);
        return -1;
    }
    p->last_reset_ms = now;
    PQreset(p->conn);
    p->last_reset_cost_ms = mono_ms() - now;
    if (PQstatus(p->conn) != CONNECTION_OK) {
        pg_set_error(p, "PostgreSQL unreachable", PQerrorMessage(p->conn));
        kg_warn("store: %s: %s", p->redacted, p->err);
        return -1;
    }
    kg_info("store: reconnected to PostgreSQL %s", p->redacted);
    return 0;
}

/* Runs SQL with text parameters. RETRY: safe to run again after a reconnect (a read, or a
 * statement the server never received). NULL on error (p->err says why, logged). */
static PGresult *pg_run(pg_be *p, int retry, const char *sql, int n, const char *const *vals)
{
    for (int attempt = 0;; attempt++) {
        if (pg_alive(p) != 0) {
            kg_error("store: %s", p->err);
            return NULL;
        }
        /* Without parameters: PQexec, which also runs several statements (migrations). */
        PGresult *res =
            n ? PQexecParams(p->conn, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(p->conn, sql);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
        pg_set_error(p, NULL, res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
        PQclear(res);
        if (retry && attempt == 0 && !p->in_tx && PQstatus(p->conn) == CONNECTION_BAD) {
            p->last_reset_ms = 0; /* the server went away since the last statement: reset now */
            continue;
        }
        kg_error("store: postgres: %s", p->err);
        return NULL;
    }
}

/* A statement whose rows do not matter: 0 ok, -1 error. */
static int pg_cmd(pg_be *p, int retry, const char *sql, int n, const char *const *vals)
{
    PGresult *res = pg_run(p, retry, sql, n, vals);
    PQclear(res);
    return res ? 0 : -1;
}

/* Rows a statement changed: 0 deleted/inserted one or more (returns 0), none (1), error (-1). */
static int pg_changed(pg_be *p, const char *sql, int n, const char *const *vals)
{
    PGresult *res = pg_run(p, 0, sql, n, vals);
    if (!res) return -1;
    int changed = atoi(PQcmdTuples(res));
    PQclear(res);
    return changed > 0 ? 0 : 1;
}

static const char *val(PGresult *res, int row, int col)
{
    return PQgetvalue(res, row, col);
}

static void pg_close(void *be)
{
    pg_be *p = be;
    if (!p) return;
    PQfinish(p->conn);
    free(p->url);
    free(p);
}

static int pg_schema_version(void *be)
{
    return ((pg_be *)be)->schema_version;
}

static void pg_rollback(void *be)
{
    pg_be *p = be;
    if (!p->in_tx) return;
    p->in_tx = 0;
    if (PQstatus(p->conn) != CONNECTION_OK) return; /* the server dropped it with the connection */
    PGresult *res = PQexec(p->conn, "ROLLBACK");
    PQclear(res);
}

static int pg_begin(void *be)
{
    pg_be *p = be;
    if (pg_cmd(p, 1, "BEGIN", 0, NULL) != 0) return -1;
    p->in_tx = 1;
    /* Serializes the writers of every instance: the audit chain stays one chain and a switch
     * reads the epoch the previous writer committed. */
    PGresult *res =
        pg_run(p, 0, "SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE", 0, NULL);
    int ok = res != NULL;
    int locked = res && PQntuples(res) == 1;
    PQclear(res);
    /* No head row (deleted outside kgate; verify reports it): still serialize. */
    if (ok && !locked)
        ok = pg_cmd(p, 0, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY " + 1)", 0, NULL) == 0;
    if (!ok) {
        pg_rollback(p);
        return -1;
    }
    return 0;
}

static int pg_commit(void *be)
{
    pg_be *p = be;
    PGresult *res = pg_run(p, 0, "COMMIT", 0, NULL);
    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    int ok = res && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    if (res && !ok) snprintf(p->err, sizeof(p->err), "transaction rolled back");
    PQclear(res);
    p->in_tx = ok ? 0 : p->in_tx;
    return ok ? 0 : -1;
}

static int pg_get_vcluster(void *be, const char *vc, char *active, size_t len, uint64_t *epoch)
{
    pg_be *p = be;
    const char *v[] = {vc};
    PGresult *res = pg_run(p, !p->in_tx,
                           p->in_tx ? "SELECT active, epoch FROM vcluster_state WHERE name = $1"
                                      " FOR UPDATE"
                                    : "SELECT active, epoch FROM vcluster_state WHERE name = $1",
                           1, v);
    if (!res) return -1;
    int found = PQntuples(res) > 0;
    if (found) {
        if (active && len > 0) snprintf(active, len, "%s", val(res, 0, 0));
        if (epoch) *epoch = strtoull(val(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return found ? 0 : 1;
}

static int pg_put_vcluster(void *be, const char *vc, const char *active, uint64_t epoch,
                           const char *ts)
{
    char e[32];
    snprintf(e, sizeof(e), "%llu", (unsigned long long)epoch);
    const char *v[] = {vc, active, e, ts};
    return pg_cmd(be, 0,
                  "INSERT INTO vcluster_state (name, active, epoch, updated_ts) VALUES"
                  " ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET active = excluded.active,"
                  " epoch = excluded.epoch, updated_ts = excluded.updated_ts",
                  4, v);
}

/* Rows of SQL as an array of objects keyed by column name (aliases name them): bigint and
 * integer columns as JSON integers, everything else as strings. NULL on error. */
static json_t *pg_list_json(void *be, const char *sql)
{
    PGresult *res = pg_run(be, 1, sql, 0, NULL);
    if (!res) return NULL;
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *row = json_object();
        for (int c = 0; c < PQnfields(res); c++) {
            Oid type = PQftype(res, c);
            json_t *v = type == PG_INT8_OID || type == PG_INT4_OID
                            ? json_integer((json_int_t)strtoll(val(res, i, c), NULL, 10))
                            : json_string(val(res, i, c));
            json_object_set_new(row, PQfname(res, c), v);
        }
        json_array_append_new(arr, row);
    }
    PQclear(res);
    return arr;
}

static json_t *pg_list_vclusters(void *be)
{
    return pg_list_json(be, "SELECT name AS vcluster, active, epoch, updated_ts FROM vcluster_state"
                            " ORDER BY name COLLATE \"C\"");
}

static int pg_notify_switch(void *be, const char *vc)
{
    const char *v[] = {vc};
    return pg_cmd(be, 0, "SELECT pg_notify('kgate_switch', $1)", 1, v);
}

/* Any switch but the planned one's own: refused while a planned switch holds. */
static const char SQL_GUARD_PLAIN[] =
    "SELECT coordinator, from_cluster, to_cluster FROM planned_holds WHERE vcluster = $1 AND "
    "state = 'holding' FOR UPDATE";
/* The planned switch's own: its hold goes 'holding' -> 'switched' when every live instance
 * acknowledged it before the catch-up began (acks_closed_at); the live instances without one
 * come back (an empty string: none). */
static const char SQL_GUARD_HOLD[] =
    "UPDATE planned_holds p SET state = 'switched', updated_at = now() WHERE vcluster = $1 AND "
    "hold_id = $2::bigint AND state = 'holding' RETURNING COALESCE((SELECT string_agg(i.name, "
    "', ' ORDER BY i.name) FROM kg_instances i WHERE i.lease_until > now() AND NOT EXISTS "
    "(SELECT 1 FROM planned_acks a WHERE a.vcluster = $1 AND a.hold_id = $2::bigint AND "
    "a.instance = i.name AND a.acked_at <= p.acks_closed_at)), '')";
static const char SQL_GUARD_STATE[] =
    "SELECT state, reason FROM planned_holds WHERE vcluster = $1 AND hold_id = $2::bigint";

static int pg_switch_guard(void *be, const char *vc, int64_t hold_id, char *why, size_t len)
{
    pg_be *p = be;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)hold_id);
    const char *v[2] = {vc, id};
    PGresult *res = pg_run(p, 0, hold_id ? SQL_GUARD_HOLD : SQL_GUARD_PLAIN, hold_id ? 2 : 1, v);
    if (!res) return -1;
    int rc = 0;
    if (!hold_id && PQntuples(res) > 0) {
        snprintf(why, len,
                 "another switch is in progress: planned switch of '%s' from %s to %s "
                 "(coordinated by instance %s)",
                 vc, val(res, 0, 1), val(res, 0, 2), val(res, 0, 0));
        rc = 2;
    } else if (hold_id && PQntuples(res) == 1 && *val(res, 0, 0)) {
        snprintf(why, len, "instance(s) %s did not acknowledge the hold", val(res, 0, 0));
        rc = 2;
    } else if (hold_id && PQntuples(res) != 1) {
        PQclear(res);
        res = pg_run(p, 0, SQL_GUARD_STATE, 2, v);
        if (!res) return -1;
        snprintf(why, len, "the hold is %s%s%s", PQntuples(res) ? val(res, 0, 0) : "gone",
                 PQntuples(res) && *val(res, 0, 1) ? ": " : "",
                 PQntuples(res) ? val(res, 0, 1) : "");
        rc = 2;
    }
    PQclear(res);
    return rc;
}

static int pg_get_head(void *be, int64_t *last_seq, char hash[KG_STORE_HASH_HEX + 1])
{
    pg_be *p = be;
    PGresult *res =
        pg_run(p, !p->in_tx, "SELECT last_seq, last_hash FROM audit_head WHERE id = 1", 0, NULL);
    if (!res) return -1;
    int found = PQntuples(res) > 0;
    if (found) {
        *last_seq = strtoll(val(res, 0, 0), NULL, 10);
        snprintf(hash, KG_STORE_HASH_HEX + 1, "%s", val(res, 0, 1));
    }
    PQclear(res);
    return found ? 0 : 1;
}

static int pg_put_head(void *be, int64_t last_seq, const char *hash)
{
    char s[32];
    snprintf(s, sizeof(s), "%lld", (long long)last_seq);
    const char *v[] = {s, hash};
    return pg_cmd(be, 0,
                  "INSERT INTO audit_head (id, last_seq, last_hash) VALUES (1, $1, $2)"
                  " ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq,"
                  " last_hash = excluded.last_hash",
                  2, v);
}

static int pg_insert_audit(void *be, const audit_row *row)
{
    char s[32];
    snprintf(s, sizeof(s), "%lld", (long long)row->seq);
    const char *v[] = {s, row->ts, row->type, row->details, row->prev_hash, row->hash};
    return pg_cmd(be, 0,
                  "INSERT INTO audit_log (seq, ts, type, details, prev_hash, hash) VALUES"
                  " ($1, $2, $3, $4, $5, $6)",
                  6, v);
}

static int pg_scan_audit(void *be, int64_t after, int limit, int tail, audit_row_fn fn, void *arg)
{
    pg_be *p = be;
    char a[32], l[32];
    snprintf(a, sizeof(a), "%lld", (long long)after);
    snprintf(l, sizeof(l), "%d", limit);
    const char *tail_v[] = {l};
    const char *page_v[] = {a, l};
    PGresult *res = tail ? pg_run(p, !p->in_tx,
                                  "SELECT * FROM (SELECT seq, ts, type, details, prev_hash, hash"
                                  " FROM audit_log ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
                                  1, tail_v)
                         : pg_run(p, !p->in_tx,
                                  "SELECT seq, ts, type, details, prev_hash, hash FROM audit_log"
                                  " WHERE seq > $1 ORDER BY seq LIMIT $2",
                                  2, page_v);
    if (!res) return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        audit_row row = {
            .seq = strtoll(val(res, i, 0), NULL, 10),
            .ts = val(res, i, 1),
            .type = val(res, i, 2),
            .details = val(res, i, 3),
            .prev_hash = val(res, i, 4),
            .hash = val(res, i, 5),
        };
        if (fn(arg, &row) != 0) break;
    }
    PQclear(res);
    return 0;
}

static int pg_find_audit_hash(void *be, const char *hash, int64_t *seq)
{
    const char *v[] = {hash};
    PGresult *res = pg_run(be, 1, "SELECT seq FROM audit_log WHERE hash = $1 LIMIT 1", 1, v);
    if (!res) return -1;
    int found = PQntuples(res) > 0;
    if (found) *seq = strtoll(val(res, 0, 0), NULL, 10);
    PQclear(res);
    return found ? 0 : 1;
}

static int pg_put_doc(void *be, const char *kind, const char *id, const char *body,
                      const char *created_ts, const char *updated_ts)
{
    const char *v[] = {kind, id, body, created_ts, updated_ts};
    return pg_cmd(be, 0,
                  "INSERT INTO docs (kind, id, body, created_ts, updated_ts) VALUES"
                  " ($1, $2, $3, $4, $5) ON CONFLICT (kind, id) DO UPDATE SET"
                  " body = excluded.body, updated_ts = excluded.updated_ts",
                  5, v);
}

static int pg_get_doc(void *be, const char *kind, const char *id, char **body)
{
    const char *v[] = {kind, id};
    PGresult *res = pg_run(be, 1, "SELECT body FROM docs WHERE kind = $1 AND id = $2", 2, v);
    if (!res) return -1;
    int rc = 1;
    if (PQntuples(res) > 0) {
        *body = strdup(val(res, 0, 0));
        rc = *body ? 0 : -1;
    }
    PQclear(res);
    return rc;
}

static int pg_delete_doc(void *be, const char *kind, const char *id)
{
    const char *v[] = {kind, id};
    return pg_changed(be, "DELETE FROM docs WHERE kind = $1 AND id = $2", 2, v);
}

static int pg_list_docs(void *be, const char *kind, doc_fn fn, void *arg)
{
    const char *v[] = {kind};
    PGresult *res =
        pg_run(be, 1, "SELECT id, body FROM docs WHERE kind = $1 ORDER BY id COLLATE \"C\"", 1, v);
    if (!res) return -1;
    for (int i = 0; i < PQntuples(res); i++)
        if (fn(arg, val(res, i, 0), val(res, i, 1)) != 0) break;
    PQclear(res);
    return 0;
}

static int pg_scan_all_docs(void *be, doc_row_fn fn, void *arg)
{
    PGresult *res = pg_run(be, 1,
                           "SELECT kind, id, body, created_ts, updated_ts FROM docs"
                           " ORDER BY kind COLLATE \"C\", id COLLATE \"C\"",
                           0, NULL);
    if (!res) return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(res) && rc == 0; i++)
        if (fn(arg, val(res, i, 0), val(res, i, 1), val(res, i, 2), val(res, i, 3),
               val(res, i, 4)) != 0)
            rc = -1;
    PQclear(res);
    return rc;
}

static const char *str_field(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static int pg_put_user_cred(void *be, const char *name, json_t *cred, const char *ts)
{
    char it[32];
    snprintf(it, sizeof(it), "%lld",
             (long long)json_integer_value(json_object_get(cred, "iterations")));
    const char *created = str_field(cred, "created_ts");
    const char *v[] = {name,
                       str_field(cred, "mechanism"),
                       str_field(cred, "salt"),
                       it,
                       str_field(cred, "stored_key"),
                       str_field(cred, "server_key"),
                       created ? created : ts,
                       ts};
    return pg_cmd(be, 0,
                  "INSERT INTO users (name, mechanism, salt, iterations, stored_key, server_key,"
                  " created_ts, updated_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                  " ON CONFLICT (name, mechanism) DO UPDATE SET salt = excluded.salt,"
                  " iterations = excluded.iterations, stored_key = excluded.stored_key,"
                  " server_key = excluded.server_key, updated_ts = excluded.updated_ts",
                  8, v);
}

static int pg_delete_user(void *be, const char *name, const char *mechanism)
{
    const char *v[] = {name, mechanism};
    return mechanism ? pg_changed(be, "DELETE FROM users WHERE name = $1 AND mechanism = $2", 2, v)
                     : pg_changed(be, "DELETE FROM users WHERE name = $1", 1, v);
}

static json_t *pg_list_users(void *be)
{
    return pg_list_json(be, "SELECT name, mechanism, salt, iterations, stored_key, server_key,"
                            " created_ts, updated_ts FROM users"
                            " ORDER BY name COLLATE \"C\", mechanism COLLATE \"C\"");
}

static void acl_values(json_t *acl, const char *v[7])
{
    for (int i = 0; i < 7; i++)
        v[i] = str_field(acl, kg_store_acl_fields[i]);
}

static int pg_put_acl(void *be, json_t *acl, const char *ts)
{
    const char *v[9];
    acl_values(acl, v);
    const char *source = str_field(acl, "source");
    v[7] = source ? source : "api";
    v[8] = ts;
    return pg_changed(be,
                      "INSERT INTO acls (principal, host, resource_type, pattern_type,"
                      " resource_name, operation, permission, source, created_ts) VALUES"
                      " ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                      9, v);
}

static int pg_delete_acl(void *be, json_t *acl)
{
    const char *v[7];
    acl_values(acl, v);
    return pg_changed(be,
                      "DELETE FROM acls WHERE principal = $1 AND host = $2 AND"
                      " resource_type = $3 AND pattern_type = $4 AND resource_name = $5 AND"
                      " operation = $6 AND permission = $7",
                      7, v);
}

static json_t *pg_list_acls(void *be)
{
    /* COLLATE "C": byte order, as SQLite sorts, whatever the database's locale. */
    return pg_list_json(be, "SELECT principal, host, resource_type, pattern_type, resource_name,"
                            " operation, permission, source, created_ts FROM acls ORDER BY"
                            " resource_type COLLATE \"C\", resource_name COLLATE \"C\","
                            " pattern_type COLLATE \"C\", principal COLLATE \"C\","
                            " host COLLATE \"C\", permission COLLATE \"C\","
                            " operation COLLATE \"C\"");
}

static int pg_put_token(void *be, json_t *token, const char *ts)
{
    const char *by = str_field(token, "created_by");
    const char *v[] = {str_field(token, "name"), str_field(token, "role"), str_field(token, "hash"),
                       ts, by ? by : ""};
    return pg_changed(be,
                      "INSERT INTO tokens (name, role, hash, created_ts, created_by) VALUES"
                      " ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                      5, v);
}

static int pg_delete_token(void *be, const char *name)
{
    const char *v[] = {name};
    return pg_changed(be, "DELETE FROM tokens WHERE name = $1", 1, v);
}

static json_t *pg_list_tokens(void *be)
{
    return pg_list_json(be, "SELECT name, role, hash, created_ts, created_by FROM tokens"
                            " ORDER BY name COLLATE \"C\"");
}

static int64_t pg_count_rows(void *be)
{
    PGresult *res =
        pg_run(be, 1,
               "SELECT (SELECT count(*) FROM vcluster_state) + (SELECT count(*) FROM audit_log)"
               " + (SELECT count(*) FROM docs) + (SELECT count(*) FROM users)"
               " + (SELECT count(*) FROM acls) + (SELECT count(*) FROM tokens)",
               0, NULL);
    if (!res) return -1;
    int64_t n = strtoll(val(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static int pg_wipe(void *be)
{
    /* The head row stays (writers lock it), back at the empty chain. */
    return pg_cmd(be, 0,
                  "DELETE FROM vcluster_state; DELETE FROM audit_log; DELETE FROM docs;"
                  " DELETE FROM users; DELETE FROM acls; DELETE FROM tokens;"
                  " DELETE FROM planned_holds; DELETE FROM planned_acks;"
                  " UPDATE audit_head SET last_seq = 0, last_hash = '" KG_STORE_ZERO_HASH "'",
                  0, NULL);
}

const kg_store_backend kg_store_pg_backend = {
    .name = "postgres",
    .close = pg_close,
    .errmsg = pg_errmsg,
    .schema_version = pg_schema_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .get_vcluster = pg_get_vcluster,
    .put_vcluster = pg_put_vcluster,
    .list_vclusters = pg_list_vclusters,
    .notify_switch = pg_notify_switch,
    .switch_guard = pg_switch_guard,
    .get_head = pg_get_head,
    .put_head = pg_put_head,
    .insert_audit = pg_insert_audit,
    .scan_audit = pg_scan_audit,
    .find_audit_hash = pg_find_audit_hash,
    .put_doc = pg_put_doc,
    .get_doc = pg_get_doc,
    .delete_doc = pg_delete_doc,
    .list_docs = pg_list_docs,
    .scan_all_docs = pg_scan_all_docs,
    .put_user_cred = pg_put_user_cred,
    .delete_user = pg_delete_user,
    .list_users = pg_list_users,
    .put_acl = pg_put_acl,
    .delete_acl = pg_delete_acl,
    .list_acls = pg_list_acls,
    .put_token = pg_put_token,
    .delete_token = pg_delete_token,
    .list_tokens = pg_list_tokens,
    .count_rows = pg_count_rows,
    .wipe = pg_wipe,
};

const char *kg_store_pg_be_conninfo(void *be)
{
    return ((pg_be *)be)->url;
}

/* ---- open: connect (with bounded retries), then migrate ---- */

/* Keyword/value connection parameters: the URL's, plus kgate's defaults for what it leaves
 * unset (libpq's own defaults wait forever on a dead server). */
typedef struct pg_params {
    const char *kw[64];
    const char *val[64];
    int n;
    char options[512];
    PQconninfoOption *parsed;
} pg_params;

static const char *param_get(const pg_params *pp, const char *kw)
{
    for (int i = 0; i < pp->n; i++)
        if (strcmp(pp->kw[i], kw) == 0) return pp->val[i];
    return NULL;
}

static void param_default(pg_params *pp, const char *kw, const char *value)
{
    if (param_get(pp, kw) || pp->n >= 63) return;
    pp->kw[pp->n] = kw;
    pp->val[pp->n] = value;
    pp->n++;
}

static int pg_build_params(pg_params *pp, const char *url, const kg_store_options *opts, char *err,
                           size_t errlen)
{
    char *msg = NULL;
    pp->parsed = PQconninfoParse(url, &msg);
    if (!pp->parsed) {
        /* libpq may quote a piece of the URL (the password among them): do not repeat it. */
        kg_errf(err, errlen, "invalid PostgreSQL URL (see docs/fleet.md for its form)%s",
                msg ? "" : ": out of memory");
        PQfreemem(msg);
        return -1;
    }
    for (PQconninfoOption *o = pp->parsed; o->keyword && pp->n < 48; o++) {
        if (!o->val || strcmp(o->keyword, "options") == 0) continue;
        pp->kw[pp->n] = o->keyword;
        pp->val[pp->n] = o->val;
        pp->n++;
    }
    const char *user_options = NULL;
    for (PQconninfoOption *o = pp->parsed; o->keyword; o++)
        if (strcmp(o->keyword, "options") == 0) user_options = o->val;
    /* statement_timeout unless the URL's options set one. */
    if (opts->statement_timeout_ms > 0 &&
        !(user_options && strstr(user_options, "statement_timeout")))
        snprintf(pp->options, sizeof(pp->options), "%s%s-c statement_timeout=%d",
                 user_options ? user_options : "", user_options ? " " : "",
                 opts->statement_timeout_ms);
    else
        snprintf(pp->options, sizeof(pp->options), "%s", user_options ? user_options : "");
    if (pp->options[0]) param_default(pp, "options", pp->options);
    param_default(pp, "connect_timeout", DEFAULT_CONNECT_TIMEOUT_S);
    param_default(pp, "application_name", "kgate");
    /* A server that vanished without closing the socket is noticed within ~25 s. */
    param_default(pp, "keepalives_idle", "10");
    param_default(pp, "keepalives_interval", "5");
    param_default(pp, "keepalives_count", "3");
    pp->kw[pp->n] = NULL;
    pp->val[pp->n] = NULL;
    return 0;
}

/* A failure retrying cannot fix: wrong password, unknown database or role. */
static int pg_permanent_failure(const char *msg)
{
    return strstr(msg, "authentication failed") || strstr(msg, "does not exist") ||
           strstr(msg, "no password supplied") || strstr(msg, "no pg_hba.conf entry");
}

/* Server notices ("relation already exists, skipping") are not kgate's business to print. */
static void pg_ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int pg_connect(pg_be *p, const kg_store_options *opts, char *err, size_t errlen)
{
    pg_params pp = {0};
    if (pg_build_params(&pp, p->url, opts, err, errlen) != 0) return -1;
    long long deadline = mono_ms() + (opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 0);
    int delay_ms = 100;
    int rc = -1;
    for (int attempt = 1;; attempt++) {
        p->conn = PQconnectdbParams(pp.kw, pp.val, 0);
        if (p->conn && PQstatus(p->conn) == CONNECTION_OK) {
            PQsetNoticeProcessor(p->conn, pg_ignore_notice, NULL);
            rc = 0;
            break;
        }
        char line[400];
        one_line(line, sizeof(line), p->conn ? PQerrorMessage(p->conn) : "out of memory");
        PQfinish(p->conn);
        p->conn = NULL;
        long long left = deadline - mono_ms();
        if (pg_permanent_failure(line) || left <= 0) {
            kg_errf(err, errlen, "cannot connect to PostgreSQL %s (attempt %d): %s", p->redacted,
                    attempt, line);
            break;
        }
        kg_warn("store: cannot connect to PostgreSQL %s (attempt %d, retrying for %lld ms): %s",
                p->redacted, attempt, left, line);
        usleep((useconds_t)(delay_ms < left ? delay_ms : left) * 1000);
        delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
    }
    PQconninfoFree(pp.parsed);
    return rc;
}

/* Applies the missing migrations in ONE transaction under a transaction-level advisory lock:
 * several instances starting at once wait for the first, then find the work done. */
static int pg_migrate(pg_be *p, char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (pg_cmd(p, 0, "BEGIN", 0, NULL) != 0) goto fail;
    p->in_tx = 1;
    if (pg_cmd(p, 0, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK_KEY ")", 0, NULL) != 0)
        goto fail;
    /* Created only when missing: a role that may not create tables (after a first migration by
     * a more privileged one) still opens a database that is up to date. */
    res = pg_run(p, 0, "SELECT to_regclass('meta') IS NULL", 0, NULL);
    if (!res) goto fail;
    int fresh = strcmp(val(res, 0, 0), "t") == 0;
    PQclear(res);
    if (fresh &&
        pg_cmd(p, 0, "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)", 0, NULL) != 0)
        goto fail;
    res = pg_run(p, 0, "SELECT value FROM meta WHERE key = 'schema_version'", 0, NULL);
    if (!res) goto fail;
    int version = PQntuples(res) > 0 ? atoi(val(res, 0, 0)) : 0;
    PQclear(res);
    if (version > PG_SCHEMA_VERSION) {
        kg_errf(err, errlen,
                "state schema version %d in %s is newer than this kgate's (%d):"
                " upgrade kgate",
                version, p->redacted, PG_SCHEMA_VERSION);
        pg_rollback(p);
        return -1;
    }
    for (int v = version + 1; v <= PG_SCHEMA_VERSION; v++) {
        if (pg_cmd(p, 0, pg_migrations[v - 1], 0, NULL) != 0) {
            kg_errf(err, errlen, "schema migration %d failed: %s", v, p->err);
            pg_rollback(p);
            return -1;
        }
        kg_info("store: %s: applied schema migration %d", p->redacted, v);
    }
    char vs[16];
    snprintf(vs, sizeof(vs), "%d", PG_SCHEMA_VERSION);
    const char *v1[] = {vs};
    if (pg_cmd(p, 0,
               "INSERT INTO meta (key, value) VALUES ('schema_version', $1)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
               1, v1) != 0 ||
        pg_commit(p) != 0)
        goto fail;
    p->schema_version = PG_SCHEMA_VERSION;
    return 0;
fail:
    kg_errf(err, errlen, "cannot migrate the schema of %s: %s", p->redacted, p->err);
    pg_rollback(p);
    return -1;
}

void *kg_store_pg_open(const char *url, const kg_store_options *opts, char *err, size_t errlen)
{
    pg_be *p = calloc(1, sizeof(*p));
    if (!p || !(p->url = strdup(url))) {
        free(p);
        kg_errf(err, errlen, "out of memory");
        return NULL;
    }
    kg_store_redact_location(url, p->redacted, sizeof(p->redacted));
    if (pg_connect(p, opts, err, errlen) != 0 || pg_migrate(p, err, errlen) != 0) {
        pg_close(p);
        return NULL;
    }
    kg_info("store: PostgreSQL %s, schema version %d", p->redacted, p->schema_version);
    return p;
}
