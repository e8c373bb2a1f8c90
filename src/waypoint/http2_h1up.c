/*
 * http2_h1up.c - an HTTP/2 request to an endpoint whose port speaks HTTP/1.1 (its Route says
 * HTTP1): the request is written with lib/http1's serializer (the body chunked unless the
 * client gave its length), the response read with lib/http1's parser and passed back as
 * HTTP/2 (a chunked body's trailers as HTTP/2 trailers). One connection per try, closed at
 * its end; no second codec.
 *
 * Back-pressure: request bytes go into a capped buffer (WP_H2_H1_BUF) that is written to the
 * endpoint; response bytes are parsed only as far as the client's stream takes their body.
 */
#define LOG_SCOPE "waypoint"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "http1/http1_write.h"
#include "log/log.h"
#include "http2_internal.h"

static struct log_ratelimit h1up_rl = LOG_RATELIMIT_INIT(10000, 5);

void
wp_h2_h1_drop(struct wp_h2_x *x)
{
    if (x->h1_connecting != NULL) {
        x->c->cfg->up.cancel(x->c->cfg->up.ctx, x->h1_connecting);
        x->h1_connecting = NULL;
    }
    if (x->h1s != NULL)
        stream_close(x->h1s, !x->resp_done);
    x->h1s = NULL;
    http1_parser_free(&x->h1rs);
    buf_cleanup(&x->h1in);
    buf_cleanup(&x->h1out);
}

static void
on_h1_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    wp_h2_pump(arg);
}

/* The request head: request line, Host, the fields to send, the body's framing. */
static int
put_head(struct wp_h2_x *x)
{
    struct route_hdr_list *l = &x->hdrs;
    bool has_len = false;
    int rc = http1_put_request_line(&x->h1out, x->method, strlen(x->method), x->v.target,
                                    x->v.target_len, 1);
    if (rc == 0)
        rc = http1_put_field(&x->h1out, "host", 4, l->v[0].value, l->v[0].value_len);
    for (size_t i = 1; i < l->n && rc == 0; i++) {
        const struct route_hdr *f = &l->v[i];
        if (f->name_len == 2 && strncasecmp(f->name, "te", 2) == 0)
            continue; /* HTTP/2's te: trailers means nothing to an HTTP/1.1 hop */
        if (f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0)
            has_len = true;
        rc = http1_put_field(&x->h1out, f->name, f->name_len, f->value, f->value_len);
    }
    /* No length and a body to come (or of unknown size): chunked. */
    x->h1_chunked = !has_len && !(x->req_eof && buf_len(&x->replay) == 0 && x->replay_ok);
    if (rc == 0 && x->h1_chunked)
        rc = http1_put_field(&x->h1out, "transfer-encoding", 17, "chunked", 7);
    if (rc == 0)
        rc = http1_put_crlf(&x->h1out);
    return rc;
}

static void
on_h1_connect(void *arg, struct stream *s, int err)
{
    struct wp_h2_x *x = arg;
    struct http1_limits lim = {.max_head = WP_H2_H1_HEAD};

    x->h1_connecting = NULL;
    if (err < 0 || s == NULL) {
        log_warn_rl(&h1up_rl, "upstream connect to %s port %u: %s",
                    x->cur_ep->name ? x->cur_ep->name : "?", x->cur_port, mesh_strerror(err));
        wp_h2_try_failed(x, WP_FLAG_UF);
        return;
    }
    x->h1s = s;
    buf_init(&x->h1out, WP_H2_H1_BUF);
    buf_init(&x->h1in, WP_H2_H1_BUF);
    http1_parser_init(&x->h1rs, true, &lim);
    http1_parser_expect(&x->h1rs, x->method, strlen(x->method));
    stream_set_handler(s, on_h1_event, x);
    if (put_head(x) < 0) {
        wp_h2_local(x, 431, 0, "request_headers_too_large", "Request Header Fields Too Large",
                    NULL);
        return;
    }
    wp_h2_pump(x);
}

void
wp_h2_h1_connect(struct wp_h2_x *x)
{
    const struct wp_l7_conn *cfg = x->c->cfg;
    int err = 0;

    x->h1_connecting = cfg->up.connect(cfg->up.ctx, x->cur_ep, x->cur_port, on_h1_connect, x, &err);
    if (x->h1_connecting == NULL) {
        log_warn_rl(&h1up_rl, "upstream connect to %s port %u: %s",
                    x->cur_ep->name ? x->cur_ep->name : "?", x->cur_port, mesh_strerror(err));
        wp_h2_try_failed(x, WP_FLAG_UF);
    }
}

ssize_t
wp_h2_h1_write(struct wp_h2_x *x, const void *p, size_t n)
{
    const size_t framing = 32;
    size_t room = buf_space(&x->h1out);

    if (room <= framing)
        return -EAGAIN;
    if (n > room - framing)
        n = room - framing;
    int rc = x->h1_chunked ? http1_put_chunk(&x->h1out, p, n) : buf_append(&x->h1out, p, n);
    CHECK(rc == 0);
    return (ssize_t)n;
}

int
wp_h2_h1_end(struct wp_h2_x *x, const struct h2_header *tr, size_t n)
{
    size_t need = 5;

    if (!x->h1_chunked)
        return 0;
    for (size_t i = 0; i < n; i++)
        need += strlen(tr[i].name) + strlen(tr[i].value) + 4;
    /* At most H2_SERVER_HEADER_LIST bytes (lib/h2's cap), less than the buffer: once it has
     * drained this far they fit. */
    if (buf_space(&x->h1out) < need)
        return -EAGAIN;
    CHECK(buf_append(&x->h1out, "0\r\n", 3) == 0); /* room checked above */
    for (size_t i = 0; i < n; i++) {
        /* A field HTTP/1.1 cannot carry (-EINVAL) is left out; the others go. */
        int rc = http1_put_field(&x->h1out, tr[i].name, strlen(tr[i].name), tr[i].value,
                                 strlen(tr[i].value));
        CHECK(rc == 0 || rc == -EINVAL);
    }
    CHECK(http1_put_crlf(&x->h1out) == 0);
    return 0;
}

/* The response head: status and fields, hop-by-hop ones aside. */
static int
h1_head(struct wp_h2_x *x, const char *base, const struct http1_head *h)
{
    struct route_hdr_list l = {0};

    for (size_t i = 0; i < h->n_fields; i++) {
        const struct http1_field *f = &h->fields[i];
        if (http1_hop_by_hop(h, base, i) ||
            wp_h2_conn_specific(base + f->name.off, f->name.len, base + f->value.off,
                                f->value.len))
            continue;
        wp_l7_hdr_push(&l, base + f->name.off, f->name.len, base + f->value.off, f->value.len);
    }
    bool end = h->body == HTTP1_BODY_NONE;
    int rc = wp_h2_resp_head_list(x, h->status, &l, end, NULL);
    route_hdr_list_free(&l);
    return rc;
}

static void
h1_trailers(struct wp_h2_x *x, const char *base)
{
    struct h2_header tr[WP_H2_TRAILERS];
    char *own[2 * WP_H2_TRAILERS];
    size_t n = 0;

    for (size_t i = 0; i < x->h1rs.n_trailers && n < WP_H2_TRAILERS; i++, n++) {
        const struct http1_field *f = &x->h1rs.trailers[i];
        own[2 * n] = xstrndup(base + f->name.off, f->name.len);
        for (char *p = own[2 * n]; *p != '\0'; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        own[2 * n + 1] = xstrndup(base + f->value.off, f->value.len);
        tr[n] = (struct h2_header){own[2 * n], own[2 * n + 1]};
        if (strcmp(own[2 * n], "grpc-status") == 0)
            wp_h2_note_grpc_status(x, own[2 * n + 1]);
    }
    int rc = n > 0 ? h2_stream_send_trailers(x->down, tr, n)
                   : stream_shutdown_write(h2_stream_as_stream(x->down));
    for (size_t i = 0; i < 2 * n; i++)
        free(own[i]);
    x->resp_done = rc == 0;
    wp_h2_finish(x, rc == 0 ? 0 : WP_FLAG_DC);
}

bool
wp_h2_h1_flush(struct wp_h2_x *x)
{
    bool progress = false;

    while (buf_len(&x->h1out) > 0) {
        ssize_t n = stream_write(x->h1s, buf_head(&x->h1out), buf_len(&x->h1out));
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            /* It takes no more: the response side hears why. */
            buf_consume(&x->h1out, buf_len(&x->h1out));
            x->up_wdead = true;
            return true;
        }
        buf_consume(&x->h1out, (size_t)n);
        progress = true;
    }
    return progress;
}

/* Moves request bytes out and response bytes in; parses the response into the client's stream. */
void
wp_h2_h1_pump(struct wp_h2_x *x, bool *want_down_wr)
{
    struct stream *s = x->h1s, *d = h2_stream_as_stream(x->down);

    (void)wp_h2_h1_flush(x);
    for (;;) {
        size_t room;
        char *p = buf_reserve(&x->h1in, 16384, &room);
        if (p == NULL || x->h1_eof)
            break;
        ssize_t n = stream_read(s, p, room);
        if (n == -EAGAIN)
            break;
        if (n <= 0) {
            x->h1_eof = true;
            break;
        }
        buf_commit(&x->h1in, (size_t)n);
    }
    while (!x->finished) {
        const char *p = buf_head(&x->h1in);
        size_t len = buf_len(&x->h1in), used = 0;
        struct http1_span data = {0};

        if (x->resp_head) {
            void *w;
            ssize_t room = d->ops->reserve(d, len > 0 ? len : 1, &w);
            if (room == -EAGAIN) {
                *want_down_wr = true;
                break;
            }
            if (room < 0) {
                wp_h2_finish(x, WP_FLAG_DC);
                return;
            }
            d->ops->commit(d, 0);
            if ((size_t)room < len)
                len = (size_t)room;
        }
        int ev = len > 0 || !x->h1_eof ? http1_parse(&x->h1rs, p, len, &used, &data)
                                       : http1_parse_eof(&x->h1rs);
        if (ev < 0 && ev != -HTTP1_E_TRUNCATED) {
            log_warn_rl(&h1up_rl, "bad response from %s: %s",
                        x->cur_ep->name ? x->cur_ep->name : "?", x->h1rs.why ? x->h1rs.why : "?");
            if (x->resp_head)
                wp_h2_finish(x, WP_FLAG_UPE);
            else
                wp_h2_local(x, 502, WP_FLAG_UPE, "upstream_protocol_error", "Bad Gateway", NULL);
            return;
        }
        if (ev < 0 || (x->h1_eof && len == 0 && ev == HTTP1_MORE)) {
            if (x->resp_head)
                wp_h2_finish(x, WP_FLAG_UC);
            else
                wp_h2_try_failed(x, WP_FLAG_UC);
            return;
        }
        if (ev == HTTP1_HEAD && x->h1rs.head.status >= 200) {
            struct http1_head h = x->h1rs.head;
            int rc = h1_head(x, p, &h);
            if (rc == 1) {
                wp_h2_retry(x);
                return;
            }
            if (rc < 0) {
                wp_h2_local(x, 502, WP_FLAG_UPE, "upstream_protocol_error", "Bad Gateway", NULL);
                return;
            }
            if (x->resp_done) {
                wp_h2_finish(x, 0);
                return;
            }
        } else if (ev == HTTP1_DATA && x->resp_head) {
            ssize_t w = stream_write(d, p + data.off, data.len);
            CHECK(w == (ssize_t)data.len); /* reserved above */
            x->bytes_out += data.len;
        } else if (ev == HTTP1_END && x->resp_head) {
            h1_trailers(x, p);
            return;
        }
        buf_consume(&x->h1in, used);
        if (used == 0 && (ev == HTTP1_MORE || ev == HTTP1_RAW))
            break;
    }
    if (x->finished)
        return;
    stream_want(s, !x->h1_eof && buf_space(&x->h1in) > 0, buf_len(&x->h1out) > 0);
}
