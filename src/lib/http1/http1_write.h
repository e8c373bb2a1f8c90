/*
 * http1_write.h - serializing HTTP/1.1: request and status lines, fields,
 * chunked bodies and trailers, into a struct buf.
 *
 * Every function checks what it writes (tokens, no CR/LF/NUL/CTL in values),
 * so a caller cannot inject a field or split a message, and either appends
 * all of its bytes or none: 0, -EINVAL (bad input) or -MESH_ELIMIT (|b| full).
 */
#ifndef MESH_LIB_HTTP1_WRITE_H
#define MESH_LIB_HTTP1_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf/buf.h"
#include "http1/http1.h"

/* "METHOD target HTTP/1.<minor>\r\n": |method| a token, |target| visible ASCII but '#'. */
int http1_put_request_line(struct buf *b, const char *method, size_t mlen, const char *target,
                           size_t tlen, unsigned minor);

/* "HTTP/1.<minor> status reason\r\n"; |reason| NULL: the canonical phrase (never empty). */
int http1_put_status_line(struct buf *b, unsigned minor, int status, const char *reason,
                          size_t rlen);

/* "name: value\r\n"; |name| a token, |value| without CR, LF, NUL or other controls but HTAB. */
int http1_put_field(struct buf *b, const char *name, size_t nlen, const char *value, size_t vlen);

/*
 * The fields of a parsed head |h| (spans into |base|), in order, each as
 * "name: value\r\n"; with |drop_hop_by_hop|, those http1_hop_by_hop() names
 * are left out (a proxy's forwarding).
 */
int http1_put_fields(struct buf *b, const struct http1_head *h, const char *base,
                     bool drop_hop_by_hop);

/* "\r\n": ends a head, or chunk data after http1_put_chunk_size() and the data. */
int http1_put_crlf(struct buf *b);

/* "<hex size>\r\n" for |len| > 0 bytes of chunk data that the caller appends next. */
int http1_put_chunk_size(struct buf *b, uint64_t len);

/* One whole chunk: size line, the |len| > 0 bytes, CRLF. */
int http1_put_chunk(struct buf *b, const void *data, size_t len);

/* "0\r\n", the |n| trailer fields (spans into |base|), "\r\n". */
int http1_put_last_chunk(struct buf *b, const struct http1_field *t, size_t n, const char *base);

#endif
