/*
 * test_pbjson.c - proto3 JSON to wire bytes (lib/pbjson): what a hand-written Route or
 * Policy becomes (checked by unpacking with protobuf-c), both field spellings, durations,
 * enums, oneofs, and what is refused with which path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/base.h"
#include "pbjson/pbjson.h"
#include "waypoint.pb-c.h"

static Amesh__Waypoint__V1__Route *
route_of(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    char err[512];
    uint8_t *b;
    size_t n;
    assert_non_null(j);
    if (pbjson_encode(&amesh__waypoint__v1__route__descriptor, j, &b, &n, err, sizeof(err)) < 0)
        fail_msg("refused: %s", err);
    json_decref(j);
    Amesh__Waypoint__V1__Route *r = amesh__waypoint__v1__route__unpack(NULL, n, b);
    free(b);
    assert_non_null(r);
    return r;
}

/* The error for |text| as a Route; "" when accepted. */
static const char *
route_err(const char *text)
{
    static char err[512];
    json_t *j = json_loads(text, 0, NULL);
    uint8_t *b;
    size_t n;
    assert_non_null(j);
    err[0] = '\0';
    if (pbjson_encode(&amesh__waypoint__v1__route__descriptor, j, &b, &n, err, sizeof(err)) == 0) {
        free(b);
        err[0] = '\0';
    } else {
        assert_null(b);
    }
    json_decref(j);
    return err;
}

static void
test_route_fields(void **state)
{
    (void)state;
    Amesh__Waypoint__V1__Route *r = route_of(
        "{\"service\": {\"namespace\": \"ns\", \"hostname\": \"h.ns.svc.cluster.local\"},"
        " \"port\": 8080, \"protocol\": \"GRPC\", \"sources\": [\"HTTPRoute/ns/a\"],"
        " \"rules\": [{\"name\": \"one\", \"match\": {\"prefix\": \"/api\", \"method\": \"GET\","
        "   \"headers\": [{\"name\": \"x\", \"regex\": \"a.*\"}]},"
        "   \"backends\": [{\"service\": {\"namespace\": \"ns\", \"hostname\": \"b\"}, \"port\": \"9090\","
        "     \"weight\": 3}],"
        "   \"timeout\": \"2.5s\", \"backend_timeout\": \"0.001s\","
        "   \"retry\": {\"attempts\": 4, \"codes\": [503, \"502\"], \"backoff\": \"-1.5s\"}},"
        "  {\"directStatus\": 418, \"redirect\": null}]}");
    assert_string_equal(r->service->namespace_, "ns");
    assert_int_equal(r->port, 8080);
    assert_int_equal(r->protocol, AMESH__WAYPOINT__V1__PROTOCOL__GRPC);
    assert_int_equal(r->n_sources, 1);
    assert_int_equal(r->n_rules, 2);
    const Amesh__Waypoint__V1__Rule *a = r->rules[0];
    assert_string_equal(a->name, "one");
    assert_int_equal(a->match->path_case, AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX);
    assert_string_equal(a->match->prefix, "/api");
    assert_string_equal(a->match->method, "GET");
    assert_string_equal(a->match->headers[0]->regex, "a.*");
    assert_int_equal(a->backends[0]->port, 9090);
    assert_int_equal(a->backends[0]->weight, 3);
    assert_int_equal(a->timeout->seconds, 2);
    assert_int_equal(a->timeout->nanos, 500000000);
    assert_int_equal(a->backend_timeout->seconds, 0);
    assert_int_equal(a->backend_timeout->nanos, 1000000);
    assert_int_equal(a->retry->attempts, 4);
    assert_int_equal(a->retry->n_codes, 2);
    assert_int_equal(a->retry->codes[0], 503);
    assert_int_equal(a->retry->codes[1], 502);
    assert_int_equal(a->retry->backoff->seconds, -1);
    assert_int_equal(a->retry->backoff->nanos, -500000000);
    assert_int_equal(r->rules[1]->direct_status, 418);
    assert_null(r->rules[1]->redirect);
    amesh__waypoint__v1__route__free_unpacked(r, NULL);
}

static void
test_policy(void **state)
{
    (void)state;
    json_t *j = json_loads("{\"name\": \"p\", \"namespace\": \"ns\", \"action\": 1,"
                           " \"targets\": [{\"gateway\": \"wp\"}],"
                           " \"rules\": [{\"clauses\": [{\"matches\": [{\"notPaths\":"
                           "   [{\"presence\": true}], \"paths\": [{\"template\": \"/a/{*}\"}]}]}]}]}",
                           0, NULL);
    char err[256];
    uint8_t *b;
    size_t n;
    assert_int_equal(pbjson_encode(&amesh__waypoint__v1__policy__descriptor, j, &b, &n, err,
                                   sizeof(err)), 0);
    Amesh__Waypoint__V1__Policy *p = amesh__waypoint__v1__policy__unpack(NULL, n, b);
    assert_non_null(p);
    assert_int_equal(p->action, 1);
    assert_string_equal(p->targets[0]->gateway, "wp");
    const Amesh__Waypoint__V1__PolicyMatch *m = p->rules[0]->clauses[0]->matches[0];
    assert_int_equal(m->n_not_paths, 1);
    assert_true(m->not_paths[0]->presence);
    assert_string_equal(m->paths[0]->template_, "/a/{*}");
    amesh__waypoint__v1__policy__free_unpacked(p, NULL);
    free(b);
    json_decref(j);
}

static void
test_refusals(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"{\"prot\": \"TCP\"}", "prot: no such field in amesh.waypoint.v1.Route"},
        {"{\"protocol\": \"SCTP\"}", "protocol: \"SCTP\" is not a value of amesh.waypoint.v1.Protocol"},
        {"{\"protocol\": 9}", "protocol: 9 is not a value of"},
        {"{\"port\": -1}", "port: -1 is out of range"},
        {"{\"port\": 4294967296}", "port: 4294967296 is out of range"},
        {"{\"port\": \"12x\"}", "port: \"12x\" is not an integer in range"},
        {"{\"port\": 1.5}", "port: expected an integer"},
        {"{\"port\": true}", "port: expected an integer"},
        {"{\"sources\": \"a\"}", "sources: expected a list"},
        {"{\"sources\": [1]}", "sources[0]: expected a string"},
        {"{\"rules\": [{}, {\"match\": {\"exact\": \"/\", \"prefix\": \"/\"}}]}",
         "rules[1].match.prefix: another member of its oneof is already set"},
        {"{\"rules\": [{\"timeout\": \"1.5\"}]}", "rules[0].timeout: expected a duration"},
        {"{\"rules\": [{\"timeout\": \"s\"}]}", "rules[0].timeout: expected a duration"},
        {"{\"rules\": [{\"timeout\": \"1.s\"}]}", "rules[0].timeout: expected a duration"},
        {"{\"rules\": [{\"timeout\": \"1.0000000001s\"}]}", "more than 9 fraction digits"},
        {"{\"rules\": [{\"timeout\": \"99999999999999s\"}]}", "out of range"},
        {"{\"rules\": [{\"timeout\": 5}]}", "rules[0].timeout: expected a duration"},
        {"{\"rules\": [{\"match\": []}]}", "rules[0].match: expected an object"},
        {"[]", "expected an object (amesh.waypoint.v1.Route)"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *e = route_err(cases[i][0]);
        if (strstr(e, cases[i][1]) == NULL)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i][0], e, cases[i][1]);
    }
}

static void
test_size_cap(void **state)
{
    (void)state;
    json_t *j = json_object(), *src = json_array();
    char *big = xmalloc(1 << 20);
    memset(big, 'a', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    for (int i = 0; i < 5; i++)
        json_array_append_new(src, json_string(big));
    json_object_set_new(j, "sources", src);
    char err[256];
    uint8_t *b;
    size_t n;
    assert_int_equal(pbjson_encode(&amesh__waypoint__v1__route__descriptor, j, &b, &n, err,
                                   sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "larger than"));
    free(big);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_fields),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_size_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
