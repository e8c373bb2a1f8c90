/*
 * fuzz_http1_run.c - see fuzz_http1_run.h. A run is summed up as a transcript:
 * one record per event (what the head said, a hash of its fields, the body
 * bytes so far, the error and its reason), compared between the whole-input
 * run and the split runs.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_http1_run.h"
#include "http1/http1.h"

#define MAX_RECORDS 256

struct record {
    int rc;
    const char *why;
    uint64_t a, b, c, d; /* event-specific */
};

struct transcript {
    struct record r[MAX_RECORDS];
    size_t n;
    uint64_t body_hash, body_bytes;
};

static uint64_t
fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t
fields_hash(const struct http1_field *f, size_t n, const char *base, size_t limit)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)f[i].name.off + f[i].name.len > limit ||
            (size_t)f[i].value.off + f[i].value.len > limit || f[i].name.len == 0)
            abort(); /* a span outside the bytes it describes */
        h = fnv(h, base + f[i].name.off, f[i].name.len);
        h = fnv(h, ":", 1);
        h = fnv(h, base + f[i].value.off, f[i].value.len);
        h = fnv(h, "\n", 1);
    }
    return h;
}

static void
add(struct transcript *t, struct record r)
{
    if (t->n < MAX_RECORDS)
        t->r[t->n++] = r;
}

/* One run: |step| 0 gives all bytes at once; otherwise pieces of varying size. */
static void
run(const char *d, size_t n, bool response, const char *method, const struct http1_limits *lim,
    unsigned step, struct transcript *t)
{
    struct http1_parser ps;
    size_t start = 0, avail = step ? 0 : n, iters = 0;
    unsigned s = step;

    memset(t, 0, sizeof(*t));
    t->body_hash = 14695981039346656037ull;
    http1_parser_init(&ps, response, lim);
    if (response)
        http1_parser_expect(&ps, method, strlen(method));
    for (;;) {
        struct http1_span data;
        size_t used, len = avail - start;
        const char *p = d + start;
        int rc = http1_parse(&ps, p, len, &used, &data);

        if (++iters > 8 * n + 64 || used > len)
            abort(); /* no progress, or consumed what it was not given */
        if (rc < 0) {
            if (ps.why == NULL || http1_error_status(rc) < 400)
                abort();
            add(t, (struct record){.rc = rc, .why = ps.why});
            break;
        }
        if (rc == HTTP1_HEAD) {
            const struct http1_head *h = &ps.head;
            if (used != h->len || h->n_fields > lim->max_fields ||
                (!response && (size_t)h->method.off + h->method.len > used) ||
                (size_t)h->target.off + h->target.len > used ||
                (size_t)h->reason.off + h->reason.len > used)
                abort();
            add(t, (struct record){.rc = rc,
                                   .a = h->len,
                                   .b = fields_hash(h->fields, h->n_fields, p, used),
                                   .c = (uint64_t)h->body << 32 | h->status << 16 |
                                        (uint64_t)h->keep_alive << 8 | h->minor,
                                   .d = h->content_length});
        } else if (rc == HTTP1_DATA) {
            if ((size_t)data.off + data.len > used || data.len == 0)
                abort();
            t->body_hash = fnv(t->body_hash, p + data.off, data.len);
            t->body_bytes += data.len;
        } else if (rc == HTTP1_END) {
            add(t, (struct record){.rc = rc,
                                   .a = t->body_bytes,
                                   .b = t->body_hash,
                                   .c = ps.n_trailers,
                                   .d = fields_hash(ps.trailers, ps.n_trailers, p, used)});
            if (response && ps.head.status >= 200)
                http1_parser_expect(&ps, method, strlen(method));
        } else if (rc == HTTP1_RAW) {
            add(t, (struct record){.rc = rc, .a = start});
            break;
        }
        start += used;
        if (rc == HTTP1_MORE) {
            if (avail == n) {
                rc = http1_parse_eof(&ps);
                add(t, (struct record){.rc = 100 + rc, .why = rc < 0 ? ps.why : NULL,
                                       .a = t->body_bytes, .b = t->body_hash});
                break;
            }
            avail += s;
            if (avail > n)
                avail = n;
            s = s * 5 % 23 + 1; /* 1..23, uneven */
        }
    }
    http1_parser_free(&ps);
}

static bool
same(const struct transcript *x, const struct transcript *y)
{
    if (x->n != y->n)
        return false;
    for (size_t i = 0; i < x->n; i++) {
        const struct record *a = &x->r[i], *b = &y->r[i];
        if (a->rc != b->rc || a->a != b->a || a->b != b->b || a->c != b->c || a->d != b->d ||
            (a->why == NULL) != (b->why == NULL) || (a->why && strcmp(a->why, b->why) != 0))
            return false;
    }
    return true;
}

void
fuzz_http1_run(const uint8_t *data, size_t size, bool response, const char *method, bool small)
{
    static struct transcript whole, split;
    const struct http1_limits tight = {.max_head = 256, .max_fields = 8, .max_trailer = 64,
                                       .max_trailers = 2, .max_chunk_ext = 16};
    struct http1_limits lim = small ? tight : (struct http1_limits){0};
    const char *d = (const char *)data;

    if (!small) {
        lim.max_head = HTTP1_MAX_HEAD_DEFAULT;
        lim.max_fields = HTTP1_MAX_FIELDS_DEFAULT;
        lim.max_trailer = HTTP1_MAX_TRAILER_DEFAULT;
        lim.max_trailers = HTTP1_MAX_TRAILERS_DEFAULT;
        lim.max_chunk_ext = HTTP1_MAX_CHUNK_EXT_DEFAULT;
    }
    run(d, size, response, method, &lim, 0, &whole);
    for (unsigned step = 1; step <= 7; step += 6) {
        run(d, size, response, method, &lim, step, &split);
        if (!same(&whole, &split))
            abort(); /* the split changed what was parsed */
    }
}
