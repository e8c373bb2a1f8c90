/*
 * wpdeploy.h - what istiod's deployment controller and status writer do for a waypoint Gateway
 * (class istio-waypoint), as pure functions of JSON objects: the ServiceAccount, Deployment
 * and Service it deploys (wp_render.c) and the status it reports on the Gateway and its class
 * (wp_status.c). No I/O: meshctl's local cluster (src/meshctl/waypoint_ctl.c) and meshd on a
 * real API server (src/meshd/kube_waypoint.c) both call these, each passing its environment.
 */
#ifndef MESH_LIB_WPDEPLOY_H
#define MESH_LIB_WPDEPLOY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define WP_CLASS               "istio-waypoint"
#define WP_CLASS_CONTROLLER    "istio.io/mesh-controller"
#define WP_GATEWAY_API_VERSION "gateway.networking.k8s.io/v1"
#define WP_CONTROLLER_LABEL    "istio.io-mesh-controller"
#define WP_LABEL_GATEWAY_NAME  "gateway.networking.k8s.io/gateway-name"
#define WP_LABEL_MANAGED       "gateway.istio.io/managed"
#define WP_LABEL_FOR           "istio.io/waypoint-for"
#define WP_LABEL_USE           "istio.io/use-waypoint"
#define WP_DEFAULT_NAME        "waypoint"
#define WP_LISTENER            "mesh"
#define WP_HBONE_PORT          15008
#define WP_STATUS_PORT         15021
/* amesh's own: the number of replicas (`meshctl waypoint apply --replicas N`); default 1. */
#define WP_ANNOTATION_REPLICAS "amesh.io/waypoint-replicas"
#define WP_MAX_REPLICAS        16

/* Where the rendered pod runs, which decides how its token and the mesh root reach it. */
enum wp_creds {
    /* meshctl's local cluster: the node's meshd token and the root are files under
     * |cluster_dir| (nodes/$(NODE_NAME)/token, state/root-cert.pem); no image. */
    WP_CREDS_LOCAL,
    /* Kubernetes: a projected service-account token (audience istio-ca) and the
     * istio-ca-root-cert ConfigMap meshd publishes, mounted as volumes; |image| runs. */
    WP_CREDS_KUBE,
};

struct wp_env {
    enum wp_creds creds;
    const char *xds_address; /* meshd's 15012 as IP:PORT (the waypoint's --xds-address) */
    const char *cluster_dir; /* WP_CREDS_LOCAL */
    const char *image;       /* WP_CREDS_KUBE: the waypoint's container image */
};

/* Where WP_CREDS_KUBE mounts them (as manifests/base/ztunnel.yaml does for ztunnel). */
#define WP_KUBE_TOKEN_DIR   "/var/run/secrets/tokens"
#define WP_KUBE_TOKEN_FILE  WP_KUBE_TOKEN_DIR "/istio-token"
#define WP_KUBE_ROOT_DIR    "/var/run/secrets/istio"
#define WP_KUBE_ROOT_FILE   WP_KUBE_ROOT_DIR "/root-cert.pem"
#define WP_KUBE_TOKEN_TTL_S 43200

/* ---- wp_render.c ---- */

/* Is |gw| (a Gateway object) of class istio-waypoint? */
bool wp_is_waypoint(const json_t *gw);
/* Its istio.io/waypoint-for, "service" when unset. */
const char *wp_traffic_type(const json_t *gw);
/* Deployment and Service name; ServiceAccount name. */
const char *wp_deployment_name(const json_t *gw);
const char *wp_service_account(const json_t *gw);
/* Replicas from WP_ANNOTATION_REPLICAS: 1 when unset, -1 when not a number in [0, 16]. */
int wp_replicas(const json_t *gw);
/*
 * [ServiceAccount, Deployment, Service] for waypoint Gateway |gw| (with metadata.namespace,
 * name and uid), each owned by it and carrying its spec.infrastructure labels and
 * annotations (the pods too); NULL when |gw| is not a waypoint or its replicas are bad.
 */
json_t *wp_render(const json_t *gw, const struct wp_env *env);
/* Does |obj| name Gateway |gw_name| among its ownerReferences? */
bool wp_owned_by(const json_t *obj, const char *gw_name);
/*
 * Does |have| already hold everything |want| says? Objects: every key of |want| is in |have|
 * with a value that holds it (keys only |have| has, e.g. server defaults, are fine); arrays:
 * the same length and each element holding |want|'s; scalars: equal. So a rendered object
 * that holds in the live one needs no write, and a user's edit of a rendered field shows.
 */
bool wp_holds(const json_t *have, const json_t *want);

/* ---- wp_status.c ---- */

/* What the status of a waypoint Gateway is computed from. */
struct wp_facts {
    bool service;           /* its Service exists */
    const char *cluster_ip; /* the Service's spec.clusterIP, NULL or "None" when none */
    int replicas;           /* pods of its Deployment (or the Deployment's status.replicas) */
    int ready;              /* of which ready */
    bool deployment;        /* its Deployment exists */
    int attached_routes;    /* routes whose parentRefs name the Gateway's mesh listener */
};

/*
 * The Programmed condition: true once a replica is ready; |reason| Programmed or Pending and
 * a message naming the Service (istiod's words when true, what is awaited when false).
 */
bool wp_condition_programmed(const json_t *gw, const struct wp_facts *f, char *reason,
                             size_t reasonlen, char *msg, size_t msglen);
/*
 * The Gateway's status: conditions Accepted and Programmed, addresses (the Service's cluster
 * IP, then its hostname), listener "mesh" with attachedRoutes and its conditions, each with
 * observedGeneration = metadata.generation. A condition whose status is unchanged from
 * |gw|'s current status keeps its lastTransitionTime; |now| (RFC 3339) stamps the others.
 */
json_t *wp_gateway_status(const json_t *gw, const struct wp_facts *f, const char *now);
/* The status of GatewayClass istio-waypoint: Accepted (same rules for lastTransitionTime). */
json_t *wp_class_status(const json_t *cls, const char *now);
/* Does |cur| (a status object, or NULL) say what |want| says, lastTransitionTime aside? */
bool wp_status_same(const json_t *cur, const json_t *want);
/*
 * Does route |route| (HTTPRoute or GRPCRoute) attach to Gateway |gw|'s mesh listener: a
 * parentRef naming the Gateway (sectionName mesh or none, port 15008 or none) from a namespace
 * its allowedRoutes admits (Same, the default, or All; a Selector admits none here)?
 */
bool wp_route_attaches(const json_t *route, const json_t *gw);

#endif
