/*
 * xds_client.h - ztunnel's side of the delta ADS stream, sans-I/O.
 *
 * At each (re)connect the caller sends xds_client_start()'s requests: one per
 * type, with node, a wildcard subscription and initial_resource_versions =
 * every resource retained from earlier streams. Each DeltaDiscoveryResponse
 * goes to xds_client_on_response(), which hands resources and removals to the
 * caller's callbacks, retains the versions accepted, and produces the ACK or
 * NACK to send back (reference 3.1).
 */
#ifndef MESH_LIB_XDS_CLIENT_H
#define MESH_LIB_XDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/xds.h"

struct xds_client;

/*
 * Applies one resource of a response. |bytes| is the packed resource value
 * (google.protobuf.Any value), borrowed for the call. Returns NULL to accept,
 * or a message saying why it was rejected (copied before the next callback):
 * the client then keeps the previous version and NACKs the response.
 */
typedef const char *(*xds_apply_fn)(void *arg, const char *type_url, const char *name,
                                    const char *version, const uint8_t *bytes, size_t len);
/* Removes one name; NULL or a rejection message, as xds_apply_fn. */
typedef const char *(*xds_remove_fn)(void *arg, const char *type_url, const char *name);
/*
 * Brackets the callbacks of one response, so the caller rebuilds its model
 * once per response (on_batch_end), before the ACK or NACK is produced.
 */
typedef void (*xds_batch_fn)(void *arg, const char *type_url);

/* One node.metadata entry, sent as a string Value. */
struct xds_kv {
    const char *key;
    const char *value;
};

struct xds_client_config {
    /* "ztunnel~<ip>~<pod>.<ns>~<ns>.svc.cluster.local"; see xds_node_id_ztunnel(). */
    const char *node_id;
    /* NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, then ISTIO_META_* (reference 3.1). */
    const struct xds_kv *meta;
    size_t n_meta;
    const char *const *type_urls; /* watched; NULL: Address and Authorization */
    size_t n_type_urls;
    size_t max_resources; /* resources + removals in one response; 0: default */
    size_t max_name_len;  /* 0: XDS_MAX_NAME_LEN_DEFAULT */
    xds_apply_fn on_apply;
    xds_remove_fn on_remove;     /* NULL: accept every removal */
    xds_batch_fn on_batch_begin; /* optional */
    xds_batch_fn on_batch_end;   /* optional */
    void *arg;
};

struct xds_client_stats {
    uint64_t connects; /* xds_client_start() calls */
    uint64_t responses;
    uint64_t applied;  /* resources accepted */
    uint64_t rejected; /* resources and removals rejected */
    uint64_t removed;  /* removals accepted */
    uint64_t acks;
    uint64_t nacks;
    uint64_t unknown_types; /* responses for a type we do not watch (ACKed, ignored) */
};

/*
 * Creates a client; |cfg| and every string in it are copied. Returns NULL if
 * node_id or on_apply is missing.
 */
struct xds_client *xds_client_new(const struct xds_client_config *cfg);
/* Accepts NULL. */
void xds_client_free(struct xds_client *c);

/*
 * Starts a stream: appends one initial DeltaDiscoveryRequest per watched type
 * to |out| and forgets which types were ACKed on the previous stream
 * (xds_client_ready()). Retained versions are kept: that is the point.
 */
void xds_client_start(struct xds_client *c, struct xds_out *out);

/*
 * Handles one DeltaDiscoveryResponse of |len| packed bytes: calls
 * on_batch_begin, on_apply per resource, on_remove per removed name,
 * on_batch_end, then appends the ACK or NACK to |out|. Within a response,
 * resources are applied in order, then removals; a rejected one keeps its
 * previous version (or absence). A response with more than max_resources
 * entries is NACKed whole, without callbacks. Returns 0 (ACK), 1 (NACK; see
 * xds_client_last_error()), or -MESH_EPROTO if the bytes do not decode (or
 * are refused before decoding: too deep, too large, malformed; the reason in
 * xds_client_last_error()), after which the caller should end the stream and
 * reconnect. Callbacks must not
 * call back into the client.
 */
int xds_client_on_response(struct xds_client *c, const uint8_t *msg, size_t len,
                           struct xds_out *out);

/* The error_detail message of the last NACK sent (or why a response was refused), or NULL. */
const char *xds_client_last_error(const struct xds_client *c);

/* True once every watched type got a response we ACKed on the current stream. */
bool xds_client_ready(const struct xds_client *c);

/* Retained version of |name|, or NULL. */
const char *xds_client_version(const struct xds_client *c, const char *type_url, const char *name);
/* Number of names retained for |type_url|. */
size_t xds_client_count(const struct xds_client *c, const char *type_url);

const struct xds_client_stats *xds_client_stats(const struct xds_client *c);

/*
 * Formats a proxy's node id (reference 3.1) into a heap string:
 * "<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local"; ztunnel's type is
 * "ztunnel", a waypoint's "router" (as Istio's).
 */
char *xds_node_id(const char *type, const char *ip, const char *pod, const char *ns);
/* xds_node_id("ztunnel", ...). */
char *xds_node_id_ztunnel(const char *ip, const char *pod, const char *ns);

#endif
