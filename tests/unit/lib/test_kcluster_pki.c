/*
 * test_kcluster_pki.c - the credentials of meshctl install --kubernetes
 * (src/meshctl/kcluster_pki.c): the cluster CA signs the API server's
 * certificate, which carries every name clients use (loopback, the fabric
 * address, the kubernetes VIP, kubernetes.default.svc...); keys are private and
 * match; tokens are fresh; and the kubeconfig written is what lib/kube (meshd,
 * mesh-cni, the kubelet) reads back: server, token, CA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../../../src/meshctl/kcluster_int.h"
#include "base/base.h"
#include "kube/kube.h"
#include "unit_fs.h"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_kpki.XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    unit_rm_dir(dir);
    return 0;
}

static X509 *
load_cert(const char *name)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *
load_key(const char *name, bool pub)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(stat(p, &st), 0);
    if (!pub)
        assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    EVP_PKEY *k =
        pub ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static void
test_certificates(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(kpki_make(dir, err, sizeof(err)), 0);
    X509 *ca = load_cert("ca.crt"), *srv = load_cert("apiserver.crt");
    EVP_PKEY *ca_key = load_key("ca.key", false), *srv_key = load_key("apiserver.key", false);
    EVP_PKEY *sa = load_key("sa.key", false), *sa_pub = load_key("sa.pub", true);

    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_check_private_key(ca, ca_key), 1);
    assert_int_equal(X509_verify(srv, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_check_private_key(srv, srv_key), 1);
    assert_int_equal(X509_check_ca(srv), 0);
    assert_int_equal(EVP_PKEY_eq(sa, sa_pub), 1);
    /* A fresh pair for each: the SA key signs tokens, it must not be the TLS key. */
    assert_int_not_equal(EVP_PKEY_eq(sa, srv_key), 1);

    static const char *const ips[] = {"127.0.0.1", "198.18.0.2", "198.19.0.1"};
    for (size_t i = 0; i < ARRAY_LEN(ips); i++)
        assert_int_equal(X509_check_ip_asc(srv, ips[i], 0), 1);
    static const char *const names[] = {"kubernetes", "kubernetes.default",
                                        "kubernetes.default.svc",
                                        "kubernetes.default.svc.cluster.local", "localhost"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        assert_int_equal(X509_check_host(srv, names[i], 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(srv, "198.18.0.3", 0), 0);
    assert_int_equal(X509_check_host(srv, "evil.example", 0, 0, NULL), 0);

    X509_free(ca);
    X509_free(srv);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    EVP_PKEY_free(sa);
    EVP_PKEY_free(sa_pub);
}

static void
test_tokens(void **state)
{
    (void)state;
    char a[KPKI_TOKEN_LEN + 1], b[KPKI_TOKEN_LEN + 1];
    assert_int_equal(kpki_token(a), 0);
    assert_int_equal(kpki_token(b), 0);
    assert_int_equal(strlen(a), KPKI_TOKEN_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), KPKI_TOKEN_LEN);
    assert_string_not_equal(a, b);
}

static void
test_kubeconfig_round_trip(void **state)
{
    (void)state;
    char err[256], ca[128], kc[128];
    assert_int_equal(kpki_make(dir, err, sizeof(err)), 0);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    snprintf(kc, sizeof(kc), "%s/admin.kubeconfig", dir);
    assert_int_equal(kpki_kubeconfig(kc, "https://127.0.0.1:40123", ca, "admin",
                                     "0123456789abcdef0123456789abcdef", err, sizeof(err)),
                     0);
    struct stat st;
    assert_int_equal(stat(kc, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    struct kube_config cfg = {0};
    if (kube_config_load_file(kc, NULL, &cfg, err, sizeof(err)) != 0)
        fail_msg("lib/kube refused the kubeconfig: %s", err);
    assert_string_equal(cfg.server, "https://127.0.0.1:40123");
    assert_string_equal(cfg.token, "0123456789abcdef0123456789abcdef");
    assert_false(cfg.insecure_skip_verify);
    size_t len;
    char *pem = cl_read_file(ca, &len);
    assert_non_null(pem);
    assert_non_null(cfg.ca_pem);
    assert_string_equal(cfg.ca_pem, pem);
    free(pem);
    kube_config_free(&cfg);

    /* A place that cannot be written: an error, not a partial file. */
    assert_int_equal(
        kpki_kubeconfig("/nonexistent-dir/kc", "https://x:1", ca, "u", "t", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/kc"));
    assert_int_equal(
        kpki_kubeconfig(kc, "https://x:1", "/nonexistent-ca", "u", "t", err, sizeof(err)), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_certificates, setup, teardown),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test_setup_teardown(test_kubeconfig_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
