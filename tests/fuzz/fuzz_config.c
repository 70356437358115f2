/* libFuzzer target: any bytes as a kgate.yaml. The loader must report errors, never crash or
 * leak, whatever the YAML (or non-YAML) is. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/kg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    int n_errors = 0;
    kg_config *cfg = kg_config_parse("fuzz.yaml", (const char *)data, size, sink, &n_errors);
    kg_config_free(cfg);
    return 0;
}
