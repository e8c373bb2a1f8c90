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
};

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

/* ca.c: one CreateCertificate call from authenticated |node|. */
void ca_call_start(struct meshd_server *srv, struct h2_stream *st, const char *node);

/* renew.c: one token renewal call, authenticated by the token |tc| describes. */
void renew_call_start(struct meshd_server *srv, struct h2_stream *st,
                      const struct token_claims *tc);

/* xds.c: one DeltaAggregatedResources stream from |node|, authenticated at token generation |gen|. */
void xds_stream_start(struct meshd_server *srv, struct h2_stream *st, const char *node,
                      uint64_t gen);
/* Closes (UNAUTHENTICATED) the streams whose node's generation moved past theirs. */
void xds_streams_revoke(struct meshd_server *srv);
/* Live xDS streams on session |sess| (if not NULL) of node |node| (if not NULL). */
unsigned xds_streams_count(const struct meshd_server *srv, const struct h2_session *sess,
                           const char *node);
void xds_streams_close(struct meshd_server *srv);
/* Starts the periodic check for proxies that stopped acknowledging pushes. */
void xds_streams_watch(struct meshd_server *srv);

#endif
