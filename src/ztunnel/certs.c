/*
 * certs.c - one certificate per workload identity on this node.
 *
 * In local mode the certificates are minted in memory from the CA in
 * --ca-dir (root-cert.pem, root-key.pem); each is renewed at half-life. Only
 * identities of workloads on this node are ever minted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>

#define LOG_SCOPE "certs"
#include "base/base.h"
#include "log/log.h"
#include "tls/ca.h"
#include "ztunnel.h"

struct cert_entry {
    struct cert_entry *next;
    struct certs *owner;
    char *identity;
    struct tls_creds *creds;
    long minted_at; /* wall seconds; notBefore is backdated, so not that */
    struct loop_timer renew;
};

struct certs {
    struct zt *zt;
    struct ca *ca;
    struct cert_entry *entries;
};

struct certs *
certs_new(struct zt *zt, char *err, size_t errlen)
{
    char cert[4096], key[4096], why[512];
    struct certs *c = xcalloc(1, sizeof(*c));

    c->zt = zt;
    snprintf(cert, sizeof(cert), "%s/root-cert.pem", zt->opts.ca_dir);
    snprintf(key, sizeof(key), "%s/root-key.pem", zt->opts.ca_dir);
    c->ca = ca_load(cert, key, why, sizeof(why));
    if (c->ca == NULL) {
        snprintf(err, errlen, "CA: %s", why);
        free(c);
        return NULL;
    }
    return c;
}

void
certs_free(struct certs *c)
{
    if (c == NULL)
        return;
    while (c->entries) {
        struct cert_entry *e = c->entries;
        c->entries = e->next;
        loop_timer_stop(c->zt->loop, &e->renew);
        tls_creds_unref(e->creds);
        free(e->identity);
        free(e);
    }
    ca_free(c->ca);
    free(c);
}

static struct tls_creds *
mint(struct certs *c, const char *identity)
{
    struct spiffe_id id;
    struct tls_opts o = {.allow_x25519 = c->zt->opts.allow_x25519};

    if (spiffe_parse(identity, strlen(identity), &id) < 0) {
        log_error("cannot mint a certificate for invalid identity %s", identity);
        return NULL;
    }
    EVP_PKEY *key = ca_new_key();
    /* Backdate a minute so peers with a slightly slow clock accept it at once. */
    X509 *cert = key ? ca_issue(c->ca, key, identity, -60, c->zt->opts.cert_ttl_s + 60) : NULL;
    X509_STORE *roots = cert ? tls_store_from_cert(ca_root(c->ca)) : NULL;
    if (roots == NULL) {
        X509_free(cert);
        EVP_PKEY_free(key);
        log_error("minting a certificate for %s failed", identity);
        return NULL;
    }
    struct tls_creds *creds = tls_creds_new(&id, cert, key, roots, &o);
    if (creds != NULL)
        log_info("minted certificate for %s, valid %ld s", identity, c->zt->opts.cert_ttl_s);
    return creds;
}

static void on_renew(void *arg);

static void
schedule_renew(struct cert_entry *e)
{
    long na = tls_creds_not_after(e->creds);
    long now = (long)(clock_wall_ms() / 1000);
    /* Half-life counted from when we minted it (notBefore is backdated a minute). */
    long at = e->minted_at + (na - e->minted_at) / 2;
    uint64_t delay_ms = at > now ? (uint64_t)(at - now) * 1000 : 1000;
    loop_timer_start(e->owner->zt->loop, &e->renew, delay_ms, on_renew, e);
}

static void
on_renew(void *arg)
{
    struct cert_entry *e = arg;
    struct tls_creds *fresh = mint(e->owner, e->identity);

    if (fresh == NULL) {
        /* Keep serving the still-valid certificate; retry soon. */
        loop_timer_start(e->owner->zt->loop, &e->renew, 500, on_renew, e);
        return;
    }
    tls_creds_unref(e->creds);
    e->creds = fresh;
    e->minted_at = (long)(clock_wall_ms() / 1000);
    schedule_renew(e);
}

struct tls_creds *
certs_get(struct certs *c, const struct workload *w)
{
    if (!zt_is_local(c->zt, w))
        return NULL; /* a node only ever holds keys for its own workloads */
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next)
        if (strcmp(e->identity, w->identity) == 0)
            return e->creds;
    struct tls_creds *creds = mint(c, w->identity);
    if (creds == NULL)
        return NULL;
    struct cert_entry *e = xcalloc(1, sizeof(*e));
    e->owner = c;
    e->identity = xstrdup(w->identity);
    e->creds = creds;
    e->minted_at = (long)(clock_wall_ms() / 1000);
    e->next = c->entries;
    c->entries = e;
    schedule_renew(e);
    return creds;
}

void
certs_prefetch(struct certs *c)
{
    const struct model *m = c->zt->model;
    for (size_t i = 0; i < m->n_workloads; i++)
        if (m->workloads[i]->tunnel == TUNNEL_HBONE && zt_is_local(c->zt, m->workloads[i]))
            certs_get(c, m->workloads[i]);
}

static json_t *
time_str(long t)
{
    char b[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(b);
}

void
certs_dump(struct certs *c, json_t *arr)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next) {
        X509 *x = tls_creds_cert(e->creds);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        long now = (long)(clock_wall_ms() / 1000);
        bool valid = now >= tls_creds_not_before(e->creds) && now < tls_creds_not_after(e->creds);
        json_t *leaf = json_pack("{s:s, s:s, s:o, s:o, s:s}", "identity", e->identity, "serialNumber",
                                 hex ? hex : "", "notBefore",
                                 time_str(tls_creds_not_before(e->creds)), "notAfter",
                                 time_str(tls_creds_not_after(e->creds)), "state",
                                 valid ? "Available" : "Expired");
        json_array_append_new(arr, json_pack("{s:s, s:s, s:[o]}", "identity", e->identity, "state",
                                             valid ? "Available" : "Expired", "certChain", leaf));
        OPENSSL_free(hex);
        BN_free(bn);
    }
}
