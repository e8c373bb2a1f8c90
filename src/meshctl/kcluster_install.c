/*
 * kcluster_install.c - `meshctl install --kubernetes`: the local cluster with
 * a real Kubernetes control plane (issue 11 section 4; layout in kcluster.h),
 * step by step, one check line each:
 *
 *   network         as the embedded install (fabric, <p>-cp, node namespaces)
 *   control plane   kcluster_cp.c: binaries, credentials, etcd, API server,
 *                   controller-manager, scheduler, CRDs and RBAC, kubectl access
 *   mesh            meshd --kubeconfig, per node mesh-cni --kubeconfig (with
 *                   the CNI plugin socket) and ztunnel (its node token from
 *                   meshd, as in the embedded cluster)
 *   kubelets        `meshctl __kubelet --node node-K` in each node namespace,
 *                   waited for until its Node is Ready
 *
 * Everything started is in the ledger before it runs, so a failure at any
 * step is undone by the same teardown as uninstall.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster.h"
#include "kcluster_int.h"
#include "meshctl.h"

bool
cluster_kube(const struct cluster *c)
{
    return c->meta != NULL && json_is_true(json_object_get(c->meta, "kubernetes"));
}

int
kcluster_use_kubectl(struct cluster *c, const char *cmd)
{
    if (!cluster_kube(c))
        return 0;
    fprintf(stderr,
            CROSS_MARK " this cluster runs Kubernetes (install --kubernetes): use kubectl %s\n"
                       "export KUBECONFIG=%s/kubeconfig\n",
            cmd, c->dir);
    cluster_close(c);
    return MESHCTL_EXIT_FAIL;
}

const char *
kcluster_cache(void)
{
    const char *e = getenv("AMESH_KUBE_CACHE");
    return e != NULL && e[0] != '\0' ? e : KCLUSTER_CACHE_DEFAULT;
}

/* The source tree (manifests/, tools/kube/build.sh): $AMESH_SOURCE_DIR or the build's. */
static int
mesh(struct kinst *k)
{
    struct cluster *c = k->c;
    char node[32], netns[64], label[64];
    char *state = cl_path(c, "state");
    char *meshd = xasprintf("%s/meshd", c->bindir);
    char *log = cl_path(c, "meshd.log");
    char *kc = xasprintf("%s/meshd.kubeconfig", k->kube);
    const char *margv[] = {meshd, "--kubeconfig", kc, "--state-dir", state, "--listen",
                           CLUSTER_MESHD_XDS, "--monitoring", CLUSTER_MONITORING,
                           /* no istiod Service here: waypoints dial meshd's own address */
                           "--waypoint-xds-address", CLUSTER_MESHD_XDS, NULL};
    pid_t pid = kc_start_in_cp(k, "meshd", log, margv);
    free(meshd);
    free(kc);
    free(state);
    int rc = 0;
    if (pid < 0 || !inst_wait_ready(pid, PROBE_HTTP, k->cp, CLUSTER_MONITORING, "/ready")) {
        rc = inst_fail(c, "meshd (control plane) did not become ready", k->err, log);
        free(log);
        return rc;
    }
    free(log);
    kc_ok("meshd (control plane) ready, watching %s", KCLUSTER_APISERVER);

    char *cni = xasprintf("%s/mesh-cni", c->bindir);
    pid_t pids[CLUSTER_MAX_NODES + 1];
    for (int i = 1; i <= c->n_nodes && rc == 0; i++) {
        cl_node_name(i, node, sizeof(node));
        cl_node_netns(c, i, netns, sizeof(netns));
        char *sock = cl_path(c, "nodes/%s/zds.sock", node);
        char *clog = cl_path(c, "nodes/%s/mesh-cni.log", node);
        char *ckc = cl_path(c, "nodes/%s/mesh-cni.kubeconfig", node);
        char *psock = cl_path(c, "nodes/%s/cni/plugin.sock", node);
        char *pstate = cl_path(c, "nodes/%s/cni/plugin.state", node);
        snprintf(label, sizeof(label), "mesh-cni-%s", node);
        const char *cargv[] = {cni,  "--zds-socket",    sock,  "--kubeconfig",   ckc,    "--node",
                               node, "--plugin-socket", psock, "--plugin-state", pstate, NULL};
        pids[i] = -1;
        if (inst_mint_token(c, node, k->err, sizeof(k->err)) == 0)
            pids[i] = inst_start_daemon(c, label, netns, clog, cargv, k->err, sizeof(k->err));
        if (pids[i] < 0)
            rc = inst_fail(c, node, k->err, NULL);
        free(sock);
        free(clog);
        free(ckc);
        free(psock);
        free(pstate);
    }
    free(cni);
    for (int i = 1; i <= c->n_nodes && rc == 0; i++) {
        cl_node_name(i, node, sizeof(node));
        char *sock = cl_path(c, "nodes/%s/zds.sock", node);
        char *clog = cl_path(c, "nodes/%s/mesh-cni.log", node);
        if (inst_wait_ready(pids[i], PROBE_SOCKET, NULL, NULL, sock)) {
            kc_ok("mesh-cni on %s ready", node);
        } else {
            snprintf(k->err, sizeof(k->err), "mesh-cni on %s did not become ready", node);
            rc = inst_fail(c, k->err, NULL, clog);
        }
        free(sock);
        free(clog);
    }
    if (rc != 0)
        return rc;

    if (rc == 0)
        rc = inst_ztunnels(c, k->err, sizeof(k->err));
    return rc;
}

/* One `meshctl __kubelet --node node-K` per node, each waited for until its Node is Ready. */
static int
kubelets(struct kinst *k)
{
    struct cluster *c = k->c;
    char node[32], netns[64], label[64];
    char *self = xasprintf("%s/meshctl", c->bindir);
    pid_t pids[CLUSTER_MAX_NODES + 1];
    int rc = 0;
    for (int i = 1; i <= c->n_nodes && rc == 0; i++) {
        cl_node_name(i, node, sizeof(node));
        cl_node_netns(c, i, netns, sizeof(netns));
        char *log = cl_path(c, "nodes/%s/kubelet.log", node);
        snprintf(label, sizeof(label), "kubelet-%s", node);
        const char *argv[] = {self, "__kubelet", "--node", node, NULL};
        pids[i] = inst_start_daemon(c, label, netns, log, argv, k->err, sizeof(k->err));
        if (pids[i] < 0)
            rc = inst_fail(c, node, k->err, NULL);
        free(log);
    }
    free(self);
    for (int i = 1; i <= c->n_nodes && rc == 0; i++) {
        cl_node_name(i, node, sizeof(node));
        char *log = cl_path(c, "nodes/%s/kubelet.log", node);
        char *obj = xasprintf("node/%s", node);
        const char *args[] = {"wait", "--for", "condition=Ready", "--timeout=60s", obj, NULL};
        /* `kubectl wait` fails at once while the Node does not exist yet. */
        uint64_t deadline = clock_mono_ms() + CLUSTER_READY_MS;
        bool ready = false;
        while (!ready && clock_mono_ms() < deadline && proc_alive(pids[i], 0)) {
            ready = kc_kubectl(k, NULL, args) == 0;
            if (!ready)
                sys_sleep_ms(250);
        }
        if (ready) {
            kc_ok("kubelet on %s ready (Node Ready)", node);
        } else {
            snprintf(k->err, sizeof(k->err), "the kubelet on %s did not make its Node Ready", node);
            rc = inst_fail(c, k->err, NULL, log);
        }
        free(obj);
        free(log);
    }
    return rc;
}

int
kcluster_install(int nodes)
{
    struct kinst k = {0};
    char etcd[PATH_MAX];
    if (!kc_in_path("kubectl", k.kubectl, sizeof(k.kubectl)) ||
        !kc_in_path("etcd", etcd, sizeof(etcd))) {
        fprintf(stderr, CROSS_MARK " kubectl and etcd are needed (tools/install-deps.sh kube "
                                   "installs Debian's)\n");
        return MESHCTL_EXIT_FAIL;
    }
    char *probe = xasprintf("%s/manifests/crds/kustomization.yaml", kc_source_dir());
    bool have_src = access(probe, R_OK) == 0;
    free(probe);
    if (!have_src) {
        fprintf(stderr,
                CROSS_MARK " %s/manifests not found (set AMESH_SOURCE_DIR to amesh's source)\n",
                kc_source_dir());
        return MESHCTL_EXIT_FAIL;
    }

    double t0 = kc_now_s();
    int rc = inst_prepare_dir(nodes, true);
    if (rc != 0)
        return rc;
    struct cluster c;
    if (cluster_open(&c, true) < 0)
        return MESHCTL_EXIT_FAIL;
    k.c = &c;
    if (strlen(c.dir) + sizeof("/nodes/node-16/cni/plugin.sock") > 108) {
        fprintf(stderr, CROSS_MARK " %s is too long a path for the nodes' unix sockets\n", c.dir);
        cl_rmtree(c.dir);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    cl_infra_netns(&c, "cp", k.cp, sizeof(k.cp));
    k.kube = cl_path(&c, "kube");
    k.pki = cl_path(&c, "kube/pki");
    k.admin = cl_path(&c, "kube/admin.kubeconfig");
    inst_make_dirs(&c);
    cl_mkdirs(k.kube, 0700);
    cl_mkdirs(k.pki, 0700);
    char node[32];
    for (int i = 1; i <= c.n_nodes; i++) {
        cl_node_name(i, node, sizeof(node));
        char *p = cl_path(&c, "nodes/%s/cni/net.d", node);
        cl_mkdirs(p, 0755);
        free(p);
    }
    int port = 0;
    char *blog = xasprintf("%s/build.log", k.kube);
    if (kc_binaries(&c, blog, k.err, sizeof(k.err)) < 0) {
        rc = inst_fail(&c, "Kubernetes binaries", k.err, blog);
        free(blog);
        goto out;
    }
    free(blog);
    if (net_create(&c, k.err, sizeof(k.err)) < 0) {
        rc = inst_fail(&c, "network", k.err, NULL);
        goto out;
    }
    kc_ok("network: fabric, control-plane namespace %s and the node namespaces", k.cp);
    if (kpki_make(k.pki, k.err, sizeof(k.err)) < 0 || kc_credentials(&k) < 0) {
        rc = inst_fail(&c, "credentials", k.err, NULL);
        goto out;
    }
    kc_ok("credentials: cluster CA, API server certificate, service-account keys, tokens (%s)",
          "kube/pki");
    if ((rc = kc_control_plane(&k)) != 0 || (rc = kc_objects(&k)) != 0 ||
        (rc = kc_kubectl_access(&k, &port)) != 0)
        goto out;
    if (!kc_host_kubectl_ok(&k)) {
        rc = inst_fail(&c, "kubectl on the host does not reach the API server", k.err, NULL);
        goto out;
    }
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%d", port);
    kc_ok("kubectl access: %s forwarded to the API server", where);
    if ((rc = mesh(&k)) != 0)
        goto out;
    kp_sync(&c);
    if ((rc = kubelets(&k)) != 0)
        goto out;
    char el[32];
    kc_fmt_secs(kc_now_s() - t0, el, sizeof(el));
    char *kc = cl_path(&c, "kubeconfig");
    char range[48];
    if (c.n_nodes == 1)
        snprintf(range, sizeof(range), "node-1");
    else
        snprintf(range, sizeof(range), "node-1..node-%d", c.n_nodes);
    printf(CHECK_MARK " Installation complete in %s\n"
                      "  nodes %s, API server %s (kubectl: 127.0.0.1:%d), "
                      "meshd %s,\n"
                      "  cluster directory %s\n"
                      "  To use kubectl:\n"
                      "export KUBECONFIG=%s\n",
           el, range, KCLUSTER_APISERVER, port, CLUSTER_MESHD_XDS, c.dir, kc);
    free(kc);
    cluster_close(&c);
    rc = 0;
out:
    free(k.kube);
    free(k.pki);
    free(k.admin);
    return rc;
}

int
kcluster_uninstall(struct cluster *c, bool say)
{
    return inst_teardown(c, say);
}
