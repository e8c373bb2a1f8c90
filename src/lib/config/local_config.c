/*
 * local_config.c - reads ztunnel's local-mode YAML (workloads, services,
 * policies) into a model.
 *
 * Keys are the proto3 JSON names of Istio's workload API (camelCase; the
 * proto's snake_case names are accepted too), IPs are text. Istio ztunnel's
 * own local-config spelling (its serde names, as in its
 * examples/localhost.yaml) is accepted as well, so such a file loads
 * unchanged: workloadIps for addresses, protocol TCP|HBONE for
 * tunnelProtocol NONE|HBONE, vips ("network/ip") for a service's addresses,
 * and ports as a {servicePort: targetPort} map wherever a port list goes.
 * Every error names the file, the line and the reason; unknown keys are
 * errors so that typos do not silently weaken the configuration.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "base/base.h"
#include "config/local_config.h"

struct ctx {
    yaml_document_t doc;
    const char *name;
    char *err;
    size_t errlen;
    size_t n_items; /* caps total work, whatever aliases do */
};

static int
fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%lu: %s", c->name, n ? (unsigned long)n->start_mark.line + 1 : 0,
             msg);
    return -MESH_ECONFIG;
}

static yaml_node_t *
node(struct ctx *c, int id)
{
    return yaml_document_get_node(&c->doc, id);
}

static bool
key_is(const char *k, const char *camel, const char *snake)
{
    return strcmp(k, camel) == 0 || (snake != NULL && strcmp(k, snake) == 0);
}

static int
scalar(struct ctx *c, yaml_node_t *n, const char *what, const char **out)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "%s: expected a string", what);
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
        return fail(c, n, "%s: contains a NUL byte", what);
    if (n->data.scalar.length > CONFIG_MAX_STRING)
        return fail(c, n, "%s: longer than %d bytes", what, CONFIG_MAX_STRING);
    *out = (const char *)n->data.scalar.value;
    return 0;
}

static int
str_field(struct ctx *c, yaml_node_t *n, const char *what, char **out)
{
    const char *s = NULL;
    int rc = scalar(c, n, what, &s);
    if (rc < 0)
        return rc;
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    *out = xstrdup(s);
    return 0;
}

static int
u16_field(struct ctx *c, yaml_node_t *n, const char *what, bool allow_zero, uint16_t *out)
{
    const char *s = NULL;
    char *end;
    int rc = scalar(c, n, what, &s);
    if (rc < 0)
        return rc;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v > 65535 || (!allow_zero && v == 0) ||
        *s == '-' || *s == '+')
        return fail(c, n, "%s: \"%s\" is not a port number (1-65535)", what, s);
    *out = (uint16_t)v;
    return 0;
}

static int
ip_field(struct ctx *c, yaml_node_t *n, const char *what, struct ipaddr *ip)
{
    const char *s = NULL;
    int rc = scalar(c, n, what, &s);
    if (rc < 0)
        return rc;
    /* Accept "network/IP" as ztunnel's VIP notation does; the network is not used yet. */
    const char *slash = strrchr(s, '/');
    if (ipaddr_parse(slash ? slash + 1 : s, ip) < 0)
        return fail(c, n, "%s: \"%s\" is not an IP address", what, s);
    return 0;
}

static int
seq(struct ctx *c, yaml_node_t *n, const char *what, size_t max, yaml_node_item_t **items,
    size_t *count)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "%s: expected a list", what);
    *items = n->data.sequence.items.start;
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (*count > max)
        return fail(c, n, "%s: more than %zu entries", what, max);
    c->n_items += *count;
    if (c->n_items > CONFIG_MAX_ITEMS)
        return fail(c, n, "more than %d items in the file", CONFIG_MAX_ITEMS);
    return 0;
}

static int
ip_list(struct ctx *c, yaml_node_t *n, const char *what, struct ipaddr **out, size_t *n_out)
{
    yaml_node_item_t *items;
    size_t count;
    int rc = seq(c, n, what, CONFIG_MAX_ADDRS, &items, &count);
    if (rc < 0)
        return rc;
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    *out = xcalloc(count, sizeof(**out));
    *n_out = count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *e = node(c, items[i]);
        if (e->type == YAML_MAPPING_NODE) {
            /* NetworkAddress {network, address} */
            bool found = false;
            for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top;
                 p++) {
                const char *k = NULL;
                if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
                    return rc;
                if (strcmp(k, "address") == 0) {
                    if ((rc = ip_field(c, node(c, p->value), what, &(*out)[i])) < 0)
                        return rc;
                    found = true;
                } else if (strcmp(k, "network") != 0) {
                    return fail(c, node(c, p->key), "%s: unknown field \"%s\"", what, k);
                }
            }
            if (!found)
                return fail(c, e, "%s: entry without \"address\"", what);
        } else if ((rc = ip_field(c, e, what, &(*out)[i])) < 0) {
            return rc;
        }
    }
    return 0;
}

static int
str_list(struct ctx *c, yaml_node_t *n, const char *what, char ***out, size_t *n_out)
{
    yaml_node_item_t *items;
    size_t count;
    int rc = seq(c, n, what, CONFIG_MAX_LIST, &items, &count);
    if (rc < 0)
        return rc;
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    *out = xcalloc(count, sizeof(char *));
    for (size_t i = 0; i < count; i++) {
        const char *s;
        if ((rc = scalar(c, node(c, items[i]), what, &s)) < 0)
            return rc;
        (*out)[i] = xstrdup(s);
        *n_out = i + 1;
    }
    return 0;
}

/* A list of Port {servicePort, targetPort, appProtocol}. */
static int
port_list(struct ctx *c, yaml_node_t *n, const char *what, struct port_map **out, size_t *n_out)
{
    yaml_node_item_t *items;
    size_t count;
    int rc = seq(c, n, what, CONFIG_MAX_LIST, &items, &count);
    if (rc < 0)
        return rc;
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    *out = xcalloc(count, sizeof(**out));
    *n_out = count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *e = node(c, items[i]);
        bool have_sp = false;
        if (e->type != YAML_MAPPING_NODE)
            return fail(c, e, "%s: expected a mapping with servicePort and targetPort", what);
        for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top;
             p++) {
            const char *k = NULL;
            yaml_node_t *v = node(c, p->value);
            if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
                return rc;
            if (key_is(k, "servicePort", "service_port")) {
                rc = u16_field(c, v, "servicePort", false, &(*out)[i].service_port);
                have_sp = true;
            } else if (key_is(k, "targetPort", "target_port")) {
                rc = u16_field(c, v, "targetPort", true, &(*out)[i].target_port);
            } else if (key_is(k, "appProtocol", "app_protocol")) {
                const char *s;
                rc = scalar(c, v, "appProtocol", &s);
            } else {
                rc = fail(c, node(c, p->key), "%s: unknown field \"%s\"", what, k);
            }
            if (rc < 0)
                return rc;
        }
        if (!have_sp)
            return fail(c, e, "%s: entry without servicePort", what);
    }
    return 0;
}

/* Istio ztunnel's spelling of a port list: a map {servicePort: targetPort, ...}. */
static int
port_map(struct ctx *c, yaml_node_t *n, const char *what, struct port_map **out, size_t *n_out)
{
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start), i = 0;
    int rc;

    if (count > CONFIG_MAX_LIST)
        return fail(c, n, "%s: more than %d entries", what, CONFIG_MAX_LIST);
    c->n_items += count;
    if (c->n_items > CONFIG_MAX_ITEMS)
        return fail(c, n, "more than %d items in the file", CONFIG_MAX_ITEMS);
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    *out = xcalloc(count, sizeof(**out));
    *n_out = count;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
         p++, i++) {
        if ((rc = u16_field(c, node(c, p->key), what, false, &(*out)[i].service_port)) < 0 ||
            (rc = u16_field(c, node(c, p->value), "targetPort", true, &(*out)[i].target_port)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if ((*out)[j].service_port == (*out)[i].service_port)
                return fail(c, node(c, p->key), "%s: port %u given twice", what,
                            (*out)[i].service_port);
    }
    return 0;
}

/* Ports in either spelling: our list of Port, or Istio ztunnel's map. */
static int
ports_field(struct ctx *c, yaml_node_t *n, const char *what, struct port_map **out, size_t *n_out)
{
    if (n->type == YAML_MAPPING_NODE)
        return port_map(c, n, what, out, n_out);
    return port_list(c, n, what, out, n_out);
}

/* Does mapping |n| have key |key|? */
static bool
has_key(struct ctx *c, yaml_node_t *n, const char *key)
{
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(c, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return true;
    }
    return false;
}

/*
 * Workload.services: map "<ns>/<hostname>" -> PortList {ports: [...]}, a bare
 * list of Port, or (Istio ztunnel's spelling) a {servicePort: targetPort} map.
 */
static int
workload_services(struct ctx *c, yaml_node_t *n, struct workload *w)
{
    int rc;

    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "services: expected a mapping of \"<namespace>/<hostname>\" to ports");
    if (w->services != NULL)
        return fail(c, n, "services: given twice");
    size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (count > CONFIG_MAX_LIST)
        return fail(c, n, "services: more than %d entries", CONFIG_MAX_LIST);
    w->services = xcalloc(count, sizeof(*w->services));
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        struct workload_svc *ws = &w->services[w->n_services];
        const char *k = NULL;
        yaml_node_t *v = node(c, p->value);
        if ((rc = scalar(c, node(c, p->key), "services key", &k)) < 0)
            return rc;
        if (strchr(k, '/') == NULL)
            return fail(c, node(c, p->key), "services: key \"%s\" is not \"<namespace>/<hostname>\"",
                        k);
        ws->key = xstrdup(k);
        w->n_services++;
        if (v->type == YAML_MAPPING_NODE && !has_key(c, v, "ports")) {
            if ((rc = port_map(c, v, "services.ports", &ws->ports, &ws->n_ports)) < 0)
                return rc;
        } else if (v->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                const char *kk = NULL;
                if ((rc = scalar(c, node(c, q->key), "key", &kk)) < 0)
                    return rc;
                if (strcmp(kk, "ports") != 0)
                    return fail(c, node(c, q->key), "services: unknown field \"%s\"", kk);
                if ((rc = port_list(c, node(c, q->value), "services.ports", &ws->ports,
                                    &ws->n_ports)) < 0)
                    return rc;
            }
        } else if ((rc = port_list(c, v, "services.ports", &ws->ports, &ws->n_ports)) < 0) {
            return rc;
        }
    }
    return 0;
}

static int
enum_field(struct ctx *c, yaml_node_t *n, const char *what, const char *const *names, size_t count,
           int *out)
{
    const char *s = NULL;
    int rc = scalar(c, n, what, &s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    return fail(c, n, "%s: unknown value \"%s\"", what, s);
}

/*
 * A GatewayAddress in proto3 JSON: {hostname: {namespace, hostname}} or {address: {network,
 * address}} (the address as an IP string, not base64), and hboneMtlsPort (default 15008).
 */
static int
gateway_field(struct ctx *c, yaml_node_t *n, const char *what, struct gateway_addr **out)
{
    int rc = 0;
    bool have_ip = false;

    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "%s: expected a mapping", what);
    if (*out != NULL)
        return fail(c, n, "%s: given twice", what);
    struct gateway_addr *g = xcalloc(1, sizeof(*g));
    g->hbone_mtls_port = 15008;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top && rc == 0;
         p++) {
        const char *k = NULL;
        yaml_node_t *v = node(c, p->value);
        if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
            break;
        if (key_is(k, "hboneMtlsPort", "hbone_mtls_port")) {
            rc = u16_field(c, v, "hboneMtlsPort", false, &g->hbone_mtls_port);
        } else if (key_is(k, "hostname", NULL) || key_is(k, "address", NULL)) {
            bool host = key_is(k, "hostname", NULL);
            if (v->type != YAML_MAPPING_NODE) {
                rc = fail(c, v, "%s.%s: expected a mapping", what, k);
                break;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
                 q < v->data.mapping.pairs.top && rc == 0; q++) {
                const char *kk = NULL;
                yaml_node_t *vv = node(c, q->value);
                if ((rc = scalar(c, node(c, q->key), "key", &kk)) < 0)
                    break;
                if (host && key_is(kk, "namespace", NULL))
                    rc = str_field(c, vv, "namespace", &g->ns);
                else if (host && key_is(kk, "hostname", NULL))
                    rc = str_field(c, vv, "hostname", &g->hostname);
                else if (!host && key_is(kk, "network", NULL))
                    rc = str_field(c, vv, "network", &g->network);
                else if (!host && key_is(kk, "address", NULL)) {
                    rc = ip_field(c, vv, "address", &g->ip);
                    have_ip = true;
                } else
                    rc = fail(c, node(c, q->key), "%s.%s: unknown field \"%s\"", what, k, kk);
            }
        } else {
            rc = fail(c, node(c, p->key), "%s: unknown field \"%s\"", what, k);
        }
    }
    if (rc == 0 && (g->hostname == NULL) == !have_ip)
        rc = fail(c, n, "%s: exactly one of \"hostname\" and \"address\" is required", what);
    if (rc == 0 && g->hostname != NULL && g->ns == NULL)
        rc = fail(c, n, "%s: hostname.namespace is required", what);
    if (rc < 0) {
        gateway_addr_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* Fields we accept for compatibility but do not act on yet. */
static bool
ignored_workload_key(const char *k)
{
    static const char *const keys[] = {"networkGateway", "network_gateway",
                                       "nativeTunnel",      "native_tunnel",  "applicationTunnel",
                                       "application_tunnel", "locality",      "networkMode",
                                       "network_mode",      "extensions",     "capacity",
                                       "workloadType",      "workload_type"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

static int
parse_workload(struct ctx *c, yaml_node_t *n, struct workload *w)
{
    /* TCP is Istio ztunnel's name for NONE (its InboundProtocol). */
    static const char *const tunnels[] = {"NONE", "HBONE", "TCP"};
    static const char *const statuses[] = {"HEALTHY", "UNHEALTHY"};
    bool have_tunnel = false;
    int rc = 0;

    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "workloads: each entry must be a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = NULL;
        yaml_node_t *v = node(c, p->value);
        if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
            return rc;
        if (key_is(k, "uid", NULL))
            rc = str_field(c, v, "uid", &w->uid);
        else if (key_is(k, "name", NULL))
            rc = str_field(c, v, "name", &w->name);
        else if (key_is(k, "namespace", NULL))
            rc = str_field(c, v, "namespace", &w->ns);
        else if (key_is(k, "serviceAccount", "service_account"))
            rc = str_field(c, v, "serviceAccount", &w->service_account);
        else if (key_is(k, "trustDomain", "trust_domain"))
            rc = str_field(c, v, "trustDomain", &w->trust_domain);
        else if (key_is(k, "node", NULL))
            rc = str_field(c, v, "node", &w->node);
        else if (key_is(k, "network", NULL))
            rc = str_field(c, v, "network", &w->network);
        else if (key_is(k, "hostname", NULL))
            rc = str_field(c, v, "hostname", &w->hostname);
        else if (key_is(k, "canonicalName", "canonical_name"))
            rc = str_field(c, v, "canonicalName", &w->canonical_name);
        else if (key_is(k, "canonicalRevision", "canonical_revision"))
            rc = str_field(c, v, "canonicalRevision", &w->canonical_revision);
        else if (key_is(k, "workloadName", "workload_name"))
            rc = str_field(c, v, "workloadName", &w->workload_name);
        else if (key_is(k, "clusterId", "cluster_id"))
            rc = str_field(c, v, "clusterId", &w->cluster_id);
        else if (key_is(k, "addresses", NULL) || key_is(k, "workloadIps", "workload_ips"))
            rc = ip_list(c, v, k, &w->addrs, &w->n_addrs);
        else if (key_is(k, "tunnelProtocol", "tunnel_protocol") || key_is(k, "protocol", NULL)) {
            int t = 0;
            if (have_tunnel)
                rc = fail(c, v, "%s: given twice", k);
            else
                rc = enum_field(c, v, k, tunnels, ARRAY_LEN(tunnels), &t);
            have_tunnel = true;
            w->tunnel = t == 1 ? TUNNEL_HBONE : TUNNEL_NONE;
        } else if (key_is(k, "status", NULL)) {
            int st;
            rc = enum_field(c, v, "status", statuses, ARRAY_LEN(statuses), &st);
            w->status = (enum workload_status)st;
        } else if (key_is(k, "services", NULL))
            rc = workload_services(c, v, w);
        else if (key_is(k, "authorizationPolicies", "authorization_policies"))
            rc = str_list(c, v, "authorizationPolicies", &w->authz_policies,
                          &w->n_authz_policies);
        else if (key_is(k, "waypoint", NULL))
            rc = gateway_field(c, v, "waypoint", &w->waypoint);
        else if (!ignored_workload_key(k))
            rc = fail(c, node(c, p->key), "workload: unknown field \"%s\"", k);
        if (rc < 0)
            return rc;
    }
    if (w->uid == NULL || w->uid[0] == '\0')
        return fail(c, n, "workload: \"uid\" is required");
    if (w->name == NULL || w->ns == NULL)
        return fail(c, n, "workload %s: \"name\" and \"namespace\" are required", w->uid);
    if (w->n_addrs == 0 && w->hostname == NULL)
        return fail(c, n, "workload %s: \"addresses\" or \"hostname\" is required", w->uid);
    return 0;
}

static bool
ignored_service_key(const char *k)
{
    static const char *const keys[] = {"loadBalancing",     "load_balancing",
                                       "ipFamilies",  "ip_families",       "extensions",
                                       "canonical",   "ingressUseWaypoint", "ingress_use_waypoint",
                                       "weightedWaypoints", "weighted_waypoints", "visibility",
                                       "loadBalancer" /* Istio ztunnel's name for loadBalancing */};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/*
 * Istio ztunnel's Service.endpoints: its local client fills them from each
 * workload's services, as we do. An empty map is fine; entries would be
 * ignored, so they are refused rather than silently dropped.
 */
static int
no_endpoints(struct ctx *c, yaml_node_t *v)
{
    if ((v->type == YAML_MAPPING_NODE && v->data.mapping.pairs.top == v->data.mapping.pairs.start) ||
        (v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.top == v->data.sequence.items.start) ||
        (v->type == YAML_SCALAR_NODE && (strcmp((const char *)v->data.scalar.value, "") == 0 ||
                                         strcmp((const char *)v->data.scalar.value, "null") == 0 ||
                                         strcmp((const char *)v->data.scalar.value, "~") == 0)))
        return 0;
    return fail(c, v,
                "endpoints: not read from a local config; list the service under each "
                "endpoint workload's \"services\" instead");
}

static int
parse_service(struct ctx *c, yaml_node_t *n, struct service *s)
{
    int rc = 0;

    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, "services: each entry must be a mapping");
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = NULL;
        yaml_node_t *v = node(c, p->value);
        if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
            return rc;
        if (key_is(k, "name", NULL))
            rc = str_field(c, v, "name", &s->name);
        else if (key_is(k, "namespace", NULL))
            rc = str_field(c, v, "namespace", &s->ns);
        else if (key_is(k, "hostname", NULL))
            rc = str_field(c, v, "hostname", &s->hostname);
        else if (key_is(k, "addresses", NULL) || key_is(k, "vips", NULL))
            rc = ip_list(c, v, k, &s->vips, &s->n_vips);
        else if (key_is(k, "ports", NULL))
            rc = ports_field(c, v, "ports", &s->ports, &s->n_ports);
        else if (key_is(k, "endpoints", NULL))
            rc = no_endpoints(c, v);
        else if (key_is(k, "subjectAltNames", "subject_alt_names"))
            rc = str_list(c, v, "subjectAltNames", &s->sans, &s->n_sans);
        else if (key_is(k, "waypoint", NULL))
            rc = gateway_field(c, v, "waypoint", &s->waypoint);
        else if (!ignored_service_key(k))
            rc = fail(c, node(c, p->key), "service: unknown field \"%s\"", k);
        if (rc < 0)
            return rc;
    }
    if (s->hostname == NULL || s->ns == NULL)
        return fail(c, n, "service: \"hostname\" and \"namespace\" are required");
    if (s->name == NULL)
        s->name = xstrdup(s->hostname);
    return 0;
}

static int
parse_root(struct ctx *c, struct model *m)
{
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    int rc;

    if (root == NULL)
        return fail(c, NULL, "empty file");
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "expected a mapping with workloads, services and policies");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const char *k = NULL;
        yaml_node_t *v = node(c, p->value);
        yaml_node_item_t *items;
        size_t count;
        if ((rc = scalar(c, node(c, p->key), "key", &k)) < 0)
            return rc;
        if (strcmp(k, "workloads") == 0) {
            if ((rc = seq(c, v, "workloads", CONFIG_MAX_ITEMS, &items, &count)) < 0)
                return rc;
            for (size_t i = 0; i < count; i++) {
                struct workload *w = xcalloc(1, sizeof(*w));
                rc = parse_workload(c, node(c, items[i]), w);
                if (rc == 0 && model_workload_by_uid(m, w->uid) != NULL)
                    rc = fail(c, node(c, items[i]), "workload %s: duplicate uid", w->uid);
                if (rc < 0) {
                    workload_free(w);
                    return rc;
                }
                model_add_workload(m, w);
            }
        } else if (strcmp(k, "services") == 0) {
            if ((rc = seq(c, v, "services", CONFIG_MAX_ITEMS, &items, &count)) < 0)
                return rc;
            for (size_t i = 0; i < count; i++) {
                struct service *s = xcalloc(1, sizeof(*s));
                if ((rc = parse_service(c, node(c, items[i]), s)) < 0) {
                    service_free(s);
                    return rc;
                }
                model_add_service(m, s);
            }
        } else if (strcmp(k, "policies") == 0) {
            if ((rc = seq(c, v, "policies", CONFIG_MAX_ITEMS, &items, &count)) < 0)
                return rc;
            m->n_policies = count;
        } else if (strcmp(k, "routes") == 0 || strcmp(k, "waypointPolicies") == 0) {
            /* The waypoint's lists (local_waypoint.c); a list here, read there. */
            if ((rc = seq(c, v, k, CONFIG_MAX_ITEMS, &items, &count)) < 0)
                return rc;
        } else {
            return fail(c, node(c, p->key), "unknown top-level field \"%s\"", k);
        }
    }
    return 0;
}

int
local_config_parse(const char *data, size_t len, const char *name, struct model **out, char *err,
                   size_t errlen)
{
    yaml_parser_t parser;
    struct ctx c = {.name = name, .err = err, .errlen = errlen};
    int rc;

    *out = NULL;
    if (len > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", name, CONFIG_MAX_BYTES);
        return -MESH_ECONFIG;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &c.doc)) {
        snprintf(err, errlen, "%s:%lu: %s", name, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "YAML syntax error");
        yaml_parser_delete(&parser);
        return -MESH_ECONFIG;
    }
    struct model *m = model_new();
    rc = parse_root(&c, m);
    yaml_document_delete(&c.doc);
    yaml_parser_delete(&parser);
    if (rc < 0) {
        model_unref(m);
        return rc;
    }
    *out = m;
    return 0;
}

int
local_config_load(const char *path, struct model **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    *out = NULL;
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    if (fstat(fileno(f), &st) < 0 || st.st_size > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        fclose(f);
        return -MESH_ECONFIG;
    }
    char *data = xmalloc((size_t)st.st_size + 1);
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    int rc = local_config_parse(data, n, path, out, err, errlen);
    free(data);
    return rc;
}
