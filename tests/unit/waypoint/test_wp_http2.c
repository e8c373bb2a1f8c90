/*
 * test_wp_http2.c - the waypoint's HTTP/2 engine end to end over socketpairs: an HTTP/2
 * client, the engine, and fake HTTP/2 endpoints; HTTP/2 itself as each side sees it (headers,
 * bodies and flow control, trailers, HEAD, many streams, sessions shared and lost, the client
 * leaving, memory). Decisions, retries and timeouts: test_wp_http2_route.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "unit_loop.h"
#include "wp_h2_fixture.h"

#define ECHO  " be=echo.default.svc.cluster.local:80"
#define ECHO2 " be=echo2.default.svc.cluster.local:80"

static const char *const grpc_hdrs[] = {"content-type", "application/grpc", "te", "trailers",
                                        NULL};

static bool
c_dones(struct w2 *w, void *arg)
{
    return w->t.n_done >= *(int *)arg;
}

static bool
dones(struct w2 *w, int n)
{
    return w2_until(w, c_dones, &n, 3000);
}

static const char *
H(const char *hdrs, const char *name)
{
    static char b[4][512];
    static int k;
    k = (k + 1) % 4;
    return w2_hdr(hdrs, name, b[k], sizeof(b[k]));
}

static void
only_ep0(struct w2 *w)
{
    wpt_unhealthy(&w->t, 1);
    wpt_unhealthy(&w->t, 2);
}


/* ---- forwarding ---------------------------------------------------------- */

static void
test_get_forwarded(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    only_ep0(&w);
    const char *h[] = {"user-agent", "t/1", "x-a", "1", NULL};
    int c = w2_call(&w, "GET", "/hello?x=1", h, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    struct w2_req *r = w.reqs[0];
    assert_string_equal(r->method, "GET");
    assert_string_equal(r->path, "/hello?x=1");
    assert_string_equal(r->authority, "echo");
    assert_string_equal(H(r->hdrs, "x-a"), "1");
    assert_string_equal(H(r->hdrs, "user-agent"), "t/1");
    assert_non_null(H(r->hdrs, "x-request-id"));
    const char *rh[] = {"x-from", "ep", NULL};
    w2_respond(&w, 0, 200, rh, "hello", 5, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal((char *)w.calls[c]->rx.p, "hello");
    assert_string_equal(H(w.calls[c]->hdrs, "x-from"), "ep");
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].status, 200);
    assert_int_equal(w.t.done[0].flags, 0);
    assert_string_equal(w.t.done[0].details, "via_upstream");
    assert_int_equal(w.t.done[0].attempts, 1);
    assert_int_equal(w.t.done[0].ep, 0);
    assert_int_equal(w.t.be[0].port, 8080);
    assert_string_equal(w.t.done[0].request_id, H(r->hdrs, "x-request-id"));
    w2_teardown(&w);
}

static void
test_request_id_kept(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    w.mode = W2_ECHO;
    const char *h[] = {"x-request-id", "abc-123", NULL};
    int c = w2_call(&w, "GET", "/", h, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_string_equal(H(w.reqs[0]->hdrs, "x-request-id"), "abc-123");
    assert_true(dones(&w, 1));
    assert_string_equal(w.t.done[0].request_id, "abc-123");
    w2_teardown(&w);
}

static void
test_post_body_echo(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    w.mode = W2_ECHO;
    int c = w2_call(&w, "POST", "/p", NULL, "ping-body", 9, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_int_equal(w.calls[c]->rx.len, 9);
    assert_memory_equal(w.calls[c]->rx.p, "ping-body", 9);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].bytes_in, 9);
    assert_int_equal(w.t.done[0].bytes_out, 9);
    w2_teardown(&w);
}

static void
test_large_bodies_byte_exact(void **state)
{
    struct w2 w;
    const size_t n = 12u << 20; /* beyond every window: flow control must move it */
    uint8_t *body = unit_pattern(n, 7);
    (void)state;
    w2_setup(&w, NULL);
    w.mode = W2_ECHO;
    int c = w2_call(&w, "POST", "/big", NULL, body, n, true);
    struct w2_call *k = w.calls[c];
    for (int i = 0; i < 200 && !k->rx.eof && k->rx.err == 0; i++)
        w2_run(&w, 50);
    assert_true(k->rx.eof);
    assert_int_equal(k->rx.len, n);
    assert_memory_equal(k->rx.p, body, n);
    assert_int_equal(w.reqs[0]->rx.len, n);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].bytes_in, n);
    assert_int_equal(w.t.done[0].bytes_out, n);
    free(body);
    w2_teardown(&w);
}

static void
test_slow_client_slows_endpoint(void **state)
{
    struct w2 w;
    const size_t n = 48u << 20;
    uint8_t *body = unit_pattern(n, 3);
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", "/stream", NULL, NULL, 0, true);
    w.calls[c]->rx.paused = true;
    assert_true(w2_reqs(&w, 1));
    w2_resp_head(&w, 0, 200, NULL);
    w2_resp_more(&w, 0, body, n, true);
    w2_run(&w, 500);
    /* The client reads nothing: the endpoint is held to the windows and buffers between. */
    size_t sent = w.reqs[0]->tx.off;
    print_message("endpoint could send %zu of %zu bytes to a stalled client\n", sent, n);
    assert_true(sent < 40u << 20);
    w.calls[c]->rx.paused = false;
    stream_want(h2_stream_as_stream(w.calls[c]->st), true, false);
    for (int i = 0; i < 400 && !w.calls[c]->rx.eof; i++)
        w2_run(&w, 50);
    assert_true(w.calls[c]->rx.eof);
    assert_int_equal(w.calls[c]->rx.len, n);
    assert_memory_equal(w.calls[c]->rx.p, body, n);
    free(body);
    w2_teardown(&w);
}

static void
test_trailers_passed(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/pkg.Svc/Method", grpc_hdrs, "\0\0\0\0\0", 5, true);
    assert_true(w2_req_eof(&w, 0));
    assert_string_equal(H(w.reqs[0]->hdrs, "te"), "trailers");
    assert_string_equal(H(w.reqs[0]->hdrs, "content-type"), "application/grpc");
    const char *rh[] = {"content-type", "application/grpc", NULL};
    const char *tr[] = {"grpc-status", "0", "grpc-message", "fine", "x-t", "1", NULL};
    w2_respond(&w, 0, 200, rh, "\0\0\0\0\0", 5, tr);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_int_equal(w.calls[c]->rx.len, 5);
    assert_string_equal(H(w.calls[c]->trailers, "grpc-status"), "0");
    assert_string_equal(H(w.calls[c]->trailers, "grpc-message"), "fine");
    assert_string_equal(H(w.calls[c]->trailers, "x-t"), "1");
    w2_teardown(&w);
}

static void
test_trailers_only_passed(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/pkg.Svc/Missing", grpc_hdrs, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    const char *rh[] = {"content-type", "application/grpc", "grpc-status", "5", NULL};
    w2_respond(&w, 0, 200, rh, NULL, 0, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal(H(w.calls[c]->hdrs, "grpc-status"), "5");
    assert_int_equal(w.calls[c]->rx.len, 0);
    w2_teardown(&w);
}

static void
test_many_headers_both_ways(void **state)
{
    struct w2 w;
    const char *h[2 * 60 + 1];
    char names[60][16];
    (void)state;
    for (int i = 0; i < 60; i++) {
        snprintf(names[i], sizeof(names[i]), "x-h%d", i);
        h[2 * i] = names[i];
        h[2 * i + 1] = names[i];
    }
    h[120] = NULL;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", "/", h, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    for (int i = 0; i < 60; i++)
        assert_string_equal(H(w.reqs[0]->hdrs, names[i]), names[i]);
    w2_respond(&w, 0, 204, h, NULL, 0, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 204);
    for (int i = 0; i < 60; i++)
        assert_string_equal(H(w.calls[c]->hdrs, names[i]), names[i]);
    w2_teardown(&w);
}

static void
test_head_passed(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "HEAD", "/file", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    assert_string_equal(w.reqs[0]->method, "HEAD");
    const char *rh[] = {"content-length", "1234", NULL};
    w2_respond(&w, 0, 200, rh, NULL, 0, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal(H(w.calls[c]->hdrs, "content-length"), "1234");
    assert_int_equal(w.calls[c]->rx.len, 0);
    w2_teardown(&w);
}

/* ---- many streams -------------------------------------------------------- */

static void
test_many_concurrent_streams(void **state)
{
    struct w2 w;
    const int n = 180;
    int cs[180];
    (void)state;
    w2_setup(&w, NULL);
    w.mode = W2_ECHO;
    for (int i = 0; i < n; i++) {
        char body[32];
        int len = snprintf(body, sizeof(body), "body-%d", i);
        cs[i] = w2_call(&w, "POST", "/m", NULL, xstrdup(body), (size_t)len, true);
    }
    for (int i = 0; i < n; i++) {
        char body[32];
        snprintf(body, sizeof(body), "body-%d", i);
        assert_true(w2_complete(&w, cs[i]));
        assert_int_equal(w.calls[cs[i]]->status, 200);
        assert_string_equal((char *)w.calls[cs[i]]->rx.p, body);
        free((void *)w.calls[cs[i]]->tx.p);
    }
    assert_true(dones(&w, n));
    /* Multiplexed: a few sessions per endpoint, not one per request. */
    print_message("%d streams over %d endpoint sessions\n", n, w.t.n_be);
    assert_true(w.t.n_be <= 6);
    w2_teardown(&w);
}

static void
test_session_reused_sequentially(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    only_ep0(&w);
    w.mode = W2_ECHO;
    for (int i = 0; i < 10; i++) {
        int c = w2_call(&w, "GET", "/seq", NULL, NULL, 0, true);
        assert_true(w2_complete(&w, c));
        assert_int_equal(w.calls[c]->status, 200);
    }
    assert_int_equal(w.t.connects[0], 1);
    w2_teardown(&w);
}

static void
test_endpoint_session_lost_reconnects(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    only_ep0(&w);
    w.mode = W2_ECHO;
    int c = w2_call(&w, "GET", "/1", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    h2_session_close(w.bs[0], 0);
    w2_run(&w, 50);
    c = w2_call(&w, "GET", "/2", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_int_equal(w.t.connects[0], 2);
    w2_teardown(&w);
}

static void
test_client_goes_away_mid_request(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    (void)w2_call(&w, "GET", "/a", NULL, NULL, 0, true);
    (void)w2_call(&w, "GET", "/b", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 2));
    h2_session_close(w.cs, 0);
    assert_true(dones(&w, 2));
    assert_true(w.t.done[0].flags & WP_FLAG_DC);
    assert_true(w.t.done[1].flags & WP_FLAG_DC);
    w2_run(&w, 50);
    assert_int_equal(w.t.closed, 1);
    w2_teardown(&w);
}

static bool
c_closed(struct w2 *w, void *arg)
{
    (void)arg;
    return w->t.closed >= 1;
}

/* Drain (SIGTERM): the client gets GOAWAY and opens no more streams, the stream in flight
 * gets its whole response, then the connection ends; one served later ends at once. Last in
 * the file: the engine stays draining. */
static void
test_drain(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int a = w2_call(&w, "GET", "/slow", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    wp_http2_drain();
    w2_run(&w, 50);
    assert_false(h2_session_can_open(w.cs)); /* GOAWAY received */
    assert_int_equal(w.t.closed, 0);          /* a stream in flight: the connection stays */
    w2_respond(&w, 0, 200, NULL, "done", 4, NULL);
    assert_true(w2_complete(&w, a));
    assert_int_equal(w.calls[a]->status, 200);
    assert_int_equal(w.calls[a]->rx.err, 0);
    assert_memory_equal(w.calls[a]->rx.p, "done", 4);
    assert_true(w2_until(&w, c_closed, NULL, 2000));
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].flags, 0);
    w2_teardown(&w);

    w2_setup(&w, NULL);
    assert_true(w2_until(&w, c_closed, NULL, 2000));
    w2_run(&w, 50);
    assert_true(h2_session_is_closed(w.cs));
    assert_int_equal(w.n_reqs, 0);
    w2_teardown(&w);
}

/* A bare lib/h2 client and server on a socketpair: the baseline the engine's figures are
 * compared with (the same client and endpoint ends, no waypoint between them). */
struct bare {
    struct h2_stream *srv[128];
    int n;
};

static void
bare_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct bare *b = arg;
    (void)s;
    b->srv[b->n++] = st;
}

static int
bare_ready(void *arg, struct h2_session *s)
{
    (void)s;
    (void)arg;
    return 0;
}

static void
bare_resp(void *arg, struct h2_stream *st, int status)
{
    (void)arg;
    (void)st;
    (void)status;
}

static bool
bare_cond(void *arg)
{
    return ((struct bare *)arg)->n >= 100;
}

static void
bare_figures(size_t *conn, size_t *stream)
{
    static const struct h2_session_cbs scb = {.on_request = bare_request};
    static const struct h2_session_cbs ccb = {.on_ready = bare_ready};
    struct loop *l = loop_new();
    struct bare b = {0};
    struct h2_stream *cs[100];
    int fds[2];

    unit_socketpair(fds);
    size_t m0 = mallinfo2().uordblks;
    struct h2_session *srv = h2_session_new(l, tcp_stream_new(l, fds[0]), true, &scb, &b);
    struct h2_session *cli = h2_session_new(l, tcp_stream_new(l, fds[1]), false, &ccb, NULL);
    unit_run_for(l, 20);
    size_t m1 = mallinfo2().uordblks;
    for (int i = 0; i < 100; i++) {
        cs[i] = h2_session_request(cli, "GET", "/wait", "echo", NULL, 0, bare_resp, NULL);
        stream_shutdown_write(h2_stream_as_stream(cs[i]));
    }
    assert_true(unit_run_until(l, bare_cond, &b, 3000));
    unit_run_for(l, 20);
    size_t m2 = mallinfo2().uordblks;
    *conn = m1 - m0;
    *stream = (m2 - m1) / 100;
    for (int i = 0; i < 100; i++) {
        stream_close(h2_stream_as_stream(cs[i]), true);
        stream_close(h2_stream_as_stream(b.srv[i]), true);
    }
    h2_session_close(cli, 0);
    h2_session_close(srv, 0);
    h2_session_release(cli);
    h2_session_release(srv);
    unit_run_for(l, 20);
    loop_free(l);
}

/*
 * Heap per connection and per waiting stream (release build; ASan's allocator reports 0):
 * client -> engine -> endpoint, less a bare client -> endpoint pair, less the test's own
 * objects, is what the engine holds.
 */
static void
test_memory_figures(void **state)
{
    struct w2 w;
    const int n = 100;
    size_t bare_conn, bare_stream;
    (void)state;
    size_t m0 = mallinfo2().uordblks;
    w2_setup(&w, NULL);
    only_ep0(&w);
    w2_run(&w, 10);
    size_t m1 = mallinfo2().uordblks;
    for (int i = 0; i < n; i++)
        (void)w2_call(&w, "GET", "/wait", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, n));
    w2_run(&w, 20);
    size_t m2 = mallinfo2().uordblks;
    w2_teardown(&w);
    bare_figures(&bare_conn, &bare_stream);
    if (m2 != 0) {
        size_t test_side = sizeof(struct w2_call) + sizeof(struct w2_req);
        size_t per = (m2 - m1) / (size_t)n - test_side;
        print_message("heap per waiting stream: %zu B through the engine, %zu B for a bare "
                      "h2 client/server pair: the engine's %zu B (its exchange and its two "
                      "lib/h2 stream ends)\n",
                      per, bare_stream, per - bare_stream);
        print_message("heap at set-up: %zu B (engine, test client, model, fixture), bare h2 "
                      "pair %zu B\n", m1 - m0, bare_conn);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_forwarded),
        cmocka_unit_test(test_request_id_kept),
        cmocka_unit_test(test_post_body_echo),
        cmocka_unit_test(test_large_bodies_byte_exact),
        cmocka_unit_test(test_slow_client_slows_endpoint),
        cmocka_unit_test(test_trailers_passed),
        cmocka_unit_test(test_trailers_only_passed),
        cmocka_unit_test(test_many_headers_both_ways),
        cmocka_unit_test(test_head_passed),
        cmocka_unit_test(test_many_concurrent_streams),
        cmocka_unit_test(test_session_reused_sequentially),
        cmocka_unit_test(test_endpoint_session_lost_reconnects),
        cmocka_unit_test(test_client_goes_away_mid_request),
        cmocka_unit_test(test_memory_figures),
        cmocka_unit_test(test_drain), /* last: it leaves the engine draining */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
