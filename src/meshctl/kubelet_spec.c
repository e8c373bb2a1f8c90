/*
 * kubelet_spec.c - the kubelet's pure parts (tests/unit/lib/test_kubelet.c):
 * the node's CNI configuration and how a runtime calls it, the address a
 * chain's result gives the pod, the Node's and a pod's status bodies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "base/base.h"
#include "cni/cni.h"
#include "kubelet.h"

int
kl_node_index(const char *node)
{
    if (node == NULL || strncmp(node, "node-", 5) != 0)
        return -1;
    char *end;
    long k = strtol(node + 5, &end, 10);
    if (end == node + 5 || *end != '\0' || k < 1 || k > CLUSTER_MAX_NODES || node[5] == '0')
        return -1;
    return (int)k;
}

json_t *
kl_conflist(int k, const char *ipam_dir, const char *sock)
{
    char subnet[32], gw[32];
    snprintf(subnet, sizeof(subnet), "198.18.%d.0/24", k);
    snprintf(gw, sizeof(gw), "198.18.%d.1", k);
    /*
     * ptp makes the links net_create's routing expects: a /32 route to each pod
     * on the node, the gateway .1 on the node's end, the pod's default route via
     * it; so every packet, same node or not, crosses the node's nat table.
     */
    return json_pack("{s:s, s:s, s:[{s:s, s:b, s:i, s:{s:s, s:[[{s:s, s:s}]], s:[{s:s}], s:s}},"
                     " {s:s, s:s, s:i, s:[s]}]}",
                     "cniVersion", "1.0.0", "name", KL_NETWORK, "plugins", "type", "ptp", "ipMasq",
                     0, "mtu", 1500, "ipam", "type", "host-local", "ranges", "subnet", subnet,
                     "gateway", gw, "routes", "dst", "0.0.0.0/0", "dataDir", ipam_dir, "type",
                     "amesh-cni", "agentSocket", sock, "timeoutMs", 10000, "excludeNamespaces",
                     "kube-system");
}

char *
kl_cni_args(const char *ns, const char *name, const char *uid)
{
    return xasprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;"
                     "K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
                     ns, name, uid, uid);
}

char **
kl_cni_env(const char *cmd, const char *id, const char *netns, const char *args, const char *path)
{
    char **v = xcalloc(10, sizeof(*v));
    size_t n = 0;
    v[n++] = xasprintf("CNI_COMMAND=%s", cmd);
    v[n++] = xasprintf("CNI_CONTAINERID=%s", id);
    if (netns != NULL)
        v[n++] = xasprintf("CNI_NETNS=%s", netns);
    v[n++] = xstrdup("CNI_IFNAME=eth0");
    v[n++] = xasprintf("CNI_ARGS=%s", args);
    v[n++] = xasprintf("CNI_PATH=%s", path);
    v[n++] = xstrdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    /* The sanitizer builds' plugins (amesh-cni) keep the test's settings. */
    static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS"};
    for (size_t i = 0; i < ARRAY_LEN(keep); i++)
        if (getenv(keep[i]) != NULL)
            v[n++] = xasprintf("%s=%s", keep[i], getenv(keep[i]));
    return v;
}

void
kl_strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

json_t *
kl_plugin_conf(const json_t *list, size_t i, const json_t *prev)
{
    json_t *conf = json_deep_copy(json_array_get(json_object_get(list, "plugins"), i));
    if (!json_is_object(conf)) {
        json_decref(conf);
        return NULL;
    }
    json_object_set(conf, "name", json_object_get(list, "name"));
    json_object_set(conf, "cniVersion", json_object_get(list, "cniVersion"));
    if (prev != NULL)
        json_object_set_new(conf, "prevResult", json_deep_copy(prev));
    return conf;
}

int
kl_result_ip(const json_t *result, char *ip, size_t iplen, char *err, size_t errlen)
{
    /* lib/cni reads a result where a chained plugin does: as a configuration's prevResult. */
    json_t *conf = json_pack("{s:s, s:s, s:s, s:O}", "cniVersion", CNI_VERSION_LATEST, "name",
                             KL_NETWORK, "type", "kubelet", "prevResult", result);
    char *text = conf != NULL ? json_dumps(conf, JSON_COMPACT) : NULL;
    struct cni_conf c;
    int rc = -1;

    json_decref(conf);
    memset(&c, 0, sizeof(c));
    if (text == NULL) {
        snprintf(err, errlen, "the result is not an object");
    } else if (cni_conf_parse(&c, text, strlen(text), err, errlen) != CNI_OK) {
        /* err says why */
    } else {
        for (size_t i = 0; i < c.n_ips && rc < 0; i++)
            if (strchr(c.ips[i], ':') == NULL && strlen(c.ips[i]) < iplen) {
                snprintf(ip, iplen, "%s", c.ips[i]);
                rc = 0;
            }
        if (rc < 0)
            snprintf(err, errlen, "the result has no IPv4 address");
    }
    cni_conf_free(&c);
    free(text);
    return rc;
}

static json_t *
condition(const char *type, bool ok, const char *since, const char *reason)
{
    json_t *c = json_pack("{s:s, s:s, s:n, s:s?}", "type", type, "status", ok ? "True" : "False",
                          "lastProbeTime", "lastTransitionTime", since);
    if (!ok && reason != NULL)
        json_object_set_new(c, "reason", json_string(reason));
    return c;
}

/* The PodScheduled condition's time as the scheduler wrote it (else |dflt|). */
static const char *
scheduled_at(const json_t *pod, const char *dflt)
{
    size_t i;
    json_t *c;
    json_array_foreach(jget(pod, "status.conditions"), i,
                       c) if (strcmp(jsd(c, "type", ""), "PodScheduled") == 0 &&
                              js(c, "lastTransitionTime")) return js(c, "lastTransitionTime");
    return dflt;
}

json_t *
kl_status_patch(const json_t *pod, const struct kl_state *s)
{
    const json_t *ctr = json_array_get(jget(pod, "spec.containers"), 0);
    const char *since = s->ready_since != NULL ? s->ready_since : s->start;
    json_t *st = json_object();
    json_t *cs = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:i, s:{}, s:{}}", "name",
                           jsd(ctr, "name", "main"), "image", jsd(ctr, "image", "none"), "imageID",
                           "", "containerID", "amesh://", "ready", s->ready, "started", s->running,
                           "restartCount", s->restarts, "state", "lastState");
    char cid[160];
    snprintf(cid, sizeof(cid), "amesh://%s", jsd(pod, "metadata.uid", ""));
    json_object_set_new(cs, "containerID", json_string(cid));
    json_t *state = json_object_get(cs, "state");
    if (s->running)
        json_object_set_new(state, "running", json_pack("{s:s}", "startedAt", s->started_at));
    else if (s->terminated && s->finished_at != NULL && strcmp(s->phase, "Running") != 0)
        json_object_set_new(state, "terminated",
                            json_pack("{s:i, s:s, s:s?, s:s, s:s}", "exitCode", s->exit_code,
                                      "reason", s->reason, "startedAt", s->last_started,
                                      "finishedAt", s->finished_at, "containerID", cid));
    else
        json_object_set_new(state, "waiting", json_pack("{s:s}", "reason", s->reason));
    if (s->finished_at != NULL && (s->running || strcmp(s->phase, "Running") == 0))
        json_object_set_new(json_object_get(cs, "lastState"), "terminated",
                            json_pack("{s:i, s:s, s:s?, s:s, s:s}", "exitCode", s->exit_code,
                                      "reason", s->exit_code == 0 ? "Completed" : "Error",
                                      "startedAt", s->last_started, "finishedAt", s->finished_at,
                                      "containerID", cid));

    json_object_set_new(st, "phase", json_string(s->phase));
    json_object_set_new(st, "hostIP", json_string(s->host_ip));
    if (s->ip != NULL) {
        json_object_set_new(st, "podIP", json_string(s->ip));
        json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", s->ip));
    }
    json_object_set_new(st, "startTime", json_string(s->start));
    json_t *conds = json_array();
    json_array_append_new(conds, condition("Initialized", true, s->start, NULL));
    json_array_append_new(conds, condition("Ready", s->ready, since, "ContainersNotReady"));
    json_array_append_new(conds,
                          condition("ContainersReady", s->ready, since, "ContainersNotReady"));
    json_array_append_new(conds,
                          condition("PodScheduled", true, scheduled_at(pod, s->start), NULL));
    json_object_set_new(st, "conditions", conds);
    json_object_set_new(st, "containerStatuses", json_pack("[o]", cs));
    return json_pack("{s:o}", "status", st);
}

json_t *
kl_node_status(int k, const char *node, const char *since, const char *now)
{
    char ip[32];
    snprintf(ip, sizeof(ip), "198.18.0.%d", 10 + k);
    json_t *res = json_pack("{s:s, s:s, s:s, s:s}", "cpu", "4", "memory", "8Gi", "pods", "110",
                            "ephemeral-storage", "20Gi");
    json_t *conds = json_array();
    static const char *const pressure[][2] = {{"MemoryPressure", "KubeletHasSufficientMemory"},
                                              {"DiskPressure", "KubeletHasNoDiskPressure"},
                                              {"PIDPressure", "KubeletHasSufficientPID"}};
    for (size_t i = 0; i < ARRAY_LEN(pressure); i++)
        json_array_append_new(
            conds, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", pressure[i][0], "status",
                             "False", "reason", pressure[i][1], "message", "amesh local node",
                             "lastHeartbeatTime", now, "lastTransitionTime", since));
    json_array_append_new(conds, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "Ready",
                                           "status", "True", "reason", "KubeletReady", "message",
                                           "kubelet is posting ready status (meshctl __kubelet)",
                                           "lastHeartbeatTime", now, "lastTransitionTime", since));
    return json_pack(
        "{s:{s:o, s:o, s:[{s:s, s:s}, {s:s, s:s}], s:o, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s,"
        " s:s, s:s, s:s}}}",
        "status", "capacity", res, "allocatable", json_deep_copy(res), "addresses", "type",
        "InternalIP", "address", ip, "type", "Hostname", "address", node, "conditions", conds,
        "nodeInfo", "machineID", "", "systemUUID", "", "bootID", "", "kernelVersion", "", "osImage",
        "amesh local cluster", "containerRuntimeVersion", "amesh://1", "kubeletVersion", "v1.20.2",
        "kubeProxyVersion", "v1.20.2", "operatingSystem", "linux", "architecture", "amd64");
}

json_t *
kl_endpoints_from_api(const json_t *ep, const json_t *port)
{
    const char *want = jsd(port, "name", "");
    json_t *eps = json_array();
    size_t i, j, k;
    json_t *sub, *p, *a;

    /* The endpoints controller names each port as the Service does (one unnamed port: ""). */
    json_array_foreach(json_object_get(ep, "subsets"), i, sub) {
        json_array_foreach(json_object_get(sub, "ports"), j, p) {
            json_int_t n = json_integer_value(json_object_get(p, "port"));
            if (strcmp(jsd(p, "name", ""), want) != 0 || n <= 0 || n > 65535)
                continue;
            json_array_foreach(json_object_get(sub, "addresses"), k, a) {
                const char *ip = js(a, "ip");
                if (ip != NULL && strlen(ip) < 40)
                    json_array_append_new(eps, json_pack("{s:s, s:I}", "ip", ip, "port", n));
            }
        }
    }
    return eps;
}

void
kl_micro_time(char *out, size_t outlen)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
}

/* A relative path without "..", "." or empty components. */
static bool
clean_rel(const char *p)
{
    if (p == NULL || p[0] == '\0' || p[0] == '/' || strlen(p) > 255)
        return false;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += n + (e != NULL ? 1 : 0);
        if (e != NULL && *s == '\0')
            return false;
    }
    return true;
}

/* A file mode of a volume source: 0 to 0777, else |dflt|. */
static json_int_t
file_mode(const json_t *m, json_int_t dflt)
{
    json_int_t v = json_is_integer(m) ? json_integer_value(m) : -1;
    return v >= 0 && v <= 0777 ? v : dflt;
}

/* A configMap volume (or projected source) as the kubelet keeps it: items checked. */
static void
cm_source(json_t *cms, const json_t *cm)
{
    const char *name = js(cm, "name");
    if (name == NULL || name[0] == '\0' || strlen(name) > 253 || strchr(name, '/') != NULL ||
        json_array_size(cms) >= KL_CM_MAX_SOURCES)
        return;
    json_int_t dmode = file_mode(json_object_get(cm, "defaultMode"), 0644);
    json_t *items = NULL, *it;
    size_t i;
    if (json_is_array(json_object_get(cm, "items"))) {
        items = json_array();
        json_array_foreach(json_object_get(cm, "items"), i, it)
        {
            if (js(it, "key") == NULL || !clean_rel(js(it, "path")) ||
                json_array_size(items) >= KL_CM_MAX_FILES)
                continue;
            json_array_append_new(items, json_pack("{s:s, s:s, s:I}", "key", js(it, "key"), "path",
                                                   js(it, "path"), "mode",
                                                   file_mode(json_object_get(it, "mode"), dmode)));
        }
    }
    json_array_append_new(cms, json_pack("{s:s, s:b, s:I, s:o?}", "name", name, "optional",
                                         json_is_true(json_object_get(cm, "optional")),
                                         "defaultMode", dmode, "items", items));
}

json_t *
kl_configmap_files(const json_t *src, const json_t *cm, char *err, size_t errlen)
{
    const json_t *data = json_object_get(cm, "data");
    json_t *out = json_array(), *it;
    size_t total = 0, i;
    const char *key;
    json_t *val;

    if (cm == NULL) {
        if (json_is_true(json_object_get(src, "optional")))
            return out;
        snprintf(err, errlen, "configmap \"%s\" not found", jsd(src, "name", ""));
        json_decref(out);
        return NULL;
    }
    if (json_is_array(json_object_get(src, "items"))) {
        json_array_foreach(json_object_get(src, "items"), i, it)
        {
            val = json_object_get(data, js(it, "key"));
            if (!json_is_string(val)) {
                if (json_is_true(json_object_get(src, "optional")))
                    continue;
                snprintf(err, errlen, "configmap \"%s\" has no key \"%s\"", jsd(src, "name", ""),
                         js(it, "key"));
                json_decref(out);
                return NULL;
            }
            total += json_string_length(val);
            json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "path", js(it, "path"), "data",
                                                 val, "mode", json_object_get(it, "mode")));
        }
    } else {
        json_object_foreach((json_t *)data, key, val)
        {
            /* A key is a file name: [-._a-zA-Z0-9]+ (the API server checks it; so do we). */
            if (!json_is_string(val) || !clean_rel(key) || strchr(key, '/') != NULL)
                continue;
            total += json_string_length(val);
            json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "path", key, "data", val,
                                                 "mode", json_object_get(src, "defaultMode")));
        }
    }
    if (json_array_size(out) > KL_CM_MAX_FILES || total > KL_CM_MAX_BYTES) {
        snprintf(err, errlen, "configmap \"%s\": %zu files, %zu bytes (caps %d, %d)",
                 jsd(src, "name", ""), json_array_size(out), total, KL_CM_MAX_FILES,
                 KL_CM_MAX_BYTES);
        json_decref(out);
        return NULL;
    }
    return out;
}

json_t *
kl_token_volumes(const json_t *pod)
{
    const json_t *ctr = json_array_get(jget(pod, "spec.containers"), 0);
    json_t *out = json_array();
    size_t i, j, k;
    json_t *m, *v, *src;

    json_array_foreach(json_object_get(ctr, "volumeMounts"), i, m) {
        const char *vn = js(m, "name"), *mp = js(m, "mountPath");
        if (vn == NULL || mp == NULL || mp[0] != '/' || strlen(mp) > 255 ||
            (mp[1] != '\0' && !clean_rel(mp + 1)) || strchr(vn, '/') != NULL || vn[0] == '.')
            continue;
        json_array_foreach(jget(pod, "spec.volumes"), j, v) {
            if (strcmp(jsd(v, "name", ""), vn) != 0)
                continue;
            json_t *toks = json_array(), *cms = json_array();
            if (json_object_get(v, "configMap") != NULL)
                cm_source(cms, json_object_get(v, "configMap"));
            json_array_foreach(jget(v, "projected.sources"), k, src) {
                const json_t *t = json_object_get(src, "serviceAccountToken");
                const char *path = js(t, "path");
                if (json_object_get(src, "configMap") != NULL)
                    cm_source(cms, json_object_get(src, "configMap"));
                if (t == NULL || !clean_rel(path))
                    continue;
                json_t *exp = json_object_get(t, "expirationSeconds");
                json_int_t secs = json_is_integer(exp) ? json_integer_value(exp) : 3600;
                json_array_append_new(toks, json_pack("{s:s, s:s?, s:I}", "path", path, "audience",
                                                      js(t, "audience"), "expirationSeconds",
                                                      secs < 600 ? (json_int_t)600 : secs));
            }
            if (json_array_size(toks) > 0 || json_array_size(cms) > 0)
                json_array_append_new(out,
                                      json_pack("{s:s, s:s, s:o, s:o}", "volume", vn, "mountPath",
                                                mp, "tokens", toks, "configMaps", cms));
            else {
                json_decref(toks);
                json_decref(cms);
            }
        }
    }
    return out;
}

json_t *
kl_token_request(const json_t *pod, const json_t *tok)
{
    json_t *spec = json_pack("{s:I, s:{s:s, s:s, s:s, s:s}}", "expirationSeconds",
                             json_integer_value(json_object_get(tok, "expirationSeconds")),
                             "boundObjectRef", "kind", "Pod", "apiVersion", "v1", "name",
                             jsd(pod, "metadata.name", ""), "uid", jsd(pod, "metadata.uid", ""));
    /* No audience: the API server's own (its first --api-audiences). */
    if (js(tok, "audience") != NULL)
        json_object_set_new(spec, "audiences", json_pack("[s]", js(tok, "audience")));
    return json_pack("{s:s, s:s, s:o}", "apiVersion", "authentication.k8s.io/v1", "kind",
                     "TokenRequest", "spec", spec);
}
