#include "security/kg_passthrough.h"

#include <stdio.h>
#include <string.h>

#include "engine/kg_wire.h"
#include "kp_msgs.h"
#include "proto/kp_prim.h"

/* The user of a SCRAM client-first-message: "gs2-header n=NAME,r=...". */
static int scram_user(const uint8_t *msg, size_t len, char *out, size_t cap)
{
    const char *m = (const char *)msg, *end = m + len;
    /* gs2-header: cbind-flag "," [authzid] "," */
    const char *comma = memchr(m, ',', len);
    if (!comma) return -1;
    comma = memchr(comma + 1, ',', (size_t)(end - comma - 1));
    if (!comma || end - comma < 3 || comma[1] != 'n' || comma[2] != '=') return -1;
    const char *name = comma + 3;
    const char *stop = memchr(name, ',', (size_t)(end - name));
    return kg_scram_saslname_decode(name, (size_t)((stop ? stop : end) - name), out, cap);
}

static void on_handshake(kg_passthrough *p, int16_t version, const uint8_t *body, size_t len)
{
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_handshake_request req;
    kp_sasl_handshake_request_init(&req);
    p->mechanism = KG_SASL_NONE;
    p->accepted = 0;
    p->claimed[0] = '\0';
    if (kp_sasl_handshake_request_decode(&r, &a, version, &req) == 0 && !r.err) {
        for (int m = KG_SASL_PLAIN; m <= KG_SASL_SCRAM_SHA_512; m++) {
            const char *name = kg_config_sasl_mechanism_name((enum kg_sasl_mechanism)m);
            if ((size_t)req.mechanism.len == strlen(name) &&
                memcmp(req.mechanism.ptr, name, strlen(name)) == 0)
                p->mechanism = (enum kg_sasl_mechanism)m;
        }
    }
    kp_arena_free(&a);
}

static void on_authenticate(kg_passthrough *p, int16_t version, const uint8_t *body, size_t len)
{
    if (p->mechanism == KG_SASL_NONE || p->claimed[0]) return; /* only the first message names */
    kp_arena a;
    kp_arena_init(&a);
    kp_reader r;
    kp_reader_init(&r, body, len);
    kp_sasl_authenticate_request req;
    kp_sasl_authenticate_request_init(&req);
    if (kp_sasl_authenticate_request_decode(&r, &a, version, &req) == 0 && !r.err &&
        req.auth_bytes.len > 0) {
        const uint8_t *msg = req.auth_bytes.ptr;
        size_t n = (size_t)req.auth_bytes.len;
        if (p->mechanism == KG_SASL_PLAIN) {
            const char *user, *pw, *why;
            size_t user_len, pw_len;
            if (kg_scram_plain_parse(msg, n, &user, &user_len, &pw, &pw_len, &why) == 0 &&
                user_len < sizeof(p->claimed)) {
                memcpy(p->claimed, user, user_len);
                p->claimed[user_len] = '\0';
            }
        } else if (scram_user(msg, n, p->claimed, sizeof(p->claimed)) < 0) {
            p->claimed[0] = '\0';
        }
    }
    kp_arena_free(&a);
}

void kg_passthrough_request(kg_passthrough *p, int16_t api_key, int16_t version,
                            const uint8_t *body, size_t len)
{
    if (api_key == KG_API_SASL_HANDSHAKE)
        on_handshake(p, version, body, len);
    else if (api_key == KG_API_SASL_AUTHENTICATE)
        on_authenticate(p, version, body, len);
}

int kg_passthrough_response(kg_passthrough *p, int16_t api_key, int16_t version,
                            const uint8_t *body, size_t len)
{
    if (api_key != KG_API_SASL_AUTHENTICATE || !p->claimed[0]) return 0;
    kp_reader r;
    kp_reader_init(&r, body, len);
    int16_t error = kp_read_i16(&r); /* error_code comes first in every version */
    (void)version;
    if (r.err || error != 0) {
        p->claimed[0] = '\0'; /* a failed exchange names nobody; the cluster closes anyway */
        return 0;
    }
    /* PLAIN is one round; SCRAM's login is complete with the server-final message. */
    int rounds = p->mechanism == KG_SASL_PLAIN ? 1 : 2;
    if (++p->accepted < rounds) return 0;
    snprintf(p->principal, sizeof(p->principal), "User:%s", p->claimed);
    p->claimed[0] = '\0';
    return 1;
}
