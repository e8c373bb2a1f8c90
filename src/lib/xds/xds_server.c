/*
 * xds_server.c - one delta ADS stream as the control plane sees it: requests
 * (node, subscriptions, initial versions, ACK/NACK), snapshots and reports.
 * Building pushes and settling their answers is xds_server_push.c; the rules
 * are listed in xds_server.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "xds/xds_internal.h"
#include "xds/xds_server.h"

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest pb_request;

#define META_MAX_FIELDS    64
#define META_MAX_KEY_LEN   256
#define META_MAX_VALUE_LEN 4096

static const char *const default_types[] = {XDS_TYPE_ADDRESS, XDS_TYPE_AUTHORIZATION};

uint64_t
srv_now(const struct xds_server_stream *s)
{
    return s->now_ms ? s->now_ms(s->arg) : clock_mono_ms();
}

void
srv_emit(const struct xds_server_stream *s, const struct xds_server_event *ev)
{
    if (s->on_event != NULL)
        s->on_event(s->arg, ev);
}

void
srv_entry_free(struct srv_entry *e)
{
    if (e == NULL)
        return;
    free(e->held);
    free(e->nacked);
    free(e);
}

struct xds_server_stream *
xds_server_stream_new(const struct xds_server_config *cfg)
{
    static const struct xds_server_config defaults;
    struct xds_server_stream *s = xcalloc(1, sizeof(*s));

    if (cfg == NULL)
        cfg = &defaults;
    const char *const *types = cfg->type_urls ? cfg->type_urls : default_types;
    s->n_served = cfg->type_urls ? cfg->n_type_urls : ARRAY_LEN(default_types);
    s->served = xcalloc(s->n_served, sizeof(*s->served));
    for (size_t i = 0; i < s->n_served; i++)
        s->served[i] = xstrdup(types[i]);
    s->n_own = cfg->n_own_type_urls;
    s->own = xcalloc(s->n_own + 1, sizeof(*s->own));
    for (size_t i = 0; i < s->n_own; i++)
        s->own[i] = xstrdup(cfg->own_type_urls[i]);
    s->max_types = cfg->max_types ? cfg->max_types : XDS_MAX_TYPES_DEFAULT;
    s->max_names = cfg->max_names ? cfg->max_names : XDS_MAX_NAMES_DEFAULT;
    s->max_name_len = cfg->max_name_len ? cfg->max_name_len : XDS_MAX_NAME_LEN_DEFAULT;
    s->max_response_bytes =
        cfg->max_response_bytes ? cfg->max_response_bytes : XDS_MAX_RESPONSE_DEFAULT;
    s->on_event = cfg->on_event;
    s->arg = cfg->arg;
    s->now_ms = cfg->now_ms;
    s->nonce_tag = xds_random64();
    return s;
}

void
xds_server_stream_free(struct xds_server_stream *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_types; i++)
        srv_type_free(s->types[i]);
    free(s->types);
    for (size_t i = 0; i < s->n_served; i++)
        free(s->served[i]);
    free(s->served);
    for (size_t i = 0; i < s->n_own; i++)
        free(s->own[i]);
    free(s->own);
    xds_snapshot_unref(s->own_snap);
    for (size_t i = 0; i < s->n_meta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].value);
    }
    free(s->meta);
    free(s->node_id);
    xds_snapshot_unref(s->snap);
    free(s);
}

static struct srv_type *
type_find(const struct xds_server_stream *s, const char *type_url)
{
    for (size_t i = 0; i < s->n_types; i++)
        if (strcmp(s->types[i]->type_url, type_url) == 0)
            return s->types[i];
    return NULL;
}

static bool
is_served(const struct xds_server_stream *s, const char *type_url)
{
    for (size_t i = 0; i < s->n_served; i++)
        if (strcmp(s->served[i], type_url) == 0)
            return true;
    return false;
}

static struct srv_type *
type_add(struct xds_server_stream *s, const char *type_url)
{
    struct srv_type *t = xcalloc(1, sizeof(*t));

    t->type_url = xstrdup(type_url);
    t->served = is_served(s, type_url);
    for (size_t i = 0; i < s->n_own && !t->own; i++)
        t->own = strcmp(s->own[i], type_url) == 0;
    xds_map_init(&t->entries);
    s->types = xrealloc(s->types, (s->n_types + 1) * sizeof(*s->types));
    s->types[s->n_types++] = t;
    return t;
}

/* Keeps the string fields of node.metadata, within caps; others are skipped. */
static void
node_keep(struct xds_server_stream *s, const Envoy__Service__Discovery__V3__Node *node)
{
    s->node_id = xstrdup(node->id);
    if (node->metadata == NULL)
        return;
    for (size_t i = 0; i < node->metadata->n_fields && s->n_meta < META_MAX_FIELDS; i++) {
        const Google__Protobuf__Struct__FieldsEntry *f = node->metadata->fields[i];
        const Google__Protobuf__Value *v = f->value;
        if (v == NULL || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            continue;
        if (strlen(f->key) > META_MAX_KEY_LEN || strlen(v->string_value) > META_MAX_VALUE_LEN)
            continue;
        s->meta = xrealloc(s->meta, (s->n_meta + 1) * sizeof(*s->meta));
        s->meta[s->n_meta].key = xstrdup(f->key);
        s->meta[s->n_meta++].value = xstrdup(v->string_value);
    }
}

static bool
names_ok(char *const *v, size_t n, size_t max_names, size_t max_len)
{
    if (n > max_names)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i]) > max_len)
            return false;
    return true;
}

/* Checks every cap before anything changes, so a refused request leaves no trace. */
static int
request_check(const struct xds_server_stream *s, const pb_request *req)
{
    size_t tl = strlen(req->type_url);

    if (s->node_id == NULL && (req->node == NULL || req->node->id[0] == '\0'))
        return -MESH_EPROTO;
    if (s->node_id == NULL && strlen(req->node->id) > XDS_MAX_NODE_ID_LEN)
        return -MESH_ELIMIT;
    if (tl == 0 || tl > XDS_MAX_TYPE_URL_LEN)
        return -MESH_EPROTO;
    if (strlen(req->response_nonce) > XDS_MAX_NONCE_LEN)
        return -MESH_ELIMIT;
    if (!names_ok(req->resource_names_subscribe, req->n_resource_names_subscribe, s->max_names,
                  s->max_name_len) ||
        !names_ok(req->resource_names_unsubscribe, req->n_resource_names_unsubscribe, s->max_names,
                  s->max_name_len) ||
        req->n_initial_resource_versions > s->max_names)
        return -MESH_ELIMIT;
    for (size_t i = 0; i < req->n_initial_resource_versions; i++) {
        const char *k = req->initial_resource_versions[i]->key;
        const char *v = req->initial_resource_versions[i]->value;
        if (strlen(k) > s->max_name_len || strlen(v) > XDS_MAX_VERSION_LEN)
            return -MESH_ELIMIT;
    }
    const struct srv_type *t = type_find(s, req->type_url);
    if (t == NULL && s->n_types >= s->max_types)
        return -MESH_ELIMIT;
    /* Duplicates count twice: a cheap upper bound on the names the type will track. */
    size_t held = t ? srv_type_n_names(t) : 0;
    if (held + req->n_resource_names_subscribe + req->n_initial_resource_versions > s->max_names)
        return -MESH_ELIMIT;
    return 0;
}

struct srv_entry *
srv_entry_get(const struct srv_type *t, const char *name)
{
    return xds_map_get(&t->entries, name);
}

struct srv_entry *
srv_entry_get_or_add(struct srv_type *t, const char *name)
{
    struct srv_entry *e = xds_map_get(&t->entries, name);

    if (e == NULL) {
        size_t len = strlen(name);
        e = xcalloc(1, sizeof(*e) + len + 1);
        memcpy(e->name, name, len + 1);
        if (t->based) {
            size_t k = xds_snapshot_find_in(t->synced, t->base_first, t->base_n, name);
            if (k != SIZE_MAX) {
                e->held = xstrdup(xds_snapshot_at(t->synced, k)->version);
                e->shadows = true;
                t->n_shadows++;
            }
        }
        xds_map_put(&t->entries, e->name, e);
    }
    return e;
}

void
srv_entry_del(struct srv_type *t, struct srv_entry *e)
{
    if (e->shadows)
        t->n_shadows--;
    xds_map_del(&t->entries, e->name);
    srv_entry_free(e);
}

size_t
srv_type_n_names(const struct srv_type *t)
{
    return t->entries.n + (t->based ? t->base_n - t->n_shadows : 0);
}

size_t
srv_type_n_held(const struct srv_type *t)
{
    size_t n = t->based ? t->base_n - t->n_shadows : 0, i = 0;
    const char *key;
    void *val;

    while (xds_map_next(&t->entries, &i, &key, &val))
        n += ((const struct srv_entry *)val)->held != NULL;
    return n;
}

/*
 * Drops every name neither wildcard nor a subscription covers (wildcard just
 * ended): the implicit ones and unsubscribed entries.
 */
static void
forget_unwanted(struct srv_type *t)
{
    struct srv_entry **drop = NULL;
    size_t n = 0, i = 0;
    const char *key;
    void *val;

    t->based = false;
    t->n_shadows = 0;
    drop = xcalloc(t->entries.n ? t->entries.n : 1, sizeof(*drop));
    while (xds_map_next(&t->entries, &i, &key, &val)) {
        struct srv_entry *e = val;
        e->shadows = false;
        if (!e->subscribed)
            drop[n++] = e;
    }
    for (size_t k = 0; k < n; k++)
        srv_entry_del(t, drop[k]);
    free(drop);
}

/* Applies subscribe, initial versions and unsubscribe, in istiod's order. */
static void
subscriptions(struct srv_type *t, const pb_request *req, bool first)
{
    bool changed = false;

    if (first && req->n_resource_names_subscribe == 0)
        t->wildcard = true; /* legacy wildcard */
    for (size_t i = 0; i < req->n_resource_names_subscribe; i++) {
        const char *name = req->resource_names_subscribe[i];
        if (strcmp(name, "*") == 0) {
            changed |= !t->wildcard;
            t->wildcard = true;
            continue;
        }
        struct srv_entry *e = srv_entry_get_or_add(t, name);
        changed |= !e->subscribed;
        e->subscribed = true;
    }
    /* Only the first request of a type says what the client kept. */
    for (size_t i = 0; first && i < req->n_initial_resource_versions; i++) {
        const char *name = req->initial_resource_versions[i]->key;
        struct srv_entry *e = srv_entry_get_or_add(t, name);
        free(e->held);
        e->held = xstrdup(req->initial_resource_versions[i]->value);
        if (!t->wildcard)
            e->subscribed = true;
    }
    for (size_t i = 0; i < req->n_resource_names_unsubscribe; i++) {
        const char *name = req->resource_names_unsubscribe[i];
        if (strcmp(name, "*") == 0) {
            if (t->wildcard) {
                t->wildcard = false;
                forget_unwanted(t);
                changed = true;
            }
            continue;
        }
        struct srv_entry *e = srv_entry_get(t, name);
        if (e == NULL || !e->subscribed) /* implicit names are never subscribed */
            continue;
        e->subscribed = false;
        if (!t->wildcard)
            srv_entry_del(t, e);
        changed = true;
    }
    t->dirty |= changed;
}

static void
answer(struct xds_server_stream *s, struct srv_type *t, const pb_request *req)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_STALE_NONCE};

    for (size_t i = 0; i < t->n_flights; i++) {
        if (strcmp(t->flights[i].nonce, req->response_nonce) == 0) {
            const char *msg = NULL;
            int code = 0;
            if (req->error_detail != NULL) {
                msg = req->error_detail->message;
                code = req->error_detail->code;
            }
            srv_type_settle(s, t, i, msg, code);
            return;
        }
    }
    s->stats.stale_nonces++;
    ev.type_url = t->type_url;
    ev.nonce = req->response_nonce;
    srv_emit(s, &ev);
}

int
xds_server_stream_on_request(struct xds_server_stream *s, const uint8_t *msg, size_t len,
                             struct xds_out *out)
{
    pb_request *req =
        pb_unpack_checked(&envoy__service__discovery__v3__delta_discovery_request__descriptor, msg,
                          len, XDS_MAX_REQUEST_BYTES, s->error, sizeof(s->error));
    int rc;

    s->stats.requests++;
    if (req == NULL)
        return -MESH_EPROTO;
    rc = request_check(s, req);
    if (rc < 0)
        goto out;
    if (s->node_id == NULL) {
        struct xds_server_event ev = {.kind = XDS_SERVER_EV_NODE};
        node_keep(s, req->node);
        srv_emit(s, &ev);
    }

    struct srv_type *t = type_find(s, req->type_url);
    bool first = t == NULL;
    if (first) {
        t = type_add(s, req->type_url);
        t->initial_pending = t->served;
        if (!t->served) {
            struct xds_server_event ev = {.kind = XDS_SERVER_EV_UNKNOWN_TYPE};
            ev.type_url = t->type_url;
            srv_emit(s, &ev);
        }
    }
    /* Answers first: a NACK rolls back held versions the subscriptions then see. */
    if (!first && req->response_nonce[0] != '\0')
        answer(s, t, req);
    subscriptions(t, req, first);
    srv_type_sync(s, t, out);
out:
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(req, NULL);
    return rc;
}

size_t
xds_server_stream_push(struct xds_server_stream *s, struct xds_snapshot *snap, struct xds_out *out)
{
    size_t n = 0;

    CHECK(snap != NULL);
    xds_snapshot_ref(snap);
    xds_snapshot_unref(s->snap);
    s->snap = snap;
    for (size_t i = 0; i < s->n_types; i++)
        if (!s->types[i]->own)
            n += srv_type_sync(s, s->types[i], out);
    return n;
}

size_t
xds_server_stream_push_own(struct xds_server_stream *s, struct xds_snapshot *own,
                           struct xds_out *out)
{
    size_t n = 0;

    CHECK(own != NULL);
    xds_snapshot_ref(own);
    xds_snapshot_unref(s->own_snap);
    s->own_snap = own;
    for (size_t i = 0; i < s->n_types; i++)
        if (s->types[i]->own)
            n += srv_type_sync(s, s->types[i], out);
    return n;
}

const struct xds_server_stats *
xds_server_stream_stats(const struct xds_server_stream *s)
{
    return &s->stats;
}

const char *
xds_server_stream_node_id(const struct xds_server_stream *s)
{
    return s->node_id;
}

const char *
xds_server_stream_error(const struct xds_server_stream *s)
{
    return s->error;
}

const char *
xds_server_stream_node_meta(const struct xds_server_stream *s, const char *key)
{
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            return s->meta[i].value;
    return NULL;
}

size_t
xds_server_stream_n_types(const struct xds_server_stream *s)
{
    return s->n_types;
}

void
xds_server_stream_type_status(const struct xds_server_stream *s, size_t i,
                              struct xds_server_type_status *st)
{
    const struct srv_type *t;

    CHECK(i < s->n_types);
    t = s->types[i];
    memset(st, 0, sizeof(*st));
    st->type_url = t->type_url;
    st->served = t->served;
    st->wildcard = t->wildcard;
    st->n_held = srv_type_n_held(t);
    st->n_in_flight = t->n_flights;
    st->in_flight_ms = t->n_flights ? t->push_ms : 0;
    st->acked_version = t->acked_version;
    st->last_ack_ms = t->last_ack_ms;
    st->push_latency_ms = t->push_latency_ms;
    st->last_nack = t->last_nack;
}

int
xds_server_stream_type_status_by_url(const struct xds_server_stream *s, const char *type_url,
                                     struct xds_server_type_status *st)
{
    for (size_t i = 0; i < s->n_types; i++) {
        if (strcmp(s->types[i]->type_url, type_url) == 0) {
            xds_server_stream_type_status(s, i, st);
            return 0;
        }
    }
    return -ENOENT;
}
