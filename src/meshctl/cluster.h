/*
 * cluster.h - the local cluster behind meshctl install/apply/get/exec: nodes
 * and pods are network namespaces on this machine (README "Local cluster").
 *
 *   cluster_util.c     pure helpers: names, hashes, addresses, ages, kinds,
 *                      Deployment -> Pod, container environment (unit tested)
 *   cluster_state.c    the cluster directory: cluster.json, lock, ledger of
 *                      namespaces and processes, object records, atomic files
 *   cluster_sys.c      running commands, daemons, netns switching, stopping
 *                      process groups
 *   cluster_net.c      fabric, control-plane and node namespaces; pod links
 *   cluster_install.c  install, uninstall
 *   kcluster_*.c       install --kubernetes (kcluster.h)
 *   cluster_manifest.c reading -f files, directories, stdin; kinds and names
 *   cluster_apply.c    apply -f, delete -f / delete KIND NAME
 *   cluster_pods.c     pods: create, start (the supervisor), delete;
 *                      Deployments reconciled; /etc/netns hosts and resolv.conf
 *   kube_proxy.c       service VIP DNAT in each node (iptables nat)
 *   cluster_get.c      get
 *   cluster_cmds.c     label, exec, logs
 *   waypoint_ctl.c     waypoint Gateways: their Deployment, Service, status
 *
 * The directory ($MESH_CLUSTER_DIR, default /run/amesh):
 *
 *   cluster.json          prefix, nodes, creation time, round-robin counter
 *   lock                  flock for commands that change the cluster
 *   config/               what meshd and mesh-cni read (YAML, written atomically)
 *   state/                meshd's state directory (root CA, token key)
 *   objects/<key>_<ns>_<name>.json   {"applied": manifest, "object": live object}
 *   pods/<ns>_<name>/     run.json (runtime), log, exit.json, root/ (cwd)
 *   nodes/node-N/         netns (its name, for meshctl --node), token, zds.sock,
 *                         ztunnel.log, mesh-cni.log, iptables.rules
 *   pids/<label>.pid      "pid starttime" of every process group started
 *   netns.d/<name>        one empty file per network namespace made
 *   meshd.log
 */
#ifndef MESH_MESHCTL_CLUSTER_H
#define MESH_MESHCTL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define CLUSTER_DIR_DEFAULT "/run/amesh"
#define CLUSTER_MAX_NODES   16
#define CLUSTER_MESHD_IP    "198.18.0.2"
#define CLUSTER_MESHD_XDS   CLUSTER_MESHD_IP ":15012"
#define CLUSTER_MONITORING  "127.0.0.1:15014"
#define CLUSTER_ZTUNNEL_RDY "127.0.0.1:15021"
#define CLUSTER_READY_MS    60000 /* bound on each component's readiness wait */
#define CLUSTER_STOP_MS     5000  /* SIGTERM -> SIGKILL */
#define CLUSTER_NETNS_MAX   64    /* longest pod netns name before hashing */

/* ---- cluster_util.c (pure) ---- */

/* What apply knows of a kind. */
struct kind_info {
    const char *kind;     /* "Deployment" */
    const char *group;    /* API group, "" for core */
    const char *resource; /* kubectl's name: "deployment.apps" */
    const char *plural;   /* "deployments" (NotFound messages) */
    bool namespaced;
    bool config; /* written to config/ for meshd and mesh-cni */
};
/* By kind and apiVersion ("apps/v1", "v1"); NULL when not supported. */
const struct kind_info *kind_lookup(const char *kind, const char *api_version);
/* By what a user types: "pods", "po", "svc", "deploy", "ns", "pod"... NULL when unknown. */
const struct kind_info *kind_by_alias(const char *alias);
const struct kind_info *kind_by_name(const char *kind);

/* FNV-1a 64. */
uint64_t cl_hash(uint64_t h, const void *p, size_t n);
#define CL_HASH_INIT 0xcbf29ce484222325ULL
/* k8s's rand.SafeEncodeString alphabet: lowercase consonants and digits without vowels. */
#define CL_SAFE_ALPHABET "bcdfghjklmnpqrstvwxz2456789"
/* |n| characters of the alphabet from |h| (pod-template-hash), NUL-terminated. */
void cl_safe_encode(uint64_t h, char *out, size_t n);
/* The pod-template-hash of a Deployment's spec.template: 10 characters. */
void cl_template_hash(const json_t *tmpl, char out[11]);

/*
 * The network namespace of pod |ns|/|name|: "<prefix>-pod-<ns>-<name>", or,
 * when that is longer than CLUSTER_NETNS_MAX, its first part and "-<12 hex of
 * a hash of ns/name>". Returns the length written.
 */
size_t cl_pod_netns_name(const char *prefix, const char *ns, const char *name, char *out,
                         size_t outlen);
/* The netns prefix of a cluster directory: "amesh" for the default, else "am<6 hex>". */
void cl_prefix_for_dir(const char *dir, char *out, size_t outlen);

/*
 * Picks a free host number in [2, 254] (.1 is the node's gateway), starting at
 * |start| and wrapping. |used| has 256 entries. Returns it, or -1 when full.
 */
int cl_ip_alloc(const bool used[256], int start);
/* 198.19.0.0/16 without .0.0 and .0.1: index in [0, 65533] -> address. */
void cl_vip_from_index(unsigned idx, char *out, size_t outlen);
/* The index of a VIP, or -1 when |ip| is not in 198.19.0.0/16 or is .0.0/.0.1. */
int cl_vip_index(const char *ip);

/*
 * What the API server does with a Service's ClusterIP, from its |spec| (may
 * be NULL): none for a headless Service (clusterIP or clusterIPs[0] "None")
 * or type ExternalName; the address asked for in clusterIP, else in
 * clusterIPs[0] (copied to |ip|; checked by the caller); else, "" and absent
 * alike, a fresh one. |ip| is "" unless requested.
 */
enum cl_vip_want { CL_VIP_NONE = 0, CL_VIP_ALLOCATE, CL_VIP_REQUESTED };
enum cl_vip_want cl_service_vip(const json_t *spec, char *ip, size_t iplen);

/* kubectl's AGE column (duration.HumanDuration). */
void cl_age(long long secs, char *out, size_t outlen);

/*
 * The Pod a Deployment |dep| makes: name "<dep>-<suffix>", labels of the
 * template plus pod-template-hash |hash|, owner ReplicaSet "<dep>-<hash>",
 * the template's spec. A new reference.
 */
json_t *cl_pod_from_deployment(const json_t *dep, const char *hash, const char *suffix);

/*
 * Expands Kubernetes $(VAR) references in |s| with the "K=V" strings of
 * |env| (a JSON array): $(VAR) of an undefined VAR stays as is, $$ is $.
 * A fresh heap string.
 */
char *cl_expand(const char *s, const json_t *env);

/* A label map edit, "k=v" or "k-". Returns 0, or -1 when malformed. */
int cl_parse_label_arg(const char *arg, char *key, size_t keylen, char *val, size_t vallen,
                       bool *remove);
/* Does |labels| (an object or NULL) match |selector| (an object of equalities; empty = nothing)? */
bool cl_selector_matches(const json_t *selector, const json_t *labels);

/* RFC 3339 UTC of |t| ("2025-01-01T10:00:00Z"). */
void cl_rfc3339(long long t, char *out, size_t outlen);
/* Parses what cl_rfc3339 writes; -1 when it cannot. */
long long cl_parse_rfc3339(const char *s);

/* ---- cluster_state.c ---- */

struct cluster {
    char *dir;
    char *bindir; /* where meshctl, meshd, ztunnel, mesh-cni and the samples live */
    char prefix[32];
    int n_nodes;
    json_t *meta; /* cluster.json */
    int lock_fd;
};

/* $MESH_CLUSTER_DIR or the default. */
const char *cluster_dir(void);
/*
 * Opens the cluster of cluster_dir(): reads cluster.json and, when |lock|,
 * takes the lock (waits). Returns 0, or -1 with a message printed.
 */
int cluster_open(struct cluster *c, bool lock);
void cluster_close(struct cluster *c);
int cluster_save_meta(struct cluster *c);
/* "<dir>/<fmt...>" in a fresh string. */
char *cl_path(const struct cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cl_self_bindir(void);

/* Files. */
int cl_mkdirs(const char *path, mode_t mode);
/* Writes through ".<name>.tmp" in the same directory and renames. Returns 0 or -errno. */
int cl_write_atomic(const char *path, const char *data, size_t len, mode_t mode);
int cl_write_json(const char *path, const json_t *v);
int cl_write_yaml(const char *path, const json_t *v, const char *header);
json_t *cl_read_json(const char *path);
/* The whole file, NUL-terminated; NULL with errno set. */
char *cl_read_file(const char *path, size_t *len);
/* Removes |path| and everything below it without crossing mounts. Returns 0 or -1. */
int cl_rmtree(const char *path);

/* Ledger. */
int ledger_netns_add(struct cluster *c, const char *name);
void ledger_netns_del(struct cluster *c, const char *name);
/* Names in netns.d (a JSON array of strings, sorted); new reference. */
json_t *ledger_netns_list(const struct cluster *c);
int ledger_proc_add(struct cluster *c, const char *label, pid_t pid);
/* Reads pids/<label>.pid. Returns 0, or -1 when absent. */
int ledger_proc_get(const struct cluster *c, const char *label, pid_t *pid,
                    unsigned long long *start);
void ledger_proc_del(struct cluster *c, const char *label);
/* Labels in pids/, sorted; new reference. */
json_t *ledger_proc_list(const struct cluster *c);

/* Object records (objects/). |ns| is "" for cluster-scoped kinds. */
char *rec_path(const struct cluster *c, const struct kind_info *k, const char *ns,
               const char *name);
/* {"applied": ..., "object": ...} or NULL; new reference. */
json_t *rec_get(const struct cluster *c, const struct kind_info *k, const char *ns,
                const char *name);
/* Saves the record and, for config kinds, config/<key>_<ns>_<name>.yaml of its object. */
int rec_put(struct cluster *c, const struct kind_info *k, const json_t *rec);
void rec_del(struct cluster *c, const struct kind_info *k, const char *ns, const char *name);
bool rec_exists(const struct cluster *c, const struct kind_info *k, const char *ns,
                const char *name);
/* Every record of |k| (in |ns|, or all when NULL), sorted by namespace and name; new reference. */
json_t *rec_list(const struct cluster *c, const struct kind_info *k, const char *ns);

/* Small JSON accessors: a string at "a.b.c", or NULL (keys holding dots: json_object_get). */
const char *js(const json_t *o, const char *path);
json_t *jget(const json_t *o, const char *path);
/* js() or |dflt|. */
const char *jsd(const json_t *o, const char *path, const char *dflt);
/* The object at "a.b", created on the way. */
json_t *jobj(json_t *o, const char *path);

/* ---- cluster_sys.c ---- */

/*
 * Runs argv (NULL-terminated, argv[0] a path or found in PATH), feeding
 * |input| (may be NULL) on stdin. stdout goes to *out when |out| is not
 * NULL (heap), else is dropped; stderr's first line lands in |err|.
 * Returns the exit status, or -1.
 */
int sys_run(const char *const *argv, const char *input, char **out, char *err, size_t errlen);
/* `ip ARGS...` (NULL-terminated); prints nothing. Returns 0 or -1 with |err| set. */
int sys_ip(char *err, size_t errlen, ...) __attribute__((sentinel));
/* `ip netns exec NETNS ARGV...` with |input|; as sys_run. */
int sys_in_netns(const char *netns, const char *const *argv, const char *input, char *err,
                 size_t errlen);
const char *sys_ip_path(void);

/* Joins netns |name| (under /run/netns); *saved gets an fd of ours. Returns 0 or -1. */
int sys_netns_enter(const char *name, int *saved, char *err, size_t errlen);
void sys_netns_leave(int saved);
/* Writes |value| to /proc/sys/|key| inside netns |name|. Returns 0 or -1. */
int sys_sysctl_in(const char *netns, const char *key, const char *value, char *err, size_t errlen);

struct spawn {
    const char *const *argv; /* argv[0] a path */
    char *const *envp;       /* NULL: ours */
    const char *netns;       /* NULL: ours */
    const char *log;         /* stdout and stderr, appended */
    const char *cwd;         /* NULL: ours */
};
/* Starts a process in a session (and process group) of its own. Returns its pid, or -1. */
pid_t sys_spawn(const struct spawn *s, char *err, size_t errlen);

unsigned long long proc_starttime(pid_t pid);
/* Is |pid| alive (not a zombie) and started at |start| (0: any)? */
bool proc_alive(pid_t pid, unsigned long long start);
/*
 * Stops the process group led by |pid|: SIGTERM, up to |ms| for it to end,
 * then SIGKILL. Returns 0 when nothing of it is left.
 */
int proc_stop_group(pid_t pid, unsigned long long start, int ms);

/* A random (version 4) UUID. */
void sys_uid(char out[37]);
/* 5 random characters of CL_SAFE_ALPHABET, as a generated name's suffix. */
void sys_random_suffix(char out[6]);
/* Sleeps |ms| milliseconds. */
void sys_sleep_ms(int ms);
/* HTTP GET 200 from |hostport| inside netns |name|. */
bool sys_http_ok_in(const char *netns, const char *hostport, const char *path);

/* ---- cluster_net.c ---- */

void cl_node_name(int k, char *out, size_t outlen);
void cl_infra_netns(const struct cluster *c, const char *what, char *out, size_t outlen);
void cl_node_netns(const struct cluster *c, int k, char *out, size_t outlen);
/* Fabric bridge, control-plane and node namespaces, links, addresses, routes, forwarding. */
int net_create(struct cluster *c, char *err, size_t errlen);
/* A pod namespace with eth0 198.18.<k>.<host>/32, its default route via the node. */
int net_pod_add(struct cluster *c, int k, int host, const char *netns, char *err, size_t errlen);
/* Removes the pod's link and namespace (and /etc/netns/<netns>). */
void net_pod_del(struct cluster *c, int k, int host, const char *netns);
/* Deletes netns |name| and /etc/netns/<name>, and forgets it. */
void net_netns_del(struct cluster *c, const char *name);

/* ---- cluster_install.c: the steps install and install --kubernetes share ---- */

#define CHECK_MARK "\u2714"
#define CROSS_MARK "\u2718"

bool cl_exists(const char *path);
/* Prints the last lines of |log| indented (stderr), after a failure. */
void inst_show_tail(const char *log);
/* sys_spawn() in |netns| (NULL: ours), recorded in the ledger as |label|. Its pid, or -1. */
pid_t inst_start_daemon(struct cluster *c, const char *label, const char *netns, const char *log,
                        const char *const *argv, char *err, size_t errlen);
enum inst_probe { PROBE_HTTP, PROBE_SOCKET };
/*
 * Waits (CLUSTER_READY_MS) until the component answers: HTTP 200 of |what| (host:port)
 * |path| in |netns|, or a unix socket at |path|. False when it died or the bound passed.
 */
bool inst_wait_ready(pid_t pid, enum inst_probe how, const char *netns, const char *what,
                     const char *path);
/* Stops everything in the ledger, deletes the namespaces, then the directory. */
int inst_teardown(struct cluster *c, bool say);
/* Prints |what|: |err|, |log|'s tail, tears down, closes |c|. Returns the exit code. */
int inst_fail(struct cluster *c, const char *what, const char *err, const char *log);
/* The node's xds and ca tokens from meshd's state (nodes/NODE/token). 0 or -1 with |err|. */
int inst_mint_token(struct cluster *c, const char *node, char *err, size_t errlen);
/* Checks and creates the directory and cluster.json. Returns 0, or an exit code. */
int inst_prepare_dir(int nodes, bool kube);
/* Creates the cluster directory's subdirectories (state/ 0700). */
void inst_make_dirs(struct cluster *c);
/* Starts a ztunnel per node and waits for each. Returns 0, or inst_fail()'s exit code. */
int inst_ztunnels(struct cluster *c, char *err, size_t errlen);

/* ---- cluster_pods.c ---- */

/*
 * Creates pod |pod| (a manifest, completed in place) on the next node; its
 * record keeps |applied| (NULL for a Deployment's pods, owned by Deployment
 * |owner|). Prints nothing. Returns 0 or -1 with |err| set.
 */
int pods_create(struct cluster *c, json_t *pod, const json_t *applied, const char *owner, char *err,
                size_t errlen);
char *pods_dir(const struct cluster *c, const char *ns, const char *name);
/* cl_pod_netns_name(), or a random one when a namespace of that name exists already. */
void pods_netns_name(const struct cluster *c, const char *ns, const char *name, char *out,
                     size_t outlen);
/* Stops and removes pod |ns|/|name|: process, config file, network, records. */
int pods_delete(struct cluster *c, const char *ns, const char *name);
/* Makes the pods of Deployment record |rec| match it. Returns 0 or -1. */
int pods_reconcile_deployment(struct cluster *c, const json_t *rec, char *err, size_t errlen);
/* Deletes every pod of Deployment |ns|/|name|. */
void pods_delete_owned(struct cluster *c, const char *ns, const char *name);
/* The port a probe names: a number, or the name of one of the container's ports; -1 if none. */
int pods_probe_port(const json_t *ctr, const json_t *port);
/* Rewrites /etc/netns/<pod>/hosts and resolv.conf of every pod (services changed). */
void pods_sync_dns(struct cluster *c);
/* "Running", "Completed", "Error", "Unknown"; *ready when running. */
const char *pods_status(const struct cluster *c, const char *ns, const char *name, bool *ready);
/* pods/<ns>_<name>/run.json; new reference or NULL. */
json_t *pods_run_info(const struct cluster *c, const char *ns, const char *name);

/* ---- pod_spec.c (pure) ---- */

/*
 * The container's "argv" and "env" (["K=V"...]) into |run|: POD_NAME,
 * POD_NAMESPACE, HOSTNAME, HOME |home|, the service variables of the pod's
 * namespace from Service records |svcs| ({"object": Service}), the
 * container's env with fieldRef and $(VAR), PATH with |bindir| first.
 */
void pod_spec(const json_t *pod, const json_t *svcs, const char *bindir, const char *home,
              json_t *run);

/* ---- cluster_podrun.c ---- */

/*
 * pod_spec() into |run| and run.json (with "created"); and the pod's
 * /etc/netns files. |svcs| are Service records ({"object": Service}); NULL:
 * the cluster's own (objects/). Returns 0 or -1.
 */
int podrun_prepare(struct cluster *c, const json_t *pod, const json_t *svcs, json_t *run, char *err,
                   size_t errlen);
/* Writes /etc/netns/<netns>/{hosts,resolv.conf} of one pod from Service records |svcs|. */
int podrun_write_dns(struct cluster *c, const char *ns, const char *name, const json_t *run,
                     const json_t *svcs, char *err, size_t errlen);
/* Starts the supervisor of pod |ns|/|name| (pid recorded as pids/pod_<ns>_<name>.pid). */
int podrun_start(struct cluster *c, const char *ns, const char *name, char *err, size_t errlen);
/* The hidden supervisor: meshctl __pod-run POD_DIR. */
int pod_run_main(int argc, char **argv);
/* Everything after an object change: DNS files and kube-proxy rules. */
void cluster_sync(struct cluster *c);

/* ---- cluster_manifest.c ---- */

struct input {
    json_t *docs; /* [{"file": path, "obj": object}], in order */
    int errors;   /* problems found (printed) */
};
/* Reads a file, a directory or "-" (stdin) into |in|. */
void manifest_read(struct input *in, const char *path);
/*
 * Kind, namespace (|dflt_ns| unless the object names one; a mismatch with
 * an explicit -n is an error) and name of |o|; NULL (printed why) when unusable.
 */
const struct kind_info *manifest_identify(const json_t *o, const char *file, const char *dflt_ns,
                                          bool ns_given, const char **ns, const char **name);

/* ---- cluster_apply.c ---- */

/*
 * Deletes one object (a Namespace with its contents, a Deployment with its
 * pods; a Deployment's pod is replaced). Prints kubectl's line unless
 * |quiet|. Returns 0, 1 when not found, -1 on failure.
 */
int delete_object(struct cluster *c, const struct kind_info *k, const char *ns, const char *name,
                  bool quiet);
/*
 * Applies object |in| of kind |k| as |ns|/|name| without printing, and runs its controller
 * (a Deployment's pods, a waypoint Gateway's Deployment). *verb: "created", "configured" or
 * "unchanged". Returns 0, or -1 with |err| set. The namespace must exist.
 */
int apply_object(struct cluster *c, const struct kind_info *k, const json_t *in, const char *ns,
                 const char *name, const char **verb, char *err, size_t errlen);

/* ---- waypoint_ctl.c: what istiod's deployment controller does for waypoints ---- */

/*
 * Gateway |gw| (live object) changed: a waypoint gets its ServiceAccount, Deployment and
 * Service (created or updated; owned ones it no longer renders go); any other class loses
 * what it owned. Returns 0, or -1 with |err| set.
 */
int wp_reconcile(struct cluster *c, const json_t *gw, char *err, size_t errlen);
/* Deletes what Gateway |ns|/|name| owns, except objects named in |keep| (an array or NULL). */
void wp_collect(struct cluster *c, const char *ns, const char *name, const json_t *keep);
/*
 * The Gateway's Programmed condition as istiod would report it: true once a replica is
 * ready (its 15021 /healthz/ready answers). |reason| and |msg| get the condition's fields.
 */
bool wp_programmed(const struct cluster *c, const json_t *gw, char *reason, size_t reasonlen,
                   char *msg, size_t msglen);

/* ---- kube_proxy.c ---- */

/*
 * The nat table for one node (iptables-restore input) from every Service
 * record and the running pods' endpoints. A fresh heap string.
 */
char *kp_render(const struct cluster *c);
/* The endpoints of Service |svc|'s |port| (an item of spec.ports): [{"ip", "port"}]; new ref. */
typedef json_t *kp_endpoints_fn(void *arg, const json_t *svc, const json_t *port);
/* The nat table from Service records |svcs| ({"object": Service}) and |endpoints|. */
char *kp_render_services(const json_t *svcs, kp_endpoints_fn *endpoints, void *arg);
/*
 * Loads |rules| (iptables-restore input) in netns |netns| (NULL: ours) unless
 * |path| holds them already, then saves them there. Returns 0 or -1 with |err|.
 */
int kp_apply(const char *netns, const char *path, const char *rules, char *err, size_t errlen);
/* Applies the rules in every node (only where they changed). */
void kp_sync(struct cluster *c);

#endif
