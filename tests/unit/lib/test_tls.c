/*
 * test_tls.c - mutual TLS as HBONE uses it: handshakes between two h2 sessions
 * over a socketpair with certificates minted at test time. Checks the SPIFFE
 * decisions (trust domain, expected identities, foreign CA, validity) and the
 * protocol policy (TLS 1.3 only, AES-GCM, ALPN h2, client certificate required).
 */
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "tls/ca.h"
#include "tls/spiffe.h"
#include "tls/tls.h"
#include "tls/tls_stream.h"
#include "unit_certs.h"
#include "unit_loop.h"

#define TD        "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"

static struct ca *ca1, *ca2;
/* SIGPIPEs delivered: counted instead of killing the test binary (see test_no_sigpipe). */
static volatile sig_atomic_t n_sigpipe;

static void
on_sigpipe(int sig)
{
    (void)sig;
    n_sigpipe++;
}

struct side {
    struct h2_session *s;
    struct tls_check chk;
    int ready, closed, err;
    char version[32];
    char cipher[64];
    bool alpn_h2;
};

struct tt {
    struct loop *loop;
    struct side c, srv;
    const char *expected[2];
    int n_requests;
    struct h2_stream *req;
    int status;
};

static struct side *
side_of(struct tt *t, struct h2_session *s)
{
    return s == t->c.s ? &t->c : &t->srv;
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct side *d = side_of(arg, s);
    SSL *ssl = tls_stream_ssl(h2_session_transport(s));

    assert_non_null(ssl);
    d->ready++;
    snprintf(d->version, sizeof(d->version), "%s", SSL_get_version(ssl));
    snprintf(d->cipher, sizeof(d->cipher), "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
    d->alpn_h2 = tls_alpn_is_h2(ssl);
    return 0;
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct side *d = side_of(arg, s);
    d->closed++;
    d->err = err;
}

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct tt *t = arg;
    (void)s;
    t->n_requests++;
    t->req = st;
    assert_int_equal(h2_stream_respond(st, 200, NULL, 0, false), 0);
}

static const struct h2_session_cbs cbs = {
    .on_ready = on_ready,
    .on_request = on_request,
    .on_closed = on_closed,
};

static int
group_setup(void **state)
{
    struct sigaction sa;
    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigpipe;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    ca1 = ca_generate("unit root 1", 86400);
    ca2 = ca_generate("unit root 2", 86400);
    return ca1 != NULL && ca2 != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    ca_free(ca1);
    ca_free(ca2);
    return 0;
}

/* Starts both sides; |ssl_c| may come from tls_new_client() or a hand-made context. */
static void
tt_start(struct tt *t, SSL *ssl_c, SSL *ssl_s)
{
    int fds[2];

    assert_non_null(ssl_c);
    assert_non_null(ssl_s);
    unit_socketpair(fds);
    struct loop *l = t->loop;
    struct stream *xc =
        tls_stream_new(l, tcp_stream_new(l, fds[0]), ssl_c, false, TLS_STREAM_ALPN_H2);
    struct stream *xs =
        tls_stream_new(l, tcp_stream_new(l, fds[1]), ssl_s, true, TLS_STREAM_ALPN_H2);
    t->c.s = h2_session_new(l, xc, false, &cbs, t);
    t->srv.s = h2_session_new(l, xs, true, &cbs, t);
    assert_false(h2_session_is_ready(t->c.s));
}

static void
tt_init(struct tt *t, const char *expected)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop_new();
    t->srv.chk.trust_domain = TD;
    t->expected[0] = expected;
    t->c.chk.expected = t->expected;
    t->c.chk.n_expected = 1;
}

/* Runs a handshake between |cc| (client creds) and |sc| (server creds). */
static void
tt_handshake(struct tt *t, struct tls_creds *cc, struct tls_creds *sc)
{
    tt_start(t, tls_new_client(cc, &t->c.chk), tls_new_server(sc, &t->srv.chk));
}

static bool
cond_settled(void *arg)
{
    struct tt *t = arg;
    bool c_done = t->c.ready || t->c.closed, s_done = t->srv.ready || t->srv.closed;
    /* A failure on one side must end the other too. */
    if (t->c.closed || t->srv.closed)
        return t->c.closed && t->srv.closed;
    return c_done && s_done;
}

static void
tt_finish(struct tt *t)
{
    if (t->req != NULL)
        stream_close(h2_stream_as_stream(t->req), true);
    h2_session_close(t->c.s, 0);
    h2_session_close(t->srv.s, 0);
    unit_run_for(t->loop, 2);
    assert_int_equal(t->c.closed, 1);
    assert_int_equal(t->srv.closed, 1);
    h2_session_release(t->c.s);
    h2_session_release(t->srv.s);
    unit_run_for(t->loop, 2);
    loop_free(t->loop);
}

static void
expect_rejected(struct tt *t, struct side *rejecter, const char *why)
{
    assert_true(unit_run_until(t->loop, cond_settled, t, 3000));
    assert_int_equal(rejecter->ready, 0);
    assert_int_equal(rejecter->closed, 1);
    assert_int_equal(rejecter->err, -MESH_ETLS);
    assert_false(rejecter->chk.have_peer);
    if (why != NULL) {
        assert_non_null(rejecter->chk.why);
        if (strstr(rejecter->chk.why, why) == NULL)
            fail_msg("rejected for \"%s\", expected \"%s\"", rejecter->chk.why, why);
    }
    /* The other side fails too (alert or closed connection), never silently hangs. */
    struct side *other = rejecter == &t->c ? &t->srv : &t->c;
    assert_int_equal(other->closed, 1);
    assert_true(other->err != 0);
}

static void
on_response(void *arg, struct h2_stream *st, int status)
{
    struct tt *t = arg;
    (void)st;
    t->status = status;
}

static bool
cond_status(void *arg)
{
    struct tt *t = arg;
    return t->status != 0;
}

struct rd {
    struct stream *s;
    char buf[16];
    size_t len;
};

static bool
cond_read5(void *arg)
{
    struct rd *r = arg;
    ssize_t n = stream_read(r->s, r->buf + r->len, sizeof(r->buf) - r->len);
    if (n > 0)
        r->len += (size_t)n;
    return r->len >= 5;
}

static void
test_mutual_tls_success(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    assert_string_equal(tls_creds_id(cc)->uri, CLIENT_ID);
    assert_non_null(tls_creds_cert(cc));
    long now = (long)time(NULL);
    assert_true(tls_creds_not_before(sc) <= now && tls_creds_not_before(sc) >= now - 120);
    assert_true(tls_creds_not_after(sc) >= now + 3500 && tls_creds_not_after(sc) <= now + 3600);

    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    /* Connections hold their own references: the creds may go now. */
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    assert_true(unit_run_until(t.loop, cond_settled, &t, 3000));
    assert_int_equal(t.c.ready, 1);
    assert_int_equal(t.srv.ready, 1);
    assert_int_equal(t.c.closed + t.srv.closed, 0);

    /* Each side learned the other's identity inside the handshake. */
    assert_true(t.c.chk.have_peer);
    assert_string_equal(t.c.chk.peer.uri, SERVER_ID);
    assert_string_equal(t.c.chk.peer.sa, "server");
    assert_true(t.srv.chk.have_peer);
    assert_string_equal(t.srv.chk.peer.uri, CLIENT_ID);
    assert_string_equal(t.srv.chk.peer.td, TD);
    assert_string_equal(t.srv.chk.peer.ns, "default");
    assert_null(t.c.chk.why);
    assert_null(t.srv.chk.why);

    /* Policy: TLS 1.3, AES-GCM, ALPN h2. */
    assert_string_equal(t.c.version, "TLSv1.3");
    assert_string_equal(t.srv.version, "TLSv1.3");
    assert_non_null(strstr(t.c.cipher, "_GCM_"));
    assert_string_equal(t.c.cipher, t.srv.cipher);
    assert_true(t.c.alpn_h2 && t.srv.alpn_h2);

    /* A CONNECT and some bytes over the encrypted session. */
    struct h2_stream *st = h2_session_connect(t.c.s, "198.18.0.10:80", NULL, 0, on_response, &t);
    assert_non_null(st);
    assert_true(unit_run_until(t.loop, cond_status, &t, 2000));
    assert_int_equal(t.status, 200);
    assert_int_equal(stream_write(h2_stream_as_stream(st), "hello", 5), 5);
    struct rd r = {.s = h2_stream_as_stream(t.req)};
    assert_true(unit_run_until(t.loop, cond_read5, &r, 2000));
    assert_memory_equal(r.buf, "hello", 5);
    stream_close(h2_stream_as_stream(st), true);
    tt_finish(&t);
}

static void
test_expected_list_any_match(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    tt_init(&t, "spiffe://cluster.local/ns/default/sa/nope");
    t.expected[1] = SERVER_ID;
    t.c.chk.n_expected = 2;
    tt_handshake(&t, cc, sc);
    assert_true(unit_run_until(t.loop, cond_settled, &t, 3000));
    assert_int_equal(t.c.ready, 1);
    assert_int_equal(t.srv.ready, 1);
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_server_rejects_other_trust_domain(void **state)
{
    struct tt t;
    (void)state;

    /* Same CA, but the client claims another trust domain. */
    struct tls_creds *cc = unit_creds_simple(ca1, "evil.example", "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.srv, "trust domain");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_client_rejects_unexpected_server(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "impostor");
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.c, "expected identities");
    assert_int_equal(t.n_requests, 0);
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_client_rejects_server_from_other_ca(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    /* Right identity, wrong issuer (the server itself trusts ca1). */
    struct tls_creds *sc = unit_creds(ca2, ca1, TD, "default", "server", -60, 3600);
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.c, "issuer");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_server_rejects_client_from_other_ca(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds(ca2, ca1, TD, "default", "client", -60, 3600);
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.srv, "issuer");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_expired_leaf_rejected(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    /* Valid from two hours ago for one hour: expired an hour ago. */
    struct tls_creds *sc = unit_creds(ca1, ca1, TD, "default", "server", -7200, 3600);
    assert_true(tls_creds_not_after(sc) < (long)time(NULL));
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.c, "expired");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_expired_client_leaf_rejected(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds(ca1, ca1, TD, "default", "client", -20, 10);
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.srv, "expired");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

static void
test_not_yet_valid_leaf_rejected(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    struct tls_creds *sc = unit_creds(ca1, ca1, TD, "default", "server", 3600, 3600);
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.c, "not yet valid");
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

/* A leaf whose URI SAN is not a SPIFFE ID is refused even if "expected". */
static void
test_non_spiffe_san_rejected(void **state)
{
    struct tt t;
    struct spiffe_id id;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    EVP_PKEY *key = ca_new_key();
    X509 *cert = ca_issue_sans(ca1, key, "URI:https://cluster.local/ns/default/sa/server", -60, 3600);
    assert_non_null(cert);
    assert_int_equal(spiffe_make(TD, "default", "server", &id), 0);
    struct tls_creds *sc = tls_creds_new(&id, cert, key, tls_store_from_cert(ca_root(ca1)), NULL);
    assert_non_null(sc);
    tt_init(&t, "https://cluster.local/ns/default/sa/server");
    tt_handshake(&t, cc, sc);
    expect_rejected(&t, &t.c, NULL);
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    tt_finish(&t);
}

/* ---- protocol policy, probed with hand-made client contexts --------------- */

struct raw {
    int max_version;
    const char *suites; /* NULL: OpenSSL's default TLS 1.3 suites */
    const char *groups; /* NULL: default */
    bool alpn;
    bool with_cert;
};

static SSL *
raw_client(const struct raw *o, X509 *cert, EVP_PKEY *key)
{
    static const unsigned char h2[] = {2, 'h', '2'};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    assert_non_null(ctx);
    SSL_CTX_set_max_proto_version(ctx, o->max_version);
    if (o->suites != NULL)
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, o->suites), 1);
    if (o->groups != NULL)
        assert_int_equal(SSL_CTX_set1_groups_list(ctx, o->groups), 1);
    if (o->alpn)
        assert_int_equal(SSL_CTX_set_alpn_protos(ctx, h2, sizeof(h2)), 0);
    if (o->with_cert) {
        assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    return ssl;
}

/* Handshakes a hand-made client against a real server; returns the tt for checks. */
static void
raw_handshake(struct tt *t, const struct raw *o, const struct tls_opts *srv_opts)
{
    struct spiffe_id id;
    EVP_PKEY *ckey = ca_new_key(), *skey = ca_new_key();
    X509 *ccert = ca_issue(ca1, ckey, CLIENT_ID, -60, 3600);
    X509 *scert = ca_issue(ca1, skey, SERVER_ID, -60, 3600);

    assert_int_equal(spiffe_make(TD, "default", "server", &id), 0);
    struct tls_creds *sc =
        tls_creds_new(&id, scert, skey, tls_store_from_cert(ca_root(ca1)), srv_opts);
    assert_non_null(sc);
    tt_init(t, SERVER_ID);
    tt_start(t, raw_client(o, ccert, ckey), tls_new_server(sc, &t->srv.chk));
    tls_creds_unref(sc);
    X509_free(ccert);
    EVP_PKEY_free(ckey);
    assert_true(unit_run_until(t->loop, cond_settled, t, 3000));
}

static void
test_aes128_gcm_accepted(void **state)
{
    struct tt t;
    struct raw o = {TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", NULL, true, true};
    (void)state;

    raw_handshake(&t, &o, NULL);
    assert_int_equal(t.srv.ready, 1);
    assert_string_equal(t.srv.cipher, "TLS_AES_128_GCM_SHA256");
    assert_string_equal(t.srv.version, "TLSv1.3");
    assert_true(t.srv.chk.have_peer);
    tt_finish(&t);
}

static void
test_policy_refusals(void **state)
{
    static const struct {
        const char *name;
        struct raw o;
    } cases[] = {
        {"TLS 1.2 only", {TLS1_2_VERSION, NULL, NULL, true, true}},
        {"ChaCha20 only", {TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", NULL, true, true}},
        {"X25519 only", {TLS1_3_VERSION, NULL, "X25519", true, true}},
        {"no client certificate", {TLS1_3_VERSION, NULL, NULL, true, false}},
        {"no ALPN", {TLS1_3_VERSION, NULL, NULL, false, true}},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tt t;
        raw_handshake(&t, &cases[i].o, NULL);
        if (t.srv.ready != 0 || t.srv.closed != 1 || t.srv.err != -MESH_ETLS)
            fail_msg("%s: server ready=%d closed=%d err=%d", cases[i].name, t.srv.ready,
                     t.srv.closed, t.srv.err);
        if (t.c.closed != 1)
            fail_msg("%s: client not closed", cases[i].name);
        tt_finish(&t);
    }
}

static void
test_x25519_opt_in(void **state)
{
    struct tt t;
    struct raw o = {TLS1_3_VERSION, NULL, "X25519", true, true};
    struct tls_opts opts = {.allow_x25519 = true};
    (void)state;

    raw_handshake(&t, &o, &opts);
    assert_int_equal(t.srv.ready, 1);
    assert_int_equal(t.srv.closed, 0);
    tt_finish(&t);
}

/*
 * The library must not raise SIGPIPE when a TLS peer is gone: the cleartext
 * paths use send(MSG_NOSIGNAL), so a process embedding h2/tls should not need
 * to ignore SIGPIPE. Closing both sessions makes the second close_notify hit a
 * closed socket.
 */
static void
test_no_sigpipe(void **state)
{
    struct tt t;
    (void)state;

    struct tls_creds *cc = unit_creds_simple(ca1, TD, "default", "client");
    struct tls_creds *sc = unit_creds_simple(ca1, TD, "default", "server");
    tt_init(&t, SERVER_ID);
    tt_handshake(&t, cc, sc);
    tls_creds_unref(cc);
    tls_creds_unref(sc);
    assert_true(unit_run_until(t.loop, cond_settled, &t, 3000));
    assert_int_equal(t.c.ready + t.srv.ready, 2);
    n_sigpipe = 0;
    tt_finish(&t);
    assert_int_equal(n_sigpipe, 0);
}

static void
test_asn1_time(void **state)
{
    ASN1_TIME *a = ASN1_TIME_new();
    (void)state;

    assert_non_null(ASN1_TIME_set_string(a, "20300101000000Z") ? a : NULL);
    assert_int_equal(tls_asn1_time_to_epoch(a), 1893456000L);
    assert_int_equal(tls_asn1_time_to_epoch(NULL), -1);
    ASN1_TIME_free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_tls_success),
        cmocka_unit_test(test_expected_list_any_match),
        cmocka_unit_test(test_server_rejects_other_trust_domain),
        cmocka_unit_test(test_client_rejects_unexpected_server),
        cmocka_unit_test(test_client_rejects_server_from_other_ca),
        cmocka_unit_test(test_server_rejects_client_from_other_ca),
        cmocka_unit_test(test_expired_leaf_rejected),
        cmocka_unit_test(test_expired_client_leaf_rejected),
        cmocka_unit_test(test_not_yet_valid_leaf_rejected),
        cmocka_unit_test(test_non_spiffe_san_rejected),
        cmocka_unit_test(test_aes128_gcm_accepted),
        cmocka_unit_test(test_policy_refusals),
        cmocka_unit_test(test_x25519_opt_in),
        cmocka_unit_test(test_no_sigpipe),
        cmocka_unit_test(test_asn1_time),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
