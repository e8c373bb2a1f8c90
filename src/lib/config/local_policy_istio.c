/*
 * local_policy_istio.c - Istio ztunnel's own spelling of a local-config
 * policy, rewritten into the proto3 JSON form lib/policy reads, so a file
 * written for Istio's ztunnel loads unchanged:
 *
 *   ztunnel (serde)                         proto3 JSON (ours)
 *   action: Allow | Deny                    ALLOW | DENY
 *   scope: Global | Namespace |             GLOBAL | NAMESPACE |
 *          WorkloadSelector                 WORKLOAD_SELECTOR
 *   rules: [[[match...]...]...]             rules: [{clauses: [{matches: [...]}]}]
 *   {Exact: s} {Prefix: s} {Suffix: s}      {exact: s} {prefix: s} {suffix: s}
 *   {Presence: []}                          {presence: {}}
 *
 * Match keys (namespaces, notPrincipals, sourceIps, destinationPorts...) and
 * service accounts are spelt alike. Anything else is copied as it is (the
 * very same JSON values, so their source lines stay known): lib/policy
 * judges it and refuses what it does not know.
 */
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "config/local_config_internal.h"

/* |s| when it is one of |from|, as the same entry of |to|; else NULL. */
static const char *
respell(const char *s, const char *const *from, const char *const *to, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, from[i]) == 0)
            return to[i];
    return NULL;
}

static bool
string_match_key(const char *k)
{
    static const char *const keys[] = {"namespaces",    "notNamespaces", "not_namespaces",
                                       "principals",    "notPrincipals", "not_principals"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* One StringMatch: ztunnel's externally tagged enum to the proto3 oneof. */
static json_t *
string_match(json_t *m)
{
    static const char *const from[] = {"Exact", "Prefix", "Suffix"};
    static const char *const to[] = {"exact", "prefix", "suffix"};
    const char *k;
    json_t *v;

    if (!json_is_object(m) || json_object_size(m) != 1)
        return json_incref(m);
    json_object_foreach(m, k, v)
    {
        const char *ours = respell(k, from, to, 3);
        if (ours != NULL)
            return json_pack("{sO}", ours, v);
        /* Presence() is a variant without fields: [] in YAML, {} or null also meant. */
        if (strcmp(k, "Presence") == 0 &&
            (json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
             (json_is_object(v) && json_object_size(v) == 0)))
            return json_pack("{s{}}", "presence");
    }
    return json_incref(m);
}

/* A list with each element rewritten by |f|; anything but a list is kept for lib/policy. */
static json_t *
each(json_t *list, json_t *(*f)(json_t *))
{
    size_t i;
    json_t *e, *out;

    if (!json_is_array(list))
        return json_incref(list);
    out = json_array();
    json_array_foreach(list, i, e)
        json_array_append_new(out, f(e));
    return out;
}

static json_t *
match(json_t *m)
{
    const char *k;
    json_t *v, *out;

    if (!json_is_object(m))
        return json_incref(m);
    out = json_object();
    json_object_foreach(m, k, v)
    {
        if (string_match_key(k) && json_is_array(v))
            json_object_set_new(out, k, each(v, string_match));
        else
            json_object_set(out, k, v);
    }
    return out;
}

/* Our {|key|: [...]} object, or ztunnel's bare list: the list's elements rewritten by |f|. */
static json_t *
wrapped(json_t *x, const char *key, json_t *(*f)(json_t *))
{
    if (json_is_array(x))
        return json_pack("{so}", key, each(x, f));
    if (!json_is_object(x) || json_object_get(x, key) == NULL)
        return json_incref(x);
    json_t *out = json_copy(x);
    json_object_set_new(out, key, each(json_object_get(x, key), f));
    return out;
}

/* Our {matches: [...]} clause, or ztunnel's bare list of matches. */
static json_t *
clause(json_t *c)
{
    return wrapped(c, "matches", match);
}

/* Our {clauses: [...]} rule, or ztunnel's bare list of clauses. */
static json_t *
rule(json_t *r)
{
    return wrapped(r, "clauses", clause);
}

json_t *
local_policy_from_istio(json_t *p)
{
    static const char *const scopes[] = {"Global", "Namespace", "WorkloadSelector"};
    static const char *const our_scopes[] = {"GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"};
    static const char *const actions[] = {"Allow", "Deny"};
    static const char *const our_actions[] = {"ALLOW", "DENY"};
    const char *k;
    json_t *v, *out;

    if (!json_is_object(p))
        return json_incref(p);
    out = json_object();
    json_object_foreach(p, k, v)
    {
        const char *s = json_string_value(v), *ours = NULL;
        if (s != NULL && strcmp(k, "scope") == 0)
            ours = respell(s, scopes, our_scopes, 3);
        else if (s != NULL && strcmp(k, "action") == 0)
            ours = respell(s, actions, our_actions, 2);
        if (ours != NULL) {
            json_object_set_new(out, k, json_string(ours));
        } else if (strcmp(k, "rules") == 0 && json_is_array(v)) {
            json_object_set_new(out, k, each(v, rule));
        } else {
            json_object_set(out, k, v);
        }
    }
    return out;
}
