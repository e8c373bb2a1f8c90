/*
 * loop.h - the event loop: epoll readiness, one-shot timers and deferred calls.
 *
 * One loop per thread. Handlers run on the loop's thread; a handler must not
 * free the object it was called for (see loop_defer()): teardown is deferred
 * to the end of the iteration, when no handler is on the stack. The only calls
 * another thread may make on a loop are loop_post() and loop_call().
 */
#ifndef MESH_LIB_LOOP_H
#define MESH_LIB_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;

typedef void loop_io_fn(void *arg, uint32_t events);
typedef void loop_timer_fn(void *arg);
typedef void loop_defer_fn(void *arg);

/* Interest in one file descriptor; embed it, then loop_io_start(). */
struct loop_io {
    int fd;
    uint32_t events; /* current interest, EPOLLIN | EPOLLOUT */
    bool active;     /* between loop_io_start() and loop_io_stop() */
    bool registered; /* in epoll: only while the interest is not empty */
    loop_io_fn *cb;
    void *arg;
};

/* A one-shot timer; embed it, zero it, then loop_timer_start(). */
struct loop_timer {
    uint64_t due_ms;
    size_t heap_idx; /* 0 = not armed; otherwise index + 1 */
    loop_timer_fn *cb;
    void *arg;
};

/* A call to run once at the end of the current iteration. */
struct loop_defer {
    struct loop_defer *next;
    bool queued;
    loop_defer_fn *cb;
    void *arg;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Runs until loop_stop(); returns 0 or a negative errno. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);
/* Monotonic time cached at the start of the iteration. */
uint64_t loop_now_ms(const struct loop *l);

/* Registers |fd| with interest |events|; returns 0 or -errno. */
int loop_io_start(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn *cb,
                  void *arg);
/* Changes the interest of a started |io|; cheap when unchanged. */
void loop_io_set(struct loop *l, struct loop_io *io, uint32_t events);
/* Unregisters |io| (the fd is not closed). Safe on a stopped |io|. */
void loop_io_stop(struct loop *l, struct loop_io *io);

/* Arms |t| to fire after |delay_ms|; re-arms if already armed. */
void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms, loop_timer_fn *cb,
                      void *arg);
void loop_timer_stop(struct loop *l, struct loop_timer *t);
static inline bool
loop_timer_armed(const struct loop_timer *t)
{
    return t->heap_idx != 0;
}

/* Queues |d| to run after the current batch of handlers; no-op if queued. */
void loop_defer(struct loop *l, struct loop_defer *d, loop_defer_fn *cb, void *arg);
/* Runs deferred calls now; for teardown after loop_run() returned. */
void loop_run_deferred(struct loop *l);

/*
 * Queues |d| for the next turn: after the next poll for I/O (which then does not block) and
 * the handlers it woke, so everything else ready gets its turn first. For work that yields
 * (a budget spent) and must come back without an event. No-op if queued (either way).
 */
void loop_defer_turn(struct loop *l, struct loop_defer *d, loop_defer_fn *cb, void *arg);
/* Counts the loop's turns (one poll for I/O each): a budget per turn resets when it moves. */
uint64_t loop_turn(const struct loop *l);

/*
 * Cross-thread calls (loop_post.c). Any thread may post: |fn|(|arg|) runs on
 * the loop's thread, in posting order, at its next iteration (one eventfd
 * write wakes it, only when its queue was empty). Calls still queued when the
 * loop is freed run inside loop_free(), on the freeing thread, so nothing
 * posted is lost and loop_call() never waits forever on a loop that ended.
 */
typedef void loop_post_fn(void *arg);
void loop_post(struct loop *l, loop_post_fn *fn, void *arg);
/* Posts and waits until |fn| ran. Never from |l|'s own thread (it would wait on itself). */
void loop_call(struct loop *l, loop_post_fn *fn, void *arg);
/* Posted calls waiting to run (tests, metrics). */
size_t loop_posts_pending(struct loop *l);

#endif
