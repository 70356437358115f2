/* libFuzzer target: any bytes as the body of POST /v1/acls (and as the --operation list of
 * `kgate acl`). A body is either refused with a message or gives bindings that survive the
 * round trip through their stored form and decide as they say: a snapshot of one ALLOW binding
 * allows exactly its own operation on its own name, a DENY binding beside an ALLOW All denies
 * it. The input's bytes are also tried as a resource name (no NUL needed). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "security/kg_acl.h"
#include "util/kg_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_binding(const kg_acl_binding *b, const uint8_t *data, size_t size)
{
    char err[256];
    json_t *j = kg_acl_binding_to_json(b);
    kg_acl_binding back;
    if (!j || kg_acl_binding_from_row(j, &back, err, sizeof(err)) != 0 ||
        !kg_acl_binding_equal(b, &back))
        abort();
    json_decref(j);
    /* The binding applies to itself (its name, when literal and not the wildcard, or prefixed). */
    const char *host = strcmp(b->host, "*") == 0 ? "192.0.2.1" : b->host;
    const char *principal =
        strcmp(b->principal, KG_ACL_WILDCARD_PRINCIPAL) == 0 ? "User:fuzz" : b->principal;
    kg_acl_binding pair[2] = {*b, *b};
    pair[1].permission = KG_ACL_ALLOW;
    pair[1].op = KG_ACL_ALL;
    kg_acl_set *s = kg_acl_set_new(pair, b->permission == KG_ACL_DENY ? 2 : 1);
    if (!s) return;
    int ok = kg_acl_allowed(s, principal, host, b->resource, b->name, strlen(b->name), b->op);
    if (ok != (b->permission == KG_ACL_ALLOW)) abort();
    /* Arbitrary bytes as a name: any answer, no crash, no read past SIZE. */
    (void)kg_acl_allowed(s, principal, host, b->resource, (const char *)data, size, b->op);
    (void)kg_acl_allowed(s, NULL, NULL, b->resource, (const char *)data, size, KG_ACL_DESCRIBE);
    kg_acl_release(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        kg_log_set_level(KG_LOG_ERROR);
        quiet = 1;
    }
    char err[256];
    /* As a CLI operation list. */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned mask = kg_acl_parse_op_list(text, err, sizeof(err));
    if (mask >> KG_ACL_N_OPS) abort();
    free(text);
    /* As an API body. */
    json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!body) return 0;
    kg_acl_binding b[KG_ACL_N_OPS];
    int n = kg_acl_bindings_from_json(body, b, err, sizeof(err));
    if (n == 0 || n > KG_ACL_N_OPS) abort();
    for (int i = 0; i < n; i++)
        check_binding(&b[i], data, size);
    json_decref(body);
    return 0;
}
