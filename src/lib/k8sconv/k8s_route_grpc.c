/*
 * k8s_route_grpc.c - GRPCRoute (gateway.networking.k8s.io v1) matches for the
 * waypoint route table. gRPC calls are HTTP/2 requests to /<service>/<method>,
 * so a method match becomes a path match, as istiod converts it
 * (pilot/pkg/config/kube/gateway conversion.go, createGRPCURIMatch):
 *
 *   type Exact (default)   service+method: exact "/svc/method"
 *                          service only:   prefix "/svc/"
 *                          method only:    regex "/[^/]+/method"
 *   type RegularExpression service+method: regex "/svc/method"
 *                          service only:   regex "/svc/.+"
 *                          method only:    regex "/[^/]+/method"
 *
 * A match without a method leaves the path unset (any path) and ranks after
 * every path match; a rule without matches has no Match at all and ranks last
 * (istiod's sortHTTPRoutes: getURIRank -1 for no URI, no match last). Header
 * matches are as for HTTPRoute. Everything else of a GRPCRoute rule (filters,
 * backendRefs) is converted by k8s_route.c like an HTTPRoute's.
 */
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8s_route_internal.h"

static const char *
jstr(const json_t *parent, const char *key)
{
    const json_t *v = json_is_object(parent) ? json_object_get(parent, key) : NULL;
    return json_string_value(v);
}

void
route_grpc_match(struct conv *c, const json_t *m, struct entry *e)
{
    Amesh__Waypoint__V1__Match *out;
    const json_t *method = json_is_object(m) ? json_object_get(m, "method") : NULL;

    if (m == NULL) {
        e->rank = -1;
        return;
    }
    out = k8s_arena_alloc(c->a, sizeof(*out));
    amesh__waypoint__v1__match__init(out);
    if (json_is_object(method)) {
        const char *type = jstr(method, "type"), *svc = jstr(method, "service"),
                   *meth = jstr(method, "method");
        bool exact = type == NULL || strcmp(type, "Exact") == 0;
        if ((svc == NULL || svc[0] == '\0') && (meth == NULL || meth[0] == '\0')) {
            route_refuse(c, method, "method: service or method is required");
        } else if (!exact && strcmp(type, "RegularExpression") != 0) {
            route_refuse(c, method, "method.type: unsupported match type %s", type);
        } else if (svc == NULL || svc[0] == '\0') {
            out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_REGEX;
            out->regex = k8s_arena_printf(c->a, "/[^/]+/%s", meth);
            e->rank = 1;
        } else if (meth == NULL || meth[0] == '\0') {
            if (exact) {
                out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX;
                out->prefix = k8s_arena_printf(c->a, "/%s/", svc);
                e->rank = 2;
            } else {
                out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_REGEX;
                out->regex = k8s_arena_printf(c->a, "/%s/.+", svc);
                e->rank = 1;
            }
        } else if (exact) {
            out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_EXACT;
            out->exact = k8s_arena_printf(c->a, "/%s/%s", svc, meth);
            e->rank = 3;
        } else {
            out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_REGEX;
            out->regex = k8s_arena_printf(c->a, "/%s/%s", svc, meth);
            e->rank = 1;
        }
        e->len = out->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_EXACT    ? strlen(out->exact)
                 : out->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX ? strlen(out->prefix)
                 : out->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_REGEX  ? strlen(out->regex)
                                                                             : 0;
    } else if (method != NULL && !json_is_null(method)) {
        route_refuse(c, method, "method: expected a mapping");
    }
    out->headers = route_key_matches(c, json_is_object(m) ? json_object_get(m, "headers") : NULL,
                                     &out->n_headers, "headers");
    e->headers = out->n_headers;
    e->rule->match = out;
}
