/*
 * test_policy_decode.c - policy_decode() and policy_from_json(): what a good
 * policy compiles to, then every validation error with the field it names,
 * the caps (checked on the wire before protobuf-c allocates) and malformed
 * wire input.
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
#include "policy/policy.h"
#include "policy/policy_internal.h"

/* A policy with one of each list, as protobuf-c structs to break one field at a time. */
static const char base_json[] =
    "{\"name\":\"p\",\"namespace\":\"default\",\"scope\":\"NAMESPACE\",\"action\":\"ALLOW\","
    "\"rules\":[{\"clauses\":[{\"matches\":[{\"principals\":[{\"exact\":\"AAAA\"}],"
    "\"notNamespaces\":[{\"prefix\":\"x\"}],\"sourceIps\":[\"10.0.0.0/8\"],"
    "\"notDestinationIps\":[\"2001:db8::/32\"],\"destinationPorts\":[80],"
    "\"notDestinationPorts\":[81],\"serviceAccounts\":[{\"namespace\":\"n\","
    "\"serviceAccount\":\"s\"}]}]}]}]}";

struct msg {
    struct pol_arena a;
    Istio__Security__Authorization *pb;
    Istio__Security__Match *m; /* rules[0].clauses[0].matches[0] */
};

static void
msg_init(struct msg *m)
{
    char err[256];
    json_t *j = json_loads(base_json, 0, NULL);
    memset(m, 0, sizeof(*m));
    assert_int_equal(policy_json_to_pb(j, &m->a, &m->pb, err, sizeof(err)), 0);
    m->m = m->pb->rules[0]->clauses[0]->matches[0];
    json_decref(j);
}

static uint8_t *
msg_pack(struct msg *m, size_t *len)
{
    *len = istio__security__authorization__get_packed_size(m->pb);
    uint8_t *buf = malloc(*len + 1);
    istio__security__authorization__pack(m->pb, buf);
    return buf;
}

static int
decode_msg(struct msg *m, char *err, size_t errlen)
{
    struct policy *p;
    size_t len;
    uint8_t *buf = msg_pack(m, &len);
    int rc = policy_decode(buf, len, &p, err, errlen);
    free(buf);
    if (rc == 0)
        policy_unref(p);
    else
        assert_null(p);
    pol_arena_free(&m->a);
    return rc;
}

static void
test_good(void **state)
{
    struct msg m;
    struct policy *p;
    char err[256];
    size_t len;
    (void)state;

    msg_init(&m);
    m.pb->dry_run = 1;
    /* Host bits are cleared; an IPv4-mapped prefix becomes IPv4. */
    static uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 7, 7};
    m.m->source_ips[0]->address = (ProtobufCBinaryData){16, mapped};
    m.m->source_ips[0]->length = 112;
    uint8_t *buf = msg_pack(&m, &len);
    assert_int_equal(policy_decode(buf, len, &p, err, sizeof(err)), 0);
    free(buf);
    pol_arena_free(&m.a);
    assert_string_equal(policy_key(p), "default/p");
    assert_int_equal(policy_scope(p), POLICY_SCOPE_NAMESPACE);
    assert_int_equal(policy_action(p), POLICY_ACTION_ALLOW);
    assert_true(policy_dry_run(p));
    json_t *d = policy_to_json(p);
    char *s = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"action\":\"ALLOW\",\"dryRun\":true,\"name\":\"p\",\"namespace\":\"default\","
           "\"rules\":[{\"clauses\":[{\"matches\":[{\"destinationPorts\":[80],"
           "\"notDestinationIps\":[{\"address\":\"2001:db8::\",\"length\":32}],"
           "\"notDestinationPorts\":[81],\"notNamespaces\":[{\"prefix\":\"x\"}],"
           "\"principals\":[{\"exact\":\"AAAA\"}],\"serviceAccounts\":[{\"namespace\":\"n\","
           "\"serviceAccount\":\"s\"}],\"sourceIps\":[{\"address\":\"198.18.0.0\",\"length\":16}]}"
           "]}]}],\"scope\":\"NAMESPACE\"}");
    free(s);
    json_decref(d);
    policy_unref(p);

    /* An empty message is a GLOBAL ALLOW without a name: the name is required. */
    assert_int_equal(policy_decode(NULL, 0, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "policy /: name is required");
}

/* ---- protobuf errors: one broken field each ---- */

static char long_str[POLICY_MAX_STRING + 2];

static void
brk_name_empty(struct msg *m)
{
    m->pb->name = "";
}
static void
brk_name_slash(struct msg *m)
{
    m->pb->name = "a/b";
}
static void
brk_name_long(struct msg *m)
{
    long_str[POLICY_MAX_NAME + 1] = '\0';
    m->pb->name = long_str;
}
static void
brk_ns_empty(struct msg *m)
{
    m->pb->namespace_ = "";
}
static void
brk_ns_empty_selector(struct msg *m)
{
    m->pb->namespace_ = "";
    m->pb->scope = ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR;
}
static void
brk_ns_slash(struct msg *m)
{
    m->pb->namespace_ = "a/b";
}
static void
brk_scope(struct msg *m)
{
    m->pb->scope = (Istio__Security__Scope)7;
}
static void
brk_action(struct msg *m)
{
    m->pb->action = (Istio__Security__Action)2; /* an AUDIT or CUSTOM that does not exist here */
}
static void
brk_addr_len(struct msg *m)
{
    static uint8_t five[5] = {10, 0, 0, 0, 1};
    m->m->source_ips[0]->address = (ProtobufCBinaryData){5, five};
}
static void
brk_addr_empty(struct msg *m)
{
    m->m->not_destination_ips[0]->address = (ProtobufCBinaryData){0, NULL};
}
static void
brk_prefix_v4(struct msg *m)
{
    m->m->source_ips[0]->length = 33;
}
static void
brk_prefix_v6(struct msg *m)
{
    m->m->not_destination_ips[0]->length = 129;
}
static void
brk_port(struct msg *m)
{
    m->m->destination_ports[0] = 65536;
}
static void
brk_not_port(struct msg *m)
{
    m->m->not_destination_ports[0] = 0xffffffffu;
}
static void
brk_no_match_type(struct msg *m)
{
    m->m->principals[0]->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE__NOT_SET;
}
static void
brk_string_long(struct msg *m)
{
    long_str[POLICY_MAX_STRING + 1] = '\0';
    m->m->not_namespaces[0]->prefix = long_str;
}
static void
brk_sa_long(struct msg *m)
{
    long_str[POLICY_MAX_STRING + 1] = '\0';
    m->m->service_accounts[0]->serviceaccount = long_str;
}
static void
brk_sa_empty(struct msg *m)
{
    m->m->service_accounts[0]->namespace_ = "";
}
static void
brk_global_no_ns(struct msg *m)
{
    m->pb->namespace_ = "";
    m->pb->scope = ISTIO__SECURITY__SCOPE__GLOBAL;
}

/* Repeats |one| |n| times (the same pointer: protobuf-c packs it n times). */
static void *
repeat(struct msg *m, void *one, size_t n)
{
    void **v = pol_arena_alloc(&m->a, n * sizeof(void *));
    for (size_t i = 0; i < n; i++)
        v[i] = one;
    return v;
}
static void
brk_rules(struct msg *m)
{
    m->pb->rules = repeat(m, m->pb->rules[0], POLICY_MAX_RULES + 1);
    m->pb->n_rules = POLICY_MAX_RULES + 1;
}
static void
brk_clauses(struct msg *m)
{
    Istio__Security__Rule *r = m->pb->rules[0];
    r->clauses = repeat(m, r->clauses[0], POLICY_MAX_CLAUSES + 1);
    r->n_clauses = POLICY_MAX_CLAUSES + 1;
}
static void
brk_matches(struct msg *m)
{
    Istio__Security__Clause *c = m->pb->rules[0]->clauses[0];
    c->matches = repeat(m, c->matches[0], POLICY_MAX_MATCHES + 1);
    c->n_matches = POLICY_MAX_MATCHES + 1;
}
static void
brk_list(struct msg *m)
{
    m->m->principals = repeat(m, m->m->principals[0], POLICY_MAX_LIST + 1);
    m->m->n_principals = POLICY_MAX_LIST + 1;
}
static void
brk_ports(struct msg *m)
{
    m->m->n_destination_ports = POLICY_MAX_LIST + 1;
    m->m->destination_ports = pol_arena_alloc(&m->a, (POLICY_MAX_LIST + 1) * sizeof(uint32_t));
}
static void
brk_total(struct msg *m)
{
    /* 20 matches of 4000 ports: each list is fine, the policy is not. */
    Istio__Security__Clause *c = m->pb->rules[0]->clauses[0];
    m->m->n_destination_ports = 4000;
    m->m->destination_ports = pol_arena_alloc(&m->a, 4000 * sizeof(uint32_t));
    c->matches = repeat(m, m->m, 20);
    c->n_matches = 20;
}

static const struct {
    const char *name;
    void (*brk)(struct msg *m);
    int rc;
    const char *want; /* the whole message */
} pb_bad[] = {
    {"name empty", brk_name_empty, -MESH_EPROTO, "policy default/: name is required"},
    {"name slash", brk_name_slash, -MESH_EPROTO, "policy default/a/b: name: \"a/b\" contains '/'"},
    {"name long", brk_name_long, -MESH_ELIMIT, "name: 254 bytes, more than 253"},
    {"namespace empty", brk_ns_empty, -MESH_EPROTO, "policy /p: namespace is required"},
    {"selector namespace empty", brk_ns_empty_selector, -MESH_EPROTO,
     "policy /p: namespace is required"},
    {"namespace slash", brk_ns_slash, -MESH_EPROTO, "namespace: \"a/b\" contains '/'"},
    {"scope", brk_scope, -MESH_EPROTO, "policy default/p: scope: unknown value 7"},
    {"action", brk_action, -MESH_EPROTO, "policy default/p: action: unknown value 2"},
    {"address length", brk_addr_len, -MESH_EPROTO,
     "policy default/p: rules[0].clauses[0].matches[0].source_ips[0]: 5 bytes, not an IPv4 (4) "
     "or IPv6 (16) address"},
    {"address empty", brk_addr_empty, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].not_destination_ips[0]: 0 bytes, not an IPv4"},
    {"prefix v4", brk_prefix_v4, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].source_ips[0]: prefix length 33 exceeds 32"},
    {"prefix v6", brk_prefix_v6, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].not_destination_ips[0]: prefix length 129 exceeds 128"},
    {"port", brk_port, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].destination_ports[0]: 65536 is not a port (0-65535)"},
    {"not port", brk_not_port, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].not_destination_ports[0]: 4294967295 is not a port"},
    {"match type", brk_no_match_type, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].principals[0]: no match type (exact, prefix, suffix or "
     "presence)"},
    {"string long", brk_string_long, -MESH_ELIMIT,
     "rules[0].clauses[0].matches[0].not_namespaces[0]: 1025 bytes, more than 1024"},
    {"service account long", brk_sa_long, -MESH_ELIMIT,
     "rules[0].clauses[0].matches[0].service_accounts[0]: 1025 bytes, more than 1024"},
    {"service account empty", brk_sa_empty, -MESH_EPROTO,
     "rules[0].clauses[0].matches[0].service_accounts[0]: namespace and serviceAccount must not "
     "be empty"},
    {"rules cap", brk_rules, -MESH_ELIMIT, "policy default/p: rules: more than 1024 entries"},
    {"clauses cap", brk_clauses, -MESH_ELIMIT, "rules[0].clauses: more than 256 entries"},
    {"matches cap", brk_matches, -MESH_ELIMIT,
     "rules[0].clauses[0].matches: more than 1024 entries"},
    {"list cap", brk_list, -MESH_ELIMIT,
     "rules[0].clauses[0].matches[0].principals: more than 4096 entries"},
    {"packed ports cap", brk_ports, -MESH_ELIMIT,
     "rules[0].clauses[0].matches[0].destination_ports: more than 4096 entries"},
    {"total cap", brk_total, -MESH_ELIMIT, "more than 65536 entries in the whole policy"},
    {"global without namespace is fine", brk_global_no_ns, 0, ""},
};

static void
test_pb_errors(void **state)
{
    char err[512];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(pb_bad); i++) {
        struct msg m;
        memset(long_str, 'x', sizeof(long_str) - 1);
        msg_init(&m);
        pb_bad[i].brk(&m);
        err[0] = '\0';
        int rc = decode_msg(&m, err, sizeof(err));
        if (rc != pb_bad[i].rc || strstr(err, pb_bad[i].want) == NULL)
            fail_msg("%s: rc %d, \"%s\"", pb_bad[i].name, rc, err);
    }
}

/* ---- wire-level errors ---- */

static void
test_wire_errors(void **state)
{
    struct policy *p;
    char err[256];
    size_t len;
    struct msg m;
    (void)state;

    /* A NUL inside a string: protobuf-c would cut "AA\0A" to "AA" without telling. */
    msg_init(&m);
    uint8_t *buf = msg_pack(&m, &len);
    uint8_t *at = memmem(buf, len, "AAAA", 4);
    assert_non_null(at);
    at[2] = '\0';
    assert_int_equal(policy_decode(buf, len, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "policy default/p: rules[0].clauses[0].matches[0].principals[0]: "
                             "string with a NUL byte");
    /* Not UTF-8 (proto3 strings must be): "AA\xc0\xafA" is an overlong '/'. */
    at[2] = 0xc0;
    at[3] = 0xaf;
    assert_int_equal(policy_decode(buf, len, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_non_null(strstr(err, "principals[0]: string is not valid UTF-8"));
    /* A surrogate half is not UTF-8 either; a 4-byte character is. */
    memcpy(at + 1, "\xed\xa0\x80", 3);
    assert_int_equal(policy_decode(buf, len, &p, err, sizeof(err)), -MESH_EPROTO);
    memcpy(at, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(policy_decode(buf, len, &p, err, sizeof(err)), 0);
    policy_unref(p);
    memcpy(at, "AAAA", 4);
    /* Truncated anywhere: a clean error, never a crash. */
    for (size_t cut = 1; cut < len; cut++) {
        if (policy_decode(buf, cut, &p, err, sizeof(err)) == 0)
            policy_unref(p);
    }
    free(buf);
    pol_arena_free(&m.a);

    static const struct {
        const char *name;
        uint8_t bytes[8];
        size_t len;
        const char *want;
    } raw[] = {
        {"bad varint", {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8, "malformed protobuf"},
        {"length past the end", {0x0a, 0x05, 'a'}, 3, "malformed protobuf"},
        {"field 0", {0x02, 0x00}, 2, "malformed protobuf"},
        {"group", {0x0b, 0x0c}, 2, "malformed protobuf"},
        {"rule not a message", {0x2a, 0x02, 0xff, 0xff}, 4, "rules[0]: malformed protobuf"},
        {"rules as a varint",
         {0x0a, 0x01, 'p', 0x28, 0x01},
         5,
         "not a valid istio.security.Authorization message"},
    };
    for (size_t i = 0; i < ARRAY_LEN(raw); i++) {
        assert_true(policy_decode(raw[i].bytes, raw[i].len, &p, err, sizeof(err)) < 0);
        assert_null(p);
        if (strstr(err, raw[i].want) == NULL)
            fail_msg("%s: \"%s\"", raw[i].name, err);
    }

    /* Over the byte cap: refused before looking inside. */
    uint8_t *big = calloc(1, POLICY_MAX_BYTES + 1);
    assert_int_equal(policy_decode(big, POLICY_MAX_BYTES + 1, &p, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "1048577 bytes, more than 1048576"));
    free(big);
}

/* ---- JSON errors ---- */

#define HEAD                                                                                       \
    "{\"name\":\"p\",\"namespace\":\"default\",\"scope\":\"NAMESPACE\",\"action\":\"ALLOW\","
#define M(x) HEAD "\"rules\":[{\"clauses\":[{\"matches\":[{" x "}]}]}]}"
#define AT   "policy default/p: rules[0].clauses[0].matches[0]."
#define AT0  "policy default/p: rules[0].clauses[0].matches[0]: "

static const struct {
    const char *json;
    int rc;
    const char *want;
} json_bad[] = {
    {"[]", -MESH_ECONFIG, "policy /: expected an object, got a list"},
    {HEAD "\"bogus\":1}", -MESH_ECONFIG, "policy default/p: unknown field \"bogus\""},
    {"{\"namespace\":\"default\",\"scope\":\"NAMESPACE\"}", -MESH_ECONFIG,
     "policy default/: name is required"},
    {"{\"name\":\"p\",\"scope\":\"NAMESPACE\"}", -MESH_ECONFIG, "policy /p: namespace is required"},
    {"{\"name\":5}", -MESH_ECONFIG, "name: expected a string, got an integer"},
    {"{\"name\":\"p\",\"scope\":\"NS\"}", -MESH_ECONFIG, "policy /p: scope: unknown value \"NS\""},
    {"{\"name\":\"p\",\"scope\":3}", -MESH_ECONFIG, "scope: 3 is not in 0-2"},
    {"{\"name\":\"p\",\"action\":\"AUDIT\"}", -MESH_ECONFIG, "action: unknown value \"AUDIT\""},
    {"{\"name\":\"p\",\"action\":true}", -MESH_ECONFIG,
     "action: expected an unsigned integer, got a boolean"},
    {HEAD "\"dryRun\":\"yes\"}", -MESH_ECONFIG, "dryRun: expected a boolean, got a string"},
    {HEAD "\"extensions\":{}}", -MESH_ECONFIG, "extensions: expected a list, got an object"},
    {HEAD "\"rules\":{}}", -MESH_ECONFIG, "rules: expected a list, got an object"},
    {HEAD "\"rules\":[5]}", -MESH_ECONFIG,
     "policy default/p: rules[0]: expected an object, got an integer"},
    {HEAD "\"rules\":[{\"clause\":[]}]}", -MESH_ECONFIG,
     "policy default/p: rules[0]: unknown field \"clause\""},
    {HEAD "\"rules\":[{\"clauses\":[{\"matches\":[],\"x\":1}]}]}", -MESH_ECONFIG,
     "rules[0].clauses[0]: unknown field \"x\""},
    {HEAD "\"rules\":[{\"clauses\":[{\"matches\":[7]}]}]}", -MESH_ECONFIG,
     "rules[0].clauses[0].matches[0]: expected an object, got an integer"},
    {M("\"principal\":[]"), -MESH_ECONFIG, AT0 "unknown field \"principal\""},
    {M("\"principals\":{}"), -MESH_ECONFIG, AT "principals: expected a list, got an object"},
    {M("\"principals\":[{\"exact\":\"a\",\"prefix\":\"b\"}]"), -MESH_ECONFIG,
     AT "principals[0]: exactly one of exact, prefix, suffix or presence"},
    {M("\"principals\":[{}]"), -MESH_ECONFIG,
     AT "principals[0]: exactly one of exact, prefix, suffix or presence"},
    {M("\"notPrincipals\":[{\"regex\":\"a\"}]"), -MESH_ECONFIG,
     AT "notPrincipals[0]: unknown field \"regex\""},
    {M("\"namespaces\":[{\"presence\":true}]"), -MESH_ECONFIG,
     AT "namespaces[0]: presence: expected {}"},
    {M("\"namespaces\":[{\"exact\":5}]"), -MESH_ECONFIG,
     AT "namespaces[0]: expected a string, got an integer"},
    {M("\"namespaces\":[{\"exact\":\"a\\u0000b\"}]"), -MESH_ECONFIG,
     AT "namespaces[0]: string with a NUL byte"},
    {M("\"sourceIps\":[{\"address\":\"10.0.0.0\"}]"), -MESH_ECONFIG,
     AT "sourceIps[0]: address and length are required"},
    {M("\"sourceIps\":[{\"address\":\"10.0.0.0\",\"length\":8,\"x\":1}]"), -MESH_ECONFIG,
     AT "sourceIps[0]: unknown field \"x\""},
    {M("\"sourceIps\":[{\"address\":\"10.0.0.0/8\",\"length\":8}]"), -MESH_ECONFIG,
     AT "sourceIps[0]: \"10.0.0.0/8\" is not an IP address or CIDR"},
    {M("\"sourceIps\":[{\"address\":\"10.0.0.0\",\"length\":129}]"), -MESH_ECONFIG,
     AT "sourceIps[0]: 129 is not in 0-128"},
    {M("\"notSourceIps\":[\"10.0.0.0/8\",\"300.1.1.1\"]"), -MESH_ECONFIG,
     AT "notSourceIps[1]: \"300.1.1.1\" is not an IP address"},
    {M("\"destinationIps\":[\"10.0.0.0/33\"]"), -MESH_ECONFIG,
     AT "destinationIps[0]: prefix length 33 exceeds 32"},
    {M("\"destinationIps\":[\"10.0.0.0/x\"]"), -MESH_ECONFIG,
     AT "destinationIps[0]: \"10.0.0.0/x\" is not an IP address or CIDR"},
    {M("\"notDestinationIps\":[5]"), -MESH_ECONFIG,
     AT "notDestinationIps[0]: expected an address, got an integer"},
    {M("\"destinationPorts\":[-1]"), -MESH_ECONFIG, AT "destinationPorts[0]: -1 is not in 0-65535"},
    {M("\"destinationPorts\":[65536]"), -MESH_ECONFIG,
     AT "destinationPorts[0]: 65536 is not in 0-65535"},
    {M("\"notDestinationPorts\":[\"80a\"]"), -MESH_ECONFIG,
     AT "notDestinationPorts[0]: \"80a\" is not a number in 0-65535"},
    {M("\"destinationPorts\":[8.5]"), -MESH_ECONFIG,
     AT "destinationPorts[0]: expected an unsigned integer, got a fraction"},
    {M("\"serviceAccounts\":[{\"serviceAccount\":\"s\"}]"), -MESH_ECONFIG,
     AT "serviceAccounts[0]: namespace and serviceAccount must not be empty"},
    {M("\"serviceAccounts\":[{\"namespace\":\"n\",\"sa\":\"s\"}]"), -MESH_ECONFIG,
     AT "serviceAccounts[0]: unknown field \"sa\""},
    {M("\"extensions\":5"), -MESH_ECONFIG, AT "extensions: expected a list, got an integer"},
    /* proto field names are accepted too */
    {M("\"not_source_ips\":[\"10.0.0.0/8\"],\"destination_ports\":[\"443\"]"), 0, ""},
    {HEAD "\"dry_run\":true,\"rules\":[],\"extensions\":[]}", 0, ""},
};

static void
test_json_errors(void **state)
{
    struct policy *p;
    char err[512];
    int bad = 0;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(json_bad); i++) {
        json_error_t e;
        json_t *j = json_loads(json_bad[i].json, JSON_ALLOW_NUL, &e);
        if (j == NULL)
            fail_msg("case %zu: bad JSON: %s", i, e.text);
        err[0] = '\0';
        int rc = policy_from_json(j, &p, err, sizeof(err));
        json_decref(j);
        if (rc != json_bad[i].rc || strstr(err, json_bad[i].want) == NULL) {
            print_error("case %zu: rc %d, \"%s\"; want \"%s\"\n", i, rc, err, json_bad[i].want);
            bad++;
        }
        if (rc == 0)
            policy_unref(p);
        else
            assert_null(p);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(policy_from_json(NULL, &p, err, sizeof(err)), -MESH_ECONFIG);
    assert_string_equal(err, "policy /: expected an object, got nothing");
}

/* Caps on the JSON side: checked before the lists are built. */
static void
test_json_caps(void **state)
{
    struct policy *p;
    char err[256];
    (void)state;

    json_t *j = json_pack("{ssssssss}", "name", "p", "namespace", "n", "scope", "NAMESPACE",
                          "action", "DENY");
    json_t *rules = json_array();
    for (int i = 0; i <= POLICY_MAX_RULES; i++)
        json_array_append_new(rules, json_object());
    json_object_set_new(j, "rules", rules);
    assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -MESH_ELIMIT);
    assert_string_equal(err, "policy n/p: rules: 1025 entries, more than 1024");

    /* 20 matches of 4000 ports */
    json_t *ports = json_array(), *matches = json_array();
    for (int i = 0; i < 4000; i++)
        json_array_append_new(ports, json_integer(i));
    for (int i = 0; i < 20; i++)
        json_array_append_new(matches, json_pack("{sO}", "destinationPorts", ports));
    json_decref(ports);
    json_object_set_new(j, "rules", json_pack("[{s[{so}]}]", "clauses", "matches", matches));
    assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "more than 65536 entries in the whole policy"));

    char long_name[POLICY_MAX_STRING + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    json_object_set_new(
        j, "rules",
        json_pack("[{s[{s[{s[{ss}]}]}]}]", "clauses", "matches", "principals", "exact", long_name));
    assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "principals[0]: 1025 bytes, more than 1024"));
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),        cmocka_unit_test(test_pb_errors),
        cmocka_unit_test(test_wire_errors), cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
