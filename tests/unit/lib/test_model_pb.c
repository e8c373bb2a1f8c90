/*
 * test_model_pb.c - Address resources packed with protobuf-c and decoded into
 * the model; error cases; shared objects across rebuilt models; the store.
 *
 *   test_model_pb --write-corpus DIR   writes the fuzz_address seed corpus
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "model/model_pb.h"
#include "model/model_store.h"
#include "workload.pb-c.h"

static uint8_t ip4[4] = {10, 244, 1, 7};
static uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07};
static uint8_t vip4[4] = {10, 96, 0, 10};

/* A packed message: heap bytes and length. */
struct packed {
    uint8_t *data;
    size_t len;
};

static struct packed
pack_address(Istio__Workload__Workload *w, Istio__Workload__Service *s)
{
    Istio__Workload__Address a;
    struct packed p;

    istio__workload__address__init(&a);
    if (w != NULL) {
        a.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
        a.workload = w;
    } else if (s != NULL) {
        a.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE;
        a.service = s;
    }
    p.len = istio__workload__address__get_packed_size(&a);
    p.data = malloc(p.len + 1);
    istio__workload__address__pack(&a, p.data);
    return p;
}

/*
 * A workload with every field the model keeps. Storage is static: each test
 * builds it afresh with fill_workload() and may then break one field.
 */
struct wl_msg {
    Istio__Workload__Workload w;
    ProtobufCBinaryData addrs[2];
    Istio__Workload__GatewayAddress wp;
    Istio__Workload__NamespacedHostname wp_host;
    Istio__Workload__Workload__ServicesEntry e1, e2, *entries[2];
    Istio__Workload__PortList pl1, pl2;
    Istio__Workload__Port p1, p2, *pl1_ports[1], *pl2_ports[1];
    char *pols[2];
};

static void
fill_workload(struct wl_msg *m)
{
    memset(m, 0, sizeof(*m));
    istio__workload__workload__init(&m->w);
    m->w.uid = "Kubernetes//Pod/default/server-1";
    m->w.name = "server-1";
    m->w.namespace_ = "default";
    m->addrs[0] = (ProtobufCBinaryData){sizeof(ip4), ip4};
    m->addrs[1] = (ProtobufCBinaryData){sizeof(ip6), ip6};
    m->w.addresses = m->addrs;
    m->w.n_addresses = 2;
    m->w.tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
    m->w.service_account = "server";
    m->w.node = "node-1";
    m->w.network = "net-a";
    m->w.canonical_name = "server";
    m->w.canonical_revision = "v1";
    m->w.workload_name = "server";
    m->w.cluster_id = "Kubernetes";
    m->w.native_tunnel = 1;

    istio__workload__gateway_address__init(&m->wp);
    istio__workload__namespaced_hostname__init(&m->wp_host);
    m->wp_host.namespace_ = "default";
    m->wp_host.hostname = "waypoint.default.svc.cluster.local";
    m->wp.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME;
    m->wp.hostname = &m->wp_host;
    m->wp.hbone_mtls_port = 15008;
    m->w.waypoint = &m->wp;

    istio__workload__port__init(&m->p1);
    m->p1.service_port = 80;
    m->p1.target_port = 8080;
    istio__workload__port__init(&m->p2);
    m->p2.service_port = 443;
    m->p2.target_port = 8443;
    istio__workload__port_list__init(&m->pl1);
    m->pl1_ports[0] = &m->p1;
    m->pl1.ports = m->pl1_ports;
    m->pl1.n_ports = 1;
    istio__workload__port_list__init(&m->pl2);
    m->pl2_ports[0] = &m->p2;
    m->pl2.ports = m->pl2_ports;
    m->pl2.n_ports = 1;
    istio__workload__workload__services_entry__init(&m->e1);
    m->e1.key = "default/echo.default.svc.cluster.local";
    m->e1.value = &m->pl1;
    istio__workload__workload__services_entry__init(&m->e2);
    m->e2.key = "default/tls.default.svc.cluster.local";
    m->e2.value = &m->pl2;
    m->entries[0] = &m->e1;
    m->entries[1] = &m->e2;
    m->w.services = m->entries;
    m->w.n_services = 2;

    m->pols[0] = "default/allow-sleep";
    m->pols[1] = "default/deny-all";
    m->w.authorization_policies = m->pols;
    m->w.n_authorization_policies = 2;
}

struct svc_msg {
    Istio__Workload__Service s;
    Istio__Workload__NetworkAddress a4, a6, cidr, *addrs[3];
    Istio__Workload__Port p1, *ports[1];
    char *sans[1];
    Istio__Workload__GatewayAddress wp;
    Istio__Workload__NetworkAddress wp_addr;
};

static void
fill_service(struct svc_msg *m)
{
    memset(m, 0, sizeof(*m));
    istio__workload__service__init(&m->s);
    m->s.name = "echo";
    m->s.namespace_ = "default";
    m->s.hostname = "echo.default.svc.cluster.local";
    istio__workload__network_address__init(&m->a4);
    m->a4.address = (ProtobufCBinaryData){sizeof(vip4), vip4};
    istio__workload__network_address__init(&m->a6);
    m->a6.address = (ProtobufCBinaryData){sizeof(ip6), ip6};
    m->a6.has_length_case = ISTIO__WORKLOAD__NETWORK_ADDRESS__HAS_LENGTH_LENGTH;
    m->a6.length = 128;
    istio__workload__network_address__init(&m->cidr);
    m->cidr.address = (ProtobufCBinaryData){sizeof(ip4), ip4};
    m->cidr.has_length_case = ISTIO__WORKLOAD__NETWORK_ADDRESS__HAS_LENGTH_LENGTH;
    m->cidr.length = 16;
    m->addrs[0] = &m->a4;
    m->addrs[1] = &m->a6;
    m->addrs[2] = &m->cidr;
    m->s.addresses = m->addrs;
    m->s.n_addresses = 3;
    istio__workload__port__init(&m->p1);
    m->p1.service_port = 80;
    m->p1.target_port = 9090;
    m->ports[0] = &m->p1;
    m->s.ports = m->ports;
    m->s.n_ports = 1;
    m->sans[0] = "spiffe://cluster.local/ns/default/sa/echo";
    m->s.subject_alt_names = m->sans;
    m->s.n_subject_alt_names = 1;
    istio__workload__gateway_address__init(&m->wp);
    istio__workload__network_address__init(&m->wp_addr);
    m->wp_addr.address = (ProtobufCBinaryData){sizeof(ip4), ip4};
    m->wp_addr.network = "net-a";
    m->wp.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_ADDRESS;
    m->wp.address = &m->wp_addr;
    m->wp.hbone_mtls_port = 15008;
    m->s.waypoint = &m->wp;
    m->s.canonical = 1;
}

static int
decode(struct packed p, struct model_address *a, char *err, size_t errlen)
{
    int rc = model_pb_decode_address(p.data, p.len, a, err, errlen);
    free(p.data);
    return rc;
}

static void
test_workload(void **state)
{
    struct wl_msg m;
    struct model_address a;
    char err[256] = "", s[ADDR_STRLEN];
    (void)state;

    fill_workload(&m);
    assert_int_equal(decode(pack_address(&m.w, NULL), &a, err, sizeof(err)), 0);
    assert_null(a.service);
    const struct workload *w = a.workload;
    assert_non_null(w);
    assert_string_equal(w->uid, "Kubernetes//Pod/default/server-1");
    assert_string_equal(w->name, "server-1");
    assert_string_equal(w->ns, "default");
    assert_int_equal(w->n_addrs, 2);
    assert_string_equal(ipaddr_str(&w->addrs[0], s), "10.244.1.7");
    assert_string_equal(ipaddr_str(&w->addrs[1], s), "2001:db8::7");
    assert_int_equal(w->tunnel, TUNNEL_HBONE);
    assert_int_equal(w->status, WORKLOAD_HEALTHY);
    assert_string_equal(w->trust_domain, "cluster.local");
    assert_string_equal(w->identity, "spiffe://cluster.local/ns/default/sa/server");
    assert_string_equal(w->node, "node-1");
    assert_string_equal(w->network, "net-a");
    assert_string_equal(w->canonical_revision, "v1");
    assert_string_equal(w->cluster_id, "Kubernetes");
    assert_true(w->native_tunnel);
    assert_null(w->hostname);
    assert_non_null(w->waypoint);
    assert_string_equal(w->waypoint->ns, "default");
    assert_string_equal(w->waypoint->hostname, "waypoint.default.svc.cluster.local");
    assert_int_equal(w->waypoint->ip.family, 0);
    assert_int_equal(w->waypoint->hbone_mtls_port, 15008);
    assert_null(w->network_gateway);
    assert_int_equal(w->n_services, 2);
    assert_string_equal(w->services[1].key, "default/tls.default.svc.cluster.local");
    assert_int_equal(w->services[1].n_ports, 1);
    assert_int_equal(w->services[1].ports[0].service_port, 443);
    assert_int_equal(w->services[1].ports[0].target_port, 8443);
    assert_int_equal(w->n_authz_policies, 2);
    assert_string_equal(w->authz_policies[1], "default/deny-all");
    model_address_release(&a);
    assert_null(a.workload);
}

static void
test_workload_defaults(void **state)
{
    Istio__Workload__Workload w;
    struct model_address a;
    char err[256];
    (void)state;

    /* Only what istiod always sends; a custom trust domain and a duplicated services key. */
    istio__workload__workload__init(&w);
    w.uid = "u";
    w.name = "n";
    w.namespace_ = "ns";
    assert_int_equal(decode(pack_address(&w, NULL), &a, err, sizeof(err)), 0);
    assert_string_equal(a.workload->service_account, "default");
    assert_string_equal(a.workload->identity, "spiffe://cluster.local/ns/ns/sa/default");
    assert_int_equal(a.workload->n_addrs, 0);
    assert_null(a.workload->node);
    assert_int_equal(a.workload->tunnel, TUNNEL_NONE);
    model_address_release(&a);

    struct wl_msg m;
    fill_workload(&m);
    m.w.trust_domain = "example.org";
    m.w.status = ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
    m.e2.key = m.e1.key; /* last one wins, as protobuf maps do */
    assert_int_equal(decode(pack_address(&m.w, NULL), &a, err, sizeof(err)), 0);
    assert_string_equal(a.workload->identity, "spiffe://example.org/ns/default/sa/server");
    assert_int_equal(a.workload->status, WORKLOAD_UNHEALTHY);
    assert_int_equal(a.workload->n_services, 1);
    assert_int_equal(a.workload->services[0].ports[0].service_port, 443);
    model_address_release(&a);
}

static void
test_service(void **state)
{
    struct svc_msg m;
    struct model_address a;
    char err[256] = "", s[ADDR_STRLEN];
    (void)state;

    fill_service(&m);
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), 0);
    const struct service *svc = a.service;
    assert_null(a.workload);
    assert_string_equal(svc->name, "echo");
    assert_string_equal(svc->key, "default/echo.default.svc.cluster.local");
    /* The /16 is a CIDR VIP: not an exact VIP, so not kept. */
    assert_int_equal(svc->n_vips, 2);
    assert_string_equal(ipaddr_str(&svc->vips[0], s), "10.96.0.10");
    assert_string_equal(ipaddr_str(&svc->vips[1], s), "2001:db8::7");
    assert_int_equal(svc->n_ports, 1);
    assert_int_equal(svc->ports[0].target_port, 9090);
    assert_int_equal(svc->n_sans, 1);
    assert_string_equal(svc->sans[0], "spiffe://cluster.local/ns/default/sa/echo");
    assert_non_null(svc->waypoint);
    assert_null(svc->waypoint->hostname);
    assert_string_equal(svc->waypoint->network, "net-a");
    assert_string_equal(ipaddr_str(&svc->waypoint->ip, s), "10.244.1.7");
    assert_true(svc->canonical);
    model_address_release(&a);

    /* No name: the hostname stands in, as in the local config. */
    fill_service(&m);
    m.s.name = "";
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), 0);
    assert_string_equal(a.service->name, "echo.default.svc.cluster.local");
    model_address_release(&a);
}

static char long_str[MODEL_PB_MAX_STRING + 2];
static ProtobufCBinaryData many_addrs[MODEL_PB_MAX_ADDRS + 1];
static uint8_t five[5] = {1, 2, 3, 4, 5};
static Istio__Workload__NetworkAddress bad_gw;

/* Each case breaks one field of a valid message. */
static void
break_workload(int i, struct wl_msg *m)
{
    switch (i) {
    case 0:
        m->addrs[1].len = 5;
        break;
    case 1:
        m->w.uid = "";
        break;
    case 2:
        m->w.namespace_ = "";
        break;
    case 3:
        m->w.tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__LEGACY_ISTIO_MTLS;
        break;
    case 4:
        m->w.tunnel_protocol = (Istio__Workload__TunnelProtocol)7;
        break;
    case 5:
        m->w.status = (Istio__Workload__WorkloadStatus)3;
        break;
    case 6:
        m->w.addresses = many_addrs;
        m->w.n_addresses = MODEL_PB_MAX_ADDRS + 1;
        break;
    case 7:
        m->w.node = long_str;
        break;
    case 8:
        m->e1.key = "echo.default.svc.cluster.local";
        break;
    case 9:
        m->p1.service_port = 0;
        break;
    case 10:
        m->p2.target_port = 70000;
        break;
    case 11:
        m->wp.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION__NOT_SET;
        break;
    case 12:
        istio__workload__network_address__init(&bad_gw);
        bad_gw.address = (ProtobufCBinaryData){sizeof(five), five};
        m->wp.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_ADDRESS;
        m->wp.address = &bad_gw;
        break;
    case 13:
        m->w.network_mode = (Istio__Workload__NetworkMode)9;
        break;
    case 14:
        m->w.uid = long_str;
        break;
    case 15:
        m->w.name = "";
        break;
    }
}

static const struct {
    int rc;
    const char *want;
} wl_bad[] = {
    {-MESH_EPROTO, "workload Kubernetes//Pod/default/server-1: addresses[1]: 5 bytes, not an IPv4 "
                   "(4) or IPv6 (16) address"},
    {-MESH_EPROTO, "workload : uid is required"},
    {-MESH_EPROTO, "workload Kubernetes//Pod/default/server-1: namespace is required"},
    {-MESH_EPROTO, "tunnel_protocol LEGACY_ISTIO_MTLS is not supported"},
    {-MESH_EPROTO, "unknown tunnel_protocol 7"},
    {-MESH_EPROTO, "unknown status 3"},
    {-MESH_ELIMIT, "addresses: 17 entries, more than 16"},
    {-MESH_ELIMIT, "node: 1025 bytes, more than 1024"},
    {-MESH_EPROTO,
     "services: key \"echo.default.svc.cluster.local\" is not \"<namespace>/<hostname>\""},
    {-MESH_EPROTO, "services ports[0]: service port 0 is not 1-65535"},
    {-MESH_EPROTO, "services ports[0]: target port 70000 is not 0-65535"},
    {-MESH_EPROTO, "waypoint: neither hostname nor address"},
    {-MESH_EPROTO, "waypoint: 5 bytes, not an IPv4"},
    {-MESH_EPROTO, "unknown network_mode 9"},
    {-MESH_ELIMIT, "uid: 1025 bytes, more than 1024"},
    {-MESH_EPROTO, "name is required"},
};

static void
test_workload_errors(void **state)
{
    (void)state;
    memset(long_str, 'x', MODEL_PB_MAX_STRING + 1);
    for (size_t i = 0; i < ARRAY_LEN(many_addrs); i++)
        many_addrs[i] = (ProtobufCBinaryData){sizeof(ip4), ip4};
    for (size_t i = 0; i < ARRAY_LEN(wl_bad); i++) {
        struct wl_msg m;
        struct model_address a;
        char err[512] = "";
        fill_workload(&m);
        break_workload((int)i, &m);
        int rc = decode(pack_address(&m.w, NULL), &a, err, sizeof(err));
        if (rc != wl_bad[i].rc)
            fail_msg("case %zu: rc %d, want %d (%s)", i, rc, wl_bad[i].rc, err);
        assert_null(a.workload);
        if (strstr(err, wl_bad[i].want) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, wl_bad[i].want);
    }
}

static void
test_service_errors(void **state)
{
    struct svc_msg m;
    struct model_address a;
    char err[512];
    (void)state;

    fill_service(&m);
    m.s.hostname = "";
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "service default/: hostname is required");
    fill_service(&m);
    m.cidr.length = 33;
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "service default/echo.default.svc.cluster.local: addresses[2]: "
                             "prefix length 33 exceeds 32");
    fill_service(&m);
    m.a4.address.len = 0;
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), -MESH_EPROTO);
    assert_non_null(strstr(err, "addresses[0]: 0 bytes"));
    fill_service(&m);
    m.p1.service_port = 65536;
    assert_int_equal(decode(pack_address(NULL, &m.s), &a, err, sizeof(err)), -MESH_EPROTO);
    assert_non_null(strstr(err, "ports[0]: service port 65536 is not 1-65535"));
    assert_null(a.service);
}

static void
test_wire_errors(void **state)
{
    struct model_address a;
    char err[256];
    static const uint8_t junk[] = {0x0a, 0x7f, 0x01}; /* field 1, length 127, 1 byte present */
    (void)state;

    assert_int_equal(model_pb_decode_address(junk, sizeof(junk), &a, err, sizeof(err)),
                     -MESH_EPROTO);
    assert_string_equal(err, "address: not a valid istio.workload.Address message: "
                             "istio.workload.Address field 1: length 127, remaining 1");
    assert_int_equal(model_pb_decode_address(NULL, 0, &a, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "address: neither a workload nor a service");
    uint8_t *big = calloc(1, MODEL_PB_MAX_BYTES + 1);
    assert_int_equal(model_pb_decode_address(big, MODEL_PB_MAX_BYTES + 1, &a, err, sizeof(err)),
                     -MESH_ELIMIT);
    assert_non_null(strstr(err, "more than 1048576"));
    free(big);
    assert_null(a.workload);
    assert_null(a.service);
}

/* Decodes a workload named |i| with address 10.1.<i/256>.<i%256>, endpoint of echo. */
static struct workload *
numbered_workload(unsigned i, bool host_network)
{
    struct wl_msg m;
    struct model_address a;
    char uid[64], name[32], err[256];
    uint8_t ip[4] = {10, 1, (uint8_t)(i / 256), (uint8_t)(i % 256)};

    fill_workload(&m);
    snprintf(uid, sizeof(uid), "Kubernetes//Pod/default/w-%u", i);
    snprintf(name, sizeof(name), "w-%u", i);
    m.w.uid = uid;
    m.w.name = name;
    m.addrs[0] = (ProtobufCBinaryData){4, ip};
    m.w.n_addresses = 1;
    m.w.network_mode = host_network ? ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK
                                    : ISTIO__WORKLOAD__NETWORK_MODE__STANDARD;
    if (decode(pack_address(&m.w, NULL), &a, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return a.workload;
}

static void
test_build_shares(void **state)
{
    enum { N = 10000 };
    struct workload **ws = calloc(N, sizeof(*ws));
    struct svc_msg sm;
    struct model_address sa;
    char err[256];
    struct ipaddr ip;
    (void)state;

    for (unsigned i = 0; i < N; i++)
        ws[i] = numbered_workload(i, i == 5);
    fill_service(&sm);
    assert_int_equal(decode(pack_address(NULL, &sm.s), &sa, err, sizeof(err)), 0);

    struct model *m1 = model_build(ws, N, &sa.service, 1);
    struct model *m2 = model_build(ws + 1, N - 1, &sa.service, 1);
    /* The builder's references go; the models keep theirs. */
    for (unsigned i = 0; i < N; i++)
        workload_unref(ws[i]);
    model_address_release(&sa);
    model_unref(m1);

    assert_int_equal(m2->n_workloads, N - 1);
    ipaddr_parse("10.1.39.15", &ip); /* 39 * 256 + 15 = 9999 */
    const struct workload *w = model_workload_by_ip(m2, &ip);
    assert_non_null(w);
    assert_string_equal(w->name, "w-9999");
    assert_ptr_equal(model_workload_by_uid(m2, "Kubernetes//Pod/default/w-9999"), w);
    assert_null(model_workload_by_uid(m2, "Kubernetes//Pod/default/w-0"));
    ipaddr_parse("10.1.0.5", &ip); /* host network: not found by IP, found by uid */
    assert_null(model_workload_by_ip(m2, &ip));
    assert_non_null(model_workload_by_uid(m2, "Kubernetes//Pod/default/w-5"));
    ipaddr_parse("10.96.0.10", &ip);
    const struct service *s = model_service_by_vip(m2, &ip);
    assert_non_null(s);
    assert_ptr_equal(model_service_by_key(m2, "default/echo.default.svc.cluster.local"), s);
    assert_null(model_service_by_key(m2, "default/nope"));

    size_t n;
    struct workload *const *eps = model_endpoints(m2, s->key, &n);
    assert_int_equal(n, N - 1);
    assert_string_equal(eps[0]->name, "w-1");
    assert_null(model_endpoints(m2, "default/nope", &n));
    assert_int_equal(n, 0);
    uint16_t port = 0;
    w = model_pick_endpoint(m2, s, 80, ip.family, 41, &port);
    assert_non_null(w);
    assert_int_equal(port, 8080); /* the workload's own port map wins */
    assert_string_equal(w->name, "w-42");
    model_unref(m2);
    free(ws);
}

static void
put(struct model_store *st, const char *name, struct packed p)
{
    char err[256] = "";
    if (model_store_put(st, name, p.data, p.len, err, sizeof(err)) < 0)
        fail_msg("%s: %s", name, err);
    free(p.data);
}

static void
test_store(void **state)
{
    struct model_store *st = model_store_new();
    struct wl_msg m;
    struct svc_msg sm;
    char err[256], uid[64];
    (void)state;

    fill_workload(&m);
    put(st, m.w.uid, pack_address(&m.w, NULL));
    fill_service(&sm);
    put(st, "default/echo.default.svc.cluster.local", pack_address(NULL, &sm.s));
    struct model *m1 = model_store_snapshot(st);
    struct model *again = model_store_snapshot(st);
    assert_ptr_equal(m1, again); /* nothing changed: the same model */
    model_unref(again);
    assert_int_equal(m1->n_workloads, 1);
    assert_int_equal(m1->n_services, 1);

    /* A bad resource is refused and changes nothing. */
    fill_workload(&m);
    m.w.namespace_ = "";
    struct packed p = pack_address(&m.w, NULL);
    assert_int_equal(model_store_put(st, m.w.uid, p.data, p.len, err, sizeof(err)), -MESH_EPROTO);
    free(p.data);
    struct model *m2 = model_store_snapshot(st);
    assert_ptr_equal(m2, m1);
    model_unref(m2);

    /* Many names: grows the table, then removals shift probe runs back. */
    for (unsigned i = 0; i < 3000; i++) {
        struct workload *w = numbered_workload(i, false);
        struct model_address a = {.workload = w};
        snprintf(uid, sizeof(uid), "%s", w->uid);
        model_store_put_address(st, uid, &a);
    }
    for (unsigned i = 0; i < 3000; i += 2) {
        snprintf(uid, sizeof(uid), "Kubernetes//Pod/default/w-%u", i);
        assert_true(model_store_remove(st, uid));
    }
    assert_false(model_store_remove(st, "Kubernetes//Pod/default/w-0"));
    assert_int_equal(model_store_count(st), 2 + 1500);
    m2 = model_store_snapshot(st);
    assert_ptr_not_equal(m2, m1);
    assert_int_equal(m2->n_workloads, 1 + 1500);
    /* The untouched objects are the same objects: nothing was decoded again. */
    assert_ptr_equal(m2->workloads[0], m1->workloads[0]);
    assert_ptr_equal(m2->services[0], m1->services[0]);
    assert_string_equal(m2->workloads[1]->name, "w-1");
    for (unsigned i = 1; i < 3000; i += 2) {
        snprintf(uid, sizeof(uid), "Kubernetes//Pod/default/w-%u", i);
        assert_non_null(model_workload_by_uid(m2, uid));
    }

    /* Replacing keeps the resource's place; the old model keeps the old object. */
    fill_workload(&m);
    m.w.node = "node-2";
    put(st, m.w.uid, pack_address(&m.w, NULL));
    struct model *m3 = model_store_snapshot(st);
    assert_string_equal(m3->workloads[0]->node, "node-2");
    assert_string_equal(m1->workloads[0]->node, "node-1");
    assert_ptr_equal(m3->workloads[1], m2->workloads[1]);

    /* A name can change kind: now a service. */
    put(st, m.w.uid, pack_address(NULL, &sm.s));
    model_store_free(st); /* models outlive the store */
    assert_string_equal(m3->services[0]->name, "echo");
    model_unref(m1);
    model_unref(m2);
    model_unref(m3);
}

/* Seeds for fuzz/corpus/fuzz_address: valid messages and a few broken ones. */
static int
write_corpus(const char *dir)
{
    struct wl_msg m;
    struct svc_msg sm;
    struct seed {
        const char *name;
        struct packed p;
    } seeds[6];
    size_t n = 0;

    fill_workload(&m);
    seeds[n++] = (struct seed){"workload_full", pack_address(&m.w, NULL)};
    fill_service(&sm);
    seeds[n++] = (struct seed){"service_full", pack_address(NULL, &sm.s)};
    fill_workload(&m);
    m.w.network_mode = ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK;
    m.w.waypoint = NULL;
    m.w.hostname = "db.example.com";
    m.w.n_addresses = 0;
    seeds[n++] = (struct seed){"workload_hostname_hostnet", pack_address(&m.w, NULL)};
    fill_workload(&m);
    m.addrs[0].len = 3;
    seeds[n++] = (struct seed){"workload_bad_ip", pack_address(&m.w, NULL)};
    fill_service(&sm);
    sm.cidr.length = 40;
    seeds[n++] = (struct seed){"service_bad_prefix", pack_address(NULL, &sm.s)};
    fill_workload(&m);
    m.w.waypoint->destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION__NOT_SET;
    seeds[n++] = (struct seed){"workload_empty_waypoint", pack_address(&m.w, NULL)};
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, seeds[i].name);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(seeds[i].p.data, 1, seeds[i].p.len, f) != seeds[i].p.len) {
            perror(path);
            return 1;
        }
        fclose(f);
        free(seeds[i].p.data);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload),       cmocka_unit_test(test_workload_defaults),
        cmocka_unit_test(test_service),        cmocka_unit_test(test_workload_errors),
        cmocka_unit_test(test_service_errors), cmocka_unit_test(test_wire_errors),
        cmocka_unit_test(test_build_shares),   cmocka_unit_test(test_store),
    };
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
