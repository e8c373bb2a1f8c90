/*
 * admin_get.c - a tiny HTTP/1.1 client for ztunnel's admin port: one GET
 * over a blocking socket, every step bounded by what is left of one
 * deadline; admin_parse.c reads the response.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "meshctl.h"

static int
split_hostport(const char *hp, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (rb == NULL || (rb[1] != '\0' && rb[1] != ':'))
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(rb - hp - 1), hp + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else if ((colon = strchr(hp, ':')) != NULL && strchr(colon + 1, ':') == NULL) {
        snprintf(host, hostlen, "%.*s", (int)(colon - hp), hp);
    } else {
        snprintf(host, hostlen, "%s", hp); /* a bare host or a bare IPv6 address */
        colon = NULL;
    }
    snprintf(port, portlen, "%s", colon ? colon + 1 : "15000");
    char *e;
    long v = strtol(port, &e, 10);
    return host[0] == '\0' || *e != '\0' || port[0] == '\0' || v < 1 || v > 65535 ? -1 : 0;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Bounds the next blocking call on |fd| by what is left until |deadline|. */
static int
arm(int fd, uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline)
        return -1;
    uint64_t left = deadline - now;
    struct timeval tv = {.tv_sec = (time_t)(left / 1000), .tv_usec = (long)(left % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* connect() obeys it on Linux */
    return 0;
}

static int
dial(const char *host, const char *port, const char *hp, uint64_t deadline, char *err,
     size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res), fd = -1, saved = 0;

    if (rc != 0)
        return admin_fail(err, errlen, "cannot resolve %s: %s", hp, gai_strerror(rc));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (arm(fd, deadline) == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno == EINPROGRESS || errno == EAGAIN ? ETIMEDOUT : errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return admin_fail(err, errlen, "cannot connect to ztunnel admin at %s: %s", hp, strerror(saved));
    return fd;
}

int
admin_get(const char *hostport, const char *path, int timeout_ms, char **body, size_t *len,
          char *err, size_t errlen)
{
    char host[256], port[16], req[1024];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t cap = 2 * ADMIN_MAX_HEAD, n = 0;
    struct admin_reader rd;
    char *buf = NULL;
    int fd, rc = -1;

    *body = NULL;
    *len = 0;
    if (split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0)
        return admin_fail(err, errlen, "bad admin address \"%s\" (want HOST:PORT)", hostport);
    if ((fd = dial(host, port, hostport, deadline, err, errlen)) < 0)
        return -1;
    int reqlen = snprintf(req, sizeof(req),
                          "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshctl\r\n"
                          "Accept: application/json\r\nConnection: close\r\n\r\n",
                          path, hostport);
    for (int off = 0; off < reqlen;) {
        ssize_t w =
            arm(fd, deadline) < 0 ? -1 : send(fd, req + off, (size_t)(reqlen - off), MSG_NOSIGNAL);
        if (w < 0) {
            admin_fail(err, errlen, "sending to %s: %s", hostport,
                 errno == EAGAIN ? "timed out" : strerror(errno));
            goto out;
        }
        off += (int)w;
    }
    /* |buf| holds what the reader has not consumed: at most a head (or trailers), and a read. */
    buf = xmalloc(cap);
    admin_reader_init(&rd);
    for (;;) {
        size_t used;
        ssize_t r = arm(fd, deadline) < 0 ? (errno = EAGAIN, -1) : recv(fd, buf + n, cap - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            admin_fail(err, errlen, "reading from %s: %s", hostport,
                 errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            goto out;
        }
        n += (size_t)r;
        int fed = admin_reader_feed(&rd, buf, n, &used, r == 0, err, errlen);
        memmove(buf, buf + used, n - used);
        n -= used;
        if (fed < 0)
            goto out;
        if (fed > 0)
            break;
        CHECK(n < cap); /* the reader refuses a head or trailer section before it fills |buf| */
    }
    if (admin_reader_result(&rd, body, len, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    if (buf != NULL)
        admin_reader_free(&rd);
    free(buf);
    close(fd);
    return rc;
}
