/*
 * inbound.c - accepts HBONE tunnels on port 15008.
 *
 * The peer opens mTLS (we serve the certificate of the workload whose address
 * the connection arrived on), then HTTP/2, then one CONNECT stream per
 * tunnelled TCP connection. For each CONNECT we check the authority, dial the
 * local workload and answer 200 only once it accepted (503 otherwise), then
 * hand both ends to a pipe; a CONNECT that policy denies gets 401.
 *
 * Until its handshake completes a connection is "pending" and holds a ticket
 * of the handshake guard (lib/conn/hs_guard.h): caps in all and per source
 * address, a deadline, and no TLS state before the ClientHello record is
 * whole. Stages: accept -> first record -> workload and certificate known
 * (held, the deadline paused: we are the ones waiting) -> TLS -> HTTP/2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "inbound"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/hs_guard.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "net/sock.h"
#include "ztunnel.h"

/* One accepted HBONE connection. */
struct hbone_conn {
    struct hbone_conn *prev, *next;
    struct inbound *in;
    struct h2_session *sess;
    struct tls_check chk;
    struct tls_creds *creds;
    struct ipaddr local_ip, peer_ip;
    uint16_t local_port, peer_port;
    char *local_uid; /* the workload whose certificate we served */
    struct zpod *pod; /* the scope it arrived in (referenced) */
    struct hs_ticket *ticket; /* until the handshake completed or the guard ended it */
    bool ready;      /* the handshake completed */
    bool guard_ended; /* closed by the guard (deadline, eviction), which logged it */
};

struct inbound {
    struct zt *zt;
    struct hbone_conn *conns;
    size_t n_conns;
    struct hs_guard *guard;      /* pending handshakes: caps and deadline */
    struct held_accept *held;    /* accepted, no TLS yet */
    struct log_ratelimit_set rl_failed; /* per reason: each kind of refusal shows */
    struct log_ratelimit rl_unknown;
};

/* An accepted socket before its handshake starts: first record, workload, certificate. */
struct held_accept {
    struct held_accept *prev, *next;
    struct inbound *in;
    struct hs_ticket *ticket;
    struct zpod *pod; /* referenced */
    int fd;
    struct ipaddr local, peer;
    uint16_t local_port, peer_port;
    uint64_t deadline_ms;
    struct zwait wait;
    bool paused; /* the guard's deadline stopped while we hold it */
};

/* One CONNECT being set up: the app is dialled before we answer. */
struct connect_req {
    struct zt *zt;
    struct h2_stream *st;
    struct zconn *zc;
    struct dial *dial;
};

static const struct h2_session_cbs server_cbs;

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct connect_req *r = arg;
    zconn_finish(r->zt, r->zc, res);
    free(r);
}

static void
on_app_dialled(void *arg, int fd)
{
    struct connect_req *r = arg;
    struct zt *zt = r->zt;

    r->dial = NULL;
    if (fd < 0) {
        r->zc->error = "connection to the workload failed";
        hbone_reject(r->st, 503, mesh_strerror(fd));
        struct pipe_result res = {.err = fd};
        zconn_finish(zt, r->zc, &res);
        free(r);
        return;
    }
    if (!zt_authz_recheck(zt, r->zc)) {
        /* Policies or the workload changed while we dialled: as if refused at once. */
        close(fd);
        hbone_reject(r->st, 401, "connection closed due to policy change");
        zconn_set_flag(r->zc, "DENY");
        r->zc->error = "connection closed due to policy change";
        struct pipe_result res = {.err = -MESH_EDENIED};
        zconn_finish(zt, r->zc, &res);
        free(r);
        return;
    }
    if (h2_stream_respond(r->st, 200, NULL, 0, false) < 0) {
        /* The tunnel went away while we dialled. */
        close(fd);
        stream_close(h2_stream_as_stream(r->st), true);
        r->zc->error = "tunnel closed before the workload answered";
        struct pipe_result res = {.err = -ECONNRESET};
        zconn_finish(zt, r->zc, &res);
        free(r);
        return;
    }
    struct stream *app = tcp_stream_new(zt->loop, fd);
    if (app == NULL) {
        stream_close(h2_stream_as_stream(r->st), true);
        struct pipe_result res = {.err = -ENOMEM};
        zconn_finish(zt, r->zc, &res);
        free(r);
        return;
    }
    /* a = the tunnel (client side), b = the app: a_to_b counts bytes the client sent. */
    r->zc->pipe = pipe_start(zt->loop, h2_stream_as_stream(r->st), app, zt->opts.pipe_buf,
                             on_pipe_done, r);
}

static void
on_stream_while_dialling(void *arg, struct stream *x, unsigned events)
{
    struct connect_req *r = arg;
    const void *p;
    (void)events;

    /* Early data is held for the tunnel; only a failed stream matters here. */
    ssize_t n = x->ops->peek(x, &p);
    if (n >= 0 || n == -EAGAIN || r->dial == NULL)
        return;
    dial_cancel(r->dial);
    r->dial = NULL;
    stream_close(x, true);
    r->zc->error = "tunnel reset before the workload answered";
    struct pipe_result res = {.err = (int)n};
    zconn_finish(r->zt, r->zc, &res);
    free(r);
}

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct hbone_conn *hc = arg;
    struct zt *zt = hc->in->zt;
    struct ipaddr ip;
    uint16_t port;
    (void)s;

    const char *bad = hbone_connect_target(st, &ip, &port);
    if (bad != NULL) {
        hbone_reject(st, 400, bad);
        return;
    }
    const struct workload *w = zt_local_workload(zt, &ip);
    if (w == NULL || strcmp(w->uid, hc->local_uid) != 0) {
        /* The certificate we served belongs to the workload at the connection's address. */
        hbone_reject(st, 400, "authority is not the local workload of this connection");
        return;
    }
    if (zt_is_own_port(port)) {
        hbone_reject(st, 400, "authority targets a ztunnel port");
        return;
    }
    if (zt->draining) {
        hbone_reject(st, 503, "draining");
        return;
    }

    struct connect_req *r = xcalloc(1, sizeof(*r));
    r->zt = zt;
    r->st = st;
    r->zc = zconn_new(zt, true);
    r->zc->mtls = true;
    r->zc->src_ip = hc->peer_ip;
    r->zc->src_port = hc->peer_port;
    r->zc->dst_ip = hc->local_ip;
    r->zc->dst_port = hc->local_port;
    r->zc->hbone_ip = ip;
    r->zc->hbone_port = port;
    zconn_set(&r->zc->src_identity, hc->chk.peer.uri);
    const struct workload *src = model_workload_by_ip(zt->model, &hc->peer_ip);
    if (src != NULL) {
        zconn_set(&r->zc->src_workload, src->name);
        zconn_set(&r->zc->src_ns, src->ns);
        zconn_set(&r->zc->src_cluster, src->cluster_id ? src->cluster_id : zt->opts.cluster);
    }
    zconn_set(&r->zc->dst_workload, w->name);
    zconn_set(&r->zc->dst_ns, w->ns);
    zconn_set(&r->zc->dst_identity, w->identity);
    zconn_set(&r->zc->dst_uid, w->uid);
    zconn_set(&r->zc->dst_cluster, w->cluster_id ? w->cluster_id : zt->opts.cluster);

    /* Authorization against the real target (reference 5.1); a denied CONNECT gets 401. */
    char reason[600], why[700];
    if (!zt_authorize(zt, w, hc->chk.peer.uri, &hc->peer_ip, &ip, port, reason, sizeof(reason))) {
        snprintf(why, sizeof(why), "connection closed due to policy rejection: %s", reason);
        hbone_reject(st, 401, why);
        zconn_set_flag(r->zc, "DENY");
        r->zc->error = "connection closed due to policy rejection";
        log_info("%s", why);
        struct pipe_result res = {.err = -MESH_EDENIED};
        zconn_finish(zt, r->zc, &res);
        free(r);
        return;
    }

    /* In a pod, the app sees the client's own address (IP_TRANSPARENT; reference 2.4). */
    struct sock_opts o = hc->pod->dial;
    const struct ipaddr *from = NULL;
    if (hc->pod->netns_fd >= 0) {
        o.transparent = true;
        from = &hc->peer_ip;
    }
    zconn_set_pod(r->zc, hc->pod);
    r->dial = dial_start(zt->loop, &ip, port, from, &o, DIAL_TIMEOUT_MS, on_app_dialled, r);
    /* Hear about a reset while we dial, so the dial does not outlive its stream. */
    stream_set_handler(h2_stream_as_stream(st), on_stream_while_dialling, r);
    stream_want(h2_stream_as_stream(st), true, false);
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct hbone_conn *hc = arg;
    (void)s;

    /* Verification already ran inside the handshake; this is a second fence. */
    if (!hc->chk.have_peer)
        return -MESH_ETLS;
    hc->ready = true;
    hs_ticket_done(hc->ticket, true);
    hc->ticket = NULL;
    log_debug("HBONE from %s accepted", hc->chk.peer.uri);
    return 0;
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct hbone_conn *hc = arg;
    struct inbound *in = hc->in;
    char peer[ADDR_STRLEN];

    if (!hc->ready && !hc->guard_ended) {
        /* A peer can fail handshakes at will: a few lines a second per reason at most. */
        const char *why = hc->chk.why ? hc->chk.why : mesh_strerror(err);
        log_warn_rl(log_ratelimit_for(&in->rl_failed, why), "HBONE handshake from %s failed: %s",
                    ipport_str(&hc->peer_ip, hc->peer_port, peer), why);
    }
    hs_ticket_done(hc->ticket, false);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        in->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    in->n_conns--;
    zt_load_update(in->zt);
    h2_session_release(s);
    tls_creds_unref(hc->creds);
    zpod_unref(hc->pod);
    free(hc->local_uid);
    free(hc);
}

static const struct h2_session_cbs server_cbs = {
    .on_ready = on_ready,
    .on_request = on_request,
    .on_closed = on_closed,
};

/* The guard ended a handshake in progress (deadline, eviction). */
static void
on_session_guard_end(void *arg, enum hs_end why)
{
    struct hbone_conn *hc = arg;
    hc->ticket = NULL;
    hc->guard_ended = true;
    h2_session_close(hc->sess, why == HS_END_TIMEOUT ? -ETIMEDOUT : -ECONNABORTED);
}

/* Starts the handshake with |w|'s certificate |creds|. Takes |fd| and |ticket|. */
static void
start_session(struct zpod *pod, int fd, struct hs_ticket *ticket, const struct ipaddr *local,
              uint16_t lport, const struct ipaddr *peer, uint16_t peer_port,
              const struct workload *w, struct tls_creds *creds)
{
    struct zt *zt = pod->zt;
    struct inbound *in = zt->inbound;
    struct hbone_conn *hc = xcalloc(1, sizeof(*hc));
    hc->in = in;
    hc->local_ip = *local;
    hc->local_port = lport;
    hc->peer_ip = *peer;
    hc->peer_port = peer_port;
    hc->local_uid = xstrdup(w->uid);
    hc->pod = zpod_ref(pod);
    hc->creds = creds;
    tls_creds_ref(creds);
    /* Linked first: a session that fails at once reports to on_closed, which unlinks it. */
    hc->next = in->conns;
    if (in->conns)
        in->conns->prev = hc;
    in->conns = hc;
    in->n_conns++;
    zt_load_update(zt);
    hc->ticket = ticket;
    hs_ticket_rebind(ticket, on_session_guard_end, hc);
    hc->sess = hbone_server_start(zt->loop, fd, creds, &hc->chk, &server_cbs, hc);
    if (hc->sess == NULL) {
        hc->ticket = NULL;
        hs_ticket_done(ticket, false);
        if (hc->prev)
            hc->prev->next = hc->next;
        else
            in->conns = hc->next;
        if (hc->next)
            hc->next->prev = hc->prev;
        in->n_conns--;
        zt_load_update(zt);
        tls_creds_unref(creds);
        zpod_unref(hc->pod);
        free(hc->local_uid);
        free(hc);
    }
}

static void try_accept(struct held_accept *h);

/* Forgets |h| and its socket (closed unless |fd_taken|); its ticket is already settled. */
static void
held_free(struct held_accept *h, bool fd_taken)
{
    struct inbound *in = h->in;

    zwait_cancel(&h->wait);
    if (h->prev)
        h->prev->next = h->next;
    else
        in->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (!fd_taken)
        close(h->fd);
    zpod_unref(h->pod);
    free(h);
}

/* Gives up on |h| before its handshake started. */
static void
held_fail(struct held_accept *h)
{
    hs_ticket_done(h->ticket, false);
    held_free(h, false);
}

/* The guard ended |h| (deadline, eviction, or the peer left); it logged what matters. */
static void
on_held_guard_end(void *arg, enum hs_end why)
{
    (void)why;
    held_free(arg, false);
}

static void
on_held(void *arg, bool expired)
{
    struct held_accept *h = arg;
    char a[ADDR_STRLEN];
    if (expired) {
        log_warn_rl(&h->in->rl_unknown,
                    "HBONE connection to %s: workload or certificate not known in time",
                    ipport_str(&h->local, h->local_port, a));
        held_fail(h);
        return;
    }
    try_accept(h);
}

/*
 * The certificate served is that of the workload the connection arrived for
 * (its local address, or in-pod mode the pod). Until both are known the
 * connection waits (bounded), so a pod that was just enrolled is not refused.
 */
static void
try_accept(struct held_accept *h)
{
    struct zt *zt = h->pod->zt;
    char a[ADDR_STRLEN];

    const struct workload *w = zpod_workload(h->pod, &h->local);
    struct tls_creds *creds = NULL;
    if (w != NULL && w->tunnel == TUNNEL_HBONE)
        creds = certs_get(zt, w);
    if (creds != NULL && !zt->draining) {
        if (h->paused)
            hs_ticket_resume(h->ticket); /* the peer's turn again: a full deadline */
        start_session(h->pod, h->fd, h->ticket, &h->local, h->local_port, &h->peer, h->peer_port,
                      w, creds);
        held_free(h, true);
        return;
    }
    if (!zt->draining && !h->pod->gone && loop_now_ms(zt->loop) < h->deadline_ms &&
        (h->pod->netns_fd >= 0 || (w != NULL && w->tunnel == TUNNEL_HBONE))) {
        /* We are the ones waiting, not the peer: its handshake deadline stops meanwhile. */
        hs_ticket_pause(h->ticket);
        h->paused = true;
        zwait_start(zt, &h->wait, h->deadline_ms, on_held, h);
        return;
    }
    if (w == NULL || w->tunnel != TUNNEL_HBONE)
        log_warn_rl(&h->in->rl_unknown, "HBONE connection to %s: no local HBONE workload has this "
                    "address", ipport_str(&h->local, h->local_port, a));
    else
        log_warn_rl(&h->in->rl_unknown, "HBONE connection to %s: no certificate for %s",
                    ipport_str(&h->local, h->local_port, a), w->identity);
    held_fail(h);
}

/* The ClientHello record is complete: now it is worth finding a certificate. */
static void
on_first_record(void *arg)
{
    struct held_accept *h = arg;
    h->deadline_ms = loop_now_ms(h->in->zt->loop) + ZT_HOLD_MS;
    try_accept(h);
}

void
inbound_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct zpod *pod = arg;
    struct zt *zt = pod->zt;
    struct inbound *in = zt->inbound;
    struct held_accept *h = xcalloc(1, sizeof(*h));

    if (sock_local(fd, &h->local, &h->local_port) < 0) {
        close(fd);
        free(h);
        return;
    }
    h->ticket = hs_guard_admit(in->guard, peer, on_held_guard_end, h);
    if (h->ticket == NULL) {
        /* Over the per-source cap (the guard logged it): closed at once. */
        close(fd);
        free(h);
        return;
    }
    h->in = in;
    h->pod = zpod_ref(pod);
    h->fd = fd;
    h->peer = *peer;
    h->peer_port = peer_port;
    h->next = in->held;
    if (in->held)
        in->held->prev = h;
    in->held = h;
    hs_ticket_wait_record(h->ticket, fd, on_first_record);
}

struct inbound *
inbound_start(struct zt *zt)
{
    struct inbound *in = xcalloc(1, sizeof(*in));
    struct hs_guard_opts o = {
        .max_pending = zt->opts.hs_max_pending,
        .max_per_source = zt->opts.hs_max_per_source,
        .timeout_ms = zt->opts.hs_timeout_ms,
    };
    in->zt = zt;
    in->guard = hs_guard_new(zt->loop, "hbone", &o);
    in->rl_failed = (struct log_ratelimit_set)LOG_RATELIMIT_SET_INIT(1000, 5);
    in->rl_unknown = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000, 5);
    zt->inbound = in;
    return in;
}

const struct hs_guard_stats *
inbound_handshake_stats(const struct inbound *in)
{
    return hs_guard_stats(in->guard);
}

/* Connections whose handshake has not started close now (drain, exit). */
static void
close_held(struct inbound *in)
{
    while (in->held != NULL)
        held_fail(in->held);
}

void
inbound_drain(struct inbound *in)
{
    close_held(in);
    for (struct hbone_conn *hc = in->conns; hc != NULL; hc = hc->next)
        h2_session_shutdown(hc->sess);
}

size_t
inbound_n_sessions(const struct inbound *in)
{
    return in->n_conns;
}

void
inbound_abort(struct inbound *in)
{
    close_held(in);
    for (struct hbone_conn *hc = in->conns; hc != NULL; hc = hc->next)
        h2_session_close(hc->sess, -ECONNABORTED);
}

void
inbound_free(struct inbound *in)
{
    if (in == NULL)
        return;
    close_held(in);
    /* Sessions still open at exit stay reachable from here; they die with the process. */
    if (in->n_conns == 0) {
        hs_guard_free(in->guard);
        free(in);
    }
}
