/*
 * kubelet_probe.c - readiness probes from the loop, never blocking it: a
 * non-blocking TCP connect to the pod's address (the node routes to every
 * pod), then for httpGet one HTTP/1.1 request whose response head lib/http1
 * parses (status 200-399 is success, as the kubelet's prober says). The
 * whole probe is bounded by its timeout and the head by KL_PROBE_HEAD_MAX.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "http1/http1.h"
#include "kubelet.h"

#define KL_PROBE_HEAD_MAX 8192

struct kl_probe {
    struct loop *loop;
    struct loop_io io;
    struct loop_timer timer;
    int fd;
    char *request; /* NULL: a TCP probe */
    size_t sent;
    char buf[KL_PROBE_HEAD_MAX];
    size_t len;
    struct http1_parser ps;
    kl_probe_fn *cb;
    void *arg;
};

static void
finish(struct kl_probe *pr, bool ok)
{
    kl_probe_fn *cb = pr->cb;
    void *arg = pr->arg;
    kl_probe_cancel(pr);
    cb(arg, ok);
}

static void
on_timeout(void *arg)
{
    finish(arg, false);
}

static void
on_io(void *arg, uint32_t events)
{
    struct kl_probe *pr = arg;
    (void)events;
    if (pr->sent == 0 && pr->len == 0 && !(pr->io.events & EPOLLIN)) {
        int e = 0;
        socklen_t el = sizeof(e);
        if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
            finish(pr, false);
            return;
        }
        if (pr->request == NULL) { /* tcpSocket: connected is success */
            finish(pr, true);
            return;
        }
    }
    if (pr->request != NULL && pr->sent < strlen(pr->request)) {
        ssize_t w =
            send(pr->fd, pr->request + pr->sent, strlen(pr->request) - pr->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            finish(pr, false);
            return;
        }
        if (w > 0)
            pr->sent += (size_t)w;
        if (pr->sent == strlen(pr->request))
            loop_io_set(pr->loop, &pr->io, EPOLLIN);
        return;
    }
    ssize_t r = recv(pr->fd, pr->buf + pr->len, sizeof(pr->buf) - pr->len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        finish(pr, false); /* closed (or failed) before a whole head */
        return;
    }
    pr->len += (size_t)r;
    size_t used = 0;
    struct http1_span data;
    int ev = http1_parse(&pr->ps, pr->buf, pr->len, &used, &data);
    if (ev == HTTP1_HEAD && pr->ps.head.status >= 100 && pr->ps.head.status < 200) {
        /* An interim response: the final one follows. */
        memmove(pr->buf, pr->buf + used, pr->len - used);
        pr->len -= used;
        return;
    }
    if (ev == HTTP1_HEAD)
        finish(pr, pr->ps.head.status >= 200 && pr->ps.head.status < 400);
    else if (ev < 0 || pr->len == sizeof(pr->buf))
        finish(pr, false);
}

/* A path a request line can carry: origin form, no space or control characters. */
static bool
path_ok(const char *p)
{
    if (p == NULL || p[0] != '/' || strlen(p) > 2048)
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

struct kl_probe *
kl_probe_start(struct loop *l, const char *ip, int port, const char *path, unsigned timeout_ms,
               kl_probe_fn *cb, void *arg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1 ||
        (path != NULL && !path_ok(path)))
        return NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    struct kl_probe *pr = xcalloc(1, sizeof(*pr));
    pr->loop = l;
    pr->fd = fd;
    pr->cb = cb;
    pr->arg = arg;
    if (path != NULL) {
        pr->request = xasprintf("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kube-probe/1.20\r\n"
                                "Accept: */*\r\nConnection: close\r\n\r\n",
                                path, ip, port);
        struct http1_limits lim = {.max_head = KL_PROBE_HEAD_MAX};
        http1_parser_init(&pr->ps, true, &lim);
        http1_parser_expect(&pr->ps, "GET", 3);
    }
    if (loop_io_start(l, &pr->io, fd, EPOLLOUT, on_io, pr) < 0) {
        if (path != NULL)
            http1_parser_free(&pr->ps);
        free(pr->request);
        close(fd);
        free(pr);
        return NULL;
    }
    loop_timer_start(l, &pr->timer, timeout_ms, on_timeout, pr);
    return pr;
}

void
kl_probe_cancel(struct kl_probe *pr)
{
    if (pr == NULL)
        return;
    loop_io_stop(pr->loop, &pr->io);
    loop_timer_stop(pr->loop, &pr->timer);
    close(pr->fd);
    if (pr->request != NULL)
        http1_parser_free(&pr->ps);
    free(pr->request);
    free(pr);
}
