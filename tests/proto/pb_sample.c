/*
 * pb_sample.c - the C side of the protobuf interoperability test.
 *
 *   pb_sample encode DIR   writes xds_response.bin, ca_response.bin, zds_add.bin
 *   pb_sample decode FILE  decodes a DeltaDiscoveryRequest written by Python, prints its fields
 *
 * tests/proto/interop.sh checks both directions against Python's protobuf
 * runtime with modules protoc generates from the same .proto files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authorization.pb-c.h"
#include "ca.pb-c.h"
#include "discovery.pb-c.h"
#include "workload.pb-c.h"
#include "zds.pb-c.h"

static int
write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n) {
        perror(path);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Packs |msg| into an Any with |type_url|; the caller frees any->value.data. */
static void
to_any(Google__Protobuf__Any *any, const char *type_url, const ProtobufCMessage *msg)
{
    google__protobuf__any__init(any);
    any->type_url = (char *)type_url;
    any->value.len = protobuf_c_message_get_packed_size(msg);
    any->value.data = malloc(any->value.len ? any->value.len : 1);
    protobuf_c_message_pack(msg, any->value.data);
}

static int
encode(const char *dir)
{
    /* Workload with the fields ztunnel depends on. */
    Istio__Workload__Workload w;
    istio__workload__workload__init(&w);
    uint8_t ip4[4] = {198, 18, 250, 10};
    uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
    ProtobufCBinaryData addrs[2] = {{4, ip4}, {16, ip6}};
    w.uid = "Kubernetes//Pod/default/server";
    w.name = "server";
    w.namespace_ = "default";
    w.n_addresses = 2;
    w.addresses = addrs;
    w.tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
    w.service_account = "server";
    w.node = "node-2";
    w.canonical_name = "echo";
    w.canonical_revision = "v1";
    w.workload_type = ISTIO__WORKLOAD__WORKLOAD_TYPE__POD;
    w.workload_name = "echo";
    w.status = ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY;
    w.cluster_id = "Kubernetes";
    Istio__Workload__Port port;
    istio__workload__port__init(&port);
    port.service_port = 80;
    port.target_port = 8080;
    Istio__Workload__Port *ports[1] = {&port};
    Istio__Workload__PortList plist;
    istio__workload__port_list__init(&plist);
    plist.n_ports = 1;
    plist.ports = ports;
    Istio__Workload__Workload__ServicesEntry se;
    istio__workload__workload__services_entry__init(&se);
    se.key = "default/echo.default.svc.cluster.local";
    se.value = &plist;
    Istio__Workload__Workload__ServicesEntry *ses[1] = {&se};
    w.n_services = 1;
    w.services = ses;
    char *pols[1] = {"default/allow-client"};
    w.n_authorization_policies = 1;
    w.authorization_policies = pols;
    Istio__Workload__Address wa;
    istio__workload__address__init(&wa);
    wa.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
    wa.workload = &w;

    /* Service with a VIP. */
    Istio__Workload__Service svc;
    istio__workload__service__init(&svc);
    svc.name = "echo";
    svc.namespace_ = "default";
    svc.hostname = "echo.default.svc.cluster.local";
    uint8_t vip[4] = {198, 19, 0, 10};
    Istio__Workload__NetworkAddress na;
    istio__workload__network_address__init(&na);
    na.address.len = 4;
    na.address.data = vip;
    Istio__Workload__NetworkAddress *nas[1] = {&na};
    svc.n_addresses = 1;
    svc.addresses = nas;
    svc.n_ports = 1;
    svc.ports = ports;
    Istio__Workload__Address sa;
    istio__workload__address__init(&sa);
    sa.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE;
    sa.service = &svc;

    /* L4 authorization: ALLOW principal exact match on port 8080. */
    Istio__Security__StringMatch sm;
    istio__security__string_match__init(&sm);
    sm.match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT;
    sm.exact = "cluster.local/ns/default/sa/client";
    Istio__Security__StringMatch *sms[1] = {&sm};
    uint32_t dports[1] = {8080};
    Istio__Security__Match m;
    istio__security__match__init(&m);
    m.n_principals = 1;
    m.principals = sms;
    m.n_destination_ports = 1;
    m.destination_ports = dports;
    Istio__Security__Match *ms[1] = {&m};
    Istio__Security__Clause cl;
    istio__security__clause__init(&cl);
    cl.n_matches = 1;
    cl.matches = ms;
    Istio__Security__Clause *cls[1] = {&cl};
    Istio__Security__Rule rule;
    istio__security__rule__init(&rule);
    rule.n_clauses = 1;
    rule.clauses = cls;
    Istio__Security__Rule *rules[1] = {&rule};
    Istio__Security__Authorization authz;
    istio__security__authorization__init(&authz);
    authz.name = "allow-client";
    authz.namespace_ = "default";
    authz.scope = ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR;
    authz.action = ISTIO__SECURITY__ACTION__ALLOW;
    authz.n_rules = 1;
    authz.rules = rules;

    /* The xDS response carrying them. */
    Google__Protobuf__Any anys[3];
    to_any(&anys[0], "type.googleapis.com/istio.workload.Address", &wa.base);
    to_any(&anys[1], "type.googleapis.com/istio.workload.Address", &sa.base);
    to_any(&anys[2], "type.googleapis.com/istio.security.Authorization", &authz.base);
    Envoy__Service__Discovery__V3__Resource res[3], *resp[3];
    const char *names[3] = {"Kubernetes//Pod/default/server", "default/echo.default.svc.cluster.local",
                            "default/allow-client"};
    for (int i = 0; i < 3; i++) {
        envoy__service__discovery__v3__resource__init(&res[i]);
        res[i].name = (char *)names[i];
        res[i].version = "1";
        res[i].resource = &anys[i];
        resp[i] = &res[i];
    }
    char *removed[1] = {"Kubernetes//Pod/default/gone"};
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse dr;
    envoy__service__discovery__v3__delta_discovery_response__init(&dr);
    dr.type_url = "type.googleapis.com/istio.workload.Address";
    dr.nonce = "nonce-1";
    dr.n_resources = 3;
    dr.resources = resp;
    dr.n_removed_resources = 1;
    dr.removed_resources = removed;

    /* CA response: leaf then root (PEM text is opaque here). */
    char *chain[2] = {"-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
                      "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n"};
    Istio__V1__Auth__IstioCertificateResponse car;
    istio__v1__auth__istio_certificate_response__init(&car);
    car.n_cert_chain = 2;
    car.cert_chain = chain;

    /* ZDS add. */
    Istio__Workload__Zds__WorkloadInfo wi;
    istio__workload__zds__workload_info__init(&wi);
    wi.name = "server";
    wi.namespace_ = "default";
    wi.service_account = "server";
    Istio__Workload__Zds__AddWorkload add;
    istio__workload__zds__add_workload__init(&add);
    add.uid = "Kubernetes//Pod/default/server";
    add.workload_info = &wi;
    Istio__Workload__Zds__WorkloadRequest zr;
    istio__workload__zds__workload_request__init(&zr);
    zr.payload_case = ISTIO__WORKLOAD__ZDS__WORKLOAD_REQUEST__PAYLOAD_ADD;
    zr.add = &add;

    const ProtobufCMessage *msgs[3] = {&dr.base, &car.base, &zr.base};
    const char *files[3] = {"xds_response.bin", "ca_response.bin", "zds_add.bin"};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        size_t n = protobuf_c_message_get_packed_size(msgs[i]);
        uint8_t *b = malloc(n ? n : 1);
        protobuf_c_message_pack(msgs[i], b);
        rc |= write_file(dir, files[i], b, n);
        free(b);
    }
    for (int i = 0; i < 3; i++)
        free(anys[i].value.data);
    return rc ? 1 : 0;
}

static int
decode(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t b[65536];
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t n = fread(b, 1, sizeof(b), f);
    fclose(f);
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *r =
        envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, n, b);
    if (r == NULL) {
        fprintf(stderr, "cannot decode %s\n", path);
        return 1;
    }
    printf("type_url=%s\n", r->type_url);
    printf("node.id=%s\n", r->node ? r->node->id : "");
    printf("nonce=%s\n", r->response_nonce);
    for (size_t i = 0; i < r->n_resource_names_subscribe; i++)
        printf("subscribe=%s\n", r->resource_names_subscribe[i]);
    for (size_t i = 0; i < r->n_initial_resource_versions; i++)
        printf("initial=%s:%s\n", r->initial_resource_versions[i]->key,
               r->initial_resource_versions[i]->value);
    if (r->error_detail != NULL)
        printf("error=%d:%s\n", r->error_detail->code, r->error_detail->message);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "encode") == 0)
        return encode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return decode(argv[2]);
    fprintf(stderr, "usage: pb_sample encode DIR | decode FILE\n");
    return 2;
}
