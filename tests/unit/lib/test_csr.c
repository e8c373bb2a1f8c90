/* test_csr.c - SPIFFE CSRs: what the workload side creates, and what the CA side refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/ca.h"
#include "tls/csr.h"

#define URI "spiffe://cluster.local/ns/default/sa/client"

/* A CSR with |san| (an OpenSSL config string, or NULL for none), key |pub|, signed by |signer|. */
static char *
make_csr(EVP_PKEY *pub, EVP_PKEY *signer, const char *san)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    BIO *bio = BIO_new(BIO_s_mem());
    char *p, *out;

    if (san != NULL) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
        assert_non_null(e);
        sk_X509_EXTENSION_push(exts, e);
        X509_REQ_add_extensions(req, exts);
    }
    X509_REQ_set_pubkey(req, signer);
    assert_true(X509_REQ_sign(req, signer, EVP_sha256()) > 0);
    if (pub != signer)
        X509_REQ_set_pubkey(req, pub); /* the signature no longer matches */
    assert_true(PEM_write_bio_X509_REQ(bio, req));
    long n = BIO_get_mem_data(bio, &p);
    out = strndup(p, (size_t)n);
    BIO_free(bio);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return out;
}

static void
test_create_then_check(void **state)
{
    struct spiffe_id id;
    const char *why = NULL;
    (void)state;
    EVP_PKEY *key = ca_new_key();
    char *pem = csr_create(key, URI);
    assert_non_null(pem);
    EVP_PKEY *pub = csr_check(pem, strlen(pem), &id, &why);
    assert_non_null(pub);
    assert_string_equal(id.uri, URI);
    assert_int_equal(EVP_PKEY_eq(pub, key), 1);
    /* The CA can sign what it accepted, and the leaf carries the same identity. */
    struct ca *ca = ca_generate("t", 3600);
    X509 *leaf = ca_issue(ca, pub, id.uri, 0, 3600);
    assert_non_null(leaf);
    struct spiffe_id got;
    assert_int_equal(spiffe_from_cert(leaf, &got, &why), 0);
    assert_string_equal(got.uri, URI);
    X509_free(leaf);
    ca_free(ca);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    free(pem);
}

static void
expect_refused(const char *pem, const char *reason)
{
    struct spiffe_id id;
    const char *why = NULL;
    EVP_PKEY *k = csr_check(pem, strlen(pem), &id, &why);
    if (k != NULL)
        fail_msg("accepted a CSR that should fail with \"%s\"", reason);
    assert_non_null(why);
    if (strstr(why, reason) == NULL)
        fail_msg("refused with \"%s\", wanted \"%s\"", why, reason);
}

static void
test_refusals(void **state)
{
    (void)state;
    EVP_PKEY *p256 = ca_new_key(), *other = ca_new_key();
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    char *pem;

    pem = make_csr(p256, p256, "URI:" URI ",URI:spiffe://cluster.local/ns/default/sa/admin");
    expect_refused(pem, "exactly one URI");
    free(pem);
    pem = make_csr(p256, p256, "URI:" URI ",DNS:evil.example");
    expect_refused(pem, "exactly one URI");
    free(pem);
    pem = make_csr(p256, p256, "DNS:client.default.svc");
    expect_refused(pem, "exactly one URI");
    free(pem);
    pem = make_csr(p256, p256, "URI:https://example.com/x");
    expect_refused(pem, "not a SPIFFE");
    free(pem);
    pem = make_csr(p256, p256, NULL);
    expect_refused(pem, "no SubjectAltName");
    free(pem);
    pem = make_csr(p384, p384, "URI:" URI);
    expect_refused(pem, "P-256");
    free(pem);
    pem = make_csr(other, p256, "URI:" URI);
    expect_refused(pem, "signature");
    free(pem);
    expect_refused("not a CSR at all", "not a PEM");
    expect_refused("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                   "not a PEM");
    char *big = malloc(CSR_MAX_PEM + 2);
    memset(big, 'A', CSR_MAX_PEM + 1);
    big[CSR_MAX_PEM + 1] = '\0';
    expect_refused(big, "larger");
    free(big);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(other);
    EVP_PKEY_free(p384);
}

/* A CSR made by `openssl req` (not by amesh) for a SPIFFE URI is accepted. */
static void
test_openssl_cli_csr(void **state)
{
    char pem[CSR_MAX_PEM];
    struct spiffe_id id;
    const char *why = NULL;
    (void)state;
    FILE *f = fopen(MESH_SOURCE_DIR "/fuzz/corpus/fuzz_csr/valid.pem", "r");
    assert_non_null(f);
    size_t n = fread(pem, 1, sizeof(pem), f);
    fclose(f);
    EVP_PKEY *k = csr_check(pem, n, &id, &why);
    if (k == NULL)
        fail_msg("refused: %s", why);
    assert_string_equal(id.uri, URI);
    EVP_PKEY_free(k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_check),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_openssl_cli_csr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
