/*
 * echo_tcp.c - the echo server's raw TCP port: a banner line, then an echo.
 *
 * The banner "pod=... version=... peer=...\n" goes first; after it every byte
 * read is written back. One buffer carries both directions' worth: when it is
 * full we stop reading (back-pressure), and the peer's FIN is answered with
 * ours once everything before it was echoed (half-close). There is no idle
 * timeout: long-lived connections are what hold-conn probes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "buf/buf.h"
#include "echo.h"
#include "loop/loop.h"

#define TCP_BUF_MAX (64u << 10)

struct tcp_conn {
    struct echo_server *srv;
    struct tcp_conn *prev, *next;
    struct loop_io io;
    struct loop_defer free_defer;
    int fd;
    bool eof; /* the peer shut its write side */
    char peer[ADDR_STRLEN];
    struct buf b;       /* banner, then bytes read and not yet echoed */
    uint64_t n_echoed;  /* bytes echoed back (the banner excluded) */
    size_t banner_left; /* banner bytes still at the head of |b| */
    uint64_t start_ms;
};

static void
conn_free(void *arg)
{
    struct tcp_conn *c = arg;
    buf_cleanup(&c->b);
    free(c);
}

static void
conn_close(struct tcp_conn *c, const char *end)
{
    struct echo_server *s = c->srv;

    echo_log("tcp peer=%s echoed_bytes=%" PRIu64 " dur_ms=%" PRIu64 " end=%s", c->peer, c->n_echoed,
             loop_now_ms(s->loop) - c->start_ms, end);
    loop_io_stop(s->loop, &c->io);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->tcp_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop_defer(s->loop, &c->free_defer, conn_free, c);
}

/* Writes out what |b| holds. Returns 0 or -1 when the peer is gone. */
static int
flush_buf(struct tcp_conn *c)
{
    while (buf_len(&c->b) > 0) {
        ssize_t n = send(c->fd, buf_head(&c->b), buf_len(&c->b), MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        size_t banner = (size_t)n < c->banner_left ? (size_t)n : c->banner_left;
        c->banner_left -= banner;
        c->n_echoed += (size_t)n - banner;
        buf_consume(&c->b, (size_t)n);
    }
    buf_release_if_empty(&c->b);
    return 0;
}

/* Reads once into |b|. Returns 0 (data, EOF or nothing yet) or -1 on error. */
static int
read_buf(struct tcp_conn *c)
{
    size_t room;
    char *w = buf_reserve(&c->b, TCP_BUF_MAX, &room);

    if (w == NULL)
        return 0;
    ssize_t n = recv(c->fd, w, room, 0);
    if (n > 0)
        buf_commit(&c->b, (size_t)n);
    else if (n == 0)
        c->eof = true;
    else if (errno != EAGAIN && errno != EINTR)
        return -1;
    return 0;
}

static void
on_io(void *arg, uint32_t events)
{
    struct tcp_conn *c = arg;

    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->eof && buf_space(&c->b) > 0 &&
        read_buf(c) < 0) {
        conn_close(c, "reset");
        return;
    }
    if (flush_buf(c) < 0) {
        conn_close(c, "reset");
        return;
    }
    if (c->eof && buf_len(&c->b) == 0) {
        /* Everything before the peer's FIN is echoed: send ours; both directions are done. */
        shutdown(c->fd, SHUT_WR);
        conn_close(c, "eof");
        return;
    }
    uint32_t want = buf_len(&c->b) > 0 ? EPOLLOUT : 0;
    if (!c->eof && buf_space(&c->b) > 0)
        want |= EPOLLIN;
    loop_io_set(c->srv->loop, &c->io, want);
}

void
echo_tcp_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct echo_server *s = arg;
    struct tcp_conn *c = xcalloc(1, sizeof(*c));
    char banner[3 * ECHO_MAX_LABEL];

    c->srv = s;
    c->fd = fd;
    c->start_ms = loop_now_ms(s->loop);
    ipport_str(peer, peer_port, c->peer);
    buf_init(&c->b, TCP_BUF_MAX);
    int n = snprintf(banner, sizeof(banner), "pod=%s version=%s peer=%s\n", s->name, s->version,
                     c->peer);
    CHECK(n > 0 && (size_t)n < sizeof(banner));
    CHECK(buf_append(&c->b, banner, (size_t)n) == 0);
    c->banner_left = (size_t)n;
    if (loop_io_start(s->loop, &c->io, fd, EPOLLOUT, on_io, c) < 0) {
        close(fd);
        conn_free(c);
        return;
    }
    c->next = s->tcp_conns;
    if (c->next)
        c->next->prev = c;
    s->tcp_conns = c;
    echo_log("tcp peer=%s accepted", c->peer);
}

void
echo_tcp_close_all(struct echo_server *s)
{
    while (s->tcp_conns != NULL)
        conn_close(s->tcp_conns, "shutdown");
}
