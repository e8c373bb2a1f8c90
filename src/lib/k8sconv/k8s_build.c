/*
 * k8s_build.c - the resources meshd serves, built from the objects in effect:
 * istio.workload.Address{service} per Service and Address{workload} per pod
 * (k8s_workload.c), packed, named as istiod names them and versioned by a hash
 * of their bytes, so a rebuild changes the version of exactly the resources
 * whose bytes changed. Everything that could vary in order without meaning
 * (maps, resource order) is sorted. The packed bytes are kept per object (its
 * memo) and reused while the object and what it was built from are unchanged;
 * the sorted name order is kept too and patched (k8sconv_internal.h,
 * "Incremental building").
 *
 * Services follow istiod's pilot/pkg/serviceregistry/ambient/services.go
 * constructService; app protocols pkg/config/kube ConvertProtocol. The
 * Authorization resources come first (their type URL sorts first) and are
 * made in k8s_authz*.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

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
    if (b->wp != NULL)
        s->waypoint = k8s_waypoint_address(a, b, b->wp);
    s->ip_families = (Istio__Workload__IPFamilies)ks->ip_families;
    /* A Kubernetes Service is always canonical for its hostname. */
    s->canonical = true;
}

/* ---- Memos: the packed resource per object, reused while its inputs are unchanged ---- */

static bool
str_eq(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static bool
memo_fresh(const struct k8s_memo *m, uint64_t opts, uint64_t ns_gen, const char *wp, uint64_t loc)
{
    return m->built && m->b_opts == opts && m->b_ns_gen == ns_gen && str_eq(m->b_wp, wp) &&
           m->b_loc == loc;
}

static void
memo_pack(struct k8s_memo *m, const char *name, const Istio__Workload__Address *addr, uint64_t opts,
          uint64_t ns_gen, const char *wp, uint64_t loc)
{
    if (m->name == NULL || strcmp(m->name, name) != 0) {
        free(m->name);
        m->name = xstrdup(name);
        m->ord_epoch = 0; /* another name: its place in the order is not known */
    }
    free(m->data);
    m->len = istio__workload__address__get_packed_size(addr);
    m->data = xmalloc(m->len);
    istio__workload__address__pack(addr, m->data);
    snprintf(m->version, sizeof(m->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, m->data, m->len));
    m->built = true;
    m->b_opts = opts;
    m->b_ns_gen = ns_gen;
    free(m->b_wp);
    m->b_wp = wp ? xstrdup(wp) : NULL;
    m->b_loc = loc;
}

/*
 * The waypoint |o| is bound to into b->wp, and its "<ns>/<name>" into |key|
 * (NULL when none): a change of it is a change of the resource, whatever
 * changed (a Gateway, its class, a label on the object or its Namespace).
 */
static const char *
bind_waypoint(struct k8s_build_ctx *b, const struct k8s_obj *o, const struct k8s_obj *nso,
              char *key, size_t len)
{
    b->wp = k8s_waypoint_of(b->st, o, nso, NULL);
    if (b->wp == NULL)
        return NULL;
    snprintf(key, len, "%s/%s", b->wp->meta.ns, b->wp->meta.name);
    return key;
}

/* The options' epoch: a new one whenever they differ from the last build's. */
static uint64_t
opts_epoch(struct k8s_view *v, const struct k8s_build_ctx *b)
{
    const char *now[ARRAY_LEN(v->opts)] = {b->cluster_id, b->trust_domain, b->domain_suffix,
                                           b->network};
    bool same = v->opts_epoch != 0;

    for (size_t i = 0; same && i < ARRAY_LEN(now); i++)
        same = str_eq(v->opts[i], now[i]);
    if (!same) {
        for (size_t i = 0; i < ARRAY_LEN(now); i++) {
            free(v->opts[i]);
            v->opts[i] = now[i] ? xstrdup(now[i]) : NULL;
        }
        v->opts_epoch++;
    }
    return v->opts_epoch;
}

/* Namespace |ns| into *nso (NULL when there is none) and its gen (0 then). */
static uint64_t
ns_gen(const struct k8s_store *st, const char *ns, const struct k8s_obj **nso)
{
    *nso = k8s_store_find(st, K8S_NAMESPACE, "", ns);
    return *nso ? (*nso)->gen : 0;
}

/* ---- The resources in name order ---- */

static int
cmp_memo_name(const void *x, const void *y)
{
    const struct k8s_memo *const *a = x, *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

/* Position of |name| in the order, or SIZE_MAX. */
static size_t
order_find(const struct k8s_order *o, const char *name)
{
    size_t lo = 0, hi = o->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o->names[mid], name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

/*
 * Puts the |n| memos into |sorted| in name order: each finds its place in the
 * last build's order (remembered, else by binary search); when names came or
 * went, the survivors are merged with the sorted newcomers. O(n) when the set
 * of names did not change.
 */
static void
order_memos(struct k8s_view *v, struct k8s_memo **memos, size_t n, struct k8s_memo **sorted)
{
    struct k8s_order *o = &v->order;
    struct k8s_memo **at = xcalloc(o->n + 1, sizeof(*at)); /* old position -> its memo now */
    struct k8s_memo **fresh = xcalloc(n + 1, sizeof(*fresh));
    size_t n_fresh = 0, claimed = 0;

    for (size_t i = 0; i < n; i++) {
        struct k8s_memo *m = memos[i];
        size_t pos = m->ord_epoch == o->epoch && m->ord < o->n ? m->ord : order_find(o, m->name);
        if (pos == SIZE_MAX || at[pos] != NULL) {
            fresh[n_fresh++] = m;
            continue;
        }
        at[pos] = m;
        claimed++;
    }
    if (n_fresh == 0 && claimed == o->n) {
        for (size_t i = 0; i < o->n; i++) {
            at[i]->ord = i;
            at[i]->ord_epoch = o->epoch;
            sorted[i] = at[i];
        }
        free(at);
        free(fresh);
        return;
    }
    if (n_fresh > 1)
        qsort(fresh, n_fresh, sizeof(*fresh), cmp_memo_name);
    char **names = xcalloc(n + 1, sizeof(*names));
    size_t k = 0, f = 0;
    for (size_t i = 0;; i++) {
        /* Newcomers that sort before the next survivor; the rest at the end. */
        while (f < n_fresh &&
               (i == o->n || (at[i] != NULL && strcmp(fresh[f]->name, at[i]->name) < 0))) {
            names[k] = xstrdup(fresh[f]->name);
            sorted[k++] = fresh[f++];
        }
        if (i == o->n)
            break;
        if (at[i] == NULL) {
            free(o->names[i]); /* gone */
            continue;
        }
        names[k] = o->names[i];
        sorted[k++] = at[i];
    }
    CHECK(k == n);
    free(o->names);
    o->names = names;
    o->n = n;
    o->epoch++;
    for (size_t i = 0; i < n; i++) {
        sorted[i]->ord = i;
        sorted[i]->ord_epoch = o->epoch;
    }
    free(at);
    free(fresh);
}

int
k8s_build(struct k8s_conv *cv, const struct k8s_build_opts *o, struct mesh_resources *out,
          struct k8s_diags *d)
{
    static const struct k8s_build_opts defaults = {0};
    const struct k8s_store *st = cv->st;
    struct k8s_build_ctx b = {.cv = cv, .st = st, .d = d};
    struct k8s_view *v = &cv->view;
    uint64_t g = 0;
    const struct k8s_obj *nso = NULL;
    char wpkey[512];

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
    cv->packed = 0;
    k8s_view_update(cv);
    uint64_t opts = opts_epoch(v, &b);

    struct k8s_memo **memos =
        xcalloc(k8s_store_count(st, K8S_SERVICE) + k8s_store_count(st, K8S_POD) + 1,
                sizeof(*memos));
    size_t n = 0;
    for (size_t i = 0, end = 0; i < k8s_store_count(st, K8S_SERVICE); i++) {
        const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, i);
        if (i == end) { /* a namespace begins */
            end = i + k8s_ns_run(st, K8S_SERVICE, i);
            g = ns_gen(st, svc->meta.ns, &nso);
        }
        /* ExternalName Services are left to DNS, as istiod does. */
        if (svc->u.svc.external_name)
            continue;
        struct k8s_memo *m = k8s_memo_get(cv, svc);
        const char *wp = bind_waypoint(&b, svc, nso, wpkey, sizeof(wpkey));
        if (!memo_fresh(m, opts, g, wp, 0)) {
            struct k8s_arena a = {0};
            Istio__Workload__Service s;
            Istio__Workload__Address addr = ISTIO__WORKLOAD__ADDRESS__INIT;
            build_service(&b, &a, svc, &s);
            addr.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE;
            addr.service = &s;
            memo_pack(m, k8s_arena_printf(&a, "%s/%s", s.namespace_, s.hostname), &addr, opts, g,
                      wp, 0);
            cv->packed++;
            k8s_arena_free(&a);
        }
        memos[n++] = m;
    }
    for (size_t i = 0, end = 0; i < k8s_store_count(st, K8S_POD); i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, i);
        if (i == end) {
            end = i + k8s_ns_run(st, K8S_POD, i);
            g = ns_gen(st, pod->meta.ns, &nso);
        }
        /* Finished pods and pods without an address are not workloads (CheckPodTerminal,
         * getPodIPs). */
        if (pod->u.pod.terminal || pod->u.pod.n_ips == 0)
            continue;
        /* Made, with the selection, by k8s_view_update(). */
        struct k8s_memo *m = k8s_memo_find(cv, pod);
        const char *wp = bind_waypoint(&b, pod, nso, wpkey, sizeof(wpkey));
        const char *loc[3];
        /* Its Node's topology labels: a change there is a change of the pod's resource. */
        uint64_t lh = k8s_pod_locality(st, pod, loc);
        if (!memo_fresh(m, opts, g, wp, lh)) {
            struct k8s_arena a = {0};
            Istio__Workload__Workload w;
            Istio__Workload__Address addr = ISTIO__WORKLOAD__ADDRESS__INIT;
            k8s_build_workload(&b, &a, pod, &w);
            addr.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
            addr.workload = &w;
            memo_pack(m, w.uid, &addr, opts, g, wp, lh);
            cv->packed++;
            k8s_arena_free(&a);
        }
        memos[n++] = m;
    }
    struct k8s_memo **sorted = xcalloc(n + 1, sizeof(*sorted));
    order_memos(v, memos, n, sorted);
    struct mesh_resource *eps;
    size_t n_eps;
    k8s_slice_resources(&b, &eps, &n_eps);
    cv->packed += n_eps;
    /* Authorization before Address: the order of the type URLs. */
    const struct k8s_authz_cache *az = k8s_authz_resources(cv);
    if (n + n_eps + az->n_res > 0)
        out->v = xcalloc(n + n_eps + az->n_res, sizeof(*out->v));
    for (size_t i = 0; i < az->n_res; i++) {
        const struct mesh_resource *s = &az->res[i];
        struct mesh_resource *r = &out->v[i];
        r->name = xstrdup(s->name);
        r->type_url = s->type_url;
        r->data = xmalloc(s->len + 1);
        memcpy(r->data, s->data, s->len);
        r->len = s->len;
        memcpy(r->version, s->version, sizeof(r->version));
    }
    /* The memos' resources merged with the EndpointSlice workloads, both in name order. */
    size_t k = az->n_res;
    for (size_t i = 0, j = 0; i < n || j < n_eps;) {
        struct mesh_resource *r = &out->v[k++];
        if (j < n_eps && (i == n || strcmp(eps[j].name, sorted[i]->name) < 0)) {
            *r = eps[j++]; /* moved */
            continue;
        }
        const struct k8s_memo *m = sorted[i++];
        r->name = xstrdup(m->name);
        r->type_url = K8S_TYPE_ADDRESS;
        r->data = xmalloc(m->len);
        memcpy(r->data, m->data, m->len);
        r->len = m->len;
        memcpy(r->version, m->version, sizeof(r->version));
    }
    out->n = k;
    free(eps);
    free(sorted);
    free(memos);
    k8s_check_ports(cv, d);
    k8s_authz_diags(cv, d);
    k8s_waypoint_diags(st, d);
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

static int
cmp_resource(const void *x, const void *y)
{
    const struct mesh_resource *a = x, *b = y;
    int c = strcmp(a->type_url, b->type_url);
    return c ? c : strcmp(a->name, b->name);
}

const struct mesh_resource *
mesh_resources_find(const struct mesh_resources *r, const char *type_url, const char *name)
{
    struct mesh_resource key = {.name = (char *)(uintptr_t)name, .type_url = type_url};

    if (r->n == 0)
        return NULL;
    return bsearch(&key, r->v, r->n, sizeof(*r->v), cmp_resource);
}
