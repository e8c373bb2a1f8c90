/*
 * pods.c - listener scopes: ztunnel's own namespace (node mode) or one per
 * enrolled pod (in-pod mode, reference 2.3).
 *
 * In-pod mode binds 15001, 15006 and 15008 inside each pod's network
 * namespace (the node agent handed us its fd), with mark 0x539 so the pod's
 * redirection rules skip our own sockets, and SO_REUSEPORT so a new ztunnel
 * can bind next to an old one during an upgrade. Upstream sockets are made
 * in the same namespace, so traffic leaves the pod with the pod's own IP.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "pods"
#include "base/base.h"
#include "log/log.h"
#include "ztunnel.h"

struct zpod *
zpod_new(struct zt *zt, const char *uid, const char *name, const char *ns, const char *sa,
         int netns_fd)
{
    struct zpod *p = xcalloc(1, sizeof(*p));
    struct stat st;

    p->zt = zt;
    p->refs = 1;
    p->netns_fd = netns_fd;
    p->uid = uid ? xstrdup(uid) : NULL;
    p->name = name ? xstrdup(name) : NULL;
    p->ns = ns ? xstrdup(ns) : NULL;
    p->sa = sa ? xstrdup(sa) : NULL;
    p->dial.mark = SOCK_MARK_ZTUNNEL;
    if (netns_fd >= 0) {
        p->dial.in_netns = true;
        p->dial.netns_fd = netns_fd;
        if (fstat(netns_fd, &st) == 0)
            p->netns_ino = (uint64_t)st.st_ino;
    }
    return p;
}

struct zpod *
zpod_ref(struct zpod *p)
{
    p->refs++;
    return p;
}

void
zpod_unref(struct zpod *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    zpod_close_listeners(p);
    if (p->netns_fd >= 0)
        close(p->netns_fd);
    free(p->uid);
    free(p->name);
    free(p->ns);
    free(p->sa);
    free(p);
}

/* Accepted sockets go to a less loaded worker when this one is ahead (workers.c). */
static void
accept_outbound(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    if (!workers_balance(pod, ZT_L_OUTBOUND, fd, peer, peer_port))
        outbound_accept(pod, fd, peer, peer_port);
}

static void
accept_plain(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    if (!workers_balance(pod, ZT_L_PLAIN, fd, peer, peer_port))
        passthrough_accept(pod, fd, peer, peer_port);
}

static void
accept_hbone(void *pod, int fd, const struct ipaddr *peer, uint16_t peer_port)
{
    if (!workers_balance(pod, ZT_L_HBONE, fd, peer, peer_port))
        inbound_accept(pod, fd, peer, peer_port);
}

int
zpod_listen(struct zpod *p, char *err, size_t errlen)
{
    struct zt *zt = p->zt;
    struct sock_opts o = zt_listen_opts;
    /*
     * During an upgrade two ztunnels share these ports (SO_REUSEPORT). When the
     * old one closes its listeners, connections still in their accept queues
     * would be reset; with tcp_migrate_req the kernel hands them to the new one.
     */
    int rc = netns_sysctl(p->netns_fd, "/proc/sys/net/ipv4/tcp_migrate_req", "1");
    if (rc < 0)
        log_debug("tcp_migrate_req: %s (connections queued at an upgrade may be reset)",
                  mesh_strerror(rc));
    if (p->netns_fd >= 0) {
        o.in_netns = true;
        o.netns_fd = p->netns_fd;
    }
    p->outbound = listener_open(zt->loop, "outbound", NULL, ZT_PORT_OUTBOUND, &o, accept_outbound,
                                p, err, errlen);
    if (p->outbound != NULL)
        p->plain = listener_open(zt->loop, "inbound-plaintext", NULL, ZT_PORT_INBOUND_PLAIN, &o,
                                 accept_plain, p, err, errlen);
    if (p->plain != NULL)
        p->hbone = listener_open(zt->loop, "hbone", NULL, ZT_PORT_HBONE, &o, accept_hbone, p,
                                 err, errlen);
    if (p->hbone == NULL) {
        zpod_close_listeners(p);
        return -1;
    }
    return 0;
}

void
zpod_close_listeners(struct zpod *p)
{
    listener_close(p->outbound);
    listener_close(p->plain);
    listener_close(p->hbone);
    p->outbound = p->plain = p->hbone = NULL;
}

void
zt_close_listeners(struct zt *zt)
{
    if (zt->node_scope != NULL)
        zpod_close_listeners(zt->node_scope);
    for (struct zpod *p = zt->pods; p != NULL; p = p->next)
        zpod_close_listeners(p);
}

const struct workload *
zpod_workload(const struct zpod *p, const struct ipaddr *ip)
{
    const struct model *m = p->zt->model;
    char uid[1024];

    if (p->netns_fd < 0)
        return ip != NULL ? zt_local_workload(p->zt, ip) : NULL;
    /* Istio matches ZDS to xDS by name, namespace and service account; the uid is the fast path. */
    snprintf(uid, sizeof(uid), "%s//Pod/%s/%s", p->zt->opts.cluster, p->ns, p->name);
    const struct workload *w = model_workload_by_uid(m, uid);
    if (w != NULL && strcmp(w->service_account, p->sa[0] ? p->sa : "default") == 0)
        return w;
    for (size_t i = 0; i < m->n_workloads; i++) {
        w = m->workloads[i];
        if (strcmp(w->name, p->name) == 0 && strcmp(w->ns, p->ns) == 0 &&
            strcmp(w->service_account, p->sa[0] ? p->sa : "default") == 0)
            return w;
    }
    return NULL;
}

struct zpod *
zt_pod_by_uid(struct zt *zt, const char *uid)
{
    for (struct zpod *p = zt->pods; p != NULL; p = p->next)
        if (strcmp(p->uid, uid) == 0)
            return p;
    return NULL;
}

void
zpod_link(struct zpod *p)
{
    struct zt *zt = p->zt;
    p->prev = NULL;
    p->next = zt->pods;
    if (zt->pods)
        zt->pods->prev = p;
    zt->pods = p;
    zt->n_pods++;
}

void
zpod_delete(struct zpod *p)
{
    struct zt *zt = p->zt;
    if (p->gone)
        return;
    p->gone = true;
    if (zt->id == 0 && p->uid != NULL)
        workers_pod_deleted(zt, p->uid); /* the other workers' listeners in its namespace */
    zpod_close_listeners(p);
    if (p->prev)
        p->prev->next = p->next;
    else
        zt->pods = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    zt->n_pods--;
    /*
     * Istio tears a deleted pod's connections down at once. We let them end on
     * their own instead: for a deleted pod the app's sockets are gone and they
     * end by themselves, and for an un-enrolled but running pod the
     * connections opened through us keep working until they close.
     */
    zpod_unref(p);
}
