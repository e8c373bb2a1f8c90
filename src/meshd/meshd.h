/*
 * meshd.h - the control plane's shared state and the seams between its files.
 *
 *   main.c     flags, `meshd token`, start-up, signals
 *   state.c    state directory: mesh root, token key, serving certificate
 *   tokens.c   `meshd token` (issue, revoke), the per-node token generations in force
 *   config.c   the config directory: inotify, debounce, last good state, snapshots
 *   kube_source.c  the Kubernetes API as a config source: reflectors into the same store,
 *              the synced gate, istio-ca-root-cert ConfigMaps, Warning Events on bad objects
 *   server.c   15012: TLS, HTTP/2, gRPC dispatch and node authentication
 *   kreview.c  Kubernetes service-account tokens: TokenReview calls, cache, caps
 *   ca.c       CreateCertificate calls
 *   renew.c    node-token renewal calls
 *   unary.c    the unary calls in flight (CA, renewal): one request each, closed with the server
 *   xds.c      DeltaAggregatedResources streams and pushes
 *   monitor.c  15014: Prometheus metrics and readiness
 */
#ifndef MESH_MESHD_H
#define MESH_MESHD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>

#include "casvc/token.h"
#include "casvc/token_gens.h"
#include "kubeauth/kubeauth.h"
#include "kubesrc/kubesrc.h"
#include "loop/loop.h"
#include "net/addr.h"
#include "tls/ca.h"

#define MESHD_PORT_GRPC 15012
#define MESHD_PORT_MONITOR 15014
#define MESHD_SERVING_LIFETIME (30L * 86400)

struct meshd_opts {
    const char *config_dir; /* NULL: none (the Kubernetes API alone) */
    struct kube_src_opts kube; /* --kubeconfig FILE / --in-cluster (lib/kubesrc) */
    const char *state_dir;
    struct ipaddr listen_ip;
    uint16_t listen_port;
    struct ipaddr monitor_ip;
    uint16_t monitor_port;
    const char *trust_domain;
    const char *cluster_id;
    long cert_ttl;     /* default workload certificate lifetime */
    long max_cert_ttl; /* cap on what a proxy may ask for */
    uint64_t debounce_ms;
    unsigned max_conns_per_ip; /* 0: no limit (a benchmark simulating many nodes from one address) */
    bool allow_x25519; /* also offer X25519 on 15012 (not FIPS-approved) */
    /* Kubernetes accounts that may obtain identities of pods on their node
     * (--ca-trusted-node-accounts, istiod's CA_TRUSTED_NODE_ACCOUNTS). */
    struct kubeauth_accounts trusted_node_accounts;
    /* Waypoint Deployments on Kubernetes: the address and image they get (NULL: the istiod
     * Service's cluster IP:15012; amesh/waypoint:dev). */
    const char *waypoint_xds;
    const char *waypoint_image;
};

/* Counters for /metrics; names follow istiod's where it has one. */
struct meshd_stats {
    uint64_t xds_pushes;          /* responses sent */
    uint64_t xds_push_bytes;
    uint64_t xds_resources_sent;
    uint64_t xds_acks, xds_nacks;
    uint64_t xds_streams_total;
    uint64_t xds_auth_failures;
    uint64_t tokens_renewed, token_renew_failures;
    uint64_t xds_streams_revoked; /* closed because their node's tokens were revoked */
    uint64_t ca_requests, ca_signed, ca_refused, ca_auth_failures;
    /* Kubernetes tokens (kreview.c): reviews sent, answered from the cache, failed (no answer:
     * timeout, transport, over the cap, HTTP error), refused by the API server; latency. */
    uint64_t kube_reviews, kube_review_cache_hits, kube_review_failures, kube_review_refusals;
    uint64_t kube_review_coalesced; /* calls that waited for a review another call started */
    uint64_t kube_review_latency_count, kube_review_latency_ms_sum, kube_review_latency_ms_max;
    uint64_t config_reloads, config_errors_total;
    uint64_t config_errors_now; /* diagnostics standing after the last reload */
    /* push latency: push -> ACK, histogram buckets in ms */
    uint64_t push_latency_le[8];
    uint64_t push_latency_count;
    double push_latency_sum_s;
};

struct meshd_config;
struct meshd_server;
struct xds_snapshot;
struct k8s_store;
struct kube_client;

struct meshd {
    struct loop *loop;
    struct meshd_opts opts;
    struct ca *ca;
    uint8_t token_key[TOKEN_KEY_LEN];
    struct token_gens *gens;    /* per-node token generations in force (tokens.c) */
    SSL_CTX *serving;          /* current 15012 context; replaced before it expires */
    long serving_not_after;
    struct meshd_config *config;
    struct meshd_server *server;
    struct kube_client *kube;   /* the API server, or NULL: then Kubernetes tokens are refused */
    struct meshd_stats stats;
    uint64_t start_ms;
    bool ready;                 /* the config dir was read once */

    /* With --kubeconfig / --in-cluster: the config source's reflectors (kube_source.c); they
     * and the CA's TokenReview share |kube|, one connection to the API server. */
    struct meshd_kube *kube_src;
};

/* state.c */
/*
 * Takes the state directory's lock (flock on |dir|, waiting for a holder):
 * the descriptor, closed to release it, or -1 with |err|.
 */
int meshd_state_lock(const char *dir, char *err, size_t errlen);
int meshd_state_open(const char *dir, struct ca **ca, uint8_t key[TOKEN_KEY_LEN], char *err,
                     size_t errlen);
/* The 15012 context: a fresh serving certificate and the TLS policy (o->allow_x25519). */
SSL_CTX *meshd_serving_ctx(const struct ca *ca, const struct meshd_opts *o, long valid_secs,
                           long *not_after);

/* tokens.c */
int meshd_cmd_token(int argc, char **argv);
/* Reads the generation table of state directory |dir| (absent: empty). 0, or -1 with |err|. */
int meshd_gens_load(const char *dir, struct token_gens **out, char *err, size_t errlen);
/* Loads the table into |d->gens| and follows the state directory for changes. */
int meshd_tokens_start(struct meshd *d, char *err, size_t errlen);
void meshd_tokens_stop(struct meshd *d);

/* config.c: reads the config dir now, then follows it. */
struct meshd_config *config_start(struct meshd *d, char *err, size_t errlen);
void config_stop(struct meshd_config *c);
/*
 * The Kubernetes source changed the store (puts not yet committed are fine):
 * rebuild after the debounce. config_open_gate(): every kind was listed once;
 * until then nothing is built or served (config_snapshot() is NULL) and
 * meshd is not ready.
 */
void config_kick(struct meshd_config *c);
void config_open_gate(struct meshd_config *c);
struct k8s_store *config_store_rw(struct meshd_config *c);
/* The snapshot being served (borrowed, NULL while the gate is closed) and the store it came from. */
struct xds_snapshot *config_snapshot(const struct meshd_config *c);
const struct k8s_store *config_store(const struct meshd_config *c);
/*
 * What waypoint Gateway |ns|/|name| is served (its Routes and Policies) from
 * the store now, as a snapshot (a new reference; NULL if it cannot be made);
 * |exists| says whether |ns|/|name| is a waypoint Gateway at all. Built once per
 * store generation and Gateway, however many replicas ask.
 */
struct xds_snapshot *config_waypoint_snapshot(struct meshd_config *c, const char *ns,
                                              const char *name, bool *exists);
/* A snapshot with nothing in it (a new reference). */
struct xds_snapshot *config_empty_snapshot(void);
/* Diagnostics now standing, rendered one per line (for logs and /debug/config_errors). */
char *config_errors_text(const struct meshd_config *c);

/* server.c */
struct meshd_server *server_start(struct meshd *d, char *err, size_t errlen);
void server_stop(struct meshd_server *s);
/* A new snapshot is being served: push it to every stream. */
void server_snapshot_changed(struct meshd_server *s);
unsigned server_n_xds_streams(const struct meshd_server *s);
/* The token generations changed: close the xDS streams of revoked nodes. */
void server_tokens_revised(struct meshd_server *s);
struct hs_guard_stats;
/* Pending TLS handshakes on 15012 and their outcomes (metrics). */
const struct hs_guard_stats *server_handshake_stats(const struct meshd_server *s);

/* kreview.c: TokenReviews in flight and calls waiting for one (metrics). */
void kreview_counts(const struct meshd_server *srv, unsigned *reviews, unsigned *waiting);

/* kube_source.c: reflectors into the store of |d->config|, ConfigMaps, Events. */
int meshd_kube_start(struct meshd *d, char *err, size_t errlen);
void meshd_kube_stop(struct meshd *d);
/*
 * A diagnostic of error severity about source |file| ("api:Kind/ns/name"; others are
 * ignored), found by the store or the converter: a Warning Event on the object.
 */
void meshd_kube_report(struct meshd *d, const char *file, const char *msg);
/* The Kubernetes source's metrics (nothing without it), in Prometheus' text format. */
void meshd_kube_metrics(const struct meshd *d, FILE *f);
/* /debug/waypoints: the waypoint Gateways meshd deploys and their state (malloc'd text). */
char *meshd_kube_waypoints_text(const struct meshd *d);

/* monitor.c */
int monitor_start(struct meshd *d, char *err, size_t errlen);
void monitor_stop(void);
void monitor_observe_push_latency(struct meshd *d, uint64_t ms);

#endif
