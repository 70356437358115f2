/* libFuzzer target: kgate's own SASL login (kg_sasl_client) reading what a broker answers.
 *
 * Byte 0 picks the mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and SaslAuthenticate
 * version; the rest is split at "\n--\n" into response bodies, each prefixed with the
 * correlation id the client expects (so the fuzzer reaches the parsers, not just the id
 * check). Properties: no crash or leak; a FAILED exchange has a reason; the exchange never
 * asks for more than its handful of round trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kg_wire.h"
#include "security/kg_sasl_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *next_part(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *start = *p;
    const uint8_t *sep = start;
    while (sep + 4 <= end && memcmp(sep, "\n--\n", 4) != 0)
        sep++;
    if (sep + 4 > end) sep = end;
    *len = (size_t)(sep - start);
    *p = sep == end ? end : sep + 4;
    return start;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const enum kg_sasl_mechanism mechs[] = {KG_SASL_PLAIN, KG_SASL_SCRAM_SHA_256,
                                                   KG_SASL_SCRAM_SHA_512};
    kg_sasl_cfg cfg = {.mechanism = mechs[data[0] % 3]};
    snprintf(cfg.username, sizeof(cfg.username), "kgate");
    snprintf(cfg.password, sizeof(cfg.password), "secret");
    kg_sasl_creds creds;
    kg_sasl_creds_init(&creds, &cfg);
    kg_sasl_client s;
    kg_sasl_client_init(&s, &creds, (int16_t)((data[0] >> 2) % 3));
    snprintf(s.nonce, sizeof(s.nonce), "fuzznonce"); /* no randomness in a fuzz run */
    kp_writer w;
    kp_writer_init(&w, 64);
    int rc = kg_sasl_client_start(&s, &w) < 0 ? KG_SASL_CLIENT_FAILED : KG_SASL_CLIENT_SEND;
    const uint8_t *p = data + 1, *end = data + size;
    int rounds = 0;
    while (rc == KG_SASL_CLIENT_SEND && p < end) {
        size_t len;
        const uint8_t *part = next_part(&p, end, &len);
        uint8_t *resp = malloc(len + 4);
        if (!resp) break;
        memcpy(resp, w.buf + 8, 4); /* the correlation id of the request just written */
        memcpy(resp + 4, part, len);
        kp_writer_reset(&w);
        rc = kg_sasl_client_next(&s, resp, len + 4, &w);
        free(resp);
        if (++rounds > 3 && rc == KG_SASL_CLIENT_SEND) abort(); /* at most 3 answers */
    }
    if (rc == KG_SASL_CLIENT_FAILED && !s.error[0]) abort();
    kp_writer_free(&w);
    kg_sasl_client_free(&s);
    kg_sasl_creds_destroy(&creds);
    return 0;
}
