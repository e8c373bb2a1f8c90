/*
 * waypoint.h - meshctl's waypoints: the Gateway and what istiod would deploy for it
 * (waypoint_render.c, pure), the local cluster's controller for them (waypoint_ctl.c) and
 * `meshctl waypoint generate|apply|list|status|delete` (waypoint_cmd.c).
 */
#ifndef MESH_MESHCTL_WAYPOINT_H
#define MESH_MESHCTL_WAYPOINT_H

#include <stdbool.h>

#include <jansson.h>

#define WP_CLASS               "istio-waypoint"
#define WP_GATEWAY_API_VERSION "gateway.networking.k8s.io/v1"
#define WP_CONTROLLER_LABEL    "istio.io-mesh-controller"
#define WP_LABEL_FOR           "istio.io/waypoint-for"
#define WP_LABEL_USE           "istio.io/use-waypoint"
#define WP_DEFAULT_NAME        "waypoint"
#define WP_HBONE_PORT          15008
#define WP_STATUS_PORT         15021
/* amesh's own: the number of replicas (`meshctl waypoint apply --replicas N`); default 1. */
#define WP_ANNOTATION_REPLICAS "amesh.io/waypoint-replicas"
#define WP_MAX_REPLICAS        16

/* What the rendered pod needs from where it runs. */
struct wp_env {
    const char *cluster_dir; /* nodes/<node>/token and state/root-cert.pem below it */
    const char *xds_address; /* meshd's 15012 */
};

/* service, workload, all or none (istioctl's --for). */
bool wp_valid_traffic_type(const char *t);
/*
 * The Gateway istioctl generates: class istio-waypoint, listener mesh/15008/HBONE; the
 * istio.io/waypoint-for label only when |for_type| is given (else the class decides), and
 * istio.io/rev when |revision| is. |ns| NULL or "" leaves the namespace out.
 */
json_t *wp_gateway(const char *ns, const char *name, const char *for_type, const char *revision);
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
 * name and uid), each owned by it; NULL when |gw| is not a waypoint or its replicas are bad.
 */
json_t *wp_render(const json_t *gw, const struct wp_env *env);
/* Does |obj| name Gateway |gw_name| among its ownerReferences? */
bool wp_owned_by(const json_t *obj, const char *gw_name);

#endif
