/*
 * h2.h - HTTP/2 sessions carrying HBONE CONNECT tunnels, driven by the loop.
 * They also carry ordinary requests with bodies and trailers, which is what
 * gRPC (lib/rpc) needs.
 *
 * A session runs over any struct stream and owns it: TLS over TCP
 * (tls_stream.h) for HBONE, plain TCP for h2c, tests and fuzzing, or a
 * CONNECT stream of another session (HTTP/2 inside an HBONE tunnel); it never
 * knows which. A transport with a setup phase (a TLS handshake) is waited for
 * (H2_HANDSHAKE_TIMEOUT_MS), then on_ready runs. Each CONNECT is an h2_stream that is also
 * a struct stream (stream.h), so a pipe can move bytes between it and a TCP
 * socket; a request's body goes through the same interface. Flow control is
 * manual: received bytes are acknowledged to the peer only when the stream's
 * reader consumes them, so a slow reader slows the sender instead of growing
 * our buffers.
 *
 * Settings are ztunnel's (reference 1.6): stream window 4 MiB, connection
 * window 16 MiB, max frame 1 MiB, header list 16 KiB (client) / 64 KiB
 * (server), 200 concurrent streams advertised by servers, clients capped at
 * 100 per connection, PING every 10 s, closed without PONG in 20 s.
 *
 * Lifetime: the owner holds one reference (h2_session_release() drops it);
 * each stream holds one until it is closed by its user. Callbacks never run
 * inside nghttp2: they are deferred to the end of the loop iteration.
 */
#ifndef MESH_LIB_H2_H
#define MESH_LIB_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn/stream.h"
#include "loop/loop.h"

#define H2_STREAM_WINDOW      (4u << 20)
#define H2_CONN_WINDOW        (16u << 20)
#define H2_MAX_FRAME          (1u << 20)
#define H2_CLIENT_HEADER_LIST (16u << 10)
#define H2_SERVER_HEADER_LIST (64u << 10)
#define H2_MAX_HEADERS        100
#define H2_SERVER_MAX_STREAMS 200
#define H2_CLIENT_MAX_STREAMS 100
#define H2_PING_INTERVAL_MS   10000
#define H2_PING_TIMEOUT_MS    20000
#define H2_HANDSHAKE_TIMEOUT_MS 10000
#define H2_REQUEST_MAX_HEADERS 128 /* extra headers of one h2_session_request() */
#define H2_RESPOND_MAX_HEADERS 128 /* headers of one h2_stream_respond() */
#define H2_MAX_TRAILERS        16 /* fields of one h2_stream_send_trailers() */

struct h2_session;
struct h2_stream;

struct h2_header {
    const char *name;
    const char *value;
};

struct h2_session_cbs {
    /* The transport is set up (TLS handshake done) and HTTP/2 is running. <0 refuses the peer. */
    int (*on_ready)(void *arg, struct h2_session *s);
    /* Server: a complete request on |st|; answer with h2_stream_respond(). */
    void (*on_request)(void *arg, struct h2_session *s, struct h2_stream *st);
    /* The number of open streams changed (pool accounting). */
    void (*on_streams)(void *arg, struct h2_session *s);
    /* The session ended (|err| 0 on a clean close); no callback follows. */
    void (*on_closed)(void *arg, struct h2_session *s, int err);
};

/* Client: the response status, or a negative error if the stream failed first. */
typedef void h2_response_fn(void *arg, struct h2_stream *st, int status);

/*
 * Starts a session on the transport |xprt| (connected or connecting), which it
 * owns from now on. NULL |xprt| (a failed constructor) gives a session that
 * fails at once (on_closed with -ENOMEM), so callers have one error path.
 * The session is usable after on_ready.
 */
struct h2_session *h2_session_new(struct loop *l, struct stream *xprt, bool server,
                                  const struct h2_session_cbs *cbs, void *arg);
/* Graceful: GOAWAY, no new streams; the session closes when its streams end. */
void h2_session_shutdown(struct h2_session *s);
/* Immediate: the connection closes and every stream fails. */
void h2_session_close(struct h2_session *s, int err);
/* Drops the owner's reference; the session must already be closing or closed. */
void h2_session_release(struct h2_session *s);

/* The transport (e.g. for tls_stream_ssl()); NULL once the session was torn down. */
struct stream *h2_session_transport(const struct h2_session *s);
struct loop *h2_session_loop(const struct h2_session *s);
bool h2_session_is_ready(const struct h2_session *s);
bool h2_session_is_closed(const struct h2_session *s);
/* Streams currently open (not yet closed by HTTP/2). */
unsigned h2_session_n_streams(const struct h2_session *s);
/* Client: true if another CONNECT may be opened now (ready, no GOAWAY, below caps). */
bool h2_session_can_open(const struct h2_session *s);

/* Client: opens a CONNECT to |authority| with extra request headers. NULL on failure. */
struct h2_stream *h2_session_connect(struct h2_session *s, const char *authority,
                                     const struct h2_header *hdrs, size_t n_hdrs,
                                     h2_response_fn *cb, void *arg);

/*
 * Client: opens a request (:scheme https) for |path| with |method|, |authority|
 * (required) and at most H2_REQUEST_MAX_HEADERS extra headers (lower-case
 * names). The body is written through the stream interface and ended with
 * stream_shutdown_write() (END_STREAM); |cb| gets the final status, after
 * which the response headers are readable with h2_stream_header(), the body
 * through the stream, and, once it reads EOF, the trailers with
 * h2_stream_trailer(). NULL on failure.
 */
struct h2_stream *h2_session_request(struct h2_session *s, const char *method, const char *path,
                                     const char *authority, const struct h2_header *hdrs,
                                     size_t n_hdrs, h2_response_fn *cb, void *arg);

/* Server: request pseudo-headers and headers of |st| (NULL if absent). */
const char *h2_stream_method(const struct h2_stream *st);
const char *h2_stream_authority(const struct h2_stream *st);
const char *h2_stream_path(const struct h2_stream *st);
/*
 * A header by lower-case name, first value; NULL if absent. Server: a request
 * header (every one for requests with :path; baggage, forwarded and
 * traceparent for classic CONNECT). Client: a response header of a stream
 * opened by h2_session_request() (none are kept for CONNECT tunnels).
 * Values longer than the header list caps never get this far.
 */
const char *h2_stream_header(const struct h2_stream *st, const char *name);
/* A trailer field (as h2_stream_trailers()), first value; NULL if absent. */
const char *h2_stream_trailer(const struct h2_stream *st, const char *name);
/*
 * Every header field kept whole, in the order received, pseudo-headers aside: server, the
 * request's (requests with :path); client, the response's (h2_session_request() streams).
 * Stores up to |max| in |out| (the strings live as long as |st|) and returns how many there
 * are, which may be more than |max|.
 */
size_t h2_stream_headers(const struct h2_stream *st, struct h2_header *out, size_t max);
/*
 * The trailer fields, the same way: client, the response's (h2_session_request() streams);
 * server, the request's (requests with :path), at most H2_MAX_HEADERS fields and
 * H2_SERVER_HEADER_LIST bytes (more resets the stream). Complete once the body reads EOF.
 */
size_t h2_stream_trailers(const struct h2_stream *st, struct h2_header *out, size_t max);
/* 0, or why |st| ended badly (-ECONNRESET: reset by the peer, or its session ended). */
int h2_stream_error(const struct h2_stream *st);
/* True if the request had :scheme or :path (not classic CONNECT). */
bool h2_stream_has_path(const struct h2_stream *st);
/* Server: answers |st| with at most H2_RESPOND_MAX_HEADERS headers; |end| ends the stream
 * (error statuses, trailers-only responses). Returns 0 or <0. */
int h2_stream_respond(struct h2_stream *st, int status, const struct h2_header *hdrs,
                      size_t n_hdrs, bool end);
/*
 * Ends the sending side of |st| with |n| (1..H2_MAX_TRAILERS) trailer fields,
 * sent after everything already written (server: after h2_stream_respond()
 * without |end|). Further writes fail. Returns 0, -EINVAL for a bad |n|, or
 * -EPIPE if the stream cannot send any more.
 */
int h2_stream_send_trailers(struct h2_stream *st, const struct h2_header *hdrs, size_t n);
struct h2_session *h2_stream_session(const struct h2_stream *st);
int32_t h2_stream_id(const struct h2_stream *st);

/* The stream interface; stream_close() on it releases the h2_stream. */
struct stream *h2_stream_as_stream(struct h2_stream *st);

#endif
