/*
 * ca.c - CreateCertificate calls: one request message, one answer. The
 * decision (node restriction, CSR rules, TTL cap) is lib/casvc's; this file
 * ties it to the call, the config store, the counters and the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "ca"
#include "base/base.h"
#include "casvc/casvc.h"
#include "grpc/grpc.h"
#include "k8s/k8s.h"
#include "log/log.h"
#include "meshd_server.h"
#include "rpc/rpc.h"

struct ca_call {
    struct ca_call *prev, *next;
    struct meshd_server *srv;
    struct rpc_call *call;
    char node[TOKEN_NODE_MAX + 1];
    uint8_t *req;
    size_t req_len;
    bool have_req;
    bool done;
};

static bool
authorize(void *arg, const char *node, const struct spiffe_id *id)
{
    struct meshd *d = arg;
    return k8s_sa_on_node(config_store(d->config), node, id->ns, id->sa);
}

static void
unlink_call(struct ca_call *c)
{
    struct meshd_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->ca_calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->req);
    free(c);
}

static void
answer(struct ca_call *c)
{
    struct meshd *d = c->srv->d;
    struct casvc_policy p = {
        .trust_domain = d->opts.trust_domain,
        .default_ttl = d->opts.cert_ttl,
        .max_ttl = d->opts.max_cert_ttl,
        .authorize = authorize,
        .arg = d,
    };
    struct casvc_result res;
    uint8_t *resp;
    size_t len;

    d->stats.ca_requests++;
    int status = casvc_sign(d->ca, &p, c->node, c->req, c->req_len, &resp, &len, &res);
    if (status == GRPC_STATUS_OK) {
        d->stats.ca_signed++;
        log_debug("CA: signed %s for node %s, %ld s, serial %s", res.id.uri, c->node, res.ttl,
                  res.serial);
        if (rpc_call_send(c->call, resp, len) < 0)
            status = GRPC_STATUS_UNAVAILABLE;
        free(resp);
        rpc_call_finish(c->call, status, status == GRPC_STATUS_OK ? NULL : "try again");
        return;
    }
    d->stats.ca_refused++;
    if (res.malformed) {
        /* Bytes that do not decode (too deep, cut short...): the sender may know why. */
        static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
        log_warn_rl(&rl, "CA: refused node %s: %s", c->node, res.why);
        rpc_call_finish(c->call, status, res.why);
        return;
    }
    /* The caller learns only that it was refused; the log says why. */
    log_warn("CA: refused node %s%s%s: %s", c->node, res.have_id ? " for " : "",
             res.have_id ? res.id.uri : "", res.why);
    rpc_call_finish(c->call, status, "certificate request refused");
}

static int
on_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct ca_call *c = arg;
    (void)call;
    if (c->have_req) {
        /* Unary: one request only. The call is reset; count and say so. */
        c->srv->d->stats.ca_requests++;
        c->srv->d->stats.ca_refused++;
        log_warn("CA: refused node %s: more than one request message", c->node);
        c->done = true;
        return -MESH_EPROTO;
    }
    c->req = xmalloc(len ? len : 1);
    memcpy(c->req, msg, len);
    c->req_len = len;
    c->have_req = true;
    return 0;
}

static void
on_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct ca_call *c = arg;
    (void)message;
    if (status == GRPC_STATUS_OK && !c->done) {
        c->done = true;
        if (c->have_req) {
            answer(c);
        } else {
            c->srv->d->stats.ca_requests++;
            c->srv->d->stats.ca_refused++;
            log_warn("CA: refused node %s: no request message", c->node);
            rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        }
    }
    rpc_call_free(call);
    unlink_call(c);
}

static const struct rpc_call_cbs cbs = {
    .on_message = on_message,
    .on_end = on_end,
};

void
ca_call_start(struct meshd_server *srv, struct h2_stream *st, const char *node)
{
    struct ca_call *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    snprintf(c->node, sizeof(c->node), "%s", node);
    c->call = rpc_call_accept(st, CASVC_MAX_REQUEST, &cbs, c);
    if (c->call == NULL) {
        free(c);
        return;
    }
    c->next = srv->ca_calls;
    if (srv->ca_calls)
        srv->ca_calls->prev = c;
    srv->ca_calls = c;
}

void
ca_calls_close(struct meshd_server *srv)
{
    while (srv->ca_calls != NULL) {
        struct ca_call *c = srv->ca_calls;
        rpc_call_free(c->call);
        unlink_call(c);
    }
}
