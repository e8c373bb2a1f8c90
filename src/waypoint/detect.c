/*
 * detect.c - protocol sniffing on a CONNECT stream (detect.h): the decision on a prefix, and
 * the read loop with its cap and window.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "conn/replay_stream.h"
#include "detect.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

const char *
wp_proto_name(enum wp_proto p)
{
    switch (p) {
    case WP_PROTO_HTTP1:
        return "http1";
    case WP_PROTO_HTTP2:
        return "http2";
    case WP_PROTO_TCP:
        return "tcp";
    default:
        return "undecided";
    }
}

/* RFC 9110 5.6.2 tchar. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

enum maybe { NO, MAYBE, YES };

/*
 * HTTP/1.x request line (RFC 9112 3): method SP request-target SP "HTTP/1." - decided once
 * "HTTP/1." is seen. The target is any run of bytes other than SP and controls (the engine
 * checks it strictly later; here only its shape matters).
 */
static enum maybe
http1_line(const unsigned char *p, size_t n)
{
    static const char ver[] = "HTTP/1.";
    size_t i = 0, start;

    for (start = i; i < n && is_tchar(p[i]); i++)
        ;
    if (i == n)
        return MAYBE;
    if (i == start || p[i] != ' ')
        return NO;
    for (start = ++i; i < n && p[i] > ' ' && p[i] != 0x7f; i++)
        ;
    if (i == n)
        return MAYBE;
    if (i == start || p[i] != ' ')
        return NO;
    for (size_t k = 0, j = i + 1; k < sizeof(ver) - 1; k++, j++) {
        if (j == n)
            return MAYBE;
        if (p[j] != (unsigned char)ver[k])
            return NO;
    }
    return YES;
}

static enum maybe
h2_preface_seen(const unsigned char *p, size_t n)
{
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    if (memcmp(p, h2_preface, k) != 0)
        return NO;
    return n >= H2_PREFACE_LEN ? YES : MAYBE;
}

enum wp_proto
wp_sniff(const void *data, size_t n, bool final)
{
    const unsigned char *p = data;

    if (n == 0)
        return final ? WP_PROTO_TCP : WP_PROTO_MORE;
    enum maybe h2 = h2_preface_seen(p, n), h1 = http1_line(p, n);
    if (h2 == YES)
        return WP_PROTO_HTTP2;
    if (h1 == YES)
        return WP_PROTO_HTTP1;
    if (h1 == NO && h2 == NO)
        return WP_PROTO_TCP;
    if (!final)
        return WP_PROTO_MORE;
    /*
     * Still possibly HTTP when no more comes: an HTTP engine, never around L7 policy. HTTP/2
     * only once HTTP/1 is ruled out ("PRI * HTTP/2"): a dribbled "P" may be "POST".
     */
    return h1 == NO ? WP_PROTO_HTTP2 : WP_PROTO_HTTP1;
}

struct wp_detect {
    struct loop *loop;
    struct stream *down;
    struct loop_timer timer;
    struct loop_defer defer; /* the decision, delivered outside the stream's handler */
    wp_detect_fn *cb;
    void *arg;
    enum wp_proto proto;
    int err;
    size_t len;
    unsigned char buf[WP_SNIFF_MAX];
};

static void
deliver(void *arg)
{
    struct wp_detect *d = arg;
    wp_detect_fn *cb = d->cb;
    void *cb_arg = d->arg;
    struct stream *s = NULL;

    if (d->err == 0)
        s = replay_stream_new(d->loop, d->down, d->buf, d->len);
    else
        stream_close(d->down, true);
    enum wp_proto proto = d->proto;
    int err = d->err;
    free(d);
    cb(cb_arg, s, proto, err);
}

static void
decide(struct wp_detect *d, enum wp_proto proto, int err)
{
    loop_timer_stop(d->loop, &d->timer);
    stream_want(d->down, false, false);
    stream_set_handler(d->down, NULL, NULL);
    d->proto = proto;
    d->err = err;
    loop_defer(d->loop, &d->defer, deliver, d);
}

static void
on_timeout(void *arg)
{
    struct wp_detect *d = arg;
    decide(d, wp_sniff(d->buf, d->len, true), 0);
}

static void
on_event(void *arg, struct stream *s, unsigned events)
{
    struct wp_detect *d = arg;

    if (!(events & STREAM_READABLE))
        return;
    for (;;) {
        ssize_t n = stream_read(s, d->buf + d->len, sizeof(d->buf) - d->len);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            decide(d, WP_PROTO_TCP, (int)n);
            return;
        }
        d->len += (size_t)n;
        bool final = n == 0 || d->len == sizeof(d->buf);
        enum wp_proto p = wp_sniff(d->buf, d->len, final);
        if (p != WP_PROTO_MORE) {
            /* At end of stream the replay gives the bytes, then the inner stream its EOF. */
            decide(d, p, 0);
            return;
        }
    }
}

void
wp_detect_start(struct loop *l, struct stream *down, wp_detect_fn *cb, void *arg)
{
    struct wp_detect *d = xcalloc(1, sizeof(*d));

    d->loop = l;
    d->down = down;
    d->cb = cb;
    d->arg = arg;
    stream_set_handler(down, on_event, d);
    stream_want(down, true, false);
    loop_timer_start(l, &d->timer, WP_SNIFF_WINDOW_MS, on_timeout, d);
}
