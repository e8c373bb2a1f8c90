/*
 * metrics.c - the Prometheus registry: families, capped label sets, and the
 * text exposition format 0.0.4.
 *
 * Each family keeps its series in a chained hash table keyed by the label
 * values joined with NULs (FNV-1a). A series is one allocation: the struct,
 * the pointers to its values, a histogram's bucket counts, then the key bytes
 * the value pointers point into. Series are never removed, so callers may
 * keep pointers to them.
 *
 * One mutex per registry guards everything: the families, each family's
 * table, and every series' value. ztunnel's workers update the same series
 * (connections opened, bytes) from their own threads while the admin loop
 * renders; an update is a few instructions under an uncontended lock, taken
 * per connection event, not per byte.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "metrics/metrics.h"

struct metric_series {
    struct metric_series *hnext;
    uint64_t hash;
    double value;      /* a histogram's sum */
    uint64_t *buckets; /* histograms: n_bounds + 1 counts (the last is +Inf), not cumulative */
    const double *bounds; /* the family's */
    pthread_mutex_t *mu;  /* the registry's */
    uint32_t n_buckets;
    uint32_t key_len;
    const char *key;
    const char *vals[]; /* n_labels pointers, then the buckets, then the key bytes */
};

const double metrics_envoy_buckets[METRICS_ENVOY_N_BUCKETS] = {
    0.5,   1,     5,     10,     25,     50,     100,     250,     500,    1000,
    2500,  5000,  10000, 30000,  60000,  300000, 600000,  1800000, 3600000,
};

struct metric {
    struct metric *next; /* registration order */
    pthread_mutex_t *mu; /* the registry's */
    enum metric_type type;
    char *name;
    char *help;
    char **labels;
    size_t n_labels;
    size_t max_series;
    size_t n_series;
    uint64_t overflows;
    double *bounds; /* histograms: upper bounds, increasing */
    size_t n_bounds;
    struct metric_series **buckets;
    size_t n_buckets; /* a power of two */
};

struct metrics {
    pthread_mutex_t mu;
    struct metric *head;
    struct metric **tail;
};

struct metrics *
metrics_new(void)
{
    struct metrics *r = xcalloc(1, sizeof(*r));
    CHECK(pthread_mutex_init(&r->mu, NULL) == 0);
    r->tail = &r->head;
    return r;
}

static void
family_free(struct metric *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct metric_series *s = m->buckets[i];
        while (s != NULL) {
            struct metric_series *next = s->hnext;
            free(s);
            s = next;
        }
    }
    free(m->buckets);
    free(m->bounds);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->labels[i]);
    free(m->labels);
    free(m->name);
    free(m->help);
    free(m);
}

void
metrics_free(struct metrics *r)
{
    if (r == NULL)
        return;
    while (r->head != NULL) {
        struct metric *m = r->head;
        r->head = m->next;
        family_free(m);
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static bool
valid_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

/* Builds the family whole (histogram bounds too) before it is linked, under the lock: a
 * render on another thread sees it complete or not at all. */
static struct metric *
family_add(struct metrics *r, enum metric_type type, const char *name, const char *help,
           const char *const *labels, size_t n_labels, size_t max_series, const double *bounds,
           size_t n_bounds)
{
    CHECK(valid_name(name, true));
    CHECK(n_labels <= METRICS_MAX_LABELS);
    CHECK(strcmp(name, METRICS_OVERFLOW_NAME) != 0);
    for (size_t i = 0; i < n_labels; i++) {
        CHECK(valid_name(labels[i], false) && strncmp(labels[i], "__", 2) != 0);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(labels[i], labels[j]) != 0);
    }

    struct metric *m = xcalloc(1, sizeof(*m));
    m->type = type;
    m->name = xstrdup(name);
    m->help = xstrdup(help ? help : "");
    m->n_labels = n_labels;
    m->labels = xcalloc(n_labels ? n_labels : 1, sizeof(char *));
    for (size_t i = 0; i < n_labels; i++)
        m->labels[i] = xstrdup(labels[i]);
    m->max_series = n_labels == 0 ? 1 : max_series ? max_series : METRICS_DEFAULT_MAX_SERIES;
    m->n_buckets = 16;
    m->buckets = xcalloc(m->n_buckets, sizeof(*m->buckets));
    if (n_bounds > 0) {
        m->bounds = xcalloc(n_bounds, sizeof(double));
        memcpy(m->bounds, bounds, n_bounds * sizeof(double));
        m->n_bounds = n_bounds;
    }
    m->mu = &r->mu;
    pthread_mutex_lock(&r->mu);
    for (const struct metric *o = r->head; o != NULL; o = o->next)
        CHECK(strcmp(o->name, name) != 0);
    *r->tail = m;
    r->tail = &m->next;
    pthread_mutex_unlock(&r->mu);
    return m;
}

struct metric *
metrics_add(struct metrics *r, enum metric_type type, const char *name, const char *help,
            const char *const *labels, size_t n_labels, size_t max_series)
{
    CHECK(type == METRIC_COUNTER || type == METRIC_GAUGE);
    return family_add(r, type, name, help, labels, n_labels, max_series, NULL, 0);
}

struct metric *
metrics_add_histogram(struct metrics *r, const char *name, const char *help,
                      const char *const *labels, size_t n_labels, size_t max_series,
                      const double *bounds, size_t n_bounds)
{
    CHECK(n_bounds >= 1 && n_bounds <= METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < n_bounds; i++)
        CHECK(isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]));
    /* "le" is the bucket label; the family must not use it. */
    for (size_t i = 0; i < n_labels; i++)
        CHECK(strcmp(labels[i], "le") != 0);
    return family_add(r, METRIC_HISTOGRAM, name, help, labels, n_labels, max_series, bounds,
                      n_bounds);
}

/* Length of the valid UTF-8 sequence at |p| (|n| bytes left), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    unsigned char b = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;

    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        len = 2;
    else if (b >= 0xE0 && b <= 0xEF)
        len = 3;
    else if (b >= 0xF0 && b <= 0xF4)
        len = 4;
    else
        return 0;
    if (b == 0xE0)
        lo = 0xA0; /* overlong */
    else if (b == 0xED)
        hi = 0x9F; /* surrogates */
    else if (b == 0xF0)
        lo = 0x90; /* overlong */
    else if (b == 0xF4)
        hi = 0x8F; /* past U+10FFFF */
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Copies |in| into |out| (room for METRICS_VALUE_MAX bytes), replacing each
 * invalid byte with U+FFFD and stopping before a character that would not
 * fit whole. Returns the length written.
 */
static size_t
clean_value(const char *in, char *out)
{
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t n = strlen((const char *)p), o = 0;

    while (n > 0) {
        size_t len = utf8_len(p, n);
        const unsigned char *src = p;
        size_t w = len;
        if (len == 0) {
            src = (const unsigned char *)"\xEF\xBF\xBD";
            w = 3;
            len = 1;
        }
        if (o + w > METRICS_VALUE_MAX)
            break;
        memcpy(out + o, src, w);
        o += w;
        p += len;
        n -= len;
    }
    return o;
}

static uint64_t
fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void
grow(struct metric *m)
{
    size_t nb = m->n_buckets * 2;
    struct metric_series **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct metric_series *s = m->buckets[i];
        while (s != NULL) {
            struct metric_series *next = s->hnext;
            s->hnext = b[s->hash & (nb - 1)];
            b[s->hash & (nb - 1)] = s;
            s = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
}

/* metric_series() with |m|'s registry locked by the caller. */
static struct metric_series *
series_locked(struct metric *m, const char *const *values)
{
    char key[METRICS_MAX_LABELS * (METRICS_VALUE_MAX + 1) + 1];
    size_t len = 0;

    for (size_t i = 0; i < m->n_labels; i++) {
        len += clean_value(values ? values[i] : NULL, key + len);
        key[len++] = '\0';
    }
    uint64_t h = fnv1a(key, len);
    for (struct metric_series *s = m->buckets[h & (m->n_buckets - 1)]; s != NULL; s = s->hnext)
        if (s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0)
            return s;
    if (m->n_series >= m->max_series) {
        m->overflows++;
        return NULL;
    }
    size_t nb = m->type == METRIC_HISTOGRAM ? m->n_bounds + 1 : 0;
    struct metric_series *s = xcalloc(1, sizeof(*s) + m->n_labels * sizeof(char *) +
                                             nb * sizeof(uint64_t) + len + 1);
    s->buckets = nb ? (uint64_t *)(void *)(s->vals + m->n_labels) : NULL;
    s->n_buckets = (uint32_t)nb;
    s->bounds = m->bounds;
    s->mu = m->mu;
    char *k = (char *)(s->vals + m->n_labels) + nb * sizeof(uint64_t);
    memcpy(k, key, len);
    s->key = k;
    for (size_t i = 0, off = 0; i < m->n_labels; i++) {
        s->vals[i] = k + off;
        off += strlen(k + off) + 1;
    }
    s->hash = h;
    s->key_len = (uint32_t)len;
    s->hnext = m->buckets[h & (m->n_buckets - 1)];
    m->buckets[h & (m->n_buckets - 1)] = s;
    if (++m->n_series > m->n_buckets)
        grow(m);
    return s;
}

struct metric_series *
metric_series(struct metric *m, const char *const *values)
{
    pthread_mutex_lock(m->mu);
    struct metric_series *s = series_locked(m, values);
    pthread_mutex_unlock(m->mu);
    return s;
}

const char *const *
metric_series_labels(const struct metric_series *s)
{
    return s->vals; /* written once, before the series was published under the lock */
}

/* The updates with the registry locked by the caller; |s| may be NULL (lost to the cap). */
static void
add_locked(struct metric_series *s, double v)
{
    if (s != NULL) {
        CHECK(s->buckets == NULL);
        s->value += v;
    }
}

static void
set_locked(struct metric_series *s, double v)
{
    if (s != NULL) {
        CHECK(s->buckets == NULL);
        s->value = v;
    }
}

static void
observe_locked(struct metric_series *s, double v)
{
    uint32_t i = 0;

    if (s == NULL)
        return;
    CHECK(s->buckets != NULL);
    while (i + 1 < s->n_buckets && !(v <= s->bounds[i]))
        i++; /* NaN lands in +Inf only */
    s->buckets[i]++;
    s->value += v;
}

void
metric_series_add(struct metric_series *s, double v)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(s->mu);
    add_locked(s, v);
    pthread_mutex_unlock(s->mu);
}

void
metric_series_set(struct metric_series *s, double v)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(s->mu);
    set_locked(s, v);
    pthread_mutex_unlock(s->mu);
}

void
metric_series_observe(struct metric_series *s, double v)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(s->mu);
    observe_locked(s, v);
    pthread_mutex_unlock(s->mu);
}

double
metric_series_value(const struct metric_series *s)
{
    if (s == NULL)
        return 0;
    pthread_mutex_lock(s->mu);
    double v = s->value;
    pthread_mutex_unlock(s->mu);
    return v;
}

uint64_t
metric_series_count(const struct metric_series *s)
{
    uint64_t n = 0;
    if (s == NULL)
        return 0;
    pthread_mutex_lock(s->mu);
    for (uint32_t i = 0; i < s->n_buckets; i++)
        n += s->buckets[i];
    pthread_mutex_unlock(s->mu);
    return n;
}

void
metric_add(struct metric *m, const char *const *values, double v)
{
    pthread_mutex_lock(m->mu);
    add_locked(series_locked(m, values), v);
    pthread_mutex_unlock(m->mu);
}

void
metric_set(struct metric *m, const char *const *values, double v)
{
    pthread_mutex_lock(m->mu);
    set_locked(series_locked(m, values), v);
    pthread_mutex_unlock(m->mu);
}

void
metric_observe(struct metric *m, const char *const *values, double v)
{
    CHECK(m->type == METRIC_HISTOGRAM);
    pthread_mutex_lock(m->mu);
    observe_locked(series_locked(m, values), v);
    pthread_mutex_unlock(m->mu);
}

size_t
metric_n_series(const struct metric *m)
{
    pthread_mutex_lock(m->mu);
    size_t n = m->n_series;
    pthread_mutex_unlock(m->mu);
    return n;
}

uint64_t
metric_overflows(const struct metric *m)
{
    pthread_mutex_lock(m->mu);
    uint64_t n = m->overflows;
    pthread_mutex_unlock(m->mu);
    return n;
}

/* ---- rendering ----------------------------------------------------------- */

/* |help| with "\" and newlines escaped, as HELP lines need. */
static void
put_help(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* A label value: "\", '"' and newlines escaped. */
static void
put_label_value(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* Integers exactly as integers; other values in the shortest form that reads back the same. */
static void
put_value(FILE *f, double v)
{
    char b[40];

    if (isnan(v)) {
        fputs("NaN", f);
        return;
    }
    if (isinf(v)) {
        fputs(v > 0 ? "+Inf" : "-Inf", f);
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        fprintf(f, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(b, sizeof(b), "%.*g", prec, v);
        if (strtod(b, NULL) == v)
            break;
    }
    fputs(b, f);
}

static int
cmp_series(const void *a, const void *b, void *arg)
{
    const struct metric_series *x = *(const struct metric_series *const *)a;
    const struct metric_series *y = *(const struct metric_series *const *)b;
    const size_t *n_labels = arg;
    for (size_t i = 0; i < *n_labels; i++) {
        int c = strcmp(x->vals[i], y->vals[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

/* One sample line: name+suffix, the series' labels, an optional le label, the value. */
static void
put_sample(FILE *f, const struct metric *m, const char *suffix, const struct metric_series *s,
           const double *le, double value)
{
    bool any = m->n_labels > 0 || le != NULL;

    fputs(m->name, f);
    fputs(suffix, f);
    for (size_t j = 0; j < m->n_labels; j++) {
        fprintf(f, "%s%s=\"", j == 0 ? "{" : ",", m->labels[j]);
        put_label_value(f, s->vals[j]);
        fputc('"', f);
    }
    if (le != NULL) {
        fputs(m->n_labels ? ",le=\"" : "{le=\"", f);
        put_value(f, *le);
        fputc('"', f);
    }
    fputs(any ? "} " : " ", f);
    put_value(f, value);
    fputc('\n', f);
}

static const char *
type_name(enum metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

static void
put_family(FILE *f, const struct metric *m)
{
    fprintf(f, "# HELP %s ", m->name);
    put_help(f, m->help);
    fprintf(f, "\n# TYPE %s %s\n", m->name, type_name(m->type));
    if (m->n_series == 0)
        return;

    struct metric_series **v = xcalloc(m->n_series, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < m->n_buckets; i++)
        for (struct metric_series *s = m->buckets[i]; s != NULL; s = s->hnext)
            v[n++] = s;
    size_t n_labels = m->n_labels;
    qsort_r(v, n, sizeof(*v), cmp_series, &n_labels);
    for (size_t i = 0; i < n; i++) {
        if (m->type != METRIC_HISTOGRAM) {
            put_sample(f, m, "", v[i], NULL, v[i]->value);
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= m->n_bounds; b++) {
            const double inf = INFINITY;
            cum += v[i]->buckets[b];
            put_sample(f, m, "_bucket", v[i], b < m->n_bounds ? &m->bounds[b] : &inf, (double)cum);
        }
        put_sample(f, m, "_sum", v[i], NULL, v[i]->value);
        put_sample(f, m, "_count", v[i], NULL, (double)cum);
    }
    free(v);
}

char *
metrics_render(const struct metrics *r)
{
    char *p = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&p, &len);
    CHECK(f != NULL);

    /* The lock is held while formatting: no update is seen half done, and a scrape is rare. */
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    for (const struct metric *m = r->head; m != NULL; m = m->next)
        put_family(f, m);
    fprintf(f,
            "# HELP %s Updates dropped because a metric already had its maximum number of "
            "label sets.\n# TYPE %s counter\n",
            METRICS_OVERFLOW_NAME, METRICS_OVERFLOW_NAME);
    for (const struct metric *m = r->head; m != NULL; m = m->next)
        if (m->overflows > 0)
            fprintf(f, "%s{metric=\"%s\"} %llu\n", METRICS_OVERFLOW_NAME, m->name,
                    (unsigned long long)m->overflows);
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    CHECK(fclose(f) == 0);
    return p;
}
