/*
 * http1.c - request-head parser for admin endpoints.
 */
#include <errno.h>
#include <string.h>

#include "http1/http1.h"

static int
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
http1_parse_request(const char *p, size_t len, struct http1_req *req)
{
    const char *end = NULL;

    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i + 3 < len && i + 3 < HTTP1_MAX_HEAD; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = p + i + 4;
            break;
        }
    if (end == NULL)
        return len >= HTTP1_MAX_HEAD ? -EINVAL : 0;
    req->head_len = (size_t)(end - p);

    /* Request line: method SP target SP HTTP/1.x CRLF */
    const char *line_end = memchr(p, '\r', req->head_len);
    const char *sp1 = memchr(p, ' ', (size_t)(line_end - p));
    if (sp1 == NULL || sp1 == p || (size_t)(sp1 - p) >= sizeof(req->method))
        return -EINVAL;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return -EINVAL;
    memcpy(req->method, p, (size_t)(sp1 - p));
    const char *target = sp1 + 1;
    const char *sp2 = memchr(target, ' ', (size_t)(line_end - target));
    if (sp2 == NULL || sp2 == target || *target != '/')
        return -EINVAL;
    if ((size_t)(line_end - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return -EINVAL;
    const char *qm = memchr(target, '?', (size_t)(sp2 - target));
    const char *path_end = qm ? qm : sp2;
    if ((size_t)(path_end - target) >= sizeof(req->path))
        return -EINVAL;
    for (const char *q = target; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return -EINVAL;
    memcpy(req->path, target, (size_t)(path_end - target));
    if (qm != NULL) {
        if ((size_t)(sp2 - qm - 1) >= sizeof(req->query))
            return -EINVAL;
        memcpy(req->query, qm + 1, (size_t)(sp2 - qm - 1));
    }

    /* Headers: name ":" value CRLF; names are tokens, no obs-fold, no bare CR/LF. */
    const char *h = line_end + 2;
    while (h < end - 2) {
        const char *eol = memchr(h, '\r', (size_t)(end - h));
        if (eol == NULL || eol[1] != '\n')
            return -EINVAL;
        const char *colon = memchr(h, ':', (size_t)(eol - h));
        if (colon == NULL || colon == h)
            return -EINVAL;
        for (const char *q = h; q < colon; q++)
            if (!is_tchar((unsigned char)*q))
                return -EINVAL;
        for (const char *q = colon + 1; q < eol; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return -EINVAL;
        if (++req->n_headers > HTTP1_MAX_HEADERS)
            return -EINVAL;
        h = eol + 2;
    }
    return 1;
}

int
http1_query_get(const char *query, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key);
    const char *p = query;

    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = n - klen - 1;
            if (vlen >= outlen)
                return -EINVAL;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p = amp ? amp + 1 : NULL;
    }
    return -ENOENT;
}
