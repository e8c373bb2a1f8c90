/* loop_internal.h - the parts of struct loop that loop.c and loop_post.c share. */
#ifndef MESH_LIB_LOOP_INTERNAL_H
#define MESH_LIB_LOOP_INTERNAL_H

#include <pthread.h>

#include "loop/loop.h"

struct loop_post_item;

struct loop {
    int epfd;
    bool stop;
    uint64_t now_ms;
    struct loop_timer **heap;
    size_t n_timers, cap_timers;
    struct loop_defer *defer_head, **defer_tail;
    struct loop_defer *turn_head, **turn_tail; /* loop_defer_turn(): the next turn's */
    uint64_t turn;
    /* loop_post.c: the only fields another thread touches, all under post_mu but the fd. */
    pthread_mutex_t post_mu;
    struct loop_post_item *post_head, **post_tail;
    size_t n_posts;
    int post_fd; /* eventfd, readable while posts wait */
    struct loop_io post_io;
};

/* loop_post.c: set up and tear down the post queue; run what is queued. */
int loop_post_init(struct loop *l);
void loop_post_fini(struct loop *l);
void loop_post_run(struct loop *l);

#endif
