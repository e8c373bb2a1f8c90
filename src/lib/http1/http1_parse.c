/*
 * http1_parse.c - the codec's state machine: one state per position in the
 * grammar, one byte at a time (runs of plain bytes in a tight loop), so that
 * every decision is made at the same byte however the input was split.
 *
 * A head or trailer section is parsed in place: the caller passes it again
 * from its first byte until it is complete, and |pos| says how far it was
 * read. Body bytes are consumed as they come and handed back as spans.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http1/http1_int.h"

enum state {
    /* start line */
    ST_START = 0, /* before a message: empty lines (requests), then the first byte */
    ST_START_LF,
    ST_METHOD,
    ST_TARGET0,
    ST_TARGET,
    ST_VER,     /* "HTTP/d.d", n_digits = index */
    ST_VER_END, /* CR (request) or SP (response) */
    ST_STATUS,
    ST_STATUS_END,
    ST_REASON,
    ST_LINE_LF,
    /* fields, of a head or (in_trailer) a trailer section */
    ST_FIELD0,
    ST_NAME,
    ST_OWS,
    ST_VALUE,
    ST_FIELD_LF,
    ST_END_LF,
    /* bodies */
    ST_BODY, /* the head was returned: framing decides what follows */
    ST_LENGTH,
    ST_CLOSE,
    ST_CSIZE,
    ST_CEXT_BWS, /* whitespace after a chunk size: ';' must follow */
    ST_CEXT,
    ST_CSIZE_LF,
    ST_CDATA,
    ST_CDATA_CR,
    ST_CDATA_LF,
    ST_RAW,
};

#define CHUNK_MAX_DIGITS 16 /* 2^64 - 1 */

void
http1_parser_init(struct http1_parser *ps, bool response, const struct http1_limits *lim)
{
    memset(ps, 0, sizeof(*ps));
    ps->response = response;
    if (lim != NULL)
        ps->lim = *lim;
    if (ps->lim.max_head == 0 || ps->lim.max_head > (16u << 20))
        ps->lim.max_head = ps->lim.max_head == 0 ? HTTP1_MAX_HEAD_DEFAULT : (16u << 20);
    if (ps->lim.max_fields == 0 || ps->lim.max_fields > INT16_MAX)
        ps->lim.max_fields = ps->lim.max_fields == 0 ? HTTP1_MAX_FIELDS_DEFAULT : INT16_MAX;
    if (ps->lim.max_trailer == 0 || ps->lim.max_trailer > (16u << 20))
        ps->lim.max_trailer = ps->lim.max_trailer == 0 ? HTTP1_MAX_TRAILER_DEFAULT : (16u << 20);
    if (ps->lim.max_trailers == 0)
        ps->lim.max_trailers = HTTP1_MAX_TRAILERS_DEFAULT;
    if (ps->lim.max_chunk_ext == 0)
        ps->lim.max_chunk_ext = HTTP1_MAX_CHUNK_EXT_DEFAULT;
    ps->head.fields = xcalloc(ps->lim.max_fields, sizeof(struct http1_field));
    ps->trailers = xcalloc(ps->lim.max_trailers, sizeof(struct http1_field));
    ps->head.host = ps->head.upgrade = -1;
    ps->state = ST_START;
}

void
http1_parser_free(struct http1_parser *ps)
{
    free(ps->head.fields);
    free(ps->trailers);
    ps->head.fields = ps->trailers = NULL;
}

void
http1_parser_expect(struct http1_parser *ps, const char *method, size_t len)
{
    ps->req_head = len == 4 && memcmp(method, "HEAD", 4) == 0;
    ps->req_connect = len == 7 && memcmp(method, "CONNECT", 7) == 0;
}

void
http1_parser_raw(struct http1_parser *ps)
{
    if (ps->err == 0)
        ps->state = ST_RAW;
}

int
http1_fail(struct http1_parser *ps, int code, const char *why)
{
    if (ps->response && code != HTTP1_E_TRUNCATED)
        code = HTTP1_E_RESPONSE;
    ps->err = -code;
    ps->why = why;
    return ps->err;
}

/* Forgets the previous message before the first byte of the next. */
static void
reset_message(struct http1_parser *ps)
{
    struct http1_field *fields = ps->head.fields;

    memset(&ps->head, 0, sizeof(ps->head));
    ps->head.fields = fields;
    ps->head.host = ps->head.upgrade = -1;
    ps->n_trailers = 0;
    ps->seen_cl = ps->seen_te = ps->te_chunked = ps->te_chunked_last = ps->te_other = false;
    ps->n_host = 0;
    ps->in_trailer = false;
}

/* A field line ended at section offset |end| (its CR): stores it, then its meaning. */
static int
field_done(struct http1_parser *ps, const char *s)
{
    struct http1_field *f;

    if (ps->in_trailer)
        f = &ps->trailers[ps->n_trailers - 1];
    else
        f = &ps->head.fields[ps->head.n_fields - 1];
    f->value.off = ps->mark;
    f->value.len = ps->vend - ps->mark;
    return ps->in_trailer ? 0 : http1_head_field(ps, s, f);
}

/* A field name starts at section offset |pos|; counts it against the cap. */
static int
field_start(struct http1_parser *ps)
{
    struct http1_field *f;

    if (ps->in_trailer) {
        if (ps->n_trailers >= ps->lim.max_trailers)
            return http1_fail(ps, HTTP1_E_TOO_LARGE, "too many trailer fields");
        f = &ps->trailers[ps->n_trailers++];
    } else {
        if (ps->head.n_fields >= ps->lim.max_fields)
            return http1_fail(ps, HTTP1_E_TOO_LARGE, "too many header fields");
        f = &ps->head.fields[ps->head.n_fields++];
    }
    memset(f, 0, sizeof(*f));
    f->name.off = ps->pos;
    return 0;
}

/*
 * Reads the head or trailer section starting at |s| (|n| bytes available).
 * Returns 1 when it ended (its length is ps->pos), 0 when all |n| were read,
 * or an error.
 */
static int
parse_section(struct http1_parser *ps, const char *s, size_t n)
{
    uint32_t cap = ps->in_trailer ? ps->lim.max_trailer : ps->lim.max_head;
    size_t end = n < cap ? n : cap; /* bytes past the cap are never looked at */
    int rc;

    while (ps->pos < end) {
        uint32_t i = ps->pos;
        unsigned char c = (unsigned char)s[i];

        switch ((enum state)ps->state) {
        case ST_START:
            if (ps->response) {
                ps->state = ST_VER;
                ps->n_digits = 0;
                continue; /* the version is the first thing in a status line */
            }
            if (c == '\r') {
                ps->state = ST_START_LF; /* RFC 9112 2.2: empty lines before a request */
                break;
            }
            if (!http1_is(c, HTTP1_C_TCHAR))
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad method");
            ps->mark = i;
            ps->state = ST_METHOD;
            break;
        case ST_START_LF:
            if (c != '\n')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bare CR");
            ps->state = ST_START;
            break;
        case ST_METHOD:
            while (i + 1 < end && http1_is((unsigned char)s[i], HTTP1_C_TCHAR))
                i++;
            ps->pos = i;
            c = (unsigned char)s[i];
            if (http1_is(c, HTTP1_C_TCHAR))
                break;
            if (c != ' ')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad method");
            ps->head.method.off = ps->mark;
            ps->head.method.len = i - ps->mark;
            ps->state = ST_TARGET0;
            break;
        case ST_TARGET0:
            if (!http1_is(c, HTTP1_C_TARGET))
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad request target");
            ps->mark = i;
            ps->state = ST_TARGET;
            break;
        case ST_TARGET:
            while (i + 1 < end && http1_is((unsigned char)s[i], HTTP1_C_TARGET))
                i++;
            ps->pos = i;
            c = (unsigned char)s[i];
            if (http1_is(c, HTTP1_C_TARGET))
                break;
            if (c != ' ')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad request target");
            ps->head.target.off = ps->mark;
            ps->head.target.len = i - ps->mark;
            if ((rc = http1_head_target(ps, s)) < 0)
                return rc;
            ps->state = ST_VER;
            ps->n_digits = 0;
            break;
        case ST_VER:
            if (ps->n_digits == 5 || ps->n_digits == 7) {
                if (c < '0' || c > '9')
                    return http1_fail(ps, HTTP1_E_SYNTAX, "bad HTTP version");
                if (ps->n_digits == 5)
                    ps->major_digit = (uint8_t)(c - '0');
                else
                    ps->minor_digit = (uint8_t)(c - '0');
            } else if (c != (unsigned char)"HTTP/1.1"[ps->n_digits]) {
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad HTTP version");
            }
            if (++ps->n_digits == 8)
                ps->state = ST_VER_END;
            break;
        case ST_VER_END:
            if (c != (ps->response ? ' ' : '\r'))
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad HTTP version");
            if (ps->major_digit != 1 || ps->minor_digit > 1)
                return http1_fail(ps, HTTP1_E_VERSION, "HTTP version not supported");
            ps->head.minor = ps->minor_digit;
            ps->state = ps->response ? ST_STATUS : ST_LINE_LF;
            ps->n_digits = 0;
            break;
        case ST_STATUS:
            if (c < '0' || c > '9')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad status code");
            ps->head.status = (uint16_t)(ps->head.status * 10 + (c - '0'));
            if (++ps->n_digits == 3) {
                if (ps->head.status < 100 || ps->head.status > 599)
                    return http1_fail(ps, HTTP1_E_SYNTAX, "bad status code");
                ps->state = ST_STATUS_END;
            }
            break;
        case ST_STATUS_END:
            /* status-code SP [reason]; a missing SP before CRLF is accepted too */
            ps->head.reason.off = i + 1;
            if (c == '\r')
                ps->state = ST_LINE_LF;
            else if (c == ' ')
                ps->state = ST_REASON;
            else
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad status line");
            break;
        case ST_REASON:
            while (i + 1 < end && http1_is((unsigned char)s[i], HTTP1_C_VALUE))
                i++;
            ps->pos = i;
            c = (unsigned char)s[i];
            if (http1_is(c, HTTP1_C_VALUE))
                break;
            if (c != '\r')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bad reason phrase");
            ps->head.reason.len = i - ps->head.reason.off;
            ps->state = ST_LINE_LF;
            break;
        case ST_LINE_LF:
        case ST_FIELD_LF:
            if (c != '\n')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bare CR");
            ps->state = ST_FIELD0;
            break;
        case ST_FIELD0:
            if (c == '\r') {
                ps->state = ST_END_LF;
                break;
            }
            if (c == ' ' || c == '\t')
                return http1_fail(ps, HTTP1_E_SYNTAX, "obs-fold or whitespace before a field");
            if (!http1_is(c, HTTP1_C_TCHAR))
                return http1_fail(ps, HTTP1_E_SYNTAX, c == '\n' ? "bare LF" : "bad field name");
            if ((rc = field_start(ps)) < 0)
                return rc;
            ps->state = ST_NAME;
            break;
        case ST_NAME:
            while (i + 1 < end && http1_is((unsigned char)s[i], HTTP1_C_TCHAR))
                i++;
            ps->pos = i;
            c = (unsigned char)s[i];
            if (http1_is(c, HTTP1_C_TCHAR))
                break;
            if (c != ':')
                return http1_fail(ps, HTTP1_E_SYNTAX,
                                  c == ' ' || c == '\t' ? "whitespace before a colon"
                                                        : "bad field name");
            {
                struct http1_field *f = ps->in_trailer ? &ps->trailers[ps->n_trailers - 1]
                                                       : &ps->head.fields[ps->head.n_fields - 1];
                f->name.len = i - f->name.off;
            }
            ps->state = ST_OWS;
            ps->mark = ps->vend = i + 1;
            break;
        case ST_OWS:
            if (c == ' ' || c == '\t') {
                ps->mark = ps->vend = i + 1;
                break;
            }
            ps->state = ST_VALUE;
            continue; /* the value starts here (or is empty) */
        case ST_VALUE:
            for (; i < end; i++) {
                c = (unsigned char)s[i];
                if (!http1_is(c, HTTP1_C_VALUE))
                    break;
                if (c != ' ' && c != '\t')
                    ps->vend = i + 1;
            }
            ps->pos = i;
            if (i == end)
                continue;
            if (c != '\r')
                return http1_fail(ps, HTTP1_E_SYNTAX,
                                  c == '\n' ? "bare LF" : "control character in a field value");
            if ((rc = field_done(ps, s)) < 0)
                return rc;
            ps->state = ST_FIELD_LF;
            break;
        case ST_END_LF:
            if (c != '\n')
                return http1_fail(ps, HTTP1_E_SYNTAX, "bare CR");
            ps->pos = i + 1;
            return 1;
        default:
            return http1_fail(ps, HTTP1_E_SYNTAX, "parser state");
        }
        ps->pos++;
    }
    if (n >= cap)
        return http1_fail(ps, HTTP1_E_TOO_LARGE,
                          ps->in_trailer ? "trailer section too large" : "head too large");
    return 0;
}

/* The head is complete: what the next calls will read. */
static void
head_ready(struct http1_parser *ps)
{
    ps->head.len = ps->pos;
    ps->state = ST_BODY;
}

/* The message ended: get ready for the next one (or a tunnel). */
static int
message_end(struct http1_parser *ps)
{
    const struct http1_head *h = &ps->head;
    bool tunnel = ps->response && (h->status == 101 || (ps->req_connect && h->status / 100 == 2));

    ps->pos = 0;
    ps->in_trailer = false;
    ps->state = tunnel ? ST_RAW : ST_START;
    if (ps->response && (h->status >= 200 || tunnel))
        ps->req_head = ps->req_connect = false; /* a final answer: the next request says */
    return HTTP1_END;
}

/* One byte of the framing around chunk data. */
static int
chunk_step(struct http1_parser *ps, unsigned char c)
{
    int h;

    switch ((enum state)ps->state) {
    case ST_CSIZE:
        h = (c >= '0' && c <= '9')   ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                     : -1;
        if (h >= 0) {
            if (++ps->n_digits > CHUNK_MAX_DIGITS)
                return http1_fail(ps, HTTP1_E_SYNTAX, "chunk size too large");
            ps->remaining = ps->remaining << 4 | (uint64_t)h;
            return 0;
        }
        if (ps->n_digits == 0)
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk size");
        if (c == '\r')
            ps->state = ST_CSIZE_LF;
        else if (c == ';')
            ps->state = ST_CEXT;
        else if (c == ' ' || c == '\t')
            ps->state = ST_CEXT_BWS;
        else
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk size");
        ps->ext_len = c == '\r' ? 0 : 1; /* the extension's bytes run from here to CR */
        return 0;
    case ST_CEXT_BWS:
        if (++ps->ext_len > ps->lim.max_chunk_ext)
            return http1_fail(ps, HTTP1_E_SYNTAX, "chunk extension too long");
        if (c == ';')
            ps->state = ST_CEXT;
        else if (c != ' ' && c != '\t')
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk size");
        return 0;
    case ST_CEXT:
        if (c == '\r') {
            ps->state = ST_CSIZE_LF;
            return 0;
        }
        if (++ps->ext_len > ps->lim.max_chunk_ext)
            return http1_fail(ps, HTTP1_E_SYNTAX, "chunk extension too long");
        if (!http1_is(c, HTTP1_C_VALUE))
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk extension");
        return 0;
    case ST_CSIZE_LF:
        if (c != '\n')
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk line ending");
        ps->n_digits = 0;
        ps->ext_len = 0;
        if (ps->remaining > 0) {
            ps->state = ST_CDATA;
        } else {
            ps->state = ST_FIELD0; /* last chunk: the trailer section */
            ps->in_trailer = true;
            ps->pos = 0;
        }
        return 0;
    case ST_CDATA_CR:
        if (c != '\r')
            return http1_fail(ps, HTTP1_E_SYNTAX, "chunk data longer than its size");
        ps->state = ST_CDATA_LF;
        return 0;
    case ST_CDATA_LF:
        if (c != '\n')
            return http1_fail(ps, HTTP1_E_SYNTAX, "bad chunk line ending");
        ps->state = ST_CSIZE;
        ps->remaining = 0;
        return 0;
    default:
        return http1_fail(ps, HTTP1_E_SYNTAX, "parser state");
    }
}

static int
parse_chunked(struct http1_parser *ps, const char *p, size_t len, size_t *used,
              struct http1_span *data)
{
    size_t i = 0;
    int rc;

    while (i < len || ps->in_trailer) {
        if (ps->in_trailer) {
            if ((rc = parse_section(ps, p + i, len - i)) <= 0) {
                *used = i; /* the trailer section is passed again until complete */
                return rc;
            }
            for (uint16_t k = 0; k < ps->n_trailers; k++) {
                ps->trailers[k].name.off += (uint32_t)i;
                ps->trailers[k].value.off += (uint32_t)i;
            }
            *used = i + ps->pos;
            return message_end(ps);
        }
        if (ps->state == ST_CDATA) {
            size_t n = len - i < ps->remaining ? len - i : (size_t)ps->remaining;
            data->off = (uint32_t)i;
            data->len = (uint32_t)n;
            ps->remaining -= n;
            if (ps->remaining == 0)
                ps->state = ST_CDATA_CR;
            *used = i + n;
            return HTTP1_DATA;
        }
        if ((rc = chunk_step(ps, (unsigned char)p[i++])) < 0)
            return rc;
    }
    *used = i;
    return HTTP1_MORE;
}

int
http1_parse(struct http1_parser *ps, const char *p, size_t len, size_t *used,
            struct http1_span *data)
{
    int rc;

    *used = 0;
    data->off = data->len = 0;
    if (ps->err != 0)
        return ps->err;
    if (len > UINT32_MAX)
        len = UINT32_MAX; /* spans are 32-bit: the rest comes next call */
    if (ps->state <= ST_END_LF && !ps->in_trailer) {
        if (ps->state == ST_START && ps->pos == 0)
            reset_message(ps);
        if ((rc = parse_section(ps, p, len)) <= 0)
            return rc;
        if ((rc = http1_head_done(ps, p)) < 0)
            return rc;
        head_ready(ps);
        *used = ps->head.len;
        return HTTP1_HEAD;
    }
    switch ((enum state)ps->state) {
    case ST_BODY:
        switch (ps->head.body) {
        case HTTP1_BODY_NONE:
            return message_end(ps);
        case HTTP1_BODY_LENGTH:
            ps->remaining = ps->head.content_length;
            ps->state = ST_LENGTH;
            break;
        case HTTP1_BODY_CHUNKED:
            ps->remaining = 0;
            ps->n_digits = ps->ext_len = 0;
            ps->state = ST_CSIZE;
            break;
        case HTTP1_BODY_CLOSE:
            ps->state = ST_CLOSE;
            break;
        }
        return http1_parse(ps, p, len, used, data);
    case ST_LENGTH:
        if (ps->remaining == 0)
            return message_end(ps);
        if (len == 0)
            return HTTP1_MORE;
        data->len = (uint32_t)(len < ps->remaining ? len : ps->remaining);
        ps->remaining -= data->len;
        *used = data->len;
        return HTTP1_DATA;
    case ST_CLOSE:
        if (len == 0)
            return HTTP1_MORE;
        data->len = (uint32_t)len;
        *used = len;
        return HTTP1_DATA;
    case ST_RAW:
        return HTTP1_RAW;
    default:
        return parse_chunked(ps, p, len, used, data);
    }
}

int
http1_parse_eof(struct http1_parser *ps)
{
    if (ps->err != 0)
        return ps->err;
    if (ps->state == ST_CLOSE || (ps->state == ST_LENGTH && ps->remaining == 0) ||
        (ps->state == ST_BODY && ps->head.body == HTTP1_BODY_NONE))
        return message_end(ps);
    if ((ps->state == ST_START && ps->pos == 0) || ps->state == ST_RAW)
        return HTTP1_MORE;
    return http1_fail(ps, HTTP1_E_TRUNCATED, "connection closed inside a message");
}

int
http1_error_status(int err)
{
    switch (err < 0 ? -err : err) {
    case HTTP1_E_TOO_LARGE:
        return 431;
    case HTTP1_E_CODING:
        return 501;
    case HTTP1_E_VERSION:
        return 505;
    case HTTP1_E_RESPONSE:
        return 502;
    default:
        return 400;
    }
}
