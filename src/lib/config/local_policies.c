/*
 * local_policies.c - the `policies:` of ztunnel's local config: each entry is
 * an istio.security.Authorization in its proto3 JSON form (as lib/policy reads
 * it), e.g. {name, namespace, scope: NAMESPACE, action: DENY, rules: [...]}.
 *
 * The file is read as YAML into JSON values (lib/k8s's reader) so the policy
 * module sees exactly the JSON it would get from any other source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "config/local_config.h"
#include "k8s/k8s.h"
#include "policy/policy.h"

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
        char *s = d.n ? k8s_diag_str(&d.v[0]) : NULL;
        snprintf(err, errlen, "%s", s ? s : "YAML error");
        free(s);
        rc = -MESH_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < docs.n; i++) {
        json_t *list = json_object_get(docs.v[i].json, "policies");
        size_t j;
        json_t *item;
        if (list == NULL || json_is_null(list))
            continue;
        if (!json_is_array(list)) {
            snprintf(err, errlen, "%s: policies: expected a list", name);
            rc = -MESH_ECONFIG;
            goto out;
        }
        json_array_foreach(list, j, item) {
            struct policy *p;
            if (policy_from_json(item, &p, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "%s: policies[%zu]: %s", name, j, why);
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
local_config_load_policies(const char *path, struct policy_set **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *data = NULL;
    size_t len = 0;
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -MESH_ECONFIG;
    }
    data = xmalloc(CONFIG_MAX_BYTES + 1);
    len = fread(data, 1, CONFIG_MAX_BYTES + 1, f);
    fclose(f);
    if (len > CONFIG_MAX_BYTES) {
        free(data);
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        return -MESH_ECONFIG;
    }
    int rc = local_config_policies(data, len, path, out, err, errlen);
    free(data);
    return rc;
}
