/*
 * route_action.c - what the waypoint does with a matched request: Gateway
 * API's RequestRedirect (Location), URLRewrite, header modifiers, and the
 * weighted backend pick; Istio's retry defaults are resolved at compile time.
 *
 * Redirect (HTTPRequestRedirectFilter): scheme and hostname default to the
 * request's; the port is the configured one, else the scheme's well-known
 * port when a scheme is configured, else the listener's (for a waypoint: the
 * service port); ":80" with http and ":443" with https are left out. The
 * query string is kept (Envoy keeps it unless strip_query).
 *
 * ReplacePrefixMatch, with both the matched prefix and the replacement stored
 * without trailing '/': new path = replacement + what followed the prefix,
 * "/" if that is empty. This gives every row of Gateway API's table
 * (/foo/bar with /foo and "" -> /bar; /foo/ with /foo and /xyz -> /xyz/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "route/route_internal.h"

/* |path| (no query) with the matched prefix |from| replaced by |to|. */
static char *
replace_prefix(const char *path, size_t n, const char *from, const char *to, const char *query,
               size_t qn)
{
    size_t fl = strlen(from), tl = strlen(to);
    const char *rest = path + (fl <= n ? fl : n);
    size_t rl = n - (size_t)(rest - path);
    bool root = tl + rl == 0;
    char *out = xmalloc(tl + rl + qn + 2);

    memcpy(out, to, tl);
    memcpy(out + tl, rest, rl);
    size_t o = tl + rl;
    if (root)
        out[o++] = '/';
    memcpy(out + o, query, qn);
    out[o + qn] = '\0';
    return out;
}

/* The new path for a FULL or PREFIX modifier; |query| includes its '?'. */
static char *
modified_path(enum rt_mod_kind mod, const char *value, const struct rt_match *m, const char *path,
              size_t plen, const char *query, size_t qn)
{
    if (mod == RT_MOD_FULL)
        return xasprintf("%s%.*s", value, (int)qn, query);
    if (mod == RT_MOD_PREFIX)
        return replace_prefix(path, plen, m->path, value, query, qn);
    if (plen == 0)
        return xasprintf("/%.*s", (int)qn, query);
    return xasprintf("%.*s%.*s", (int)plen, path, (int)qn, query);
}

/*
 * The request's host without its port; IPv6 literals keep their brackets. A
 * host that could not stand in a URL (empty, or with a space, control
 * character or one of "/?#@\\") is replaced by the service's own name, so a
 * Location never carries what the codec should have refused.
 */
static void
req_host(const struct route_table *t, const struct route_req *req, const char **h, size_t *n)
{
    const char *a = req->authority ? req->authority : "";
    size_t len = req->authority_len;

    *h = a;
    *n = len;
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close)
            *n = (size_t)(close - a) + 1;
    } else {
        const char *colon = memchr(a, ':', len);
        if (colon)
            *n = (size_t)(colon - a);
    }
    bool ok = *n > 0;
    for (size_t i = 0; i < *n && ok; i++)
        ok = (unsigned char)a[i] > 0x20 && a[i] != 0x7f && strchr("/?#@\\", a[i]) == NULL;
    if (!ok) {
        *h = t->host;
        *n = strlen(t->host);
    }
}

static char *
location(const struct route_table *t, const struct rt_rule *r, const struct route_req *req,
         const char *path, size_t plen, const char *query, size_t qn)
{
    const struct rt_redirect *d = &r->redirect;
    const char *scheme = d->scheme ? d->scheme : (req->scheme ? req->scheme : "http");
    const char *host;
    size_t hn;
    uint32_t port;
    char portbuf[8] = "";

    if (d->hostname) {
        host = d->hostname;
        hn = strlen(host);
    } else {
        req_host(t, req, &host, &hn);
    }
    if (d->port)
        port = d->port;
    else if (d->scheme)
        port = strcmp(d->scheme, "https") == 0 ? 443 : 80;
    else
        port = t->port;
    if (!((strcmp(scheme, "http") == 0 && port == 80) ||
          (strcmp(scheme, "https") == 0 && port == 443)))
        snprintf(portbuf, sizeof(portbuf), ":%u", port);
    char *p = modified_path(d->mod, d->path, &r->m, path, plen, query, qn);
    char *loc = xasprintf("%s://%.*s%s%s", scheme, (int)hn, host, portbuf, p);
    free(p);
    return loc;
}

/* Weighted pick: |rnd| scaled onto [0, total), backends of weight 0 never chosen. */
static const struct rt_backend *
pick(const struct rt_rule *r, uint32_t rnd)
{
    uint64_t x = ((uint64_t)rnd * r->total_weight) >> 32, cum = 0;

    for (size_t i = 0; i < r->n_backends; i++) {
        cum += r->backends[i].weight;
        if (x < cum)
            return &r->backends[i];
    }
    return NULL; /* total_weight 0: the caller answers 500 */
}

void
route_decide(const struct route_table *t, const struct route_req *req, uint32_t rnd,
             struct route_action *a)
{
    memset(a, 0, sizeof(*a));
    rt_retry_default(&a->retry);
    long i = route_match(t, req);
    if (i < 0) {
        a->kind = ROUTE_DIRECT;
        a->status = 404; /* Envoy's NR */
        return;
    }
    const struct rt_rule *r = &t->rules[i];
    const char *path = req->path ? req->path : "";
    const char *qm = req->path_len ? memchr(path, '?', req->path_len) : NULL;
    size_t plen = qm ? (size_t)(qm - path) : req->path_len;
    size_t qn = req->path_len - plen;

    a->rule = r->name;
    a->timeout_ms = r->timeout_ms;
    a->backend_timeout_ms = r->backend_timeout_ms;
    a->retry = r->retry;
    a->request_headers = r->has_req_hdrs ? &r->req_hdrs : NULL;
    a->response_headers = r->has_resp_hdrs ? &r->resp_hdrs : NULL;
    if (r->has_redirect) {
        a->kind = ROUTE_REDIRECT;
        a->status = r->redirect.status;
        a->location = location(t, r, req, path, plen, path + plen, qn);
        return;
    }
    if (r->direct_status) {
        a->kind = ROUTE_DIRECT;
        a->status = r->direct_status;
        return;
    }
    const struct rt_backend *b = pick(r, rnd);
    if (b == NULL) {
        a->kind = ROUTE_DIRECT;
        a->status = 500; /* no backends, or all weights 0 (Gateway API) */
        return;
    }
    a->kind = ROUTE_FORWARD;
    a->backend_ns = b->ns;
    a->backend_host = b->host;
    a->backend_port = b->port;
    if (r->has_rewrite) {
        if (r->rewrite.mod != RT_MOD_NONE)
            a->path = modified_path(r->rewrite.mod, r->rewrite.path, &r->m, path, plen,
                                    path + plen, qn);
        if (r->rewrite.hostname)
            a->authority = xstrdup(r->rewrite.hostname);
    }
}

void
route_action_clear(struct route_action *a)
{
    free(a->location);
    free(a->path);
    free(a->authority);
    memset(a, 0, sizeof(*a));
}

static void
hdr_remove(struct route_hdr_list *l, const char *name, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++)
        if (!rt_ieq(l->v[i].name, l->v[i].name_len, name, n))
            l->v[o++] = l->v[i];
    l->n = o;
}

static void
hdr_append(struct route_hdr_list *l, const struct rt_hdr *h)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = (struct route_hdr){h->name, h->name_len, h->value, h->value_len};
}

void
route_hdrs_apply(const struct route_hdr_ops *ops, struct route_hdr_list *l)
{
    if (ops == NULL)
        return;
    for (size_t i = 0; i < ops->n_remove; i++)
        hdr_remove(l, ops->remove[i].name, ops->remove[i].name_len);
    for (size_t i = 0; i < ops->n_set; i++) {
        hdr_remove(l, ops->set[i].name, ops->set[i].name_len);
        hdr_append(l, &ops->set[i]);
    }
    for (size_t i = 0; i < ops->n_add; i++)
        hdr_append(l, &ops->add[i]);
}

void
route_hdr_list_free(struct route_hdr_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}
