/*
 * test_wp_http2_h1.c - the waypoint's HTTP/2 engine in front of an endpoint whose port speaks
 * HTTP/1.1 (its Route says HTTP1): the HTTP/2 request as the endpoint reads it on the wire,
 * and the HTTP/1.1 response (lengths, chunked bodies and trailers, HEAD, retries) as the
 * HTTP/2 client gets it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "unit_loop.h"
#include "wp_h2_fixture.h"

#define H1ROUTE "prefix=/ be=echo.default.svc.cluster.local:80 proto=1"
#define BE(w, i) ((w)->t.be[i].rx != NULL ? (w)->t.be[i].rx : "")

static const char *
H(const char *hdrs, const char *name)
{
    static char b[4][512];
    static int k;
    k = (k + 1) % 4;
    return w2_hdr(hdrs, name, b[k], sizeof(b[k]));
}

static void
setup_h1(struct w2 *w)
{
    w2_setup(w, H1ROUTE);
    w->raw_be = true;
    wpt_unhealthy(&w->t, 1);
    wpt_unhealthy(&w->t, 2);
}

static void
test_get_translated(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    const char *h[] = {"x-a", "1", "te", "trailers", NULL};
    int c = w2_call(&w, "GET", "/x?y=1", h, NULL, 0, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&w, 0), "GET /x?y=1 HTTP/1.1\r\nhost: echo\r\n"));
    assert_non_null(strstr(BE(&w, 0), "x-a: 1\r\n"));
    assert_non_null(strstr(BE(&w, 0), "x-request-id: "));
    assert_null(strstr(BE(&w, 0), "transfer-encoding"));
    assert_null(strstr(BE(&w, 0), "te: "));
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-B: 2\r\nConnection: keep-alive"
                         "\r\n\r\nhello");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal((char *)w.calls[c]->rx.p, "hello");
    assert_string_equal(H(w.calls[c]->hdrs, "x-b"), "2");
    assert_string_equal(H(w.calls[c]->hdrs, "content-length"), "5");
    assert_null(H(w.calls[c]->hdrs, "connection"));
    w2_teardown(&w);
}

/* An HTTP/2 client's request trailers reach an HTTP/1.1 endpoint as chunked trailers. */
static void
test_request_trailers_chunked(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "POST", "/up", NULL, "abc", 3, false);
    assert_true(w2_be_raw_has(&w, 0, "3\r\nabc\r\n"));
    static const char *const tr[] = {"x-t", "1", "grpc-timeout", "5S", NULL};
    w2_call_trailers(&w, c, "de", 2, tr);
    assert_true(w2_be_raw_has(&w, 0, "2\r\nde\r\n0\r\nx-t: 1\r\ngrpc-timeout: 5S\r\n\r\n"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    w2_teardown(&w);
}

static void
test_post_chunked_both_ways_with_trailers(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "POST", "/up", NULL, "abc", 3, false);
    assert_true(w2_be_raw_has(&w, 0, "3\r\nabc\r\n"));
    assert_non_null(strstr(BE(&w, 0), "transfer-encoding: chunked\r\n"));
    w2_call_more(&w, c, "defg", 4, true);
    assert_true(w2_be_raw_has(&w, 0, "4\r\ndefg\r\n0\r\n\r\n"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "5\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX-T: t\r\n\r\n");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal((char *)w.calls[c]->rx.p, "hello world");
    assert_string_equal(H(w.calls[c]->trailers, "grpc-status"), "0");
    assert_string_equal(H(w.calls[c]->trailers, "x-t"), "t");
    assert_null(H(w.calls[c]->hdrs, "transfer-encoding"));
    w2_teardown(&w);
}

static void
test_content_length_kept(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    const char *h[] = {"content-length", "4", NULL};
    int c = w2_call(&w, "PUT", "/f", h, "data", 4, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\ndata"));
    assert_non_null(strstr(BE(&w, 0), "content-length: 4\r\n"));
    assert_null(strstr(BE(&w, 0), "chunked"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 204 No Content\r\n\r\n");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 204);
    w2_teardown(&w);
}

static void
test_head_translated(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "HEAD", "/f", NULL, NULL, 0, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&w, 0), "HEAD /f HTTP/1.1\r\n"));
    /* No body follows a HEAD's Content-Length: the parser knows the method. */
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal(H(w.calls[c]->hdrs, "content-length"), "1234");
    assert_int_equal(w.calls[c]->rx.len, 0);
    w2_teardown(&w);
}

static void
test_body_until_close(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "GET", "/old", NULL, NULL, 0, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\n"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
    wpt_be_close(&w.t, 0);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal((char *)w.calls[c]->rx.p, "until the end");
    assert_int_equal(w.calls[c]->rx.err, 0);
    w2_teardown(&w);
}

static void
test_large_response_byte_exact(void **state)
{
    struct w2 w;
    const size_t n = 3u << 20;
    uint8_t *body = unit_pattern(n, 5);
    char head[128];
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "GET", "/big", NULL, NULL, 0, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\n"));
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    wpt_be_send(&w.t, 0, head);
    wpt_be_send_n(&w.t, 0, body, n);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->rx.len, n);
    assert_memory_equal(w.calls[c]->rx.p, body, n);
    free(body);
    w2_teardown(&w);
}

static void
test_503_retried_on_another_endpoint(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, H1ROUTE);
    w.raw_be = true;
    wpt_unhealthy(&w.t, 2);
    int c = w2_call(&w, "POST", "/r", NULL, "again", 5, true);
    assert_true(w2_be_raw_has(&w, 0, "0\r\n\r\n"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    assert_true(w2_be_raw_has(&w, 1, "5\r\nagain\r\n0\r\n\r\n"));
    assert_true(w.t.be[1].ep != w.t.be[0].ep);
    wpt_be_send(&w.t, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal((char *)w.calls[c]->rx.p, "ok");
    w2_teardown(&w);
}

static void
test_bad_response_502(void **state)
{
    struct w2 w;
    (void)state;
    setup_h1(&w);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_be_raw_has(&w, 0, "\r\n\r\n"));
    wpt_be_send(&w.t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx");
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 502);
    w2_teardown(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_translated),
        cmocka_unit_test(test_post_chunked_both_ways_with_trailers),
        cmocka_unit_test(test_request_trailers_chunked),
        cmocka_unit_test(test_content_length_kept),
        cmocka_unit_test(test_head_translated),
        cmocka_unit_test(test_body_until_close),
        cmocka_unit_test(test_large_response_byte_exact),
        cmocka_unit_test(test_503_retried_on_another_endpoint),
        cmocka_unit_test(test_bad_response_502),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
