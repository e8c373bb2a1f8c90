/*
 * cni_chain.c - our entry in the node's primary CNI configuration, as
 * mesh-cni's installer keeps it (see cni.h). Only the plugins list changes:
 * every other field, and the order of the keys, stay as the primary
 * plugin's installer wrote them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cni/cni.h"

static enum cni_chain_rc __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CNI_CHAIN_ERROR;
}

/* fail() for the checks that answer true or false. */
#define REFUSE(...) (fail(err, errlen, __VA_ARGS__), false)

static json_t *
load(const char *buf, size_t n, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root;

    if (n > CNI_CONFFILE_MAX) {
        fail(err, errlen, "larger than %d bytes", CNI_CONFFILE_MAX);
        return NULL;
    }
    if (!cni_json_depth_ok(buf, n, CNI_DEPTH_MAX)) {
        fail(err, errlen, "nested deeper than %d", CNI_DEPTH_MAX);
        return NULL;
    }
    root = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        fail(err, errlen, "not JSON: %s (line %d)", je.text, je.line);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        fail(err, errlen, "not a JSON object");
        return NULL;
    }
    return root;
}

/* cniVersion (one we chain from, when |need_version|) and name. */
static bool
check_head(json_t *o, bool need_version, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "cniVersion"), *name = json_object_get(o, "name");

    if (!json_is_string(v))
        return REFUSE("cniVersion missing or not a string");
    if (need_version && !cni_version_supported(json_string_value(v)))
        return REFUSE("cniVersion \"%.32s\": amesh-cni chains after 0.3.0, 0.3.1, 0.4.0 or 1.0.0",
                      json_string_value(v));
    if (!json_is_string(name))
        return REFUSE("name missing or not a string");
    return true;
}

static bool
check_list(json_t *root, bool need_version, char *err, size_t errlen)
{
    json_t *plugins = json_object_get(root, "plugins"), *p;
    size_t i;

    if (!check_head(root, need_version, err, errlen))
        return false;
    if (!json_is_array(plugins))
        return REFUSE("plugins missing or not a list");
    if (json_array_size(plugins) > CNI_PLUGINS_MAX)
        return REFUSE("more than %d plugins", CNI_PLUGINS_MAX);
    json_array_foreach(plugins, i, p)
    {
        if (!json_is_object(p) || !json_is_string(json_object_get(p, "type")))
            return REFUSE("plugins[%zu] is not an object with a string type", i);
    }
    return true;
}

static bool
is_ours(json_t *p)
{
    const char *t = json_string_value(json_object_get(p, "type"));
    return t != NULL && strcmp(t, CNI_PLUGIN_TYPE) == 0;
}

/* A single-plugin .conf as a one-plugin .conflist; NULL with |err| if it is not one. */
static json_t *
conf_to_list(json_t *conf, char *err, size_t errlen)
{
    json_t *list, *plugin, *plugins;

    if (!check_head(conf, true, err, errlen))
        return NULL;
    if (json_object_get(conf, "plugins") != NULL) {
        fail(err, errlen, "a .conf with a plugins list (a .conflist under the wrong name?)");
        return NULL;
    }
    if (!json_is_string(json_object_get(conf, "type"))) {
        fail(err, errlen, "type missing or not a string");
        return NULL;
    }
    list = json_object();
    json_object_set(list, "cniVersion", json_object_get(conf, "cniVersion"));
    json_object_set(list, "name", json_object_get(conf, "name"));
    plugin = json_deep_copy(conf);
    json_object_del(plugin, "cniVersion");
    json_object_del(plugin, "name");
    plugins = json_array();
    json_array_append_new(plugins, plugin);
    json_object_set_new(list, "plugins", plugins);
    return list;
}

static json_t *
entry_json(const struct cni_chain_entry *e)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(CNI_PLUGIN_TYPE));
    json_object_set_new(o, "agentSocket", json_string(e->socket));
    if (e->log_level != NULL)
        json_object_set_new(o, "logLevel", json_string(e->log_level));
    if (e->n_exclude > 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < e->n_exclude; i++)
            json_array_append_new(a, json_string(e->exclude[i]));
        json_object_set_new(o, "excludeNamespaces", a);
    }
    return o;
}

/* Drops our entries from |plugins|; how many there were. */
static size_t
drop_ours(json_t *plugins)
{
    size_t n = 0;

    for (size_t i = 0; i < json_array_size(plugins);) {
        if (is_ours(json_array_get(plugins, i))) {
            json_array_remove(plugins, i);
            n++;
        } else
            i++;
    }
    return n;
}

static enum cni_chain_rc
dump(json_t *root, char **out, size_t *outlen, char *err, size_t errlen)
{
    char *s = json_dumps(root, JSON_INDENT(2));
    size_t len;

    if (s == NULL)
        return fail(err, errlen, "cannot encode the new configuration");
    len = strlen(s);
    *out = xmalloc(len + 2);
    memcpy(*out, s, len);
    (*out)[len++] = '\n';
    (*out)[len] = '\0';
    *outlen = len;
    free(s);
    return CNI_CHAIN_REWRITTEN;
}

enum cni_chain_rc
cni_chain_insert(const char *buf, size_t n, bool is_list, const struct cni_chain_entry *e,
                 char **out, size_t *outlen, char *err, size_t errlen)
{
    json_t *root = load(buf, n, err, errlen), *plugins, *want;
    enum cni_chain_rc rc;

    *out = NULL;
    *outlen = 0;
    if (root == NULL)
        return CNI_CHAIN_ERROR;
    if (!is_list) {
        json_t *list = conf_to_list(root, err, errlen);
        json_decref(root);
        if ((root = list) == NULL)
            return CNI_CHAIN_ERROR;
    } else if (!check_list(root, true, err, errlen)) {
        json_decref(root);
        return CNI_CHAIN_ERROR;
    }
    plugins = json_object_get(root, "plugins");
    want = entry_json(e);
    size_t np = json_array_size(plugins);
    json_t *last = np > 0 ? json_array_get(plugins, np - 1) : NULL;
    if (is_list && last != NULL && is_ours(last) && json_equal(last, want)) {
        size_t ours = 0;
        for (size_t i = 0; i < np; i++)
            ours += is_ours(json_array_get(plugins, i));
        if (ours == 1) {
            json_decref(want);
            json_decref(root);
            return CNI_CHAIN_UNCHANGED;
        }
    }
    drop_ours(plugins);
    if (json_array_size(plugins) == 0) {
        json_decref(want);
        json_decref(root);
        return fail(err, errlen, "no plugin other than " CNI_PLUGIN_TYPE " to chain after");
    }
    if (json_array_size(plugins) >= CNI_PLUGINS_MAX) {
        json_decref(want);
        json_decref(root);
        return fail(err, errlen, "more than %d plugins", CNI_PLUGINS_MAX);
    }
    json_array_append_new(plugins, want);
    rc = dump(root, out, outlen, err, errlen);
    json_decref(root);
    return rc;
}

enum cni_chain_rc
cni_chain_remove(const char *buf, size_t n, char **out, size_t *outlen, char *err, size_t errlen)
{
    json_t *root = load(buf, n, err, errlen);
    enum cni_chain_rc rc = CNI_CHAIN_UNCHANGED;

    *out = NULL;
    *outlen = 0;
    if (root == NULL)
        return CNI_CHAIN_ERROR;
    /* Taking ourselves out needs no version we speak: the primary may have moved on. */
    if (!check_list(root, false, err, errlen)) {
        json_decref(root);
        return CNI_CHAIN_ERROR;
    }
    if (drop_ours(json_object_get(root, "plugins")) > 0)
        rc = dump(root, out, outlen, err, errlen);
    json_decref(root);
    return rc;
}
