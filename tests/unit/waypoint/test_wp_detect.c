/*
 * test_wp_detect.c - the waypoint's protocol sniffing (src/waypoint/detect.c): the decision
 * on a prefix (a table: HTTP/1 request lines, the HTTP/2 preface whole and split, partial
 * lines when no more comes, binary junk, text protocols, empty), then the sniff over a
 * socketpair: decided on the bytes without waiting, the 200 ms window for a silent or
 * dribbling peer, the cap, end of stream, and the bytes replayed to the next owner.
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
#include "conn/tcp_stream.h"
#include "unit_loop.h"
#include "waypoint/detect.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

struct row {
    const char *name;
    const char *in;
    size_t len;                /* 0: strlen(in) */
    enum wp_proto more, final; /* the decision while more may come, and when no more will */
};

static const struct row rows[] = {
    {"GET request line", "GET /index.html HTTP/1.1\r\n", 0, WP_PROTO_HTTP1, WP_PROTO_HTTP1},
    {"decided at \"HTTP/1.\"", "POST /a HTTP/1.", 0, WP_PROTO_HTTP1, WP_PROTO_HTTP1},
    {"HTTP/1.0", "HEAD / HTTP/1.0\r\n\r\n", 0, WP_PROTO_HTTP1, WP_PROTO_HTTP1},
    {"extension method token", "M-SEARCH * HTTP/1.1\r\n", 0, WP_PROTO_HTTP1, WP_PROTO_HTTP1},
    {"absolute-form target", "GET http://a.example/x?y=1 HTTP/1.1", 0, WP_PROTO_HTTP1,
     WP_PROTO_HTTP1},
    {"CONNECT authority-form", "CONNECT a.example:443 HTTP/1.1\r\n", 0, WP_PROTO_HTTP1,
     WP_PROTO_HTTP1},
    {"h2 preface", PREFACE, 0, WP_PROTO_HTTP2, WP_PROTO_HTTP2},
    {"h2 preface and SETTINGS", PREFACE "\0\0\0\4\0\0\0\0\0", 33, WP_PROTO_HTTP2, WP_PROTO_HTTP2},
    /* Split: either protocol may still follow, or only h2. */
    {"preface, first byte (or POST's)", "P", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"preface, first 3 bytes", "PRI", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"preface up to HTTP/", "PRI * HTTP/", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"preface up to HTTP/2", "PRI * HTTP/2", 0, WP_PROTO_MORE, WP_PROTO_HTTP2},
    {"preface, first line", "PRI * HTTP/2.0\r\n", 0, WP_PROTO_MORE, WP_PROTO_HTTP2},
    {"preface, 23 of 24 bytes", PREFACE, 23, WP_PROTO_MORE, WP_PROTO_HTTP2},
    {"preface with a wrong last byte", "PRI * HTTP/2.0\r\n\r\nSM\r\n\rX", 0, WP_PROTO_TCP,
     WP_PROTO_TCP},
    {"PRI as an HTTP/1.1 method", "PRI * HTTP/1.1\r\n", 0, WP_PROTO_HTTP1, WP_PROTO_HTTP1},
    /* A partial request line: more is awaited; if none comes it still goes to an engine. */
    {"method only", "G", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"method and SP", "GET ", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"partial target", "GET /adm", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"partial version", "GET /admin HTTP/", 0, WP_PROTO_MORE, WP_PROTO_HTTP1},
    {"HTTP/2 version in a request line", "GET / HTTP/2.0\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"lower-case version", "GET / http/1.1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"two spaces after the method", "GET  / HTTP/1.1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"tab instead of SP", "GET\t/ HTTP/1.1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"CTL in the target", "GET /a\x01 HTTP/1.1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"line ends before the version", "GET /\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"leading CRLF", "\r\nGET / HTTP/1.1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"leading SP", " GET / HTTP/1.1", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    /* Other protocols: decided on the first byte that cannot be HTTP, without waiting. */
    {"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, WP_PROTO_TCP,
     WP_PROTO_TCP},
    {"binary junk", "\x00\xff\x13\x37", 4, WP_PROTO_TCP, WP_PROTO_TCP},
    {"a NUL first", "\0", 1, WP_PROTO_TCP, WP_PROTO_TCP},
    {"high byte in the method", "G\xc3\xa9T / HTTP/1.1", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"memcached get", "get key1\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"redis inline PING", "PING\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"SMTP client line", "EHLO client.example\r\n", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"text with spaces", "hello via the waypoint 4711", 0, WP_PROTO_TCP, WP_PROTO_TCP},
    {"MySQL-like binary", "\x4a\x00\x00\x00\x0a", 5, WP_PROTO_TCP, WP_PROTO_TCP},
    {"empty", "", 0, WP_PROTO_MORE, WP_PROTO_TCP},
};

static void
test_table(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        const struct row *r = &rows[i];
        size_t n = r->len ? r->len : strlen(r->in);
        enum wp_proto more = wp_sniff(r->in, n, false), final = wp_sniff(r->in, n, true);
        if (more != r->more || final != r->final) {
            print_error("%s: got %s/%s, want %s/%s\n", r->name, wp_proto_name(more),
                        wp_proto_name(final), wp_proto_name(r->more), wp_proto_name(r->final));
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/*
 * Every prefix of the preface and of a request line: undecided, never TCP, until whole; a
 * request line's prefixes go to the HTTP/1.1 engine if no more comes, even those that are
 * also the preface's ("P", "PRI * HTTP/": a slow "POST" must not pass as TCP).
 */
static void
test_every_prefix(void **state)
{
    static const char line[] = "OPTIONS /x?y HTTP/1.1";
    (void)state;
    for (size_t n = 1; n < sizeof(PREFACE) - 1; n++) {
        assert_int_equal(wp_sniff(PREFACE, n, false), WP_PROTO_MORE);
        assert_int_not_equal(wp_sniff(PREFACE, n, true), WP_PROTO_TCP);
    }
    for (size_t n = 1; n < sizeof(line) - 1 - 1; n++) {
        assert_int_equal(wp_sniff(line, n, false), WP_PROTO_MORE);
        assert_int_equal(wp_sniff(line, n, true), WP_PROTO_HTTP1);
    }
    assert_int_equal(wp_sniff(line, sizeof(line) - 2, false), WP_PROTO_HTTP1);
}

/* ---- the sniff on a stream ---------------------------------------------- */

struct dt {
    struct loop *loop;
    int peer;
    int calls;
    enum wp_proto proto;
    int err;
    uint64_t start_ms, decided_ms;
    struct stream *s;
};

static void
on_detected(void *arg, struct stream *s, enum wp_proto proto, int err)
{
    struct dt *t = arg;
    t->calls++;
    t->s = s;
    t->proto = proto;
    t->err = err;
    t->decided_ms = loop_now_ms(t->loop);
}

static bool
cond_decided(void *arg)
{
    return ((struct dt *)arg)->calls > 0;
}

static void
dt_start(struct dt *t)
{
    int fds[2];
    memset(t, 0, sizeof(*t));
    t->loop = loop_new();
    unit_socketpair(fds);
    t->peer = fds[0];
    t->start_ms = loop_now_ms(t->loop);
    wp_detect_start(t->loop, tcp_stream_new(t->loop, fds[1]), on_detected, t);
}

static void
dt_end(struct dt *t)
{
    if (t->s != NULL)
        stream_close(t->s, true);
    unit_run_for(t->loop, 2);
    close(t->peer);
    loop_free(t->loop);
}

/* Reads what the replayed stream gives until it would block or ends. */
static size_t
drain(struct stream *s, char *b, size_t cap, bool *eof)
{
    size_t n = 0;
    *eof = false;
    for (;;) {
        ssize_t r = stream_read(s, b + n, cap - n);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        *eof = r == 0;
        return n;
    }
}

static void
test_http1_at_once(void **state)
{
    struct dt t;
    char b[128];
    bool eof;
    (void)state;

    dt_start(&t);
    assert_int_equal(write(t.peer, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28), 28);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_HTTP1);
    assert_true(t.decided_ms - t.start_ms < 100); /* no wait for the window */
    assert_int_equal(drain(t.s, b, sizeof(b), &eof), 28);
    assert_memory_equal(b, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 28);
    assert_false(eof);
    dt_end(&t);
}

/* The preface in two writes (split across reads) is still HTTP/2. */
static void
test_split_preface(void **state)
{
    struct dt t;
    char b[64];
    bool eof;
    (void)state;

    dt_start(&t);
    assert_int_equal(write(t.peer, PREFACE, 10), 10);
    unit_run_for(t.loop, 20);
    assert_int_equal(t.calls, 0);
    assert_int_equal(write(t.peer, PREFACE + 10, 14), 14);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_HTTP2);
    assert_int_equal(drain(t.s, b, sizeof(b), &eof), 24);
    assert_memory_equal(b, PREFACE, 24);
    dt_end(&t);
}

/* A server that speaks first: the client sends nothing; TCP when the window ends, not before. */
static void
test_silent_peer(void **state)
{
    struct dt t;
    (void)state;

    dt_start(&t);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 2000));
    assert_int_equal(t.proto, WP_PROTO_TCP);
    uint64_t waited = t.decided_ms - t.start_ms;
    printf("silent peer: decided after %llu ms\n", (unsigned long long)waited);
    assert_true(waited >= WP_SNIFF_WINDOW_MS - 1 && waited < WP_SNIFF_WINDOW_MS + 100);
    /* The server's greeting can go out, and the client's later bytes come through. */
    assert_int_equal(stream_write(t.s, "220 hi\r\n", 8), 8);
    char b[16];
    assert_int_equal(read(t.peer, b, sizeof(b)), 8);
    dt_end(&t);
}

/* Binary first bytes: TCP at once, every byte replayed. */
static void
test_binary_at_once(void **state)
{
    struct dt t;
    char b[16];
    bool eof;
    (void)state;

    dt_start(&t);
    assert_int_equal(write(t.peer, "\x16\x03\x01\x00\x05", 5), 5);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_TCP);
    assert_true(t.decided_ms - t.start_ms < 100);
    assert_int_equal(write(t.peer, "\x01\x02", 2), 2);
    assert_int_equal(drain(t.s, b, sizeof(b), &eof), 7);
    assert_memory_equal(b, "\x16\x03\x01\x00\x05\x01\x02", 7);
    dt_end(&t);
}

/*
 * A peer that dribbles the start of a request line is decided when the window ends, never
 * later (no hang), and to the HTTP engine: slowness is no way around L7 policy.
 */
static void
dribble(const char *req, size_t every_ms)
{
    struct dt t;
    size_t n = strlen(req);

    dt_start(&t);
    for (size_t i = 0; i < n + (WP_SNIFF_WINDOW_MS + 100) / every_ms && t.calls == 0; i++) {
        if (i < n)
            assert_int_equal(write(t.peer, req + i, 1), 1);
        unit_run_for(t.loop, every_ms);
    }
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.proto, WP_PROTO_HTTP1);
    assert_true(t.decided_ms - t.start_ms < WP_SNIFF_WINDOW_MS + 50);
    dt_end(&t);
}

static void
test_dribble(void **state)
{
    (void)state;
    dribble("GET /admin/users/list/all/", 10);
    dribble("P", 10); /* POST's first byte, the preface's too */
}

/* End of stream with a few text bytes: TCP; the bytes, then the end, replayed. */
static void
test_eof(void **state)
{
    struct dt t;
    char b[16];
    bool eof;
    (void)state;

    dt_start(&t);
    assert_int_equal(write(t.peer, "QUIT\r\n", 6), 6);
    shutdown(t.peer, SHUT_WR);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_TCP);
    assert_int_equal(drain(t.s, b, sizeof(b), &eof), 6);
    assert_true(eof);
    dt_end(&t);
}

/* Empty and closed at once: TCP at once (no window), end of stream replayed. */
static void
test_empty_eof(void **state)
{
    struct dt t;
    char b[4];
    bool eof;
    (void)state;

    dt_start(&t);
    shutdown(t.peer, SHUT_WR);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_TCP);
    assert_true(t.decided_ms - t.start_ms < 100);
    assert_int_equal(drain(t.s, b, sizeof(b), &eof), 0);
    assert_true(eof);
    dt_end(&t);
}

/* A request line longer than the cap: the cap is read, no more, and it goes to the engine. */
static void
test_cap(void **state)
{
    struct dt t;
    size_t n = 3 * WP_SNIFF_MAX;
    char *line = malloc(n);
    (void)state;

    memcpy(line, "GET /", 5);
    memset(line + 5, 'a', n - 5);
    dt_start(&t);
    assert_int_equal(write(t.peer, line, n), (ssize_t)n);
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    assert_int_equal(t.proto, WP_PROTO_HTTP1);
    assert_true(t.decided_ms - t.start_ms < 100);
    char *b = malloc(n + 1);
    bool eof;
    assert_int_equal(drain(t.s, b, n + 1, &eof), n); /* the cap, then the socket's rest */
    assert_memory_equal(b, line, n);
    free(b);
    free(line);
    dt_end(&t);
}

/* The stream fails while sniffed: an error, no stream, nothing leaked (ASan). */
static void
test_error(void **state)
{
    struct dt t;
    (void)state;

    dt_start(&t);
    assert_int_equal(write(t.peer, "G", 1), 1);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(t.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    unit_run_for(t.loop, 5);
    close(t.peer);
    t.peer = -1;
    assert_true(unit_run_until(t.loop, cond_decided, &t, 1000));
    /* AF_UNIX has no reset: EOF after "G" (an engine's 400), or an error. */
    assert_true((t.s == NULL && t.err < 0) || (t.s != NULL && t.proto == WP_PROTO_HTTP1));
    if (t.s != NULL)
        stream_close(t.s, true);
    t.s = NULL;
    unit_run_for(t.loop, 2);
    loop_free(t.loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),         cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_http1_at_once), cmocka_unit_test(test_split_preface),
        cmocka_unit_test(test_silent_peer),   cmocka_unit_test(test_binary_at_once),
        cmocka_unit_test(test_dribble),       cmocka_unit_test(test_eof),
        cmocka_unit_test(test_empty_eof),     cmocka_unit_test(test_cap),
        cmocka_unit_test(test_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
