/*
 * model_json.c - workloads and services in the proto3 JSON names of Istio's workload API, as
 * the proxies' /config_dump shows them (meshctl reads them).
 */
#include <stdio.h>

#include <jansson.h>

#include "model/model.h"
#include "model/model_json.h"

static json_t *
ips_json(const struct ipaddr *ips, size_t n)
{
    json_t *a = json_array();
    char s[ADDR_STRLEN];
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(ipaddr_str(&ips[i], s)));
    return a;
}

static json_t *
ports_json(const struct port_map *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i, s:i}", "servicePort", p[i].service_port,
                                           "targetPort", p[i].target_port));
    return a;
}

static void
set_str(json_t *o, const char *k, const char *v)
{
    if (v != NULL)
        json_object_set_new(o, k, json_string(v));
}

/* Istio's GatewayAddress as ztunnel's dump shows it: "<ns>/<hostname>" or "<network>/<ip>". */
static json_t *
gateway_json(const struct gateway_addr *g)
{
    char ip[ADDR_STRLEN], dest[ADDR_STRLEN + 600];
    if (g->hostname != NULL)
        snprintf(dest, sizeof(dest), "%s/%s", g->ns ? g->ns : "", g->hostname);
    else
        snprintf(dest, sizeof(dest), "%s/%s", g->network ? g->network : "", ipaddr_str(&g->ip, ip));
    return json_pack("{s:s, s:i}", "destination", dest, "hboneMtlsPort", g->hbone_mtls_port);
}

json_t *
model_workload_json(const struct workload *w)
{
    json_t *o = json_object();
    set_str(o, "uid", w->uid);
    set_str(o, "name", w->name);
    set_str(o, "namespace", w->ns);
    json_object_set_new(o, "addresses", ips_json(w->addrs, w->n_addrs));
    set_str(o, "hostname", w->hostname);
    set_str(o, "network", w->network);
    set_str(o, "serviceAccount", w->service_account);
    set_str(o, "trustDomain", w->trust_domain);
    set_str(o, "node", w->node);
    set_str(o, "tunnelProtocol", w->tunnel == TUNNEL_HBONE ? "HBONE" : "NONE");
    set_str(o, "status", w->status == WORKLOAD_HEALTHY ? "Healthy" : "Unhealthy");
    set_str(o, "canonicalName", w->canonical_name);
    set_str(o, "canonicalRevision", w->canonical_revision);
    set_str(o, "workloadName", w->workload_name);
    set_str(o, "clusterId", w->cluster_id);
    json_t *svcs = json_object();
    for (size_t i = 0; i < w->n_services; i++)
        json_object_set_new(svcs, w->services[i].key,
                            json_pack("{s:o}", "ports",
                                      ports_json(w->services[i].ports, w->services[i].n_ports)));
    json_object_set_new(o, "services", svcs);
    json_t *pols = json_array();
    for (size_t i = 0; i < w->n_authz_policies; i++)
        json_array_append_new(pols, json_string(w->authz_policies[i]));
    json_object_set_new(o, "authorizationPolicies", pols);
    set_str(o, "identity", w->identity);
    if (w->waypoint != NULL)
        json_object_set_new(o, "waypoint", gateway_json(w->waypoint));
    if (w->network_gateway != NULL)
        json_object_set_new(o, "networkGateway", gateway_json(w->network_gateway));
    if (w->network_mode == NETWORK_MODE_HOST)
        set_str(o, "networkMode", "HostNetwork");
    if (w->locality[0] != NULL || w->locality[1] != NULL || w->locality[2] != NULL) {
        /* As ztunnel's dump: the three keys, "" for the unset ones. */
        static const char *const keys[3] = {"region", "zone", "subzone"};
        json_t *loc = json_object();
        for (size_t i = 0; i < 3; i++)
            json_object_set_new(loc, keys[i], json_string(w->locality[i] ? w->locality[i] : ""));
        json_object_set_new(o, "locality", loc);
    }
    if (w->native_tunnel)
        json_object_set_new(o, "nativeTunnel", json_true());
    return o;
}

json_t *
model_service_json(const struct service *s)
{
    json_t *o = json_object();
    set_str(o, "name", s->name);
    set_str(o, "namespace", s->ns);
    set_str(o, "hostname", s->hostname);
    json_object_set_new(o, "addresses", ips_json(s->vips, s->n_vips));
    json_object_set_new(o, "ports", ports_json(s->ports, s->n_ports));
    json_t *sans = json_array();
    for (size_t i = 0; i < s->n_sans; i++)
        json_array_append_new(sans, json_string(s->sans[i]));
    json_object_set_new(o, "subjectAltNames", sans);
    if (s->waypoint != NULL)
        json_object_set_new(o, "waypoint", gateway_json(s->waypoint));
    return o;
}

