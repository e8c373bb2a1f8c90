/*
 * l7policy_dump.c - compiled policies as JSON for the waypoint's
 * /config_dump, in proto3's JSON mapping of amesh.waypoint.v1.Policy
 * (camelCase names, enums by name, StringMatch presence as {}, PathMatch
 * presence as true) so a dump reads like the resource meshd sent. As
 * compiled: hosts and Service hostnames in lower case, the l4 part as
 * lib/policy dumps it (addresses as text), empty l4 matches left out.
 */
#include <jansson.h>

#include "l7policy/l7policy_internal.h"

static const char *const kind_names[] = {[L7S_EXACT] = "exact",
                                         [L7S_PREFIX] = "prefix",
                                         [L7S_SUFFIX] = "suffix",
                                         [L7S_PRESENCE] = "presence",
                                         [L7S_TEMPLATE] = "template"};

static const char *const json_names[L7F_COUNT][2] = {
    [L7F_PATHS] = {"paths", "notPaths"},
    [L7F_METHODS] = {"methods", "notMethods"},
    [L7F_HOSTS] = {"hosts", "notHosts"},
    [L7F_REQ_PRINCIPALS] = {"requestPrincipals", "notRequestPrincipals"},
};

static json_t *
list_json(const struct l7_list *l, bool path)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++) {
        const struct l7_str *s = &l->v[i];
        json_t *v;
        if (s->kind == L7S_PRESENCE)
            v = path ? json_true() : json_object();
        else
            v = json_stringn(s->s, s->len);
        json_array_append_new(a, json_pack("{so}", kind_names[s->kind], v));
    }
    return a;
}

static json_t *
match_json(const struct l7_match *m)
{
    json_t *o = json_object();
    if (m->l4 != NULL)
        json_object_set_new(o, "l4", policy_match_to_json(m->l4));
    for (int f = 0; f < L7F_COUNT; f++)
        for (int neg = 0; neg < 2; neg++)
            if (m->l[f][neg].n > 0)
                json_object_set_new(o, json_names[f][neg],
                                    list_json(&m->l[f][neg], f == L7F_PATHS));
    if (m->n_hdr > 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < m->n_hdr; i++) {
            const struct l7_hdr *h = &m->hdr[i];
            json_t *ho = json_pack("{ss}", "name", h->name);
            if (h->values.n > 0)
                json_object_set_new(ho, "values", list_json(&h->values, false));
            if (h->not_values.n > 0)
                json_object_set_new(ho, "notValues", list_json(&h->not_values, false));
            json_array_append_new(a, ho);
        }
        json_object_set_new(o, "headers", a);
    }
    return o;
}

json_t *
l7pol_to_json(const struct l7pol *p)
{
    json_t *targets = json_array();
    for (size_t i = 0; i < p->n_targets; i++) {
        const struct l7_target *t = &p->targets[i];
        json_array_append_new(targets, t->gateway ? json_pack("{ss}", "gateway", t->name)
                                                  : json_pack("{s{ssss}}", "service", "namespace",
                                                              t->ns, "hostname", t->name));
    }
    json_t *rules = json_array();
    for (size_t i = 0; i < p->n_rules; i++) {
        json_t *clauses = json_array();
        for (size_t j = 0; j < p->rules[i].n; j++) {
            const struct l7_clause *cl = &p->rules[i].c[j];
            json_t *matches = json_array();
            for (size_t k = 0; k < cl->n; k++)
                json_array_append_new(matches, match_json(&cl->m[k]));
            json_array_append_new(clauses, json_pack("{so}", "matches", matches));
        }
        json_array_append_new(rules, json_pack("{so}", "clauses", clauses));
    }
    return json_pack("{sssssssoso}", "name", p->name, "namespace", p->ns, "action",
                     p->action == L7POL_DENY ? "DENY" : "ALLOW", "targets", targets, "rules",
                     rules);
}

json_t *
l7pol_set_to_json(const struct l7pol_set *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l7pol_set_count(s); i++)
        json_array_append_new(a, l7pol_to_json(l7pol_set_at(s, i)));
    return json_pack("{so}", "policies", a);
}
