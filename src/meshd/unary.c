/*
 * unary.c - the server side of one-request calls (CreateCertificate, token
 * renewal): the request is kept until the client half-closes, then answered
 * once; a call with no request, or more than one, is refused. The live calls
 * are listed on the server so that server_stop() can close them.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "grpc/grpc.h"
#include "meshd_server.h"
#include "rpc/rpc.h"

struct unary_call {
    struct unary_call *prev, *next;
    struct meshd_server *srv;
    struct rpc_call *call;
    const struct unary_ops *ops;
    void *arg;
    uint8_t *req;
    size_t req_len;
    bool have_req;
    bool done;
};

static void
unlink_call(struct unary_call *u)
{
    struct meshd_server *srv = u->srv;
    if (u->prev)
        u->prev->next = u->next;
    else
        srv->unary_calls = u->next;
    if (u->next)
        u->next->prev = u->prev;
    free(u->req);
    free(u->arg);
    free(u);
}

static void
refuse(struct unary_call *u, const char *why)
{
    if (u->ops->refused != NULL)
        u->ops->refused(u->srv, u->arg, why);
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct unary_call *u = arg;
    (void)call;
    if (u->have_req) {
        /* Unary: one request only. The call is reset. */
        refuse(u, "more than one request message");
        u->done = true;
        return -MESH_EPROTO;
    }
    u->req = xmalloc(len ? len : 1);
    memcpy(u->req, msg, len);
    u->req_len = len;
    u->have_req = true;
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct unary_call *u = arg;
    (void)message;
    if (status == GRPC_STATUS_OK && !u->done) {
        u->done = true;
        if (u->have_req) {
            u->ops->answer(u->srv, call, u->arg, u->req, u->req_len);
        } else {
            refuse(u, "no request message");
            rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        }
    }
    rpc_call_free(call);
    unlink_call(u);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

void
unary_call_start(struct meshd_server *srv, struct h2_stream *st, size_t max_req,
                 const struct unary_ops *ops, void *arg)
{
    struct unary_call *u = xcalloc(1, sizeof(*u));
    u->srv = srv;
    u->ops = ops;
    u->arg = arg;
    u->call = rpc_call_accept(st, max_req, &cbs, u);
    if (u->call == NULL) {
        free(u->arg);
        free(u);
        return;
    }
    u->next = srv->unary_calls;
    if (srv->unary_calls)
        srv->unary_calls->prev = u;
    srv->unary_calls = u;
}

void
unary_calls_close(struct meshd_server *srv)
{
    while (srv->unary_calls != NULL) {
        struct unary_call *u = srv->unary_calls;
        rpc_call_free(u->call);
        unlink_call(u);
    }
}
