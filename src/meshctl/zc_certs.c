/*
 * zc_certs.c - the certificates table: one row per certificate of each
 * identity's chain (Leaf, Intermediate..., Root), as istioctl prints it.
 *
 * Serials are shown in hex. ztunnel dumps them in decimal, which is what is
 * assumed unless the value has hex letters. Fields missing from a chain
 * entry are taken from its "pem" when there is one.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/base.h"
#include "meshctl.h"

struct cert_info {
    char serial[160];
    char not_before[40];
    char not_after[40];
};

/* "1234" (decimal) or "4d2"/"04:D2" (hex) -> "4d2"; "" when it is neither. */
static void
serial_hex(const char *s, char *out, size_t outlen)
{
    BIGNUM *bn = NULL;
    char clean[160];
    size_t n = 0;
    bool hex = false;

    for (const char *p = s; *p && n + 1 < sizeof(clean); p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p)) {
            out[0] = '\0';
            return;
        }
        hex |= !isdigit((unsigned char)*p);
        clean[n++] = *p;
    }
    clean[n] = '\0';
    out[0] = '\0';
    if (n == 0 || (hex ? BN_hex2bn(&bn, clean) : BN_dec2bn(&bn, clean)) == 0)
        return;
    char *h = BN_bn2hex(bn);
    const char *p = h;
    while (p[0] == '0' && p[1] != '\0')
        p++; /* big.Int's %x has no leading zeros */
    snprintf(out, outlen, "%s", p);
    for (char *q = out; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    OPENSSL_free(h);
    BN_free(bn);
}

static void
asn1_time_str(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        out[0] = '\0';
        return;
    }
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Fills what |ci| lacks from the PEM certificate |pem|. */
static void
from_pem(const char *pem, struct cert_info *ci)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

    if (x != NULL) {
        if (ci->serial[0] == '\0') {
            BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
            char *h = bn ? BN_bn2hex(bn) : NULL;
            if (h != NULL)
                serial_hex(h, ci->serial, sizeof(ci->serial));
            OPENSSL_free(h);
            BN_free(bn);
        }
        if (ci->not_before[0] == '\0')
            asn1_time_str(X509_get0_notBefore(x), ci->not_before, sizeof(ci->not_before));
        if (ci->not_after[0] == '\0')
            asn1_time_str(X509_get0_notAfter(x), ci->not_after, sizeof(ci->not_after));
    }
    X509_free(x);
    BIO_free(b);
}

static void
cert_info(const json_t *c, struct cert_info *ci)
{
    const char *serial = zc_str(c, "serialNumber", "");
    const char *pem = zc_str(c, "pem", NULL);

    serial_hex(serial, ci->serial, sizeof(ci->serial));
    /* ztunnel's names first, then amesh's. */
    snprintf(ci->not_before, sizeof(ci->not_before), "%s",
             zc_str(c, "validFrom", zc_str(c, "notBefore", "")));
    snprintf(ci->not_after, sizeof(ci->not_after), "%s",
             zc_str(c, "expirationTime", zc_str(c, "notAfter", "")));
    if (pem != NULL &&
        (ci->serial[0] == '\0' || ci->not_before[0] == '\0' || ci->not_after[0] == '\0'))
        from_pem(pem, ci);
}

/* RFC 3339 ("2024-05-01T12:00:00Z", "...T12:00:00.5+02:00") -> seconds. Returns -1 if not. */
static int
rfc3339(const char *s, time_t *out)
{
    struct tm tm = {0};
    int used = 0, oh = 0, om = 0;
    char sign = '+';

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19)
        return -1;
    s += used;
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s); s++)
            ;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if ((*s == '+' || *s == '-') && sscanf(s, "%c%2d:%2d%n", &sign, &oh, &om, &used) == 3 &&
               used == 6) {
        s += used;
    } else {
        return -1;
    }
    if (*s != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    long off = (oh * 60L + om) * 60;
    *out = sign == '-' ? t + off : t - off;
    return 0;
}

static bool
valid_now(const struct cert_info *ci, time_t now)
{
    time_t from, to;
    return rfc3339(ci->not_before, &from) == 0 && rfc3339(ci->not_after, &to) == 0 && now > from &&
           now < to;
}

static const char *
na(const char *s)
{
    return s[0] ? s : "NA";
}

static void
add_cert(struct table *t, const char *identity, const char *type, const char *state,
         const json_t *c, time_t now)
{
    struct cert_info ci;
    cert_info(c, &ci);
    const char *cells[] = {identity,
                           type,
                           state,
                           valid_now(&ci, now) ? "true" : "false",
                           na(ci.serial),
                           na(ci.not_after),
                           na(ci.not_before)};
    table_add(t, cells);
}

static size_t
list_size(const json_t *v)
{
    return json_is_array(v) ? json_array_size(v) : 0;
}

void
zc_print_certificates(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"CERTIFICATE NAME", "TYPE",      "STATUS",    "VALID CERT",
                                         "SERIAL NUMBER",    "NOT AFTER", "NOT BEFORE"};
    json_t *certs = zc_section(dump, "certificates"), *e, *c;
    struct table *t = table_new(ARRAY_LEN(header), header);
    char nsmark[512];
    size_t i, j;

    if (o->ns != NULL)
        snprintf(nsmark, sizeof(nsmark), "/ns/%s/", o->ns);
    json_array_foreach(certs, i, e) {
        const char *id = zc_str(e, "identity", "");
        const char *state = zc_str(e, "state", "Unknown");
        if (o->ns != NULL && strstr(id, nsmark) == NULL)
            continue;
        if (strstr(state, "Unavailable") != NULL)
            state = "Unavailable"; /* ztunnel appends the reason */
        const json_t *chain = json_object_get(e, "certChain");
        if (chain == NULL)
            chain = json_object_get(e, "chain");
        const json_t *roots = json_object_get(e, "rootCerts");
        size_t n = list_size(chain);
        if (n == 0 && list_size(roots) == 0) {
            const char *cells[] = {id, "NA", state, "false", "NA", "NA", "NA"};
            table_add(t, cells);
            continue;
        }
        /* Without a rootCerts list, the chain's last entry is the root (older dumps). */
        for (j = 0; j < n; j++) {
            c = json_array_get(chain, j);
            const char *type = zc_str(c, "type", NULL);
            if (type == NULL)
                type = j == 0                                ? "Leaf"
                       : j == n - 1 && list_size(roots) == 0 ? "Root"
                                                             : "Intermediate";
            add_cert(t, id, type, state, c, o->now);
        }
        for (j = 0; j < list_size(roots); j++)
            add_cert(t, id, "Root", state, json_array_get(roots, j), o->now);
    }
    table_print(t, f, ZC_PAD);
    table_free(t);
    json_decref(certs);
}
