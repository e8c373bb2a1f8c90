/*
 * casvc_client.c - a node proxy's side of CreateCertificate: build the
 * request, then trust nothing in the answer that it did not ask for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca.pb-c.h"

#include "base/base.h"
#include "casvc/casvc.h"
#include "pbcheck/pbcheck.h"
#include "tls/csr.h"

int
casvc_request(const char *identity, long ttl, EVP_PKEY **key, uint8_t **req, size_t *len)
{
    EVP_PKEY *k = ca_new_key();
    char *csr = k ? csr_create(k, identity) : NULL;
    if (csr == NULL) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return -MESH_EPROTO;
    }
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    v.string_value = (char *)identity;
    Google__Protobuf__Struct__FieldsEntry f = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    f.key = (char *)CASVC_IMPERSONATE;
    f.value = &v;
    Google__Protobuf__Struct__FieldsEntry *fields[1] = {&f};
    Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
    md.n_fields = 1;
    md.fields = fields;
    Istio__V1__Auth__IstioCertificateRequest r = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
    r.csr = csr;
    r.validity_duration = ttl;
    r.metadata = &md;
    *len = istio__v1__auth__istio_certificate_request__get_packed_size(&r);
    *req = xmalloc(*len);
    istio__v1__auth__istio_certificate_request__pack(&r, *req);
    free(csr);
    *key = k;
    return 0;
}

/* Appends every certificate in PEM |text| to |out|; returns how many, or -1 on junk. */
static int
read_pems(const char *text, STACK_OF(X509) *out)
{
    size_t n = strlen(text);
    BIO *b = BIO_new_mem_buf(text, n > INT32_MAX ? -1 : (int)n);
    int count = 0;
    X509 *x;
    if (b == NULL)
        return -1;
    while (count < CASVC_MAX_CHAIN && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(out, x)) {
            X509_free(x);
            break;
        }
        count++;
    }
    BIO_free(b);
    ERR_clear_error(); /* the loop ends on "no start line" */
    return count;
}

struct tls_creds *
casvc_response(const uint8_t *resp, size_t len, const char *identity, EVP_PKEY *key,
               const struct tls_opts *o, STACK_OF(X509) **roots_out, char *err, size_t errlen)
{
    Istio__V1__Auth__IstioCertificateResponse *r = NULL;
    STACK_OF(X509) *leafs = sk_X509_new_null(), *mid = sk_X509_new_null(),
                   *roots = sk_X509_new_null();
    X509_STORE *store = NULL;
    X509_STORE_CTX *vctx = NULL;
    struct tls_creds *creds = NULL;
    struct spiffe_id id;
    const char *why = NULL;
    char pbwhy[PB_ERR_MAX];

    if (leafs == NULL || mid == NULL || roots == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    r = pb_unpack_checked(&istio__v1__auth__istio_certificate_response__descriptor, resp, len,
                          CASVC_MAX_RESPONSE, pbwhy, sizeof(pbwhy));
    if (r == NULL) {
        snprintf(err, errlen, "response does not decode: %s", pbwhy);
        goto out;
    }
    if (r->n_cert_chain < 2 || r->n_cert_chain > CASVC_MAX_CHAIN) {
        snprintf(err, errlen, "response has %zu chain elements (want leaf ... root)",
                 r->n_cert_chain);
        goto out;
    }
    /* Leaf first; intermediates one per element; the last element may hold several roots. */
    if (read_pems(r->cert_chain[0], leafs) != 1 ||
        read_pems(r->cert_chain[r->n_cert_chain - 1], roots) < 1) {
        snprintf(err, errlen, "chain elements are not single PEM certificates");
        goto out;
    }
    for (size_t i = 1; i + 1 < r->n_cert_chain; i++)
        if (read_pems(r->cert_chain[i], mid) != 1) {
            snprintf(err, errlen, "intermediate %zu is not a PEM certificate", i);
            goto out;
        }
    X509 *leaf = sk_X509_value(leafs, 0);
    if (spiffe_from_cert(leaf, &id, &why) < 0 || strcmp(id.uri, identity) != 0) {
        snprintf(err, errlen, "CA returned a certificate for %s, asked for %s",
                 why ? why : id.uri, identity);
        goto out;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        snprintf(err, errlen, "CA returned a certificate for another key");
        goto out;
    }
    if ((store = X509_STORE_new()) == NULL || (vctx = X509_STORE_CTX_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(roots); i++)
        X509_STORE_add_cert(store, sk_X509_value(roots, i));
    if (!X509_STORE_CTX_init(vctx, store, leaf, mid) || X509_verify_cert(vctx) != 1) {
        snprintf(err, errlen, "returned certificate does not verify: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
        goto out;
    }
    /* tls_creds_new() owns what it is given, even when it fails: lend it references. */
    X509_up_ref(leaf);
    X509_STORE_up_ref(store);
    EVP_PKEY_up_ref(key);
    creds = tls_creds_new(&id, leaf, key, store, o);
    if (creds == NULL)
        snprintf(err, errlen, "credentials rejected by TLS");
    else
        EVP_PKEY_free(key); /* the credentials hold the caller's reference now */
    if (creds != NULL && roots_out != NULL) {
        *roots_out = roots;
        roots = NULL;
    }
out:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    sk_X509_pop_free(leafs, X509_free);
    sk_X509_pop_free(mid, X509_free);
    sk_X509_pop_free(roots, X509_free);
    istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);
    ERR_clear_error();
    return creds;
}
