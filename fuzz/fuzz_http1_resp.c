/*
 * fuzz_http1_resp.c - HTTP/1.1 responses as an upstream may send them,
 * through lib/http1's codec, whole and then split. Byte 0 picks the request
 * method they answer (GET, HEAD, CONNECT) and tight or default caps.
 */
#include <stdint.h>

#include "fuzz_http1_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "HEAD", "CONNECT", "POST"};

    if (size == 0)
        return 0;
    fuzz_http1_run(data + 1, size - 1, true, methods[(data[0] >> 1) & 3], (data[0] & 1) != 0);
    return 0;
}
