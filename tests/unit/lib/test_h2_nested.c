/*
 * test_h2_nested.c - HTTP/2 over an HTTP/2 CONNECT stream, as a waypoint
 * runs it: an outer session (HBONE, cleartext or mTLS) carries a CONNECT
 * tunnel, and an inner session runs over that tunnel, either h2c or mTLS
 * inside the tunnel (double HBONE). Requests with bodies go through the
 * inner session to an echo handler and come back byte for byte.
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
#include "h2/h2.h"
#include "tls/ca.h"
#include "tls/tls.h"
#include "tls/tls_stream.h"
#include "unit_certs.h"
#include "unit_loop.h"

#define TD        "cluster.local"
#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"
#define WRONG_ID  "spiffe://cluster.local/ns/default/sa/nobody"
#define MAX_REQ   16
#define ECHO_BUF  (64 * 1024)

enum { OCLI, OSRV, ICLI, ISRV, N_SESS };

struct nest;

/* A request of the inner client: sends |body|, expects it echoed back. */
struct req {
    struct nest *n;
    struct h2_stream *st;
    const uint8_t *body;
    size_t len, off;
    bool shut;
    int status;
    uint8_t *rx;
    size_t rx_len, rx_cap;
    bool eof;
    int err;
};

/* The inner server's side of one request: reads the body and writes it back. */
struct echo {
    struct h2_stream *st;
    uint8_t buf[ECHO_BUF];
    size_t len, off;
    bool eof, shut;
    int err;
};

struct nest {
    struct loop *loop;
    bool tls_outer, tls_inner;
    const char *inner_expected[1];
    struct tls_creds *cc, *sc;
    struct tls_check ochk_c, ochk_s, ichk_c, ichk_s;
    struct h2_session *sess[N_SESS];
    int ready[N_SESS];
    int closed[N_SESS];
    int closed_err[N_SESS];
    struct h2_stream *tun_c, *tun_s; /* the outer CONNECT tunnel, both ends */
    int tun_status;
    struct req req[MAX_REQ];
    int n_req;
    struct echo *echo[MAX_REQ];
    int n_echo;
};

static int
sess_index(struct nest *n, struct h2_session *s)
{
    for (int i = 0; i < N_SESS; i++)
        if (n->sess[i] == s)
            return i;
    fail_msg("unknown session");
    return -1;
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct nest *n = arg;
    n->ready[sess_index(n, s)]++;
    return 0;
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct nest *n = arg;
    int i = sess_index(n, s);
    n->closed[i]++;
    n->closed_err[i] = err;
}

/* ---- inner server: echo ------------------------------------------------- */

static void
echo_pump(struct echo *e)
{
    struct stream *s = h2_stream_as_stream(e->st);

    for (;;) {
        while (e->off < e->len) {
            ssize_t w = stream_write(s, e->buf + e->off, e->len - e->off);
            if (w == -EAGAIN)
                break;
            if (w < 0) {
                e->err = (int)w;
                return;
            }
            e->off += (size_t)w;
        }
        if (e->off < e->len)
            break;
        e->off = e->len = 0;
        if (e->eof) {
            if (!e->shut) {
                assert_int_equal(stream_shutdown_write(s), 0);
                e->shut = true;
            }
            break;
        }
        ssize_t r = stream_read(s, e->buf, sizeof(e->buf));
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            e->err = (int)r;
            return;
        }
        if (r == 0)
            e->eof = true;
        e->len = (size_t)r;
    }
    stream_want(s, !e->eof && e->len == 0, e->off < e->len);
}

static void
on_echo_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    echo_pump(arg);
}

static void
on_inner_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct nest *n = arg;
    (void)s;

    assert_true(n->n_echo < MAX_REQ);
    assert_string_equal(h2_stream_method(st), "POST");
    assert_string_equal(h2_stream_path(st), "/echo");
    struct echo *e = xcalloc(1, sizeof(*e));
    e->st = st;
    n->echo[n->n_echo++] = e;
    assert_int_equal(h2_stream_respond(st, 200, NULL, 0, false), 0);
    stream_set_handler(h2_stream_as_stream(st), on_echo_event, e);
    echo_pump(e);
}

static const struct h2_session_cbs inner_srv_cbs = {
    .on_ready = on_ready,
    .on_request = on_inner_request,
    .on_closed = on_closed,
};

static const struct h2_session_cbs inner_cli_cbs = {
    .on_ready = on_ready,
    .on_closed = on_closed,
};

/* The inner session's transport over tunnel end |tun|: the stream itself, or TLS over it. */
static struct stream *
inner_transport(struct nest *n, struct h2_stream *tun, bool server)
{
    struct stream *x = h2_stream_as_stream(tun);
    if (!n->tls_inner)
        return x;
    SSL *ssl = server ? tls_new_server(n->sc, &n->ichk_s) : tls_new_client(n->cc, &n->ichk_c);
    assert_non_null(ssl);
    return tls_stream_new(n->loop, x, ssl, server, TLS_STREAM_ALPN_H2);
}

/* ---- outer sessions: one CONNECT tunnel --------------------------------- */

static void
on_outer_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct nest *n = arg;
    (void)s;

    assert_null(n->tun_s);
    assert_string_equal(h2_stream_method(st), "CONNECT");
    n->tun_s = st;
    assert_int_equal(h2_stream_respond(st, 200, NULL, 0, false), 0);
    n->sess[ISRV] = h2_session_new(n->loop, inner_transport(n, st, true), true, &inner_srv_cbs, n);
}

static void
on_tunnel(void *arg, struct h2_stream *st, int status)
{
    struct nest *n = arg;

    n->tun_status = status;
    if (status != 200) {
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    n->sess[ICLI] =
        h2_session_new(n->loop, inner_transport(n, st, false), false, &inner_cli_cbs, n);
}

static const struct h2_session_cbs outer_srv_cbs = {
    .on_ready = on_ready,
    .on_request = on_outer_request,
    .on_closed = on_closed,
};

static const struct h2_session_cbs outer_cli_cbs = {
    .on_ready = on_ready,
    .on_closed = on_closed,
};

/* ---- inner client requests ---------------------------------------------- */

static void
req_pump(struct req *q)
{
    struct stream *s = h2_stream_as_stream(q->st);

    while (q->off < q->len) {
        size_t chunk = q->len - q->off < 100000 ? q->len - q->off : 100000;
        ssize_t w = stream_write(s, q->body + q->off, chunk);
        if (w == -EAGAIN)
            break;
        if (w < 0) {
            q->err = (int)w;
            return;
        }
        q->off += (size_t)w;
    }
    if (q->off == q->len && !q->shut) {
        assert_int_equal(stream_shutdown_write(s), 0);
        q->shut = true;
    }
    while (!q->eof) {
        ssize_t r = stream_read(s, q->rx + q->rx_len, q->rx_cap - q->rx_len);
        if (r == -EAGAIN)
            break;
        if (r < 0) {
            q->err = (int)r;
            return;
        }
        if (r == 0)
            q->eof = true;
        q->rx_len += (size_t)r;
        assert_true(q->rx_len < q->rx_cap); /* never more than was sent */
    }
    stream_want(s, !q->eof, q->off < q->len);
}

static void
on_req_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    req_pump(arg);
}

static void
on_req_response(void *arg, struct h2_stream *st, int status)
{
    struct req *q = arg;
    (void)st;
    q->status = status;
}

static void
req_start(struct nest *n, size_t len, uint32_t seed)
{
    struct req *q = &n->req[n->n_req++];

    q->n = n;
    q->body = unit_pattern(len, seed);
    q->len = len;
    q->rx_cap = len + 1;
    q->rx = xcalloc(1, q->rx_cap);
    q->st = h2_session_request(n->sess[ICLI], "POST", "/echo", "inner.test", NULL, 0,
                               on_req_response, q);
    assert_non_null(q->st);
    stream_set_handler(h2_stream_as_stream(q->st), on_req_event, q);
    req_pump(q);
}

static bool
cond_reqs_done(void *arg)
{
    struct nest *n = arg;
    for (int i = 0; i < n->n_req; i++)
        if (!n->req[i].eof && n->req[i].err == 0)
            return false;
    return true;
}

static bool
cond_inner_ready(void *arg)
{
    struct nest *n = arg;
    return (n->ready[ICLI] == 1 && n->ready[ISRV] == 1) || n->closed[ICLI] || n->closed[ISRV];
}

static bool
cond_inner_closed(void *arg)
{
    struct nest *n = arg;
    return n->closed[ICLI] == 1 && n->closed[ISRV] == 1;
}

static bool
cond_outer_ready(void *arg)
{
    struct nest *n = arg;
    return n->ready[OCLI] == 1 && n->ready[OSRV] == 1;
}

/* ---- setup -------------------------------------------------------------- */

static struct stream *
outer_transport(struct nest *n, int fd, bool server)
{
    struct stream *x = tcp_stream_new(n->loop, fd);
    if (!n->tls_outer)
        return x;
    SSL *ssl = server ? tls_new_server(n->sc, &n->ochk_s) : tls_new_client(n->cc, &n->ochk_c);
    assert_non_null(ssl);
    return tls_stream_new(n->loop, x, ssl, server, TLS_STREAM_ALPN_H2);
}

static struct ca *
nest_setup(struct nest *n, bool tls_outer, bool tls_inner, const char *inner_expected)
{
    static const char *const outer_expected[] = {SERVER_ID};
    struct ca *ca = NULL;
    int fds[2];

    memset(n, 0, sizeof(*n));
    n->loop = loop_new();
    n->tls_outer = tls_outer;
    n->tls_inner = tls_inner;
    if (tls_outer || tls_inner) {
        ca = ca_generate("nested root", 3600);
        assert_non_null(ca);
        n->cc = unit_creds_simple(ca, TD, "default", "client");
        n->sc = unit_creds_simple(ca, TD, "default", "server");
        n->ochk_c.expected = outer_expected;
        n->ochk_c.n_expected = 1;
        n->ochk_s.trust_domain = TD;
        n->inner_expected[0] = inner_expected;
        n->ichk_c.expected = n->inner_expected;
        n->ichk_c.n_expected = 1;
        n->ichk_s.trust_domain = TD;
    }
    unit_socketpair(fds);
    n->sess[OCLI] =
        h2_session_new(n->loop, outer_transport(n, fds[0], false), false, &outer_cli_cbs, n);
    n->sess[OSRV] =
        h2_session_new(n->loop, outer_transport(n, fds[1], true), true, &outer_srv_cbs, n);
    assert_true(unit_run_until(n->loop, cond_outer_ready, n, 5000));
    n->tun_c = h2_session_connect(n->sess[OCLI], "198.18.0.9:15008", NULL, 0, on_tunnel, n);
    assert_non_null(n->tun_c);
    assert_true(unit_run_until(n->loop, cond_inner_ready, n, 5000));
    assert_int_equal(n->tun_status, 200);
    return ca;
}

static bool
cond_outer_closed(void *arg)
{
    struct nest *n = arg;
    return n->closed[OCLI] == 1 && n->closed[OSRV] == 1;
}

static void
nest_teardown(struct nest *n, struct ca *ca)
{
    for (int i = 0; i < n->n_req; i++) {
        stream_close(h2_stream_as_stream(n->req[i].st), false);
        free((void *)n->req[i].body);
        free(n->req[i].rx);
    }
    for (int i = 0; i < n->n_echo; i++) {
        stream_close(h2_stream_as_stream(n->echo[i]->st), false);
        free(n->echo[i]);
    }
    /* Graceful all the way: the inner sessions end first, then the tunnel's sessions. */
    if (n->sess[ICLI] != NULL)
        h2_session_shutdown(n->sess[ICLI]);
    assert_true(unit_run_until(n->loop, cond_inner_closed, n, 5000));
    h2_session_shutdown(n->sess[OCLI]);
    h2_session_shutdown(n->sess[OSRV]);
    assert_true(unit_run_until(n->loop, cond_outer_closed, n, 5000));
    for (int i = 0; i < N_SESS; i++) {
        assert_int_equal(n->closed[i], 1);
        h2_session_release(n->sess[i]);
    }
    unit_run_for(n->loop, 2);
    loop_free(n->loop);
    if (n->cc != NULL) {
        tls_creds_unref(n->cc);
        tls_creds_unref(n->sc);
    }
    if (ca != NULL)
        ca_free(ca);
}

static void
check_echoes(struct nest *n)
{
    for (int i = 0; i < n->n_req; i++) {
        struct req *q = &n->req[i];
        assert_int_equal(q->err, 0);
        assert_int_equal(q->status, 200);
        assert_true(q->eof);
        assert_int_equal(q->rx_len, q->len);
        assert_memory_equal(q->rx, q->body, q->len);
    }
    for (int i = 0; i < n->n_echo; i++)
        assert_int_equal(n->echo[i]->err, 0);
    assert_int_equal(n->n_echo, n->n_req);
}

/* ---- tests -------------------------------------------------------------- */

/* h2c inside an h2 CONNECT stream: a large body and small ones both ways, intact. */
static void
test_h2c_in_connect(void **state)
{
    struct nest n;
    (void)state;

    nest_setup(&n, false, false, NULL);
    assert_null(tls_stream_ssl(h2_session_transport(n.sess[ICLI])));
    /* 9 MiB: more than the stream windows (4 MiB) inside and outside: both flow controls work. */
    req_start(&n, 9u << 20, 1);
    for (int i = 0; i < 8; i++)
        req_start(&n, (size_t)1 << (i * 2), 100 + (uint32_t)i); /* 1 B .. 16 KiB */
    assert_true(unit_run_until(n.loop, cond_reqs_done, &n, 30000));
    check_echoes(&n);
    /* The tunnel's outer session never saw the inner requests: one stream each side. */
    assert_int_equal(h2_session_n_streams(n.sess[OCLI]), 1);
    assert_int_equal(h2_session_n_streams(n.sess[OSRV]), 1);
    nest_teardown(&n, NULL);
    for (int i = 0; i < N_SESS; i++)
        assert_int_equal(n.closed_err[i], 0);
}

/* mTLS inside an h2 CONNECT stream of an mTLS session (double HBONE). */
static void
test_tls_in_connect(void **state)
{
    struct nest n;
    (void)state;

    struct ca *ca = nest_setup(&n, true, true, SERVER_ID);
    assert_int_equal(n.ready[ICLI], 1);
    assert_int_equal(n.ready[ISRV], 1);
    SSL *ci = tls_stream_ssl(h2_session_transport(n.sess[ICLI]));
    SSL *si = tls_stream_ssl(h2_session_transport(n.sess[ISRV]));
    assert_non_null(ci);
    assert_non_null(si);
    assert_ptr_not_equal(ci, tls_stream_ssl(h2_session_transport(n.sess[OCLI])));
    assert_true(tls_alpn_is_h2(ci));
    /* Each end of the inner TLS verified the other's SPIFFE identity. */
    assert_true(n.ichk_c.have_peer);
    assert_string_equal(n.ichk_c.peer.uri, SERVER_ID);
    assert_true(n.ichk_s.have_peer);
    assert_string_equal(n.ichk_s.peer.uri, CLIENT_ID);
    req_start(&n, 5u << 20, 7);
    for (int i = 0; i < 4; i++)
        req_start(&n, 3000 + (size_t)i * 20000, 200 + (uint32_t)i);
    assert_true(unit_run_until(n.loop, cond_reqs_done, &n, 30000));
    check_echoes(&n);
    nest_teardown(&n, ca);
    for (int i = 0; i < N_SESS; i++)
        assert_int_equal(n.closed_err[i], 0);
}

/* The inner peer fails verification: only the inner session ends; the tunnel's session lives on. */
static void
test_inner_tls_refused(void **state)
{
    struct nest n;
    (void)state;

    struct ca *ca = nest_setup(&n, true, true, WRONG_ID);
    assert_true(unit_run_until(n.loop, cond_inner_closed, &n, 5000));
    assert_int_equal(n.ready[ICLI], 0);
    assert_int_equal(n.closed_err[ICLI], -MESH_ETLS);
    assert_true(n.closed_err[ISRV] < 0);
    assert_non_null(n.ichk_c.why);
    assert_true(h2_session_is_ready(n.sess[OCLI]));
    assert_true(h2_session_is_ready(n.sess[OSRV]));
    /* The outer session still opens tunnels. */
    assert_true(h2_session_can_open(n.sess[OCLI]));
    nest_teardown(&n, ca);
    assert_int_equal(n.closed_err[OCLI], 0);
    assert_int_equal(n.closed_err[OSRV], 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2c_in_connect),
        cmocka_unit_test(test_tls_in_connect),
        cmocka_unit_test(test_inner_tls_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
