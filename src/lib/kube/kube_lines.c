/*
 * kube_lines.c - a watch body is one JSON event per line, but TLS records and
 * HTTP/2 DATA frames cut it anywhere: bytes are held until the '\n'. Lines
 * that arrive whole inside one chunk are passed without a copy; only the
 * unfinished tail is buffered, and the buffer never grows past the cap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube_proto.h"

void
kube_lines_init(struct kube_lines *lb, size_t max)
{
    memset(lb, 0, sizeof(*lb));
    lb->max = max;
}

void
kube_lines_reset(struct kube_lines *lb)
{
    free(lb->buf);
    size_t max = lb->max;
    kube_lines_init(lb, max);
}

void
kube_lines_free(struct kube_lines *lb)
{
    free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->cap = 0;
}

static int
emit(const char *p, size_t n, kube_line_fn *cb, void *arg)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (n == 0)
        return 0;
    return cb(arg, p, n);
}

static int
append(struct kube_lines *lb, const char *p, size_t n)
{
    if (n > lb->max - lb->len) {
        lb->failed = true;
        return -MESH_ELIMIT;
    }
    if (lb->len + n > lb->cap) {
        size_t cap = lb->cap > 0 ? lb->cap : 4096;
        while (cap < lb->len + n)
            cap *= 2;
        if (cap > lb->max)
            cap = lb->max;
        lb->buf = xrealloc(lb->buf, cap);
        lb->cap = cap;
    }
    memcpy(lb->buf + lb->len, p, n);
    lb->len += n;
    return 0;
}

int
kube_lines_feed(struct kube_lines *lb, const void *data, size_t n, kube_line_fn *cb, void *arg)
{
    const char *p = data, *end = p + n;
    int rc;

    if (lb->failed)
        return -MESH_ELIMIT;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return append(lb, p, (size_t)(end - p));
        size_t part = (size_t)(nl - p);
        if (lb->len > 0) {
            if ((rc = append(lb, p, part)) != 0)
                return rc;
            /* The callback may feed nothing back, but keep the buffer stable across it. */
            size_t len = lb->len;
            lb->len = 0;
            rc = emit(lb->buf, len, cb, arg);
        } else {
            if (part > lb->max) {
                lb->failed = true;
                return -MESH_ELIMIT;
            }
            rc = emit(p, part, cb, arg);
        }
        if (rc != 0)
            return rc;
        p = nl + 1;
    }
    /* A long line's buffer goes once it is done, so an idle watch holds nothing. */
    if (lb->len == 0 && lb->cap > 4096) {
        free(lb->buf);
        lb->buf = NULL;
        lb->cap = 0;
    }
    return 0;
}
