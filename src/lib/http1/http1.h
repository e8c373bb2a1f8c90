/*
 * http1.h - a strict, streaming, sans-I/O HTTP/1.1 codec (RFC 9112): request
 * and response heads, Content-Length / chunked / read-until-close bodies,
 * trailers, 1xx, HEAD/204/304, 101 and CONNECT tunnels, pipelining.
 *
 * Strict where leniency lets two parsers disagree about where a message ends
 * (request smuggling): no bare LF or CR, no obs-fold, no whitespace before a
 * colon, no NUL/CTL in values, one Content-Length value, no Content-Length with
 * Transfer-Encoding, chunked only as the final coding, exactly one Host in an
 * HTTP/1.1 request, bounded heads, field counts, chunk sizes and extensions.
 *
 * Use: http1_parse() returns one event per call. While a head (or a trailer
 * section) is incomplete it consumes nothing: pass the same bytes again, with
 * more after them, from the first byte of the message (or of the trailers).
 * The parser never rescans what it has seen, keeps no copy, and allocates only
 * in http1_parser_init(). Spans (struct http1_span) are offsets into the bytes
 * passed in the call that returned the event, so a caller may move or copy its
 * buffer and keep the head. Feeding a message byte by byte gives the same
 * events and the same errors as feeding it at once.
 */
#ifndef MESH_LIB_HTTP1_H
#define MESH_LIB_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEAD_DEFAULT     (64 * 1024) /* request line or status line + fields */
#define HTTP1_MAX_FIELDS_DEFAULT   100
#define HTTP1_MAX_TRAILER_DEFAULT  (16 * 1024)
#define HTTP1_MAX_TRAILERS_DEFAULT 32
#define HTTP1_MAX_CHUNK_EXT_DEFAULT 1024 /* bytes after a chunk size, up to its CRLF */

/* Caps; a zero member takes its default. Passing one is an HTTP1_E_TOO_LARGE. */
struct http1_limits {
    uint32_t max_head;      /* bytes of a head, blank line included (at most 16 MiB) */
    uint16_t max_fields;    /* header fields in a head */
    uint32_t max_trailer;   /* bytes of a trailer section */
    uint16_t max_trailers;  /* fields in a trailer section */
    uint16_t max_chunk_ext; /* bytes of a chunk extension */
};

/* Why a message was refused; http1_error_status() gives the answer to send. */
enum http1_error {
    HTTP1_E_SYNTAX = 1, /* malformed request: 400 */
    HTTP1_E_TOO_LARGE,  /* head or trailers over a cap, too many fields: 431 */
    HTTP1_E_CODING,     /* a transfer coding other than chunked in a request: 501 */
    HTTP1_E_VERSION,    /* a well-formed version other than HTTP/1.0 or 1.1: 505 */
    HTTP1_E_RESPONSE,   /* anything wrong in a response (a bad upstream): 502 */
    HTTP1_E_TRUNCATED,  /* the peer closed inside a message */
};

/* What one call of http1_parse() found. */
enum http1_event {
    HTTP1_MORE = 0, /* *used bytes consumed; call again with the rest plus more */
    HTTP1_HEAD,     /* a head: http1_parser.head, spans into the bytes given */
    HTTP1_DATA,     /* body bytes: *data, a span into the bytes given */
    HTTP1_END,      /* the message ended (trailers in .trailers); next one may start */
    HTTP1_RAW,      /* after 101 or a CONNECT 2xx: the bytes are not HTTP any more */
};

enum http1_body {
    HTTP1_BODY_NONE = 0, /* no body (no framing field; HEAD, 1xx, 204, 304 responses) */
    HTTP1_BODY_LENGTH,   /* Content-Length bytes */
    HTTP1_BODY_CHUNKED,  /* chunked, then trailers */
    HTTP1_BODY_CLOSE,    /* a response read until the connection closes */
};

enum http1_form {
    HTTP1_FORM_ORIGIN = 0, /* /path?query */
    HTTP1_FORM_ABSOLUTE,   /* scheme:... (to a proxy) */
    HTTP1_FORM_AUTHORITY,  /* host:port, CONNECT only */
    HTTP1_FORM_ASTERISK,   /* *, OPTIONS only */
};

/* |len| bytes at |off| of the bytes passed with the event. */
struct http1_span {
    uint32_t off, len;
};

struct http1_field {
    struct http1_span name, value; /* value without leading and trailing whitespace */
};

struct http1_head {
    uint32_t len;  /* bytes of the head, empty lines before a request and the blank line included */
    uint8_t minor; /* HTTP/1.<minor>: 0 (accepted, flagged) or 1 */
    /* requests */
    struct http1_span method; /* any token, case-sensitive */
    struct http1_span target;
    enum http1_form form;
    bool is_head, is_connect; /* method is exactly HEAD / CONNECT */
    int16_t host;             /* index of the Host field, -1 if none */
    /* responses */
    uint16_t status;
    struct http1_span reason; /* may be empty */
    /* fields, in order */
    struct http1_field *fields;
    uint16_t n_fields;
    /* framing and connection */
    enum http1_body body;
    uint64_t content_length; /* HTTP1_BODY_LENGTH */
    bool keep_alive;         /* after the version's default, Connection and framing */
    bool conn_close, conn_keep_alive, conn_upgrade; /* Connection tokens */
    int16_t upgrade;      /* index of the Upgrade field, -1 if none */
    bool expect_continue; /* Expect: 100-continue (HTTP/1.1 requests) */
};

struct http1_parser {
    struct http1_limits lim;
    bool response;
    uint8_t state;
    bool in_trailer; /* the field states read a trailer section, not a head */
    int err;         /* sticky once set: negative enum http1_error */
    const char *why; /* a static description of err, for logs */
    uint32_t pos;    /* bytes of the current head or trailer section seen */
    uint32_t mark;   /* start of the token or value being read (section offset) */
    uint32_t vend;   /* end of the value so far, trailing whitespace excluded */
    uint16_t n_digits;
    uint16_t ext_len;
    uint64_t remaining; /* body bytes left (Content-Length or current chunk) */
    struct http1_head head;
    struct http1_field *trailers;
    uint16_t n_trailers;
    /* what the fields said so far (head in progress) */
    bool seen_cl, seen_te, te_chunked, te_chunked_last, te_other;
    uint16_t n_host;
    uint8_t major_digit, minor_digit;
    /* responses: what the request was */
    bool req_head, req_connect;
};

/* Sets up a request parser (|response| false) or a response parser; |lim| may be NULL. */
void http1_parser_init(struct http1_parser *ps, bool response, const struct http1_limits *lim);
void http1_parser_free(struct http1_parser *ps);

/*
 * Response parsers: the method of the request the next response answers (HEAD
 * has no response body, CONNECT 2xx opens a tunnel). Call it before each
 * response head; 1xx interim responses keep it, a final response clears it.
 */
void http1_parser_expect(struct http1_parser *ps, const char *method, size_t len);

/* The connection stops speaking HTTP (e.g. the other side answered 101): HTTP1_RAW from now on. */
void http1_parser_raw(struct http1_parser *ps);

/*
 * Parses |len| bytes at |p|. Returns an enum http1_event with |*used| the bytes
 * consumed (the caller drops them before the next call), |*data| set for
 * HTTP1_DATA, or a negative enum http1_error (then ps->why says why; every
 * later call returns it again). After HTTP1_END the parser expects the next
 * message: pipelined bytes after *used belong to it.
 */
int http1_parse(struct http1_parser *ps, const char *p, size_t len, size_t *used,
                struct http1_span *data);

/*
 * The connection closed. Returns HTTP1_END if that ends a body read until
 * close, HTTP1_MORE if no message was in progress, or -HTTP1_E_TRUNCATED.
 */
int http1_parse_eof(struct http1_parser *ps);

/* The status to answer an error with (400, 431, 501, 505, 502); 400 for anything else. */
int http1_error_status(int err);

/* Index of the first field named |name| (any case) at or after |from|, or -1. */
int http1_find(const struct http1_field *f, size_t n, const char *base, const char *name,
               size_t from);

/* Whether the comma-separated list |v| (|n| bytes) holds |token| (any case). */
bool http1_list_has(const char *v, size_t n, const char *token);

/*
 * Whether field |i| of |h| is hop-by-hop, i.e. not to be forwarded by a proxy:
 * Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade, and
 * every field the Connection header names.
 */
bool http1_hop_by_hop(const struct http1_head *h, const char *base, size_t i);

/* The canonical reason phrase of |status| ("OK", "Not Found"), never NULL or empty. */
const char *http1_reason(int status);

/* Views into the bytes of an event: a span's address (no NUL terminator). */
static inline const char *
http1_at(const char *base, struct http1_span s)
{
    return base + s.off;
}

#endif
