/*
 * unit_loop.c - see unit_loop.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "unit_loop.h"

void
unit_socketpair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
        perror("socketpair");
        abort();
    }
}

void
unit_tcp_pair(int *a, int *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        perror("unit_tcp_pair: listen");
        abort();
    }
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, len) < 0) {
        perror("unit_tcp_pair: connect");
        abort();
    }
    *b = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (*b < 0 || fcntl(*a, F_SETFL, O_NONBLOCK) < 0) {
        perror("unit_tcp_pair: accept");
        abort();
    }
    close(lfd);
}

double
unit_cpu_seconds(void)
{
    struct rusage u;

    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct run_ctx {
    struct loop *loop;
    struct loop_timer tick;
    unit_cond_fn *cond;
    void *arg;
    uint64_t deadline_ms;
    bool held;
};

static void
on_tick(void *arg)
{
    struct run_ctx *r = arg;

    if (r->cond != NULL && r->cond(r->arg)) {
        r->held = true;
        loop_stop(r->loop);
        return;
    }
    if (clock_mono_ms() >= r->deadline_ms) {
        loop_stop(r->loop);
        return;
    }
    loop_timer_start(r->loop, &r->tick, 1, on_tick, r);
}

bool
unit_run_until(struct loop *l, unit_cond_fn *cond, void *arg, uint64_t timeout_ms)
{
    struct run_ctx r = {.loop = l, .cond = cond, .arg = arg};

    if (cond != NULL && cond(arg))
        return true;
    r.deadline_ms = clock_mono_ms() + timeout_ms;
    loop_timer_start(l, &r.tick, 0, on_tick, &r);
    if (loop_run(l) < 0)
        abort();
    loop_timer_stop(l, &r.tick);
    return r.held;
}

void
unit_run_for(struct loop *l, uint64_t ms)
{
    unit_run_until(l, NULL, NULL, ms);
}

static void
on_idle_done(void *arg)
{
    loop_stop(arg);
}

double
unit_idle_cpu(struct loop *l, uint64_t ms)
{
    struct loop_timer t = {0};
    double c0 = unit_cpu_seconds();

    loop_timer_start(l, &t, ms, on_idle_done, l);
    if (loop_run(l) < 0)
        abort();
    loop_timer_stop(l, &t);
    return unit_cpu_seconds() - c0;
}

size_t
unit_fill(int fd)
{
    static char junk[65536];
    size_t total = 0;

    for (;;) {
        ssize_t n = send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    return total;
}

size_t
unit_drain(int fd)
{
    char b[65536];
    size_t total = 0;

    for (;;) {
        ssize_t n = read(fd, b, sizeof(b));
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    return total;
}

void
unit_peer_pump(struct unit_peer *p)
{
    while (p->tx_off < p->tx_len) {
        ssize_t n = send(p->fd, p->tx + p->tx_off, p->tx_len - p->tx_off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        p->tx_off += (size_t)n;
    }
    if (p->tx_off == p->tx_len && p->shut_when_sent && !p->shut) {
        assert_int_equal(shutdown(p->fd, SHUT_WR), 0);
        p->shut = true;
    }
    while (p->reading && !p->eof && p->rx_err == 0) {
        uint8_t junk[4096];
        bool full = p->rx != NULL && p->rx_len == p->rx_cap;
        uint8_t *dst = p->rx != NULL && !full ? p->rx + p->rx_len : junk;
        size_t room = p->rx != NULL && !full ? p->rx_cap - p->rx_len : sizeof(junk);
        ssize_t n = recv(p->fd, dst, room, 0);
        if (n > 0 && full)
            fail_msg("peer received more than expected");
        if (n > 0) {
            p->rx_len += (size_t)n;
        } else if (n == 0) {
            p->eof = true;
        } else {
            if (errno != EAGAIN)
                p->rx_err = errno;
            break;
        }
    }
}

uint8_t *
unit_pattern(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
    return p;
}
