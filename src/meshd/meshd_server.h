/*
 * meshd_server.h - what server.c shares with the call handlers ca.c and xds.c.
 */
#ifndef MESH_MESHD_SERVER_H
#define MESH_MESHD_SERVER_H

#include "h2/h2.h"
#include "meshd.h"

struct mconn;
struct xds_conn;
struct ca_call;
struct renew_call;

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
    struct ca_call *ca_calls;
    struct renew_call *renew_calls;
};

/* ca.c: one CreateCertificate call from authenticated |node|. */
void ca_call_start(struct meshd_server *srv, struct h2_stream *st, const char *node);
void ca_calls_close(struct meshd_server *srv);

/* renew.c: one token renewal call, authenticated by the token |tc| describes. */
void renew_call_start(struct meshd_server *srv, struct h2_stream *st,
                      const struct token_claims *tc);
void renew_calls_close(struct meshd_server *srv);

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
