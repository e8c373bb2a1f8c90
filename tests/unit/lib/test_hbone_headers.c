/*
 * test_hbone_headers.c - the headers a CONNECT carries (lib/hbone, hbone_headers_make):
 * forwarded with and without the service host, IPv6 in brackets, the source workload as W3C
 * baggage (its cluster or the default one, canonical name and revision, empty items left
 * out), no baggage header at all when the source is unknown, and a fresh W3C traceparent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hbone/hbone.h"
#include "model/model.h"

static const char *
header(const struct hbone_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->h[i].name, name) == 0)
            return h->h[i].value;
    return NULL;
}

static void
check_traceparent(const char *t)
{
    assert_non_null(t);
    assert_int_equal(strlen(t), 55); /* 00-<32 hex>-<16 hex>-00 */
    assert_memory_equal(t, "00-", 3);
    assert_int_equal(t[35], '-');
    assert_string_equal(t + 52, "-00");
    for (size_t i = 3; i < 52; i++)
        if (i != 35 && strchr("0123456789abcdef", t[i]) == NULL)
            fail_msg("traceparent %s: not hex at %zu", t, i);
}

static void
test_with_source(void **state)
{
    (void)state;
    struct workload w = {.name = "client-7d9", .ns = "demo", .canonical_name = "client",
                         .canonical_revision = "v1", .workload_name = "client"};
    struct ipaddr ip;
    struct hbone_headers h;
    assert_int_equal(ipaddr_parse("198.18.0.5", &ip), 0);
    hbone_headers_make(&h, &ip, 40000, "echo.demo.svc.cluster.local", &w, "Kubernetes");
    assert_int_equal(h.n, 3);
    assert_string_equal(header(&h, "forwarded"),
                        "for=\"198.18.0.5:40000\";host=echo.demo.svc.cluster.local");
    assert_string_equal(header(&h, "baggage"),
                        "k8s.cluster.name=Kubernetes,k8s.namespace.name=demo,k8s.pod.name=client,"
                        "service.name=client,service.version=v1");
    check_traceparent(header(&h, "traceparent"));
    char first[64];
    snprintf(first, sizeof(first), "%s", header(&h, "traceparent"));
    w.cluster_id = "east";
    w.canonical_revision = "";
    w.workload_name = NULL;
    hbone_headers_make(&h, &ip, 40000, NULL, &w, "Kubernetes");
    assert_string_equal(header(&h, "baggage"),
                        "k8s.cluster.name=east,k8s.namespace.name=demo,k8s.pod.name=client-7d9,"
                        "service.name=client");
    assert_string_equal(header(&h, "forwarded"), "for=\"198.18.0.5:40000\"");
    assert_string_not_equal(header(&h, "traceparent"), first);
}

static void
test_without_source(void **state)
{
    (void)state;
    struct ipaddr ip;
    struct hbone_headers h;
    assert_int_equal(ipaddr_parse("2001:db8::7", &ip), 0);
    hbone_headers_make(&h, &ip, 8080, NULL, NULL, "Kubernetes");
    assert_int_equal(h.n, 2);
    assert_null(header(&h, "baggage"));
    assert_string_equal(header(&h, "forwarded"), "for=\"[2001:db8::7]:8080\"");
    check_traceparent(header(&h, "traceparent"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_with_source),
        cmocka_unit_test(test_without_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
