/*
 * rpc.c - gRPC calls on HTTP/2 streams; see rpc.h.
 *
 * Input: the stream's buffered bytes are fed to a grpc_reader, which calls
 * back per complete message; they are consumed (and so credited to the
 * peer's window) only after that. Output: framed messages wait in |out| and
 * move into the stream's buffer whenever it has room. The end of the call
 * (END_STREAM, trailers) goes out after |out| drained.
 *
 * Every user callback runs from the stream's event handler or its response
 * callback, both deferred by lib/h2, and the call's memory is freed from a
 * deferred release, so the owner may free it from inside any callback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "buf/buf.h"
#include "rpc/rpc.h"

struct rpc_call {
    struct loop *loop;
    struct h2_stream *st; /* NULL once released (a client call after on_end) */
    bool server;
    const struct rpc_call_cbs *cbs;
    void *arg;
    char *path;
    size_t max_msg;
    struct grpc_reader rd;
    struct buf out;    /* framed messages not yet in the stream */
    bool responded;    /* client: a usable response arrived */
    bool headers_sent; /* server: response headers are out */
    bool rd_done;      /* input ended or failed: no more reads */
    bool discard;      /* input after a bad message is read and dropped */
    bool send_closed;  /* close_send/finish called: nothing more may be queued */
    bool send_done;    /* END_STREAM or trailers handed to HTTP/2 (or never will be) */
    bool ended;        /* on_end delivered, or no longer due */
    bool freed;        /* the owner released the call */
    bool release_queued;
    bool notify_drained; /* on_drained owed once |out| empties */
    bool user_abort;     /* on_message returned <0 */
    int fin_status;
    char *fin_message; /* server: percent-encoded grpc-message, or NULL */
    struct loop_defer release_defer;
};

static const struct rpc_call_cbs no_cbs;

static void update_want(struct rpc_call *c);

/* ---- lifetime ----------------------------------------------------------- */

static void
release(void *arg)
{
    struct rpc_call *c = arg;

    if (c->st != NULL) {
        struct stream *x = h2_stream_as_stream(c->st);
        stream_set_handler(x, NULL, NULL);
        /* A client not yet ended cancels; a server that sent its status closes cleanly. */
        stream_close(x, c->server ? !c->send_done : true);
    }
    grpc_reader_cleanup(&c->rd);
    buf_cleanup(&c->out);
    free(c->path);
    free(c->fin_message);
    free(c);
}

static void
queue_release(struct rpc_call *c)
{
    if (c->release_queued)
        return;
    c->release_queued = true;
    loop_defer(c->loop, &c->release_defer, release, c);
}

/* True when the call's memory is on its way out: handlers stop touching the stream. */
static bool
gone(const struct rpc_call *c)
{
    return c->release_queued || c->st == NULL;
}

static void
call_end(struct rpc_call *c, int status, const char *message)
{
    if (c->ended)
        return;
    c->ended = true;
    if (!c->freed && c->cbs->on_end != NULL)
        c->cbs->on_end(c->arg, c, status, message);
}

static void
drop_output(struct rpc_call *c)
{
    buf_consume(&c->out, buf_len(&c->out));
    buf_release_if_empty(&c->out);
    c->send_closed = true;
    c->send_done = true;
}

/* ---- output ------------------------------------------------------------- */

static void
status_text(int status, char code[4])
{
    if (status < 0 || status > GRPC_STATUS_MAX)
        status = RPC_STATUS_UNKNOWN;
    snprintf(code, 4, "%d", status);
}

/* Hands the end of our side to HTTP/2: END_STREAM (client) or the status (server). */
static void
finish_send(struct rpc_call *c)
{
    struct h2_header h[3];
    char code[4];
    size_t n = 0;

    c->send_done = true;
    if (!c->server) {
        stream_shutdown_write(h2_stream_as_stream(c->st));
        return;
    }
    status_text(c->fin_status, code);
    if (!c->headers_sent)
        h[n++] = (struct h2_header){GRPC_HDR_CONTENT_TYPE, GRPC_CONTENT_TYPE};
    h[n++] = (struct h2_header){GRPC_HDR_STATUS, code};
    if (c->fin_message != NULL)
        h[n++] = (struct h2_header){GRPC_HDR_MESSAGE, c->fin_message};
    if (!c->headers_sent) {
        /* No message went out: a trailers-only response. */
        c->headers_sent = true;
        h2_stream_respond(c->st, 200, h, n, true);
    } else {
        h2_stream_send_trailers(c->st, h, n);
    }
    if (c->freed)
        queue_release(c);
}

/*
 * Moves |out| into the stream while it has room, then the end of our side
 * if it was asked for. Returns 0 when |out| is empty, -EAGAIN when the stream
 * is full, or the stream's error (the output is then dropped).
 */
static int
pump(struct rpc_call *c)
{
    struct stream *x = h2_stream_as_stream(c->st);

    while (buf_len(&c->out) > 0) {
        ssize_t n = stream_write(x, buf_head(&c->out), buf_len(&c->out));
        if (n == -EAGAIN)
            return -EAGAIN;
        if (n < 0) {
            drop_output(c);
            if (c->freed)
                queue_release(c);
            return (int)n;
        }
        buf_consume(&c->out, (size_t)n);
    }
    buf_release_if_empty(&c->out);
    if (c->send_closed && !c->send_done)
        finish_send(c);
    return 0;
}

/* ---- input -------------------------------------------------------------- */

static int
on_reader_msg(void *arg, const uint8_t *msg, size_t len)
{
    struct rpc_call *c = arg;

    if (c->freed)
        return -ECANCELED; /* nobody listens: stop delivering */
    if (c->cbs->on_message == NULL)
        return 0;
    int rc = c->cbs->on_message(c->arg, c, msg, len);
    if (c->freed)
        return -ECANCELED;
    if (rc < 0) {
        c->user_abort = true;
        return -ECANCELED;
    }
    return 0;
}

/* Client: the call is over; the stream goes now (reset unless both ends finished). */
static void
client_end(struct rpc_call *c, int status, const char *message, bool abort)
{
    struct stream *x = h2_stream_as_stream(c->st);

    c->st = NULL;
    c->rd_done = true;
    drop_output(c);
    stream_set_handler(x, NULL, NULL);
    stream_close(x, abort);
    call_end(c, status, message);
}

/* Server: the client broke the protocol; it gets |status| after what was queued. */
static void
server_fail(struct rpc_call *c, int status, const char *message)
{
    c->discard = true;
    if (!c->send_closed)
        rpc_call_finish(c, status, message);
    call_end(c, status, message);
}

static void
input_bad(struct rpc_call *c, int rc)
{
    char m[96];
    int status;

    if (c->freed) {
        c->discard = true; /* a server draining its output after the owner left */
        return;
    }
    if (c->user_abort) {
        status = RPC_STATUS_CANCELLED;
        snprintf(m, sizeof(m), "call aborted by the receiver");
    } else if (rc == -MESH_ELIMIT) {
        status = RPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(m, sizeof(m), "received message larger than max (%zu bytes)", c->max_msg);
    } else {
        status = RPC_STATUS_INTERNAL;
        snprintf(m, sizeof(m), "malformed or compressed message");
    }
    if (c->server)
        server_fail(c, status, m);
    else
        client_end(c, status, m, true);
}

/* Client: the status of a finished response, from its trailers or trailers-only headers. */
static void
client_status(struct rpc_call *c)
{
    const char *gs = h2_stream_trailer(c->st, GRPC_HDR_STATUS);
    const char *gm = h2_stream_trailer(c->st, GRPC_HDR_MESSAGE);
    char *m = NULL;
    size_t len;
    int status;

    if (gs == NULL) {
        gs = h2_stream_header(c->st, GRPC_HDR_STATUS);
        gm = h2_stream_header(c->st, GRPC_HDR_MESSAGE);
    }
    if (gs == NULL) {
        client_end(c, RPC_STATUS_INTERNAL, "response ended without grpc-status", !c->send_done);
        return;
    }
    status = grpc_status_parse(gs, strlen(gs));
    if (status < 0) {
        client_end(c, RPC_STATUS_UNKNOWN, "invalid grpc-status", !c->send_done);
        return;
    }
    if (gm != NULL) {
        /* Decoding never lengthens; the stream's copy goes with the stream. */
        m = xmalloc(strlen(gm) + 1);
        if (grpc_message_decode(gm, strlen(gm), (uint8_t *)m, strlen(gm) + 1, &len) < 0)
            m[0] = '\0';
    }
    client_end(c, status, m, !c->send_done);
    free(m);
}

/* The stream's input ended: |err| 0 at END_STREAM, else the stream failed. */
static void
input_ended(struct rpc_call *c, int err)
{
    bool closed = h2_session_is_closed(h2_stream_session(c->st));

    c->rd_done = true;
    if (err < 0) {
        if (!c->server) {
            client_end(c, GRPC_STATUS_UNAVAILABLE, closed ? "connection closed" : "stream reset",
                       true);
            return;
        }
        drop_output(c);
        if (c->freed) {
            queue_release(c);
            return;
        }
        call_end(c, closed ? GRPC_STATUS_UNAVAILABLE : RPC_STATUS_CANCELLED,
                 closed ? "connection closed" : "cancelled by the client");
        return;
    }
    if (c->discard)
        return; /* already ended by a bad message */
    if (grpc_reader_finish(&c->rd) < 0) {
        if (c->server)
            server_fail(c, RPC_STATUS_INTERNAL, "stream ended inside a message");
        else
            client_end(c, RPC_STATUS_INTERNAL, "stream ended inside a message", true);
        return;
    }
    if (c->server)
        call_end(c, GRPC_STATUS_OK, NULL);
    else
        client_status(c);
}

static void
read_input(struct rpc_call *c)
{
    struct stream *x = h2_stream_as_stream(c->st);
    const void *p = NULL;

    for (;;) {
        ssize_t n = x->ops->peek(x, &p);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            input_ended(c, (int)n);
            return;
        }
        int rc = c->discard ? 0 : grpc_reader_feed(&c->rd, p, (size_t)n);
        if (c->release_queued)
            return; /* freed from on_message: the stream goes with the call */
        x->ops->consume(x, (size_t)n);
        if (rc < 0) {
            input_bad(c, rc);
            return;
        }
    }
}

/* ---- stream events ------------------------------------------------------ */

static void
on_stream_event(void *arg, struct stream *x, unsigned events)
{
    struct rpc_call *c = arg;
    (void)x;

    if (gone(c))
        return;
    if (events & STREAM_WRITABLE) {
        int rc = pump(c);
        if (gone(c))
            return;
        if (rc == 0 && c->notify_drained) {
            c->notify_drained = false;
            if (!c->freed && c->cbs->on_drained != NULL)
                c->cbs->on_drained(c->arg, c);
            if (gone(c))
                return;
        }
    }
    if ((events & STREAM_READABLE) && !c->rd_done) {
        read_input(c);
        if (gone(c))
            return;
    }
    update_want(c);
}

static void
update_want(struct rpc_call *c)
{
    bool rd = !c->rd_done && (c->server || c->responded);

    stream_want(h2_stream_as_stream(c->st), rd, buf_len(&c->out) > 0);
}

/* ---- client ------------------------------------------------------------- */

/* gRPC's mapping of HTTP statuses for responses that are not 200 (http-grpc-status-mapping.md). */
static int
http_to_grpc(int status)
{
    switch (status) {
    case 400:
        return RPC_STATUS_INTERNAL;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
        return RPC_STATUS_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return GRPC_STATUS_UNAVAILABLE;
    default:
        return RPC_STATUS_UNKNOWN;
    }
}

static void
on_response(void *arg, struct h2_stream *st, int status)
{
    struct rpc_call *c = arg;
    char m[64];

    if (gone(c))
        return;
    if (status < 0) {
        bool closed = h2_session_is_closed(h2_stream_session(st));
        client_end(c, status == -MESH_EPROTO ? RPC_STATUS_INTERNAL : GRPC_STATUS_UNAVAILABLE,
                   closed ? "connection closed" : "stream failed before a response", true);
        return;
    }
    if (status != 200) {
        snprintf(m, sizeof(m), "HTTP status %d", status);
        client_end(c, http_to_grpc(status), m, true);
        return;
    }
    const char *ct = h2_stream_header(st, GRPC_HDR_CONTENT_TYPE);
    /* A trailers-only response carries its status; its content-type is not checked. */
    if (h2_stream_header(st, GRPC_HDR_STATUS) == NULL &&
        (ct == NULL || !grpc_content_type_ok(ct, strlen(ct)))) {
        client_end(c, RPC_STATUS_INTERNAL, "response content-type is not gRPC", true);
        return;
    }
    c->responded = true;
    update_want(c);
}

static struct rpc_call *
call_new(struct loop *l, size_t max_msg, const struct rpc_call_cbs *cbs, void *arg)
{
    struct rpc_call *c = xcalloc(1, sizeof(*c));

    c->loop = l;
    c->cbs = cbs != NULL ? cbs : &no_cbs;
    c->arg = arg;
    if (max_msg == 0)
        max_msg = RPC_DEFAULT_MAX_MSG;
    if (max_msg > GRPC_MSG_MAX_LIMIT)
        max_msg = GRPC_MSG_MAX_LIMIT;
    c->max_msg = max_msg;
    grpc_reader_init(&c->rd, max_msg, on_reader_msg, c);
    buf_init(&c->out, RPC_SEND_MAX);
    return c;
}

struct rpc_call *
rpc_call_start(struct h2_session *s, const char *path, const char *authority,
               const struct h2_header *md, size_t n_md, size_t max_msg,
               const struct rpc_call_cbs *cbs, void *arg)
{
    struct h2_header h[2 + RPC_MAX_METADATA];
    size_t n = 0;

    if (n_md > RPC_MAX_METADATA || !h2_session_is_ready(s))
        return NULL;
    h[n++] = (struct h2_header){GRPC_HDR_CONTENT_TYPE, GRPC_CONTENT_TYPE};
    h[n++] = (struct h2_header){GRPC_HDR_TE, GRPC_TE_TRAILERS};
    for (size_t i = 0; i < n_md; i++)
        h[n++] = md[i];

    struct rpc_call *c = call_new(h2_session_loop(s), max_msg, cbs, arg);
    c->path = xstrdup(path);
    c->st = h2_session_request(s, "POST", path, authority, h, n, on_response, c);
    if (c->st == NULL) {
        release(c);
        return NULL;
    }
    stream_set_handler(h2_stream_as_stream(c->st), on_stream_event, c);
    return c;
}

void
rpc_call_close_send(struct rpc_call *c)
{
    if (c->server || c->freed || c->send_closed || c->st == NULL)
        return;
    c->send_closed = true;
    pump(c);
    if (!gone(c))
        update_want(c);
}

/* ---- server ------------------------------------------------------------- */

bool
rpc_is_grpc(const struct h2_stream *st)
{
    const char *m = h2_stream_method(st), *p = h2_stream_path(st);
    const char *ct = h2_stream_header(st, GRPC_HDR_CONTENT_TYPE);

    return m != NULL && strcmp(m, "POST") == 0 && p != NULL && p[0] == '/' && ct != NULL &&
           grpc_content_type_ok(ct, strlen(ct));
}

struct rpc_call *
rpc_call_accept(struct h2_stream *st, size_t max_msg, const struct rpc_call_cbs *cbs, void *arg)
{
    struct rpc_call *c = call_new(h2_session_loop(h2_stream_session(st)), max_msg, cbs, arg);
    const char *path = h2_stream_path(st);

    c->server = true;
    c->st = st;
    c->path = xstrdup(path != NULL ? path : "");
    stream_set_handler(h2_stream_as_stream(st), on_stream_event, c);
    update_want(c);
    return c;
}

/* A percent-encoded grpc-message of at most RPC_MESSAGE_MAX input bytes; NULL for none. */
static char *
encode_message(const char *message)
{
    if (message == NULL || message[0] == '\0')
        return NULL;
    size_t len = strnlen(message, RPC_MESSAGE_MAX);
    size_t cap = grpc_message_encoded_len(message, len) + 1, out_len;
    char *enc = xmalloc(cap);
    CHECK(grpc_message_encode(message, len, enc, cap, &out_len) == 0);
    return enc;
}

void
rpc_refuse(struct h2_stream *st, int status, const char *message)
{
    struct h2_header h[3];
    char code[4];
    char *enc = encode_message(message);
    size_t n = 0;

    status_text(status, code);
    h[n++] = (struct h2_header){GRPC_HDR_CONTENT_TYPE, GRPC_CONTENT_TYPE};
    h[n++] = (struct h2_header){GRPC_HDR_STATUS, code};
    if (enc != NULL)
        h[n++] = (struct h2_header){GRPC_HDR_MESSAGE, enc};
    h2_stream_respond(st, 200, h, n, true);
    free(enc);
    /* The response and its END_STREAM go out first, then a reset stops the client's body. */
    stream_close(h2_stream_as_stream(st), false);
}

void
rpc_call_finish(struct rpc_call *c, int status, const char *message)
{
    if (!c->server || c->freed || c->send_closed)
        return;
    c->send_closed = true;
    c->fin_status = status;
    c->fin_message = encode_message(message);
    pump(c);
    if (!gone(c))
        update_want(c);
}

/* ---- both --------------------------------------------------------------- */

int
rpc_call_send(struct rpc_call *c, const void *msg, size_t len)
{
    static const struct h2_header ct = {GRPC_HDR_CONTENT_TYPE, GRPC_CONTENT_TYPE};

    if (c->freed || c->st == NULL || c->send_closed)
        return -EPIPE;
    if (c->server && !c->headers_sent) {
        if (h2_stream_respond(c->st, 200, &ct, 1, false) < 0)
            return -EPIPE;
        c->headers_sent = true;
    }
    int rc = grpc_frame_append(&c->out, msg, len);
    if (rc < 0)
        return rc;
    rc = pump(c);
    if (rc < 0 && rc != -EAGAIN)
        return -EPIPE;
    if (rc == -EAGAIN)
        c->notify_drained = true;
    update_want(c);
    return 0;
}

size_t
rpc_call_queued(const struct rpc_call *c)
{
    return buf_len(&c->out);
}

const char *
rpc_call_path(const struct rpc_call *c)
{
    return c->path;
}

const char *
rpc_call_header(const struct rpc_call *c, const char *name)
{
    return c->server && c->st != NULL ? h2_stream_header(c->st, name) : NULL;
}

struct h2_session *
rpc_call_session(const struct rpc_call *c)
{
    return c->st != NULL ? h2_stream_session(c->st) : NULL;
}

void
rpc_call_free(struct rpc_call *c)
{
    if (c == NULL)
        return;
    CHECK(!c->freed);
    c->freed = true;
    c->cbs = &no_cbs;
    /* A finished server call still sending: it goes once its status is out (finish_send). */
    if (c->server && c->st != NULL && c->send_closed && !c->send_done)
        return;
    queue_release(c);
}
