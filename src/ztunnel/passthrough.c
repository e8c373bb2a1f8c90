/*
 * passthrough.c - captured plaintext inbound on port 15006.
 *
 * A peer outside the mesh (or one without HBONE) connected to a local
 * workload and the kernel REDIRECTed it here. SO_ORIGINAL_DST gives the real
 * destination, which must be a workload of this node; there is no peer
 * identity, so policies that require one deny it (reference 5.1).
 *
 * Fail closed: nothing reaches the app without authorization against its
 * workload. In a pod's namespace the destination is that pod, whose workload
 * may not be in the model yet (the pod is starting, or its IP changed): the
 * connection is held, as outbound holds for an unknown source (wait.c), until
 * the model knows the workload, then authorized normally. It is reset when
 * the hold expires (ZT_HOLD_MS) or too many are held already (ZT_HOLD_MAX_PER_POD
 * for the pod, ZT_HOLD_MAX in all), and counted in
 * amesh_ztunnel_held_connections_refused_total. Istio refuses these too.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_SCOPE "inbound"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/tcp_stream.h"
#include "log/log.h"
#include "net/sock.h"
#include "ztunnel.h"

struct plain_conn {
    struct zt *zt;
    struct zpod *pod; /* the scope it was accepted in (the zconn holds the reference) */
    int client_fd;
    struct zconn *zc;
    uint64_t deadline_ms; /* how long it may wait for its workload */
    struct zwait wait;
    bool held;            /* counted in pod->n_plain_held */
};

static struct log_ratelimit hold_rl = LOG_RATELIMIT_INIT(10000, 1);

static void
unhold(struct plain_conn *p)
{
    zwait_cancel(&p->wait);
    if (p->held) {
        p->held = false;
        p->pod->n_plain_held--;
    }
}

static void
on_done(void *arg, const struct pipe_result *res)
{
    struct plain_conn *p = arg;
    zconn_finish(p->zt, p->zc, res);
    free(p);
}

/* Resets the client and ends |p| with |err| and |why| (and response flag |flag| if not NULL). */
static void
fail(struct plain_conn *p, int err, const char *why, const char *flag)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct pipe_result res = {.err = err};

    unhold(p);
    setsockopt(p->client_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(p->client_fd);
    p->zc->error = why;
    if (flag != NULL)
        zconn_set_flag(p->zc, flag);
    zconn_finish(p->zt, p->zc, &res);
    free(p);
}

static void
on_dialled(void *arg, int fd)
{
    struct plain_conn *p = arg;
    struct zt *zt = p->zt;

    zconn_dial_end(p->zc);
    if (fd < 0) {
        fail(p, fd, "connection to the workload failed", NULL);
        return;
    }
    /* Policies or the workload may have changed while we dialled (reference 5.4). */
    if (!zt_authz_recheck(zt, p->zc)) {
        close(fd);
        fail(p, -MESH_EDENIED, "connection closed due to policy change", "DENY");
        return;
    }
    struct stream *client = tcp_stream_new(zt->loop, p->client_fd);
    struct stream *app = tcp_stream_new(zt->loop, fd);
    if (client == NULL || app == NULL) {
        struct pipe_result res = {.err = -ENOMEM};
        if (client)
            stream_close(client, true);
        if (app)
            stream_close(app, true);
        zconn_finish(zt, p->zc, &res);
        free(p);
        return;
    }
    zconn_pipe_start(zt, p->zc, client, app, on_done, p);
}

/* The destination workload is known: authorize, then dial the app. */
static void
serve(struct plain_conn *p, const struct workload *w)
{
    struct zt *zt = p->zt;
    struct zconn *zc = p->zc;
    char reason[600];

    unhold(p);
    zconn_set(&zc->dst_workload, w->name);
    zconn_set(&zc->dst_ns, w->ns);
    zconn_set(&zc->dst_cluster, w->cluster_id ? w->cluster_id : zt->opts.cluster);
    zconn_set(&zc->dst_uid, w->uid);
    zc->authz_gen = zt->authz_gen;
    /* Plaintext has no identity: policies that require one deny it (reference 5.1). */
    if (!zt_authorize(zt, w, NULL, &zc->src_ip, &zc->dst_ip, zc->dst_port, reason,
                      sizeof(reason))) {
        log_info("connection closed due to policy rejection: %s", reason);
        fail(p, -MESH_EDENIED, "connection closed due to policy rejection", "DENY");
        return;
    }
    /* In a pod, the app sees the client's own address (IP_TRANSPARENT; reference 2.4). */
    struct sock_opts o = p->pod->dial;
    const struct ipaddr *from = NULL;
    if (p->pod->netns_fd >= 0) {
        o.transparent = true;
        from = &zc->src_ip;
    }
    if (!zconn_dial_begin(zc)) {
        fail(p, -ENOBUFS, "the destination pod is at its limit of dials in progress", NULL);
        return;
    }
    dial_start(zt->loop, &zc->dst_ip, zc->dst_port, from, &o, DIAL_TIMEOUT_MS, on_dialled, p);
}

/* Resets |p|, held for a workload that did not come (|why|: "expired" or "cap"). */
static void
refuse_unknown(struct plain_conn *p, const char *why)
{
    char src[ADDR_STRLEN], dst[ADDR_STRLEN];

    zt_metrics_hold_refused("inbound-plaintext", why);
    log_warn_rl(&hold_rl,
                "plaintext %s -> %s refused: the destination's workload is not known (%s; %zu "
                "held for pod %s/%s)",
                ipport_str(&p->zc->src_ip, p->zc->src_port, src),
                ipport_str(&p->zc->dst_ip, p->zc->dst_port, dst),
                why[0] == 'e' ? "not in time" : "too many held", p->pod->n_plain_held,
                p->pod->ns ? p->pod->ns : "-", p->pod->name ? p->pod->name : "-");
    fail(p, -EHOSTUNREACH, "destination workload not known", NULL);
}

static void route(struct plain_conn *p);

static void
on_wait(void *arg, bool expired)
{
    struct plain_conn *p = arg;
    if (expired) {
        refuse_unknown(p, "expired");
        return;
    }
    route(p);
}

/* The destination's workload is known: serve; not yet: hold (bounded). */
static void
route(struct plain_conn *p)
{
    struct zt *zt = p->zt;
    struct zpod *pod = p->pod;

    if (pod->gone) {
        fail(p, -ECONNABORTED, "pod deleted", NULL);
        return;
    }
    /* In a pod's namespace every captured connection is for that pod (the REDIRECT is there). */
    const struct workload *w = zpod_workload(pod, &p->zc->dst_ip);
    if (w != NULL) {
        serve(p, w); /* also while draining: it was accepted, the client is waiting */
        return;
    }
    if (zt->draining) {
        fail(p, -ECONNABORTED, "draining", NULL); /* nothing may wait any more */
        return;
    }
    if (loop_now_ms(zt->loop) >= p->deadline_ms) {
        refuse_unknown(p, "expired");
        return;
    }
    if (!p->held && (pod->n_plain_held >= zt_share(zt, ZT_HOLD_MAX_PER_POD) || !zwait_room(zt, &p->wait))) {
        refuse_unknown(p, "cap");
        return;
    }
    if (!p->held) {
        p->held = true;
        pod->n_plain_held++;
    }
    zwait_start(zt, &p->wait, p->deadline_ms, on_wait, p);
}

void
passthrough_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct zpod *pod = arg;
    struct zt *zt = pod->zt;
    struct ipaddr odst;
    uint16_t oport;

    if (!zt_accept_orig_dst(pod, fd, "inbound-plaintext", peer, peer_port, &odst, &oport))
        return;
    /*
     * Only this node's workloads are served here; anything else would be an open relay or a
     * loop. In a pod's namespace the REDIRECT only ever catches traffic for that pod, which
     * may be held until its workload arrives from xDS.
     */
    if ((pod->netns_fd < 0 && zt_local_workload(zt, &odst) == NULL) || zt_is_own_port(oport)) {
        log_debug("plaintext inbound to a non-local destination refused");
        close(fd);
        return;
    }
    struct plain_conn *p = xcalloc(1, sizeof(*p));
    p->zt = zt;
    p->pod = pod;
    p->client_fd = fd;
    p->deadline_ms = loop_now_ms(zt->loop) + ZT_HOLD_MS;
    p->zc = zconn_new(zt, true);
    zconn_set_pod(p->zc, pod);
    p->zc->src_ip = *peer;
    p->zc->src_port = peer_port;
    p->zc->dst_ip = odst;
    p->zc->dst_port = oport;
    if (pod->name != NULL) {
        zconn_set(&p->zc->dst_workload, pod->name);
        zconn_set(&p->zc->dst_ns, pod->ns);
    }
    const struct workload *src = model_workload_by_ip(zt->model, peer);
    if (src != NULL) {
        zconn_set(&p->zc->src_workload, src->name);
        zconn_set(&p->zc->src_ns, src->ns);
        zconn_set(&p->zc->src_cluster, src->cluster_id ? src->cluster_id : zt->opts.cluster);
    }
    if (!zconn_admit(zt, p->zc, pod, &odst)) {
        fail(p, -ENOBUFS, "the destination pod is at its limit of connections", NULL);
        return;
    }
    route(p);
}
