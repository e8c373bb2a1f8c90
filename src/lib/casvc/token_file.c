/*
 * token_file.c - what a proxy's token file holds (token.h, token_file_kind()).
 *
 * Two formats share --token: meshd's node-token file (one "v2:" token per
 * audience, a line each; or one opaque line) and the bare JWT a Kubernetes
 * projected service-account token is (the kubelet writes it without a
 * newline; `kubectl create token > f` adds one). A JWS in compact form is
 * recognised by its shape: one line, three non-empty base64url segments, the
 * header starting "eyJ" (base64url of '{"'). meshd's tokens contain colons,
 * which the base64url alphabet lacks, so the two can never be confused.
 */
#include <stdio.h>
#include <string.h>

#include "casvc/token.h"

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Where |tok| (|len| bytes, "eyJ..." on one line) stops being a JWS: NULL if it is one. */
static const char *
jws_flaw(const char *tok, size_t len, size_t *at)
{
    size_t dots = 0, seg = 0;
    for (size_t i = 0; i < len; i++) {
        char c = tok[i];
        if (c == '.') {
            if (seg == 0) {
                *at = i;
                return "an empty segment";
            }
            dots++;
            seg = 0;
        } else if (is_b64url(c)) {
            seg++;
        } else {
            *at = i;
            return c == '\n' ? "more than one line" : "a byte outside base64url";
        }
    }
    *at = len;
    if (dots != 2)
        return dots < 2 ? "fewer than three segments" : "more than three segments";
    if (seg == 0)
        return "an empty signature";
    return NULL;
}

enum token_file_kind
token_file_kind(const char *text, size_t len, const char **tok, size_t *toklen, char *why,
                size_t whylen)
{
    size_t b = 0, e = len;
    while (b < e && is_space(text[b]))
        b++;
    while (e > b && is_space(text[e - 1]))
        e--;
    if (b == e) {
        snprintf(why, whylen, "is empty");
        return TOKEN_FILE_BAD;
    }
    if (e - b < 3 || memcmp(text + b, "eyJ", 3) != 0) {
        if (len > TOKEN_FILE_MAX) {
            snprintf(why, whylen, "is larger than %d bytes (a node-token file)", TOKEN_FILE_MAX);
            return TOKEN_FILE_BAD;
        }
        return TOKEN_FILE_NODE; /* token_file_pick() finds each audience's line */
    }
    if (e - b > TOKEN_JWT_MAX) {
        snprintf(why, whylen, "holds a JWT larger than %d bytes", TOKEN_JWT_MAX);
        return TOKEN_FILE_BAD;
    }
    size_t at;
    const char *flaw = jws_flaw(text + b, e - b, &at);
    if (flaw != NULL) {
        /* Where, never what: the file is a credential. */
        snprintf(why, whylen, "starts like a JWT but is not one: %s at byte %zu", flaw, b + at);
        return TOKEN_FILE_BAD;
    }
    *tok = text + b;
    *toklen = e - b;
    return TOKEN_FILE_JWT;
}
