/*
 * tls_https.c - see tls_https.h.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/addr.h"
#include "tls/tls_https.h"

static const unsigned char alpn_h2[] = {2, 'h', '2'};

static void
set_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", e ? ERR_reason_error_string(e) : "");
    ERR_clear_error();
}

/* Adds every certificate of |pem| to |ctx|'s store; false if none could be read. */
static bool
load_roots(SSL_CTX *ctx, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return false;
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    size_t n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(st, x) == 1)
            n++;
        X509_free(x);
    }
    ERR_clear_error(); /* the end of the bundle reads as "no start line" */
    BIO_free(b);
    return n > 0;
}

/* The client certificate (first in |pem|, the rest as its chain) and key. */
static bool
load_identity(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    bool ok = false;
    if (b == NULL)
        return false;
    X509 *leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1) {
        X509 *x;
        ok = true;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
            if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) {
                X509_free(x);
                ok = false;
                break;
            }
        if (ok)
            ERR_clear_error();
    }
    X509_free(leaf);
    BIO_free(b);
    if (!ok)
        return false;
    BIO *k = BIO_new_mem_buf(key_pem, -1);
    if (k == NULL)
        return false;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(k, NULL, NULL, NULL);
    BIO_free(k);
    ok =
        key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    return ok;
}

SSL_CTX *
tls_https_client_ctx(const struct tls_https_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        set_err(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0) {
        set_err(err, errlen, "cannot set ALPN");
        goto fail;
    }
    if (o->ca_pem != NULL) {
        if (!load_roots(ctx, o->ca_pem)) {
            set_err(err, errlen, "no usable certificate in the CA bundle");
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        set_err(err, errlen, "cannot load the system's CA certificates");
        goto fail;
    }
    if ((o->cert_pem == NULL) != (o->key_pem == NULL)) {
        snprintf(err, errlen, "a client certificate needs its key and a key its certificate");
        goto fail;
    }
    if (o->cert_pem != NULL && !load_identity(ctx, o->cert_pem, o->key_pem)) {
        set_err(err, errlen, "bad client certificate or key");
        goto fail;
    }
    SSL_CTX_set_verify(ctx, o->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL *
tls_https_client(SSL_CTX *ctx, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    struct ipaddr ip;
    if (ssl == NULL)
        return NULL;
    bool is_ip = ipaddr_parse(host, &ip) == 0;
    X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, host)
                   : X509_VERIFY_PARAM_set1_host(p, host, 0) && SSL_set_tlsext_host_name(ssl, host);
    if (ok != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}
