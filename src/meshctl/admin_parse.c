/*
 * admin_parse.c - reading what ztunnel's admin port answers meshctl: the
 * response head, then a body sized by Content-Length, chunked, or ending at
 * close; the head and body bounded in size. No I/O (admin_get.c reads).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin_parse.h"
#include "base/base.h"

int
admin_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* What the response head says about the body. */
struct head {
    size_t len; /* bytes of the head, through the blank line */
    int status;
    bool chunked;
    bool has_clen;
    size_t clen;
};

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
                   ? admin_fail(err, errlen, "response head larger than %d bytes", ADMIN_MAX_HEAD)
                   : 1;
    memset(h, 0, sizeof(*h));
    h->len = (size_t)(end - r) + 4;
    if (n < 12 || strncmp(r, "HTTP/1.", 7) != 0 || r[8] != ' ' || r[9] < '1' || r[9] > '5' ||
        sscanf(r + 9, "%3d", &h->status) != 1)
        return admin_fail(err, errlen, "not an HTTP/1.x response");
    const char *p = (const char *)memmem(r, h->len, "\r\n", 2) + 2;
    for (const char *eol; p < end; p = eol + 2) {
        const char *v;
        eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if ((v = header_value(p, eol, "content-length:")) != NULL) {
            char *e;
            errno = 0;
            unsigned long long cl = strtoull(v, &e, 10);
            if (e == v || (*e != '\r' && *e != ' ') || errno != 0 || v[0] == '-')
                return admin_fail(err, errlen, "bad Content-Length");
            if (cl > ADMIN_MAX_RESPONSE)
                return admin_fail(err, errlen, "response of %llu bytes is larger than the %u byte cap",
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
            return admin_fail(err, errlen, "bad chunk size in the response");
        }
        if (size > ADMIN_MAX_RESPONSE - total) {
            free(out);
            return admin_fail(err, errlen, "response larger than the %u byte cap", ADMIN_MAX_RESPONSE);
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
bool
admin_response_complete(const char *r, size_t n)
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
int
admin_response_parse(const char *r, size_t n, char **body, size_t *len, char *err, size_t errlen)
{
    struct head h;
    int rc = parse_head(r, n, &h, err, errlen);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return admin_fail(err, errlen, "connection closed before the end of the response head");
    const char *b = r + h.len;
    size_t avail = n - h.len;
    if (h.chunked) {
        if ((rc = dechunk(b, avail, body, len, err, errlen)) != 0)
            return rc < 0 ? rc : admin_fail(err, errlen, "connection closed inside a chunked body");
    } else if (h.has_clen) {
        if (avail < h.clen)
            return admin_fail(err, errlen, "connection closed after %zu of %zu body bytes", avail,
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
        admin_fail(err, errlen, "admin answered HTTP %d%s%.*s", h.status, cut ? ": " : "",
             cut > 200 ? 200 : cut, *body);
        free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}
