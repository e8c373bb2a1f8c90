/*
 * test_kube_client.c - lib/kube's client and single requests against the
 * fake API server (tests/support/unit_kubesrv.c): headers and bodies both
 * ways, the server checked against the CA (a wrong CA fails the request),
 * no server, timeouts, cancel, free with requests in flight, GOAWAY and a
 * cut connection (the next request gets a new connection), the bearer token
 * re-read when its file changes, and a server URL with a path prefix.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube.h"
#include "unit_kubesrv.h"
#include "unit_loop.h"
#include "unit_fs.h"

struct t {
    struct loop *loop;
    struct fks *f;
    struct kube_client *c;
    /* what the server saw */
    char last_path[512], last_query[2048], last_auth[512], last_method[16], last_body[512];
    int answer; /* 0: leave unanswered */
    /* what the client got */
    int calls, status;
    char body[512];
};

static void
handler(void *arg, struct fks_req *rq)
{
    struct t *t = arg;
    snprintf(t->last_path, sizeof(t->last_path), "%s", rq->path);
    snprintf(t->last_query, sizeof(t->last_query), "%s", rq->query);
    snprintf(t->last_auth, sizeof(t->last_auth), "%s", rq->auth);
    snprintf(t->last_method, sizeof(t->last_method), "%s", rq->method);
    snprintf(t->last_body, sizeof(t->last_body), "%s", rq->body);
    if (t->answer == 0)
        return;
    if (strcmp(rq->method, "POST") == 0) {
        fks_respond(rq, 201, rq->body, NULL, NULL);
        return;
    }
    if (strcmp(rq->path, "/notjson") == 0) {
        fks_respond(rq, 200, "hello", NULL, NULL);
        return;
    }
    if (strcmp(rq->path, "/deep") == 0) {
        char deep[404];
        memset(deep, '[', 200);
        memset(deep + 200, ']', 200);
        deep[400] = '\0';
        fks_respond(rq, 200, deep, NULL, NULL);
        return;
    }
    if (strcmp(rq->path, "/missing") == 0) {
        fks_respond(rq, 404, "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404}", NULL,
                    NULL);
        return;
    }
    fks_respond(rq, t->answer, "{\"kind\":\"NamespaceList\",\"items\":[]}", NULL, NULL);
}

static void
on_resp(void *arg, int status, const json_t *body)
{
    struct t *t = arg;
    t->calls++;
    t->status = status;
    t->body[0] = '\0';
    if (body != NULL) {
        char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(t->body, sizeof(t->body), "%s", s);
        free(s);
    }
}

static bool
cond_calls(void *arg)
{
    struct t *t = arg;
    return t->calls > 0;
}

enum ca_choice { CA_RIGHT, CA_OTHER, CA_INSECURE };

static void
setup_with(struct t *t, enum ca_choice ca, const char *token, const char *token_file,
           const char *prefix)
{
    memset(t, 0, sizeof(*t));
    t->answer = 200;
    t->loop = loop_new();
    t->f = fks_new(t->loop, handler, t);
    char server[128];
    snprintf(server, sizeof(server), "%s%s", fks_server(t->f), prefix != NULL ? prefix : "");
    struct kube_config cfg = {
        .server = server,
        .token = (char *)token,
        .token_file = (char *)token_file,
        .ca_pem = (char *)(ca == CA_OTHER ? fks_other_ca_pem(t->f) : fks_ca_pem(t->f)),
        .insecure_skip_verify = ca == CA_INSECURE,
    };
    if (ca == CA_INSECURE)
        cfg.ca_pem = (char *)fks_other_ca_pem(t->f);
    char err[256];
    t->c = kube_client_new(t->loop, &cfg, err, sizeof(err));
    if (t->c == NULL)
        fail_msg("kube_client_new: %s", err);
    kube_client_set_backoff(t->c, 10, 100);
}

static void
teardown_t(struct t *t)
{
    kube_client_free(t->c);
    fks_free(t->f);
    loop_run_deferred(t->loop);
    loop_free(t->loop);
}

static void
request_and_wait(struct t *t, const char *method, const char *path, const json_t *body,
                 unsigned timeout_ms)
{
    t->calls = 0;
    assert_non_null(kube_request(t->c, method, path, NULL, body, timeout_ms, on_resp, t));
    assert_int_equal(t->calls, 0); /* never from inside kube_request() */
    assert_true(unit_run_until(t->loop, cond_calls, t, 5000));
    unit_run_for(t->loop, 5); /* and exactly once */
    assert_int_equal(t->calls, 1);
}

static void
test_get_post(void **state)
{
    (void)state;
    struct t t;
    setup_with(&t, CA_RIGHT, "tok-1", NULL, NULL);
    request_and_wait(&t, "GET", "/api/v1/namespaces?limit=5", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(t.body, "{\"items\":[],\"kind\":\"NamespaceList\"}");
    assert_string_equal(t.last_method, "GET");
    assert_string_equal(t.last_path, "/api/v1/namespaces");
    assert_string_equal(t.last_query, "limit=5");
    assert_string_equal(t.last_auth, "Bearer tok-1");

    json_t *b = json_pack("{s:s,s:{s:s}}", "kind", "TokenReview", "spec", "token", "x.y");
    request_and_wait(&t, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", b, 0);
    json_decref(b);
    assert_int_equal(t.status, 201);
    assert_string_equal(t.last_body, "{\"kind\":\"TokenReview\",\"spec\":{\"token\":\"x.y\"}}");
    assert_string_equal(t.body, "{\"kind\":\"TokenReview\",\"spec\":{\"token\":\"x.y\"}}");

    request_and_wait(&t, "GET", "/notjson", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(t.body, ""); /* not JSON: NULL body */
    request_and_wait(&t, "GET", "/deep", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(t.body, ""); /* nested past KUBE_MAX_DEPTH: not parsed */
    request_and_wait(&t, "GET", "/missing", NULL, 0);
    assert_int_equal(t.status, 404);
    assert_non_null(strstr(t.body, "NotFound"));

    /* All on one connection. */
    struct kube_client_stats st;
    kube_client_stats(t.c, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(fks_connections(t.f), 1);
    teardown_t(&t);
}

static void
test_server_checked(void **state)
{
    (void)state;
    struct t t;
    setup_with(&t, CA_OTHER, NULL, NULL, NULL);
    request_and_wait(&t, "GET", "/api", NULL, 0);
    assert_true(t.status < 0);
    assert_int_equal(fks_requests(t.f), 0);
    teardown_t(&t);

    /* insecure-skip-tls-verify: accepted whatever the CA; no token, no authorization header. */
    setup_with(&t, CA_INSECURE, NULL, NULL, NULL);
    request_and_wait(&t, "GET", "/api", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(t.last_auth, "");
    teardown_t(&t);

    /* A name is resolved off the loop's thread; the certificate names localhost. */
    setup_with(&t, CA_RIGHT, "x", NULL, NULL);
    kube_client_free(t.c);
    char server[128];
    snprintf(server, sizeof(server), "https://localhost:%s", strrchr(fks_server(t.f), ':') + 1);
    struct kube_config lc = {.server = server, .ca_pem = (char *)fks_ca_pem(t.f)};
    char lerr[256];
    t.c = kube_client_new(t.loop, &lc, lerr, sizeof(lerr));
    assert_non_null(t.c);
    request_and_wait(&t, "GET", "/api", NULL, 0);
    assert_int_equal(t.status, 200);
    teardown_t(&t);
    /* A name that does not resolve fails the request, later, not the loop. */
    setup_with(&t, CA_RIGHT, "x", NULL, NULL);
    kube_client_free(t.c);
    lc.server = (char *)"https://no-such-host.invalid:6443";
    lc.ca_pem = (char *)fks_ca_pem(t.f);
    t.c = kube_client_new(t.loop, &lc, lerr, sizeof(lerr));
    assert_non_null(t.c);
    request_and_wait(&t, "GET", "/api", NULL, 0);
    assert_int_equal(t.status, -EHOSTUNREACH);
    /* Freed while resolving: the helper thread's answer goes nowhere. */
    assert_non_null(kube_request(t.c, "GET", "/api", NULL, NULL, 0, on_resp, &t));
    teardown_t(&t);

    /* The certificate names 127.0.0.1 and localhost, not other hosts. */
    struct loop *l = loop_new();
    struct fks *f = fks_new(l, handler, NULL);
    struct kube_config cfg = {.server = "https://localhost:1", .ca_pem = (char *)"junk"};
    char err[256] = "";
    assert_null(kube_client_new(l, &cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "CA bundle"));
    cfg.server = (char *)"http://127.0.0.1:1";
    assert_null(kube_client_new(l, &cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "https"));
    fks_free(f);
    loop_free(l);
}

static void
test_no_server_timeout_cancel(void **state)
{
    (void)state;
    struct t t;
    setup_with(&t, CA_RIGHT, "x", NULL, NULL);
    /* Unanswered: the request times out. */
    t.answer = 0;
    uint64_t t0 = clock_mono_ms();
    request_and_wait(&t, "GET", "/slow", NULL, 200);
    assert_int_equal(t.status, -ETIMEDOUT);
    assert_true(clock_mono_ms() - t0 >= 190);

    /* Cancelled: no callback. */
    t.calls = 0;
    struct kube_request *r = kube_request(t.c, "GET", "/slow", NULL, NULL, 100, on_resp, &t);
    assert_non_null(r);
    kube_request_cancel(r);
    unit_run_for(t.loop, 300);
    assert_int_equal(t.calls, 0);

    /* Freed with a request in flight: no callback, no leak (ASan). */
    assert_non_null(kube_request(t.c, "GET", "/slow", NULL, NULL, 0, on_resp, &t));
    unit_run_for(t.loop, 50);
    teardown_t(&t);
    assert_int_equal(t.calls, 0);

    /* Nobody listening: the request fails at once with the connect error. */
    struct loop *l = loop_new();
    struct kube_config cfg = {.server = "https://127.0.0.1:1", .insecure_skip_verify = true};
    char err[256];
    struct kube_client *c = kube_client_new(l, &cfg, err, sizeof(err));
    assert_non_null(c);
    t.calls = 0;
    t.loop = l;
    assert_non_null(kube_request(c, "GET", "/api", NULL, NULL, 0, on_resp, &t));
    assert_true(unit_run_until(l, cond_calls, &t, 3000));
    assert_int_equal(t.status, -ECONNREFUSED);
    /* The next attempt waits for the backoff (800 ms at least), then fails again. */
    t.calls = 0;
    t0 = clock_mono_ms();
    assert_non_null(kube_request(c, "GET", "/api", NULL, NULL, 0, on_resp, &t));
    assert_true(unit_run_until(l, cond_calls, &t, 5000));
    assert_int_equal(t.status, -ECONNREFUSED);
    assert_true(clock_mono_ms() - t0 >= 700);
    kube_client_free(c);
    loop_run_deferred(l);
    loop_free(l);
}

static void
test_goaway_and_cut(void **state)
{
    (void)state;
    struct t t;
    setup_with(&t, CA_RIGHT, "x", NULL, NULL);
    request_and_wait(&t, "GET", "/a", NULL, 0);
    assert_int_equal(t.status, 200);
    fks_goaway(t.f);
    unit_run_for(t.loop, 50);
    request_and_wait(&t, "GET", "/b", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_string_equal(t.last_path, "/b");
    assert_int_equal(fks_connections(t.f), 2);

    fks_cut(t.f);
    unit_run_for(t.loop, 50);
    request_and_wait(&t, "GET", "/c", NULL, 0);
    assert_int_equal(t.status, 200);
    assert_int_equal(fks_connections(t.f), 3);
    struct kube_client_stats st;
    kube_client_stats(t.c, &st);
    assert_int_equal(st.connects, 3);
    assert_int_equal(st.goaways, 1);

    /* A request in flight when the connection is cut fails; it is not retried behind our back. */
    t.answer = 0;
    t.calls = 0;
    assert_non_null(kube_request(t.c, "GET", "/d", NULL, NULL, 0, on_resp, &t));
    unit_run_for(t.loop, 100);
    fks_cut(t.f);
    assert_true(unit_run_until(t.loop, cond_calls, &t, 3000));
    assert_true(t.status < 0);
    teardown_t(&t);
}

static void
test_token_file_and_prefix(void **state)
{
    (void)state;
    char dir[] = "/tmp/kubetok.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/token", dir);
    FILE *fp = fopen(path, "w");
    fputs("first\n", fp);
    fclose(fp);

    struct t t;
    setup_with(&t, CA_RIGHT, "first", path, "/prefix/x/");
    request_and_wait(&t, "GET", "/api/v1/pods", NULL, 0);
    assert_string_equal(t.last_auth, "Bearer first");
    assert_string_equal(t.last_path, "/prefix/x/api/v1/pods");

    /* Rotated as kubelet does it: a new file renamed over the old one. */
    char tmp[80];
    snprintf(tmp, sizeof(tmp), "%s/.new", dir);
    fp = fopen(tmp, "w");
    fputs("second\n", fp);
    fclose(fp);
    assert_int_equal(rename(tmp, path), 0);
    unit_run_for(t.loop, 1100); /* the file is looked at once a second at most */
    request_and_wait(&t, "GET", "/api/v1/pods", NULL, 0);
    assert_string_equal(t.last_auth, "Bearer second");

    /* An empty or vanished file keeps the last good token. */
    assert_int_equal(unlink(path), 0);
    unit_run_for(t.loop, 1100);
    request_and_wait(&t, "GET", "/api/v1/pods", NULL, 0);
    assert_string_equal(t.last_auth, "Bearer second");
    teardown_t(&t);
    unit_rm_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post),
        cmocka_unit_test(test_server_checked),
        cmocka_unit_test(test_no_server_timeout_cancel),
        cmocka_unit_test(test_goaway_and_cut),
        cmocka_unit_test(test_token_file_and_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
