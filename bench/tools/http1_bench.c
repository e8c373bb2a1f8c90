/*
 * http1_bench.c - lib/http1's cost per message on this machine: a pipelined
 * stream of curl-like GETs, of 1 KiB Content-Length responses and of chunked
 * responses with trailers, parsed all at once and in 1,460-byte reads (one
 * TCP segment each, the unconsumed rest passed again), and the serializer
 * writing a response head. Prints CPU ns per message and MB/s of CPU time.
 *
 *   build/bin/http1_bench [messages]   (make build)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "buf/buf.h"
#include "http1/http1.h"
#include "http1/http1_write.h"

static const char get[] = "GET /api/v1/items?page=2&limit=50 HTTP/1.1\r\nHost: echo.demo.svc:80\r\n"
                          "User-Agent: curl/7.88.1\r\nAccept: */*\r\nX-Request-Id: "
                          "2f1e0c1a-7b9d-4c61-9b3e-5b1f2a3c4d5e\r\ntraceparent: "
                          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
                          "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU, not wall: the machine is shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* |n| copies of |msg| back to back. */
static char *
repeat(const char *msg, size_t len, size_t n)
{
    char *p = xmalloc(len * n);
    for (size_t i = 0; i < n; i++)
        memcpy(p + i * len, msg, len);
    return p;
}

/* Parses |len| bytes holding |n| messages, |read| bytes at a time (0: all). Returns seconds. */
static double
parse(const char *p, size_t len, size_t n, bool response, size_t read)
{
    struct http1_parser ps;
    size_t start = 0, avail = read ? 0 : len, ends = 0;
    double t0 = now_s();

    http1_parser_init(&ps, response, NULL);
    http1_parser_expect(&ps, "GET", 3);
    while (ends < n) {
        struct http1_span d;
        size_t used;
        int rc = http1_parse(&ps, p + start, avail - start, &used, &d);
        if (rc < 0) {
            fprintf(stderr, "parse error: %s\n", ps.why);
            exit(1);
        }
        start += used;
        if (rc == HTTP1_END) {
            ends++;
            http1_parser_expect(&ps, "GET", 3);
        } else if (rc == HTTP1_MORE) {
            if (avail == len)
                break;
            avail = avail + read > len ? len : avail + read;
        }
    }
    double t = now_s() - t0;
    http1_parser_free(&ps);
    if (ends != n) {
        fprintf(stderr, "parsed %zu of %zu messages\n", ends, n);
        exit(1);
    }
    return t;
}

static void
report(const char *what, const char *msg, size_t mlen, size_t n, bool response)
{
    char *p = repeat(msg, mlen, n);
    for (size_t read = 0; read <= 1460; read += 1460) {
        double t = parse(p, mlen * n, n, response, read);
        printf("%-34s %-9s %7.1f ns/msg %7.0f MB/s (%zu bytes each)\n", what,
               read ? "1460B rd" : "whole", t * 1e9 / (double)n, (double)(mlen * n) / t / 1e6, mlen);
    }
    free(p);
}

int
main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    char resp[2048], chunked[2048];
    int rl = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n"
                      "Date: Mon, 07 Dec 2026 13:00:00 GMT\r\nServer: nginx\r\n\r\n");
    memset(resp + rl, 'x', 1024);
    int cl = snprintf(chunked, sizeof(chunked),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n200\r\n");
    memset(chunked + cl, 'y', 512);
    cl += 512;
    cl += snprintf(chunked + cl, sizeof(chunked) - (size_t)cl, "\r\n200\r\n");
    memset(chunked + cl, 'z', 512);
    cl += 512;
    cl += snprintf(chunked + cl, sizeof(chunked) - (size_t)cl, "\r\n0\r\nGrpc-Status: 0\r\n\r\n");

    report("GET, 8 fields", get, sizeof(get) - 1, n, false);
    report("200, Content-Length 1 KiB", resp, (size_t)rl + 1024, n, true);
    report("200, chunked 2x512 B + trailer", chunked, (size_t)cl, n, true);

    struct buf b;
    buf_init(&b, 1 << 20);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        if (http1_put_status_line(&b, 1, 200, NULL, 0) < 0 ||
            http1_put_field(&b, "Content-Type", 12, "text/plain", 10) < 0 ||
            http1_put_field(&b, "Content-Length", 14, "1024", 4) < 0 || http1_put_crlf(&b) < 0)
            return 1;
        buf_consume(&b, buf_len(&b));
    }
    printf("%-34s %-9s %7.1f ns/msg\n", "write status line + 2 fields", "", (now_s() - t0) * 1e9 / (double)n);
    buf_cleanup(&b);
    struct http1_parser ps;
    http1_parser_init(&ps, false, NULL);
    printf("parser: %zu bytes + %zu bytes of field arrays (defaults)\n", sizeof(ps),
           (size_t)(ps.lim.max_fields + ps.lim.max_trailers) * sizeof(struct http1_field));
    http1_parser_free(&ps);
    return 0;
}
