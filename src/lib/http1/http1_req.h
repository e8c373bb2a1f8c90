/*
 * http1_req.h - the small requests of admin, readiness and metrics ports:
 * one origin-form request head parsed with the codec (http1.h) into fixed
 * fields. Bodies are not read.
 */
#ifndef MESH_LIB_HTTP1_REQ_H
#define MESH_LIB_HTTP1_REQ_H

#include <stddef.h>

#define HTTP1_REQ_MAX_HEAD   8192
#define HTTP1_REQ_MAX_FIELDS 64

struct http1_req {
    char method[16];
    char path[1024];  /* without the query */
    char query[1024]; /* after '?', without it */
    size_t head_len;  /* bytes consumed, including the blank line */
    size_t n_headers;
};

/*
 * Parses the head at the start of |p| (|len| bytes so far). Returns 1 with
 * |req| filled when it is complete, 0 if more bytes are needed, or -EINVAL for
 * a request the codec refuses, an oversized one, or one whose method, path or
 * query does not fit |req| (or whose target is not origin-form).
 */
int http1_parse_request(const char *p, size_t len, struct http1_req *req);

/* Looks up |key| in a query string "a=1&b=2"; copies the value into |out|. */
int http1_query_get(const char *query, const char *key, char *out, size_t outlen);

#endif
