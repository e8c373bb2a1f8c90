/*
 * l7policy_compile.c - l7pol_decode(): bytes -> wire caps (l7policy_wire.c)
 * -> pb_unpack_checked() -> validation and the compiled form.
 *
 * What is an error here (a NACK naming the field) rather than dropped or
 * guessed at: an action other than ALLOW or DENY (meshd refuses AUDIT and
 * CUSTOM, so one here means a broken control plane), an empty name or
 * namespace, a target of no kind or with an empty part, a StringMatch or
 * PathMatch of no kind, "presence: false", a path template that is not a
 * list of whole segments with "{**}" only last, a header condition without
 * values, a header name that is not an HTTP token (a leading ':' allowed
 * for pseudo-headers). Empty exact/prefix/suffix strings are accepted, as
 * Istio accepts them. The l4 Match is lib/policy's (policy_match.h), with
 * its errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "l7policy/l7policy_internal.h"
#include "pbcheck/pbcheck.h"

struct comp {
    char *err;
    size_t errlen;
    const char *what;
    char path[160];
    size_t entries; /* l4 entries, against POLICY_MAX_ENTRIES */
    struct l7pol *p;
};

static int fail(struct comp *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<what>: <path>.<field>: <message>" and -MESH_EPROTO. */
static int
fail(struct comp *c, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    field = field ? field : "";
    snprintf(c->err, c->errlen, "%s: %s%s%s%s%s", c->what, c->path,
             c->path[0] && field[0] ? "." : "", field, c->path[0] || field[0] ? ": " : "", msg);
    return -MESH_EPROTO;
}

/* ---- memory ---- */

struct l7_block {
    struct l7_block *next;
    _Alignas(16) unsigned char data[];
};

void *
l7_alloc(struct l7pol *p, size_t n)
{
    struct l7_block *b = xcalloc(1, sizeof(*b) + (n ? n : 1));
    b->next = p->mem;
    p->mem = b;
    return b->data;
}

char *
l7_strndup(struct l7pol *p, const char *s, size_t n)
{
    char *d = l7_alloc(p, n + 1);
    memcpy(d, s, n);
    return d;
}

static void
l7_free(struct l7pol *p)
{
    for (size_t i = 0; i < p->n_l4; i++)
        policy_match_free(p->l4[i]);
    free(p->l4);
    struct l7_block *b = p->mem;
    while (b != NULL) {
        struct l7_block *next = b->next;
        free(b);
        b = next;
    }
    free(p);
}

struct l7pol *
l7pol_ref(struct l7pol *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
l7pol_unref(struct l7pol *p)
{
    if (p == NULL)
        return;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) > 0)
        return;
    l7_free(p);
}

/* ---- fields ---- */

static int
name_field(struct comp *c, const char *s, const char *field, bool slash_ok, const char **out)
{
    size_t n = strlen(s);
    if (n == 0)
        return fail(c, field, "required");
    if (!slash_ok && strchr(s, '/') != NULL)
        return fail(c, field, "\"%s\" contains '/'", s);
    *out = l7_strndup(c->p, s, n);
    return 0;
}

static char *
lower(struct l7pol *p, const char *s, size_t n)
{
    char *d = l7_strndup(p, s, n);
    for (size_t i = 0; i < n; i++)
        if (d[i] >= 'A' && d[i] <= 'Z')
            d[i] = (char)(d[i] - 'A' + 'a');
    return d;
}

static int
str_list(struct comp *c, Istio__Security__StringMatch *const *v, size_t n, const char *field,
         bool icase, struct l7_list *out)
{
    char name[64];

    out->v = l7_alloc(c->p, n * sizeof(*out->v));
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        struct l7_str *e = &out->v[i];
        const char *s = "";
        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        switch (v[i]->match_type_case) {
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT:
            e->kind = L7S_EXACT;
            s = v[i]->exact;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX:
            e->kind = L7S_PREFIX;
            s = v[i]->prefix;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX:
            e->kind = L7S_SUFFIX;
            s = v[i]->suffix;
            break;
        case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE:
            e->kind = L7S_PRESENCE;
            break;
        default:
            return fail(c, name, "no match type (exact, prefix, suffix or presence)");
        }
        e->len = strlen(s);
        e->s = icase ? lower(c->p, s, e->len) : l7_strndup(c->p, s, e->len);
    }
    return 0;
}

/*
 * "/a/{*}/b/{**}": '/'-separated segments after a leading '/', each a
 * literal without '{' '}' '*', "{*}" or "{**}" (last only).
 */
static int template(struct comp *c, const char *t, const char *field, struct l7_str *e)
{
    size_t n = strlen(t), nseg = 0;

    if (n == 0 || t[0] != '/')
        return fail(c, field, "\"%s\" does not start with '/'", t);
    for (size_t i = 0; i < n; i++)
        nseg += t[i] == '/';
    if (nseg > L7POL_MAX_TEMPLATE)
        return fail(c, field, "%zu segments, more than %d", nseg, L7POL_MAX_TEMPLATE);
    struct l7_seg *seg = l7_alloc(c->p, nseg * sizeof(*seg));
    const char *s = t + 1;
    for (size_t k = 0; k < nseg; k++) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == 3 && memcmp(s, "{*}", 3) == 0) {
            seg[k].kind = L7T_ONE;
        } else if (len == 4 && memcmp(s, "{**}", 4) == 0) {
            if (k + 1 != nseg)
                return fail(c, field, "\"%s\": {**} must be the last segment", t);
            seg[k].kind = L7T_REST;
        } else {
            for (size_t i = 0; i < len; i++)
                if (s[i] == '{' || s[i] == '}' || s[i] == '*')
                    return fail(c, field,
                                "\"%s\": '%c' outside a whole-segment {*} or {**} operator", t,
                                s[i]);
            seg[k].kind = L7T_LITERAL;
            seg[k].s = l7_strndup(c->p, s, len);
            seg[k].len = len;
        }
        s += len + 1;
    }
    e->kind = L7S_TEMPLATE;
    e->seg = seg;
    e->n_seg = nseg;
    e->len = n;
    e->s = l7_strndup(c->p, t, n);
    return 0;
}

static int
path_list(struct comp *c, Amesh__Waypoint__V1__PathMatch *const *v, size_t n, const char *field,
          struct l7_list *out)
{
    char name[64];
    int rc;

    out->v = l7_alloc(c->p, n * sizeof(*out->v));
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        struct l7_str *e = &out->v[i];
        const char *s = "";
        switch (v[i]->kind_case) {
        case AMESH__WAYPOINT__V1__PATH_MATCH__KIND_EXACT:
            e->kind = L7S_EXACT;
            s = v[i]->exact;
            break;
        case AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PREFIX:
            e->kind = L7S_PREFIX;
            s = v[i]->prefix;
            break;
        case AMESH__WAYPOINT__V1__PATH_MATCH__KIND_SUFFIX:
            e->kind = L7S_SUFFIX;
            s = v[i]->suffix;
            break;
        case AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PRESENCE:
            snprintf(name, sizeof(name), "%s[%zu].presence", field, i);
            if (!v[i]->presence)
                return fail(c, name, "must be true when set");
            e->kind = L7S_PRESENCE;
            break;
        case AMESH__WAYPOINT__V1__PATH_MATCH__KIND_TEMPLATE:
            snprintf(name, sizeof(name), "%s[%zu].template", field, i);
            if ((rc = template(c, v[i]->template_, name, e)) < 0)
                return rc;
            continue;
        default:
            snprintf(name, sizeof(name), "%s[%zu]", field, i);
            return fail(c, name, "no match type (exact, prefix, suffix, presence or template)");
        }
        e->len = strlen(s);
        e->s = l7_strndup(c->p, s, e->len);
    }
    return 0;
}

/* RFC 9110 token characters; a leading ':' for pseudo-headers. */
static bool
header_name_ok(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    size_t i = s[0] == ':' ? 1 : 0;
    if (s[i] == '\0')
        return false;
    for (; s[i] != '\0'; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr(tchar, ch) != NULL))
            return false;
    }
    return true;
}

static int
headers(struct comp *c, Amesh__Waypoint__V1__HeaderCond *const *v, size_t n, struct l7_match *m)
{
    char name[64];
    int rc;

    m->hdr = l7_alloc(c->p, n * sizeof(*m->hdr));
    m->n_hdr = n;
    for (size_t i = 0; i < n; i++) {
        const Amesh__Waypoint__V1__HeaderCond *h = v[i];
        snprintf(name, sizeof(name), "headers[%zu]", i);
        if (!header_name_ok(h->name))
            return fail(c, name, "name \"%s\" is not an HTTP header name", h->name);
        if (h->n_values == 0 && h->n_not_values == 0)
            return fail(c, name, "needs values or not_values");
        m->hdr[i].name = lower(c->p, h->name, strlen(h->name));
        snprintf(name, sizeof(name), "headers[%zu].values", i);
        if ((rc = str_list(c, h->values, h->n_values, name, false, &m->hdr[i].values)) < 0)
            return rc;
        snprintf(name, sizeof(name), "headers[%zu].not_values", i);
        if ((rc = str_list(c, h->not_values, h->n_not_values, name, false, &m->hdr[i].not_values)) <
            0)
            return rc;
    }
    c->p->headers |= n > 0;
    return 0;
}

static int
compile_match(struct comp *c, const Amesh__Waypoint__V1__PolicyMatch *pb, struct l7_match *m)
{
    Istio__Security__StringMatch *const *str[L7F_COUNT][2] = {
        [L7F_METHODS] = {pb->methods, pb->not_methods},
        [L7F_HOSTS] = {pb->hosts, pb->not_hosts},
        [L7F_REQ_PRINCIPALS] = {pb->request_principals, pb->not_request_principals},
    };
    const size_t n[L7F_COUNT][2] = {
        [L7F_PATHS] = {pb->n_paths, pb->n_not_paths},
        [L7F_METHODS] = {pb->n_methods, pb->n_not_methods},
        [L7F_HOSTS] = {pb->n_hosts, pb->n_not_hosts},
        [L7F_REQ_PRINCIPALS] = {pb->n_request_principals, pb->n_not_request_principals},
    };
    int rc;

    m->empty = true;
    if (pb->l4 != NULL) {
        char path[200];
        snprintf(path, sizeof(path), "%s.l4", c->path);
        struct policy_match *l4;
        if ((rc = policy_match_compile(pb->l4, c->what, path, &c->entries, &l4, c->err,
                                       c->errlen)) < 0)
            return rc;
        c->p->l4[c->p->n_l4++] = l4;
        if (!policy_match_empty(l4)) {
            m->l4 = l4;
            m->empty = false;
        }
    }
    for (int f = 0; f < L7F_COUNT; f++) {
        for (int neg = 0; neg < 2; neg++) {
            if (n[f][neg] == 0)
                continue;
            m->empty = false;
            const char *field = l7_family_name((enum l7_family)f, neg);
            if (f == L7F_PATHS)
                rc = path_list(c, neg ? pb->not_paths : pb->paths, n[f][neg], field, &m->l[f][neg]);
            else
                rc = str_list(c, str[f][neg], n[f][neg], field, f == L7F_HOSTS, &m->l[f][neg]);
            if (rc < 0)
                return rc;
        }
    }
    if (pb->n_headers > 0) {
        m->empty = false;
        if ((rc = headers(c, pb->headers, pb->n_headers, m)) < 0)
            return rc;
    }
    return 0;
}

static size_t
count_matches(const Amesh__Waypoint__V1__Policy *pb)
{
    size_t n = 0;
    for (size_t i = 0; i < pb->n_rules; i++)
        for (size_t j = 0; j < pb->rules[i]->n_clauses; j++)
            n += pb->rules[i]->clauses[j]->n_matches;
    return n;
}

static int
compile_rules(struct comp *c, const Amesh__Waypoint__V1__Policy *pb)
{
    struct l7pol *p = c->p;
    int rc;

    p->l4 = xcalloc(count_matches(pb) + 1, sizeof(*p->l4));
    p->n_rules = pb->n_rules;
    p->rules = l7_alloc(p, pb->n_rules * sizeof(*p->rules));
    for (size_t i = 0; i < pb->n_rules; i++) {
        const Amesh__Waypoint__V1__PolicyRule *r = pb->rules[i];
        p->rules[i].n = r->n_clauses;
        p->rules[i].c = l7_alloc(p, r->n_clauses * sizeof(*p->rules[i].c));
        for (size_t j = 0; j < r->n_clauses; j++) {
            const Amesh__Waypoint__V1__PolicyClause *cl = r->clauses[j];
            struct l7_clause *out = &p->rules[i].c[j];
            out->n = cl->n_matches;
            out->m = l7_alloc(p, cl->n_matches * sizeof(*out->m));
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
compile_targets(struct comp *c, const Amesh__Waypoint__V1__Policy *pb)
{
    struct l7pol *p = c->p;
    char name[64];
    int rc;

    p->n_targets = pb->n_targets;
    p->targets = l7_alloc(p, pb->n_targets * sizeof(*p->targets));
    for (size_t i = 0; i < pb->n_targets; i++) {
        const Amesh__Waypoint__V1__Target *t = pb->targets[i];
        struct l7_target *o = &p->targets[i];
        switch (t->kind_case) {
        case AMESH__WAYPOINT__V1__TARGET__KIND_GATEWAY:
            snprintf(name, sizeof(name), "targets[%zu].gateway", i);
            o->gateway = true;
            o->ns = p->ns;
            rc = name_field(c, t->gateway, name, false, &o->name);
            break;
        case AMESH__WAYPOINT__V1__TARGET__KIND_SERVICE:
            snprintf(name, sizeof(name), "targets[%zu].service.namespace", i);
            if ((rc = name_field(c, t->service->namespace_, name, false, &o->ns)) < 0)
                return rc;
            snprintf(name, sizeof(name), "targets[%zu].service.hostname", i);
            if ((rc = name_field(c, t->service->hostname, name, false, &o->name)) < 0)
                return rc;
            o->name = lower(p, o->name, strlen(o->name)); /* DNS names: case-insensitive */
            break;
        default:
            snprintf(name, sizeof(name), "targets[%zu]", i);
            return fail(c, name, "neither gateway nor service");
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
l7_compile(const Amesh__Waypoint__V1__Policy *pb, const char *what, struct l7pol **out, char *err,
           size_t errlen)
{
    struct l7pol *p = xcalloc(1, sizeof(*p));
    struct comp c = {.err = err, .errlen = errlen, .what = what, .p = p};
    int rc;

    *out = NULL;
    atomic_init(&p->refs, 0);
    if ((rc = name_field(&c, pb->name, "name", false, &p->name)) < 0 ||
        (rc = name_field(&c, pb->namespace_, "namespace", false, &p->ns)) < 0)
        goto fail;
    if (pb->action != ISTIO__SECURITY__ACTION__ALLOW &&
        pb->action != ISTIO__SECURITY__ACTION__DENY) {
        rc = fail(&c, "action", "%d is not ALLOW (0) or DENY (1)", (int)pb->action);
        goto fail;
    }
    p->action = pb->action == ISTIO__SECURITY__ACTION__DENY ? L7POL_DENY : L7POL_ALLOW;
    size_t klen = strlen(p->ns) + strlen(p->name) + 2;
    char *key = l7_alloc(p, klen);
    snprintf(key, klen, "%s/%s", p->ns, p->name);
    p->key = key;
    if ((rc = compile_targets(&c, pb)) < 0 || (rc = compile_rules(&c, pb)) < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    l7_free(p);
    return rc;
}

int
l7pol_decode(const uint8_t *data, size_t len, struct l7pol **out, char *err, size_t errlen)
{
    char what[160], why[PB_ERR_MAX];
    int rc;

    *out = NULL;
    if (data == NULL)
        len = 0;
    if ((rc = l7_wire_check(data, len, what, sizeof(what), err, errlen)) < 0)
        return rc;
    Amesh__Waypoint__V1__Policy *pb = pb_unpack_checked(
        &amesh__waypoint__v1__policy__descriptor, data, len, L7POL_MAX_BYTES, why, sizeof(why));
    if (pb == NULL) {
        snprintf(err, errlen, "%s: not a valid amesh.waypoint.v1.Policy message: %s", what, why);
        return -MESH_EPROTO;
    }
    rc = l7_compile(pb, what, out, err, errlen);
    amesh__waypoint__v1__policy__free_unpacked(pb, NULL);
    return rc;
}
