/*
 * l7_in.c - a CONNECT to a bound service port whose Route table says HTTP1, HTTP2 or GRPC: the
 * binary's side of the L7 engines (l7.h). hbone_in.c answers nothing yet; here the CONNECT
 * gets 200 and its stream goes to wp_http1_serve() or (HTTP2, GRPC: h2c inside the tunnel)
 * wp_http2_serve() with what the engine needs from the binary:
 *
 *   - the client: the HBONE peer's certificate identity and address;
 *   - the config in force: a new reference to the model, route set and policy set at each
 *     request (a config change applies to the next request);
 *   - upstream streams: HBONE from the waypoint's identity to endpoint:15008, :authority
 *     endpoint:targetPort, the endpoint's identity as the accepted server (pooled), or plain
 *     TCP for an endpoint outside the mesh;
 *   - the client's side of each request's report: metrics and one access-log line per
 *     request (telemetry.c).
 *
 * The connection holds a model reference for its whole life: the bound service it was given
 * must not be freed by a config update while the engine still reads it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "l7"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "hbone/hbone.h"
#include "l7.h"
#include "log/log.h"
#include "policy/policy.h"
#include "telemetry.h"
#include "wp.h"

struct wp_l7 {
    struct wp *wp;
    struct model *model; /* keeps |service| alive */
    struct spiffe_id peer_id;
    struct policy_peer peer;
    struct ipaddr local_ip;
    const char *detected; /* "http1" when sniffed (static), NULL when the Route declared it */
    struct wp_l7_conn lc;
};

/* One upstream connect(); the pool cannot cancel, so a late stream is closed here. */
struct wp_l7_up {
    struct wp_l7 *l;
    struct dial *dial;
    wp_upstream_fn *cb;
    void *arg;
    bool in_call, done_in_call, cancelled;
    int err;
};

static void
get_config(void *arg, struct model **m, struct route_set **r, struct l7pol_set **p)
{
    struct wp *wp = ((struct wp_l7 *)arg)->wp;
    model_ref(wp->model);
    *m = wp->model;
    *r = wp->routes != NULL ? route_set_ref(wp->routes) : NULL;
    *p = wp->policies != NULL ? l7pol_set_ref(wp->policies) : NULL;
}

/* Delivers |s| or |err| to the engine, unless it cancelled or we are inside connect(). */
static void
up_result(struct wp_l7_up *u, struct stream *s, int err)
{
    if (u->in_call) {
        if (s != NULL)
            stream_close(s, true);
        u->done_in_call = true;
        u->err = err < 0 ? err : -ECONNREFUSED;
        return;
    }
    if (u->cancelled) {
        if (s != NULL)
            stream_close(s, true);
    } else {
        u->cb(u->arg, s, s != NULL ? 0 : err);
    }
    free(u);
}

static void
on_up_hbone(void *arg, struct h2_stream *st, int status)
{
    struct wp_l7_up *u = arg;
    if (st != NULL && status == 200) {
        up_result(u, h2_stream_as_stream(st), 0);
        return;
    }
    if (st != NULL)
        stream_close(h2_stream_as_stream(st), true);
    up_result(u, NULL, status < 0 ? status : -ECONNREFUSED);
}

static void
on_up_dialled(void *arg, int fd)
{
    struct wp_l7_up *u = arg;
    u->dial = NULL;
    if (fd < 0)
        up_result(u, NULL, fd);
    else
        up_result(u, tcp_stream_new(u->l->wp->loop, fd), 0);
}

static void *
up_connect(void *ctx, const struct workload *ep, uint16_t port, wp_upstream_fn *cb, void *arg,
           int *err)
{
    struct wp_l7 *l = ctx;
    struct wp *wp = l->wp;
    const struct ipaddr *ip = workload_addr(ep, l->lc.dst_ip.family);
    if (ip == NULL || ip->family != l->lc.dst_ip.family) {
        *err = -EHOSTUNREACH;
        return NULL;
    }
    struct wp_l7_up *u = xcalloc(1, sizeof(*u));
    u->l = l;
    u->cb = cb;
    u->arg = arg;
    u->in_call = true;
    if (ep->tunnel != TUNNEL_HBONE) {
        struct sock_opts o = {0};
        u->dial = dial_start(wp->loop, ip, port, NULL, &o, DIAL_TIMEOUT_MS, on_up_dialled, u);
    } else {
        struct tls_creds *creds = certmgr_get(wp->certs, wp->identity);
        if (creds == NULL) {
            free(u);
            *err = -MESH_ENOIDENTITY;
            return NULL;
        }
        const struct service *svc = l->lc.service;
        const char *ids[1 + 16];
        size_t n_ids = 0;
        ids[n_ids++] = ep->identity;
        for (size_t i = 0; svc != NULL && i < svc->n_sans && n_ids < ARRAY_LEN(ids); i++)
            ids[n_ids++] = svc->sans[i];
        char authority[ADDR_STRLEN];
        ipport_str(ip, port, authority);
        struct hbone_headers h;
        hbone_headers_make(&h, &l->lc.client_ip, l->lc.client_port,
                           svc != NULL ? svc->hostname : NULL,
                           model_workload_by_ip(wp->model, &l->lc.client_ip), wp->opts.cluster);
        struct hbone_target ht = {
            .creds = creds,
            .dst_ids = ids,
            .n_dst_ids = n_ids,
            .src_ip = l->local_ip,
            .dst_ip = *ip,
            .dst_port = HBONE_PORT,
        };
        hbone_pool_connect(wp->pool, &ht, authority, h.h, h.n, on_up_hbone, u);
    }
    u->in_call = false;
    if (u->done_in_call) {
        *err = u->err;
        free(u);
        return NULL;
    }
    return u;
}

static void
up_cancel(void *ctx, void *handle)
{
    struct wp_l7_up *u = handle;
    (void)ctx;
    if (u->dial != NULL) {
        dial_cancel(u->dial);
        free(u);
        return;
    }
    u->cancelled = true; /* freed when the pool answers */
}

/* The engine's report, with what the binary knows of the client, to metrics and the log. */
static void
on_done(void *arg, const struct wp_request_info *ri)
{
    struct wp_l7 *l = arg;
    const struct wp_peer_ctx p = {
        .model = l->wp->model,
        .client_identity = l->peer_id.uri,
        .client_ip = l->lc.client_ip,
        .client_port = l->lc.client_port,
        .dst_ip = l->lc.dst_ip,
        .dst_port = l->lc.dst_port,
        .service = l->lc.service,
        .workload = l->lc.workload,
        .cluster = l->wp->opts.cluster,
    };
    wp_telemetry_request(&p, ri);
}

static void
on_closed(void *arg)
{
    struct wp_l7 *l = arg;
    l->wp->n_conns--;
    model_unref(l->model);
    free(l);
}

void
wp_l7_serve(struct wp *wp, struct h2_stream *down, const struct wp_target *t,
            const struct spiffe_id *peer, const struct ipaddr *src_ip, uint16_t src_port,
            const struct ipaddr *local_ip, const struct ipaddr *dst_ip, uint16_t dst_port)
{
    if (h2_stream_respond(down, 200, NULL, 0, false) < 0) {
        stream_close(h2_stream_as_stream(down), true);
        return;
    }
    wp_l7_serve_stream(wp, h2_stream_as_stream(down), t, t->protocol, NULL, peer, src_ip, src_port,
                       local_ip, dst_ip, dst_port);
}

void
wp_l7_serve_stream(struct wp *wp, struct stream *down, const struct wp_target *t,
                   enum route_protocol proto, const char *detected, const struct spiffe_id *peer,
                   const struct ipaddr *src_ip, uint16_t src_port, const struct ipaddr *local_ip,
                   const struct ipaddr *dst_ip, uint16_t dst_port)
{
    struct wp_l7 *l = xcalloc(1, sizeof(*l));
    l->wp = wp;
    model_ref(wp->model);
    l->model = wp->model;
    l->peer_id = *peer;
    l->peer = (struct policy_peer){l->peer_id.td, l->peer_id.ns, l->peer_id.sa};
    l->local_ip = *local_ip;
    l->detected = detected;
    l->lc = (struct wp_l7_conn){
        .loop = wp->loop,
        .client = &l->peer,
        .client_ip = *src_ip,
        .client_port = src_port,
        .dst_ip = *dst_ip,
        .dst_port = dst_port,
        .service = t->service,
        .workload = t->workload,
        .waypoint_ns = wp->opts.ns,
        .waypoint_name = wp->opts.name,
        .get_config = get_config,
        .config_arg = l,
        .path_mode = L7PATH_BASE,
        .up = {.connect = up_connect, .cancel = up_cancel, .ctx = l},
        .on_done = on_done,
        .on_closed = on_closed,
        .arg = l,
    };
    wp->n_conns++;
    /* The engine the protocol names: h2c (gRPC too) inside the tunnel, or HTTP/1.1. */
    if (proto == ROUTE_PROTO_HTTP2 || proto == ROUTE_PROTO_GRPC)
        wp_http2_serve(&l->lc, down);
    else
        wp_http1_serve(&l->lc, down);
}
