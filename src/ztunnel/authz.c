/*
 * authz.c - L4 authorization at the destination (reference 5.1, 5.4).
 *
 * Every inbound connection (HBONE on 15008, plaintext on 15006) is checked
 * against the policies that apply to its destination workload before the app
 * is dialled, with the real destination address and port (after HBONE), and
 * the peer's identity when there is one (plaintext has none). The
 * evaluation itself is lib/policy's.
 *
 * Open inbound connections are checked again, and those now denied closed,
 * when the policies change and when a destination workload's inputs to the
 * decision change (its namespace or its list of selector policies: a label
 * change that makes an existing DENY select the pod). A connection still
 * dialling the app at that moment is checked when the dial completes
 * (zt_authz_recheck): zt->authz_gen counts the changes, a connection
 * remembers the one it was authorized under.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "authz"
#include "base/base.h"
#include "log/log.h"
#include "policy/policy.h"
#include "tls/spiffe.h"
#include "ztunnel.h"

static bool
check(const struct zt *zt, const struct workload *dst, const char *peer_uri,
      const struct ipaddr *src_ip, const struct ipaddr *dst_ip, uint16_t dst_port,
      struct policy_decision *why)
{
    struct spiffe_id id;
    struct policy_peer peer;
    struct policy_request r = {
        .dst_ns = dst->ns,
        .dst_policies = dst->authz_policies,
        .n_dst_policies = dst->n_authz_policies,
        .src_ip = *src_ip,
        .dst_ip = *dst_ip,
        .dst_port = dst_port,
    };
    if (peer_uri != NULL && spiffe_parse(peer_uri, strlen(peer_uri), &id) == 0) {
        peer = (struct policy_peer){.trust_domain = id.td, .ns = id.ns, .sa = id.sa};
        r.src_id = &peer;
    }
    if (zt->policies == NULL) {
        why->verdict = POLICY_ALLOW;
        return true;
    }
    return policy_check(zt->policies, &r, why) == POLICY_ALLOW;
}

bool
zt_authorize(const struct zt *zt, const struct workload *dst, const char *peer_uri,
             const struct ipaddr *src_ip, const struct ipaddr *dst_ip, uint16_t dst_port,
             char *reason, size_t reason_len)
{
    struct policy_decision why;
    char buf[600];
    memset(&why, 0, sizeof(why));
    bool ok = check(zt, dst, peer_uri, src_ip, dst_ip, dst_port, &why);
    if (why.dry_run)
        log_info("dry-run: %s", policy_decision_str(&why, true, buf, sizeof(buf)));
    if (!ok)
        snprintf(reason, reason_len, "%s", policy_decision_str(&why, false, buf, sizeof(buf)));
    else if (reason_len > 0)
        reason[0] = '\0';
    return ok;
}

/*
 * Is the authorized inbound connection |c| still allowed, by the policies and
 * model in force? A destination workload that left the model keeps what it
 * had (its connections end with the pod).
 */
static bool
still_allowed(struct zt *zt, struct zconn *c, char *reason, size_t reason_len)
{
    c->authz_gen = zt->authz_gen;
    const struct workload *dst = model_workload_by_uid(zt->model, c->dst_uid);
    if (dst == NULL)
        return true;
    bool hbone = c->hbone_ip.family != 0;
    const struct ipaddr *ip = hbone ? &c->hbone_ip : &c->dst_ip;
    uint16_t port = hbone ? c->hbone_port : c->dst_port;
    return zt_authorize(zt, dst, c->mtls ? c->src_identity : NULL, &c->src_ip, ip, port, reason,
                        reason_len);
}

/* Do |a| and |b| (the same workload in two models) feed the same inputs to a decision? */
static bool
same_authz_inputs(const struct workload *a, const struct workload *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || strcmp(a->ns, b->ns) != 0 ||
        a->n_authz_policies != b->n_authz_policies)
        return false;
    for (size_t i = 0; i < a->n_authz_policies; i++)
        if (strcmp(a->authz_policies[i], b->authz_policies[i]) != 0)
            return false;
    return true;
}

/* Reference 5.4: open connections that the policies (or |old|'s successor model) now deny end. */
static void
recheck_open(struct zt *zt, const struct model *old)
{
    char reason[600];

    for (struct zconn *c = zt->conns; c != NULL; c = c->next) {
        /* Those still dialling are checked when the dial completes (zt_authz_recheck). */
        if (!c->inbound || c->pipe == NULL || c->dst_uid == NULL)
            continue;
        if (old != NULL && same_authz_inputs(model_workload_by_uid(old, c->dst_uid),
                                             model_workload_by_uid(zt->model, c->dst_uid))) {
            c->authz_gen = zt->authz_gen;
            continue;
        }
        if (still_allowed(zt, c, reason, sizeof(reason)))
            continue;
        log_info("connection closed due to %s change: %s", old ? "workload" : "policy", reason);
        c->error = old ? "connection closed due to workload change"
                       : "connection closed due to policy change";
        zconn_set_flag(c, "DENY");
        pipe_abort(c->pipe, -MESH_EDENIED);
    }
}

void
zt_set_policies(struct zt *zt, struct policy_set *set)
{
    policy_set_unref(zt->policies);
    zt->policies = set;
    zt->policy_version++;
    zt->authz_gen++;
    recheck_open(zt, NULL);
}

void
zt_authz_model_changed(struct zt *zt, const struct model *old)
{
    zt->authz_gen++;
    recheck_open(zt, old);
}

bool
zt_authz_recheck(struct zt *zt, struct zconn *c)
{
    char reason[600];

    if (c->dst_uid == NULL || c->authz_gen == zt->authz_gen)
        return true;
    if (still_allowed(zt, c, reason, sizeof(reason)))
        return true;
    log_info("connection closed due to policy change while dialling the app: %s", reason);
    return false;
}
