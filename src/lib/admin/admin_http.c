/*
 * admin_http.c - one-shot HTTP/1.1 responder on the loop.
 *
 * Each client may send one request head of at most HTTP1_REQ_MAX_HEAD bytes
 * within ADMIN_TIMEOUT_MS; the response is written and the socket closed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/admin_http.h"
#include "base/base.h"
#include "buf/buf.h"
#include "net/sock.h"

#define ADMIN_TIMEOUT_MS 5000
#define ADMIN_MAX_CLIENTS 64
#define ADMIN_MAX_RESPONSE (64u << 20)

struct admin_http {
    struct loop *loop;
    struct loop_io io;
    int fd;
    unsigned n_clients;
    struct client *clients;
    admin_handler_fn *handler;
    void *arg;
};

struct client {
    struct admin_http *a;
    struct client *prev, *next;
    struct loop_io io;
    struct loop_timer timer;
    struct loop_defer free_defer;
    int fd;
    bool writing;
    struct buf in, out;
};

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void
client_free(void *arg)
{
    struct client *c = arg;
    buf_cleanup(&c->in);
    buf_cleanup(&c->out);
    free(c);
}

static void
client_close(struct client *c)
{
    struct admin_http *a = c->a;

    loop_io_stop(a->loop, &c->io);
    loop_timer_stop(a->loop, &c->timer);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->n_clients--;
    loop_defer(a->loop, &c->free_defer, client_free, c);
}

static void
respond(struct client *c, const struct http1_req *req)
{
    struct admin_resp r = {.status = 404, .content_type = "text/plain"};
    char head[256];

    if (req == NULL) {
        r.status = 400;
        r.body = xstrdup("bad request\n");
    } else {
        c->a->handler(c->a->arg, req, &r);
        if (r.body == NULL)
            r.body = xstrdup(r.status == 404 ? "not found\n" : "");
    }
    size_t blen = strlen(r.body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     r.status, reason(r.status), r.content_type, blen);
    buf_init(&c->out, (size_t)n + blen + 1);
    if (blen > ADMIN_MAX_RESPONSE || buf_append(&c->out, head, (size_t)n) < 0 ||
        buf_append(&c->out, r.body, blen) < 0) {
        free(r.body);
        client_close(c);
        return;
    }
    free(r.body);
    c->writing = true;
    loop_io_set(c->a->loop, &c->io, EPOLLOUT);
}

static void
on_client(void *arg, uint32_t events)
{
    struct client *c = arg;
    struct http1_req req;
    (void)events;

    if (c->writing) {
        ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out), MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            client_close(c);
            return;
        }
        buf_consume(&c->out, (size_t)n);
        if (buf_len(&c->out) == 0) {
            shutdown(c->fd, SHUT_WR);
            client_close(c);
        }
        return;
    }
    size_t room;
    char *w = buf_reserve(&c->in, 4096, &room);
    if (w == NULL) {
        respond(c, NULL);
        return;
    }
    ssize_t n = recv(c->fd, w, room, 0);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    buf_commit(&c->in, (size_t)n);
    int rc = http1_parse_request(buf_head(&c->in), buf_len(&c->in), &req);
    if (rc < 0)
        respond(c, NULL);
    else if (rc > 0)
        respond(c, &req);
}

static void
on_timeout(void *arg)
{
    client_close(arg);
}

static void
on_accept(void *arg, uint32_t events)
{
    struct admin_http *a = arg;
    (void)events;

    for (int i = 0; i < 16; i++) {
        int fd = sock_accept(a->fd, NULL, NULL);
        if (fd < 0)
            return;
        if (a->n_clients >= ADMIN_MAX_CLIENTS) {
            close(fd);
            continue;
        }
        struct client *c = xcalloc(1, sizeof(*c));
        c->a = a;
        c->fd = fd;
        buf_init(&c->in, HTTP1_REQ_MAX_HEAD);
        if (loop_io_start(a->loop, &c->io, fd, EPOLLIN, on_client, c) < 0) {
            close(fd);
            free(c);
            continue;
        }
        a->n_clients++;
        c->next = a->clients;
        if (a->clients)
            a->clients->prev = c;
        a->clients = c;
        loop_timer_start(a->loop, &c->timer, ADMIN_TIMEOUT_MS, on_timeout, c);
    }
}

struct admin_http *
admin_http_start(struct loop *l, const struct ipaddr *ip, uint16_t port, uint32_t mark,
                 admin_handler_fn *h, void *arg, char *err, size_t errlen)
{
    /* SO_REUSEPORT: during an upgrade the new process binds next to the old one. */
    struct sock_opts o = {.mark = mark, .reuseport = true};
    struct admin_http *a = xcalloc(1, sizeof(*a));
    char addr[ADDR_STRLEN];

    a->loop = l;
    a->handler = h;
    a->arg = arg;
    a->fd = sock_listen(ip, port, &o);
    if (a->fd < 0) {
        snprintf(err, errlen, "listen on %s: %s", ipport_str(ip, port, addr), strerror(-a->fd));
        free(a);
        return NULL;
    }
    if (loop_io_start(l, &a->io, a->fd, EPOLLIN, on_accept, a) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        close(a->fd);
        free(a);
        return NULL;
    }
    return a;
}

void
admin_http_stop(struct admin_http *a)
{
    if (a == NULL)
        return;
    while (a->clients != NULL)
        client_close(a->clients);
    loop_run_deferred(a->loop); /* the clients' frees, before |a| goes */
    loop_io_stop(a->loop, &a->io);
    close(a->fd);
    free(a);
}
