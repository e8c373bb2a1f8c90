/*
 * test_k8s_wpconf.c - what one waypoint is served (k8s_waypoint_config):
 * AuthorizationPolicies with targetRefs converted to amesh.waypoint.v1.Policy
 * (from, to, when, ALLOW/DENY; AUDIT/CUSTOM and unsupported keys refused with
 * AM0006, never more permissive), which policies and Route tables reach which
 * waypoint, and that ztunnel's Authorization never carries them. Decoded
 * with protobuf-c and checked field by field.
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

#define GW(name)                                                                                   \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: " name              \
    ", namespace: app}\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n  - {name: "     \
    "mesh, port: 15008, protocol: HBONE}\n---\n"
#define SVC(name, wp)                                                                              \
    "apiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: app, labels: "           \
    "{istio.io/use-waypoint: " wp "}}\nspec: {clusterIP: 10.96.0.1, ports: [{name: http, port: "   \
    "80}, {name: grpc, port: 9090}]}\n---\n"
#define BASE                                                                                       \
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\n" GW("w1") GW("w2")              \
        SVC("s1", "w1") SVC("s2", "w2")
#define AP(name, ns, extra)                                                                        \
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " name          \
    ", namespace: " ns "}\nspec:\n" extra "---\n"
#define TO_W1 "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: w1}]\n"

struct served {
    struct k8s_store *st;
    struct k8s_diags d;
    struct mesh_resources res;
};

static void
serve(struct served *s, const char *yaml, const char *gw)
{
    memset(s, 0, sizeof(*s));
    s->st = k8s_store_new();
    k8s_store_load_buf(s->st, "w.yaml", yaml, strlen(yaml), &s->d);
    assert_int_equal(k8s_waypoint_config(s->st, NULL, "app", gw, &s->res, NULL), 0);
}

static void
done(struct served *s)
{
    mesh_resources_free(&s->res);
    k8s_diags_clear(&s->d);
    k8s_store_free(s->st);
}

static size_t
n_type(const struct served *s, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < s->res.n; i++)
        n += strcmp(s->res.v[i].type_url, type) == 0;
    return n;
}

/* The only Policy of |s|, decoded. */
static Amesh__Waypoint__V1__Policy *
one_policy(const struct served *s)
{
    assert_int_equal(n_type(s, K8S_TYPE_POLICY), 1);
    const struct mesh_resource *r = NULL;
    for (size_t i = 0; i < s->res.n; i++)
        if (strcmp(s->res.v[i].type_url, K8S_TYPE_POLICY) == 0)
            r = &s->res.v[i];
    Amesh__Waypoint__V1__Policy *p = amesh__waypoint__v1__policy__unpack(NULL, r->len, r->data);
    assert_non_null(p);
    return p;
}

static size_t
count_code(const struct k8s_store *st, const char *code)
{
    struct k8s_diags all = {0};
    size_t n = 0;
    k8s_build_diags(st, &all);
    for (size_t i = 0; i < all.n; i++)
        n += all.v[i].code != NULL && strcmp(all.v[i].code, code) == 0;
    k8s_diags_clear(&all);
    return n;
}

static void
test_routes_per_waypoint(void **state)
{
    struct served s;
    (void)state;

    serve(&s, BASE, "w1");
    assert_int_equal(n_type(&s, K8S_TYPE_ROUTE), 2);
    assert_non_null(mesh_resources_find(&s.res, K8S_TYPE_ROUTE, "app/s1.app.svc.cluster.local:80"));
    assert_non_null(
        mesh_resources_find(&s.res, K8S_TYPE_ROUTE, "app/s1.app.svc.cluster.local:9090"));
    assert_null(mesh_resources_find(&s.res, K8S_TYPE_ROUTE, "app/s2.app.svc.cluster.local:80"));
    done(&s);
    serve(&s, BASE, "w2");
    assert_int_equal(n_type(&s, K8S_TYPE_ROUTE), 2);
    assert_non_null(mesh_resources_find(&s.res, K8S_TYPE_ROUTE, "app/s2.app.svc.cluster.local:80"));
    done(&s);
    /* Not a waypoint: nothing, -ENOENT. */
    struct k8s_store *st = k8s_store_new();
    struct mesh_resources r;
    k8s_store_load_buf(st, "w.yaml", BASE, strlen(BASE), NULL);
    assert_int_equal(k8s_waypoint_config(st, NULL, "app", "s1", &r, NULL), -ENOENT);
    assert_int_equal(r.n, 0);
    assert_int_equal(k8s_waypoint_config(st, NULL, "other", "w1", &r, NULL), -ENOENT);
    k8s_store_free(st);
}

static void
test_policy_full(void **state)
{
    struct served s;
    (void)state;

    serve(&s,
          BASE AP("p", "app",
                  TO_W1 "  action: DENY\n  rules:\n"
                        "  - from: [{source: {principals: [cluster.local/ns/a/sa/b], notNamespaces: "
                        "[x], ipBlocks: [198.18.0.0/16]}}, {source: {remoteIpBlocks: [198.19.0.1]}}]\n"
                        "    to: [{operation: {hosts: [\"*.example.com\"], methods: [GET], paths: "
                        "[/api/*, \"*.png\", /exact, \"/v1/{*}/x\", \"*\"], notPaths: [/admin*], "
                        "ports: [\"8080\"]}}]\n"
                        "    when: [{key: \"request.headers[x-user]\", values: [alice], notValues: "
                        "[bob]}, {key: destination.port, values: [\"80\"]}, {key: remote.ip, "
                        "values: [198.18.1.0/24]}]\n"),
          "w1");
    Amesh__Waypoint__V1__Policy *p = one_policy(&s);
    assert_string_equal(p->name, "p");
    assert_string_equal(p->namespace_, "app");
    assert_int_equal(p->action, ISTIO__SECURITY__ACTION__DENY);
    assert_int_equal(p->n_targets, 1);
    assert_int_equal(p->targets[0]->kind_case, AMESH__WAYPOINT__V1__TARGET__KIND_GATEWAY);
    assert_string_equal(p->targets[0]->gateway, "w1");
    assert_int_equal(p->n_rules, 1);
    Amesh__Waypoint__V1__PolicyRule *r = p->rules[0];
    assert_int_equal(r->n_clauses, 5); /* to, from, three when */
    /* to */
    Amesh__Waypoint__V1__PolicyMatch *to = r->clauses[0]->matches[0];
    assert_int_equal(to->n_hosts, 1);
    assert_string_equal(to->hosts[0]->suffix, ".example.com");
    assert_string_equal(to->methods[0]->exact, "GET");
    assert_int_equal(to->n_paths, 5);
    assert_string_equal(to->paths[0]->prefix, "/api/");
    assert_string_equal(to->paths[1]->suffix, ".png");
    assert_string_equal(to->paths[2]->exact, "/exact");
    assert_string_equal(to->paths[3]->template_, "/v1/{*}/x");
    assert_true(to->paths[4]->presence);
    assert_string_equal(to->not_paths[0]->prefix, "/admin");
    assert_non_null(to->l4);
    assert_int_equal(to->l4->n_destination_ports, 1);
    assert_int_equal(to->l4->destination_ports[0], 8080);
    /* from: two sources, ORed */
    Amesh__Waypoint__V1__PolicyClause *from = r->clauses[1];
    assert_int_equal(from->n_matches, 2);
    assert_string_equal(from->matches[0]->l4->principals[0]->exact, "cluster.local/ns/a/sa/b");
    assert_string_equal(from->matches[0]->l4->not_namespaces[0]->exact, "x");
    assert_int_equal(from->matches[0]->l4->source_ips[0]->length, 16);
    assert_int_equal(from->matches[1]->l4->n_source_ips, 1);
    assert_int_equal(from->matches[1]->l4->source_ips[0]->length, 32);
    /* when */
    Amesh__Waypoint__V1__PolicyMatch *h = r->clauses[2]->matches[0];
    assert_int_equal(h->n_headers, 1);
    assert_string_equal(h->headers[0]->name, "x-user");
    assert_string_equal(h->headers[0]->values[0]->exact, "alice");
    assert_string_equal(h->headers[0]->not_values[0]->exact, "bob");
    assert_null(h->l4);
    assert_int_equal(r->clauses[3]->matches[0]->l4->destination_ports[0], 80);
    assert_int_equal(r->clauses[4]->matches[0]->l4->source_ips[0]->length, 24);
    amesh__waypoint__v1__policy__free_unpacked(p, NULL);
    /* Left to the waypoint: ztunnel's Authorization never has it. */
    struct mesh_resources z;
    k8s_build_resources(s.st, NULL, &z, NULL);
    assert_null(mesh_resources_find(&z, K8S_TYPE_AUTHORIZATION, "app/p"));
    mesh_resources_free(&z);
    /* w2 is not targeted. */
    done(&s);
    serve(&s, BASE AP("p", "app", TO_W1 "  rules: [{}]\n"), "w2");
    assert_int_equal(n_type(&s, K8S_TYPE_POLICY), 0);
    done(&s);
}

struct pcase {
    const char *what;
    const char *spec;
    const char *gw;
    int n_policies;    /* reaching the waypoint */
    int action;        /* of the one policy */
    int n_rules;       /* of the one policy */
    int n_clauses;     /* of its first rule, -1: not checked */
    int target_kind;   /* of its first target */
    size_t n_refused;  /* AM0006 diagnostics */
};

#define G AMESH__WAYPOINT__V1__TARGET__KIND_GATEWAY
#define S AMESH__WAYPOINT__V1__TARGET__KIND_SERVICE
#define ALLOW ISTIO__SECURITY__ACTION__ALLOW
#define DENY ISTIO__SECURITY__ACTION__DENY

static const struct pcase pcases[] = {
    {"no rules: an ALLOW that never matches", TO_W1, "w1", 1, ALLOW, 0, -1, G, 0},
    {"one empty rule matches all", TO_W1 "  rules: [{}]\n", "w1", 1, ALLOW, 1, 0, G, 0},
    {"service target bound to w1",
     "  targetRefs: [{kind: Service, group: \"\", name: s1}]\n  rules: [{}]\n", "w1", 1, ALLOW, 1,
     0, S, 0},
    {"service target bound to w2 does not reach w1",
     "  targetRefs: [{kind: Service, group: \"\", name: s2}]\n  rules: [{}]\n", "w1", 0, 0, 0, 0,
     0, 0},
    {"targetRef (singular)",
     "  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: w1}\n  rules: [{}]\n",
     "w1", 1, ALLOW, 1, 0, G, 0},
    {"ALLOW with request.auth.claims: the rule is omitted",
     TO_W1 "  rules:\n  - when: [{key: \"request.auth.claims[iss]\", values: [x]}]\n  - to: "
           "[{operation: {methods: [GET]}}]\n",
     "w1", 1, ALLOW, 1, 1, G, 1},
    {"DENY with requestPrincipals: kept without them (matches more)",
     TO_W1 "  action: DENY\n  rules:\n  - from: [{source: {requestPrincipals: [a/b], namespaces: "
           "[x]}}]\n",
     "w1", 1, DENY, 1, 1, G, 1},
    {"DENY with an unsupported when: the condition goes",
     TO_W1 "  action: DENY\n  rules:\n  - to: [{operation: {paths: [/a]}}]\n    when: [{key: "
           "connection.sni, values: [x]}]\n",
     "w1", 1, DENY, 1, 1, G, 1},
    {"remoteIpBlocks beside ipBlocks: refused",
     TO_W1 "  rules:\n  - from: [{source: {ipBlocks: [198.18.0.1], remoteIpBlocks: [198.18.0.2]}}]\n",
     "w1", 1, ALLOW, 0, -1, G, 1},
    {"AUDIT: not sent", TO_W1 "  action: AUDIT\n  rules: [{}]\n", "w1", 0, 0, 0, 0, 0, 1},
    {"CUSTOM: not sent",
     TO_W1 "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n", "w1", 0, 0, 0, 0, 0, 1},
    {"another Gateway", "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: "
                        "nope}]\n  rules: [{}]\n",
     "w1", 0, 0, 0, 0, 0, 0},
};

static void
test_policy_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(pcases); i++) {
        const struct pcase *c = &pcases[i];
        char *full = xasprintf(BASE AP("p", "app", "%s"), c->spec);
        struct served s;
        print_message("case %zu: %s\n", i, c->what);
        serve(&s, full, c->gw);
        assert_int_equal(k8s_diags_count(&s.d, K8S_ERROR), 0);
        assert_int_equal(n_type(&s, K8S_TYPE_POLICY), c->n_policies);
        if (c->n_policies == 1) {
            Amesh__Waypoint__V1__Policy *p = one_policy(&s);
            assert_int_equal(p->action, c->action);
            assert_int_equal(p->n_rules, c->n_rules);
            if (c->n_clauses >= 0)
                assert_int_equal(p->rules[0]->n_clauses, c->n_clauses);
            assert_int_equal(p->targets[0]->kind_case, c->target_kind);
            if (c->target_kind == S)
                assert_string_equal(p->targets[0]->service->hostname,
                                    "s1.app.svc.cluster.local");
            amesh__waypoint__v1__policy__free_unpacked(p, NULL);
        }
        assert_int_equal(count_code(s.st, "AM0006"), c->n_refused);
        done(&s);
        free(full);
    }
}

static void
test_gateway_class_root_only(void **state)
{
    struct served s;
    const char *cls = "  targetRefs: [{group: gateway.networking.k8s.io, kind: GatewayClass, "
                      "name: istio-waypoint}]\n  rules: [{}]\n";
    char *root = xasprintf(BASE AP("g", "istio-system", "%s"), cls);
    char *app = xasprintf(BASE AP("g", "app", "%s"), cls);
    (void)state;

    serve(&s, root, "w2");
    Amesh__Waypoint__V1__Policy *p = one_policy(&s);
    assert_string_equal(p->targets[0]->gateway, "w2");
    amesh__waypoint__v1__policy__free_unpacked(p, NULL);
    done(&s);
    serve(&s, app, "w1");
    assert_int_equal(n_type(&s, K8S_TYPE_POLICY), 0);
    done(&s);
    free(root);
    free(app);
}

/* Content-hash versions: equal input, equal version; an edit changes it. */
static void
test_versions(void **state)
{
    struct served a, b, c;
    (void)state;

    serve(&a, BASE AP("p", "app", TO_W1 "  rules: [{}]\n"), "w1");
    serve(&b, BASE AP("p", "app", TO_W1 "  rules: [{}]\n"), "w1");
    serve(&c, BASE AP("p", "app", TO_W1 "  action: DENY\n  rules: [{}]\n"), "w1");
    const struct mesh_resource *ra = mesh_resources_find(&a.res, K8S_TYPE_POLICY, "app/p");
    const struct mesh_resource *rb = mesh_resources_find(&b.res, K8S_TYPE_POLICY, "app/p");
    const struct mesh_resource *rc = mesh_resources_find(&c.res, K8S_TYPE_POLICY, "app/p");
    assert_string_equal(ra->version, rb->version);
    assert_string_not_equal(ra->version, rc->version);
    done(&a);
    done(&b);
    done(&c);
}

/* Route errors of waypoint tables reach the diagnostics (meshctl analyze, meshd's log) once. */
static void
test_route_errors_reported_once(void **state)
{
    struct served s;
    (void)state;

    serve(&s,
          BASE "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, "
               "namespace: app}\nspec:\n  parentRefs: [{group: \"\", kind: Service, name: s1}]\n"
               "  rules: [{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s1, "
               "port: 80}}}]}]\n",
          "w1");
    assert_int_equal(n_type(&s, K8S_TYPE_ROUTE), 2); /* both ports, without the route */
    assert_int_equal(count_code(s.st, "AM0005"), 1); /* attached to two ports, said once */
    done(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_per_waypoint),
        cmocka_unit_test(test_policy_full),
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test(test_gateway_class_root_only),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_route_errors_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
