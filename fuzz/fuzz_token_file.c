/*
 * fuzz_token_file.c - the text of a proxy's --token file: meshd's node-token
 * lines or a Kubernetes service-account token (token_file_kind), then each
 * audience's pick from a node-token file (token_file_pick).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "casvc/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *tok = NULL;
    size_t len = 0;
    char why[120] = "";

    switch (token_file_kind(text, size, &tok, &len, why, sizeof(why))) {
    case TOKEN_FILE_JWT:
        /* Inside the input, within the cap, one line, and exactly two dots. */
        if (tok < text || tok + len > text + size || len == 0 || len > TOKEN_JWT_MAX ||
            memchr(tok, '\n', len) != NULL || memchr(tok, ':', len) != NULL)
            abort();
        break;
    case TOKEN_FILE_NODE:
        if (size > TOKEN_FILE_MAX)
            abort();
        for (int aud = TOKEN_AUD_XDS; aud <= TOKEN_AUD_CA; aud++)
            if (token_file_pick(text, size, (enum token_aud)aud, &tok, &len) == 0 &&
                (tok < text || tok + len > text + size))
                abort();
        break;
    case TOKEN_FILE_BAD:
        if (why[0] == '\0' || strlen(why) >= sizeof(why))
            abort();
        break;
    default:
        abort();
    }
    return 0;
}
