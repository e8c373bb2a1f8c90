/*
 * test_k8s.c - the k8s store: multi-document YAML, every kind, file:line on
 * every error class, the last-good-state rules, duplicates between files,
 * directories, generations and the CA's node restriction. The conversion to
 * xDS resources is in test_k8s_build.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"

#define FIXTURE MESH_SOURCE_DIR "/tests/unit/k8s/mesh.yaml"

/* Returns the first diagnostic whose rendering contains |want|, or NULL. */
static const struct k8s_diag *
find_diag(const struct k8s_diags *d, const char *want)
{
    for (size_t i = 0; i < d->n; i++) {
        char *s = k8s_diag_str(&d->v[i]);
        bool hit = strstr(s, want) != NULL;
        free(s);
        if (hit)
            return &d->v[i];
    }
    return NULL;
}

static void
dump_diags(const struct k8s_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        char *s = k8s_diag_str(&d->v[i]);
        print_message("  %s\n", s);
        free(s);
    }
}

static int
load(struct k8s_store *st, const char *name, const char *yaml, struct k8s_diags *d)
{
    return k8s_store_load_buf(st, name, yaml, strlen(yaml), d);
}

static const char *
pod_ip_text(const struct k8s_obj *o)
{
    const json_t *st = json_object_get(k8s_obj_json(o), "status");
    return json_string_value(json_object_get(st, "podIP"));
}

static void
test_fixture_kinds(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_int_equal(k8s_store_load_file(st, FIXTURE, &d), 0);
    if (k8s_diags_count(&d, K8S_ERROR) != 0)
        dump_diags(&d);
    assert_int_equal(k8s_diags_count(&d, K8S_ERROR), 0);
    /* The Deployment is not ours: one warning, with its line. */
    assert_int_equal(k8s_diags_count(&d, K8S_WARNING), 1);
    const struct k8s_diag *w = find_diag(&d, "unknown kind Deployment (apiVersion apps/v1)");
    assert_non_null(w);
    assert_int_equal(w->severity, K8S_WARNING);
    assert_int_equal(w->line, 190);

    assert_int_equal(k8s_store_count(st, K8S_NAMESPACE), 2);
    assert_int_equal(k8s_store_count(st, K8S_SERVICE_ACCOUNT), 1);
    assert_int_equal(k8s_store_count(st, K8S_POD), 8);
    assert_int_equal(k8s_store_count(st, K8S_SERVICE), 4);
    assert_int_equal(k8s_store_count(st, K8S_AUTHORIZATION_POLICY), 1);
    assert_int_equal(k8s_store_count(st, K8S_PEER_AUTHENTICATION), 1);
    assert_int_equal(k8s_store_count(st, K8S_GATEWAY), 1);
    assert_int_equal(k8s_store_count(st, K8S_HTTP_ROUTE), 1);
    assert_int_equal(k8s_store_count(st, K8S_VIRTUAL_SERVICE), 1);

    /* Sorted by namespace, then name; Namespaces have none. */
    assert_string_equal(k8s_obj_name(k8s_store_at(st, K8S_NAMESPACE, 0)), "legacy");
    assert_string_equal(k8s_obj_namespace(k8s_store_at(st, K8S_NAMESPACE, 0)), "");
    assert_string_equal(k8s_obj_name(k8s_store_at(st, K8S_POD, 0)), "old");
    assert_string_equal(k8s_obj_namespace(k8s_store_at(st, K8S_POD, 2)), "shop");
    assert_null(k8s_store_at(st, K8S_POD, 8));

    const struct k8s_obj *ns = k8s_store_find(st, K8S_NAMESPACE, "ignored", "shop");
    assert_non_null(ns);
    assert_string_equal(k8s_obj_label(ns, "istio.io/dataplane-mode"), "ambient");
    assert_int_equal(k8s_obj_line(ns), 4);
    assert_string_equal(k8s_obj_file(ns), FIXTURE);

    /* Stored kinds keep their JSON, with lines down to each field. */
    const struct k8s_obj *ap = k8s_store_find(st, K8S_AUTHORIZATION_POLICY, "shop", "allow-web");
    assert_non_null(ap);
    assert_int_equal(k8s_obj_kind(ap), K8S_AUTHORIZATION_POLICY);
    const json_t *spec = json_object_get(k8s_obj_json(ap), "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "action")), "ALLOW");
    int l0 = k8s_obj_line(ap);
    assert_int_equal(l0, 155);
    assert_int_equal(k8s_obj_key_line(ap, spec, "action"), l0 + 6);
    const json_t *rules = json_object_get(spec, "rules");
    assert_int_equal(k8s_obj_line_of(ap, rules), l0 + 8);
    const json_t *p0 = json_array_get(
        json_object_get(
            json_object_get(json_array_get(json_object_get(json_array_get(rules, 0), "from"), 0),
                            "source"),
            "principals"),
        0);
    assert_string_equal(json_string_value(p0), "cluster.local/ns/shop/sa/web");
    assert_int_equal(k8s_obj_line_of(ap, p0), l0 + 10);
    /* Singletons (true/false/null) have no line of their own: the object's line. */
    assert_int_equal(k8s_obj_line_of(ap, json_true()), l0);

    assert_null(k8s_store_find(st, K8S_POD, "shop", "nope"));
    assert_string_equal(k8s_kind_name(K8S_HTTP_ROUTE), "HTTPRoute");
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

/* Plain scalars are typed as Kubernetes' YAML 1.1 reader types them. */
static void
test_scalar_types(void **state)
{
    static const char y[] = "apiVersion: networking.istio.io/v1\n"
                            "kind: VirtualService\n"
                            "metadata: {name: t}\n"
                            "spec:\n"
                            "  a: yes\n"
                            "  b: Off\n"
                            "  c: 0x1F\n"
                            "  d: 010\n"
                            "  e: 1_000\n"
                            "  f: 1.10\n"
                            "  g: \"yes\"\n"
                            "  h: ~\n"
                            "  i: 99999999999999999999\n"
                            "  j: .inf\n"
                            "  k: |\n"
                            "    text\n"
                            "  l: 0o17\n"
                            "  m: -42\n"
                            "  n: 08\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_int_equal(load(st, "t.yaml", y, &d), 0);
    const struct k8s_obj *o = k8s_store_find(st, K8S_VIRTUAL_SERVICE, "default", "t");
    assert_non_null(o);
    const json_t *s = json_object_get(k8s_obj_json(o), "spec");
    assert_true(json_is_true(json_object_get(s, "a")));
    assert_true(json_is_false(json_object_get(s, "b")));
    assert_int_equal(json_integer_value(json_object_get(s, "c")), 31);
    assert_int_equal(json_integer_value(json_object_get(s, "d")), 8);
    assert_int_equal(json_integer_value(json_object_get(s, "e")), 1000);
    assert_true(json_is_real(json_object_get(s, "f")));
    assert_string_equal(json_string_value(json_object_get(s, "g")), "yes");
    assert_true(json_is_null(json_object_get(s, "h")));
    assert_true(json_is_real(json_object_get(s, "i")));
    assert_string_equal(json_string_value(json_object_get(s, "j")), ".inf");
    assert_string_equal(json_string_value(json_object_get(s, "k")), "text\n");
    assert_int_equal(json_integer_value(json_object_get(s, "l")), 15);
    assert_int_equal(json_integer_value(json_object_get(s, "m")), -42);
    assert_true(json_is_real(json_object_get(s, "n")));
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

#define POD_HEAD "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"

static const struct {
    const char *yaml;
    const char *want; /* substring of the rendered error, with file:line */
} bad[] = {
    /* YAML syntax, and what the reader refuses */
    {"a: [1, 2\nb: 3\n", "x.yaml:2: error: YAML syntax error: while parsing a flow sequence"},
    {"a: b: c\n", "x.yaml:1: error: YAML syntax error"},
    {"kind: Pod\nkind: Pod\n", "x.yaml:2: error: \"kind\" is given twice"},
    {"base: &b {x: 1}\nother:\n  <<: *b\n",
     "x.yaml:3: error: YAML merge keys (<<) are not supported"},
    {"? [a]\n: b\n", "x.yaml:1: error: a mapping key must be a string"},
    {"a: \"x\\0y\"\n", "x.yaml:1: error: a string contains a NUL byte"},
    /* not an object */
    {"- a\n- b\n", "x.yaml:1: error: expected a Kubernetes object (a mapping), got a list"},
    {"apiVersion: v1\nmetadata: {name: x}\n", "x.yaml:1: error: not a Kubernetes object"},
    {"apiVersion: v1\nkind: [Pod]\n", "x.yaml:2: error: kind: expected a string, got a list"},
    /* metadata */
    {"apiVersion: v1\nkind: Pod\nspec: {}\n", "x.yaml:1: error: Pod: metadata is missing"},
    {"apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {a: b}\n",
     "x.yaml:4: error: Pod: metadata.name is missing"},
    {"apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\n",
     "x.yaml:4: error: Pod \"Bad_Name\": metadata.name is not a valid DNS subdomain"},
    {"apiVersion: v1\nkind: Service\nmetadata:\n  name: 9lives\n",
     "x.yaml:4: error: Service \"9lives\": metadata.name is not a valid DNS label"},
    {POD_HEAD "  namespace: a.b\n", "x.yaml:5: error: Pod \"p\": metadata.namespace \"a.b\""},
    {POD_HEAD "  labels:\n    app: yes\n",
     "x.yaml:6: error: metadata.labels: expected a string, got a boolean (quote the value"},
    {POD_HEAD "  labels:\n    version: 1.10\n",
     "x.yaml:6: error: metadata.labels: expected a string, got a number"},
    {POD_HEAD "  labels:\n    app: \"has space\"\n",
     "x.yaml:6: error: metadata.labels: app: \"has space\" is not a valid label value"},
    {POD_HEAD "  labels:\n    \"bad/key/x\": a\n",
     "x.yaml:6: error: metadata.labels: \"bad/key/x\" is not a valid key"},
    {POD_HEAD "  labels: [a]\n",
     "x.yaml:5: error: metadata.labels: expected a mapping, got a list"},
    {POD_HEAD "  ownerReferences: [{kind: ReplicaSet, name: r, controller: \"true\"}]\n",
     "x.yaml:5: error: metadata.ownerReferences[0].controller: expected true or false, got a "
     "string"},
    /* Pod */
    {POD_HEAD "status:\n  podIPs:\n  - ip: 198.18.0.300\n",
     "x.yaml:7: error: status.podIPs[0]: \"198.18.0.300\" is not an IP address"},
    {POD_HEAD "status:\n  podIP: fe80::1%eth0\n",
     "x.yaml:6: error: status.podIP: \"fe80::1%eth0\" is not an IP address"},
    {POD_HEAD "status:\n  podIPs: [1.2.3.4]\n",
     "x.yaml:6: error: status.podIPs[0]: expected a mapping"},
    {POD_HEAD "spec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: 70000\n",
     "x.yaml:9: error: spec.containers[0].ports[0].containerPort: expected a port number "
     "(1-65535)"},
    {POD_HEAD "spec:\n  containers:\n  - ports:\n    - {name: http}\n",
     "x.yaml:8: error: spec.containers[0].ports[0]: containerPort is missing"},
    {POD_HEAD "spec:\n  hostNetwork: \"true\"\n",
     "x.yaml:6: error: spec.hostNetwork: expected true or false"},
    {POD_HEAD "spec:\n  serviceAccountName: \"no/slash\"\n",
     "x.yaml:6: error: spec.serviceAccountName: \"no/slash\" is not a valid DNS subdomain"},
    {POD_HEAD "spec: []\n", "x.yaml:5: error: spec: expected a mapping, got a list"},
    /* Service */
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 0\n",
     "x.yaml:6: error: spec.ports[0].port: expected a port number (1-65535), got one out of range"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: \"80\"\n",
     "x.yaml:6: error: spec.ports[0].port: \"80\" is not a port number"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 80\n    "
     "targetPort: \"8080\"\n",
     "x.yaml:7: error: spec.ports[0].targetPort: \"8080\" is neither a port number nor a port "
     "name"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - name: x\n",
     "x.yaml:6: error: spec.ports[0]: port is missing"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  clusterIP: 10.0.0.300\n",
     "x.yaml:5: error: spec.clusterIP: \"10.0.0.300\" is not an IP address or \"None\""},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  clusterIPs:\n  - 10.0.0.1\n  - "
     "nope\n",
     "x.yaml:7: error: spec.clusterIPs[1]: \"nope\" is not an IP address"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 80\n    "
     "protocol: HTTP\n",
     "x.yaml:7: error: spec.ports[0]: protocol \"HTTP\" is not TCP, UDP or SCTP"},
    {"apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: [x]}\n",
     "x.yaml:5: error: spec.selector: expected a string, got a list"},
    /* stored kinds */
    {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: 3\n",
     "x.yaml:4: error: spec: expected a mapping, got an integer"},
};

static void
test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct k8s_store *st = k8s_store_new();
        struct k8s_diags d = {0};
        int rc = load(st, "x.yaml", bad[i].yaml, &d);
        if (rc != -MESH_ECONFIG)
            fail_msg("case %zu: rc %d", i, rc);
        if (find_diag(&d, bad[i].want) == NULL) {
            dump_diags(&d);
            fail_msg("case %zu: no diagnostic with \"%s\"", i, bad[i].want);
        }
        /* Standing diagnostics say the same until the file changes. */
        struct k8s_diags all = {0};
        k8s_build_diags(st, &all);
        assert_non_null(find_diag(&all, bad[i].want));
        k8s_diags_clear(&all);
        k8s_diags_clear(&d);
        k8s_store_free(st);
    }
}

/* Caps: labels, IPs, ports, documents, nesting, string length, file size. */
static void
test_caps(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    char *y = xmalloc(K8S_MAX_FILE_BYTES + 64);
    size_t n;
    (void)state;

    n = (size_t)snprintf(y, 64, POD_HEAD "  labels:\n");
    for (int i = 0; i <= K8S_MAX_LABELS; i++)
        n += (size_t)snprintf(y + n, 64, "    l%d: v\n", i);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "caps.yaml:5: error: metadata.labels: more than 256 entries"));
    k8s_diags_clear(&d);

    n = (size_t)snprintf(y, 64, POD_HEAD "status:\n  podIPs:\n");
    for (int i = 0; i <= K8S_MAX_IPS; i++)
        n += (size_t)snprintf(y + n, 64, "  - ip: 198.18.0.%d\n", i + 1);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "caps.yaml:6: error: status.podIPs: more than 16 entries"));
    k8s_diags_clear(&d);

    n = (size_t)snprintf(y, 128,
                         "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n");
    for (int i = 0; i <= K8S_MAX_PORTS; i++)
        n += (size_t)snprintf(y + n, 64, "  - port: %d\n", i + 1);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "caps.yaml:5: error: spec.ports: more than 1024 entries"));
    k8s_diags_clear(&d);

    n = 0;
    for (int i = 0; i <= K8S_MAX_OBJECTS; i++)
        n += (size_t)snprintf(y + n, 64, "---\na: %d\n", i);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "caps.yaml:20002: error: more than 10000 documents"));
    k8s_diags_clear(&d);

    n = 0;
    for (int i = 0; i <= K8S_MAX_DEPTH + 1; i++)
        y[n++] = '[';
    for (int i = 0; i <= K8S_MAX_DEPTH + 1; i++)
        y[n++] = ']';
    y[n] = '\0';
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "nested deeper than 64 levels"));
    k8s_diags_clear(&d);

    /* An alias bomb: each level doubles; the value cap stops it. */
    n = (size_t)snprintf(y, 64, "a0: &a0 [x, x]\n");
    for (int i = 1; i < 30; i++)
        n += (size_t)snprintf(y + n, 96, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "values in the file (aliases count each time)"));
    k8s_diags_clear(&d);

    memcpy(y, "a: \"", 4);
    memset(y + 4, 'x', K8S_MAX_STRING + 1);
    memcpy(y + 4 + K8S_MAX_STRING + 1, "\"\n", 3);
    assert_int_equal(load(st, "caps.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "caps.yaml:1: error: a string is longer than 262144 bytes"));
    k8s_diags_clear(&d);

    memset(y, '#', K8S_MAX_FILE_BYTES + 1);
    assert_int_equal(k8s_store_load_buf(st, "big.yaml", y, K8S_MAX_FILE_BYTES + 1, &d),
                     -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "big.yaml:0: error: larger than 8388608 bytes"));
    k8s_diags_clear(&d);
    free(y);
    k8s_store_free(st);
}

static const char two_pods[] =
    POD_HEAD "  namespace: a\nstatus: {podIP: 198.18.0.1}\n"
             "---\n"
             "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n"
             "status: {podIP: 198.18.0.2}\n";

/* A file that does not parse keeps every object it had, until it parses again. */
static void
test_broken_yaml_keeps_objects(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0}, all = {0};
    (void)state;

    assert_int_equal(load(st, "a.yaml", two_pods, &d), 0);
    uint64_t gen = k8s_store_generation(st);
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);

    assert_int_equal(load(st, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p\n", &d),
                     -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "a.yaml:4: error: YAML syntax error"));
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    assert_int_equal(k8s_store_generation(st), gen);
    k8s_build_diags(st, &all);
    assert_int_equal(all.n, 1);
    k8s_diags_clear(&all);
    k8s_diags_clear(&d);

    /* The same broken bytes again: same answer, nothing re-parsed. */
    assert_int_equal(load(st, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p\n", &d),
                     -MESH_ECONFIG);
    assert_int_equal(d.n, 1);
    k8s_diags_clear(&d);

    /* Fixed: the file's objects are what it says now, and the error is gone. */
    assert_int_equal(
        load(st, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: r, namespace: a}\n", &d),
        0);
    assert_int_equal(k8s_store_count(st, K8S_POD), 1);
    assert_non_null(k8s_store_find(st, K8S_POD, "a", "r"));
    assert_true(k8s_store_generation(st) > gen);
    k8s_build_diags(st, &all);
    assert_int_equal(all.n, 0);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

/* An invalid object keeps its previous version; the others in the file update. */
static void
test_invalid_object_keeps_previous(void **state)
{
    static const char next[] =
        POD_HEAD "  namespace: a\nstatus: {podIP: 198.18.0.300}\n"
                 "---\n"
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n"
                 "status: {podIP: 198.18.0.3}\n"
                 "---\n"
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: new, namespace: a}\n"
                 "status: {podIP: bad}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_int_equal(load(st, "a.yaml", two_pods, &d), 0);
    uint64_t gen = k8s_store_generation(st);
    assert_int_equal(load(st, "a.yaml", next, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "a.yaml:6: error: status.podIP: \"198.18.0.300\" is not an IP"));
    assert_non_null(
        find_diag(&d, "a.yaml:1: warning: Pod a/p: keeping the version loaded before (line 1)"));
    assert_non_null(find_diag(&d, "a.yaml:16: error: status.podIP: \"bad\""));
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    assert_string_equal(pod_ip_text(k8s_store_find(st, K8S_POD, "a", "p")), "198.18.0.1");
    assert_string_equal(pod_ip_text(k8s_store_find(st, K8S_POD, "a", "q")), "198.18.0.3");
    assert_null(k8s_store_find(st, K8S_POD, "a", "new"));
    assert_true(k8s_store_generation(st) > gen);
    k8s_diags_clear(&d);

    /* Removed from the file while invalid elsewhere: gone, as the file no longer has it. */
    assert_int_equal(
        load(st, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n", &d),
        0);
    assert_null(k8s_store_find(st, K8S_POD, "a", "p"));
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

/* The same object in two files: the path that sorts first wins, whatever the load order. */
static void
test_duplicates(void **state)
{
    static const char a[] = "\n" POD_HEAD "status: {podIP: 198.18.0.1}\n";
    static const char b[] = "# b\n\n\n" POD_HEAD "status: {podIP: 198.18.0.2}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0}, all = {0};
    (void)state;

    assert_int_equal(load(st, "dir/b.yaml", b, &d), 0);
    assert_int_equal(load(st, "dir/a.yaml", a, &d), 0);
    assert_int_equal(d.n, 0);
    assert_string_equal(pod_ip_text(k8s_store_find(st, K8S_POD, "default", "p")), "198.18.0.1");
    k8s_build_diags(st, &all);
    assert_int_equal(all.n, 1);
    assert_non_null(find_diag(&all, "dir/b.yaml:4: error: Pod default/p is already defined at "
                                    "dir/a.yaml:2; this one is ignored"));
    k8s_diags_clear(&all);
    /* Reloading the loser reports it again. */
    assert_int_equal(load(st, "dir/b.yaml", b, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "dir/b.yaml:4: error: Pod default/p is already defined"));
    k8s_diags_clear(&d);

    /* The first file gone: the other definition takes over, and the error goes. */
    uint64_t gen = k8s_store_generation(st);
    k8s_store_remove_file(st, "dir/a.yaml");
    assert_true(k8s_store_generation(st) > gen);
    assert_string_equal(pod_ip_text(k8s_store_find(st, K8S_POD, "default", "p")), "198.18.0.2");
    k8s_build_diags(st, &all);
    assert_int_equal(all.n, 0);
    gen = k8s_store_generation(st);
    k8s_store_remove_file(st, "dir/nothing.yaml");
    assert_int_equal(k8s_store_generation(st), gen);

    /* Twice in one file: the first counts. Same name in another kind or namespace is fine. */
    assert_int_equal(load(st, "dir/c.yaml",
                          POD_HEAD "---\n" POD_HEAD "  namespace: x\n---\n" POD_HEAD
                                   "---\napiVersion: v1\nkind: Service\nmetadata: {name: p}\n",
                          &d),
                     -MESH_ECONFIG);
    assert_non_null(
        find_diag(&d, "dir/c.yaml:12: error: Pod default/p is already defined at line 1"));
    /* and dir/b.yaml's p is the duplicate now; the Service, without clusterIP, gets no VIP */
    assert_int_equal(d.n, 3);
    assert_non_null(find_diag(&d, "warning: Service without spec.clusterIP"));
    assert_non_null(
        find_diag(&d, "dir/c.yaml:1: error: Pod default/p is already defined at dir/b.yaml:4"));
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    assert_int_equal(k8s_store_count(st, K8S_SERVICE), 1);
    k8s_diags_clear(&all);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

/* A Service that would have a VIP in Kubernetes but has none here is a warning (AM0001). */
static void
test_service_without_cluster_ip(void **state)
{
    static const struct {
        const char *spec; /* "" for no spec at all */
        const char *want; /* expected diagnostic, NULL for none */
    } cases[] = {
        {"spec:\n  selector: {app: a}\n  ports: [{port: 80}]\n",
         "s.yaml:4: warning: Service without spec.clusterIP: it gets no VIP"},
        {"spec:\n  clusterIP: \"\"\n  ports: [{port: 80}]\n", "s.yaml:4: warning: Service without"},
        {"", "s.yaml:1: warning: Service without spec.clusterIP"},
        {"spec:\n  clusterIP: None\n  ports: [{port: 80}]\n", NULL},
        {"spec:\n  clusterIPs: [None]\n", NULL},
        {"spec:\n  type: ExternalName\n  externalName: example.invalid\n", NULL},
        {"spec:\n  clusterIP: 198.19.0.5\n  ports: [{port: 80}]\n", NULL},
        {"spec:\n  clusterIPs: [198.19.0.6]\n", NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct k8s_store *st = k8s_store_new();
        struct k8s_diags d = {0}, all = {0};
        char yaml[512];
        snprintf(yaml, sizeof(yaml), "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n%s",
                 cases[i].spec);
        assert_int_equal(load(st, "s.yaml", yaml, &d), 0);
        assert_int_equal(k8s_store_count(st, K8S_SERVICE), 1);
        k8s_build_diags(st, &all); /* what meshd logs and meshctl analyze prints */
        if (cases[i].want == NULL) {
            if (all.n != 0)
                fail_msg("case %zu: unexpected diagnostic %s", i, all.v[0].msg);
        } else {
            const struct k8s_diag *g = find_diag(&all, cases[i].want);
            if (g == NULL || all.n != 1)
                fail_msg("case %zu: %zu diagnostics, none \"%s\"", i, all.n, cases[i].want);
            assert_int_equal(g->severity, K8S_WARNING);
            assert_string_equal(g->code, "AM0001");
        }
        k8s_diags_clear(&d);
        k8s_diags_clear(&all);
        k8s_store_free(st);
    }
}

/* Generations move with content, not with bytes that do not change objects. */
static void
test_generation(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    uint64_t g0 = k8s_store_generation(st);
    assert_int_equal(load(st, "a.yaml", two_pods, &d), 0);
    uint64_t g1 = k8s_store_generation(st);
    assert_true(g1 > g0);
    assert_int_equal(load(st, "a.yaml", two_pods, &d), 0);
    assert_int_equal(k8s_store_generation(st), g1);
    /* A comment and a reordering of documents change no object. */
    static const char reordered[] =
        "# moved\napiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: a}\n"
        "status: {podIP: 198.18.0.2}\n---\n" POD_HEAD
        "  namespace: a\nstatus: {podIP: 198.18.0.1}\n";
    assert_int_equal(load(st, "a.yaml", reordered, &d), 0);
    assert_int_equal(k8s_store_generation(st), g1);
    assert_int_equal(k8s_obj_line(k8s_store_find(st, K8S_POD, "a", "q")), 2);
    /* A warning-only document changes nothing either. */
    assert_int_equal(
        load(st, "b.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", &d), 0);
    assert_int_equal(k8s_store_generation(st), g1);
    k8s_store_remove_file(st, "b.yaml");
    assert_int_equal(k8s_store_generation(st), g1);
    assert_int_equal(
        load(st, "a.yaml", POD_HEAD "  namespace: a\nstatus: {podIP: 198.18.0.9}\n", &d), 0);
    assert_true(k8s_store_generation(st) > g1);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_sync_dir(void **state)
{
    char dir[] = "/tmp/test_k8s.XXXXXX";
    char path[512];
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_non_null(mkdtemp(dir));
    write_file(dir, "10-ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
    write_file(dir, "20-pods", two_pods);
    write_file(dir, ".hidden.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: h}\n");
    write_file(dir, "30-ns.yaml~", "apiVersion: v1\nkind: Namespace\nmetadata: {name: t}\n");
    write_file(dir, ".30-ns.yaml.swp", "junk: [");
    write_file(dir, "30-ns.yaml.swp", "junk: [");
    snprintf(path, sizeof(path), "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file(path, "x.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: sub}\n");

    assert_int_equal(k8s_store_sync_dir(st, dir, &d), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(k8s_store_count(st, K8S_NAMESPACE), 1);
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    uint64_t gen = k8s_store_generation(st);
    assert_int_equal(k8s_store_sync_dir(st, dir, &d), 0);
    assert_int_equal(k8s_store_generation(st), gen);

    /* A broken file keeps its objects and makes the sync report an error. */
    write_file(dir, "20-pods", "apiVersion: v1\nkind: [\n");
    assert_int_equal(k8s_store_sync_dir(st, dir, &d), -MESH_ECONFIG);
    snprintf(path, sizeof(path), "%s/20-pods:3: error: YAML syntax error", dir);
    assert_non_null(find_diag(&d, path));
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    assert_int_equal(k8s_store_generation(st), gen);
    k8s_diags_clear(&d);

    /* Gone from the directory: forgotten (with a trailing slash on the name, too). */
    snprintf(path, sizeof(path), "%s/20-pods", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/", dir);
    assert_int_equal(k8s_store_sync_dir(st, path, &d), 0);
    assert_int_equal(k8s_store_count(st, K8S_POD), 0);
    assert_true(k8s_store_generation(st) > gen);

    /* Files loaded from elsewhere are not this directory's to forget. */
    assert_int_equal(load(st, "other.yaml", two_pods, &d), 0);
    assert_int_equal(k8s_store_sync_dir(st, dir, &d), 0);
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);

    /* Duplicates between the directory's files are reported by the sync. */
    write_file(dir, "05-ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n");
    assert_int_equal(k8s_store_sync_dir(st, dir, &d), -MESH_ECONFIG);
    snprintf(path, sizeof(path),
             "%s/10-ns.yaml:1: error: Namespace a is already defined at %s/05-ns.yaml:1", dir, dir);
    assert_non_null(find_diag(&d, path));
    k8s_diags_clear(&d);

    /* A FIFO is neither loaded by a sync nor able to block a direct load. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(k8s_store_sync_dir(st, dir, &d), -MESH_ECONFIG);
    assert_null(find_diag(&d, "fifo"));
    k8s_diags_clear(&d);
    assert_int_equal(k8s_store_load_file(st, path, &d), -EINVAL);
    assert_non_null(find_diag(&d, "fifo:0: error: not a regular file"));
    k8s_store_remove_file(st, path);
    unlink(path);
    k8s_diags_clear(&d);

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_int_equal(k8s_store_sync_dir(st, path, &d), -ENOENT);
    assert_non_null(find_diag(&d, "cannot list"));
    k8s_diags_clear(&d);
    assert_int_equal(k8s_store_load_file(st, path, &d), -ENOENT);
    assert_non_null(find_diag(&d, "missing:0: error: cannot read"));
    k8s_diags_clear(&d);

    /* Clean up. */
    const char *names[] = {"10-ns.yaml",      "05-ns.yaml",     ".hidden.yaml", "30-ns.yaml~",
                           ".30-ns.yaml.swp", "30-ns.yaml.swp", "sub/x.yaml"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/sub", dir);
    rmdir(path);
    rmdir(dir);
    k8s_store_free(st);
}

/* A file over the cap is refused before it is read, and its previous objects stay. */
static void
test_file_too_big(void **state)
{
    char path[] = "/tmp/test_k8s_big.XXXXXX";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, two_pods, strlen(two_pods)), (ssize_t)strlen(two_pods));
    assert_int_equal(k8s_store_load_file(st, path, &d), 0);
    assert_int_equal(ftruncate(fd, K8S_MAX_FILE_BYTES + 1), 0);
    assert_int_equal(k8s_store_load_file(st, path, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "larger than 8388608 bytes"));
    assert_int_equal(k8s_store_count(st, K8S_POD), 2);
    close(fd);
    unlink(path);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
test_list_kind(void **state)
{
    static const char y[] = "apiVersion: v1\n"
                            "kind: List\n"
                            "items:\n"
                            "- apiVersion: v1\n"
                            "  kind: ServiceAccount\n"
                            "  metadata: {name: a}\n"
                            "- apiVersion: v1\n"
                            "  kind: ServiceAccount\n"
                            "  metadata: {name: 'B'}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    (void)state;

    assert_int_equal(load(st, "l.yaml", y, &d), -MESH_ECONFIG);
    assert_non_null(find_diag(&d, "l.yaml:9: error: ServiceAccount \"B\": metadata.name"));
    assert_int_equal(k8s_store_count(st, K8S_SERVICE_ACCOUNT), 1);
    assert_int_equal(k8s_obj_line(k8s_store_at(st, K8S_SERVICE_ACCOUNT, 0)), 4);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
test_node_restriction(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    struct k8s_pod_info pi;
    (void)state;

    assert_int_equal(k8s_store_load_file(st, FIXTURE, &d), 0);
    assert_true(k8s_sa_on_node(st, "node-1", "shop", "web"));
    assert_false(k8s_sa_on_node(st, "node-2", "shop", "web"));
    assert_false(k8s_sa_on_node(st, "node-1", "legacy", "web"));
    /* The API server's default service account. */
    assert_true(k8s_sa_on_node(st, "node-2", "legacy", "default"));
    assert_true(k8s_sa_on_node(st, "node-1", "legacy", "old"));
    /* A pod that has finished does not count; one being deleted still runs. */
    assert_false(k8s_sa_on_node(st, "node-3", "shop", "batch"));
    assert_true(k8s_sa_on_node(st, "node-1", "shop", "default"));
    assert_false(k8s_sa_on_node(st, "", "shop", "default"));

    assert_true(k8s_pod_info(st, "shop", "web-7d4b9c-x2k8p", &pi));
    assert_string_equal(pi.uid, "6f1c2d3e-0000-4000-8000-000000000001");
    assert_string_equal(pi.service_account, "web");
    assert_string_equal(pi.node, "node-1");
    assert_false(pi.terminated);
    assert_true(k8s_pod_info(st, "shop", "job-done", &pi));
    assert_true(pi.terminated);
    assert_string_equal(pi.uid, "");
    assert_false(k8s_pod_info(st, "shop", "nope", &pi));
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_kinds),
        cmocka_unit_test(test_scalar_types),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_broken_yaml_keeps_objects),
        cmocka_unit_test(test_invalid_object_keeps_previous),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_service_without_cluster_ip),
        cmocka_unit_test(test_generation),
        cmocka_unit_test(test_sync_dir),
        cmocka_unit_test(test_file_too_big),
        cmocka_unit_test(test_list_kind),
        cmocka_unit_test(test_node_restriction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
