/*
 * test_http1_api.c - lib/http1 beyond the case table: caps given as
 * parameters, spans kept after a copy, what *used says when pipelining,
 * 100-continue, raw mode, the list and hop-by-hop helpers, the serializer.
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
#include "http1/http1.h"
#include "http1/http1_write.h"
#include "unit_http1.h"

/* A head of exactly |len| bytes: request line, one long field, blank line. */
static char *
head_of(size_t len)
{
    static const char line[] = "GET / HTTP/1.1\r\nHost: h\r\n";
    char *p = xmalloc(len);
    size_t n = sizeof(line) - 1;

    memcpy(p, line, n);
    memcpy(p + n, "X: ", 3);
    memset(p + n + 3, 'a', len - n - 3 - 4);
    memcpy(p + len - 4, "\r\n\r\n", 4);
    return p;
}

static int
parse_once(struct http1_parser *ps, const char *p, size_t n, size_t *used)
{
    struct http1_span d;
    return http1_parse(ps, p, n, used, &d);
}

static void
test_head_cap_default(void **state)
{
    struct http1_parser ps;
    size_t used;
    char *p = head_of(HTTP1_MAX_HEAD_DEFAULT + 1);
    (void)state;

    /* 64 KiB exactly is a head; one byte more is 431 before the blank line arrives. */
    memcpy(p + HTTP1_MAX_HEAD_DEFAULT - 4, "\r\n\r\n", 4);
    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, p, HTTP1_MAX_HEAD_DEFAULT, &used), HTTP1_HEAD);
    assert_int_equal(used, HTTP1_MAX_HEAD_DEFAULT);
    http1_parser_free(&ps);
    free(p);
    p = head_of(HTTP1_MAX_HEAD_DEFAULT + 1);
    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, p, HTTP1_MAX_HEAD_DEFAULT - 1, &used), HTTP1_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(parse_once(&ps, p, HTTP1_MAX_HEAD_DEFAULT, &used), -HTTP1_E_TOO_LARGE);
    assert_int_equal(http1_error_status(ps.err), 431);
    /* sticky: the connection is done */
    assert_int_equal(parse_once(&ps, p, HTTP1_MAX_HEAD_DEFAULT + 1, &used), -HTTP1_E_TOO_LARGE);
    http1_parser_free(&ps);
    free(p);
}

static void
test_head_cap_param(void **state)
{
    struct http1_limits lim = {.max_head = 100};
    struct http1_parser ps;
    size_t used;
    char *p = head_of(101);
    (void)state;

    http1_parser_init(&ps, false, &lim);
    assert_int_equal(parse_once(&ps, p, 101, &used), -HTTP1_E_TOO_LARGE);
    assert_string_equal(ps.why, "head too large");
    http1_parser_free(&ps);
    free(p);
    p = head_of(100);
    http1_parser_init(&ps, false, &lim);
    assert_int_equal(parse_once(&ps, p, 100, &used), HTTP1_HEAD);
    http1_parser_free(&ps);
    free(p);
}

/* |n| fields after Host, as a request (or a response, where Host is one more field). */
static size_t
many_fields(char *buf, size_t cap, bool response, int n)
{
    size_t off = (size_t)snprintf(buf, cap, "%s",
                                  response ? "HTTP/1.1 200 OK\r\nHost: h\r\n"
                                           : "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "F%d: v\r\n", i);
    off += (size_t)snprintf(buf + off, cap - off, "\r\n");
    return off;
}

static void
test_field_count_cap(void **state)
{
    static char buf[8192];
    struct http1_parser ps;
    size_t used;
    (void)state;

    for (int resp = 0; resp < 2; resp++) {
        size_t n = many_fields(buf, sizeof(buf), resp, HTTP1_MAX_FIELDS_DEFAULT - 1);
        http1_parser_init(&ps, resp, NULL);
        assert_int_equal(parse_once(&ps, buf, n, &used), HTTP1_HEAD);
        assert_int_equal(ps.head.n_fields, HTTP1_MAX_FIELDS_DEFAULT);
        http1_parser_free(&ps);
        n = many_fields(buf, sizeof(buf), resp, HTTP1_MAX_FIELDS_DEFAULT);
        http1_parser_init(&ps, resp, NULL);
        assert_int_equal(parse_once(&ps, buf, n, &used),
                         resp ? -HTTP1_E_RESPONSE : -HTTP1_E_TOO_LARGE);
        assert_string_equal(ps.why, "too many header fields");
        http1_parser_free(&ps);
    }
    struct http1_limits lim = {.max_fields = 3};
    size_t n = many_fields(buf, sizeof(buf), false, 3);
    http1_parser_init(&ps, false, &lim);
    assert_int_equal(parse_once(&ps, buf, n, &used), -HTTP1_E_TOO_LARGE);
    http1_parser_free(&ps);
}

static void
test_trailer_caps(void **state)
{
    static const char head[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    struct http1_limits lim = {.max_trailers = 2, .max_trailer = 20};
    char out[OUT_MAX], in[256];
    (void)state;

    snprintf(in, sizeof(in), "%sA: 1\r\nB: 2\r\n\r\n", head);
    transcript(in, strlen(in), false, NULL, &lim, 0, out);
    assert_string_equal(out, "HEAD POST / v1 f2 chunked ka1 | END '' t:A=1 t:B=2");
    snprintf(in, sizeof(in), "%sA: 1\r\nB: 2\r\nC: 3\r\n\r\n", head);
    transcript(in, strlen(in), false, NULL, &lim, 0, out);
    assert_string_equal(out, "HEAD POST / v1 f2 chunked ka1 | ERR 431 too many trailer fields");
    snprintf(in, sizeof(in), "%sA: 123456789012345\r\n\r\n", head);
    transcript(in, strlen(in), false, NULL, &lim, 1, out);
    assert_string_equal(out, "HEAD POST / v1 f2 chunked ka1 | ERR 431 trailer section too large");
}

static void
test_chunk_ext_cap(void **state)
{
    struct http1_limits lim = {.max_chunk_ext = 8};
    char out[OUT_MAX];
    static const char ok[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "1;1234567\r\nx\r\n0\r\n\r\n";
    static const char bad[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "1;12345678\r\nx\r\n0\r\n\r\n";
    (void)state;

    transcript(ok, sizeof(ok) - 1, false, NULL, &lim, 0, out);
    assert_string_equal(out, "HEAD POST / v1 f2 chunked ka1 | END 'x'");
    transcript(bad, sizeof(bad) - 1, false, NULL, &lim, 0, out);
    assert_string_equal(out, "HEAD POST / v1 f2 chunked ka1 | ERR 400 chunk extension too long");
}

/* Spans are offsets: the head bytes can be copied away and read there. */
static void
test_spans_are_offsets(void **state)
{
    static const char in[] = "PATCH /x?y=1 HTTP/1.1\r\nHost: h.example\r\nUpgrade: websocket\r\n"
                             "Connection: keep-alive, Upgrade\r\nExpect: 100-Continue\r\n"
                             "Content-Length: 1\r\n\r\nZ";
    struct http1_parser ps;
    size_t used;
    (void)state;

    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, in, sizeof(in) - 1, &used), HTTP1_HEAD);
    char *copy = xmalloc(used);
    memcpy(copy, in, used);
    const struct http1_head *h = &ps.head;
    assert_memory_equal(http1_at(copy, h->method), "PATCH", 5);
    assert_memory_equal(http1_at(copy, h->target), "/x?y=1", 6);
    assert_int_equal(h->host, 0);
    assert_memory_equal(http1_at(copy, h->fields[h->host].value), "h.example", 9);
    assert_int_equal(h->upgrade, 1);
    assert_true(h->conn_upgrade && h->conn_keep_alive && !h->conn_close);
    assert_true(h->expect_continue);
    assert_int_equal(h->form, HTTP1_FORM_ORIGIN);
    assert_int_equal(http1_find(h->fields, h->n_fields, copy, "content-LENGTH", 0), 4);
    assert_int_equal(http1_find(h->fields, h->n_fields, copy, "host", 1), -1);
    free(copy);
    http1_parser_free(&ps);
}

/* used = whole messages; a pipelined request's bytes are never taken early. */
static void
test_pipelining_used(void **state)
{
    static const char in[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t one = (sizeof(in) - 1) / 2, used;
    struct http1_parser ps;
    struct http1_span d;
    (void)state;

    http1_parser_init(&ps, false, NULL);
    assert_int_equal(http1_parse(&ps, in, sizeof(in) - 1, &used, &d), HTTP1_HEAD);
    assert_int_equal(used, one);
    assert_int_equal(http1_parse(&ps, in + one, one, &used, &d), HTTP1_END);
    assert_int_equal(used, 0);
    assert_int_equal(http1_parse(&ps, in + one, one, &used, &d), HTTP1_HEAD);
    assert_int_equal(used, one);
    assert_memory_equal(http1_at(in + one, ps.head.target), "/2", 2);
    assert_int_equal(http1_parse(&ps, in + 2 * one, 0, &used, &d), HTTP1_END);
    assert_int_equal(http1_parse_eof(&ps), HTTP1_MORE); /* idle: a clean close */
    http1_parser_free(&ps);
}

/* Expect: 100-continue with a body: the head comes before any body byte. */
static void
test_expect_continue(void **state)
{
    static const char in[] = "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                             "Content-Length: 3\r\n\r\n";
    struct http1_parser ps;
    struct http1_span d;
    size_t used;
    (void)state;

    http1_parser_init(&ps, false, NULL);
    assert_int_equal(http1_parse(&ps, in, sizeof(in) - 1, &used, &d), HTTP1_HEAD);
    assert_true(ps.head.expect_continue);
    assert_int_equal(http1_parse(&ps, "", 0, &used, &d), HTTP1_MORE);
    assert_int_equal(http1_parse(&ps, "abc", 3, &used, &d), HTTP1_DATA);
    assert_int_equal(d.len, 3);
    assert_int_equal(http1_parse(&ps, "", 0, &used, &d), HTTP1_END);
    http1_parser_free(&ps);
    /* HTTP/1.0 has no 100 Continue */
    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 40, &used),
                     HTTP1_HEAD);
    assert_false(ps.head.expect_continue);
    http1_parser_free(&ps);
}

/* The request side switches to raw when the other side accepted the upgrade. */
static void
test_request_raw(void **state)
{
    static const char in[] = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n\x81\x00";
    struct http1_parser ps;
    struct http1_span d;
    size_t used;
    (void)state;

    http1_parser_init(&ps, false, NULL);
    assert_int_equal(http1_parse(&ps, in, sizeof(in) - 1, &used, &d), HTTP1_HEAD);
    assert_true(ps.head.conn_upgrade);
    assert_int_equal(http1_parse(&ps, in + used, 2, &used, &d), HTTP1_END);
    http1_parser_raw(&ps);
    assert_int_equal(http1_parse(&ps, "\x81\x00", 2, &used, &d), HTTP1_RAW);
    assert_int_equal(used, 0);
    assert_int_equal(http1_parse_eof(&ps), HTTP1_MORE);
    http1_parser_free(&ps);
}

static void
test_error_status(void **state)
{
    (void)state;
    assert_int_equal(http1_error_status(-HTTP1_E_SYNTAX), 400);
    assert_int_equal(http1_error_status(-HTTP1_E_TOO_LARGE), 431);
    assert_int_equal(http1_error_status(-HTTP1_E_CODING), 501);
    assert_int_equal(http1_error_status(-HTTP1_E_VERSION), 505);
    assert_int_equal(http1_error_status(-HTTP1_E_RESPONSE), 502);
    assert_int_equal(http1_error_status(-HTTP1_E_TRUNCATED), 400);
}

static void
test_list_helpers(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Private, close\r\n"
                             "Keep-Alive: 5\r\nX-Private: s\r\nTE: trailers\r\nAccept: */*\r\n\r\n";
    struct http1_parser ps;
    size_t used;
    (void)state;

    assert_true(http1_list_has("a, Close ,b", 11, "close"));
    assert_true(http1_list_has(",,upgrade", 9, "UPGRADE"));
    assert_false(http1_list_has("closed", 6, "close"));
    assert_false(http1_list_has("", 0, "close"));
    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, in, sizeof(in) - 1, &used), HTTP1_HEAD);
    bool hop[6];
    for (size_t i = 0; i < 6; i++)
        hop[i] = http1_hop_by_hop(&ps.head, in, i);
    /* Host, Connection, Keep-Alive, X-Private (named by Connection), TE, Accept */
    assert_false(hop[0]);
    assert_true(hop[1] && hop[2] && hop[3] && hop[4]);
    assert_false(hop[5]);
    assert_false(ps.head.keep_alive);
    http1_parser_free(&ps);
}

static void
test_write_status_lines(void **state)
{
    struct buf b;
    (void)state;

    buf_init(&b, 1024);
    assert_int_equal(http1_put_status_line(&b, 1, 200, NULL, 0), 0);
    assert_int_equal(http1_put_status_line(&b, 1, 431, NULL, 0), 0);
    assert_int_equal(http1_put_status_line(&b, 0, 299, NULL, 0), 0);
    assert_int_equal(http1_put_status_line(&b, 1, 503, "", 0), 0);
    assert_int_equal(http1_put_status_line(&b, 1, 403, "RBAC: access denied", 19), 0);
    const char *want = "HTTP/1.1 200 OK\r\nHTTP/1.1 431 Request Header Fields Too Large\r\n"
                       "HTTP/1.0 299 Success\r\nHTTP/1.1 503 Service Unavailable\r\n"
                       "HTTP/1.1 403 RBAC: access denied\r\n";
    assert_int_equal(buf_len(&b), strlen(want));
    assert_memory_equal(buf_head(&b), want, strlen(want));
    /* refused: bad status, CR/LF in the reason, bad version */
    assert_int_equal(http1_put_status_line(&b, 1, 99, NULL, 0), -EINVAL);
    assert_int_equal(http1_put_status_line(&b, 1, 600, NULL, 0), -EINVAL);
    assert_int_equal(http1_put_status_line(&b, 1, 200, "OK\r\nX: y", 9), -EINVAL);
    assert_int_equal(http1_put_status_line(&b, 2, 200, NULL, 0), -EINVAL);
    assert_int_equal(buf_len(&b), strlen(want));
    for (int s = 100; s < 600; s++)
        assert_true(http1_reason(s)[0] != '\0');
    buf_cleanup(&b);
}

static void
test_write_fields_refuse_injection(void **state)
{
    struct buf b;
    (void)state;

    buf_init(&b, 1024);
    assert_int_equal(http1_put_request_line(&b, "GET", 3, "/a?b", 4, 1), 0);
    assert_int_equal(http1_put_field(&b, "Host", 4, "h", 1), 0);
    assert_int_equal(http1_put_field(&b, "X-Empty", 7, "", 0), 0);
    assert_int_equal(http1_put_crlf(&b), 0);
    const char *want = "GET /a?b HTTP/1.1\r\nHost: h\r\nX-Empty: \r\n\r\n";
    assert_int_equal(buf_len(&b), strlen(want));
    assert_memory_equal(buf_head(&b), want, strlen(want));
    assert_int_equal(http1_put_field(&b, "X", 1, "a\r\nTransfer-Encoding: chunked", 29), -EINVAL);
    assert_int_equal(http1_put_field(&b, "X", 1, "a\nb", 3), -EINVAL);
    assert_int_equal(http1_put_field(&b, "X", 1, "a\0b", 3), -EINVAL);
    assert_int_equal(http1_put_field(&b, "X Y", 3, "v", 1), -EINVAL);
    assert_int_equal(http1_put_field(&b, "X:", 2, "v", 1), -EINVAL);
    assert_int_equal(http1_put_field(&b, "", 0, "v", 1), -EINVAL);
    assert_int_equal(http1_put_request_line(&b, "G T", 3, "/", 1, 1), -EINVAL);
    assert_int_equal(http1_put_request_line(&b, "GET", 3, "/ HTTP/1.1\r\n", 12, 1), -EINVAL);
    assert_int_equal(http1_put_request_line(&b, "GET", 3, "", 0, 1), -EINVAL);
    assert_int_equal(buf_len(&b), strlen(want));
    buf_cleanup(&b);
}

/* All or nothing when the buffer's cap is reached. */
static void
test_write_atomic_at_cap(void **state)
{
    struct buf b;
    (void)state;

    buf_init(&b, 20);
    assert_int_equal(http1_put_field(&b, "Name", 4, "value", 5), 0); /* 13 bytes */
    assert_int_equal(http1_put_field(&b, "Name", 4, "value", 5), -MESH_ELIMIT);
    assert_int_equal(buf_len(&b), 13);
    assert_int_equal(http1_put_chunk(&b, "abcdef", 6), -MESH_ELIMIT); /* 11 bytes */
    assert_int_equal(buf_len(&b), 13);
    assert_int_equal(http1_put_chunk(&b, "ab", 2), 0); /* 7 bytes */
    assert_int_equal(buf_len(&b), 20);
    buf_cleanup(&b);
}

/* What the serializer writes, the parser reads back the same. */
static void
test_write_chunked_round_trip(void **state)
{
    static const char tr[] = "Grpc-Status0Grpc-Messageok fine";
    const struct http1_field t[] = {{{0, 11}, {11, 1}}, {{12, 12}, {24, 7}}};
    char big[300], out[OUT_MAX];
    struct buf b;
    (void)state;

    (void)tr;
    memset(big, 'q', sizeof(big));
    buf_init(&b, 4096);
    assert_int_equal(http1_put_status_line(&b, 1, 200, NULL, 0), 0);
    assert_int_equal(http1_put_field(&b, "Transfer-Encoding", 17, "chunked", 7), 0);
    assert_int_equal(http1_put_crlf(&b), 0);
    assert_int_equal(http1_put_chunk(&b, "hello ", 6), 0);
    assert_int_equal(http1_put_chunk_size(&b, sizeof(big)), 0);
    assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(http1_put_crlf(&b), 0);
    assert_int_equal(http1_put_chunk_size(&b, 0), -EINVAL);
    assert_int_equal(http1_put_chunk(&b, "", 0), -EINVAL);
    assert_int_equal(http1_put_last_chunk(&b, t, 2, tr), 0);
    assert_memory_equal(buf_head(&b) + 47, "6\r\nhello \r\n12c\r\n", 16);
    transcript(buf_head(&b), buf_len(&b), true, "GET", NULL, 3, out);
    assert_true(strncmp(out, "HEAD 200 'OK' v1 f1 chunked ka1 | END 'hello qqq", 48) == 0);
    assert_non_null(strstr(out, "qqq' t:Grpc-Status=0 t:Grpc-Message=ok fine"));
    buf_cleanup(&b);
}

/* A proxy's re-serialization: the fields in order, hop-by-hop ones left out on request. */
static void
test_write_fields_of_a_head(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\n"
                             "X-Hop: 1\r\nAccept:  */* \r\nUpgrade: h2c\r\n\r\n";
    struct http1_parser ps;
    struct buf b;
    size_t used;
    (void)state;

    http1_parser_init(&ps, false, NULL);
    assert_int_equal(parse_once(&ps, in, sizeof(in) - 1, &used), HTTP1_HEAD);
    buf_init(&b, 1024);
    assert_int_equal(http1_put_fields(&b, &ps.head, in, true), 0);
    assert_int_equal(buf_len(&b), strlen("Host: h\r\nAccept: */*\r\n"));
    assert_memory_equal(buf_head(&b), "Host: h\r\nAccept: */*\r\n", buf_len(&b));
    buf_consume(&b, buf_len(&b));
    assert_int_equal(http1_put_fields(&b, &ps.head, in, false), 0);
    assert_int_equal(buf_len(&b), sizeof(in) - 1 - 16 - 2 - 2); /* no request line, blank line, OWS */
    buf_cleanup(&b);
    buf_init(&b, 20);
    assert_int_equal(http1_put_fields(&b, &ps.head, in, false), -MESH_ELIMIT);
    assert_int_equal(buf_len(&b), 0);
    buf_cleanup(&b);
    http1_parser_free(&ps);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_cap_default),
        cmocka_unit_test(test_head_cap_param),
        cmocka_unit_test(test_field_count_cap),
        cmocka_unit_test(test_trailer_caps),
        cmocka_unit_test(test_chunk_ext_cap),
        cmocka_unit_test(test_spans_are_offsets),
        cmocka_unit_test(test_pipelining_used),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_request_raw),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_list_helpers),
        cmocka_unit_test(test_write_status_lines),
        cmocka_unit_test(test_write_fields_refuse_injection),
        cmocka_unit_test(test_write_atomic_at_cap),
        cmocka_unit_test(test_write_chunked_round_trip),
        cmocka_unit_test(test_write_fields_of_a_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
