/*
 * test_kube_config.c - lib/kube's configuration: kubeconfig variants (token,
 * tokenFile, CA file or data, client certificate, contexts, relative paths),
 * the refusals (exec, auth-provider, basic auth, http://, bad base64,
 * missing pieces), in-cluster config from a temporary directory and the
 * environment, and the server URL parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube.h"
#include "kube/kube_proto.h"
#include "unit_fs.h"

static char tmpdir[64];

static void
write_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kubecfg.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unit_rm_dir(tmpdir);
    return 0;
}

static int
load(const char *yaml, const char *context, struct kube_config *c, char *err)
{
    return kube_config_load_buf("kc", yaml, strlen(yaml), tmpdir, context, c, err, 256);
}

#define HEAD                                                                                       \
    "apiVersion: v1\nkind: Config\ncurrent-context: a\n"                                           \
    "contexts:\n- name: a\n  context: {cluster: c1, user: u1, namespace: demo}\n"                  \
    "- name: b\n  context: {cluster: c2, user: u2}\n"

static void
test_token_and_ca_data(void **state)
{
    (void)state;
    struct kube_config c;
    char err[256] = "";
    /* "LS0t" is base64 of "---". */
    const char *y = HEAD "clusters:\n- name: c1\n  cluster:\n    server: https://10.0.0.1:6443\n"
                         "    certificate-authority-data: LS0tQ0EtLS0=\n"
                         "users:\n- name: u1\n  user:\n    token: abc.def\n";
    assert_int_equal(load(y, NULL, &c, err), 0);
    assert_string_equal(c.server, "https://10.0.0.1:6443");
    assert_string_equal(c.token, "abc.def");
    assert_null(c.token_file);
    assert_string_equal(c.ca_pem, "---CA---");
    assert_string_equal(c.namespace, "demo");
    assert_false(c.insecure_skip_verify);
    assert_null(c.client_cert_pem);
    kube_config_free(&c);
}

static void
test_other_context_files(void **state)
{
    (void)state;
    struct kube_config c;
    char err[256] = "";
    write_file("ca.pem", "CAFILE");
    write_file("tok", "  tok-from-file\n");
    write_file("c.crt", "CERT");
    write_file("c.key", "KEY");
    const char *y = HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://x:1'}\n"
                         "- name: c2\n  cluster:\n    server: https://[2001:db8::1]:6443/\n"
                         "    certificate-authority: ca.pem\n    insecure-skip-tls-verify: true\n"
                         "users:\n- name: u1\n  user: {token: t1}\n"
                         "- name: u2\n  user:\n    tokenFile: tok\n    client-certificate: c.crt\n"
                         "    client-key: c.key\n";
    assert_int_equal(load(y, "b", &c, err), 0);
    assert_string_equal(c.server, "https://[2001:db8::1]:6443/");
    assert_string_equal(c.ca_pem, "CAFILE");
    assert_true(c.insecure_skip_verify);
    assert_string_equal(c.token, "tok-from-file");
    assert_non_null(c.token_file);
    assert_non_null(strstr(c.token_file, "/tok"));
    assert_string_equal(c.client_cert_pem, "CERT");
    assert_string_equal(c.client_key_pem, "KEY");
    assert_string_equal(c.namespace, "default");
    kube_config_free(&c);

    /* The same through the file, relative paths against its directory. */
    write_file("config", y);
    char path[256];
    snprintf(path, sizeof(path), "%s/config", tmpdir);
    assert_int_equal(kube_config_load_file(path, "b", &c, err, sizeof(err)), 0);
    assert_string_equal(c.ca_pem, "CAFILE");
    kube_config_free(&c);
    assert_int_equal(kube_config_load_file("/nonexistent/kc", NULL, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/kc"));
}

static void
expect_error(const char *yaml, const char *context, const char *needle)
{
    struct kube_config c;
    char err[256] = "";
    assert_int_equal(load(yaml, context, &c, err), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    assert_null(c.server); /* nothing half-filled is left */
}

static void
test_refusals(void **state)
{
    (void)state;
    const char *cl = "clusters:\n- name: c1\n  cluster: {server: 'https://10.0.0.1'}\n";
    expect_error(HEAD "clusters: []\nusers: []\n", NULL, "cluster \"c1\" not found");
    expect_error(HEAD "clusters: []\n", "zz", "context \"zz\" not found");
    expect_error("apiVersion: v1\nkind: Config\n", NULL, "no current-context");
    char y[1024];
    snprintf(y, sizeof(y), "%s%susers:\n- name: u1\n  user:\n    exec: {command: aws}\n", HEAD, cl);
    expect_error(y, NULL, "\"exec\" authentication is not supported");
    snprintf(y, sizeof(y), "%s%susers:\n- name: u1\n  user:\n    auth-provider: {name: gcp}\n",
             HEAD, cl);
    expect_error(y, NULL, "\"auth-provider\" authentication is not supported");
    snprintf(y, sizeof(y), "%s%susers:\n- name: u1\n  user: {username: a, password: b}\n", HEAD,
             cl);
    expect_error(y, NULL, "\"username\" authentication");
    snprintf(y, sizeof(y), "%s%s", HEAD, cl);
    expect_error(y, NULL, "user \"u1\" not found");
    expect_error(HEAD "clusters:\n- name: c1\n  cluster: {server: 'http://10.0.0.1'}\n", NULL,
                 "only https://");
    expect_error(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://a:99999'}\n", NULL,
                 "not a valid");
    expect_error(HEAD "clusters:\n- name: c1\n  cluster: {insecure-skip-tls-verify: true}\n", NULL,
                 "has no server");
    expect_error(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://a', "
                      "certificate-authority-data: '@@@'}\n",
                 NULL, "not valid base64");
    expect_error(HEAD "clusters:\n- name: c1\n  cluster: {server: 'https://a', "
                      "certificate-authority: nothere.pem}\n",
                 NULL, "nothere.pem");
    snprintf(y, sizeof(y), "%s%susers:\n- name: u1\n  user: {client-certificate-data: QUJD}\n",
             HEAD, cl);
    expect_error(y, NULL, "needs its key");
    expect_error("a: [\n", NULL, "kc");
    expect_error("- 1\n- 2\n", NULL, "one YAML mapping");
    expect_error("a: 1\n---\nb: 2\n", NULL, "one YAML mapping");
}

static void
test_in_cluster(void **state)
{
    (void)state;
    struct kube_config c;
    char err[256] = "";
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));

    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/token"));

    write_file("token", "eyJhbGc.sa.token\n");
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ca.crt"));

    write_file("ca.crt", "CA");
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://10.96.0.1:443");
    assert_string_equal(c.token, "eyJhbGc.sa.token");
    assert_non_null(strstr(c.token_file, "/token"));
    assert_string_equal(c.ca_pem, "CA");
    assert_string_equal(c.namespace, "default"); /* no namespace file */
    kube_config_free(&c);

    write_file("namespace", "istio-system");
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), 0);
    assert_string_equal(c.server, "https://[fd00::1]:443");
    assert_string_equal(c.namespace, "istio-system");
    kube_config_free(&c);

    write_file("token", "\n");
    assert_int_equal(kube_config_in_cluster(tmpdir, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty token"));
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void
test_server_parse(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int rc;
        const char *host;
        unsigned port;
        const char *authority, *prefix;
    } cases[] = {
        {"https://10.0.0.1:6443", 0, "10.0.0.1", 6443, "10.0.0.1:6443", ""},
        {"https://kube.example", 0, "kube.example", 443, "kube.example:443", ""},
        {"https://[::1]:6443", 0, "::1", 6443, "[::1]:6443", ""},
        {"https://h:1/k8s/clusters/c-1/", 0, "h", 1, "h:1", "/k8s/clusters/c-1"},
        {"https://h/", 0, "h", 443, "h:443", ""},
        {"http://h", -1, NULL, 0, NULL, NULL},
        {"https://", -1, NULL, 0, NULL, NULL},
        {"https://h:0", -1, NULL, 0, NULL, NULL},
        {"https://h:x", -1, NULL, 0, NULL, NULL},
        {"https://[::1", -1, NULL, 0, NULL, NULL},
        {"https://::1", -1, NULL, 0, NULL, NULL},
        {"https://u@h", -1, NULL, 0, NULL, NULL},
        {"https://h?x", -1, NULL, 0, NULL, NULL},
        {"https://h:1x", -1, NULL, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kube_server s;
        char err[256];
        int rc = kube_server_parse(cases[i].url, &s, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("%s: rc %d", cases[i].url, rc);
        if (rc != 0)
            continue;
        assert_string_equal(s.host, cases[i].host);
        assert_int_equal(s.port, cases[i].port);
        assert_string_equal(s.authority, cases[i].authority);
        assert_string_equal(s.prefix, cases[i].prefix);
    }
}

static void
test_query(void **state)
{
    (void)state;
    char q[64] = "";
    assert_true(kube_query_add(q, sizeof(q), "limit", "500"));
    assert_true(kube_query_add(q, sizeof(q), "fieldSelector", "spec.nodeName=n 1&x"));
    assert_string_equal(q, "limit=500&fieldSelector=spec.nodeName%3Dn%201%26x");
    char small[16] = "";
    assert_false(kube_query_add(small, sizeof(small), "labelSelector", "a=b"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_ca_data), cmocka_unit_test(test_other_context_files),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_server_parse),      cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
