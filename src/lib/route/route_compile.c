/*
 * route_compile.c - a decoded Route -> struct route_table, refusing anything
 * Gateway API's validation (CEL rules and patterns in httproute_types.go)
 * would refuse, and anything the waypoint could not carry out safely (a CR or
 * LF in a header value, a Location that is not a URL). The error names the
 * route, the rule (index and name) and the field.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "route/route_internal.h"

#define ROUTE_MAX_WEIGHT   1000000 /* Gateway API BackendRef.Weight maximum */
#define ROUTE_MAX_ATTEMPTS 32
#define ROUTE_MAX_METHOD   32

struct cctx {
    char *err;
    size_t errlen;
    size_t regexes; /* compiled so far in this route */
    char where[400]; /* "route ns/host:port: rules[3] (name)" */
};

static int cfail(struct cctx *c, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
cfail(struct cctx *c, int rc, const char *field, const char *fmt, ...)
{
    char msg[ROUTE_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s: %s", c->where, field, msg);
    return rc;
}

bool
rt_ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

static bool
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* No control characters (HTAB aside): nothing that could split a header line. */
static bool
text_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

/* RFC 1123 names, lower case, dot-separated labels of at most 63 (Gateway API PreciseHostname). */
static bool
hostname_ok(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > ROUTE_MAX_HOST)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[n - 1] != '-';
}

static const char *
ends_with(const char *s, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(s + n - k, suf, k) == 0 ? s + n - k : NULL;
}

/* Gateway API's rules for a path value (HTTPPathMatch, HTTPPathModifier): why not, or NULL. */
static const char *
path_why(const char *s)
{
    size_t n = strlen(s);
    if (n > ROUTE_MAX_PATH)
        return "longer than 1024 bytes";
    if (s[0] != '/')
        return "must be an absolute path (start with '/')";
    if (strstr(s, "//") || strstr(s, "/./") || strstr(s, "/../"))
        return "must not contain '//', '/./' or '/../'";
    if (strstr(s, "%2f") || strstr(s, "%2F") || strchr(s, '#'))
        return "must not contain '%2f', '%2F' or '#'";
    if (ends_with(s, n, "/..") || ends_with(s, n, "/."))
        return "must not end with '/..' or '/.'";
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?')
            return "must not contain spaces, control characters or '?'";
    return NULL;
}

/* Duration -> ms, rounded up so that a positive duration never reads as 0 ("none"). */
static int
duration_ms(struct cctx *c, const Google__Protobuf__Duration *d, const char *field, uint64_t *ms)
{
    *ms = 0;
    if (d == NULL)
        return 0;
    if (d->seconds < 0 || d->nanos < 0 || d->nanos > 999999999)
        return cfail(c, -MESH_ECONFIG, field, "must be a non-negative duration");
    if ((uint64_t)d->seconds > ROUTE_MAX_TIMEOUT_MS / 1000)
        return cfail(c, -MESH_ECONFIG, field, "more than 24h");
    *ms = (uint64_t)d->seconds * 1000 + ((uint64_t)d->nanos + 999999) / 1000000;
    return 0;
}

static char *
cut_slash(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    return xstrndup(s, n);
}

static int
service_ok(struct cctx *c, const Istio__Workload__NamespacedHostname *s, const char *field)
{
    if (s == NULL)
        return cfail(c, -MESH_ECONFIG, field, "missing");
    if (!hostname_ok(s->namespace_) || strlen(s->namespace_) > 63 || strchr(s->namespace_, '.'))
        return cfail(c, -MESH_ECONFIG, field, "namespace \"%.64s\" is not a DNS label",
                     s->namespace_);
    if (!hostname_ok(s->hostname))
        return cfail(c, -MESH_ECONFIG, field, "hostname \"%.64s\" is not a DNS name", s->hostname);
    return 0;
}

/* route_regex_compile() within the route's cap on regexes. */
static int
regex(struct cctx *c, const char *field, const char *p, size_t n, struct route_regex **out)
{
    char why[ROUTE_ERR_MAX];
    int rc;

    if (++c->regexes > ROUTE_MAX_REGEXES)
        return cfail(c, -MESH_ELIMIT, field, "more than %d regular expressions in one route",
                     ROUTE_MAX_REGEXES);
    if ((rc = route_regex_compile(p, n, out, why, sizeof(why))) < 0)
        return cfail(c, rc, field, "%s", why);
    return 0;
}

static int
keymatches(struct cctx *c, Amesh__Waypoint__V1__KeyMatch **in, size_t n, bool header,
           struct rt_keymatch **out, size_t *nout)
{
    const char *fam = header ? "match.headers" : "match.query";
    char field[64];
    int rc;

    *out = xcalloc(n ? n : 1, sizeof(**out));
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        const Amesh__Waypoint__V1__KeyMatch *k = in[i];
        snprintf(field, sizeof(field), "%s[%zu]", fam, i);
        if (!token_ok(k->name, ROUTE_MAX_NAME))
            return cfail(c, -MESH_ECONFIG, field, "name \"%.64s\" is not a valid %s name",
                         k->name, header ? "header" : "query parameter");
        if (k->value_case == AMESH__WAYPOINT__V1__KEY_MATCH__VALUE__NOT_SET)
            return cfail(c, -MESH_ECONFIG, field, "needs an exact value or a regex");
        const char *v = k->value_case == AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_EXACT ? k->exact
                                                                                   : k->regex;
        size_t vlen = strlen(v), max = header ? ROUTE_MAX_VALUE : ROUTE_MAX_PATH;
        if (vlen > max)
            return cfail(c, -MESH_ELIMIT, field, "value of %zu bytes, more than %zu", vlen, max);
        if (!text_ok(v))
            return cfail(c, -MESH_ECONFIG, field, "value has control characters");
        /* Gateway API: of entries with an equivalent name only the first is considered. */
        bool dup = false;
        for (size_t j = 0; j < *nout && !dup; j++)
            dup = header ? rt_ieq((*out)[j].name, (*out)[j].name_len, k->name, strlen(k->name))
                         : strcmp((*out)[j].name, k->name) == 0;
        if (dup)
            continue;
        struct rt_keymatch *m = &(*out)[(*nout)++];
        m->name = xstrdup(k->name);
        m->name_len = strlen(m->name);
        if (header)
            for (char *p = m->name; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p + 32);
        m->value = xstrdup(v);
        m->value_len = vlen;
        if (k->value_case == AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_REGEX &&
            (rc = regex(c, field, v, vlen, &m->re)) < 0)
            return rc;
    }
    return 0;
}

static int
compile_match(struct cctx *c, const Amesh__Waypoint__V1__Match *pb, struct rt_match *m)
{
    const char *why;
    int rc;

    m->kind = RT_PATH_PREFIX;
    m->path = xstrdup("");
    m->path_given = xstrdup("/");
    if (pb == NULL)
        return 0;
    switch (pb->path_case) {
    case AMESH__WAYPOINT__V1__MATCH__PATH__NOT_SET:
        break;
    case AMESH__WAYPOINT__V1__MATCH__PATH_EXACT:
    case AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX: {
        bool exact = pb->path_case == AMESH__WAYPOINT__V1__MATCH__PATH_EXACT;
        const char *v = exact ? pb->exact : pb->prefix;
        if ((why = path_why(v)) != NULL)
            return cfail(c, strlen(v) > ROUTE_MAX_PATH ? -MESH_ELIMIT : -MESH_ECONFIG,
                         exact ? "match.exact" : "match.prefix", "\"%.64s\" %s", v, why);
        free(m->path);
        free(m->path_given);
        m->kind = exact ? RT_PATH_EXACT : RT_PATH_PREFIX;
        m->path = exact ? xstrdup(v) : cut_slash(v);
        m->path_given = xstrdup(v);
        break;
    }
    case AMESH__WAYPOINT__V1__MATCH__PATH_REGEX:
        free(m->path);
        free(m->path_given);
        m->kind = RT_PATH_REGEX;
        m->path = xstrdup(pb->regex);
        m->path_given = xstrdup(pb->regex);
        if ((rc = regex(c, "match.regex", pb->regex, strlen(pb->regex), &m->path_re)) < 0)
            return rc;
        break;
    default:
        return cfail(c, -MESH_EPROTO, "match", "unknown path kind");
    }
    m->path_len = strlen(m->path);
    if ((rc = keymatches(c, pb->headers, pb->n_headers, true, &m->headers, &m->n_headers)) < 0)
        return rc;
    if ((rc = keymatches(c, pb->query, pb->n_query, false, &m->query, &m->n_query)) < 0)
        return rc;
    if (pb->method[0] != '\0') {
        if (!token_ok(pb->method, ROUTE_MAX_METHOD))
            return cfail(c, -MESH_ECONFIG, "match.method", "\"%.32s\" is not an HTTP method",
                         pb->method);
        m->method = xstrdup(pb->method);
        m->method_len = strlen(m->method);
    }
    return 0;
}

static int
hdr_list(struct cctx *c, const char *field, Amesh__Waypoint__V1__Header **in, char **names,
         size_t n, struct rt_hdr **out, size_t *nout)
{
    char f[64];

    *out = xcalloc(n ? n : 1, sizeof(**out));
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = in ? in[i]->name : names[i];
        const char *value = in ? in[i]->value : "";
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!token_ok(name, ROUTE_MAX_NAME))
            return cfail(c, -MESH_ECONFIG, f, "\"%.64s\" is not a valid header name", name);
        if (rt_ieq(name, strlen(name), "host", 4))
            return cfail(c, -MESH_ECONFIG, f, "the host header is changed with a rewrite, "
                                              "not a header modifier");
        if (!text_ok(value))
            return cfail(c, -MESH_ECONFIG, f, "value has control characters (CR, LF, NUL...)");
        for (size_t j = 0; j < i; j++)
            if (rt_ieq((*out)[j].name, (*out)[j].name_len, name, strlen(name)))
                return cfail(c, -MESH_ECONFIG, f, "header \"%.64s\" listed twice", name);
        struct rt_hdr *h = &(*out)[i];
        h->name = xstrdup(name);
        h->name_len = strlen(name);
        for (char *p = h->name; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        h->value = xstrdup(value);
        h->value_len = strlen(value);
        *nout = i + 1;
    }
    return 0;
}

static int
hdr_ops(struct cctx *c, const char *field, const Amesh__Waypoint__V1__HeaderModifier *pb,
        struct route_hdr_ops *ops, bool *has)
{
    char f[64];
    int rc;

    *has = pb != NULL;
    if (pb == NULL)
        return 0;
    snprintf(f, sizeof(f), "%s.set", field);
    if ((rc = hdr_list(c, f, pb->set, NULL, pb->n_set, &ops->set, &ops->n_set)) < 0)
        return rc;
    snprintf(f, sizeof(f), "%s.add", field);
    if ((rc = hdr_list(c, f, pb->add, NULL, pb->n_add, &ops->add, &ops->n_add)) < 0)
        return rc;
    snprintf(f, sizeof(f), "%s.remove", field);
    return hdr_list(c, f, NULL, pb->remove, pb->n_remove, &ops->remove, &ops->n_remove);
}

void
rt_retry_default(struct route_retry *r)
{
    memset(r, 0, sizeof(*r));
    r->attempts = 2;
    r->on = ROUTE_RETRY_CONNECT_FAILURE | ROUTE_RETRY_REFUSED_STREAM | ROUTE_RETRY_UNAVAILABLE |
            ROUTE_RETRY_CANCELLED | ROUTE_RETRY_STATUS_CODES;
    r->backoff_base_ms = 25;
    r->backoff_max_ms = 250;
    r->other_host = true;
}

static int
compile_retry(struct cctx *c, const Amesh__Waypoint__V1__Retry *pb, struct rt_rule *r)
{
    uint64_t ms;
    int rc;

    rt_retry_default(&r->retry);
    r->retry_given = pb != NULL;
    if (pb == NULL)
        return 0;
    if (pb->attempts > ROUTE_MAX_ATTEMPTS)
        return cfail(c, -MESH_ELIMIT, "retry.attempts", "%u, more than %d", pb->attempts,
                     ROUTE_MAX_ATTEMPTS);
    r->retry.attempts = pb->attempts;
    for (size_t i = 0; i < pb->n_codes; i++) {
        if (pb->codes[i] < 400 || pb->codes[i] > 599)
            return cfail(c, -MESH_ECONFIG, "retry.codes", "%u is not a status from 400 to 599",
                         pb->codes[i]);
        r->codes[i] = (uint16_t)pb->codes[i];
    }
    r->retry.codes = r->codes;
    r->retry.n_codes = pb->n_codes;
    if ((rc = duration_ms(c, pb->backoff, "retry.backoff", &ms)) < 0)
        return rc;
    if (ms > 3600 * 1000)
        return cfail(c, -MESH_ECONFIG, "retry.backoff", "more than 1h");
    if (ms > 0) {
        r->retry.backoff_base_ms = (uint32_t)ms;
        r->retry.backoff_max_ms = (uint32_t)ms * 10;
    }
    return 0;
}

static int
compile_redirect(struct cctx *c, const Amesh__Waypoint__V1__Redirect *pb, struct rt_rule *r)
{
    struct rt_redirect *d = &r->redirect;
    const char *why;

    if (pb->scheme[0] != '\0' && strcmp(pb->scheme, "http") != 0 &&
        strcmp(pb->scheme, "https") != 0)
        return cfail(c, -MESH_ECONFIG, "redirect.scheme", "\"%.16s\" is not http or https",
                     pb->scheme);
    if (pb->hostname[0] != '\0' && !hostname_ok(pb->hostname))
        return cfail(c, -MESH_ECONFIG, "redirect.hostname", "\"%.64s\" is not a DNS name",
                     pb->hostname);
    if (pb->port > 65535)
        return cfail(c, -MESH_ECONFIG, "redirect.port", "%u is not a port", pb->port);
    if (pb->status != 0 && pb->status != 301 && pb->status != 302 && pb->status != 303 &&
        pb->status != 307 && pb->status != 308)
        return cfail(c, -MESH_ECONFIG, "redirect.status", "%u is not 301, 302, 303, 307 or 308",
                     pb->status);
    d->scheme = pb->scheme[0] ? xstrdup(pb->scheme) : NULL;
    d->hostname = pb->hostname[0] ? xstrdup(pb->hostname) : NULL;
    d->port = pb->port;
    d->status = pb->status ? pb->status : 302;
    if (pb->path_case == AMESH__WAYPOINT__V1__REDIRECT__PATH_FULL) {
        if ((why = path_why(pb->full)) != NULL)
            return cfail(c, -MESH_ECONFIG, "redirect.full", "\"%.64s\" %s", pb->full, why);
        d->mod = RT_MOD_FULL;
        d->path = xstrdup(pb->full);
    } else if (pb->path_case == AMESH__WAYPOINT__V1__REDIRECT__PATH_PREFIX) {
        if (pb->prefix[0] != '\0' && (why = path_why(pb->prefix)) != NULL)
            return cfail(c, -MESH_ECONFIG, "redirect.prefix", "\"%.64s\" %s", pb->prefix, why);
        if (r->m.kind != RT_PATH_PREFIX)
            return cfail(c, -MESH_ECONFIG, "redirect.prefix",
                         "ReplacePrefixMatch needs a PathPrefix match (Gateway API)");
        d->mod = RT_MOD_PREFIX;
        d->path = cut_slash(pb->prefix);
    }
    return 0;
}

static int
compile_rewrite(struct cctx *c, const Amesh__Waypoint__V1__Rewrite *pb, struct rt_rule *r)
{
    struct rt_rewrite *w = &r->rewrite;
    const char *why;

    if (pb->hostname[0] != '\0' && !hostname_ok(pb->hostname))
        return cfail(c, -MESH_ECONFIG, "rewrite.hostname", "\"%.64s\" is not a DNS name",
                     pb->hostname);
    w->hostname = pb->hostname[0] ? xstrdup(pb->hostname) : NULL;
    if (pb->path_case == AMESH__WAYPOINT__V1__REWRITE__PATH_FULL) {
        if ((why = path_why(pb->full)) != NULL)
            return cfail(c, -MESH_ECONFIG, "rewrite.full", "\"%.64s\" %s", pb->full, why);
        w->mod = RT_MOD_FULL;
        w->path = xstrdup(pb->full);
    } else if (pb->path_case == AMESH__WAYPOINT__V1__REWRITE__PATH_PREFIX) {
        if (pb->prefix[0] != '\0' && (why = path_why(pb->prefix)) != NULL)
            return cfail(c, -MESH_ECONFIG, "rewrite.prefix", "\"%.64s\" %s", pb->prefix, why);
        if (r->m.kind != RT_PATH_PREFIX)
            return cfail(c, -MESH_ECONFIG, "rewrite.prefix",
                         "ReplacePrefixMatch needs a PathPrefix match (Gateway API)");
        w->mod = RT_MOD_PREFIX;
        w->path = cut_slash(pb->prefix);
    }
    return 0;
}

static int
compile_rule(struct cctx *c, const Amesh__Waypoint__V1__Rule *pb, struct rt_rule *r)
{
    int rc;

    if (strlen(pb->name) > ROUTE_MAX_NAME || !text_ok(pb->name))
        return cfail(c, -MESH_ECONFIG, "name", "longer than %d bytes or with control characters",
                     ROUTE_MAX_NAME);
    r->name = xstrdup(pb->name);
    if ((rc = compile_match(c, pb->match, &r->m)) < 0)
        return rc;
    r->backends = xcalloc(pb->n_backends ? pb->n_backends : 1, sizeof(*r->backends));
    for (size_t i = 0; i < pb->n_backends; i++) {
        const Amesh__Waypoint__V1__Backend *b = pb->backends[i];
        char f[32];
        snprintf(f, sizeof(f), "backends[%zu]", i);
        if ((rc = service_ok(c, b->service, f)) < 0)
            return rc;
        if (b->port == 0 || b->port > 65535)
            return cfail(c, -MESH_ECONFIG, f, "port %u is not 1-65535", b->port);
        if (b->weight > ROUTE_MAX_WEIGHT)
            return cfail(c, -MESH_ECONFIG, f, "weight %u, more than %d", b->weight,
                         ROUTE_MAX_WEIGHT);
        struct rt_backend *o = &r->backends[r->n_backends++];
        o->ns = xstrdup(b->service->namespace_);
        o->host = xstrdup(b->service->hostname);
        o->port = b->port;
        o->weight = b->weight;
        r->total_weight += b->weight;
    }
    if ((rc = hdr_ops(c, "request_headers", pb->request_headers, &r->req_hdrs,
                      &r->has_req_hdrs)) < 0 ||
        (rc = hdr_ops(c, "response_headers", pb->response_headers, &r->resp_hdrs,
                      &r->has_resp_hdrs)) < 0)
        return rc;
    if (pb->redirect && pb->rewrite)
        return cfail(c, -MESH_ECONFIG, "redirect",
                     "a redirect and a rewrite cannot be used together (Gateway API)");
    if (pb->redirect && pb->n_backends > 0)
        return cfail(c, -MESH_ECONFIG, "redirect",
                     "a redirect cannot be used together with backends (Gateway API)");
    if (pb->direct_status != 0 && (pb->redirect || pb->n_backends > 0))
        return cfail(c, -MESH_ECONFIG, "direct_status",
                     "cannot be used together with a redirect or backends");
    if (pb->direct_status != 0 && (pb->direct_status < 200 || pb->direct_status > 599))
        return cfail(c, -MESH_ECONFIG, "direct_status", "%u is not 200-599", pb->direct_status);
    r->direct_status = pb->direct_status;
    r->has_redirect = pb->redirect != NULL;
    r->has_rewrite = pb->rewrite != NULL;
    if (pb->redirect && (rc = compile_redirect(c, pb->redirect, r)) < 0)
        return rc;
    if (pb->rewrite && (rc = compile_rewrite(c, pb->rewrite, r)) < 0)
        return rc;
    if ((rc = duration_ms(c, pb->timeout, "timeout", &r->timeout_ms)) < 0 ||
        (rc = duration_ms(c, pb->backend_timeout, "backend_timeout", &r->backend_timeout_ms)) < 0)
        return rc;
    if (r->timeout_ms && r->backend_timeout_ms > r->timeout_ms)
        return cfail(c, -MESH_ECONFIG, "backend_timeout",
                     "longer than the request timeout (Gateway API)");
    return compile_retry(c, pb->retry, r);
}

/* A rule sending everything to the table's own service. */
static void
default_rule(struct route_table *t)
{
    struct rt_rule *r = &t->rules[0];
    r->name = xstrdup("");
    r->m.kind = RT_PATH_PREFIX;
    r->m.path = xstrdup("");
    r->m.path_given = xstrdup("/");
    r->backends = xcalloc(1, sizeof(*r->backends));
    r->backends[0] = (struct rt_backend){xstrdup(t->ns), xstrdup(t->host), t->port, 1};
    r->n_backends = 1;
    r->total_weight = 1;
    rt_retry_default(&r->retry);
    t->n_rules = 1;
    t->is_default = true;
}

static struct route_table *
table_new(const char *ns, const char *host, uint32_t port)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    atomic_init(&t->regex_errors, 0);
    t->ns = xstrdup(ns);
    t->host = xstrdup(host);
    t->port = port;
    t->key = xasprintf("%s/%s:%u", ns, host, port);
    return t;
}

struct route_table *
route_table_default(const char *ns, const char *host, uint32_t port)
{
    struct route_table *t = table_new(ns, host, port);
    t->rules = xcalloc(1, sizeof(*t->rules));
    default_rule(t);
    return t;
}

int
route_compile(const Amesh__Waypoint__V1__Route *pb, struct route_table **out, char *err,
              size_t errlen)
{
    struct cctx c = {.err = err, .errlen = errlen};
    int rc;

    *out = NULL;
    snprintf(c.where, sizeof(c.where), "route");
    if ((rc = service_ok(&c, pb->service, "service")) < 0)
        return rc;
    if (pb->port == 0 || pb->port > 65535)
        return cfail(&c, -MESH_ECONFIG, "port", "%u is not 1-65535", pb->port);
    if ((unsigned)pb->protocol > AMESH__WAYPOINT__V1__PROTOCOL__TCP)
        return cfail(&c, -MESH_ECONFIG, "protocol", "unknown value %d", (int)pb->protocol);
    struct route_table *t = table_new(pb->service->namespace_, pb->service->hostname, pb->port);
    t->protocol = (enum route_protocol)pb->protocol;
    snprintf(c.where, sizeof(c.where), "route %.220s", t->key);
    t->sources = xcalloc(pb->n_sources ? pb->n_sources : 1, sizeof(*t->sources));
    for (size_t i = 0; i < pb->n_sources; i++) {
        if (strlen(pb->sources[i]) > ROUTE_MAX_NAME || !text_ok(pb->sources[i])) {
            rt_table_free(t);
            return cfail(&c, -MESH_ECONFIG, "sources", "entry %zu longer than %d bytes or with "
                                                       "control characters", i, ROUTE_MAX_NAME);
        }
        t->sources[t->n_sources++] = xstrdup(pb->sources[i]);
    }
    t->rules = xcalloc(pb->n_rules ? pb->n_rules : 1, sizeof(*t->rules));
    if (pb->n_rules == 0) {
        default_rule(t);
        *out = t;
        return 0;
    }
    char prefix[240];
    snprintf(prefix, sizeof(prefix), "route %.220s", t->key);
    for (size_t i = 0; i < pb->n_rules; i++) {
        snprintf(c.where, sizeof(c.where), "%s: rules[%zu]%s%.64s%s", prefix, i,
                 pb->rules[i]->name[0] ? " (" : "", pb->rules[i]->name,
                 pb->rules[i]->name[0] ? ")" : "");
        t->n_rules = i + 1;
        if ((rc = compile_rule(&c, pb->rules[i], &t->rules[i])) < 0) {
            rt_table_free(t);
            return rc;
        }
    }
    *out = t;
    return 0;
}

static void
free_keys(struct rt_keymatch *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(k[i].name);
        free(k[i].value);
        route_regex_free(k[i].re);
    }
    free(k);
}

static void
free_hdrs(struct rt_hdr *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

static void
free_ops(struct route_hdr_ops *o)
{
    free_hdrs(o->set, o->n_set);
    free_hdrs(o->add, o->n_add);
    free_hdrs(o->remove, o->n_remove);
}

void
rt_table_free(struct route_table *t)
{
    for (size_t i = 0; i < t->n_rules; i++) {
        struct rt_rule *r = &t->rules[i];
        free(r->name);
        free(r->m.path);
        free(r->m.path_given);
        route_regex_free(r->m.path_re);
        /* lists are allocated with calloc(n ? n : 1): free them even when empty */
        free_keys(r->m.headers, r->m.n_headers);
        free_keys(r->m.query, r->m.n_query);
        free(r->m.method);
        for (size_t j = 0; j < r->n_backends; j++) {
            free(r->backends[j].ns);
            free(r->backends[j].host);
        }
        free(r->backends);
        free_ops(&r->req_hdrs);
        free_ops(&r->resp_hdrs);
        free(r->redirect.scheme);
        free(r->redirect.hostname);
        free(r->redirect.path);
        free(r->rewrite.hostname);
        free(r->rewrite.path);
    }
    free(t->rules);
    for (size_t i = 0; i < t->n_sources; i++)
        free(t->sources[i]);
    free(t->sources);
    free(t->key);
    free(t->ns);
    free(t->host);
    free(t);
}
