/* libFuzzer target: any bytes as the body of POST /v1/chaos/rules. A rule is either refused
 * with a message or added (and removed again); nothing else may happen. */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "chaos/kg_chaos.h"
#include "util/kg_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kg_chaos *chaos;
    if (!chaos) {
        kg_log_set_level(KG_LOG_ERROR);
        chaos = kg_chaos_new(NULL, NULL);
    }
    json_t *rule = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!rule) return 0;
    json_t *stored = NULL;
    char err[512];
    if (kg_chaos_add(chaos, rule, "fuzz", &stored, err, sizeof(err)) == 0 && stored) {
        const char *id = json_string_value(json_object_get(stored, "id"));
        if (id) kg_chaos_remove(chaos, id, "fuzz");
    }
    json_decref(stored);
    json_decref(rule);
    return 0;
}
