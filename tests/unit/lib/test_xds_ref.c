/*
 * test_xds_ref.c - the server stream of lib/xds as it was before pushes were
 * computed from snapshot diffs (every push compared each held name with the
 * snapshot): a reference model for the differential test in test_xds_diff.c.
 * Same rules (xds_server.h), same output apart from nonces; symbols renamed
 * (ref_*). Not used by anything but the tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "test_xds_ref.h"
#include "xds/xds_internal.h"

/* What the stream knows about one name of one type. */
struct ref_entry {
    char *held;       /* version the client holds, as far as we know; NULL: none */
    char *nacked;     /* version the client rejected: never sent again on this stream */
    bool subscribed;  /* explicitly subscribed (or listed in initial_resource_versions) */
    bool told_absent; /* a removal was sent and nothing since: do not repeat it */
    bool unsure;      /* after a NACK naming no resource: the client holds |held| or |nacked| */
    char name[];
};

/* One resource or removal of an unanswered response. */
struct ref_item {
    const struct xds_resource *res; /* NULL: removal; in the type's |synced| snapshot */
    char *name;                     /* removal: owned copy */
    char *prev;                     /* resource: version held before (owned), for a NACK */
};

/* One unanswered response. */
struct ref_flight {
    char nonce[XDS_MAX_NONCE_LEN];
    uint64_t sent_ms;
    struct ref_item *items;
    size_t n_items;
};

struct ref_type {
    char *type_url;
    bool served;
    bool wildcard;
    bool initial_pending;        /* first request not answered yet: answer even if empty */
    bool dirty;                  /* subscriptions changed since the last push was built */
    bool push_nacked;            /* some response of the current push was NACKed */
    struct xds_map entries;      /* name -> struct ref_entry */
    struct xds_snapshot *synced; /* snapshot the last push was built from (a reference) */
    struct ref_flight *flights;  /* oldest first */
    size_t n_flights;
    uint64_t push_ms;
    char *acked_version;
    char *last_nack;
    uint64_t last_ack_ms;
    uint64_t push_latency_ms;
};

struct ref_meta {
    char *key;
    char *value;
};

struct ref_stream {
    char **served;
    size_t n_served;
    size_t max_types;
    size_t max_names;
    size_t max_name_len;
    size_t max_response_bytes;
    void (*on_event)(void *arg, const struct xds_server_event *ev);
    void *arg;
    uint64_t (*now_ms)(void *arg);

    struct ref_type **types; /* in order of first request */
    size_t n_types;
    struct xds_snapshot *snap; /* current, a reference; NULL before the first push */
    char *node_id;
    struct ref_meta *meta;
    size_t n_meta;
    uint64_t nonce_tag; /* random per stream: nonces of other streams never match */
    uint64_t nonce_seq;
    struct xds_server_stats stats;
};

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest pb_request;

static uint64_t ref_now(const struct ref_stream *s);
static void ref_emit(const struct ref_stream *s, const struct xds_server_event *ev);
static void ref_entry_free(struct ref_entry *e);
static struct ref_entry *ref_entry_get_or_add(struct ref_type *t, const char *name);
static size_t ref_type_sync(struct ref_stream *s, struct ref_type *t, struct xds_out *out);
static void ref_type_settle(struct ref_stream *s, struct ref_type *t, size_t idx,
                            const char *error_message, int code);
static void ref_type_free(struct ref_type *t);

#define META_MAX_FIELDS    64
#define META_MAX_KEY_LEN   256
#define META_MAX_VALUE_LEN 4096

static const char *const default_types[] = {XDS_TYPE_ADDRESS, XDS_TYPE_AUTHORIZATION};

static uint64_t
ref_now(const struct ref_stream *s)
{
    return s->now_ms ? s->now_ms(s->arg) : clock_mono_ms();
}

static void
ref_emit(const struct ref_stream *s, const struct xds_server_event *ev)
{
    if (s->on_event != NULL)
        s->on_event(s->arg, ev);
}

static void
ref_entry_free(struct ref_entry *e)
{
    if (e == NULL)
        return;
    free(e->held);
    free(e->nacked);
    free(e);
}

struct ref_stream *
ref_stream_new(const struct xds_server_config *cfg)
{
    static const struct xds_server_config defaults;
    struct ref_stream *s = xcalloc(1, sizeof(*s));

    if (cfg == NULL)
        cfg = &defaults;
    const char *const *types = cfg->type_urls ? cfg->type_urls : default_types;
    s->n_served = cfg->type_urls ? cfg->n_type_urls : ARRAY_LEN(default_types);
    s->served = xcalloc(s->n_served, sizeof(*s->served));
    for (size_t i = 0; i < s->n_served; i++)
        s->served[i] = xstrdup(types[i]);
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
ref_stream_free(struct ref_stream *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_types; i++)
        ref_type_free(s->types[i]);
    free(s->types);
    for (size_t i = 0; i < s->n_served; i++)
        free(s->served[i]);
    free(s->served);
    for (size_t i = 0; i < s->n_meta; i++) {
        free(s->meta[i].key);
        free(s->meta[i].value);
    }
    free(s->meta);
    free(s->node_id);
    xds_snapshot_unref(s->snap);
    free(s);
}

static struct ref_type *
type_find(const struct ref_stream *s, const char *type_url)
{
    for (size_t i = 0; i < s->n_types; i++)
        if (strcmp(s->types[i]->type_url, type_url) == 0)
            return s->types[i];
    return NULL;
}

static bool
is_served(const struct ref_stream *s, const char *type_url)
{
    for (size_t i = 0; i < s->n_served; i++)
        if (strcmp(s->served[i], type_url) == 0)
            return true;
    return false;
}

static struct ref_type *
type_add(struct ref_stream *s, const char *type_url)
{
    struct ref_type *t = xcalloc(1, sizeof(*t));

    t->type_url = xstrdup(type_url);
    t->served = is_served(s, type_url);
    xds_map_init(&t->entries);
    s->types = xrealloc(s->types, (s->n_types + 1) * sizeof(*s->types));
    s->types[s->n_types++] = t;
    return t;
}

/* Keeps the string fields of node.metadata, within caps; others are skipped. */
static void
node_keep(struct ref_stream *s, const Envoy__Service__Discovery__V3__Node *node)
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
request_check(const struct ref_stream *s, const pb_request *req)
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
    const struct ref_type *t = type_find(s, req->type_url);
    if (t == NULL && s->n_types >= s->max_types)
        return -MESH_ELIMIT;
    /* Duplicates count twice: a cheap upper bound on the names the type will track. */
    size_t held = t ? t->entries.n : 0;
    if (held + req->n_resource_names_subscribe + req->n_initial_resource_versions > s->max_names)
        return -MESH_ELIMIT;
    return 0;
}

static struct ref_entry *
ref_entry_get_or_add(struct ref_type *t, const char *name)
{
    struct ref_entry *e = xds_map_get(&t->entries, name);

    if (e == NULL) {
        size_t len = strlen(name);
        e = xcalloc(1, sizeof(*e) + len + 1);
        memcpy(e->name, name, len + 1);
        xds_map_put(&t->entries, e->name, e);
    }
    return e;
}

/* Drops every name neither wildcard nor a subscription covers (wildcard just ended). */
static void
forget_unwanted(struct ref_type *t)
{
    struct ref_entry **drop = NULL;
    size_t n = 0, i = 0;
    const char *key;
    void *val;

    drop = xcalloc(t->entries.n, sizeof(*drop));
    while (xds_map_next(&t->entries, &i, &key, &val)) {
        struct ref_entry *e = val;
        if (!e->subscribed)
            drop[n++] = e;
    }
    for (size_t k = 0; k < n; k++)
        ref_entry_free(xds_map_del(&t->entries, drop[k]->name));
    free(drop);
}

/* Applies subscribe, initial versions and unsubscribe, in istiod's order. */
static void
subscriptions(struct ref_type *t, const pb_request *req, bool first)
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
        struct ref_entry *e = ref_entry_get_or_add(t, name);
        changed |= !e->subscribed;
        e->subscribed = true;
    }
    /* Only the first request of a type says what the client kept. */
    for (size_t i = 0; first && i < req->n_initial_resource_versions; i++) {
        const char *name = req->initial_resource_versions[i]->key;
        struct ref_entry *e = ref_entry_get_or_add(t, name);
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
        struct ref_entry *e = xds_map_get(&t->entries, name);
        if (e == NULL || !e->subscribed)
            continue;
        e->subscribed = false;
        if (!t->wildcard)
            ref_entry_free(xds_map_del(&t->entries, name));
        changed = true;
    }
    t->dirty |= changed;
}

static void
answer(struct ref_stream *s, struct ref_type *t, const pb_request *req)
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
            ref_type_settle(s, t, i, msg, code);
            return;
        }
    }
    s->stats.stale_nonces++;
    ev.type_url = t->type_url;
    ev.nonce = req->response_nonce;
    ref_emit(s, &ev);
}

int
ref_stream_on_request(struct ref_stream *s, const uint8_t *msg, size_t len, struct xds_out *out)
{
    pb_request *req =
        envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, msg);
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
        ref_emit(s, &ev);
    }

    struct ref_type *t = type_find(s, req->type_url);
    bool first = t == NULL;
    if (first) {
        t = type_add(s, req->type_url);
        t->initial_pending = t->served;
        if (!t->served) {
            struct xds_server_event ev = {.kind = XDS_SERVER_EV_UNKNOWN_TYPE};
            ev.type_url = t->type_url;
            ref_emit(s, &ev);
        }
    }
    /* Answers first: a NACK rolls back held versions the subscriptions then see. */
    if (!first && req->response_nonce[0] != '\0')
        answer(s, t, req);
    subscriptions(t, req, first);
    ref_type_sync(s, t, out);
out:
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(req, NULL);
    return rc;
}

size_t
ref_stream_push(struct ref_stream *s, struct xds_snapshot *snap, struct xds_out *out)
{
    size_t n = 0;

    CHECK(snap != NULL);
    xds_snapshot_ref(snap);
    xds_snapshot_unref(s->snap);
    s->snap = snap;
    for (size_t i = 0; i < s->n_types; i++)
        n += ref_type_sync(s, s->types[i], out);
    return n;
}

const struct xds_server_stats *
ref_stream_stats(const struct ref_stream *s)
{
    return &s->stats;
}

const char *
ref_stream_node_id(const struct ref_stream *s)
{
    return s->node_id;
}

const char *
ref_stream_node_meta(const struct ref_stream *s, const char *key)
{
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            return s->meta[i].value;
    return NULL;
}

size_t
ref_stream_n_types(const struct ref_stream *s)
{
    return s->n_types;
}

void
ref_stream_type_status(const struct ref_stream *s, size_t i, struct xds_server_type_status *st)
{
    const struct ref_type *t;
    const char *key;
    void *val;
    size_t k = 0;

    CHECK(i < s->n_types);
    t = s->types[i];
    memset(st, 0, sizeof(*st));
    st->type_url = t->type_url;
    st->served = t->served;
    st->wildcard = t->wildcard;
    while (xds_map_next(&t->entries, &k, &key, &val))
        st->n_held += ((const struct ref_entry *)val)->held != NULL;
    st->n_in_flight = t->n_flights;
    st->in_flight_ms = t->n_flights ? t->push_ms : 0;
    st->acked_version = t->acked_version;
    st->last_ack_ms = t->last_ack_ms;
    st->push_latency_ms = t->push_latency_ms;
    st->last_nack = t->last_nack;
}

int
ref_stream_type_status_by_url(const struct ref_stream *s, const char *type_url,
                              struct xds_server_type_status *st)
{
    for (size_t i = 0; i < s->n_types; i++) {
        if (strcmp(s->types[i]->type_url, type_url) == 0) {
            ref_stream_type_status(s, i, st);
            return 0;
        }
    }
    return -ENOENT;
}
typedef Envoy__Service__Discovery__V3__Resource pb_resource;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse pb_response;

#define NACK_MESSAGE_KEEP  4096      /* bytes of the last NACK message kept for reports */
#define NACK_MESSAGE_PARSE (1 << 20) /* bytes of a NACK message searched for names */

/* What one push sends: changed resources, then removed names (sorted). */
struct plan {
    const struct xds_resource **sends;
    size_t n_sends, cap_sends;
    struct ref_entry **removals;
    size_t n_removals, cap_removals;
};

static void
plan_send(struct plan *p, const struct xds_resource *r)
{
    if (p->n_sends == p->cap_sends) {
        p->cap_sends = p->cap_sends ? p->cap_sends * 2 : 16;
        p->sends = xrealloc(p->sends, p->cap_sends * sizeof(*p->sends));
    }
    p->sends[p->n_sends++] = r;
}

static void
plan_remove(struct plan *p, struct ref_entry *e)
{
    if (p->n_removals == p->cap_removals) {
        p->cap_removals = p->cap_removals ? p->cap_removals * 2 : 16;
        p->removals = xrealloc(p->removals, p->cap_removals * sizeof(*p->removals));
    }
    p->removals[p->n_removals++] = e;
}

static int
cmp_entry_name(const void *a, const void *b)
{
    const struct ref_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static bool
wanted(const struct ref_type *t, const struct ref_entry *e)
{
    return t->wildcard || (e != NULL && e->subscribed);
}

static void
plan_build(const struct ref_stream *s, const struct ref_type *t, struct plan *p)
{
    size_t first, n, i = 0;
    const char *key;
    void *val;

    memset(p, 0, sizeof(*p));
    xds_snapshot_type_range(s->snap, t->type_url, &first, &n);
    for (size_t k = first; k < first + n; k++) {
        const struct xds_resource *r = xds_snapshot_at(s->snap, k);
        const struct ref_entry *e = xds_map_get(&t->entries, r->name);
        if (!wanted(t, e))
            continue;
        /* Held already, or rejected at this very version: nothing to send. */
        if (e != NULL &&
            ((!e->unsure && xds_streq(e->held, r->version)) || xds_streq(e->nacked, r->version)))
            continue;
        plan_send(p, r);
    }
    while (xds_map_next(&t->entries, &i, &key, &val)) {
        struct ref_entry *e = val;
        if (!wanted(t, e) || xds_snapshot_find(s->snap, t->type_url, e->name) != NULL)
            continue;
        if (e->held != NULL || e->nacked != NULL || (e->subscribed && !e->told_absent))
            plan_remove(p, e);
    }
    if (p->n_removals > 1)
        qsort(p->removals, p->n_removals, sizeof(*p->removals), cmp_entry_name);
}

static void
plan_free(struct plan *p)
{
    free(p->sends);
    free(p->removals);
}

static size_t
varint_len(size_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Bytes a length-delimited field of |len| bytes (tag < 16) adds to a message. */
static size_t
field_len(size_t len)
{
    return 1 + varint_len(len) + len;
}

/*
 * Records a flight for items [start, end) of the push (sends first, then
 * removals) and updates the held versions accordingly.
 */
static struct ref_flight *
flight_add(struct ref_stream *s, struct ref_type *t, const struct plan *p, size_t start, size_t end)
{
    t->flights = xrealloc(t->flights, (t->n_flights + 1) * sizeof(*t->flights));
    struct ref_flight *f = &t->flights[t->n_flights++];

    memset(f, 0, sizeof(*f));
    snprintf(f->nonce, sizeof(f->nonce), "%016" PRIx64 "-%" PRIu64, s->nonce_tag, ++s->nonce_seq);
    f->sent_ms = ref_now(s);
    f->n_items = end - start;
    f->items = xcalloc(f->n_items, sizeof(*f->items));
    for (size_t k = start; k < end; k++) {
        struct ref_item *it = &f->items[k - start];
        if (k < p->n_sends) {
            const struct xds_resource *r = p->sends[k];
            struct ref_entry *e = ref_entry_get_or_add(t, r->name);
            it->res = r;
            it->prev = e->held;
            e->held = xstrdup(r->version);
            e->told_absent = false;
            e->unsure = false;
            continue;
        }
        struct ref_entry *e = p->removals[k - p->n_sends];
        it->name = xstrdup(e->name);
        free(e->held);
        free(e->nacked);
        e->held = e->nacked = NULL;
        e->told_absent = true;
        e->unsure = false;
        /* A wildcard-only name the client no longer has needs no entry. */
        if (!e->subscribed)
            ref_entry_free(xds_map_del(&t->entries, it->name));
    }
    return f;
}

/* Packs the response for flight |f| and appends it to |out|. */
static void
emit(struct ref_stream *s, const struct ref_type *t, const struct ref_flight *f, pb_resource **rp,
     size_t n_sends, struct xds_out *out)
{
    pb_response resp = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    char **removed = NULL;
    size_t n_removed = f->n_items - n_sends;

    if (n_removed > 0) {
        removed = xcalloc(n_removed, sizeof(*removed));
        for (size_t k = 0; k < n_removed; k++)
            removed[k] = f->items[n_sends + k].name;
    }
    resp.system_version_info = (char *)xds_snapshot_version(t->synced);
    resp.type_url = t->type_url;
    resp.nonce = (char *)f->nonce;
    resp.resources = rp;
    resp.n_resources = n_sends;
    resp.removed_resources = removed;
    resp.n_removed_resources = n_removed;

    size_t len = envoy__service__discovery__v3__delta_discovery_response__get_packed_size(&resp);
    uint8_t *data = xmalloc(len);
    envoy__service__discovery__v3__delta_discovery_response__pack(&resp, data);
    free(removed);

    struct xds_msg *m = xds_out_add(out, data, len);
    m->n_resources = n_sends;
    m->n_removed = n_removed;
    s->stats.responses++;
    s->stats.resources_sent += n_sends;
    s->stats.removals_sent += n_removed;
    s->stats.bytes_sent += len;
}

static void
oversized(const struct ref_stream *s, const struct ref_type *t, const char *name)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_OVERSIZED};

    ev.type_url = t->type_url;
    ev.name = name;
    ref_emit(s, &ev);
}

/* Splits the plan into responses under the size cap and emits them. */
static size_t
send_plan(struct ref_stream *s, struct ref_type *t, const struct plan *p, struct xds_out *out)
{
    size_t n_sends = p->n_sends, total = n_sends + p->n_removals, k = 0, emitted = 0;
    pb_resource *res = xcalloc(n_sends, sizeof(*res));
    Google__Protobuf__Any *any = xcalloc(n_sends, sizeof(*any));
    pb_resource **rp = xcalloc(n_sends, sizeof(*rp));
    size_t *sizes = xcalloc(total, sizeof(*sizes));
    /* Response fields besides resources and removals, with room to spare. */
    size_t overhead = 64 + strlen(t->type_url) + XDS_MAX_NONCE_LEN + XDS_VERSION_LEN;

    for (size_t i = 0; i < n_sends; i++) {
        const struct xds_resource *r = p->sends[i];
        google__protobuf__any__init(&any[i]);
        any[i].type_url = r->type_url;
        any[i].value.data = r->bytes;
        any[i].value.len = r->len;
        envoy__service__discovery__v3__resource__init(&res[i]);
        res[i].name = r->name;
        res[i].version = r->version;
        res[i].resource = &any[i];
        rp[i] = &res[i];
        sizes[i] = field_len(envoy__service__discovery__v3__resource__get_packed_size(&res[i]));
    }
    for (size_t i = 0; i < p->n_removals; i++)
        sizes[n_sends + i] = field_len(strlen(p->removals[i]->name));

    do {
        size_t start = k, size = overhead;
        while (k < total) {
            if (k > start && size + sizes[k] > s->max_response_bytes)
                break;
            if (k == start && size + sizes[k] > s->max_response_bytes)
                oversized(s, t, k < n_sends ? p->sends[k]->name : p->removals[k - n_sends]->name);
            size += sizes[k++];
        }
        /* Resource structs of this response: the sends within [start, k). */
        size_t s_end = k < n_sends ? k : n_sends, s_start = start < n_sends ? start : n_sends;
        struct ref_flight *f = flight_add(s, t, p, start, k);
        emit(s, t, f, rp + s_start, s_end - s_start, out);
        emitted++;
    } while (k < total);

    free(sizes);
    free(rp);
    free(any);
    free(res);
    return emitted;
}

static size_t
ref_type_sync(struct ref_stream *s, struct ref_type *t, struct xds_out *out)
{
    struct plan p;

    if (!t->served || s->snap == NULL || t->n_flights > 0)
        return 0;
    if (!t->initial_pending && !t->dirty && t->synced == s->snap)
        return 0;
    xds_snapshot_unref(t->synced);
    t->synced = xds_snapshot_ref(s->snap);
    t->dirty = false;
    plan_build(s, t, &p);
    if (p.n_sends + p.n_removals == 0 && !t->initial_pending) {
        plan_free(&p);
        return 0;
    }
    t->initial_pending = false;
    t->push_nacked = false;
    t->push_ms = ref_now(s);
    size_t n = send_plan(s, t, &p, out);
    plan_free(&p);
    s->stats.pushes++;
    return n;
}

static void
flight_cleanup(struct ref_flight *f)
{
    for (size_t i = 0; i < f->n_items; i++) {
        free(f->items[i].name);
        free(f->items[i].prev);
    }
    free(f->items);
}

/*
 * Collects the names a NACK message lists. ztunnel (and our client) join
 * "<name>: <reason>" pieces with "; "; other clients may say anything, and
 * then nothing matches. Keys point into |copy|.
 */
static void
nack_names(char *copy, struct xds_map *names)
{
    for (char *p = copy; p != NULL && *p != '\0';) {
        char *next = strstr(p, "; ");
        if (next != NULL) {
            *next = '\0';
            next += 2;
        }
        char *colon = strstr(p, ": ");
        if (colon != NULL) {
            *colon = '\0';
            xds_map_put(names, p, p);
        }
        p = next;
    }
}

/*
 * The rejected resources of |f|: those the message names, or, if it names
 * none of them, all of them. |*all| says which.
 */
static bool *
nack_rejected(const struct ref_flight *f, const char *message, bool *all)
{
    bool *rejected = xcalloc(f->n_items, sizeof(*rejected));
    char *copy = xstrndup(message, strnlen(message, NACK_MESSAGE_PARSE));
    struct xds_map names;
    size_t hits = 0;

    xds_map_init(&names);
    nack_names(copy, &names);
    for (size_t i = 0; i < f->n_items; i++) {
        if (f->items[i].res != NULL && xds_map_get(&names, f->items[i].res->name) != NULL) {
            rejected[i] = true;
            hits++;
        }
    }
    *all = hits == 0;
    for (size_t i = 0; *all && i < f->n_items; i++)
        rejected[i] = f->items[i].res != NULL;
    xds_map_cleanup(&names);
    free(copy);
    return rejected;
}

/* A NACKed resource: the client keeps what it had, and this version is never sent again. */
static void
reject_item(struct ref_type *t, struct ref_item *it, bool unsure)
{
    struct ref_entry *e = xds_map_get(&t->entries, it->res->name);

    if (e == NULL)
        return; /* unsubscribed meanwhile */
    if (xds_streq(e->held, it->res->version)) {
        free(e->held);
        e->held = it->prev;
        it->prev = NULL;
    }
    free(e->nacked);
    e->nacked = xstrdup(it->res->version);
    /* Unnamed rejects: it may have taken this version after all; the old one is resent. */
    e->unsure = unsure;
}

static void
accept_item(struct ref_type *t, const struct ref_item *it)
{
    struct ref_entry *e = xds_map_get(&t->entries, it->res->name);

    /* The client took a version: an older rejection no longer matters. */
    if (e != NULL && xds_streq(e->held, it->res->version)) {
        free(e->nacked);
        e->nacked = NULL;
    }
}

static void
settle_nack(struct ref_stream *s, struct ref_type *t, struct ref_flight *f, const char *message,
            int code)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_NACK};
    struct xds_rejected *rej = xcalloc(f->n_items, sizeof(*rej));
    size_t n_rej = 0;
    bool all;
    bool *rejected = nack_rejected(f, message, &all);

    /* A NACKed removal counts as done: retrying it could loop. */
    for (size_t i = 0; i < f->n_items; i++) {
        struct ref_item *it = &f->items[i];
        if (it->res == NULL)
            continue;
        if (!rejected[i]) {
            accept_item(t, it);
            continue;
        }
        rej[n_rej].name = it->res->name;
        rej[n_rej++].version = it->res->version;
        reject_item(t, it, all);
    }
    s->stats.nacks++;
    t->push_nacked = true;
    free(t->last_nack);
    t->last_nack = xstrndup(message, strnlen(message, NACK_MESSAGE_KEEP));
    ev.type_url = t->type_url;
    ev.nonce = f->nonce;
    ev.message = message;
    ev.code = code;
    ev.rejected = rej;
    ev.n_rejected = n_rej;
    ref_emit(s, &ev);
    free(rejected);
    free(rej);
}

static void
settle_ack(struct ref_stream *s, struct ref_type *t, struct ref_flight *f, uint64_t now)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_ACK};

    for (size_t i = 0; i < f->n_items; i++)
        if (f->items[i].res != NULL)
            accept_item(t, &f->items[i]);
    s->stats.acks++;
    ev.type_url = t->type_url;
    ev.nonce = f->nonce;
    ev.latency_ms = now - f->sent_ms;
    ref_emit(s, &ev);
}

static void
ref_type_settle(struct ref_stream *s, struct ref_type *t, size_t idx, const char *error_message,
                int code)
{
    uint64_t now = ref_now(s);

    CHECK(idx < t->n_flights);
    for (size_t i = 0; i <= idx; i++) {
        struct ref_flight *f = &t->flights[i];
        if (i == idx && error_message != NULL)
            settle_nack(s, t, f, error_message, code);
        else
            settle_ack(s, t, f, now);
        flight_cleanup(f);
    }
    t->n_flights -= idx + 1;
    memmove(t->flights, t->flights + idx + 1, t->n_flights * sizeof(*t->flights));
    if (t->n_flights > 0)
        return;
    free(t->flights);
    t->flights = NULL;
    t->last_ack_ms = now;
    t->push_latency_ms = now - t->push_ms;
    if (!t->push_nacked) {
        free(t->acked_version);
        t->acked_version = xstrdup(xds_snapshot_version(t->synced));
    }
}

static void
ref_type_free(struct ref_type *t)
{
    const char *key;
    void *val;
    size_t i = 0;

    if (t == NULL)
        return;
    for (size_t k = 0; k < t->n_flights; k++)
        flight_cleanup(&t->flights[k]);
    free(t->flights);
    while (xds_map_next(&t->entries, &i, &key, &val))
        ref_entry_free(val);
    xds_map_cleanup(&t->entries);
    xds_snapshot_unref(t->synced);
    free(t->type_url);
    free(t->acked_version);
    free(t->last_nack);
    free(t);
}
