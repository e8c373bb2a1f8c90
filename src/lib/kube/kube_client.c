/*
 * kube_client.c - one TLS + HTTP/2 connection to the API server and the
 * streaming calls over it. The connection is made when a call needs it; a
 * failed attempt fails the calls that waited (their owners have their own
 * retry policy) and delays the next attempt with the jittered backoff. A
 * server that sent GOAWAY keeps its streams until they end while new calls
 * go to a new connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "kube"
#include "base/base.h"
#include "conn/dial.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "kube/kube_client_priv.h"
#include "log/log.h"
#include "net/addr.h"
#include "tls/tls_https.h"
#include "tls/tls_stream.h"

#define CONNECT_TIMEOUT_MS 10000
#define TOKEN_CHECK_MS     1000 /* the token file is looked at no more often */
#define MAX_OLD_SESSIONS   8    /* connections draining after GOAWAY */

struct kube_call {
    struct kube_client *c;
    struct kube_call *next, *prev;
    char *method, *path, *ctype;
    char *body;
    size_t len, off;
    const struct kube_call_cbs *cbs;
    void *arg;
    struct h2_stream *st;
    struct loop_timer timer;
    struct loop_defer defer;      /* a failure reported from the loop */
    struct loop_defer free_defer; /* queued after |defer|: the loop runs them in order */
    int fail_err; /* a failure to report from the loop (never from kube_call_start) */
    bool headed, dead, body_done;
};

static void kick(struct kube_client *c);
static void call_fail(struct kube_call *k, int err);

/* ---- calls -------------------------------------------------------------- */

static void
noop(void *arg)
{
    (void)arg;
}

static void
call_free_deferred(void *arg)
{
    struct kube_call *k = arg;
    free(k->method);
    free(k->path);
    free(k->ctype);
    free(k->body);
    free(k);
}

/* Unlinks |k|, drops its stream and timer; memory goes at the end of the iteration. */
static void
call_kill(struct kube_call *k, bool abort)
{
    struct kube_client *c = k->c;
    if (k->dead)
        return;
    k->dead = true;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    k->next = k->prev = NULL;
    loop_timer_stop(c->loop, &k->timer);
    if (k->st != NULL) {
        struct stream *x = h2_stream_as_stream(k->st);
        k->st = NULL;
        stream_set_handler(x, NULL, NULL);
        stream_close(x, abort);
    }
    if (k->defer.queued)
        k->defer.cb = noop;
    loop_defer(c->loop, &k->free_defer, call_free_deferred, k);
}

static void
call_fail(struct kube_call *k, int err)
{
    if (k->dead)
        return;
    const struct kube_call_cbs *cbs = k->cbs;
    void *arg = k->arg;
    bool headed = k->headed;
    call_kill(k, true);
    if (headed)
        cbs->on_end(arg, k, err);
    else
        cbs->on_head(arg, k, err, NULL);
}

static void
on_deadline(void *arg)
{
    call_fail(arg, -ETIMEDOUT);
}

static void
on_deferred_fail(void *arg)
{
    struct kube_call *k = arg;
    call_fail(k, k->fail_err);
}

/* Fails |k| from the loop, not from the caller's stack. */
static void
call_fail_later(struct kube_call *k, int err)
{
    k->fail_err = err;
    loop_defer(k->c->loop, &k->defer, on_deferred_fail, k);
}

static void
pump_body(struct kube_call *k)
{
    struct stream *x = h2_stream_as_stream(k->st);
    while (k->off < k->len) {
        ssize_t n = stream_write(x, k->body + k->off, k->len - k->off);
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            call_fail(k, (int)n);
            return;
        }
        k->off += (size_t)n;
    }
    free(k->body);
    k->body = NULL;
    k->body_done = true;
    stream_shutdown_write(x);
}

static void
read_body(struct kube_call *k)
{
    struct stream *x = h2_stream_as_stream(k->st);
    const void *p;
    for (;;) {
        ssize_t n = x->ops->peek(x, &p);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            const struct kube_call_cbs *cbs = k->cbs;
            void *arg = k->arg;
            call_kill(k, n < 0);
            cbs->on_end(arg, k, (int)n);
            return;
        }
        int rc = k->cbs->on_data(k->arg, k, p, (size_t)n);
        if (k->dead)
            return; /* cancelled from the callback */
        if (rc < 0) {
            call_kill(k, true);
            return;
        }
        x->ops->consume(x, (size_t)n);
    }
}

static void
on_stream_event(void *arg, struct stream *x, unsigned events)
{
    struct kube_call *k = arg;
    if (k->dead)
        return;
    if ((events & STREAM_WRITABLE) && !k->body_done) {
        pump_body(k);
        if (k->dead)
            return;
    }
    if ((events & STREAM_READABLE) && k->headed) {
        read_body(k);
        if (k->dead)
            return;
    }
    stream_want(x, k->headed, !k->body_done);
}

static void
on_response(void *arg, struct h2_stream *st, int status)
{
    struct kube_call *k = arg;
    (void)st;
    if (k->dead)
        return;
    if (status < 0) {
        call_fail(k, status);
        return;
    }
    k->headed = true;
    const char *ra = h2_stream_header(k->st, "retry-after");
    k->cbs->on_head(k->arg, k, status, ra);
    if (k->dead)
        return;
    stream_want(h2_stream_as_stream(k->st), true, !k->body_done);
}

/* Re-reads the token file when it changed (kubelet rotates projected tokens). */
static void
refresh_token(struct kube_client *c)
{
    uint64_t now = loop_now_ms(c->loop);
    struct stat st;
    char err[256];
    if (c->token_file == NULL ||
        (c->token_checked_ms != 0 && now - c->token_checked_ms < TOKEN_CHECK_MS))
        return;
    c->token_checked_ms = now;
    if (stat(c->token_file, &st) != 0) {
        log_warn_rl(&c->rl, "token file %s: %s (keeping the last token)", c->token_file,
                    strerror(errno));
        return;
    }
    if (st.st_ino == c->token_st.st_ino && st.st_size == c->token_st.st_size &&
        st.st_mtim.tv_sec == c->token_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == c->token_st.st_mtim.tv_nsec && st.st_dev == c->token_st.st_dev)
        return;
    char *t = kube_read_file(c->token_file, KUBE_MAX_CONFIG_BYTES, NULL, err, sizeof(err));
    if (t == NULL) {
        log_warn_rl(&c->rl, "%s (keeping the last token)", err);
        return;
    }
    kube_trim(t);
    if (*t == '\0') {
        log_warn_rl(&c->rl, "token file %s is empty (keeping the last token)", c->token_file);
        free(t);
        return;
    }
    if (c->token == NULL || strcmp(c->token, t) != 0)
        log_info("token re-read from %s", c->token_file);
    c->token_st = st;
    free(c->token);
    c->token = t;
    free(c->auth);
    c->auth = xasprintf("Bearer %s", c->token);
    c->token_reads++;
}

static void
call_send(struct kube_call *k, struct h2_session *s)
{
    struct kube_client *c = k->c;
    struct h2_header h[5];
    size_t n = 0;
    char clen[24];

    refresh_token(c);
    h[n++] = (struct h2_header){"accept", "application/json"};
    h[n++] = (struct h2_header){"user-agent", "amesh/" KUBE_USER_AGENT_VERSION};
    if (c->auth != NULL)
        h[n++] = (struct h2_header){"authorization", c->auth};
    if (k->ctype != NULL) {
        h[n++] = (struct h2_header){"content-type", k->ctype};
        snprintf(clen, sizeof(clen), "%zu", k->len);
        h[n++] = (struct h2_header){"content-length", clen};
    }
    k->st = h2_session_request(s, k->method, k->path, c->srv.authority, h, n, on_response, k);
    if (k->st == NULL) {
        call_fail_later(k, -EIO);
        return;
    }
    c->requests++;
    stream_set_handler(h2_stream_as_stream(k->st), on_stream_event, k);
    if (k->ctype == NULL) {
        k->body_done = true;
        stream_shutdown_write(h2_stream_as_stream(k->st));
    } else {
        stream_want(h2_stream_as_stream(k->st), false, true);
    }
}

/* ---- the connection ----------------------------------------------------- */

static void
fail_waiting(struct kube_client *c, int err)
{
    struct kube_call *k = c->calls, *next;
    for (; k != NULL; k = next) {
        next = k->next;
        if (k->st == NULL && !k->dead && !k->defer.queued)
            call_fail_later(k, err);
    }
}

static void
attempt_failed(struct kube_client *c, int err)
{
    uint64_t d = kube_backoff_next(&c->dial_bo, loop_now_ms(c->loop), kube_rand());
    c->next_dial_ms = loop_now_ms(c->loop) + d;
    log_warn_rl(&c->rl, "connection to %s failed: %s (next attempt in %llu ms)", c->srv.authority,
                mesh_strerror(err), (unsigned long long)d);
    fail_waiting(c, err);
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct kube_client *c = arg;
    c->connects++;
    if (s == c->sess)
        c->sess_ready = true;
    log_debug("connected to %s", c->srv.authority);
    kick(c);
    return 0;
}

static void
on_streams(void *arg, struct h2_session *s)
{
    (void)s;
    kick(arg);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct kube_client *c = arg;
    if (c->sess == s) {
        bool was_ready = c->sess_ready;
        c->sess = NULL;
        c->sess_ready = false;
        if (!was_ready)
            attempt_failed(c, err != 0 ? err : -ECONNRESET);
        else if (err != 0)
            log_info("connection to %s closed: %s", c->srv.authority, mesh_strerror(err));
    } else {
        for (size_t i = 0; i < c->n_old; i++)
            if (c->old[i] == s) {
                c->old[i] = c->old[--c->n_old];
                break;
            }
    }
    h2_session_release(s);
    kick(c);
}

static const struct h2_session_cbs sess_cbs = {
    .on_ready = on_ready,
    .on_streams = on_streams,
    .on_closed = on_closed,
};

static void
on_dialled(void *arg, int fd)
{
    struct kube_client *c = arg;
    c->dial = NULL;
    if (fd < 0) {
        attempt_failed(c, fd);
        return;
    }
    SSL *ssl = tls_https_client(c->ctx, c->srv.host);
    if (ssl == NULL) {
        close(fd);
        attempt_failed(c, -MESH_ETLS);
        return;
    }
    struct stream *x =
        tls_stream_new(c->loop, tcp_stream_new(c->loop, fd), ssl, false, TLS_STREAM_ALPN_H2);
    c->sess = h2_session_new(c->loop, x, false, &sess_cbs, c);
}

static void dial_ip(struct kube_client *c, const struct ipaddr *ip);

static void
resolve_stop(struct kube_client *c)
{
    if (c->resolve_fd < 0)
        return;
    loop_io_stop(c->loop, &c->resolve_io);
    close(c->resolve_fd);
    c->resolve_fd = -1;
}

static void
on_resolved(void *arg, uint32_t events)
{
    struct kube_client *c = arg;
    struct kube_resolved r;
    (void)events;
    if (kube_resolve_finish(c->resolve_fd, &r) == -EAGAIN)
        return;
    resolve_stop(c);
    if (r.err != 0) {
        log_warn_rl(&c->rl, "cannot resolve %s: %s", c->srv.host, r.why);
        attempt_failed(c, r.err);
        return;
    }
    dial_ip(c, &r.ip);
}

static void
on_redial(void *arg)
{
    kick(arg);
}

static void
dial_ip(struct kube_client *c, const struct ipaddr *ip)
{
    struct sock_opts o = {0};
    c->dial = dial_start(c->loop, ip, c->srv.port, NULL, &o, CONNECT_TIMEOUT_MS, on_dialled, c);
    if (c->dial == NULL)
        attempt_failed(c, -ENOMEM);
}

/* An IP literal is dialled at once; a name is resolved first, off the loop's thread. */
static void
connect_now(struct kube_client *c)
{
    struct ipaddr ip;
    if (ipaddr_parse(c->srv.host, &ip) == 0) {
        dial_ip(c, &ip);
        return;
    }
    int fd = kube_resolve_start(c->srv.host);
    if (fd < 0) {
        attempt_failed(c, fd);
        return;
    }
    c->resolve_fd = fd;
    if (loop_io_start(c->loop, &c->resolve_io, fd, EPOLLIN, on_resolved, c) != 0) {
        close(fd);
        c->resolve_fd = -1;
        attempt_failed(c, -EIO);
    }
}

/* Starts the calls that wait, connecting first when needed and allowed. */
static void
kick(struct kube_client *c)
{
    bool waiting = false;
    if (c->freeing)
        return;
    if (c->sess != NULL && h2_session_is_ready(c->sess) && !h2_session_is_closed(c->sess) &&
        !h2_session_can_open(c->sess) && h2_session_n_streams(c->sess) < H2_CLIENT_MAX_STREAMS) {
        /* GOAWAY: the old connection finishes its streams, new calls need another. */
        if (c->n_old < MAX_OLD_SESSIONS) {
            c->old[c->n_old++] = c->sess;
        } else {
            h2_session_close(c->sess, 0);
            h2_session_release(c->sess);
        }
        c->sess = NULL;
        c->sess_ready = false;
        c->goaways++;
    }
    for (struct kube_call *k = c->calls; k != NULL; k = k->next) {
        if (k->st != NULL || k->dead || k->defer.queued)
            continue;
        if (c->sess != NULL && h2_session_can_open(c->sess))
            call_send(k, c->sess);
        else
            waiting = true;
    }
    if (!waiting || c->sess != NULL || c->dial != NULL || c->resolve_fd >= 0)
        return;
    uint64_t now = loop_now_ms(c->loop);
    if (now < c->next_dial_ms) {
        if (!loop_timer_armed(&c->redial))
            loop_timer_start(c->loop, &c->redial, c->next_dial_ms - now, on_redial, c);
        return;
    }
    connect_now(c);
}

static void
on_kick(void *arg)
{
    kick(arg);
}

struct kube_call *
kube_call_start(struct kube_client *c, const char *method, const char *path,
                const char *content_type, const char *body, size_t len, uint64_t timeout_ms,
                const struct kube_call_cbs *cbs, void *arg)
{
    if (c->freeing)
        return NULL;
    struct kube_call *k = xcalloc(1, sizeof(*k));
    k->c = c;
    k->method = xstrdup(method);
    k->path = xasprintf("%s%s", c->srv.prefix, path);
    if (body != NULL || content_type != NULL) {
        k->ctype = xstrdup(content_type != NULL ? content_type : "application/json");
        k->body = xmalloc(len > 0 ? len : 1);
        if (len > 0)
            memcpy(k->body, body, len);
        k->len = len;
    }
    k->cbs = cbs;
    k->arg = arg;
    k->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = k;
    c->calls = k;
    if (timeout_ms > 0)
        loop_timer_start(c->loop, &k->timer, timeout_ms, on_deadline, k);
    /* Sent from the loop, so no callback ever runs inside this function. */
    loop_defer(c->loop, &c->kick_defer, on_kick, c);
    return k;
}

void
kube_call_cancel(struct kube_call *k)
{
    if (k != NULL)
        call_kill(k, true);
}

/* ---- the client --------------------------------------------------------- */

struct kube_client *
kube_client_new(struct loop *l, const struct kube_config *cfg, char *err, size_t errlen)
{
    struct kube_server srv;
    if (cfg->server == NULL) {
        snprintf(err, errlen, "no server");
        return NULL;
    }
    if (kube_server_parse(cfg->server, &srv, err, errlen) != 0)
        return NULL;
    struct tls_https_opts o = {
        .ca_pem = cfg->ca_pem,
        .cert_pem = cfg->client_cert_pem,
        .key_pem = cfg->client_key_pem,
        .insecure_skip_verify = cfg->insecure_skip_verify,
    };
    SSL_CTX *ctx = tls_https_client_ctx(&o, err, errlen);
    if (ctx == NULL)
        return NULL;
    struct kube_client *c = xcalloc(1, sizeof(*c));
    c->loop = l;
    c->srv = srv;
    c->resolve_fd = -1;
    c->ctx = ctx;
    c->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    if (cfg->token != NULL) {
        c->token = xstrdup(cfg->token);
        c->auth = xasprintf("Bearer %s", c->token);
    }
    if (cfg->token_file != NULL) {
        c->token_file = xstrdup(cfg->token_file);
        if (stat(c->token_file, &c->token_st) != 0)
            memset(&c->token_st, 0, sizeof(c->token_st));
        c->token_checked_ms = loop_now_ms(l);
        if (c->token == NULL)
            c->token_checked_ms = 0; /* read it before the first call */
    }
    c->max_event = KUBE_MAX_EVENT_BYTES;
    c->absent_retry_ms = KUBE_ABSENT_RETRY_MS;
    c->max_pages = KUBE_MAX_LIST_PAGES;
    c->bo_min = KUBE_BACKOFF_MIN_MS;
    c->bo_max = KUBE_BACKOFF_MAX_MS;
    kube_backoff_init(&c->dial_bo, c->bo_min, c->bo_max);
    if (cfg->insecure_skip_verify)
        log_warn("insecure-skip-tls-verify: the API server %s is not authenticated",
                 c->srv.authority);
    return c;
}

void
kube_client_free(struct kube_client *c)
{
    if (c == NULL)
        return;
    while (c->reflectors != NULL)
        kube_reflector_stop(c->reflectors);
    c->freeing = true;
    while (c->calls != NULL) {
        struct kube_call *k = c->calls;
        const struct kube_call_cbs *cbs = k->cbs;
        void *arg = k->arg;
        call_kill(k, true);
        if (cbs->on_drop != NULL)
            cbs->on_drop(arg, k);
    }
    loop_timer_stop(c->loop, &c->redial);
    resolve_stop(c);
    if (c->dial != NULL)
        dial_cancel(c->dial);
    if (c->sess != NULL) {
        h2_session_close(c->sess, 0);
        h2_session_release(c->sess);
    }
    for (size_t i = 0; i < c->n_old; i++) {
        h2_session_close(c->old[i], 0);
        h2_session_release(c->old[i]);
    }
    SSL_CTX_free(c->ctx);
    free(c->token);
    free(c->token_file);
    free(c->auth);
    /* After any kick already queued (the loop runs deferred calls in order; kick sees |freeing|).
     */
    loop_defer(c->loop, &c->free_defer, free, c);
}

struct loop *
kube_client_loop(const struct kube_client *c)
{
    return c->loop;
}

void
kube_client_set_backoff(struct kube_client *c, unsigned min_ms, unsigned max_ms)
{
    c->bo_min = min_ms;
    c->bo_max = max_ms;
    kube_backoff_init(&c->dial_bo, min_ms, max_ms);
}

void
kube_client_backoff_range(const struct kube_client *c, uint64_t *min_ms, uint64_t *max_ms)
{
    *min_ms = c->bo_min;
    *max_ms = c->bo_max;
}

void
kube_client_set_limits(struct kube_client *c, size_t max_event, unsigned absent_retry_ms)
{
    c->max_event = max_event;
    c->absent_retry_ms = absent_retry_ms;
}

void
kube_client_set_max_pages(struct kube_client *c, unsigned max_pages)
{
    c->max_pages = max_pages;
}

void
kube_client_stats(const struct kube_client *c, struct kube_client_stats *out)
{
    out->connects = c->connects;
    out->requests = c->requests;
    out->goaways = c->goaways;
    out->token_reads = c->token_reads;
}
