/*
 * tls_cp.c - control-plane TLS contexts (see tls_cp.h).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"
#include "tls/tls_cp.h"
#include "tls/tls_policy.h"

static const unsigned char alpn_h2[] = {2, 'h', '2'};

static int
select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
          unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, alpn_h2, sizeof(alpn_h2), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* gRPC needs HTTP/2 */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* The mesh's TLS policy (tls_policy.h), as HBONE has it; NULL if OpenSSL refuses. */
static SSL_CTX *
base_ctx(bool server, const struct tls_opts *opts)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL)
        return NULL;
    if (!tls_policy_apply(ctx, opts != NULL && opts->allow_x25519)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

SSL_CTX *
tls_cp_server_ctx(X509 *cert, EVP_PKEY *key, const struct tls_opts *opts)
{
    SSL_CTX *ctx = base_ctx(true, opts);
    if (ctx == NULL) {
        tls_log_errors("control-plane server context");
        return NULL;
    }
    if (!SSL_CTX_use_certificate(ctx, cert) || !SSL_CTX_use_PrivateKey(ctx, key) ||
        !SSL_CTX_check_private_key(ctx)) {
        tls_log_errors("control-plane server context");
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Proxies authenticate with tokens, not certificates. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    return ctx;
}

SSL_CTX *
tls_cp_client_ctx(const char *root_file, const char *name, const struct tls_opts *opts, char *err,
                  size_t errlen)
{
    SSL_CTX *ctx = base_ctx(false, opts);
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot set up a control-plane TLS context");
        ERR_clear_error();
        return NULL;
    }
    if (SSL_CTX_load_verify_locations(ctx, root_file, NULL) != 1) {
        unsigned long e = ERR_peek_last_error();
        snprintf(err, errlen, "%s: cannot load roots (%s)", root_file,
                 e ? ERR_reason_error_string(e) : "no certificate");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (X509_VERIFY_PARAM_set1_host(p, name, 0) != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
        snprintf(err, errlen, "invalid control-plane server name %s", name);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL *
tls_cp_client(SSL_CTX *ctx)
{
    return SSL_new(ctx);
}
