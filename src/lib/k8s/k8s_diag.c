/*
 * k8s_diag.c - diagnostics (file, line, severity, message) and the hash used
 * for change detection and resource versions.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

static struct k8s_diag *
grow(struct k8s_diags *d)
{
    /* Capacity is the next power of two of n, so appends stay amortised O(1). */
    if (d->n == 0 || (d->n & (d->n - 1)) == 0)
        d->v = xrealloc(d->v, (d->n ? d->n * 2 : 4) * sizeof(*d->v));
    struct k8s_diag *g = &d->v[d->n++];
    memset(g, 0, sizeof(*g));
    return g;
}

void
k8s_diag_vadd(struct k8s_diags *d, const char *file, int line, int severity, const char *code,
              const char *fmt, va_list ap)
{
    struct k8s_diag *g;
    char *msg = NULL;

    if (d == NULL)
        return;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = xstrdup("(no memory for the message)");
    g = grow(d);
    g->file = xstrdup(file ? file : "");
    g->line = line;
    g->severity = severity;
    g->code = code ? xstrdup(code) : NULL;
    g->msg = msg;
}

void
k8s_diag_add(struct k8s_diags *d, const char *file, int line, int severity, const char *code,
             const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(d, file, line, severity, code, fmt, ap);
    va_end(ap);
}

void
k8s_diags_append(struct k8s_diags *dst, const struct k8s_diags *src)
{
    if (dst == NULL)
        return;
    for (size_t i = 0; i < src->n; i++) {
        const struct k8s_diag *s = &src->v[i];
        k8s_diag_add(dst, s->file, s->line, s->severity, s->code, "%s", s->msg);
    }
}

void
k8s_diags_clear(struct k8s_diags *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].code);
        free(d->v[i].msg);
    }
    free(d->v);
    d->v = NULL;
    d->n = 0;
}

size_t
k8s_diags_count(const struct k8s_diags *d, int severity)
{
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++)
        if (d->v[i].severity == severity)
            n++;
    return n;
}

char *
k8s_diag_str(const struct k8s_diag *g)
{
    const char *sev = g->severity == K8S_ERROR     ? "error"
                      : g->severity == K8S_WARNING ? "warning"
                                                   : "info";

    if (g->code != NULL)
        return xasprintf("%s:%d: %s: %s [%s]", g->file, g->line, sev, g->msg, g->code);
    return xasprintf("%s:%d: %s: %s", g->file, g->line, sev, g->msg);
}

struct sort_ent {
    struct k8s_diag g;
    size_t i; /* original position: makes the sort stable */
};

static int
cmp_ent(const void *a, const void *b)
{
    const struct sort_ent *x = a, *y = b;
    int c = strcmp(x->g.file, y->g.file);

    if (c != 0)
        return c;
    if (x->g.line != y->g.line)
        return x->g.line < y->g.line ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void
k8s_diags_sort(struct k8s_diags *d)
{
    struct sort_ent *e;

    if (d->n < 2)
        return;
    e = xcalloc(d->n, sizeof(*e));
    for (size_t i = 0; i < d->n; i++) {
        e[i].g = d->v[i];
        e[i].i = i;
    }
    qsort(e, d->n, sizeof(*e), cmp_ent);
    for (size_t i = 0; i < d->n; i++)
        d->v[i] = e[i].g;
    free(e);
}

uint64_t
k8s_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/*
 * Change detection for whole files: the shape of XXH64 (four lanes of 8
 * bytes, so several bytes per cycle instead of FNV's one), not bit-exact with
 * it and not for anything persistent.
 */
#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t
rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t
word(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t
lane(uint64_t acc, uint64_t in)
{
    return rotl(acc + in * P2, 31) * P1;
}

static inline uint64_t
fold(uint64_t h, uint64_t v)
{
    return (h ^ lane(0, v)) * P1 + P4;
}

uint64_t
k8s_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t h;

    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
        for (; end - p >= 32; p += 32) {
            v1 = lane(v1, word(p));
            v2 = lane(v2, word(p + 8));
            v3 = lane(v3, word(p + 16));
            v4 = lane(v4, word(p + 24));
        }
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = fold(fold(fold(fold(h, v1), v2), v3), v4);
    } else {
        h = P5;
    }
    h += len;
    for (; end - p >= 8; p += 8)
        h = rotl(h ^ lane(0, word(p)), 27) * P1 + P4;
    for (; p < end; p++)
        h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}
