/* test_spiffe.c - SPIFFE ID parsing and extraction from minted certificates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/x509v3.h>

#include "tls/ca.h"
#include "tls/spiffe.h"

static const struct {
    const char *in;
    size_t len; /* 0: strlen */
    int ok;
} cases[] = {
    {"spiffe://cluster.local/ns/default/sa/client", 0, 1},
    {"spiffe://td/ns/a/sa/b", 0, 1},
    {"spiffe://td/ns/a/sa/b/", 0, 0},
    {"spiffe://td/ns/a/sa/b/c", 0, 0},
    {"spiffe://td/ns/a/sa", 0, 0},
    {"spiffe://td/xx/a/sa/b", 0, 0},
    {"spiffe://td/ns/a/xx/b", 0, 0},
    {"spiffe:///ns/a/sa/b", 0, 0},
    {"spiffe://td/ns//sa/b", 0, 0},
    {"SPIFFE://td/ns/a/sa/b", 0, 0},
    {"https://td/ns/a/sa/b", 0, 0},
    {"spiffe://td/ns/a b/sa/c", 0, 0},
    {"spiffe://td/ns/a\0evil/sa/b", 26, 0}, /* CVE-2025-66220 class: embedded NUL */
    {"spiffe://td/ns/a/sa/b\0evil", 26, 0},
    /* The specification's character sets only: nothing that could add a SAN or a log line. */
    {"spiffe://cluster.local/ns/a/sa/b,DNS:istiod.istio-system.svc", 0, 0},
    {"spiffe://cluster.local/ns/a:b/sa/c", 0, 0},
    {"spiffe://cluster.local/ns/a@b/sa/c", 0, 0},
    {"spiffe://cluster.local/ns/a%2Cb/sa/c", 0, 0},
    {"spiffe://td/ns/a\nb/sa/c", 0, 0},
    {"spiffe://Cluster.local/ns/a/sa/b", 0, 0}, /* trust domains are lower case */
    {"spiffe://cluster.local/ns/My_App-1.x/sa/Svc_2", 0, 1},
};

static void
test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct spiffe_id id;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        int rc = spiffe_parse(cases[i].in, len, &id);
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu (%s): got %d", i, cases[i].in, rc);
    }
}

static void
test_parts(void **state)
{
    struct spiffe_id id;
    (void)state;
    assert_int_equal(spiffe_make("cluster.local", "ns1", "sa1", &id), 0);
    assert_string_equal(id.uri, "spiffe://cluster.local/ns/ns1/sa/sa1");
    assert_string_equal(id.td, "cluster.local");
    assert_string_equal(id.ns, "ns1");
    assert_string_equal(id.sa, "sa1");
    assert_int_not_equal(spiffe_make("", "a", "b", &id), 0);
}

static void
test_from_minted_cert(void **state)
{
    struct spiffe_id id;
    const char *why;
    (void)state;
    struct ca *ca = ca_generate("test", 3600);
    assert_non_null(ca);
    EVP_PKEY *key = ca_new_key();
    X509 *cert = ca_issue(ca, key, "spiffe://cluster.local/ns/default/sa/x", 0, 3600);
    assert_non_null(cert);
    assert_int_equal(spiffe_from_cert(cert, &id, &why), 0);
    assert_string_equal(id.sa, "x");
    /* A root has no URI SAN: not a workload identity. */
    assert_int_not_equal(spiffe_from_cert(ca_root(ca), &id, &why), 0);
    X509_free(cert);
    EVP_PKEY_free(key);
    ca_free(ca);
}

/* A requested identity becomes exactly one URI SAN; nothing in it can add a name. */
static void
test_issue_one_uri(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("test", 3600);
    EVP_PKEY *key = ca_new_key();
    assert_null(ca_issue(ca, key, "spiffe://cluster.local/ns/a/sa/b,DNS:istiod.istio-system.svc",
                         0, 3600));
    assert_null(ca_issue(ca, key, "https://example.com/x", 0, 3600));
    X509 *cert = ca_issue(ca, key, "spiffe://cluster.local/ns/a/sa/b", 0, 3600);
    assert_non_null(cert);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(names), 1);
    assert_int_equal(sk_GENERAL_NAME_value(names, 0)->type, GEN_URI);
    GENERAL_NAMES_free(names);
    int idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
    assert_true(X509_EXTENSION_get_critical(X509_get_ext(cert, idx)));
    assert_int_equal(X509_check_host(cert, "istiod.istio-system.svc", 0, 0, NULL), 0);
    assert_int_equal(X509_verify(cert, ca_key(ca)), 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    ca_free(ca);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_from_minted_cert),
        cmocka_unit_test(test_issue_one_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
