/*
 * kubeauth_cache.c - TokenReview answers by token digest, in a fixed table.
 *
 * A digest is uniformly random, so its first bytes pick a slot directly; an
 * entry lives in one of the KUBEAUTH_PROBE slots from there. A lookup reads
 * those slots and nothing else, and a full neighbourhood gives up the entry
 * that expires first, so the table never grows and no sequence of tokens makes
 * an operation cost more than KUBEAUTH_PROBE comparisons.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "base/base.h"
#include "kubeauth/kubeauth.h"

#define KUBEAUTH_PROBE 8
#define KUBEAUTH_CACHE_MIN 16

struct slot {
    uint8_t digest[KUBEAUTH_DIGEST_LEN];
    uint64_t expires_ms; /* 0: empty */
    bool positive;
    struct kubeauth_identity id; /* positive */
    char why[KUBEAUTH_WHY_MAX];  /* negative */
};

struct kubeauth_cache {
    struct slot *v;
    size_t mask;
};

struct kubeauth_cache *
kubeauth_cache_new(size_t max_entries)
{
    struct kubeauth_cache *c = xcalloc(1, sizeof(*c));
    size_t n = KUBEAUTH_CACHE_MIN;
    while (n < max_entries && n < ((size_t)1 << 24))
        n <<= 1;
    c->v = xcalloc(n, sizeof(*c->v));
    c->mask = n - 1;
    return c;
}

void
kubeauth_cache_free(struct kubeauth_cache *c)
{
    if (c == NULL)
        return;
    OPENSSL_cleanse(c->v, (c->mask + 1) * sizeof(*c->v));
    free(c->v);
    free(c);
}

void
kubeauth_digest(const char *tok, size_t len, uint8_t out[KUBEAUTH_DIGEST_LEN])
{
    SHA256((const unsigned char *)tok, len, out);
}

static size_t
home(const struct kubeauth_cache *c, const uint8_t *d)
{
    uint64_t h;
    memcpy(&h, d, sizeof(h));
    return (size_t)h & c->mask;
}

static struct slot *
find(struct kubeauth_cache *c, const uint8_t *d)
{
    size_t h = home(c, d);
    for (size_t i = 0; i < KUBEAUTH_PROBE; i++) {
        struct slot *s = &c->v[(h + i) & c->mask];
        if (s->expires_ms != 0 && memcmp(s->digest, d, KUBEAUTH_DIGEST_LEN) == 0)
            return s;
    }
    return NULL;
}

int
kubeauth_cache_get(struct kubeauth_cache *c, const uint8_t digest[KUBEAUTH_DIGEST_LEN],
                   uint64_t now_ms, struct kubeauth_identity *id, char *why, size_t whylen)
{
    struct slot *s = find(c, digest);
    if (s == NULL)
        return -1;
    if (s->expires_ms <= now_ms) {
        memset(s, 0, sizeof(*s));
        return -1;
    }
    if (s->positive) {
        *id = s->id;
        return 1;
    }
    snprintf(why, whylen, "%s", s->why);
    return 0;
}

void
kubeauth_cache_put(struct kubeauth_cache *c, const uint8_t digest[KUBEAUTH_DIGEST_LEN],
                   uint64_t expires_ms, const struct kubeauth_identity *id, const char *why)
{
    struct slot *s = find(c, digest);
    if (expires_ms == 0)
        return;
    if (s == NULL) {
        /* An empty slot, else the one that expires first (expired ones first of all). */
        size_t h = home(c, digest);
        for (size_t i = 0; i < KUBEAUTH_PROBE; i++) {
            struct slot *t = &c->v[(h + i) & c->mask];
            if (s == NULL || t->expires_ms < s->expires_ms)
                s = t;
            if (t->expires_ms == 0)
                break;
        }
    }
    memset(s, 0, sizeof(*s));
    memcpy(s->digest, digest, KUBEAUTH_DIGEST_LEN);
    s->expires_ms = expires_ms;
    s->positive = id != NULL;
    if (id != NULL)
        s->id = *id;
    else
        snprintf(s->why, sizeof(s->why), "%s", why != NULL ? why : "refused");
}

size_t
kubeauth_cache_len(const struct kubeauth_cache *c)
{
    size_t n = 0;
    for (size_t i = 0; i <= c->mask; i++)
        n += c->v[i].expires_ms != 0;
    return n;
}
