/*
 * wp_h2_fixture.c - see wp_h2_fixture.h. The HTTP/1.1 fixture's socket ends are dup()ed for
 * the HTTP/2 sessions here, so its teardown closing them does not close ours twice.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "buf/buf.h"
#include "conn/tcp_stream.h"
#include "unit_loop.h"
#include "wp_h2_fixture.h"

static void
rx_add(struct w2_rx *r, const void *p, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->p = xrealloc(r->p, r->cap);
    }
    memcpy(r->p + r->len, p, n);
    r->len += n;
    r->p[r->len] = '\0';
}

static void
rx_pump(struct stream *s, struct w2_rx *r)
{
    char b[65536];

    while (!r->paused && !r->eof && r->err == 0) {
        ssize_t n = stream_read(s, b, sizeof(b));
        if (n == -EAGAIN)
            return;
        if (n == 0)
            r->eof = true;
        else if (n < 0)
            r->err = (int)n;
        else
            rx_add(r, b, (size_t)n);
    }
}

static void
tx_pump(struct h2_stream *st, struct w2_tx *t)
{
    struct stream *s = h2_stream_as_stream(st);

    while (t->off < t->len) {
        ssize_t n = stream_write(s, t->p + t->off, t->len - t->off);
        if (n <= 0)
            return;
        t->off += (size_t)n;
    }
    if (t->ended || (!t->shut && t->trailers == NULL))
        return;
    t->ended = true;
    if (t->trailers != NULL) {
        struct h2_header h[H2_MAX_TRAILERS];
        size_t n = 0;
        for (; t->trailers[2 * n] != NULL && n < H2_MAX_TRAILERS; n++)
            h[n] = (struct h2_header){t->trailers[2 * n], t->trailers[2 * n + 1]};
        (void)h2_stream_send_trailers(st, h, n);
    } else {
        (void)stream_shutdown_write(s);
    }
}

static void
hdrs_dump(struct h2_stream *st, char *out, size_t size, bool trailers)
{
    struct h2_header h[200];
    size_t n = trailers ? h2_stream_trailers(st, h, 200) : h2_stream_headers(st, h, 200);
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && i < 200; i++) {
        int k = snprintf(out + o, size - o, "%s: %s\n", h[i].name, h[i].value);
        if (k < 0 || (size_t)k >= size - o)
            break;
        o += (size_t)k;
    }
}

static size_t
pairs(const char *const *kv, struct h2_header *h, size_t max)
{
    size_t n = 0;
    for (; kv != NULL && kv[2 * n] != NULL && n < max; n++)
        h[n] = (struct h2_header){kv[2 * n], kv[2 * n + 1]};
    return n;
}

/* ---- fake endpoints ------------------------------------------------------ */

static void
on_req_event(void *arg, struct stream *s, unsigned events)
{
    struct w2_req *r = arg;
    (void)events;

    rx_pump(s, &r->rx);
    if (r->rx.err != 0)
        return;
    if (r->rx.eof && r->trailers[0] == '\0')
        hdrs_dump(r->st, r->trailers, sizeof(r->trailers), true);
    if (r->w->mode == W2_ECHO && r->rx.eof && !r->responded) {
        char ep[16];
        snprintf(ep, sizeof(ep), "ep%d", r->w->t.be[r->be].ep);
        const char *h[] = {"x-ep", ep, "x-path", r->path, NULL};
        struct h2_header hh[4];
        size_t n = pairs(h, hh, 4);
        r->responded = true;
        if (h2_stream_respond(r->st, 200, hh, n, false) == 0) {
            r->tx = (struct w2_tx){.p = r->rx.p, .len = r->rx.len, .shut = true};
        }
    }
    if (r->responded)
        tx_pump(r->st, &r->tx);
    stream_want(s, !r->rx.paused && !r->rx.eof && r->rx.err == 0,
                r->responded && (r->tx.off < r->tx.len ||
                                 ((r->tx.shut || r->tx.trailers) && !r->tx.ended)));
}

static void
on_be_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct w2 *w = arg;
    int be = -1;

    for (int i = 0; i < w->n_bs; i++)
        if (w->bs[i] == s)
            be = i;
    CHECK(be >= 0 && w->n_reqs < W2_REQS);
    struct w2_req *r = xcalloc(1, sizeof(*r));
    w->reqs[w->n_reqs++] = r;
    r->w = w;
    r->be = be;
    r->st = st;
    snprintf(r->method, sizeof(r->method), "%s", h2_stream_method(st) ?: "");
    snprintf(r->path, sizeof(r->path), "%s", h2_stream_path(st) ?: "");
    snprintf(r->authority, sizeof(r->authority), "%s", h2_stream_authority(st) ?: "");
    hdrs_dump(st, r->hdrs, sizeof(r->hdrs), false);
    stream_set_handler(h2_stream_as_stream(st), on_req_event, r);
    stream_want(h2_stream_as_stream(st), true, false);
}

static const struct h2_session_cbs be_cbs = {.on_request = on_be_request};

/* New fake endpoint connections get an HTTP/2 server session. */
static void
attach(struct w2 *w)
{
    while (!w->raw_be && w->n_bs < w->t.n_be) {
        int fd = dup(w->t.be[w->n_bs].fd);
        CHECK(fd >= 0);
        w->bs[w->n_bs] = NULL;
        w->n_bs++;
        w->bs[w->n_bs - 1] = h2_session_new(w->t.loop, tcp_stream_new(w->t.loop, fd), true,
                                            &be_cbs, w);
    }
}

struct until {
    struct w2 *w;
    bool (*cond)(struct w2 *w, void *arg);
    void *arg;
};

static bool
until_cond(void *arg)
{
    struct until *u = arg;
    attach(u->w);
    return u->cond != NULL && u->cond(u->w, u->arg);
}

bool
w2_until(struct w2 *w, bool (*cond)(struct w2 *w, void *arg), void *arg, uint64_t ms)
{
    struct until u = {w, cond, arg};
    return unit_run_until(w->t.loop, until_cond, &u, ms);
}

void
w2_run(struct w2 *w, uint64_t ms)
{
    struct until u = {w, NULL, NULL};
    unit_run_until(w->t.loop, until_cond, &u, ms);
}

/* ---- the client ----------------------------------------------------------- */

static int
on_client_ready(void *arg, struct h2_session *s)
{
    (void)s;
    ((struct w2 *)arg)->cready = true;
    return 0;
}

static const struct h2_session_cbs client_cbs = {.on_ready = on_client_ready};

static void
on_call_event(void *arg, struct stream *s, unsigned events)
{
    struct w2_call *c = arg;
    (void)events;

    tx_pump(c->st, &c->tx);
    if (c->status != 0) {
        rx_pump(s, &c->rx);
        if (c->rx.eof)
            hdrs_dump(c->st, c->trailers, sizeof(c->trailers), true);
    }
    stream_want(s, c->status > 0 && !c->rx.paused && !c->rx.eof && c->rx.err == 0,
                c->tx.off < c->tx.len || ((c->tx.shut || c->tx.trailers) && !c->tx.ended));
}

static void
on_call_response(void *arg, struct h2_stream *st, int status)
{
    struct w2_call *c = arg;
    c->status = status;
    if (status > 0)
        hdrs_dump(st, c->hdrs, sizeof(c->hdrs), false);
    else
        c->rx.err = status;
    on_call_event(c, h2_stream_as_stream(st), 0);
}

static bool
c_ready(struct w2 *w, void *arg)
{
    (void)arg;
    return w->cready;
}

void
w2_setup_ex(struct w2 *w, const char *spec, int workload)
{
    memset(w, 0, sizeof(*w));
    wpt_setup_serve(&w->t, spec, workload, L7PATH_BASE, wp_http2_serve);
    int fd = dup(w->t.cfd);
    CHECK(fd >= 0);
    w->cs = h2_session_new(w->t.loop, tcp_stream_new(w->t.loop, fd), false, &client_cbs, w);
    assert_true(w2_until(w, c_ready, NULL, 3000));
}

void
w2_setup(struct w2 *w, const char *spec)
{
    w2_setup_ex(w, spec, -1);
}

int
w2_call(struct w2 *w, const char *method, const char *path, const char *const *hdrs,
        const void *body, size_t len, bool end)
{
    struct h2_header h[H2_REQUEST_MAX_HEADERS];
    size_t n = pairs(hdrs, h, H2_REQUEST_MAX_HEADERS);

    CHECK(w->n_calls < W2_CALLS);
    struct w2_call *c = xcalloc(1, sizeof(*c));
    c->w = w;
    c->st = h2_session_request(w->cs, method, path, "echo", h, n, on_call_response, c);
    assert_non_null(c->st);
    c->tx = (struct w2_tx){.p = body, .len = len, .shut = end};
    stream_set_handler(h2_stream_as_stream(c->st), on_call_event, c);
    on_call_event(c, h2_stream_as_stream(c->st), 0);
    w->calls[w->n_calls] = c;
    return w->n_calls++;
}

void
w2_call_more(struct w2 *w, int i, const void *body, size_t len, bool end)
{
    struct w2_call *c = w->calls[i];
    c->tx = (struct w2_tx){.p = body, .len = len, .shut = end};
    on_call_event(c, h2_stream_as_stream(c->st), 0);
}

void
w2_call_trailers(struct w2 *w, int i, const void *body, size_t len, const char *const *trailers)
{
    struct w2_call *c = w->calls[i];
    c->tx = (struct w2_tx){.p = body, .len = len, .trailers = trailers};
    on_call_event(c, h2_stream_as_stream(c->st), 0);
}

static bool
c_status(struct w2 *w, void *arg)
{
    return w->calls[*(int *)arg]->status != 0;
}

static bool
c_complete(struct w2 *w, void *arg)
{
    struct w2_call *c = w->calls[*(int *)arg];
    return c->rx.eof || c->rx.err != 0;
}

bool
w2_status(struct w2 *w, int i)
{
    return w2_until(w, c_status, &i, 3000);
}

bool
w2_complete(struct w2 *w, int i)
{
    return w2_until(w, c_complete, &i, 5000);
}

static bool
c_reqs(struct w2 *w, void *arg)
{
    return w->n_reqs >= *(int *)arg;
}

bool
w2_reqs(struct w2 *w, int n)
{
    return w2_until(w, c_reqs, &n, 3000);
}

static bool
c_req_eof(struct w2 *w, void *arg)
{
    int r = *(int *)arg;
    return r < w->n_reqs && (w->reqs[r]->rx.eof || w->reqs[r]->rx.err != 0);
}

bool
w2_req_eof(struct w2 *w, int r)
{
    return w2_until(w, c_req_eof, &r, 3000);
}

void
w2_resp_head(struct w2 *w, int r, int status, const char *const *hdrs)
{
    struct w2_req *q = w->reqs[r];
    struct h2_header h[H2_RESPOND_MAX_HEADERS];
    size_t n = pairs(hdrs, h, H2_RESPOND_MAX_HEADERS);
    q->responded = true;
    assert_int_equal(h2_stream_respond(q->st, status, h, n, false), 0);
}

void
w2_resp_more(struct w2 *w, int r, const void *body, size_t len, bool end)
{
    struct w2_req *q = w->reqs[r];
    q->tx = (struct w2_tx){.p = body, .len = len, .shut = end};
    on_req_event(q, h2_stream_as_stream(q->st), 0);
}

void
w2_respond(struct w2 *w, int r, int status, const char *const *hdrs, const void *body,
           size_t len, const char *const *trailers)
{
    struct w2_req *q = w->reqs[r];
    if (len == 0 && trailers == NULL) {
        struct h2_header h[H2_RESPOND_MAX_HEADERS];
        size_t n = pairs(hdrs, h, H2_RESPOND_MAX_HEADERS);
        q->responded = true;
        q->tx.ended = true;
        assert_int_equal(h2_stream_respond(q->st, status, h, n, true), 0);
        return;
    }
    w2_resp_head(w, r, status, hdrs);
    q->tx = (struct w2_tx){.p = body, .len = len, .shut = true, .trailers = trailers};
    on_req_event(q, h2_stream_as_stream(q->st), 0);
}

void
w2_reset_req(struct w2 *w, int r)
{
    struct w2_req *q = w->reqs[r];
    q->closed = true;
    stream_close(h2_stream_as_stream(q->st), true);
}

void
w2_reset_call(struct w2 *w, int i)
{
    struct w2_call *c = w->calls[i];
    c->closed = true;
    stream_close(h2_stream_as_stream(c->st), true);
}

struct be_has {
    int i;
    const char *needle;
};

static bool
c_be_raw(struct w2 *w, void *arg)
{
    struct be_has *a = arg;
    char b[16384];

    if (a->i >= w->t.n_be)
        return false;
    struct wpt_backend *be = &w->t.be[a->i];
    for (;;) {
        ssize_t n = be->fd >= 0 ? recv(be->fd, b, sizeof(b), 0) : -1;
        if (n <= 0)
            break;
        if (be->rx_len + (size_t)n + 1 > be->rx_cap) {
            be->rx_cap = (be->rx_len + (size_t)n + 1) * 2;
            be->rx = xrealloc(be->rx, be->rx_cap);
        }
        memcpy(be->rx + be->rx_len, b, (size_t)n);
        be->rx_len += (size_t)n;
        be->rx[be->rx_len] = '\0';
    }
    return be->rx != NULL && strstr(be->rx, a->needle) != NULL;
}

bool
w2_be_raw_has(struct w2 *w, int i, const char *needle)
{
    struct be_has a = {i, needle};
    return w2_until(w, c_be_raw, &a, 3000);
}

const char *
w2_hdr(const char *hdrs, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    for (const char *p = hdrs; p != NULL && *p != '\0';) {
        const char *e = strchr(p, '\n');
        if (e == NULL)
            break;
        if ((size_t)(e - p) > nl + 1 && strncmp(p, name, nl) == 0 && p[nl] == ':') {
            snprintf(out, size, "%.*s", (int)(e - p - nl - 2), p + nl + 2);
            return out;
        }
        p = e + 1;
    }
    return NULL;
}

void
w2_teardown(struct w2 *w)
{
    for (int i = 0; i < w->n_calls; i++) {
        if (!w->calls[i]->closed)
            stream_close(h2_stream_as_stream(w->calls[i]->st), true);
    }
    for (int i = 0; i < w->n_reqs; i++) {
        if (!w->reqs[i]->closed)
            stream_close(h2_stream_as_stream(w->reqs[i]->st), true);
    }
    h2_session_close(w->cs, 0);
    h2_session_release(w->cs);
    for (int i = 0; i < w->n_bs; i++) {
        h2_session_close(w->bs[i], 0);
        h2_session_release(w->bs[i]);
    }
    unit_run_for(w->t.loop, 5);
    for (int i = 0; i < w->n_calls; i++) {
        free(w->calls[i]->rx.p);
        free(w->calls[i]);
    }
    for (int i = 0; i < w->n_reqs; i++) {
        free(w->reqs[i]->rx.p);
        free(w->reqs[i]);
    }
    wpt_teardown(&w->t);
}
