/*
 * test_loop_post.c - calls posted from other threads: every one runs, on the
 * loop's thread, in each poster's order; loop_call() waits for its call; calls
 * still queued when the loop is freed run then. Run under TSan by `make tsan`.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "loop/loop.h"

#define N_THREADS 4
#define N_POSTS   20000

struct shared {
    struct loop *loop;
    pthread_t loop_thread;
    long last[N_THREADS]; /* the last sequence number seen per poster */
    long seen;
    bool order_ok, thread_ok;
};

struct msg {
    struct shared *s;
    int who;
    long seq;
};

static void
on_msg(void *arg)
{
    struct msg *m = arg;
    struct shared *s = m->s;

    if (!pthread_equal(pthread_self(), s->loop_thread))
        s->thread_ok = false;
    if (m->seq != s->last[m->who] + 1)
        s->order_ok = false;
    s->last[m->who] = m->seq;
    if (++s->seen == (long)N_THREADS * N_POSTS)
        loop_stop(s->loop);
    free(m);
}

struct poster {
    struct shared *s;
    int who;
};

static void *
post_many(void *arg)
{
    struct poster *p = arg;
    for (long i = 0; i < N_POSTS; i++) {
        struct msg *m = xmalloc(sizeof(*m));
        *m = (struct msg){.s = p->s, .who = p->who, .seq = i};
        loop_post(p->s->loop, on_msg, m);
    }
    return NULL;
}

/* Four threads post 20,000 calls each while the loop runs: all run, each poster's in order. */
static void
test_posts_from_threads(void **state)
{
    struct shared s = {.order_ok = true, .thread_ok = true};
    struct poster p[N_THREADS];
    pthread_t t[N_THREADS];
    (void)state;

    s.loop = loop_new();
    assert_non_null(s.loop);
    s.loop_thread = pthread_self();
    for (int i = 0; i < N_THREADS; i++) {
        s.last[i] = -1;
        p[i] = (struct poster){.s = &s, .who = i};
        assert_int_equal(pthread_create(&t[i], NULL, post_many, &p[i]), 0);
    }
    assert_int_equal(loop_run(s.loop), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(s.seen, (long)N_THREADS * N_POSTS);
    assert_true(s.order_ok);
    assert_true(s.thread_ok);
    assert_int_equal(loop_posts_pending(s.loop), 0);
    loop_free(s.loop);
}

struct callee {
    struct loop *loop;
    pthread_t loop_thread;
    int value;
    bool on_loop;
};

static void
set_value(void *arg)
{
    struct callee *c = arg;
    c->on_loop = pthread_equal(pthread_self(), c->loop_thread);
    c->value = 42;
}

static void
stop_loop(void *arg)
{
    loop_stop(arg);
}

static void *
run_loop(void *arg)
{
    struct callee *c = arg;
    loop_run(c->loop);
    return NULL;
}

/* loop_call() returns only after the call ran on the loop's own thread. */
static void
test_call_waits(void **state)
{
    struct callee c = {0};
    pthread_t t;
    (void)state;

    c.loop = loop_new();
    assert_non_null(c.loop);
    assert_int_equal(pthread_create(&t, NULL, run_loop, &c), 0);
    c.loop_thread = t;
    loop_call(c.loop, set_value, &c);
    assert_int_equal(c.value, 42);
    assert_true(c.on_loop);
    loop_post(c.loop, stop_loop, c.loop);
    pthread_join(t, NULL);
    loop_free(c.loop);
}

static void
count_up(void *arg)
{
    (*(int *)arg)++;
}

static void
repost(void *arg)
{
    void **a = arg;
    loop_post(a[0], count_up, a[1]);
}

/* Calls queued when the loop is freed run then, also those they post in turn. */
static void
test_pending_run_at_free(void **state)
{
    struct loop *l = loop_new();
    int n = 0;
    void *a[2] = {l, &n};
    (void)state;

    assert_non_null(l);
    loop_post(l, count_up, &n);
    loop_post(l, repost, a);
    assert_int_equal(loop_posts_pending(l), 2);
    loop_free(l);
    assert_int_equal(n, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_from_threads),
        cmocka_unit_test(test_call_waits),
        cmocka_unit_test(test_pending_run_at_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
