/*
 * kubelet_main.c - `meshctl __kubelet --node NAME`: the node side of the
 * cluster with a real control plane (kcluster.h), one per node, in the
 * node's network namespace.
 *
 * It registers its Node (InternalIP 198.18.0.(10+K), podCIDR 198.18.K.0/24,
 * capacity, Ready), renews the node Lease in kube-node-lease every 10 s and
 * the Ready heartbeat, so the node lifecycle controller never taints it. Three
 * reflectors (lib/kube: relists after an API server restart, never a removal
 * that did not happen): its pods (fieldSelector spec.nodeName), Services and
 * Endpoints. Pods: kubelet_pods.c. Services and Endpoints: the node's nat
 * table (kube_proxy.c's rendering, fed from the API objects) and the pods'
 * /etc/netns files. SIGTERM stops the kubelet alone: its pods keep running and
 * the next kubelet adopts them.
 */
#define LOG_SCOPE "kubelet"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/base.h"
#include "kcluster.h"
#include "kubelet.h"
#include "log/log.h"
#include "loop/loop.h"
#include "meshctl.h"

static const struct kube_resource R_PODS = {"v1", "pods", "Pod", true};
static const struct kube_resource R_SVCS = {"v1", "services", "Service", true};
static const struct kube_resource R_EPS = {"v1", "endpoints", "Endpoints", true};

static struct log_ratelimit rl_node, rl_lease, rl_net;

static void
key_of(const json_t *obj, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", jsd(obj, "metadata.namespace", ""),
             jsd(obj, "metadata.name", ""));
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *
kl_service_records(const struct kubelet *kl)
{
    size_t n = json_object_size(kl->svcs), i = 0;
    const char **keys = xcalloc(n + 1, sizeof(*keys));
    const char *k;
    json_t *v, *out = json_array();
    json_object_foreach(kl->svcs, k, v) keys[i++] = k;
    qsort(keys, i, sizeof(*keys), cmp_str); /* stable rules and files */
    for (size_t j = 0; j < i; j++)
        json_array_append_new(out,
                              json_pack("{s:O}", "object", json_object_get(kl->svcs, keys[j])));
    free(keys);
    return out;
}

/* ---- Services and Endpoints: the node's nat table and the pods' names ---- */

static json_t *
api_endpoints(void *arg, const json_t *svc, const json_t *port)
{
    struct kubelet *kl = arg;
    char key[512];
    key_of(svc, key, sizeof(key));
    return kl_endpoints_from_api(json_object_get(kl->eps, key), port);
}

static void
sync_net(struct kubelet *kl)
{
    json_t *svcs = kl_service_records(kl);
    char *rules = kp_render_services(svcs, api_endpoints, kl);
    char *path = cl_path(&kl->c, "nodes/%s/iptables.rules", kl->node);
    char err[512];
    if (kp_apply(NULL, path, rules, err, sizeof(err)) < 0) {
        log_warn_rl(&rl_net, "service rules: %s (retried)", err);
    } else {
        kl->dirty_net = false;
        kl_pods_sync_dns(kl);
    }
    free(path);
    free(rules);
    json_decref(svcs);
}

static void
map_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct kubelet *kl = arg;
    char key[512];
    key_of(obj, key, sizeof(key));
    if (r == &R_PODS) {
        kl_pod_upsert(kl, obj);
        return;
    }
    json_t *map = r == &R_SVCS ? kl->svcs : kl->eps;
    json_t *old = json_object_get(map, key);
    if (old != NULL && json_equal(old, obj))
        return;
    json_object_set_new(map, key, json_deep_copy(obj));
    kl->dirty_net = true;
}

static void
map_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct kubelet *kl = arg;
    char key[512];
    key_of(obj, key, sizeof(key));
    if (r == &R_PODS) {
        kl_pod_remove(kl, obj);
        return;
    }
    json_object_del(r == &R_SVCS ? kl->svcs : kl->eps, key);
    kl->dirty_net = true;
}

static void
synced(void *arg, const struct kube_resource *r, bool served)
{
    struct kubelet *kl = arg;
    (void)served;
    if (r == &R_PODS) {
        kl->pods_synced = true;
        kl_pods_synced(kl);
    } else if (r == &R_SVCS) {
        kl->svcs_synced = true;
    } else {
        kl->eps_synced = true;
    }
    kl->dirty_net = true;
}

static const struct kube_sink sink = {map_upsert, map_remove, synced};

/* ---- the Node and its Lease ---- */

static void
on_node(void *arg, int status, const json_t *body)
{
    struct kubelet *kl = arg;
    uint64_t now = loop_now_ms(kl->loop);
    kl->node_req = NULL;
    if (!kl->registered) {
        if ((status >= 200 && status < 300) || status == 409) {
            kl->registered = true;
            kl->next_status_ms = 0; /* Ready right away */
            log_info("node %s registered (%d)", kl->node, status);
            return;
        }
    } else if (status >= 200 && status < 300) {
        kl->next_status_ms = now + KL_STATUS_MS;
        return;
    } else if (status == 404) {
        kl->registered = false; /* deleted behind our back: register again */
    }
    kl->next_status_ms = now + 2000;
    log_warn_rl(&rl_node, "node %s: %s: %d %s", kl->node, kl->registered ? "status" : "register",
                status, jsd(body, "message", ""));
}

static void
node_tick(struct kubelet *kl)
{
    uint64_t now = loop_now_ms(kl->loop);
    if (kl->node_req != NULL || now < kl->next_status_ms)
        return;
    if (!kl->registered) {
        char cidr[32];
        snprintf(cidr, sizeof(cidr), "198.18.%d.0/24", kl->k);
        json_t *node =
            json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s, s:s}}, s:{s:s, s:[s]}}", "apiVersion", "v1",
                      "kind", "Node", "metadata", "name", kl->node, "labels",
                      "kubernetes.io/hostname", kl->node, "kubernetes.io/os", "linux",
                      "kubernetes.io/arch", "amd64", "spec", "podCIDR", cidr, "podCIDRs", cidr);
        kl->node_req = kube_request(kl->kc, "POST", "/api/v1/nodes", NULL, node, 0, on_node, kl);
        json_decref(node);
    } else {
        char now_s[32], *path = xasprintf("/api/v1/nodes/%s/status", kl->node);
        cl_rfc3339((long long)time(NULL), now_s, sizeof(now_s));
        json_t *st = kl_node_status(kl->k, kl->node, kl->ready_since, now_s);
        kl->node_req =
            kube_request(kl->kc, "PATCH", path, "application/merge-patch+json", st, 0, on_node, kl);
        json_decref(st);
        free(path);
    }
    if (kl->node_req == NULL)
        kl->next_status_ms = now + 2000;
}

static void lease_send(struct kubelet *kl, bool create);

static void
on_lease(void *arg, int status, const json_t *body)
{
    struct kubelet *kl = arg;
    uint64_t now = loop_now_ms(kl->loop);
    kl->lease_req = NULL;
    if (status >= 200 && status < 300) {
        kl->next_lease_ms = now + KL_LEASE_MS;
        return;
    }
    if (status == 404) { /* first renewal: create it */
        lease_send(kl, true);
        return;
    }
    kl->next_lease_ms = now + 2000;
    log_warn_rl(&rl_lease, "node lease: %d %s", status, jsd(body, "message", ""));
}

static void
lease_send(struct kubelet *kl, bool create)
{
    char now[40];
    kl_micro_time(now, sizeof(now));
    json_t *lease = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s}}", "apiVersion",
                              "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
                              kl->node, "namespace", "kube-node-lease", "spec", "holderIdentity",
                              kl->node, "leaseDurationSeconds", KL_LEASE_SECS, "renewTime", now);
    char *path = create ? xstrdup("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
                        : xasprintf("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                    "leases/%s",
                                    kl->node);
    if (!create)
        json_object_del(lease, "metadata");
    kl->lease_req =
        kube_request(kl->kc, create ? "POST" : "PATCH", path,
                     create ? NULL : "application/merge-patch+json", lease, 0, on_lease, kl);
    if (kl->lease_req == NULL)
        kl->next_lease_ms = loop_now_ms(kl->loop) + 2000;
    json_decref(lease);
    free(path);
}

/* ---- the loop ---- */

static struct loop_timer tick_timer;
static struct loop_io sig_io;

static void
on_tick(void *arg)
{
    struct kubelet *kl = arg;
    node_tick(kl);
    if (kl->registered && kl->lease_req == NULL && loop_now_ms(kl->loop) >= kl->next_lease_ms)
        lease_send(kl, false);
    kl_pods_tick(kl);
    if (kl->dirty_net && kl->svcs_synced && kl->eps_synced)
        sync_net(kl);
    loop_timer_start(kl->loop, &tick_timer, KL_TICK_MS, on_tick, kl);
}

static void
on_signal(void *arg, uint32_t events)
{
    struct kubelet *kl = arg;
    struct signalfd_siginfo si;
    (void)events;
    while (read(sig_io.fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_info("signal %u: stopping (the pods keep running)", si.ssi_signo);
            loop_stop(kl->loop);
        }
}

/* Writes the node's CNI configuration (nodes/NAME/cni/net.d/10-amesh.conflist). */
static int
write_conflist(struct kubelet *kl, char *err, size_t errlen)
{
    char *netd = cl_path(&kl->c, "nodes/%s/cni/net.d", kl->node);
    char *ipam = cl_path(&kl->c, "nodes/%s/cni/ipam", kl->node);
    char *sock = cl_path(&kl->c, "nodes/%s/cni/plugin.sock", kl->node);
    char *file = xasprintf("%s/10-amesh.conflist", netd);
    int rc = -1;

    kl->conflist = kl_conflist(kl->k, ipam, sock);
    if (cl_mkdirs(netd, 0755) < 0 || cl_mkdirs(ipam, 0700) < 0)
        snprintf(err, errlen, "%s: %s", netd, strerror(errno));
    else if (cl_write_json(file, kl->conflist) < 0)
        snprintf(err, errlen, "writing %s", file);
    else
        rc = 0;
    free(netd);
    free(ipam);
    free(sock);
    free(file);
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: meshctl __kubelet --node node-K [--kubeconfig PATH] [--log-level LEVEL]\n"
               "  (started by meshctl install --kubernetes in the node's network namespace;\n"
               "   MESH_CLUSTER_DIR names the cluster; the kubeconfig defaults to\n"
               "   nodes/node-K/kubelet.kubeconfig there)\n");
}

int
kubelet_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {"kubeconfig", required_argument, NULL, 'k'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *node = NULL, *kubeconfig = NULL;
    char err[1024];
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            node = optarg;
            break;
        case 'k':
            kubeconfig = optarg;
            break;
        case 'l':
            flag_log_level(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return MESHCTL_EXIT_USAGE;
        }
    }
    static struct kubelet kl;
    kl.k = kl_node_index(node);
    if (optind != argc || kl.k < 0) {
        usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    if (cluster_open(&kl.c, false) < 0)
        return MESHCTL_EXIT_FAIL;
    snprintf(kl.node, sizeof(kl.node), "%s", node);
    snprintf(kl.node_ip, sizeof(kl.node_ip), "198.18.0.%d", 10 + kl.k);
    cl_rfc3339((long long)time(NULL), kl.ready_since, sizeof(kl.ready_since));
    kl.cni_path = xasprintf("%s:%s", KL_CNI_BIN, kl.c.bindir);
    kl.svcs = json_object();
    kl.eps = json_object();

    char *kcpath = kubeconfig != NULL ? xstrdup(kubeconfig)
                                      : cl_path(&kl.c, "nodes/%s/kubelet.kubeconfig", kl.node);
    struct kube_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (kube_config_load_file(kcpath, NULL, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "meshctl __kubelet: %s: %s\n", kcpath, err);
        free(kcpath);
        return MESHCTL_EXIT_FAIL;
    }
    free(kcpath);
    if (write_conflist(&kl, err, sizeof(err)) < 0) {
        fprintf(stderr, "meshctl __kubelet: %s\n", err);
        kube_config_free(&cfg);
        return MESHCTL_EXIT_FAIL;
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kl.loop = loop_new();
    kl.kc = kube_client_new(kl.loop, &cfg, err, sizeof(err));
    kube_config_free(&cfg);
    if (kl.kc == NULL) {
        fprintf(stderr, "meshctl __kubelet: %s\n", err);
        return MESHCTL_EXIT_FAIL;
    }
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_start(kl.loop, &sig_io, sfd, EPOLLIN, on_signal, &kl) < 0) {
        fprintf(stderr, "meshctl __kubelet: signalfd: %s\n", strerror(errno));
        return MESHCTL_EXIT_FAIL;
    }
    char field[64];
    snprintf(field, sizeof(field), "spec.nodeName=%s", kl.node);
    struct kube_reflector *rf[3] = {
        kube_reflector_start(kl.kc, &R_PODS, field, NULL, &sink, &kl),
        kube_reflector_start(kl.kc, &R_SVCS, NULL, NULL, &sink, &kl),
        kube_reflector_start(kl.kc, &R_EPS, NULL, NULL, &sink, &kl),
    };
    loop_timer_start(kl.loop, &tick_timer, 0, on_tick, &kl);
    log_info("kubelet of %s (%s, pods 198.18.%d.0/24) in %s", kl.node, kl.node_ip, kl.k, kl.c.dir);
    loop_run(kl.loop);

    loop_timer_stop(kl.loop, &tick_timer);
    loop_io_stop(kl.loop, &sig_io);
    close(sfd);
    for (size_t i = 0; i < ARRAY_LEN(rf); i++)
        if (rf[i] != NULL)
            kube_reflector_stop(rf[i]);
    kl_pods_free(&kl);
    if (kl.node_req != NULL)
        kube_request_cancel(kl.node_req);
    if (kl.lease_req != NULL)
        kube_request_cancel(kl.lease_req);
    kube_client_free(kl.kc);
    loop_run_deferred(kl.loop);
    loop_free(kl.loop);
    json_decref(kl.svcs);
    json_decref(kl.eps);
    json_decref(kl.conflist);
    free(kl.cni_path);
    cluster_close(&kl.c);
    return 0;
}
