/*
 * waypoint_gateway.c - the Gateway `meshctl waypoint generate|apply` writes, as istioctl's
 * (what it deploys is lib/wpdeploy's, shared with meshd).
 */
#include <string.h>

#include "base/base.h"
#include "waypoint.h"

static const char *const traffic_types[] = {"all", "none", "service", "workload"};

bool
wp_valid_traffic_type(const char *t)
{
    for (size_t i = 0; i < ARRAY_LEN(traffic_types); i++)
        if (strcmp(t, traffic_types[i]) == 0)
            return true;
    return false;
}

json_t *
wp_gateway(const char *ns, const char *name, const char *for_type, const char *revision)
{
    json_t *labels = json_object();
    if (for_type != NULL && for_type[0] != '\0')
        json_object_set_new(labels, WP_LABEL_FOR, json_string(for_type));
    if (revision != NULL && revision[0] != '\0')
        json_object_set_new(labels, "istio.io/rev", json_string(revision));
    json_t *meta = json_pack("{s:s}", "name", name);
    if (ns != NULL && ns[0] != '\0')
        json_object_set_new(meta, "namespace", json_string(ns));
    if (json_object_size(labels) > 0)
        json_object_set(meta, "labels", labels);
    json_decref(labels);
    return json_pack("{s:s, s:s, s:o, s:{s:s, s:[{s:s, s:i, s:s}]}}", "apiVersion",
                     WP_GATEWAY_API_VERSION, "kind", "Gateway", "metadata", meta, "spec",
                     "gatewayClassName", WP_CLASS, "listeners", "name", "mesh", "port",
                     WP_HBONE_PORT, "protocol", "HBONE");
}
