/*
 * echo_http.c - the echo server's HTTP/1.1 port.
 *
 * Every request is answered 200 text/plain with one line saying which pod
 * answered and what it saw (peer address, method, path, Host, body size);
 * /healthz answers "ok". Keep-alive and pipelining follow HTTP/1.1; bodies
 * (Content-Length or chunked) are counted and dropped. A refused request is
 * answered, the write side shut, and input discarded until the peer closes
 * (lingering close), so the answer is not lost to a reset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "buf/buf.h"
#include "echo.h"
#include "echo_req.h"
#include "loop/loop.h"

#define HTTP_IDLE_MS    60000 /* nothing read or written: close */
#define HTTP_LINGER_MS  2000  /* after a refusal: discard input this long at most */
#define HTTP_READ_CHUNK 16384
#define HTTP_OUT_MAX    16384 /* one answer (plus a 100 Continue) */

enum http_state {
    HTTP_STATE_HEAD = 0, /* reading a request head */
    HTTP_STATE_BODY,     /* dropping Content-Length body bytes */
    HTTP_STATE_CHUNKED,  /* decoding and dropping a chunked body */
    HTTP_STATE_RESPOND,  /* answer queued; nothing is read until it is sent */
    HTTP_STATE_LINGER,   /* answered, write side shut; discarding input until EOF */
};

struct http_conn {
    struct echo_server *srv;
    struct http_conn *prev, *next;
    struct loop_io io;
    struct loop_timer timer;
    struct loop_defer free_defer;
    int fd;
    enum http_state state;
    bool eof;         /* the peer shut its write side */
    bool close_after; /* close once the queued answer is sent */
    char peer[ADDR_STRLEN];
    struct buf in; /* capped at ECHO_MAX_HEAD; bodies pass through */
    struct buf out;
    struct echo_req req;
    struct echo_chunked chunked;
    uint64_t body_left;  /* Content-Length bytes still to come */
    uint64_t body_bytes; /* of the current request */
    uint64_t start_ms;   /* when the current head was complete */
};

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    default:
        return "Error";
    }
}

static void
conn_free(void *arg)
{
    struct http_conn *c = arg;
    buf_cleanup(&c->in);
    buf_cleanup(&c->out);
    free(c);
}

static void
conn_close(struct http_conn *c)
{
    struct echo_server *s = c->srv;

    loop_io_stop(s->loop, &c->io);
    loop_timer_stop(s->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->http_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop_defer(s->loop, &c->free_defer, conn_free, c);
}

static void
on_timer(void *arg)
{
    conn_close(arg);
}

/* Any progress postpones the idle timeout; lingering has its own fixed deadline. */
static void
touch(struct http_conn *c)
{
    if (c->state != HTTP_STATE_LINGER)
        loop_timer_start(c->srv->loop, &c->timer, HTTP_IDLE_MS, on_timer, c);
}

/* Copies |s| for a logfmt value: bytes outside 0x21-0x7e become '?', empty becomes "-". */
static const char *
logfmt_value(const char *s, char *out, size_t outlen)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < outlen; i++)
        out[i] = ((unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
    return i == 0 ? "-" : out;
}

/* Queues the answer; |body| is not sent for HEAD, but its length is. */
static void
queue_answer(struct http_conn *c, int status, const char *body, bool keep_alive)
{
    struct echo_server *s = c->srv;
    char head[1024]; /* the fixed text and two labels of at most ECHO_MAX_LABEL */
    size_t blen = strlen(body);
    bool is_head = strcmp(c->req.method, "HEAD") == 0;

    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "X-Echo-Pod: %s\r\nX-Echo-Version: %s\r\n%s\r\n",
                     status, status_text(status), blen, s->name, s->version,
                     !keep_alive         ? "Connection: close\r\n"
                     : c->req.minor == 0 ? "Connection: keep-alive\r\n"
                                         : "");
    CHECK(n > 0 && (size_t)n < sizeof(head));
    CHECK(buf_append(&c->out, head, (size_t)n) == 0);
    if (!is_head)
        CHECK(buf_append(&c->out, body, blen) == 0);
    c->close_after = !keep_alive;
    c->state = HTTP_STATE_RESPOND;
}

static void
answer(struct http_conn *c)
{
    struct echo_server *s = c->srv;
    const struct echo_req *r = &c->req;
    char body[ECHO_MAX_TARGET + ECHO_MAX_HOST + 2 * ECHO_MAX_LABEL + 256], host[ECHO_MAX_HOST];
    size_t plen = strcspn(r->target, "?");
    const char *hv = logfmt_value(r->host, host, sizeof(host));

    if (plen == strlen("/healthz") && memcmp(r->target, "/healthz", plen) == 0) {
        snprintf(body, sizeof(body), "ok\n");
    } else {
        snprintf(body, sizeof(body),
                 "pod=%s version=%s peer=%s method=%s path=%s host=%s body_bytes=%" PRIu64 "\n",
                 s->name, s->version, c->peer, r->method, r->target, hv, c->body_bytes);
    }
    queue_answer(c, 200, body, r->keep_alive);
    echo_log("http peer=%s method=%s path=%s host=%s status=200 body_bytes=%" PRIu64
             " dur_ms=%" PRIu64,
             c->peer, r->method, r->target, hv, c->body_bytes, loop_now_ms(s->loop) - c->start_ms);
}

/* Refuses the request with |status| and closes once the answer is out. */
static void
refuse(struct http_conn *c, int status)
{
    char body[64], method[sizeof(c->req.method)], path[ECHO_MAX_TARGET];

    snprintf(body, sizeof(body), "%s\n", status_text(status));
    echo_log("http peer=%s method=%s path=%s status=%d", c->peer,
             logfmt_value(c->req.method, method, sizeof(method)),
             logfmt_value(c->req.target, path, sizeof(path)), status);
    queue_answer(c, status, body, false);
}

/* A complete head was parsed: drop it from |in| and get ready for the body. */
static void
start_request(struct http_conn *c)
{
    const struct echo_req *r = &c->req;

    buf_consume(&c->in, r->head_len);
    c->start_ms = loop_now_ms(c->srv->loop);
    c->body_bytes = 0;
    c->body_left = r->content_length;
    memset(&c->chunked, 0, sizeof(c->chunked));
    if (r->expect_continue && r->minor == 1 && (r->chunked || r->content_length > 0)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        CHECK(buf_append(&c->out, cont, sizeof(cont) - 1) == 0);
    }
    if (r->chunked)
        c->state = HTTP_STATE_CHUNKED;
    else if (r->content_length > 0)
        c->state = HTTP_STATE_BODY;
    else
        answer(c);
}

/* Sends what |out| holds. Returns 0, or -1 when the connection failed. */
static int
flush_out(struct http_conn *c)
{
    while (buf_len(&c->out) > 0) {
        ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0)
            return -1;
        buf_consume(&c->out, (size_t)n);
        touch(c);
    }
    buf_release_if_empty(&c->out);
    return 0;
}

/* Reads once. Returns 0 (data, EOF noted in |eof|, or nothing yet) or -1 on error. */
static int
read_in(struct http_conn *c)
{
    size_t room;
    char *w = buf_reserve(&c->in, HTTP_READ_CHUNK, &room);

    if (w == NULL)
        return 0; /* full at the head cap: echo_req_parse() reports it */
    ssize_t n = recv(c->fd, w, room, 0);
    if (n > 0) {
        buf_commit(&c->in, (size_t)n);
        touch(c);
    } else if (n == 0) {
        c->eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        return -1;
    }
    return 0;
}

/* Steps the state machine as far as the buffered bytes go. Returns false if |c| closed. */
static bool
advance(struct http_conn *c)
{
    struct loop *l = c->srv->loop;
    uint64_t n;
    size_t used;
    int rc;

    for (;;) {
        switch (c->state) {
        case HTTP_STATE_HEAD:
            if (buf_len(&c->in) == 0 && !c->eof) {
                buf_release_if_empty(&c->in); /* idle keep-alive holds no buffer */
                return true;
            }
            rc = echo_req_parse(buf_head(&c->in), buf_len(&c->in), &c->req);
            if (rc == 0 && !c->eof)
                return true;
            if (rc == 0)
                goto closed; /* idle, or a head cut short */
            if (rc < 0)
                refuse(c, -rc);
            else
                start_request(c);
            break;
        case HTTP_STATE_BODY:
            n = buf_len(&c->in) < c->body_left ? buf_len(&c->in) : c->body_left;
            buf_consume(&c->in, (size_t)n);
            c->body_left -= n;
            c->body_bytes += n;
            if (c->body_left == 0)
                answer(c);
            else if (c->eof)
                goto closed;
            else
                return true;
            break;
        case HTTP_STATE_CHUNKED:
            rc = echo_chunked_feed(&c->chunked, buf_head(&c->in), buf_len(&c->in), &used,
                                   &c->body_bytes);
            buf_consume(&c->in, used);
            if (rc < 0)
                refuse(c, -rc);
            else if (rc == 1)
                answer(c);
            else if (c->eof)
                goto closed;
            else
                return true;
            break;
        case HTTP_STATE_RESPOND:
            if (flush_out(c) < 0)
                goto closed;
            if (buf_len(&c->out) > 0)
                return true;
            if (!c->close_after) {
                c->state = HTTP_STATE_HEAD;
                break;
            }
            shutdown(c->fd, SHUT_WR);
            c->state = HTTP_STATE_LINGER;
            loop_timer_start(l, &c->timer, HTTP_LINGER_MS, on_timer, c);
            break;
        case HTTP_STATE_LINGER:
            buf_consume(&c->in, buf_len(&c->in));
            if (c->eof)
                goto closed;
            return true;
        }
    }
closed:
    conn_close(c);
    return false;
}

static void
on_io(void *arg, uint32_t events)
{
    struct http_conn *c = arg;

    if (buf_len(&c->out) > 0 && flush_out(c) < 0) {
        conn_close(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != HTTP_STATE_RESPOND && !c->eof &&
        read_in(c) < 0) {
        conn_close(c);
        return;
    }
    if (!advance(c))
        return;
    uint32_t want = buf_len(&c->out) > 0 ? EPOLLOUT : 0;
    if (c->state != HTTP_STATE_RESPOND && !c->eof)
        want |= EPOLLIN;
    loop_io_set(c->srv->loop, &c->io, want);
}

void
echo_http_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct echo_server *s = arg;
    struct http_conn *c = xcalloc(1, sizeof(*c));

    c->srv = s;
    c->fd = fd;
    ipport_str(peer, peer_port, c->peer);
    buf_init(&c->in, ECHO_MAX_HEAD);
    buf_init(&c->out, HTTP_OUT_MAX);
    if (loop_io_start(s->loop, &c->io, fd, EPOLLIN, on_io, c) < 0) {
        close(fd);
        conn_free(c);
        return;
    }
    c->next = s->http_conns;
    if (c->next)
        c->next->prev = c;
    s->http_conns = c;
    touch(c);
}

void
echo_http_close_all(struct echo_server *s)
{
    while (s->http_conns != NULL)
        conn_close(s->http_conns);
}
