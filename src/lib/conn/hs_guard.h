/*
 * hs_guard.h - bounds on TLS handshakes that have not completed yet.
 *
 * A server admits each accepted connection here before it spends anything on
 * it, and says when its handshake completed or failed. Until then the
 * connection holds a ticket, and:
 *   - at most |max_per_source| tickets exist per peer address: one more from
 *     that address is refused (the caller closes it at once);
 *   - at most |max_pending| exist in all: a new one evicts the oldest, so a
 *     flood from many addresses cannot hold every slot while new clients are
 *     refused; a real handshake takes milliseconds and survives unless the
 *     whole table turns over in that time;
 *   - each has |timeout_ms| to complete, counted while the peer is the one
 *     we wait for (hs_ticket_pause() while the server itself waits).
 * Accepting and closing at once (rather than leaving connections in the
 * kernel's accept queue) keeps the queue moving for everyone else.
 *
 * Before any TLS state exists, hs_ticket_wait_record() parks the socket until
 * the peer's first TLS record (the ClientHello) is wholly in the kernel's
 * receive queue (SO_RCVLOWAT, no busy loop): a peer that sends a few bytes and
 * stops costs one ticket, not an SSL object with its buffers.
 *
 * Refusals, evictions and timeouts are logged at most a few times a second.
 */
#ifndef MESH_LIB_HS_GUARD_H
#define MESH_LIB_HS_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "net/addr.h"

#define HS_GUARD_MAX_PENDING     512
#define HS_GUARD_MAX_PER_SOURCE  64
#define HS_GUARD_TIMEOUT_MS      5000
#define HS_RECORD_HEADER         5
#define HS_RECORD_MAX            16384 /* a plaintext record (ClientHello), RFC 8446 5.1 */

struct hs_guard_opts {
    unsigned max_pending;    /* 0: HS_GUARD_MAX_PENDING */
    unsigned max_per_source; /* 0: HS_GUARD_MAX_PER_SOURCE; capped at max_pending */
    unsigned timeout_ms;     /* 0: HS_GUARD_TIMEOUT_MS */
};

/* Counters since start, plus what is pending now. */
struct hs_guard_stats {
    uint64_t admitted;  /* tickets handed out */
    uint64_t completed; /* handshakes that completed */
    uint64_t failed;    /* ended otherwise: TLS error, peer closed */
    uint64_t timed_out; /* closed at the deadline */
    uint64_t evicted;   /* closed to make room for a newer one (total cap) */
    uint64_t refused;   /* not admitted (per-source cap) */
    size_t pending;
};

/* Why the guard ended a ticket. */
enum hs_end { HS_END_EVICTED = 1, HS_END_TIMEOUT, HS_END_CLOSED };

struct hs_guard;
struct hs_ticket;

/*
 * The guard ended the ticket: the owner must close the connection now (or
 * schedule it) and forget the ticket, which is already gone. HS_END_CLOSED:
 * the peer closed or reset the socket while hs_ticket_wait_record() watched it.
 */
typedef void hs_end_fn(void *arg, enum hs_end why);
/* The first record is complete (or is not TLS: the TLS stack will say so). */
typedef void hs_ready_fn(void *arg);

/* |name| (static) prefixes log lines, e.g. "hbone". */
struct hs_guard *hs_guard_new(struct loop *l, const char *name, const struct hs_guard_opts *o);
/* Frees the guard and any tickets left, without callbacks. Accepts NULL. */
void hs_guard_free(struct hs_guard *g);
const struct hs_guard_stats *hs_guard_stats(const struct hs_guard *g);
const struct hs_guard_opts *hs_guard_opts(const struct hs_guard *g);

/*
 * Admits a connection from |peer|. NULL: refused (per-source cap), close it.
 * May evict the oldest ticket first (its owner's |end| runs from in here).
 */
struct hs_ticket *hs_guard_admit(struct hs_guard *g, const struct ipaddr *peer, hs_end_fn *end,
                                 void *arg);
/*
 * Watches |fd| (not owned) until the peer's first record is complete, then
 * calls |ready| once (from the loop). |end| HS_END_CLOSED if the peer goes.
 */
void hs_ticket_wait_record(struct hs_ticket *t, int fd, hs_ready_fn *ready);
/* Hands |t| to a new owner: |end| and |arg| replace those given to hs_guard_admit(). */
void hs_ticket_rebind(struct hs_ticket *t, hs_end_fn *end, void *arg);
/* The server is the one waiting (e.g. for a certificate): stop the deadline. */
void hs_ticket_pause(struct hs_ticket *t);
/* The peer is again the one we wait for: a fresh deadline of timeout_ms. */
void hs_ticket_resume(struct hs_ticket *t);
/* The handshake completed (|ok|) or the connection ended first. Frees |t|. */
void hs_ticket_done(struct hs_ticket *t, bool ok);

/*
 * From the first bytes of a connection (at least HS_RECORD_HEADER): the bytes
 * the first record needs in all (header + length) if it is a TLS handshake
 * record a ClientHello may arrive in, or 0 if it is not one (the TLS stack
 * will refuse it with an alert; nothing is worth waiting for).
 */
size_t hs_record_need(const uint8_t *p, size_t n);

#endif
