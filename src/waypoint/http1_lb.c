/*
 * http1_lb.c - per-request endpoint choice for the HTTP engines: Envoy's LEAST_REQUEST in its
 * exact form (every candidate compared, not two sampled), ties broken at random, endpoints
 * already tried this request avoided while another exists (Istio's previous_hosts retry
 * predicate).
 *
 * Outstanding counts are per thread (one loop per thread, so no lock): a small hash table
 * from workload uid to count, an entry existing only while its count is not zero, so its
 * size is bounded by the requests in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/base.h"
#include "http1_internal.h"

#define OUT_BUCKETS 256
#define PICK_MAX    1024 /* endpoints considered per pick; a bigger service uses its first ones */

struct out_entry {
    struct out_entry *next;
    unsigned count;
    char uid[];
};

static _Thread_local struct out_entry *out_tab[OUT_BUCKETS];
static _Thread_local uint64_t rng_state;

static uint32_t
hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static const char *
ep_key(const struct workload *ep)
{
    return ep->uid != NULL ? ep->uid : (ep->name != NULL ? ep->name : "");
}

static struct out_entry **
out_find(const char *uid)
{
    struct out_entry **pp = &out_tab[hash_str(uid) % OUT_BUCKETS];
    while (*pp != NULL && strcmp((*pp)->uid, uid) != 0)
        pp = &(*pp)->next;
    return pp;
}

unsigned
wp_h1_outstanding(const struct workload *ep)
{
    struct out_entry **pp = out_find(ep_key(ep));
    return *pp != NULL ? (*pp)->count : 0;
}

void
wp_h1_outstanding_add(const struct workload *ep, int delta)
{
    const char *uid = ep_key(ep);
    struct out_entry **pp = out_find(uid);

    if (*pp == NULL) {
        if (delta <= 0)
            return;
        size_t n = strlen(uid) + 1;
        *pp = xcalloc(1, sizeof(**pp) + n);
        memcpy((*pp)->uid, uid, n);
    }
    if (delta < 0 && (*pp)->count < (unsigned)-delta)
        (*pp)->count = 0;
    else
        (*pp)->count += (unsigned)delta;
    if ((*pp)->count == 0) {
        struct out_entry *e = *pp;
        *pp = e->next;
        free(e);
    }
}

uint32_t
wp_h1_rand(void)
{
    if (rng_state == 0) {
        if (getrandom(&rng_state, sizeof(rng_state), GRND_NONBLOCK) != (ssize_t)sizeof(rng_state))
            rng_state = clock_mono_ms() ^ (uint64_t)(uintptr_t)&rng_state;
        rng_state |= 1;
    }
    /* xorshift64*: not for secrets; request ids and load balancing only. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

void
wp_h1_uuid(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];

    for (size_t i = 0; i < sizeof(b); i += 4) {
        uint32_t r = wp_h1_rand();
        memcpy(b + i, &r, 4);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static bool
was_tried(const struct workload *w, const struct workload *const *tried, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tried[i] == w || strcmp(ep_key(tried[i]), ep_key(w)) == 0)
            return true;
    return false;
}

bool
wp_h1_pick(const struct model *m, const struct service *svc, uint16_t svc_port,
           const struct workload *const *tried, size_t n_tried, struct wp_h1_pick *out)
{
    size_t n = 0;
    struct workload *const *eps = model_endpoints(m, svc->key, &n);
    const struct workload *best[64];
    uint16_t best_port[64];
    size_t n_best = 0, seen = 0;
    unsigned best_count = 0;

    if (n > PICK_MAX)
        n = PICK_MAX;
    /* Two passes at most: untried endpoints first, then any. */
    for (int pass = 0; pass < 2 && n_best == 0; pass++) {
        seen = 0;
        for (size_t i = 0; i < n; i++) {
            const struct workload *w = eps[i];
            uint16_t port;

            if (w->status != WORKLOAD_HEALTHY || w->n_addrs == 0)
                continue;
            if ((port = model_endpoint_port(w, svc, svc_port)) == 0)
                continue;
            if (pass == 0 && was_tried(w, tried, n_tried))
                continue;
            unsigned cnt = wp_h1_outstanding(w);
            if (n_best == 0 || cnt < best_count) {
                n_best = 0;
                seen = 0;
                best_count = cnt;
            } else if (cnt > best_count) {
                continue;
            }
            /* Reservoir sampling keeps a uniform choice among ties beyond the array. */
            seen++;
            if (n_best < 64) {
                best[n_best] = w;
                best_port[n_best++] = port;
            } else {
                uint32_t j = wp_h1_rand() % (uint32_t)seen;
                if (j < 64) {
                    best[j] = w;
                    best_port[j] = port;
                }
            }
        }
    }
    if (n_best == 0)
        return false;
    size_t k = wp_h1_rand() % n_best;
    out->ep = best[k];
    out->port = best_port[k];
    return true;
}
