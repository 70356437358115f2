#include "security/kg_users.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "state/kg_store.h"
#include "util/kg_log.h"

#define KG_USERS_NAME_MAX 128
#define KG_USERS_AUDIT_QUEUE 256

typedef struct users_entry {
    char *name;
    kg_scram_keys keys[2]; /* [0] SCRAM-SHA-256, [1] SCRAM-SHA-512 */
    int has[2];
} users_entry;

struct kg_users_set {
    atomic_int refs;
    users_entry *users; /* sorted by name */
    int n;
};

typedef struct audit_item {
    char *type;
    json_t *details;
} audit_item;

struct kg_users {
    kg_store *store;
    /* Two locks so that the data plane never waits on SQLite: ADMIN_LOCK serializes the
     * management calls (which write and re-read the store); LOCK only guards the pointer swap of
     * CURRENT, which is all kg_users_acquire takes. CURRENT changes with both held. */
    pthread_mutex_t admin_lock;
    pthread_mutex_t lock;
    kg_users_set *current;
    pthread_mutex_t audit_lock;
    audit_item audit[KG_USERS_AUDIT_QUEUE];
    int n_audit;
    uint64_t audit_dropped;
};

static int mech_slot(enum kg_sasl_mechanism m)
{
    return m == KG_SASL_SCRAM_SHA_256 ? 0 : m == KG_SASL_SCRAM_SHA_512 ? 1 : -1;
}

static const char *const mech_names[2] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};

enum kg_sasl_mechanism kg_users_mechanism(const char *name)
{
    if (name && strcmp(name, mech_names[0]) == 0) return KG_SASL_SCRAM_SHA_256;
    if (name && strcmp(name, mech_names[1]) == 0) return KG_SASL_SCRAM_SHA_512;
    return KG_SASL_NONE;
}

/* ---------------------------------------------------------------- snapshots */

static void set_free(kg_users_set *set)
{
    for (int i = 0; i < set->n; i++) {
        free(set->users[i].name);
        OPENSSL_cleanse(set->users[i].keys, sizeof(set->users[i].keys));
    }
    free(set->users);
    free(set);
}

kg_users_set *kg_users_acquire(kg_users *u)
{
    pthread_mutex_lock(&u->lock);
    kg_users_set *set = u->current;
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&u->lock);
    return set;
}

void kg_users_release(kg_users_set *set)
{
    if (set && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1) set_free(set);
}

static const users_entry *set_lookup(const kg_users_set *set, const char *name)
{
    int lo = 0, hi = set->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(set->users[mid].name, name);
        if (c == 0) return &set->users[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const kg_scram_keys *kg_users_find(const kg_users_set *set, const char *name,
                                   enum kg_sasl_mechanism mechanism)
{
    int slot = mech_slot(mechanism);
    const users_entry *e = slot >= 0 ? set_lookup(set, name) : NULL;
    return e && e->has[slot] ? &e->keys[slot] : NULL;
}

/* Keys no password matches, for unknown users: PLAIN then costs the same whether or not the
 * name exists, so timing tells names apart no more than SCRAM's made-up salts do. */
static kg_scram_keys nobody_keys;
static pthread_once_t nobody_once = PTHREAD_ONCE_INIT;

static void nobody_init(void)
{
    if (kg_scram_derive_new(KG_SASL_SCRAM_SHA_512, "", 0, KG_SCRAM_MIN_ITERATIONS, &nobody_keys) <
        0)
        nobody_keys.key_len = 0;
    RAND_bytes(nobody_keys.stored_key, sizeof(nobody_keys.stored_key));
}

int kg_users_check_password(const kg_users_set *set, const char *name, const char *password,
                            size_t password_len)
{
    const users_entry *e = set_lookup(set, name);
    if (!e) {
        pthread_once(&nobody_once, nobody_init);
        kg_scram_check_password(&nobody_keys, password, password_len);
        return 0;
    }
    /* One mechanism's keys decide: checking both would double the PBKDF2 work. */
    int slot = e->has[0] ? 0 : 1;
    return e->has[slot] && kg_scram_check_password(&e->keys[slot], password, password_len);
}

/* Decodes one stored row into E's slot. -1 when the row is damaged (logged, skipped). */
static int row_to_keys(json_t *row, users_entry *e)
{
    enum kg_sasl_mechanism m =
        kg_users_mechanism(json_string_value(json_object_get(row, "mechanism")));
    int slot = mech_slot(m);
    if (slot < 0) return -1;
    kg_scram_keys *k = &e->keys[slot];
    const char *salt = json_string_value(json_object_get(row, "salt"));
    const char *sk = json_string_value(json_object_get(row, "stored_key"));
    const char *vk = json_string_value(json_object_get(row, "server_key"));
    json_int_t iters = json_integer_value(json_object_get(row, "iterations"));
    if (!salt || !sk || !vk || iters < KG_SCRAM_MIN_ITERATIONS || iters > KG_SCRAM_MAX_ITERATIONS)
        return -1;
    int sl = kg_scram_b64_decode(salt, strlen(salt), k->salt, sizeof(k->salt));
    int a = kg_scram_b64_decode(sk, strlen(sk), k->stored_key, sizeof(k->stored_key));
    int b = kg_scram_b64_decode(vk, strlen(vk), k->server_key, sizeof(k->server_key));
    size_t n = kg_scram_key_len(m);
    if (sl <= 0 || a != (int)n || b != (int)n) return -1;
    k->mechanism = m;
    k->salt_len = (size_t)sl;
    k->iterations = (uint32_t)iters;
    k->key_len = n;
    e->has[slot] = 1;
    return 0;
}

/* Builds a snapshot from the store's rows (sorted by name, then mechanism). */
static kg_users_set *set_from_rows(json_t *rows)
{
    kg_users_set *set = calloc(1, sizeof(*set));
    size_t n = json_array_size(rows);
    if (!set || !(set->users = calloc(n ? n : 1, sizeof(*set->users)))) {
        free(set);
        return NULL;
    }
    atomic_init(&set->refs, 1);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *name = json_string_value(json_object_get(row, "name"));
        if (!name) continue;
        users_entry *e = set->n > 0 && strcmp(set->users[set->n - 1].name, name) == 0
                             ? &set->users[set->n - 1]
                             : NULL;
        if (!e) {
            e = &set->users[set->n];
            if (!(e->name = strdup(name))) {
                set_free(set);
                return NULL;
            }
            set->n++;
        }
        if (row_to_keys(row, e) < 0) kg_warn("users: damaged credential of %s skipped", name);
    }
    return set;
}

/* Re-reads the store and publishes a fresh snapshot (ADMIN_LOCK held). On failure the old one
 * stays. */
static int publish(kg_users *u)
{
    json_t *rows = kg_store_list_users(u->store);
    kg_users_set *set = rows ? set_from_rows(rows) : NULL;
    json_decref(rows);
    if (!set) {
        kg_error("users: cannot read the users from the state store");
        return -1;
    }
    pthread_mutex_lock(&u->lock);
    kg_users_set *old = u->current;
    u->current = set;
    pthread_mutex_unlock(&u->lock);
    kg_users_release(old);
    return 0;
}

kg_users *kg_users_new(kg_store *store)
{
    kg_users *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->store = store;
    pthread_mutex_init(&u->admin_lock, NULL);
    pthread_mutex_init(&u->lock, NULL);
    pthread_mutex_init(&u->audit_lock, NULL);
    if (publish(u) < 0) {
        kg_users_free(u);
        return NULL;
    }
    return u;
}

void kg_users_free(kg_users *u)
{
    if (!u) return;
    kg_users_flush_audit(u);
    kg_users_release(u->current);
    pthread_mutex_destroy(&u->admin_lock);
    pthread_mutex_destroy(&u->lock);
    pthread_mutex_destroy(&u->audit_lock);
    free(u);
}

/* ---------------------------------------------------------------- management */

static int valid_user_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KG_USERS_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return 0;
    }
    return 1;
}

static json_t *keys_to_row(const kg_scram_keys *k)
{
    char salt[KG_SCRAM_SALT_MAX * 2], sk[KG_SCRAM_KEY_MAX * 2], vk[KG_SCRAM_KEY_MAX * 2];
    kg_scram_b64_encode(k->salt, k->salt_len, salt);
    kg_scram_b64_encode(k->stored_key, k->key_len, sk);
    kg_scram_b64_encode(k->server_key, k->key_len, vk);
    json_t *row = json_pack("{s:s, s:s, s:I, s:s, s:s}", "mechanism",
                            mech_names[mech_slot(k->mechanism)], "salt", salt, "iterations",
                            (json_int_t)k->iterations, "stored_key", sk, "server_key", vk);
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(vk, sizeof(vk));
    return row;
}

static int check_request(const char *name, enum kg_sasl_mechanism m, size_t password_len,
                         int iterations, char *err, size_t errlen)
{
    if (!valid_user_name(name)) {
        snprintf(err, errlen,
                 "name: 1-%d characters of letters, digits, '.', '_', '-' and '@' expected",
                 KG_USERS_NAME_MAX);
        return 400;
    }
    if (m == KG_SASL_NONE) {
        snprintf(err, errlen, "mechanism: SCRAM-SHA-256 or SCRAM-SHA-512 expected");
        return 400;
    }
    if (password_len == 0 || password_len > 1024) {
        snprintf(err, errlen, "password: 1-1024 bytes expected");
        return 400;
    }
    if (iterations != 0 &&
        (iterations < KG_SCRAM_MIN_ITERATIONS || iterations > KG_SCRAM_MAX_ITERATIONS)) {
        snprintf(err, errlen, "iterations: %d-%d expected", KG_SCRAM_MIN_ITERATIONS,
                 KG_SCRAM_MAX_ITERATIONS);
        return 400;
    }
    return 0;
}

int kg_users_set_password(kg_users *u, const char *name, const char *mechanism,
                          const char *password, size_t password_len, int iterations, int create,
                          const char *actor, char *err, size_t errlen)
{
    enum kg_sasl_mechanism m = kg_users_mechanism(mechanism);
    int status = check_request(name, m, password_len, iterations, err, errlen);
    if (status) return status;
    kg_scram_keys k;
    if (kg_scram_derive_new(m, password, password_len,
                            iterations ? (uint32_t)iterations : KG_SCRAM_MIN_ITERATIONS, &k) < 0) {
        snprintf(err, errlen, "cannot derive the keys");
        return 500;
    }
    json_t *row = keys_to_row(&k);
    OPENSSL_cleanse(&k, sizeof(k));
    json_t *audit = json_pack("{s:s, s:s, s:s, s:i}", "user", name, "mechanism", mechanism, "actor",
                              actor ? actor : "", "iterations",
                              iterations ? iterations : KG_SCRAM_MIN_ITERATIONS);
    pthread_mutex_lock(&u->admin_lock);
    const users_entry *e = set_lookup(u->current, name);
    int has_mech = e && e->has[mech_slot(m)];
    if (create && has_mech) {
        snprintf(err, errlen, "user %s already has a %s credential", name, mechanism);
        status = 409;
    } else if (!create && !e) {
        snprintf(err, errlen, "no user \"%s\"", name);
        status = 404;
    } else if (!row || !audit ||
               kg_store_put_user_cred(u->store, name, row, create ? "user.create" : "user.password",
                                      audit) != 0 ||
               publish(u) < 0) {
        snprintf(err, errlen, "cannot store the user");
        status = 500;
    } else {
        status = create ? 201 : 200;
    }
    pthread_mutex_unlock(&u->admin_lock);
    json_decref(row);
    json_decref(audit);
    return status;
}

int kg_users_remove(kg_users *u, const char *name, const char *actor)
{
    json_t *audit = json_pack("{s:s, s:s}", "user", name, "actor", actor ? actor : "");
    pthread_mutex_lock(&u->admin_lock);
    int rc = audit ? kg_store_delete_user(u->store, name, NULL, "user.delete", audit) : -1;
    if (rc == 0) publish(u);
    pthread_mutex_unlock(&u->admin_lock);
    json_decref(audit);
    return rc;
}

/* The store's rows of one user (or every user when NAME is NULL), without secrets. */
static json_t *describe(kg_users *u, const char *name)
{
    json_t *rows = kg_store_list_users(u->store);
    json_t *out = json_array();
    json_t *cur = NULL;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *n = json_string_value(json_object_get(row, "name"));
        if (!n || (name && strcmp(n, name) != 0)) continue;
        if (!cur || strcmp(json_string_value(json_object_get(cur, "name")), n) != 0) {
            cur = json_pack("{s:s, s:[]}", "name", n, "mechanisms");
            json_array_append_new(out, cur);
        }
        json_array_append_new(json_object_get(cur, "mechanisms"),
                              json_pack("{s:O, s:O, s:O, s:O}", "mechanism",
                                        json_object_get(row, "mechanism"), "iterations",
                                        json_object_get(row, "iterations"), "created_ts",
                                        json_object_get(row, "created_ts"), "updated_ts",
                                        json_object_get(row, "updated_ts")));
    }
    json_decref(rows);
    return out;
}

json_t *kg_users_list(kg_users *u)
{
    return describe(u, NULL);
}

json_t *kg_users_get(kg_users *u, const char *name)
{
    json_t *all = describe(u, name);
    json_t *one = json_array_size(all) ? json_incref(json_array_get(all, 0)) : NULL;
    json_decref(all);
    return one;
}

/* ---------------------------------------------------------------- failure audit */

void kg_users_audit_later(kg_users *u, const char *type, json_t *details)
{
    char *t = strdup(type);
    pthread_mutex_lock(&u->audit_lock);
    if (t && details && u->n_audit < KG_USERS_AUDIT_QUEUE) {
        u->audit[u->n_audit++] = (audit_item){t, details};
        t = NULL;
        details = NULL;
    } else {
        u->audit_dropped++;
    }
    pthread_mutex_unlock(&u->audit_lock);
    free(t);
    json_decref(details);
}

void kg_users_flush_audit(kg_users *u)
{
    audit_item batch[KG_USERS_AUDIT_QUEUE];
    pthread_mutex_lock(&u->audit_lock);
    int n = u->n_audit;
    uint64_t dropped = u->audit_dropped;
    memcpy(batch, u->audit, sizeof(batch[0]) * (size_t)n);
    u->n_audit = 0;
    u->audit_dropped = 0;
    pthread_mutex_unlock(&u->audit_lock);
    for (int i = 0; i < n; i++) {
        kg_store_audit_append(u->store, batch[i].type, batch[i].details);
        free(batch[i].type);
        json_decref(batch[i].details);
    }
    if (dropped) {
        json_t *d = json_pack("{s:I}", "dropped", (json_int_t)dropped);
        kg_store_audit_append(u->store, "auth.failures_dropped", d);
        json_decref(d);
    }
}
