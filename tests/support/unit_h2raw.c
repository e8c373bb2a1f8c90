/*
 * unit_h2raw.c - a raw HTTP/2 client against a lib/h2 server session (unit_h2raw.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn/tcp_stream.h"
#include "unit_h2raw.h"
#include "unit_loop.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct h2raw *r = arg;
    (void)s;

    assert_true(r->n_req < H2RAW_MAX_REQ);
    r->req[r->n_req] = st;
    r->req_id[r->n_req++] = h2_stream_id(st);
    /* Every request stays open and unread: 200 without END_STREAM, no window given back. */
    assert_int_equal(h2_stream_respond(st, 200, NULL, 0, false), 0);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct h2raw *r = arg;
    (void)s;
    (void)err;
    r->closed_calls++;
}

static const struct h2_session_cbs cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

void
h2raw_pump(struct h2raw *r)
{
    for (;;) {
        if (r->rx_cap - r->rx_len < 65536) {
            r->rx_cap = r->rx_cap ? 2 * r->rx_cap : 1 << 17;
            r->rx = realloc(r->rx, r->rx_cap);
            assert_non_null(r->rx);
        }
        ssize_t n = read(r->peer, r->rx + r->rx_len, r->rx_cap - r->rx_len);
        if (n > 0) {
            r->rx_len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            r->eof = true;
        return;
    }
}

static void
write_some(struct h2raw *r)
{
    while (r->tx_off < r->tx_len) {
        ssize_t n = write(r->peer, r->tx + r->tx_off, r->tx_len - r->tx_off);
        if (n <= 0)
            return;
        r->tx_off += (size_t)n;
    }
    r->tx_off = r->tx_len = 0;
}

static bool
cond_sent(void *arg)
{
    struct h2raw *r = arg;
    h2raw_pump(r); /* keep reading, or a server blocked on writing never reads */
    write_some(r);
    return r->tx_len == 0 || r->eof;
}

void
h2raw_send(struct h2raw *r, const void *p, size_t n)
{
    if (r->tx_cap - r->tx_len < n) {
        r->tx_cap = r->tx_len + n + 4096;
        r->tx = realloc(r->tx, r->tx_cap);
        assert_non_null(r->tx);
    }
    memcpy(r->tx + r->tx_len, p, n);
    r->tx_len += n;
    write_some(r);
    if (r->tx_len > 0)
        assert_true(unit_run_until(r->loop, cond_sent, r, 5000));
}

void
h2raw_header(struct h2raw *r, uint32_t n, uint8_t type, uint8_t flags, uint32_t sid)
{
    uint8_t hd[9] = {
        (uint8_t)(n >> 16),          (uint8_t)(n >> 8),    (uint8_t)n,          type,        flags,
        (uint8_t)(sid >> 24 & 0x7f), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    h2raw_send(r, hd, sizeof(hd));
}

void
h2raw_frame(struct h2raw *r, uint8_t type, uint8_t flags, uint32_t sid, const void *p, size_t n)
{
    h2raw_header(r, (uint32_t)n, type, flags, sid);
    if (n > 0)
        h2raw_send(r, p, n);
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t
h2raw_frames(const struct h2raw *r, struct h2raw_frame *out, size_t max)
{
    size_t k = 0;
    for (size_t off = 0; off + 9 <= r->rx_len && k < max;) {
        const uint8_t *h = r->rx + off;
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        if (off + 9 + len > r->rx_len)
            break;
        struct h2raw_frame *f = &out[k++];
        memset(f, 0, sizeof(*f));
        f->type = h[3];
        f->flags = h[4];
        f->sid = be32(h + 5) & 0x7fffffff;
        f->len = len;
        f->payload = h + 9;
        if (f->type == H2F_RST && len == 4)
            f->code = be32(h + 9);
        if (f->type == H2F_GOAWAY && len >= 8) {
            f->last_sid = be32(h + 9) & 0x7fffffff;
            f->code = be32(h + 13);
        }
        off += 9 + len;
    }
    return k;
}

void
h2raw_run(struct h2raw *r, unsigned ms)
{
    uint64_t end = loop_now_ms(r->loop) + ms;
    while (loop_now_ms(r->loop) < end) {
        unit_run_for(r->loop, 1);
        h2raw_pump(r);
    }
}

static bool
cond_closed(void *arg)
{
    struct h2raw *r = arg;
    h2raw_pump(r);
    return r->eof && r->closed_calls > 0;
}

bool
h2raw_wait_closed(struct h2raw *r, unsigned timeout_ms)
{
    return unit_run_until(r->loop, cond_closed, r, timeout_ms);
}

void
h2raw_start(struct h2raw *r)
{
    int fds[2];

    memset(r, 0, sizeof(*r));
    r->loop = loop_new();
    unit_socketpair(fds);
    r->peer = fds[0];
    r->srv = h2_session_new(r->loop, tcp_stream_new(r->loop, fds[1]), true, &cbs, r);
}

void
h2raw_setup(struct h2raw *r)
{
    h2raw_start(r);
    h2raw_send(r, preface, sizeof(preface) - 1);
    h2raw_frame(r, H2F_SETTINGS, 0, 0, NULL, 0);
    h2raw_run(r, 5);
    /* The server's SETTINGS came first; ACK it so its limits are in force. */
    struct h2raw_frame f[4];
    size_t n = h2raw_frames(r, f, 4);
    assert_true(n >= 1);
    assert_int_equal(f[0].type, H2F_SETTINGS);
    h2raw_frame(r, H2F_SETTINGS, H2FL_ACK, 0, NULL, 0);
    h2raw_run(r, 5);
}

void
h2raw_teardown(struct h2raw *r)
{
    for (int i = 0; i < r->n_req; i++)
        stream_close(h2_stream_as_stream(r->req[i]), true);
    h2_session_close(r->srv, 0);
    h2_session_release(r->srv);
    unit_run_for(r->loop, 2);
    close(r->peer);
    loop_free(r->loop);
    free(r->rx);
    free(r->tx);
}

size_t
h2raw_idx(uint8_t *p, uint8_t idx)
{
    p[0] = (uint8_t)(0x80 | idx);
    return 1;
}

size_t
h2raw_lit_idx(uint8_t *p, uint8_t idx, const char *value)
{
    size_t n = strlen(value);
    assert_true(idx < 15 && n < 127);
    p[0] = idx;
    p[1] = (uint8_t)n;
    memcpy(p + 2, value, n);
    return 2 + n;
}

size_t
h2raw_lit_n(uint8_t *p, const char *name, size_t a, const char *value, size_t b)
{
    assert_true(a < 127 && b < 127);
    p[0] = 0;
    p[1] = (uint8_t)a;
    memcpy(p + 2, name, a);
    p[2 + a] = (uint8_t)b;
    memcpy(p + 3 + a, value, b);
    return 3 + a + b;
}

size_t
h2raw_lit(uint8_t *p, const char *name, const char *value)
{
    return h2raw_lit_n(p, name, strlen(name), value, strlen(value));
}

size_t
h2raw_get_fields(uint8_t *p)
{
    size_t n = h2raw_idx(p, 2);                /* :method GET */
    n += h2raw_idx(p + n, 7);                  /* :scheme https */
    n += h2raw_lit_idx(p + n, 4, "/x");        /* :path */
    n += h2raw_lit_idx(p + n, 1, "a.example"); /* :authority */
    return n;
}

void
h2raw_connect(struct h2raw *r, uint32_t sid, unsigned extra)
{
    uint8_t *b = malloc(64 + 8 * (size_t)extra);
    assert_non_null(b);
    size_t n = h2raw_lit_idx(b, 2, "CONNECT");
    n += h2raw_lit_idx(b + n, 1, "198.18.0.10:8080");
    for (unsigned i = 0; i < extra; i++)
        n += h2raw_lit(b + n, "x-h", "v");
    h2raw_frame(r, H2F_HEADERS, H2FL_END_HEADERS, sid, b, n);
    free(b);
}
