/*
 * passthrough.c - captured plaintext inbound on port 15006.
 *
 * A peer outside the mesh (or one without HBONE) connected to a local
 * workload and the kernel REDIRECTed it here. SO_ORIGINAL_DST gives the real
 * destination, which must be a workload of this node; there is no peer
 * identity (policy requiring one will deny these in the policy issue).
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
    int client_fd;
    struct zconn *zc;
};

static void
on_done(void *arg, const struct pipe_result *res)
{
    struct plain_conn *p = arg;
    zconn_finish(p->zt, p->zc, res);
    free(p);
}

static void
on_dialled(void *arg, int fd)
{
    struct plain_conn *p = arg;
    struct zt *zt = p->zt;

    if (fd < 0) {
        struct pipe_result res = {.err = fd};
        close(p->client_fd);
        p->zc->error = "connection to the workload failed";
        zconn_finish(zt, p->zc, &res);
        free(p);
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
    p->zc->pipe = pipe_start(zt->loop, client, app, zt->opts.pipe_buf, on_done, p);
}

void
passthrough_accept(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    struct zpod *pod = arg;
    struct zt *zt = pod->zt;
    struct ipaddr odst;
    uint16_t oport;

    if (zt->draining) {
        close(fd);
        return;
    }
    if (!zt_accept_orig_dst(pod, fd, "inbound-plaintext", peer, peer_port, &odst, &oport))
        return;
    /*
     * Only this node's workloads are served here; anything else would be an open relay or a
     * loop. In a pod's namespace the REDIRECT only ever catches traffic for that pod, which
     * may be served before its workload arrives from xDS.
     */
    const struct workload *w = zt_local_workload(zt, &odst);
    if ((w == NULL && pod->netns_fd < 0) || zt_is_own_port(oport)) {
        log_debug("plaintext inbound to a non-local destination refused");
        close(fd);
        return;
    }
    struct plain_conn *p = xcalloc(1, sizeof(*p));
    p->zt = zt;
    p->client_fd = fd;
    p->zc = zconn_new(zt, true);
    zconn_set_pod(p->zc, pod);
    p->zc->src_ip = *peer;
    p->zc->src_port = peer_port;
    p->zc->dst_ip = odst;
    p->zc->dst_port = oport;
    if (w != NULL) {
        zconn_set(&p->zc->dst_workload, w->name);
        zconn_set(&p->zc->dst_ns, w->ns);
        zconn_set(&p->zc->dst_cluster, w->cluster_id ? w->cluster_id : zt->opts.cluster);
    } else if (pod->name != NULL) {
        zconn_set(&p->zc->dst_workload, pod->name);
        zconn_set(&p->zc->dst_ns, pod->ns);
    }
    const struct workload *src = model_workload_by_ip(zt->model, peer);
    if (src != NULL) {
        zconn_set(&p->zc->src_workload, src->name);
        zconn_set(&p->zc->src_ns, src->ns);
        zconn_set(&p->zc->src_cluster, src->cluster_id ? src->cluster_id : zt->opts.cluster);
    }
    /* Plaintext has no identity: policies that require one deny it (reference 5.1). */
    char reason[600];
    if (w != NULL) {
        zconn_set(&p->zc->dst_uid, w->uid);
        if (!zt_authorize(zt, w, NULL, peer, &odst, oport, reason, sizeof(reason))) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            log_info("connection closed due to policy rejection: %s", reason);
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            close(fd);
            zconn_set_flag(p->zc, "DENY");
            p->zc->error = "connection closed due to policy rejection";
            struct pipe_result res = {.err = -MESH_EDENIED};
            zconn_finish(zt, p->zc, &res);
            free(p);
            return;
        }
    }
    /* In a pod, the app sees the client's own address (IP_TRANSPARENT; reference 2.4). */
    struct sock_opts o = pod->dial;
    const struct ipaddr *from = NULL;
    if (pod->netns_fd >= 0) {
        o.transparent = true;
        from = peer;
    }
    dial_start(zt->loop, &odst, oport, from, &o, DIAL_TIMEOUT_MS, on_dialled, p);
}
