/*
 * k8s_service.c - the Service fields the conversion uses: selector, ports
 * (numeric or named targetPort, name and appProtocol for the protocol),
 * cluster IPs ("None" = headless), and what decides load balancing
 * (internalTrafficPolicy, trafficDistribution, publishNotReadyAddresses) and
 * IP families.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"
#include "workload.pb-c.h"

/*
 * amesh's own analyzer code (AM prefix, Istio's IST numbering style): Istio
 * has none for this, because the API server always fills spec.clusterIP.
 * Raw manifests read from files have no such server.
 */
#define CODE_NO_CLUSTER_IP "AM0001"

void
k8s_service_cleanup(struct k8s_service *s)
{
    free(s->traffic_distribution);
    k8s_kv_free(s->selector, s->n_selector);
    for (size_t i = 0; i < s->n_ports; i++) {
        free(s->ports[i].name);
        free(s->ports[i].target_name);
        free(s->ports[i].app_protocol);
    }
    free(s->ports);
    free(s->vips);
}

static int
target_port(struct k8s_dctx *c, const json_t *e, const char *path, struct k8s_sport *sp)
{
    const json_t *v = json_object_get(e, "targetPort");
    int line = k8s_key_line(c, e, "targetPort");
    char tpath[80];

    snprintf(tpath, sizeof(tpath), "%s.targetPort", path);
    if (v == NULL || json_is_null(v)) {
        sp->target_port = sp->port; /* the API server's default */
        return 0;
    }
    if (json_is_string(v)) {
        const char *name = json_string_value(v);
        if (!k8s_port_name(name))
            return k8s_fail(c, line,
                            "%s: \"%s\" is neither a port number nor a port name "
                            "(<= 15 characters of [a-z0-9-] with a letter)",
                            tpath, name);
        sp->target_name = xstrdup(name);
        sp->target_port = 0; /* resolved per pod */
        return 0;
    }
    return k8s_port_value(c, v, line, tpath, &sp->target_port);
}

static int
service_port(struct k8s_dctx *c, const json_t *e, const char *path, struct k8s_sport *sp)
{
    const char *name, *proto, *app;
    int rc;

    if (!json_is_object(e))
        return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
    if ((rc = k8s_get_str(c, e, "name", path, &name)) < 0 ||
        (rc = k8s_get_str(c, e, "protocol", path, &proto)) < 0 ||
        (rc = k8s_get_str(c, e, "appProtocol", path, &app)) < 0 ||
        (rc = k8s_get_port(c, e, "port", path, &sp->port)) < 0)
        return rc;
    if (sp->port == 0)
        return k8s_fail(c, k8s_val_line(c, e), "%s: port is missing", path);
    if (name != NULL && name[0] != '\0' && !k8s_dns_label(name, false))
        return k8s_fail(c, k8s_key_line(c, e, "name"), "%s: name \"%s\" is not a valid DNS label",
                        path, name);
    if (proto != NULL && strcmp(proto, "TCP") != 0 && strcmp(proto, "UDP") != 0 &&
        strcmp(proto, "SCTP") != 0)
        return k8s_fail(c, k8s_key_line(c, e, "protocol"),
                        "%s: protocol \"%s\" is not TCP, UDP or SCTP", path, proto);
    sp->name = xstrdup(name ? name : "");
    sp->udp = proto != NULL && strcmp(proto, "UDP") == 0;
    sp->app_protocol = app ? xstrdup(app) : NULL;
    return target_port(c, e, path, sp);
}

/* One clusterIP entry: an address, "None" (headless) or "" (unassigned). */
static int
cluster_ip(struct k8s_dctx *c, const char *s, int line, const char *path, struct k8s_service *svc)
{
    struct k8s_ip ip;

    if (s[0] == '\0' || strcmp(s, "None") == 0)
        return 0;
    if (k8s_parse_ip(s, &ip) < 0)
        return k8s_fail(c, line, "%s: \"%s\" is not an IP address or \"None\"", path, s);
    if (svc->n_vips >= K8S_MAX_IPS)
        return k8s_fail(c, line, "%s: more than %d addresses", path, K8S_MAX_IPS);
    svc->vips = xrealloc(svc->vips, (svc->n_vips + 1) * sizeof(*svc->vips));
    svc->vips[svc->n_vips++] = ip;
    return 0;
}

/* istiod getVIPs: spec.clusterIPs when given, else spec.clusterIP. */
static int
cluster_ips(struct k8s_dctx *c, const json_t *spec, struct k8s_service *s)
{
    const json_t *arr;
    const char *one;
    char path[48];
    int rc;

    if ((rc = k8s_get_arr(c, spec, "clusterIPs", "spec", K8S_MAX_IPS, &arr)) < 0 ||
        (rc = k8s_get_str(c, spec, "clusterIP", "spec", &one)) < 0)
        return rc;
    for (size_t i = 0; arr != NULL && i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        snprintf(path, sizeof(path), "spec.clusterIPs[%zu]", i);
        if (!json_is_string(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a string", path);
        if ((rc = cluster_ip(c, json_string_value(e), k8s_val_line(c, e), path, s)) < 0)
            return rc;
    }
    if (one != NULL && (arr == NULL || json_array_size(arr) == 0))
        return cluster_ip(c, one, k8s_key_line(c, spec, "clusterIP"), "spec.clusterIP", s);
    if (one != NULL) {
        /* Checked even when clusterIPs wins, so a typo there is not silently ignored. */
        struct k8s_ip ip;
        if (one[0] != '\0' && strcmp(one, "None") != 0 && k8s_parse_ip(one, &ip) < 0)
            return k8s_fail(c, k8s_key_line(c, spec, "clusterIP"),
                            "spec.clusterIP: \"%s\" is not an IP address or \"None\"", one);
    }
    return 0;
}

static int
ip_families(struct k8s_dctx *c, const json_t *spec, struct k8s_service *s)
{
    const json_t *arr;
    int rc;

    s->ip_families = ISTIO__WORKLOAD__IPFAMILIES__AUTOMATIC;
    if ((rc = k8s_get_arr(c, spec, "ipFamilies", "spec", 2, &arr)) < 0 || arr == NULL)
        return rc;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *f = json_string_value(e);
        if (f == NULL || (strcmp(f, "IPv4") != 0 && strcmp(f, "IPv6") != 0))
            return k8s_fail(c, k8s_val_line(c, e), "spec.ipFamilies[%zu]: expected IPv4 or IPv6",
                            i);
    }
    /* As istiod constructService: two families are dual stack, else the one given. */
    if (json_array_size(arr) == 2)
        s->ip_families = ISTIO__WORKLOAD__IPFAMILIES__DUAL;
    else if (json_array_size(arr) == 1)
        s->ip_families = strcmp(json_string_value(json_array_get(arr, 0)), "IPv4") == 0
                             ? ISTIO__WORKLOAD__IPFAMILIES__IPV4_ONLY
                             : ISTIO__WORKLOAD__IPFAMILIES__IPV6_ONLY;
    return 0;
}

/* spec.clusterIP or spec.clusterIPs[0] is "None": headless, no VIP on purpose. */
static bool
headless(const json_t *spec)
{
    const char *one = json_string_value(json_object_get(spec, "clusterIP"));
    const char *first = json_string_value(json_array_get(json_object_get(spec, "clusterIPs"), 0));
    return (one != NULL && strcmp(one, "None") == 0) || (first != NULL && strcmp(first, "None") == 0);
}

/*
 * A Service that would have a VIP in Kubernetes but has none here: the API
 * server allocates one when clusterIP is absent or "", a file read as is
 * has nobody to do that, so the Service is reachable only through its
 * endpoints' own addresses. Said, not guessed: meshd cannot pick an address
 * the cluster's DNS and kube-proxy would agree on. ExternalName and headless
 * Services have no VIP by design.
 */
static void
warn_no_vip(struct k8s_dctx *c, const json_t *json, const json_t *spec, const struct k8s_service *s)
{
    if (s->external_name || s->n_vips > 0 || headless(spec))
        return;
    k8s_diag_add(c->d, c->file, spec ? k8s_key_line(c, json, "spec") : c->line, K8S_WARNING,
                 CODE_NO_CLUSTER_IP,
                 "Service without spec.clusterIP: it gets no VIP, so clients can reach it only "
                 "by pod address (the Kubernetes API server would allocate one; meshctl apply "
                 "does). Give spec.clusterIP an address, or \"None\" for a headless Service");
}

int
k8s_decode_service(struct k8s_dctx *c, const json_t *json, struct k8s_service *s)
{
    const json_t *spec, *ports;
    const char *type, *itp, *td;
    char path[48];
    int rc;

    if ((rc = k8s_get_obj(c, json, "spec", "", &spec)) < 0)
        return rc;
    if (spec == NULL) {
        warn_no_vip(c, json, NULL, s);
        return 0;
    }
    if ((rc = k8s_get_str(c, spec, "type", "spec", &type)) < 0 ||
        (rc = k8s_get_str(c, spec, "internalTrafficPolicy", "spec", &itp)) < 0 ||
        (rc = k8s_get_str(c, spec, "trafficDistribution", "spec", &td)) < 0 ||
        (rc = k8s_get_bool(c, spec, "publishNotReadyAddresses", "spec", &s->publish_not_ready)) <
            0 ||
        (rc = k8s_get_strmap(c, spec, "selector", "spec", K8S_MAP_LABELS, &s->selector,
                             &s->n_selector)) < 0 ||
        (rc = k8s_get_arr(c, spec, "ports", "spec", K8S_MAX_PORTS, &ports)) < 0 ||
        (rc = cluster_ips(c, spec, s)) < 0 || (rc = ip_families(c, spec, s)) < 0)
        return rc;
    s->external_name = type != NULL && strcmp(type, "ExternalName") == 0;
    warn_no_vip(c, json, spec, s);
    s->itp_local = itp != NULL && strcmp(itp, "Local") == 0;
    s->traffic_distribution = td ? xstrdup(td) : NULL;
    if (ports == NULL)
        return 0;
    s->ports = xcalloc(json_array_size(ports) + 1, sizeof(*s->ports));
    for (size_t i = 0; i < json_array_size(ports); i++) {
        snprintf(path, sizeof(path), "spec.ports[%zu]", i);
        rc = service_port(c, json_array_get(ports, i), path, &s->ports[i]);
        s->n_ports = i + 1; /* so that cleanup frees a half-decoded entry too */
        if (rc < 0)
            return rc;
    }
    return 0;
}
