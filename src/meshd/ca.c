/*
 * ca.c - CreateCertificate calls: one request message, one answer. The
 * decision (node restriction, CSR rules, TTL cap) is lib/casvc's, and for a
 * Kubernetes-token caller lib/kubeauth's (istiod's NodeAuthorizer); this file
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
#include "kubeauth/kubeauth.h"
#include "log/log.h"
#include "meshd_server.h"
#include "rpc/rpc.h"

struct ca_auth {
    struct meshd *d;
    const struct caller *c;
    char why[KUBEAUTH_WHY_MAX]; /* a Kubernetes caller's refusal, said better than casvc's */
};

static bool
authorize(void *arg, const char *node, const struct spiffe_id *id)
{
    struct ca_auth *a = arg;
    const struct k8s_store *st = config_store(a->d->config);
    if (!a->c->kube)
        return k8s_sa_on_node(st, node, id->ns, id->sa);
    return kubeauth_may_obtain(&a->c->k, st, id->ns, id->sa, a->why, sizeof(a->why));
}

static void
answer(struct meshd_server *srv, struct rpc_call *call, void *arg, const uint8_t *req, size_t len)
{
    const struct caller *c = arg;
    struct meshd *d = srv->d;
    struct ca_auth auth = {.d = d, .c = c};
    struct casvc_policy p = {
        .trust_domain = d->opts.trust_domain,
        .default_ttl = d->opts.cert_ttl,
        .max_ttl = d->opts.max_cert_ttl,
        .authorize = authorize,
        .arg = &auth,
    };
    struct casvc_result res;
    uint8_t *resp;
    size_t resp_len;
    char who[600];

    caller_str(c, who, sizeof(who));
    d->stats.ca_requests++;
    int status = casvc_sign(d->ca, &p, c->node, req, len, &resp, &resp_len, &res);
    if (status == GRPC_STATUS_OK) {
        d->stats.ca_signed++;
        log_debug("CA: signed %s for %s, %ld s, serial %s", res.id.uri, who, res.ttl, res.serial);
        if (rpc_call_send(call, resp, resp_len) < 0)
            status = GRPC_STATUS_UNAVAILABLE;
        free(resp);
        rpc_call_finish(call, status, status == GRPC_STATUS_OK ? NULL : "try again");
        return;
    }
    d->stats.ca_refused++;
    if (res.malformed) {
        /* Bytes that do not decode (too deep, cut short...): the sender may know why. */
        static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
        log_warn_rl(&rl, "CA: refused %s: %s", who, res.why);
        rpc_call_finish(call, status, res.why);
        return;
    }
    /* The caller learns only that it was refused; the log says why. */
    log_warn("CA: refused %s%s%s: %s", who, res.have_id ? " for " : "",
             res.have_id ? res.id.uri : "", auth.why[0] ? auth.why : res.why);
    rpc_call_finish(call, status, "certificate request refused");
}

static void
refused(struct meshd_server *srv, void *arg, const char *why)
{
    const struct caller *c = arg;
    char who[600];
    srv->d->stats.ca_requests++;
    srv->d->stats.ca_refused++;
    log_warn("CA: refused %s: %s", caller_str(c, who, sizeof(who)), why);
}

static const struct unary_ops ops = {
    .answer = answer,
    .refused = refused,
};

void
ca_call_start(struct meshd_server *srv, struct h2_stream *st, const struct caller *c)
{
    struct caller *copy = xmalloc(sizeof(*copy));
    *copy = *c;
    unary_call_start(srv, st, CASVC_MAX_REQUEST, &ops, copy);
}
