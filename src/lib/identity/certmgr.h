/*
 * certmgr.h - a proxy's certificates, one per SPIFFE identity it serves:
 * ztunnel one per local workload identity, the waypoint exactly one (its
 * service account).
 *
 * Two sources. Local mode mints them in memory from the CA in a directory
 * (root-cert.pem, root-key.pem). Control-plane mode asks meshd's CA (Istio's
 * CreateCertificate, reference 4.1-4.4): a P-256 key made here, a CSR with
 * only the URI SAN, the identity named as ImpersonatedIdentity, the node
 * token as bearer credential.
 *
 * An identity is asked for when the owner wants it (certmgr_want(): prefetch;
 * certmgr_get(): a connection needs it now), renewed at half-life and
 * forgotten when the owner no longer wants it (certmgr_sweep()). Failed
 * requests back off from 500 ms, doubling with 20 % jitter up to 150 s,
 * never past the expiry of the certificate still being served; at most 8
 * requests are in flight, and one a connection is waiting for goes first.
 */
#ifndef MESH_LIB_CERTMGR_H
#define MESH_LIB_CERTMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel/channel.h"
#include "cpcall/cpcall.h"
#include "loop/loop.h"
#include "tls/tls.h"

#define CERTMGR_MAX_IN_FLIGHT 8
#define CERTMGR_BACKOFF_START_MS 500
#define CERTMGR_BACKOFF_MAX_MS 150000
#define CERTMGR_CALL_TIMEOUT_MS 10000
#define CERTMGR_MINT_RETRY_MS 500 /* local mode: minting failed, the current one still serves */

struct certmgr_config {
    struct loop *loop;
    /* Local mode: mint from the CA in this directory... */
    const char *ca_dir;
    /* ...or control-plane mode: meshd's CA over |chan| (borrowed, outlives the manager). */
    struct channel *chan;
    /* Metadata of CA calls; a bearer failure fails the call, which backs off. */
    struct cpcall_auth auth;
    long cert_ttl_s;       /* lifetime asked for (minted, in local mode) */
    bool allow_x25519;     /* TLS policy of the credentials made */
    /* Optional: a certificate was installed (first, or renewed). Runs inside the manager's
     * calls, certmgr_get() included (local mode mints there); it must not free the manager. */
    void (*on_change)(void *arg);
    void *arg;
};

struct certmgr;

/* Returns NULL with |err| when the local CA cannot be loaded. Strings are copied. */
struct certmgr *certmgr_new(const struct certmgr_config *cfg, char *err, size_t errlen);
/* Forgets everything; calls in flight are cancelled, waiters dropped without a call. */
void certmgr_free(struct certmgr *m);

/*
 * Credentials for |identity| (a reference the caller does not own: take one
 * to keep them past the current event), or NULL while none is there. A miss
 * asks the CA at once, ahead of renewals and prefetches and past a back-off.
 */
struct tls_creds *certmgr_get(struct certmgr *m, const char *identity);

/* The owner's set of identities: certmgr_mark(), certmgr_want() each, certmgr_sweep(). */
void certmgr_mark(struct certmgr *m);
/* Prefetch: makes sure a certificate for |identity| exists or is on its way. */
void certmgr_want(struct certmgr *m, const char *identity);
/* Forgets every identity not wanted since certmgr_mark(), logging |why| for each. */
void certmgr_sweep(struct certmgr *m, const char *why);

/*
 * Waiting for a certificate: |fn| runs once, when one for |identity| is
 * installed (then certmgr_get() returns it), or when |identity| is forgotten
 * (then it returns NULL); before certmgr_wait() returns if one is there
 * already (local mode mints at once). Parking asks for the certificate as
 * certmgr_get() does. |w| starts zeroed and must stay valid until then or
 * certmgr_cancel(); the callback may park again, cancel others or call the
 * manager (not free it).
 */
typedef void certmgr_wait_fn(void *arg);
struct certmgr_waiter {
    struct certmgr_waiter *prev, *next;
    uint64_t entry_id, gen;
    certmgr_wait_fn *fn;
    void *arg;
    bool queued;
};
void certmgr_wait(struct certmgr *m, struct certmgr_waiter *w, const char *identity,
                  certmgr_wait_fn *fn, void *arg);
void certmgr_cancel(struct certmgr *m, struct certmgr_waiter *w);

/* What the manager holds, for tests and dumps. */
struct certmgr_stats {
    uint64_t requests;  /* CA calls started (control-plane mode) or mints (local mode) */
    uint64_t installed; /* certificates installed */
    uint64_t failures;  /* CA calls or mints that failed */
    unsigned in_flight;
    size_t identities;
};
const struct certmgr_stats *certmgr_stats(const struct certmgr *m);
/* The last failure for |identity| ("" when none), or NULL if it is not held. */
const char *certmgr_last_error(const struct certmgr *m, const char *identity);

/* Calls |fn| for every identity that has credentials now (a reference the callee may take). */
typedef void certmgr_each_fn(void *arg, const char *identity, struct tls_creds *creds);
void certmgr_each(const struct certmgr *m, certmgr_each_fn *fn, void *arg);

struct json_t;
/* Appends one entry per identity to the JSON array |arr| (Istio ztunnel's config_dump shape). */
void certmgr_dump(const struct certmgr *m, struct json_t *arr);

/* ---- timing, exposed for tests --------------------------------------------------------- */

/*
 * When to renew (epoch seconds) a certificate valid until |not_after| whose
 * life counts from |from| (its notBefore, or the mint time for a backdated
 * one): at half-life, or, when that has passed at |now|, halfway through what
 * is left.
 */
long certmgr_renew_at(long from, long not_after, long now);
/*
 * The next back-off after |*backoff_ms| (0: none yet): 500 ms doubling to
 * 150 s, stored back; returns the delay with +-20 % jitter from |rnd|,
 * capped at |left_ms| (the time the certificate in use has left; 0: none).
 */
uint64_t certmgr_backoff(uint64_t *backoff_ms, uint32_t rnd, uint64_t left_ms);

#endif
