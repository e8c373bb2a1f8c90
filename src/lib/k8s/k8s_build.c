/*
 * k8s_build.c - the resources meshd serves, built from the objects in effect:
 * istio.workload.Address{service} per Service and Address{workload} per pod
 * (k8s_workload.c), packed, named as istiod names them and versioned by a hash
 * of their bytes, so a rebuild changes the version of exactly the resources
 * whose bytes changed. Everything that could vary in order without meaning
 * (maps, resource order) is sorted.
 *
 * Services follow istiod's pilot/pkg/serviceregistry/ambient/services.go
 * constructService; app protocols pkg/config/kube ConvertProtocol.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

void *
k8s_arena_alloc(struct k8s_arena *a, size_t size)
{
    void *p = xcalloc(1, size);

    if (a->n % 64 == 0)
        a->v = xrealloc(a->v, (a->n + 64) * sizeof(*a->v));
    a->v[a->n++] = p;
    return p;
}

char *
k8s_arena_printf(struct k8s_arena *a, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    if (a->n % 64 == 0)
        a->v = xrealloc(a->v, (a->n + 64) * sizeof(*a->v));
    a->v[a->n++] = s;
    return s;
}

void
k8s_arena_free(struct k8s_arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

char *
k8s_service_hostname(struct k8s_arena *a, const struct k8s_build_ctx *b, const struct k8s_obj *svc)
{
    return k8s_arena_printf(a, "%s.%s.svc.%s", svc->meta.name, svc->meta.ns, b->domain_suffix);
}

/*
 * ConvertProtocol then toAppProtocolFromProtocol: appProtocol, else the port
 * name, up to its first '-', decides; UDP, gRPC-Web, Mongo, Redis, MySQL and
 * HTTP_PROXY have no AppProtocol; unknown names on well-known server-first
 * ports are TCP.
 */
static Istio__Workload__AppProtocol
app_protocol(const struct k8s_sport *p)
{
    const char *name = p->app_protocol ? p->app_protocol : p->name;
    size_t n = strcspn(name, "-");

    if (p->udp || strncasecmp(name, "grpc-web", 8) == 0)
        return ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN;
    static const struct {
        const char *name;
        Istio__Workload__AppProtocol proto;
    } known[] = {
        {"tcp", ISTIO__WORKLOAD__APP_PROTOCOL__TCP},
        {"http", ISTIO__WORKLOAD__APP_PROTOCOL__HTTP11},
        {"http2", ISTIO__WORKLOAD__APP_PROTOCOL__HTTP2},
        {"grpc", ISTIO__WORKLOAD__APP_PROTOCOL__GRPC},
        {"https", ISTIO__WORKLOAD__APP_PROTOCOL__TLS},
        {"tls", ISTIO__WORKLOAD__APP_PROTOCOL__TLS},
        {"udp", ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN},
        {"http_proxy", ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN},
        {"mongo", ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN},
        {"redis", ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN},
        {"mysql", ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN},
    };
    for (size_t i = 0; i < ARRAY_LEN(known); i++)
        if (strlen(known[i].name) == n && strncasecmp(name, known[i].name, n) == 0)
            return known[i].proto;
    if (p->port == 25 || p->port == 53 || p->port == 3306 || p->port == 27017)
        return ISTIO__WORKLOAD__APP_PROTOCOL__TCP;
    return ISTIO__WORKLOAD__APP_PROTOCOL__UNKNOWN;
}

enum distribution {
    DIST_ANY = 0,
    DIST_ZONE,
    DIST_NODE,
};

static enum distribution
distribution(const char *v)
{
    if (v == NULL)
        return DIST_ANY;
    if (strcasecmp(v, "PreferClose") == 0 || strcasecmp(v, "PreferSameZone") == 0)
        return DIST_ZONE;
    if (strcasecmp(v, "PreferSameNode") == 0)
        return DIST_NODE;
    return DIST_ANY;
}

/*
 * model.GetTrafficDistribution: spec.trafficDistribution (exact), else the
 * annotation networking.istio.io/traffic-distribution (any case) on the
 * Service, else on its Namespace.
 */
static enum distribution
traffic_distribution(const struct k8s_build_ctx *b, const struct k8s_obj *svc)
{
    static const char key[] = "networking.istio.io/traffic-distribution";
    const char *spec = svc->u.svc.traffic_distribution;
    const char *ann = k8s_kv_get(svc->meta.annotations, svc->meta.n_annotations, key);

    if (spec != NULL && (strcmp(spec, "PreferClose") == 0 || strcmp(spec, "PreferSameZone") == 0))
        return DIST_ZONE;
    if (spec != NULL && strcmp(spec, "PreferSameNode") == 0)
        return DIST_NODE;
    if (ann == NULL || ann[0] == '\0') {
        const struct k8s_obj *ns = k8s_store_find(b->st, K8S_NAMESPACE, "", svc->meta.ns);
        ann = ns ? k8s_kv_get(ns->meta.annotations, ns->meta.n_annotations, key) : NULL;
    }
    return distribution(ann);
}

static Istio__Workload__LoadBalancing *
load_balancing(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *svc)
{
    static const Istio__Workload__LoadBalancing__Scope zone[] = {
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NETWORK,
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__REGION,
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__ZONE,
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__SUBZONE,
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NODE,
    };
    static const Istio__Workload__LoadBalancing__Scope node[] = {
        ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__NODE,
    };
    Istio__Workload__LoadBalancing *lb = k8s_arena_alloc(a, sizeof(*lb));

    istio__workload__load_balancing__init(lb);
    if (svc->u.svc.itp_local) {
        /* internalTrafficPolicy: Local: only endpoints on the client's node. */
        lb->routing_preference = (Istio__Workload__LoadBalancing__Scope *)(uintptr_t)node;
        lb->n_routing_preference = 1;
        lb->mode = ISTIO__WORKLOAD__LOAD_BALANCING__MODE__STRICT;
    } else {
        enum distribution dist = traffic_distribution(b, svc);
        if (dist != DIST_ANY) {
            /* PreferSameZone: network, region, zone; PreferSameNode goes down to the node. */
            lb->routing_preference = (Istio__Workload__LoadBalancing__Scope *)(uintptr_t)zone;
            lb->n_routing_preference = dist == DIST_ZONE ? 3 : 5;
            lb->mode = ISTIO__WORKLOAD__LOAD_BALANCING__MODE__FAILOVER;
        } else if (!svc->u.svc.publish_not_ready) {
            return NULL;
        }
    }
    if (svc->u.svc.publish_not_ready)
        lb->health_policy = ISTIO__WORKLOAD__LOAD_BALANCING__HEALTH_POLICY__ALLOW_ALL;
    return lb;
}

static void
build_service(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *svc,
              Istio__Workload__Service *s)
{
    const struct k8s_service *ks = &svc->u.svc;

    istio__workload__service__init(s);
    s->name = svc->meta.name;
    s->namespace_ = svc->meta.ns;
    s->hostname = k8s_service_hostname(a, b, svc);
    s->addresses = k8s_arena_alloc(a, (ks->n_vips + 1) * sizeof(*s->addresses));
    for (size_t i = 0; i < ks->n_vips; i++) {
        Istio__Workload__NetworkAddress *na = k8s_arena_alloc(a, sizeof(*na));
        istio__workload__network_address__init(na);
        na->network = (char *)(uintptr_t)b->network;
        na->address.len = ks->vips[i].len;
        na->address.data = (uint8_t *)(uintptr_t)ks->vips[i].b;
        s->addresses[s->n_addresses++] = na;
    }
    s->ports = k8s_arena_alloc(a, (ks->n_ports + 1) * sizeof(*s->ports));
    for (size_t i = 0; i < ks->n_ports; i++) {
        Istio__Workload__Port *p = k8s_arena_alloc(a, sizeof(*p));
        istio__workload__port__init(p);
        p->service_port = ks->ports[i].port;
        p->target_port = ks->ports[i].target_port; /* 0 for a named port: resolved per pod */
        p->app_protocol = app_protocol(&ks->ports[i]);
        s->ports[s->n_ports++] = p;
    }
    s->load_balancing = load_balancing(b, a, svc);
    s->ip_families = (Istio__Workload__IPFamilies)ks->ip_families;
    /* A Kubernetes Service is always canonical for its hostname. */
    s->canonical = true;
}

static void
add_resource(struct mesh_resources *out, char *name, const Istio__Workload__Address *addr)
{
    struct mesh_resource *r;

    if (out->n % 64 == 0)
        out->v = xrealloc(out->v, (out->n + 64) * sizeof(*out->v));
    r = &out->v[out->n++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup(name);
    r->type_url = K8S_TYPE_ADDRESS;
    r->len = istio__workload__address__get_packed_size(addr);
    r->data = xmalloc(r->len);
    istio__workload__address__pack(addr, r->data);
    snprintf(r->version, sizeof(r->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, r->data, r->len));
}

static int
cmp_resource(const void *x, const void *y)
{
    const struct mesh_resource *a = x, *b = y;
    int c = strcmp(a->type_url, b->type_url);
    return c ? c : strcmp(a->name, b->name);
}

int
k8s_build_resources(const struct k8s_store *st, const struct k8s_build_opts *o,
                    struct mesh_resources *out, struct k8s_diags *d)
{
    static const struct k8s_build_opts defaults = {0};
    struct k8s_build_ctx b = {.st = st, .d = d};

    if (o == NULL)
        o = &defaults;
    b.cluster_id = o->cluster_id && o->cluster_id[0] ? o->cluster_id : "Kubernetes";
    b.domain_suffix = o->domain_suffix && o->domain_suffix[0] ? o->domain_suffix : "cluster.local";
    b.network = o->network ? o->network : "";
    /* istiod pickTrustDomain: the default trust domain is left out. */
    if (o->trust_domain != NULL && o->trust_domain[0] != '\0' &&
        strcmp(o->trust_domain, "cluster.local") != 0)
        b.trust_domain = o->trust_domain;
    memset(out, 0, sizeof(*out));

    for (size_t i = 0; i < k8s_store_count(st, K8S_SERVICE); i++) {
        const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, i);
        struct k8s_arena a = {0};
        Istio__Workload__Service s;
        Istio__Workload__Address addr = ISTIO__WORKLOAD__ADDRESS__INIT;
        /* ExternalName Services are left to DNS, as istiod does. */
        if (svc->u.svc.external_name)
            continue;
        build_service(&b, &a, svc, &s);
        addr.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE;
        addr.service = &s;
        add_resource(out, k8s_arena_printf(&a, "%s/%s", s.namespace_, s.hostname), &addr);
        k8s_arena_free(&a);
    }
    for (size_t i = 0; i < k8s_store_count(st, K8S_POD); i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, i);
        struct k8s_arena a = {0};
        Istio__Workload__Workload w;
        Istio__Workload__Address addr = ISTIO__WORKLOAD__ADDRESS__INIT;
        /* Finished pods and pods without an address are not workloads (CheckPodTerminal,
         * getPodIPs). */
        if (pod->u.pod.terminal || pod->u.pod.n_ips == 0)
            continue;
        k8s_build_workload(&b, &a, pod, &w);
        addr.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
        addr.workload = &w;
        add_resource(out, w.uid, &addr);
        k8s_arena_free(&a);
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof(*out->v), cmp_resource);
    k8s_check_ports(st, d);
    return 0;
}

void
mesh_resources_free(struct mesh_resources *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].data);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

const struct mesh_resource *
mesh_resources_find(const struct mesh_resources *r, const char *type_url, const char *name)
{
    struct mesh_resource key = {.name = (char *)(uintptr_t)name, .type_url = type_url};

    if (r->n == 0)
        return NULL;
    return bsearch(&key, r->v, r->n, sizeof(*r->v), cmp_resource);
}
