/*
 * zds_cache.c - the node agent's workload cache and per-connection queues of
 * encoded messages; see zds_internal.h.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "zds/zds_internal.h"

#define ZDS_CACHE_MIN_TAB 64
#define ZDS_OUTQ_MIN      16

int
zds_out_new(const struct zds_req *r, int fd, struct zds_out **out)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    int rc = zds_req_encode(r, b, sizeof(b), &len);

    if (rc < 0)
        return rc;
    struct zds_out *o = xmalloc(sizeof(*o) + len);
    o->refs = 1;
    o->kind = r->kind;
    o->fd = fd;
    memcpy(o->uid, r->w.uid, sizeof(o->uid));
    o->len = len;
    memcpy(o->bytes, b, len);
    *out = o;
    return 0;
}

struct zds_out *
zds_out_ref(struct zds_out *o)
{
    o->refs++;
    return o;
}

void
zds_out_unref(struct zds_out *o)
{
    if (o == NULL || --o->refs > 0)
        return;
    if (o->fd >= 0)
        close(o->fd);
    free(o);
}

void
zds_outq_push(struct zds_outq *q, struct zds_out *o)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : ZDS_OUTQ_MIN;
        struct zds_out **v = xcalloc(cap, sizeof(*v));
        for (size_t i = 0; i < q->len; i++)
            v[i] = q->v[(q->head + i) & (q->cap - 1)];
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) & (q->cap - 1)] = o;
    q->len++;
}

struct zds_out *
zds_outq_front(const struct zds_outq *q)
{
    return q->len > 0 ? q->v[q->head] : NULL;
}

struct zds_out *
zds_outq_pop(struct zds_outq *q)
{
    if (q->len == 0)
        return NULL;
    struct zds_out *o = q->v[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return o;
}

void
zds_outq_clear(struct zds_outq *q)
{
    while (q->len > 0)
        zds_out_unref(zds_outq_pop(q));
    free(q->v);
    memset(q, 0, sizeof(*q));
}

/* FNV-1a */
static size_t
uid_hash(const char *uid)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)uid; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return (size_t)h;
}

void
zds_cache_init(struct zds_cache *c)
{
    memset(c, 0, sizeof(*c));
    c->tab_cap = ZDS_CACHE_MIN_TAB;
    c->tab = xcalloc(c->tab_cap, sizeof(*c->tab));
}

void
zds_cache_cleanup(struct zds_cache *c)
{
    for (struct zds_entry *e = c->head, *next; e != NULL; e = next) {
        next = e->next;
        zds_out_unref(e->msg);
        free(e);
    }
    free(c->tab);
    memset(c, 0, sizeof(*c));
}

struct zds_entry *
zds_cache_get(const struct zds_cache *c, const char *uid)
{
    for (struct zds_entry *e = c->tab[uid_hash(uid) & (c->tab_cap - 1)]; e != NULL; e = e->hnext)
        if (strcmp(e->msg->uid, uid) == 0)
            return e;
    return NULL;
}

static void
cache_grow(struct zds_cache *c)
{
    size_t cap = c->tab_cap * 2;
    struct zds_entry **tab = xcalloc(cap, sizeof(*tab));

    for (struct zds_entry *e = c->head; e != NULL; e = e->next) {
        size_t i = uid_hash(e->msg->uid) & (cap - 1);
        e->hnext = tab[i];
        tab[i] = e;
    }
    free(c->tab);
    c->tab = tab;
    c->tab_cap = cap;
}

void
zds_cache_put(struct zds_cache *c, struct zds_out *msg)
{
    struct zds_entry *e = zds_cache_get(c, msg->uid);

    if (e != NULL) {
        zds_out_unref(e->msg);
        e->msg = zds_out_ref(msg);
        return;
    }
    if (c->n + 1 > c->tab_cap)
        cache_grow(c);
    e = xcalloc(1, sizeof(*e));
    e->msg = zds_out_ref(msg);
    size_t i = uid_hash(msg->uid) & (c->tab_cap - 1);
    e->hnext = c->tab[i];
    c->tab[i] = e;
    e->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n++;
}

bool
zds_cache_del(struct zds_cache *c, const char *uid)
{
    struct zds_entry **pp = &c->tab[uid_hash(uid) & (c->tab_cap - 1)];

    for (; *pp != NULL; pp = &(*pp)->hnext) {
        struct zds_entry *e = *pp;
        if (strcmp(e->msg->uid, uid) != 0)
            continue;
        *pp = e->hnext;
        if (e->prev != NULL)
            e->prev->next = e->next;
        else
            c->head = e->next;
        if (e->next != NULL)
            e->next->prev = e->prev;
        else
            c->tail = e->prev;
        zds_out_unref(e->msg);
        free(e);
        c->n--;
        return true;
    }
    return false;
}
