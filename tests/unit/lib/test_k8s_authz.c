/*
 * test_k8s_authz.c - AuthorizationPolicy and PeerAuthentication converted to
 * istio.security.Authorization as istiod does for ztunnel. The produced bytes
 * are decoded with protobuf-c (structure: scope, rules, clauses, matches) and
 * fed to lib/policy (policy_decode + policy_check, ztunnel's evaluation) to
 * check behaviour: a table of conversions (every source, operation and
 * condition field, patterns, negations, combinations, L7 fields in ALLOW and
 * DENY, dry run), scopes and the workloads that list selector policies,
 * policies not sent (targetRefs, AUDIT, CUSTOM), validation errors at the
 * right lines with the previous version kept, diagnostics, PeerAuthentication
 * at mesh, namespace and workload level with port-level exceptions, and
 * incremental builds that agree with a fresh store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authorization.pb-c.h"
#include "base/base.h"
#include "k8s/k8s.h"
#include "k8sconv/k8sconv.h"
#include "net/addr.h"
#include "policy/policy.h"
#include "workload.pb-c.h"

#define FIXTURE  MESH_SOURCE_DIR "/tests/unit/k8s/authz.yaml"
#define POD_KEY  "Kubernetes//Pod/"
#define STRICT_K "istio-system/istio_converted_static_strict"

/* ---- helpers ---- */

static struct k8s_store *
store_with(const char *name, const char *yaml, struct k8s_diags *d)
{
    struct k8s_store *st = k8s_store_new();
    k8s_store_load_buf(st, name, yaml, strlen(yaml), d);
    return st;
}

static void
build(const struct k8s_store *st, struct mesh_resources *r, struct k8s_diags *d)
{
    assert_int_equal(k8s_build_resources(st, NULL, r, d), 0);
}

static size_t
count_type(const struct mesh_resources *r, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += strcmp(r->v[i].type_url, type) == 0;
    return n;
}

static Istio__Security__Authorization *
unpack_authz(const struct mesh_resources *r, const char *name)
{
    const struct mesh_resource *m = mesh_resources_find(r, K8S_TYPE_AUTHORIZATION, name);
    if (m == NULL)
        fail_msg("no Authorization %s", name);
    Istio__Security__Authorization *a =
        istio__security__authorization__unpack(NULL, m->len, m->data);
    assert_non_null(a);
    return a;
}

static Istio__Workload__Workload *
unpack_workload(const struct mesh_resources *r, const char *pod, Istio__Workload__Address **addr)
{
    char uid[128];
    snprintf(uid, sizeof(uid), POD_KEY "%s", pod);
    const struct mesh_resource *m = mesh_resources_find(r, K8S_TYPE_ADDRESS, uid);
    if (m == NULL)
        fail_msg("no workload %s", uid);
    *addr = istio__workload__address__unpack(NULL, m->len, m->data);
    assert_non_null(*addr);
    assert_int_equal((*addr)->type_case, ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD);
    return (*addr)->workload;
}

/* "a,b,c": the workload's authorization_policies joined, for compact asserts. */
static char *
pols_of(const struct mesh_resources *r, const char *pod)
{
    Istio__Workload__Address *a;
    Istio__Workload__Workload *w = unpack_workload(r, pod, &a);
    size_t len = 1;
    for (size_t i = 0; i < w->n_authorization_policies; i++)
        len += strlen(w->authorization_policies[i]) + 1;
    char *s = xcalloc(1, len);
    size_t n = 0;
    for (size_t i = 0; i < w->n_authorization_policies; i++)
        n += (size_t)snprintf(s + n, len - n, "%s%s", i > 0 ? "," : "",
                              w->authorization_policies[i]);
    istio__workload__address__free_unpacked(a, NULL);
    return s;
}

static void
assert_pols(const struct mesh_resources *r, const char *pod, const char *want)
{
    char *got = pols_of(r, pod);
    if (strcmp(got, want) != 0)
        fail_msg("%s lists \"%s\", wanted \"%s\"", pod, got, want);
    free(got);
}

/* Every Authorization resource, decoded by lib/policy as ztunnel takes it from xDS. */
static struct policy_set *
policy_set_of(const struct mesh_resources *r)
{
    struct policy *ps[64] = {0};
    size_t n = 0;
    char err[256];

    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->v[i].type_url, K8S_TYPE_AUTHORIZATION) != 0)
            continue;
        assert_true(n < ARRAY_LEN(ps));
        if (policy_decode(r->v[i].data, r->v[i].len, &ps[n], err, sizeof(err)) < 0)
            fail_msg("%s: %s", r->v[i].name, err);
        /* The resource name is the policy's key, as ztunnel expects. */
        assert_string_equal(policy_key(ps[n]), r->v[i].name);
        n++;
    }
    struct policy_set *s = policy_set_build(ps, n);
    for (size_t i = 0; i < n; i++)
        policy_unref(ps[i]);
    return s;
}

/* One connection: |peer| "ns/sa" (cluster.local) or NULL for plaintext. Written P(...). */
struct probe {
    int on; /* 1 for a probe, 0 past the last */
    const char *peer;
    const char *src_ip; /* NULL: 10.0.0.5 */
    const char *dst_ip; /* NULL: 10.0.1.1 */
    uint16_t port;      /* 0: 8080 */
    int want;           /* POLICY_ALLOW or POLICY_DENY */
};

#define ALLOW POLICY_ALLOW
#define DENY  POLICY_DENY
#define P(...)                                                                                     \
    {                                                                                              \
        .on = 1, .peer = __VA_ARGS__                                                               \
    }

static enum policy_verdict
check(const struct policy_set *s, const char *dst_ns, char *const *pols, size_t n_pols,
      const struct probe *p, struct policy_decision *why)
{
    struct policy_request rq = {.dst_ns = dst_ns, .dst_policies = pols, .n_dst_policies = n_pols};
    struct policy_peer peer = {.trust_domain = "cluster.local"};
    char buf[128];

    if (p->peer != NULL) {
        snprintf(buf, sizeof(buf), "%s", p->peer);
        char *slash = strchr(buf, '/');
        assert_non_null(slash);
        *slash = '\0';
        peer.ns = buf;
        peer.sa = slash + 1;
        rq.src_id = &peer;
    }
    assert_int_equal(ipaddr_parse(p->src_ip ? p->src_ip : "10.0.0.5", &rq.src_ip), 0);
    assert_int_equal(ipaddr_parse(p->dst_ip ? p->dst_ip : "10.0.1.1", &rq.dst_ip), 0);
    rq.dst_port = p->port ? p->port : 8080;
    return policy_check(s, &rq, why);
}

static const struct k8s_diag *
find_diag(const struct k8s_diags *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->v[i].msg, needle) != NULL)
            return &d->v[i];
    return NULL;
}

static const struct k8s_diag *
must_diag(const struct k8s_diags *d, const char *needle, int severity, int line, const char *code)
{
    const struct k8s_diag *g = find_diag(d, needle);
    if (g == NULL) {
        for (size_t i = 0; i < d->n; i++)
            print_message("  %s\n", d->v[i].msg);
        fail_msg("no diagnostic with \"%s\"", needle);
    }
    if (g->severity != severity || (line != 0 && g->line != line)) {
        char *s = k8s_diag_str(g);
        fail_msg("%s: wanted severity %d at line %d", s, severity, line);
    }
    if (code != NULL)
        assert_string_equal(g->code, code);
    return g;
}

/* ---- The conversion table ---- */

struct conv_case {
    const char *name;
    const char *spec; /* YAML under "spec:", indented by two */
    const char *annotations;
    struct probe probes[6];
};

static const struct conv_case conv_cases[] = {
    {"principals exact",
     "  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]\n",
     NULL,
     {P("shop/web", .want = ALLOW), P("shop/other", .want = DENY), P(NULL, .want = DENY)}},
    {"principals prefix",
     "  rules: [{from: [{source: {principals: [\"cluster.local/ns/shop/*\"]}}]}]\n",
     NULL,
     {P("shop/a", .want = ALLOW), P("shop/b", .want = ALLOW), P("prod/a", .want = DENY)}},
    {"principals suffix",
     "  rules: [{from: [{source: {principals: [\"*/sa/web\"]}}]}]\n",
     NULL,
     {P("prod/web", .want = ALLOW), P("shop/web", .want = ALLOW), P("shop/webx", .want = DENY)}},
    {"principals presence: any identity, not plaintext",
     "  rules: [{from: [{source: {principals: [\"*\"]}}]}]\n",
     NULL,
     {P("x/y", .want = ALLOW), P(NULL, .want = DENY)}},
    {"notPrincipals",
     "  rules: [{from: [{source: {notPrincipals: [cluster.local/ns/shop/sa/bad]}}]}]\n",
     NULL,
     {P("shop/bad", .want = DENY), P("shop/good", .want = ALLOW), P(NULL, .want = ALLOW)}},
    {"namespaces and notNamespaces",
     "  rules: [{from: [{source: {namespaces: [\"shop\", \"pro*\"], notNamespaces: [prod-x]}}]}]\n",
     NULL,
     {P("shop/a", .want = ALLOW), P("prod/a", .want = ALLOW), P("prod-x/a", .want = DENY),
      P("dev/a", .want = DENY), P(NULL, .want = DENY)}},
    {"serviceAccounts: relative to the policy namespace, or ns/name",
     "  rules: [{from: [{source: {serviceAccounts: [web, \"prod/api\"]}}]}]\n",
     NULL,
     {P("shop/web", .want = ALLOW), P("prod/api", .want = ALLOW), P("prod/web", .want = DENY),
      P("shop/api", .want = DENY)}},
    {"notServiceAccounts",
     "  rules: [{from: [{source: {notServiceAccounts: [web]}}]}]\n",
     NULL,
     {P("shop/web", .want = DENY), P("prod/web", .want = ALLOW)}},
    {"ipBlocks: CIDR, bare address is /32, IPv6",
     "  rules: [{from: [{source: {ipBlocks: [10.0.0.0/8, 192.168.1.7, \"2001:db8::/32\"]}}]}]\n",
     NULL,
     {P(NULL, "10.200.0.1", .want = ALLOW), P(NULL, "192.168.1.7", .want = ALLOW),
      P(NULL, "192.168.1.8", .want = DENY), P(NULL, "2001:db8:1::5", .want = ALLOW),
      P(NULL, "2001:db9::5", .want = DENY), P(NULL, "::ffff:10.1.1.1", .want = ALLOW)}},
    {"notIpBlocks",
     "  rules: [{from: [{source: {notIpBlocks: [10.9.0.0/16]}}]}]\n",
     NULL,
     {P(NULL, "10.9.1.1", .want = DENY), P(NULL, "10.8.1.1", .want = ALLOW)}},
    {"to ports and notPorts",
     "  rules: [{to: [{operation: {ports: [\"8080\", \"9090\"], notPorts: [\"9090\"]}}]}]\n",
     NULL,
     {P(NULL, .port = 8080, .want = ALLOW), P(NULL, .port = 9090, .want = DENY),
      P(NULL, .port = 80, .want = DENY)}},
    {"from AND to; entries of one list OR",
     "  rules:\n"
     "  - from: [{source: {principals: [cluster.local/ns/shop/sa/a]}},\n"
     "           {source: {principals: [cluster.local/ns/shop/sa/b]}}]\n"
     "    to: [{operation: {ports: [\"8080\"]}}]\n",
     NULL,
     {P("shop/a", .port = 8080, .want = ALLOW), P("shop/b", .port = 8080, .want = ALLOW),
      P("shop/a", .port = 9090, .want = DENY), P("shop/c", .port = 8080, .want = DENY)}},
    {"several rules OR",
     "  rules:\n"
     "  - to: [{operation: {ports: [\"80\"]}}]\n"
     "  - from: [{source: {namespaces: [shop]}}]\n",
     NULL,
     {P(NULL, .port = 80, .want = ALLOW), P("shop/x", .port = 443, .want = ALLOW),
      P("prod/x", .port = 443, .want = DENY)}},
    {"when: every L4 key, values and notValues",
     "  rules:\n"
     "  - when:\n"
     "    - {key: source.ip, values: [10.0.0.0/24]}\n"
     "    - {key: source.namespace, notValues: [prod]}\n"
     "    - {key: source.principal, values: [\"cluster.local/*\"]}\n"
     "    - {key: destination.ip, values: [10.0.1.0/24]}\n"
     "    - {key: destination.port, values: [\"8080\"], notValues: [\"9090\"]}\n",
     NULL,
     {P("shop/a", .want = ALLOW), P("prod/a", .want = DENY), P("shop/a", "10.0.5.1", .want = DENY),
      P("shop/a", NULL, "10.0.2.1", .want = DENY), P("shop/a", .port = 81, .want = DENY),
      P(NULL, .want = DENY)}},
    {"an empty rule matches everything",
     "  rules: [{}]\n",
     NULL,
     {P(NULL, .want = ALLOW), P("a/b", .port = 1, .want = ALLOW)}},
    {"ALLOW without rules allows nothing",
     "  {}\n",
     NULL,
     {P(NULL, .want = DENY), P("shop/a", .want = DENY)}},
    {"DENY principals; no ALLOW policy: the rest is allowed",
     "  action: DENY\n  rules: [{from: [{source: {principals: "
     "[cluster.local/ns/shop/sa/bad]}}]}]\n",
     NULL,
     {P("shop/bad", .want = DENY), P("shop/good", .want = ALLOW), P(NULL, .want = ALLOW)}},
    {"DENY with an empty rule denies everything",
     "  action: DENY\n  rules: [{}]\n",
     NULL,
     {P(NULL, .want = DENY), P("shop/a", .want = DENY)}},
    {"ALLOW: a rule with HTTP fields is dropped, the others stay",
     "  rules:\n"
     "  - to: [{operation: {methods: [GET], ports: [\"80\"]}}]\n"
     "  - from: [{source: {principals: [cluster.local/ns/shop/sa/a]}}]\n",
     NULL,
     {P("shop/a", .want = ALLOW), P("shop/b", .port = 80, .want = DENY), P(NULL, .want = DENY)}},
    {"ALLOW: every rule with HTTP fields: nothing is allowed",
     "  rules: [{from: [{source: {principals: [\"*\"]}}], when: [{key: \"request.headers[x-a]\", "
     "values: [\"1\"]}]}]\n",
     NULL,
     {P("shop/a", .want = DENY), P(NULL, .want = DENY)}},
    {"DENY: HTTP fields stripped; the port is denied to everyone",
     "  action: DENY\n  rules: [{to: [{operation: {ports: [\"8080\"], methods: [POST]}}]}]\n",
     NULL,
     {P("shop/a", .port = 8080, .want = DENY), P("shop/a", .port = 80, .want = ALLOW)}},
    {"DENY: a rule left with an empty match never fires",
     "  action: DENY\n"
     "  rules: [{from: [{source: {principals: [\"*\"]}}], to: [{operation: {paths: [/admin]}}]}]\n",
     NULL,
     {P("shop/a", .want = ALLOW), P(NULL, .want = ALLOW)}},
    {"DENY: an HTTP condition never matches",
     "  action: DENY\n"
     "  rules: [{when: [{key: request.auth.principal, values: [x]}]}]\n",
     NULL,
     {P("shop/a", .want = ALLOW)}},
    {"dry run: the policy never decides",
     "  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/a]}}]}]\n",
     "istio.io/dry-run: \"true\"",
     {P("shop/b", .want = ALLOW), P("shop/a", .want = ALLOW)}},
};

static void
test_conversion_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(conv_cases); i++) {
        const struct conv_case *c = &conv_cases[i];
        char *yaml =
            xasprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                      "metadata:\n  name: p\n  namespace: shop\n%s%s%sspec:\n%s",
                      c->annotations ? "  annotations: {" : "",
                      c->annotations ? c->annotations : "", c->annotations ? "}\n" : "", c->spec);
        struct k8s_diags d = {0};
        struct k8s_store *st = store_with("p.yaml", yaml, &d);
        if (k8s_diags_count(&d, K8S_ERROR) > 0)
            fail_msg("%s: %s", c->name, k8s_diag_str(&d.v[0]));
        struct mesh_resources r;
        build(st, &r, NULL);
        assert_int_equal(r.n, 1);
        Istio__Security__Authorization *a = unpack_authz(&r, "shop/p");
        assert_string_equal(a->name, "p");
        assert_string_equal(a->namespace_, "shop");
        assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__NAMESPACE);
        assert_int_equal(a->dry_run, c->annotations != NULL);
        istio__security__authorization__free_unpacked(a, NULL);
        struct policy_set *s = policy_set_of(&r);
        for (size_t j = 0; j < ARRAY_LEN(c->probes) && c->probes[j].on; j++) {
            const struct probe *p = &c->probes[j];
            struct policy_decision why;
            enum policy_verdict got = check(s, "shop", NULL, 0, p, &why);
            if ((int)got != p->want)
                fail_msg("%s: probe %zu (%s from %s to port %u): %s, wanted %s", c->name, j,
                         p->peer ? p->peer : "plaintext", p->src_ip ? p->src_ip : "10.0.0.5",
                         p->port ? p->port : 8080, got == POLICY_ALLOW ? "allow" : "deny",
                         p->want == ALLOW ? "allow" : "deny");
        }
        policy_set_unref(s);
        mesh_resources_free(&r);
        k8s_diags_clear(&d);
        k8s_store_free(st);
        free(yaml);
    }
}

/* The Istio structure: a Rule per rule; Clauses for `to`, `from`, then each `when`. */
static void
test_rule_structure(void **state)
{
    static const char yaml[] =
        "apiVersion: security.istio.io/v1beta1\n"
        "kind: AuthorizationPolicy\n"
        "metadata: {name: s, namespace: shop}\n"
        "spec:\n"
        "  action: DENY\n"
        "  rules:\n"
        "  - from:\n"
        "    - source: {principals: [\"a*\"], notNamespaces: [\"*x\"]}\n"
        "    - source: {ipBlocks: [\"10.0.0.1\", \"fd00::/8\"], serviceAccounts: [web]}\n"
        "    to: [{operation: {ports: [\"80\"]}}, {operation: {notPorts: [\"81\"]}}]\n"
        "    when:\n"
        "    - {key: destination.ip, notValues: [\"10.1.0.0/16\"]}\n"
        "    - {key: source.principal, values: [\"*\"]}\n"
        "  - {}\n";
    struct k8s_store *st = store_with("s.yaml", yaml, NULL);
    struct mesh_resources r;
    (void)state;

    build(st, &r, NULL);
    Istio__Security__Authorization *a = unpack_authz(&r, "shop/s");
    assert_int_equal(a->action, ISTIO__SECURITY__ACTION__DENY);
    assert_int_equal(a->n_rules, 2);
    assert_int_equal(a->rules[1]->n_clauses, 0); /* {} matches everything */
    const Istio__Security__Rule *r0 = a->rules[0];
    assert_int_equal(r0->n_clauses, 4);
    /* to: one Match per operation */
    assert_int_equal(r0->clauses[0]->n_matches, 2);
    assert_int_equal(r0->clauses[0]->matches[0]->n_destination_ports, 1);
    assert_int_equal(r0->clauses[0]->matches[0]->destination_ports[0], 80);
    assert_int_equal(r0->clauses[0]->matches[1]->not_destination_ports[0], 81);
    /* from: one Match per source */
    const Istio__Security__Clause *from = r0->clauses[1];
    assert_int_equal(from->n_matches, 2);
    assert_int_equal(from->matches[0]->principals[0]->match_type_case,
                     ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX);
    assert_string_equal(from->matches[0]->principals[0]->prefix, "a");
    assert_int_equal(from->matches[0]->not_namespaces[0]->match_type_case,
                     ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX);
    assert_string_equal(from->matches[0]->not_namespaces[0]->suffix, "x");
    const Istio__Security__Match *m1 = from->matches[1];
    assert_int_equal(m1->n_source_ips, 2);
    assert_int_equal(m1->source_ips[0]->address.len, 4);
    assert_int_equal(m1->source_ips[0]->length, 32);
    assert_int_equal(m1->source_ips[1]->address.len, 16);
    assert_int_equal(m1->source_ips[1]->address.data[0], 0xfd);
    assert_int_equal(m1->source_ips[1]->length, 8);
    assert_string_equal(m1->service_accounts[0]->namespace_, "shop");
    assert_string_equal(m1->service_accounts[0]->serviceaccount, "web");
    /* when: a Clause each, one Match */
    assert_int_equal(r0->clauses[2]->n_matches, 1);
    assert_int_equal(r0->clauses[2]->matches[0]->n_not_destination_ips, 1);
    assert_int_equal(r0->clauses[2]->matches[0]->not_destination_ips[0]->length, 16);
    assert_int_equal(r0->clauses[3]->matches[0]->principals[0]->match_type_case,
                     ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE);
    istio__security__authorization__free_unpacked(a, NULL);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

/* ---- Scopes and the workloads that list selector policies ---- */

static void
test_scopes_and_selection(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};
    struct mesh_resources r;
    (void)state;

    assert_int_equal(k8s_store_load_file(st, FIXTURE, &d), 0);
    build(st, &r, NULL);
    Istio__Security__Authorization *a = unpack_authz(&r, "shop/ns-wide");
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__NAMESPACE);
    istio__security__authorization__free_unpacked(a, NULL);
    a = unpack_authz(&r, "istio-system/mesh-wide");
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__GLOBAL);
    assert_string_equal(a->namespace_, "istio-system");
    istio__security__authorization__free_unpacked(a, NULL);
    a = unpack_authz(&r, "shop/web-only");
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR);
    istio__security__authorization__free_unpacked(a, NULL);
    a = unpack_authz(&r, "istio-system/root-selector");
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR);
    istio__security__authorization__free_unpacked(a, NULL);
    /* Not sent: targetRefs, AUDIT. No PeerAuthentication here: no static policy. */
    assert_null(mesh_resources_find(&r, K8S_TYPE_AUTHORIZATION, "shop/for-waypoint"));
    assert_null(mesh_resources_find(&r, K8S_TYPE_AUTHORIZATION, "shop/audit"));
    assert_null(mesh_resources_find(&r, K8S_TYPE_AUTHORIZATION, STRICT_K));

    /*
     * Selector policies of the pod's namespace and of the root namespace, sorted; not the
     * namespace-wide or global ones (ztunnel finds those by scope); `selector: {}` lists
     * nowhere, `matchLabels: {}` everywhere in its namespace.
     */
    assert_pols(&r, "shop/web-1",
                "istio-system/root-selector,shop/all-in-shop,shop/tier-front,shop/web-only");
    assert_pols(&r, "shop/api-1", "shop/all-in-shop,shop/tier-front");
    assert_pols(&r, "shop/other", "shop/all-in-shop");
    assert_pols(&r, "prod/web-2", "istio-system/root-selector");
    assert_pols(&r, "prod/db", "");

    /* End to end: a selector ALLOW admits the principal it names and no other. */
    struct policy_set *s = policy_set_of(&r);
    char *pols[] = {"shop/web-only"};
    struct probe ok = P("shop/frontend"), bad = P("shop/intruder");
    assert_int_equal(check(s, "shop", pols, 1, &ok, NULL), ALLOW);
    assert_int_equal(check(s, "shop", pols, 1, &bad, NULL), DENY);
    /* The GLOBAL DENY applies in every namespace, without being listed. */
    struct probe blocked = P("evil/x");
    struct policy_decision why;
    assert_int_equal(check(s, "prod", NULL, 0, &blocked, &why), DENY);
    assert_string_equal(why.policy, "istio-system/mesh-wide");
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_store_free(st);
}

static void
test_not_sent(void **state)
{
    static const char yaml[] = "apiVersion: security.istio.io/v1\n"            /* 1 */
                               "kind: AuthorizationPolicy\n"                   /* 2 */
                               "metadata: {name: wp, namespace: shop}\n"       /* 3 */
                               "spec:\n"                                       /* 4 */
                               "  targetRefs:\n"                               /* 5 */
                               "  - {kind: Service, group: \"\", name: web}\n" /* 6 */
                               "  rules: [{to: [{operation: {methods: [GET]}}]}]\n"
                               "---\n"
                               "apiVersion: security.istio.io/v1\n"       /* 9 */
                               "kind: AuthorizationPolicy\n"              /* 10 */
                               "metadata: {name: ext, namespace: shop}\n" /* 11 */
                               "spec:\n"                                  /* 12 */
                               "  action: CUSTOM\n"                       /* 13 */
                               "  provider: {name: opa}\n"
                               "  rules: [{}]\n"
                               "---\n"
                               "apiVersion: security.istio.io/v1\n"
                               "kind: AuthorizationPolicy\n"
                               "metadata: {name: aud, namespace: shop}\n"
                               "spec: {action: AUDIT, rules: [{}]}\n"; /* 20 */
    struct k8s_diags d = {0}, all = {0};
    struct k8s_store *st = store_with("ns.yaml", yaml, &d);
    struct mesh_resources r;
    (void)state;

    assert_int_equal(k8s_diags_count(&d, K8S_ERROR), 0);
    build(st, &r, NULL);
    assert_int_equal(r.n, 0);
    k8s_build_diags(st, &all);
    must_diag(&all, "not sent to ztunnel", K8S_INFO, 5, NULL);
    must_diag(&all, "does not support the CUSTOM action", K8S_WARNING, 13, "IST0167");
    must_diag(&all, "does not support the AUDIT action", K8S_WARNING, 20, "IST0167");
    /* meshctl's rendering */
    char *s = k8s_diag_str(find_diag(&all, "not sent to ztunnel"));
    assert_non_null(strstr(s, "ns.yaml:5: info: "));
    free(s);
    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

/* ---- L7 fields: what is dropped, and the diagnostics at the right lines ---- */

static void
test_l7_diagnostics(void **state)
{
    static const char yaml[] =
        "apiVersion: security.istio.io/v1\n"                              /* 1 */
        "kind: AuthorizationPolicy\n"                                     /* 2 */
        "metadata: {name: allow-http, namespace: shop}\n"                 /* 3 */
        "spec:\n"                                                         /* 4 */
        "  rules:\n"                                                      /* 5 */
        "  - from: [{source: {principals: [cluster.local/ns/a/sa/b]}}]\n" /* 6 */
        "  - to:\n"                                                       /* 7 */
        "    - operation:\n"                                              /* 8 */
        "        ports: [\"80\"]\n"                                       /* 9 */
        "        paths: [/admin]\n"                                       /* 10 */
        "        methods: [GET]\n"                                        /* 11 */
        "---\n"                                                           /* 12 */
        "apiVersion: security.istio.io/v1\n"                              /* 13 */
        "kind: AuthorizationPolicy\n"                                     /* 14 */
        "metadata: {name: deny-http, namespace: shop}\n"                  /* 15 */
        "spec:\n"                                                         /* 16 */
        "  action: DENY\n"                                                /* 17 */
        "  rules:\n"                                                      /* 18 */
        "  - from:\n"                                                     /* 19 */
        "    - source:\n"                                                 /* 20 */
        "        requestPrincipals: [\"*\"]\n"                            /* 21 */
        "---\n"                                                           /* 22 */
        "apiVersion: security.istio.io/v1\n"                              /* 23 */
        "kind: AuthorizationPolicy\n"                                     /* 24 */
        "metadata: {name: deny-mixed, namespace: shop}\n"                 /* 25 */
        "spec:\n"                                                         /* 26 */
        "  action: DENY\n"                                                /* 27 */
        "  rules:\n"                                                      /* 28 */
        "  - to: [{operation: {ports: [\"22\"], hosts: [a.example]}}]\n"  /* 29 */
        "---\n"                                                           /* 30 */
        "apiVersion: security.istio.io/v1\n"                              /* 31 */
        "kind: AuthorizationPolicy\n"                                     /* 32 */
        "metadata: {name: allow-none, namespace: shop}\n"                 /* 33 */
        "spec:\n"                                                         /* 34 */
        "  action: ALLOW\n"                                               /* 35 */
        "  rules:\n"                                                      /* 36 */
        "  - when: [{key: \"request.auth.claims[iss]\", values: [x]}]\n"; /* 37 */
    struct k8s_diags d = {0}, built = {0}, all = {0};
    struct k8s_store *st = store_with("l7.yaml", yaml, &d);
    struct mesh_resources r;
    (void)state;

    assert_int_equal(k8s_diags_count(&d, K8S_ERROR), 0);
    build(st, &r, &built);
    k8s_build_diags(st, &all);
    /* ALLOW: the rule with HTTP fields is omitted; the warning is at its first HTTP field. */
    const struct k8s_diag *g =
        must_diag(&all, "spec.rules[1] is omitted", K8S_WARNING, 10, "IST0167");
    assert_non_null(strstr(g->msg, "found: methods, paths"));
    assert_non_null(strstr(g->msg, "more restrictive than requested"));
    assert_string_equal(g->file, "l7.yaml");
    Istio__Security__Authorization *a = unpack_authz(&r, "shop/allow-http");
    assert_int_equal(a->n_rules, 1);
    istio__security__authorization__free_unpacked(a, NULL);
    /* DENY whose only rule is left with an empty Match: it can never fire. */
    must_diag(&all,
              "spec.rules[0]: ztunnel does not support HTTP attributes (found: requestPrincipals)",
              K8S_WARNING, 21, "IST0167");
    g = must_diag(&all, "no impact at ztunnel", K8S_WARNING, 17, "IST0167");
    assert_non_null(strstr(g->msg, "will have no effect"));
    a = unpack_authz(&r, "shop/deny-http");
    assert_int_equal(a->n_rules, 1); /* sent as istiod sends it: empty matches stay */
    assert_int_equal(a->rules[0]->clauses[0]->n_matches, 1);
    istio__security__authorization__free_unpacked(a, NULL);
    /* DENY with an L4 remainder: enforced without the HTTP fields, no "no effect" warning. */
    g = must_diag(&all, "found: hosts", K8S_WARNING, 29, "IST0167");
    assert_non_null(strstr(g->msg, "enforced without the HTTP rules"));
    /* ALLOW whose every rule is omitted: it denies everything. */
    must_diag(&all, "denies all traffic", K8S_WARNING, 35, "IST0167");
    size_t no_effect = 0;
    for (size_t i = 0; i < all.n; i++)
        no_effect += strstr(all.v[i].msg, "will have no effect") != NULL;
    assert_int_equal(no_effect, 1);
    /* The build reports the same warnings. */
    assert_int_equal(built.n, all.n);

    /* And they behave so at ztunnel: deny-mixed denies port 22 to everyone. */
    struct policy_set *s = policy_set_of(&r);
    struct probe p22 = P("a/b", .port = 22), p80 = P("a/b", .port = 80);
    assert_int_equal(check(s, "shop", NULL, 0, &p22, NULL), DENY);
    /* allow-http admits a/b (rule 0); allow-none allows nothing but it is another policy. */
    assert_int_equal(check(s, "shop", NULL, 0, &p80, NULL), ALLOW);
    struct probe other = P("a/c", .port = 80);
    assert_int_equal(check(s, "shop", NULL, 0, &other, NULL), DENY);
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_diags_clear(&built);
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

/* ---- Validation ---- */

struct bad_case {
    const char *spec;
    int line; /* of the error, in a document whose spec starts on line 4 */
    const char *needle;
};

static const struct bad_case bad_cases[] = {
    {"  rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]\n", 5,
     "bad CIDR range (10.0.0.0/33)"},
    {"  rules: [{from: [{source: {notIpBlocks: [10.0.0.256]}}]}]\n", 5,
     "bad IP address (10.0.0.256)"},
    {"  rules:\n  - when: [{key: source.ip, values: [\"x/8\"]}]\n", 6, "bad CIDR range (x/8)"},
    {"  rules: [{to: [{operation: {ports: [\"65536\"]}}]}]\n", 5, "bad port (65536)"},
    {"  rules: [{to: [{operation: {notPorts: [\"http\"]}}]}]\n", 5, "bad port (http)"},
    {"  rules:\n  - to: [{operation: {ports: [8080]}}]\n", 6, "quote the value"},
    {"  rules:\n  - when: [{key: destination.port, values: [\"-1\"]}]\n", 6, "bad port (-1)"},
    {"  action: REJECT\n", 5, "\"REJECT\" is not ALLOW, DENY, AUDIT or CUSTOM"},
    {"  action: DENY\n", 5, "DENY action without `rules`"},
    {"  rules: [{from: [{source: {principal: [x]}}]}]\n", 5, "unknown field \"principal\""},
    {"  rule: []\n", 5, "unknown field \"rule\""},
    {"  rules: [{from: [{source: {}}]}]\n", 5, "`from.source` must not be empty"},
    {"  rules: [{from: []}]\n", 5, "`from` must not be empty"},
    {"  rules: [{to: [{}]}]\n", 5, "`to.operation` must not be nil"},
    {"  rules: [{from: [{source: {principals: [a], serviceAccounts: [b]}}]}]\n", 5,
     "cannot set serviceAccounts with namespaces or principals"},
    {"  rules: [{from: [{source: {serviceAccounts: [\"a/b/c\"]}}]}]\n", 5,
     "is not a service account"},
    {"  rules: [{from: [{source: {principals: [\"\"]}}]}]\n", 5, "empty value not allowed"},
    {"  rules:\n  - when: [{key: request.foo, values: [x]}]\n", 6, "unknown attribute"},
    {"  rules:\n  - when: [{key: destination.namespace, values: [x]}]\n", 6,
     "replaced by the metadata.namespace"},
    {"  rules:\n  - when: [{key: source.ip}]\n", 6, "at least one of `values` or `notValues`"},
    {"  rules:\n  - when: [{key: request.headers, values: [x]}]\n", 6, "should have format a[b]"},
    {"  selector:\n    matchLabels: {app: \"web*\"}\n", 6, "wildcard is not supported"},
    {"  selector: {matchLabels: {app: web}}\n  targetRefs: [{kind: Service, name: web}]\n", 4,
     "only one of targetRefs or workloadSelector"},
    {"  targetRefs:\n  - {kind: Deployment, name: web}\n", 6, "targetRef must be to"},
    {"  provider: {name: x}\n", 5, "`provider` must not be with non CUSTOM action"},
    {"  action: CUSTOM\n  rules: [{}]\n", 5, "`provider.name` must not be empty"},
};

static void
test_validation_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        char *yaml = xasprintf("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                               "metadata: {name: bad, namespace: shop}\nspec:\n%s",
                               c->spec);
        struct k8s_diags d = {0};
        struct k8s_store *st = k8s_store_new();
        int rc = k8s_store_load_buf(st, "bad.yaml", yaml, strlen(yaml), &d);
        if (rc != -MESH_ECONFIG)
            fail_msg("case %zu (%s): accepted", i, c->needle);
        const struct k8s_diag *g = find_diag(&d, c->needle);
        if (g == NULL)
            fail_msg("case %zu: no error with \"%s\" (first: %s)", i, c->needle,
                     d.n ? d.v[0].msg : "none");
        if (g->severity != K8S_ERROR || g->line != c->line)
            fail_msg("case %zu: %s, wanted an error at line %d", i, k8s_diag_str(g), c->line);
        assert_string_equal(g->code, "IST0106");
        assert_int_equal(k8s_store_count(st, K8S_AUTHORIZATION_POLICY), 0);
        k8s_diags_clear(&d);
        k8s_store_free(st);
        free(yaml);
    }
}

/* An invalid edit keeps the previous version of the policy, which stays served. */
static void
test_invalid_keeps_previous(void **state)
{
    static const char good[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                               "metadata: {name: p, namespace: shop}\n"
                               "spec: {rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]}\n";
    static const char bad[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                              "metadata: {name: p, namespace: shop}\n"
                              "spec: {rules: [{from: [{source: {ipBlocks: [10.0.0.0/99]}}]}]}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0}, all = {0};
    struct mesh_resources r1, r2;
    (void)state;

    assert_int_equal(k8s_store_load_buf(st, "p.yaml", good, strlen(good), NULL), 0);
    build(st, &r1, NULL);
    assert_int_equal(k8s_store_load_buf(st, "p.yaml", bad, strlen(bad), &d), -MESH_ECONFIG);
    must_diag(&d, "keeping the version loaded before", K8S_WARNING, 1, NULL);
    build(st, &r2, NULL);
    assert_int_equal(r2.n, 1);
    assert_string_equal(r1.v[0].version, r2.v[0].version);
    k8s_build_diags(st, &all);
    must_diag(&all, "bad CIDR range", K8S_ERROR, 4, "IST0106");
    mesh_resources_free(&r1);
    mesh_resources_free(&r2);
    k8s_diags_clear(&d);
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

/* Warnings that do not reject: empty selectors, a dry-run value that is not a boolean. */
static void
test_warnings(void **state)
{
    static const char yaml[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                               "metadata:\n  name: w\n  namespace: shop\n"
                               "  annotations: {istio.io/dry-run: \"yes\"}\n"
                               "spec:\n  selector: {}\n  rules: [{}]\n";
    struct k8s_diags d = {0}, all = {0};
    struct k8s_store *st = store_with("w.yaml", yaml, &d);
    struct mesh_resources r;
    (void)state;

    assert_int_equal(k8s_diags_count(&d, K8S_ERROR), 0);
    build(st, &r, NULL);
    k8s_build_diags(st, &all);
    must_diag(&all, "workload selector specified without labels", K8S_WARNING, 8, "IST0133");
    must_diag(&all, "istio.io/dry-run: \"yes\" is not a boolean", K8S_WARNING, 1, "IST0125");
    Istio__Security__Authorization *a = unpack_authz(&r, "shop/w");
    assert_false(a->dry_run);
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR);
    istio__security__authorization__free_unpacked(a, NULL);
    mesh_resources_free(&r);
    k8s_diags_clear(&d);
    k8s_diags_clear(&all);
    k8s_store_free(st);
}

/* ---- PeerAuthentication ---- */

/* Pods in two namespaces; |pas| adds PeerAuthentications. */
static struct k8s_store *
pa_store(const char *pas)
{
    static const char pods[] =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: a}}\n"
        "status: {podIP: 10.0.0.1}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: b}}\n"
        "status: {podIP: 10.0.0.2}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: prod, labels: {app: a}}\n"
        "status: {podIP: 10.0.0.3}\n";
    struct k8s_store *st = k8s_store_new();
    struct k8s_diags d = {0};

    assert_int_equal(k8s_store_load_buf(st, "pods.yaml", pods, strlen(pods), NULL), 0);
    if (k8s_store_load_buf(st, "pa.yaml", pas, strlen(pas), &d) != 0)
        fail_msg("%s", d.n ? k8s_diag_str(&d.v[0]) : "?");
    k8s_diags_clear(&d);
    return st;
}

#define PA(ns, name, rest)                                                                         \
    "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: " name           \
    ", namespace: " ns "}\nspec: " rest "\n---\n"

static void
test_peer_authentication_levels(void **state)
{
    struct mesh_resources r;
    struct k8s_store *st;
    (void)state;

    /* No PeerAuthentication: no static policy, nothing listed. */
    st = pa_store("");
    build(st, &r, NULL);
    assert_int_equal(count_type(&r, K8S_TYPE_AUTHORIZATION), 0);
    assert_pols(&r, "shop/a", "");
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* Mesh-wide STRICT: every workload lists the static policy. */
    st = pa_store(PA("istio-system", "default", "{mtls: {mode: STRICT}}"));
    build(st, &r, NULL);
    assert_int_equal(count_type(&r, K8S_TYPE_AUTHORIZATION), 1);
    Istio__Security__Authorization *a = unpack_authz(&r, STRICT_K);
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR);
    assert_int_equal(a->action, ISTIO__SECURITY__ACTION__DENY);
    assert_int_equal(a->n_rules, 1);
    assert_int_equal(a->rules[0]->n_clauses, 1);
    assert_int_equal(a->rules[0]->clauses[0]->matches[0]->n_not_principals, 1);
    assert_int_equal(a->rules[0]->clauses[0]->matches[0]->not_principals[0]->match_type_case,
                     ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE);
    istio__security__authorization__free_unpacked(a, NULL);
    assert_pols(&r, "shop/a", STRICT_K);
    assert_pols(&r, "prod/c", STRICT_K);
    /* ztunnel: plaintext denied, mTLS allowed, for a workload that lists it. */
    struct policy_set *s = policy_set_of(&r);
    char *pols[] = {STRICT_K};
    struct probe plain = P(NULL), mtls = P("x/y");
    assert_int_equal(check(s, "shop", pols, 1, &plain, NULL), DENY);
    assert_int_equal(check(s, "shop", pols, 1, &mtls, NULL), ALLOW);
    /* Not listed: WORKLOAD_SELECTOR scope, so it does not apply. */
    assert_int_equal(check(s, "shop", NULL, 0, &plain, NULL), ALLOW);
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* Namespace PERMISSIVE overrides mesh STRICT; UNSET inherits it. */
    st = pa_store(PA("istio-system", "default", "{mtls: {mode: STRICT}}")
                      PA("shop", "relaxed", "{mtls: {mode: PERMISSIVE}}")
                          PA("prod", "unset", "{mtls: {mode: UNSET}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", "");
    assert_pols(&r, "prod/c", STRICT_K);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* Workload-level: STRICT for app a only; PERMISSIVE for app b under a STRICT namespace. */
    st = pa_store(PA("shop", "ns", "{mtls: {mode: STRICT}}")
                      PA("shop", "b-relaxed",
                         "{selector: {matchLabels: {app: b}}, mtls: {mode: "
                         "PERMISSIVE}}") PA("prod", "c-strict",
                                            "{selector: {matchLabels: {app: a}}, mtls: "
                                            "{mode: STRICT}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", STRICT_K);
    assert_pols(&r, "shop/b", "");
    assert_pols(&r, "prod/c", STRICT_K);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* Two namespace-wide policies: the oldest wins. */
    st = pa_store("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: "
                  "a-new, namespace: shop, creationTimestamp: \"2025-02-01T00:00:00Z\"}\n"
                  "spec: {mtls: {mode: PERMISSIVE}}\n---\n"
                  "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: "
                  "b-old, namespace: shop, creationTimestamp: \"2025-01-01T00:00:00+01:00\"}\n"
                  "spec: {mtls: {mode: STRICT}}\n");
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", STRICT_K);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

static void
test_peer_authentication_ports(void **state)
{
    struct mesh_resources r;
    struct k8s_store *st;
    struct policy_set *s;
    (void)state;

    /* STRICT workload with a PERMISSIVE port: the converted policy replaces the static one. */
    st = pa_store(PA("shop", "a-ports",
                     "{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, "
                     "portLevelMtls: {\"8080\": {mode: PERMISSIVE}}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", "shop/converted_peer_authentication_a-ports");
    assert_pols(&r, "shop/b", "");
    Istio__Security__Authorization *a =
        unpack_authz(&r, "shop/converted_peer_authentication_a-ports");
    assert_int_equal(a->scope, ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR);
    assert_int_equal(a->action, ISTIO__SECURITY__ACTION__DENY);
    assert_int_equal(a->n_rules, 1);
    assert_int_equal(a->rules[0]->n_clauses, 2); /* no identity AND not port 8080 */
    istio__security__authorization__free_unpacked(a, NULL);
    s = policy_set_of(&r);
    char *pa_pols[] = {"shop/converted_peer_authentication_a-ports"};
    struct probe p8080 = P(NULL, .port = 8080), p9090 = P(NULL, .port = 9090),
                 m9090 = P("x/y", .port = 9090);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p8080, NULL), ALLOW);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p9090, NULL), DENY);
    assert_int_equal(check(s, "shop", pa_pols, 1, &m9090, NULL), ALLOW);
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* PERMISSIVE workload with a STRICT port: only that port needs an identity. */
    st = pa_store(PA("shop", "a-ports",
                     "{selector: {matchLabels: {app: a}}, mtls: {mode: "
                     "PERMISSIVE}, portLevelMtls: {\"9000\": {mode: STRICT}}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", "shop/converted_peer_authentication_a-ports");
    s = policy_set_of(&r);
    struct probe p9000 = P(NULL, .port = 9000), m9000 = P("x/y", .port = 9000);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p9000, NULL), DENY);
    assert_int_equal(check(s, "shop", pa_pols, 1, &m9000, NULL), ALLOW);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p8080, NULL), ALLOW);
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* UNSET workload under a STRICT namespace with a PERMISSIVE port: merged with STRICT. */
    st = pa_store(PA("shop", "ns", "{mtls: {mode: STRICT}}")
                      PA("shop", "a-ports",
                         "{selector: {matchLabels: {app: a}}, portLevelMtls: "
                         "{\"8080\": {mode: PERMISSIVE}}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", "shop/converted_peer_authentication_a-ports");
    assert_pols(&r, "shop/b", STRICT_K);
    s = policy_set_of(&r);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p8080, NULL), ALLOW);
    assert_int_equal(check(s, "shop", pa_pols, 1, &p9090, NULL), DENY);
    policy_set_unref(s);
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* STRICT with every port STRICT: just the static policy, no converted one. */
    st = pa_store(PA("shop", "a-ports",
                     "{selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, "
                     "portLevelMtls: {\"8080\": {mode: STRICT}}}"));
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", STRICT_K);
    assert_null(mesh_resources_find(&r, K8S_TYPE_AUTHORIZATION,
                                    "shop/converted_peer_authentication_a-ports"));
    mesh_resources_free(&r);
    k8s_store_free(st);

    /* istiod's quirk, followed and reported: mesh STRICT, workload PERMISSIVE, port STRICT. */
    st = pa_store(PA("istio-system", "mesh", "{mtls: {mode: STRICT}}")
                      PA("shop", "a-ports",
                         "{selector: {matchLabels: {app: a}}, mtls: {mode: "
                         "PERMISSIVE},\n  portLevelMtls: {\"9000\": {mode: "
                         "STRICT}}}"));
    struct k8s_diags all = {0};
    build(st, &r, NULL);
    assert_pols(&r, "shop/a", "shop/converted_peer_authentication_a-ports");
    assert_null(mesh_resources_find(&r, K8S_TYPE_AUTHORIZATION,
                                    "shop/converted_peer_authentication_a-ports"));
    k8s_build_diags(st, &all);
    must_diag(&all, "port 9000 STRICT is not enforced", K8S_WARNING, 10, "IST0167");
    k8s_diags_clear(&all);
    mesh_resources_free(&r);
    k8s_store_free(st);
}

static void
test_peer_authentication_validation(void **state)
{
    static const struct {
        const char *doc;
        const char *needle;
    } bad[] = {
        {PA("shop", "x", "{mtls: {mode: SOMETIMES}}"),
         "is not UNSET, DISABLE, PERMISSIVE or STRICT"},
        {PA("shop", "x", "{portLevelMtls: {\"80\": {mode: STRICT}}}"),
         "mesh/namespace peer authentication cannot have port level mTLS"},
        {PA("shop", "x",
            "{selector: {matchLabels: {a: b}}, portLevelMtls: {\"0\": {mode: "
            "STRICT}}}"),
         "port must be in range 1..65535"},
        {PA("shop", "x", "{selector: {matchLabels: {a: b}}, portLevelMtls: {}}"),
         "must have at least one element"},
        {PA("shop", "x", "{mtls: {mod: STRICT}}"), "unknown field \"mod\""},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct k8s_store *st = k8s_store_new();
        struct k8s_diags d = {0};
        assert_int_equal(k8s_store_load_buf(st, "pa.yaml", bad[i].doc, strlen(bad[i].doc), &d),
                         -MESH_ECONFIG);
        const struct k8s_diag *g = find_diag(&d, bad[i].needle);
        if (g == NULL)
            fail_msg("case %zu: no \"%s\" (%s)", i, bad[i].needle, d.n ? d.v[0].msg : "-");
        assert_int_equal(g->severity, K8S_ERROR);
        assert_int_equal(k8s_store_count(st, K8S_PEER_AUTHENTICATION), 0);
        k8s_diags_clear(&d);
        k8s_store_free(st);
    }
}

/* ---- Incremental builds ---- */

/* Builds |st| with the converter that followed it so far. */
static void
build_inc(struct k8s_conv *cv, const struct k8s_store *st, struct mesh_resources *r)
{
    assert_int_equal(k8s_conv_build(cv, st, NULL, r, NULL), 0);
}

static void
assert_same_as_fresh(struct k8s_conv *cv, const struct k8s_store *st, const char *const *files,
                     size_t n)
{
    struct k8s_store *ref = k8s_store_new();
    struct mesh_resources r1, r2;

    for (size_t i = 0; i < n; i++)
        k8s_store_load_buf(ref, files[2 * i], files[2 * i + 1], strlen(files[2 * i + 1]), NULL);
    build_inc(cv, st, &r1);
    build(ref, &r2, NULL);
    assert_int_equal(r1.n, r2.n);
    for (size_t i = 0; i < r1.n; i++) {
        assert_string_equal(r1.v[i].name, r2.v[i].name);
        assert_string_equal(r1.v[i].version, r2.v[i].version);
    }
    mesh_resources_free(&r1);
    mesh_resources_free(&r2);
    k8s_store_free(ref);
}

static const char *
version_of(const struct mesh_resources *r, const char *type, const char *name)
{
    const struct mesh_resource *m = mesh_resources_find(r, type, name);
    assert_non_null(m);
    return m->version;
}

static void
test_incremental(void **state)
{
    static const char pods[] =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: shop, labels: {app: a}}\n"
        "status: {podIP: 10.0.0.1}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: b}}\n"
        "status: {podIP: 10.0.0.2}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: c, namespace: prod, labels: {app: a}}\n"
        "status: {podIP: 10.0.0.3}\n";
    static const char sel_a[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                "metadata: {name: p, namespace: shop}\n"
                                "spec: {selector: {matchLabels: {app: a}}, rules: [{}]}\n";
    static const char sel_b[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                "metadata: {name: p, namespace: shop}\n"
                                "spec: {selector: {matchLabels: {app: b}}, rules: [{}]}\n";
    static const char root_sel[] = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                                   "metadata: {name: r, namespace: istio-system}\n"
                                   "spec: {selector: {matchLabels: {app: a}}, rules: [{}]}\n";
    static const char strict[] = PA("istio-system", "default", "{mtls: {mode: STRICT}}");
    const char *files1[] = {"pods.yaml", pods, "pol.yaml", sel_a};
    const char *files2[] = {"pods.yaml", pods, "pol.yaml", sel_b};
    const char *files3[] = {"pods.yaml", pods, "pol.yaml", sel_b, "root.yaml", root_sel};
    const char *files4[] = {"pods.yaml", pods,     "pol.yaml", sel_b,
                            "root.yaml", root_sel, "pa.yaml",  strict};
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    struct mesh_resources r0, r1;
    char va[17], vb[17], vc[17];
    (void)state;

    k8s_store_load_buf(st, "pods.yaml", pods, strlen(pods), NULL);
    k8s_store_load_buf(st, "pol.yaml", sel_a, strlen(sel_a), NULL);
    build_inc(cv, st, &r0);
    assert_pols(&r0, "shop/a", "shop/p");
    assert_pols(&r0, "shop/b", "");
    assert_same_as_fresh(cv, st, files1, 2);
    snprintf(va, sizeof(va), "%s", version_of(&r0, K8S_TYPE_ADDRESS, POD_KEY "shop/a"));
    snprintf(vb, sizeof(vb), "%s", version_of(&r0, K8S_TYPE_ADDRESS, POD_KEY "shop/b"));
    snprintf(vc, sizeof(vc), "%s", version_of(&r0, K8S_TYPE_ADDRESS, POD_KEY "prod/c"));

    /* The selector moves from a to b: both workloads change, prod/c does not. */
    k8s_store_load_buf(st, "pol.yaml", sel_b, strlen(sel_b), NULL);
    build_inc(cv, st, &r1);
    assert_pols(&r1, "shop/a", "");
    assert_pols(&r1, "shop/b", "shop/p");
    assert_string_not_equal(version_of(&r1, K8S_TYPE_ADDRESS, POD_KEY "shop/a"), va);
    assert_string_not_equal(version_of(&r1, K8S_TYPE_ADDRESS, POD_KEY "shop/b"), vb);
    assert_string_equal(version_of(&r1, K8S_TYPE_ADDRESS, POD_KEY "prod/c"), vc);
    assert_same_as_fresh(cv, st, files2, 2);
    mesh_resources_free(&r0);
    mesh_resources_free(&r1);

    /* A root-namespace selector policy reaches pods of every namespace. */
    k8s_store_load_buf(st, "root.yaml", root_sel, strlen(root_sel), NULL);
    build_inc(cv, st, &r1);
    assert_pols(&r1, "prod/c", "istio-system/r");
    assert_pols(&r1, "shop/a", "istio-system/r");
    assert_pols(&r1, "shop/b", "shop/p");
    assert_same_as_fresh(cv, st, files3, 3);
    mesh_resources_free(&r1);

    /* A PeerAuthentication appears: every workload lists the static policy. */
    k8s_store_load_buf(st, "pa.yaml", strict, strlen(strict), NULL);
    build_inc(cv, st, &r1);
    assert_pols(&r1, "shop/b", "shop/p," STRICT_K);
    assert_same_as_fresh(cv, st, files4, 4);
    mesh_resources_free(&r1);

    /* Everything goes again. */
    k8s_store_remove_file(st, "pa.yaml");
    k8s_store_remove_file(st, "root.yaml");
    k8s_store_load_buf(st, "pol.yaml", sel_a, strlen(sel_a), NULL);
    build_inc(cv, st, &r1);
    assert_pols(&r1, "shop/a", "shop/p");
    assert_pols(&r1, "prod/c", "");
    assert_string_equal(version_of(&r1, K8S_TYPE_ADDRESS, POD_KEY "shop/a"), va);
    assert_same_as_fresh(cv, st, files1, 2);
    mesh_resources_free(&r1);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversion_table),
        cmocka_unit_test(test_rule_structure),
        cmocka_unit_test(test_scopes_and_selection),
        cmocka_unit_test(test_not_sent),
        cmocka_unit_test(test_l7_diagnostics),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_invalid_keeps_previous),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_peer_authentication_levels),
        cmocka_unit_test(test_peer_authentication_ports),
        cmocka_unit_test(test_peer_authentication_validation),
        cmocka_unit_test(test_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
