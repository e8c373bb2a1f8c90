/*
 * casvc.c - the CA's side of CreateCertificate: authorize, then sign.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "ca.pb-c.h"

#include "base/base.h"
#include "casvc/casvc.h"
#include "grpc/grpc.h"
#include "pbcheck/pbcheck.h"
#include "tls/csr.h"

/*
 * Peers' clocks may run a little behind ours: start validity a little early,
 * a minute at most and a quarter of the lifetime for short ones, so the
 * half-life (counted from notBefore) stays in the future.
 */
#define CASVC_BACKDATE_MAX 60L

static const char *
metadata_string(const Google__Protobuf__Struct *md, const char *key)
{
    if (md == NULL)
        return NULL;
    for (size_t i = 0; i < md->n_fields; i++) {
        const Google__Protobuf__Struct__FieldsEntry *f = md->fields[i];
        if (f->key != NULL && strcmp(f->key, key) == 0 && f->value != NULL &&
            f->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            return f->value->string_value;
    }
    return NULL;
}

/* PEM text of |x| as a heap string, or NULL. */
static char *
casvc_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *p;
    if (b != NULL && PEM_write_bio_X509(b, x)) {
        long n = BIO_get_mem_data(b, &p);
        out = xmalloc((size_t)n + 1);
        memcpy(out, p, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    return out;
}

static void
serial_hex(X509 *x, char *out, size_t outlen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(out, outlen, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

__attribute__((format(printf, 3, 4))) static int
refuse(struct casvc_result *res, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->why, sizeof(res->why), fmt, ap);
    va_end(ap);
    return status;
}

int
casvc_sign(const struct ca *ca, const struct casvc_policy *p, const char *node,
           const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
           struct casvc_result *res)
{
    Istio__V1__Auth__IstioCertificateRequest *r = NULL;
    EVP_PKEY *pub = NULL;
    X509 *leaf = NULL;
    struct spiffe_id csr_id;
    const char *why = NULL;
    char pbwhy[PB_ERR_MAX];
    int status;

    memset(res, 0, sizeof(*res));
    *resp = NULL;
    *resp_len = 0;
    r = pb_unpack_checked(&istio__v1__auth__istio_certificate_request__descriptor, req, len,
                          CASVC_MAX_REQUEST, pbwhy, sizeof(pbwhy));
    if (r == NULL) {
        res->malformed = true;
        return refuse(res, GRPC_STATUS_INVALID_ARGUMENT, "request does not decode: %s", pbwhy);
    }
    size_t csr_len = r->csr ? strlen(r->csr) : 0;
    if (csr_len == 0 || csr_len > CSR_MAX_PEM) {
        status = refuse(res, GRPC_STATUS_INVALID_ARGUMENT, "CSR missing or too large");
        goto out;
    }
    if ((pub = csr_check(r->csr, csr_len, &csr_id, &why)) == NULL) {
        status = refuse(res, GRPC_STATUS_INVALID_ARGUMENT, "CSR refused: %s", why);
        goto out;
    }
    res->id = csr_id;
    res->have_id = true;
    /*
     * A node proxy names the workload identity it wants in metadata; istiod
     * then overwrites the SANs with it. We insist they agree instead, so the
     * signed key is the one that asked for that name.
     */
    const char *imp = metadata_string(r->metadata, CASVC_IMPERSONATE);
    if (imp != NULL) {
        struct spiffe_id iid;
        if (spiffe_parse(imp, strlen(imp), &iid) < 0) {
            status = refuse(res, GRPC_STATUS_INVALID_ARGUMENT,
                            "impersonated identity is not a SPIFFE ID");
            goto out;
        }
        if (strcmp(iid.uri, csr_id.uri) != 0) {
            status = refuse(res, GRPC_STATUS_UNAUTHENTICATED,
                            "impersonated identity %s differs from the CSR's %s", iid.uri,
                            csr_id.uri);
            goto out;
        }
    }
    if (strcmp(csr_id.td, p->trust_domain) != 0) {
        status = refuse(res, GRPC_STATUS_UNAUTHENTICATED, "%s is outside trust domain %s",
                        csr_id.uri, p->trust_domain);
        goto out;
    }
    if (p->authorize == NULL || !p->authorize(p->arg, node, &csr_id)) {
        char who[300];
        snprintf(who, sizeof(who), "%s/%s", csr_id.ns, csr_id.sa);
        status = refuse(res, GRPC_STATUS_UNAUTHENTICATED,
                        "no pod on node %s runs as service account %s", node, who);
        goto out;
    }
    long ttl = (long)r->validity_duration;
    if (r->validity_duration < 0) {
        status = refuse(res, GRPC_STATUS_INVALID_ARGUMENT, "negative validity");
        goto out;
    }
    if (ttl == 0)
        ttl = p->default_ttl;
    if (ttl > p->max_ttl)
        ttl = p->max_ttl;
    res->ttl = ttl;
    long backdate = ttl / 4 < CASVC_BACKDATE_MAX ? ttl / 4 : CASVC_BACKDATE_MAX;
    if ((leaf = ca_issue(ca, pub, csr_id.uri, -backdate, ttl + backdate)) == NULL) {
        status = refuse(res, GRPC_STATUS_UNAVAILABLE, "signing failed");
        goto out;
    }
    serial_hex(leaf, res->serial, sizeof(res->serial));

    /* Leaf first, root last (reference 4.1). */
    char *chain[2] = {casvc_pem(leaf), casvc_pem(ca_root(ca))};
    Istio__V1__Auth__IstioCertificateResponse out = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_RESPONSE__INIT;
    out.n_cert_chain = 2;
    out.cert_chain = chain;
    status = GRPC_STATUS_UNAVAILABLE;
    if (chain[0] != NULL && chain[1] != NULL) {
        *resp_len = istio__v1__auth__istio_certificate_response__get_packed_size(&out);
        *resp = xmalloc(*resp_len ? *resp_len : 1);
        istio__v1__auth__istio_certificate_response__pack(&out, *resp);
        status = GRPC_STATUS_OK;
    }
    free(chain[0]);
    free(chain[1]);
out:
    X509_free(leaf);
    EVP_PKEY_free(pub);
    istio__v1__auth__istio_certificate_request__free_unpacked(r, NULL);
    ERR_clear_error();
    return status;
}
