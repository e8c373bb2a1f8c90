/*
 * test_wp_http1.c - the waypoint's HTTP/1.1 engine end to end over socketpairs: what the
 * backend receives and what the client gets back, for framing (keep-alive, pipelining,
 * chunked, 100-continue, HEAD/204/304, upgrade) and for the proxy's decisions (policy,
 * routing, rewrites, header modifiers, retries, timeouts, response flags, smuggling forms).
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

#include "unit_loop.h"
#include "wp_h1_fixture.h"

#define OK_RESP   "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
#define GET(path) "GET " path " HTTP/1.1\r\nHost: echo\r\n\r\n"

#define BE(t, i) ((t)->be[i].rx != NULL ? (t)->be[i].rx : "")
#define CL(t)    ((t)->crx != NULL ? (t)->crx : "")

/* One GET answered by backend 0 with |resp|. */
static void
one_get(struct wpt *t, const char *req, const char *resp)
{
    wpt_send(t, req);
    assert_true(wpt_be_has(t, 0, "\r\n\r\n"));
    wpt_be_send(t, 0, resp);
}

static void
test_get_forwarded(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, "GET /hello?x=1 HTTP/1.1\r\nHost: echo\r\nUser-Agent: t\r\n\r\n", OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    assert_non_null(strstr(BE(&t, 0), "GET /hello?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(BE(&t, 0), "host: echo\r\n"));
    assert_non_null(strstr(BE(&t, 0), "x-request-id: "));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 200 OK\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].flags, 0);
    assert_string_equal(t.done[0].details, "via_upstream");
    assert_int_equal(t.done[0].attempts, 1);
    assert_int_equal(t.be[0].port, 8080);
    wpt_teardown(&t);
}

static void
test_keepalive_reuses_upstream(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    /* Only endpoint 0: the second request must find its idle connection. */
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    one_get(&t, GET("/a"), OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_send(&t, GET("/b"));
    assert_true(wpt_be_has(&t, 0, "GET /b "));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 2));
    assert_int_equal(t.n_be, 1);
    assert_int_equal(t.connects[0], 1);
    assert_false(t.ceof);
    wpt_teardown(&t);
}

static void
test_pipelining_in_order(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/first") GET("/second"));
    assert_true(wpt_be_has(&t, 0, "GET /first "));
    wpt_run(&t, 20);
    /* One request at a time upstream: the second waits for the first response. */
    assert_null(strstr(BE(&t, 0), "/second"));
    wpt_be_send(&t, 0, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none");
    assert_true(wpt_be_has(&t, 0, "GET /second "));
    wpt_be_send(&t, 0, "HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\ntwo");
    assert_true(wpt_client_has(&t, "two", 1));
    const char *a = strstr(CL(&t), "one"), *b = strstr(CL(&t), "201 Created");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);
    wpt_teardown(&t);
}

static void
test_chunked_request(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, "POST /up HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: yes\r\n\r\n");
    assert_true(wpt_be_has(&t, 0, "0\r\nx-trailer: yes\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 0), "transfer-encoding: chunked\r\n"));
    assert_non_null(strstr(BE(&t, 0), "5\r\nhello\r\n6\r\n world\r\n"));
    assert_null(strstr(BE(&t, 0), "ext=1")); /* re-chunked, extensions not forwarded */
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].bytes_in, 11);
    wpt_teardown(&t);
}

static void
test_chunked_response(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, GET("/"),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    assert_true(wpt_client_has(&t, "0\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "transfer-encoding: chunked\r\n"));
    assert_non_null(strstr(CL(&t), "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].bytes_out, 5);
    wpt_teardown(&t);
}

static void
test_content_length_body(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, "PUT /x HTTP/1.1\r\nHost: echo\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n0123456789"));
    assert_non_null(strstr(BE(&t, 0), "Content-Length: 10\r\n"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

static void
test_close_delimited_to_chunked(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, GET("/"), "HTTP/1.1 200 OK\r\n\r\nuntil close");
    wpt_be_close(&t, 0);
    assert_true(wpt_client_has(&t, "0\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "transfer-encoding: chunked\r\n"));
    assert_non_null(strstr(CL(&t), "b\r\nuntil close\r\n0\r\n\r\n"));
    assert_false(t.ceof); /* the client connection stays */
    wpt_teardown(&t);
}

static void
test_http10_close_delimited(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, "GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nold client");
    wpt_be_close(&t, 0);
    assert_true(wpt_client_eof(&t));
    assert_non_null(strstr(CL(&t), "connection: close\r\n\r\nold client"));
    assert_null(strstr(CL(&t), "chunked"));
    assert_non_null(strstr(BE(&t, 0), "host: echo.default.svc.cluster.local\r\n"));
    wpt_teardown(&t);
}

static void
test_connection_close(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, "GET / HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n", OK_RESP);
    assert_true(wpt_client_eof(&t));
    assert_non_null(strstr(CL(&t), "connection: close\r\n"));
    assert_non_null(strstr(CL(&t), "hello"));
    assert_null(strstr(BE(&t, 0), "Connection: close")); /* hop-by-hop: not forwarded */
    wpt_teardown(&t);
}

static void
test_expect_continue(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t,
             "POST / HTTP/1.1\r\nHost: echo\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_true(wpt_client_has(&t, "HTTP/1.1 100 Continue\r\n\r\n", 1));
    wpt_send(&t, "body");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\nbody"));
    assert_null(strstr(BE(&t, 0), "Expect"));
    wpt_be_send(&t, 0, "HTTP/1.1 100 Continue\r\n\r\n" OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    assert_int_equal(wpt_count(CL(&t), t.crx_len, "100 Continue"), 1);
    wpt_teardown(&t);
}

static void
test_websocket(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, "GET /ws HTTP/1.1\r\nHost: echo\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Key: k\r\n\r\nearly");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 0), "connection: upgrade\r\nupgrade: websocket\r\n"));
    wpt_be_send(&t, 0,
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                "Upgrade: websocket\r\nSec-WebSocket-Accept: a\r\n\r\nserver-first");
    assert_true(wpt_client_has(&t, "server-first", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_true(wpt_be_has(&t, 0, "early"));
    wpt_send(&t, "frame-from-client");
    assert_true(wpt_be_has(&t, 0, "frame-from-client"));
    wpt_be_send(&t, 0, "frame-from-server");
    assert_true(wpt_client_has(&t, "frame-from-server", 1));
    wpt_be_close(&t, 0);
    close(t.cfd);
    t.cfd = -1;
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 101);
    wpt_teardown(&t);
}

static void
test_head_no_body(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    one_get(&t, "HEAD / HTTP/1.1\r\nHost: echo\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
    assert_true(wpt_dones(&t, 1));
    wpt_send(&t, GET("/after"));
    assert_true(wpt_be_has(&t, 0, "GET /after"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    assert_non_null(strstr(CL(&t), "content-length: 100\r\n\r\nHTTP/1.1 200 OK"));
    wpt_teardown(&t);
}

static void
test_204_304(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    one_get(&t, GET("/a"), "HTTP/1.1 204 No Content\r\n\r\n");
    assert_true(wpt_dones(&t, 1));
    wpt_send(&t, GET("/b"));
    assert_true(wpt_be_has(&t, 0, "GET /b"));
    wpt_be_send(&t, 0, "HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n");
    assert_true(wpt_dones(&t, 2));
    assert_true(wpt_client_has(&t, "etag: x\r\n\r\n", 1));
    assert_int_equal(t.done[0].status, 204);
    assert_int_equal(t.done[1].status, 304);
    assert_null(strstr(CL(&t), "chunked"));
    wpt_teardown(&t);
}

static void
test_path_normalised_upstream(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, GET("/a/../b/%2e/c?q=/../"), OK_RESP);
    assert_non_null(strstr(BE(&t, 0), "GET /b/c?q=/../ HTTP/1.1"));
    assert_true(wpt_dones(&t, 1));
    assert_string_equal(t.done[0].path, "/a/../b/%2e/c?q=/../");
    wpt_teardown(&t);
}

static void
test_path_nul_400(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/a%00b"));
    assert_true(wpt_client_has(&t, "HTTP/1.1 400 Bad Request\r\n", 1));
    assert_int_equal(t.n_be, 0);
    /* The connection stays usable. */
    wpt_send(&t, GET("/ok"));
    assert_true(wpt_be_has(&t, 0, "GET /ok"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

/* A client that does not read stops the engine reading from the endpoint: what the endpoint
 * can write is bounded by the socket buffers and the engine's caps, not by the response. */
static void
test_backpressure_slow_client(void **state)
{
    struct wpt t;
    const size_t total = 16u << 20;
    char chunk[65536];
    size_t sent = 0;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/big"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    char head[128];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\ncontent-length: %zu\r\n\r\n", total);
    wpt_be_send(&t, 0, head);
    memset(chunk, 'x', sizeof(chunk));
    /* The endpoint writes until it would block, the client reading nothing. */
    for (int idle = 0; idle < 50 && sent < total;) {
        ssize_t n = send(t.be[0].fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            idle = 0;
        } else {
            unit_run_for(t.loop, 1);
            idle++;
        }
    }
    print_message("slow client: the endpoint could write %zu of %zu bytes\n", sent, total);
    assert_true(sent < total);
    assert_true(sent < 4u << 20);
    /* Now the client reads: everything arrives, in order. */
    size_t got = 0;
    while (sent < total || got < total) {
        if (sent < total) {
            ssize_t n =
                send(t.be[0].fd, chunk, total - sent < sizeof(chunk) ? total - sent : sizeof(chunk),
                     MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        unit_run_for(t.loop, 0);
        ssize_t r = recv(t.cfd, chunk, sizeof(chunk), 0);
        if (r > 0)
            got += (size_t)r;
        if (got > total + 200)
            break;
    }
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].bytes_out, total);
    wpt_teardown(&t);
}

/* An endpoint that does not read stops the engine reading the client's body. */
static void
test_backpressure_slow_endpoint(void **state)
{
    struct wpt t;
    const size_t total = 16u << 20;
    char chunk[65536];
    size_t sent = 0;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 1);
    wpt_unhealthy(&t, 2);
    char head[128];
    snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: echo\r\ncontent-length: %zu\r\n\r\n",
             total);
    wpt_send(&t, head);
    memset(chunk, 'y', sizeof(chunk));
    for (int idle = 0; idle < 50 && sent < total;) {
        ssize_t n = send(t.cfd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            idle = 0;
        } else {
            unit_run_for(t.loop, 1);
            idle++;
        }
    }
    print_message("slow endpoint: the client could send %zu of %zu body bytes\n", sent, total);
    assert_true(sent < 4u << 20);
    /* The endpoint reads: the whole body streams through. */
    size_t got = 0;
    assert_true(t.n_be == 1);
    while (got < total + strlen(head)) {
        if (sent < total) {
            ssize_t n =
                send(t.cfd, chunk, total - sent < sizeof(chunk) ? total - sent : sizeof(chunk),
                     MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        unit_run_for(t.loop, 0);
        ssize_t r = recv(t.be[0].fd, chunk, sizeof(chunk), 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            break;
    }
    assert_true(got >= total);
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].bytes_in, total);
    wpt_teardown(&t);
}

/* A body past the retry cap streams through and is not retried: the endpoint's 503 goes back. */
static void
test_big_body_not_retried(void **state)
{
    struct wpt t;
    const size_t total = 256 * 1024;
    (void)state;
    wpt_setup(&t, NULL);
    char head[128];
    snprintf(head, sizeof(head), "POST /up HTTP/1.1\r\nHost: echo\r\ncontent-length: %zu\r\n\r\n",
             total);
    char *body = malloc(total);
    memset(body, 'z', total);
    wpt_send(&t, head);
    wpt_send_n(&t, body, total);
    /* Read it all at the endpoint, then refuse with a retriable status. */
    size_t got = 0;
    for (int i = 0; i < 3000 && got < total; i++) {
        unit_run_for(t.loop, 1);
        ssize_t r = recv(t.be[0].fd, body, total, 0);
        if (r > 0)
            got += (size_t)r;
    }
    assert_true(got >= total);
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 503);
    assert_int_equal(t.done[0].attempts, 1);
    assert_int_equal(t.n_be, 1);
    free(body);
    wpt_teardown(&t);
}

/* A small body is kept and sent again on the retry. */
static void
test_small_body_replayed(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, "POST /p HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: "
                 "chunked\r\n\r\n4\r\ndata\r\n0\r\n\r\n");
    assert_true(wpt_be_has(&t, 0, "0\r\n\r\n"));
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_be_has(&t, 1, "4\r\ndata\r\n0\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 1), "POST /p HTTP/1.1\r\n"));
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

static void
test_on_closed_once(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, GET("/"), OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    close(t.cfd);
    t.cfd = -1;
    wpt_run(&t, 20);
    assert_int_equal(t.closed, 1);
    assert_true(wpt_be_eof(&t, 0)); /* the idle endpoint connection is closed with it */
    wpt_teardown(&t);
}

/* The endpoint answers early (413) and closes while the client still sends its body: the
 * client gets the answer and the connection ends; nothing spins or hangs. */
static void
test_early_response_then_close(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, "POST / HTTP/1.1\r\nHost: echo\r\nContent-Length: 100000\r\n\r\nstart");
    assert_true(wpt_be_has(&t, 0, "start"));
    wpt_be_send(
        &t, 0,
        "HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbig");
    wpt_be_close(&t, 0);
    wpt_send(&t, "more body bytes");
    assert_true(wpt_client_eof(&t));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_non_null(strstr(CL(&t), "\r\n\r\nbig"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 413);
    wpt_teardown(&t);
}

/* The client goes away while its request waits for the endpoint: the exchange is reported DC,
 * the endpoint stream is reset, the connection ends (before: it waited on the endpoint forever). */
static void
test_client_gone_while_waiting_dc(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, GET("/wait"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    close(t.cfd);
    t.cfd = -1;
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_DC);
    assert_int_equal(t.done[0].status, 0);
    assert_true(wpt_be_eof(&t, 0));
    assert_int_equal(t.closed, 1);
    wpt_teardown(&t);
}

/* The endpoint accepts the upgrade and closes at once while the client's early bytes are still
 * on their way to it: the client gets the 101 and the bytes, then the tunnel ends (before:
 * the early bytes waited forever for an endpoint that had gone). */
static void
test_upgrade_endpoint_closes(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t,
             "GET /ws HTTP/1.1\r\nHost: echo\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
             "early frame");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(
        &t, 0,
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nbye");
    wpt_be_close(&t, 0);
    assert_true(wpt_client_has(&t, "bye", 1));
    close(t.cfd);
    t.cfd = -1;
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 101);
    assert_int_equal(t.closed, 1);
    wpt_teardown(&t);
}

/* An HTTP/1.0 client asking for keep-alive is told so, and its connection stays. */
static void
test_http10_keepalive(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    one_get(&t, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    assert_non_null(strstr(CL(&t), "connection: keep-alive\r\n"));
    wpt_run(&t, 20);
    assert_false(t.ceof);
    wpt_teardown(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_forwarded),
        cmocka_unit_test(test_keepalive_reuses_upstream),
        cmocka_unit_test(test_pipelining_in_order),
        cmocka_unit_test(test_chunked_request),
        cmocka_unit_test(test_chunked_response),
        cmocka_unit_test(test_content_length_body),
        cmocka_unit_test(test_close_delimited_to_chunked),
        cmocka_unit_test(test_http10_close_delimited),
        cmocka_unit_test(test_connection_close),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_head_no_body),
        cmocka_unit_test(test_204_304),
        cmocka_unit_test(test_path_normalised_upstream),
        cmocka_unit_test(test_path_nul_400),
        cmocka_unit_test(test_backpressure_slow_client),
        cmocka_unit_test(test_backpressure_slow_endpoint),
        cmocka_unit_test(test_big_body_not_retried),
        cmocka_unit_test(test_small_body_replayed),
        cmocka_unit_test(test_on_closed_once),
        cmocka_unit_test(test_early_response_then_close),
        cmocka_unit_test(test_client_gone_while_waiting_dc),
        cmocka_unit_test(test_upgrade_endpoint_closes),
        cmocka_unit_test(test_http10_keepalive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
