/*
 * buf.h - a linear byte buffer with a hard cap and lazy storage.
 *
 *   storage: [ consumed | data (len) | free space ]
 *            ^data      ^data+off    ^data+off+len  ^data+cap
 *
 * Storage is allocated on first write and can be released when empty, so an
 * idle connection holds no buffer memory. A buffer never grows past |max|.
 */
#ifndef MESH_LIB_BUF_H
#define MESH_LIB_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t off; /* start of unread data */
    size_t len; /* bytes of unread data */
    size_t cap; /* allocated bytes */
    size_t max; /* hard cap on cap; read-only outside buf.c */
    size_t headroom; /* bytes kept free in front of the data (buf_set_headroom) */
};

void buf_init(struct buf *b, size_t max);
/* Frees the storage; |b| may be reused after buf_init(). */
void buf_cleanup(struct buf *b);

/*
 * Returns where to write at least one byte at the end of |b| and stores the
 * room there in |*room|, compacting or growing (up to the cap) as needed;
 * |want| is a hint of how much the caller would like. Returns NULL when |b| is
 * full at its cap.
 */
char *buf_reserve(struct buf *b, size_t want, size_t *room);
/* Marks |n| bytes written after buf_reserve(). */
void buf_commit(struct buf *b, size_t n);
/* Appends |n| bytes; returns 0, or -MESH_ELIMIT (|b| unchanged) past the cap. */
int buf_append(struct buf *b, const void *p, size_t n);
/*
 * Makes an empty |b| start |n| bytes into its storage, so a caller can later
 * write up to |n| bytes just in front of the data (a protocol header).
 */
void buf_set_headroom(struct buf *b, size_t n);
/* Drops |n| bytes from the front. */
void buf_consume(struct buf *b, size_t n);
/* Frees the storage if no data is buffered. */
void buf_release_if_empty(struct buf *b);
/* Returns this thread's cache of released storage to malloc (at exit, for leak checkers). */
void buf_cache_drop(void);

static inline size_t
buf_len(const struct buf *b)
{
    return b->len;
}

static inline const char *
buf_head(const struct buf *b)
{
    /* No storage yet: a valid pointer to nothing (NULL + 0 is undefined behaviour). */
    return b->data != NULL ? b->data + b->off : "";
}

static inline size_t
buf_space(const struct buf *b)
{
    return b->max - b->headroom - b->len;
}

#endif
