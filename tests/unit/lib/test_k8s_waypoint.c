/*
 * test_k8s_waypoint.c - waypoint binding in the converter (issue 10 section
 * 1): a table over the binding matrix (label on the Service, the pod or the
 * Namespace; "none"; traffic type on the Gateway or its GatewayClass;
 * cross-namespace with allowedRoutes Same, All, Selector; waypoint pods;
 * Gateways that are not waypoints or are malformed). For each case the
 * Service's and the Workload's waypoint are decoded from the built bytes and
 * checked field by field, and the diagnostics must carry exactly the
 * expected analyzer code, with file and line.
 */
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
#include "workload.pb-c.h"

#define SVC_KEY "app/s.app.svc.cluster.local"
#define POD_KEY "Kubernetes//Pod/app/p"

/* A Gateway |name| in |ns| of class istio-waypoint; |labels| and |listener| are YAML flow maps. */
#define GW(ns, name, labels, listener)                                                             \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: " name              \
    ", namespace: " ns ", labels: " labels "}\nspec:\n  gatewayClassName: istio-waypoint\n"        \
    "  listeners:\n  - " listener "\n---\n"
#define MESH      "{name: mesh, port: 15008, protocol: HBONE}"
#define MESH_ALL                                                                                   \
    "{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: All}}}"
#define MESH_SEL(sel)                                                                              \
    "{name: mesh, port: 15008, protocol: HBONE, allowedRoutes: {namespaces: {from: Selector, "     \
    "selector: " sel "}}}"
#define FOR(t)    "{istio.io/waypoint-for: " t "}"
#define CLASS(t)                                                                                   \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: "              \
    "istio-waypoint, labels: {istio.io/waypoint-for: " t "}}\n"                                   \
    "spec: {controllerName: istio.io/mesh-controller}\n---\n"

struct wcase {
    const char *what;
    const char *ns_labels;  /* Namespace app */
    const char *pod_labels; /* besides app: x */
    const char *svc_labels;
    const char *extra; /* Gateways, GatewayClass, Namespace wp */
    const char *want_svc; /* "ns/name" of the waypoint, or NULL */
    const char *want_pod;
    const char *want_code; /* the one waypoint diagnostic expected, or NULL */
};

static const struct wcase cases[] = {
    {"no labels", "{}", "", "{}", GW("app", "w", "{}", MESH), NULL, NULL, NULL},
    {"namespace label, service waypoint: the pod inherits silently nothing",
     "{istio.io/use-waypoint: w}", "", "{}", GW("app", "w", "{}", MESH), "app/w", NULL, NULL},
    {"namespace label, waypoint for all", "{istio.io/use-waypoint: w}", "", "{}",
     GW("app", "w", FOR("all"), MESH), "app/w", "app/w", NULL},
    {"namespace label, workload waypoint: the Service inherits silently nothing",
     "{istio.io/use-waypoint: w}", "", "{}", GW("app", "w", FOR("workload"), MESH), NULL, "app/w",
     NULL},
    {"pod label on a service waypoint", "{}", ", istio.io/use-waypoint: w", "{}",
     GW("app", "w", "{}", MESH), NULL, NULL, "AM0002"},
    {"pod label on a workload waypoint", "{}", ", istio.io/use-waypoint: w", "{}",
     GW("app", "w", FOR("workload"), MESH), NULL, "app/w", NULL},
    {"service label on a workload waypoint", "{}", "", "{istio.io/use-waypoint: w}",
     GW("app", "w", FOR("workload"), MESH), NULL, NULL, "AM0002"},
    {"service label naming no Gateway", "{}", "", "{istio.io/use-waypoint: nope}",
     GW("app", "w", "{}", MESH), NULL, NULL, "IST0101"},
    {"namespace label naming no Gateway", "{istio.io/use-waypoint: nope}", "", "{}", "", NULL, NULL,
     "IST0101"},
    {"pod opts out with none", "{istio.io/use-waypoint: w}", ", istio.io/use-waypoint: none", "{}",
     GW("app", "w", FOR("all"), MESH), "app/w", NULL, NULL},
    {"service opts out with none", "{istio.io/use-waypoint: w}", "",
     "{istio.io/use-waypoint: none}",
     GW("app", "w", FOR("all"), MESH), NULL, "app/w", NULL},
    {"the object's label wins over the namespace's", "{istio.io/use-waypoint: w1}", "",
     "{istio.io/use-waypoint: w2}",
     GW("app", "w1", FOR("all"), MESH) GW("app", "w2", "{}", MESH), "app/w2", "app/w1", NULL},
    {"cross-namespace, listener allows Same only", "{}", "",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}", GW("wp", "w", "{}", MESH),
     NULL, NULL, "AM0003"},
    {"cross-namespace, from All", "{}", "",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}",
     GW("wp", "w", "{}", MESH_ALL), "wp/w", NULL, NULL},
    {"cross-namespace, Selector matching the namespace's labels", "{team: a}", "",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}",
     GW("wp", "w", "{}", MESH_SEL("{matchLabels: {team: a}}")), "wp/w", NULL, NULL},
    {"cross-namespace, Selector not matching", "{team: b}", "",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}",
     GW("wp", "w", "{}", MESH_SEL("{matchLabels: {team: a}}")), NULL, NULL, "AM0003"},
    {"cross-namespace, Selector on the API server's name label", "{}", "",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}",
     GW("wp", "w", "{}",
        MESH_SEL("{matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: "
                 "[app]}]}")),
     "wp/w", NULL, NULL},
    {"cross-namespace from the namespace's labels",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}", "", "{}",
     GW("wp", "w", FOR("all"), MESH_ALL), "wp/w", "wp/w", NULL},
    {"namespace label cross-namespace not allowed",
     "{istio.io/use-waypoint: w, istio.io/use-waypoint-namespace: wp}", "", "{}",
     GW("wp", "w", FOR("all"), MESH), NULL, NULL, "AM0003"},
    {"traffic type from the GatewayClass", "{istio.io/use-waypoint: w}", "", "{}",
     CLASS("all") GW("app", "w", "{}", MESH), "app/w", "app/w", NULL},
    {"the Gateway's traffic type wins over its class's", "{istio.io/use-waypoint: w}", "", "{}",
     CLASS("all") GW("app", "w", FOR("workload"), MESH), NULL, "app/w", NULL},
    {"waypoint none takes nothing", "{istio.io/use-waypoint: w}", "", "{}",
     GW("app", "w", FOR("none"), MESH), NULL, NULL, NULL},
    {"a waypoint pod never gets a waypoint", "{istio.io/use-waypoint: w}",
     ", gateway.networking.k8s.io/gateway-name: w", "{}", GW("app", "w", FOR("all"), MESH), "app/w",
     NULL, NULL},
    {"a Gateway of another class is no waypoint", "{}", "", "{istio.io/use-waypoint: gw}",
     "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: "
     "app}\nspec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: "
     "HTTP}]}\n---\n",
     NULL, NULL, "IST0101"},
    {"a malformed listener is reported, the binding holds (fails closed)",
     "{istio.io/use-waypoint: w}", "", "{}",
     GW("app", "w", "{}", "{name: mesh, port: 15009, protocol: HBONE}"), "app/w", NULL, "AM0004"},
    {"an unknown traffic type is reported and takes nothing", "{istio.io/use-waypoint: w}", "",
     "{}",
     GW("app", "w", FOR("pods"), MESH), NULL, NULL, "AM0004"},
};

static char *
manifest(const struct wcase *c)
{
    return xasprintf(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: app, labels: %s}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: wp}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: app, labels: {app: x%s}}\n"
        "status: {phase: Running, podIP: 10.1.0.1}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: app, labels: %s}\n"
        "spec: {selector: {app: x}, clusterIP: 10.96.0.1, ports: [{port: 80}]}\n---\n%s",
        c->ns_labels, c->pod_labels, c->svc_labels, c->extra);
}

static Istio__Workload__Address *
unpack(const struct mesh_resources *r, const char *name)
{
    const struct mesh_resource *m = mesh_resources_find(r, K8S_TYPE_ADDRESS, name);
    if (m == NULL)
        fail_msg("no resource %s", name);
    Istio__Workload__Address *a = istio__workload__address__unpack(NULL, m->len, m->data);
    assert_non_null(a);
    return a;
}

/* |ga| is the GatewayAddress istiod sends for waypoint |want| ("ns/name"), or absent when NULL. */
static void
check_waypoint(const char *what, const char *who, const Istio__Workload__GatewayAddress *ga,
               const char *want)
{
    if (want == NULL) {
        if (ga != NULL)
            fail_msg("%s: %s has a waypoint, none expected", what, who);
        return;
    }
    if (ga == NULL)
        fail_msg("%s: %s has no waypoint, %s expected", what, who, want);
    char ns[64], host[160];
    const char *slash = strchr(want, '/');
    snprintf(ns, sizeof(ns), "%.*s", (int)(slash - want), want);
    snprintf(host, sizeof(host), "%s.%s.svc.cluster.local", slash + 1, ns);
    assert_int_equal(ga->destination_case, ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME);
    assert_non_null(ga->hostname);
    assert_string_equal(ga->hostname->namespace_, ns);
    assert_string_equal(ga->hostname->hostname, host);
    assert_int_equal(ga->hbone_mtls_port, 15008);
}

static bool
waypoint_code(const char *code)
{
    static const char *const codes[] = {"IST0101", "AM0002", "AM0003", "AM0004"};
    for (size_t i = 0; code != NULL && i < ARRAY_LEN(codes); i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

static void
test_binding_matrix(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const struct wcase *c = &cases[i];
        char *text = manifest(c);
        struct k8s_store *st = k8s_store_new();
        struct k8s_diags d = {0}, all = {0};
        struct mesh_resources r;

        if (k8s_store_load_buf(st, "wp.yaml", text, strlen(text), &d) != 0)
            fail_msg("%s: load: %s", c->what, d.n ? k8s_diag_str(&d.v[0]) : "?");
        assert_int_equal(k8s_build_resources(st, NULL, &r, NULL), 0);
        Istio__Workload__Address *a = unpack(&r, SVC_KEY);
        assert_int_equal(a->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE);
        check_waypoint(c->what, "Service", a->service->waypoint, c->want_svc);
        istio__workload__address__free_unpacked(a, NULL);
        a = unpack(&r, POD_KEY);
        assert_int_equal(a->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD);
        check_waypoint(c->what, "Workload", a->workload->waypoint, c->want_pod);
        istio__workload__address__free_unpacked(a, NULL);

        k8s_build_diags(st, &all);
        size_t found = 0;
        for (size_t j = 0; j < all.n; j++) {
            const struct k8s_diag *g = &all.v[j];
            if (!waypoint_code(g->code))
                continue;
            char *s = k8s_diag_str(g);
            if (c->want_code == NULL || strcmp(g->code, c->want_code) != 0)
                fail_msg("%s: unexpected %s", c->what, s);
            assert_string_equal(g->file, "wp.yaml");
            assert_true(g->line > 1);
            free(s);
            found++;
        }
        if (c->want_code != NULL && found != 1)
            fail_msg("%s: %zu diagnostics %s, 1 expected", c->what, found, c->want_code);
        mesh_resources_free(&r);
        k8s_diags_clear(&d);
        k8s_diags_clear(&all);
        k8s_store_free(st);
        free(text);
    }
}

/* The diagnostic's line is the label's, and the message names what is missing. */
static void
test_diag_line(void **state)
{
    static const char text[] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
                               "  namespace: app\n  labels:\n    app: x\n"
                               "    istio.io/use-waypoint: ghost\n"
                               "spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags all = {0};
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "s.yaml", text, strlen(text), NULL), 0);
    k8s_build_diags(st, &all);
    assert_int_equal(all.n, 1);
    assert_int_equal(all.v[0].line, 8);
    assert_int_equal(all.v[0].severity, K8S_ERROR);
    assert_string_equal(all.v[0].code, "IST0101");
    assert_non_null(strstr(all.v[0].msg, "app/ghost"));
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_matrix),
        cmocka_unit_test(test_diag_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
