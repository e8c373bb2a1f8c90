/*
 * policy_dump.c - a compiled policy back to its proto3 JSON form (config
 * dumps, meshctl), in exactly the form policy_from_json() reads, so a dump
 * round-trips. Addresses are printed as compiled: host bits cleared and
 * IPv4-mapped prefixes as IPv4.
 */
#include <arpa/inet.h>

#include <jansson.h>

#include "policy/policy_internal.h"

static const char *const scope_names[] = {"GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"};
static const char *const action_names[] = {"ALLOW", "DENY"};
static const char *const str_kinds[] = {[PS_EXACT] = "exact",
                                        [PS_PREFIX] = "prefix",
                                        [PS_SUFFIX] = "suffix",
                                        [PS_PRESENCE] = "presence"};

static json_t *
entry_json(enum pol_field f, const struct pol_list *l, size_t i)
{
    switch (f) {
    case PF_NAMESPACES:
    case PF_PRINCIPALS: {
        const struct pol_str *s = &((const struct pol_str *)l->v)[i];
        json_t *v = s->kind == PS_PRESENCE ? json_object() : json_stringn(s->s, s->len);
        return json_pack("{so}", str_kinds[s->kind], v);
    }
    case PF_SOURCE_IPS:
    case PF_DESTINATION_IPS: {
        const struct pol_cidr *c = &((const struct pol_cidr *)l->v)[i];
        char text[INET6_ADDRSTRLEN];
        inet_ntop(c->net.family, c->net.b, text, sizeof(text));
        return json_pack("{sssi}", "address", text, "length", (int)c->bits);
    }
    case PF_DESTINATION_PORTS:
        return json_integer(((const uint16_t *)l->v)[i]);
    case PF_SERVICE_ACCOUNTS: {
        const struct pol_sa *sa = &((const struct pol_sa *)l->v)[i];
        return json_pack("{ssss}", "namespace", sa->ns, "serviceAccount", sa->sa);
    }
    case PF_COUNT:
        break;
    }
    return json_null();
}

static json_t *
match_json(const struct pol_match *m)
{
    json_t *o = json_object();
    for (int f = 0; f < PF_COUNT; f++)
        for (int neg = 0; neg < 2; neg++) {
            const struct pol_list *l = &m->l[f][neg];
            if (l->n == 0)
                continue;
            json_t *a = json_array();
            for (size_t i = 0; i < l->n; i++)
                json_array_append_new(a, entry_json((enum pol_field)f, l, i));
            json_object_set_new(o, pol_field_name((enum pol_field)f, neg, true), a);
        }
    return o;
}

json_t *
policy_match_to_json(const struct policy_match *m)
{
    return match_json(&m->m);
}

json_t *
policy_to_json(const struct policy *p)
{
    json_t *rules = json_array();
    for (size_t i = 0; i < p->n_rules; i++) {
        json_t *clauses = json_array();
        for (size_t j = 0; j < p->rules[i].n; j++) {
            const struct pol_clause *cl = &p->rules[i].c[j];
            json_t *matches = json_array();
            for (size_t k = 0; k < cl->n; k++)
                json_array_append_new(matches, match_json(&cl->m[k]));
            json_array_append_new(clauses, json_pack("{so}", "matches", matches));
        }
        json_array_append_new(rules, json_pack("{so}", "clauses", clauses));
    }
    json_t *o = json_pack("{ssssssss}", "name", p->name, "namespace", p->ns, "scope",
                          scope_names[p->scope], "action", action_names[p->action]);
    if (p->dry_run)
        json_object_set_new(o, "dryRun", json_true());
    json_object_set_new(o, "rules", rules);
    return o;
}
