/*
 * local_waypoint.c - the waypoint's part of a local config file: `routes:` (each an
 * amesh.waypoint.v1.Route) and `waypointPolicies:` (each an amesh.waypoint.v1.Policy), in
 * proto3 JSON. Each entry is encoded to the bytes meshd would push (lib/pbjson) and checked
 * by the same decoder (route_decode, l7pol_decode), so a file is refused exactly where a
 * push would be NACKed, with the entry's line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "config/local_config.h"
#include "k8s/k8s.h"
#include "l7policy/l7policy.h"
#include "pbjson/pbjson.h"
#include "route/route.h"
#include "waypoint.pb-c.h"

/* Encodes every entry of |key| in |doc| as |desc| and hands it to |take|. */
static int
each(const char *name, const struct k8s_doc *doc, const char *key,
     const ProtobufCMessageDescriptor *desc,
     int (*take)(void *arg, const uint8_t *b, size_t n, char *why, size_t whylen), void *arg,
     char *err, size_t errlen)
{
    json_t *list = json_object_get(doc->json, key), *item;
    char why[512];
    size_t i;

    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s:%d: %s: expected a list", name, k8s_doc_line_of(doc, list), key);
        return -MESH_ECONFIG;
    }
    json_array_foreach(list, i, item) {
        uint8_t *b;
        size_t n;
        int rc = pbjson_encode(desc, item, &b, &n, why, sizeof(why));
        if (rc == 0) {
            rc = take(arg, b, n, why, sizeof(why));
            free(b);
        }
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: %s[%zu]: %s", name, k8s_doc_line_of(doc, item), key, i,
                     why);
            return rc;
        }
    }
    return 0;
}

struct acc {
    struct route_update *ru;
    uint8_t **bytes;
    size_t n_ru;
    struct l7pol **pols;
    size_t n_pols;
};

static int
take_route(void *arg, const uint8_t *b, size_t n, char *why, size_t whylen)
{
    struct acc *a = arg;
    struct route_table *t;
    int rc = route_decode(b, n, &t, why, whylen);
    if (rc < 0)
        return rc;
    a->ru = xrealloc(a->ru, (a->n_ru + 1) * sizeof(*a->ru));
    a->bytes = xrealloc(a->bytes, (a->n_ru + 1) * sizeof(*a->bytes));
    uint8_t *copy = xmalloc(n ? n : 1);
    memcpy(copy, b, n);
    a->bytes[a->n_ru] = copy;
    a->ru[a->n_ru++] = (struct route_update){xstrdup(route_table_key(t)), copy, n};
    route_table_unref(t);
    return 0;
}

static int
take_policy(void *arg, const uint8_t *b, size_t n, char *why, size_t whylen)
{
    struct acc *a = arg;
    struct l7pol *p;
    int rc = l7pol_decode(b, n, &p, why, whylen);
    if (rc < 0)
        return rc;
    a->pols = xrealloc(a->pols, (a->n_pols + 1) * sizeof(*a->pols));
    a->pols[a->n_pols++] = p;
    return 0;
}

int
local_config_waypoint(const char *data, size_t len, const char *name, struct route_store *routes,
                      struct l7pol_set **pols, char *err, size_t errlen)
{
    struct k8s_docs docs = {0};
    struct k8s_diags d = {0};
    struct acc a = {0};
    int rc = 0;

    *pols = NULL;
    if (k8s_yaml_parse(name, data, len, &docs, &d) < 0) {
        if (d.n > 0)
            snprintf(err, errlen, "%s:%d: %s", name, d.v[0].line, d.v[0].msg);
        else
            snprintf(err, errlen, "%s: YAML error", name);
        rc = -MESH_ECONFIG;
        goto out;
    }
    for (size_t i = 0; i < docs.n && rc == 0; i++) {
        rc = each(name, &docs.v[i], "routes", &amesh__waypoint__v1__route__descriptor, take_route,
                  &a, err, errlen);
        if (rc == 0)
            rc = each(name, &docs.v[i], "waypointPolicies", &amesh__waypoint__v1__policy__descriptor,
                      take_policy, &a, err, errlen);
    }
    if (rc == 0 && a.n_ru > 0 && (rc = route_store_apply(routes, a.ru, a.n_ru, err, errlen)) < 0)
        rc = -MESH_ECONFIG;
    if (rc == 0)
        *pols = l7pol_set_build(a.pols, a.n_pols);
out:
    for (size_t i = 0; i < a.n_ru; i++) {
        free((char *)a.ru[i].name);
        free(a.bytes[i]);
    }
    free(a.ru);
    free(a.bytes);
    for (size_t i = 0; i < a.n_pols; i++)
        l7pol_unref(a.pols[i]);
    free(a.pols);
    k8s_docs_free(&docs);
    k8s_diags_clear(&d);
    return rc;
}

int
local_config_load_waypoint(const char *path, struct route_store *routes, struct l7pol_set **pols,
                           char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = local_config_read(path, &data, &len, err, errlen);
    if (rc < 0)
        return rc;
    rc = local_config_waypoint(data, len, path, routes, pols, err, errlen);
    free(data);
    return rc;
}
