/*
 * xds_server.h - the control plane's side of one delta ADS stream, sans-I/O.
 *
 * meshd creates one xds_server_stream per DeltaAggregatedResources call,
 * feeds it every DeltaDiscoveryRequest and every new snapshot, and sends the
 * DeltaDiscoveryResponses it produces. The stream remembers, per type and
 * name, which version the client holds, so it sends only what changed.
 *
 * Cost: a wildcard type remembers "holds snapshot S" plus the names where the
 * client differs from S (rejected or other versions, explicit subscriptions),
 * so a client that took every push keeps no per-name state, and its next push
 * is the diff from S to the new snapshot, computed once and shared by every
 * stream (O(changed resources) per stream). Names subscribed explicitly cost
 * a lookup each per push.
 *
 * Rules (Envoy's delta protocol, as istiod applies it to ztunnel):
 * - The first request of the stream must carry node.id.
 * - Per type, the first request with an empty subscribe list is a wildcard
 *   subscription (legacy wildcard); "*" subscribes to everything explicitly
 *   and unsubscribing "*" ends it. Wildcard ends only that way. Names that
 *   are neither covered by wildcard nor subscribed are forgotten, without a
 *   removal: the client drops them itself.
 * - initial_resource_versions (first request of a type only) says what the
 *   client kept from an earlier stream: equal versions are not resent, names
 *   that no longer exist are sent in removed_resources. A version we never
 *   produce (ztunnel sends "") just means "resend it".
 * - An explicitly subscribed name that does not exist is reported once in
 *   removed_resources, so on-demand clients learn it is absent.
 * - The first request of a served type is always answered, even with an
 *   empty response: ztunnel is not ready until each type got one.
 * - Flow control: one push per type in flight. A push (possibly split into
 *   several responses of at most max_response_bytes) waits for an answer to
 *   each of its nonces before the next push of that type is built; snapshots
 *   arriving meanwhile are coalesced into that next push. An answer to a
 *   nonce also settles older unanswered nonces of the type as ACKed (clients
 *   handle responses in order). Nonces of other streams or already answered
 *   are stale and only counted.
 * - NACK (error_detail set): the rejected resources are those the message
 *   names ("<name>: <reason>" pieces joined by "; ", as ztunnel sends); the
 *   others of that response count as ACKed. If it names none of them, all
 *   are rejected. The client keeps its previous version of a rejected
 *   resource; the rejected version is reported through the event callback
 *   and never sent again on this stream, only another version is. When the
 *   message named nothing we cannot tell whether the client applied it
 *   (ztunnel applies resources one by one), so going back to the previous
 *   version resends it. Removals in a NACKed response count as done.
 * - Types we do not serve are tracked (up to max_types) but never answered.
 */
#ifndef MESH_LIB_XDS_SERVER_H
#define MESH_LIB_XDS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xds/xds.h"

struct xds_server_stream;

enum xds_server_event_kind {
    XDS_SERVER_EV_NODE = 0,     /* first request: node id and metadata are readable */
    XDS_SERVER_EV_ACK,          /* a response was ACKed: type_url, nonce, latency_ms */
    XDS_SERVER_EV_NACK,         /* type_url, nonce, code, message, rejected[] */
    XDS_SERVER_EV_STALE_NONCE,  /* answer to a nonce not in flight: type_url, nonce */
    XDS_SERVER_EV_UNKNOWN_TYPE, /* first request for a type we do not serve: type_url */
    XDS_SERVER_EV_OVERSIZED,    /* a resource over max_response_bytes, sent alone: name */
};

/* A resource version a client rejected. */
struct xds_rejected {
    const char *name;
    const char *version;
};

/* Borrowed, valid during the callback only. */
struct xds_server_event {
    enum xds_server_event_kind kind;
    const char *type_url;
    const char *nonce;
    const char *name;
    const char *message; /* NACK: error_detail.message */
    int code;            /* NACK: error_detail.code */
    const struct xds_rejected *rejected;
    size_t n_rejected;
    uint64_t latency_ms; /* ACK: send to answer */
};

/*
 * Called for things the caller logs or counts. Must not call back into the
 * stream.
 */
typedef void (*xds_server_event_fn)(void *arg, const struct xds_server_event *ev);

struct xds_server_config {
    const char *const *type_urls; /* served types; NULL: Address and Authorization */
    size_t n_type_urls;
    /*
     * Served types whose resources come from the stream's own snapshot
     * (xds_server_stream_push_own), not the shared one: what differs per
     * client, such as a waypoint's routes. Until the stream has one, these
     * types are tracked but never answered.
     */
    const char *const *own_type_urls;
    size_t n_own_type_urls;
    size_t max_types;          /* 0: XDS_MAX_TYPES_DEFAULT */
    size_t max_names;          /* per list in a request and per type; 0: default */
    size_t max_name_len;       /* 0: XDS_MAX_NAME_LEN_DEFAULT */
    size_t max_response_bytes; /* 0: XDS_MAX_RESPONSE_DEFAULT */
    xds_server_event_fn on_event;
    void *arg;
    uint64_t (*now_ms)(void *arg); /* monotonic ms; NULL: clock_mono_ms() */
};

/* Counters since the stream was created. */
struct xds_server_stats {
    uint64_t requests;
    uint64_t pushes;    /* pushes that sent at least one response */
    uint64_t responses; /* responses (one push may be split in several) */
    uint64_t resources_sent;
    uint64_t removals_sent;
    uint64_t bytes_sent; /* packed response bytes */
    uint64_t acks;
    uint64_t nacks;
    uint64_t stale_nonces;
};

/* Per-type view for "connected proxies" reports; strings borrowed from the stream. */
struct xds_server_type_status {
    const char *type_url;
    bool served;
    bool wildcard;
    size_t n_held;             /* names the client holds, as far as we know */
    size_t n_in_flight;        /* responses of the current push not answered yet */
    uint64_t in_flight_ms;     /* when the current push was sent; 0 when none */
    const char *acked_version; /* system_version_info of the last push fully ACKed, or NULL */
    uint64_t last_ack_ms;      /* when the last push was settled; 0 before */
    uint64_t push_latency_ms;  /* last settled push: first send to last answer */
    const char *last_nack;     /* message of the last NACK, or NULL */
};

/*
 * Creates the state of one stream. |cfg| is copied (type URL strings too);
 * NULL means all defaults.
 */
struct xds_server_stream *xds_server_stream_new(const struct xds_server_config *cfg);
/* Accepts NULL. Drops the stream's snapshot reference. */
void xds_server_stream_free(struct xds_server_stream *s);

/*
 * Handles one DeltaDiscoveryRequest of |len| packed bytes and appends the
 * responses it calls for to |out| (possibly none). Returns 0, or a negative
 * code after which the caller should end the stream with grpc-status 3
 * (INVALID_ARGUMENT): -MESH_EPROTO (undecodable, no node.id on the first
 * request, empty or oversized type_url) or -MESH_ELIMIT (a cap exceeded).
 * On error the stream's state is unchanged except for counters.
 */
int xds_server_stream_on_request(struct xds_server_stream *s, const uint8_t *msg, size_t len,
                                 struct xds_out *out);

/*
 * Makes |snap| the stream's current snapshot (takes a reference; the caller
 * keeps its own) and appends, per subscribed type with no push in flight, the
 * responses bringing the client from what it holds to |snap|: changed and new
 * resources, and removed names. Appends nothing when nothing changed. A type
 * with a push in flight gets its push when the answer arrives, from
 * xds_server_stream_on_request(). Returns the number of responses appended.
 */
size_t xds_server_stream_push(struct xds_server_stream *s, struct xds_snapshot *snap,
                              struct xds_out *out);

/*
 * The same for the types of own_type_urls: makes |own| (a reference is
 * taken) their snapshot and appends what brings the client to it. Returns
 * the number of responses appended.
 */
size_t xds_server_stream_push_own(struct xds_server_stream *s, struct xds_snapshot *own,
                                  struct xds_out *out);

/* ---- Reporting ---- */

const struct xds_server_stats *xds_server_stream_stats(const struct xds_server_stream *s);

/*
 * Why the last request did not decode ("nested deeper than 32 messages ..."),
 * fit for the peer's grpc-message; "" when it decoded.
 */
const char *xds_server_stream_error(const struct xds_server_stream *s);

/* node.id of the first request, or NULL before it. */
const char *xds_server_stream_node_id(const struct xds_server_stream *s);

/*
 * A string field of node.metadata (e.g. "NAME", "NAMESPACE", "NODE_NAME",
 * "INSTANCE_IPS"), or NULL if absent or not a string.
 */
const char *xds_server_stream_node_meta(const struct xds_server_stream *s, const char *key);

/* Types seen on this stream, in order of their first request. */
size_t xds_server_stream_n_types(const struct xds_server_stream *s);
/* Fills |st| for type |i| < xds_server_stream_n_types(). */
void xds_server_stream_type_status(const struct xds_server_stream *s, size_t i,
                                   struct xds_server_type_status *st);
/* Fills |st| for |type_url|; returns 0, or -ENOENT if the client never asked for it. */
int xds_server_stream_type_status_by_url(const struct xds_server_stream *s, const char *type_url,
                                         struct xds_server_type_status *st);

#endif
