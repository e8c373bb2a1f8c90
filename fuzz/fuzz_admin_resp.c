/*
 * fuzz_admin_resp.c - what meshctl reads from an admin port (ztunnel's, or
 * whatever answers at the address given): the response as it grows read by
 * read, then as a whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *r = malloc(size + 1), *body = NULL, err[256] = "";
    size_t len = 0;

    if (r == NULL)
        return 0;
    memcpy(r, data, size);
    r[size] = '\0';
    /* admin_get() NUL-terminates after every read; check each prefix as one would arrive. */
    for (size_t n = 0; n <= size; n += 1 + n / 4) {
        char saved = r[n];
        r[n] = '\0';
        (void)admin_response_complete(r, n);
        r[n] = saved;
    }
    if (admin_response_parse(r, size, &body, &len, err, sizeof(err)) == 0) {
        if (body == NULL || body[len] != '\0' || len > ADMIN_MAX_RESPONSE)
            abort();
        free(body);
    } else if (body != NULL || err[0] == '\0') {
        abort(); /* a refusal frees everything and says why */
    }
    free(r);
    return 0;
}
