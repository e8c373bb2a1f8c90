/*
 * echo_http.c - the echo server's HTTP/1.1 port.
 *
 * Every request is answered 200 text/plain with one line saying which pod
 * answered and what it saw (peer address, method, path, Host, body size);
 * /healthz answers "ok". Keep-alive and pipelining follow HTTP/1.1; bodies
 * (Content-Length or chunked) are counted and dropped; lib/http1 parses. A refused request is
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
#include "http1/http1.h"
#include "loop/loop.h"

#define HTTP_IDLE_MS    60000 /* nothing read or written: close */
#define HTTP_LINGER_MS  2000  /* after a refusal: discard input this long at most */
#define HTTP_READ_CHUNK 16384
#define HTTP_OUT_MAX    16384 /* one answer (plus a 100 Continue) */
#define ECHO_MAX_HEAD    16384 /* request line + fields, and trailers; past it: 431 */
#define ECHO_MAX_TARGET  2048  /* past it: 414 */
#define ECHO_MAX_HOST    256   /* past it: 400 */

enum http_state {
    HTTP_STATE_READ = 0, /* reading a request: head, then its body (counted, dropped) */
    HTTP_STATE_RESPOND,  /* answer queued; nothing is read until it is sent */
    HTTP_STATE_LINGER,   /* answered, write side shut; discarding input until EOF */
};

/* What the answer and the access log need of a request head (lib/http1 parses it). */
struct echo_req {
    char method[32];
    char target[ECHO_MAX_TARGET]; /* with the query */
    char host[ECHO_MAX_HOST];     /* "" when absent (HTTP/1.0) */
    int minor;                    /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;              /* after the version default and Connection */
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
    struct http1_parser ps;
    struct echo_req req;
    uint64_t body_bytes; /* of the current request */
    uint64_t start_ms;   /* when the current head was complete */
};

static void
conn_free(void *arg)
{
    struct http_conn *c = arg;
    buf_cleanup(&c->in);
    buf_cleanup(&c->out);
    http1_parser_free(&c->ps);
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
                     status, http1_reason(status), blen, s->name, s->version,
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

    snprintf(body, sizeof(body), "%s\n", http1_reason(status));
    echo_log("http peer=%s method=%s path=%s status=%d", c->peer,
             logfmt_value(c->req.method, method, sizeof(method)),
             logfmt_value(c->req.target, path, sizeof(path)), status);
    queue_answer(c, status, body, false);
}

/* Copies |n| bytes at |p| into |out| (NUL-terminated); false if they do not fit. */
static bool
copy_str(char *out, size_t outlen, const char *p, size_t n)
{
    if (n >= outlen)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/*
 * A complete head at |p|: keeps what the answer needs, queues 100 Continue
 * when the client waits for it. Returns 0, or the status to refuse it with.
 */
static int
start_request(struct http_conn *c, const char *p)
{
    const struct http1_head *h = &c->ps.head;
    struct echo_req *r = &c->req;

    memset(r, 0, sizeof(*r));
    r->minor = h->minor;
    r->keep_alive = h->keep_alive;
    if (!copy_str(r->method, sizeof(r->method), http1_at(p, h->method), h->method.len))
        return 400;
    if (!copy_str(r->target, sizeof(r->target), http1_at(p, h->target), h->target.len))
        return 414;
    if (h->host >= 0 && !copy_str(r->host, sizeof(r->host), http1_at(p, h->fields[h->host].value),
                                  h->fields[h->host].value.len))
        return 400;
    c->start_ms = loop_now_ms(c->srv->loop);
    c->body_bytes = 0;
    if (h->expect_continue && h->body != HTTP1_BODY_NONE) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        CHECK(buf_append(&c->out, cont, sizeof(cont) - 1) == 0);
    }
    return 0;
}

/*
 * Parses what |in| holds: heads, body bytes (counted and dropped), the end
 * of a request (answered). Returns 1 to go on, 0 to wait for bytes, -1 to close.
 */
static int
read_request(struct http_conn *c)
{
    struct http1_span d;
    size_t used;
    int rc = http1_parse(&c->ps, buf_head(&c->in), buf_len(&c->in), &used, &d);

    if (rc == HTTP1_HEAD) {
        int status = start_request(c, buf_head(&c->in));
        buf_consume(&c->in, used);
        if (status != 0)
            refuse(c, status);
        return 1;
    }
    buf_consume(&c->in, used);
    switch (rc) {
    case HTTP1_DATA:
        c->body_bytes += d.len;
        return 1;
    case HTTP1_END:
        answer(c);
        return 1;
    case HTTP1_MORE:
        if (!c->eof) {
            if (buf_len(&c->in) == 0)
                buf_release_if_empty(&c->in); /* idle keep-alive holds no buffer */
            return 0;
        }
        return -1; /* closed: idle, or inside a request */
    default:
        if (c->ps.head.len == 0)
            memset(&c->req, 0, sizeof(c->req)); /* refused in the head: nothing to log of it */
        refuse(c, rc < 0 ? http1_error_status(rc) : 400);
        return 1;
    }
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
        return 0; /* full at the head cap: http1_parse() reports it */
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
    int rc;

    for (;;) {
        switch (c->state) {
        case HTTP_STATE_READ:
            rc = read_request(c);
            if (rc < 0)
                goto closed;
            if (rc == 0)
                return true;
            break;
        case HTTP_STATE_RESPOND:
            if (flush_out(c) < 0)
                goto closed;
            if (buf_len(&c->out) > 0)
                return true;
            if (!c->close_after) {
                c->state = HTTP_STATE_READ;
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
    http1_parser_init(&c->ps, false,
                      &(struct http1_limits){.max_head = ECHO_MAX_HEAD, .max_trailer = ECHO_MAX_HEAD});
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
