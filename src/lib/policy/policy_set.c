/*
 * policy_set.c - the policies a proxy enforces and policy_check(), ztunnel's
 * assert_rbac (src/state.rs) with its PolicyStore (src/state/policy.rs):
 * every policy by "<ns>/<name>", GLOBAL ones also under namespace "",
 * NAMESPACE ones under their namespace. WORKLOAD_SELECTOR policies are only
 * reached through the names a workload lists; a workload may list a policy
 * of any scope by name, as in ztunnel.
 *
 * Dry run (ztunnel PRs 1659, 1745): dry-run policies never decide; their
 * outcome is reported as the verdict the connection would get if they were
 * enforced as well.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "policy/policy_internal.h"

const char POLICY_REASON_DENIED[] = "explicitly denied by";
const char POLICY_REASON_NOT_ALLOWED[] = "allow policies exist, but none allowed";
const char POLICY_REASON_ALLOWED[] = "allowed by";
const char POLICY_REASON_NO_ALLOW[] = "no allow policies";

/* ---- a small chained string map ---- */

struct sm_node {
    struct sm_node *next;
    const char *key; /* owned by the value */
    void *val;
};

struct strmap {
    struct sm_node **b;
    size_t nb, n;
};

static uint64_t
hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static struct sm_node **
sm_slot(const struct strmap *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    struct sm_node **pp = &m->b[hash(key) & (m->nb - 1)];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void *
sm_get(const struct strmap *m, const char *key)
{
    struct sm_node **pp = sm_slot(m, key);
    return pp && *pp ? (*pp)->val : NULL;
}

static void
sm_grow(struct strmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 16;
    struct sm_node **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->nb; i++)
        for (struct sm_node *n = m->b[i], *next; n != NULL; n = next) {
            next = n->next;
            n->next = b[hash(n->key) & (nb - 1)];
            b[hash(n->key) & (nb - 1)] = n;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

/* Sets |key| (borrowed from |val|, which must outlive the entry) to |val|. */
static void
sm_put(struct strmap *m, const char *key, void *val)
{
    if (m->n >= m->nb)
        sm_grow(m);
    struct sm_node **pp = sm_slot(m, key);
    if (*pp != NULL) {
        (*pp)->key = key;
        (*pp)->val = val;
        return;
    }
    struct sm_node *n = xmalloc(sizeof(*n));
    n->next = NULL;
    n->key = key;
    n->val = val;
    *pp = n;
    m->n++;
}

static void *
sm_del(struct strmap *m, const char *key)
{
    struct sm_node **pp = sm_slot(m, key);
    if (pp == NULL || *pp == NULL)
        return NULL;
    struct sm_node *n = *pp;
    void *val = n->val;
    *pp = n->next;
    free(n);
    m->n--;
    return val;
}

static void
sm_free(struct strmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct sm_node *n = m->b[i], *next; n != NULL; n = next) {
            next = n->next;
            if (free_val != NULL)
                free_val(n->val);
            free(n);
        }
    free(m->b);
    memset(m, 0, sizeof(*m));
}

/* ---- the set ---- */

/* The policies filed under one namespace ("" for GLOBAL), in insertion order. */
struct ns_bucket {
    char *ns;
    const struct policy **v;
    size_t n, cap;
};

struct policy_set {
    atomic_int refs;     /* holders beyond the first */
    struct policy **all; /* insertion order; owns one reference each */
    size_t n, cap;
    struct strmap by_key; /* key -> struct policy */
    struct strmap by_ns;  /* namespace -> struct ns_bucket */
};

static const char *
bucket_of(const struct policy *p)
{
    switch (p->scope) {
    case POLICY_SCOPE_GLOBAL:
        return "";
    case POLICY_SCOPE_NAMESPACE:
        return p->ns;
    case POLICY_SCOPE_WORKLOAD_SELECTOR:
        break;
    }
    return NULL;
}

static void
bucket_free(void *v)
{
    struct ns_bucket *b = v;
    free(b->ns);
    free(b->v);
    free(b);
}

static void
file_policy(struct policy_set *s, const struct policy *p)
{
    const char *ns = bucket_of(p);
    if (ns == NULL)
        return;
    struct ns_bucket *b = sm_get(&s->by_ns, ns);
    if (b == NULL) {
        b = xcalloc(1, sizeof(*b));
        b->ns = xstrdup(ns);
        sm_put(&s->by_ns, b->ns, b);
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 4;
        b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
    }
    b->v[b->n++] = p;
}

static void
unfile_policy(struct policy_set *s, const struct policy *p)
{
    const char *ns = bucket_of(p);
    struct ns_bucket *b = ns ? sm_get(&s->by_ns, ns) : NULL;
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i] == p) {
            memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof(*b->v));
            b->n--;
            break;
        }
    if (b->n == 0)
        bucket_free(sm_del(&s->by_ns, ns));
}

struct policy_set *
policy_set_new(void)
{
    return xcalloc(1, sizeof(struct policy_set));
}

void
policy_set_add(struct policy_set *s, struct policy *p)
{
    struct policy *old = sm_get(&s->by_key, p->key);
    sm_put(&s->by_key, p->key, p); /* first: the entry's key is |old|'s until then */
    if (old != NULL) {
        unfile_policy(s, old);
        for (size_t i = 0; i < s->n; i++)
            if (s->all[i] == old)
                s->all[i] = p;
        policy_unref(old);
    } else {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->all = xrealloc(s->all, s->cap * sizeof(*s->all));
        }
        s->all[s->n++] = p;
    }
    file_policy(s, p);
}

bool
policy_set_remove(struct policy_set *s, const char *key)
{
    struct policy *p = sm_del(&s->by_key, key);
    if (p == NULL)
        return false;
    unfile_policy(s, p);
    for (size_t i = 0; i < s->n; i++)
        if (s->all[i] == p) {
            memmove(&s->all[i], &s->all[i + 1], (s->n - i - 1) * sizeof(*s->all));
            s->n--;
            break;
        }
    policy_unref(p);
    return true;
}

struct policy_set *
policy_set_build(struct policy *const *ps, size_t n)
{
    struct policy_set *s = policy_set_new();
    for (size_t i = 0; i < n; i++)
        policy_set_add(s, policy_ref(ps[i]));
    return s;
}

struct policy_set *
policy_set_clone(const struct policy_set *s)
{
    return policy_set_build(s->all, s->n);
}

struct policy_set *
policy_set_ref(struct policy_set *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
policy_set_unref(struct policy_set *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) > 0)
        return;
    sm_free(&s->by_ns, bucket_free);
    sm_free(&s->by_key, NULL);
    for (size_t i = 0; i < s->n; i++)
        policy_unref(s->all[i]);
    free(s->all);
    free(s);
}

size_t
policy_set_count(const struct policy_set *s)
{
    return s ? s->n : 0;
}

const struct policy *
policy_set_at(const struct policy_set *s, size_t i)
{
    return s && i < s->n ? s->all[i] : NULL;
}

const struct policy *
policy_set_get(const struct policy_set *s, const char *key)
{
    return s ? sm_get(&s->by_key, key) : NULL;
}

/* ---- the check ---- */

/* Walks the applicable policies: |r|'s namespace, then GLOBAL, then the names it lists. */
struct walk {
    const struct ns_bucket *b[2];
    size_t stage, i;
};

static const struct policy *
walk_next(const struct policy_set *s, const struct policy_request *r, struct walk *w,
          struct policy_decision *why)
{
    while (w->stage < 2) {
        const struct ns_bucket *b = w->b[w->stage];
        if (b != NULL && w->i < b->n)
            return b->v[w->i++];
        w->stage++;
        w->i = 0;
    }
    while (w->i < r->n_dst_policies) {
        const char *name = r->dst_policies[w->i++];
        const struct policy *p = sm_get(&s->by_key, name);
        if (p != NULL)
            return p;
        if (why != NULL && why->n_unknown++ == 0) /* counted on the first pass only */
            why->unknown = name;
    }
    return NULL;
}

static void
walk_start(const struct policy_set *s, const struct policy_request *r, struct walk *w)
{
    memset(w, 0, sizeof(*w));
    w->b[0] = r->dst_ns && r->dst_ns[0] ? sm_get(&s->by_ns, r->dst_ns) : NULL;
    w->b[1] = sm_get(&s->by_ns, "");
}

static void
set_key(char *dst, const struct policy *p)
{
    size_t n = strlen(p->key);
    memcpy(dst, p->key, n + 1); /* key <= POLICY_KEY_MAX - 1 by compile's caps */
}

static enum policy_verdict
decide(struct policy_decision *why, enum policy_verdict v, const char *reason,
       const struct policy *p)
{
    why->verdict = v;
    why->reason = reason;
    if (p != NULL)
        set_key(why->policy, p);
    return v;
}

static void
decide_dry(struct policy_decision *why, enum policy_verdict v, const char *reason,
           const struct policy *p)
{
    why->dry_run_verdict = v;
    why->dry_run_reason = reason;
    why->dry_run_policy[0] = '\0';
    if (p != NULL)
        set_key(why->dry_run_policy, p);
}

enum policy_verdict
policy_check(const struct policy_set *s, const struct policy_request *r,
             struct policy_decision *why)
{
    struct policy_decision local;
    const struct policy *p, *deny = NULL, *dry_deny = NULL, *allow = NULL, *dry_allow = NULL;
    size_t n_allow = 0, n_dry_allow = 0;
    struct policy_ctx c;
    struct walk w;

    if (why == NULL)
        why = &local;
    why->policy[0] = why->dry_run_policy[0] = '\0';
    why->n_unknown = 0;
    why->unknown = NULL;
    why->dry_run = false;
    if (s == NULL || s->n == 0) {
        why->n_unknown = r->n_dst_policies;
        why->unknown = r->n_dst_policies > 0 ? r->dst_policies[0] : NULL;
        decide_dry(why, POLICY_ALLOW, POLICY_REASON_NO_ALLOW, NULL);
        return decide(why, POLICY_ALLOW, POLICY_REASON_NO_ALLOW, NULL);
    }
    policy_ctx_init(&c, r);
    /* DENY first: every dry-run DENY up to its first match, real ones up to the first match. */
    walk_start(s, r, &w);
    while ((p = walk_next(s, r, &w, why)) != NULL) {
        why->dry_run |= p->dry_run;
        if (p->action != POLICY_ACTION_DENY)
            continue;
        if (p->dry_run && dry_deny == NULL && pol_match(p, &c))
            dry_deny = p;
        else if (!p->dry_run && deny == NULL && pol_match(p, &c))
            deny = p;
    }
    if (deny != NULL) {
        decide_dry(why, POLICY_DENY, POLICY_REASON_DENIED, dry_deny ? dry_deny : deny);
        policy_ctx_done(&c);
        return decide(why, POLICY_DENY, POLICY_REASON_DENIED, deny);
    }
    /* Then ALLOW. */
    walk_start(s, r, &w);
    while ((p = walk_next(s, r, &w, NULL)) != NULL) {
        if (p->action != POLICY_ACTION_ALLOW)
            continue;
        if (p->dry_run) {
            n_dry_allow++;
            if (dry_allow == NULL && pol_match(p, &c))
                dry_allow = p;
        } else {
            n_allow++;
            if (allow == NULL && pol_match(p, &c))
                allow = p;
        }
    }
    policy_ctx_done(&c);
    if (dry_deny != NULL)
        decide_dry(why, POLICY_DENY, POLICY_REASON_DENIED, dry_deny);
    else if (n_allow + n_dry_allow == 0)
        decide_dry(why, POLICY_ALLOW, POLICY_REASON_NO_ALLOW, NULL);
    else if (allow != NULL || dry_allow != NULL)
        decide_dry(why, POLICY_ALLOW, POLICY_REASON_ALLOWED, allow ? allow : dry_allow);
    else
        decide_dry(why, POLICY_DENY, POLICY_REASON_NOT_ALLOWED, NULL);
    if (n_allow == 0)
        return decide(why, POLICY_ALLOW, POLICY_REASON_NO_ALLOW, NULL);
    if (allow != NULL)
        return decide(why, POLICY_ALLOW, POLICY_REASON_ALLOWED, allow);
    return decide(why, POLICY_DENY, POLICY_REASON_NOT_ALLOWED, NULL);
}

const char *
policy_decision_str(const struct policy_decision *d, bool dry_run, char *buf, size_t len)
{
    const char *reason = dry_run ? d->dry_run_reason : d->reason;
    const char *key = dry_run ? d->dry_run_policy : d->policy;
    if (reason == NULL)
        reason = POLICY_REASON_NO_ALLOW;
    if (key[0] != '\0')
        snprintf(buf, len, "%s: %s", reason, key);
    else
        snprintf(buf, len, "%s", reason);
    return buf;
}
