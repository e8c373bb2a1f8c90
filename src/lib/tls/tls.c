/*
 * tls.c - SSL_CTX set-up for HBONE and the SPIFFE checks in the verify callback.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define LOG_SCOPE "tls"
#include "base/base.h"
#include "log/log.h"
#include "tls/tls.h"
#include "tls/tls_policy.h"

static const unsigned char alpn_h2[] = {2, 'h', '2'};

struct tls_creds {
    atomic_int refs; /* ztunnel's workers share credentials: the last one out frees them */
    struct spiffe_id id;
    X509 *cert;
    EVP_PKEY *key;
    SSL_CTX *server;
    SSL_CTX *client;
    long not_before, not_after;
};

static int check_idx = -1;
static pthread_once_t check_once = PTHREAD_ONCE_INIT;

static void
check_index_init(void)
{
    check_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Once per process, whichever thread first makes a TLS connection. */
static int
check_index(void)
{
    pthread_once(&check_once, check_index_init);
    return check_idx;
}

void
tls_log_errors(const char *what)
{
    char line[512];
    size_t n = 0;
    unsigned long e;

    line[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        if (n < sizeof(line) - 2) {
            if (n > 0)
                line[n++] = ';';
            ERR_error_string_n(e, line + n, sizeof(line) - n);
            n = strlen(line);
        }
    }
    if (n > 0)
        log_debug("%s: %s", what, line);
}

long
tls_asn1_time_to_epoch(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return -1;
    return (long)timegm(&tm);
}

X509_STORE *
tls_store_from_cert(X509 *root)
{
    X509_STORE *s = X509_STORE_new();
    if (s == NULL || !X509_STORE_add_cert(s, root)) {
        X509_STORE_free(s);
        return NULL;
    }
    return s;
}

static bool
expected_contains(const struct tls_check *chk, const char *uri)
{
    for (size_t i = 0; i < chk->n_expected; i++)
        if (strcmp(chk->expected[i], uri) == 0)
            return true;
    return false;
}

static int
on_verify(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_check *chk = ssl ? SSL_get_ex_data(ssl, check_index()) : NULL;

    if (chk == NULL)
        return 0;
    if (!ok) {
        if (chk->why == NULL)
            chk->why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs));
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(xs) != 0)
        return 1;
    X509 *leaf = X509_STORE_CTX_get_current_cert(xs);
    const char *why = NULL;
    /* X509-SVID: a workload leaf is never a CA and never signs certificates. */
    bool has_ku = (X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) != 0;
    if (X509_check_ca(leaf) != 0 ||
        (has_ku && (X509_get_key_usage(leaf) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))) {
        chk->why = "peer certificate is a CA, not a workload identity";
        goto reject;
    }
    if (spiffe_from_cert(leaf, &chk->peer, &why) < 0) {
        chk->why = why;
        goto reject;
    }
    if (SSL_is_server(ssl)) {
        if (strcmp(chk->peer.td, chk->trust_domain) != 0) {
            chk->why = "peer is not in our trust domain";
            goto reject;
        }
    } else if (!expected_contains(chk, chk->peer.uri)) {
        chk->why = "server identity is not one of the expected identities";
        goto reject;
    }
    chk->have_peer = true;
    return 1;
reject:
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

static int
on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
               unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static SSL_CTX *
make_ctx(bool server, X509 *cert, EVP_PKEY *key, X509_STORE *roots, const struct tls_opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    if (ctx == NULL)
        return NULL;
    if (!tls_policy_apply(ctx, o->allow_x25519) || !SSL_CTX_use_certificate(ctx, cert) ||
        !SSL_CTX_use_PrivateKey(ctx, key) || !SSL_CTX_check_private_key(ctx))
        goto fail;
    X509_STORE_up_ref(roots);
    SSL_CTX_set_cert_store(ctx, roots);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       on_verify);
    SSL_CTX_set_verify_depth(ctx, 4);
    /* No resumption: every connection proves its identity with a full handshake. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    if (server)
        SSL_CTX_set_num_tickets(ctx, 0);
    /* Release record buffers while idle: idle tunnels should cost little memory. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /*
     * No read-ahead during the handshake: its 64 KiB buffer would be held by every pending
     * handshake (a half-sent record keeps it). tls_handshake_done() turns it on after.
     */
    if (server)
        SSL_CTX_set_alpn_select_cb(ctx, on_alpn_select, NULL);
    else if (SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0)
        goto fail;
    return ctx;
fail:
    tls_log_errors("tls context");
    SSL_CTX_free(ctx);
    return NULL;
}

struct tls_creds *
tls_creds_new(const struct spiffe_id *id, X509 *cert, EVP_PKEY *key, X509_STORE *roots,
              const struct tls_opts *opts)
{
    struct tls_creds *c = xcalloc(1, sizeof(*c));
    static const struct tls_opts defaults;

    if (opts == NULL)
        opts = &defaults;
    c->refs = 1;
    c->id = *id;
    c->cert = cert;
    c->key = key;
    c->not_before = tls_asn1_time_to_epoch(X509_get0_notBefore(cert));
    c->not_after = tls_asn1_time_to_epoch(X509_get0_notAfter(cert));
    c->server = make_ctx(true, cert, key, roots, opts);
    c->client = make_ctx(false, cert, key, roots, opts);
    X509_STORE_free(roots);
    if (c->server == NULL || c->client == NULL) {
        tls_creds_unref(c);
        return NULL;
    }
    return c;
}

void
tls_creds_ref(struct tls_creds *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void
tls_creds_unref(struct tls_creds *c)
{
    if (c == NULL || atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) > 1)
        return;
    SSL_CTX_free(c->server);
    SSL_CTX_free(c->client);
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    free(c);
}

const struct spiffe_id *
tls_creds_id(const struct tls_creds *c)
{
    return &c->id;
}

X509 *
tls_creds_cert(const struct tls_creds *c)
{
    return c->cert;
}

long
tls_creds_not_before(const struct tls_creds *c)
{
    return c->not_before;
}

long
tls_creds_not_after(const struct tls_creds *c)
{
    return c->not_after;
}

static SSL *
new_ssl(SSL_CTX *ctx, struct tls_check *chk)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    chk->why = NULL;
    chk->have_peer = false;
    SSL_set_ex_data(ssl, check_index(), chk);
    return ssl;
}

SSL *
tls_new_server(struct tls_creds *c, struct tls_check *chk)
{
    return new_ssl(c->server, chk);
}

SSL *
tls_new_client(struct tls_creds *c, struct tls_check *chk)
{
    /* Deliberately no SNI: HBONE peers are addressed by IP, which SNI cannot carry. */
    return new_ssl(c->client, chk);
}

void
tls_handshake_done(SSL *ssl)
{
    /* Read several records per recv(2); the session drains what OpenSSL holds (SSL_has_pending). */
    SSL_set_read_ahead(ssl, 1);
    SSL_set_default_read_buffer_len(ssl, TLS_READ_AHEAD);
}

bool
tls_alpn_is_h2(SSL *ssl)
{
    const unsigned char *p;
    unsigned int n;

    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}
