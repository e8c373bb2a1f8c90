/*
 * pipe.h - copies bytes both ways between two streams until both directions
 * have ended, with back-pressure and half-close.
 *
 * Each direction has one buffer of at most |buf_max| bytes, allocated while
 * bytes are in flight and released when idle. A full buffer stops reading
 * from its source (back-pressure); end-of-stream from one side is forwarded
 * as a half-close to the other once the buffer has drained.
 */
#ifndef MESH_LIB_PIPE_H
#define MESH_LIB_PIPE_H

#include <stdint.h>

#include "conn/stream.h"
#include "loop/loop.h"

#define PIPE_BUF_DEFAULT (256 * 1024)

struct pipe;

/* Final accounting handed to the done callback. */
struct pipe_result {
    uint64_t a_to_b; /* bytes read from a and written to b */
    uint64_t b_to_a;
    int err;         /* 0 on clean end, else the first error (-errno or -MESH_E*) */
};

/* Called once when the pipe has finished; the streams are already closed. */
typedef void pipe_done_fn(void *arg, const struct pipe_result *res);

/* Takes ownership of |a| and |b| and starts copying. */
struct pipe *pipe_start(struct loop *l, struct stream *a, struct stream *b, size_t buf_max,
                        pipe_done_fn *done, void *arg);
/* Resets both streams and finishes with |err|; the done callback runs (deferred). */
void pipe_abort(struct pipe *p, int err);
/* Bytes moved so far. */
void pipe_counts(const struct pipe *p, uint64_t *a_to_b, uint64_t *b_to_a);

/*
 * A group of pipes that share one budget per loop turn (ztunnel: one pod's connections):
 * together they read at most |quantum| bytes per turn (loop_turn()), each read counting a
 * few KB more than its bytes (what its work costs); a pipe that finds the
 * budget spent stops reading and is resumed at a later turn, in the order the group's pipes
 * stopped (pipe_group.c). So a pod with many busy connections gets one pod's share of each
 * turn, and every other pod's connections are served within a turn of bounded length.
 * Reference-counted: each member pipe holds one.
 */
struct pipe_group;
struct pipe_group *pipe_group_new(struct loop *l, size_t quantum);
void pipe_group_ref(struct pipe_group *g);
void pipe_group_unref(struct pipe_group *g);
/* Bytes the group's pipes read so far, and how many times one waited for a later turn. */
void pipe_group_counts(const struct pipe_group *g, uint64_t *bytes, uint64_t *yields);
/* Makes |p| a member of |g| (NULL: none); takes a reference. Call before |p| moves bytes. */
void pipe_set_group(struct pipe *p, struct pipe_group *g);

#endif
