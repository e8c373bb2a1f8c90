/*
 * config.c - what the waypoint serves, from meshd over lib/ads (Address, amesh.waypoint.v1
 * Route and Policy, each response applied whole) or from a local file (workloads and
 * services as ztunnel's local config).
 *
 * The local file's `routes:` and `waypointPolicies:` go through the same decoders
 * (lib/config local_waypoint.c). A refused resource NACKs the response with the decoder's one line and keeps its previous
 * version; the others of the response apply (lib/ads). The waypoint keeps a reference to the
 * current model, route set and policy set; a connection takes its own when it starts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_SCOPE "config"
#include "ads/ads.h"
#include "base/base.h"
#include "config/local_config.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "model/model_store.h"
#include "wp.h"

#define WP_MAX_PENDING 100000 /* resources of one response (lib/ads caps the message too) */

struct pending_route {
    char *name;
    uint8_t *data; /* NULL: removed */
    size_t len;
};

struct wp_config {
    struct wp *wp;
    struct ads *ads;
    struct model_store *store;
    struct route_store routes;
    struct pending_route *rt;
    size_t n_rt, cap_rt;
    struct l7pol **pol_add;
    size_t n_add, cap_add;
    char **pol_remove;
    size_t n_remove, cap_remove;
    char reject[512];
};

static void
set_model(struct wp *wp, struct model *m)
{
    struct model *old = wp->model;
    wp->model = m;
    model_unref(old);
}

/* ---- istio.workload.Address ---------------------------------------------- */

static const char *
address_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct wp_config *c = arg;
    if (model_store_put(c->store, name, bytes, len, c->reject, sizeof(c->reject)) < 0)
        return c->reject;
    return NULL;
}

static const char *
address_remove(void *arg, const char *name)
{
    struct wp_config *c = arg;
    model_store_remove(c->store, name);
    return NULL;
}

static void
address_commit(void *arg)
{
    struct wp_config *c = arg;
    struct model *m = model_store_snapshot(c->store);
    if (m == c->wp->model) {
        model_unref(m);
        return;
    }
    set_model(c->wp, m);
    log_info("xDS: %zu workloads, %zu services", m->n_workloads, m->n_services);
}

/* ---- amesh.waypoint.v1.Route --------------------------------------------- */

static const char *
route_add(struct wp_config *c, const char *name, const uint8_t *bytes, size_t len)
{
    if (c->n_rt == WP_MAX_PENDING)
        return "too many routes in one response";
    if (c->n_rt == c->cap_rt) {
        c->cap_rt = c->cap_rt ? 2 * c->cap_rt : 16;
        c->rt = xrealloc(c->rt, c->cap_rt * sizeof(*c->rt));
    }
    struct pending_route *p = &c->rt[c->n_rt++];
    p->name = xstrdup(name);
    p->data = NULL;
    p->len = len;
    if (bytes != NULL) {
        p->data = xmalloc(len ? len : 1);
        memcpy(p->data, bytes, len);
    }
    return NULL;
}

static const char *
route_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct wp_config *c = arg;
    struct route_table *t;
    /* Checked here so that only this resource is refused; the store decodes it again. */
    if (route_decode(bytes, len, &t, c->reject, sizeof(c->reject)) < 0)
        return c->reject;
    bool same = strcmp(route_table_key(t), name) == 0;
    route_table_unref(t);
    if (!same) {
        snprintf(c->reject, sizeof(c->reject), "route %s: name does not match its service port",
                 name);
        return c->reject;
    }
    return route_add(c, name, bytes, len);
}

static const char *
route_remove(void *arg, const char *name)
{
    return route_add(arg, name, NULL, 0);
}

static void
route_commit(void *arg)
{
    struct wp_config *c = arg;
    if (c->n_rt == 0)
        return;
    struct route_update *u = xcalloc(c->n_rt, sizeof(*u));
    for (size_t i = 0; i < c->n_rt; i++)
        u[i] = (struct route_update){c->rt[i].name, c->rt[i].data, c->rt[i].len};
    if (route_store_apply(&c->routes, u, c->n_rt, c->reject, sizeof(c->reject)) < 0)
        log_warn("routes not applied: %s", c->reject); /* each was checked: not expected */
    free(u);
    for (size_t i = 0; i < c->n_rt; i++) {
        free(c->rt[i].name);
        free(c->rt[i].data);
    }
    c->n_rt = 0;
    route_set_unref(c->wp->routes);
    c->wp->routes = route_store_get(&c->routes);
    log_debug("%zu route tables", route_set_count(c->wp->routes));
}

/* ---- amesh.waypoint.v1.Policy -------------------------------------------- */

static const char *
policy_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct wp_config *c = arg;
    struct l7pol *p;
    (void)name;
    if (c->n_add == WP_MAX_PENDING)
        return "too many policies in one response";
    if (l7pol_decode(bytes, len, &p, c->reject, sizeof(c->reject)) < 0)
        return c->reject;
    if (c->n_add == c->cap_add) {
        c->cap_add = c->cap_add ? 2 * c->cap_add : 16;
        c->pol_add = xrealloc(c->pol_add, c->cap_add * sizeof(*c->pol_add));
    }
    c->pol_add[c->n_add++] = p;
    return NULL;
}

static const char *
policy_remove(void *arg, const char *name)
{
    struct wp_config *c = arg;
    if (c->n_remove == WP_MAX_PENDING)
        return "too many removals in one response";
    if (c->n_remove == c->cap_remove) {
        c->cap_remove = c->cap_remove ? 2 * c->cap_remove : 16;
        c->pol_remove = xrealloc(c->pol_remove, c->cap_remove * sizeof(*c->pol_remove));
    }
    c->pol_remove[c->n_remove++] = xstrdup(name);
    return NULL;
}

static void
policy_commit(void *arg)
{
    struct wp_config *c = arg;
    if (c->n_add == 0 && c->n_remove == 0)
        return;
    struct l7pol_set *next =
        l7pol_set_update(c->wp->policies, c->pol_add, c->n_add,
                         (const char *const *)c->pol_remove, c->n_remove);
    for (size_t i = 0; i < c->n_add; i++)
        l7pol_unref(c->pol_add[i]);
    for (size_t i = 0; i < c->n_remove; i++)
        free(c->pol_remove[i]);
    c->n_add = c->n_remove = 0;
    l7pol_set_unref(c->wp->policies);
    c->wp->policies = next;
    log_debug("%zu L7 policies", l7pol_set_count(next));
}

/* ---- the stream ---------------------------------------------------------- */

static void
on_synced(void *arg)
{
    struct wp_config *c = arg;
    if (c->wp->config_synced)
        return;
    c->wp->config_synced = true;
    log_info("xDS: synced (%zu workloads, %zu services, %zu routes, %zu policies)",
             c->wp->model->n_workloads, c->wp->model->n_services,
             route_set_count(c->wp->routes),
             c->wp->policies ? l7pol_set_count(c->wp->policies) : 0);
    wp_update_ready(c->wp);
}

static int
start_xds(struct wp_config *c)
{
    struct wp *wp = c->wp;
    const char *pod = getenv("POD_NAME"), *ip = getenv("INSTANCE_IP");
    char podname[300];
    snprintf(podname, sizeof(podname), "%s", wp->opts.name);
    pod = pod ? pod : podname;
    ip = ip ? ip : "";
    /* Istio's waypoint node id ("router"), metadata as meshd reads it (waypoint.md 3). */
    char *node_id = xds_node_id("waypoint", ip, pod, wp->opts.ns);
    const struct xds_kv meta[] = {
        {XDS_META_WAYPOINT, wp->opts.name},
        {"NAMESPACE", wp->opts.ns},
        {"SERVICE_ACCOUNT", wp->opts.sa},
        {"NODE_NAME", wp->opts.node ? wp->opts.node : ""},
        {"INSTANCE_IPS", ip},
        {"CLUSTER_ID", wp->opts.cluster},
    };
    const struct ads_type types[] = {
        {XDS_TYPE_ADDRESS, address_apply, address_remove, address_commit, c},
        {XDS_TYPE_WAYPOINT_ROUTE, route_apply, route_remove, route_commit, c},
        {XDS_TYPE_WAYPOINT_POLICY, policy_apply, policy_remove, policy_commit, c},
    };
    const struct ads_config cfg = {
        .mux = {.node_id = node_id, .meta = meta, .n_meta = ARRAY_LEN(meta), .types = types,
                .n_types = ARRAY_LEN(types)},
        .loop = wp->loop,
        .chan = wp->xds_chan,
        .auth = {.authority = wp->opts.cp_name, .cluster = wp->opts.cluster,
                 .bearer = node_tokens_bearer_xds, .bearer_arg = wp->tokens},
        .on_synced = on_synced,
        .arg = c,
    };
    c->store = model_store_new();
    c->ads = ads_start(&cfg);
    free(node_id);
    return c->ads != NULL ? 0 : -1;
}

struct wp_config *
wp_config_start(struct wp *wp, char *err, size_t errlen)
{
    struct wp_config *c = xcalloc(1, sizeof(*c));
    c->wp = wp;
    route_store_init(&c->routes);
    wp->routes = route_store_get(&c->routes);
    if (wp->opts.xds) {
        wp->model = model_new();
        if (start_xds(c) < 0) {
            snprintf(err, errlen, "xDS: cannot create the client");
            wp_config_stop(c);
            return NULL;
        }
        return c;
    }
    struct model *m;
    if (local_config_load(wp->opts.local_config, &m, err, errlen) < 0) {
        wp_config_stop(c);
        return NULL;
    }
    set_model(wp, m);
    if (local_config_load_waypoint(wp->opts.local_config, &c->routes, &wp->policies, err,
                                   errlen) < 0) {
        wp_config_stop(c);
        return NULL;
    }
    route_set_unref(wp->routes);
    wp->routes = route_store_get(&c->routes);
    wp->config_synced = true;
    log_info("local config %s: %zu workloads, %zu services, %zu routes, %zu policies",
             wp->opts.local_config, m->n_workloads, m->n_services, route_set_count(wp->routes),
             l7pol_set_count(wp->policies));
    return c;
}

void
wp_config_stop(struct wp_config *c)
{
    if (c == NULL)
        return;
    ads_stop(c->ads);
    model_store_free(c->store);
    route_set_unref(c->wp->routes);
    c->wp->routes = NULL;
    route_store_destroy(&c->routes);
    for (size_t i = 0; i < c->n_rt; i++) {
        free(c->rt[i].name);
        free(c->rt[i].data);
    }
    free(c->rt);
    for (size_t i = 0; i < c->n_add; i++)
        l7pol_unref(c->pol_add[i]);
    free(c->pol_add);
    for (size_t i = 0; i < c->n_remove; i++)
        free(c->pol_remove[i]);
    free(c->pol_remove);
    free(c);
}

void
wp_config_dump(const struct wp_config *c, struct json_t *obj)
{
    json_object_set_new(obj, "mode", json_string(c->ads ? "xds" : "local"));
    if (c->ads == NULL)
        return;
    const struct xds_client *x = ads_client(c->ads);
    const struct xds_client_stats *s = xds_client_stats(x);
    json_object_set_new(obj, "connected", json_boolean(ads_connected(c->ads)));
    json_object_set_new(obj, "synced", json_boolean(xds_client_ready(x)));
    json_object_set_new(obj, "responses", json_integer((json_int_t)s->responses));
    json_object_set_new(obj, "nacks", json_integer((json_int_t)s->nacks));
    const char *e = xds_client_last_error(x);
    if (e != NULL)
        json_object_set_new(obj, "lastRejection", json_string(e));
}
