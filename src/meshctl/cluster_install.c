/*
 * cluster_install.c - meshctl install / uninstall.
 *
 *   meshctl install [--nodes N]   network, meshd, per node a token, mesh-cni
 *                                 and ztunnel (in-pod mode); one check line
 *                                 per component once it answers ready
 *   meshctl uninstall             stops every process group started, deletes
 *                                 every namespace made (and its /etc/netns
 *                                 directory) and the cluster directory
 *
 * What was made is recorded before it is made (netns.d/, pids/), so an
 * install that fails half-way is undone by the same code as uninstall.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster.h"
#include "meshctl.h"

void
install_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl install [--kubernetes] [--nodes N]\n"
            "  Creates the local cluster in $MESH_CLUSTER_DIR (default %s): a fabric, a\n"
            "  control-plane namespace running meshd, and N node namespaces (default 2, at\n"
            "  most %d) each running mesh-cni and ztunnel in in-pod mode.\n"
            "  --kubernetes  a real Kubernetes control plane (etcd, kube-apiserver v1.20.2,\n"
            "                controller-manager, scheduler) in the control-plane namespace, a\n"
            "                kubelet per node; meshd and mesh-cni watch it; use kubectl with\n"
            "                the kubeconfig it writes (binaries built once into\n"
            "                $AMESH_KUBE_CACHE, default %s)\n",
            CLUSTER_DIR_DEFAULT, CLUSTER_MAX_NODES, KCLUSTER_CACHE_DEFAULT);
}

void
uninstall_usage(FILE *f)
{
    fprintf(f, "Usage: meshctl uninstall\n"
               "  Stops every process the cluster started and removes every network namespace,\n"
               "  link, /etc/netns entry and file it made, then the cluster directory.\n");
}

bool
cl_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Is |dir| absent or an empty directory? */
static bool
dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool empty = true;

    if (d == NULL)
        return errno == ENOENT;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

/* Prints the last lines of |log| indented, after a failure. */
void
inst_show_tail(const char *log)
{
    size_t len;
    char *s = cl_read_file(log, &len);
    if (s == NULL)
        return;
    size_t start = len, lines = 0;
    while (start > 0 && lines < 15)
        if (s[--start] == '\n' && start + 1 < len)
            lines++;
    fprintf(stderr, "  last lines of %s:\n", log);
    for (char *line = s + start, *nl; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL) {
            fprintf(stderr, "    %s\n", line);
            break;
        }
        if (nl > line)
            fprintf(stderr, "    %.*s\n", (int)(nl - line), line);
    }
    free(s);
}

pid_t
inst_start_daemon(struct cluster *c, const char *label, const char *netns, const char *log,
                  const char *const *argv, char *err, size_t errlen)
{
    struct spawn s = {.argv = argv, .netns = netns, .log = log};
    pid_t pid = sys_spawn(&s, err, errlen);
    if (pid > 0 && ledger_proc_add(c, label, pid) < 0) {
        snprintf(err, errlen, "recording %s's pid", label);
        return -1;
    }
    return pid;
}

/* Waits until the component answers; false when it died or the bound passed. */
bool
inst_wait_ready(pid_t pid, enum inst_probe how, const char *netns, const char *what,
                const char *path)
{
    uint64_t deadline = clock_mono_ms() + CLUSTER_READY_MS;
    while (clock_mono_ms() < deadline) {
        struct stat st;
        if (how == PROBE_HTTP && sys_http_ok_in(netns, what, path))
            return true;
        if (how == PROBE_SOCKET && stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return true;
        if (waitpid(pid, NULL, WNOHANG) == pid || !proc_alive(pid, 0))
            return false;
        sys_sleep_ms(100);
    }
    return false;
}

/* "ztunnel-node-1" -> "ztunnel on node-1", "meshd" -> "meshd (control plane)". */
static void
describe(const char *label, char *out, size_t outlen)
{
    static const char *const daemons[] = {"ztunnel-", "mesh-cni-", "kubelet-"};
    for (size_t i = 0; i < ARRAY_LEN(daemons); i++) {
        size_t n = strlen(daemons[i]);
        if (strncmp(label, daemons[i], n) == 0) {
            snprintf(out, outlen, "%.*s on %s", (int)n - 1, label, label + n);
            return;
        }
    }
    if (strcmp(label, "kube-forward") == 0)
        snprintf(out, outlen, "kubectl forwarder");
    else if (strcmp(label, "kube-etcd") == 0)
        snprintf(out, outlen, "etcd");
    else
        snprintf(out, outlen, "%s%s", label, strcmp(label, "meshd") == 0 ? " (control plane)" : "");
}

/* Everything recorded in the ledger goes; then the directory. Prints what it did when |say|. */
int
inst_teardown(struct cluster *c, bool say)
{
    /*
     * Kubelets before their pods (nothing restarts a pod then), the mesh before the API
     * server it watches, etcd last so the API server's shutdown still reaches its store.
     */
    static const char *const order[] = {"kubelet-",
                                        "pod_",
                                        "ztunnel-",
                                        "mesh-cni-",
                                        "meshd",
                                        "kube-forward",
                                        "kube-scheduler",
                                        "kube-controller-manager",
                                        "kube-apiserver",
                                        "kube-etcd",
                                        ""};
    json_t *procs = ledger_proc_list(c);
    int failed = 0, pods = 0;
    size_t i;
    json_t *v;

    for (size_t o = 0; o < ARRAY_LEN(order); o++) {
        json_array_foreach(procs, i, v) {
            const char *label = json_string_value(v);
            char what[128];
            pid_t pid;
            unsigned long long start;
            if (label[0] == '\0' || strncmp(label, order[o], strlen(order[o])) != 0)
                continue;
            if (ledger_proc_get(c, label, &pid, &start) == 0 &&
                proc_stop_group(pid, start, CLUSTER_STOP_MS) < 0) {
                fprintf(stderr, CROSS_MARK " %s (pid %d) would not stop\n", label, (int)pid);
                failed = 1;
                continue;
            }
            ledger_proc_del(c, label);
            describe(label, what, sizeof(what));
            if (strcmp(order[o], "pod_") == 0)
                pods++;
            else if (say)
                printf(CHECK_MARK " %s stopped\n", what);
            json_array_set_new(procs, i, json_string(""));
        }
        if (strcmp(order[o], "pod_") == 0 && say && pods > 0)
            printf(CHECK_MARK " %d pod%s stopped\n", pods, pods == 1 ? "" : "s");
    }
    json_decref(procs);
    kubelet_release_mounts(c); /* the pods' token mount points (kube mode), now unused */

    json_t *names = ledger_netns_list(c);
    json_array_foreach(names, i, v)
        net_netns_del(c, json_string_value(v));
    if (say && json_array_size(names) > 0)
        printf(CHECK_MARK " %zu network namespaces removed\n", json_array_size(names));
    json_decref(names);

    char *marker = cl_path(c, "etc-netns-created");
    if (cl_exists(marker))
        rmdir("/etc/netns"); /* only when empty: another cluster may use it */
    free(marker);
    if (failed) {
        fprintf(stderr, CROSS_MARK " %s kept: some processes are still running\n", c->dir);
        return -1;
    }
    if (cl_rmtree(c->dir) < 0) {
        fprintf(stderr, CROSS_MARK " removing %s: %s\n", c->dir, strerror(errno));
        return -1;
    }
    if (say)
        printf(CHECK_MARK " %s removed\n", c->dir);
    return 0;
}

int
inst_fail(struct cluster *c, const char *what, const char *err, const char *log)
{
    fprintf(stderr, CROSS_MARK " %s%s%s\n", what, err && err[0] ? ": " : "", err ? err : "");
    if (log != NULL)
        inst_show_tail(log);
    fprintf(stderr, "  undoing the installation\n");
    inst_teardown(c, false);
    cluster_close(c);
    return MESHCTL_EXIT_FAIL;
}

/* Namespace default, as every cluster has it. */
static int
write_default_namespace(struct cluster *c)
{
    char now[32];
    cl_rfc3339((long long)time(NULL), now, sizeof(now));
    json_t *obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion", "v1", "kind",
                            "Namespace", "metadata", "name", "default", "uid",
                            "00000000-0000-0000-0000-00000000def0", "creationTimestamp", now);
    json_t *rec = json_pack("{s:n, s:o}", "applied", "object", obj);
    int rc = rec_put(c, kind_by_name("Namespace"), rec);
    json_decref(rec);
    return rc;
}

/*
 * The node's xds and ca tokens (meshd's default lifetime, 24 h); its ztunnel
 * renews them and rewrites this file, so a cluster left running keeps working.
 */
int
inst_mint_token(struct cluster *c, const char *node, char *err, size_t errlen)
{
    char *meshd = xasprintf("%s/meshd", c->bindir);
    char *state = cl_path(c, "state");
    char *file = cl_path(c, "nodes/%s/token", node);
    const char *argv[] = {meshd, "token", "--state-dir", state, "--node", node, NULL};
    char *out = NULL;
    int rc = sys_run(argv, NULL, &out, err, errlen);
    if (rc == 0 && cl_write_atomic(file, out, strlen(out), 0600) < 0) {
        snprintf(err, errlen, "writing %s", file);
        rc = -1;
    }
    free(out);
    free(meshd);
    free(state);
    free(file);
    return rc == 0 ? 0 : -1;
}

/* The directory and cluster.json. Returns 0, or an exit code. */
int
inst_prepare_dir(int nodes, bool kube)
{
    const char *dir = cluster_dir();
    char *meta = xasprintf("%s/cluster.json", dir);
    char real[PATH_MAX], prefix[32];
    int rc = 0;

    if (cl_exists(meta)) {
        fprintf(stderr,
                CROSS_MARK " a cluster is already installed in %s "
                           "(meshctl uninstall removes it)\n",
                dir);
        rc = MESHCTL_EXIT_FAIL;
    } else if (!dir_empty(dir)) {
        fprintf(stderr,
                CROSS_MARK " %s exists and is not empty: not a place for a new cluster "
                           "(leftovers? meshctl uninstall cleans what a cluster recorded there)\n",
                dir);
        rc = MESHCTL_EXIT_FAIL;
    } else if (cl_mkdirs(dir, 0755) < 0 || realpath(dir, real) == NULL) {
        fprintf(stderr, CROSS_MARK " creating %s: %s\n", dir, strerror(errno));
        rc = MESHCTL_EXIT_FAIL;
    } else if (strlen(real) + sizeof("/nodes/node-16/zds.sock") >
               sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, CROSS_MARK " %s is too long a path for the nodes' unix sockets\n", real);
        rc = MESHCTL_EXIT_FAIL;
    }
    if (rc != 0) {
        free(meta);
        return rc;
    }
    cl_prefix_for_dir(real, prefix, sizeof(prefix));
    char probe[PATH_MAX];
    snprintf(probe, sizeof(probe), "/run/netns/%s-fabric", prefix);
    if (cl_exists(probe)) {
        fprintf(stderr,
                CROSS_MARK " network namespace %s-fabric exists: another cluster uses "
                           "prefix %s\n",
                prefix, prefix);
        free(meta);
        return MESHCTL_EXIT_FAIL;
    }
    json_t *m = json_pack("{s:s, s:i, s:I, s:i, s:s}", "prefix", prefix, "nodes", nodes, "created",
                          (json_int_t)time(NULL), "nextNode", 0, "dir", real);
    if (kube)
        json_object_set_new(m, "kubernetes", json_true());
    rc = cl_write_json(meta, m) < 0 ? MESHCTL_EXIT_FAIL : 0;
    if (rc != 0)
        fprintf(stderr, CROSS_MARK " writing %s: %s\n", meta, strerror(errno));
    json_decref(m);
    free(meta);
    return rc;
}

/* The cluster directory's parts (layout in cluster.h); state/ (the CA's keys) private. */
void
inst_make_dirs(struct cluster *c)
{
    static const char *const dirs[] = {"config", "objects", "pods", "pids", "netns.d"};
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        char *p = cl_path(c, "%s", dirs[i]);
        cl_mkdirs(p, 0755);
        free(p);
    }
    char *state = cl_path(c, "state");
    cl_mkdirs(state, 0700);
    free(state);
}

/*
 * A ztunnel per node (in-pod mode, its node token, the ZDS socket mesh-cni serves), then
 * each waited for. Returns 0, or the exit code of inst_fail() (which undid everything).
 */
int
inst_ztunnels(struct cluster *c, char *err, size_t errlen)
{
    char node[32], netns[64], label[64];
    pid_t pids[CLUSTER_MAX_NODES + 1];
    char *zt = xasprintf("%s/ztunnel", c->bindir);
    char *root = cl_path(c, "state/root-cert.pem");
    int rc = 0;

    for (int k = 1; k <= c->n_nodes && rc == 0; k++) {
        cl_node_name(k, node, sizeof(node));
        cl_node_netns(c, k, netns, sizeof(netns));
        char *sock = cl_path(c, "nodes/%s/zds.sock", node);
        char *zlog = cl_path(c, "nodes/%s/ztunnel.log", node);
        char *token = cl_path(c, "nodes/%s/token", node);
        snprintf(label, sizeof(label), "ztunnel-%s", node);
        const char *zargv[] = {zt,
                               "--xds-address",
                               CLUSTER_MESHD_XDS,
                               "--root-cert",
                               root,
                               "--token",
                               token,
                               "--node",
                               node,
                               "--zds-socket",
                               sock,
                               NULL};
        pids[k] = inst_start_daemon(c, label, netns, zlog, zargv, err, errlen);
        if (pids[k] < 0)
            rc = inst_fail(c, node, err, NULL);
        free(sock);
        free(zlog);
        free(token);
    }
    free(zt);
    free(root);
    for (int k = 1; k <= c->n_nodes && rc == 0; k++) {
        cl_node_name(k, node, sizeof(node));
        cl_node_netns(c, k, netns, sizeof(netns));
        char *zlog = cl_path(c, "nodes/%s/ztunnel.log", node);
        if (inst_wait_ready(pids[k], PROBE_HTTP, netns, CLUSTER_ZTUNNEL_RDY, "/healthz/ready")) {
            printf(CHECK_MARK " ztunnel on %s ready\n", node);
            fflush(stdout);
        } else {
            snprintf(err, errlen, "ztunnel on %s did not become ready", node);
            rc = inst_fail(c, err, NULL, zlog);
        }
        free(zlog);
    }
    return rc;
}

int
install_main(int argc, char **argv)
{
    int nodes = 2;
    bool kube = false;
    char err[1024], node[32], netns[64];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kubernetes") == 0) {
            kube = true;
        } else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > CLUSTER_MAX_NODES) {
                fprintf(stderr, "meshctl install: --nodes: a number in [1, %d]\n",
                        CLUSTER_MAX_NODES);
                return MESHCTL_EXIT_USAGE;
            }
            nodes = (int)v;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            install_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "meshctl install: unexpected argument \"%s\"\n", argv[i]);
            install_usage(stderr);
            return MESHCTL_EXIT_USAGE;
        }
    }
    /* amesh-cni: the kubelets' CNI chain calls it (--kubernetes only). */
    static const char *const bins[] = {"meshd", "ztunnel", "mesh-cni", "waypoint", "amesh-cni"};
    for (size_t i = 0; i < ARRAY_LEN(bins) - (kube ? 0 : 1); i++) {
        char *p = xasprintf("%s/%s", cl_self_bindir(), bins[i]);
        bool ok = access(p, X_OK) == 0;
        if (!ok)
            fprintf(stderr, CROSS_MARK " %s not found next to meshctl (build it first)\n", p);
        free(p);
        if (!ok)
            return MESHCTL_EXIT_FAIL;
    }
    if (kube)
        return kcluster_install(nodes);
    int rc = inst_prepare_dir(nodes, false);
    if (rc != 0)
        return rc;
    struct cluster c;
    if (cluster_open(&c, true) < 0)
        return MESHCTL_EXIT_FAIL;
    inst_make_dirs(&c);
    char *state = cl_path(&c, "state");
    if (net_create(&c, err, sizeof(err)) < 0) {
        free(state);
        return inst_fail(&c, "network", err, NULL);
    }
    if (write_default_namespace(&c) < 0) {
        free(state);
        return inst_fail(&c, "writing namespace default", strerror(errno), NULL);
    }

    /* Control plane. */
    char *meshd = xasprintf("%s/meshd", c.bindir);
    char *config = cl_path(&c, "config");
    char *log = cl_path(&c, "meshd.log");
    char cp[64];
    cl_infra_netns(&c, "cp", cp, sizeof(cp));
    const char *margv[] = {meshd,      "--config-dir",    config,         "--state-dir",      state,
                           "--listen", CLUSTER_MESHD_XDS, "--monitoring", CLUSTER_MONITORING, NULL};
    pid_t pid = inst_start_daemon(&c, "meshd", cp, log, margv, err, sizeof(err));
    free(meshd);
    if (pid < 0 || !inst_wait_ready(pid, PROBE_HTTP, cp, CLUSTER_MONITORING, "/ready")) {
        rc = inst_fail(&c, "meshd (control plane) did not become ready", err, log);
        goto out;
    }
    printf(CHECK_MARK " meshd (control plane) ready\n");
    fflush(stdout);

    /* Node agents first: a ztunnel in in-pod mode connects to its node's agent. */
    char *cni = xasprintf("%s/mesh-cni", c.bindir);
    pid_t cni_pids[CLUSTER_MAX_NODES + 1];
    for (int k = 1; k <= c.n_nodes; k++) {
        cl_node_name(k, node, sizeof(node));
        cl_node_netns(&c, k, netns, sizeof(netns));
        char *sock = cl_path(&c, "nodes/%s/zds.sock", node);
        char *clog = cl_path(&c, "nodes/%s/mesh-cni.log", node);
        char label[64];
        snprintf(label, sizeof(label), "mesh-cni-%s", node);
        const char *cargv[] = {cni,    "--zds-socket", sock, "--config-dir",
                               config, "--node",       node, NULL};
        cni_pids[k] = -1;
        if (inst_mint_token(&c, node, err, sizeof(err)) == 0)
            cni_pids[k] = inst_start_daemon(&c, label, netns, clog, cargv, err, sizeof(err));
        free(sock);
        free(clog);
        if (cni_pids[k] < 0) {
            free(cni);
            rc = inst_fail(&c, node, err, NULL);
            goto out;
        }
    }
    free(cni);
    for (int k = 1; k <= c.n_nodes; k++) {
        cl_node_name(k, node, sizeof(node));
        char *sock = cl_path(&c, "nodes/%s/zds.sock", node);
        char *clog = cl_path(&c, "nodes/%s/mesh-cni.log", node);
        bool ok = inst_wait_ready(cni_pids[k], PROBE_SOCKET, NULL, NULL, sock);
        free(sock);
        if (!ok) {
            snprintf(err, sizeof(err), "mesh-cni on %s did not become ready", node);
            rc = inst_fail(&c, err, NULL, clog);
            free(clog);
            goto out;
        }
        free(clog);
        printf(CHECK_MARK " mesh-cni on %s ready\n", node);
        fflush(stdout);
    }

    rc = inst_ztunnels(&c, err, sizeof(err));
    if (rc != 0)
        goto out;
    kp_sync(&c);
    char range[48];
    if (c.n_nodes == 1)
        snprintf(range, sizeof(range), "node-1");
    else
        snprintf(range, sizeof(range), "node-1..node-%d", c.n_nodes);
    printf(CHECK_MARK " Installation complete\n"
                      "  nodes %s, control plane %s, cluster directory %s\n"
                      "  Next: meshctl apply -f samples/echo.yaml && meshctl get pods -A -o wide\n",
           range, CLUSTER_MESHD_XDS, c.dir);
    cluster_close(&c);
    rc = 0;
out:
    free(config);
    free(log);
    free(state);
    return rc;
}

int
uninstall_main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            uninstall_usage(stdout);
            return 0;
        }
        fprintf(stderr, "meshctl uninstall: unexpected argument \"%s\"\n", argv[i]);
        return MESHCTL_EXIT_USAGE;
    }
    struct cluster c = {.lock_fd = -1};
    c.dir = xstrdup(cluster_dir());
    c.bindir = xstrdup(cl_self_bindir());
    char *meta = cl_path(&c, "cluster.json");
    char *pids = cl_path(&c, "pids");
    char *nsd = cl_path(&c, "netns.d");
    bool ours = cl_exists(meta) || cl_exists(pids) || cl_exists(nsd);
    free(meta);
    free(pids);
    free(nsd);
    if (!ours) {
        fprintf(stderr, CROSS_MARK " no cluster in %s\n", c.dir);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    char *lock = cl_path(&c, "lock");
    c.lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock);
    if (c.lock_fd >= 0)
        flock(c.lock_fd, LOCK_EX);
    char *metap = cl_path(&c, "cluster.json");
    c.meta = cl_read_json(metap);
    free(metap);
    int rc;
    if (cluster_kube(&c))
        rc = kcluster_uninstall(&c, true) < 0 ? MESHCTL_EXIT_FAIL : 0;
    else
        rc = inst_teardown(&c, true) < 0 ? MESHCTL_EXIT_FAIL : 0;
    if (rc == 0)
        printf(CHECK_MARK " Uninstall complete\n");
    cluster_close(&c);
    return rc;
}
