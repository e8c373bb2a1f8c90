/*
 * echo_req.c - strict HTTP/1.1 request heads and chunked bodies (RFC 9112).
 *
 * Strict where leniency lets two parsers disagree about where a request ends:
 * no bare LF, no obs-fold, no space before a colon, one Content-Length value,
 * no Content-Length with Transfer-Encoding, exactly one Host in HTTP/1.1.
 */
#include <string.h>
#include <strings.h>

#include "echo_req.h"

#define CHUNK_MAX_DIGITS 16
#define CHUNK_MAX_LINE   1024
#define CL_MAX_DIGITS    18 /* below 10^18: no overflow */

static bool
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Does the [p, p+n) token equal |s|, ignoring case? */
static bool
token_is(const char *p, size_t n, const char *s)
{
    return strlen(s) == n && strncasecmp(p, s, n) == 0;
}

/* Refuses a request line early: a control byte, or a first byte no method starts with. */
static int
check_partial_line(const char *p, size_t len)
{
    if (len > 0 && !is_tchar((unsigned char)p[0]))
        return -ECHO_REQ_BAD;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && !(c == '\r' && i == len - 1)) || c == 0x7f)
            return -ECHO_REQ_BAD;
    }
    return len >= ECHO_MAX_HEAD ? -ECHO_REQ_TOO_LARGE : 0;
}

/* "METHOD SP /target SP HTTP/1.x" of |n| bytes (CRLF excluded). */
static int
parse_request_line(const char *p, size_t n, struct echo_req *req)
{
    const char *end = p + n;
    const char *sp1 = memchr(p, ' ', n);

    if (sp1 == NULL || sp1 == p || (size_t)(sp1 - p) >= sizeof(req->method))
        return -ECHO_REQ_BAD;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return -ECHO_REQ_BAD;
    memcpy(req->method, p, (size_t)(sp1 - p));

    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(end - target));
    if (sp2 == NULL || sp2 == target || *target != '/')
        return -ECHO_REQ_BAD;
    for (const char *q = target; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -ECHO_REQ_BAD;
    if ((size_t)(sp2 - target) >= sizeof(req->target))
        return -ECHO_REQ_URI_TOO_LONG;
    memcpy(req->target, target, (size_t)(sp2 - target));

    const char *ver = sp2 + 1;
    if (end - ver != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
        return -ECHO_REQ_BAD;
    req->minor = ver[7] - '0';
    return 0;
}

/* What the header lines said, before the checks that need all of them. */
struct head_seen {
    int n_host;
    bool has_length, has_te, conn_close, conn_keep_alive;
};

static int
parse_content_length(const char *v, size_t n, struct echo_req *req, struct head_seen *s)
{
    uint64_t x = 0;

    if (n == 0 || n > CL_MAX_DIGITS)
        return -ECHO_REQ_BAD;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -ECHO_REQ_BAD;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (s->has_length && x != req->content_length)
        return -ECHO_REQ_BAD;
    s->has_length = true;
    req->content_length = x;
    return 0;
}

static void
parse_connection(const char *v, size_t n, struct head_seen *s)
{
    const char *end = v + n;

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *te = comma ? comma : end;
        const char *b = v;
        while (b < te && is_ows(*b))
            b++;
        const char *e = te;
        while (e > b && is_ows(e[-1]))
            e--;
        if (token_is(b, (size_t)(e - b), "close"))
            s->conn_close = true;
        else if (token_is(b, (size_t)(e - b), "keep-alive"))
            s->conn_keep_alive = true;
        v = comma ? comma + 1 : end;
    }
}

/* One "name: value" line of |n| bytes (CRLF excluded). */
static int
parse_header(const char *p, size_t n, struct echo_req *req, struct head_seen *s)
{
    const char *end = p + n;
    const char *colon = memchr(p, ':', n);

    if (colon == NULL || colon == p)
        return -ECHO_REQ_BAD;
    for (const char *q = p; q < colon; q++)
        if (!is_tchar((unsigned char)*q))
            return -ECHO_REQ_BAD;
    for (const char *q = colon + 1; q < end; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            return -ECHO_REQ_BAD;
    const char *v = colon + 1;
    while (v < end && is_ows(*v))
        v++;
    while (end > v && is_ows(end[-1]))
        end--;
    size_t name_len = (size_t)(colon - p), vlen = (size_t)(end - v);

    if (token_is(p, name_len, "content-length"))
        return parse_content_length(v, vlen, req, s);
    if (token_is(p, name_len, "transfer-encoding")) {
        if (s->has_te)
            return -ECHO_REQ_BAD;
        s->has_te = true;
        if (!token_is(v, vlen, "chunked"))
            return -ECHO_REQ_UNSUPPORTED;
        req->chunked = true;
    } else if (token_is(p, name_len, "connection")) {
        parse_connection(v, vlen, s);
    } else if (token_is(p, name_len, "host")) {
        if (vlen >= sizeof(req->host))
            return -ECHO_REQ_BAD;
        memcpy(req->host, v, vlen);
        req->host[vlen] = '\0';
        s->n_host++;
    } else if (token_is(p, name_len, "expect")) {
        req->expect_continue = token_is(v, vlen, "100-continue");
    }
    return 0;
}

static const char *
find_head_end(const char *p, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return p + i + 4;
    return NULL;
}

int
echo_req_parse(const char *p, size_t len, struct echo_req *req)
{
    struct head_seen seen = {0};
    size_t scan = len < ECHO_MAX_HEAD ? len : ECHO_MAX_HEAD;
    int rc;

    memset(req, 0, sizeof(*req));
    const char *lf = memchr(p, '\n', scan);
    if (lf == NULL)
        return check_partial_line(p, scan);
    if (lf == p || lf[-1] != '\r')
        return -ECHO_REQ_BAD;
    if ((rc = parse_request_line(p, (size_t)(lf - 1 - p), req)) < 0)
        return rc;

    const char *end = find_head_end(p, scan);
    if (end == NULL)
        return len >= ECHO_MAX_HEAD ? -ECHO_REQ_TOO_LARGE : 0;
    req->head_len = (size_t)(end - p);

    size_t n_headers = 0;
    for (const char *h = lf + 1; h < end - 2;) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        if (eol == h || eol[-1] != '\r' || is_ows(*h))
            return -ECHO_REQ_BAD; /* bare LF or obs-fold */
        if (++n_headers > ECHO_MAX_HEADERS)
            return -ECHO_REQ_TOO_LARGE;
        if ((rc = parse_header(h, (size_t)(eol - 1 - h), req, &seen)) < 0)
            return rc;
        h = eol + 1;
    }

    if (seen.has_te && (seen.has_length || req->minor == 0))
        return -ECHO_REQ_BAD;
    if (seen.n_host > 1 || (req->minor == 1 && seen.n_host == 0))
        return -ECHO_REQ_BAD;
    req->keep_alive = !seen.conn_close && (req->minor == 1 || seen.conn_keep_alive);
    return 1;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One byte of the framing around chunk data: size lines, CRLFs, trailers. */
static int
chunked_step(struct echo_chunked *c, char ch)
{
    int h;

    switch (c->state) {
    case CHUNKED_SIZE:
        if ((h = hex_value(ch)) >= 0) {
            if (++c->n_digits > CHUNK_MAX_DIGITS)
                return -ECHO_REQ_BAD;
            c->remaining = c->remaining << 4 | (uint64_t)h;
            return 0;
        }
        if (c->n_digits == 0)
            return -ECHO_REQ_BAD;
        if (ch == '\r')
            c->state = CHUNKED_SIZE_LF;
        else if (ch == ';' || is_ows(ch))
            c->state = CHUNKED_EXT;
        else
            return -ECHO_REQ_BAD;
        return 0;
    case CHUNKED_EXT:
        if (ch == '\r')
            c->state = CHUNKED_SIZE_LF;
        else if (ch == '\n' || ++c->line_len > CHUNK_MAX_LINE)
            return -ECHO_REQ_BAD;
        return 0;
    case CHUNKED_SIZE_LF:
        if (ch != '\n')
            return -ECHO_REQ_BAD;
        c->state = c->remaining > 0 ? CHUNKED_DATA : CHUNKED_TRAILER;
        c->n_digits = 0;
        c->line_len = 0;
        return 0;
    case CHUNKED_DATA_CR:
        if (ch != '\r')
            return -ECHO_REQ_BAD;
        c->state = CHUNKED_DATA_LF;
        return 0;
    case CHUNKED_DATA_LF:
        if (ch != '\n')
            return -ECHO_REQ_BAD;
        c->state = CHUNKED_SIZE;
        return 0;
    case CHUNKED_TRAILER:
    case CHUNKED_TRAILER_LINE:
        if (++c->trailer_len > ECHO_MAX_HEAD || ch == '\n')
            return -ECHO_REQ_BAD;
        if (ch == '\r')
            c->state = c->state == CHUNKED_TRAILER ? CHUNKED_END_LF : CHUNKED_TRAILER_LF;
        else
            c->state = CHUNKED_TRAILER_LINE;
        return 0;
    case CHUNKED_TRAILER_LF:
        if (ch != '\n')
            return -ECHO_REQ_BAD;
        c->state = CHUNKED_TRAILER;
        return 0;
    case CHUNKED_END_LF:
        if (ch != '\n')
            return -ECHO_REQ_BAD;
        c->state = CHUNKED_DONE;
        return 0;
    case CHUNKED_DATA:
    case CHUNKED_DONE:
        break;
    }
    return -ECHO_REQ_BAD;
}

int
echo_chunked_feed(struct echo_chunked *c, const char *p, size_t len, size_t *used,
                  uint64_t *data_bytes)
{
    size_t i = 0;
    int rc = 0;

    while (i < len && c->state != CHUNKED_DONE) {
        if (c->state == CHUNKED_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            c->remaining -= n;
            *data_bytes += n;
            i += n;
            if (c->remaining == 0)
                c->state = CHUNKED_DATA_CR;
            continue;
        }
        if ((rc = chunked_step(c, p[i++])) < 0)
            break;
    }
    *used = i;
    if (rc < 0)
        return rc;
    return c->state == CHUNKED_DONE ? 1 : 0;
}
