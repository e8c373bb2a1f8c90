/*
 * model_index.c - hash indexes over a model: workloads by IP and uid,
 * services by VIP and "<ns>/<hostname>", endpoints by service key.
 *
 * Open addressing with linear probing over power-of-two tables kept at most
 * half full. Nothing is ever removed (a model only grows while it is built),
 * so there are no tombstones. Keys point into the indexed objects, which the
 * model keeps alive. Keys come from the control plane or the local config,
 * both trusted, so the hash is not seeded.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model_internal.h"

struct slot {
    uint64_t hash;
    const void *key; /* NULL: empty */
    void *val;
};

struct table {
    struct slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t n;
};

/* Workloads naming one service key, in the order they were added. */
struct ep_list {
    struct workload **v;
    size_t n, cap;
};

struct model_index {
    struct table by_ip;  /* struct ipaddr * -> struct workload * */
    struct table by_uid; /* char * -> struct workload * */
    struct table by_vip; /* struct ipaddr * -> struct service * */
    struct table by_key; /* char * -> struct service * */
    struct table eps;    /* char * -> struct ep_list * */
};

typedef bool key_eq_fn(const void *a, const void *b);

static uint64_t
hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL; /* FNV-1a */
    /* Finalizer (splitmix64) so the low bits used for the slot are well mixed. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

static uint64_t
hash_str(const char *s)
{
    return hash_bytes(0xcbf29ce484222325ULL, s, strlen(s));
}

static uint64_t
hash_ip(const struct ipaddr *ip)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ip->family;
    return hash_bytes(h, ip->b, ipaddr_len(ip));
}

static bool
eq_str(const void *a, const void *b)
{
    return strcmp(a, b) == 0;
}

static bool
eq_ip(const void *a, const void *b)
{
    return ipaddr_eq(a, b);
}

/* The slot holding |key|, or the empty slot where it would go. */
static struct slot *
table_find(const struct table *t, uint64_t h, const void *key, key_eq_fn *eq)
{
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct slot *s = &t->slots[i];
        if (s->key == NULL || (s->hash == h && eq(s->key, key)))
            return s;
    }
}

static void
table_grow(struct table *t)
{
    struct table bigger = {.cap = t->cap ? t->cap * 2 : 16, .n = t->n};
    bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
    for (size_t i = 0; i < t->cap; i++) {
        const struct slot *s = &t->slots[i];
        if (s->key == NULL)
            continue;
        size_t mask = bigger.cap - 1, j = s->hash & mask;
        while (bigger.slots[j].key != NULL)
            j = (j + 1) & mask;
        bigger.slots[j] = *s;
    }
    free(t->slots);
    *t = bigger;
}

static void *
table_get(const struct table *t, uint64_t h, const void *key, key_eq_fn *eq)
{
    if (t->n == 0)
        return NULL;
    return table_find(t, h, key, eq)->val;
}

/* The slot for |key|, inserted with a NULL value if it was absent. */
static struct slot *
table_upsert(struct table *t, uint64_t h, const void *key, key_eq_fn *eq)
{
    if ((t->n + 1) * 2 > t->cap)
        table_grow(t);
    struct slot *s = table_find(t, h, key, eq);
    if (s->key == NULL) {
        s->hash = h;
        s->key = key;
        s->val = NULL;
        t->n++;
    }
    return s;
}

/* Sets |key| to |val| unless it is already present: the first added wins. */
static void
table_add_first(struct table *t, uint64_t h, const void *key, key_eq_fn *eq, void *val)
{
    struct slot *s = table_upsert(t, h, key, eq);
    if (s->val == NULL)
        s->val = val;
}

struct model_index *
model_index_new(void)
{
    return xcalloc(1, sizeof(struct model_index));
}

void
model_index_free(struct model_index *ix)
{
    if (ix == NULL)
        return;
    for (size_t i = 0; i < ix->eps.cap; i++) {
        struct ep_list *l = ix->eps.slots[i].val;
        if (l != NULL) {
            free(l->v);
            free(l);
        }
    }
    free(ix->by_ip.slots);
    free(ix->by_uid.slots);
    free(ix->by_vip.slots);
    free(ix->by_key.slots);
    free(ix->eps.slots);
    free(ix);
}

void
model_index_add_workload(struct model_index *ix, struct workload *w)
{
    table_add_first(&ix->by_uid, hash_str(w->uid), w->uid, eq_str, w);
    if (w->network_mode != NETWORK_MODE_HOST)
        for (size_t i = 0; i < w->n_addrs; i++)
            table_add_first(&ix->by_ip, hash_ip(&w->addrs[i]), &w->addrs[i], eq_ip, w);
    for (size_t i = 0; i < w->n_services; i++) {
        const char *key = w->services[i].key;
        struct slot *s = table_upsert(&ix->eps, hash_str(key), key, eq_str);
        struct ep_list *l = s->val;
        if (l == NULL)
            s->val = l = xcalloc(1, sizeof(*l));
        if (l->n > 0 && l->v[l->n - 1] == w)
            continue; /* the same key twice in one workload */
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 4;
            l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = w;
    }
}

void
model_index_add_service(struct model_index *ix, struct service *s)
{
    table_add_first(&ix->by_key, hash_str(s->key), s->key, eq_str, s);
    for (size_t i = 0; i < s->n_vips; i++)
        table_add_first(&ix->by_vip, hash_ip(&s->vips[i]), &s->vips[i], eq_ip, s);
}

struct workload *
model_index_workload_by_ip(const struct model_index *ix, const struct ipaddr *ip)
{
    return table_get(&ix->by_ip, hash_ip(ip), ip, eq_ip);
}

struct workload *
model_index_workload_by_uid(const struct model_index *ix, const char *uid)
{
    return table_get(&ix->by_uid, hash_str(uid), uid, eq_str);
}

struct service *
model_index_service_by_vip(const struct model_index *ix, const struct ipaddr *ip)
{
    return table_get(&ix->by_vip, hash_ip(ip), ip, eq_ip);
}

struct service *
model_index_service_by_key(const struct model_index *ix, const char *key)
{
    return table_get(&ix->by_key, hash_str(key), key, eq_str);
}

struct workload *const *
model_index_endpoints(const struct model_index *ix, const char *key, size_t *n)
{
    const struct ep_list *l = table_get(&ix->eps, hash_str(key), key, eq_str);
    *n = l ? l->n : 0;
    return l && l->n ? l->v : NULL;
}
