/*
 * replay_stream.c - replays bytes already read before an inner stream's own.
 *
 * Readiness stays level-triggered (stream.h): while replayed bytes are left and the owner
 * wants to read, a deferred call reports READABLE even if the inner stream has nothing, since
 * those bytes are in no kernel buffer that epoll would see. One deferred call serves both
 * that wake-up and the free after close, so the free can never overtake a queued wake-up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "conn/replay_stream.h"

struct replay_stream {
    struct stream s;
    struct stream_ops ops; /* ours, without the zero-copy calls the inner stream lacks */
    struct stream *inner;
    struct loop *loop;
    struct loop_defer defer;
    unsigned char *buf;
    size_t off, len;
    bool want_rd, closed;
};

static size_t
left(const struct replay_stream *r)
{
    return r->len - r->off;
}

static void
drop_buf(struct replay_stream *r)
{
    free(r->buf);
    r->buf = NULL;
    r->off = r->len = 0;
}

static void
on_defer(void *arg)
{
    struct replay_stream *r = arg;

    if (r->closed) {
        free(r->buf);
        free(r);
        return;
    }
    if (r->want_rd && left(r) > 0 && r->s.on_event != NULL)
        r->s.on_event(r->s.arg, &r->s, STREAM_READABLE);
}

static void
kick(struct replay_stream *r)
{
    if (r->want_rd && left(r) > 0)
        loop_defer(r->loop, &r->defer, on_defer, r);
}

static void
on_inner(void *arg, struct stream *inner, unsigned events)
{
    struct replay_stream *r = arg;
    (void)inner;

    if (left(r) > 0 && r->want_rd)
        events |= STREAM_READABLE;
    if (events && r->s.on_event != NULL)
        r->s.on_event(r->s.arg, &r->s, events);
}

static ssize_t
rs_read(struct stream *s, void *p, size_t len)
{
    struct replay_stream *r = (struct replay_stream *)s;
    size_t n = left(r);

    if (n == 0)
        return stream_read(r->inner, p, len);
    if (len == 0)
        return -EAGAIN;
    if (n > len)
        n = len;
    memcpy(p, r->buf + r->off, n);
    r->off += n;
    if (left(r) == 0)
        drop_buf(r);
    else
        kick(r); /* a reader that took part of them hears of the rest */
    return (ssize_t)n;
}

static ssize_t
rs_peek(struct stream *s, const void **p)
{
    struct replay_stream *r = (struct replay_stream *)s;

    if (left(r) == 0)
        return r->inner->ops->peek(r->inner, p);
    *p = r->buf + r->off;
    return (ssize_t)left(r);
}

static void
rs_consume(struct stream *s, size_t n)
{
    struct replay_stream *r = (struct replay_stream *)s;

    if (left(r) == 0) {
        r->inner->ops->consume(r->inner, n);
        return;
    }
    /* A consume covers at most what the last peek returned: the replayed bytes. */
    r->off += n < left(r) ? n : left(r);
    if (left(r) == 0)
        drop_buf(r);
    else
        kick(r);
}

static ssize_t
rs_write(struct stream *s, const void *p, size_t len)
{
    return stream_write(((struct replay_stream *)s)->inner, p, len);
}

static ssize_t
rs_reserve(struct stream *s, size_t want, void **p)
{
    struct stream *in = ((struct replay_stream *)s)->inner;
    return in->ops->reserve(in, want, p);
}

static void
rs_commit(struct stream *s, size_t n)
{
    struct stream *in = ((struct replay_stream *)s)->inner;
    in->ops->commit(in, n);
}

static int
rs_shutdown_write(struct stream *s)
{
    return stream_shutdown_write(((struct replay_stream *)s)->inner);
}

static void
rs_want(struct stream *s, bool rd, bool wr)
{
    struct replay_stream *r = (struct replay_stream *)s;

    r->want_rd = rd;
    stream_want(r->inner, rd, wr);
    kick(r);
}

static int
rs_opened(struct stream *s)
{
    return stream_opened(((struct replay_stream *)s)->inner);
}

static void
rs_close(struct stream *s, bool abort)
{
    struct replay_stream *r = (struct replay_stream *)s;

    if (r->closed)
        return;
    r->closed = true;
    r->s.on_event = NULL;
    stream_close(r->inner, abort);
    r->inner = NULL;
    /* Freed at the end of the iteration (after a wake-up already queued, by the same call). */
    loop_defer(r->loop, &r->defer, on_defer, r);
}

static const struct stream_ops replay_ops = {
    .read = rs_read,
    .write = rs_write,
    .shutdown_write = rs_shutdown_write,
    .want = rs_want,
    .close = rs_close,
    .opened = rs_opened,
    .peek = rs_peek,
    .consume = rs_consume,
    .reserve = rs_reserve,
    .commit = rs_commit,
};

struct stream *
replay_stream_new(struct loop *l, struct stream *inner, const void *p, size_t n)
{
    struct replay_stream *r = xcalloc(1, sizeof(*r));

    r->ops = replay_ops;
    if (inner->ops->peek == NULL || inner->ops->consume == NULL) {
        r->ops.peek = NULL;
        r->ops.consume = NULL;
    }
    if (inner->ops->reserve == NULL || inner->ops->commit == NULL) {
        r->ops.reserve = NULL;
        r->ops.commit = NULL;
    }
    r->s.ops = &r->ops;
    r->inner = inner;
    r->loop = l;
    if (n > 0) {
        r->buf = xmalloc(n);
        memcpy(r->buf, p, n);
        r->len = n;
    }
    stream_set_handler(inner, on_inner, r);
    return &r->s;
}
