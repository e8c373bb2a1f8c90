/*
 * scan.h - pods that started before mesh-cni, or before its CNI plugin was
 * chained, have no sandbox reported by the plugin: their network namespace
 * is found as istio-cni finds it, by walking the host's processes
 * (<proc>/<pid>/ns/net, each distinct namespace once) and listing the
 * addresses in each (rtnetlink, lib/inpod); a namespace that holds all of a
 * pod's IPs is that pod's. It is named by a bind mount of it in the netns
 * dir (/var/run/netns, where runtimes pin sandboxes) when there is one, else
 * by <proc>/<pid>/ns/net of its lowest pid (the sandbox's first process).
 *
 * Bounded: SCAN_NETNS_MAX namespaces examined and SCAN_BUDGET_MS per scan;
 * the caller rate limits scans. Our own namespace (the host's: mesh-cni runs
 * with hostNetwork) is never a pod's. Two namespaces holding one pod's IPs
 * make that pod ambiguous: it is not matched (said in the log).
 *
 * On Kubernetes <proc> must be the host's: the DaemonSet sets hostPID.
 */
#ifndef MESH_CNI_SCAN_H
#define MESH_CNI_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "inpod/inpod.h"

#define SCAN_NETNS_MAX 2048 /* distinct namespaces examined per scan */
#define SCAN_PIDS_MAX  (1 << 20)
#define SCAN_BUDGET_MS 2000 /* per scan; what is left waits for the next one */
#define SCAN_ADDRS_MAX 256  /* addresses read per namespace */
#define SCAN_IPS_MAX   8    /* a pod's IPs compared */

struct scan_want {
    const char *key; /* "<ns>/<name>", for the log */
    struct inpod_addr ips[SCAN_IPS_MAX];
    size_t n_ips;
    /* out */
    char path[300]; /* the namespace found; "" if none */
    bool ambiguous; /* more than one namespace holds its IPs */
};

struct scan_stats {
    size_t pids;     /* processes looked at */
    size_t netns;    /* distinct namespaces (our own excluded) */
    size_t examined; /* namespaces whose addresses were read */
    size_t failed;   /* namespaces that could not be read (gone, no permission) */
    bool truncated;  /* a cap or the time budget ended the scan early */
    uint64_t ms;
};

/* A pod's status.podIPs (else status.podIP) as addresses, at most |max|; how many. */
size_t scan_pod_ips(const json_t *pod, struct inpod_addr *out, size_t max);

void scan_netns(const char *proc_dir, const char *netns_dir, struct scan_want *w, size_t n,
                struct scan_stats *st);

#endif
