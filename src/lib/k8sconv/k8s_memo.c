/*
 * k8s_memo.c - the converter's memos (what it built from each pod and
 * Service) found by the object's gen. The store never sees them: an object a
 * reload left equal keeps its gen, so its memo is found again; the memos of
 * gens no longer in effect are freed each time the objects in effect were
 * re-derived (k8s_view_update()).
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

void
k8s_memo_free(struct k8s_memo *m)
{
    if (m == NULL)
        return;
    free(m->sel);
    free(m->sel_gens);
    for (size_t i = 0; i < m->n_pols; i++)
        free(m->pols[i]);
    free(m->pols);
    free(m->b_wp);
    free(m->name);
    free(m->data);
    free(m);
}

static size_t
gen_slot(uint64_t gen, size_t cap)
{
    gen ^= gen >> 33;
    gen *= 0xff51afd7ed558ccdULL;
    gen ^= gen >> 33;
    return (size_t)gen & (cap - 1);
}

/* Puts |m| into |v| (|cap| slots, a free one guaranteed). */
static void
table_put(struct k8s_memo **v, size_t cap, struct k8s_memo *m)
{
    size_t i = gen_slot(m->gen, cap);

    while (v[i] != NULL)
        i = (i + 1) & (cap - 1);
    v[i] = m;
}

struct k8s_memo *
k8s_memo_find(const struct k8s_conv *cv, const struct k8s_obj *o)
{
    if (cv->memo_cap == 0)
        return NULL;
    for (size_t i = gen_slot(o->gen, cv->memo_cap); cv->memos[i] != NULL;
         i = (i + 1) & (cv->memo_cap - 1))
        if (cv->memos[i]->gen == o->gen)
            return cv->memos[i];
    return NULL;
}

/* Moves the memos into a table of |cap| slots. */
static void
table_resize(struct k8s_conv *cv, size_t cap)
{
    struct k8s_memo **v = xcalloc(cap, sizeof(*v));

    for (size_t i = 0; i < cv->memo_cap; i++)
        if (cv->memos[i] != NULL)
            table_put(v, cap, cv->memos[i]);
    free(cv->memos);
    cv->memos = v;
    cv->memo_cap = cap;
}

struct k8s_memo *
k8s_memo_get(struct k8s_conv *cv, const struct k8s_obj *o)
{
    struct k8s_memo *m = k8s_memo_find(cv, o);

    if (m != NULL)
        return m;
    if (2 * (cv->n_memos + 1) > cv->memo_cap)
        table_resize(cv, cv->memo_cap ? 2 * cv->memo_cap : 64);
    m = xcalloc(1, sizeof(*m));
    m->gen = o->gen;
    m->kept = cv->sweep;
    table_put(cv->memos, cv->memo_cap, m);
    cv->n_memos++;
    return m;
}

static void
keep_kind(struct k8s_conv *cv, enum k8s_kind kind)
{
    for (size_t i = 0; i < k8s_store_count(cv->st, kind); i++) {
        struct k8s_memo *m = k8s_memo_find(cv, k8s_store_at(cv->st, kind, i));
        if (m != NULL)
            m->kept = cv->sweep;
    }
}

void
k8s_memo_sweep(struct k8s_conv *cv)
{
    size_t kept = 0;

    cv->sweep++;
    keep_kind(cv, K8S_POD);
    keep_kind(cv, K8S_SERVICE);
    for (size_t i = 0; i < cv->memo_cap; i++) {
        if (cv->memos[i] == NULL)
            continue;
        if (cv->memos[i]->kept == cv->sweep) {
            kept++;
            continue;
        }
        k8s_memo_free(cv->memos[i]);
        cv->memos[i] = NULL;
    }
    /* Slots were emptied in the middle of probe runs: re-file the survivors. */
    size_t cap = 64;
    while (cap < 2 * (kept + 1))
        cap *= 2;
    if (cv->memo_cap > 4 * cap)
        cap *= 2; /* shrink, keeping room to grow */
    else
        cap = cv->memo_cap > cap ? cv->memo_cap : cap;
    cv->n_memos = kept;
    table_resize(cv, cap);
}

void
k8s_memo_clear(struct k8s_conv *cv)
{
    for (size_t i = 0; i < cv->memo_cap; i++)
        k8s_memo_free(cv->memos[i]);
    free(cv->memos);
    cv->memos = NULL;
    cv->memo_cap = 0;
    cv->n_memos = 0;
}
