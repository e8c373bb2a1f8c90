/*
 * fuzz_config.c - the local-mode YAML config: the model parser (workloads and
 * services, in our and Istio ztunnel's spellings) and the `policies:` reader
 * (Istio's spelling rewritten, and the search for the line of an error), and the
 * waypoint's `routes:` / `waypointPolicies:` (proto3 JSON through lib/pbjson).
 */
#include <stdint.h>
#include <stdio.h>

#include "config/local_config.h"
#include "l7policy/l7policy.h"
#include "policy/policy.h"
#include "route/route.h"

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
    struct route_store rs;
    struct l7pol_set *ls;
    route_store_init(&rs);
    if (local_config_waypoint((const char *)data, size, "fuzz", &rs, &ls, err, sizeof(err)) == 0)
        l7pol_set_unref(ls);
    route_store_destroy(&rs);
    return 0;
}
