/*
 * kube_cache.c - the reflector's view of one kind, keyed by namespace/name.
 * It holds references to the objects the sink was given (no copies), so a
 * relist can report each object that vanished with its last state, as
 * client-go's DeltaFIFO does with DeletedFinalStateUnknown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube_proto.h"

void
kube_cache_init(struct kube_cache *c)
{
    c->objs = json_object();
    c->seen = json_object();
}

void
kube_cache_free(struct kube_cache *c)
{
    json_decref(c->objs);
    json_decref(c->seen);
    c->objs = c->seen = NULL;
}

bool
kube_obj_key(const json_t *obj, char key[KUBE_KEY_MAX])
{
    json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    if (name == NULL || *name == '\0' || strlen(name) > 253 || (ns != NULL && strlen(ns) > 253))
        return false;
    if (ns != NULL && *ns != '\0')
        snprintf(key, KUBE_KEY_MAX, "%s/%s", ns, name);
    else
        snprintf(key, KUBE_KEY_MAX, "%s", name);
    return true;
}

void
kube_cache_put(struct kube_cache *c, const char *key, json_t *obj)
{
    json_object_set(c->objs, key, obj);
}

json_t *
kube_cache_take(struct kube_cache *c, const char *key)
{
    json_t *o = json_object_get(c->objs, key);
    if (o == NULL)
        return NULL;
    json_incref(o);
    json_object_del(c->objs, key);
    return o;
}

void
kube_cache_list_begin(struct kube_cache *c)
{
    json_object_clear(c->seen);
}

void
kube_cache_mark(struct kube_cache *c, const char *key)
{
    json_object_set_new(c->seen, key, json_null());
}

size_t
kube_cache_sweep(struct kube_cache *c, json_t ***out)
{
    const char *key;
    json_t *v;
    void *tmp;
    size_t n = 0, cap = 0;
    json_t **gone = NULL;
    json_object_foreach_safe(c->objs, tmp, key, v) {
        if (json_object_get(c->seen, key) != NULL)
            continue;
        if (n == cap) {
            cap = cap > 0 ? cap * 2 : 16;
            gone = xrealloc(gone, cap * sizeof(*gone));
        }
        gone[n++] = json_incref(v);
        json_object_del(c->objs, key);
    }
    json_object_clear(c->seen);
    *out = gone;
    return n;
}

size_t
kube_cache_size(const struct kube_cache *c)
{
    return json_object_size(c->objs);
}
