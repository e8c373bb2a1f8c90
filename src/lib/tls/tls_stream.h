/*
 * tls_stream.h - TLS over a lower byte stream, itself a stream (stream.h).
 *
 * The lower stream is a TCP socket (tcp_stream) or an HTTP/2 CONNECT stream
 * (TLS inside an HBONE tunnel); the TLS stream owns it. The handshake runs
 * first (opened() is 0 meanwhile, STREAM_OPEN reports its end); then reads
 * and writes carry plaintext, shutdown_write() sends close_notify, and the
 * SSL stays reachable for the peer's identity.
 *
 * What keeps it fast: encrypted records are batched (up to TLS_STREAM_BATCH)
 * and handed to the lower stream at the end of the loop iteration, or when a
 * batch is full; OpenSSL reads ahead TLS_READ_AHEAD bytes per lower read once
 * the handshake is done (not before: a pending handshake holds no large
 * buffer). A write of TLS_STREAM_RECORD_PAYLOAD bytes makes exactly one record.
 */
#ifndef MESH_LIB_TLS_STREAM_H
#define MESH_LIB_TLS_STREAM_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "conn/stream.h"
#include "loop/loop.h"

/* Plaintext bytes in a full record: writes of this size fill records exactly. */
#define TLS_STREAM_RECORD_PAYLOAD 16384
/* Records leave once this much is queued (measured best on 2 vCPU: fewer sends, peer still busy). */
#define TLS_STREAM_BATCH (160 * 1024)
/* Records queued at most; writes then wait for the lower stream. */
#define TLS_STREAM_ENC_MAX (256 * 1024)

/* Flags of tls_stream_new(). */
#define TLS_STREAM_ALPN_H2 1u /* the handshake fails unless ALPN selected "h2" */

/*
 * TLS over |lower| with |ssl| (both owned by the result, also on failure:
 * then NULL). |server| picks the side of the handshake, which starts at once.
 * NULL |lower| (a failed constructor below) gives NULL.
 */
struct stream *tls_stream_new(struct loop *l, struct stream *lower, SSL *ssl, bool server,
                              unsigned flags);

/* The SSL of a TLS stream; NULL if |s| is not one (or is NULL). */
SSL *tls_stream_ssl(const struct stream *s);

#endif
