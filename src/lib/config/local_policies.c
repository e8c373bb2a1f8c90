/*
 * local_policies.c - the `policies:` of ztunnel's local config: each entry is
 * an istio.security.Authorization in its proto3 JSON form (as lib/policy reads
 * it), e.g. {name, namespace, scope: NAMESPACE, action: DENY, rules: [...]}.
 *
 * Istio ztunnel's spelling of the same (Allow, Namespace, rules as nested
 * lists...) is accepted too (local_policy_istio.c).
 *
 * The file is read as YAML into JSON values (lib/k8s's reader) so the policy
 * module sees exactly the JSON it would get from any other source. An error
 * is "<file>:<line>: policies[i]: <reason>", the line that of the part at
 * fault (found by checking the parts of the failed entry alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "config/local_config.h"
#include "config/local_config_internal.h"
#include "k8s/k8s.h"
#include "policy/policy.h"

/* Does the policy |p| (taken) convert and compile? */
static bool
valid(json_t *p)
{
    json_t *ours = local_policy_from_istio(p);
    struct policy *pol = NULL;
    char why[256];
    int rc = policy_from_json(ours, &pol, why, sizeof(why));
    policy_unref(pol);
    json_decref(ours);
    json_decref(p);
    return rc == 0;
}

/*
 * |base| with rules: [r], r holding only clause |c| when given, c holding
 * only match |m| (taken) when given; each level in the shape it was written
 * (ztunnel's bare lists or our {clauses}/{matches} objects).
 */
static json_t *
candidate(const json_t *base, json_t *r, json_t *c, json_t *m)
{
    json_t *rr = json_incref(r);
    if (c != NULL) {
        json_t *cc = m == NULL            ? json_incref(c)
                     : json_is_array(c) ? json_pack("[o]", m)
                                        : json_pack("{s[o]}", "matches", m);
        json_decref(rr);
        rr = json_is_array(r) ? json_pack("[o]", cc) : json_pack("{s[o]}", "clauses", cc);
    }
    json_t *o = json_copy((json_t *)base);
    json_object_set_new(o, "rules", json_pack("[o]", rr));
    return o;
}

/* The list inside a rule (clauses) or a clause (matches), in either shape; NULL if none. */
static json_t *
inner(json_t *v, const char *key)
{
    json_t *l = json_is_array(v) ? v : json_object_get(v, key);
    return json_is_array(l) ? l : NULL;
}

/*
 * The line of what fails in the rules |rules| of a policy whose other
 * fields |base| pass: the rule, then its clause, match, field and list
 * entry, as deep as one is found to fail alone; |line| when none does.
 */
static int
rules_line(const struct k8s_doc *doc, const json_t *base, json_t *rules, int line)
{
    size_t i, j, n, x;
    json_t *r, *c, *m, *v, *e;
    const char *k;

    json_array_foreach(rules, i, r) {
        if (valid(candidate(base, r, NULL, NULL)))
            continue;
        line = k8s_doc_line_of(doc, r);
        json_array_foreach(inner(r, "clauses"), j, c) {
            if (valid(candidate(base, r, c, NULL)))
                continue;
            line = k8s_doc_line_of(doc, c);
            json_array_foreach(inner(c, "matches"), n, m) {
                if (valid(candidate(base, r, c, json_incref(m))))
                    continue;
                line = k8s_doc_line_of(doc, m);
                if (!json_is_object(m))
                    return line;
                json_object_foreach(m, k, v) {
                    if (valid(candidate(base, r, c, json_pack("{sO}", k, v))))
                        continue;
                    line = k8s_doc_key_line(doc, m, k);
                    json_array_foreach(json_is_array(v) ? v : NULL, x, e) {
                        /* true, false and null are shared values: their lines are not theirs. */
                        if (!json_is_boolean(e) && !json_is_null(e) &&
                            !valid(candidate(base, r, c, json_pack("{s[O]}", k, e))))
                            return k8s_doc_line_of(doc, e);
                    }
                    return line;
                }
                return line;
            }
            return line;
        }
        return line;
    }
    return line;
}

/*
 * The line to blame for the policy |entry| that failed: found by checking
 * its parts alone (name and namespace, then each other field with them,
 * then into the rules). The entry's line when only the whole fails (a cap
 * on the whole policy).
 */
static int
error_line(const struct k8s_doc *doc, json_t *entry)
{
    int line = k8s_doc_line_of(doc, entry);
    json_t *base = json_object(), *v;
    const char *k;

    if (!json_is_object(entry))
        goto out;
    if ((v = json_object_get(entry, "name")) != NULL)
        json_object_set(base, "name", v);
    if ((v = json_object_get(entry, "namespace")) != NULL)
        json_object_set(base, "namespace", v);
    if (!valid(json_copy(base))) {
        if (json_object_get(entry, "name") != NULL)
            line = k8s_doc_key_line(doc, entry, "name");
        goto out;
    }
    json_object_foreach(entry, k, v) {
        if (json_object_get(base, k) != NULL)
            continue;
        json_t *t = json_copy(base);
        json_object_set(t, k, v);
        if (valid(t))
            continue;
        line = k8s_doc_key_line(doc, entry, k);
        if (strcmp(k, "rules") == 0 && json_is_array(v))
            line = rules_line(doc, base, v, line);
        break;
    }
out:
    json_decref(base);
    return line;
}

int
local_config_policies(const char *data, size_t len, const char *name, struct policy_set **out,
                      char *err, size_t errlen)
{
    struct k8s_docs docs = {0};
    struct k8s_diags d = {0};
    char why[512];
    int rc = 0;

    *out = policy_set_new();
    if (k8s_yaml_parse(name, data, len, &docs, &d) < 0) {
        if (d.n > 0)
            snprintf(err, errlen, "%s:%d: %s", name, d.v[0].line, d.v[0].msg);
        else
            snprintf(err, errlen, "%s: YAML error", name);
        rc = -MESH_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < docs.n; i++) {
        const struct k8s_doc *doc = &docs.v[i];
        json_t *list = json_object_get(doc->json, "policies");
        size_t j;
        json_t *item;
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list)) {
            snprintf(err, errlen, "%s:%d: policies: expected a list", name,
                     k8s_doc_line_of(doc, list));
            rc = -MESH_ECONFIG;
            goto out;
        }
        json_array_foreach(list, j, item) {
            struct policy *p;
            json_t *ours = local_policy_from_istio(item);
            int r = policy_from_json(ours, &p, why, sizeof(why));
            json_decref(ours);
            if (r < 0) {
                snprintf(err, errlen, "%s:%d: policies[%zu]: %s", name, error_line(doc, item), j,
                         why);
                rc = -MESH_ECONFIG;
                goto out;
            }
            policy_set_add(*out, p); /* takes our reference */
        }
    }
out:
    if (rc < 0) {
        policy_set_unref(*out);
        *out = NULL;
    }
    k8s_docs_free(&docs);
    k8s_diags_clear(&d);
    return rc;
}

int
local_config_read(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -MESH_ECONFIG;
    }
    *data = xmalloc(CONFIG_MAX_BYTES + 1);
    *len = fread(*data, 1, CONFIG_MAX_BYTES + 1, f);
    fclose(f);
    if (*len > CONFIG_MAX_BYTES) {
        free(*data);
        *data = NULL;
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        return -MESH_ECONFIG;
    }
    (*data)[*len] = '\0';
    return 0;
}

int
local_config_load_policies(const char *path, struct policy_set **out, char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = local_config_read(path, &data, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = local_config_policies(data, len, path, out, err, errlen);
    free(data);
    return rc;
}
