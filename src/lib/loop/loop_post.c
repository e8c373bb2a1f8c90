/*
 * loop_post.c - calls from other threads: a mutex-guarded queue and an eventfd.
 *
 * The poster appends under the mutex and writes the eventfd only when the
 * queue was empty, so a burst of posts costs one wake-up. The loop's thread
 * takes the whole queue at once and runs it outside the mutex, so a call may
 * post again (to this loop or another) without deadlock.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/base.h"
#include "loop/loop_internal.h"

struct loop_post_item {
    struct loop_post_item *next;
    loop_post_fn *fn;
    void *arg;
};

static void
on_post(void *arg, uint32_t events)
{
    (void)events;
    loop_post_run(arg);
}

int
loop_post_init(struct loop *l)
{
    pthread_mutex_init(&l->post_mu, NULL);
    l->post_tail = &l->post_head;
    l->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->post_fd < 0)
        return -errno;
    int rc = loop_io_start(l, &l->post_io, l->post_fd, EPOLLIN, on_post, l);
    if (rc < 0) {
        close(l->post_fd);
        return rc;
    }
    return 0;
}

void
loop_post_fini(struct loop *l)
{
    /* A loop_call() waiter must not wait forever; a call may post again. */
    while (loop_posts_pending(l) > 0)
        loop_post_run(l);
    loop_io_stop(l, &l->post_io);
    close(l->post_fd);
    pthread_mutex_destroy(&l->post_mu);
}

void
loop_post_run(struct loop *l)
{
    uint64_t v;

    pthread_mutex_lock(&l->post_mu);
    struct loop_post_item *it = l->post_head;
    l->post_head = NULL;
    l->post_tail = &l->post_head;
    l->n_posts = 0;
    /* Read under the mutex: a post after this sees an empty queue and writes again. */
    ssize_t r = read(l->post_fd, &v, sizeof(v));
    (void)r;
    pthread_mutex_unlock(&l->post_mu);
    while (it != NULL) {
        struct loop_post_item *next = it->next;
        it->fn(it->arg);
        free(it);
        it = next;
    }
}

void
loop_post(struct loop *l, loop_post_fn *fn, void *arg)
{
    struct loop_post_item *it = xmalloc(sizeof(*it));
    uint64_t one = 1;
    bool wake;

    it->next = NULL;
    it->fn = fn;
    it->arg = arg;
    pthread_mutex_lock(&l->post_mu);
    wake = l->post_head == NULL;
    *l->post_tail = it;
    l->post_tail = &it->next;
    l->n_posts++;
    if (wake) {
        /* An eventfd write only fails at a counter of 2^64 - 2, which one write per empty
         * queue never reaches. */
        ssize_t w = write(l->post_fd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_unlock(&l->post_mu);
}

size_t
loop_posts_pending(struct loop *l)
{
    pthread_mutex_lock(&l->post_mu);
    size_t n = l->n_posts;
    pthread_mutex_unlock(&l->post_mu);
    return n;
}

struct call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    loop_post_fn *fn;
    void *arg;
};

static void
run_call(void *arg)
{
    struct call *c = arg;

    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

void
loop_call(struct loop *l, loop_post_fn *fn, void *arg)
{
    struct call c = {.fn = fn, .arg = arg};

    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    loop_post(l, run_call, &c);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
}
