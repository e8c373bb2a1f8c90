/*
 * http1_conn.c - the HTTP/1.1 engine's connections: wp_http1_serve() and one pump that moves
 * bytes between the client (downstream) and the endpoint of the current request (upstream)
 * through the codec, one request at a time, so pipelined requests wait in the input buffer
 * and their responses leave in order.
 *
 * Back-pressure: every buffer has a cap (http1_internal.h); a side is read only while the
 * buffer it fills has room, and a body is parsed only as far as the buffer it goes to has
 * room, so a slow reader on either side stops reading from the other. Body bytes stream
 * through; only the first WP_H1_RETRY_BODY bytes of a request body are also kept (replay) so a
 * retry can send them again; past that the request is not retried.
 */
#define LOG_SCOPE "waypoint"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "http1/http1_write.h"
#include "log/log.h"
#include "http1_internal.h"

static struct log_ratelimit h1_rl = LOG_RATELIMIT_INIT(10000, 5);

/* This thread's connections, for wp_http1_drain(). */
static _Thread_local struct wp_h1_conn *conns;
static _Thread_local bool draining;

static void
free_conn(void *arg)
{
    struct wp_h1_conn *c = arg;

    if (c->deftab != NULL)
        route_table_unref(c->deftab);
    free(c);
}

/* The connection is over: everything is released, on_closed runs, the memory goes later. */
void
wp_h1_end(struct wp_h1_conn *c, unsigned flags)
{
    if (c->ended)
        return;
    c->ended = true;
    loop_timer_stop(c->loop, &c->t_linger);
    if (c->dprev != NULL)
        c->dprev->dnext = c->dnext;
    else
        conns = c->dnext;
    if (c->dnext != NULL)
        c->dnext->dprev = c->dprev;
    if (c->active) {
        c->flags |= flags;
        c->keep_alive = false;
        c->up_eof = true; /* never reuse the upstream of a broken exchange */
        wp_h1_finish(c);
    }
    while (c->idle != NULL) {
        struct wp_h1_up *u = c->idle;
        c->idle = u->next;
        wp_h1_up_close(u, false);
    }
    if (c->down != NULL)
        stream_close(c->down, flags != 0);
    c->down = NULL;
    http1_parser_free(&c->rq);
    http1_parser_free(&c->rs);
    buf_cleanup(&c->din);
    buf_cleanup(&c->dout);
    buf_cleanup(&c->uin);
    buf_cleanup(&c->uout);
    buf_cleanup(&c->replay);
    if (c->cfg->on_closed != NULL)
        c->cfg->on_closed(c->cfg->arg);
    loop_defer(c->loop, &c->free_defer, free_conn, c);
}

static void
on_linger_timeout(void *arg)
{
    wp_h1_end(arg, 0);
}

static void
on_down_event(void *arg, struct stream *s, unsigned events)
{
    (void)s;
    (void)events;
    wp_h1_pump(arg);
}

/* Reads |s| into |b| while it has room. Returns 1 progress, 0 none, -1 EOF, <-1 error. */
static int
fill(struct stream *s, struct buf *b)
{
    int progress = 0;
    for (;;) {
        size_t room;
        char *p = buf_reserve(b, 16384, &room);
        if (p == NULL)
            return progress;
        ssize_t n = stream_read(s, p, room);
        if (n == -EAGAIN)
            return progress;
        if (n == 0)
            return -1;
        if (n < 0)
            return (int)n < -1 ? (int)n : -2;
        buf_commit(b, (size_t)n);
        progress = 1;
    }
}

/* Writes |b| to |s|. Returns 1 progress, 0 none, <0 error. */
static int
flush(struct stream *s, struct buf *b)
{
    int progress = 0;
    while (buf_len(b) > 0) {
        ssize_t n = stream_write(s, buf_head(b), buf_len(b));
        if (n == -EAGAIN)
            break;
        if (n < 0)
            return (int)n;
        buf_consume(b, (size_t)n);
        progress = 1;
    }
    buf_release_if_empty(b);
    return progress;
}

/* How much of |len| input bytes a body step may feed when the output has |room|. */
static size_t
feed_len(size_t len, size_t room)
{
    const size_t framing = 64; /* a chunk size line and CRLF */
    if (room >= len + framing)
        return len;
    return room > framing ? room - framing : 0;
}

/* Request bytes: a head when idle, else body bytes to the upstream (or dropped). */
static bool
step_request(struct wp_h1_conn *c)
{
    bool progress = false;

    while (!c->ended && !c->closing && (!c->active || !c->req_done)) {
        const char *p = buf_head(&c->din);
        size_t len = buf_len(&c->din), used = 0;
        struct http1_span data = {0};
        struct buf *dst = NULL;

        if (c->active && !c->local) {
            /* Before a connection the replay buffer holds the body; after, uout does. */
            dst = c->up != NULL ? &c->uout : &c->replay;
            if (c->up == NULL && !c->replay_ok)
                break;
            len = feed_len(len, buf_space(dst));
            if (len == 0 && buf_len(&c->din) > 0)
                break;
        }
        int ev = http1_parse(&c->rq, p, len, &used, &data);
        if (ev < 0) {
            if (!c->active) {
                /* Nothing sensible follows a malformed request on this connection. */
                c->active = true;
                c->start_ms = loop_now_ms(c->loop);
                wp_h1_local(c, http1_error_status(ev), 0, c->rq.why,
                            http1_reason(http1_error_status(ev)), NULL, true);
                c->req_done = true;
            } else if (!c->resp_head) {
                wp_h1_drop_up(c, false);
                c->req_done = true;
                wp_h1_local(c, 400, 0, c->rq.why, "Bad Request", NULL, true);
            } else {
                wp_h1_end(c, WP_FLAG_DC);
            }
            return true;
        }
        if (ev == HTTP1_HEAD) {
            struct http1_head h = c->rq.head;
            if (draining)
                h.keep_alive = false; /* the response says Connection: close */
            wp_h1_start(c, p, &h);
            buf_consume(&c->din, used);
            progress = true;
            continue;
        }
        if (ev == HTTP1_DATA && !c->local) {
            size_t before = buf_len(dst);
            int rc = c->chunk_up ? http1_put_chunk(dst, p + data.off, data.len)
                                 : buf_append(dst, p + data.off, data.len);
            CHECK(rc == 0); /* feed_len left room */
            c->bytes_in += data.len;
            if (dst == &c->uout && c->replay_ok) {
                if (buf_append(&c->replay, buf_head(dst) + before, buf_len(dst) - before) < 0) {
                    c->replay_ok = false; /* too big to keep: this request is not retried */
                    buf_cleanup(&c->replay);
                    buf_init(&c->replay, WP_H1_OUT_BUF);
                }
            }
        } else if (ev == HTTP1_DATA) {
            c->bytes_in += data.len;
        } else if (ev == HTTP1_END) {
            if (c->chunk_up && !c->local) {
                size_t before = buf_len(dst);
                int rc = http1_put_last_chunk(dst, c->rq.trailers, c->rq.n_trailers, p);
                if (rc < 0) {
                    wp_h1_end(c, WP_FLAG_DC);
                    return true;
                }
                if (dst == &c->uout && c->replay_ok &&
                    buf_append(&c->replay, buf_head(dst) + before, buf_len(dst) - before) < 0)
                    c->replay_ok = false;
            }
            c->req_done = true;
        } else if (ev == HTTP1_RAW) {
            break;
        }
        buf_consume(&c->din, used);
        if (used == 0 && ev == HTTP1_MORE)
            break;
        progress = true;
    }
    return progress;
}

/* Response bytes from the upstream to the client. */
static bool
step_response(struct wp_h1_conn *c)
{
    bool progress = false;

    while (c->active && !c->local && c->up != NULL && !c->resp_done && !c->tunnel) {
        const char *p = buf_head(&c->uin);
        size_t len = buf_len(&c->uin), used = 0;
        struct http1_span data = {0};

        if (c->resp_head) {
            len = feed_len(len, buf_space(&c->dout));
            if (len == 0 && buf_len(&c->uin) > 0)
                break;
        }
        int ev = len > 0 || !c->up_eof ? http1_parse(&c->rs, p, len, &used, &data)
                                       : http1_parse_eof(&c->rs);
        if (ev < 0 && ev != -HTTP1_E_TRUNCATED) {
            log_warn_rl(&h1_rl, "bad response from %s: %s", c->cur_ep->name ? c->cur_ep->name : "?",
                        c->rs.why ? c->rs.why : "?");
            if (c->resp_head) {
                wp_h1_end(c, WP_FLAG_UPE);
            } else {
                wp_h1_drop_up(c, false);
                wp_h1_local(c, 502, WP_FLAG_UPE, "upstream_protocol_error", "Bad Gateway", NULL,
                            !c->req_done);
            }
            return true;
        }
        if (ev < 0 || (c->up_eof && len == 0 && ev == HTTP1_MORE)) {
            /* The upstream went away inside (or before) its response. */
            if (c->resp_head)
                wp_h1_end(c, WP_FLAG_UC);
            else
                wp_h1_try_failed(c, WP_FLAG_UC);
            return true;
        }
        if (ev == HTTP1_HEAD) {
            struct http1_head h = c->rs.head;
            if (h.status < 200 && h.status != 101) {
                c->interim = true; /* our own 100 Continue went already; drop theirs */
            } else {
                int rc = wp_h1_resp_head(c, p, &h);
                if (rc == 1) {
                    wp_h1_drop_up(c, false);
                    wp_h1_retry_later(c);
                    return true;
                }
                if (rc < 0) {
                    wp_h1_drop_up(c, false);
                    wp_h1_local(c, 502, WP_FLAG_UPE, "upstream_protocol_error", "Bad Gateway", NULL,
                                !c->req_done);
                    return true;
                }
                if (c->tunnel) { /* a 101 has no body: the bytes after it are the tunnel's */
                    buf_consume(&c->uin, used);
                    c->resp_done = true;
                    return true;
                }
            }
        } else if (ev == HTTP1_DATA && !c->interim) {
            int rc = c->chunk_down ? http1_put_chunk(&c->dout, p + data.off, data.len)
                                   : buf_append(&c->dout, p + data.off, data.len);
            CHECK(rc == 0);
            c->bytes_out += data.len;
        } else if (ev == HTTP1_END && c->interim) {
            c->interim = false;
        } else if (ev == HTTP1_END) {
            if (c->chunk_down &&
                http1_put_last_chunk(&c->dout, c->rs.trailers, c->rs.n_trailers, p) < 0) {
                wp_h1_end(c, WP_FLAG_UPE);
                return true;
            }
            c->resp_done = true;
            if (c->close_down || c->up_eof)
                c->up_eof = true;
        }
        buf_consume(&c->uin, used);
        if (used == 0 && ev == HTTP1_MORE)
            break;
        progress = true;
    }
    return progress;
}

static void
on_pipe_done(void *arg, const struct pipe_result *res)
{
    struct wp_h1_conn *c = arg;

    c->pipe = NULL;
    c->bytes_in += res->a_to_b;
    c->bytes_out += res->b_to_a;
    c->down = NULL; /* the pipe closed both */
    c->up_eof = true;
    wp_h1_end(c, 0);
}

/* After a 101: drain what each side sent early, then a pipe copies both ways. */
static bool
step_tunnel(struct wp_h1_conn *c)
{
    if (buf_len(&c->uout) == 0 && buf_len(&c->din) > 0) {
        CHECK(buf_append(&c->uout, buf_head(&c->din), buf_len(&c->din)) == 0);
        buf_consume(&c->din, buf_len(&c->din));
        return true;
    }
    if (buf_len(&c->dout) == 0 && buf_len(&c->uin) > 0) {
        size_t n = buf_len(&c->uin);
        CHECK(buf_append(&c->dout, buf_head(&c->uin), n) == 0);
        buf_consume(&c->uin, n);
        return true;
    }
    if (buf_len(&c->uout) || buf_len(&c->dout) || buf_len(&c->din) || buf_len(&c->uin))
        return false;
    struct wp_h1_up *u = c->up;
    struct stream *down = c->down, *up = u->s;
    c->up = NULL;
    if (c->counted)
        wp_h1_outstanding_add(c->cur_ep, -1);
    c->counted = false;
    workload_unref(u->ep);
    free(u);
    c->down = NULL;
    c->pipe = pipe_start(c->loop, down, up, 64 * 1024, on_pipe_done, c);
    return false;
}

void
wp_h1_pump(struct wp_h1_conn *c)
{
    bool progress = true;

    while (progress && !c->ended && c->pipe == NULL) {
        progress = false;
        if (!c->down_eof && !c->tunnel) {
            int rc = fill(c->down, &c->din);
            if (rc > 0)
                progress = true;
            else if (rc < 0) {
                /* The client's end of stream ends the connection, as Envoy's HTTP/1 codec
                 * does: a request in flight is reset upstream and reported DC; requests
                 * read but not started are dropped. (A half-closing client that still
                 * waits for its answer is rare; a vanished one we would otherwise wait on
                 * forever, holding an endpoint stream.) */
                c->down_eof = true;
                if (c->active) {
                    wp_h1_end(c, WP_FLAG_DC);
                    return;
                }
                c->closing = true;
                progress = true;
            }
        }
        if (step_request(c))
            progress = true;
        if (c->ended)
            return;
        if (c->up_wdead) /* nobody will take these */
            buf_consume(&c->uout, buf_len(&c->uout));
        if (c->up != NULL) {
            int rc = c->up_wdead ? 0 : flush(c->up->s, &c->uout);
            if (rc > 0)
                progress = c->up_wrote = true;
            else if (rc < 0) {
                /* It will take no more: drop what it did not take, read what it said. */
                buf_consume(&c->uout, buf_len(&c->uout));
                c->up_wdead = true;
                progress = true;
            }
            if (!c->up_eof && c->up != NULL && (rc = fill(c->up->s, &c->uin)) != 0) {
                progress = true;
                if (rc < 0)
                    c->up_eof = true;
                else
                    c->up_read = true;
                if (rc == -1)
                    c->up_fin = true;
            }
            wp_h1_try_timer(c);
        }
        if (step_response(c))
            progress = true;
        if (c->ended)
            return;
        if (c->tunnel && c->resp_done && step_tunnel(c))
            progress = true;
        if (c->pipe != NULL)
            return;
        if (c->down != NULL) {
            int rc = flush(c->down, &c->dout);
            if (rc < 0) {
                wp_h1_end(c, WP_FLAG_DC);
                return;
            }
            if (rc > 0)
                progress = true;
        }
        if (c->active && c->req_done && c->resp_done && !c->tunnel) {
            wp_h1_finish(c);
            progress = true;
        } else if (c->active && c->resp_done && !c->req_done && (c->up_eof || c->up_wdead) &&
                   !c->tunnel) {
            /* The endpoint answered and left before the request body ended: the rest of it
             * has nowhere to go, so this connection ends after the response. */
            c->keep_alive = false;
            wp_h1_finish(c);
            progress = true;
        } else if (c->active && c->resp_done && c->local && !c->keep_alive) {
            wp_h1_finish(c); /* the body will not be read: the connection closes */
            progress = true;
        }
        if (c->closing && !c->active && buf_len(&c->dout) == 0) {
            /* Half-close and let the client end its side (RFC 9112 9.6): resetting at once
             * could destroy the last response, and the client's ztunnel would log a failure. */
            buf_consume(&c->din, buf_len(&c->din)); /* nothing more is served */
            if (c->down_eof) {
                wp_h1_end(c, 0);
                return;
            }
            if (!c->down_wshut) {
                if (stream_shutdown_write(c->down) < 0) {
                    wp_h1_end(c, 0);
                    return;
                }
                c->down_wshut = true;
                loop_timer_start(c->loop, &c->t_linger, WP_H1_LINGER_MS, on_linger_timeout, c);
            }
        }
    }
    if (c->ended || c->pipe != NULL)
        return;
    buf_release_if_empty(&c->din); /* an idle keep-alive connection holds no buffer */
    stream_want(c->down, !c->down_eof && !c->tunnel && buf_space(&c->din) > 0,
                buf_len(&c->dout) > 0);
    if (c->up != NULL)
        stream_want(c->up->s, !c->up_eof && buf_space(&c->uin) > 0 && !c->tunnel,
                    buf_len(&c->uout) > 0 && !c->up_wdead);
}

void
wp_http1_serve(const struct wp_l7_conn *cfg, struct stream *down)
{
    struct wp_h1_conn *c = xcalloc(1, sizeof(*c));
    struct http1_limits lim = {.max_head = WP_H1_MAX_HEAD};

    c->cfg = cfg;
    c->loop = cfg->loop;
    c->down = down;
    buf_init(&c->din, WP_H1_IN_BUF);
    buf_init(&c->dout, WP_H1_OUT_BUF);
    buf_init(&c->uin, WP_H1_IN_BUF);
    buf_init(&c->uout, WP_H1_OUT_BUF);
    buf_init(&c->replay, WP_H1_OUT_BUF);
    http1_parser_init(&c->rq, false, &lim);
    http1_parser_init(&c->rs, true, &lim);
    stream_set_handler(down, on_down_event, c);
    stream_want(down, true, false);
    c->dnext = conns;
    if (conns != NULL)
        conns->dprev = c;
    conns = c;
    if (draining) {
        c->closing = true; /* a CONNECT accepted before the drain: nothing more is served */
        wp_h1_pump(c);
    }
}

void
wp_http1_drain(void)
{
    struct wp_h1_conn *c, *next;

    draining = true;
    for (c = conns; c != NULL; c = next) {
        next = c->dnext;
        if (c->active)
            c->keep_alive = false; /* closes after this response */
        else
            c->closing = true; /* idle: closes now */
        wp_h1_pump(c);
    }
}
