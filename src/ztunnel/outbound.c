/*
 * outbound.c - captured outbound connections on port 15001.
 *
 * The kernel REDIRECTed the app's connect to us; SO_ORIGINAL_DST gives what
 * it dialled. We resolve it (reference 3.7): a service VIP picks a healthy
 * endpoint and its target port, else a workload IP, else the destination is
 * outside the mesh and we pass the bytes through as plain TCP. HBONE
 * endpoints get a CONNECT on a pooled mTLS connection to <endpoint>:15008.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#define LOG_SCOPE "outbound"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "net/sock.h"
#include "ztunnel.h"

struct outbound_conn {
    struct zt *zt;
    struct zpod *pod; /* the scope it was accepted in (the zconn holds the reference) */
    int client_fd;
    struct zconn *zc;
    struct dial *dial;
    struct ipaddr odst;
    uint16_t oport;
    uint64_t deadline_ms; /* how long it may wait for its workload or certificate */
    struct zwait wait;
    /* Through a waypoint: the replica tried, and whether another one was tried already. */
    bool via_wp, wp_rerouted;
    struct ipaddr wp_ip;
    uint16_t wp_port;
};

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct outbound_conn *o = arg;
    zconn_finish(o->zt, o->zc, res);
    free(o);
}

static void
fail(struct outbound_conn *o, int err, const char *why)
{
    struct pipe_result res = {.err = err};
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    zwait_cancel(&o->wait);
    /* Reset, so the app sees a failed connection rather than an empty answer. */
    setsockopt(o->client_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(o->client_fd);
    o->zc->error = why;
    zconn_finish(o->zt, o->zc, &res);
    free(o);
}

static void
start_pipe(struct outbound_conn *o, struct stream *upstream)
{
    struct stream *client = tcp_stream_new(o->zt->loop, o->client_fd);
    if (client == NULL) {
        stream_close(upstream, true);
        fail(o, -ENOMEM, "out of memory");
        return;
    }
    /* a = the app (client), b = upstream: a_to_b counts bytes sent to the destination. */
    zconn_pipe_start(o->zt, o->zc, client, upstream, on_pipe_done, o);
}

static void route(struct outbound_conn *o);
static struct log_ratelimit waypoint_rl = LOG_RATELIMIT_INIT(10000, 5);

static void
on_hbone_response(void *arg, struct h2_stream *st, int status)
{
    struct outbound_conn *o = arg;

    zconn_dial_end(o->zc);
    if (st == NULL || status != 200) {
        if (st != NULL)
            stream_close(h2_stream_as_stream(st), true);
        if (o->via_wp && status < 0) {
            /* The replica is unreachable (a connection failure, no answer): nothing was sent,
             * so another replica may take this connection, once. */
            zt_waypoint_failed(o->zt, &o->wp_ip, o->wp_port);
            if (!o->wp_rerouted) {
                char a[ADDR_STRLEN];
                log_warn_rl(&waypoint_rl, "waypoint replica %s unreachable (%s): passed over for %d s, "
                            "this connection goes to another", ipport_str(&o->wp_ip, o->wp_port, a),
                            mesh_strerror(status), ZT_WAYPOINT_AVOID_MS / 1000);
                o->wp_rerouted = true;
                route(o);
                return;
            }
        }
        log_debug("HBONE CONNECT failed: %s",
                  status < 0 ? mesh_strerror(status) : (status == 503 ? "http status: 503" : "http status"));
        fail(o, status < 0 ? status : -ECONNREFUSED,
             status < 0 ? "HBONE connection failed" : "HBONE CONNECT refused by the destination");
        return;
    }
    start_pipe(o, h2_stream_as_stream(st));
}

static void
on_plain_dialled(void *arg, int fd)
{
    struct outbound_conn *o = arg;

    o->dial = NULL;
    zconn_dial_end(o->zc);
    if (fd < 0) {
        fail(o, fd, "connection to the destination failed");
        return;
    }
    struct stream *up = tcp_stream_new(o->zt->loop, fd);
    if (up == NULL) {
        fail(o, -ENOMEM, "out of memory");
        return;
    }
    start_pipe(o, up);
}

/*
 * A CONNECT for |authority| over a pooled mTLS connection to |ip|:|port| whose server must be
 * one of |ids|; |svc| (the service dialled, if any) names the forwarded host.
 */
static void
start_hbone(struct outbound_conn *o, const struct workload *src, struct tls_creds *creds,
            const char *const *ids, size_t n_ids, const struct ipaddr *ip, uint16_t port,
            const char *authority, const struct service *svc)
{
    struct zt *zt = o->zt;
    struct hbone_headers h;

    if (!zconn_dial_begin(o->zc)) {
        fail(o, -ENOBUFS, "the source pod is at its limit of dials in progress");
        return;
    }
    hbone_headers_make(&h, &o->zc->src_ip, o->zc->src_port, svc ? svc->hostname : NULL, src,
                       zt->opts.cluster);
    struct hbone_target t = {
        .creds = creds,
        .dst_ids = ids,
        .n_dst_ids = n_ids,
        .src_ip = o->zc->src_ip,
        .dst_ip = *ip,
        .dst_port = port,
        .dial = &o->pod->dial,
    };
    o->zc->mtls = true;
    o->zc->dst_ip = *ip;
    o->zc->dst_port = port;
    hbone_pool_connect(zt->pool, &t, authority, h.h, h.n, on_hbone_response, o);
}

/* Expected server identities: a workload's own plus its service's SANs. */
static size_t
expected_ids(const struct workload *w, const struct service *svc, const char **ids, size_t cap)
{
    size_t n = 0;
    ids[n++] = w->identity;
    for (size_t i = 0; svc != NULL && i < svc->n_sans && n < cap; i++)
        ids[n++] = svc->sans[i];
    return n;
}

static void route(struct outbound_conn *o);
static bool hold(struct outbound_conn *o);

/*
 * Through the waypoint: HBONE to the chosen replica, :authority the original destination
 * (service VIP:port or pod IP:port), the server the replica's identity (waypoint.md 1).
 */
static void
via_waypoint(struct outbound_conn *o, const struct workload *src, const struct service *svc,
             const struct zt_waypoint *wp)
{
    struct tls_creds *creds = certs_get(o->zt, src);
    if (creds == NULL) {
        if (hold(o))
            return;
        fail(o, -MESH_ENOIDENTITY, "no certificate for the source workload");
        return;
    }
    const struct workload *w = wp->workload;
    zconn_set(&o->zc->dst_workload, w->name);
    zconn_set(&o->zc->dst_ns, w->ns);
    zconn_set(&o->zc->dst_cluster, w->cluster_id ? w->cluster_id : o->zt->opts.cluster);
    zconn_set(&o->zc->dst_identity, w->identity);
    const char *ids[1 + 16];
    size_t n_ids = expected_ids(w, wp->service, ids, ARRAY_LEN(ids));
    char authority[ADDR_STRLEN];
    ipport_str(&o->odst, o->oport, authority);
    o->zc->hbone_ip = o->odst;
    o->zc->hbone_port = o->oport;
    o->via_wp = true;
    o->wp_ip = *wp->ip;
    o->wp_port = wp->port;
    start_hbone(o, src, creds, ids, n_ids, wp->ip, wp->port, authority, svc);
}

static void
on_wait(void *arg, bool expired)
{
    struct outbound_conn *o = arg;
    if (expired) {
        zt_metrics_hold_refused("outbound", "expired");
        fail(o, -MESH_ENOIDENTITY, "source workload or its certificate not known in time");
        return;
    }
    route(o);
}

/* Parks |o| until the model or a certificate changes; false past its deadline or the cap. */
static bool
hold(struct outbound_conn *o)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 1);

    if (loop_now_ms(o->zt->loop) >= o->deadline_ms)
        return false;
    if (!zwait_room(o->zt, &o->wait)) {
        zt_metrics_hold_refused("outbound", "cap");
        log_warn_rl(&rl, "outbound: %zu connections already held: refusing another", o->zt->n_waiters);
        return false;
    }
    zwait_start(o->zt, &o->wait, o->deadline_ms, on_wait, o);
    return true;
}

/* Resolves the original destination (reference 3.7) and connects; may hold first. */
static void
route(struct outbound_conn *o)
{
    struct zt *zt = o->zt;
    const struct ipaddr *peer = &o->zc->src_ip;
    const struct ipaddr odst = o->odst;
    uint16_t oport = o->oport;
    char a[ADDR_STRLEN], a2[ADDR_STRLEN];

    const struct workload *src = zpod_workload(o->pod, peer);
    if (src == NULL) {
        /* In-pod mode the pod is ours for sure: its workload may simply not be here yet. */
        if (o->pod->netns_fd >= 0 && hold(o))
            return;
        log_warn("outbound from %s: not a workload of node %s",
                 ipport_str(peer, o->zc->src_port, a), zt->opts.node);
        fail(o, -MESH_ENOIDENTITY, "unknown source");
        return;
    }
    zconn_set(&o->zc->src_workload, src->name);
    zconn_set(&o->zc->src_ns, src->ns);
    zconn_set(&o->zc->src_cluster, src->cluster_id ? src->cluster_id : zt->opts.cluster);
    zconn_set(&o->zc->src_identity, src->identity);

    if (zt_local_workload(zt, &odst) == src && zt_is_own_port(oport)) {
        fail(o, -ELOOP, "destination is ztunnel itself");
        return;
    }

    /* 0. A bound waypoint; 1. Service VIP -> endpoint; 2. workload IP; 3. passthrough. */
    const struct workload *dst = NULL;
    const struct ipaddr *dst_ip = &odst;
    uint16_t port = oport;
    const struct service *svc = model_service_by_vip(zt->model, &odst);
    if (svc == NULL)
        dst = model_workload_by_ip(zt->model, &odst);
    if (svc != NULL || dst != NULL) {
        struct zt_waypoint wp;
        int rc = zt_waypoint_route(zt, src, svc, dst, odst.family, &wp);
        if (svc != NULL)
            zconn_set(&o->zc->dst_service, svc->hostname);
        if (rc < 0) {
            log_warn_rl(&waypoint_rl, "outbound %s -> %s: %s %s: refused (never sent around it)",
                        ipport_str(peer, o->zc->src_port, a), ipport_str(&odst, oport, a2),
                        wp.why, wp.name);
            fail(o, -EHOSTUNREACH, wp.why);
            return;
        }
        if (rc > 0) {
            via_waypoint(o, src, svc, &wp);
            return;
        }
    }
    if (svc != NULL) {
        uint32_t seed;
        RAND_bytes((unsigned char *)&seed, sizeof(seed));
        zconn_set(&o->zc->dst_service, svc->hostname);
        dst = model_pick_endpoint(zt->model, svc, oport, odst.family, seed, &port);
        if (dst == NULL) {
            fail(o, -EHOSTUNREACH, "no healthy upstream");
            return;
        }
        dst_ip = workload_addr(dst, odst.family);
    }
    if (dst != NULL) {
        zconn_set(&o->zc->dst_workload, dst->name);
        zconn_set(&o->zc->dst_ns, dst->ns);
        zconn_set(&o->zc->dst_cluster, dst->cluster_id ? dst->cluster_id : zt->opts.cluster);
        zconn_set(&o->zc->dst_identity, dst->identity);
    }
    if (dst != NULL && dst->tunnel == TUNNEL_HBONE) {
        struct tls_creds *creds = certs_get(zt, src);
        if (creds == NULL) {
            /* certs_get() asked the CA; the answer wakes us. */
            if (hold(o))
                return;
            fail(o, -MESH_ENOIDENTITY, "no certificate for the source workload");
            return;
        }
        const char *ids[1 + 16];
        size_t n_ids = expected_ids(dst, svc, ids, ARRAY_LEN(ids));
        char authority[ADDR_STRLEN];
        struct ipaddr ip = *dst_ip;
        ipport_str(&ip, port, authority);
        o->zc->hbone_ip = ip;
        o->zc->hbone_port = port;
        start_hbone(o, src, creds, ids, n_ids, &ip, ZT_PORT_HBONE, authority, svc);
        return;
    }
    /* Plain TCP: a non-mesh workload or a destination outside the mesh. */
    o->zc->dst_ip = *dst_ip;
    o->zc->dst_port = port;
    if (!zconn_dial_begin(o->zc)) {
        fail(o, -ENOBUFS, "the source pod is at its limit of dials in progress");
        return;
    }
    o->dial = dial_start(zt->loop, dst_ip, port, NULL, &o->pod->dial, DIAL_TIMEOUT_MS,
                         on_plain_dialled, o);
}

void
outbound_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct zpod *pod = arg;
    struct zt *zt = pod->zt;
    struct ipaddr odst;
    uint16_t oport;

    if (!zt_accept_orig_dst(pod, fd, "outbound", peer, peer_port, &odst, &oport))
        return;
    struct outbound_conn *o = xcalloc(1, sizeof(*o));
    o->zt = zt;
    o->pod = pod;
    o->client_fd = fd;
    o->odst = odst;
    o->oport = oport;
    o->deadline_ms = loop_now_ms(zt->loop) + ZT_HOLD_MS;
    o->zc = zconn_new(zt, false);
    zconn_set_pod(o->zc, pod);
    o->zc->src_ip = *peer;
    o->zc->src_port = peer_port;
    o->zc->dst_ip = odst;
    o->zc->dst_port = oport;
    if (!zconn_admit(zt, o->zc, pod, peer)) {
        fail(o, -ENOBUFS, "the source pod is at its limit of connections");
        return;
    }
    route(o);
}
