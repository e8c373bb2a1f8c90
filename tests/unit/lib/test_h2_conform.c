/*
 * test_h2_conform.c - RFC 9113 stream-identifier rules on a server h2_session,
 * driven by hand-built frames over a socketpair (cleartext), the way an HBONE
 * client or a gRPC client reaches it after TLS.
 *
 * Section 5.1.1: a client's new stream id must be odd and greater than every
 * id it used before; ids it skipped are closed for good. A HEADERS frame on an
 * id that breaks this is a connection error PROTOCOL_ERROR: GOAWAY carrying
 * that code, then the connection closes. nghttp2 ignores a HEADERS frame on an
 * id below the highest one when it has no record of the stream, so without the
 * check in h2_session.c the connection stayed up.
 *
 * The check must not turn legal traffic into errors: gaps in the ids are legal,
 * and frames on a stream we reset must be ignored (section 5.1, "closed").
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "unit_loop.h"

#define F_DATA           0
#define F_HEADERS        1
#define F_RST            3
#define F_SETTINGS       4
#define F_GOAWAY         7
#define F_CONTINUATION   9
#define FL_END_STREAM    0x1
#define FL_ACK           0x1
#define FL_END_HEADERS   0x4
#define E_NO_ERROR       0
#define E_PROTOCOL_ERROR 1
#define E_STREAM_CLOSED  5
#define E_CANCEL         8
#define MAX_REQ          16

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* A server session and the raw client end of its socket. */
struct rc {
    struct loop *loop;
    struct h2_session *srv;
    int peer;
    uint8_t rx[1 << 16];
    size_t rx_len;
    bool eof;
    int closed_calls;
    struct h2_stream *req[MAX_REQ];
    int32_t req_id[MAX_REQ];
    int n_req;
};

/* What the server sent, parsed. */
struct seen {
    int goaways;
    uint32_t goaway_code;
    uint32_t goaway_last;
    int headers; /* HEADERS frames (responses) */
    int rsts;
    uint32_t rst_code;
};

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct rc *r = arg;
    const char *m = h2_stream_method(st);
    (void)s;

    assert_true(r->n_req < MAX_REQ);
    r->req[r->n_req] = st;
    r->req_id[r->n_req++] = h2_stream_id(st);
    /* A tunnel stays open (200, no END_STREAM) as inbound.c leaves it. */
    bool tunnel = m != NULL && strcmp(m, "CONNECT") == 0;
    assert_int_equal(h2_stream_respond(st, tunnel ? 200 : 400, NULL, 0, !tunnel), 0);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct rc *r = arg;
    (void)s;
    (void)err;
    r->closed_calls++;
}

static const struct h2_session_cbs cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

static void
rc_pump(struct rc *r)
{
    for (;;) {
        ssize_t n = read(r->peer, r->rx + r->rx_len, sizeof(r->rx) - r->rx_len);
        if (n > 0) {
            r->rx_len += (size_t)n;
            assert_true(r->rx_len < sizeof(r->rx));
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            r->eof = true;
        return;
    }
}

static bool
cond_eof(void *arg)
{
    struct rc *r = arg;
    rc_pump(r);
    return r->eof && r->closed_calls > 0;
}

static void
rc_send(struct rc *r, const void *p, size_t n)
{
    assert_int_equal(write(r->peer, p, n), (ssize_t)n);
}

static void
rc_frame(struct rc *r, uint8_t type, uint8_t flags, uint32_t sid, const uint8_t *p, size_t n)
{
    uint8_t hd[9] = {
        (uint8_t)(n >> 16),          (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24 & 0x7f), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    rc_send(r, hd, sizeof(hd));
    if (n > 0)
        rc_send(r, p, n);
}

/* HPACK literal without indexing, name from the static table (index < 15). */
static size_t
lit_idx(uint8_t *p, uint8_t index, const char *value)
{
    size_t n = strlen(value);
    p[0] = index;
    p[1] = (uint8_t)n;
    memcpy(p + 2, value, n);
    return 2 + n;
}

/* HPACK literal without indexing, new name. */
static size_t
lit(uint8_t *p, const char *name, const char *value)
{
    size_t a = strlen(name), b = strlen(value);
    p[0] = 0;
    p[1] = (uint8_t)a;
    memcpy(p + 2, name, a);
    p[2 + a] = (uint8_t)b;
    memcpy(p + 3 + a, value, b);
    return 3 + a + b;
}

/* HEADERS opening a CONNECT tunnel on |sid|, with |extra| more "x-h: v" fields. */
static void
rc_connect(struct rc *r, uint32_t sid, unsigned extra)
{
    uint8_t b[4096];
    size_t n = lit_idx(b, 2, "CONNECT");
    n += lit_idx(b + n, 1, "198.18.0.10:8080");
    for (unsigned i = 0; i < extra; i++)
        n += lit(b + n, "x-h", "v");
    assert_true(n <= sizeof(b));
    rc_frame(r, F_HEADERS, FL_END_HEADERS, sid, b, n);
}

/* Trailers (a header block with END_STREAM) on |sid|. */
static void
rc_trailers(struct rc *r, uint32_t sid)
{
    uint8_t b[64];
    size_t n = lit(b, "x-t", "1");
    rc_frame(r, F_HEADERS, FL_END_HEADERS | FL_END_STREAM, sid, b, n);
}

static void
rc_setup(struct rc *r)
{
    int fds[2];

    memset(r, 0, sizeof(*r));
    r->loop = loop_new();
    unit_socketpair(fds);
    r->peer = fds[0];
    r->srv = h2_session_new(r->loop, tcp_stream_new(r->loop, fds[1]), true, &cbs, r);
    rc_send(r, preface, sizeof(preface) - 1);
    rc_frame(r, F_SETTINGS, 0, 0, NULL, 0);
    rc_frame(r, F_SETTINGS, FL_ACK, 0, NULL, 0);
    unit_run_for(r->loop, 5);
    rc_pump(r);
}

static void
rc_teardown(struct rc *r)
{
    for (int i = 0; i < r->n_req; i++)
        stream_close(h2_stream_as_stream(r->req[i]), true);
    h2_session_close(r->srv, 0);
    h2_session_release(r->srv);
    unit_run_for(r->loop, 2);
    close(r->peer);
    loop_free(r->loop);
}

static void
parse(const struct rc *r, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t off = 0; off + 9 <= r->rx_len;) {
        const uint8_t *h = r->rx + off;
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        const uint8_t *p = h + 9;
        if (off + 9 + len > r->rx_len)
            break;
        if (h[3] == F_GOAWAY && len >= 8) {
            s->goaways++;
            s->goaway_last =
                (uint32_t)(p[0] & 0x7f) << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            s->goaway_code =
                (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        } else if (h[3] == F_HEADERS) {
            s->headers++;
        } else if (h[3] == F_RST && len == 4) {
            s->rsts++;
            s->rst_code = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        off += 9 + len;
    }
}

/* Runs until the server closed; fails unless it sent GOAWAY PROTOCOL_ERROR first. */
static void
expect_protocol_error(struct rc *r, const char *what, uint32_t want_last)
{
    struct seen s;
    bool closed = unit_run_until(r->loop, cond_eof, r, 1000);

    parse(r, &s);
    if (!closed || s.goaways != 1 || s.goaway_code != E_PROTOCOL_ERROR ||
        s.goaway_last != want_last)
        fail_msg("%s: connection %s, %d GOAWAY (code %u, last stream %u); want one GOAWAY "
                 "PROTOCOL_ERROR (1), last stream %u, then close",
                 what, closed ? "closed" : "still open", s.goaways, s.goaway_code, s.goaway_last,
                 want_last);
}

/* Runs a while; fails if the server sent a GOAWAY or closed. */
static void
expect_alive(struct rc *r, const char *what)
{
    struct seen s;

    unit_run_for(r->loop, 30);
    rc_pump(r);
    parse(r, &s);
    if (r->eof || s.goaways != 0)
        fail_msg("%s: the server %s (GOAWAY code %u); want the connection kept", what,
                 r->eof ? "closed the connection" : "sent GOAWAY", s.goaway_code);
}

/* The case of the issue (h2spec http2/5.1.1/2): stream 5 opened, then HEADERS on 3. */
static void
test_lower_id_never_opened(void **state)
{
    struct rc r;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 5, 0);
    unit_run_for(r.loop, 10);
    rc_connect(&r, 3, 0);
    expect_protocol_error(&r, "HEADERS on 3 after 5", 5);
    assert_int_equal(r.n_req, 1);
    rc_teardown(&r);
}

/* Ids skipped in an earlier gap stay closed even after more streams were opened. */
static void
test_id_in_older_gap(void **state)
{
    struct rc r;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 1, 0);
    rc_connect(&r, 9, 0); /* skips 3, 5, 7 */
    rc_connect(&r, 11, 0);
    rc_connect(&r, 15, 0); /* skips 13 */
    unit_run_for(r.loop, 10);
    expect_alive(&r, "ids 1, 9, 11, 15");
    rc_connect(&r, 5, 0);
    expect_protocol_error(&r, "HEADERS on 5 after 1, 9, 11, 15", 15);
    assert_int_equal(r.n_req, 4);
    rc_teardown(&r);
}

/* Same frame, same id: a repeat of the opening HEADERS of a stream skipped in one read. */
static void
test_lower_id_same_read(void **state)
{
    struct rc r;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 7, 0);
    rc_connect(&r, 1, 0);
    expect_protocol_error(&r, "HEADERS on 1 right after 7", 7);
    rc_teardown(&r);
}

/* Section 5.1.1: a client's streams are odd. */
static void
test_even_id(void **state)
{
    struct rc r;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 1, 0);
    unit_run_for(r.loop, 10);
    rc_connect(&r, 4, 0);
    expect_protocol_error(&r, "HEADERS on even stream 4", 1);
    rc_teardown(&r);
}

/* Legal: increasing ids with gaps; every stream is answered and the connection stays. */
static void
test_increasing_ids_with_gaps(void **state)
{
    struct rc r;
    struct seen s;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 1, 0);
    rc_connect(&r, 3, 0);
    rc_connect(&r, 11, 0);
    rc_connect(&r, 13, 0);
    expect_alive(&r, "ids 1, 3, 11, 13");
    parse(&r, &s);
    assert_int_equal(r.n_req, 4);
    assert_int_equal(s.headers, 4);
    rc_teardown(&r);
}

/*
 * Section 5.1, closed: frames on a stream we reset must be ignored (the peer
 * may have sent them before our RST_STREAM arrived): trailers on it are not an
 * "unexpected stream identifier", and the connection carries on.
 */
static void
test_trailers_after_our_reset(void **state)
{
    struct rc r;
    struct seen s;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 1, 0);
    rc_connect(&r, 3, H2_MAX_HEADERS); /* over the field cap: we reset it */
    unit_run_for(r.loop, 10);
    rc_pump(&r);
    parse(&r, &s);
    assert_int_equal(s.rsts, 1);
    rc_trailers(&r, 3);
    rc_connect(&r, 5, 0);
    expect_alive(&r, "trailers on a stream we reset");
    parse(&r, &s);
    assert_int_equal(r.n_req, 2);
    assert_int_equal(r.req_id[1], 5);
    rc_teardown(&r);
}

/*
 * A client that cancels its stream and sends more on it breaks section 5.1
 * (STREAM_CLOSED), not the stream-id rule: the id was used.
 */
static void
test_headers_after_client_reset(void **state)
{
    static const uint8_t cancel[4] = {0, 0, 0, E_CANCEL};
    struct rc r;
    struct seen s;
    (void)state;

    rc_setup(&r);
    rc_connect(&r, 1, 0);
    unit_run_for(r.loop, 10);
    rc_frame(&r, F_RST, 0, 1, cancel, sizeof(cancel));
    unit_run_for(r.loop, 10);
    rc_trailers(&r, 1);
    unit_run_for(r.loop, 30);
    rc_pump(&r);
    parse(&r, &s);
    /* nghttp2 makes it a connection error, which section 5.4.1 allows for any stream error. */
    bool stream_closed = (s.goaways == 1 && s.goaway_code == E_STREAM_CLOSED) ||
                         (s.goaways == 0 && s.rsts == 1 && s.rst_code == E_STREAM_CLOSED);
    if (!stream_closed)
        fail_msg("HEADERS on a stream the client reset: %d GOAWAY (code %u), %d RST_STREAM "
                 "(code %u); RFC 9113 5.1 makes it STREAM_CLOSED",
                 s.goaways, s.goaway_code, s.rsts, s.rst_code);
    rc_teardown(&r);
}

/*
 * A header block split into many CONTINUATION frames (empty ones decode to
 * nothing, so no field cap sees them) must not be followed forever: nghttp2
 * (CVE-2024-28182, Debian 1.52.0-1+deb12u2 and later) fails the session and
 * we close the connection. It sends no GOAWAY first (RFC 9113 5.4.1 says
 * SHOULD): mem_recv returns the error without queueing one.
 */
static void
test_continuation_flood(void **state)
{
    struct rc r;
    struct seen s;
    uint8_t b[64];
    size_t n = lit_idx(b, 2, "CONNECT");
    (void)state;

    rc_setup(&r);
    rc_frame(&r, F_HEADERS, 0, 1, b, n);
    for (int i = 0; i < 64 && !r.eof; i++) {
        rc_frame(&r, F_CONTINUATION, 0, 1, NULL, 0);
        rc_pump(&r);
    }
    bool closed = unit_run_until(r.loop, cond_eof, &r, 1000);
    parse(&r, &s);
    if (!closed || (s.goaways > 0 && s.goaway_code == E_NO_ERROR))
        fail_msg("64 empty CONTINUATION frames: connection %s, %d GOAWAY (code %u); want it "
                 "closed as an error",
                 closed ? "closed" : "still open", s.goaways, s.goaway_code);
    assert_int_equal(r.n_req, 0);
    rc_teardown(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_id_never_opened),
        cmocka_unit_test(test_id_in_older_gap),
        cmocka_unit_test(test_lower_id_same_read),
        cmocka_unit_test(test_even_id),
        cmocka_unit_test(test_increasing_ids_with_gaps),
        cmocka_unit_test(test_trailers_after_our_reset),
        cmocka_unit_test(test_headers_after_client_reset),
        cmocka_unit_test(test_continuation_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
