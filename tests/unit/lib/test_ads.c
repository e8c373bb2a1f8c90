/*
 * test_ads.c - lib/ads's per-type dispatch (ads_mux) against lib/xds's server
 * stream in memory: a waypoint-like client registering Address, Route and
 * Policy gets each type's resources in its own handler; a handler that
 * refuses a resource makes a NACK carrying its message, the resource keeps
 * its last good version (also in the next stream's initial versions), and
 * the rest of the response applies. Node id and metadata a waypoint sends
 * arrive at the server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ads/ads.h"
#include "base/base.h"
#include "test_xds_util.h"

#define ROUTE "type.googleapis.com/amesh.waypoint.v1.Route"
#define POLICY "type.googleapis.com/amesh.waypoint.v1.Policy"

/* One type's handler: a log of what it was given, and its own view (name -> value). */
struct handler {
    const char *type;
    char log[512];
    int commits;
    const char *refuse; /* a value it refuses */
    char msg[128];
    char names[8][32], values[8][32];
    size_t n;
};

static const char *
h_apply(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    struct handler *h = arg;
    char v[32];
    snprintf(v, sizeof(v), "%.*s", (int)len, (const char *)bytes);
    size_t l = strlen(h->log);
    snprintf(h->log + l, sizeof(h->log) - l, "+%s=%s ", name, v);
    if (h->refuse != NULL && strcmp(v, h->refuse) == 0) {
        snprintf(h->msg, sizeof(h->msg), "%s: cannot use %s", name, v);
        return h->msg; /* the handler keeps what it had */
    }
    size_t i = 0;
    while (i < h->n && strcmp(h->names[i], name) != 0)
        i++;
    assert_true(i < 8);
    if (i == h->n)
        h->n++;
    snprintf(h->names[i], sizeof(h->names[i]), "%s", name);
    snprintf(h->values[i], sizeof(h->values[i]), "%s", v);
    return NULL;
}

static const char *
h_remove(void *arg, const char *name)
{
    struct handler *h = arg;
    size_t l = strlen(h->log);
    snprintf(h->log + l, sizeof(h->log) - l, "-%s ", name);
    return NULL;
}

static void
h_commit(void *arg)
{
    ((struct handler *)arg)->commits++;
}

static const char *
h_value(const struct handler *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->names[i], name) == 0)
            return h->values[i];
    return NULL;
}

struct responses {
    char log[512];
    size_t bytes;
};

static void
on_response(void *arg, const char *type_url, size_t len)
{
    struct responses *r = arg;
    size_t l = strlen(r->log);
    snprintf(r->log + l, sizeof(r->log) - l, "%s ", strrchr(type_url, '.') + 1);
    r->bytes += len;
}

/* A waypoint's client: node id of type router, its namespace, name and service account. */
static struct ads_mux *
waypoint_mux(struct handler h[3], struct responses *r)
{
    static const struct xds_kv meta[] = {{"NAME", "waypoint-7d9f"},
                                         {"NAMESPACE", "demo"},
                                         {"SERVICE_ACCOUNT", "waypoint"},
                                         {"NODE_NAME", "node-1"}};
    const struct ads_type types[] = {
        {ADDR, h_apply, h_remove, h_commit, &h[0]},
        {ROUTE, h_apply, h_remove, h_commit, &h[1]},
        {POLICY, h_apply, NULL, NULL, &h[2]},
    };
    char *id = xds_node_id("router", "10.0.0.9", "waypoint-7d9f", "demo");
    struct ads_mux_config cfg = {.node_id = id, .meta = meta, .n_meta = ARRAY_LEN(meta),
                                 .types = types, .n_types = 3, .on_response = on_response,
                                 .arg = r};
    memset(h, 0, 3 * sizeof(*h));
    memset(r, 0, sizeof(*r));
    h[0].type = ADDR;
    h[1].type = ROUTE;
    h[2].type = POLICY;
    struct ads_mux *m = ads_mux_new(&cfg);
    free(id);
    assert_non_null(m);
    return m;
}

static struct xds_server_stream *
server(struct events *ev)
{
    static const char *const served[] = {ADDR, AUTH, ROUTE, POLICY};
    struct xds_server_config cfg = {.type_urls = served, .n_type_urls = 4,
                                    .on_event = record_event, .arg = ev};
    memset(ev, 0, sizeof(*ev));
    return xds_server_stream_new(&cfg);
}

/* Runs both sides until neither sends; returns the NACKs the client made. */
static int
pump(struct xds_server_stream *s, struct ads_mux *m, struct xds_out *reqs, struct xds_out *resps)
{
    int nacks = 0;
    while (reqs->n > 0 || resps->n > 0) {
        for (size_t i = 0; i < reqs->n; i++)
            assert_int_equal(
                xds_server_stream_on_request(s, reqs->v[i].data, reqs->v[i].len, resps), 0);
        xds_out_cleanup(reqs);
        for (size_t i = 0; i < resps->n; i++) {
            int rc = ads_mux_on_response(m, resps->v[i].data, resps->v[i].len, reqs);
            assert_true(rc == 0 || rc == 1);
            nacks += rc;
        }
        xds_out_cleanup(resps);
    }
    return nacks;
}

static const struct res_spec first[] = {
    {ADDR, "pod-a", "A1"},   {ADDR, "pod-b", "B1"},       {ROUTE, "demo/echo:80", "R1"},
    {POLICY, "demo/deny", "P1"}, {AUTH, "ns/allow", "Z1"}, /* not registered: never asked for */
};

/* The waypoint's client and a server stream, in sync on |first|. */
struct wp {
    struct handler h[3];
    struct responses r;
    struct events ev;
    struct xds_out reqs, resps;
    struct ads_mux *m;
    struct xds_server_stream *s;
    struct xds_snapshot *snap;
};

static void
wp_connect(struct wp *w)
{
    w->m = waypoint_mux(w->h, &w->r);
    w->s = server(&w->ev);
    w->snap = snap_of(first, ARRAY_LEN(first));
    xds_out_init(&w->reqs);
    xds_out_init(&w->resps);
    ads_mux_start(w->m, &w->reqs);
    assert_int_equal(w->reqs.n, 3); /* one subscription per registered type */
    xds_server_stream_push(w->s, w->snap, &w->resps);
    assert_int_equal(pump(w->s, w->m, &w->reqs, &w->resps), 0);
}

static void
wp_free(struct wp *w)
{
    xds_snapshot_unref(w->snap);
    xds_server_stream_free(w->s);
    ads_mux_free(w->m);
}

static void
test_dispatch_by_type(void **state)
{
    static struct wp w;
    (void)state;

    wp_connect(&w);

    assert_string_equal(xds_server_stream_node_id(w.s),
                        "router~10.0.0.9~waypoint-7d9f.demo~demo.svc.cluster.local");
    assert_string_equal(xds_server_stream_node_meta(w.s, "NAMESPACE"), "demo");
    assert_string_equal(xds_server_stream_node_meta(w.s, "SERVICE_ACCOUNT"), "waypoint");
    assert_string_equal(w.h[0].log, "+pod-a=A1 +pod-b=B1 ");
    assert_string_equal(w.h[1].log, "+demo/echo:80=R1 ");
    assert_string_equal(w.h[2].log, "+demo/deny=P1 ");
    assert_int_equal(w.h[0].commits, 1); /* once per response, after its resources */
    assert_int_equal(w.h[1].commits, 1);
    assert_string_equal(w.r.log, "Address Route Policy ");
    assert_true(w.r.bytes > 0);
    assert_true(xds_client_ready(ads_mux_client(w.m)));
    assert_int_equal(ads_mux_retained(w.m), 4);
    assert_int_equal(w.ev.n[XDS_SERVER_EV_ACK], 3);
    assert_int_equal(w.ev.n[XDS_SERVER_EV_NACK], 0);
    struct xds_server_type_status st;
    assert_int_equal(xds_server_stream_type_status_by_url(w.s, AUTH, &st), -ENOENT);

    /* A removal goes to its type's handler; a type without remove accepts it. */
    static const struct res_spec second[] = {{ADDR, "pod-a", "A1"}, {ROUTE, "demo/echo:80", "R1"}};
    struct xds_snapshot *snap2 = snap_of(second, ARRAY_LEN(second));
    w.h[0].log[0] = w.h[1].log[0] = w.h[2].log[0] = '\0';
    xds_server_stream_push(w.s, snap2, &w.resps);
    assert_int_equal(pump(w.s, w.m, &w.reqs, &w.resps), 0);
    assert_string_equal(w.h[0].log, "-pod-b ");
    assert_string_equal(w.h[1].log, "");
    assert_string_equal(w.h[2].log, "");
    assert_null(xds_client_version(ads_mux_client(w.m), POLICY, "demo/deny"));
    assert_int_equal(ads_mux_retained(w.m), 2);

    xds_snapshot_unref(snap2);
    wp_free(&w);
}

static void
test_handler_refusal_nacks(void **state)
{
    static struct wp w;
    (void)state;

    wp_connect(&w);

    /* The route changes to something its handler refuses, and a new one arrives with it. */
    w.h[1].refuse = "R-BAD";
    static const struct res_spec bad[] = {
        {ADDR, "pod-a", "A1"}, {ADDR, "pod-b", "B1"}, {ROUTE, "demo/echo:80", "R-BAD"},
        {ROUTE, "demo/api:8080", "R2"}, {POLICY, "demo/deny", "P1"},
    };
    struct xds_snapshot *snap2 = snap_of(bad, ARRAY_LEN(bad));
    xds_server_stream_push(w.s, snap2, &w.resps);
    assert_int_equal(pump(w.s, w.m, &w.reqs, &w.resps), 1);

    /* meshd hears why, naming the resource and the handler's message. */
    assert_int_equal(w.ev.n[XDS_SERVER_EV_NACK], 1);
    assert_non_null(strstr(w.ev.last_message, "demo/echo:80: cannot use R-BAD"));
    assert_int_equal(w.ev.n_rejected, 1);
    assert_non_null(strstr(w.ev.rejected[0], "demo/echo:80@"));
    assert_non_null(strstr(xds_client_last_error(ads_mux_client(w.m)), "cannot use R-BAD"));
    /* The last good state stays; the rest of the response applied. */
    assert_string_equal(h_value(&w.h[1], "demo/echo:80"), "R1");
    assert_string_equal(h_value(&w.h[1], "demo/api:8080"), "R2");
    assert_string_equal(xds_client_version(ads_mux_client(w.m), ROUTE, "demo/echo:80"),
                        version_of("R1"));
    assert_int_equal(w.h[1].commits, 2);
    assert_int_equal(w.h[0].commits, 1); /* other types untouched */

    /* A new stream tells meshd the good version, so it sends the route again. */
    w.h[1].log[0] = '\0';
    ads_mux_start(w.m, &w.reqs);
    pb_request *rq = req_at(&w.reqs, 1);
    assert_string_equal(rq->type_url, ROUTE);
    assert_int_equal(rq->n_initial_resource_versions, 2);
    bool saw_good = false;
    for (size_t i = 0; i < rq->n_initial_resource_versions; i++)
        if (strcmp(rq->initial_resource_versions[i]->key, "demo/echo:80") == 0)
            saw_good = strcmp(rq->initial_resource_versions[i]->value, version_of("R1")) == 0;
    assert_true(saw_good);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(rq, NULL);
    xds_server_stream_free(w.s);
    w.s = server(&w.ev);
    xds_server_stream_push(w.s, snap2, &w.resps);
    assert_int_equal(pump(w.s, w.m, &w.reqs, &w.resps), 1);
    assert_string_equal(w.h[1].log, "+demo/echo:80=R-BAD ");

    /* Fixed upstream: the next push applies and is ACKed. */
    w.h[1].refuse = NULL;
    static const struct res_spec good[] = {
        {ADDR, "pod-a", "A1"}, {ADDR, "pod-b", "B1"}, {ROUTE, "demo/echo:80", "R3"},
        {ROUTE, "demo/api:8080", "R2"}, {POLICY, "demo/deny", "P1"},
    };
    struct xds_snapshot *snap3 = snap_of(good, ARRAY_LEN(good));
    xds_server_stream_push(w.s, snap3, &w.resps);
    assert_int_equal(pump(w.s, w.m, &w.reqs, &w.resps), 0);
    assert_string_equal(h_value(&w.h[1], "demo/echo:80"), "R3");

    xds_snapshot_unref(snap2);
    xds_snapshot_unref(snap3);
    wp_free(&w);
}

static const char *
apply_nothing(void *arg, const char *name, const uint8_t *bytes, size_t len)
{
    (void)arg, (void)name, (void)bytes, (void)len;
    return NULL;
}

static void
test_bad_configs(void **state)
{
    const struct ads_type dup[] = {{ADDR, apply_nothing, NULL, NULL, NULL},
                                   {ADDR, apply_nothing, NULL, NULL, NULL}};
    const struct ads_type no_apply[] = {{ADDR, NULL, NULL, NULL, NULL}};
    const struct ads_type one[] = {{ROUTE, apply_nothing, NULL, NULL, NULL}};
    struct ads_mux_config cfg = {.node_id = "router~~w.ns~ns.svc.cluster.local"};
    (void)state;

    assert_null(ads_mux_new(&cfg)); /* no types */
    cfg.types = dup;
    cfg.n_types = 2;
    assert_null(ads_mux_new(&cfg));
    cfg.types = no_apply;
    cfg.n_types = 1;
    assert_null(ads_mux_new(&cfg));
    cfg.types = one;
    cfg.node_id = NULL;
    assert_null(ads_mux_new(&cfg));
    cfg.node_id = "router~~w.ns~ns.svc.cluster.local";
    struct ads_mux *m = ads_mux_new(&cfg);
    assert_non_null(m);
    /* A response that does not decode ends the stream, nothing is sent. */
    struct xds_out out;
    xds_out_init(&out);
    static const uint8_t junk[] = {0x0a, 0xff};
    assert_true(ads_mux_on_response(m, junk, sizeof(junk), &out) < 0);
    assert_int_equal(out.n, 0);
    ads_mux_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_by_type),
        cmocka_unit_test(test_handler_refusal_nacks),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
