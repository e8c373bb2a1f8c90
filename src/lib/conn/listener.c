/*
 * listener.c - a listening socket that hands each accepted, tuned socket to
 * its owner, and backs off instead of spinning when accept(2) fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "listener"
#include "base/base.h"
#include "conn/listener.h"
#include "log/log.h"
#include "net/sock.h"

#define LISTENER_ACCEPT_BATCH 64
#define LISTENER_BACKOFF_MS 100

struct listener {
    struct loop *loop;
    void *arg;
    const char *name;
    struct loop_io io;
    int fd;
    listener_fn *cb;
    struct loop_timer backoff;
    struct loop_defer free_defer;
    uint64_t last_warn_ms;
};

static void
on_backoff_done(void *arg)
{
    struct listener *l = arg;
    loop_io_set(l->loop, &l->io, EPOLLIN);
}

static void
on_accept(void *arg, uint32_t events)
{
    struct listener *l = arg;
    struct ipaddr peer;
    uint16_t port;
    (void)events;

    for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
        int fd = sock_accept(l->fd, &peer, &port);
        if (fd == -EAGAIN)
            return;
        if (fd < 0) {
            /*
             * Out of descriptors or memory: the listener stays readable, so stop watching it
             * for a moment instead of spinning, and say so at most once a second.
             */
            uint64_t now = loop_now_ms(l->loop);
            if (now - l->last_warn_ms >= 1000) {
                log_warn("%s: accept: %s; pausing accepts for %d ms", l->name, strerror(-fd),
                         LISTENER_BACKOFF_MS);
                l->last_warn_ms = now;
            }
            loop_io_set(l->loop, &l->io, 0);
            loop_timer_start(l->loop, &l->backoff, LISTENER_BACKOFF_MS, on_backoff_done, l);
            return;
        }
        sock_tune(fd);
        l->cb(l->arg, fd, &peer, port);
    }
}

struct listener *
listener_open(struct loop *loop, const char *name, const struct ipaddr *ip, uint16_t port,
              const struct sock_opts *o, listener_fn *cb, void *arg, char *err, size_t errlen)
{
    struct listener *l = xcalloc(1, sizeof(*l));
    char s[ADDR_STRLEN];

    l->loop = loop;
    l->arg = arg;
    l->name = name;
    l->cb = cb;
    l->fd = sock_listen(ip, port, o);
    if (l->fd < 0) {
        snprintf(err, errlen, "%s: listen on [%s]:%u: %s", name, ip ? ipaddr_str(ip, s) : "::",
                 port, strerror(-l->fd));
        free(l);
        return NULL;
    }
    if (loop_io_start(loop, &l->io, l->fd, EPOLLIN, on_accept, l) < 0) {
        snprintf(err, errlen, "%s: epoll: %s", name, strerror(errno));
        close(l->fd);
        free(l);
        return NULL;
    }
    return l;
}

static void
listener_free(void *arg)
{
    free(arg);
}

void
listener_close(struct listener *l)
{
    if (l == NULL)
        return;
    loop_io_stop(l->loop, &l->io);
    loop_timer_stop(l->loop, &l->backoff);
    close(l->fd);
    /* Called from handlers (SIGTERM): an accept event may still be pending in this batch. */
    loop_defer(l->loop, &l->free_defer, listener_free, l);
}
