/*
 * test_wp_http1_robust.c - the HTTP/1.1 engine when endpoints and clients go away: a kept-alive
 * upstream the endpoint closed (before we reuse it, or as we write on it), the per-try
 * timeout (backendRequest) restarting with each try, how the engine closes upstream and
 * downstream streams (half-close, then the peer's end), and drain.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "wp_h1_fixture.h"

#define OK_RESP   "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
#define GET(path) "GET " path " HTTP/1.1\r\nHost: echo\r\n\r\n"
#define POST(path) "POST " path " HTTP/1.1\r\nHost: echo\r\nContent-Length: 3\r\n\r\nabc"
#define CL(t)     ((t)->crx != NULL ? (t)->crx : "")

static void
only_ep0(struct wpt *t)
{
    wpt_unhealthy(t, 1);
    wpt_unhealthy(t, 2);
}

/* One request answered on backend connection 0, which stays kept alive. */
static void
first_exchange(struct wpt *t, const char *req)
{
    wpt_send(t, req);
    assert_true(wpt_be_has(t, 0, "\r\n\r\n"));
    wpt_be_send(t, 0, OK_RESP);
    assert_true(wpt_dones(t, 1));
    assert_int_equal(t->done[0].status, 200);
}

/* The endpoint closed the idle connection; the next request arrives before the engine
 * noticed (its event is queued behind the client's): it must not be sent there. */
static void
test_stale_idle_not_used_post(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    first_exchange(&t, POST("/a"));
    wpt_send(&t, POST("/b")); /* ready first */
    wpt_be_close(&t, 0);      /* ready second */
    assert_true(wpt_be_has(&t, 1, "POST /b "));
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_dones(&t, 2));
    assert_int_equal(t.done[1].status, 200);
    assert_int_equal(t.done[1].flags, 0);
    assert_int_equal(t.done[1].attempts, 1);
    assert_null(strstr(CL(&t), "503"));
    wpt_teardown(&t);
}

/* The endpoint closes the kept-alive connection as the request reaches it, answering
 * nothing: an idempotent request goes again on a new connection, no try counted. */
static void
test_stale_after_write_get_retried(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ retry=0 be=echo.default.svc.cluster.local:80");
    only_ep0(&t);
    first_exchange(&t, GET("/a"));
    wpt_send(&t, GET("/b"));
    assert_true(wpt_be_has(&t, 0, "GET /b "));
    wpt_be_close(&t, 0);
    assert_true(wpt_be_has(&t, 1, "GET /b "));
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_dones(&t, 2));
    assert_int_equal(t.done[1].status, 200);
    assert_int_equal(t.done[1].flags, 0);
    assert_int_equal(t.done[1].attempts, 1);
    assert_null(strstr(CL(&t), "503"));
    wpt_teardown(&t);
}

/* ... a POST that reached it may have been acted on: 503 UC, never sent twice (RFC 9112
 * 9.3.1; Envoy with Istio's defaults answers the same). */
static void
test_stale_after_write_post_not_replayed(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    first_exchange(&t, POST("/a"));
    wpt_send(&t, POST("/b"));
    assert_true(wpt_be_has(&t, 0, "POST /b "));
    wpt_be_close(&t, 0);
    assert_true(wpt_client_has(&t, "connection termination", 1));
    assert_true(wpt_dones(&t, 2));
    assert_int_equal(t.done[1].status, 503);
    assert_int_equal(t.done[1].flags, WP_FLAG_UC);
    assert_int_equal(t.n_be, 1);
    wpt_teardown(&t);
}

/* A fresh connection that ends before any response byte is not retried (Istio's retry_on
 * has no "reset"): 503 UC after one try. */
static void
test_fresh_reset_not_retried(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_close(&t, 0);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 503);
    assert_int_equal(t.done[0].flags, WP_FLAG_UC);
    assert_int_equal(t.done[0].attempts, 1);
    assert_int_equal(t.n_be, 1);
    wpt_teardown(&t);
}

/* A retriable 503 whose connection closes with it: the next try, on another connection,
 * is not taken for one that closed too. */
static void
test_retry_after_503_close(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/r"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                       "connection: close\r\n\r\n");
    wpt_be_close(&t, 0);
    assert_true(wpt_be_has(&t, 1, "GET /r "));
    wpt_run(&t, 20);
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].attempts, 2);
    wpt_teardown(&t);
}

/* The per-try timeout (backendRequest) starts again with each try. */
static void
test_per_try_timeout_restarts(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ btimeout=800 be=echo.default.svc.cluster.local:80");
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/t"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_run(&t, 500);
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_be_has(&t, 1, "GET /t "));
    wpt_run(&t, 500); /* 1000 ms since the request, 500 into this try */
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].attempts, 2);
    wpt_teardown(&t);
}

/* ... and when a try takes longer: 504 UT, not retried (Istio's retry_on). */
static void
test_per_try_timeout_504(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ btimeout=100 be=echo.default.svc.cluster.local:80");
    wpt_send(&t, GET("/slow"));
    assert_true(wpt_client_has(&t, "upstream request timeout", 1));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 504);
    assert_int_equal(t.done[0].flags, WP_FLAG_UT);
    assert_int_equal(t.done[0].attempts, 1);
    wpt_teardown(&t);
}

/* The client leaves: its idle upstream is half-closed, not torn down; the endpoint's own
 * close ends it. (A reset there made the endpoint's ztunnel log "Broken pipe".) */
static void
test_idle_upstream_half_closed(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    first_exchange(&t, GET("/a"));
    close(t.cfd);
    t.cfd = -1;
    assert_true(wpt_be_eof(&t, 0));
    /* The engine still holds its end: the endpoint can finish writing. */
    assert_int_equal(send(t.be[0].fd, "x", 1, MSG_NOSIGNAL), 1);
    assert_int_equal(wp_http1_lingering(), 1);
    wpt_be_close(&t, 0);
    wpt_run(&t, 20);
    assert_int_equal(wp_http1_lingering(), 0);
    wpt_teardown(&t);
}

/* A response with Connection: close: the engine half-closes the client's side and waits
 * for the client to end. */
static void
test_downstream_half_closed(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, "GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_eof(&t));
    assert_non_null(strstr(CL(&t), "hello"));
    assert_int_equal(t.closed, 0); /* waiting for the client's end */
    assert_int_equal(send(t.cfd, "x", 1, MSG_NOSIGNAL), 1);
    wpt_teardown(&t); /* closes the client: the connection ends */
}

/* Drain: an idle kept-alive connection is closed now, a busy one after its response, which
 * says Connection: close. */
static void
test_drain(void **state)
{
    struct wpt a, b;
    (void)state;
    wpt_setup(&a, NULL);
    wpt_setup(&b, NULL);
    first_exchange(&a, GET("/idle"));
    wpt_send(&b, GET("/busy"));
    assert_true(wpt_be_has(&b, 0, "\r\n\r\n"));
    wp_http1_drain();
    assert_true(wpt_client_eof(&a));
    assert_int_equal(wpt_count(a.crx, a.crx_len, "HTTP/1.1 200"), 1);
    wpt_be_send(&b, 0, OK_RESP);
    assert_true(wpt_client_eof(&b));
    assert_non_null(strstr(CL(&b), "connection: close\r\n"));
    assert_non_null(strstr(CL(&b), "hello"));
    wpt_teardown(&a);
    wpt_teardown(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_idle_not_used_post),
        cmocka_unit_test(test_stale_after_write_get_retried),
        cmocka_unit_test(test_stale_after_write_post_not_replayed),
        cmocka_unit_test(test_fresh_reset_not_retried),
        cmocka_unit_test(test_retry_after_503_close),
        cmocka_unit_test(test_per_try_timeout_restarts),
        cmocka_unit_test(test_per_try_timeout_504),
        cmocka_unit_test(test_idle_upstream_half_closed),
        cmocka_unit_test(test_downstream_half_closed),
        cmocka_unit_test(test_drain), /* last: the drain state is this thread's for good */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
