/*
 * csr.c - creating and checking SPIFFE CSRs with OpenSSL.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "tls/csr.h"

char *
csr_create(EVP_PKEY *key, const char *uri)
{
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    X509_EXTENSION *ext = NULL;
    BIO *bio = NULL;
    char *out = NULL;

    if (req == NULL || exts == NULL || names == NULL || gn == NULL || ia5 == NULL ||
        !ASN1_STRING_set(ia5, uri, (int)strlen(uri)))
        goto out;
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(names, gn))
        goto out;
    gn = NULL;
    /* Critical: the subject is empty, the SAN is the whole identity (RFC 5280 4.2.1.6). */
    ext = X509V3_EXT_i2d(NID_subject_alt_name, 1, names);
    if (ext == NULL || !sk_X509_EXTENSION_push(exts, ext))
        goto out;
    ext = NULL;
    if (!X509_REQ_set_version(req, 0) || !X509_REQ_add_extensions(req, exts) ||
        !X509_REQ_set_pubkey(req, key) || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto out;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req))
        goto out;
    char *p;
    long n = BIO_get_mem_data(bio, &p);
    if (n > 0)
        out = xstrndup(p, (size_t)n);
out:
    ERR_clear_error();
    BIO_free(bio);
    X509_EXTENSION_free(ext);
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return out;
}

static bool
is_p256(EVP_PKEY *key)
{
    char group[64];
    size_t glen = 0;

    return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
           EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &glen) &&
           strcmp(group, "prime256v1") == 0;
}

/* The SAN of |req|: exactly one extension, exactly one URI, nothing else. */
static int
one_uri(X509_REQ *req, struct spiffe_id *id, const char **why)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    GENERAL_NAMES *names = NULL;
    int rc = -1, n_san = 0;

    *why = "no SubjectAltName";
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name)
            continue;
        if (++n_san > 1) {
            *why = "more than one SubjectAltName extension";
            goto out;
        }
        names = X509V3_EXT_d2i(e);
    }
    if (names == NULL)
        goto out;
    if (sk_GENERAL_NAME_num(names) != 1 || sk_GENERAL_NAME_value(names, 0)->type != GEN_URI) {
        *why = "SubjectAltName must hold exactly one URI";
        goto out;
    }
    const ASN1_IA5STRING *u = sk_GENERAL_NAME_value(names, 0)->d.uniformResourceIdentifier;
    if (spiffe_parse((const char *)ASN1_STRING_get0_data(u), (size_t)ASN1_STRING_length(u), id) < 0) {
        *why = "URI is not a SPIFFE workload identity";
        goto out;
    }
    rc = 0;
out:
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

EVP_PKEY *
csr_check(const char *pem, size_t len, struct spiffe_id *id, const char **why)
{
    BIO *bio = NULL;
    X509_REQ *req = NULL;
    EVP_PKEY *key = NULL;

    *why = "CSR larger than allowed";
    if (len == 0 || len > CSR_MAX_PEM)
        goto fail;
    *why = "not a PEM certificate request";
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL || (req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)) == NULL)
        goto fail;
    key = X509_REQ_get_pubkey(req);
    *why = "key is not ECDSA P-256";
    if (key == NULL || !is_p256(key))
        goto fail;
    *why = "signature does not verify";
    if (X509_REQ_verify(req, key) != 1)
        goto fail;
    if (one_uri(req, id, why) < 0)
        goto fail;
    X509_REQ_free(req);
    BIO_free(bio);
    ERR_clear_error();
    return key;
fail:
    EVP_PKEY_free(key);
    X509_REQ_free(req);
    BIO_free(bio);
    ERR_clear_error();
    return NULL;
}
