/*
 * buf.c - capped linear buffer; see buf.h for the picture.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "buf/buf.h"

#define BUF_MIN_ALLOC 4096

void
buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void
buf_cleanup(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

char *
buf_reserve(struct buf *b, size_t want, size_t *room)
{
    if (b->len >= b->max)
        return NULL;
    if (want == 0)
        want = 1;
    if (want > b->max - b->len)
        want = b->max - b->len;
    if (b->cap - b->off - b->len < want && b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->cap - b->len < want) {
        size_t ncap = b->cap ? b->cap : BUF_MIN_ALLOC;
        while (ncap < b->len + want)
            ncap *= 2;
        if (ncap > b->max)
            ncap = b->max;
        b->data = xrealloc(b->data, ncap);
        b->cap = ncap;
    }
    *room = b->cap - b->off - b->len;
    return b->data + b->off + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
    CHECK(b->off + b->len + n <= b->cap);
    b->len += n;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    size_t room;

    if (n > buf_space(b))
        return -MESH_ELIMIT;
    while (n > 0) {
        char *w = buf_reserve(b, n, &room);
        CHECK(w != NULL);
        if (room > n)
            room = n;
        memcpy(w, p, room);
        buf_commit(b, room);
        p = (const char *)p + room;
        n -= room;
    }
    return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    CHECK(n <= b->len);
    b->len -= n;
    b->off = b->len ? b->off + n : 0;
}

void
buf_release_if_empty(struct buf *b)
{
    if (b->len == 0 && b->data != NULL) {
        free(b->data);
        b->data = NULL;
        b->off = b->cap = 0;
    }
}
