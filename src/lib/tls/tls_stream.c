/*
 * tls_stream.c - TLS as a stream over a lower stream: the handshake, plaintext
 * reads and writes with batched records, close_notify, and readiness
 * translated between the owner and the lower stream.
 *
 * During the handshake the lower stream's interest follows what OpenSSL
 * waits for; afterwards it follows the owner's want(), plus writability
 * once the lower stream refused records (not merely while some wait in
 * |enc| for the end-of-iteration flush: turning write interest on and off
 * around every flush would cost two epoll_ctl calls per request).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <openssl/err.h>

#define LOG_SCOPE "tls"
#include "base/base.h"
#include "log/log.h"
#include "tls/tls.h"
#include "tls/tls_bio.h"
#include "tls/tls_stream.h"

struct tls_stream {
    struct stream s; /* must be first */
    struct loop *loop;
    struct stream *lower;
    SSL *ssl;
    struct buf enc; /* records not yet handed to |lower| */
    unsigned flags;
    int err;           /* the handshake's failure, or a later transport error */
    bool open;         /* the handshake completed */
    bool hs_rd, hs_wr; /* what the handshake waits for */
    bool up_rd, up_wr; /* the owner's want() */
    bool rd_more;      /* the last read returned data: OpenSSL may hold more records */
    bool rd_needs_wr;  /* a read stopped because |enc| was full */
    bool wr_blocked;   /* the lower stream refused records (-EAGAIN) */
    bool wr_shut;      /* close_notify queued */
    bool lower_shut;   /* ... and sent, then the lower stream's write side shut */
    bool closed;
    struct loop_defer flush_defer;
    struct loop_defer dispatch_defer;
    struct loop_defer free_defer;
};

static const struct stream_ops tls_ops;

static bool
enc_has_room(const struct tls_stream *t)
{
    return buf_space(&t->enc) >= TLS_BIO_RECORD_MAX;
}

/* Hands |enc| to the lower stream; once close_notify is out, shuts its write side. */
static int
send_enc(struct tls_stream *t)
{
    int rc = tls_bio_send(t->lower, &t->enc);

    t->wr_blocked = rc == -EAGAIN;
    if (rc == 0 && t->wr_shut && !t->lower_shut) {
        t->lower_shut = true;
        stream_shutdown_write(t->lower);
    }
    return rc;
}

static void
set_err(struct tls_stream *t, int err)
{
    if (t->err == 0)
        t->err = err;
}

static void
update_lower(struct tls_stream *t)
{
    bool rd, wr;

    if (t->closed)
        return;
    if (t->err != 0) {
        rd = wr = false;
    } else if (!t->open) {
        rd = t->hs_rd;
        wr = t->hs_wr || t->wr_blocked;
    } else {
        rd = t->up_rd;
        wr = t->wr_blocked;
    }
    stream_want(t->lower, rd, wr);
}

/* What the owner asked for and would get now, without waiting for the lower stream. */
static unsigned
ready_events(const struct tls_stream *t)
{
    unsigned ev = 0;

    if (!t->open)
        return 0; /* the handshake's end is reported as STREAM_OPEN */
    if (t->err != 0)
        return (t->up_rd ? STREAM_READABLE : 0) | (t->up_wr ? STREAM_WRITABLE : 0);
    /*
     * Records OpenSSL already holds never wake the lower stream. Only after a read that
     * returned data: after -EAGAIN what it holds is an incomplete record.
     */
    if (t->up_rd && (SSL_pending(t->ssl) > 0 || (t->rd_more && SSL_has_pending(t->ssl))))
        ev |= STREAM_READABLE;
    if (t->up_rd && t->rd_needs_wr && enc_has_room(t))
        ev |= STREAM_READABLE;
    if (t->up_wr && enc_has_room(t))
        ev |= STREAM_WRITABLE;
    return ev;
}

static void
dispatch(void *arg)
{
    struct tls_stream *t = arg;
    unsigned ev;

    if (t->closed || (ev = ready_events(t)) == 0 || t->s.on_event == NULL)
        return;
    t->s.on_event(t->s.arg, &t->s, ev);
}

static void
wake(struct tls_stream *t)
{
    if (!t->closed && ready_events(t) != 0)
        loop_defer(t->loop, &t->dispatch_defer, dispatch, t);
}

/* The records of this loop iteration leave together. */
static void
flush_deferred(void *arg)
{
    struct tls_stream *t = arg;

    if (t->closed || t->err != 0)
        return;
    int rc = send_enc(t);
    if (rc < 0 && rc != -EAGAIN)
        set_err(t, rc);
    update_lower(t);
    wake(t);
}

static void
schedule_flush(struct tls_stream *t)
{
    if (buf_len(&t->enc) > 0 || (t->wr_shut && !t->lower_shut))
        loop_defer(t->loop, &t->flush_defer, flush_deferred, t);
}

/* The handshake ended (|err| 0: it completed). */
static void
handshake_end(struct tls_stream *t, int err)
{
    if (err != 0)
        set_err(t, err);
    else
        t->open = true;
    update_lower(t);
    if (t->s.on_event != NULL)
        t->s.on_event(t->s.arg, &t->s, STREAM_OPEN);
}

static void
handshake(struct tls_stream *t)
{
    int rc = SSL_do_handshake(t->ssl);
    int sent = send_enc(t);

    if (sent < 0 && sent != -EAGAIN) {
        ERR_clear_error();
        handshake_end(t, sent);
        return;
    }
    if (rc == 1) {
        tls_handshake_done(t->ssl);
        if ((t->flags & TLS_STREAM_ALPN_H2) && !tls_alpn_is_h2(t->ssl)) {
            log_debug("peer did not negotiate ALPN h2");
            handshake_end(t, -MESH_ETLS);
            return;
        }
        handshake_end(t, 0);
        return;
    }
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        t->hs_rd = true;
        t->hs_wr = false;
        break;
    case SSL_ERROR_WANT_WRITE:
        t->hs_rd = false;
        t->hs_wr = true;
        break;
    default:
        tls_log_errors("TLS handshake");
        handshake_end(t, -MESH_ETLS);
        return;
    }
    update_lower(t);
}

static void
on_lower(void *arg, struct stream *lower, unsigned events)
{
    struct tls_stream *t = arg;
    (void)lower;

    if (t->closed)
        return;
    if (events & STREAM_READABLE)
        tls_bio_readable(SSL_get_rbio(t->ssl));
    if (!t->open) {
        if (t->err == 0)
            handshake(t);
        return;
    }
    if ((events & STREAM_WRITABLE) && buf_len(&t->enc) > 0 && t->err == 0) {
        int rc = send_enc(t);
        if (rc < 0 && rc != -EAGAIN)
            set_err(t, rc);
    }
    unsigned ev = ready_events(t);
    if ((events & STREAM_READABLE) && t->up_rd)
        ev |= STREAM_READABLE;
    update_lower(t);
    if (ev != 0 && t->s.on_event != NULL)
        t->s.on_event(t->s.arg, &t->s, ev);
}

/* ---- stream ops --------------------------------------------------------- */

static ssize_t
tls_read(struct stream *s, void *p, size_t len)
{
    struct tls_stream *t = (struct tls_stream *)s;

    if (!t->open || t->err != 0)
        return t->err != 0 ? t->err : -EAGAIN;
    t->rd_needs_wr = false;
    errno = 0;
    int n = SSL_read(t->ssl, p, (int)(len > INT_MAX ? INT_MAX : len));
    t->rd_more = n > 0;
    if (n > 0)
        return n;
    ssize_t rc;
    switch (SSL_get_error(t->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        rc = -EAGAIN;
        break;
    case SSL_ERROR_WANT_WRITE:
        /* It has something to send (|enc| full): readable again once that went out. */
        t->rd_needs_wr = true;
        rc = -EAGAIN;
        break;
    case SSL_ERROR_ZERO_RETURN:
        rc = 0;
        break;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        rc = errno ? -errno : 0;
        break;
    default:
        tls_log_errors("TLS read");
        rc = -MESH_ETLS;
        break;
    }
    schedule_flush(t); /* reading may have produced records (alerts, key updates) */
    update_lower(t);
    return rc;
}

static ssize_t
tls_write(struct stream *s, const void *p, size_t len)
{
    struct tls_stream *t = (struct tls_stream *)s;
    size_t done = 0;
    int rc = 0;
    bool retried = false;

    if (!t->open || t->err != 0)
        return t->err != 0 ? t->err : -EAGAIN;
    if (t->wr_shut)
        return -EPIPE;
    while (done < len) {
        size_t chunk = len - done;
        errno = 0;
        int n = SSL_write(t->ssl, (const char *)p + done, (int)(chunk > INT_MAX ? INT_MAX : chunk));
        if (n > 0) {
            done += (size_t)n;
            retried = false;
            if (buf_len(&t->enc) >= TLS_STREAM_BATCH) {
                rc = send_enc(t);
                if (rc < 0 && rc != -EAGAIN)
                    break;
                rc = 0;
            }
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            /* |enc| is full: make room; if the lower stream is full too, so are we. */
            rc = send_enc(t);
            if (rc < 0 && rc != -EAGAIN)
                break;
            rc = -EAGAIN;
            if (!enc_has_room(t) || retried)
                break;
            retried = true;
            continue;
        }
        rc = e == SSL_ERROR_SYSCALL ? (errno ? -errno : -EPIPE) : -MESH_ETLS;
        ERR_clear_error();
        break;
    }
    schedule_flush(t);
    if (rc < 0 && rc != -EAGAIN)
        set_err(t, rc);
    update_lower(t);
    if (done > 0)
        return (ssize_t)done;
    return rc < 0 ? rc : -EAGAIN;
}

static int
tls_shutdown_write(struct stream *s)
{
    struct tls_stream *t = (struct tls_stream *)s;

    if (!t->open || t->err != 0)
        return t->err != 0 ? t->err : -ENOTCONN;
    if (t->wr_shut)
        return 0;
    t->wr_shut = true;
    if (SSL_shutdown(t->ssl) < 0)
        ERR_clear_error();
    schedule_flush(t);
    return 0;
}

static void
tls_want(struct stream *s, bool rd, bool wr)
{
    struct tls_stream *t = (struct tls_stream *)s;

    t->up_rd = rd;
    t->up_wr = wr;
    update_lower(t);
    wake(t);
}

static void
free_tls(void *arg)
{
    struct tls_stream *t = arg;
    buf_cleanup(&t->enc);
    free(t);
}

static void
tls_close(struct stream *s, bool abort)
{
    struct tls_stream *t = (struct tls_stream *)s;

    if (t->closed)
        return;
    /* Best effort: what is queued (close_notify, an alert) goes if the lower stream takes it. */
    if (!abort && t->err == 0)
        send_enc(t);
    t->closed = true;
    t->s.on_event = NULL;
    SSL_free(t->ssl); /* now: its verification state (tls_check) belongs to the owner */
    t->ssl = NULL;
    ERR_clear_error();
    stream_close(t->lower, abort);
    t->lower = NULL;
    loop_defer(t->loop, &t->free_defer, free_tls, t);
}

static int
tls_opened(struct stream *s)
{
    struct tls_stream *t = (struct tls_stream *)s;
    return t->open ? 1 : t->err;
}

static const struct stream_ops tls_ops = {
    .read = tls_read,
    .write = tls_write,
    .shutdown_write = tls_shutdown_write,
    .want = tls_want,
    .close = tls_close,
    .opened = tls_opened,
};

struct stream *
tls_stream_new(struct loop *l, struct stream *lower, SSL *ssl, bool server, unsigned flags)
{
    if (lower == NULL || ssl == NULL) {
        SSL_free(ssl);
        if (lower != NULL)
            stream_close(lower, true);
        return NULL;
    }
    struct tls_stream *t = xcalloc(1, sizeof(*t));
    t->s.ops = &tls_ops;
    t->loop = l;
    t->lower = lower;
    t->ssl = ssl;
    t->flags = flags;
    buf_init(&t->enc, TLS_STREAM_ENC_MAX + TLS_BIO_RECORD_MAX);
    BIO *b = tls_bio_new(lower, &t->enc);
    if (b == NULL) {
        SSL_free(ssl);
        stream_close(lower, true);
        buf_cleanup(&t->enc);
        free(t);
        return NULL;
    }
    SSL_set_bio(ssl, b, b);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    stream_set_handler(lower, on_lower, t);
    /* Either event starts the handshake: connected (client) or the ClientHello is here. */
    t->hs_rd = t->hs_wr = true;
    update_lower(t);
    return &t->s;
}

SSL *
tls_stream_ssl(const struct stream *s)
{
    return s != NULL && s->ops == &tls_ops ? ((const struct tls_stream *)s)->ssl : NULL;
}
