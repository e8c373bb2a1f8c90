/*
 * h2_stream.c - HTTP/2 CONNECT streams as struct stream: buffers, manual
 * flow control, deferred wake-ups of the stream's user, and the request and
 * response API.
 *
 * A stream is freed when both its user released it (stream_close) and
 * nghttp2 is done with it; wake-ups and frees are deferred so no callback
 * runs inside nghttp2 and nothing is freed under its own handler.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "h2"
#include "base/base.h"
#include "h2/h2_internal.h"
#include "log/log.h"

static void h2s_close(struct stream *x, bool abort);

/* ---- stream dispatch ---------------------------------------------------- */

static unsigned
stream_ready_events(const struct h2_stream *st)
{
    unsigned ev = 0;
    bool failed = st->err != 0 || (st->h2_closed && !st->remote_eof);

    if (st->want_rd && (buf_len(&st->rx) > 0 || st->remote_eof || failed))
        ev |= STREAM_READABLE;
    /* A closed stream takes no more bytes: wake the writer so it sees the error. */
    if (st->want_wr && (buf_space(&st->tx) > 0 || failed || st->h2_closed))
        ev |= STREAM_WRITABLE;
    return ev;
}

static void
stream_dispatch(void *arg)
{
    struct h2_stream *st = arg;

    if (st->released)
        return;
    if (st->request_pending) {
        st->request_pending = false;
        st->delivered = true;
        if (st->sess->state == H2_RUNNING && st->sess->cbs->on_request != NULL) {
            st->sess->cbs->on_request(st->sess->arg, st->sess, st);
        } else {
            /* Nobody will take it: the session is gone or its owner left. */
            h2s_close(&st->s, true);
        }
        return;
    }
    if (st->response_pending || (st->resp_cb != NULL && !st->responded && st->err)) {
        h2_response_fn *cb = st->resp_cb;
        int status = st->response_pending ? st->status : st->err;
        st->response_pending = false;
        st->responded = true;
        if (status >= 0 && (status < 200 || status > 599))
            status = -MESH_EPROTO; /* not a final status: nghttp2 let it through, we do not */
        st->resp_cb = NULL;
        if (cb != NULL)
            cb(st->resp_arg, st, status);
        /* Body bytes (or the end) that came with the status: the reader hears of them too. */
        h2_stream_kick(st);
        return;
    }
    unsigned ev = stream_ready_events(st);
    if (ev && st->s.on_event != NULL)
        st->s.on_event(st->s.arg, &st->s, ev);
}

void
h2_stream_kick(struct h2_stream *st)
{
    if (st->released)
        return;
    if (st->request_pending || st->response_pending || stream_ready_events(st) ||
        (st->resp_cb != NULL && !st->responded && st->err))
        loop_defer(st->sess->loop, &st->dispatch_defer, stream_dispatch, st);
}

/* ---- stream ops --------------------------------------------------------- */

/*
 * Returns |n| consumed bytes to the peer's send windows. Once nghttp2 closed the
 * stream only the connection window is left to credit, and it must be: bytes
 * never credited shrink the window every other tunnel on the connection shares.
 */
static void
credit(struct h2_stream *st, size_t n)
{
    struct h2_session *s = st->sess;

    if (n == 0 || s->state != H2_RUNNING)
        return;
    if (st->h2_closed || nghttp2_session_consume(s->ng, st->id, n) != 0)
        nghttp2_session_consume_connection(s->ng, n);
    h2_schedule_flush(s);
}

static ssize_t
h2s_peek(struct stream *x, const void **p)
{
    struct h2_stream *st = (struct h2_stream *)x;
    size_t n = buf_len(&st->rx);

    if (n == 0) {
        if (st->remote_eof)
            return 0;
        if (st->err)
            return st->err;
        if (st->h2_closed)
            return -ECONNRESET;
        return -EAGAIN;
    }
    *p = buf_head(&st->rx);
    return (ssize_t)n;
}

/* The reader took |n| bytes: only now may the peer send that much more. */
static void
h2s_consume(struct stream *x, size_t n)
{
    struct h2_stream *st = (struct h2_stream *)x;

    buf_consume(&st->rx, n);
    if (buf_len(&st->rx) == 0)
        buf_release_if_empty(&st->rx);
    credit(st, n);
}

static ssize_t
h2s_read(struct stream *x, void *p, size_t len)
{
    const void *src = NULL;
    ssize_t n = h2s_peek(x, &src);

    if (n <= 0)
        return n;
    if ((size_t)n > len)
        n = (ssize_t)len;
    memcpy(p, src, (size_t)n);
    h2s_consume(x, (size_t)n);
    return n;
}

static ssize_t
h2s_reserve(struct stream *x, size_t want, void **p)
{
    struct h2_stream *st = (struct h2_stream *)x;
    size_t room;

    if (st->err)
        return st->err;
    if (st->h2_closed || st->local_eof || st->sess->state != H2_RUNNING)
        return -EPIPE;
    if (buf_space(&st->tx) == 0)
        return -EAGAIN;
    *p = buf_reserve(&st->tx, want, &room);
    return (ssize_t)room;
}

static void
h2s_commit(struct stream *x, size_t n)
{
    struct h2_stream *st = (struct h2_stream *)x;

    if (n == 0) {
        buf_release_if_empty(&st->tx); /* an idle tunnel holds no buffer */
        return;
    }
    buf_commit(&st->tx, n);
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->sess->ng, st->id);
    }
    h2_schedule_flush(st->sess);
}

static ssize_t
h2s_write(struct stream *x, const void *p, size_t len)
{
    void *dst = NULL;
    ssize_t room = h2s_reserve(x, len, &dst);

    if (room < 0)
        return room;
    if ((size_t)room > len)
        room = (ssize_t)len;
    memcpy(dst, p, (size_t)room);
    h2s_commit(x, (size_t)room);
    return room;
}

static int
h2s_shutdown_write(struct stream *x)
{
    struct h2_stream *st = (struct h2_stream *)x;

    if (st->h2_closed || st->sess->state != H2_RUNNING)
        return st->remote_eof && st->h2_closed ? 0 : -EPIPE;
    st->local_eof = true;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->sess->ng, st->id);
    }
    h2_schedule_flush(st->sess);
    return 0;
}

static void
h2s_want(struct stream *x, bool rd, bool wr)
{
    struct h2_stream *st = (struct h2_stream *)x;

    st->want_rd = rd;
    st->want_wr = wr;
    h2_stream_kick(st);
}

static void
h2s_close(struct stream *x, bool abort)
{
    struct h2_stream *st = (struct h2_stream *)x;
    struct h2_session *s = st->sess;

    if (st->released)
        return;
    st->released = true;
    st->s.on_event = NULL;
    st->resp_cb = NULL;
    /* Bytes nobody will read still count against the connection window: give them back. */
    credit(st, buf_len(&st->rx));
    buf_consume(&st->rx, buf_len(&st->rx));
    buf_release_if_empty(&st->rx);
    if (!st->h2_closed && s->state == H2_RUNNING) {
        if (abort) {
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        } else if (!st->remote_eof) {
            /*
             * We are done but the peer is not: stop it with RST_STREAM(NO_ERROR) once our
             * END_STREAM is on the wire (RFC 9113 8.1). Resetting earlier would make nghttp2
             * drop the queued response, and the peer would never see its status.
             */
            st->local_eof = true;
            if (st->end_sent || (s->server && !st->responded)) {
                nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
                                          st->responded ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
            } else {
                st->rst_after_end = true;
                if (st->deferred) {
                    st->deferred = false;
                    nghttp2_session_resume_data(s->ng, st->id);
                }
            }
        } else {
            /* Both ends finished: queued data and END_STREAM go out, then nghttp2 closes it. */
            st->local_eof = true;
            if (st->deferred) {
                st->deferred = false;
                nghttp2_session_resume_data(s->ng, st->id);
            }
        }
        h2_schedule_flush(s);
    }
    h2_stream_maybe_free(st);
}

static const struct stream_ops h2s_ops = {
    .read = h2s_read,
    .write = h2s_write,
    .shutdown_write = h2s_shutdown_write,
    .want = h2s_want,
    .close = h2s_close,
    .peek = h2s_peek,
    .consume = h2s_consume,
    .reserve = h2s_reserve,
    .commit = h2s_commit,
};

struct h2_stream *
h2_stream_new(struct h2_session *s, size_t rx_max)
{
    struct h2_stream *st = xcalloc(1, sizeof(*st));

    st->s.ops = &h2s_ops;
    st->sess = s;
    buf_init(&st->rx, rx_max);
    buf_init(&st->tx, H2_TX_MAX);
    buf_set_headroom(&st->tx, H2_FRAME_HEADER); /* room to prepend each DATA frame's header */
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->refs++;
    s->n_streams++;
    return st;
}


static void
stream_free(void *arg)
{
    struct h2_stream *st = arg;
    struct h2_session *s = st->sess;

    buf_cleanup(&st->rx);
    buf_cleanup(&st->tx);
    free(st->method);
    free(st->authority);
    free(st->baggage);
    free(st->forwarded);
    free(st->traceparent);
    free(st->path);
    h2_fields_cleanup(&st->fields);
    h2_fields_cleanup(&st->trailers);
    h2_fields_cleanup(&st->trailers_out);
    free(st);
    h2_session_unref(s);
}

void
h2_stream_maybe_free(struct h2_stream *st)
{
    struct h2_session *s = st->sess;

    if (!st->released || !st->h2_closed)
        return;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    /* Queued after any pending dispatch of this stream, so it runs last. */
    loop_defer(s->loop, &st->free_defer, stream_free, st);
}

/* nghttp2 is done with |st| (closed or session gone). */
void
h2_stream_h2_closed(struct h2_stream *st, int err)
{
    struct h2_session *s = st->sess;

    if (st->h2_closed)
        return;
    st->h2_closed = true;
    if (err && !st->err)
        st->err = err;
    s->n_streams--;
    if (s->cbs->on_streams != NULL && s->state == H2_RUNNING)
        s->cbs->on_streams(s->arg, s); /* must not free anything; see pool.c */
    if (s->server && !st->delivered) {
        /* Reset or broken before its request was complete: no user will ever release it. */
        st->request_pending = false;
        st->released = true;
    }
    h2_stream_kick(st);
    h2_stream_maybe_free(st);
}

ssize_t
h2_on_data_read(nghttp2_session *ng, int32_t id, uint8_t *p, size_t len, uint32_t *flags,
                nghttp2_data_source *src, void *user)
{
    struct h2_stream *st = src->ptr;
    size_t n = buf_len(&st->tx);
    (void)ng;
    (void)id;
    (void)p;
    (void)user;

    /* No copy here: h2_send_data() writes the payload straight from |tx|. */
    if (n > len)
        n = len;
    if (n > 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == buf_len(&st->tx) && st->local_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers_out.n > 0) {
            /* The trailers carry END_STREAM; nghttp2 sends them after this frame. */
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (h2_stream_submit_trailers(ng, st) != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

void
h2_stream_sent(struct h2_stream *st, size_t n)
{
    buf_consume(&st->tx, n);
    if (buf_len(&st->tx) == 0)
        buf_release_if_empty(&st->tx);
    h2_stream_kick(st);
}

struct h2_stream *
h2_session_connect(struct h2_session *s, const char *authority, const struct h2_header *hdrs,
                   size_t n_hdrs, h2_response_fn *cb, void *arg)
{
    nghttp2_nv nva[8];
    size_t n = 0;

    if (s->state != H2_RUNNING || n_hdrs > ARRAY_LEN(nva) - 2)
        return NULL;
    nva[n++] = H2_NV(":method", "CONNECT");
    nva[n++] = H2_NV(":authority", authority);
    for (size_t i = 0; i < n_hdrs; i++)
        nva[n++] = H2_NV(hdrs[i].name, hdrs[i].value);
    return h2_stream_submit(s, nva, n, cb, arg);
}

struct h2_stream *
h2_stream_submit(struct h2_session *s, const nghttp2_nv *nva, size_t n, h2_response_fn *cb,
                 void *arg)
{
    struct h2_stream *st = h2_stream_new(s, H2_STREAM_WINDOW);
    st->resp_cb = cb;
    st->resp_arg = arg;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = h2_on_data_read};
    int32_t id = nghttp2_submit_request(s->ng, NULL, nva, n, &dp, st);
    if (id < 0) {
        st->h2_closed = true;
        s->n_streams--;
        st->released = true;
        h2_stream_maybe_free(st);
        return NULL;
    }
    st->id = id;
    h2_schedule_flush(s);
    return st;
}

int
h2_stream_respond(struct h2_stream *st, int status, const struct h2_header *hdrs, size_t n_hdrs,
                  bool end)
{
    struct h2_session *s = st->sess;
    nghttp2_nv nva[1 + H2_RESPOND_MAX_HEADERS];
    char code[8];
    size_t n = 0;

    if (st->h2_closed || s->state != H2_RUNNING || st->responded || n_hdrs > ARRAY_LEN(nva) - 1)
        return -EPIPE;
    snprintf(code, sizeof(code), "%03d", (status < 100 || status > 999) ? 500 : status);
    nva[n++] = H2_NV(":status", code);
    for (size_t i = 0; i < n_hdrs; i++)
        nva[n++] = H2_NV(hdrs[i].name, hdrs[i].value);
    st->responded = true;
    if (end)
        st->local_eof = true;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = h2_on_data_read};
    int rv = nghttp2_submit_response(s->ng, st->id, nva, n, end ? NULL : &dp);
    h2_schedule_flush(s);
    return rv == 0 ? 0 : -MESH_EPROTO;
}

const char *
h2_stream_method(const struct h2_stream *st)
{
    return st->method;
}

const char *
h2_stream_authority(const struct h2_stream *st)
{
    return st->authority;
}

const char *
h2_stream_path(const struct h2_stream *st)
{
    return st->path;
}

const char *
h2_stream_header(const struct h2_stream *st, const char *name)
{
    if (st->keep_fields)
        return h2_fields_find(&st->fields, name);
    if (strcmp(name, "baggage") == 0)
        return st->baggage;
    if (strcmp(name, "forwarded") == 0)
        return st->forwarded;
    if (strcmp(name, "traceparent") == 0)
        return st->traceparent;
    return NULL;
}

int
h2_stream_error(const struct h2_stream *st)
{
    if (st->err != 0)
        return st->err;
    return st->h2_closed && !st->remote_eof ? -ECONNRESET : 0;
}

bool
h2_stream_has_path(const struct h2_stream *st)
{
    return st->has_path;
}

struct h2_session *
h2_stream_session(const struct h2_stream *st)
{
    return st->sess;
}

int32_t
h2_stream_id(const struct h2_stream *st)
{
    return st->id;
}

struct stream *
h2_stream_as_stream(struct h2_stream *st)
{
    return &st->s;
}
