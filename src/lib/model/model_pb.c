/*
 * model_pb.c - istio.workload.Address (protobuf-c) -> struct workload or
 * struct service.
 *
 * protobuf-c checks the wire format; this file checks meaning and caps and
 * copies what the model keeps. Fields the model does not hold yet (capacity, load balancing,
 * application tunnel, extensions) are ignored.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model_pb.h"
#include "pbcheck/pbcheck.h"
#include "workload.pb-c.h"

struct dec {
    char *err;
    size_t errlen;
    char what[160]; /* "workload <uid>" or "service <ns>/<hostname>", for messages */
};

static int fail(struct dec *d, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(struct dec *d, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(d->err, d->errlen, "%s: %s", d->what, msg);
    return rc;
}

/* Names the object in later messages; long names are cut, the message stays readable. */
static void
set_what(struct dec *d, const char *kind, const char *a, const char *b)
{
    snprintf(d->what, sizeof(d->what), "%s %.*s%s%.*s", kind, 64, a, b ? "/" : "", 64, b ? b : "");
}

static int
check_len(struct dec *d, const char *s, const char *field)
{
    size_t n = strlen(s);
    if (n > MODEL_PB_MAX_STRING)
        return fail(d, -MESH_ELIMIT, "%s: %zu bytes, more than %d", field, n, MODEL_PB_MAX_STRING);
    return 0;
}

/* An optional string: unset and "" both become NULL, as in the local config. */
static int
opt_str(struct dec *d, const char *s, const char *field, char **out)
{
    int rc;
    if (s == NULL || s[0] == '\0')
        return 0;
    if ((rc = check_len(d, s, field)) < 0)
        return rc;
    *out = xstrdup(s);
    return 0;
}

static int
req_str(struct dec *d, const char *s, const char *field, char **out)
{
    if (s == NULL || s[0] == '\0')
        return fail(d, -MESH_EPROTO, "%s is required", field);
    return opt_str(d, s, field, out);
}

static int
check_count(struct dec *d, size_t n, size_t max, const char *field)
{
    if (n > max)
        return fail(d, -MESH_ELIMIT, "%s: %zu entries, more than %zu", field, n, max);
    return 0;
}

/* Entry |i| of list |field|, or the single field when |i| is NO_INDEX. */
#define NO_INDEX SIZE_MAX

static int
ip_bytes(struct dec *d, const ProtobufCBinaryData *b, const char *field, size_t i,
         struct ipaddr *ip)
{
    char at[24] = "";
    if (ipaddr_from_bytes(b->data, b->len, ip) == 0)
        return 0;
    if (i != NO_INDEX)
        snprintf(at, sizeof(at), "[%zu]", i);
    return fail(d, -MESH_EPROTO, "%s%s: %zu bytes, not an IPv4 (4) or IPv6 (16) address", field, at,
                b->len);
}

static int
str_list(struct dec *d, char *const *v, size_t n, const char *field, char ***out, size_t *n_out)
{
    int rc;
    if ((rc = check_count(d, n, MODEL_PB_MAX_LIST, field)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = check_len(d, v[i], field)) < 0)
            return rc;
    if (n == 0)
        return 0;
    *out = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        (*out)[i] = xstrdup(v[i]);
    *n_out = n;
    return 0;
}

static int
port_list(struct dec *d, Istio__Workload__Port *const *ps, size_t n, const char *field,
          struct port_map **out, size_t *n_out)
{
    int rc;
    if ((rc = check_count(d, n, MODEL_PB_MAX_PORTS, field)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (ps[i]->service_port == 0 || ps[i]->service_port > 65535)
            return fail(d, -MESH_EPROTO, "%s[%zu]: service port %u is not 1-65535", field, i,
                        ps[i]->service_port);
        if (ps[i]->target_port > 65535)
            return fail(d, -MESH_EPROTO, "%s[%zu]: target port %u is not 0-65535", field, i,
                        ps[i]->target_port);
    }
    if (n == 0)
        return 0;
    *out = xcalloc(n, sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        (*out)[i].service_port = (uint16_t)ps[i]->service_port;
        (*out)[i].target_port = (uint16_t)ps[i]->target_port;
    }
    *n_out = n;
    return 0;
}

static int
gateway(struct dec *d, const Istio__Workload__GatewayAddress *pb, const char *field,
        struct gateway_addr **out)
{
    struct gateway_addr *g;
    char sub[64];
    int rc = 0;

    if (pb == NULL)
        return 0;
    if (pb->hbone_mtls_port > 65535)
        return fail(d, -MESH_EPROTO, "%s: hbone_mtls_port %u is not 0-65535", field,
                    pb->hbone_mtls_port);
    g = xcalloc(1, sizeof(*g));
    g->hbone_mtls_port = (uint16_t)pb->hbone_mtls_port;
    snprintf(sub, sizeof(sub), "%s hostname", field);
    switch (pb->destination_case) {
    case ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME:
        if ((rc = req_str(d, pb->hostname->hostname, sub, &g->hostname)) == 0)
            rc = opt_str(d, pb->hostname->namespace_, sub, &g->ns);
        break;
    case ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_ADDRESS:
        if ((rc = ip_bytes(d, &pb->address->address, field, NO_INDEX, &g->ip)) == 0)
            rc = opt_str(d, pb->address->network, field, &g->network);
        break;
    default:
        rc = fail(d, -MESH_EPROTO, "%s: neither hostname nor address", field);
        break;
    }
    if (rc < 0) {
        gateway_addr_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* Workload.services; a key given twice keeps the last port list (protobuf map semantics). */
static int
workload_services(struct dec *d, const Istio__Workload__Workload *pb, struct workload *w)
{
    int rc;

    if ((rc = check_count(d, pb->n_services, MODEL_PB_MAX_SERVICES, "services")) < 0)
        return rc;
    if (pb->n_services == 0)
        return 0;
    w->services = xcalloc(pb->n_services, sizeof(*w->services));
    for (size_t i = 0; i < pb->n_services; i++) {
        const Istio__Workload__Workload__ServicesEntry *e = pb->services[i];
        const char *key = e->key ? e->key : "";
        if ((rc = check_len(d, key, "services key")) < 0)
            return rc;
        const char *slash = strchr(key, '/');
        if (slash == NULL || slash == key || slash[1] == '\0')
            return fail(d, -MESH_EPROTO, "services: key \"%s\" is not \"<namespace>/<hostname>\"",
                        key);
        struct workload_svc *ws = NULL;
        for (size_t j = 0; j < w->n_services; j++)
            if (strcmp(w->services[j].key, key) == 0)
                ws = &w->services[j];
        if (ws == NULL) {
            ws = &w->services[w->n_services++];
            ws->key = xstrdup(key);
        }
        free(ws->ports);
        ws->ports = NULL;
        ws->n_ports = 0;
        if (e->value != NULL && (rc = port_list(d, e->value->ports, e->value->n_ports,
                                                "services ports", &ws->ports, &ws->n_ports)) < 0)
            return rc;
    }
    return 0;
}

static int
workload_enums(struct dec *d, const Istio__Workload__Workload *pb, struct workload *w)
{
    switch ((int)pb->tunnel_protocol) {
    case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE:
        w->tunnel = TUNNEL_NONE;
        break;
    case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE:
        w->tunnel = TUNNEL_HBONE;
        break;
    case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__LEGACY_ISTIO_MTLS:
        /* ztunnel cannot originate Istio's sidecar mTLS either; plain TCP would downgrade it. */
        return fail(d, -MESH_EPROTO, "tunnel_protocol LEGACY_ISTIO_MTLS is not supported");
    default:
        return fail(d, -MESH_EPROTO, "unknown tunnel_protocol %d", (int)pb->tunnel_protocol);
    }
    switch ((int)pb->status) {
    case ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY:
        w->status = WORKLOAD_HEALTHY;
        break;
    case ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY:
        w->status = WORKLOAD_UNHEALTHY;
        break;
    default:
        return fail(d, -MESH_EPROTO, "unknown status %d", (int)pb->status);
    }
    switch ((int)pb->network_mode) {
    case ISTIO__WORKLOAD__NETWORK_MODE__STANDARD:
        w->network_mode = NETWORK_MODE_STANDARD;
        break;
    case ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK:
        w->network_mode = NETWORK_MODE_HOST;
        break;
    default:
        return fail(d, -MESH_EPROTO, "unknown network_mode %d", (int)pb->network_mode);
    }
    return 0;
}

/* An optional string named alike in the message and the model; sets |rc|. */
#define OPT(f) ((rc = opt_str(d, pb->f, #f, &w->f)) < 0)

static int
workload_fields(struct dec *d, const Istio__Workload__Workload *pb, struct workload *w)
{
    int rc;

    if ((rc = req_str(d, pb->name, "name", &w->name)) < 0 ||
        (rc = req_str(d, pb->namespace_, "namespace", &w->ns)) < 0)
        return rc;
    if (OPT(hostname) || OPT(network) || OPT(trust_domain) || OPT(service_account) || OPT(node) ||
        OPT(canonical_name) || OPT(canonical_revision) || OPT(workload_name) || OPT(cluster_id))
        return rc;
    if (pb->locality != NULL &&
        ((rc = opt_str(d, pb->locality->region, "locality.region", &w->locality[0])) < 0 ||
         (rc = opt_str(d, pb->locality->zone, "locality.zone", &w->locality[1])) < 0 ||
         (rc = opt_str(d, pb->locality->subzone, "locality.subzone", &w->locality[2])) < 0))
        return rc;
    if ((rc = check_count(d, pb->n_addresses, MODEL_PB_MAX_ADDRS, "addresses")) < 0)
        return rc;
    if (pb->n_addresses > 0) {
        w->addrs = xcalloc(pb->n_addresses, sizeof(*w->addrs));
        for (size_t i = 0; i < pb->n_addresses; i++)
            if ((rc = ip_bytes(d, &pb->addresses[i], "addresses", i, &w->addrs[i])) < 0)
                return rc;
        w->n_addrs = pb->n_addresses;
    }
    if ((rc = workload_enums(d, pb, w)) < 0 ||
        (rc = gateway(d, pb->waypoint, "waypoint", &w->waypoint)) < 0 ||
        (rc = gateway(d, pb->network_gateway, "network_gateway", &w->network_gateway)) < 0 ||
        (rc = workload_services(d, pb, w)) < 0 ||
        (rc = str_list(d, pb->authorization_policies, pb->n_authorization_policies,
                       "authorization_policies", &w->authz_policies, &w->n_authz_policies)) < 0)
        return rc;
    w->native_tunnel = pb->native_tunnel;
    return 0;
}

static int
decode_workload(struct dec *d, const Istio__Workload__Workload *pb, struct workload **out)
{
    int rc;

    set_what(d, "workload", "", NULL);
    if (pb->uid == NULL || pb->uid[0] == '\0')
        return fail(d, -MESH_EPROTO, "uid is required");
    set_what(d, "workload", pb->uid, NULL);
    if ((rc = check_len(d, pb->uid, "uid")) < 0)
        return rc;
    struct workload *w = xcalloc(1, sizeof(*w));
    w->uid = xstrdup(pb->uid);
    if ((rc = workload_fields(d, pb, w)) < 0) {
        workload_unref(w);
        return rc;
    }
    workload_derive(w);
    *out = w;
    return 0;
}

static int
service_vips(struct dec *d, const Istio__Workload__Service *pb, struct service *s)
{
    int rc;

    if ((rc = check_count(d, pb->n_addresses, MODEL_PB_MAX_ADDRS, "addresses")) < 0)
        return rc;
    if (pb->n_addresses == 0)
        return 0;
    s->vips = xcalloc(pb->n_addresses, sizeof(*s->vips));
    for (size_t i = 0; i < pb->n_addresses; i++) {
        const Istio__Workload__NetworkAddress *a = pb->addresses[i];
        struct ipaddr ip;
        if ((rc = ip_bytes(d, &a->address, "addresses", i, &ip)) < 0)
            return rc;
        if (a->has_length_case == ISTIO__WORKLOAD__NETWORK_ADDRESS__HAS_LENGTH_LENGTH) {
            uint32_t bits = (uint32_t)ipaddr_len(&ip) * 8;
            if (a->length > bits)
                return fail(d, -MESH_EPROTO, "addresses[%zu]: prefix length %u exceeds %u", i,
                            a->length, bits);
            /* A CIDR VIP matches a range; the model only looks up exact VIPs. */
            if (a->length < bits)
                continue;
        }
        s->vips[s->n_vips++] = ip;
    }
    return 0;
}

static int
decode_service(struct dec *d, const Istio__Workload__Service *pb, struct service **out)
{
    int rc;

    set_what(d, "service", pb->namespace_ ? pb->namespace_ : "", pb->hostname ? pb->hostname : "");
    struct service *s = xcalloc(1, sizeof(*s));
    if ((rc = req_str(d, pb->namespace_, "namespace", &s->ns)) < 0 ||
        (rc = req_str(d, pb->hostname, "hostname", &s->hostname)) < 0 ||
        (rc = opt_str(d, pb->name, "name", &s->name)) < 0 || (rc = service_vips(d, pb, s)) < 0 ||
        (rc = port_list(d, pb->ports, pb->n_ports, "ports", &s->ports, &s->n_ports)) < 0 ||
        (rc = str_list(d, pb->subject_alt_names, pb->n_subject_alt_names, "subject_alt_names",
                       &s->sans, &s->n_sans)) < 0 ||
        (rc = gateway(d, pb->waypoint, "waypoint", &s->waypoint)) < 0) {
        service_unref(s);
        return rc;
    }
    if (s->name == NULL)
        s->name = xstrdup(s->hostname); /* as the local config does */
    s->canonical = pb->canonical;
    service_derive(s);
    *out = s;
    return 0;
}

int
model_pb_decode_address(const uint8_t *data, size_t len, struct model_address *out, char *err,
                        size_t errlen)
{
    struct dec d = {.err = err, .errlen = errlen, .what = "address"};
    char why[PB_ERR_MAX];
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > MODEL_PB_MAX_BYTES)
        return fail(&d, -MESH_ELIMIT, "%zu bytes, more than %d", len, MODEL_PB_MAX_BYTES);
    Istio__Workload__Address *msg = pb_unpack_checked(&istio__workload__address__descriptor, data,
                                                      len, MODEL_PB_MAX_BYTES, why, sizeof(why));
    if (msg == NULL)
        return fail(&d, -MESH_EPROTO, "not a valid istio.workload.Address message: %s", why);
    switch (msg->type_case) {
    case ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD:
        rc = decode_workload(&d, msg->workload, &out->workload);
        break;
    case ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE:
        rc = decode_service(&d, msg->service, &out->service);
        break;
    default:
        rc = fail(&d, -MESH_EPROTO, "neither a workload nor a service");
        break;
    }
    istio__workload__address__free_unpacked(msg, NULL);
    return rc;
}

void
model_address_release(struct model_address *a)
{
    workload_unref(a->workload);
    service_unref(a->service);
    a->workload = NULL;
    a->service = NULL;
}
