/*
 * http1_internal.h - what the HTTP/1.1 engine's files share: http1_conn.c (the connection, its
 * buffers and the pump through the codec), http1_exchange.c (a request's checks, policy,
 * route, the heads written each way, local answers, the report), http1_up.c (endpoint streams,
 * retries, timeout), http1_lb.c (endpoint choice, request ids).
 */
#ifndef MESH_WAYPOINT_HTTP1_INTERNAL_H
#define MESH_WAYPOINT_HTTP1_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "http1/http1.h"
#include "route/route.h"
#include "l7.h"
#include "l7_decide.h"

/*
 * Buffer caps per downstream connection (storage is allocated only while bytes are in
 * flight). The request and response heads are capped by the codec at WP_H1_MAX_HEAD; a
 * head we write may grow by header modifiers, so the output buffers leave room for that.
 */
#define WP_H1_MAX_HEAD   (64 * 1024) /* a received head, request or response */
#define WP_H1_IN_BUF     (80 * 1024) /* bytes read and not yet parsed, each direction */
#define WP_H1_OUT_HEAD   (96 * 1024) /* a head we serialise (after header modifiers) */
#define WP_H1_RETRY_BODY (64 * 1024) /* request body kept for a retry; more: no retry */
#define WP_H1_OUT_BUF    (WP_H1_OUT_HEAD + WP_H1_RETRY_BODY) /* bytes not yet written */
#define WP_H1_IDLE_MAX   4 /* idle upstream connections kept per downstream one */
#define WP_H1_LINGER_MS  2000 /* a half-closed stream waits this long for the peer's end */
#define WP_H1_LINGER_MAX (64 * 1024) /* bytes discarded from it meanwhile; more: reset */

struct pipe;

/* One upstream connection to an endpoint, in use by an exchange, idle, or lingering. */
struct wp_h1_up {
    struct wp_h1_conn *c;
    struct stream *s;
    struct workload *ep; /* a reference: the model may be replaced while it is idle */
    uint16_t port;
    struct wp_h1_up *next; /* idle list */
    /* Lingering (closed by us, half-closed, waiting for the peer's end): */
    struct wp_h1_up *lprev, *lnext;
    struct loop *loop;
    struct loop_timer t_linger;
    size_t discarded;
};

/* One downstream connection and the exchange (request, response) in progress on it. */
struct wp_h1_conn {
    const struct wp_l7_conn *cfg;
    struct loop *loop;
    struct stream *down;
    struct buf din, dout; /* downstream bytes read, not yet parsed / to write */
    struct buf uin, uout; /* upstream, the same */
    struct buf replay;    /* request head + body sent so far, for a retry */
    struct http1_parser rq, rs;
    struct loop_defer free_defer;
    struct loop_timer t_req, t_backoff, t_try, t_linger;
    struct wp_h1_conn *dprev, *dnext; /* this thread's connections (wp_http1_drain) */
    struct wp_h1_up *idle;
    size_t n_idle;
    struct route_table *deftab; /* the service's own route when no Route names it */
    struct pipe *pipe;          /* after an upgrade: the tunnel */
    bool down_eof, closing, ended;
    bool down_wshut; /* we half-closed downstream and wait for the client's end */

    /* The exchange. */
    bool active, local, req_done, resp_head, resp_done, interim;
    bool replay_ok, up_eof, up_wdead, chunk_up, chunk_down, close_down, keep_alive, client10;
    bool expect_continue, upgrade, tunnel;
    struct model *m;
    struct route_set *routes;
    struct l7pol_set *pols;
    struct route_action act;
    bool have_act;
    const struct service *backend;
    uint16_t backend_port;
    const struct workload *tried[8];
    size_t n_tried;
    const struct workload *cur_ep;
    uint16_t cur_port;
    bool counted;        /* cur_ep's outstanding count holds this request */
    struct wp_h1_up *up; /* connected upstream */
    bool reused;         /* |up| was kept alive from an earlier request */
    bool up_read;        /* |up| sent something this try */
    bool up_fin;         /* |up| ended its side (a clean end of stream, not an error) */
    bool up_wrote;       /* some of the request went to |up| this try */
    bool try_timing;     /* the per-try timer runs for this try */
    unsigned stale;      /* kept-alive streams found closed under this request */
    void *connecting;    /* a connect() in flight */
    unsigned attempts, max_tries;
    int last_err_flag; /* WP_FLAG_UF or WP_FLAG_UC of the last failed try */
    int status;
    unsigned flags;
    const char *details;
    uint64_t bytes_in, bytes_out, start_ms;
    char *method, *path, *authority, *request_id, *user_agent, *upgrade_proto;
    char policy[L7POL_KEY_MAX];
};

/* http1_exchange.c: a request head was parsed from |base|; decide and stage it. */
void wp_h1_start(struct wp_h1_conn *c, const char *base, const struct http1_head *h);
/* A final response head from upstream: 0 written to dout, 1 retry instead, <0 error (502). */
int wp_h1_resp_head(struct wp_h1_conn *c, const char *base, const struct http1_head *h);
/* Answers the current request locally (no upstream, or instead of one). */
void wp_h1_local(struct wp_h1_conn *c, int status, unsigned flags, const char *details,
                 const char *body, const char *location, bool close);
/* Releases what the exchange holds and reports it; the connection may take the next one. */
void wp_h1_finish(struct wp_h1_conn *c);

/* http1_conn.c: moves what can move, then asks each stream for what it needs next. */
void wp_h1_pump(struct wp_h1_conn *c);
/* Ends the connection (|flags| for the exchange in progress, if any); on_closed runs. */
void wp_h1_end(struct wp_h1_conn *c, unsigned flags);

/* http1_up.c: the upstream side of an exchange. */
void wp_h1_try(struct wp_h1_conn *c);
/* A try failed before a response head (WP_FLAG_UF or WP_FLAG_UC): retry or answer 503. */
void wp_h1_try_failed(struct wp_h1_conn *c, unsigned flag);
/* Tries again after the route's jittered backoff. */
void wp_h1_retry_later(struct wp_h1_conn *c);
/* Lets go of the exchange's upstream: kept idle for reuse, or closed. */
void wp_h1_drop_up(struct wp_h1_conn *c, bool reuse);
void wp_h1_up_close(struct wp_h1_up *u, bool abort);
/* The route's timeout, or the try's (backendRequest), fired. */
void wp_h1_on_timeout(void *arg);
void wp_h1_on_try_timeout(void *arg);
/* Starts the per-try timer once the try has the whole request (Envoy's per_try_timeout). */
void wp_h1_try_timer(struct wp_h1_conn *c);

#endif
