/*
 * k8s_slice.c - the EndpointSlice fields the conversion uses
 * (discovery.k8s.io v1 and v1beta1 agree on all of them): the Service it is
 * for (label kubernetes.io/service-name), the address type, the ports (name
 * and number; protocol and name defaulted as the API server does) and per
 * endpoint its first address, readiness and whether it is a pod.
 *
 * What the API server's validation would refuse is an error here too (an
 * address that is not one of addressType's, a missing address list), so a
 * file and the API agree; endpoints are capped as the API server caps them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

void
k8s_slice_cleanup(struct k8s_slice *s)
{
    free(s->service);
    for (size_t i = 0; i < s->n_eps; i++)
        free(s->eps[i].key);
    free(s->eps);
    for (size_t i = 0; i < s->n_ports; i++)
        free(s->ports[i].name);
    free(s->ports);
}

static int
slice_ports(struct k8s_dctx *c, const json_t *json, struct k8s_slice *s)
{
    const json_t *arr;
    char path[48];
    int rc;

    if ((rc = k8s_get_arr(c, json, "ports", "", K8S_MAX_PORTS, &arr)) < 0 || arr == NULL)
        return rc;
    s->ports = xcalloc(json_array_size(arr) + 1, sizeof(*s->ports));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *name, *proto;
        uint16_t port;
        snprintf(path, sizeof(path), "ports[%zu]", i);
        if (!json_is_object(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
        if ((rc = k8s_get_str(c, e, "name", path, &name)) < 0 ||
            (rc = k8s_get_str(c, e, "protocol", path, &proto)) < 0 ||
            (rc = k8s_get_port(c, e, "port", path, &port)) < 0)
            return rc;
        if (name != NULL && name[0] != '\0' && !k8s_port_name(name) && !k8s_dns_label(name, false))
            return k8s_fail(c, k8s_key_line(c, e, "name"),
                            "%s: name \"%s\" is not a valid port name", path, name);
        if (port == 0)
            continue; /* "all ports": nothing istiod can map */
        struct k8s_slice_port *p = &s->ports[s->n_ports++];
        p->name = xstrdup(name ? name : "");
        p->port = port;
        p->tcp = proto == NULL || strcmp(proto, "TCP") == 0;
    }
    return 0;
}

static int
endpoint(struct k8s_dctx *c, const json_t *e, const char *path, int family, struct k8s_ep *ep)
{
    const json_t *addrs, *conds, *ref;
    const char *kind = NULL;
    char apath[96];
    int rc;

    if (!json_is_object(e))
        return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
    if ((rc = k8s_get_arr(c, e, "addresses", path, K8S_MAX_EP_ADDRS, &addrs)) < 0 ||
        (rc = k8s_get_obj(c, e, "conditions", path, &conds)) < 0 ||
        (rc = k8s_get_obj(c, e, "targetRef", path, &ref)) < 0)
        return rc;
    if (addrs == NULL || json_array_size(addrs) == 0)
        return k8s_fail(c, k8s_val_line(c, e), "%s: addresses: at least one is required", path);
    for (size_t i = 0; i < json_array_size(addrs); i++) {
        const json_t *a = json_array_get(addrs, i);
        struct k8s_ip ip;
        snprintf(apath, sizeof(apath), "%s.addresses[%zu]", path, i);
        if (!json_is_string(a))
            return k8s_fail(c, k8s_val_line(c, a), "%s: expected a string, got %s", apath,
                            k8s_json_type_name(a));
        if (k8s_parse_ip(json_string_value(a), &ip) < 0 || ip.len != family)
            return k8s_fail(c, k8s_val_line(c, a), "%s: \"%.64s\" is not an IPv%d address", apath,
                            json_string_value(a), family == 4 ? 4 : 6);
        if (i == 0) {
            ep->ip = ip;
            ep->key = xstrdup(json_string_value(a));
        }
    }
    ep->ready = true;
    if (conds != NULL) {
        bool have = json_is_boolean(k8s_json_member(conds, "ready"));
        bool ready = false;
        snprintf(apath, sizeof(apath), "%s.conditions", path);
        if ((rc = k8s_get_bool(c, conds, "ready", apath, &ready)) < 0)
            return rc;
        ep->ready = !have || ready;
    }
    if (ref != NULL) {
        snprintf(apath, sizeof(apath), "%s.targetRef", path);
        if ((rc = k8s_get_str(c, ref, "kind", apath, &kind)) < 0)
            return rc;
        ep->pod = kind != NULL && strcmp(kind, "Pod") == 0;
    }
    return 0;
}

int
k8s_decode_slice(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                 struct k8s_slice *s)
{
    const json_t *eps;
    const char *type, *svc;
    char path[48];
    int rc, family;

    if ((rc = k8s_get_str(c, json, "addressType", "", &type)) < 0 ||
        (rc = k8s_get_arr(c, json, "endpoints", "", K8S_MAX_ENDPOINTS, &eps)) < 0)
        return rc;
    if (type == NULL)
        return k8s_fail(c, c->line, "EndpointSlice \"%s\": addressType is required", m->name);
    if (strcmp(type, "IPv4") == 0)
        family = 4;
    else if (strcmp(type, "IPv6") == 0)
        family = 16;
    else if (strcmp(type, "FQDN") == 0)
        family = 0;
    else
        return k8s_fail(c, k8s_key_line(c, json, "addressType"),
                        "addressType: \"%.64s\" is not IPv4, IPv6 or FQDN", type);
    svc = k8s_kv_get(m->labels, m->n_labels, SERVICE_NAME_LABEL);
    s->service = svc ? xstrdup(svc) : NULL;
    s->fqdn = family == 0;
    if ((rc = slice_ports(c, json, s)) < 0)
        return rc;
    /* FQDN endpoints are hostnames: not converted (istiod neither), so not read further. */
    if (eps == NULL || s->fqdn)
        return 0;
    s->eps = xcalloc(json_array_size(eps) + 1, sizeof(*s->eps));
    for (size_t i = 0; i < json_array_size(eps); i++) {
        snprintf(path, sizeof(path), "endpoints[%zu]", i);
        if ((rc = endpoint(c, json_array_get(eps, i), path, family, &s->eps[s->n_eps++])) < 0)
            return rc;
    }
    return 0;
}
