/*
 * plugin.c - the CNI plugin's socket; see plugin.h.
 *
 * A connection: accepted -> request read (PLUGIN_READ_MS) -> answered at once
 * (DEL, CHECK, an ADD whose pod is decided) or parked until a poke decides it
 * or its wait ends. A plugin that gives up first (hang-up) only closes its
 * own connection. Lines a caller can trigger at will are rate limited.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "log/log.h"
#include "mesh_cni.h"
#include "net/sock_unix.h"
#include "plugin.h"

struct pconn {
    struct pconn *next, *prev;
    struct plugin_srv *srv;
    int fd;
    struct loop_io io;
    struct loop_timer timer;
    bool have_req; /* read; waiting for the pod's fate */
    bool expired;  /* the wait is over: answer with what is known */
    struct cni_req req;
    uint64_t t0;
};

struct plugin_srv {
    struct loop *loop;
    struct cni *cni;
    char *path;
    struct sock_unix lsock;
    struct loop_io lio;
    struct loop_timer accept_pause;
    unsigned wait_ms;
    struct pconn *conns;
    size_t n_conns;
    struct loop_defer poke_defer, free_defer;
    bool poke_armed, stopped;
    struct log_ratelimit rl;
};

static void
pconn_close(struct pconn *pc)
{
    struct plugin_srv *s = pc->srv;

    loop_io_stop(s->loop, &pc->io);
    loop_timer_stop(s->loop, &pc->timer);
    close(pc->fd);
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        s->conns = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    s->n_conns--;
    free(pc);
}

static void
answer(struct pconn *pc, enum cni_verdict v, const char *msg)
{
    struct cni_reply r = {.verdict = v};
    char buf[CNI_MSG_MAX];
    const struct cni_req *q = &pc->req;

    snprintf(r.message, sizeof(r.message), "%s", msg);
    int n = cni_reply_encode(&r, buf, sizeof(buf));
    if (n < 0 || send(pc->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        log_warn_rl(&pc->srv->rl, "plugin %s %s/%s: the answer could not be sent: %s",
                    cni_cmd_name(q->cmd), q->ns, q->name, n < 0 ? "too long" : strerror(errno));
    if (pc->have_req)
        log_info("plugin %s %s/%s (%s): %s after %llu ms%s%s", cni_cmd_name(q->cmd), q->ns, q->name,
                 q->netns[0] ? q->netns : "-", cni_verdict_name(v),
                 (unsigned long long)(loop_now_ms(pc->srv->loop) - pc->t0), msg[0] ? ": " : "",
                 msg);
    pconn_close(pc);
}

/* An ADD: answer if the pod's fate is known (or the wait is over); else keep waiting. */
static void
decide_add(struct pconn *pc)
{
    char msg[400], why[480];
    enum cni_pod_state st = cni_pod_state(pc->srv->cni, &pc->req, msg, sizeof(msg));

    switch (st) {
    case CNI_POD_IN:
        answer(pc, CNI_V_ENROLLED, "");
        return;
    case CNI_POD_OUT:
        answer(pc, CNI_V_NOT_ENROLLED, msg);
        return;
    case CNI_POD_FAILED:
        answer(pc, CNI_V_RETRY, msg);
        return;
    case CNI_POD_UNKNOWN:
        if (pc->expired)
            answer(pc, CNI_V_PENDING,
                   "the pod is not known yet; it joins the mesh when it "
                   "appears, if enrolled");
        return;
    case CNI_POD_WAITING:
        if (pc->expired) {
            snprintf(why, sizeof(why), "%s within %u ms", msg, pc->srv->wait_ms);
            answer(pc, CNI_V_RETRY, why);
        }
        return;
    }
}

static void
decide_check(struct pconn *pc)
{
    char msg[400];
    enum cni_pod_state st = cni_pod_state(pc->srv->cni, &pc->req, msg, sizeof(msg));

    if (st == CNI_POD_IN || st == CNI_POD_OUT)
        answer(pc, CNI_V_DONE, st == CNI_POD_IN ? "in the mesh" : msg);
    else if (st == CNI_POD_UNKNOWN)
        answer(pc, CNI_V_DONE, "the pod is not known yet");
    else
        answer(pc, CNI_V_FAILED, msg);
}

/* Returns true when the connection stays open: an ADD waiting for the pod's fate. */
static bool
on_request(struct pconn *pc)
{
    struct plugin_srv *s = pc->srv;
    struct cni_req *q = &pc->req;

    pc->have_req = true;
    pc->t0 = loop_now_ms(s->loop);
    switch (q->cmd) {
    case CNI_CMD_ADD:
        if (cni_sandbox_add(s->cni, q) < 0) {
            answer(pc, CNI_V_RETRY, "too many sandboxes remembered");
            return false;
        }
        return true;
    case CNI_CMD_DEL:
        answer(pc, CNI_V_DONE, cni_sandbox_del(s->cni, q) ? "forgotten" : "not known");
        return false;
    case CNI_CMD_CHECK:
        decide_check(pc);
        return false;
    }
    return false;
}

static void
on_timer(void *arg)
{
    struct pconn *pc = arg;

    if (!pc->have_req) {
        log_warn_rl(&pc->srv->rl, "plugin connection: no request within %d ms, closed",
                    PLUGIN_READ_MS);
        pconn_close(pc);
        return;
    }
    pc->expired = true;
    decide_add(pc);
}

static void
on_conn_io(void *arg, uint32_t events)
{
    struct pconn *pc = arg;
    struct plugin_srv *s = pc->srv;
    char buf[CNI_MSG_MAX + 1], err[256];
    ssize_t n;

    if (pc->have_req) {
        /* Only a hang-up can come now: the plugin gave up (its own timeout). */
        if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
            log_info("plugin %s %s/%s: the plugin left before the answer",
                     cni_cmd_name(pc->req.cmd), pc->req.ns, pc->req.name);
            pconn_close(pc);
        } else
            loop_io_set(s->loop, &pc->io, EPOLLRDHUP);
        return;
    }
    n = recv(pc->fd, buf, sizeof(buf), MSG_TRUNC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || (size_t)n > CNI_MSG_MAX) {
        if (n > 0)
            log_warn_rl(&s->rl, "plugin connection: a request of %zd bytes (cap %d), closed", n,
                        CNI_MSG_MAX);
        pconn_close(pc);
        return;
    }
    if (cni_req_decode(&pc->req, buf, (size_t)n, err, sizeof(err)) < 0) {
        log_warn_rl(&s->rl, "plugin connection: bad request: %s", err);
        answer(pc, CNI_V_FAILED, err);
        return;
    }
    loop_io_set(s->loop, &pc->io, EPOLLRDHUP);
    if (on_request(pc)) {
        loop_timer_stop(s->loop, &pc->timer);
        loop_timer_start(s->loop, &pc->timer, s->wait_ms, on_timer, pc);
        decide_add(pc);
    }
}

static void
on_accept_resume(void *arg)
{
    struct plugin_srv *s = arg;
    loop_io_set(s->loop, &s->lio, EPOLLIN);
}

static void
on_accept(void *arg, uint32_t events)
{
    struct plugin_srv *s = arg;
    (void)events;

    for (int i = 0; i < 16; i++) {
        int fd = accept4(s->lsock.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (fd < 0 && errno == EAGAIN)
            return;
        if (fd < 0) {
            /* Out of descriptors or memory: pause rather than spin on a readable listener. */
            log_warn_rl(&s->rl, "%s: accept: %s", s->path, strerror(errno));
            loop_io_set(s->loop, &s->lio, 0);
            loop_timer_start(s->loop, &s->accept_pause, 100, on_accept_resume, s);
            return;
        }
        if (s->n_conns >= PLUGIN_CONNS_MAX) {
            log_warn_rl(&s->rl, "%s: %d plugin connections open, closing a new one", s->path,
                        PLUGIN_CONNS_MAX);
            close(fd);
            continue;
        }
        struct pconn *pc = xcalloc(1, sizeof(*pc));
        pc->srv = s;
        pc->fd = fd;
        if (loop_io_start(s->loop, &pc->io, fd, EPOLLIN, on_conn_io, pc) < 0) {
            log_warn_rl(&s->rl, "%s: epoll: %s", s->path, strerror(errno));
            close(fd);
            free(pc);
            continue;
        }
        pc->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = pc;
        s->conns = pc;
        s->n_conns++;
        loop_timer_start(s->loop, &pc->timer, PLUGIN_READ_MS, on_timer, pc);
    }
}

static void
on_poke(void *arg)
{
    struct plugin_srv *s = arg;
    struct pconn *pc, *next;

    s->poke_armed = false;
    if (s->stopped)
        return;
    for (pc = s->conns; pc != NULL; pc = next) {
        next = pc->next; /* decide_add may free pc, never another */
        if (pc->have_req && pc->req.cmd == CNI_CMD_ADD)
            decide_add(pc);
    }
}

void
plugin_srv_poke(struct plugin_srv *s)
{
    if (s == NULL || s->stopped || s->poke_armed)
        return;
    s->poke_armed = true;
    loop_defer(s->loop, &s->poke_defer, on_poke, s);
}

struct plugin_srv *
plugin_srv_start(struct loop *l, struct cni *c, const char *path, unsigned wait_ms, char *err,
                 size_t errlen)
{
    struct plugin_srv *s = xcalloc(1, sizeof(*s));
    bool stale;

    s->loop = l;
    s->cni = c;
    s->path = xstrdup(path);
    s->wait_ms = wait_ms ? wait_ms : PLUGIN_WAIT_MS;
    s->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000, 5);
    if (sock_unix_listen(&s->lsock, path, 64, &stale, err, errlen) < 0) {
        free(s->path);
        free(s);
        return NULL;
    }
    if (loop_io_start(l, &s->lio, s->lsock.fd, EPOLLIN, on_accept, s) < 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        sock_unix_close(&s->lsock, path);
        free(s->path);
        free(s);
        return NULL;
    }
    if (stale)
        log_info("%s: replaced a stale socket", path);
    log_info("listening for the CNI plugin on %s (ADD waits up to %u ms)", path, s->wait_ms);
    return s;
}

void
plugin_srv_stop(struct plugin_srv *s)
{
    if (s == NULL)
        return;
    s->stopped = true;
    while (s->conns != NULL)
        pconn_close(s->conns);
    loop_io_stop(s->loop, &s->lio);
    loop_timer_stop(s->loop, &s->accept_pause);
    sock_unix_close(&s->lsock, s->path);
    free(s->path);
    s->path = NULL;
    /* A queued poke (it runs first, and sees |stopped|) must not find |s| freed. */
    loop_defer(s->loop, &s->free_defer, free, s);
}
