/*
 * policy.c - one compiled policy: its memory, references, accessors and the
 * match semantics of ztunnel's Authorization::matches (src/rbac.rs):
 *
 *   policy  matches if ANY rule matches (no rules: never)
 *   rule    matches if ALL its clauses match (no clauses: always)
 *   clause  matches if ANY of its matches matches (no matches: always;
 *           an empty match is skipped, so it never matches)
 *   match   every populated family must hold: positive list -> some entry
 *           matches, negative list -> no entry matches
 *
 * Without an identity (plaintext) the principal is "" and fails every
 * principal pattern (ztunnel strips "spiffe://" and fails when it is
 * missing), service accounts fail, and the namespace is "" and is matched as
 * such (exact "" and prefix "" match it, presence does not). A negative list
 * holds when none of its entries match, so notPrincipals, notNamespaces and
 * notServiceAccounts all hold for a plaintext peer.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "policy/policy_internal.h"

/* ---- arena ---- */

struct pol_arena_chunk {
    struct pol_arena_chunk *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK 4096

void *
pol_arena_alloc(struct pol_arena *a, size_t n)
{
    struct pol_arena_chunk *c = a->head;

    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        c = xmalloc(sizeof(*c) + size);
        c->size = size;
        c->used = 0;
        if (a->head != NULL && n > ARENA_CHUNK) {
            /* A big block gets its own chunk behind the current one, which stays in use. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *
pol_arena_strdup(struct pol_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = pol_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    return d;
}

void
pol_arena_free(struct pol_arena *a)
{
    struct pol_arena_chunk *c = a->head;
    while (c != NULL) {
        struct pol_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* ---- lifecycle and accessors ---- */

struct policy *
policy_ref(struct policy *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
policy_unref(struct policy *p)
{
    if (p == NULL)
        return;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) > 0)
        return;
    struct pol_arena a = p->arena; /* |p| itself lives in its arena */
    pol_arena_free(&a);
}

const char *
policy_name(const struct policy *p)
{
    return p->name;
}

const char *
policy_namespace(const struct policy *p)
{
    return p->ns;
}

const char *
policy_key(const struct policy *p)
{
    return p->key;
}

enum policy_scope
policy_scope(const struct policy *p)
{
    return p->scope;
}

enum policy_action
policy_action(const struct policy *p)
{
    return p->action;
}

bool
policy_dry_run(const struct policy *p)
{
    return p->dry_run;
}

static const char *const field_names[PF_COUNT][2][2] = {
    [PF_NAMESPACES] = {{"namespaces", "namespaces"}, {"not_namespaces", "notNamespaces"}},
    [PF_PRINCIPALS] = {{"principals", "principals"}, {"not_principals", "notPrincipals"}},
    [PF_SOURCE_IPS] = {{"source_ips", "sourceIps"}, {"not_source_ips", "notSourceIps"}},
    [PF_DESTINATION_IPS] = {{"destination_ips", "destinationIps"},
                            {"not_destination_ips", "notDestinationIps"}},
    [PF_DESTINATION_PORTS] = {{"destination_ports", "destinationPorts"},
                              {"not_destination_ports", "notDestinationPorts"}},
    [PF_SERVICE_ACCOUNTS] = {{"service_accounts", "serviceAccounts"},
                             {"not_service_accounts", "notServiceAccounts"}},
};

const char *
pol_field_name(enum pol_field f, bool neg, bool json)
{
    return field_names[f][neg][json];
}

/* ---- evaluation ---- */

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void
normalise(struct ipaddr *ip)
{
    if (ip->family == AF_INET6 && memcmp(ip->b, v4mapped, 12) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, 12);
        ip->family = AF_INET;
    }
}

void
policy_ctx_init(struct policy_ctx *c, const struct policy_request *r)
{
    memset(c, 0, offsetof(struct policy_ctx, buf));
    c->heap = NULL;
    c->src = r->src_ip;
    c->dst = r->dst_ip;
    normalise(&c->src);
    normalise(&c->dst);
    c->port = r->dst_port;
    c->ns = c->sa = c->principal = "";
    if (r->src_id == NULL)
        return;
    const char *td = r->src_id->trust_domain ? r->src_id->trust_domain : "";
    c->has_id = true;
    c->ns = r->src_id->ns ? r->src_id->ns : "";
    c->sa = r->src_id->sa ? r->src_id->sa : "";
    c->ns_len = strlen(c->ns);
    size_t td_len = strlen(td), sa_len = strlen(c->sa);
    size_t n = td_len + 4 + c->ns_len + 4 + sa_len;
    char *p = n < sizeof(c->buf) ? c->buf : (c->heap = xmalloc(n + 1));
    memcpy(p, td, td_len);
    memcpy(p + td_len, "/ns/", 4);
    memcpy(p + td_len + 4, c->ns, c->ns_len);
    memcpy(p + td_len + 4 + c->ns_len, "/sa/", 4);
    memcpy(p + n - sa_len, c->sa, sa_len);
    p[n] = '\0';
    c->principal = p;
    c->principal_len = n;
}

void
policy_ctx_done(struct policy_ctx *c)
{
    free(c->heap);
}

static bool
str_matches(const struct pol_str *m, const char *s, size_t n)
{
    switch (m->kind) {
    case PS_EXACT:
        return n == m->len && memcmp(s, m->s, n) == 0;
    case PS_PREFIX:
        return n >= m->len && memcmp(s, m->s, m->len) == 0;
    case PS_SUFFIX:
        return n >= m->len && memcmp(s + n - m->len, m->s, m->len) == 0;
    case PS_PRESENCE:
        return n > 0;
    }
    return false;
}

static bool
cidr_contains(const struct pol_cidr *c, const struct ipaddr *ip)
{
    if (ip->family != c->net.family)
        return false;
    size_t full = c->bits / 8;
    unsigned rest = c->bits % 8;
    if (memcmp(ip->b, c->net.b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (ip->b[full] & mask) == c->net.b[full];
}

static bool
entry_matches(enum pol_field f, const struct pol_list *l, size_t i, const struct policy_ctx *c)
{
    switch (f) {
    case PF_NAMESPACES:
        return str_matches(&((const struct pol_str *)l->v)[i], c->ns, c->ns_len);
    case PF_PRINCIPALS:
        return c->has_id &&
               str_matches(&((const struct pol_str *)l->v)[i], c->principal, c->principal_len);
    case PF_SOURCE_IPS:
        return cidr_contains(&((const struct pol_cidr *)l->v)[i], &c->src);
    case PF_DESTINATION_IPS:
        return cidr_contains(&((const struct pol_cidr *)l->v)[i], &c->dst);
    case PF_DESTINATION_PORTS:
        return ((const uint16_t *)l->v)[i] == c->port;
    case PF_SERVICE_ACCOUNTS: {
        const struct pol_sa *sa = &((const struct pol_sa *)l->v)[i];
        return c->has_id && strcmp(sa->ns, c->ns) == 0 && strcmp(sa->sa, c->sa) == 0;
    }
    case PF_COUNT:
        break;
    }
    return false;
}

static bool
any_matches(enum pol_field f, const struct pol_list *l, const struct policy_ctx *c)
{
    for (size_t i = 0; i < l->n; i++)
        if (entry_matches(f, l, i, c))
            return true;
    return false;
}

static bool
match_matches(const struct pol_match *m, const struct policy_ctx *c)
{
    for (int f = 0; f < PF_COUNT; f++) {
        const struct pol_list *pos = &m->l[f][0], *neg = &m->l[f][1];
        if (pos->n > 0 && !any_matches((enum pol_field)f, pos, c))
            return false;
        if (neg->n > 0 && any_matches((enum pol_field)f, neg, c))
            return false;
    }
    return true;
}

static bool
clause_matches(const struct pol_clause *cl, const struct policy_ctx *c)
{
    if (cl->n == 0)
        return true;
    for (size_t i = 0; i < cl->n; i++)
        if (!cl->m[i].empty && match_matches(&cl->m[i], c))
            return true;
    return false;
}

bool
pol_match(const struct policy *p, const struct policy_ctx *c)
{
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct pol_rule *r = &p->rules[i];
        bool all = true;
        for (size_t j = 0; j < r->n && all; j++)
            all = clause_matches(&r->c[j], c);
        if (all)
            return true;
    }
    return false;
}

bool
policy_match_eval(const struct policy_match *m, const struct policy_ctx *c)
{
    return match_matches(&m->m, c);
}

bool
policy_match_empty(const struct policy_match *m)
{
    return m->m.empty;
}

void
policy_match_free(struct policy_match *m)
{
    if (m == NULL)
        return;
    struct pol_arena a = m->a; /* |m| itself lives in its arena */
    pol_arena_free(&a);
}

bool
policy_matches(const struct policy *p, const struct policy_request *r)
{
    struct policy_ctx c;
    policy_ctx_init(&c, r);
    bool m = pol_match(p, &c);
    policy_ctx_done(&c);
    return m;
}

int
pol_vfail(char *err, size_t errlen, const char *what, const char *path, int rc, const char *field,
          const char *fmt, va_list ap)
{
    char msg[256];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    field = field ? field : "";
    if (path[0] == '\0' && field[0] == '\0')
        snprintf(err, errlen, "%s: %s", what, msg);
    else
        snprintf(err, errlen, "%s: %s%s%s: %s", what, path, path[0] && field[0] ? "." : "", field,
                 msg);
    return rc;
}
