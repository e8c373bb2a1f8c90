/*
 * tcp_stream.c - stream ops over a non-blocking TCP socket.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "conn/tcp_stream.h"

struct tcp_stream {
    struct stream s;
    struct loop *loop;
    struct loop_io io;
    struct loop_defer free_defer;
    int fd;
};

static void
on_io(void *arg, uint32_t events)
{
    struct tcp_stream *t = arg;
    unsigned ev = 0;

    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        ev |= STREAM_READABLE;
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        ev |= STREAM_WRITABLE;
    if (t->s.on_event != NULL)
        t->s.on_event(t->s.arg, &t->s, ev);
}

static ssize_t
tcp_read(struct stream *s, void *p, size_t len)
{
    struct tcp_stream *t = (struct tcp_stream *)s;
    ssize_t n = recv(t->fd, p, len, 0);
    return n >= 0 ? n : -errno;
}

static ssize_t
tcp_write(struct stream *s, const void *p, size_t len)
{
    struct tcp_stream *t = (struct tcp_stream *)s;
    ssize_t n = send(t->fd, p, len, MSG_NOSIGNAL);
    return n >= 0 ? n : -errno;
}

static int
tcp_shutdown_write(struct stream *s)
{
    struct tcp_stream *t = (struct tcp_stream *)s;
    return shutdown(t->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void
tcp_want(struct stream *s, bool rd, bool wr)
{
    struct tcp_stream *t = (struct tcp_stream *)s;
    loop_io_set(t->loop, &t->io, (rd ? EPOLLIN : 0) | (wr ? EPOLLOUT : 0));
}

static void
free_tcp(void *arg)
{
    free(arg);
}

static void
tcp_close(struct stream *s, bool abort)
{
    struct tcp_stream *t = (struct tcp_stream *)s;

    loop_io_stop(t->loop, &t->io);
    if (abort) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(t->fd);
    t->fd = -1;
    t->s.on_event = NULL;
    loop_defer(t->loop, &t->free_defer, free_tcp, t);
}

static const struct stream_ops tcp_ops = {
    .read = tcp_read,
    .write = tcp_write,
    .shutdown_write = tcp_shutdown_write,
    .want = tcp_want,
    .close = tcp_close,
    .short_io_final = true, /* recv/send on a non-blocking socket: see stream.h */
};

struct stream *
tcp_stream_new(struct loop *l, int fd)
{
    struct tcp_stream *t = xcalloc(1, sizeof(*t));

    t->s.ops = &tcp_ops;
    t->loop = l;
    t->fd = fd;
    if (loop_io_start(l, &t->io, fd, 0, on_io, t) < 0) {
        close(fd);
        free(t);
        return NULL;
    }
    return &t->s;
}

int
tcp_stream_fd(const struct stream *s)
{
    return ((const struct tcp_stream *)s)->fd;
}
