/*
 * zds_server.h - the node agent's side of ZDS: listens on a unix
 * SOCK_SEQPACKET socket for ztunnels and tells each the workloads (pods and
 * their network namespaces) it must serve (reference 2.3).
 *
 * The server keeps the agent's cache of workloads. zds_server_add(),
 * zds_server_keep() and zds_server_del() change it and queue the change for
 * every connected ztunnel. A ztunnel that connects says ZdsHello, then gets
 * the whole cache (AddWorkload with its netns fd, KeepWorkload) and
 * SnapshotSent, then the changes made since, in order. Each message waits for
 * the ztunnel's ack of the one before; a ztunnel that leaves one unanswered
 * for the ack timeout (5 s, as Istio's agent), says anything unprompted,
 * breaks a rule of the protocol or falls more than max_queue changes behind
 * is disconnected, and gets a fresh snapshot when it connects again.
 *
 * Several ztunnels may be connected at once (during an upgrade the new one
 * connects before the old one leaves); each gets the snapshot and every later
 * change. (Istio's agent sends live changes to the newest connection only.)
 *
 * Callbacks run from the loop, never from inside a zds_server_* call, and may
 * call any zds_server_* function, zds_server_stop() included.
 */
#ifndef MESH_LIB_ZDS_SERVER_H
#define MESH_LIB_ZDS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "zds/zds_msg.h"

#define ZDS_ACK_TIMEOUT_MS 5000
#define ZDS_QUEUE_MAX      4096 /* changes waiting for one ztunnel, beyond its snapshot */
#define ZDS_CLIENTS_MAX    8    /* connections at once; more are closed at once */

struct zds_server;

/* A ztunnel said Hello (|client| numbers connections from 1); |n| are now connected. */
typedef void zds_server_conn_fn(void *arg, uint64_t client, size_t n);
/* A connected ztunnel left or was disconnected: |err| says why (mesh_strerror()). */
typedef void zds_server_gone_fn(void *arg, uint64_t client, size_t n, int err);
/*
 * |client| answered the request |kind| for |uid| ("" for snapshot_sent):
 * |error| is NULL for an ACK, else the NACK's text. Messages still queued when
 * a ztunnel goes are not reported.
 */
typedef void zds_server_ack_fn(void *arg, uint64_t client, enum zds_req_kind kind, const char *uid,
                               const char *error);

struct zds_server_cbs {
    zds_server_conn_fn *on_connected;    /* optional */
    zds_server_gone_fn *on_disconnected; /* optional */
    zds_server_ack_fn *on_ack;           /* optional */
};

struct zds_server_opts {
    uint64_t ack_timeout_ms; /* 0: ZDS_ACK_TIMEOUT_MS; also bounds the wait for Hello */
    size_t max_queue;        /* 0: ZDS_QUEUE_MAX */
    size_t max_clients;      /* 0: ZDS_CLIENTS_MAX */
};

/*
 * Listens on |path| (mode 0600, set before listen(), so no other user can
 * ever connect). A socket file left there by a process that is gone is
 * replaced; one that still accepts, or a file of another kind, is an error.
 * The directory must exist. |opts| may be NULL; |cbs| is copied. Returns NULL
 * with |err| filled on failure.
 */
struct zds_server *zds_server_start(struct loop *l, const char *path,
                                    const struct zds_server_opts *opts,
                                    const struct zds_server_cbs *cbs, void *arg, char *err,
                                    size_t errlen);

/*
 * Closes every connection (no callbacks) and the listener, removes the socket
 * file if it is still ours, and frees the cache. Accepts NULL; safe inside a
 * callback (memory goes at the end of the loop's batch; call
 * loop_run_deferred() after loop_run() has returned).
 */
void zds_server_stop(struct zds_server *s);

/*
 * Adds or replaces workload |uid| with its network namespace |netns_fd|,
 * which is duplicated (the caller keeps its own). Strings follow
 * zds_workload_set(). Returns 0, -EINVAL, or -errno from dup.
 */
int zds_server_add(struct zds_server *s, const char *uid, const char *name, const char *ns,
                   const char *sa, int netns_fd);

/*
 * Records |uid| as a workload to keep without a namespace (the agent knows it
 * but cannot open its netns): sent as KeepWorkload in snapshots only, as the
 * protocol allows. Replaces an add for |uid|. Returns 0 or -EINVAL.
 */
int zds_server_keep(struct zds_server *s, const char *uid);

/* Removes |uid| and queues DelWorkload. Returns 0, or -ENOENT if it is not cached. */
int zds_server_del(struct zds_server *s, const char *uid);

/* True while at least one ztunnel is connected (said Hello). */
bool zds_server_has_client(const struct zds_server *s);
size_t zds_server_n_clients(const struct zds_server *s);
/* Workloads cached (adds and keeps). */
size_t zds_server_n_workloads(const struct zds_server *s);

#endif
