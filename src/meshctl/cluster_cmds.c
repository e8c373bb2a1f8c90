/*
 * cluster_cmds.c - meshctl label, exec and logs on the local cluster.
 *
 *   meshctl label KIND NAME k=v... k-... [-n NS] [--overwrite]
 *   meshctl exec [-n NS] pod/NAME|deploy/NAME|svc/NAME|NAME -- CMD [ARGS...]
 *   meshctl logs ztunnel|mesh-cni [--node N] | meshd | pod/NAME|deploy/NAME|NAME [-n NS]
 *                [-f] [--tail N]
 *
 * label rewrites the object's file in config/ at once, so meshd and mesh-cni
 * follow (enrolling a namespace is `label ns NAME istio.io/dataplane-mode=ambient`).
 * exec runs CMD in the pod's network namespace with the pod's environment
 * and /etc/netns files, in the pod's directory, and exits with CMD's status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster.h"
#include "meshctl.h"

void
label_usage(FILE *f)
{
    fprintf(
        f,
        "Usage: meshctl label KIND NAME KEY=VALUE... KEY-... [-n NAMESPACE] [--overwrite]\n"
        "  Sets or removes labels; e.g. meshctl label ns demo istio.io/dataplane-mode=ambient\n");
}

void
exec_usage(FILE *f)
{
    fprintf(
        f,
        "Usage: meshctl exec [-n NAMESPACE] pod/NAME|deploy/NAME|svc/NAME|NAME -- CMD [ARGS...]\n"
        "  Runs CMD in the pod's network namespace with its environment; exits with CMD's\n"
        "  status. e.g. meshctl exec -n demo deploy/curl -- curl -s echo/hello\n");
}

void
logs_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl logs ztunnel|mesh-cni [--node N] | meshd | pod/NAME|deploy/NAME|NAME\n"
            "                    [-n NAMESPACE] [-f] [--tail N]\n");
}

int
label_main(int argc, char **argv)
{
    const char *ns = "default", *kind = NULL, *name = NULL, *edits[128];
    size_t n_edits = 0;
    bool overwrite = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-n") == 0 || strcmp(a, "--namespace") == 0) && i + 1 < argc)
            ns = argv[++i];
        else if (strcmp(a, "--overwrite") == 0)
            overwrite = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            label_usage(stdout);
            return 0;
        } else if (kind == NULL)
            kind = a;
        else if (name == NULL && strchr(kind, '/') == NULL)
            name = a;
        else if (n_edits < ARRAY_LEN(edits))
            edits[n_edits++] = a;
    }
    char kbuf[128];
    snprintf(kbuf, sizeof(kbuf), "%s", kind ? kind : "");
    char *slash = strchr(kbuf, '/');
    if (slash != NULL) {
        *slash = '\0';
        name = slash + 1;
    }
    const struct kind_info *k = kind ? kind_by_alias(kbuf) : NULL;
    if (k == NULL || name == NULL || n_edits == 0) {
        if (kind != NULL && k == NULL)
            fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", kbuf);
        label_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    struct cluster c;
    if (cluster_open(&c, true) < 0 || kcluster_use_kubectl(&c, "label") != 0)
        return MESHCTL_EXIT_FAIL;
    json_t *rec = rec_get(&c, k, k->namespaced ? ns : "", name);
    int rc = 0;
    if (rec == NULL) {
        fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n", k->plural, name);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    json_t *labels = jobj(json_object_get(rec, "object"), "metadata.labels");
    bool added = false, removed = false;
    for (size_t i = 0; i < n_edits && rc == 0; i++) {
        char key[320], val[128];
        bool rm;
        if (cl_parse_label_arg(edits[i], key, sizeof(key), val, sizeof(val), &rm) < 0) {
            fprintf(stderr, "error: invalid label spec: %s\n", edits[i]);
            rc = MESHCTL_EXIT_USAGE;
        } else if (rm) {
            if (json_object_get(labels, key) == NULL)
                fprintf(stderr, "label \"%s\" not found.\n", key);
            else
                removed = json_object_del(labels, key) == 0;
        } else {
            const char *have = js(labels, key);
            if (have != NULL && strcmp(have, val) != 0 && !overwrite) {
                fprintf(stderr, "error: '%s' already has a value (%s), and --overwrite is false\n",
                        key, have);
                rc = MESHCTL_EXIT_FAIL;
            } else if (have == NULL || strcmp(have, val) != 0) {
                json_object_set_new(labels, key, json_string(val));
                added = true;
            }
        }
    }
    if (rc == 0 && (added || removed)) {
        if (json_object_size(labels) == 0)
            json_object_del(jobj(json_object_get(rec, "object"), "metadata"), "labels");
        if (rec_put(&c, k, rec) < 0) {
            fprintf(stderr, "error: writing %s/%s: %s\n", k->resource, name, strerror(errno));
            rc = MESHCTL_EXIT_FAIL;
        } else {
            printf("%s/%s %s\n", k->resource, name, added ? "labeled" : "unlabeled");
            if (strcmp(k->kind, "Pod") == 0)
                kp_sync(&c); /* endpoints follow selectors */
            char err[512] = "";
            if (strcmp(k->kind, "Gateway") == 0 &&
                wp_reconcile(&c, json_object_get(rec, "object"), err, sizeof(err)) < 0)
                fprintf(stderr, "Warning: gateway %s: %s\n", name, err);
        }
    } else if (rc == 0) {
        printf("%s/%s not labeled\n", k->resource, name);
    }
    json_decref(rec);
    cluster_close(&c);
    return rc;
}

/*
 * With a real control plane the objects live in the API server; the kubelets
 * keep pods/<ns>_<name>/run.json of every pod they run, with the Deployment
 * behind it ("owner") and readiness: pod/NAME and deploy/NAME resolve there.
 */
static char *
resolve_kube_pod(const struct cluster *c, const struct kind_info *k, const char *name,
                 const char *ns)
{
    if (strcmp(k->kind, "Service") == 0) {
        fprintf(stderr, "error: with a Kubernetes control plane, exec and logs take pod/NAME or "
                        "deploy/NAME\n");
        return NULL;
    }
    if (strcmp(k->kind, "Pod") == 0) {
        json_t *run = pods_run_info(c, ns, name);
        json_decref(run);
        if (run != NULL)
            return xstrdup(name);
        fprintf(stderr, "Error from server (NotFound): pods \"%s\" not found on this machine\n",
                name);
        return NULL;
    }
    char *dir = cl_path(c, "pods");
    DIR *d = opendir(dir);
    struct dirent *e;
    char *found = NULL;
    size_t nl = strlen(ns);
    while (d != NULL && found == NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ns, nl) != 0 || e->d_name[nl] != '_')
            continue;
        json_t *run = pods_run_info(c, ns, e->d_name + nl + 1);
        if (strcmp(jsd(run, "namespace", ""), ns) == 0 &&
            strcmp(jsd(run, "owner", ""), name) == 0 && json_is_true(json_object_get(run, "ready")))
            found = xstrdup(e->d_name + nl + 1);
        json_decref(run);
    }
    if (d != NULL)
        closedir(d);
    free(dir);
    if (found == NULL)
        fprintf(stderr, "error: %s/%s has no running pod\n", k->resource, name);
    return found;
}

/*
 * The pod |target| names (pod/NAME, NAME, deploy/NAME or svc/NAME: the first
 * running pod it selects). A fresh "name" string, or NULL with a message printed.
 */
static char *
resolve_pod(const struct cluster *c, const char *target, const char *ns)
{
    const char *slash = strchr(target, '/');
    char kind[64] = "pod";
    const char *name = target;

    if (slash != NULL) {
        snprintf(kind, sizeof(kind), "%.*s", (int)(slash - target), target);
        name = slash + 1;
    }
    const struct kind_info *k = kind_by_alias(kind);
    if (k == NULL || (strcmp(k->kind, "Pod") != 0 && strcmp(k->kind, "Deployment") != 0 &&
                      strcmp(k->kind, "Service") != 0)) {
        fprintf(stderr, "error: cannot attach to %s: pods, deployments and services only\n", kind);
        return NULL;
    }
    if (json_is_true(json_object_get(c->meta, "kubernetes")))
        return resolve_kube_pod(c, k, name, ns);
    json_t *rec = rec_get(c, k, ns, name);
    if (rec == NULL) {
        fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n", k->plural, name);
        return NULL;
    }
    if (strcmp(k->kind, "Pod") == 0) {
        json_decref(rec);
        return xstrdup(name);
    }
    json_t *pods = rec_list(c, kind_by_name("Pod"), ns);
    char *found = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(pods, i, r) {
        const char *pn = jsd(r, "object.metadata.name", "");
        bool ready, match;
        if (strcmp(k->kind, "Service") == 0) {
            match = cl_selector_matches(jget(rec, "object.spec.selector"),
                                        jget(r, "object.metadata.labels"));
        } else {
            json_t *run = pods_run_info(c, ns, pn);
            match = js(run, "owner") != NULL && strcmp(js(run, "owner"), name) == 0;
            json_decref(run);
        }
        pods_status(c, ns, pn, &ready);
        if (match && ready && found == NULL)
            found = xstrdup(pn);
    }
    json_decref(pods);
    json_decref(rec);
    if (found == NULL)
        fprintf(stderr, "error: %s/%s has no running pod\n", k->resource, name);
    return found;
}

/*
 * A pod with volumes the kubelet mounted (tokens, ConfigMaps) has a mount
 * namespace of its own (cluster_podrun.c): exec joins its container's, so the
 * command sees those files where the container does. The container is the
 * supervisor's child (ip netns exec runs the command in place), read while the
 * supervisor (start time checked: never a reused pid) lives. 0 when joined.
 */
static int
enter_pod_mounts(const struct cluster *c, const char *ns, const char *pod)
{
    char *label = xasprintf("pod_%s_%s", ns, pod);
    pid_t sup = 0, child = 0;
    unsigned long long start = 0;
    int rc = ledger_proc_get(c, label, &sup, &start);
    free(label);
    if (rc < 0 || !proc_alive(sup, start))
        return -1;
    char *kids = xasprintf("/proc/%d/task/%d/children", (int)sup, (int)sup);
    size_t len = 0;
    char *text = cl_read_file(kids, &len);
    free(kids);
    if (text != NULL) {
        long v = strtol(text, NULL, 10);
        child = v > 0 && v < (1L << 22) ? (pid_t)v : 0;
    }
    free(text);
    if (child <= 0)
        return -1;
    char *path = xasprintf("/proc/%d/ns/mnt", (int)child);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    rc = fd >= 0 && setns(fd, CLONE_NEWNS) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

int
exec_main(int argc, char **argv)
{
    const char *ns = "default", *target = NULL;
    int cmd = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            cmd = i + 1;
            break;
        } else if ((strcmp(a, "-n") == 0 || strcmp(a, "--namespace") == 0) && i + 1 < argc)
            ns = argv[++i];
        else if ((strcmp(a, "-c") == 0 || strcmp(a, "--container") == 0) && i + 1 < argc)
            i++; /* one container runs locally */
        else if (strcmp(a, "-i") == 0 || strcmp(a, "-t") == 0 || strcmp(a, "-it") == 0 ||
                 strcmp(a, "-ti") == 0 || strcmp(a, "--stdin") == 0 || strcmp(a, "--tty") == 0)
            continue; /* stdin and the terminal are ours already */
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            exec_usage(stdout);
            return 0;
        } else if (target == NULL && a[0] != '-')
            target = a;
        else {
            fprintf(stderr, "error: unexpected argument \"%s\"\n", a);
            return MESHCTL_EXIT_USAGE;
        }
    }
    if (target == NULL || cmd < 0 || cmd >= argc) {
        exec_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    struct cluster c;
    if (cluster_open(&c, false) < 0)
        return MESHCTL_EXIT_FAIL;
    char *pod = resolve_pod(&c, target, ns);
    json_t *run = pod ? pods_run_info(&c, ns, pod) : NULL;
    if (pod != NULL && (run == NULL || js(run, "netns") == NULL))
        fprintf(stderr, "error: pod %s/%s has no runtime record\n", ns, pod);
    if (run == NULL || js(run, "netns") == NULL) {
        free(pod);
        json_decref(run);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    char *root = cl_path(&c, "pods/%s_%s/root", ns, pod);
    size_t n_env = json_array_size(json_object_get(run, "env"));
    char **env = xcalloc(n_env + 2, sizeof(*env));
    size_t n = 0;
    for (size_t i = 0; i < n_env; i++)
        env[n++] = xstrdup(json_string_value(json_array_get(json_object_get(run, "env"), i)));
    const char *term = getenv("TERM");
    if (term != NULL)
        env[n++] = xasprintf("TERM=%s", term);
    char **full = xcalloc((size_t)(argc - cmd) + 5, sizeof(*full));
    size_t m = 0;
    full[m++] = (char *)sys_ip_path();
    full[m++] = "netns";
    full[m++] = "exec";
    full[m++] = xstrdup(js(run, "netns"));
    for (int i = cmd; i < argc; i++)
        full[m++] = argv[i];
    if (json_array_size(json_object_get(run, "mounts")) > 0 && enter_pod_mounts(&c, ns, pod) < 0)
        fprintf(stderr,
                "Warning: pod %s/%s: its mount namespace is not joined (not running?): "
                "its volumes are not visible\n",
                ns, pod);
    json_decref(run);
    free(pod);
    cluster_close(&c);
    if (chdir(root) < 0)
        fprintf(stderr, "Warning: %s: %s\n", root, strerror(errno));
    free(root);
    signal(SIGPIPE, SIG_DFL);
    execve(full[0], full, env);
    fprintf(stderr, "error: %s: %s\n", full[0], strerror(errno));
    return 126;
}

/* Prints the last |tail| lines of |path| (all when < 0). */
static int
print_tail(const char *path, long tail)
{
    size_t len;
    char *s = cl_read_file(path, &len);
    if (s == NULL) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        return MESHCTL_EXIT_FAIL;
    }
    size_t start = 0;
    if (tail >= 0) {
        long lines = 0;
        start = len;
        while (start > 0) {
            if (s[start - 1] == '\n' && start != len && ++lines >= tail)
                break;
            start--;
        }
        if (tail == 0)
            start = len;
    }
    fwrite(s + start, 1, len - start, stdout);
    free(s);
    return 0;
}

int
logs_main(int argc, char **argv)
{
    const char *ns = "default", *target = NULL, *node = NULL;
    bool follow = false;
    long tail = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-n") == 0 || strcmp(a, "--namespace") == 0) && i + 1 < argc)
            ns = argv[++i];
        else if (strcmp(a, "--node") == 0 && i + 1 < argc)
            node = argv[++i];
        else if (strcmp(a, "-f") == 0 || strcmp(a, "--follow") == 0)
            follow = true;
        else if (strcmp(a, "--tail") == 0 && i + 1 < argc)
            tail = strtol(argv[++i], NULL, 10);
        else if (strncmp(a, "--tail=", 7) == 0)
            tail = strtol(a + 7, NULL, 10);
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            logs_usage(stdout);
            return 0;
        } else if (target == NULL && a[0] != '-')
            target = a;
        else {
            fprintf(stderr, "error: unexpected argument \"%s\"\n", a);
            return MESHCTL_EXIT_USAGE;
        }
    }
    if (target == NULL) {
        logs_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    struct cluster c;
    if (cluster_open(&c, false) < 0)
        return MESHCTL_EXIT_FAIL;
    char *path = NULL;
    if (strcmp(target, "meshd") == 0) {
        path = cl_path(&c, "meshd.log");
    } else if (strcmp(target, "ztunnel") == 0 || strcmp(target, "mesh-cni") == 0) {
        char nb[32];
        if (node == NULL) {
            cl_node_name(1, nb, sizeof(nb));
            if (c.n_nodes > 1)
                fprintf(stderr, "Found %d nodes, using %s (--node picks another)\n", c.n_nodes, nb);
            node = nb;
        }
        bool known = false;
        for (int k = 1; k <= c.n_nodes; k++) {
            char nn[32];
            cl_node_name(k, nn, sizeof(nn));
            known |= strcmp(nn, node) == 0;
        }
        if (!known)
            fprintf(stderr, "error: no node \"%s\" in this cluster\n", node);
        else
            path = cl_path(&c, "nodes/%s/%s.log", node, target);
    } else {
        char *pod = resolve_pod(&c, target, ns);
        if (pod != NULL)
            path = cl_path(&c, "pods/%s_%s/log", ns, pod);
        free(pod);
    }
    cluster_close(&c);
    if (path == NULL)
        return MESHCTL_EXIT_FAIL;
    if (follow) {
        char n[32];
        if (tail >= 0)
            snprintf(n, sizeof(n), "%ld", tail);
        else
            snprintf(n, sizeof(n), "+1");
        const char *targv[] = {"tail", "-n", n, "-F", path, NULL};
        execvp("tail", (char *const *)targv);
        fprintf(stderr, "error: tail: %s\n", strerror(errno));
        free(path);
        return MESHCTL_EXIT_FAIL;
    }
    int rc = print_tail(path, tail);
    free(path);
    return rc;
}
