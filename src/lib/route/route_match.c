/*
 * route_match.c - the first rule of a table that matches a request, with
 * Gateway API's semantics (httproute_types.go HTTPRouteMatch):
 *   - the path is matched without its query; PathPrefix by whole elements
 *     ("/foo" matches "/foo", "/foo/", "/foo/bar", never "/foobar"; the
 *     prefix's trailing '/' was dropped at compile time, so "/foo/" is "/foo"
 *     and "/" matches everything); Exact byte for byte; RegularExpression
 *     must match the whole path;
 *   - header names are case-insensitive; a header sent several times is
 *     matched as its values joined with "," (Envoy); an absent header never
 *     matches, whatever the value or regex;
 *   - query parameter names and values are compared as sent (not
 *     percent-decoded, as Envoy's router); of repeats the first one counts;
 *   - the method exactly (methods are case-sensitive);
 *   - all conditions of a match hold together.
 * No allocation unless a header is repeated and matched by regex.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "route/route_internal.h"

static void
count_regex_error(const struct route_table *t)
{
    /* the counter is the one mutable part of a shared table */
    atomic_fetch_add(&((struct route_table *)t)->regex_errors, 1);
}

/* The regex steps one request has used, over all the rules it is matched against. */
struct mctx {
    const struct route_table *t;
    unsigned long steps;
};

static bool
regex_ok(struct mctx *c, const struct route_regex *re, const char *s, size_t n)
{
    int rc = route_regex_match(re, s, n, &c->steps);
    if (rc < 0)
        count_regex_error(c->t);
    return rc == 1;
}

static bool
path_ok(struct mctx *c, const struct rt_match *m, const char *path, size_t n)
{
    switch (m->kind) {
    case RT_PATH_PREFIX:
        return n >= m->path_len && memcmp(path, m->path, m->path_len) == 0 &&
               (n == m->path_len || path[m->path_len] == '/');
    case RT_PATH_EXACT:
        return n == m->path_len && memcmp(path, m->path, n) == 0;
    case RT_PATH_REGEX:
        return regex_ok(c, m->path_re, path, n);
    }
    return false;
}

static bool
value_ok(struct mctx *c, const struct rt_keymatch *k, const char *v, size_t n)
{
    if (k->re != NULL)
        return regex_ok(c, k->re, v, n);
    return n == k->value_len && memcmp(v, k->value, n) == 0;
}

static bool
header_ok(struct mctx *c, const struct rt_keymatch *k, const struct route_req *req)
{
    const struct route_hdr *first = NULL;
    size_t count = 0, total = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct route_hdr *h = &req->headers[i];
        if (!rt_ieq(h->name, h->name_len, k->name, k->name_len))
            continue;
        if (count++ == 0)
            first = h;
        total += h->value_len + 1;
    }
    if (count == 0)
        return false;
    if (count == 1)
        return value_ok(c, k, first->value, first->value_len);
    if (total > ROUTE_MAX_SUBJECT + 1)
        return false;
    char *joined = xmalloc(total), *p = joined;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct route_hdr *h = &req->headers[i];
        if (!rt_ieq(h->name, h->name_len, k->name, k->name_len))
            continue;
        if (p != joined)
            *p++ = ',';
        if (h->value_len)
            memcpy(p, h->value, h->value_len);
        p += h->value_len;
    }
    bool ok = value_ok(c, k, joined, (size_t)(p - joined));
    free(joined);
    return ok;
}

/* The first "name[=value]" of |q| (the query, without '?') named |k|; false if none. */
static bool
query_ok(struct mctx *c, const struct rt_keymatch *k, const char *q, size_t n)
{
    size_t i = 0;
    while (i <= n && q != NULL) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t name_len = eq ? (size_t)(eq - (q + i)) : end - i;
        if (name_len == k->name_len && memcmp(q + i, k->name, name_len) == 0) {
            const char *v = eq ? eq + 1 : q + end;
            return value_ok(c, k, v, (size_t)(q + end - v));
        }
        i = end + 1;
    }
    return false;
}

static bool
match_ok(struct mctx *c, const struct rt_match *m, const struct route_req *req)
{
    const char *path = req->path ? req->path : "";
    const char *qm = req->path_len ? memchr(path, '?', req->path_len) : NULL;
    size_t plen = qm ? (size_t)(qm - path) : req->path_len;

    if (m->method != NULL &&
        (req->method_len != m->method_len || memcmp(req->method, m->method, m->method_len) != 0))
        return false;
    if (!path_ok(c, m, path, plen))
        return false;
    for (size_t i = 0; i < m->n_headers; i++)
        if (!header_ok(c, &m->headers[i], req))
            return false;
    for (size_t i = 0; i < m->n_query; i++)
        if (qm == NULL || !query_ok(c, &m->query[i], qm + 1, req->path_len - plen - 1))
            return false;
    return true;
}

long
route_match(const struct route_table *t, const struct route_req *req)
{
    struct mctx c = {t, 0};

    for (size_t i = 0; i < t->n_rules; i++)
        if (match_ok(&c, &t->rules[i].m, req))
            return (long)i;
    return -1;
}
