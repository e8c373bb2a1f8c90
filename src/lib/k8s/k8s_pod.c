/*
 * k8s_pod.c - the Pod fields the conversion uses: identity (service account,
 * node), readiness (phase, Ready condition), addresses (status.podIPs, else
 * status.podIP), host networking, and container ports so that a Service's
 * named targetPort can be resolved per pod.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

void
k8s_pod_cleanup(struct k8s_pod *p)
{
    free(p->service_account);
    free(p->node);
    free(p->ips);
    for (size_t i = 0; i < p->n_ports; i++)
        free(p->ports[i].name);
    free(p->ports);
}

static int
container_ports(struct k8s_dctx *c, const json_t *ctr, const char *cpath, bool keep,
                struct k8s_pod *p)
{
    const json_t *ports;
    char path[96];
    int rc;

    if ((rc = k8s_get_arr(c, ctr, "ports", cpath, K8S_MAX_PORTS, &ports)) < 0 || ports == NULL)
        return rc;
    for (size_t i = 0; i < json_array_size(ports); i++) {
        const json_t *e = json_array_get(ports, i);
        const char *name, *proto;
        uint16_t port;
        snprintf(path, sizeof(path), "%s.ports[%zu]", cpath, i);
        if (!json_is_object(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
        if ((rc = k8s_get_str(c, e, "name", path, &name)) < 0 ||
            (rc = k8s_get_str(c, e, "protocol", path, &proto)) < 0 ||
            (rc = k8s_get_port(c, e, "containerPort", path, &port)) < 0)
            return rc;
        if (port == 0)
            return k8s_fail(c, k8s_val_line(c, e), "%s: containerPort is missing", path);
        if (name != NULL && name[0] != '\0' && !k8s_port_name(name))
            return k8s_fail(c, k8s_key_line(c, e, "name"),
                            "%s: name \"%s\" is not a valid port name (<= 15 characters of "
                            "[a-z0-9-] with a letter)",
                            path, name);
        if (!keep)
            continue;
        if (p->n_ports >= K8S_MAX_PORTS)
            return k8s_fail(c, k8s_val_line(c, e), "pod has more than %d container ports",
                            K8S_MAX_PORTS);
        if (p->n_ports % 16 == 0)
            p->ports = xrealloc(p->ports, (p->n_ports + 16) * sizeof(*p->ports));
        struct k8s_cport *cp = &p->ports[p->n_ports++];
        cp->name = xstrdup(name ? name : "");
        cp->port = port;
        /* The API server defaults the protocol to TCP; named ports resolve only on TCP. */
        cp->tcp = proto == NULL || strcmp(proto, "TCP") == 0;
    }
    return 0;
}

/*
 * Containers, then init containers with restartPolicy Always (native sidecars):
 * istiod resolves named ports in both (helpers.go FindPortName).
 */
static int
containers(struct k8s_dctx *c, const json_t *spec, const char *key, struct k8s_pod *p)
{
    const json_t *arr;
    bool init = strcmp(key, "initContainers") == 0;
    char path[64];
    int rc;

    if ((rc = k8s_get_arr(c, spec, key, "spec", K8S_MAX_PORTS, &arr)) < 0 || arr == NULL)
        return rc;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *ctr = json_array_get(arr, i);
        const char *restart = NULL;
        snprintf(path, sizeof(path), "spec.%s[%zu]", key, i);
        if (!json_is_object(ctr))
            return k8s_fail(c, k8s_val_line(c, ctr), "%s: expected a mapping", path);
        if (init && (rc = k8s_get_str(c, ctr, "restartPolicy", path, &restart)) < 0)
            return rc;
        bool keep = !init || (restart != NULL && strcmp(restart, "Always") == 0);
        if ((rc = container_ports(c, ctr, path, keep, p)) < 0)
            return rc;
    }
    return 0;
}

static int
pod_spec(struct k8s_dctx *c, const json_t *spec, struct k8s_pod *p)
{
    const char *sa = NULL, *node = NULL;
    int rc;

    if (spec != NULL) {
        if ((rc = k8s_get_str(c, spec, "serviceAccountName", "spec", &sa)) < 0)
            return rc;
        /* spec.serviceAccount is the deprecated spelling the API server still copies over. */
        if ((sa == NULL || sa[0] == '\0') &&
            (rc = k8s_get_str(c, spec, "serviceAccount", "spec", &sa)) < 0)
            return rc;
        if ((rc = k8s_get_str(c, spec, "nodeName", "spec", &node)) < 0 ||
            (rc = k8s_get_bool(c, spec, "hostNetwork", "spec", &p->host_network)) < 0 ||
            (rc = containers(c, spec, "containers", p)) < 0 ||
            (rc = containers(c, spec, "initContainers", p)) < 0)
            return rc;
    }
    if (sa == NULL || sa[0] == '\0')
        sa = "default"; /* what the API server fills in */
    else if (!k8s_dns_subdomain(sa))
        return k8s_fail(c, k8s_key_line(c, spec, "serviceAccountName"),
                        "spec.serviceAccountName: \"%s\" is not a valid DNS subdomain", sa);
    if (node != NULL && node[0] != '\0' && !k8s_dns_subdomain(node))
        return k8s_fail(c, k8s_key_line(c, spec, "nodeName"),
                        "spec.nodeName: \"%s\" is not a valid node name", node);
    p->service_account = xstrdup(sa);
    p->node = xstrdup(node ? node : "");
    return 0;
}

static int
add_ip(struct k8s_dctx *c, const char *s, int line, const char *path, struct k8s_pod *p)
{
    struct k8s_ip ip;

    if (k8s_parse_ip(s, &ip) < 0)
        return k8s_fail(c, line, "%s: \"%s\" is not an IP address", path, s);
    if (p->n_ips >= K8S_MAX_IPS)
        return k8s_fail(c, line, "%s: more than %d addresses", path, K8S_MAX_IPS);
    p->ips = xrealloc(p->ips, (p->n_ips + 1) * sizeof(*p->ips));
    p->ips[p->n_ips++] = ip;
    return 0;
}

static int
pod_status(struct k8s_dctx *c, const json_t *status, struct k8s_pod *p)
{
    const json_t *conds, *ips;
    const char *phase, *ip;
    char path[64];
    int rc;

    if ((rc = k8s_get_str(c, status, "phase", "status", &phase)) < 0 ||
        (rc = k8s_get_arr(c, status, "conditions", "status", K8S_MAX_LABELS, &conds)) < 0 ||
        (rc = k8s_get_arr(c, status, "podIPs", "status", K8S_MAX_IPS, &ips)) < 0 ||
        (rc = k8s_get_str(c, status, "podIP", "status", &ip)) < 0)
        return rc;
    p->terminal =
        phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0);
    for (size_t i = 0; conds != NULL && i < json_array_size(conds); i++) {
        const json_t *e = json_array_get(conds, i);
        const char *type, *st;
        snprintf(path, sizeof(path), "status.conditions[%zu]", i);
        if (!json_is_object(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
        if ((rc = k8s_get_str(c, e, "type", path, &type)) < 0 ||
            (rc = k8s_get_str(c, e, "status", path, &st)) < 0)
            return rc;
        /* The first Ready condition counts, as in Kubernetes' GetPodCondition. */
        if (type != NULL && strcmp(type, "Ready") == 0) {
            p->ready = st != NULL && strcmp(st, "True") == 0;
            break;
        }
    }
    for (size_t i = 0; ips != NULL && i < json_array_size(ips); i++) {
        const json_t *e = json_array_get(ips, i);
        const char *s;
        snprintf(path, sizeof(path), "status.podIPs[%zu]", i);
        if (!json_is_object(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping with \"ip\"", path);
        if ((rc = k8s_get_str(c, e, "ip", path, &s)) < 0)
            return rc;
        if (s == NULL)
            return k8s_fail(c, k8s_val_line(c, e), "%s: ip is missing", path);
        if ((rc = add_ip(c, s, k8s_key_line(c, e, "ip"), path, p)) < 0)
            return rc;
    }
    if (ip != NULL && ip[0] != '\0') {
        struct k8s_ip one;
        if (k8s_parse_ip(ip, &one) < 0)
            return k8s_fail(c, k8s_key_line(c, status, "podIP"),
                            "status.podIP: \"%s\" is not an IP address", ip);
        /* podIPs wins when given (istiod getPodIPs); podIP is its first entry. */
        if (p->n_ips == 0 && (rc = add_ip(c, ip, 0, "status.podIP", p)) < 0)
            return rc;
    }
    return 0;
}

int
k8s_decode_pod(struct k8s_dctx *c, const json_t *json, struct k8s_pod *p)
{
    const json_t *spec, *status;
    int rc;

    if ((rc = k8s_get_obj(c, json, "spec", "", &spec)) < 0 ||
        (rc = k8s_get_obj(c, json, "status", "", &status)) < 0 || (rc = pod_spec(c, spec, p)) < 0)
        return rc;
    if (status != NULL && (rc = pod_status(c, status, p)) < 0)
        return rc;
    return 0;
}
