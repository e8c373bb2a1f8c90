/*
 * workers.c - ztunnel's worker threads (see ztunnel.h, "Threads").
 *
 * Each worker is a whole data path on its own loop; workers never share a
 * connection, a socket or a buffer, so the only traffic between threads is
 * posts: worker 0 publishing snapshots, pods and drain orders, a worker asking
 * worker 0 for a certificate, and a worker handing an accepted socket to a
 * less loaded one.
 *
 * Balancing: every worker listens with SO_REUSEPORT, so the kernel spreads new
 * connections by a hash of their addresses. A hash is fair on average but not
 * for a few long-lived connections (HBONE between two ztunnels: Istio's
 * istio/istio#52906, all on one worker). So the accepting worker compares its
 * load (open connections and HBONE sessions) with the least loaded worker's and
 * hands the socket over when it is ahead by more than one (plus an eighth of the
 * smaller load, so that many short connections do not bounce between threads).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_SCOPE "workers"
#include "base/base.h"
#include "buf/buf.h"
#include "hbone/hbone.h"
#include "log/log.h"
#include "policy/policy.h"
#include "ztunnel.h"

/* ---- snapshots ----------------------------------------------------------- */

struct snap {
    struct zt *w;
    struct model *m;
    struct policy_set *ps;
    struct zt_creds *cr;
};

void
zt_set_model(struct zt *zt, struct model *m)
{
    struct model *old = zt->model;
    zt->model = m;
    zt->model_version++;
    zt_authz_model_changed(zt, old); /* a workload's policies may have changed */
    model_unref(old);
}

static void
on_snap(void *arg)
{
    struct snap *s = arg;
    struct zt *w = s->w;

    if (w->stopped) {
        model_unref(s->m);
        policy_set_unref(s->ps);
        zt_creds_unref(s->cr);
        free(s);
        return;
    }
    if (s->cr != NULL) {
        zt_creds_unref(w->creds);
        w->creds = s->cr;
    }
    if (s->m != NULL)
        zt_set_model(w, s->m);
    if (s->ps != NULL)
        zt_set_policies(w, s->ps);
    zt_wake(w); /* connections held for a workload or a certificate */
    free(s);
}

void
workers_publish(struct zt *zt0, struct model *m, struct policy_set *ps, struct zt_creds *cr)
{
    for (unsigned i = 1; i < zt0->n_workers; i++) {
        struct snap *s = xcalloc(1, sizeof(*s));
        s->w = zt0->workers[i];
        if ((s->m = m) != NULL)
            model_ref(m);
        if ((s->ps = ps) != NULL)
            policy_set_ref(ps);
        if ((s->cr = cr) != NULL)
            zt_creds_ref(cr);
        loop_post(s->w->loop, on_snap, s);
    }
}

/* ---- pods (in-pod mode) -------------------------------------------------- */

struct pod_msg {
    struct zt *w;
    char *uid, *name, *ns, *sa;
    int netns_fd;
};

static void
pod_msg_free(struct pod_msg *pm)
{
    if (pm->netns_fd >= 0)
        close(pm->netns_fd);
    free(pm->uid);
    free(pm->name);
    free(pm->ns);
    free(pm->sa);
    free(pm);
}

static void
on_pod_added(void *arg)
{
    struct pod_msg *pm = arg;
    struct zt *w = pm->w;
    char err[256];

    if (w->stopped || w->draining) {
        pod_msg_free(pm);
        return;
    }
    struct zpod *old = zt_pod_by_uid(w, pm->uid);
    if (old != NULL)
        zpod_delete(old);
    struct zpod *p = zpod_new(w, pm->uid, pm->name, pm->ns, pm->sa, pm->netns_fd);
    pm->netns_fd = -1; /* the pod's now */
    pod_msg_free(pm);
    if (zpod_listen(p, err, sizeof(err)) < 0) {
        log_error("worker %u: pod %s/%s: %s", w->id, p->ns, p->name, err);
        zpod_unref(p);
        return;
    }
    zpod_link(p);
}

void
workers_pod_added(struct zt *zt0, const struct zpod *p)
{
    for (unsigned i = 1; i < zt0->n_workers; i++) {
        struct pod_msg *pm = xcalloc(1, sizeof(*pm));
        pm->w = zt0->workers[i];
        pm->uid = xstrdup(p->uid);
        pm->name = xstrdup(p->name);
        pm->ns = xstrdup(p->ns);
        pm->sa = xstrdup(p->sa);
        pm->netns_fd = fcntl(p->netns_fd, F_DUPFD_CLOEXEC, 0);
        if (pm->netns_fd < 0) {
            log_error("pod %s/%s: cannot share its namespace with worker %u: %s", p->ns, p->name,
                      i, strerror(errno));
            pod_msg_free(pm);
            continue;
        }
        loop_post(pm->w->loop, on_pod_added, pm);
    }
}

static void
on_pod_deleted(void *arg)
{
    struct pod_msg *pm = arg;
    struct zpod *p = pm->w->stopped ? NULL : zt_pod_by_uid(pm->w, pm->uid);
    if (p != NULL)
        zpod_delete(p);
    pod_msg_free(pm);
}

void
workers_pod_deleted(struct zt *zt0, const char *uid)
{
    for (unsigned i = 1; i < zt0->n_workers; i++) {
        struct pod_msg *pm = xcalloc(1, sizeof(*pm));
        pm->w = zt0->workers[i];
        pm->uid = xstrdup(uid);
        pm->netns_fd = -1;
        loop_post(pm->w->loop, on_pod_deleted, pm);
    }
}

/* ---- balancing ----------------------------------------------------------- */

void
zt_load_update(struct zt *zt)
{
    size_t n = zt->n_conns + (zt->inbound != NULL ? inbound_n_sessions(zt->inbound) : 0);
    atomic_store_explicit(&zt->load, (unsigned)n, memory_order_relaxed);
}

struct handoff {
    struct zt *to;
    enum zt_listener which;
    char *uid; /* the scope: a pod, or NULL for the node's */
    int fd;
    struct ipaddr peer;
    uint16_t peer_port;
};

static void
on_handoff(void *arg)
{
    struct handoff *h = arg;
    struct zt *w = h->to;
    struct zpod *p = NULL;

    if (!w->stopped && !w->draining)
        p = h->uid != NULL ? zt_pod_by_uid(w, h->uid) : w->node_scope;
    if (p == NULL) {
        close(h->fd); /* the scope went away meanwhile: as if its listener had closed */
    } else if (h->which == ZT_L_OUTBOUND) {
        outbound_accept(p, h->fd, &h->peer, h->peer_port);
    } else if (h->which == ZT_L_PLAIN) {
        passthrough_accept(p, h->fd, &h->peer, h->peer_port);
    } else {
        inbound_accept(p, h->fd, &h->peer, h->peer_port);
    }
    free(h->uid);
    free(h);
}

bool
workers_balance(struct zpod *pod, enum zt_listener which, int fd, const struct ipaddr *peer,
                uint16_t peer_port)
{
    struct zt *zt = pod->zt;
    if (zt->n_workers < 2 || zt->draining)
        return false;
    unsigned mine = atomic_load_explicit(&zt->load, memory_order_relaxed);
    struct zt *best = NULL;
    unsigned best_load = mine;
    for (unsigned i = 0; i < zt->n_workers; i++) {
        struct zt *w = zt->workers[i];
        unsigned l = atomic_load_explicit(&w->load, memory_order_relaxed);
        if (w != zt && l < best_load) {
            best = w;
            best_load = l;
        }
    }
    if (best == NULL || mine <= best_load + best_load / 8)
        return false;
    /* Counted there now, so that the next accepts see it before its thread runs. */
    atomic_fetch_add_explicit(&best->load, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&zt->handed_off, 1, memory_order_relaxed);
    struct handoff *h = xcalloc(1, sizeof(*h));
    *h = (struct handoff){.to = best, .which = which, .fd = fd, .peer = *peer,
                          .peer_port = peer_port, .uid = pod->uid ? xstrdup(pod->uid) : NULL};
    loop_post(best->loop, on_handoff, h);
    return true;
}

/* ---- calls on every worker ----------------------------------------------- */

struct each_call {
    void (*fn)(struct zt *w, void *arg);
    struct zt *w;
    void *arg;
};

static void
each_tramp(void *arg)
{
    struct each_call *c = arg;
    c->fn(c->w, c->arg);
}

void
workers_each(struct zt *zt0, void (*fn)(struct zt *w, void *arg), void *arg)
{
    fn(zt0, arg);
    for (unsigned i = 1; i < zt0->n_workers; i++) {
        struct each_call c = {.fn = fn, .w = zt0->workers[i], .arg = arg};
        loop_call(c.w->loop, each_tramp, &c);
    }
}

static void
count_open(struct zt *w, void *arg)
{
    *(size_t *)arg += w->n_conns + inbound_n_sessions(w->inbound) + hbone_pool_n_conns(w->pool);
}

size_t
workers_n_open(struct zt *zt0)
{
    size_t n = 0;
    workers_each(zt0, count_open, &n);
    return n;
}

/* ---- drain --------------------------------------------------------------- */

void
zt_drain_worker(struct zt *w)
{
    w->ready = false;
    w->draining = true;
    zt_close_listeners(w);
    zt_expire_waiters(w); /* connections held for a workload or certificate give up */
    inbound_drain(w->inbound);
    hbone_pool_drain(w->pool);
}

static void
drain_post(void *arg)
{
    struct zt *w = arg;
    if (!w->stopped)
        zt_drain_worker(w);
}

static void
abort_post(void *arg)
{
    struct zt *w = arg;
    if (w->stopped)
        return;
    zconn_abort_all(w);
    inbound_abort(w->inbound);
    hbone_pool_abort(w->pool);
}

void
workers_drain(struct zt *zt0)
{
    for (unsigned i = 1; i < zt0->n_workers; i++)
        loop_post(zt0->workers[i]->loop, drain_post, zt0->workers[i]);
}

void
workers_abort(struct zt *zt0)
{
    abort_post(zt0);
    for (unsigned i = 1; i < zt0->n_workers; i++)
        loop_post(zt0->workers[i]->loop, abort_post, zt0->workers[i]);
}

/* ---- start and stop ------------------------------------------------------ */

/* Pins the calling thread to the |i|-th CPU the process may use. */
static void
pin(unsigned i)
{
    cpu_set_t all, one;
    unsigned seen = 0;

    if (sched_getaffinity(0, sizeof(all), &all) < 0 || CPU_COUNT(&all) == 0)
        return;
    i %= (unsigned)CPU_COUNT(&all);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &all) || seen++ != i)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
        if (rc != 0)
            log_warn("worker %u: cannot pin to CPU %d: %s", i, cpu, strerror(rc));
        return;
    }
}

static void *
worker_main(void *arg)
{
    struct zt *w = arg;
    if (w->opts.worker_affinity)
        pin(w->id);
    int rc = loop_run(w->loop);
    if (rc < 0)
        log_error("worker %u: loop failed: %s", w->id, mesh_strerror(rc));
    /* Teardown on the worker's own thread, as worker 0 does in main(). */
    w->stopped = true;
    zt_close_listeners(w);
    zt_expire_waiters(w);
    inbound_free(w->inbound);
    loop_run_deferred(w->loop);
    hbone_pool_free(w->pool);
    zpod_unref(w->node_scope);
    while (w->pods != NULL)
        zpod_delete(w->pods);
    loop_run_deferred(w->loop);
    policy_set_unref(w->policies);
    model_unref(w->model);
    zt_creds_unref(w->creds);
    w->policies = NULL;
    w->model = NULL;
    w->creds = NULL;
    buf_cache_drop(); /* this thread's cache of buffers */
    return NULL;
}

static struct zt *
worker_new(struct zt *zt0, unsigned id, char *err, size_t errlen)
{
    struct zt *w = xcalloc(1, sizeof(*w));
    w->opts = zt0->opts;
    w->id = id;
    w->workers = zt0->workers;
    w->n_workers = zt0->n_workers;
    w->xds_synced = true; /* readiness is worker 0's */
    if ((w->loop = loop_new()) == NULL) {
        snprintf(err, errlen, "worker %u: epoll: %s", id, strerror(errno));
        free(w);
        return NULL;
    }
    w->model = zt0->model;
    model_ref(w->model);
    if ((w->policies = zt0->policies) != NULL)
        policy_set_ref(w->policies);
    const struct sock_opts dial = {.mark = SOCK_MARK_ZTUNNEL};
    w->pool = hbone_pool_new(w->loop, w->opts.pool_idle_ms, &dial);
    inbound_start(w);
    if (zt0->node_scope != NULL) {
        w->node_scope = zpod_new(w, NULL, NULL, NULL, NULL, -1);
        char why[256];
        if (zpod_listen(w->node_scope, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "worker %u: %s", id, why);
            return w; /* freed by workers_stop() with the others */
        }
    }
    return w;
}

int
workers_start(struct zt *zt0, char *err, size_t errlen)
{
    unsigned n = zt0->opts.workers;

    zt0->workers = xcalloc(n, sizeof(*zt0->workers));
    zt0->workers[0] = zt0;
    zt0->n_workers = 1;
    if (zt0->opts.worker_affinity)
        pin(0);
    err[0] = '\0';
    for (unsigned i = 1; i < n; i++) {
        /* Counted before it exists, so that it shares the array it is put into. */
        zt0->n_workers = i + 1;
        struct zt *w = worker_new(zt0, i, err, errlen);
        if (w == NULL) {
            zt0->n_workers = i;
            return -1;
        }
        zt0->workers[i] = w;
        if (err[0] != '\0')
            return -1;
    }
    for (unsigned i = 1; i < n; i++)
        zt0->workers[i]->n_workers = n;
    /* Pods enrolled before the workers existed (none today: ZDS starts after). */
    for (struct zpod *p = zt0->pods; p != NULL; p = p->next)
        workers_pod_added(zt0, p);
    certs_publish(zt0->certs); /* what worker 0 holds already: queued for their first turn */
    for (unsigned i = 1; i < n; i++) {
        struct zt *w = zt0->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "worker %u: cannot start its thread: %s", i, strerror(rc));
            return -1;
        }
        w->started = true;
    }
    log_info("%u workers%s", n, zt0->opts.worker_affinity ? ", each pinned to a CPU" : "");
    return 0;
}

static void
stop_post(void *arg)
{
    struct zt *w = arg;
    loop_stop(w->loop);
}

void
workers_stop(struct zt *zt0)
{
    for (unsigned i = 1; i < zt0->n_workers; i++) {
        struct zt *w = zt0->workers[i];
        if (w == NULL)
            continue;
        if (w->started) {
            loop_post(w->loop, stop_post, w);
            pthread_join(w->thread, NULL);
        } else {
            w->stopped = true;
            zpod_unref(w->node_scope);
            inbound_free(w->inbound);
            loop_run_deferred(w->loop);
            hbone_pool_free(w->pool);
            policy_set_unref(w->policies);
            model_unref(w->model);
            zt_creds_unref(w->creds);
        }
        loop_free(w->loop); /* posts still queued see |stopped| and only drop references */
        free(w);
        zt0->workers[i] = NULL;
    }
    zt0->n_workers = 1;
}
