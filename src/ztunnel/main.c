/*
 * main.c - ztunnel: flags, start-up, signals and graceful drain.
 *
 * Local mode: --local-config FILE --node NAME --ca-dir DIR.
 * Control-plane mode: --xds-address HOST:PORT [--ca-address HOST:PORT]
 * --root-cert FILE --token FILE --node NAME (config and certificates from meshd).
 * The process runs --workers threads, each with its own event loop; worker 0 is
 * the main thread and also runs the control plane (ztunnel.h, "Threads").
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define LOG_SCOPE "ztunnel"
#include "base/base.h"
#include "buf/buf.h"
#include "conn/hs_guard.h"
#include "channel/channel.h"
#include "config/local_config.h"
#include "hbone/hbone.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "policy/policy.h"
#include "tls/tls_cp.h"
#include "ztunnel.h"

#define DRAIN_POLL_MS 50

const struct sock_opts zt_listen_opts = {.mark = SOCK_MARK_ZTUNNEL, .reuseport = true};

static struct zt zt;
static struct loop_io sig_io;
static struct loop_timer drain_timer;
static uint64_t drain_deadline_ms;
static bool drain_forced;

bool
zt_is_local(const struct zt *z, const struct workload *w)
{
    return w->node != NULL && strcmp(w->node, z->opts.node) == 0;
}

const struct workload *
zt_local_workload(const struct zt *z, const struct ipaddr *ip)
{
    const struct workload *w = model_workload_by_ip(z->model, ip);
    return w != NULL && zt_is_local(z, w) ? w : NULL;
}

void
zt_update_ready(struct zt *z)
{
    z->ready = !z->draining && z->xds_synced && (z->opts.zds_socket == NULL || z->zds_synced);
}

bool
zt_is_own_port(uint16_t port)
{
    return port == ZT_PORT_OUTBOUND || port == ZT_PORT_INBOUND_PLAIN ||
           port == ZT_PORT_HBONE;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: ztunnel --xds-address IP:PORT --root-cert FILE --token FILE --node NAME [options]\n"
            "       ztunnel --local-config FILE --ca-dir DIR --node NAME [options]\n"
            "  --xds-address IP:PORT   meshd's xDS (TLS); config comes from there\n"
            "  --ca-address IP:PORT    meshd's CA (default: the xDS address)\n"
            "  --root-cert FILE        roots that meshd's certificate must chain to\n"
            "  --token FILE            this node's credentials (meshd token --node NAME), renewed\n"
            "                          in memory and rewritten in place when writable; or a\n"
            "                          Kubernetes service-account token (audience istio-ca),\n"
            "                          read again whenever the kubelet rotates it\n"
            "  --xds-hostname NAME     name meshd's certificate must carry\n"
            "                          (default " TLS_CP_DEFAULT_NAME ")\n"
            "  --local-config FILE     workloads, services and policies (YAML), no meshd\n"
            "  --ca-dir DIR            root-cert.pem and root-key.pem to mint certificates\n"
            "  --node NAME             the node whose workloads this ztunnel serves\n"
            "  --zds-socket PATH       in-pod mode: pods and their namespaces from the node\n"
            "                          agent (mesh-cni) on this unix socket\n"
            "  --drain-timeout SECS    SIGTERM drain deadline (default 5)\n"
            "  --pool-idle-timeout SECS close pooled HBONE connections idle this long (300)\n"
            "  --cert-ttl SECS         certificate lifetime to mint or ask for (86400)\n"
            "  --cluster NAME          cluster name for baggage (Kubernetes)\n"
            "  --hbone-handshake-timeout SECS  close a 15008 connection whose TLS handshake\n"
            "                          has not completed in this time (5)\n"
            "  --hbone-max-pending N   pending 15008 handshakes in all; the oldest is closed\n"
            "                          to admit a new one (512)\n"
            "  --hbone-max-pending-per-source N  pending 15008 handshakes from one address;\n"
            "                          more are closed at once (64)\n"
            "  --allow-x25519          also offer X25519 key exchange (not FIPS-approved),\n"
            "                          on HBONE and to the control plane\n"
            "  --workers N             data-path threads, each with its own event loop and\n"
            "                          listeners (1-64; default env ZTUNNEL_WORKERS, else the\n"
            "                          CPUs this process may use, at most 2)\n"
            "  --worker-affinity       pin worker i to the i-th CPU this process may use\n"
            "  --pod-max-connections N open connections of one local pod; more are refused\n"
            "                          (16384)\n"
            "  --pod-max-dials N       connects and HBONE CONNECTs in progress for one local\n"
            "                          pod; more are refused (1024)\n"
            "  --log-level LEVEL       error, warn, info (default) or debug\n"
            "  --log-format FORMAT     plain (default) or json; env LOG_FORMAT too\n");
}

/* ZTUNNEL_WORKERS (Istio's ztunnel reads ZTUNNEL_WORKER_THREADS), else the CPUs we may use, <= 2. */
static unsigned
default_workers(void)
{
    const char *env = getenv("ZTUNNEL_WORKERS");
    cpu_set_t set;

    if (env != NULL && *env != '\0')
        return (unsigned)flag_long("ZTUNNEL_WORKERS", env, 1, ZT_MAX_WORKERS);
    int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
    return n >= 2 ? 2 : 1;
}

static void
parse_flags(int argc, char **argv, struct zt_opts *o)
{
    static const struct option opts[] = {
        {"local-config", required_argument, NULL, 'c'},
        {"xds-address", required_argument, NULL, 'X'},
        {"ca-address", required_argument, NULL, 'C'},
        {"root-cert", required_argument, NULL, 'R'},
        {"token", required_argument, NULL, 'T'},
        {"xds-hostname", required_argument, NULL, 'H'},
        {"zds-socket", required_argument, NULL, 'Z'},
        {"node", required_argument, NULL, 'n'},
        {"ca-dir", required_argument, NULL, 'a'},
        {"drain-timeout", required_argument, NULL, 'd'},
        {"pool-idle-timeout", required_argument, NULL, 'i'},
        {"cert-ttl", required_argument, NULL, 't'},
        {"cluster", required_argument, NULL, 'k'},
        {"allow-x25519", no_argument, NULL, 'x'},
        {"workers", required_argument, NULL, 'w'},
        {"worker-affinity", no_argument, NULL, 'A'},
        {"pod-max-connections", required_argument, NULL, 'P'},
        {"pod-max-dials", required_argument, NULL, 'D'},
        {"hbone-handshake-timeout", required_argument, NULL, 'W'},
        {"hbone-max-pending", required_argument, NULL, 'M'},
        {"hbone-max-pending-per-source", required_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("LOG_FORMAT");
    bool ca_set = false;
    int c;

    o->drain_ms = 5000;
    o->pool_idle_ms = 300000;
    o->cert_ttl_s = 86400;
    o->cluster = "Kubernetes";
    o->cp_name = TLS_CP_DEFAULT_NAME;
    o->pipe_buf = PIPE_BUF_DEFAULT;
    o->hs_timeout_ms = HS_GUARD_TIMEOUT_MS;
    o->hs_max_pending = HS_GUARD_MAX_PENDING;
    o->hs_max_per_source = HS_GUARD_MAX_PER_SOURCE;
    o->pod_max_conns = ZT_POD_MAX_CONNS;
    o->pod_max_dials = ZT_POD_MAX_DIALS;
    o->json_log = env != NULL && strcmp(env, "json") == 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->local_config = optarg;
            break;
        case 'n':
            o->node = optarg;
            break;
        case 'X':
            if (authority_parse(optarg, strlen(optarg), &o->xds_ip, &o->xds_port) < 0)
                fatal("--xds-address: \"%s\" is not IP:PORT or [IPv6]:PORT", optarg);
            o->xds = true;
            break;
        case 'C':
            if (authority_parse(optarg, strlen(optarg), &o->ca_ip, &o->ca_port) < 0)
                fatal("--ca-address: \"%s\" is not IP:PORT or [IPv6]:PORT", optarg);
            ca_set = true;
            break;
        case 'R':
            o->root_cert = optarg;
            break;
        case 'T':
            o->token_file = optarg;
            break;
        case 'H':
            o->cp_name = optarg;
            break;
        case 'Z':
            o->zds_socket = optarg;
            break;
        case 'a':
            o->ca_dir = optarg;
            break;
        case 'd':
            o->drain_ms = (uint64_t)flag_long("--drain-timeout", optarg, 0, 3600) * 1000;
            break;
        case 'i':
            o->pool_idle_ms = (uint64_t)flag_long("--pool-idle-timeout", optarg, 1, 86400) * 1000;
            break;
        case 't':
            o->cert_ttl_s = flag_long("--cert-ttl", optarg, 10, 90L * 86400);
            break;
        case 'k':
            o->cluster = optarg;
            break;
        case 'x':
            o->allow_x25519 = true;
            break;
        case 'w':
            o->workers = (unsigned)flag_long("--workers", optarg, 1, ZT_MAX_WORKERS);
            break;
        case 'A':
            o->worker_affinity = true;
            break;
        case 'P':
            o->pod_max_conns = (unsigned)flag_long("--pod-max-connections", optarg, 1, 10000000);
            break;
        case 'D':
            o->pod_max_dials = (unsigned)flag_long("--pod-max-dials", optarg, 1, 10000000);
            break;
        case 'W':
            o->hs_timeout_ms = (unsigned)flag_long("--hbone-handshake-timeout", optarg, 1, 60) * 1000;
            break;
        case 'M':
            o->hs_max_pending = (unsigned)flag_long("--hbone-max-pending", optarg, 1, 1000000);
            break;
        case 'S':
            o->hs_max_per_source =
                (unsigned)flag_long("--hbone-max-pending-per-source", optarg, 1, 1000000);
            break;
        case 'l':
            flag_log_level(optarg);
            break;
        case 'f':
            o->json_log = flag_log_json(optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (o->xds) {
        if (o->root_cert == NULL || o->token_file == NULL || o->node == NULL) {
            fprintf(stderr, "ztunnel: --xds-address needs --root-cert, --token and --node\n");
            usage(stderr);
            exit(2);
        }
        if (o->local_config != NULL || o->ca_dir != NULL) {
            fprintf(stderr, "ztunnel: --xds-address and --local-config/--ca-dir exclude each other\n");
            exit(2);
        }
        if (!ca_set) {
            o->ca_ip = o->xds_ip;
            o->ca_port = o->xds_port;
        }
    } else if (o->local_config == NULL || o->node == NULL || o->ca_dir == NULL) {
        fprintf(stderr, "ztunnel: --local-config, --node and --ca-dir are required "
                        "(or --xds-address, --root-cert, --token and --node)\n");
        usage(stderr);
        exit(2);
    }
    log_set_json(o->json_log);
    if (o->workers == 0)
        o->workers = default_workers();
    /*
     * The pending-handshake caps are the process's: each worker's guard gets its share.
     * Balancing (workers.c) spreads one source's connections over the workers too.
     */
    o->hs_max_pending = (o->hs_max_pending + o->workers - 1) / o->workers;
    o->hs_max_per_source = (o->hs_max_per_source + o->workers - 1) / o->workers;
}


static void
on_drain_tick(void *arg)
{
    (void)arg;
    uint64_t now = clock_mono_ms();
    size_t open = workers_n_open(&zt);

    if (open == 0) {
        log_info("drained, exiting");
        loop_stop(zt.loop);
        return;
    }
    if (now >= drain_deadline_ms && !drain_forced) {
        log_warn("drain deadline reached with %zu connections open; closing them", open);
        drain_forced = true;
        workers_abort(&zt);
    } else if (now >= drain_deadline_ms + 2000) {
        log_warn("giving up on %zu connections", open);
        loop_stop(zt.loop);
        return;
    }
    loop_timer_start(zt.loop, &drain_timer, DRAIN_POLL_MS, on_drain_tick, NULL);
}

static void
start_drain(void)
{
    if (zt.draining)
        return;
    log_info("received SIGTERM: not ready, closing listeners, draining for %" PRIu64 " ms",
             zt.opts.drain_ms);
    zt_drain_worker(&zt);
    workers_drain(&zt);
    inpod_stop(zt.inpod); /* a new ztunnel takes the pods over; we only drain */
    zt.inpod = NULL;
    drain_deadline_ms = clock_mono_ms() + zt.opts.drain_ms;
    loop_timer_start(zt.loop, &drain_timer, 0, on_drain_tick, NULL);
}

static void
on_signal(void *arg, uint32_t events)
{
    struct signalfd_siginfo si;
    int fd = *(int *)arg;
    (void)events;

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            start_drain();
    }
}

int
main(int argc, char **argv)
{
    char err[1024];
    static int sigfd;
    sigset_t mask;

    signal(SIGPIPE, SIG_IGN);
    parse_flags(argc, argv, &zt.opts);
    mesh_raise_nofile(); /* each tunnel holds two sockets */
    if (zt.opts.xds) {
        zt.model = model_new();
        /* --allow-x25519 covers the control plane too: one TLS policy for the process. */
        const struct tls_opts tls = {.allow_x25519 = zt.opts.allow_x25519};
        if ((zt.cp_ctx = tls_cp_client_ctx(zt.opts.root_cert, zt.opts.cp_name, &tls, err,
                                           sizeof(err))) == NULL)
            fatal("%s", err);
    } else if (local_config_load(zt.opts.local_config, &zt.model, err, sizeof(err)) < 0) {
        fatal("invalid local config: %s", err);
    }
    zt.loop = loop_new();
    if (zt.loop == NULL)
        fatal("epoll: %s", strerror(errno));
    if (zt.opts.xds) {
        zt.xds_chan = channel_new(zt.loop, &zt.opts.xds_ip, zt.opts.xds_port, zt.cp_ctx, "xDS");
        zt.ca_chan = channel_new(zt.loop, &zt.opts.ca_ip, zt.opts.ca_port, zt.cp_ctx, "CA");
        const struct node_tokens_config tc = {
            .loop = zt.loop,
            .path = zt.opts.token_file,
            .xds_chan = zt.xds_chan,
            .ca_chan = zt.ca_chan,
            .authority = zt.opts.cp_name,
            .cluster = zt.opts.cluster,
            .who = "ztunnel",
        };
        zt.tokens = node_tokens_new(&tc);
    }
    if ((zt.certs = certs_new(&zt, err, sizeof(err))) == NULL)
        fatal("%s", err);
    const struct sock_opts dial = {.mark = SOCK_MARK_ZTUNNEL};
    zt.pool = hbone_pool_new(zt.loop, zt.opts.pool_idle_ms, &dial);

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0 || loop_io_start(zt.loop, &sig_io, sigfd, EPOLLIN, on_signal, &sigfd) < 0)
        fatal("signalfd: %s", strerror(errno));

    if (!zt.opts.xds) {
        size_t n_local = 0;
        for (size_t i = 0; i < zt.model->n_workloads; i++)
            n_local += zt_is_local(&zt, zt.model->workloads[i]);
        log_info("local config %s: %zu workloads (%zu on node %s), %zu services",
                 zt.opts.local_config, zt.model->n_workloads, n_local, zt.opts.node,
                 zt.model->n_services);
        struct policy_set *ps;
        if (local_config_load_policies(zt.opts.local_config, &ps, err, sizeof(err)) < 0)
            fatal("invalid local config: %s", err);
        if (policy_set_count(ps) > 0)
            log_info("%zu authorization policies", policy_set_count(ps));
        zt_set_policies(&zt, ps);
        certs_sync(zt.certs);
    } else if ((zt.xds = xds_start(&zt, err, sizeof(err))) == NULL) {
        fatal("%s", err);
    }

    inbound_start(&zt);
    if (zt.opts.zds_socket != NULL) {
        /* In-pod mode: listeners live in each enrolled pod's namespace, none in ours. */
        if ((zt.inpod = inpod_start(&zt, err, sizeof(err))) == NULL)
            fatal("%s", err);
    } else {
        zt.node_scope = zpod_new(&zt, NULL, NULL, NULL, NULL, -1);
        if (zpod_listen(zt.node_scope, err, sizeof(err)) < 0)
            fatal("%s", err);
    }
    RAND_bytes((unsigned char *)&zt.wp_seed, sizeof(zt.wp_seed));
    /* The registry first: workers count connections into it from their first accept. */
    if (zt_metrics_start(&zt, err, sizeof(err)) < 0)
        fatal("%s", err);
    if (workers_start(&zt, err, sizeof(err)) < 0)
        fatal("%s", err);
    if (admin_start(&zt, err, sizeof(err)) < 0)
        fatal("%s", err);
    /* With meshd, ready once every watched type arrived (xds.c); in-pod, once ZDS synced. */
    zt.xds_synced = !zt.opts.xds;
    zt_update_ready(&zt);
    log_info("listening: outbound %u, inbound plaintext %u, HBONE %u, admin 127.0.0.1:%u, "
             "readiness [::]:%u",
             ZT_PORT_OUTBOUND, ZT_PORT_INBOUND_PLAIN,
             ZT_PORT_HBONE, ZT_PORT_ADMIN, ZT_PORT_READY);

    int rc = loop_run(zt.loop);

    /* Orderly teardown so sanitizers see no leaks. */
    workers_stop(&zt);
    admin_stop();
    zt_metrics_stop();
    zt_close_listeners(&zt);
    inpod_stop(zt.inpod);
    zt_expire_waiters(&zt);
    inbound_free(zt.inbound);
    loop_io_stop(zt.loop, &sig_io);
    close(sigfd);
    loop_run_deferred(zt.loop); /* releases what the closes above queued */
    node_tokens_free(zt.tokens);
    xds_stop(zt.xds);
    loop_run_deferred(zt.loop);
    hbone_pool_free(zt.pool);
    certs_free(zt.certs);
    zt.certs = NULL; /* a worker's request for a certificate may still be queued */
    channel_free(zt.xds_chan);
    channel_free(zt.ca_chan);
    zpod_unref(zt.node_scope);
    policy_set_unref(zt.policies);
    while (zt.pods != NULL)
        zpod_delete(zt.pods);
    loop_run_deferred(zt.loop);
    SSL_CTX_free(zt.cp_ctx);
    model_unref(zt.model);
    zt_tenants_free(&zt);
    loop_free(zt.loop);
    free(zt.workers);
    buf_cache_drop();
    return rc < 0 ? 1 : 0;
}
