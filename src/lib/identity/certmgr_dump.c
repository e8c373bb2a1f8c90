/*
 * certmgr_dump.c - what the certificate manager holds, for tests and
 * config_dump: counters, the last failure, and each certificate as Istio's
 * ztunnel dumps it.
 */
#include <stdio.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/pem.h>

#include "identity/certmgr_internal.h"

const struct certmgr_stats *
certmgr_stats(const struct certmgr *c)
{
    return &c->stats;
}

const char *
certmgr_last_error(const struct certmgr *c, const char *identity)
{
    const struct cert_entry *e = certmgr_find(c, identity);
    return e != NULL ? e->last_error : NULL;
}

void
certmgr_each(const struct certmgr *c, certmgr_each_fn *fn, void *arg)
{
    for (const struct cert_entry *e = c->entries; e != NULL; e = e->next)
        if (e->creds != NULL)
            fn(arg, e->identity, e->creds);
}

/* ---- config_dump --------------------------------------------------------- */

/* One certificate as Istio's ztunnel dumps it: PEM, decimal serial, validity in RFC 3339. */
static json_t *
cert_json(X509 *x)
{
    char from[32], to[32];
    struct tm tm;
    time_t t;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *dec = bn ? BN_bn2dec(bn) : NULL;
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n = 0;

    if (b != NULL && PEM_write_bio_X509(b, x))
        n = BIO_get_mem_data(b, &pem);
    t = (time_t)tls_asn1_time_to_epoch(X509_get0_notBefore(x));
    gmtime_r(&t, &tm);
    strftime(from, sizeof(from), "%Y-%m-%dT%H:%M:%SZ", &tm);
    t = (time_t)tls_asn1_time_to_epoch(X509_get0_notAfter(x));
    gmtime_r(&t, &tm);
    strftime(to, sizeof(to), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s%, s:s, s:s, s:s}", "pem", pem ? pem : "", (size_t)(pem ? n : 0),
                          "serialNumber", dec ? dec : "", "validFrom", from, "expirationTime", to);
    BIO_free(b);
    OPENSSL_free(dec);
    BN_free(bn);
    return o;
}

void
certmgr_dump(const struct certmgr *c, json_t *arr)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next) {
        json_t *chain = json_array(), *roots = json_array();
        char state[200];
        if (e->creds == NULL) {
            snprintf(state, sizeof(state), "%s%s",
                     e->last_error[0] ? "Unavailable: " : "Initializing", e->last_error);
        } else {
            long now = certmgr_now_s();
            bool valid =
                now >= tls_creds_not_before(e->creds) && now < tls_creds_not_after(e->creds);
            snprintf(state, sizeof(state), "%s", valid ? "Available" : "Expired");
            json_array_append_new(chain, cert_json(tls_creds_cert(e->creds)));
            for (int i = 0; e->roots != NULL && i < sk_X509_num(e->roots); i++)
                json_array_append_new(roots, cert_json(sk_X509_value(e->roots, i)));
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o}", "identity", e->identity,
                                             "state", state, "certChain", chain, "rootCerts",
                                             roots));
    }
}
