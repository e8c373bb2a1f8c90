/*
 * test_wp_http2_route.c - the HTTP/2 engine's per-request decisions (l7_decide.c, shared with
 * the HTTP/1.1 engine) as an HTTP/2 client and HTTP/2 endpoints see them: routing, weights,
 * rewrites, header modifiers both ways, L7 policy (403, and grpc-status 7 for gRPC), local
 * answers (404 / grpc-status 12, redirects, direct responses), pod-addressed requests; and
 * the upstream side: retries (503, gRPC UNAVAILABLE, connect failures, the replay cap),
 * timeouts (504 / grpc-status 14, mid-response resets), resets both ways.
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
#include "unit_l7pol.h"
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

static void
deny_admin(struct w2 *w)
{
    struct l7spec s = {.ns = "default",
                       .name = "no-admin",
                       .action = 1,
                       .gateway = "waypoint",
                       .paths = {"/admin*"}};
    struct l7pol *p = l7spec_decode(&s);
    wpt_set_policies(&w->t, l7pol_set_build(&p, 1));
    l7pol_unref(p);
}

/* ---- the shared decision ------------------------------------------------- */

static void
test_route_by_prefix(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/v2" ECHO2 " name=v2\nprefix=/" ECHO);
    w.mode = W2_ECHO;
    only_ep0(&w);
    int a = w2_call(&w, "GET", "/v2/x", NULL, NULL, 0, true);
    int b = w2_call(&w, "GET", "/v1/x", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, a));
    assert_true(w2_complete(&w, b));
    assert_string_equal(H(w.calls[a]->hdrs, "x-ep"), "ep3");
    assert_string_equal(H(w.calls[b]->hdrs, "x-ep"), "ep0");
    assert_true(dones(&w, 2));
    w2_teardown(&w);
}

static void
test_weighted_split(void **state)
{
    struct w2 w;
    const int n = 400;
    int small = 0;
    (void)state;
    w2_setup(&w, "prefix=/ be=echo.default.svc.cluster.local:80:75 "
                 "be=echo2.default.svc.cluster.local:80:25");
    w.mode = W2_ECHO;
    for (int i = 0; i < n; i++) {
        int c = w2_call(&w, "GET", "/s", NULL, NULL, 0, true);
        assert_true(w2_complete(&w, c));
        if (strcmp(H(w.calls[c]->hdrs, "x-ep"), "ep3") == 0)
            small++;
    }
    print_message("75/25 split: echo2 got %d of %d\n", small, n);
    assert_true(small > 60 && small < 140); /* 100 +- 4.6 sigma */
    /* Sessions are shared: one per endpoint. */
    assert_true(w.t.n_be <= 4);
    w2_teardown(&w);
}

static void
test_rewrite_and_request_header_ops(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/api rw.prefix=/v2 rw.host=internal.example set=x-set:new add=x-add:two "
                 "rm=x-secret name=api" ECHO);
    w.mode = W2_ECHO;
    const char *h[] = {"x-set", "old", "x-secret", "s", NULL};
    int c = w2_call(&w, "GET", "/api/users?id=1", h, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    struct w2_req *r = w.reqs[0];
    assert_string_equal(r->path, "/v2/users?id=1");
    assert_string_equal(r->authority, "internal.example");
    assert_string_equal(H(r->hdrs, "x-set"), "new");
    assert_string_equal(H(r->hdrs, "x-add"), "two");
    assert_null(H(r->hdrs, "x-secret"));
    assert_true(dones(&w, 1));
    assert_string_equal(w.t.done[0].route, "api");
    assert_string_equal(w.t.done[0].path, "/api/users?id=1");
    w2_teardown(&w);
}

static void
test_response_header_ops(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ rset=server:waypoint radd=x-r:added rrm=x-internal" ECHO);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    const char *rh[] = {"server", "app", "x-internal", "secret", NULL};
    w2_respond(&w, 0, 200, rh, "ok", 2, NULL);
    assert_true(w2_complete(&w, c));
    assert_string_equal(H(w.calls[c]->hdrs, "server"), "waypoint");
    assert_string_equal(H(w.calls[c]->hdrs, "x-r"), "added");
    assert_null(H(w.calls[c]->hdrs, "x-internal"));
    w2_teardown(&w);
}

static void
test_policy_deny_403(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    deny_admin(&w);
    int c = w2_call(&w, "GET", "/x/../%61dmin/panel", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 403);
    assert_string_equal((char *)w.calls[c]->rx.p, "RBAC: access denied");
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].flags, WP_FLAG_RBAC);
    assert_string_equal(w.t.done[0].policy, "default/no-admin");
    assert_int_equal(w.t.n_be, 0);
    w2_teardown(&w);
}

static void
test_policy_deny_grpc_status_7(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    deny_admin(&w);
    int c = w2_call(&w, "POST", "/admin.Svc/Drop", grpc_hdrs, "\0\0\0\0\0", 5, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_string_equal(H(w.calls[c]->hdrs, "grpc-status"), "7");
    assert_string_equal(H(w.calls[c]->hdrs, "grpc-message"), "RBAC: access denied");
    assert_string_equal(H(w.calls[c]->hdrs, "content-type"), "application/grpc");
    assert_int_equal(w.calls[c]->rx.len, 0);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].flags, WP_FLAG_RBAC);
    w2_teardown(&w);
}

/* The report says what the client got: request_protocol "grpc", the grpc-status from the
 * trailers, a trailers-only answer or the waypoint's own (a 200 on the wire, as Envoy logs). */
static void
test_grpc_report(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    deny_admin(&w);
    const char *ct[] = {"content-type", "application/grpc", NULL};
    const char *ok[] = {"grpc-status", "0", NULL};
    int a = w2_call(&w, "POST", "/pkg.Svc/M", grpc_hdrs, "\0\0\0\0\0", 5, true);
    assert_true(w2_reqs(&w, 1));
    w2_respond(&w, 0, 200, ct, "\0\0\0\0\0", 5, ok);
    assert_true(w2_complete(&w, a));
    assert_true(dones(&w, 1));
    int b = w2_call(&w, "POST", "/admin.Svc/Drop", grpc_hdrs, NULL, 0, true);
    assert_true(w2_complete(&w, b));
    assert_true(dones(&w, 2));
    int c = w2_call(&w, "POST", "/pkg.Svc/Missing", grpc_hdrs, NULL, 0, true);
    assert_true(w2_reqs(&w, 2));
    const char *nf[] = {"content-type", "application/grpc", "grpc-status", "5", NULL};
    w2_respond(&w, 1, 200, nf, NULL, 0, NULL);
    assert_true(w2_complete(&w, c));
    assert_true(dones(&w, 3));
    int d = w2_call(&w, "GET", "/admin/x", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, d));
    assert_true(dones(&w, 4));

    assert_true(w.t.done[0].grpc);
    assert_int_equal(w.t.done[0].status, 200);
    assert_string_equal(w.t.done[0].grpc_status, "0");
    assert_int_equal(w.t.done[1].status, 200); /* not 403: the wire's status */
    assert_string_equal(w.t.done[1].grpc_status, "7");
    assert_int_equal(w.t.done[1].flags, WP_FLAG_RBAC);
    assert_string_equal(w.t.done[2].grpc_status, "5");
    assert_false(w.t.done[3].grpc);
    assert_int_equal(w.t.done[3].status, 403);
    assert_string_equal(w.t.done[3].grpc_status, "");
    w2_teardown(&w);
}

static void
test_no_route_404_and_grpc_12(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "exact=/only" ECHO);
    int a = w2_call(&w, "GET", "/other", NULL, NULL, 0, true);
    int b = w2_call(&w, "POST", "/other.Svc/M", grpc_hdrs, NULL, 0, true);
    assert_true(w2_complete(&w, a));
    assert_true(w2_complete(&w, b));
    assert_int_equal(w.calls[a]->status, 404);
    assert_int_equal(w.calls[b]->status, 200);
    assert_string_equal(H(w.calls[b]->hdrs, "grpc-status"), "12");
    assert_true(dones(&w, 2));
    assert_int_equal(w.t.done[0].flags, WP_FLAG_NR);
    w2_teardown(&w);
}

static void
test_redirect(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/old redir.prefix=/new redir.status=301");
    int c = w2_call(&w, "GET", "/old/page", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 301);
    assert_non_null(strstr(H(w.calls[c]->hdrs, "location"), "/new/page"));
    w2_teardown(&w);
}

static void
test_direct_response(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/down direct=503 name=maint");
    int c = w2_call(&w, "GET", "/down", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 503);
    assert_true(dones(&w, 1));
    assert_string_equal(w.t.done[0].details, "direct_response");
    w2_teardown(&w);
}

static void
test_long_path_refused(void **state)
{
    struct w2 w;
    char path[6000];
    (void)state;
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", path, NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 431);
    assert_int_equal(w.t.n_be, 0);
    w2_teardown(&w);
}

static void
test_pod_addressed(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup_ex(&w, NULL, 2);
    w.mode = W2_ECHO;
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_string_equal(H(w.calls[c]->hdrs, "x-ep"), "ep2");
    w2_teardown(&w);
}

/* ---- retries, failures, timeouts ----------------------------------------- */

static void
test_retry_503_other_endpoint(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/r", NULL, "replay-me", 9, true);
    assert_true(w2_req_eof(&w, 0));
    w2_respond(&w, 0, 503, NULL, "busy", 4, NULL);
    assert_true(w2_req_eof(&w, 1));
    assert_int_equal(w.reqs[1]->rx.len, 9);
    assert_memory_equal(w.reqs[1]->rx.p, "replay-me", 9);
    assert_true(w.t.be[w.reqs[1]->be].ep != w.t.be[w.reqs[0]->be].ep);
    w2_respond(&w, 1, 200, NULL, "ok", 2, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].attempts, 2);
    assert_int_equal(w.t.done[0].flags, 0);
    w2_teardown(&w);
}

static void
test_retries_exhausted_urx(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    for (int i = 0; i < 3; i++) {
        assert_true(w2_reqs(&w, i + 1));
        w2_respond(&w, i, 503, NULL, "busy", 4, NULL);
    }
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 503);
    assert_string_equal((char *)w.calls[c]->rx.p, "busy");
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].attempts, 3);
    assert_int_equal(w.t.done[0].flags, WP_FLAG_URX);
    w2_teardown(&w);
}

static void
test_no_retry_past_replay_buffer(void **state)
{
    struct w2 w;
    const size_t n = 200 * 1024;
    uint8_t *body = unit_pattern(n, 1);
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/big", NULL, body, n, true);
    assert_true(w2_req_eof(&w, 0));
    assert_int_equal(w.reqs[0]->rx.len, n);
    assert_memory_equal(w.reqs[0]->rx.p, body, n);
    w2_respond(&w, 0, 503, NULL, "busy", 4, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 503);
    assert_int_equal(w.n_reqs, 1);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].attempts, 1);
    free(body);
    w2_teardown(&w);
}

static void
test_grpc_unavailable_retried(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/pkg.Svc/M", grpc_hdrs, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    const char *rh[] = {"content-type", "application/grpc", "grpc-status", "14", NULL};
    w2_respond(&w, 0, 200, rh, NULL, 0, NULL);
    assert_true(w2_reqs(&w, 2));
    const char *ok[] = {"content-type", "application/grpc", "grpc-status", "0", NULL};
    w2_respond(&w, 1, 200, ok, NULL, 0, NULL);
    assert_true(w2_complete(&w, c));
    assert_string_equal(H(w.calls[c]->hdrs, "grpc-status"), "0");
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].attempts, 2);
    w2_teardown(&w);
}

static void
test_connect_failure_retried(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    w.mode = W2_ECHO;
    wpt_unhealthy(&w.t, 2);
    w.t.refuse[0] = -ECONNREFUSED;
    w.t.refuse[1] = -ECONNREFUSED;
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 503);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_UF);
    assert_true(w.t.done[0].flags & WP_FLAG_URX);
    assert_int_equal(w.t.done[0].attempts, 3);
    /* A later request finds the endpoint back. */
    w.t.refuse[1] = 0;
    c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    w2_teardown(&w);
}

static void
test_no_healthy_upstream(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    for (int i = 0; i < 3; i++)
        wpt_unhealthy(&w.t, i);
    int c = w2_call(&w, "POST", "/pkg.Svc/M", grpc_hdrs, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_string_equal(H(w.calls[c]->hdrs, "grpc-status"), "14");
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].flags, WP_FLAG_UH);
    w2_teardown(&w);
}

static void
test_timeout_504(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ timeout=100" ECHO);
    int a = w2_call(&w, "GET", "/slow", NULL, NULL, 0, true);
    int b = w2_call(&w, "POST", "/pkg.Svc/Slow", grpc_hdrs, NULL, 0, true);
    assert_true(w2_complete(&w, a));
    assert_true(w2_complete(&w, b));
    assert_int_equal(w.calls[a]->status, 504);
    assert_string_equal((char *)w.calls[a]->rx.p, "upstream request timeout");
    assert_string_equal(H(w.calls[b]->hdrs, "grpc-status"), "14");
    assert_true(dones(&w, 2));
    assert_true(w.t.done[0].flags & WP_FLAG_UT);
    assert_true(w.t.done[1].flags & WP_FLAG_UT);
    /* The endpoint's streams were cancelled. */
    w2_run(&w, 50);
    assert_true(h2_stream_error(w.reqs[0]->st) != 0);
    w2_teardown(&w);
}

/* backendRequest is per try (Envoy's per_try_timeout): it starts again with each try ... */
static void
test_per_try_timeout_restarts(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ btimeout=800" ECHO);
    wpt_unhealthy(&w.t, 2);
    int c = w2_call(&w, "GET", "/t", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    w2_run(&w, 500);
    w2_respond(&w, 0, 503, NULL, NULL, 0, NULL);
    assert_true(w2_reqs(&w, 2));
    w2_run(&w, 500); /* 1000 ms since the request, ~500 into this try */
    w2_respond(&w, 1, 200, NULL, "ok", 2, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].attempts, 2);
    w2_teardown(&w);
}

/* ... it starts only once the try has the whole request (a slow upload is not timed) ... */
static void
test_per_try_timeout_after_request_end(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ btimeout=300" ECHO);
    int c = w2_call(&w, "POST", "/up", NULL, "part", 4, false);
    assert_true(w2_reqs(&w, 1));
    w2_run(&w, 500);
    assert_int_equal(w.calls[c]->status, 0);
    w2_call_more(&w, c, "rest", 4, true);
    assert_true(w2_req_eof(&w, 0));
    w2_run(&w, 100);
    w2_respond(&w, 0, 200, NULL, "ok", 2, NULL);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    w2_teardown(&w);
}

/* ... and a try that takes longer: 504 UT (grpc-status 14), not retried; ignored once the
 * response has begun. */
static void
test_per_try_timeout_504(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ btimeout=150" ECHO);
    int a = w2_call(&w, "GET", "/slow", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, a));
    assert_int_equal(w.calls[a]->status, 504);
    assert_true(dones(&w, 1));
    assert_int_equal(w.t.done[0].flags, WP_FLAG_UT);
    assert_int_equal(w.t.done[0].attempts, 1);
    int b = w2_call(&w, "POST", "/pkg.Svc/Slow", grpc_hdrs, NULL, 0, true);
    assert_true(w2_complete(&w, b));
    assert_string_equal(H(w.calls[b]->hdrs, "grpc-status"), "14");
    int c = w2_call(&w, "GET", "/stream", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 3));
    w2_resp_head(&w, 2, 200, NULL);
    w2_run(&w, 400);
    w2_resp_more(&w, 2, "late", 4, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_int_equal(w.calls[c]->rx.err, 0);
    assert_true(dones(&w, 3));
    assert_int_equal(w.t.done[2].flags, 0);
    w2_teardown(&w);
}

static void
test_timeout_mid_response_resets(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ timeout=100" ECHO);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    w2_resp_head(&w, 0, 200, NULL);
    w2_resp_more(&w, 0, "part", 4, false);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    assert_true(w.calls[c]->rx.err != 0);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_UT);
    w2_teardown(&w);
}

/* The client's request trailers go to the endpoint (they were dropped), at most
 * WP_H2_TRAILERS of them. */
static void
test_request_trailers_forwarded(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/pkg.Svc/Up", grpc_hdrs, "abc", 3, false);
    assert_true(w2_reqs(&w, 1));
    static const char *const tr[] = {"x-t", "1", "x-sum", "abcde", NULL};
    w2_call_trailers(&w, c, "de", 2, tr);
    assert_true(w2_req_eof(&w, 0));
    assert_int_equal(w.reqs[0]->rx.len, 5);
    assert_memory_equal(w.reqs[0]->rx.p, "abcde", 5);
    assert_string_equal(H(w.reqs[0]->trailers, "x-t"), "1");
    assert_string_equal(H(w.reqs[0]->trailers, "x-sum"), "abcde");
    const char *ok[] = {"grpc-status", "0", NULL};
    w2_respond(&w, 0, 200, NULL, NULL, 0, ok);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);

    /* More than the cap: the first WP_H2_TRAILERS go, the request still completes. */
    static const char *many[2 * 40 + 1];
    static char names[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%d", i);
        many[2 * i] = names[i];
        many[2 * i + 1] = "v";
    }
    c = w2_call(&w, "POST", "/pkg.Svc/Up", grpc_hdrs, NULL, 0, false);
    assert_true(w2_reqs(&w, 2));
    w2_call_trailers(&w, c, "x", 1, many);
    assert_true(w2_req_eof(&w, 1));
    assert_non_null(H(w.reqs[1]->trailers, "x-0"));
    assert_null(H(w.reqs[1]->trailers, "x-16"));
    w2_respond(&w, 1, 200, NULL, NULL, 0, ok);
    assert_true(w2_complete(&w, c));
    w2_teardown(&w);
}

static void
test_client_reset_cancels_upstream(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", "/wait", NULL, NULL, 0, true);
    assert_true(w2_req_eof(&w, 0));
    w2_reset_call(&w, c);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_DC);
    w2_run(&w, 50);
    assert_true(h2_stream_error(w.reqs[0]->st) != 0);
    /* The connection and the endpoint session stay usable. */
    w.mode = W2_ECHO;
    c = w2_call(&w, "GET", "/after", NULL, NULL, 0, true);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 200);
    w2_teardown(&w);
}

static void
test_client_reset_mid_request_body(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "POST", "/upload", NULL, "first", 5, false);
    assert_true(w2_reqs(&w, 1));
    w2_run(&w, 20);
    w2_reset_call(&w, c);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_DC);
    w2_run(&w, 50);
    assert_true(h2_stream_error(w.reqs[0]->st) != 0);
    w2_teardown(&w);
}

static void
test_upstream_reset_before_head_503(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, "prefix=/ retry=0" ECHO);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    w2_reset_req(&w, 0);
    assert_true(w2_complete(&w, c));
    assert_int_equal(w.calls[c]->status, 503);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_UC);
    w2_teardown(&w);
}

static void
test_upstream_reset_mid_body_resets_client(void **state)
{
    struct w2 w;
    (void)state;
    w2_setup(&w, NULL);
    int c = w2_call(&w, "GET", "/", NULL, NULL, 0, true);
    assert_true(w2_reqs(&w, 1));
    w2_resp_head(&w, 0, 200, NULL);
    w2_resp_more(&w, 0, "part", 4, false);
    assert_true(w2_status(&w, c));
    w2_run(&w, 20);
    w2_reset_req(&w, 0);
    assert_true(w2_complete(&w, c));
    assert_true(w.calls[c]->rx.err != 0);
    assert_true(dones(&w, 1));
    assert_true(w.t.done[0].flags & WP_FLAG_UC);
    w2_teardown(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_by_prefix),
        cmocka_unit_test(test_weighted_split),
        cmocka_unit_test(test_rewrite_and_request_header_ops),
        cmocka_unit_test(test_response_header_ops),
        cmocka_unit_test(test_policy_deny_403),
        cmocka_unit_test(test_policy_deny_grpc_status_7),
        cmocka_unit_test(test_no_route_404_and_grpc_12),
        cmocka_unit_test(test_grpc_report),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_direct_response),
        cmocka_unit_test(test_long_path_refused),
        cmocka_unit_test(test_pod_addressed),
        cmocka_unit_test(test_retry_503_other_endpoint),
        cmocka_unit_test(test_retries_exhausted_urx),
        cmocka_unit_test(test_no_retry_past_replay_buffer),
        cmocka_unit_test(test_grpc_unavailable_retried),
        cmocka_unit_test(test_connect_failure_retried),
        cmocka_unit_test(test_no_healthy_upstream),
        cmocka_unit_test(test_timeout_504),
        cmocka_unit_test(test_per_try_timeout_restarts),
        cmocka_unit_test(test_per_try_timeout_after_request_end),
        cmocka_unit_test(test_per_try_timeout_504),
        cmocka_unit_test(test_timeout_mid_response_resets),
        cmocka_unit_test(test_request_trailers_forwarded),
        cmocka_unit_test(test_client_reset_cancels_upstream),
        cmocka_unit_test(test_client_reset_mid_request_body),
        cmocka_unit_test(test_upstream_reset_before_head_503),
        cmocka_unit_test(test_upstream_reset_mid_body_resets_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
