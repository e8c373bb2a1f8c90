/*
 * k8sconv.h - the converter: the objects in effect in a k8s store (lib/k8s)
 * turned into the xDS resources istiod would serve:
 * type.googleapis.com/istio.workload.Address (one Workload per running pod
 * with an IP, one Service per non-ExternalName Service) and
 * type.googleapis.com/istio.security.Authorization (AuthorizationPolicy and
 * PeerAuthentication converted for ztunnel). Services and Workloads carry
 * the waypoint they are bound to (istio.io/use-waypoint, k8s_waypoint.c),
 * bound as soon as the label names an existing waypoint Gateway.
 *
 * Building is incremental: a converter remembers, per object gen, the packed
 * resource and what it was made from, and packs again only what a change
 * reaches (the object, its Namespace, the Services selecting a pod, the
 * waypoint it is bound to, the options), with output identical to a build from scratch. The store knows
 * nothing of it (this module depends on lib/k8s, never the reverse). One
 * converter follows one store (another store resets it) and is for one
 * thread at a time.
 */
#ifndef MESH_LIB_K8SCONV_H
#define MESH_LIB_K8SCONV_H

#include <stddef.h>
#include <stdint.h>

#include "k8s/k8s.h"

#define K8S_TYPE_ADDRESS       "type.googleapis.com/istio.workload.Address"
#define K8S_TYPE_AUTHORIZATION "type.googleapis.com/istio.security.Authorization"
#define K8S_TYPE_ROUTE         "type.googleapis.com/amesh.waypoint.v1.Route"
#define K8S_TYPE_POLICY        "type.googleapis.com/amesh.waypoint.v1.Policy"

struct mesh_resource {
    char *name;           /* Workload: uid; Service, Authorization: "<ns>/<name or hostname>" */
    const char *type_url; /* static */
    uint8_t *data;        /* packed istio.workload.Address or istio.security.Authorization */
    size_t len;
    char version[17]; /* hex of a 64-bit hash of data */
};

struct mesh_resources {
    struct mesh_resource *v; /* sorted by (type_url, name) */
    size_t n;
};

struct k8s_build_opts {
    const char *cluster_id;    /* NULL: "Kubernetes" */
    const char *trust_domain;  /* NULL: "cluster.local" (then not sent, as istiod) */
    const char *domain_suffix; /* NULL: "cluster.local" */
    const char *network;       /* NULL: "" (the default network) */
};

struct k8s_conv;

struct k8s_conv *k8s_conv_new(void);
void k8s_conv_free(struct k8s_conv *cv);

/*
 * Builds every resource for the objects in effect in |st| into |out| (which
 * is overwritten), reusing what |cv| built before from unchanged objects. |o|
 * may be NULL for the defaults. What istiod drops silently (a named
 * targetPort a selected pod does not have) is appended to |d| as warnings;
 * k8s_conv_diags() reports the same. Returns 0.
 */
int k8s_conv_build(struct k8s_conv *cv, const struct k8s_store *st, const struct k8s_build_opts *o,
                   struct mesh_resources *out, struct k8s_diags *d);
/* Address resources the last k8s_conv_build() packed (the others were reused). */
size_t k8s_conv_packed(const struct k8s_conv *cv);
/*
 * Appends the diagnostics currently standing for the whole store to |out|:
 * each file's from its last load, duplicates between files and the warnings
 * building gives, re-derived, sorted by file and line. For `meshctl analyze`
 * and meshd's log.
 */
void k8s_conv_diags(struct k8s_conv *cv, const struct k8s_store *st, struct k8s_diags *out);

/* The same with a converter made for the one call: from scratch (tools, tests). */
int k8s_build_resources(const struct k8s_store *st, const struct k8s_build_opts *o,
                        struct mesh_resources *out, struct k8s_diags *d);
void k8s_build_diags(const struct k8s_store *st, struct k8s_diags *out);

/*
 * The waypoint route table of Service |ns|/|name| port |port| (a service
 * port): the HTTPRoutes in effect that attach to it, converted and in Gateway
 * API precedence order (k8s_route.c), packed as amesh.waypoint.v1.Route into
 * |out|, named "<ns>/<hostname>:<port>" (free out->name and out->data).
 * Routes with a field the waypoint cannot serve are left out, with an error
 * in |d| (NULL: not wanted). Returns 0, or -ENOENT when there is no such
 * Service port. Sans-I/O; serving it to waypoints is meshd's part.
 */
int k8s_route_build(const struct k8s_store *st, const struct k8s_build_opts *o, const char *ns,
                    const char *name, uint32_t port, struct mesh_resource *out,
                    struct k8s_diags *d);

/*
 * Everything waypoint Gateway |ns|/|name| is served (k8s_wpconf.c): the Route
 * of every port of the Services bound to it and the Policies (targetRefs)
 * that reach it, into |out| (overwritten, sorted), with route errors in |d|
 * (NULL: not wanted). Returns 0, or -ENOENT when |ns|/|name| is not a
 * Gateway of class istio-waypoint (then |out| is empty).
 */
int k8s_waypoint_config(const struct k8s_store *st, const struct k8s_build_opts *o, const char *ns,
                        const char *name, struct mesh_resources *out, struct k8s_diags *d);

void mesh_resources_free(struct mesh_resources *r);
/* Returns the resource called |name| of |type_url|, or NULL. */
const struct mesh_resource *mesh_resources_find(const struct mesh_resources *r,
                                                const char *type_url, const char *name);

#endif
