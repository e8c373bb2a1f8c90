/*
 * kcluster.h - the local cluster with a real Kubernetes control plane
 * (`meshctl install --kubernetes`, issue 11 section 4): the contract between
 * the install side (kcluster_*.c) and the kubelet side (kubelet_*.c).
 *
 * Layout added to the cluster directory ($MESH_CLUSTER_DIR):
 *
 *   cluster.json              "kubernetes": true (absent/false: the embedded cluster)
 *   kubeconfig                admin kubeconfig for the user's kubectl on the host
 *                             (server https://127.0.0.1:<port>, forwarded into <p>-cp)
 *   kube/                     pki/, etcd/, tokens, logs of etcd, kube-apiserver,
 *                             kube-controller-manager, kube-scheduler (all in <p>-cp;
 *                             kube-apiserver on KCLUSTER_APISERVER, etcd on 127.0.0.1)
 *   nodes/node-K/kubelet.kubeconfig   what `meshctl __kubelet` uses (server
 *                             https://KCLUSTER_APISERVER, from inside the node netns)
 *   nodes/node-K/cni/net.d/   the node's CNI configuration (the kubelet side writes it)
 *   nodes/node-K/cni/plugin.sock      mesh-cni --plugin-socket (amesh-cni talks to it)
 *   nodes/node-K/cni/plugin.state     mesh-cni --plugin-state
 *
 * Processes (ledger labels in pids/): "kube-etcd", "kube-apiserver",
 * "kube-controller-manager", "kube-scheduler", "kube-forward", "meshd",
 * "mesh-cni-node-K", "ztunnel-node-K", "kubelet-node-K". The kubelet runs in
 * the node's netns; pods it runs keep the embedded cluster's records
 * (pods/<ns>_<name>/run.json etc.) so that exec, logs and ztunnel-config work
 * in both modes.
 *
 * What the control plane gives the kubelet side (kcluster_cp.c): the kubelet
 * authenticates with a token as user "system:node:NAME", group "system:nodes";
 * authorization is Node,RBAC and that group is also bound to the ClusterRoles
 * system:node and system:node-proxier (EndpointSlices, Services for the service
 * rules). The ServiceAccount admission plugin is on (pods get their account's
 * token Secret volume and serviceAccountName "default" when none is given). The
 * controller-manager runs nodelifecycle (--node-monitor-grace-period 60s): a
 * Node needs its Ready condition and a renewed Lease in kube-node-lease; the
 * not-ready taint that admission puts on a new Node is removed by that
 * controller once the Node reports Ready. Install waits up to 60 s per node
 * for `kubectl wait --for condition=Ready node/NAME`.
 */
#ifndef MESH_MESHCTL_KCLUSTER_H
#define MESH_MESHCTL_KCLUSTER_H

#include <stdbool.h>

#include "cluster.h"

#define KCLUSTER_APISERVER_IP   CLUSTER_MESHD_IP
#define KCLUSTER_APISERVER      KCLUSTER_APISERVER_IP ":6443"
#define KCLUSTER_SERVICE_CIDR   "198.19.0.0/16" /* the embedded cluster's VIP range too */
#define KCLUSTER_KUBERNETES_VIP "198.19.0.1"    /* the `kubernetes` Service */
#define KCLUSTER_CACHE_DEFAULT  "/var/cache/amesh/kube-v1.20.2"

/* Was the cluster installed with --kubernetes? */
bool cluster_kube(const struct cluster *c);
/*
 * meshctl apply/delete/get/label edit and read the embedded cluster's records; on a
 * cluster with an API server they would act beside it. 0 when |c| is embedded; else
 * prints that |cmd| is kubectl's job there (with the KUBECONFIG line), closes |c| and
 * returns MESHCTL_EXIT_FAIL.
 */
int kcluster_use_kubectl(struct cluster *c, const char *cmd);

/* ---- install side (kcluster_*.c) ---- */

/*
 * `meshctl install --kubernetes [--nodes N]`, called by install_main once the arguments are
 * read and the binaries found; prints progress.
 */
int kcluster_install(int nodes);
/* Stops and removes what kcluster_install made (called by uninstall_main). */
int kcluster_uninstall(struct cluster *c, bool say);
/* Where the Kubernetes binaries are: $AMESH_KUBE_CACHE or KCLUSTER_CACHE_DEFAULT (bin/). */
const char *kcluster_cache(void);
/*
 * Hidden: `meshctl __forward [--port-file FILE] LISTEN_NETNS|- LISTEN_ADDR TARGET_NETNS|-
 * TARGET_ADDR` (LISTEN_ADDR port 0: a free one, written to FILE once listening).
 */
int kforward_main(int argc, char **argv);

/* ---- kubelet side (kubelet_*.c) ---- */

/*
 * Hidden: `meshctl __kubelet --node NAME` (MESH_CLUSTER_DIR in the environment),
 * run by install in the node's netns: registers the Node and renews its Lease,
 * runs the pods bound to it, calls the CNI chain of nodes/NAME/cni/net.d,
 * patches pod status, programs the node's service rules and pod DNS files.
 * Start it with the node's network namespace only (sys_spawn's .netns, or
 * nsenter --net), never `ip netns exec`: that gives it a mount namespace of
 * its own, and the pod namespaces it mounts under /run/netns would not reach
 * the host (exec, logs, mesh-cni). The control plane must run the node
 * lifecycle controller (it lifts the not-ready taint the Node is created with).
 */
int kubelet_main(int argc, char **argv);
/*
 * After the pods stopped (uninstall): removes the mount points on the host the
 * kubelets made for projected tokens (run.json "mountDirs"), when empty.
 */
void kubelet_release_mounts(struct cluster *c);

#endif
