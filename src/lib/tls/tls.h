/*
 * tls.h - TLS as HBONE uses it: TLS 1.3 only, AES-GCM suites, ALPN h2, no SNI,
 * mutual authentication with SPIFFE identities.
 *
 * A tls_creds holds one identity's certificate and key and the two SSL_CTXs
 * built from them. Rotation makes a new tls_creds; connections keep a
 * reference to the one they were made with.
 *
 * Checks, done inside the handshake so a failure sends an alert:
 *   server: chain to the trust bundle, client SAN in our trust domain;
 *   client: chain to the trust bundle, server SAN one of the expected identities.
 */
#ifndef MESH_LIB_TLS_H
#define MESH_LIB_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "tls/spiffe.h"

struct tls_opts {
    bool allow_x25519; /* off by default: FIPS-approved groups P-256/P-384 only */
};

/* Per-connection verification state; owned by the connection, outlives its SSL. */
struct tls_check {
    const char *trust_domain;     /* server: the trust domain peers must be in */
    const char *const *expected;  /* client: acceptable server identities (URIs) */
    size_t n_expected;
    struct spiffe_id peer;        /* filled once the peer's leaf was accepted */
    bool have_peer;
    const char *why;              /* static reason when verification failed */
};

struct tls_creds;

/*
 * Takes ownership of |cert|, |key| and |roots| (a store holding the trust
 * bundle; use tls_store_from_certs()). Returns NULL if OpenSSL refuses them.
 */
struct tls_creds *tls_creds_new(const struct spiffe_id *id, X509 *cert, EVP_PKEY *key,
                                X509_STORE *roots, const struct tls_opts *opts);
void tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds *c);
const struct spiffe_id *tls_creds_id(const struct tls_creds *c);
X509 *tls_creds_cert(const struct tls_creds *c);
/* Validity in seconds since the epoch. */
long tls_creds_not_before(const struct tls_creds *c);
long tls_creds_not_after(const struct tls_creds *c);

/* A store trusting |root| (up-referenced). */
X509_STORE *tls_store_from_cert(X509 *root);

/* New SSL objects bound to |chk| (which must outlive them). NULL on failure. */
SSL *tls_new_server(struct tls_creds *c, struct tls_check *chk);
SSL *tls_new_client(struct tls_creds *c, struct tls_check *chk);

/* Bytes OpenSSL reads per recv(2) once a connection is up. */
#define TLS_READ_AHEAD (64 * 1024)

/*
 * After a completed handshake: read ahead TLS_READ_AHEAD bytes per recv(2).
 * Off until then, so a pending handshake holds no large buffer.
 */
void tls_handshake_done(SSL *ssl);

/* True if the handshake selected ALPN "h2". */
bool tls_alpn_is_h2(SSL *ssl);

/* Drains OpenSSL's error queue into one debug log line prefixed by |what|. */
void tls_log_errors(const char *what);

/* Seconds since the epoch of an ASN1_TIME, or -1. */
long tls_asn1_time_to_epoch(const ASN1_TIME *t);

#endif
