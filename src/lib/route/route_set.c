/*
 * route_set.c - tables by (namespace, hostname, port), and the store that
 * swaps whole sets. A set is a sorted array of table references, built once
 * and then only read; route_store_apply() builds the next set from the
 * current one (tables that did not change are shared, not copied) and swaps
 * the pointer under a mutex held for nothing else, so a request that took a
 * reference keeps a consistent set however many updates land meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "route/route_internal.h"

struct route_set {
    atomic_long refs;
    struct route_table **v; /* sorted by key_cmp */
    size_t n;
};

struct route_table *
route_table_ref(struct route_table *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

void
route_table_unref(struct route_table *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1)
        rt_table_free(t);
}

const char *
route_table_key(const struct route_table *t)
{
    return t->key;
}

enum route_protocol
route_table_protocol(const struct route_table *t)
{
    return t->protocol;
}

size_t
route_table_rules(const struct route_table *t)
{
    return t->is_default ? 0 : t->n_rules;
}

uint64_t
route_table_regex_errors(const struct route_table *t)
{
    return atomic_load(&((struct route_table *)t)->regex_errors);
}

static int
key_cmp3(const char *ns, const char *host, uint32_t port, const struct route_table *t)
{
    int c = strcmp(ns, t->ns);
    if (c == 0)
        c = strcmp(host, t->host);
    if (c == 0)
        c = port < t->port ? -1 : port > t->port;
    return c;
}

static int
table_cmp(const void *a, const void *b)
{
    const struct route_table *x = *(struct route_table *const *)a;
    return key_cmp3(x->ns, x->host, x->port, *(struct route_table *const *)b);
}

struct route_set *
route_set_ref(struct route_set *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void
route_set_unref(struct route_set *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        route_table_unref(s->v[i]);
    free(s->v);
    free(s);
}

size_t
route_set_count(const struct route_set *s)
{
    return s->n;
}

const struct route_table *
route_set_find(const struct route_set *s, const char *ns, const char *host, uint32_t port)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp3(ns, host, port, s->v[mid]);
        if (c == 0)
            return s->v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static struct route_set *
set_new(struct route_table **v, size_t n)
{
    struct route_set *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->v = v;
    s->n = n;
    if (n > 1)
        qsort(s->v, n, sizeof(*s->v), table_cmp);
    return s;
}

void
route_store_init(struct route_store *st)
{
    CHECK(pthread_mutex_init(&st->mu, NULL) == 0);
    st->cur = set_new(NULL, 0);
    st->generation = 0;
}

void
route_store_destroy(struct route_store *st)
{
    route_set_unref(st->cur);
    st->cur = NULL;
    pthread_mutex_destroy(&st->mu);
}

struct route_set *
route_store_get(struct route_store *st)
{
    pthread_mutex_lock(&st->mu);
    struct route_set *s = route_set_ref(st->cur);
    pthread_mutex_unlock(&st->mu);
    return s;
}

/* Index of the table named |name| in |v|, or n. */
static size_t
find_name(struct route_table **v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != NULL && strcmp(v[i]->key, name) == 0)
            return i;
    return n;
}

int
route_store_apply(struct route_store *st, const struct route_update *u, size_t n, char *err,
                  size_t errlen)
{
    struct route_table **dec = xcalloc(n ? n : 1, sizeof(*dec));
    char why[ROUTE_ERR_MAX];
    int rc = 0;

    /* Decode everything first: one bad resource rejects the response (NACK). */
    for (size_t i = 0; i < n; i++) {
        if (u[i].data == NULL)
            continue;
        if ((rc = route_decode(u[i].data, u[i].len, &dec[i], why, sizeof(why))) < 0) {
            snprintf(err, errlen, "%.200s: %s", u[i].name ? u[i].name : "?", why);
            break;
        }
        if (u[i].name == NULL || strcmp(u[i].name, dec[i]->key) != 0) {
            snprintf(err, errlen, "%.200s: resource name does not match its route %.200s",
                     u[i].name ? u[i].name : "?", dec[i]->key);
            rc = -MESH_ECONFIG;
            break;
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            route_table_unref(dec[i]);
        free(dec);
        return rc;
    }
    struct route_set *old = route_store_get(st);
    size_t cap = old->n + n, m = old->n;
    struct route_table **v = xcalloc(cap ? cap : 1, sizeof(*v));
    for (size_t i = 0; i < old->n; i++)
        v[i] = route_table_ref(old->v[i]);
    for (size_t i = 0; i < n; i++) {
        if (u[i].name == NULL)
            continue;
        size_t at = find_name(v, m, u[i].name);
        if (at < m) {
            route_table_unref(v[at]);
            v[at] = v[--m]; /* order restored by set_new's sort */
        }
        if (dec[i] != NULL)
            v[m++] = dec[i];
    }
    free(dec);
    struct route_set *next = set_new(v, m);
    pthread_mutex_lock(&st->mu);
    struct route_set *prev = st->cur;
    st->cur = next;
    st->generation++;
    pthread_mutex_unlock(&st->mu);
    route_set_unref(prev);
    route_set_unref(old);
    return 0;
}

json_t *
route_set_dump(const struct route_set *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, route_table_dump(s->v[i]));
    return json_pack("{so}", "routes", a);
}
