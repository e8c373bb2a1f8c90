/*
 * test_rpc.c - gRPC calls (lib/rpc) between a client and a server h2_session
 * in one loop (tests/support/unit_rpc.c), cleartext or mutual TLS: unary and
 * bidirectional streaming, messages split over frames and packed into one,
 * 8 MiB messages through flow control, error statuses, trailers-only
 * refusals, caps, cancellation, closed sessions, frees from callbacks.
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
#include "rpc/rpc.h"
#include "unit_loop.h"
#include "unit_rpc.h"

static struct ca *ca;

/* A unary call: one message each way, status OK; the session stays usable. */
static void
do_unary(struct rpct *t, const char *text)
{
    struct rpct_rec r;

    rpct_cli_start(t, &r, "/test.Echo/Unary", 0);
    assert_int_equal(rpc_call_send(r.c, text, strlen(text)), 0);
    rpc_call_close_send(r.c);
    assert_int_equal(rpc_call_send(r.c, "late", 4), -EPIPE);
    assert_true(unit_run_until(t->loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_true(r.null_message);
    assert_int_equal(r.n_msgs, 1);
    assert_int_equal(r.len, strlen(text));
    assert_memory_equal(r.data, text, r.len);

    struct rpct_rec *s = &t->srv_calls[t->n_srv - 1];
    assert_int_equal(s->ends, 1);
    assert_int_equal(s->status, GRPC_STATUS_OK); /* the client half-closed */
    assert_string_equal(rpc_call_header(s->c, "authorization"), "Bearer test-token");
    assert_string_equal(rpc_call_header(s->c, "clusterid"), "Kubernetes");
    assert_string_equal(rpc_call_header(s->c, "te"), "trailers");
    assert_string_equal(rpc_call_header(s->c, "content-type"), "application/grpc");
    assert_null(rpc_call_header(s->c, "x-absent"));
    assert_ptr_equal(rpc_call_session(s->c), t->srv);
    rpct_rec_cleanup(&r);
}

/* ---- tests -------------------------------------------------------------- */

static void
test_unary_cleartext(void **state)
{
    struct rpct t;
    (void)state;

    rpct_setup(&t, NULL);
    do_unary(&t, "hello");
    do_unary(&t, ""); /* an empty message is a message */
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    assert_int_equal(t.closed[0] + t.closed[1], 0);
    rpct_teardown(&t);
}

static void
test_unary_tls(void **state)
{
    struct rpct t;
    (void)state;

    rpct_setup(&t, ca);
    assert_true(t.schk.have_peer);
    do_unary(&t, "certificate please");
    do_unary(&t, "again");
    rpct_teardown(&t);
}

static bool
cond_srv_100_msgs(void *arg)
{
    struct rpct_rec *r = arg;
    return r->n_msgs >= 100;
}

/*
 * Many messages both ways: a burst of small ones (several per DATA frame),
 * then large ones (each over many DATA frames), echoed as they arrive.
 */
static void
check_bidi(bool use_tls)
{
    struct rpct t;
    struct rpct_rec r;
    uint8_t *sent = malloc(4u << 20);
    size_t sent_len = 0, lens[MAX_MSGS];
    int n = 0;

    assert_non_null(sent);
    rpct_setup(&t, use_tls ? ca : NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Bidi", 0);
    for (int i = 0; i < 100; i++, n++) {
        size_t len = (size_t)(i % 17) * 3 + 1;
        uint8_t *p = unit_pattern(len, (uint32_t)i);
        assert_int_equal(rpc_call_send(r.c, p, len), 0);
        memcpy(sent + sent_len, p, len);
        sent_len += len;
        lens[n] = len;
        free(p);
    }
    assert_true(unit_run_until(t.loop, rpct_cond_srv_msg, &t, 2000));
    assert_true(unit_run_until(t.loop, cond_srv_100_msgs, &t.srv_calls[0], 2000));
    for (int i = 0; i < 20; i++, n++) {
        size_t len = 40000 + (size_t)i * 5003; /* up to ~135 KiB: 3..9 DATA frames each */
        uint8_t *p = unit_pattern(len, (uint32_t)(1000 + i));
        assert_int_equal(rpc_call_send(r.c, p, len), 0);
        memcpy(sent + sent_len, p, len);
        sent_len += len;
        lens[n] = len;
        free(p);
    }
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 5000));
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.n_msgs, n);
    assert_int_equal(r.len, sent_len);
    assert_memory_equal(r.lens, lens, sizeof(size_t) * (size_t)n);
    assert_memory_equal(r.data, sent, sent_len);
    struct rpct_rec *s = &t.srv_calls[0];
    assert_int_equal(s->n_msgs, n);
    assert_memory_equal(s->lens, lens, sizeof(size_t) * (size_t)n);
    assert_memory_equal(s->data, sent, sent_len);
    assert_int_equal(s->ends, 1);
    assert_int_equal(s->status, GRPC_STATUS_OK);
    rpct_rec_cleanup(&r);
    free(sent);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    rpct_teardown(&t);
}

static void
test_bidi_streaming(void **state)
{
    (void)state;
    check_bidi(false);
}

static void
test_bidi_streaming_tls(void **state)
{
    (void)state;
    check_bidi(true);
}

/* 8 MiB each way: twice the stream window, so both readers must reopen it. */
static void
test_large_message_flow_control(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    const size_t len = 8u << 20;
    uint8_t *p = unit_pattern(len, 4242);
    (void)state;

    rpct_setup(&t, NULL);
    t.srv_max_msg = 16u << 20;
    rpct_cli_start(&t, &r, "/test.Echo/Bidi", 16u << 20);
    assert_int_equal(rpc_call_send(r.c, p, len), 0);
    /* The stream buffer took what it holds; the rest waits in the call's queue. */
    assert_true(rpc_call_queued(r.c) > len - (256u << 10));
    assert_true(rpc_call_queued(r.c) < len);
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 15000));
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.n_msgs, 1);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.data, p, len);
    assert_int_equal(r.drained, 1);
    assert_int_equal(t.srv_calls[0].drained, 1);
    assert_int_equal(rpc_call_queued(r.c), 0);
    rpct_rec_cleanup(&r);
    free(p);
    rpct_teardown(&t);
}

static void
test_error_status_and_message(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Fail", 0);
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.message, FAIL_TEXT); /* percent-encoded on the wire, decoded here */
    assert_int_equal(r.n_msgs, 0);
    rpct_rec_cleanup(&r);

    /* Finishing without a message: a trailers-only OK. */
    rpct_cli_start(&t, &r, "/test.Echo/Empty", 0);
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.n_msgs, 0);
    rpct_rec_cleanup(&r);

    /* An unknown method. */
    rpct_cli_start(&t, &r, "/test.Echo/Nope", 0);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, RPC_STATUS_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown method");
    rpct_rec_cleanup(&r);
    rpct_teardown(&t);
}

static void
test_trailers_only_refusal(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Refuse", 0);
    /* The client streams a body the server never reads: the reset after the answer stops it. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(rpc_call_send(r.c, "0123456789", 10), 0);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(t.n_refused, 1);
    assert_int_equal(r.status, GRPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(r.message, "no token");
    assert_int_equal(r.n_msgs, 0);
    rpct_rec_cleanup(&r);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    do_unary(&t, "still fine");
    rpct_teardown(&t);
}

static void
test_oversize_message(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    uint8_t *p = unit_pattern(2000, 5);
    (void)state;

    rpct_setup(&t, NULL);
    /* Client cap: the echo is too big for the client, which resets; the server sees a cancel. */
    rpct_cli_start(&t, &r, "/test.Echo/Bidi", 1024);
    assert_int_equal(rpc_call_send(r.c, p, 1024), 0);
    assert_int_equal(rpc_call_send(r.c, p, 2000), 0);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, RPC_STATUS_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.message, "larger than max"));
    assert_int_equal(r.n_msgs, 1); /* the one at the cap went through */
    assert_true(unit_run_until(t.loop, rpct_cond_srv_ended, &t, 3000));
    assert_int_equal(t.srv_calls[0].status, RPC_STATUS_CANCELLED);
    assert_int_equal(rpc_call_send(t.srv_calls[0].c, "x", 1), -EPIPE);
    rpct_rec_cleanup(&r);

    /* Server cap: the client gets RESOURCE_EXHAUSTED in the trailers. */
    rpct_cli_start(&t, &r, "/test.Echo/Small", 0);
    assert_int_equal(rpc_call_send(r.c, p, 2000), 0);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, RPC_STATUS_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.message, "larger than max (1024 bytes)"));
    assert_int_equal(t.srv_calls[1].ends, 1);
    assert_int_equal(t.srv_calls[1].status, RPC_STATUS_RESOURCE_EXHAUSTED);
    rpct_rec_cleanup(&r);

    /* The session survives both. */
    do_unary(&t, "after");
    assert_int_equal(t.closed[0] + t.closed[1], 0);
    free(p);
    rpct_teardown(&t);
}

/*
 * The send queue is capped, and the cap is checked before a byte of the
 * message is read: so the test can offer lengths larger than its buffer
 * instead of allocating 256 MiB.
 */
static void
test_send_queue_cap(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    uint8_t *p = unit_pattern(1u << 20, 3);
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Hang",
                   SIZE_MAX); /* a receive cap past the limit is clamped */
    /* The stream buffer takes the first 256 KiB; the rest waits in the queue. */
    assert_int_equal(rpc_call_send(r.c, p, 1u << 20), 0);
    size_t queued = rpc_call_queued(r.c);
    assert_true(queued > 0 && queued < (1u << 20));
    size_t room = RPC_SEND_MAX - queued - GRPC_PREFIX_LEN;
    assert_int_equal(rpc_call_send(r.c, p, room + 1), -MESH_ELIMIT);
    assert_int_equal(rpc_call_send(r.c, p, SIZE_MAX), -MESH_ELIMIT);
    assert_int_equal(rpc_call_queued(r.c), queued);
    assert_int_equal(rpc_call_send(r.c, p, 100), 0); /* a smaller one still fits */
    assert_int_equal(rpc_call_queued(r.c), queued + GRPC_PREFIX_LEN + 100);
    rpct_rec_cleanup(&r);
    free(p);
    rpct_teardown(&t);
}

static void
test_client_cancel(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Hang", 0);
    assert_int_equal(rpc_call_send(r.c, "wait", 4), 0);
    assert_true(unit_run_until(t.loop, rpct_cond_srv_msg, &t, 3000));
    rpc_call_free(r.c); /* cancels: RST_STREAM(CANCEL) */
    r.c = NULL;
    assert_true(unit_run_until(t.loop, rpct_cond_srv_ended, &t, 3000));
    assert_int_equal(t.srv_calls[0].status, RPC_STATUS_CANCELLED);
    assert_int_equal(r.ends, 0); /* nothing after free */
    rpct_rec_cleanup(&r);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    do_unary(&t, "next");
    rpct_teardown(&t);
}

static void
test_session_closed_mid_call(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, ca);
    rpct_cli_start(&t, &r, "/test.Echo/Hang", 0);
    assert_int_equal(rpc_call_send(r.c, "wait", 4), 0);
    assert_true(unit_run_until(t.loop, rpct_cond_srv_msg, &t, 3000));
    h2_session_close(t.cli, -ECONNRESET);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_true(unit_run_until(t.loop, rpct_cond_srv_ended, &t, 3000));
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    assert_int_equal(t.srv_calls[0].status, GRPC_STATUS_UNAVAILABLE);
    unit_run_for(t.loop, 5);
    assert_int_equal(r.ends, 1);
    assert_int_equal(t.srv_calls[0].ends, 1);
    /* A dead session takes no new calls. */
    assert_null(rpc_call_start(t.cli, "/test.Echo/Unary", "x", NULL, 0, 0, &rpct_cli_cbs, &r));
    rpct_rec_cleanup(&r);
    rpct_teardown(&t);
}

/* The owner frees from inside callbacks; a finished server call still delivers what it queued. */
static void
test_free_from_callbacks(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Burst", 0);
    r.free_on_end = true;
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 5000));
    assert_null(r.c);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.message, "done");
    assert_int_equal(r.n_msgs, 40);
    assert_int_equal(r.len, 40u * 64 * 1024);
    assert_null(t.srv_calls[0].c); /* freed by the server in on_end, before the output drained */
    rpct_rec_cleanup(&r);

    /* A server that frees its call inside on_message: the client sees a reset. */
    t.srv_free_on_message = true;
    rpct_cli_start(&t, &r, "/test.Echo/Hang", 0);
    assert_int_equal(rpc_call_send(r.c, "a", 1), 0);
    assert_int_equal(rpc_call_send(r.c, "b", 1), 0); /* same DATA frame: not delivered */
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(t.srv_calls[1].n_msgs, 1); /* nothing delivered after the free */
    assert_int_equal(t.srv_calls[1].ends, 0);
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    rpct_rec_cleanup(&r);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 2000));
    rpct_teardown(&t);
}

static bool
cond_got_msg(void *arg)
{
    struct rpct_rec *r = arg;
    return r->n_msgs > 0;
}

/*
 * A server that finished and left while its output still drains: input that
 * arrives meanwhile is dropped, and a client that goes away ends the drain
 * (nothing leaks, nothing is called back).
 */
static void
test_server_drain_after_free(void **state)
{
    struct rpct t;
    struct rpct_rec r;
    (void)state;

    rpct_setup(&t, NULL);
    rpct_cli_start(&t, &r, "/test.Echo/Drain", 0);
    assert_int_equal(rpc_call_send(r.c, "go", 2), 0);
    assert_true(unit_run_until(t.loop, cond_got_msg, &r, 3000));
    assert_null(t.srv_calls[0].c); /* freed while sending */
    for (int i = 0; i < 5; i++)
        assert_int_equal(rpc_call_send(r.c, "ignored", 7), 0);
    rpc_call_close_send(r.c);
    assert_true(unit_run_until(t.loop, rpct_cond_ended, &r, 3000));
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.message, "done");
    assert_int_equal(r.n_msgs, 100);
    assert_int_equal(t.srv_calls[0].n_msgs, 1); /* nothing delivered after the free */
    assert_int_equal(t.srv_calls[0].ends, 0);
    rpct_rec_cleanup(&r);

    /* The client cancels mid-drain: the server's call goes without a word. */
    rpct_cli_start(&t, &r, "/test.Echo/Drain", 0);
    assert_int_equal(rpc_call_send(r.c, "go", 2), 0);
    assert_true(unit_run_until(t.loop, cond_got_msg, &r, 3000));
    assert_true(r.n_msgs < 100);
    rpct_rec_cleanup(&r);
    assert_true(unit_run_until(t.loop, rpct_cond_no_streams, &t, 3000));
    assert_int_equal(t.srv_calls[1].ends, 0);
    rpct_teardown(&t);
}

static int
group_setup(void **state)
{
    (void)state;
    ca = ca_generate("rpc unit root", 86400);
    return ca != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    ca_free(ca);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_cleartext),
        cmocka_unit_test(test_unary_tls),
        cmocka_unit_test(test_bidi_streaming),
        cmocka_unit_test(test_bidi_streaming_tls),
        cmocka_unit_test(test_large_message_flow_control),
        cmocka_unit_test(test_error_status_and_message),
        cmocka_unit_test(test_trailers_only_refusal),
        cmocka_unit_test(test_oversize_message),
        cmocka_unit_test(test_send_queue_cap),
        cmocka_unit_test(test_client_cancel),
        cmocka_unit_test(test_session_closed_mid_call),
        cmocka_unit_test(test_free_from_callbacks),
        cmocka_unit_test(test_server_drain_after_free),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
