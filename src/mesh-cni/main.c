/*
 * main.c - mesh-cni, the node agent (istio-cni's counterpart).
 *
 *   mesh-cni --zds-socket PATH (--config-dir DIR | --kubeconfig FILE | --in-cluster)
 *            --node NAME
 *
 * It listens on PATH for ztunnels (ZDS, reference 2.3), follows the same
 * Kubernetes YAML as meshd, or the API server (its node's pods and the
 * namespaces), and for each enrolled pod of NAME installs the in-pod
 * redirection rules and hands the pod's network namespace to ztunnel.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "log/log.h"
#include "admin/admin_http.h"
#include "install.h"
#include "mesh_cni.h"
#include "plugin.h"

static struct loop *loop;
static struct loop_io sig_io;
static struct cni *cni;
static struct install *inst;

#define EXCLUDE_MAX 16

static void
usage(FILE *f)
{
    /* One option a line, as printed: formatting would split the strings around the macro. */
    /* clang-format off */
    fprintf(f, "usage: mesh-cni --zds-socket PATH --node NAME\n"
               "                (--config-dir DIR | --kubeconfig FILE | --in-cluster) [options]\n"
               "  --zds-socket PATH       where ztunnels connect (unix SOCK_SEQPACKET)\n"
               "  --config-dir DIR        Kubernetes YAML, as meshd reads it (followed live)\n"
               KUBE_SRC_USAGE("--config-dir")
               "                          (this node's pods and all namespaces are watched;\n"
               "                          pods in the mesh get ambient.istio.io/redirection)\n"
               "  --node NAME             enroll the pods of this node (default: env NODE_NAME)\n"
               "  --debounce-ms MS        wait for config changes to settle (100)\n"
               "  --plugin-socket PATH    where the CNI plugin (amesh-cni) reports new pods\n"
               "                          (its default agentSocket: " CNI_SOCKET_DEFAULT ")\n"
               "  --plugin-wait-ms MS     how long a pod's ADD waits to be decided (5000)\n"
               "  --plugin-state DIR      the sandboxes the plugin reported, for a restart\n"
               "                          (default: cni-sandboxes beside the plugin socket)\n"
               "  --host-proc DIR         the host's /proc, searched for the namespaces of\n"
               "                          pods no plugin reported (/proc; 'none': off)\n"
               "  --netns-dir DIR         where runtimes pin sandboxes (default /var/run/netns)\n"
               "  --cni-bin-dir DIR       install amesh-cni there (the host's /opt/cni/bin)\n"
               "  --cni-conf-dir DIR      chain amesh-cni last in the primary configuration\n"
               "                          there (the host's /etc/cni/net.d), while running\n"
               "  --cni-plugin-binary PATH  the amesh-cni to install (default: beside us)\n"
               "  --cni-log-level LEVEL   the plugin's logLevel in its entry (info)\n"
               "  --cni-exclude-namespaces LIST  comma-separated, never sent to mesh-cni\n"
               "                          (default kube-system)\n"
               "  --cni-keep              on exit, leave the binary and the entry in place\n"
               "  --ready-port PORT       /readyz on every address (0, the default: off):\n"
               "                          200 once listed, ZDS open and amesh-cni chained\n"
               "  --log-level LEVEL       error, warn, info (default) or debug\n"
               "  --log-format FORMAT     plain (default) or json\n");
    /* clang-format on */
}

static void
on_signal(void *arg, uint32_t events)
{
    struct signalfd_siginfo si;
    (void)arg;
    (void)events;
    while (read(sig_io.fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_info("signal %u: stopping (the rules stay in the pods)", si.ssi_signo);
            loop_stop(loop);
        }
}

static void
on_ready(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    (void)arg;
    if (strcmp(req->path, "/readyz") != 0)
        return;
    bool ready = cni_ready(cni) && install_ready(inst);
    r->status = ready ? 200 : 503;
    r->body = xstrdup(ready ? "ready\n" : "not ready\n");
}

/* The plugin binary beside ours (the image's /usr/local/bin, the build's bin/). */
static char *
default_plugin_binary(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return xstrdup(CNI_PLUGIN_TYPE);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    return xasprintf("%.*s/%s", (int)(slash - self), self, CNI_PLUGIN_TYPE);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"zds-socket", required_argument, NULL, 'z'},
        {"config-dir", required_argument, NULL, 'c'},
        {"node", required_argument, NULL, 'n'},
        {"debounce-ms", required_argument, NULL, 'D'},
        {"plugin-socket", required_argument, NULL, 'p'},
        {"plugin-wait-ms", required_argument, NULL, 'w'},
        {"plugin-state", required_argument, NULL, 'S'},
        {"host-proc", required_argument, NULL, 'P'},
        {"netns-dir", required_argument, NULL, 'N'},
        {"cni-bin-dir", required_argument, NULL, 'B'},
        {"cni-conf-dir", required_argument, NULL, 'C'},
        {"cni-plugin-binary", required_argument, NULL, 'b'},
        {"cni-log-level", required_argument, NULL, 'L'},
        {"cni-exclude-namespaces", required_argument, NULL, 'x'},
        {"cni-keep", no_argument, NULL, 'k'},
        {"ready-port", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        KUBE_SRC_LONG_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cni_opts o = {.debounce_ms = 100,
                         .plugin_wait_ms = PLUGIN_WAIT_MS,
                         .host_proc = "/proc",
                         .netns_dir = "/var/run/netns"};
    struct install_opts io = {.entry = {.log_level = "info"}};
    const char *exclude_list = "kube-system";
    const char *excl[EXCLUDE_MAX];
    char *excl_buf = NULL, *plugin_bin = NULL;
    bool keep = false;
    unsigned ready_port = 0;
    struct admin_http *ready_srv = NULL;
    char err[1024];
    sigset_t set;
    int ch;

    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (kube_src_flag(&o.kube, ch, optarg))
            continue;
        switch (ch) {
        case 'z': o.zds_socket = optarg; break;
        case 'c': o.config_dir = optarg; break;
        case 'n': o.node = optarg; break;
        case 'D': o.debounce_ms = (unsigned)flag_long("--debounce-ms", optarg, 0, 5000); break;
        case 'p': o.plugin_socket = optarg; break;
        case 'S': o.plugin_state = optarg; break;
        case 'w':
            o.plugin_wait_ms = (unsigned)flag_long("--plugin-wait-ms", optarg, 100, 30000);
            break;
        case 'P':
            o.host_proc = strcmp(optarg, "none") == 0 ? NULL : optarg;
            break;
        case 'N':
            o.netns_dir = optarg;
            break;
        case 'B':
            io.bin_dir = optarg;
            break;
        case 'C':
            io.conf_dir = optarg;
            break;
        case 'b':
            io.plugin_bin = optarg;
            break;
        case 'L':
            if (log_parse_level(optarg) < 0)
                fatal("--cni-log-level: \"%s\" is not error, warn, info or debug", optarg);
            io.entry.log_level = optarg;
            break;
        case 'x':
            exclude_list = optarg;
            break;
        case 'k':
            keep = true;
            break;
        case 'r':
            ready_port = (unsigned)flag_long("--ready-port", optarg, 0, 65535);
            break;
        case 'l':
            flag_log_level(optarg);
            break;
        case 'f':
            log_set_json(flag_log_json(optarg));
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.node == NULL && getenv("NODE_NAME") != NULL && getenv("NODE_NAME")[0] != '\0')
        o.node = getenv("NODE_NAME"); /* the DaemonSet's downward API: spec.nodeName */
    if (kube_src_finish(&o.kube, o.config_dir != NULL, err, sizeof(err)) < 0)
        fatal("%s", err);
    if (optind != argc || o.zds_socket == NULL || o.node == NULL ||
        (o.config_dir == NULL && !kube_src_enabled(&o.kube))) {
        usage(stderr);
        return 2;
    }
    if (io.conf_dir != NULL && (o.plugin_socket == NULL || o.plugin_socket[0] != '/'))
        fatal("--cni-conf-dir needs --plugin-socket with an absolute path (the plugin's "
              "agentSocket)");
    io.entry.socket = o.plugin_socket;
    excl_buf = xstrdup(exclude_list);
    for (char *save = NULL, *t = strtok_r(excl_buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (io.entry.n_exclude == EXCLUDE_MAX)
            fatal("--cni-exclude-namespaces: more than %d", EXCLUDE_MAX);
        excl[io.entry.n_exclude++] = t;
    }
    io.entry.exclude = excl;
    if (io.bin_dir != NULL && io.plugin_bin == NULL)
        io.plugin_bin = plugin_bin = default_plugin_binary();
    char state_dir[4096];
    if (o.plugin_socket != NULL && o.plugin_state == NULL) {
        const char *slash = strrchr(o.plugin_socket, '/');
        int dlen = slash == NULL ? 1 : slash == o.plugin_socket ? 1 : (int)(slash - o.plugin_socket);
        snprintf(state_dir, sizeof(state_dir), "%.*s/cni-sandboxes", dlen,
                 slash == NULL ? "." : o.plugin_socket);
        o.plugin_state = state_dir;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    loop = loop_new();
    struct cni *c = cni = cni_start(loop, &o, err, sizeof(err));
    if (c == NULL)
        fatal("%s", err);
    /* After the plugin's socket is listening: a pod created once we are chained finds it. */
    if ((io.bin_dir != NULL || io.conf_dir != NULL) &&
        (inst = install_start(loop, &io, err, sizeof(err))) == NULL)
        fatal("%s", err);
    if (ready_port != 0) {
        struct ipaddr any;
        ipaddr_parse("::", &any);
        ready_srv =
            admin_http_start(loop, &any, (uint16_t)ready_port, 0, on_ready, NULL, err, sizeof(err));
        if (ready_srv == NULL)
            fatal("--ready-port %u: %s", ready_port, err);
    }
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_start(loop, &sig_io, sfd, EPOLLIN, on_signal, NULL) < 0)
        fatal("signalfd: %s", strerror(errno));
    log_info("ready: node %s, %zu pods in the mesh, ZDS on %s%s", o.node, cni_n_enrolled(c),
             o.zds_socket,
             kube_src_enabled(&o.kube) ? " (opened once the API server's pods are listed)" : "");
    loop_run(loop);
    loop_io_stop(loop, &sig_io);
    close(sfd);
    /* Out of the chain first: a pod created from now on starts without us, the scan of the
     * next mesh-cni finds it. */
    install_stop(inst, !keep);
    admin_http_stop(ready_srv);
    cni_stop(c);
    free(excl_buf);
    free(plugin_bin);
    loop_run_deferred(loop);
    loop_free(loop);
    return 0;
}
