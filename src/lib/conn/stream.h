/*
 * stream.h - a byte stream endpoint: a TCP socket, an HTTP/2 CONNECT stream,
 * or TLS over either of them (tls_stream.h).
 *
 * The pipe and the HTTP/2 session move bytes over streams without knowing
 * which kind each is. Readiness is reported through |on_event|; a stream
 * reports only what its owner asked for with want(). Reads and writes never
 * block:
 *   read:  >0 bytes, 0 end of stream, -EAGAIN nothing yet, other <0 error
 *   write: >0 bytes accepted (maybe fewer than offered), -EAGAIN full, <0 error
 * Readiness is level-triggered: a stream that holds input its owner has not
 * read yet (in its own buffers rather than the kernel's) reports READABLE
 * again when want() asks for reads, so an owner may stop reading at any point
 * for fairness. A stream that batches output sends it by the end of the loop
 * iteration without being asked.
 *
 * Some streams have a setup phase before they carry bytes (a TLS handshake):
 * opened() returns 0 during it; when it ends the stream reports STREAM_OPEN
 * once, and opened() then returns 1, or the error that ended it.
 */
#ifndef MESH_LIB_STREAM_H
#define MESH_LIB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum stream_event {
    STREAM_READABLE = 1,
    STREAM_WRITABLE = 2,
    STREAM_OPEN = 4, /* the setup phase ended (see opened()) */
};

struct stream;
typedef void stream_event_fn(void *arg, struct stream *s, unsigned events);

struct stream_ops {
    ssize_t (*read)(struct stream *s, void *p, size_t len);
    ssize_t (*write)(struct stream *s, const void *p, size_t len);
    /* Sends end-of-stream after what was written (FIN or END_STREAM). */
    int (*shutdown_write)(struct stream *s);
    void (*want)(struct stream *s, bool rd, bool wr);
    /* Releases the stream; |abort| resets it (RST) instead of closing cleanly. */
    void (*close)(struct stream *s, bool abort);
    /* Optional (absent: always open): 1 open, 0 still setting up, <0 setup failed. */
    int (*opened)(struct stream *s);

    /*
     * Optional zero-copy access, used by the pipe when present:
     * peek:    points |*p| at buffered input; returns its length like read()
     *          (>0, 0 end of stream, -EAGAIN, <0 error); consume() takes |n| of it.
     * reserve: points |*p| at free output space, about |want| bytes; returns
     *          its size, -EAGAIN when full, or <0; commit() queues |n| bytes
     *          written there (0: nothing was, the space may be released).
     */
    ssize_t (*peek)(struct stream *s, const void **p);
    void (*consume)(struct stream *s, size_t n);
    ssize_t (*reserve)(struct stream *s, size_t want, void **p);
    void (*commit)(struct stream *s, size_t n);

    /*
     * A read that returns fewer bytes than asked took everything buffered, and a write that
     * takes fewer than offered filled the buffer (a socket: both hold until the next
     * readiness event). Callers may then stop instead of paying for a read that returns
     * -EAGAIN (one syscall per wake-up, half of a small request's reads) or a write that
     * does. Readiness stays level-triggered, so stopping early loses nothing.
     */
    bool short_io_final;
};

struct stream {
    const struct stream_ops *ops;
    stream_event_fn *on_event;
    void *arg;
};

static inline void
stream_set_handler(struct stream *s, stream_event_fn *cb, void *arg)
{
    s->on_event = cb;
    s->arg = arg;
}

static inline ssize_t
stream_read(struct stream *s, void *p, size_t len)
{
    return s->ops->read(s, p, len);
}

static inline ssize_t
stream_write(struct stream *s, const void *p, size_t len)
{
    return s->ops->write(s, p, len);
}

static inline int
stream_shutdown_write(struct stream *s)
{
    return s->ops->shutdown_write(s);
}

static inline void
stream_want(struct stream *s, bool rd, bool wr)
{
    s->ops->want(s, rd, wr);
}

static inline void
stream_close(struct stream *s, bool abort)
{
    s->ops->close(s, abort);
}

static inline bool
stream_short_io_final(const struct stream *s)
{
    return s->ops->short_io_final;
}

static inline int
stream_opened(struct stream *s)
{
    return s->ops->opened != NULL ? s->ops->opened(s) : 1;
}

#endif
