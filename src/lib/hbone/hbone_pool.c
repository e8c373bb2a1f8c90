/*
 * hbone_pool.c - HBONE client connections, shared by tunnels with the same key
 * (ztunnel's outbound, the waypoint's upstream).
 *
 * Key: (source identity, expected destination identities, source IP,
 * destination address) - connections never mix identities. A key may own
 * several connections; a new one is opened only when every existing one is
 * full (100 streams) or going away, and requests that arrive while one is
 * still handshaking wait on it instead of opening their own. A connection
 * left without streams is closed after the idle timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "hbone-pool"
#include "base/base.h"
#include "conn/tcp_stream.h"
#include "h2/h2.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "net/sock.h"
#include "tls/tls_stream.h"

struct waiter {
    struct waiter *next;
    char *authority;
    struct h2_header hdrs[4];
    size_t n_hdrs;
    hbone_stream_fn *cb;
    void *arg;
};

struct pool_conn {
    struct pool_conn *prev, *next;
    struct hbone_pool *pool;
    char *key;                /* src id \n sorted dst ids \n src ip \n dst addr */
    char **dst_ids;
    size_t n_dst_ids;
    struct tls_check chk;
    struct tls_creds *creds;
    struct h2_session *sess;
    struct ipaddr dst_ip;
    uint16_t dst_port;
    struct waiter *waiters, **waiters_tail;
    size_t n_waiters;
    bool ready;
    bool retiring; /* no new streams: idle-closed or draining */
    struct loop_timer idle;
};

struct hbone_pool {
    struct loop *loop;
    uint64_t idle_ms;
    struct sock_opts dial; /* when the target names none */
    struct pool_conn *conns;
    size_t n_conns;
};

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *
make_key(const struct hbone_target *t)
{
    const char **ids = xcalloc(t->n_dst_ids, sizeof(*ids));
    char sip[ADDR_STRLEN], dst[ADDR_STRLEN];
    size_t len = 0;

    for (size_t i = 0; i < t->n_dst_ids; i++) {
        ids[i] = t->dst_ids[i];
        len += strlen(ids[i]) + 1;
    }
    qsort(ids, t->n_dst_ids, sizeof(*ids), cmp_str);
    const char *src = tls_creds_id(t->creds)->uri;
    ipaddr_str(&t->src_ip, sip);
    ipport_str(&t->dst_ip, t->dst_port, dst);
    len += strlen(src) + strlen(sip) + strlen(dst) + 4;
    char *key = xmalloc(len);
    size_t n = (size_t)snprintf(key, len, "%s\n", src);
    for (size_t i = 0; i < t->n_dst_ids; i++)
        n += (size_t)snprintf(key + n, len - n, "%s,", ids[i]);
    snprintf(key + n, len - n, "\n%s\n%s", sip, dst);
    free(ids);
    return key;
}

static void
waiter_free(struct waiter *w)
{
    free(w->authority);
    for (size_t i = 0; i < w->n_hdrs; i++) {
        free((char *)w->hdrs[i].name);
        free((char *)w->hdrs[i].value);
    }
    free(w);
}

static void
open_stream(struct pool_conn *pc, struct waiter *w)
{
    struct h2_stream *st =
        h2_session_connect(pc->sess, w->authority, w->hdrs, w->n_hdrs, w->cb, w->arg);
    if (st == NULL)
        w->cb(w->arg, NULL, -MESH_EPROTO);
    loop_timer_stop(pc->pool->loop, &pc->idle);
}

static void
on_idle(void *arg)
{
    struct pool_conn *pc = arg;

    if (h2_session_n_streams(pc->sess) == 0) {
        log_debug("closing idle pooled connection");
        pc->retiring = true;
        h2_session_shutdown(pc->sess);
    }
}

static int
on_ready(void *arg, struct h2_session *s)
{
    struct pool_conn *pc = arg;
    (void)s;

    if (!pc->chk.have_peer)
        return -MESH_ETLS;
    pc->ready = true;
    while (pc->waiters != NULL) {
        struct waiter *w = pc->waiters;
        pc->waiters = w->next;
        pc->n_waiters--;
        open_stream(pc, w);
        waiter_free(w);
    }
    pc->waiters_tail = &pc->waiters;
    return 0;
}

/* Called from inside HTTP/2 processing: only timers here. */
static void
on_streams(void *arg, struct h2_session *s)
{
    struct pool_conn *pc = arg;
    struct loop *l = pc->pool->loop;

    if (h2_session_n_streams(s) == 0 && !pc->retiring)
        loop_timer_start(l, &pc->idle, pc->pool->idle_ms, on_idle, pc);
    else
        loop_timer_stop(l, &pc->idle);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct pool_conn *pc = arg;
    struct hbone_pool *p = pc->pool;

    if (!pc->ready)
        log_warn("HBONE connection to %s failed: %s", strrchr(pc->key, '\n') + 1,
                 pc->chk.why ? pc->chk.why : mesh_strerror(err ? err : -ECONNRESET));
    while (pc->waiters != NULL) {
        struct waiter *w = pc->waiters;
        pc->waiters = w->next;
        w->cb(w->arg, NULL, err ? err : -ECONNRESET);
        waiter_free(w);
    }
    loop_timer_stop(p->loop, &pc->idle);
    if (pc->prev)
        pc->prev->next = pc->next;
    else
        p->conns = pc->next;
    if (pc->next)
        pc->next->prev = pc->prev;
    p->n_conns--;
    h2_session_release(s);
    tls_creds_unref(pc->creds);
    for (size_t i = 0; i < pc->n_dst_ids; i++)
        free(pc->dst_ids[i]);
    free(pc->dst_ids);
    free(pc->key);
    free(pc);
}

static const struct h2_session_cbs client_cbs = {
    .on_ready = on_ready,
    .on_streams = on_streams,
    .on_closed = on_closed,
};

static struct pool_conn *
conn_new(struct hbone_pool *p, const struct hbone_target *t, char *key, int *err)
{
    const struct sock_opts *so = t->dial != NULL ? t->dial : &p->dial;
    int fd = sock_connect(&t->dst_ip, t->dst_port, &t->src_ip, so);

    if (fd == -EADDRNOTAVAIL || fd == -EINVAL) /* source address not local here: let the kernel pick */
        fd = sock_connect(&t->dst_ip, t->dst_port, NULL, so);
    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    struct pool_conn *pc = xcalloc(1, sizeof(*pc));
    pc->pool = p;
    pc->key = key;
    pc->waiters_tail = &pc->waiters;
    pc->dst_ip = t->dst_ip;
    pc->dst_port = t->dst_port;
    pc->creds = t->creds;
    tls_creds_ref(t->creds);
    pc->dst_ids = xcalloc(t->n_dst_ids, sizeof(char *));
    for (size_t i = 0; i < t->n_dst_ids; i++)
        pc->dst_ids[i] = xstrdup(t->dst_ids[i]);
    pc->n_dst_ids = t->n_dst_ids;
    pc->chk.expected = (const char *const *)pc->dst_ids;
    pc->chk.n_expected = pc->n_dst_ids;
    SSL *ssl = tls_new_client(t->creds, &pc->chk);
    if (ssl == NULL) {
        /* Not yet linked: free by hand. */
        tls_creds_unref(pc->creds);
        for (size_t i = 0; i < pc->n_dst_ids; i++)
            free(pc->dst_ids[i]);
        free(pc->dst_ids);
        free(pc);
        close(fd);
        *err = -MESH_ETLS;
        return NULL;
    }
    pc->next = p->conns;
    if (p->conns)
        p->conns->prev = pc;
    p->conns = pc;
    p->n_conns++;
    struct loop *l = p->loop;
    struct stream *x = tls_stream_new(l, tcp_stream_new(l, fd), ssl, false, TLS_STREAM_ALPN_H2);
    pc->sess = h2_session_new(l, x, false, &client_cbs, pc);
    return pc;
}

void
hbone_pool_connect(struct hbone_pool *p, const struct hbone_target *t, const char *authority,
             const struct h2_header *hdrs, size_t n_hdrs, hbone_stream_fn *cb, void *arg)
{
    char *key = make_key(t);
    struct pool_conn *pc;

    for (pc = p->conns; pc != NULL; pc = pc->next) {
        if (pc->retiring || h2_session_is_closed(pc->sess) || strcmp(pc->key, key) != 0)
            continue;
        if (pc->ready ? h2_session_can_open(pc->sess) : pc->n_waiters < H2_CLIENT_MAX_STREAMS)
            break;
    }
    if (pc != NULL) {
        free(key);
    } else {
        int err = 0;
        pc = conn_new(p, t, key, &err);
        if (pc == NULL) {
            free(key);
            /* Same contract as a failed session: the callback runs, with the error. */
            cb(arg, NULL, err);
            return;
        }
    }
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->authority = xstrdup(authority);
    for (size_t i = 0; i < n_hdrs && i < ARRAY_LEN(w->hdrs); i++) {
        w->hdrs[i].name = xstrdup(hdrs[i].name);
        w->hdrs[i].value = xstrdup(hdrs[i].value);
        w->n_hdrs++;
    }
    w->cb = cb;
    w->arg = arg;
    if (pc->ready) {
        open_stream(pc, w);
        waiter_free(w);
        return;
    }
    *pc->waiters_tail = w;
    pc->waiters_tail = &w->next;
    pc->n_waiters++;
}

struct hbone_pool *
hbone_pool_new(struct loop *l, uint64_t idle_ms, const struct sock_opts *dial)
{
    struct hbone_pool *p = xcalloc(1, sizeof(*p));
    p->loop = l;
    p->idle_ms = idle_ms;
    p->dial = *dial;
    return p;
}

void
hbone_pool_drain(struct hbone_pool *p)
{
    for (struct pool_conn *pc = p->conns; pc != NULL; pc = pc->next) {
        pc->retiring = true;
        h2_session_shutdown(pc->sess);
    }
}

void
hbone_pool_abort(struct hbone_pool *p)
{
    for (struct pool_conn *pc = p->conns; pc != NULL; pc = pc->next) {
        pc->retiring = true;
        h2_session_close(pc->sess, -ECONNABORTED);
    }
}

unsigned
hbone_pool_streams_to(const struct hbone_pool *p, const struct ipaddr *ip, uint16_t port)
{
    unsigned n = 0;
    for (const struct pool_conn *pc = p->conns; pc != NULL; pc = pc->next)
        if (pc->dst_port == port && ipaddr_eq(&pc->dst_ip, ip))
            n += (unsigned)pc->n_waiters + (pc->sess ? h2_session_n_streams(pc->sess) : 0);
    return n;
}

size_t
hbone_pool_n_conns(const struct hbone_pool *p)
{
    return p->n_conns;
}

void
hbone_pool_free(struct hbone_pool *p)
{
    if (p != NULL && p->n_conns == 0)
        free(p);
}
