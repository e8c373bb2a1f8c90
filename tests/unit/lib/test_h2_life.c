/*
 * test_h2_life.c - HTTP/2 session and stream lifecycles over a socketpair
 * (cleartext): session failure fails open streams once, GOAWAY drains then
 * closes, a slow reader slows the writer, on_ready, 1xx interim responses.
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
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "unit_h2.h"
#include "unit_loop.h"

static bool
cond_both_closed(void *arg)
{
    struct h2t *t = arg;
    return t->closed_calls[0] > 0 && t->closed_calls[1] > 0;
}

static bool
cond_requests_3(void *arg)
{
    struct h2t *t = arg;
    return t->n_sreq == 3 && t->cst[0].calls == 1;
}

static void
test_session_close_fails_streams(void **state)
{
    struct h2t t;
    char b[16];
    (void)state;

    h2t_setup(&t);
    t.respond_status = 0; /* answer by hand */
    struct cst *answered = h2t_open(&t, "198.18.0.1:1", NULL, 0);
    struct cst *pending = h2t_open(&t, "198.18.0.1:2", NULL, 0);
    struct cst *dropped = h2t_open(&t, "198.18.0.1:3", NULL, 0);
    t.want_sreq = 1;
    assert_true(unit_run_until(t.loop, h2t_cond_n_requests, &t, 2000));
    assert_int_equal(h2_stream_respond(t.sreq[0], 200, NULL, 0, false), 0);
    assert_true(unit_run_until(t.loop, cond_requests_3, &t, 2000));
    /* A stream closed by its user before the answer never calls back. */
    stream_close(h2_stream_as_stream(dropped->st), true);
    dropped->owned = true;
    assert_int_equal(stream_write(h2_stream_as_stream(answered->st), "data", 4), 4);

    h2_session_close(t.cli, -ECONNABORTED);
    assert_false(h2_session_can_open(t.cli));
    assert_null(h2_session_connect(t.cli, "198.18.0.1:4", NULL, 0, h2t_on_response, NULL));
    assert_true(unit_run_until(t.loop, cond_both_closed, &t, 2000));
    assert_true(h2_session_is_closed(t.cli));
    assert_true(h2_session_is_closed(t.srv));
    assert_int_equal(t.closed_err[0], -ECONNABORTED);
    assert_int_equal(h2_session_n_streams(t.cli), 0);
    assert_int_equal(h2_session_n_streams(t.srv), 0);

    unit_run_for(t.loop, 5);
    /* The pending request learns of the failure once, with a negative status. */
    assert_int_equal(pending->calls, 1);
    assert_true(pending->status < 0);
    assert_int_equal(answered->calls, 1);
    assert_int_equal(answered->status, 200);
    assert_int_equal(dropped->calls, 0);
    /* Open streams fail on both sides: reads and writes return errors, not EOF. */
    ssize_t n = stream_read(h2_stream_as_stream(answered->st), b, sizeof(b));
    assert_true(n < 0 && n != -EAGAIN);
    assert_true(stream_write(h2_stream_as_stream(answered->st), "x", 1) < 0);
    for (int i = 0; i < 3; i++) {
        n = stream_read(h2_stream_as_stream(t.sreq[i]), b, sizeof(b));
        if (i == 0 && n > 0) /* "data" may have arrived before the close */
            n = stream_read(h2_stream_as_stream(t.sreq[i]), b, sizeof(b));
        assert_true(n < 0 && n != -EAGAIN);
        assert_true(h2_stream_respond(t.sreq[i], 200, NULL, 0, false) < 0);
    }
    h2t_teardown(&t);
}

static bool
cond_goaway_seen(void *arg)
{
    struct h2t *t = arg;
    return !h2_session_can_open(t->cli);
}

static void
test_goaway_drains_then_closes(void **state)
{
    struct h2t t;
    struct h2t_rd r;
    (void)state;

    h2t_setup(&t);
    struct cst *c = h2t_open(&t, "198.18.0.1:1", NULL, 0);
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    h2_session_shutdown(t.srv);
    assert_true(unit_run_until(t.loop, cond_goaway_seen, &t, 2000));
    assert_false(h2_session_is_closed(t.cli));

    /* The stream in flight still works both ways. */
    struct stream *cs = h2_stream_as_stream(c->st), *ss = h2_stream_as_stream(t.sreq[0]);
    assert_int_equal(stream_write(cs, "after goaway", 12), 12);
    memset(&r, 0, sizeof(r));
    r.s = ss;
    r.want = 12;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_memory_equal(r.buf, "after goaway", 12);
    assert_int_equal(t.closed_calls[0] + t.closed_calls[1], 0);

    /* When the last stream ends, both sessions close cleanly by themselves. */
    stream_shutdown_write(cs);
    stream_shutdown_write(ss);
    stream_close(cs, false);
    stream_close(ss, false);
    c->st = NULL;
    t.sreq[0] = NULL;
    assert_true(unit_run_until(t.loop, cond_both_closed, &t, 2000));
    assert_int_equal(t.closed_err[0], 0);
    assert_int_equal(t.closed_err[1], 0);
    h2t_teardown(&t);
}

struct slow {
    struct stream *cs;
    size_t written;
    int blocked_ticks;
};

static bool
cond_writer_blocked(void *arg)
{
    struct slow *w = arg;
    static char chunk[65536];
    ssize_t n;
    bool progress = false;

    while ((n = stream_write(w->cs, chunk, sizeof(chunk))) > 0) {
        w->written += (size_t)n;
        progress = true;
    }
    assert_int_equal(n, -EAGAIN);
    w->blocked_ticks = progress ? 0 : w->blocked_ticks + 1;
    return w->blocked_ticks >= 30;
}

struct sink {
    struct stream *ss;
    size_t got;
    ssize_t last;
};

static bool
cond_sink_eof(void *arg)
{
    struct sink *k = arg;
    static char b[65536];
    while ((k->last = stream_read(k->ss, b, sizeof(b))) > 0)
        k->got += (size_t)k->last;
    return k->last == 0;
}

/* A reader that does not read slows the writer: our memory stays bounded by the windows. */
static void
test_slow_reader_blocks_writer(void **state)
{
    struct h2t t;
    struct slow w = {0};
    struct sink k = {0};
    (void)state;

    h2t_setup(&t);
    struct cst *c = h2t_open(&t, "198.18.0.1:1", NULL, 0);
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    w.cs = h2_stream_as_stream(c->st);
    assert_true(unit_run_until(t.loop, cond_writer_blocked, &w, 4000));
    /* Stream window + per-stream tx buffer + frame batch + socket buffers, with slack. */
    assert_true(w.written >= H2_STREAM_WINDOW);
    assert_true(w.written <= H2_STREAM_WINDOW + (2u << 20));
    assert_int_equal(stream_shutdown_write(w.cs), 0);

    k.ss = h2_stream_as_stream(t.sreq[0]);
    assert_true(unit_run_until(t.loop, cond_sink_eof, &k, 4000));
    assert_int_equal(k.got, w.written);
    h2t_teardown(&t);
}

static bool
h2t_cond_ready_both(void *arg)
{
    struct h2t *t = arg;
    return t->ready_calls[0] > 0 && t->ready_calls[1] > 0;
}

/* h2.h: on_ready runs when "TLS (if any) completed and HTTP/2 is running". */
static void
test_cleartext_on_ready(void **state)
{
    struct h2t t;
    (void)state;

    h2t_setup(&t);
    bool both = unit_run_until(t.loop, h2t_cond_ready_both, &t, 500);
    int cli = t.ready_calls[0], srv = t.ready_calls[1];
    h2t_teardown(&t);
    if (!both || cli != 1 || srv != 1)
        fail_msg("on_ready calls without TLS: client %d, server %d (want 1 each)", cli, srv);
}

/* A raw HTTP/2 server (bytes written by hand) for responses our server never sends. */
struct raw_srv {
    struct loop *loop;
    struct h2_session *cli;
    int peer;
    struct cst c;
};

static bool
cond_raw_answered(void *arg)
{
    struct raw_srv *r = arg;
    unit_drain(r->peer);
    return r->c.calls > 0 && r->c.status >= 200;
}

/*
 * RFC 9110 15.2: a 1xx response is interim; the final status follows on the
 * same stream. The response callback must report the final one (200), once.
 */
static void
test_interim_1xx_is_not_final(void **state)
{
    static const uint8_t part1[] = {
        0, 0, 0, 4, 0, 0, 0, 0, 0,                      /* SETTINGS */
        0, 0, 0, 4, 1, 0, 0, 0, 0,                      /* SETTINGS ACK */
        0, 0, 5, 1, 4, 0, 0, 0, 1, 8, 3, '1', '0', '0', /* HEADERS :status 100 */
    };
    static const uint8_t part2[] = {0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88}; /* HEADERS :status 200 */
    static const struct h2_session_cbs none;
    struct raw_srv r;
    int fds[2];
    (void)state;

    memset(&r, 0, sizeof(r));
    r.loop = loop_new();
    unit_socketpair(fds);
    r.peer = fds[0];
    r.cli = h2_session_new(r.loop, tcp_stream_new(r.loop, fds[1]), false, &none, NULL);
    r.c.st = h2_session_connect(r.cli, "198.18.0.1:80", NULL, 0, h2t_on_response, &r.c);
    assert_non_null(r.c.st);
    unit_run_for(r.loop, 5);
    unit_drain(r.peer);
    assert_int_equal(write(r.peer, part1, sizeof(part1)), sizeof(part1));
    unit_run_for(r.loop, 20);
    assert_int_equal(write(r.peer, part2, sizeof(part2)), sizeof(part2));
    unit_run_until(r.loop, cond_raw_answered, &r, 500);
    int calls = r.c.calls, status = r.c.status;
    stream_close(h2_stream_as_stream(r.c.st), true);
    h2_session_close(r.cli, 0);
    h2_session_release(r.cli);
    unit_run_for(r.loop, 2);
    close(r.peer);
    loop_free(r.loop);
    if (calls != 1 || status != 200)
        fail_msg("response callback: %d call(s), status %d (want 1 call, 200)", calls, status);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_close_fails_streams),
        cmocka_unit_test(test_goaway_drains_then_closes),
        cmocka_unit_test(test_slow_reader_blocks_writer),
        cmocka_unit_test(test_cleartext_on_ready),
        cmocka_unit_test(test_interim_1xx_is_not_final),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
