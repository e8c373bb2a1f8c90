/*
 * test_mark.c - mesh-cni's ambient.istio.io/redirection patches (mark.c)
 * without a server: lib/kube's kube_request() is replaced by a recorder, and
 * the test answers each request itself. Checks that a patch goes out only when
 * the store differs from what is wanted (and not again while in flight or
 * while the watch has not shown a success yet), its path and body (merge
 * patch of pods/status, the uid precondition, null to remove), the backoff
 * after failures (0.4-0.8 s, then 0.8-1.6 s), 404 ending the matter, the cap
 * on patches in flight, and a pod gone from the node cancelling its request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube.h"
#include "mark.h"
#include "unit_loop.h"

struct kube_request {
    char *method, *path, *ctype;
    json_t *body;
    kube_response_fn *cb;
    void *arg;
    bool done, cancelled;
};

static struct kube_request *reqs[256];
static size_t n_reqs;

struct kube_request *
kube_request(struct kube_client *c, const char *method, const char *path, const char *content_type,
             const json_t *body, unsigned timeout_ms, kube_response_fn *cb, void *arg)
{
    (void)c, (void)timeout_ms;
    assert_true(n_reqs < ARRAY_LEN(reqs));
    struct kube_request *r = xcalloc(1, sizeof(*r));
    r->method = xstrdup(method);
    r->path = xstrdup(path);
    r->ctype = xstrdup(content_type);
    r->body = json_deep_copy(body);
    r->cb = cb;
    r->arg = arg;
    reqs[n_reqs++] = r;
    return r;
}

void
kube_request_cancel(struct kube_request *r)
{
    assert_false(r->done);
    r->cancelled = true;
}

static void
answer(struct kube_request *r, int status)
{
    assert_false(r->done);
    assert_false(r->cancelled);
    r->done = true;
    r->cb(r->arg, status, NULL);
}

static size_t
open_reqs(void)
{
    size_t n = 0;
    for (size_t i = 0; i < n_reqs; i++)
        n += !reqs[i]->done && !reqs[i]->cancelled;
    return n;
}

static void
reset(void)
{
    for (size_t i = 0; i < n_reqs; i++) {
        free(reqs[i]->method);
        free(reqs[i]->path);
        free(reqs[i]->ctype);
        json_decref(reqs[i]->body);
        free(reqs[i]);
    }
    n_reqs = 0;
}

static void
round1(struct marker *mk, const char *name, const char *uid, const char *value, enum mark_want want)
{
    marker_begin(mk);
    marker_pod(mk, "demo", name, uid, value, want);
    marker_end(mk);
}

static const char *
ann_of(const struct kube_request *r)
{
    json_t *v = json_object_get(
        json_object_get(json_object_get(r->body, "metadata"), "annotations"), MARK_ANNOTATION);
    assert_non_null(v);
    return json_is_null(v) ? NULL : json_string_value(v);
}

static void
test_only_on_change(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct marker *mk = marker_new(l, NULL);
    struct marker_stats st;

    round1(mk, "a", "uid-a", MARK_VALUE, MARK_SET); /* already as wanted */
    round1(mk, "a", "uid-a", NULL, MARK_LEAVE);     /* on its way in: left alone */
    round1(mk, "a", "uid-a", MARK_VALUE, MARK_LEAVE);
    assert_int_equal(n_reqs, 0);

    round1(mk, "a", "uid-a", NULL, MARK_SET);
    assert_int_equal(n_reqs, 1);
    struct kube_request *r = reqs[0];
    assert_string_equal(r->method, "PATCH");
    assert_string_equal(r->path, "/api/v1/namespaces/demo/pods/a/status");
    assert_string_equal(r->ctype, "application/merge-patch+json");
    assert_string_equal(ann_of(r), MARK_VALUE);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r->body, "metadata"), "uid")), "uid-a");

    round1(mk, "a", "uid-a", NULL, MARK_SET); /* in flight: not again */
    assert_int_equal(n_reqs, 1);
    answer(r, 200);
    unit_run_for(l, 20);
    round1(mk, "a", "uid-a", NULL, MARK_SET); /* the watch has not shown it yet */
    unit_run_for(l, 20);
    assert_int_equal(n_reqs, 1);
    round1(mk, "a", "uid-a", MARK_VALUE, MARK_SET); /* now it has: done */
    marker_stats(mk, &st);
    assert_int_equal(st.pending, 0);

    round1(mk, "a", "uid-a", MARK_VALUE, MARK_CLEAR); /* left the mesh */
    assert_int_equal(n_reqs, 2);
    assert_null(ann_of(reqs[1]));
    answer(reqs[1], 200);
    round1(mk, "a", "uid-a", NULL, MARK_CLEAR);
    unit_run_for(l, 20);
    assert_int_equal(n_reqs, 2);
    marker_stats(mk, &st);
    assert_int_equal(st.sent, 2);
    assert_int_equal(st.ok, 2);
    assert_int_equal(st.failed, 0);

    /* No uid known: no precondition. A success is not repeated while the watch catches up. */
    round1(mk, "b", "", NULL, MARK_SET);
    assert_int_equal(n_reqs, 3);
    assert_null(json_object_get(json_object_get(reqs[2]->body, "metadata"), "uid"));
    answer(reqs[2], 200);
    round1(mk, "b", "", NULL, MARK_SET);
    unit_run_for(l, 50);
    assert_int_equal(n_reqs, 3);

    marker_free(mk);
    loop_run_deferred(l);
    loop_free(l);
    reset();
}

static bool
has_n_reqs(void *arg)
{
    return n_reqs >= *(size_t *)arg;
}

static void
test_backoff(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct marker *mk = marker_new(l, NULL);
    size_t want = 2;
    struct marker_stats st;

    round1(mk, "a", "uid-a", NULL, MARK_SET);
    assert_int_equal(n_reqs, 1);
    uint64_t t0 = clock_mono_ms();
    answer(reqs[0], 500);
    assert_true(unit_run_until(l, has_n_reqs, &want, 2000));
    uint64_t d1 = clock_mono_ms() - t0;
    assert_true(d1 >= MARK_BACKOFF_MIN_MS / 2 - 5 && d1 <= MARK_BACKOFF_MIN_MS + 50);
    t0 = clock_mono_ms();
    answer(reqs[1], -110); /* no answer at all: ETIMEDOUT */
    want = 3;
    assert_true(unit_run_until(l, has_n_reqs, &want, 3000));
    uint64_t d2 = clock_mono_ms() - t0;
    assert_true(d2 >= MARK_BACKOFF_MIN_MS - 5 && d2 <= 2 * MARK_BACKOFF_MIN_MS + 50);
    answer(reqs[2], 200);
    marker_stats(mk, &st);
    assert_int_equal(st.sent, 3);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.ok, 1);

    /* 404: the pod is gone; no retry. */
    round1(mk, "b", "uid-b", NULL, MARK_SET);
    assert_int_equal(n_reqs, 4);
    answer(reqs[3], 404);
    unit_run_for(l, 1200);
    assert_int_equal(n_reqs, 4);

    marker_free(mk);
    loop_run_deferred(l);
    loop_free(l);
    reset();
}

static void
test_cap_and_gone(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct marker *mk = marker_new(l, NULL);
    char name[32];

    marker_begin(mk);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        marker_pod(mk, "demo", name, "", NULL, MARK_SET);
    }
    marker_end(mk);
    assert_int_equal(n_reqs, MARK_INFLIGHT_MAX);
    answer(reqs[0], 200);
    unit_run_for(l, 10);
    assert_int_equal(n_reqs, MARK_INFLIGHT_MAX + 1);
    assert_int_equal(open_reqs(), MARK_INFLIGHT_MAX);

    /* The node's pods are now only p0: every other request is cancelled, none sent. */
    marker_begin(mk);
    marker_pod(mk, "demo", "p0", "", MARK_VALUE, MARK_SET);
    marker_end(mk);
    unit_run_for(l, 10);
    assert_int_equal(n_reqs, MARK_INFLIGHT_MAX + 1);
    assert_int_equal(open_reqs(), 0);

    /* Cancelled on free too. */
    round1(mk, "q", "", NULL, MARK_SET);
    assert_int_equal(open_reqs(), 1);
    marker_free(mk);
    assert_int_equal(open_reqs(), 0);
    loop_run_deferred(l);
    loop_free(l);
    reset();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_on_change),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_cap_and_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
