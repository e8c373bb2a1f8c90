/* test_local_config.c - the local-mode config: the example, and errors with lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/local_config.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_service_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
