/*
 * kcluster_forward.c - `meshctl __forward`: a TCP forwarder between two
 * network namespaces, so that kubectl on the host reaches the API server in
 * the control-plane namespace.
 *
 *   meshctl __forward [--port-file FILE] LISTEN_NETNS|- LISTEN_ADDR TARGET_NETNS|- TARGET_ADDR
 *
 * One process holds sockets of both namespaces: each socket is created in
 * its namespace (lib/net's sock_opts.in_netns) and keeps it. Bytes are not
 * looked at (TLS passes through end to end); lib/conn's pipe copies them
 * with back-pressure and half-close. Bounded: at most FWD_MAX_CONNS
 * connections (more are closed at once), FWD_BUF bytes per direction, a
 * connect deadline. LISTEN_ADDR's port 0 picks a free port, written to the
 * port file once listening.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "forward"
#include "base/base.h"
#include "cluster.h"
#include "conn/dial.h"
#include "conn/pipe.h"
#include "conn/tcp_stream.h"
#include "kcluster.h"
#include "log/log.h"
#include "loop/loop.h"
#include "meshctl.h"
#include "net/addr.h"
#include "net/sock.h"

#define FWD_MAX_CONNS 64
#define FWD_BUF       (64 * 1024)

struct fwd {
    struct loop *loop;
    struct loop_io lio;
    int lfd;
    struct sock_opts target_opts;
    struct ipaddr target_ip;
    uint16_t target_port;
    int conns;
    struct log_ratelimit rl_dial, rl_accept, rl_full;
};

struct fconn {
    struct fwd *f;
    int client;
};

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct fconn *c = arg;
    (void)res;
    c->f->conns--;
    free(c);
}

static void
on_dialed(void *arg, int fd)
{
    struct fconn *c = arg;
    if (fd < 0) {
        log_warn_rl(&c->f->rl_dial, "connecting to the target failed: %s", strerror(-fd));
        close(c->client);
        c->f->conns--;
        free(c);
        return;
    }
    struct stream *a = tcp_stream_new(c->f->loop, c->client);
    struct stream *b = tcp_stream_new(c->f->loop, fd);
    pipe_start(c->f->loop, a, b, FWD_BUF, on_pipe_done, c);
}

static void
on_accept(void *arg, uint32_t events)
{
    struct fwd *f = arg;
    (void)events;
    for (int i = 0; i < 16; i++) {
        struct ipaddr peer;
        uint16_t port;
        int fd = sock_accept(f->lfd, &peer, &port);
        if (fd == -EAGAIN || fd == -EWOULDBLOCK)
            return;
        if (fd < 0) {
            log_warn_rl(&f->rl_accept, "accept: %s", strerror(-fd));
            return;
        }
        if (f->conns >= FWD_MAX_CONNS) {
            log_warn_rl(&f->rl_full, "%d connections open, refusing one more", f->conns);
            close(fd);
            continue;
        }
        struct fconn *c = xcalloc(1, sizeof(*c));
        c->f = f;
        c->client = fd;
        f->conns++;
        dial_start(f->loop, &f->target_ip, f->target_port, NULL, &f->target_opts, DIAL_TIMEOUT_MS,
                   on_dialed, c);
    }
}

/* "-" is ours; else /run/netns/NAME. Fills |o|. Returns 0 or -1. */
static int
netns_opts(const char *name, struct sock_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->netns_fd = -1;
    if (strcmp(name, "-") == 0)
        return 0;
    if (strchr(name, '/') != NULL || name[0] == '.' || strlen(name) > 200) {
        fprintf(stderr, "meshctl __forward: bad namespace name \"%s\"\n", name);
        return -1;
    }
    char path[256];
    snprintf(path, sizeof(path), "/run/netns/%s", name);
    o->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (o->netns_fd < 0) {
        fprintf(stderr, "meshctl __forward: %s: %s\n", path, strerror(errno));
        return -1;
    }
    o->in_netns = true;
    return 0;
}

/* "IP:PORT" (IPv6 in brackets); port 0 allowed (any free one). */
static int
parse_addr(const char *s, struct ipaddr *ip, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char host[IPADDR_STRLEN];
    char *end;
    size_t n = colon != NULL ? (size_t)(colon - s) : 0;
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }
    unsigned long p = colon != NULL ? strtoul(colon + 1, &end, 10) : 0;
    if (colon == NULL || n == 0 || n >= sizeof(host) || colon[1] == '\0' || *end != '\0' ||
        p > 65535) {
        fprintf(stderr, "meshctl __forward: \"%s\": not an IP:PORT\n", s);
        return -1;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (ipaddr_parse(host, ip) < 0) {
        fprintf(stderr, "meshctl __forward: \"%s\": not an IP address\n", host);
        return -1;
    }
    *port = (uint16_t)p;
    return 0;
}

int
kforward_main(int argc, char **argv)
{
    const char *port_file = NULL;
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--port-file") == 0) {
        port_file = argv[i + 1];
        i += 2;
    }
    if (argc - i != 4) {
        fprintf(stderr, "usage: meshctl __forward [--port-file FILE] LISTEN_NETNS|- LISTEN_ADDR "
                        "TARGET_NETNS|- TARGET_ADDR\n");
        return MESHCTL_EXIT_USAGE;
    }
    struct fwd f = {.lfd = -1,
                    .rl_dial = LOG_RATELIMIT_INIT(10000, 3),
                    .rl_accept = LOG_RATELIMIT_INIT(10000, 3),
                    .rl_full = LOG_RATELIMIT_INIT(10000, 3)};
    struct sock_opts lo;
    struct ipaddr lip;
    uint16_t lport;
    if (netns_opts(argv[i], &lo) < 0 || parse_addr(argv[i + 1], &lip, &lport) < 0 ||
        netns_opts(argv[i + 2], &f.target_opts) < 0 ||
        parse_addr(argv[i + 3], &f.target_ip, &f.target_port) < 0 || f.target_port == 0)
        return MESHCTL_EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    f.lfd = sock_listen(&lip, lport, &lo);
    if (f.lfd < 0) {
        fprintf(stderr, "meshctl __forward: listening on %s: %s\n", argv[i + 1], strerror(-f.lfd));
        return MESHCTL_EXIT_FAIL;
    }
    if (lo.netns_fd >= 0)
        close(lo.netns_fd);
    struct ipaddr bound;
    if (sock_local(f.lfd, &bound, &lport) < 0) {
        fprintf(stderr, "meshctl __forward: getsockname: %s\n", strerror(errno));
        return MESHCTL_EXIT_FAIL;
    }
    if (port_file != NULL) {
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%u\n", (unsigned)lport);
        int rc = cl_write_atomic(port_file, buf, (size_t)n, 0644);
        if (rc < 0) {
            fprintf(stderr, "meshctl __forward: writing %s: %s\n", port_file, strerror(-rc));
            return MESHCTL_EXIT_FAIL;
        }
    }
    char a[ADDR_STRLEN], b[ADDR_STRLEN];
    log_info("forwarding %s (%s) to %s (%s), at most %d connections", ipport_str(&lip, lport, a),
             argv[i], ipport_str(&f.target_ip, f.target_port, b), argv[i + 2], FWD_MAX_CONNS);
    f.loop = loop_new();
    if (loop_io_start(f.loop, &f.lio, f.lfd, EPOLLIN, on_accept, &f) < 0) {
        fprintf(stderr, "meshctl __forward: epoll: %s\n", strerror(errno));
        return MESHCTL_EXIT_FAIL;
    }
    int rc = loop_run(f.loop); /* until SIGTERM ends the process */
    return rc == 0 ? 0 : MESHCTL_EXIT_FAIL;
}
