/*
 * authz.c - L4 authorization at the destination (reference 5.1, 5.4).
 *
 * Every inbound connection (HBONE on 15008, plaintext on 15006) is checked
 * against the policies that apply to its destination workload before the app
 * is dialled, with the real destination address and port (after HBONE), and
 * the peer's identity when there is one (plaintext has none). When the
 * policies change, open inbound connections are checked again and those now
 * denied are closed. The evaluation itself is lib/policy's.
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

void
zt_set_policies(struct zt *zt, struct policy_set *set)
{
    char reason[600];
    policy_set_unref(zt->policies);
    zt->policies = set;

    /* Reference 5.4: connections the new policies deny are closed. */
    for (struct zconn *c = zt->conns; c != NULL; c = c->next) {
        if (!c->inbound || c->pipe == NULL || c->dst_uid == NULL)
            continue;
        const struct workload *dst = model_workload_by_uid(zt->model, c->dst_uid);
        if (dst == NULL)
            continue;
        bool hbone = c->hbone_ip.family != 0;
        const struct ipaddr *ip = hbone ? &c->hbone_ip : &c->dst_ip;
        uint16_t port = hbone ? c->hbone_port : c->dst_port;
        if (zt_authorize(zt, dst, c->mtls ? c->src_identity : NULL, &c->src_ip, ip, port, reason,
                         sizeof(reason)))
            continue;
        log_info("connection closed due to policy change: %s", reason);
        c->error = "connection closed due to policy change";
        zconn_set_flag(c, "DENY");
        pipe_abort(c->pipe, -MESH_EDENIED);
    }
}
