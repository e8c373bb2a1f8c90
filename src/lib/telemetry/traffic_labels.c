/*
 * traffic_labels.c - Istio's traffic label names and the per-side values from the model.
 */
#include "telemetry/traffic_labels.h"

const char *const tl_names[TL_N_HTTP] = {
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_service",
    "destination_service_namespace",
    "destination_service_name",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
};

const char *
tl_or_unknown(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "unknown";
}

/* Both sides have the same layout from *_WORKLOAD on. */
_Static_assert(TL_DST_CLUSTER - TL_DST_WORKLOAD == TL_SRC_CLUSTER - TL_SRC_WORKLOAD &&
                   TL_DST_PRINCIPAL - TL_DST_WORKLOAD == TL_SRC_PRINCIPAL - TL_SRC_WORKLOAD,
               "source and destination labels differ in layout");

void
tl_workload(const char **v, bool src, const struct workload *w, const char *ns_fallback,
            const char *default_cluster)
{
    const char **s = v + (src ? TL_SRC_WORKLOAD : TL_DST_WORKLOAD);
    const char *cluster = w == NULL ? NULL : w->cluster_id ? w->cluster_id : default_cluster;

    s[0] = tl_or_unknown(w ? w->workload_name : NULL);
    s[TL_SRC_CANONICAL_SERVICE - TL_SRC_WORKLOAD] = tl_or_unknown(w ? w->canonical_name : NULL);
    s[TL_SRC_CANONICAL_REVISION - TL_SRC_WORKLOAD] =
        tl_or_unknown(w ? w->canonical_revision : NULL);
    s[TL_SRC_NAMESPACE - TL_SRC_WORKLOAD] = tl_or_unknown(w ? w->ns : ns_fallback);
    s[TL_SRC_APP - TL_SRC_WORKLOAD] = tl_or_unknown(w ? w->canonical_name : NULL);
    s[TL_SRC_VERSION - TL_SRC_WORKLOAD] = tl_or_unknown(w ? w->canonical_revision : NULL);
    s[TL_SRC_CLUSTER - TL_SRC_WORKLOAD] = tl_or_unknown(cluster);
}

void
tl_service(const char **v, const struct service *svc, const char *hostname)
{
    v[TL_DST_SERVICE] = tl_or_unknown(svc ? svc->hostname : hostname);
    v[TL_DST_SERVICE_NAMESPACE] = tl_or_unknown(svc ? svc->ns : NULL);
    v[TL_DST_SERVICE_NAME] = tl_or_unknown(svc ? svc->name : NULL);
}
