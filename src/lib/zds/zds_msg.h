/*
 * zds_msg.h - ZDS (ztunnel discovery) messages and their transport, sans loop:
 * the protobuf codec of istio.workload.zds and descriptor passing on a unix
 * SOCK_SEQPACKET socket (reference 2.3 and A.1).
 *
 * One datagram holds one message, no length prefix. ztunnel sends ZdsHello
 * first and then one WorkloadResponse{ack} per request; the node agent sends
 * WorkloadRequests (add, keep, snapshot_sent, del). A pod's network namespace
 * travels as SCM_RIGHTS with its AddWorkload and with nothing else. Every
 * message we send fits ztunnel's 1024-byte receive buffer, and we receive
 * into one of the same size.
 */
#ifndef MESH_LIB_ZDS_MSG_H
#define MESH_LIB_ZDS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ZDS_MSG_MAX    1024 /* ztunnel's receive buffer; longer datagrams are MSG_TRUNC */
#define ZDS_UID_MAX    128  /* Kubernetes UIDs are 36-byte UUIDs */
#define ZDS_NAME_MAX   253  /* pod name: a DNS subdomain */
#define ZDS_NS_MAX     63   /* namespace: a DNS label */
#define ZDS_SA_MAX     253  /* service account: a DNS subdomain */
#define ZDS_ERR_MAX    512  /* NACK text we send, and keep of one we receive */
#define ZDS_VERSION_V1 1    /* istio.workload.zds.Version.V1 */
/* Descriptors one zds_recv() can take in before the ancillary data is truncated. */
#define ZDS_RECV_FDS_MAX 4

enum zds_req_kind {
    ZDS_REQ_ADD = 1,       /* AddWorkload, with the pod's netns fd */
    ZDS_REQ_DEL,           /* DelWorkload */
    ZDS_REQ_SNAPSHOT_SENT, /* SnapshotSent: the initial sync is complete */
    ZDS_REQ_KEEP,          /* KeepWorkload: before SnapshotSent only */
};

/* A workload as ZDS names it; NUL-terminated, each field within its cap. */
struct zds_workload {
    char uid[ZDS_UID_MAX + 1];
    char name[ZDS_NAME_MAX + 1];
    char ns[ZDS_NS_MAX + 1];
    char sa[ZDS_SA_MAX + 1];
};

/* One WorkloadRequest. */
struct zds_req {
    enum zds_req_kind kind;
    struct zds_workload w; /* uid for add, del, keep; name, ns, sa for add */
    bool legacy;           /* add in the old form AddWorkload{uid = 2}, without workload_info */
};

/* "add", "del", "snapshot_sent", "keep" or "?". */
const char *zds_req_kind_name(enum zds_req_kind k);

/*
 * Fills |w|: |uid| must be 1..ZDS_UID_MAX printable ASCII characters without
 * space; |name|, |ns| and |sa| (NULL: "") valid UTF-8 without control
 * characters, within their caps. Returns 0 or -EINVAL (|w| then unspecified).
 */
int zds_workload_set(struct zds_workload *w, const char *uid, const char *name, const char *ns,
                     const char *sa);

/* ---- Codec ---- */

/*
 * Encodes |r| into |out| (|cap| bytes), length in |*len|. An add always
 * carries workload_info (unless |r|->legacy, which writes the old form, for
 * tests and old peers). Returns 0, -EINVAL if a field breaks the rules of
 * zds_workload_set(), or -MESH_ELIMIT if the message is longer than |cap| or
 * ZDS_MSG_MAX.
 */
int zds_req_encode(const struct zds_req *r, uint8_t *out, size_t cap, size_t *len);

/*
 * Decodes one WorkloadRequest datagram of |len| bytes into |r|; |has_fd| says
 * whether a descriptor came with it. Unknown fields are skipped, as protobuf
 * requires. Returns:
 *   0             |r| filled;
 *   -MESH_ELIMIT  |len| > ZDS_MSG_MAX;
 *   -ENOTSUP      a payload we do not know (or none): answer with a NACK;
 *   -MESH_EPROTO  not a WorkloadRequest, a field breaking zds_workload_set()'s
 *                 rules, an add without a descriptor, or anything else with one.
 * An add in the old form AddWorkload{uid = 2} is accepted, with |r|->legacy set
 * and empty name, namespace and service account.
 */
int zds_req_decode(const uint8_t *p, size_t len, bool has_fd, struct zds_req *r);

/* ZdsHello{version = V1}; returns 0 or -MESH_ELIMIT if |cap| is too small. */
int zds_hello_encode(uint8_t *out, size_t cap, size_t *len);

/* Returns 0 for a ZdsHello of version V1, -MESH_EPROTO for anything else. */
int zds_hello_decode(const uint8_t *p, size_t len);

/*
 * WorkloadResponse{ack{error}}: |error| NULL or "" is an ACK, anything else a
 * NACK. The text is cut to ZDS_ERR_MAX bytes at a character boundary, and
 * bytes that are not printable UTF-8 become '?', since ztunnel's peers reject
 * strings that are not UTF-8. Returns 0 or -MESH_ELIMIT if |cap| is too small.
 */
int zds_ack_encode(const char *error, uint8_t *out, size_t cap, size_t *len);

/*
 * Decodes a WorkloadResponse: returns 0 with the NACK text in |err| (|errcap|
 * bytes, made printable as in zds_ack_encode() and cut to fit; "" for an ACK),
 * -MESH_ELIMIT if |len| > ZDS_MSG_MAX, or -MESH_EPROTO if it is not a
 * WorkloadResponse with an ack.
 */
int zds_ack_decode(const uint8_t *p, size_t len, char *err, size_t errcap);

/* ---- Transport (non-blocking SOCK_SEQPACKET sockets) ---- */

/*
 * Sends |len| bytes as one datagram, with descriptor |fd| as SCM_RIGHTS
 * unless it is -1 (|fd| stays ours). MSG_NOSIGNAL. Returns 0, -EAGAIN, or
 * -errno.
 */
int zds_send(int sock, const uint8_t *msg, size_t len, int fd);

/*
 * Receives one datagram into |buf| (|cap| bytes, normally ZDS_MSG_MAX) and at
 * most one descriptor into |*fd| (-1 if none; close-on-exec; the caller owns
 * it). Returns the length (> 0), 0 when the peer closed, -EAGAIN, -errno, or
 * -MESH_ELIMIT (datagram longer than |cap|: MSG_TRUNC) or -MESH_EPROTO
 * (MSG_CTRUNC, more than one descriptor, or ancillary data of another kind).
 * On every error all descriptors that arrived are closed and |*fd| is -1.
 */
ssize_t zds_recv(int sock, uint8_t *buf, size_t cap, int *fd);

#endif
