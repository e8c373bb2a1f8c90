/*
 * waypoint.c - which waypoint, if any, a captured connection must go through, and which of
 * its replicas (waypoint.md 1 "ztunnel's decision"; Istio ztunnel outbound.rs).
 *
 * Service-addressed traffic goes through the service's waypoint; pod-addressed traffic through
 * the workload's, unless the source is that waypoint itself. Service traffic never uses a
 * workload's waypoint, pod traffic never a service's. Once bound, never around it: a waypoint
 * that cannot be resolved, or has no ready replica, refuses the connection. Among the ready
 * replicas the one this ztunnel has the fewest open streams to wins (ties broken at random),
 * so long-lived connections spread instead of piling on the first replica.
 *
 * A replica that died (killed, its node gone) is still in the model until its readiness
 * reaches the control plane, seconds later, and has no streams from us: the fewest-streams
 * choice would send every new connection to it. So a replica whose connection failed is
 * passed over for ZT_WAYPOINT_AVOID_MS while another is usable (outbound.c sends that
 * connection to another replica at once), then tried again.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/base.h"
#include "hbone/hbone.h"
#include "ztunnel.h"

/* The waypoint's service ("<ns>/<hostname>" or its VIP), or a single waypoint workload. */
static const struct service *
resolve(const struct model *m, const struct gateway_addr *g, const struct workload **single,
        char *name, size_t namelen)
{
    *single = NULL;
    if (g->hostname != NULL) {
        snprintf(name, namelen, "%s/%s", g->ns ? g->ns : "", g->hostname);
        return model_service_by_key(m, name);
    }
    char a[ADDR_STRLEN];
    snprintf(name, namelen, "%s", ipaddr_str(&g->ip, a));
    const struct service *s = model_service_by_vip(m, &g->ip);
    if (s == NULL)
        *single = model_workload_by_ip(m, &g->ip);
    return s;
}

static bool
is_replica(const struct model *m, const struct service *wsvc, const struct workload *single,
           const struct workload *w)
{
    if (single != NULL)
        return w == single;
    size_t n;
    struct workload *const *eps = model_endpoints(m, wsvc->key, &n);
    for (size_t i = 0; i < n; i++)
        if (eps[i] == w)
            return true;
    return false;
}

/* Replicas whose connection failed lately, by address (a small ring: few replicas fail at once). */
#define AVOID_SLOTS 32
struct avoid_slot {
    struct ipaddr ip;
    uint16_t port;
    uint64_t until_ms;
};
static _Thread_local struct avoid_slot avoid[AVOID_SLOTS]; /* per worker */
static _Thread_local unsigned avoid_next;

void
zt_waypoint_failed(struct zt *zt, const struct ipaddr *ip, uint16_t port)
{
    uint64_t until = loop_now_ms(zt->loop) + ZT_WAYPOINT_AVOID_MS;
    for (size_t i = 0; i < AVOID_SLOTS; i++) {
        if (avoid[i].port == port && ipaddr_eq(&avoid[i].ip, ip)) {
            avoid[i].until_ms = until;
            return;
        }
    }
    avoid[avoid_next] = (struct avoid_slot){.ip = *ip, .port = port, .until_ms = until};
    avoid_next = (avoid_next + 1) % AVOID_SLOTS;
}

static bool
avoided(struct zt *zt, const struct ipaddr *ip, uint16_t port)
{
    uint64_t now = loop_now_ms(zt->loop);
    for (size_t i = 0; i < AVOID_SLOTS; i++)
        if (avoid[i].until_ms > now && avoid[i].port == port && ipaddr_eq(&avoid[i].ip, ip))
            return true;
    return false;
}

/* |w|'s address in |family| when |w| can take traffic, else NULL. */
static const struct ipaddr *
usable(const struct workload *w, int family)
{
    if (w == NULL || w->status != WORKLOAD_HEALTHY)
        return NULL;
    const struct ipaddr *a = workload_addr(w, family);
    return a != NULL && a->family == family ? a : NULL;
}

/*
 * The replica with the fewest open streams from us; NULL when none is usable. Counting
 * streams walks the pool, so it is done only when there is a choice to make.
 */
static const struct workload *
pick(struct zt *zt, const struct service *wsvc, const struct workload *single, int family,
     uint16_t port, const struct ipaddr **ip)
{
    size_t n = 1, n_usable = 0;
    const struct workload *const *eps = &single;
    const struct workload *best = NULL;
    if (single == NULL)
        eps = (const struct workload *const *)model_endpoints(zt->model, wsvc->key, &n);
    for (size_t i = 0; i < n; i++)
        if (usable(eps[i], family) != NULL && n_usable++ == 0)
            best = eps[i];
    if (n_usable <= 1) {
        if (best != NULL)
            *ip = usable(best, family);
        return best;
    }
    /* Replicas that failed lately only when every usable one did. */
    bool skip_failed = false;
    for (size_t i = 0; i < n && !skip_failed; i++) {
        const struct ipaddr *a = usable(eps[i], family);
        skip_failed = a != NULL && !avoided(zt, a, port);
    }
    unsigned best_streams = 0, ties = 0;
    uint32_t r;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    best = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct ipaddr *a = usable(eps[i], family);
        if (a == NULL || (skip_failed && avoided(zt, a, port)))
            continue;
        unsigned s = hbone_pool_streams_to(zt->pool, a, port);
        if (best == NULL || s < best_streams) {
            best = eps[i];
            best_streams = s;
            *ip = a;
            ties = 1;
        } else if (s == best_streams && (r = r * 1103515245u + 12345u) % ++ties == 0) {
            best = eps[i]; /* reservoir choice among equals */
            *ip = a;
        }
    }
    return best;
}

int
zt_waypoint_route(struct zt *zt, const struct workload *src, const struct service *svc,
                  const struct workload *dst, int family, struct zt_waypoint *out)
{
    const struct gateway_addr *g = svc != NULL ? svc->waypoint : dst ? dst->waypoint : NULL;
    const struct workload *single;

    memset(out, 0, sizeof(*out));
    if (g == NULL)
        return 0;
    const struct service *wsvc = resolve(zt->model, g, &single, out->name, sizeof(out->name));
    if (wsvc == NULL && single == NULL) {
        out->why = "waypoint not found";
        return -1;
    }
    /*
     * The waypoint's own traffic to what it serves goes straight there (Istio checks this for
     * pod-addressed traffic; a waypoint is never captured, but a loop must not be possible).
     */
    if (src != NULL && is_replica(zt->model, wsvc, single, src))
        return 0;
    out->port = g->hbone_mtls_port ? g->hbone_mtls_port : ZT_PORT_HBONE;
    out->workload = pick(zt, wsvc, single, family, out->port, &out->ip);
    if (out->workload == NULL) {
        out->why = "no ready waypoint replica";
        return -1;
    }
    out->service = wsvc;
    return 1;
}
