/*
 * cluster_pods.c - pods of the local cluster: what the scheduler, the
 * kubelet and the CNI plugin would do, in one synchronous step each.
 *
 * Creating a pod: the next node round-robin, an address from the node's
 * subnet, a network namespace wired to the node, /etc/netns/<netns>/hosts
 * and resolv.conf, the Pod object (with spec.nodeName, status.podIPs, Ready
 * and the amesh.io/netns annotation) written to config/ for meshd and
 * mesh-cni, then the supervisor (cluster_podrun.c) that runs the first
 * container's command in the namespace. Deleting undoes it in reverse.
 * Deployments own pods through a ReplicaSet name "<deploy>-<template hash>"
 * and are reconciled: pods of another template go, missing replicas come.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "k8s/k8s.h"

char *
pods_dir(const struct cluster *c, const char *ns, const char *name)
{
    return cl_path(c, "pods/%s_%s", ns, name);
}

json_t *
pods_run_info(const struct cluster *c, const char *ns, const char *name)
{
    char *p = cl_path(c, "pods/%s_%s/run.json", ns, name);
    json_t *r = cl_read_json(p);
    free(p);
    return r;
}

int
pods_probe_port(const json_t *ctr, const json_t *port)
{
    if (json_is_integer(port))
        return (int)json_integer_value(port);
    const char *pn = json_string_value(port);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(ctr, "ports"), i, p)
        if (pn != NULL && strcmp(jsd(p, "name", ""), pn) == 0)
            return (int)json_integer_value(json_object_get(p, "containerPort"));
    return -1;
}

/*
 * As the kubelet's readinessProbe, httpGet only: a running pod is ready when its first
 * container has none, or when a GET of the probe's path on the pod's address answers 200.
 */
static bool
probe_ready(const struct cluster *c, const char *ns, const char *name)
{
    json_t *rec = rec_get(c, kind_by_name("Pod"), ns, name);
    const json_t *ctr = json_array_get(jget(json_object_get(rec, "object"), "spec.containers"), 0);
    const json_t *get = jget(json_object_get(ctr, "readinessProbe"), "httpGet");
    bool ok = true;

    if (get != NULL) {
        json_t *run = pods_run_info(c, ns, name);
        int port = pods_probe_port(ctr, json_object_get(get, "port"));
        const char *netns = js(run, "netns"), *ip = js(run, "ip");
        ok = false;
        if (netns != NULL && ip != NULL && port > 0 && port < 65536) {
            char hp[80];
            snprintf(hp, sizeof(hp), "%s:%d", ip, port);
            ok = sys_http_ok_in(netns, hp, jsd(get, "path", "/"));
        }
        json_decref(run);
    }
    json_decref(rec);
    return ok;
}

const char *
pods_status(const struct cluster *c, const char *ns, const char *name, bool *ready)
{
    char label[600];
    pid_t pid;
    unsigned long long start;

    *ready = false;
    snprintf(label, sizeof(label), "pod_%s_%s", ns, name);
    char *ep = cl_path(c, "pods/%s_%s/exit.json", ns, name);
    json_t *ex = cl_read_json(ep);
    free(ep);
    if (ex != NULL) {
        bool ok = json_integer_value(json_object_get(ex, "exitCode")) == 0 &&
                  json_integer_value(json_object_get(ex, "signal")) == 0;
        json_decref(ex);
        return ok ? "Completed" : "Error";
    }
    if (ledger_proc_get(c, label, &pid, &start) == 0 && proc_alive(pid, start)) {
        *ready = probe_ready(c, ns, name);
        return "Running";
    }
    return "Unknown";
}

/* Host numbers in use on node |k|. */
static void
used_hosts(const struct cluster *c, int k, bool used[256])
{
    json_t *pods = rec_list(c, kind_by_name("Pod"), NULL);
    size_t i;
    json_t *r;

    memset(used, 0, 256 * sizeof(bool));
    used[0] = used[1] = used[255] = true;
    json_array_foreach(pods, i, r) {
        json_t *run = pods_run_info(c, jsd(r, "object.metadata.namespace", ""),
                                    jsd(r, "object.metadata.name", ""));
        json_int_t node = json_integer_value(json_object_get(run, "nodeIndex"));
        json_int_t host = json_integer_value(json_object_get(run, "host"));
        if (node == k && host > 0 && host < 256)
            used[host] = true;
        json_decref(run);
    }
    json_decref(pods);
}

/*
 * Picks the node (|want| when the pod names one in spec.nodeName, else
 * round-robin over the cluster) and the address. Returns 0 or -1.
 */
static int
place(struct cluster *c, const char *want, int *k, int *host, char *err, size_t errlen)
{
    json_int_t next = json_integer_value(json_object_get(c->meta, "nextNode"));
    bool used[256];

    *k = 0;
    if (want != NULL && want[0] != '\0') {
        for (int i = 1; i <= c->n_nodes; i++) {
            char name[32];
            cl_node_name(i, name, sizeof(name));
            if (strcmp(name, want) == 0)
                *k = i;
        }
        if (*k == 0) {
            snprintf(err, errlen, "spec.nodeName: no node \"%s\" in this cluster", want);
            return -1;
        }
    } else {
        *k = (int)(next % c->n_nodes) + 1;
        json_object_set_new(c->meta, "nextNode", json_integer(next + 1));
    }
    char key[32];
    snprintf(key, sizeof(key), "nextHost%d", *k);
    int start = (int)json_integer_value(json_object_get(c->meta, key));
    used_hosts(c, *k, used);
    *host = cl_ip_alloc(used, start);
    if (*host < 0) {
        snprintf(err, errlen, "node-%d has no free address left", *k);
        return -1;
    }
    json_object_set_new(c->meta, key, json_integer(*host + 1));
    return cluster_save_meta(c) < 0 ? -1 : 0;
}

void
pods_netns_name(const struct cluster *c, const char *ns, const char *name, char *out, size_t outlen)
{
    cl_pod_netns_name(c->prefix, ns, name, out, outlen);
    char *path = xasprintf("/run/netns/%s", out);
    struct stat st;
    bool taken = stat(path, &st) == 0;
    free(path);
    if (taken) {
        char sfx[6];
        sys_random_suffix(sfx);
        snprintf(out, outlen, "%s-pod-%s", c->prefix, sfx);
    }
}

/* The live Pod object from manifest |pod|. */
static void
fill_pod(json_t *pod, const char *netns, const char *node, const char *ip, const char *host_ip)
{
    char uid[37], now[32];
    sys_uid(uid);
    cl_rfc3339((long long)time(NULL), now, sizeof(now));
    json_t *meta = jobj(pod, "metadata");
    json_object_set_new(meta, "uid", json_string(uid));
    json_object_set_new(meta, "creationTimestamp", json_string(now));
    char *path = xasprintf("/run/netns/%s", netns);
    json_object_set_new(jobj(pod, "metadata.annotations"), K8S_ANNOTATION_NETNS, json_string(path));
    free(path);
    json_t *spec = jobj(pod, "spec");
    json_object_set_new(spec, "nodeName", json_string(node));
    if (js(spec, "serviceAccountName") == NULL)
        json_object_set_new(spec, "serviceAccountName",
                            json_string(jsd(spec, "serviceAccount", "default")));
    json_object_set_new(
        pod, "status",
        json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}], s:s, s:[{s:s}], s:s, s:s}",
                  "phase", "Running", "conditions", "type", "PodScheduled", "status", "True",
                  "type", "Initialized", "status", "True", "type", "Ready", "status", "True",
                  "podIP", ip, "podIPs", "ip", ip, "hostIP", host_ip, "startTime", now));
}

int
pods_create(struct cluster *c, json_t *pod, const json_t *applied, const char *owner, char *err,
            size_t errlen)
{
    const char *ns = jsd(pod, "metadata.namespace", "default");
    const char *name = jsd(pod, "metadata.name", "");
    char netns[128], node[32], ip[32], host_ip[32];
    int k, host;

    if (!json_is_array(jget(pod, "spec.containers")) ||
        !json_is_array(
            json_object_get(json_array_get(jget(pod, "spec.containers"), 0), "command"))) {
        snprintf(err, errlen,
                 "pod %s/%s: spec.containers[0].command is required "
                 "(the local cluster runs commands, it pulls no image)",
                 ns, name);
        return -1;
    }
    if (place(c, js(pod, "spec.nodeName"), &k, &host, err, errlen) < 0)
        return -1;
    cl_node_name(k, node, sizeof(node));
    snprintf(ip, sizeof(ip), "198.18.%d.%d", k, host);
    snprintf(host_ip, sizeof(host_ip), "198.18.0.%d", 10 + k);
    pods_netns_name(c, ns, name, netns, sizeof(netns));

    char *dir = pods_dir(c, ns, name);
    char *root = xasprintf("%s/root", dir);
    int rc = -1;
    json_t *run = NULL;
    cl_rmtree(dir);
    if (cl_mkdirs(root, 0755) < 0) {
        snprintf(err, errlen, "%s: %s", root, strerror(errno));
        goto out;
    }
    run = json_pack("{s:s, s:s, s:i, s:i, s:s, s:i, s:s?}", "netns", netns, "node", node,
                    "nodeIndex", k, "host", host, "ip", ip, "restarts", 0, "owner", owner);
    char *runp = xasprintf("%s/run.json", dir);
    int wrc = cl_write_json(runp, run);
    free(runp);
    if (wrc < 0) {
        snprintf(err, errlen, "writing %s/run.json", dir);
        goto fail_dir;
    }
    if (net_pod_add(c, k, host, netns, err, errlen) < 0)
        goto fail_net;
    fill_pod(pod, netns, node, ip, host_ip);
    if (podrun_prepare(c, pod, NULL, run, err, errlen) < 0)
        goto fail_net;
    json_t *rec = json_pack("{s:O?, s:O}", "applied", applied, "object", pod);
    wrc = rec_put(c, kind_by_name("Pod"), rec);
    json_decref(rec);
    if (wrc < 0) {
        snprintf(err, errlen, "writing pod %s/%s: %s", ns, name, strerror(-wrc));
        goto fail_rec;
    }
    if (podrun_start(c, ns, name, err, errlen) < 0)
        goto fail_rec;
    rc = 0;
    goto out;
fail_rec:
    rec_del(c, kind_by_name("Pod"), ns, name);
fail_net:
    net_pod_del(c, k, host, netns);
fail_dir:
    cl_rmtree(dir);
out:
    json_decref(run);
    free(dir);
    free(root);
    return rc;
}

int
pods_delete(struct cluster *c, const char *ns, const char *name)
{
    char label[600];
    pid_t pid;
    unsigned long long start;
    int rc = 0;

    json_t *run = pods_run_info(c, ns, name);
    /* First out of the mesh (mesh-cni and ztunnel follow config/), then stopped, then unwired. */
    rec_del(c, kind_by_name("Pod"), ns, name);
    snprintf(label, sizeof(label), "pod_%s_%s", ns, name);
    if (ledger_proc_get(c, label, &pid, &start) == 0) {
        if (proc_stop_group(pid, start, CLUSTER_STOP_MS) < 0) {
            fprintf(stderr, "meshctl: pod %s/%s: process group %d would not stop\n", ns, name,
                    (int)pid);
            rc = -1;
        } else {
            ledger_proc_del(c, label);
        }
    }
    if (run != NULL) {
        net_pod_del(c, (int)json_integer_value(json_object_get(run, "nodeIndex")),
                    (int)json_integer_value(json_object_get(run, "host")), jsd(run, "netns", ""));
    }
    if (rc == 0) {
        char *dir = pods_dir(c, ns, name);
        cl_rmtree(dir);
        free(dir);
    }
    json_decref(run);
    return rc;
}

/* Pods owned by Deployment |ns|/|name|: records, newest last. */
static json_t *
owned(const struct cluster *c, const char *ns, const char *name)
{
    json_t *pods = rec_list(c, kind_by_name("Pod"), ns);
    json_t *out = json_array();
    size_t i;
    json_t *r;

    json_array_foreach(pods, i, r) {
        json_t *run = pods_run_info(c, ns, jsd(r, "object.metadata.name", ""));
        const char *o = js(run, "owner");
        if (o != NULL && strcmp(o, name) == 0)
            json_array_append(out, r);
        json_decref(run);
    }
    json_decref(pods);
    return out;
}

void
pods_delete_owned(struct cluster *c, const char *ns, const char *name)
{
    json_t *pods = owned(c, ns, name);
    size_t i;
    json_t *r;
    json_array_foreach(pods, i, r)
        pods_delete(c, ns, jsd(r, "object.metadata.name", ""));
    json_decref(pods);
}

int
pods_reconcile_deployment(struct cluster *c, const json_t *rec, char *err, size_t errlen)
{
    const json_t *dep = json_object_get(rec, "object");
    const char *ns = jsd(dep, "metadata.namespace", "default");
    const char *name = jsd(dep, "metadata.name", "");
    json_t *rv = jget(dep, "spec.replicas");
    json_int_t want = json_is_integer(rv) ? json_integer_value(rv) : 1;
    char hash[11];
    size_t i;
    json_t *r;

    cl_template_hash(jget(dep, "spec.template"), hash);
    json_t *pods = owned(c, ns, name);
    json_int_t have = 0;
    json_array_foreach(pods, i, r) {
        const char *ph = js(r, "object.metadata.labels.pod-template-hash");
        if (ph == NULL || strcmp(ph, hash) != 0 || have >= want)
            pods_delete(c, ns, jsd(r, "object.metadata.name", ""));
        else
            have++;
    }
    json_decref(pods);
    for (; have < want; have++) {
        char sfx[6];
        json_t *pod;
        for (int tries = 0;; tries++) {
            sys_random_suffix(sfx);
            pod = cl_pod_from_deployment(dep, hash, sfx);
            json_t *taken = rec_get(c, kind_by_name("Pod"), ns, jsd(pod, "metadata.name", ""));
            if (taken == NULL || tries > 20)
                break;
            json_decref(taken);
            json_decref(pod);
        }
        int rc = pods_create(c, pod, NULL, name, err, errlen);
        json_decref(pod);
        if (rc < 0)
            return -1;
    }
    return 0;
}

void
cluster_sync(struct cluster *c)
{
    pods_sync_dns(c);
    kp_sync(c);
}
