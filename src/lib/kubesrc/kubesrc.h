/*
 * kubesrc.h - the Kubernetes API as a program's config source, the part
 * meshd and mesh-cni share: the --kubeconfig / --in-cluster flags and their
 * rules, the client they name, and the store names of API objects.
 *
 * Flags: `--kubeconfig FILE` (a kubeconfig: token, client certificate or CA
 * fields) or `--in-cluster` (the pod's service-account token and ca.crt,
 * KUBERNETES_SERVICE_HOST/PORT); they exclude each other. When a program is
 * given no other config source and KUBERNETES_SERVICE_HOST is set, it is
 * --in-cluster, so a DaemonSet or Deployment needs no flag for it.
 */
#ifndef MESH_LIB_KUBESRC_H
#define MESH_LIB_KUBESRC_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kube/kube.h"
#include "loop/loop.h"

struct kube_src_opts {
    const char *kubeconfig; /* --kubeconfig FILE, or NULL */
    bool in_cluster;        /* --in-cluster, or chosen when nothing else is given */
};

/* getopt_long values of the two flags; a program's own short options must not use them. */
#define KUBE_SRC_OPT_KUBECONFIG 'K'
#define KUBE_SRC_OPT_IN_CLUSTER 'I'
/* The two entries of a struct option table. */
#define KUBE_SRC_LONG_OPTIONS                                                                      \
    {"kubeconfig", required_argument, NULL, KUBE_SRC_OPT_KUBECONFIG},                              \
    {                                                                                              \
        "in-cluster", no_argument, NULL, KUBE_SRC_OPT_IN_CLUSTER                                   \
    }
/* Their usage lines; |other| names the program's other source ("--config-dir"). */
#define KUBE_SRC_USAGE(other)                                                                      \
    "  --kubeconfig FILE       also (or only) watch this Kubernetes API server\n"                  \
    "  --in-cluster            the API server of the cluster this runs in (service\n"              \
    "                          account token); the default when KUBERNETES_SERVICE_HOST\n"         \
    "                          is set and neither " other " nor --kubeconfig is given\n"

/* Takes getopt_long's |ch| if it is one of the two flags: true when it was. */
bool kube_src_flag(struct kube_src_opts *o, int ch, const char *arg);
/*
 * After the flags: -1 with |err| when both were given; with |other_source|
 * false, no flag and KUBERNETES_SERVICE_HOST set, turns --in-cluster on
 * (logged). Returns 0.
 */
int kube_src_finish(struct kube_src_opts *o, bool other_source, char *err, size_t errlen);
/* Is the API server a source (either flag)? */
bool kube_src_enabled(const struct kube_src_opts *o);

/*
 * Loads what the flags name and makes the client (logging the server it
 * talks to). NULL with |err| ("FILE: why" or "--in-cluster: why").
 */
struct kube_client *kube_src_client(struct loop *l, const struct kube_src_opts *o, char *err,
                                    size_t errlen);

/*
 * The k8s store's source name of an API object (k8s_store_put_json()):
 * "api:Kind/ns/name", "api:Kind/name" for cluster-scoped kinds. False when
 * |obj| has no metadata.name or the name does not fit |len|.
 */
bool kube_src_object_name(const struct kube_resource *r, const json_t *obj, char *buf, size_t len);

#endif
