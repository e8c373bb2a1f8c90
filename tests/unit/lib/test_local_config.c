/*
 * test_local_config.c - the local-mode config: the example, Istio
 * ztunnel's own spelling, and errors with lines (workloads, services and
 * policies alike).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/local_config.h"
#include "policy/policy.h"

static const char example[] = "workloads:\n"
                              "- uid: Kubernetes//Pod/default/server\n"
                              "  name: server\n"
                              "  namespace: default\n"
                              "  serviceAccount: server\n"
                              "  addresses: [\"198.18.250.10\"]\n"
                              "  node: node-1\n"
                              "  tunnelProtocol: HBONE\n"
                              "services: []\n"
                              "policies: []\n";

static void
test_example(void **state)
{
    struct model *m;
    char err[256];
    struct ipaddr ip;
    (void)state;
    assert_int_equal(local_config_parse(example, strlen(example), "x.yaml", &m, err, sizeof(err)), 0);
    assert_int_equal(m->n_workloads, 1);
    ipaddr_parse("198.18.250.10", &ip);
    const struct workload *w = model_workload_by_ip(m, &ip);
    assert_non_null(w);
    assert_string_equal(w->identity, "spiffe://cluster.local/ns/default/sa/server");
    assert_int_equal(w->tunnel, TUNNEL_HBONE);
    assert_string_equal(w->node, "node-1");
    model_unref(m);
}

static const struct {
    const char *yaml;
    const char *want; /* substring of the error */
} bad[] = {
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  addresses: [\"300.1.1.1\"]\n",
     "x.yaml:5: addresses: \"300.1.1.1\" is not an IP address"},
    {"workloads:\n- name: b\n  namespace: c\n  addresses: [1.2.3.4]\n", "x.yaml:2: workload: \"uid\" is required"},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  adresses: [1.2.3.4]\n",
     "x.yaml:5: workload: unknown field \"adresses\""},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  addresses: [1.2.3.4]\n  tunnelProtocol: FOO\n",
     "x.yaml:6: tunnelProtocol: unknown value \"FOO\""},
    {"workloads: [ {uid: a\n", "x.yaml:2:"},
    {"services:\n- hostname: h\n  namespace: n\n  ports: [{servicePort: 0, targetPort: 1}]\n",
     "x.yaml:4: servicePort: \"0\" is not a port number"},
    {"wrkloads: []\n", "x.yaml:1: unknown top-level field \"wrkloads\""},
    {"- a\n- b\n", "x.yaml:1: expected a mapping"},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  workloadIPs: [1.2.3.4]\n",
     "x.yaml:5: workload: unknown field \"workloadIPs\""},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  workloadIps: [1.2.3.4]\n  protocol: QUIC\n",
     "x.yaml:6: protocol: unknown value \"QUIC\""},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  workloadIps: [1.2.3.4]\n  addresses: [1.2.3.5]\n",
     "x.yaml:6: addresses: given twice"},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  workloadIps: [1.2.3.4]\n  protocol: TCP\n"
     "  tunnelProtocol: HBONE\n",
     "x.yaml:7: tunnelProtocol: given twice"},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  workloadIps: [1.2.3.4]\n  services:\n"
     "    n/h:\n      80: 8080\n      http: 8080\n",
     "x.yaml:9: services.ports: \"http\" is not a port number"},
    {"services:\n- hostname: h\n  namespace: n\n  vips: [\"/1.2.3.4\"]\n  ports:\n    80: 70000\n",
     "x.yaml:6: targetPort: \"70000\" is not a port number"},
    {"services:\n- hostname: h\n  namespace: n\n  vips: [\"net/1.2.3.4\"]\n  vipz: []\n",
     "x.yaml:5: service: unknown field \"vipz\""},
    {"services:\n- hostname: h\n  namespace: n\n  endpoints:\n    u1: {workloadUid: u1, port: {80: 80}}\n",
     "x.yaml:5: endpoints: not read from a local config"},
    {"workloads:\n- uid: a\n  name: b\n  namespace: c\n  addresses: [1.2.3.4]\n- uid: a\n  name: b\n  namespace: c\n  addresses: [1.2.3.5]\n",
     "duplicate uid"},
};

static void
test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct model *m = NULL;
        char err[512] = "";
        int rc = local_config_parse(bad[i].yaml, strlen(bad[i].yaml), "x.yaml", &m, err, sizeof(err));
        if (rc == 0)
            fail_msg("case %zu accepted", i);
        assert_null(m);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, bad[i].want);
    }
}

static void
test_service_endpoint(void **state)
{
    static const char y[] =
        "workloads:\n"
        "- uid: u1\n  name: a\n  namespace: default\n  addresses: [198.18.1.1]\n"
        "  services: {default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}}\n"
        "- uid: u2\n  name: b\n  namespace: default\n  addresses: [198.18.1.2]\n  status: UNHEALTHY\n"
        "  services: {default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}}\n"
        "services:\n- namespace: default\n  hostname: echo.default.svc.cluster.local\n"
        "  addresses: [198.19.0.10]\n  ports: [{servicePort: 80, targetPort: 9999}]\n";
    struct model *m;
    char err[256];
    struct ipaddr vip;
    uint16_t port = 0;
    (void)state;
    assert_int_equal(local_config_parse(y, strlen(y), "x", &m, err, sizeof(err)), 0);
    ipaddr_parse("198.19.0.10", &vip);
    const struct service *s = model_service_by_vip(m, &vip);
    assert_non_null(s);
    /* Only the healthy endpoint is ever chosen, with its own port map winning. */
    for (uint32_t seed = 0; seed < 8; seed++) {
        const struct workload *w = model_pick_endpoint(m, s, 80, vip.family, seed, &port);
        assert_non_null(w);
        assert_string_equal(w->name, "a");
        assert_int_equal(port, 8080);
    }
    assert_null(model_pick_endpoint(m, s, 81, vip.family, 0, &port));
    model_unref(m);
}


/*
 * Istio ztunnel's spelling, with the fields and shape of its examples/localhost.yaml
 * (workloadIps, protocol HBONE|TCP, services as {servicePort: targetPort} maps, policies
 * with Allow/Namespace and rules as nested lists, services with vips "network/ip" and a
 * ports map); the values are ours.
 */
static const char istio_style[] = "workloads:\n"
                                  "- uid: Kubernetes//Pod/shop/front\n"
                                  "  name: front\n"
                                  "  namespace: shop\n"
                                  "  serviceAccount: front\n"
                                  "  workloadIps: [\"198.18.7.1\"]\n"
                                  "  protocol: HBONE\n"
                                  "  node: node-a\n"
                                  "  network: \"\"\n"
                                  "  services:\n"
                                  "    \"shop/cart.shop.svc.cluster.local\":\n"
                                  "      80: 8080\n"
                                  "    \"shop/pay.shop.svc.cluster.local\":\n"
                                  "      443: 8443\n"
                                  "- uid: Kubernetes//Pod/shop/legacy\n"
                                  "  name: legacy\n"
                                  "  namespace: shop\n"
                                  "  serviceAccount: legacy\n"
                                  "  workloadIps: [\"198.18.7.2\"]\n"
                                  "  protocol: TCP\n"
                                  "  node: node-a\n"
                                  "  network: \"\"\n"
                                  "  services:\n"
                                  "    \"shop/cart.shop.svc.cluster.local\":\n"
                                  "      80: 9090\n"
                                  "policies:\n"
                                  "  - action: Allow\n"
                                  "    rules:\n"
                                  "    - - - notDestinationPorts:\n"
                                  "          - 9999\n"
                                  "    name: not-9999\n"
                                  "    namespace: shop\n"
                                  "    scope: Namespace\n"
                                  "services:\n"
                                  "- name: cart\n"
                                  "  namespace: shop\n"
                                  "  hostname: cart.shop.svc.cluster.local\n"
                                  "  vips:\n"
                                  "    - /198.19.7.1\n"
                                  "  ports:\n"
                                  "    80: 8080\n"
                                  "  subjectAltNames:\n"
                                  "   - spiffe://cluster.local/ns/shop/sa/front\n"
                                  "- name: pay\n"
                                  "  namespace: shop\n"
                                  "  hostname: pay.shop.svc.cluster.local\n"
                                  "  vips:\n"
                                  "    - east/198.19.7.2\n"
                                  "  ports:\n"
                                  "    443: 8443\n";

static bool
request_allowed(const struct policy *p, uint16_t port)
{
    struct policy_request r = {.dst_ns = "shop", .dst_port = port};
    ipaddr_parse("198.18.7.9", &r.src_ip);
    ipaddr_parse("198.18.7.1", &r.dst_ip);
    return policy_matches(p, &r);
}

static void
test_istio_spelling(void **state)
{
    struct model *m;
    struct policy_set *ps;
    char err[512];
    struct ipaddr ip;
    uint16_t port = 0;
    (void)state;
    if (local_config_parse(istio_style, strlen(istio_style), "x.yaml", &m, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(m->n_workloads, 2);
    assert_int_equal(m->n_services, 2);
    ipaddr_parse("198.18.7.1", &ip);
    const struct workload *front = model_workload_by_ip(m, &ip);
    assert_non_null(front);
    assert_string_equal(front->name, "front");
    assert_int_equal(front->tunnel, TUNNEL_HBONE);
    assert_string_equal(front->identity, "spiffe://cluster.local/ns/shop/sa/front");
    assert_int_equal(front->n_services, 2);
    ipaddr_parse("198.18.7.2", &ip);
    const struct workload *legacy = model_workload_by_ip(m, &ip);
    assert_non_null(legacy);
    assert_int_equal(legacy->tunnel, TUNNEL_NONE);

    ipaddr_parse("198.19.7.1", &ip);
    const struct service *cart = model_service_by_vip(m, &ip);
    assert_non_null(cart);
    assert_string_equal(cart->name, "cart");
    assert_int_equal(cart->n_ports, 1);
    assert_int_equal(cart->ports[0].service_port, 80);
    assert_int_equal(cart->ports[0].target_port, 8080);
    assert_int_equal(cart->n_sans, 1);
    /* Both endpoints are chosen, each with the target port its own workload gave. */
    bool saw_front = false, saw_legacy = false;
    for (uint32_t seed = 0; seed < 64; seed++) {
        const struct workload *w = model_pick_endpoint(m, cart, 80, ip.family, seed, &port);
        assert_non_null(w);
        if (w == front) {
            assert_int_equal(port, 8080);
            saw_front = true;
        } else {
            assert_ptr_equal(w, legacy);
            assert_int_equal(port, 9090);
            saw_legacy = true;
        }
    }
    assert_true(saw_front && saw_legacy);
    ipaddr_parse("198.19.7.2", &ip); /* "east/198.19.7.2": network and address */
    const struct service *pay = model_service_by_vip(m, &ip);
    assert_non_null(pay);
    assert_int_equal(pay->ports[0].service_port, 443);
    assert_int_equal(pay->ports[0].target_port, 8443);
    assert_non_null(model_pick_endpoint(m, pay, 443, ip.family, 0, &port));
    assert_int_equal(port, 8443);
    assert_int_equal(m->n_policies, 1);
    model_unref(m);

    if (local_config_policies(istio_style, strlen(istio_style), "x.yaml", &ps, err, sizeof(err)) <
        0)
        fail_msg("%s", err);
    assert_int_equal(policy_set_count(ps), 1);
    const struct policy *p = policy_set_get(ps, "shop/not-9999");
    assert_non_null(p);
    assert_int_equal(policy_scope(p), POLICY_SCOPE_NAMESPACE);
    assert_int_equal(policy_action(p), POLICY_ACTION_ALLOW);
    assert_false(policy_dry_run(p));
    assert_true(request_allowed(p, 80));
    assert_false(request_allowed(p, 9999));
    policy_set_unref(ps);
}

/* The rest of Istio's policy spelling: Deny, WorkloadSelector, Global, StringMatch variants. */
static void
test_istio_policy_spelling(void **state)
{
    static const char y[] =
        "policies:\n"
        "- name: deny-bad\n"
        "  namespace: shop\n"
        "  scope: WorkloadSelector\n"
        "  action: Deny\n"
        "  dryRun: false\n"
        "  rules:\n"
        "  - - - principals: [{Exact: cluster.local/ns/bad/sa/x}]\n"
        "        notNamespaces: [{Prefix: kube}]\n"
        "      - namespaces: [{Suffix: -test}]\n"
        "    - - sourceIps: [198.18.0.0/16]\n"
        "- name: anyone\n"
        "  namespace: istio-system\n"
        "  scope: Global\n"
        "  action: Allow\n"
        "  rules: [[[{principals: [{Presence: []}]}]]]\n";
    struct policy_set *ps;
    char err[512];
    (void)state;
    if (local_config_policies(y, strlen(y), "x.yaml", &ps, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(policy_set_count(ps), 2);
    const struct policy *p = policy_set_get(ps, "shop/deny-bad");
    assert_non_null(p);
    assert_int_equal(policy_scope(p), POLICY_SCOPE_WORKLOAD_SELECTOR);
    assert_int_equal(policy_action(p), POLICY_ACTION_DENY);
    struct policy_peer evil = {"cluster.local", "bad", "x"}, ok = {"cluster.local", "shop", "y"},
                       t = {"cluster.local", "a-test", "y"};
    struct policy_request r = {.dst_ns = "shop", .dst_port = 80, .src_id = &evil};
    ipaddr_parse("198.18.1.1", &r.src_ip);
    ipaddr_parse("198.18.7.1", &r.dst_ip);
    assert_true(policy_matches(p, &r)); /* principal matches, namespace bad is not kube* */
    r.src_id = &ok;
    assert_false(policy_matches(p, &r));
    r.src_id = &t; /* the second match of the first clause */
    assert_true(policy_matches(p, &r));
    ipaddr_parse("203.0.113.1", &r.src_ip); /* the second clause wants 198.18.0.0/16 */
    assert_false(policy_matches(p, &r));
    const struct policy *any = policy_set_get(ps, "istio-system/anyone");
    assert_non_null(any);
    assert_int_equal(policy_scope(any), POLICY_SCOPE_GLOBAL);
    r.src_id = NULL;
    assert_false(policy_matches(any, &r));
    r.src_id = &ok;
    assert_true(policy_matches(any, &r));
    policy_set_unref(ps);
}

/* Policy errors carry the line of the value at fault, in either spelling. */
static const struct {
    const char *yaml;
    const char *want; /* prefix of the error */
    const char *also; /* substring of the error */
} bad_policies[] = {
    {"policies:\n- name: p\n  namespace: ns\n  scope: NAMESPACE\n  action: MAYBE\n", "x.yaml:5: ",
     "\"MAYBE\""},
    {"policies:\n- name: p\n  namespace: ns\n  action: DENY\n  rules:\n  - clauses:\n    - matches:\n"
     "      - sourceIps: [\"198.18.0.0/16\"]\n      - destinationPorts: [80]\n"
     "        sourceIps: [\"198.18.0.1\", \"1.2.3.400\"]\n",
     "x.yaml:10: ", "1.2.3.400"},
    {"policies:\n- name: p\n  namespace: ns\n  scope: Global\n  action: Deny\n  rules:\n"
     "  - - - principals: [{Exact: a}]\n      - principals: [{Bogus: a}]\n",
     "x.yaml:8: ", "Bogus"},
    {"policies:\n- name: p\n  namespace: ns\n  acton: DENY\n", "x.yaml:4: ", "unknown field \"acton\""},
    {"policies:\n- name: ok\n  namespace: ns\n- name: p\n  namespace: ns\n  rules:\n  - - - ports: [1]\n",
     "x.yaml:7: ", "policies[1]"},
    {"policies:\n- name: p\n  namespace: ns\n  rules:\n  - - - destinationPorts: [70000]\n", "x.yaml:5: ",
     "70000"},
    {"policies:\n- name: p\n  namespace: ns\n  rules:\n  - - [1]\n", "x.yaml:5: ", "expected an object"},
    {"policies:\n- namespace: ns\n  action: DENY\n", "x.yaml:2: ", "name"},
    {"policies:\n  a: 1\n", "x.yaml:2: ", "policies: expected a list"},
    {"policies:\n- name: p\n  namespace: ns\n  action: [\n", "x.yaml:", ""},
};

static void
test_policy_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]); i++) {
        struct policy_set *ps = (struct policy_set *)1;
        char err[1024] = "";
        const char *y = bad_policies[i].yaml;
        if (local_config_policies(y, strlen(y), "x.yaml", &ps, err, sizeof(err)) == 0)
            fail_msg("case %zu accepted", i);
        assert_null(ps);
        if (strncmp(err, bad_policies[i].want, strlen(bad_policies[i].want)) != 0 ||
            strstr(err, bad_policies[i].also) == NULL)
            fail_msg("case %zu: error \"%s\" wants \"%s...%s\"", i, err, bad_policies[i].want,
                     bad_policies[i].also);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_service_endpoint),
        cmocka_unit_test(test_istio_spelling),
        cmocka_unit_test(test_istio_policy_spelling),
        cmocka_unit_test(test_policy_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
