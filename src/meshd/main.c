/*
 * main.c - meshd, the control plane: config directory -> model -> delta xDS,
 * and the CA, on 15012; metrics and readiness on 15014.
 *
 *   meshd --state-dir DIR [--config-dir DIR] [--kubeconfig FILE | --in-cluster] [--listen ADDR]
 *   meshd token --state-dir DIR --node NAME [--ttl DUR] [--audience xds|ca] [--revoke]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define LOG_SCOPE "meshd"
#include "base/base.h"
#include "log/log.h"
#include "meshd.h"
#include "net/addr.h"

static struct meshd d;
static struct loop_io sig_io;
static struct loop_timer serving_timer;

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: meshd --state-dir DIR [--config-dir DIR] [--kubeconfig FILE | --in-cluster]\n"
        "             [options]\n"
        "       meshd token --state-dir DIR --node NAME [--ttl DUR] [--audience xds|ca]\n"
        "       meshd token --state-dir DIR --node NAME --revoke   (meshd token --help)\n"
        "  --config-dir DIR        Kubernetes-style YAML, followed live (inotify)\n" KUBE_SRC_USAGE(
            "--config-dir") "  --state-dir DIR         mesh root (created on first start) and "
                            "token key\n"
                            "  --listen ADDR           xDS and CA, TLS (default [::]:15012)\n"
                            "  --monitoring ADDR       metrics and readiness (default [::]:15014)\n"
                            "  --trust-domain TD       (default cluster.local)\n"
                            "  --cluster ID            cluster id in workload uids (default "
                            "Kubernetes)\n"
                            "  --cert-ttl SECS         default workload certificate lifetime "
                            "(86400)\n"
                            "  --max-cert-ttl SECS     longest lifetime a proxy may ask for "
                            "(7776000)\n"
                            "  --debounce-ms MS        wait for config changes to settle (100)\n"
                            "  --max-conns-per-ip N    connections from one address, 0 = no limit "
                            "(64)\n"
                            "  --allow-x25519          also offer X25519 key exchange (not "
                            "FIPS-approved)\n"
                            "  --ca-trusted-node-accounts NS/SA,...\n"
                            "                          Kubernetes accounts that may obtain "
                            "certificates of pods\n"
                            "                          on their node (default "
                            "istio-system/ztunnel)\n"
                            "  --waypoint-xds-address IP:PORT\n"
                            "                          meshd's address in the waypoint Deployments "
                            "it makes for\n"
                            "                          Gateways of class istio-waypoint (default: "
                            "Service\n"
                            "                          istio-system/istiod's cluster IP, port "
                            "15012)\n"
                            "  --waypoint-image IMAGE  their image (default amesh/waypoint:dev)\n"
                            "  --log-level LEVEL       error, warn, info (default) or debug\n"
                            "  --log-format FORMAT     plain (default) or json; env LOG_FORMAT "
                            "too\n");
}

static void
parse_addr(const char *flag, const char *s, struct ipaddr *ip, uint16_t *port)
{
    if (authority_parse(s, strlen(s), ip, port) < 0)
        fatal("%s: \"%s\" is not IP:PORT or [IPv6]:PORT", flag, s);
}

static void
parse_flags(int argc, char **argv, struct meshd_opts *o)
{
    static const struct option opts[] = {
        {"config-dir", required_argument, NULL, 'c'},
        KUBE_SRC_LONG_OPTIONS,
        {"state-dir", required_argument, NULL, 's'},
        {"listen", required_argument, NULL, 'L'},
        {"monitoring", required_argument, NULL, 'M'},
        {"trust-domain", required_argument, NULL, 'T'},
        {"cluster", required_argument, NULL, 'k'},
        {"cert-ttl", required_argument, NULL, 't'},
        {"max-cert-ttl", required_argument, NULL, 'm'},
        {"debounce-ms", required_argument, NULL, 'D'},
        {"max-conns-per-ip", required_argument, NULL, 'P'},
        {"allow-x25519", no_argument, NULL, 'x'},
        {"ca-trusted-node-accounts", required_argument, NULL, 'A'},
        {"waypoint-xds-address", required_argument, NULL, 'W'},
        {"waypoint-image", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("LOG_FORMAT");
    const char *trusted = KUBEAUTH_DEFAULT_TRUSTED;
    char err[400];
    int c;

    parse_addr("--listen", "[::]:15012", &o->listen_ip, &o->listen_port);
    parse_addr("--monitoring", "[::]:15014", &o->monitor_ip, &o->monitor_port);
    o->trust_domain = "cluster.local";
    o->cluster_id = "Kubernetes";
    o->cert_ttl = 86400;
    o->max_cert_ttl = 90L * 86400;
    o->debounce_ms = 100;
    o->max_conns_per_ip = 64;
    log_set_json(env != NULL && strcmp(env, "json") == 0);
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (kube_src_flag(&o->kube, c, optarg))
            continue;
        switch (c) {
        case 'c': o->config_dir = optarg; break;
        case 's': o->state_dir = optarg; break;
        case 'L': parse_addr("--listen", optarg, &o->listen_ip, &o->listen_port); break;
        case 'M': parse_addr("--monitoring", optarg, &o->monitor_ip, &o->monitor_port); break;
        case 'T': o->trust_domain = optarg; break;
        case 'k': o->cluster_id = optarg; break;
        case 't': o->cert_ttl = flag_long("--cert-ttl", optarg, 60, 90L * 86400); break;
        case 'm': o->max_cert_ttl = flag_long("--max-cert-ttl", optarg, 60, 90L * 86400); break;
        case 'D': o->debounce_ms = (uint64_t)flag_long("--debounce-ms", optarg, 0, 5000); break;
        case 'P':
            o->max_conns_per_ip = (unsigned)flag_long("--max-conns-per-ip", optarg, 0, 1000000);
            break;
        case 'x': o->allow_x25519 = true; break;
        case 'A': trusted = optarg; break;
        case 'W': {
            struct ipaddr ip;
            uint16_t port;
            parse_addr("--waypoint-xds-address", optarg, &ip, &port);
            o->waypoint_xds = optarg;
            break;
        }
        case 'i':
            o->waypoint_image = optarg;
            break;
        case 'l':
            flag_log_level(optarg);
            break;
        case 'f':
            log_set_json(flag_log_json(optarg));
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        fatal("unexpected argument \"%s\"", argv[optind]);
    }
    if (kube_src_finish(&o->kube, o->config_dir != NULL, err, sizeof(err)) < 0)
        fatal("%s", err);
    if ((o->config_dir == NULL && !kube_src_enabled(&o->kube)) ||
        o->state_dir == NULL) {
        usage(stderr);
        fatal("--state-dir and a config source (--config-dir, --kubeconfig, --in-cluster) are "
              "required");
    }
    if (o->cert_ttl > o->max_cert_ttl)
        fatal("--cert-ttl %ld is above --max-cert-ttl %ld", o->cert_ttl, o->max_cert_ttl);
    if (kubeauth_accounts_parse(trusted, &o->trusted_node_accounts, err, sizeof(err)) < 0)
        fatal("--ca-trusted-node-accounts: %s", err);
}

/* The serving certificate is renewed at half-life; connections keep the context they began with. */
static void
on_serving_renew(void *arg)
{
    (void)arg;
    long na;
    SSL_CTX *fresh = meshd_serving_ctx(d.ca, &d.opts, MESHD_SERVING_LIFETIME, &na);
    if (fresh == NULL) {
        log_error("cannot renew the serving certificate; retrying in 60 s");
        loop_timer_start(d.loop, &serving_timer, 60000, on_serving_renew, NULL);
        return;
    }
    SSL_CTX_free(d.serving);
    d.serving = fresh;
    d.serving_not_after = na;
    log_info("renewed the serving certificate");
    loop_timer_start(d.loop, &serving_timer, (uint64_t)MESHD_SERVING_LIFETIME / 2 * 1000,
                     on_serving_renew, NULL);
}

static void
on_signal(void *arg, uint32_t events)
{
    struct signalfd_siginfo si;
    (void)arg;
    (void)events;
    while (read(sig_io.fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_info("signal %u: stopping", si.ssi_signo);
            loop_stop(d.loop);
        }
    }
}

int
main(int argc, char **argv)
{
    char err[1024];
    sigset_t set;

    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return meshd_cmd_token(argc - 1, argv + 1);
    parse_flags(argc, argv, &d.opts);
    signal(SIGPIPE, SIG_IGN);
    mesh_raise_nofile();
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);

    d.loop = loop_new();
    d.start_ms = clock_wall_ms();
    if (meshd_state_open(d.opts.state_dir, &d.ca, d.token_key, err, sizeof(err)) < 0)
        fatal("%s", err);
    d.serving = meshd_serving_ctx(d.ca, &d.opts, MESHD_SERVING_LIFETIME,
                                  &d.serving_not_after);
    if (d.serving == NULL)
        fatal("cannot issue the serving certificate");
    loop_timer_start(d.loop, &serving_timer, (uint64_t)MESHD_SERVING_LIFETIME / 2 * 1000,
                     on_serving_renew, NULL);
    if (meshd_tokens_start(&d, err, sizeof(err)) < 0)
        fatal("%s", err);
    if ((d.config = config_start(&d, err, sizeof(err))) == NULL)
        fatal("%s", err);
    /* Before the server: the CA's TokenReview uses d.kube. */
    if (meshd_kube_start(&d, err, sizeof(err)) < 0)
        fatal("%s", err);
    if ((d.server = server_start(&d, err, sizeof(err))) == NULL ||
        monitor_start(&d, err, sizeof(err)) < 0)
        fatal("%s", err);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_start(d.loop, &sig_io, sfd, EPOLLIN, on_signal, NULL) < 0)
        fatal("signalfd: %s", strerror(errno));
    d.ready = true;
    char ip[ADDR_STRLEN];
    log_info("ready: xDS and CA on [%s]:%u, monitoring on %u, config %s%s%s, state %s%s",
             ipaddr_str(&d.opts.listen_ip, ip), d.opts.listen_port, d.opts.monitor_port,
             d.opts.config_dir ? d.opts.config_dir : "", d.opts.config_dir && d.kube ? " + " : "",
             d.kube ? "Kubernetes API" : "", d.opts.state_dir,
             d.kube ? " (serving once every kind is listed)" : "");
    loop_run(d.loop);

    loop_io_stop(d.loop, &sig_io);
    close(sfd);
    loop_timer_stop(d.loop, &serving_timer);
    server_stop(d.server);
    meshd_tokens_stop(&d);
    monitor_stop();
    meshd_kube_stop(&d);
    config_stop(d.config);
    loop_run_deferred(d.loop);
    SSL_CTX_free(d.serving);
    ca_free(d.ca);
    loop_free(d.loop);
    log_info("stopped");
    return 0;
}
