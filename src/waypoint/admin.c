/*
 * admin.c - the waypoint's admin ports: 127.0.0.1:15000 (/config_dump, /logging), 15021
 * (/healthz/ready, on every address: the kubelet probes the pod IP) and 15020 (/metrics,
 * /stats/prometheus: telemetry.c).
 *
 * config_dump shows what this waypoint serves: the services and workloads bound to it (Istio's
 * workload API names, lib/model), the route tables (lib/route) and L7 policies (lib/l7policy)
 * in force, its certificate, and the xDS state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_SCOPE "admin"
#include "admin/admin_http.h"
#include "admin/admin_proxy.h"
#include "base/base.h"
#include "conn/hs_guard.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "model/model_json.h"
#include "telemetry.h"
#include "wp.h"

static struct admin_http *admin_srv, *ready_srv, *metrics_srv;

static char *
config_dump(struct wp *wp)
{
    json_t *root = json_object(), *ws = json_array(), *ss = json_array(), *cs = json_array();
    const struct model *m = wp->model;

    for (size_t i = 0; i < m->n_services; i++)
        if (wp_is_mine(wp, m->services[i]->waypoint))
            json_array_append_new(ss, model_service_json(m->services[i]));
    for (size_t i = 0; i < m->n_workloads; i++)
        if (wp_is_mine(wp, m->workloads[i]->waypoint))
            json_array_append_new(ws, model_workload_json(m->workloads[i]));
    json_object_set_new(root, "services", ss);
    json_object_set_new(root, "workloads", ws);
    json_t *routes = route_set_dump(wp->routes);
    json_object_set_new(root, "routes", json_incref(json_object_get(routes, "routes")));
    json_decref(routes);
    json_t *pols = l7pol_set_to_json(wp->policies);
    json_object_set_new(root, "policies", json_incref(json_object_get(pols, "policies")));
    json_decref(pols);
    certmgr_dump(wp->certs, cs);
    json_object_set_new(root, "certificates", cs);
    json_t *x = json_object();
    wp_config_dump(wp->config, x);
    json_object_set_new(root, "xds", x);
    json_object_set_new(root, "config",
                        json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "namespace", wp->opts.ns,
                                  "name", wp->opts.name, "identity", wp->identity, "mode",
                                  wp->opts.xds ? "xds" : "local", "ready", wp->ready,
                                  "connections", (json_int_t)wp->n_conns));
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
    admin_proxy_handle(req, r, dump_cb, arg);
}

static void
on_ready(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    struct wp *wp = arg;
    admin_proxy_ready(req, r, wp->ready);
}

static void
on_metrics(void *arg, const struct http1_req *req, struct admin_resp *r)
{
    struct wp *wp = arg;
    if (strcmp(req->path, "/metrics") != 0 && strcmp(req->path, "/stats/prometheus") != 0)
        return;
    if (strcmp(req->method, "GET") != 0) {
        r->status = 405;
        return;
    }
    r->status = 200;
    r->content_type = METRICS_CONTENT_TYPE;
    r->body = wp_telemetry_render(wp);
}

int
wp_admin_start(struct wp *wp, char *err, size_t errlen)
{
    struct ipaddr lo, any = {.family = AF_INET6}; /* [::], dual-stack */
    ipaddr_parse("127.0.0.1", &lo);
    admin_srv = admin_http_start(wp->loop, &lo, WP_PORT_ADMIN, 0, on_admin, wp, err, errlen);
    if (admin_srv == NULL)
        return -1;
    ready_srv = admin_http_start(wp->loop, &any, WP_PORT_READY, 0, on_ready, wp, err, errlen);
    if (ready_srv == NULL)
        return -1;
    metrics_srv = admin_http_start(wp->loop, &any, WP_PORT_METRICS, 0, on_metrics, wp, err, errlen);
    return metrics_srv ? 0 : -1;
}

void
wp_admin_stop(void)
{
    admin_http_stop(admin_srv);
    admin_http_stop(ready_srv);
    admin_http_stop(metrics_srv);
    admin_srv = ready_srv = metrics_srv = NULL;
}
