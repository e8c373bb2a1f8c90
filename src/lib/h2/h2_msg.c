/*
 * h2_msg.c - HTTP/2 messages beyond CONNECT tunnels: client requests with a
 * :path, header fields kept whole (requests, responses, trailers) and
 * trailers sent after a body, as gRPC (lib/rpc) needs them.
 *
 * The body goes through the same stream buffers and manual flow control as
 * a tunnel; only the header handling differs, so CONNECT streams pay nothing
 * for it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "h2/h2_internal.h"

/* ---- kept header fields ------------------------------------------------- */

/*
 * The caller counts every field against the header list caps before it gets
 * here (on_header), so a peer cannot grow this past them.
 */
void
h2_fields_add(struct h2_fields *f, const uint8_t *name, size_t namelen, const uint8_t *value,
              size_t valuelen)
{
    size_t need = namelen + valuelen + 2;

    if (f->cap - f->len < need) {
        size_t ncap = f->cap ? f->cap : 256;
        while (ncap - f->len < need)
            ncap *= 2;
        f->data = xrealloc(f->data, ncap);
        f->cap = ncap;
    }
    memcpy(f->data + f->len, name, namelen);
    f->data[f->len + namelen] = '\0';
    f->len += namelen + 1;
    memcpy(f->data + f->len, value, valuelen);
    f->data[f->len + valuelen] = '\0';
    f->len += valuelen + 1;
    f->n++;
}

/* nghttp2 refuses NUL in names and values, so each string ends at its own NUL. */
const char *
h2_fields_find(const struct h2_fields *f, const char *name)
{
    size_t off = 0;

    for (unsigned i = 0; i < f->n; i++) {
        const char *k = f->data + off;
        const char *v = k + strlen(k) + 1;
        if (strcmp(k, name) == 0)
            return v;
        off = (size_t)(v + strlen(v) + 1 - f->data);
    }
    return NULL;
}

static size_t
fields_list(const struct h2_fields *f, struct h2_header *out, size_t max)
{
    const char *p = f->data;

    for (unsigned i = 0; i < f->n && i < max; i++) {
        out[i].name = p;
        out[i].value = p + strlen(p) + 1;
        p = out[i].value + strlen(out[i].value) + 1;
    }
    return f->n;
}

size_t
h2_stream_headers(const struct h2_stream *st, struct h2_header *out, size_t max)
{
    return fields_list(&st->fields, out, max);
}

size_t
h2_stream_trailers(const struct h2_stream *st, struct h2_header *out, size_t max)
{
    return fields_list(&st->trailers, out, max);
}

void
h2_fields_clear(struct h2_fields *f)
{
    f->len = 0;
    f->n = 0;
}

void
h2_fields_cleanup(struct h2_fields *f)
{
    free(f->data);
    memset(f, 0, sizeof(*f));
}

/* ---- requests ----------------------------------------------------------- */

struct h2_stream *
h2_session_request(struct h2_session *s, const char *method, const char *path,
                   const char *authority, const struct h2_header *hdrs, size_t n_hdrs,
                   h2_response_fn *cb, void *arg)
{
    nghttp2_nv nva[4 + H2_REQUEST_MAX_HEADERS];
    size_t n = 0;

    /* Servers (nghttp2 among them) refuse requests without :authority or host. */
    if (s->state != H2_RUNNING || s->server || authority == NULL || n_hdrs > H2_REQUEST_MAX_HEADERS)
        return NULL;
    nva[n++] = H2_NV(":method", method);
    nva[n++] = H2_NV(":scheme", "https");
    nva[n++] = H2_NV(":path", path);
    nva[n++] = H2_NV(":authority", authority);
    for (size_t i = 0; i < n_hdrs; i++)
        nva[n++] = H2_NV(hdrs[i].name, hdrs[i].value);
    struct h2_stream *st = h2_stream_submit(s, nva, n, cb, arg);
    if (st != NULL)
        st->keep_fields = true; /* nothing arrives before the loop runs again */
    return st;
}

const char *
h2_stream_trailer(const struct h2_stream *st, const char *name)
{
    return h2_fields_find(&st->trailers, name);
}

/* ---- trailers we send --------------------------------------------------- */

int
h2_stream_send_trailers(struct h2_stream *st, const struct h2_header *hdrs, size_t n)
{
    struct h2_session *s = st->sess;

    if (n == 0 || n > H2_MAX_TRAILERS)
        return -EINVAL;
    /* A server stream has a body (and so a data source to end) only after respond(end=false). */
    if (st->h2_closed || st->released || st->local_eof || s->state != H2_RUNNING ||
        (s->server && !st->responded))
        return -EPIPE;
    for (size_t i = 0; i < n; i++)
        h2_fields_add(&st->trailers_out, (const uint8_t *)hdrs[i].name, strlen(hdrs[i].name),
                      (const uint8_t *)hdrs[i].value, strlen(hdrs[i].value));
    st->local_eof = true;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(s->ng, st->id);
    }
    h2_schedule_flush(s);
    return 0;
}

int
h2_stream_submit_trailers(nghttp2_session *ng, struct h2_stream *st)
{
    nghttp2_nv nva[H2_MAX_TRAILERS];
    const char *p = st->trailers_out.data;
    size_t n = 0;

    for (; n < st->trailers_out.n && n < ARRAY_LEN(nva); n++) {
        const char *v = p + strlen(p) + 1;
        nva[n] = H2_NV(p, v);
        p = v + strlen(v) + 1;
    }
    /* nghttp2 copies the fields. */
    int rv = nghttp2_submit_trailer(ng, st->id, nva, n);
    h2_fields_cleanup(&st->trailers_out);
    return rv;
}
