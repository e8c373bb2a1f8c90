/*
 * unit_certs.c - see unit_certs.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tls/spiffe.h"
#include "unit_certs.h"

struct tls_creds *
unit_creds(const struct ca *issuer, const struct ca *trust, const char *td, const char *ns,
           const char *sa, long start_offset, long valid_secs)
{
    struct spiffe_id id;
    EVP_PKEY *key = ca_new_key();
    X509 *cert;
    struct tls_creds *c;

    if (key == NULL || spiffe_make(td, ns, sa, &id) < 0)
        abort();
    cert = ca_issue(issuer, key, id.uri, start_offset, valid_secs);
    if (cert == NULL)
        abort();
    c = tls_creds_new(&id, cert, key, tls_store_from_cert(ca_root(trust)), NULL);
    if (c == NULL) {
        fprintf(stderr, "tls_creds_new refused %s\n", id.uri);
        abort();
    }
    return c;
}

struct tls_creds *
unit_creds_simple(const struct ca *ca, const char *td, const char *ns, const char *sa)
{
    return unit_creds(ca, ca, td, ns, sa, -60, 3600);
}
