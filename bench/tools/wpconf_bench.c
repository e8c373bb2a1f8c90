/*
 * wpconf_bench.c - how long meshd takes to build one waypoint's config
 * (k8s_waypoint_config: its Routes and Policies), which it does per waypoint
 * stream on every config change. N Services, each with an HTTPRoute and an
 * AuthorizationPolicy targeting it, bound round-robin to 10 waypoints.
 *
 *   build/bin/wpconf_bench 3000
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"

static double
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    if (n < 1 || n > 3000) {
        fprintf(stderr, "usage: wpconf_bench [N 1-3000]\n");
        return 2;
    }
    size_t cap = (size_t)n * 1200 + 4096, o = 0;
    char *y = malloc(cap);
    if (y == NULL)
        return 1;
    o += (size_t)snprintf(y + o, cap - o, "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\n");
    for (int w = 0; w < 10; w++)
        o += (size_t)snprintf(y + o, cap - o,
                              "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: "
                              "{name: w%d, namespace: app}\nspec:\n  gatewayClassName: "
                              "istio-waypoint\n  listeners: [{name: mesh, port: 15008, protocol: "
                              "HBONE}]\n---\n",
                              w);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(
            y + o, cap - o,
            "apiVersion: v1\nkind: Service\nmetadata: {name: s%d, namespace: app, labels: "
            "{istio.io/use-waypoint: w%d}}\nspec: {clusterIP: 10.96.%d.%d, ports: [{name: http, "
            "port: 80}]}\n---\n"
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r%d, "
            "namespace: app}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: s%d}]\n  "
            "rules: [{matches: [{path: {type: PathPrefix, value: /v%d}}], backendRefs: [{name: "
            "s%d, port: 80}]}]\n---\n"
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p%d, "
            "namespace: app}\nspec:\n  targetRefs: [{kind: Service, group: \"\", name: s%d}]\n  "
            "rules: [{to: [{operation: {methods: [GET]}}]}]\n---\n",
            i, i % 10, i / 250, i % 250 + 1, i, i, i, i, i, i);
    struct k8s_store *st = k8s_store_new();
    if (k8s_store_load_buf(st, "bench.yaml", y, o, NULL) != 0) {
        fprintf(stderr, "the generated config did not load\n");
        return 1;
    }
    struct mesh_resources r;
    size_t bytes = 0;
    double t0 = now_ms();
    k8s_waypoint_config(st, NULL, "app", "w0", &r, NULL);
    double ms = now_ms() - t0;
    for (size_t i = 0; i < r.n; i++)
        bytes += r.v[i].len;
    printf("%d Services, HTTPRoutes and policies over 10 waypoints: w0's config, %zu resources "
           "(%zu bytes), built in %.1f ms\n",
           n, r.n, bytes, ms);
    mesh_resources_free(&r);
    k8s_store_free(st);
    free(y);
    return 0;
}
