/*
 * test_k8s_route_grpc.c - GRPCRoute -> amesh.waypoint.v1.Route rules
 * (k8s_route_grpc.c, istiod's createGRPCURIMatch): method matches as path
 * matches, header matches, header modifiers, backends, the order against
 * HTTPRoute-style precedence (no path, no match last), refusals (AM0005), and
 * the port protocol table (appProtocol, port-name prefix, the kubernetes.io names).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"
#include "waypoint.pb-c.h"

#define SVC                                                                                        \
    "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: app}\nspec: {clusterIP: "       \
    "10.96.0.1, ports: [{name: grpc, port: 9090}, {name: a, port: 1, appProtocol: grpc}, "         \
    "{name: b, port: 2, appProtocol: kubernetes.io/h2c}, {name: c, port: 3, appProtocol: "         \
    "kubernetes.io/ws}, {name: d, port: 4, appProtocol: kubernetes.io/wss}, {name: grpc-web-x, "  \
    "port: 5}, {name: http2-x, port: 6}, {name: e, port: 7, protocol: UDP}, {name: f, port: 53}, " \
    "{name: tls-x, port: 8}, {name: x, port: 9, appProtocol: http}, {name: https, port: 10}]}\n"  \
    "---\n"
#define GRPC(name, ts, spec)                                                                       \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: " name            \
    ", namespace: app, creationTimestamp: \"" ts "\"}\nspec:\n  parentRefs: [{group: \"\", kind: " \
    "Service, name: s, port: 9090}]\n" spec "---\n"
#define M Amesh__Waypoint__V1__Match

struct built {
    struct k8s_store *st;
    struct k8s_diags d;
    Amesh__Waypoint__V1__Route *r;
};

static void
build(struct built *b, const char *yaml, uint32_t port)
{
    struct mesh_resource res;

    memset(b, 0, sizeof(*b));
    b->st = k8s_store_new();
    if (k8s_store_load_buf(b->st, "g.yaml", yaml, strlen(yaml), &b->d) != 0)
        fail_msg("load: %s", b->d.n ? k8s_diag_str(&b->d.v[0]) : "?");
    assert_int_equal(k8s_route_build(b->st, NULL, "app", "s", port, &res, &b->d), 0);
    b->r = amesh__waypoint__v1__route__unpack(NULL, res.len, res.data);
    assert_non_null(b->r);
    free(res.name);
    free(res.data);
}

static void
done(struct built *b)
{
    amesh__waypoint__v1__route__free_unpacked(b->r, NULL);
    k8s_diags_clear(&b->d);
    k8s_store_free(b->st);
}

/* "exact:/a", "prefix:/a", "regex:/a", "any" (no path), "none" (no Match). */
static void
describe(const Amesh__Waypoint__V1__Rule *r, char *buf, size_t cap)
{
    const M *m = r->match;
    if (m == NULL)
        snprintf(buf, cap, "none");
    else if (m->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_EXACT)
        snprintf(buf, cap, "exact:%s", m->exact);
    else if (m->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX)
        snprintf(buf, cap, "prefix:%s", m->prefix);
    else if (m->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_REGEX)
        snprintf(buf, cap, "regex:%s", m->regex);
    else
        snprintf(buf, cap, "any");
}

static void
test_method_matches_and_order(void **state)
{
    static const char yaml[] = SVC GRPC(
        "g", "2024-01-01T00:00:00Z",
        "  rules:\n"
        "  - backendRefs: [{name: s, port: 9090}]\n" /* no matches: last */
        "  - matches: [{headers: [{name: x-env, value: dev}]}]\n"
        "  - matches: [{method: {service: pkg.Svc}}]\n"
        "  - matches: [{method: {method: Get}}]\n"
        "  - matches: [{method: {type: RegularExpression, service: pkg.Svc, method: \"G.*\"}}]\n"
        "  - matches: [{method: {type: RegularExpression, service: pkg.Other}}]\n"
        "  - matches: [{method: {service: pkg.Svc, method: Get}, headers: [{type: "
        "RegularExpression, name: x-v, value: \"v[0-9]\"}]}]\n"
        "    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, "
        "value: b}]}}, {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [c]}}]\n"
        "    backendRefs: [{name: s, port: 9090, weight: 3}]\n");
    static const char *const want[] = {
        /* ranks first (exact, prefix, regex, no path, no match), then the longer path */
        "exact:/pkg.Svc/Get", "prefix:/pkg.Svc/", "regex:/pkg.Other/.+", "regex:/pkg.Svc/G.*",
        "regex:/[^/]+/Get",   "any",              "none",
    };
    struct built b;
    char got[128];
    (void)state;

    build(&b, yaml, 9090);
    assert_int_equal(k8s_diags_count(&b.d, K8S_ERROR), 0);
    assert_int_equal(b.r->protocol, AMESH__WAYPOINT__V1__PROTOCOL__GRPC);
    assert_int_equal(b.r->n_rules, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        describe(b.r->rules[i], got, sizeof(got));
        assert_string_equal(got, want[i]);
    }
    const Amesh__Waypoint__V1__Rule *r = b.r->rules[0];
    assert_int_equal(r->match->n_headers, 1);
    assert_string_equal(r->match->headers[0]->regex, "v[0-9]");
    assert_string_equal(r->request_headers->set[0]->name, "a");
    assert_string_equal(r->response_headers->remove[0], "c");
    assert_int_equal(r->backends[0]->weight, 3);
    assert_string_equal(r->name, "app.g.6");
    assert_string_equal(b.r->rules[5]->match->headers[0]->exact, "dev");
    assert_int_equal(b.r->rules[6]->n_backends, 1);
    assert_int_equal(b.r->n_sources, 1);
    assert_string_equal(b.r->sources[0], "GRPCRoute/app/g");
    done(&b);
}

/* Refused whole, with an AM0005 error naming the GRPCRoute; other routes stay. */
static void
test_refused(void **state)
{
    static const char *const bad[] = {
        "  rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: "
        "9090}}}]}]\n",
        "  rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]}]\n",
        "  rules: [{matches: [{method: {type: Exact}}]}]\n",
        "  rules: [{matches: [{method: {type: Prefix, service: a}}]}]\n",
        "  rules: [{backendRefs: [{name: s}]}]\n",
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char *yaml = xasprintf("%s" GRPC("bad", "2024-01-01T00:00:00Z", "%s")
                                   GRPC("good", "2024-01-02T00:00:00Z",
                                        "  rules: [{matches: [{method: {service: a, method: b}}]}]\n"),
                               SVC, bad[i]);
        struct built b;
        print_message("case %zu\n", i);
        build(&b, yaml, 9090);
        assert_int_equal(k8s_diags_count(&b.d, K8S_ERROR), 1);
        assert_string_equal(b.d.v[0].code, "AM0005");
        assert_non_null(strstr(b.d.v[0].msg, "GRPCRoute app/bad"));
        assert_int_equal(b.r->n_rules, 1);
        assert_string_equal(b.r->rules[0]->match->exact, "/a/b");
        assert_int_equal(b.r->n_sources, 1);
        done(&b);
        free(yaml);
    }
}

static void
test_protocols(void **state)
{
    static const struct {
        uint32_t port;
        Amesh__Waypoint__V1__Protocol proto;
    } ports[] = {
        {9090, AMESH__WAYPOINT__V1__PROTOCOL__GRPC}, {1, AMESH__WAYPOINT__V1__PROTOCOL__GRPC},
        {2, AMESH__WAYPOINT__V1__PROTOCOL__HTTP2},   {3, AMESH__WAYPOINT__V1__PROTOCOL__HTTP1},
        {4, AMESH__WAYPOINT__V1__PROTOCOL__TCP},     {5, AMESH__WAYPOINT__V1__PROTOCOL__HTTP1},
        {6, AMESH__WAYPOINT__V1__PROTOCOL__HTTP2},   {7, AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {53, AMESH__WAYPOINT__V1__PROTOCOL__TCP},    {8, AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {9, AMESH__WAYPOINT__V1__PROTOCOL__HTTP1},   {10, AMESH__WAYPOINT__V1__PROTOCOL__TCP},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        struct built b;
        print_message("port %u\n", ports[i].port);
        build(&b, SVC, ports[i].port);
        assert_int_equal(b.r->protocol, ports[i].proto);
        done(&b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_matches_and_order),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
