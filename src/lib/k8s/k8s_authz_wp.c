/*
 * k8s_authz_wp.c - an AuthorizationPolicy with targetRefs, for waypoints
 * (amesh.waypoint.v1.Policy, proto/waypoint.proto). Validation is
 * k8s_authz.c's, as for any policy; this converts the rules of a valid ALLOW
 * or DENY as a waypoint enforces them (Istio's HTTP RBAC filter):
 *
 *   rule      one PolicyRule; its clauses are ANDed: one for `to` (one
 *             PolicyMatch per operation), one for `from` (one per source),
 *             one per `when` condition
 *   to        hosts, methods (StringMatch as istiod's stringToMatch), paths
 *             (PathMatch: "*" presence, "x*" prefix, "*x" suffix, "{*}" or
 *             "{**}" a template, else exact), ports into l4
 *   from      principals, namespaces, serviceAccounts, ipBlocks (and not*)
 *             into l4 exactly as for ztunnel (ap_from_match);
 *             remoteIpBlocks too: with no trusted proxy hops (Istio's default
 *             numTrustedProxies 0) the remote address is the peer's
 *   when      request.headers[X] a HeaderCond; source.ip, source.namespace,
 *             source.principal, destination.ip, destination.port and
 *             remote.ip into l4
 *   refused   requestPrincipals, trustDomains, request.auth.*, and other
 *             keys (no JWT or SNI at the waypoint yet), remoteIpBlocks beside
 *             ipBlocks: a warning (AM0006) and, as istiod does for ztunnel,
 *             never more permissive than asked: an ALLOW rule using them is
 *             left out, a DENY rule is kept without them (it matches more)
 *
 * Packed with only the rules (Policy field 5); the converter adds name,
 * namespace, targets and action in front (k8s_objects.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_authz_internal.h"
#include "policy/policy.h"
#include "waypoint.pb-c.h"

typedef Amesh__Waypoint__V1__PolicyRule WpRule;
typedef Amesh__Waypoint__V1__PolicyClause WpClause;
typedef Amesh__Waypoint__V1__PolicyMatch WpMatch;
typedef Amesh__Waypoint__V1__PathMatch WpPath;

struct wpc {
    struct ap_conv v;
    const char *refused[16]; /* in the current rule */
    size_t n_refused;
    int refused_line;
};

static size_t
count(const json_t *arr)
{
    return json_is_array(arr) ? json_array_size(arr) : 0;
}

static void
refuse(struct wpc *w, const char *what, int line)
{
    for (size_t i = 0; i < w->n_refused; i++)
        if (strcmp(w->refused[i], what) == 0)
            return;
    if (w->n_refused < ARRAY_LEN(w->refused))
        w->refused[w->n_refused++] = what;
    if (w->refused_line == 0 || line < w->refused_line)
        w->refused_line = line;
}

static WpMatch *
new_match(struct wpc *w)
{
    WpMatch *m = k8s_arena_alloc(w->v.a, sizeof(*m));

    amesh__waypoint__v1__policy_match__init(m);
    w->v.entries++;
    return m;
}

static WpClause *
new_clause(struct wpc *w, size_t cap)
{
    WpClause *c = k8s_arena_alloc(w->v.a, sizeof(*c));

    amesh__waypoint__v1__policy_clause__init(c);
    c->matches = k8s_arena_alloc(w->v.a, (cap + 1) * sizeof(*c->matches));
    w->v.entries++;
    return c;
}

/* Istio's path forms (pkg/config/security: "{*}" and "{**}" make a path template). */
static WpPath *
path_match(struct k8s_arena *a, const char *p)
{
    WpPath *m = k8s_arena_alloc(a, sizeof(*m));
    size_t n = strlen(p);

    amesh__waypoint__v1__path_match__init(m);
    if (strstr(p, "{*}") != NULL || strstr(p, "{**}") != NULL) {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_TEMPLATE;
        m->template_ = (char *)(uintptr_t)p;
    } else if (strcmp(p, "*") == 0) {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PRESENCE;
        m->presence = true;
    } else if (p[0] == '*') {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_SUFFIX;
        m->suffix = (char *)(uintptr_t)(p + 1);
    } else if (n > 0 && p[n - 1] == '*') {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PREFIX;
        m->prefix = k8s_arena_printf(a, "%.*s", (int)(n - 1), p);
    } else {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_EXACT;
        m->exact = (char *)(uintptr_t)p;
    }
    return m;
}

static void
paths(struct wpc *w, const json_t *arr, WpPath ***out, size_t *n)
{
    *n = count(arr);
    *out = k8s_arena_alloc(w->v.a, (*n + 1) * sizeof(**out));
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = path_match(w->v.a, json_string_value(json_array_get(arr, i)));
    w->v.entries += *n;
}

/* An empty istio.security.Match is no condition: leave it out (absent l4). */
static Istio__Security__Match *
l4_or_null(Istio__Security__Match *m)
{
    size_t n = m->n_namespaces + m->n_not_namespaces + m->n_principals + m->n_not_principals +
               m->n_source_ips + m->n_not_source_ips + m->n_destination_ips +
               m->n_not_destination_ips + m->n_destination_ports + m->n_not_destination_ports +
               m->n_service_accounts + m->n_not_service_accounts;
    return n > 0 ? m : NULL;
}

static WpMatch *
to_match(struct wpc *w, const json_t *op)
{
    WpMatch *m = new_match(w);
    Istio__Security__Match *l4 = ap_new_match(&w->v);

    ap_strs(&w->v, k8s_json_member(op, "hosts"), &m->hosts, &m->n_hosts);
    ap_strs(&w->v, k8s_json_member(op, "notHosts"), &m->not_hosts, &m->n_not_hosts);
    ap_strs(&w->v, k8s_json_member(op, "methods"), &m->methods, &m->n_methods);
    ap_strs(&w->v, k8s_json_member(op, "notMethods"), &m->not_methods, &m->n_not_methods);
    paths(w, k8s_json_member(op, "paths"), &m->paths, &m->n_paths);
    paths(w, k8s_json_member(op, "notPaths"), &m->not_paths, &m->n_not_paths);
    ap_ports(&w->v, k8s_json_member(op, "ports"), &l4->destination_ports, &l4->n_destination_ports);
    ap_ports(&w->v, k8s_json_member(op, "notPorts"), &l4->not_destination_ports,
             &l4->n_not_destination_ports);
    m->l4 = l4_or_null(l4);
    return m;
}

/* remoteIpBlocks (or its negation) into the source addresses, unless ipBlocks holds them. */
static void
remote_ips(struct wpc *w, const json_t *src, const char *key, const char *local,
           Istio__Security__Address ***out, size_t *n)
{
    const json_t *arr = k8s_json_member(src, key);

    if (count(arr) == 0)
        return;
    if (count(k8s_json_member(src, local)) > 0) {
        refuse(w, key, k8s_key_line(w->v.x->c, src, key));
        return;
    }
    ap_ips(&w->v, arr, out, n);
}

static WpMatch *
from_match(struct wpc *w, const json_t *src)
{
    static const char *const refused[] = {"requestPrincipals", "notRequestPrincipals",
                                          "trustDomains", "notTrustDomains"};
    WpMatch *m = new_match(w);
    Istio__Security__Match *l4 = ap_from_match(&w->v, src);

    remote_ips(w, src, "remoteIpBlocks", "ipBlocks", &l4->source_ips, &l4->n_source_ips);
    remote_ips(w, src, "notRemoteIpBlocks", "notIpBlocks", &l4->not_source_ips,
               &l4->n_not_source_ips);
    for (size_t i = 0; i < ARRAY_LEN(refused); i++)
        if (count(k8s_json_member(src, refused[i])) > 0)
            refuse(w, refused[i], k8s_key_line(w->v.x->c, src, refused[i]));
    m->l4 = l4_or_null(l4);
    return m;
}

/* One `when` condition, or NULL when the waypoint cannot check its key. */
static WpMatch *
when_match(struct wpc *w, const json_t *cond)
{
    const char *key = json_string_value(k8s_json_member(cond, "key"));
    const json_t *vals = k8s_json_member(cond, "values"), *nvals = k8s_json_member(cond, "notValues");
    size_t kl = strlen(key);

    if (strncmp(key, "request.headers[", 16) == 0 && kl > 17 && key[kl - 1] == ']') {
        WpMatch *m = new_match(w);
        Amesh__Waypoint__V1__HeaderCond *h = k8s_arena_alloc(w->v.a, sizeof(*h));
        amesh__waypoint__v1__header_cond__init(h);
        h->name = k8s_arena_printf(w->v.a, "%.*s", (int)(kl - 17), key + 16);
        ap_strs(&w->v, vals, &h->values, &h->n_values);
        ap_strs(&w->v, nvals, &h->not_values, &h->n_not_values);
        m->headers = k8s_arena_alloc(w->v.a, sizeof(*m->headers));
        m->headers[m->n_headers++] = h;
        return m;
    }
    if (strcmp(key, "remote.ip") == 0) {
        WpMatch *m = new_match(w);
        Istio__Security__Match *l4 = ap_new_match(&w->v);
        ap_ips(&w->v, vals, &l4->source_ips, &l4->n_source_ips);
        ap_ips(&w->v, nvals, &l4->not_source_ips, &l4->n_not_source_ips);
        m->l4 = l4;
        return m;
    }
    if (ap_l4_when_key(key)) {
        WpMatch *m = new_match(w);
        m->l4 = ap_when_match(&w->v, cond);
        return m;
    }
    refuse(w, key, k8s_key_line(w->v.x->c, cond, "key"));
    return NULL;
}

/* One rule, or NULL when an ALLOW leaves it out. */
static WpRule *
convert_rule(struct wpc *w, const json_t *rule, bool allow)
{
    const json_t *to = k8s_json_member(rule, "to"), *from = k8s_json_member(rule, "from"),
                 *when = k8s_json_member(rule, "when");
    WpRule *r = k8s_arena_alloc(w->v.a, sizeof(*r));

    w->n_refused = 0;
    w->refused_line = 0;
    amesh__waypoint__v1__policy_rule__init(r);
    r->clauses = k8s_arena_alloc(w->v.a, (2 + count(when) + 1) * sizeof(*r->clauses));
    w->v.entries++;
    if (count(to) > 0) {
        WpClause *c = new_clause(w, count(to));
        for (size_t i = 0; i < count(to); i++)
            c->matches[c->n_matches++] =
                to_match(w, k8s_json_member(json_array_get(to, i), "operation"));
        r->clauses[r->n_clauses++] = c;
    }
    if (count(from) > 0) {
        WpClause *c = new_clause(w, count(from));
        for (size_t i = 0; i < count(from); i++)
            c->matches[c->n_matches++] =
                from_match(w, k8s_json_member(json_array_get(from, i), "source"));
        r->clauses[r->n_clauses++] = c;
    }
    for (size_t i = 0; i < count(when); i++) {
        WpMatch *m = when_match(w, json_array_get(when, i));
        if (m == NULL)
            continue; /* a DENY goes on without the condition; an ALLOW drops the rule below */
        WpClause *c = new_clause(w, 1);
        c->matches[c->n_matches++] = m;
        r->clauses[r->n_clauses++] = c;
    }
    return allow && w->n_refused > 0 ? NULL : r;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
ap_convert_waypoint(struct apc *x, const json_t *spec, enum action action, int action_line)
{
    struct k8s_arena a = {0};
    struct wpc w = {.v = {.x = x, .a = &a, .ns = x->m->ns}};
    Amesh__Waypoint__V1__Policy pol = AMESH__WAYPOINT__V1__POLICY__INIT;
    const json_t *rules = k8s_json_member(spec, "rules");
    bool allow = action == A_ALLOW;

    if (action == A_AUDIT || action == A_CUSTOM) {
        ap_note(x, K8S_WARNING, action_line, CODE_WP_UNSUPPORTED,
                "The policy has no impact at the waypoint: amesh's waypoint does not support the "
                "%s action; the policy is not sent to waypoints",
                action == A_AUDIT ? "AUDIT" : "CUSTOM");
        return;
    }
    pol.rules = k8s_arena_alloc(&a, (count(rules) + 1) * sizeof(*pol.rules));
    for (size_t i = 0; i < count(rules); i++) {
        WpRule *r = convert_rule(&w, json_array_get(rules, i), allow);
        if (r != NULL)
            pol.rules[pol.n_rules++] = r;
        if (w.n_refused == 0)
            continue;
        qsort(w.refused, w.n_refused, sizeof(w.refused[0]), cmp_str);
        char found[512] = "";
        for (size_t j = 0; j < w.n_refused; j++)
            snprintf(found + strlen(found), sizeof(found) - strlen(found), "%s%s", j ? ", " : "",
                     w.refused[j]);
        ap_note(x, K8S_WARNING, w.refused_line, CODE_WP_UNSUPPORTED,
                allow ? "spec.rules[%zu] is omitted: amesh's waypoint does not support %s yet. "
                        "Within an ALLOW policy this is more restrictive than requested."
                      : "spec.rules[%zu] is enforced without %s, which amesh's waypoint does not "
                        "support yet. This DENY is more restrictive than requested.",
                i, found);
    }
    size_t len = amesh__waypoint__v1__policy__get_packed_size(&pol);
    if (w.v.entries > POLICY_MAX_ENTRIES || len > POLICY_MAX_BYTES) {
        /* Same caps as for ztunnel: a valid object whose rules the waypoint will not hold. */
        ap_note(x, K8S_WARNING, action_line, CODE_WP_UNSUPPORTED,
                "the policy converts to %zu entries and %zu bytes, more than a waypoint accepts "
                "(%d, %d); it is not sent to waypoints",
                w.v.entries, len, POLICY_MAX_ENTRIES, POLICY_MAX_BYTES);
        k8s_arena_free(&a);
        return;
    }
    x->ap->wp_rules = xmalloc(len + 1);
    x->ap->wp_len = amesh__waypoint__v1__policy__pack(&pol, x->ap->wp_rules);
    x->ap->wp_deny = action == A_DENY;
    x->ap->wp_sent = true;
    k8s_arena_free(&a);
}
