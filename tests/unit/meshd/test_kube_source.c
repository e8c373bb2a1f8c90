/*
 * test_kube_source.c - meshd's Kubernetes source without a server: the
 * reflectors' sink callbacks are called directly (lib/kube's reflector and
 * request functions are replaced by recorders here), with meshd's real
 * config.c, store and converter behind them. Checks the synced gate (nothing
 * built or served until every kind listed once; a version not served falls
 * back), that a 5,000-object relist arriving page by page makes one
 * snapshot, that an unchanged relist makes none, Warning Events on a refused
 * object (one per resourceVersion, the last good version served), the
 * istio-ca-root-cert ConfigMaps (created, updated, created again) and the
 * waypoint controller (objects created, patched back, deleted; status
 * patched once per change, never for its own update, retried after a backoff).
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
#include "kube/kube.h"
#include "meshd.h"
#include "tls/ca.h"
#include "unit_loop.h"
#include "xds/xds.h"

/* ---- Recorders standing in for lib/kube ---- */

struct kube_reflector {
    const struct kube_resource *r;
    char *field_selector;
    const struct kube_sink *sink;
    void *arg;
    bool stopped;
};

struct kube_request {
    char *method, *path;
    json_t *body;
    kube_response_fn *cb;
    void *arg;
    bool done;
};

static struct kube_reflector *rfs[64];
static size_t n_rfs;
static struct kube_request *reqs[256];
static size_t n_reqs;
static int client_dummy;
static unsigned snapshots_changed;

int
kube_config_load_file(const char *path, const char *context, struct kube_config *out, char *err,
                      size_t errlen)
{
    (void)path, (void)context, (void)err, (void)errlen;
    memset(out, 0, sizeof(*out));
    out->server = xstrdup("https://198.18.0.10:6443");
    return 0;
}

int
kube_config_in_cluster(const char *dir, struct kube_config *out, char *err, size_t errlen)
{
    return kube_config_load_file(dir, NULL, out, err, errlen);
}

void
kube_config_free(struct kube_config *c)
{
    free(c->server);
    memset(c, 0, sizeof(*c));
}

struct kube_client *
kube_client_new(struct loop *l, const struct kube_config *cfg, char *err, size_t errlen)
{
    (void)l, (void)cfg, (void)err, (void)errlen;
    return (struct kube_client *)&client_dummy;
}

void
kube_client_free(struct kube_client *c)
{
    (void)c;
}

struct kube_request *
kube_request(struct kube_client *c, const char *method, const char *path, const char *content_type,
             const json_t *body, unsigned timeout_ms, kube_response_fn *cb, void *arg)
{
    (void)c, (void)content_type, (void)timeout_ms;
    assert_true(n_reqs < ARRAY_LEN(reqs));
    struct kube_request *r = xcalloc(1, sizeof(*r));
    r->method = xstrdup(method);
    r->path = xstrdup(path);
    r->body = json_deep_copy(body);
    r->cb = cb;
    r->arg = arg;
    reqs[n_reqs++] = r;
    return r;
}

void
kube_request_cancel(struct kube_request *r)
{
    r->done = true;
}

struct kube_reflector *
kube_reflector_start(struct kube_client *c, const struct kube_resource *r,
                     const char *field_selector, const char *label_selector,
                     const struct kube_sink *sink, void *arg)
{
    (void)c, (void)label_selector;
    assert_true(n_rfs < ARRAY_LEN(rfs));
    struct kube_reflector *rf = xcalloc(1, sizeof(*rf));
    rf->r = r;
    rf->field_selector = field_selector ? xstrdup(field_selector) : NULL;
    rf->sink = sink;
    rf->arg = arg;
    rfs[n_rfs++] = rf;
    return rf;
}

void
kube_reflector_stop(struct kube_reflector *rf)
{
    rf->stopped = true;
}

void
server_snapshot_changed(struct meshd_server *s)
{
    (void)s;
    snapshots_changed++;
}

/* ---- Driving meshd ---- */

static struct meshd d;
static int server_dummy;

static struct kube_reflector *
rf_of(const char *group_version, const char *kind)
{
    for (size_t i = n_rfs; i-- > 0;)
        if (strcmp(rfs[i]->r->kind, kind) == 0 && strcmp(rfs[i]->r->group_version,
                                                         group_version) == 0)
            return rfs[i];
    fail_msg("no reflector for %s %s", group_version, kind);
    return NULL;
}

static void
upsert(const char *gv, const char *kind, const char *json)
{
    json_error_t e;
    json_t *j = json_loads(json, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s", e.text);
    struct kube_reflector *rf = rf_of(gv, kind);
    rf->sink->upsert(rf->arg, rf->r, j);
    json_decref(j);
}

static void
removed(const char *gv, const char *kind, const char *json)
{
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    struct kube_reflector *rf = rf_of(gv, kind);
    rf->sink->remove(rf->arg, rf->r, j);
    json_decref(j);
}

static void
synced(const char *gv, const char *kind, bool served)
{
    struct kube_reflector *rf = rf_of(gv, kind);
    rf->sink->synced(rf->arg, rf->r, served);
}

/* Runs the loop past the debounce and every deferred call. */
static void
settle(void)
{
    unit_run_for(d.loop, 4 * d.opts.debounce_ms);
}

static bool
served_has(const char *needle)
{
    struct xds_snapshot *s = config_snapshot(d.config);
    for (size_t i = 0; s != NULL && i < xds_snapshot_len(s); i++)
        if (strstr(xds_snapshot_at(s, i)->name, needle) != NULL)
            return true;
    return false;
}

static char *
pod(const char *name, const char *ip, const char *rv)
{
    return xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
                     "\"namespace\":\"demo\",\"uid\":\"uid-%s\",\"resourceVersion\":\"%s\"},"
                     "\"spec\":{\"nodeName\":\"node1\",\"serviceAccountName\":\"default\","
                     "\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]},"
                     "\"status\":{\"phase\":\"Running\",\"podIP\":\"%s\","
                     "\"podIPs\":[{\"ip\":\"%s\"}]}}",
                     name, name, rv, ip, ip);
}

static char *
policy(const char *action, const char *rv)
{
    return xasprintf("{\"apiVersion\":\"security.istio.io/v1beta1\",\"kind\":"
                     "\"AuthorizationPolicy\",\"metadata\":{\"name\":\"ap\",\"namespace\":"
                     "\"demo\",\"uid\":\"uid-ap\",\"resourceVersion\":\"%s\"},\"spec\":{"
                     "\"action\":\"%s\",\"rules\":[{\"from\":[{\"source\":{\"namespaces\":"
                     "[\"demo\"]}}]}]}}",
                     rv, action);
}

static const char ns_demo[] = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":"
                              "{\"name\":\"demo\",\"uid\":\"uid-demo\",\"resourceVersion\":\"1\","
                              "\"labels\":{\"istio.io/dataplane-mode\":\"ambient\"}}}";

static int
setup(void **state)
{
    char err[512];
    (void)state;
    memset(&d, 0, sizeof(d));
    n_rfs = n_reqs = 0;
    snapshots_changed = 0;
    d.loop = loop_new();
    d.opts.kube.kubeconfig = "test-kubeconfig";
    d.opts.trust_domain = "cluster.local";
    d.opts.cluster_id = "Kubernetes";
    d.opts.debounce_ms = 20;
    d.ca = ca_generate("test root", 3600);
    d.config = config_start(&d, err, sizeof(err));
    if (d.config == NULL)
        fail_msg("config_start: %s", err);
    if (meshd_kube_start(&d, err, sizeof(err)) < 0)
        fail_msg("meshd_kube_start: %s", err);
    d.server = (struct meshd_server *)&server_dummy;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    d.server = NULL;
    meshd_kube_stop(&d);
    config_stop(d.config);
    loop_run_deferred(d.loop);
    loop_free(d.loop);
    ca_free(d.ca);
    for (size_t i = 0; i < n_rfs; i++) {
        free(rfs[i]->field_selector);
        free(rfs[i]);
    }
    for (size_t i = 0; i < n_reqs; i++) {
        free(reqs[i]->method);
        free(reqs[i]->path);
        json_decref(reqs[i]->body);
        free(reqs[i]);
    }
    return 0;
}

/* Lists every kind except AuthorizationPolicy, which the server has only in v1beta1. */
static void
list_all_but_policies(void)
{
    static const char *const kinds[][2] = {
        {"v1", "Namespace"},
        {"v1", "Pod"},
        {"v1", "Service"},
        {"v1", "ServiceAccount"},
        {"v1", "Node"},
        {"security.istio.io/v1", "PeerAuthentication"},
        {"gateway.networking.k8s.io/v1", "Gateway"},
        {"gateway.networking.k8s.io/v1", "GatewayClass"},
        {"gateway.networking.k8s.io/v1", "HTTPRoute"},
        {"gateway.networking.k8s.io/v1", "GRPCRoute"},
        {"networking.istio.io/v1", "VirtualService"},
    };
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        synced(kinds[i][0], kinds[i][1], i < 5);
    /* EndpointSlice: v1 is not served (1.20), v1beta1 is watched and listed instead. */
    synced("discovery.k8s.io/v1", "EndpointSlice", false);
    assert_non_null(rf_of("discovery.k8s.io/v1beta1", "EndpointSlice"));
    synced("discovery.k8s.io/v1beta1", "EndpointSlice", true);
    /* Not served in v1, nor in the fallbacks: they count as listed. */
    for (size_t i = 5; i < ARRAY_LEN(kinds); i++) {
        const char *fb = strstr(kinds[i][0], "security") ? "security.istio.io/v1beta1"
                         : strstr(kinds[i][1], "GRPC")  ? "gateway.networking.k8s.io/v1alpha2"
                         : strstr(kinds[i][0], "gateway") ? "gateway.networking.k8s.io/v1beta1"
                                                          : "networking.istio.io/v1beta1";
        synced(fb, kinds[i][1], false);
    }
}

static void
test_gate(void **state)
{
    char *p = pod("p1", "198.18.0.1", "5");
    (void)state;

    assert_null(config_snapshot(d.config));
    upsert("v1", "Namespace", ns_demo);
    upsert("v1", "Pod", p);
    settle();
    /* Listed objects wait for the gate: nothing built, nothing served. */
    assert_null(config_snapshot(d.config));
    assert_int_equal(snapshots_changed, 0);
    list_all_but_policies();
    settle();
    assert_null(config_snapshot(d.config));
    /* v1 AuthorizationPolicy is not served: v1beta1 is watched instead, and the gate waits. */
    synced("security.istio.io/v1", "AuthorizationPolicy", false);
    struct kube_reflector *fb = rf_of("security.istio.io/v1beta1", "AuthorizationPolicy");
    assert_non_null(fb);
    settle();
    assert_null(config_snapshot(d.config));
    char *ap = policy("DENY", "9");
    upsert("security.istio.io/v1beta1", "AuthorizationPolicy", ap);
    synced("security.istio.io/v1beta1", "AuthorizationPolicy", true);
    /* The gate opens at once: one snapshot with what was listed. */
    assert_non_null(config_snapshot(d.config));
    assert_int_equal(snapshots_changed, 1);
    assert_true(served_has("demo/p1"));
    assert_true(served_has("demo/ap"));
    settle();
    assert_int_equal(snapshots_changed, 1);
    /* A change after the gate: served after the debounce. */
    char *p2 = pod("p2", "198.18.0.2", "6");
    upsert("v1", "Pod", p2);
    assert_false(served_has("demo/p2"));
    settle();
    assert_true(served_has("demo/p2"));
    assert_int_equal(snapshots_changed, 2);
    removed("v1", "Pod", p2);
    settle();
    assert_false(served_has("demo/p2"));
    assert_int_equal(snapshots_changed, 3);
    free(p);
    free(p2);
    free(ap);
}

/* A relist of 5,000 pods arriving in 500-object pages, 5 ms apart: one snapshot. */
static void
test_relist_one_snapshot(void **state)
{
    enum { N = 5000, PAGE = 500 };
    (void)state;

    /* meshd's default debounce: a relist's pages arrive within it of each other. */
    d.opts.debounce_ms = 100;
    upsert("v1", "Namespace", ns_demo);
    list_all_but_policies();
    synced("security.istio.io/v1", "AuthorizationPolicy", true);
    assert_non_null(config_snapshot(d.config));
    unsigned before = snapshots_changed;
    for (int round = 0; round < 2; round++) {
        uint64_t t0 = clock_mono_ms();
        for (int i = 0; i < N; i++) {
            char name[32], ip[32];
            snprintf(name, sizeof(name), "r%d", i);
            snprintf(ip, sizeof(ip), "198.18.%d.%d", 1 + i / 250, 1 + i % 250);
            char *p = pod(name, ip, "100");
            upsert("v1", "Pod", p);
            free(p);
            if (i % PAGE == PAGE - 1)
                unit_run_for(d.loop, 5);
        }
        synced("v1", "Pod", true);
        settle();
        print_message("relist %d of %d pods: %llu ms to the snapshot, %u snapshots\n", round, N,
                      (unsigned long long)(clock_mono_ms() - t0), snapshots_changed - before);
        /* The first relist changed everything: one snapshot. The second changed nothing: none. */
        assert_int_equal(snapshots_changed, before + 1);
        assert_true(served_has("demo/r4999"));
    }
    assert_int_equal(k8s_store_count(config_store(d.config), K8S_POD), N);
}

static struct kube_request *
last_req(const char *method, const char *path_part)
{
    for (size_t i = n_reqs; i-- > 0;)
        if (strcmp(reqs[i]->method, method) == 0 && strstr(reqs[i]->path, path_part) != NULL)
            return reqs[i];
    return NULL;
}

static size_t
count_reqs(const char *method, const char *path_part)
{
    size_t n = 0;
    for (size_t i = 0; i < n_reqs; i++)
        if (strcmp(reqs[i]->method, method) == 0 && strstr(reqs[i]->path, path_part) != NULL)
            n++;
    return n;
}

static const char *
jstr(const json_t *j, const char *a, const char *b)
{
    const json_t *v = json_object_get(j, a);
    return json_string_value(b ? json_object_get(v, b) : v);
}

static void
test_bad_object_event(void **state)
{
    char *good = policy("ALLOW", "10"), *bad = policy("NOPE", "11"), *bad2 = policy("NOPE", "12");
    (void)state;

    upsert("v1", "Namespace", ns_demo);
    list_all_but_policies();
    upsert("security.istio.io/v1", "AuthorizationPolicy", good);
    synced("security.istio.io/v1", "AuthorizationPolicy", true);
    settle();
    assert_int_equal(count_reqs("POST", "/events"), 0);

    upsert("security.istio.io/v1", "AuthorizationPolicy", bad);
    settle();
    assert_int_equal(count_reqs("POST", "/events"), 1);
    struct kube_request *ev = last_req("POST", "/api/v1/namespaces/demo/events");
    assert_non_null(ev);
    assert_string_equal(jstr(ev->body, "type", NULL), "Warning");
    assert_string_equal(jstr(ev->body, "reason", NULL), "InvalidConfig");
    assert_string_equal(jstr(ev->body, "involvedObject", "kind"), "AuthorizationPolicy");
    assert_string_equal(jstr(ev->body, "involvedObject", "name"), "ap");
    assert_string_equal(jstr(ev->body, "involvedObject", "uid"), "uid-ap");
    assert_string_equal(jstr(ev->body, "involvedObject", "resourceVersion"), "11");
    assert_non_null(strstr(jstr(ev->body, "message", NULL), "NOPE"));
    /* The last good version stays in effect. */
    const struct k8s_obj *o =
        k8s_store_find(config_store(d.config), K8S_AUTHORIZATION_POLICY, "demo", "ap");
    assert_non_null(o);
    assert_string_equal(jstr(json_object_get(k8s_obj_json(o), "spec"), "action", NULL), "ALLOW");

    /* Rebuilds while the error stands: no second Event for the same version. */
    char *p = pod("p9", "198.18.0.9", "1");
    upsert("v1", "Pod", p);
    settle();
    assert_int_equal(count_reqs("POST", "/events"), 1);
    /* The same error in a new version: one more. */
    upsert("security.istio.io/v1", "AuthorizationPolicy", bad2);
    settle();
    assert_int_equal(count_reqs("POST", "/events"), 2);
    assert_string_equal(jstr(last_req("POST", "/events")->body, "involvedObject",
                             "resourceVersion"),
                        "12");
    /* Fixed: no Event. */
    char *fixed = policy("DENY", "13");
    upsert("security.istio.io/v1", "AuthorizationPolicy", fixed);
    settle();
    assert_int_equal(count_reqs("POST", "/events"), 2);
    o = k8s_store_find(config_store(d.config), K8S_AUTHORIZATION_POLICY, "demo", "ap");
    assert_string_equal(jstr(json_object_get(k8s_obj_json(o), "spec"), "action", NULL), "DENY");
    free(good);
    free(bad);
    free(bad2);
    free(fixed);
    free(p);
}

static void
answer(struct kube_request *r, int status)
{
    assert_false(r->done);
    r->done = true;
    r->cb(r->arg, status, NULL);
}

static void
test_root_configmap(void **state)
{
    (void)state;
    struct kube_reflector *cm = rf_of("v1", "ConfigMap");
    assert_string_equal(cm->field_selector, "metadata.name=istio-ca-root-cert");

    upsert("v1", "Namespace", ns_demo);
    list_all_but_policies();
    synced("security.istio.io/v1", "AuthorizationPolicy", true);
    settle();
    assert_int_equal(count_reqs("POST", "/configmaps"), 0); /* ConfigMaps not listed yet */
    cm->sink->synced(cm->arg, cm->r, true);
    settle();
    /* Missing: created, with the mesh root. */
    assert_int_equal(count_reqs("POST", "/configmaps"), 1);
    struct kube_request *r = last_req("POST", "/api/v1/namespaces/demo/configmaps");
    assert_non_null(r);
    assert_string_equal(jstr(r->body, "metadata", "name"), "istio-ca-root-cert");
    const char *pem = jstr(r->body, "data", "root-cert.pem");
    assert_non_null(pem);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    char *root = xstrdup(pem);
    settle();
    assert_int_equal(count_reqs("POST", "/configmaps"), 1); /* one in flight at a time */
    answer(r, 201);

    /* As the watch reports it: current, nothing to do. */
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
                            "ConfigMap", "metadata", "name", "istio-ca-root-cert", "namespace",
                            "demo", "data", "root-cert.pem", root);
    cm->sink->upsert(cm->arg, cm->r, obj);
    unit_run_for(d.loop, 300);
    assert_int_equal(count_reqs("POST", "/configmaps") + count_reqs("PATCH", "/configmaps"), 1);
    /* Someone changed it: updated. */
    json_object_set_new(json_object_get(obj, "data"), "root-cert.pem", json_string("junk"));
    cm->sink->upsert(cm->arg, cm->r, obj);
    unit_run_for(d.loop, 300); /* ConfigMap changes settle for 200 ms */
    r = last_req("PATCH", "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert");
    assert_non_null(r);
    assert_string_equal(jstr(r->body, "data", "root-cert.pem"), root);
    answer(r, 200);
    /* Deleted: created again. A failure is tried again later. */
    cm->sink->remove(cm->arg, cm->r, obj);
    unit_run_for(d.loop, 300);
    assert_int_equal(count_reqs("POST", "/configmaps"), 2);
    answer(last_req("POST", "/configmaps"), 500);
    unit_run_for(d.loop, 5200);
    assert_int_equal(count_reqs("POST", "/configmaps"), 3);
    /* In flight at teardown: cancelled, freed by meshd_kube_stop(). */
    json_decref(obj);
    free(root);
}

/* ---- waypoints (kube_waypoint.c) ---- */

static void
answer_body(struct kube_request *r, int status, const json_t *body)
{
    assert_false(r->done);
    r->done = true;
    r->cb(r->arg, status, body);
}

static const char gw_wp[] =
    "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"Gateway\",\"metadata\":"
    "{\"name\":\"wp\",\"namespace\":\"demo\",\"uid\":\"uid-wp\",\"generation\":1,"
    "\"resourceVersion\":\"20\"},\"spec\":{\"gatewayClassName\":\"istio-waypoint\","
    "\"listeners\":[{\"name\":\"mesh\",\"port\":15008,\"protocol\":\"HBONE\"}]}}";

static size_t
count_status_patches(void)
{
    return count_reqs("PATCH",
                      "/apis/gateway.networking.k8s.io/v1/namespaces/demo/gateways/wp/status");
}

/* Runs the loop until |n| |method| requests of |path| were sent, for at most |max_ms| (a loaded
 * machine may take longer than the 100 ms settle time; absence is checked with fixed waits). */
static void
await_reqs(const char *method, const char *path, size_t n, unsigned max_ms)
{
    for (unsigned t = 0; t < max_ms && count_reqs(method, path) < n; t += 20)
        unit_run_for(d.loop, 20);
}

/*
 * A waypoint Gateway: its three objects are created (as a Deployment the watch shows next),
 * the status is patched once, and the watch event of that patch (the Gateway with the status
 * written) makes no other; a failed patch is tried again after a backoff, not at once; the
 * Gateway's removal deletes the Deployment; another class gets nothing.
 */
static void
test_waypoint(void **state)
{
    (void)state;
    struct kube_reflector *deps = rf_of("apps/v1", "Deployment");

    upsert("v1", "Namespace", ns_demo);
    upsert("v1", "Service",
           "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"istiod\","
           "\"namespace\":\"istio-system\",\"uid\":\"u-istiod\"},\"spec\":{\"clusterIP\":"
           "\"198.19.0.10\",\"ports\":[{\"name\":\"grpc\",\"port\":15012}]}}");
    upsert("gateway.networking.k8s.io/v1", "Gateway", gw_wp);
    upsert("gateway.networking.k8s.io/v1", "Gateway",
           "{\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"Gateway\",\"metadata\":"
           "{\"name\":\"ingress\",\"namespace\":\"demo\",\"uid\":\"uid-in\"},\"spec\":"
           "{\"gatewayClassName\":\"other\",\"listeners\":[{\"name\":\"http\",\"port\":80,"
           "\"protocol\":\"HTTP\"}]}}");
    list_all_but_policies();
    synced("security.istio.io/v1", "AuthorizationPolicy", true);
    settle();
    assert_int_equal(count_reqs("POST", "/deployments"), 0); /* Deployments not listed yet */
    deps->sink->synced(deps->arg, deps->r, true);
    settle();
    assert_int_equal(count_reqs("POST", "/api/v1/namespaces/demo/serviceaccounts"), 1);
    assert_int_equal(count_reqs("POST", "/api/v1/namespaces/demo/services"), 1);
    struct kube_request *dep = last_req("POST", "/apis/apps/v1/namespaces/demo/deployments");
    assert_non_null(dep);
    assert_int_equal(count_reqs("POST", "/deployments"), 1); /* nothing for class other */
    const json_t *tspec =
        json_object_get(json_object_get(json_object_get(dep->body, "spec"), "template"), "spec");
    const json_t *args =
        json_object_get(json_array_get(json_object_get(tspec, "containers"), 0), "args");
    assert_string_equal(json_string_value(json_array_get(args, 1)), "198.19.0.10:15012");
    answer_body(dep, 201, dep->body);
    /* Status: once, Programmed False (no ready replica). */
    assert_int_equal(count_status_patches(), 1);
    struct kube_request *st = last_req("PATCH", "/gateways/wp/status");
    json_t *status = json_deep_copy(json_object_get(st->body, "status"));
    assert_string_equal(
        jstr(json_array_get(json_object_get(status, "conditions"), 1), "status", NULL), "False");
    settle();
    assert_int_equal(count_status_patches(), 1); /* one in flight at a time */
    answer_body(st, 200, NULL);

    /* The watch shows the Deployment and the Gateway with its status: nothing to write. */
    deps->sink->upsert(deps->arg, deps->r, dep->body);
    json_t *gw = json_loads(gw_wp, 0, NULL);
    json_object_set(gw, "status", status);
    struct kube_reflector *gwr = rf_of("gateway.networking.k8s.io/v1", "Gateway");
    gwr->sink->upsert(gwr->arg, gwr->r, gw);
    unit_run_for(d.loop, 1500);
    assert_int_equal(count_status_patches(), 1);
    assert_int_equal(count_reqs("PATCH", "/deployments"), 0);

    /* Its Service as the watch shows it, and a ready replica: one patch (Programmed True);
     * it fails, and is tried again later. */
    upsert("v1", "Service",
           "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"wp\","
           "\"namespace\":\"demo\",\"uid\":\"u-wp\",\"labels\":{"
           "\"gateway.networking.k8s.io/gateway-class-name\":\"istio-waypoint\"},"
           "\"ownerReferences\":[{\"kind\":\"Gateway\",\"name\":\"wp\"}]},\"spec\":{"
           "\"clusterIP\":\"198.19.0.11\",\"ports\":[{\"name\":\"mesh\",\"port\":15008}]}}");
    json_t *ready = json_deep_copy(dep->body);
    json_object_set_new(ready, "status",
                        json_pack("{s:i, s:i}", "replicas", 1, "readyReplicas", 1));
    deps->sink->upsert(deps->arg, deps->r, ready);
    await_reqs("PATCH", "/gateways/wp/status", 2, 3000);
    assert_int_equal(count_status_patches(), 2);
    answer_body(last_req("PATCH", "/gateways/wp/status"), 500, NULL);
    unit_run_for(d.loop, 300);
    assert_int_equal(count_status_patches(), 2); /* backing off */
    await_reqs("PATCH", "/gateways/wp/status", 3, 3000);
    assert_int_equal(count_status_patches(), 3);
    st = last_req("PATCH", "/gateways/wp/status");
    assert_string_equal(
        jstr(json_array_get(json_object_get(json_object_get(st->body, "status"), "conditions"), 1),
             "status", NULL),
        "True");
    answer_body(st, 200, NULL);

    /* A user scales the Deployment: patched back. */
    json_t *scaled = json_deep_copy(ready);
    json_object_set_new(json_object_get(scaled, "spec"), "replicas", json_integer(3));
    deps->sink->upsert(deps->arg, deps->r, scaled);
    await_reqs("PATCH", "/apis/apps/v1/namespaces/demo/deployments/wp", 1, 3000);
    struct kube_request *back = last_req("PATCH", "/apis/apps/v1/namespaces/demo/deployments/wp");
    assert_non_null(back);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(back->body, "spec"), "replicas")), 1);
    answer_body(back, 200, NULL);

    /* The Gateway goes: its Deployment is deleted. */
    gwr->sink->remove(gwr->arg, gwr->r, gw);
    await_reqs("DELETE", "/apis/apps/v1/namespaces/demo/deployments/wp", 1, 3000);
    assert_non_null(last_req("DELETE", "/apis/apps/v1/namespaces/demo/deployments/wp"));
    json_decref(scaled);
    json_decref(ready);
    json_decref(gw);
    json_decref(status);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relist_one_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_object_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_configmap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waypoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
