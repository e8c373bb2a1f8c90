/* test_http1_req.c - admin ports' request heads (lib/http1's codec into fixed fields), query lookup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1/http1_req.h"

#define GOOD 1
#define MORE 0
#define BAD  (-EINVAL)

static const struct {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen */
    int rc;
    const char *method, *path, *query;
    size_t n_headers;
} req_cases[] = {
    {"minimal", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, GOOD, "GET", "/", "", 1},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"headers", "GET /config_dump HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 0, GOOD, "GET",
     "/config_dump", "", 2},
    {"query", "POST /logging?level=debug&x=1 HTTP/1.0\r\n\r\n", 0, GOOD, "POST", "/logging",
     "level=debug&x=1", 0},
    {"empty query", "GET /a? HTTP/1.0\r\n\r\n", 0, GOOD, "GET", "/a", "", 0},
    {"tab and obs-text in value", "GET / HTTP/1.0\r\nX: a\tb\x80\r\n\r\n", 0, GOOD, "GET", "/", "",
     1},
    {"empty value", "GET / HTTP/1.0\r\nX:\r\n\r\n", 0, GOOD, "GET", "/", "", 1},
    {"token method", "M-SEARCH! / HTTP/1.0\r\n\r\n", 0, GOOD, "M-SEARCH!", "/", "", 0},
    {"15-char method", "ABCDEFGHIJKLMNO / HTTP/1.0\r\n\r\n", 0, GOOD, "ABCDEFGHIJKLMNO", "/", "",
     0},
    /* incomplete: need more bytes */
    {"empty", "", 0, MORE, NULL, NULL, NULL, 0},
    {"no blank line", "GET / HTTP/1.1\r\nHost: x\r\n", 0, MORE, NULL, NULL, NULL, 0},
    {"half terminator", "GET / HTTP/1.1\r\n\r", 0, MORE, NULL, NULL, NULL, 0},
    {"bare LFs only", "GET / HTTP/1.1\n\n", 0, BAD, NULL, NULL, NULL, 0},
    /* method */
    {"bad method char", "G(T / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"empty method", " / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"16-char method", "ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"NUL in method", "GE\0T / HTTP/1.1\r\n\r\n", sizeof("GE\0T / HTTP/1.1\r\n\r\n") - 1, BAD, NULL,
     NULL, NULL, 0},
    {"8-bit method", "G\xc3\xa9T / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    /* target */
    {"asterisk target", "OPTIONS * HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"absolute target", "GET http://x/ HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"double space", "GET  / HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"control char in path", "GET /a\x01 HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"DEL in path", "GET /a\x7f HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"8-bit in query", "GET /a?\xff HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"no target", "GET HTTP/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    /* version */
    {"HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"lower-case", "GET / http/1.1\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"trailing space", "GET / HTTP/1.1 \r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"short version", "GET / HTTP/1.\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"no version", "GET /\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"LF-terminated line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    /* headers */
    {"no colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"control char in value", "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"bare LF in value", "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
    {"NUL in value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n",
     sizeof("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n") - 1, BAD, NULL, NULL, NULL, 0},
    {"NUL in name", "GET / HTTP/1.1\r\nX\0: a\r\n\r\n",
     sizeof("GET / HTTP/1.1\r\nX\0: a\r\n\r\n") - 1, BAD, NULL, NULL, NULL, 0},
    {"8-bit name", "GET / HTTP/1.1\r\nX\xe9: a\r\n\r\n", 0, BAD, NULL, NULL, NULL, 0},
};

static void
test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
        struct http1_req req;
        size_t len = req_cases[i].len ? req_cases[i].len : strlen(req_cases[i].in);
        int rc = http1_parse_request(req_cases[i].in, len, &req);
        if (rc != req_cases[i].rc)
            fail_msg("case \"%s\": got %d, want %d", req_cases[i].name, rc, req_cases[i].rc);
        if (rc != GOOD)
            continue;
        if (strcmp(req.method, req_cases[i].method) != 0 ||
            strcmp(req.path, req_cases[i].path) != 0 ||
            strcmp(req.query, req_cases[i].query) != 0 || req.n_headers != req_cases[i].n_headers ||
            req.head_len != len)
            fail_msg("case \"%s\": method=%s path=%s query=%s n_headers=%zu head_len=%zu",
                     req_cases[i].name, req.method, req.path, req.query, req.n_headers,
                     req.head_len);
    }
}

static void
test_head_len_excludes_body(void **state)
{
    static const char in[] = "GET /x HTTP/1.0\r\nA: b\r\n\r\nBODY\r\n\r\n";
    struct http1_req req;
    (void)state;

    assert_int_equal(http1_parse_request(in, sizeof(in) - 1, &req), 1);
    assert_int_equal(req.head_len, sizeof(in) - 1 - 8);
    assert_int_equal(req.n_headers, 1);
}

/* A head of |head_len| bytes: the request line, filler headers, the blank line. */
static char *
make_head(size_t head_len, size_t extra)
{
    static const char line[] = "GET / HTTP/1.0\r\n";
    char *p = malloc(head_len + extra);
    size_t n = sizeof(line) - 1;

    memcpy(p, line, n);
    /* One long header "X: aaaa...\r\n" filling up to the final CRLF. */
    memcpy(p + n, "X: ", 3);
    memset(p + n + 3, 'a', head_len - n - 3 - 4);
    memcpy(p + head_len - 4, "\r\n\r\n", 4);
    memset(p + head_len, 'z', extra);
    return p;
}

static void
test_size_limits(void **state)
{
    struct http1_req req;
    char *p;
    (void)state;

    /* Exactly HTTP1_REQ_MAX_HEAD bytes is accepted ... */
    p = make_head(HTTP1_REQ_MAX_HEAD, 100);
    assert_int_equal(http1_parse_request(p, HTTP1_REQ_MAX_HEAD + 100, &req), 1);
    assert_int_equal(req.head_len, HTTP1_REQ_MAX_HEAD);
    free(p);
    /* ... one more is refused, whether or not the rest arrived. */
    p = make_head(HTTP1_REQ_MAX_HEAD + 1, 0);
    assert_int_equal(http1_parse_request(p, HTTP1_REQ_MAX_HEAD + 1, &req), -EINVAL);
    assert_int_equal(http1_parse_request(p, HTTP1_REQ_MAX_HEAD, &req), -EINVAL);
    /* Below the cap without a terminator: wait for more. */
    assert_int_equal(http1_parse_request(p, HTTP1_REQ_MAX_HEAD - 1, &req), 0);
    free(p);

    /* Path: 1023 bytes fit, 1024 do not; the same for the query. */
    char buf[4096];
    for (int extra = 0; extra < 2; extra++) {
        size_t plen = sizeof(req.path) - 1 + (size_t)extra;
        memcpy(buf, "GET /", 5);
        memset(buf + 5, 'a', plen - 1);
        snprintf(buf + 4 + plen, sizeof(buf) - 4 - plen, " HTTP/1.0\r\n\r\n");
        int rc = http1_parse_request(buf, strlen(buf), &req);
        assert_int_equal(rc, extra ? -EINVAL : 1);
        if (rc == 1)
            assert_int_equal(strlen(req.path), plen);

        size_t qlen = sizeof(req.query) - 1 + (size_t)extra;
        memcpy(buf, "GET /?", 6);
        memset(buf + 6, 'q', qlen);
        snprintf(buf + 6 + qlen, sizeof(buf) - 6 - qlen, " HTTP/1.0\r\n\r\n");
        rc = http1_parse_request(buf, strlen(buf), &req);
        assert_int_equal(rc, extra ? -EINVAL : 1);
        if (rc == 1)
            assert_int_equal(strlen(req.query), qlen);
    }
}

static void
test_header_count_limit(void **state)
{
    char buf[HTTP1_REQ_MAX_HEAD];
    struct http1_req req;
    (void)state;

    for (int n = HTTP1_REQ_MAX_FIELDS; n <= HTTP1_REQ_MAX_FIELDS + 1; n++) {
        size_t off = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.0\r\n");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "H%d: v\r\n", i);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
        int rc = http1_parse_request(buf, off, &req);
        assert_int_equal(rc, n <= HTTP1_REQ_MAX_FIELDS ? 1 : -EINVAL);
        if (rc == 1)
            assert_int_equal(req.n_headers, (size_t)n);
    }
}

/* Every prefix of a good request asks for more; none is an error. */
static void
test_prefixes_need_more(void **state)
{
    static const char in[] = "GET /logging?level=info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    struct http1_req req;
    (void)state;

    for (size_t n = 0; n < sizeof(in) - 1; n++)
        assert_int_equal(http1_parse_request(in, n, &req), 0);
    assert_int_equal(http1_parse_request(in, sizeof(in) - 1, &req), 1);
}

static const struct {
    const char *query, *key;
    size_t outlen;
    int rc;
    const char *value;
} query_cases[] = {
    {"level=debug", "level", 64, 0, "debug"},
    {"a=1&level=warn&b=2", "level", 64, 0, "warn"},
    {"xlevel=1&level=2", "level", 64, 0, "2"},
    {"levelx=1", "level", 64, -ENOENT, NULL},
    {"level", "level", 64, -ENOENT, NULL},
    {"level=", "level", 64, 0, ""},
    {"level=a&level=b", "level", 64, 0, "a"},
    {"&&level=info&", "level", 64, 0, "info"},
    {"", "level", 64, -ENOENT, NULL},
    {NULL, "level", 64, -ENOENT, NULL},
    {"level=debug", "level", 6, 0, "debug"},
    {"level=debug", "level", 5, -EINVAL, NULL},
    {"a=1", "a", 2, 0, "1"},
    {"a=b=c", "a", 64, 0, "b=c"},
};

static void
test_query_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(query_cases) / sizeof(query_cases[0]); i++) {
        char out[64];
        memset(out, '#', sizeof(out));
        int rc =
            http1_query_get(query_cases[i].query, query_cases[i].key, out, query_cases[i].outlen);
        if (rc != query_cases[i].rc)
            fail_msg("query case %zu (%s): got %d", i, query_cases[i].query, rc);
        if (rc == 0 && strcmp(out, query_cases[i].value) != 0)
            fail_msg("query case %zu: got \"%s\"", i, out);
        if (rc != 0 && out[0] != '#' && query_cases[i].outlen > 0)
            fail_msg("query case %zu: output written on failure", i);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),        cmocka_unit_test(test_head_len_excludes_body),
        cmocka_unit_test(test_size_limits),        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_prefixes_need_more), cmocka_unit_test(test_query_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
