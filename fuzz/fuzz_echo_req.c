/*
 * fuzz_echo_req.c - the sample echo server's HTTP/1.1 reader, fed what any
 * client in the cluster may send: the request head (each prefix, then whole)
 * and, when it says chunked, the body after it in uneven pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echo_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct echo_req req;
    int rc = 0;

    /* The server parses again after every read: what a prefix decides, the whole agrees with. */
    for (size_t n = 0; n <= size && rc == 0; n += 1 + n / 8)
        rc = echo_req_parse(p, n, &req);
    int first = rc;
    size_t first_len = rc > 0 ? req.head_len : 0;
    rc = echo_req_parse(p, size, &req);
    if ((first < 0 && rc >= 0) || (first > 0 && (rc != 1 || req.head_len != first_len)))
        abort();
    if (rc < 0)
        return 0;
    if (rc == 0) {
        if (size > ECHO_MAX_HEAD)
            abort(); /* a head past the cap is refused, not waited for */
        return 0;
    }
    if (req.head_len == 0 || req.head_len > size || req.head_len > ECHO_MAX_HEAD ||
        (req.chunked && req.content_length != 0))
        abort();
    if (!req.chunked)
        return 0;

    struct echo_chunked c;
    size_t off = req.head_len, step = 1;
    uint64_t bytes = 0;

    memset(&c, 0, sizeof(c));
    while (off < size) {
        size_t used = 0, n = size - off < step ? size - off : step;
        rc = echo_chunked_feed(&c, p + off, n, &used, &bytes);
        if (used > n || (rc == 0 && used != n))
            abort(); /* more bytes needed: all given were consumed */
        off += used;
        if (rc != 0)
            break;
        step = step * 3 % 17 + 1;
    }
    if (bytes > size)
        abort(); /* decoded data cannot outgrow the input */
    return 0;
}
