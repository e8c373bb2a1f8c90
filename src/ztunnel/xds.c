/*
 * xds.c - config from meshd over lib/ads: Address resources into a model
 * store (a new model per response, certificates following the workloads of
 * this node), Authorization resources into the policy set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_SCOPE "xds"
#include "ads/ads.h"
#include "base/base.h"
#include "identity/node_tokens.h"
#include "log/log.h"
#include "model/model_store.h"
#include "policy/policy.h"
#include "ztunnel.h"

struct zt_xds {
    struct zt *zt;
    struct ads *ads;
    struct model_store *store;
    struct policy_set *policies; /* as the pushes left it */
    bool policies_changed;
    char reject[512];
};

/* ---- istio.workload.Address ---------------------------------------------- */

static const char *
address_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct zt_xds *x = arg;
    if (model_store_put(x->store, name, bytes, len, x->reject, sizeof(x->reject)) < 0)
        return x->reject;
    return NULL;
}

static const char *
address_remove(void *arg, const char *name)
{
    struct zt_xds *x = arg;
    model_store_remove(x->store, name);
    return NULL;
}

static void
address_commit(void *arg)
{
    struct zt_xds *x = arg;
    struct zt *zt = x->zt;
    struct model *m = model_store_snapshot(x->store);
    if (m == zt->model) {
        model_unref(m);
        return;
    }
    /* Connections copied what they need from the old model; it goes when unreferenced. */
    zt_set_model(zt, m);
    workers_publish(zt, m, NULL, NULL);
    certs_sync(zt->certs);
    zt_wake(zt); /* connections held for a workload that may just have arrived */
    log_debug("xDS: model now %zu workloads, %zu services", m->n_workloads, m->n_services);
}

/* ---- istio.security.Authorization ---------------------------------------- */

static const char *
authz_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct zt_xds *x = arg;
    struct policy *p;
    if (policy_decode(bytes, len, &p, x->reject, sizeof(x->reject)) < 0)
        return x->reject;
    if (x->policies == NULL)
        x->policies = policy_set_new();
    policy_set_remove(x->policies, name);
    policy_set_add(x->policies, p); /* takes our reference */
    x->policies_changed = true;
    return NULL;
}

static const char *
authz_remove(void *arg, const char *name)
{
    struct zt_xds *x = arg;
    if (x->policies != NULL && policy_set_remove(x->policies, name))
        x->policies_changed = true;
    return NULL;
}

static void
authz_commit(void *arg)
{
    struct zt_xds *x = arg;
    if (!x->policies_changed)
        return;
    x->policies_changed = false;
    /* Readers get their own snapshot; this set keeps changing with later pushes. */
    struct policy_set *ps = policy_set_clone(x->policies);
    zt_set_policies(x->zt, ps); /* takes our reference */
    workers_publish(x->zt, NULL, ps, NULL);
    log_debug("xDS: %zu authorization policies", policy_set_count(x->policies));
}

/* ---- the stream ---------------------------------------------------------- */

static void
on_response(void *arg, const char *type_url, size_t len)
{
    (void)arg;
    zt_metrics_xds_response(len);
    zt_metrics_xds_message(type_url);
}

static void
on_synced(void *arg)
{
    struct zt_xds *x = arg;
    if (x->zt->xds_synced)
        return;
    x->zt->xds_synced = true;
    log_info("xDS: synced (%zu workloads, %zu services)", x->zt->model->n_workloads,
             x->zt->model->n_services);
    zt_update_ready(x->zt);
}

static void
on_stream_end(void *arg, const char *reason)
{
    (void)arg;
    zt_metrics_xds_end(reason);
}

struct zt_xds *
xds_start(struct zt *zt, char *err, size_t errlen)
{
    struct zt_xds *x = xcalloc(1, sizeof(*x));
    const char *pod = getenv("POD_NAME"), *ns = getenv("POD_NAMESPACE");
    const char *ip = getenv("INSTANCE_IP");
    char podname[300];

    snprintf(podname, sizeof(podname), "ztunnel-%s", zt->opts.node);
    pod = pod ? pod : podname;
    ns = ns ? ns : "istio-system";
    ip = ip ? ip : "";
    char *node_id = xds_node_id("ztunnel", ip, pod, ns);
    const struct xds_kv meta[] = {
        {"NAME", pod},
        {"NAMESPACE", ns},
        {"INSTANCE_IPS", ip},
        {"NODE_NAME", zt->opts.node},
        {"CLUSTER_ID", zt->opts.cluster},
    };
    const struct ads_type types[] = {
        {XDS_TYPE_ADDRESS, address_apply, address_remove, address_commit, x},
        {XDS_TYPE_AUTHORIZATION, authz_apply, authz_remove, authz_commit, x},
    };
    struct ads_config cfg = {
        .mux = {.node_id = node_id, .meta = meta, .n_meta = ARRAY_LEN(meta), .types = types,
                .n_types = ARRAY_LEN(types), .on_response = on_response, .arg = x},
        .loop = zt->loop,
        .chan = zt->xds_chan,
        .auth = {.authority = zt->opts.cp_name, .cluster = zt->opts.cluster,
                 .bearer = node_tokens_bearer_xds, .bearer_arg = zt->tokens},
        .max_message = XDS_MAX_RESPONSE_BYTES, /* ztunnel's limit (reference 3.1) */
        .on_synced = on_synced,
        .on_stream_end = on_stream_end,
        .arg = x,
    };
    x->zt = zt;
    x->store = model_store_new();
    x->ads = ads_start(&cfg);
    free(node_id);
    if (x->ads == NULL) {
        snprintf(err, errlen, "xDS: cannot create the client");
        xds_stop(x);
        return NULL;
    }
    return x;
}

void
xds_stop(struct zt_xds *x)
{
    if (x == NULL)
        return;
    ads_stop(x->ads);
    model_store_free(x->store);
    policy_set_unref(x->policies);
    free(x);
}

void
xds_dump(const struct zt_xds *x, struct json_t *obj)
{
    const struct xds_client *c = ads_client(x->ads);
    const struct xds_client_stats *s = xds_client_stats(c);
    json_object_set_new(obj, "connected", json_boolean(ads_connected(x->ads)));
    json_object_set_new(obj, "synced", json_boolean(xds_client_ready(c)));
    json_object_set_new(obj, "addresses",
                        json_integer((json_int_t)xds_client_count(c, XDS_TYPE_ADDRESS)));
    size_t n_authz = x->policies ? policy_set_count(x->policies) : 0;
    json_object_set_new(obj, "authorizations", json_integer((json_int_t)n_authz));
    json_object_set_new(obj, "connects", json_integer((json_int_t)s->connects));
    json_object_set_new(obj, "responses", json_integer((json_int_t)s->responses));
    json_object_set_new(obj, "applied", json_integer((json_int_t)s->applied));
    json_object_set_new(obj, "removed", json_integer((json_int_t)s->removed));
    json_object_set_new(obj, "nacks", json_integer((json_int_t)s->nacks));
    const char *e = xds_client_last_error(c);
    if (e != NULL)
        json_object_set_new(obj, "lastRejection", json_string(e));
}
