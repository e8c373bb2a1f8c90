/*
 * model_store.c - xDS resources by name: a list in arrival order (snapshot
 * order, so "first added wins" lookups do not depend on hashing) and an
 * open-addressing name table with backward-shift deletion (no tombstones,
 * since resources come and go for the life of the process).
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model_store.h"

struct entry {
    struct entry *prev, *next;
    char *name;
    uint64_t hash;
    struct model_address a;
};

struct model_store {
    struct entry *head, *tail;
    struct entry **slots; /* name table; NULL = empty */
    size_t cap, n;        /* cap: 0 or a power of two; n <= cap / 2 */
    size_t n_workloads, n_services;
    struct model *cached; /* last snapshot while nothing changed */
};

static uint64_t
hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a splitmix64 finalizer */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* Index of |name|'s slot, or of the empty slot where it would go. */
static size_t
find(const struct model_store *st, uint64_t h, const char *name)
{
    size_t mask = st->cap - 1, i = h & mask;
    while (st->slots[i] != NULL && (st->slots[i]->hash != h || strcmp(st->slots[i]->name, name)))
        i = (i + 1) & mask;
    return i;
}

static void
grow(struct model_store *st)
{
    size_t old_cap = st->cap;
    struct entry **old = st->slots;

    st->cap = old_cap ? old_cap * 2 : 64;
    st->slots = xcalloc(st->cap, sizeof(*st->slots));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            st->slots[find(st, old[i]->hash, old[i]->name)] = old[i];
    free(old);
}

/* Empties slot |i| and moves later entries of its probe run back into the gap. */
static void
slot_delete(struct model_store *st, size_t i)
{
    size_t mask = st->cap - 1;

    st->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; st->slots[j] != NULL; j = (j + 1) & mask) {
        size_t home = st->slots[j]->hash & mask;
        /* Entry j may fill the gap at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        st->slots[i] = st->slots[j];
        st->slots[j] = NULL;
        i = j;
    }
    st->n--;
}

static void
count(struct model_store *st, const struct model_address *a, int sign)
{
    if (a->workload != NULL)
        st->n_workloads += (size_t)sign;
    if (a->service != NULL)
        st->n_services += (size_t)sign;
}

static void
changed(struct model_store *st)
{
    model_unref(st->cached);
    st->cached = NULL;
}

struct model_store *
model_store_new(void)
{
    return xcalloc(1, sizeof(struct model_store));
}

void
model_store_free(struct model_store *st)
{
    if (st == NULL)
        return;
    for (struct entry *e = st->head, *next; e != NULL; e = next) {
        next = e->next;
        model_address_release(&e->a);
        free(e->name);
        free(e);
    }
    free(st->slots);
    model_unref(st->cached);
    free(st);
}

void
model_store_put_address(struct model_store *st, const char *name, struct model_address *a)
{
    uint64_t h = hash_name(name);

    if ((st->n + 1) * 2 > st->cap)
        grow(st);
    size_t i = find(st, h, name);
    struct entry *e = st->slots[i];
    if (e != NULL) {
        count(st, &e->a, -1);
        model_address_release(&e->a);
    } else {
        e = xcalloc(1, sizeof(*e));
        e->name = xstrdup(name);
        e->hash = h;
        e->prev = st->tail;
        if (st->tail)
            st->tail->next = e;
        else
            st->head = e;
        st->tail = e;
        st->slots[i] = e;
        st->n++;
    }
    e->a = *a;
    memset(a, 0, sizeof(*a));
    count(st, &e->a, +1);
    changed(st);
}

int
model_store_put(struct model_store *st, const char *name, const uint8_t *value, size_t len,
                char *err, size_t errlen)
{
    struct model_address a;
    int rc = model_pb_decode_address(value, len, &a, err, errlen);
    if (rc < 0)
        return rc;
    model_store_put_address(st, name, &a);
    return 0;
}

bool
model_store_remove(struct model_store *st, const char *name)
{
    if (st->n == 0)
        return false;
    size_t i = find(st, hash_name(name), name);
    struct entry *e = st->slots[i];
    if (e == NULL)
        return false;
    slot_delete(st, i);
    if (e->prev)
        e->prev->next = e->next;
    else
        st->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        st->tail = e->prev;
    count(st, &e->a, -1);
    model_address_release(&e->a);
    free(e->name);
    free(e);
    changed(st);
    return true;
}

size_t
model_store_count(const struct model_store *st)
{
    return st->n;
}

struct model *
model_store_snapshot(struct model_store *st)
{
    if (st->cached == NULL) {
        struct workload **ws = xcalloc(st->n_workloads + 1, sizeof(*ws));
        struct service **ss = xcalloc(st->n_services + 1, sizeof(*ss));
        size_t nw = 0, ns = 0;
        for (const struct entry *e = st->head; e != NULL; e = e->next) {
            if (e->a.workload != NULL)
                ws[nw++] = e->a.workload;
            if (e->a.service != NULL)
                ss[ns++] = e->a.service;
        }
        st->cached = model_build(ws, nw, ss, ns);
        free(ws);
        free(ss);
    }
    model_ref(st->cached);
    return st->cached;
}
