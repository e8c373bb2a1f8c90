/*
 * unit_rpc.c - see unit_rpc.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "tls/tls_stream.h"
#include "unit_certs.h"
#include "unit_loop.h"
#include "unit_rpc.h"

static void
rpct_rec_add(struct rpct_rec *r, const uint8_t *msg, size_t len)
{
    assert_true(r->n_msgs < MAX_MSGS);
    r->lens[r->n_msgs++] = len;
    if (r->cap - r->len < len) {
        size_t ncap = r->cap ? r->cap : 4096;
        while (ncap - r->len < len)
            ncap *= 2;
        r->data = realloc(r->data, ncap);
        assert_non_null(r->data);
        r->cap = ncap;
    }
    if (len > 0)
        memcpy(r->data + r->len, msg, len);
    r->len += len;
}

static void
rpct_rec_end(struct rpct_rec *r, int status, const char *message)
{
    r->ends++;
    r->status = status;
    r->null_message = message == NULL;
    snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
}

/* |n| x 64 KiB, more than the stream buffer holds, then finish and leave at once. */
static void
burst_and_leave(struct rpct_rec *r, struct rpc_call *c, int n)
{
    uint8_t *p = unit_pattern(64 * 1024, 99);

    for (int i = 0; i < n; i++)
        assert_int_equal(rpc_call_send(c, p, 64 * 1024), 0);
    free(p);
    assert_true(rpc_call_queued(c) > 0);
    rpc_call_finish(c, GRPC_STATUS_OK, "done");
    rpc_call_free(c);
    r->c = NULL;
}

/* Server side: a tiny Echo service whose methods pick a behaviour. */
static int
srv_on_message(void *arg, struct rpc_call *c, const uint8_t *msg, size_t len)
{
    struct rpct_rec *r = arg;

    assert_ptr_equal(c, r->c);
    rpct_rec_add(r, msg, len);
    if (r->free_on_message) {
        rpc_call_free(c);
        r->c = NULL;
        return 0;
    }
    if (r->mode == M_BIDI)
        assert_int_equal(rpc_call_send(c, msg, len), 0);
    if (r->mode == M_DRAIN && r->n_msgs == 1)
        burst_and_leave(r, c, 100); /* past the 4 MiB stream window */
    return 0;
}

static void
srv_on_end(void *arg, struct rpc_call *c, int status, const char *message)
{
    struct rpct_rec *r = arg;

    assert_ptr_equal(c, r->c);
    rpct_rec_end(r, status, message);
    if (status != GRPC_STATUS_OK)
        return;
    switch (r->mode) {
    case M_UNARY:
        assert_int_equal(r->n_msgs, 1);
        assert_int_equal(rpc_call_send(c, r->data, r->len), 0);
        rpc_call_finish(c, GRPC_STATUS_OK, NULL);
        assert_int_equal(rpc_call_send(c, "late", 4), -EPIPE);
        break;
    case M_BIDI:
    case M_EMPTY:
    case M_SMALL:
        rpc_call_finish(c, GRPC_STATUS_OK, NULL);
        break;
    case M_FAIL:
        rpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, FAIL_TEXT);
        break;
    case M_BURST:
        burst_and_leave(r, c, 40);
        break;
    case M_HANG:
    case M_DRAIN:
        break;
    }
}

static void
srv_on_drained(void *arg, struct rpc_call *c)
{
    struct rpct_rec *r = arg;
    assert_ptr_equal(c, r->c);
    r->drained++;
}

static const struct rpc_call_cbs srv_cbs = {
    .on_message = srv_on_message,
    .on_end = srv_on_end,
    .on_drained = srv_on_drained,
};

static const struct {
    const char *path;
    enum mode mode;
} methods[] = {
    {"/test.Echo/Unary", M_UNARY}, {"/test.Echo/Bidi", M_BIDI},   {"/test.Echo/Fail", M_FAIL},
    {"/test.Echo/Empty", M_EMPTY}, {"/test.Echo/Hang", M_HANG},   {"/test.Echo/Burst", M_BURST},
    {"/test.Echo/Small", M_SMALL}, {"/test.Echo/Drain", M_DRAIN},
};

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct rpct *t = arg;
    const char *path = h2_stream_path(st);
    (void)s;

    if (t->raw) {
        t->raw_st = st;
        return;
    }
    assert_true(rpc_is_grpc(st));
    assert_non_null(path);
    if (strcmp(path, "/test.Echo/Refuse") == 0) {
        t->n_refused++;
        rpc_refuse(st, GRPC_STATUS_UNAUTHENTICATED, "no token");
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(methods); i++) {
        if (strcmp(path, methods[i].path) != 0)
            continue;
        assert_true(t->n_srv < MAX_CALLS);
        struct rpct_rec *r = &t->srv_calls[t->n_srv++];
        r->t = t;
        r->mode = methods[i].mode;
        r->free_on_message = t->srv_free_on_message;
        r->c = rpc_call_accept(st, r->mode == M_SMALL ? 1024 : t->srv_max_msg, &srv_cbs, r);
        assert_non_null(r->c);
        assert_string_equal(rpc_call_path(r->c), path);
        return;
    }
    rpc_refuse(st, RPC_STATUS_UNIMPLEMENTED, "unknown method");
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct rpct *t = arg;
    (void)err;
    t->closed[s == t->cli ? 0 : 1]++;
}

const struct h2_session_cbs rpct_sess_cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

static bool
cond_ready(void *arg)
{
    struct rpct *t = arg;
    return h2_session_is_ready(t->cli) && h2_session_is_ready(t->srv);
}

void
rpct_setup(struct rpct *t, const struct ca *ca)
{
    int fds[2];
    SSL *cs = NULL, *ss = NULL;

    memset(t, 0, sizeof(*t));
    t->loop = loop_new();
    unit_socketpair(fds);
    if (ca != NULL) {
        struct tls_creds *cc = unit_creds_simple(ca, RPCT_TD, "istio-system", "ztunnel");
        struct tls_creds *sc = unit_creds_simple(ca, RPCT_TD, "istio-system", "meshd");
        t->schk.trust_domain = RPCT_TD;
        t->expected[0] = RPCT_SERVER_ID;
        t->cchk.expected = t->expected;
        t->cchk.n_expected = 1;
        cs = tls_new_client(cc, &t->cchk);
        ss = tls_new_server(sc, &t->schk);
        assert_non_null(cs);
        assert_non_null(ss);
        tls_creds_unref(cc);
        tls_creds_unref(sc);
    }
    struct stream *cx = tcp_stream_new(t->loop, fds[0]), *sx = tcp_stream_new(t->loop, fds[1]);
    if (ca != NULL) {
        cx = tls_stream_new(t->loop, cx, cs, false, TLS_STREAM_ALPN_H2);
        sx = tls_stream_new(t->loop, sx, ss, true, TLS_STREAM_ALPN_H2);
    }
    t->cli = h2_session_new(t->loop, cx, false, &rpct_sess_cbs, t);
    t->srv = h2_session_new(t->loop, sx, true, &rpct_sess_cbs, t);
    assert_true(unit_run_until(t->loop, cond_ready, t, 3000));
    if (ca != NULL)
        assert_non_null(tls_stream_ssl(h2_session_transport(t->cli)));
}

void
rpct_rec_cleanup(struct rpct_rec *r)
{
    rpc_call_free(r->c);
    r->c = NULL;
    free(r->data);
    memset(r, 0, sizeof(*r));
}

void
rpct_teardown(struct rpct *t)
{
    for (int i = 0; i < t->n_srv; i++)
        rpct_rec_cleanup(&t->srv_calls[i]);
    h2_session_close(t->cli, 0);
    h2_session_close(t->srv, 0);
    unit_run_for(t->loop, 2);
    assert_int_equal(t->closed[0], 1);
    assert_int_equal(t->closed[1], 1);
    h2_session_release(t->cli);
    h2_session_release(t->srv);
    unit_run_for(t->loop, 2);
    loop_free(t->loop);
}

/* Client side recording. */
static int
cli_on_message(void *arg, struct rpc_call *c, const uint8_t *msg, size_t len)
{
    struct rpct_rec *r = arg;
    assert_ptr_equal(c, r->c);
    rpct_rec_add(r, msg, len);
    return 0;
}

static void
cli_on_end(void *arg, struct rpc_call *c, int status, const char *message)
{
    struct rpct_rec *r = arg;
    assert_ptr_equal(c, r->c);
    rpct_rec_end(r, status, message);
    /* No session once the stream is gone; nothing more may be sent. */
    assert_null(rpc_call_session(c));
    assert_int_equal(rpc_call_send(c, "x", 1), -EPIPE);
    if (r->free_on_end) {
        rpc_call_free(c);
        r->c = NULL;
    }
}

static void
cli_on_drained(void *arg, struct rpc_call *c)
{
    struct rpct_rec *r = arg;
    assert_ptr_equal(c, r->c);
    r->drained++;
}

const struct rpc_call_cbs rpct_cli_cbs = {
    .on_message = cli_on_message,
    .on_end = cli_on_end,
    .on_drained = cli_on_drained,
};

void
rpct_cli_start(struct rpct *t, struct rpct_rec *r, const char *path, size_t max_msg)
{
    static const struct h2_header md[] = {
        {"authorization", "Bearer test-token"},
        {"clusterid", "Kubernetes"},
    };

    memset(r, 0, sizeof(*r));
    r->t = t;
    r->c = rpc_call_start(t->cli, path, "meshd.istio-system.svc:15012", md, ARRAY_LEN(md), max_msg,
                          &rpct_cli_cbs, r);
    assert_non_null(r->c);
    assert_ptr_equal(rpc_call_session(r->c), t->cli);
}

bool
rpct_cond_ended(void *arg)
{
    struct rpct_rec *r = arg;
    return r->ends > 0;
}

bool
rpct_cond_srv_msg(void *arg)
{
    struct rpct *t = arg;
    return t->n_srv > 0 && t->srv_calls[t->n_srv - 1].n_msgs > 0;
}

bool
rpct_cond_srv_ended(void *arg)
{
    struct rpct *t = arg;
    return t->n_srv > 0 && t->srv_calls[t->n_srv - 1].ends > 0;
}

bool
rpct_cond_no_streams(void *arg)
{
    struct rpct *t = arg;
    return h2_session_n_streams(t->cli) == 0 && h2_session_n_streams(t->srv) == 0;
}
