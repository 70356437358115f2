/* kg_admin_tokens — see kg_admin_tokens.h. */
#include "admin/kg_admin_tokens.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util/kg_log.h"

/* ---- secrets and digests ---- */

void kg_admin_token_digest(const char *token, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(token, strlen(token), out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        memset(out, 0, 32); /* never equal to a real token's digest in practice */
}

void kg_admin_token_digest_hex(const char *token, char out[KG_STORE_HASH_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[32];
    kg_admin_token_digest(token, d);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}

int kg_admin_token_generate(char out[KG_ADMIN_TOKEN_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33]; /* 32 random bytes and a zero byte, so the last group is whole */
    if (RAND_bytes(raw, 32) != 1) return -1;
    raw[32] = 0;
    size_t o = strlen(KG_ADMIN_TOKEN_PREFIX);
    memcpy(out, KG_ADMIN_TOKEN_PREFIX, o);
    for (int i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0 && o < KG_ADMIN_TOKEN_LEN; k--)
            out[o++] = alphabet[(v >> (6 * k)) & 63];
    }
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return o == KG_ADMIN_TOKEN_LEN ? 0 : -1;
}

int kg_admin_token_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KG_ADMIN_TOKEN_NAME_MAX || strcmp(name, KG_ADMIN_BOOTSTRAP_NAME) == 0)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        if (!ok) return 0;
    }
    return 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 0 when HEX is 64 hex digits, decoded into OUT. */
static int decode_digest(const char *hex, unsigned char out[32])
{
    if (!hex || strlen(hex) != 64) return -1;
    for (int i = 0; i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int kg_admin_token_identify(kg_store *store, const unsigned char *bootstrap_digest,
                            const char *presented, kg_admin_identity *who, int *any_token)
{
    *any_token = bootstrap_digest != NULL;
    json_t *rows = NULL;
    if (store) {
        rows = kg_store_list_tokens(store);
        if (!rows) {
            *any_token = 1;
            /* The configuration's token needs no store: with the state store out of reach (a
             * fleet instance cut off from PostgreSQL) it still opens status and metrics. */
            unsigned char digest[32];
            if (!presented || !bootstrap_digest) return -1;
            kg_admin_token_digest(presented, digest);
            if (CRYPTO_memcmp(digest, bootstrap_digest, 32) != 0) return -1;
            snprintf(who->name, sizeof(who->name), "%s", KG_ADMIN_BOOTSTRAP_NAME);
            who->role = KG_ROLE_ADMIN;
            return 1;
        }
        if (json_array_size(rows) > 0) *any_token = 1;
    }
    if (!presented) {
        json_decref(rows);
        return 0;
    }
    unsigned char digest[32];
    kg_admin_token_digest(presented, digest);
    int found = 0;
    if (bootstrap_digest && CRYPTO_memcmp(digest, bootstrap_digest, 32) == 0) {
        snprintf(who->name, sizeof(who->name), "%s", KG_ADMIN_BOOTSTRAP_NAME);
        who->role = KG_ROLE_ADMIN;
        found = 1;
    }
    /* Every row is compared, a match does not end the loop. */
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        unsigned char stored[32];
        if (decode_digest(json_string_value(json_object_get(row, "hash")), stored) != 0) continue;
        int equal = CRYPTO_memcmp(digest, stored, 32) == 0;
        kg_admin_role role = kg_admin_role_parse(json_string_value(json_object_get(row, "role")));
        if (equal && !found && role != KG_ROLE_UNDECLARED) {
            snprintf(who->name, sizeof(who->name), "%s",
                     json_string_value(json_object_get(row, "name")));
            who->role = role;
            found = 1;
        }
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    json_decref(rows);
    return found;
}

/* ---- routes ---- */

/* A stored row as the API shows it: no hash. */
static json_t *public_token(const json_t *row)
{
    return json_pack("{s:O, s:O, s:s, s:O, s:O}", "name", json_object_get(row, "name"), "role",
                     json_object_get(row, "role"), "source", "store", "created_ts",
                     json_object_get(row, "created_ts"), "created_by",
                     json_object_get(row, "created_by"));
}

static json_t *bootstrap_token(void)
{
    return json_pack("{s:s, s:s, s:s}", "name", KG_ADMIN_BOOTSTRAP_NAME, "role",
                     kg_admin_role_name(KG_ROLE_ADMIN), "source", "config");
}

/* The store of the API, or the 503 set (*STATUS). */
static kg_store *store_or_503(kg_admin_request *req, int *status)
{
    kg_store *store = kg_admin_store(req->admin);
    if (!store) *status = kg_admin_error(req, 503, "no state store: tokens cannot be kept");
    return store;
}

static json_t *find_row(json_t *rows, const char *name)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) if (strcmp(json_string_value(json_object_get(row, "name")),
                                                name) == 0) return row;
    return NULL;
}

static int handle_list(void *ctx, kg_admin_request *req)
{
    int status = 0;
    kg_store *store = store_or_503(req, &status);
    if (!store) return status;
    json_t *rows = kg_store_list_tokens(store);
    if (!rows) return kg_admin_error(req, 500, "cannot read the tokens");
    json_t *out = json_array();
    if (kg_admin_has_bootstrap_token(req->admin)) json_array_append_new(out, bootstrap_token());
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(out, public_token(row));
    json_decref(rows);
    return kg_admin_reply(req, 200, json_pack("{s:o}", "tokens", out));
}

static int handle_get(void *ctx, kg_admin_request *req)
{
    const char *name = req->params[0];
    if (strcmp(name, KG_ADMIN_BOOTSTRAP_NAME) == 0 && kg_admin_has_bootstrap_token(req->admin))
        return kg_admin_reply(req, 200, bootstrap_token());
    int status = 0;
    kg_store *store = store_or_503(req, &status);
    if (!store) return status;
    json_t *rows = kg_store_list_tokens(store);
    if (!rows) return kg_admin_error(req, 500, "cannot read the tokens");
    json_t *row = find_row(rows, name);
    json_t *out = row ? public_token(row) : NULL;
    json_decref(rows);
    if (!out) return kg_admin_error(req, 404, "no token \"%s\"", name);
    return kg_admin_reply(req, 200, out);
}

static int count_role(json_t *rows, kg_admin_role role)
{
    int n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) if (kg_admin_role_parse(json_string_value(
                                             json_object_get(row, "role"))) == role) n++;
    return n;
}

static int handle_add(void *ctx, kg_admin_request *req)
{
    static const kg_admin_field fields[] = {
        {"name", KG_FIELD_STRING, 1}, {"role", KG_FIELD_STRING, 1}, {NULL}};
    int status = kg_admin_check_fields(req, fields);
    if (status) return status;
    const char *name = json_string_value(json_object_get(req->body, "name"));
    const char *role_name = json_string_value(json_object_get(req->body, "role"));
    if (!kg_admin_token_name_valid(name))
        return kg_admin_error(req, 400,
                              "field \"name\": 1 to %d of A-Z a-z 0-9 . _ - expected, and not "
                              "\"%s\"",
                              KG_ADMIN_TOKEN_NAME_MAX, KG_ADMIN_BOOTSTRAP_NAME);
    kg_admin_role role = kg_admin_role_parse(role_name);
    if (role == KG_ROLE_UNDECLARED)
        return kg_admin_error(req, 400, "field \"role\": viewer, operator or admin expected");
    kg_store *store = store_or_503(req, &status);
    if (!store) return status;
    json_t *rows = kg_store_list_tokens(store);
    if (!rows) return kg_admin_error(req, 500, "cannot read the tokens");
    int first = json_array_size(rows) == 0 && !kg_admin_has_bootstrap_token(req->admin);
    json_decref(rows);
    if (first && role != KG_ROLE_ADMIN)
        return kg_admin_error(req, 409,
                              "the first token must have the admin role: no bootstrap token is "
                              "configured (admin.token), so a %s token alone would lock every "
                              "admin out",
                              kg_admin_role_name(role));

    char secret[KG_ADMIN_TOKEN_LEN + 1], hash[KG_STORE_HASH_HEX + 1];
    if (kg_admin_token_generate(secret) != 0)
        return kg_admin_error(req, 500, "no randomness available for a token");
    kg_admin_token_digest_hex(secret, hash);
    json_t *row = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "role", kg_admin_role_name(role),
                            "hash", hash, "created_by", req->actor);
    json_t *audit = json_pack("{s:s, s:s, s:s}", "name", name, "role", kg_admin_role_name(role),
                              "actor", req->actor);
    int rc = row && audit ? kg_store_put_token(store, row, "token.add", audit) : -1;
    json_decref(row);
    json_decref(audit);
    if (rc == 1) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return kg_admin_error(req, 409, "a token named \"%s\" exists", name);
    }
    if (rc != 0) {
        OPENSSL_cleanse(secret, sizeof(secret));
        return kg_admin_error(req, 500, "cannot store the token");
    }
    kg_info("admin: token %s (%s) added by %s", name, kg_admin_role_name(role), req->actor);
    json_t *reply =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "role", kg_admin_role_name(role),
                  "source", "store", "created_by", req->actor, "token", secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    return kg_admin_reply(req, 201, reply);
}

static int handle_delete(void *ctx, kg_admin_request *req)
{
    const char *name = req->params[0];
    if (strcmp(name, KG_ADMIN_BOOTSTRAP_NAME) == 0)
        return kg_admin_error(req, 409,
                              "the bootstrap token comes from the config file (admin.token or "
                              "admin.token_file): remove it there and restart");
    int status = 0;
    kg_store *store = store_or_503(req, &status);
    if (!store) return status;
    json_t *rows = kg_store_list_tokens(store);
    if (!rows) return kg_admin_error(req, 500, "cannot read the tokens");
    json_t *row = find_row(rows, name);
    int last_admin =
        row && !kg_admin_has_bootstrap_token(req->admin) && json_array_size(rows) > 1 &&
        kg_admin_role_parse(json_string_value(json_object_get(row, "role"))) == KG_ROLE_ADMIN &&
        count_role(rows, KG_ROLE_ADMIN) == 1;
    json_decref(rows);
    if (!row) return kg_admin_error(req, 404, "no token \"%s\"", name);
    if (last_admin)
        return kg_admin_error(req, 409,
                              "\"%s\" is the last admin token and other tokens remain: add another "
                              "admin token first (or remove the others)",
                              name);
    json_t *audit = json_pack("{s:s, s:s}", "name", name, "actor", req->actor);
    int rc = audit ? kg_store_delete_token(store, name, "token.remove", audit) : -1;
    json_decref(audit);
    if (rc == 1) return kg_admin_error(req, 404, "no token \"%s\"", name);
    if (rc != 0) return kg_admin_error(req, 500, "cannot remove the token");
    kg_info("admin: token %s removed by %s", name, req->actor);
    return kg_admin_no_content(req);
}

static const kg_admin_route tokens_routes[KG_ADMIN_TOKENS_N_ROUTES] = {
    {"GET", "/v1/tokens", handle_list, NULL, 0, KG_ROLE_ADMIN},
    {"POST", "/v1/tokens", handle_add, NULL, KG_ADMIN_JSON_BODY, KG_ROLE_ADMIN},
    {"GET", "/v1/tokens/{}", handle_get, NULL, 0, KG_ROLE_ADMIN},
    {"DELETE", "/v1/tokens/{}", handle_delete, NULL, 0, KG_ROLE_ADMIN},
};

int kg_admin_tokens_routes(kg_admin_route out[KG_ADMIN_TOKENS_N_ROUTES])
{
    return kg_admin_bind_routes(out, tokens_routes, KG_ADMIN_TOKENS_N_ROUTES, NULL);
}
