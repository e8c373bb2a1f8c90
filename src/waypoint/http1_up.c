/*
 * http1_up.c - the upstream side of the HTTP/1.1 engine's exchanges: an endpoint per try
 * (wp_h1_pick), a kept-alive stream to it or a new one from the binary's connect(), retries
 * with Envoy's jittered backoff, the request timeout, idle streams kept per connection.
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

void
wp_h1_up_close(struct wp_h1_up *u, bool abort)
{
    stream_close(u->s, abort);
    workload_unref(u->ep);
    free(u);
}

void
wp_h1_drop_up(struct wp_h1_conn *c, bool reuse)
{
    if (c->connecting != NULL) {
        c->cfg->up.cancel(c->cfg->up.ctx, c->connecting);
        c->connecting = NULL;
    }
    if (c->counted) {
        wp_h1_outstanding_add(c->cur_ep, -1);
        c->counted = false;
    }
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
    wp_h1_up_close(u, !reuse);
}

/* An idle upstream said something: it closed, failed, or talks out of turn. Drop it. */
static void
on_idle_event(void *arg, struct stream *s, unsigned events)
{
    struct wp_h1_up *u = arg;
    struct wp_h1_conn *c = u->c;
    char b[1];

    (void)events;
    if (stream_read(s, b, sizeof(b)) == -EAGAIN)
        return;
    for (struct wp_h1_up **pp = &c->idle; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            c->n_idle--;
            break;
        }
    }
    wp_h1_up_close(u, true);
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
up_attach(struct wp_h1_conn *c, struct wp_h1_up *u)
{
    c->up = u;
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
        up_attach(c, u);
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

/* A try failed before any response head: retry (connect failure) or answer 503. */
void
wp_h1_try_failed(struct wp_h1_conn *c, unsigned flag)
{
    const struct route_retry *r = &c->act.retry;

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
    for (struct wp_h1_up **pp = &c->idle; *pp != NULL; pp = &(*pp)->next) {
        struct wp_h1_up *u = *pp;
        if (u->port == pk.port &&
            strcmp(u->ep->uid ? u->ep->uid : "", pk.ep->uid ? pk.ep->uid : "") == 0) {
            *pp = u->next;
            c->n_idle--;
            up_attach(c, u);
            stream_want(u->s, true, true);
            return;
        }
    }
    c->connecting = cfg->up.connect(cfg->up.ctx, pk.ep, pk.port, on_connect, c, &err);
    if (c->connecting == NULL) {
        log_warn_rl(&up_rl, "upstream connect to %s port %u: %s", pk.ep->name ? pk.ep->name : "?",
                    pk.port, mesh_strerror(err));
        wp_h1_try_failed(c, WP_FLAG_UF);
    }
}

void
wp_h1_on_timeout(void *arg)
{
    struct wp_h1_conn *c = arg;

    if (!c->active)
        return;
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
wp_h1_retry_later(struct wp_h1_conn *c)
{
    loop_timer_start(c->loop, &c->t_backoff, wp_l7_backoff_ms(&c->act.retry, c->attempts),
                     on_backoff, c);
}
