/*
 * ads_mux.c - lib/xds's client with one handler per type URL (ads.h): the
 * client's callbacks name the type, this file finds its handler.
 */
#include <stdlib.h>
#include <string.h>

#include "ads/ads.h"
#include "base/base.h"

struct ads_mux {
    struct ads_type *types;
    size_t n_types;
    struct xds_client *client;
    void (*on_response)(void *arg, const char *type_url, size_t len);
    void *arg;
    size_t pending_len; /* the response being handled */
};

static const struct ads_type *
type_of(const struct ads_mux *m, const char *type_url)
{
    for (size_t i = 0; i < m->n_types; i++)
        if (strcmp(m->types[i].type_url, type_url) == 0)
            return &m->types[i];
    return NULL;
}

static const char *
on_apply(void *arg, const char *type_url, const char *name, const char *version,
         const uint8_t *bytes, size_t len)
{
    const struct ads_type *t = type_of(arg, type_url);
    (void)version;
    /* The client only calls for the types it was given, which are ours. */
    return t != NULL ? t->apply(t->arg, name, bytes, len) : "type not registered";
}

static const char *
on_remove(void *arg, const char *type_url, const char *name)
{
    const struct ads_type *t = type_of(arg, type_url);
    if (t == NULL)
        return "type not registered";
    return t->remove != NULL ? t->remove(t->arg, name) : NULL;
}

static void
on_batch_end(void *arg, const char *type_url)
{
    struct ads_mux *m = arg;
    const struct ads_type *t = type_of(m, type_url);
    if (t == NULL)
        return;
    if (m->on_response != NULL)
        m->on_response(m->arg, type_url, m->pending_len);
    if (t->commit != NULL)
        t->commit(t->arg);
}

struct ads_mux *
ads_mux_new(const struct ads_mux_config *cfg)
{
    if (cfg->node_id == NULL || cfg->n_types == 0 || cfg->n_types > XDS_MAX_TYPES_DEFAULT)
        return NULL;
    for (size_t i = 0; i < cfg->n_types; i++) {
        if (cfg->types[i].type_url == NULL || cfg->types[i].apply == NULL)
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->types[i].type_url, cfg->types[j].type_url) == 0)
                return NULL;
    }
    struct ads_mux *m = xcalloc(1, sizeof(*m));
    const char **urls = xcalloc(cfg->n_types, sizeof(*urls));
    m->types = xcalloc(cfg->n_types, sizeof(*m->types));
    m->n_types = cfg->n_types;
    for (size_t i = 0; i < cfg->n_types; i++) {
        m->types[i] = cfg->types[i];
        m->types[i].type_url = xstrdup(cfg->types[i].type_url);
        urls[i] = m->types[i].type_url;
    }
    m->on_response = cfg->on_response;
    m->arg = cfg->arg;
    struct xds_client_config xc = {
        .node_id = cfg->node_id,
        .meta = cfg->meta,
        .n_meta = cfg->n_meta,
        .type_urls = urls,
        .n_type_urls = cfg->n_types,
        .on_apply = on_apply,
        .on_remove = on_remove,
        .on_batch_end = on_batch_end,
        .arg = m,
    };
    m->client = xds_client_new(&xc);
    free(urls);
    if (m->client == NULL) {
        ads_mux_free(m);
        return NULL;
    }
    return m;
}

void
ads_mux_free(struct ads_mux *m)
{
    if (m == NULL)
        return;
    xds_client_free(m->client);
    for (size_t i = 0; i < m->n_types; i++)
        free((char *)m->types[i].type_url);
    free(m->types);
    free(m);
}

void
ads_mux_start(struct ads_mux *m, struct xds_out *out)
{
    xds_client_start(m->client, out);
}

int
ads_mux_on_response(struct ads_mux *m, const uint8_t *msg, size_t len, struct xds_out *out)
{
    m->pending_len = len;
    int rc = xds_client_on_response(m->client, msg, len, out);
    m->pending_len = 0;
    return rc;
}

const struct xds_client *
ads_mux_client(const struct ads_mux *m)
{
    return m->client;
}

size_t
ads_mux_retained(const struct ads_mux *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_types; i++)
        n += xds_client_count(m->client, m->types[i].type_url);
    return n;
}
