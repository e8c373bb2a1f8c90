/*
 * test_rpc_wire.c - what lib/rpc stands on and who it talks to: the h2
 * request API (bodies, END_STREAM as EOF, response headers, trailers after a
 * body or alone), and python3-h2 as an independent gRPC peer on both sides
 * (tests/support/rpc_peer.py), which also checks the bytes on the wire.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "rpc/rpc.h"
#include "unit_loop.h"
#include "unit_rpc.h"

/* ---- the h2 API underneath ---------------------------------------------- */

struct raw {
    struct rpct *t;
    int status;
    int calls;
    char body[64];
    size_t body_len;
    ssize_t last;
};

static void
raw_on_response(void *arg, struct h2_stream *st, int status)
{
    struct raw *w = arg;
    (void)st;
    w->status = status;
    w->calls++;
}

static bool
cond_raw_request(void *arg)
{
    struct rpct *t = arg;
    return t->raw_st != NULL;
}

static bool
cond_raw_response(void *arg)
{
    struct raw *w = arg;
    return w->calls > 0;
}

struct rd {
    struct stream *s;
    char buf[64];
    size_t len;
    ssize_t last;
};

static bool
cond_read_eof(void *arg)
{
    struct rd *r = arg;
    do {
        r->last = stream_read(r->s, r->buf + r->len, sizeof(r->buf) - r->len);
        if (r->last > 0)
            r->len += (size_t)r->last;
    } while (r->last > 0);
    return r->last != -EAGAIN;
}

static void
test_h2_request_and_trailers(void **state)
{
    struct rpct t;
    struct raw w;
    struct rd rd;
    static const struct h2_header req[] = {{"x-req", "1"}, {"content-type", "text/plain"}};
    static const struct h2_header resp[] = {{"content-type", "text/plain"}, {"x-a", "yes"}};
    static const struct h2_header trl[] = {{"x-t", "done"}, {"x-u", "2"}};
    (void)state;

    rpct_setup(&t, NULL);
    t.raw = true;
    memset(&w, 0, sizeof(w));
    assert_null(h2_session_request(t.srv, "POST", "/x", "x", NULL, 0, raw_on_response, &w));
    struct h2_stream *cs =
        h2_session_request(t.cli, "POST", "/raw/path", "example.test", req, 2, raw_on_response, &w);
    assert_non_null(cs);
    struct stream *cx = h2_stream_as_stream(cs);
    assert_int_equal(stream_write(cx, "body", 4), 4);
    assert_int_equal(stream_shutdown_write(cx), 0);
    assert_true(unit_run_until(t.loop, cond_raw_request, &t, 2000));
    struct h2_stream *ss = t.raw_st;
    assert_string_equal(h2_stream_method(ss), "POST");
    assert_string_equal(h2_stream_path(ss), "/raw/path");
    assert_string_equal(h2_stream_authority(ss), "example.test");
    assert_true(h2_stream_has_path(ss));
    assert_string_equal(h2_stream_header(ss, "x-req"), "1");
    assert_string_equal(h2_stream_header(ss, "content-type"), "text/plain");
    assert_null(h2_stream_header(ss, "baggage"));
    assert_false(rpc_is_grpc(ss));
    /* Every field in order, pseudo-headers aside; |max| bounds what is stored, not the count. */
    struct h2_header all[4];
    assert_int_equal(h2_stream_headers(ss, all, 4), 2);
    assert_string_equal(all[0].name, "x-req");
    assert_string_equal(all[0].value, "1");
    assert_string_equal(all[1].name, "content-type");
    assert_int_equal(h2_stream_headers(ss, all, 1), 2);
    assert_int_equal(h2_stream_headers(ss, NULL, 0), 2);
    assert_int_equal(h2_stream_error(ss), 0);

    /* The request body, then EOF from the client's END_STREAM. */
    memset(&rd, 0, sizeof(rd));
    rd.s = h2_stream_as_stream(ss);
    assert_true(unit_run_until(t.loop, cond_read_eof, &rd, 2000));
    assert_int_equal(rd.last, 0);
    assert_int_equal(rd.len, 4);
    assert_memory_equal(rd.buf, "body", 4);

    /* Trailers need a response with a body first, and at least one field. */
    assert_int_equal(h2_stream_send_trailers(ss, trl, 2), -EPIPE);
    assert_int_equal(h2_stream_respond(ss, 200, resp, 2, false), 0);
    assert_int_equal(h2_stream_send_trailers(ss, trl, 0), -EINVAL);
    assert_int_equal(h2_stream_send_trailers(ss, trl, H2_MAX_TRAILERS + 1), -EINVAL);
    assert_int_equal(stream_write(rd.s, "reply", 5), 5);
    assert_int_equal(h2_stream_send_trailers(ss, trl, 2), 0);
    assert_int_equal(h2_stream_send_trailers(ss, trl, 2), -EPIPE);
    assert_true(stream_write(rd.s, "more", 4) < 0);

    assert_true(unit_run_until(t.loop, cond_raw_response, &w, 2000));
    assert_int_equal(w.status, 200);
    assert_string_equal(h2_stream_header(cs, "x-a"), "yes");
    assert_string_equal(h2_stream_header(cs, "content-type"), "text/plain");
    assert_null(h2_stream_header(cs, "x-t"));
    memset(&rd, 0, sizeof(rd));
    rd.s = cx;
    assert_true(unit_run_until(t.loop, cond_read_eof, &rd, 2000));
    assert_int_equal(rd.last, 0);
    assert_int_equal(rd.len, 5);
    assert_memory_equal(rd.buf, "reply", 5);
    assert_string_equal(h2_stream_trailer(cs, "x-t"), "done");
    assert_string_equal(h2_stream_trailer(cs, "x-u"), "2");
    assert_null(h2_stream_trailer(cs, "x-a"));
    assert_int_equal(h2_stream_headers(cs, all, 4), 2);
    assert_string_equal(all[1].name, "x-a");
    assert_string_equal(all[1].value, "yes");
    assert_int_equal(h2_stream_trailers(cs, all, 4), 2);
    assert_string_equal(all[0].name, "x-t");
    assert_string_equal(all[0].value, "done");
    assert_string_equal(all[1].name, "x-u");
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    assert_int_equal(h2_stream_error(cs), 0); /* both ends finished: a clean close */
    stream_close(cx, false);
    stream_close(h2_stream_as_stream(ss), false);

    /* Trailers right after the headers, with no body at all. */
    t.raw_st = NULL;
    memset(&w, 0, sizeof(w));
    assert_null(h2_session_request(t.cli, "GET", "/empty", NULL, NULL, 0, raw_on_response, &w));
    cs = h2_session_request(t.cli, "GET", "/empty", "x", NULL, 0, raw_on_response, &w);
    assert_non_null(cs);
    assert_int_equal(stream_shutdown_write(h2_stream_as_stream(cs)), 0);
    assert_true(unit_run_until(t.loop, cond_raw_request, &t, 2000));
    assert_int_equal(h2_stream_respond(t.raw_st, 200, NULL, 0, false), 0);
    assert_int_equal(h2_stream_send_trailers(t.raw_st, trl, 1), 0);
    assert_true(unit_run_until(t.loop, cond_raw_response, &w, 2000));
    memset(&rd, 0, sizeof(rd));
    rd.s = h2_stream_as_stream(cs);
    assert_true(unit_run_until(t.loop, cond_read_eof, &rd, 2000));
    assert_int_equal(rd.last, 0);
    assert_int_equal(rd.len, 0);
    assert_string_equal(h2_stream_trailer(cs, "x-t"), "done");
    stream_close(h2_stream_as_stream(cs), false);
    stream_close(h2_stream_as_stream(t.raw_st), false);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    rpct_teardown(&t);
}

/* ---- python3-h2 as the peer --------------------------------------------- */

struct child {
    pid_t pid;
    int status;
    bool exited;
};

static pid_t
spawn_peer(const char *mode, int fd)
{
    char fdarg[16];
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        fcntl(fd, F_SETFD, 0); /* keep it across exec */
        snprintf(fdarg, sizeof(fdarg), "%d", fd);
        execl("/usr/bin/python3", "python3", MESH_SOURCE_DIR "/tests/support/rpc_peer.py", mode,
              fdarg, (char *)NULL);
        _exit(127);
    }
    close(fd);
    return pid;
}

static bool
cond_child(void *arg)
{
    struct child *ch = arg;
    if (!ch->exited && waitpid(ch->pid, &ch->status, WNOHANG) == ch->pid)
        ch->exited = true;
    return ch->exited;
}

static void
child_check(struct child *ch, struct loop *l)
{
    if (!unit_run_until(l, cond_child, ch, 20000)) {
        kill(ch->pid, SIGKILL);
        waitpid(ch->pid, &ch->status, 0);
        fail_msg("rpc_peer.py did not finish");
    }
    assert_true(WIFEXITED(ch->status));
    if (WEXITSTATUS(ch->status) == 77)
        skip(); /* no python3-h2 here */
    assert_int_equal(WEXITSTATUS(ch->status), 0);
}

/* rpc_peer.py as a gRPC client calls our server: unary, error status, refusal, streaming. */
static void
test_python_client(void **state)
{
    struct rpct t;
    struct child ch;
    int fds[2];
    (void)state;

    memset(&t, 0, sizeof(t));
    t.loop = loop_new();
    unit_socketpair(fds);
    t.srv = h2_session_new(t.loop, tcp_stream_new(t.loop, fds[1]), true, &rpct_sess_cbs, &t);
    memset(&ch, 0, sizeof(ch));
    ch.pid = spawn_peer("client", fds[0]);
    child_check(&ch, t.loop);
    assert_int_equal(t.n_refused, 1);
    for (int i = 0; i < t.n_srv; i++)
        rpct_rec_cleanup(&t.srv_calls[i]);
    h2_session_close(t.srv, 0);
    unit_run_for(t.loop, 2);
    h2_session_release(t.srv);
    unit_run_for(t.loop, 2);
    loop_free(t.loop);
}

static bool
cond_py_calls_done(void *arg)
{
    struct rpct_rec *r = arg; /* three client calls in a row */
    return r[0].ends > 0 && r[1].ends > 0 && r[2].ends > 0;
}

/* rpc_peer.py as a gRPC server answers our client: trailers after data, trailers-only. */
static void
test_python_server(void **state)
{
    struct rpct t;
    struct child ch;
    struct rpct_rec r[3];
    int fds[2];
    (void)state;

    memset(&t, 0, sizeof(t));
    t.loop = loop_new();
    unit_socketpair(fds);
    t.cli = h2_session_new(t.loop, tcp_stream_new(t.loop, fds[0]), false, &rpct_sess_cbs, &t);
    memset(&ch, 0, sizeof(ch));
    ch.pid = spawn_peer("server", fds[1]);
    unit_run_for(t.loop, 1);
    rpct_cli_start(&t, &r[0], "/py.Echo/Unary", 0);
    assert_int_equal(rpc_call_send(r[0].c, "from C", 6), 0);
    assert_int_equal(rpc_call_send(r[0].c, "twice", 5), 0);
    rpc_call_close_send(r[0].c);
    rpct_cli_start(&t, &r[1], "/py.Echo/Deny", 0);
    rpc_call_close_send(r[1].c);
    rpct_cli_start(&t, &r[2], "/py.Echo/Split", 0);
    rpc_call_close_send(r[2].c);
    if (!unit_run_until(t.loop, cond_py_calls_done, r, 20000)) {
        cond_child(&ch);
        if (ch.exited && WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 77)
            skip();
        fail_msg("calls to rpc_peer.py did not end");
    }
    assert_int_equal(r[0].status, GRPC_STATUS_OK);
    assert_int_equal(r[0].n_msgs, 2);
    assert_memory_equal(r[0].data, "from Ctwice", 11);
    assert_string_equal(r[0].message, "echoed 2");
    assert_int_equal(r[1].status, GRPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(r[1].message, "denied \xc3\xbc 100%");
    assert_int_equal(r[1].n_msgs, 0);
    /* Three messages in one DATA frame, then one split over three frames. */
    assert_int_equal(r[2].status, GRPC_STATUS_OK);
    assert_int_equal(r[2].n_msgs, 4);
    assert_int_equal(r[2].lens[3], 50000);
    for (int i = 0; i < 3; i++)
        rpct_rec_cleanup(&r[i]);
    h2_session_shutdown(t.cli);
    child_check(&ch, t.loop);
    h2_session_close(t.cli, 0);
    unit_run_for(t.loop, 2);
    h2_session_release(t.cli);
    unit_run_for(t.loop, 2);
    loop_free(t.loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h2_request_and_trailers),
        cmocka_unit_test(test_python_client),
        cmocka_unit_test(test_python_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
