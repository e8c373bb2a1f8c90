/*
 * pod_spec.c - what a pod's container runs, from its Pod object alone (shared
 * by the embedded cluster's pods and the kubelet's, unit tested): argv from
 * command and args with $(VAR) expanded, the environment a kubelet gives
 * (HOSTNAME, the Services' variables, env with value or fieldRef), PATH with
 * the build's bin directory first so samples and meshctl are found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"

static void
env_add(json_t *env, const char *k, const char *v)
{
    char *kv = xasprintf("%s=%s", k, v);
    json_array_append_new(env, json_string(kv));
    free(kv);
}

/* Kubernetes service variables: <NAME>_SERVICE_HOST and _PORT[_<PORT NAME>]. */
static void
service_env(const json_t *svcs, const char *ns, json_t *env)
{
    size_t i, j;
    json_t *r, *p;

    json_array_foreach(svcs, i, r) {
        const char *ip = js(r, "object.spec.clusterIP");
        const char *name = js(r, "object.metadata.name");
        if (ip == NULL || name == NULL || cl_vip_index(ip) < 0 ||
            strcmp(jsd(r, "object.metadata.namespace", "default"), ns) != 0)
            continue;
        char *up = xstrdup(name);
        for (char *q = up; *q; q++)
            *q = *q == '-' || *q == '.' ? '_' : (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
        char key[512], val[32];
        snprintf(key, sizeof(key), "%s_SERVICE_HOST", up);
        env_add(env, key, ip);
        json_array_foreach(jget(r, "object.spec.ports"), j, p) {
            snprintf(val, sizeof(val), "%lld",
                     (long long)json_integer_value(json_object_get(p, "port")));
            if (j == 0) {
                snprintf(key, sizeof(key), "%s_SERVICE_PORT", up);
                env_add(env, key, val);
            }
            const char *pn = js(p, "name");
            if (pn != NULL) {
                char *pu = xstrdup(pn);
                for (char *q = pu; *q; q++)
                    *q = *q == '-' ? '_' : (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
                snprintf(key, sizeof(key), "%s_SERVICE_PORT_%s", up, pu);
                env_add(env, key, val);
                free(pu);
            }
        }
        free(up);
    }
}

/* A fieldRef's value, or NULL when not supported. */
static const char *
field_ref(const json_t *pod, const char *path)
{
    static const char *const plain[] = {"metadata.name", "metadata.namespace",      "metadata.uid",
                                        "spec.nodeName", "spec.serviceAccountName", "status.podIP",
                                        "status.hostIP"};
    for (size_t i = 0; i < ARRAY_LEN(plain); i++)
        if (strcmp(path, plain[i]) == 0)
            return js(pod, path);
    if (strcmp(path, "status.podIPs") == 0)
        return js(pod, "status.podIP");
    const char *maps[] = {"metadata.labels['", "metadata.annotations['"};
    for (size_t i = 0; i < ARRAY_LEN(maps); i++) {
        size_t n = strlen(maps[i]), l = strlen(path);
        if (strncmp(path, maps[i], n) == 0 && l > n + 2 && strcmp(path + l - 2, "']") == 0) {
            char key[320];
            snprintf(key, sizeof(key), "%.*s", (int)(l - n - 2), path + n);
            json_t *m = jget(pod, i == 0 ? "metadata.labels" : "metadata.annotations");
            return json_string_value(json_object_get(m, key));
        }
    }
    return NULL;
}

void
pod_spec(const json_t *pod, const json_t *svcs, const char *bindir, const char *home, json_t *run)
{
    const char *ns = jsd(pod, "metadata.namespace", "default");
    const char *name = jsd(pod, "metadata.name", "");
    const json_t *ctr = json_array_get(jget(pod, "spec.containers"), 0);
    json_t *env = json_array(), *argv = json_array();
    size_t i;
    json_t *v;

    char *path =
        xasprintf("%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", bindir);
    env_add(env, "PATH", path);
    env_add(env, "HOME", home);
    env_add(env, "HOSTNAME", name);
    env_add(env, "POD_NAME", name);
    env_add(env, "POD_NAMESPACE", ns);
    free(path);
    service_env(svcs, ns, env);
    json_array_foreach(json_object_get(ctr, "env"), i, v) {
        const char *k = js(v, "name");
        const char *val = js(v, "value");
        const char *ref = js(v, "valueFrom.fieldRef.fieldPath");
        if (k == NULL)
            continue;
        if (val != NULL) {
            char *x = cl_expand(val, env);
            env_add(env, k, x);
            free(x);
        } else if (ref != NULL && field_ref(pod, ref) != NULL) {
            env_add(env, k, field_ref(pod, ref));
        } else if (json_object_get(v, "valueFrom") != NULL) {
            fprintf(stderr, "Warning: pod %s/%s: env %s: only fieldRef is supported locally\n", ns,
                    name, k);
        } else {
            env_add(env, k, "");
        }
    }
    static const char *const parts[] = {"command", "args"};
    for (size_t p = 0; p < ARRAY_LEN(parts); p++)
        json_array_foreach(json_object_get(ctr, parts[p]), i, v) {
            char *x = cl_expand(json_is_string(v) ? json_string_value(v) : "", env);
            json_array_append_new(argv, json_string(x));
            free(x);
        }
    if (json_array_size(json_object_get(jget(pod, "spec"), "containers")) > 1)
        fprintf(stderr, "Warning: pod %s/%s: only the first container runs locally\n", ns, name);
    json_object_set_new(run, "env", env);
    json_object_set_new(run, "argv", argv);
}
