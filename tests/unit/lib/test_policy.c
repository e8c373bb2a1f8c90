/*
 * test_policy.c - the authorization table (tests/unit/policy/cases.json)
 * evaluated by policy_check() with every policy compiled twice, from JSON and
 * from its packed protobuf form, which must agree; then sets (replace, remove,
 * clone, scopes), decision text, long identities and references.
 *
 *   test_policy --write-corpus DIR   writes the fuzz_policy seed corpus
 */
#include <arpa/inet.h>
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
#include "policy/policy.h"
#include "policy/policy_internal.h"

#define CASES MESH_SOURCE_DIR "/tests/unit/policy/cases.json"

/* ---- helpers ---- */

static json_t *
load_cases(void)
{
    json_error_t e;
    json_t *j = json_load_file(CASES, 0, &e);
    if (j == NULL)
        fail_msg("%s:%d: %s", CASES, e.line, e.text);
    return j;
}

/* The packed protobuf form of a JSON policy; the caller frees it. */
static uint8_t *
pack_json(const json_t *pj, size_t *len)
{
    struct pol_arena a = {0};
    Istio__Security__Authorization *pb;
    char err[512];

    if (policy_json_to_pb(pj, &a, &pb, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    *len = istio__security__authorization__get_packed_size(pb);
    uint8_t *buf = malloc(*len + 1);
    istio__security__authorization__pack(pb, buf);
    pol_arena_free(&a);
    return buf;
}

static struct policy *
from_json(const json_t *pj)
{
    struct policy *p;
    char err[512];
    if (policy_from_json(pj, &p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return p;
}

static struct policy *
from_pb(const json_t *pj)
{
    struct policy *p;
    char err[512];
    size_t len;
    uint8_t *buf = pack_json(pj, &len);
    if (policy_decode(buf, len, &p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    free(buf);
    return p;
}

static void
parse_ip(const char *s, struct ipaddr *ip)
{
    /* Keep IPv4-mapped addresses as IPv6 here: policy_check() must normalise them itself. */
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, s, ip->b) == 1)
        ip->family = AF_INET;
    else if (inet_pton(AF_INET6, s, ip->b) == 1)
        ip->family = AF_INET6;
    else
        fail_msg("bad IP %s in the table", s);
}

/* "<td>/ns/<ns>/sa/<sa>" -> parts in |buf|. */
static void
parse_peer(const char *s, char *buf, size_t len, struct policy_peer *peer)
{
    snprintf(buf, len, "%s", s);
    char *ns = strstr(buf, "/ns/"), *sa = ns ? strstr(ns + 4, "/sa/") : NULL;
    if (sa == NULL)
        fail_msg("bad peer %s in the table", s);
    *ns = '\0';
    *sa = '\0';
    peer->trust_domain = buf;
    peer->ns = ns + 4;
    peer->sa = sa + 4;
}

static const json_t *
field(const json_t *c, const json_t *defaults, const char *key)
{
    const json_t *v = json_object_get(c, key);
    return v ? v : json_object_get(defaults, key);
}

static enum policy_verdict
verdict_of(const char *s)
{
    return strcmp(s, "DENY") == 0 ? POLICY_DENY : POLICY_ALLOW;
}

static const char *
expected_reason(enum policy_verdict v, const char *by)
{
    if (v == POLICY_DENY)
        return by[0] ? POLICY_REASON_DENIED : POLICY_REASON_NOT_ALLOWED;
    return by[0] ? POLICY_REASON_ALLOWED : POLICY_REASON_NO_ALLOW;
}

/* ---- the table ---- */

static int
run_case(const json_t *c, const json_t *defaults, const json_t *pols, bool pb)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *ids = json_object_get(c, "policies"), *listed = json_object_get(c, "listed");
    struct policy_set *s = policy_set_new();
    struct policy_request r = {0};
    struct policy_peer peer;
    char peer_buf[256], *names[8];
    size_t i;
    const json_t *v;
    int bad = 0;

    json_array_foreach(ids, i, v)
    {
        const json_t *pj = json_object_get(pols, json_string_value(v));
        if (pj == NULL)
            fail_msg("%s: no policy %s", name, json_string_value(v));
        policy_set_add(s, pb ? from_pb(pj) : from_json(pj));
    }
    json_array_foreach(listed, i, v)
    {
        names[i] = (char *)json_string_value(v);
    }
    r.dst_ns = json_string_value(field(c, defaults, "dst_ns"));
    r.dst_policies = names;
    r.n_dst_policies = json_array_size(listed);
    const json_t *src = field(c, defaults, "src");
    if (json_is_string(src)) {
        parse_peer(json_string_value(src), peer_buf, sizeof(peer_buf), &peer);
        r.src_id = &peer;
    }
    parse_ip(json_string_value(field(c, defaults, "src_ip")), &r.src_ip);
    parse_ip(json_string_value(field(c, defaults, "dst_ip")), &r.dst_ip);
    r.dst_port = (uint16_t)json_integer_value(field(c, defaults, "port"));

    struct policy_decision d;
    enum policy_verdict want = verdict_of(json_string_value(json_object_get(c, "expect")));
    const char *by = json_string_value(json_object_get(c, "by"));
    enum policy_verdict got = policy_check(s, &r, &d);
    char text[POLICY_KEY_MAX + 64];
    if (got != want || d.verdict != got || strcmp(d.policy, by) != 0 ||
        d.reason != expected_reason(want, by)) {
        print_error("FAIL (%s) %s: got %s \"%s\", want %s by \"%s\"\n", pb ? "pb" : "json", name,
                    got == POLICY_DENY ? "DENY" : "ALLOW",
                    policy_decision_str(&d, false, text, sizeof(text)),
                    want == POLICY_DENY ? "DENY" : "ALLOW", by);
        bad++;
    }
    const json_t *dry = json_object_get(c, "dry");
    if (dry != NULL) {
        enum policy_verdict dv = verdict_of(json_string_value(dry));
        const char *dby = json_string_value(json_object_get(c, "dry_by"));
        if (!d.dry_run || d.dry_run_verdict != dv || strcmp(d.dry_run_policy, dby) != 0 ||
            d.dry_run_reason != expected_reason(dv, dby)) {
            print_error("FAIL (%s) %s: dry run: got %d %s\n", pb ? "pb" : "json", name, d.dry_run,
                        policy_decision_str(&d, true, text, sizeof(text)));
            bad++;
        }
    } else if (d.dry_run) {
        print_error("FAIL %s: unexpected dry run\n", name);
        bad++;
    }
    json_int_t unknown = json_integer_value(json_object_get(c, "unknown"));
    if ((json_int_t)d.n_unknown != unknown || (unknown > 0) != (d.unknown != NULL)) {
        print_error("FAIL %s: %zu unknown names\n", name, d.n_unknown);
        bad++;
    }
    /* The same through policy_matches() for single-policy cases: the decision follows. */
    if (json_array_size(ids) == 1 && r.n_dst_policies == 0 && by[0] != '\0') {
        const struct policy *p = policy_set_at(s, 0);
        if (!policy_matches(p, &r)) {
            print_error("FAIL %s: policy_matches() disagrees\n", name);
            bad++;
        }
    }
    policy_set_unref(s);
    return bad;
}

static void
test_table(void **state)
{
    json_t *j = load_cases();
    const json_t *cases = json_object_get(j, "cases"), *c;
    const json_t *defaults = json_object_get(j, "defaults"), *pols = json_object_get(j, "policies");
    size_t i;
    int bad = 0;
    (void)state;

    assert_true(json_array_size(cases) >= 60);
    json_array_foreach(cases, i, c)
    {
        bad += run_case(c, defaults, pols, false);
        bad += run_case(c, defaults, pols, true);
    }
    json_decref(j);
    assert_int_equal(bad, 0);
}

/* Every table policy: JSON and protobuf compile to the same thing, and a dump reads back. */
static void
test_forms_agree(void **state)
{
    json_t *j = load_cases();
    const char *id;
    json_t *pj;
    (void)state;

    json_object_foreach(json_object_get(j, "policies"), id, pj)
    {
        struct policy *a = from_json(pj), *b = from_pb(pj);
        json_t *da = policy_to_json(a), *db = policy_to_json(b);
        struct policy *c = from_json(da);
        json_t *dc = policy_to_json(c);
        if (!json_equal(da, db) || !json_equal(da, dc)) {
            char *s = json_dumps(da, JSON_COMPACT);
            fail_msg("%s: forms disagree: %s", id, s);
        }
        assert_string_equal(policy_key(a), policy_key(b));
        json_decref(da);
        json_decref(db);
        json_decref(dc);
        policy_unref(a);
        policy_unref(b);
        policy_unref(c);
    }
    json_decref(j);
}

/* ---- sets ---- */

static struct policy *
mk(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    struct policy *p = from_json(j);
    json_decref(j);
    return p;
}

static const char deny_all_ns[] = "{\"name\":\"p\",\"namespace\":\"default\",\"scope\":"
                                  "\"NAMESPACE\",\"action\":\"DENY\",\"rules\":[{}]}";
static const char deny_all_sel[] = "{\"name\":\"p\",\"namespace\":\"default\",\"scope\":"
                                   "\"WORKLOAD_SELECTOR\",\"action\":\"DENY\",\"rules\":[{}]}";
static const char allow_none_global[] = "{\"name\":\"g\",\"namespace\":\"istio-system\",\"scope\":"
                                        "\"GLOBAL\",\"action\":1,\"rules\":[]}";

static enum policy_verdict
check_default(const struct policy_set *s, char *const *listed, size_t n)
{
    struct policy_request r = {.dst_ns = "default", .dst_policies = listed, .n_dst_policies = n};
    ipaddr_parse("10.0.0.1", &r.src_ip);
    ipaddr_parse("10.0.0.2", &r.dst_ip);
    r.dst_port = 80;
    return policy_check(s, &r, NULL);
}

static void
test_set_replace_remove(void **state)
{
    char *listed[] = {"default/p"};
    (void)state;

    struct policy_set *s = policy_set_new();
    assert_int_equal(check_default(s, NULL, 0), POLICY_ALLOW);
    assert_int_equal(check_default(NULL, NULL, 0), POLICY_ALLOW);
    policy_set_add(s, mk(deny_all_ns));
    policy_set_add(s, mk(allow_none_global));
    assert_int_equal(policy_set_count(s), 2);
    assert_int_equal(check_default(s, NULL, 0), POLICY_DENY);

    /* Same key, now a selector policy: it leaves the namespace index, keeps its place. */
    policy_set_add(s, mk(deny_all_sel));
    assert_int_equal(policy_set_count(s), 2);
    assert_string_equal(policy_key(policy_set_at(s, 0)), "default/p");
    assert_int_equal(policy_scope(policy_set_get(s, "default/p")), POLICY_SCOPE_WORKLOAD_SELECTOR);
    assert_int_equal(check_default(s, NULL, 0), POLICY_ALLOW);
    assert_int_equal(check_default(s, listed, 1), POLICY_DENY);

    /* A clone shares the policies; changing it leaves the original alone. */
    struct policy_set *c = policy_set_clone(s);
    assert_true(policy_set_get(c, "default/p") == policy_set_get(s, "default/p"));
    assert_true(policy_set_remove(c, "default/p"));
    assert_false(policy_set_remove(c, "default/p"));
    assert_null(policy_set_get(c, "default/p"));
    assert_int_equal(check_default(c, listed, 1), POLICY_ALLOW);
    assert_int_equal(check_default(s, listed, 1), POLICY_DENY);
    assert_true(policy_set_remove(c, "istio-system/g"));
    assert_int_equal(policy_set_count(c), 0);
    assert_null(policy_set_at(c, 0));
    policy_set_unref(c);

    /* The same policy added again (a new reference): still one entry, one reference. */
    struct policy *same = (struct policy *)policy_set_get(s, "istio-system/g");
    policy_set_add(s, policy_ref(same));
    assert_int_equal(policy_set_count(s), 2);
    assert_true(policy_set_get(s, "istio-system/g") == same);

    /* No destination namespace: GLOBAL and listed policies still apply. */
    struct policy_request r = {.dst_policies = listed, .n_dst_policies = 1};
    assert_int_equal(policy_check(s, &r, NULL), POLICY_DENY);

    /* References: the set's own survive the caller's. */
    struct policy *p = policy_ref((struct policy *)policy_set_get(s, "default/p"));
    policy_set_unref(policy_set_ref(s));
    policy_set_unref(s);
    assert_string_equal(policy_name(p), "p");
    assert_string_equal(policy_namespace(p), "default");
    assert_int_equal(policy_action(p), POLICY_ACTION_DENY);
    assert_false(policy_dry_run(p));
    policy_unref(p);
    policy_unref(NULL);
    policy_set_unref(NULL);
}

/* Many policies in one namespace and many namespaces: index growth and removal in the middle. */
static void
test_set_many(void **state)
{
    struct policy *ps[300];
    char text[256], key[64];
    (void)state;

    for (int i = 0; i < 300; i++) {
        snprintf(
            text, sizeof(text),
            "{\"name\":\"p%d\",\"namespace\":\"ns%d\",\"scope\":\"NAMESPACE\",\"action\":"
            "\"DENY\",\"rules\":[{\"clauses\":[{\"matches\":[{\"destinationPorts\":[%d]}]}]}]}",
            i, i % 7, 1000 + i);
        ps[i] = mk(text);
    }
    struct policy_set *s = policy_set_build(ps, 300);
    for (int i = 0; i < 300; i++)
        policy_unref(ps[i]);
    assert_int_equal(policy_set_count(s), 300);
    for (int i = 0; i < 300; i += 2) {
        snprintf(key, sizeof(key), "ns%d/p%d", i % 7, i);
        assert_true(policy_set_remove(s, key));
    }
    for (int i = 0; i < 300; i++) {
        struct policy_request r = {0};
        char ns[16];
        snprintf(ns, sizeof(ns), "ns%d", i % 7);
        r.dst_ns = ns;
        r.dst_port = (uint16_t)(1000 + i);
        assert_int_equal(policy_check(s, &r, NULL), i % 2 ? POLICY_DENY : POLICY_ALLOW);
    }
    assert_string_equal(policy_key(policy_set_at(s, 0)), "ns1/p1");
    policy_set_unref(s);
}

static void
test_decision_text(void **state)
{
    char *listed[] = {"default/p"};
    char buf[POLICY_KEY_MAX + 64];
    struct policy_decision d;
    struct policy_request r = {.dst_ns = "default", .dst_policies = listed, .n_dst_policies = 1};
    (void)state;

    struct policy *p = mk(deny_all_sel);
    struct policy_set *s = policy_set_build(&p, 1);
    policy_unref(p);
    assert_int_equal(policy_check(s, &r, &d), POLICY_DENY);
    assert_string_equal(policy_decision_str(&d, false, buf, sizeof(buf)),
                        "explicitly denied by: default/p");
    policy_set_unref(s);

    s = policy_set_new();
    p = mk(allow_none_global);
    policy_set_add(s, p);
    assert_int_equal(policy_check(s, &r, &d), POLICY_ALLOW); /* the global one is a DENY */
    assert_string_equal(policy_decision_str(&d, false, buf, sizeof(buf)), "no allow policies");
    policy_set_add(s, mk("{\"name\":\"a\",\"namespace\":\"default\",\"scope\":\"NAMESPACE\","
                         "\"action\":\"ALLOW\",\"rules\":[]}"));
    assert_int_equal(policy_check(s, &r, &d), POLICY_DENY);
    assert_string_equal(policy_decision_str(&d, false, buf, sizeof(buf)),
                        "allow policies exist, but none allowed");
    policy_set_unref(s);
}

/* A principal longer than the on-stack buffer takes the heap path and still matches exactly. */
static void
test_long_identity(void **state)
{
    char ns[200], sa[200], td[300], text[1200];
    (void)state;

    memset(ns, 'n', sizeof(ns) - 1);
    memset(sa, 's', sizeof(sa) - 1);
    memset(td, 't', sizeof(td) - 1);
    ns[sizeof(ns) - 1] = sa[sizeof(sa) - 1] = td[sizeof(td) - 1] = '\0';
    snprintf(text, sizeof(text),
             "{\"name\":\"a\",\"namespace\":\"default\",\"scope\":\"NAMESPACE\",\"action\":"
             "\"ALLOW\",\"rules\":[{\"clauses\":[{\"matches\":[{\"principals\":[{\"exact\":"
             "\"%s/ns/%s/sa/%s\"}]}]}]}]}",
             td, ns, sa);
    struct policy *p = mk(text);
    struct policy_peer peer = {.trust_domain = td, .ns = ns, .sa = sa};
    struct policy_request r = {.dst_ns = "default", .src_id = &peer};
    assert_true(policy_matches(p, &r));
    sa[0] = 'x';
    assert_false(policy_matches(p, &r));
    peer.trust_domain = NULL; /* NULL parts read as "" */
    assert_false(policy_matches(p, &r));
    policy_unref(p);
}

/* ---- seed corpus for fuzz_policy ---- */

static int
write_corpus(const char *dir)
{
    json_t *j = load_cases();
    const char *id;
    json_t *pj;
    char path[512];

    json_object_foreach(json_object_get(j, "policies"), id, pj)
    {
        size_t len;
        uint8_t *buf = pack_json(pj, &len);
        snprintf(path, sizeof(path), "%s/%s", dir, id);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(buf, 1, len, f) != len) {
            perror(path);
            return 1;
        }
        fclose(f);
        free(buf);
    }
    json_decref(j);
    return 0;
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_forms_agree),
        cmocka_unit_test(test_set_replace_remove),
        cmocka_unit_test(test_set_many),
        cmocka_unit_test(test_decision_text),
        cmocka_unit_test(test_long_identity),
    };
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
