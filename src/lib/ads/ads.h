/*
 * ads.h - a proxy's delta ADS client: one DeltaAggregatedResources stream to
 * meshd over a control-plane channel, its resources handed to one handler per
 * registered type URL.
 *
 * Two layers. struct ads_mux is sans-I/O: lib/xds's client with per-type
 * handlers (what ztunnel and the waypoint differ in). struct ads runs it over
 * lib/channel and lib/rpc: connects, subscribes, reconnects with backoff
 * (10 ms doubling to 15 s; a clean end retries at once), and on every new
 * stream sends initial_resource_versions so meshd skips what did not change.
 * While meshd is away the handlers' last state keeps serving.
 *
 * A handler refusing a resource NACKs the response with its message (the
 * error_detail meshd logs); that resource keeps its previous version, so the
 * last good state stays, and the others in the response apply.
 */
#ifndef MESH_LIB_ADS_H
#define MESH_LIB_ADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel/channel.h"
#include "cpcall/cpcall.h"
#include "loop/loop.h"
#include "xds/xds.h"
#include "xds/xds_client.h"

#define ADS_BACKOFF_START_MS 10
#define ADS_BACKOFF_MAX_MS 15000

/* One watched type and its handler. */
struct ads_type {
    const char *type_url;
    /*
     * One resource (|bytes|: the packed value, borrowed for the call): NULL
     * to accept, or why it is refused (a message that stays valid until the
     * next callback; the response is NACKed with it).
     */
    const char *(*apply)(void *arg, const char *name, const uint8_t *bytes, size_t len);
    /* One removal: NULL or why not, as apply. NULL: removals are accepted as they come. */
    const char *(*remove)(void *arg, const char *name);
    /* Optional: the resources of one response were handed over (rebuild once per response). */
    void (*commit)(void *arg);
    void *arg;
};

struct ads_mux_config {
    /* Node.id, e.g. xds_node_id("ztunnel", ...) or xds_node_id("router", ...) for a waypoint. */
    const char *node_id;
    /* Node.metadata: ztunnel NAME, NAMESPACE, INSTANCE_IPS, NODE_NAME, CLUSTER_ID; a waypoint
     * adds SERVICE_ACCOUNT (reference 3.1). */
    const struct xds_kv *meta;
    size_t n_meta;
    const struct ads_type *types; /* 1 to XDS_MAX_TYPES_DEFAULT, distinct; copied */
    size_t n_types;
    /* Optional: a response of |len| bytes for the registered |type_url| was handled. */
    void (*on_response)(void *arg, const char *type_url, size_t len);
    void *arg;
};

struct ads_mux;

/* NULL if the config is unusable (no node id, no types, a type without apply, duplicates). */
struct ads_mux *ads_mux_new(const struct ads_mux_config *cfg);
void ads_mux_free(struct ads_mux *m);
/* A stream starts: one initial request per type into |out| (xds_client_start()). */
void ads_mux_start(struct ads_mux *m, struct xds_out *out);
/*
 * One DeltaDiscoveryResponse: handlers called, the ACK or NACK appended to
 * |out|. Returns 0 (ACK), 1 (NACK), or -MESH_EPROTO (undecodable: end the
 * stream), as xds_client_on_response().
 */
int ads_mux_on_response(struct ads_mux *m, const uint8_t *msg, size_t len, struct xds_out *out);
/* The client underneath: stats, last error, retained versions. */
const struct xds_client *ads_mux_client(const struct ads_mux *m);
/* Resources retained, all types (what initial_resource_versions will list). */
size_t ads_mux_retained(const struct ads_mux *m);

struct ads_config {
    struct ads_mux_config mux;
    struct loop *loop;
    struct channel *chan;   /* borrowed; outlives the client */
    struct cpcall_auth auth; /* a bearer failure: the stream waits and retries */
    size_t max_message;     /* 0: XDS_MAX_RESPONSE_BYTES */
    /* Optional: every type was ACKed on the current stream (once per stream). */
    void (*on_synced)(void *arg);
    /* Optional: a stream ended ("Complete", "Error") or could not start ("ConnectionError"). */
    void (*on_stream_end)(void *arg, const char *reason);
    void *arg;
};

struct ads;

/* Starts connecting at once. NULL if the mux config is unusable. Strings are copied. */
struct ads *ads_start(const struct ads_config *cfg);
/* Ends the stream (cancelled) and frees. Accepts NULL. */
void ads_stop(struct ads *a);
/* True while a stream is open. */
bool ads_connected(const struct ads *a);
const struct xds_client *ads_client(const struct ads *a);

#endif
