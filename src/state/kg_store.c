/* kg_store — durable state and the audit chain. See kg_store.h.
 *
 * Layering: this file owns the mutex, the transactions' shape, the audit hashing and
 * verification, and migrate-state; a backend (kg_store_sqlite.c, kg_store_pg.c) implements only
 * primitive reads and writes through kg_store_backend (kg_store_backend.h). */
#include "state/kg_store.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "state/kg_store_backend.h"
#include "util/kg_log.h"
#include "util/kg_err.h"
#include "util/kg_time.h"

#define ZERO_HASH KG_STORE_ZERO_HASH
#define VERIFY_PAGE 512

const char *const kg_store_acl_fields[7] = {"principal",    "host",          "resource_type",
                                            "pattern_type", "resource_name", "operation",
                                            "permission"};

struct kg_store {
    const kg_store_backend *ops;
    void *be;
    pthread_mutex_t lock;
};

/* ======================================================================================
 * Generic layer
 * ====================================================================================== */

static int is_postgres_url(const char *location)
{
    return strncmp(location, "postgres://", 11) == 0 || strncmp(location, "postgresql://", 13) == 0;
}

kg_store *kg_store_open_with(const char *location, const kg_store_options *opts, char *err,
                             size_t errlen)
{
    if (!location || !*location) {
        kg_errf(err, errlen, "empty state location");
        return NULL;
    }
    kg_store_options defaults = KG_STORE_OPTIONS_DEFAULT;
    if (!opts) opts = &defaults;
    kg_store *store = calloc(1, sizeof(*store));
    if (!store) {
        kg_errf(err, errlen, "out of memory");
        return NULL;
    }
    if (is_postgres_url(location)) {
        store->ops = &kg_store_pg_backend;
        store->be = kg_store_pg_open(location, opts, err, errlen);
    } else {
        store->ops = &kg_store_sqlite_backend;
        store->be = kg_store_sqlite_open(
            strncmp(location, "sqlite:", 7) == 0 ? location + 7 : location, err, errlen);
    }
    if (!store->be) {
        free(store);
        return NULL;
    }
    pthread_mutex_init(&store->lock, NULL);
    return store;
}

kg_store *kg_store_open(const char *location, char *err, size_t errlen)
{
    return kg_store_open_with(location, NULL, err, errlen);
}

const char *kg_store_backend_name(const kg_store *store)
{
    return store ? store->ops->name : NULL;
}

const char *kg_store_pg_conninfo(kg_store *store)
{
    return store && store->ops == &kg_store_pg_backend ? kg_store_pg_be_conninfo(store->be) : NULL;
}

int kg_store_schema_version(kg_store *store)
{
    return store ? store->ops->schema_version(store->be) : -1;
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
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
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

/* A COMMIT that failed may still have committed (PostgreSQL: the connection was lost after the
 * server committed, before its reply). The epoch is unique, so the stored row tells: 0 when it
 * holds ACTIVE at EPOCH (the switch is durable), -1 otherwise or when it cannot be read. */
static int switch_outcome(kg_store *store, const char *vcluster, const char *active, uint64_t epoch)
{
    char stored_active[256] = "";
    uint64_t stored_epoch = 0;
    if (store->ops->get_vcluster(store->be, vcluster, stored_active, sizeof(stored_active),
                                 &stored_epoch) != 0 ||
        stored_epoch != epoch || strcmp(stored_active, active) != 0)
        return -1;
    kg_warn("store: the commit of %s's switch to epoch %" PRIu64
            " reported an error, but the switch is stored",
            vcluster, epoch);
    return 0;
}

int kg_store_commit_switch(kg_store *store, const char *vcluster, const char *active,
                           uint64_t epoch, const char *audit_type, json_t *audit_details)
{
    char why[256];
    int rc = kg_store_commit_switch_held(store, vcluster, active, epoch, audit_type, audit_details,
                                         0, why, sizeof(why));
    if (rc == 2) kg_warn("store: switch of %s refused: %s", vcluster, why);
    return rc == 2 ? 1 : rc;
}

int kg_store_commit_switch_held(kg_store *store, const char *vcluster, const char *active,
                                uint64_t epoch, const char *audit_type, json_t *audit_details,
                                int64_t hold_id, char *why, size_t whylen)
{
    if (!store || !vcluster || !*vcluster || !active || !*active) return -1;
    char ts[32];
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
    store_lock(store);
    int rc = store->ops->begin(store->be);
    if (rc == 0) rc = check_epoch_advances(store, vcluster, epoch);
    /* The hold row is locked until the end of the transaction: a planned switch and an instance
     * that gives up on it (marks it aborted) cannot both win. */
    if (rc == 0 && store->ops->switch_guard)
        rc = store->ops->switch_guard(store->be, vcluster, hold_id, why, whylen);
    if (rc == 0) rc = store->ops->put_vcluster(store->be, vcluster, active, epoch, ts);
    if (rc == 0)
        rc = append_in_tx(store, audit_type && *audit_type ? audit_type : "switch", audit_details);
    /* In the same transaction: other instances hear of it exactly when it commits. */
    if (rc == 0 && store->ops->notify_switch) rc = store->ops->notify_switch(store->be, vcluster);
    if (rc == 1 || rc == 2) {
        store->ops->rollback(store->be); /* stale epoch or refused: nothing was written */
    } else if (rc == 0 && store->ops->commit(store->be) != 0) {
        store->ops->rollback(store->be);
        rc = switch_outcome(store, vcluster, active, epoch);
    } else if (rc != 0) {
        store->ops->rollback(store->be);
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
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
    store_lock(store);
    int rc = store->ops->put_doc(store->be, kind, id, body, ts, ts);
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
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
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
        if (!json_string_value(json_object_get(acl, kg_store_acl_fields[i]))) return -1;
    char ts[32];
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
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
        if (!json_string_value(json_object_get(acl, kg_store_acl_fields[i]))) return -1;
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
    kg_time_format_ms(kg_time_now_ms(), ts, sizeof(ts));
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

/* ---- migrate-state: copy one store into another ---- */

typedef struct copy_ctx {
    kg_store *to;
    int64_t audit;
    int64_t docs;
    int64_t last_seq;
} copy_ctx;

static int copy_audit_row(void *arg, const audit_row *row)
{
    copy_ctx *c = arg;
    if (c->to->ops->insert_audit(c->to->be, row) != 0) return -1;
    c->audit++;
    c->last_seq = row->seq;
    return 0;
}

static int copy_doc_row(void *arg, const char *kind, const char *id, const char *body,
                        const char *created_ts, const char *updated_ts)
{
    copy_ctx *c = arg;
    c->docs++;
    return c->to->ops->put_doc(c->to->be, kind, id, body, created_ts, updated_ts);
}

/* Copies the audit log page by page: a long log is never held in memory at once. */
static int copy_audit(kg_store *from, copy_ctx *c)
{
    for (;;) {
        int64_t before = c->audit;
        if (from->ops->scan_audit(from->be, c->last_seq, VERIFY_PAGE, 0, copy_audit_row, c) != 0)
            return -1;
        if (c->audit - before < VERIFY_PAGE) return 0;
    }
}

static const char *sfield(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Every row of FROM into TO, inside TO's open transaction. Both locks held. */
static int copy_rows(kg_store *from, kg_store *to, copy_ctx *c, json_t *lists[4])
{
    size_t i;
    json_t *row;
    json_array_foreach(lists[0], i, row)
    {
        if (to->ops->put_vcluster(to->be, sfield(row, "vcluster"), sfield(row, "active"),
                                  (uint64_t)json_integer_value(json_object_get(row, "epoch")),
                                  sfield(row, "updated_ts")) != 0)
            return -1;
    }
    if (copy_audit(from, c) != 0) return -1;
    int64_t head_seq;
    char head_hash[KG_STORE_HASH_HEX + 1];
    int rc = from->ops->get_head(from->be, &head_seq, head_hash);
    if (rc < 0 || (rc == 0 && to->ops->put_head(to->be, head_seq, head_hash) != 0)) return -1;
    if (from->ops->scan_all_docs(from->be, copy_doc_row, c) != 0) return -1;
    json_array_foreach(lists[1], i, row)
    {
        if (to->ops->put_user_cred(to->be, sfield(row, "name"), row, sfield(row, "updated_ts")) !=
            0)
            return -1;
    }
    json_array_foreach(lists[2], i, row)
    {
        if (to->ops->put_acl(to->be, row, sfield(row, "created_ts")) < 0) return -1;
    }
    json_array_foreach(lists[3], i, row)
    {
        if (to->ops->put_token(to->be, row, sfield(row, "created_ts")) < 0) return -1;
    }
    return 0;
}

/* Refuses a target holding state unless FORCE. Caller holds TO's lock. */
static int copy_check_target(kg_store *to, int force, char *err, size_t errlen)
{
    int64_t rows = to->ops->count_rows(to->be);
    if (rows < 0) {
        kg_errf(err, errlen, "cannot read the target: %s", to->ops->errmsg(to->be));
        return -1;
    }
    if (rows > 0 && !force) {
        kg_errf(err, errlen,
                "the target already holds %lld rows of state: use --force to replace them",
                (long long)rows);
        return -1;
    }
    return 0;
}

static int copy_locked(kg_store *from, kg_store *to, int force, copy_ctx *c, json_t *lists[4],
                       char *err, size_t errlen)
{
    lists[0] = from->ops->list_vclusters(from->be);
    lists[1] = from->ops->list_users(from->be);
    lists[2] = from->ops->list_acls(from->be);
    lists[3] = from->ops->list_tokens(from->be);
    if (!lists[0] || !lists[1] || !lists[2] || !lists[3]) {
        kg_errf(err, errlen, "cannot read the source: %s", from->ops->errmsg(from->be));
        return -1;
    }
    /* The emptiness check inside the write transaction: no instance can write in between. */
    if (to->ops->begin(to->be) != 0) {
        kg_errf(err, errlen, "cannot write the target: %s", to->ops->errmsg(to->be));
        return -1;
    }
    if (copy_check_target(to, force, err, errlen) != 0) {
        to->ops->rollback(to->be);
        return -1;
    }
    int rc = force ? to->ops->wipe(to->be) : 0;
    if (rc == 0) rc = copy_rows(from, to, c, lists);
    if (rc != 0) {
        kg_errf(err, errlen, "copy failed (nothing written): %s", to->ops->errmsg(to->be));
        to->ops->rollback(to->be);
        return -1;
    }
    if (to->ops->commit(to->be) != 0) {
        kg_errf(err, errlen, "commit failed: %s", to->ops->errmsg(to->be));
        to->ops->rollback(to->be);
        return -1;
    }
    return 0;
}

/* Verifies STORE's chain; 0 intact with its head in HASH, -1 (ERR says why) otherwise. */
static int copy_verify(kg_store *store, const char *side, int64_t *last_seq,
                       char hash[KG_STORE_HASH_HEX + 1], char *err, size_t errlen)
{
    json_t *report = NULL;
    int rc = kg_store_audit_verify(store, &report);
    if (rc != 0) {
        const char *why = sfield(report, rc < 0 ? "error" : "message");
        kg_errf(err, errlen, "the %s audit chain %s: %s", side,
                rc < 0 ? "cannot be read" : "is broken", why ? why : "?");
    } else {
        *last_seq = json_integer_value(json_object_get(report, "last_seq"));
        snprintf(hash, KG_STORE_HASH_HEX + 1, "%s", sfield(report, "last_hash"));
    }
    json_decref(report);
    return rc == 0 ? 0 : -1;
}

int kg_store_copy(kg_store *from, kg_store *to, int force, json_t **summary, char *err,
                  size_t errlen)
{
    if (summary) *summary = NULL;
    if (!from || !to || from == to) {
        kg_errf(err, errlen, "need two different stores");
        return -1;
    }
    int64_t from_seq, to_seq;
    char from_hash[KG_STORE_HASH_HEX + 1], to_hash[KG_STORE_HASH_HEX + 1];
    /* A broken chain is not copied: the copy would launder it into a fresh, intact-looking one. */
    if (copy_verify(from, "source", &from_seq, from_hash, err, errlen) != 0) return -1;
    copy_ctx c = {.to = to};
    json_t *lists[4] = {NULL, NULL, NULL, NULL};
    store_lock(from);
    store_lock(to);
    int rc = copy_locked(from, to, force, &c, lists, err, errlen);
    store_unlock(to);
    store_unlock(from);
    if (rc == 0 && copy_verify(to, "copied", &to_seq, to_hash, err, errlen) != 0) rc = -1;
    if (rc == 0 && (to_seq != from_seq || strcmp(to_hash, from_hash) != 0)) {
        kg_errf(err, errlen,
                "the copy's audit head (%lld, %s) differs from the source's (%lld, %s)",
                (long long)to_seq, to_hash, (long long)from_seq, from_hash);
        rc = -1;
    }
    if (rc == 0 && summary)
        *summary = json_pack(
            "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "vclusters",
            (json_int_t)json_array_size(lists[0]), "audit_entries", (json_int_t)c.audit,
            "documents", (json_int_t)c.docs, "users", (json_int_t)json_array_size(lists[1]), "acls",
            (json_int_t)json_array_size(lists[2]), "tokens", (json_int_t)json_array_size(lists[3]),
            "last_seq", (json_int_t)to_seq, "head_hash", to_hash);
    for (int i = 0; i < 4; i++)
        json_decref(lists[i]);
    return rc;
}
