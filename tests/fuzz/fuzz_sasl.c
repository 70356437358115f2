/* libFuzzer target: the SCRAM and PLAIN message parsers of the SASL server.
 *
 * Byte 0 picks what is fed: 0/1 a SCRAM-SHA-256/512 exchange (client-first, then, when it was
 * accepted, client-final: the rest of the input split at the first 0xff byte), 2 a PLAIN
 * message, 3 base64. Properties: no crash, no leak; a failed step leaves the exchange failed
 * (every later message fails); a PLAIN parse hands back slices inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/kg_scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kg_scram_keys keys[2];
static int keys_made;

static void make_keys(void)
{
    static const uint8_t salt[16] = "kgate-fuzz-salt";
    kg_scram_derive(KG_SASL_SCRAM_SHA_256, "pencil", 6, salt, sizeof(salt), 4096, &keys[0]);
    kg_scram_derive(KG_SASL_SCRAM_SHA_512, "pencil", 6, salt, sizeof(salt), 4096, &keys[1]);
    keys_made = 1;
}

static void fuzz_scram(int sha512, const uint8_t *p, size_t n)
{
    const uint8_t *cut = memchr(p, 0xff, n);
    size_t first_len = cut ? (size_t)(cut - p) : n;
    kg_scram_server s;
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t len = 0;
    kg_scram_server_init(&s, sha512 ? KG_SASL_SCRAM_SHA_512 : KG_SASL_SCRAM_SHA_256);
    if (kg_scram_client_first(&s, p, first_len, &why) == 0) {
        if (kg_scram_server_first_nonce(&s, &keys[sha512], "fuzznonce", &out, &len) != 0) abort();
        free(out);
        out = NULL;
        if (cut) {
            int rc = kg_scram_client_final(&s, cut + 1, n - first_len - 1, &out, &len, &why);
            if (rc == 0 && (len < 2 || memcmp(out, "v=", 2) != 0)) abort();
            if (rc != 0 && (out || s.step != KG_SCRAM_FAILED || !why)) abort();
            free(out);
            out = NULL;
        }
    } else if (s.step != KG_SCRAM_FAILED || !why) {
        abort();
    }
    /* Whatever happened, the exchange accepts no first message again. */
    if (kg_scram_client_first(&s, p, first_len, &why) == 0) abort();
    kg_scram_server_free(&s);
}

static void fuzz_plain(const uint8_t *p, size_t n)
{
    const char *u, *pw, *why;
    size_t ul, pl;
    if (kg_scram_plain_parse(p, n, &u, &ul, &pw, &pl, &why) != 0) return;
    const char *lo = (const char *)p, *hi = lo + n;
    if (u < lo || u + ul > hi || pw < lo || pw + pl > hi || ul == 0 || pl == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!keys_made) make_keys();
    uint8_t buf[128];
    switch (data[0] % 4) {
    case 0:
    case 1:
        fuzz_scram(data[0] % 4, data + 1, size - 1);
        break;
    case 2:
        fuzz_plain(data + 1, size - 1);
        break;
    default:
        kg_scram_b64_decode((const char *)data + 1, size - 1, buf, sizeof(buf));
        break;
    }
    return 0;
}
