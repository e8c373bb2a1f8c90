/*
 * certmgr.c - certificates per identity, minted locally or from meshd's CA,
 * renewed at half-life, with back-off and a cap on calls in flight
 * (certmgr.h). The owner decides which identities it wants: ztunnel those of
 * its node's workloads (the CA's node restriction refuses others anyway).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#define LOG_SCOPE "certs"
#include "base/base.h"
#include "casvc/casvc.h"
#include "identity/certmgr_internal.h"
#include "cpcall/cp_unary.h"
#include "log/log.h"
#include "tls/ca.h"

/* One CreateCertificate call; outlives its entry if the entry is forgotten meanwhile. */
struct fetch {
    struct certmgr *owner;
    struct cert_entry *entry;
    EVP_PKEY *key;
    struct cp_unary call;
    struct fetch *prev, *next;
};

long
certmgr_now_s(void)
{
    return (long)(clock_wall_ms() / 1000);
}

struct certmgr *
certmgr_new(const struct certmgr_config *cfg, char *err, size_t errlen)
{
    char cert[4096], key[4096], why[512];
    struct certmgr *m = xcalloc(1, sizeof(*m));

    m->cfg = *cfg;
    m->cfg.ca_dir = cfg->ca_dir ? xstrdup(cfg->ca_dir) : NULL;
    m->cfg.auth.authority = xstrdup(cfg->auth.authority ? cfg->auth.authority : "");
    m->cfg.auth.cluster = xstrdup(cfg->auth.cluster ? cfg->auth.cluster : "");
    m->loop = cfg->loop;
    if (cfg->ca_dir == NULL) {
        m->chan = cfg->chan;
        return m;
    }
    snprintf(cert, sizeof(cert), "%s/root-cert.pem", cfg->ca_dir);
    snprintf(key, sizeof(key), "%s/root-key.pem", cfg->ca_dir);
    m->ca = ca_load(cert, key, why, sizeof(why));
    if (m->ca == NULL) {
        snprintf(err, errlen, "CA: %s", why);
        certmgr_free(m);
        return NULL;
    }
    return m;
}

/* ---- local mode ---------------------------------------------------------- */

static struct tls_creds *
mint(struct certmgr *c, const char *identity)
{
    struct spiffe_id id;
    struct tls_opts o = {.allow_x25519 = c->cfg.allow_x25519};

    if (spiffe_parse(identity, strlen(identity), &id) < 0) {
        log_error("cannot mint a certificate for invalid identity %s", identity);
        return NULL;
    }
    EVP_PKEY *key = ca_new_key();
    /* Backdate a minute so peers with a slightly slow clock accept it at once. */
    X509 *cert = key ? ca_issue(c->ca, key, identity, -60, c->cfg.cert_ttl_s + 60) : NULL;
    X509_STORE *roots = cert ? tls_store_from_cert(ca_root(c->ca)) : NULL;
    if (roots == NULL) {
        X509_free(cert);
        EVP_PKEY_free(key);
        log_error("minting a certificate for %s failed", identity);
        return NULL;
    }
    struct tls_creds *creds = tls_creds_new(&id, cert, key, roots, &o);
    if (creds != NULL)
        log_info("minted certificate for %s, valid %ld s", identity, c->cfg.cert_ttl_s);
    return creds;
}

/* The local CA's root as a one-element bundle. */
static STACK_OF(X509) *
local_roots(struct certmgr *c)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    X509 *root = ca_root(c->ca);
    if (s != NULL && X509_up_ref(root) && !sk_X509_push(s, root))
        X509_free(root);
    return s;
}

/* ---- scheduling ---------------------------------------------------------- */

static void on_timer(void *arg);
static void start_fetch(struct cert_entry *e, bool urgent);

long
certmgr_renew_at(long from, long not_after, long now)
{
    /* Half-life (reference 4.4). */
    long at = from + (not_after - from) / 2;
    /* A CA that backdates a lot puts half-life in the past: then halve what is left instead. */
    if (at <= now)
        at = now + (not_after - now) / 2;
    return at;
}

uint64_t
certmgr_backoff(uint64_t *backoff_ms, uint32_t rnd, uint64_t left_ms)
{
    uint64_t b = *backoff_ms == 0 ? CERTMGR_BACKOFF_START_MS : *backoff_ms * 2;
    if (b > CERTMGR_BACKOFF_MAX_MS)
        b = CERTMGR_BACKOFF_MAX_MS;
    *backoff_ms = b;
    /* +-20 % jitter so a node's identities do not retry in lock step. */
    uint64_t delay = b * 8 / 10 + (uint64_t)rnd % (b * 4 / 10 + 1);
    /* Never past the expiry of the certificate still served. */
    if (left_ms > 0 && left_ms < delay)
        delay = left_ms;
    return delay;
}

static void
schedule_renew(struct cert_entry *e)
{
    long nb = tls_creds_not_before(e->creds), na = tls_creds_not_after(e->creds);
    long now = certmgr_now_s();
    /* Minted ones count from minting: their notBefore is backdated. */
    long at = certmgr_renew_at(e->owner->ca != NULL ? e->minted_at : nb, na, now);
    uint64_t delay_ms = at > now ? (uint64_t)(at - now) * 1000 : 1000;
    loop_timer_start(e->owner->loop, &e->timer, delay_ms, on_timer, e);
}

static void
schedule_retry(struct cert_entry *e, const char *why)
{
    uint32_t r = 0;
    uint64_t left_ms = 0;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    if (e->creds != NULL) {
        long left = tls_creds_not_after(e->creds) - certmgr_now_s();
        left_ms = left > 0 ? (uint64_t)left * 1000 : 0;
    }
    uint64_t delay = certmgr_backoff(&e->backoff_ms, r, left_ms);
    e->owner->stats.failures++;
    snprintf(e->last_error, sizeof(e->last_error), "%s", why);
    log_warn("certificate for %s: %s; retrying in %" PRIu64 " ms%s", e->identity, why, delay,
             e->creds != NULL ? " (still serving the current one)" : "");
    loop_timer_start(e->owner->loop, &e->timer, delay, on_timer, e);
}

/* Runs the waiters of entry |id| parked before now, each once. */
static void
wake(struct certmgr *m, uint64_t id)
{
    /*
     * A callback may park again (with the new generation: it is not run
     * twice), cancel other waiters or forget entries, so the list is looked at
     * afresh after each call; entries are named by id, never by pointer.
     */
    uint64_t gen = ++m->wake_gen;
    for (;;) {
        struct certmgr_waiter *w = m->waiters;
        while (w != NULL && (w->entry_id != id || w->gen >= gen))
            w = w->next;
        if (w == NULL)
            return;
        certmgr_cancel(m, w);
        w->fn(w->arg);
    }
}

static void
install(struct cert_entry *e, struct tls_creds *fresh, STACK_OF(X509) *roots)
{
    tls_creds_unref(e->creds);
    e->creds = fresh;
    sk_X509_pop_free(e->roots, X509_free);
    e->roots = roots;
    e->minted_at = certmgr_now_s();
    e->backoff_ms = 0;
    e->last_error[0] = '\0';
    schedule_renew(e);
    struct certmgr *m = e->owner;
    m->stats.installed++;
    wake(m, e->id);
    if (m->cfg.on_change != NULL)
        m->cfg.on_change(m->cfg.arg); /* e.g. connections held for this certificate */
}

static void
on_timer(void *arg)
{
    struct cert_entry *e = arg;
    struct certmgr *c = e->owner;

    if (c->ca != NULL) {
        struct tls_creds *fresh = mint(c, e->identity);
        if (fresh == NULL) {
            /* Keep serving the still-valid certificate; retry soon. */
            loop_timer_start(c->loop, &e->timer, CERTMGR_MINT_RETRY_MS, on_timer, e);
            return;
        }
        install(e, fresh, local_roots(c));
        return;
    }
    start_fetch(e, false);
}

/* ---- control-plane mode: CreateCertificate calls ------------------------- */

static void fetch_done(struct fetch *f, struct tls_creds *creds, STACK_OF(X509) *roots,
                       const char *why);

static void
dequeue_next(struct certmgr *c)
{
    while (c->stats.in_flight < CERTMGR_MAX_IN_FLIGHT && c->qhead != NULL) {
        struct cert_entry *e = c->qhead;
        c->qhead = e->qnext;
        if (c->qhead == NULL)
            c->qtail = NULL;
        e->qnext = NULL;
        e->queued = false;
        start_fetch(e, false);
    }
}

static void
unqueue(struct certmgr *c, struct cert_entry *e)
{
    struct cert_entry **pp = &c->qhead, *prev = NULL;
    while (*pp != NULL && *pp != e) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == NULL)
        return;
    *pp = e->qnext;
    if (c->qtail == e)
        c->qtail = prev;
    e->qnext = NULL;
    e->queued = false;
}

static void
on_ca_done(void *arg, const uint8_t *resp, size_t len, const char *why)
{
    struct fetch *f = arg;
    char err[256];

    if (resp == NULL || f->entry == NULL) {
        fetch_done(f, NULL, NULL, why);
        return;
    }
    struct tls_opts o = {.allow_x25519 = f->owner->cfg.allow_x25519};
    STACK_OF(X509) *roots = NULL;
    struct tls_creds *creds = casvc_response(resp, len, f->entry->identity, f->key, &o, &roots,
                                             err, sizeof(err));
    if (creds != NULL)
        f->key = NULL; /* now owned by the credentials */
    fetch_done(f, creds, roots, creds ? NULL : err);
}

static void
fetch_free(struct fetch *f)
{
    struct certmgr *c = f->owner;
    cp_unary_cancel(&f->call);
    if (f->prev)
        f->prev->next = f->next;
    else
        c->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    EVP_PKEY_free(f->key);
    free(f);
}

static void
fetch_done(struct fetch *f, struct tls_creds *creds, STACK_OF(X509) *roots, const char *why)
{
    struct certmgr *c = f->owner;
    struct cert_entry *e = f->entry;

    c->stats.in_flight--;
    if (e != NULL) {
        e->fetch = NULL;
        if (creds != NULL) {
            log_info("certificate for %s from the CA, valid until %ld", e->identity,
                     tls_creds_not_after(creds));
            install(e, creds, roots);
        } else {
            schedule_retry(e, why);
        }
    } else {
        tls_creds_unref(creds);
        sk_X509_pop_free(roots, X509_free);
    }
    fetch_free(f);
    dequeue_next(c);
}

static void
start_fetch(struct cert_entry *e, bool urgent)
{
    struct certmgr *c = e->owner;

    if (e->fetch != NULL)
        return;
    if (c->stats.in_flight >= CERTMGR_MAX_IN_FLIGHT) {
        if (e->queued && !urgent)
            return;
        if (e->queued)
            unqueue(c, e);
        /* A connection waiting for this identity goes ahead of renewals and prefetches. */
        if (urgent) {
            e->qnext = c->qhead;
            c->qhead = e;
            if (c->qtail == NULL)
                c->qtail = e;
        } else {
            if (c->qtail)
                c->qtail->qnext = e;
            else
                c->qhead = e;
            c->qtail = e;
        }
        e->queued = true;
        return;
    }
    if (e->queued)
        unqueue(c, e);
    loop_timer_stop(c->loop, &e->timer);
    struct fetch *f = xcalloc(1, sizeof(*f));
    f->owner = c;
    f->entry = e;
    e->fetch = f;
    f->next = c->fetches;
    if (c->fetches)
        c->fetches->prev = f;
    c->fetches = f;
    c->stats.in_flight++;
    c->stats.requests++;
    uint8_t *req;
    size_t len;
    if (casvc_request(e->identity, c->cfg.cert_ttl_s, &f->key, &req, &len) < 0) {
        fetch_done(f, NULL, NULL, "cannot build a CSR");
        return;
    }
    const struct cp_unary_config uc = {
        .loop = c->loop,
        .chan = c->chan,
        .method = CASVC_METHOD,
        .auth = c->cfg.auth,
        .peer = "CA",
        .max_response = CASVC_MAX_RESPONSE,
        .timeout_ms = CERTMGR_CALL_TIMEOUT_MS,
    };
    cp_unary_start(&f->call, &uc, req, len, on_ca_done, f); /* may finish |f| at once */
    free(req);
}

/* ---- entries ------------------------------------------------------------- */

struct cert_entry *
certmgr_find(const struct certmgr *c, const char *identity)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next)
        if (strcmp(e->identity, identity) == 0)
            return e;
    return NULL;
}

static struct cert_entry *
add(struct certmgr *c, const char *identity)
{
    struct cert_entry *e = xcalloc(1, sizeof(*e));
    e->owner = c;
    e->identity = xstrdup(identity);
    e->id = ++c->next_id;
    e->next = c->entries;
    if (c->entries)
        c->entries->prev = e;
    c->entries = e;
    c->stats.identities++;
    return e;
}

/* Frees |e|; with |notify| its waiters hear that it is gone. */
static void
forget(struct certmgr *c, struct cert_entry *e, bool notify)
{
    uint64_t id = e->id;
    loop_timer_stop(c->loop, &e->timer);
    if (e->queued)
        unqueue(c, e);
    if (e->fetch != NULL)
        e->fetch->entry = NULL; /* the answer, if any, is dropped */
    if (e->prev)
        e->prev->next = e->next;
    else
        c->entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    tls_creds_unref(e->creds);
    sk_X509_pop_free(e->roots, X509_free);
    free(e->identity);
    free(e);
    c->stats.identities--;
    if (notify)
        wake(c, id);
}

void
certmgr_free(struct certmgr *c)
{
    if (c == NULL)
        return;
    while (c->waiters)
        certmgr_cancel(c, c->waiters);
    while (c->entries)
        forget(c, c->entries, false);
    while (c->fetches)
        fetch_free(c->fetches);
    ca_free(c->ca);
    free((char *)c->cfg.ca_dir);
    free((char *)c->cfg.auth.authority);
    free((char *)c->cfg.auth.cluster);
    free(c);
}

/* Makes sure a certificate for |identity| exists or is on its way; returns its entry's id. */
static uint64_t
want(struct certmgr *c, const char *identity, bool urgent)
{
    struct cert_entry *e = certmgr_find(c, identity);
    if (e == NULL)
        e = add(c, identity);
    e->wanted = true;
    uint64_t id = e->id;
    if (e->creds != NULL || e->fetch != NULL)
        return id;
    if (c->ca != NULL) {
        c->stats.requests++;
        struct tls_creds *creds = mint(c, identity);
        if (creds != NULL)
            install(e, creds, local_roots(c)); /* callbacks run: |e| may be gone after */
        else
            c->stats.failures++;
        return id;
    }
    /* Urgent: skip a pending back-off, a connection is waiting. */
    if (urgent || !loop_timer_armed(&e->timer))
        start_fetch(e, urgent);
    return id;
}

struct tls_creds *
certmgr_get(struct certmgr *c, const char *identity)
{
    want(c, identity, true);
    struct cert_entry *e = certmgr_find(c, identity);
    return e != NULL ? e->creds : NULL;
}

void
certmgr_mark(struct certmgr *c)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next)
        e->wanted = false;
}

void
certmgr_want(struct certmgr *c, const char *identity)
{
    want(c, identity, false);
}

void
certmgr_sweep(struct certmgr *c, const char *why)
{
    for (struct cert_entry *e = c->entries, *next; e != NULL; e = next) {
        next = e->next;
        if (!e->wanted) {
            log_info("forgetting the certificate for %s: %s", e->identity, why);
            forget(c, e, true);
            next = c->entries; /* waiters ran: start over (wanted ones are skipped) */
        }
    }
}

void
certmgr_wait(struct certmgr *c, struct certmgr_waiter *w, const char *identity,
             certmgr_wait_fn *fn, void *arg)
{
    certmgr_cancel(c, w);
    w->fn = fn;
    w->arg = arg;
    w->entry_id = want(c, identity, true);
    w->gen = c->wake_gen;
    w->prev = NULL;
    w->next = c->waiters;
    if (c->waiters)
        c->waiters->prev = w;
    c->waiters = w;
    w->queued = true;
    /* Local mode may have installed it just now, before |w| was parked. */
    struct cert_entry *e = certmgr_find(c, identity);
    if (e == NULL || e->id != w->entry_id || e->creds != NULL) {
        certmgr_cancel(c, w);
        fn(arg);
    }
}

void
certmgr_cancel(struct certmgr *c, struct certmgr_waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        c->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
}
