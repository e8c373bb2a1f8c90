/*
 * renew.c - node-token renewal (TOKEN_RENEW_METHOD): a ztunnel presents a
 * still-valid token and gets a fresh one of the same audience, node and
 * generation, valid as long as the presented one was issued for. The
 * request carries nothing and is not decoded; the answer is RenewResponse.
 *
 * A token renews only itself: an xds token yields an xds token, so a
 * credential taken from one path never opens the other. A revoked or expired
 * token was already refused by server.c and renews nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "tokens"
#include "base/base.h"
#include "grpc/grpc.h"
#include "log/log.h"
#include "meshd_server.h"
#include "rpc/rpc.h"
#include "token.pb-c.h"

#define RENEW_MAX_REQUEST 1024 /* an empty message; room for fields a later client may add */

struct renew_call {
    struct renew_call *prev, *next;
    struct meshd_server *srv;
    struct rpc_call *call;
    struct token_claims tc;
    unsigned n_msgs;
    bool done;
};

static void
unlink_call(struct renew_call *c)
{
    struct meshd_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->renew_calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void
answer(struct renew_call *c)
{
    struct meshd *d = c->srv->d;
    char tok[TOKEN_MAX_LEN];
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    struct token_claims fresh = c->tc;

    fresh.issued = now;
    fresh.expires = now + (c->tc.expires - c->tc.issued);
    /* The generation is read again: a revocation since the call began wins. */
    if (fresh.gen != token_gens_get(d->gens, fresh.node) ||
        token_mint(d->token_key, &fresh, tok, sizeof(tok)) < 0) {
        d->stats.token_renew_failures++;
        log_warn("token renewal for node %s refused: revoked meanwhile", fresh.node);
        rpc_call_finish(c->call, GRPC_STATUS_UNAUTHENTICATED, "authentication failure");
        return;
    }
    Amesh__Token__V1__RenewResponse r = AMESH__TOKEN__V1__RENEW_RESPONSE__INIT;
    r.token = tok;
    uint8_t buf[TOKEN_MAX_LEN + 16];
    size_t len = amesh__token__v1__renew_response__pack(&r, buf);
    int status = rpc_call_send(c->call, buf, len) < 0 ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_OK;
    if (status == GRPC_STATUS_OK) {
        d->stats.tokens_renewed++;
        log_debug("renewed the %s token of node %s until %lld", token_aud_name(fresh.aud),
                  fresh.node, (long long)fresh.expires);
    }
    rpc_call_finish(c->call, status, status == GRPC_STATUS_OK ? NULL : "try again");
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct renew_call *c = arg;
    (void)call;
    (void)msg;
    (void)len;
    if (++c->n_msgs > 1) {
        c->done = true; /* unary: the call is reset */
        return -MESH_EPROTO;
    }
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct renew_call *c = arg;
    (void)message;
    if (status == GRPC_STATUS_OK && !c->done) {
        c->done = true;
        if (c->n_msgs == 1)
            answer(c);
        else
            rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
    }
    rpc_call_free(call);
    unlink_call(c);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

void
renew_call_start(struct meshd_server *srv, struct h2_stream *st, const struct token_claims *tc)
{
    struct renew_call *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->tc = *tc;
    c->call = rpc_call_accept(st, RENEW_MAX_REQUEST, &cbs, c);
    if (c->call == NULL) {
        free(c);
        return;
    }
    c->next = srv->renew_calls;
    if (srv->renew_calls)
        srv->renew_calls->prev = c;
    srv->renew_calls = c;
}

void
renew_calls_close(struct meshd_server *srv)
{
    while (srv->renew_calls != NULL) {
        struct renew_call *c = srv->renew_calls;
        rpc_call_free(c->call);
        unlink_call(c);
    }
}
