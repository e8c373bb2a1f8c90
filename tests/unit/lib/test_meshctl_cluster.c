/*
 * test_meshctl_cluster.c - the local cluster's pure helpers (src/meshctl/cluster_util.c,
 * included so its file-local helpers are reachable): pod namespace names and their
 * hashing, address allocation, VIPs, kubectl's AGE, kinds, Deployment -> Pod,
 * $(VAR) expansion, label arguments and selectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/meshctl/cluster_util.c"

static void
test_pod_netns_name(void **state)
{
    char a[128], b[128], c[128];
    (void)state;

    cl_pod_netns_name("amesh", "demo", "echo-v1-bcdfg", a, sizeof(a));
    assert_string_equal(a, "amesh-pod-demo-echo-v1-bcdfg");

    /* Long names are cut to CLUSTER_NETNS_MAX and end with a hash of the identity. */
    char ns[64], name[254];
    memset(ns, 'n', 63);
    ns[63] = '\0';
    memset(name, 'p', 253);
    name[253] = '\0';
    size_t n = cl_pod_netns_name("amesh", ns, name, b, sizeof(b));
    assert_int_equal(n, CLUSTER_NETNS_MAX);
    assert_int_equal(strlen(b), CLUSTER_NETNS_MAX);
    assert_memory_equal(b, "amesh-pod-nnn", 13);
    /* Same start, other identity: another name. */
    name[252] = 'q';
    cl_pod_netns_name("amesh", ns, name, c, sizeof(c));
    assert_int_equal(strlen(c), CLUSTER_NETNS_MAX);
    assert_string_not_equal(b, c);
    /* Stable. */
    name[252] = 'p';
    cl_pod_netns_name("amesh", ns, name, c, sizeof(c));
    assert_string_equal(b, c);
    /* Exactly at the limit: kept as is. */
    char name2[64];
    size_t room = CLUSTER_NETNS_MAX - strlen("amesh-pod-d-");
    memset(name2, 'x', room);
    name2[room] = '\0';
    cl_pod_netns_name("amesh", "d", name2, c, sizeof(c));
    assert_int_equal(strlen(c), CLUSTER_NETNS_MAX);
    assert_memory_equal(c, "amesh-pod-d-xxx", 15);
    assert_null(strchr(c + 12, '-'));
}

static void
test_prefix(void **state)
{
    char p[32], q[32];
    (void)state;
    cl_prefix_for_dir("/run/amesh", p, sizeof(p));
    assert_string_equal(p, "amesh");
    cl_prefix_for_dir("/run/amesh/", p, sizeof(p));
    assert_string_equal(p, "amesh");
    cl_prefix_for_dir("/tmp/amesh-it.x/cluster", p, sizeof(p));
    assert_int_equal(strlen(p), 8);
    assert_memory_equal(p, "am", 2);
    cl_prefix_for_dir("/tmp/amesh-it.y/cluster", q, sizeof(q));
    assert_string_not_equal(p, q);
    /* A veth name derived from it would still fit; the netns names are what matter. */
    assert_true(strlen(p) + strlen("-node-16") < 64);
}

static void
test_ip_alloc(void **state)
{
    bool used[256] = {0};
    (void)state;
    used[0] = used[1] = used[255] = true;
    assert_int_equal(cl_ip_alloc(used, 2), 2);
    used[2] = true;
    assert_int_equal(cl_ip_alloc(used, 2), 3);
    assert_int_equal(cl_ip_alloc(used, 100), 100);
    assert_int_equal(cl_ip_alloc(used, 0), 3); /* out of range: from the start */
    assert_int_equal(cl_ip_alloc(used, 1), 3); /* .1 is the gateway */
    for (int i = 2; i <= 254; i++)
        used[i] = true;
    used[7] = false;
    assert_int_equal(cl_ip_alloc(used, 200), 7); /* wraps */
    used[7] = true;
    assert_int_equal(cl_ip_alloc(used, 2), -1);
    assert_int_equal(cl_ip_alloc(used, 254), -1);
}

static void
test_vip(void **state)
{
    char ip[32];
    (void)state;
    cl_vip_from_index(0, ip, sizeof(ip));
    assert_string_equal(ip, "198.19.0.10");
    cl_vip_from_index(246, ip, sizeof(ip));
    assert_string_equal(ip, "198.19.1.0");
    assert_int_equal(cl_vip_index("198.19.0.10"), 0);
    assert_int_equal(cl_vip_index("198.19.1.0"), 246);
    assert_int_equal(cl_vip_index("198.19.255.254"), 65524);
    assert_int_equal(cl_vip_index("198.19.255.255"), -1);
    assert_int_equal(cl_vip_index("198.19.0.9"), -1);
    assert_int_equal(cl_vip_index("198.18.0.10"), -1);
    assert_int_equal(cl_vip_index("10.96.0.1"), -1);
    assert_int_equal(cl_vip_index("198.19.0.10x"), -1);
    assert_int_equal(cl_vip_index("198.19.256.1"), -1);
    assert_int_equal(cl_vip_index("None"), -1);
    for (unsigned i = 0; i < 65525; i += 97) {
        cl_vip_from_index(i, ip, sizeof(ip));
        assert_int_equal(cl_vip_index(ip), (int)i);
    }
}

/* What apply does for a Service's ClusterIP, as the API server would. */
static void
test_service_vip(void **state)
{
    static const struct {
        const char *spec;
        enum cl_vip_want want;
        const char *ip;
    } cases[] = {
        {"{}", CL_VIP_ALLOCATE, ""},
        {"{\"clusterIP\": \"\"}", CL_VIP_ALLOCATE, ""},
        {"{\"clusterIP\": \"\", \"clusterIPs\": []}", CL_VIP_ALLOCATE, ""},
        {"{\"type\": \"ClusterIP\"}", CL_VIP_ALLOCATE, ""},
        {"{\"type\": \"NodePort\"}", CL_VIP_ALLOCATE, ""},
        {"{\"clusterIP\": \"None\"}", CL_VIP_NONE, ""},
        {"{\"clusterIPs\": [\"None\"]}", CL_VIP_NONE, ""},
        {"{\"type\": \"ExternalName\", \"externalName\": \"example.com\"}", CL_VIP_NONE, ""},
        {"{\"clusterIP\": \"198.19.0.20\"}", CL_VIP_REQUESTED, "198.19.0.20"},
        {"{\"clusterIPs\": [\"198.19.0.21\"]}", CL_VIP_REQUESTED, "198.19.0.21"},
        {"{\"clusterIP\": \"\", \"clusterIPs\": [\"198.19.0.22\"]}", CL_VIP_REQUESTED, "198.19.0.22"},
        {"{\"clusterIP\": \"10.0.0.1\"}", CL_VIP_REQUESTED, "10.0.0.1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *spec = json_loads(cases[i].spec, 0, NULL);
        char ip[64] = "";
        assert_non_null(spec);
        if (cl_service_vip(spec, ip, sizeof(ip)) != cases[i].want ||
            strcmp(ip, cases[i].ip) != 0)
            fail_msg("case %zu (%s): got \"%s\"", i, cases[i].spec, ip);
        json_decref(spec);
    }
    char ip[64] = "x";
    assert_int_equal(cl_service_vip(NULL, ip, sizeof(ip)), CL_VIP_ALLOCATE);
}

static void
test_age(void **state)
{
    static const struct {
        long long s;
        const char *out;
    } cases[] = {
        {-5, "<invalid>"}, {-1, "0s"},      {0, "0s"},        {59, "59s"},        {119, "119s"},
        {120, "2m"},       {150, "2m30s"},  {599, "9m59s"},   {600, "10m"},       {10799, "179m"},
        {10800, "3h"},     {11100, "3h5m"}, {28800, "8h"},    {172799, "47h"},    {172800, "2d"},
        {180000, "2d2h"},  {691200, "8d"},  {63072000, "2y"}, {63158400, "2y1d"}, {252288000, "8y"},
    };
    char out[32];
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cl_age(cases[i].s, out, sizeof(out));
        assert_string_equal(out, cases[i].out);
    }
}

static void
test_rfc3339(void **state)
{
    char t[32];
    (void)state;
    cl_rfc3339(1700000000, t, sizeof(t));
    assert_string_equal(t, "2023-11-14T22:13:20Z");
    assert_int_equal(cl_parse_rfc3339(t), 1700000000);
    assert_int_equal(cl_parse_rfc3339("2023-11-14"), -1);
    assert_int_equal(cl_parse_rfc3339(NULL), -1);
}

static void
test_kinds(void **state)
{
    (void)state;
    assert_string_equal(kind_lookup("Deployment", "apps/v1")->resource, "deployment.apps");
    assert_null(kind_lookup("Deployment", "v1"));
    assert_string_equal(kind_lookup("Pod", "v1")->resource, "pod");
    assert_null(kind_lookup("Pod", "apps/v1"));
    assert_true(kind_lookup("AuthorizationPolicy", "security.istio.io/v1")->config);
    assert_false(kind_lookup("Deployment", "apps/v1")->config);
    assert_null(kind_lookup("Gateway", "networking.istio.io/v1"));
    assert_false(kind_by_alias("ns")->namespaced);
    assert_string_equal(kind_by_alias("svc")->kind, "Service");
    assert_string_equal(kind_by_alias("deploy")->kind, "Deployment");
    assert_string_equal(kind_by_alias("deployments.apps")->kind, "Deployment");
    assert_string_equal(kind_by_alias("po")->kind, "Pod");
    assert_null(kind_by_alias("replicasets"));
}

static json_t *
load(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    assert_non_null(v);
    return v;
}

static void
test_pod_from_deployment(void **state)
{
    (void)state;
    json_t *dep =
        load("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
             "\"metadata\":{\"name\":\"echo-v1\",\"namespace\":\"demo\",\"labels\":{\"x\":\"y\"}},"
             "\"spec\":{\"replicas\":2,\"template\":{"
             "\"metadata\":{\"labels\":{\"app\":\"echo\",\"version\":\"v1\"},"
             "\"annotations\":{\"a\":\"b\"}},"
             "\"spec\":{\"serviceAccountName\":\"echo\",\"containers\":[{\"name\":\"echo\","
             "\"command\":[\"echo-server\"],\"args\":[\"--version\",\"v1\"]}]}}}}");
    char hash[11], again[11];
    cl_template_hash(jget(dep, "spec.template"), hash);
    assert_int_equal(strlen(hash), 10);
    assert_int_equal(strspn(hash, CL_SAFE_ALPHABET), 10);
    /* Key order does not matter; content does. */
    json_t *t2 =
        load("{\"spec\":{\"containers\":[{\"args\":[\"--version\",\"v1\"],"
             "\"command\":[\"echo-server\"],\"name\":\"echo\"}],\"serviceAccountName\":\"echo\"},"
             "\"metadata\":{\"annotations\":{\"a\":\"b\"},\"labels\":{\"version\":\"v1\",\"app\":"
             "\"echo\"}}}");
    cl_template_hash(t2, again);
    assert_string_equal(hash, again);
    json_object_set_new(jget(t2, "metadata.labels"), "version", json_string("v2"));
    cl_template_hash(t2, again);
    assert_string_not_equal(hash, again);
    json_decref(t2);

    json_t *pod = cl_pod_from_deployment(dep, hash, "bcdfg");
    assert_string_equal(jget(pod, "kind") ? json_string_value(jget(pod, "kind")) : "", "Pod");
    assert_string_equal(json_string_value(jget(pod, "metadata.name")), "echo-v1-bcdfg");
    assert_string_equal(json_string_value(jget(pod, "metadata.namespace")), "demo");
    assert_string_equal(json_string_value(jget(pod, "metadata.generateName")), "echo-v1-");
    assert_string_equal(json_string_value(jget(pod, "metadata.labels.app")), "echo");
    assert_string_equal(json_string_value(jget(pod, "metadata.labels.version")), "v1");
    assert_string_equal(json_string_value(jget(pod, "metadata.labels.pod-template-hash")), hash);
    assert_null(jget(pod, "metadata.labels.x")); /* the Deployment's own labels stay there */
    assert_string_equal(json_string_value(jget(pod, "metadata.annotations.a")), "b");
    json_t *owner = json_array_get(jget(pod, "metadata.ownerReferences"), 0);
    assert_string_equal(json_string_value(json_object_get(owner, "kind")), "ReplicaSet");
    char rs[64];
    snprintf(rs, sizeof(rs), "echo-v1-%s", hash);
    assert_string_equal(json_string_value(json_object_get(owner, "name")), rs);
    assert_true(json_is_true(json_object_get(owner, "controller")));
    assert_true(json_equal(jget(pod, "spec"), jget(dep, "spec.template.spec")));
    /* A copy: changing the pod leaves the Deployment alone. */
    json_object_set_new(jget(pod, "spec"), "nodeName", json_string("node-1"));
    assert_null(jget(dep, "spec.template.spec.nodeName"));
    json_decref(pod);

    /* No template labels, no namespace: still a well-formed pod. */
    json_t *bare = load("{\"metadata\":{\"name\":\"d\"},\"spec\":{}}");
    pod = cl_pod_from_deployment(bare, "h", "zzzzz");
    assert_string_equal(json_string_value(jget(pod, "metadata.namespace")), "default");
    assert_string_equal(json_string_value(jget(pod, "metadata.labels.pod-template-hash")), "h");
    assert_true(json_is_object(jget(pod, "spec")));
    json_decref(pod);
    json_decref(bare);
    json_decref(dep);
}

static void
test_expand(void **state)
{
    (void)state;
    json_t *env = load("[\"POD_NAME=echo-1\", \"PORT=80\", \"PORT=8080\"]");
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"--name=$(POD_NAME)", "--name=echo-1"},
        {"$(PORT)", "8080"}, /* the last definition wins */
        {"$(NOPE)", "$(NOPE)"},
        {"$$(POD_NAME)", "$(POD_NAME)"},
        {"a$$b", "a$b"},
        {"$(unclosed", "$(unclosed"},
        {"$", "$"},
        {"", ""},
        {"$(POD_NAME)$(POD_NAME)", "echo-1echo-1"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *s = cl_expand(cases[i].in, env);
        assert_string_equal(s, cases[i].out);
        free(s);
    }
    json_decref(env);
}

static void
test_label_args(void **state)
{
    char k[320], v[128];
    bool rm;
    (void)state;
    assert_int_equal(
        cl_parse_label_arg("istio.io/dataplane-mode=ambient", k, sizeof(k), v, sizeof(v), &rm), 0);
    assert_string_equal(k, "istio.io/dataplane-mode");
    assert_string_equal(v, "ambient");
    assert_false(rm);
    assert_int_equal(
        cl_parse_label_arg("istio.io/dataplane-mode-", k, sizeof(k), v, sizeof(v), &rm), 0);
    assert_string_equal(k, "istio.io/dataplane-mode");
    assert_true(rm);
    assert_int_equal(cl_parse_label_arg("app=", k, sizeof(k), v, sizeof(v), &rm), 0);
    assert_string_equal(v, "");
    assert_int_equal(cl_parse_label_arg("app", k, sizeof(k), v, sizeof(v), &rm), -1);
    assert_int_equal(cl_parse_label_arg("-", k, sizeof(k), v, sizeof(v), &rm), -1);
    assert_int_equal(cl_parse_label_arg("=x", k, sizeof(k), v, sizeof(v), &rm), -1);
    assert_int_equal(cl_parse_label_arg("a=b c", k, sizeof(k), v, sizeof(v), &rm), -1);
    assert_int_equal(cl_parse_label_arg("Bad/x=y", k, sizeof(k), v, sizeof(v), &rm), -1);
    assert_int_equal(cl_parse_label_arg("a=-b", k, sizeof(k), v, sizeof(v), &rm), -1);
}

static void
test_selector(void **state)
{
    (void)state;
    json_t *sel = load("{\"app\":\"echo\"}");
    json_t *yes = load("{\"app\":\"echo\",\"version\":\"v1\"}");
    json_t *no = load("{\"app\":\"curl\"}");
    json_t *empty = load("{}");
    assert_true(cl_selector_matches(sel, yes));
    assert_false(cl_selector_matches(sel, no));
    assert_false(cl_selector_matches(sel, NULL));
    assert_false(cl_selector_matches(empty, yes)); /* no selector, no endpoints (as Kubernetes) */
    assert_false(cl_selector_matches(NULL, yes));
    json_decref(sel);
    json_decref(yes);
    json_decref(no);
    json_decref(empty);
}

/* jget() (cluster.h) lives in cluster_state.c, which does I/O; the same walk for the checks. */
json_t *
jget(const json_t *o, const char *path)
{
    char key[256];
    const char *p = path;
    while (o != NULL && *p) {
        size_t n = strcspn(p, ".");
        memcpy(key, p, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        p += n + (p[n] == '.');
    }
    return (json_t *)o;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pod_netns_name),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_ip_alloc),
        cmocka_unit_test(test_vip),
        cmocka_unit_test(test_service_vip),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_pod_from_deployment),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_label_args),
        cmocka_unit_test(test_selector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
