/*
 * waypoint.h - meshctl's waypoints: the Gateway istioctl would write (waypoint_gateway.c), the
 * local cluster's controller for what it deploys (waypoint_ctl.c, rendering from lib/wpdeploy,
 * which meshd uses on Kubernetes too) and `meshctl waypoint generate|apply|list|status|delete`
 * (waypoint_cmd.c).
 */
#ifndef MESH_MESHCTL_WAYPOINT_H
#define MESH_MESHCTL_WAYPOINT_H

#include <stdbool.h>

#include <jansson.h>

#include "wpdeploy/wpdeploy.h"

/* service, workload, all or none (istioctl's --for). */
bool wp_valid_traffic_type(const char *t);
/*
 * The Gateway istioctl generates: class istio-waypoint, listener mesh/15008/HBONE; the
 * istio.io/waypoint-for label only when |for_type| is given (else the class decides), and
 * istio.io/rev when |revision| is. |ns| NULL or "" leaves the namespace out.
 */
json_t *wp_gateway(const char *ns, const char *name, const char *for_type, const char *revision);

#endif
