/*
 * l7policy_set.c - immutable, reference-counted sets of L7 policies, kept
 * sorted by "<ns>/<name>" so lookups are a binary search and evaluation
 * order (hence which policy a decision names) does not depend on the order
 * updates arrived in.
 */
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "base/base.h"
#include "l7policy/l7policy_internal.h"

struct l7pol_set {
    atomic_int refs; /* holders beyond the first */
    struct l7pol **v;
    size_t n;
};

static const char *
key_of(const void *e)
{
    return (*(struct l7pol *const *)e)->key;
}

/* Inserts or replaces |p| (a new reference is taken) in the sorted |s|. */
static void
put(struct l7pol_set *s, struct l7pol *p, size_t *cap)
{
    bool found;
    size_t i = bsearch_str(s->v, s->n, sizeof(*s->v), p->key, key_of, &found);
    l7pol_ref(p);
    if (found) {
        l7pol_unref(s->v[i]);
        s->v[i] = p;
        return;
    }
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        s->v = xrealloc(s->v, *cap * sizeof(*s->v));
    }
    memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
    s->v[i] = p;
    s->n++;
}

struct l7pol_set *
l7pol_set_update(const struct l7pol_set *old, struct l7pol *const *add, size_t n_add,
                 const char *const *remove, size_t n_remove)
{
    struct l7pol_set *s = xcalloc(1, sizeof(*s));
    size_t cap = 0;

    atomic_init(&s->refs, 0);
    for (size_t i = 0; old != NULL && i < old->n; i++)
        put(s, old->v[i], &cap);
    for (size_t i = 0; i < n_remove; i++) {
        bool found;
        size_t k = bsearch_str(s->v, s->n, sizeof(*s->v), remove[i], key_of, &found);
        if (!found)
            continue;
        l7pol_unref(s->v[k]);
        memmove(s->v + k, s->v + k + 1, (s->n - k - 1) * sizeof(*s->v));
        s->n--;
    }
    for (size_t i = 0; i < n_add; i++)
        put(s, add[i], &cap);
    return s;
}

struct l7pol_set *
l7pol_set_build(struct l7pol *const *ps, size_t n)
{
    return l7pol_set_update(NULL, ps, n, NULL, 0);
}

struct l7pol_set *
l7pol_set_ref(struct l7pol_set *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
l7pol_set_unref(struct l7pol_set *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        l7pol_unref(s->v[i]);
    free(s->v);
    free(s);
}

size_t
l7pol_set_count(const struct l7pol_set *s)
{
    return s ? s->n : 0;
}

const struct l7pol *
l7pol_set_at(const struct l7pol_set *s, size_t i)
{
    return s != NULL && i < s->n ? s->v[i] : NULL;
}

const struct l7pol *
l7pol_set_get(const struct l7pol_set *s, const char *key)
{
    bool found;
    if (s == NULL)
        return NULL;
    size_t i = bsearch_str(s->v, s->n, sizeof(*s->v), key, key_of, &found);
    return found ? s->v[i] : NULL;
}
