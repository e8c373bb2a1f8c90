/*
 * k8s_endpoints.c - Workloads from EndpointSlices, as istiod builds them for
 * ambient (pilot/pkg/serviceregistry/kube/controller/ambient endpointSlicesBuilder):
 * the endpoints a Service has that are not pods, typically written by hand
 * for a Service without a selector, so ztunnel can reach them.
 *
 *   - only slices labelled kubernetes.io/service-name with a Service of that
 *     name in the slice's namespace, and not of addressType FQDN;
 *   - endpoints whose targetRef is a Pod are skipped: the pod is a workload
 *     of its own, with far more to say (this is why Services with a
 *     selector, whose slices the controller fills with pods, keep their pod
 *     workloads only);
 *   - one Workload per remaining endpoint, from its first address: uid
 *     "<cluster>/discovery.k8s.io/EndpointSlice/<ns>/<slice>/<address>",
 *     name and namespace the slice's, HEALTHY unless conditions.ready is
 *     false, network mode HOST_NETWORK (an opaque address may be shared),
 *     no identity, policies, waypoint or locality;
 *   - its services map holds the one Service, with each TCP slice port
 *     mapped from the Service port of the same name (slice ports are named
 *     after Service ports and numbered with the target port).
 *
 * A second endpoint with the same first address in one slice is left out
 * with a warning (its uid would not be unique). These workloads are few and
 * cheap: they are packed on every build rather than kept in memos.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

/* The PortList of |slice| for |svc|: slice ports joined with Service ports by name. */
static Istio__Workload__PortList *
slice_ports(struct k8s_arena *a, const struct k8s_slice *s, const struct k8s_service *svc)
{
    Istio__Workload__PortList *pl = k8s_arena_alloc(a, sizeof(*pl));

    istio__workload__port_list__init(pl);
    pl->ports = k8s_arena_alloc(a, (s->n_ports + 1) * sizeof(*pl->ports));
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct k8s_slice_port *sp = &s->ports[i];
        if (!sp->tcp)
            continue;
        for (size_t k = 0; k < svc->n_ports; k++) {
            if (strcmp(svc->ports[k].name, sp->name) != 0)
                continue;
            Istio__Workload__Port *p = k8s_arena_alloc(a, sizeof(*p));
            istio__workload__port__init(p);
            p->service_port = svc->ports[k].port;
            p->target_port = sp->port;
            pl->ports[pl->n_ports++] = p;
            break;
        }
    }
    return pl;
}

static bool
seen_before(const struct k8s_slice *s, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (!s->eps[j].pod && strcmp(s->eps[j].key, s->eps[i].key) == 0)
            return true;
    return false;
}

static void
add_resource(struct mesh_resource **res, size_t *n, const Istio__Workload__Workload *w)
{
    Istio__Workload__Address addr = ISTIO__WORKLOAD__ADDRESS__INIT;
    struct mesh_resource *r;

    addr.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
    addr.workload = (Istio__Workload__Workload *)(uintptr_t)w;
    if (*n % 16 == 0)
        *res = xrealloc(*res, (*n + 16) * sizeof(**res));
    r = &(*res)[(*n)++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(w->uid);
    r->type_url = K8S_TYPE_ADDRESS;
    r->len = istio__workload__address__get_packed_size(&addr);
    r->data = xmalloc(r->len + 1);
    istio__workload__address__pack(&addr, r->data);
    snprintf(r->version, sizeof(r->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, r->data, r->len));
}

static void
slice_workloads(const struct k8s_build_ctx *b, const struct k8s_obj *o, struct mesh_resource **res,
                size_t *n)
{
    const struct k8s_slice *s = &o->u.slice;
    const struct k8s_obj *svc;
    struct k8s_arena a = {0};

    bool any = false;
    for (size_t i = 0; i < s->n_eps && !any; i++)
        any = !s->eps[i].pod;
    /* The controller's slices of Services with a selector hold only pods: nothing to do. */
    if (!any || s->service == NULL || s->fqdn)
        return;
    svc = k8s_store_find(b->st, K8S_SERVICE, o->meta.ns, s->service);
    if (svc == NULL || svc->u.svc.external_name)
        return; /* ExternalName Services are not served, so nothing can point at them */
    Istio__Workload__Workload__ServicesEntry entry;
    Istio__Workload__Workload__ServicesEntry *entries[1] = {&entry};
    istio__workload__workload__services_entry__init(&entry);
    entry.key = k8s_arena_printf(&a, "%s/%s", svc->meta.ns, k8s_service_hostname(&a, b, svc));
    entry.value = slice_ports(&a, s, &svc->u.svc);
    for (size_t i = 0; i < s->n_eps; i++) {
        const struct k8s_ep *ep = &s->eps[i];
        if (ep->pod)
            continue;
        if (seen_before(s, i)) {
            k8s_diag_add(b->d, o->file, o->line, K8S_WARNING, NULL,
                         "EndpointSlice %s/%s: address %s appears in two endpoints; the second "
                         "is left out",
                         o->meta.ns, o->meta.name, ep->key);
            continue;
        }
        Istio__Workload__Workload w;
        ProtobufCBinaryData addr = {.len = ep->ip.len, .data = (uint8_t *)(uintptr_t)ep->ip.b};
        istio__workload__workload__init(&w);
        w.uid = k8s_arena_printf(&a, "%s/discovery.k8s.io/EndpointSlice/%s/%s/%s", b->cluster_id,
                                 o->meta.ns, o->meta.name, ep->key);
        w.name = o->meta.name;
        w.namespace_ = o->meta.ns;
        w.addresses = &addr;
        w.n_addresses = 1;
        w.network = (char *)(uintptr_t)b->network;
        if (b->trust_domain != NULL)
            w.trust_domain = (char *)(uintptr_t)b->trust_domain;
        w.services = entries;
        w.n_services = 1;
        w.status = ep->ready ? ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY
                             : ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
        w.cluster_id = (char *)(uintptr_t)b->cluster_id;
        w.network_mode = ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK;
        add_resource(res, n, &w);
    }
    k8s_arena_free(&a);
}

static int
cmp_name(const void *x, const void *y)
{
    return strcmp(((const struct mesh_resource *)x)->name, ((const struct mesh_resource *)y)->name);
}

void
k8s_slice_resources(const struct k8s_build_ctx *b, struct mesh_resource **res, size_t *n)
{
    *res = NULL;
    *n = 0;
    for (size_t i = 0; i < k8s_store_count(b->st, K8S_ENDPOINT_SLICE); i++)
        slice_workloads(b, k8s_store_at(b->st, K8S_ENDPOINT_SLICE, i), res, n);
    if (*n > 1)
        qsort(*res, *n, sizeof(**res), cmp_name);
}
