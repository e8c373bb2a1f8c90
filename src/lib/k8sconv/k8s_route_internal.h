/*
 * k8s_route_internal.h - what the route converter's files share:
 * k8s_route.c (HTTPRoute, precedence, the Route of a service port) and
 * k8s_route_grpc.c (GRPCRoute matches).
 */
#ifndef MESH_LIB_K8S_ROUTE_INTERNAL_H
#define MESH_LIB_K8S_ROUTE_INTERNAL_H

#include <jansson.h>

#include "k8sconv/k8sconv_internal.h"
#include "waypoint.pb-c.h"

#define CODE_ROUTE "AM0005" /* a route field the waypoint cannot serve */

/* One converted (rule, match) with what precedence looks at. */
struct entry {
    Amesh__Waypoint__V1__Rule *rule;
    /*
     * istiod's getURIRank: 3 Exact, 2 PathPrefix, 1 RegularExpression, 0 a
     * match without a path (GRPCRoute headers only), -1 no match at all
     * (a GRPCRoute rule without matches: last)
     */
    int rank;
    size_t len;
    bool method;
    size_t headers, query;
    size_t seq; /* position after the route order: keeps the sort stable */
};

struct conv {
    const struct k8s_store *st;
    const struct k8s_obj *route; /* HTTPRoute or GRPCRoute */
    struct k8s_arena *a;
    const char *suffix;
    struct k8s_diags *d;
    int errors;
};

/* The route is refused whole: an error (AM0005) at |at|'s line, counted in c->errors. */
void route_refuse(struct conv *c, const json_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Header or query matches {type Exact|RegularExpression, name, value} (|what| for messages). */
Amesh__Waypoint__V1__KeyMatch **route_key_matches(struct conv *c, const json_t *arr, size_t *n,
                                                  const char *what);
/* A GRPCRoute match (NULL: the rule has none) into |e| (k8s_route_grpc.c). */
void route_grpc_match(struct conv *c, const json_t *m, struct entry *e);

#endif
