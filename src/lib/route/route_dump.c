/*
 * route_dump.c - a compiled table as JSON for the waypoint's /config_dump and
 * meshctl waypoint-config: field names are the proto3 JSON names of
 * amesh.waypoint.v1.Route, plus what compiling resolved (the default route,
 * Istio's retry policy, the redirect status) and the regex error counter.
 */
#include <stdio.h>

#include <jansson.h>

#include "route/route_internal.h"

static const char *const proto_names[] = {"DETECT", "HTTP1", "HTTP2", "GRPC", "TCP"};

static json_t *
duration(uint64_t ms)
{
    char b[32];
    snprintf(b, sizeof(b), "%llu.%03llus", (unsigned long long)(ms / 1000),
             (unsigned long long)(ms % 1000));
    return json_string(b);
}

static json_t *
keys(const struct rt_keymatch *k, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s%,s:s%}", "name", k[i].name, k[i].name_len,
                                           k[i].re ? "regex" : "exact", k[i].value,
                                           k[i].value_len));
    return a;
}

static json_t *
match(const struct rt_match *m)
{
    static const char *const kinds[] = {"prefix", "exact", "regex"};
    json_t *o = json_pack("{ss}", kinds[m->kind], m->path_given);
    if (m->n_headers)
        json_object_set_new(o, "headers", keys(m->headers, m->n_headers));
    if (m->n_query)
        json_object_set_new(o, "query", keys(m->query, m->n_query));
    if (m->method)
        json_object_set_new(o, "method", json_string(m->method));
    return o;
}

static json_t *
hdrs(const struct rt_hdr *h, size_t n, bool names_only)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, names_only ? json_stringn(h[i].name, h[i].name_len)
                                            : json_pack("{s:s%,s:s%}", "name", h[i].name,
                                                        h[i].name_len, "value", h[i].value,
                                                        h[i].value_len));
    return a;
}

static json_t *
ops(const struct route_hdr_ops *o)
{
    return json_pack("{sososo}", "set", hdrs(o->set, o->n_set, false), "add",
                     hdrs(o->add, o->n_add, false), "remove", hdrs(o->remove, o->n_remove, true));
}

static json_t *
retry(const struct route_retry *r)
{
    static const char *const on[] = {"connect-failure", "refused-stream", "unavailable",
                                     "cancelled", "retriable-status-codes"};
    char buf[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < 5; i++)
        if (r->on & (1u << i))
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", on[i]);
    json_t *codes = json_array();
    for (size_t i = 0; i < r->n_codes; i++)
        json_array_append_new(codes, json_integer(r->codes[i]));
    return json_pack("{sisssososb}", "attempts", (int)r->attempts, "retryOn", buf, "codes", codes,
                     "backoff", duration(r->backoff_base_ms), "otherHost", r->other_host);
}

static json_t *
path_mod(json_t *o, enum rt_mod_kind mod, const char *path)
{
    if (mod == RT_MOD_FULL)
        json_object_set_new(o, "full", json_string(path));
    else if (mod == RT_MOD_PREFIX)
        json_object_set_new(o, "prefix", json_string(path[0] ? path : "/"));
    return o;
}

static json_t *
rule(const struct rt_rule *r)
{
    json_t *o = json_pack("{ssso}", "name", r->name, "match", match(&r->m));
    json_t *b = json_array();
    for (size_t i = 0; i < r->n_backends; i++)
        json_array_append_new(b, json_pack("{s{ssss}sisi}", "service", "namespace",
                                           r->backends[i].ns, "hostname", r->backends[i].host,
                                           "port", (int)r->backends[i].port, "weight",
                                           (int)r->backends[i].weight));
    json_object_set_new(o, "backends", b);
    if (r->has_req_hdrs)
        json_object_set_new(o, "requestHeaders", ops(&r->req_hdrs));
    if (r->has_resp_hdrs)
        json_object_set_new(o, "responseHeaders", ops(&r->resp_hdrs));
    if (r->has_redirect) {
        const struct rt_redirect *d = &r->redirect;
        json_t *x = json_pack("{si}", "status", (int)d->status);
        if (d->scheme)
            json_object_set_new(x, "scheme", json_string(d->scheme));
        if (d->hostname)
            json_object_set_new(x, "hostname", json_string(d->hostname));
        if (d->port)
            json_object_set_new(x, "port", json_integer(d->port));
        json_object_set_new(o, "redirect", path_mod(x, d->mod, d->path));
    }
    if (r->has_rewrite) {
        json_t *x = json_object();
        if (r->rewrite.hostname)
            json_object_set_new(x, "hostname", json_string(r->rewrite.hostname));
        json_object_set_new(o, "rewrite", path_mod(x, r->rewrite.mod, r->rewrite.path));
    }
    if (r->timeout_ms)
        json_object_set_new(o, "timeout", duration(r->timeout_ms));
    if (r->backend_timeout_ms)
        json_object_set_new(o, "backendTimeout", duration(r->backend_timeout_ms));
    json_object_set_new(o, "retry", retry(&r->retry));
    if (r->direct_status)
        json_object_set_new(o, "directStatus", json_integer(r->direct_status));
    else if (r->total_weight == 0 && !r->has_redirect)
        json_object_set_new(o, "directStatus", json_integer(500));
    return o;
}

json_t *
route_table_dump(const struct route_table *t)
{
    json_t *src = json_array(), *rules = json_array();
    for (size_t i = 0; i < t->n_sources; i++)
        json_array_append_new(src, json_string(t->sources[i]));
    for (size_t i = 0; i < t->n_rules; i++)
        json_array_append_new(rules, rule(&t->rules[i]));
    return json_pack("{sss{ssss}sisssbsososI}", "name", t->key, "service", "namespace", t->ns,
                     "hostname", t->host, "port", (int)t->port, "protocol",
                     proto_names[t->protocol], "default", t->is_default, "sources", src, "rules",
                     rules, "regexErrors",
                     (json_int_t)atomic_load(&((struct route_table *)t)->regex_errors));
}
