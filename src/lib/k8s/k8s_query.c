/*
 * k8s_query.c - read access to the objects in effect: per kind in
 * (namespace, name) order, lookups, the CA's node restriction and the object
 * accessors. Everything here reads the view k8s_store.c derives.
 */
#include <stdint.h>
#include <string.h>

#include "k8s/k8s_internal.h"

size_t
k8s_store_count(const struct k8s_store *st, enum k8s_kind kind)
{
    return kind < K8S_KIND_COUNT ? st->n_eff[kind] : 0;
}

const struct k8s_obj *
k8s_store_at(const struct k8s_store *st, enum k8s_kind kind, size_t i)
{
    return kind < K8S_KIND_COUNT && i < st->n_eff[kind] ? st->eff[kind][i] : NULL;
}

/* First index in eff[kind] whose (ns, name) is not below (|ns|, |name|); NULL name = "". */
static size_t
lower_bound(const struct k8s_store *st, enum k8s_kind kind, const char *ns, const char *name)
{
    size_t lo = 0, hi = st->n_eff[kind];

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct k8s_obj *o = st->eff[kind][mid];
        int c = strcmp(o->meta.ns, ns);
        if (c == 0 && name != NULL)
            c = strcmp(o->meta.name, name);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct k8s_obj *
k8s_store_find(const struct k8s_store *st, enum k8s_kind kind, const char *ns, const char *name)
{
    if (kind >= K8S_KIND_COUNT)
        return NULL;
    if (k8s_kind_cluster_scoped(kind))
        ns = "";
    size_t i = lower_bound(st, kind, ns, name);
    if (i < st->n_eff[kind] && k8s_same_ident(st->eff[kind][i], kind, ns, name))
        return st->eff[kind][i];
    return NULL;
}

void
k8s_store_ns_range(const struct k8s_store *st, enum k8s_kind kind, const char *ns, size_t *begin,
                   size_t *end)
{
    size_t i = lower_bound(st, kind, ns, NULL);

    *begin = i;
    while (i < st->n_eff[kind] && strcmp(st->eff[kind][i]->meta.ns, ns) == 0)
        i++;
    *end = i;
}

bool
k8s_sa_on_node(const struct k8s_store *st, const char *node, const char *ns, const char *sa)
{
    size_t b, e;

    if (node == NULL || node[0] == '\0')
        return false;
    k8s_store_ns_range(st, K8S_POD, ns, &b, &e);
    for (size_t i = b; i < e; i++) {
        const struct k8s_pod *p = &st->eff[K8S_POD][i]->u.pod;
        if (!p->terminal && strcmp(p->node, node) == 0 && strcmp(p->service_account, sa) == 0)
            return true;
    }
    return false;
}

bool
k8s_waypoint_on_node(const struct k8s_store *st, const char *node, const char *ns, const char *gw,
                     const char *sa)
{
    size_t b, e;

    if (node == NULL || node[0] == '\0')
        return false;
    k8s_store_ns_range(st, K8S_POD, ns, &b, &e);
    for (size_t i = b; i < e; i++) {
        const struct k8s_obj *o = st->eff[K8S_POD][i];
        const char *name = k8s_obj_label(o, "gateway.networking.k8s.io/gateway-name");
        if (!o->u.pod.terminal && strcmp(o->u.pod.node, node) == 0 &&
            strcmp(o->u.pod.service_account, sa) == 0 && name != NULL && strcmp(name, gw) == 0)
            return true;
    }
    return false;
}

bool
k8s_pod_info(const struct k8s_store *st, const char *ns, const char *name, struct k8s_pod_info *out)
{
    const struct k8s_obj *o = k8s_store_find(st, K8S_POD, ns, name);

    if (o == NULL)
        return false;
    out->uid = o->meta.uid;
    out->service_account = o->u.pod.service_account;
    out->node = o->u.pod.node;
    out->terminated = o->u.pod.terminal;
    out->has_ipv6 = false;
    for (size_t i = 0; i < o->u.pod.n_ips; i++)
        out->has_ipv6 |= o->u.pod.ips[i].len == 16;
    out->enrolled = k8s_pod_enrolled(st, o);
    return true;
}

const char *
k8s_obj_annotation(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.annotations, o->meta.n_annotations, key);
}

enum k8s_kind
k8s_obj_kind(const struct k8s_obj *o)
{
    return o->kind;
}

const char *
k8s_obj_namespace(const struct k8s_obj *o)
{
    return o->meta.ns;
}

const char *
k8s_obj_name(const struct k8s_obj *o)
{
    return o->meta.name;
}

const char *
k8s_obj_file(const struct k8s_obj *o)
{
    return o->file;
}

int
k8s_obj_line(const struct k8s_obj *o)
{
    return o->line;
}

const char *
k8s_obj_label(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.labels, o->meta.n_labels, key);
}

const json_t *
k8s_obj_json(const struct k8s_obj *o)
{
    return o->json;
}

int
k8s_obj_line_of(const struct k8s_obj *o, const json_t *v)
{
    int line = k8s_lines_get(o->lines, v, NULL);
    return line ? line : o->line;
}

int
k8s_obj_key_line(const struct k8s_obj *o, const json_t *parent, const char *key)
{
    int line = k8s_lines_get(o->lines, parent, key);
    return line ? line : k8s_obj_line_of(o, parent);
}

static bool
str_is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* istio-cni's PodRedirectionEnabled: namespace or pod label, sidecar and host network opt out. */
bool
k8s_pod_enrolled(const struct k8s_store *st, const struct k8s_obj *pod)
{
    const struct k8s_obj *ns = k8s_store_find(st, K8S_NAMESPACE, "", pod->meta.ns);
    static const char mode[] = "istio.io/dataplane-mode";
    const char *pod_mode = k8s_kv_get(pod->meta.labels, pod->meta.n_labels, mode);
    const char *ns_mode = ns ? k8s_kv_get(ns->meta.labels, ns->meta.n_labels, mode) : NULL;

    if (!str_is(ns_mode, "ambient") && !str_is(pod_mode, "ambient"))
        return false;
    if (k8s_obj_annotation(pod, "sidecar.istio.io/status") != NULL)
        return false; /* ztunnel and a sidecar for one pod is not supported */
    if (str_is(pod_mode, "none"))
        return false;
    return !pod->u.pod.host_network;
}

size_t
k8s_ns_run(const struct k8s_store *st, enum k8s_kind kind, size_t i)
{
    struct k8s_obj *const *v = st->eff[kind];
    const char *ns = v[i]->meta.ns;
    size_t n = st->n_eff[kind], lo = i, hi = i + 1, step = 1;

    /* Galloping, then binary search: O(log run) comparisons, not one per object. */
    while (hi < n && strcmp(v[hi]->meta.ns, ns) == 0) {
        lo = hi;
        step *= 2;
        hi = lo + step;
    }
    if (hi > n)
        hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid]->meta.ns, ns) == 0)
            lo = mid;
        else
            hi = mid;
    }
    return hi - i;
}

uint64_t
k8s_store_eff_version(const struct k8s_store *st)
{
    return st->eff_version;
}

uint64_t
k8s_store_id(const struct k8s_store *st)
{
    return st->id;
}
