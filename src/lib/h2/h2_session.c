/*
 * h2_session.c - an HTTP/2 connection driven by the loop: transport I/O over
 * a struct stream (TCP, TLS, or a CONNECT stream of another session: this file
 * cannot tell), the nghttp2 session and its callbacks, PING liveness, and the
 * session lifecycle.
 *
 * States:  HANDSHAKE (the transport's setup, e.g. TLS) -> RUNNING -> (GOAWAY) -> DEAD
 * Reads feed nghttp2_session_mem_recv(); frames to send are gathered from
 * nghttp2_session_mem_send() into |out| and written in large batches by a
 * deferred flush, so many stream writes in one iteration cost one syscall
 * (a TLS transport batches its records the same way).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "h2"
#include "base/base.h"
#include "h2/h2_internal.h"
#include "log/log.h"

static const struct h2_session_cbs no_cbs;

static void session_flush(void *arg);
static void session_read(struct h2_session *s);
static void session_fail(struct h2_session *s, int err);

void
h2_schedule_flush(struct h2_session *s)
{
    if (s->state == H2_RUNNING)
        loop_defer(s->loop, &s->flush_defer, session_flush, s);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

/*
 * RFC 9113 5.1.1, which nghttp2 leaves to us for ids below the highest one
 * (see h2_ids.c): GOAWAY PROTOCOL_ERROR, then the connection closes.
 */
/*
 * RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes any stream's send window
 * past 2^31-1 is a connection error FLOW_CONTROL_ERROR. nghttp2 resets only the streams
 * concerned, so the largest window before the frame is noted here and checked once it is
 * applied (settings_applied). At most every open stream per SETTINGS frame.
 */
static void
settings_begin(struct h2_session *s)
{
    s->settings_initial =
        nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    s->settings_max_window = -1;
    for (struct h2_stream *st = s->streams; st != NULL; st = st->next) {
        if (st->h2_closed || st->id <= 0)
            continue;
        int32_t w = nghttp2_session_get_stream_remote_window_size(s->ng, st->id);
        if (w > s->settings_max_window)
            s->settings_max_window = w;
    }
}

static int
settings_applied(struct h2_session *s)
{
    int64_t now = nghttp2_session_get_remote_settings(s->ng, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE);
    if (s->settings_max_window < 0 ||
        s->settings_max_window + (now - s->settings_initial) <= NGHTTP2_MAX_WINDOW_SIZE)
        return 0;
    log_debug("SETTINGS_INITIAL_WINDOW_SIZE %lld takes a stream window past 2^31-1",
              (long long)now);
    s->settings_max_window = -1;
    if (nghttp2_session_terminate_session(s->ng, NGHTTP2_FLOW_CONTROL_ERROR) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int
on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct h2_session *s = user;

    if (hd->type == NGHTTP2_SETTINGS && !(hd->flags & NGHTTP2_FLAG_ACK) && hd->stream_id == 0) {
        settings_begin(s);
        return 0;
    }
    if (!s->server || hd->type != NGHTTP2_HEADERS || s->proto_error ||
        !h2_ids_bad_new_stream(s, (uint32_t)hd->stream_id))
        return 0;
    log_debug("HEADERS on stream %d, an id the client skipped: PROTOCOL_ERROR", hd->stream_id);
    s->proto_error = true;
    if (nghttp2_session_terminate_session(ng, NGHTTP2_PROTOCOL_ERROR) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int
on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_session *s = user;

    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (!s->server) {
        /* A header block after the final response is trailers, with caps of its own. */
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st != NULL && st->keep_fields && st->final_seen) {
            st->in_trailers = true;
            st->hdr_bytes = 0;
            st->n_hdrs = 0;
        }
        return 0;
    }
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        /* Request trailers (nghttp2 checked: END_STREAM, no pseudo-headers): kept for a
         * request with a :path, under the same caps as a head, counted afresh. */
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st != NULL && st->keep_fields && f->headers.cat == NGHTTP2_HCAT_HEADERS) {
            st->in_trailers = true;
            st->hdr_bytes = 0;
            st->n_hdrs = 0;
        }
        return 0;
    }
    struct h2_stream *st = h2_stream_new(s, H2_STREAM_WINDOW);
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
    if (!s->server) {
        if (st->in_trailers)
            h2_fields_add(&st->trailers, name, namelen, value, valuelen);
        else if (IS(":status")) {
            st->status = -1;
            if (valuelen == 3 && value[0] >= '1' && value[0] <= '9' && value[1] >= '0' &&
                value[1] <= '9' && value[2] >= '0' && value[2] <= '9')
                st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        } else if (st->keep_fields && namelen > 0 && name[0] != ':')
            h2_fields_add(&st->fields, name, namelen, value, valuelen);
        return 0;
    }
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
        if (st->in_trailers)
            h2_fields_add(&st->trailers, name, namelen, value, valuelen);
        return 0;
    }
    if (IS(":method") && st->method == NULL)
        st->method = dup_value(value, valuelen);
    else if (IS(":authority") && st->authority == NULL)
        st->authority = dup_value(value, valuelen);
    else if (IS(":path") || IS(":scheme") || IS(":protocol")) {
        /* Pseudo-headers come first (nghttp2 checks), so this is known before any header. */
        st->has_path = true;
        st->keep_fields = true;
        if (IS(":path") && st->path == NULL)
            st->path = dup_value(value, valuelen);
    } else if (st->keep_fields && namelen > 0 && name[0] != ':')
        h2_fields_add(&st->fields, name, namelen, value, valuelen);
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
            h2_stream_kick(st);
        } else if (!s->server && !st->responded && !st->response_pending &&
                   (f->headers.cat == NGHTTP2_HCAT_RESPONSE ||
                    f->headers.cat == NGHTTP2_HCAT_HEADERS)) {
            if (st->status >= 100 && st->status < 200) {
                st->status = 0; /* interim (1xx): the final status follows */
                h2_fields_clear(&st->fields);
            } else {
                st->final_seen = true;
                st->response_pending = true;
                h2_stream_kick(st);
            }
        }
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            st->remote_eof = true;
            h2_stream_kick(st);
        }
        break;
    case NGHTTP2_DATA:
        if (st != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->remote_eof = true;
            h2_stream_kick(st);
        }
        break;
    case NGHTTP2_PING:
        if (f->hd.flags & NGHTTP2_FLAG_ACK)
            s->ping_outstanding = false;
        break;
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            return settings_applied(s);
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

/*
 * DATA payloads of 16384 - 9 bytes: frame header plus payload fill exactly one
 * TLS record, instead of a full record followed by a 9-byte one.
 */
static ssize_t
on_data_length(nghttp2_session *ng, uint8_t type, int32_t id, int32_t conn_window,
               int32_t stream_window, uint32_t max_frame, void *user)
{
    (void)ng;
    (void)type;
    (void)id;
    (void)conn_window;
    (void)stream_window;
    (void)user;
    return max_frame < H2_RECORD_PAYLOAD ? (ssize_t)max_frame : H2_RECORD_PAYLOAD;
}

static int
on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)user;
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL)
        return 0;
    st->end_sent = true;
    if (st->rst_after_end && !st->h2_closed)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
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
    /*
     * Flow control bounds what the peer may send to the window we advertised, which is the
     * buffer's size. More means the peer broke it: nghttp2 has queued RST_STREAM
     * FLOW_CONTROL_ERROR (RFC 9113 6.9.1) and still hands us the bytes. They are dropped and
     * given back to the connection window; failing the session here would close the whole
     * connection without a word (no RST_STREAM, no GOAWAY).
     */
    if (buf_append(&st->rx, data, len) < 0) {
        log_debug("stream %d: DATA past the window we advertised, dropped", id);
        nghttp2_session_consume_connection(ng, len);
        return 0;
    }
    h2_stream_kick(st);
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
    h2_stream_h2_closed(st, err);
    return 0;
}

/* ---- session I/O -------------------------------------------------------- */

static void
update_interest(struct h2_session *s, bool want_write)
{
    if (s->state == H2_DEAD)
        return;
    stream_want(s->xprt, true, want_write);
}

/*
 * Hands |len| bytes to the transport (a TLS stream encrypts them and sends its
 * records in batches). Stores how much was taken in |*done|. Returns 0 when
 * all was taken, -EAGAIN when blocked, or an error.
 */
static int
write_some(struct h2_session *s, const uint8_t *p, size_t len, size_t *done)
{
    *done = 0;
    while (*done < len) {
        ssize_t n = stream_write(s->xprt, p + *done, len - *done);
        if (n < 0)
            return (int)n;
        *done += (size_t)n;
    }
    return 0;
}

/* Hands |out| to the transport; 0 when empty, -EAGAIN when blocked, or an error. */
static int
drain_out(struct h2_session *s)
{
    size_t done;
    int rc = write_some(s, (const uint8_t *)buf_head(&s->out), buf_len(&s->out), &done);

    buf_consume(&s->out, done);
    buf_release_if_empty(&s->out);
    return rc;
}

/*
 * nghttp2 hands us a DATA frame to send without copying its payload: the 9
 * header bytes go into the headroom in front of the payload in the stream's
 * |tx|, so header and payload leave as one TLS record.
 */
static int
on_send_data(nghttp2_session *ng, nghttp2_frame *f, const uint8_t *framehd, size_t length,
             nghttp2_data_source *src, void *user)
{
    struct h2_session *s = user;
    struct h2_stream *st = src->ptr;
    size_t done = 0;
    int rc = 0;
    (void)ng;
    (void)f;

    /*
     * A small frame joins |out| (behind the frames queued before it): what one iteration
     * sends then leaves as one TLS record, not a record per DATA frame (each record costs its
     * sender and its receiver far more than copying a few KB). One nghttp2_session_mem_send()
     * may send many DATA frames, so |out| is bounded here too.
     */
    if (H2_FRAME_HEADER + length < H2_DIRECT_MIN &&
        buf_len(&s->out) + H2_FRAME_HEADER + length <= H2_OUT_BATCH) {
        CHECK(buf_append(&s->out, framehd, H2_FRAME_HEADER) == 0);
        CHECK(buf_append(&s->out, buf_head(&st->tx), length) == 0);
        h2_stream_sent(st, length);
        return 0;
    }
    /* Frames queued before this one go first. */
    if (buf_len(&s->out) > 0) {
        rc = drain_out(s);
        if (rc == -EAGAIN)
            return NGHTTP2_ERR_WOULDBLOCK;
        if (rc < 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (st->tx.off >= H2_FRAME_HEADER) {
        uint8_t *frame = (uint8_t *)st->tx.data + st->tx.off - H2_FRAME_HEADER;
        memcpy(frame, framehd, H2_FRAME_HEADER);
        rc = write_some(s, frame, H2_FRAME_HEADER + length, &done);
        if (rc < 0 && rc != -EAGAIN)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        if (done < H2_FRAME_HEADER + length)
            CHECK(buf_append(&s->out, frame + done, H2_FRAME_HEADER + length - done) == 0);
    } else {
        CHECK(buf_append(&s->out, framehd, H2_FRAME_HEADER) == 0);
        CHECK(buf_append(&s->out, buf_head(&st->tx), length) == 0);
    }
    h2_stream_sent(st, length);
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
        if (rc < 0)
            break;
        while (buf_len(&s->out) < H2_OUT_BATCH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(s->ng, &p);
            if (n < 0) {
                session_fail(s, -MESH_EPROTO);
                return;
            }
            if (n == 0)
                break;
            if (buf_len(&s->out) == 0 && n >= H2_DIRECT_MIN) {
                /* A large frame: to the transport straight from nghttp2's buffer. */
                size_t done;
                rc = write_some(s, p, (size_t)n, &done);
                if (rc < 0 && rc != -EAGAIN) {
                    session_fail(s, rc);
                    return;
                }
                if (done < (size_t)n)
                    CHECK(buf_append(&s->out, p + done, (size_t)n - done) == 0);
                if (rc == -EAGAIN)
                    break;
                continue;
            }
            CHECK(buf_append(&s->out, p, (size_t)n) == 0);
        }
        if (buf_len(&s->out) == 0)
            break;
    }
    if (rc == -EAGAIN) {
        update_interest(s, true);
        return;
    }
    if (rc < 0) {
        session_fail(s, rc);
        return;
    }
    update_interest(s, false);
    if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
        session_fail(s, s->proto_error ? -MESH_EPROTO : 0);
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
        h2_schedule_flush(s);
    }
    loop_timer_start(s->loop, &s->ping_timer, H2_PING_INTERVAL_MS, on_ping_timer, s);
}

static void
session_read(struct h2_session *s)
{
    uint8_t b[16384 + 512];

    /*
     * At most H2_READ_ROUNDS, for fairness: what is left wakes us again (streams are
     * level-triggered, also for input a TLS stream already holds).
     */
    for (int i = 0; i < H2_READ_ROUNDS && s->state == H2_RUNNING; i++) {
        ssize_t n = stream_read(s->xprt, b, sizeof(b));
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
    if (s->state == H2_RUNNING)
        session_flush(s);
}

static int
start_http2(struct h2_session *s)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    int rv;

    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cb, on_data_length);
    nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
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

/* The transport finished its setup (TLS handshake): HTTP/2 starts. */
static void
transport_open(struct h2_session *s)
{
    int o = stream_opened(s->xprt);

    if (o == 0)
        return;
    loop_timer_stop(s->loop, &s->hs_timer);
    if (o < 0) {
        session_fail(s, o);
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
    /* The peer's first frames may have arrived with its last handshake flight. */
    if (s->state == H2_RUNNING)
        session_read(s);
}

static void
on_xprt(void *arg, struct stream *x, unsigned events)
{
    struct h2_session *s = arg;
    (void)x;

    if (s->state == H2_HANDSHAKE) {
        transport_open(s);
        return;
    }
    if (s->state != H2_RUNNING)
        return;
    if (events & STREAM_WRITABLE)
        session_flush(s);
    if (s->state == H2_RUNNING && (events & STREAM_READABLE))
        session_read(s);
}

static void
on_handshake_timeout(void *arg)
{
    struct h2_session *s = arg;
    log_debug("transport setup (TLS handshake) timed out");
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

void
h2_session_unref(struct h2_session *s)
{
    if (--s->refs == 0)
        loop_defer(s->loop, &s->free_defer, session_free, s);
}

static void
teardown(void *arg)
{
    struct h2_session *s = arg;
    struct h2_stream *st, *next;

    loop_timer_stop(s->loop, &s->hs_timer);
    loop_timer_stop(s->loop, &s->ping_timer);
    if (s->xprt != NULL) {
        /*
         * A clean end says so (TLS close_notify; never waits). Errors close too, not reset:
         * a GOAWAY we queued should still reach the peer.
         */
        if (s->err == 0 && stream_opened(s->xprt) > 0)
            stream_shutdown_write(s->xprt);
        stream_close(s->xprt, false);
        s->xprt = NULL;
    }
    nghttp2_session_del(s->ng);
    s->ng = NULL;
    for (st = s->streams; st != NULL; st = next) {
        next = st->next;
        h2_stream_h2_closed(st, -ECONNRESET);
    }
    if (s->cbs->on_closed != NULL)
        s->cbs->on_closed(s->arg, s, s->err);
    h2_session_unref(s); /* the transport's own reference */
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

static void
on_open_ready(void *arg)
{
    struct h2_session *s = arg;

    if (s->state != H2_RUNNING)
        return;
    if (s->cbs->on_ready != NULL && s->cbs->on_ready(s->arg, s) < 0) {
        session_fail(s, -MESH_EDENIED);
        return;
    }
    session_flush(s);
}

struct h2_session *
h2_session_new(struct loop *l, struct stream *xprt, bool server, const struct h2_session_cbs *cbs,
               void *arg)
{
    struct h2_session *s = xcalloc(1, sizeof(*s));

    s->loop = l;
    s->xprt = xprt;
    s->server = server;
    s->cbs = cbs;
    s->arg = arg;
    s->refs = 2; /* the owner's and the transport's (dropped at teardown) */
    s->next_peer_id = 1;
    buf_init(&s->out, H2_OUT_MAX);
    if (xprt == NULL) {
        session_fail(s, -ENOMEM);
        return s;
    }
    stream_set_handler(xprt, on_xprt, s);
    int o = stream_opened(xprt);
    if (o < 0) {
        session_fail(s, o);
    } else if (o == 0) {
        stream_want(xprt, true, false);
        loop_timer_start(l, &s->hs_timer, H2_HANDSHAKE_TIMEOUT_MS, on_handshake_timeout, s);
    } else if (start_http2(s) < 0) {
        session_fail(s, -ENOMEM);
    } else {
        /* Already open: ready at once, announced from the loop like the TLS case. */
        stream_want(xprt, true, false);
        loop_defer(l, &s->ready_defer, on_open_ready, s);
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
    h2_schedule_flush(s);
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
    h2_session_unref(s);
}

struct stream *
h2_session_transport(const struct h2_session *s)
{
    return s->xprt;
}

struct loop *
h2_session_loop(const struct h2_session *s)
{
    return s->loop;
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

