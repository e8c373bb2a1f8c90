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
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "h2/h2.h"
#include "unit_h2raw.h"
#include "unit_loop.h"

#define MAX_FRAMES 256

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
parse(const struct h2raw *r, struct seen *s)
{
    struct h2raw_frame f[MAX_FRAMES];
    size_t n = h2raw_frames(r, f, MAX_FRAMES);

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        if (f[i].type == H2F_GOAWAY && f[i].len >= 8) {
            s->goaways++;
            s->goaway_last = f[i].last_sid;
            s->goaway_code = f[i].code;
        } else if (f[i].type == H2F_HEADERS) {
            s->headers++;
        } else if (f[i].type == H2F_RST && f[i].len == 4) {
            s->rsts++;
            s->rst_code = f[i].code;
        }
    }
}

/* Trailers (a header block with END_STREAM) on |sid|. */
static void
rc_trailers(struct h2raw *r, uint32_t sid)
{
    uint8_t b[64];
    size_t n = h2raw_lit(b, "x-t", "1");
    h2raw_frame(r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, sid, b, n);
}

/* Runs until the server closed; fails unless it sent GOAWAY PROTOCOL_ERROR first. */
static void
expect_protocol_error(struct h2raw *r, const char *what, uint32_t want_last)
{
    struct seen s;
    bool closed = h2raw_wait_closed(r, 1000);

    parse(r, &s);
    if (!closed || s.goaways != 1 || s.goaway_code != H2E_PROTOCOL_ERROR ||
        s.goaway_last != want_last)
        fail_msg("%s: connection %s, %d GOAWAY (code %u, last stream %u); want one GOAWAY "
                 "PROTOCOL_ERROR (1), last stream %u, then close",
                 what, closed ? "closed" : "still open", s.goaways, s.goaway_code, s.goaway_last,
                 want_last);
}

/* Runs a while; fails if the server sent a GOAWAY or closed. */
static void
expect_alive(struct h2raw *r, const char *what)
{
    struct seen s;

    h2raw_run(r, 30);
    parse(r, &s);
    if (r->eof || s.goaways != 0)
        fail_msg("%s: the server %s (GOAWAY code %u); want the connection kept", what,
                 r->eof ? "closed the connection" : "sent GOAWAY", s.goaway_code);
}

/* The case of the issue (h2spec http2/5.1.1/2): stream 5 opened, then HEADERS on 3. */
static void
test_lower_id_never_opened(void **state)
{
    struct h2raw r;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 5, 0);
    h2raw_run(&r, 10);
    h2raw_connect(&r, 3, 0);
    expect_protocol_error(&r, "HEADERS on 3 after 5", 5);
    assert_int_equal(r.n_req, 1);
    h2raw_teardown(&r);
}

/* Ids skipped in an earlier gap stay closed even after more streams were opened. */
static void
test_id_in_older_gap(void **state)
{
    struct h2raw r;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_connect(&r, 9, 0); /* skips 3, 5, 7 */
    h2raw_connect(&r, 11, 0);
    h2raw_connect(&r, 15, 0); /* skips 13 */
    h2raw_run(&r, 10);
    expect_alive(&r, "ids 1, 9, 11, 15");
    h2raw_connect(&r, 5, 0);
    expect_protocol_error(&r, "HEADERS on 5 after 1, 9, 11, 15", 15);
    assert_int_equal(r.n_req, 4);
    h2raw_teardown(&r);
}

/* Same frame, same id: a repeat of the opening HEADERS of a stream skipped in one read. */
static void
test_lower_id_same_read(void **state)
{
    struct h2raw r;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 7, 0);
    h2raw_connect(&r, 1, 0);
    expect_protocol_error(&r, "HEADERS on 1 right after 7", 7);
    h2raw_teardown(&r);
}

/* Section 5.1.1: a client's streams are odd. */
static void
test_even_id(void **state)
{
    struct h2raw r;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 10);
    h2raw_connect(&r, 4, 0);
    expect_protocol_error(&r, "HEADERS on even stream 4", 1);
    h2raw_teardown(&r);
}

/* Legal: increasing ids with gaps; every stream is answered and the connection stays. */
static void
test_increasing_ids_with_gaps(void **state)
{
    struct h2raw r;
    struct seen s;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_connect(&r, 3, 0);
    h2raw_connect(&r, 11, 0);
    h2raw_connect(&r, 13, 0);
    expect_alive(&r, "ids 1, 3, 11, 13");
    parse(&r, &s);
    assert_int_equal(r.n_req, 4);
    assert_int_equal(s.headers, 4);
    h2raw_teardown(&r);
}

/*
 * Section 5.1, closed: frames on a stream we reset must be ignored (the peer
 * may have sent them before our RST_STREAM arrived): trailers on it are not an
 * "unexpected stream identifier", and the connection carries on.
 */
static void
test_trailers_after_our_reset(void **state)
{
    struct h2raw r;
    struct seen s;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_connect(&r, 3, H2_MAX_HEADERS); /* over the field cap: we reset it */
    h2raw_run(&r, 10);
    h2raw_pump(&r);
    parse(&r, &s);
    assert_int_equal(s.rsts, 1);
    rc_trailers(&r, 3);
    h2raw_connect(&r, 5, 0);
    expect_alive(&r, "trailers on a stream we reset");
    parse(&r, &s);
    assert_int_equal(r.n_req, 2);
    assert_int_equal(r.req_id[1], 5);
    h2raw_teardown(&r);
}

/*
 * A client that cancels its stream and sends more on it breaks section 5.1
 * (STREAM_CLOSED), not the stream-id rule: the id was used.
 */
static void
test_headers_after_client_reset(void **state)
{
    static const uint8_t cancel[4] = {0, 0, 0, H2E_CANCEL};
    struct h2raw r;
    struct seen s;
    (void)state;

    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 10);
    h2raw_frame(&r, H2F_RST, 0, 1, cancel, sizeof(cancel));
    h2raw_run(&r, 10);
    rc_trailers(&r, 1);
    h2raw_run(&r, 30);
    h2raw_pump(&r);
    parse(&r, &s);
    /* nghttp2 makes it a connection error, which section 5.4.1 allows for any stream error. */
    bool stream_closed = (s.goaways == 1 && s.goaway_code == H2E_STREAM_CLOSED) ||
                         (s.goaways == 0 && s.rsts == 1 && s.rst_code == H2E_STREAM_CLOSED);
    if (!stream_closed)
        fail_msg("HEADERS on a stream the client reset: %d GOAWAY (code %u), %d RST_STREAM "
                 "(code %u); RFC 9113 5.1 makes it STREAM_CLOSED",
                 s.goaways, s.goaway_code, s.rsts, s.rst_code);
    h2raw_teardown(&r);
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
    struct h2raw r;
    struct seen s;
    uint8_t b[64];
    size_t n = h2raw_lit_idx(b, 2, "CONNECT");
    (void)state;

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, 0, 1, b, n);
    for (int i = 0; i < 64 && !r.eof; i++) {
        h2raw_frame(&r, H2F_CONTINUATION, 0, 1, NULL, 0);
        h2raw_pump(&r);
    }
    bool closed = h2raw_wait_closed(&r, 1000);
    parse(&r, &s);
    if (!closed || (s.goaways > 0 && s.goaway_code == H2E_NO_ERROR))
        fail_msg("64 empty CONTINUATION frames: connection %s, %d GOAWAY (code %u); want it "
                 "closed as an error",
                 closed ? "closed" : "still open", s.goaways, s.goaway_code);
    assert_int_equal(r.n_req, 0);
    h2raw_teardown(&r);
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
