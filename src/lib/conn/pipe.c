/*
 * pipe.c - bidirectional copy between two streams.
 *
 * Per direction:  src --read--> buf --write--> dst
 * A direction is "ended" once src said end-of-stream, buf drained and dst was
 * half-closed. The pipe finishes when both directions ended (clean close) or
 * on the first error (both streams reset). Work per wake-up is bounded so one
 * busy tunnel cannot starve the loop.
 */
#include <errno.h>
#include <stdlib.h>

#include "base/base.h"
#include "buf/buf.h"
#include "conn/pipe_internal.h"

#define PIPE_ROUNDS 16
#define PIPE_CHUNK_MIN (4 * 1024)
#define PIPE_CHUNK_MAX (256 * 1024)

static void pipe_update(struct pipe *p);

static bool
dir_ended(const struct dir *d)
{
    return d->dst_shut;
}

/*
 * Reads start small, so a quiet tunnel never holds a big buffer, and double
 * while they come back full (bulk transfers), like ztunnel's dynamic buffers.
 */
static void
adapt_chunk(struct dir *d, size_t offered, ssize_t got)
{
    if (got > 0 && (size_t)got == offered && d->chunk < PIPE_CHUNK_MAX)
        d->chunk *= 2;
    else if (got > 0 && (size_t)got < offered / 4 && d->chunk > PIPE_CHUNK_MIN)
        d->chunk /= 2;
}

/* A step moved bytes and the source is empty for now (a short socket read): stop here. */
#define STEP_DRAINED 2

/*
 * Zero-copy steps, used while the pipe's own buffer is empty: write straight
 * from a source that exposes its buffer (peek), or read straight into a
 * destination that exposes its buffer (reserve). Return 1 on progress,
 * STEP_DRAINED, 0 when blocked (|dst_blocked| says which way), or a negative
 * error.
 */
static int
step_peek(struct dir *d)
{
    const void *p = NULL;
    ssize_t r = d->src->ops->peek(d->src, &p);

    if (r == 0) {
        d->src_eof = true;
        return 1;
    }
    if (r < 0)
        return r == -EAGAIN ? 0 : (int)r;
    ssize_t w = stream_write(d->dst, p, (size_t)r);
    if (w > 0) {
        d->src->ops->consume(d->src, (size_t)w);
        d->bytes += (uint64_t)w;
        pipe_group_charge(d->p, (size_t)w);
        /* A socket that took part of it is full: the next write would return -EAGAIN. */
        if (w < r && stream_short_io_final(d->dst)) {
            d->dst_blocked = true;
            return 0;
        }
        return 1;
    }
    if (w == -EAGAIN) {
        d->dst_blocked = true;
        return 0;
    }
    return w < 0 ? (int)w : -EPIPE;
}

static int
step_reserve(struct dir *d)
{
    void *p = NULL;
    ssize_t room = d->dst->ops->reserve(d->dst, d->chunk, &p);

    if (room == -EAGAIN) {
        d->dst_blocked = true;
        return 0;
    }
    if (room < 0)
        return (int)room;
    if ((size_t)room > d->chunk)
        room = (ssize_t)d->chunk;
    ssize_t r = stream_read(d->src, p, (size_t)room);
    adapt_chunk(d, (size_t)room, r);
    /* Committing 0 lets the destination release space it lent for nothing. */
    d->dst->ops->commit(d->dst, r > 0 ? (size_t)r : 0);
    if (r > 0) {
        d->bytes += (uint64_t)r;
        pipe_group_charge(d->p, (size_t)r);
        return r < room && stream_short_io_final(d->src) ? STEP_DRAINED : 1;
    }
    if (r == 0) {
        d->src_eof = true;
        return 1;
    }
    return r == -EAGAIN ? 0 : (int)r;
}

/* Half-closes the destination once the source ended and everything was written. */
static int
shut_if_drained(struct dir *d)
{
    if (buf_len(&d->buf) == 0 && d->src_eof && !d->dst_shut) {
        int rc = stream_shutdown_write(d->dst);
        if (rc < 0 && rc != -ENOTCONN)
            return rc;
        d->dst_shut = true;
    }
    return 0;
}

/* Moves bytes in one direction until blocked; returns 0 or a negative error. */
static int
pump(struct dir *d)
{
    bool drained = false; /* a short read emptied the source: no read until the next event */

    d->dst_blocked = false;
    for (int round = 0; round < PIPE_ROUNDS; round++) {
        bool progress = false;
        if (buf_len(&d->buf) > 0 && !d->dst_blocked) {
            size_t len = buf_len(&d->buf);
            ssize_t w = stream_write(d->dst, buf_head(&d->buf), len);
            if (w > 0) {
                buf_consume(&d->buf, (size_t)w);
                d->bytes += (uint64_t)w;
                progress = true;
                /* A socket that took part of it is full: the next write would fail. */
                if ((size_t)w < len && stream_short_io_final(d->dst))
                    d->dst_blocked = true;
            } else if (w == -EAGAIN) {
                d->dst_blocked = true;
            } else {
                return w < 0 ? (int)w : -EPIPE;
            }
        }
        int rc = shut_if_drained(d);
        if (rc < 0)
            return rc;
        if (drained) {
            if (buf_len(&d->buf) == 0)
                buf_release_if_empty(&d->buf);
            return 0;
        }
        if (!d->src_eof && pipe_group_spent(d->p)) {
            pipe_group_park(d->p); /* reading waits for a later turn; writing goes on */
            return 0;
        }
        if (!d->src_eof && buf_len(&d->buf) == 0 &&
            (d->src->ops->peek != NULL || d->dst->ops->reserve != NULL)) {
            rc = d->src->ops->peek != NULL ? step_peek(d) : step_reserve(d);
            if (rc < 0)
                return rc;
            if (rc == 1)
                continue;
            return 0;
        }
        if (!d->src_eof && buf_space(&d->buf) > 0) {
            size_t room;
            char *w = buf_reserve(&d->buf, d->chunk, &room);
            if (room > d->chunk)
                room = d->chunk;
            ssize_t r = stream_read(d->src, w, room);
            adapt_chunk(d, room, r);
            if (r > 0) {
                buf_commit(&d->buf, (size_t)r);
                pipe_group_charge(d->p, (size_t)r);
                progress = true;
                drained = (size_t)r < room && stream_short_io_final(d->src);
            } else if (r == 0) {
                d->src_eof = true;
                progress = true;
            } else if (r != -EAGAIN) {
                return (int)r;
            }
        }
        if (buf_len(&d->buf) == 0)
            buf_release_if_empty(&d->buf);
        if (!progress)
            return 0;
    }
    /*
     * Out of rounds: an end of stream read in the last one is passed on now, as no event
     * would bring us back for it (the source is no longer read, nothing waits to be written).
     */
    return shut_if_drained(d);
}

static void
on_finish(void *arg)
{
    struct pipe *p = arg;
    struct pipe_result res = {.a_to_b = p->d[0].bytes, .b_to_a = p->d[1].bytes, .err = p->err};

    p->done(p->arg, &res);
    buf_cleanup(&p->d[0].buf);
    buf_cleanup(&p->d[1].buf);
    pipe_set_group(p, NULL);
    free(p);
}

static void
finish(struct pipe *p, int err)
{
    if (p->finished)
        return;
    p->finished = true;
    p->err = err;
    pipe_group_leave(p);
    stream_close(p->a, err != 0);
    stream_close(p->b, err != 0);
    loop_defer(p->loop, &p->finish_defer, on_finish, p);
}

static void
on_event(void *arg, struct stream *s, unsigned events)
{
    struct pipe *p = arg;
    int rc = 0;

    if (p->finished)
        return;
    /* Reading from s feeds the direction whose src is s; writing drains the other. */
    struct dir *rd = s == p->a ? &p->d[0] : &p->d[1];
    struct dir *wr = s == p->a ? &p->d[1] : &p->d[0];
    if (events & STREAM_WRITABLE)
        rc = pump(wr);
    if (rc == 0 && (events & STREAM_READABLE))
        rc = pump(rd);
    /*
     * Reading |s| may have let it take more (a TLS stream that sent what it owed): retry what
     * waits to be written to it. Only that: reading the other source with nothing queued would
     * cost a syscall returning -EAGAIN per event (its own events report its input).
     */
    if (rc == 0 && (events & STREAM_READABLE) && (buf_len(&wr->buf) > 0 || wr->dst_blocked))
        rc = pump(wr);
    if (rc < 0) {
        finish(p, rc);
        return;
    }
    pipe_update(p);
}

/* Read from |d|'s source only when the bytes have somewhere to go (and it is our turn). */
static bool
want_read(const struct dir *d)
{
    if (d->src_eof || d->p->parked)
        return false;
    if (d->dst_blocked && buf_len(&d->buf) == 0 &&
        (d->src->ops->peek != NULL || d->dst->ops->reserve != NULL))
        return false;
    return buf_space(&d->buf) > 0;
}

/* Recomputes what each stream should wake us for, and finishes when done. */
static void
pipe_update(struct pipe *p)
{
    if (dir_ended(&p->d[0]) && dir_ended(&p->d[1])) {
        finish(p, 0);
        return;
    }
    bool a_rd = want_read(&p->d[0]);
    bool b_rd = want_read(&p->d[1]);
    bool b_wr = buf_len(&p->d[0].buf) > 0 || p->d[0].dst_blocked;
    bool a_wr = buf_len(&p->d[1].buf) > 0 || p->d[1].dst_blocked;
    stream_want(p->a, a_rd, a_wr);
    stream_want(p->b, b_rd, b_wr);
}

struct pipe *
pipe_start(struct loop *l, struct stream *a, struct stream *b, size_t buf_max, pipe_done_fn *done,
           void *arg)
{
    struct pipe *p = xcalloc(1, sizeof(*p));

    p->loop = l;
    p->a = a;
    p->b = b;
    p->done = done;
    p->arg = arg;
    p->d[0].src = a;
    p->d[0].dst = b;
    p->d[1].src = b;
    p->d[1].dst = a;
    p->d[0].p = p->d[1].p = p;
    buf_init(&p->d[0].buf, buf_max);
    buf_init(&p->d[1].buf, buf_max);
    p->d[0].chunk = p->d[1].chunk = PIPE_CHUNK_MIN;
    stream_set_handler(a, on_event, p);
    stream_set_handler(b, on_event, p);
    pipe_update(p);
    return p;
}

void
pipe_kick(struct pipe *p)
{
    int rc = 0;

    if (p->finished)
        return;
    rc = pump(&p->d[0]);
    if (rc == 0)
        rc = pump(&p->d[1]);
    if (rc < 0) {
        finish(p, rc);
        return;
    }
    pipe_update(p);
}

void
pipe_abort(struct pipe *p, int err)
{
    finish(p, err ? err : -ECONNABORTED);
}

void
pipe_counts(const struct pipe *p, uint64_t *a_to_b, uint64_t *b_to_a)
{
    *a_to_b = p->d[0].bytes;
    *b_to_a = p->d[1].bytes;
}
