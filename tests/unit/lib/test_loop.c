/* test_loop.c - event loop: timer order, stop and restart, deferred calls, io interest. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "loop/loop.h"
#include "unit_loop.h"

#define N_TIMERS 200

struct fired {
    struct loop *loop;
    struct loop_timer t[N_TIMERS];
    int order[N_TIMERS];
    uint64_t fired_at[N_TIMERS];
    int count[N_TIMERS];
    int n;
    int stop_after;
};

struct tref {
    struct fired *f;
    int i;
};

static void
on_fire(void *arg)
{
    struct tref *r = arg;
    struct fired *f = r->f;

    f->count[r->i]++;
    f->fired_at[r->i] = clock_mono_ms();
    f->order[f->n++] = r->i;
    assert_false(loop_timer_armed(&f->t[r->i]));
    if (f->n == f->stop_after)
        loop_stop(f->loop);
}

static void
test_timers_fire_in_order(void **state)
{
    static struct fired f;
    static struct tref refs[3];
    static const uint64_t delays[3] = {30, 10, 20};
    (void)state;

    memset(&f, 0, sizeof(f));
    f.loop = loop_new();
    f.stop_after = 3;
    uint64_t start = clock_mono_ms();
    for (int i = 0; i < 3; i++) {
        refs[i] = (struct tref){&f, i};
        loop_timer_start(f.loop, &f.t[i], delays[i], on_fire, &refs[i]);
        assert_true(loop_timer_armed(&f.t[i]));
    }
    assert_int_equal(loop_run(f.loop), 0);
    assert_int_equal(f.n, 3);
    assert_int_equal(f.order[0], 1);
    assert_int_equal(f.order[1], 2);
    assert_int_equal(f.order[2], 0);
    for (int i = 0; i < 3; i++)
        assert_true(f.fired_at[i] - start >= delays[i]);
    loop_free(f.loop);
}

/* A heap workout: many timers, some re-armed and some stopped, fire once each in due order. */
static void
test_many_timers_heap(void **state)
{
    static struct fired f;
    static struct tref refs[N_TIMERS];
    uint32_t seed = 12345;
    int expected = 0;
    (void)state;

    memset(&f, 0, sizeof(f));
    f.loop = loop_new();
    for (int i = 0; i < N_TIMERS; i++) {
        seed = seed * 1103515245u + 12345u;
        refs[i] = (struct tref){&f, i};
        loop_timer_start(f.loop, &f.t[i], (seed >> 16) % 40, on_fire, &refs[i]);
    }
    /* Re-arm every 7th (moves it in the heap), stop every 5th. */
    for (int i = 0; i < N_TIMERS; i += 7)
        loop_timer_start(f.loop, &f.t[i], 45 - (uint64_t)(i % 13), on_fire, &refs[i]);
    for (int i = 0; i < N_TIMERS; i += 5) {
        loop_timer_stop(f.loop, &f.t[i]);
        assert_false(loop_timer_armed(&f.t[i]));
        loop_timer_stop(f.loop, &f.t[i]); /* stopping twice is harmless */
    }
    for (int i = 0; i < N_TIMERS; i++)
        if (i % 5 != 0)
            expected++;
    f.stop_after = expected;
    assert_int_equal(loop_run(f.loop), 0);
    assert_int_equal(f.n, expected);
    for (int i = 0; i < N_TIMERS; i++)
        assert_int_equal(f.count[i], i % 5 == 0 ? 0 : 1);
    for (int k = 1; k < f.n; k++)
        assert_true(f.t[f.order[k - 1]].due_ms <= f.t[f.order[k]].due_ms);
    loop_free(f.loop);
}

static void
test_restart_timer_postpones(void **state)
{
    static struct fired f;
    static struct tref ref;
    (void)state;

    memset(&f, 0, sizeof(f));
    f.loop = loop_new();
    f.stop_after = 1;
    ref = (struct tref){&f, 0};
    uint64_t start = clock_mono_ms();
    loop_timer_start(f.loop, &f.t[0], 5, on_fire, &ref);
    loop_timer_start(f.loop, &f.t[0], 60, on_fire, &ref);
    assert_int_equal(loop_run(f.loop), 0);
    assert_int_equal(f.count[0], 1);
    assert_true(f.fired_at[0] - start >= 60);
    loop_free(f.loop);
}

struct stopper {
    struct loop *loop;
    struct loop_timer t, late;
    int runs;
    bool late_fired;
};

static void
on_stop_timer(void *arg)
{
    struct stopper *s = arg;
    s->runs++;
    loop_stop(s->loop);
}

static void
on_late(void *arg)
{
    struct stopper *s = arg;
    s->late_fired = true;
}

static void
test_stop_and_run_again(void **state)
{
    struct stopper s;
    (void)state;

    memset(&s, 0, sizeof(s));
    s.loop = loop_new();
    loop_timer_start(s.loop, &s.t, 1, on_stop_timer, &s);
    loop_timer_start(s.loop, &s.late, 10000, on_late, &s);
    assert_int_equal(loop_run(s.loop), 0);
    assert_int_equal(s.runs, 1);
    assert_false(s.late_fired);
    assert_true(loop_timer_armed(&s.late));
    /* The loop can be run again after a stop; armed timers survive. */
    loop_timer_start(s.loop, &s.t, 1, on_stop_timer, &s);
    assert_int_equal(loop_run(s.loop), 0);
    assert_int_equal(s.runs, 2);
    assert_false(s.late_fired);
    loop_timer_stop(s.loop, &s.late);
    loop_free(s.loop);
}

struct batch {
    struct loop *loop;
    struct loop_io io[2];
    int fds[2][2];
    struct loop_defer d;
    int handlers_run;
    int handlers_seen_by_defer;
    int defer_runs;
    bool defer_ran_before_handler;
    struct loop_defer chained;
    bool chained_ran;
    struct loop_timer guard;
};

static void
on_chained(void *arg)
{
    struct batch *b = arg;
    b->chained_ran = true;
    loop_stop(b->loop);
}

static void
on_batch_defer(void *arg)
{
    struct batch *b = arg;
    b->defer_runs++;
    b->handlers_seen_by_defer = b->handlers_run;
    /* A call deferred from a deferred call runs in the same end-of-iteration step. */
    loop_defer(b->loop, &b->chained, on_chained, b);
}

static void
on_batch_io(void *arg, uint32_t events)
{
    struct batch *b = arg;
    (void)events;
    if (b->defer_runs > 0)
        b->defer_ran_before_handler = true;
    b->handlers_run++;
    /* Queued twice in one batch: still runs once. */
    loop_defer(b->loop, &b->d, on_batch_defer, b);
    loop_defer(b->loop, &b->d, on_batch_defer, b);
}

static void
on_guard(void *arg)
{
    struct batch *b = arg;
    loop_stop(b->loop);
}

static void
test_defer_runs_after_batch(void **state)
{
    struct batch b;
    (void)state;

    memset(&b, 0, sizeof(b));
    b.loop = loop_new();
    for (int i = 0; i < 2; i++) {
        unit_socketpair(b.fds[i]);
        assert_int_equal(write(b.fds[i][1], "x", 1), 1);
    }
    /* Both fds are readable before the first epoll_wait, so both land in one batch. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(loop_io_start(b.loop, &b.io[i], b.fds[i][0], EPOLLIN, on_batch_io, &b), 0);
    loop_timer_start(b.loop, &b.guard, 2000, on_guard, &b);
    assert_int_equal(loop_run(b.loop), 0);
    assert_int_equal(b.handlers_run, 2);
    assert_int_equal(b.defer_runs, 1);
    assert_int_equal(b.handlers_seen_by_defer, 2);
    assert_false(b.defer_ran_before_handler);
    assert_true(b.chained_ran);
    loop_timer_stop(b.loop, &b.guard);
    for (int i = 0; i < 2; i++) {
        loop_io_stop(b.loop, &b.io[i]);
        close(b.fds[i][0]);
        close(b.fds[i][1]);
    }
    loop_free(b.loop);
}

struct iotest {
    int n_in, n_out, n_other;
};

static void
on_io_count(void *arg, uint32_t events)
{
    struct iotest *t = arg;
    if (events & EPOLLIN)
        t->n_in++;
    if (events & EPOLLOUT)
        t->n_out++;
    if (events & ~(uint32_t)(EPOLLIN | EPOLLOUT))
        t->n_other++;
}

static void
test_io_interest_changes(void **state)
{
    struct loop *l = loop_new();
    struct loop_io io;
    struct iotest t;
    int fds[2];
    (void)state;

    memset(&t, 0, sizeof(t));
    unit_socketpair(fds);
    assert_int_equal(loop_io_start(l, &io, fds[0], EPOLLIN, on_io_count, &t), 0);
    assert_true(io.active);
    assert_int_equal(io.fd, fds[0]);

    /* Nothing to read: no callback. */
    unit_run_for(l, 20);
    assert_int_equal(t.n_in + t.n_out, 0);

    /* Data pending: level-triggered, so the callback repeats while it stays unread. */
    assert_int_equal(write(fds[1], "abc", 3), 3);
    unit_run_for(l, 20);
    assert_true(t.n_in >= 2);
    assert_int_equal(t.n_out, 0);

    /* Interest dropped: data still pending but no more callbacks (back-pressure). */
    loop_io_set(l, &io, 0);
    assert_int_equal(io.events, 0);
    memset(&t, 0, sizeof(t));
    unit_run_for(l, 20);
    assert_int_equal(t.n_in + t.n_out, 0);

    /* Write interest only. */
    loop_io_set(l, &io, EPOLLOUT);
    unit_run_for(l, 10);
    assert_true(t.n_out >= 1);
    assert_int_equal(t.n_in, 0);

    /* Both, then unchanged (the cached path), then stopped. */
    loop_io_set(l, &io, EPOLLIN | EPOLLOUT);
    loop_io_set(l, &io, EPOLLIN | EPOLLOUT);
    memset(&t, 0, sizeof(t));
    unit_run_for(l, 10);
    assert_true(t.n_in >= 1 && t.n_out >= 1);

    loop_io_stop(l, &io);
    assert_false(io.active);
    loop_io_stop(l, &io);         /* safe on a stopped io */
    loop_io_set(l, &io, EPOLLIN); /* ignored on a stopped io */
    memset(&t, 0, sizeof(t));
    unit_run_for(l, 20);
    assert_int_equal(t.n_in + t.n_out + t.n_other, 0);

    /* Registering a closed fd fails with -errno. */
    struct loop_io bad;
    assert_int_equal(loop_io_start(l, &bad, 1000, EPOLLIN, on_io_count, &t), -EBADF);

    close(fds[0]);
    close(fds[1]);
    loop_free(l);
}

struct nowtest {
    struct loop *loop;
    struct loop_timer t;
    uint64_t seen;
};

static void
on_now(void *arg)
{
    struct nowtest *n = arg;
    n->seen = loop_now_ms(n->loop);
    loop_stop(n->loop);
}

static void
test_now_advances(void **state)
{
    struct nowtest n;
    (void)state;

    memset(&n, 0, sizeof(n));
    n.loop = loop_new();
    uint64_t before = loop_now_ms(n.loop);
    loop_timer_start(n.loop, &n.t, 30, on_now, &n);
    assert_int_equal(loop_run(n.loop), 0);
    assert_true(n.seen >= before + 30);
    assert_true(n.seen <= clock_mono_ms());
    loop_free(n.loop);
    loop_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_order),
        cmocka_unit_test(test_many_timers_heap),
        cmocka_unit_test(test_restart_timer_postpones),
        cmocka_unit_test(test_stop_and_run_again),
        cmocka_unit_test(test_defer_runs_after_batch),
        cmocka_unit_test(test_io_interest_changes),
        cmocka_unit_test(test_now_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
