/*
 * fuzz_config.c - the local-mode YAML config: the model parser (workloads and
 * services, in our and Istio ztunnel's spellings) and the `policies:` reader
 * (Istio's spelling rewritten, and the search for the line of an error).
 */
#include <stdint.h>
#include <stdio.h>

#include "config/local_config.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model *m;
    struct policy_set *ps;
    char err[512];

    if (local_config_parse((const char *)data, size, "fuzz", &m, err, sizeof(err)) == 0)
        model_unref(m);
    if (local_config_policies((const char *)data, size, "fuzz", &ps, err, sizeof(err)) == 0)
        policy_set_unref(ps);
    return 0;
}
