/*
 * fuzz_http1_req.c - HTTP/1.1 requests as any client may send them, through
 * lib/http1's codec (whole, then split; pipelined messages, bodies, trailers;
 * byte 0 picks tight caps) and the admin ports' head reader on top of it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_http1_run.h"
#include "http1/http1_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_req req;
    char v[64];

    if (size == 0)
        return 0;
    fuzz_http1_run(data + 1, size - 1, false, NULL, (data[0] & 1) != 0);
    int rc = http1_parse_request((const char *)data + 1, size - 1, &req);
    if (rc == 1) {
        if (req.head_len > size - 1 || req.path[0] != '/')
            abort();
        http1_query_get(req.query, "level", v, sizeof(v));
    }
    return 0;
}
