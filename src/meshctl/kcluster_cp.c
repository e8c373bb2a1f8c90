/*
 * kcluster_cp.c - the Kubernetes control plane of `meshctl install --kubernetes`
 * (kcluster_install.c runs the steps in order):
 *
 *   binaries        kube-apiserver, -controller-manager, -scheduler from the
 *                   cache (tools/kube/build.sh fills it the first time, with a
 *                   progress line); etcd and kubectl are the machine's
 *   credentials     kcluster_pki.c's CA, certificate and key pair; one token
 *                   per identity (the API server's static token file) and a
 *                   kubeconfig for each
 *   control plane   etcd, kube-apiserver on KCLUSTER_APISERVER, controller-
 *                   manager, scheduler, all in <p>-cp, each waited for; CRDs,
 *                   istio-system and the RBAC of manifests/base
 *   kubectl access  `meshctl __forward` from 127.0.0.1:<free port> on the host
 *                   to the API server; $MESH_CLUSTER_DIR/kubeconfig
 */
#include <errno.h>
#include <fcntl.h>
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

#ifndef AMESH_SOURCE_DIR
#define AMESH_SOURCE_DIR "/usr/share/amesh"
#endif

/* Controllers of kube-controller-manager: workloads, endpoints, service accounts and
 * their tokens, namespaces, garbage collection, node lifecycle (taints, eviction of
 * pods on a node whose kubelet stopped renewing its Lease) and pod GC. */
#define KC_CONTROLLERS                                                                             \
    "deployment,replicaset,daemonset,statefulset,job,endpoint,endpointslice,"                      \
    "endpointslicemirroring,serviceaccount,serviceaccount-token,namespace,garbagecollector,"       \
    "root-ca-cert-publisher,nodelifecycle,podgc"

/* What the kubelets may do beyond the Node authorizer: the rules of a kubelet and of
 * kube-proxy (the kubelet side programs the service rules from EndpointSlices). */
static const char kubelet_rbac[] =
    "apiVersion: rbac.authorization.k8s.io/v1\n"
    "kind: ClusterRoleBinding\n"
    "metadata: {name: amesh-kubelets}\n"
    "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:node}\n"
    "subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}]\n"
    "---\n"
    "apiVersion: rbac.authorization.k8s.io/v1\n"
    "kind: ClusterRoleBinding\n"
    "metadata: {name: amesh-kubelets-proxier}\n"
    "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "
    "system:node-proxier}\n"
    "subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}]\n";
const char *
kc_source_dir(void)
{
    const char *e = getenv("AMESH_SOURCE_DIR");
    return e != NULL && e[0] != '\0' ? e : AMESH_SOURCE_DIR;
}

/* An executable |name| in $PATH (full path into |out|)? */
bool
kc_in_path(const char *name, char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p != '\0';) {
        size_t n = strcspn(p, ":");
        snprintf(out, outlen, "%.*s/%s", (int)n, p, name);
        if (n > 0 && access(out, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

void
kc_fmt_secs(double s, char *out, size_t outlen)
{
    if (s < 60)
        snprintf(out, outlen, "%.1f s", s);
    else
        snprintf(out, outlen, "%dm%02ds", (int)s / 60, (int)s % 60);
}

double
kc_now_s(void)
{
    return (double)clock_mono_ms() / 1000.0;
}

static bool
kube_cached(const char *cache)
{
    static const char *const bins[] = {"kube-apiserver", "kube-controller-manager",
                                       "kube-scheduler"};
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/stamp", cache);
    if (access(p, R_OK) != 0)
        return false;
    for (size_t i = 0; i < ARRAY_LEN(bins); i++) {
        snprintf(p, sizeof(p), "%s/bin/%s", cache, bins[i]);
        if (access(p, X_OK) != 0)
            return false;
    }
    return true;
}

/* The last "kube-build: ..." line in the build's log |log| (its last 4 KiB), or "". */
static void
build_stage(const char *log, char *out, size_t outlen)
{
    char buf[4097];
    out[0] = '\0';
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return;
    ssize_t n = 0;
    if (fstat(fd, &st) == 0) {
        off_t off = st.st_size > 4096 ? st.st_size - 4096 : 0;
        n = pread(fd, buf, sizeof(buf) - 1, off);
    }
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    const char *tag = "kube-build: ", *last = NULL;
    for (const char *p = buf; (p = strstr(p, tag)) != NULL; p++)
        if (p == buf || p[-1] == '\n')
            last = p + strlen(tag);
    if (last != NULL)
        snprintf(out, outlen, "%.*s", (int)strcspn(last, "\n"), last);
}

/*
 * The Kubernetes binaries: from the cache, or built by tools/kube/build.sh
 * with a progress line (minutes, the first time only). Returns 0, or -1 with
 * |err| set (the build's log is |log|).
 */
int
kc_binaries(struct cluster *c, const char *log, char *err, size_t errlen)
{
    const char *cache = kcluster_cache();
    if (kube_cached(cache)) {
        printf(CHECK_MARK " Kubernetes v1.20.2 binaries in %s/bin (cached)\n", cache);
        fflush(stdout);
        return 0;
    }
    char *script = xasprintf("%s/tools/kube/build.sh", kc_source_dir());
    if (access(script, X_OK) != 0) {
        snprintf(err, errlen, "no Kubernetes build in %s and no %s to make one", cache, script);
        free(script);
        return -1;
    }
    const char *argv[] = {script, NULL};
    struct spawn s = {.argv = argv, .log = log};
    pid_t pid = sys_spawn(&s, err, errlen);
    free(script);
    if (pid < 0 || ledger_proc_add(c, "kube-build", pid) < 0)
        return -1;
    bool tty = isatty(STDOUT_FILENO);
    double t0 = kc_now_s(), next = t0;
    int status = 0;
    char shown[60] = "";
    printf("  building Kubernetes v1.20.2 from Debian's source into %s (first time only,\n"
           "  several minutes; log %s)\n",
           cache, log);
    fflush(stdout);
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            snprintf(err, errlen, "waiting for the build: %s", strerror(errno));
            return -1;
        }
        /* A terminal gets one line redrawn each second; a log a line per stage or 30 s. */
        double t = kc_now_s();
        char stage[60], el[32];
        build_stage(log, stage, sizeof(stage));
        if (t >= next || (!tty && strcmp(stage, shown) != 0)) {
            kc_fmt_secs(t - t0, el, sizeof(el));
            /* \033[K: the rest of the terminal line, when the stage got shorter */
            printf(tty ? "\r  building... %s  %s\033[K" : "  building... %s  %s\n", el, stage);
            fflush(stdout);
            snprintf(shown, sizeof(shown), "%s", stage);
            next = t + (tty ? 1 : 30);
        }
        sys_sleep_ms(200);
    }
    ledger_proc_del(c, "kube-build");
    if (tty)
        printf("\n");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !kube_cached(cache)) {
        snprintf(err, errlen, "building Kubernetes failed");
        return -1;
    }
    char el[32];
    kc_fmt_secs(kc_now_s() - t0, el, sizeof(el));
    printf(CHECK_MARK " Kubernetes v1.20.2 built in %s (cached in %s)\n", el, cache);
    fflush(stdout);
    return 0;
}

/* kubectl as admin inside <p>-cp; |input| on stdin (may be NULL). Exit status, or -1. */
int
kc_kubectl(struct kinst *k, const char *input, const char *const *args)
{
    const char *argv[32];
    size_t n = 0;
    char *cache = xasprintf("%s/.kubectl-cache", k->kube);
    argv[n++] = k->kubectl;
    argv[n++] = "--kubeconfig";
    argv[n++] = k->admin;
    argv[n++] = "--cache-dir";
    argv[n++] = cache;
    argv[n++] = "--request-timeout=30s";
    for (size_t i = 0; args[i] != NULL && n < ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int rc = sys_in_netns(k->cp, argv, input, k->err, sizeof(k->err));
    free(cache);
    return rc;
}

/* Writes the token file and a kubeconfig per identity. Returns 0 or -1 (k->err). */
int
kc_credentials(struct kinst *k)
{
    struct cluster *c = k->c;
    char *ca = xasprintf("%s/ca.crt", k->pki);
    char *csv = xstrdup("");
    char tok[KPKI_TOKEN_LEN + 1], node[32];
    int rc = 0;
    struct ident {
        char *user, *groups, *file;
    } ids[5 + 2 * CLUSTER_MAX_NODES];
    size_t n = 0;
    const char *sa = "system:serviceaccounts,system:serviceaccounts:istio-system";

    ids[n++] = (struct ident){xstrdup("admin"), xstrdup("system:masters"), xstrdup(k->admin)};
    ids[n++] = (struct ident){xstrdup("system:kube-controller-manager"), NULL,
                              xasprintf("%s/controller-manager.kubeconfig", k->kube)};
    ids[n++] = (struct ident){xstrdup("system:kube-scheduler"), NULL,
                              xasprintf("%s/scheduler.kubeconfig", k->kube)};
    /* ServiceAccount identities, so that manifests/base's bindings apply as they are. */
    ids[n++] = (struct ident){xstrdup("system:serviceaccount:istio-system:meshd"), xstrdup(sa),
                              xasprintf("%s/meshd.kubeconfig", k->kube)};
    for (int i = 1; i <= c->n_nodes; i++) {
        cl_node_name(i, node, sizeof(node));
        ids[n++] = (struct ident){xstrdup("system:serviceaccount:istio-system:mesh-cni"),
                                  xstrdup(sa), cl_path(c, "nodes/%s/mesh-cni.kubeconfig", node)};
        /* The Node authorizer knows a kubelet by this name and group. */
        ids[n++] = (struct ident){xasprintf("system:node:%s", node), xstrdup("system:nodes"),
                                  cl_path(c, "nodes/%s/kubelet.kubeconfig", node)};
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && kpki_token(tok) < 0) {
            snprintf(k->err, sizeof(k->err), "no random bytes for a token");
            rc = -1;
        }
        if (rc == 0)
            rc = kpki_kubeconfig(ids[i].file, "https://" KCLUSTER_APISERVER, ca, ids[i].user, tok,
                                 k->err, sizeof(k->err));
        char *line = xasprintf("%s%s,%s,uid-%zu%s%s%s\n", csv, tok, ids[i].user, i,
                               ids[i].groups ? ",\"" : "", ids[i].groups ? ids[i].groups : "",
                               ids[i].groups ? "\"" : "");
        free(csv);
        csv = line;
        free(ids[i].user);
        free(ids[i].groups);
        free(ids[i].file);
    }
    char *path = xasprintf("%s/tokens.csv", k->kube);
    if (rc == 0 && cl_write_atomic(path, csv, strlen(csv), 0600) < 0) {
        snprintf(k->err, sizeof(k->err), "writing %s", path);
        rc = -1;
    }
    explicit_bzero(csv, strlen(csv));
    free(csv);
    free(path);
    free(ca);
    return rc;
}

pid_t
kc_start_in_cp(struct kinst *k, const char *label, const char *log, const char *const *argv)
{
    return inst_start_daemon(k->c, label, k->cp, log, argv, k->err, sizeof(k->err));
}

/* Waits for `kubectl get --raw PATH` to succeed while |pid| lives. */
static bool
wait_raw(struct kinst *k, pid_t pid, const char *path)
{
    uint64_t deadline = clock_mono_ms() + CLUSTER_READY_MS;
    const char *args[] = {"get", "--raw", path, NULL};
    while (clock_mono_ms() < deadline) {
        if (kc_kubectl(k, NULL, args) == 0)
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid || !proc_alive(pid, 0)) {
            snprintf(k->err, sizeof(k->err), "it exited");
            return false;
        }
        sys_sleep_ms(250);
    }
    return false;
}

void
kc_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf(CHECK_MARK " ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* etcd, kube-apiserver, controller-manager, scheduler. Returns 0, or an exit code. */
int
kc_control_plane(struct kinst *k)
{
    struct cluster *c = k->c;
    char etcd[PATH_MAX];
    if (!kc_in_path("etcd", etcd, sizeof(etcd)))
        return inst_fail(c, "etcd not found", "tools/install-deps.sh kube installs it", NULL);
    char *data = xasprintf("%s/etcd", k->kube);
    char *elog = xasprintf("%s/etcd.log", k->kube);
    const char *eargv[] = {etcd,
                           "--name",
                           "amesh",
                           "--data-dir",
                           data,
                           "--logger",
                           "zap",
                           "--listen-client-urls",
                           "http://127.0.0.1:2379",
                           "--advertise-client-urls",
                           "http://127.0.0.1:2379",
                           "--listen-peer-urls",
                           "http://127.0.0.1:2380",
                           "--initial-advertise-peer-urls",
                           "http://127.0.0.1:2380",
                           "--initial-cluster",
                           "amesh=http://127.0.0.1:2380",
                           "--listen-metrics-urls",
                           "http://127.0.0.1:2381",
                           NULL};
    pid_t pid = kc_start_in_cp(k, "kube-etcd", elog, eargv);
    free(data);
    int rc = 0;
    if (pid < 0 || !inst_wait_ready(pid, PROBE_HTTP, k->cp, "127.0.0.1:2381", "/health")) {
        rc = inst_fail(c, "etcd did not become ready", k->err, elog);
        free(elog);
        return rc;
    }
    free(elog);
    kc_ok("etcd ready (%s)", "127.0.0.1:2379 in the control-plane namespace");

    const char *bin = kcluster_cache();
    char *api = xasprintf("%s/bin/kube-apiserver", bin);
    char *alog = xasprintf("%s/apiserver.log", k->kube);
    char *a_cert = xasprintf("--tls-cert-file=%s/apiserver.crt", k->pki);
    char *a_key = xasprintf("--tls-private-key-file=%s/apiserver.key", k->pki);
    char *a_ca = xasprintf("--client-ca-file=%s/ca.crt", k->pki);
    char *a_tok = xasprintf("--token-auth-file=%s/tokens.csv", k->kube);
    char *a_pub = xasprintf("--service-account-key-file=%s/sa.pub", k->pki);
    char *a_sign = xasprintf("--service-account-signing-key-file=%s/sa.key", k->pki);
    const char *aargv[] = {
        api, "--etcd-servers=http://127.0.0.1:2379", "--bind-address=" KCLUSTER_APISERVER_IP,
        "--advertise-address=" KCLUSTER_APISERVER_IP, "--secure-port=6443", "--insecure-port=0",
        a_cert, a_key, a_ca, a_tok, "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc", a_pub, a_sign,
        /* meshd's CA reviews ztunnels' and workloads' tokens for istio-ca */
        "--api-audiences=https://kubernetes.default.svc,istio-ca",
        "--service-cluster-ip-range=" KCLUSTER_SERVICE_CIDR, "--allow-privileged=true",
        "--enable-priority-and-fairness=false", "--profiling=false", NULL};
    pid = kc_start_in_cp(k, "kube-apiserver", alog, aargv);
    free(api);
    free(a_cert);
    free(a_key);
    free(a_ca);
    free(a_tok);
    free(a_pub);
    free(a_sign);
    if (pid < 0 || !wait_raw(k, pid, "/readyz")) {
        rc = inst_fail(c, "kube-apiserver did not become ready", k->err, alog);
        free(alog);
        return rc;
    }
    free(alog);
    kc_ok("kube-apiserver ready (%s)", KCLUSTER_APISERVER);

    char *kcm = xasprintf("%s/bin/kube-controller-manager", bin);
    char *klog = xasprintf("%s/controller-manager.log", k->kube);
    char *k_cfg = xasprintf("--kubeconfig=%s/controller-manager.kubeconfig", k->kube);
    char *k_sa = xasprintf("--service-account-private-key-file=%s/sa.key", k->pki);
    char *k_ca = xasprintf("--root-ca-file=%s/ca.crt", k->pki);
    /* Health on the plain-HTTP port of the namespace's loopback (1.20 still has it). */
    const char *kargv[] = {kcm, k_cfg, "--leader-elect=false", "--controllers=" KC_CONTROLLERS,
                           "--use-service-account-credentials=true", k_sa, k_ca,
                           /* a kubelet silent for 60 s makes its node NotReady */
                           "--node-monitor-grace-period=60s", "--secure-port=0", "--port=10252",
                           "--address=127.0.0.1", "--profiling=false", NULL};
    pid = kc_start_in_cp(k, "kube-controller-manager", klog, kargv);
    free(kcm);
    free(k_cfg);
    free(k_sa);
    free(k_ca);
    if (pid < 0 || !inst_wait_ready(pid, PROBE_HTTP, k->cp, "127.0.0.1:10252", "/healthz")) {
        rc = inst_fail(c, "kube-controller-manager did not become ready", k->err, klog);
        free(klog);
        return rc;
    }
    free(klog);
    kc_ok("kube-controller-manager ready");

    char *sch = xasprintf("%s/bin/kube-scheduler", bin);
    char *slog = xasprintf("%s/scheduler.log", k->kube);
    char *s_cfg = xasprintf("--kubeconfig=%s/scheduler.kubeconfig", k->kube);
    const char *sargv[] = {sch,
                           s_cfg,
                           "--leader-elect=false",
                           "--secure-port=0",
                           "--port=10251",
                           "--address=127.0.0.1",
                           "--profiling=false",
                           NULL};
    pid = kc_start_in_cp(k, "kube-scheduler", slog, sargv);
    free(sch);
    free(s_cfg);
    if (pid < 0 || !inst_wait_ready(pid, PROBE_HTTP, k->cp, "127.0.0.1:10251", "/healthz")) {
        rc = inst_fail(c, "kube-scheduler did not become ready", k->err, slog);
        free(slog);
        return rc;
    }
    free(slog);
    kc_ok("kube-scheduler ready");
    return 0;
}

/* CRDs, istio-system, the RBAC of meshd, mesh-cni and the kubelets. Returns 0 or an exit code. */
int
kc_objects(struct kinst *k)
{
    const char *src = kc_source_dir();
    char *crds = xasprintf("%s/manifests/crds", src);
    char *ns = xasprintf("%s/manifests/base/namespace.yaml", src);
    char *mrbac = xasprintf("%s/manifests/base/meshd-rbac.yaml", src);
    char *crbac = xasprintf("%s/manifests/base/mesh-cni-rbac.yaml", src);
    const char *a1[] = {"apply", "-k", crds, NULL};
    const char *a2[] = {"wait",
                        "--for",
                        "condition=established",
                        "--timeout=60s",
                        "crd",
                        "-l",
                        "app.kubernetes.io/part-of=amesh-test-crds",
                        NULL};
    const char *a3[] = {"apply", "-f", ns, NULL};
    const char *a4[] = {"apply", "-n", "istio-system", "-f", mrbac, "-f", crbac, NULL};
    const char *a5[] = {"apply", "-f", "-", NULL};
    const char *what = NULL;
    if (kc_kubectl(k, NULL, a1) != 0)
        what = "applying manifests/crds";
    else if (kc_kubectl(k, NULL, a2) != 0)
        what = "waiting for the CRDs to be established";
    else if (kc_kubectl(k, NULL, a3) != 0)
        what = "creating namespace istio-system";
    else if (kc_kubectl(k, NULL, a4) != 0)
        what = "applying meshd's and mesh-cni's RBAC";
    else if (kc_kubectl(k, kubelet_rbac, a5) != 0)
        what = "applying the kubelets' RBAC";
    free(crds);
    free(ns);
    free(mrbac);
    free(crbac);
    if (what != NULL)
        return inst_fail(k->c, what, k->err, NULL);
    kc_ok("CRDs (Gateway API, Istio), namespace istio-system and RBAC applied");
    return 0;
}

/* The host's kubectl: the forwarder and $MESH_CLUSTER_DIR/kubeconfig. Returns 0 or an exit code. */
int
kc_kubectl_access(struct kinst *k, int *port)
{
    struct cluster *c = k->c;
    char *self = xasprintf("%s/meshctl", c->bindir);
    char *pf = xasprintf("%s/forward.port", k->kube);
    char *log = xasprintf("%s/forward.log", k->kube);
    const char *argv[] = {self,          "__forward", "--port-file",      pf,  "-",
                          "127.0.0.1:0", k->cp,       KCLUSTER_APISERVER, NULL};
    pid_t pid = inst_start_daemon(c, "kube-forward", NULL, log, argv, k->err, sizeof(k->err));
    free(self);
    int rc = 0;
    size_t len;
    uint64_t deadline = clock_mono_ms() + CLUSTER_READY_MS;
    char *s = NULL;
    while (pid > 0 && (s = cl_read_file(pf, &len)) == NULL && clock_mono_ms() < deadline &&
           proc_alive(pid, 0))
        sys_sleep_ms(50);
    *port = s != NULL ? (int)strtol(s, NULL, 10) : 0;
    free(s);
    if (*port <= 0 || *port > 65535) {
        rc = inst_fail(c, "the kubectl forwarder did not start", k->err, log);
        goto out;
    }
    char server[64];
    snprintf(server, sizeof(server), "https://127.0.0.1:%d", *port);
    char *kc = cl_path(c, "kubeconfig");
    char *ca = xasprintf("%s/ca.crt", k->pki);
    char tok[KPKI_TOKEN_LEN + 1];
    /* The admin's token, read back from the in-cluster admin kubeconfig's line. */
    char *adm = cl_read_file(k->admin, &len);
    const char *t = adm != NULL ? strstr(adm, "    token: ") : NULL;
    if (t == NULL || sscanf(t, "    token: %32s", tok) != 1 ||
        kpki_kubeconfig(kc, server, ca, "admin", tok, k->err, sizeof(k->err)) < 0)
        rc = inst_fail(c, "writing the kubeconfig", k->err, NULL);
    free(adm);
    free(ca);
    free(kc);
    explicit_bzero(tok, sizeof(tok));
    if (rc == 0) {
        json_object_set_new(c->meta, "kubectlPort", json_integer(*port));
        cluster_save_meta(c);
    }
out:
    free(pf);
    free(log);
    return rc;
}

/* `kubectl get --raw /readyz` from the host through the forwarder. */
bool
kc_host_kubectl_ok(struct kinst *k)
{
    char *kc = cl_path(k->c, "kubeconfig");
    char *cache = xasprintf("%s/.kubectl-cache", k->kube);
    const char *argv[] = {
        k->kubectl, "--kubeconfig", kc,        "--cache-dir", cache, "--request-timeout=10s",
        "get",      "--raw",        "/readyz", NULL};
    int rc = sys_run(argv, NULL, NULL, k->err, sizeof(k->err));
    free(kc);
    free(cache);
    return rc == 0;
}

/* meshd, and per node mesh-cni and ztunnel. Returns 0 or an exit code. */
