/*
 * meshd_server.h - what server.c shares with the call handlers (ca.c, renew.c, xds.c, unary.c).
 */
#ifndef MESH_MESHD_SERVER_H
#define MESH_MESHD_SERVER_H

#include "h2/h2.h"
#include "meshd.h"

struct mconn;
struct xds_conn;
struct rpc_call;
struct unary_call;
struct kreview;

/* Who made a call, as its credential says. */
struct caller {
    char node[TOKEN_NODE_MAX + 1];
    uint64_t gen; /* node token: the node's generation it was issued at */
    bool kube;    /* a Kubernetes service-account token, reviewed: */
    struct kubeauth_caller k; /* its account, pod, node and trust */
};
/* "node N", or "pod NS/POD (account NS/SA) on node N", for log lines. */
const char *caller_str(const struct caller *c, char *buf, size_t len);

struct meshd_server {
    struct meshd *d;
    struct listener *l;
    struct mconn *conns;
    unsigned n_conns;
    struct hs_guard *guard; /* pending TLS handshakes (lib/conn/hs_guard.h) */
    uint64_t log_window_ms, log_lines, log_suppressed; /* refusal log rate limit */
    struct xds_conn *streams;
    unsigned n_streams;
    struct loop_timer stuck_timer; /* xds.c: closes streams that stopped answering */
    struct unary_call *unary_calls; /* unary.c: CA and renewal calls */
    struct kreview *kr;             /* kreview.c: TokenReviews in flight, answers cached */
};

/*
 * server.c, for kreview.c: the call on |st| was authenticated as |c| (it runs
 * as if its credential had been checked in on_request), or is refused with
 * gRPC |status| (the peer learns only that) for |why| (logged, rate-limited).
 */
void server_call_authenticated(struct meshd_server *srv, struct h2_stream *st,
                               const struct caller *c);
void server_call_refused(struct meshd_server *srv, struct h2_stream *st, const char *peer,
                         int status, const char *why);

/*
 * kreview.c: authenticates the call on |st| (CA or xDS) by the Kubernetes
 * token |tok| of |len| bytes, from the cache or with a TokenReview, without
 * blocking; then one of the two above runs, maybe later. |addr| is the
 * peer's address (caps per address), |peer| the same with port for the log.
 */
void kreview_call(struct meshd_server *srv, struct h2_stream *st, const struct ipaddr *addr,
                  const char *peer, const char *tok, size_t len);
void kreview_start(struct meshd_server *srv);
/* Cancels every review and closes the calls waiting for one. */
void kreview_stop(struct meshd_server *srv);

/* unary.c: a call that takes one request message and gets one answer. */
struct unary_ops {
    /*
     * The request |req| (borrowed) once the client half-closed: answer with
     * rpc_call_finish() (the call is released after this returns).
     */
    void (*answer)(struct meshd_server *srv, struct rpc_call *call, void *arg,
                   const uint8_t *req, size_t len);
    /* Optional: the call is refused for |why| (no request, or more than one); counters, log. */
    void (*refused)(struct meshd_server *srv, void *arg, const char *why);
};
/*
 * Makes |st| a unary call with requests of at most |max_req| bytes. |arg| is
 * the owner's heap block for the call, passed to |ops| and freed with the
 * call (also at once if the call cannot start).
 */
void unary_call_start(struct meshd_server *srv, struct h2_stream *st, size_t max_req,
                      const struct unary_ops *ops, void *arg);
void unary_calls_close(struct meshd_server *srv);

/* ca.c: one CreateCertificate call from authenticated |c|. */
void ca_call_start(struct meshd_server *srv, struct h2_stream *st, const struct caller *c);

/* renew.c: one token renewal call, authenticated by the token |tc| describes. */
void renew_call_start(struct meshd_server *srv, struct h2_stream *st,
                      const struct token_claims *tc);

/* xds.c: one DeltaAggregatedResources stream from authenticated |c|, bound to its node. */
void xds_stream_start(struct meshd_server *srv, struct h2_stream *st, const struct caller *c);
/*
 * Closes (UNAUTHENTICATED) the node-token streams whose node's generation
 * moved past theirs (Kubernetes-token streams do not hold a generation).
 */
void xds_streams_revoke(struct meshd_server *srv);
/* Live xDS streams on session |sess| (if not NULL) of node |node| (if not NULL). */
unsigned xds_streams_count(const struct meshd_server *srv, const struct h2_session *sess,
                           const char *node);
void xds_streams_close(struct meshd_server *srv);
/* Starts the periodic check for proxies that stopped acknowledging pushes. */
void xds_streams_watch(struct meshd_server *srv);

#endif
