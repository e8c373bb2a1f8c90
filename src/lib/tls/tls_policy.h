/*
 * tls_policy.h - the one TLS policy of every context in the mesh, HBONE
 * (tls.c) and the control plane on 15012 (tls_cp.c): TLS 1.3 only, the
 * FIPS-approved AES-GCM suites and the P-256/P-384 groups. X25519 (not
 * FIPS-approved) only on request, with --allow-x25519.
 */
#ifndef MESH_LIB_TLS_POLICY_H
#define MESH_LIB_TLS_POLICY_H

#include <stdbool.h>

#include <openssl/ssl.h>

/* Applies the policy to |ctx|; false (OpenSSL's error queue filled) if it refused. */
bool tls_policy_apply(SSL_CTX *ctx, bool allow_x25519);

#endif
