/*
 * fuzz_wp_run.c - the driver of the waypoint engine harnesses (fuzz_wp_http1.c,
 * fuzz_wp_http2.c): one engine between a client and endpoints that both send arbitrary
 * bytes, with a fake upstream (socketpairs), a two-endpoint service and no routes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "buf/buf.h"
#include "conn/tcp_stream.h"
#include "fuzz_wp_run.h"

#define KEY    "default/echo.default.svc.cluster.local"
#define MAX_BE 16

struct fz {
    struct loop *loop;
    struct model *m;
    struct workload *ws[2];
    struct service *svc;
    int cfd;
    const uint8_t *resp;
    size_t resp_len;
    int flags;
    int be[MAX_BE];
    bool be_sent[MAX_BE];
    int n_be;
    int closed;
    int ticks;
    struct loop_timer tick;
    const struct fz_wp_engine *eng;
};

struct fz_conn {
    struct loop_timer t;
    struct fz *f;
    wp_upstream_fn *cb;
    void *arg;
    struct stream *s;
    int err;
};

static void
fz_fire(void *arg)
{
    struct fz_conn *fc = arg;
    fc->cb(fc->arg, fc->s, fc->err);
    free(fc);
}

static void *
fz_connect(void *ctx, const struct workload *ep, uint16_t port, wp_upstream_fn *cb, void *arg,
           int *err)
{
    struct fz *f = ctx;
    struct fz_conn *fc;
    int fds[2];

    (void)port;
    if (f->n_be >= MAX_BE) {
        *err = -EMFILE;
        return NULL;
    }
    fc = xcalloc(1, sizeof(*fc));
    fc->f = f;
    fc->cb = cb;
    fc->arg = arg;
    if ((f->flags & 1) && ep == f->ws[0]) {
        fc->err = -ECONNREFUSED;
    } else {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
            abort();
        f->be[f->n_be++] = fds[0];
        fc->s = tcp_stream_new(f->loop, fds[1]);
    }
    loop_timer_start(f->loop, &fc->t, 0, fz_fire, fc);
    return fc;
}

static void
fz_cancel(void *ctx, void *handle)
{
    struct fz *f = ctx;
    struct fz_conn *fc = handle;
    loop_timer_stop(f->loop, &fc->t);
    if (fc->s != NULL)
        stream_close(fc->s, true);
    free(fc);
}

static void
fz_config(void *arg, struct model **m, struct route_set **r, struct l7pol_set **p)
{
    struct fz *f = arg;
    model_ref(f->m);
    *m = f->m;
    *r = NULL;
    *p = NULL;
}

/* FZ_VERBOSE=1 prints each request's outcome, to see what a corpus file exercises. */
static void
fz_done(void *arg, const struct wp_request_info *ri)
{
    (void)arg;
    if (getenv("FZ_VERBOSE") != NULL)
        fprintf(stderr, "%s %s -> %d flags 0x%x %s attempts %u\n", ri->method, ri->path, ri->status,
                ri->flags, ri->details, ri->attempts);
}

static void
fz_closed(void *arg)
{
    ((struct fz *)arg)->closed++;
}

/* Reads what is there; returns how much. */
static size_t
drain(int fd)
{
    char b[4096];
    size_t n = 0;
    ssize_t k;
    while (fd >= 0 && (k = recv(fd, b, sizeof(b), 0)) > 0)
        n += (size_t)k;
    return n;
}

/* Every millisecond: endpoints answer once, everyone reads; stop after a bounded time. */
static void
on_tick(void *arg)
{
    struct fz *f = arg;

    for (int i = 0; i < f->n_be; i++) {
        if (f->be[i] < 0)
            continue;
        /* With answer_after_request, an endpoint answers once the engine's bytes are there
         * (HTTP/2: frames for a stream not yet opened would only test nghttp2). */
        if (!f->be_sent[i] && (!f->eng->answer_after_request || drain(f->be[i]) > 0)) {
            f->be_sent[i] = true;
            if (f->resp_len > 0 && send(f->be[i], f->resp, f->resp_len, MSG_NOSIGNAL) < 0) {
                /* the engine may have closed it already */
            }
            if (f->flags & 4) {
                close(f->be[i]);
                f->be[i] = -1;
                continue;
            }
        }
        drain(f->be[i]);
    }
    drain(f->cfd);
    if (++f->ticks >= ((f->flags & 8) ? 60 : 200) || f->closed) {
        loop_stop(f->loop);
        return;
    }
    loop_timer_start(f->loop, &f->tick, (f->flags & 8) ? 1 : 0, on_tick, f);
}

static struct workload *
mk_ep(int i)
{
    struct workload *w = xcalloc(1, sizeof(*w));
    w->uid = xasprintf("ep%d", i);
    w->name = xasprintf("ep%d", i);
    w->ns = xstrdup("default");
    w->addrs = xcalloc(1, sizeof(*w->addrs));
    w->n_addrs = 1;
    ipaddr_parse(i ? "198.18.1.2" : "198.18.1.1", &w->addrs[0]);
    w->services = xcalloc(1, sizeof(*w->services));
    w->n_services = 1;
    w->services[0].key = xstrdup(KEY);
    w->services[0].ports = xcalloc(1, sizeof(struct port_map));
    w->services[0].ports[0] = (struct port_map){.service_port = 80, .target_port = 8080};
    w->services[0].n_ports = 1;
    return w;
}

void
fz_wp_run(const struct fz_wp_engine *eng, const uint8_t *data, size_t size)
{
    struct fz f;
    int fds[2];

    if (size < 1)
        return;
    memset(&f, 0, sizeof(f));
    f.eng = eng;
    f.flags = data[0];
    data++;
    size--;
    const uint8_t *sep = memmem(data, size, "\xff\xfe", 2);
    size_t clen = sep != NULL ? (size_t)(sep - data) : size;
    if (sep != NULL) {
        f.resp = sep + 2;
        f.resp_len = size - clen - 2;
    }
    f.loop = loop_new();
    f.ws[0] = mk_ep(0);
    f.ws[1] = mk_ep(1);
    f.svc = xcalloc(1, sizeof(*f.svc));
    f.svc->name = xstrdup("echo");
    f.svc->ns = xstrdup("default");
    f.svc->hostname = xstrdup("echo.default.svc.cluster.local");
    f.svc->ports = xcalloc(1, sizeof(*f.svc->ports));
    f.svc->ports[0] = (struct port_map){.service_port = 80, .target_port = 8080};
    f.svc->n_ports = 1;
    f.m = model_build(f.ws, 2, &f.svc, 1);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
        abort();
    f.cfd = fds[0];
    struct wp_l7_conn c = {
        .loop = f.loop,
        .dst_port = 80,
        .service = f.svc,
        .waypoint_ns = "default",
        .waypoint_name = "waypoint",
        .get_config = fz_config,
        .config_arg = &f,
        .path_mode = L7PATH_BASE,
        .up = {.connect = fz_connect, .cancel = fz_cancel, .ctx = &f},
        .on_done = fz_done,
        .on_closed = fz_closed,
        .arg = &f,
    };
    eng->serve(&c, tcp_stream_new(f.loop, fds[1]));
    if (clen > 0 && send(f.cfd, data, clen, MSG_NOSIGNAL) < 0) {
        /* a long input may not fit the socket buffer: what fits is enough */
    }
    if (f.flags & 2)
        shutdown(f.cfd, SHUT_WR);
    loop_timer_start(f.loop, &f.tick, 0, on_tick, &f);
    loop_run(f.loop);
    /* The client leaves: the engine must end, whatever state it was in. */
    close(f.cfd);
    f.cfd = -1;
    f.ticks = 0;
    loop_timer_start(f.loop, &f.tick, 0, on_tick, &f);
    loop_run(f.loop);
    loop_timer_stop(f.loop, &f.tick);
    /* Only a tunnel (after a 101) outlives the client: it runs until the endpoint ends too. */
    bool tunnel = eng->tunnel_after_101 && f.resp_len > 0 &&
                  memmem(f.resp, f.resp_len, " 101", 4) != NULL;
    if (f.closed != 1 && !tunnel)
        abort();
    for (int i = 0; i < f.n_be; i++)
        if (f.be[i] >= 0)
            close(f.be[i]);
    f.n_be = 0;
    f.ticks = 0;
    loop_timer_start(f.loop, &f.tick, 0, on_tick, &f);
    loop_run(f.loop);
    loop_timer_stop(f.loop, &f.tick);
    if (f.closed != 1)
        abort();
    loop_run_deferred(f.loop);
    loop_free(f.loop);
    model_unref(f.m);
    workload_unref(f.ws[0]);
    workload_unref(f.ws[1]);
    service_unref(f.svc);
    buf_cache_drop();
}
