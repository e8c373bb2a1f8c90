/*
 * tls_policy.c - see tls_policy.h. The only place the mesh names suites and
 * groups: a change here changes HBONE and the control plane together.
 */
#include "tls/tls_policy.h"

#define TLS_CIPHERSUITES  "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
#define TLS_GROUPS_FIPS   "P-256:P-384"
#define TLS_GROUPS_X25519 "X25519:P-256:P-384"

bool
tls_policy_apply(SSL_CTX *ctx, bool allow_x25519)
{
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) &&
           SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) &&
           SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERSUITES) &&
           SSL_CTX_set1_groups_list(ctx, allow_x25519 ? TLS_GROUPS_X25519 : TLS_GROUPS_FIPS);
}
