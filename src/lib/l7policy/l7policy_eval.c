/*
 * l7policy_eval.c - one request against compiled policies (semantics in
 * l7policy.h). Allocation-free unless a tested header's joined values pass
 * 1 KB; the L4 context (the client principal's text) is built once per
 * request, and only if some policy has an l4 condition.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "l7policy/l7policy_internal.h"

static const char *const family_names[L7F_COUNT][2] = {
    [L7F_PATHS] = {"paths", "not_paths"},
    [L7F_METHODS] = {"methods", "not_methods"},
    [L7F_HOSTS] = {"hosts", "not_hosts"},
    [L7F_REQ_PRINCIPALS] = {"request_principals", "not_request_principals"},
};

const char *
l7_family_name(enum l7_family f, bool neg)
{
    return family_names[f][neg];
}

/* A request with what matching needs, prepared on first use. */
struct ctx {
    const struct l7pol_request *r;
    bool l4_ready;
    struct policy_ctx l4;
};

static bool
eq(const char *a, const char *b, size_t n, bool icase)
{
    return icase ? strncasecmp(a, b, n) == 0 : memcmp(a, b, n) == 0;
}

/* |n| bytes at |s| against {*}/{**} segments; |s| starts with '/' or fails. */
static bool
template_match(const struct l7_str *m, const char *s, size_t n)
{
    size_t pos = 0;

    for (size_t k = 0; k < m->n_seg; k++) {
        const struct l7_seg *g = &m->seg[k];
        if (pos >= n || s[pos] != '/')
            return false;
        pos++;
        if (g->kind == L7T_REST)
            return true; /* the rest, zero or more segments */
        size_t e = pos;
        while (e < n && s[e] != '/')
            e++;
        if (g->kind == L7T_ONE ? e == pos : (e - pos != g->len || memcmp(s + pos, g->s, g->len)))
            return false;
        pos = e;
    }
    return pos == n;
}

bool
l7_str_match(const struct l7_str *m, const char *s, size_t n, bool icase)
{
    switch (m->kind) {
    case L7S_EXACT:
        return n == m->len && eq(s, m->s, n, icase);
    case L7S_PREFIX:
        return n >= m->len && eq(s, m->s, m->len, icase);
    case L7S_SUFFIX:
        return n >= m->len && eq(s + n - m->len, m->s, m->len, icase);
    case L7S_PRESENCE:
        return n > 0;
    case L7S_TEMPLATE:
        return template_match(m, s, n);
    }
    return false;
}

static bool
any(const struct l7_list *l, const char *s, size_t n, bool icase)
{
    for (size_t i = 0; i < l->n; i++)
        if (l7_str_match(&l->v[i], s, n, icase))
            return true;
    return false;
}

/* A positive and a negative list over one value; |s| NULL: the value is absent. */
static bool
family(const struct l7_list *pos, const struct l7_list *neg, const char *s, size_t n, bool icase)
{
    if (pos->n > 0 && (s == NULL || !any(pos, s, n, icase)))
        return false;
    if (neg->n > 0 && s != NULL && any(neg, s, n, icase))
        return false;
    return true;
}

/*
 * One header condition. Values are joined with ',' as Envoy does; presence
 * holds for a present header even if its value is empty, which the string
 * matcher's "non-empty" rule would not, so it is decided here.
 */
static bool
header_holds(const struct l7_hdr *h, const struct l7pol_request *r)
{
    char stack[1024], *heap = NULL, *buf = stack;
    size_t cap = sizeof(stack), len = 0, count = 0;
    const char *v;
    size_t vn;

    while (r->header != NULL && r->header(r->header_arg, h->name, count, &v, &vn)) {
        size_t need = len + (count > 0) + vn;
        if (need > cap) {
            cap = need * 2;
            if (heap == NULL) {
                heap = xmalloc(cap);
                memcpy(heap, stack, len);
            } else {
                heap = xrealloc(heap, cap);
            }
            buf = heap;
        }
        if (count > 0)
            buf[len++] = ',';
        memcpy(buf + len, v, vn);
        len += vn;
        count++;
    }
    bool ok = true;
    for (int neg = 0; neg < 2 && ok; neg++) {
        const struct l7_list *l = neg ? &h->not_values : &h->values;
        if (l->n == 0)
            continue;
        bool hit = false;
        for (size_t i = 0; i < l->n && !hit && count > 0; i++)
            hit = l->v[i].kind == L7S_PRESENCE || l7_str_match(&l->v[i], buf, len, false);
        ok = neg ? !hit : hit;
    }
    free(heap);
    return ok;
}

static bool
match_holds(const struct l7_match *m, struct ctx *c)
{
    const struct l7pol_request *r = c->r;

    if (m->l4 != NULL) {
        if (!c->l4_ready) {
            struct policy_request pr = {.src_id = r->client,
                                        .src_ip = r->src_ip,
                                        .dst_ip = r->dst_ip,
                                        .dst_port = r->dst_port};
            policy_ctx_init(&c->l4, &pr);
            c->l4_ready = true;
        }
        if (!policy_match_eval(m->l4, &c->l4))
            return false;
    }
    const char *rp = r->request_principal;
    if (!family(&m->l[L7F_PATHS][0], &m->l[L7F_PATHS][1], r->path ? r->path : "", r->path_len,
                false) ||
        !family(&m->l[L7F_METHODS][0], &m->l[L7F_METHODS][1], r->method ? r->method : "",
                r->method_len, false) ||
        !family(&m->l[L7F_HOSTS][0], &m->l[L7F_HOSTS][1], r->host ? r->host : "", r->host_len,
                true) ||
        !family(&m->l[L7F_REQ_PRINCIPALS][0], &m->l[L7F_REQ_PRINCIPALS][1], rp, rp ? strlen(rp) : 0,
                false))
        return false;
    for (size_t i = 0; i < m->n_hdr; i++)
        if (!header_holds(&m->hdr[i], r))
            return false;
    return true;
}

static bool
rules_match(const struct l7pol *p, struct ctx *c)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct l7_rule *rule = &p->rules[i];
        bool all = true;
        for (size_t j = 0; j < rule->n && all; j++) {
            const struct l7_clause *cl = &rule->c[j];
            bool hit = cl->n == 0;
            for (size_t k = 0; k < cl->n && !hit; k++)
                hit = !cl->m[k].empty && match_holds(&cl->m[k], c);
            all = hit;
        }
        if (all)
            return true;
    }
    return false;
}

bool
l7pol_applies(const struct l7pol *p, const struct l7pol_request *r)
{
    for (size_t i = 0; i < p->n_targets; i++) {
        const struct l7_target *t = &p->targets[i];
        if (t->gateway) {
            if (r->waypoint_ns != NULL && r->waypoint_name != NULL &&
                strcmp(t->ns, r->waypoint_ns) == 0 && strcmp(t->name, r->waypoint_name) == 0)
                return true;
        } else if (r->service_ns != NULL && r->service_host != NULL &&
                   strcmp(t->ns, r->service_ns) == 0 && strcasecmp(t->name, r->service_host) == 0) {
            return true;
        }
    }
    return false;
}

bool
l7pol_matches(const struct l7pol *p, const struct l7pol_request *r)
{
    struct ctx c = {.r = r};
    bool m = rules_match(p, &c);
    if (c.l4_ready)
        policy_ctx_done(&c.l4);
    return m;
}

const char *
l7pol_key(const struct l7pol *p)
{
    return p->key;
}

enum l7pol_action
l7pol_action(const struct l7pol *p)
{
    return p->action;
}

const char L7POL_REASON_DENIED[] = "explicitly denied by";
const char L7POL_REASON_NOT_ALLOWED[] = "allow policies exist, but none allowed";
const char L7POL_REASON_ALLOWED[] = "allowed by";
const char L7POL_REASON_NO_ALLOW[] = "no allow policies";

static enum l7pol_verdict
decide(struct l7pol_decision *d, enum l7pol_verdict v, const char *reason, const struct l7pol *p)
{
    d->verdict = v;
    d->reason = reason;
    size_t n = p ? strlen(p->key) : 0;
    CHECK(n < sizeof(d->policy)); /* names are capped on the wire */
    memcpy(d->policy, p ? p->key : "", n);
    d->policy[n] = '\0';
    return v;
}

/* The next policy index of two ascending lists, each index once; false at the end. */
static bool
next_index(const size_t *a, size_t na, size_t *ia, const size_t *b, size_t nb, size_t *ib,
           size_t *out)
{
    if (*ia < na && (*ib >= nb || a[*ia] <= b[*ib])) {
        *out = a[(*ia)++];
        if (*ib < nb && b[*ib] == *out)
            (*ib)++;
        return true;
    }
    if (*ib < nb) {
        *out = b[(*ib)++];
        return true;
    }
    return false;
}

/*
 * The policies that apply are the union of the two target lists of the set
 * (l7_set_targets), in key order: every DENY first, the first matching one
 * decides; then the ALLOWs.
 */
enum l7pol_verdict
l7pol_check(const struct l7pol_set *s, const struct l7pol_request *r, struct l7pol_decision *why)
{
    struct l7pol_decision local;
    struct l7pol_decision *d = why ? why : &local;
    struct ctx c = {.r = r};
    const struct l7pol *allow_hit = NULL, *deny_hit = NULL;
    bool any_allow = false;
    const size_t *g, *v;
    size_t ng, nv, i;

    d->applied = 0;
    l7_set_targets(s, r, &g, &ng, &v, &nv);
    for (int pass = 0; pass < 2 && deny_hit == NULL && allow_hit == NULL; pass++) {
        enum l7pol_action want = pass == 0 ? L7POL_DENY : L7POL_ALLOW;
        size_t ia = 0, ib = 0;
        while (next_index(g, ng, &ia, v, nv, &ib, &i)) {
            const struct l7pol *p = l7pol_set_at(s, i);
            if (p->action != want)
                continue;
            d->applied++;
            any_allow |= want == L7POL_ALLOW;
            if (rules_match(p, &c)) {
                *(want == L7POL_DENY ? &deny_hit : &allow_hit) = p;
                break;
            }
        }
    }
    if (c.l4_ready)
        policy_ctx_done(&c.l4);
    if (deny_hit != NULL)
        return decide(d, L7POL_DENIED, L7POL_REASON_DENIED, deny_hit);
    if (!any_allow)
        return decide(d, L7POL_ALLOWED, L7POL_REASON_NO_ALLOW, NULL);
    if (allow_hit != NULL)
        return decide(d, L7POL_ALLOWED, L7POL_REASON_ALLOWED, allow_hit);
    return decide(d, L7POL_DENIED, L7POL_REASON_NOT_ALLOWED, NULL);
}
