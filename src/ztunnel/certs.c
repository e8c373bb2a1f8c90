/*
 * certs.c - one certificate per workload identity on this node, from
 * lib/identity's manager: minted from --ca-dir, or from meshd's CA.
 *
 * Only identities of workloads on this node are ever requested: prefetched
 * when such a workload appears, forgotten when the last one leaves (the CA's
 * node restriction would refuse the others anyway).
 *
 * The manager lives on worker 0. Other workers read an immutable table of
 * (identity, credentials) that worker 0 publishes after every change; a miss
 * there asks worker 0 to fetch the identity, and the next table wakes the
 * connections waiting for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "identity/certmgr.h"
#include "identity/node_tokens.h"
#include "ztunnel.h"

struct certs {
    struct zt *zt;
    struct certmgr *mgr;
};

struct creds_entry {
    char *identity;
    struct tls_creds *creds;
};

struct zt_creds {
    atomic_int refs; /* holders beyond the first */
    size_t n, cap;
    struct creds_entry *e; /* sorted by identity */
};

static void
on_change(void *arg)
{
    struct certs *c = arg;
    certs_publish(c);
    zt_wake(c->zt); /* connections held for a certificate */
}

struct certs *
certs_new(struct zt *zt, char *err, size_t errlen)
{
    struct certs *c = xcalloc(1, sizeof(*c));
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
        .arg = c,
    };
    c->zt = zt;
    c->mgr = certmgr_new(&cfg, err, errlen);
    if (c->mgr == NULL) {
        free(c);
        return NULL;
    }
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

/* ---- the published table ------------------------------------------------- */

static int
entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct creds_entry *)a)->identity,
                  ((const struct creds_entry *)b)->identity);
}

static void
collect(void *arg, const char *identity, struct tls_creds *creds)
{
    struct zt_creds *t = arg;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->e = xrealloc(t->e, t->cap * sizeof(*t->e));
    }
    tls_creds_ref(creds);
    t->e[t->n++] = (struct creds_entry){.identity = xstrdup(identity), .creds = creds};
}

void
zt_creds_ref(struct zt_creds *t)
{
    if (t != NULL)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void
zt_creds_unref(struct zt_creds *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) > 0)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].identity);
        tls_creds_unref(t->e[i].creds);
    }
    free(t->e);
    free(t);
}

void
certs_publish(struct certs *c)
{
    struct zt *zt = c->zt;
    if (zt->n_workers < 2)
        return;
    struct zt_creds *t = xcalloc(1, sizeof(*t));
    certmgr_each(c->mgr, collect, t);
    if (t->n > 1)
        qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
    workers_publish(zt, NULL, NULL, t);
    zt_creds_unref(t);
}

static struct tls_creds *
creds_find(const struct zt_creds *t, const char *identity)
{
    size_t lo = 0, hi = t != NULL ? t->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(identity, t->e[mid].identity);
        if (d == 0)
            return t->e[mid].creds;
        if (d < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

struct fetch_req {
    struct zt *zt0;
    char identity[];
};

/* On worker 0: a connection on another worker waits for this identity. */
static void
fetch_for_worker(void *arg)
{
    struct fetch_req *f = arg;
    if (f->zt0->certs != NULL)
        certmgr_get(f->zt0->certs->mgr, f->identity);
    free(f);
}

struct tls_creds *
certs_get(struct zt *zt, const struct workload *w)
{
    if (!zt_is_local(zt, w))
        return NULL; /* a node only ever holds keys for its own workloads */
    if (zt->id == 0)
        return certmgr_get(zt->certs->mgr, w->identity);
    struct tls_creds *creds = creds_find(zt->creds, w->identity);
    if (creds == NULL) {
        size_t n = strlen(w->identity) + 1;
        struct fetch_req *f = xmalloc(sizeof(*f) + n);
        f->zt0 = zt->workers[0];
        memcpy(f->identity, w->identity, n);
        loop_post(f->zt0->loop, fetch_for_worker, f);
    }
    return creds;
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
    certs_publish(c); /* forgotten identities leave the workers' tables too */
}

void
certs_dump(struct certs *c, struct json_t *arr)
{
    certmgr_dump(c->mgr, arr);
}
