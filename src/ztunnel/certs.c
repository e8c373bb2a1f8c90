/*
 * certs.c - one certificate per workload identity on this node, from
 * lib/identity's manager: minted from --ca-dir, or from meshd's CA.
 *
 * Only identities of workloads on this node are ever requested: prefetched
 * when such a workload appears, forgotten when the last one leaves (the CA's
 * node restriction would refuse the others anyway).
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/base.h"
#include "identity/certmgr.h"
#include "identity/node_tokens.h"
#include "ztunnel.h"

struct certs {
    struct zt *zt;
    struct certmgr *mgr;
};

static void
on_change(void *arg)
{
    zt_wake(arg); /* connections held for a certificate */
}

struct certs *
certs_new(struct zt *zt, char *err, size_t errlen)
{
    const struct certmgr_config cfg = {
        .loop = zt->loop,
        .ca_dir = zt->opts.ca_dir,
        .chan = zt->ca_chan,
        .auth = {.authority = zt->opts.cp_name, .cluster = zt->opts.cluster,
                 .bearer = zt->tokens != NULL ? node_tokens_bearer_ca : NULL,
                 .bearer_arg = zt->tokens},
        .cert_ttl_s = zt->opts.cert_ttl_s,
        .allow_x25519 = zt->opts.allow_x25519,
        .on_change = on_change,
        .arg = zt,
    };
    struct certmgr *mgr = certmgr_new(&cfg, err, errlen);
    if (mgr == NULL)
        return NULL;
    struct certs *c = xcalloc(1, sizeof(*c));
    c->zt = zt;
    c->mgr = mgr;
    return c;
}

void
certs_free(struct certs *c)
{
    if (c == NULL)
        return;
    certmgr_free(c->mgr);
    free(c);
}

struct tls_creds *
certs_get(struct certs *c, const struct workload *w)
{
    if (!zt_is_local(c->zt, w))
        return NULL; /* a node only ever holds keys for its own workloads */
    return certmgr_get(c->mgr, w->identity);
}

void
certs_sync(struct certs *c)
{
    const struct model *m = c->zt->model;
    char why[300];
    certmgr_mark(c->mgr);
    for (size_t i = 0; i < m->n_workloads; i++) {
        const struct workload *w = m->workloads[i];
        if (w->tunnel == TUNNEL_HBONE && zt_is_local(c->zt, w))
            certmgr_want(c->mgr, w->identity);
    }
    snprintf(why, sizeof(why), "no workload on node %s uses it", c->zt->opts.node);
    certmgr_sweep(c->mgr, why);
}

void
certs_dump(struct certs *c, struct json_t *arr)
{
    certmgr_dump(c->mgr, arr);
}
