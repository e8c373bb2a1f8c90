/*
 * server.c - 15012: TLS and HTTP/2 for xDS and the CA, one listener, gRPC
 * calls dispatched by path after the caller's node credential checks out.
 *
 * Every call must carry "authorization: Bearer <node token>" (reference 4.2)
 * for the audience of its method (xds or ca; a renewal takes either and
 * returns the same one) and the node's current generation, or, for CA and
 * xDS, a Kubernetes service-account token that the API server vouches for
 * (kreview.c; the call is held unread meanwhile); a call without a valid one
 * is refused before any of its messages is read.
 *
 * Before that, the TLS handshake is bounded like ztunnel's on 15008 by the
 * shared guard (lib/conn/hs_guard.h): no TLS state until the ClientHello
 * record is whole, a 5 s deadline, 512 pending in all (the oldest closed for a
 * new one) and per address the same cap as connections (--max-conns-per-ip).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "server"
#include "base/base.h"
#include "casvc/casvc.h"
#include "conn/hs_guard.h"
#include "conn/listener.h"
#include "conn/tcp_stream.h"
#include "grpc/grpc.h"
#include "h2/h2.h"
#include "log/log.h"
#include "meshd_server.h"
#include "rpc/rpc.h"
#include "tls/tls_stream.h"
#include "xds/xds.h"

#define GRPC_STATUS_UNIMPLEMENTED 12
#define GRPC_STATUS_RESOURCE_EXHAUSTED 8

/*
 * Caps on what a peer may hold. Authentication is per call, so a connection
 * that never makes an authenticated call is closed after a while; the totals
 * keep file descriptors for the proxies that do.
 */
#define MESHD_MAX_CONNS 8192
#define MESHD_AUTH_DEADLINE_MS 10000
#define MESHD_MAX_XDS_PER_CONN 2 /* ztunnel opens one */
#define MESHD_MAX_XDS_PER_NODE 4 /* an upgrade runs two ztunnels for a while */

struct mconn {
    struct mconn *prev, *next;
    struct meshd_server *srv;
    struct h2_session *sess;    /* NULL until the ClientHello record is whole */
    int fd;                     /* until then */
    struct hs_ticket *ticket;   /* until the handshake completed */
    struct ipaddr peer;
    uint16_t peer_port;
    bool authed; /* made at least one authenticated call */
    struct loop_timer auth_deadline;
};

/* At most a few refusal lines per second, so refused peers cannot flood the log. */
static bool
log_budget(struct meshd_server *srv)
{
    uint64_t now = loop_now_ms(srv->d->loop);
    if (now - srv->log_window_ms >= 1000) {
        if (srv->log_suppressed > 0)
            log_warn("%" PRIu64 " more refusals not logged in the last second", srv->log_suppressed);
        srv->log_window_ms = now;
        srv->log_lines = 0;
        srv->log_suppressed = 0;
    }
    if (srv->log_lines < 10) {
        srv->log_lines++;
        return true;
    }
    srv->log_suppressed++;
    return false;
}

const char *
caller_str(const struct caller *c, char *buf, size_t len)
{
    if (c->kube)
        snprintf(buf, len, "pod %s/%s (account %s/%s) on node %s", c->k.id.ns, c->k.id.pod,
                 c->k.id.ns, c->k.id.sa, c->node);
    else
        snprintf(buf, len, "node %s", c->node);
    return buf;
}

static const char *
call_what(const char *path)
{
    if (path != NULL && strcmp(path, CASVC_METHOD) == 0)
        return "CA call";
    if (path != NULL && strcmp(path, XDS_DELTA_ADS_PATH) == 0)
        return "xDS stream";
    return "token renewal";
}

static void
count_auth_failure(struct meshd_server *srv, const char *path)
{
    if (strcmp(path, CASVC_METHOD) == 0)
        srv->d->stats.ca_auth_failures++;
    else if (strcmp(path, XDS_DELTA_ADS_PATH) == 0)
        srv->d->stats.xds_auth_failures++;
    else
        srv->d->stats.token_renew_failures++;
}

/* The call's credential checked out as |c|: run it. */
static void
dispatch(struct meshd_server *srv, struct mconn *mc, struct h2_stream *st,
         const struct caller *c, struct token_claims *tc)
{
    const char *path = h2_stream_path(st);
    struct h2_session *sess = h2_stream_session(st);
    char a[ADDR_STRLEN + 8], who[600];

    if (mc != NULL && !mc->authed) {
        mc->authed = true;
        loop_timer_stop(srv->d->loop, &mc->auth_deadline);
    }
    if (strcmp(path, CASVC_METHOD) == 0) {
        ca_call_start(srv, st, c);
        return;
    }
    if (strcmp(path, TOKEN_RENEW_METHOD) == 0) {
        renew_call_start(srv, st, tc);
        return;
    }
    if (xds_streams_count(srv, sess, NULL) >= MESHD_MAX_XDS_PER_CONN ||
        xds_streams_count(srv, NULL, c->node) >= MESHD_MAX_XDS_PER_NODE) {
        if (log_budget(srv))
            log_warn("xDS stream from %s (%s) refused: too many streams",
                     caller_str(c, who, sizeof(who)),
                     mc ? ipport_str(&mc->peer, mc->peer_port, a) : "?");
        rpc_refuse(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many streams");
        return;
    }
    xds_stream_start(srv, st, c);
}

/* The connection a held call came on, if it is still open. */
static struct mconn *
conn_of(struct meshd_server *srv, const struct h2_stream *st)
{
    const struct h2_session *sess = h2_stream_session(st);
    for (struct mconn *mc = srv->conns; mc != NULL; mc = mc->next)
        if (mc->sess == sess)
            return mc;
    return NULL;
}

void
server_call_authenticated(struct meshd_server *srv, struct h2_stream *st, const struct caller *c)
{
    struct mconn *mc = conn_of(srv, st);
    if (mc == NULL || h2_stream_error(st) != 0) {
        /* The peer went away while its token was reviewed. */
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    dispatch(srv, mc, st, c, NULL);
}

void
server_call_refused(struct meshd_server *srv, struct h2_stream *st, const char *peer, int status,
                    const char *why)
{
    const char *path = h2_stream_path(st);
    const char *what = call_what(path);
    if (status == GRPC_STATUS_UNAUTHENTICATED)
        count_auth_failure(srv, path);
    if (log_budget(srv))
        log_warn("%s from %s refused: %s", what, peer, why);
    if (h2_stream_error(st) != 0) {
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    rpc_refuse(st, status,
               status == GRPC_STATUS_UNAUTHENTICATED ? "authentication failure" : "try again");
}

/* A bearer token that is not meshd's own format (no colon): a Kubernetes token, maybe. */
static bool
foreign_token(const char *tok)
{
    return strchr(tok, ':') == NULL;
}

static void
on_request(void *arg, struct h2_session *sess, struct h2_stream *st)
{
    struct mconn *mc = arg;
    struct meshd_server *srv = mc->srv;
    const char *path = h2_stream_path(st);
    struct token_claims tc = {0};
    char a[ADDR_STRLEN + 8];
    const char *why = "no authorization header";
    (void)sess;

    if (!rpc_is_grpc(st) || path == NULL) {
        h2_stream_respond(st, 415, NULL, 0, true);
        /* Ours once delivered: without this, every such request kept its stream and session. */
        stream_close(h2_stream_as_stream(st), false);
        return;
    }
    bool is_ca = strcmp(path, CASVC_METHOD) == 0;
    bool is_xds = strcmp(path, XDS_DELTA_ADS_PATH) == 0;
    bool is_renew = strcmp(path, TOKEN_RENEW_METHOD) == 0;
    if (!is_ca && !is_xds && !is_renew) {
        rpc_refuse(st, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
        return;
    }
    const char *auth = h2_stream_header(st, "authorization");
    enum token_aud want = is_ca ? TOKEN_AUD_CA : is_xds ? TOKEN_AUD_XDS : TOKEN_AUD_ANY;
    int rc = -1;
    ipport_str(&mc->peer, mc->peer_port, a);
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0) {
        /* CA and xDS also take Kubernetes tokens (kreview.c); renewal is for node tokens. */
        if (!is_renew && foreign_token(auth + 7)) {
            kreview_call(srv, st, &mc->peer, a, auth + 7, strlen(auth + 7));
            return;
        }
        rc = token_verify(srv->d->token_key, srv->d->gens, auth + 7, strlen(auth + 7),
                          (int64_t)(clock_wall_ms() / 1000), want, &tc, &why);
    } else if (auth != NULL) {
        why = "authorization is not a bearer token";
    }
    if (rc < 0) {
        count_auth_failure(srv, path);
        /* The node is named only when the signature held: then it is ours, not the peer's. */
        bool signed_ok = tc.node[0] != '\0' && token_node_valid(tc.node);
        if (log_budget(srv)) {
            if (signed_ok)
                log_warn("%s from node %s (%s) refused: %s", call_what(path), tc.node, a, why);
            else
                log_warn("%s from %s refused: %s", call_what(path), a, why);
        }
        rpc_refuse(st, GRPC_STATUS_UNAUTHENTICATED, "authentication failure");
        return;
    }
    struct caller c;
    memset(&c, 0, sizeof(c));
    snprintf(c.node, sizeof(c.node), "%s", tc.node);
    c.gen = tc.gen;
    dispatch(srv, mc, st, &c, &tc);
}

static void
mconn_unlink(struct mconn *mc)
{
    struct meshd_server *srv = mc->srv;
    loop_timer_stop(srv->d->loop, &mc->auth_deadline);
    srv->n_conns--;
    if (mc->prev)
        mc->prev->next = mc->next;
    else
        srv->conns = mc->next;
    if (mc->next)
        mc->next->prev = mc->prev;
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct mconn *mc = arg;
    (void)err;
    hs_ticket_done(mc->ticket, false);
    mconn_unlink(mc);
    h2_session_release(s);
    free(mc);
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct mconn *mc = arg;
    (void)s;
    hs_ticket_done(mc->ticket, true);
    mc->ticket = NULL;
    return 0;
}

static const struct h2_session_cbs cbs = {
    .on_ready = on_ready,
    .on_request = on_request,
    .on_closed = on_closed,
};

static void
on_auth_deadline(void *arg)
{
    struct mconn *mc = arg;
    /* Connected but never authenticated: the slot goes to someone who will. */
    h2_session_close(mc->sess, -ETIMEDOUT);
}

/* The guard ended the handshake (deadline, eviction, peer gone); it logged it. */
static void
on_guard_end(void *arg, enum hs_end why)
{
    struct mconn *mc = arg;
    mc->ticket = NULL;
    if (mc->sess != NULL) {
        h2_session_close(mc->sess, why == HS_END_TIMEOUT ? -ETIMEDOUT : -ECONNABORTED);
        return;
    }
    close(mc->fd);
    mconn_unlink(mc);
    free(mc);
}

/* The ClientHello record is whole: TLS starts now. */
static void
on_first_record(void *arg)
{
    struct mconn *mc = arg;
    struct meshd_server *srv = mc->srv;
    SSL *ssl = SSL_new(srv->d->serving);
    if (ssl == NULL) {
        hs_ticket_done(mc->ticket, false);
        mc->ticket = NULL;
        on_guard_end(mc, HS_END_CLOSED);
        return;
    }
    struct loop *l = srv->d->loop;
    struct stream *x = tls_stream_new(l, tcp_stream_new(l, mc->fd), ssl, true, TLS_STREAM_ALPN_H2);
    mc->sess = h2_session_new(l, x, true, &cbs, mc);
    mc->fd = -1;
    loop_timer_start(srv->d->loop, &mc->auth_deadline, MESHD_AUTH_DEADLINE_MS, on_auth_deadline,
                     mc);
}

static void
on_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct meshd_server *srv = arg;
    char a[ADDR_STRLEN];
    unsigned same_ip = 0;

    for (struct mconn *c = srv->conns; c != NULL; c = c->next)
        same_ip += ipaddr_eq(&c->peer, peer);
    if (srv->n_conns >= MESHD_MAX_CONNS ||
        (srv->d->opts.max_conns_per_ip > 0 && same_ip >= srv->d->opts.max_conns_per_ip)) {
        if (log_budget(srv))
            log_warn("connection from %s refused: %u from that address, %u in all",
                     ipaddr_str(peer, a), same_ip, srv->n_conns);
        close(fd);
        return;
    }
    struct mconn *mc = xcalloc(1, sizeof(*mc));
    mc->ticket = hs_guard_admit(srv->guard, peer, on_guard_end, mc);
    if (mc->ticket == NULL) {
        close(fd); /* over the per-address cap on pending handshakes; the guard logged it */
        free(mc);
        return;
    }
    mc->srv = srv;
    mc->fd = fd;
    mc->peer = *peer;
    mc->peer_port = peer_port;
    mc->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = mc;
    srv->conns = mc;
    srv->n_conns++;
    hs_ticket_wait_record(mc->ticket, fd, on_first_record);
}

const struct hs_guard_stats *
server_handshake_stats(const struct meshd_server *srv)
{
    return hs_guard_stats(srv->guard);
}

struct meshd_server *
server_start(struct meshd *d, char *err, size_t errlen)
{
    struct meshd_server *srv = xcalloc(1, sizeof(*srv));
    struct sock_opts o = {0};
    srv->d = d;
    /* Per address, pending handshakes get the connection cap (none: the total's). */
    struct hs_guard_opts ho = {.max_per_source = d->opts.max_conns_per_ip > 0
                                                     ? d->opts.max_conns_per_ip
                                                     : HS_GUARD_MAX_PENDING};
    srv->guard = hs_guard_new(d->loop, "xds+ca", &ho);
    srv->l = listener_open(d->loop, "xds+ca", &d->opts.listen_ip, d->opts.listen_port, &o,
                           on_accept, srv, err, errlen);
    if (srv->l == NULL) {
        hs_guard_free(srv->guard);
        free(srv);
        return NULL;
    }
    xds_streams_watch(srv);
    kreview_start(srv);
    return srv;
}

void
server_stop(struct meshd_server *srv)
{
    if (srv == NULL)
        return;
    listener_close(srv->l);
    kreview_stop(srv);
    xds_streams_close(srv);
    unary_calls_close(srv);
    while (srv->conns != NULL) {
        struct mconn *mc = srv->conns;
        srv->conns = mc->next;
        loop_timer_stop(srv->d->loop, &mc->auth_deadline);
        if (mc->sess != NULL) {
            h2_session_close(mc->sess, 0);
            h2_session_release(mc->sess);
        } else {
            close(mc->fd);
        }
        free(mc);
    }
    hs_guard_free(srv->guard); /* tickets still pending go with it, without callbacks */
    free(srv);
}

void
server_tokens_revised(struct meshd_server *srv)
{
    if (srv != NULL)
        xds_streams_revoke(srv);
}
