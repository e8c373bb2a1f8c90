/*
 * http2_internal.h - what the HTTP/2 engine's files share: http2_conn.c (the downstream
 * session, the exchanges' lifecycle, resets), http2_exchange.c (a request's decision, the
 * heads each way, local answers, the report), http2_up.c (endpoint sessions, tries, retries,
 * timeout, the bodies' pump).
 */
#ifndef MESH_WAYPOINT_HTTP2_INTERNAL_H
#define MESH_WAYPOINT_HTTP2_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf/buf.h"
#include "h2/h2.h"
#include "l7.h"
#include "l7_decide.h"

#define WP_H2_RETRY_BODY (64 * 1024) /* request body kept for a retry; more: no retry */
#define WP_H2_UP_MAX     16          /* endpoint sessions per downstream connection */
#define WP_H2_TRAILERS   H2_MAX_TRAILERS /* trailer fields passed on; more are dropped */

struct wp_h2_conn;

/* An HTTP/2 client session to one endpoint, shared by the exchanges of one connection. */
struct wp_h2_up {
    struct wp_h2_conn *c;
    struct wp_h2_up *next;
    struct workload *ep; /* a reference: the model may change while it lives */
    uint16_t port;
    void *connecting; /* the binary's connect() in flight */
    struct h2_session *sess;
    bool ready, dead;
    unsigned users; /* exchanges using it or waiting for it */
};

/* One request stream and its way upstream. */
struct wp_h2_x {
    struct wp_h2_conn *c;
    struct wp_h2_x *prev, *next;
    struct h2_stream *down;
    struct h2_stream *up;  /* the try's upstream stream */
    struct wp_h2_up *us;   /* its session (or the one awaited) */
    bool waiting;          /* for |us| to be ready */
    bool finished;
    struct model *m;
    struct route_set *routes;
    struct l7pol_set *pols;
    struct route_action act;
    bool have_act;
    struct wp_l7_verdict v;
    struct route_hdr_list hdrs; /* to send upstream; [0] is the authority */
    struct h2_header *rf;       /* the request's fields as received */
    size_t n_rf;
    const char *method, *path, *authority, *user_agent;
    char *request_id;
    bool grpc;
    const struct workload *tried[8];
    size_t n_tried;
    const struct workload *cur_ep;
    uint16_t cur_port;
    bool counted;
    unsigned attempts;
    struct buf replay; /* the request body so far, while it fits */
    size_t sent;       /* of |replay|, written to the current try */
    bool replay_ok, req_eof, up_shut, up_wdead, resp_head, resp_done, local;
    int status;
    unsigned flags;
    const char *details;
    uint64_t bytes_in, bytes_out, start_ms;
    char policy[L7POL_KEY_MAX];
    struct loop_timer t_req, t_backoff;
    struct loop_defer free_defer;
};

struct wp_h2_conn {
    const struct wp_l7_conn *cfg;
    struct loop *loop;
    struct h2_session *sess; /* the downstream server session */
    struct wp_h2_x *xs;
    struct wp_h2_up *ups;
    unsigned n_ups;
    struct route_table *deftab;
    struct loop_defer sweep_defer, free_defer;
    bool ended;
};

/* Zero-copy reads of an h2 stream (lib/h2 streams have peek and consume). */
static inline ssize_t
wp_h2_peek(struct stream *s, const void **p)
{
    return s->ops->peek(s, p);
}

static inline void
wp_h2_consume(struct stream *s, size_t n)
{
    s->ops->consume(s, n);
}

/* http2_exchange.c */
void wp_h2_start(struct wp_h2_conn *c, struct h2_stream *st);
/* Answers locally: a gRPC request trailers-only with grpc-status, others plainly. */
void wp_h2_local(struct wp_h2_x *x, int status, unsigned flags, const char *details,
                 const char *body, const char *location);
/* The upstream's response head on x->up: 0 sent downstream, 1 retry instead, <0 error. */
int wp_h2_resp_head(struct wp_h2_x *x, int status);
/* The exchange is over: report, release; |flags| added (DC, UC, UT); reset if unfinished. */
void wp_h2_finish(struct wp_h2_x *x, unsigned flags);

/* http2_up.c */
void wp_h2_try(struct wp_h2_x *x);
void wp_h2_try_failed(struct wp_h2_x *x, unsigned flag);
/* Lets go of the try's upstream stream (aborted unless |clean|) and session. */
void wp_h2_drop_up(struct wp_h2_x *x, bool clean);
/* Moves request and response bytes as far as they can go. */
void wp_h2_pump(struct wp_h2_x *x);
void wp_h2_up_close(struct wp_h2_up *u);
void wp_h2_on_timeout(void *arg);

#endif
