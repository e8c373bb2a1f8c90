/*
 * tls_cp.h - TLS for the control plane (xDS and CA on 15012).
 *
 * Unlike workload mTLS, the control-plane connection is server-authenticated
 * only: the proxy proves who it is with a bearer token in gRPC metadata, as
 * Istio's do, and checks that the server holds a certificate for a fixed DNS
 * name (istiod's) issued by the root in --root-cert. TLS 1.3, ALPN h2, and
 * the suites and groups of HBONE (tls_policy.h): FIPS-approved only unless
 * |opts| allows X25519 (NULL: the defaults).
 */
#ifndef MESH_LIB_TLS_CP_H
#define MESH_LIB_TLS_CP_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "tls/tls.h"

/* The name meshd's serving certificate carries and clients check by default. */
#define TLS_CP_DEFAULT_NAME "istiod.istio-system.svc"

/* Server context over |cert| (signed by the mesh root) and |key|. NULL on failure. */
SSL_CTX *tls_cp_server_ctx(X509 *cert, EVP_PKEY *key, const struct tls_opts *opts);

/*
 * Client context trusting only the PEM roots in |root_file| and expecting
 * |name| in the server's DNS SANs. NULL with |err| filled on failure.
 */
SSL_CTX *tls_cp_client_ctx(const char *root_file, const char *name, const struct tls_opts *opts,
                           char *err, size_t errlen);

/* A client SSL for one connection from |ctx| (server name checked per the context). */
SSL *tls_cp_client(SSL_CTX *ctx);

#endif
