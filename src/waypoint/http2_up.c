/*
 * http2_up.c - the upstream side of the HTTP/2 engine: an endpoint per try (least outstanding
 * requests, as for HTTP/1.1), an HTTP/2 client session per endpoint and connection that many
 * requests share, retries before a response head while the body is still replayable, the
 * timeout, and the pump that moves bodies and trailers between the two streams.
 *
 * Back-pressure: lib/h2 credits the peer's window only when a reader consumes bytes, so a
 * body is consumed from one stream only as far as the other stream's send buffer takes it; a
 * slow reader on either side stops the sender on the other.
 */
#define LOG_SCOPE "waypoint"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include "base/base.h"
#include "log/log.h"
#include "http2_internal.h"

static struct log_ratelimit up_rl = LOG_RATELIMIT_INIT(10000, 5);

static void x_open(struct wp_h2_x *x);

/* ---- endpoint sessions -------------------------------------------------- */

static void
up_unlink_free(struct wp_h2_up *u)
{
    struct wp_h2_conn *c = u->c;

    for (struct wp_h2_up **pp = &c->ups; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            c->n_ups--;
            break;
        }
    }
    if (u->connecting != NULL)
        c->cfg->up.cancel(c->cfg->up.ctx, u->connecting);
    if (u->sess != NULL) {
        h2_session_close(u->sess, 0);
        h2_session_release(u->sess);
    }
    workload_unref(u->ep);
    free(u);
}

void
wp_h2_up_close(struct wp_h2_up *u)
{
    up_unlink_free(u);
}

/* The session cannot serve its waiters: each of them tries again or answers 503. */
static void
up_failed(struct wp_h2_up *u, unsigned flag)
{
    struct wp_h2_conn *c = u->c;

    u->dead = true;
    u->users++; /* the waiters let go of it below; it goes after them */
    for (struct wp_h2_x *x = c->xs, *next; x != NULL; x = next) {
        next = x->next;
        if (x->us == u && x->waiting && !x->finished)
            wp_h2_try_failed(x, flag);
    }
    if (--u->users == 0)
        up_unlink_free(u);
}

static int
up_on_ready(void *arg, struct h2_session *s)
{
    struct wp_h2_up *u = arg;
    struct wp_h2_conn *c = u->c;
    (void)s;

    u->ready = true;
    for (struct wp_h2_x *x = c->xs, *next; x != NULL; x = next) {
        next = x->next;
        if (x->us == u && x->waiting && !x->finished) {
            x_open(x);
            if (!x->finished)
                wp_h2_pump(x);
        }
    }
    return 0;
}

static void
up_on_closed(void *arg, struct h2_session *s, int err)
{
    struct wp_h2_up *u = arg;
    (void)s;

    log_debug("endpoint session to %s closed: %s", u->ep->name ? u->ep->name : "?",
              mesh_strerror(err));
    /* Streams on it fail by themselves (their callbacks run); waiters are told here. */
    up_failed(u, u->ready ? WP_FLAG_UC : WP_FLAG_UF);
}

static const struct h2_session_cbs up_cbs = {
    .on_ready = up_on_ready,
    .on_closed = up_on_closed,
};

static void
up_on_connect(void *arg, struct stream *s, int err)
{
    struct wp_h2_up *u = arg;

    u->connecting = NULL;
    if (err < 0 || s == NULL) {
        log_warn_rl(&up_rl, "upstream connect to %s port %u: %s", u->ep->name ? u->ep->name : "?",
                    u->port, mesh_strerror(err));
        up_failed(u, WP_FLAG_UF);
        return;
    }
    /* Prior-knowledge h2c inside the endpoint's tunnel. */
    u->sess = h2_session_new(u->c->loop, s, false, &up_cbs, u);
}

static bool
same_ep(const struct workload *a, const struct workload *b)
{
    return a == b || strcmp(a->uid ? a->uid : "", b->uid ? b->uid : "") == 0;
}

/* A session to |ep|:|port| that can take one more stream, or a new one; NULL if none can be. */
static struct wp_h2_up *
up_get(struct wp_h2_conn *c, const struct workload *ep, uint16_t port, int *err)
{
    struct wp_h2_up *idle = NULL;

    for (struct wp_h2_up *u = c->ups; u != NULL; u = u->next) {
        if (u->dead)
            continue;
        if (u->port == port && same_ep(u->ep, ep) &&
            (u->ready ? h2_session_can_open(u->sess) : u->users < H2_CLIENT_MAX_STREAMS))
            return u;
        if (u->users == 0)
            idle = u;
    }
    if (c->n_ups >= WP_H2_UP_MAX) {
        if (idle == NULL) {
            *err = -EMFILE;
            return NULL;
        }
        up_unlink_free(idle); /* the least useful one makes room */
    }
    struct wp_h2_up *u = xcalloc(1, sizeof(*u));
    u->c = c;
    u->ep = workload_ref((struct workload *)ep);
    u->port = port;
    u->next = c->ups;
    c->ups = u;
    c->n_ups++;
    u->connecting = c->cfg->up.connect(c->cfg->up.ctx, ep, port, up_on_connect, u, err);
    if (u->connecting == NULL) {
        up_unlink_free(u);
        return NULL;
    }
    return u;
}

/* ---- tries -------------------------------------------------------------- */

void
wp_h2_drop_up(struct wp_h2_x *x, bool clean)
{
    loop_timer_stop(x->c->loop, &x->t_try);
    x->try_timing = false;
    wp_h2_h1_drop(x);
    x->h1_eof = x->h1_chunked = false;
    if (x->up != NULL) {
        stream_close(h2_stream_as_stream(x->up), !clean);
        x->up = NULL;
    }
    if (x->counted) {
        wp_h1_outstanding_add(x->cur_ep, -1);
        x->counted = false;
    }
    struct wp_h2_up *u = x->us;
    x->us = NULL;
    x->waiting = false;
    x->up_shut = x->up_wdead = false;
    x->sent = 0;
    if (u != NULL && --u->users == 0 && u->dead)
        up_unlink_free(u);
}

static void
on_backoff(void *arg)
{
    struct wp_h2_x *x = arg;
    wp_h2_try(x);
    if (!x->finished)
        wp_h2_pump(x);
}

void
wp_h2_try_failed(struct wp_h2_x *x, unsigned flag)
{
    const struct route_retry *r = &x->act.retry;

    wp_h2_drop_up(x, false);
    if (flag == WP_FLAG_UF && x->have_act && (r->on & ROUTE_RETRY_CONNECT_FAILURE) &&
        x->attempts < x->v.max_tries && x->replay_ok) {
        loop_timer_start(x->c->loop, &x->t_backoff, wp_l7_backoff_ms(r, x->attempts), on_backoff,
                         x);
        return;
    }
    if (x->attempts > 1)
        flag |= WP_FLAG_URX;
    wp_h2_local(x, 503, flag, flag & WP_FLAG_UF ? WP_L7_DETAILS_UF : WP_L7_DETAILS_UC,
                flag & WP_FLAG_UF ? WP_L7_RESET_UF : WP_L7_RESET_UC, NULL);
}

void
wp_h2_retry(struct wp_h2_x *x)
{
    wp_h2_drop_up(x, false);
    loop_timer_start(x->c->loop, &x->t_backoff, wp_l7_backoff_ms(&x->act.retry, x->attempts),
                     on_backoff, x);
}

static void
on_up_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    wp_h2_pump(arg);
}

static void
on_up_response(void *arg, struct h2_stream *st, int status)
{
    struct wp_h2_x *x = arg;
    (void)st;

    if (x->finished)
        return;
    if (status < 0) {
        /* Reset (or its session gone) before a response head. */
        wp_h2_try_failed(x, WP_FLAG_UC);
        return;
    }
    int rc = wp_h2_resp_head(x, status);
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
    wp_h2_pump(x);
}

/* The session is ready: the request goes out on a new stream of it. */
static void
x_open(struct wp_h2_x *x)
{
    struct route_hdr_list *l = &x->hdrs;
    size_t n = l->n - 1;
    struct h2_header *h = xcalloc(n + 1, sizeof(*h));

    x->waiting = false;
    for (size_t i = 0; i < n; i++) {
        const struct route_hdr *f = &l->v[i + 1];
        char *nm = xstrndup(f->name, f->name_len);
        for (char *p = nm; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        h[i].name = nm;
        h[i].value = xstrndup(f->value, f->value_len);
    }
    char *auth = xstrndup(l->v[0].value, l->v[0].value_len);
    char *target = xstrndup(x->v.target, x->v.target_len);
    x->up = n <= H2_REQUEST_MAX_HEADERS
                ? h2_session_request(x->us->sess, x->method, target, auth, h, n, on_up_response, x)
                : NULL;
    for (size_t i = 0; i < n; i++) {
        free((char *)h[i].name);
        free((char *)h[i].value);
    }
    free(h);
    free(auth);
    free(target);
    if (x->up == NULL) {
        if (n > H2_REQUEST_MAX_HEADERS) {
            wp_h2_local(x, 431, 0, "request_headers_too_large", "Request Header Fields Too Large",
                        NULL);
            return;
        }
        wp_h2_try_failed(x, WP_FLAG_UC);
        return;
    }
    stream_set_handler(h2_stream_as_stream(x->up), on_up_event, x);
    stream_want(h2_stream_as_stream(x->up), true, true);
}

/* The backend port's Route says HTTP1: the request is translated (http2_h1up.c). Any other
 * protocol (HTTP2, GRPC, DETECT: the client's own) goes as HTTP/2. */
static bool
backend_h1(const struct wp_h2_x *x)
{
    const struct service *b = x->v.backend;
    if (b == NULL || x->routes == NULL)
        return false;
    const struct route_table *t = route_set_find(x->routes, b->ns, b->hostname, x->v.backend_port);
    return t != NULL && route_table_protocol(t) == ROUTE_PROTO_HTTP1;
}

void
wp_h2_try(struct wp_h2_x *x)
{
    struct wp_h2_conn *c = x->c;
    const struct wp_l7_conn *cfg = c->cfg;
    struct wp_h1_pick pk;
    int err = 0;

    if (x->v.backend != NULL) {
        if (!wp_h1_pick(x->m, x->v.backend, x->v.backend_port, x->tried, x->n_tried, &pk)) {
            if (x->attempts == 0)
                wp_h2_local(x, 503, WP_FLAG_UH, "no_healthy_upstream", "no healthy upstream",
                            NULL);
            else
                wp_h2_try_failed(x, WP_FLAG_UF);
            return;
        }
    } else {
        pk.ep = cfg->workload;
        pk.port = cfg->dst_port;
        if (pk.ep == NULL) {
            wp_h2_local(x, 503, WP_FLAG_UH, "no_healthy_upstream", "no healthy upstream", NULL);
            return;
        }
    }
    x->attempts++;
    x->cur_ep = pk.ep;
    x->cur_port = pk.port;
    if (x->n_tried < ARRAY_LEN(x->tried))
        x->tried[x->n_tried++] = pk.ep;
    wp_h1_outstanding_add(pk.ep, 1);
    x->counted = true;
    if ((x->h1 = backend_h1(x))) {
        wp_h2_h1_connect(x);
        return;
    }
    struct wp_h2_up *u = up_get(c, pk.ep, pk.port, &err);
    if (u == NULL) {
        log_warn_rl(&up_rl, "upstream connect to %s port %u: %s", pk.ep->name ? pk.ep->name : "?",
                    pk.port, mesh_strerror(err));
        wp_h2_try_failed(x, WP_FLAG_UF);
        return;
    }
    x->us = u;
    u->users++;
    if (u->ready)
        x_open(x);
    else
        x->waiting = true;
}

void
wp_h2_on_timeout(void *arg)
{
    struct wp_h2_x *x = arg;

    if (x->finished)
        return;
    if (x->resp_head) {
        wp_h2_finish(x, WP_FLAG_UT); /* mid-response: the stream is reset */
        return;
    }
    wp_h2_local(x, 504, WP_FLAG_UT, "upstream_response_timeout", "upstream request timeout",
                NULL);
}

/* The try took longer than backendRequest before its response began: 504 UT, not retried
 * (Istio's retry_on has no per-try timeout), as the HTTP/1.1 engine does. */
static void
on_try_timeout(void *arg)
{
    struct wp_h2_x *x = arg;

    x->try_timing = false;
    if (x->finished || x->resp_head)
        return;
    wp_h2_local(x, 504, WP_FLAG_UT, "upstream_response_timeout", "upstream request timeout",
                NULL);
}

/* The per-try timer starts once the try has the whole request (its end went upstream). */
static void
try_timer(struct wp_h2_x *x)
{
    if (x->v.try_timeout_ms == 0 || x->try_timing || !x->up_shut || x->resp_head)
        return;
    x->try_timing = true;
    loop_timer_start(x->c->loop, &x->t_try, x->v.try_timeout_ms, on_try_timeout, x);
}

/* ---- bodies ------------------------------------------------------------- */

/* Request body: downstream -> replay buffer (while it fits) -> upstream. */
/* Body bytes to the try's endpoint, HTTP/2 or HTTP/1.1. */
static ssize_t
up_write(struct wp_h2_x *x, const void *p, size_t n)
{
    if (x->h1s != NULL)
        return wp_h2_h1_write(x, p, n);
    return stream_write(h2_stream_as_stream(x->up), p, n);
}

/* The request's end upstream, with the client's trailers (the first WP_H2_TRAILERS; gRPC
 * clients rarely send any, but a proxy must not drop them). -EAGAIN: no room yet. */
static int
up_end(struct wp_h2_x *x)
{
    struct h2_header tr[WP_H2_TRAILERS];
    size_t nt = h2_stream_trailers(x->down, tr, ARRAY_LEN(tr));

    if (nt > ARRAY_LEN(tr))
        nt = ARRAY_LEN(tr);
    if (x->h1s != NULL)
        return wp_h2_h1_end(x, tr, nt);
    if (nt > 0 && h2_stream_send_trailers(x->up, tr, nt) == 0)
        return 0;
    (void)stream_shutdown_write(h2_stream_as_stream(x->up));
    return 0;
}

static void
pump_request(struct wp_h2_x *x, bool *want_down_rd, bool *want_up_wr)
{
    struct stream *d = h2_stream_as_stream(x->down);
    bool up = x->up != NULL || x->h1s != NULL;

    for (;;) {
        if (up && !x->up_wdead && x->sent < buf_len(&x->replay)) {
            ssize_t w = up_write(x, buf_head(&x->replay) + x->sent,
                                 buf_len(&x->replay) - x->sent);
            if (w == -EAGAIN) {
                *want_up_wr = true;
                return;
            }
            if (w < 0) {
                x->up_wdead = true; /* the response side hears why */
                continue;
            }
            x->sent += (size_t)w;
            continue;
        }
        if (x->req_eof) {
            if (up && !x->up_shut && !x->up_wdead) {
                if (up_end(x) == -EAGAIN) {
                    *want_up_wr = true;
                    return;
                }
                x->up_shut = true;
            }
            return;
        }
        const void *p;
        ssize_t n = wp_h2_peek(d, &p);
        if (n == -EAGAIN) {
            *want_down_rd = true;
            return;
        }
        if (n == 0) {
            x->req_eof = true;
            continue;
        }
        if (n < 0) {
            wp_h2_finish(x, WP_FLAG_DC);
            return;
        }
        if (x->replay_ok) {
            size_t room = buf_space(&x->replay);
            if (room > 0) {
                size_t k = (size_t)n < room ? (size_t)n : room;
                CHECK(buf_append(&x->replay, p, k) == 0);
                wp_h2_consume(d, k);
                x->bytes_in += k;
                continue;
            }
            if (!up || x->sent < buf_len(&x->replay))
                return; /* full until a try takes it */
            /* Too long to keep: this request is not retried, the rest streams through. */
            x->replay_ok = false;
            buf_cleanup(&x->replay);
            buf_init(&x->replay, WP_H2_RETRY_BODY);
            x->sent = 0;
            continue;
        }
        if (!up)
            return;
        ssize_t w = x->up_wdead ? n : up_write(x, p, (size_t)n);
        if (w == -EAGAIN) {
            *want_up_wr = true;
            return;
        }
        if (w < 0) {
            x->up_wdead = true;
            continue;
        }
        wp_h2_consume(d, (size_t)w);
        x->bytes_in += (uint64_t)w;
    }
}

/* Response body and trailers: upstream -> downstream. */
static void
pump_response(struct wp_h2_x *x, bool *want_up_rd, bool *want_down_wr)
{
    struct stream *d = h2_stream_as_stream(x->down);
    struct stream *up = h2_stream_as_stream(x->up);

    while (!x->finished) {
        const void *p;
        ssize_t n = wp_h2_peek(up, &p);
        if (n == -EAGAIN) {
            *want_up_rd = true;
            return;
        }
        if (n < 0) {
            /* The endpoint reset inside its response: so is the client's stream. */
            wp_h2_finish(x, WP_FLAG_UC);
            return;
        }
        if (n == 0) {
            struct h2_header tr[WP_H2_TRAILERS];
            size_t nt = h2_stream_trailers(x->up, tr, ARRAY_LEN(tr));
            if (nt > ARRAY_LEN(tr))
                nt = ARRAY_LEN(tr);
            wp_h2_note_grpc_status(x, h2_stream_trailer(x->up, "grpc-status"));
            int rc = nt > 0 ? h2_stream_send_trailers(x->down, tr, nt) : stream_shutdown_write(d);
            x->resp_done = rc == 0;
            wp_h2_finish(x, rc == 0 ? 0 : WP_FLAG_DC);
            return;
        }
        ssize_t w = stream_write(d, p, (size_t)n);
        if (w == -EAGAIN) {
            *want_down_wr = true;
            return;
        }
        if (w < 0) {
            wp_h2_finish(x, WP_FLAG_DC);
            return;
        }
        wp_h2_consume(up, (size_t)w);
        x->bytes_out += (uint64_t)w;
    }
}

void
wp_h2_pump(struct wp_h2_x *x)
{
    bool down_rd = false, down_wr = false, up_rd = false, up_wr = false;

    if (x->finished)
        return;
    /* An HTTP/1.1 endpoint's buffer is written here, not by a stream: refill it as it drains. */
    for (int i = 0; i < 16; i++) {
        down_rd = up_wr = false;
        pump_request(x, &down_rd, &up_wr);
        if (x->finished)
            return;
        if (x->h1s == NULL || !up_wr || !wp_h2_h1_flush(x))
            break;
    }
    try_timer(x);
    if (x->h1s != NULL) {
        wp_h2_h1_pump(x, &down_wr);
        if (x->finished)
            return;
    } else if (x->resp_head && x->up != NULL) {
        pump_response(x, &up_rd, &down_wr);
        if (x->finished)
            return;
    }
    stream_want(h2_stream_as_stream(x->down), down_rd, down_wr);
    if (x->up != NULL)
        stream_want(h2_stream_as_stream(x->up), up_rd, up_wr);
}
