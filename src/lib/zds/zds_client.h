/*
 * zds_client.h - ztunnel's side of ZDS: connects to the node agent's unix
 * SOCK_SEQPACKET socket, says ZdsHello{V1}, and turns each WorkloadRequest
 * into a callback whose answer becomes the Ack (reference 2.3).
 *
 * The connection is made again whenever it fails or ends, after a backoff
 * that starts at 10 ms and doubles up to 15 s; it returns to 10 ms once a
 * connection has completed its snapshot. Every new connection starts with a
 * new snapshot: the adds and keeps up to on_snapshot() are the whole set of
 * workloads to serve, and anything else held from before is to be dropped
 * (that is the user's business; this module keeps no workload state).
 *
 * A protocol error (a malformed message, a descriptor on anything but an add,
 * an add without one, two descriptors, a datagram over 1024 bytes) closes the
 * connection, closing any descriptor that came with it. A request of a kind we
 * do not know, a keep after the snapshot or a second SnapshotSent is answered
 * with a NACK instead.
 *
 * Callbacks run from the loop, never from inside a zds_client_* call; they
 * may call zds_client_stop(), after which no Ack is sent.
 */
#ifndef MESH_LIB_ZDS_CLIENT_H
#define MESH_LIB_ZDS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "zds/zds_msg.h"

#define ZDS_BACKOFF_MIN_MS 10
#define ZDS_BACKOFF_MAX_MS 15000

struct zds_client;

/*
 * A workload to serve in the network namespace |netns_fd|, which the callee
 * now owns (and must close). To reject it, write a message into |err|
 * (|errlen| bytes, "" on entry): the Ack becomes a NACK with that text.
 */
typedef void zds_client_add_fn(void *arg, const struct zds_workload *w, int netns_fd, char *err,
                               size_t errlen);
/* keep (before the snapshot's end) and del; |err| as for zds_client_add_fn. */
typedef void zds_client_uid_fn(void *arg, const char *uid, char *err, size_t errlen);
/* SnapshotSent: the adds and keeps since the connection are the whole set. */
typedef void zds_client_snap_fn(void *arg, char *err, size_t errlen);
/* Connected and Hello sent. */
typedef void zds_client_up_fn(void *arg);
/* A connection that was up ended; |err| says why (mesh_strerror()). */
typedef void zds_client_down_fn(void *arg, int err);

struct zds_client_cbs {
    zds_client_add_fn *on_add;           /* required */
    zds_client_uid_fn *on_keep;          /* optional: NULL acks */
    zds_client_uid_fn *on_del;           /* optional: NULL acks */
    zds_client_snap_fn *on_snapshot;     /* optional: NULL acks */
    zds_client_up_fn *on_connected;      /* optional */
    zds_client_down_fn *on_disconnected; /* optional */
};

struct zds_client_opts {
    uint64_t backoff_min_ms; /* 0: ZDS_BACKOFF_MIN_MS */
    uint64_t backoff_max_ms; /* 0: ZDS_BACKOFF_MAX_MS */
};

/*
 * Starts connecting to |path| (the first attempt runs from the loop, at
 * once). |opts| may be NULL; |cbs| is copied. Returns NULL if |path| does not
 * fit a unix socket address or on_add is missing.
 */
struct zds_client *zds_client_start(struct loop *l, const char *path,
                                    const struct zds_client_opts *opts,
                                    const struct zds_client_cbs *cbs, void *arg);

/*
 * Closes the connection (no callback) and stops retrying. Accepts NULL; safe
 * inside a callback (memory goes at the end of the loop's batch; call
 * loop_run_deferred() after loop_run() has returned).
 */
void zds_client_stop(struct zds_client *c);

/* True between on_connected and on_disconnected. */
bool zds_client_is_connected(const struct zds_client *c);
/* True once the current connection's SnapshotSent arrived. */
bool zds_client_is_synced(const struct zds_client *c);
/* The delay before the next attempt (grows with failures); for tests and logs. */
uint64_t zds_client_backoff_ms(const struct zds_client *c);

#endif
