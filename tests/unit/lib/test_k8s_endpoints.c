/*
 * test_k8s_endpoints.c - table tests of the conversion of EndpointSlices
 * (workloads for endpoints that are not pods, k8s_endpoints.c) and of pod
 * locality from Node labels (k8s_workload.c), decoding the packed resources;
 * the decoder's refusals of slices the API server would refuse; the real API
 * server's answers (tests/fixtures/kube: a v1beta1 EndpointSlice list and a
 * Node, as meshd's reflectors hand them to the store); and the incremental
 * converter following a Node's label change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include <cmocka.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"
#include "workload.pb-c.h"

#define SVC_NOSEL                                                                                  \
    "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: demo}\n"                       \
    "spec:\n  clusterIP: 198.19.0.10\n  ports:\n"                                                  \
    "  - {name: sql, port: 5432, targetPort: 5432}\n  - {name: admin, port: 8080}\n---\n"
#define SLICE_HEAD(ver, name, type)                                                                \
    "apiVersion: discovery.k8s.io/" ver "\nkind: EndpointSlice\n"                                  \
    "metadata: {name: " name ", namespace: demo, labels: {kubernetes.io/service-name: db}}\n"      \
    "addressType: " type "\n"

/* One expected workload: uid suffix after "Kubernetes/discovery.k8s.io/EndpointSlice/demo/". */
struct want_wl {
    const char *uid;
    const char *addr; /* 4 or 16 bytes written as text, parsed by the test */
    bool healthy;
    const char *ports; /* "svc:target,..." in the db entry, in order */
};

struct slice_case {
    const char *name;
    const char *yaml;
    size_t n_slice_wls; /* EndpointSlice workloads expected */
    struct want_wl wl[3];
};

static const struct slice_case slice_cases[] = {
    {"v1beta1, two endpoints, one not ready, ports joined by name",
     SVC_NOSEL SLICE_HEAD(
         "v1beta1", "db-1",
         "IPv4") "ports:\n- {name: sql, port: 15432, protocol: TCP}\n- {name: admin, port: 18080}\n"
                 "endpoints:\n- addresses: [198.19.1.1]\n- addresses: [198.19.1.2]\n"
                 "  conditions: {ready: false}\n",
     2,
     {{"db-1/198.19.1.1", "198.19.1.1", true, "5432:15432,8080:18080"},
      {"db-1/198.19.1.2", "198.19.1.2", false, "5432:15432,8080:18080"}}},
    {"v1, UDP and unknown port names left out, ready absent counts as ready",
     SVC_NOSEL SLICE_HEAD(
         "v1", "db-2",
         "IPv4") "ports:\n- {name: sql, port: 15432, protocol: UDP}\n- {name: other, port: 1}\n"
                 "- {name: admin, port: 18080, protocol: TCP}\n"
                 "endpoints:\n- addresses: [198.19.1.3]\n  conditions: {serving: true}\n",
     1,
     {{"db-2/198.19.1.3", "198.19.1.3", true, "8080:18080"}}},
    {"pod endpoints are skipped (the pod is the workload)",
     SVC_NOSEL SLICE_HEAD(
         "v1", "db-3",
         "IPv4") "ports:\n- {name: sql, port: 5432}\n"
                 "endpoints:\n- addresses: [198.19.1.4]\n  targetRef: {kind: Pod, name: p, "
                 "namespace: demo}\n"
                 "- addresses: [198.19.1.5]\n  targetRef: {kind: VirtualMachine, name: vm}\n",
     1,
     {{"db-3/198.19.1.5", "198.19.1.5", true, "5432:5432"}}},
    {"IPv6, a repeated first address is left out",
     SVC_NOSEL SLICE_HEAD(
         "v1", "db-6",
         "IPv6") "ports:\n- {name: sql, port: 5432}\n"
                 "endpoints:\n- addresses: ['2001:db8::1']\n- addresses: ['2001:db8::1']\n",
     1,
     {{"db-6/2001:db8::1", "2001:db8::1", true, "5432:5432"}}},
    {"no Service of that name: nothing",
     SLICE_HEAD("v1", "db-7", "IPv4") "endpoints:\n- addresses: [198.19.1.7]\n",
     0,
     {{0}}},
    {"no service-name label: nothing",
     SVC_NOSEL "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
               "metadata: {name: x, namespace: demo}\naddressType: IPv4\n"
               "endpoints:\n- addresses: [198.19.1.8]\n",
     0,
     {{0}}},
    {"FQDN slices are not converted",
     SVC_NOSEL SLICE_HEAD("v1", "db-9", "FQDN") "endpoints:\n- addresses: [db.example]\n",
     0,
     {{0}}},
    {"an ExternalName Service: nothing",
     "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: demo}\n"
     "spec: {type: ExternalName, externalName: db.example}\n---\n" SLICE_HEAD(
         "v1", "db-10", "IPv4") "endpoints:\n- addresses: [198.19.1.10]\n",
     0,
     {{0}}},
};

static struct k8s_store *
store_of(const char *yaml, int want_rc)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    int rc = k8s_store_load_buf(st, "t.yaml", yaml, strlen(yaml), &d);

    if (rc != want_rc) {
        for (size_t i = 0; i < d.n; i++) {
            char *s = k8s_diag_str(&d.v[i]);
            print_message("%s\n", s);
            free(s);
        }
        fail_msg("load: %d, wanted %d", rc, want_rc);
    }
    k8s_diags_clear(&d);
    return st;
}

static Istio__Workload__Workload *
unpack_wl(const struct mesh_resource *m, Istio__Workload__Address **a)
{
    *a = istio__workload__address__unpack(NULL, m->len, m->data);
    assert_non_null(*a);
    assert_int_equal((*a)->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD);
    return (*a)->workload;
}

static void
ports_str(const Istio__Workload__PortList *pl, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < pl->n_ports && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%u:%u", i ? "," : "", pl->ports[i]->service_port,
                              pl->ports[i]->target_port);
}

static void
check_slice_case(const struct slice_case *c)
{
    static const char prefix[] = "Kubernetes/discovery.k8s.io/EndpointSlice/demo/";
    struct k8s_store *st = store_of(c->yaml, 0);
    struct mesh_resources r;
    size_t found = 0;

    print_message("case: %s\n", c->name);
    assert_int_equal(k8s_build_resources(st, NULL, &r, NULL), 0);
    for (size_t i = 0; i < r.n; i++) {
        if (strncmp(r.v[i].name, prefix, strlen(prefix)) != 0)
            continue;
        assert_true(found < c->n_slice_wls);
        const struct want_wl *want = &c->wl[found++];
        Istio__Workload__Address *a;
        Istio__Workload__Workload *w = unpack_wl(&r.v[i], &a);
        char ip[64], ports[128];
        assert_string_equal(r.v[i].name + strlen(prefix), want->uid);
        assert_string_equal(w->uid, r.v[i].name);
        assert_string_equal(w->namespace_, "demo");
        assert_int_equal(w->n_addresses, 1);
        assert_non_null(inet_ntop(w->addresses[0].len == 4 ? AF_INET : AF_INET6,
                                  w->addresses[0].data, ip, sizeof(ip)));
        assert_string_equal(ip, want->addr);
        assert_int_equal(w->status, want->healthy ? ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY
                                                  : ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY);
        assert_int_equal(w->network_mode, ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK);
        assert_string_equal(w->cluster_id, "Kubernetes");
        assert_true(w->service_account == NULL || w->service_account[0] == '\0');
        assert_null(w->locality);
        assert_int_equal(w->n_services, 1);
        assert_string_equal(w->services[0]->key, "demo/db.demo.svc.cluster.local");
        ports_str(w->services[0]->value, ports, sizeof(ports));
        assert_string_equal(ports, want->ports);
        istio__workload__address__free_unpacked(a, NULL);
    }
    assert_int_equal(found, c->n_slice_wls);
    /* The names stay sorted with the slice workloads merged in. */
    for (size_t i = 1; i < r.n; i++)
        if (r.v[i].type_url == r.v[i - 1].type_url)
            assert_true(strcmp(r.v[i - 1].name, r.v[i].name) < 0);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

static void
test_slice_workloads(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(slice_cases); i++)
        check_slice_case(&slice_cases[i]);
}

/* Slices the API server refuses are refused here, with a message naming the field. */
static void
test_slice_refused(void **state)
{
    static const struct {
        const char *yaml;
        const char *msg;
    } cases[] = {
        {SLICE_HEAD("v1", "a", "IPv4") "endpoints:\n- addresses: [2001:db8::1]\n",
         "endpoints[0].addresses[0]: \"2001:db8::1\" is not an IPv4 address"},
        {SLICE_HEAD("v1", "a", "IPv6") "endpoints:\n- addresses: [198.19.0.1]\n",
         "is not an IPv6 address"},
        {SLICE_HEAD("v1", "a", "IPv4") "endpoints:\n- addresses: [not-an-ip]\n",
         "is not an IPv4 address"},
        {SLICE_HEAD("v1", "a", "IPv4") "endpoints:\n- conditions: {ready: true}\n",
         "endpoints[0]: addresses: at least one is required"},
        {SLICE_HEAD("v1", "a", "IPv4") "endpoints:\n- addresses: [198.19.0.1]\n"
                                       "  conditions: {ready: maybe}\n",
         "endpoints[0].conditions.ready"},
        {SLICE_HEAD("v1", "a", "Mac") "endpoints: []\n", "addressType: \"Mac\" is not IPv4"},
        {"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\n",
         "addressType is required"},
        {SLICE_HEAD("v1", "a", "IPv4") "ports:\n- {name: sql, port: 70000}\n", "ports[0].port"},
        {SLICE_HEAD("v1", "a", "IPv4") "endpoints: {a: 1}\n", "endpoints"},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct k8s_store *st = k8s_store_new();
        struct k8s_diags d = {0};
        bool seen = false;
        print_message("refused: %s\n", cases[i].msg);
        assert_int_equal(k8s_store_load_buf(st, "t.yaml", cases[i].yaml, strlen(cases[i].yaml), &d),
                         -MESH_ECONFIG);
        for (size_t j = 0; j < d.n; j++)
            seen |= d.v[j].severity == K8S_ERROR && strstr(d.v[j].msg, cases[i].msg) != NULL;
        if (!seen && d.n > 0)
            print_message("got: %s\n", d.v[0].msg);
        assert_true(seen);
        assert_int_equal(k8s_store_count(st, K8S_ENDPOINT_SLICE), 0);
        k8s_diags_clear(&d);
        k8s_store_free(st);
    }
}

#define POD_ON(node)                                                                               \
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: demo}\n"                            \
    "spec: {nodeName: " node ", containers: [{name: c, image: x}]}\n"                              \
    "status: {phase: Running, podIP: 198.19.2.1}\n---\n"
#define NODE(labels) "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: " labels "}\n---\n"

static const struct {
    const char *name;
    const char *yaml;
    const char *region, *zone, *subzone; /* NULL region: no locality at all */
} locality_cases[] = {
    {"region, zone and subzone",
     POD_ON("n1") NODE("{topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: z1, "
                       "topology.istio.io/subzone: s1, other: x}"),
     "r1", "z1", "s1"},
    {"zone only", POD_ON("n1") NODE("{topology.kubernetes.io/zone: z2}"), "", "z2", ""},
    {"the node has no topology labels", POD_ON("n1") NODE("{kubernetes.io/hostname: n1}"), NULL,
     NULL, NULL},
    {"the deprecated failure-domain labels are not read",
     POD_ON("n1") NODE("{failure-domain.beta.kubernetes.io/zone: z3}"), NULL, NULL, NULL},
    {"the node is unknown", POD_ON("n2") NODE("{topology.kubernetes.io/zone: z1}"), NULL, NULL,
     NULL},
    {"the pod is not scheduled", POD_ON("''") NODE("{topology.kubernetes.io/zone: z1}"), NULL, NULL,
     NULL},
};

static Istio__Workload__Address *
pod_address(const struct mesh_resources *r)
{
    const struct mesh_resource *m =
        mesh_resources_find(r, K8S_TYPE_ADDRESS, "Kubernetes//Pod/demo/p");
    Istio__Workload__Address *a;

    assert_non_null(m);
    unpack_wl(m, &a);
    return a;
}

static void
test_pod_locality(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(locality_cases); i++) {
        struct k8s_store *st = store_of(locality_cases[i].yaml, 0);
        struct mesh_resources r;
        print_message("locality: %s\n", locality_cases[i].name);
        assert_int_equal(k8s_build_resources(st, NULL, &r, NULL), 0);
        Istio__Workload__Address *a = pod_address(&r);
        const Istio__Workload__Locality *l = a->workload->locality;
        if (locality_cases[i].region == NULL) {
            assert_null(l);
        } else {
            assert_non_null(l);
            assert_string_equal(l->region, locality_cases[i].region);
            assert_string_equal(l->zone, locality_cases[i].zone);
            assert_string_equal(l->subzone, locality_cases[i].subzone);
        }
        istio__workload__address__free_unpacked(a, NULL);
        mesh_resources_free(&r);
        k8s_store_free(st);
    }
}

/* The incremental converter: a Node's label change repacks its pods, and only its pods. */
static void
test_locality_follows_node(void **state)
{
    static const char pods[] =
        POD_ON("n1") "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: demo}\n"
                     "spec: {nodeName: n9}\nstatus: {phase: Running, podIP: 198.19.2.2}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    struct mesh_resources r1, r2, r3;
    json_t *node =
        json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "apiVersion", "v1", "kind", "Node", "metadata",
                  "name", "n1", "labels", "topology.kubernetes.io/zone", "a");
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "pods.yaml", pods, strlen(pods), NULL), 0);
    assert_int_equal(k8s_store_put_json(st, "api:Node/n1", node, NULL, true), 0);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r1, NULL), 0);
    Istio__Workload__Address *a = pod_address(&r1);
    assert_string_equal(a->workload->locality->zone, "a");
    istio__workload__address__free_unpacked(a, NULL);

    /* The same Node again (a status heartbeat, trimmed away by meshd): nothing repacked. */
    assert_int_equal(k8s_store_put_json(st, "api:Node/n1", node, NULL, true), 0);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r2, NULL), 0);
    assert_int_equal(k8s_conv_packed(cv), 0);
    mesh_resources_free(&r2);

    json_object_set_new(json_object_get(json_object_get(node, "metadata"), "labels"),
                        "topology.kubernetes.io/zone", json_string("b"));
    assert_int_equal(k8s_store_put_json(st, "api:Node/n1", node, NULL, true), 0);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r3, NULL), 0);
    assert_int_equal(k8s_conv_packed(cv), 1); /* p only: q is on another node */
    a = pod_address(&r3);
    assert_string_equal(a->workload->locality->zone, "b");
    istio__workload__address__free_unpacked(a, NULL);
    /* ... with the same bytes as a build from scratch. */
    struct mesh_resources fresh;
    assert_int_equal(k8s_build_resources(st, NULL, &fresh, NULL), 0);
    assert_int_equal(fresh.n, r3.n);
    for (size_t i = 0; i < fresh.n; i++) {
        assert_string_equal(fresh.v[i].version, r3.v[i].version);
    }
    mesh_resources_free(&fresh);

    /* The Node gone: no locality. */
    k8s_store_forget(st, "api:Node/n1", true);
    mesh_resources_free(&r1);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r1, NULL), 0);
    a = pod_address(&r1);
    assert_null(a->workload->locality);
    istio__workload__address__free_unpacked(a, NULL);

    json_decref(node);
    mesh_resources_free(&r1);
    mesh_resources_free(&r3);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

static json_t *
fixture(const char *name)
{
    char path[512];
    json_error_t err;

    snprintf(path, sizeof(path), "%s/tests/fixtures/kube/%s", MESH_SOURCE_DIR, name);
    json_t *j = json_load_file(path, 0, &err);
    if (j == NULL)
        fail_msg("%s: %s", path, err.text);
    return j;
}

/* The recorded slice and Node put into the store as meshd does (items get the list's kind). */
static void
test_recorded_answers(void **state)
{
    static const char svc_pod[] =
        "apiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: fx}\n"
        "spec: {clusterIP: 198.19.0.10, ports: [{name: sql, port: 5432}, {name: admin, port: "
        "8080}]}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: echo-0, namespace: fx}\n"
        "spec: {nodeName: node-fx}\nstatus: {phase: Running, podIP: 198.18.5.3}\n";
    static const char prefix[] = "Kubernetes/discovery.k8s.io/EndpointSlice/fx/db-manual/";
    struct k8s_store *st = store_of(svc_pod, 0);
    json_t *list = fixture("endpointslices.json"), *node = fixture("node.json");
    struct mesh_resources r;
    char ports[128];
    (void)state;

    json_t *item = json_array_get(json_object_get(list, "items"), 0);
    assert_non_null(item);
    json_object_set(item, "apiVersion", json_object_get(list, "apiVersion"));
    json_object_set_new(item, "kind", json_string("EndpointSlice"));
    assert_int_equal(k8s_store_put_json(st, "api:EndpointSlice/fx/db-manual", item, NULL, false),
                     0);
    assert_int_equal(k8s_store_put_json(st, "api:Node/node-fx", node, NULL, true), 0);
    assert_int_equal(k8s_build_resources(st, NULL, &r, NULL), 0);

    Istio__Workload__Address *a;
    const struct mesh_resource *m = mesh_resources_find(&r, K8S_TYPE_ADDRESS, prefix);
    assert_null(m);
    char name[128];
    snprintf(name, sizeof(name), "%s198.18.5.1", prefix);
    assert_non_null(m = mesh_resources_find(&r, K8S_TYPE_ADDRESS, name));
    Istio__Workload__Workload *w = unpack_wl(m, &a);
    assert_int_equal(w->status, ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY);
    ports_str(w->services[0]->value, ports, sizeof(ports));
    assert_string_equal(ports, "5432:15432,8080:18080"); /* port 9 (name "") has no Service port */
    istio__workload__address__free_unpacked(a, NULL);
    snprintf(name, sizeof(name), "%s198.18.5.2", prefix);
    assert_non_null(m = mesh_resources_find(&r, K8S_TYPE_ADDRESS, name));
    w = unpack_wl(m, &a);
    assert_int_equal(w->status, ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY);
    istio__workload__address__free_unpacked(a, NULL);
    /* The Pod endpoint is the pod's workload, which has the Node's locality. */
    snprintf(name, sizeof(name), "%s198.18.5.3", prefix);
    assert_null(mesh_resources_find(&r, K8S_TYPE_ADDRESS, name));
    assert_non_null(m = mesh_resources_find(&r, K8S_TYPE_ADDRESS, "Kubernetes//Pod/fx/echo-0"));
    w = unpack_wl(m, &a);
    assert_non_null(w->locality);
    assert_string_equal(w->locality->region, "region-a");
    assert_string_equal(w->locality->zone, "zone-1");
    assert_string_equal(w->locality->subzone, "rack-7");
    istio__workload__address__free_unpacked(a, NULL);

    mesh_resources_free(&r);
    json_decref(list);
    json_decref(node);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_workloads),  cmocka_unit_test(test_slice_refused),
        cmocka_unit_test(test_pod_locality),     cmocka_unit_test(test_locality_follows_node),
        cmocka_unit_test(test_recorded_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
