/*
 * test_http1.c - lib/http1's codec. Every table case is its own cmocka test
 * and runs three times, the input given whole, byte by byte, and in pieces of
 * 7: the transcripts (events, heads, body bytes, trailers, errors) must be the
 * same and equal the expected one.
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

#define OUT_MAX 4096

/* Appends printf output to |out|. */
static void __attribute__((format(printf, 2, 3)))
say(char *out, const char *fmt, ...)
{
    size_t n = strlen(out);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, OUT_MAX - n, fmt, ap);
    va_end(ap);
}

static const char *
body_name(enum http1_body b)
{
    static const char *const names[] = {"none", "len", "chunked", "close"};
    return names[b];
}

static void
say_head(char *out, const struct http1_parser *ps, const char *p)
{
    const struct http1_head *h = &ps->head;

    if (ps->response)
        say(out, "HEAD %u '%.*s'", h->status, (int)h->reason.len, p + h->reason.off);
    else
        say(out, "HEAD %.*s %.*s", (int)h->method.len, p + h->method.off, (int)h->target.len,
            p + h->target.off);
    say(out, " v%u f%u %s", h->minor, h->n_fields, body_name(h->body));
    if (h->body == HTTP1_BODY_LENGTH)
        say(out, ":%llu", (unsigned long long)h->content_length);
    say(out, " ka%d", h->keep_alive);
}

/*
 * Feeds |in| (|n| bytes) as a connection would, |step| bytes more per read (0:
 * all at once), and writes the transcript into |out|. |method| is the request
 * the responses answer (response parsers).
 */
static void
transcript(const char *in, size_t n, bool response, const char *method,
           const struct http1_limits *lim, size_t step, char *out)
{
    struct http1_parser ps;
    char body[OUT_MAX] = "";
    size_t start = 0, avail = step ? 0 : n, blen = 0;
    int guard = 0;

    out[0] = '\0';
    http1_parser_init(&ps, response, lim);
    if (response)
        http1_parser_expect(&ps, method, strlen(method));
    for (;;) {
        struct http1_span d;
        size_t used;
        int rc = http1_parse(&ps, in + start, avail - start, &used, &d);
        assert_true(++guard < 100000);
        assert_true(used <= avail - start);
        if (rc < 0) {
            say(out, "%sERR %d %s", out[0] ? " | " : "", http1_error_status(rc), ps.why);
            break;
        }
        if (rc == HTTP1_HEAD) {
            say(out, "%s", out[0] ? " | " : "");
            say_head(out, &ps, in + start);
        } else if (rc == HTTP1_DATA) {
            assert_true(d.len > 0 && d.off + d.len <= used);
            assert_true(blen + d.len < sizeof(body));
            memcpy(body + blen, in + start + d.off, d.len);
            body[blen += d.len] = '\0';
        } else if (rc == HTTP1_END) {
            say(out, " | END '%s'", body);
            for (unsigned i = 0; i < ps.n_trailers; i++)
                say(out, " t:%.*s=%.*s", (int)ps.trailers[i].name.len,
                    in + start + ps.trailers[i].name.off, (int)ps.trailers[i].value.len,
                    in + start + ps.trailers[i].value.off);
            blen = 0;
            body[0] = '\0';
            if (response && ps.head.status >= 200)
                http1_parser_expect(&ps, method, strlen(method));
        } else if (rc == HTTP1_RAW) {
            say(out, " | RAW '%.*s'", (int)(n - start), in + start); /* the rest is not HTTP */
            break;
        }
        start += used;
        if (rc == HTTP1_MORE) {
            if (avail < n) {
                avail = avail + step > n ? n : avail + step;
                continue;
            }
            rc = http1_parse_eof(&ps);
            if (rc == HTTP1_END)
                say(out, " | EOF-END '%s'", body);
            else if (rc < 0)
                say(out, "%sEOF-ERR %s", out[0] ? " | " : "", ps.why);
            break;
        }
    }
    http1_parser_free(&ps);
}

struct codec_case {
    const char *name;
    bool response;
    const char *method; /* responses: the request's method */
    const char *in;
    size_t len;
    const char *want;
};

#define REQ(n, i, w)     {n, false, NULL, i, sizeof(i) - 1, w}
#define RESP(n, m, i, w) {n, true, m, i, sizeof(i) - 1, w}

/* clang-format off */
static const struct codec_case cases[] = {
    /* requests that pass */
    REQ("get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD GET / v1 f1 none ka1 | END ''"),
    REQ("http/1.0 flagged, no Host needed, closes", "GET /old HTTP/1.0\r\n\r\n",
        "HEAD GET /old v0 f0 none ka0 | END ''"),
    REQ("http/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "HEAD GET / v0 f1 none ka1 | END ''"),
    REQ("connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n",
        "HEAD GET / v1 f2 none ka0 | END ''"),
    REQ("content-length body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "HEAD POST /p v1 f2 len:5 ka1 | END 'hello'"),
    REQ("content-length 0", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "HEAD POST /p v1 f2 none ka1 | END ''"),
    REQ("content-length leading zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\nabcdefg",
        "HEAD POST / v1 f2 len:7 ka1 | END 'abcdefg'"),
    REQ("same content-length twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        "HEAD POST / v1 f3 len:2 ka1 | END 'ab'"),
    REQ("chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | END 'hello world'"),
    REQ("chunked, upper-case hex and name", "POST / HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | END '0123456789'"),
    REQ("chunk extensions", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;name=\"v\";x\r\nabc\r\n0 ;last\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | END 'abc'"),
    REQ("trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nX-Sum: 12\r\nX-B:\t b \r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | END 'x' t:X-Sum=12 t:X-B=b"),
    REQ("pipelined three", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nzGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD GET /1 v1 f1 none ka1 | END '' | HEAD POST /2 v1 f2 len:1 ka1 | END 'z' | HEAD GET /3 v1 f1 none ka1 | END ''"),
    REQ("pipelined after chunked with trailers", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD POST /a v1 f2 chunked ka1 | END 'hi' t:T=1 | HEAD GET /b v1 f1 none ka1 | END ''"),
    REQ("empty lines before a request", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD GET / v1 f1 none ka1 | END ''"),
    REQ("lower-case method is a token of its own", "get / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD get / v1 f1 none ka1 | END ''"),
    REQ("lower-case head is not HEAD", "head / HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD head / v1 f1 none ka1 | END ''"),
    REQ("extension method", "M-SEARCH! /x HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD M-SEARCH! /x v1 f1 none ka1 | END ''"),
    REQ("absolute-form", "GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\n\r\n",
        "HEAD GET http://a.example/x?y v1 f1 none ka1 | END ''"),
    REQ("asterisk-form for OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "HEAD OPTIONS * v1 f1 none ka1 | END ''"),
    REQ("authority-form for CONNECT", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        "HEAD CONNECT a.example:443 v1 f1 none ka1 | END ''"),
    REQ("CONNECT to an IPv6 literal", "CONNECT [2001:db8::1]:8080 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n",
        "HEAD CONNECT [2001:db8::1]:8080 v1 f1 none ka1 | END ''"),
    REQ("obs-text and tabs in values", "GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\x80\xff\r\n\r\n",
        "HEAD GET / v1 f2 none ka1 | END ''"),
    REQ("empty Host is allowed", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
        "HEAD GET / v1 f1 none ka1 | END ''"),
    REQ("websocket upgrade request", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "HEAD GET /ws v1 f3 none ka1 | END ''"),
    REQ("truncated head at close", "GET / HTTP/1.1\r\nHost: a\r\n",
        "EOF-ERR connection closed inside a message"),
    REQ("truncated body at close", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc",
        "HEAD POST / v1 f2 len:9 ka1 | EOF-ERR connection closed inside a message"),
    REQ("truncated chunked body at close", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HEAD POST / v1 f2 chunked ka1 | EOF-ERR connection closed inside a message"),

    /* smuggling forms and malformed requests */
    REQ("CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "ERR 400 Content-Length with Transfer-Encoding"),
    REQ("TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "ERR 400 Content-Length with Transfer-Encoding"),
    REQ("two different content-lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "ERR 400 Content-Length values differ"),
    REQ("content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
        "ERR 400 bad Content-Length"),
    REQ("content-length sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
        "ERR 400 bad Content-Length"),
    REQ("content-length negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "ERR 400 bad Content-Length"),
    REQ("content-length hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        "ERR 400 bad Content-Length"),
    REQ("content-length inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n",
        "ERR 400 bad Content-Length"),
    REQ("content-length empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
        "ERR 400 empty Content-Length"),
    REQ("content-length overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n",
        "ERR 400 Content-Length too large"),
    REQ("content-length 2^63", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n",
        "ERR 400 Content-Length too large"),
    REQ("content-length 2^63-1 accepted", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
        "HEAD POST / v1 f2 len:9223372036854775807 ka1 | EOF-ERR connection closed inside a message"),
    REQ("TE gzip is 501", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "ERR 501 transfer coding not implemented"),
    REQ("TE gzip, chunked is 501", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "ERR 501 transfer coding not implemented"),
    REQ("TE identity is 501", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
        "ERR 501 transfer coding not implemented"),
    REQ("TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "ERR 400 chunked applied twice"),
    REQ("TE chunked in two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "ERR 400 chunked applied twice"),
    REQ("TE trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
        "ERR 400 bad Transfer-Encoding"),
    REQ("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        "ERR 400 bad Transfer-Encoding"),
    REQ("TE quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
        "ERR 400 bad Transfer-Encoding"),
    REQ("TE with parameters", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
        "ERR 400 bad Transfer-Encoding"),
    REQ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "ERR 400 Transfer-Encoding in HTTP/1.0"),
    REQ("space before the colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
        "ERR 400 whitespace before a colon"),
    REQ("tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
        "ERR 400 whitespace before a colon"),
    REQ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
        "ERR 400 obs-fold or whitespace before a field"),
    REQ("obs-fold hiding TE", "POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\tTransfer-Encoding: chunked\r\n\r\n",
        "ERR 400 obs-fold or whitespace before a field"),
    REQ("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "ERR 400 obs-fold or whitespace before a field"),
    REQ("bare LF ends a field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        "ERR 400 bare LF"),
    REQ("bare LF ends the head", "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "ERR 400 bare LF"),
    REQ("bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "ERR 400 bad HTTP version"),
    REQ("bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        "ERR 400 bare CR"),
    REQ("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        "ERR 400 control character in a field value"),
    REQ("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n",
        "ERR 400 control character in a field value"),
    REQ("escape in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: \x1b[0m\r\n\r\n",
        "ERR 400 control character in a field value"),
    REQ("NUL in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n",
        "ERR 400 bad field name"),
    REQ("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
        "ERR 400 bad field name"),
    REQ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        "ERR 400 bad field name"),
    REQ("bracket in a name", "GET / HTTP/1.1\r\nHost: a\r\nX[1]: b\r\n\r\n",
        "ERR 400 bad field name"),
    REQ("missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n",
        "ERR 400 HTTP/1.1 request without Host"),
    REQ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        "ERR 400 more than one Host"),
    REQ("two Hosts in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        "ERR 400 more than one Host"),
    REQ("bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "ERR 400 bad Host"),
    REQ("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "ERR 400 bad Host"),
    REQ("method with a bad character", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad method"),
    REQ("method with 8-bit bytes", "G\xc3\xa9T / HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad method"),
    REQ("binary start refused at once", "\x16\x03\x01\x02\x00",
        "ERR 400 bad method"),
    REQ("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad method"),
    REQ("two spaces after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("control byte in the target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("8-bit target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 * target outside OPTIONS"),
    REQ("authority-form outside CONNECT", "GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("CONNECT with a path", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 CONNECT without host:port"),
    REQ("CONNECT without a port", "CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 CONNECT without host:port"),
    REQ("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("no version", "GET /\r\nHost: a\r\n\r\n",
        "ERR 400 bad request target"),
    REQ("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bad HTTP version"),
    REQ("space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        "ERR 400 bad HTTP version"),
    REQ("HTTP/2.0 is 505", "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "ERR 505 HTTP version not supported"),
    REQ("HTTP/1.2 is 505", "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        "ERR 505 HTTP version not supported"),
    REQ("HTTP/0.9 is 505", "GET / HTTP/0.9\r\n\r\n",
        "ERR 505 HTTP version not supported"),
    REQ("version with two digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
        "ERR 400 bad HTTP version"),
    REQ("bare CR before a request", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "ERR 400 bare CR"),
    REQ("chunk size not hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk size empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk size negative", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk size 0x prefix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk size overflow", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 chunk size too large"),
    REQ("chunk size then space without extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk line bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk size"),
    REQ("chunk extension bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;\nxx\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk extension"),
    REQ("chunk data longer than its size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 chunk data longer than its size"),
    REQ("chunk data ended by bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\n0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 chunk data longer than its size"),
    REQ("chunk data CR without LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\rX0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bad chunk line ending"),
    REQ("trailer obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n 2\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 obs-fold or whitespace before a field"),
    REQ("trailer NUL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: \0\r\n\r\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 control character in a field value"),
    REQ("trailer bare LF end", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
        "HEAD POST / v1 f2 chunked ka1 | ERR 400 bare LF"),

    /* responses */
    RESP("200 with length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
         "HEAD 200 'OK' v1 f1 len:2 ka1 | END 'ok'"),
    RESP("empty reason phrase", "GET", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
         "HEAD 200 '' v1 f1 none ka1 | END ''"),
    RESP("no space after the status", "GET", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n",
         "HEAD 404 '' v1 f1 none ka1 | END ''"),
    RESP("reason with spaces and obs-text", "GET", "HTTP/1.1 500 Bad \xe9tat  x\r\nContent-Length: 0\r\n\r\n",
         "HEAD 500 'Bad \xe9tat  x' v1 f1 none ka1 | END ''"),
    RESP("chunked with trailers", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 0\r\n\r\n",
         "HEAD 200 'OK' v1 f1 chunked ka1 | END 'abc' t:Grpc-Status=0"),
    RESP("read until close", "GET", "HTTP/1.1 200 OK\r\n\r\nall the rest",
         "HEAD 200 'OK' v1 f0 close ka0 | EOF-END 'all the rest'"),
    RESP("HTTP/1.0 read until close", "GET", "HTTP/1.0 200 OK\r\n\r\nold",
         "HEAD 200 'OK' v0 f0 close ka0 | EOF-END 'old'"),
    RESP("gzip without chunked: until close", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
         "HEAD 200 'OK' v1 f1 close ka0 | EOF-END 'zz'"),
    RESP("gzip, chunked: chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
         "HEAD 200 'OK' v1 f1 chunked ka1 | END 'zz'"),
    RESP("HEAD response has no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
         "HEAD 200 'OK' v1 f1 none ka1 | END '' | HEAD 200 'OK' v1 f1 none ka1 | END ''"),
    RESP("HEAD response chunked has no body", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
         "HEAD 200 'OK' v1 f1 none ka1 | END ''"),
    RESP("204 has no body", "GET", "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
         "HEAD 204 'No Content' v1 f0 none ka1 | END '' | HEAD 200 'OK' v1 f1 len:1 ka1 | END 'x'"),
    RESP("304 ignores its Content-Length", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
         "HEAD 304 'Not Modified' v1 f1 none ka1 | END ''"),
    RESP("100 Continue then the answer", "POST", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
         "HEAD 100 'Continue' v1 f0 none ka1 | END '' | HEAD 201 'Created' v1 f1 len:2 ka1 | END 'ok'"),
    RESP("103 then HEAD answer keeps the method", "HEAD", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
         "HEAD 103 'Early Hints' v1 f1 none ka1 | END '' | HEAD 200 'OK' v1 f1 none ka1 | END ''"),
    RESP("101 hands over the rest raw", "GET", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
         "HEAD 101 'Switching Protocols' v1 f2 none ka0 | END '' | RAW '\x81\x02hi'"),
    RESP("CONNECT 200 opens a tunnel", "CONNECT", "HTTP/1.1 200 Connection Established\r\n\r\nSSH-2.0",
         "HEAD 200 'Connection Established' v1 f0 none ka0 | END '' | RAW 'SSH-2.0'"),
    RESP("CONNECT 407 is a response", "CONNECT", "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 1\r\n\r\nx",
         "HEAD 407 'Proxy Authentication Required' v1 f1 len:1 ka1 | END 'x'"),
    RESP("pipelined responses", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n",
         "HEAD 200 'OK' v1 f1 len:1 ka1 | END 'a' | HEAD 200 'OK' v1 f1 chunked ka1 | END 'b'"),
    RESP("connection close response", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
         "HEAD 200 'OK' v1 f2 none ka0 | END ''"),
    RESP("response CL and TE", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "ERR 502 Content-Length with Transfer-Encoding"),
    RESP("response different CLs", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\n",
         "ERR 502 Content-Length values differ"),
    RESP("response bad CL", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3;\r\n\r\n",
         "ERR 502 bad Content-Length"),
    RESP("response obs-fold", "GET", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
         "ERR 502 obs-fold or whitespace before a field"),
    RESP("response bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
         "ERR 502 bad reason phrase"),
    RESP("response NUL", "GET", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n",
         "ERR 502 control character in a field value"),
    RESP("response bad chunk size", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfoo\r\n",
         "HEAD 200 'OK' v1 f1 chunked ka1 | ERR 502 bad chunk size"),
    RESP("response chunked twice", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
         "ERR 502 chunked applied twice"),
    RESP("response TE in HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
         "ERR 502 Transfer-Encoding in HTTP/1.0"),
    RESP("status of two digits", "GET", "HTTP/1.1 20 OK\r\n\r\n",
         "ERR 502 bad status code"),
    RESP("status 099", "GET", "HTTP/1.1 099 X\r\n\r\n",
         "ERR 502 bad status code"),
    RESP("status 600", "GET", "HTTP/1.1 600 X\r\n\r\n",
         "ERR 502 bad status code"),
    RESP("status of four digits", "GET", "HTTP/1.1 2000 OK\r\n\r\n",
         "ERR 502 bad status line"),
    RESP("not HTTP", "GET", "hello there\r\n\r\n",
         "ERR 502 bad HTTP version"),
    RESP("HTTP/2 response version", "GET", "HTTP/2.0 200 OK\r\n\r\n",
         "ERR 502 HTTP version not supported"),
    RESP("empty lines before a response", "GET", "\r\nHTTP/1.1 200 OK\r\n\r\n",
         "ERR 502 bad HTTP version"),
    RESP("truncated response head", "GET", "HTTP/1.1 200 OK\r\nContent-Le",
         "EOF-ERR connection closed inside a message"),
    RESP("truncated CL response", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
         "HEAD 200 'OK' v1 f1 len:10 ka1 | EOF-ERR connection closed inside a message"),
};
/* clang-format on */

static void
test_case(void **state)
{
    const struct codec_case *c = *state;
    size_t n = c->len;
    static char whole[OUT_MAX], split[OUT_MAX];

    transcript(c->in, n, c->response, c->method, NULL, 0, whole);
    if (strcmp(whole, c->want) != 0)
        fail_msg("%s\n got: %s\nwant: %s", c->name, whole, c->want);
    for (size_t step = 1; step <= 7; step += 6) {
        transcript(c->in, n, c->response, c->method, NULL, step, split);
        if (strcmp(split, whole) != 0)
            fail_msg("%s, %zu bytes at a time\n got: %s\nwant: %s", c->name, step, split, whole);
    }
}

/* Every split of a pipelined stream in two, and in three around it, parses the same. */
static void
split_everywhere(const char *in, bool response, const char *method)
{
    static char whole[OUT_MAX], got[OUT_MAX];
    size_t n = strlen(in);
    char *copy = xmalloc(n);

    memcpy(copy, in, n);
    transcript(copy, n, response, method, NULL, 0, whole);
    for (size_t step = 1; step < n; step++) {
        transcript(copy, n, response, method, NULL, step, got);
        if (strcmp(got, whole) != 0)
            fail_msg("pieces of %zu\n got: %s\nwant: %s", step, got, whole);
    }
    free(copy);
}

static void
test_split_requests(void **state)
{
    (void)state;
    split_everywhere("\r\nPOST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                     "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3;e=1\r\nxyz\r\n10\r\n0123456789abcdef\r\n0\r\nT-A: 1\r\nT-B:  two \r\n\r\n"
                     "GET /c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                     "GET /d HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n",
                     false, NULL);
}

static void
test_split_responses(void **state)
{
    (void)state;
    split_everywhere("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                     "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n"
                     "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nT: v\r\n\r\n"
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\nPRI * HTTP/2.0",
                     true, "GET");
    split_everywhere("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody until close", true, "POST");
}

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

int
main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_split_requests),
        cmocka_unit_test(test_split_responses),
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
    };
    size_t n = ARRAY_LEN(cases) + ARRAY_LEN(fixed);
    struct CMUnitTest *tests = xcalloc(n, sizeof(*tests));

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_case;
        tests[i].initial_state = (void *)&cases[i];
    }
    memcpy(tests + ARRAY_LEN(cases), fixed, sizeof(fixed));
    int rc = _cmocka_run_group_tests("test_http1", tests, n, NULL, NULL);
    free(tests);
    return rc;
}
