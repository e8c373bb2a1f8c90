/*
 * tls_https.h - TLS for an ordinary HTTPS client (the Kubernetes API server):
 * the server is checked against a given CA bundle and its certificate must
 * name the host we dialled (DNS name or IP address SAN), as a browser or
 * client-go does. This is not HBONE's policy: the peer is not a mesh member,
 * so TLS 1.2 is accepted and OpenSSL's default suites apply. ALPN offers h2
 * only. An optional client certificate authenticates us.
 */
#ifndef MESH_LIB_TLS_HTTPS_H
#define MESH_LIB_TLS_HTTPS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct tls_https_opts {
    const char *ca_pem;        /* trusted roots (PEM); NULL: the system's default store */
    const char *cert_pem;      /* client certificate chain (PEM), or NULL */
    const char *key_pem;       /* its private key (PEM); required with cert_pem */
    bool insecure_skip_verify; /* no chain or name check (kubeconfig's option; logged by callers) */
};

/* A client context for |o|. NULL with |err| filled on failure. */
SSL_CTX *tls_https_client_ctx(const struct tls_https_opts *o, char *err, size_t errlen);

/*
 * A client SSL from |ctx| for a server known as |host| (DNS name or IP
 * literal, no brackets): SNI is set for names, and the certificate must carry
 * |host| as a DNS or IP SAN unless the context skips verification. NULL on failure.
 */
SSL *tls_https_client(SSL_CTX *ctx, const char *host);

#endif
