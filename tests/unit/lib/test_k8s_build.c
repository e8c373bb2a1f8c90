/*
 * test_k8s_build.c - the conversion to istio.workload.Address resources,
 * checked by decoding the produced bytes with protobuf-c: workload and
 * service fields, enrollment, named and numeric targetPorts, the services
 * map, headless and ExternalName Services, pods that are not served, load
 * balancing, options, workload names, and versions that change exactly when
 * a resource's bytes do.
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

#define FIXTURE MESH_SOURCE_DIR "/tests/unit/k8s/mesh.yaml"
#define POD_KEY "Kubernetes//Pod/"

static struct k8s_store *
fixture_store(void)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};

    assert_int_equal(k8s_store_load_file(st, FIXTURE, &d), 0);
    k8s_diags_clear(&d);
    return st;
}

static void
build(const struct k8s_store *st, const struct k8s_build_opts *o, struct mesh_resources *r,
      struct k8s_diags *d)
{
    assert_int_equal(k8s_build_resources(st, o, r, d), 0);
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

static Istio__Workload__Workload *
workload(Istio__Workload__Address *a)
{
    assert_int_equal(a->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD);
    return a->workload;
}

static Istio__Workload__Service *
service(Istio__Workload__Address *a)
{
    assert_int_equal(a->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE);
    return a->service;
}

static const Istio__Workload__PortList *
entry(const Istio__Workload__Workload *w, const char *key)
{
    for (size_t i = 0; i < w->n_services; i++)
        if (strcmp(w->services[i]->key, key) == 0)
            return w->services[i]->value;
    fail_msg("no services entry %s", key);
    return NULL;
}

static void
assert_port(const Istio__Workload__Port *p, uint32_t sp, uint32_t tp)
{
    assert_int_equal(p->service_port, sp);
    assert_int_equal(p->target_port, tp);
}

static void
test_workload_fields(void **state)
{
    static const uint8_t v4[4] = {198, 18, 1, 10};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x10};
    struct k8s_store *st = fixture_store();
    struct mesh_resources r;
    struct k8s_diags d = {0};
    (void)state;

    build(st, NULL, &r, &d);
    /* 2 Authorization (the AuthorizationPolicy, the static STRICT policy the PeerAuthentication
     * brings), then 3 Services (not the ExternalName one), 6 pods (not the pending one nor the
     * finished one); test_k8s_authz.c covers the policies. */
    assert_int_equal(r.n, 11);
    assert_string_equal(r.v[0].name, "istio-system/istio_converted_static_strict");
    assert_string_equal(r.v[1].name, "shop/allow-web");
    for (size_t i = 0; i + 1 < r.n; i++) {
        assert_string_equal(r.v[i].type_url, i < 2 ? K8S_TYPE_AUTHORIZATION : K8S_TYPE_ADDRESS);
        if (i != 1)
            assert_true(strcmp(r.v[i].name, r.v[i + 1].name) < 0);
    }
    assert_null(mesh_resources_find(&r, K8S_TYPE_ADDRESS, POD_KEY "shop/pending"));
    assert_null(mesh_resources_find(&r, K8S_TYPE_ADDRESS, POD_KEY "shop/job-done"));

    Istio__Workload__Address *a = unpack(&r, POD_KEY "shop/web-7d4b9c-x2k8p");
    Istio__Workload__Workload *w = workload(a);
    assert_string_equal(w->uid, POD_KEY "shop/web-7d4b9c-x2k8p");
    assert_string_equal(w->name, "web-7d4b9c-x2k8p");
    assert_string_equal(w->namespace_, "shop");
    assert_int_equal(w->n_addresses, 2);
    assert_int_equal(w->addresses[0].len, 4);
    assert_memory_equal(w->addresses[0].data, v4, 4);
    assert_int_equal(w->addresses[1].len, 16);
    assert_memory_equal(w->addresses[1].data, v6, 16);
    assert_string_equal(w->network, "");
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    assert_false(w->native_tunnel);
    assert_string_equal(w->trust_domain, "");
    assert_string_equal(w->service_account, "web");
    assert_string_equal(w->node, "node-1");
    assert_string_equal(w->canonical_name, "web");
    assert_string_equal(w->canonical_revision, "v2");
    assert_int_equal(w->workload_type, ISTIO__WORKLOAD__WORKLOAD_TYPE__POD);
    assert_string_equal(w->workload_name, "web");
    assert_int_equal(w->status, ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY);
    assert_string_equal(w->cluster_id, "Kubernetes");
    assert_int_equal(w->network_mode, ISTIO__WORKLOAD__NETWORK_MODE__STANDARD);
    assert_null(w->waypoint);
    /* The selector policy, then the static STRICT policy (namespace-wide STRICT). */
    assert_int_equal(w->n_authorization_policies, 2);
    assert_string_equal(w->authorization_policies[0], "shop/allow-web");
    assert_string_equal(w->authorization_policies[1], "istio-system/istio_converted_static_strict");

    /* Every selecting Service, keyed "<ns>/<hostname>", sorted; not the selector-less one. */
    assert_int_equal(w->n_services, 2);
    assert_string_equal(w->services[0]->key, "shop/web-headless.shop.svc.cluster.local");
    assert_string_equal(w->services[1]->key, "shop/web.shop.svc.cluster.local");
    const Istio__Workload__PortList *pl = entry(w, "shop/web.shop.svc.cluster.local");
    assert_int_equal(pl->n_ports, 4);
    assert_port(pl->ports[0], 80, 8080); /* named targetPort "http" resolved */
    assert_port(pl->ports[1], 9000, 9000);
    assert_port(pl->ports[2], 9090, 9090); /* no targetPort: the port */
    assert_port(pl->ports[3], 3306, 3306);
    pl = entry(w, "shop/web-headless.shop.svc.cluster.local");
    assert_int_equal(pl->n_ports, 1);
    assert_port(pl->ports[0], 5432, 5432);
    istio__workload__address__free_unpacked(a, NULL);

    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
test_service_fields(void **state)
{
    static const uint8_t vip4[4] = {198, 19, 0, 10};
    static const uint8_t vip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 0x10};
    struct k8s_store *st = fixture_store();
    struct mesh_resources r;
    (void)state;

    build(st, NULL, &r, NULL);
    Istio__Workload__Address *a = unpack(&r, "shop/web.shop.svc.cluster.local");
    Istio__Workload__Service *s = service(a);
    assert_string_equal(s->name, "web");
    assert_string_equal(s->namespace_, "shop");
    assert_string_equal(s->hostname, "web.shop.svc.cluster.local");
    assert_int_equal(s->n_addresses, 2);
    assert_string_equal(s->addresses[0]->network, "");
    assert_int_equal(s->addresses[0]->address.len, 4);
    assert_memory_equal(s->addresses[0]->address.data, vip4, 4);
    assert_int_equal(s->addresses[0]->has_length_case,
                     ISTIO__WORKLOAD__NETWORK_ADDRESS__HAS_LENGTH__NOT_SET);
    assert_memory_equal(s->addresses[1]->address.data, vip6, 16);
    assert_int_equal(s->n_ports, 4);
    /* Named targetPort: 0, resolved per endpoint; app protocol from the name or appProtocol. */
    assert_port(s->ports[0], 80, 0);
    assert_int_equal(s->ports[0]->app_protocol, ISTIO__WORKLOAD__APP_PROTOCOL__HTTP11);
    assert_port(s->ports[1], 9000, 9000);
    assert_int_equal(s->ports[1]->app_protocol, ISTIO__WORKLOAD__APP_PROTOCOL__GRPC);
    assert_port(s->ports[2], 9090, 9090);
    assert_int_equal(s->ports[2]->app_protocol, ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN);
    /* appProtocol wins over the name; unknown on a well-known server-first port: TCP. */
    assert_port(s->ports[3], 3306, 3306);
    assert_int_equal(s->ports[3]->app_protocol, ISTIO__WORKLOAD__APP_PROTOCOL__TCP);
    assert_int_equal(s->ip_families, ISTIO__WORKLOAD__IPFAMILIES__DUAL);
    assert_true(s->canonical);
    assert_null(s->load_balancing);
    assert_null(s->waypoint);
    istio__workload__address__free_unpacked(a, NULL);

    /* Headless: no VIP. */
    a = unpack(&r, "shop/web-headless.shop.svc.cluster.local");
    s = service(a);
    assert_int_equal(s->n_addresses, 0);
    assert_int_equal(s->n_ports, 1);
    assert_int_equal(s->ports[0]->app_protocol, ISTIO__WORKLOAD__APP_PROTOCOL__HTTP2);
    assert_int_equal(s->ip_families, ISTIO__WORKLOAD__IPFAMILIES__AUTOMATIC);
    istio__workload__address__free_unpacked(a, NULL);

    /* ExternalName is left to DNS; a Service without selector is served, selects no pod. */
    assert_null(mesh_resources_find(&r, K8S_TYPE_ADDRESS, "shop/ext.shop.svc.cluster.local"));
    a = unpack(&r, "shop/noselector.shop.svc.cluster.local");
    assert_int_equal(service(a)->n_addresses, 1);
    assert_port(service(a)->ports[0], 80, 80);
    istio__workload__address__free_unpacked(a, NULL);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

static Istio__Workload__Workload *
pod(const struct mesh_resources *r, const char *ns_name, Istio__Workload__Address **a)
{
    char name[256];
    snprintf(name, sizeof(name), POD_KEY "%s", ns_name);
    *a = unpack(r, name);
    return workload(*a);
}

static void
test_pod_states(void **state)
{
    struct k8s_store *st = fixture_store();
    struct mesh_resources r;
    struct k8s_diags d = {0};
    Istio__Workload__Address *a;
    Istio__Workload__Workload *w;
    (void)state;

    build(st, NULL, &r, &d);
    /* Opted out by its pod label in an ambient namespace; not Ready; no port named "http". */
    w = pod(&r, "shop/tool", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    assert_int_equal(w->status, ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY);
    assert_string_equal(w->service_account, "default");
    assert_string_equal(w->workload_name, "tool");
    assert_string_equal(w->canonical_name, "web");
    assert_string_equal(w->canonical_revision, "latest");
    const Istio__Workload__PortList *pl = entry(w, "shop/web.shop.svc.cluster.local");
    assert_int_equal(pl->n_ports, 3);
    assert_port(pl->ports[0], 9000, 9000);
    istio__workload__address__free_unpacked(a, NULL);
    assert_int_equal(k8s_diags_count(&d, K8S_WARNING), 1);
    char *msg = k8s_diag_str(&d.v[0]);
    assert_non_null(strstr(msg, "Pod shop/tool has no TCP container port named \"http\""));
    free(msg);
    /* The store reports the same. */
    struct k8s_diags all = {0};
    k8s_build_diags(st, &all);
    assert_int_equal(k8s_diags_count(&all, K8S_WARNING), 2); /* + the Deployment */
    k8s_diags_clear(&all);

    /* Enrolled by its own label in a namespace that is not. */
    w = pod(&r, "legacy/old", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    assert_int_equal(w->n_services, 0);
    istio__workload__address__free_unpacked(a, NULL);
    w = pod(&r, "legacy/plain", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    istio__workload__address__free_unpacked(a, NULL);

    /* Host network: never captured, and its IP is shared. */
    w = pod(&r, "shop/agent", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    assert_int_equal(w->network_mode, ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK);
    istio__workload__address__free_unpacked(a, NULL);

    /* Being deleted: still served, unhealthy. */
    w = pod(&r, "shop/leaving", &a);
    assert_int_equal(w->status, ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    assert_port(entry(w, "shop/web.shop.svc.cluster.local")->ports[0], 80, 8080);
    istio__workload__address__free_unpacked(a, NULL);

    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

#define NS_YAML(labels) "apiVersion: v1\nkind: Namespace\nmetadata: {name: nx" labels "}\n"
#define POD_YAML(name, extra)                                                                      \
    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: nx" extra "}\n"         \
    "status: {podIP: 198.18.9.1, conditions: [{type: Ready, status: \"True\"}]}\n"

static Istio__Workload__Workload *
build_one(const char *yaml, const char *name, Istio__Workload__Address **a)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    struct mesh_resources r;

    if (k8s_store_load_buf(st, "e.yaml", yaml, strlen(yaml), &d) != 0)
        fail_msg("%s:%d: %s", yaml, d.n ? d.v[0].line : 0, d.n ? d.v[0].msg : "?");
    build(st, NULL, &r, &d);
    Istio__Workload__Workload *w = pod(&r, name, a);
    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_store_free(st);
    return w;
}

static void
test_tunnel_rules(void **state)
{
    Istio__Workload__Address *a;
    Istio__Workload__Workload *w;
    (void)state;

    /* istio-cni's annotation after enrollment: HBONE whatever the labels say. */
    w = build_one(NS_YAML("")
                      POD_YAML("p", ", annotations: {ambient.istio.io/redirection: enabled}"),
                  "nx/p", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    istio__workload__address__free_unpacked(a, NULL);
    /* A sidecar pod in an ambient namespace is not captured. */
    w = build_one(NS_YAML(", labels: {istio.io/dataplane-mode: ambient}")
                      POD_YAML("p", ", annotations: {sidecar.istio.io/status: '{}'}"),
                  "nx/p", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    istio__workload__address__free_unpacked(a, NULL);
    /* Any pod label other than "none" leaves the namespace's choice. */
    w = build_one(NS_YAML(", labels: {istio.io/dataplane-mode: ambient}")
                      POD_YAML("p", ", labels: {istio.io/dataplane-mode: other}"),
                  "nx/p", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    istio__workload__address__free_unpacked(a, NULL);
    /* A pod that speaks HBONE itself. */
    w = build_one(POD_YAML("p", ", labels: {networking.istio.io/tunnel: http}"), "nx/p", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    assert_true(w->native_tunnel);
    istio__workload__address__free_unpacked(a, NULL);
    /* No namespace object at all: only the pod's label counts. */
    w = build_one(POD_YAML("p", ""), "nx/p", &a);
    assert_int_equal(w->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    istio__workload__address__free_unpacked(a, NULL);
}

static void
test_workload_names(void **state)
{
    static const struct {
        const char *meta; /* inside metadata {} after the name */
        const char *name; /* expected workload_name */
        const char *canon, *rev;
    } cases[] = {
        {", generateName: backup-28391234-, ownerReferences: [{kind: Job, name: backup-28391234, "
         "controller: true}]",
         "backup", "backup", "latest"},
        {", generateName: m-, ownerReferences: [{kind: Job, name: migrate, controller: true}]",
         "migrate", "migrate", "latest"},
        {", generateName: c-, labels: {rollouts-pod-template-hash: abc}, ownerReferences: "
         "[{kind: ReplicaSet, name: canary-abc, controller: true}]",
         "canary", "canary", "latest"},
        {", generateName: w-, labels: {pod-template-hash: zzz}, ownerReferences: [{kind: "
         "ReplicaSet, name: web-abc, controller: true}]",
         "web-abc", "web-abc", "latest"},
        {", generateName: w-, labels: {pod-template-hash: abc}, ownerReferences: [{kind: "
         "ReplicaSet, name: webabc, controller: true}]",
         "webabc", "webabc", "latest"},
        {", generateName: d-, labels: {deploymentconfig: dc1}, ownerReferences: [{kind: "
         "ReplicationController, name: dc1-1, controller: true}]",
         "dc1", "dc1", "latest"},
        {", generateName: db-, ownerReferences: [{kind: StatefulSet, name: db, controller: true}]",
         "db", "db", "latest"},
        /* Owners only count for generated names, and only the controller. */
        {", ownerReferences: [{kind: StatefulSet, name: db, controller: true}]", "p", "p",
         "latest"},
        {", generateName: x-, ownerReferences: [{kind: StatefulSet, name: db}]", "p", "p",
         "latest"},
        {", labels: {service.istio.io/workload-name: custom, app: a, app.kubernetes.io/version: "
         "'3', version: v9}",
         "custom", "a", "3"},
        {", labels: {service.istio.io/canonical-name: canon, app.kubernetes.io/name: n2, app: a, "
         "service.istio.io/canonical-revision: r1}",
         "p", "canon", "r1"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char yaml[1024];
        Istio__Workload__Address *a;
        snprintf(yaml, sizeof(yaml), POD_YAML("p", "%s"), cases[i].meta);
        Istio__Workload__Workload *w = build_one(yaml, "nx/p", &a);
        if (strcmp(w->workload_name, cases[i].name) != 0 ||
            strcmp(w->canonical_name, cases[i].canon) != 0 ||
            strcmp(w->canonical_revision, cases[i].rev) != 0)
            fail_msg("case %zu: %s %s %s", i, w->workload_name, w->canonical_name,
                     w->canonical_revision);
        istio__workload__address__free_unpacked(a, NULL);
    }
}

static Istio__Workload__LoadBalancing *
lb_of(const struct mesh_resources *r, const char *svc, Istio__Workload__Address **a)
{
    char name[128];
    snprintf(name, sizeof(name), "lb/%s.lb.svc.cluster.local", svc);
    *a = unpack(r, name);
    return service(*a)->load_balancing;
}

static void
test_load_balancing(void **state)
{
    static const char y[] =
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lb\n  annotations:\n"
        "    networking.istio.io/traffic-distribution: PreferSameNode\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: itp, namespace: lb}\n"
        "spec: {internalTrafficPolicy: Local, trafficDistribution: PreferClose}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: zone, namespace: lb}\n"
        "spec: {trafficDistribution: PreferClose}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: nsann, namespace: lb}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svcann\n  namespace: lb\n"
        "  annotations: {networking.istio.io/traffic-distribution: preferSAMEzone}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: pnr, namespace: lb}\n"
        "spec: {publishNotReadyAddresses: true, trafficDistribution: Bogus}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: plain, namespace: other}\n"
        "spec: {trafficDistribution: Bogus}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    struct mesh_resources r;
    Istio__Workload__Address *a;
    Istio__Workload__LoadBalancing *lb;
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "lb.yaml", y, strlen(y), &d), 0);
    build(st, NULL, &r, &d);

    lb = lb_of(&r, "itp", &a);
    assert_non_null(lb);
    assert_int_equal(lb->n_routing_preference, 1);
    assert_int_equal(lb->routing_preference[0], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NODE);
    assert_int_equal(lb->mode, ISTIO__WORKLOAD__LOAD_BALANCING__MODE__STRICT);
    assert_int_equal(lb->health_policy,
                     ISTIO__WORKLOAD__LOAD_BALANCING__HEALTH_POLICY__ONLY_HEALTHY);
    istio__workload__address__free_unpacked(a, NULL);

    lb = lb_of(&r, "zone", &a);
    assert_int_equal(lb->n_routing_preference, 3);
    assert_int_equal(lb->routing_preference[0], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NETWORK);
    assert_int_equal(lb->routing_preference[1], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__REGION);
    assert_int_equal(lb->routing_preference[2], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__ZONE);
    assert_int_equal(lb->mode, ISTIO__WORKLOAD__LOAD_BALANCING__MODE__FAILOVER);
    istio__workload__address__free_unpacked(a, NULL);

    lb = lb_of(&r, "nsann", &a); /* inherited from the namespace annotation */
    assert_int_equal(lb->n_routing_preference, 5);
    assert_int_equal(lb->routing_preference[3], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__SUBZONE);
    assert_int_equal(lb->routing_preference[4], ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NODE);
    assert_int_equal(lb->mode, ISTIO__WORKLOAD__LOAD_BALANCING__MODE__FAILOVER);
    istio__workload__address__free_unpacked(a, NULL);

    lb = lb_of(&r, "svcann", &a); /* the Service's own annotation wins, in any case */
    assert_int_equal(lb->n_routing_preference, 3);
    istio__workload__address__free_unpacked(a, NULL);

    lb =
        lb_of(&r, "pnr", &a); /* unknown spec value: the namespace's; not-ready endpoints allowed */
    assert_int_equal(lb->n_routing_preference, 5);
    assert_int_equal(lb->health_policy, ISTIO__WORKLOAD__LOAD_BALANCING__HEALTH_POLICY__ALLOW_ALL);
    istio__workload__address__free_unpacked(a, NULL);

    a = unpack(&r, "other/plain.other.svc.cluster.local");
    assert_null(service(a)->load_balancing);
    istio__workload__address__free_unpacked(a, NULL);

    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
test_options(void **state)
{
    struct k8s_store *st = fixture_store();
    struct k8s_build_opts o = {.cluster_id = "c1",
                               .trust_domain = "example.org",
                               .domain_suffix = "corp.internal",
                               .network = "net1"};
    struct mesh_resources r;
    Istio__Workload__Address *a;
    (void)state;

    build(st, &o, &r, NULL);
    a = unpack(&r, "c1//Pod/shop/web-7d4b9c-x2k8p");
    Istio__Workload__Workload *w = workload(a);
    assert_string_equal(w->cluster_id, "c1");
    assert_string_equal(w->trust_domain, "example.org");
    assert_string_equal(w->network, "net1");
    assert_string_equal(w->services[1]->key, "shop/web.shop.svc.corp.internal");
    istio__workload__address__free_unpacked(a, NULL);
    a = unpack(&r, "shop/web.shop.svc.corp.internal");
    assert_string_equal(service(a)->hostname, "web.shop.svc.corp.internal");
    assert_string_equal(service(a)->addresses[1]->network, "net1");
    istio__workload__address__free_unpacked(a, NULL);
    mesh_resources_free(&r);

    /* The default trust domain is not sent, as istiod does. */
    o.trust_domain = "cluster.local";
    build(st, &o, &r, NULL);
    a = unpack(&r, "c1//Pod/shop/web-7d4b9c-x2k8p");
    assert_string_equal(workload(a)->trust_domain, "");
    istio__workload__address__free_unpacked(a, NULL);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

static const char ns_ambient[] = NS_YAML(", labels: {istio.io/dataplane-mode: ambient}");
static const char ns_plain[] = NS_YAML("");
static const char apps[] =
    "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: nx}\n"
    "spec: {clusterIP: 198.19.9.1, selector: {app: a}, ports: [{port: 80}]}\n" POD_YAML(
        "p", ", labels: {app: a}") POD_YAML("q", ", labels: {app: a}");

static void
assert_same(const struct mesh_resource *x, const struct mesh_resource *y)
{
    assert_string_equal(x->name, y->name);
    assert_string_equal(x->version, y->version);
    assert_int_equal(x->len, y->len);
    assert_memory_equal(x->data, y->data, x->len);
}

/* Versions are stable across rebuilds and change for exactly the resources that changed. */
static void
test_versions(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new(); /* st is built incrementally, as meshd does */
    struct k8s_diags d = {0};
    struct mesh_resources r1, r2;
    Istio__Workload__Address *a;
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "ns.yaml", ns_ambient, strlen(ns_ambient), &d), 0);
    assert_int_equal(k8s_store_load_buf(st, "apps.yaml", apps, strlen(apps), &d), 0);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r1, &d), 0);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r2, &d), 0);
    assert_int_equal(r1.n, 3);
    assert_int_equal(r2.n, 3);
    for (size_t i = 0; i < r1.n; i++) {
        assert_same(&r1.v[i], &r2.v[i]);
        assert_int_equal(strlen(r1.v[i].version), 16);
    }
    mesh_resources_free(&r2);
    a = unpack(&r1, POD_KEY "nx/p");
    assert_int_equal(workload(a)->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE);
    istio__workload__address__free_unpacked(a, NULL);

    /* Loading the same store from scratch gives the same bytes. */
    struct k8s_store *st2 = k8s_store_new();
    assert_int_equal(k8s_store_load_buf(st2, "apps.yaml", apps, strlen(apps), &d), 0);
    assert_int_equal(k8s_store_load_buf(st2, "ns.yaml", ns_ambient, strlen(ns_ambient), &d), 0);
    build(st2, NULL, &r2, &d);
    for (size_t i = 0; i < r1.n; i++)
        assert_same(&r1.v[i], &r2.v[i]);
    mesh_resources_free(&r2);
    k8s_store_free(st2);

    /* The namespace label goes: both pods leave HBONE, the Service is untouched. */
    uint64_t gen = k8s_store_generation(st);
    assert_int_equal(k8s_store_load_buf(st, "ns.yaml", ns_plain, strlen(ns_plain), &d), 0);
    assert_true(k8s_store_generation(st) > gen);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r2, &d), 0);
    assert_int_equal(r2.n, 3);
    const struct mesh_resource *s1 =
        mesh_resources_find(&r1, K8S_TYPE_ADDRESS, "nx/s.nx.svc.cluster.local");
    const struct mesh_resource *s2 =
        mesh_resources_find(&r2, K8S_TYPE_ADDRESS, "nx/s.nx.svc.cluster.local");
    assert_same(s1, s2);
    const char *pods[] = {POD_KEY "nx/p", POD_KEY "nx/q"};
    for (size_t i = 0; i < ARRAY_LEN(pods); i++) {
        const struct mesh_resource *p1 = mesh_resources_find(&r1, K8S_TYPE_ADDRESS, pods[i]);
        const struct mesh_resource *p2 = mesh_resources_find(&r2, K8S_TYPE_ADDRESS, pods[i]);
        assert_string_not_equal(p1->version, p2->version);
    }
    a = unpack(&r2, POD_KEY "nx/p");
    assert_int_equal(workload(a)->tunnel_protocol, ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE);
    istio__workload__address__free_unpacked(a, NULL);
    mesh_resources_free(&r2);

    /* One pod's label changes: only it changes (it leaves the Service's endpoints). */
    assert_int_equal(k8s_store_load_buf(st, "ns.yaml", ns_ambient, strlen(ns_ambient), &d), 0);
    char *apps2 = xstrdup(apps);
    char *q = strstr(apps2, "name: q, namespace: nx, labels: {app: a}");
    assert_non_null(q);
    memcpy(strstr(q, "app: a"), "app: b", 6);
    assert_int_equal(k8s_store_load_buf(st, "apps.yaml", apps2, strlen(apps2), &d), 0);
    free(apps2);
    assert_int_equal(k8s_conv_build(cv, st, NULL, &r2, &d), 0);
    assert_same(mesh_resources_find(&r1, K8S_TYPE_ADDRESS, POD_KEY "nx/p"),
                mesh_resources_find(&r2, K8S_TYPE_ADDRESS, POD_KEY "nx/p"));
    assert_same(mesh_resources_find(&r1, K8S_TYPE_ADDRESS, "nx/s.nx.svc.cluster.local"),
                mesh_resources_find(&r2, K8S_TYPE_ADDRESS, "nx/s.nx.svc.cluster.local"));
    assert_string_not_equal(mesh_resources_find(&r1, K8S_TYPE_ADDRESS, POD_KEY "nx/q")->version,
                            mesh_resources_find(&r2, K8S_TYPE_ADDRESS, POD_KEY "nx/q")->version);
    a = unpack(&r2, POD_KEY "nx/q");
    assert_int_equal(workload(a)->n_services, 0);
    istio__workload__address__free_unpacked(a, NULL);
    mesh_resources_free(&r2);
    mesh_resources_free(&r1);
    k8s_diags_clear(&d);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

static void
test_empty_store(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct mesh_resources r;
    (void)state;

    build(st, NULL, &r, NULL);
    assert_int_equal(r.n, 0);
    assert_null(mesh_resources_find(&r, K8S_TYPE_ADDRESS, "x"));
    mesh_resources_free(&r);
    mesh_resources_free(NULL);
    k8s_store_free(st);
    k8s_store_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload_fields), cmocka_unit_test(test_service_fields),
        cmocka_unit_test(test_pod_states),      cmocka_unit_test(test_tunnel_rules),
        cmocka_unit_test(test_workload_names),  cmocka_unit_test(test_load_balancing),
        cmocka_unit_test(test_options),         cmocka_unit_test(test_versions),
        cmocka_unit_test(test_empty_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
