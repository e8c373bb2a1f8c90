/* fuzz_csr.c - the CA's CSR check, fed arbitrary bytes as a CSR would arrive from a node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spiffe_id id;
    const char *why = NULL;

    EVP_PKEY *key = csr_check((const char *)data, size, &id, &why);
    if (key != NULL) {
        /* Accepted: the identity is a parsed SPIFFE ID. */
        if (strncmp(id.uri, "spiffe://", 9) != 0)
            abort();
        EVP_PKEY_free(key);
    } else if (why == NULL) {
        abort(); /* every refusal says why */
    }
    return 0;
}
