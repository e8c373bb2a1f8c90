/*
 * test_kubelet.c - the kubelet's pure parts (src/meshctl/kubelet_spec.c, pod_spec.c):
 * node names, the conflist, CNI_ARGS and the plugin environment, one plugin's stdin in
 * a chain, the address of a chain's result, pod -> run spec, the pod and Node status
 * bodies, and kube-mode endpoints for the service rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/meshctl/kubelet.h"
#include "base/base.h"

static json_t *
parse(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    if (v == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return v;
}

static void
test_node_index(void **state)
{
    (void)state;
    assert_int_equal(kl_node_index("node-1"), 1);
    assert_int_equal(kl_node_index("node-16"), 16);
    assert_int_equal(kl_node_index("node-17"), -1);
    assert_int_equal(kl_node_index("node-0"), -1);
    assert_int_equal(kl_node_index("node-01"), -1);
    assert_int_equal(kl_node_index("node-"), -1);
    assert_int_equal(kl_node_index("node-1x"), -1);
    assert_int_equal(kl_node_index("worker-1"), -1);
    assert_int_equal(kl_node_index(NULL), -1);
}

static void
test_conflist(void **state)
{
    (void)state;
    json_t *l = kl_conflist(3, "/c/nodes/node-3/cni/ipam", "/c/nodes/node-3/cni/plugin.sock");
    assert_string_equal(js(l, "cniVersion"), "1.0.0");
    assert_string_equal(js(l, "name"), KL_NETWORK);
    json_t *ptp = json_array_get(json_object_get(l, "plugins"), 0);
    json_t *amesh = json_array_get(json_object_get(l, "plugins"), 1);
    assert_string_equal(js(ptp, "type"), "ptp");
    assert_string_equal(js(ptp, "ipam.type"), "host-local");
    assert_string_equal(js(ptp, "ipam.dataDir"), "/c/nodes/node-3/cni/ipam");
    json_t *range = json_array_get(json_array_get(jget(ptp, "ipam.ranges"), 0), 0);
    assert_string_equal(js(range, "subnet"), "198.18.3.0/24");
    assert_string_equal(js(range, "gateway"), "198.18.3.1");
    assert_true(json_is_false(json_object_get(ptp, "ipMasq")));
    assert_string_equal(js(amesh, "type"), "amesh-cni");
    assert_string_equal(js(amesh, "agentSocket"), "/c/nodes/node-3/cni/plugin.sock");
    assert_int_equal(json_array_size(json_object_get(l, "plugins")), 2);
    json_decref(l);
}

static bool
has(char **env, const char *kv)
{
    for (size_t i = 0; env[i] != NULL; i++)
        if (strcmp(env[i], kv) == 0)
            return true;
    return false;
}

static void
test_cni_env_args(void **state)
{
    (void)state;
    char *args = kl_cni_args("demo", "echo-1", "u-1");
    assert_string_equal(args, "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=echo-1;"
                              "K8S_POD_INFRA_CONTAINER_ID=u-1;K8S_POD_UID=u-1");
    char **env = kl_cni_env("ADD", "u-1", "/run/netns/p", args, "/usr/lib/cni:/b");
    assert_true(has(env, "CNI_COMMAND=ADD"));
    assert_true(has(env, "CNI_CONTAINERID=u-1"));
    assert_true(has(env, "CNI_NETNS=/run/netns/p"));
    assert_true(has(env, "CNI_IFNAME=eth0"));
    assert_true(has(env, "CNI_PATH=/usr/lib/cni:/b"));
    char *full = xasprintf("CNI_ARGS=%s", args);
    assert_true(has(env, full));
    free(full);
    kl_strv_free(env);
    /* DEL of a pod whose namespace is gone: no CNI_NETNS at all. */
    env = kl_cni_env("DEL", "u-1", NULL, args, "/p");
    for (size_t i = 0; env[i] != NULL; i++)
        assert_false(strncmp(env[i], "CNI_NETNS=", 10) == 0);
    kl_strv_free(env);
    free(args);
}

static void
test_plugin_conf(void **state)
{
    (void)state;
    json_t *l = kl_conflist(1, "/i", "/s");
    json_t *prev = parse("{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"198.18.1.2/24\"}]}");
    json_t *c0 = kl_plugin_conf(l, 0, NULL);
    assert_string_equal(js(c0, "name"), KL_NETWORK);
    assert_string_equal(js(c0, "cniVersion"), "1.0.0");
    assert_null(json_object_get(c0, "prevResult"));
    json_t *c1 = kl_plugin_conf(l, 1, prev);
    assert_string_equal(js(c1, "type"), "amesh-cni");
    assert_true(json_equal(json_object_get(c1, "prevResult"), prev));
    assert_null(kl_plugin_conf(l, 2, NULL));
    /* The list itself is not changed. */
    assert_null(json_object_get(json_array_get(json_object_get(l, "plugins"), 1), "prevResult"));
    json_decref(c0);
    json_decref(c1);
    json_decref(prev);
    json_decref(l);
}

static void
test_result_ip(void **state)
{
    (void)state;
    char ip[32], err[256];
    json_t *r = parse("{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\"}],"
                      "\"ips\":[{\"address\":\"2001:db8::5/64\"},"
                      "{\"address\":\"198.18.2.7/24\",\"gateway\":\"198.18.2.1\"}]}");
    assert_int_equal(kl_result_ip(r, ip, sizeof(ip), err, sizeof(err)), 0);
    assert_string_equal(ip, "198.18.2.7");
    json_decref(r);

    static const char *const bad[] = {
        "{\"cniVersion\":\"1.0.0\"}",                               /* no ips */
        "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"x\"}]}", /* not an address */
        "{\"cniVersion\":\"1.0.0\",\"ips\":{}}",                    /* not a list */
        "{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"2001:db8::1/64\"}]}", /* no IPv4 */
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = parse(bad[i]);
        err[0] = '\0';
        assert_int_equal(kl_result_ip(r, ip, sizeof(ip), err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        json_decref(r);
    }
}

static const char *
env_of(const json_t *run, const char *key)
{
    size_t i, n = strlen(key);
    json_t *v;
    json_array_foreach(json_object_get(run, "env"), i, v) {
        const char *s = json_string_value(v);
        if (strncmp(s, key, n) == 0 && s[n] == '=')
            return s + n + 1;
    }
    return NULL;
}

static void
test_pod_spec(void **state)
{
    (void)state;
    json_t *pod =
        parse("{\"metadata\":{\"name\":\"echo-1\",\"namespace\":\"demo\",\"uid\":\"u1\","
              "\"labels\":{\"app\":\"echo\"}},"
              "\"spec\":{\"nodeName\":\"node-2\",\"containers\":[{\"name\":\"c\","
              "\"command\":[\"echo-server\"],\"args\":[\"--name\",\"$(POD_NAME)\",\"$$(X)\"],"
              "\"env\":[{\"name\":\"NODE\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"spec."
              "nodeName\"}}},"
              "{\"name\":\"IP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"status.podIP\"}}},"
              "{\"name\":\"APP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.labels['app'"
              "]\"}}},"
              "{\"name\":\"URL\",\"value\":\"http://$(NODE)/\"}]}]},"
              "\"status\":{\"podIP\":\"198.18.2.5\"}}");
    json_t *svcs = parse(
        "[{\"object\":{\"metadata\":{\"name\":\"echo-svc\",\"namespace\":\"demo\"},"
        "\"spec\":{\"clusterIP\":\"198.19.0.10\",\"ports\":[{\"name\":\"http\",\"port\":80}]}}},"
        "{\"object\":{\"metadata\":{\"name\":\"other\",\"namespace\":\"elsewhere\"},"
        "\"spec\":{\"clusterIP\":\"198.19.0.11\",\"ports\":[{\"port\":81}]}}}]");
    json_t *run = json_object();
    pod_spec(pod, svcs, "/b", "/h", run);
    json_t *argv = json_object_get(run, "argv");
    assert_int_equal(json_array_size(argv), 4);
    assert_string_equal(json_string_value(json_array_get(argv, 0)), "echo-server");
    assert_string_equal(json_string_value(json_array_get(argv, 2)), "echo-1");
    assert_string_equal(json_string_value(json_array_get(argv, 3)), "$(X)");
    assert_string_equal(env_of(run, "PATH"),
                        "/b:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_string_equal(env_of(run, "HOME"), "/h");
    assert_string_equal(env_of(run, "NODE"), "node-2");
    assert_string_equal(env_of(run, "IP"), "198.18.2.5");
    assert_string_equal(env_of(run, "APP"), "echo");
    assert_string_equal(env_of(run, "URL"), "http://node-2/");
    assert_string_equal(env_of(run, "ECHO_SVC_SERVICE_HOST"), "198.19.0.10");
    assert_string_equal(env_of(run, "ECHO_SVC_SERVICE_PORT_HTTP"), "80");
    assert_null(env_of(run, "OTHER_SERVICE_HOST")); /* another namespace's */
    json_decref(run);
    json_decref(svcs);
    json_decref(pod);
}

static void
test_status_patch(void **state)
{
    (void)state;
    json_t *pod = parse("{\"metadata\":{\"uid\":\"u1\"},\"spec\":{\"containers\":[{\"name\":\"c\","
                        "\"image\":\"img\"}]},\"status\":{\"conditions\":[{\"type\":"
                        "\"PodScheduled\",\"status\":\"True\",\"lastTransitionTime\":"
                        "\"2026-01-01T00:00:00Z\"}]}}");
    struct kl_state s = {.phase = "Running",
                         .ip = "198.18.1.4",
                         .host_ip = "198.18.0.11",
                         .start = "2026-01-01T00:00:01Z",
                         .started_at = "2026-01-01T00:00:02Z",
                         .running = true,
                         .ready = true,
                         .ready_since = "2026-01-01T00:00:03Z",
                         .restarts = 1,
                         .exit_code = 137,
                         .finished_at = "2026-01-01T00:00:02Z",
                         .last_started = "2026-01-01T00:00:01Z"};
    json_t *b = kl_status_patch(pod, &s);
    json_t *st = json_object_get(b, "status");
    assert_string_equal(js(st, "phase"), "Running");
    assert_string_equal(js(st, "podIP"), "198.18.1.4");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(st, "podIPs"), 0), "ip")),
        "198.18.1.4");
    assert_string_equal(js(st, "hostIP"), "198.18.0.11");
    const char *want[][3] = {{"Initialized", "True", "2026-01-01T00:00:01Z"},
                             {"Ready", "True", "2026-01-01T00:00:03Z"},
                             {"ContainersReady", "True", "2026-01-01T00:00:03Z"},
                             {"PodScheduled", "True", "2026-01-01T00:00:00Z"}};
    json_t *conds = json_object_get(st, "conditions");
    assert_int_equal(json_array_size(conds), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_array_get(conds, i);
        assert_string_equal(js(c, "type"), want[i][0]);
        assert_string_equal(js(c, "status"), want[i][1]);
        assert_string_equal(js(c, "lastTransitionTime"), want[i][2]);
    }
    json_t *cs = json_array_get(json_object_get(st, "containerStatuses"), 0);
    assert_string_equal(js(cs, "name"), "c");
    assert_true(json_is_true(json_object_get(cs, "ready")));
    assert_true(json_is_true(json_object_get(cs, "started")));
    assert_int_equal(json_integer_value(json_object_get(cs, "restartCount")), 1);
    assert_string_equal(js(cs, "state.running.startedAt"), "2026-01-01T00:00:02Z");
    assert_int_equal(json_integer_value(jget(cs, "lastState.terminated.exitCode")), 137);
    assert_string_equal(js(cs, "containerID"), "amesh://u1");
    json_decref(b);

    /* Waiting to be restarted: Running phase, not ready, CrashLoopBackOff. */
    s.running = false;
    s.ready = false;
    s.terminated = true;
    s.reason = "CrashLoopBackOff";
    b = kl_status_patch(pod, &s);
    cs = json_array_get(jget(b, "status.containerStatuses"), 0);
    assert_string_equal(js(cs, "state.waiting.reason"), "CrashLoopBackOff");
    assert_false(json_is_true(json_object_get(cs, "started")));
    assert_string_equal(js(json_array_get(jget(b, "status.conditions"), 1), "status"), "False");
    assert_string_equal(js(json_array_get(jget(b, "status.conditions"), 1), "reason"),
                        "ContainersNotReady");
    json_decref(b);

    /* Ended for good. */
    s.phase = "Failed";
    s.reason = "Error";
    s.exit_code = 3;
    b = kl_status_patch(pod, &s);
    cs = json_array_get(jget(b, "status.containerStatuses"), 0);
    assert_int_equal(json_integer_value(jget(cs, "state.terminated.exitCode")), 3);
    assert_string_equal(js(cs, "state.terminated.reason"), "Error");
    assert_string_equal(jsd(b, "status.phase", ""), "Failed");
    json_decref(b);

    /* Before the network: Pending, no podIP. */
    struct kl_state p = {.phase = "Pending",
                         .host_ip = "198.18.0.11",
                         .start = "2026-01-01T00:00:01Z",
                         .reason = "ContainerCreating"};
    b = kl_status_patch(pod, &p);
    assert_null(jget(b, "status.podIP"));
    assert_string_equal(
        js(json_array_get(jget(b, "status.containerStatuses"), 0), "state.waiting.reason"),
        "ContainerCreating");
    json_decref(b);
    json_decref(pod);
}

static void
test_node_status(void **state)
{
    (void)state;
    json_t *n = kl_node_status(2, "node-2", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z");
    json_t *st = json_object_get(n, "status");
    assert_string_equal(js(st, "capacity.pods"), "110");
    assert_string_equal(js(st, "allocatable.cpu"), "4");
    json_t *a0 = json_array_get(json_object_get(st, "addresses"), 0);
    assert_string_equal(js(a0, "type"), "InternalIP");
    assert_string_equal(js(a0, "address"), "198.18.0.12");
    size_t i;
    json_t *c;
    bool ready = false;
    json_array_foreach(json_object_get(st, "conditions"), i, c) {
        if (strcmp(js(c, "type"), "Ready") == 0) {
            ready = strcmp(js(c, "status"), "True") == 0 &&
                    strcmp(js(c, "lastHeartbeatTime"), "2026-01-01T00:01:00Z") == 0 &&
                    strcmp(js(c, "lastTransitionTime"), "2026-01-01T00:00:00Z") == 0;
        } else {
            assert_string_equal(js(c, "status"), "False"); /* no pressure */
        }
    }
    assert_true(ready);
    json_decref(n);

    char t[40];
    kl_micro_time(t, sizeof(t));
    assert_int_equal(strlen(t), 27); /* 2026-01-01T00:00:00.000000Z */
    assert_int_equal(t[19], '.');
    assert_int_equal(t[26], 'Z');
}

static void
test_api_endpoints(void **state)
{
    (void)state;
    json_t *ep =
        parse("{\"subsets\":[{\"addresses\":[{\"ip\":\"198.18.1.2\"},{\"ip\":\"198.18.2.3\"}],"
              "\"notReadyAddresses\":[{\"ip\":\"198.18.1.9\"}],"
              "\"ports\":[{\"name\":\"http\",\"port\":8080},{\"name\":\"tcp\",\"port\":9000}]}]}");
    json_t *http = parse("{\"name\":\"http\",\"port\":80}");
    json_t *none = parse("{\"name\":\"grpc\",\"port\":81}");
    json_t *e = kl_endpoints_from_api(ep, http);
    assert_int_equal(json_array_size(e), 2);
    assert_string_equal(js(json_array_get(e, 1), "ip"), "198.18.2.3");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(e, 0), "port")), 8080);
    json_decref(e);
    e = kl_endpoints_from_api(ep, none);
    assert_int_equal(json_array_size(e), 0);
    json_decref(e);
    e = kl_endpoints_from_api(NULL, http);
    assert_int_equal(json_array_size(e), 0);
    json_decref(e);

    json_decref(http);
    json_decref(none);
    json_decref(ep);
}

static void
test_configmap_files(void **state)
{
    (void)state;
    char err[256];
    json_t *pod = parse(
        "{\"spec\":{\"containers\":[{\"name\":\"c\",\"volumeMounts\":["
        "{\"name\":\"a\",\"mountPath\":\"/etc/a\"},{\"name\":\"b\",\"mountPath\":\"/etc/b\"}]}],"
        "\"volumes\":[{\"name\":\"a\",\"configMap\":{\"name\":\"cfg\",\"defaultMode\":416}},"
        "{\"name\":\"b\",\"configMap\":{\"name\":\"opt\",\"optional\":true,\"items\":["
        "{\"key\":\"k1\",\"path\":\"sub/one\",\"mode\":256},{\"key\":\"k2\",\"path\":\"../x\"},"
        "{\"key\":\"k3\",\"path\":\"three\",\"mode\":99999}]}}]}}");
    json_t *v = kl_token_volumes(pod);
    assert_int_equal(json_array_size(v), 2);
    json_t *a = json_array_get(json_object_get(json_array_get(v, 0), "configMaps"), 0);
    json_t *b = json_array_get(json_object_get(json_array_get(v, 1), "configMaps"), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "defaultMode")), 0640);
    assert_false(json_is_array(json_object_get(a, "items")));
    assert_int_equal(json_array_size(json_object_get(b, "items")), 2); /* ../x dropped */
    assert_int_equal(
        json_integer_value(jget(json_array_get(json_object_get(b, "items"), 1), "mode")),
        0644); /* out of range: the default */

    /* Missing: the pod waits, unless optional. */
    assert_null(kl_configmap_files(a, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not found"));
    json_t *f = kl_configmap_files(b, NULL, err, sizeof(err));
    assert_int_equal(json_array_size(f), 0);
    json_decref(f);

    /* Every key, each a file with the default mode; keys that are no file name skipped. */
    json_t *cm = parse("{\"data\":{\"greeting\":\"hello\",\"bad/key\":\"x\",\"..\":\"y\"}}");
    f = kl_configmap_files(a, cm, err, sizeof(err));
    assert_int_equal(json_array_size(f), 1);
    assert_string_equal(js(json_array_get(f, 0), "path"), "greeting");
    assert_string_equal(js(json_array_get(f, 0), "data"), "hello");
    assert_int_equal(json_integer_value(jget(json_array_get(f, 0), "mode")), 0640);
    json_decref(f);
    json_decref(cm);

    /* Items: the path and mode of each; a missing key waits, unless optional. */
    cm = parse("{\"data\":{\"k1\":\"one\"}}");
    f = kl_configmap_files(b, cm, err, sizeof(err));
    assert_int_equal(json_array_size(f), 1);
    assert_string_equal(js(json_array_get(f, 0), "path"), "sub/one");
    assert_int_equal(json_integer_value(jget(json_array_get(f, 0), "mode")), 0400);
    json_decref(f);
    json_object_set_new(b, "optional", json_false());
    assert_null(kl_configmap_files(b, cm, err, sizeof(err)));
    assert_non_null(strstr(err, "no key \"k3\""));
    json_decref(cm);

    /* Over the byte cap: refused whole. */
    char *big = xcalloc(KL_CM_MAX_BYTES + 2, 1);
    memset(big, 'x', KL_CM_MAX_BYTES + 1);
    cm = json_pack("{s:{s:s}}", "data", "big", big);
    assert_null(kl_configmap_files(a, cm, err, sizeof(err)));
    assert_non_null(strstr(err, "caps"));
    free(big);
    json_decref(cm);
    json_decref(v);
    json_decref(pod);
}

static void
test_token_volumes(void **state)
{
    (void)state;
    json_t *pod =
        parse("{\"metadata\":{\"name\":\"wp-1\",\"namespace\":\"demo\",\"uid\":\"u9\"},"
              "\"spec\":{\"containers\":[{\"name\":\"c\",\"volumeMounts\":["
              "{\"name\":\"istio-token\",\"mountPath\":\"/var/run/secrets/tokens\"},"
              "{\"name\":\"cfg\",\"mountPath\":\"/etc/cfg\"},"
              "{\"name\":\"evil\",\"mountPath\":\"/var/../etc\"}]}],"
              "\"volumes\":[{\"name\":\"istio-token\",\"projected\":{\"sources\":["
              "{\"serviceAccountToken\":{\"audience\":\"istio-ca\",\"expirationSeconds\":43200,"
              "\"path\":\"istio-token\"}},"
              "{\"serviceAccountToken\":{\"path\":\"api/token\",\"expirationSeconds\":60}},"
              "{\"serviceAccountToken\":{\"path\":\"../escape\"}},"
              "{\"configMap\":{\"name\":\"x\"}}]}},"
              "{\"name\":\"cfg\",\"configMap\":{\"name\":\"x\"}},"
              "{\"name\":\"evil\",\"projected\":{\"sources\":[{\"serviceAccountToken\":"
              "{\"path\":\"t\"}}]}}]}}");
    json_t *v = kl_token_volumes(pod);
    assert_int_equal(json_array_size(v), 2); /* evil's mountPath has ".." */
    json_t *tv = json_array_get(v, 0);
    json_t *cv = json_array_get(v, 1);
    assert_string_equal(js(cv, "volume"), "cfg");
    assert_int_equal(json_array_size(json_object_get(cv, "tokens")), 0);
    assert_int_equal(json_array_size(json_object_get(cv, "configMaps")), 1);
    assert_int_equal(json_array_size(json_object_get(tv, "configMaps")), 1); /* projected source */
    assert_string_equal(js(tv, "volume"), "istio-token");
    assert_string_equal(js(tv, "mountPath"), "/var/run/secrets/tokens");
    json_t *toks = json_object_get(tv, "tokens");
    assert_int_equal(json_array_size(toks), 2); /* ../escape skipped */
    json_t *t0 = json_array_get(toks, 0), *t1 = json_array_get(toks, 1);
    assert_string_equal(js(t0, "audience"), "istio-ca");
    assert_int_equal(json_integer_value(json_object_get(t0, "expirationSeconds")), 43200);
    assert_string_equal(js(t1, "path"), "api/token");
    assert_null(js(t1, "audience"));
    assert_int_equal(json_integer_value(json_object_get(t1, "expirationSeconds")), 600);

    json_t *req = kl_token_request(pod, t0);
    assert_string_equal(js(req, "kind"), "TokenRequest");
    assert_string_equal(js(req, "apiVersion"), "authentication.k8s.io/v1");
    assert_string_equal(json_string_value(json_array_get(jget(req, "spec.audiences"), 0)),
                        "istio-ca");
    assert_string_equal(js(req, "spec.boundObjectRef.kind"), "Pod");
    assert_string_equal(js(req, "spec.boundObjectRef.name"), "wp-1");
    assert_string_equal(js(req, "spec.boundObjectRef.uid"), "u9");
    json_decref(req);
    req = kl_token_request(pod, t1);
    assert_null(jget(req, "spec.audiences")); /* the API server's own */
    json_decref(req);
    json_decref(v);
    json_decref(pod);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_index),      cmocka_unit_test(test_conflist),
        cmocka_unit_test(test_cni_env_args),    cmocka_unit_test(test_plugin_conf),
        cmocka_unit_test(test_result_ip),       cmocka_unit_test(test_pod_spec),
        cmocka_unit_test(test_status_patch),    cmocka_unit_test(test_node_status),
        cmocka_unit_test(test_api_endpoints),   cmocka_unit_test(test_token_volumes),
        cmocka_unit_test(test_configmap_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
