/*
 * ca.c - root loading and leaf issuance with OpenSSL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "base/base.h"
#include "tls/ca.h"
#include "tls/spiffe.h"

struct ca {
    X509 *cert;
    EVP_PKEY *key;
};

X509 *
ca_root(const struct ca *ca)
{
    return ca->cert;
}

EVP_PKEY *
ca_key(const struct ca *ca)
{
    return ca->key;
}

EVP_PKEY *
ca_new_key(void)
{
    return EVP_EC_gen("P-256");
}

struct ca *
ca_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
    struct ca *ca = xcalloc(1, sizeof(*ca));
    FILE *f;

    if ((f = fopen(cert_path, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s", cert_path, strerror(errno));
        goto fail;
    }
    ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->cert == NULL) {
        snprintf(err, errlen, "%s: not a PEM certificate", cert_path);
        goto fail;
    }
    if ((f = fopen(key_path, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s", key_path, strerror(errno));
        goto fail;
    }
    ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (ca->key == NULL) {
        snprintf(err, errlen, "%s: not a PEM private key", key_path);
        goto fail;
    }
    if (!X509_check_private_key(ca->cert, ca->key)) {
        snprintf(err, errlen, "%s does not match %s", key_path, cert_path);
        goto fail;
    }
    if (X509_check_ca(ca->cert) == 0) {
        snprintf(err, errlen, "%s is not a CA certificate", cert_path);
        goto fail;
    }
    ERR_clear_error();
    return ca;
fail:
    ERR_clear_error();
    ca_free(ca);
    return NULL;
}

void
ca_free(struct ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int
set_serial(X509 *cert)
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x01; /* never zero, always 16 bytes */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
    int ok = ai != NULL && X509_set_serialNumber(cert, ai);
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return ok ? 0 : -1;
}

/*
 * A leaf with the usual extensions and, if |sans| is not NULL, that SAN list,
 * signed. With NULL it comes back unsigned for the caller to finish.
 */
static X509 *
leaf_new(const struct ca *ca, EVP_PKEY *pub, const char *sans, long start_offset, long valid_secs)
{
    X509 *cert = X509_new();

    if (cert == NULL || (sans != NULL && strlen(sans) > 2048))
        goto fail;
    if (!X509_set_version(cert, 2) || set_serial(cert) < 0 ||
        !X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) ||
        X509_gmtime_adj(X509_getm_notBefore(cert), start_offset) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), start_offset + valid_secs) == NULL ||
        !X509_set_pubkey(cert, pub))
        goto fail;
    if (add_ext(cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
        add_ext(cert, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        (sans != NULL && add_ext(cert, ca->cert, NID_subject_alt_name, sans) < 0))
        goto fail;
    /* Optional: a root made elsewhere may carry no key identifier to point at. */
    if (add_ext(cert, ca->cert, NID_authority_key_identifier, "keyid") < 0)
        ERR_clear_error();
    if (sans == NULL)
        return cert; /* unsigned: the caller adds the SAN and signs */
    /* An empty subject requires the SAN to be critical (RFC 5280 4.2.1.6). */
    int idx = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
    X509_EXTENSION_set_critical(X509_get_ext(cert, idx), 1);
    if (X509_sign(cert, ca->key, EVP_sha256()) == 0)
        goto fail;
    return cert;
fail:
    ERR_clear_error();
    X509_free(cert);
    return NULL;
}

X509 *
ca_issue_sans(const struct ca *ca, EVP_PKEY *pub, const char *sans, long start_offset,
              long valid_secs)
{
    return sans != NULL ? leaf_new(ca, pub, sans, start_offset, valid_secs) : NULL;
}

X509 *
ca_issue(const struct ca *ca, EVP_PKEY *pub, const char *uri, long start_offset, long valid_secs)
{
    struct spiffe_id id;
    X509 *cert = NULL;
    GENERAL_NAMES *names = NULL;
    GENERAL_NAME *gn = NULL;
    ASN1_IA5STRING *ia5 = NULL;

    /*
     * The URI goes into the SAN as one IA5String, not through OpenSSL's
     * config syntax ("URI:...,DNS:..."), so nothing in it can add a name.
     */
    if (spiffe_parse(uri, strlen(uri), &id) < 0)
        return NULL;
    if ((cert = leaf_new(ca, pub, NULL, start_offset, valid_secs)) == NULL)
        return NULL;
    if ((names = GENERAL_NAMES_new()) == NULL || (gn = GENERAL_NAME_new()) == NULL ||
        (ia5 = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(ia5, uri, (int)strlen(uri)))
        goto fail;
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(names, gn))
        goto fail;
    gn = NULL;
    /* An empty subject requires the SAN to be critical (RFC 5280 4.2.1.6). */
    if (!X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 1, X509V3_ADD_DEFAULT) ||
        X509_sign(cert, ca->key, EVP_sha256()) == 0)
        goto fail;
    GENERAL_NAMES_free(names);
    return cert;
fail:
    ERR_clear_error();
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    X509_free(cert);
    return NULL;
}

struct ca *
ca_generate(const char *common_name, long valid_secs)
{
    struct ca *ca = xcalloc(1, sizeof(*ca));
    X509_NAME *name;

    ca->key = ca_new_key();
    ca->cert = X509_new();
    if (ca->key == NULL || ca->cert == NULL)
        goto fail;
    name = X509_get_subject_name(ca->cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"amesh", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)common_name, -1,
                               -1, 0);
    if (!X509_set_version(ca->cert, 2) || set_serial(ca->cert) < 0 ||
        !X509_set_issuer_name(ca->cert, name) ||
        X509_gmtime_adj(X509_getm_notBefore(ca->cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(ca->cert), valid_secs) == NULL ||
        !X509_set_pubkey(ca->cert, ca->key))
        goto fail;
    if (add_ext(ca->cert, ca->cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(ca->cert, ca->cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        X509_sign(ca->cert, ca->key, EVP_sha256()) == 0)
        goto fail;
    return ca;
fail:
    ERR_clear_error();
    ca_free(ca);
    return NULL;
}

int
ca_save(const struct ca *ca, const char *cert_path, const char *key_path)
{
    FILE *f = fopen(cert_path, "w");
    if (f == NULL)
        return -errno;
    int ok = PEM_write_X509(f, ca->cert);
    fclose(f);
    if (!ok)
        return -EIO;
    if (key_path == NULL)
        return 0;
    mode_t old = umask(077);
    f = fopen(key_path, "w");
    umask(old);
    if (f == NULL)
        return -errno;
    ok = PEM_write_PrivateKey(f, ca->key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    return ok ? 0 : -EIO;
}
