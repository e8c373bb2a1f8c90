/*
 * http1_req.c - admin request heads through the codec, into fixed fields.
 */
#include <errno.h>
#include <string.h>

#include "http1/http1.h"
#include "http1/http1_req.h"

/* Copies span |s| of |base| into |out| (NUL-terminated); false if it does not fit. */
static bool
copy_span(char *out, size_t outlen, const char *base, size_t off, size_t len)
{
    if (len >= outlen)
        return false;
    memcpy(out, base + off, len);
    out[len] = '\0';
    return true;
}

int
http1_parse_request(const char *p, size_t len, struct http1_req *req)
{
    static const struct http1_limits lim = {.max_head = HTTP1_REQ_MAX_HEAD,
                                            .max_fields = HTTP1_REQ_MAX_FIELDS};
    struct http1_parser ps;
    struct http1_span data;
    size_t used;

    memset(req, 0, sizeof(*req));
    http1_parser_init(&ps, false, &lim);
    int rc = http1_parse(&ps, p, len, &used, &data);
    if (rc == HTTP1_HEAD) {
        const struct http1_head *h = &ps.head;
        const char *t = p + h->target.off;
        const char *qm = memchr(t, '?', h->target.len);
        size_t plen = qm != NULL ? (size_t)(qm - t) : h->target.len;

        rc = 1;
        if (h->form != HTTP1_FORM_ORIGIN ||
            !copy_span(req->method, sizeof(req->method), p, h->method.off, h->method.len) ||
            !copy_span(req->path, sizeof(req->path), t, 0, plen) ||
            (qm != NULL &&
             !copy_span(req->query, sizeof(req->query), qm, 1, h->target.len - plen - 1)))
            rc = -EINVAL;
        req->head_len = h->len;
        req->n_headers = h->n_fields;
    } else if (rc < 0) {
        rc = -EINVAL;
    }
    http1_parser_free(&ps);
    return rc;
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
