/*
 * k8sconv_internal.h - what the converter's files share:
 *
 *   k8s_conv.c      the converter object, the public entry points, one-shot builds
 *   k8s_memo.c      memos: what was built per pod and Service, found by the object's gen
 *   k8s_build.c     resources, versions, packing into memos, the name order
 *   k8s_workload.c  Workload per pod; which Services select which pods (the view)
 *   k8s_endpoints.c Workloads from EndpointSlices (endpoints that are not pods)
 *   k8s_authz_sel.c which policies each workload lists, policy epochs, the Authorization resources
 *   k8s_authz_pa.c  PeerAuthentication: effective mode, converted policies
 *   k8s_waypoint.c  which waypoint a Service or pod is bound to; bad bindings
 *   k8s_route.c     HTTPRoutes -> amesh.waypoint.v1.Route per service port (sans-I/O)
 *   k8s_wpconf.c    one waypoint's Routes and Policies (targetRefs)
 *
 * It reads the store's objects in effect (k8s/k8s_internal.h) and never
 * writes them.
 */
#ifndef MESH_LIB_K8SCONV_INTERNAL_H
#define MESH_LIB_K8SCONV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authorization.pb-c.h"
#include "k8s/k8s_objects.h"
#include "k8sconv/k8sconv.h"
#include "workload.pb-c.h"

/* ---- Building (k8s_build.c, k8s_workload.c) ---- */

/*
 * Incremental building. k8s_conv_build() and k8s_check_ports() work from a
 * view derived from the objects in effect and kept in the converter between
 * calls:
 *
 *   - per namespace, its Services (their gens) and an index of their
 *     selectors: each Service is filed under the selector entry (key=value)
 *     fewest of the namespace's Services share, so the Services selecting a
 *     pod are found by looking up the pod's own labels;
 *   - per pod (in its memo), the Services that select it, recomputed only
 *     when the pod or its namespace's Services changed;
 *   - per namespace, a policy epoch that changes with its AuthorizationPolicies
 *     and PeerAuthentications; per pod (memo), its authorization_policies,
 *     recomputed only when the epoch of its namespace or of the root namespace
 *     changed (the resource is built again only if the list differs);
 *   - the Authorization resources, kept while no policy's gen changes;
 *   - per pod and Service (memo), the packed resource with what it was built
 *     from (the object's gen in the memo, its Namespace's gen, the selecting
 *     Services' gens, the options), reused while all of that is unchanged;
 *   - the resource names in sorted order, patched when the set changes.
 *
 * Output is byte-identical to building everything from scratch
 * (test_k8s_diff checks this over random edits).
 */

/* One namespace's Services and their selector index (k8s_workload.c). */
struct k8s_nsview {
    char *ns;
    size_t begin;   /* its first Service in eff[K8S_SERVICE] */
    size_t n;       /* its Services */
    uint64_t *gens; /* theirs, in order: any change gives a new epoch */
    uint64_t epoch; /* >= 2, unique in the store */
    /* (key, value) hash -> chain of Service offsets (from begin) filed under it */
    uint64_t *slot_hash;
    uint32_t *slot_head; /* 1 + offset; 0 = free slot */
    size_t cap;          /* power of two */
    uint32_t *next;      /* per offset: 1 + next offset in its chain, 0 = end */
};

/* A namespace's AuthorizationPolicies and PeerAuthentications (their gens) and its policy epoch. */
struct k8s_polview {
    char *ns;
    uint64_t *gens; /* AuthorizationPolicies, then PeerAuthentications, in (ns, name) order */
    size_t n;
    uint64_t epoch; /* >= 2, unique in the store; changes whenever gens do */
};

/*
 * The Authorization resources of the last build, kept while the policies
 * (their gens) do not change: AuthorizationPolicies converted, and what
 * istiod derives from PeerAuthentications.
 */
struct k8s_authz_cache {
    bool valid;
    uint64_t *gens; /* every AuthorizationPolicy's, then every PeerAuthentication's */
    size_t n_gens;
    struct mesh_resource *res; /* sorted by name */
    size_t n_res;
    struct k8s_diags diags; /* PeerAuthentication warnings that depend on other objects */
};

/* Sorted names of the last build's resources. */
struct k8s_order {
    char **names; /* owned */
    size_t n;
    uint64_t epoch; /* changes when names are added or removed */
};

struct k8s_view {
    uint64_t eff_version;  /* of the store when derived */
    uint64_t last_epoch;   /* the last nsview epoch given out (K8S_EPOCH_NO_SERVICES at first) */
    struct k8s_nsview *ns; /* sorted by ns */
    size_t n_ns;
    size_t *warn; /* positions in eff[K8S_POD] of the pods whose memo has port_warn */
    size_t n_warn;
    char *opts[4]; /* the options of the last build; changes give a new opts_epoch */
    uint64_t opts_epoch;
    struct k8s_order order;
    struct k8s_polview *pol; /* namespaces with policies, sorted by ns */
    size_t n_pol;
    struct k8s_authz_cache authz;
};

/* The selection epoch of a namespace without Services, where pods select none (also
 * what a fresh view starts counting from: every namespace view has a larger one). */
#define K8S_EPOCH_NO_SERVICES 1

/* What the converter remembers of one object in effect (a pod or a Service), found by its gen. */
struct k8s_memo {
    uint64_t gen;  /* of the object it was made for */
    uint64_t kept; /* the sweep that last found the object in effect */
    /* Pods: the Services selecting this pod, as of sel_epoch (0: never computed). */
    uint64_t sel_epoch;
    uint32_t *sel;      /* offsets in the namespace's Services, ascending */
    uint64_t *sel_gens; /* their gens */
    size_t n_sel;
    bool port_warn; /* one of them has a named targetPort this pod lacks */
    /* Pods: authorization_policies, as of the policy epochs of the pod's namespace and of
     * the root namespace (0: never computed). */
    uint64_t pol_epoch;
    uint64_t pol_root_epoch;
    char **pols; /* owned */
    size_t n_pols;
    /* The packed resource, valid when built and made with b_opts and b_ns_gen. */
    bool built;
    uint64_t b_opts;
    uint64_t b_ns_gen; /* of the object's Namespace, 0 when there is none */
    char *b_wp; /* "<ns>/<name>" of the waypoint it was built with, NULL for none */
    uint64_t b_loc; /* pods: k8s_pod_locality() it was built with */
    char *name;
    uint8_t *data;
    size_t len;
    char version[17];
    size_t ord; /* position in the view's order, valid when ord_epoch matches */
    uint64_t ord_epoch;
};

struct k8s_conv {
    const struct k8s_store *st; /* of the call in progress */
    uint64_t store_id;          /* the store the view and memos are of (0: none yet) */
    struct k8s_view view;
    /* Memos by gen: open addressing, linear probing, at most half full. */
    struct k8s_memo **memos;
    size_t memo_cap; /* a power of two, or 0 */
    size_t n_memos;
    uint64_t sweep;
    size_t packed; /* by the last build */
};

/* |o|'s memo, made when it has none. */
struct k8s_memo *k8s_memo_get(struct k8s_conv *cv, const struct k8s_obj *o);
/* |o|'s memo, or NULL. */
struct k8s_memo *k8s_memo_find(const struct k8s_conv *cv, const struct k8s_obj *o);
/* Frees the memos of objects no longer in effect (called when eff was re-derived). */
void k8s_memo_sweep(struct k8s_conv *cv);
/* Frees every memo. */
void k8s_memo_clear(struct k8s_conv *cv);
void k8s_memo_free(struct k8s_memo *m);
void k8s_view_free(struct k8s_view *v);
/* Brings the namespaces' indexes and the pods' selections up to date with eff. */
void k8s_view_update(struct k8s_conv *cv);
/* The Service at |off| in |nv|. */
const struct k8s_obj *k8s_nsview_service(const struct k8s_store *st, const struct k8s_nsview *nv,
                                         uint32_t off);
/* The namespace view of |ns|, or NULL when it has no Services. */
const struct k8s_nsview *k8s_view_ns(const struct k8s_view *v, const char *ns);

struct k8s_build_ctx {
    struct k8s_conv *cv;
    const struct k8s_store *st;
    const char *cluster_id;
    const char *trust_domain; /* NULL when cluster.local: then not sent */
    const char *domain_suffix;
    const char *network;
    struct k8s_diags *d;
    const struct k8s_obj *wp; /* the waypoint Gateway of the object being built, or NULL */
};

/* "<name>.<ns>.svc.<domain_suffix>" in |a|. */
char *k8s_service_hostname(struct k8s_arena *a, const struct k8s_build_ctx *b,
                           const struct k8s_obj *svc);
/*
 * Fills |w| for |pod| (which has IPs and is not terminal) with memory from
 * |a|; its services are those of the pod's memo (k8s_view_update() first).
 * Pointers into the store are borrowed.
 */
void k8s_build_workload(const struct k8s_build_ctx *b, struct k8s_arena *a,
                        const struct k8s_obj *pod, Istio__Workload__Workload *w);
/*
 * The Workloads of the EndpointSlices in effect (k8s_endpoints.c), packed,
 * into a fresh array sorted by name (*res NULL when none).
 */
void k8s_slice_resources(const struct k8s_build_ctx *b, struct mesh_resource **res, size_t *n);
/*
 * The locality of |pod| from its Node's labels into |out| (region, zone,
 * subzone; NULL when not set). Returns a hash of the three, 0 when none is
 * set or the Node is unknown: what a pod's memo is checked against.
 */
uint64_t k8s_pod_locality(const struct k8s_store *st, const struct k8s_obj *pod,
                          const char *out[3]);
/*
 * Warns about what the conversion drops silently, as istiod does: a named
 * targetPort a selected pod has no TCP container port for.
 */
void k8s_check_ports(struct k8s_conv *cv, struct k8s_diags *out);
/* Builds into |out| (k8s_conv_build() once the converter follows |cv->st|). */
int k8s_build(struct k8s_conv *cv, const struct k8s_build_opts *o, struct mesh_resources *out,
              struct k8s_diags *d);

/* ---- Authorization (k8s_authz_sel.c, k8s_authz_pa.c) ---- */

/* The policy views of the namespaces, from the objects in effect (called by k8s_view_update()). */
void k8s_authz_view_update(struct k8s_conv *cv);
/* The policy epoch of namespace |ns|: K8S_EPOCH_NO_SERVICES when it has no policies. */
uint64_t k8s_authz_epoch(const struct k8s_view *v, const char *ns);
/*
 * Recomputes |pod|'s authorization_policies into its memo for epochs |epoch|
 * (its namespace) and |root_epoch|; the resource is built again only when the
 * list changed.
 */
void k8s_authz_select(const struct k8s_store *st, const struct k8s_obj *pod, struct k8s_memo *m,
                      uint64_t epoch, uint64_t root_epoch);
/*
 * The Authorization resources for the objects in effect (cached while the
 * policies are unchanged): a pointer to the view's sorted array.
 */
const struct k8s_authz_cache *k8s_authz_resources(struct k8s_conv *cv);
/* Appends the policies' diagnostics (of the objects in effect) to |out|. */
void k8s_authz_diags(struct k8s_conv *cv, struct k8s_diags *out);
void k8s_authz_view_free(struct k8s_view *v);

/* PeerAuthentication (k8s_authz_pa.c). */
/*
 * The PeerAuthentication keys workload |pod| lists (istiod's
 * convertedSelectorPeerAuthentications): the static STRICT policy and/or its
 * port-level policy. Appends heap strings to *v (n, cap as in a vector).
 */
void k8s_pa_keys(const struct k8s_store *st, const struct k8s_obj *pod, char ***v, size_t *n);
/*
 * Appends the resources derived from PeerAuthentications (the static STRICT
 * policy when there is any, converted port-level policies) to *res, unsorted,
 * and the warnings that depend on other objects to |d|.
 */
void k8s_pa_resources(const struct k8s_store *st, struct mesh_resource **res, size_t *n,
                      struct k8s_diags *d);

/*
 * k8s_route_build() for Service |svc| with the routes to consider given: the
 * HTTPRoutes and GRPCRoutes |cands| (each at most once; those that do not
 * attach are skipped), so that a caller building many tables scans the
 * routes once (k8s_wpconf.c). Same result as k8s_route_build() when |cands|
 * holds every route that attaches.
 */
int k8s_route_build_among(const struct k8s_store *st, const struct k8s_build_opts *o,
                          const struct k8s_obj *svc, uint32_t port,
                          const struct k8s_obj *const *cands, size_t n_cands,
                          struct mesh_resource *out, struct k8s_diags *d);

/* ---- Waypoints (k8s_waypoint.c) ---- */

#define K8S_WP_SERVICE  1u
#define K8S_WP_WORKLOAD 2u

/*
 * The waypoint Gateway Service or pod |o| is bound to, or NULL; |nso| is its
 * Namespace (NULL when there is none). With |d|, why a binding asked for by
 * |o|'s own label does not hold is reported there.
 */
const struct k8s_obj *k8s_waypoint_of(const struct k8s_store *st, const struct k8s_obj *o,
                                      const struct k8s_obj *nso, struct k8s_diags *d);
/* GatewayAddress{hostname {ns, <gw>.<ns>.svc.<suffix>}, hbone_mtls_port 15008} in |a|. */
Istio__Workload__GatewayAddress *k8s_waypoint_address(struct k8s_arena *a,
                                                      const struct k8s_build_ctx *b,
                                                      const struct k8s_obj *gw);
/* Appends what is wrong with waypoint Gateways and use-waypoint labels in effect. */
void k8s_waypoint_diags(const struct k8s_store *st, struct k8s_diags *out);
/* Appends the route errors (AM0005) of what every waypoint is served, each once. */
void k8s_wpconf_diags(const struct k8s_store *st, struct k8s_diags *out);

#endif
