/*
 * cp_unary.c - a unary call to meshd (cp_unary.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "grpc/grpc.h"
#include "cpcall/cp_unary.h"

static void
release(struct cp_unary *u)
{
    loop_timer_stop(u->cfg.loop, &u->deadline);
    channel_cancel(u->cfg.chan, &u->wait);
    rpc_call_free(u->call);
    u->call = NULL;
    free(u->req);
    u->req = NULL;
    u->active = false;
}

/* Ends the call and tells the owner; nothing of |u| is touched after |done|. */
static void
finish(struct cp_unary *u, bool ok, const char *why)
{
    uint8_t *resp = u->resp;
    size_t len = u->resp_len;
    cp_unary_fn *done = u->done;
    void *arg = u->arg;
    u->resp = NULL;
    u->resp_len = 0;
    release(u);
    done(arg, ok ? resp : NULL, ok ? len : 0, why);
    free(resp);
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct cp_unary *u = arg;
    (void)call;
    if (u->resp != NULL)
        return -MESH_EPROTO; /* unary: one answer */
    u->resp = xmalloc(len ? len : 1);
    memcpy(u->resp, msg, len);
    u->resp_len = len;
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct cp_unary *u = arg;
    char why[300];
    (void)call;
    if (status != GRPC_STATUS_OK || u->resp == NULL) {
        snprintf(why, sizeof(why), "%s answered status %d%s%s", u->cfg.peer, status,
                 message ? ": " : "", message ? message : "");
        finish(u, false, why);
        return;
    }
    finish(u, true, NULL);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

static void
on_session(void *arg, struct h2_session *s, int err)
{
    struct cp_unary *u = arg;
    const struct cp_unary_config *cfg = &u->cfg;
    char why[300];

    if (s == NULL) {
        snprintf(why, sizeof(why), "%s unreachable: %s", cfg->peer, mesh_strerror(err));
        finish(u, false, why);
        return;
    }
    u->call = cpcall_start(s, &cfg->auth, cfg->method, cfg->max_response, &cbs, u, cfg->peer,
                           why, sizeof(why));
    if (u->call == NULL) {
        finish(u, false, why);
        return;
    }
    if (rpc_call_send(u->call, u->req, u->req_len) < 0) {
        finish(u, false, "cannot send the request");
        return;
    }
    rpc_call_close_send(u->call);
}

static void
on_deadline(void *arg)
{
    struct cp_unary *u = arg;
    char why[100];
    snprintf(why, sizeof(why), "%s did not answer in time", u->cfg.peer);
    finish(u, false, why);
}

void
cp_unary_start(struct cp_unary *u, const struct cp_unary_config *cfg, const uint8_t *req,
               size_t len, cp_unary_fn *done, void *arg)
{
    u->cfg = *cfg;
    u->done = done;
    u->arg = arg;
    u->req = xmalloc(len ? len : 1);
    memcpy(u->req, req, len);
    u->req_len = len;
    u->active = true;
    loop_timer_start(cfg->loop, &u->deadline, cfg->timeout_ms, on_deadline, u);
    channel_get(cfg->chan, &u->wait, on_session, u);
}

void
cp_unary_cancel(struct cp_unary *u)
{
    if (!u->active)
        return;
    free(u->resp);
    u->resp = NULL;
    u->resp_len = 0;
    release(u);
}

bool
cp_unary_active(const struct cp_unary *u)
{
    return u->active;
}
