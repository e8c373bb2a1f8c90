/*
 * zc_tables.c - the workloads, services, policies and connections tables of
 * ztunnel-config, with istioctl's columns, sort orders and "None"/"NA".
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "meshctl.h"

/* A row being sorted: its cells and the sort key. */
struct row {
    char *key;
    const char *cells[7];
    char *owned[3]; /* cells built for this row */
    size_t seq;     /* dump order, the last tie-breaker */
};

static int
cmp_rows(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    return r ? r : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sorts |rows|, prints them under |header| and frees them. */
static void
print_rows(FILE *f, const char *const *header, size_t n_cols, struct row *rows, size_t n)
{
    struct table *t = table_new(n_cols, header);
    qsort(rows, n, sizeof(*rows), cmp_rows);
    for (size_t i = 0; i < n; i++) {
        table_add(t, rows[i].cells);
        free(rows[i].key);
        for (size_t j = 0; j < ARRAY_LEN(rows[i].owned); j++)
            free(rows[i].owned[j]);
    }
    table_print(t, f, ZC_PAD);
    table_free(t);
    free(rows);
}

static bool
ns_ok(const struct zc_opts *o, const char *ns)
{
    return o->ns == NULL || strcmp(o->ns, ns) == 0;
}

/* "net/10.0.0.1" -> "10.0.0.1"; a bare IP stays. */
static const char *
ip_part(const char *a)
{
    const char *slash = strchr(a, '/');
    return slash ? slash + 1 : a;
}

/* The address list of a workload or service in either dialect. */
static const json_t *
addr_list(const json_t *o, const char *ztunnel_key)
{
    const json_t *v = json_object_get(o, ztunnel_key);
    return json_is_array(v) ? v : json_object_get(o, "addresses");
}

/* Joins the addresses' IP parts with commas; a fresh string. */
static char *
join_ips(const json_t *list)
{
    size_t i, len = 0;
    json_t *v;
    char *s = xstrdup("");

    json_array_foreach(list, i, v) {
        if (!json_is_string(v))
            continue;
        const char *ip = ip_part(json_string_value(v));
        size_t n = strlen(ip) + (len ? 1 : 0);
        s = xrealloc(s, len + n + 1);
        snprintf(s + len, n + 1, "%s%s", len ? "," : "", ip);
        len += n;
    }
    return s;
}

static void
set_first(json_t *o, const char *key, const char *val)
{
    if (json_object_get(o, key) == NULL)
        json_object_set_new(o, key, json_string(val));
}

/*
 * Service names by every form a waypoint reference takes: "<ns>/<hostname>"
 * and each VIP, with and without its "<network>/" (the first service wins, as
 * istioctl's scan finds it). New reference.
 */
static json_t *
waypoint_index(const json_t *services)
{
    json_t *ix = json_object(), *s, *a;
    size_t i, j;
    char key[2048];

    json_array_foreach(services, i, s) {
        const char *name = zc_str(s, "name", "NA");
        snprintf(key, sizeof(key), "%s/%s", zc_str(s, "namespace", ""), zc_str(s, "hostname", ""));
        set_first(ix, key, name);
        json_array_foreach(addr_list(s, "vips"), j, a) {
            if (!json_is_string(a))
                continue;
            set_first(ix, json_string_value(a), name);
            snprintf(key, sizeof(key), "ip:%s", ip_part(json_string_value(a)));
            set_first(ix, key, name);
        }
    }
    return ix;
}

/* The service name a waypoint reference points at: "None" without one, "NA" when unknown. */
static const char *
waypoint_name(const json_t *wp, const json_t *index)
{
    const char *dest, *name;
    char key[2048];

    if (wp == NULL || json_is_null(wp))
        return "None";
    if ((dest = zc_str(wp, "destination", NULL)) == NULL)
        return "NA";
    if ((name = zc_str(index, dest, NULL)) != NULL)
        return name;
    snprintf(key, sizeof(key), "ip:%s", ip_part(dest));
    return zc_str(index, key, "NA");
}

static const char *
protocol(const json_t *w)
{
    const char *p = zc_str(w, "protocol", NULL);
    if (p != NULL)
        return p;
    p = zc_str(w, "tunnelProtocol", "NONE");
    return strcmp(p, "NONE") == 0 ? "TCP" : p; /* amesh says NONE where istioctl says TCP */
}

void
zc_print_workloads(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"NAMESPACE", "POD NAME", "IP",
                                         "NODE",      "WAYPOINT", "PROTOCOL"};
    json_t *ws = zc_section(dump, "workloads"), *ss = zc_section(dump, "services"), *w;
    json_t *wix = waypoint_index(ss);
    struct row *rows = xcalloc(json_array_size(ws) + 1, sizeof(*rows));
    size_t i, n = 0;

    json_array_foreach(ws, i, w) {
        const char *ns = zc_str(w, "namespace", ""), *name = zc_str(w, "name", "");
        if (!ns_ok(o, ns))
            continue;
        struct row *r = &rows[n++];
        char *addr = join_ips(addr_list(w, "workloadIps"));
        if (addr[0] == '\0') {
            free(addr);
            addr = xstrdup(zc_str(w, "hostname", ""));
        }
        /* istioctl sorts by "<ns>.<name>", then node. */
        r->key = xasprintf("%s.%s%c%s", ns, name, 1, zc_str(w, "node", ""));
        r->seq = i;
        r->owned[0] = addr;
        r->cells[0] = ns;
        r->cells[1] = name;
        r->cells[2] = addr;
        r->cells[3] = zc_str(w, "node", "");
        r->cells[4] = waypoint_name(json_object_get(w, "waypoint"), wix);
        r->cells[5] = protocol(w);
    }
    print_rows(f, header, ARRAY_LEN(header), rows, n);
    json_decref(wix);
    json_decref(ws);
    json_decref(ss);
}

static bool
healthy(const json_t *w)
{
    return strcasecmp(zc_str(w, "status", ""), "Healthy") == 0;
}

/*
 * Endpoint counts per service key, {"<ns>/<hostname>": [healthy, total]},
 * from the workloads' services maps (amesh's dump has no endpoints list).
 */
static json_t *
endpoint_counts(const json_t *workloads)
{
    json_t *counts = json_object(), *w, *v;
    const char *key;
    size_t i;

    json_array_foreach(workloads, i, w) {
        json_object_foreach(json_object_get(w, "services"), key, v) {
            json_t *c = json_object_get(counts, key);
            if (c == NULL) {
                c = json_pack("[i, i]", 0, 0);
                json_object_set_new(counts, key, c);
            }
            json_array_set_new(c, 0,
                               json_integer(json_integer_value(json_array_get(c, 0)) + healthy(w)));
            json_array_set_new(c, 1, json_integer(json_integer_value(json_array_get(c, 1)) + 1));
        }
    }
    return counts;
}

/* "healthy/total" from ztunnel's endpoints list (values with a workloadUid). */
static char *
ztunnel_endpoints(const json_t *eps, const json_t *by_uid)
{
    json_t *list = json_array(), *e;
    const char *k;
    size_t i, good = 0;

    if (json_is_object(eps))
        json_object_foreach((json_t *)eps, k, e)
            json_array_append(list, e);
    else
        json_array_extend(list, (json_t *)eps);
    json_array_foreach(list, i, e) {
        const json_t *w = json_object_get(by_uid, zc_str(e, "workloadUid", ""));
        good += w != NULL && healthy(w);
    }
    char *s = xasprintf("%zu/%zu", good, json_array_size(list));
    json_decref(list);
    return s;
}

void
zc_print_services(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"NAMESPACE", "SERVICE NAME", "SERVICE VIP", "WAYPOINT",
                                         "ENDPOINTS"};
    json_t *ws = zc_section(dump, "workloads"), *ss = zc_section(dump, "services"), *s, *w;
    json_t *counts = endpoint_counts(ws), *by_uid = json_object(), *wix = waypoint_index(ss);
    struct row *rows = xcalloc(json_array_size(ss) + 1, sizeof(*rows));
    size_t i, n = 0;
    char key[2048];

    json_array_foreach(ws, i, w)
        json_object_set(by_uid, zc_str(w, "uid", ""), w);
    json_array_foreach(ss, i, s) {
        const char *ns = zc_str(s, "namespace", ""), *host = zc_str(s, "hostname", "");
        if (!ns_ok(o, ns))
            continue;
        struct row *r = &rows[n++];
        const json_t *eps = json_object_get(s, "endpoints");
        if (eps != NULL && !json_is_null(eps)) {
            r->owned[1] = ztunnel_endpoints(eps, by_uid);
        } else {
            snprintf(key, sizeof(key), "%s/%s", ns, host);
            const json_t *c = json_object_get(counts, key);
            r->owned[1] =
                xasprintf("%lld/%lld", (long long)json_integer_value(json_array_get(c, 0)),
                          (long long)json_integer_value(json_array_get(c, 1)));
        }
        r->key = xasprintf("%s%c%s%c%s", ns, 1, zc_str(s, "name", ""), 1, host);
        r->seq = i;
        r->owned[0] = join_ips(addr_list(s, "vips"));
        r->cells[0] = ns;
        r->cells[1] = zc_str(s, "name", "");
        r->cells[2] = r->owned[0];
        r->cells[3] = waypoint_name(json_object_get(s, "waypoint"), wix);
        r->cells[4] = r->owned[1];
    }
    print_rows(f, header, ARRAY_LEN(header), rows, n);
    json_decref(counts);
    json_decref(by_uid);
    json_decref(wix);
    json_decref(ws);
    json_decref(ss);
}

void
zc_print_policies(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"NAMESPACE", "POLICY NAME", "ACTION", "SCOPE"};
    json_t *ps = zc_section(dump, "policies"), *p;
    struct row *rows = xcalloc(json_array_size(ps) + 1, sizeof(*rows));
    size_t i, n = 0;

    json_array_foreach(ps, i, p) {
        const char *ns = zc_str(p, "namespace", "");
        if (!ns_ok(o, ns))
            continue;
        struct row *r = &rows[n++];
        r->key = xasprintf("%s%c%s", ns, 1, zc_str(p, "name", ""));
        r->seq = i;
        r->cells[0] = ns;
        r->cells[1] = zc_str(p, "name", "");
        r->cells[2] = zc_str(p, "action", "");
        r->cells[3] = zc_str(p, "scope", "");
    }
    print_rows(f, header, ARRAY_LEN(header), rows, n);
    json_decref(ps);
}

/* "10.0.0.1:80" or "[2001:db8::1]:80" -> the IP, in |out|. */
static const char *
host_of(const char *addr, char *out, size_t outlen)
{
    const char *end = addr[0] == '[' ? strchr(addr, ']') : strrchr(addr, ':');
    size_t start = addr[0] == '[';
    if (end == NULL)
        end = addr + strlen(addr);
    snprintf(out, outlen, "%.*s", (int)(end - addr - (long)start), addr + start);
    return out;
}

void
zc_print_connections(FILE *f, const json_t *dump, const struct zc_opts *o)
{
    static const char *const header[] = {"WORKLOAD", "DIRECTION",     "LOCAL",
                                         "REMOTE",   "REMOTE TARGET", "PROTOCOL"};
    json_t *ws = zc_section(dump, "workloads"), *cs = zc_section(dump, "connections");
    json_t *by_ip = json_object(), *w, *c, *a;
    struct row *rows = xcalloc(json_array_size(cs) + 1, sizeof(*rows));
    size_t i, j, n = 0;
    char ip[256];

    json_array_foreach(ws, i, w)
        json_array_foreach(addr_list(w, "workloadIps"), j, a)
            if (json_is_string(a) && json_object_get(by_ip, ip_part(json_string_value(a))) == NULL)
                json_object_set(by_ip, ip_part(json_string_value(a)), w);
    json_array_foreach(cs, i, c) {
        bool in = strcasecmp(zc_str(c, "direction", ""), "inbound") == 0;
        const char *src = zc_str(c, "src", ""), *dst = zc_str(c, "dst", "");
        const char *actual = zc_str(c, "actualDst", NULL);
        const char *local = in ? dst : src;
        const json_t *lw = json_object_get(by_ip, host_of(local, ip, sizeof(ip)));
        const char *ns = lw ? zc_str(lw, "namespace", "") : "";
        if (!ns_ok(o, ns))
            continue;
        struct row *r = &rows[n++];
        r->owned[0] = lw ? xasprintf("%s.%s", zc_str(lw, "name", ""), ns) : xstrdup("-");
        r->key = xasprintf("%s%c%d", r->owned[0], 1, !in);
        r->seq = i;
        r->cells[0] = r->owned[0];
        r->cells[1] = in ? "Inbound" : "Outbound";
        r->cells[2] = local;
        /* Outbound: REMOTE is where bytes went (HBONE peer), REMOTE TARGET the original dst. */
        r->cells[3] = in ? src : (actual ? actual : dst);
        r->cells[4] = !in && actual ? dst : "";
        r->cells[5] = zc_str(c, "protocol", NULL);
        if (r->cells[5] == NULL)
            r->cells[5] =
                zc_str(c, "srcIdentity", NULL) || zc_str(c, "dstIdentity", NULL) ? "HBONE" : "TCP";
    }
    print_rows(f, header, ARRAY_LEN(header), rows, n);
    json_decref(by_ip);
    json_decref(ws);
    json_decref(cs);
}
