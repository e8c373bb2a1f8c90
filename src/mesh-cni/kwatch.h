/*
 * kwatch.h - mesh-cni's Kubernetes source: reflectors (lib/kube) for the
 * Pods of its node (field selector spec.nodeName=<node>, as istio-cni's node
 * agent watches) and for all Namespaces, feeding the same k8s store as
 * --config-dir through the same entry point as meshd (k8s_store_put_json(),
 * objects named by kube_src_object_name()).
 *
 * The puts of one loop iteration are committed together, then |changed|
 * runs. Nothing is reported before both kinds were listed once: |synced|
 * runs then (once), so a restarted agent never converges on, or hands
 * ztunnel, a half-listed node. Later relists report their changes (objects
 * that vanished as removals) through |changed| like watch events.
 */
#ifndef MESH_CNI_KWATCH_H
#define MESH_CNI_KWATCH_H

#include <stdbool.h>

#include "k8s/k8s.h"
#include "kube/kube.h"
#include "loop/loop.h"

struct cni_kube_cbs {
    void (*changed)(void *arg); /* after the gate opened */
    void (*synced)(void *arg);  /* the gate opens (once) */
};

struct cni_kube;

struct cni_kube *cni_kube_start(struct loop *l, struct kube_client *kc, struct k8s_store *st,
                                const char *node, const struct cni_kube_cbs *cbs, void *arg,
                                char *err, size_t errlen);
/* Stops the reflectors (no callback afterwards). Accepts NULL. */
void cni_kube_stop(struct cni_kube *k);
bool cni_kube_synced(const struct cni_kube *k);

#endif
