/*
 * traffic_labels.h - Istio's standard traffic labels (istio-ambient.md 6.1, 6.3): the names,
 * in one fixed order, and the values each side of a connection or request gets from the
 * workload model. ztunnel's istio_tcp_* (reporter source|destination) and the waypoint's
 * istio_requests_total, istio_request_* histograms and istio_tcp_* (reporter waypoint) use
 * the same table, so the two report the same label names and the same "unknown"s.
 *
 * The first TL_N_TCP labels are ztunnel's CommonTrafficLabels; HTTP metrics add
 * response_code and grpc_response_status (Istio's stats filter, PX all_tags_).
 */
#ifndef MESH_LIB_TRAFFIC_LABELS_H
#define MESH_LIB_TRAFFIC_LABELS_H

#include <stdbool.h>

#include "model/model.h"

enum tl_label {
    TL_REPORTER,
    TL_SRC_WORKLOAD,
    TL_SRC_CANONICAL_SERVICE,
    TL_SRC_CANONICAL_REVISION,
    TL_SRC_NAMESPACE,
    TL_SRC_PRINCIPAL,
    TL_SRC_APP,
    TL_SRC_VERSION,
    TL_SRC_CLUSTER,
    TL_DST_SERVICE,
    TL_DST_SERVICE_NAMESPACE,
    TL_DST_SERVICE_NAME,
    TL_DST_WORKLOAD,
    TL_DST_CANONICAL_SERVICE,
    TL_DST_CANONICAL_REVISION,
    TL_DST_NAMESPACE,
    TL_DST_PRINCIPAL,
    TL_DST_APP,
    TL_DST_VERSION,
    TL_DST_CLUSTER,
    TL_PROTOCOL,
    TL_FLAGS,
    TL_SECURITY,
    TL_N_TCP, /* the TCP metrics' labels end here */
    TL_RESPONSE_CODE = TL_N_TCP,
    TL_GRPC_STATUS,
    TL_N_HTTP
};

/* The label names, TL_N_HTTP of them in enum order. */
extern const char *const tl_names[TL_N_HTTP];

/* |s|, or "unknown" when NULL or empty (Istio's rendering of a missing value). */
const char *tl_or_unknown(const char *s);

/*
 * Fills one side's workload labels (workload, canonical service and revision, namespace,
 * app, version, cluster) of |v| from |w| (NULL: all "unknown", the namespace |ns_fallback|
 * if given). app and version are the canonical name and revision, as ztunnel reports them;
 * the cluster is the workload's, else |default_cluster|. The principal is left alone: it
 * comes from the mTLS identity actually seen, never from the model.
 */
void tl_workload(const char **v, bool src, const struct workload *w, const char *ns_fallback,
                 const char *default_cluster);

/* destination_service, _namespace and _name from |svc|; |hostname| when |svc| is NULL. */
void tl_service(const char **v, const struct service *svc, const char *hostname);

#endif
