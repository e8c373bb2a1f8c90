/*
 * test_xds_own.c - types served from a stream's own snapshot
 * (own_type_urls, xds_server_stream_push_own): what meshd uses to give each
 * waypoint only its Routes and Policies while Address stays shared. A stream
 * without an own snapshot never answers those types; each stream gets its
 * own set, changes to it are pushed as diffs, and shared pushes leave them
 * alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_xds_util.h"

#define ROUTE "type.googleapis.com/amesh.waypoint.v1.Route"

static struct xds_server_stream *
own_stream(struct events *ev)
{
    static const char *const types[] = {ADDR, AUTH, ROUTE};
    static const char *const own[] = {ROUTE};
    struct xds_server_config cfg = {.type_urls = types,
                                    .n_type_urls = 3,
                                    .own_type_urls = own,
                                    .n_own_type_urls = 1,
                                    .on_event = record_event,
                                    .arg = ev};
    memset(ev, 0, sizeof(*ev));
    return xds_server_stream_new(&cfg);
}

static void
test_own_types(void **state)
{
    static const struct res_spec shared[] = {{ADDR, "a", "A1"}, {ROUTE, "leak", "L"}};
    static const struct res_spec w1[] = {{ROUTE, "r1", "R1"}};
    static const struct res_spec w1b[] = {{ROUTE, "r1", "R1b"}, {ROUTE, "r3", "R3"}};
    static const struct res_spec w2[] = {{ROUTE, "r2", "R2"}};
    struct events e1, e2, e3;
    struct xds_server_stream *s1 = own_stream(&e1), *s2 = own_stream(&e2), *z = own_stream(&e3);
    struct xds_snapshot *snap = snap_of(shared, 2), *o1 = snap_of(w1, 1), *o1b = snap_of(w1b, 2),
                        *o2 = snap_of(w2, 1);
    struct req_spec addr = {.node = true, .type = ADDR};
    struct req_spec route = {.type = ROUTE};
    struct xds_out out;
    (void)state;

    xds_out_init(&out);
    xds_server_stream_push(s1, snap, &out);
    xds_server_stream_push(s2, snap, &out);
    xds_server_stream_push(z, snap, &out);
    assert_int_equal(out.n, 0);
    /* Shared Address as usual; Route from the shared snapshot never. */
    assert_int_equal(feed(s1, &addr, &out), 0);
    ack(s1, ADDR, expect_one(&out, ADDR, "a"), &out);
    assert_int_equal(feed(z, &addr, &out), 0);
    ack(z, ADDR, expect_one(&out, ADDR, "a"), &out);
    /* z (a ztunnel) asks for Route: no own snapshot, no answer, ever. */
    assert_int_equal(feed(z, &route, &out), 0);
    assert_int_equal(out.n, 0);
    xds_server_stream_push(z, snap, &out);
    assert_int_equal(out.n, 0);
    /* s1 asks before it has one: answered when it gets it. */
    assert_int_equal(feed(s1, &route, &out), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(xds_server_stream_push_own(s1, o1, &out), 1);
    char *n = expect_one(&out, ROUTE, "r1");
    ack(s1, ROUTE, n, &out);
    /* s2 gets its own only. */
    assert_int_equal(feed(s2, &addr, &out), 0);
    ack(s2, ADDR, expect_one(&out, ADDR, "a"), &out);
    xds_server_stream_push_own(s2, o2, &out);
    assert_int_equal(feed(s2, &route, &out), 0);
    ack(s2, ROUTE, expect_one(&out, ROUTE, "r2"), &out);
    /* A shared push does not touch own types; an own push sends the diff. */
    xds_server_stream_push(s1, snap, &out);
    assert_int_equal(out.n, 0);
    xds_server_stream_push_own(s1, o1b, &out);
    ack(s1, ROUTE, expect_one(&out, ROUTE, "r1 r3"), &out);
    xds_server_stream_push_own(s1, o1, &out);
    ack(s1, ROUTE, expect_one(&out, ROUTE, "r1 -r3"), &out);
    /* The same content again: nothing. */
    struct xds_snapshot *o1again = snap_of(w1, 1);
    assert_int_equal(xds_server_stream_push_own(s1, o1again, &out), 0);
    assert_int_equal(out.n, 0);

    xds_out_cleanup(&out);
    xds_snapshot_unref(o1again);
    xds_snapshot_unref(snap);
    xds_snapshot_unref(o1);
    xds_snapshot_unref(o1b);
    xds_snapshot_unref(o2);
    xds_server_stream_free(s1);
    xds_server_stream_free(s2);
    xds_server_stream_free(z);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
