/*
 * xds.c - config from meshd: one DeltaAggregatedResources stream, resources
 * into a model store, a new model per response, certificates following the
 * workloads of this node.
 *
 * While meshd is away the last model keeps serving; the stream is made again
 * with backoff (10 ms doubling to 15 s; a clean end retries at once), and
 * initial_resource_versions lets meshd skip what did not change.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define LOG_SCOPE "xds"
#include "base/base.h"
#include "channel/channel.h"
#include "log/log.h"
#include "model/model_store.h"
#include "policy/policy.h"
#include "rpc/rpc.h"
#include "xds/xds.h"
#include "xds/xds_client.h"
#include "ztunnel.h"

#define XDS_BACKOFF_START_MS 10
#define XDS_BACKOFF_MAX_MS 15000
#define XDS_MAX_MESSAGE ((size_t)200 << 20) /* ztunnel's limit (reference 3.1) */

struct zt_xds {
    struct zt *zt;
    struct channel *chan;
    struct channel_waiter wait;
    struct rpc_call *call;
    struct xds_client *client;
    struct model_store *store;
    struct policy_set *policies; /* as the pushes left it */
    bool policies_changed;
    uint64_t backoff_ms;
    struct loop_timer retry;
    bool synced_once;
    char reject[512];
};

static void connect_stream(struct zt_xds *x);

static void
on_retry(void *arg)
{
    connect_stream(arg);
}

static void
reconnect_later(struct zt_xds *x, bool clean, const char *why)
{
    uint64_t delay;
    if (clean) {
        delay = 0;
        x->backoff_ms = 0;
    } else {
        x->backoff_ms = x->backoff_ms == 0 ? XDS_BACKOFF_START_MS : x->backoff_ms * 2;
        if (x->backoff_ms > XDS_BACKOFF_MAX_MS)
            x->backoff_ms = XDS_BACKOFF_MAX_MS;
        delay = x->backoff_ms;
    }
    /* Quiet while retrying quickly: a restarting meshd should not flood the log. */
    if (delay >= 1000 || clean)
        log_warn("xDS: %s; reconnecting in %" PRIu64 " ms (serving the last config)", why,
                 delay);
    else
        log_debug("xDS: %s; reconnecting in %" PRIu64 " ms", why, delay);
    loop_timer_start(x->zt->loop, &x->retry, delay, on_retry, x);
}

static void
send_out(struct zt_xds *x, struct xds_out *out)
{
    for (size_t i = 0; i < out->n && x->call != NULL; i++)
        if (rpc_call_send(x->call, out->v[i].data, out->v[i].len) < 0)
            log_warn("xDS: cannot send a request");
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct zt_xds *x = arg;
    struct xds_out out;
    (void)call;

    xds_out_init(&out);
    zt_metrics_xds_response(len);
    int rc = xds_client_on_response(x->client, msg, len, &out);
    if (rc < 0) {
        static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
        xds_out_cleanup(&out);
        log_warn_rl(&rl, "xDS: undecodable response from meshd: %s",
                    xds_client_last_error(x->client));
        return rc; /* resets the stream; on_end reconnects */
    }
    if (rc == 1)
        log_warn("xDS: rejected part of a push: %s", xds_client_last_error(x->client));
    send_out(x, &out);
    xds_out_cleanup(&out);
    x->backoff_ms = 0; /* meshd answers: the next failure starts the backoff afresh */
    if (xds_client_ready(x->client) && !x->zt->xds_synced) {
        x->zt->xds_synced = true;
        log_info("xDS: synced (%zu workloads, %zu services)", x->zt->model->n_workloads,
                 x->zt->model->n_services);
        zt_update_ready(x->zt);
    }
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct zt_xds *x = arg;
    char why[300];
    rpc_call_free(call);
    x->call = NULL;
    zt_metrics_xds_end(status == GRPC_STATUS_OK ? "Complete" : "Error");
    snprintf(why, sizeof(why), "stream ended with status %d%s%s", status, message ? ": " : "",
             message ? message : "");
    reconnect_later(x, status == GRPC_STATUS_OK, why);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

static void
on_session(void *arg, struct h2_session *s, int err)
{
    struct zt_xds *x = arg;
    char why[200], auth[TOKEN_MAX_LEN + 16];

    if (s == NULL) {
        zt_metrics_xds_end("ConnectionError");
        snprintf(why, sizeof(why), "meshd unreachable: %s", mesh_strerror(err));
        reconnect_later(x, false, why);
        return;
    }
    if (zt_bearer(x->zt, TOKEN_AUD_XDS, auth, sizeof(auth), why, sizeof(why)) < 0) {
        reconnect_later(x, false, why);
        return;
    }
    struct h2_header md[] = {
        {"authorization", auth},
        {"clusterid", x->zt->opts.cluster},
    };
    x->call = rpc_call_start(s, XDS_DELTA_ADS_PATH, x->zt->opts.cp_name, md, 2, XDS_MAX_MESSAGE,
                             &cbs, x);
    if (x->call == NULL) {
        reconnect_later(x, false, "cannot open the stream");
        return;
    }
    struct xds_out out;
    xds_out_init(&out);
    xds_client_start(x->client, &out);
    send_out(x, &out);
    xds_out_cleanup(&out);
    log_debug("xDS: stream open, %zu addresses retained",
              xds_client_count(x->client, XDS_TYPE_ADDRESS));
}

struct channel *
xds_channel(struct zt_xds *x)
{
    return x->chan;
}

static void
connect_stream(struct zt_xds *x)
{
    channel_get(x->chan, &x->wait, on_session, x);
}

/* ---- applying resources -------------------------------------------------- */

static const char *
on_apply(void *arg, const char *type_url, const char *name, const char *version,
         const uint8_t *bytes, size_t len)
{
    struct zt_xds *x = arg;
    (void)version;
    if (strcmp(type_url, XDS_TYPE_ADDRESS) == 0) {
        if (model_store_put(x->store, name, bytes, len, x->reject, sizeof(x->reject)) < 0)
            return x->reject;
        return NULL;
    }
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
on_remove(void *arg, const char *type_url, const char *name)
{
    struct zt_xds *x = arg;
    if (strcmp(type_url, XDS_TYPE_ADDRESS) == 0) {
        model_store_remove(x->store, name);
    } else if (x->policies != NULL && policy_set_remove(x->policies, name)) {
        x->policies_changed = true;
    }
    return NULL;
}

static void
on_batch_end(void *arg, const char *type_url)
{
    struct zt_xds *x = arg;
    struct zt *zt = x->zt;
    zt_metrics_xds_message(type_url);
    if (strcmp(type_url, XDS_TYPE_AUTHORIZATION) == 0) {
        if (x->policies_changed) {
            x->policies_changed = false;
            /* Readers get their own snapshot; this set keeps changing with later pushes. */
            zt_set_policies(zt, policy_set_clone(x->policies));
            log_debug("xDS: %zu authorization policies", policy_set_count(x->policies));
        }
        return;
    }
    if (strcmp(type_url, XDS_TYPE_ADDRESS) != 0)
        return;
    struct model *m = model_store_snapshot(x->store);
    if (m == zt->model) {
        model_unref(m);
        return;
    }
    /* Connections copied what they need from the old model; it goes when unreferenced. */
    struct model *old = zt->model;
    zt->model = m;
    zt_authz_model_changed(zt, old); /* a workload's policies may have changed */
    model_unref(old);
    certs_sync(zt->certs);
    zt_wake(zt); /* connections held for a workload that may just have arrived */
    log_debug("xDS: model now %zu workloads, %zu services", m->n_workloads, m->n_services);
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
    char *node_id = xds_node_id_ztunnel(ip, pod, ns);
    const struct xds_kv meta[] = {
        {"NAME", pod},
        {"NAMESPACE", ns},
        {"INSTANCE_IPS", ip},
        {"NODE_NAME", zt->opts.node},
        {"CLUSTER_ID", zt->opts.cluster},
    };
    struct xds_client_config cfg = {
        .node_id = node_id,
        .meta = meta,
        .n_meta = ARRAY_LEN(meta),
        .on_apply = on_apply,
        .on_remove = on_remove,
        .on_batch_end = on_batch_end,
        .arg = x,
    };
    x->zt = zt;
    x->client = xds_client_new(&cfg);
    free(node_id);
    if (x->client == NULL) {
        snprintf(err, errlen, "xDS: cannot create the client");
        free(x);
        return NULL;
    }
    x->store = model_store_new();
    x->chan = channel_new(zt->loop, &zt->opts.xds_ip, zt->opts.xds_port, zt->cp_ctx, "xDS");
    connect_stream(x);
    return x;
}

void
xds_stop(struct zt_xds *x)
{
    if (x == NULL)
        return;
    loop_timer_stop(x->zt->loop, &x->retry);
    channel_cancel(x->chan, &x->wait);
    rpc_call_free(x->call);
    channel_free(x->chan);
    xds_client_free(x->client);
    model_store_free(x->store);
    policy_set_unref(x->policies);
    free(x);
}

void
xds_dump(const struct zt_xds *x, struct json_t *obj)
{
    const struct xds_client_stats *s = xds_client_stats(x->client);
    json_object_set_new(obj, "connected", json_boolean(x->call != NULL));
    json_object_set_new(obj, "synced", json_boolean(xds_client_ready(x->client)));
    json_object_set_new(obj, "addresses", json_integer((json_int_t)xds_client_count(x->client, XDS_TYPE_ADDRESS)));
    json_object_set_new(obj, "authorizations",
                        json_integer((json_int_t)(x->policies ? policy_set_count(x->policies) : 0)));
    json_object_set_new(obj, "connects", json_integer((json_int_t)s->connects));
    json_object_set_new(obj, "responses", json_integer((json_int_t)s->responses));
    json_object_set_new(obj, "applied", json_integer((json_int_t)s->applied));
    json_object_set_new(obj, "removed", json_integer((json_int_t)s->removed));
    json_object_set_new(obj, "nacks", json_integer((json_int_t)s->nacks));
    const char *e = xds_client_last_error(x->client);
    if (e != NULL)
        json_object_set_new(obj, "lastRejection", json_string(e));
}
