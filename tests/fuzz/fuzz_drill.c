/* libFuzzer target: any bytes as a drill file (YAML or JSON, as `kgate drill run` reads it) and
 * as a stored drill result (what GET /v1/drills/ID?format=md renders: POST /v1/drills checks
 * only the fields it needs, so the report must cope with any shape). A drill file is refused
 * with a message or parsed; a result renders; nothing else may happen. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "config/kg_config.h"
#include "drill/kg_drill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    char err[512];
    json_t *doc = kg_config_yaml_to_json((const char *)data, size, err, sizeof(err));
    if (doc) {
        kg_drill_spec spec;
        if (kg_drill_spec_parse(doc, &spec, err, sizeof(err)) == 0 && spec.n_steps < 1)
            __builtin_trap();
        json_decref(doc);
    }
    json_t *result = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (result) {
        kg_drill_print_md(sink, result);
        json_decref(result);
    }
    return 0;
}
