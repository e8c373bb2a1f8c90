/*
 * xds_client.c - ztunnel's delta ADS client state; see xds_client.h.
 *
 * The client keeps, per watched type, the version of every resource it
 * accepted. That set survives reconnects and becomes the next stream's
 * initial_resource_versions, so the server can skip what did not change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "xds/xds_client.h"
#include "xds/xds_internal.h"

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest pb_request;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse pb_response;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry
    pb_initial;

/*
 * ztunnel sends error_detail with the default code (0) and the rejects as
 * "<name>: <reason>" joined by "; "; we do the same so istiod sees the same.
 */
#define NACK_CODE       0
#define NACK_MAX_LEN    16384 /* bytes of joined reject messages, then a count */
#define REASON_MAX_LEN  1024
#define NAME_IN_MSG_MAX 4096 /* longer names are cut (and cannot be matched by the server) */

struct cli_entry {
    char *version;
    char name[];
};

struct cli_type {
    char *type_url;
    struct xds_map retained; /* name -> struct cli_entry */
    bool acked;              /* a response of this type was ACKed on this stream */
};

struct xds_client {
    char *node_id;
    struct xds_kv *meta; /* strings owned */
    size_t n_meta;
    struct cli_type *types;
    size_t n_types;
    size_t max_resources;
    size_t max_name_len;
    xds_apply_fn on_apply;
    xds_remove_fn on_remove;
    xds_batch_fn on_batch_begin;
    xds_batch_fn on_batch_end;
    void *arg;
    char *last_error;
    struct xds_client_stats stats;
};

/* The rejects of one response, joined as ztunnel does. */
struct rejects {
    char *msg;
    size_t len;
    size_t n;       /* rejects */
    size_t dropped; /* rejects past NACK_MAX_LEN */
};

static const char *const default_types[] = {XDS_TYPE_ADDRESS, XDS_TYPE_AUTHORIZATION};

char *
xds_node_id(const char *type, const char *ip, const char *pod, const char *ns)
{
    return xasprintf("%s~%s~%s.%s~%s.svc.cluster.local", type, ip, pod, ns, ns);
}

char *
xds_node_id_ztunnel(const char *ip, const char *pod, const char *ns)
{
    return xds_node_id("ztunnel", ip, pod, ns);
}

struct xds_client *
xds_client_new(const struct xds_client_config *cfg)
{
    if (cfg == NULL || cfg->node_id == NULL || cfg->on_apply == NULL)
        return NULL;
    struct xds_client *c = xcalloc(1, sizeof(*c));
    const char *const *types = cfg->type_urls ? cfg->type_urls : default_types;

    c->node_id = xstrdup(cfg->node_id);
    c->n_meta = cfg->n_meta;
    c->meta = xcalloc(c->n_meta, sizeof(*c->meta));
    for (size_t i = 0; i < c->n_meta; i++) {
        c->meta[i].key = xstrdup(cfg->meta[i].key);
        c->meta[i].value = xstrdup(cfg->meta[i].value ? cfg->meta[i].value : "");
    }
    c->n_types = cfg->type_urls ? cfg->n_type_urls : ARRAY_LEN(default_types);
    c->types = xcalloc(c->n_types, sizeof(*c->types));
    for (size_t i = 0; i < c->n_types; i++) {
        c->types[i].type_url = xstrdup(types[i]);
        xds_map_init(&c->types[i].retained);
    }
    c->max_resources = cfg->max_resources ? cfg->max_resources : XDS_MAX_RESOURCES_DEFAULT;
    c->max_name_len = cfg->max_name_len ? cfg->max_name_len : XDS_MAX_NAME_LEN_DEFAULT;
    c->on_apply = cfg->on_apply;
    c->on_remove = cfg->on_remove;
    c->on_batch_begin = cfg->on_batch_begin;
    c->on_batch_end = cfg->on_batch_end;
    c->arg = cfg->arg;
    return c;
}

static void
entry_free(struct cli_entry *e)
{
    if (e == NULL)
        return;
    free(e->version);
    free(e);
}

void
xds_client_free(struct xds_client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_types; i++) {
        const char *key;
        void *val;
        size_t k = 0;
        while (xds_map_next(&c->types[i].retained, &k, &key, &val))
            entry_free(val);
        xds_map_cleanup(&c->types[i].retained);
        free(c->types[i].type_url);
    }
    free(c->types);
    for (size_t i = 0; i < c->n_meta; i++) {
        free((char *)c->meta[i].key);
        free((char *)c->meta[i].value);
    }
    free(c->meta);
    free(c->node_id);
    free(c->last_error);
    free(c);
}

static struct cli_type *
type_find(const struct xds_client *c, const char *type_url)
{
    for (size_t i = 0; i < c->n_types; i++)
        if (strcmp(c->types[i].type_url, type_url) == 0)
            return &c->types[i];
    return NULL;
}

static void
pack_request(const pb_request *req, struct xds_out *out, bool nack)
{
    size_t len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(req);
    uint8_t *data = xmalloc(len);

    envoy__service__discovery__v3__delta_discovery_request__pack(req, data);
    xds_out_add(out, data, len)->nack = nack;
}

static int
cmp_initial(const void *a, const void *b)
{
    const pb_initial *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* One initial request; all strings borrowed from |c|. */
static void
initial_request(const struct xds_client *c, const struct cli_type *t, struct xds_out *out)
{
    pb_request req = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Envoy__Service__Discovery__V3__Node node = ENVOY__SERVICE__DISCOVERY__V3__NODE__INIT;
    Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
    size_t n_meta = c->n_meta, n_init = t->retained.n, i = 0, k = 0;
    Google__Protobuf__Struct__FieldsEntry *fe = xcalloc(n_meta, sizeof(*fe));
    Google__Protobuf__Struct__FieldsEntry **fp = xcalloc(n_meta, sizeof(*fp));
    Google__Protobuf__Value *fv = xcalloc(n_meta, sizeof(*fv));
    pb_initial *ie = xcalloc(n_init, sizeof(*ie));
    pb_initial **ip = xcalloc(n_init, sizeof(*ip));
    const char *key;
    void *val;

    for (size_t m = 0; m < n_meta; m++) {
        google__protobuf__value__init(&fv[m]);
        fv[m].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        fv[m].string_value = (char *)c->meta[m].value;
        google__protobuf__struct__fields_entry__init(&fe[m]);
        fe[m].key = (char *)c->meta[m].key;
        fe[m].value = &fv[m];
        fp[m] = &fe[m];
    }
    md.fields = fp;
    md.n_fields = n_meta;
    node.id = c->node_id;
    node.metadata = &md;

    while (xds_map_next(&t->retained, &i, &key, &val)) {
        struct cli_entry *e = val;
        envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
            &ie[k]);
        ie[k].key = e->name;
        ie[k].value = e->version;
        ip[k] = &ie[k];
        k++;
    }
    /* Sorted, so the same state always packs to the same bytes. */
    if (n_init > 1)
        qsort(ip, n_init, sizeof(*ip), cmp_initial);

    /* Empty subscribe lists: the wildcard subscription ztunnel sends. */
    req.node = &node;
    req.type_url = t->type_url;
    req.initial_resource_versions = ip;
    req.n_initial_resource_versions = n_init;
    pack_request(&req, out, false);

    free(ip);
    free(ie);
    free(fv);
    free(fp);
    free(fe);
}

void
xds_client_start(struct xds_client *c, struct xds_out *out)
{
    c->stats.connects++;
    for (size_t i = 0; i < c->n_types; i++) {
        c->types[i].acked = false;
        initial_request(c, &c->types[i], out);
    }
}

/*
 * Adds "<name>: <reason>". Names are printed whole (up to NAME_IN_MSG_MAX):
 * the server matches them against what it sent to learn which were rejected.
 */
static void
reject(struct rejects *r, const char *name, const char *reason)
{
    r->n++;
    if (r->len >= NACK_MAX_LEN) {
        r->dropped++;
        return;
    }
    char *piece = xasprintf("%s%.*s: %.*s", r->len ? "; " : "", NAME_IN_MSG_MAX, name,
                            REASON_MAX_LEN, reason);
    size_t n = strlen(piece);
    r->msg = xrealloc(r->msg, r->len + n + 1);
    memcpy(r->msg + r->len, piece, n + 1);
    r->len += n;
    free(piece);
}

/* Returns the reason |res| is refused before reaching the caller, or NULL. */
static const char *
precheck(const struct xds_client *c, const Envoy__Service__Discovery__V3__Resource *res)
{
    if (strlen(res->name) > c->max_name_len)
        return "resource name too long";
    if (strlen(res->version) > XDS_MAX_VERSION_LEN)
        return "resource version too long";
    if (res->resource == NULL)
        return "XDS payload without resource";
    return NULL;
}

static void
apply_one(struct xds_client *c, struct cli_type *t,
          const Envoy__Service__Discovery__V3__Resource *res, struct rejects *rj)
{
    const char *err = precheck(c, res);

    if (err == NULL)
        err = c->on_apply(c->arg, t->type_url, res->name, res->version, res->resource->value.data,
                          res->resource->value.len);
    if (err != NULL) {
        reject(rj, res->name, err);
        c->stats.rejected++;
        return;
    }
    struct cli_entry *e = xds_map_get(&t->retained, res->name);
    if (e == NULL) {
        size_t len = strlen(res->name);
        e = xcalloc(1, sizeof(*e) + len + 1);
        memcpy(e->name, res->name, len + 1);
        xds_map_put(&t->retained, e->name, e);
    }
    free(e->version);
    e->version = xstrdup(res->version);
    c->stats.applied++;
}

static void
remove_one(struct xds_client *c, struct cli_type *t, const char *name, struct rejects *rj)
{
    const char *err = NULL;

    if (strlen(name) > c->max_name_len)
        err = "resource name too long";
    else if (c->on_remove != NULL)
        err = c->on_remove(c->arg, t->type_url, name);
    if (err != NULL) {
        reject(rj, name, err);
        c->stats.rejected++;
        return;
    }
    entry_free(xds_map_del(&t->retained, name));
    c->stats.removed++;
}

static void
apply_response(struct xds_client *c, struct cli_type *t, const pb_response *resp,
               struct rejects *rj)
{
    if (resp->n_resources > c->max_resources ||
        resp->n_removed_resources > c->max_resources - resp->n_resources) {
        char why[96];
        snprintf(why, sizeof(why), "response with %zu resources and %zu removals, over %zu",
                 resp->n_resources, resp->n_removed_resources, c->max_resources);
        reject(rj, "*", why);
        return;
    }
    if (c->on_batch_begin != NULL)
        c->on_batch_begin(c->arg, t->type_url);
    for (size_t i = 0; i < resp->n_resources; i++)
        apply_one(c, t, resp->resources[i], rj);
    for (size_t i = 0; i < resp->n_removed_resources; i++)
        remove_one(c, t, resp->removed_resources[i], rj);
    if (c->on_batch_end != NULL)
        c->on_batch_end(c->arg, t->type_url);
}

int
xds_client_on_response(struct xds_client *c, const uint8_t *msg, size_t len, struct xds_out *out)
{
    char why[PB_ERR_MAX];
    pb_response *resp =
        pb_unpack_checked(&envoy__service__discovery__v3__delta_discovery_response__descriptor, msg,
                          len, XDS_MAX_RESPONSE_BYTES, why, sizeof(why));
    pb_request ack = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Envoy__Service__Discovery__V3__Status status = ENVOY__SERVICE__DISCOVERY__V3__STATUS__INIT;
    struct rejects rj = {0};

    if (resp == NULL) {
        /* No nonce or type to NACK: the stream ends (the caller reconnects). */
        free(c->last_error);
        c->last_error = xasprintf("response refused: %s", why);
        return -MESH_EPROTO;
    }
    c->stats.responses++;
    struct cli_type *t = type_find(c, resp->type_url);
    if (t != NULL)
        apply_response(c, t, resp, &rj);
    else
        c->stats.unknown_types++; /* ztunnel ACKs these too, ignoring them */

    ack.type_url = resp->type_url;
    ack.response_nonce = resp->nonce;
    if (rj.n > 0) {
        if (rj.dropped > 0) {
            char *more = xasprintf("%s; ... (%zu more)", rj.msg, rj.dropped);
            free(rj.msg);
            rj.msg = more;
        }
        status.code = NACK_CODE;
        status.message = rj.msg;
        ack.error_detail = &status;
        free(c->last_error);
        c->last_error = xstrdup(rj.msg);
        c->stats.nacks++;
    } else {
        if (t != NULL)
            t->acked = true;
        c->stats.acks++;
    }
    pack_request(&ack, out, rj.n > 0);
    free(rj.msg);
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(resp, NULL);
    return rj.n > 0 ? 1 : 0;
}

const char *
xds_client_last_error(const struct xds_client *c)
{
    return c->last_error;
}

bool
xds_client_ready(const struct xds_client *c)
{
    for (size_t i = 0; i < c->n_types; i++)
        if (!c->types[i].acked)
            return false;
    return true;
}

const char *
xds_client_version(const struct xds_client *c, const char *type_url, const char *name)
{
    const struct cli_type *t = type_find(c, type_url);
    const struct cli_entry *e = t ? xds_map_get(&t->retained, name) : NULL;

    return e ? e->version : NULL;
}

size_t
xds_client_count(const struct xds_client *c, const char *type_url)
{
    const struct cli_type *t = type_find(c, type_url);

    return t ? t->retained.n : 0;
}

const struct xds_client_stats *
xds_client_stats(const struct xds_client *c)
{
    return &c->stats;
}
