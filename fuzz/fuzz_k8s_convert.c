/*
 * fuzz_k8s_convert.c - the conversion step the k8s fuzzers share: build the
 * xDS resources of a store and require every one of them to decode.
 */
#include <stdlib.h>
#include <string.h>

#include "authorization.pb-c.h"
#include "workload.pb-c.h"

#include "fuzz_k8s_convert.h"

void
fuzz_k8s_convert(struct k8s_conv *cv, const struct k8s_store *st, const struct k8s_build_opts *o,
                 struct k8s_diags *d)
{
    struct mesh_resources r;

    k8s_conv_build(cv, st, o, &r, d);
    for (size_t i = 0; i < r.n; i++) {
        if (strcmp(r.v[i].type_url, K8S_TYPE_AUTHORIZATION) == 0) {
            Istio__Security__Authorization *z =
                istio__security__authorization__unpack(NULL, r.v[i].len, r.v[i].data);
            if (z == NULL)
                abort();
            istio__security__authorization__free_unpacked(z, NULL);
            continue;
        }
        Istio__Workload__Address *a =
            istio__workload__address__unpack(NULL, r.v[i].len, r.v[i].data);
        if (a == NULL)
            abort();
        istio__workload__address__free_unpacked(a, NULL);
    }
    mesh_resources_free(&r);
}
