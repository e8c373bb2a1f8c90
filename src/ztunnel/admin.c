/*
 * admin.c - admin endpoints: 15000 on localhost (/config_dump, /logging) and
 * 15021 on every address (/healthz/ready).
 *
 * config_dump renders the model in the proto3 JSON names of Istio's workload
 * API, plus certificates and live connections, so meshctl can read it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_SCOPE "admin"
#include "admin/admin_http.h"
#include "admin/admin_proxy.h"
#include "hbone/hbone.h"
#include "base/base.h"
#include "log/log.h"
#include "model/model_json.h"
#include "net/sock.h"
#include "policy/policy.h"
#include "ztunnel.h"

static struct admin_http *admin_srv, *ready_srv;

static void
set_str(json_t *o, const char *k, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, k, json_string(v));
}

/* On worker |zt|'s thread (workers_each): its connections into the array |arg|. */
static void
connections_json(struct zt *zt, void *arg)
{
    json_t *a = arg;
    char src[ADDR_STRLEN], dst[ADDR_STRLEN], actual[ADDR_STRLEN];
    for (const struct zconn *c = zt->conns; c != NULL; c = c->next) {
        uint64_t ab = 0, ba = 0;
        if (c->pipe)
            pipe_counts(c->pipe, &ab, &ba);
        /* Outbound HBONE: dst is the target the tunnel asks for, actualDst the peer's 15008. */
        bool tunnel_out = c->mtls && !c->inbound && c->hbone_port != 0;
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "direction",
                              c->inbound ? "inbound" : "outbound", "protocol",
                              c->mtls ? "HBONE" : "TCP", "src",
                              ipport_str(&c->src_ip, c->src_port, src), "dst",
                              tunnel_out ? ipport_str(&c->hbone_ip, c->hbone_port, dst)
                                         : ipport_str(&c->dst_ip, c->dst_port, dst),
                              "bytesSent", (json_int_t)ab, "bytesRecv", (json_int_t)ba);
        if (tunnel_out)
            set_str(o, "actualDst", ipport_str(&c->dst_ip, c->dst_port, actual));
        set_str(o, "srcIdentity", c->mtls ? c->src_identity : NULL);
        set_str(o, "dstIdentity", c->mtls ? c->dst_identity : NULL);
        json_object_set_new(o, "worker", json_integer(zt->id));
        json_array_append_new(a, o);
    }
}

/* On worker |zt|'s thread: what /debug/workers shows of it. */
static void
worker_json(struct zt *zt, void *arg)
{
    json_array_append_new(
        arg, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "worker", (int)zt->id,
                       "connections", (json_int_t)zt->n_conns, "inbound_sessions",
                       (json_int_t)inbound_n_sessions(zt->inbound), "pool_connections",
                       (json_int_t)hbone_pool_n_conns(zt->pool), "model_version",
                       (json_int_t)zt->model_version, "policy_version",
                       (json_int_t)zt->policy_version, "handed_off",
                       (json_int_t)atomic_load(&zt->handed_off), "pods", (json_int_t)zt->n_pods));
}

static char *
config_dump(struct zt *zt)
{
    json_t *root = json_object(), *ws = json_array(), *ss = json_array(), *cs = json_array();

    for (size_t i = 0; i < zt->model->n_workloads; i++)
        json_array_append_new(ws, model_workload_json(zt->model->workloads[i]));
    for (size_t i = 0; i < zt->model->n_services; i++)
        json_array_append_new(ss, model_service_json(zt->model->services[i]));
    certs_dump(zt->certs, cs);
    json_object_set_new(root, "workloads", ws);
    json_object_set_new(root, "services", ss);
    json_t *ps = json_array();
    for (size_t i = 0; zt->policies != NULL && i < policy_set_count(zt->policies); i++)
        json_array_append_new(ps, policy_to_json(policy_set_at(zt->policies, i)));
    json_object_set_new(root, "policies", ps);
    json_object_set_new(root, "certificates", cs);
    if (zt->xds != NULL) {
        json_t *x = json_object();
        xds_dump(zt->xds, x);
        json_object_set_new(root, "xds", x);
    }
    json_t *conns = json_array();
    workers_each(zt, connections_json, conns);
    json_object_set_new(root, "connections", conns);
    json_object_set_new(root, "config",
                        json_pack("{s:s, s:s, s:b}", "node", zt->opts.node, "mode",
                                  zt->opts.xds ? "xds" : "local",
                                  "ready", zt->ready));
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    char *out = xasprintf("%s\n", s);
    free(s);
    return out;
}

static char *
dump_cb(void *arg)
{
    return config_dump(arg);
}

static void
on_admin(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    if (strcmp(req->path, "/debug/workers") == 0 && strcmp(req->method, "GET") == 0) {
        json_t *a = json_array();
        workers_each(arg, worker_json, a);
        char *s = json_dumps(a, JSON_INDENT(2));
        json_decref(a);
        r->status = 200;
        r->content_type = "application/json";
        r->body = xasprintf("%s\n", s);
        free(s);
        return;
    }
    admin_proxy_handle(req, r, dump_cb, arg);
}

static void
on_ready(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    struct zt *zt = arg;
    admin_proxy_ready(req, r, zt->ready);
}

int
admin_start(struct zt *zt, char *err, size_t errlen)
{
    struct ipaddr lo, any;

    ipaddr_parse("127.0.0.1", &lo);
    admin_srv = admin_http_start(zt->loop, &lo, ZT_PORT_ADMIN, SOCK_MARK_ZTUNNEL,
                                 on_admin, zt, err, errlen);
    if (admin_srv == NULL)
        return -1;
    /* Readiness on every address, as Istio's ztunnel: a kubelet probes the pod's IP. It
     * tells only ready or not; the admin port (config, log levels) stays on loopback. */
    ipaddr_parse("::", &any);
    ready_srv = admin_http_start(zt->loop, &any, ZT_PORT_READY, SOCK_MARK_ZTUNNEL,
                                 on_ready, zt, err, errlen);
    return ready_srv ? 0 : -1;
}

void
admin_stop(void)
{
    admin_http_stop(admin_srv);
    admin_http_stop(ready_srv);
    admin_srv = ready_srv = NULL;
}
