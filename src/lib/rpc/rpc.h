/*
 * rpc.h - gRPC calls over lib/h2: unary and streaming, client and server.
 *
 * A call is one HTTP/2 stream (POST, content-type application/grpc) carrying
 * length-prefixed messages (lib/grpc) both ways; the server ends it with
 * trailers (grpc-status, grpc-message), or with a trailers-only response when
 * it sent no message. Messages arrive whole, up to a per-call cap; output is
 * queued (capped) and moved into the stream as HTTP/2 flow control allows.
 *
 * Callbacks run from the loop, never inside nghttp2 and never inside an rpc_*
 * function the owner called. The owner releases a call with rpc_call_free(),
 * once, from anywhere (its own callbacks included); no callback runs after
 * it returns and the memory goes at the end of the loop iteration.
 */
#ifndef MESH_LIB_RPC_H
#define MESH_LIB_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grpc/grpc.h"
#include "h2/h2.h"

#define RPC_DEFAULT_MAX_MSG GRPC_MSG_MAX_DEFAULT /* 4 MiB; at most GRPC_MSG_MAX_LIMIT */
#define RPC_SEND_MAX        ((size_t)256 << 20)  /* output queued per call, prefixes included */
#define RPC_MAX_METADATA    16                   /* client metadata entries per call */
#define RPC_MESSAGE_MAX     1024                 /* grpc-message bytes we send (before encoding) */

/* Status codes lib/grpc does not name (gRPC's table, status.proto). */
#define RPC_STATUS_CANCELLED          1
#define RPC_STATUS_UNKNOWN            2
#define RPC_STATUS_RESOURCE_EXHAUSTED 8
#define RPC_STATUS_UNIMPLEMENTED      12
#define RPC_STATUS_INTERNAL           13

struct rpc_call;

struct rpc_call_cbs {
    /*
     * One complete message, borrowed for the call. Return 0, or <0 to abort
     * the call: a client resets its stream, a server ends the call with
     * CANCELLED (after what was queued); on_end follows with CANCELLED.
     */
    int (*on_message)(void *arg, struct rpc_call *c, const uint8_t *msg, size_t len);
    /*
     * The peer's side of the call ended; called at most once, never after
     * rpc_call_free(). |message| may be NULL.
     * Client: the status of the trailers (or of a trailers-only response).
     * Transport failures map to a status: reset stream or closed session
     * UNAVAILABLE; a non-200 response gRPC's HTTP mapping (e.g. 404
     * UNIMPLEMENTED); a bad content-type, missing grpc-status or truncated
     * message INTERNAL; a message over the cap RESOURCE_EXHAUSTED (the stream
     * is reset). After on_end the client can send nothing more.
     * Server: OK when the client half-closed (the server may still send and
     * must then rpc_call_finish()); CANCELLED when the client reset the
     * stream, UNAVAILABLE when the session closed. A message over the cap
     * (RESOURCE_EXHAUSTED) or a broken one (INTERNAL) ends the call with that
     * status sent to the client as well, after what was queued.
     */
    void (*on_end)(void *arg, struct rpc_call *c, int status, const char *message);
    /* Optional: the queue rpc_call_send() left non-empty has drained (back-pressure). */
    void (*on_drained)(void *arg, struct rpc_call *c);
};

/*
 * Client: starts a call to |path| ("/package.Service/Method") on the ready
 * session |s|, with :authority |authority| (required) and at most
 * RPC_MAX_METADATA metadata entries |md| (lower-case names, copied).
 * Messages over |max_msg| bytes (0: RPC_DEFAULT_MAX_MSG) end the call.
 * Returns NULL if the session cannot take a new stream.
 */
struct rpc_call *rpc_call_start(struct h2_session *s, const char *path, const char *authority,
                                const struct h2_header *md, size_t n_md, size_t max_msg,
                                const struct rpc_call_cbs *cbs, void *arg);

/* Server, from on_request: true for a POST with a :path and a gRPC content-type. */
bool rpc_is_grpc(const struct h2_stream *st);
/*
 * Server: takes ownership of the request |st| and makes it a call. Response
 * headers go out with the first message (or as a trailers-only response).
 */
struct rpc_call *rpc_call_accept(struct h2_stream *st, size_t max_msg,
                                 const struct rpc_call_cbs *cbs, void *arg);
/*
 * Server: takes ownership of the request |st|, answers it with a
 * trailers-only response of |status| and |message| (NULL: none) and releases it.
 */
void rpc_refuse(struct h2_stream *st, int status, const char *message);

/* The method path ("/package.Service/Method"); "" if the server request had none. */
const char *rpc_call_path(const struct rpc_call *c);
/* Server: a request metadata value by lower-case name; valid until rpc_call_free(). */
const char *rpc_call_header(const struct rpc_call *c, const char *name);
/*
 * The session the call runs on; NULL once its stream is gone (a client call
 * after on_end). Valid until then, as the stream holds the session.
 */
struct h2_session *rpc_call_session(const struct rpc_call *c);

/*
 * Queues one message of |len| bytes (copied). Returns 0; -MESH_ELIMIT if the
 * queue would pass RPC_SEND_MAX (nothing queued); -EPIPE once the call can
 * send no more (closed or finished sending, client after on_end, stream gone).
 */
int rpc_call_send(struct rpc_call *c, const void *msg, size_t len);
/* Bytes queued by rpc_call_send() and not yet handed to HTTP/2. */
size_t rpc_call_queued(const struct rpc_call *c);
/* Client: half-closes (END_STREAM) after the queued messages. */
void rpc_call_close_send(struct rpc_call *c);
/*
 * Server: ends the call with |status| and |message| (NULL: none; truncated to
 * RPC_MESSAGE_MAX bytes, percent-encoded) after the queued messages. Once
 * only; later sends fail.
 */
void rpc_call_finish(struct rpc_call *c, int status, const char *message);
/*
 * The owner's release, once; NULL is fine. Safe inside the call's own
 * callbacks (a borrowed message stays valid until that callback returns);
 * no callback runs afterwards. A client call not yet ended is cancelled
 * (RST_STREAM CANCEL). A server call whose rpc_call_finish() still waits for
 * queued messages keeps sending them and its trailers, then goes; an
 * unfinished server call is reset.
 */
void rpc_call_free(struct rpc_call *c);

#endif
