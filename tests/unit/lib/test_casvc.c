/*
 * test_casvc.c - node tokens and the certificate service: who may get which
 * identity, what the CA signs, and what a proxy accepts back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ca.pb-c.h"

#include "base/base.h"
#include "casvc/casvc.h"
#include "casvc/token.h"
#include "grpc/grpc.h"
#include "tls/csr.h"

#define ID_CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define ID_ADMIN "spiffe://cluster.local/ns/kube-system/sa/admin"

static const uint8_t key_a[TOKEN_KEY_LEN] = {1, 2, 3};
static const uint8_t key_b[TOKEN_KEY_LEN] = {9, 9, 9};

static void
test_token_roundtrip(void **state)
{
    char tok[TOKEN_MAX_LEN], node[TOKEN_NODE_MAX + 1];
    const char *why;
    (void)state;
    assert_int_equal(token_mint(key_a, "node-1", 2000, tok, sizeof(tok)), 0);
    assert_int_equal(token_verify(key_a, tok, strlen(tok), 1000, node, &why), 0);
    assert_string_equal(node, "node-1");
    /* Expired, other key, tampered node name, truncated, trailing junk. */
    assert_int_equal(token_verify(key_a, tok, strlen(tok), 2000, node, &why), -MESH_EDENIED);
    assert_string_equal(why, "token expired");
    assert_int_equal(token_verify(key_b, tok, strlen(tok), 1000, node, &why), -MESH_EDENIED);
    assert_string_equal(why, "token signature does not verify");
    char forged[TOKEN_MAX_LEN + 8];
    snprintf(forged, sizeof(forged), "v1:node-2%s", tok + strlen("v1:node-1"));
    assert_int_equal(token_verify(key_a, forged, strlen(forged), 1000, node, &why), -MESH_EDENIED);
    assert_int_equal(token_verify(key_a, tok, strlen(tok) - 1, 1000, node, &why), -MESH_EDENIED);
    snprintf(forged, sizeof(forged), "%sx", tok);
    assert_int_equal(token_verify(key_a, forged, strlen(forged), 1000, node, &why), -MESH_EDENIED);
    /* An embedded NUL does not shorten what is checked. */
    memcpy(forged, tok, strlen(tok) + 1);
    forged[4] = '\0';
    assert_int_equal(token_verify(key_a, forged, strlen(tok), 1000, node, &why), -MESH_EDENIED);
    assert_int_equal(token_verify(key_a, "", 0, 1000, node, &why), -MESH_EDENIED);
    assert_int_equal(token_verify(key_a, "Bearer x", 8, 1000, node, &why), -MESH_EDENIED);
}

static void
test_token_node_names(void **state)
{
    char tok[TOKEN_MAX_LEN];
    (void)state;
    assert_true(token_node_valid("ip-10-0-0-1.ec2.internal"));
    assert_false(token_node_valid(""));
    assert_false(token_node_valid("-a"));
    assert_false(token_node_valid("a:b"));
    assert_false(token_node_valid("Node"));
    assert_int_equal(token_mint(key_a, "a:b", 10, tok, sizeof(tok)), -EINVAL);
    assert_int_equal(token_mint(key_a, "ok", 10, tok, 20), -EINVAL);
}

/* The authorizer: node-1 runs default/client; nothing else runs anywhere. */
static int authorize_calls;
static bool
authorize(void *arg, const char *node, const struct spiffe_id *id)
{
    (void)arg;
    authorize_calls++;
    return strcmp(node, "node-1") == 0 && strcmp(id->ns, "default") == 0 &&
           strcmp(id->sa, "client") == 0;
}

static const struct casvc_policy policy = {
    .trust_domain = "cluster.local",
    .default_ttl = 3600,
    .max_ttl = 7200,
    .authorize = authorize,
};

static void
test_sign_and_accept(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400);
    EVP_PKEY *key;
    uint8_t *req, *resp;
    size_t len, rlen;
    struct casvc_result res;
    char err[256];

    assert_int_equal(casvc_request(ID_CLIENT, 0, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    assert_string_equal(res.id.uri, ID_CLIENT);
    assert_int_equal(res.ttl, 3600);
    assert_true(strlen(res.serial) > 0);

    /* Leaf first, root last, as istiod answers. */
    Istio__V1__Auth__IstioCertificateResponse *r =
        istio__v1__auth__istio_certificate_response__unpack(NULL, rlen, resp);
    assert_non_null(r);
    assert_int_equal(r->n_cert_chain, 2);
    BIO *b = BIO_new_mem_buf(r->cert_chain[1], -1);
    X509 *root = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_int_equal(X509_cmp(root, ca_root(ca)), 0);
    X509_free(root);
    istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);

    STACK_OF(X509) *roots = NULL;
    struct tls_creds *c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, &roots, err, sizeof(err));
    assert_non_null(c);
    assert_string_equal(tls_creds_id(c)->uri, ID_CLIENT);
    /* The trust bundle handed back is the CA's root. */
    assert_int_equal(sk_X509_num(roots), 1);
    assert_int_equal(X509_cmp(sk_X509_value(roots, 0), ca_root(ca)), 0);
    sk_X509_pop_free(roots, X509_free);
    long life = tls_creds_not_after(c) - tls_creds_not_before(c);
    assert_true(life >= 3600 && life <= 3600 + 120);
    tls_creds_unref(c);
    free(req);
    free(resp);

    /* A short lifetime is backdated by a quarter at most, so half-life stays ahead. */
    assert_int_equal(casvc_request(ID_CLIENT, 60, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    long now = (long)time(NULL);
    long half = tls_creds_not_before(c) + (tls_creds_not_after(c) - tls_creds_not_before(c)) / 2;
    assert_true(now - tls_creds_not_before(c) <= 16);
    assert_true(half - now >= 20);
    tls_creds_unref(c);
    free(req);
    free(resp);

    /* A long request is capped at the policy maximum. */
    assert_int_equal(casvc_request(ID_CLIENT, 90L * 86400, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res),
                     GRPC_STATUS_OK);
    assert_int_equal(res.ttl, 7200);
    EVP_PKEY_free(key);
    free(req);
    free(resp);
    ca_free(ca);
}

static void
expect_refused(struct ca *ca, const char *node, const uint8_t *req, size_t len, int status,
               const char *why)
{
    uint8_t *resp = (uint8_t *)"x";
    size_t rlen = 1;
    struct casvc_result res;
    int rc = casvc_sign(ca, &policy, node, req, len, &resp, &rlen, &res);
    assert_int_equal(rc, status);
    assert_null(resp);
    assert_int_equal(rlen, 0);
    if (strstr(res.why, why) == NULL)
        fail_msg("refused with \"%s\", wanted \"%s\"", res.why, why);
}

/* A request with a hand-made CSR and an optional impersonated identity. */
static uint8_t *
raw_request(const char *csr, const char *imp, long ttl, size_t *len)
{
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = (char *)imp;
    Google__Protobuf__Struct__FieldsEntry f = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    f.key = (char *)CASVC_IMPERSONATE;
    f.value = &v;
    Google__Protobuf__Struct__FieldsEntry *fields[1] = {&f};
    Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
    md.n_fields = 1;
    md.fields = fields;
    Istio__V1__Auth__IstioCertificateRequest r = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
    r.csr = (char *)csr;
    r.validity_duration = ttl;
    r.metadata = imp ? &md : NULL;
    *len = istio__v1__auth__istio_certificate_request__get_packed_size(&r);
    uint8_t *out = malloc(*len + 1);
    istio__v1__auth__istio_certificate_request__pack(&r, out);
    return out;
}

static char *
csr_with(EVP_PKEY *k, const char *san)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    sk_X509_EXTENSION_push(exts, e);
    X509_REQ_add_extensions(req, exts);
    X509_REQ_set_pubkey(req, k);
    assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
    PEM_write_bio_X509_REQ(bio, req);
    long n = BIO_get_mem_data(bio, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(bio);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return out;
}

static void
test_refusals(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400);
    EVP_PKEY *p256 = ca_new_key(), *rsa = EVP_RSA_gen(2048);
    uint8_t *req;
    size_t len;
    char *csr;

    /* Another node asks for node-1's identity; an identity with no pod on the node. */
    csr = csr_create(p256, ID_CLIENT);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-2", req, len, GRPC_STATUS_UNAUTHENTICATED, "no pod on node node-2");
    free(req);
    free(csr);
    csr = csr_create(p256, ID_ADMIN);
    req = raw_request(csr, ID_ADMIN, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED,
                   "runs as service account kube-system/admin");
    free(req);
    free(csr);
    /* The CSR names one identity, the metadata another. */
    csr = csr_create(p256, ID_ADMIN);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED, "differs");
    free(req);
    free(csr);
    /* Two SANs; an RSA key; another trust domain; a bad impersonation; negative TTL. */
    csr = csr_with(p256, "URI:" ID_CLIENT ",URI:" ID_ADMIN);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "exactly one URI");
    free(req);
    free(csr);
    csr = csr_with(rsa, "URI:" ID_CLIENT);
    req = raw_request(csr, ID_CLIENT, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "P-256");
    free(req);
    free(csr);
    csr = csr_create(p256, "spiffe://evil.example/ns/default/sa/client");
    req = raw_request(csr, NULL, 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_UNAUTHENTICATED, "outside trust domain");
    free(req);
    free(csr);
    csr = csr_create(p256, ID_CLIENT);
    req = raw_request(csr, "not-spiffe", 0, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "not a SPIFFE ID");
    free(req);
    req = raw_request(csr, ID_CLIENT, -5, &len);
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "negative");
    free(req);
    free(csr);
    /* Garbage and empty requests. */
    expect_refused(ca, "node-1", (const uint8_t *)"\xff\xff\xff", 3, GRPC_STATUS_INVALID_ARGUMENT,
                   "does not decode");
    /*
     * metadata (field 4, a Struct) nested 60 levels: refused before protobuf-c
     * sees it, and marked malformed so meshd may tell the caller why.
     */
    uint8_t deep[6 + 120] = {0x22, 0x7c, 0x0a, 0x7a, 0x12, 0x78};
    for (size_t i = 0; i < 120; i += 2) {
        deep[6 + i] = i % 4 == 0 ? 0x32 : 0x0a; /* Value.list_value, ListValue.values */
        deep[6 + i + 1] = (uint8_t)(120 - i - 2);
    }
    expect_refused(ca, "node-1", deep, sizeof(deep), GRPC_STATUS_INVALID_ARGUMENT,
                   "request does not decode: nested deeper than 32 messages");
    struct casvc_result res;
    uint8_t *resp = NULL;
    size_t rlen = 0;
    casvc_sign(ca, &policy, "node-1", deep, sizeof(deep), &resp, &rlen, &res);
    assert_true(res.malformed);
    req = raw_request("", NULL, 0, &len);
    casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res);
    assert_false(res.malformed); /* it decodes; the CSR is what is wrong */
    expect_refused(ca, "node-1", req, len, GRPC_STATUS_INVALID_ARGUMENT, "CSR missing");
    free(req);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(rsa);
    ca_free(ca);
}

/* The proxy refuses answers it did not ask for. */
static void
test_client_checks(void **state)
{
    (void)state;
    struct ca *ca = ca_generate("mesh", 86400), *other = ca_generate("other", 86400);
    EVP_PKEY *key, *key2;
    uint8_t *req, *resp;
    size_t len, rlen;
    struct casvc_result res;
    char err[256];

    assert_int_equal(casvc_request(ID_CLIENT, 0, &key, &req, &len), 0);
    assert_int_equal(casvc_sign(ca, &policy, "node-1", req, len, &resp, &rlen, &res), 0);
    /* Wrong identity expected, another key. */
    assert_null(casvc_response(resp, rlen, ID_ADMIN, key, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "asked for"));
    key2 = ca_new_key();
    assert_null(casvc_response(resp, rlen, ID_CLIENT, key2, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "another key"));
    /* A chain whose root is not the signer. */
    Istio__V1__Auth__IstioCertificateResponse *r =
        istio__v1__auth__istio_certificate_response__unpack(NULL, rlen, resp);
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    PEM_write_bio_X509(b, ca_root(other));
    long n = BIO_get_mem_data(b, &p);
    char *swapped = strndup(p, (size_t)n);
    BIO_free(b);
    char *keep = r->cert_chain[1];
    r->cert_chain[1] = swapped;
    size_t blen = istio__v1__auth__istio_certificate_response__get_packed_size(r);
    uint8_t *bad = malloc(blen);
    istio__v1__auth__istio_certificate_response__pack(r, bad);
    assert_null(casvc_response(bad, blen, ID_CLIENT, key, NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "does not verify"));
    r->cert_chain[1] = keep;
    free(swapped);
    free(bad);
    /* A leaf alone, and garbage. */
    r->n_cert_chain = 1;
    blen = istio__v1__auth__istio_certificate_response__get_packed_size(r);
    bad = malloc(blen);
    istio__v1__auth__istio_certificate_response__pack(r, bad);
    assert_null(casvc_response(bad, blen, ID_CLIENT, key, NULL, NULL, err, sizeof(err)));
    r->n_cert_chain = 2;
    free(bad);
    istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);
    assert_null(casvc_response((const uint8_t *)"\x0a\x03" "abc", 5, ID_CLIENT, key, NULL, NULL,
                               err, sizeof(err)));
    /* The key survives every refusal and is still good for the real answer. */
    struct tls_creds *c = casvc_response(resp, rlen, ID_CLIENT, key, NULL, NULL, err, sizeof(err));
    assert_non_null(c);
    tls_creds_unref(c);
    EVP_PKEY_free(key2);
    free(req);
    free(resp);
    ca_free(ca);
    ca_free(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_roundtrip),
        cmocka_unit_test(test_token_node_names),
        cmocka_unit_test(test_sign_and_accept),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_client_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
