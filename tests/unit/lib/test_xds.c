/*
 * test_xds.c - delta xDS snapshots and the server stream: wildcard and
 * initial versions, pushes of changes and removals, ACK/NACK and nonces,
 * unsubscribe, independent types, caps, splitting of large pushes.
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

/* ---- Snapshots ---- */

static void
test_snapshot(void **state)
{
    static const struct res_spec unsorted[] = {
        {AUTH, "z", "1"}, {ADDR, "b", "2"}, {ADDR, "a", "3"}, {"type.x/Other", "m", "4"}};
    struct xds_snapshot *s = snap_of(unsorted, 4);
    size_t first, n;
    (void)state;

    assert_non_null(s);
    assert_int_equal(xds_snapshot_len(s), 4);
    /* "...istio.security..." sorts before "...istio.workload...". */
    assert_string_equal(xds_snapshot_at(s, 0)->name, "z");
    assert_string_equal(xds_snapshot_at(s, 1)->name, "a");
    assert_string_equal(xds_snapshot_at(s, 2)->name, "b");
    assert_string_equal(xds_snapshot_at(s, 3)->name, "m");
    assert_string_equal(xds_snapshot_find(s, ADDR, "b")->version, version_of("2"));
    assert_null(xds_snapshot_find(s, ADDR, "z"));
    assert_null(xds_snapshot_find(s, AUTH, "a"));
    xds_snapshot_type_range(s, ADDR, &first, &n);
    assert_int_equal(first, 1);
    assert_int_equal(n, 2);
    xds_snapshot_type_range(s, AUTH, &first, &n);
    assert_int_equal(first, 0);
    assert_int_equal(n, 1);
    xds_snapshot_type_range(s, "type.x/Other", &first, &n);
    assert_int_equal(first, 3);
    assert_int_equal(n, 1);
    xds_snapshot_type_range(s, "type.x/Nothing", &first, &n);
    assert_int_equal(n, 0);
    assert_int_equal(strlen(xds_snapshot_version(s)), XDS_VERSION_LEN);

    /* Same content, same version; one byte more, another. */
    struct xds_snapshot *s2 = snap_of(unsorted, 4), *s3 = snap_of(unsorted, 3);
    assert_string_equal(xds_snapshot_version(s), xds_snapshot_version(s2));
    assert_string_not_equal(xds_snapshot_version(s), xds_snapshot_version(s3));
    assert_ptr_equal(xds_snapshot_ref(s2), s2);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_snapshot_unref(s);
    xds_snapshot_unref(NULL);

    /* Duplicates and missing names are refused, with everything freed. */
    static const struct res_spec dup[] = {{ADDR, "a", "1"}, {ADDR, "a", "2"}};
    assert_null(snap_of(dup, 2));
    struct xds_resource *bad = xcalloc(1, sizeof(*bad));
    bad->type_url = xstrdup(ADDR);
    assert_null(xds_snapshot_new(bad, 1));
    /* Empty is fine. */
    s = xds_snapshot_new(xcalloc(1, sizeof(struct xds_resource)), 0);
    assert_non_null(s);
    assert_int_equal(xds_snapshot_len(s), 0);
    assert_null(xds_snapshot_find(s, ADDR, "a"));
    xds_snapshot_unref(s);
}

/* ---- Server ---- */

static void
test_initial_wildcard(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *snap = snap_of(base_set, 4);
    struct xds_out out;
    struct req_spec first = {.node = true, .type = ADDR};
    struct req_spec auth = {.type = AUTH};
    (void)state;

    xds_out_init(&out);
    assert_null(xds_server_stream_node_id(s));
    /* No type asked for yet: a snapshot alone sends nothing. */
    assert_int_equal(xds_server_stream_push(s, snap, &out), 0);
    assert_int_equal(feed(s, &first, &out), 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_NODE], 1);
    assert_string_equal(xds_server_stream_node_meta(s, "NODE_NAME"), "node-1");
    assert_null(xds_server_stream_node_meta(s, "NAMESPACE"));
    assert_non_null(strstr(xds_server_stream_node_id(s), "ztunnel~10.0.0.1~"));

    pb_response *r = resp_at(&out, 0);
    assert_string_equal(r->system_version_info, xds_snapshot_version(snap));
    assert_int_equal(r->n_resources, 3);
    assert_string_equal(r->resources[0]->name, "a");
    assert_string_equal(r->resources[0]->version, version_of("A1"));
    assert_string_equal(r->resources[0]->resource->type_url, ADDR);
    assert_memory_equal(r->resources[0]->resource->value.data, "A1", 2);
    resp_free(r);
    char *n1 = expect_one(&out, ADDR, "a b c");

    /* The second type: no node needed any more. */
    assert_int_equal(feed(s, &auth, &out), 0);
    char *n2 = expect_one(&out, AUTH, "ns/deny");
    assert_string_not_equal(n1, n2);
    ack(s, ADDR, n1, &out);
    ack(s, AUTH, n2, &out);
    assert_int_equal(out.n, 0);
    assert_int_equal(xds_server_stream_stats(s)->acks, 2);
    assert_int_equal(xds_server_stream_stats(s)->resources_sent, 4);

    struct xds_server_type_status st;
    assert_int_equal(xds_server_stream_type_status_by_url(s, ADDR, &st), 0);
    assert_true(st.served && st.wildcard);
    assert_int_equal(st.n_held, 3);
    assert_int_equal(st.n_in_flight, 0);
    assert_string_equal(st.acked_version, xds_snapshot_version(snap));
    assert_int_equal(xds_server_stream_type_status_by_url(s, "nope", &st), -ENOENT);

    xds_snapshot_unref(snap);
    xds_server_stream_free(s);
}

static void
test_first_request_needs_node(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_out out;
    struct req_spec no_node = {.type = ADDR};
    struct req_spec no_type = {.node = true, .type = ""};
    (void)state;

    xds_out_init(&out);
    assert_int_equal(feed(s, &no_node, &out), -MESH_EPROTO);
    assert_int_equal(feed(s, &no_type, &out), -MESH_EPROTO);
    assert_null(xds_server_stream_node_id(s));
    assert_int_equal(xds_server_stream_on_request(s, (const uint8_t *)"\xff\xff", 2, &out),
                     -MESH_EPROTO);
    assert_string_equal(xds_server_stream_error(s),
                        "envoy.service.discovery.v3.DeltaDiscoveryRequest: bad tag at byte 0");
    /* Node.metadata (a Struct) nested past the limit: refused before protobuf-c sees it. */
    /* Request{node: {metadata: {fields: {value: <120 bytes>}}}}; the value: 60 levels. */
    static const uint8_t deep_head[] = {0x0a, 0x7e, 0x1a, 0x7c, 0x0a, 0x7a, 0x12, 0x78};
    uint8_t deep[sizeof(deep_head) + 120];
    memcpy(deep, deep_head, sizeof(deep_head));
    for (size_t i = 0; i < 120; i += 2) { /* Value{list_value (6): ListValue{values (1): ...}} */
        deep[sizeof(deep_head) + i] = i % 4 == 0 ? 0x32 : 0x0a;
        deep[sizeof(deep_head) + i + 1] = (uint8_t)(120 - i - 2);
    }
    assert_int_equal(xds_server_stream_on_request(s, deep, sizeof(deep), &out), -MESH_EPROTO);
    assert_non_null(strstr(xds_server_stream_error(s), "nested deeper than 32 messages"));
    assert_int_equal(xds_server_stream_n_types(s), 0);
    assert_int_equal(out.n, 0);
    xds_server_stream_free(s);
}

/* A first request, answered, before any snapshot: the answer waits for one. */
static void
test_initial_before_snapshot(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_out out;
    struct req_spec first = {.node = true, .type = AUTH};
    static const struct res_spec only_addr[] = {{ADDR, "a", "A1"}};
    struct xds_snapshot *snap = snap_of(only_addr, 1);
    (void)state;

    xds_out_init(&out);
    assert_int_equal(feed(s, &first, &out), 0);
    assert_int_equal(out.n, 0);
    /* No Authorization at all: still one (empty) answer, ztunnel waits for it. */
    assert_int_equal(xds_server_stream_push(s, snap, &out), 1);
    char *n = expect_one(&out, AUTH, "");
    ack(s, AUTH, n, &out);
    /* Nothing more until something changes. */
    assert_int_equal(xds_server_stream_push(s, snap, &out), 0);
    xds_snapshot_unref(snap);
    xds_server_stream_free(s);
}

static void
test_initial_versions(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *snap = snap_of(base_set, 4);
    struct xds_out out;
    /* Holds a (current), b (old), gone (vanished); c is new to it. */
    struct req_spec first = {.node = true,
                             .type = ADDR,
                             .init_names = {"a", "b", "gone"},
                             .init_versions = {version_of("A1"), "0123456789abcdef", ""}};
    (void)state;

    xds_out_init(&out);
    xds_server_stream_push(s, snap, &out);
    assert_int_equal(feed(s, &first, &out), 0);
    char *n = expect_one(&out, ADDR, "b c -gone");
    ack(s, ADDR, n, &out);
    assert_int_equal(xds_server_stream_stats(s)->resources_sent, 2);
    assert_int_equal(xds_server_stream_stats(s)->removals_sent, 1);

    /* All unchanged (as after a quick reconnect): an empty answer, for readiness. */
    struct xds_server_stream *s2 = new_stream(&ev, 0);
    struct req_spec same = {
        .node = true,
        .type = ADDR,
        .init_names = {"a", "b", "c"},
        .init_versions = {version_of("A1"), version_of("B1"), version_of("C1")}};
    xds_server_stream_push(s2, snap, &out);
    assert_int_equal(feed(s2, &same, &out), 0);
    free(expect_one(&out, ADDR, ""));
    assert_int_equal(xds_server_stream_stats(s2)->resources_sent, 0);

    xds_snapshot_unref(snap);
    xds_server_stream_free(s);
    xds_server_stream_free(s2);
}

static void
test_push_changes_and_removals(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec set2[] = {
        {ADDR, "a", "A2"}, {ADDR, "b", "B1"}, {ADDR, "c", "C1"}, {ADDR, "d", "D1"}};
    static const struct res_spec set3[] = {{ADDR, "a", "A2"}, {ADDR, "d", "D1"}};
    struct xds_snapshot *s2 = snap_of(set2, 4), *s3 = snap_of(set3, 2);
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    connect_acked(s, s1, "a b c");
    fake_now = 1000;
    assert_int_equal(xds_server_stream_push(s, s2, &out), 1);
    char *n = expect_one(&out, ADDR, "a d");
    fake_now = 1042;
    ack(s, ADDR, n, &out);
    assert_int_equal(ev.last_latency, 42);
    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.push_latency_ms, 42);
    assert_int_equal(st.last_ack_ms, 1042);
    assert_string_equal(st.acked_version, xds_snapshot_version(s2));

    /* The same snapshot again, or an equal one: nothing to send. */
    assert_int_equal(xds_server_stream_push(s, s2, &out), 0);
    struct xds_snapshot *s2b = snap_of(set2, 4);
    assert_int_equal(xds_server_stream_push(s, s2b, &out), 0);
    xds_snapshot_unref(s2b);

    /* Removal of b and c; Authorization is not subscribed, so its change is not sent. */
    assert_int_equal(xds_server_stream_push(s, s3, &out), 1);
    n = expect_one(&out, ADDR, "-b -c");
    ack(s, ADDR, n, &out);
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.n_held, 2);
    assert_int_equal(xds_server_stream_stats(s)->pushes, 3);
    assert_int_equal(xds_server_stream_stats(s)->removals_sent, 2);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_server_stream_free(s);
}

static void
test_nack(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec bad[] = {
        {ADDR, "a", "A-bad"}, {ADDR, "b", "B1"}, {ADDR, "c", "C2"}};
    static const struct res_spec bad_again[] = {
        {ADDR, "a", "A-bad"}, {ADDR, "b", "B1"}, {ADDR, "c", "C2"}, {ADDR, "e", "E1"}};
    static const struct res_spec fixed[] = {
        {ADDR, "a", "A3"}, {ADDR, "b", "B1"}, {ADDR, "c", "C2"}, {ADDR, "e", "E1"}};
    struct xds_snapshot *s2 = snap_of(bad, 3), *s3 = snap_of(bad_again, 4);
    struct xds_snapshot *s4 = snap_of(fixed, 4);
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    connect_acked(s, s1, "a b c");
    xds_server_stream_push(s, s2, &out);
    char *n = expect_one(&out, ADDR, "a c");
    struct req_spec nack = {.type = ADDR, .nonce = n, .error = "a: bad address"};
    assert_int_equal(feed(s, &nack, &out), 0);
    free(n);
    assert_int_equal(out.n, 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_NACK], 1);
    assert_int_equal(ev.n_rejected, 1); /* only a is named: c was taken */
    char want[64];
    snprintf(want, sizeof(want), "a@%s", version_of("A-bad"));
    assert_string_equal(ev.rejected[0], want);
    assert_string_equal(ev.last_message, "a: bad address");
    assert_int_equal(xds_server_stream_stats(s)->nacks, 1);

    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_string_equal(st.last_nack, "a: bad address");
    assert_int_equal(st.n_in_flight, 0);
    /* The push was NACKed: the ACKed version is still the first one. */
    assert_string_equal(st.acked_version, xds_snapshot_version(s1));

    /* Not resent: the same snapshot, then one where only e is new. */
    assert_int_equal(xds_server_stream_push(s, s2, &out), 0);
    xds_server_stream_push(s, s3, &out);
    n = expect_one(&out, ADDR, "e");
    ack(s, ADDR, n, &out);
    /* A newer version of a goes out. */
    xds_server_stream_push(s, s4, &out);
    n = expect_one(&out, ADDR, "a");
    ack(s, ADDR, n, &out);
    /* Back to the first snapshot: a (it holds A3) and c (it took C2) go out again. */
    xds_server_stream_push(s, s1, &out);
    n = expect_one(&out, ADDR, "a c -e");
    ack(s, ADDR, n, &out);
    assert_int_equal(ev.n[XDS_SERVER_EV_NACK], 1);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_snapshot_unref(s4);
    xds_server_stream_free(s);
}

/*
 * A NACK naming none of the resources rejects them all. ztunnel may still
 * have applied some, so going back to the previous versions resends them.
 */
static void
test_nack_unnamed(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec bad[] = {
        {ADDR, "a", "A-bad"}, {ADDR, "b", "B1"}, {ADDR, "c", "C2"}};
    struct xds_snapshot *s2 = snap_of(bad, 3);
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    connect_acked(s, s1, "a b c");
    xds_server_stream_push(s, s2, &out);
    char *n = expect_one(&out, ADDR, "a c");
    struct req_spec nack = {.type = ADDR, .nonce = n, .error = "something failed"};
    assert_int_equal(feed(s, &nack, &out), 0);
    free(n);
    assert_int_equal(ev.n_rejected, 2);
    /* Not retried... */
    assert_int_equal(xds_server_stream_push(s, s2, &out), 0);
    /* ...but the old versions are sent again, once. */
    assert_int_equal(xds_server_stream_push(s, s1, &out), 1);
    n = expect_one(&out, ADDR, "a c");
    ack(s, ADDR, n, &out);
    assert_int_equal(xds_server_stream_push(s, s1, &out), 0);
    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_server_stream_free(s);
}

static void
test_nonces(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec set2[] = {{ADDR, "a", "A2"}, {ADDR, "b", "B1"}, {ADDR, "c", "C1"}};
    static const struct res_spec set3[] = {{ADDR, "a", "A3"}, {ADDR, "b", "B3"}, {ADDR, "c", "C1"}};
    struct xds_snapshot *s2 = snap_of(set2, 3), *s3 = snap_of(set3, 3);
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    connect_acked(s, s1, "a b c");
    xds_server_stream_push(s, s2, &out);
    char *n = expect_one(&out, ADDR, "a");

    /* One push in flight: the next snapshot waits. */
    assert_int_equal(xds_server_stream_push(s, s3, &out), 0);
    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.n_in_flight, 1);

    /* A stale nonce (another stream's) neither ACKs nor NACKs. */
    struct req_spec stale = {.type = ADDR, .nonce = "0000000000000000-1", .error = "x"};
    assert_int_equal(feed(s, &stale, &out), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_STALE_NONCE], 1);
    assert_int_equal(ev.n[XDS_SERVER_EV_NACK], 0);
    assert_int_equal(xds_server_stream_stats(s)->stale_nonces, 1);

    /* The real ACK releases the waiting push: b changed, a changed again. */
    struct req_spec real = {.type = ADDR, .nonce = n};
    assert_int_equal(feed(s, &real, &out), 0);
    char *n2 = expect_one(&out, ADDR, "a b");
    /* The old nonce again is stale now. */
    assert_int_equal(feed(s, &real, &out), 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_STALE_NONCE], 2);
    free(n);
    ack(s, ADDR, n2, &out);
    assert_int_equal(xds_server_stream_stats(s)->acks, 3);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_server_stream_free(s);
}

static void
test_unsubscribe(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec set2[] = {{ADDR, "a", "A2"}, {ADDR, "b", "B2"}, {ADDR, "c", "C2"}};
    struct xds_snapshot *s2 = snap_of(set2, 3);
    struct xds_out out;
    /* ztunnel's on-demand start: "*" in and out, i.e. nothing. */
    struct req_spec first = {.node = true, .type = ADDR, .sub = {"*"}, .unsub = {"*"}};
    (void)state;

    xds_out_init(&out);
    xds_server_stream_push(s, s1, &out);
    assert_int_equal(feed(s, &first, &out), 0);
    char *n = expect_one(&out, ADDR, "");
    ack(s, ADDR, n, &out);

    /* Explicit names; "zz" does not exist and is reported once as removed. */
    struct req_spec sub = {.type = ADDR, .sub = {"a", "b", "zz"}};
    assert_int_equal(feed(s, &sub, &out), 0);
    n = expect_one(&out, ADDR, "a b -zz");
    ack(s, ADDR, n, &out);

    struct req_spec unsub = {.type = ADDR, .unsub = {"a"}};
    assert_int_equal(feed(s, &unsub, &out), 0);
    assert_int_equal(out.n, 0); /* no removal: the client drops a itself */
    xds_server_stream_push(s, s2, &out);
    n = expect_one(&out, ADDR, "b");
    ack(s, ADDR, n, &out);

    /* Wildcard on: everything not held; then off: names not subscribed are forgotten. */
    struct req_spec star = {.type = ADDR, .sub = {"*"}};
    assert_int_equal(feed(s, &star, &out), 0);
    n = expect_one(&out, ADDR, "a c");
    ack(s, ADDR, n, &out);
    struct req_spec unstar = {.type = ADDR, .unsub = {"*"}};
    assert_int_equal(feed(s, &unstar, &out), 0);
    assert_int_equal(out.n, 0);
    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_false(st.wildcard);
    assert_int_equal(st.n_held, 1); /* b */
    assert_int_equal(xds_server_stream_push(s, s1, &out), 1);
    n = expect_one(&out, ADDR, "b");
    ack(s, ADDR, n, &out);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_server_stream_free(s);
}

static void
test_two_types_independent(void **state)
{
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 0);
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    static const struct res_spec set2[] = {
        {ADDR, "a", "A2"}, {ADDR, "b", "B1"}, {ADDR, "c", "C1"}, {AUTH, "ns/deny", "D2"}};
    static const struct res_spec set3[] = {
        {ADDR, "a", "A2"}, {ADDR, "b", "B1"}, {ADDR, "c", "C1"}, {AUTH, "ns/deny", "D3"}};
    struct xds_snapshot *s2 = snap_of(set2, 4), *s3 = snap_of(set3, 4);
    struct xds_out out;
    struct req_spec auth = {.type = AUTH};
    (void)state;

    xds_out_init(&out);
    connect_acked(s, s1, "a b c");
    assert_int_equal(feed(s, &auth, &out), 0);
    char *na = expect_one(&out, AUTH, "ns/deny");
    ack(s, AUTH, na, &out);

    /* Both change; Address is left unanswered. */
    assert_int_equal(xds_server_stream_push(s, s2, &out), 2);
    pb_response *r0 = resp_at(&out, 0), *r1 = resp_at(&out, 1);
    assert_string_equal(r0->type_url, ADDR);
    assert_string_equal(r1->type_url, AUTH);
    char *n_addr = xstrdup(r0->nonce), *n_auth = xstrdup(r1->nonce);
    resp_free(r0);
    resp_free(r1);
    xds_out_cleanup(&out);
    /* An Address nonce on the Authorization type is stale there. */
    struct req_spec cross = {.type = AUTH, .nonce = n_addr};
    assert_int_equal(feed(s, &cross, &out), 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_STALE_NONCE], 1);
    ack(s, AUTH, n_auth, &out);
    /* Authorization moves on while Address still waits. */
    assert_int_equal(xds_server_stream_push(s, s3, &out), 1);
    na = expect_one(&out, AUTH, "ns/deny");
    ack(s, AUTH, na, &out);
    ack(s, ADDR, n_addr, &out);
    assert_int_equal(out.n, 0);

    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_server_stream_free(s);
}

static void
test_unknown_type_and_caps(void **state)
{
    struct events ev;
    struct xds_server_config cfg = {.max_types = 3, .max_names = 3, .max_name_len = 8};
    struct xds_server_stream *s;
    struct xds_snapshot *s1 = snap_of(base_set, 4);
    struct xds_out out;
    (void)state;

    memset(&ev, 0, sizeof(ev));
    cfg.on_event = record_event;
    cfg.arg = &ev;
    s = xds_server_stream_new(&cfg);
    xds_out_init(&out);
    xds_server_stream_push(s, s1, &out);
    struct req_spec other = {.node = true, .type = "type.googleapis.com/istio.workload.Workload"};
    assert_int_equal(feed(s, &other, &out), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(ev.n[XDS_SERVER_EV_UNKNOWN_TYPE], 1);
    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_false(st.served);

    struct req_spec too_many = {.type = ADDR, .sub = {"a", "b", "c", "d"}};
    assert_int_equal(feed(s, &too_many, &out), -MESH_ELIMIT);
    struct req_spec too_long = {.type = ADDR, .sub = {"123456789"}};
    assert_int_equal(feed(s, &too_long, &out), -MESH_ELIMIT);
    struct req_spec init_long = {.type = ADDR, .init_names = {"a"}, .init_versions = {"v"}};
    init_long.init_names[0] = "abcdefghijk";
    assert_int_equal(feed(s, &init_long, &out), -MESH_ELIMIT);
    /* Refused requests left no type behind. */
    assert_int_equal(xds_server_stream_n_types(s), 1);
    assert_int_equal(out.n, 0);

    struct req_spec t2 = {.type = "type.x/2"}, t3 = {.type = "type.x/3"};
    assert_int_equal(feed(s, &t2, &out), 0);
    assert_int_equal(feed(s, &t3, &out), 0);
    assert_int_equal(feed(s, &too_many, &out), -MESH_ELIMIT); /* a fourth type */
    assert_int_equal(ev.n[XDS_SERVER_EV_UNKNOWN_TYPE], 3);

    xds_snapshot_unref(s1);
    xds_server_stream_free(s);
}

static void
test_large_push_split(void **state)
{
    enum { N = 100 };
    struct events ev;
    struct xds_server_stream *s = new_stream(&ev, 4096);
    struct xds_resource *v = xcalloc(N + 1, sizeof(*v));
    struct xds_out out;
    char name[32];
    (void)state;

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "ns/w%03d", i);
        v[i].type_url = xstrdup(ADDR);
        v[i].name = xstrdup(name);
        v[i].len = 200;
        v[i].bytes = xmalloc(200);
        memset(v[i].bytes, 'a' + i % 26, 200);
    }
    /* One resource alone over the cap: sent by itself, and reported. */
    v[N].type_url = xstrdup(ADDR);
    v[N].name = xstrdup("zz/huge");
    v[N].len = 5000;
    v[N].bytes = xcalloc(1, 5000);
    struct xds_snapshot *snap = xds_snapshot_new(v, N + 1);
    struct req_spec first = {.node = true, .type = ADDR};

    xds_out_init(&out);
    xds_server_stream_push(s, snap, &out);
    assert_int_equal(feed(s, &first, &out), 0);
    assert_true(out.n >= 6);
    assert_int_equal(ev.n[XDS_SERVER_EV_OVERSIZED], 1);
    size_t total = 0;
    char **nonces = xcalloc(out.n, sizeof(*nonces));
    size_t n_out = out.n;
    for (size_t i = 0; i < out.n; i++) {
        pb_response *r = resp_at(&out, i);
        if (i + 1 < out.n)
            assert_true(out.v[i].len <= 4096);
        else
            assert_string_equal(r->resources[0]->name, "zz/huge");
        /* In order, no resource twice. */
        for (size_t k = 0; k < r->n_resources; k++) {
            if (total < N) {
                snprintf(name, sizeof(name), "ns/w%03zu", total);
                assert_string_equal(r->resources[k]->name, name);
            }
            total++;
        }
        nonces[i] = xstrdup(r->nonce);
        resp_free(r);
    }
    assert_int_equal(total, N + 1);
    xds_out_cleanup(&out);

    struct xds_server_type_status st;
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.n_in_flight, n_out);
    /* Answering the second settles the first too (clients answer in order). */
    ack(s, ADDR, nonces[1], &out);
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.n_in_flight, n_out - 2);
    assert_null(st.acked_version);
    for (size_t i = 2; i < n_out; i++)
        ack(s, ADDR, nonces[i], &out);
    xds_server_stream_type_status(s, 0, &st);
    assert_int_equal(st.n_in_flight, 0);
    assert_string_equal(st.acked_version, xds_snapshot_version(snap));
    assert_int_equal(xds_server_stream_stats(s)->acks, n_out);
    assert_int_equal(xds_server_stream_stats(s)->pushes, 1);
    free(nonces[0]);
    free(nonces);
    xds_snapshot_unref(snap);
    xds_server_stream_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_initial_wildcard),
        cmocka_unit_test(test_first_request_needs_node),
        cmocka_unit_test(test_initial_before_snapshot),
        cmocka_unit_test(test_initial_versions),
        cmocka_unit_test(test_push_changes_and_removals),
        cmocka_unit_test(test_nack),
        cmocka_unit_test(test_nack_unnamed),
        cmocka_unit_test(test_nonces),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_two_types_independent),
        cmocka_unit_test(test_unknown_type_and_caps),
        cmocka_unit_test(test_large_push_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
