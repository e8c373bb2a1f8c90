/*
 * xds_snapshot.c - immutable, refcounted resource sets; see xds.h.
 *
 * The control plane builds one per config change and hands it to every
 * stream; streams compare it with what each client holds. Sorted by
 * (type_url, name) so lookups are binary searches and a type is one range.
 *
 * What changed from an earlier snapshot is computed once (a merge of the two
 * sorted arrays) and cached in the newer one, so every stream that held the
 * earlier one pushes the change in O(changes) (xds_internal.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"

/* Diffs from this many earlier snapshots are kept per snapshot; more are computed per caller. */
#define DIFF_CACHE_MAX 8

struct xds_snapshot {
    atomic_size_t refs;
    struct xds_resource *v;
    size_t n;
    uint64_t id;
    char version[XDS_VERSION_LEN + 1];
    _Atomic(struct xds_diff *) diffs; /* cached, newest first; published with release */
    atomic_size_t n_diffs;
};

static atomic_uint_fast64_t next_id = 1;

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t
fnv1a(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static void
hex64(uint64_t h, char out[XDS_VERSION_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";

    for (int i = XDS_VERSION_LEN - 1; i >= 0; i--) {
        out[i] = digits[h & 15];
        h >>= 4;
    }
    out[XDS_VERSION_LEN] = '\0';
}

void
xds_version_of(const void *bytes, size_t len, char out[XDS_VERSION_LEN + 1])
{
    hex64(fnv1a(FNV_OFFSET, bytes, len), out);
}

void
xds_resource_cleanup(struct xds_resource *r)
{
    free(r->type_url);
    free(r->name);
    free(r->bytes);
    free(r->version);
    memset(r, 0, sizeof(*r));
}

static int
cmp_key(const char *type_a, const char *name_a, const char *type_b, const char *name_b)
{
    int c = strcmp(type_a, type_b);
    return c != 0 ? c : strcmp(name_a, name_b);
}

static int
cmp_resource(const void *a, const void *b)
{
    const struct xds_resource *x = a, *y = b;
    return cmp_key(x->type_url, x->name, y->type_url, y->name);
}

static bool
resource_ok(const struct xds_resource *r)
{
    return r->type_url != NULL && r->name != NULL && r->type_url[0] != '\0' &&
           strlen(r->type_url) <= XDS_MAX_TYPE_URL_LEN &&
           (r->version == NULL || strlen(r->version) <= XDS_MAX_VERSION_LEN) &&
           (r->bytes != NULL || r->len == 0);
}

static void
free_array(struct xds_resource *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        xds_resource_cleanup(&v[i]);
    free(v);
}

struct xds_snapshot *
xds_snapshot_new(struct xds_resource *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!resource_ok(&v[i])) {
            free_array(v, n);
            return NULL;
        }
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_resource);
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_resource(&v[i - 1], &v[i]) == 0) {
            free_array(v, n);
            return NULL;
        }
        if (v[i].version == NULL) {
            v[i].version = xmalloc(XDS_VERSION_LEN + 1);
            xds_version_of(v[i].bytes, v[i].len, v[i].version);
        }
        /* Each string with its NUL, so ("ab","c") and ("a","bc") differ. */
        h = fnv1a(h, v[i].type_url, strlen(v[i].type_url) + 1);
        h = fnv1a(h, v[i].name, strlen(v[i].name) + 1);
        h = fnv1a(h, v[i].version, strlen(v[i].version) + 1);
    }

    struct xds_snapshot *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->v = v;
    s->n = n;
    s->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    atomic_init(&s->diffs, NULL);
    atomic_init(&s->n_diffs, 0);
    hex64(h, s->version);
    return s;
}

struct xds_snapshot *
xds_snapshot_ref(struct xds_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
xds_snapshot_unref(struct xds_snapshot *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct xds_diff *d = atomic_load_explicit(&s->diffs, memory_order_acquire);
    while (d != NULL) {
        struct xds_diff *next = d->next;
        xds_diff_free(d);
        d = next;
    }
    free_array(s->v, s->n);
    free(s);
}

size_t
xds_snapshot_len(const struct xds_snapshot *s)
{
    return s->n;
}

const struct xds_resource *
xds_snapshot_at(const struct xds_snapshot *s, size_t i)
{
    CHECK(i < s->n);
    return &s->v[i];
}

/* First index whose key is >= (type_url, name); name NULL sorts before every name. */
static size_t
lower_bound(const struct xds_snapshot *s, const char *type_url, const char *name)
{
    size_t lo = 0, hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct xds_resource *r = &s->v[mid];
        int c = strcmp(r->type_url, type_url);
        if (c == 0 && name != NULL)
            c = strcmp(r->name, name);
        else if (c == 0)
            c = 1; /* every name of the type is after "before the first name" */
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct xds_resource *
xds_snapshot_find(const struct xds_snapshot *s, const char *type_url, const char *name)
{
    size_t i = lower_bound(s, type_url, name);

    if (i < s->n && cmp_key(s->v[i].type_url, s->v[i].name, type_url, name) == 0)
        return &s->v[i];
    return NULL;
}

void
xds_snapshot_type_range(const struct xds_snapshot *s, const char *type_url, size_t *first,
                        size_t *n)
{
    size_t lo = lower_bound(s, type_url, NULL), hi = lo, top = s->n;

    /* Upper bound: the first index at or after |lo| holding another type. */
    while (hi < top) {
        size_t mid = hi + (top - hi) / 2;
        if (strcmp(s->v[mid].type_url, type_url) == 0)
            hi = mid + 1;
        else
            top = mid;
    }
    *first = lo;
    *n = hi - lo;
}

const char *
xds_snapshot_version(const struct xds_snapshot *s)
{
    return s->version;
}

uint64_t
xds_snapshot_id(const struct xds_snapshot *s)
{
    return s->id;
}

size_t
xds_snapshot_find_in(const struct xds_snapshot *s, size_t first, size_t n, const char *name)
{
    size_t lo = first, hi = first + n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid].name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static void
diff_add(struct xds_diff *d, size_t *cap, size_t from, size_t to)
{
    if (d->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        d->v = xrealloc(d->v, *cap * sizeof(*d->v));
    }
    d->v[d->n].from = from;
    d->v[d->n++].to = to;
}

/* One merge of the two sorted arrays. */
static struct xds_diff *
diff_compute(const struct xds_snapshot *to, const struct xds_snapshot *from)
{
    struct xds_diff *d = xcalloc(1, sizeof(*d));
    size_t i = 0, j = 0, cap = 0;

    d->from_id = from->id;
    while (i < from->n || j < to->n) {
        int c;
        if (i == from->n)
            c = 1;
        else if (j == to->n)
            c = -1;
        else
            c = cmp_resource(&from->v[i], &to->v[j]);
        if (c < 0) {
            diff_add(d, &cap, i++, SIZE_MAX);
        } else if (c > 0) {
            diff_add(d, &cap, SIZE_MAX, j++);
        } else {
            if (strcmp(from->v[i].version, to->v[j].version) != 0)
                diff_add(d, &cap, i, j);
            i++;
            j++;
        }
    }
    return d;
}

const struct xds_diff *
xds_snapshot_diff(struct xds_snapshot *to, const struct xds_snapshot *from, bool *owned)
{
    struct xds_diff *head = atomic_load_explicit(&to->diffs, memory_order_acquire);

    CHECK(to != from);
    *owned = false;
    for (struct xds_diff *d = head; d != NULL; d = d->next)
        if (d->from_id == from->id)
            return d;
    struct xds_diff *d = diff_compute(to, from);
    /* Full: the caller frees it. Two threads may both pass and add one each; harmless. */
    if (atomic_fetch_add_explicit(&to->n_diffs, 1, memory_order_relaxed) >= DIFF_CACHE_MAX) {
        *owned = true;
        return d;
    }
    do
        d->next = head;
    while (!atomic_compare_exchange_weak_explicit(&to->diffs, &head, d, memory_order_release,
                                                  memory_order_acquire));
    return d;
}

void
xds_diff_free(struct xds_diff *d)
{
    if (d == NULL)
        return;
    free(d->v);
    free(d);
}

static const char *
diff_type(const struct xds_diff_item *it, const struct xds_snapshot *from,
          const struct xds_snapshot *to)
{
    return it->to != SIZE_MAX ? to->v[it->to].type_url : from->v[it->from].type_url;
}

void
xds_diff_type_range(const struct xds_diff *d, const struct xds_snapshot *from,
                    const struct xds_snapshot *to, const char *type_url, size_t *first, size_t *n)
{
    size_t lo = 0, hi = d->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(diff_type(&d->v[mid], from, to), type_url) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    for (hi = lo; hi < d->n && strcmp(diff_type(&d->v[hi], from, to), type_url) == 0;)
        hi++;
    *n = hi - lo;
}
