/*
 * http1.h - a strict parser for the small HTTP/1.1 requests of admin ports.
 *
 * Parses the request line and headers of a complete head ("\r\n\r\n"
 * terminated); bodies are not supported. Sans-I/O: bytes in, result out.
 */
#ifndef MESH_LIB_HTTP1_H
#define MESH_LIB_HTTP1_H

#include <stddef.h>

#define HTTP1_MAX_HEAD 8192
#define HTTP1_MAX_HEADERS 64

struct http1_req {
    char method[16];
    char path[1024];  /* without the query */
    char query[1024]; /* after '?', without it */
    size_t head_len;  /* bytes consumed, including the blank line */
    size_t n_headers;
};

/*
 * Parses |len| bytes. Returns 1 with |req| filled when a complete head was
 * found, 0 if more bytes are needed, or -EINVAL for a malformed or oversized
 * request.
 */
int http1_parse_request(const char *p, size_t len, struct http1_req *req);

/* Looks up |key| in a query string "a=1&b=2"; copies the value into |out|. */
int http1_query_get(const char *query, const char *key, char *out, size_t outlen);

#endif
