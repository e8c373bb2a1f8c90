/*
 * unit_kubesrv.c - see unit_kubesrv.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "base/base.h"
#include "conn/tcp_stream.h"
#include "net/addr.h"
#include "net/sock.h"
#include "tls/ca.h"
#include "tls/tls_cp.h"
#include "tls/tls_stream.h"
#include "unit_kubesrv.h"

#define FKS_MAX_SESS 64
#define FKS_MAX_ALL  4096 /* requests kept for the whole test */

struct fks {
    struct loop *loop;
    fks_handler_fn *cb;
    void *arg;
    int lfd;
    struct loop_io lio;
    char server[64];
    char *ca_pem, *other_ca_pem;
    SSL_CTX *ctx;
    struct h2_session *sess[FKS_MAX_SESS];
    size_t n_sess;
    struct fks_req *all[FKS_MAX_ALL];
    size_t n_all;
    unsigned conns;
};

static char *
pem_of(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = xstrndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void pump(struct fks_req *rq);

static void
req_close(struct fks_req *rq, bool abort)
{
    if (rq->st == NULL)
        return;
    struct stream *x = h2_stream_as_stream(rq->st);
    rq->st = NULL;
    rq->gone = true;
    loop_timer_stop(rq->f->loop, &rq->pace_timer);
    stream_set_handler(x, NULL, NULL);
    stream_close(x, abort);
}

static void
on_pace(void *arg)
{
    pump(arg);
}

static void
pump(struct fks_req *rq)
{
    if (rq->st == NULL)
        return;
    struct stream *x = h2_stream_as_stream(rq->st);
    while (rq->out_off < rq->out_len) {
        size_t n = rq->out_len - rq->out_off;
        if (rq->pace > 0 && n > rq->pace)
            n = rq->pace;
        ssize_t w = stream_write(x, rq->out + rq->out_off, n);
        if (w == -EAGAIN) {
            stream_want(x, false, true);
            return;
        }
        if (w < 0) {
            req_close(rq, true);
            return;
        }
        rq->out_off += (size_t)w;
        if (rq->pace > 0 && rq->out_off < rq->out_len) {
            loop_timer_start(rq->f->loop, &rq->pace_timer, 1, on_pace, rq);
            return;
        }
    }
    stream_want(x, false, false);
    if (rq->end_after && !rq->done) {
        rq->done = true;
        stream_shutdown_write(x);
        req_close(rq, false);
    }
}

static void
on_req_event(void *arg, struct stream *x, unsigned events)
{
    struct fks_req *rq = arg;
    if (rq->st == NULL)
        return;
    if ((events & STREAM_READABLE) && !rq->begun) {
        char tmp[16384];
        for (;;) {
            ssize_t n = stream_read(x, tmp, sizeof(tmp));
            if (n == -EAGAIN)
                break;
            if (n < 0) {
                req_close(rq, true);
                return;
            }
            if (n == 0) {
                stream_want(x, false, false);
                rq->begun = true; /* handed to the test */
                rq->f->cb(rq->f->arg, rq);
                return;
            }
            rq->body = xrealloc(rq->body, rq->body_len + (size_t)n + 1);
            memcpy(rq->body + rq->body_len, tmp, (size_t)n);
            rq->body_len += (size_t)n;
            rq->body[rq->body_len] = '\0';
        }
    }
    if ((events & STREAM_WRITABLE) && rq->st != NULL)
        pump(rq);
}

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct fks *f = arg;
    (void)s;
    if (f->n_all == FKS_MAX_ALL) {
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    struct fks_req *rq = xcalloc(1, sizeof(*rq));
    f->all[f->n_all++] = rq;
    rq->f = f;
    rq->st = st;
    rq->body = xstrdup("");
    snprintf(rq->method, sizeof(rq->method), "%s", h2_stream_method(st));
    const char *p = h2_stream_path(st);
    const char *q = strchr(p, '?');
    snprintf(rq->path, sizeof(rq->path), "%.*s", (int)(q != NULL ? (size_t)(q - p) : strlen(p)), p);
    snprintf(rq->query, sizeof(rq->query), "%s", q != NULL ? q + 1 : "");
    const char *a = h2_stream_header(st, "authorization");
    snprintf(rq->auth, sizeof(rq->auth), "%s", a != NULL ? a : "");
    stream_set_handler(h2_stream_as_stream(st), on_req_event, rq);
    stream_want(h2_stream_as_stream(st), true, false);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct fks *f = arg;
    (void)err;
    for (size_t i = 0; i < f->n_sess; i++)
        if (f->sess[i] == s) {
            f->sess[i] = f->sess[--f->n_sess];
            break;
        }
    for (size_t i = 0; i < f->n_all; i++) {
        struct fks_req *rq = f->all[i];
        if (rq->st != NULL && h2_stream_session(rq->st) == s)
            req_close(rq, true);
    }
    h2_session_release(s);
}

static const struct h2_session_cbs srv_cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

static void
on_accept(void *arg, uint32_t events)
{
    struct fks *f = arg;
    (void)events;
    for (;;) {
        int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (f->n_sess == FKS_MAX_SESS) {
            close(fd);
            continue;
        }
        SSL *ssl = SSL_new(f->ctx);
        struct stream *x =
            tls_stream_new(f->loop, tcp_stream_new(f->loop, fd), ssl, true, TLS_STREAM_ALPN_H2);
        f->sess[f->n_sess++] = h2_session_new(f->loop, x, true, &srv_cbs, f);
        f->conns++;
    }
}

struct fks *
fks_new(struct loop *l, fks_handler_fn *cb, void *arg)
{
    struct fks *f = xcalloc(1, sizeof(*f));
    f->loop = l;
    f->cb = cb;
    f->arg = arg;
    struct ca *ca = ca_generate("fake-kube-ca", 3600);
    struct ca *other = ca_generate("other-ca", 3600);
    EVP_PKEY *key = ca_new_key();
    X509 *cert = ca_issue_sans(ca, key, "IP:127.0.0.1,DNS:localhost", -60, 3600);
    if (ca == NULL || other == NULL || key == NULL || cert == NULL)
        abort();
    f->ca_pem = pem_of(ca_root(ca));
    f->other_ca_pem = pem_of(ca_root(other));
    f->ctx = tls_cp_server_ctx(cert, key, NULL);
    if (f->ctx == NULL)
        abort();
    X509_free(cert);
    EVP_PKEY_free(key);
    ca_free(ca);
    ca_free(other);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(f->lfd, 64) != 0 || getsockname(f->lfd, (struct sockaddr *)&sa, &sl) != 0)
        abort();
    snprintf(f->server, sizeof(f->server), "https://127.0.0.1:%u", ntohs(sa.sin_port));
    if (loop_io_start(l, &f->lio, f->lfd, EPOLLIN, on_accept, f) != 0)
        abort();
    return f;
}

void
fks_free(struct fks *f)
{
    for (size_t i = 0; i < f->n_all; i++)
        req_close(f->all[i], true);
    while (f->n_sess > 0) {
        struct h2_session *s = f->sess[--f->n_sess];
        h2_session_close(s, 0);
        h2_session_release(s);
    }
    loop_run_deferred(f->loop);
    for (size_t i = 0; i < f->n_all; i++) {
        free(f->all[i]->body);
        free(f->all[i]->out);
        free(f->all[i]);
    }
    loop_io_stop(f->loop, &f->lio);
    close(f->lfd);
    SSL_CTX_free(f->ctx);
    free(f->ca_pem);
    free(f->other_ca_pem);
    free(f);
}

const char *
fks_server(const struct fks *f)
{
    return f->server;
}

const char *
fks_ca_pem(const struct fks *f)
{
    return f->ca_pem;
}

const char *
fks_other_ca_pem(const struct fks *f)
{
    return f->other_ca_pem;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool
fks_param(const struct fks_req *rq, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = rq->query;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t o = 0;
            for (size_t i = kl + 1; i < len && o + 1 < cap; i++) {
                if (p[i] == '%' && i + 2 < len + 1 && hexval(p[i + 1]) >= 0 &&
                    hexval(p[i + 2]) >= 0) {
                    out[o++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
                    i += 2;
                } else {
                    out[o++] = p[i] == '+' ? ' ' : p[i];
                }
            }
            out[o] = '\0';
            return true;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return false;
}

void
fks_begin(struct fks_req *rq, int status)
{
    struct h2_header h[] = {{"content-type", "application/json"}};
    if (rq->st == NULL)
        return;
    h2_stream_respond(rq->st, status, h, 1, false);
}

void
fks_write(struct fks_req *rq, const char *p, size_t n)
{
    if (rq->st == NULL)
        return;
    if (rq->out_off == rq->out_len) {
        rq->out_off = rq->out_len = 0;
    }
    rq->out = xrealloc(rq->out, rq->out_len + n + 1);
    memcpy(rq->out + rq->out_len, p, n);
    rq->out_len += n;
    if (!loop_timer_armed(&rq->pace_timer))
        pump(rq);
}

void
fks_write_str(struct fks_req *rq, const char *s)
{
    fks_write(rq, s, strlen(s));
}

void
fks_end(struct fks_req *rq)
{
    rq->end_after = true;
    if (!loop_timer_armed(&rq->pace_timer))
        pump(rq);
}

void
fks_reset(struct fks_req *rq)
{
    req_close(rq, true);
}

void
fks_respond(struct fks_req *rq, int status, const char *body, const char *hname, const char *hvalue)
{
    struct h2_header h[2] = {{"content-type", "application/json"}, {hname, hvalue}};
    if (rq->st == NULL)
        return;
    h2_stream_respond(rq->st, status, h, hname != NULL ? 2 : 1, body == NULL);
    if (body == NULL) {
        rq->done = true;
        req_close(rq, false);
        return;
    }
    size_t pace = rq->pace;
    rq->pace = 0;
    fks_write_str(rq, body);
    rq->pace = pace;
    fks_end(rq);
}

void
fks_cut(struct fks *f)
{
    for (size_t i = 0; i < f->n_sess; i++)
        h2_session_close(f->sess[i], -ECONNRESET);
}

void
fks_goaway(struct fks *f)
{
    for (size_t i = 0; i < f->n_sess; i++)
        h2_session_shutdown(f->sess[i]);
}

unsigned
fks_connections(const struct fks *f)
{
    return f->conns;
}

unsigned
fks_requests(const struct fks *f)
{
    return (unsigned)f->n_all;
}

size_t
fks_open(const struct fks *f, struct fks_req **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_all; i++)
        if (f->all[i]->st != NULL && f->all[i]->begun && n < max)
            out[n++] = f->all[i];
    return n;
}
