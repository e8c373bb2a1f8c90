/*
 * hbone_in.c - the waypoint's port 15008: HBONE termination and the TCP path.
 *
 * Every connection is served with the waypoint's one certificate (lib/hbone: mutual TLS, the
 * peer's SPIFFE identity in our trust domain, HTTP/2). Until its handshake completes a
 * connection holds a ticket of the handshake guard (caps in all and per source, a deadline,
 * no TLS state before the ClientHello record is whole), as ztunnel's 15008.
 *
 * Each CONNECT: malformed (method, :path, :authority) 400; the authority selects a bound
 * service port or workload (bound.c), else 503. The upstream is the endpoint's ztunnel over
 * HBONE from the waypoint's own identity, :authority endpointIP:targetPort, the server the
 * endpoint's identity (pooled, lib/hbone), or plain TCP for an endpoint outside the mesh.
 * The downstream gets 200 once the upstream answered 200, else 503; then the two streams are
 * piped. One access line per CONNECT when it ends; istio_tcp_* count established tunnels
 * (telemetry.c). A bound service port whose Route table
 * says HTTP1, HTTP2 or GRPC goes to an L7 engine instead (l7_in.c); TCP ports are piped. A
 * DETECT port (no Route table, or no protocol in it) and pod-addressed traffic get 200 at once
 * and are sniffed (detect.c): HTTP/1.x and the HTTP/2 preface to the engines, anything else
 * piped, the sniffed bytes first. The target is selected again once the sniff decided (up to
 * 200 ms later), so the config in force then applies and nothing points into a model freed
 * meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "hbone"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/hs_guard.h"
#include "conn/listener.h"
#include "conn/pipe.h"
#include "conn/tcp_stream.h"
#include "detect.h"
#include "h2/h2.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "net/sock.h"
#include "tls/spiffe.h"
#include "telemetry.h"
#include "wp.h"

/* One accepted HBONE connection. */
struct wp_sess {
    struct wp_sess *prev, *next;
    struct wp_in *in;
    struct h2_session *sess;
    struct tls_check chk;
    struct tls_creds *creds;
    struct ipaddr local_ip, peer_ip;
    uint16_t local_port, peer_port;
    struct hs_ticket *ticket;
    int fd;           /* before the handshake starts */
    bool ready;
    bool guard_ended;
};

/* One CONNECT, from the request to the access log. */
struct wp_conn {
    struct wp_conn *prev, *next;
    struct wp *wp;
    struct h2_stream *down;
    struct stream *down_s;     /* once answered 200 before the upstream (sniffing): the replay */
    struct spiffe_id *peer_id; /* while sniffing: the client, for the L7 engine */
    struct ipaddr local_ip;
    const char *detected; /* what sniffing found, for the access line; NULL: declared */
    struct dial *dial;
    struct pipe *pipe;
    struct ipaddr src_ip, dst_ip, up_ip;
    uint16_t src_port, dst_port, up_port;
    char *src_identity, *dst_service, *dst_workload, *dst_ns, *dst_identity;
    const char *error;
    uint64_t start_ms;
    struct wp_tcp_tel tel; /* istio_tcp_* of this tunnel */
};

struct wp_in {
    struct wp *wp;
    struct listener *lis;
    struct wp_sess *sessions;
    size_t n_sessions;
    struct wp_conn *conns;
    struct hs_guard *guard;
    struct log_ratelimit_set rl_failed;
    struct log_ratelimit rl_refused;
    uint64_t detected[WP_PROTO_TCP + 1];
};

/* ---- one CONNECT --------------------------------------------------------- */

static void conn_drop(struct wp_conn *c);

static void
conn_finish(struct wp_conn *c, const struct pipe_result *res)
{
    struct wp *wp = c->wp;
    char src[ADDR_STRLEN], dst[ADDR_STRLEN], up[ADDR_STRLEN], sent[24], recv[24], dur[32];
    const char *err = c->error;

    if (err == NULL && res->err != 0)
        err = mesh_strerror(res->err);
    wp_telemetry_tcp_close(&c->tel, res->a_to_b, res->b_to_a, res->err);
    snprintf(sent, sizeof(sent), "%" PRIu64, res->a_to_b);
    snprintf(recv, sizeof(recv), "%" PRIu64, res->b_to_a);
    snprintf(dur, sizeof(dur), "%" PRIu64 "ms", loop_now_ms(wp->loop) - c->start_ms);
    struct log_field f[] = {
        {"src.addr", ipport_str(&c->src_ip, c->src_port, src), false},
        {"src.identity", c->src_identity, true},
        {"dst.addr", ipport_str(&c->dst_ip, c->dst_port, dst), false},
        {"dst.service", c->dst_service, true},
        {"dst.workload", c->dst_workload, true},
        {"dst.namespace", c->dst_ns, true},
        {"dst.identity", c->dst_identity, true},
        {"upstream", c->up_ip.family ? ipport_str(&c->up_ip, c->up_port, up) : NULL, false},
        {"detected", c->detected, false},
        {"bytes_sent", sent, false},
        {"bytes_recv", recv, false},
        {"duration", dur, true},
        {"error", err, true},
    };
    log_fields(err ? LOG_ERROR : LOG_INFO, "access", "connection complete", f, ARRAY_LEN(f));
    conn_drop(c);
}

/* Unlinks and frees |c| (its access line written, or handed to the L7 engine). */
static void
conn_drop(struct wp_conn *c)
{
    struct wp *wp = c->wp;
    if (c->prev)
        c->prev->next = c->next;
    else
        wp->in->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    wp->n_conns--;
    free(c->src_identity);
    free(c->dst_service);
    free(c->dst_workload);
    free(c->dst_ns);
    free(c->dst_identity);
    free(c->peer_id);
    free(c);
}

/* Answers |status| downstream (resets it if it was answered already) and ends |c| with |err|. */
static void
conn_refuse(struct wp_conn *c, int status, int err, const char *why)
{
    c->error = why;
    if (c->down_s != NULL)
        stream_close(c->down_s, true);
    else
        hbone_reject(c->down, status, why);
    struct pipe_result res = {.err = err};
    conn_finish(c, &res);
}

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct wp_conn *c = arg;
    conn_finish(c, res);
}

static void
start_pipe(struct wp_conn *c, struct stream *up)
{
    if (c->down_s != NULL) {
        /* Answered before the sniff: the downstream replays what was sniffed first. */
        c->pipe = pipe_start(c->wp->loop, c->down_s, up, PIPE_BUF_DEFAULT, on_pipe_done, c);
        wp_telemetry_tcp_open(&c->tel);
        return;
    }
    if (h2_stream_respond(c->down, 200, NULL, 0, false) < 0) {
        /* The tunnel went away while the upstream was set up. */
        stream_close(up, true);
        stream_close(h2_stream_as_stream(c->down), true);
        c->error = "tunnel closed before the upstream answered";
        struct pipe_result res = {.err = -ECONNRESET};
        conn_finish(c, &res);
        return;
    }
    /* a = downstream, b = upstream: a_to_b counts bytes the client sent. */
    c->pipe = pipe_start(c->wp->loop, h2_stream_as_stream(c->down), up, PIPE_BUF_DEFAULT,
                         on_pipe_done, c);
    wp_telemetry_tcp_open(&c->tel);
}

static void
on_upstream_hbone(void *arg, struct h2_stream *st, int status)
{
    struct wp_conn *c = arg;
    if (st == NULL || status != 200) {
        if (st != NULL)
            stream_close(h2_stream_as_stream(st), true);
        conn_refuse(c, 503, status < 0 ? status : -ECONNREFUSED,
                    status < 0 ? "upstream HBONE connection failed" : "upstream refused the CONNECT");
        return;
    }
    start_pipe(c, h2_stream_as_stream(st));
}

static void
on_upstream_dialled(void *arg, int fd)
{
    struct wp_conn *c = arg;
    c->dial = NULL;
    if (fd < 0) {
        conn_refuse(c, 503, fd, "connection to the upstream failed");
        return;
    }
    start_pipe(c, tcp_stream_new(c->wp->loop, fd));
}

/* Opens the upstream of |c| for |t| (TCP passthrough). */
static void
connect_upstream(struct wp_conn *c, const struct wp_target *t)
{
    struct wp *wp = c->wp;
    const struct workload *ep = t->endpoint;

    c->up_ip = *t->ep_ip;
    c->up_port = t->ep_port;
    if (ep->tunnel != TUNNEL_HBONE) {
        /* An endpoint outside the mesh: plain TCP, as ztunnel would reach it. */
        struct sock_opts o = {0};
        c->dial = dial_start(wp->loop, t->ep_ip, t->ep_port, NULL, &o, DIAL_TIMEOUT_MS,
                             on_upstream_dialled, c);
        return;
    }
    struct tls_creds *creds = certmgr_get(wp->certs, wp->identity);
    if (creds == NULL) {
        conn_refuse(c, 503, -MESH_ENOIDENTITY, "no certificate for the waypoint");
        return;
    }
    /* The endpoint's own identity; a service's SANs too (as ztunnel accepts them). */
    const char *ids[1 + 16];
    size_t n_ids = 0;
    ids[n_ids++] = ep->identity;
    for (size_t i = 0; t->service != NULL && i < t->service->n_sans && n_ids < ARRAY_LEN(ids); i++)
        ids[n_ids++] = t->service->sans[i];
    char authority[ADDR_STRLEN];
    ipport_str(t->ep_ip, t->ep_port, authority);
    struct hbone_headers h;
    hbone_headers_make(&h, &c->src_ip, c->src_port,
                       t->service != NULL ? t->service->hostname : NULL,
                       model_workload_by_ip(wp->model, &c->src_ip), wp->opts.cluster);
    struct hbone_target ht = {
        .creds = creds,
        .dst_ids = ids,
        .n_dst_ids = n_ids,
        .src_ip = c->local_ip,
        .dst_ip = *t->ep_ip,
        .dst_port = HBONE_PORT,
    };
    hbone_pool_connect(wp->pool, &ht, authority, h.h, h.n, on_upstream_hbone, c);
}

static void
zset(char **f, const char *v)
{
    *f = v != NULL ? xstrdup(v) : NULL;
}

/* Passthrough of |c| to the endpoint |t| picked (names for the access line, then the dial). */
static void
pass_through(struct wp_conn *c, const struct wp_target *t)
{
    zset(&c->dst_workload, t->endpoint->name);
    zset(&c->dst_ns, t->endpoint->ns);
    zset(&c->dst_identity, t->endpoint->identity);
    const struct wp_peer_ctx pc = {
        .model = c->wp->model,
        .client_identity = c->src_identity,
        .client_ip = c->src_ip,
        .client_port = c->src_port,
        .dst_ip = c->dst_ip,
        .dst_port = c->dst_port,
        .service = t->service,
        .workload = t->workload,
        .cluster = c->wp->opts.cluster,
    };
    wp_telemetry_tcp_prepare(&c->tel, &pc, t->endpoint);
    connect_upstream(c, t);
}

/* The sniff decided: the target again with the config in force now, then engine or pipe. */
static void
on_detected(void *arg, struct stream *s, enum wp_proto proto, int err)
{
    struct wp_conn *c = arg;
    struct wp *wp = c->wp;
    struct wp_target t;

    if (s == NULL) {
        c->error = "tunnel closed while its protocol was sniffed";
        struct pipe_result res = {.err = err};
        conn_finish(c, &res);
        return;
    }
    c->down_s = s;
    wp->in->detected[proto]++;
    c->detected = wp_proto_name(proto);
    if (wp->draining) {
        conn_refuse(c, 503, -ECONNREFUSED, "draining");
        return;
    }
    if (wp_select(wp, &c->dst_ip, c->dst_port, &t) < 0) {
        conn_refuse(c, t.status, -EHOSTUNREACH, t.why);
        return;
    }
    /* A Route table that declares the protocol now wins over the sniff. */
    if (t.protocol == ROUTE_PROTO_HTTP1 && t.service != NULL)
        proto = WP_PROTO_HTTP1;
    else if ((t.protocol == ROUTE_PROTO_HTTP2 || t.protocol == ROUTE_PROTO_GRPC) && t.service)
        proto = WP_PROTO_HTTP2;
    else if (t.protocol == ROUTE_PROTO_TCP)
        proto = WP_PROTO_TCP;
    if (proto == WP_PROTO_TCP) {
        pass_through(c, &t);
        return;
    }
    struct spiffe_id *peer = c->peer_id;
    struct ipaddr src_ip = c->src_ip, local_ip = c->local_ip, dst_ip = c->dst_ip;
    uint16_t src_port = c->src_port, dst_port = c->dst_port;
    c->peer_id = NULL;
    conn_drop(c); /* the engine logs each request from now on */
    wp_l7_serve_stream(wp, s, &t, proto == WP_PROTO_HTTP2 ? ROUTE_PROTO_HTTP2 : ROUTE_PROTO_HTTP1,
                       wp_proto_name(proto), peer, &src_ip, src_port, &local_ip, &dst_ip, dst_port);
    free(peer);
}

/* Sniffs what |c| carries (detect.c): the CONNECT is answered 200 first. */
static void
start_detect(struct wp_conn *c, const struct spiffe_id *peer)
{
    if (h2_stream_respond(c->down, 200, NULL, 0, false) < 0) {
        stream_close(h2_stream_as_stream(c->down), true);
        c->error = "tunnel closed before the CONNECT was answered";
        struct pipe_result res = {.err = -ECONNRESET};
        conn_finish(c, &res);
        return;
    }
    c->peer_id = xmalloc(sizeof(*c->peer_id));
    *c->peer_id = *peer;
    wp_detect_start(c->wp->loop, h2_stream_as_stream(c->down), on_detected, c);
}

static void
on_request(void *arg, struct h2_session *sess, struct h2_stream *st)
{
    struct wp_sess *s = arg;
    struct wp_in *in = s->in;
    struct wp *wp = in->wp;
    struct ipaddr ip;
    uint16_t port;
    char a[ADDR_STRLEN];
    (void)sess;

    const char *bad = hbone_connect_target(st, &ip, &port);
    if (bad != NULL) {
        hbone_reject(st, 400, bad);
        return;
    }
    struct wp_conn *c = xcalloc(1, sizeof(*c));
    c->wp = wp;
    c->down = st;
    c->start_ms = loop_now_ms(wp->loop);
    c->src_ip = s->peer_ip;
    c->src_port = s->peer_port;
    c->local_ip = s->local_ip;
    c->dst_ip = ip;
    c->dst_port = port;
    zset(&c->src_identity, s->chk.peer.uri);
    c->next = in->conns;
    if (in->conns)
        in->conns->prev = c;
    in->conns = c;
    wp->n_conns++;
    wp->total_conns++;
    if (wp->draining) {
        conn_refuse(c, 503, -ECONNREFUSED, "draining");
        return;
    }
    struct wp_target t;
    if (wp_select(wp, &ip, port, &t) < 0) {
        log_warn_rl(&in->rl_refused, "CONNECT %s from %s refused with %d: %s",
                    ipport_str(&ip, port, a), s->chk.peer.uri, t.status, t.why);
        if (t.service != NULL)
            zset(&c->dst_service, t.service->hostname);
        conn_refuse(c, t.status, -EHOSTUNREACH, t.why);
        return;
    }
    if (t.service != NULL)
        zset(&c->dst_service, t.service->hostname);
    if (t.service != NULL && (t.protocol == ROUTE_PROTO_HTTP1 || t.protocol == ROUTE_PROTO_HTTP2 ||
                              t.protocol == ROUTE_PROTO_GRPC)) {
        /* HTTP by the Route table: an engine answers and logs each request (l7_in.c). */
        conn_drop(c);
        wp_l7_serve(wp, st, &t, &s->chk.peer, &s->peer_ip, s->peer_port, &s->local_ip, &ip,
                    port);
        return;
    }
    if (t.protocol == ROUTE_PROTO_DETECT) {
        /* No declared protocol (a service port without one, or a pod-addressed CONNECT). */
        start_detect(c, &s->chk.peer);
        return;
    }
    pass_through(c, &t);
}

/* Connections whose protocol sniffing chose |p| (detect.h), for metrics. */
uint64_t
wp_in_detected(const struct wp_in *in, int p)
{
    return p >= 0 && p <= WP_PROTO_TCP ? in->detected[p] : 0;
}

/* ---- sessions ------------------------------------------------------------ */

static int
on_ready(void *arg, struct h2_session *sess)
{
    struct wp_sess *s = arg;
    (void)sess;
    if (!s->chk.have_peer)
        return -MESH_ETLS;
    s->ready = true;
    hs_ticket_done(s->ticket, true);
    s->ticket = NULL;
    log_debug("HBONE from %s accepted", s->chk.peer.uri);
    return 0;
}

static void
sess_unlink(struct wp_sess *s)
{
    struct wp_in *in = s->in;
    if (s->prev)
        s->prev->next = s->next;
    else
        in->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    in->n_sessions--;
}

static void
on_closed(void *arg, struct h2_session *sess, int err)
{
    struct wp_sess *s = arg;
    char peer[ADDR_STRLEN];

    if (!s->ready && !s->guard_ended) {
        const char *why = s->chk.why ? s->chk.why : mesh_strerror(err);
        log_warn_rl(log_ratelimit_for(&s->in->rl_failed, why), "HBONE handshake from %s failed: %s",
                    ipport_str(&s->peer_ip, s->peer_port, peer), why);
    }
    hs_ticket_done(s->ticket, false);
    sess_unlink(s);
    h2_session_release(sess);
    tls_creds_unref(s->creds);
    free(s);
}

static const struct h2_session_cbs server_cbs = {
    .on_ready = on_ready,
    .on_request = on_request,
    .on_closed = on_closed,
};

/* The guard ended |s|: before its first record (no session yet) or during the handshake. */
static void
on_guard_end(void *arg, enum hs_end why)
{
    struct wp_sess *s = arg;
    s->ticket = NULL;
    s->guard_ended = true;
    if (s->sess != NULL) {
        h2_session_close(s->sess, why == HS_END_TIMEOUT ? -ETIMEDOUT : -ECONNABORTED);
        return;
    }
    close(s->fd);
    sess_unlink(s);
    free(s);
}

/* The ClientHello record is whole: TLS starts with the waypoint's certificate. */
static void
on_first_record(void *arg)
{
    struct wp_sess *s = arg;
    struct wp *wp = s->in->wp;
    struct tls_creds *creds = wp->draining ? NULL : certmgr_get(wp->certs, wp->identity);
    if (creds == NULL) {
        log_warn_rl(&s->in->rl_refused, "HBONE connection refused: %s",
                    wp->draining ? "draining" : "no certificate yet");
        hs_ticket_done(s->ticket, false);
        close(s->fd);
        sess_unlink(s);
        free(s);
        return;
    }
    s->creds = creds;
    tls_creds_ref(creds);
    int fd = s->fd;
    s->fd = -1;
    s->sess = hbone_server_start(wp->loop, fd, creds, &s->chk, &server_cbs, s);
    if (s->sess == NULL) {
        hs_ticket_done(s->ticket, false);
        tls_creds_unref(creds);
        sess_unlink(s);
        free(s);
    }
}

static void
on_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct wp_in *in = arg;
    struct wp_sess *s = xcalloc(1, sizeof(*s));

    if (in->wp->draining || sock_local(fd, &s->local_ip, &s->local_port) < 0) {
        close(fd);
        free(s);
        return;
    }
    s->in = in;
    s->ticket = hs_guard_admit(in->guard, peer, on_guard_end, s);
    if (s->ticket == NULL) {
        close(fd); /* over the per-source cap; the guard logged it */
        free(s);
        return;
    }
    s->in = in;
    s->fd = fd;
    s->peer_ip = *peer;
    s->peer_port = peer_port;
    s->next = in->sessions;
    if (in->sessions)
        in->sessions->prev = s;
    in->sessions = s;
    in->n_sessions++;
    hs_ticket_wait_record(s->ticket, fd, on_first_record);
}

struct wp_in *
wp_in_start(struct wp *wp, char *err, size_t errlen)
{
    struct wp_in *in = xcalloc(1, sizeof(*in));
    const struct hs_guard_opts go = {
        .max_pending = wp->opts.hs_max_pending,
        .max_per_source = wp->opts.hs_max_per_source,
        .timeout_ms = wp->opts.hs_timeout_ms,
    };
    const struct sock_opts so = {.reuseport = true};
    in->wp = wp;
    in->guard = hs_guard_new(wp->loop, "hbone", &go);
    in->rl_failed = (struct log_ratelimit_set)LOG_RATELIMIT_SET_INIT(1000, 5);
    in->rl_refused = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000, 5);
    in->lis = listener_open(wp->loop, "hbone", NULL, WP_PORT_HBONE, &so, on_accept, in, err, errlen);
    if (in->lis == NULL) {
        hs_guard_free(in->guard);
        free(in);
        return NULL;
    }
    wp->in = in;
    return in;
}

void
wp_in_collect(struct wp_in *in)
{
    for (struct wp_conn *c = in != NULL ? in->conns : NULL; c != NULL; c = c->next) {
        uint64_t ab, ba;
        if (c->pipe == NULL)
            continue;
        pipe_counts(c->pipe, &ab, &ba);
        wp_telemetry_tcp_bytes(&c->tel, ab, ba);
    }
}

const struct hs_guard_stats *
wp_in_handshake_stats(const struct wp_in *in)
{
    return hs_guard_stats(in->guard);
}

/* Connections whose handshake has not started close now. */
static void
close_unstarted(struct wp_in *in)
{
    struct wp_sess *s = in->sessions, *next;
    for (; s != NULL; s = next) {
        next = s->next;
        if (s->sess == NULL) {
            hs_ticket_done(s->ticket, false);
            close(s->fd);
            sess_unlink(s);
            free(s);
        }
    }
}

void
wp_in_drain(struct wp_in *in)
{
    if (in->lis != NULL)
        listener_close(in->lis);
    in->lis = NULL;
    close_unstarted(in);
    for (struct wp_sess *s = in->sessions; s != NULL; s = s->next)
        h2_session_shutdown(s->sess);
}

void
wp_in_abort(struct wp_in *in)
{
    close_unstarted(in);
    for (struct wp_conn *c = in->conns; c != NULL; c = c->next)
        if (c->pipe != NULL) {
            c->error = "drain deadline reached";
            pipe_abort(c->pipe, -ECONNABORTED);
        }
    for (struct wp_sess *s = in->sessions; s != NULL; s = s->next)
        h2_session_close(s->sess, -ECONNABORTED);
}

size_t
wp_in_sessions(const struct wp_in *in)
{
    return in->n_sessions;
}

void
wp_in_free(struct wp_in *in)
{
    if (in == NULL)
        return;
    if (in->lis != NULL)
        listener_close(in->lis);
    in->lis = NULL;
    close_unstarted(in);
    /* Sessions still open at exit die with the process. */
    if (in->n_sessions == 0 && in->conns == NULL) {
        hs_guard_free(in->guard);
        free(in);
    }
}
