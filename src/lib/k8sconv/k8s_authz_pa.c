/*
 * k8s_authz_pa.c - PeerAuthentication for ztunnel, as istiod does it
 * (pilot/pkg/serviceregistry/ambient: authorization.go
 * convertedSelectorPeerAuthentications and convertPeerAuthentication,
 * policies.go PolicyCollections, workloads.go fetchPeerAuthentications):
 *
 *   - when any PeerAuthentication exists, the static policy
 *     <root>/istio_converted_static_strict: WORKLOAD_SELECTOR, DENY, one rule
 *     not_principals: [presence] (no identity, i.e. plaintext, is denied);
 *   - a workload lists it when its effective mode is STRICT: the oldest
 *     mesh-wide policy (root namespace, no selector), overridden by the
 *     oldest namespace-wide one unless UNSET, overridden by the oldest
 *     selecting one (STRICT, or PERMISSIVE/DISABLE);
 *   - a selecting policy with portLevelMtls becomes
 *     <ns>/converted_peer_authentication_<name> (DENY: plaintext on its STRICT
 *     ports; or, with a STRICT parent, plaintext except on its PERMISSIVE
 *     ports), listed instead of the static policy by the workloads it governs.
 *
 * Validation (Istio's webhook) is the reader's (lib/k8s/k8s_peerauthn.c).
 * istiod's conversion is followed to the letter, including where it drops a
 * STRICT port (a warning says so).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

#define STATIC_STRICT "istio_converted_static_strict"
#define PA_PREFIX     "converted_peer_authentication_"
#define CODE_INEFFECTIVE "IST0167"

/* ---- Which policies a workload lists ---- */

static bool
subset(const struct k8s_kv *sel, size_t n, const struct k8s_obj *pod)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = k8s_kv_get(pod->meta.labels, pod->meta.n_labels, sel[i].k);
        if (v == NULL || strcmp(v, sel[i].v) != 0)
            return false;
    }
    return true;
}

/* getOldestPeerAuthn: the earlier creationTimestamp wins; on a tie the one met first. */
static const struct k8s_obj *
older(const struct k8s_obj *cur, const struct k8s_obj *o)
{
    return cur == NULL || o->u.pa.created < cur->u.pa.created ? o : cur;
}

static bool
strict(const struct k8s_obj *o)
{
    return o != NULL && o->u.pa.mode == K8S_MTLS_STRICT;
}

static bool
unset(const struct k8s_obj *o)
{
    return o == NULL || o->u.pa.mode == K8S_MTLS_UNSET;
}

static void
push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = s;
}

static bool
any_port(const struct k8s_obj *o, bool (*pred)(enum k8s_mtls))
{
    for (size_t i = 0; i < o->u.pa.n_ports; i++)
        if (pred(o->u.pa.ports[i].mode))
            return true;
    return false;
}

static bool
is_strict(enum k8s_mtls m)
{
    return m == K8S_MTLS_STRICT;
}

static bool
is_permissive(enum k8s_mtls m)
{
    return m == K8S_MTLS_PERMISSIVE;
}

static bool
is_permissive_or_disable(enum k8s_mtls m)
{
    return m == K8S_MTLS_PERMISSIVE || m == K8S_MTLS_DISABLE;
}

void
k8s_pa_keys(const struct k8s_store *st, const struct k8s_obj *pod, char ***v, size_t *n)
{
    const char *root = K8S_ROOT_NAMESPACE, *ns = pod->meta.ns;
    const struct k8s_obj *mesh = NULL, *nsp = NULL, *wl = NULL;
    size_t b, e;

    /* fetchPeerAuthentications, then the choice of convertedSelectorPeerAuthentications. */
    for (int pass = 0; pass < 2; pass++) {
        const char *which = pass == 0 ? root : ns;
        if (pass == 1 && strcmp(ns, root) == 0)
            break;
        k8s_store_ns_range(st, K8S_PEER_AUTHENTICATION, which, &b, &e);
        for (size_t i = b; i < e; i++) {
            const struct k8s_obj *o = k8s_store_at(st, K8S_PEER_AUTHENTICATION, i);
            const struct k8s_pa *pa = &o->u.pa;
            bool in_root = strcmp(o->meta.ns, root) == 0;
            bool applies = (in_root && !pa->selector) ||
                           (strcmp(o->meta.ns, ns) == 0 &&
                            (!pa->selector || subset(pa->labels, pa->n_labels, pod)));
            if (!applies)
                continue;
            if (!pa->selector || pa->n_labels == 0) {
                if (in_root)
                    mesh = older(mesh, o);
                else
                    nsp = older(nsp, o);
            } else if (!in_root) {
                wl = older(wl, o);
            }
        }
    }
    bool eff_strict = false;
    const struct k8s_obj *port_key = NULL;
    if (mesh != NULL)
        eff_strict = strict(mesh);
    if (nsp != NULL && !unset(nsp))
        eff_strict = strict(nsp);
    if (wl != NULL) {
        enum k8s_mtls mode = wl->u.pa.mode;
        if (mode == K8S_MTLS_STRICT)
            eff_strict = true;
        if (mode == K8S_MTLS_PERMISSIVE || mode == K8S_MTLS_DISABLE)
            eff_strict = false;
        if (wl->u.pa.n_ports > 0) {
            if (mode == K8S_MTLS_STRICT) {
                if (any_port(wl, is_permissive_or_disable)) {
                    port_key = wl; /* its exceptions include the default STRICT */
                    eff_strict = false;
                }
            } else if (mode == K8S_MTLS_PERMISSIVE || mode == K8S_MTLS_DISABLE) {
                if (any_port(wl, is_strict))
                    port_key = wl;
            } else if (eff_strict) {
                if (any_port(wl, is_permissive)) {
                    port_key = wl; /* merged with the parent's STRICT */
                    eff_strict = false;
                }
            } else {
                if (any_port(wl, is_strict))
                    port_key = wl;
            }
        }
    }
    /* effectivePeerAuthenticationKeys: a sorted set. */
    char *keys[2];
    size_t k = 0;
    if (eff_strict)
        keys[k++] = xasprintf("%s/%s", root, STATIC_STRICT);
    if (port_key != NULL)
        keys[k++] = xasprintf("%s/%s%s", port_key->meta.ns, PA_PREFIX, port_key->meta.name);
    if (k == 2 && strcmp(keys[0], keys[1]) > 0) {
        char *t = keys[0];
        keys[0] = keys[1];
        keys[1] = t;
    }
    for (size_t i = 0; i < k; i++)
        push(v, n, keys[i]);
}

/* ---- Resources ---- */

struct build {
    struct k8s_arena a;
    Istio__Security__Rule **rules;
    size_t n_rules;
    Istio__Security__Clause **clauses; /* of the last group */
    size_t n_clauses;
};

static Istio__Security__Match *
deny_match(struct k8s_arena *a, bool no_identity, const uint32_t *port, bool not_port)
{
    Istio__Security__Match *m = k8s_arena_alloc(a, sizeof(*m));

    istio__security__match__init(m);
    if (no_identity) {
        Istio__Security__StringMatch *s = k8s_arena_alloc(a, sizeof(*s));
        Google__Protobuf__Empty *e = k8s_arena_alloc(a, sizeof(*e));
        istio__security__string_match__init(s);
        google__protobuf__empty__init(e);
        s->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE;
        s->presence = e;
        m->not_principals = k8s_arena_alloc(a, sizeof(*m->not_principals));
        m->not_principals[0] = s;
        m->n_not_principals = 1;
    }
    if (port != NULL && !not_port) {
        m->destination_ports = (uint32_t *)(uintptr_t)port;
        m->n_destination_ports = 1;
    } else if (port != NULL) {
        m->not_destination_ports = (uint32_t *)(uintptr_t)port;
        m->n_not_destination_ports = 1;
    }
    return m;
}

/* A Clause ("Rules" in istiod) with one Match. */
static Istio__Security__Clause *
clause(struct k8s_arena *a, Istio__Security__Match *m)
{
    Istio__Security__Clause *c = k8s_arena_alloc(a, sizeof(*c));

    istio__security__clause__init(c);
    c->matches = k8s_arena_alloc(a, sizeof(*c->matches));
    c->matches[0] = m;
    c->n_matches = 1;
    return c;
}

/* A Rule ("Group" in istiod) of |n| clauses. */
static Istio__Security__Rule *
group(struct k8s_arena *a, Istio__Security__Clause **clauses, size_t n)
{
    Istio__Security__Rule *r = k8s_arena_alloc(a, sizeof(*r));

    istio__security__rule__init(r);
    r->clauses = k8s_arena_alloc(a, (n + 1) * sizeof(*r->clauses));
    memcpy(r->clauses, clauses, n * sizeof(*clauses));
    r->n_clauses = n;
    return r;
}

/* Packs |a| into |r|: named "<namespace>/<name>", of the Authorization type, versioned. */
static void
authz_pack(const Istio__Security__Authorization *a, struct mesh_resource *r)
{
    r->name = xasprintf("%s/%s", a->namespace_, a->name);
    r->type_url = K8S_TYPE_AUTHORIZATION;
    r->len = istio__security__authorization__get_packed_size(a);
    r->data = xmalloc(r->len + 1);
    istio__security__authorization__pack(a, r->data);
    snprintf(r->version, sizeof(r->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, r->data, r->len));
}

static void
add_resource(struct mesh_resource **res, size_t *n, const Istio__Security__Authorization *a)
{
    *res = xrealloc(*res, (*n + 1) * sizeof(**res));
    memset(&(*res)[*n], 0, sizeof(**res));
    authz_pack(a, &(*res)[*n]);
    (*n)++;
}

/* The oldest PeerAuthentication without a selector in |ns| (PeerAuthByNamespace). */
static const struct k8s_obj *
oldest_unselected(const struct k8s_store *st, const char *ns)
{
    const struct k8s_obj *best = NULL;
    size_t b, e;

    k8s_store_ns_range(st, K8S_PEER_AUTHENTICATION, ns, &b, &e);
    for (size_t i = b; i < e; i++)
        if (!k8s_store_at(st, K8S_PEER_AUTHENTICATION, i)->u.pa.selector)
            best = older(best, k8s_store_at(st, K8S_PEER_AUTHENTICATION, i));
    return best;
}

/* convertPeerAuthentication: the port-level policy of |o|, when it needs one. */
static void
convert_pa(const struct k8s_obj *o, const struct k8s_obj *nsp, const struct k8s_obj *rootp,
           struct mesh_resource **res, size_t *n, struct k8s_diags *d)
{
    const struct k8s_pa *pa = &o->u.pa;
    enum k8s_mtls mode = pa->mode;
    struct k8s_arena a = {0};
    Istio__Security__Clause **clauses = k8s_arena_alloc(&a, (pa->n_ports + 3) * sizeof(*clauses));
    Istio__Security__Rule **groups = k8s_arena_alloc(&a, (pa->n_ports + 2) * sizeof(*groups));
    size_t n_clauses = 0, n_groups = 0;
    bool non_strict_port = false;

    if (mode == K8S_MTLS_STRICT)
        clauses[n_clauses++] = clause(&a, deny_match(&a, true, NULL, false));
    for (size_t i = 0; i < pa->n_ports; i++) {
        const struct k8s_port_mtls *pm = &pa->ports[i];
        switch (pm->mode) {
        case K8S_MTLS_STRICT: {
            /*
             * Skipped when the parent enforces it: istiod's condition, grouped as Go
             * parses it (&& before ||), so a STRICT mesh-wide policy without a
             * namespace-wide one skips the port even under a PERMISSIVE workload mode.
             */
            if (mode == K8S_MTLS_STRICT || (mode == K8S_MTLS_UNSET && strict(nsp)) ||
                (unset(nsp) && strict(rootp))) {
                if (mode == K8S_MTLS_PERMISSIVE || mode == K8S_MTLS_DISABLE)
                    k8s_diag_add(d, o->file, pm->line, K8S_WARNING, CODE_INEFFECTIVE,
                                 "PeerAuthentication %s/%s: port %u STRICT is not enforced at "
                                 "ztunnel: istiod's conversion skips it because the mesh-wide "
                                 "policy is STRICT, while this policy's %s mode applies to the "
                                 "workload",
                                 o->meta.ns, o->meta.name, pm->port,
                                 mode == K8S_MTLS_PERMISSIVE ? "PERMISSIVE" : "DISABLE");
                continue;
            }
            /* Rules are ANDed, so one rule per STRICT port. */
            Istio__Security__Clause *c = clause(&a, deny_match(&a, true, &pm->port, false));
            groups[n_groups++] = group(&a, &c, 1);
            break;
        }
        case K8S_MTLS_PERMISSIVE:
        case K8S_MTLS_DISABLE:
            if (mode == K8S_MTLS_PERMISSIVE || mode == K8S_MTLS_DISABLE)
                continue;
            if (mode == K8S_MTLS_UNSET && ((nsp != NULL && !strict(nsp)) ||
                                           (nsp == NULL && rootp != NULL && !strict(rootp)) ||
                                           (nsp == NULL && rootp == NULL)))
                continue; /* not STRICT anyway */
            non_strict_port = true;
            /* Exempt the port from the deny (no principal requirement on it). */
            clauses[n_clauses++] = clause(&a, deny_match(&a, false, &pm->port, true));
            break;
        default:
            continue;
        }
    }
    if ((mode == K8S_MTLS_STRICT && !non_strict_port) || (n_clauses == 0 && n_groups == 0)) {
        k8s_arena_free(&a);
        return; /* the static STRICT policy says it all, or nothing to say */
    }
    bool merge = (strict(rootp) && (nsp == NULL || unset(nsp) || strict(nsp))) || strict(nsp);
    if (merge && non_strict_port)
        clauses[n_clauses++] = clause(&a, deny_match(&a, true, NULL, false));
    if (n_clauses > 0)
        groups[n_groups++] = group(&a, clauses, n_clauses);

    Istio__Security__Authorization pol = ISTIO__SECURITY__AUTHORIZATION__INIT;
    pol.name = k8s_arena_printf(&a, "%s%s", PA_PREFIX, o->meta.name);
    pol.namespace_ = o->meta.ns;
    pol.scope = ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR;
    pol.action = ISTIO__SECURITY__ACTION__DENY;
    pol.rules = groups;
    pol.n_rules = n_groups;
    add_resource(res, n, &pol);
    k8s_arena_free(&a);
}

void
k8s_pa_resources(const struct k8s_store *st, struct mesh_resource **res, size_t *n,
                 struct k8s_diags *d)
{
    size_t n_pa = k8s_store_count(st, K8S_PEER_AUTHENTICATION);

    if (n_pa == 0)
        return;
    /* DefaultPolicy: any PeerAuthentication makes istiod send the static STRICT policy. */
    struct k8s_arena a = {0};
    Istio__Security__Clause *c = clause(&a, deny_match(&a, true, NULL, false));
    Istio__Security__Rule *r = group(&a, &c, 1);
    Istio__Security__Authorization pol = ISTIO__SECURITY__AUTHORIZATION__INIT;
    pol.name = STATIC_STRICT;
    pol.namespace_ = K8S_ROOT_NAMESPACE;
    pol.scope = ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR;
    pol.action = ISTIO__SECURITY__ACTION__DENY;
    pol.rules = &r;
    pol.n_rules = 1;
    add_resource(res, n, &pol);
    k8s_arena_free(&a);

    const struct k8s_obj *rootp = oldest_unselected(st, K8S_ROOT_NAMESPACE), *nsp = NULL;
    for (size_t i = 0, end = 0; i < n_pa; i++) {
        const struct k8s_obj *o = k8s_store_at(st, K8S_PEER_AUTHENTICATION, i);
        if (i == end) {
            end = i + k8s_ns_run(st, K8S_PEER_AUTHENTICATION, i);
            nsp = oldest_unselected(st, o->meta.ns);
        }
        /* Only selecting policies with port-level mTLS outside the root namespace. */
        if (strcmp(o->meta.ns, K8S_ROOT_NAMESPACE) == 0 || !o->u.pa.selector ||
            o->u.pa.n_ports == 0)
            continue;
        convert_pa(o, nsp, rootp, res, n, d);
    }
}
