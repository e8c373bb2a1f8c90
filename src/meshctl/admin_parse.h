/*
 * admin_parse.h - reading the HTTP/1.1 response of an admin port as it
 * arrives, through lib/http1's codec: the head, then a body sized by
 * Content-Length, chunked, or ending at close, bounded in size. Apart from
 * the socket (admin_get.c) so that it can be fuzzed (fuzz/fuzz_admin_resp.c).
 */
#ifndef MESH_MESHCTL_ADMIN_PARSE_H
#define MESH_MESHCTL_ADMIN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "http1/http1.h"

#define ADMIN_MAX_RESPONSE (256u * 1024 * 1024) /* a 10,000-pod dump is ~20 MiB */
#define ADMIN_MAX_HEAD     (64 * 1024)

/* Formats |err| and returns -1. */
int admin_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct admin_reader {
    struct http1_parser ps;
    int status;    /* of the final response head, 0 before it */
    char *body;    /* what came of the body so far, NUL-terminated */
    size_t len;
    bool done;
};

void admin_reader_init(struct admin_reader *rd);
void admin_reader_free(struct admin_reader *rd);

/*
 * Feeds the |n| unread bytes at |r|; |*used| of them were consumed (drop
 * them, pass the rest again with what comes next). |eof|: the peer closed
 * after them. Returns 1 when the response is complete (rd->status, rd->body),
 * 0 when more is needed, or -1 with |err| saying why it cannot be read.
 */
int admin_reader_feed(struct admin_reader *rd, const char *r, size_t n, size_t *used, bool eof,
                      char *err, size_t errlen);

/*
 * The whole exchange of admin_get() after the bytes are read: a complete
 * response with status 200 gives 0 and moves the body (NUL-terminated, *len
 * bytes) to the caller; anything else -1 with |err| set (for another status,
 * the start of the server's explanation).
 */
int admin_reader_result(struct admin_reader *rd, char **body, size_t *len, char *err,
                        size_t errlen);

#endif
