/*
 * ads.c - the delta ADS stream over a control-plane channel (ads.h): one
 * DeltaAggregatedResources call at a time, made again with backoff when it
 * ends, its responses through an ads_mux and its ACKs and NACKs sent back.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "xds"
#include "ads/ads.h"
#include "base/base.h"
#include "cpcall/cpcall.h"
#include "grpc/grpc.h"
#include "log/log.h"
#include "rpc/rpc.h"

struct ads {
    struct ads_config cfg; /* auth.authority and auth.cluster are ours */
    struct ads_mux *mux;
    struct channel_waiter wait;
    struct rpc_call *call;
    uint64_t backoff_ms;
    struct loop_timer retry;
    bool synced; /* on the current stream */
};

static void connect_stream(struct ads *a);

static void
on_retry(void *arg)
{
    connect_stream(arg);
}

static void
reconnect_later(struct ads *a, bool clean, const char *why)
{
    uint64_t delay;
    if (clean) {
        delay = 0;
        a->backoff_ms = 0;
    } else {
        a->backoff_ms = a->backoff_ms == 0 ? ADS_BACKOFF_START_MS : a->backoff_ms * 2;
        if (a->backoff_ms > ADS_BACKOFF_MAX_MS)
            a->backoff_ms = ADS_BACKOFF_MAX_MS;
        delay = a->backoff_ms;
    }
    /* Quiet while retrying quickly: a restarting meshd should not flood the log. */
    if (delay >= 1000 || clean)
        log_warn("xDS: %s; reconnecting in %" PRIu64 " ms (serving the last config)", why,
                 delay);
    else
        log_debug("xDS: %s; reconnecting in %" PRIu64 " ms", why, delay);
    loop_timer_start(a->cfg.loop, &a->retry, delay, on_retry, a);
}

static void
stream_end(struct ads *a, const char *reason)
{
    if (a->cfg.on_stream_end != NULL)
        a->cfg.on_stream_end(a->cfg.arg, reason);
}

static void
send_out(struct ads *a, struct xds_out *out)
{
    for (size_t i = 0; i < out->n && a->call != NULL; i++)
        if (rpc_call_send(a->call, out->v[i].data, out->v[i].len) < 0)
            log_warn("xDS: cannot send a request");
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct ads *a = arg;
    const struct xds_client *xc = ads_mux_client(a->mux);
    struct xds_out out;
    (void)call;

    xds_out_init(&out);
    int rc = ads_mux_on_response(a->mux, msg, len, &out);
    if (rc < 0) {
        static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
        xds_out_cleanup(&out);
        log_warn_rl(&rl, "xDS: undecodable response from meshd: %s", xds_client_last_error(xc));
        return rc; /* resets the stream; on_end reconnects */
    }
    if (rc == 1)
        log_warn("xDS: rejected part of a push: %s", xds_client_last_error(xc));
    send_out(a, &out);
    xds_out_cleanup(&out);
    a->backoff_ms = 0; /* meshd answers: the next failure starts the backoff afresh */
    if (!a->synced && xds_client_ready(xc)) {
        a->synced = true;
        if (a->cfg.on_synced != NULL)
            a->cfg.on_synced(a->cfg.arg);
    }
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct ads *a = arg;
    char why[300];
    rpc_call_free(call);
    a->call = NULL;
    stream_end(a, status == GRPC_STATUS_OK ? "Complete" : "Error");
    snprintf(why, sizeof(why), "stream ended with status %d%s%s", status, message ? ": " : "",
             message ? message : "");
    reconnect_later(a, status == GRPC_STATUS_OK, why);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

static void
on_session(void *arg, struct h2_session *s, int err)
{
    struct ads *a = arg;
    char why[200];

    if (s == NULL) {
        stream_end(a, "ConnectionError");
        snprintf(why, sizeof(why), "meshd unreachable: %s", mesh_strerror(err));
        reconnect_later(a, false, why);
        return;
    }
    a->call = cpcall_start(s, &a->cfg.auth, XDS_DELTA_ADS_PATH, a->cfg.max_message, &cbs, a,
                           "meshd", why, sizeof(why));
    if (a->call == NULL) {
        reconnect_later(a, false, why);
        return;
    }
    struct xds_out out;
    xds_out_init(&out);
    a->synced = false;
    ads_mux_start(a->mux, &out);
    send_out(a, &out);
    xds_out_cleanup(&out);
    log_debug("xDS: stream open, %zu resources retained", ads_mux_retained(a->mux));
}

static void
connect_stream(struct ads *a)
{
    channel_get(a->cfg.chan, &a->wait, on_session, a);
}

struct ads *
ads_start(const struct ads_config *cfg)
{
    struct ads_mux *mux = ads_mux_new(&cfg->mux);
    if (mux == NULL)
        return NULL;
    struct ads *a = xcalloc(1, sizeof(*a));
    a->cfg = *cfg;
    memset(&a->cfg.mux, 0, sizeof(a->cfg.mux)); /* the mux copied what it keeps */
    a->cfg.auth.authority = xstrdup(cfg->auth.authority ? cfg->auth.authority : "");
    a->cfg.auth.cluster = xstrdup(cfg->auth.cluster ? cfg->auth.cluster : "");
    if (a->cfg.max_message == 0)
        a->cfg.max_message = XDS_MAX_RESPONSE_BYTES;
    a->mux = mux;
    connect_stream(a);
    return a;
}

void
ads_stop(struct ads *a)
{
    if (a == NULL)
        return;
    loop_timer_stop(a->cfg.loop, &a->retry);
    channel_cancel(a->cfg.chan, &a->wait);
    rpc_call_free(a->call);
    ads_mux_free(a->mux);
    free((char *)a->cfg.auth.authority);
    free((char *)a->cfg.auth.cluster);
    free(a);
}

bool
ads_connected(const struct ads *a)
{
    return a->call != NULL;
}

const struct xds_client *
ads_client(const struct ads *a)
{
    return ads_mux_client(a->mux);
}
