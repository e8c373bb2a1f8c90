/*
 * admin_get.c - a tiny HTTP/1.1 client for ztunnel's admin port: one GET
 * over a blocking socket, every step bounded by what is left of one
 * deadline, the head and body bounded in size. Bodies may be sized by
 * Content-Length, chunked, or end at close.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "meshctl.h"

/* What the response head says about the body. */
struct head {
    size_t len; /* bytes of the head, through the blank line */
    int status;
    bool chunked;
    bool has_clen;
    size_t clen;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Header |name| (lower case, with the colon) at the start of line |p|: its value, else NULL. */
static const char *
header_value(const char *p, const char *eol, const char *name)
{
    size_t n = strlen(name);
    if ((size_t)(eol - p) < n || strncasecmp(p, name, n) != 0)
        return NULL;
    p += n;
    while (p < eol && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* Returns 1 if the head is not complete yet, 0 with |h| filled, -1 on error. */
static int
parse_head(const char *r, size_t n, struct head *h, char *err, size_t errlen)
{
    const char *end = memmem(r, n < ADMIN_MAX_HEAD ? n : ADMIN_MAX_HEAD, "\r\n\r\n", 4);
    if (end == NULL)
        return n >= ADMIN_MAX_HEAD
                   ? fail(err, errlen, "response head larger than %d bytes", ADMIN_MAX_HEAD)
                   : 1;
    memset(h, 0, sizeof(*h));
    h->len = (size_t)(end - r) + 4;
    if (n < 12 || strncmp(r, "HTTP/1.", 7) != 0 || r[8] != ' ' || r[9] < '1' || r[9] > '5' ||
        sscanf(r + 9, "%3d", &h->status) != 1)
        return fail(err, errlen, "not an HTTP/1.x response");
    const char *p = (const char *)memmem(r, h->len, "\r\n", 2) + 2;
    for (const char *eol; p < end; p = eol + 2) {
        const char *v;
        eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if ((v = header_value(p, eol, "content-length:")) != NULL) {
            char *e;
            errno = 0;
            unsigned long long cl = strtoull(v, &e, 10);
            if (e == v || (*e != '\r' && *e != ' ') || errno != 0 || v[0] == '-')
                return fail(err, errlen, "bad Content-Length");
            if (cl > ADMIN_MAX_RESPONSE)
                return fail(err, errlen, "response of %llu bytes is larger than the %u byte cap",
                            cl, ADMIN_MAX_RESPONSE);
            h->has_clen = true;
            h->clen = (size_t)cl;
        } else if ((v = header_value(p, eol, "transfer-encoding:")) != NULL) {
            h->chunked = memmem(v, (size_t)(eol - v), "chunked", 7) != NULL;
        }
    }
    return 0;
}

/* Decodes a chunked body of |n| bytes. Returns 1 if it is not complete, 0 or -1. */
static int
dechunk(const char *p, size_t n, char **body, size_t *len, char *err, size_t errlen)
{
    const char *end = p + n;
    size_t total = 0;
    char *out = xmalloc(1);

    for (;;) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        char *e;
        if (eol == NULL)
            break;
        errno = 0;
        unsigned long long size = strtoull(p, &e, 16);
        if (e == p || (e != eol && *e != ';' && *e != ' ') || errno != 0) {
            free(out);
            return fail(err, errlen, "bad chunk size in the response");
        }
        if (size > ADMIN_MAX_RESPONSE - total) {
            free(out);
            return fail(err, errlen, "response larger than the %u byte cap", ADMIN_MAX_RESPONSE);
        }
        p = eol + 2;
        if (size == 0) {
            out[total] = '\0';
            *body = out;
            *len = total;
            return 0; /* trailers, if any, are not needed */
        }
        if ((size_t)(end - p) < size + 2)
            break;
        out = xrealloc(out, total + size + 1);
        memcpy(out + total, p, size);
        total += size;
        p += size + 2;
    }
    free(out);
    return 1;
}

/* Whether |n| bytes hold the whole response, judged from the head only (cheap per read). */
static bool
complete(const char *r, size_t n)
{
    struct head h;
    char err[8], *body;
    size_t len;
    int rc = parse_head(r, n, &h, err, sizeof(err));
    if (rc != 0)
        return rc < 0; /* an error ends the read too */
    if (h.chunked) {
        /* Only a body ending like the last chunk is worth decoding to be sure. */
        if (n < h.len + 5 || memcmp(r + n - 5, "0\r\n\r\n", 5) != 0)
            return false;
        rc = dechunk(r + h.len, n - h.len, &body, &len, err, sizeof(err));
        if (rc == 0)
            free(body);
        return rc <= 0;
    }
    return h.has_clen && n - h.len >= h.clen;
}

/* Decodes the response in |r| (|n| bytes, all that will come). */
static int
parse_response(const char *r, size_t n, char **body, size_t *len, char *err, size_t errlen)
{
    struct head h;
    int rc = parse_head(r, n, &h, err, errlen);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(err, errlen, "connection closed before the end of the response head");
    const char *b = r + h.len;
    size_t avail = n - h.len;
    if (h.chunked) {
        if ((rc = dechunk(b, avail, body, len, err, errlen)) != 0)
            return rc < 0 ? rc : fail(err, errlen, "connection closed inside a chunked body");
    } else if (h.has_clen) {
        if (avail < h.clen)
            return fail(err, errlen, "connection closed after %zu of %zu body bytes", avail,
                        h.clen);
        avail = h.clen;
    }
    if (!h.chunked) {
        *body = xmalloc(avail + 1);
        memcpy(*body, b, avail);
        (*body)[avail] = '\0';
        *len = avail;
    }
    if (h.status != 200) {
        /* Show the start of the server's explanation, one line. */
        int cut = (int)strcspn(*body, "\r\n");
        fail(err, errlen, "admin answered HTTP %d%s%.*s", h.status, cut ? ": " : "",
             cut > 200 ? 200 : cut, *body);
        free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

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
        return fail(err, errlen, "cannot resolve %s: %s", hp, gai_strerror(rc));
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
        return fail(err, errlen, "cannot connect to ztunnel admin at %s: %s", hp, strerror(saved));
    return fd;
}

int
admin_get(const char *hostport, const char *path, int timeout_ms, char **body, size_t *len,
          char *err, size_t errlen)
{
    char host[256], port[16], req[1024];
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t cap = 64 * 1024, n = 0;
    char *buf = NULL;
    int fd, rc = -1;

    *body = NULL;
    *len = 0;
    if (split_hostport(hostport, host, sizeof(host), port, sizeof(port)) < 0)
        return fail(err, errlen, "bad admin address \"%s\" (want HOST:PORT)", hostport);
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
            fail(err, errlen, "sending to %s: %s", hostport,
                 errno == EAGAIN ? "timed out" : strerror(errno));
            goto out;
        }
        off += (int)w;
    }
    buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= (size_t)ADMIN_MAX_RESPONSE + ADMIN_MAX_HEAD) {
                fail(err, errlen, "response larger than the %u byte cap", ADMIN_MAX_RESPONSE);
                goto out;
            }
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = arm(fd, deadline) < 0 ? (errno = EAGAIN, -1) : recv(fd, buf + n, cap - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(err, errlen, "reading from %s: %s", hostport,
                 errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            goto out;
        }
        n += (size_t)r;
        buf[n] = '\0'; /* the head parser uses string functions */
        if (r == 0 || complete(buf, n))
            break;
    }
    if (parse_response(buf, n, body, len, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}
