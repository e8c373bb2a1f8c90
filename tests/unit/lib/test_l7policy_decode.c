/*
 * test_l7policy_decode.c - l7path_normalize() output byte for byte, then
 * l7pol_decode(): every validation error with the field it names, the caps
 * (checked on the wire before protobuf-c allocates) and malformed input.
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
#include "l7policy/l7path.h"
#include "l7policy/l7policy.h"
#include "unit_l7pol.h"

/* ---- normalisation ---- */

struct ncase {
    enum l7path_mode mode;
    const char *in;
    const char *out; /* NULL: 400 */
    size_t path_len; /* of |out| without the query; 0: strlen(out) */
};

static const struct ncase ncases[] = {
    {L7PATH_BASE, "/", "/", 0},
    {L7PATH_BASE, "/a/b/c", "/a/b/c", 0},
    {L7PATH_BASE, "/a/./b/../c", "/a/c", 0},
    {L7PATH_BASE, "/..", "/", 0},
    {L7PATH_BASE, "/.", "/", 0},
    {L7PATH_BASE, "/a/..", "/", 0},
    {L7PATH_BASE, "/a/b/..", "/a/", 0},
    {L7PATH_BASE, "/a/.", "/a/", 0},
    {L7PATH_BASE, "/a/", "/a/", 0},
    {L7PATH_BASE, "/a/..b/.c/...", "/a/..b/.c/...", 0}, /* only exact "." and ".." */
    {L7PATH_BASE, "/%2e/%2E%2e/x", "/x", 0},
    {L7PATH_BASE, "/%2d%5f%7e%30%39%41%5a%61%7a", "/-_~09AZaz", 0},
    {L7PATH_BASE, "/%2f%5c%25%20%3F%23", "/%2f%5c%25%20%3F%23", 0}, /* reserved: kept */
    {L7PATH_BASE, "/%252e", "/%252e", 0},
    {L7PATH_BASE, "/%2", "/%252", 0},
    {L7PATH_BASE, "/%zz", "/%25zz", 0},
    {L7PATH_BASE, "/%%32e%%32e/admin", "/%252e%252e/admin", 0}, /* never "/%2e%2e/admin" */
    {L7PATH_BASE, "/%%30%30", "/%2500", 0},                     /* never "%00" */
    {L7PATH_BASE, "/a\\b\\..\\c", "/a/c", 0},
    {L7PATH_BASE, "//a//b", "//a//b", 0},
    {L7PATH_BASE, "/a b\x01\x7f\xc3\xa9", "/a%20b%01%7F%C3%A9", 0},
    {L7PATH_BASE, "/a/../b?x=/../y&z=%2e", "/b?x=/../y&z=%2e", 2},
    {L7PATH_BASE, "/?", "/?", 1},
    {L7PATH_BASE, "/%00", NULL, 0},
    {L7PATH_BASE, "/a?q=%00", "/a?q=%00", 2}, /* the query is not looked at */
    {L7PATH_BASE, "/a#b", NULL, 0},
    {L7PATH_BASE, "/a?b#c", NULL, 0},
    {L7PATH_BASE, "a/b", NULL, 0},
    {L7PATH_BASE, "", NULL, 0},
    {L7PATH_BASE, "?x", NULL, 0},
    {L7PATH_BASE, "*", NULL, 0},
    {L7PATH_MERGE_SLASHES, "//a///b/", "/a/b/", 0},
    {L7PATH_MERGE_SLASHES, "/a/\\/b", "/a/b", 0},
    {L7PATH_MERGE_SLASHES, "/a//..", "/a/", 0},
    {L7PATH_MERGE_SLASHES, "/a%2F%2Fb", "/a%2F%2Fb", 0},
    {L7PATH_DECODE_AND_MERGE_SLASHES, "/a%2F%2fb", "/a/b", 0},
    {L7PATH_DECODE_AND_MERGE_SLASHES, "/a%5Cb%5c..%2F", "/a/", 0},
    {L7PATH_DECODE_AND_MERGE_SLASHES, "/a%252Fb", "/a%252Fb", 0},
    {L7PATH_DECODE_AND_MERGE_SLASHES, "/a?x=%2F", "/a?x=%2F", 2},
    {L7PATH_NONE, "/a/../b//c%2e", "/a/../b//c%2e", 0},
    {L7PATH_NONE, "x?y", "x?y", 1},
    {L7PATH_NONE, "/%00", "/%00", 0},
    {L7PATH_NONE, "/a#", NULL, 0},
};

static void
test_normalize(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(ncases); i++) {
        const struct ncase *c = &ncases[i];
        char out[L7PATH_OUT_SIZE(64)];
        size_t len, plen;
        const char *why;
        int rc =
            l7path_normalize(c->mode, c->in, strlen(c->in), out, sizeof(out), &len, &plen, &why);
        if (c->out == NULL) {
            if (rc == 0)
                fail_msg("case %zu %s: got \"%s\", want 400", i, c->in, out);
            assert_int_equal(rc, -MESH_EPROTO);
            assert_non_null(why);
            continue;
        }
        if (rc < 0)
            fail_msg("case %zu %s: 400 (%s), want \"%s\"", i, c->in, why, c->out);
        if (len != strlen(c->out) || memcmp(out, c->out, len) != 0)
            fail_msg("case %zu %s: got \"%s\", want \"%s\"", i, c->in, out, c->out);
        assert_int_equal(plen, c->path_len ? c->path_len : strlen(c->out));
        assert_int_equal(out[len], '\0');
    }
}

static void
test_normalize_limits(void **state)
{
    (void)state;
    size_t n = L7PATH_MAX + 1, len, plen;
    char *in = xmalloc(n), *out = xmalloc(L7PATH_OUT_SIZE(n));
    const char *why;

    memset(in, 'a', n);
    in[0] = '/';
    assert_int_equal(
        l7path_normalize(L7PATH_BASE, in, n, out, L7PATH_OUT_SIZE(n), &len, &plen, &why),
        -MESH_EPROTO);
    assert_string_equal(why, "path too long");
    /* The largest accepted path, all bytes escaped: exactly three times as long. */
    memset(in + 1, ' ', n - 2);
    assert_int_equal(
        l7path_normalize(L7PATH_BASE, in, n - 1, out, L7PATH_OUT_SIZE(n - 1), &len, &plen, &why),
        0);
    assert_int_equal(len, 1 + 3 * (n - 2));
    assert_int_equal(l7path_normalize(L7PATH_BASE, in, 4, out, 3, &len, &plen, &why), -MESH_EPROTO);
    /* 10,000 ".." segments climb no higher than "/". */
    size_t k = 10000 * 3;
    for (size_t i = 0; i < k; i += 3)
        memcpy(in + i, "/..", 3);
    assert_int_equal(
        l7path_normalize(L7PATH_BASE, in, k, out, L7PATH_OUT_SIZE(k), &len, &plen, &why), 0);
    assert_string_equal(out, "/");
    free(in);
    free(out);

    /* A raw NUL byte, which escaped would read as %00 on the next hop. */
    char small[13];
    assert_int_equal(l7path_normalize(L7PATH_NONE, "/a\0b", 4, small, 13, &len, &plen, &why),
                     -MESH_EPROTO);
    assert_string_equal(why, "NUL in path");

    enum l7path_mode m;
    assert_int_equal(l7path_mode_parse("DECODE_AND_MERGE_SLASHES", &m), 0);
    assert_int_equal(m, L7PATH_DECODE_AND_MERGE_SLASHES);
    assert_int_equal(l7path_mode_parse("DEFAULT", &m), 0);
    assert_int_equal(m, L7PATH_BASE);
    assert_int_equal(l7path_mode_parse("base", &m), -1);
    assert_string_equal(l7path_mode_name(L7PATH_NONE), "NONE");
}

/* ---- decoder errors ---- */

static const struct l7spec good = {.ns = "demo",
                                   .name = "p",
                                   .action = 1,
                                   .gateway = "waypoint",
                                   .paths = {"/a/{*}"},
                                   .methods = {"GET"},
                                   .header = "x-a",
                                   .values = {"1"},
                                   .principals = {"cluster.local/*"},
                                   .ports = {80}};

static int
decode_pb(Amesh__Waypoint__V1__Policy *pb, char *err, size_t errlen)
{
    struct l7pol *p;
    size_t len;
    uint8_t *buf = l7spec_pack_pb(pb, &len);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    int rc = l7pol_decode(buf, len, &p, err, errlen);
    free(buf);
    if (rc == 0)
        l7pol_unref(p);
    else
        assert_null(p);
    return rc;
}

static Amesh__Waypoint__V1__PolicyMatch *
match0(Amesh__Waypoint__V1__Policy *pb)
{
    return pb->rules[0]->clauses[0]->matches[0];
}

static void
expect_error(Amesh__Waypoint__V1__Policy *pb, int want_rc, const char *want)
{
    char err[512] = "";
    int rc = decode_pb(pb, err, sizeof(err));
    if (rc != want_rc || strcmp(err, want) != 0)
        fail_msg("got %d \"%s\"\nwant %d \"%s\"", rc, err, want_rc, want);
}

static void
replace_str(char **field, const char *v)
{
    if (*field != protobuf_c_empty_string)
        free(*field);
    *field = xstrdup(v);
}

static void
test_invalid(void **state)
{
    (void)state;
    Amesh__Waypoint__V1__Policy *pb;
    char err[512];

    assert_int_equal(decode_pb(l7spec_pb(&good), err, sizeof(err)), 0);

    pb = l7spec_pb(&good);
    replace_str(&pb->name, "");
    expect_error(pb, -MESH_EPROTO, "policy demo/: name: required");

    pb = l7spec_pb(&good);
    replace_str(&pb->namespace_, "a/b");
    expect_error(pb, -MESH_EPROTO, "policy a/b/p: namespace: \"a/b\" contains '/'");

    pb = l7spec_pb(&good);
    pb->action = 3; /* CUSTOM in Istio's enum; meshd never sends it */
    expect_error(pb, -MESH_EPROTO, "policy demo/p: action: 3 is not ALLOW (0) or DENY (1)");

    pb = l7spec_pb(&good);
    pb->targets[0]->kind_case = AMESH__WAYPOINT__V1__TARGET__KIND__NOT_SET;
    free(pb->targets[0]->gateway);
    expect_error(pb, -MESH_EPROTO, "policy demo/p: targets[0]: neither gateway nor service");

    struct l7spec svc = good;
    svc.svc_ns = "demo";
    svc.svc_host = "";
    pb = l7spec_pb(&svc);
    expect_error(pb, -MESH_EPROTO, "policy demo/p: targets[1].service.hostname: required");

    static const struct {
        const char *tmpl, *msg;
    } tmpl[] = {
        {"/a/{**}/b", "\"/a/{**}/b\": {**} must be the last segment"},
        {"/a{*}", "\"/a{*}\": '{' outside a whole-segment {*} or {**} operator"},
        {"/a/{*}*", "\"/a/{*}*\": '{' outside a whole-segment {*} or {**} operator"},
        {"/a/*/{*}", "\"/a/*/{*}\": '*' outside a whole-segment {*} or {**} operator"},
        {"a/{*}", "\"a/{*}\" does not start with '/'"},
    };
    for (size_t i = 0; i < ARRAY_LEN(tmpl); i++) {
        char want[256];
        pb = l7spec_pb(&good);
        replace_str(&match0(pb)->paths[0]->template_, tmpl[i].tmpl);
        snprintf(want, sizeof(want),
                 "policy demo/p: rules[0].clauses[0].matches[0].paths[0].template: %s",
                 tmpl[i].msg);
        expect_error(pb, -MESH_EPROTO, want);
    }
    pb = l7spec_pb(&good);
    replace_str(&match0(pb)->paths[0]->template_, "/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}"
                                                  "/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}"
                                                  "/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}/{*}");
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].paths[0].template: 33 segments, "
                 "more than 32");

    pb = l7spec_pb(&good);
    match0(pb)->paths[0]->kind_case = AMESH__WAYPOINT__V1__PATH_MATCH__KIND_PRESENCE;
    free(match0(pb)->paths[0]->template_);
    match0(pb)->paths[0]->presence = 0;
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].paths[0].presence: must be true "
                 "when set");

    pb = l7spec_pb(&good);
    free(match0(pb)->methods[0]->exact);
    match0(pb)->methods[0]->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE__NOT_SET;
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].methods[0]: no match type "
                 "(exact, prefix, suffix or presence)");

    pb = l7spec_pb(&good);
    replace_str(&match0(pb)->headers[0]->name, "x a");
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].headers[0]: name \"x a\" is not "
                 "an HTTP header name");

    struct l7spec novals = good;
    novals.values[0] = NULL;
    pb = l7spec_pb(&novals);
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].headers[0]: needs values or "
                 "not_values");

    /* l4 errors come from lib/policy with the l4 prefix. */
    pb = l7spec_pb(&good);
    match0(pb)->l4->destination_ports[0] = 70000;
    expect_error(pb, -MESH_EPROTO,
                 "policy demo/p: rules[0].clauses[0].matches[0].l4.destination_ports[0]: 70000 "
                 "is not a port (0-65535)");
}

/* ---- caps and malformed wire ---- */

static void
test_caps(void **state)
{
    (void)state;
    Amesh__Waypoint__V1__Policy *pb;
    struct l7pol *p;
    char err[512];

    /* A clause of 1025 empty matches: 2 bytes each on the wire, refused before unpacking. */
    pb = l7spec_pb(&good);
    Amesh__Waypoint__V1__PolicyClause *c = pb->rules[0]->clauses[0];
    c->matches = xrealloc(c->matches, 1025 * sizeof(*c->matches));
    for (size_t i = 1; i < 1025; i++) {
        c->matches[i] = xmalloc(sizeof(*c->matches[i]));
        amesh__waypoint__v1__policy_match__init(c->matches[i]);
    }
    c->n_matches = 1025;
    expect_error(pb, -MESH_ELIMIT,
                 "policy demo/p: rules[0].clauses[0].matches: more than 1024 entries");

    /* 1025 rules. */
    pb = l7spec_pb(&good);
    pb->rules = xrealloc(pb->rules, 1025 * sizeof(*pb->rules));
    for (size_t i = 1; i < 1025; i++) {
        pb->rules[i] = xmalloc(sizeof(*pb->rules[i]));
        amesh__waypoint__v1__policy_rule__init(pb->rules[i]);
    }
    pb->n_rules = 1025;
    expect_error(pb, -MESH_ELIMIT, "policy demo/p: rules: more than 1024 entries");

    /* 4097 methods; then 20 matches of 4000 methods each: the policy-wide total. */
    pb = l7spec_pb(&good);
    Amesh__Waypoint__V1__PolicyMatch *m = match0(pb);
    m->methods = xrealloc(m->methods, 4097 * sizeof(*m->methods));
    for (size_t i = 1; i < 4097; i++)
        m->methods[i] = l7spec_str("GET");
    m->n_methods = 4097;
    expect_error(pb, -MESH_ELIMIT,
                 "policy demo/p: rules[0].clauses[0].matches[0].methods: more than 4096 entries");
    pb = l7spec_pb(&good);
    c = pb->rules[0]->clauses[0];
    c->matches = xrealloc(c->matches, 20 * sizeof(*c->matches));
    for (size_t k = 1; k < 20; k++) {
        c->matches[k] = xmalloc(sizeof(*c->matches[k]));
        amesh__waypoint__v1__policy_match__init(c->matches[k]);
    }
    c->n_matches = 20;
    for (size_t k = 0; k < 20; k++) {
        m = c->matches[k];
        m->methods = xrealloc(m->methods, 4000 * sizeof(*m->methods));
        for (size_t i = m->n_methods; i < 4000; i++)
            m->methods[i] = l7spec_str("GET");
        m->n_methods = 4000;
    }
    char err2[512];
    assert_int_equal(decode_pb(pb, err2, sizeof(err2)), -MESH_ELIMIT);
    assert_non_null(strstr(err2, "more than 65536 entries in the whole policy"));

    /* Strings: a 1025-byte pattern, a 254-byte name, a 257-byte header name, NUL, bad UTF-8. */
    char big[1100];
    memset(big, 'a', sizeof(big));
    big[0] = '/';
    big[1025] = '\0';
    pb = l7spec_pb(&good);
    replace_str(&match0(pb)->paths[0]->template_, big);
    expect_error(pb, -MESH_ELIMIT,
                 "policy demo/p: rules[0].clauses[0].matches[0].paths[0].template: 1025 bytes, "
                 "more than 1024");
    big[254] = '\0';
    pb = l7spec_pb(&good);
    replace_str(&pb->targets[0]->gateway, big);
    expect_error(pb, -MESH_ELIMIT, "policy demo/p: targets[0].gateway: 254 bytes, more than 253");
    memset(big, 'h', 257);
    big[257] = '\0';
    pb = l7spec_pb(&good);
    replace_str(&match0(pb)->headers[0]->name, big);
    expect_error(pb, -MESH_ELIMIT,
                 "policy demo/p: rules[0].clauses[0].matches[0].headers[0].name: 257 bytes, "
                 "more than 256");

    size_t len;
    uint8_t *buf = l7spec_pack(&good, &len);
    /* The name "p" is the 2nd field: tag 0x0a, length 1, 'p'. Make it NUL, then 0xff. */
    uint8_t *name = memchr(buf, 'p', len);
    assert_non_null(name);
    *name = 0;
    assert_int_equal(l7pol_decode(buf, len, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "policy demo/?: name: string with a NUL byte");
    *name = 0xff;
    assert_int_equal(l7pol_decode(buf, len, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_non_null(strstr(err, "name: string is not valid UTF-8"));
    *name = 'p';
    /* Every truncation is an error, never a crash or a partial policy. */
    for (size_t cut = 0; cut < len; cut++) {
        int rc = l7pol_decode(buf, cut, &p, err, sizeof(err));
        if (rc == 0) {
            /* Cutting at a field boundary of the top message is a valid, smaller policy. */
            l7pol_unref(p);
            continue;
        }
        assert_null(p);
    }
    assert_int_equal(l7pol_decode(buf, len, &p, err, sizeof(err)), 0);
    l7pol_unref(p);
    free(buf);

    /* A 1 MiB + 1 input is refused by size. */
    buf = xcalloc(1, L7POL_MAX_BYTES + 1);
    assert_int_equal(l7pol_decode(buf, L7POL_MAX_BYTES + 1, &p, err, sizeof(err)), -MESH_ELIMIT);
    free(buf);
    /* Nothing at all: a policy without a name. */
    assert_int_equal(l7pol_decode(NULL, 0, &p, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "policy /: name: required");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
