/*
 * test_h2_regress.c - regression tests for bugs found in review: an incomplete
 * TLS record must not keep the loop from running timers; closed streams with
 * unread data must give their bytes back to the connection window; a socket
 * whose peer hung up while nobody wants its events must not spin the loop
 * (plain and behind an h2 stream); a tunnel whose peer ends the stream while
 * our tx is full must finish with an error instead of hanging.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "tls/ca.h"
#include "tls/tls.h"
#include "tls/tls_stream.h"
#include "unit_certs.h"
#include "unit_h2.h"
#include "unit_loop.h"

#define TD        "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define IDLE_MS   1000
#define IDLE_CPU  0.2 /* seconds of CPU an idle second may use */

/* The old code never returned from the loop: fail the test instead of hanging ctest. */
static void
on_watchdog(int sig)
{
    static const char msg[] = "test_h2_regress: the event loop did not return (busy loop); failing\n";
    (void)sig;
    if (write(2, msg, sizeof(msg) - 1) < 0)
        _exit(2);
    _exit(1);
}

static void
watchdog_arm(unsigned secs)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_watchdog;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(secs);
}

static int
group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* ---- (1) an incomplete TLS record does not stall the loop ------------------------------- */

/* Two TLS h2 sessions joined by a relay that can hold back the last byte client -> server. */
struct relay {
    struct loop *loop;
    struct h2_session *cli, *srv;
    int to_cli, to_srv; /* relay ends: facing the client, facing the server */
    struct loop_io io_c, io_s;
    bool hold;
    bool has_held;
    uint8_t held;
    int ready, n_requests;
    struct h2_stream *req;
    bool timer_fired;
};

/* Writes all of |p|; false once the other side is gone (at teardown). */
static bool
relay_write(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Forwards what arrived from the client; while holding, keeps the last byte back. */
static void
on_relay_cli(void *arg, uint32_t events)
{
    struct relay *r = arg;
    uint8_t b[65536 + 1];
    ssize_t n;
    (void)events;

    while ((n = read(r->to_cli, b + 1, sizeof(b) - 1)) > 0) {
        uint8_t *p = b + 1;
        size_t len = (size_t)n;
        if (r->has_held) {
            b[0] = r->held;
            p = b;
            len++;
            r->has_held = false;
        }
        if (r->hold) {
            r->held = p[len - 1];
            r->has_held = true;
            len--;
        }
        if (!relay_write(r->to_srv, p, len))
            break;
    }
}

static void
on_relay_srv(void *arg, uint32_t events)
{
    struct relay *r = arg;
    uint8_t b[65536];
    ssize_t n;
    (void)events;

    while ((n = read(r->to_srv, b, sizeof(b))) > 0)
        if (!relay_write(r->to_cli, b, (size_t)n))
            break;
}

static int
on_tls_ready(void *arg, struct h2_session *s)
{
    struct relay *r = arg;
    (void)s;
    r->ready++;
    return 0;
}

static void
on_tls_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct relay *r = arg;
    (void)s;
    r->n_requests++;
    r->req = st;
    assert_int_equal(h2_stream_respond(st, 200, NULL, 0, false), 0);
}

static const struct h2_session_cbs tls_cbs = {
    .on_ready = on_tls_ready,
    .on_request = on_tls_request,
};

static void
on_tls_response(void *arg, struct h2_stream *st, int status)
{
    (void)arg;
    (void)st;
    (void)status;
}

static bool
cond_both_ready(void *arg)
{
    return ((struct relay *)arg)->ready == 2;
}

static bool
cond_request(void *arg)
{
    return ((struct relay *)arg)->n_requests == 1;
}

static void
on_stop_timer(void *arg)
{
    struct relay *r = arg;
    r->timer_fired = true;
    loop_stop(r->loop);
}

static void
test_partial_tls_record_no_busy_loop(void **state)
{
    struct relay r;
    struct loop_timer stop = {0};
    const char *expected[] = {SERVER_ID};
    struct tls_check cchk = {.expected = expected, .n_expected = 1};
    struct tls_check schk = {.trust_domain = TD};
    int a[2], b[2];
    (void)state;

    struct ca *ca = ca_generate("regress root", 3600);
    assert_non_null(ca);
    struct tls_creds *cc = unit_creds_simple(ca, TD, "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca, TD, "default", "server");
    memset(&r, 0, sizeof(r));
    r.loop = loop_new();
    unit_socketpair(a);
    unit_socketpair(b);
    r.to_cli = a[1];
    r.to_srv = b[0];
    assert_int_equal(loop_io_start(r.loop, &r.io_c, r.to_cli, EPOLLIN, on_relay_cli, &r), 0);
    assert_int_equal(loop_io_start(r.loop, &r.io_s, r.to_srv, EPOLLIN, on_relay_srv, &r), 0);
    r.cli = h2_session_new(r.loop,
                           tls_stream_new(r.loop, tcp_stream_new(r.loop, a[0]),
                                          tls_new_client(cc, &cchk), false, TLS_STREAM_ALPN_H2),
                           false, &tls_cbs, &r);
    r.srv = h2_session_new(r.loop,
                           tls_stream_new(r.loop, tcp_stream_new(r.loop, b[1]),
                                          tls_new_server(sc, &schk), true, TLS_STREAM_ALPN_H2),
                           true, &tls_cbs, &r);
    assert_non_null(r.cli);
    assert_non_null(r.srv);
    assert_true(unit_run_until(r.loop, cond_both_ready, &r, 2000));
    unit_run_for(r.loop, 50); /* SETTINGS acks settle */

    /* One record (HEADERS) reaches the server but for its last byte. */
    r.hold = true;
    struct h2_stream *c = h2_session_connect(r.cli, "198.18.0.1:80", NULL, 0, on_tls_response, NULL);
    assert_non_null(c);
    watchdog_arm(5);
    loop_timer_start(r.loop, &stop, 300, on_stop_timer, &r);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(loop_run(r.loop), 0);
    uint64_t took = clock_mono_ms() - t0;
    alarm(0);
    loop_timer_stop(r.loop, &stop);
    assert_true(r.timer_fired);
    assert_true(took < 2000);
    assert_true(r.has_held);
    assert_int_equal(r.n_requests, 0);

    /* The rest of the record arrives: the request gets through. */
    r.hold = false;
    assert_true(relay_write(r.to_srv, &r.held, 1));
    r.has_held = false;
    assert_true(unit_run_until(r.loop, cond_request, &r, 2000));

    stream_close(h2_stream_as_stream(c), true);
    stream_close(h2_stream_as_stream(r.req), true);
    h2_session_close(r.cli, 0);
    h2_session_close(r.srv, 0);
    unit_run_for(r.loop, 2);
    h2_session_release(r.cli);
    h2_session_release(r.srv);
    unit_run_for(r.loop, 2);
    loop_io_stop(r.loop, &r.io_c);
    loop_io_stop(r.loop, &r.io_s);
    close(r.to_cli);
    close(r.to_srv);
    loop_free(r.loop);
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    ca_free(ca);
}

/* ---- (2) closed streams give unread bytes back to the connection window ------------------ */

#define WIN_ROUNDS 6 /* 6 x 4 MiB: more than the 16 MiB connection window */

struct writer {
    struct h2t *t;
    int idx;       /* in t->sreq */
    size_t target; /* bytes to send */
    size_t sent;
    bool end; /* then END_STREAM and release the stream */
};

static void
on_writer(void *arg, struct stream *s, unsigned events)
{
    static const uint8_t chunk[65536];
    struct writer *w = arg;
    (void)events;

    while (w->sent < w->target) {
        size_t want = w->target - w->sent;
        ssize_t n = stream_write(s, chunk, want < sizeof(chunk) ? want : sizeof(chunk));
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            stream_close(s, true);
            w->t->sreq[w->idx] = NULL;
            return;
        }
        w->sent += (size_t)n;
    }
    if (w->sent == w->target && w->end) {
        assert_int_equal(stream_shutdown_write(s), 0);
        stream_close(s, false);
        w->t->sreq[w->idx] = NULL;
        return;
    }
    stream_want(s, false, w->sent < w->target);
}

/* Lets the server's request |idx| answer |target| bytes of DATA. */
static void
start_writer(struct h2t *t, struct writer *w, int idx, size_t target, bool end)
{
    t->want_sreq = idx + 1;
    assert_true(unit_run_until(t->loop, h2t_cond_n_requests, t, 2000));
    *w = (struct writer){.t = t, .idx = idx, .target = target, .end = end};
    struct stream *x = h2_stream_as_stream(t->sreq[idx]);
    stream_set_handler(x, on_writer, w);
    stream_want(x, false, true);
}

struct buffered {
    struct stream *s;
    size_t want;
};

/* The stream holds at least |want| unread bytes (peek does not consume). */
static bool
cond_buffered(void *arg)
{
    struct buffered *b = arg;
    const void *p;
    ssize_t n = b->s->ops->peek(b->s, &p);
    return n > 0 && (size_t)n >= b->want;
}

static void
test_closed_streams_keep_connection_window(void **state)
{
    struct h2t t;
    struct writer w[WIN_ROUNDS + 1];
    static uint8_t sink[65536];
    (void)state;

    h2t_setup(&t);
    for (int r = 0; r < WIN_ROUNDS; r++) {
        bool clean = r % 2 == 1;
        struct cst *c = h2t_open(&t, "198.18.0.1:80", NULL, 0);
        assert_non_null(c);
        struct stream *x = h2_stream_as_stream(c->st);
        start_writer(&t, &w[r], r, H2_STREAM_WINDOW, clean);
        struct buffered b = {.s = x, .want = H2_STREAM_WINDOW};
        if (!unit_run_until(t.loop, cond_buffered, &b, 3000))
            fail_msg("round %d: the stream did not get its %u bytes (connection window lost)", r,
                     H2_STREAM_WINDOW);
        if (!clean) {
            /* The app behind the tunnel resets: the unread bytes are dropped. */
            stream_close(x, true);
            c->owned = true;
            assert_true(unit_run_until(t.loop, h2t_cond_no_streams, &t, 2000));
            continue;
        }
        /* Both ends finish; nghttp2 closes the stream before the app read the data. */
        assert_int_equal(stream_shutdown_write(x), 0);
        assert_true(unit_run_until(t.loop, h2t_cond_no_streams, &t, 2000));
        size_t total = 0;
        ssize_t n;
        while ((n = stream_read(x, sink, sizeof(sink))) > 0)
            total += (size_t)n;
        assert_int_equal(n, 0);
        assert_int_equal(total, H2_STREAM_WINDOW);
        stream_close(x, false);
        c->owned = true;
    }
    /* A new tunnel on the same connection still receives data. */
    struct cst *c = h2t_open(&t, "198.18.0.1:80", NULL, 0);
    assert_non_null(c);
    start_writer(&t, &w[WIN_ROUNDS], WIN_ROUNDS, 65536, false);
    struct buffered b = {.s = h2_stream_as_stream(c->st), .want = 65536};
    if (!unit_run_until(t.loop, cond_buffered, &b, 2000))
        fail_msg("a new stream received nothing after %d closed streams", WIN_ROUNDS);
    h2t_teardown(&t);
}

/* ---- (3) a hung-up socket nobody waits on does not spin the loop ------------------------- */

struct app_rx {
    int fd;
    size_t got;
    bool eof;
};

static bool
cond_app_eof(void *arg)
{
    struct app_rx *a = arg;
    char b[256];
    ssize_t n;

    while ((n = read(a->fd, b, sizeof(b))) > 0)
        a->got += (size_t)n;
    if (n == 0)
        a->eof = true;
    return a->eof;
}

struct done {
    int calls;
    struct pipe_result res;
};

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct done *d = arg;
    d->calls++;
    d->res = *res;
}

static bool
cond_pipe_done(void *arg)
{
    return ((struct done *)arg)->calls > 0;
}

static void
reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

static void
test_hangup_without_interest_no_spin(void **state)
{
    int client, za, zb, app;
    struct done d = {0};
    (void)state;

    unit_tcp_pair(&client, &za);
    unit_tcp_pair(&zb, &app);
    struct loop *l = loop_new();
    struct pipe *p = pipe_start(l, tcp_stream_new(l, za), tcp_stream_new(l, zb), PIPE_BUF_DEFAULT,
                                on_pipe_done, &d);
    assert_non_null(p);
    /* The client sends a request and half-closes; the server app is still thinking. */
    assert_int_equal(write(client, "GET /slow\n", 10), 10);
    assert_int_equal(shutdown(client, SHUT_WR), 0);
    struct app_rx a = {.fd = app};
    assert_true(unit_run_until(l, cond_app_eof, &a, 2000));
    assert_int_equal(a.got, 10);
    /* Now the client resets: the pipe wants nothing from that socket yet. */
    reset_close(client);
    unit_run_for(l, 20);
    watchdog_arm(10);
    double cpu = unit_idle_cpu(l, IDLE_MS);
    alarm(0);
    if (cpu >= IDLE_CPU)
        fail_msg("%.2f s of CPU during a %d ms idle wait (busy loop on EPOLLHUP)", cpu, IDLE_MS);
    /* The server app answers: the pipe finds the reset and ends with an error. */
    assert_int_equal(write(app, "200\n", 4), 4);
    close(app);
    assert_true(unit_run_until(l, cond_pipe_done, &d, 2000));
    assert_int_equal(d.calls, 1);
    assert_true(d.res.err != 0);
    loop_free(l);
}

static void
test_hangup_behind_h2_stream_no_spin(void **state)
{
    struct h2t t;
    int zb, app;
    static uint8_t big[1 << 20];
    (void)state;

    h2t_setup(&t);
    unit_tcp_pair(&zb, &app);
    t.pipe_server = true; /* the request is piped to zb (inbound-like) */
    t.app_b_inner = zb;
    struct cst *c = h2t_open(&t, "198.18.0.1:80", NULL, 0);
    assert_non_null(c);
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    struct stream *x = h2_stream_as_stream(c->st);
    /* The remote half-closes and never reads again. */
    assert_int_equal(stream_write(x, "GET /big\n", 9), 9);
    assert_int_equal(stream_shutdown_write(x), 0);
    unit_run_for(t.loop, 20);
    /* The app answers more than the windows hold, so the pipe stops reading it. */
    size_t sent = 0;
    for (int i = 0, idle = 0; i < 400 && idle < 10; i++) {
        ssize_t n = write(app, big, sizeof(big));
        idle = n > 0 ? 0 : idle + 1;
        if (n > 0)
            sent += (size_t)n;
        unit_run_for(t.loop, 5);
    }
    assert_true(sent > H2_STREAM_WINDOW);
    /* It closes with the request unread: zb sees a reset while nobody wants its events. */
    close(app);
    unit_run_for(t.loop, 20);
    assert_int_equal(t.pipe_done[1], 0);
    watchdog_arm(10);
    double cpu = unit_idle_cpu(t.loop, IDLE_MS);
    alarm(0);
    if (cpu >= IDLE_CPU)
        fail_msg("%.2f s of CPU during a %d ms idle wait (busy loop on EPOLLHUP)", cpu, IDLE_MS);
    t.sreq[0] = NULL; /* owned by the server pipe */
    h2t_teardown(&t);
}

/* ---- (4) the peer ends the stream while our tx is full: the pipe finishes -------------- */

static void
test_peer_end_while_tx_full_finishes(void **state)
{
    struct h2t t;
    struct done d = {0};
    int app[2];
    (void)state;

    h2t_setup(&t);
    struct cst *c = h2t_open(&t, "198.18.0.1:80", NULL, 0);
    assert_non_null(c);
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    assert_int_equal(c->status, 200);
    /* The client app pipes into the tunnel; the server never reads, so windows and tx fill. */
    unit_socketpair(app);
    struct pipe *p = pipe_start(t.loop, tcp_stream_new(t.loop, app[1]), h2_stream_as_stream(c->st),
                                PIPE_BUF_DEFAULT, on_pipe_done, &d);
    assert_non_null(p);
    c->owned = true;
    uint64_t last = 0;
    for (int i = 0, still = 0; i < 200 && still < 5; i++) {
        uint64_t a_to_b, b_to_a;
        unit_fill(app[0]);
        unit_run_for(t.loop, 10);
        pipe_counts(p, &a_to_b, &b_to_a);
        still = a_to_b == last && a_to_b >= H2_STREAM_WINDOW ? still + 1 : 0;
        last = a_to_b;
    }
    assert_true(last >= H2_STREAM_WINDOW);
    assert_int_equal(d.calls, 0);
    /* The server finishes: END_STREAM, then RST_STREAM(NO_ERROR) (RFC 9113 8.1). */
    struct stream *sx = h2_stream_as_stream(t.sreq[0]);
    assert_int_equal(stream_shutdown_write(sx), 0);
    unit_run_for(t.loop, 20);
    stream_close(sx, false);
    t.sreq[0] = NULL;
    for (int i = 0; i < 100 && d.calls == 0; i++) {
        unit_fill(app[0]);
        unit_run_for(t.loop, 10);
    }
    if (d.calls == 0)
        fail_msg("the pipe did not finish within 1 s of the peer ending the stream");
    assert_int_equal(d.calls, 1);
    assert_true(d.res.err != 0);
    close(app[0]);
    h2t_teardown(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_streams_keep_connection_window),
        cmocka_unit_test(test_hangup_without_interest_no_spin),
        cmocka_unit_test(test_hangup_behind_h2_stream_no_spin),
        cmocka_unit_test(test_peer_end_while_tx_full_finishes),
        /* Last: on a regression its watchdog ends the process. */
        cmocka_unit_test(test_partial_tls_record_no_busy_loop),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
