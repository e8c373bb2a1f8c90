/*
 * cluster_podrun.c - running a pod's container (the embedded cluster's and
 * the kubelet's): run.json from pod_spec.c, the name files `ip netns exec`
 * lays over /etc (hosts with every Service's names, a resolv.conf that leads
 * nowhere), and the supervisor.
 *
 * The supervisor (meshctl __pod-run POD_DIR) leads the pod's process group:
 * it runs `ip netns exec <netns> CMD...` with the pod's environment in
 * POD_DIR/root, output to POD_DIR/log, waits, and records how the container
 * ended in exit.json (for STATUS). It never restarts it: the embedded
 * cluster's RESTARTS stays 0; the kubelet starts a new supervisor per
 * restartPolicy. run.json's "mounts" (the kubelet's projected tokens) are
 * bind-mounted read-only in a mount namespace of the pod's own first.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"

#define ETC_NETNS "/etc/netns"

int
podrun_prepare(struct cluster *c, const json_t *pod, const json_t *svcs, json_t *run, char *err,
               size_t errlen)
{
    const char *ns = jsd(pod, "metadata.namespace", "default");
    const char *name = jsd(pod, "metadata.name", "");
    json_t *own = svcs == NULL ? rec_list(c, kind_by_name("Service"), NULL) : NULL;

    char *home = cl_path(c, "pods/%s_%s/root", ns, name);
    pod_spec(pod, svcs != NULL ? svcs : own, c->bindir, home, run);
    free(home);
    json_object_set_new(run, "created", json_integer((json_int_t)time(NULL)));
    char *runp = cl_path(c, "pods/%s_%s/run.json", ns, name);
    int rc = cl_write_json(runp, run);
    free(runp);
    if (rc < 0) {
        snprintf(err, errlen, "writing run.json of %s/%s", ns, name);
    } else {
        rc = podrun_write_dns(c, ns, name, run, svcs != NULL ? svcs : own, err, errlen);
    }
    json_decref(own);
    return rc;
}

/* Writes |path| unless it already holds |s|. */
static int
write_if_changed(const char *path, const char *s)
{
    char *old = cl_read_file(path, NULL);
    bool same = old != NULL && strcmp(old, s) == 0;
    free(old);
    return same ? 0 : cl_write_atomic(path, s, strlen(s), 0644);
}

int
podrun_write_dns(struct cluster *c, const char *ns, const char *name, const json_t *run,
                 const json_t *svcs, char *err, size_t errlen)
{
    const char *netns = js(run, "netns");
    struct stat st;
    size_t i;
    json_t *r;

    if (netns == NULL)
        return 0;
    if (stat(ETC_NETNS, &st) < 0) {
        /* Ours to remove at uninstall (when empty by then). */
        char *marker = cl_path(c, "etc-netns-created");
        cl_write_atomic(marker, "", 0, 0644);
        free(marker);
        if (mkdir(ETC_NETNS, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%s: %s", ETC_NETNS, strerror(errno));
            return -1;
        }
    }
    char *dir = xasprintf("%s/%s", ETC_NETNS, netns);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        free(dir);
        return -1;
    }
    char *hosts = NULL, *resolv = NULL;
    size_t hl, rl;
    FILE *f = open_memstream(&hosts, &hl);
    fprintf(f,
            "# Kubernetes-managed hosts file (meshctl local cluster): pod and Service names.\n"
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "%s\t%s\n",
            jsd(run, "ip", "127.0.0.1"), name);
    json_array_foreach(svcs, i, r) {
        const char *ip = js(r, "object.spec.clusterIP");
        const char *sn = js(r, "object.metadata.name");
        const char *sns = js(r, "object.metadata.namespace");
        if (ip == NULL || sn == NULL || sns == NULL || cl_vip_index(ip) < 0)
            continue;
        /* The short name only in the service's own namespace, as the search list would. */
        fprintf(f, "%s\t%s.%s.svc.cluster.local %s.%s.svc %s.%s%s%s\n", ip, sn, sns, sn, sns, sn,
                sns, strcmp(sns, ns) == 0 ? " " : "", strcmp(sns, ns) == 0 ? sn : "");
    }
    fclose(f);
    f = open_memstream(&resolv, &rl);
    fprintf(f,
            "# meshctl local cluster: Service names are in /etc/hosts; no DNS server answers.\n"
            "search %s.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1\n",
            ns);
    fclose(f);
    char *hp = xasprintf("%s/hosts", dir), *rp = xasprintf("%s/resolv.conf", dir);
    int rc = write_if_changed(hp, hosts) < 0 || write_if_changed(rp, resolv) < 0 ? -1 : 0;
    if (rc < 0)
        snprintf(err, errlen, "writing %s: %s", dir, strerror(errno));
    free(hp);
    free(rp);
    free(hosts);
    free(resolv);
    free(dir);
    return rc;
}

void
pods_sync_dns(struct cluster *c)
{
    json_t *svcs = rec_list(c, kind_by_name("Service"), NULL);
    json_t *pods = rec_list(c, kind_by_name("Pod"), NULL);
    size_t i;
    json_t *r;
    char err[512];

    json_array_foreach(pods, i, r) {
        const char *ns = jsd(r, "object.metadata.namespace", "default");
        const char *name = jsd(r, "object.metadata.name", "");
        json_t *run = pods_run_info(c, ns, name);
        if (run != NULL && podrun_write_dns(c, ns, name, run, svcs, err, sizeof(err)) < 0)
            fprintf(stderr, "Warning: %s\n", err);
        json_decref(run);
    }
    json_decref(pods);
    json_decref(svcs);
}

int
podrun_start(struct cluster *c, const char *ns, const char *name, char *err, size_t errlen)
{
    char *self = xasprintf("%s/meshctl", c->bindir);
    char *dir = pods_dir(c, ns, name);
    char *log = xasprintf("%s/log", dir);
    char *root = xasprintf("%s/root", dir);
    char label[600];
    const char *argv[] = {self, "__pod-run", dir, NULL};
    struct spawn s = {.argv = argv, .log = log, .cwd = root};
    pid_t pid = sys_spawn(&s, err, errlen);
    int rc = pid < 0 ? -1 : 0;

    snprintf(label, sizeof(label), "pod_%s_%s", ns, name);
    if (pid > 0 && ledger_proc_add(c, label, pid) < 0) {
        snprintf(err, errlen, "recording the pid of pod %s/%s", ns, name);
        proc_stop_group(pid, 0, CLUSTER_STOP_MS);
        rc = -1;
    }
    free(self);
    free(dir);
    free(log);
    free(root);
    return rc;
}

/* NULL-terminated copies of a JSON string array, after |lead| fixed strings. */
static char **
strv(const json_t *arr, const char *const *lead, size_t n_lead)
{
    char **v = xcalloc(n_lead + json_array_size(arr) + 1, sizeof(*v));
    size_t n = 0, i;
    json_t *s;
    for (size_t j = 0; j < n_lead; j++)
        v[n++] = xstrdup(lead[j]);
    json_array_foreach(arr, i, s)
        v[n++] = xstrdup(json_is_string(s) ? json_string_value(s) : "");
    return v;
}

static void
strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

int
pod_run_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: meshctl __pod-run POD_DIR (started by meshctl apply)\n");
        return MESHCTL_EXIT_USAGE;
    }
    char *runp = xasprintf("%s/run.json", argv[1]);
    char *exitp = xasprintf("%s/exit.json", argv[1]);
    json_t *run = cl_read_json(runp);
    free(runp);
    if (run == NULL || js(run, "netns") == NULL) {
        fprintf(stderr, "meshctl __pod-run: %s/run.json: unreadable\n", argv[1]);
        free(exitp);
        json_decref(run);
        return MESHCTL_EXIT_FAIL;
    }
    const char *lead[] = {sys_ip_path(), "netns", "exec", js(run, "netns")};
    char **cargv = strv(json_object_get(run, "argv"), lead, ARRAY_LEN(lead));
    char **cenv = strv(json_object_get(run, "env"), NULL, 0);
    /* The kubelet's projected volumes: [source dir, mountPath] pairs (kubelet_token.c). */
    size_t n_mounts = json_array_size(json_object_get(run, "mounts"));
    json_t *pairs = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(run, "mounts"), i, m) {
        json_array_append_new(pairs, json_string(jsd(m, "source", "")));
        json_array_append_new(pairs, json_string(jsd(m, "target", "")));
    }
    char **mnt = strv(pairs, NULL, 0);
    json_decref(pairs);
    json_decref(run);

    pid_t pid = fork();
    if (pid == 0) {
        /* A mount namespace of the pod's own (ip netns exec makes one more inside it). */
        if (n_mounts > 0 &&
            (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)) {
            fprintf(stderr, "meshctl: the pod's mount namespace: %s\n", strerror(errno));
            _exit(126);
        }
        for (size_t k = 0; k + 1 < 2 * n_mounts; k += 2)
            if (mount(mnt[k], mnt[k + 1], NULL, MS_BIND, NULL) < 0 ||
                mount(NULL, mnt[k + 1], NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
                fprintf(stderr, "meshctl: mounting %s on %s: %s\n", mnt[k], mnt[k + 1],
                        strerror(errno));
                _exit(126);
            }
        execve(cargv[0], cargv, cenv);
        fprintf(stderr, "meshctl: starting the container: %s: %s\n", cargv[0], strerror(errno));
        _exit(127);
    }
    strv_free(cargv);
    strv_free(cenv);
    strv_free(mnt);
    if (pid < 0) {
        fprintf(stderr, "meshctl: fork: %s\n", strerror(errno));
        free(exitp);
        return MESHCTL_EXIT_FAIL;
    }
    /* The group's SIGTERM is for the container; we stay to record how it ended. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = 0;
            break;
        }
    char now[32];
    cl_rfc3339((long long)time(NULL), now, sizeof(now));
    json_t *ex = json_pack("{s:i, s:i, s:s}", "exitCode",
                           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                           "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0, "finishedAt", now);
    cl_write_json(exitp, ex);
    json_decref(ex);
    free(exitp);
    return 0;
}
