/*
 * hs_guard.c - pending TLS handshakes: a FIFO of tickets (oldest first, for
 * eviction), a hash of counts per source address (the per-source cap without
 * a scan), a timer per ticket, and the wait for the first record.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>

#define LOG_SCOPE "handshake"
#include "base/base.h"
#include "conn/hs_guard.h"
#include "log/log.h"

#define HS_LOG_INTERVAL_MS 1000
#define HS_LOG_BURST       5

/* Pending tickets of one address. */
struct hs_source {
    struct hs_source *next;
    struct ipaddr ip;
    unsigned n;
};

struct hs_ticket {
    struct hs_ticket *prev, *next; /* admission order */
    struct hs_guard *g;
    struct hs_source *src;
    hs_end_fn *end;
    hs_ready_fn *ready;
    void *arg;
    struct loop_timer deadline;
    struct loop_io io;           /* while waiting for the first record */
    struct loop_defer free_defer; /* an event for |io| may still be in this batch */
    int fd;
};

struct hs_guard {
    struct loop *loop;
    const char *name;
    struct hs_guard_opts o;
    struct hs_guard_stats st;
    struct hs_ticket *oldest, *newest;
    struct hs_source **buckets;
    size_t n_buckets; /* a power of two */
    uint64_t seed;    /* random: peers cannot aim at one bucket */
    struct log_ratelimit rl_refused, rl_evicted, rl_timeout;
};

size_t
hs_record_need(const uint8_t *p, size_t n)
{
    if (n < HS_RECORD_HEADER)
        return 0;
    /* handshake(22), legacy_version 3.x, 1..2^14 bytes (a ClientHello record is plaintext) */
    size_t len = (size_t)p[3] << 8 | p[4];
    if (p[0] != 22 || p[1] != 3 || len == 0 || len > HS_RECORD_MAX)
        return 0;
    return HS_RECORD_HEADER + len;
}

static size_t
bucket_of(const struct hs_guard *g, const struct ipaddr *ip)
{
    uint64_t h = 1469598103934665603ull ^ g->seed; /* FNV-1a, seeded */
    size_t len = ipaddr_len(ip);

    h = (h ^ ip->family) * 1099511628211ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ip->b[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32)) & (g->n_buckets - 1);
}

static struct hs_source *
source_get(struct hs_guard *g, const struct ipaddr *ip, bool create)
{
    size_t b = bucket_of(g, ip);
    for (struct hs_source *s = g->buckets[b]; s != NULL; s = s->next)
        if (ipaddr_eq(&s->ip, ip))
            return s;
    if (!create)
        return NULL;
    struct hs_source *s = xcalloc(1, sizeof(*s));
    s->ip = *ip;
    s->next = g->buckets[b];
    g->buckets[b] = s;
    return s;
}

static void
source_put(struct hs_guard *g, struct hs_source *s)
{
    if (--s->n > 0)
        return;
    struct hs_source **pp = &g->buckets[bucket_of(g, &s->ip)];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    free(s);
}

static void
ticket_free(void *arg)
{
    free(arg);
}

/* Unlinks |t|, stops its watchers and schedules its memory's release. */
static void
ticket_remove(struct hs_ticket *t)
{
    struct hs_guard *g = t->g;

    if (t->prev)
        t->prev->next = t->next;
    else
        g->oldest = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        g->newest = t->prev;
    loop_timer_stop(g->loop, &t->deadline);
    loop_io_stop(g->loop, &t->io);
    source_put(g, t->src);
    g->st.pending--;
    loop_defer(g->loop, &t->free_defer, ticket_free, t);
}

/* The guard ends |t|: it is gone before its owner hears of it. */
static void
ticket_end(struct hs_ticket *t, enum hs_end why)
{
    hs_end_fn *end = t->end;
    void *arg = t->arg;

    ticket_remove(t);
    end(arg, why);
}

static void
on_deadline(void *arg)
{
    struct hs_ticket *t = arg;
    struct hs_guard *g = t->g;
    char a[ADDR_STRLEN];

    g->st.timed_out++;
    log_warn_rl(&g->rl_timeout, "%s: handshake from %s not completed in %u ms, closed", g->name,
                ipaddr_str(&t->src->ip, a), g->o.timeout_ms);
    ticket_end(t, HS_END_TIMEOUT);
}

struct hs_guard *
hs_guard_new(struct loop *l, const char *name, const struct hs_guard_opts *o)
{
    struct hs_guard *g = xcalloc(1, sizeof(*g));

    g->loop = l;
    g->name = name;
    if (o != NULL)
        g->o = *o;
    if (g->o.max_pending == 0)
        g->o.max_pending = HS_GUARD_MAX_PENDING;
    if (g->o.max_per_source == 0)
        g->o.max_per_source = HS_GUARD_MAX_PER_SOURCE;
    if (g->o.max_per_source > g->o.max_pending)
        g->o.max_per_source = g->o.max_pending;
    if (g->o.timeout_ms == 0)
        g->o.timeout_ms = HS_GUARD_TIMEOUT_MS;
    g->n_buckets = 64;
    while (g->n_buckets < g->o.max_pending && g->n_buckets < (1u << 16))
        g->n_buckets <<= 1;
    g->buckets = xcalloc(g->n_buckets, sizeof(*g->buckets));
    if (getrandom(&g->seed, sizeof(g->seed), GRND_NONBLOCK) != (ssize_t)sizeof(g->seed))
        g->seed = (uint64_t)(uintptr_t)g ^ loop_now_ms(l);
    g->rl_refused = (struct log_ratelimit)LOG_RATELIMIT_INIT(HS_LOG_INTERVAL_MS, HS_LOG_BURST);
    g->rl_evicted = (struct log_ratelimit)LOG_RATELIMIT_INIT(HS_LOG_INTERVAL_MS, HS_LOG_BURST);
    g->rl_timeout = (struct log_ratelimit)LOG_RATELIMIT_INIT(HS_LOG_INTERVAL_MS, HS_LOG_BURST);
    return g;
}

void
hs_guard_free(struct hs_guard *g)
{
    if (g == NULL)
        return;
    /* At exit, after the loop stopped: nothing can fire for these any more. */
    while (g->oldest != NULL) {
        struct hs_ticket *t = g->oldest;
        g->oldest = t->next;
        loop_timer_stop(g->loop, &t->deadline);
        loop_io_stop(g->loop, &t->io);
        source_put(g, t->src);
        free(t);
    }
    free(g->buckets);
    free(g);
}

const struct hs_guard_stats *
hs_guard_stats(const struct hs_guard *g)
{
    return &g->st;
}

const struct hs_guard_opts *
hs_guard_opts(const struct hs_guard *g)
{
    return &g->o;
}

struct hs_ticket *
hs_guard_admit(struct hs_guard *g, const struct ipaddr *peer, hs_end_fn *end, void *arg)
{
    char a[ADDR_STRLEN], b[ADDR_STRLEN];
    struct hs_source *s = source_get(g, peer, false);

    if (s != NULL && s->n >= g->o.max_per_source) {
        g->st.refused++;
        log_warn_rl(&g->rl_refused, "%s: connection from %s refused: %u handshakes pending from "
                    "that address", g->name, ipaddr_str(peer, a), s->n);
        return NULL;
    }
    if (g->st.pending >= g->o.max_pending) {
        struct hs_ticket *old = g->oldest;
        g->st.evicted++;
        log_warn_rl(&g->rl_evicted, "%s: %zu handshakes pending: the oldest (from %s) closed for "
                    "one from %s", g->name, g->st.pending, ipaddr_str(&old->src->ip, a),
                    ipaddr_str(peer, b));
        ticket_end(old, HS_END_EVICTED);
    }
    /* Again: the evicted ticket may have been this address's last, and its entry gone. */
    s = source_get(g, peer, true);
    struct hs_ticket *t = xcalloc(1, sizeof(*t));
    t->g = g;
    t->src = s;
    t->end = end;
    t->arg = arg;
    t->fd = -1;
    s->n++;
    t->prev = g->newest;
    if (g->newest)
        g->newest->next = t;
    else
        g->oldest = t;
    g->newest = t;
    g->st.pending++;
    g->st.admitted++;
    loop_timer_start(g->loop, &t->deadline, g->o.timeout_ms, on_deadline, t);
    return t;
}

static void
set_lowat(int fd, size_t n)
{
    int v = (int)n;
    /* Best effort: without it a partial record only costs a few spurious wake-ups. */
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
}

static void
on_record_io(void *arg, uint32_t events)
{
    struct hs_ticket *t = arg;
    uint8_t hdr[HS_RECORD_HEADER];
    bool hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;

    ssize_t n = recv(t->fd, hdr, sizeof(hdr), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && !hup)
        return;
    if (n <= 0) {
        t->g->st.failed++;
        ticket_end(t, HS_END_CLOSED);
        return;
    }
    size_t need = (size_t)n < sizeof(hdr) ? sizeof(hdr) : hs_record_need(hdr, (size_t)n);
    int avail = 0;
    if (need > 0 && ioctl(t->fd, FIONREAD, &avail) == 0 && (size_t)avail < need) {
        if (hup) {
            /* The peer stopped sending before its first record was whole: it never will be. */
            t->g->st.failed++;
            ticket_end(t, HS_END_CLOSED);
            return;
        }
        set_lowat(t->fd, need);
        return;
    }
    loop_io_stop(t->g->loop, &t->io);
    set_lowat(t->fd, 1);
    t->fd = -1;
    t->ready(t->arg);
}

void
hs_ticket_wait_record(struct hs_ticket *t, int fd, hs_ready_fn *ready)
{
    t->fd = fd;
    t->ready = ready;
    set_lowat(fd, HS_RECORD_HEADER);
    if (loop_io_start(t->g->loop, &t->io, fd, EPOLLIN | EPOLLRDHUP, on_record_io, t) < 0) {
        /* Cannot watch it: let the TLS stack read it, under the deadline as any other. */
        set_lowat(fd, 1);
        t->fd = -1;
        ready(t->arg);
    }
}

void
hs_ticket_rebind(struct hs_ticket *t, hs_end_fn *end, void *arg)
{
    t->end = end;
    t->arg = arg;
}

void
hs_ticket_pause(struct hs_ticket *t)
{
    loop_timer_stop(t->g->loop, &t->deadline);
}

void
hs_ticket_resume(struct hs_ticket *t)
{
    loop_timer_start(t->g->loop, &t->deadline, t->g->o.timeout_ms, on_deadline, t);
}

void
hs_ticket_done(struct hs_ticket *t, bool ok)
{
    if (t == NULL)
        return;
    if (ok)
        t->g->st.completed++;
    else
        t->g->st.failed++;
    ticket_remove(t);
}
