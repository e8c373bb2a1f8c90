/*
 * admin_parse.c - what ztunnel's admin port answers meshctl, read with
 * lib/http1's response parser (strict framing, 1xx skipped) into a bounded
 * body. No I/O (admin_get.c reads).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_parse.h"
#include "base/base.h"

int
admin_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void
admin_reader_init(struct admin_reader *rd)
{
    static const struct http1_limits lim = {.max_head = ADMIN_MAX_HEAD};

    memset(rd, 0, sizeof(*rd));
    http1_parser_init(&rd->ps, true, &lim);
    http1_parser_expect(&rd->ps, "GET", 3);
    rd->body = xmalloc(1);
    rd->body[0] = '\0';
}

void
admin_reader_free(struct admin_reader *rd)
{
    http1_parser_free(&rd->ps);
    free(rd->body);
    rd->body = NULL;
}

/* Says why the parser stopped, in the words meshctl's users and tests know. */
static int
parse_error(const struct admin_reader *rd, char *err, size_t errlen)
{
    const struct http1_parser *ps = &rd->ps;

    if (ps->err == -HTTP1_E_TRUNCATED) {
        if (rd->status == 0)
            return admin_fail(err, errlen, "connection closed before the end of the response head");
        if (ps->head.body == HTTP1_BODY_LENGTH)
            return admin_fail(err, errlen, "connection closed after %zu of %llu body bytes", rd->len,
                              (unsigned long long)ps->head.content_length);
        return admin_fail(err, errlen, "connection closed inside a chunked body");
    }
    if (ps->head.status == 0)
        return admin_fail(err, errlen, "not an HTTP/1.x response (%s)", ps->why);
    if (rd->status == 0 || ps->head.len == 0)
        return admin_fail(err, errlen, "bad response head (%s)", ps->why);
    return admin_fail(err, errlen, "bad response body (%s)", ps->why);
}

int
admin_reader_feed(struct admin_reader *rd, const char *r, size_t n, size_t *used, bool eof,
                  char *err, size_t errlen)
{
    struct http1_span d;
    size_t u;
    int rc;

    *used = 0;
    while (!rd->done) {
        rc = http1_parse(&rd->ps, r + *used, n - *used, &u, &d);
        if (rc < 0)
            return parse_error(rd, err, errlen);
        if (rc == HTTP1_HEAD && rd->ps.head.status >= 200) {
            const struct http1_head *h = &rd->ps.head;
            rd->status = h->status;
            if (h->body == HTTP1_BODY_LENGTH && h->content_length > ADMIN_MAX_RESPONSE) {
                *used += u;
                return admin_fail(err, errlen, "response of %llu bytes is larger than the %u byte cap",
                                  (unsigned long long)h->content_length, ADMIN_MAX_RESPONSE);
            }
        } else if (rc == HTTP1_DATA) {
            if (d.len > ADMIN_MAX_RESPONSE - rd->len)
                return admin_fail(err, errlen, "response larger than the %u byte cap",
                                  ADMIN_MAX_RESPONSE);
            rd->body = xrealloc(rd->body, rd->len + d.len + 1);
            memcpy(rd->body + rd->len, r + *used + d.off, d.len);
            rd->len += d.len;
            rd->body[rd->len] = '\0';
        } else if (rc == HTTP1_END && rd->status != 0) {
            rd->done = true; /* (the end of a 1xx, status 0 here: the final response follows) */
        } else if (rc == HTTP1_RAW) {
            return admin_fail(err, errlen, "the admin port switched protocols");
        }
        *used += u;
        if (rc == HTTP1_MORE) {
            if (!eof)
                return 0;
            if ((rc = http1_parse_eof(&rd->ps)) < 0)
                return parse_error(rd, err, errlen);
            if (rc != HTTP1_END)
                return admin_fail(err, errlen, "connection closed before the end of the response head");
            rd->done = true;
        }
    }
    return 1;
}

int
admin_reader_result(struct admin_reader *rd, char **body, size_t *len, char *err, size_t errlen)
{
    *body = NULL;
    *len = 0;
    if (!rd->done)
        return admin_fail(err, errlen, "connection closed before the end of the response");
    if (rd->status != 200) {
        /* Show the start of the server's explanation, one line. */
        int cut = (int)strcspn(rd->body, "\r\n");
        return admin_fail(err, errlen, "admin answered HTTP %d%s%.*s", rd->status, cut ? ": " : "",
                          cut > 200 ? 200 : cut, rd->body);
    }
    *body = rd->body;
    *len = rd->len;
    rd->body = NULL;
    return 0;
}
