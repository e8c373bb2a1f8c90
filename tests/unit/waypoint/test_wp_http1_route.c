/*
 * test_wp_http1_route.c - the HTTP/1.1 engine's decisions, seen from both ends: L7 policy,
 * routing (redirect, direct, no route, rewrite, header modifiers, weighted split), endpoint
 * choice, retries, timeouts and the response flags of each failure.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_l7pol.h"
#include "wp_h1_fixture.h"

#define OK_RESP   "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
#define GET(path) "GET " path " HTTP/1.1\r\nHost: echo\r\n\r\n"
#define BE(t, i)  ((t)->be[i].rx != NULL ? (t)->be[i].rx : "")
#define CL(t)     ((t)->crx != NULL ? (t)->crx : "")
#define ECHO      " be=echo.default.svc.cluster.local:80"

static void
only_ep0(struct wpt *t)
{
    wpt_unhealthy(t, 1);
    wpt_unhealthy(t, 2);
}

static void
deny_admin(struct wpt *t)
{
    struct l7spec s = {.ns = "default",
                       .name = "no-admin",
                       .action = 1,
                       .gateway = "waypoint",
                       .paths = {"/admin*"}};
    struct l7pol *p = l7spec_decode(&s);
    wpt_set_policies(t, l7pol_set_build(&p, 1));
    l7pol_unref(p);
}

static void
test_policy_deny_403(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    deny_admin(&t);
    wpt_send(&t, GET("/admin/x"));
    assert_true(wpt_client_has(&t, "RBAC: access denied", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 403 Forbidden\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 403);
    assert_int_equal(t.done[0].flags, WP_FLAG_RBAC);
    assert_string_equal(t.done[0].policy, "default/no-admin");
    assert_int_equal(t.n_be, 0); /* no endpoint was contacted */
    wpt_teardown(&t);
}

static void
test_policy_deny_after_normalisation(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    deny_admin(&t);
    /* "/x/../%61dmin" is "/admin" once normalised: the DENY must hold. */
    wpt_send(&t, GET("/x/../%61dmin"));
    assert_true(wpt_client_has(&t, "403 Forbidden", 1));
    assert_int_equal(t.n_be, 0);
    wpt_teardown(&t);
}

static void
test_policy_allows_other_paths(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    deny_admin(&t);
    wpt_send(&t, GET("/public"));
    assert_true(wpt_be_has(&t, 0, "GET /public "));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

static void
test_redirect_301(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/old redir.prefix=/new redir.status=301");
    wpt_send(&t, GET("/old/page"));
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 301 Moved Permanently\r\n"));
    assert_non_null(strstr(CL(&t), "location: http://echo/new/page\r\n"));
    assert_int_equal(t.n_be, 0);
    wpt_teardown(&t);
}

static void
test_redirect_302_host(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ redir.host=other.example");
    wpt_send(&t, GET("/p"));
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 302 Found\r\n"));
    assert_non_null(strstr(CL(&t), "location: http://other.example/p\r\n"));
    wpt_teardown(&t);
}

static void
test_direct_response(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/down direct=503 name=maint");
    wpt_send(&t, GET("/down"));
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_string_equal(t.done[0].route, "maint");
    assert_int_equal(t.done[0].flags, 0);
    assert_int_equal(t.n_be, 0);
    wpt_teardown(&t);
}

static void
test_no_route_404_nr(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "exact=/only");
    wpt_send(&t, GET("/other"));
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 404 Not Found\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_NR);
    assert_string_equal(t.done[0].details, "route_not_found");
    wpt_teardown(&t);
}

static void
test_rewrite_path_and_host(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/api rw.prefix=/v2 rw.host=internal.example name=api" ECHO);
    only_ep0(&t);
    wpt_send(&t, GET("/api/users?id=1"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 0), "GET /v2/users?id=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(BE(&t, 0), "host: internal.example\r\n"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_string_equal(t.done[0].route, "api");
    assert_string_equal(t.done[0].path, "/api/users?id=1");
    wpt_teardown(&t);
}

static void
test_request_header_ops(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ set=x-set:new add=x-add:two rm=x-secret" ECHO);
    only_ep0(&t);
    wpt_send(&t, "GET / HTTP/1.1\r\nHost: echo\r\nX-Set: old\r\nX-Add: one\r\nX-Secret: s\r\n\r\n");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 0), "x-set: new\r\n"));
    assert_null(strstr(BE(&t, 0), "old"));
    assert_non_null(strstr(BE(&t, 0), "X-Add: one\r\n"));
    assert_non_null(strstr(BE(&t, 0), "x-add: two\r\n"));
    assert_null(strstr(BE(&t, 0), "X-Secret"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

static void
test_response_header_ops(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ rset=server:waypoint radd=x-r:added rrm=x-internal" ECHO);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0,
                "HTTP/1.1 200 OK\r\nServer: app\r\nX-Internal: 1\r\ncontent-length: 2\r\n\r\nok");
    assert_true(wpt_client_has(&t, "\r\n\r\nok", 1));
    assert_non_null(strstr(CL(&t), "server: waypoint\r\n"));
    assert_null(strstr(CL(&t), "Server: app"));
    assert_non_null(strstr(CL(&t), "x-r: added\r\n"));
    assert_null(strstr(CL(&t), "X-Internal"));
    wpt_teardown(&t);
}

static void
test_request_id_kept(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, "GET / HTTP/1.1\r\nHost: echo\r\nx-request-id: abc-123\r\n\r\n");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_int_equal(wpt_count(BE(&t, 0), t.be[0].rx_len, "x-request-id"), 1);
    assert_non_null(strstr(BE(&t, 0), "x-request-id: abc-123\r\n"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_string_equal(t.done[0].request_id, "abc-123");
    wpt_teardown(&t);
}

static void
test_request_id_generated(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    const char *id = strstr(BE(&t, 0), "x-request-id: ");
    assert_non_null(id);
    id += 14;
    assert_int_equal(strcspn(id, "\r"), 36);
    assert_int_equal(id[14], '4'); /* a version 4 UUID */
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_memory_equal(t.done[0].request_id, id, 36);
    wpt_teardown(&t);
}

static void
test_retry_503_other_endpoint(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 2);
    wpt_send(&t, GET("/r"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    int first = t.be[0].ep;
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_be_has(&t, 1, "GET /r "));
    assert_int_not_equal(t.be[1].ep, first); /* previous_hosts: another endpoint */
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    assert_null(strstr(CL(&t), "503"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].attempts, 2);
    assert_int_equal(t.done[0].flags, 0);
    wpt_teardown(&t);
}

static void
test_retry_connect_failure(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_unhealthy(&t, 2);
    t.refuse[0] = -ECONNREFUSED;
    wpt_send(&t, "POST /p HTTP/1.1\r\nHost: echo\r\nContent-Length: 3\r\n\r\nabc");
    assert_true(wpt_be_has(&t, 0, "\r\n\r\nabc"));
    assert_int_equal(t.be[0].ep, 1);
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].ep, 1);
    wpt_teardown(&t);
}

static void
test_all_refuse_503_uf_urx(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    for (int i = 0; i < 3; i++)
        t.refuse[i] = -ECONNREFUSED;
    wpt_send(&t, GET("/"));
    assert_true(wpt_client_has(&t, "remote connection failure", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UF | WP_FLAG_URX);
    assert_int_equal(t.done[0].attempts, 3);
    assert_int_equal(t.connects[0] + t.connects[1] + t.connects[2], 3);
    assert_true(t.connects[0] == 1 && t.connects[1] == 1 && t.connects[2] == 1);
    wpt_teardown(&t);
}

static void
test_connect_fails_at_once_uf(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ retry=0" ECHO);
    only_ep0(&t);
    t.refuse_now[0] = -EHOSTUNREACH;
    wpt_send(&t, GET("/"));
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "503"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UF);
    wpt_teardown(&t);
}

static void
test_retries_exhausted_forward_last_urx(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    wpt_send(&t, GET("/"));
    for (int i = 0; i < 3; i++) {
        assert_true(wpt_be_has(&t, i, "\r\n\r\n"));
        wpt_be_send(&t, i, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy");
    }
    assert_true(wpt_client_has(&t, "busy", 1));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 503);
    assert_int_equal(t.done[0].attempts, 3);
    assert_int_equal(t.done[0].flags, WP_FLAG_URX);
    assert_int_equal(t.n_be, 3);
    wpt_teardown(&t);
}

static void
test_retry_codes_from_route(void **state)
{
    struct wpt t;
    (void)state;
    /* retry=1 on 502 only: a 503 is forwarded at once, a 502 is retried. */
    wpt_setup(&t, "prefix=/ retry=1:502" ECHO);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].attempts, 1);
    assert_int_equal(t.done[0].status, 503);
    wpt_send(&t, GET("/again"));
    assert_true(wpt_be_has(&t, 0, "GET /again")); /* the kept-alive connection */
    wpt_be_send(&t, 0, "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
    assert_true(wpt_be_has(&t, 1, "GET /again")); /* the only endpoint again, a new connection */
    wpt_be_send(&t, 1, OK_RESP);
    assert_true(wpt_dones(&t, 2));
    assert_int_equal(t.done[1].attempts, 2);
    assert_int_equal(t.done[1].status, 200);
    assert_null(strstr(CL(&t), "502"));
    wpt_teardown(&t);
}

static void
test_no_healthy_upstream_uh(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    for (int i = 0; i < 3; i++)
        wpt_unhealthy(&t, i);
    wpt_send(&t, GET("/"));
    assert_true(wpt_client_has(&t, "no healthy upstream", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UH);
    assert_int_equal(t.connects[0] + t.connects[1] + t.connects[2], 0);
    wpt_teardown(&t);
}

static void
test_timeout_504_ut(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, "prefix=/ timeout=100" ECHO);
    only_ep0(&t);
    wpt_send(&t, GET("/slow"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_true(wpt_client_has(&t, "upstream request timeout", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 504 Gateway Timeout\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UT);
    assert_true(wpt_be_eof(&t, 0)); /* the upstream connection was reset */
    wpt_teardown(&t);
}

static void
test_upstream_closes_before_response_uc(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_close(&t, 0);
    assert_true(wpt_client_has(&t, "connection termination", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UC);
    wpt_teardown(&t);
}

static void
test_upstream_closes_mid_body_uc(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial");
    assert_true(wpt_client_has(&t, "partial", 1));
    wpt_be_close(&t, 0);
    assert_true(wpt_client_eof(&t)); /* the client sees the cut: 7 of 100 bytes, then EOF */
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].status, 200);
    assert_int_equal(t.done[0].flags, WP_FLAG_UC);
    wpt_teardown(&t);
}

static void
test_bad_upstream_502_upe(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, GET("/"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    wpt_be_send(&t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_true(wpt_client_has(&t, "\r\n\r\n", 1));
    assert_non_null(strstr(CL(&t), "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_UPE);
    assert_true(wpt_be_eof(&t, 0));
    wpt_teardown(&t);
}

static void
test_downstream_closes_mid_request_dc(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    wpt_send(&t, "POST / HTTP/1.1\r\nHost: echo\r\nContent-Length: 100\r\n\r\nsome");
    assert_true(wpt_be_has(&t, 0, "some"));
    close(t.cfd);
    t.cfd = -1;
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].flags, WP_FLAG_DC);
    assert_int_equal(t.done[0].status, 0);
    assert_true(wpt_be_eof(&t, 0)); /* the upstream is not left half-fed */
    wpt_teardown(&t);
}

/* A malformed request gets |status| and the connection closes; no endpoint is contacted. */
static void
smuggle(const char *req, const char *status_line)
{
    struct wpt t;
    wpt_setup(&t, NULL);
    wpt_send(&t, req);
    assert_true(wpt_client_eof(&t));
    if (strstr(CL(&t), status_line) == NULL)
        fail_msg("sent %s, got \"%s\"", req, CL(&t));
    assert_non_null(strstr(CL(&t), "connection: close\r\n"));
    assert_int_equal(t.connects[0] + t.connects[1] + t.connects[2], 0);
    wpt_teardown(&t);
}

static void
test_smuggle_cl_te(void **state)
{
    (void)state;
    smuggle("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n");
}

static void
test_smuggle_two_cl(void **state)
{
    (void)state;
    smuggle("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
            "HTTP/1.1 400 Bad Request\r\n");
}

static void
test_smuggle_bare_lf(void **state)
{
    (void)state;
    smuggle("GET / HTTP/1.1\nHost: a\n\n", "HTTP/1.1 400 Bad Request\r\n");
}

static void
test_smuggle_obs_fold(void **state)
{
    (void)state;
    smuggle("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n");
}

static void
test_smuggle_space_before_colon(void **state)
{
    (void)state;
    smuggle("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n");
}

static void
test_te_gzip_501(void **state)
{
    (void)state;
    smuggle("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 501 Not Implemented\r\n");
}

static void
test_version_505(void **state)
{
    (void)state;
    smuggle("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n");
}

static void
test_head_too_large_431(void **state)
{
    (void)state;
    size_t n = 70 * 1024;
    char *req = malloc(n + 64);
    int k = snprintf(req, n, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(req + k, 'a', n - (size_t)k);
    memcpy(req + n, "\r\n\r\n", 5);
    smuggle(req, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    free(req);
}

static void
test_connect_method_405(void **state)
{
    (void)state;
    smuggle("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n");
}

/* A 90/10 split over 1000 requests lands within 3 sigma of 100 on the small side. */
static void
test_weighted_split(void **state)
{
    struct wpt t;
    const int n = 1000;
    int small = 0;
    (void)state;
    wpt_setup(&t, "prefix=/ be="
                  "echo.default.svc.cluster.local:80:90 "
                  "be=echo2.default.svc.cluster.local:80:10");
    for (int i = 0; i < n; i++) {
        wpt_send(&t, GET("/s"));
        /* Answer whichever connection got the request. */
        for (;;) {
            int got = -1;
            for (int b = 0; b < t.n_be && got < 0; b++)
                if (wpt_count(BE(&t, b), t.be[b].rx_len, "GET /s ") > 0 && t.be[b].fd >= 0)
                    got = b;
            if (got >= 0) {
                wpt_be_send(&t, got, OK_RESP);
                t.be[got].rx_len = 0;
                if (t.be[got].rx)
                    t.be[got].rx[0] = '\0';
                if (t.be[got].ep == 3)
                    small++;
                break;
            }
            wpt_run(&t, 1);
        }
        assert_true(wpt_dones(&t, i + 1));
    }
    double sigma = sqrt(n * 0.1 * 0.9);
    print_message("90/10 split: echo2 got %d of %d (100 +- %.1f)\n", small, n, 3 * sigma);
    if (fabs(small - 100.0) > 3 * sigma)
        fail_msg("echo2 got %d of %d (expected 100 +- %.1f)", small, n, 3 * sigma);
    /* Kept-alive: at most one connection per endpoint. */
    assert_true(t.n_be <= 4);
    wpt_teardown(&t);
}

/* Least outstanding requests: while endpoint X holds a request, another one gets the next. */
static void
test_least_outstanding(void **state)
{
    struct wpt a, b;
    (void)state;
    wpt_setup(&a, NULL);
    wpt_unhealthy(&a, 2);
    wpt_send(&a, GET("/hold"));
    assert_true(wpt_be_has(&a, 0, "\r\n\r\n"));
    int held = a.be[0].ep;
    /* A second connection (same thread, same counts) picks the idle endpoint, 20 times of 20. */
    for (int i = 0; i < 20; i++) {
        wpt_setup(&b, NULL);
        wpt_unhealthy(&b, 2);
        wpt_send(&b, GET("/next"));
        assert_true(wpt_be_has(&b, 0, "\r\n\r\n"));
        assert_int_not_equal(b.be[0].ep, held);
        wpt_be_send(&b, 0, OK_RESP);
        assert_true(wpt_dones(&b, 1));
        wpt_teardown(&b);
    }
    wpt_be_send(&a, 0, OK_RESP);
    assert_true(wpt_dones(&a, 1));
    wpt_teardown(&a);
}

static void
test_policy_on_header(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup(&t, NULL);
    only_ep0(&t);
    struct l7spec sp = {.ns = "default",
                        .name = "no-debug",
                        .action = 1,
                        .gateway = "waypoint",
                        .header = "x-debug",
                        .values = {"*"}};
    struct l7pol *p = l7spec_decode(&sp);
    wpt_set_policies(&t, l7pol_set_build(&p, 1));
    l7pol_unref(p);
    wpt_send(&t, GET("/plain"));
    assert_true(wpt_be_has(&t, 0, "GET /plain "));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_send(&t, "GET /dbg HTTP/1.1\r\nHost: echo\r\nX-Debug: 1\r\n\r\n");
    assert_true(wpt_client_has(&t, "RBAC: access denied", 1));
    assert_null(strstr(BE(&t, 0), "/dbg"));
    wpt_teardown(&t);
}

/* A pod-addressed request goes to that workload on the port asked for, routes aside. */
static void
test_bound_workload(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup_ex(&t, NULL, 2, L7PATH_BASE);
    wpt_send(&t, GET("/pod"));
    assert_true(wpt_be_has(&t, 0, "GET /pod "));
    assert_int_equal(t.be[0].ep, 2);
    assert_int_equal(t.be[0].port, 8080);
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_dones(&t, 1));
    assert_int_equal(t.done[0].ep, 2);
    assert_string_equal(t.done[0].route, "(null)");
    wpt_teardown(&t);
}

static void
test_merge_slashes_mode(void **state)
{
    struct wpt t;
    (void)state;
    wpt_setup_ex(&t, NULL, -1, L7PATH_MERGE_SLASHES);
    only_ep0(&t);
    wpt_send(&t, GET("//a///b/../c"));
    assert_true(wpt_be_has(&t, 0, "\r\n\r\n"));
    assert_non_null(strstr(BE(&t, 0), "GET /a/c HTTP/1.1\r\n"));
    wpt_be_send(&t, 0, OK_RESP);
    assert_true(wpt_client_has(&t, "hello", 1));
    wpt_teardown(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_deny_403),
        cmocka_unit_test(test_policy_deny_after_normalisation),
        cmocka_unit_test(test_policy_allows_other_paths),
        cmocka_unit_test(test_redirect_301),
        cmocka_unit_test(test_redirect_302_host),
        cmocka_unit_test(test_direct_response),
        cmocka_unit_test(test_no_route_404_nr),
        cmocka_unit_test(test_rewrite_path_and_host),
        cmocka_unit_test(test_request_header_ops),
        cmocka_unit_test(test_response_header_ops),
        cmocka_unit_test(test_request_id_kept),
        cmocka_unit_test(test_request_id_generated),
        cmocka_unit_test(test_retry_503_other_endpoint),
        cmocka_unit_test(test_retry_connect_failure),
        cmocka_unit_test(test_all_refuse_503_uf_urx),
        cmocka_unit_test(test_connect_fails_at_once_uf),
        cmocka_unit_test(test_retries_exhausted_forward_last_urx),
        cmocka_unit_test(test_retry_codes_from_route),
        cmocka_unit_test(test_no_healthy_upstream_uh),
        cmocka_unit_test(test_timeout_504_ut),
        cmocka_unit_test(test_upstream_closes_before_response_uc),
        cmocka_unit_test(test_upstream_closes_mid_body_uc),
        cmocka_unit_test(test_bad_upstream_502_upe),
        cmocka_unit_test(test_downstream_closes_mid_request_dc),
        cmocka_unit_test(test_smuggle_cl_te),
        cmocka_unit_test(test_smuggle_two_cl),
        cmocka_unit_test(test_smuggle_bare_lf),
        cmocka_unit_test(test_smuggle_obs_fold),
        cmocka_unit_test(test_smuggle_space_before_colon),
        cmocka_unit_test(test_te_gzip_501),
        cmocka_unit_test(test_version_505),
        cmocka_unit_test(test_head_too_large_431),
        cmocka_unit_test(test_connect_method_405),
        cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_least_outstanding),
        cmocka_unit_test(test_policy_on_header),
        cmocka_unit_test(test_bound_workload),
        cmocka_unit_test(test_merge_slashes_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
