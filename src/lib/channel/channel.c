/*
 * channel.c - see channel.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "channel"
#include "base/base.h"
#include "channel/channel.h"
#include "conn/dial.h"
#include "conn/tcp_stream.h"
#include "log/log.h"
#include "net/sock.h"
#include "tls/tls_stream.h"

struct channel {
    struct loop *loop;
    struct ipaddr ip;
    uint16_t port;
    SSL_CTX *ctx;
    char *name;
    struct dial *dial;
    struct h2_session *sess; /* connecting or ready; NULL when down */
    struct channel_waiter *waiters;
};

static void
flush(struct channel *c, struct h2_session *s, int err)
{
    /* Detach the queue first: a callback may queue again (after an error, for a retry). */
    struct channel_waiter *w = c->waiters;
    c->waiters = NULL;
    while (w != NULL) {
        struct channel_waiter *next = w->next;
        w->queued = false;
        w->next = w->prev = NULL;
        w->cb(w->arg, s, err);
        w = next;
    }
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct channel *c = arg;
    log_debug("%s: connected", c->name);
    flush(c, s, 0);
    return 0;
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct channel *c = arg;
    char a[ADDR_STRLEN + 8];
    if (err != 0)
        log_debug("%s: connection to %s closed: %s", c->name, ipport_str(&c->ip, c->port, a),
                  mesh_strerror(err));
    if (c->sess == s)
        c->sess = NULL;
    h2_session_release(s);
    flush(c, NULL, err != 0 ? err : -ECONNRESET);
}

static const struct h2_session_cbs cbs = {
    .on_ready = on_ready,
    .on_closed = on_closed,
};

static void
on_dialled(void *arg, int fd)
{
    struct channel *c = arg;
    char a[ADDR_STRLEN + 8];

    c->dial = NULL;
    if (fd < 0) {
        log_debug("%s: connect to %s: %s", c->name, ipport_str(&c->ip, c->port, a),
                  mesh_strerror(fd));
        flush(c, NULL, fd);
        return;
    }
    SSL *ssl = SSL_new(c->ctx);
    if (ssl == NULL) {
        close(fd);
        flush(c, NULL, -MESH_ETLS);
        return;
    }
    struct stream *x =
        tls_stream_new(c->loop, tcp_stream_new(c->loop, fd), ssl, false, TLS_STREAM_ALPN_H2);
    c->sess = h2_session_new(c->loop, x, false, &cbs, c);
}

struct channel *
channel_new(struct loop *l, const struct ipaddr *ip, uint16_t port, SSL_CTX *ctx, const char *name)
{
    struct channel *c = xcalloc(1, sizeof(*c));
    c->loop = l;
    c->ip = *ip;
    c->port = port;
    c->ctx = ctx;
    SSL_CTX_up_ref(ctx);
    c->name = xstrdup(name);
    return c;
}

void
channel_free(struct channel *c)
{
    if (c == NULL)
        return;
    c->waiters = NULL;
    if (c->dial != NULL)
        dial_cancel(c->dial);
    if (c->sess != NULL) {
        struct h2_session *s = c->sess;
        c->sess = NULL;
        /* on_closed must not reach us any more. */
        h2_session_close(s, 0);
        h2_session_release(s);
    }
    SSL_CTX_free(c->ctx);
    free(c->name);
    free(c);
}

bool
channel_is_ready(const struct channel *c)
{
    return c->sess != NULL && h2_session_is_ready(c->sess) && !h2_session_is_closed(c->sess);
}

void
channel_get(struct channel *c, struct channel_waiter *w, channel_ready_fn *cb, void *arg)
{
    if (channel_is_ready(c)) {
        cb(arg, c->sess, 0);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->prev = NULL;
    w->next = c->waiters;
    if (c->waiters != NULL)
        c->waiters->prev = w;
    c->waiters = w;
    w->queued = true;
    if (c->dial == NULL && c->sess == NULL) {
        struct sock_opts o = {.mark = SOCK_MARK_ZTUNNEL};
        c->dial = dial_start(c->loop, &c->ip, c->port, NULL, &o, CHANNEL_CONNECT_TIMEOUT_MS,
                             on_dialled, c);
    }
}

void
channel_cancel(struct channel *c, struct channel_waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        c->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->queued = false;
}
