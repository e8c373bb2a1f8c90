/*
 * echo_req.h - the echo server's HTTP/1.1 request parsing, sans-I/O.
 *
 * echo_req_parse() reads a request head and the headers that frame the body
 * (Content-Length, Transfer-Encoding) or steer the connection (Connection,
 * Expect, Host); echo_chunked_feed() walks a chunked body. Both take bytes and
 * return results; sockets live in echo_http.c. lib/http1 parses admin
 * requests only (8 KiB heads, no header values), hence this sample's own.
 */
#ifndef MESH_SAMPLES_ECHO_REQ_H
#define MESH_SAMPLES_ECHO_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ECHO_MAX_HEAD    16384 /* request line + headers; past it: 431 */
#define ECHO_MAX_HEADERS 100   /* past it: 431 */
#define ECHO_MAX_TARGET  2048  /* past it: 414 */
#define ECHO_MAX_HOST    256   /* past it: 400 */

/* Why a request was refused, each with its status. */
enum echo_req_err {
    ECHO_REQ_BAD = 400,          /* malformed */
    ECHO_REQ_URI_TOO_LONG = 414, /* target over ECHO_MAX_TARGET */
    ECHO_REQ_TOO_LARGE = 431,    /* head over ECHO_MAX_HEAD or too many headers */
    ECHO_REQ_UNSUPPORTED = 501,  /* a transfer coding other than chunked */
};

struct echo_req {
    char method[32];
    char target[ECHO_MAX_TARGET]; /* origin-form, with the query */
    char host[ECHO_MAX_HOST];     /* "" when absent (HTTP/1.0) */
    int minor;                    /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;              /* after the version default and Connection */
    bool chunked;                 /* Transfer-Encoding: chunked */
    bool expect_continue;         /* Expect: 100-continue */
    uint64_t content_length;      /* 0 when absent */
    size_t head_len;              /* bytes of the head, blank line included */
};

/*
 * Parses the request head at the start of |p| (|len| bytes). Returns 1 with
 * |req| filled when the head is complete, 0 when more bytes are needed, or
 * -echo_req_err (e.g. -ECHO_REQ_BAD). A broken request line is refused as
 * soon as its line ends, without waiting for the rest of the head.
 */
int echo_req_parse(const char *p, size_t len, struct echo_req *req);

enum echo_chunked_state {
    CHUNKED_SIZE = 0, /* hex digits of a chunk size */
    CHUNKED_EXT,      /* chunk extension, skipped up to CR */
    CHUNKED_SIZE_LF,
    CHUNKED_DATA,
    CHUNKED_DATA_CR,
    CHUNKED_DATA_LF,
    CHUNKED_TRAILER, /* start of a trailer line or of the final CRLF */
    CHUNKED_TRAILER_LINE,
    CHUNKED_TRAILER_LF,
    CHUNKED_END_LF,
    CHUNKED_DONE,
};

/* A chunked body decoder; zero it before the first call. */
struct echo_chunked {
    enum echo_chunked_state state;
    uint64_t remaining; /* data bytes left in this chunk; or the size being read */
    unsigned n_digits;  /* of the size being read */
    size_t line_len;    /* of the extension or trailer line being skipped */
    size_t trailer_len; /* all trailer bytes so far, capped at ECHO_MAX_HEAD */
};

/*
 * Feeds |len| bytes of a chunked body. Stores how many bytes it consumed in
 * |*used| (it stops right after the body) and adds the decoded data bytes to
 * |*data_bytes|. Returns 1 when the body ended, 0 when more bytes are needed,
 * or -ECHO_REQ_BAD.
 */
int echo_chunked_feed(struct echo_chunked *c, const char *p, size_t len, size_t *used,
                      uint64_t *data_bytes);

#endif
