/*
 * k8s_wpconf.c - everything one waypoint is served (issue 10 section 1,
 * waypoint.md section 3), filtered to what is bound to it:
 *
 *   Route     one per port of every Service bound to the waypoint
 *             (k8s_waypoint_of, as for Service.waypoint), from k8s_route.c
 *   Policy    every AuthorizationPolicy with targetRefs converted for
 *             waypoints (lib/k8s k8s_authz_wp.c) that targets the waypoint's
 *             Gateway (same namespace), a Service bound to it (the policy's
 *             namespace), or GatewayClass istio-waypoint from the root
 *             namespace (every waypoint); its targets are those that reach
 *             this waypoint, a GatewayClass one written as this Gateway
 *
 * Sans-I/O and from scratch on each call: a waypoint's share is small, and
 * meshd calls it only when the store changed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"
#include "waypoint.pb-c.h"

#define WAYPOINT_CLASS "istio-waypoint"
#define GATEWAY_GROUP  "gateway.networking.k8s.io"

static const json_t *
member(const json_t *parent, const char *key)
{
    const json_t *v = json_is_object(parent) ? json_object_get(parent, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

static const char *
jstr(const json_t *parent, const char *key)
{
    const char *s = json_string_value(member(parent, key));
    return s ? s : "";
}

static const struct k8s_obj *
waypoint_gateway(const struct k8s_store *st, const char *ns, const char *name)
{
    const struct k8s_obj *gw = k8s_store_find(st, K8S_GATEWAY, ns, name);

    if (gw == NULL || strcmp(jstr(member(k8s_obj_json(gw), "spec"), "gatewayClassName"),
                             WAYPOINT_CLASS) != 0)
        return NULL;
    return gw;
}

static bool
bound_to(const struct k8s_store *st, const struct k8s_obj *svc, const struct k8s_obj *gw)
{
    const struct k8s_obj *nso = k8s_store_find(st, K8S_NAMESPACE, "", svc->meta.ns);
    return k8s_waypoint_of(st, svc, nso, NULL) == gw;
}

static void
add(struct mesh_resources *out, size_t *cap, struct mesh_resource *r)
{
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        out->v = xrealloc(out->v, *cap * sizeof(*out->v));
    }
    out->v[out->n++] = *r;
}

/* The Policy of |ap| for waypoint |gw|, or false when none of its targets reaches it. */
static bool
policy_for(const struct k8s_store *st, const struct k8s_obj *ap, const struct k8s_obj *gw,
           const char *suffix, struct mesh_resource *out)
{
    const json_t *spec = member(k8s_obj_json(ap), "spec");
    const json_t *refs = member(spec, "targetRefs"), *one = member(spec, "targetRef");
    size_t n = one ? 1 : json_array_size(refs);
    Amesh__Waypoint__V1__Target *tv = xcalloc(n + 1, sizeof(*tv)), **tp = xcalloc(n + 1, sizeof(*tp));
    Istio__Workload__NamespacedHostname *hv = xcalloc(n + 1, sizeof(*hv));
    char **owned = xcalloc(n + 1, sizeof(*owned));
    size_t nt = 0;

    for (size_t i = 0; i < n; i++) {
        const json_t *t = one ? one : json_array_get(refs, i);
        const char *group = jstr(t, "group"), *kind = jstr(t, "kind"), *name = jstr(t, "name");
        Amesh__Waypoint__V1__Target *x = &tv[nt];
        amesh__waypoint__v1__target__init(x);
        if (strcmp(group, GATEWAY_GROUP) == 0 && strcmp(kind, "Gateway") == 0) {
            if (strcmp(ap->meta.ns, gw->meta.ns) != 0 || strcmp(name, gw->meta.name) != 0)
                continue;
        } else if (strcmp(group, GATEWAY_GROUP) == 0 && strcmp(kind, "GatewayClass") == 0) {
            /* Istio: a GatewayClass target counts only from the root namespace. */
            if (strcmp(ap->meta.ns, K8S_ROOT_NAMESPACE) != 0 || strcmp(name, WAYPOINT_CLASS) != 0)
                continue;
        } else if ((group[0] == '\0' || strcmp(group, "core") == 0) &&
                   strcmp(kind, "Service") == 0) {
            const struct k8s_obj *svc = k8s_store_find(st, K8S_SERVICE, ap->meta.ns, name);
            if (svc == NULL || !bound_to(st, svc, gw))
                continue;
            Istio__Workload__NamespacedHostname *h = &hv[nt];
            istio__workload__namespaced_hostname__init(h);
            h->namespace_ = svc->meta.ns;
            h->hostname = owned[nt] = xasprintf("%s.%s.svc.%s", name, svc->meta.ns, suffix);
            x->kind_case = AMESH__WAYPOINT__V1__TARGET__KIND_SERVICE;
            x->service = h;
            tp[nt++] = x;
            continue;
        } else {
            continue; /* ServiceEntry: no waypoint of amesh's serves one */
        }
        x->kind_case = AMESH__WAYPOINT__V1__TARGET__KIND_GATEWAY;
        x->gateway = gw->meta.name;
        tp[nt++] = x;
    }
    bool any = nt > 0;
    if (any) {
        /* Fields 1-4 here, the rules (field 5) as the reader packed them: field order. */
        Amesh__Waypoint__V1__Policy p = AMESH__WAYPOINT__V1__POLICY__INIT;
        p.name = ap->meta.name;
        p.namespace_ = ap->meta.ns;
        p.targets = tp;
        p.n_targets = nt;
        p.action = ap->u.ap.wp_deny ? ISTIO__SECURITY__ACTION__DENY : ISTIO__SECURITY__ACTION__ALLOW;
        size_t head = amesh__waypoint__v1__policy__get_packed_size(&p);
        memset(out, 0, sizeof(*out));
        out->name = xasprintf("%s/%s", ap->meta.ns, ap->meta.name);
        out->type_url = K8S_TYPE_POLICY;
        out->len = head + ap->u.ap.wp_len;
        out->data = xmalloc(out->len + 1);
        amesh__waypoint__v1__policy__pack(&p, out->data);
        memcpy(out->data + head, ap->u.ap.wp_rules, ap->u.ap.wp_len);
        snprintf(out->version, sizeof(out->version), "%016" PRIx64,
                 k8s_hash(K8S_HASH_INIT, out->data, out->len));
    }
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(hv);
    free(tp);
    free(tv);
    return any;
}

/* A Service bound to the waypoint and the routes that name it in a parentRef. */
struct bound {
    const struct k8s_obj *svc;
    const struct k8s_obj **routes;
    size_t n, cap;
};

static int
cmp_bound(const void *key, const void *elem)
{
    const struct k8s_obj *const *k = key; /* a Service-like pair: meta.ns, meta.name */
    const struct bound *b = elem;
    int c = strcmp((*k)->meta.ns, b->svc->meta.ns);
    return c ? c : strcmp((*k)->meta.name, b->svc->meta.name);
}

/*
 * Files every route of the bound Services' namespaces under the bound
 * Services its parentRefs name (once each): one pass over the routes instead
 * of one per service port. |v| is sorted by (namespace, name).
 */
static void
file_routes(const struct k8s_store *st, struct bound *v, size_t n)
{
    static const enum k8s_kind kinds[] = {K8S_HTTP_ROUTE, K8S_GRPC_ROUTE};

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i].svc->meta.ns, v[i - 1].svc->meta.ns) == 0)
            continue; /* namespace done */
        for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
            size_t b, e;
            k8s_store_ns_range(st, kinds[k], v[i].svc->meta.ns, &b, &e);
            for (size_t j = b; j < e; j++) {
                const struct k8s_obj *rt = k8s_store_at(st, kinds[k], j);
                const json_t *refs = member(member(k8s_obj_json(rt), "spec"), "parentRefs");
                for (size_t p = 0; p < json_array_size(refs); p++) {
                    const json_t *ref = json_array_get(refs, p);
                    struct k8s_obj key = {.meta = {.ns = rt->meta.ns,
                                                   .name = (char *)(uintptr_t)jstr(ref, "name")}};
                    const struct k8s_obj *kp = &key;
                    if (strcmp(jstr(ref, "kind"), "Service") != 0)
                        continue;
                    struct bound *bd = bsearch(&kp, v, n, sizeof(*v), cmp_bound);
                    if (bd == NULL || (bd->n > 0 && bd->routes[bd->n - 1] == rt))
                        continue;
                    if (bd->n == bd->cap) {
                        bd->cap = bd->cap ? bd->cap * 2 : 4;
                        bd->routes = xrealloc(bd->routes, bd->cap * sizeof(*bd->routes));
                    }
                    bd->routes[bd->n++] = rt;
                }
            }
        }
    }
}

static int
cmp_res(const void *a, const void *b)
{
    const struct mesh_resource *x = a, *y = b;
    int c = strcmp(x->type_url, y->type_url);
    return c ? c : strcmp(x->name, y->name);
}

int
k8s_waypoint_config(const struct k8s_store *st, const struct k8s_build_opts *o, const char *ns,
                    const char *name, struct mesh_resources *out, struct k8s_diags *d)
{
    const struct k8s_obj *gw = waypoint_gateway(st, ns, name);
    const char *suffix = o && o->domain_suffix && o->domain_suffix[0] ? o->domain_suffix
                                                                       : "cluster.local";
    size_t cap = 0;

    memset(out, 0, sizeof(*out));
    if (gw == NULL)
        return -ENOENT;
    struct bound *bv = NULL;
    size_t nb = 0, bcap = 0;
    for (size_t i = 0; i < k8s_store_count(st, K8S_SERVICE); i++) {
        const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, i);
        if (!bound_to(st, svc, gw))
            continue;
        if (nb == bcap) {
            bcap = bcap ? bcap * 2 : 16;
            bv = xrealloc(bv, bcap * sizeof(*bv));
        }
        bv[nb++] = (struct bound){.svc = svc};
    }
    file_routes(st, bv, nb);
    for (size_t i = 0; i < nb; i++) {
        const struct k8s_obj *svc = bv[i].svc;
        for (size_t p = 0; p < svc->u.svc.n_ports; p++) {
            struct mesh_resource r;
            bool dup = false; /* the same number for TCP and UDP: one table */
            for (size_t q = 0; q < p && !dup; q++)
                dup = svc->u.svc.ports[q].port == svc->u.svc.ports[p].port;
            if (!dup && k8s_route_build_among(st, o, svc, svc->u.svc.ports[p].port,
                                              bv[i].routes, bv[i].n, &r, d) == 0)
                add(out, &cap, &r);
        }
        free(bv[i].routes);
    }
    free(bv);
    for (size_t i = 0; i < k8s_store_count(st, K8S_AUTHORIZATION_POLICY); i++) {
        const struct k8s_obj *ap = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i);
        struct mesh_resource r;
        if (ap->u.ap.wp_sent && policy_for(st, ap, gw, suffix, &r))
            add(out, &cap, &r);
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_res);
    return 0;
}

static bool
same_diag(const struct k8s_diag *a, const struct k8s_diag *b)
{
    return a->line == b->line && a->severity == b->severity && strcmp(a->file, b->file) == 0 &&
           strcmp(a->msg, b->msg) == 0;
}

void
k8s_wpconf_diags(const struct k8s_store *st, struct k8s_diags *out)
{
    struct k8s_diags all = {0};

    for (size_t i = 0; i < k8s_store_count(st, K8S_GATEWAY); i++) {
        const struct k8s_obj *gw = k8s_store_at(st, K8S_GATEWAY, i);
        struct mesh_resources r;
        if (k8s_waypoint_config(st, NULL, gw->meta.ns, gw->meta.name, &r, &all) == 0)
            mesh_resources_free(&r);
    }
    /* A route attached to several ports (or waypoints) is refused once per table: say it once. */
    for (size_t i = 0; i < all.n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = same_diag(&all.v[i], &all.v[j]);
        if (!seen)
            k8s_diag_add(out, all.v[i].file, all.v[i].line, all.v[i].severity, all.v[i].code,
                         "%s", all.v[i].msg);
    }
    k8s_diags_clear(&all);
}
