/* pipe_internal.h - what pipe.c and pipe_group.c share. */
#ifndef MESH_LIB_PIPE_INTERNAL_H
#define MESH_LIB_PIPE_INTERNAL_H

#include <stdbool.h>

#include "buf/buf.h"
#include "conn/pipe.h"

struct pipe;

struct dir {
    struct pipe *p;
    struct stream *src, *dst;
    struct buf buf;
    uint64_t bytes;
    bool src_eof;
    bool dst_shut;
    bool dst_blocked; /* the destination refused bytes: wait for it to be writable */
    size_t chunk;     /* how much to read at once: grows while reads fill it */
};

struct pipe {
    struct loop *loop;
    struct dir d[2]; /* d[0]: a -> b, d[1]: b -> a */
    struct stream *a, *b;
    pipe_done_fn *done;
    void *arg;
    int err;
    bool finished;
    struct loop_defer finish_defer;
    /* pipe_group.c */
    struct pipe_group *group;
    struct pipe *gprev, *gnext; /* in the group's list of pipes waiting for a turn */
    bool parked;
};

/* pipe_group.c */
/* True when |p|'s group spent this turn's budget (|p| may not read now). */
bool pipe_group_spent(struct pipe *p);
/* |p| read |n| bytes. */
void pipe_group_charge(struct pipe *p, size_t n);
/* |p| waits for a later turn (stops reading until pipe_group resumes it with pipe_kick()). */
void pipe_group_park(struct pipe *p);
/* |p| leaves its group (finished). */
void pipe_group_leave(struct pipe *p);

/* pipe.c: moves what |p| can now, as if both streams were ready, then updates interest. */
void pipe_kick(struct pipe *p);

#endif
