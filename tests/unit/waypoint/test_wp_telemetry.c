/*
 * test_wp_telemetry.c - the waypoint's telemetry, pure parts (src/waypoint/telemetry.h):
 * Istio's labels for a request and a passthrough connection (reporter waypoint, the source
 * from the model and the peer's certificate, the destination from the endpoint, unknowns),
 * the series cap across the four HTTP families, and access-log lines in Istio's Envoy text
 * format and JSON keys, with escaping of what a peer sends.
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
#include "metrics/metrics.h"
#include "waypoint/telemetry.h"

#define TD "spiffe://cluster.local/ns/demo/sa/"
/* 2026-12-07T16:00:00.250Z */
#define WALL_MS 1796659200250ULL

static struct workload *
mk_workload(const char *name, const char *ip, const char *app, const char *ver)
{
    struct workload *w = xcalloc(1, sizeof(*w));
    w->uid = xasprintf("Kubernetes//Pod/demo/%s", name);
    w->name = xstrdup(name);
    w->ns = xstrdup("demo");
    w->service_account = xstrdup(name);
    w->workload_name = xstrdup(name);
    w->canonical_name = app ? xstrdup(app) : NULL;
    w->canonical_revision = ver ? xstrdup(ver) : NULL;
    w->addrs = xcalloc(1, sizeof(*w->addrs));
    w->n_addrs = 1;
    CHECK(ipaddr_parse(ip, &w->addrs[0]) == 0);
    w->tunnel = TUNNEL_HBONE;
    return w;
}

static struct service *
mk_service(const char *name)
{
    struct service *s = xcalloc(1, sizeof(*s));
    s->name = xstrdup(name);
    s->ns = xstrdup("demo");
    s->hostname = xasprintf("%s.demo.svc.cluster.local", name);
    return s;
}

struct fx {
    struct workload *client, *ep;
    struct service *svc, *backend;
    struct model *m;
    struct wp_peer_ctx p;
    struct wp_request_info ri;
};

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    f->client = mk_workload("curl", "198.18.1.5", "curl", NULL);
    f->ep = mk_workload("echo-v1", "198.18.2.7", "echo", "v1");
    f->svc = mk_service("echo");
    f->backend = mk_service("echo-v1");
    struct workload *ws[] = {f->client, f->ep};
    struct service *ss[] = {f->svc, f->backend};
    f->m = model_build(ws, 2, ss, 2);
    f->p = (struct wp_peer_ctx){
        .model = f->m,
        .client_identity = TD "curl",
        .client_port = 40000,
        .dst_port = 80,
        .service = f->svc,
        .cluster = "Kubernetes",
    };
    CHECK(ipaddr_parse("198.18.1.5", &f->p.client_ip) == 0);
    CHECK(ipaddr_parse("198.19.0.10", &f->p.dst_ip) == 0);
    f->ri = (struct wp_request_info){
        .method = "GET",
        .path = "/hello?x=1",
        .protocol = "HTTP/1.1",
        .authority = "echo",
        .request_id = "7d14fff6-f075-4aa4-bc13-a2e66cfbb255",
        .user_agent = "curl/7.88.1",
        .status = 200,
        .details = "via_upstream",
        .route = "demo.echo-split.0",
        .upstream = f->m->workloads[1],
        .upstream_port = 8080,
        .backend = f->m->services[1],
        .backend_port = 80,
        .policy = "",
        .bytes_in = 3,
        .bytes_out = 42,
        .duration_ms = 7,
    };
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    model_unref(f->m);
    workload_unref(f->client);
    workload_unref(f->ep);
    service_unref(f->svc);
    service_unref(f->backend);
    free(f);
    return 0;
}

static const char *
label(const char **v, const char *name)
{
    for (size_t i = 0; i < TL_N_HTTP; i++)
        if (strcmp(tl_names[i], name) == 0)
            return v[i];
    fail_msg("no label %s", name);
    return NULL;
}

/* Istio's waypoint label set (istio/proxy testdata server_waypoint_proxy_request_total). */
static void
test_request_labels(void **state)
{
    struct fx *f = *state;
    const char *v[TL_N_HTTP];
    char code[12], flags[64];
    static const char *const istio[] = {
        "reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
        "source_workload_namespace", "source_principal", "source_app", "source_version",
        "source_cluster", "destination_workload", "destination_workload_namespace",
        "destination_principal", "destination_app", "destination_version",
        "destination_service", "destination_canonical_service",
        "destination_canonical_revision", "destination_service_name",
        "destination_service_namespace", "destination_cluster", "request_protocol",
        "response_code", "grpc_response_status", "response_flags",
        "connection_security_policy",
    };

    assert_int_equal(TL_N_HTTP, ARRAY_LEN(istio));
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    for (size_t i = 0; i < ARRAY_LEN(istio); i++)
        assert_non_null(label(v, istio[i]));
    assert_string_equal(label(v, "reporter"), "waypoint");
    assert_string_equal(label(v, "source_workload"), "curl");
    assert_string_equal(label(v, "source_workload_namespace"), "demo");
    assert_string_equal(label(v, "source_principal"), TD "curl");
    assert_string_equal(label(v, "source_app"), "curl");
    assert_string_equal(label(v, "source_version"), "unknown");
    assert_string_equal(label(v, "source_cluster"), "Kubernetes");
    assert_string_equal(label(v, "destination_workload"), "echo-v1");
    assert_string_equal(label(v, "destination_principal"), TD "echo-v1");
    assert_string_equal(label(v, "destination_app"), "echo");
    assert_string_equal(label(v, "destination_version"), "v1");
    /* The route's backend, not the Service the client named. */
    assert_string_equal(label(v, "destination_service"), "echo-v1.demo.svc.cluster.local");
    assert_string_equal(label(v, "destination_service_name"), "echo-v1");
    assert_string_equal(label(v, "destination_service_namespace"), "demo");
    assert_string_equal(label(v, "request_protocol"), "http");
    assert_string_equal(label(v, "response_code"), "200");
    assert_string_equal(label(v, "grpc_response_status"), "");
    assert_string_equal(label(v, "response_flags"), "-");
    assert_string_equal(label(v, "connection_security_policy"), "mutual_tls");

    /* Denied: no backend, no endpoint; RBAC is not a response flag. */
    f->ri.status = 403;
    f->ri.flags = WP_FLAG_RBAC;
    f->ri.upstream = NULL;
    f->ri.backend = NULL;
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "response_code"), "403");
    assert_string_equal(label(v, "response_flags"), "-");
    assert_string_equal(label(v, "destination_workload"), "unknown");
    assert_string_equal(label(v, "destination_principal"), "unknown");
    assert_string_equal(label(v, "destination_service"), "echo.demo.svc.cluster.local");

    /* Retries exhausted on a failing upstream; a client the model does not know. */
    f->ri.status = 503;
    f->ri.flags = WP_FLAG_UF | WP_FLAG_URX;
    ipaddr_parse("198.18.9.9", &f->p.client_ip);
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "response_flags"), "UF,URX");
    assert_string_equal(label(v, "source_workload"), "unknown");
    assert_string_equal(label(v, "source_workload_namespace"), "unknown");
    assert_string_equal(label(v, "source_principal"), TD "curl"); /* the certificate still */
    /* No response sent at all (the client went away): Envoy's 0. */
    f->ri.status = 0;
    f->ri.flags = WP_FLAG_DC;
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "response_code"), "0");
    assert_string_equal(label(v, "response_flags"), "DC");
}

/* gRPC as Istio's waypoint reports it: request_protocol "grpc" and the grpc-status the client
 * got; a local gRPC answer is a 200 on the wire and in the report. */
static void
test_grpc_labels(void **state)
{
    struct fx *f = *state;
    const char *v[TL_N_HTTP];
    char code[12], flags[64];

    f->ri.protocol = "HTTP/2";
    f->ri.grpc = true;
    f->ri.grpc_status = "0";
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "request_protocol"), "grpc");
    assert_string_equal(label(v, "response_code"), "200");
    assert_string_equal(label(v, "grpc_response_status"), "0");
    f->ri.grpc_status = "7";
    f->ri.flags = WP_FLAG_RBAC;
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "response_code"), "200");
    assert_string_equal(label(v, "grpc_response_status"), "7");
    /* No response at all: no status to report. */
    f->ri.status = 0;
    f->ri.grpc_status = NULL;
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "grpc_response_status"), "");
    /* HTTP/2 but not gRPC: "http", no grpc status even if the engine had one. */
    f->ri.grpc = false;
    f->ri.grpc_status = "0";
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    assert_string_equal(label(v, "request_protocol"), "http");
    assert_string_equal(label(v, "grpc_response_status"), "");
}

static void
test_tcp_labels(void **state)
{
    struct fx *f = *state;
    const char *v[TL_N_HTTP] = {0};

    wp_tcp_labels(&f->p, f->m->workloads[1], v);
    assert_string_equal(v[TL_REPORTER], "waypoint");
    assert_string_equal(v[TL_PROTOCOL], "tcp");
    assert_string_equal(v[TL_FLAGS], "-");
    assert_string_equal(v[TL_SRC_PRINCIPAL], TD "curl");
    assert_string_equal(v[TL_DST_WORKLOAD], "echo-v1");
    assert_string_equal(v[TL_DST_SERVICE], "echo.demo.svc.cluster.local");
    assert_string_equal(v[TL_SECURITY], "mutual_tls");
    assert_null(v[TL_RESPONSE_CODE]); /* TCP metrics have no HTTP labels */
}

/*
 * The cap: label sets from many clients stop at WP_METRICS_MAX_SERIES per family; the rest
 * is dropped and counted, and memory stays where it was.
 */
static void
test_series_cap(void **state)
{
    struct fx *f = *state;
    struct metrics *r = metrics_new();
    struct metric *c = metrics_add(r, METRIC_COUNTER, "istio_requests_total", "", tl_names,
                                   TL_N_HTTP, WP_METRICS_MAX_SERIES);
    struct metric *h = metrics_add_histogram(r, "istio_request_duration_milliseconds", "",
                                             tl_names, TL_N_HTTP, WP_METRICS_MAX_HIST_SERIES,
                                             metrics_envoy_buckets, METRICS_ENVOY_N_BUCKETS);
    const char *v[TL_N_HTTP];
    char code[12], flags[64], id[80];

    f->p.model = NULL;
    for (int i = 0; i < WP_METRICS_MAX_SERIES + 500; i++) {
        snprintf(id, sizeof(id), TD "client-%d", i); /* a new principal: a new label set */
        f->p.client_identity = id;
        wp_request_labels(&f->p, &f->ri, v, code, flags);
        metric_add(c, v, 1);
        metric_observe(h, v, (double)f->ri.duration_ms);
    }
    assert_int_equal(metric_n_series(c), WP_METRICS_MAX_SERIES);
    assert_int_equal(metric_n_series(h), WP_METRICS_MAX_HIST_SERIES);
    assert_int_equal(metric_overflows(c), 500);
    assert_int_equal(metric_overflows(h), WP_METRICS_MAX_SERIES + 500 - WP_METRICS_MAX_HIST_SERIES);
    /* What that costs at most: every family full, rendered. */
    char *full = metrics_render(r);
    printf("# full counter and histogram families: %zu bytes rendered\n", strlen(full));
    assert_true(strlen(full) < 6 * 1024 * 1024);
    free(full);
    /* A label set already held still counts. */
    f->p.client_identity = TD "client-7";
    wp_request_labels(&f->p, &f->ri, v, code, flags);
    metric_add(c, v, 1);
    assert_true(metric_series_value(metric_series(c, v)) == 2);
    char *text = metrics_render(r);
    assert_non_null(strstr(text, METRICS_OVERFLOW_NAME "{metric=\"istio_requests_total\"} 500\n"));
    free(text);
    metrics_free(r);
}

static char *
line(struct fx *f, bool json)
{
    return wp_access_line(&f->p, &f->ri, WALL_MS, json);
}

static void
test_access_text(void **state)
{
    struct fx *f = *state;
    char *l = line(f, false);
    assert_string_equal(
        l, "[2026-12-07T16:00:00.243Z] \"GET /hello?x=1 HTTP/1.1\" 200 - via_upstream - \"-\" 3 42 7 - "
           "\"-\" \"curl/7.88.1\" \"7d14fff6-f075-4aa4-bc13-a2e66cfbb255\" \"echo\" "
           "\"198.18.2.7:8080\" inbound-vip|80|http|echo-v1.demo.svc.cluster.local - "
           "198.19.0.10:80 198.18.1.5:40000 - demo.echo-split.0\n");
    free(l);

    /* Denied: the policy in the details; no upstream, no cluster, no route. */
    f->ri.status = 403;
    f->ri.flags = WP_FLAG_RBAC;
    f->ri.details = "rbac_access_denied_matched_policy";
    f->ri.policy = "demo/deny-admin";
    f->ri.upstream = NULL;
    f->ri.backend = NULL;
    f->ri.route = NULL;
    f->ri.user_agent = "";
    l = line(f, false);
    assert_string_equal(
        l, "[2026-12-07T16:00:00.243Z] \"GET /hello?x=1 HTTP/1.1\" 403 - "
           "rbac_access_denied_matched_policy[demo/deny-admin] - \"-\" 3 42 7 - \"-\" \"-\" "
           "\"7d14fff6-f075-4aa4-bc13-a2e66cfbb255\" \"echo\" \"-\" - - 198.19.0.10:80 "
           "198.18.1.5:40000 - -\n");
    free(l);
    f->ri.policy = ""; /* denied because no ALLOW matched: Envoy's [none] */
    f->ri.flags = WP_FLAG_RBAC | WP_FLAG_DC;
    l = line(f, false);
    assert_non_null(strstr(l, "\" 403 DC rbac_access_denied_matched_policy[none] - "));
    free(l);

    /* What a peer sends cannot break the line or a quoted field; details have no spaces. */
    f->ri.user_agent = "evil\" \"x\\y\x01";
    f->ri.details = "bad request head";
    f->ri.flags = WP_FLAG_DC;
    l = line(f, false);
    assert_non_null(strstr(l, " \"evil\\x22 \\x22x\\x5cy\\x01\" "));
    assert_non_null(strstr(l, " 403 DC bad_request_head - "));
    assert_ptr_equal(strchr(l, '\n'), l + strlen(l) - 1); /* one line, whatever came in */
    free(l);

    /* Long fields are cut. */
    char *big = xmalloc(WP_ACCESS_FIELD_MAX * 2 + 1);
    memset(big, 'a', WP_ACCESS_FIELD_MAX * 2);
    big[WP_ACCESS_FIELD_MAX * 2] = '\0';
    f->ri.path = big;
    l = line(f, false);
    assert_true(strlen(l) < WP_ACCESS_FIELD_MAX + 400);
    assert_non_null(strstr(l, "aaa... HTTP/1.1\""));
    free(l);
    free(big);
}

static void
test_access_json(void **state)
{
    struct fx *f = *state;
    static const char *const keys[] = {
        "authority", "bytes_received", "bytes_sent", "connection_termination_details",
        "downstream_local_address", "downstream_remote_address", "duration", "method", "path",
        "protocol", "request_id", "requested_server_name", "response_code",
        "response_code_details", "response_flags", "route_name", "start_time",
        "upstream_cluster", "upstream_host", "upstream_local_address", "upstream_service_time",
        "upstream_transport_failure_reason", "user_agent", "x_forwarded_for",
    };
    json_error_t je;

    f->ri.user_agent = "caf\xc3\xa9 \"q\"\n";
    char *l = line(f, true);
    size_t n = strlen(l);
    assert_true(n > 0 && l[n - 1] == '\n' && strchr(l, '\n') == l + n - 1);
    json_t *o = json_loads(l, 0, &je);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), ARRAY_LEN(keys));
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        assert_non_null(json_object_get(o, keys[i]));
    assert_int_equal(json_integer_value(json_object_get(o, "response_code")), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "bytes_sent")), 42);
    assert_int_equal(json_integer_value(json_object_get(o, "duration")), 7);
    assert_string_equal(json_string_value(json_object_get(o, "start_time")),
                        "2026-12-07T16:00:00.243Z");
    assert_string_equal(json_string_value(json_object_get(o, "response_flags")), "-");
    assert_string_equal(json_string_value(json_object_get(o, "upstream_host")),
                        "198.18.2.7:8080");
    assert_true(json_is_null(json_object_get(o, "x_forwarded_for")));
    assert_true(json_is_null(json_object_get(o, "upstream_service_time")));
    /* Bytes >= 0x80 as \u00NN: always valid JSON; quotes and newlines escaped. */
    assert_string_equal(json_string_value(json_object_get(o, "user_agent")),
                        "caf\xc3\x83\xc2\xa9 \"q\"\n");
    json_decref(o);
    free(l);

    f->ri.status = 403;
    f->ri.flags = WP_FLAG_RBAC;
    f->ri.details = "rbac_access_denied_matched_policy";
    f->ri.upstream = NULL;
    f->ri.route = NULL;
    l = line(f, true);
    o = json_loads(l, 0, &je);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "upstream_host")));
    assert_true(json_is_null(json_object_get(o, "route_name")));
    assert_string_equal(json_string_value(json_object_get(o, "response_code_details")),
                        "rbac_access_denied_matched_policy[none]");
    json_decref(o);
    free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grpc_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
