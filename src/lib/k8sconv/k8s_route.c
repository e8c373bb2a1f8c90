/*
 * k8s_route.c - the route table of one service port for waypoints
 * (amesh.waypoint.v1.Route, proto/waypoint.proto) from the HTTPRoutes and
 * GRPCRoutes in effect (GAMMA: parentRefs to a Service; GRPCRoute matches in
 * k8s_route_grpc.c), converted as istiod converts them
 * (pilot/pkg/config/kube/gateway conversion: matches, filters, backends,
 * timeouts, retry) and ordered by Gateway API precedence. Sans-I/O: store
 * in, packed bytes and diagnostics out.
 *
 *   attach     an HTTPRoute in the Service's namespace whose parentRefs has
 *              {group: "", kind: Service, name, port absent or equal}
 *              (routes of other namespaces, consumer routes, are not served:
 *              a Route has no per-client table)
 *   rules      one Rule per (rule, match); no match: PathPrefix "/"; name
 *              "<ns>.<route>.<index>" unless the rule is named
 *   backends   Services of the route's namespace with a port (weight default
 *              1); none, or all weights 0: direct_status 500
 *   order      by the route's age (creationTimestamp), then "<ns>/<name>",
 *              then rule and match order; then, stably: Exact path before
 *              PathPrefix before RegularExpression (whatever their lengths:
 *              istiod's getURIRank) before no path, the longer path first,
 *              a method match first, more header matches, more query matches;
 *              a GRPCRoute rule without matches last (istiod's sortHTTPRoutes)
 *   refused    a route with a field the waypoint cannot serve (a filter
 *              other than the header modifiers, redirect and rewrite; a
 *              backend that is not a Service of its namespace or has no
 *              port; a bad duration) is left out whole, with an error
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "base/base.h"
#include "google/protobuf/duration.pb-c.h"
#include "k8sconv/k8s_route_internal.h"
#include "waypoint.pb-c.h"


static const json_t *
member(const json_t *parent, const char *key)
{
    const json_t *v = json_is_object(parent) ? json_object_get(parent, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

static const char *
jstr(const json_t *parent, const char *key)
{
    return json_string_value(member(parent, key));
}

void
route_refuse(struct conv *c, const json_t *at, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->d != NULL)
        k8s_diag_add(c->d, c->route->file, at ? k8s_obj_line_of(c->route, at) : c->route->line,
                     K8S_ERROR, CODE_ROUTE, "%s %s/%s: %s; the route is not served",
                     k8s_kind_name(c->route->kind), c->route->meta.ns, c->route->meta.name, msg);
    c->errors++;
}

/* Gateway API Duration: 1 to 4 of <1-5 digits><h|m|s|ms>, e.g. "1m30s", "500ms". */
static int
parse_duration(const char *s, int64_t *ms)
{
    int64_t total = 0;
    int parts = 0;

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*s != '\0') {
        int64_t n = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 6) {
            n = n * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 5 || ++parts > 4)
            return -EINVAL;
        if (strncmp(s, "ms", 2) == 0) {
            total += n;
            s += 2;
        } else if (*s == 'h' || *s == 'm' || *s == 's') {
            total += n * (*s == 'h' ? 3600000 : *s == 'm' ? 60000 : 1000);
            s++;
        } else {
            return -EINVAL;
        }
    }
    *ms = total;
    return 0;
}

static Google__Protobuf__Duration *
duration(struct conv *c, const json_t *parent, const char *key)
{
    const json_t *v = member(parent, key);
    int64_t ms;

    if (v == NULL)
        return NULL;
    if (parse_duration(json_string_value(v), &ms) < 0) {
        route_refuse(c, v, "%s: not a Gateway API duration (such as 10s, 1m30s, 500ms)", key);
        return NULL;
    }
    Google__Protobuf__Duration *d = k8s_arena_alloc(c->a, sizeof(*d));
    google__protobuf__duration__init(d);
    d->seconds = ms / 1000;
    d->nanos = (int32_t)(ms % 1000) * 1000000;
    return d;
}

Amesh__Waypoint__V1__KeyMatch **
route_key_matches(struct conv *c, const json_t *arr, size_t *n, const char *what)
{
    Amesh__Waypoint__V1__KeyMatch **v =
        k8s_arena_alloc(c->a, (json_array_size(arr) + 1) * sizeof(*v));

    *n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *type = jstr(e, "type"), *name = jstr(e, "name"), *value = jstr(e, "value");
        Amesh__Waypoint__V1__KeyMatch *k = k8s_arena_alloc(c->a, sizeof(*k));
        amesh__waypoint__v1__key_match__init(k);
        if (name == NULL || value == NULL) {
            route_refuse(c, e, "%s[%zu]: name and value are required", what, i);
            continue;
        }
        k->name = (char *)(uintptr_t)name;
        if (type == NULL || strcmp(type, "Exact") == 0) {
            k->value_case = AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_EXACT;
            k->exact = (char *)(uintptr_t)value;
        } else if (strcmp(type, "RegularExpression") == 0) {
            k->value_case = AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_REGEX;
            k->regex = (char *)(uintptr_t)value;
        } else {
            route_refuse(c, e, "%s[%zu].type: unsupported match type %s", what, i, type);
            continue;
        }
        v[(*n)++] = k;
    }
    return v;
}

/* A match of the rule (NULL: none given, i.e. PathPrefix "/") into |e|. */
static void
convert_match(struct conv *c, const json_t *m, struct entry *e)
{
    Amesh__Waypoint__V1__Match *out = k8s_arena_alloc(c->a, sizeof(*out));
    const json_t *path = member(m, "path");
    const char *type = path ? jstr(path, "type") : NULL;
    const char *value = path ? jstr(path, "value") : NULL;

    amesh__waypoint__v1__match__init(out);
    if (value == NULL)
        value = "/";
    if (type == NULL || strcmp(type, "PathPrefix") == 0) {
        out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX;
        out->prefix = (char *)(uintptr_t)value;
        e->rank = 2;
    } else if (strcmp(type, "Exact") == 0) {
        out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_EXACT;
        out->exact = (char *)(uintptr_t)value;
        e->rank = 3;
    } else if (strcmp(type, "RegularExpression") == 0) {
        out->path_case = AMESH__WAYPOINT__V1__MATCH__PATH_REGEX;
        out->regex = (char *)(uintptr_t)value;
        e->rank = 1;
    } else {
        route_refuse(c, path, "path.type: unsupported match type %s", type);
    }
    e->len = strlen(value);
    out->headers = route_key_matches(c, member(m, "headers"), &out->n_headers, "headers");
    out->query = route_key_matches(c, member(m, "queryParams"), &out->n_query, "queryParams");
    const char *method = jstr(m, "method");
    if (method != NULL)
        out->method = (char *)(uintptr_t)method;
    e->method = method != NULL;
    e->headers = out->n_headers;
    e->query = out->n_query;
    e->rule->match = out;
}

static Amesh__Waypoint__V1__Header **
headers(struct conv *c, const json_t *arr, size_t *n)
{
    Amesh__Waypoint__V1__Header **v =
        k8s_arena_alloc(c->a, (json_array_size(arr) + 1) * sizeof(*v));

    *n = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        Amesh__Waypoint__V1__Header *h = k8s_arena_alloc(c->a, sizeof(*h));
        amesh__waypoint__v1__header__init(h);
        if (jstr(e, "name") == NULL || jstr(e, "value") == NULL) {
            route_refuse(c, e, "header modifier: name and value are required");
            continue;
        }
        h->name = (char *)(uintptr_t)jstr(e, "name");
        h->value = (char *)(uintptr_t)jstr(e, "value");
        v[(*n)++] = h;
    }
    return v;
}

static Amesh__Waypoint__V1__HeaderModifier *
header_modifier(struct conv *c, const json_t *f)
{
    Amesh__Waypoint__V1__HeaderModifier *h = k8s_arena_alloc(c->a, sizeof(*h));
    const json_t *rm = member(f, "remove");

    amesh__waypoint__v1__header_modifier__init(h);
    h->set = headers(c, member(f, "set"), &h->n_set);
    h->add = headers(c, member(f, "add"), &h->n_add);
    h->remove = k8s_arena_alloc(c->a, (json_array_size(rm) + 1) * sizeof(*h->remove));
    for (size_t i = 0; i < json_array_size(rm); i++)
        if (json_is_string(json_array_get(rm, i)))
            h->remove[h->n_remove++] = (char *)(uintptr_t)json_string_value(json_array_get(rm, i));
    return h;
}

/* HTTPPathModifier: ReplaceFullPath or ReplacePrefixMatch into |full| or |prefix|. */
static int
path_modifier(struct conv *c, const json_t *p, const char **full, const char **prefix)
{
    const char *type = jstr(p, "type");

    if (type != NULL && strcmp(type, "ReplaceFullPath") == 0 && jstr(p, "replaceFullPath")) {
        *full = jstr(p, "replaceFullPath");
        return 0;
    }
    if (type != NULL && strcmp(type, "ReplacePrefixMatch") == 0 && jstr(p, "replacePrefixMatch")) {
        *prefix = jstr(p, "replacePrefixMatch");
        return 0;
    }
    route_refuse(c, p,
           "path: type ReplaceFullPath with replaceFullPath, or ReplacePrefixMatch with "
           "replacePrefixMatch, is required");
    return -EINVAL;
}

/* HTTPRoute filters; a GRPCRoute (|grpc|) has only the header modifiers (and RequestMirror). */
static void
filters(struct conv *c, const json_t *arr, Amesh__Waypoint__V1__Rule *r, bool grpc)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *f = json_array_get(arr, i);
        const char *type = jstr(f, "type");
        const char *full = NULL, *prefix = NULL;
        if (type != NULL && strcmp(type, "RequestHeaderModifier") == 0) {
            r->request_headers = header_modifier(c, member(f, "requestHeaderModifier"));
        } else if (type != NULL && strcmp(type, "ResponseHeaderModifier") == 0) {
            r->response_headers = header_modifier(c, member(f, "responseHeaderModifier"));
        } else if (grpc) {
            route_refuse(c, f, "filters[%zu]: unsupported filter type %s", i,
                         type ? type : "(none)");
        } else if (type != NULL && strcmp(type, "RequestRedirect") == 0) {
            const json_t *rd = member(f, "requestRedirect");
            Amesh__Waypoint__V1__Redirect *x = k8s_arena_alloc(c->a, sizeof(*x));
            amesh__waypoint__v1__redirect__init(x);
            if (jstr(rd, "scheme") != NULL)
                x->scheme = (char *)(uintptr_t)jstr(rd, "scheme");
            if (jstr(rd, "hostname") != NULL)
                x->hostname = (char *)(uintptr_t)jstr(rd, "hostname");
            x->port = (uint32_t)json_integer_value(member(rd, "port"));
            x->status = member(rd, "statusCode")
                            ? (uint32_t)json_integer_value(member(rd, "statusCode"))
                            : 302;
            if (member(rd, "path") != NULL &&
                path_modifier(c, member(rd, "path"), &full, &prefix) == 0) {
                x->path_case = full ? AMESH__WAYPOINT__V1__REDIRECT__PATH_FULL
                                    : AMESH__WAYPOINT__V1__REDIRECT__PATH_PREFIX;
                x->full = (char *)(uintptr_t)(full ? full : prefix);
            }
            r->redirect = x;
        } else if (type != NULL && strcmp(type, "URLRewrite") == 0) {
            const json_t *rw = member(f, "urlRewrite");
            Amesh__Waypoint__V1__Rewrite *x = k8s_arena_alloc(c->a, sizeof(*x));
            amesh__waypoint__v1__rewrite__init(x);
            if (jstr(rw, "hostname") != NULL)
                x->hostname = (char *)(uintptr_t)jstr(rw, "hostname");
            if (member(rw, "path") != NULL &&
                path_modifier(c, member(rw, "path"), &full, &prefix) == 0) {
                x->path_case = full ? AMESH__WAYPOINT__V1__REWRITE__PATH_FULL
                                    : AMESH__WAYPOINT__V1__REWRITE__PATH_PREFIX;
                x->full = (char *)(uintptr_t)(full ? full : prefix);
            }
            r->rewrite = x;
        } else {
            route_refuse(c, f, "filters[%zu]: unsupported filter type %s", i, type ? type : "(none)");
        }
    }
}

static void
backends(struct conv *c, const json_t *arr, Amesh__Waypoint__V1__Rule *r)
{
    uint64_t weights = 0;

    r->backends = k8s_arena_alloc(c->a, (json_array_size(arr) + 1) * sizeof(*r->backends));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *b = json_array_get(arr, i);
        const char *group = jstr(b, "group"), *kind = jstr(b, "kind"), *name = jstr(b, "name");
        const char *ns = jstr(b, "namespace");
        const json_t *port = member(b, "port"), *weight = member(b, "weight");
        if ((group != NULL && group[0] != '\0') || (kind != NULL && strcmp(kind, "Service") != 0) ||
            name == NULL) {
            route_refuse(c, b, "backendRefs[%zu]: only Services are supported", i);
            continue;
        }
        if (ns != NULL && strcmp(ns, c->route->meta.ns) != 0) {
            route_refuse(c, b,
                   "backendRefs[%zu]: Service %s/%s is in another namespace (a ReferenceGrant "
                   "would be needed; not supported)",
                   i, ns, name);
            continue;
        }
        if (!json_is_integer(port) || json_integer_value(port) < 1 ||
            json_integer_value(port) > 65535) {
            route_refuse(c, b, "backendRefs[%zu]: port (1-65535) is required for a Service", i);
            continue;
        }
        Amesh__Waypoint__V1__Backend *x = k8s_arena_alloc(c->a, sizeof(*x));
        Istio__Workload__NamespacedHostname *h = k8s_arena_alloc(c->a, sizeof(*h));
        amesh__waypoint__v1__backend__init(x);
        istio__workload__namespaced_hostname__init(h);
        h->namespace_ = c->route->meta.ns;
        h->hostname = k8s_arena_printf(c->a, "%s.%s.svc.%s", name, c->route->meta.ns, c->suffix);
        x->service = h;
        x->port = (uint32_t)json_integer_value(port);
        x->weight = weight ? (uint32_t)json_integer_value(weight) : 1;
        weights += x->weight;
        r->backends[r->n_backends++] = x;
    }
    if (weights == 0 && r->redirect == NULL) {
        r->n_backends = 0;
        r->direct_status = 500; /* istiod: no backend, or all weights 0 */
    }
}

static void
retry(struct conv *c, const json_t *rt, Amesh__Waypoint__V1__Rule *r)
{
    const json_t *codes = member(rt, "codes");
    Amesh__Waypoint__V1__Retry *x = k8s_arena_alloc(c->a, sizeof(*x));

    amesh__waypoint__v1__retry__init(x);
    x->attempts = member(rt, "attempts") ? (uint32_t)json_integer_value(member(rt, "attempts")) : 2;
    x->codes = k8s_arena_alloc(c->a, (json_array_size(codes) + 1) * sizeof(*x->codes));
    for (size_t i = 0; i < json_array_size(codes); i++)
        x->codes[x->n_codes++] = (uint32_t)json_integer_value(json_array_get(codes, i));
    x->backoff = duration(c, rt, "backoff");
    r->retry = x;
}

/* Does |route| attach to Service |svc| port |port|? */
static bool
attaches(const struct k8s_obj *route, const struct k8s_obj *svc, uint32_t port)
{
    const json_t *refs = member(member(k8s_obj_json(route), "spec"), "parentRefs");

    if (strcmp(route->meta.ns, svc->meta.ns) != 0)
        return false;
    for (size_t i = 0; i < json_array_size(refs); i++) {
        const json_t *p = json_array_get(refs, i);
        const char *group = jstr(p, "group"), *kind = jstr(p, "kind"), *name = jstr(p, "name");
        const char *ns = jstr(p, "namespace");
        const json_t *pp = member(p, "port");
        if (group == NULL || group[0] != '\0' || kind == NULL || strcmp(kind, "Service") != 0 ||
            name == NULL || strcmp(name, svc->meta.name) != 0)
            continue;
        if (ns != NULL && strcmp(ns, svc->meta.ns) != 0)
            continue;
        if (pp == NULL || (json_is_integer(pp) && (uint32_t)json_integer_value(pp) == port))
            return true;
    }
    return false;
}

/* Converts |route|'s rules into |v| (grown); nothing when the route is refused. */
static void
convert_route(struct conv *c, struct entry **v, size_t *n, size_t *cap)
{
    const json_t *rules = member(member(k8s_obj_json(c->route), "spec"), "rules");
    size_t first = *n;

    c->errors = 0;
    for (size_t i = 0; i < json_array_size(rules); i++) {
        const json_t *rule = json_array_get(rules, i);
        const json_t *matches = member(rule, "matches");
        size_t nm = json_array_size(matches) ? json_array_size(matches) : 1;
        for (size_t j = 0; j < nm; j++) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 16;
                *v = xrealloc(*v, *cap * sizeof(**v));
            }
            struct entry *e = &(*v)[(*n)++];
            memset(e, 0, sizeof(*e));
            e->rule = k8s_arena_alloc(c->a, sizeof(*e->rule));
            amesh__waypoint__v1__rule__init(e->rule);
            const char *name = jstr(rule, "name");
            e->rule->name = name ? (char *)(uintptr_t)name
                                 : k8s_arena_printf(c->a, "%s.%s.%zu", c->route->meta.ns,
                                                    c->route->meta.name, i);
            if (c->route->kind == K8S_GRPC_ROUTE) {
                /* GRPCRoute: method matches, header modifiers and backends only. */
                route_grpc_match(c, json_array_get(matches, j), e);
                filters(c, member(rule, "filters"), e->rule, true);
                backends(c, member(rule, "backendRefs"), e->rule);
                continue;
            }
            convert_match(c, json_array_get(matches, j), e);
            filters(c, member(rule, "filters"), e->rule, false);
            backends(c, member(rule, "backendRefs"), e->rule);
            const json_t *to = member(rule, "timeouts");
            e->rule->timeout = duration(c, to, "request");
            e->rule->backend_timeout = duration(c, to, "backendRequest");
            if (member(rule, "retry") != NULL)
                retry(c, member(rule, "retry"), e->rule);
        }
    }
    if (c->errors > 0)
        *n = first; /* refused whole: its rules go */
}

static int
cmp_entry(const void *x, const void *y)
{
    const struct entry *a = x, *b = y;

    if (a->rank != b->rank)
        return a->rank > b->rank ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    if (a->method != b->method)
        return a->method ? -1 : 1;
    if (a->headers != b->headers)
        return a->headers > b->headers ? -1 : 1;
    if (a->query != b->query)
        return a->query > b->query ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Routes by age (creationTimestamp, RFC 3339 in UTC compares as text; absent first), then name. */
static int
cmp_route(const void *x, const void *y)
{
    const struct k8s_obj *const *a = x, *const *b = y;
    const json_t *ma = member(k8s_obj_json(*a), "metadata"),
                 *mb = member(k8s_obj_json(*b), "metadata");
    const char *ta = jstr(ma, "creationTimestamp"), *tb = jstr(mb, "creationTimestamp");
    int c = strcmp(ta ? ta : "", tb ? tb : "");

    if (c != 0)
        return c;
    c = strcmp((*a)->meta.ns, (*b)->meta.ns);
    return c ? c : strcmp((*a)->meta.name, (*b)->meta.name);
}

/* The waypoint protocol of a Service port (istiod's ConvertProtocol, as the waypoint needs it). */
static Amesh__Waypoint__V1__Protocol
port_protocol(const struct k8s_sport *p)
{
    const char *name = p->app_protocol ? p->app_protocol : p->name ? p->name : "";
    size_t n = strcspn(name, "-");

    if (strcmp(name, "kubernetes.io/h2c") == 0)
        return AMESH__WAYPOINT__V1__PROTOCOL__HTTP2;
    if (strcmp(name, "kubernetes.io/ws") == 0 || strncasecmp(name, "grpc-web", 8) == 0)
        return AMESH__WAYPOINT__V1__PROTOCOL__HTTP1;
    if (strcmp(name, "kubernetes.io/wss") == 0)
        return AMESH__WAYPOINT__V1__PROTOCOL__TCP; /* istiod: HTTPS, TLS the waypoint passes on */
    static const struct {
        const char *name;
        Amesh__Waypoint__V1__Protocol proto;
    } known[] = {
        {"http", AMESH__WAYPOINT__V1__PROTOCOL__HTTP1},
        {"http2", AMESH__WAYPOINT__V1__PROTOCOL__HTTP2},
        {"grpc", AMESH__WAYPOINT__V1__PROTOCOL__GRPC},
        {"tcp", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {"tls", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {"https", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {"mongo", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {"redis", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
        {"mysql", AMESH__WAYPOINT__V1__PROTOCOL__TCP},
    };
    if (p->udp)
        return AMESH__WAYPOINT__V1__PROTOCOL__TCP;
    for (size_t i = 0; i < ARRAY_LEN(known); i++)
        if (strlen(known[i].name) == n && strncasecmp(name, known[i].name, n) == 0)
            return known[i].proto;
    if (p->port == 25 || p->port == 53 || p->port == 3306 || p->port == 27017)
        return AMESH__WAYPOINT__V1__PROTOCOL__TCP;
    return AMESH__WAYPOINT__V1__PROTOCOL__DETECT;
}

int
k8s_route_build(const struct k8s_store *st, const struct k8s_build_opts *o, const char *ns,
                const char *name, uint32_t port, struct mesh_resource *out, struct k8s_diags *d)
{
    static const enum k8s_kind kinds[] = {K8S_HTTP_ROUTE, K8S_GRPC_ROUTE};
    const struct k8s_obj *svc = k8s_store_find(st, K8S_SERVICE, ns, name);
    size_t b[2], e[2], nr = 0;

    /* Every route of the namespace is a candidate. */
    for (size_t k = 0; k < 2; k++)
        k8s_store_ns_range(st, kinds[k], ns, &b[k], &e[k]);
    const struct k8s_obj **cands = xcalloc(e[0] - b[0] + e[1] - b[1] + 1, sizeof(*cands));
    for (size_t k = 0; k < 2; k++)
        for (size_t i = b[k]; i < e[k]; i++)
            cands[nr++] = k8s_store_at(st, kinds[k], i);
    int rc = svc ? k8s_route_build_among(st, o, svc, port, cands, nr, out, d) : -ENOENT;
    if (svc == NULL)
        memset(out, 0, sizeof(*out));
    free(cands);
    return rc;
}

int
k8s_route_build_among(const struct k8s_store *st, const struct k8s_build_opts *o,
                      const struct k8s_obj *svc, uint32_t port, const struct k8s_obj *const *cands,
                      size_t n_cands, struct mesh_resource *out, struct k8s_diags *d)
{
    const char *ns = svc->meta.ns;
    const struct k8s_sport *sp = NULL;
    struct k8s_arena a = {0};

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < svc->u.svc.n_ports; i++)
        if (svc->u.svc.ports[i].port == port)
            sp = &svc->u.svc.ports[i];
    if (sp == NULL)
        return -ENOENT;
    struct conv c = {.st = st,
                     .a = &a,
                     .d = d,
                     .suffix = o && o->domain_suffix && o->domain_suffix[0] ? o->domain_suffix
                                                                            : "cluster.local"};
    /* The routes that attach, oldest first. */
    size_t nr = 0;
    const struct k8s_obj **routes = xcalloc(n_cands + 1, sizeof(*routes));
    for (size_t i = 0; i < n_cands; i++)
        if (attaches(cands[i], svc, port))
            routes[nr++] = cands[i];
    qsort(routes, nr, sizeof(*routes), cmp_route);

    Amesh__Waypoint__V1__Route r = AMESH__WAYPOINT__V1__ROUTE__INIT;
    Istio__Workload__NamespacedHostname h = ISTIO__WORKLOAD__NAMESPACED_HOSTNAME__INIT;
    h.namespace_ = svc->meta.ns;
    h.hostname = k8s_arena_printf(&a, "%s.%s.svc.%s", svc->meta.name, svc->meta.ns, c.suffix);
    r.service = &h;
    r.port = port;
    r.protocol = port_protocol(sp);
    r.sources = k8s_arena_alloc(&a, (nr + 1) * sizeof(*r.sources));
    struct entry *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < nr; i++) {
        size_t before = n;
        c.route = routes[i];
        convert_route(&c, &v, &n, &cap);
        if (n > before || c.errors == 0)
            r.sources[r.n_sources++] =
                k8s_arena_printf(&a, "%s/%s/%s", k8s_kind_name(routes[i]->kind),
                                 routes[i]->meta.ns, routes[i]->meta.name);
    }
    for (size_t i = 0; i < n; i++)
        v[i].seq = i;
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_entry);
    r.rules = k8s_arena_alloc(&a, (n + 1) * sizeof(*r.rules));
    for (size_t i = 0; i < n; i++)
        r.rules[r.n_rules++] = v[i].rule;

    out->name = xasprintf("%s/%s:%u", ns, h.hostname, port);
    out->type_url = K8S_TYPE_ROUTE;
    out->len = amesh__waypoint__v1__route__get_packed_size(&r);
    out->data = xmalloc(out->len + 1);
    amesh__waypoint__v1__route__pack(&r, out->data);
    snprintf(out->version, sizeof(out->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, out->data, out->len));
    free(v);
    free(routes);
    k8s_arena_free(&a);
    return 0;
}
