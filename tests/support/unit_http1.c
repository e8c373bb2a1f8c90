/* unit_http1.c - see unit_http1.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "unit_http1.h"

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

void
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

