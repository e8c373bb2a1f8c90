/*
 * wc_tables.c - waypoint-config's own tables: the route tables (one row per rule, in the
 * order the waypoint matches them) and the L7 policies, read from the waypoint's
 * /config_dump (lib/route's and lib/l7policy's JSON). Services, workloads and certificates
 * use ztunnel-config's tables: the dump has the same shape there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "meshctl.h"

static bool
ns_ok(const struct zc_opts *o, const char *ns)
{
    return o->ns == NULL || strcmp(o->ns, ns) == 0;
}

/* "echo-v1.demo.svc.cluster.local" -> "echo-v1" when its namespace is |ns|. */
static void
short_host(const char *host, const char *ns, char *out, size_t outlen)
{
    size_t n = strcspn(host, ".");
    char suffix[300];

    snprintf(suffix, sizeof(suffix), ".%s.svc.cluster.local", ns);
    if (strcmp(host + n, suffix) == 0)
        snprintf(out, outlen, "%.*s", (int)n, host);
    else
        snprintf(out, outlen, "%s", host);
}

/* "prefix /api, method GET, 2 headers, 1 query" */
static void
match_str(const json_t *m, char *out, size_t outlen)
{
    static const char *const kinds[] = {"exact", "prefix", "regex"};
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (json_is_string(json_object_get(m, kinds[i])))
            n += (size_t)snprintf(out + n, outlen - n, "%s %s", kinds[i], zc_str(m, kinds[i], ""));
    if (n == 0 && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, "prefix /");
    if (json_is_string(json_object_get(m, "method")) && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, ", method %s", zc_str(m, "method", ""));
    size_t h = json_array_size(json_object_get(m, "headers"));
    if (h > 0 && n < outlen)
        n += (size_t)snprintf(out + n, outlen - n, ", %zu header%s", h, h == 1 ? "" : "s");
    size_t q = json_array_size(json_object_get(m, "query"));
    if (q > 0 && n < outlen)
        snprintf(out + n, outlen - n, ", %zu query", q);
}

/* What the rule does: "echo-v1:80 90%, echo-v2:80 10%", "redirect 302", "direct 404". */
static char *
action_str(const json_t *r, const char *ns)
{
    const json_t *b = json_object_get(r, "backends"), *v;
    char *out = xstrdup("");
    size_t i, len = 0;
    json_int_t total = 0;

    if (json_is_object(json_object_get(r, "redirect"))) {
        free(out);
        return xasprintf("redirect %lld", (long long)json_integer_value(json_object_get(
                                              json_object_get(r, "redirect"), "status")));
    }
    if (json_array_size(b) == 0) {
        free(out);
        return xasprintf("direct %lld",
                         (long long)json_integer_value(json_object_get(r, "directStatus")));
    }
    json_array_foreach(b, i, v)
        total += json_integer_value(json_object_get(v, "weight"));
    json_array_foreach(b, i, v) {
        char host[256], cell[320];
        const json_t *svc = json_object_get(v, "service");
        json_int_t w = json_integer_value(json_object_get(v, "weight"));
        short_host(zc_str(svc, "hostname", ""), ns, host, sizeof(host));
        int n = snprintf(cell, sizeof(cell), "%s%s:%lld", i ? ", " : "", host,
                         (long long)json_integer_value(json_object_get(v, "port")));
        if (json_array_size(b) > 1 && n > 0 && (size_t)n < sizeof(cell))
            snprintf(cell + n, sizeof(cell) - (size_t)n, " %lld%%",
                     total > 0 ? (long long)((w * 100 + total / 2) / total) : 0LL);
        size_t cl = strlen(cell);
        out = xrealloc(out, len + cl + 1);
        memcpy(out + len, cell, cl + 1);
        len += cl;
    }
    return out;
}

void
wc_print_routes(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"NAMESPACE", "SERVICE", "PORT", "PROTOCOL",
                                         "RULE",      "MATCH",   "ACTION"};
    json_t *routes = zc_section(dump, "routes"), *t, *r;
    struct table *tab = table_new(ARRAY_LEN(header), header);
    size_t i, j;

    json_array_foreach(routes, i, t) {
        const json_t *svc = json_object_get(t, "service");
        const char *ns = zc_str(svc, "namespace", "");
        char host[256], port[16], match[512];
        if (!ns_ok(o, ns))
            continue;
        short_host(zc_str(svc, "hostname", ""), ns, host, sizeof(host));
        snprintf(port, sizeof(port), "%lld", (long long)json_integer_value(json_object_get(t, "port")));
        const json_t *rules = json_object_get(t, "rules");
        if (json_array_size(rules) == 0) {
            const char *cells[] = {ns, host, port, zc_str(t, "protocol", ""), "-", "-", "-"};
            table_add(tab, cells);
        }
        json_array_foreach(rules, j, r) {
            match_str(json_object_get(r, "match"), match, sizeof(match));
            char *action = action_str(r, ns);
            const char *rule = zc_str(r, "name", "");
            const char *cells[] = {ns,    host,  port, zc_str(t, "protocol", ""),
                                   rule[0] ? rule : "-", match, action};
            table_add(tab, cells);
            free(action);
        }
    }
    table_print(tab, f, ZC_PAD);
    table_free(tab);
    json_decref(routes);
}

/* "gateway waypoint", "service echo" (comma-joined). */
static char *
targets_str(const json_t *targets, const char *ns)
{
    char *out = xstrdup("");
    size_t i, len = 0;
    json_t *t;

    json_array_foreach(targets, i, t) {
        char cell[320], host[256];
        const json_t *svc = json_object_get(t, "service");
        if (json_is_object(svc)) {
            short_host(zc_str(svc, "hostname", ""), ns, host, sizeof(host));
            snprintf(cell, sizeof(cell), "%sservice %s", i ? ", " : "", host);
        } else {
            snprintf(cell, sizeof(cell), "%sgateway %s", i ? ", " : "", zc_str(t, "gateway", ""));
        }
        size_t cl = strlen(cell);
        out = xrealloc(out, len + cl + 1);
        memcpy(out + len, cell, cl + 1);
        len += cl;
    }
    return out;
}

void
wc_print_policies(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"NAMESPACE", "POLICY NAME", "ACTION", "TARGETS",
                                         "RULES"};
    json_t *pols = zc_section(dump, "policies"), *p;
    struct table *tab = table_new(ARRAY_LEN(header), header);
    size_t i;

    json_array_foreach(pols, i, p) {
        const char *ns = zc_str(p, "namespace", "");
        char rules[16];
        if (!ns_ok(o, ns))
            continue;
        snprintf(rules, sizeof(rules), "%zu", json_array_size(json_object_get(p, "rules")));
        char *targets = targets_str(json_object_get(p, "targets"), ns);
        const char *cells[] = {ns, zc_str(p, "name", ""), zc_str(p, "action", ""), targets, rules};
        table_add(tab, cells);
        free(targets);
    }
    table_print(tab, f, ZC_PAD);
    table_free(tab);
    json_decref(pols);
}
