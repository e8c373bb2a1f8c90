/* fuzz_config.c - the local-mode YAML config parser. */
#include <stdint.h>
#include <stdio.h>

#include "config/local_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model *m;
    char err[512];

    if (local_config_parse((const char *)data, size, "fuzz", &m, err, sizeof(err)) == 0)
        model_unref(m);
    return 0;
}
