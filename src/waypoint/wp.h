/*
 * wp.h - the waypoint's shared state and the seams between its files.
 *
 *   main.c     flags, start-up, its one certificate (lib/identity), signals, drain
 *   config.c   Address, Route and Policy from meshd (lib/ads) or a local file
 *   bound.c    what a CONNECT's :authority selects: a bound service port or workload
 *   hbone_in.c 15008: HBONE termination (lib/hbone), CONNECT checks, TCP passthrough
 *              upstream over HBONE from the waypoint's identity (pooled), access log
 *   l7_in.c    HTTP1, HTTP2, GRPC ports: the CONNECT stream to an L7 engine (l7.h), upstream
 *              streams, config references and an access line per request
 *   admin.c    127.0.0.1:15000 /config_dump /logging, :15021 /healthz/ready, :15020 metrics
 *   telemetry.c, wp_labels.c, access_log.c  Istio's metrics and the access log (telemetry.h)
 *
 * One event loop, as ztunnel (ARCHITECTURE.md).
 */
#ifndef MESH_WAYPOINT_WP_H
#define MESH_WAYPOINT_WP_H

#include <stdbool.h>
#include <stdint.h>

#include "identity/certmgr.h"
#include "l7policy/l7policy.h"
#include "loop/loop.h"
#include "model/model.h"
#include "net/addr.h"
#include "route/route.h"

#define WP_PORT_HBONE 15008
#define WP_PORT_ADMIN 15000
#define WP_PORT_METRICS 15020
#define WP_PORT_READY 15021

struct wp_opts {
    /* Local mode: config file and a CA directory to mint the certificate from. */
    const char *local_config;
    const char *ca_dir;
    /* Control-plane mode: meshd's xDS and CA (TLS, node token). */
    bool xds;
    struct ipaddr xds_ip;
    uint16_t xds_port;
    const char *root_cert;
    const char *token_file;
    const char *cp_name;
    const char *node;
    /* Who this waypoint is: its Gateway and service account. */
    const char *ns, *name, *sa;
    const char *cluster;
    const char *trust_domain;
    bool allow_x25519;
    bool json_log;
    uint64_t drain_ms;
    uint64_t pool_idle_ms;
    long cert_ttl_s;
    unsigned hs_max_pending, hs_max_per_source, hs_timeout_ms;
};

struct wp_config;
struct wp_in;
struct node_tokens;
struct channel;
struct hbone_pool;

struct wp {
    struct loop *loop;
    struct wp_opts opts;
    char identity[512];           /* spiffe://<td>/ns/<ns>/sa/<sa> */
    char host_prefix[600];        /* "<name>.<ns>.svc.": this waypoint's service hostname */
    struct certmgr *certs;
    struct certmgr_waiter cert_wait;
    bool have_cert;
    struct model *model;          /* current Address state (a reference) */
    struct route_set *routes;     /* current Route tables (a reference) */
    struct l7pol_set *policies;   /* current Policy set (a reference; NULL: none) */
    struct wp_config *config;     /* xDS or local file */
    bool config_synced;           /* every watched type arrived (or local mode) */
    bool ready, draining;
    struct hbone_pool *pool;      /* upstream HBONE connections */
    struct wp_in *in;             /* 15008 */
    struct node_tokens *tokens;
    struct channel *xds_chan, *ca_chan;
    SSL_CTX *cp_ctx;
    uint64_t n_conns, total_conns;
};

void wp_update_ready(struct wp *wp);

/* config.c */
struct wp_config *wp_config_start(struct wp *wp, char *err, size_t errlen);
void wp_config_stop(struct wp_config *c);
struct json_t;
void wp_config_dump(const struct wp_config *c, struct json_t *obj);

/* bound.c */
/* True if |g| (a service's or workload's waypoint) names this waypoint. */
bool wp_is_mine(const struct wp *wp, const struct gateway_addr *g);
struct wp_target {
    const struct service *service;   /* service-addressed: the bound service */
    const struct workload *workload; /* pod-addressed: the bound workload */
    const struct workload *endpoint; /* the upstream picked */
    const struct ipaddr *ep_ip;
    uint16_t ep_port;                /* target port on the endpoint */
    enum route_protocol protocol;
    int status;                      /* when no endpoint: 503 */
    const char *why;
};
/* What |ip|:|port| selects. Returns 0 (endpoint set) or -1 (|status| and |why| set). */
int wp_select(struct wp *wp, const struct ipaddr *ip, uint16_t port, struct wp_target *t);

/* hbone_in.c */
struct wp_in *wp_in_start(struct wp *wp, char *err, size_t errlen);
void wp_in_drain(struct wp_in *in);
void wp_in_abort(struct wp_in *in);
size_t wp_in_sessions(const struct wp_in *in);
void wp_in_free(struct wp_in *in);
struct hs_guard_stats;
const struct hs_guard_stats *wp_in_handshake_stats(const struct wp_in *in);
/* CONNECTs whose sniffed protocol (detect.h enum wp_proto) was |p|. */
uint64_t wp_in_detected(const struct wp_in *in, int p);
/* Counts the bytes open passthrough tunnels moved since the last call (a scrape). */
void wp_in_collect(struct wp_in *in);

/* l7_in.c: answers |down| 200 and serves it with the engine the port of |t| declares. */
struct h2_stream;
struct spiffe_id;
void wp_l7_serve(struct wp *wp, struct h2_stream *down, const struct wp_target *t,
                 const struct spiffe_id *peer, const struct ipaddr *src_ip, uint16_t src_port,
                 const struct ipaddr *local_ip, const struct ipaddr *dst_ip, uint16_t dst_port);
/*
 * The same on |down| answered 200 already, with the engine for |proto| (HTTP1, or HTTP2/GRPC;
 * |detected|: what sniffing found, for the access line, NULL when declared).
 */
struct stream;
void wp_l7_serve_stream(struct wp *wp, struct stream *down, const struct wp_target *t,
                        enum route_protocol proto, const char *detected,
                        const struct spiffe_id *peer, const struct ipaddr *src_ip,
                        uint16_t src_port, const struct ipaddr *local_ip,
                        const struct ipaddr *dst_ip, uint16_t dst_port);

/* admin.c */
int wp_admin_start(struct wp *wp, char *err, size_t errlen);
void wp_admin_stop(void);

#endif
