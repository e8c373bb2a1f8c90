/*
 * test_xds_util.c - helpers shared by the lib/xds tests: snapshots from
 * tables, packed requests and responses, a server stream on a fake clock
 * recording events, and a client whose callbacks log what they saw.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "test_xds_util.h"

uint64_t fake_now;

static uint64_t
now_ms(void *arg)
{
    (void)arg;
    return fake_now;
}

void
record_event(void *arg, const struct xds_server_event *ev)
{
    struct events *e = arg;

    e->n[ev->kind]++;
    if (ev->kind == XDS_SERVER_EV_ACK)
        e->last_latency = ev->latency_ms;
    if (ev->kind == XDS_SERVER_EV_NACK) {
        e->n_rejected = ev->n_rejected;
        for (size_t i = 0; i < ev->n_rejected && i < 8; i++)
            snprintf(e->rejected[i], sizeof(e->rejected[i]), "%s@%s", ev->rejected[i].name,
                     ev->rejected[i].version);
        snprintf(e->last_message, sizeof(e->last_message), "%s", ev->message);
    }
}

struct xds_snapshot *
snap_of(const struct res_spec *spec, size_t n)
{
    struct xds_resource *v = xcalloc(n, sizeof(*v));

    for (size_t i = 0; i < n; i++) {
        v[i].type_url = xstrdup(spec[i].type);
        v[i].name = xstrdup(spec[i].name);
        v[i].len = strlen(spec[i].value);
        v[i].bytes = (uint8_t *)xstrdup(spec[i].value);
    }
    return xds_snapshot_new(v, n);
}

const char *
version_of(const char *value)
{
    static char out[4][XDS_VERSION_LEN + 1];
    static int k;

    k = (k + 1) % 4;
    xds_version_of(value, strlen(value), out[k]);
    return out[k];
}

static size_t
count_strs(const char *const *v)
{
    size_t n = 0;
    while (n < 4 && v[n] != NULL)
        n++;
    return n;
}

uint8_t *
pack_req(const struct req_spec *rs, size_t *len)
{
    pb_request req = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Envoy__Service__Discovery__V3__Node node = ENVOY__SERVICE__DISCOVERY__V3__NODE__INIT;
    Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
    Google__Protobuf__Struct__FieldsEntry fe = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
    Google__Protobuf__Struct__FieldsEntry *fp[1] = {&fe};
    Google__Protobuf__Value fv = GOOGLE__PROTOBUF__VALUE__INIT;
    Envoy__Service__Discovery__V3__Status st = ENVOY__SERVICE__DISCOVERY__V3__STATUS__INIT;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry ie[4];
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *ip[4];

    if (rs->node) {
        fv.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
        fv.string_value = "node-1";
        fe.key = "NODE_NAME";
        fe.value = &fv;
        md.fields = fp;
        md.n_fields = 1;
        node.id = "ztunnel~10.0.0.1~zt.istio-system~istio-system.svc.cluster.local";
        node.metadata = &md;
        req.node = &node;
    }
    req.type_url = (char *)rs->type;
    req.resource_names_subscribe = (char **)rs->sub;
    req.n_resource_names_subscribe = count_strs(rs->sub);
    req.resource_names_unsubscribe = (char **)rs->unsub;
    req.n_resource_names_unsubscribe = count_strs(rs->unsub);
    req.n_initial_resource_versions = count_strs(rs->init_names);
    for (size_t i = 0; i < req.n_initial_resource_versions; i++) {
        envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
            &ie[i]);
        ie[i].key = (char *)rs->init_names[i];
        ie[i].value = (char *)rs->init_versions[i];
        ip[i] = &ie[i];
    }
    req.initial_resource_versions = ip;
    if (rs->nonce)
        req.response_nonce = (char *)rs->nonce;
    if (rs->error) {
        st.message = (char *)rs->error;
        st.code = 13;
        req.error_detail = &st;
    }
    *len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
    uint8_t *data = xmalloc(*len);
    envoy__service__discovery__v3__delta_discovery_request__pack(&req, data);
    return data;
}

int
feed(struct xds_server_stream *s, const struct req_spec *rs, struct xds_out *out)
{
    size_t len;
    uint8_t *data = pack_req(rs, &len);
    int rc = xds_server_stream_on_request(s, data, len, out);
    free(data);
    return rc;
}

pb_response *
resp_at(const struct xds_out *out, size_t i)
{
    assert_true(i < out->n);
    pb_response *r = envoy__service__discovery__v3__delta_discovery_response__unpack(
        NULL, out->v[i].len, out->v[i].data);
    assert_non_null(r);
    assert_int_equal(r->n_resources, out->v[i].n_resources);
    assert_int_equal(r->n_removed_resources, out->v[i].n_removed);
    return r;
}

void
resp_free(pb_response *r)
{
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
}

/* Space-separated "name@value-version" of a response's resources, then "-name" per removal. */
void
describe(const pb_response *r, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < r->n_resources; i++)
        off += snprintf(buf + off, cap - off, "%s%s", off ? " " : "", r->resources[i]->name);
    for (size_t i = 0; i < r->n_removed_resources; i++)
        off += snprintf(buf + off, cap - off, "%s-%s", off ? " " : "", r->removed_resources[i]);
}

/* Checks that |out| holds exactly one response of |type| described as |want|; returns its nonce. */
char *
expect_one(struct xds_out *out, const char *type, const char *want)
{
    char got[512];

    assert_int_equal(out->n, 1);
    pb_response *r = resp_at(out, 0);
    assert_string_equal(r->type_url, type);
    assert_true(r->nonce[0] != '\0');
    describe(r, got, sizeof(got));
    assert_string_equal(got, want);
    char *nonce = xstrdup(r->nonce);
    resp_free(r);
    xds_out_cleanup(out);
    return nonce;
}

void
ack(struct xds_server_stream *s, const char *type, char *nonce, struct xds_out *out)
{
    struct req_spec rs = {.type = type, .nonce = nonce};
    assert_int_equal(feed(s, &rs, out), 0);
    free(nonce);
}

struct xds_server_stream *
new_stream(struct events *ev, size_t max_response)
{
    struct xds_server_config cfg = {0};

    memset(ev, 0, sizeof(*ev));
    cfg.on_event = record_event;
    cfg.arg = ev;
    cfg.now_ms = now_ms;
    cfg.max_response_bytes = max_response;
    return xds_server_stream_new(&cfg);
}

const struct res_spec base_set[4] = {
    {ADDR, "a", "A1"},
    {ADDR, "b", "B1"},
    {ADDR, "c", "C1"},
    {AUTH, "ns/deny", "D1"},
};

/* Connects |s| with a wildcard Address request and ACKs the initial push of |snap|. */
void
connect_acked(struct xds_server_stream *s, struct xds_snapshot *snap, const char *want)
{
    struct xds_out out;
    struct req_spec first = {.node = true, .type = ADDR};

    xds_out_init(&out);
    xds_server_stream_push(s, snap, &out);
    assert_int_equal(feed(s, &first, &out), 0);
    char *n = expect_one(&out, ADDR, want);
    ack(s, ADDR, n, &out);
    assert_int_equal(out.n, 0);
}

/* ---- Client ---- */

const char *
cb_apply(void *arg, const char *type_url, const char *name, const char *version,
         const uint8_t *bytes, size_t len)
{
    struct applied *a = arg;
    size_t off = strlen(a->log);

    (void)type_url;
    (void)version;
    (void)bytes;
    (void)len;
    assert_true(a->begins == a->ends + 1);
    a->applies++;
    if (off < sizeof(a->log) - 64)
        snprintf(a->log + off, sizeof(a->log) - off, "+%s ", name);
    if (a->reject_name != NULL && strcmp(name, a->reject_name) == 0)
        return "bad address";
    return NULL;
}

const char *
cb_remove(void *arg, const char *type_url, const char *name)
{
    struct applied *a = arg;
    size_t off = strlen(a->log);

    (void)type_url;
    a->removes++;
    if (off < sizeof(a->log) - 64)
        snprintf(a->log + off, sizeof(a->log) - off, "-%s ", name);
    return NULL;
}

void
cb_begin(void *arg, const char *type_url)
{
    (void)type_url;
    ((struct applied *)arg)->begins++;
}

void
cb_end(void *arg, const char *type_url)
{
    (void)type_url;
    ((struct applied *)arg)->ends++;
}

struct xds_client *
new_client(struct applied *a)
{
    static const struct xds_kv meta[] = {{"NAME", "zt-abc"},
                                         {"NAMESPACE", "istio-system"},
                                         {"INSTANCE_IPS", "10.0.0.1"},
                                         {"NODE_NAME", "node-1"}};
    struct xds_client_config cfg = {0};
    char *id = xds_node_id_ztunnel("10.0.0.1", "zt-abc", "istio-system");

    memset(a, 0, sizeof(*a));
    assert_string_equal(id, "ztunnel~10.0.0.1~zt-abc.istio-system~istio-system.svc.cluster.local");
    cfg.node_id = id;
    cfg.meta = meta;
    cfg.n_meta = ARRAY_LEN(meta);
    cfg.on_apply = cb_apply;
    cfg.on_remove = cb_remove;
    cfg.on_batch_begin = cb_begin;
    cfg.on_batch_end = cb_end;
    cfg.arg = a;
    struct xds_client *c = xds_client_new(&cfg);
    free(id);
    return c;
}

pb_request *
req_at(const struct xds_out *out, size_t i)
{
    assert_true(i < out->n);
    pb_request *r = envoy__service__discovery__v3__delta_discovery_request__unpack(
        NULL, out->v[i].len, out->v[i].data);
    assert_non_null(r);
    return r;
}

/* Packs a response of |type| with resources from |spec| and removals. */
uint8_t *
pack_resp(const char *type, const char *nonce, const struct res_spec *spec, size_t n,
          const char *const *removed, size_t n_removed, size_t *len)
{
    pb_response resp = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    Envoy__Service__Discovery__V3__Resource res[8], *rp[8];
    Google__Protobuf__Any any[8];

    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        envoy__service__discovery__v3__resource__init(&res[i]);
        google__protobuf__any__init(&any[i]);
        any[i].type_url = (char *)type;
        any[i].value.data = (uint8_t *)spec[i].value;
        any[i].value.len = strlen(spec[i].value);
        res[i].name = (char *)spec[i].name;
        res[i].version = (char *)version_of(spec[i].value);
        res[i].resource = strcmp(spec[i].value, "<none>") ? &any[i] : NULL;
        rp[i] = &res[i];
    }
    resp.type_url = (char *)type;
    resp.nonce = (char *)nonce;
    resp.resources = rp;
    resp.n_resources = n;
    resp.removed_resources = (char **)removed;
    resp.n_removed_resources = n_removed;
    *len = envoy__service__discovery__v3__delta_discovery_response__get_packed_size(&resp);
    uint8_t *data = xmalloc(*len);
    envoy__service__discovery__v3__delta_discovery_response__pack(&resp, data);
    return data;
}
