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
#include "http1/http1.h"
#include "l7.h"
#include "l7_decide.h"

#define WP_H2_RETRY_BODY (64 * 1024) /* request body kept for a retry; more: no retry */
#define WP_H2_UP_MAX     16          /* endpoint sessions per downstream connection */
#define WP_H2_TRAILERS   H2_MAX_TRAILERS /* trailer fields passed on; more are dropped */
#define WP_H2_H1_HEAD    (64 * 1024) /* an HTTP/1.1 endpoint's response head */
#define WP_H2_H1_BUF     (80 * 1024) /* each way to an HTTP/1.1 endpoint */

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
    char grpc_status[4]; /* the grpc-status sent to the client ("" none yet) */
    const struct workload *tried[8];
    size_t n_tried;
    const struct workload *cur_ep;
    uint16_t cur_port;
    bool counted;
    unsigned attempts;
    struct buf replay; /* the request body so far, while it fits */
    size_t sent;       /* of |replay|, written to the current try */
    bool replay_ok, req_eof, up_shut, up_wdead, resp_head, resp_done, local;
    /* The try's endpoint speaks HTTP/1.1 (http2_h1up.c): its connection and codec. */
    bool h1, h1_chunked, h1_eof;
    struct stream *h1s;
    void *h1_connecting;
    struct buf h1in, h1out;
    struct http1_parser h1rs;
    int status;
    unsigned flags;
    const char *details;
    uint64_t bytes_in, bytes_out, start_ms;
    char policy[L7POL_KEY_MAX];
    bool try_timing;   /* the try's per-try timer runs */
    struct loop_timer t_req, t_backoff, t_try;
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
    struct wp_h2_conn *dprev, *dnext; /* this thread's connections, for wp_http2_drain() */
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
/* The same from any endpoint: its fields (edited: response header modifiers), |end| when
 * nothing follows, its grpc-status field if any. */
int wp_h2_resp_head_list(struct wp_h2_x *x, int status, struct route_hdr_list *l, bool end,
                         const char *grpc_status);
/* Notes the grpc-status |v| (NULL: none) going to a gRPC client, for the report. */
void wp_h2_note_grpc_status(struct wp_h2_x *x, const char *v);
/* Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2, and host). */
bool wp_h2_conn_specific(const char *n, size_t nl, const char *v, size_t vl);
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
/* The response asks for a retry: the try's upstream goes, another follows the backoff. */
void wp_h2_retry(struct wp_h2_x *x);

/* http2_h1up.c: the try's endpoint speaks HTTP/1.1. */
void wp_h2_h1_connect(struct wp_h2_x *x);
/* Request body bytes, framed; -EAGAIN when the buffer to the endpoint is full. */
ssize_t wp_h2_h1_write(struct wp_h2_x *x, const void *p, size_t n);
/* The body's end: the last chunk with the client's trailers |tr| (a body sent with a
 * content-length has no room for them: they are dropped). -EAGAIN: the buffer is too full. */
int wp_h2_h1_end(struct wp_h2_x *x, const struct h2_header *tr, size_t n);
/* Writes what is buffered for the endpoint; true if some went. */
bool wp_h2_h1_flush(struct wp_h2_x *x);
void wp_h2_h1_pump(struct wp_h2_x *x, bool *want_down_wr);
void wp_h2_h1_drop(struct wp_h2_x *x);
void wp_h2_on_timeout(void *arg);

#endif
