/*
 * http1_write.c - the serializer and the canonical reason phrases.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "http1/http1_int.h"
#include "http1/http1_write.h"

const char *
http1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    switch (status / 100) {
    case 1: return "Informational";
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
    }
}

static bool
all_of(const char *p, size_t n, unsigned cls)
{
    for (size_t i = 0; i < n; i++)
        if (!http1_is((unsigned char)p[i], cls))
            return false;
    return true;
}

struct iov_piece {
    const void *p;
    size_t len;
};

/* Appends the |n| pieces only if all fit. */
static int
put(struct buf *b, size_t n, const struct iov_piece *v)
{
    size_t total = 0;

    for (size_t i = 0; i < n; i++)
        total += v[i].len;
    if (total > buf_space(b))
        return -MESH_ELIMIT;
    for (size_t i = 0; i < n; i++)
        if (v[i].len > 0 && buf_append(b, v[i].p, v[i].len) < 0)
            return -MESH_ELIMIT; /* not reached: the room was checked */
    return 0;
}

int
http1_put_request_line(struct buf *b, const char *method, size_t mlen, const char *target,
                       size_t tlen, unsigned minor)
{
    if (mlen == 0 || !all_of(method, mlen, HTTP1_C_TCHAR) || tlen == 0 ||
        !all_of(target, tlen, HTTP1_C_TARGET) || minor > 1)
        return -EINVAL;
    struct iov_piece v[] = {{method, mlen}, {" ", 1}, {target, tlen},
                            {minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11}};
    return put(b, ARRAY_LEN(v), v);
}

int
http1_put_status_line(struct buf *b, unsigned minor, int status, const char *reason, size_t rlen)
{
    char line[16];

    if (status < 100 || status > 599 || minor > 1)
        return -EINVAL;
    if (reason == NULL || rlen == 0) {
        reason = http1_reason(status); /* never empty: some clients count an empty one a failure */
        rlen = strlen(reason);
    }
    if (!all_of(reason, rlen, HTTP1_C_VALUE))
        return -EINVAL;
    /* By hand: every response passes here, and snprintf costs more than the rest. */
    memcpy(line, "HTTP/1.0 000 ", 13);
    line[7] = (char)('0' + minor);
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    struct iov_piece v[] = {{line, 13}, {reason, rlen}, {"\r\n", 2}};
    return put(b, ARRAY_LEN(v), v);
}

int
http1_put_field(struct buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (nlen == 0 || !all_of(name, nlen, HTTP1_C_TCHAR) || !all_of(value, vlen, HTTP1_C_VALUE))
        return -EINVAL;
    struct iov_piece v[] = {{name, nlen}, {": ", 2}, {value, vlen}, {"\r\n", 2}};
    return put(b, ARRAY_LEN(v), v);
}

int
http1_put_fields(struct buf *b, const struct http1_head *h, const char *base,
                 bool drop_hop_by_hop)
{
    size_t total = 0;

    for (size_t i = 0; i < h->n_fields; i++)
        if (!drop_hop_by_hop || !http1_hop_by_hop(h, base, i))
            total += h->fields[i].name.len + h->fields[i].value.len + 4;
    if (total > buf_space(b))
        return -MESH_ELIMIT;
    for (size_t i = 0; i < h->n_fields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (drop_hop_by_hop && http1_hop_by_hop(h, base, i))
            continue;
        /* parsed fields are valid already; the check stays for heads built by hand */
        int rc = http1_put_field(b, base + f->name.off, f->name.len, base + f->value.off,
                                 f->value.len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int
http1_put_crlf(struct buf *b)
{
    struct iov_piece v[] = {{"\r\n", 2}};
    return put(b, 1, v);
}

int
http1_put_chunk_size(struct buf *b, uint64_t len)
{
    char line[24];

    if (len == 0)
        return -EINVAL; /* a zero size ends the body: http1_put_last_chunk() */
    int n = snprintf(line, sizeof(line), "%" PRIx64 "\r\n", len);
    struct iov_piece v[] = {{line, (size_t)n}};
    return put(b, 1, v);
}

int
http1_put_chunk(struct buf *b, const void *data, size_t len)
{
    char line[24];

    if (len == 0)
        return -EINVAL;
    int n = snprintf(line, sizeof(line), "%zx\r\n", len);
    struct iov_piece v[] = {{line, (size_t)n}, {data, len}, {"\r\n", 2}};
    return put(b, ARRAY_LEN(v), v);
}

int
http1_put_last_chunk(struct buf *b, const struct http1_field *t, size_t n, const char *base)
{
    size_t total = 5;

    for (size_t i = 0; i < n; i++) {
        const char *name = base + t[i].name.off, *value = base + t[i].value.off;
        if (t[i].name.len == 0 || !all_of(name, t[i].name.len, HTTP1_C_TCHAR) ||
            !all_of(value, t[i].value.len, HTTP1_C_VALUE))
            return -EINVAL;
        total += t[i].name.len + t[i].value.len + 4;
    }
    if (total > buf_space(b))
        return -MESH_ELIMIT;
    CHECK(buf_append(b, "0\r\n", 3) == 0);
    for (size_t i = 0; i < n; i++)
        CHECK(http1_put_field(b, base + t[i].name.off, t[i].name.len, base + t[i].value.off,
                              t[i].value.len) == 0);
    CHECK(buf_append(b, "\r\n", 2) == 0);
    return 0;
}
