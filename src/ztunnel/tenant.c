/*
 * tenant.c - what one local pod may take of a worker, so that a pod that floods
 * (bulk transfers, many connections, a connect storm) slows itself, not its
 * neighbours on the same ztunnel (Istio's ztunnel has no such limit: ztunnel#24).
 *
 * The pod of a connection is its local end: the source of outbound traffic,
 * the destination of inbound. In in-pod mode that is the scope's pod (its
 * uid); in node mode the local address (one pod per IP). Per pod and worker:
 *   - a share of every loop turn for its connections' bytes (lib/conn
 *     pipe_group): at most ZT_POD_TURN_BYTES read per turn by all of them, so
 *     the turn every other pod waits for stays short;
 *   - caps on its open connections and on its dials in progress (upstream
 *     connects and HBONE CONNECTs not yet answered), the worker's share of the
 *     process-wide --pod-max-connections and --pod-max-dials; past a cap a new
 *     connection is refused at once (reset, or 503 to an HBONE CONNECT), logged
 *     (rate-limited) and counted in amesh_ztunnel_pod_limit_refused_total.
 * Buffered bytes per connection are capped where they are held (the pipe's
 * buffer, the HTTP/2 stream window), so the connection cap bounds a pod's memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "tenant"
#include "base/base.h"
#include "log/log.h"
#include "ztunnel.h"

#define TENANT_BUCKETS 256

struct ztenant {
    struct ztenant *next; /* hash chain */
    struct zt *zt;
    uint64_t hash;
    int refs;
    unsigned conns, dials;
    struct pipe_group *group;
    char key[]; /* "pod/<uid>" or "ip/<address>" */
};

static struct log_ratelimit limit_rl = LOG_RATELIMIT_INIT(10000, 5);

static uint64_t
fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static struct ztenant *
tenant_get(struct zt *zt, const struct zpod *pod, const struct ipaddr *local)
{
    char key[400], a[ADDR_STRLEN];

    if (pod != NULL && pod->netns_fd >= 0 && pod->uid != NULL)
        snprintf(key, sizeof(key), "pod/%s", pod->uid);
    else
        snprintf(key, sizeof(key), "ip/%s", ipaddr_str(local, a));
    uint64_t h = fnv(key);
    if (zt->tenants == NULL)
        zt->tenants = xcalloc(TENANT_BUCKETS, sizeof(*zt->tenants));
    struct ztenant **slot = &zt->tenants[h % TENANT_BUCKETS];
    for (struct ztenant *t = *slot; t != NULL; t = t->next) {
        if (t->hash == h && strcmp(t->key, key) == 0) {
            t->refs++;
            return t;
        }
    }
    size_t n = strlen(key) + 1;
    struct ztenant *t = xcalloc(1, sizeof(*t) + n);
    memcpy(t->key, key, n);
    t->zt = zt;
    t->hash = h;
    t->refs = 1;
    t->group = pipe_group_new(zt->loop, ZT_POD_TURN_BYTES);
    t->next = *slot;
    *slot = t;
    return t;
}

static void
tenant_put(struct ztenant *t)
{
    if (t == NULL || --t->refs > 0)
        return;
    struct ztenant **p = &t->zt->tenants[t->hash % TENANT_BUCKETS];
    while (*p != t)
        p = &(*p)->next;
    *p = t->next;
    pipe_group_unref(t->group); /* pipes still finishing hold their own reference */
    free(t);
}

static void
refused(const struct ztenant *t, const char *what, unsigned cap)
{
    zt_metrics_pod_limit_refused(what);
    log_warn_rl(&limit_rl, "%s: at its limit of %u %s on worker %u: new connection refused",
                t->key, cap, what, t->zt->id);
}

bool
zconn_admit(struct zt *zt, struct zconn *c, const struct zpod *pod, const struct ipaddr *local)
{
    struct ztenant *t = tenant_get(zt, pod, local);
    unsigned cap = (unsigned)zt_share(zt, zt->opts.pod_max_conns);
    if (t->conns >= cap) {
        refused(t, "connections", cap);
        tenant_put(t);
        return false;
    }
    t->conns++;
    c->tenant = t;
    return true;
}

bool
zconn_dial_begin(struct zconn *c)
{
    struct ztenant *t = c->tenant;
    if (t == NULL || c->dialling)
        return true;
    unsigned cap = (unsigned)zt_share(t->zt, t->zt->opts.pod_max_dials);
    if (t->dials >= cap) {
        refused(t, "dials", cap);
        return false;
    }
    t->dials++;
    c->dialling = true;
    return true;
}

void
zconn_dial_end(struct zconn *c)
{
    if (c->tenant != NULL && c->dialling) {
        c->tenant->dials--;
        c->dialling = false;
    }
}

void
zconn_release_tenant(struct zconn *c)
{
    struct ztenant *t = c->tenant;
    if (t == NULL)
        return;
    zconn_dial_end(c);
    t->conns--;
    c->tenant = NULL;
    tenant_put(t);
}

struct pipe *
zconn_pipe_start(struct zt *zt, struct zconn *c, struct stream *a, struct stream *b,
                 pipe_done_fn *done, void *arg)
{
    c->pipe = pipe_start(zt->loop, a, b, zt->opts.pipe_buf, done, arg);
    if (c->tenant != NULL)
        pipe_set_group(c->pipe, c->tenant->group);
    return c->pipe;
}

void
zt_tenants_free(struct zt *zt)
{
    /* Every connection released its pod before; what is left had none open. */
    free(zt->tenants);
    zt->tenants = NULL;
}
