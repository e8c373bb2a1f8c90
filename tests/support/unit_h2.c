/*
 * unit_h2.c - see unit_h2.h.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conn/tcp_stream.h"
#include "unit_h2.h"
#include "unit_loop.h"

static int
on_ready_cli(void *arg, struct h2_session *s)
{
    struct h2t *t = arg;
    assert_ptr_equal(s, t->cli);
    t->ready_calls[0]++;
    return 0;
}

static int
on_ready_srv(void *arg, struct h2_session *s)
{
    struct h2t *t = arg;
    assert_ptr_equal(s, t->srv);
    t->ready_calls[1]++;
    return 0;
}

static void
on_srv_pipe_done(void *arg, const struct pipe_result *res)
{
    struct h2t *t = arg;
    t->pipe_done[1]++;
    t->pipe_res[1] = *res;
}

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct h2t *t = arg;

    assert_ptr_equal(s, t->srv);
    assert_ptr_equal(h2_stream_session(st), s);
    assert_true(t->n_sreq < H2T_MAX_ST);
    snprintf(t->sreq_auth[t->n_sreq], sizeof(t->sreq_auth[0]), "%s",
             h2_stream_authority(st) ? h2_stream_authority(st) : "");
    t->sreq[t->n_sreq++] = st;
    if (h2_session_n_streams(s) > t->max_srv_open)
        t->max_srv_open = h2_session_n_streams(s);
    if (t->respond_status == 0)
        return;
    assert_int_equal(h2_stream_respond(st, t->respond_status, NULL, 0, t->respond_end), 0);
    /* A second answer is refused. */
    assert_true(h2_stream_respond(st, 200, NULL, 0, false) < 0);
    if (t->pipe_server) {
        struct stream *app = tcp_stream_new(t->loop, t->app_b_inner);
        assert_non_null(app);
        t->srv_pipe = pipe_start(t->loop, h2_stream_as_stream(st), app, PIPE_BUF_DEFAULT,
                                 on_srv_pipe_done, t);
    }
}

static void
on_streams_cli(void *arg, struct h2_session *s)
{
    struct h2t *t = arg;
    (void)s;
    t->streams_calls[0]++;
}

static void
on_streams_srv(void *arg, struct h2_session *s)
{
    struct h2t *t = arg;
    (void)s;
    t->streams_calls[1]++;
}

static void
on_closed_cli(void *arg, struct h2_session *s, int err)
{
    struct h2t *t = arg;
    assert_ptr_equal(s, t->cli);
    t->closed_calls[0]++;
    t->closed_err[0] = err;
}

static void
on_closed_srv(void *arg, struct h2_session *s, int err)
{
    struct h2t *t = arg;
    assert_ptr_equal(s, t->srv);
    t->closed_calls[1]++;
    t->closed_err[1] = err;
}

static const struct h2_session_cbs cli_cbs = {
    .on_ready = on_ready_cli,
    .on_streams = on_streams_cli,
    .on_closed = on_closed_cli,
};

static const struct h2_session_cbs srv_cbs = {
    .on_ready = on_ready_srv,
    .on_request = on_request,
    .on_streams = on_streams_srv,
    .on_closed = on_closed_srv,
};

void
h2t_on_response(void *arg, struct h2_stream *st, int status)
{
    struct cst *c = arg;
    assert_ptr_equal(st, c->st);
    c->calls++;
    c->status = status;
}

void
h2t_setup(struct h2t *t)
{
    int fds[2];

    memset(t, 0, sizeof(*t));
    t->respond_status = 200;
    t->loop = loop_new();
    unit_socketpair(fds);
    t->cli = h2_session_new(t->loop, tcp_stream_new(t->loop, fds[0]), false, &cli_cbs, t);
    t->srv = h2_session_new(t->loop, tcp_stream_new(t->loop, fds[1]), true, &srv_cbs, t);
    assert_non_null(t->cli);
    assert_non_null(t->srv);
    assert_true(h2_session_is_ready(t->cli));
    assert_true(h2_session_is_ready(t->srv));
    assert_non_null(h2_session_transport(t->cli));
}

/* Closes what is left, releases both sessions and checks each closed exactly once. */
void
h2t_teardown(struct h2t *t)
{
    for (int i = 0; i < t->n_cst; i++)
        if (t->cst[i].st != NULL && !t->cst[i].owned)
            stream_close(h2_stream_as_stream(t->cst[i].st), true);
    for (int i = 0; i < t->n_sreq; i++)
        if (t->sreq[i] != NULL)
            stream_close(h2_stream_as_stream(t->sreq[i]), true);
    h2_session_close(t->cli, 0);
    h2_session_close(t->srv, 0);
    unit_run_for(t->loop, 2);
    assert_int_equal(t->closed_calls[0], 1);
    assert_int_equal(t->closed_calls[1], 1);
    h2_session_release(t->cli);
    h2_session_release(t->srv);
    unit_run_for(t->loop, 2);
    loop_free(t->loop);
}

struct cst *
h2t_open(struct h2t *t, const char *authority, const struct h2_header *hdrs, size_t n)
{
    struct cst *c = &t->cst[t->n_cst];

    assert_true(t->n_cst < H2T_MAX_ST);
    c->t = t;
    c->st = h2_session_connect(t->cli, authority, hdrs, n, h2t_on_response, c);
    if (c->st == NULL)
        return NULL;
    t->n_cst++;
    return c;
}

bool
h2t_cond_n_requests(void *arg)
{
    struct h2t *t = arg;
    return t->n_sreq >= t->want_sreq;
}

bool
h2t_cond_first_response(void *arg)
{
    struct h2t *t = arg;
    return t->n_cst > 0 && t->cst[0].calls > 0;
}

/* Reads whatever |s| has into |buf| (appending at |*len|); returns the last read result. */
static ssize_t
read_some(struct stream *s, char *buf, size_t cap, size_t *len)
{
    ssize_t n;
    do {
        n = stream_read(s, buf + *len, cap - *len);
        if (n > 0)
            *len += (size_t)n;
    } while (n > 0 && *len < cap);
    return n;
}

bool
h2t_cond_read(void *arg)
{
    struct h2t_rd *r = arg;
    r->last = read_some(r->s, r->buf, sizeof(r->buf), &r->len);
    return r->len >= r->want && (r->want > 0 || r->last != -EAGAIN);
}

bool
h2t_cond_no_streams(void *arg)
{
    struct h2t *t = arg;
    return h2_session_n_streams(t->cli) == 0 && h2_session_n_streams(t->srv) == 0;
}
