/* kg_admin_tokens — admin API tokens with roles (issue 8, item 6; docs/security.md):
 *
 *   GET    /v1/tokens          {"tokens": [token...]}                             admin
 *   POST   /v1/tokens          {"name", "role"} 201 {"name", "role", "token", ...} admin
 *                              | 400 | 409 (the name exists)
 *   GET    /v1/tokens/{name}   200 token | 404                                    admin
 *   DELETE /v1/tokens/{name}   204 | 404 | 409 (the bootstrap token, the last admin)  admin
 *
 * A token is {"name", "role", "source": "store"|"config", "created_ts", "created_by"}: never the
 * secret nor its hash. The secret is made by kgate (32 random bytes, "kgt_" + base64url), returned
 * once by POST, and only its SHA-256 is kept, in the state store's tokens table. The config's
 * admin.token / token_file is the "bootstrap" token, with the admin role; it is listed but can
 * only be removed from the config file. Adding and removing are audited ("token.add",
 * "token.remove") with the caller's identity.
 *
 * Safety nets: without a bootstrap token, the first token must have the admin role, and the last
 * admin token cannot be removed while other tokens exist (either would lock every admin out).
 */
#ifndef KG_ADMIN_TOKENS_H
#define KG_ADMIN_TOKENS_H

#include <stddef.h>

#include "admin/kg_admin.h"
#include "state/kg_store.h"

#define KG_ADMIN_TOKEN_NAME_MAX 64
#define KG_ADMIN_TOKEN_PREFIX "kgt_"
#define KG_ADMIN_TOKEN_LEN (4 + 43) /* "kgt_" + base64url of 32 bytes, unpadded */
#define KG_ADMIN_BOOTSTRAP_NAME "bootstrap"
#define KG_ADMIN_TOKENS_N_ROUTES 4

/* SHA-256 of TOKEN, raw and as lowercase hex. */
void kg_admin_token_digest(const char *token, unsigned char out[32]);
void kg_admin_token_digest_hex(const char *token, char out[KG_STORE_HASH_HEX + 1]);

/* A fresh secret, NUL-terminated. 0 ok, -1 when no randomness is available. */
int kg_admin_token_generate(char out[KG_ADMIN_TOKEN_LEN + 1]);

/* A name a token may have: 1-64 of [A-Za-z0-9._-], and not "bootstrap". */
int kg_admin_token_name_valid(const char *name);

typedef struct kg_admin_identity {
    char name[KG_ADMIN_TOKEN_NAME_MAX + 1];
    kg_admin_role role;
} kg_admin_identity;

/* Which token PRESENTED (NULL: none was sent) is. Its digest is compared with BOOTSTRAP_DIGEST
 * (NULL: no bootstrap token) and with every stored token's, each comparison in constant time and
 * without stopping at a match, so the time taken says nothing about which token or how much of
 * it matched. *ANY_TOKEN is set to 1 when at least one token exists (bootstrap or stored), that
 * is when the API needs one. Returns 1 found (*WHO set), 0 not found, -1 the store cannot be read
 * (*ANY_TOKEN is then 1: fail closed). STORE may be NULL. */
int kg_admin_token_identify(kg_store *store, const unsigned char *bootstrap_digest,
                            const char *presented, kg_admin_identity *who, int *any_token);

/* Fills OUT with the /v1/tokens routes (their handlers use req->admin); returns how many. */
int kg_admin_tokens_routes(kg_admin_route out[KG_ADMIN_TOKENS_N_ROUTES]);

#endif
