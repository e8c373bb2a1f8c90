/*
 * l7.h - the waypoint's L7 engines and what the binary gives them.
 *
 * The binary (main.c, inbound.c, ...) terminates HBONE, decides that a CONNECT carries HTTP
 * for a bound service port or workload, and hands the CONNECT stream to an engine:
 * wp_http1_serve() for HTTP/1.1 (http1_*.c), wp_http2_serve() for h2c/gRPC (http2_*.c); what
 * both decide per request is one code (l7_decide.c). An engine
 * owns the downstream stream from then on: it parses requests, normalises the path, checks
 * L7 policy, routes, picks an endpoint per request, talks to it over a stream the binary's
 * upstream ops open (HBONE to the endpoint, pooled), and reports every request to on_done.
 * Engines know nothing of TLS, HBONE, metrics or the access log.
 */
#ifndef MESH_WAYPOINT_L7_H
#define MESH_WAYPOINT_L7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn/stream.h"
#include "l7policy/l7path.h"
#include "l7policy/l7policy.h"
#include "loop/loop.h"
#include "model/model.h"
#include "net/addr.h"
#include "route/route.h"

struct wp_l7_conn;

/* An upstream connection the binary opened: a stream to |ep| on |port|, or an error. */
typedef void wp_upstream_fn(void *arg, struct stream *s, int err);

struct wp_upstream_ops {
    /*
     * Opens a stream to endpoint |ep| (a workload of the backend service) on target port
     * |port|; |cb| runs exactly once, later (never inside this call), with the stream or a
     * negative error (-ECONNREFUSED: refused, -ETIMEDOUT, -EHOSTUNREACH, ...). Returns a
     * handle for cancel(), or NULL when |cb| will not run (error at once, returned in *err).
     */
    void *(*connect)(void *ctx, const struct workload *ep, uint16_t port, wp_upstream_fn *cb,
                     void *arg, int *err);
    /* Cancels a connect() whose callback has not run; the callback then never runs. */
    void (*cancel)(void *ctx, void *handle);
    void *ctx;
};

/* Envoy's response flags, as the engines set them (several may be set at once). */
enum {
    WP_FLAG_NR = 1 << 0,   /* no route configured */
    WP_FLAG_UH = 1 << 1,   /* no healthy upstream */
    WP_FLAG_UF = 1 << 2,   /* upstream connection failure */
    WP_FLAG_URX = 1 << 3,  /* upstream retry limit exceeded */
    WP_FLAG_UT = 1 << 4,   /* upstream request timeout */
    WP_FLAG_UPE = 1 << 5,  /* upstream protocol error */
    WP_FLAG_UC = 1 << 6,   /* upstream connection termination */
    WP_FLAG_DC = 1 << 7,   /* downstream connection termination */
    WP_FLAG_RBAC = 1 << 8, /* denied by L7 policy (Envoy's "RBAC" in %RESPONSE_CODE_DETAILS%) */
};

/* One finished request, for metrics and the access log. Borrowed during the callback only. */
struct wp_request_info {
    const char *method;
    const char *path;       /* as received (X-ENVOY-ORIGINAL-PATH) */
    const char *protocol;   /* "HTTP/1.1", "HTTP/2" */
    const char *authority;  /* Host / :authority as received */
    const char *request_id; /* x-request-id (received or generated) */
    const char *user_agent;
    int status;             /* sent downstream; 0 when none was sent (a gRPC local answer: 200,
                             * what the wire carries, as Envoy's %RESPONSE_CODE%) */
    bool grpc;              /* content-type application/grpc*: Istio's request_protocol "grpc" */
    const char *grpc_status; /* gRPC: the grpc-status the client got ("0".."16"), or NULL */
    unsigned flags;         /* WP_FLAG_* */
    const char *details;    /* Envoy's RESPONSE_CODE_DETAILS-like word, e.g. "via_upstream" */
    const char *route;      /* the rule's name, or NULL */
    const struct workload *upstream; /* the endpoint of the last try, or NULL */
    uint16_t upstream_port;
    const struct service *backend;   /* the route's backend service, or NULL (none chosen) */
    uint16_t backend_port;
    const char *policy;     /* "<ns>/<name>" that decided L7 policy, or "" */
    uint64_t bytes_in, bytes_out; /* request and response bodies */
    uint64_t start_ms, duration_ms;
    unsigned attempts;
};

struct wp_l7_conn {
    struct loop *loop;
    /* Who is asking: the HBONE peer (its certificate's identity) and its address. */
    const struct policy_peer *client;
    struct ipaddr client_ip;
    uint16_t client_port;
    /* What it asked for: the original destination (CONNECT :authority). */
    struct ipaddr dst_ip;
    uint16_t dst_port;
    const struct service *service;   /* bound service, or NULL for a bound workload */
    const struct workload *workload; /* bound workload (pod-addressed), or NULL */
    /* This waypoint (the Gateway), for policy targets. */
    const char *waypoint_ns, *waypoint_name;
    /* The config in force, asked for at each request's head (a policy or route change applies
     * to the next request): stores a new reference to each of the model, route set and policy
     * set (each may be NULL: no routes / no policies), which the engine releases when the
     * request ends (model_unref, route_set_unref, l7pol_set_unref). NULL get_config: no model,
     * so only a bound workload (|workload|) can be served. */
    void (*get_config)(void *arg, struct model **m, struct route_set **r, struct l7pol_set **p);
    void *config_arg;
    enum l7path_mode path_mode;
    struct wp_upstream_ops up;
    void (*on_done)(void *arg, const struct wp_request_info *ri);
    /* The connection ended (downstream closed or failed); no callback follows. */
    void (*on_closed)(void *arg);
    void *arg;
};

/*
 * Serves HTTP/1.1 on |down| until either side ends it. |c| must stay valid until
 * c->on_closed runs. The engine takes ownership of |down|.
 *
 * Memory per connection (allocated only while bytes are in flight): 80 KiB read buffer and
 * 160 KiB write buffer on each side, and up to 160 KiB kept for a retry (the request head and
 * the first 64 KiB of its body; a longer body streams through and is not retried). Endpoint
 * streams (up.connect) are kept alive and reused by later requests of the same connection
 * (at most 4 idle).
 */
void wp_http1_serve(const struct wp_l7_conn *c, struct stream *down);

/*
 * Serves HTTP/2 (prior-knowledge h2c, gRPC) on |down| until either side ends it: an HTTP/2
 * server session (lib/h2) whose request streams go upstream on HTTP/2 client sessions to the
 * endpoints (one per endpoint, shared by the connection's requests, at most 16). Same
 * ownership as wp_http1_serve(); every request is reported with protocol "HTTP/2".
 *
 * Memory, bounded by lib/h2's flow control (h2.h): per stream, up to its 4 MiB receive window
 * of request body not yet taken upstream, 256 KiB not yet framed each way, and up to 64 KiB
 * of request body kept for a retry (longer bodies stream through and are not retried); per
 * connection, at most 200 concurrent streams (h2 SETTINGS), a 16 MiB receive window shared by
 * them, 64 KiB of request headers per stream; the same caps per endpoint session for the
 * responses. Idle connections and streams hold no buffers: measured (test_wp_http2, release
 * build) ~31 KB per connection with its HTTP/2 session, ~26 KB per endpoint session, ~4.6 KB
 * per request stream waiting on its endpoint.
 */
void wp_http2_serve(const struct wp_l7_conn *c, struct stream *down);

/*
 * HTTP/1.1 drain (SIGTERM): idle connections of this thread close now (half-closed: the client ends
 * its side), busy ones after their current response (Connection: close); connections
 * served later close at once.
 */
void wp_http1_drain(void);
/*
 * HTTP/2 drain (SIGTERM): every connection of this thread gets GOAWAY, so its client opens no
 * more streams; streams in flight finish, then the connection ends. Connections served
 * later get GOAWAY at once and end.
 */
void wp_http2_drain(void);
/* Upstream streams closed by the engine and waiting for the endpoint's end (bounded). */
size_t wp_http1_lingering(void);
/* At exit: resets what still lingers. */
void wp_http1_shutdown(void);

#endif
