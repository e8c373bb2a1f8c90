/*
 * fuzz_k8s.c - Kubernetes YAML into the k8s store, then the conversion to
 * xDS resources. The input is loaded as two files (so every object is also a
 * duplicate), converted, then half of it replaces the first file (the
 * last-good-state paths), the other file goes, and it is converted again;
 * every resource built must decode, and so must the waypoint route table of
 * every Service port (k8s_route_build: HTTPRoutes, GRPCRoutes) and what every
 * Gateway would be served as a waypoint (k8s_waypoint_config: Routes, and
 * Policies from AuthorizationPolicies with targetRefs).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "waypoint.pb-c.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"

#include "fuzz_k8s_convert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The waypoint route table of every Service port (ports probed 1-65535 would be slow: the
 * well-known ones and those the input names are enough to reach every route). */
static void
routes(const struct k8s_store *st, struct k8s_diags *d)
{
    static const uint32_t ports[] = {80, 443, 8080, 9080, 9090, 15008};

    for (size_t i = 0; i < k8s_store_count(st, K8S_SERVICE) && i < 64; i++) {
        const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, i);
        for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
            struct mesh_resource r;
            if (k8s_route_build(st, NULL, k8s_obj_namespace(svc), k8s_obj_name(svc), ports[j], &r,
                                d) != 0)
                continue;
            Amesh__Waypoint__V1__Route *x = amesh__waypoint__v1__route__unpack(NULL, r.len, r.data);
            if (x == NULL)
                abort();
            amesh__waypoint__v1__route__free_unpacked(x, NULL);
            free(r.name);
            free(r.data);
        }
    }
}

/* What each Gateway (first 16) is served as a waypoint: every resource must decode. */
static void
waypoints(const struct k8s_store *st, struct k8s_diags *d)
{
    for (size_t i = 0; i < k8s_store_count(st, K8S_GATEWAY) && i < 16; i++) {
        const struct k8s_obj *gw = k8s_store_at(st, K8S_GATEWAY, i);
        struct mesh_resources r;
        if (k8s_waypoint_config(st, NULL, k8s_obj_namespace(gw), k8s_obj_name(gw), &r, d) != 0)
            continue;
        for (size_t j = 0; j < r.n; j++) {
            if (strcmp(r.v[j].type_url, K8S_TYPE_POLICY) == 0) {
                Amesh__Waypoint__V1__Policy *p =
                    amesh__waypoint__v1__policy__unpack(NULL, r.v[j].len, r.v[j].data);
                if (p == NULL)
                    abort();
                amesh__waypoint__v1__policy__free_unpacked(p, NULL);
            } else {
                Amesh__Waypoint__V1__Route *x =
                    amesh__waypoint__v1__route__unpack(NULL, r.v[j].len, r.v[j].data);
                if (x == NULL)
                    abort();
                amesh__waypoint__v1__route__free_unpacked(x, NULL);
            }
        }
        mesh_resources_free(&r);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct k8s_build_opts o = {.trust_domain = "example.org", .network = "n1"};
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new(); /* one for the run: the incremental paths */
    struct k8s_diags d = {0};
    const char *text = (const char *)data;

    k8s_store_load_buf(st, "b.yaml", text, size, &d);
    k8s_store_load_buf(st, "a.yaml", text, size, &d);
    fuzz_k8s_convert(cv, st, NULL, &d);
    routes(st, &d);
    waypoints(st, &d);
    k8s_store_load_buf(st, "b.yaml", text, size / 2, &d);
    k8s_store_remove_file(st, "a.yaml");
    fuzz_k8s_convert(cv, st, &o, &d);
    k8s_conv_diags(cv, st, &d);
    for (size_t i = 0; i < d.n; i++)
        free(k8s_diag_str(&d.v[i]));
    k8s_diags_clear(&d);
    k8s_conv_free(cv);
    k8s_store_free(st);
    return 0;
}
