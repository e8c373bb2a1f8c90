/* fuzz_http1.c - the admin ports' HTTP/1.1 request-head parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http1_req req;
    char v[64];

    int rc = http1_parse_request((const char *)data, size, &req);
    if (rc == 1) {
        if (req.head_len > size || req.path[0] != '/')
            abort();
        http1_query_get(req.query, "level", v, sizeof(v));
    }
    return 0;
}
