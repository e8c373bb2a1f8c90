/*
 * xds_map.c - the string-keyed hash table of lib/xds, plus the output list
 * and small helpers; see xds_internal.h.
 *
 * Resource names are chosen by peers (subscriptions, initial versions), so the
 * table hashes with SipHash-1-3 under a random key per map.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/base.h"
#include "xds/xds_internal.h"

#define MAP_MIN_CAP 16

uint64_t
xds_random64(void)
{
    uint64_t r;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) == (ssize_t)sizeof(r))
        return r;
    /* Early boot without entropy: weaker, but names still spread. */
    static _Thread_local uint64_t fallback;
    fallback += 0x9e3779b97f4a7c15ULL ^ clock_mono_ms() ^ ((uint64_t)clock_wall_ms() << 20);
    return fallback * 0xbf58476d1ce4e5b9ULL;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 of a NUL-terminated string. */
static uint64_t
siphash13(uint64_t k0, uint64_t k1, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t len = strlen(s);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, p + i, 8); /* little-endian hosts only, like the rest of amesh */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void
xds_map_init(struct xds_map *m)
{
    memset(m, 0, sizeof(*m));
    m->k0 = xds_random64();
    m->k1 = xds_random64();
}

void
xds_map_cleanup(struct xds_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->n = 0;
}

static size_t
find_slot(const struct xds_map *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct xds_map_slot *sl = &m->slots[i];
        if (sl->key == NULL || (sl->hash == h && strcmp(sl->key, key) == 0))
            return i;
    }
}

static void
grow(struct xds_map *m)
{
    struct xds_map_slot *old = m->slots;
    size_t old_cap = m->cap;

    m->cap = old_cap ? old_cap * 2 : MAP_MIN_CAP;
    m->slots = xcalloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == NULL)
            continue;
        m->slots[find_slot(m, old[i].key, old[i].hash)] = old[i];
    }
    free(old);
}

void *
xds_map_get(const struct xds_map *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    uint64_t h = siphash13(m->k0, m->k1, key);
    const struct xds_map_slot *sl = &m->slots[find_slot(m, key, h)];
    return sl->key ? sl->val : NULL;
}

void *
xds_map_put(struct xds_map *m, const char *key, void *val)
{
    /* Load factor at most 3/4. */
    if ((m->n + 1) * 4 > m->cap * 3)
        grow(m);
    uint64_t h = siphash13(m->k0, m->k1, key);
    struct xds_map_slot *sl = &m->slots[find_slot(m, key, h)];
    void *old = sl->key ? sl->val : NULL;
    if (sl->key == NULL)
        m->n++;
    sl->key = key;
    sl->val = val;
    sl->hash = h;
    return old;
}

void *
xds_map_del(struct xds_map *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    size_t mask = m->cap - 1;
    uint64_t h = siphash13(m->k0, m->k1, key);
    size_t i = find_slot(m, key, h);
    if (m->slots[i].key == NULL)
        return NULL;
    void *val = m->slots[i].val;

    /* Backward shift: pull later members of the run into the hole, no tombstones. */
    for (size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        struct xds_map_slot *sl = &m->slots[j];
        if (sl->key == NULL)
            break;
        size_t home = sl->hash & mask;
        /* Move |sl| into the hole at |i| unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        m->slots[i] = *sl;
        i = j;
    }
    m->slots[i].key = NULL;
    m->slots[i].val = NULL;
    m->n--;
    return val;
}

bool
xds_map_next(const struct xds_map *m, size_t *i, const char **key, void **val)
{
    for (; *i < m->cap; (*i)++) {
        const struct xds_map_slot *sl = &m->slots[*i];
        if (sl->key != NULL) {
            *key = sl->key;
            *val = sl->val;
            (*i)++;
            return true;
        }
    }
    return false;
}

void
xds_out_init(struct xds_out *o)
{
    memset(o, 0, sizeof(*o));
}

void
xds_out_cleanup(struct xds_out *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].data);
    free(o->v);
    xds_out_init(o);
}

struct xds_msg *
xds_out_add(struct xds_out *o, uint8_t *data, size_t len)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4;
        o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    struct xds_msg *msg = &o->v[o->n++];
    memset(msg, 0, sizeof(*msg));
    msg->data = data;
    msg->len = len;
    return msg;
}

bool
xds_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}
