/*
 * test_tls_cp.c - the control-plane TLS contexts (15012) keep the mesh's TLS
 * policy, as HBONE does: TLS 1.3, AES-GCM suites, groups P-256/P-384, X25519
 * only when allowed. Each side is tried against a plain OpenSSL peer limited
 * to one group or one suite, handshaking in memory (a BIO pair).
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "tls/ca.h"
#include "tls/tls_cp.h"

#define AES128 "TLS_AES_128_GCM_SHA256"
#define AES256 "TLS_AES_256_GCM_SHA384"
#define CHACHA "TLS_CHACHA20_POLY1305_SHA256"

static const unsigned char alpn_h2[] = {2, 'h', '2'};
static struct ca *ca;
static X509 *srv_cert;
static EVP_PKEY *srv_key;
static char root_file[64];

struct result {
    bool ok;
    char cipher[64];
    int group; /* NID */
};

static int
group_setup(void **state)
{
    (void)state;
    ca = ca_generate("test root", 3600);
    srv_key = ca_new_key();
    srv_cert = ca_issue_sans(ca, srv_key, "DNS:" TLS_CP_DEFAULT_NAME, -60, 3600);
    snprintf(root_file, sizeof(root_file), "/tmp/test_tls_cp.%d.pem", (int)getpid());
    return ca && srv_key && srv_cert && ca_save(ca, root_file, NULL) == 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    unlink(root_file);
    X509_free(srv_cert);
    EVP_PKEY_free(srv_key);
    ca_free(ca);
    return 0;
}

/* A plain OpenSSL peer that offers only |groups| and |suites| (NULL: OpenSSL's defaults). */
static SSL_CTX *
peer_ctx(bool server, const char *groups, const char *suites)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

    assert_non_null(ctx);
    if (groups != NULL)
        assert_int_equal(SSL_CTX_set1_groups_list(ctx, groups), 1);
    if (suites != NULL)
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, suites), 1);
    if (server) {
        assert_int_equal(SSL_CTX_use_certificate(ctx, srv_cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, srv_key), 1);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)), 0);
    }
    return ctx;
}

static bool
step(SSL *ssl, bool *done)
{
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        *done = true;
        return true;
    }
    int e = SSL_get_error(ssl, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static struct result
handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
    struct result r = {0};
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *bs, *bc;
    bool sdone = false, cdone = false;

    assert_non_null(s);
    assert_non_null(c);
    assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
    SSL_set_bio(s, bs, bs);
    SSL_set_bio(c, bc, bc);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 20 && !(sdone && cdone); i++)
        if (!step(c, &cdone) || !step(s, &sdone))
            break;
    r.ok = sdone && cdone;
    if (r.ok) {
        snprintf(r.cipher, sizeof(r.cipher), "%s", SSL_get_cipher_name(s));
        r.group = SSL_get_negotiated_group(s);
    }
    SSL_free(s);
    SSL_free(c);
    ERR_clear_error();
    return r;
}

static SSL_CTX *
cp_server(bool allow_x25519)
{
    struct tls_opts o = {.allow_x25519 = allow_x25519};
    SSL_CTX *ctx = tls_cp_server_ctx(srv_cert, srv_key, &o);
    assert_non_null(ctx);
    return ctx;
}

static SSL_CTX *
cp_client(bool allow_x25519)
{
    struct tls_opts o = {.allow_x25519 = allow_x25519};
    char err[256];
    SSL_CTX *ctx = tls_cp_client_ctx(root_file, TLS_CP_DEFAULT_NAME, &o, err, sizeof(err));
    if (ctx == NULL)
        fail_msg("tls_cp_client_ctx: %s", err);
    return ctx;
}

/* Runs one handshake and frees both contexts. */
static struct result
try_pair(SSL_CTX *sctx, SSL_CTX *cctx)
{
    struct result r = handshake(sctx, cctx);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return r;
}

static void
expect(const char *what, struct result r, bool ok, int group)
{
    if (r.ok != ok)
        fail_msg("%s: handshake %s, want %s", what, r.ok ? "succeeded" : "failed",
                 ok ? "success" : "failure");
    if (!ok)
        return;
    if (strcmp(r.cipher, AES128) != 0 && strcmp(r.cipher, AES256) != 0)
        fail_msg("%s: suite %s, want AES-GCM", what, r.cipher);
    if (group != 0 && r.group != group)
        fail_msg("%s: group %s, want %s", what, OBJ_nid2sn(r.group), OBJ_nid2sn(group));
}

/* meshd's side of 15012 against clients that offer one thing each. */
static void
test_server_policy(void **state)
{
    (void)state;
    expect("server, client offers X25519 only",
           try_pair(cp_server(false), peer_ctx(false, "X25519", NULL)), false, 0);
    expect("server, client offers ChaCha20 only",
           try_pair(cp_server(false), peer_ctx(false, NULL, CHACHA)), false, 0);
    expect("server, client offers P-256 and AES-128-GCM",
           try_pair(cp_server(false), peer_ctx(false, "P-256", AES128)), true,
           NID_X9_62_prime256v1);
    expect("server, client offers P-384 and AES-256-GCM",
           try_pair(cp_server(false), peer_ctx(false, "P-384", AES256)), true, NID_secp384r1);
    /* OpenSSL's default client sends an X25519 key share first: it must end on P-256. */
    expect("server, OpenSSL default client",
           try_pair(cp_server(false), peer_ctx(false, NULL, NULL)), true, NID_X9_62_prime256v1);
    expect("server with --allow-x25519, client offers X25519 only",
           try_pair(cp_server(true), peer_ctx(false, "X25519", NULL)), true, NID_X25519);
    expect("server with --allow-x25519, client offers ChaCha20 only",
           try_pair(cp_server(true), peer_ctx(false, NULL, CHACHA)), false, 0);
}

/* ztunnel's (and the xDS benchmark's) side of 15012 against servers limited the same way. */
static void
test_client_policy(void **state)
{
    (void)state;
    expect("client, server takes X25519 only",
           try_pair(peer_ctx(true, "X25519", NULL), cp_client(false)), false, 0);
    expect("client, server takes ChaCha20 only",
           try_pair(peer_ctx(true, NULL, CHACHA), cp_client(false)), false, 0);
    expect("client, OpenSSL default server", try_pair(peer_ctx(true, NULL, NULL), cp_client(false)),
           true, NID_X9_62_prime256v1);
    expect("client with --allow-x25519, server takes X25519 only",
           try_pair(peer_ctx(true, "X25519", NULL), cp_client(true)), true, NID_X25519);
    /* NULL options are the defaults (FIPS groups). */
    char err[256];
    SSL_CTX *def = tls_cp_client_ctx(root_file, TLS_CP_DEFAULT_NAME, NULL, err, sizeof(err));
    assert_non_null(def);
    expect("client with NULL options, server takes X25519 only",
           try_pair(peer_ctx(true, "X25519", NULL), def), false, 0);
}

/* The two sides agree with each other, with and without the opt-in. */
static void
test_pairs(void **state)
{
    (void)state;
    expect("default client, default server", try_pair(cp_server(false), cp_client(false)), true,
           NID_X9_62_prime256v1);
    expect("x25519 client, default server", try_pair(cp_server(false), cp_client(true)), true,
           NID_X9_62_prime256v1);
    expect("default client, x25519 server", try_pair(cp_server(true), cp_client(false)), true,
           NID_X9_62_prime256v1);
    expect("x25519 client, x25519 server", try_pair(cp_server(true), cp_client(true)), true,
           NID_X25519);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_policy),
        cmocka_unit_test(test_client_policy),
        cmocka_unit_test(test_pairs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
