/*
 * test_replay_stream.c - lib/conn's replay stream: the replayed bytes come first, then the
 * inner stream's, in order and none lost, through read(), through peek()/consume() (an inner
 * stream with zero-copy input) and through a pipe; readiness stays level-triggered while
 * replayed bytes are left; writes and half-close reach the inner stream; a close with a
 * wake-up queued frees nothing twice (ASan).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "conn/replay_stream.h"
#include "conn/tcp_stream.h"
#include "unit_loop.h"

/* Reads everything the stream gives when it says READABLE, into |got|. */
struct reader {
    struct stream *s;
    char got[256];
    size_t len;
    int events, eof;
    bool stop_after_one; /* read one byte per wake-up (level-triggered check) */
};

static void
on_event(void *arg, struct stream *s, unsigned ev)
{
    struct reader *r = arg;
    r->events++;
    if (!(ev & STREAM_READABLE))
        return;
    for (;;) {
        size_t room = r->stop_after_one ? 1 : sizeof(r->got) - r->len;
        assert_true(r->len + room <= sizeof(r->got));
        ssize_t n = stream_read(s, r->got + r->len, room);
        if (n == 0) {
            r->eof++;
            stream_want(s, false, false);
            return;
        }
        if (n < 0) {
            assert_int_equal(n, -EAGAIN);
            return;
        }
        r->len += (size_t)n;
        if (r->stop_after_one)
            return;
    }
}

static bool
cond_eof(void *arg)
{
    return ((struct reader *)arg)->eof > 0;
}

/* The replayed bytes first, then the socket's, then EOF; nothing twice. */
static void
test_read_order(void **state)
{
    struct loop *l = loop_new();
    struct reader r = {0};
    int fds[2];
    (void)state;

    unit_socketpair(fds);
    r.s = replay_stream_new(l, tcp_stream_new(l, fds[1]), "GET / HT", 8);
    stream_set_handler(r.s, on_event, &r);
    stream_want(r.s, true, false);
    assert_int_equal(write(fds[0], "TP/1.1\r\n", 8), 8);
    shutdown(fds[0], SHUT_WR);
    assert_true(unit_run_until(l, cond_eof, &r, 1000));
    assert_int_equal(r.len, 16);
    assert_memory_equal(r.got, "GET / HTTP/1.1\r\n", 16);
    stream_close(r.s, false);
    unit_run_for(l, 2);
    close(fds[0]);
    loop_free(l);
}

/*
 * Replayed bytes are in no kernel buffer: with nothing on the socket, a reader that takes one
 * byte per wake-up must still be woken until all are read (level-triggered, stream.h).
 */
static void
test_level_triggered(void **state)
{
    struct loop *l = loop_new();
    struct reader r = {.stop_after_one = true};
    int fds[2];
    (void)state;

    unit_socketpair(fds);
    r.s = replay_stream_new(l, tcp_stream_new(l, fds[1]), "abcde", 5);
    stream_set_handler(r.s, on_event, &r);
    stream_want(r.s, true, false);
    unit_run_for(l, 20);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.got, "abcde", 5);
    assert_int_equal(r.eof, 0);
    /* Nothing left to replay and the socket is quiet: no more wake-ups. */
    int before = r.events;
    unit_run_for(l, 20);
    assert_int_equal(r.events, before);
    stream_close(r.s, true);
    unit_run_for(l, 2);
    close(fds[0]);
    loop_free(l);
}

/* Writes and half-close go to the inner stream; an empty replay is just the inner stream. */
static void
test_write_and_empty(void **state)
{
    struct loop *l = loop_new();
    char b[16];
    int fds[2];
    (void)state;

    unit_socketpair(fds);
    struct stream *s = replay_stream_new(l, tcp_stream_new(l, fds[1]), NULL, 0);
    assert_int_equal(stream_write(s, "pong", 4), 4);
    assert_int_equal(stream_shutdown_write(s), 0);
    assert_int_equal(read(fds[0], b, sizeof(b)), 4);
    assert_memory_equal(b, "pong", 4);
    assert_int_equal(read(fds[0], b, sizeof(b)), 0);
    assert_int_equal(stream_read(s, b, sizeof(b)), -EAGAIN);
    assert_int_equal(write(fds[0], "x", 1), 1);
    assert_int_equal(stream_read(s, b, sizeof(b)), 1);
    assert_null(s->ops->peek); /* a TCP socket offers no zero-copy input; neither do we */
    stream_close(s, false);
    unit_run_for(l, 2);
    close(fds[0]);
    loop_free(l);
}

/* An in-memory inner stream with zero-copy input, to check peek()/consume() delegation. */
struct mem {
    struct stream s;
    const char *data;
    size_t off, len;
    int closes;
};

static ssize_t
mem_peek(struct stream *s, const void **p)
{
    struct mem *m = (struct mem *)s;
    if (m->off == m->len)
        return 0;
    *p = m->data + m->off;
    return (ssize_t)(m->len - m->off);
}

static void
mem_consume(struct stream *s, size_t n)
{
    ((struct mem *)s)->off += n;
}

static ssize_t
mem_read(struct stream *s, void *p, size_t len)
{
    const void *src;
    ssize_t n = mem_peek(s, &src);
    if (n <= 0)
        return n;
    if ((size_t)n > len)
        n = (ssize_t)len;
    memcpy(p, src, (size_t)n);
    mem_consume(s, (size_t)n);
    return n;
}

static ssize_t
mem_write(struct stream *s, const void *p, size_t len)
{
    (void)s;
    (void)p;
    return (ssize_t)len;
}

static int
mem_shutdown(struct stream *s)
{
    (void)s;
    return 0;
}

static void
mem_want(struct stream *s, bool rd, bool wr)
{
    (void)s;
    (void)rd;
    (void)wr;
}

static void
mem_close(struct stream *s, bool abort)
{
    (void)abort;
    ((struct mem *)s)->closes++;
}

static const struct stream_ops mem_ops = {
    .read = mem_read,
    .write = mem_write,
    .shutdown_write = mem_shutdown,
    .want = mem_want,
    .close = mem_close,
    .peek = mem_peek,
    .consume = mem_consume,
};

static void
test_peek_consume(void **state)
{
    struct loop *l = loop_new();
    struct mem m = {.s.ops = &mem_ops, .data = "inner", .len = 5};
    const void *p = NULL;
    char all[16];
    size_t n = 0;
    (void)state;

    struct stream *s = replay_stream_new(l, &m.s, "replay-", 7);
    assert_non_null(s->ops->peek);
    assert_null(s->ops->reserve); /* the inner stream has none */
    /* Peek, consume part, peek the rest: the replayed bytes, then the inner ones. */
    assert_int_equal(s->ops->peek(s, &p), 7);
    assert_memory_equal(p, "replay-", 7);
    s->ops->consume(s, 3);
    for (ssize_t got; (got = s->ops->peek(s, &p)) > 0;) {
        memcpy(all + n, p, (size_t)got);
        n += (size_t)got;
        s->ops->consume(s, (size_t)got);
    }
    assert_int_equal(n, 9);
    assert_memory_equal(all, "lay-inner", 9);
    stream_close(s, false);
    assert_int_equal(m.closes, 1);
    unit_run_for(l, 2);
    loop_free(l);
}

/* A close while a wake-up is queued: the wake-up does not run, the free happens once. */
static void
test_close_with_wakeup_queued(void **state)
{
    struct loop *l = loop_new();
    struct reader r = {0};
    int fds[2];
    (void)state;

    unit_socketpair(fds);
    r.s = replay_stream_new(l, tcp_stream_new(l, fds[1]), "zz", 2);
    stream_set_handler(r.s, on_event, &r);
    stream_want(r.s, true, false); /* queues a wake-up for the replayed bytes */
    stream_close(r.s, true);
    unit_run_for(l, 10);
    assert_int_equal(r.events, 0);
    close(fds[0]);
    loop_free(l);
}

static bool
cond_pipe(void *arg)
{
    int *done = arg;
    return *done > 0;
}

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    int *done = arg;
    (*done)++;
    assert_int_equal(res->err, 0);
    assert_int_equal(res->a_to_b, 4 + 100000);
}

/* Through a pipe (as the waypoint's passthrough after sniffing): byte-exact, half-close kept. */
static void
test_through_pipe(void **state)
{
    struct loop *l = loop_new();
    int fa[2], fb[2], done = 0;
    uint8_t *pat = unit_pattern(100000, 7);
    uint8_t *want = malloc(100004);
    (void)state;

    unit_socketpair(fa);
    unit_socketpair(fb);
    memcpy(want, "\x16\x03\x01\x00", 4);
    memcpy(want + 4, pat, 100000);
    struct unit_peer pa = {
        .fd = fa[0], .tx = pat, .tx_len = 100000, .shut_when_sent = true, .reading = true};
    struct unit_peer pb = {.fd = fb[0],
                           .reading = true,
                           .rx = malloc(100004),
                           .rx_cap = 100004,
                           .shut_when_sent = true};
    struct stream *a = replay_stream_new(l, tcp_stream_new(l, fa[1]), "\x16\x03\x01\x00", 4);
    pipe_start(l, a, tcp_stream_new(l, fb[1]), PIPE_BUF_DEFAULT, on_pipe_done, &done);
    for (int i = 0; i < 2000 && !done; i++) {
        unit_peer_pump(&pa);
        unit_peer_pump(&pb);
        unit_run_until(l, cond_pipe, &done, 1);
    }
    assert_int_equal(done, 1);
    unit_peer_pump(&pa);
    unit_peer_pump(&pb);
    assert_int_equal(pb.rx_len, 100004);
    assert_memory_equal(pb.rx, want, 100004);
    assert_true(pb.eof);
    assert_true(pa.eof);
    free(pb.rx);
    free(want);
    free(pat);
    close(fa[0]);
    close(fb[0]);
    unit_run_for(l, 2);
    loop_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_order),
        cmocka_unit_test(test_level_triggered),
        cmocka_unit_test(test_write_and_empty),
        cmocka_unit_test(test_peek_consume),
        cmocka_unit_test(test_close_with_wakeup_queued),
        cmocka_unit_test(test_through_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
