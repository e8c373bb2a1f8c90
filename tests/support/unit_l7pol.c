/*
 * unit_l7pol.c - builds amesh.waypoint.v1.Policy messages from struct
 * l7spec (unit_l7pol.h).
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "unit_l7pol.h"

static size_t
count(const char *const *l)
{
    size_t n = 0;
    while (n < L7SPEC_LIST && l[n] != NULL)
        n++;
    return n;
}

Istio__Security__StringMatch *
l7spec_str(const char *s)
{
    Istio__Security__StringMatch *m = xmalloc(sizeof(*m));
    size_t n = strlen(s);
    istio__security__string_match__init(m);
    if (strcmp(s, "*") == 0) {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE;
        m->presence = xmalloc(sizeof(*m->presence));
        google__protobuf__empty__init(m->presence);
    } else if (n > 0 && s[n - 1] == '*') {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX;
        m->prefix = xstrndup(s, n - 1);
    } else if (s[0] == '*') {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX;
        m->suffix = xstrdup(s + 1);
    } else {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT;
        m->exact = xstrdup(s);
    }
    return m;
}

Amesh__Waypoint__V1__PathMatch *
l7spec_path(const char *s)
{
    Amesh__Waypoint__V1__PathMatch *m = xmalloc(sizeof(*m));
    size_t n = strlen(s);
    amesh__waypoint__v1__path_match__init(m);
    if (strchr(s, '{') != NULL) {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_TEMPLATE;
        m->template_ = xstrdup(s);
    } else if (strcmp(s, "*") == 0) {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PRESENCE;
        m->presence = 1;
    } else if (n > 0 && s[n - 1] == '*') {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PREFIX;
        m->prefix = xstrndup(s, n - 1);
    } else if (s[0] == '*') {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_SUFFIX;
        m->suffix = xstrdup(s + 1);
    } else {
        m->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_EXACT;
        m->exact = xstrdup(s);
    }
    return m;
}

static Istio__Security__StringMatch **
strs(const char *const *l, size_t *n)
{
    *n = count(l);
    if (*n == 0)
        return NULL;
    Istio__Security__StringMatch **v = xcalloc(*n, sizeof(*v));
    for (size_t i = 0; i < *n; i++)
        v[i] = l7spec_str(l[i]);
    return v;
}

static Amesh__Waypoint__V1__PathMatch **
paths(const char *const *l, size_t *n)
{
    *n = count(l);
    if (*n == 0)
        return NULL;
    Amesh__Waypoint__V1__PathMatch **v = xcalloc(*n, sizeof(*v));
    for (size_t i = 0; i < *n; i++)
        v[i] = l7spec_path(l[i]);
    return v;
}

static Istio__Security__Match *
l4(const struct l7spec *s)
{
    size_t nports = 0;
    while (nports < L7SPEC_LIST && s->ports[nports] != 0)
        nports++;
    if (count(s->principals) + count(s->not_principals) + count(s->namespaces) +
            count(s->not_namespaces) + count(s->source_ips) + nports ==
        0)
        return NULL;
    Istio__Security__Match *m = xmalloc(sizeof(*m));
    istio__security__match__init(m);
    m->principals = strs(s->principals, &m->n_principals);
    m->not_principals = strs(s->not_principals, &m->n_not_principals);
    m->namespaces = strs(s->namespaces, &m->n_namespaces);
    m->not_namespaces = strs(s->not_namespaces, &m->n_not_namespaces);
    m->n_source_ips = count(s->source_ips);
    if (m->n_source_ips > 0)
        m->source_ips = xcalloc(m->n_source_ips, sizeof(*m->source_ips));
    for (size_t i = 0; i < m->n_source_ips; i++) {
        Istio__Security__Address *a = xmalloc(sizeof(*a));
        char text[64];
        istio__security__address__init(a);
        snprintf(text, sizeof(text), "%s", s->source_ips[i]);
        char *slash = strchr(text, '/');
        CHECK(slash != NULL);
        *slash = '\0';
        a->length = (uint32_t)strtoul(slash + 1, NULL, 10);
        bool v6 = strchr(text, ':') != NULL;
        a->address.len = v6 ? 16 : 4;
        a->address.data = xmalloc(16);
        CHECK(inet_pton(v6 ? AF_INET6 : AF_INET, text, a->address.data) == 1);
        m->source_ips[i] = a;
    }
    if (nports > 0) {
        m->n_destination_ports = nports;
        m->destination_ports = xcalloc(nports, sizeof(uint32_t));
        memcpy(m->destination_ports, s->ports, nports * sizeof(uint32_t));
    }
    return m;
}

Amesh__Waypoint__V1__Policy *
l7spec_pb(const struct l7spec *s)
{
    Amesh__Waypoint__V1__Policy *p = xmalloc(sizeof(*p));
    amesh__waypoint__v1__policy__init(p);
    p->name = xstrdup(s->name);
    p->namespace_ = xstrdup(s->ns);
    p->action = (Istio__Security__Action)s->action;
    p->targets = xcalloc(2, sizeof(*p->targets));
    if (s->gateway != NULL) {
        Amesh__Waypoint__V1__Target *t = xmalloc(sizeof(*t));
        amesh__waypoint__v1__target__init(t);
        t->kind_case = AMESH__WAYPOINT__V1__TARGET__KIND_GATEWAY;
        t->gateway = xstrdup(s->gateway);
        p->targets[p->n_targets++] = t;
    }
    if (s->svc_host != NULL) {
        Amesh__Waypoint__V1__Target *t = xmalloc(sizeof(*t));
        amesh__waypoint__v1__target__init(t);
        t->kind_case = AMESH__WAYPOINT__V1__TARGET__KIND_SERVICE;
        t->service = xmalloc(sizeof(*t->service));
        istio__workload__namespaced_hostname__init(t->service);
        t->service->namespace_ = xstrdup(s->svc_ns);
        t->service->hostname = xstrdup(s->svc_host);
        p->targets[p->n_targets++] = t;
    }
    if (s->no_rules)
        return p;
    Amesh__Waypoint__V1__PolicyRule *r = xmalloc(sizeof(*r));
    amesh__waypoint__v1__policy_rule__init(r);
    p->n_rules = 1;
    p->rules = xcalloc(1, sizeof(*p->rules));
    p->rules[0] = r;
    if (s->empty_rule)
        return p;
    Amesh__Waypoint__V1__PolicyClause *c = xmalloc(sizeof(*c));
    amesh__waypoint__v1__policy_clause__init(c);
    r->n_clauses = 1;
    r->clauses = xcalloc(1, sizeof(*r->clauses));
    r->clauses[0] = c;
    Amesh__Waypoint__V1__PolicyMatch *m = xmalloc(sizeof(*m));
    amesh__waypoint__v1__policy_match__init(m);
    c->n_matches = 1;
    c->matches = xcalloc(1, sizeof(*c->matches));
    c->matches[0] = m;
    m->l4 = l4(s);
    m->paths = paths(s->paths, &m->n_paths);
    m->not_paths = paths(s->not_paths, &m->n_not_paths);
    m->methods = strs(s->methods, &m->n_methods);
    m->not_methods = strs(s->not_methods, &m->n_not_methods);
    m->hosts = strs(s->hosts, &m->n_hosts);
    m->not_hosts = strs(s->not_hosts, &m->n_not_hosts);
    m->request_principals = strs(s->req_principals, &m->n_request_principals);
    m->not_request_principals = strs(s->not_req_principals, &m->n_not_request_principals);
    if (s->header != NULL) {
        Amesh__Waypoint__V1__HeaderCond *h = xmalloc(sizeof(*h));
        amesh__waypoint__v1__header_cond__init(h);
        h->name = xstrdup(s->header);
        h->values = strs(s->values, &h->n_values);
        h->not_values = strs(s->not_values, &h->n_not_values);
        m->n_headers = 1;
        m->headers = xcalloc(1, sizeof(*m->headers));
        m->headers[0] = h;
    }
    return p;
}

uint8_t *
l7spec_pack_pb(const Amesh__Waypoint__V1__Policy *pb, size_t *len)
{
    *len = amesh__waypoint__v1__policy__get_packed_size(pb);
    uint8_t *buf = xmalloc(*len + 1);
    amesh__waypoint__v1__policy__pack(pb, buf);
    return buf;
}

uint8_t *
l7spec_pack(const struct l7spec *s, size_t *len)
{
    Amesh__Waypoint__V1__Policy *pb = l7spec_pb(s);
    uint8_t *buf = l7spec_pack_pb(pb, len);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    return buf;
}

struct l7pol *
l7spec_decode(const struct l7spec *s)
{
    struct l7pol *p;
    char err[512];
    size_t len;
    uint8_t *buf = l7spec_pack(s, &len);
    int rc = l7pol_decode(buf, len, &p, err, sizeof(err));
    free(buf);
    if (rc < 0)
        fail_msg("%s/%s: %s", s->ns, s->name, err);
    return p;
}
