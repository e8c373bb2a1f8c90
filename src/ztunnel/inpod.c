/*
 * inpod.c - in-pod mode: the node agent (mesh-cni) tells us over ZDS which
 * pods are enrolled and hands us each one's network namespace (reference
 * 2.3); we bind 15001, 15006 and 15008 inside it (pods.c).
 *
 * Every ZDS connection starts with a snapshot: pods added or kept before its
 * SnapshotSent are the whole set, anything else we held is dropped. A pod
 * added again with another namespace (re-created sandbox) replaces the old
 * one, whose connections drain; a deleted pod's connections are reset (the
 * pod is gone, nothing could answer them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "inpod"
#include "base/base.h"
#include "log/log.h"
#include "zds/zds_client.h"
#include "ztunnel.h"

struct zt_inpod {
    struct zt *zt;
    struct zds_client *client;
    uint64_t snapshot_gen; /* bumped per connection: pods seen in its snapshot carry it */
    bool synced_once;
};

static void
on_add(void *arg, const struct zds_workload *w, int netns_fd, char *err, size_t errlen)
{
    struct zt_inpod *ip = arg;
    struct zt *zt = ip->zt;
    struct stat st;

    if (fstat(netns_fd, &st) < 0) {
        snprintf(err, errlen, "netns fd: cannot stat");
        close(netns_fd);
        return;
    }
    struct zpod *old = zt_pod_by_uid(zt, w->uid);
    if (old != NULL && old->netns_ino == (uint64_t)st.st_ino) {
        old->seen_gen = ip->snapshot_gen;
        close(netns_fd);
        return;
    }
    if (old != NULL) {
        log_info("pod %s/%s has a new network namespace; draining the old one", w->ns, w->name);
        zpod_delete(old); /* its open connections drain */
    }
    struct zpod *p = zpod_new(zt, w->uid, w->name, w->ns, w->sa, netns_fd);
    if (zpod_listen(p, err, errlen) < 0) {
        log_error("pod %s/%s: %s", w->ns, w->name, err);
        zpod_unref(p);
        return;
    }
    p->seen_gen = ip->snapshot_gen;
    zpod_link(p);
    workers_pod_added(zt, p);
    log_info("pod %s/%s (%s) enrolled: listening in its network namespace", w->ns, w->name,
             w->uid);
}

static void
on_keep(void *arg, const char *uid, char *err, size_t errlen)
{
    struct zt_inpod *ip = arg;
    (void)err;
    (void)errlen;
    struct zpod *p = zt_pod_by_uid(ip->zt, uid);
    if (p != NULL)
        p->seen_gen = ip->snapshot_gen;
}

static void
on_del(void *arg, const char *uid, char *err, size_t errlen)
{
    struct zt_inpod *ip = arg;
    (void)err;
    (void)errlen;
    struct zpod *p = zt_pod_by_uid(ip->zt, uid);
    if (p == NULL)
        return;
    log_info("pod %s/%s removed: closing its listeners and connections", p->ns, p->name);
    zpod_delete(p);
}

static void
on_snapshot(void *arg, char *err, size_t errlen)
{
    struct zt_inpod *ip = arg;
    struct zt *zt = ip->zt;
    (void)err;
    (void)errlen;
    for (struct zpod *p = zt->pods, *next; p != NULL; p = next) {
        next = p->next;
        if (p->seen_gen != ip->snapshot_gen) {
            log_info("pod %s/%s is not in the node agent's snapshot: dropping it", p->ns, p->name);
            zpod_delete(p);
        }
    }
    if (!ip->synced_once)
        log_info("node agent snapshot: %zu pods", zt->n_pods);
    ip->synced_once = true;
    zt->zds_synced = true;
    zt_update_ready(zt);
}

static void
on_connected(void *arg)
{
    struct zt_inpod *ip = arg;
    ip->snapshot_gen++;
    log_debug("connected to the node agent");
}

static void
on_disconnected(void *arg, int err)
{
    struct zt_inpod *ip = arg;
    /* Pods keep being served; the next snapshot says which remain. */
    log_warn("node agent connection lost (%s); serving %zu pods meanwhile", mesh_strerror(err),
             ip->zt->n_pods);
}

static const struct zds_client_cbs cbs = {
    .on_add = on_add,
    .on_keep = on_keep,
    .on_del = on_del,
    .on_snapshot = on_snapshot,
    .on_connected = on_connected,
    .on_disconnected = on_disconnected,
};

struct zt_inpod *
inpod_start(struct zt *zt, char *err, size_t errlen)
{
    struct zt_inpod *ip = xcalloc(1, sizeof(*ip));
    ip->zt = zt;
    ip->client = zds_client_start(zt->loop, zt->opts.zds_socket, NULL, &cbs, ip);
    if (ip->client == NULL) {
        snprintf(err, errlen, "--zds-socket %s: not a usable unix socket path", zt->opts.zds_socket);
        free(ip);
        return NULL;
    }
    return ip;
}

void
inpod_stop(struct zt_inpod *ip)
{
    if (ip == NULL)
        return;
    zds_client_stop(ip->client);
    free(ip);
}
