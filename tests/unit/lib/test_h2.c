/*
 * test_h2.c - HTTP/2 CONNECT sessions, client and server in one loop over a
 * socketpair (cleartext: ssl = NULL): the request and its headers, responses,
 * data and END_STREAM both ways, flow control through pipes, the 100-stream
 * client cap. Lifecycles (close, GOAWAY, back-pressure) are in test_h2_life.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "unit_h2.h"
#include "unit_loop.h"

static void
test_connect_headers_and_data(void **state)
{
    struct h2t t;
    static const struct h2_header hdrs[] = {
        {"baggage", "k8s.namespace.name=default,k8s.pod.name=client"},
        {"forwarded", "for=198.18.0.1"},
        {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    };
    struct h2t_rd r;
    (void)state;

    h2t_setup(&t);
    assert_true(h2_session_can_open(t.cli));
    struct cst *c = h2t_open(&t, "198.18.0.10:8080", hdrs, 3);
    assert_non_null(c);
    assert_int_equal(h2_session_n_streams(t.cli), 1);
    assert_true(h2_stream_id(c->st) > 0 && (h2_stream_id(c->st) & 1) == 1);

    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    assert_int_equal(t.n_sreq, 1);
    struct h2_stream *s = t.sreq[0];
    assert_string_equal(h2_stream_method(s), "CONNECT");
    assert_string_equal(h2_stream_authority(s), "198.18.0.10:8080");
    assert_string_equal(h2_stream_header(s, "baggage"), hdrs[0].value);
    assert_string_equal(h2_stream_header(s, "forwarded"), hdrs[1].value);
    assert_string_equal(h2_stream_header(s, "traceparent"), hdrs[2].value);
    assert_null(h2_stream_header(s, "x-unknown"));
    assert_false(h2_stream_has_path(s));
    assert_int_equal(h2_stream_id(s), h2_stream_id(c->st));
    assert_int_equal(c->calls, 1);
    assert_int_equal(c->status, 200);

    struct stream *cs = h2_stream_as_stream(c->st), *ss = h2_stream_as_stream(s);
    char b[8];
    assert_int_equal(stream_read(ss, b, sizeof(b)), -EAGAIN);

    /* Client -> server. */
    assert_int_equal(stream_write(cs, "ping", 4), 4);
    memset(&r, 0, sizeof(r));
    r.s = ss;
    r.want = 4;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_memory_equal(r.buf, "ping", 4);

    /* Server -> client. */
    assert_int_equal(stream_write(ss, "pong!", 5), 5);
    memset(&r, 0, sizeof(r));
    r.s = cs;
    r.want = 5;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_memory_equal(r.buf, "pong!", 5);

    /* END_STREAM client -> server: the server reads EOF and can still send. */
    assert_int_equal(stream_shutdown_write(cs), 0);
    assert_true(stream_write(cs, "x", 1) < 0);
    memset(&r, 0, sizeof(r));
    r.s = ss;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_int_equal(r.last, 0);
    assert_int_equal(stream_write(ss, "late", 4), 4);
    memset(&r, 0, sizeof(r));
    r.s = cs;
    r.want = 4;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_memory_equal(r.buf, "late", 4);

    /* END_STREAM server -> client. */
    assert_int_equal(stream_shutdown_write(ss), 0);
    memset(&r, 0, sizeof(r));
    r.s = cs;
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_int_equal(r.last, 0);

    /* Both ends finished: HTTP/2 closes the stream on both sides. */
    assert_true(unit_run_until(t.loop, h2t_cond_no_streams, &t, 2000));
    assert_true(t.streams_calls[0] >= 1);
    assert_true(t.streams_calls[1] >= 1);
    assert_int_equal(stream_read(cs, b, sizeof(b)), 0); /* a clean end stays clean */
    stream_close(cs, false);
    stream_close(ss, false);
    c->st = NULL;
    t.sreq[0] = NULL;
    assert_int_equal(c->calls, 1);

    /* The session is still usable for another stream. */
    assert_true(h2_session_can_open(t.cli));
    assert_non_null(h2t_open(&t, "198.18.0.10:8081", NULL, 0));
    t.want_sreq = 2;
    assert_true(unit_run_until(t.loop, h2t_cond_n_requests, &t, 2000));
    assert_int_equal(t.n_sreq, 2);
    assert_string_equal(h2_stream_authority(t.sreq[1]), "198.18.0.10:8081");
    assert_null(h2_stream_header(t.sreq[1], "baggage"));
    assert_int_equal(t.closed_calls[0] + t.closed_calls[1], 0);
    h2t_teardown(&t);
}

/* The HBONE data path: app <-> pipe <-> client stream == server stream <-> pipe <-> app. */
struct big {
    struct h2t *t;
    struct unit_peer pa, pb;
    int pipe_done;
    struct pipe_result res;
};

static void
on_cli_pipe_done(void *arg, const struct pipe_result *res)
{
    struct big *g = arg;
    g->pipe_done++;
    g->res = *res;
}

static bool
cond_big_done(void *arg)
{
    struct big *g = arg;
    unit_peer_pump(&g->pa);
    unit_peer_pump(&g->pb);
    return g->pa.eof && g->pb.eof && g->pipe_done && g->t->pipe_done[1];
}

static void
test_big_transfer_through_pipes(void **state)
{
    struct h2t t;
    struct big g;
    int fa[2], fb[2];
    /* More than the 4 MiB stream window: the reader's consumption must reopen it. */
    const size_t na = 5 * 1024 * 1024 + 11, nb = 1024 * 1024 + 5;
    uint8_t *da = unit_pattern(na, 7), *db = unit_pattern(nb, 8);
    (void)state;

    h2t_setup(&t);
    memset(&g, 0, sizeof(g));
    g.t = &t;
    unit_socketpair(fa);
    unit_socketpair(fb);
    t.pipe_server = true;
    t.app_b_inner = fb[1];
    g.pa = (struct unit_peer){.fd = fa[0],
                              .tx = da,
                              .tx_len = na,
                              .shut_when_sent = true,
                              .reading = true,
                              .rx = malloc(nb),
                              .rx_cap = nb};
    g.pb = (struct unit_peer){.fd = fb[0],
                              .tx = db,
                              .tx_len = nb,
                              .shut_when_sent = true,
                              .reading = true,
                              .rx = malloc(na),
                              .rx_cap = na};
    struct cst *c = h2t_open(&t, "198.18.0.10:9000", NULL, 0);
    assert_non_null(c);
    /* The pipe owns the client stream from here. */
    pipe_start(t.loop, tcp_stream_new(t.loop, fa[1]), h2_stream_as_stream(c->st), PIPE_BUF_DEFAULT,
               on_cli_pipe_done, &g);
    c->owned = true;
    assert_true(unit_run_until(t.loop, cond_big_done, &g, 4500));
    t.sreq[0] = NULL; /* owned and closed by the server pipe */
    assert_int_equal(c->calls, 1);
    assert_int_equal(c->status, 200);
    assert_int_equal(g.res.err, 0);
    assert_int_equal(t.pipe_res[1].err, 0);
    assert_int_equal(g.res.a_to_b, na);
    assert_int_equal(g.res.b_to_a, nb);
    assert_int_equal(t.pipe_res[1].a_to_b, na);
    assert_int_equal(t.pipe_res[1].b_to_a, nb);
    assert_int_equal(g.pb.rx_len, na);
    assert_int_equal(g.pa.rx_len, nb);
    assert_memory_equal(g.pb.rx, da, na);
    assert_memory_equal(g.pa.rx, db, nb);
    assert_true(unit_run_until(t.loop, h2t_cond_no_streams, &t, 1000));
    close(fa[0]);
    close(fb[0]);
    free(g.pa.rx);
    free(g.pb.rx);
    free(da);
    free(db);
    h2t_teardown(&t);
}

static void
test_error_status_reaches_client(void **state)
{
    struct h2t t;
    struct h2t_rd r;
    (void)state;

    h2t_setup(&t);
    t.respond_status = 503;
    t.respond_end = true;
    struct cst *c = h2t_open(&t, "198.18.0.10:80", NULL, 0);
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    assert_int_equal(c->status, 503);
    assert_int_equal(c->calls, 1);
    /* The answer ended the stream: the client reads EOF (no data). */
    memset(&r, 0, sizeof(r));
    r.s = h2_stream_as_stream(c->st);
    assert_true(unit_run_until(t.loop, h2t_cond_read, &r, 2000));
    assert_int_equal(r.len, 0);
    assert_true(r.last <= 0 && r.last != -EAGAIN);
    stream_close(h2_stream_as_stream(c->st), false);
    c->st = NULL;
    stream_close(h2_stream_as_stream(t.sreq[0]), false);
    t.sreq[0] = NULL;
    assert_true(unit_run_until(t.loop, h2t_cond_no_streams, &t, 2000));
    unit_run_for(t.loop, 5);
    assert_int_equal(c->calls, 1);
    h2t_teardown(&t);
}

struct many {
    struct h2t *t;
    int target;
    unsigned max_cli_open;
};

static void
open_while_allowed(struct many *m)
{
    struct h2t *t = m->t;
    char auth[32];

    while (t->n_cst < m->target && h2_session_can_open(t->cli)) {
        snprintf(auth, sizeof(auth), "198.18.1.%d:%d", t->n_cst % 250, 1000 + t->n_cst);
        assert_non_null(h2t_open(t, auth, NULL, 0));
        if (h2_session_n_streams(t->cli) > m->max_cli_open)
            m->max_cli_open = h2_session_n_streams(t->cli);
    }
}

static bool
cond_all_answered(void *arg)
{
    struct many *m = arg;
    int answered = 0;
    for (int i = 0; i < m->t->n_cst; i++)
        answered += m->t->cst[i].calls;
    return answered == m->target;
}

static bool
cond_n_answered(void *arg)
{
    struct many *m = arg;
    int answered = 0;
    for (int i = 0; i < m->t->n_cst; i++)
        answered += m->t->cst[i].calls;
    return answered == m->t->n_cst && m->t->n_sreq == m->t->n_cst;
}

static void
test_many_streams_respect_cap(void **state)
{
    struct h2t t;
    struct many m = {.t = &t, .target = 150};
    (void)state;

    h2t_setup(&t);
    open_while_allowed(&m);
    assert_int_equal(t.n_cst, H2_CLIENT_MAX_STREAMS);
    assert_false(h2_session_can_open(t.cli));
    assert_true(unit_run_until(t.loop, cond_n_answered, &m, 3000));
    assert_int_equal(t.n_sreq, H2_CLIENT_MAX_STREAMS);
    assert_false(h2_session_can_open(t.cli));

    /* Finish 50 streams both ways; their slots free up. */
    for (int i = 0; i < 50; i++) {
        stream_shutdown_write(h2_stream_as_stream(t.cst[i].st));
        stream_shutdown_write(h2_stream_as_stream(t.sreq[i]));
    }
    for (int i = 0; i < 50; i++) {
        stream_close(h2_stream_as_stream(t.cst[i].st), false);
        t.cst[i].st = NULL;
        stream_close(h2_stream_as_stream(t.sreq[i]), false);
        t.sreq[i] = NULL;
    }
    assert_true(unit_run_until(t.loop, (unit_cond_fn *)h2_session_can_open, t.cli, 2000));
    open_while_allowed(&m);
    assert_int_equal(t.n_cst, 150);
    assert_true(unit_run_until(t.loop, cond_all_answered, &m, 3000));
    assert_int_equal(t.n_sreq, 150);
    assert_true(m.max_cli_open <= H2_CLIENT_MAX_STREAMS);
    assert_true(t.max_srv_open <= H2_CLIENT_MAX_STREAMS);
    assert_int_equal(h2_session_n_streams(t.cli), H2_CLIENT_MAX_STREAMS);
    /* Every request arrived once, each with its own authority. */
    for (int i = 0; i < 150; i++) {
        char auth[32];
        snprintf(auth, sizeof(auth), "198.18.1.%d:%d", i % 250, 1000 + i);
        assert_string_equal(t.sreq_auth[i], auth);
        assert_int_equal(t.cst[i].calls, 1);
        assert_int_equal(t.cst[i].status, 200);
    }
    h2t_teardown(&t);
}

static void
test_too_many_headers_refused(void **state)
{
    struct h2t t;
    static const struct h2_header hdrs[7] = {
        {"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}, {"f", "6"}, {"g", "7"},
    };
    (void)state;

    h2t_setup(&t);
    assert_null(h2_session_connect(t.cli, "198.18.0.1:1", hdrs, 7, h2t_on_response, NULL));
    assert_int_equal(h2_session_n_streams(t.cli), 0);
    assert_non_null(h2t_open(&t, "198.18.0.1:1", hdrs, 6));
    assert_true(unit_run_until(t.loop, h2t_cond_first_response, &t, 2000));
    h2t_teardown(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_headers_and_data),
        cmocka_unit_test(test_big_transfer_through_pipes),
        cmocka_unit_test(test_error_status_reaches_client),
        cmocka_unit_test(test_many_streams_respect_cap),
        cmocka_unit_test(test_too_many_headers_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
