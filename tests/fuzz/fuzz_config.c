/* libFuzzer target: any bytes as a kgate.yaml, and as a drill file for `kgate experiment` (the
 * same libfyaml through kg_config_yaml_to_json). The loaders must report errors, never crash,
 * hang or leak, whatever the YAML (or non-YAML) is. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "config/kg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    int n_errors = 0;
    kg_config *cfg = kg_config_parse("fuzz.yaml", (const char *)data, size, sink, &n_errors);
    kg_config_free(cfg);
    char err[256];
    json_decref(kg_config_yaml_to_json((const char *)data, size, err, sizeof(err)));
    return 0;
}
