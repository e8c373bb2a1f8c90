/*
 * tls_bio.h - the byte stream underneath OpenSSL, as a BIO that batches writes.
 *
 * Reads go straight to the lower stream (recv(2) for a TCP socket). Writes
 * (encrypted records) are appended to a caller-owned buffer and handed to the
 * lower stream by tls_bio_send(), so many records leave in one send(2) (a TCP
 * stream sends with MSG_NOSIGNAL: a vanished peer never raises SIGPIPE).
 */
#ifndef MESH_LIB_TLS_BIO_H
#define MESH_LIB_TLS_BIO_H

#include <openssl/bio.h>

#include "buf/buf.h"
#include "conn/stream.h"

/* Room for the largest TLS record, so a buffer below this is "full". */
#define TLS_BIO_RECORD_MAX (16384 + 256)

/* A BIO over |lower| writing into |out| (both must outlive it). NULL on failure. */
BIO *tls_bio_new(struct stream *lower, struct buf *out);

/* Writes what |out| holds to |lower|. Returns 0 when empty, -EAGAIN if it is full, or <0. */
int tls_bio_send(struct stream *lower, struct buf *out);

/*
 * The lower stream reported readable. Until then, after a read that returned less than asked
 * from a stream whose short reads are final (a socket, stream.h), reads say "retry" without
 * asking it: OpenSSL otherwise ends most reads with a recv(2) returning -EAGAIN.
 */
void tls_bio_readable(BIO *b);

#endif
