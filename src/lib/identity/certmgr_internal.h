/*
 * certmgr_internal.h - what certmgr.c and certmgr_dump.c share: the manager
 * and its entries, one per identity.
 */
#ifndef MESH_LIB_CERTMGR_INTERNAL_H
#define MESH_LIB_CERTMGR_INTERNAL_H

#include <openssl/x509.h>

#include "identity/certmgr.h"

struct fetch;

struct cert_entry {
    struct cert_entry *prev, *next;
    struct certmgr *owner;
    char *identity;
    struct tls_creds *creds; /* NULL until the first certificate arrives */
    STACK_OF(X509) *roots;   /* the trust bundle that came with it (for the dump) */
    long minted_at;          /* local mode: wall seconds (notBefore is backdated) */
    struct loop_timer timer; /* renewal, or retry after a failure */
    uint64_t backoff_ms;
    struct fetch *fetch;     /* request in flight */
    bool queued;             /* waiting for a request slot */
    struct cert_entry *qnext;
    bool wanted;             /* since certmgr_mark() */
    uint64_t id;             /* waiters name it by this (an entry may be freed under them) */
    char last_error[160];
};

struct certmgr {
    struct certmgr_config cfg; /* its strings are ours */
    struct loop *loop;
    struct ca *ca;           /* local mode */
    struct channel *chan;    /* control-plane mode (borrowed) */
    struct cert_entry *entries;
    struct cert_entry *qhead, *qtail;
    struct fetch *fetches;
    struct certmgr_waiter *waiters;
    uint64_t next_id, wake_gen;
    struct certmgr_stats stats;
};

/* Wall-clock seconds. */
long certmgr_now_s(void);
/* The entry of |identity|, or NULL. */
struct cert_entry *certmgr_find(const struct certmgr *c, const char *identity);

#endif
