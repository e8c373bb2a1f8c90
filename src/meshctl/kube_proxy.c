/*
 * kube_proxy.c - Service VIPs for pods outside the mesh, as kube-proxy's
 * iptables mode does it: in every node's namespace the nat table sends
 * VIP:port to one of the Service's running endpoints (-m statistic, equal
 * shares), with the hairpin case (a pod reaching itself) masqueraded.
 *
 * The node namespaces are the cluster's own, so the whole nat table is
 * replaced at once (iptables-restore, atomic) and only when it changed.
 * Enrolled pods never get here with a VIP: their traffic is captured inside
 * the pod and leaves it addressed to an endpoint's HBONE port.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"

#define MASQ_MARK "0x4000/0x4000"

/* A running pod's port for |target| (a number, or a container port's name); 0 when none. */
static long long
endpoint_port(const json_t *pod, const json_t *target, long long svc_port)
{
    if (target == NULL)
        return svc_port;
    if (json_is_integer(target))
        return json_integer_value(target);
    const char *name = json_string_value(target);
    if (name == NULL)
        return 0;
    char *end;
    long long n = strtoll(name, &end, 10);
    if (*end == '\0' && end != name)
        return n;
    size_t i, j;
    json_t *ctr, *p;
    json_array_foreach(jget(pod, "spec.containers"), i, ctr)
        json_array_foreach(json_object_get(ctr, "ports"), j, p) {
            const char *pn = js(p, "name");
            if (pn != NULL && strcmp(pn, name) == 0)
                return json_integer_value(json_object_get(p, "containerPort"));
        }
    return 0;
}

static void
chain_name(char *out, size_t outlen, const char *kind, const char *a, const char *b, long long n)
{
    char key[1024];
    snprintf(key, sizeof(key), "%s|%s|%lld", a, b, n);
    snprintf(out, outlen, "AMESH-%s-%016llx", kind,
             (unsigned long long)cl_hash(CL_HASH_INIT, key, strlen(key)));
}

/* The embedded cluster's endpoints: running, ready pods of the namespace the selector matches. */
static json_t *
pod_endpoints(void *arg, const json_t *svc, const json_t *port)
{
    const struct cluster *c = arg;
    json_t *pods = rec_list(c, kind_by_name("Pod"), NULL);
    const char *ns = jsd(svc, "metadata.namespace", "default");
    const json_t *sel = jget(svc, "spec.selector");
    long long sp = json_integer_value(json_object_get(port, "port"));
    json_t *eps = json_array();
    size_t k;
    json_t *pod;

    json_array_foreach(pods, k, pod) {
        const json_t *po = json_object_get(pod, "object");
        const char *pns = jsd(po, "metadata.namespace", "");
        const char *pname = jsd(po, "metadata.name", "");
        const char *ip = js(po, "status.podIP");
        bool ready;
        if (strcmp(pns, ns) != 0 || ip == NULL ||
            !cl_selector_matches(sel, jget(po, "metadata.labels")))
            continue;
        pods_status(c, pns, pname, &ready);
        long long tp = endpoint_port(po, json_object_get(port, "targetPort"), sp);
        if (!ready || tp <= 0 || tp > 65535)
            continue;
        json_array_append_new(eps, json_pack("{s:s, s:I}", "ip", ip, "port", (json_int_t)tp));
    }
    json_decref(pods);
    return eps;
}

char *
kp_render_services(const json_t *svcs, kp_endpoints_fn *endpoints, void *arg)
{
    char *chains = NULL, *rules = NULL, *out;
    size_t cl, rl;
    FILE *fc = open_memstream(&chains, &cl), *fr = open_memstream(&rules, &rl);
    size_t i, j, k;
    json_t *s, *port;

    fprintf(fc, ":AMESH-SERVICES - [0:0]\n");
    fprintf(fr, "-A PREROUTING -m comment --comment \"amesh service portals\" -j AMESH-SERVICES\n"
                "-A OUTPUT -m comment --comment \"amesh service portals\" -j AMESH-SERVICES\n"
                "-A POSTROUTING -m mark --mark " MASQ_MARK " -j MASQUERADE\n");
    json_array_foreach(svcs, i, s) {
        const json_t *svc = json_object_get(s, "object");
        const char *vip = js(svc, "spec.clusterIP");
        const char *ns = jsd(svc, "metadata.namespace", "default");
        const char *name = jsd(svc, "metadata.name", "");
        if (vip == NULL || cl_vip_index(vip) < 0)
            continue;
        json_array_foreach(jget(svc, "spec.ports"), j, port) {
            long long sp = json_integer_value(json_object_get(port, "port"));
            const char *proto = jsd(port, "protocol", "TCP");
            const char *p = strcmp(proto, "UDP") == 0   ? "udp"
                            : strcmp(proto, "TCP") == 0 ? "tcp"
                                                        : NULL;
            if (sp <= 0 || sp > 65535 || p == NULL)
                continue;
            json_t *eps = endpoints(arg, svc, port);
            size_t n = json_array_size(eps);
            if (n == 0) {
                json_decref(eps);
                continue;
            }
            char svc_chain[40];
            chain_name(svc_chain, sizeof(svc_chain), "SVC", ns, name, sp);
            fprintf(fc, ":%s - [0:0]\n", svc_chain);
            fprintf(fr,
                    "-A AMESH-SERVICES -d %s/32 -p %s -m %s --dport %lld -m comment --comment "
                    "\"%s/%s:%s cluster IP\" -j %s\n",
                    vip, p, p, sp, ns, name, jsd(port, "name", ""), svc_chain);
            json_t *ep;
            json_array_foreach(eps, k, ep) {
                char sep[40], key[80];
                const char *ip = js(ep, "ip");
                long long tp = json_integer_value(json_object_get(ep, "port"));
                snprintf(key, sizeof(key), "%s:%lld", ip, tp);
                chain_name(sep, sizeof(sep), "SEP", svc_chain, key, sp);
                fprintf(fc, ":%s - [0:0]\n", sep);
                if (k + 1 < n)
                    fprintf(fr, "-A %s -m statistic --mode random --probability %.11f -j %s\n",
                            svc_chain, 1.0 / (double)(n - k), sep);
                else
                    fprintf(fr, "-A %s -j %s\n", svc_chain, sep);
                fprintf(fr, "-A %s -s %s/32 -j MARK --set-xmark " MASQ_MARK "\n", sep, ip);
                fprintf(fr, "-A %s -p %s -m %s -j DNAT --to-destination %s:%lld\n", sep, p, p, ip,
                        tp);
            }
            json_decref(eps);
        }
    }
    fclose(fc);
    fclose(fr);
    out = xasprintf("# meshctl local cluster: Service VIPs (kube-proxy iptables mode)\n*nat\n"
                    ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    ":POSTROUTING ACCEPT [0:0]\n%s%sCOMMIT\n",
                    chains, rules);
    free(chains);
    free(rules);
    return out;
}

char *
kp_render(const struct cluster *c)
{
    json_t *svcs = rec_list(c, kind_by_name("Service"), NULL);
    char *out = kp_render_services(svcs, pod_endpoints, (void *)c);
    json_decref(svcs);
    return out;
}

int
kp_apply(const char *netns, const char *path, const char *rules, char *err, size_t errlen)
{
    char *old = cl_read_file(path, NULL);
    bool same = old != NULL && strcmp(old, rules) == 0;
    free(old);
    if (same)
        return 0;
    const char *argv[] = {"iptables-restore", "-w", "5", NULL};
    int rc = netns != NULL ? sys_in_netns(netns, argv, rules, err, errlen)
                           : sys_run(argv, rules, NULL, err, errlen);
    if (rc != 0)
        return -1;
    cl_write_atomic(path, rules, strlen(rules), 0644);
    return 0;
}

void
kp_sync(struct cluster *c)
{
    char *rules = kp_render(c);
    char node[32], netns[64], err[512];

    for (int k = 1; k <= c->n_nodes; k++) {
        cl_node_name(k, node, sizeof(node));
        cl_node_netns(c, k, netns, sizeof(netns));
        char *path = cl_path(c, "nodes/%s/iptables.rules", node);
        if (kp_apply(netns, path, rules, err, sizeof(err)) < 0)
            fprintf(stderr, "Warning: service rules in %s: %s\n", node, err);
        free(path);
    }
    free(rules);
}
