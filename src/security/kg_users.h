/* kg_users — the SASL users kgate manages for `auth: gateway` virtual clusters.
 *
 * Users live in the state store (salted SCRAM keys per mechanism, never a password). The data
 * plane never touches SQLite: it reads an immutable, reference-counted snapshot of every user,
 * published whenever a user changes (the way chaos rules are published), so a change takes
 * effect for the next authentication without a restart.
 *
 * Audit entries of authentication failures are made on event-loop threads, which must not
 * block on the store either: they are queued (bounded) and written by kg_users_flush_audit,
 * which the gateway's housekeeping timer calls about once a second.
 */
#ifndef KG_USERS_H
#define KG_USERS_H

#include <jansson.h>
#include <stdint.h>

#include "security/kg_scram.h"

typedef struct kg_store kg_store;
typedef struct kg_users kg_users;
typedef struct kg_users_set kg_users_set;

/* Loads the users of STORE (which must outlive the registry). NULL on error (logged). */
kg_users *kg_users_new(kg_store *store);
void kg_users_free(kg_users *u);

/* ---- snapshots (data plane) ---- */

kg_users_set *kg_users_acquire(kg_users *u); /* never NULL */
void kg_users_release(kg_users_set *set);
/* NAME's keys for MECHANISM (a SCRAM one) in SET, or NULL. Valid while SET is held. */
const kg_scram_keys *kg_users_find(const kg_users_set *set, const char *name,
                                   enum kg_sasl_mechanism mechanism);
/* PLAIN: 1 when NAME has a SCRAM credential that PASSWORD matches (any mechanism), else 0. */
int kg_users_check_password(const kg_users_set *set, const char *name, const char *password,
                            size_t password_len);

/* ---- management (admin API / CLI) ---- */

/* Mechanism name ("SCRAM-SHA-256", "SCRAM-SHA-512") to its enum; KG_SASL_NONE when unknown. */
enum kg_sasl_mechanism kg_users_mechanism(const char *name);

/* Sets NAME's credential for MECHANISM from PASSWORD (ITERATIONS 0 = 4096). CREATE: refuse when
 * the user already has this mechanism (409), else refuse when NAME has no credential at all
 * (404: a password change needs a user). Audited as user.create / user.password with ACTOR.
 * Returns an HTTP status (201/200 ok, 400, 404, 409, 500) with a message in ERR on failure. */
int kg_users_set_password(kg_users *u, const char *name, const char *mechanism,
                          const char *password, size_t password_len, int iterations, int create,
                          const char *actor, char *err, size_t errlen);
/* Deletes NAME (every mechanism). 0 deleted, 1 no such user, -1 error. Audited (user.delete). */
int kg_users_remove(kg_users *u, const char *name, const char *actor);
/* [{"name", "mechanisms": [{"mechanism", "iterations", "created_ts", "updated_ts"}]}]: never a
 * salt or key. NULL when out of memory. */
json_t *kg_users_list(kg_users *u);
/* One user as listed, or NULL when unknown. */
json_t *kg_users_get(kg_users *u, const char *name);

/* ---- failure audit (from event loops) ---- */

/* Queues an audit entry TYPE with DETAILS (stolen; must hold no secret). Never blocks on the
 * store; drops (and counts) entries beyond a bound. */
void kg_users_audit_later(kg_users *u, const char *type, json_t *details);
/* Writes queued entries to the store (housekeeping thread). */
void kg_users_flush_audit(kg_users *u);

#endif
