/*
 * echo.c - echo-server, the sample app of the local cluster: flags, listeners, signals.
 *
 * HTTP/1.1 (echo_http.c) and raw TCP (echo_tcp.c) on one event loop. Answers
 * name the pod, its version and the peer address as the server sees it, so a
 * demo can show which replica answered and that the client's own IP arrived.
 * SIGTERM or SIGINT closes everything and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOG_SCOPE "echo"
#include "base/base.h"
#include "buf/buf.h"
#include "conn/listener.h"
#include "echo.h"
#include "log/log.h"
#include "loop/loop.h"

struct echo_opts {
    uint16_t http_port;
    uint16_t tcp_port;
    bool has_bind;
    struct ipaddr bind;
    char name[ECHO_MAX_LABEL];
    char version[ECHO_MAX_LABEL];
};

static struct loop_io sig_io;

static void
usage(FILE *f)
{
    fprintf(f, "usage: echo-server [flags]\n"
               "  --http-port N   HTTP/1.1 port (default 8080; 0 disables)\n"
               "  --tcp-port N    banner-then-echo TCP port (default 9000; 0 disables)\n"
               "  --name NAME     pod= in answers (default $POD_NAME, else the hostname)\n"
               "  --version V     version= in answers (default $VERSION, else v1)\n"
               "  --bind ADDR     listen address (default [::], dual stack)\n");
}

void
echo_log(const char *fmt, ...)
{
    char ts[32];
    struct tm tm;
    va_list ap;
    uint64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);

    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03" PRIu64 "Z ", ts, ms % 1000);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static uint16_t
parse_port(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 65535)
        fatal("%s: not a port: %s", flag, s);
    return (uint16_t)v;
}

/* Names and versions go into headers and logfmt lines: visible ASCII only. */
static void
set_label(const char *flag, const char *s, char *out)
{
    size_t n = strlen(s);
    if (n == 0 || n >= ECHO_MAX_LABEL)
        fatal("%s: must be 1 to %d characters", flag, ECHO_MAX_LABEL - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            fatal("%s: only visible ASCII characters: \"%s\"", flag, s);
    memcpy(out, s, n + 1);
}

static void
parse_flags(int argc, char **argv, struct echo_opts *o)
{
    enum { OPT_HTTP = 1, OPT_TCP, OPT_NAME, OPT_VERSION, OPT_BIND, OPT_HELP };
    static const struct option longopts[] = {
        {"http-port", required_argument, NULL, OPT_HTTP},
        {"tcp-port", required_argument, NULL, OPT_TCP},
        {"name", required_argument, NULL, OPT_NAME},
        {"version", required_argument, NULL, OPT_VERSION},
        {"bind", required_argument, NULL, OPT_BIND},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *name = getenv("POD_NAME"), *version = getenv("VERSION");
    char host[ECHO_MAX_LABEL];
    int opt;

    o->http_port = 8080;
    o->tcp_port = 9000;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_HTTP:
            o->http_port = parse_port("--http-port", optarg);
            break;
        case OPT_TCP:
            o->tcp_port = parse_port("--tcp-port", optarg);
            break;
        case OPT_NAME:
            name = optarg;
            break;
        case OPT_VERSION:
            version = optarg;
            break;
        case OPT_BIND:
            if (ipaddr_parse(optarg, &o->bind) < 0)
                fatal("--bind: not an IP address: %s", optarg);
            o->has_bind = true;
            break;
        case OPT_HELP:
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
    if (o->http_port == 0 && o->tcp_port == 0)
        fatal("--http-port and --tcp-port are both 0: nothing to serve");
    if (name == NULL || name[0] == '\0') {
        if (gethostname(host, sizeof(host)) < 0)
            fatal("gethostname: %s", strerror(errno));
        host[sizeof(host) - 1] = '\0';
        name = host;
    }
    set_label("--name", name, o->name);
    set_label("--version", version != NULL && version[0] != '\0' ? version : "v1", o->version);
}

/* [::] when the kernel has IPv6, else 0.0.0.0; or the --bind address. */
static const struct ipaddr *
listen_addr(const struct echo_opts *o, struct ipaddr *any4)
{
    if (o->has_bind)
        return &o->bind;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        close(fd);
        return NULL;
    }
    memset(any4, 0, sizeof(*any4));
    any4->family = AF_INET;
    return any4;
}

/* Many connections is the point of some tests: use the hard limit on descriptors. */
static void
raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static struct listener *
open_port(struct echo_server *s, const char *what, const struct ipaddr *ip, uint16_t port,
          listener_fn *cb)
{
    char err[256];

    if (port == 0)
        return NULL;
    struct listener *l = listener_open(s->loop, what, ip, port, NULL, cb, s, err, sizeof(err));
    if (l == NULL)
        fatal("%s", err);
    return l;
}

static void
on_signal(void *arg, uint32_t events)
{
    struct echo_server *s = arg;
    struct signalfd_siginfo si;
    (void)events;

    while (read(sig_io.fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            echo_log("signal %u: stopping", si.ssi_signo);
            loop_stop(s->loop);
        }
}

int
main(int argc, char **argv)
{
    struct echo_opts o = {0};
    struct echo_server s = {0};
    struct ipaddr any4;
    char addr[ADDR_STRLEN];
    sigset_t set;

    parse_flags(argc, argv, &o);
    s.name = o.name;
    s.version = o.version;
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise_nofile();

    if ((s.loop = loop_new()) == NULL)
        fatal("epoll: %s", strerror(errno));
    const struct ipaddr *ip = listen_addr(&o, &any4);
    struct listener *http = open_port(&s, "http", ip, o.http_port, echo_http_accept);
    struct listener *tcp = open_port(&s, "tcp", ip, o.tcp_port, echo_tcp_accept);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || loop_io_start(s.loop, &sig_io, sfd, EPOLLIN, on_signal, &s) < 0)
        fatal("signalfd: %s", strerror(errno));
    echo_log("echo-server ready pod=%s version=%s addr=%s http_port=%u tcp_port=%u", s.name,
             s.version, ip ? ipaddr_str(ip, addr) : "::", o.http_port, o.tcp_port);

    int rc = loop_run(s.loop);
    if (rc < 0)
        log_error("event loop: %s", strerror(-rc));

    loop_io_stop(s.loop, &sig_io);
    close(sfd);
    listener_close(http);
    listener_close(tcp);
    echo_http_close_all(&s);
    echo_tcp_close_all(&s);
    loop_run_deferred(s.loop);
    loop_free(s.loop);
    buf_cache_drop();
    echo_log("echo-server stopped");
    return rc < 0 ? 1 : 0;
}
