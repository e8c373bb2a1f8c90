/*
 * bound.c - what a CONNECT's :authority selects (waypoint.md 1, "the waypoint's side").
 *
 * ztunnel sends a waypoint service-addressed traffic with :authority = VIP:port and
 * pod-addressed traffic with :authority = podIP:port. The waypoint serves only what is bound
 * to it: a Service whose `waypoint` names this waypoint (and that has the port), or a
 * workload whose `waypoint` does. Anything else gets 503, so a waypoint is never an open
 * relay into the mesh. The endpoint is a healthy one with an address of the same family.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "base/base.h"
#include "wp.h"

/*
 * The hostname form names the waypoint's Service "<name>.<ns>.svc.<domain>" in its namespace;
 * the address form one of that Service's VIPs.
 */
bool
wp_is_mine(const struct wp *wp, const struct gateway_addr *g)
{
    if (g == NULL)
        return false;
    if (g->hostname != NULL)
        return g->ns != NULL && strcmp(g->ns, wp->opts.ns) == 0 &&
               strncasecmp(g->hostname, wp->host_prefix, strlen(wp->host_prefix)) == 0;
    const struct service *s = model_service_by_vip(wp->model, &g->ip);
    return s != NULL && strcmp(s->ns, wp->opts.ns) == 0 &&
           strncasecmp(s->hostname, wp->host_prefix, strlen(wp->host_prefix)) == 0;
}

static bool
has_port(const struct service *s, uint16_t port)
{
    for (size_t i = 0; i < s->n_ports; i++)
        if (s->ports[i].service_port == port)
            return true;
    return false;
}

static enum route_protocol
protocol_of(const struct wp *wp, const struct service *s, uint16_t port)
{
    const struct route_table *t =
        wp->routes != NULL ? route_set_find(wp->routes, s->ns, s->hostname, port) : NULL;
    return t != NULL ? route_table_protocol(t) : ROUTE_PROTO_DETECT;
}

int
wp_select(struct wp *wp, const struct ipaddr *ip, uint16_t port, struct wp_target *t)
{
    memset(t, 0, sizeof(*t));
    t->status = 503;
    const struct service *s = model_service_by_vip(wp->model, ip);
    if (s != NULL) {
        if (!wp_is_mine(wp, s->waypoint)) {
            t->why = "service is not bound to this waypoint";
            return -1;
        }
        if (!has_port(s, port)) {
            t->why = "service has no such port";
            return -1;
        }
        uint32_t seed;
        RAND_bytes((unsigned char *)&seed, sizeof(seed));
        t->service = s;
        t->protocol = protocol_of(wp, s, port);
        t->endpoint = model_pick_endpoint(wp->model, s, port, ip->family, seed, &t->ep_port);
        if (t->endpoint == NULL) {
            t->why = "no healthy upstream";
            return -1;
        }
    } else {
        const struct workload *w = model_workload_by_ip(wp->model, ip);
        if (w == NULL || !wp_is_mine(wp, w->waypoint)) {
            t->why = w == NULL ? "unknown destination" : "workload is not bound to this waypoint";
            return -1;
        }
        if (w->status != WORKLOAD_HEALTHY) {
            t->why = "no healthy upstream";
            return -1;
        }
        t->workload = w;
        t->endpoint = w;
        t->ep_port = port;
        t->protocol = ROUTE_PROTO_DETECT;
    }
    t->ep_ip = workload_addr(t->endpoint, ip->family);
    if (t->ep_ip == NULL || t->ep_ip->family != ip->family) {
        t->why = "no upstream address in the family of the request";
        return -1;
    }
    return 0;
}
