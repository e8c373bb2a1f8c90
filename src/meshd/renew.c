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
#include <stdlib.h>

#define LOG_SCOPE "tokens"
#include "base/base.h"
#include "grpc/grpc.h"
#include "log/log.h"
#include "meshd_server.h"
#include "rpc/rpc.h"
#include "token.pb-c.h"

#define RENEW_MAX_REQUEST 1024 /* an empty message; room for fields a later client may add */

static void
answer(struct meshd_server *srv, struct rpc_call *call, void *arg, const uint8_t *req, size_t len)
{
    const struct token_claims *tc = arg;
    struct meshd *d = srv->d;
    char tok[TOKEN_MAX_LEN];
    int64_t now = (int64_t)(clock_wall_ms() / 1000);
    struct token_claims fresh = *tc;

    (void)req; /* an empty message: nothing to read */
    (void)len;
    fresh.issued = now;
    fresh.expires = now + (tc->expires - tc->issued);
    /* The generation is read again: a revocation since the call began wins. */
    if (fresh.gen != token_gens_get(d->gens, fresh.node) ||
        token_mint(d->token_key, &fresh, tok, sizeof(tok)) < 0) {
        d->stats.token_renew_failures++;
        log_warn("token renewal for node %s refused: revoked meanwhile", fresh.node);
        rpc_call_finish(call, GRPC_STATUS_UNAUTHENTICATED, "authentication failure");
        return;
    }
    Amesh__Token__V1__RenewResponse r = AMESH__TOKEN__V1__RENEW_RESPONSE__INIT;
    r.token = tok;
    uint8_t buf[TOKEN_MAX_LEN + 16];
    size_t out_len = amesh__token__v1__renew_response__pack(&r, buf);
    int status = rpc_call_send(call, buf, out_len) < 0 ? GRPC_STATUS_UNAVAILABLE : GRPC_STATUS_OK;
    if (status == GRPC_STATUS_OK) {
        d->stats.tokens_renewed++;
        log_debug("renewed the %s token of node %s until %lld", token_aud_name(fresh.aud),
                  fresh.node, (long long)fresh.expires);
    }
    rpc_call_finish(call, status, status == GRPC_STATUS_OK ? NULL : "try again");
}

static const struct unary_ops ops = {
    .answer = answer,
};

void
renew_call_start(struct meshd_server *srv, struct h2_stream *st, const struct token_claims *tc)
{
    struct token_claims *copy = xmalloc(sizeof(*copy));
    *copy = *tc;
    unary_call_start(srv, st, RENEW_MAX_REQUEST, &ops, copy);
}
