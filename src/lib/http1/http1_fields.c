/*
 * http1_fields.c - what the fields of a head mean for framing and for the
 * connection (RFC 9112 6, 9; RFC 9110 7.2, 7.6.1, 8.6), checked as each field
 * ends and once more when the head is complete; and lookups for callers.
 */
#include <string.h>
#include <strings.h>

#include "http1/http1_int.h"

/* HTTP1_C_* bits per byte (generated from the RFC 9110 / 3986 character sets). */
const uint8_t http1_class[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  2,  0,  0,  0,  0,  0,  0, /* 00 */
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, /* 10 */
     2, 15,  6,  3, 15, 15, 15, 15, 14, 14, 15, 15, 14, 15, 15,  6, /* 20 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14, 14,  6, 14,  6,  6, /* 30 */
     6, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 40 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 14,  6, 14,  7, 15, /* 50 */
     7, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, /* 60 */
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,  6,  7,  6, 15,  0, /* 70 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* 80 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* 90 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* a0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* b0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* c0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* d0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* e0 */
     2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2,  2, /* f0 */
};

#define CL_MAX INT64_MAX /* larger Content-Length values are refused, never wrapped */

static bool
span_is(const char *s, struct http1_span sp, const char *lit)
{
    size_t n = strlen(lit);
    return sp.len == n && strncasecmp(s + sp.off, lit, n) == 0;
}

/*
 * The next element of the comma list at *p (ending at |end|), OWS trimmed;
 * false at the end (*p NULL). Empty elements are returned as such.
 */
static bool
list_next(const char **p, const char *end, const char **tok, size_t *tlen)
{
    const char *b = *p, *e;

    if (b == NULL)
        return false;
    e = memchr(b, ',', (size_t)(end - b));
    *p = e != NULL ? e + 1 : NULL;
    if (e == NULL)
        e = end;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    const char *t = e;
    while (t > b && (t[-1] == ' ' || t[-1] == '\t'))
        t--;
    *tok = b;
    *tlen = (size_t)(t - b);
    return true;
}

static bool
is_token(const char *t, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!http1_is((unsigned char)t[i], HTTP1_C_TCHAR))
            return false;
    return true;
}

/*
 * Content-Length: accepted is 1*DIGIT up to 2^63-1 (leading zeros allowed), and
 * the same value again in another Content-Length field (RFC 9110 8.6 lets a
 * recipient take identical values as one). Refused: an empty value, a sign,
 * whitespace or anything else inside, a comma list (even "5, 5"), and two
 * fields with different values.
 */
static int
content_length(struct http1_parser *ps, const char *v, size_t n)
{
    uint64_t x = 0;

    if (n == 0)
        return http1_fail(ps, HTTP1_E_SYNTAX, "empty Content-Length");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad Content-Length");
        if (x > (CL_MAX - (uint64_t)(v[i] - '0')) / 10)
            return http1_fail(ps, HTTP1_E_SYNTAX, "Content-Length too large");
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (ps->seen_cl && x != ps->head.content_length)
        return http1_fail(ps, HTTP1_E_SYNTAX, "Content-Length values differ");
    ps->seen_cl = true;
    ps->head.content_length = x;
    return 0;
}

/*
 * Transfer-Encoding, over all its fields as one list. Requests: only
 * "chunked", once (anything else is a coding we do not implement: 501).
 * Responses: any codings; chunked at most once, and only the final one frames
 * the body (otherwise the body runs until close). Empty elements are refused
 * here (unlike in Connection): "chunked," must not mean different things to
 * us and to the next hop.
 */
static int
transfer_encoding(struct http1_parser *ps, const char *v, size_t n)
{
    const char *p = v, *end = v + n, *tok;
    size_t tlen;

    ps->seen_te = true;
    while (list_next(&p, end, &tok, &tlen)) {
        if (!is_token(tok, tlen))
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad Transfer-Encoding");
        if (tlen == 7 && strncasecmp(tok, "chunked", 7) == 0) {
            if (ps->te_chunked)
                return http1_fail(ps, HTTP1_E_SYNTAX, "chunked applied twice");
            ps->te_chunked = ps->te_chunked_last = true;
            continue;
        }
        if (!ps->response)
            return http1_fail(ps, HTTP1_E_CODING, "transfer coding not implemented");
        ps->te_other = true;
        ps->te_chunked_last = false;
    }
    return 0;
}

static void
connection(struct http1_parser *ps, const char *v, size_t n)
{
    const char *p = v, *end = v + n, *tok;
    size_t tlen;

    while (list_next(&p, end, &tok, &tlen)) {
        if (tlen == 5 && strncasecmp(tok, "close", 5) == 0)
            ps->head.conn_close = true;
        else if (tlen == 10 && strncasecmp(tok, "keep-alive", 10) == 0)
            ps->head.conn_keep_alive = true;
        else if (tlen == 7 && strncasecmp(tok, "upgrade", 7) == 0)
            ps->head.conn_upgrade = true;
    }
}

/*
 * Content_Length and Transfer_Encoding are refused: valid tokens, but servers
 * that map '_' to '-' (CGI-style environments) would frame by them while we
 * do not.
 */
int
http1_head_field(struct http1_parser *ps, const char *s, const struct http1_field *f)
{
    const char *v = s + f->value.off;
    size_t n = f->value.len;
    int16_t idx = (int16_t)(f - ps->head.fields);

    if (span_is(s, f->name, "content_length") || span_is(s, f->name, "transfer_encoding"))
        return http1_fail(ps, HTTP1_E_SYNTAX, "underscore in a framing field name");
    if (span_is(s, f->name, "content-length"))
        return content_length(ps, v, n);
    if (span_is(s, f->name, "transfer-encoding"))
        return transfer_encoding(ps, v, n);
    if (span_is(s, f->name, "connection")) {
        connection(ps, v, n);
    } else if (span_is(s, f->name, "host")) {
        if (ps->response)
            return 0;
        if (++ps->n_host > 1)
            return http1_fail(ps, HTTP1_E_SYNTAX, "more than one Host");
        for (size_t i = 0; i < n; i++)
            if (!http1_is((unsigned char)v[i], HTTP1_C_HOST))
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad Host");
        ps->head.host = idx;
    } else if (span_is(s, f->name, "upgrade")) {
        if (ps->head.upgrade < 0)
            ps->head.upgrade = idx;
    } else if (span_is(s, f->name, "expect")) {
        if (n == 12 && strncasecmp(v, "100-continue", 12) == 0)
            ps->head.expect_continue = !ps->response;
    }
    return 0;
}

/* authority-form: uri-host ":" port, the port 1-5 digits. */
static bool
is_authority(const char *t, size_t n)
{
    size_t colon = n;

    for (size_t i = 0; i < n; i++) {
        if (!http1_is((unsigned char)t[i], HTTP1_C_HOST))
            return false;
        if (t[i] == ':')
            colon = i;
    }
    if (colon == 0 || colon >= n - 1 || n - colon - 1 > 5)
        return false;
    for (size_t i = colon + 1; i < n; i++)
        if (t[i] < '0' || t[i] > '9')
            return false;
    return true;
}

/*
 * absolute-form: scheme "://" ..., scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
 * An authority is required, so "host:80" (a valid URI with scheme "host") is
 * refused rather than taken for a host and port outside CONNECT.
 */
static bool
is_absolute(const char *t, size_t n)
{
    size_t i = 0;

    if (n == 0 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z'))
        return false;
    while (i < n && ((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z' ? true
                     : (t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    return n - i >= 3 && memcmp(t + i, "://", 3) == 0;
}

int
http1_head_target(struct http1_parser *ps, const char *s)
{
    struct http1_head *h = &ps->head;
    const char *m = s + h->method.off, *t = s + h->target.off;
    size_t n = h->target.len;

    h->is_head = h->method.len == 4 && memcmp(m, "HEAD", 4) == 0;
    h->is_connect = h->method.len == 7 && memcmp(m, "CONNECT", 7) == 0;
    if (h->is_connect) {
        h->form = HTTP1_FORM_AUTHORITY;
        return is_authority(t, n) ? 0 : http1_fail(ps, HTTP1_E_SYNTAX, "CONNECT without host:port");
    }
    if (n == 1 && t[0] == '*') {
        h->form = HTTP1_FORM_ASTERISK;
        return h->method.len == 7 && memcmp(m, "OPTIONS", 7) == 0
                   ? 0
                   : http1_fail(ps, HTTP1_E_SYNTAX, "* target outside OPTIONS");
    }
    if (t[0] == '/') {
        h->form = HTTP1_FORM_ORIGIN;
        return 0;
    }
    h->form = HTTP1_FORM_ABSOLUTE;
    return is_absolute(t, n) ? 0 : http1_fail(ps, HTTP1_E_SYNTAX, "bad request target");
}

/* The body of a response (RFC 9112 6.3), after the checks both directions share. */
static enum http1_body
response_body(const struct http1_parser *ps)
{
    const struct http1_head *h = &ps->head;

    if (h->status < 200 || h->status == 204 || h->status == 304 || ps->req_head ||
        (ps->req_connect && h->status < 300))
        return HTTP1_BODY_NONE;
    if (ps->seen_te)
        return ps->te_chunked_last ? HTTP1_BODY_CHUNKED : HTTP1_BODY_CLOSE;
    if (ps->seen_cl)
        return h->content_length > 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    return HTTP1_BODY_CLOSE;
}

int
http1_head_done(struct http1_parser *ps, const char *s)
{
    struct http1_head *h = &ps->head;
    (void)s;

    if (ps->seen_te && ps->seen_cl)
        return http1_fail(ps, HTTP1_E_SYNTAX, "Content-Length with Transfer-Encoding");
    if (ps->seen_te && h->minor == 0)
        return http1_fail(ps, HTTP1_E_SYNTAX, "Transfer-Encoding in HTTP/1.0");
    if (ps->response) {
        h->body = response_body(ps);
    } else {
        if (h->minor == 1 && ps->n_host == 0)
            return http1_fail(ps, HTTP1_E_SYNTAX, "HTTP/1.1 request without Host");
        if (ps->seen_te && !ps->te_chunked_last)
            return http1_fail(ps, HTTP1_E_SYNTAX, "chunked is not the final coding");
        h->body = ps->seen_te                          ? HTTP1_BODY_CHUNKED
                  : ps->seen_cl && h->content_length > 0 ? HTTP1_BODY_LENGTH
                                                         : HTTP1_BODY_NONE;
        if (h->minor == 0)
            h->expect_continue = false; /* 100 Continue is HTTP/1.1 only */
    }
    h->keep_alive = !h->conn_close && (h->minor == 1 || h->conn_keep_alive) &&
                    h->body != HTTP1_BODY_CLOSE &&
                    !(ps->response && (h->status == 101 || (ps->req_connect && h->status / 100 == 2)));
    return 0;
}

int
http1_find(const struct http1_field *f, size_t n, const char *base, const char *name, size_t from)
{
    for (size_t i = from; i < n; i++)
        if (span_is(base, f[i].name, name))
            return (int)i;
    return -1;
}

bool
http1_list_has(const char *v, size_t n, const char *token)
{
    const char *p = v, *end = v + n, *tok;
    size_t tlen, want = strlen(token);

    while (list_next(&p, end, &tok, &tlen))
        if (tlen == want && strncasecmp(tok, token, want) == 0)
            return true;
    return false;
}

bool
http1_hop_by_hop(const struct http1_head *h, const char *base, size_t i)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                        "transfer-encoding", "upgrade"};
    struct http1_span name = h->fields[i].name;

    for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
        if (span_is(base, name, fixed[k]))
            return true;
    for (int c = 0; (c = http1_find(h->fields, h->n_fields, base, "connection", (size_t)c)) >= 0;
         c++) {
        const struct http1_field *f = &h->fields[c];
        const char *p = base + f->value.off, *end = p + f->value.len, *tok;
        size_t tlen;
        while (list_next(&p, end, &tok, &tlen))
            if (tlen == name.len && strncasecmp(tok, base + name.off, tlen) == 0)
                return true;
    }
    return false;
}
