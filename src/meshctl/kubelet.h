/*
 * kubelet.h - `meshctl __kubelet --node NAME` (kcluster.h): one node of the
 * cluster with a real control plane, as a kubelet runs it.
 *
 *   kubelet_spec.c  pure parts (unit tested): the node's conflist, CNI_ARGS
 *                   and environment, one plugin's configuration in a chain,
 *                   the IP of a chain's result, the Node and pod status bodies
 *   kubelet_cni.c   running the chain as a container runtime does (ADD, CHECK,
 *                   DEL; prevResult threaded, the result cached per pod)
 *   kubelet_pods.c  pods: start (netns, CNI, supervisor), watch (restarts,
 *                   readiness), status patches, termination and the final delete
 *   kubelet_main.c  flags, the loop, Node registration, Lease and Ready
 *                   heartbeats, reflectors, service rules and DNS files
 *
 * Single-threaded: every API call goes through lib/kube from the loop. A
 * failed call is retried on a later tick; nothing running is stopped
 * because the API server is away (pods go only when the API says so).
 */
#ifndef MESH_MESHCTL_KUBELET_H
#define MESH_MESHCTL_KUBELET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "cluster.h"
#include "kube/kube.h"

#define KL_TICK_MS          500    /* container and readiness checks */
#define KL_LEASE_MS         10000  /* the node Lease's renewal (kubelet's default) */
#define KL_LEASE_SECS       40     /* leaseDurationSeconds */
#define KL_STATUS_MS        10000  /* the Ready condition's heartbeat */
#define KL_BACKOFF_MIN_MS   2000   /* first restart of a crashed container (kubelet: 10 s) */
#define KL_BACKOFF_MAX_MS   300000 /* kubelet's MaxContainerBackOff */
#define KL_BACKOFF_RESET_MS 600000 /* running this long resets the backoff */
#define KL_GRACE_DEFAULT    30     /* terminationGracePeriodSeconds */
#define KL_CNI_TIMEOUT_MS   30000  /* one plugin's run */
#define KL_CNI_OUT_MAX      (256 * 1024)
#define KL_CNI_BIN          "/usr/lib/cni" /* Debian's containernetworking-plugins */
#define KL_NETWORK          "amesh-pods"
#define KL_MIN(a, b)        ((a) < (b) ? (a) : (b))
#define KL_MAX(a, b)        ((a) > (b) ? (a) : (b))

/* ---- kubelet_spec.c (pure) ---- */

/* node-K -> K (1..CLUSTER_MAX_NODES), or -1. */
int kl_node_index(const char *node);
/*
 * The node's network configuration list: ptp + host-local (198.18.K.0/24,
 * gateway .1, state in |ipam_dir|) then amesh-cni (agentSocket |sock|).
 */
json_t *kl_conflist(int k, const char *ipam_dir, const char *sock);
/* CNI_ARGS for a pod sandbox. A fresh string. */
char *kl_cni_args(const char *ns, const char *name, const char *uid);
/*
 * The environment of one plugin run: CNI_COMMAND |cmd|, CNI_CONTAINERID |id|,
 * CNI_NETNS |netns| (may be NULL for DEL), CNI_IFNAME eth0, CNI_ARGS |args|,
 * CNI_PATH |path|, PATH, and ASAN/UBSAN options when set. A NULL-terminated
 * heap array (kl_strv_free).
 */
char **kl_cni_env(const char *cmd, const char *id, const char *netns, const char *args,
                  const char *path);
void kl_strv_free(char **v);
/* What plugin |i| of |list| reads on stdin: its object with the list's name and cniVersion, and
 * |prev| (may be NULL). */
json_t *kl_plugin_conf(const json_t *list, size_t i, const json_t *prev);
/*
 * The first IPv4 address of a chain's result (prevResult form), checked with
 * lib/cni's prevResult parser. Returns 0, or -1 with |err|.
 */
int kl_result_ip(const json_t *result, char *ip, size_t iplen, char *err, size_t errlen);

/* What the kubelet knows of one pod's container, for its status. */
struct kl_state {
    const char *phase; /* "Pending", "Running", "Succeeded", "Failed" */
    const char *ip;    /* NULL before the network */
    const char *host_ip;
    const char *start;      /* startTime (RFC 3339) */
    const char *started_at; /* the running container's, NULL when not running */
    bool running, ready;
    const char *ready_since; /* lastTransitionTime of Ready/ContainersReady */
    int restarts;
    bool terminated; /* the container ended (no restart, or waiting for one) */
    int exit_code;
    const char *reason;       /* "Completed", "Error", "CrashLoopBackOff", "ContainerCreating" */
    const char *finished_at;  /* of the last termination, NULL when none */
    const char *last_started; /* that termination's startedAt */
};
/* The body of a merge patch of the pod's status subresource. New reference. */
json_t *kl_status_patch(const json_t *pod, const struct kl_state *s);
/* The Node's status: addresses, capacity, allocatable, conditions (Ready since |since|), nodeInfo.
 */
json_t *kl_node_status(int k, const char *node, const char *since, const char *now);
/*
 * The endpoints of Service port |port| (an item of spec.ports) in Endpoints
 * object |ep| (NULL: none): its ready addresses with the port of that name,
 * [{"ip", "port"}] as kp_render_services() takes them. New reference.
 */
json_t *kl_endpoints_from_api(const json_t *ep, const json_t *port);
/*
 * The projected service-account tokens the pod's first container mounts:
 * [{"volume", "mountPath", "tokens": [{"path", "audience", "expirationSeconds"}]}]
 * from spec.volumes[].projected.sources[].serviceAccountToken (other sources
 * are not supported; paths with ".." are skipped). New reference.
 */
json_t *kl_token_volumes(const json_t *pod);
/*
 * Each of those volumes also lists its configMap sources (a configMap volume,
 * or configMap sources of a projected one) as "configMaps":
 * [{"name", "optional", "defaultMode", "items"?: [{"key", "path", "mode"}]}].
 * kl_configmap_files() gives the files one of them makes from the ConfigMap
 * |cm| (NULL: not found): [{"path", "data", "mode"}], or NULL with |err| when
 * the pod must wait (missing and not optional, a missing key, over the caps).
 */
#define KL_CM_MAX_SOURCES 16
#define KL_CM_MAX_FILES   256
#define KL_CM_MAX_BYTES   (1 << 20) /* the API server's own limit for one object */
json_t *kl_configmap_files(const json_t *src, const json_t *cm, char *err, size_t errlen);
/* The TokenRequest for one of those tokens, bound to |pod| (name and UID). */
json_t *kl_token_request(const json_t *pod, const json_t *tok);
/* RFC 3339 with microseconds (MicroTime, the Lease's renewTime). */
void kl_micro_time(char *out, size_t outlen);

/* ---- kubelet_cni.c ---- */

/* CLOCK_MONOTONIC in milliseconds (loop_now_ms() is cached per iteration). */
uint64_t kl_mono_ms(void);

/*
 * Runs the chain |list| for |cmd| ("ADD", "CHECK", "DEL") on sandbox |id| in
 * |netns| (a path; may be NULL for DEL). ADD: *result gets the last result
 * (new reference). CHECK and DEL take the cached result as prevResult in
 * |prev| (may be NULL for DEL). DEL runs every plugin in reverse and keeps
 * going after a failure. Returns 0, or -1 with |err| (the plugin's msg).
 */
int kl_cni_run(const json_t *list, const char *cmd, const char *id, const char *netns,
               const char *args, const char *cni_path, const json_t *prev, json_t **result,
               char *err, size_t errlen);

/* ---- kubelet_pods.c / kubelet_main.c ---- */

enum kl_phase {
    KP_CREATING, /* not started yet (or the last try failed: retry_at) */
    KP_RUNNING,  /* the supervisor runs */
    KP_BACKOFF,  /* the container ended; restart at retry_at */
    KP_DONE,     /* ended for good: Succeeded or Failed */
    KP_STOPPING, /* being deleted: waiting for the group to go */
    KP_DELETING, /* torn down; the final DELETE pending */
};

struct kl_pod {
    struct kl_pod *next;
    struct kubelet *kl;
    char *ns, *name, *uid;
    json_t *pod; /* the last object seen */
    enum kl_phase phase;
    char netns[128], ip[32];
    pid_t pid;
    unsigned long long pstart;
    int restarts;
    uint64_t retry_at, backoff_ms, running_since, probe_at, status_retry_at, kill_at;
    int probe_fails;
    bool ready, killed, api_gone, succeeded, has_last;
    int exit_code;
    char start[32], started_at[32], ready_since[32], finished_at[32], last_started[32];
    char *sent; /* the last status patch the server took */
    struct kube_request *status_req, *del_req;
    /* Projected service-account tokens (kubelet_token.c). */
    json_t *tokvols; /* kl_token_volumes() */
    bool tokens_ok;  /* every file written since the last start attempt */
    size_t tok_next; /* the next token to request in this round */
    uint64_t tok_retry_at, tok_refresh_at;
    struct kube_request *tok_req;
    /* ConfigMap volumes (kubelet_configmap.c): fetched in rounds, rewritten on change. */
    bool cms_ok;    /* every configMap source written since the last start attempt */
    size_t cm_next; /* the next configMap source of this round */
    uint64_t cm_retry_at, cm_refresh_at;
    struct kube_request *cm_req;
    struct kl_probe *probe; /* a readiness probe in flight */
};

struct kubelet {
    struct loop *loop;
    struct kube_client *kc;
    struct cluster c;
    char node[32];
    int k;               /* node-K */
    char node_ip[32];    /* 198.18.0.(10+K) */
    json_t *conflist;    /* what nodes/node-K/cni/net.d holds */
    char *cni_path;      /* /usr/lib/cni:<bindir> */
    json_t *svcs;        /* "ns/name" -> Service */
    json_t *eps;         /* "ns/name" -> Endpoints */
    struct kl_pod *pods; /* every pod of this node we run or clean up */
    bool pods_synced, svcs_synced, eps_synced;
    bool dirty_net;       /* service rules and DNS files to rewrite */
    char ready_since[32]; /* the Node's Ready lastTransitionTime */
    bool registered;      /* the Node exists */
    struct kube_request *node_req, *lease_req;
    uint64_t next_status_ms, next_lease_ms;
};

/* A pod of this node was listed, added or changed. */
void kl_pod_upsert(struct kubelet *kl, const json_t *pod);
/* A pod was deleted from the API (or vanished in a relist). */
void kl_pod_remove(struct kubelet *kl, const json_t *pod);
/* After the first complete list of pods: local pods the API does not know go. */
void kl_pods_synced(struct kubelet *kl);
/* Every KL_TICK_MS: containers, readiness, terminations, pending status patches. */
void kl_pods_tick(struct kubelet *kl);
/* Services or endpoints changed: every local pod's /etc/netns files. */
void kl_pods_sync_dns(struct kubelet *kl);
void kl_pods_free(struct kubelet *kl);

/* ---- kubelet_probe.c ---- */

struct kl_probe;
typedef void kl_probe_fn(void *arg, bool ok);
/*
 * Probes |ip|:|port| from the loop: a TCP connect (|path| NULL) or an HTTP GET
 * of |path| answered 200-399, within |timeout_ms|. |cb| runs once, unless the
 * probe is cancelled first. NULL when it cannot start (bad port or path).
 */
struct kl_probe *kl_probe_start(struct loop *l, const char *ip, int port, const char *path,
                                unsigned timeout_ms, kl_probe_fn *cb, void *arg);
void kl_probe_cancel(struct kl_probe *pr); /* NULL is fine */

/* ---- kubelet_token.c ---- */

/*
 * Requests (TokenRequest bound to the pod) and writes the pod's projected
 * tokens under pods/<ns>_<name>/volumes/, and renews them at 80 % of their
 * life. True once every file is there (or none is wanted).
 */
bool kl_tokens_ready(struct kubelet *kl, struct kl_pod *p);
/* The supervisor's "mounts" (volume directory -> mountPath) into |run|; mount points made. */
int kl_tokens_mounts(struct kubelet *kl, struct kl_pod *p, json_t *run, char *err, size_t errlen);
/* Removes the mount points |run| made that no other pod's record uses. */
void kl_tokens_release(struct kubelet *kl, const char *ns, const char *name, const json_t *run);

/* ---- kubelet_configmap.c ---- */

/*
 * GETs each configMap source of the pod's volumes (every KL_CM_REFRESH_MS
 * once written) and writes its files under pods/<ns>_<name>/volumes/<volume>/,
 * each replaced by a rename so a reader sees the old or the new file whole.
 * True once every non-optional ConfigMap was found and written.
 */
#define KL_CM_REFRESH_MS 2000
bool kl_configmaps_ready(struct kubelet *kl, struct kl_pod *p);

/* Service records ({"object": Service}) as the cluster's files use them; new reference. */
json_t *kl_service_records(const struct kubelet *kl);

#endif
