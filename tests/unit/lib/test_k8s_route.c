/*
 * test_k8s_route.c - HTTPRoute -> amesh.waypoint.v1.Route (k8s_route_build):
 * which routes attach to a service port, Gateway API precedence across
 * routes and rules, matches, filters, backends and weights, timeouts and
 * retry, the port's protocol, and routes refused whole (with an AM0005 error
 * at their line) for fields the waypoint cannot serve. The packed bytes are
 * decoded with protobuf-c and checked field by field.
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
    "10.96.0.1, ports: [{name: http, port: 80}, {name: grpc-api, port: 8080}, {name: x, port: "    \
    "9000, appProtocol: kubernetes.io/h2c}, {name: db, port: 3306}, {name: other, port: 7000}]}\n" \
    "---\n"
#define ROUTE(name, ts, spec)                                                                      \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: " name            \
    ", namespace: app, creationTimestamp: \"" ts "\"}\nspec:\n  parentRefs: [{group: \"\", kind: " \
    "Service, name: s}]\n" spec "---\n"

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
    if (k8s_store_load_buf(b->st, "r.yaml", yaml, strlen(yaml), &b->d) != 0)
        fail_msg("load: %s", b->d.n ? k8s_diag_str(&b->d.v[0]) : "?");
    assert_int_equal(k8s_route_build(b->st, NULL, "app", "s", port, &res, &b->d), 0);
    assert_string_equal(res.type_url, K8S_TYPE_ROUTE);
    char want[64];
    snprintf(want, sizeof(want), "app/s.app.svc.cluster.local:%u", port);
    assert_string_equal(res.name, want);
    assert_int_equal(strlen(res.version), 16);
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

static size_t
count_code(const struct k8s_diags *d, const char *code)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->v[i].code != NULL && strcmp(d->v[i].code, code) == 0;
    return n;
}

static void
test_no_route_and_protocols(void **state)
{
    static const struct {
        uint32_t port;
        Amesh__Waypoint__V1__Protocol proto;
    } ports[] = {
        {80, AMESH__WAYPOINT__V1__PROTOCOL__HTTP1},    {8080, AMESH__WAYPOINT__V1__PROTOCOL__GRPC},
        {9000, AMESH__WAYPOINT__V1__PROTOCOL__HTTP2},  {3306, AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {7000, AMESH__WAYPOINT__V1__PROTOCOL__DETECT},
    };
    struct built b;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(ports); i++) {
        build(&b, SVC, ports[i].port);
        assert_string_equal(b.r->service->namespace_, "app");
        assert_string_equal(b.r->service->hostname, "s.app.svc.cluster.local");
        assert_int_equal(b.r->port, ports[i].port);
        assert_int_equal(b.r->protocol, ports[i].proto);
        assert_int_equal(b.r->n_rules, 0); /* the default route: to the service itself */
        assert_int_equal(b.r->n_sources, 0);
        done(&b);
    }
    struct mesh_resource res;
    struct k8s_store *st = k8s_store_new();
    k8s_store_load_buf(st, "r.yaml", SVC, strlen(SVC), NULL);
    assert_int_equal(k8s_route_build(st, NULL, "app", "s", 81, &res, NULL), -ENOENT);
    assert_int_equal(k8s_route_build(st, NULL, "app", "nope", 80, &res, NULL), -ENOENT);
    k8s_store_free(st);
}

/* Which routes attach: Service parentRefs of the namespace, port absent or equal. */
static void
test_attach(void **state)
{
    static const char yaml[] = SVC ROUTE(
        "all-ports", "2024-01-01T00:00:00Z",
        "  rules: [{backendRefs: [{name: s, port: 80}]}]\n") "apiVersion: "
                                                             "gateway.networking.k8s.io/v1\nkind: "
                                                             "HTTPRoute\nmetadata: {name: "
                                                             "port-8080, "
                                                             "namespace: app}\nspec:\n  "
                                                             "parentRefs: [{group: \"\", kind: "
                                                             "Service, name: s, port: 8080}]\n"
                                                             "  rules: [{backendRefs: [{name: s, "
                                                             "port: 8080}]}]\n---\n"
                                                             "apiVersion: "
                                                             "gateway.networking.k8s.io/v1\nkind: "
                                                             "HTTPRoute\nmetadata: {name: gw, "
                                                             "namespace: "
                                                             "app}\nspec:\n  parentRefs: [{name: "
                                                             "s}]\n  rules: [{backendRefs: [{name: "
                                                             "s, port: 80}]}]\n"
                                                             "---\n"
                                                             "apiVersion: "
                                                             "gateway.networking.k8s.io/v1\nkind: "
                                                             "HTTPRoute\nmetadata: {name: "
                                                             "consumer, "
                                                             "namespace: other}\nspec:\n  "
                                                             "parentRefs: [{group: \"\", kind: "
                                                             "Service, name: s, namespace: "
                                                             "app}]\n  rules: [{backendRefs: "
                                                             "[{name: s, port: 80}]}]\n";
    struct built b;
    (void)state;

    build(&b, yaml, 80);
    assert_int_equal(b.r->n_sources, 1);
    assert_string_equal(b.r->sources[0], "HTTPRoute/app/all-ports");
    assert_int_equal(b.r->n_rules, 1);
    assert_string_equal(b.r->rules[0]->name, "app.all-ports.0");
    done(&b);
    build(&b, yaml, 8080);
    assert_int_equal(b.r->n_sources, 2);
    assert_string_equal(b.r->sources[0], "HTTPRoute/app/port-8080"); /* no timestamp: oldest */
    assert_string_equal(b.r->sources[1], "HTTPRoute/app/all-ports");
    done(&b);
}

/* Precedence: Exact, then the longest PathPrefix, then regex; method, headers, query; then
 * the older route and rule order. */
static void
test_precedence(void **state)
{
    static const char yaml[] = SVC ROUTE(
        "new", "2024-02-01T00:00:00Z",
        "  rules:\n"
        "  - name: n-prefix-a\n    matches: [{path: {type: PathPrefix, value: /a}}]\n"
        "  - name: n-regex\n    matches: [{path: {type: RegularExpression, value: "
        "\"/a/.*/x\"}}]\n"
        "  - name: n-method\n    matches: [{path: {value: /a}, method: GET}]\n")
        ROUTE("old", "2024-01-01T00:00:00Z",
              "  rules:\n"
              "  - name: o-prefix-a\n    matches: [{path: {type: PathPrefix, value: /a}}]\n"
              "  - name: o-headers\n    matches: [{path: {value: /a}, headers: [{name: x-v, value: "
              "\"1\"}]}]\n"
              "  - name: o-exact\n    matches: [{path: {type: Exact, value: /a}}]\n"
              "  - name: o-long\n    matches: [{path: {value: /a/b}}, {path: {value: /a/b}, "
              "queryParams: [{name: q, value: \"1\"}]}]\n"
              "  - name: o-default\n");
    static const char *const want[] = {
        "o-exact",                  /* Exact */
        "o-long",     "o-long",     /* prefix /a/b: with a query match first */
        "n-method",                 /* /a with a method */
        "o-headers",                /* /a with a header */
        "o-prefix-a", "n-prefix-a", /* /a: the older route first */
        "o-default",                /* PathPrefix / */
        "n-regex",                  /* RegularExpression */
    };
    struct built b;
    (void)state;

    build(&b, yaml, 80);
    assert_int_equal(b.d.n, 0);
    assert_int_equal(b.r->n_rules, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        if (strcmp(b.r->rules[i]->name, want[i]) != 0)
            fail_msg("rule %zu: %s, %s expected", i, b.r->rules[i]->name, want[i]);
    assert_int_equal(b.r->rules[1]->match->n_query, 1);
    assert_int_equal(b.r->rules[2]->match->n_query, 0);
    const Amesh__Waypoint__V1__Match *m = b.r->rules[7]->match;
    assert_int_equal(m->path_case, AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX);
    assert_string_equal(m->prefix, "/");
    assert_int_equal(b.r->rules[0]->match->path_case, AMESH__WAYPOINT__V1__MATCH__PATH_EXACT);
    assert_int_equal(b.r->rules[8]->match->path_case, AMESH__WAYPOINT__V1__MATCH__PATH_REGEX);
    assert_string_equal(b.r->rules[8]->match->regex, "/a/.*/x");
    assert_string_equal(b.r->rules[3]->match->method, "GET");
    assert_string_equal(b.r->sources[0], "HTTPRoute/app/old");
    done(&b);
}

static void
test_matches_filters_backends(void **state)
{
    static const char yaml[] = SVC ROUTE(
        "r", "2024-01-01T00:00:00Z",
        "  rules:\n"
        "  - matches: [{headers: [{name: x-a, value: b}, {type: RegularExpression, name: "
        "x-r, value: \"v[0-9]+\"}], queryParams: [{name: q, value: one}]}]\n"
        "    filters:\n"
        "    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-s, "
        "value: s}], add: [{name: x-add, value: a}], remove: [x-gone]}}\n"
        "    - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: "
        "x-resp, value: r}]}}\n"
        "    - {type: URLRewrite, urlRewrite: {hostname: h.example, path: {type: "
        "ReplacePrefixMatch, replacePrefixMatch: /v2}}}\n"
        "    backendRefs: [{name: v1, port: 8080, weight: 90}, {name: v2, port: 8080, "
        "weight: 10}]\n"
        "    timeouts: {request: 1m30s, backendRequest: 500ms}\n"
        "    retry: {attempts: 3, codes: [503, 502], backoff: 100ms}\n"
        "  - matches: [{path: {type: Exact, value: /old}}]\n"
        "    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: "
        "n.example, port: 8443, statusCode: 301, path: {type: ReplaceFullPath, "
        "replaceFullPath: /new}}}]\n"
        "  - matches: [{path: {type: Exact, value: /zero}}]\n"
        "    backendRefs: [{name: v1, port: 8080, weight: 0}]\n"
        "  - matches: [{path: {type: Exact, value: /none}}]\n");
    struct built b;
    (void)state;

    build(&b, yaml, 80);
    assert_int_equal(b.d.n, 0);
    assert_int_equal(b.r->n_rules, 4);
    /* Exact /zero and /none (longer than /old; then rule order), /old, then the prefix rule. */
    const Amesh__Waypoint__V1__Rule *zero = b.r->rules[0], *none = b.r->rules[1];
    const Amesh__Waypoint__V1__Rule *old = b.r->rules[2], *r = b.r->rules[3];
    assert_string_equal(none->match->exact, "/none");
    assert_int_equal(none->direct_status, 500);
    assert_int_equal(none->n_backends, 0);
    assert_string_equal(zero->match->exact, "/zero");
    assert_int_equal(zero->direct_status, 500);
    assert_int_equal(zero->n_backends, 0);
    assert_non_null(old->redirect);
    assert_string_equal(old->redirect->scheme, "https");
    assert_string_equal(old->redirect->hostname, "n.example");
    assert_int_equal(old->redirect->port, 8443);
    assert_int_equal(old->redirect->status, 301);
    assert_int_equal(old->redirect->path_case, AMESH__WAYPOINT__V1__REDIRECT__PATH_FULL);
    assert_string_equal(old->redirect->full, "/new");
    assert_int_equal(old->direct_status, 0);

    assert_string_equal(r->name, "app.r.0");
    assert_int_equal(r->match->n_headers, 2);
    assert_string_equal(r->match->headers[0]->name, "x-a");
    assert_int_equal(r->match->headers[0]->value_case, AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_EXACT);
    assert_string_equal(r->match->headers[0]->exact, "b");
    assert_int_equal(r->match->headers[1]->value_case, AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_REGEX);
    assert_string_equal(r->match->headers[1]->regex, "v[0-9]+");
    assert_int_equal(r->match->n_query, 1);
    assert_string_equal(r->match->query[0]->exact, "one");
    assert_int_equal(r->request_headers->n_set, 1);
    assert_string_equal(r->request_headers->set[0]->name, "x-s");
    assert_string_equal(r->request_headers->set[0]->value, "s");
    assert_string_equal(r->request_headers->add[0]->name, "x-add");
    assert_int_equal(r->request_headers->n_remove, 1);
    assert_string_equal(r->request_headers->remove[0], "x-gone");
    assert_string_equal(r->response_headers->set[0]->name, "x-resp");
    assert_string_equal(r->rewrite->hostname, "h.example");
    assert_int_equal(r->rewrite->path_case, AMESH__WAYPOINT__V1__REWRITE__PATH_PREFIX);
    assert_string_equal(r->rewrite->prefix, "/v2");
    assert_int_equal(r->n_backends, 2);
    assert_string_equal(r->backends[0]->service->namespace_, "app");
    assert_string_equal(r->backends[0]->service->hostname, "v1.app.svc.cluster.local");
    assert_int_equal(r->backends[0]->port, 8080);
    assert_int_equal(r->backends[0]->weight, 90);
    assert_int_equal(r->backends[1]->weight, 10);
    assert_int_equal(r->timeout->seconds, 90);
    assert_int_equal(r->timeout->nanos, 0);
    assert_int_equal(r->backend_timeout->seconds, 0);
    assert_int_equal(r->backend_timeout->nanos, 500000000);
    assert_int_equal(r->retry->attempts, 3);
    assert_int_equal(r->retry->n_codes, 2);
    assert_int_equal(r->retry->codes[0], 503);
    assert_int_equal(r->retry->backoff->nanos, 100000000);
    assert_int_equal(r->direct_status, 0);
    done(&b);
}

/* A route with a field the waypoint cannot serve is left out whole; the others stay. */
static void
test_refused(void **state)
{
    static const struct {
        const char *what, *rule;
    } bad[] = {
        {"mirror",
         "  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: "
         "80}}}]\n    backendRefs: [{name: v1, port: 80}]\n"},
        {"backend of another namespace", "  - backendRefs: [{name: v1, namespace: x, port: 80}]\n"},
        {"backend without a port", "  - backendRefs: [{name: v1}]\n"},
        {"backend not a Service", "  - backendRefs: [{group: networking.istio.io, kind: "
                                  "ServiceEntry, name: e, port: 80}]\n"},
        {"bad duration", "  - timeouts: {request: 10 seconds}\n    backendRefs: [{name: v1, port: "
                         "80}]\n"},
        {"bad path type", "  - matches: [{path: {type: Glob, value: /x}}]\n"},
    };
    struct built b;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char *yaml = xasprintf("%s" ROUTE("good", "2024-01-01T00:00:00Z",
                                          "  rules: [{backendRefs: [{name: v1, port: 80}]}]\n")
                                   ROUTE("bad", "2023-01-01T00:00:00Z", "  rules:\n%s"),
                               SVC, bad[i].rule);
        build(&b, yaml, 80);
        if (b.r->n_rules != 1 || b.r->n_sources != 1)
            fail_msg("%s: %zu rules, %zu sources", bad[i].what, b.r->n_rules, b.r->n_sources);
        assert_string_equal(b.r->sources[0], "HTTPRoute/app/good");
        if (count_code(&b.d, "AM0005") != 1)
            fail_msg("%s: %zu AM0005 diagnostics", bad[i].what, count_code(&b.d, "AM0005"));
        assert_int_equal(b.d.v[0].severity, K8S_ERROR);
        assert_true(b.d.v[0].line > 12); /* at the bad field, in the second route */
        assert_non_null(strstr(b.d.v[0].msg, "HTTPRoute app/bad"));
        done(&b);
        free(yaml);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_route_and_protocols),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_matches_filters_backends),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
