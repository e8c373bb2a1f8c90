/*
 * ztunnel.h - the node proxy's shared state and the seams between its files.
 *
 *   main.c        flags, start-up, signals, drain
 *   outbound.c    15001: captured outbound, resolve, HBONE or plain TCP
 *   inbound.c     15008: HBONE server (mTLS + HTTP/2 CONNECT)
 *   passthrough.c 15006: captured plaintext inbound
 *   waypoint.c    whether a connection goes through a waypoint, and which replica
 *   certs.c       per-identity certificates for local workloads (lib/identity)
 *   xds.c         config from meshd (lib/ads) into the model and the policy set
 *   pods.c        where listeners live: the node's namespace, or each enrolled pod's (in-pod mode)
 *   inpod.c       in-pod mode: pods and their namespaces from the node agent (ZDS)
 *   wait.c        connections held until the workload or certificate they need is known
 *   selfcall.c    captured connections that would make ztunnel dial itself
 *   conntab.c     live connections, access log at close
 *   authz.c       L4 authorization of inbound connections, live re-evaluation
 *   admin.c       15000 config_dump, 15021 readiness
 *   metrics.c     15020 Prometheus metrics (Istio's names and labels)
 *   workers.c     worker threads: start, snapshots published to them, hand-off, drain
 *   tenant.c      per local pod and worker: a share of each loop turn, connection and dial caps
 *
 * Threads. A `struct zt` is one worker: its own event loop, listeners (SO_REUSEPORT, in every
 * scope), connections, HBONE pool, pending handshakes and waiters, touched only by its thread.
 * Worker 0 runs on the main thread and also owns the control plane: xDS, the certificate
 * manager, ZDS, admin, metrics, signals. What the data path reads from the control plane is
 * immutable and reference-counted (model, policy set, certificate table); worker 0 hands each
 * worker its reference by loop_post(), the worker swaps its pointer at its next turn and drops
 * the old one, which is freed by whichever thread drops the last reference. No lock is taken
 * on the data path; lib/metrics locks its registry per update, a few times per connection end.
 */
#ifndef MESH_ZTUNNEL_H
#define MESH_ZTUNNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn/listener.h"
#include "conn/pipe.h"
#include "loop/loop.h"
#include "model/model.h"
#include "net/addr.h"
#include "tls/tls.h"

#define ZT_PORT_OUTBOUND 15001
#define ZT_PORT_INBOUND_PLAIN 15006
#define ZT_PORT_HBONE 15008
#define ZT_PORT_ADMIN 15000
#define ZT_PORT_READY 15021
#define ZT_PORT_METRICS 15020

struct zt_opts {
    const char *local_config;
    const char *node;
    const char *ca_dir;
    /* Control-plane mode: meshd's xDS and CA (TLS, token), instead of the two above. */
    bool xds;
    struct ipaddr xds_ip, ca_ip;
    uint16_t xds_port, ca_port;
    const char *root_cert;
    const char *token_file;
    const char *cp_name; /* the name meshd's certificate must carry */
    const char *zds_socket; /* in-pod mode: the node agent's ZDS socket */
    const char *cluster;       /* for baggage */
    bool allow_x25519;
    bool json_log;
    uint64_t drain_ms;         /* SIGTERM drain deadline */
    uint64_t pool_idle_ms;     /* close pooled connections idle this long */
    long cert_ttl_s;           /* minted certificate lifetime */
    size_t pipe_buf;           /* per-direction pipe buffer cap */
    /* 15008: pending (not yet completed) TLS handshakes, lib/conn/hs_guard.h */
    unsigned hs_max_pending;     /* in all; the oldest is closed for a new one */
    unsigned hs_max_per_source;  /* per peer address; more are closed at once */
    unsigned hs_timeout_ms;      /* deadline of each handshake */
    unsigned workers;            /* threads, each with its own loop (workers.c) */
    unsigned pod_max_conns;      /* open connections of one local pod (tenant.c) */
    unsigned pod_max_dials;      /* its dials in progress */
    bool worker_affinity;        /* pin worker i to the i-th CPU the process may use */
};

#define ZT_MAX_WORKERS 64
#define ZT_POD_MAX_CONNS 16384
#define ZT_POD_MAX_DIALS 1024
#define ZT_POD_TURN_BYTES (256 * 1024) /* one pod's bytes per loop turn (tenant.c) */

struct certs;
struct hbone_pool;
struct zt_xds;
struct zt_inpod;
struct node_tokens;
struct channel;
struct zwait;
struct policy_set;
struct zt_creds;
struct ztenant;

/*
 * A scope of data-path listeners (15001, 15006, 15008): the node's own network
 * namespace (node mode), or one enrolled pod's (in-pod mode: sockets are made
 * inside the pod's namespace, so the pod's own IP is the source and
 * destination of its traffic). Connections hold a reference, so a deleted
 * pod's namespace stays usable until its last connection is gone.
 */
struct zpod {
    struct zpod *prev, *next;
    struct zt *zt;
    int refs;
    char *uid, *name, *ns, *sa; /* in-pod mode: the pod as the node agent named it */
    int netns_fd;               /* -1: ztunnel's own namespace */
    uint64_t netns_ino;
    struct sock_opts dial;      /* upstream sockets: mark 0x539, in the pod's namespace */
    struct listener *outbound, *plain, *hbone;
    bool gone;                  /* deleted by the node agent */
    uint64_t seen_gen;          /* inpod.c: the ZDS snapshot that last named it */
    size_t n_plain_held;        /* passthrough.c: plaintext inbound held for its workload */
};

/* One proxied connection, from accept to access log. */
struct zconn {
    struct zconn *prev, *next;
    uint64_t id;
    bool inbound;
    bool mtls;
    struct ipaddr src_ip, dst_ip, hbone_ip;
    uint16_t src_port, dst_port, hbone_port;
    char *src_workload, *src_ns, *src_identity;
    char *dst_workload, *dst_ns, *dst_identity, *dst_service;
    char *dst_uid;     /* inbound: the local workload (policy re-evaluation) */
    char *src_cluster, *dst_cluster; /* access log src.cluster / dst.cluster */
    uint64_t start_ms;
    struct pipe *pipe;
    struct zpod *pod;  /* the scope it was accepted in (referenced) */
    const char *error; /* static reason, NULL when clean */
    const char *flag;  /* response_flags (static), see zconn_set_flag() */
    uint64_t authz_gen; /* inbound: zt->authz_gen when it was authorized (authz.c) */
    struct ztenant *tenant; /* the local pod whose share it uses (tenant.c) */
    bool dialling;          /* counted in its pod's dials in progress */
    struct zconn_metrics *metrics; /* metrics.c */
};

struct zt {
    struct loop *loop;
    struct zt_opts opts;
    /* Workers: |id| 0 is the main thread's; every worker points at the same array. */
    unsigned id;
    struct zt **workers;
    unsigned n_workers;
    pthread_t thread;
    bool started;              /* its thread runs */
    bool stopped;              /* its loop ended: posts still queued only drop references */
    atomic_uint load;          /* open connections and HBONE sessions, read by other workers */
    atomic_uint_fast64_t handed_off; /* accepted here, served by a less loaded worker */
    uint64_t model_version, policy_version; /* snapshots installed (admin /debug/workers) */
    uint32_t wp_seed;          /* waypoint.c: ties between replicas, the same in every worker */
    struct model *model;
    struct certs *certs;       /* the manager: worker 0 only */
    struct zt_creds *creds;    /* other workers: the certificates worker 0 published */
    struct ztenant **tenants;  /* tenant.c: local pods with open connections here */
    struct hbone_pool *pool;    /* HBONE client connections (lib/hbone) */
    struct zt_xds *xds;        /* control-plane mode */
    struct node_tokens *tokens; /* control-plane mode: credentials for meshd */
    struct channel *xds_chan, *ca_chan; /* control-plane mode: meshd's xDS and CA addresses */
    SSL_CTX *cp_ctx;           /* TLS to meshd */
    struct zconn *conns;
    size_t n_conns;
    uint64_t next_id;
    bool ready;
    bool draining;
    bool xds_synced;           /* every watched type arrived (or local mode) */
    bool zds_synced;           /* in-pod mode: the node agent's first snapshot arrived */
    struct zt_inpod *inpod;
    struct policy_set *policies; /* authorization policies in force (NULL: none) */
    uint64_t authz_gen;        /* bumped when policies or the model change (authz.c) */
    struct inbound *inbound;   /* HBONE sessions accepted on 15008 */
    struct zpod *node_scope;   /* node mode: listeners in ztunnel's own namespace */
    struct zpod *pods;         /* in-pod mode: one scope per enrolled pod */
    size_t n_pods;
    struct zwait *waiters, *waiters_tail; /* wait.c, in the order they parked */
    size_t n_waiters;
    uint64_t wake_gen;
};

/* Data-path listeners: ztunnel's mark (so redirection skips them), hand-over between processes. */
extern const struct sock_opts zt_listen_opts;

/* True if |w| runs on this node. */
bool zt_is_local(const struct zt *zt, const struct workload *w);
/* The local workload owning |ip|, or NULL. */
const struct workload *zt_local_workload(const struct zt *zt, const struct ipaddr *ip);
/* True if |port| is one of ztunnel's own data-path ports. */
bool zt_is_own_port(uint16_t port);

/* pods.c */
struct zpod *zpod_new(struct zt *zt, const char *uid, const char *name, const char *ns,
                      const char *sa, int netns_fd);
struct zpod *zpod_ref(struct zpod *p);
void zpod_unref(struct zpod *p);
/* Opens the scope's three listeners. Returns 0 or -1 with |err|. */
int zpod_listen(struct zpod *p, char *err, size_t errlen);
void zpod_close_listeners(struct zpod *p);
/* Every scope's listeners (SIGTERM). */
void zt_close_listeners(struct zt *zt);
/*
 * The workload this scope serves: in-pod mode, the model's workload with the
 * pod's name, namespace and service account (as Istio matches ZDS to xDS);
 * node mode, the local workload owning |ip|. NULL when not (yet) known.
 */
const struct workload *zpod_workload(const struct zpod *p, const struct ipaddr *ip);
struct zpod *zt_pod_by_uid(struct zt *zt, const char *uid);
/* Adds a listening pod scope to its worker's list (in-pod mode). */
void zpod_link(struct zpod *p);
/* The pod left (deleted or un-enrolled): its listeners close, its connections drain. */
void zpod_delete(struct zpod *p);

/* wait.c: hold a connection until the model or a certificate changes, or a deadline. */
typedef void zwait_fn(void *arg, bool expired);
struct zwait {
    struct zwait *prev, *next;
    struct zt *zt;
    zwait_fn *fn;
    void *arg;
    uint64_t deadline_ms; /* loop clock */
    uint64_t gen;         /* the wake-up generation it parked in */
    struct loop_timer timer;
    bool queued;
};
#define ZT_HOLD_MS 5000 /* how long a connection waits for its workload or certificate */
#define ZT_HOLD_MAX 4096 /* connections held at once, all scopes */
#define ZT_HOLD_MAX_PER_POD 256 /* plaintext inbound held at once for one pod (passthrough.c) */
/* Calls |fn| at the next wake-up (model or certificate change) or at |deadline_ms| (expired). */
void zwait_start(struct zt *zt, struct zwait *w, uint64_t deadline_ms, zwait_fn *fn, void *arg);
void zwait_cancel(struct zwait *w);
/* False when |w| is not parked yet and ZT_HOLD_MAX waiters already are: refuse, do not hold. */
bool zwait_room(const struct zt *zt, const struct zwait *w);
/* Something a waiter may need arrived: every waiter runs once. */
void zt_wake(struct zt *zt);
/* Every waiter gives up now (drain, exit). */
void zt_expire_waiters(struct zt *zt);

/*
 * selfcall.c: the original destination of a connection accepted on |listener|
 * (15001, 15006) in |pod|. When there is none, or it is ztunnel itself (a
 * listener of ours, loopback, or the connection was not redirected at all),
 * |fd| is reset and closed, the refusal counted and logged (rate-limited),
 * and false is returned.
 */
bool zt_accept_orig_dst(struct zpod *pod, int fd, const char *listener, const struct ipaddr *peer,
                        uint16_t peer_port, struct ipaddr *odst, uint16_t *oport);

/* conntab.c */
struct zconn *zconn_new(struct zt *zt, bool inbound);
/* Sets a string field from a possibly-NULL source. */
void zconn_set(char **field, const char *value);
/* Logs the access line, unlinks and frees |c|. */
void zconn_finish(struct zt *zt, struct zconn *c, const struct pipe_result *res);
/* Resets every live connection (end of drain), or those of one scope (|pod| not NULL). */
void zconn_abort_all(struct zt *zt);
void zconn_abort_pod(struct zt *zt, struct zpod *pod);
/* Records the scope a connection came through (takes a reference). */
void zconn_set_pod(struct zconn *c, struct zpod *pod);
/*
 * Sets the response_flags the metrics report when |c| closes (a static string:
 * "DENY", "CONNECT", ... as reference 6.1). Unset, a clean end is "-" and an
 * error is derived from its code (metrics.c).
 */
void zconn_set_flag(struct zconn *c, const char *flag);

/* tenant.c */
/*
 * Counts |c| against its local pod (|pod|'s in in-pod mode, else the pod at |local|): false,
 * logged and counted, when the pod is at its connection cap; the caller refuses |c|.
 */
bool zconn_admit(struct zt *zt, struct zconn *c, const struct zpod *pod,
                 const struct ipaddr *local);
/* A dial (upstream connect, HBONE CONNECT) starts / ends; false when at the pod's dial cap. */
bool zconn_dial_begin(struct zconn *c);
void zconn_dial_end(struct zconn *c);
/* From zconn_finish(). */
void zconn_release_tenant(struct zconn *c);
/* pipe_start() with |c|'s pod's share of each loop turn; sets c->pipe. */
struct pipe *zconn_pipe_start(struct zt *zt, struct zconn *c, struct stream *a, struct stream *b,
                              pipe_done_fn *done, void *arg);
void zt_tenants_free(struct zt *zt);

/* certs.c */
struct certs *certs_new(struct zt *zt, char *err, size_t errlen);
void certs_free(struct certs *c);
/*
 * Credentials for a local workload's identity, or NULL while there are none (then they are
 * asked for, and their arrival wakes the waiters of every worker: zt_wake()). Worker 0 asks
 * the manager (local mode mints at once); other workers look in the last published table.
 */
struct tls_creds *certs_get(struct zt *zt, const struct workload *w);
/* Publishes the certificates held now to the other workers (after any change). */
void certs_publish(struct certs *c);
void zt_creds_ref(struct zt_creds *t);
void zt_creds_unref(struct zt_creds *t);
/*
 * Follows the model: fetches (or mints) certificates for every local HBONE
 * workload's identity and forgets those no local workload uses any more.
 */
void certs_sync(struct certs *c);
struct json_t;
/* Appends certificate entries to a JSON array. */
void certs_dump(struct certs *c, struct json_t *arr);


/* authz.c */
/*
 * May |peer_uri| (NULL: no identity, plaintext) from |src_ip| reach |dst| at
 * |dst_ip|:|dst_port|? On false |reason| says which policy decided.
 */
bool zt_authorize(const struct zt *zt, const struct workload *dst, const char *peer_uri,
                  const struct ipaddr *src_ip, const struct ipaddr *dst_ip, uint16_t dst_port,
                  char *reason, size_t reason_len);
/* Installs |set| (takes the reference) and closes open inbound connections it denies. */
void zt_set_policies(struct zt *zt, struct policy_set *set);
/*
 * The model was replaced (|old| is the previous one, still alive): closes open
 * inbound connections whose destination workload changed in a way that now
 * denies them (its namespace or its list of policies).
 */
void zt_authz_model_changed(struct zt *zt, const struct model *old);
/*
 * |c| (inbound, authorized) finished dialling the app: false if what changed
 * since it was authorized (policies, its workload) now denies it; the caller
 * closes it as a policy rejection.
 */
bool zt_authz_recheck(struct zt *zt, struct zconn *c);

/* inpod.c */
struct zt_inpod *inpod_start(struct zt *zt, char *err, size_t errlen);
void inpod_stop(struct zt_inpod *ip);
/* Ready = config synced and, in in-pod mode, the node agent's snapshot applied. */
void zt_update_ready(struct zt *zt);

/* xds.c */
struct zt_xds *xds_start(struct zt *zt, char *err, size_t errlen);
void xds_stop(struct zt_xds *x);
void xds_dump(const struct zt_xds *x, struct json_t *obj);

/* inbound.c, outbound.c, passthrough.c: listener callbacks take the scope (struct zpod *). */
struct inbound *inbound_start(struct zt *zt);
void inbound_accept(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port);
/* Sends GOAWAY on every session. */
void inbound_drain(struct inbound *in);
size_t inbound_n_sessions(const struct inbound *in);
struct hs_guard_stats;
/* Pending handshakes on 15008 and their outcomes (metrics). */
const struct hs_guard_stats *inbound_handshake_stats(const struct inbound *in);
/* Closes every session at once (end of drain). */
void inbound_abort(struct inbound *in);
void inbound_free(struct inbound *in);
void outbound_accept(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port);
void passthrough_accept(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port);

/* waypoint.c */
struct zt_waypoint {
    const struct workload *workload; /* the replica */
    const struct service *service;   /* the waypoint's service (NULL: a single workload) */
    const struct ipaddr *ip;         /* the replica's address, in the connection's family */
    uint16_t port;                   /* its HBONE port */
    const char *why;                 /* when refused */
    char name[320];                  /* the waypoint as bound: "<ns>/<hostname>" or its address */
};
/*
 * Traffic from |src| to service |svc| (service-addressed) or workload |dst| (pod-addressed):
 * 0 when no waypoint applies, 1 with |out| set to the replica to use, -1 when a waypoint is
 * bound but unusable (|out->why|, |out->name|): the connection must be refused.
 */
int zt_waypoint_route(struct zt *zt, const struct workload *src, const struct service *svc,
                      const struct workload *dst, int family, struct zt_waypoint *out);
/*
 * A connection to replica |ip|:|port| failed (a connect or TLS failure, not an answer): it is
 * passed over for ZT_WAYPOINT_AVOID_MS while another replica is usable.
 */
#define ZT_WAYPOINT_AVOID_MS 5000
void zt_waypoint_failed(struct zt *zt, const struct ipaddr *ip, uint16_t port);

/* workers.c */
/*
 * Starts workers 1..opts.workers-1 (worker 0 is |zt0|, already set up with its model, policies
 * and, in node mode, listeners): each gets references to worker 0's snapshots, its own loop,
 * pool, inbound and (node mode) listeners, then its thread. Returns 0 or -1 with |err|.
 */
int workers_start(struct zt *zt0, char *err, size_t errlen);
/* After worker 0's loop ended: stops the other workers, joins them and frees them. */
void workers_stop(struct zt *zt0);
/*
 * Worker 0: hands every other worker a reference to each non-NULL snapshot (the caller keeps
 * its own); each installs it at its next turn (re-checking open connections against a new
 * model or policy set) and wakes its waiters.
 */
void workers_publish(struct zt *zt0, struct model *m, struct policy_set *ps, struct zt_creds *cr);
/* Installs model |m| on |zt| (takes the reference): re-checks open inbound connections. */
void zt_set_model(struct zt *zt, struct model *m);
/* |zt| stops accepting, sends GOAWAY, gives up held connections (SIGTERM). */
void zt_drain_worker(struct zt *zt);
/* Worker 0, in-pod mode: pod |p| (listening on worker 0) enrolled, or left; the others follow. */
void workers_pod_added(struct zt *zt0, const struct zpod *p);
void workers_pod_deleted(struct zt *zt0, const char *uid);
/* Worker 0: every worker stops accepting and drains (SIGTERM), or resets what is left. */
void workers_drain(struct zt *zt0);
void workers_abort(struct zt *zt0);
/* Open connections, HBONE sessions and pooled connections of every worker (drain). */
size_t workers_n_open(struct zt *zt0);
/*
 * Listener callbacks go through here: true when |fd| was handed to a worker with at least 2
 * fewer open connections than |pod|'s worker (exact balancing of what SO_REUSEPORT hashed).
 */
enum zt_listener { ZT_L_OUTBOUND, ZT_L_PLAIN, ZT_L_HBONE };
bool workers_balance(struct zpod *pod, enum zt_listener which, int fd, const struct ipaddr *peer,
                     uint16_t peer_port);
/*
 * A worker's share of a process-wide cap (held connections): connections are balanced over
 * the workers, so each holds at most its part and the process about |total|.
 */
static inline size_t
zt_share(const struct zt *zt, size_t total)
{
    unsigned n = zt->n_workers > 0 ? zt->n_workers : 1;
    return (total + n - 1) / n;
}
/* |zt|'s load changed (connections or sessions opened or closed). */
void zt_load_update(struct zt *zt);
/* Calls |fn|(worker, |arg|) on each worker's own thread in turn (worker 0 directly); waits. */
void workers_each(struct zt *zt0, void (*fn)(struct zt *w, void *arg), void *arg);

/* admin.c */
int admin_start(struct zt *zt, char *err, size_t errlen);
void admin_stop(void);

/* metrics.c: 15020 on [::]. Hooks do nothing before start and after stop. */
int zt_metrics_start(struct zt *zt, char *err, size_t errlen);
void zt_metrics_stop(void);
/* From zconn_finish(): opened (if not yet), bytes, closed and failed. */
void zt_metrics_conn_end(struct zt *zt, struct zconn *c, const struct pipe_result *res);
/* xds.c: a response of |len| bytes is being decoded; it was of |type_url|; the stream ended. */
void zt_metrics_xds_response(size_t len);
void zt_metrics_xds_message(const char *type_url);
void zt_metrics_xds_end(const char *reason);
/* A connection held for its workload was refused on |listener|: |reason| "expired" or "cap". */
void zt_metrics_hold_refused(const char *listener, const char *reason);
/* selfcall.c: a connection to ztunnel itself was refused on |listener| for |reason| (static). */
void zt_metrics_self_refused(const char *listener, const char *reason);
/* tenant.c: a new connection was refused at a pod's cap of |what| ("connections", "dials"). */
void zt_metrics_pod_limit_refused(const char *what);

#endif
