/*
 * test_k8s_api.c - API objects in the store (k8s_store_put_json(), meshd's
 * Kubernetes source): the same validation and last-good-state rules as
 * files, diagnostics named after the source with line 0, removal, many
 * changes committed once (and the view staying valid until then), and one
 * object coming both from a file and from the API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8s/k8s_internal.h"

static json_t *
obj(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s: %s", text, e.text);
    return j;
}

/* Puts |text| as source |name|; returns what k8s_store_put_json() did. */
static int
put(struct k8s_store *st, const char *name, const char *text, struct k8s_diags *d, bool commit)
{
    json_t *j = obj(text);
    int rc = k8s_store_put_json(st, name, j, d, commit);
    json_decref(j);
    return rc;
}

static const char *
pod_ip(const struct k8s_obj *o)
{
    return json_string_value(json_object_get(json_object_get(k8s_obj_json(o), "status"), "podIP"));
}

#define POD(ns, name, ip)                                                                          \
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"" name                     \
    "\",\"namespace\":\"" ns "\",\"uid\":\"u-" name "\",\"resourceVersion\":\"7\","              \
    "\"managedFields\":[{\"manager\":\"kubectl\",\"operation\":\"Apply\"}]},"                    \
    "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]},"          \
    "\"status\":{\"phase\":\"Running\",\"podIP\":\"" ip "\",\"podIPs\":[{\"ip\":\"" ip "\"}]}}"

#define AP(action)                                                                                 \
    "{\"apiVersion\":\"security.istio.io/v1\",\"kind\":\"AuthorizationPolicy\","                 \
    "\"metadata\":{\"name\":\"deny\",\"namespace\":\"demo\"},"                                    \
    "\"spec\":{\"action\":\"" action "\",\"rules\":[{\"from\":[{\"source\":"                       \
    "{\"namespaces\":[\"other\"]}}]}]}}"

/* Table: one source, a sequence of puts; after each, the rc, the diagnostic and the state. */
static const struct step {
    const char *name; /* source */
    const char *json;
    int rc;
    const char *diag; /* substring of the first error or warning rendered, or NULL for none */
    enum k8s_kind kind;
    const char *ns, *obj_name;
    const char *field; /* spec.action or status.podIP of what is in effect, NULL: absent */
} steps[] = {
    {"api:Pod/demo/a", POD("demo", "a", "198.18.0.1"), 0, NULL, K8S_POD, "demo", "a",
     "198.18.0.1"},
    /* A bad pod IP: an error on the source, line 0, and the previous version stays. */
    {"api:Pod/demo/a", POD("demo", "a", "not-an-ip"), -MESH_ECONFIG, "api:Pod/demo/a:0: error:",
     K8S_POD, "demo", "a", "198.18.0.1"},
    {"api:Pod/demo/a", POD("demo", "a", "198.18.0.2"), 0, NULL, K8S_POD, "demo", "a",
     "198.18.0.2"},
    {"api:AuthorizationPolicy/demo/deny", AP("DENY"), 0, NULL, K8S_AUTHORIZATION_POLICY, "demo",
     "deny", "DENY"},
    /* Istio's webhook refuses this action: the last good policy stays in effect. */
    {"api:AuthorizationPolicy/demo/deny", AP("FORBID"), -MESH_ECONFIG,
     "api:AuthorizationPolicy/demo/deny:0: error:", K8S_AUTHORIZATION_POLICY, "demo", "deny",
     "DENY"},
    /* Not an object at all: nothing known of it, nothing replaced. */
    {"api:Pod/demo/a", "[1]", -MESH_ECONFIG, "api:Pod/demo/a:0: error: expected a Kubernetes",
     K8S_POD, "demo", "a", "198.18.0.2"},
    /* A kind the store does not decode: a warning, and the source now holds nothing. */
    {"api:Pod/demo/a", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"}}",
     0, "api:Pod/demo/a:0: warning: unknown kind ConfigMap", K8S_POD, "demo", "a", NULL},
};

static void
test_put_table(void **state)
{
    struct k8s_store *st = k8s_store_new();
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
        const struct step *s = &steps[i];
        struct k8s_diags d = {0};
        json_t *j = obj(s->json);
        int rc = k8s_store_put_json(st, s->name, j, &d, true);
        json_decref(j);
        if (rc != s->rc)
            fail_msg("step %zu: rc %d, want %d", i, rc, s->rc);
        if (s->diag == NULL && k8s_diags_count(&d, K8S_ERROR) + k8s_diags_count(&d, K8S_WARNING))
            fail_msg("step %zu: unexpected diagnostic %s", i, k8s_diag_str(&d.v[0]));
        if (s->diag != NULL) {
            assert_true(d.n > 0);
            char *got = k8s_diag_str(&d.v[0]);
            if (strstr(got, s->diag) == NULL)
                fail_msg("step %zu: diagnostic \"%s\", want \"%s\"", i, got, s->diag);
            free(got);
            assert_int_equal(d.v[0].line, 0);
        }
        const struct k8s_obj *o = k8s_store_find(st, s->kind, s->ns, s->obj_name);
        if (s->field == NULL) {
            assert_null(o);
        } else {
            if (o == NULL)
                fail_msg("step %zu: %s %s/%s not in effect", i, k8s_kind_name(s->kind), s->ns,
                         s->obj_name);
            assert_string_equal(k8s_obj_file(o), s->name);
            assert_int_equal(k8s_obj_line(o), 0);
            const char *got = s->kind == K8S_POD
                                  ? pod_ip(o)
                                  : json_string_value(json_object_get(
                                        json_object_get(k8s_obj_json(o), "spec"), "action"));
            if (got == NULL || strcmp(got, s->field) != 0)
                fail_msg("step %zu: in effect %s, want %s", i, got ? got : "(none)", s->field);
        }
        k8s_diags_clear(&d);
    }
    /* The store's standing diagnostics are those of the last put of each source. */
    struct k8s_diags all = {0};
    k8s_store_file_diags(st, &all);
    assert_int_equal(k8s_diags_count(&all, K8S_ERROR), 1); /* the refused policy */
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

/* What the server records of writers is dropped; the rest is kept as sent. */
static void
test_managed_fields_dropped(void **state)
{
    struct k8s_store *st = k8s_store_new();
    (void)state;

    assert_int_equal(put(st, "api:Pod/demo/a", POD("demo", "a", "198.18.0.1"), NULL, true), 0);
    const struct k8s_obj *o = k8s_store_find(st, K8S_POD, "demo", "a");
    assert_non_null(o);
    const json_t *meta = json_object_get(k8s_obj_json(o), "metadata");
    assert_null(json_object_get(meta, "managedFields"));
    assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "7");
    k8s_store_free(st);
}

static void
test_remove(void **state)
{
    struct k8s_store *st = k8s_store_new();
    (void)state;

    assert_int_equal(put(st, "api:Pod/demo/a", POD("demo", "a", "198.18.0.1"), NULL, true), 0);
    assert_int_equal(put(st, "api:Pod/demo/b", POD("demo", "b", "198.18.0.2"), NULL, true), 0);
    uint64_t g = k8s_store_generation(st);
    k8s_store_forget(st, "api:Pod/demo/a", true);
    assert_null(k8s_store_find(st, K8S_POD, "demo", "a"));
    assert_non_null(k8s_store_find(st, K8S_POD, "demo", "b"));
    assert_true(k8s_store_generation(st) > g);
    /* Removing what is not there changes nothing. */
    g = k8s_store_generation(st);
    k8s_store_forget(st, "api:Pod/demo/a", true);
    k8s_store_forget(st, "api:Pod/demo/zz", true);
    assert_int_equal(k8s_store_generation(st), g);
    /* Putting the same object again is no change either. */
    assert_int_equal(put(st, "api:Pod/demo/b", POD("demo", "b", "198.18.0.2"), NULL, true), 0);
    assert_int_equal(k8s_store_generation(st), g);
    k8s_store_free(st);
}

/*
 * A relist: thousands of puts and removes, one commit. Until the commit the
 * view (objects, counts, generation) is the previous one and every object it
 * returns is still valid (ASan would catch a read of a replaced one).
 */
static void
test_many_one_commit(void **state)
{
    enum { N = 3000 };
    struct k8s_store *st = k8s_store_new();
    char name[64], json[1024];
    (void)state;

    assert_int_equal(put(st, "api:Pod/demo/p0", POD("demo", "p0", "198.18.0.1"), NULL, true), 0);
    const struct k8s_obj *before = k8s_store_find(st, K8S_POD, "demo", "p0");
    uint64_t eff0 = st->eff_version, gen0 = k8s_store_generation(st);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "api:Pod/demo/p%d", i);
        snprintf(json, sizeof(json),
                 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p%d\","
                 "\"namespace\":\"demo\"},\"spec\":{\"nodeName\":\"n1\"},"
                 "\"status\":{\"podIP\":\"198.18.%d.%d\"}}",
                 i, 1 + i / 250, 1 + i % 250);
        assert_int_equal(put(st, name, json, NULL, false), 0);
    }
    k8s_store_forget(st, "api:Pod/demo/p1", false);
    /* Nothing visible yet: the old p0 (replaced) is still what the view returns. */
    assert_int_equal(k8s_store_count(st, K8S_POD), 1);
    assert_ptr_equal(k8s_store_find(st, K8S_POD, "demo", "p0"), before);
    assert_string_equal(pod_ip(before), "198.18.0.1");
    assert_int_equal(k8s_store_generation(st), gen0);
    assert_int_equal(st->eff_version, eff0);

    k8s_store_commit(st);
    assert_int_equal(st->eff_version, eff0 + 1); /* derived once */
    assert_true(k8s_store_generation(st) > gen0);
    assert_int_equal(k8s_store_count(st, K8S_POD), N - 1);
    assert_null(k8s_store_find(st, K8S_POD, "demo", "p1"));
    const struct k8s_obj *p0 = k8s_store_find(st, K8S_POD, "demo", "p0");
    assert_string_equal(pod_ip(p0), "198.18.1.1");
    /* A commit with nothing pending derives nothing. */
    k8s_store_commit(st);
    assert_int_equal(st->eff_version, eff0 + 1);
    k8s_store_free(st);
}

/*
 * One object from a file and from the API: the file wins (an absolute path
 * sorts before "api:"), the API's copy is reported as a duplicate on its
 * source, and takes effect when the file goes.
 */
static void
test_file_and_api(void **state)
{
    static const char yaml[] = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n"
                               "  namespace: demo\nspec:\n  nodeName: n1\n"
                               "status:\n  podIP: 198.18.9.9\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "/cfg/pods.yaml", yaml, sizeof(yaml) - 1, &d), 0);
    assert_int_equal(put(st, "api:Pod/demo/a", POD("demo", "a", "198.18.0.1"), &d, true),
                     -MESH_ECONFIG);
    assert_int_equal(d.n, 1);
    char *s = k8s_diag_str(&d.v[0]);
    assert_non_null(strstr(s, "api:Pod/demo/a:0: error: Pod demo/a is already defined at "
                              "/cfg/pods.yaml:1; this one is ignored"));
    free(s);
    const struct k8s_obj *o = k8s_store_find(st, K8S_POD, "demo", "a");
    assert_string_equal(k8s_obj_file(o), "/cfg/pods.yaml");
    assert_string_equal(pod_ip(o), "198.18.9.9");

    k8s_store_remove_file(st, "/cfg/pods.yaml");
    o = k8s_store_find(st, K8S_POD, "demo", "a");
    assert_string_equal(k8s_obj_file(o), "api:Pod/demo/a");
    assert_string_equal(pod_ip(o), "198.18.0.1");
    struct k8s_diags all = {0};
    k8s_store_file_diags(st, &all);
    assert_int_equal(all.n, 0);
    k8s_diags_clear(&all);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_table),
        cmocka_unit_test(test_managed_fields_dropped),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_many_one_commit),
        cmocka_unit_test(test_file_and_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
