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
#include "mesh_cni.h"
#include "plugin.h"

static struct loop *loop;
static struct loop_io sig_io;

static void
usage(FILE *f)
{
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
               "  --log-level LEVEL       error, warn, info (default) or debug\n"
               "  --log-format FORMAT     plain (default) or json\n");
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
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        KUBE_SRC_LONG_OPTIONS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cni_opts o = {.debounce_ms = 100, .plugin_wait_ms = PLUGIN_WAIT_MS};
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
    struct cni *c = cni_start(loop, &o, err, sizeof(err));
    if (c == NULL)
        fatal("%s", err);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_start(loop, &sig_io, sfd, EPOLLIN, on_signal, NULL) < 0)
        fatal("signalfd: %s", strerror(errno));
    log_info("ready: node %s, %zu pods in the mesh, ZDS on %s%s", o.node, cni_n_enrolled(c),
             o.zds_socket,
             kube_src_enabled(&o.kube) ? " (opened once the API server's pods are listed)" : "");
    loop_run(loop);
    loop_io_stop(loop, &sig_io);
    close(sfd);
    cni_stop(c);
    loop_run_deferred(loop);
    loop_free(loop);
    return 0;
}
