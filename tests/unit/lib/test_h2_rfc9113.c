/*
 * test_h2_rfc9113.c - the server side of lib/h2 (the waypoint's inner HTTP/2 server, the
 * HBONE server, gRPC servers) against RFC 9113, driven with hand-built frames over a
 * socketpair (tests/support/unit_h2raw.c). Each case asserts the server's exact reaction:
 *
 *   connection error (5.4.1): one GOAWAY with the section's error code, then the close;
 *   stream error (5.4.2): RST_STREAM on that stream with the code, no GOAWAY, and the
 *     connection still answers a PING (kept);
 *   where the RFC lets a stream error be a connection error and lib/h2 (nghttp2) takes that
 *     liberty, either is accepted, with the code still exact.
 *
 * Sections: 3.4 preface, 4.2 frame size, 4.3 field blocks, 5.1 stream states, 5.1.1 stream
 * ids, 5.1.2 concurrency, 6.5 SETTINGS, 6.7 PING, 6.9 WINDOW_UPDATE and flow control, 6.10
 * CONTINUATION, 8.1.1/8.2/8.3 malformed requests, RFC 7541 HPACK decoding errors.
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
#include "unit_h2raw.h"
#include "unit_loop.h"

#define MAX_FRAMES 1024

static const char *
code_name(uint32_t c)
{
    static const char *names[] = {"NO_ERROR",           "PROTOCOL_ERROR",   "INTERNAL_ERROR",
                                  "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
                                  "FRAME_SIZE_ERROR",   "REFUSED_STREAM",   "CANCEL",
                                  "COMPRESSION_ERROR"};
    return c < ARRAY_LEN(names) ? names[c] : "?";
}

struct seen {
    int goaways, rsts, pings_acked;
    uint32_t goaway_code, goaway_last;
    uint32_t rst_sid, rst_code; /* the last RST_STREAM */
};

static void
scan(const struct h2raw *r, struct seen *s, const uint8_t ping[8])
{
    static struct h2raw_frame f[MAX_FRAMES];
    size_t n = h2raw_frames(r, f, MAX_FRAMES);
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        if (f[i].type == H2F_GOAWAY) {
            s->goaways++;
            s->goaway_code = f[i].code;
            s->goaway_last = f[i].last_sid;
        } else if (f[i].type == H2F_RST) {
            s->rsts++;
            s->rst_sid = f[i].sid;
            s->rst_code = f[i].code;
        } else if (f[i].type == H2F_PING && (f[i].flags & H2FL_ACK) && f[i].len == 8 &&
                   ping != NULL && memcmp(f[i].payload, ping, 8) == 0) {
            s->pings_acked++;
        }
    }
}

/* Connection error |code|: exactly one GOAWAY carrying it, then the server closes. */
static void
expect_conn_error(struct h2raw *r, uint32_t code, const char *what)
{
    struct seen s;
    bool closed = h2raw_wait_closed(r, 1000);
    scan(r, &s, NULL);
    if (!closed || s.goaways != 1 || s.goaway_code != code)
        fail_msg("%s: connection %s, %d GOAWAY (last %s), %d RST_STREAM (last %s); want GOAWAY "
                 "%s and the close",
                 what, closed ? "closed" : "still open", s.goaways, code_name(s.goaway_code),
                 s.rsts, code_name(s.rst_code), code_name(code));
}

/* The connection still works: a PING is answered, no GOAWAY was sent. */
static void
expect_alive(struct h2raw *r, const char *what)
{
    static unsigned seq;
    uint8_t ping[8] = {'a', 'l', 'i', 'v', 'e', 0, 0, (uint8_t)++seq};
    struct seen s;

    if (!r->eof)
        h2raw_frame(r, H2F_PING, 0, 0, ping, sizeof(ping));
    for (int i = 0; i < 200; i++) {
        h2raw_run(r, 2);
        scan(r, &s, ping);
        if (s.pings_acked > 0 || r->eof)
            break;
    }
    scan(r, &s, ping);
    if (r->eof || s.goaways != 0 || s.pings_acked != 1)
        fail_msg("%s: want the connection kept; it %s (%d GOAWAY, code %s)", what,
                 r->eof ? "was closed" : "did not answer a PING", s.goaways,
                 code_name(s.goaway_code));
}

/* Stream error |code| on |sid|: RST_STREAM, and the connection is kept. */
static void
expect_stream_error(struct h2raw *r, uint32_t sid, uint32_t code, const char *what)
{
    struct seen s;
    h2raw_run(r, 20);
    scan(r, &s, NULL);
    if (s.goaways != 0 || s.rsts < 1 || s.rst_sid != sid || s.rst_code != code)
        fail_msg("%s: %d GOAWAY (%s), %d RST_STREAM (last on %u, %s), connection %s; want "
                 "RST_STREAM %s on %u and the connection kept",
                 what, s.goaways, code_name(s.goaway_code), s.rsts, s.rst_sid,
                 code_name(s.rst_code), r->eof ? "closed" : "open", code_name(code), sid);
    expect_alive(r, what);
}

/* Section 5.4.1 lets any stream error be a connection error: either, with |code|. */
static void
expect_stream_or_conn_error(struct h2raw *r, uint32_t sid, uint32_t code, const char *what)
{
    struct seen s;
    h2raw_run(r, 20);
    scan(r, &s, NULL);
    if (s.goaways > 0) {
        expect_conn_error(r, code, what);
        return;
    }
    expect_stream_error(r, sid, code, what);
}

static void
u32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
window_update(struct h2raw *r, uint32_t sid, uint32_t inc)
{
    uint8_t p[4];
    u32be(p, inc);
    h2raw_frame(r, H2F_WINDOW_UPDATE, 0, sid, p, 4);
}

static void
settings1(struct h2raw *r, uint16_t id, uint32_t v)
{
    uint8_t p[6] = {(uint8_t)(id >> 8), (uint8_t)id};
    u32be(p + 2, v);
    h2raw_frame(r, H2F_SETTINGS, 0, 0, p, 6);
}

static void
get(struct h2raw *r, uint32_t sid, uint8_t flags)
{
    uint8_t b[128];
    size_t n = h2raw_get_fields(b);
    h2raw_frame(r, H2F_HEADERS, H2FL_END_HEADERS | flags, sid, b, n);
}

/* ---- 5.1.1 stream identifiers ------------------------------------------- */

static void
test_even_stream_id(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    get(&r, 2, H2FL_END_STREAM);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "HEADERS on even stream 2 (5.1.1)");
    assert_int_equal(r.n_req, 0);
    h2raw_teardown(&r);
}

static void
test_decreasing_stream_id(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    get(&r, 5, 0);
    h2raw_run(&r, 5);
    get(&r, 3, 0);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "HEADERS on 3 after 5 (5.1.1)");
    assert_int_equal(r.n_req, 1);
    h2raw_teardown(&r);
}

/* ---- 5.1.2 concurrency ---------------------------------------------------- */

/*
 * One stream over SETTINGS_MAX_CONCURRENT_STREAMS (200, acknowledged): a stream error
 * PROTOCOL_ERROR or REFUSED_STREAM (5.1.2), which nghttp2 makes a connection error
 * PROTOCOL_ERROR (5.4.1 allows it). The 200 within the limit were all served.
 */
static void
test_concurrency_limit(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    for (uint32_t i = 0; i < H2_SERVER_MAX_STREAMS; i++)
        h2raw_connect(&r, 1 + 2 * i, 0);
    h2raw_run(&r, 50);
    assert_int_equal(r.n_req, H2_SERVER_MAX_STREAMS);
    expect_alive(&r, "200 open streams");
    uint32_t over = 1 + 2 * H2_SERVER_MAX_STREAMS;
    h2raw_connect(&r, over, 0);
    struct seen s;
    h2raw_run(&r, 20);
    scan(&r, &s, NULL);
    if (s.goaways > 0)
        expect_conn_error(&r, H2E_PROTOCOL_ERROR, "stream 201 of 200 (5.1.2)");
    else if (s.rst_code == H2E_REFUSED_STREAM)
        expect_stream_error(&r, over, H2E_REFUSED_STREAM, "stream 201 of 200 (5.1.2)");
    else
        expect_stream_error(&r, over, H2E_PROTOCOL_ERROR, "stream 201 of 200 (5.1.2)");
    assert_int_equal(r.n_req, H2_SERVER_MAX_STREAMS);
    h2raw_teardown(&r);
}

/* A stream that ended makes room for another: the limit counts open streams only. */
static void
test_concurrency_reuse(void **state)
{
    static const uint8_t cancel[4] = {0, 0, 0, H2E_CANCEL};
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    for (uint32_t i = 0; i < H2_SERVER_MAX_STREAMS; i++)
        h2raw_connect(&r, 1 + 2 * i, 0);
    h2raw_run(&r, 50);
    h2raw_frame(&r, H2F_RST, 0, 1, cancel, 4);
    h2raw_run(&r, 10);
    h2raw_connect(&r, 1 + 2 * H2_SERVER_MAX_STREAMS, 0);
    expect_alive(&r, "a new stream after one of 200 was reset");
    assert_int_equal(r.n_req, H2_SERVER_MAX_STREAMS + 1);
    h2raw_teardown(&r);
}

/* ---- 4.2 frame size ------------------------------------------------------- */

/* DATA longer than our SETTINGS_MAX_FRAME_SIZE (1 MiB): FRAME_SIZE_ERROR (the header says it). */
static void
test_frame_too_large(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_header(&r, H2_MAX_FRAME + 1, H2F_DATA, 0, 1);
    expect_stream_or_conn_error(&r, 1, H2E_FRAME_SIZE_ERROR, "DATA of max frame + 1 (4.2)");
    h2raw_teardown(&r);
}

/* A frame that could change the connection's state (HEADERS) over the limit: connection error. */
static void
test_headers_too_large(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_header(&r, H2_MAX_FRAME + 1, H2F_HEADERS, H2FL_END_HEADERS, 1);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "HEADERS of max frame + 1 (4.2)");
    h2raw_teardown(&r);
}

/* Exactly SETTINGS_MAX_FRAME_SIZE is legal. */
static void
test_frame_at_limit(void **state)
{
    struct h2raw r;
    uint8_t *p = calloc(1, H2_MAX_FRAME);
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_DATA, 0, 1, p, H2_MAX_FRAME);
    expect_alive(&r, "DATA of exactly max frame (4.2)");
    free(p);
    h2raw_teardown(&r);
}

/* ---- 6.9 flow control ----------------------------------------------------- */

static void
send_data(struct h2raw *r, uint32_t sid, size_t total)
{
    static uint8_t chunk[1 << 20];
    while (total > 0) {
        size_t n = total < sizeof(chunk) ? total : sizeof(chunk);
        h2raw_frame(r, H2F_DATA, 0, sid, chunk, n);
        total -= n;
    }
}

/* A stream's whole window (4 MiB, nothing read): legal; one byte more: FLOW_CONTROL_ERROR. */
static void
test_stream_window_exceeded(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    send_data(&r, 1, H2_STREAM_WINDOW);
    expect_alive(&r, "DATA filling the stream window");
    send_data(&r, 1, 1);
    expect_stream_or_conn_error(&r, 1, H2E_FLOW_CONTROL_ERROR,
                                "DATA one byte past the stream window (6.9.1)");
    h2raw_teardown(&r);
}

/* The connection window (16 MiB) over four streams, then a byte on a fifth: connection error. */
static void
test_conn_window_exceeded(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    for (uint32_t sid = 1; sid <= 9; sid += 2)
        h2raw_connect(&r, sid, 0);
    h2raw_run(&r, 5);
    for (uint32_t sid = 1; sid <= 7; sid += 2)
        send_data(&r, sid, H2_CONN_WINDOW / 4);
    expect_alive(&r, "DATA filling the connection window");
    send_data(&r, 9, 1);
    expect_conn_error(&r, H2E_FLOW_CONTROL_ERROR, "DATA one byte past the connection window");
    h2raw_teardown(&r);
}

static void
test_window_update_zero_stream(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    window_update(&r, 1, 0);
    expect_stream_or_conn_error(&r, 1, H2E_PROTOCOL_ERROR, "WINDOW_UPDATE 0 on a stream (6.9)");
    h2raw_teardown(&r);
}

static void
test_window_update_zero_conn(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    window_update(&r, 0, 0);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "WINDOW_UPDATE 0 on the connection (6.9)");
    h2raw_teardown(&r);
}

/* 6.9.1: a window above 2^31-1 ends the stream (RST_STREAM FLOW_CONTROL_ERROR)... */
static void
test_window_overflow_stream(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    window_update(&r, 1, 0x7fffffff); /* 65535 + 2^31-1 */
    expect_stream_error(&r, 1, H2E_FLOW_CONTROL_ERROR, "stream window past 2^31-1 (6.9.1)");
    h2raw_teardown(&r);
}

/* ... or the connection (GOAWAY FLOW_CONTROL_ERROR). */
static void
test_window_overflow_conn(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    window_update(&r, 0, 0x7fffffff);
    expect_conn_error(&r, H2E_FLOW_CONTROL_ERROR, "connection window past 2^31-1 (6.9.1)");
    h2raw_teardown(&r);
}

/* 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes an open stream past 2^31-1. */
static void
test_initial_window_overflow(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    h2raw_connect(&r, 1, 0);
    h2raw_run(&r, 5);
    window_update(&r, 1, 0x7fffffff - 65535); /* exactly 2^31-1: legal */
    expect_alive(&r, "stream window of exactly 2^31-1");
    settings1(&r, 4, 65536);
    expect_conn_error(&r, H2E_FLOW_CONTROL_ERROR,
                      "INITIAL_WINDOW_SIZE change past 2^31-1 on an open stream (6.9.2)");
    h2raw_teardown(&r);
}

/* ---- RFC 7541 HPACK ------------------------------------------------------- */

static void
hpack_error(const uint8_t *block, size_t n, const char *what)
{
    struct h2raw r;
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, block, n);
    expect_conn_error(&r, H2E_COMPRESSION_ERROR, what);
    assert_int_equal(r.n_req, 0);
    h2raw_teardown(&r);
}

static void
test_hpack_errors(void **state)
{
    (void)state;
    /* RFC 7541 6.1: index 0 is not used. */
    hpack_error((const uint8_t *)"\x80", 1, "HPACK indexed field 0");
    /* 2.3.3: an index past the static table (61) with an empty dynamic table. */
    hpack_error((const uint8_t *)"\xbe", 1, "HPACK index 62 of 61");
    /* 4.2: a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (4096): 8191. */
    hpack_error((const uint8_t *)"\x3f\xe1\x3f\x82", 4, "HPACK table size 8191 > 4096");
    /* 5.2: Huffman string with padding longer than 7 bits (all ones, 2 bytes). */
    hpack_error((const uint8_t *)"\x04\x82\xff\xff", 4, "HPACK Huffman padding > 7 bits");
    /* 5.1: an integer that does not end (continuation bits to the frame's end). */
    hpack_error((const uint8_t *)"\xff\xff\xff\xff\xff\xff", 6, "HPACK integer without end");
    /* A string longer than what is left of the block. */
    hpack_error((const uint8_t *)"\x00\x05"
                                 "ab",
                4, "HPACK string past the block");
}

/* ---- 6.5 SETTINGS ----------------------------------------------------------- */

static void
settings_error(uint16_t id, uint32_t v, uint32_t code, const char *what)
{
    struct h2raw r;
    h2raw_setup(&r);
    settings1(&r, id, v);
    expect_conn_error(&r, code, what);
    h2raw_teardown(&r);
}

static void
test_bad_settings(void **state)
{
    (void)state;
    settings_error(2, 2, H2E_PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH 2 (6.5.2)");
    settings_error(4, 0x80000000u, H2E_FLOW_CONTROL_ERROR,
                   "SETTINGS_INITIAL_WINDOW_SIZE 2^31 (6.5.2)");
    settings_error(5, 16383, H2E_PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE 16383 (6.5.2)");
    settings_error(5, 1u << 24, H2E_PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE 2^24 (6.5.2)");
}

static void
test_settings_frames(void **state)
{
    struct h2raw r;
    uint8_t six[6] = {0, 4, 0, 0, 0x10, 0};
    (void)state;

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_SETTINGS, H2FL_ACK, 0, six, 6);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "SETTINGS ACK with a payload (6.5)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_SETTINGS, 0, 0, six, 5);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "SETTINGS of 5 bytes (6.5)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_SETTINGS, 0, 1, six, 6);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "SETTINGS on stream 1 (6.5)");
    h2raw_teardown(&r);

    /* Legal: an unknown setting is ignored (6.5.2), and limits at their bounds. */
    h2raw_setup(&r);
    settings1(&r, 0x4242, 7);
    settings1(&r, 5, (1u << 24) - 1);
    settings1(&r, 4, 0x7fffffff);
    settings1(&r, 2, 0);
    expect_alive(&r, "unknown setting; MAX_FRAME_SIZE 2^24-1; INITIAL_WINDOW_SIZE 2^31-1");
    h2raw_teardown(&r);
}

/* ---- 6.7 PING --------------------------------------------------------------- */

static void
test_ping(void **state)
{
    struct h2raw r;
    uint8_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    (void)state;

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_PING, 0, 0, p, 7);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "PING of 7 bytes (6.7)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_PING, 0, 0, p, 8);
    h2raw_frame(&r, H2F_PING, 0, 0, p, 8);
    h2raw_run(&r, 20);
    struct seen s;
    scan(&r, &s, p);
    assert_int_equal(s.pings_acked, 2); /* each PING answered with its payload */
    h2raw_frame(&r, H2F_PING, 0, 1, p, 8);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "PING on stream 1 (6.7)");
    h2raw_teardown(&r);
}

/* ---- 4.3 / 6.10 CONTINUATION ------------------------------------------------- */

static void
test_continuation(void **state)
{
    struct h2raw r;
    uint8_t b[128];
    size_t n = h2raw_get_fields(b);
    uint8_t ping[8] = {0};
    (void)state;

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_CONTINUATION, H2FL_END_HEADERS, 1, b, n);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "CONTINUATION without HEADERS (6.10)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_CONTINUATION, H2FL_END_HEADERS, 1, b, n);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "CONTINUATION after END_HEADERS (6.10)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, 0, 1, b, 2);
    h2raw_frame(&r, H2F_PING, 0, 0, ping, 8);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "PING inside a field block (4.3)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, 0, 1, b, 2);
    h2raw_frame(&r, H2F_CONTINUATION, H2FL_END_HEADERS, 3, b + 2, n - 2);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "CONTINUATION on another stream (6.10)");
    h2raw_teardown(&r);

    /* Legal: a field block split over HEADERS and two CONTINUATION frames. */
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_STREAM, 1, b, 1);
    h2raw_frame(&r, H2F_CONTINUATION, 0, 1, b + 1, 2);
    h2raw_frame(&r, H2F_CONTINUATION, H2FL_END_HEADERS, 1, b + 3, n - 3);
    expect_alive(&r, "HEADERS + 2 CONTINUATION");
    assert_int_equal(r.n_req, 1);
    h2raw_teardown(&r);
}

/* ---- 5.1 stream states ---------------------------------------------------- */

static void
idle_frame(uint8_t type, const void *p, size_t n, const char *what)
{
    struct h2raw r;
    h2raw_setup(&r);
    h2raw_frame(&r, type, 0, 1, p, n);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, what);
    h2raw_teardown(&r);
}

static void
test_idle_stream(void **state)
{
    static const uint8_t four[4] = {0, 0, 0, 1};
    (void)state;
    idle_frame(H2F_DATA, "abc", 3, "DATA on idle stream 1 (5.1)");
    idle_frame(H2F_WINDOW_UPDATE, four, 4, "WINDOW_UPDATE on idle stream 1 (5.1)");
    idle_frame(H2F_RST, four, 4, "RST_STREAM on idle stream 1 (5.1)");
    /* Frames that need a stream, on stream 0 (6.1, 6.2, 6.4). */
    struct h2raw r;
    uint8_t b[128];
    size_t n = h2raw_get_fields(b);
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_DATA, 0, 0, "abc", 3);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "DATA on stream 0 (6.1)");
    h2raw_teardown(&r);
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS, 0, b, n);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "HEADERS on stream 0 (6.2)");
    h2raw_teardown(&r);
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_RST, 0, 0, four, 4);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "RST_STREAM on stream 0 (6.4)");
    h2raw_teardown(&r);
    /* Legal: PRIORITY on an idle stream (5.1), WINDOW_UPDATE on a half-closed (remote) one. */
    static const uint8_t prio[5] = {0, 0, 0, 0, 15};
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_PRIORITY, 0, 7, prio, 5);
    get(&r, 1, H2FL_END_STREAM);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_WINDOW_UPDATE, 0, 1, four, 4);
    expect_alive(&r, "PRIORITY on idle 7; WINDOW_UPDATE on half-closed 1");
    assert_int_equal(r.n_req, 1);
    h2raw_teardown(&r);
}

/* DATA after the client's END_STREAM: half-closed (remote), STREAM_CLOSED (5.1). */
static void
test_data_after_end_stream(void **state)
{
    struct h2raw r;
    (void)state;
    h2raw_setup(&r);
    get(&r, 1, H2FL_END_STREAM);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_DATA, 0, 1, "abc", 3);
    expect_stream_or_conn_error(&r, 1, H2E_STREAM_CLOSED, "DATA after END_STREAM (5.1)");
    h2raw_teardown(&r);
}

/* ---- 8.1.1 / 8.2 / 8.3 malformed requests: stream error PROTOCOL_ERROR ----------- */

struct mal {
    const char *what;
    uint8_t block[256];
    size_t len;
};

/* Appends field |name|: |value| (lengths given: NUL and CR allowed). */
static void
add(struct mal *m, const char *name, size_t nl, const char *value, size_t vl)
{
    m->len += h2raw_lit_n(m->block + m->len, name, nl, value, vl);
}
#define ADD(m, n, v) add(m, n, sizeof(n) - 1, v, sizeof(v) - 1)

static void
start_get(struct mal *m, const char *what)
{
    memset(m, 0, sizeof(*m));
    m->what = what;
    m->len = h2raw_get_fields(m->block);
}

/* |m| on stream 1: RST_STREAM PROTOCOL_ERROR, never delivered; the connection serves stream 3. */
static void
expect_malformed(const struct mal *m)
{
    struct h2raw r;
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, m->block, m->len);
    expect_stream_error(&r, 1, H2E_PROTOCOL_ERROR, m->what);
    if (r.n_req != 0)
        fail_msg("%s: the request was delivered", m->what);
    get(&r, 3, H2FL_END_STREAM);
    h2raw_run(&r, 10);
    if (r.n_req != 1)
        fail_msg("%s: the next request (stream 3) was not served", m->what);
    h2raw_teardown(&r);
}

static void
expect_wellformed(const struct mal *m)
{
    struct h2raw r;
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, m->block, m->len);
    h2raw_run(&r, 10);
    struct seen s;
    scan(&r, &s, NULL);
    if (r.n_req != 1 || s.rsts != 0 || s.goaways != 0)
        fail_msg("%s: legal, but %d delivered, %d RST_STREAM (%s), %d GOAWAY", m->what, r.n_req,
                 s.rsts, code_name(s.rst_code), s.goaways);
    h2raw_teardown(&r);
}

static void
test_malformed_fields(void **state)
{
    struct mal m;
    (void)state;

    start_get(&m, "upper-case field name (8.2.1)");
    ADD(&m, "X-Upper", "1");
    expect_malformed(&m);
    start_get(&m, "field name with SP (8.2.1)");
    ADD(&m, "x y", "1");
    expect_malformed(&m);
    start_get(&m, "field name with a control byte (8.2.1)");
    ADD(&m, "x\x01y", "1");
    expect_malformed(&m);
    start_get(&m, "field name with a byte above 0x7e (8.2.1)");
    ADD(&m, "x\xffy", "1");
    expect_malformed(&m);
    start_get(&m, "empty field name (8.2.1)");
    add(&m, "", 0, "1", 1);
    expect_malformed(&m);
    start_get(&m, "field value with LF (8.2.1)");
    ADD(&m, "x", "a\nb");
    expect_malformed(&m);
    start_get(&m, "field value with CR (8.2.1)");
    ADD(&m, "x", "a\rb");
    expect_malformed(&m);
    start_get(&m, "field value with NUL (8.2.1)");
    add(&m, "x", 1, "a\0b", 3);
    expect_malformed(&m);
    start_get(&m, "field value with leading SP (8.2.1)");
    ADD(&m, "x", " a");
    expect_malformed(&m);
    start_get(&m, "field value with trailing HTAB (8.2.1)");
    ADD(&m, "x", "a\t");
    expect_malformed(&m);
    static const char *conn_specific[] = {"connection", "keep-alive", "proxy-connection",
                                          "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < ARRAY_LEN(conn_specific); i++) {
        char what[96];
        snprintf(what, sizeof(what), "connection-specific field %s (8.2.2)", conn_specific[i]);
        start_get(&m, what);
        add(&m, conn_specific[i], strlen(conn_specific[i]), "x", 1);
        expect_malformed(&m);
    }
    start_get(&m, "te other than trailers (8.2.2)");
    ADD(&m, "te", "gzip");
    expect_malformed(&m);

    /* Legal neighbours: they must not be refused. */
    start_get(&m, "te: trailers (8.2.2)");
    ADD(&m, "te", "trailers");
    expect_wellformed(&m);
    start_get(&m, "inner SP and HTAB in a value, obs-text (8.2.1)");
    ADD(&m, "x-v", "a b\tc\xe9");
    expect_wellformed(&m);
}

static void
test_malformed_pseudo(void **state)
{
    struct mal m;
    (void)state;

    /* A regular field, then a pseudo-header (8.3). */
    memset(&m, 0, sizeof(m));
    m.what = "pseudo-header after a regular field (8.3)";
    m.len = h2raw_idx(m.block, 2);
    m.len += h2raw_idx(m.block + m.len, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    ADD(&m, "x", "1");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "no :method (8.3.1)";
    m.len = h2raw_idx(m.block, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "no :path (8.3.1)";
    m.len = h2raw_idx(m.block, 2);
    m.len += h2raw_idx(m.block + m.len, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "no :scheme (8.3.1)";
    m.len = h2raw_idx(m.block, 2);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "empty :path (8.3.1)";
    m.len = h2raw_idx(m.block, 2);
    m.len += h2raw_idx(m.block + m.len, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    start_get(&m, "two :path (8.3.1)");
    m.len = h2raw_idx(m.block, 2);
    m.len += h2raw_idx(m.block + m.len, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/y");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "unknown pseudo-header :foo (8.3)";
    m.len = h2raw_get_fields(m.block);
    /* appended after the regular-free block: still among pseudo-headers */
    ADD(&m, ":foo", "1");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "response pseudo-header :status in a request (8.3)";
    m.len = h2raw_get_fields(m.block);
    m.len += h2raw_idx(m.block + m.len, 8); /* :status 200 */
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "CONNECT with :path (8.5)";
    m.len = h2raw_lit_idx(m.block, 2, "CONNECT");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "198.18.0.10:8080");
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    expect_malformed(&m);

    memset(&m, 0, sizeof(m));
    m.what = "CONNECT without :authority (8.5)";
    m.len = h2raw_lit_idx(m.block, 2, "CONNECT");
    expect_malformed(&m);
}

/* content-length that the DATA frames do not add up to (8.1.1). */
static void
test_content_length_mismatch(void **state)
{
    struct h2raw r;
    struct mal m;
    (void)state;

    memset(&m, 0, sizeof(m));
    m.len = h2raw_idx(m.block, 3); /* :method POST */
    m.len += h2raw_idx(m.block + m.len, 7);
    m.len += h2raw_lit_idx(m.block + m.len, 4, "/x");
    m.len += h2raw_lit_idx(m.block + m.len, 1, "a.example");
    ADD(&m, "content-length", "5");
    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS, 1, m.block, m.len);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_DATA, H2FL_END_STREAM, 1, "abc", 3);
    expect_stream_error(&r, 1, H2E_PROTOCOL_ERROR, "content-length 5, 3 bytes of DATA (8.1.1)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS, 1, m.block, m.len);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_DATA, 0, 1, "abcdef", 6);
    expect_stream_error(&r, 1, H2E_PROTOCOL_ERROR, "content-length 5, 6 bytes of DATA (8.1.1)");
    h2raw_teardown(&r);
}

/* Trailers: no pseudo-headers (8.1), and they end the stream. */
static void
test_trailers(void **state)
{
    struct h2raw r;
    uint8_t b[64];
    size_t n;
    (void)state;

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    n = h2raw_lit_idx(b, 4, "/y");
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, b, n);
    expect_stream_error(&r, 1, H2E_PROTOCOL_ERROR, "pseudo-header in trailers (8.1)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    n = h2raw_lit(b, "x-t", "1");
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS, 1, b, n);
    expect_stream_error(&r, 1, H2E_PROTOCOL_ERROR, "trailers without END_STREAM (8.1)");
    h2raw_teardown(&r);
}

/* Request trailers (8.1) are kept for the server's reader, readable once the body ends; more
 * fields than a header block may have reset the stream, not the connection. */
static void
test_request_trailers_kept(void **state)
{
    struct h2raw r;
    uint8_t b[4096];
    size_t n;
    const void *p;
    struct h2_header tr[4];
    (void)state;

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_frame(&r, H2F_DATA, 0, 1, "abc", 3);
    n = h2raw_lit(b, "x-t", "1");
    n += h2raw_lit(b + n, "grpc-timeout", "5S");
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, b, n);
    h2raw_run(&r, 20);
    assert_int_equal(r.n_req, 1);
    struct stream *st = h2_stream_as_stream(r.req[0]);
    assert_int_equal(st->ops->peek(st, &p), 3);
    st->ops->consume(st, 3);
    assert_int_equal(st->ops->peek(st, &p), 0);
    assert_int_equal(h2_stream_trailers(r.req[0], tr, 4), 2);
    assert_string_equal(tr[0].name, "x-t");
    assert_string_equal(tr[0].value, "1");
    assert_string_equal(h2_stream_trailer(r.req[0], "grpc-timeout"), "5S");
    assert_null(h2_stream_trailer(r.req[0], "content-type")); /* a head field, not a trailer */
    expect_alive(&r, "request trailers");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    n = 0;
    for (int i = 0; i < H2_MAX_HEADERS + 1; i++) {
        char name[16];
        snprintf(name, sizeof(name), "x-%d", i);
        n += h2raw_lit(b + n, name, "v");
    }
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_END_STREAM, 1, b, n);
    expect_stream_error(&r, 1, H2E_INTERNAL_ERROR, "101 request trailer fields");
    assert_true(h2_stream_trailers(r.req[0], NULL, 0) <= H2_MAX_HEADERS);
    h2raw_teardown(&r);
}

/* 5.3.1: a stream that depends on itself: stream error PROTOCOL_ERROR. */
static void
test_self_dependency(void **state)
{
    struct h2raw r;
    uint8_t b[160];
    (void)state;

    h2raw_setup(&r);
    u32be(b, 1); /* exclusive 0, depends on stream 1 */
    b[4] = 15;
    size_t n = 5 + h2raw_get_fields(b + 5);
    h2raw_frame(&r, H2F_HEADERS, H2FL_END_HEADERS | H2FL_PRIORITY, 1, b, n);
    expect_stream_or_conn_error(&r, 1, H2E_PROTOCOL_ERROR, "HEADERS depending on itself (5.3.1)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_PRIORITY, 0, 1, b, 5);
    expect_stream_or_conn_error(&r, 1, H2E_PROTOCOL_ERROR, "PRIORITY depending on itself (5.3.1)");
    h2raw_teardown(&r);
}

/* Fixed-length frames with the wrong length (6.3, 6.4, 6.8, 6.9). */
static void
test_fixed_lengths(void **state)
{
    struct h2raw r;
    uint8_t z[16] = {0};
    (void)state;

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_PRIORITY, 0, 1, z, 4);
    expect_stream_or_conn_error(&r, 1, H2E_FRAME_SIZE_ERROR, "PRIORITY of 4 bytes (6.3)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    get(&r, 1, 0);
    h2raw_run(&r, 5);
    h2raw_frame(&r, H2F_RST, 0, 1, z, 3);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "RST_STREAM of 3 bytes (6.4)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_WINDOW_UPDATE, 0, 0, z, 3);
    expect_conn_error(&r, H2E_FRAME_SIZE_ERROR, "WINDOW_UPDATE of 3 bytes (6.9)");
    h2raw_teardown(&r);

    h2raw_setup(&r);
    h2raw_frame(&r, H2F_GOAWAY, 0, 1, z, 8);
    expect_conn_error(&r, H2E_PROTOCOL_ERROR, "GOAWAY on stream 1 (6.8)");
    h2raw_teardown(&r);

    /* Legal: an unknown frame type is ignored (4.1, 5.5). */
    h2raw_setup(&r);
    h2raw_frame(&r, 0x42, 0xff, 1, z, 16);
    expect_alive(&r, "unknown frame type 0x42");
    h2raw_teardown(&r);
}

/* 3.4: a connection that does not start with the preface: PROTOCOL_ERROR (GOAWAY optional). */
static void
test_bad_preface(void **state)
{
    static const char h1[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct h2raw r;
    struct seen s;
    (void)state;

    h2raw_start(&r);
    h2raw_send(&r, h1, sizeof(h1) - 1);
    bool closed = h2raw_wait_closed(&r, 1000);
    scan(&r, &s, NULL);
    if (!closed || (s.goaways > 0 && s.goaway_code != H2E_PROTOCOL_ERROR))
        fail_msg("HTTP/1.1 instead of the preface: connection %s, GOAWAY %s",
                 closed ? "closed" : "open", code_name(s.goaway_code));
    assert_int_equal(r.n_req, 0);
    h2raw_teardown(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_even_stream_id),
        cmocka_unit_test(test_decreasing_stream_id),
        cmocka_unit_test(test_concurrency_limit),
        cmocka_unit_test(test_concurrency_reuse),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_headers_too_large),
        cmocka_unit_test(test_frame_at_limit),
        cmocka_unit_test(test_stream_window_exceeded),
        cmocka_unit_test(test_conn_window_exceeded),
        cmocka_unit_test(test_window_update_zero_stream),
        cmocka_unit_test(test_window_update_zero_conn),
        cmocka_unit_test(test_window_overflow_stream),
        cmocka_unit_test(test_window_overflow_conn),
        cmocka_unit_test(test_initial_window_overflow),
        cmocka_unit_test(test_hpack_errors),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_settings_frames),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_continuation),
        cmocka_unit_test(test_idle_stream),
        cmocka_unit_test(test_data_after_end_stream),
        cmocka_unit_test(test_malformed_fields),
        cmocka_unit_test(test_malformed_pseudo),
        cmocka_unit_test(test_content_length_mismatch),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_request_trailers_kept),
        cmocka_unit_test(test_self_dependency),
        cmocka_unit_test(test_fixed_lengths),
        cmocka_unit_test(test_bad_preface),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
