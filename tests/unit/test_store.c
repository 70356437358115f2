/* kg_store: switch persistence, the audit chain and its tamper detection, documents, schema
 * migrations, migrate-state. Tampering is done the way an attacker would: raw SQL on the store.
 *
 * The same tests run against SQLite (make unit) and, when KGATE_TEST_STORE holds a PostgreSQL
 * URL (tests/integration/fleet/test_store_pg.py sets it), against PostgreSQL: each store then
 * gets a fresh database of that server, and the tampering goes through libpq. */
#include "kt.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/kg_store.h"

static char tmpdir[256];
static pid_t owner_pid;

static void remove_tmpdir(void)
{
    /* Forked writers exit with _exit, but be explicit: only the creating process cleans up. */
    if (getpid() != owner_pid) return;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* A file in the test's temporary directory (SQLite files, whatever the backend under test). */
static void file_path(char *out, size_t len, const char *name)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/kg_test_store.XXXXXX");
        if (!mkdtemp(tmpdir)) abort();
        owner_pid = getpid();
        atexit(remove_tmpdir);
    }
    snprintf(out, len, "%s/%s", tmpdir, name);
}

/* The PostgreSQL server under test (a URL of any of its databases), or NULL: SQLite. */
static const char *pg_base(void)
{
    const char *url = getenv("KGATE_TEST_STORE");
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
               ? url
               : NULL;
}

static int pg_exec(const char *url, const char *sql)
{
    PGconn *conn = PQconnectdb(url);
    int ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
        PGresult *res = PQexec(conn, sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!ok) fprintf(stderr, "pg \"%s\": %s", sql, PQresultErrorMessage(res));
        PQclear(res);
    } else {
        fprintf(stderr, "pg connect: %s", PQerrorMessage(conn));
    }
    PQfinish(conn);
    return ok ? 0 : -1;
}

/* Location of the store NAME of the backend under test; on PostgreSQL a new, empty database
 * named after it (the base URL's path replaced). */
static void make_path(char *out, size_t len, const char *name)
{
    const char *base = pg_base();
    if (!base) {
        file_path(out, len, name);
        return;
    }
    char db[64] = "kt_";
    for (size_t i = 0, n = 3; name[i] && n < sizeof(db) - 1; i++)
        db[n++] = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ? name[i]
                                                                                           : '_',
        db[n] = '\0';
    const char *path = strchr(strstr(base, "://") + 3, '/');
    int prefix = path ? (int)(path - base) : (int)strlen(base);
    snprintf(out, len, "%.*s/%s", prefix, base, db);
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    if (pg_exec(base, sql) != 0) abort();
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    if (pg_exec(base, sql) != 0) abort();
}

static kg_store *open_fresh(const char *name, char *path, size_t len)
{
    make_path(path, len, name);
    if (!pg_base()) {
        char wal[300], shm[300];
        snprintf(wal, sizeof(wal), "%s-wal", path);
        snprintf(shm, sizeof(shm), "%s-shm", path);
        unlink(path);
        unlink(wal);
        unlink(shm);
    }
    char err[256] = "";
    kg_store *s = kg_store_open(path, err, sizeof(err));
    if (!s) fprintf(stderr, "open %s: %s\n", path, err);
    return s;
}

static kg_store *reopen(const char *path)
{
    char err[256] = "";
    kg_store *s = kg_store_open(path, err, sizeof(err));
    if (!s) fprintf(stderr, "reopen %s: %s\n", path, err);
    return s;
}

/* Raw SQL on the store, as a separate connection (the attacker's sqlite3 or psql shell). */
static int tamper(const char *path, const char *sql)
{
    if (strncmp(path, "postgres", 8) == 0) return pg_exec(path, sql);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return -1;
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) fprintf(stderr, "tamper \"%s\": %s\n", sql, msg);
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static json_t *switch_details(const char *from, const char *to, int epoch)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:s}", "vcluster", "payments", "from", from, "to", to,
                     "epoch", epoch, "actor", "token:abc@127.0.0.1");
}

/* A store with five entries: three switches and two refusals, alternating. */
static kg_store *store_with_five_entries(const char *name, char *path, size_t len)
{
    kg_store *s = open_fresh(name, path, len);
    if (!s) return NULL;
    for (int i = 1; i <= 5; i++) {
        json_t *d = switch_details(i % 2 ? "east" : "west", i % 2 ? "west" : "east", i);
        int rc = i % 2 ? kg_store_commit_switch(s, "payments", "west", (uint64_t)i, "switch", d)
                       : kg_store_audit_append(s, "switch.refused", d);
        json_decref(d);
        if (rc != 0) {
            kg_store_close(s);
            return NULL;
        }
    }
    return s;
}

/* Verifies the file at PATH from a fresh open and returns the report (caller frees). */
static json_t *verify_file(const char *path, int *rc)
{
    kg_store *s = reopen(path);
    json_t *report = NULL;
    *rc = s ? kg_store_audit_verify(s, &report) : -1;
    kg_store_close(s);
    return report;
}

static void sha256_hex(const char *text, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), d, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

KT_TEST(switch_commit_survives_reopen)
{
    char path[300];
    kg_store *s = open_fresh("switch.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    char active[64] = "";
    uint64_t epoch = 99;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 1);

    json_t *d = switch_details("east", "west", 1);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "west", 1, "switch", d), 0);
    json_decref(d);
    d = switch_details("west", "east", 2);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "orders", "east", 2, NULL, d), 0);
    json_decref(d);
    kg_store_close(s);

    s = reopen(path);
    KT_CHECK(s != NULL);
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "west");
    KT_CHECK_EQ_INT(epoch, 1);
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "orders", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "east");
    KT_CHECK_EQ_INT(epoch, 2);

    json_t *list = kg_store_list_vclusters(s);
    KT_CHECK_EQ_INT(json_array_size(list), 2);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(list, 0), "vcluster")),
                    "orders");
    json_decref(list);

    /* The default audit type is "switch"; both switches are in the chain. */
    json_t *entries = kg_store_audit_list(s, 0, 10);
    KT_CHECK_EQ_INT(json_array_size(entries), 2);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(entries, 1), "type")),
                    "switch");
    json_decref(entries);
    kg_store_close(s);
}

KT_TEST(stale_epoch_is_refused_and_writes_nothing)
{
    char path[300];
    kg_store *s = open_fresh("stale.db", path, sizeof(path));
    json_t *d = switch_details("east", "west", 5);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "west", 5, "switch", d), 0);
    /* Same epoch again, and an older one: a concurrent or replayed switch must lose. */
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "east", 5, "switch", d), 1);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "east", 3, "switch", d), 1);
    json_decref(d);
    char active[64];
    uint64_t epoch;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "west");
    KT_CHECK_EQ_INT(epoch, 5);
    int64_t last_seq;
    KT_CHECK_EQ_INT(kg_store_audit_head(s, &last_seq, NULL), 0);
    KT_CHECK_EQ_INT(last_seq, 1);
    kg_store_close(s);
}

KT_TEST(audit_chain_links_and_hashes_are_recomputable)
{
    char path[300];
    kg_store *s = open_fresh("chain.db", path, sizeof(path));
    json_t *d =
        json_pack("{s:i, s:s, s:{s:b, s:n}}", "zeta", 1, "alpha", "x", "mid", "y", 1, "b", NULL);
    KT_CHECK_EQ_INT(kg_store_audit_append(s, "experiment.start", d), 0);
    json_decref(d);
    KT_CHECK_EQ_INT(kg_store_audit_append(s, "switch.refused", NULL), 0);
    KT_CHECK_EQ_INT(kg_store_audit_append(s, "x", NULL), 0);

    json_t *entries = kg_store_audit_list(s, 0, 0);
    KT_CHECK_EQ_INT(json_array_size(entries), 3);
    const char *prev = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < json_array_size(entries); i++) {
        json_t *e = json_array_get(entries, i);
        KT_CHECK_EQ_INT(json_integer_value(json_object_get(e, "seq")), (long long)i + 1);
        KT_CHECK_EQ_STR(json_string_value(json_object_get(e, "prev_hash")), prev);
        prev = json_string_value(json_object_get(e, "hash"));
    }

    /* The documented canonical form, rebuilt by hand: keys sorted at every level, compact. */
    json_t *first = json_array_get(entries, 0);
    char text[512];
    snprintf(text, sizeof(text),
             "[1,\"%s\",\"experiment.start\",{\"alpha\":\"x\",\"mid\":{\"b\":null,\"y\":true},"
             "\"zeta\":1},\"%064d\"]",
             json_string_value(json_object_get(first, "ts")), 0);
    char expected[65];
    sha256_hex(text, expected);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(first, "hash")), expected);

    int64_t last_seq;
    char head[65];
    KT_CHECK_EQ_INT(kg_store_audit_head(s, &last_seq, head), 0);
    KT_CHECK_EQ_INT(last_seq, 3);
    KT_CHECK_EQ_STR(head, prev);
    json_decref(entries);

    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    KT_CHECK(json_is_true(json_object_get(report, "intact")));
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "entries")), 3);
    json_decref(report);
    kg_store_close(s);
}

KT_TEST(audit_list_pages_forward_and_tails)
{
    char path[300];
    kg_store *s = open_fresh("list.db", path, sizeof(path));
    for (int i = 0; i < 7; i++)
        KT_CHECK_EQ_INT(kg_store_audit_append(s, "tick", NULL), 0);
    json_t *page = kg_store_audit_list(s, 2, 3);
    KT_CHECK_EQ_INT(json_array_size(page), 3);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(page, 0), "seq")), 3);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(page, 2), "seq")), 5);
    json_decref(page);
    json_t *tail = kg_store_audit_list(s, -1, 2);
    KT_CHECK_EQ_INT(json_array_size(tail), 2);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(tail, 0), "seq")), 6);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(tail, 1), "seq")), 7);
    json_decref(tail);
    json_t *none = kg_store_audit_list(s, 7, 10);
    KT_CHECK_EQ_INT(json_array_size(none), 0);
    json_decref(none);
    kg_store_close(s);
}

static void check_broken(const char *path, long long bad_seq, const char *reason)
{
    int rc;
    json_t *report = verify_file(path, &rc);
    KT_CHECK_EQ_INT(rc, 1);
    KT_CHECK(json_is_false(json_object_get(report, "intact")));
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "first_bad_seq")), bad_seq);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(report, "reason")), reason);
    KT_CHECK(json_string_length(json_object_get(report, "message")) > 0);
    json_decref(report);
}

KT_TEST(untouched_chain_verifies)
{
    char path[300];
    kg_store *s = store_with_five_entries("intact.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    kg_store_close(s);
    int rc;
    json_t *report = verify_file(path, &rc);
    KT_CHECK_EQ_INT(rc, 0);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "entries")), 5);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "last_seq")), 5);
    json_decref(report);
}

KT_TEST(edited_details_are_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("edit.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(
        tamper(path, "UPDATE audit_log SET details = replace(details, 'token:abc', 'token:xyz')"
                     " WHERE seq = 3"),
        0);
    check_broken(path, 3, "edited");
}

KT_TEST(edited_type_is_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("edit_type.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "UPDATE audit_log SET type = 'switch' WHERE seq = 2"), 0);
    check_broken(path, 2, "edited");
}

/* A smarter attacker edits a row AND recomputes its hash: the next row's link exposes it. */
KT_TEST(edited_row_with_recomputed_hash_is_detected)
{
    char path[300];
    kg_store *s = store_with_five_entries("rehash.db", path, sizeof(path));
    json_t *entries = kg_store_audit_list(s, 1, 1); /* seq 2 */
    kg_store_close(s);
    json_t *e = json_array_get(entries, 0);
    json_t *details = json_object_get(e, "details");
    json_object_set_new(details, "actor", json_string("someone-else"));
    json_t *arr =
        json_pack("[I, s, s, O, s]", (json_int_t)2, json_string_value(json_object_get(e, "ts")),
                  json_string_value(json_object_get(e, "type")), details,
                  json_string_value(json_object_get(e, "prev_hash")));
    char *canon = kg_store_canonical_json(arr);
    char *details_text = kg_store_canonical_json(details);
    char hash[65];
    sha256_hex(canon, hash);
    char sql[1024];
    snprintf(sql, sizeof(sql), "UPDATE audit_log SET details = '%s', hash = '%s' WHERE seq = 2",
             details_text, hash);
    KT_CHECK_EQ_INT(tamper(path, sql), 0);
    free(canon);
    free(details_text);
    json_decref(arr);
    json_decref(entries);
    check_broken(path, 2, "edited");
}

KT_TEST(deleted_middle_row_is_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("del_mid.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "DELETE FROM audit_log WHERE seq = 3"), 0);
    check_broken(path, 3, "deleted");
}

KT_TEST(deleted_first_row_is_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("del_first.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "DELETE FROM audit_log WHERE seq = 1"), 0);
    check_broken(path, 1, "deleted");
}

KT_TEST(deleted_last_row_is_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("del_last.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "DELETE FROM audit_log WHERE seq = 5"), 0);
    check_broken(path, 5, "deleted");
}

/* Appending after a truncation must not hide it: the new entry continues from the head. */
KT_TEST(append_after_truncation_still_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("del_then_append.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "DELETE FROM audit_log WHERE seq >= 4"), 0);
    kg_store *s = reopen(path);
    KT_CHECK_EQ_INT(kg_store_audit_append(s, "later", NULL), 0);
    kg_store_close(s);
    check_broken(path, 4, "deleted");
}

KT_TEST(swapped_rows_are_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("swap.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "BEGIN; UPDATE audit_log SET seq = -1 WHERE seq = 2;"
                                 "UPDATE audit_log SET seq = 2 WHERE seq = 3;"
                                 "UPDATE audit_log SET seq = 3 WHERE seq = -1; COMMIT"),
                    0);
    check_broken(path, 2, "reordered");
}

KT_TEST(appended_foreign_row_is_detected)
{
    char path[300];
    kg_store_close(store_with_five_entries("insert.db", path, sizeof(path)));
    KT_CHECK_EQ_INT(tamper(path, "INSERT INTO audit_log SELECT seq + 1, ts, type, details, hash,"
                                 " hash FROM audit_log WHERE seq = 5"),
                    0);
    int rc;
    json_t *report = verify_file(path, &rc);
    KT_CHECK_EQ_INT(rc, 1);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "first_bad_seq")), 6);
    json_decref(report);
}

typedef struct appender_arg {
    kg_store *store;
    int id;
    int failures;
} appender_arg;

static void *appender(void *p)
{
    appender_arg *a = p;
    for (int i = 0; i < 50; i++) {
        json_t *d = json_pack("{s:i, s:i}", "thread", a->id, "i", i);
        if (kg_store_audit_append(a->store, "concurrent", d) != 0) a->failures++;
        json_decref(d);
    }
    return NULL;
}

KT_TEST(concurrent_appends_keep_the_chain_valid)
{
    char path[300];
    kg_store *s = open_fresh("concurrent.db", path, sizeof(path));
    pthread_t th[4];
    appender_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (appender_arg){.store = s, .id = i};
        pthread_create(&th[i], NULL, appender, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        KT_CHECK_EQ_INT(args[i].failures, 0);
    }
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "entries")), 200);
    json_decref(report);
    kg_store_close(s);
}

/* SIGKILL a process in the middle of committing switches, many times over: the state and the
 * chain stay consistent and the state matches the last switch entry. */
KT_TEST(killed_writer_leaves_state_and_chain_consistent)
{
    char path[300];
    kg_store_close(open_fresh("kill.db", path, sizeof(path)));
    for (int round = 0; round < 5; round++) {
        int fds[2];
        KT_CHECK_EQ_INT(pipe(fds), 0);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            kg_store *s = reopen(path);
            uint64_t epoch = 0;
            char active[64];
            kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch);
            /* Until killed; the bound only ends a child whose parent is gone (the pipe blocks
             * it after 64 KiB of unread marks anyway). */
            for (int i = 0; i < (1 << 20); i++) {
                epoch++;
                const char *to = epoch % 2 ? "west" : "east";
                json_t *d = switch_details(epoch % 2 ? "east" : "west", to, (int)epoch);
                if (kg_store_commit_switch(s, "payments", to, epoch, "switch", d) != 0) _exit(3);
                json_decref(d);
                if (write(fds[1], "x", 1) != 1) _exit(4);
            }
            _exit(5);
        }
        close(fds[1]);
        /* Kill after a number of commits that varies per round, while it keeps committing. */
        char c;
        for (int n = 0; n < 3 + round * 4; n++)
            KT_CHECK_EQ_INT(read(fds[0], &c, 1), 1);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fds[0]);

        kg_store *s = reopen(path);
        KT_CHECK(s != NULL);
        json_t *report = NULL;
        KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
        json_decref(report);
        char active[64];
        uint64_t epoch = 0;
        KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 0);
        json_t *last = kg_store_audit_list(s, -1, 1);
        json_t *details = json_object_get(json_array_get(last, 0), "details");
        KT_CHECK_EQ_INT(json_integer_value(json_object_get(details, "epoch")), (long long)epoch);
        KT_CHECK_EQ_STR(json_string_value(json_object_get(details, "to")), active);
        json_decref(last);
        kg_store_close(s);
    }
}

KT_TEST(documents_and_rules_round_trip)
{
    char path[300];
    kg_store *s = open_fresh("docs.db", path, sizeof(path));
    json_t *rule = json_pack("{s:s, s:i, s:s}", "type", "latency", "rate", 10, "topic", "orders.*");
    KT_CHECK_EQ_INT(kg_store_put_rule(s, "r2", rule), 0);
    json_object_set_new(rule, "rate", json_integer(20));
    KT_CHECK_EQ_INT(kg_store_put_rule(s, "r1", rule), 0);
    KT_CHECK_EQ_INT(kg_store_put_rule(s, "r1", rule), 0); /* replace, not duplicate */
    json_decref(rule);
    json_t *not_an_object = json_array();
    KT_CHECK_EQ_INT(kg_store_put_doc(s, "experiment", "e1", not_an_object), -1);
    json_decref(not_an_object);
    kg_store_close(s);

    s = reopen(path);
    json_t *rules = kg_store_list_rules(s);
    KT_CHECK_EQ_INT(json_array_size(rules), 2);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(rules, 0), "id")), "r1");
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(rules, 0), "rate")), 20);
    json_decref(rules);

    int found = -2;
    json_t *doc = kg_store_get_doc(s, "chaos_rule", "r2", &found);
    KT_CHECK_EQ_INT(found, 1);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(doc, "topic")), "orders.*");
    json_decref(doc);
    KT_CHECK(kg_store_get_doc(s, "chaos_rule", "nope", &found) == NULL);
    KT_CHECK_EQ_INT(found, 0);

    KT_CHECK_EQ_INT(kg_store_delete_rule(s, "r2"), 0);
    KT_CHECK_EQ_INT(kg_store_delete_rule(s, "r2"), 1);
    rules = kg_store_list_rules(s);
    KT_CHECK_EQ_INT(json_array_size(rules), 1);
    json_decref(rules);
    /* Other kinds do not mix with rules. */
    json_t *exp = json_pack("{s:s}", "hypothesis", "no produce errors reach the client");
    KT_CHECK_EQ_INT(kg_store_put_doc(s, "experiment", "e1", exp), 0);
    json_decref(exp);
    rules = kg_store_list_rules(s);
    KT_CHECK_EQ_INT(json_array_size(rules), 1);
    json_decref(rules);
    kg_store_close(s);
}

KT_TEST(bad_locations_fail_with_a_message)
{
    char err[256] = "";
    /* Nothing listens on port 1; one attempt; the password is in no message. */
    kg_store_options once = {.connect_timeout_ms = 0, .statement_timeout_ms = 1000};
    KT_CHECK(kg_store_open_with("postgresql://kgate:s3cr3t-pw@127.0.0.1:1/kgate", &once, err,
                                sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "PostgreSQL") != NULL);
    KT_CHECK(strstr(err, "postgresql://kgate@127.0.0.1:1/kgate") != NULL);
    KT_CHECK(strstr(err, "s3cr3t") == NULL);
    err[0] = '\0';
    KT_CHECK(kg_store_open_with("postgres://u:s3cr3t-pw@127.0.0.1:1/x?sslmode=bogus", &once, err,
                                sizeof(err)) == NULL);
    KT_CHECK(err[0] != '\0');
    KT_CHECK(strstr(err, "s3cr3t") == NULL);
    err[0] = '\0';
    KT_CHECK(kg_store_open("/nonexistent-dir/x/state.db", err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "/nonexistent-dir/x/state.db") != NULL);

    char path[300];
    file_path(path, sizeof(path), "garbage.db");
    FILE *f = fopen(path, "w");
    fputs("this is not a database, just some text that is long enough to matter......\n", f);
    for (int i = 0; i < 100; i++)
        fputs("garbage garbage garbage garbage garbage garbage\n", f);
    fclose(f);
    err[0] = '\0';
    KT_CHECK(kg_store_open(path, err, sizeof(err)) == NULL);
    KT_CHECK(err[0] != '\0');
}

KT_TEST(redacted_locations_hold_no_password)
{
    char out[256];
    kg_store_redact_location("postgresql://kgate:pw@db.internal:5433/kgate?sslmode=verify-full",
                             out, sizeof(out));
    KT_CHECK_EQ_STR(out, "postgresql://kgate@db.internal:5433/kgate?...");
    kg_store_redact_location("postgres://a:b@c@h/d", out, sizeof(out)); /* '@' in the password */
    KT_CHECK_EQ_STR(out, "postgres://a@h/d");
    kg_store_redact_location("postgres://h/d?password=pw", out, sizeof(out));
    KT_CHECK_EQ_STR(out, "postgres://h/d?...");
    kg_store_redact_location("./kgate-state.db", out, sizeof(out));
    KT_CHECK_EQ_STR(out, "./kgate-state.db");
}

/* A store from a newer kgate is refused, naming both versions, rather than misread. */
KT_TEST(newer_schema_version_is_refused)
{
    char path[300], err[256] = "";
    kg_store *s = open_fresh("newer.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    int version = kg_store_schema_version(s);
    KT_CHECK(version >= 1);
    KT_CHECK_EQ_STR(kg_store_backend_name(s), pg_base() ? "postgres" : "sqlite");
    KT_CHECK((kg_store_pg_conninfo(s) != NULL) == (pg_base() != NULL));
    kg_store_close(s);
    KT_CHECK_EQ_INT(tamper(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"), 0);
    KT_CHECK(kg_store_open(path, err, sizeof(err)) == NULL);
    KT_CHECK(strstr(err, "newer") != NULL);
    KT_CHECK(strstr(err, "99") != NULL);
    char mine[16];
    snprintf(mine, sizeof(mine), "(%d)", version);
    KT_CHECK(strstr(err, mine) != NULL);
}

/* Opening again applies nothing and changes nothing. */
KT_TEST(reopen_keeps_the_schema_version)
{
    char path[300];
    kg_store *s = store_with_five_entries("reopen_version.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    int version = kg_store_schema_version(s);
    kg_store_close(s);
    s = reopen(path);
    KT_CHECK_EQ_INT(kg_store_schema_version(s), version);
    int64_t seq;
    KT_CHECK_EQ_INT(kg_store_audit_head(s, &seq, NULL), 0);
    KT_CHECK_EQ_INT(seq, 5);
    kg_store_close(s);
}

/* A file written by kgate before versioned migrations (and before users, ACLs and tokens
 * existed): its schema, made here with sqlite3, and a chain hashed by hand. It opens, keeps its
 * data and chain, and gains the newer tables. */
KT_TEST(sqlite_file_of_the_old_schema_opens_and_migrates)
{
    char path[300];
    file_path(path, sizeof(path), "old-schema.db");
    unlink(path);
    const char *zero = "0000000000000000000000000000000000000000000000000000000000000000";
    const char *ts = "2025-06-01T10:00:00.000Z";
    char text1[512], h1[65], text2[512], h2[65];
    snprintf(text1, sizeof(text1), "[1,\"%s\",\"switch\",{\"epoch\":1,\"to\":\"west\"},\"%s\"]", ts,
             zero);
    sha256_hex(text1, h1);
    snprintf(text2, sizeof(text2), "[2,\"%s\",\"switch.completed\",{\"closed\":3},\"%s\"]", ts, h1);
    sha256_hex(text2, h2);
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
             "CREATE TABLE vcluster_state (name TEXT PRIMARY KEY, active TEXT NOT NULL,"
             " epoch INTEGER NOT NULL, updated_ts TEXT NOT NULL);"
             "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL,"
             " type TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL,"
             " hash TEXT NOT NULL);"
             "CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1),"
             " last_seq INTEGER NOT NULL, last_hash TEXT NOT NULL);"
             "CREATE TABLE docs (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,"
             " created_ts TEXT NOT NULL, updated_ts TEXT NOT NULL, PRIMARY KEY (kind, id));"
             "INSERT INTO meta VALUES ('schema_version', '1');"
             "INSERT INTO vcluster_state VALUES ('payments', 'west', 1, '%s');"
             "INSERT INTO audit_log VALUES (1, '%s', 'switch', '{\"epoch\":1,\"to\":\"west\"}',"
             " '%s', '%s');"
             "INSERT INTO audit_log VALUES (2, '%s', 'switch.completed', '{\"closed\":3}', '%s',"
             " '%s');"
             "INSERT INTO audit_head VALUES (1, 2, '%s');"
             "INSERT INTO docs VALUES ('chaos_rule', 'r1', '{\"type\":\"latency\"}', '%s', '%s');",
             ts, ts, zero, h1, ts, h1, h2, h2, ts, ts);
    KT_CHECK_EQ_INT(tamper(path, sql), 0);

    char err[256] = "";
    kg_store *s = kg_store_open(path, err, sizeof(err));
    KT_CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    KT_CHECK_EQ_INT(kg_store_schema_version(s), 1);
    char active[64];
    uint64_t epoch = 0;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "west");
    KT_CHECK_EQ_INT(epoch, 1);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(report, "last_hash")), h2);
    json_decref(report);
    json_t *rules = kg_store_list_rules(s);
    KT_CHECK_EQ_INT(json_array_size(rules), 1);
    json_decref(rules);
    /* The tables added since exist now. */
    json_t *users = kg_store_list_users(s);
    KT_CHECK(users != NULL && json_array_size(users) == 0);
    json_decref(users);
    json_t *tok = json_pack("{s:s, s:s, s:s}", "name", "ops", "role", "admin", "hash", h1);
    KT_CHECK_EQ_INT(kg_store_put_token(s, tok, "token.create", NULL), 0);
    json_decref(tok);
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, NULL), 0);
    kg_store_close(s);
}

/* Several processes switch the same vcluster to the same next epoch at once: exactly one wins,
 * the others get 1 and write nothing; the chain stays one chain. */
KT_TEST(concurrent_switches_from_processes_have_one_winner)
{
    char path[300];
    kg_store *s = open_fresh("race.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    json_t *d = switch_details("east", "west", 1);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "west", 1, "switch", d), 0);
    json_decref(d);
    kg_store_close(s);
    enum { N = 4, ROUNDS = 5 };
    for (int round = 0; round < ROUNDS; round++) {
        int go[2];
        KT_CHECK_EQ_INT(pipe(go), 0);
        pid_t pids[N];
        for (int i = 0; i < N; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                close(go[1]);
                kg_store *c = reopen(path);
                if (!c) _exit(9);
                char b;
                if (read(go[0], &b, 1) < 0) _exit(8); /* all start together at EOF */
                uint64_t epoch = (uint64_t)round + 2;
                json_t *det = switch_details("west", i % 2 ? "east" : "west", (int)epoch);
                int rc = kg_store_commit_switch(c, "payments", i % 2 ? "east" : "west", epoch,
                                                "switch", det);
                kg_store_close(c);
                _exit(rc == 0 ? 0 : rc == 1 ? 1 : 7);
            }
        }
        close(go[0]);
        close(go[1]);
        int won = 0, lost = 0;
        for (int i = 0; i < N; i++) {
            int status = 0;
            waitpid(pids[i], &status, 0);
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            won += code == 0;
            lost += code == 1;
        }
        KT_CHECK_EQ_INT(won, 1);
        KT_CHECK_EQ_INT(lost, N - 1);
    }
    s = reopen(path);
    uint64_t epoch = 0;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", NULL, 0, &epoch), 0);
    KT_CHECK_EQ_INT(epoch, ROUNDS + 1);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "entries")), ROUNDS + 1);
    json_decref(report);
    kg_store_close(s);
}

/* A switch whose transaction fails (on PostgreSQL at COMMIT itself: a deferred constraint
 * trigger) reports -1 and leaves nothing: neither the new side nor its audit entry; the store
 * works on. */
KT_TEST(switch_failing_at_commit_writes_nothing)
{
    char path[300];
    kg_store *s = open_fresh("commit_fail.db", path, sizeof(path));
    KT_CHECK(s != NULL);
    json_t *d = switch_details("east", "west", 1);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "west", 1, "switch", d), 0);
    const char *trigger =
        pg_base() ? "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                    " IF NEW.active = 'boom' THEN RAISE EXCEPTION 'boom at commit'; END IF;"
                    " RETURN NULL; END $$;"
                    "CREATE CONSTRAINT TRIGGER boom AFTER INSERT OR UPDATE ON vcluster_state"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION boom()"
                  : "CREATE TRIGGER boom BEFORE UPDATE ON vcluster_state WHEN NEW.active = 'boom'"
                    " BEGIN SELECT RAISE(ABORT, 'boom'); END";
    KT_CHECK_EQ_INT(tamper(path, trigger), 0);
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "boom", 2, "switch", d), -1);
    char active[64];
    uint64_t epoch = 0;
    KT_CHECK_EQ_INT(kg_store_get_vcluster(s, "payments", active, sizeof(active), &epoch), 0);
    KT_CHECK_EQ_STR(active, "west");
    KT_CHECK_EQ_INT(epoch, 1);
    int64_t seq;
    KT_CHECK_EQ_INT(kg_store_audit_head(s, &seq, NULL), 0);
    KT_CHECK_EQ_INT(seq, 1);
    /* The same epoch to a real side now commits: the failed attempt left no trace. */
    KT_CHECK_EQ_INT(kg_store_commit_switch(s, "payments", "east", 2, "switch", d), 0);
    json_decref(d);
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, NULL), 0);
    kg_store_close(s);
}

/* Appends from several processes (several kgate instances on one store): one valid chain. */
KT_TEST(concurrent_appends_from_processes_keep_one_chain)
{
    char path[300];
    kg_store_close(open_fresh("proc_append.db", path, sizeof(path)));
    enum { N = 4, EACH = 25 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            kg_store *c = reopen(path);
            if (!c) _exit(9);
            int failures = 0;
            for (int k = 0; k < EACH; k++) {
                json_t *det = json_pack("{s:i, s:i}", "process", i, "i", k);
                failures += kg_store_audit_append(c, "concurrent", det) != 0;
                json_decref(det);
            }
            kg_store_close(c);
            _exit(failures ? 1 : 0);
        }
    }
    for (int i = 0; i < N; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        KT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    kg_store *s = reopen(path);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(s, &report), 0);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(report, "entries")), N * EACH);
    json_decref(report);
    kg_store_close(s);
}

/* A store with a bit of everything, for migrate-state. */
static kg_store *store_with_everything(const char *name, char *path, size_t len)
{
    kg_store *s = store_with_five_entries(name, path, len);
    if (!s) return NULL;
    json_t *rule = json_pack("{s:s, s:i}", "type", "latency", "ms", 5);
    kg_store_put_rule(s, "r1", rule);
    json_decref(rule);
    json_t *exp = json_pack("{s:s}", "state", "done");
    kg_store_put_doc(s, "experiment", "e1", exp);
    json_decref(exp);
    json_t *cred =
        json_pack("{s:s, s:s, s:i, s:s, s:s}", "mechanism", "SCRAM-SHA-256", "salt",
                  "c2FsdA==", "iterations", 4096, "stored_key", "c3Q=", "server_key", "c2U=");
    kg_store_put_user_cred(s, "alice", cred, "user.create", NULL);
    json_decref(cred);
    json_t *acl = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "principal", "User:alice",
                            "host", "*", "resource_type", "topic", "pattern_type", "literal",
                            "resource_name", "orders", "operation", "read", "permission", "allow");
    kg_store_put_acl(s, acl, "acl.create", NULL);
    json_decref(acl);
    json_t *tok = json_pack("{s:s, s:s, s:s, s:s}", "name", "ops", "role", "operator", "hash",
                            "ab12", "created_by", "test");
    kg_store_put_token(s, tok, "token.create", NULL);
    json_decref(tok);
    return s;
}

static int json_equal_dump(json_t *a, json_t *b)
{
    int eq = json_equal(a, b);
    if (!eq) {
        char *x = json_dumps(a, JSON_COMPACT), *y = json_dumps(b, JSON_COMPACT);
        fprintf(stderr, "  differ:\n    %s\n    %s\n", x, y);
        free(x);
        free(y);
    }
    return eq;
}

/* migrate-state: SQLite into the backend under test; everything arrives, the chain verifies
 * with the same head; a non-empty target needs force; a broken source is refused. */
KT_TEST(copy_moves_everything_and_keeps_the_chain)
{
    char src_path[300], dst_path[300], err[256] = "";
    file_path(src_path, sizeof(src_path), "copy-src.db");
    unlink(src_path);
    kg_store *src = store_with_everything("copy-src.db", src_path, sizeof(src_path));
    /* store_with_everything used make_path: on PostgreSQL that is a database; use a file. */
    if (pg_base()) {
        kg_store_close(src);
        char *saved = strdup(getenv("KGATE_TEST_STORE"));
        unsetenv("KGATE_TEST_STORE");
        src = store_with_everything("copy-src.db", src_path, sizeof(src_path));
        setenv("KGATE_TEST_STORE", saved, 1);
        free(saved);
    }
    KT_CHECK(src != NULL);
    KT_CHECK_EQ_STR(kg_store_backend_name(src), "sqlite");
    kg_store *dst = open_fresh("copy-dst.db", dst_path, sizeof(dst_path));
    KT_CHECK(dst != NULL);
    json_t *summary = NULL;
    KT_CHECK_EQ_INT(kg_store_copy(src, dst, 0, &summary, err, sizeof(err)), 0);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(summary, "audit_entries")), 8);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(summary, "documents")), 2);
    KT_CHECK_EQ_INT(json_integer_value(json_object_get(summary, "vclusters")), 1);
    int64_t seq;
    char src_head[65], dst_head[65];
    kg_store_audit_head(src, &seq, src_head);
    KT_CHECK_EQ_STR(json_string_value(json_object_get(summary, "head_hash")), src_head);
    kg_store_audit_head(dst, &seq, dst_head);
    KT_CHECK_EQ_STR(dst_head, src_head);
    json_decref(summary);

    json_t *(*lists[])(kg_store *) = {kg_store_list_vclusters, kg_store_list_users,
                                      kg_store_list_acls, kg_store_list_tokens,
                                      kg_store_list_rules};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        json_t *a = lists[i](src), *b = lists[i](dst);
        KT_CHECK(json_equal_dump(a, b));
        json_decref(a);
        json_decref(b);
    }
    json_t *a = kg_store_audit_list(src, 0, 100), *b = kg_store_audit_list(dst, 0, 100);
    KT_CHECK(json_equal_dump(a, b));
    json_decref(a);
    json_decref(b);

    /* Non-empty target: refused without force, nothing changed; replaced with it. */
    err[0] = '\0';
    KT_CHECK_EQ_INT(kg_store_copy(src, dst, 0, NULL, err, sizeof(err)), -1);
    KT_CHECK(strstr(err, "--force") != NULL);
    KT_CHECK_EQ_INT(kg_store_audit_append(dst, "extra", NULL), 0);
    KT_CHECK_EQ_INT(kg_store_copy(src, dst, 1, NULL, err, sizeof(err)), 0);
    kg_store_audit_head(dst, &seq, dst_head);
    KT_CHECK_EQ_STR(dst_head, src_head);
    KT_CHECK_EQ_INT(seq, 8);

    /* A broken source chain is not laundered into an intact-looking copy. */
    kg_store_close(src);
    KT_CHECK_EQ_INT(tamper(src_path, "DELETE FROM audit_log WHERE seq = 2"), 0);
    src = reopen(src_path);
    err[0] = '\0';
    KT_CHECK_EQ_INT(kg_store_copy(src, dst, 1, NULL, err, sizeof(err)), -1);
    KT_CHECK(strstr(err, "broken") != NULL);
    kg_store_close(src);
    kg_store_close(dst);
}

KT_MAIN()
