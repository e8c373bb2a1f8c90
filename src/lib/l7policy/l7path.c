/*
 * l7path.c - the waypoint's path normalisation (l7path.h), in three passes
 * over the path part, each linear: escapes and characters into |out|, dot
 * segments resolved in place, slashes merged in place; the query is copied
 * after it untouched.
 */
#include <string.h>

#include "base/base.h"
#include "l7policy/l7path.h"

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The byte a "%XY" at |p| (with |n| bytes left) stands for, or -1 if it is not an escape. */
static int
escape_at(const char *p, size_t n)
{
    if (n < 3 || p[0] != '%')
        return -1;
    int hi = hexval(p[1]), lo = hexval(p[2]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* RFC 3986 unreserved: ALPHA DIGIT - . _ ~ (the escapes Envoy decodes). */
static bool
unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * Bytes that cannot stand in a URL path as they are. A '%' that does not
 * start an escape is one too (decode()): written "%25", it cannot combine
 * with what follows into an escape a later decoder would read ("%%32e" ->
 * "%2e"), so normalising the output again changes nothing.
 */
static bool
must_escape(unsigned char c)
{
    return c <= 0x20 || c >= 0x7f;
}

/*
 * Pass 1: the path part [in, in+n) into |out|: escaped slashes (when asked),
 * unreserved escapes decoded once, '\' -> '/', unsafe bytes escaped. The
 * escapes decoded for DECODE_AND_MERGE_SLASHES are not looked at again, so
 * "%252F" is never a slash. Returns the bytes written.
 */
static size_t
decode(const char *in, size_t n, bool slashes, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;

    for (size_t r = 0; r < n;) {
        int c = escape_at(in + r, n - r);
        if (c >= 0 && (unreserved(c) || (slashes && (c == '/' || c == '\\')))) {
            out[w++] = c == '\\' ? '/' : (char)c;
            r += 3;
            continue;
        }
        unsigned char b = (unsigned char)in[r++];
        if (b == '\\') {
            out[w++] = '/';
        } else if (must_escape(b) || (b == '%' && c < 0)) {
            out[w++] = '%';
            out[w++] = hex[b >> 4];
            out[w++] = hex[b & 15];
        } else {
            out[w++] = (char)b;
        }
    }
    return w;
}

/* Pass 2: "." and ".." segments of [p, p+n) (which starts with '/') resolved in place. */
static size_t
remove_dots(char *p, size_t n)
{
    size_t r = 0, w = 0;

    while (r < n) {
        size_t s = r + 1, e = s;
        while (e < n && p[e] != '/')
            e++;
        size_t len = e - s;
        bool last = e == n;
        if (len == 1 && p[s] == '.') {
            /* nothing: the segment goes */
        } else if (len == 2 && p[s] == '.' && p[s + 1] == '.') {
            while (w > 0 && p[w - 1] != '/')
                w--;
            if (w > 0)
                w--; /* the segment and its '/' */
        } else {
            memmove(p + w, p + r, e - r); /* '/' + segment; w <= r */
            w += e - r;
            r = e;
            continue;
        }
        if (last)
            p[w++] = '/'; /* "/a/." and "/a/b/.." name the directory "/a/" */
        r = e;
    }
    if (w == 0)
        p[w++] = '/';
    return w;
}

/* Pass 3: runs of '/' as one. */
static size_t
merge_slashes(char *p, size_t n)
{
    size_t w = 0;
    for (size_t r = 0; r < n; r++)
        if (!(p[r] == '/' && w > 0 && p[w - 1] == '/'))
            p[w++] = p[r];
    return w;
}

int
l7path_normalize(enum l7path_mode mode, const char *in, size_t len, char *out, size_t outlen,
                 size_t *out_len, size_t *path_len, const char **why)
{
    *out_len = *path_len = 0;
    *why = NULL;
    if (len > L7PATH_MAX) {
        *why = "path too long";
        return -MESH_EPROTO;
    }
    if (outlen < L7PATH_OUT_SIZE(len)) {
        *why = "path buffer too small";
        return -MESH_EPROTO;
    }
    if (memchr(in, '\0', len) != NULL) {
        *why = "NUL in path"; /* HTTP codecs refuse it; escaped it would read as %00 */
        return -MESH_EPROTO;
    }
    if (memchr(in, '#', len) != NULL) {
        *why = "fragment in path";
        return -MESH_EPROTO;
    }
    const char *q = memchr(in, '?', len);
    size_t plen = q != NULL ? (size_t)(q - in) : len;
    size_t w;

    if (mode == L7PATH_NONE) {
        memcpy(out, in, len);
        w = plen;
    } else {
        if (plen == 0 || in[0] != '/') {
            *why = "path does not start with /";
            return -MESH_EPROTO;
        }
        for (size_t i = 0; i + 3 <= plen; i++) {
            if (in[i] == '%' && in[i + 1] == '0' && in[i + 2] == '0') {
                *why = "%00 in path";
                return -MESH_EPROTO;
            }
        }
        w = decode(in, plen, mode == L7PATH_DECODE_AND_MERGE_SLASHES, out);
        w = remove_dots(out, w);
        if (mode != L7PATH_BASE)
            w = merge_slashes(out, w);
    }
    memcpy(out + w, in + plen, len - plen);
    *path_len = w;
    *out_len = w + len - plen;
    out[*out_len] = '\0';
    return 0;
}

static const char *const mode_names[] = {
    [L7PATH_BASE] = "BASE",
    [L7PATH_MERGE_SLASHES] = "MERGE_SLASHES",
    [L7PATH_DECODE_AND_MERGE_SLASHES] = "DECODE_AND_MERGE_SLASHES",
    [L7PATH_NONE] = "NONE",
};

const char *
l7path_mode_name(enum l7path_mode mode)
{
    return (unsigned)mode < ARRAY_LEN(mode_names) ? mode_names[mode] : "?";
}

int
l7path_mode_parse(const char *s, enum l7path_mode *mode)
{
    if (strcmp(s, "DEFAULT") == 0) {
        *mode = L7PATH_BASE;
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(mode_names); i++) {
        if (strcmp(s, mode_names[i]) == 0) {
            *mode = (enum l7path_mode)i;
            return 0;
        }
    }
    return -1;
}
