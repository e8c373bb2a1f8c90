/*
 * mark.h - the ambient.istio.io/redirection annotation on pods, as Istio's
 * node agent keeps it: "enabled" once a pod is in the mesh (rules in place,
 * ztunnel acked it), removed when it leaves; written with a JSON merge patch
 * of pods/<name>/status (the node agent's RBAC grants that subresource, and
 * it runs no admission webhook), with metadata.uid in the patch so a pod
 * re-created under the same name is never marked for its predecessor.
 *
 * The caller says, after each change, what it wants for each pod of its node
 * and what the store shows; a patch is sent only when the two differ, at most
 * MARK_INFLIGHT_MAX at a time. After a success the pod is left alone until
 * the watch shows the change (or MARK_SETTLE_MS passed); a failure is retried
 * with a jittered backoff (MARK_BACKOFF_MIN_MS doubling to
 * MARK_BACKOFF_MAX_MS); failures log at most 5 lines per 10 s.
 */
#ifndef MESH_CNI_MARK_H
#define MESH_CNI_MARK_H

#include <stdbool.h>
#include <stdint.h>

#include "kube/kube.h"
#include "loop/loop.h"

#define MARK_ANNOTATION     "ambient.istio.io/redirection"
#define MARK_VALUE          "enabled"
#define MARK_INFLIGHT_MAX   8
#define MARK_TIMEOUT_MS     10000
#define MARK_SETTLE_MS      10000
#define MARK_BACKOFF_MIN_MS 800
#define MARK_BACKOFF_MAX_MS 30000

enum mark_want {
    MARK_LEAVE, /* whatever it has (the pod is on its way in) */
    MARK_SET,   /* "enabled" */
    MARK_CLEAR, /* no annotation */
};

struct marker;

struct marker *marker_new(struct loop *l, struct kube_client *kc);
/* Cancels what is in flight. Accepts NULL. */
void marker_free(struct marker *mk);

/*
 * One round: marker_begin(), marker_pod() for every pod of the node,
 * marker_end() (pods not named are forgotten, their requests cancelled) and
 * the patches needed go out. |value| is the annotation's value in the store
 * (NULL: absent); |uid| may be "".
 */
void marker_begin(struct marker *mk);
void marker_pod(struct marker *mk, const char *ns, const char *name, const char *uid,
                const char *value, enum mark_want want);
void marker_end(struct marker *mk);

struct marker_stats {
    uint64_t sent, ok, failed; /* patches */
    uint64_t pending;          /* pods whose annotation is not yet as wanted */
};
void marker_stats(const struct marker *mk, struct marker_stats *out);

#endif
