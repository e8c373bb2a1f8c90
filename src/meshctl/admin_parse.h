/*
 * admin_parse.h - the HTTP/1.1 response reader behind admin_get(), apart from
 * the socket so that it can be fuzzed (fuzz/fuzz_admin_resp.c).
 */
#ifndef MESH_MESHCTL_ADMIN_PARSE_H
#define MESH_MESHCTL_ADMIN_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_MAX_RESPONSE (256u * 1024 * 1024) /* a 10,000-pod dump is ~20 MiB */
#define ADMIN_MAX_HEAD     (64 * 1024)

/* Formats |err| and returns -1. */
int admin_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Whether the |n| bytes read so far (NUL-terminated at r[n]) hold the whole
 * response, judged from the head; true on a malformed head too (stop reading).
 */
bool admin_response_complete(const char *r, size_t n);

/*
 * Decodes the response in |r| (|n| bytes, all that will come, NUL-terminated
 * at r[n]). Returns 0 with *body (NUL-terminated heap copy of *len bytes) for
 * status 200, else -1 with |err| set.
 */
int admin_response_parse(const char *r, size_t n, char **body, size_t *len, char *err,
                         size_t errlen);

#endif
