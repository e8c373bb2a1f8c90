/*
 * tls_bio.h - the socket underneath OpenSSL, as a BIO that batches writes.
 *
 * Reads go straight to recv(2). Writes (encrypted records) are appended to a
 * caller-owned buffer and sent by tls_bio_send() with MSG_NOSIGNAL, so many
 * records leave in one send(2) and a vanished peer never raises SIGPIPE.
 */
#ifndef MESH_LIB_TLS_BIO_H
#define MESH_LIB_TLS_BIO_H

#include <openssl/bio.h>

#include "buf/buf.h"

/* Room for the largest TLS record, so a buffer below this is "full". */
#define TLS_BIO_RECORD_MAX (16384 + 256)

/* A BIO over |fd| writing into |out| (which must outlive it). NULL on failure. */
BIO *tls_bio_new(int fd, struct buf *out);

/* Sends what |out| holds. Returns 0 when empty, -EAGAIN if the socket is full, or -errno. */
int tls_bio_send(int fd, struct buf *out);

#endif
