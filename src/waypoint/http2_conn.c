/*
 * http2_conn.c - the HTTP/2 engine's connections: wp_http2_serve() runs an HTTP/2 server
 * session (lib/h2) on the downstream stream, each request stream an exchange
 * (http2_exchange.c) going upstream on endpoint sessions (http2_up.c) that the connection's
 * exchanges share. A client's RST_STREAM cancels its exchange's upstream stream; the end of
 * the connection ends every exchange and every endpoint session.
 */
#define LOG_SCOPE "waypoint"

#include <errno.h>
#include <stdlib.h>

#include "base/base.h"
#include "log/log.h"
#include "http2_internal.h"

/* This thread's connections, for wp_http2_drain(). */
static _Thread_local struct wp_h2_conn *conns;
static _Thread_local bool draining;

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct wp_h2_conn *c = arg;
    (void)s;

    if (c->ended) {
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    wp_h2_start(c, st);
}

/* Streams the client reset (or that broke) while their exchange was not reading them. */
static void
sweep(void *arg)
{
    struct wp_h2_conn *c = arg;

    for (struct wp_h2_x *x = c->xs, *next; x != NULL; x = next) {
        next = x->next;
        if (!x->finished && x->down != NULL && h2_stream_error(x->down) != 0)
            wp_h2_finish(x, WP_FLAG_DC);
    }
}

static void
on_streams(void *arg, struct h2_session *s)
{
    struct wp_h2_conn *c = arg;
    (void)s;

    /* Called from inside nghttp2: look later. */
    if (!c->ended)
        loop_defer(c->loop, &c->sweep_defer, sweep, c);
}

static void
free_conn(void *arg)
{
    struct wp_h2_conn *c = arg;

    if (c->deftab != NULL)
        route_table_unref(c->deftab);
    free(c);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct wp_h2_conn *c = arg;
    (void)s;

    if (err != 0)
        log_debug("downstream HTTP/2 connection ended: %s", mesh_strerror(err));
    c->ended = true;
    if (c->dprev != NULL)
        c->dprev->dnext = c->dnext;
    else
        conns = c->dnext;
    if (c->dnext != NULL)
        c->dnext->dprev = c->dprev;
    while (c->xs != NULL)
        wp_h2_finish(c->xs, WP_FLAG_DC);
    while (c->ups != NULL)
        wp_h2_up_close(c->ups);
    h2_session_release(c->sess);
    c->sess = NULL;
    if (c->cfg->on_closed != NULL)
        c->cfg->on_closed(c->cfg->arg);
    loop_defer(c->loop, &c->free_defer, free_conn, c);
}

static const struct h2_session_cbs down_cbs = {
    .on_request = on_request,
    .on_streams = on_streams,
    .on_closed = on_closed,
};

void
wp_http2_serve(const struct wp_l7_conn *cfg, struct stream *down)
{
    struct wp_h2_conn *c = xcalloc(1, sizeof(*c));

    c->cfg = cfg;
    c->loop = cfg->loop;
    c->dnext = conns;
    if (conns != NULL)
        conns->dprev = c;
    conns = c;
    c->sess = h2_session_new(cfg->loop, down, true, &down_cbs, c);
    if (draining)
        h2_session_shutdown(c->sess); /* GOAWAY at once: no stream is taken */
}

void
wp_http2_drain(void)
{
    draining = true;
    /* GOAWAY (NO_ERROR, the last stream taken): the client opens no more streams here, those
     * in flight finish, then lib/h2 ends the session and on_closed runs. */
    for (struct wp_h2_conn *c = conns; c != NULL; c = c->dnext)
        if (c->sess != NULL)
            h2_session_shutdown(c->sess);
}
