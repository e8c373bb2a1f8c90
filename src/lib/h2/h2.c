/*
 * h2.c - nghttp2 glue: transport I/O (TLS or cleartext), sessions and CONNECT
 * streams as struct stream.
 *
 * Session states:  HANDSHAKE -> RUNNING -> (GOAWAY) -> DEAD
 * Reads feed nghttp2_session_mem_recv(); frames to send are gathered from
 * nghttp2_session_mem_send() into |out| and written in large batches by a
 * deferred flush, so many stream writes in one iteration cost one syscall.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#define LOG_SCOPE "h2"
#include "base/base.h"
#include "buf/buf.h"
#include "h2/h2.h"
#include "log/log.h"
#include "tls/tls.h"

#define H2_OUT_BATCH  (64 * 1024)
#define H2_OUT_MAX    (H2_OUT_BATCH + H2_MAX_FRAME + 64)
#define H2_TX_MAX     (256 * 1024)
#define H2_READ_ROUNDS 16
#define H2_VALUE_MAX  4096

enum h2_state { H2_HANDSHAKE = 0, H2_RUNNING, H2_DEAD };

static const struct h2_session_cbs no_cbs;

struct h2_session {
    struct loop *loop;
    nghttp2_session *ng;
    SSL *ssl;
    int fd;
    bool server;
    enum h2_state state;
    int err;
    int refs;
    bool goaway_recv;
    bool goaway_sent;
    bool ping_outstanding;
    uint64_t ping_sent_ms;
    unsigned n_streams;
    struct buf out;
    struct loop_io io;
    struct loop_timer hs_timer;
    struct loop_timer ping_timer;
    struct loop_defer flush_defer;
    struct loop_defer teardown_defer;
    struct loop_defer free_defer;
    struct h2_stream *streams; /* every h2_stream not yet freed */
    const struct h2_session_cbs *cbs;
    void *arg;
};

struct h2_stream {
    struct stream s;           /* must be first */
    struct h2_session *sess;
    struct h2_stream *prev, *next;
    int32_t id;
    struct buf rx;             /* received, not yet read by the user */
    struct buf tx;             /* written by the user, not yet framed */
    bool remote_eof;           /* END_STREAM received */
    bool local_eof;            /* user shut down writing */
    bool deferred;             /* nghttp2 is waiting for tx data */
    bool h2_closed;            /* nghttp2 is done with this stream */
    bool released;             /* the user closed it */
    bool want_rd, want_wr;
    bool responded;            /* server: status sent; client: status received */
    bool response_pending;     /* client: status to deliver */
    bool request_pending;      /* server: request to deliver */
    int status;
    int err;
    uint32_t hdr_bytes;
    unsigned n_hdrs;
    char *method, *authority, *baggage, *forwarded, *traceparent;
    bool has_path;
    h2_response_fn *resp_cb;
    void *resp_arg;
    struct loop_defer dispatch_defer;
    struct loop_defer free_defer;
};

static void session_flush(void *arg);
static void session_fail(struct h2_session *s, int err);
static void stream_maybe_free(struct h2_stream *st);

/* ---- transport ---------------------------------------------------------- */

/* Returns >0 bytes, 0 on EOF, -EAGAIN, or another negative error. */
static ssize_t
xprt_read(struct h2_session *s, void *p, size_t len, bool *want_write)
{
    *want_write = false;
    if (s->ssl == NULL) {
        ssize_t n = read(s->fd, p, len);
        return n >= 0 ? n : -errno;
    }
    int n = SSL_read(s->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0)
        return n;
    switch (SSL_get_error(s->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno ? -errno : 0;
    default:
        tls_log_errors("TLS read");
        return -MESH_ETLS;
    }
}

static ssize_t
xprt_write(struct h2_session *s, const void *p, size_t len)
{
    if (s->ssl == NULL) {
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        return n >= 0 ? n : -errno;
    }
    int n = SSL_write(s->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0)
        return n;
    switch (SSL_get_error(s->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno ? -errno : -EPIPE;
    default:
        ERR_clear_error();
        return -MESH_ETLS;
    }
}

/* ---- stream dispatch ---------------------------------------------------- */

static unsigned
stream_ready_events(const struct h2_stream *st)
{
    unsigned ev = 0;
    bool failed = st->err != 0 || (st->h2_closed && !st->remote_eof);

    if (st->want_rd && (buf_len(&st->rx) > 0 || st->remote_eof || failed))
        ev |= STREAM_READABLE;
    if (st->want_wr && (buf_space(&st->tx) > 0 || failed))
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
        if (st->sess->cbs->on_request != NULL)
            st->sess->cbs->on_request(st->sess->arg, st->sess, st);
        return;
    }
    if (st->response_pending || (st->resp_cb != NULL && !st->responded && st->err)) {
        h2_response_fn *cb = st->resp_cb;
        int status = st->response_pending ? st->status : st->err;
        st->response_pending = false;
        st->responded = true;
        st->resp_cb = NULL;
        if (cb != NULL)
            cb(st->resp_arg, st, status);
        return;
    }
    unsigned ev = stream_ready_events(st);
    if (ev && st->s.on_event != NULL)
        st->s.on_event(st->s.arg, &st->s, ev);
}

static void
stream_kick(struct h2_stream *st)
{
    if (st->released)
        return;
    if (st->request_pending || st->response_pending || stream_ready_events(st) ||
        (st->resp_cb != NULL && !st->responded && st->err))
        loop_defer(st->sess->loop, &st->dispatch_defer, stream_dispatch, st);
}

static void
schedule_flush(struct h2_session *s)
{
    if (s->state == H2_RUNNING)
        loop_defer(s->loop, &s->flush_defer, session_flush, s);
}

/* ---- stream ops --------------------------------------------------------- */

static ssize_t
h2s_read(struct stream *x, void *p, size_t len)
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
    if (n > len)
        n = len;
    memcpy(p, buf_head(&st->rx), n);
    buf_consume(&st->rx, n);
    if (buf_len(&st->rx) == 0)
        buf_release_if_empty(&st->rx);
    if (!st->h2_closed && st->sess->state == H2_RUNNING) {
        nghttp2_session_consume(st->sess->ng, st->id, n);
        schedule_flush(st->sess);
    }
    return (ssize_t)n;
}

static ssize_t
h2s_write(struct stream *x, const void *p, size_t len)
{
    struct h2_stream *st = (struct h2_stream *)x;

    if (st->err)
        return st->err;
    if (st->h2_closed || st->local_eof || st->sess->state != H2_RUNNING)
        return -EPIPE;
    size_t n = buf_space(&st->tx);
    if (n == 0)
        return -EAGAIN;
    if (n > len)
        n = len;
    CHECK(buf_append(&st->tx, p, n) == 0);
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->sess->ng, st->id);
    }
    schedule_flush(st->sess);
    return (ssize_t)n;
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
    schedule_flush(st->sess);
    return 0;
}

static void
h2s_want(struct stream *x, bool rd, bool wr)
{
    struct h2_stream *st = (struct h2_stream *)x;

    st->want_rd = rd;
    st->want_wr = wr;
    stream_kick(st);
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
    if (!st->h2_closed && s->state == H2_RUNNING) {
        if (abort) {
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        } else if (!st->remote_eof) {
            /* We are done but the peer is not: stop it after what we queued (RFC 9113 8.1). */
            st->local_eof = true;
            nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        } else {
            /* Both ends finished: queued data and END_STREAM go out, then nghttp2 closes it. */
            st->local_eof = true;
            if (st->deferred) {
                st->deferred = false;
                nghttp2_session_resume_data(s->ng, st->id);
            }
        }
        schedule_flush(s);
    }
    stream_maybe_free(st);
}

static const struct stream_ops h2s_ops = {
    .read = h2s_read,
    .write = h2s_write,
    .shutdown_write = h2s_shutdown_write,
    .want = h2s_want,
    .close = h2s_close,
};

static struct h2_stream *
stream_new(struct h2_session *s, size_t rx_max)
{
    struct h2_stream *st = xcalloc(1, sizeof(*st));

    st->s.ops = &h2s_ops;
    st->sess = s;
    buf_init(&st->rx, rx_max);
    buf_init(&st->tx, H2_TX_MAX);
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->refs++;
    s->n_streams++;
    return st;
}

static void session_unref(struct h2_session *s);

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
    free(st);
    session_unref(s);
}

static void
stream_maybe_free(struct h2_stream *st)
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
static void
stream_h2_closed(struct h2_stream *st, int err)
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
    stream_kick(st);
    stream_maybe_free(st);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static ssize_t
on_data_read(nghttp2_session *ng, int32_t id, uint8_t *p, size_t len, uint32_t *flags,
             nghttp2_data_source *src, void *user)
{
    struct h2_stream *st = src->ptr;
    size_t n = buf_len(&st->tx);
    (void)ng;
    (void)id;
    (void)user;

    if (n > len)
        n = len;
    if (n > 0) {
        memcpy(p, buf_head(&st->tx), n);
        buf_consume(&st->tx, n);
        if (buf_len(&st->tx) == 0)
            buf_release_if_empty(&st->tx);
        stream_kick(st);
    }
    if (buf_len(&st->tx) == 0 && st->local_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static int
on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_session *s = user;

    if (!s->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *st = stream_new(s, H2_STREAM_WINDOW);
    st->id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static char *
dup_value(const uint8_t *v, size_t len)
{
    return xstrndup((const char *)v, len > H2_VALUE_MAX ? H2_VALUE_MAX : len);
}

static int
on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
          const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    struct h2_session *s = user;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    (void)flags;

    if (st == NULL)
        return 0;
    /* Count decoded sizes (RFC 9113 6.5.2 accounting) so HPACK cannot amplify past the cap. */
    st->hdr_bytes += (uint32_t)(namelen + valuelen + 32);
    uint32_t limit = s->server ? H2_SERVER_HEADER_LIST : H2_CLIENT_HEADER_LIST;
    if (st->hdr_bytes > limit || ++st->n_hdrs > H2_MAX_HEADERS)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
#define IS(lit) (namelen == sizeof(lit) - 1 && memcmp(name, lit, namelen) == 0)
    if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        if (IS(":status") && valuelen == 3)
            st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        return 0;
    }
    if (IS(":method") && st->method == NULL)
        st->method = dup_value(value, valuelen);
    else if (IS(":authority") && st->authority == NULL)
        st->authority = dup_value(value, valuelen);
    else if (IS(":path") || IS(":scheme") || IS(":protocol"))
        st->has_path = true;
    else if (IS("baggage") && st->baggage == NULL)
        st->baggage = dup_value(value, valuelen);
    else if (IS("forwarded") && st->forwarded == NULL)
        st->forwarded = dup_value(value, valuelen);
    else if (IS("traceparent") && st->traceparent == NULL)
        st->traceparent = dup_value(value, valuelen);
#undef IS
    return 0;
}

static int
on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_session *s = user;
    struct h2_stream *st = f->hd.stream_id ? nghttp2_session_get_stream_user_data(ng, f->hd.stream_id)
                                           : NULL;

    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (st == NULL)
            break;
        if (s->server && f->headers.cat == NGHTTP2_HCAT_REQUEST &&
            (f->hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
            st->request_pending = true;
            stream_kick(st);
        } else if (!s->server && f->headers.cat == NGHTTP2_HCAT_RESPONSE && !st->responded) {
            st->response_pending = true;
            stream_kick(st);
        }
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            st->remote_eof = true;
            stream_kick(st);
        }
        break;
    case NGHTTP2_DATA:
        if (st != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->remote_eof = true;
            stream_kick(st);
        }
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            s->ping_outstanding = false;
        break;
    case NGHTTP2_GOAWAY:
        s->goaway_recv = true;
        if (s->cbs->on_streams != NULL)
            s->cbs->on_streams(s->arg, s);
        break;
    default:
        break;
    }
    return 0;
}

static int
on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
              void *user)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    (void)flags;
    (void)user;

    if (st == NULL || st->released) {
        /* Nobody will read these: return the credit to the connection window now. */
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    /* Flow control bounds what the peer may send to the window we advertised. */
    if (buf_append(&st->rx, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    stream_kick(st);
    return 0;
}

static int
on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    (void)user;

    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    /* A reset after both ends finished is still a clean end for the tunnel. */
    int err = (code == NGHTTP2_NO_ERROR) ? 0 : -ECONNRESET;
    if (!st->remote_eof && err == 0)
        err = -ECONNRESET;
    stream_h2_closed(st, err);
    return 0;
}

/* ---- session I/O -------------------------------------------------------- */

static void
update_interest(struct h2_session *s, bool want_write)
{
    if (s->state == H2_DEAD)
        return;
    loop_io_set(s->loop, &s->io, EPOLLIN | (want_write ? EPOLLOUT : 0));
}

/* Writes |out|; returns 0 when empty, -EAGAIN when blocked, or an error. */
static int
drain_out(struct h2_session *s)
{
    while (buf_len(&s->out) > 0) {
        ssize_t n = xprt_write(s, buf_head(&s->out), buf_len(&s->out));
        if (n < 0)
            return (int)n;
        buf_consume(&s->out, (size_t)n);
    }
    buf_release_if_empty(&s->out);
    return 0;
}

static void
session_flush(void *arg)
{
    struct h2_session *s = arg;
    int rc;

    if (s->state != H2_RUNNING)
        return;
    for (;;) {
        rc = drain_out(s);
        if (rc == -EAGAIN) {
            update_interest(s, true);
            return;
        }
        if (rc < 0) {
            session_fail(s, rc);
            return;
        }
        while (buf_len(&s->out) < H2_OUT_BATCH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(s->ng, &p);
            if (n < 0) {
                session_fail(s, -MESH_EPROTO);
                return;
            }
            if (n == 0)
                break;
            CHECK(buf_append(&s->out, p, (size_t)n) == 0);
        }
        if (buf_len(&s->out) == 0)
            break;
    }
    update_interest(s, false);
    if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        session_fail(s, 0);
}

static void
on_ping_timer(void *arg)
{
    struct h2_session *s = arg;
    uint64_t now = loop_now_ms(s->loop);

    if (s->state != H2_RUNNING)
        return;
    if (s->ping_outstanding) {
        if (now - s->ping_sent_ms >= H2_PING_TIMEOUT_MS) {
            log_debug("no PING ack in %u ms, closing", H2_PING_TIMEOUT_MS);
            session_fail(s, -ETIMEDOUT);
            return;
        }
    } else {
        nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL);
        s->ping_outstanding = true;
        s->ping_sent_ms = now;
        schedule_flush(s);
    }
    loop_timer_start(s->loop, &s->ping_timer, H2_PING_INTERVAL_MS, on_ping_timer, s);
}

static void
session_read(struct h2_session *s)
{
    uint8_t b[16384 + 512];
    bool want_write = false;

    for (int i = 0; i < H2_READ_ROUNDS && s->state == H2_RUNNING; i++) {
        ssize_t n = xprt_read(s, b, sizeof(b), &want_write);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            session_fail(s, n == 0 ? 0 : (int)n);
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(s->ng, b, (size_t)n);
        if (rv < 0) {
            log_debug("HTTP/2 error from peer: %s", nghttp2_strerror((int)rv));
            session_fail(s, -MESH_EPROTO);
            return;
        }
    }
    if (s->state == H2_RUNNING) {
        session_flush(s);
        if (want_write)
            update_interest(s, true);
    }
}

static int
start_http2(struct h2_session *s)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    int rv;

    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, H2_CLIENT_MAX_STREAMS);
    if (s->server)
        rv = nghttp2_session_server_new2(&s->ng, cb, s, opt);
    else
        rv = nghttp2_session_client_new2(&s->ng, cb, s, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -ENOMEM;

    nghttp2_settings_entry iv[5];
    size_t n = 0;
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, H2_MAX_FRAME};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                       s->server ? H2_SERVER_HEADER_LIST : H2_CLIENT_HEADER_LIST};
    if (s->server)
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                           H2_SERVER_MAX_STREAMS};
    else
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, n) != 0 ||
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
        return -ENOMEM;
    s->state = H2_RUNNING;
    loop_timer_start(s->loop, &s->ping_timer, H2_PING_INTERVAL_MS, on_ping_timer, s);
    return 0;
}

static void
handshake(struct h2_session *s)
{
    int rc = SSL_do_handshake(s->ssl);

    if (rc == 1) {
        loop_timer_stop(s->loop, &s->hs_timer);
        if (!tls_alpn_is_h2(s->ssl)) {
            log_debug("peer did not negotiate ALPN h2");
            session_fail(s, -MESH_ETLS);
            return;
        }
        if (start_http2(s) < 0) {
            session_fail(s, -ENOMEM);
            return;
        }
        if (s->cbs->on_ready != NULL && s->cbs->on_ready(s->arg, s) < 0) {
            session_fail(s, -MESH_EDENIED);
            return;
        }
        session_flush(s);
        return;
    }
    switch (SSL_get_error(s->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        loop_io_set(s->loop, &s->io, EPOLLIN);
        return;
    case SSL_ERROR_WANT_WRITE:
        loop_io_set(s->loop, &s->io, EPOLLOUT);
        return;
    default:
        tls_log_errors("TLS handshake");
        session_fail(s, -MESH_ETLS);
        return;
    }
}

static void
on_io(void *arg, uint32_t events)
{
    struct h2_session *s = arg;

    if (s->state == H2_HANDSHAKE) {
        handshake(s);
        return;
    }
    if (s->state != H2_RUNNING)
        return;
    if (events & EPOLLOUT)
        session_flush(s);
    if (s->state == H2_RUNNING && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        session_read(s);
}

static void
on_handshake_timeout(void *arg)
{
    struct h2_session *s = arg;
    log_debug("TLS handshake timed out");
    session_fail(s, -ETIMEDOUT);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void
session_free(void *arg)
{
    struct h2_session *s = arg;
    buf_cleanup(&s->out);
    free(s);
}

static void
session_unref(struct h2_session *s)
{
    if (--s->refs == 0)
        loop_defer(s->loop, &s->free_defer, session_free, s);
}

static void
teardown(void *arg)
{
    struct h2_session *s = arg;
    struct h2_stream *st, *next;

    loop_io_stop(s->loop, &s->io);
    loop_timer_stop(s->loop, &s->hs_timer);
    loop_timer_stop(s->loop, &s->ping_timer);
    if (s->ssl != NULL) {
        /* Best effort close_notify; the socket is non-blocking so this never waits. */
        if (s->err == 0 && SSL_is_init_finished(s->ssl))
            SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    ERR_clear_error();
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    nghttp2_session_del(s->ng);
    s->ng = NULL;
    for (st = s->streams; st != NULL; st = next) {
        next = st->next;
        stream_h2_closed(st, -ECONNRESET);
    }
    if (s->cbs->on_closed != NULL)
        s->cbs->on_closed(s->arg, s, s->err);
    session_unref(s); /* the transport's own reference */
}

static void
session_fail(struct h2_session *s, int err)
{
    if (s->state == H2_DEAD)
        return;
    s->state = H2_DEAD;
    s->err = err;
    loop_defer(s->loop, &s->teardown_defer, teardown, s);
}

struct h2_session *
h2_session_new(struct loop *l, int fd, SSL *ssl, bool server, const struct h2_session_cbs *cbs,
               void *arg)
{
    struct h2_session *s = xcalloc(1, sizeof(*s));

    s->loop = l;
    s->fd = fd;
    s->ssl = ssl;
    s->server = server;
    s->cbs = cbs;
    s->arg = arg;
    s->refs = 2; /* the owner's and the transport's (dropped at teardown) */
    buf_init(&s->out, H2_OUT_MAX);
    if (loop_io_start(l, &s->io, fd, EPOLLIN | EPOLLOUT, on_io, s) < 0) {
        session_fail(s, -errno);
        return s;
    }
    if (ssl != NULL) {
        SSL_set_fd(ssl, fd);
        if (server)
            SSL_set_accept_state(ssl);
        else
            SSL_set_connect_state(ssl);
        loop_timer_start(l, &s->hs_timer, H2_HANDSHAKE_TIMEOUT_MS, on_handshake_timeout, s);
    } else if (start_http2(s) < 0) {
        session_fail(s, -ENOMEM);
    } else {
        schedule_flush(s);
    }
    return s;
}

void
h2_session_shutdown(struct h2_session *s)
{
    if (s->state == H2_HANDSHAKE) {
        session_fail(s, 0);
        return;
    }
    if (s->state != H2_RUNNING || s->goaway_sent)
        return;
    s->goaway_sent = true;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    schedule_flush(s);
}

void
h2_session_close(struct h2_session *s, int err)
{
    session_fail(s, err);
}

void
h2_session_release(struct h2_session *s)
{
    if (s == NULL)
        return;
    s->cbs = &no_cbs;
    session_unref(s);
}

SSL *
h2_session_ssl(const struct h2_session *s)
{
    return s->ssl;
}

bool
h2_session_is_ready(const struct h2_session *s)
{
    return s->state == H2_RUNNING;
}

bool
h2_session_is_closed(const struct h2_session *s)
{
    return s->state == H2_DEAD;
}

unsigned
h2_session_n_streams(const struct h2_session *s)
{
    return s->n_streams;
}

bool
h2_session_can_open(const struct h2_session *s)
{
    if (s->state != H2_RUNNING || s->goaway_recv || s->goaway_sent)
        return false;
    uint32_t peer_max =
        nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    uint32_t cap = peer_max < H2_CLIENT_MAX_STREAMS ? peer_max : H2_CLIENT_MAX_STREAMS;
    return s->n_streams < cap && nghttp2_session_get_next_stream_id(s->ng) < (1u << 30);
}

struct h2_stream *
h2_session_connect(struct h2_session *s, const char *authority, const struct h2_header *hdrs,
                   size_t n_hdrs, h2_response_fn *cb, void *arg)
{
    nghttp2_nv nva[8];
    size_t n = 0;

    if (s->state != H2_RUNNING || n_hdrs > ARRAY_LEN(nva) - 2)
        return NULL;
#define NV(k, v)                                                                                   \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }
    nva[n++] = NV(":method", "CONNECT");
    nva[n++] = NV(":authority", authority);
    for (size_t i = 0; i < n_hdrs; i++)
        nva[n++] = NV(hdrs[i].name, hdrs[i].value);

    struct h2_stream *st = stream_new(s, H2_STREAM_WINDOW);
    st->resp_cb = cb;
    st->resp_arg = arg;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_data_read};
    int32_t id = nghttp2_submit_request(s->ng, NULL, nva, n, &dp, st);
    if (id < 0) {
        st->h2_closed = true;
        s->n_streams--;
        st->released = true;
        stream_maybe_free(st);
        return NULL;
    }
    st->id = id;
    schedule_flush(s);
    return st;
}

int
h2_stream_respond(struct h2_stream *st, int status, const struct h2_header *hdrs, size_t n_hdrs,
                  bool end)
{
    struct h2_session *s = st->sess;
    nghttp2_nv nva[8];
    char code[8];
    size_t n = 0;

    if (st->h2_closed || s->state != H2_RUNNING || st->responded || n_hdrs > ARRAY_LEN(nva) - 1)
        return -EPIPE;
    snprintf(code, sizeof(code), "%03d", (status < 100 || status > 999) ? 500 : status);
    nva[n++] = NV(":status", code);
    for (size_t i = 0; i < n_hdrs; i++)
        nva[n++] = NV(hdrs[i].name, hdrs[i].value);
#undef NV
    st->responded = true;
    if (end)
        st->local_eof = true;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = on_data_read};
    int rv = nghttp2_submit_response(s->ng, st->id, nva, n, end ? NULL : &dp);
    schedule_flush(s);
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
h2_stream_header(const struct h2_stream *st, const char *name)
{
    if (strcmp(name, "baggage") == 0)
        return st->baggage;
    if (strcmp(name, "forwarded") == 0)
        return st->forwarded;
    if (strcmp(name, "traceparent") == 0)
        return st->traceparent;
    return NULL;
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
