/*
 * main.c - the waypoint: an L4/L7 proxy for the services and workloads bound to one Gateway
 * (issue 10 section 3; waypoint.md 1-3).
 *
 * Control-plane mode: --xds-address IP:PORT --root-cert FILE --token FILE --node N
 * --namespace NS --name GW --service-account SA (meshctl's waypoint Deployment).
 * Local mode: --local-config FILE --ca-dir DIR --namespace NS --name GW --service-account SA.
 * It holds exactly one certificate, its service account's identity (lib/identity), and is
 * ready once it has it and every watched config type arrived.
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

#define LOG_SCOPE "waypoint"
#include "base/base.h"
#include "buf/buf.h"
#include "channel/channel.h"
#include "conn/hs_guard.h"
#include "hbone/hbone.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "l7.h"
#include "tls/tls_cp.h"
#include "telemetry.h"
#include "wp.h"

#define DRAIN_POLL_MS 50

static struct wp wp;
static struct loop_io sig_io;
static struct loop_timer drain_timer;
static uint64_t drain_deadline_ms;
static bool drain_forced;

void
wp_update_ready(struct wp *w)
{
    bool was = w->ready;
    w->ready = !w->draining && w->have_cert && w->config_synced;
    if (w->ready && !was)
        log_info("ready: certificate %s, config synced", w->identity);
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: waypoint --xds-address IP:PORT --root-cert FILE --token FILE --node NAME\n"
            "                --namespace NS --name GATEWAY --service-account SA [options]\n"
            "       waypoint --local-config FILE --ca-dir DIR --namespace NS --name GATEWAY\n"
            "                --service-account SA [options]\n"
            "  --xds-address IP:PORT   meshd's xDS and CA (TLS)\n"
            "  --root-cert FILE        roots that meshd's certificate must chain to\n"
            "  --token FILE            credentials for meshd (meshd token --node NAME, or a\n"
            "                          Kubernetes service-account token, audience istio-ca)\n"
            "  --xds-hostname NAME     name meshd's certificate must carry (default "
            TLS_CP_DEFAULT_NAME ")\n"
            "  --node NAME             the node this replica runs on\n"
            "  --local-config FILE     workloads and services (YAML), no meshd\n"
            "  --ca-dir DIR            root-cert.pem and root-key.pem to mint the certificate\n"
            "  --namespace NS          the Gateway's namespace\n"
            "  --name GATEWAY          the Gateway's name\n"
            "  --service-account SA    the identity served and used upstream\n"
            "  --trust-domain TD       (default cluster.local)\n"
            "  --cluster NAME          cluster name for baggage (Kubernetes)\n"
            "  --drain-timeout SECS    SIGTERM drain deadline (default 5)\n"
            "  --pool-idle-timeout SECS close pooled upstream connections idle this long (300)\n"
            "  --cert-ttl SECS         certificate lifetime to mint or ask for (86400)\n"
            "  --allow-x25519          also offer X25519 key exchange (not FIPS-approved)\n"
            "  --log-level LEVEL       error, warn, info (default) or debug\n"
            "  --log-format FORMAT     plain (default) or json, for the log and the access log\n"
            "                          (Envoy's text format, or Istio's JSON keys); env\n"
            "                          LOG_FORMAT too\n");
}

static void
parse_flags(int argc, char **argv, struct wp_opts *o)
{
    static const struct option opts[] = {
        {"local-config", required_argument, NULL, 'c'},
        {"ca-dir", required_argument, NULL, 'a'},
        {"xds-address", required_argument, NULL, 'X'},
        {"root-cert", required_argument, NULL, 'R'},
        {"token", required_argument, NULL, 'T'},
        {"xds-hostname", required_argument, NULL, 'H'},
        {"node", required_argument, NULL, 'n'},
        {"namespace", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'N'},
        {"service-account", required_argument, NULL, 'A'},
        {"trust-domain", required_argument, NULL, 'D'},
        {"cluster", required_argument, NULL, 'k'},
        {"drain-timeout", required_argument, NULL, 'd'},
        {"pool-idle-timeout", required_argument, NULL, 'i'},
        {"cert-ttl", required_argument, NULL, 't'},
        {"allow-x25519", no_argument, NULL, 'x'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("LOG_FORMAT");
    int c;

    o->drain_ms = 5000;
    o->pool_idle_ms = 300000;
    o->cert_ttl_s = 86400;
    o->cluster = "Kubernetes";
    o->trust_domain = "cluster.local";
    o->cp_name = TLS_CP_DEFAULT_NAME;
    o->hs_timeout_ms = HS_GUARD_TIMEOUT_MS;
    o->hs_max_pending = HS_GUARD_MAX_PENDING;
    o->hs_max_per_source = HS_GUARD_MAX_PER_SOURCE;
    o->json_log = env != NULL && strcmp(env, "json") == 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->local_config = optarg; break;
        case 'a': o->ca_dir = optarg; break;
        case 'X':
            if (authority_parse(optarg, strlen(optarg), &o->xds_ip, &o->xds_port) < 0)
                fatal("--xds-address: \"%s\" is not IP:PORT or [IPv6]:PORT", optarg);
            o->xds = true;
            break;
        case 'R': o->root_cert = optarg; break;
        case 'T': o->token_file = optarg; break;
        case 'H': o->cp_name = optarg; break;
        case 'n': o->node = optarg; break;
        case 's': o->ns = optarg; break;
        case 'N': o->name = optarg; break;
        case 'A': o->sa = optarg; break;
        case 'D': o->trust_domain = optarg; break;
        case 'k': o->cluster = optarg; break;
        case 'd': o->drain_ms = (uint64_t)flag_long("--drain-timeout", optarg, 0, 3600) * 1000; break;
        case 'i':
            o->pool_idle_ms = (uint64_t)flag_long("--pool-idle-timeout", optarg, 1, 86400) * 1000;
            break;
        case 't': o->cert_ttl_s = flag_long("--cert-ttl", optarg, 10, 90L * 86400); break;
        case 'x': o->allow_x25519 = true; break;
        case 'l':
            flag_log_level(optarg);
            break;
        case 'f':
            o->json_log = flag_log_json(optarg);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind != argc || o->ns == NULL || o->name == NULL || o->sa == NULL) {
        fprintf(stderr, "waypoint: --namespace, --name and --service-account are required\n");
        usage(stderr);
        exit(2);
    }
    if (o->xds) {
        if (o->root_cert == NULL || o->token_file == NULL || o->node == NULL) {
            fprintf(stderr, "waypoint: --xds-address needs --root-cert, --token and --node\n");
            exit(2);
        }
        if (o->local_config != NULL || o->ca_dir != NULL) {
            fprintf(stderr, "waypoint: --xds-address and --local-config/--ca-dir exclude each other\n");
            exit(2);
        }
    } else if (o->local_config == NULL || o->ca_dir == NULL) {
        fprintf(stderr, "waypoint: --local-config and --ca-dir are required "
                        "(or --xds-address, --root-cert, --token and --node)\n");
        usage(stderr);
        exit(2);
    }
    log_set_json(o->json_log);
}

/* The certificate arrived (or was forgotten); renewals keep it fresh (certmgr_want). */
static void
on_cert(void *arg)
{
    struct wp *w = arg;
    struct tls_creds *c = certmgr_get(w->certs, w->identity);
    w->have_cert = c != NULL;
    if (c != NULL)
        log_info("certificate %s valid until %ld", w->identity, tls_creds_not_after(c));
    else
        certmgr_wait(w->certs, &w->cert_wait, w->identity, on_cert, w);
    wp_update_ready(w);
}

static void
start_certs(void)
{
    char err[512];
    const struct certmgr_config cfg = {
        .loop = wp.loop,
        .ca_dir = wp.opts.ca_dir,
        .chan = wp.ca_chan,
        .auth = {.authority = wp.opts.cp_name, .cluster = wp.opts.cluster,
                 .bearer = wp.tokens != NULL ? node_tokens_bearer_ca : NULL,
                 .bearer_arg = wp.tokens},
        .cert_ttl_s = wp.opts.cert_ttl_s,
        .allow_x25519 = wp.opts.allow_x25519,
    };
    if ((wp.certs = certmgr_new(&cfg, err, sizeof(err))) == NULL)
        fatal("%s", err);
    certmgr_want(wp.certs, wp.identity);
    certmgr_wait(wp.certs, &wp.cert_wait, wp.identity, on_cert, &wp);
}

/*
 * Drain: on SIGTERM the waypoint is not ready, its listener closes, each HBONE session gets
 * GOAWAY (no new CONNECTs; clients go to another replica), idle HTTP/1.1 connections close
 * and busy ones after their response (wp_http1_drain), HTTP/2 connections get GOAWAY and end
 * once their streams have (wp_http2_drain). Upstream connections stay usable
 * while requests may still need them (a retry, the next request of a busy connection), and
 * get GOAWAY once the last downstream one has gone; then the process exits. At the deadline
 * everything still open is cut.
 */
static bool
downstream_closed(void)
{
    return wp.n_conns == 0 && wp_in_sessions(wp.in) == 0 && wp_http1_lingering() == 0;
}

static void
on_drain_tick(void *arg)
{
    static bool pool_drained;
    (void)arg;
    uint64_t now = clock_mono_ms();
    if (downstream_closed() && !pool_drained) {
        pool_drained = true;
        hbone_pool_drain(wp.pool);
    }
    if (downstream_closed() && hbone_pool_n_conns(wp.pool) == 0) {
        log_info("drained in %" PRIu64 " ms, exiting", now + wp.opts.drain_ms - drain_deadline_ms);
        loop_stop(wp.loop);
        return;
    }
    if (now >= drain_deadline_ms && !drain_forced) {
        log_warn("drain deadline reached with %" PRIu64 " connections open; closing them",
                 wp.n_conns);
        drain_forced = true;
        wp_in_abort(wp.in);
        wp_http1_shutdown();
        hbone_pool_abort(wp.pool);
    } else if (now >= drain_deadline_ms + 2000) {
        log_warn("giving up on %" PRIu64 " connections", wp.n_conns);
        loop_stop(wp.loop);
        return;
    }
    loop_timer_start(wp.loop, &drain_timer, DRAIN_POLL_MS, on_drain_tick, NULL);
}

static void
on_signal(void *arg, uint32_t events)
{
    struct signalfd_siginfo si;
    int fd = *(int *)arg;
    (void)events;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if ((si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT) || wp.draining)
            continue;
        log_info("received SIGTERM: not ready, draining for %" PRIu64 " ms", wp.opts.drain_ms);
        wp.draining = true;
        wp_update_ready(&wp);
        wp_in_drain(wp.in);
        wp_http1_drain();
        wp_http2_drain();
        drain_deadline_ms = clock_mono_ms() + wp.opts.drain_ms;
        loop_timer_start(wp.loop, &drain_timer, 0, on_drain_tick, NULL);
    }
}

int
main(int argc, char **argv)
{
    char err[1024];
    static int sigfd;
    sigset_t mask;

    signal(SIGPIPE, SIG_IGN);
    parse_flags(argc, argv, &wp.opts);
    mesh_raise_nofile(); /* each proxied connection holds two streams */
    snprintf(wp.identity, sizeof(wp.identity), "spiffe://%s/ns/%s/sa/%s", wp.opts.trust_domain,
             wp.opts.ns, wp.opts.sa);
    snprintf(wp.host_prefix, sizeof(wp.host_prefix), "%s.%s.svc.", wp.opts.name, wp.opts.ns);
    if ((wp.loop = loop_new()) == NULL)
        fatal("epoll: %s", strerror(errno));
    if (wp.opts.xds) {
        const struct tls_opts tls = {.allow_x25519 = wp.opts.allow_x25519};
        if ((wp.cp_ctx = tls_cp_client_ctx(wp.opts.root_cert, wp.opts.cp_name, &tls, err,
                                           sizeof(err))) == NULL)
            fatal("%s", err);
        wp.xds_chan = channel_new(wp.loop, &wp.opts.xds_ip, wp.opts.xds_port, wp.cp_ctx, "xDS");
        wp.ca_chan = channel_new(wp.loop, &wp.opts.xds_ip, wp.opts.xds_port, wp.cp_ctx, "CA");
        const struct node_tokens_config tc = {
            .loop = wp.loop, .path = wp.opts.token_file, .xds_chan = wp.xds_chan,
            .ca_chan = wp.ca_chan, .authority = wp.opts.cp_name, .cluster = wp.opts.cluster,
            .who = "waypoint",
        };
        wp.tokens = node_tokens_new(&tc);
    }
    if ((wp.config = wp_config_start(&wp, err, sizeof(err))) == NULL)
        fatal("%s", err);
    const struct sock_opts dial = {0};
    wp.pool = hbone_pool_new(wp.loop, wp.opts.pool_idle_ms, &dial);
    start_certs();

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sigfd < 0 || loop_io_start(wp.loop, &sig_io, sigfd, EPOLLIN, on_signal, &sigfd) < 0)
        fatal("signalfd: %s", strerror(errno));
    wp_telemetry_start(&wp);
    if (wp_in_start(&wp, err, sizeof(err)) == NULL)
        fatal("%s", err);
    if (wp_admin_start(&wp, err, sizeof(err)) < 0)
        fatal("%s", err);
    wp_update_ready(&wp);
    log_info("waypoint %s/%s as %s: HBONE %u, admin 127.0.0.1:%u, readiness %u, metrics %u",
             wp.opts.ns, wp.opts.name, wp.identity, WP_PORT_HBONE, WP_PORT_ADMIN, WP_PORT_READY,
             WP_PORT_METRICS);

    int rc = loop_run(wp.loop);

    /* Orderly teardown so the sanitizers see no leaks. */
    wp_admin_stop();
    wp_in_free(wp.in);
    loop_io_stop(wp.loop, &sig_io);
    close(sigfd);
    loop_run_deferred(wp.loop);
    node_tokens_free(wp.tokens);
    wp_config_stop(wp.config);
    loop_run_deferred(wp.loop);
    wp_http1_shutdown();
    loop_run_deferred(wp.loop);
    hbone_pool_free(wp.pool);
    certmgr_cancel(wp.certs, &wp.cert_wait);
    certmgr_free(wp.certs);
    channel_free(wp.xds_chan);
    channel_free(wp.ca_chan);
    loop_run_deferred(wp.loop);
    l7pol_set_unref(wp.policies);
    model_unref(wp.model);
    SSL_CTX_free(wp.cp_ctx);
    wp_telemetry_stop();
    loop_free(wp.loop);
    buf_cache_drop();
    return rc < 0 ? 1 : 0;
}
