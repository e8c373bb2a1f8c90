/*
 * dial.c - connect(2) driven by the loop, bounded by a timer.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "conn/dial.h"

struct dial {
    struct loop *loop;
    struct loop_io io;
    struct loop_timer timer;
    struct loop_defer defer;
    dial_fn *cb;
    void *arg;
    int fd;
    int result;
    bool done;
};

static void
dial_free(void *arg)
{
    free(arg);
}

static void
complete(struct dial *d, int result)
{
    if (d->done)
        return;
    d->done = true;
    loop_io_stop(d->loop, &d->io);
    loop_timer_stop(d->loop, &d->timer);
    if (result < 0 && d->fd >= 0) {
        close(d->fd);
        d->fd = -1;
    }
    d->cb(d->arg, result < 0 ? result : d->fd);
    loop_defer(d->loop, &d->defer, dial_free, d);
}

static void
on_writable(void *arg, uint32_t events)
{
    struct dial *d = arg;
    (void)events;
    int rc = sock_connect_result(d->fd);
    complete(d, rc < 0 ? rc : 0);
}

static void
on_timeout(void *arg)
{
    complete(arg, -ETIMEDOUT);
}

static void
on_early_error(void *arg)
{
    struct dial *d = arg;
    if (!d->done)
        complete(d, d->result);
    else
        free(d);
}

struct dial *
dial_start(struct loop *l, const struct ipaddr *dst, uint16_t port, const struct ipaddr *src,
           const struct sock_opts *o, uint64_t timeout_ms, dial_fn *cb, void *arg)
{
    struct dial *d = xcalloc(1, sizeof(*d));

    d->loop = l;
    d->cb = cb;
    d->arg = arg;
    d->fd = sock_connect(dst, port, src, o);
    if (d->fd < 0) {
        d->result = d->fd;
        d->fd = -1;
        loop_defer(l, &d->defer, on_early_error, d);
        return d;
    }
    int rc = loop_io_start(l, &d->io, d->fd, EPOLLOUT, on_writable, d);
    if (rc < 0) {
        close(d->fd);
        d->fd = -1;
        d->result = rc;
        loop_defer(l, &d->defer, on_early_error, d);
        return d;
    }
    loop_timer_start(l, &d->timer, timeout_ms, on_timeout, d);
    return d;
}

void
dial_cancel(struct dial *d)
{
    if (d == NULL || d->done)
        return;
    d->done = true;
    loop_io_stop(d->loop, &d->io);
    loop_timer_stop(d->loop, &d->timer);
    if (d->fd >= 0)
        close(d->fd);
    /* An early-error defer may be queued with this object: it frees it then. */
    if (!d->defer.queued)
        loop_defer(d->loop, &d->defer, dial_free, d);
}
