/*
 * certs.c - one certificate per workload identity on this node.
 *
 * Two sources. Local mode mints them in memory from the CA in --ca-dir.
 * Control-plane mode asks meshd's CA (Istio's CreateCertificate, reference
 * 4.1-4.4): a P-256 key made here, a CSR with only the URI SAN, the identity
 * named as ImpersonatedIdentity, the node token as bearer credential.
 *
 * Either way only identities of workloads on this node are ever requested:
 * prefetched when such a workload appears, renewed at half-life, forgotten
 * when the last one leaves. Failed requests back off from 500 ms, doubling
 * with 20 % jitter up to 150 s, never past the expiry of the certificate
 * still being served; at most 8 requests are in flight, and one a connection
 * is waiting for goes first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define LOG_SCOPE "certs"
#include "base/base.h"
#include "casvc/casvc.h"
#include "channel/channel.h"
#include "grpc/grpc.h"
#include "log/log.h"
#include "rpc/rpc.h"
#include "tls/ca.h"
#include "ztunnel.h"

#define CERTS_MAX_IN_FLIGHT 8
#define CERTS_BACKOFF_START_MS 500
#define CERTS_BACKOFF_MAX_MS 150000
#define CERTS_CALL_TIMEOUT_MS 10000

struct fetch;

struct cert_entry {
    struct cert_entry *prev, *next;
    struct certs *owner;
    char *identity;
    struct tls_creds *creds; /* NULL until the first certificate arrives */
    STACK_OF(X509) *roots;   /* the trust bundle that came with it (for the dump) */
    long minted_at;          /* local mode: wall seconds (notBefore is backdated) */
    struct loop_timer timer; /* renewal, or retry after a failure */
    uint64_t backoff_ms;
    struct fetch *fetch;     /* request in flight */
    bool queued;             /* waiting for a request slot */
    struct cert_entry *qnext;
    bool wanted;             /* certs_sync(): a local workload uses it */
    char last_error[160];
};

/* One CreateCertificate call; outlives its entry if the entry is forgotten meanwhile. */
struct fetch {
    struct certs *owner;
    struct cert_entry *entry;
    EVP_PKEY *key;
    uint8_t *req;
    size_t req_len;
    uint8_t *resp;
    size_t resp_len;
    struct channel_waiter wait;
    struct rpc_call *call;
    struct loop_timer deadline;
    struct fetch *prev, *next;
};

struct certs {
    struct zt *zt;
    struct ca *ca;           /* local mode */
    struct channel *chan;    /* control-plane mode */
    struct cert_entry *entries;
    struct cert_entry *qhead, *qtail;
    struct fetch *fetches;
    unsigned n_in_flight;
};

static long
now_s(void)
{
    return (long)(clock_wall_ms() / 1000);
}

struct certs *
certs_new(struct zt *zt, char *err, size_t errlen)
{
    char cert[4096], key[4096], why[512];
    struct certs *c = xcalloc(1, sizeof(*c));

    c->zt = zt;
    if (zt->opts.ca_dir == NULL) {
        c->chan = channel_new(zt->loop, &zt->opts.ca_ip, zt->opts.ca_port, zt->cp_ctx, "CA");
        return c;
    }
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

/* ---- local mode ---------------------------------------------------------- */

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

/* The local CA's root as a one-element bundle. */
static STACK_OF(X509) *
local_roots(struct certs *c)
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

static void
schedule_renew(struct cert_entry *e)
{
    long nb = tls_creds_not_before(e->creds), na = tls_creds_not_after(e->creds);
    long now = now_s();
    /* Half-life (reference 4.4); minted ones count from minting, their notBefore is backdated. */
    long from = e->owner->ca != NULL ? e->minted_at : nb;
    long at = from + (na - from) / 2;
    /* A CA that backdates a lot puts half-life in the past: then halve what is left instead. */
    if (at <= now)
        at = now + (na - now) / 2;
    uint64_t delay_ms = at > now ? (uint64_t)(at - now) * 1000 : 1000;
    loop_timer_start(e->owner->zt->loop, &e->timer, delay_ms, on_timer, e);
}

static void
schedule_retry(struct cert_entry *e, const char *why)
{
    uint32_t r;
    e->backoff_ms = e->backoff_ms == 0 ? CERTS_BACKOFF_START_MS : e->backoff_ms * 2;
    if (e->backoff_ms > CERTS_BACKOFF_MAX_MS)
        e->backoff_ms = CERTS_BACKOFF_MAX_MS;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    /* +-20 % jitter so a node's identities do not retry in lock step. */
    uint64_t delay = e->backoff_ms * 8 / 10 + (uint64_t)r % (e->backoff_ms * 4 / 10 + 1);
    if (e->creds != NULL) {
        long left = tls_creds_not_after(e->creds) - now_s();
        if (left > 0 && (uint64_t)left * 1000 < delay)
            delay = (uint64_t)left * 1000;
    }
    snprintf(e->last_error, sizeof(e->last_error), "%s", why);
    log_warn("certificate for %s: %s; retrying in %" PRIu64 " ms%s", e->identity, why, delay,
             e->creds != NULL ? " (still serving the current one)" : "");
    loop_timer_start(e->owner->zt->loop, &e->timer, delay, on_timer, e);
}

static void
install(struct cert_entry *e, struct tls_creds *fresh, STACK_OF(X509) *roots)
{
    tls_creds_unref(e->creds);
    e->creds = fresh;
    sk_X509_pop_free(e->roots, X509_free);
    e->roots = roots;
    e->minted_at = now_s();
    e->backoff_ms = 0;
    e->last_error[0] = '\0';
    schedule_renew(e);
    zt_wake(e->owner->zt); /* connections held for this certificate */
}

static void
on_timer(void *arg)
{
    struct cert_entry *e = arg;
    struct certs *c = e->owner;

    if (c->ca != NULL) {
        struct tls_creds *fresh = mint(c, e->identity);
        if (fresh == NULL) {
            /* Keep serving the still-valid certificate; retry soon. */
            loop_timer_start(c->zt->loop, &e->timer, 500, on_timer, e);
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
dequeue_next(struct certs *c)
{
    while (c->n_in_flight < CERTS_MAX_IN_FLIGHT && c->qhead != NULL) {
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
unqueue(struct certs *c, struct cert_entry *e)
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

static int
on_ca_message(void *arg, struct rpc_call *call, const uint8_t *msg, size_t len)
{
    struct fetch *f = arg;
    (void)call;
    if (f->resp != NULL)
        return -MESH_EPROTO; /* unary: one answer */
    f->resp = xmalloc(len ? len : 1);
    memcpy(f->resp, msg, len);
    f->resp_len = len;
    return 0;
}

static void
on_ca_end(void *arg, struct rpc_call *call, int status, const char *message)
{
    struct fetch *f = arg;
    char why[256];
    (void)call;

    if (status != GRPC_STATUS_OK || f->resp == NULL) {
        snprintf(why, sizeof(why), "CA answered status %d%s%s", status, message ? ": " : "",
                 message ? message : "");
        fetch_done(f, NULL, NULL, why);
        return;
    }
    if (f->entry == NULL) {
        fetch_done(f, NULL, NULL, NULL);
        return;
    }
    struct tls_opts o = {.allow_x25519 = f->owner->zt->opts.allow_x25519};
    STACK_OF(X509) *roots = NULL;
    struct tls_creds *creds = casvc_response(f->resp, f->resp_len, f->entry->identity, f->key,
                                             &o, &roots, why, sizeof(why));
    if (creds != NULL)
        f->key = NULL; /* now owned by the credentials */
    fetch_done(f, creds, roots, creds ? NULL : why);
}

static const struct rpc_call_cbs ca_cbs = {
    .on_message = on_ca_message,
    .on_end = on_ca_end,
};

static void
on_channel(void *arg, struct h2_session *s, int err)
{
    struct fetch *f = arg;
    char why[160], auth[TOKEN_MAX_LEN + 16];

    if (s == NULL) {
        snprintf(why, sizeof(why), "CA unreachable: %s", mesh_strerror(err));
        fetch_done(f, NULL, NULL, why);
        return;
    }
    if (zt_bearer(f->owner->zt, TOKEN_AUD_CA, auth, sizeof(auth), why, sizeof(why)) < 0) {
        fetch_done(f, NULL, NULL, why);
        return;
    }
    struct h2_header md[] = {
        {"authorization", auth},
        {"clusterid", f->owner->zt->opts.cluster},
    };
    f->call = rpc_call_start(s, CASVC_METHOD, f->owner->zt->opts.cp_name, md, 2,
                             CASVC_MAX_RESPONSE, &ca_cbs, f);
    if (f->call == NULL) {
        fetch_done(f, NULL, NULL, "cannot open a call to the CA");
        return;
    }
    if (rpc_call_send(f->call, f->req, f->req_len) < 0) {
        fetch_done(f, NULL, NULL, "cannot send the request");
        return;
    }
    rpc_call_close_send(f->call);
}

static void
on_deadline(void *arg)
{
    fetch_done(arg, NULL, NULL, "CA did not answer in time");
}

static void
fetch_free(struct fetch *f)
{
    struct certs *c = f->owner;
    loop_timer_stop(c->zt->loop, &f->deadline);
    channel_cancel(c->chan, &f->wait);
    if (f->call != NULL)
        rpc_call_free(f->call);
    if (f->prev)
        f->prev->next = f->next;
    else
        c->fetches = f->next;
    if (f->next)
        f->next->prev = f->prev;
    EVP_PKEY_free(f->key);
    free(f->req);
    free(f->resp);
    free(f);
}

static void
fetch_done(struct fetch *f, struct tls_creds *creds, STACK_OF(X509) *roots, const char *why)
{
    struct certs *c = f->owner;
    struct cert_entry *e = f->entry;

    c->n_in_flight--;
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
    struct certs *c = e->owner;

    if (e->fetch != NULL)
        return;
    if (c->n_in_flight >= CERTS_MAX_IN_FLIGHT) {
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
    loop_timer_stop(c->zt->loop, &e->timer);
    struct fetch *f = xcalloc(1, sizeof(*f));
    f->owner = c;
    f->entry = e;
    e->fetch = f;
    f->next = c->fetches;
    if (c->fetches)
        c->fetches->prev = f;
    c->fetches = f;
    c->n_in_flight++;
    if (casvc_request(e->identity, c->zt->opts.cert_ttl_s, &f->key, &f->req, &f->req_len) < 0) {
        fetch_done(f, NULL, NULL, "cannot build a CSR");
        return;
    }
    loop_timer_start(c->zt->loop, &f->deadline, CERTS_CALL_TIMEOUT_MS, on_deadline, f);
    channel_get(c->chan, &f->wait, on_channel, f);
}

/* ---- entries ------------------------------------------------------------- */

static struct cert_entry *
find(struct certs *c, const char *identity)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next)
        if (strcmp(e->identity, identity) == 0)
            return e;
    return NULL;
}

static struct cert_entry *
add(struct certs *c, const char *identity)
{
    struct cert_entry *e = xcalloc(1, sizeof(*e));
    e->owner = c;
    e->identity = xstrdup(identity);
    e->next = c->entries;
    if (c->entries)
        c->entries->prev = e;
    c->entries = e;
    return e;
}

static void
forget(struct certs *c, struct cert_entry *e)
{
    loop_timer_stop(c->zt->loop, &e->timer);
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
}

struct channel *
certs_channel(struct certs *c)
{
    return c->chan;
}

void
certs_free(struct certs *c)
{
    if (c == NULL)
        return;
    while (c->entries)
        forget(c, c->entries);
    while (c->fetches)
        fetch_free(c->fetches);
    channel_free(c->chan);
    ca_free(c->ca);
    free(c);
}

/* Makes sure a certificate for |identity| exists or is on its way. */
static struct cert_entry *
want(struct certs *c, const char *identity, bool urgent)
{
    struct cert_entry *e = find(c, identity);
    if (e == NULL)
        e = add(c, identity);
    e->wanted = true;
    if (e->creds != NULL || e->fetch != NULL)
        return e;
    if (c->ca != NULL) {
        struct tls_creds *creds = mint(c, identity);
        if (creds != NULL)
            install(e, creds, local_roots(c));
        return e;
    }
    /* Urgent: skip a pending back-off, a connection is waiting. */
    if (urgent || !loop_timer_armed(&e->timer))
        start_fetch(e, urgent);
    return e;
}

struct tls_creds *
certs_get(struct certs *c, const struct workload *w)
{
    if (!zt_is_local(c->zt, w))
        return NULL; /* a node only ever holds keys for its own workloads */
    struct cert_entry *e = want(c, w->identity, true);
    return e->creds;
}

void
certs_sync(struct certs *c)
{
    const struct model *m = c->zt->model;
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next)
        e->wanted = false;
    for (size_t i = 0; i < m->n_workloads; i++) {
        const struct workload *w = m->workloads[i];
        if (w->tunnel == TUNNEL_HBONE && zt_is_local(c->zt, w))
            want(c, w->identity, false);
    }
    for (struct cert_entry *e = c->entries, *next; e != NULL; e = next) {
        next = e->next;
        if (!e->wanted) {
            log_info("forgetting the certificate for %s: no workload on node %s uses it",
                     e->identity, c->zt->opts.node);
            forget(c, e);
        }
    }
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
certs_dump(struct certs *c, json_t *arr)
{
    for (struct cert_entry *e = c->entries; e != NULL; e = e->next) {
        json_t *chain = json_array(), *roots = json_array();
        char state[200];
        if (e->creds == NULL) {
            snprintf(state, sizeof(state), "%s%s",
                     e->last_error[0] ? "Unavailable: " : "Initializing", e->last_error);
        } else {
            long now = now_s();
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
