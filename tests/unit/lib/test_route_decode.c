/*
 * test_route_decode.c - what route_decode() refuses and why (the NACK
 * text), the caps checked on the wire before protobuf-c allocates, the
 * store's all-or-nothing swap, and the JSON dump.
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
#include "route/route.h"
#include "route_build.h"

static int
decode_spec(const char *spec, uint32_t port, char *err, size_t errlen)
{
    size_t len;
    uint8_t *b = rb_build(spec, port, &len);
    struct route_table *t = NULL;
    err[0] = '\0';
    int rc = route_decode(b, len, &t, err, errlen);
    free(b);
    route_table_unref(t);
    return rc;
}

static const struct {
    const char *spec;
    int rc;
    const char *msg;
} bad[] = {
    {"exact=foo", -MESH_ECONFIG, "rules[0]: match.exact: \"foo\" must be an absolute path"},
    {"prefix=/a//b", -MESH_ECONFIG, "must not contain '//'"},
    {"exact=/a/../b", -MESH_ECONFIG, "must not contain '//', '/./' or '/../'"},
    {"prefix=/a%2Fb", -MESH_ECONFIG, "must not contain '%2f'"},
    {"prefix=/a/.", -MESH_ECONFIG, "must not end with"},
    {"exact=/a?b=c", -MESH_ECONFIG, "'?'"},
    {"regex=/(a)\\1", -MESH_ECONFIG, "backreferences are not supported (RE2)"},
    {"regex=/(?P<n>a)(?P=n)", -MESH_ECONFIG, "only (?:...)"},
    {"regex=/(?=a)a", -MESH_ECONFIG, "no lookaround"},
    {"regex=/(?<=a)b", -MESH_ECONFIG, "lookbehind assertions are not supported"},
    {"regex=/a++", -MESH_ECONFIG, "possessive quantifiers"},
    {"regex=/(?>a)", -MESH_ECONFIG, "atomic groups"},
    {"regex=/(*ACCEPT)", -MESH_ECONFIG, "(*VERB)"},
    {"regex=/(?R)", -MESH_ECONFIG, "recursion"},
    {"regex=/(?#c)", -MESH_ECONFIG, "comments"},
    {"regex=/(?x)a", -MESH_ECONFIG, "the flags i, m, s, U"},
    {"regex=/[", -MESH_ECONFIG, "missing terminating ]"},
    {"regex=/(abcdefgh){40}", -MESH_ELIMIT, "compiles to more than 2 KB"},
    {"hr=x:(a)\\1", -MESH_ECONFIG, "match.headers[0]: regex \"(a)\\1\": backreferences"},
    {"qr=x:a(", -MESH_ECONFIG, "match.query[0]: regex"},
    {"h=b@d:1", -MESH_ECONFIG, "is not a valid header name"},
    {"h=:1", -MESH_ECONFIG, "is not a valid header name"},
    {"q=a=b:1", -MESH_ECONFIG, "not a valid query parameter name"},
    {"h=x:a\r\nb", -MESH_ECONFIG, "value has control characters"},
    {"m=G(ET", -MESH_ECONFIG, "is not an HTTP method"},
    {"redir.scheme=ftp", -MESH_ECONFIG, "redirect.scheme: \"ftp\" is not http or https"},
    {"redir.status=200", -MESH_ECONFIG, "is not 301, 302, 303, 307 or 308"},
    {"redir.port=70000", -MESH_ECONFIG, "is not a port"},
    {"redir.host=Bad_Host", -MESH_ECONFIG, "redirect.hostname"},
    {"redir.host=x be=b:80", -MESH_ECONFIG, "cannot be used together with backends"},
    {"redir.host=x rw.host=y", -MESH_ECONFIG, "a redirect and a rewrite cannot"},
    {"exact=/a rw.prefix=/b be=b:80", -MESH_ECONFIG, "ReplacePrefixMatch needs a PathPrefix"},
    {"regex=/a redir.prefix=/b", -MESH_ECONFIG, "ReplacePrefixMatch needs a PathPrefix"},
    {"rw.full=relative be=b:80", -MESH_ECONFIG, "rewrite.full"},
    {"rw.host=-x be=b:80", -MESH_ECONFIG, "rewrite.hostname"},
    {"set=X:a\r\nInjected:1 be=b:80", -MESH_ECONFIG, "request_headers.set[0]: value has control"},
    {"set=host:x be=b:80", -MESH_ECONFIG, "the host header is changed with a rewrite"},
    {"set=a:1 set=A:2 be=b:80", -MESH_ECONFIG, "header \"A\" listed twice"},
    {"rrm=b@d be=b:80", -MESH_ECONFIG, "response_headers.remove[0]"},
    {"be=b:0:1", -MESH_ECONFIG, "backends[0]: port 0 is not 1-65535"},
    {"be=B:80:1", -MESH_ECONFIG, "hostname \"B\" is not a DNS name"},
    {"be=b:80:2000000", -MESH_ECONFIG, "weight 2000000, more than 1000000"},
    {"direct=99", -MESH_ECONFIG, "direct_status: 99 is not 200-599"},
    {"direct=503 be=b:80", -MESH_ECONFIG, "cannot be used together with a redirect or backends"},
    {"retry=3:399 be=b:80", -MESH_ECONFIG, "retry.codes: 399 is not a status from 400 to 599"},
    {"retry=33 be=b:80", -MESH_ELIMIT, "retry.attempts: 33, more than 32"},
    {"timeout=100 btimeout=200 be=b:80", -MESH_ECONFIG, "longer than the request timeout"},
    {"timeout=90000000 be=b:80", -MESH_ECONFIG, "timeout: more than 24h"},
    {"name=r1 exact=x", -MESH_ECONFIG, "rules[0] (r1): match.exact"},
    {"be=b:80\nbe=b:80 exact=/a//", -MESH_ECONFIG, "route default/" RB_HOST ":80: rules[1]:"},
};

static void
test_decode_errors(void **state)
{
    (void)state;
    char err[ROUTE_ERR_MAX];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int rc = decode_spec(bad[i].spec, 80, err, sizeof(err));
        if (rc != bad[i].rc || strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu \"%s\": rc %d, err \"%s\"; want %d \"%s\"", i, bad[i].spec, rc,
                     err, bad[i].rc, bad[i].msg);
    }
    /* the route itself */
    assert_int_equal(decode_spec("", 0, err, sizeof(err)), -MESH_ECONFIG);
    assert_non_null(strstr(err, "route: port: 0 is not 1-65535"));
    assert_int_equal(route_decode(NULL, 0, &(struct route_table *){NULL}, err, sizeof(err)),
                     -MESH_ECONFIG);
    assert_non_null(strstr(err, "route: service: missing"));
}

static void
test_length_caps(void **state)
{
    (void)state;
    char err[ROUTE_ERR_MAX], spec[8192];
    char *long_path = malloc(1100);
    long_path[0] = '/';
    memset(long_path + 1, 'p', 1098);
    long_path[1099] = '\0';

    snprintf(spec, sizeof(spec), "prefix=%s", long_path);
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "longer than 1024 bytes"));
    snprintf(spec, sizeof(spec), "regex=%s", long_path);
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "regex of 1099 bytes, more than 1024"));
    memset(long_path, 'v', 1099);
    snprintf(spec, sizeof(spec), "h=x:%s%s%s%s", long_path, long_path, long_path, long_path);
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "rules[0].match.headers[0].exact: 4396 bytes, more than 4096"));
    free(long_path);
}

/* Counts on the wire, before protobuf-c allocates. */
static void
test_wire_caps(void **state)
{
    (void)state;
    char err[ROUTE_ERR_MAX];
    size_t n = (ROUTE_MAX_RULES + 1) * 3;
    char *spec = malloc(n + 1);
    /* 1025 rules "m=": an empty method, so empty Rule messages of 2 bytes each */
    for (size_t i = 0; i <= ROUTE_MAX_RULES; i++)
        memcpy(spec + i * 3, "m=\n", 3);
    spec[n] = '\0';
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_string_equal(err, "route: rules: more than 1024 entries");
    spec[n - 3] = '\0'; /* 1024: fine */
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), 0);
    free(spec);

    char many[1024] = "";
    for (int i = 0; i <= ROUTE_MAX_LIST; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "be=b%d:80 ", i);
    assert_int_equal(decode_spec(many, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_string_equal(err, "route: rules[0].backends: more than 16 entries");

    /* 1024 rules x (16 headers + 16 query params): over the total of fields */
    size_t per = 0;
    char rule[1024] = "";
    for (int i = 0; i < ROUTE_MAX_LIST; i++)
        per += (size_t)snprintf(rule + per, sizeof(rule) - per, "h=h%d:v q=q%d:v ", i, i);
    rule[per - 1] = '\n';
    spec = malloc(per * ROUTE_MAX_RULES + 1);
    for (size_t i = 0; i < ROUTE_MAX_RULES; i++)
        memcpy(spec + i * per, rule, per);
    spec[per * ROUTE_MAX_RULES] = '\0';
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "more than 32768 fields in one route"));
    free(spec);

    /* regexes: ~2-20 KB each compiled; 513 in one route are refused */
    spec = malloc(ROUTE_MAX_RULES * 32);
    spec[0] = '\0';
    for (int i = 0; i <= ROUTE_MAX_REGEXES / 2; i++)
        snprintf(spec + strlen(spec), 32, "regex=/r%d hr=h:v%d\n", i, i);
    assert_int_equal(decode_spec(spec, 80, err, sizeof(err)), -MESH_ELIMIT);
    assert_non_null(strstr(err, "rules[256]: match.regex: more than 512 regular expressions"));
    free(spec);
}

/* Bytes protobuf-c would take but mean something else, or nothing. */
static void
test_wire_errors(void **state)
{
    (void)state;
    char err[ROUTE_ERR_MAX];
    struct route_table *t = NULL;
    size_t len;

    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(route_decode(junk, sizeof(junk), &t, err, sizeof(err)), -MESH_EPROTO);
    assert_non_null(strstr(err, "not a valid amesh.waypoint.v1.Route message"));

    /* a NUL inside a string: protobuf-c would cut "/adminXsecret" to "/admin" */
    uint8_t *b = rb_build("exact=/adminXsecret be=b:80", 80, &len);
    uint8_t *x = memchr(b, 'X', len);
    *x = 0;
    assert_int_equal(route_decode(b, len, &t, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "route: rules[0].match.exact: string with a NUL byte");
    *x = 0xff;
    assert_int_equal(route_decode(b, len, &t, err, sizeof(err)), -MESH_EPROTO);
    assert_string_equal(err, "route: rules[0].match.exact: string is not valid UTF-8");
    free(b);

    uint8_t *big = calloc(1, ROUTE_MAX_BYTES + 1);
    assert_int_equal(route_decode(big, ROUTE_MAX_BYTES + 1, &t, err, sizeof(err)),
                     -MESH_ELIMIT);
    assert_string_equal(err, "route: 1048577 bytes, more than 1048576");
    free(big);
    assert_null(t);
}

static void
put(struct route_update *u, const char *name, const char *spec, uint32_t port)
{
    u->name = name;
    u->data = spec ? rb_build(spec, port, &u->len) : NULL;
    if (spec == NULL)
        u->len = 0;
}

static void
test_store(void **state)
{
    (void)state;
    struct route_store st;
    char err[ROUTE_ERR_MAX] = "";
    struct route_update u[3];
    const char *k80 = "default/" RB_HOST ":80", *k81 = "default/" RB_HOST ":81";

    route_store_init(&st);
    put(&u[0], k80, "name=a be=a:80", 80);
    put(&u[1], k81, "name=b be=b:80", 81);
    assert_int_equal(route_store_apply(&st, u, 2, err, sizeof(err)), 0);
    free((void *)u[0].data);
    free((void *)u[1].data);
    struct route_set *s1 = route_store_get(&st);
    assert_int_equal(route_set_count(s1), 2);
    const struct route_table *t80 = route_set_find(s1, "default", RB_HOST, 80);
    assert_non_null(t80);
    assert_string_equal(route_table_key(t80), k80);
    assert_null(route_set_find(s1, "default", RB_HOST, 82));
    assert_null(route_set_find(s1, "other", RB_HOST, 80));

    /* one bad resource: the whole response is refused, nothing changes */
    put(&u[0], k80, "name=a2 be=a:80", 80);
    put(&u[1], k81, "exact=nope", 81);
    assert_int_equal(route_store_apply(&st, u, 2, err, sizeof(err)), -MESH_ECONFIG);
    assert_non_null(strstr(err, ":81: route default/"));
    assert_non_null(strstr(err, "match.exact"));
    free((void *)u[0].data);
    free((void *)u[1].data);
    struct route_set *s2 = route_store_get(&st);
    assert_ptr_equal(s1, s2);
    route_set_unref(s2);
    assert_int_equal(st.generation, 1);

    /* a name that is not the route's own */
    put(&u[0], k81, "be=a:80", 80);
    assert_int_equal(route_store_apply(&st, u, 1, err, sizeof(err)), -MESH_ECONFIG);
    assert_non_null(strstr(err, "resource name does not match its route"));
    free((void *)u[0].data);

    /* replace one, remove the other; s1 stays valid for whoever holds it */
    put(&u[0], k80, "name=a2 be=a:80", 80);
    put(&u[1], k81, NULL, 0);
    assert_int_equal(route_store_apply(&st, u, 2, err, sizeof(err)), 0);
    free((void *)u[0].data);
    s2 = route_store_get(&st);
    assert_int_equal(route_set_count(s2), 1);
    struct route_action a;
    struct route_req rq = {.method = "GET", .method_len = 3, .path = "/", .path_len = 1};
    route_decide(route_set_find(s2, "default", RB_HOST, 80), &rq, 0, &a);
    assert_string_equal(a.rule, "a2");
    route_action_clear(&a);
    route_decide(t80, &rq, 0, &a); /* the old set's table */
    assert_string_equal(a.rule, "a");
    route_action_clear(&a);
    assert_int_equal(route_set_count(s1), 2);
    route_set_unref(s1);
    route_set_unref(s2);
    route_store_destroy(&st);
}

static void
test_dump(void **state)
{
    (void)state;
    struct route_store st;
    char err[ROUTE_ERR_MAX] = "";
    struct route_update u[2];

    route_store_init(&st);
    put(&u[0], "default/" RB_HOST ":80",
        "name=r0 prefix=/api/ h=Env:prod qr=id:[0-9]+ m=GET be=v1:8080:90 be=v2:8080:10 "
        "timeout=2500 retry=1:503 set=X-A:1 rrm=server\n"
        "name=r1 redir.scheme=https redir.status=301\n"
        "name=r2 prefix=/old rw.prefix=/new rw.host=new.example be=v1:8080",
        80);
    put(&u[1], "default/" RB_HOST ":81", "", 81);
    assert_int_equal(route_store_apply(&st, u, 2, err, sizeof(err)), 0);
    free((void *)u[0].data);
    free((void *)u[1].data);
    struct route_set *s = route_store_get(&st);
    json_t *j = route_set_dump(s);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    static const char *const want[] = {
        "\"name\":\"default/" RB_HOST ":80\"",
        "\"match\":{\"headers\":[{\"exact\":\"prod\",\"name\":\"env\"}],\"method\":\"GET\","
        "\"prefix\":\"/api/\",\"query\":[{\"name\":\"id\",\"regex\":\"[0-9]+\"}]}",
        "{\"port\":8080,\"service\":{\"hostname\":\"v2\",\"namespace\":\"default\"},\"weight\":10}",
        "\"timeout\":\"2.500s\"",
        "\"retry\":{\"attempts\":1,\"backoff\":\"0.025s\",\"codes\":[503],\"otherHost\":true,"
        "\"retryOn\":\"connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes\"}",
        "\"requestHeaders\":{\"add\":[],\"remove\":[],\"set\":[{\"name\":\"x-a\",\"value\":\"1\"}]}",
        "\"redirect\":{\"scheme\":\"https\",\"status\":301}",
        "\"rewrite\":{\"hostname\":\"new.example\",\"prefix\":\"/new\"}",
        "\"default\":true",
        "\"protocol\":\"DETECT\"",
        "\"regexErrors\":0",
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        if (strstr(text, want[i]) == NULL)
            fail_msg("dump lacks %s:\n%s", want[i], text);
    free(text);
    json_decref(j);
    route_set_unref(s);
    route_store_destroy(&st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_errors), cmocka_unit_test(test_length_caps),
        cmocka_unit_test(test_wire_caps),     cmocka_unit_test(test_wire_errors),
        cmocka_unit_test(test_store),         cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
