/*
 * test_tls_stream.c - TLS as a struct stream, used directly (no HTTP/2):
 * the handshake's phases (opened(), STREAM_OPEN), the ALPN h2 requirement,
 * a large transfer both ways with a slow reader (batched records, writes
 * that block and resume), close_notify as end of stream, and a peer whose
 * verification fails.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "tls/ca.h"
#include "tls/tls.h"
#include "tls/tls_stream.h"
#include "unit_certs.h"
#include "unit_loop.h"

#define TD        "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define WRONG_ID  "spiffe://cluster.local/ns/default/sa/nobody"

struct end {
    struct stream *s;
    int opens; /* STREAM_OPEN events */
    const uint8_t *tx;
    size_t tx_len, tx_off;
    bool shut;
    bool keep_open; /* no shutdown_write after |tx| */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    size_t rx_per_event; /* 0: as much as there is */
    bool eof;
    int err;
};

struct tst {
    struct loop *loop;
    struct ca *ca;
    struct tls_creds *cc, *sc;
    struct tls_check cchk, schk;
    const char *expected[1];
    struct end c, s;
};

static void
pump(struct end *e)
{
    while (e->tx_off < e->tx_len) {
        ssize_t w = stream_write(e->s, e->tx + e->tx_off, e->tx_len - e->tx_off);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            e->err = (int)w;
            return;
        }
        e->tx_off += (size_t)w;
    }
    if (e->tx != NULL && e->tx_off == e->tx_len && !e->shut && !e->keep_open) {
        assert_int_equal(stream_shutdown_write(e->s), 0);
        e->shut = true;
    }
    size_t budget = e->rx_per_event ? e->rx_per_event : SIZE_MAX;
    while (!e->eof && budget > 0) {
        size_t room = e->rx_cap - e->rx_len;
        ssize_t r = stream_read(e->s, e->rx + e->rx_len, room < budget ? room : budget);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            e->err = (int)r;
            return;
        }
        if (r == 0)
            e->eof = true;
        e->rx_len += (size_t)r;
        budget -= (size_t)r;
        assert_true(e->rx_len < e->rx_cap);
    }
    stream_want(e->s, !e->eof, e->tx_off < e->tx_len);
}

static void
on_event(void *arg, struct stream *s, unsigned events)
{
    struct end *e = arg;
    (void)s;

    if (events & STREAM_OPEN) {
        e->opens++;
        if (stream_opened(e->s) < 0) {
            e->err = stream_opened(e->s);
            return;
        }
    }
    if (e->err == 0 && stream_opened(e->s) > 0)
        pump(e);
}

static void
tst_setup(struct tst *t, const char *expected, unsigned cflags, unsigned sflags, bool no_alpn)
{
    int fds[2];

    memset(t, 0, sizeof(*t));
    t->loop = loop_new();
    t->ca = ca_generate("tls stream root", 3600);
    assert_non_null(t->ca);
    t->cc = unit_creds_simple(t->ca, TD, "default", "client");
    t->sc = unit_creds_simple(t->ca, TD, "default", "server");
    t->expected[0] = expected;
    t->cchk.expected = t->expected;
    t->cchk.n_expected = 1;
    t->schk.trust_domain = TD;
    SSL *cs = tls_new_client(t->cc, &t->cchk), *ss = tls_new_server(t->sc, &t->schk);
    assert_non_null(cs);
    assert_non_null(ss);
    if (no_alpn)
        assert_int_equal(SSL_set_alpn_protos(cs, NULL, 0), 0); /* offers no ALPN at all */
    unit_socketpair(fds);
    t->c.s = tls_stream_new(t->loop, tcp_stream_new(t->loop, fds[0]), cs, false, cflags);
    t->s.s = tls_stream_new(t->loop, tcp_stream_new(t->loop, fds[1]), ss, true, sflags);
    assert_non_null(t->c.s);
    assert_non_null(t->s.s);
    stream_set_handler(t->c.s, on_event, &t->c);
    stream_set_handler(t->s.s, on_event, &t->s);
    /* Before the loop ran nothing happened: both are setting up. */
    assert_int_equal(stream_opened(t->c.s), 0);
    assert_int_equal(stream_opened(t->s.s), 0);
    char b[1];
    assert_int_equal(stream_read(t->c.s, b, sizeof(b)), -EAGAIN);
    assert_int_equal(stream_write(t->c.s, "x", 1), -EAGAIN);
}

static void
tst_teardown(struct tst *t)
{
    stream_close(t->c.s, false);
    stream_close(t->s.s, false);
    unit_run_for(t->loop, 2);
    loop_free(t->loop);
    tls_creds_unref(t->cc);
    tls_creds_unref(t->sc);
    ca_free(t->ca);
    free((void *)t->c.tx);
    free((void *)t->s.tx);
    free(t->c.rx);
    free(t->s.rx);
}

static bool
cond_both_opened(void *arg)
{
    struct tst *t = arg;
    return t->c.opens == 1 && t->s.opens == 1;
}

static bool
cond_both_eof(void *arg)
{
    struct tst *t = arg;
    return (t->c.eof || t->c.err) && (t->s.eof || t->s.err);
}

/* 6 MiB each way at once; the server reads at most 8 KiB per wake-up, so the client blocks. */
static void
test_transfer_both_ways(void **state)
{
    struct tst t;
    (void)state;

    tst_setup(&t, SERVER_ID, TLS_STREAM_ALPN_H2, TLS_STREAM_ALPN_H2, false);
    assert_true(unit_run_until(t.loop, cond_both_opened, &t, 5000));
    assert_int_equal(stream_opened(t.c.s), 1);
    assert_int_equal(stream_opened(t.s.s), 1);
    SSL *ssl = tls_stream_ssl(t.c.s);
    assert_non_null(ssl);
    assert_true(tls_alpn_is_h2(ssl));
    assert_true(t.cchk.have_peer);
    assert_string_equal(t.cchk.peer.uri, SERVER_ID);
    assert_null(tls_stream_ssl(NULL));

    size_t n = 6u << 20;
    t.c.tx = unit_pattern(n, 11);
    t.c.tx_len = n;
    t.s.tx = unit_pattern(n + 1, 12); /* a different length and content the other way */
    t.s.tx_len = n + 1;
    t.c.rx_cap = t.s.rx_cap = n + 16;
    t.c.rx = xcalloc(1, t.c.rx_cap);
    t.s.rx = xcalloc(1, t.s.rx_cap);
    t.s.rx_per_event = 8192;
    pump(&t.c);
    pump(&t.s);
    /* The slow reader made the writer wait: not everything was taken at once. */
    assert_true(t.c.tx_off < n);
    assert_true(unit_run_until(t.loop, cond_both_eof, &t, 60000));
    assert_int_equal(t.c.err, 0);
    assert_int_equal(t.s.err, 0);
    /* close_notify after the last byte: each side read exactly what the other wrote, then EOF. */
    assert_int_equal(t.s.rx_len, n);
    assert_memory_equal(t.s.rx, t.c.tx, n);
    assert_int_equal(t.c.rx_len, n + 1);
    assert_memory_equal(t.c.rx, t.s.tx, n + 1);
    /* Writing after shutdown_write is refused. */
    assert_int_equal(stream_write(t.c.s, "x", 1), -EPIPE);
    tst_teardown(&t);
}

static bool
cond_server_has_all(void *arg)
{
    struct tst *t = arg;
    return t->s.rx_len == t->c.tx_len || t->s.err != 0;
}

/*
 * A reader that takes 1000 bytes per wake-up while the writer stays quiet: once
 * the socket is drained, the rest sits decrypted or read ahead inside OpenSSL,
 * which no socket event announces; the stream must wake its reader for it.
 */
static void
test_small_reads_drain_buffered(void **state)
{
    struct tst t;
    (void)state;

    tst_setup(&t, SERVER_ID, TLS_STREAM_ALPN_H2, TLS_STREAM_ALPN_H2, false);
    assert_true(unit_run_until(t.loop, cond_both_opened, &t, 5000));
    size_t n = 100000;
    t.c.tx = unit_pattern(n, 21);
    t.c.tx_len = n;
    t.c.keep_open = true;
    t.c.rx_cap = 16;
    t.c.rx = xcalloc(1, t.c.rx_cap);
    t.s.rx_cap = n + 16;
    t.s.rx = xcalloc(1, t.s.rx_cap);
    t.s.rx_per_event = 1000;
    pump(&t.c);
    pump(&t.s);
    assert_true(unit_run_until(t.loop, cond_server_has_all, &t, 5000));
    assert_int_equal(t.s.err, 0);
    assert_int_equal(t.s.rx_len, n);
    assert_memory_equal(t.s.rx, t.c.tx, n);
    assert_false(t.s.eof);
    tst_teardown(&t);
}

/* A client that offers no ALPN: a server requiring h2 fails its handshake. */
static void
test_alpn_required(void **state)
{
    struct tst t;
    (void)state;

    tst_setup(&t, SERVER_ID, 0, TLS_STREAM_ALPN_H2, true);
    assert_true(unit_run_until(t.loop, cond_both_opened, &t, 5000));
    assert_int_equal(stream_opened(t.s.s), -MESH_ETLS);
    assert_int_equal(t.s.err, -MESH_ETLS);
    char b[1];
    assert_int_equal(stream_read(t.s.s, b, sizeof(b)), -MESH_ETLS);
    assert_int_equal(stream_write(t.s.s, "x", 1), -MESH_ETLS);
    /* The client finished its side without ALPN (it did not require it). */
    assert_int_equal(stream_opened(t.c.s), 1);
    assert_false(tls_alpn_is_h2(tls_stream_ssl(t.c.s)));
    tst_teardown(&t);
}

/* The server is not who the client expects: both handshakes fail. */
static void
test_wrong_identity(void **state)
{
    struct tst t;
    (void)state;

    tst_setup(&t, WRONG_ID, TLS_STREAM_ALPN_H2, TLS_STREAM_ALPN_H2, false);
    assert_true(unit_run_until(t.loop, cond_both_opened, &t, 5000));
    assert_int_equal(stream_opened(t.c.s), -MESH_ETLS);
    assert_non_null(t.cchk.why);
    assert_false(t.cchk.have_peer);
    assert_true(stream_opened(t.s.s) < 0);
    tst_teardown(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_both_ways),
        cmocka_unit_test(test_small_reads_drain_buffered),
        cmocka_unit_test(test_alpn_required),
        cmocka_unit_test(test_wrong_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
