/*
 * test_xds_client.c - the delta xDS client (initial requests, ACK, NACK,
 * caps), then client and server driven against each other in memory across a
 * config change and a reconnect.
 *
 * With MESH_XDS_CORPUS=<dir> set, it also writes fuzz_xds seeds there.
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

#include "base/base.h"
#include "test_xds_util.h"

/* ---- Client ---- */

static void
test_client_initial_and_ack(void **state)
{
    struct applied a;
    struct xds_client *c = new_client(&a);
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    xds_client_start(c, &out);
    assert_int_equal(out.n, 2);
    pb_request *r = req_at(&out, 0);
    assert_string_equal(r->type_url, ADDR);
    assert_non_null(r->node);
    assert_string_equal(r->node->id,
                        "ztunnel~10.0.0.1~zt-abc.istio-system~istio-system.svc.cluster.local");
    assert_int_equal(r->node->metadata->n_fields, 4);
    assert_string_equal(r->node->metadata->fields[3]->key, "NODE_NAME");
    assert_string_equal(r->node->metadata->fields[3]->value->string_value, "node-1");
    assert_int_equal(r->n_resource_names_subscribe, 0); /* wildcard, as ztunnel */
    assert_int_equal(r->n_initial_resource_versions, 0);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    r = req_at(&out, 1);
    assert_string_equal(r->type_url, AUTH);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    xds_out_cleanup(&out);
    assert_false(xds_client_ready(c));

    static const struct res_spec rs[] = {{ADDR, "a", "A1"}, {ADDR, "b", "B1"}};
    size_t len;
    uint8_t *m = pack_resp(ADDR, "n1", rs, 2, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 0);
    free(m);
    assert_int_equal(a.begins, 1);
    assert_int_equal(a.ends, 1);
    assert_string_equal(a.log, "+a +b ");
    r = req_at(&out, 0);
    assert_string_equal(r->type_url, ADDR);
    assert_string_equal(r->response_nonce, "n1");
    assert_null(r->error_detail);
    assert_null(r->node);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    xds_out_cleanup(&out);
    assert_string_equal(xds_client_version(c, ADDR, "a"), version_of("A1"));
    assert_int_equal(xds_client_count(c, ADDR), 2);
    assert_false(xds_client_ready(c));

    /* An empty Authorization response makes it ready. */
    m = pack_resp(AUTH, "n2", NULL, 0, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 0);
    free(m);
    assert_true(xds_client_ready(c));
    xds_out_cleanup(&out);

    /* Reconnect: initial versions are what was retained, sorted. */
    xds_client_start(c, &out);
    assert_false(xds_client_ready(c));
    r = req_at(&out, 0);
    assert_int_equal(r->n_initial_resource_versions, 2);
    assert_string_equal(r->initial_resource_versions[0]->key, "a");
    assert_string_equal(r->initial_resource_versions[0]->value, version_of("A1"));
    assert_string_equal(r->initial_resource_versions[1]->key, "b");
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    xds_out_cleanup(&out);

    /* Garbage is a protocol error, with nothing sent. */
    assert_int_equal(xds_client_on_response(c, (const uint8_t *)"\x0a\xff", 2, &out), -MESH_EPROTO);
    assert_int_equal(out.n, 0);
    assert_string_equal(xds_client_last_error(c),
                        "response refused: envoy.service.discovery.v3.DeltaDiscoveryResponse "
                        "field 1: bad length");
    assert_int_equal(xds_client_stats(c)->acks, 2);
    xds_client_free(c);
}

static void
test_client_nack(void **state)
{
    struct applied a;
    struct xds_client *c = new_client(&a);
    struct xds_out out;
    size_t len;
    (void)state;

    xds_out_init(&out);
    static const struct res_spec v1[] = {{ADDR, "a", "A1"}, {ADDR, "b", "B1"}};
    uint8_t *m = pack_resp(ADDR, "n1", v1, 2, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 0);
    free(m);
    xds_out_cleanup(&out);

    a.reject_name = "a";
    static const struct res_spec v2[] = {
        {ADDR, "a", "A2"}, {ADDR, "b", "B2"}, {ADDR, "e", "<none>"}};
    static const char *const gone[] = {"zz"};
    m = pack_resp(ADDR, "n2", v2, 3, gone, 1, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 1);
    free(m);
    assert_int_equal(a.begins, 2);
    assert_int_equal(a.ends, 2);
    assert_int_equal(out.n, 1);
    assert_true(out.v[0].nack);
    pb_request *r = req_at(&out, 0);
    assert_string_equal(r->response_nonce, "n2");
    assert_non_null(r->error_detail);
    assert_int_equal(r->error_detail->code, 0);
    assert_string_equal(r->error_detail->message,
                        "a: bad address; e: XDS payload without resource");
    assert_string_equal(xds_client_last_error(c), r->error_detail->message);
    envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r, NULL);
    xds_out_cleanup(&out);
    /* a keeps A1, b took B2, e never arrived. */
    assert_string_equal(xds_client_version(c, ADDR, "a"), version_of("A1"));
    assert_string_equal(xds_client_version(c, ADDR, "b"), version_of("B2"));
    assert_null(xds_client_version(c, ADDR, "e"));
    assert_int_equal(xds_client_stats(c)->nacks, 1);
    assert_int_equal(xds_client_stats(c)->rejected, 2);

    /* Unknown types are ACKed and ignored, as ztunnel does. */
    m = pack_resp("type.x/Other", "n3", v1, 2, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 0);
    free(m);
    assert_int_equal(xds_client_stats(c)->unknown_types, 1);
    xds_out_cleanup(&out);
    xds_client_free(c);
}

static void
test_client_caps(void **state)
{
    struct applied a;
    struct xds_client_config cfg = {.node_id = "n", .max_resources = 2, .max_name_len = 4};
    struct xds_out out;
    size_t len;
    (void)state;

    memset(&a, 0, sizeof(a));
    assert_null(xds_client_new(&cfg)); /* no on_apply */
    cfg.on_apply = cb_apply;
    cfg.on_batch_begin = cb_begin;
    cfg.on_batch_end = cb_end;
    cfg.arg = &a;
    struct xds_client *c = xds_client_new(&cfg);
    xds_out_init(&out);

    static const struct res_spec three[] = {{ADDR, "a", "1"}, {ADDR, "b", "2"}, {ADDR, "c", "3"}};
    uint8_t *m = pack_resp(ADDR, "n1", three, 3, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 1);
    free(m);
    assert_int_equal(a.applies, 0);
    assert_int_equal(a.begins, 0);
    assert_int_equal(xds_client_count(c, ADDR), 0);
    xds_out_cleanup(&out);

    static const struct res_spec long_name[] = {{ADDR, "abcde", "1"}, {ADDR, "ok", "2"}};
    m = pack_resp(ADDR, "n2", long_name, 2, NULL, 0, &len);
    assert_int_equal(xds_client_on_response(c, m, len, &out), 1);
    free(m);
    assert_string_equal(xds_client_last_error(c), "abcde: resource name too long");
    assert_int_equal(xds_client_count(c, ADDR), 1);
    xds_out_cleanup(&out);
    xds_client_free(c);
}

/* ---- Client and server together ---- */

/* Sends every message of |from| to the other side, collecting its answers into |to|. */
static void
to_server(struct xds_server_stream *s, struct xds_out *from, struct xds_out *to)
{
    for (size_t i = 0; i < from->n; i++)
        assert_int_equal(xds_server_stream_on_request(s, from->v[i].data, from->v[i].len, to), 0);
    xds_out_cleanup(from);
}

static void
to_client(struct xds_client *c, struct xds_out *from, struct xds_out *to)
{
    for (size_t i = 0; i < from->n; i++)
        assert_int_equal(xds_client_on_response(c, from->v[i].data, from->v[i].len, to), 0);
    xds_out_cleanup(from);
}

/* Runs both sides until neither has anything to send. */
static void
pump(struct xds_server_stream *s, struct xds_client *c, struct xds_out *reqs, struct xds_out *resps)
{
    while (reqs->n > 0 || resps->n > 0) {
        to_server(s, reqs, resps);
        to_client(c, resps, reqs);
    }
}

static void
test_round_trip_reconnect(void **state)
{
    enum { N = 50 };
    struct applied a;
    struct events ev;
    struct xds_client *c = new_client(&a);
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct res_spec spec[N + 1];
    char names[N + 1][16], values[N + 1][16];
    struct xds_out reqs, resps;
    (void)state;

    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "w%02d", i);
        snprintf(values[i], sizeof(values[i]), "v1-%02d", i);
        spec[i] = (struct res_spec){ADDR, names[i], values[i]};
    }
    spec[N] = (struct res_spec){AUTH, "ns/allow", "P1"};
    struct xds_snapshot *s1 = snap_of(spec, N + 1);

    xds_out_init(&reqs);
    xds_out_init(&resps);
    xds_server_stream_push(s, s1, &resps);
    xds_client_start(c, &reqs);
    pump(s, c, &reqs, &resps);
    assert_true(xds_client_ready(c));
    assert_int_equal(xds_client_count(c, ADDR), N);
    assert_int_equal(xds_client_count(c, AUTH), 1);
    assert_int_equal(xds_server_stream_stats(s)->resources_sent, N + 1);
    assert_int_equal(xds_server_stream_stats(s)->acks, 2);

    /* Config change: 3 workloads change, one goes away, one is new. */
    snprintf(values[1], sizeof(values[1]), "v2-01");
    snprintf(values[2], sizeof(values[2]), "v2-02");
    snprintf(values[3], sizeof(values[3]), "v2-03");
    snprintf(names[N - 1], sizeof(names[N - 1]), "new");
    struct xds_snapshot *s2 = snap_of(spec, N + 1);
    a.log[0] = '\0';
    assert_int_equal(xds_server_stream_push(s, s2, &resps), 1);
    pump(s, c, &reqs, &resps);
    assert_string_equal(a.log, "+new +w01 +w02 +w03 -w49 ");
    assert_int_equal(xds_server_stream_stats(s)->resources_sent, N + 1 + 4);
    assert_int_equal(xds_client_count(c, ADDR), N);
    assert_string_equal(xds_client_version(c, ADDR, "w01"), version_of("v2-01"));

    /* The stream breaks; meanwhile w04 changes. A new stream must resend only w04. */
    xds_server_stream_free(s);
    snprintf(values[4], sizeof(values[4]), "v3-04");
    struct xds_snapshot *s3 = snap_of(spec, N + 1);
    s = new_stream(&ev, 0);
    xds_server_stream_push(s, s3, &resps);
    assert_int_equal(resps.n, 0);
    a.log[0] = '\0';
    xds_client_start(c, &reqs);
    pump(s, c, &reqs, &resps);
    assert_string_equal(a.log, "+w04 ");
    assert_int_equal(xds_server_stream_stats(s)->resources_sent, 1);
    assert_int_equal(xds_server_stream_stats(s)->responses, 2); /* one per type, Auth empty */
    assert_true(xds_client_ready(c));
    assert_int_equal(xds_client_stats(c)->connects, 2);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_server_stream_free(s);
    xds_client_free(c);
}

/* ---- Fuzz seeds ---- */

static void
seed_write(const char *dir, const char *name, const uint8_t *p, size_t len)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    fclose(f);
}

/* A fuzz_xds input: a mode byte, then records of a 2-byte big-endian length and bytes. */
struct seed {
    uint8_t data[8192];
    size_t len;
};

static void
seed_add(struct seed *sd, const uint8_t *p, size_t len)
{
    assert_true(sd->len + 2 + len <= sizeof(sd->data));
    sd->data[sd->len++] = (uint8_t)(len >> 8);
    sd->data[sd->len++] = (uint8_t)len;
    if (len > 0)
        memcpy(sd->data + sd->len, p, len);
    sd->len += len;
}

static void
seed_add_req(struct seed *sd, const struct req_spec *rs)
{
    size_t len;
    uint8_t *p = pack_req(rs, &len);
    seed_add(sd, p, len);
    free(p);
}

static void
test_write_corpus(void **state)
{
    const char *dir = getenv("MESH_XDS_CORPUS");
    (void)state;

    if (dir == NULL)
        skip();
    /* Server seeds (mode 1): requests; an empty record pushes the other snapshot. */
    struct seed sd = {.data = {1}, .len = 1};
    struct req_spec first = {.node = true, .type = ADDR};
    struct req_spec auth = {.type = AUTH};
    seed_add_req(&sd, &first);
    seed_add_req(&sd, &auth);
    seed_add(&sd, NULL, 0);
    seed_write(dir, "server_wildcard", sd.data, sd.len);
    sd.data[0] = 1 | 1 << 1; /* responses of at most 96 bytes: every push split */
    seed_write(dir, "server_wildcard_split", sd.data, sd.len);
    sd.data[0] = 1;

    sd.len = 1;
    struct req_spec init = {.node = true,
                            .type = ADDR,
                            .init_names = {"a", "b", "gone"},
                            .init_versions = {version_of("A1"), "x", ""}};
    struct req_spec sub = {.type = ADDR, .sub = {"*", "zz"}, .unsub = {"a"}};
    struct req_spec unstar = {.type = ADDR, .unsub = {"*"}};
    seed_add_req(&sd, &init);
    seed_add_req(&sd, &sub);
    seed_add(&sd, NULL, 0);
    seed_add_req(&sd, &unstar);
    seed_write(dir, "server_initial_versions", sd.data, sd.len);

    sd.len = 1;
    struct req_spec ondemand = {.node = true, .type = ADDR, .sub = {"*"}, .unsub = {"*"}};
    struct req_spec nack = {.type = ADDR, .nonce = "0000000000000000-1", .error = "bad"};
    seed_add_req(&sd, &ondemand);
    seed_add_req(&sd, &nack);
    seed_write(dir, "server_ondemand_stale_nack", sd.data, sd.len);

    /* Client seeds (mode 0): responses. */
    static const struct res_spec rs[] = {{ADDR, "a", "A1"}, {ADDR, "b", "<none>"}};
    static const char *const gone[] = {"zz", "a"};
    size_t len;
    uint8_t *p;
    sd.data[0] = 0;
    sd.len = 1;
    p = pack_resp(ADDR, "n1", rs, 2, gone, 2, &len);
    seed_add(&sd, p, len);
    free(p);
    p = pack_resp(AUTH, "n2", NULL, 0, NULL, 0, &len);
    seed_add(&sd, p, len);
    free(p);
    p = pack_resp("type.x/Other", "n3", rs, 1, NULL, 0, &len);
    seed_add(&sd, p, len);
    free(p);
    seed_write(dir, "client_responses", sd.data, sd.len);
    seed_write(dir, "empty", (const uint8_t *)"", 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_initial_and_ack),
        cmocka_unit_test(test_client_nack),
        cmocka_unit_test(test_client_caps),
        cmocka_unit_test(test_round_trip_reconnect),
        cmocka_unit_test(test_write_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
