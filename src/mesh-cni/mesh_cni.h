/*
 * mesh_cni.h - the node agent: follows enrollment and puts enrolled pods of
 * this node into the mesh without restarting them (reference 2.3 - 2.5).
 *
 *   main.c    flags, start-up, signals
 *   enroll.c  the desired set (enrolled pods of this node with a network
 *             namespace) against what is in place: rules in the pod's
 *             namespace (lib/inpod), the pod handed to ztunnel (lib/zds)
 *   kwatch.c  the API server as the source: this node's pods, namespaces
 *   mark.c    the ambient.istio.io/redirection annotation on pods in the mesh
 *   plugin.c  the CNI plugin's socket (--plugin-socket): a new pod's
 *             sandbox, answered once the pod is in the mesh (or not to be)
 *   sandboxes.c  the reported sandboxes on disk, for a restart
 *   scan.c    pods no plugin reported, found by their IPs among the host's namespaces
 *   install.c the plugin's binary and its entry in the node's CNI configuration
 */
#ifndef MESH_CNI_H
#define MESH_CNI_H

#include <stdbool.h>
#include <stddef.h>

#include "kubesrc/kubesrc.h"
#include "loop/loop.h"

struct cni_opts {
    const char *zds_socket;
    const char *config_dir;    /* NULL: the API server only */
    struct kube_src_opts kube; /* --kubeconfig / --in-cluster (kwatch.c) */
    const char *node;
    unsigned debounce_ms;
    const char *plugin_socket; /* NULL: no CNI plugin */
    const char *plugin_state;  /* the sandboxes it reported (sandboxes.h) */
    unsigned plugin_wait_ms;   /* how long an ADD waits for the pod / ztunnel's ack */
    const char *host_proc;     /* the host's /proc for the netns scan (scan.h); NULL: none */
    const char *netns_dir;     /* where runtimes pin sandboxes' namespaces (/var/run/netns) */
};

/* The netns scan's pace: a new set of pods to find waits this long after the last scan; the
 * same set, not found, waits twice as long each time, up to the max. */
#define SCAN_INTERVAL_MS    1000
#define SCAN_BACKOFF_MAX_MS 30000
/* The container id of a sandbox the scan found (no plugin reported it). */
#define SCAN_CONTAINER_ID "netns-scan"

struct cni;

struct cni *cni_start(struct loop *l, const struct cni_opts *o, char *err, size_t errlen);
/* Stops following; rules stay in the pods (a restarted agent takes them over). */
void cni_stop(struct cni *c);
size_t cni_n_enrolled(const struct cni *c);
/* Listing done (with the API server) and the ZDS socket open. */
bool cni_ready(const struct cni *c);

/* ---- for plugin.c: the sandboxes the CNI plugin reports ---- */

#include "cni/cni.h"

#define CNI_RECORDS_MAX 4096 /* sandboxes remembered; more ADDs are told to retry */

/* Remembers |r|'s sandbox for its pod and converges; 0 or -MESH_ELIMIT. */
int cni_sandbox_add(struct cni *c, const struct cni_req *r);
/* Forgets the pod's sandbox if it is |r|'s (container id) and converges; false if not known. */
bool cni_sandbox_del(struct cni *c, const struct cni_req *r);
size_t cni_n_sandboxes(const struct cni *c);

enum cni_pod_state {
    CNI_POD_UNKNOWN = 1, /* not in the store (or only an earlier pod of that name) */
    CNI_POD_OUT,         /* not to be in the mesh (not enrolled, terminated) */
    CNI_POD_WAITING,     /* rules in place, ztunnel has not acked yet */
    CNI_POD_IN,          /* rules in place, ztunnel acked */
    CNI_POD_FAILED,      /* should be in, is not: rules failed, ztunnel refused */
};
/* Where the pod of |r| stands; |msg| says why when it is not simply in or unknown. */
enum cni_pod_state cni_pod_state(struct cni *c, const struct cni_req *r, char *msg, size_t msglen);

#endif
