/*
 * kwatch.c - Pods of this node and Namespaces from the API server into the
 * store; see kwatch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "kubesrc/kubesrc.h"
#include "kwatch.h"
#include "log/log.h"

enum { KIND_NAMESPACE, KIND_POD, N_KINDS };

static const struct kube_resource resources[N_KINDS] = {
    [KIND_NAMESPACE] = {"v1", "namespaces", "Namespace", false},
    [KIND_POD] = {"v1", "pods", "Pod", true},
};

struct cni_kube;

struct kwatch_kind {
    struct cni_kube *k;
    struct kube_reflector *rf;
    bool synced;
};

struct cni_kube {
    struct loop *loop;
    struct k8s_store *st;
    struct cni_kube_cbs cbs;
    void *arg;
    struct kwatch_kind kinds[N_KINDS];
    bool gate_open, stopped;
    uint64_t start_ms;
    struct loop_defer commit_defer, free_defer;
    struct log_ratelimit rl;
};

static void
on_commit(void *arg)
{
    struct cni_kube *k = arg;

    if (k->stopped || !k->gate_open)
        return; /* before the gate, the commit that opens it makes everything visible at once */
    k8s_store_commit(k->st);
    k->cbs.changed(k->arg);
}

static void
on_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct kwatch_kind *kw = arg;
    struct cni_kube *k = kw->k;
    char name[600];

    if (!kube_src_object_name(r, obj, name, sizeof(name))) {
        log_warn_rl(&k->rl, "%s without metadata.name from the API server; ignored", r->kind);
        return;
    }
    /* An invalid object keeps its last good version (the store's rule); say so, rate limited. */
    struct k8s_diags d = {0};
    if (k8s_store_put_json(k->st, name, obj, &d, false) < 0 && d.n > 0)
        log_warn_rl(&k->rl, "%s: %s; keeping its last good version", name, d.v[0].msg);
    k8s_diags_clear(&d);
    loop_defer(k->loop, &k->commit_defer, on_commit, k);
}

static void
on_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct kwatch_kind *kw = arg;
    struct cni_kube *k = kw->k;
    char name[600];

    if (!kube_src_object_name(r, obj, name, sizeof(name)))
        return;
    k8s_store_forget(k->st, name, false);
    loop_defer(k->loop, &k->commit_defer, on_commit, k);
}

static void
on_synced(void *arg, const struct kube_resource *r, bool served)
{
    struct kwatch_kind *kw = arg;
    struct cni_kube *k = kw->k;

    if (!served)
        log_warn_rl(&k->rl, "the API server does not serve %s %s; retrying", r->group_version,
                    r->plural);
    if (!kw->synced)
        log_info("%s listed", r->plural);
    kw->synced = true;
    for (int i = 0; i < N_KINDS; i++)
        if (!k->kinds[i].synced)
            return;
    if (k->gate_open) {
        loop_defer(k->loop, &k->commit_defer, on_commit, k);
        return;
    }
    k->gate_open = true;
    k8s_store_commit(k->st);
    log_info("pods of the node and namespaces listed in %llu ms: %zu pods, %zu namespaces",
             (unsigned long long)(clock_mono_ms() - k->start_ms), k8s_store_count(k->st, K8S_POD),
             k8s_store_count(k->st, K8S_NAMESPACE));
    k->cbs.synced(k->arg);
}

static const struct kube_sink sink = {
    .upsert = on_upsert,
    .remove = on_remove,
    .synced = on_synced,
};

struct cni_kube *
cni_kube_start(struct loop *l, struct kube_client *kc, struct k8s_store *st, const char *node,
               const struct cni_kube_cbs *cbs, void *arg, char *err, size_t errlen)
{
    struct cni_kube *k = xcalloc(1, sizeof(*k));
    char *fsel = xasprintf("spec.nodeName=%s", node);

    k->loop = l;
    k->st = st;
    k->cbs = *cbs;
    k->arg = arg;
    k->start_ms = clock_mono_ms();
    k->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    for (int i = 0; i < N_KINDS; i++) {
        k->kinds[i].k = k;
        k->kinds[i].rf = kube_reflector_start(kc, &resources[i], i == KIND_POD ? fsel : NULL, NULL,
                                              &sink, &k->kinds[i]);
        if (k->kinds[i].rf == NULL) {
            snprintf(err, errlen, "cannot watch %s", resources[i].plural);
            free(fsel);
            cni_kube_stop(k);
            return NULL;
        }
    }
    free(fsel);
    return k;
}

void
cni_kube_stop(struct cni_kube *k)
{
    if (k == NULL)
        return;
    k->stopped = true;
    for (int i = 0; i < N_KINDS; i++)
        if (k->kinds[i].rf != NULL)
            kube_reflector_stop(k->kinds[i].rf);
    /* A queued commit (it runs first, and sees |stopped|) must not find |k| freed. */
    loop_defer(k->loop, &k->free_defer, free, k);
}

bool
cni_kube_synced(const struct cni_kube *k)
{
    return k != NULL && k->gate_open;
}
