/*
 * test_http1.c - lib/http1's parser, table-driven. Every case is its own
 * cmocka test and runs three times, the input given whole, byte by byte, and
 * in pieces of 7: the transcripts (events, heads, body bytes, trailers,
 * errors) must be the same and equal the expected one. Then whole pipelined
 * streams split at every point. API details: test_http1_api.c.
 */
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
#include "unit_http1.h"

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
    REQ("Transfer_Encoding with an underscore", "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
        "ERR 400 underscore in a framing field name"),
    REQ("Content_Length with an underscore", "POST / HTTP/1.1\r\nHost: a\r\nContent_length: 4\r\n\r\nabcd",
        "ERR 400 underscore in a framing field name"),
    REQ("vertical tab before TE's value", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \vchunked\r\n\r\n",
        "ERR 400 control character in a field value"),
    REQ("vertical tab in a name", "POST / HTTP/1.1\r\nHost: a\r\n\vTransfer-Encoding: chunked\r\n\r\n",
        "ERR 400 bad field name"),
    REQ("TE split across two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        "ERR 501 transfer coding not implemented"),
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

int
main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_split_requests),
        cmocka_unit_test(test_split_responses),
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
