/*
 * xds.h - delta xDS (incremental ADS) protocol state, sans-I/O: what both
 * sides share. Resource snapshots (the control plane's view of the config),
 * the list of packed messages a call produces, type URLs and default caps.
 *
 * The server side (meshd, one state per client stream) is xds_server.h, the
 * client side (ztunnel) xds_client.h. Neither does I/O: the gRPC transport
 * hands in whole messages and sends the messages produced, in order.
 */
#ifndef MESH_LIB_XDS_H
#define MESH_LIB_XDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The two types amesh serves and ztunnel watches (reference 3.2). */
#define XDS_TYPE_ADDRESS       "type.googleapis.com/istio.workload.Address"
#define XDS_TYPE_AUTHORIZATION "type.googleapis.com/istio.security.Authorization"

/*
 * What a waypoint proxy says on its delta ADS stream so that meshd serves it
 * its Routes and Policies (amesh.waypoint.v1, proto/waypoint.proto). The
 * amesh waypoint binary sends exactly this:
 *
 *   node.id   "waypoint~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local"
 *             (Istio's waypoint node id)
 *   metadata  string fields, as Istio's proxies send the first two:
 *             NAMESPACE        the waypoint's namespace
 *             SERVICE_ACCOUNT  its service account
 *             WAYPOINT         its Gateway's name (Istio has it only inside
 *                              the LABELS map, which meshd does not read)
 *             NODE_NAME        the Kubernetes node, as ztunnel sends it
 *
 * meshd serves the two types only when the node of the stream's credential
 * runs a pod of that Gateway (label gateway.networking.k8s.io/gateway-name)
 * in that namespace as that service account; otherwise the stream gets an
 * empty set of them. Streams without WAYPOINT (ztunnel) never get them.
 */
#define XDS_TYPE_WAYPOINT_ROUTE  "type.googleapis.com/amesh.waypoint.v1.Route"
#define XDS_TYPE_WAYPOINT_POLICY "type.googleapis.com/amesh.waypoint.v1.Policy"
#define XDS_META_NAMESPACE       "NAMESPACE"
#define XDS_META_SERVICE_ACCOUNT "SERVICE_ACCOUNT"
#define XDS_META_WAYPOINT        "WAYPOINT"

/* gRPC method of the stream (reference A.2). */
#define XDS_DELTA_ADS_PATH                                                                         \
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

#define XDS_VERSION_LEN 16 /* hex digits of xds_version_of() */

/* Default caps on what a peer sends us; each can be set per stream or client. */
#define XDS_MAX_TYPES_DEFAULT     8                 /* type URLs tracked per stream */
#define XDS_MAX_NAMES_DEFAULT     ((size_t)1 << 20) /* names in one list, and per type */
#define XDS_MAX_NAME_LEN_DEFAULT  1024              /* bytes in a resource name */
#define XDS_MAX_RESPONSE_DEFAULT  ((size_t)4 << 20) /* bytes in one response we build */
#define XDS_MAX_RESOURCES_DEFAULT ((size_t)1 << 20) /* resources + removals in one response */
/* Fixed caps. */
#define XDS_MAX_TYPE_URL_LEN 256
#define XDS_MAX_VERSION_LEN  256
#define XDS_MAX_NODE_ID_LEN  1024
#define XDS_MAX_NONCE_LEN    64
/* Whole messages a peer sends (checked again before protobuf-c sees them, lib/pbcheck). */
#define XDS_MAX_REQUEST_BYTES  ((size_t)4 << 20) /* a request; the largest is a reconnect's list */
#define XDS_MAX_RESPONSE_BYTES ((size_t)200 << 20) /* a response: Istio ztunnel's own limit */

/* ---- Resources and snapshots ---- */

/*
 * One resource as the control plane produced it. In a snapshot all fields are
 * heap-allocated and owned by the snapshot.
 */
struct xds_resource {
    char *type_url;
    char *name;
    uint8_t *bytes; /* packed resource value, e.g. an istio.workload.Address */
    size_t len;
    char *version; /* e.g. XDS_VERSION_LEN hex digits; NULL: xds_version_of(bytes) */
};

/*
 * Writes the version of |len| bytes: XDS_VERSION_LEN lower-case hex digits of
 * a 64-bit FNV-1a hash, NUL-terminated. Stable across processes and restarts,
 * so a reconnecting client's initial_resource_versions still match. Not
 * collision-resistant: a control plane whose resource contents an adversary
 * shapes should pass versions from a cryptographic hash instead.
 */
void xds_version_of(const void *bytes, size_t len, char out[XDS_VERSION_LEN + 1]);

/* Frees the fields of |r| (not |r| itself) and clears them. */
void xds_resource_cleanup(struct xds_resource *r);

/*
 * An immutable, refcounted set of resources, sorted by (type_url, name), so it
 * can be shared between streams and threads.
 */
struct xds_snapshot;

/*
 * Takes ownership of the array |v| (from malloc) of |n| resources and of every
 * field in it, sorts it and computes missing versions. Returns a snapshot with
 * one reference, or NULL (everything freed) if a type_url or name is NULL or
 * too long, or two resources share a type_url and name.
 */
struct xds_snapshot *xds_snapshot_new(struct xds_resource *v, size_t n);
struct xds_snapshot *xds_snapshot_ref(struct xds_snapshot *s);
/* Drops a reference; the last one frees. Accepts NULL. Thread-safe. */
void xds_snapshot_unref(struct xds_snapshot *s);

size_t xds_snapshot_len(const struct xds_snapshot *s);
/* The |i|th resource in (type_url, name) order; |i| < xds_snapshot_len(). */
const struct xds_resource *xds_snapshot_at(const struct xds_snapshot *s, size_t i);
/* Binary search; NULL if absent. */
const struct xds_resource *xds_snapshot_find(const struct xds_snapshot *s, const char *type_url,
                                             const char *name);
/* The resources of |type_url| are indices [*first, *first + *n). */
void xds_snapshot_type_range(const struct xds_snapshot *s, const char *type_url, size_t *first,
                             size_t *n);
/*
 * XDS_VERSION_LEN hex digits summarizing every (type_url, name, version): the
 * system_version_info of responses built from this snapshot.
 */
const char *xds_snapshot_version(const struct xds_snapshot *s);

/* ---- Output ---- */

/* A packed protobuf message to send (no gRPC prefix). */
struct xds_msg {
    uint8_t *data; /* heap, owned by the xds_out */
    size_t len;
    size_t n_resources; /* responses: resources carried */
    size_t n_removed;   /* responses: removed_resources carried */
    bool nack;          /* requests: error_detail set */
};

/* Messages produced by one call, to send in order. Embed and xds_out_init(). */
struct xds_out {
    struct xds_msg *v;
    size_t n;
    size_t cap;
};

void xds_out_init(struct xds_out *o);
/* Frees every message; |o| is empty and reusable afterwards. */
void xds_out_cleanup(struct xds_out *o);

#endif
