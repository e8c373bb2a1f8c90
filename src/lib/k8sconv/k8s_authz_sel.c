/*
 * k8s_authz_sel.c - the Authorization resources and which of them each
 * workload lists (istiod workloads.go buildWorkloadPolicies):
 *
 *   - AuthorizationPolicies with a selector, in the workload's namespace or
 *     the root namespace, whose matchLabels are a subset of the pod's labels
 *     (a selector without matchLabels selects nothing, empty matchLabels
 *     everything), sorted by "<ns>/<name>";
 *   - then the PeerAuthentication keys (k8s_authz_pa.c).
 *
 * Incrementally: a namespace's policy epoch changes whenever its
 * AuthorizationPolicies or PeerAuthentications (their gens) do; a pod's list
 * is recomputed only when the epoch of its namespace or of the root namespace
 * changed, and its resource is built again only when the list differs. The
 * Authorization resources themselves are kept while no policy changed.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

/* ---- Policy epochs per namespace ---- */

static void
polview_free(struct k8s_polview *pv)
{
    free(pv->ns);
    free(pv->gens);
}

/* The first namespace at or after positions |ia| and |ip| of the two sorted lists, or NULL. */
static const char *
next_ns(const struct k8s_store *st, size_t ia, size_t ip)
{
    const char *a = ia < k8s_store_count(st, K8S_AUTHORIZATION_POLICY)
                        ? k8s_store_at(st, K8S_AUTHORIZATION_POLICY, ia)->meta.ns
                        : NULL;
    const char *p = ip < k8s_store_count(st, K8S_PEER_AUTHENTICATION)
                        ? k8s_store_at(st, K8S_PEER_AUTHENTICATION, ip)->meta.ns
                        : NULL;

    if (a == NULL)
        return p;
    if (p == NULL)
        return a;
    return strcmp(a, p) <= 0 ? a : p;
}

void
k8s_authz_view_update(struct k8s_conv *cv)
{
    const struct k8s_store *st = cv->st;
    struct k8s_view *v = &cv->view;
    struct k8s_polview *now = NULL;
    size_t n_now = 0, old = 0, ia = 0, ip = 0;
    const char *ns;

    while ((ns = next_ns(st, ia, ip)) != NULL) {
        size_t na = 0, np = 0;
        if (ia < k8s_store_count(st, K8S_AUTHORIZATION_POLICY) &&
            strcmp(k8s_store_at(st, K8S_AUTHORIZATION_POLICY, ia)->meta.ns, ns) == 0)
            na = k8s_ns_run(st, K8S_AUTHORIZATION_POLICY, ia);
        if (ip < k8s_store_count(st, K8S_PEER_AUTHENTICATION) &&
            strcmp(k8s_store_at(st, K8S_PEER_AUTHENTICATION, ip)->meta.ns, ns) == 0)
            np = k8s_ns_run(st, K8S_PEER_AUTHENTICATION, ip);
        struct k8s_polview pv = {0};
        int c = 1;
        while (old < v->n_pol && (c = strcmp(v->pol[old].ns, ns)) < 0)
            polview_free(&v->pol[old++]);
        if (old < v->n_pol && c == 0)
            pv = v->pol[old++];
        else
            pv.ns = xstrdup(ns);
        bool same = pv.n == na + np;
        for (size_t k = 0; same && k < na; k++)
            same = pv.gens[k] == k8s_store_at(st, K8S_AUTHORIZATION_POLICY, ia + k)->gen;
        for (size_t k = 0; same && k < np; k++)
            same = pv.gens[na + k] == k8s_store_at(st, K8S_PEER_AUTHENTICATION, ip + k)->gen;
        if (!same) {
            pv.n = na + np;
            pv.gens = xrealloc(pv.gens, (pv.n + 1) * sizeof(*pv.gens));
            for (size_t k = 0; k < na; k++)
                pv.gens[k] = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, ia + k)->gen;
            for (size_t k = 0; k < np; k++)
                pv.gens[na + k] = k8s_store_at(st, K8S_PEER_AUTHENTICATION, ip + k)->gen;
            pv.epoch = ++v->last_epoch;
        }
        if (n_now % 16 == 0)
            now = xrealloc(now, (n_now + 16) * sizeof(*now));
        now[n_now++] = pv;
        ia += na;
        ip += np;
    }
    while (old < v->n_pol)
        polview_free(&v->pol[old++]);
    free(v->pol);
    v->pol = now;
    v->n_pol = n_now;
}

uint64_t
k8s_authz_epoch(const struct k8s_view *v, const char *ns)
{
    size_t lo = 0, hi = v->n_pol;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->pol[mid].ns, ns);
        if (c == 0)
            return v->pol[mid].epoch;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return K8S_EPOCH_NO_SERVICES;
}

/* ---- A workload's authorization_policies ---- */

static bool
selects(const struct k8s_ap *ap, const struct k8s_obj *pod)
{
    if (!ap->sent || !ap->match_labels)
        return false;
    for (size_t i = 0; i < ap->n_labels; i++) {
        const char *v = k8s_kv_get(pod->meta.labels, pod->meta.n_labels, ap->labels[i].k);
        if (v == NULL || strcmp(v, ap->labels[i].v) != 0)
            return false;
    }
    return true;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
k8s_authz_select(const struct k8s_store *st, const struct k8s_obj *pod, struct k8s_memo *m,
                 uint64_t epoch, uint64_t root_epoch)
{
    char **v = NULL;
    size_t n = 0;

    for (int pass = 0; pass < 2; pass++) {
        const char *ns = pass == 0 ? pod->meta.ns : K8S_ROOT_NAMESPACE;
        size_t b, e;
        if (pass == 1 && strcmp(pod->meta.ns, K8S_ROOT_NAMESPACE) == 0)
            break;
        k8s_store_ns_range(st, K8S_AUTHORIZATION_POLICY, ns, &b, &e);
        for (size_t i = b; i < e; i++) {
            const struct k8s_obj *o = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i);
            if (!selects(&o->u.ap, pod))
                continue;
            v = xrealloc(v, (n + 1) * sizeof(*v));
            v[n++] = xasprintf("%s/%s", o->meta.ns, o->meta.name);
        }
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    k8s_pa_keys(st, pod, &v, &n);
    bool same = n == m->n_pols;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(v[i], m->pols[i]) == 0;
    if (same) {
        free_strs(v, n);
    } else {
        free_strs(m->pols, m->n_pols);
        m->pols = v;
        m->n_pols = n;
        m->built = false; /* another list: the workload must be built again */
    }
    m->pol_epoch = epoch;
    m->pol_root_epoch = root_epoch;
}

/* ---- The resources ---- */

static void
cache_clear(struct k8s_authz_cache *c)
{
    for (size_t i = 0; i < c->n_res; i++) {
        free(c->res[i].name);
        free(c->res[i].data);
    }
    free(c->res);
    c->res = NULL;
    c->n_res = 0;
    k8s_diags_clear(&c->diags);
    c->valid = false;
}

static int
cmp_res(const void *a, const void *b)
{
    return strcmp(((const struct mesh_resource *)a)->name, ((const struct mesh_resource *)b)->name);
}

const struct k8s_authz_cache *
k8s_authz_resources(struct k8s_conv *cv)
{
    const struct k8s_store *st = cv->st;
    struct k8s_authz_cache *c = &cv->view.authz;
    size_t na = k8s_store_count(st, K8S_AUTHORIZATION_POLICY);
    size_t np = k8s_store_count(st, K8S_PEER_AUTHENTICATION);
    bool same = c->valid && c->n_gens == na + np;

    for (size_t i = 0; same && i < na; i++)
        same = c->gens[i] == k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i)->gen;
    for (size_t i = 0; same && i < np; i++)
        same = c->gens[na + i] == k8s_store_at(st, K8S_PEER_AUTHENTICATION, i)->gen;
    if (same)
        return c;
    cache_clear(c);
    c->gens = xrealloc(c->gens, (na + np + 1) * sizeof(*c->gens));
    c->n_gens = na + np;
    for (size_t i = 0; i < na; i++)
        c->gens[i] = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i)->gen;
    for (size_t i = 0; i < np; i++)
        c->gens[na + i] = k8s_store_at(st, K8S_PEER_AUTHENTICATION, i)->gen;

    size_t n = 0;
    struct mesh_resource *res = NULL;
    for (size_t i = 0; i < na; i++) {
        const struct k8s_obj *o = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i);
        const struct k8s_ap *ap = &o->u.ap;
        if (!ap->sent)
            continue;
        res = xrealloc(res, (n + 1) * sizeof(*res));
        struct mesh_resource *r = &res[n++];
        r->name = xasprintf("%s/%s", o->meta.ns, o->meta.name);
        r->type_url = K8S_TYPE_AUTHORIZATION;
        r->data = xmalloc(ap->len + 1);
        memcpy(r->data, ap->data, ap->len);
        r->len = ap->len;
        memcpy(r->version, ap->version, sizeof(r->version));
    }
    k8s_pa_resources(st, &res, &n, &c->diags);
    if (n > 1)
        qsort(res, n, sizeof(*res), cmp_res);
    c->res = res;
    c->n_res = n;
    c->valid = true;
    return c;
}

/*
 * istioctl analyze's IST0127 NoMatchingWorkloadsFound: a selector that picks
 * no pod (in the policy's namespace, or any namespace for the root one).
 */
static void
no_matching_workloads(const struct k8s_store *st, const struct k8s_obj *o, struct k8s_diags *out)
{
    const struct k8s_ap *ap = &o->u.ap;
    bool root = strcmp(o->meta.ns, K8S_ROOT_NAMESPACE) == 0;
    char labels[512];
    size_t n = 0;

    if (!ap->sent || !ap->match_labels || ap->n_labels == 0)
        return;
    for (size_t i = 0; i < k8s_store_count(st, K8S_POD); i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, i);
        if ((root || strcmp(pod->meta.ns, o->meta.ns) == 0) && selects(ap, pod))
            return;
    }
    labels[0] = '\0';
    for (size_t i = 0; i < ap->n_labels && n < sizeof(labels); i++) {
        int k = snprintf(labels + n, sizeof(labels) - n, "%s%s=%s", i ? "," : "", ap->labels[i].k,
                         ap->labels[i].v);
        if (k < 0)
            break;
        n += (size_t)k;
    }
    const json_t *spec = json_object_get(o->json, "spec");
    k8s_diag_add(out, o->file, spec ? k8s_obj_key_line(o, spec, "selector") : o->line, K8S_WARNING,
                 "IST0127", "AuthorizationPolicy %s/%s: no matching workloads for this resource with "
                 "the following labels: %s", o->meta.ns, o->meta.name, labels);
}

void
k8s_authz_diags(struct k8s_conv *cv, struct k8s_diags *out)
{
    const struct k8s_store *st = cv->st;
    const struct k8s_authz_cache *c = k8s_authz_resources(cv);

    if (out == NULL)
        return;
    for (size_t i = 0; i < k8s_store_count(st, K8S_AUTHORIZATION_POLICY); i++) {
        k8s_diags_append(out, &k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i)->u.ap.diags);
        no_matching_workloads(st, k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i), out);
    }
    for (size_t i = 0; i < k8s_store_count(st, K8S_PEER_AUTHENTICATION); i++)
        k8s_diags_append(out, &k8s_store_at(st, K8S_PEER_AUTHENTICATION, i)->u.pa.diags);
    k8s_diags_append(out, &c->diags);
}

void
k8s_authz_view_free(struct k8s_view *v)
{
    for (size_t i = 0; i < v->n_pol; i++)
        polview_free(&v->pol[i]);
    free(v->pol);
    cache_clear(&v->authz);
    free(v->authz.gens);
}
