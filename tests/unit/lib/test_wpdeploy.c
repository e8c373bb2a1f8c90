/*
 * test_wpdeploy.c - lib/wpdeploy, what a waypoint Gateway deploys and its status, shared by
 * meshctl's local cluster and meshd on Kubernetes. Tables: Gateway in (annotations, labels,
 * class, environment) -> ServiceAccount, Deployment and Service out, field by field;
 * wp_holds (server defaults are fine, a user's edit of a rendered field is not); the status
 * (Pending then Programmed, addresses, listener, observedGeneration, lastTransitionTime kept
 * while a condition holds, so a recomputed status needs no patch); route attachment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "wpdeploy/wpdeploy.h"

static json_t *
parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s: %s", e.text, s);
    return j;
}

/* A value at a dotted path ("spec.template.spec.containers.0.args"); numbers index arrays. */
static const json_t *
at(const json_t *j, const char *path)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = strtok_r(buf, ".", &save); p != NULL && j != NULL;
         p = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, strtoul(p, NULL, 10)) : json_object_get(j, p);
    return j;
}

static const char *
str(const json_t *j, const char *path)
{
    const char *s = json_string_value(at(j, path));
    return s != NULL ? s : "(none)";
}

/* The value after flag |flag| in the Deployment's container args. */
static const char *
arg(const json_t *dep, const char *flag)
{
    const json_t *args = at(dep, "spec.template.spec.containers.0.args");
    for (size_t i = 0; i + 1 < json_array_size(args); i++)
        if (strcmp(json_string_value(json_array_get(args, i)), flag) == 0)
            return json_string_value(json_array_get(args, i + 1));
    return "(none)";
}

#define GW_BASE                                                                                    \
    "\"apiVersion\":\"gateway.networking.k8s.io/v1\",\"kind\":\"Gateway\","                        \
    "\"spec\":{\"gatewayClassName\":\"%s\",\"listeners\":[{\"name\":\"mesh\",\"port\":15008,"      \
    "\"protocol\":\"HBONE\"}]}"

static json_t *
gateway(const char *cls, const char *meta_extra)
{
    char *s = xasprintf("{" GW_BASE ",\"metadata\":{\"name\":\"wp\",\"namespace\":\"demo\","
                        "\"uid\":\"uid-1\",\"generation\":4%s}}",
                        cls, meta_extra);
    json_t *j = parse(s);
    free(s);
    return j;
}

static const struct wp_env local_env = {
    .creds = WP_CREDS_LOCAL, .xds_address = "198.18.0.1:15012", .cluster_dir = "/run/amesh"};
static const struct wp_env kube_env = {
    .creds = WP_CREDS_KUBE, .xds_address = "198.19.0.10:15012", .image = "reg/waypoint:1"};

struct render_case {
    const char *name;
    const char *cls;
    const char *meta; /* appended to metadata */
    const struct wp_env *env;
    bool rendered;
    const char *sa, *deployment; /* names */
    int replicas;
    const char *root_cert, *token, *image; /* "(none)" when absent */
    bool volumes;
};

static const struct render_case render_cases[] = {
    {"local, defaults", WP_CLASS, "", &local_env, true, "wp", "wp", 1,
     "/run/amesh/state/root-cert.pem", "/run/amesh/nodes/$(NODE_NAME)/token", "(none)", false},
    {"kube, defaults", WP_CLASS, "", &kube_env, true, "wp", "wp", 1, WP_KUBE_ROOT_FILE,
     WP_KUBE_TOKEN_FILE, "reg/waypoint:1", true},
    {"kube, renamed and 3 replicas", WP_CLASS,
     ",\"annotations\":{\"gateway.istio.io/name-override\":\"wpd\","
     "\"gateway.istio.io/service-account\":\"wpsa\",\"amesh.io/waypoint-replicas\":\"3\"}",
     &kube_env, true, "wpsa", "wpd", 3, WP_KUBE_ROOT_FILE, WP_KUBE_TOKEN_FILE, "reg/waypoint:1",
     true},
    {"0 replicas", WP_CLASS, ",\"annotations\":{\"amesh.io/waypoint-replicas\":\"0\"}", &kube_env,
     true, "wp", "wp", 0, WP_KUBE_ROOT_FILE, WP_KUBE_TOKEN_FILE, "reg/waypoint:1", true},
    {"17 replicas: refused", WP_CLASS, ",\"annotations\":{\"amesh.io/waypoint-replicas\":\"17\"}",
     &kube_env, .rendered = false},
    {"replicas not a number: refused", WP_CLASS,
     ",\"annotations\":{\"amesh.io/waypoint-replicas\":\"2x\"}", &kube_env, .rendered = false},
    {"another class: nothing", "istio", "", &kube_env, .rendered = false},
};

static void
test_render_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(render_cases); i++) {
        const struct render_case *c = &render_cases[i];
        json_t *gw = gateway(c->cls, c->meta);
        json_t *objs = wp_render(gw, c->env);
        print_message("case %s\n", c->name);
        if (!c->rendered) {
            assert_null(objs);
            json_decref(gw);
            continue;
        }
        assert_non_null(objs);
        assert_int_equal(json_array_size(objs), 3);
        const json_t *sa = json_array_get(objs, 0), *dep = json_array_get(objs, 1),
                     *svc = json_array_get(objs, 2);
        assert_string_equal(str(sa, "kind"), "ServiceAccount");
        assert_string_equal(str(dep, "kind"), "Deployment");
        assert_string_equal(str(svc, "kind"), "Service");
        assert_string_equal(str(sa, "metadata.name"), c->sa);
        assert_string_equal(str(dep, "metadata.name"), c->deployment);
        assert_string_equal(str(svc, "metadata.name"), c->deployment);
        for (size_t k = 0; k < 3; k++) {
            const json_t *o = json_array_get(objs, k);
            assert_string_equal(str(o, "metadata.namespace"), "demo");
            assert_string_equal(str(o, "metadata.ownerReferences.0.kind"), "Gateway");
            assert_string_equal(str(o, "metadata.ownerReferences.0.name"), "wp");
            assert_string_equal(str(o, "metadata.ownerReferences.0.uid"), "uid-1");
            const json_t *labels = at(o, "metadata.labels");
            assert_string_equal(json_string_value(json_object_get(labels, WP_LABEL_GATEWAY_NAME)),
                                "wp");
            assert_true(wp_owned_by(o, "wp"));
            assert_false(wp_owned_by(o, "other"));
        }
        assert_int_equal(json_integer_value(at(dep, "spec.replicas")), c->replicas);
        const json_t *pl = at(dep, "spec.template.metadata.labels");
        assert_string_equal(json_string_value(json_object_get(pl, "istio.io/dataplane-mode")),
                            "none");
        assert_string_equal(json_string_value(json_object_get(pl, WP_LABEL_GATEWAY_NAME)), "wp");
        assert_string_equal(json_string_value(json_object_get(at(dep, "spec.selector.matchLabels"),
                                                              WP_LABEL_GATEWAY_NAME)),
                            "wp");
        assert_string_equal(str(dep, "spec.template.spec.serviceAccountName"), c->sa);
        assert_string_equal(arg(dep, "--xds-address"), c->env->xds_address);
        assert_string_equal(arg(dep, "--root-cert"), c->root_cert);
        assert_string_equal(arg(dep, "--token"), c->token);
        assert_string_equal(arg(dep, "--namespace"), "$(POD_NAMESPACE)");
        assert_string_equal(arg(dep, "--name"), "wp");
        assert_string_equal(arg(dep, "--service-account"), "$(SERVICE_ACCOUNT)");
        assert_string_equal(arg(dep, "--node"), "$(NODE_NAME)");
        assert_int_equal(json_integer_value(at(
                             dep, "spec.template.spec.containers.0.readinessProbe.httpGet.port")),
                         WP_STATUS_PORT);
        assert_string_equal(str(dep, "spec.template.spec.containers.0.image"), c->image);
        if (c->volumes) {
            assert_string_equal(str(dep, "spec.template.spec.volumes.0.projected.sources.0."
                                         "serviceAccountToken.audience"),
                                "istio-ca");
            assert_string_equal(str(dep, "spec.template.spec.volumes.1.configMap.name"),
                                "istio-ca-root-cert");
            assert_true(json_is_false(at(dep, "spec.template.spec.automountServiceAccountToken")));
        } else {
            assert_null(at(dep, "spec.template.spec.volumes"));
        }
        assert_string_equal(str(svc, "spec.ports.0.name"), "status-port");
        assert_int_equal(json_integer_value(at(svc, "spec.ports.0.port")), WP_STATUS_PORT);
        assert_string_equal(str(svc, "spec.ports.1.appProtocol"), "hbone");
        assert_int_equal(json_integer_value(at(svc, "spec.ports.1.port")), WP_HBONE_PORT);
        json_decref(objs);
        json_decref(gw);
    }
}

struct holds_case {
    const char *have, *want;
    bool holds;
};

static const struct holds_case holds_cases[] = {
    {"{\"a\":1,\"b\":{\"c\":\"x\",\"d\":2}}", "{\"b\":{\"c\":\"x\"}}", true}, /* defaults extra */
    {"{\"a\":1}", "{\"a\":2}", false},                                        /* edited */
    {"{\"a\":1}", "{\"b\":1}", false},                                        /* removed */
    {"{\"l\":[{\"n\":1,\"x\":0},{\"n\":2}]}", "{\"l\":[{\"n\":1},{\"n\":2}]}", true},
    {"{\"l\":[{\"n\":1},{\"n\":2},{\"n\":3}]}", "{\"l\":[{\"n\":1},{\"n\":2}]}", false},
    {"{\"l\":[{\"n\":2},{\"n\":1}]}", "{\"l\":[{\"n\":1},{\"n\":2}]}", false},
    {"{\"a\":\"1\"}", "{\"a\":1}", false},
    {"{\"a\":true}", "{\"a\":true}", true},
};

/* spec.infrastructure labels and annotations reach all three and the pods; ours win. */
static void
test_infrastructure(void **state)
{
    (void)state;
    json_t *gw = gateway(WP_CLASS, "");
    json_object_set_new(json_object_get(gw, "spec"), "infrastructure",
                        json_pack("{s:{s:s, s:s}, s:{s:s}}", "labels", "team", "a",
                                  "istio.io/dataplane-mode", "ambient", "annotations", "note",
                                  "x"));
    json_t *objs = wp_render(gw, &kube_env);
    assert_non_null(objs);
    const json_t *dep = json_array_get(objs, 1);
    for (size_t k = 0; k < 3; k++) {
        const json_t *o = json_array_get(objs, k);
        assert_string_equal(str(o, "metadata.labels.team"), "a");
        assert_string_equal(str(o, "metadata.annotations.note"), "x");
    }
    assert_string_equal(str(dep, "spec.template.metadata.labels.team"), "a");
    assert_string_equal(str(dep, "spec.template.metadata.annotations.note"), "x");
    const json_t *pl = at(dep, "spec.template.metadata.labels");
    assert_string_equal(json_string_value(json_object_get(pl, "istio.io/dataplane-mode")), "none");
    json_decref(objs);
    json_decref(gw);
}

static void
test_holds_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(holds_cases); i++) {
        json_t *h = parse(holds_cases[i].have), *w = parse(holds_cases[i].want);
        if (wp_holds(h, w) != holds_cases[i].holds)
            fail_msg("wp_holds(%s, %s) is not %d", holds_cases[i].have, holds_cases[i].want,
                     holds_cases[i].holds);
        json_decref(h);
        json_decref(w);
    }
    /* A rendered Deployment holds in itself plus what the server adds, not after a scale. */
    json_t *gw = gateway(WP_CLASS, "");
    json_t *objs = wp_render(gw, &kube_env);
    json_t *live = json_deep_copy(json_array_get(objs, 1));
    json_object_set_new(json_object_get(live, "spec"), "progressDeadlineSeconds",
                        json_integer(600));
    json_object_set_new(live, "status", json_pack("{s:i}", "readyReplicas", 1));
    assert_true(wp_holds(live, json_array_get(objs, 1)));
    json_object_set_new(json_object_get(live, "spec"), "replicas", json_integer(3));
    assert_false(wp_holds(live, json_array_get(objs, 1)));
    json_decref(live);
    json_decref(objs);
    json_decref(gw);
}

static const json_t *
condition(const json_t *conds, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        if (strcmp(str(c, "type"), type) == 0)
            return c;
    }
    fail_msg("no condition %s", type);
    return NULL;
}

static void
test_status(void **state)
{
    (void)state;
    json_t *gw = gateway(WP_CLASS, "");
    struct wp_facts f = {.service = true,
                         .cluster_ip = "198.19.0.7",
                         .deployment = true,
                         .replicas = 1,
                         .ready = 0,
                         .attached_routes = 2};

    /* Not ready: Accepted, Programmed False (Pending) with what it waits for. */
    json_t *st = wp_gateway_status(gw, &f, "2026-12-07T10:00:00Z");
    const json_t *conds = json_object_get(st, "conditions");
    assert_string_equal(str(condition(conds, "Accepted"), "status"), "True");
    assert_string_equal(str(condition(conds, "Accepted"), "reason"), "Accepted");
    const json_t *p = condition(conds, "Programmed");
    assert_string_equal(str(p, "status"), "False");
    assert_string_equal(str(p, "reason"), "Pending");
    assert_string_equal(str(p, "message"),
                        "Waiting for a ready replica of deployment demo/wp (0/1 ready)");
    assert_int_equal(json_integer_value(json_object_get(p, "observedGeneration")), 4);
    assert_string_equal(str(st, "addresses.0.type"), "IPAddress");
    assert_string_equal(str(st, "addresses.0.value"), "198.19.0.7");
    assert_string_equal(str(st, "addresses.1.value"), "wp.demo.svc.cluster.local");
    assert_string_equal(str(st, "listeners.0.name"), "mesh");
    assert_int_equal(json_integer_value(at(st, "listeners.0.attachedRoutes")), 2);
    assert_true(json_is_array(at(st, "listeners.0.supportedKinds")));
    assert_string_equal(str(condition(at(st, "listeners.0.conditions"), "Conflicted"), "status"),
                        "False");

    /* Written: recomputed later from the same facts it is the same (no patch, no loop). */
    json_object_set(gw, "status", st);
    json_t *again = wp_gateway_status(gw, &f, "2026-12-07T10:05:00Z");
    assert_true(wp_status_same(json_object_get(gw, "status"), again));
    json_decref(again);

    /* Ready: Programmed True with istiod's message, a new transition time; Accepted keeps its. */
    f.ready = 1;
    json_t *ready = wp_gateway_status(gw, &f, "2026-12-07T10:06:00Z");
    assert_false(wp_status_same(json_object_get(gw, "status"), ready));
    conds = json_object_get(ready, "conditions");
    p = condition(conds, "Programmed");
    assert_string_equal(str(p, "status"), "True");
    assert_string_equal(str(p, "reason"), "Programmed");
    assert_string_equal(str(p, "message"), "Resource programmed, assigned to service(s) "
                                           "wp.demo.svc.cluster.local:15008");
    assert_string_equal(str(p, "lastTransitionTime"), "2026-12-07T10:06:00Z");
    assert_string_equal(str(condition(conds, "Accepted"), "lastTransitionTime"),
                        "2026-12-07T10:00:00Z");

    /* A new generation: observedGeneration follows, so the status differs. */
    json_object_set(gw, "status", ready);
    json_object_set_new(json_object_get(gw, "metadata"), "generation", json_integer(5));
    json_t *gen5 = wp_gateway_status(gw, &f, "2026-12-07T10:07:00Z");
    assert_false(wp_status_same(json_object_get(gw, "status"), gen5));
    assert_int_equal(json_integer_value(at(gen5, "conditions.1.observedGeneration")), 5);
    /* Fields another writer put beside ours do not make it differ. */
    json_t *cur = json_deep_copy(gen5);
    json_object_set_new(cur, "extra", json_string("x"));
    assert_true(wp_status_same(cur, gen5));

    /* No Service: no addresses, and not Programmed even with a ready replica. */
    struct wp_facts nosvc = {.deployment = true, .replicas = 1, .ready = 1};
    json_t *ns = wp_gateway_status(gw, &nosvc, "2026-12-07T10:08:00Z");
    assert_int_equal(json_array_size(json_object_get(ns, "addresses")), 0);
    assert_string_equal(str(condition(json_object_get(ns, "conditions"), "Programmed"), "status"),
                        "False");

    json_t *cls = parse("{\"metadata\":{\"name\":\"istio-waypoint\",\"generation\":1}}");
    json_t *cst = wp_class_status(cls, "2026-12-07T10:00:00Z");
    assert_string_equal(str(cst, "conditions.0.type"), "Accepted");
    assert_string_equal(str(cst, "conditions.0.status"), "True");
    json_decref(cls);
    json_decref(cst);
    json_decref(ns);
    json_decref(cur);
    json_decref(gen5);
    json_decref(ready);
    json_decref(st);
    json_decref(gw);
}

struct route_case {
    const char *route_ns, *parent_ref, *allowed_from; /* allowed_from NULL: default (Same) */
    bool attaches;
};

static const struct route_case route_cases[] = {
    {"demo", "{\"name\":\"wp\"}", NULL, true},
    {"demo", "{\"name\":\"wp\",\"sectionName\":\"mesh\",\"port\":15008}", NULL, true},
    {"demo", "{\"name\":\"wp\",\"sectionName\":\"other\"}", NULL, false},
    {"demo", "{\"name\":\"wp\",\"port\":80}", NULL, false},
    {"demo", "{\"name\":\"other\"}", NULL, false},
    {"demo", "{\"name\":\"wp\",\"kind\":\"Service\",\"group\":\"\"}", NULL, false},
    {"app", "{\"name\":\"wp\",\"namespace\":\"demo\"}", NULL, false},
    {"app", "{\"name\":\"wp\",\"namespace\":\"demo\"}", "All", true},
    {"app", "{\"name\":\"wp\"}", "All", false}, /* names app/wp */
    {"app", "{\"name\":\"wp\",\"namespace\":\"demo\"}", "Selector", false},
};

static void
test_route_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(route_cases); i++) {
        const struct route_case *c = &route_cases[i];
        char *g =
            xasprintf("{\"metadata\":{\"name\":\"wp\",\"namespace\":\"demo\"},\"spec\":{"
                      "\"gatewayClassName\":\"istio-waypoint\",\"listeners\":[{\"name\":"
                      "\"mesh\",\"port\":15008,\"protocol\":\"HBONE\"%s%s%s}]}}",
                      c->allowed_from ? ",\"allowedRoutes\":{\"namespaces\":{\"from\":\"" : "",
                      c->allowed_from ? c->allowed_from : "", c->allowed_from ? "\"}}" : "");
        char *r = xasprintf("{\"metadata\":{\"name\":\"r\",\"namespace\":\"%s\"},\"spec\":{"
                            "\"parentRefs\":[%s]}}",
                            c->route_ns, c->parent_ref);
        json_t *gw = parse(g), *route = parse(r);
        if (wp_route_attaches(route, gw) != c->attaches)
            fail_msg("route %s in %s (from %s): attaches is not %d", c->parent_ref, c->route_ns,
                     c->allowed_from ? c->allowed_from : "default", c->attaches);
        json_decref(gw);
        json_decref(route);
        free(g);
        free(r);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_table), cmocka_unit_test(test_infrastructure),
        cmocka_unit_test(test_holds_table),  cmocka_unit_test(test_status),
        cmocka_unit_test(test_route_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
