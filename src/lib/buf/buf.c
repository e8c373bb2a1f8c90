/*
 * buf.c - capped linear buffer; see buf.h for the picture.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "buf/buf.h"

#define BUF_MIN_ALLOC 4096

/*
 * Released storage is kept in small per-thread free lists by power-of-two
 * size, so a busy tunnel that drains and refills its buffers reuses mapped
 * memory instead of paying malloc, mmap and page faults on every cycle. The
 * cache is bounded in bytes; past it storage goes back to malloc.
 */
#define BUF_CACHE_CLASSES 8 /* 4 KiB .. 512 KiB */
#define BUF_CACHE_BYTES   (8u << 20)

struct cached {
    struct cached *next;
};

static __thread struct cached *cache[BUF_CACHE_CLASSES];
static __thread size_t cache_bytes;

static int
size_class(size_t cap)
{
    size_t c = BUF_MIN_ALLOC;
    for (int i = 0; i < BUF_CACHE_CLASSES; i++, c *= 2)
        if (cap == c)
            return i;
    return -1;
}

static char *
storage_get(size_t cap)
{
    int k = size_class(cap);
    if (k >= 0 && cache[k] != NULL) {
        struct cached *c = cache[k];
        cache[k] = c->next;
        cache_bytes -= cap;
        return (char *)c;
    }
    return xmalloc(cap);
}

static void
storage_put(char *p, size_t cap)
{
    int k = size_class(cap);
    if (p == NULL)
        return;
    if (k < 0 || cache_bytes + cap > BUF_CACHE_BYTES) {
        free(p);
        return;
    }
    struct cached *c = (struct cached *)(void *)p;
    c->next = cache[k];
    cache[k] = c;
    cache_bytes += cap;
}

void
buf_cache_drop(void)
{
    for (int i = 0; i < BUF_CACHE_CLASSES; i++)
        while (cache[i] != NULL) {
            struct cached *c = cache[i];
            cache[i] = c->next;
            free(c);
        }
    cache_bytes = 0;
}

void
buf_init(struct buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void
buf_cleanup(struct buf *b)
{
    storage_put(b->data, b->cap);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

char *
buf_reserve(struct buf *b, size_t want, size_t *room)
{
    if (b->len >= b->max - b->headroom)
        return NULL;
    if (want == 0)
        want = 1;
    if (want > b->max - b->headroom - b->len)
        want = b->max - b->headroom - b->len;
    if (b->cap - b->off - b->len < want && b->off > b->headroom) {
        memmove(b->data + b->headroom, b->data + b->off, b->len);
        b->off = b->headroom;
    }
    if (b->cap - b->off - b->len < want) {
        /* Power-of-two sizes (unless capped) so storage can be cached and reused. */
        size_t ncap = b->cap ? b->cap : BUF_MIN_ALLOC;
        while (ncap < b->headroom + b->len + want)
            ncap *= 2;
        if (ncap > b->max)
            ncap = b->max;
        char *n = storage_get(ncap);
        if (b->len > 0)
            memcpy(n + b->headroom, b->data + b->off, b->len);
        storage_put(b->data, b->cap);
        b->data = n;
        b->off = b->headroom;
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
buf_set_headroom(struct buf *b, size_t n)
{
    CHECK(b->len == 0 && n < b->max);
    b->headroom = n;
    b->off = b->data != NULL ? n : 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    CHECK(n <= b->len);
    b->len -= n;
    b->off = b->len ? b->off + n : (b->data != NULL ? b->headroom : 0);
}

void
buf_release_if_empty(struct buf *b)
{
    if (b->len == 0 && b->data != NULL) {
        storage_put(b->data, b->cap);
        b->data = NULL;
        b->off = b->cap = 0;
    }
}
