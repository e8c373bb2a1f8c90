/*
 * spiffe.c - SPIFFE ID parsing and extraction from X.509 URI SANs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "tls/spiffe.h"

/*
 * The SPIFFE ID specification's character sets: a trust domain is lower-case
 * letters, digits, '.', '-' and '_'; a path segment also allows upper case.
 * Nothing else may pass: an identity ends up in certificates and logs, and a
 * ',' or ':' would let it smuggle more into either.
 */
static int
copy_seg(char *dst, size_t cap, const char *s, size_t n, int trust_domain)
{
    if (n == 0 || n >= cap)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_' || (!trust_domain && c >= 'A' && c <= 'Z');
        if (!ok)
            return -EINVAL;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int
spiffe_parse(const char *s, size_t len, struct spiffe_id *id)
{
    static const char scheme[] = "spiffe://";
    const char *seg[5];
    size_t seglen[5];
    size_t n = 0;

    memset(id, 0, sizeof(*id));
    if (len > SPIFFE_MAX_LEN || len < sizeof(scheme) - 1 ||
        memcmp(s, scheme, sizeof(scheme) - 1) != 0)
        return -EINVAL;
    const char *p = s + sizeof(scheme) - 1, *end = s + len;
    int done = 0;
    while (!done && n < 5) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        seg[n] = p;
        seglen[n] = (size_t)(e - p);
        n++;
        if (slash == NULL)
            done = 1;
        else
            p = slash + 1;
    }
    if (n != 5 || !done)
        return -EINVAL;
    if (seglen[1] != 2 || memcmp(seg[1], "ns", 2) != 0 || seglen[3] != 2 ||
        memcmp(seg[3], "sa", 2) != 0)
        return -EINVAL;
    if (copy_seg(id->td, sizeof(id->td), seg[0], seglen[0], 1) < 0 ||
        copy_seg(id->ns, sizeof(id->ns), seg[2], seglen[2], 0) < 0 ||
        copy_seg(id->sa, sizeof(id->sa), seg[4], seglen[4], 0) < 0)
        return -EINVAL;
    memcpy(id->uri, s, len);
    id->uri[len] = '\0';
    return 0;
}

int
spiffe_make(const char *td, const char *ns, const char *sa, struct spiffe_id *id)
{
    char uri[SPIFFE_MAX_LEN + 2];
    int n = snprintf(uri, sizeof(uri), "spiffe://%s/ns/%s/sa/%s", td, ns, sa);

    if (n < 0 || (size_t)n > SPIFFE_MAX_LEN)
        return -EINVAL;
    return spiffe_parse(uri, (size_t)n, id);
}

int
spiffe_from_cert(X509 *cert, struct spiffe_id *id, const char **why)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const ASN1_IA5STRING *uri = NULL;
    int n_uri = 0, rc = -EINVAL;

    *why = "no URI SAN";
    if (names == NULL)
        return -EINVAL;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_URI) {
            uri = gn->d.uniformResourceIdentifier;
            n_uri++;
        }
    }
    if (n_uri > 1) {
        *why = "more than one URI SAN";
    } else if (n_uri == 1) {
        if (spiffe_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri),
                         id) == 0)
            rc = 0;
        else
            *why = "URI SAN is not a SPIFFE workload identity";
    }
    GENERAL_NAMES_free(names);
    return rc;
}
