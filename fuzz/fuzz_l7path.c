/*
 * fuzz_l7path.c - the waypoint's path normalisation (l7path_normalize).
 * Byte 0 picks the mode, the rest is the :path. Checked on every accepted
 * input: the output fits and is NUL-terminated, the query is carried over
 * unchanged, and for every mode but NONE the path part starts with '/',
 * holds no '\', no "." or ".." segment and no "%00", has no "//" after
 * merging, and normalising it again changes nothing (what policy matched is
 * what the backend, or a second waypoint, sees).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l7policy/l7path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
dot_segment(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '/')
            continue;
        size_t e = i + 1;
        while (e < n && p[e] != '/')
            e++;
        size_t len = e - i - 1;
        if ((len == 1 && p[i + 1] == '.') || (len == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return true;
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    enum l7path_mode mode = (enum l7path_mode)(data[0] & 3);
    const char *in = (const char *)data + 1;
    size_t n = size - 1, len, plen, len2, plen2;
    const char *why;
    char *out = malloc(L7PATH_OUT_SIZE(n)), *again = NULL;

    if (l7path_normalize(mode, in, n, out, L7PATH_OUT_SIZE(n), &len, &plen, &why) < 0) {
        if (why == NULL)
            abort();
        free(out);
        return 0;
    }
    if (len >= L7PATH_OUT_SIZE(n) || plen > len || out[len] != '\0')
        abort();
    const char *q = memchr(in, '?', n);
    size_t qlen = q ? n - (size_t)(q - in) : 0;
    if (len - plen != qlen || memcmp(out + plen, in + n - qlen, qlen) != 0)
        abort();
    if (mode != L7PATH_NONE) {
        if (plen == 0 || out[0] != '/' || memchr(out, '\\', plen) != NULL ||
            dot_segment(out, plen) || memmem(out, plen, "%00", 3) != NULL)
            abort();
        if (mode != L7PATH_BASE && memmem(out, plen, "//", 2) != NULL)
            abort();
        again = malloc(L7PATH_OUT_SIZE(len));
        if (l7path_normalize(mode, out, len, again, L7PATH_OUT_SIZE(len), &len2, &plen2, &why) <
                0 ||
            len2 != len || plen2 != plen || memcmp(again, out, len) != 0)
            abort();
    }
    free(again);
    free(out);
    return 0;
}
