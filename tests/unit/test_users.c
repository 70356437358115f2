/* kg_users over a real store: users persist as salted keys only, every change is audited
 * without secrets, snapshots see changes without a restart, failure audits are queued. */
#include "kt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "security/kg_users.h"
#include "state/kg_store.h"

static kg_store *fresh_store(char *path, size_t len)
{
    snprintf(path, len, "/tmp/kg_test_users.%d.db", (int)getpid());
    char side[300];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    char err[256];
    return kg_store_open(path, err, sizeof(err));
}

static void remove_store(const char *path)
{
    char side[300];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}

/* The whole audit log as one string, to look for what must not be in it. */
static char *audit_text(kg_store *st)
{
    json_t *all = kg_store_audit_list(st, 0, 1000);
    char *text = json_dumps(all, JSON_COMPACT);
    json_decref(all);
    return text;
}

KT_TEST(users_persist_keys_only_and_are_audited)
{
    char path[256];
    kg_store *st = fresh_store(path, sizeof(path));
    KT_CHECK(st != NULL);
    kg_users *u = kg_users_new(st);
    KT_CHECK(u != NULL);
    char err[256];
    KT_CHECK_EQ_INT(kg_users_set_password(u, "alice", "SCRAM-SHA-512", "hunter22", 8, 0, 1, "ops",
                                          err, sizeof(err)),
                    201);
    KT_CHECK_EQ_INT(
        kg_users_set_password(u, "alice", "SCRAM-SHA-512", "x", 1, 0, 1, "ops", err, sizeof(err)),
        409);
    KT_CHECK_EQ_INT(
        kg_users_set_password(u, "bob", "SCRAM-SHA-256", "x", 1, 0, 0, "ops", err, sizeof(err)),
        404);
    KT_CHECK_EQ_INT(kg_users_set_password(u, "bad name", "SCRAM-SHA-256", "x", 1, 0, 1, "ops", err,
                                          sizeof(err)),
                    400);
    KT_CHECK_EQ_INT(
        kg_users_set_password(u, "carol", "PLAIN", "x", 1, 0, 1, "ops", err, sizeof(err)), 400);
    KT_CHECK_EQ_INT(kg_users_set_password(u, "carol", "SCRAM-SHA-256", "x", 1, 1000, 1, "ops", err,
                                          sizeof(err)),
                    400);
    /* The snapshot taken now sees alice; PLAIN checks against her SCRAM keys. */
    kg_users_set *set = kg_users_acquire(u);
    KT_CHECK(kg_users_find(set, "alice", KG_SASL_SCRAM_SHA_512) != NULL);
    KT_CHECK(kg_users_find(set, "alice", KG_SASL_SCRAM_SHA_256) == NULL);
    KT_CHECK(kg_users_check_password(set, "alice", "hunter22", 8));
    KT_CHECK(!kg_users_check_password(set, "alice", "hunter23", 8));
    KT_CHECK(!kg_users_check_password(set, "nobody", "hunter22", 8));
    /* A password change publishes a new snapshot; the held one stays as it was. */
    KT_CHECK_EQ_INT(kg_users_set_password(u, "alice", "SCRAM-SHA-512", "newpass", 7, 8192, 0, "ops",
                                          err, sizeof(err)),
                    200);
    kg_users_set *now = kg_users_acquire(u);
    KT_CHECK(kg_users_check_password(now, "alice", "newpass", 7));
    KT_CHECK(kg_users_find(now, "alice", KG_SASL_SCRAM_SHA_512)->iterations == 8192);
    KT_CHECK(kg_users_check_password(set, "alice", "hunter22", 8));
    kg_users_release(set);
    kg_users_release(now);
    /* Listing never shows a secret; the store's rows hold keys, never the password. */
    json_t *list = kg_users_list(u);
    char *text = json_dumps(list, JSON_COMPACT);
    KT_CHECK(text && strstr(text, "\"alice\"") && !strstr(text, "salt") && !strstr(text, "key"));
    free(text);
    json_decref(list);
    json_t *rows = kg_store_list_users(st);
    text = json_dumps(rows, JSON_COMPACT);
    KT_CHECK(text && strstr(text, "stored_key") && !strstr(text, "newpass"));
    free(text);
    json_decref(rows);
    KT_CHECK_EQ_INT(kg_users_remove(u, "alice", "ops"), 0);
    KT_CHECK_EQ_INT(kg_users_remove(u, "alice", "ops"), 1);
    set = kg_users_acquire(u);
    KT_CHECK(kg_users_find(set, "alice", KG_SASL_SCRAM_SHA_512) == NULL);
    kg_users_release(set);
    /* Failure audits are queued and written by the flush. */
    kg_users_audit_later(u, "auth.failure", json_pack("{s:s}", "user", "mallory"));
    kg_users_flush_audit(u);
    text = audit_text(st);
    KT_CHECK(text && strstr(text, "user.create") && strstr(text, "user.password") &&
             strstr(text, "user.delete") && strstr(text, "mallory"));
    KT_CHECK(text && !strstr(text, "hunter22") && !strstr(text, "newpass") &&
             !strstr(text, "stored_key"));
    free(text);
    kg_users_free(u);
    json_t *report = NULL;
    KT_CHECK_EQ_INT(kg_store_audit_verify(st, &report), 0);
    json_decref(report);
    kg_store_close(st);
    remove_store(path);
}

KT_TEST(users_survive_a_restart)
{
    char path[256];
    kg_store *st = fresh_store(path, sizeof(path));
    kg_users *u = kg_users_new(st);
    char err[256];
    KT_CHECK_EQ_INT(kg_users_set_password(u, "svc.orders", "SCRAM-SHA-256", "pw", 2, 0, 1, "ops",
                                          err, sizeof(err)),
                    201);
    kg_users_free(u);
    kg_store_close(st);
    st = kg_store_open(path, err, sizeof(err));
    u = kg_users_new(st);
    kg_users_set *set = kg_users_acquire(u);
    KT_CHECK(kg_users_check_password(set, "svc.orders", "pw", 2));
    kg_users_release(set);
    kg_users_free(u);
    kg_store_close(st);
    remove_store(path);
}

KT_MAIN()
