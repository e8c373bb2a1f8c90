/*
 * zds_server.c - the node agent's ZDS listener; see zds_server.h.
 *
 * Messages are encoded once, when the cache changes, into refcounted
 * zds_out objects that the cache and every ztunnel's queues share; an add's
 * object owns the dup of the netns fd, closed when the last reference goes.
 * Each connection has two queues: the snapshot (adds and keeps, then the
 * SnapshotSent marker, a flag) and the live changes after it; a keep made
 * while a connection is still in its snapshot joins the snapshot queue, the
 * only place the protocol allows it.
 *
 * Connection states: HELLO (accepted, waiting for ZdsHello) -> SYNC (snapshot
 * being sent) -> LIVE (SnapshotSent acked) -> CLOSED. At most one message is
 * in flight per connection; its ack releases the next one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#define LOG_SCOPE "zds"
#include "base/base.h"
#include "log/log.h"
#include "net/sock_unix.h"
#include "zds/zds_internal.h"
#include "zds/zds_server.h"

#define ZDS_ACCEPT_BATCH      16
#define ZDS_READ_BATCH        8
#define ZDS_ACCEPT_BACKOFF_MS 100

enum peer_state { PEER_HELLO = 0, PEER_SYNC, PEER_LIVE, PEER_CLOSED };

struct zds_peer {
    struct zds_server *srv;
    struct zds_peer *prev, *next;
    uint64_t id;
    int fd;
    struct loop_io io;
    struct loop_timer timer; /* Hello, then the ack of the message in flight */
    struct loop_defer free_defer;
    enum peer_state state;
    struct zds_outq snapq, liveq;
    bool snap_pending; /* SnapshotSent still to send */
    bool awaiting;     /* a message is out; its ack is due */
    bool blocked;      /* the socket was full: waiting for EPOLLOUT */
    bool overflow;     /* fell more than max_queue changes behind */
    bool counted;      /* said Hello: in n_clients, reported to the user */
    enum zds_req_kind inflight_kind;
    struct zds_out *inflight; /* NULL for SnapshotSent */
};

struct zds_server {
    struct loop *loop;
    char *path;
    struct sock_unix lsock; /* the socket file we made, so we never unlink another's */
    struct loop_io lio;
    struct loop_timer accept_pause;
    struct zds_server_cbs cbs;
    void *arg;
    uint64_t ack_timeout_ms;
    size_t max_queue, max_clients;
    struct zds_peer *peers;
    size_t n_peers, n_clients;
    uint64_t next_id;
    struct zds_cache cache;
    uint8_t snap_msg[8];
    size_t snap_len;
    struct loop_defer pump_defer, free_defer;
    bool stopped;
    uint64_t last_warn_ms;
};

static void pump_peer(struct zds_peer *p);

/* ---- Connections ---- */

static void
peer_free(void *arg)
{
    free(arg);
}

/* Closes |p|; reports it unless |quiet| (the server is stopping). */
static void
peer_close(struct zds_peer *p, int err, bool quiet)
{
    struct zds_server *s = p->srv;

    if (p->state == PEER_CLOSED)
        return;
    p->state = PEER_CLOSED;
    loop_io_stop(s->loop, &p->io);
    loop_timer_stop(s->loop, &p->timer);
    close(p->fd);
    p->fd = -1;
    zds_outq_clear(&p->snapq);
    zds_outq_clear(&p->liveq);
    zds_out_unref(p->inflight);
    p->inflight = NULL;
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->peers = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    s->n_peers--;
    if (p->counted)
        s->n_clients--;
    loop_defer(s->loop, &p->free_defer, peer_free, p);
    if (!p->counted || quiet)
        return;
    log_info("ztunnel %" PRIu64 " disconnected: %s (%zu connected)", p->id, mesh_strerror(err),
             s->n_clients);
    if (s->cbs.on_disconnected != NULL)
        s->cbs.on_disconnected(s->arg, p->id, s->n_clients, err);
}

static bool
peer_gone(const struct zds_peer *p)
{
    return p->state == PEER_CLOSED || p->srv->stopped;
}

static void
on_peer_timeout(void *arg)
{
    struct zds_peer *p = arg;

    if (p->state == PEER_HELLO)
        log_warn("ztunnel connection %" PRIu64 " sent no Hello within %" PRIu64 " ms", p->id,
                 p->srv->ack_timeout_ms);
    else
        log_warn("ztunnel %" PRIu64 " did not answer %s %s within %" PRIu64 " ms", p->id,
                 zds_req_kind_name(p->inflight_kind), p->inflight ? p->inflight->uid : "",
                 p->srv->ack_timeout_ms);
    peer_close(p, -ETIMEDOUT, false);
}

/* Sends the next queued message if none is in flight. */
static void
pump_peer(struct zds_peer *p)
{
    struct zds_server *s = p->srv;
    struct zds_out *o = NULL;
    const uint8_t *b;
    size_t len;
    int fd = -1, rc;

    if (p->state != PEER_SYNC && p->state != PEER_LIVE)
        return;
    if (p->overflow) {
        log_warn("ztunnel %" PRIu64 " fell more than %zu changes behind", p->id, s->max_queue);
        peer_close(p, -MESH_ELIMIT, false);
        return;
    }
    if (p->awaiting || p->blocked)
        return;
    if (p->snapq.len > 0)
        o = zds_outq_front(&p->snapq);
    else if (!p->snap_pending)
        o = zds_outq_front(&p->liveq);
    if (o != NULL) {
        b = o->bytes, len = o->len, fd = o->fd;
    } else if (p->snap_pending) {
        b = s->snap_msg, len = s->snap_len;
    } else {
        return;
    }
    rc = zds_send(p->fd, b, len, fd);
    if (rc == -EAGAIN) {
        p->blocked = true;
        loop_io_set(s->loop, &p->io, EPOLLIN | EPOLLOUT);
        return;
    }
    if (rc < 0) {
        log_warn("ztunnel %" PRIu64 ": send: %s", p->id, mesh_strerror(rc));
        peer_close(p, rc, false);
        return;
    }
    if (o != NULL) {
        p->inflight = zds_outq_pop(p->snapq.len > 0 ? &p->snapq : &p->liveq);
        p->inflight_kind = o->kind;
    } else {
        p->snap_pending = false;
        p->inflight_kind = ZDS_REQ_SNAPSHOT_SENT;
    }
    p->awaiting = true;
    loop_timer_start(s->loop, &p->timer, s->ack_timeout_ms, on_peer_timeout, p);
}

static void
on_hello(struct zds_peer *p, const uint8_t *msg, size_t len)
{
    struct zds_server *s = p->srv;

    if (zds_hello_decode(msg, len) < 0) {
        log_warn("ztunnel connection %" PRIu64 ": first message is not ZdsHello V1", p->id);
        peer_close(p, -MESH_EPROTO, false);
        return;
    }
    loop_timer_stop(s->loop, &p->timer);
    p->state = PEER_SYNC;
    p->counted = true;
    s->n_clients++;
    for (struct zds_entry *e = s->cache.head; e != NULL; e = e->next)
        zds_outq_push(&p->snapq, zds_out_ref(e->msg));
    p->snap_pending = true;
    log_info("ztunnel %" PRIu64 " connected; snapshot of %zu workloads (%zu connected)", p->id,
             s->cache.n, s->n_clients);
    if (s->cbs.on_connected != NULL)
        s->cbs.on_connected(s->arg, p->id, s->n_clients);
    if (!peer_gone(p))
        pump_peer(p);
}

static void
on_ack(struct zds_peer *p, const uint8_t *msg, size_t len)
{
    struct zds_server *s = p->srv;
    char err[ZDS_ERR_MAX + 1], uid[ZDS_UID_MAX + 1] = "";
    enum zds_req_kind kind = p->inflight_kind;

    if (zds_ack_decode(msg, len, err, sizeof(err)) < 0) {
        log_warn("ztunnel %" PRIu64 ": answer is not a WorkloadResponse ack", p->id);
        peer_close(p, -MESH_EPROTO, false);
        return;
    }
    loop_timer_stop(s->loop, &p->timer);
    p->awaiting = false;
    if (p->inflight != NULL)
        memcpy(uid, p->inflight->uid, sizeof(uid));
    zds_out_unref(p->inflight);
    p->inflight = NULL;
    if (kind == ZDS_REQ_SNAPSHOT_SENT)
        p->state = PEER_LIVE; /* a NACK of it too ends the sync; the user hears of it */
    if (err[0] != '\0')
        log_warn("ztunnel %" PRIu64 " rejected %s %s: %s", p->id, zds_req_kind_name(kind), uid,
                 err);
    else
        log_debug("ztunnel %" PRIu64 " acked %s %s", p->id, zds_req_kind_name(kind), uid);
    if (s->cbs.on_ack != NULL)
        s->cbs.on_ack(s->arg, p->id, kind, uid, err[0] != '\0' ? err : NULL);
    if (!peer_gone(p))
        pump_peer(p);
}

static void
peer_read(struct zds_peer *p)
{
    uint8_t buf[ZDS_MSG_MAX];

    for (int i = 0; i < ZDS_READ_BATCH && !peer_gone(p); i++) {
        int fd;
        ssize_t n = zds_recv(p->fd, buf, sizeof(buf), &fd);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            if (n < 0)
                log_warn("ztunnel %" PRIu64 ": receive: %s", p->id, mesh_strerror((int)n));
            peer_close(p, n == 0 ? -ECONNRESET : (int)n, false);
            return;
        }
        if (fd >= 0) {
            close(fd);
            log_warn("ztunnel %" PRIu64 " sent a file descriptor", p->id);
            peer_close(p, -MESH_EPROTO, false);
            return;
        }
        if (p->state == PEER_HELLO) {
            on_hello(p, buf, (size_t)n);
        } else if (p->awaiting) {
            on_ack(p, buf, (size_t)n);
        } else {
            log_warn("ztunnel %" PRIu64 " sent a message nobody asked for", p->id);
            peer_close(p, -MESH_EPROTO, false);
        }
    }
}

static void
on_peer_io(void *arg, uint32_t events)
{
    struct zds_peer *p = arg;

    if ((events & EPOLLOUT) && p->blocked) {
        p->blocked = false;
        loop_io_set(p->srv->loop, &p->io, EPOLLIN);
        pump_peer(p);
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !peer_gone(p))
        peer_read(p);
}

static void
on_accept_resume(void *arg)
{
    struct zds_server *s = arg;
    loop_io_set(s->loop, &s->lio, EPOLLIN);
}

static void
warn_limited(struct zds_server *s, const char *what, int err)
{
    uint64_t now = loop_now_ms(s->loop);
    if (now - s->last_warn_ms >= 1000 || s->last_warn_ms == 0) {
        log_warn("%s: %s: %s", s->path, what, mesh_strerror(err));
        s->last_warn_ms = now;
    }
}

static void
peer_new(struct zds_server *s, int fd)
{
    struct zds_peer *p = xcalloc(1, sizeof(*p));
    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);

    p->srv = s;
    p->id = ++s->next_id;
    p->fd = fd;
    if (loop_io_start(s->loop, &p->io, fd, EPOLLIN, on_peer_io, p) < 0) {
        warn_limited(s, "epoll", -errno);
        close(fd);
        free(p);
        return;
    }
    p->next = s->peers;
    if (s->peers != NULL)
        s->peers->prev = p;
    s->peers = p;
    s->n_peers++;
    loop_timer_start(s->loop, &p->timer, s->ack_timeout_ms, on_peer_timeout, p);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        log_debug("ztunnel connection %" PRIu64 " from pid %d uid %u", p->id, (int)cred.pid,
                  (unsigned)cred.uid);
}

static void
on_accept(void *arg, uint32_t events)
{
    struct zds_server *s = arg;
    (void)events;

    for (int i = 0; i < ZDS_ACCEPT_BATCH; i++) {
        int fd = accept4(s->lsock.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (fd < 0) {
            /* Out of descriptors or memory: pause rather than spin on a readable listener. */
            warn_limited(s, "accept", -errno);
            loop_io_set(s->loop, &s->lio, 0);
            loop_timer_start(s->loop, &s->accept_pause, ZDS_ACCEPT_BACKOFF_MS, on_accept_resume, s);
            return;
        }
        if (s->n_peers >= s->max_clients) {
            warn_limited(s, "too many ztunnel connections, closing a new one", -MESH_ELIMIT);
            close(fd);
            continue;
        }
        peer_new(s, fd);
    }
}

/* ---- Changes ---- */

static void
pump_all(void *arg)
{
    struct zds_server *s = arg;

    for (struct zds_peer *p = s->peers, *next; p != NULL && !s->stopped; p = next) {
        next = p->next;
        pump_peer(p);
    }
}

/* Queues |o| for every connection that has had its snapshot built. */
static void
broadcast(struct zds_server *s, struct zds_out *o)
{
    for (struct zds_peer *p = s->peers; p != NULL; p = p->next) {
        if (p->state == PEER_HELLO || p->overflow)
            continue;
        if (o->kind == ZDS_REQ_KEEP) {
            if (p->snap_pending)
                zds_outq_push(&p->snapq, zds_out_ref(o));
            continue; /* the protocol allows keeps before SnapshotSent only */
        }
        if (p->liveq.len >= s->max_queue) {
            p->overflow = true; /* closed by the pump, outside the caller's stack */
            zds_outq_clear(&p->liveq);
            continue;
        }
        zds_outq_push(&p->liveq, zds_out_ref(o));
    }
    loop_defer(s->loop, &s->pump_defer, pump_all, s);
}

static int
cache_change(struct zds_server *s, const struct zds_req *r, int fd)
{
    struct zds_out *o;
    int rc = zds_out_new(r, fd, &o);

    if (rc < 0)
        return rc;
    if (r->kind == ZDS_REQ_DEL)
        zds_cache_del(&s->cache, r->w.uid);
    else
        zds_cache_put(&s->cache, o);
    broadcast(s, o);
    zds_out_unref(o);
    return 0;
}

int
zds_server_add(struct zds_server *s, const char *uid, const char *name, const char *ns,
               const char *sa, int netns_fd)
{
    struct zds_req r = {.kind = ZDS_REQ_ADD};

    if (s->stopped || netns_fd < 0 || zds_workload_set(&r.w, uid, name, ns, sa) < 0)
        return -EINVAL;
    int fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = cache_change(s, &r, fd);
    if (rc < 0)
        close(fd);
    return rc;
}

int
zds_server_keep(struct zds_server *s, const char *uid)
{
    struct zds_req r = {.kind = ZDS_REQ_KEEP};

    if (s->stopped || zds_workload_set(&r.w, uid, NULL, NULL, NULL) < 0)
        return -EINVAL;
    return cache_change(s, &r, -1);
}

int
zds_server_del(struct zds_server *s, const char *uid)
{
    struct zds_req r = {.kind = ZDS_REQ_DEL};

    if (s->stopped || zds_workload_set(&r.w, uid, NULL, NULL, NULL) < 0)
        return -EINVAL;
    if (zds_cache_get(&s->cache, uid) == NULL)
        return -ENOENT;
    return cache_change(s, &r, -1);
}

bool
zds_server_has_client(const struct zds_server *s)
{
    return s->n_clients > 0;
}

size_t
zds_server_n_clients(const struct zds_server *s)
{
    return s->n_clients;
}

size_t
zds_server_n_workloads(const struct zds_server *s)
{
    return s->cache.n;
}

/* ---- Lifecycle ---- */

static void
server_free(void *arg)
{
    struct zds_server *s = arg;
    free(s->path);
    free(s);
}

struct zds_server *
zds_server_start(struct loop *l, const char *path, const struct zds_server_opts *opts,
                 const struct zds_server_cbs *cbs, void *arg, char *err, size_t errlen)
{
    struct zds_server *s = xcalloc(1, sizeof(*s));
    struct zds_req snap = {.kind = ZDS_REQ_SNAPSHOT_SENT};

    s->loop = l;
    s->path = xstrdup(path);
    s->lsock.fd = -1;
    bool stale;
    if (cbs != NULL)
        s->cbs = *cbs;
    s->arg = arg;
    s->ack_timeout_ms = opts && opts->ack_timeout_ms ? opts->ack_timeout_ms : ZDS_ACK_TIMEOUT_MS;
    s->max_queue = opts && opts->max_queue ? opts->max_queue : ZDS_QUEUE_MAX;
    s->max_clients = opts && opts->max_clients ? opts->max_clients : ZDS_CLIENTS_MAX;
    CHECK(zds_req_encode(&snap, s->snap_msg, sizeof(s->snap_msg), &s->snap_len) == 0);
    zds_cache_init(&s->cache);
    if (sock_unix_listen(&s->lsock, path, 16, &stale, err, errlen) < 0) {
        zds_cache_cleanup(&s->cache);
        server_free(s);
        return NULL;
    }
    if (loop_io_start(l, &s->lio, s->lsock.fd, EPOLLIN, on_accept, s) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        sock_unix_close(&s->lsock, path);
        zds_cache_cleanup(&s->cache);
        server_free(s);
        return NULL;
    }
    if (stale)
        log_info("%s: replaced a stale socket", path);
    log_info("listening for ztunnels on %s", path);
    return s;
}

void
zds_server_stop(struct zds_server *s)
{
    if (s == NULL || s->stopped)
        return;
    s->stopped = true;
    while (s->peers != NULL)
        peer_close(s->peers, 0, true);
    loop_io_stop(s->loop, &s->lio);
    loop_timer_stop(s->loop, &s->accept_pause);
    sock_unix_close(&s->lsock, s->path);
    zds_cache_cleanup(&s->cache);
    loop_defer(s->loop, &s->free_defer, server_free, s);
}
