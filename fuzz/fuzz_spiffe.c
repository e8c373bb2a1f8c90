/* fuzz_spiffe.c - SPIFFE ID parsing (as found in certificate URI SANs). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/spiffe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spiffe_id id, again;

    if (spiffe_parse((const char *)data, size, &id) == 0) {
        /* An accepted ID has no NUL and rebuilds to the same URI. */
        if (strlen(id.uri) != size || spiffe_make(id.td, id.ns, id.sa, &again) != 0 ||
            strcmp(again.uri, id.uri) != 0)
            abort();
    }
    return 0;
}
