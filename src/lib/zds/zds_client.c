/*
 * zds_client.c - ztunnel's ZDS connection to the node agent; see zds_client.h.
 *
 * States: waiting (retry timer armed, no socket) -> connected (Hello sent,
 * reading requests) -> synced (SnapshotSent answered) -> waiting again when
 * the connection ends. Requests are answered one by one, in order; if the
 * socket has no room for an Ack we stop reading until it is sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LOG_SCOPE "zds"
#include "base/base.h"
#include "log/log.h"
#include "zds/zds_client.h"

#define ZDS_READ_BATCH 8

struct zds_client {
    struct loop *loop;
    struct sockaddr_un addr;
    struct zds_client_cbs cbs;
    void *arg;
    uint64_t backoff_min_ms, backoff_max_ms;
    uint64_t backoff_ms; /* the wait before the next attempt */
    int fd;
    struct loop_io io;
    struct loop_timer retry;
    struct loop_defer free_defer;
    bool connected, synced, stopped;
    uint64_t failures;            /* attempts in a row that failed, for quieter logs */
    uint8_t pending[ZDS_MSG_MAX]; /* an Ack the socket had no room for */
    size_t pending_len;
};

static void on_retry(void *arg);

static void
schedule_retry(struct zds_client *c)
{
    loop_timer_start(c->loop, &c->retry, c->backoff_ms, on_retry, c);
    c->backoff_ms = c->backoff_ms * 2 > c->backoff_max_ms ? c->backoff_max_ms : c->backoff_ms * 2;
}

/* Ends the connection and plans the next; reports it if it was up and |notify|. */
static void
conn_close(struct zds_client *c, int err, bool notify)
{
    if (c->fd < 0)
        return;
    loop_io_stop(c->loop, &c->io);
    close(c->fd);
    c->fd = -1;
    c->pending_len = 0;
    bool was = c->connected;
    c->connected = false;
    c->synced = false;
    if (!c->stopped)
        schedule_retry(c);
    if (was && notify) {
        log_info("%s: connection to the node agent ended: %s", c->addr.sun_path,
                 mesh_strerror(err));
        if (c->cbs.on_disconnected != NULL)
            c->cbs.on_disconnected(c->arg, err);
    }
}

static bool
gone(const struct zds_client *c)
{
    return c->stopped || c->fd < 0;
}

static void
answer(struct zds_client *c, const char *err)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;

    CHECK(zds_ack_encode(err, b, sizeof(b), &len) == 0);
    int rc = zds_send(c->fd, b, len, -1);
    if (rc == -EAGAIN) {
        memcpy(c->pending, b, len);
        c->pending_len = len;
        loop_io_set(c->loop, &c->io, EPOLLOUT);
        return;
    }
    if (rc < 0) {
        log_warn("%s: send: %s", c->addr.sun_path, mesh_strerror(rc));
        conn_close(c, rc, true);
    }
}

static void
dispatch(struct zds_client *c, const struct zds_req *r, int fd, char *err, size_t errlen)
{
    switch (r->kind) {
    case ZDS_REQ_ADD:
        c->cbs.on_add(c->arg, &r->w, fd, err, errlen);
        break;
    case ZDS_REQ_KEEP:
        if (c->synced)
            snprintf(err, errlen, "keep after the snapshot");
        else if (c->cbs.on_keep != NULL)
            c->cbs.on_keep(c->arg, r->w.uid, err, errlen);
        break;
    case ZDS_REQ_DEL:
        if (c->cbs.on_del != NULL)
            c->cbs.on_del(c->arg, r->w.uid, err, errlen);
        break;
    case ZDS_REQ_SNAPSHOT_SENT:
        if (c->synced) {
            snprintf(err, errlen, "snapshot already sent");
            break;
        }
        c->synced = true;
        c->backoff_ms = c->backoff_min_ms;
        if (c->cbs.on_snapshot != NULL)
            c->cbs.on_snapshot(c->arg, err, errlen);
        break;
    }
}

static void
handle(struct zds_client *c, const uint8_t *msg, size_t len, int fd)
{
    char err[ZDS_ERR_MAX + 1] = "";
    struct zds_req r;
    int rc = zds_req_decode(msg, len, fd >= 0, &r);

    if (rc == -ENOTSUP) {
        snprintf(err, sizeof(err), "unsupported request");
    } else if (rc < 0) {
        if (fd >= 0)
            close(fd);
        log_warn("%s: protocol error: %s", c->addr.sun_path,
                 fd >= 0 && rc == -MESH_EPROTO ? "descriptor on a request other than add"
                                               : mesh_strerror(rc));
        conn_close(c, rc, true);
        return;
    } else {
        dispatch(c, &r, fd, err, sizeof(err));
        if (gone(c))
            return;
    }
    if (err[0] != '\0')
        log_warn("%s: rejecting %s %s: %s", c->addr.sun_path,
                 rc == 0 ? zds_req_kind_name(r.kind) : "request", rc == 0 ? r.w.uid : "", err);
    answer(c, err);
}

static void
conn_read(struct zds_client *c)
{
    uint8_t buf[ZDS_MSG_MAX];

    for (int i = 0; i < ZDS_READ_BATCH && !gone(c) && c->pending_len == 0; i++) {
        int fd;
        ssize_t n = zds_recv(c->fd, buf, sizeof(buf), &fd);
        if (n == -EAGAIN)
            return;
        if (n <= 0) {
            if (n < 0)
                log_warn("%s: receive: %s", c->addr.sun_path, mesh_strerror((int)n));
            conn_close(c, n == 0 ? -ECONNRESET : (int)n, true);
            return;
        }
        handle(c, buf, (size_t)n, fd);
    }
}

static void
on_io(void *arg, uint32_t events)
{
    struct zds_client *c = arg;

    if (c->pending_len > 0) {
        if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) == 0)
            return;
        int rc = zds_send(c->fd, c->pending, c->pending_len, -1);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            conn_close(c, rc, true);
            return;
        }
        c->pending_len = 0;
        loop_io_set(c->loop, &c->io, EPOLLIN);
    }
    conn_read(c);
}

static void
on_retry(void *arg)
{
    struct zds_client *c = arg;
    uint8_t hello[16];
    size_t len;
    int rc;

    c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = -errno;
    } else if (connect(c->fd, (struct sockaddr *)&c->addr, sizeof(c->addr)) < 0) {
        rc = -errno; /* AF_UNIX connects at once or fails (EAGAIN: backlog full) */
    } else {
        CHECK(zds_hello_encode(hello, sizeof(hello), &len) == 0);
        rc = zds_send(c->fd, hello, len, -1);
        if (rc == 0 && loop_io_start(c->loop, &c->io, c->fd, EPOLLIN, on_io, c) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        if (c->failures++ == 0)
            log_info("%s: cannot reach the node agent: %s; retrying", c->addr.sun_path,
                     mesh_strerror(rc));
        else
            log_debug("%s: connect: %s; next try in %llu ms", c->addr.sun_path, mesh_strerror(rc),
                      (unsigned long long)c->backoff_ms);
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        schedule_retry(c);
        return;
    }
    c->failures = 0;
    c->connected = true;
    c->synced = false;
    log_info("%s: connected to the node agent", c->addr.sun_path);
    if (c->cbs.on_connected != NULL)
        c->cbs.on_connected(c->arg);
}

struct zds_client *
zds_client_start(struct loop *l, const char *path, const struct zds_client_opts *opts,
                 const struct zds_client_cbs *cbs, void *arg)
{
    if (cbs == NULL || cbs->on_add == NULL || path == NULL || path[0] == '\0')
        return NULL;
    struct zds_client *c = xcalloc(1, sizeof(*c));
    if (strlen(path) >= sizeof(c->addr.sun_path)) {
        free(c);
        return NULL;
    }
    c->loop = l;
    c->addr.sun_family = AF_UNIX;
    memcpy(c->addr.sun_path, path, strlen(path));
    c->cbs = *cbs;
    c->arg = arg;
    c->fd = -1;
    c->backoff_min_ms = opts && opts->backoff_min_ms ? opts->backoff_min_ms : ZDS_BACKOFF_MIN_MS;
    c->backoff_max_ms = opts && opts->backoff_max_ms ? opts->backoff_max_ms : ZDS_BACKOFF_MAX_MS;
    if (c->backoff_max_ms < c->backoff_min_ms)
        c->backoff_max_ms = c->backoff_min_ms;
    c->backoff_ms = c->backoff_min_ms;
    loop_timer_start(l, &c->retry, 0, on_retry, c);
    return c;
}

static void
client_free(void *arg)
{
    free(arg);
}

void
zds_client_stop(struct zds_client *c)
{
    if (c == NULL || c->stopped)
        return;
    c->stopped = true;
    conn_close(c, 0, false);
    loop_timer_stop(c->loop, &c->retry);
    loop_defer(c->loop, &c->free_defer, client_free, c);
}

bool
zds_client_is_connected(const struct zds_client *c)
{
    return c->connected;
}

bool
zds_client_is_synced(const struct zds_client *c)
{
    return c->synced;
}

uint64_t
zds_client_backoff_ms(const struct zds_client *c)
{
    return c->backoff_ms;
}
