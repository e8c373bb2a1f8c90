/*
 * loop.c - epoll event loop with a binary-heap timer queue and deferred calls.
 *
 * Level-triggered epoll: a handler that leaves data unread is called again, so
 * back-pressure is expressed by dropping EPOLLIN interest, never by losing an
 * edge. Interest changes are cached to avoid needless epoll_ctl calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "loop/loop_internal.h"

#define LOOP_MAX_EVENTS 256

struct loop *
loop_new(void)
{
    struct loop *l = xcalloc(1, sizeof(*l));

    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    l->now_ms = clock_mono_ms();
    l->defer_tail = &l->defer_head;
    l->turn_tail = &l->turn_head;
    if (loop_post_init(l) < 0) {
        close(l->epfd);
        free(l);
        return NULL;
    }
    return l;
}

void
loop_free(struct loop *l)
{
    if (l == NULL)
        return;
    loop_post_fini(l);
    close(l->epfd);
    free(l->heap);
    free(l);
}

uint64_t
loop_now_ms(const struct loop *l)
{
    return l->now_ms;
}

void
loop_stop(struct loop *l)
{
    l->stop = true;
}

/*
 * An fd with no interest is taken out of epoll entirely: level-triggered epoll
 * reports EPOLLHUP and EPOLLERR whatever the interest, so a back-pressured
 * socket whose peer hung up would otherwise wake us in a tight loop. Adding it
 * back reports its current state, so nothing is lost.
 */
static int
io_apply(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op;

    if (events == 0) {
        if (!io->registered)
            return 0;
        op = EPOLL_CTL_DEL;
    } else {
        op = io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    }
    if (epoll_ctl(l->epfd, op, io->fd, &ev) < 0)
        return -errno;
    io->registered = events != 0;
    io->events = events;
    return 0;
}

int
loop_io_start(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn *cb,
              void *arg)
{
    io->fd = fd;
    io->events = 0;
    io->registered = false;
    io->cb = cb;
    io->arg = arg;
    int rc = io_apply(l, io, events);
    if (rc < 0)
        return rc;
    io->active = true;
    return 0;
}

void
loop_io_set(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (!io->active || (io->events == events && io->registered == (events != 0)))
        return;
    CHECK(io_apply(l, io, events) == 0);
}

void
loop_io_stop(struct loop *l, struct loop_io *io)
{
    if (!io->active)
        return;
    io_apply(l, io, 0);
    io->active = false;
}

/* Heap helpers: heap[i] has heap_idx i + 1. */
static void
heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->heap_idx = i + 1;
}

static void
heap_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->due_ms <= t->due_ms)
            break;
        heap_set(l, i, l->heap[p]);
        i = p;
    }
    heap_set(l, i, t);
}

static void
heap_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_timers)
            break;
        if (c + 1 < l->n_timers && l->heap[c + 1]->due_ms < l->heap[c]->due_ms)
            c++;
        if (l->heap[c]->due_ms >= t->due_ms)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void
loop_timer_stop(struct loop *l, struct loop_timer *t)
{
    if (t->heap_idx == 0)
        return;
    size_t i = t->heap_idx - 1;
    struct loop_timer *last = l->heap[--l->n_timers];
    t->heap_idx = 0;
    if (i == l->n_timers)
        return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->heap_idx - 1);
}

void
loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms, loop_timer_fn *cb,
                 void *arg)
{
    loop_timer_stop(l, t);
    t->due_ms = clock_mono_ms() + delay_ms;
    t->cb = cb;
    t->arg = arg;
    if (l->n_timers == l->cap_timers) {
        l->cap_timers = l->cap_timers ? 2 * l->cap_timers : 64;
        l->heap = xrealloc(l->heap, l->cap_timers * sizeof(*l->heap));
    }
    heap_set(l, l->n_timers++, t);
    heap_up(l, l->n_timers - 1);
}

/* Appends |d| to the queue whose tail pointer is |*tail|, once. */
static void
enqueue(struct loop_defer ***tail, struct loop_defer *d, loop_defer_fn *cb, void *arg)
{
    if (d->queued)
        return;
    d->queued = true;
    d->cb = cb;
    d->arg = arg;
    d->next = NULL;
    **tail = d;
    *tail = &d->next;
}

void
loop_defer(struct loop *l, struct loop_defer *d, loop_defer_fn *cb, void *arg)
{
    enqueue(&l->defer_tail, d, cb, arg);
}

void
loop_defer_turn(struct loop *l, struct loop_defer *d, loop_defer_fn *cb, void *arg)
{
    enqueue(&l->turn_tail, d, cb, arg);
}

uint64_t
loop_turn(const struct loop *l)
{
    return l->turn;
}

/* The turn's yielded work joins the deferred calls; what it queues again waits for the next. */
static void
start_turn(struct loop *l)
{
    l->turn++;
    if (l->turn_head == NULL)
        return;
    *l->defer_tail = l->turn_head;
    l->defer_tail = l->turn_tail;
    l->turn_head = NULL;
    l->turn_tail = &l->turn_head;
}

static void
run_deferred(struct loop *l)
{
    while (l->defer_head != NULL) {
        struct loop_defer *d = l->defer_head;
        l->defer_head = d->next;
        if (l->defer_head == NULL)
            l->defer_tail = &l->defer_head;
        d->queued = false;
        d->cb(d->arg);
    }
}

void
loop_run_deferred(struct loop *l)
{
    run_deferred(l);
}

static void
run_timers(struct loop *l)
{
    l->now_ms = clock_mono_ms();
    while (l->n_timers > 0 && l->heap[0]->due_ms <= l->now_ms) {
        struct loop_timer *t = l->heap[0];
        loop_timer_stop(l, t);
        t->cb(t->arg);
        run_deferred(l);
    }
}

int
loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];

    l->stop = false;
    while (!l->stop) {
        int timeout = -1;
        run_deferred(l);
        if (l->stop)
            break;
        if (l->n_timers > 0) {
            uint64_t now = clock_mono_ms();
            uint64_t due = l->heap[0]->due_ms;
            timeout = due <= now ? 0 : (int)(due - now > 60000 ? 60000 : due - now);
        }
        if (l->turn_head != NULL)
            timeout = 0; /* yielded work waits for this poll only, not for an event */
        int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        l->now_ms = clock_mono_ms();
        start_turn(l);
        for (int i = 0; i < n; i++) {
            struct loop_io *io = evs[i].data.ptr;
            if (io->active)
                io->cb(io->arg, evs[i].events);
        }
        run_deferred(l);
        run_timers(l);
    }
    run_deferred(l);
    return 0;
}
