/*
 * grpc.h - gRPC over HTTP/2 framing, sans-I/O: message prefixes, an
 * incremental message reader, grpc-status and grpc-message values.
 *
 * A message on the wire is 1 flag byte (0: not compressed), a 4-byte
 * big-endian length, then the bytes. We negotiate no compression.
 */
#ifndef MESH_LIB_GRPC_H
#define MESH_LIB_GRPC_H

#include <stddef.h>
#include <stdint.h>

struct buf;

#define GRPC_PREFIX_LEN       5
#define GRPC_MSG_MAX_DEFAULT  ((size_t)4 << 20)   /* 4 MiB, gRPC's usual receive cap */
#define GRPC_MSG_MAX_LIMIT    ((size_t)200 << 20) /* the largest cap a caller may set */

/* Header names and values (names lower-case, as HTTP/2 requires). */
#define GRPC_HDR_CONTENT_TYPE "content-type"
#define GRPC_CONTENT_TYPE     "application/grpc"
#define GRPC_HDR_TE           "te"
#define GRPC_TE_TRAILERS      "trailers"
#define GRPC_HDR_STATUS       "grpc-status"
#define GRPC_HDR_MESSAGE      "grpc-message"

/* The status codes we send or act on (the full range is 0..16). */
enum grpc_status {
    GRPC_STATUS_OK = 0,
    GRPC_STATUS_INVALID_ARGUMENT = 3,
    GRPC_STATUS_PERMISSION_DENIED = 7,
    GRPC_STATUS_UNAVAILABLE = 14,
    GRPC_STATUS_UNAUTHENTICATED = 16,
};
#define GRPC_STATUS_MAX 16

/* ---- Encoding ---- */

/*
 * Writes the prefix of an uncompressed message of |len| bytes into |out|.
 * Returns 0, or -MESH_ELIMIT if |len| does not fit in 32 bits.
 */
int grpc_prefix_write(uint8_t out[GRPC_PREFIX_LEN], size_t len);

/*
 * Appends prefix and |len| bytes of |msg| to |b|. All or nothing: returns 0,
 * or -MESH_ELIMIT with |b| unchanged when both do not fit under its cap.
 */
int grpc_frame_append(struct buf *b, const void *msg, size_t len);

/* ---- Decoding ---- */

/*
 * Called once per complete message. |msg| is borrowed and valid only during
 * the call (it may point into the caller's chunk). Return 0 to go on, or a
 * negative code to stop: grpc_reader_feed() then returns it. The callback must
 * not feed, finish or clean up its own reader.
 */
typedef int (*grpc_msg_fn)(void *arg, const uint8_t *msg, size_t len);

/*
 * Incremental reader; embed it and treat the fields as private. It buffers at
 * most GRPC_PREFIX_LEN + max_msg bytes, and body storage grows with the bytes
 * that actually arrived, not with the length a peer announced.
 */
struct grpc_reader {
    size_t max_msg;
    grpc_msg_fn on_msg;
    void *arg;
    uint8_t prefix[GRPC_PREFIX_LEN];
    size_t prefix_len; /* prefix bytes held */
    size_t msg_len;    /* announced length, once prefix_len == GRPC_PREFIX_LEN */
    uint8_t *body;     /* partial body, heap */
    size_t body_len;
    size_t body_cap;
    int err; /* sticky: first error returned */
};

/*
 * Prepares |r| for messages of at most |max_msg| bytes (0: the default);
 * |max_msg| must not exceed GRPC_MSG_MAX_LIMIT (checked). |on_msg| gets |arg|.
 */
void grpc_reader_init(struct grpc_reader *r, size_t max_msg, grpc_msg_fn on_msg, void *arg);

/*
 * Consumes |len| bytes of the stream (any split: a message may span calls,
 * one call may hold many) and calls back for each complete message, in order.
 * Returns 0, or a negative code, after which the reader stays failed:
 * -MESH_EPROTO for a compressed flag (1) or any other flag byte, -MESH_ELIMIT
 * for a length over the cap (seen from the prefix, before any body is held),
 * -ENOMEM, or the callback's code.
 */
int grpc_reader_feed(struct grpc_reader *r, const void *p, size_t len);

/*
 * Reports the end of the stream: returns 0 at a message boundary,
 * -MESH_EPROTO if it ended inside a prefix or body, or the earlier error.
 */
int grpc_reader_finish(const struct grpc_reader *r);

/* Bytes currently held (prefix and partial body); at most GRPC_PREFIX_LEN + max_msg. */
size_t grpc_reader_buffered(const struct grpc_reader *r);

/* Frees the storage; |r| may be reused after grpc_reader_init(). */
void grpc_reader_cleanup(struct grpc_reader *r);

/* ---- Header values ---- */

/*
 * Parses a grpc-status value of |len| bytes: decimal 0..16, digits only, no
 * sign, space or leading zero. Returns the code, or -MESH_EPROTO.
 */
int grpc_status_parse(const char *s, size_t len);

/*
 * Returns 1 if a content-type value names gRPC: "application/grpc", optionally
 * followed by "+<subtype>" or ";<params>"; else 0. Case-sensitive, as in the spec.
 */
int grpc_content_type_ok(const char *s, size_t len);

/* Returns the length grpc_message_encode() produces for |len| bytes (without the NUL). */
size_t grpc_message_encoded_len(const void *in, size_t len);

/*
 * Percent-encodes |len| bytes for a grpc-message value: bytes outside
 * 0x20..0x7E and '%' become "%XX" (upper-case hex). Writes a NUL-terminated
 * string into |out| (|cap| bytes) and its length into |*out_len|. Returns 0, or
 * -MESH_ELIMIT (|out| holding "" if |cap| > 0) if it does not fit.
 */
int grpc_message_encode(const void *in, size_t len, char *out, size_t cap, size_t *out_len);

/*
 * Percent-decodes a grpc-message value of |len| bytes into |out| (|cap|
 * bytes), NUL-terminated, length in |*out_len| (the bytes may contain NULs).
 * A '%' not followed by two hex digits is kept as is, as the spec asks of
 * receivers. The output is never longer than the input, so |cap| > |len| is
 * always enough. Returns 0, or -MESH_ELIMIT if it does not fit.
 */
int grpc_message_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
