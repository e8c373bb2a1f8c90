/*
 * http1_up.c - the upstream side of the HTTP/1.1 engine's exchanges: an endpoint per try
 * (wp_h1_pick), a kept-alive stream to it or a new one from the binary's connect(), retries
 * with Envoy's jittered backoff, the request and per-try timeouts, idle streams kept per
 * connection, and how an upstream stream ends.
 *
 * Retries are Istio's default policy as Envoy carries it out (route_retry): connect failures
 * (and a CONNECT the endpoint's ztunnel refuses) and retriable status codes (503 by default)
 * are tried again, on another endpoint while one exists, after a jittered backoff; a stream
 * that ends before any response byte is not ("reset" is not in Istio's retry_on), nor is a
 * per-try timeout (Envoy retries those only on "5xx"/"gateway-error"/"reset").
 *
 * One exception, the kept-alive race: an endpoint may close an idle connection just as we
 * reuse it. A kept-alive stream found already ended when picked is not used (nothing was
 * sent: any method, no try counted). One that ends with no response byte after we wrote the
 * request on it is sent again on another connection when the request is idempotent (RFC 9110
 * 9.2.2; as browsers and Go's transport do) and its bytes are kept; a non-idempotent one was
 * on the wire and may have been acted on, so it gets 503 UC (RFC 9112 9.3.1). Envoy with
 * Istio's defaults answers 503 UC in both cases (its "reset-before-request", Envoy 1.31, is
 * not in Istio's default retry_on); it too drops pooled connections it sees close.
 *
 * Closing: a stream whose exchange completed (or an idle one) is half-closed and kept until
 * the endpoint ends its side (at most WP_H1_LINGER_MS), as a TCP close sends FIN and lets the
 * peer finish: the endpoint's ztunnel then sees a clean end of its tunnel. Resetting right
 * after our end of stream made it fail writing the app's own close into a reset stream
 * ("Broken pipe" in its access log). A broken exchange (timeout, retry, bad response) resets.
 */
#define LOG_SCOPE "waypoint"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"
#include "http1_internal.h"

static struct log_ratelimit up_rl = LOG_RATELIMIT_INIT(10000, 5);

static stream_event_fn on_idle_event;

/* This thread's lingering streams (freed by wp_http1_shutdown() if still there at exit). */
static _Thread_local struct wp_h1_up *lingering;
static _Thread_local size_t n_lingering;

static void
linger_end(struct wp_h1_up *u, bool abort)
{
    loop_timer_stop(u->loop, &u->t_linger);
    if (u->lprev != NULL)
        u->lprev->lnext = u->lnext;
    else
        lingering = u->lnext;
    if (u->lnext != NULL)
        u->lnext->lprev = u->lprev;
    n_lingering--;
    stream_close(u->s, abort);
    free(u);
}

static void
on_linger_event(void *arg, struct stream *s, unsigned events)
{
    struct wp_h1_up *u = arg;
    char b[4096];

    (void)events;
    for (;;) {
        ssize_t n = stream_read(s, b, sizeof(b));
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            linger_end(u, n < 0); /* its end (clean) or an error */
            return;
        }
        u->discarded += (size_t)n;
        if (u->discarded > WP_H1_LINGER_MAX) {
            linger_end(u, true); /* it keeps talking after we closed: enough */
            return;
        }
    }
}

static void
on_linger_timeout(void *arg)
{
    linger_end(arg, true);
}

void
wp_h1_up_close(struct wp_h1_up *u, bool abort)
{
    struct loop *loop = u->c->loop;

    workload_unref(u->ep);
    u->ep = NULL;
    if (abort || stream_shutdown_write(u->s) < 0) {
        stream_close(u->s, true);
        free(u);
        return;
    }
    u->loop = loop;
    u->discarded = 0;
    u->lprev = NULL;
    u->lnext = lingering;
    if (lingering != NULL)
        lingering->lprev = u;
    lingering = u;
    n_lingering++;
    stream_set_handler(u->s, on_linger_event, u);
    stream_want(u->s, true, false);
    loop_timer_start(loop, &u->t_linger, WP_H1_LINGER_MS, on_linger_timeout, u);
}

size_t
wp_http1_lingering(void)
{
    return n_lingering;
}

void
wp_http1_shutdown(void)
{
    while (lingering != NULL)
        linger_end(lingering, true);
}

void
wp_h1_drop_up(struct wp_h1_conn *c, bool reuse)
{
    /* An upstream whose exchange is complete, or that ended its side already, ends cleanly;
     * one cut in the middle is reset (the endpoint stops working on it). */
    bool clean = reuse || c->up_fin ||
                 (c->resp_done && c->req_done && !c->up_wdead && buf_len(&c->uout) == 0);

    if (c->connecting != NULL) {
        c->cfg->up.cancel(c->cfg->up.ctx, c->connecting);
        c->connecting = NULL;
    }
    if (c->counted) {
        wp_h1_outstanding_add(c->cur_ep, -1);
        c->counted = false;
    }
    loop_timer_stop(c->loop, &c->t_try);
    c->try_timing = false;
    struct wp_h1_up *u = c->up;
    c->up = NULL;
    buf_cleanup(&c->uin);
    buf_cleanup(&c->uout);
    buf_init(&c->uin, WP_H1_IN_BUF);
    buf_init(&c->uout, WP_H1_OUT_BUF);
    if (u == NULL)
        return;
    if (reuse && c->n_idle < WP_H1_IDLE_MAX && !c->ended) {
        u->next = c->idle;
        c->idle = u;
        c->n_idle++;
        stream_set_handler(u->s, on_idle_event, u);
        stream_want(u->s, true, false); /* to notice the endpoint closing it */
        return;
    }
    wp_h1_up_close(u, !clean);
}

static void
idle_unlink(struct wp_h1_conn *c, struct wp_h1_up *u)
{
    for (struct wp_h1_up **pp = &c->idle; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            c->n_idle--;
            return;
        }
    }
}

/* An idle upstream said something: it closed (we close too), failed, or talks out of turn. */
static void
on_idle_event(void *arg, struct stream *s, unsigned events)
{
    struct wp_h1_up *u = arg;
    char b[1];

    (void)events;
    ssize_t n = stream_read(s, b, sizeof(b));
    if (n == -EAGAIN)
        return;
    idle_unlink(u->c, u);
    wp_h1_up_close(u, n != 0);
}

static void
on_up_event(void *arg, struct stream *s, unsigned events)
{
    struct wp_h1_up *u = arg;
    (void)s;
    (void)events;
    wp_h1_pump(u->c);
}

/* The upstream is connected: it gets everything sent so far. */
static void
up_attach(struct wp_h1_conn *c, struct wp_h1_up *u, bool reused)
{
    c->up = u;
    c->reused = reused;
    c->up_read = c->up_wrote = false;
    c->up_eof = c->up_wdead = c->up_fin = false; /* what the last try's stream did */
    u->c = c;
    stream_set_handler(u->s, on_up_event, u);
    http1_parser_free(&c->rs);
    struct http1_limits lim = {.max_head = WP_H1_MAX_HEAD};
    http1_parser_init(&c->rs, true, &lim);
    http1_parser_expect(&c->rs, c->method, strlen(c->method));
    CHECK(buf_append(&c->uout, buf_head(&c->replay), buf_len(&c->replay)) == 0);
}

static void
on_connect(void *arg, struct stream *s, int err)
{
    struct wp_h1_conn *c = arg;

    c->connecting = NULL;
    if (err < 0 || s == NULL) {
        wp_h1_try_failed(c, WP_FLAG_UF);
    } else {
        struct wp_h1_up *u = xcalloc(1, sizeof(*u));
        u->s = s;
        u->ep = workload_ref((struct workload *)c->cur_ep);
        u->port = c->cur_port;
        up_attach(c, u, false);
    }
    wp_h1_pump(c);
}

static void
on_backoff(void *arg)
{
    struct wp_h1_conn *c = arg;
    wp_h1_try(c);
    wp_h1_pump(c);
}

/* RFC 9110 9.2.2: what a client may send again after a connection failure. */
static bool
idempotent(const char *m)
{
    static const char *const ms[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < ARRAY_LEN(ms); i++)
        if (strcmp(m, ms[i]) == 0)
            return true;
    return false;
}

/*
 * A kept-alive stream ended with no response byte: the endpoint closed it as we reused it.
 * True when the request goes again, on another connection, without counting a try.
 */
static bool
retry_stale(struct wp_h1_conn *c)
{
    if (!c->reused || c->up_read || !c->replay_ok || c->stale > WP_H1_IDLE_MAX)
        return false;
    if (c->up_wrote && !idempotent(c->method))
        return false;
    c->stale++;
    c->attempts--; /* this try says nothing about the endpoint */
    if (c->n_tried > 0 && c->tried[c->n_tried - 1] == c->cur_ep)
        c->n_tried--;
    wp_h1_drop_up(c, false);
    wp_h1_try(c);
    return true;
}

/* A try failed before any response head: retry (connect failure) or answer 503. */
void
wp_h1_try_failed(struct wp_h1_conn *c, unsigned flag)
{
    const struct route_retry *r = &c->act.retry;

    if (flag == WP_FLAG_UC && retry_stale(c))
        return;
    wp_h1_drop_up(c, false);
    if (flag == WP_FLAG_UF && c->have_act && (r->on & ROUTE_RETRY_CONNECT_FAILURE) &&
        c->attempts < c->max_tries) {
        wp_h1_retry_later(c);
        return;
    }
    if (c->attempts > 1)
        flag |= WP_FLAG_URX;
    wp_h1_local(c, 503, flag, flag & WP_FLAG_UF ? WP_L7_DETAILS_UF : WP_L7_DETAILS_UC,
                flag & WP_FLAG_UF ? WP_L7_RESET_UF : WP_L7_RESET_UC, NULL, !c->req_done);
}

/* A kept-alive stream to |ep|:|port| that is still open, or NULL. Ended ones are closed. */
static struct wp_h1_up *
take_idle(struct wp_h1_conn *c, const struct workload *ep, uint16_t port)
{
    struct wp_h1_up **pp = &c->idle;
    while (*pp != NULL) {
        struct wp_h1_up *u = *pp;
        if (u->port != port ||
            strcmp(u->ep->uid ? u->ep->uid : "", ep->uid ? ep->uid : "") != 0) {
            pp = &u->next;
            continue;
        }
        *pp = u->next;
        c->n_idle--;
        /* Its end may be waiting to be read (the event not dispatched yet): not that one. */
        char b[1];
        ssize_t n = stream_read(u->s, b, sizeof(b));
        if (n == -EAGAIN)
            return u;
        wp_h1_up_close(u, n != 0);
    }
    return NULL;
}

void
wp_h1_try(struct wp_h1_conn *c)
{
    const struct wp_l7_conn *cfg = c->cfg;
    struct wp_h1_pick pk;
    int err = 0;

    if (c->backend != NULL) {
        if (!wp_h1_pick(c->m, c->backend, c->backend_port, c->tried, c->n_tried, &pk)) {
            if (c->attempts == 0) {
                wp_h1_local(c, 503, WP_FLAG_UH, "no_healthy_upstream", "no healthy upstream", NULL,
                            false);
                return;
            }
            wp_h1_try_failed(c, WP_FLAG_UF);
            return;
        }
    } else {
        pk.ep = cfg->workload;
        pk.port = cfg->dst_port;
        if (pk.ep == NULL) {
            wp_h1_local(c, 503, WP_FLAG_UH, "no_healthy_upstream", "no healthy upstream", NULL,
                        false);
            return;
        }
    }
    c->attempts++;
    c->cur_ep = pk.ep;
    c->cur_port = pk.port;
    if (c->n_tried < sizeof(c->tried) / sizeof(c->tried[0]))
        c->tried[c->n_tried++] = pk.ep;
    wp_h1_outstanding_add(pk.ep, 1);
    c->counted = true;
    /* A kept-alive connection to that endpoint first. */
    struct wp_h1_up *u = take_idle(c, pk.ep, pk.port);
    if (u != NULL) {
        up_attach(c, u, true);
        stream_want(u->s, true, true);
        return;
    }
    c->connecting = cfg->up.connect(cfg->up.ctx, pk.ep, pk.port, on_connect, c, &err);
    if (c->connecting == NULL) {
        log_warn_rl(&up_rl, "upstream connect to %s port %u: %s", pk.ep->name ? pk.ep->name : "?",
                    pk.port, mesh_strerror(err));
        wp_h1_try_failed(c, WP_FLAG_UF);
    }
}

/* No response in time: 504 UT, or the connection cut if the response had begun. */
static void
timed_out(struct wp_h1_conn *c)
{
    if (c->resp_head && !c->local) {
        wp_h1_end(c, WP_FLAG_UT);
        return;
    }
    if (c->local)
        return;
    loop_timer_stop(c->loop, &c->t_backoff);
    wp_h1_drop_up(c, false);
    wp_h1_local(c, 504, WP_FLAG_UT, "upstream_response_timeout", "upstream request timeout", NULL,
                !c->req_done);
    wp_h1_pump(c);
}

void
wp_h1_on_timeout(void *arg)
{
    struct wp_h1_conn *c = arg;

    if (c->active)
        timed_out(c);
}

/* Envoy ignores a per-try timeout once the response has begun (the route timeout still runs). */
void
wp_h1_on_try_timeout(void *arg)
{
    struct wp_h1_conn *c = arg;

    c->try_timing = false;
    if (c->active && !c->resp_head)
        timed_out(c);
}

void
wp_h1_try_timer(struct wp_h1_conn *c)
{
    uint64_t ms = c->have_act ? c->act.backend_timeout_ms : 0;

    if (ms == 0 || c->try_timing || c->up == NULL || !c->req_done || c->resp_head || c->local)
        return;
    c->try_timing = true;
    loop_timer_start(c->loop, &c->t_try, ms, wp_h1_on_try_timeout, c);
}

void
wp_h1_retry_later(struct wp_h1_conn *c)
{
    loop_timer_start(c->loop, &c->t_backoff, wp_l7_backoff_ms(&c->act.retry, c->attempts),
                     on_backoff, c);
}
