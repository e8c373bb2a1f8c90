/*
 * cluster_net.c - the cluster's network, all of it inside namespaces made
 * here (the host's own namespace gets no link, address or route):
 *
 *   <p>-fabric   bridge br0 joining everything below (L2, no address)
 *   <p>-cp       eth0 198.18.0.2/24: meshd
 *   <p>-node-K   eth0 198.18.0.(10+K)/24, gateway 198.18.K.1/32 on lo,
 *                routes to the other nodes' pod subnets, ip_forward=1;
 *                one veth<H> per pod with a /32 route to it
 *   <pod netns>  eth0 198.18.K.H/32, default route via 198.18.K.1
 *
 * Pods sit behind point-to-point links (as the CNI ptp plugin makes them), so
 * all their traffic, same node or not, crosses the node's IP layer: service
 * DNAT and its reverse always see both directions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"

void
cl_node_name(int k, char *out, size_t outlen)
{
    snprintf(out, outlen, "node-%d", k);
}

void
cl_infra_netns(const struct cluster *c, const char *what, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-%s", c->prefix, what);
}

void
cl_node_netns(const struct cluster *c, int k, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-node-%d", c->prefix, k);
}

/* A recorded namespace with loopback up. */
static int
netns_add(struct cluster *c, const char *name, char *err, size_t errlen)
{
    if (ledger_netns_add(c, name) < 0) {
        snprintf(err, errlen, "recording netns %s in %s/netns.d", name, c->dir);
        return -1;
    }
    if (sys_ip(err, errlen, "netns", "add", name, NULL) < 0 ||
        sys_ip(err, errlen, "-n", name, "link", "set", "lo", "up", NULL) < 0)
        return -1;
    return 0;
}

/* eth0 in |ns| paired with |port| on the fabric bridge; |addr| on eth0. */
static int
fabric_link(const char *fabric, const char *ns, const char *port, const char *addr, char *err,
            size_t errlen)
{
    if (sys_ip(err, errlen, "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name",
               port, "netns", fabric, NULL) < 0 ||
        sys_ip(err, errlen, "-n", fabric, "link", "set", port, "master", "br0", "up", NULL) < 0 ||
        sys_ip(err, errlen, "-n", ns, "addr", "add", addr, "dev", "eth0", NULL) < 0 ||
        sys_ip(err, errlen, "-n", ns, "link", "set", "eth0", "up", NULL) < 0)
        return -1;
    return 0;
}

int
net_create(struct cluster *c, char *err, size_t errlen)
{
    char fabric[64], cp[64], node[64], addr[64], port[32], subnet[32], via[32], name[32];

    cl_infra_netns(c, "fabric", fabric, sizeof(fabric));
    cl_infra_netns(c, "cp", cp, sizeof(cp));
    if (netns_add(c, fabric, err, errlen) < 0 ||
        sys_ip(err, errlen, "-n", fabric, "link", "add", "br0", "type", "bridge", NULL) < 0 ||
        sys_ip(err, errlen, "-n", fabric, "link", "set", "br0", "up", NULL) < 0 ||
        netns_add(c, cp, err, errlen) < 0 ||
        fabric_link(fabric, cp, "cp", CLUSTER_MESHD_IP "/24", err, errlen) < 0)
        return -1;
    for (int k = 1; k <= c->n_nodes; k++) {
        cl_node_netns(c, k, node, sizeof(node));
        snprintf(addr, sizeof(addr), "198.18.0.%d/24", 10 + k);
        snprintf(port, sizeof(port), "node%d", k);
        if (netns_add(c, node, err, errlen) < 0 ||
            fabric_link(fabric, node, port, addr, err, errlen) < 0)
            return -1;
        snprintf(addr, sizeof(addr), "198.18.%d.1/32", k);
        if (sys_ip(err, errlen, "-n", node, "addr", "add", addr, "dev", "lo", NULL) < 0 ||
            sys_sysctl_in(node, "net.ipv4.ip_forward", "1", err, errlen) < 0)
            return -1;
        snprintf(subnet, sizeof(subnet), "198.18.%d.0/24", k);
        snprintf(via, sizeof(via), "198.18.0.%d", 10 + k);
        if (sys_ip(err, errlen, "-n", cp, "route", "add", subnet, "via", via, NULL) < 0)
            return -1;
        for (int j = 1; j <= c->n_nodes; j++) {
            if (j == k)
                continue;
            snprintf(subnet, sizeof(subnet), "198.18.%d.0/24", j);
            snprintf(via, sizeof(via), "198.18.0.%d", 10 + j);
            if (sys_ip(err, errlen, "-n", node, "route", "add", subnet, "via", via, NULL) < 0)
                return -1;
        }
        /* meshctl ztunnel-config --node node-K finds the namespace here. */
        cl_node_name(k, name, sizeof(name));
        char *dir = cl_path(c, "nodes/%s", name);
        char *file = cl_path(c, "nodes/%s/netns", name);
        char line[80];
        int n = snprintf(line, sizeof(line), "%s\n", node);
        int rc = cl_mkdirs(dir, 0755) < 0 ? -1 : cl_write_atomic(file, line, (size_t)n, 0644);
        free(dir);
        free(file);
        if (rc < 0) {
            snprintf(err, errlen, "writing nodes/%s/netns", name);
            return -1;
        }
    }
    return 0;
}

int
net_pod_add(struct cluster *c, int k, int host, const char *netns, char *err, size_t errlen)
{
    char node[64], veth[16], ip[32], ip32[40], gw[32], src[40];

    cl_node_netns(c, k, node, sizeof(node));
    snprintf(veth, sizeof(veth), "veth%d", host);
    snprintf(ip, sizeof(ip), "198.18.%d.%d", k, host);
    snprintf(ip32, sizeof(ip32), "%s/32", ip);
    snprintf(gw, sizeof(gw), "198.18.%d.1", k);
    snprintf(src, sizeof(src), "%s", gw);
    if (netns_add(c, netns, err, errlen) < 0)
        return -1;
    /* A leftover link of an earlier pod with this address would break routing: clear it. */
    char ignored[256];
    sys_ip(ignored, sizeof(ignored), "-n", node, "link", "del", veth, NULL);
    if (sys_ip(err, errlen, "link", "add", "eth0", "netns", netns, "type", "veth", "peer", "name",
               veth, "netns", node, NULL) < 0 ||
        sys_ip(err, errlen, "-n", netns, "addr", "add", ip32, "dev", "eth0", NULL) < 0 ||
        sys_ip(err, errlen, "-n", netns, "link", "set", "eth0", "up", NULL) < 0 ||
        sys_ip(err, errlen, "-n", netns, "route", "add", gw, "dev", "eth0", "scope", "link", NULL) <
            0 ||
        sys_ip(err, errlen, "-n", netns, "route", "add", "default", "via", gw, "dev", "eth0", "src",
               ip, NULL) < 0 ||
        sys_ip(err, errlen, "-n", node, "link", "set", veth, "up", NULL) < 0 ||
        sys_ip(err, errlen, "-n", node, "route", "add", ip32, "dev", veth, "scope", "link", "src",
               src, NULL) < 0)
        return -1;
    return 0;
}

void
net_netns_del(struct cluster *c, const char *name)
{
    char err[256];
    sys_ip(err, sizeof(err), "netns", "del", name, NULL);
    char *etc = xasprintf("/etc/netns/%s", name);
    cl_rmtree(etc);
    free(etc);
    ledger_netns_del(c, name);
}

void
net_pod_del(struct cluster *c, int k, int host, const char *netns)
{
    char node[64], veth[16], err[256];
    cl_node_netns(c, k, node, sizeof(node));
    snprintf(veth, sizeof(veth), "veth%d", host);
    sys_ip(err, sizeof(err), "-n", node, "link", "del", veth, NULL);
    net_netns_del(c, netns);
}
