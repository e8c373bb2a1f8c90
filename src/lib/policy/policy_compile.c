/*
 * policy_compile.c - an istio.security.Authorization (protobuf-c structs, from
 * the wire or from JSON) -> a compiled struct policy, checking what protobuf
 * cannot: names, known enums, caps, address lengths, prefix lengths, ports
 * and that every StringMatch has a match type.
 *
 * Differences from ztunnel, which drops what it cannot use (an address of
 * the wrong length or prefix, a StringMatch without a type) and truncates a
 * port to 16 bits: here each is an error naming the field, so the control
 * plane sees a NACK instead of a policy that matches more or less than
 * written. So is a service account with an empty namespace or name (it could
 * never match). Extensions are ignored, as ztunnel does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "policy/policy_internal.h"

struct comp {
    char *err;
    size_t errlen;
    bool json;
    char what[160]; /* "policy <ns>/<name>" */
    char path[96];  /* "rules[0].clauses[1].matches[2]" */
    size_t entries; /* against POLICY_MAX_ENTRIES */
    struct pol_arena *a;
};

static int fail(struct comp *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(struct comp *c, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s%s%s", c->what, c->path, c->path[0] ? "." : "", msg);
    return rc;
}

static int
invalid(const struct comp *c)
{
    return c->json ? -MESH_ECONFIG : -MESH_EPROTO;
}

static int
count(struct comp *c, size_t n, size_t max, const char *field)
{
    if (n > max)
        return fail(c, -MESH_ELIMIT, "%s: %zu entries, more than %zu", field, n, max);
    c->entries += n;
    if (c->entries > POLICY_MAX_ENTRIES)
        return fail(c, -MESH_ELIMIT, "%s: more than %d entries in the whole policy", field,
                    POLICY_MAX_ENTRIES);
    return 0;
}

static int
name_field(struct comp *c, const char *s, const char *field, bool required, const char **out)
{
    s = s ? s : "";
    size_t n = strlen(s);
    if (required && n == 0)
        return fail(c, invalid(c), "%s is required", field);
    if (n > POLICY_MAX_NAME)
        return fail(c, -MESH_ELIMIT, "%s: %zu bytes, more than %d", field, n, POLICY_MAX_NAME);
    if (strchr(s, '/') != NULL)
        return fail(c, invalid(c), "%s: \"%s\" contains '/'", field, s);
    *out = pol_arena_strdup(c->a, s);
    return 0;
}

static int
string(struct comp *c, const char *s, const char *field, size_t i, const char **out, size_t *len)
{
    s = s ? s : "";
    size_t n = strlen(s);
    if (n > POLICY_MAX_STRING)
        return fail(c, -MESH_ELIMIT, "%s[%zu]: %zu bytes, more than %d", field, i, n,
                    POLICY_MAX_STRING);
    *out = pol_arena_strdup(c->a, s);
    if (len != NULL)
        *len = n;
    return 0;
}

static int
str_list(struct comp *c, Istio__Security__StringMatch *const *v, size_t n, const char *field,
         struct pol_list *out)
{
    struct pol_str *l = pol_arena_alloc(c->a, n * sizeof(*l));
    int rc;

    for (size_t i = 0; i < n; i++) {
        const Istio__Security__StringMatch *m = v[i];
        const char *s = "";
        switch (m->match_type_case) {
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT:
            l[i].kind = PS_EXACT;
            s = m->exact;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX:
            l[i].kind = PS_PREFIX;
            s = m->prefix;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX:
            l[i].kind = PS_SUFFIX;
            s = m->suffix;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE:
            l[i].kind = PS_PRESENCE;
            break;
        default:
            return fail(c, invalid(c), "%s[%zu]: no match type (exact, prefix, suffix or presence)",
                        field, i);
        }
        if ((rc = string(c, s, field, i, &l[i].s, &l[i].len)) < 0)
            return rc;
    }
    out->v = l;
    out->n = n;
    return 0;
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int
cidr(struct comp *c, const Istio__Security__Address *a, const char *field, size_t i,
     struct pol_cidr *out)
{
    size_t len = a->address.len;
    if (len != 4 && len != 16)
        return fail(c, invalid(c), "%s[%zu]: %zu bytes, not an IPv4 (4) or IPv6 (16) address",
                    field, i, len);
    if (a->length > len * 8)
        return fail(c, invalid(c), "%s[%zu]: prefix length %u exceeds %zu", field, i, a->length,
                    len * 8);
    unsigned bits = a->length;
    memset(&out->net, 0, sizeof(out->net));
    if (len == 16 && bits >= 96 && memcmp(a->address.data, v4mapped, 12) == 0) {
        /* ::ffff:a.b.c.d/n is a.b.c.d/(n-96): requests are normalised the same way. */
        out->net.family = AF_INET;
        memcpy(out->net.b, a->address.data + 12, 4);
        bits -= 96;
    } else {
        out->net.family = len == 4 ? AF_INET : AF_INET6;
        memcpy(out->net.b, a->address.data, len);
    }
    for (unsigned b = bits; b < 128; b++)
        out->net.b[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
    out->bits = (uint8_t)bits;
    return 0;
}

static int
cidr_list(struct comp *c, Istio__Security__Address *const *v, size_t n, const char *field,
          struct pol_list *out)
{
    struct pol_cidr *l = pol_arena_alloc(c->a, n * sizeof(*l));
    int rc;

    for (size_t i = 0; i < n; i++)
        if ((rc = cidr(c, v[i], field, i, &l[i])) < 0)
            return rc;
    out->v = l;
    out->n = n;
    return 0;
}

static int
port_list(struct comp *c, const uint32_t *v, size_t n, const char *field, struct pol_list *out)
{
    uint16_t *l = pol_arena_alloc(c->a, n * sizeof(*l));

    for (size_t i = 0; i < n; i++) {
        if (v[i] > 65535)
            return fail(c, invalid(c), "%s[%zu]: %u is not a port (0-65535)", field, i, v[i]);
        l[i] = (uint16_t)v[i];
    }
    out->v = l;
    out->n = n;
    return 0;
}

static int
sa_list(struct comp *c, Istio__Security__ServiceAccountMatch *const *v, size_t n, const char *field,
        struct pol_list *out)
{
    struct pol_sa *l = pol_arena_alloc(c->a, n * sizeof(*l));
    int rc;

    for (size_t i = 0; i < n; i++) {
        if ((rc = string(c, v[i]->namespace_, field, i, &l[i].ns, NULL)) < 0 ||
            (rc = string(c, v[i]->serviceaccount, field, i, &l[i].sa, NULL)) < 0)
            return rc;
        /* An identity's parts are never empty: such an entry could never match. */
        if (l[i].ns[0] == '\0' || l[i].sa[0] == '\0')
            return fail(c, invalid(c), "%s[%zu]: namespace and serviceAccount must not be empty",
                        field, i);
    }
    out->v = l;
    out->n = n;
    return 0;
}

/* The twelve lists of a Match, in family order, positive then negative. */
static int
compile_match(struct comp *c, const Istio__Security__Match *pb, struct pol_match *m)
{
    const size_t n[PF_COUNT][2] = {
        [PF_NAMESPACES] = {pb->n_namespaces, pb->n_not_namespaces},
        [PF_PRINCIPALS] = {pb->n_principals, pb->n_not_principals},
        [PF_SOURCE_IPS] = {pb->n_source_ips, pb->n_not_source_ips},
        [PF_DESTINATION_IPS] = {pb->n_destination_ips, pb->n_not_destination_ips},
        [PF_DESTINATION_PORTS] = {pb->n_destination_ports, pb->n_not_destination_ports},
        [PF_SERVICE_ACCOUNTS] = {pb->n_service_accounts, pb->n_not_service_accounts},
    };
    int rc = 0;

    m->empty = true;
    for (int f = 0; f < PF_COUNT; f++) {
        for (int neg = 0; neg < 2; neg++) {
            const char *field = pol_field_name((enum pol_field)f, neg, c->json);
            struct pol_list *l = &m->l[f][neg];
            if ((rc = count(c, n[f][neg], POLICY_MAX_LIST, field)) < 0)
                return rc;
            if (n[f][neg] == 0)
                continue;
            m->empty = false;
            switch ((enum pol_field)f) {
            case PF_NAMESPACES:
                rc = str_list(c, neg ? pb->not_namespaces : pb->namespaces, n[f][neg], field, l);
                break;
            case PF_PRINCIPALS:
                rc = str_list(c, neg ? pb->not_principals : pb->principals, n[f][neg], field, l);
                break;
            case PF_SOURCE_IPS:
                rc = cidr_list(c, neg ? pb->not_source_ips : pb->source_ips, n[f][neg], field, l);
                break;
            case PF_DESTINATION_IPS:
                rc = cidr_list(c, neg ? pb->not_destination_ips : pb->destination_ips, n[f][neg],
                               field, l);
                break;
            case PF_DESTINATION_PORTS:
                rc = port_list(c, neg ? pb->not_destination_ports : pb->destination_ports,
                               n[f][neg], field, l);
                break;
            case PF_SERVICE_ACCOUNTS:
                rc = sa_list(c, neg ? pb->not_service_accounts : pb->service_accounts, n[f][neg],
                             field, l);
                break;
            case PF_COUNT:
                break;
            }
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int
compile_rules(struct comp *c, const Istio__Security__Authorization *pb, struct policy *p)
{
    int rc;

    if ((rc = count(c, pb->n_rules, POLICY_MAX_RULES, "rules")) < 0)
        return rc;
    p->n_rules = pb->n_rules;
    p->rules = pol_arena_alloc(c->a, pb->n_rules * sizeof(*p->rules));
    for (size_t i = 0; i < pb->n_rules; i++) {
        const Istio__Security__Rule *r = pb->rules[i];
        snprintf(c->path, sizeof(c->path), "rules[%zu]", i);
        if ((rc = count(c, r->n_clauses, POLICY_MAX_CLAUSES, "clauses")) < 0)
            return rc;
        p->rules[i].n = r->n_clauses;
        p->rules[i].c = pol_arena_alloc(c->a, r->n_clauses * sizeof(*p->rules[i].c));
        for (size_t j = 0; j < r->n_clauses; j++) {
            const Istio__Security__Clause *cl = r->clauses[j];
            struct pol_clause *out = &p->rules[i].c[j];
            snprintf(c->path, sizeof(c->path), "rules[%zu].clauses[%zu]", i, j);
            if ((rc = count(c, cl->n_matches, POLICY_MAX_MATCHES, "matches")) < 0)
                return rc;
            out->n = cl->n_matches;
            out->m = pol_arena_alloc(c->a, cl->n_matches * sizeof(*out->m));
            for (size_t k = 0; k < cl->n_matches; k++) {
                snprintf(c->path, sizeof(c->path), "rules[%zu].clauses[%zu].matches[%zu]", i, j, k);
                if ((rc = compile_match(c, cl->matches[k], &out->m[k])) < 0)
                    return rc;
            }
        }
    }
    c->path[0] = '\0';
    return 0;
}

static int
compile(struct comp *c, const Istio__Security__Authorization *pb, struct policy *p)
{
    int rc;

    if ((rc = name_field(c, pb->name, "name", true, &p->name)) < 0)
        return rc;
    if ((unsigned)pb->scope > POLICY_SCOPE_WORKLOAD_SELECTOR)
        return fail(c, invalid(c), "scope: unknown value %d", (int)pb->scope);
    if ((unsigned)pb->action > POLICY_ACTION_DENY)
        return fail(c, invalid(c), "action: unknown value %d", (int)pb->action);
    p->scope = (enum policy_scope)pb->scope;
    p->action = (enum policy_action)pb->action;
    /* An empty namespace would file a NAMESPACE policy with the GLOBAL ones. */
    if ((rc = name_field(c, pb->namespace_, "namespace", p->scope != POLICY_SCOPE_GLOBAL, &p->ns)) <
        0)
        return rc;
    size_t klen = strlen(p->ns) + strlen(p->name) + 2;
    char *key = pol_arena_alloc(c->a, klen);
    snprintf(key, klen, "%s/%s", p->ns, p->name);
    p->key = key;
    p->dry_run = pb->dry_run;
    return compile_rules(c, pb, p);
}

int
policy_match_compile(const Istio__Security__Match *pb, const char *what, const char *path,
                     size_t *entries, struct policy_match **out, char *err, size_t errlen)
{
    struct pol_arena a = {0};
    struct comp c = {.err = err, .errlen = errlen, .entries = *entries, .a = &a};
    int rc;

    *out = NULL;
    snprintf(c.what, sizeof(c.what), "%s", what);
    snprintf(c.path, sizeof(c.path), "%s", path);
    struct policy_match *m = pol_arena_alloc(&a, sizeof(*m));
    if ((rc = compile_match(&c, pb, &m->m)) < 0) {
        pol_arena_free(&a);
        return rc;
    }
    m->a = a;
    *entries = c.entries;
    *out = m;
    return 0;
}

int
policy_compile(const Istio__Security__Authorization *pb, bool json, struct policy **out, char *err,
               size_t errlen)
{
    struct pol_arena a = {0};
    struct comp c = {.err = err, .errlen = errlen, .json = json, .a = &a};
    int rc;

    *out = NULL;
    snprintf(c.what, sizeof(c.what), "policy %.64s/%.64s", pb->namespace_ ? pb->namespace_ : "",
             pb->name ? pb->name : "");
    struct policy *p = pol_arena_alloc(&a, sizeof(*p));
    if ((rc = compile(&c, pb, p)) < 0) {
        pol_arena_free(&a);
        return rc;
    }
    atomic_init(&p->refs, 0);
    p->arena = a;
    *out = p;
    return 0;
}
