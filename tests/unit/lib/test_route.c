/*
 * test_route.c - lib/route matching and actions as tables: Gateway API's
 * examples for path (PathPrefix by elements, Exact, RegularExpression),
 * headers, query parameters and method; first match wins; redirects
 * (Location per HTTPRequestRedirectFilter), rewrites (the ReplacePrefixMatch
 * table of httproute_types.go), header modifiers, the weighted pick with
 * supplied randoms, timeouts and Istio's retry defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/base.h"
#include "route/route.h"
#include "route/route_internal.h"
#include "route_build.h"

static struct route_table *
table(const char *spec, uint32_t port)
{
    char err[ROUTE_ERR_MAX] = "";
    size_t len;
    uint8_t *b = rb_build(spec, port, &len);
    struct route_table *t = NULL;
    int rc = route_decode(b, len, &t, err, sizeof(err));
    free(b);
    if (rc != 0)
        fail_msg("spec \"%s\": %s", spec, err);
    return t;
}

/* A request from "METHOD /path?query [https] [name:value ...]"; "host:x" sets the authority. */
struct req {
    struct route_req r;
    struct route_hdr h[16];
    char buf[512];
};

static void
req_parse(struct req *q, const char *spec)
{
    char *save = NULL;
    memset(q, 0, sizeof(*q));
    snprintf(q->buf, sizeof(q->buf), "%s", spec);
    q->r.scheme = "http";
    q->r.headers = q->h;
    char *m = strtok_r(q->buf, " ", &save), *p = strtok_r(NULL, " ", &save);
    q->r.method = m;
    q->r.method_len = strlen(m);
    q->r.path = p;
    q->r.path_len = strlen(p);
    for (char *t = strtok_r(NULL, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (strcmp(t, "https") == 0) {
            q->r.scheme = "https";
            continue;
        }
        char *c = strchr(t, ':');
        assert_non_null(c);
        struct route_hdr *h = &q->h[q->r.n_headers++];
        h->name = t;
        h->name_len = (size_t)(c - t);
        h->value = c + 1;
        h->value_len = strlen(c + 1);
        if (h->name_len == 4 && strncmp(t, "host", 4) == 0) {
            q->r.authority = h->value;
            q->r.authority_len = h->value_len;
        }
    }
}

/* ---- matching: one rule, one request, matched or not ---- */

static const struct {
    const char *rule, *req;
    bool want;
} match_cases[] = {
    /* PathPrefix: whole path elements, trailing '/' of the prefix ignored (GW HTTPPathMatch) */
    {"prefix=/foo", "GET /foo", true},
    {"prefix=/foo", "GET /foo/", true},
    {"prefix=/foo", "GET /foo/bar", true},
    {"prefix=/foo", "GET /foobar", false},
    {"prefix=/foo", "GET /fo", false},
    {"prefix=/foo", "GET /FOO", false},
    {"prefix=/foo", "GET /foo?x=1", true},
    {"prefix=/foo", "GET /foo#?x", false},
    {"prefix=/foo/", "GET /foo", true},
    {"prefix=/foo/", "GET /foo/bar", true},
    {"prefix=/foo/", "GET /foobar", false},
    {"prefix=/abc/def", "GET /abc/def/ghi", true},
    {"prefix=/abc/def", "GET /abc/defg", false},
    {"prefix=/", "GET /", true},
    {"prefix=/", "GET /anything/at/all?q", true},
    {"", "GET /x", true},        /* a Route without rules: everything to the service */
    {"nomatch", "GET /x", true}, /* a rule without a match: PathPrefix / */
    /* Exact */
    {"exact=/foo", "GET /foo", true},
    {"exact=/foo", "GET /foo/", false},
    {"exact=/foo", "GET /foo/bar", false},
    {"exact=/foo", "GET /foo?a=b", true},
    {"exact=/foo", "GET /Foo", false},
    {"exact=/", "GET /", true},
    /* RegularExpression: full match of the path without its query */
    {"regex=/foo/[0-9]+", "GET /foo/123", true},
    {"regex=/foo/[0-9]+", "GET /foo/12a", false},
    {"regex=/foo/[0-9]+", "GET /foo/123/x", false},
    {"regex=/foo/[0-9]+", "GET /x/foo/123", false},
    {"regex=/foo/[0-9]+", "GET /foo/1?x=y", true},
    {"regex=/(v1|v2)/.*", "GET /v2/a/b", true},
    {"regex=/(v1|v2)/.*", "GET /v3/a", false},
    {"regex=(?i)/ADMIN", "GET /admin", true},
    {"regex=/a.c", "GET /a\xc3\xa9" "c", true}, /* UTF-8: . is one character */
    {"regex=/\\d{3}", "GET /123", true},
    {"regex=/\\d{3}", "GET /1234", false},
    {"regex=/a$", "GET /a", true},
    /* the whole path, also where PCRE2's DFA ignores ENDANCHORED (10.42) */
    {"regex=/(.*a){2}", "GET /aab", false},
    {"regex=/(.*a){2}", "GET /aba", true},
    {"regex=/.*a", "GET /ab", false},
    {"regex=/(x+x+)+y", "GET /xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxyy", false},
    {"regex=/(x+x+)+y", "GET /xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy", true},
    /* headers: names case-insensitive, values exact and case-sensitive */
    {"h=version:v2", "GET / version:v2", true},
    {"h=version:v2", "GET / Version:v2", true},
    {"h=Version:v2", "GET / version:v2", true},
    {"h=version:v2", "GET / version:V2", false},
    {"h=version:v2", "GET / version:v2x", false},
    {"h=version:v2", "GET / other:v2", false},
    {"h=version:v2", "GET /", false},
    {"h=x:a,b", "GET / x:a x:b", true}, /* repeats joined with "," */
    {"h=x:a", "GET / x:a x:b", false},
    {"hr=version:v[0-9]+", "GET / version:v12", true},
    {"hr=version:v[0-9]+", "GET / version:v1x", false},
    {"hr=version:.*", "GET /", false}, /* an absent header never matches */
    {"hr=version:.*", "GET / version:", true},
    {"h=a:1 h=b:2", "GET / a:1 b:2", true}, /* AND */
    {"h=a:1 h=b:2", "GET / a:1", false},
    {"h=a:1 h=A:2", "GET / a:1", true}, /* only the first of equivalent names counts */
    /* query parameters: names and values as sent, first occurrence */
    {"q=animal:whale", "GET /?animal=whale", true},
    {"q=animal:whale", "GET /?animal=dolphin", false},
    {"q=animal:whale", "GET /?Animal=whale", false},
    {"q=animal:whale", "GET /?a=1&animal=whale", true},
    {"q=animal:whale", "GET /?animal=whale&animal=dolphin", true},
    {"q=animal:whale", "GET /?animal=dolphin&animal=whale", false},
    {"q=animal:whale", "GET /", false},
    {"q=animal:whale", "GET /?animals=whale", false},
    {"q=flag:", "GET /?flag", true},
    {"qr=id:[0-9]+", "GET /p?id=42", true},
    {"qr=id:[0-9]+", "GET /p?id=4x2", false},
    {"q=a:1 q=b:2", "GET /?b=2&a=1", true},
    {"q=a:1 q=b:2", "GET /?b=2", false},
    /* method, exact */
    {"m=GET", "GET /", true},
    {"m=GET", "POST /", false},
    {"m=GET", "get /", false},
    {"m=POST prefix=/api", "POST /api/x", true},
    {"m=POST prefix=/api", "GET /api/x", false},
    {"m=POST prefix=/api", "POST /apix", false},
    /* all together (GW example: path + header + query + method) */
    {"prefix=/foo h=version:one q=great:yes m=PUT", "PUT /foo/x?great=yes version:one", true},
    {"prefix=/foo h=version:one q=great:yes m=PUT", "PUT /foo/x?great=no version:one", false},
    {"prefix=/foo h=version:one q=great:yes m=PUT", "PUT /foo/x?great=yes version:two", false},
};

static void
test_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(match_cases); i++) {
        struct route_table *t = table(match_cases[i].rule, 80);
        struct req q;
        req_parse(&q, match_cases[i].req);
        long got = route_match(t, &q.r);
        if ((got == 0) != match_cases[i].want)
            fail_msg("case %zu: rule \"%s\" request \"%s\": got %ld", i, match_cases[i].rule,
                     match_cases[i].req, got);
        route_table_unref(t);
    }
}

/* Rules in order: the first that matches wins, whatever comes after. */
static void
test_first_match_wins(void **state)
{
    (void)state;
    struct route_table *t = table("name=a exact=/x be=a:80\n"
                                  "name=b prefix=/x h=env:canary be=b:80\n"
                                  "name=c prefix=/x be=c:80\n"
                                  "name=d be=d:80",
                                  80);
    static const struct {
        const char *req;
        long idx;
    } cases[] = {{"GET /x", 0}, {"GET /x/y env:canary", 1}, {"GET /x/y", 2}, {"GET /z", 3}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct req q;
        req_parse(&q, cases[i].req);
        assert_int_equal(route_match(t, &q.r), cases[i].idx);
    }
    route_table_unref(t);

    /* no rule matches: 404, no backend */
    t = table("exact=/only be=a:80", 80);
    struct req q;
    struct route_action a;
    req_parse(&q, "GET /other");
    route_decide(t, &q.r, 0, &a);
    assert_int_equal(a.kind, ROUTE_DIRECT);
    assert_int_equal(a.status, 404);
    assert_null(a.rule);
    route_action_clear(&a);
    route_table_unref(t);
}

/* A pattern that backtracks exponentially in a backtracking engine stays fast here. */
static void
test_regex_no_backtracking(void **state)
{
    (void)state;
    struct route_table *t = table("regex=/(a+)+b\nregex=/(a|aa)*c", 80);
    char path[2048] = "GET /";
    memset(path + 5, 'a', 1500);
    struct req q;
    req_parse(&q, "GET /");
    q.r.path = path + 4;
    q.r.path_len = strlen(path + 4);
    clock_t t0 = clock();
    for (int i = 0; i < 20; i++)
        assert_int_equal(route_match(t, &q.r), -1);
    double ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
    assert_true(ms < 2000); /* backtracking: 2^1500 steps; DFA: ~1500 x states */
    assert_int_equal(route_table_regex_errors(t), 0);
    /* a subject over the cap never matches and is counted */
    static char big[ROUTE_MAX_SUBJECT + 16];
    big[0] = '/';
    memset(big + 1, 'a', sizeof(big) - 2);
    struct route_table *t2 = table("regex=/a*", 80);
    q.r.path = big;
    q.r.path_len = strlen(big);
    assert_int_equal(route_match(t2, &q.r), -1);
    assert_int_equal(route_table_regex_errors(t2), 1);
    route_table_unref(t2);

    /* about the worst pattern the size cap allows, on the longest subject: the JIT gives up
     * (backtracking), the DFA is stopped by the step budget of the request (counted, no
     * match), not run for a second */
    t2 = table("regex=/(?:a*){90}[ab]\nregex=/(?:.*){90}[ab]\nprefix=/ be=b:80", 80);
    big[ROUTE_MAX_SUBJECT - 2] = 'c';
    big[ROUTE_MAX_SUBJECT - 1] = '\0';
    q.r.path_len = strlen(big);
    t0 = clock();
    assert_int_equal(route_match(t2, &q.r), 2);
    ms = (double)(clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
    assert_true(ms < 1000);
    assert_int_equal(route_table_regex_errors(t2), 2); /* the second found the budget spent */
    route_table_unref(t2);
    route_table_unref(t);
}

/* Both engines (the JIT fast path and the DFA it falls back to) give RE2's full-match answer. */
static void
test_regex_engines(void **state)
{
    (void)state;
    static const struct {
        const char *re, *s;
        int want;
    } cases[] = {
        {"/(.*a){2}", "/aab", 0}, {"/(.*a){2}", "/aba", 1}, /* must end at the end */
        {"a|ab", "ab", 1},        {"ab|a", "a", 1},          /* alternation, full match */
        {"(?i)abc", "ABC", 1},    {"[^/]+", "a/b", 0},
        {"\\d+", "\xd9\xa1\xd9\xa2", 0},                 /* \d is ASCII, as in RE2 */
        {"\\w", "\xc3\xa9", 0},  {".", "\xc3\xa9", 1},       /* UTF-8: one character */
        {"..", "\xc3\xa9", 0},    {".", "\xff", 0},           /* not UTF-8: no match */
        {"a*?", "aaa", 1},        {"", "", 1},
        {"", "a", 0},             {"x{2,3}", "xxxx", 0},
        {".", "\n", 0},           {"(?s).", "\n", 1},
        {"a$", "a\n", 0},         {"^a$", "a", 1},
        {"(?U)a+", "aaa", 1},     {"[[:alpha:]]+", "abc", 1},
        {"\\Qa.b\\E", "a.b", 1}, {"\\Qa.b\\E", "axb", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct route_regex *re;
        char err[ROUTE_ERR_MAX];
        unsigned long steps = 0;
        if (route_regex_compile(cases[i].re, strlen(cases[i].re), &re, err, sizeof(err)) != 0)
            fail_msg("case %zu: %s", i, err);
        size_t n = strlen(cases[i].s);
        int jit = route_regex_match_engine(re, cases[i].s, n, false, &steps);
        int dfa = route_regex_match_engine(re, cases[i].s, n, true, &steps);
        int both = route_regex_match(re, cases[i].s, n, &steps);
        if (jit == -1 && !route_regex_has_jit(re))
            jit = cases[i].want; /* no JIT on this machine: the DFA answers alone */
        if (jit != cases[i].want || dfa != cases[i].want || both != cases[i].want)
            fail_msg("case %zu: /%s/ on \"%s\": jit %d dfa %d, want %d", i, cases[i].re,
                     cases[i].s, jit, dfa, cases[i].want);
        route_regex_free(re);
    }
}

/* ---- redirects ---- */

static const struct {
    const char *rule;
    uint32_t port; /* the service port: the "listener" port */
    const char *req;
    unsigned status;
    const char *location;
} redirect_cases[] = {
    {"redir.scheme=https", 80, "GET /p?q=1 host:echo", 302, "https://echo/p?q=1"},
    {"redir.scheme=https redir.status=301", 80, "GET /p host:echo", 301, "https://echo/p"},
    {"redir.scheme=http", 8443, "GET /p https host:echo", 302, "http://echo/p"},
    {"redir.host=example.org", 80, "GET /a/b host:echo:80", 302, "http://example.org/a/b"},
    {"redir.host=example.org", 8080, "GET /a host:echo:8080", 302, "http://example.org:8080/a"},
    {"redir.host=example.org", 443, "GET /a https host:echo", 302, "https://example.org/a"},
    {"redir.port=8443 redir.scheme=https", 80, "GET / host:e", 302, "https://e:8443/"},
    {"redir.port=443 redir.scheme=https", 80, "GET / host:e", 302, "https://e/"},
    {"redir.port=80", 8080, "GET / host:e:8080", 302, "http://e/"},
    {"redir.port=8080", 80, "GET / host:e", 302, "http://e:8080/"},
    {"redir.full=/new", 80, "GET /old/x?k=v host:e", 302, "http://e/new?k=v"},
    {"prefix=/foo redir.prefix=/bar", 80, "GET /foo/x host:e", 302, "http://e/bar/x"},
    {"prefix=/foo redir.prefix=/bar", 80, "GET /foo host:e", 302, "http://e/bar"},
    {"prefix=/foo redir.prefix=", 80, "GET /foo/x host:e", 302, "http://e/x"},
    {"redir.status=307 redir.scheme=https redir.host=secure.example.com", 80,
     "POST /pay host:shop", 307, "https://secure.example.com/pay"},
    {"redir.status=308", 80, "GET /p host:[2001:db8::1]:80", 308, "http://[2001:db8::1]/p"},
    {"redir.status=303", 80, "GET /p host:198.18.0.1", 303, "http://198.18.0.1/p"},
    /* no usable Host: the service's own name, never the raw bytes */
    {"redir.scheme=https", 80, "GET /p", 302, "https://" RB_HOST "/p"},
    {"redir.scheme=https", 80, "GET /p host:a@evil", 302, "https://" RB_HOST "/p"},
};

static void
test_redirect_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(redirect_cases); i++) {
        struct route_table *t = table(redirect_cases[i].rule, redirect_cases[i].port);
        struct req q;
        struct route_action a;
        req_parse(&q, redirect_cases[i].req);
        route_decide(t, &q.r, 0, &a);
        if (a.kind != ROUTE_REDIRECT || a.status != redirect_cases[i].status ||
            strcmp(a.location, redirect_cases[i].location) != 0)
            fail_msg("case %zu (%s): kind %d status %u location %s, want %s", i,
                     redirect_cases[i].rule, a.kind, a.status, a.location ? a.location : "-",
                     redirect_cases[i].location);
        route_action_clear(&a);
        route_table_unref(t);
    }
}

/* ---- rewrites: Gateway API's ReplacePrefixMatch table, then full path and host ---- */

static const struct {
    const char *path, *prefix, *replace, *want;
} prefix_cases[] = {
    {"/foo/bar", "/foo", "/xyz", "/xyz/bar"}, {"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
    {"/foo/bar", "/foo/", "/xyz", "/xyz/bar"}, {"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
    {"/foo", "/foo", "/xyz", "/xyz"},          {"/foo/", "/foo", "/xyz", "/xyz/"},
    {"/foo/bar", "/foo", "", "/bar"},          {"/foo/", "/foo", "", "/"},
    {"/foo", "/foo", "", "/"},                 {"/foo/", "/foo", "/", "/"},
    {"/foo", "/foo", "/", "/"},
    /* beyond the table: the query stays, "/" as prefix */
    {"/foo/bar?x=1", "/foo", "/xyz", "/xyz/bar?x=1"}, {"/a/b", "/", "/v2", "/v2/a/b"},
};

static void
test_rewrite_prefix_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(prefix_cases); i++) {
        char spec[256], rq[256];
        snprintf(spec, sizeof(spec), "prefix=%s rw.prefix=%s be=b:80", prefix_cases[i].prefix,
                 prefix_cases[i].replace);
        snprintf(rq, sizeof(rq), "GET %s host:e", prefix_cases[i].path);
        struct route_table *t = table(spec, 80);
        struct req q;
        struct route_action a;
        req_parse(&q, rq);
        route_decide(t, &q.r, 0, &a);
        assert_int_equal(a.kind, ROUTE_FORWARD);
        if (a.path == NULL || strcmp(a.path, prefix_cases[i].want) != 0)
            fail_msg("case %zu: %s with %s -> %s: got %s", i, prefix_cases[i].path,
                     prefix_cases[i].prefix, prefix_cases[i].replace, prefix_cases[i].want,
                     a.path ? a.path : "(unchanged)");
        assert_null(a.authority);
        route_action_clear(&a);
        route_table_unref(t);
    }
}

static void
test_rewrite_full_and_host(void **state)
{
    (void)state;
    struct route_table *t = table("prefix=/old rw.full=/new rw.host=api.example.com be=b:80\n"
                                  "prefix=/keep be=b:80\n"
                                  "prefix=/h rw.host=other.example be=b:80",
                                  80);
    struct req q;
    struct route_action a;
    req_parse(&q, "GET /old/deep/path?z=9 host:e");
    route_decide(t, &q.r, 0, &a);
    assert_string_equal(a.path, "/new?z=9");
    assert_string_equal(a.authority, "api.example.com");
    route_action_clear(&a);
    req_parse(&q, "GET /keep/x host:e");
    route_decide(t, &q.r, 0, &a);
    assert_null(a.path);
    assert_null(a.authority);
    route_action_clear(&a);
    req_parse(&q, "GET /h/x host:e");
    route_decide(t, &q.r, 0, &a);
    assert_null(a.path);
    assert_string_equal(a.authority, "other.example");
    route_action_clear(&a);
    route_table_unref(t);
}

/* ---- header modifiers ---- */

static void
test_header_modifiers(void **state)
{
    (void)state;
    struct route_table *t = table("set=X-Set:new add=x-add:two add=X-Other:o rm=X-Remove "
                                  "rset=server:amesh rrm=x-internal be=b:80",
                                  80);
    struct req q;
    struct route_action a;
    req_parse(&q, "GET / x-set:old X-SET:older x-add:one x-remove:gone X-Remove:gone2 keep:1");
    route_decide(t, &q.r, 0, &a);
    assert_non_null(a.request_headers);
    assert_non_null(a.response_headers);
    struct route_hdr_list l = {0};
    l.v = malloc(q.r.n_headers * sizeof(*l.v));
    memcpy(l.v, q.h, q.r.n_headers * sizeof(*l.v));
    l.n = l.cap = q.r.n_headers;
    route_hdrs_apply(NULL, &l); /* no modifier: unchanged */
    assert_int_equal(l.n, q.r.n_headers);
    route_hdrs_apply(a.request_headers, &l);
    char got[512] = "";
    for (size_t i = 0; i < l.n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%.*s=%.*s;", (int)l.v[i].name_len,
                 l.v[i].name, (int)l.v[i].value_len, l.v[i].value);
    assert_string_equal(got, "x-add=one;keep=1;x-set=new;x-add=two;x-other=o;");
    route_hdr_list_free(&l);

    struct route_hdr resp[] = {{"Server", 6, "nginx", 5}, {"X-Internal", 10, "1", 1},
                               {"content-type", 12, "text/plain", 10}};
    l.v = malloc(sizeof(resp));
    memcpy(l.v, resp, sizeof(resp));
    l.n = l.cap = 3;
    route_hdrs_apply(a.response_headers, &l);
    got[0] = '\0';
    for (size_t i = 0; i < l.n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%.*s=%.*s;", (int)l.v[i].name_len,
                 l.v[i].name, (int)l.v[i].value_len, l.v[i].value);
    assert_string_equal(got, "content-type=text/plain;server=amesh;");
    route_hdr_list_free(&l);
    route_action_clear(&a);
    route_table_unref(t);
}

/* ---- weighted pick ---- */

static void
count_picks(struct route_table *t, unsigned n, unsigned *hits, size_t nb)
{
    struct req q;
    req_parse(&q, "GET /");
    memset(hits, 0, nb * sizeof(*hits));
    for (unsigned i = 0; i < n; i++) {
        struct route_action a;
        /* evenly spread over 32 bits: ceil(i * 2^32 / n), so i/n of the range lies below */
        uint32_t rnd = (uint32_t)((((uint64_t)i << 32) + n - 1) / n);
        route_decide(t, &q.r, rnd, &a);
        assert_int_equal(a.kind, ROUTE_FORWARD);
        hits[a.backend_host[0] - 'a']++;
        route_action_clear(&a);
    }
}

static void
test_weighted_pick(void **state)
{
    (void)state;
    unsigned hits[3];
    struct route_table *t = table("be=a:80:90 be=b:80:10", 80);
    count_picks(t, 1000, hits, 2);
    assert_int_equal(hits[0], 900);
    assert_int_equal(hits[1], 100);
    route_table_unref(t);

    t = table("be=a:80:1 be=b:80:0 be=c:80:3", 80); /* weight 0 never picked */
    count_picks(t, 4000, hits, 3);
    assert_int_equal(hits[0], 1000);
    assert_int_equal(hits[1], 0);
    assert_int_equal(hits[2], 3000);
    route_table_unref(t);

    /* extremes of the random value */
    struct req q;
    struct route_action a;
    req_parse(&q, "GET /");
    t = table("be=a:80:1 be=b:80:1", 80);
    route_decide(t, &q.r, 0, &a);
    assert_string_equal(a.backend_host, "a");
    assert_string_equal(a.backend_ns, "default");
    assert_int_equal(a.backend_port, 80);
    route_action_clear(&a);
    route_decide(t, &q.r, UINT32_MAX, &a);
    assert_string_equal(a.backend_host, "b");
    route_action_clear(&a);
    route_table_unref(t);

    /* all weights 0, no backends: 500; a direct status as configured */
    static const char *const five[] = {"be=a:80:0 be=b:80:0", "prefix=/", "direct=503"};
    static const unsigned want[] = {500, 500, 503};
    for (size_t i = 0; i < ARRAY_LEN(five); i++) {
        t = table(five[i], 80);
        route_decide(t, &q.r, 12345, &a);
        assert_int_equal(a.kind, ROUTE_DIRECT);
        assert_int_equal(a.status, want[i]);
        assert_string_equal(a.rule, "");
        route_action_clear(&a);
        route_table_unref(t);
    }
}

/* No rules: the service itself, with Istio's default retry policy. */
static void
test_default_route(void **state)
{
    (void)state;
    struct route_table *tables[2] = {table("", 9080),
                                     route_table_default("default", RB_HOST, 9080)};
    for (int k = 0; k < 2; k++) {
        struct route_table *t = tables[k];
        struct req q;
        struct route_action a;
        req_parse(&q, "DELETE /any/thing?x");
        route_decide(t, &q.r, 777, &a);
        assert_int_equal(a.kind, ROUTE_FORWARD);
        assert_string_equal(a.backend_ns, "default");
        assert_string_equal(a.backend_host, RB_HOST);
        assert_int_equal(a.backend_port, 9080);
        assert_int_equal(a.retry.attempts, 2);
        assert_int_equal(a.retry.on, ROUTE_RETRY_CONNECT_FAILURE | ROUTE_RETRY_REFUSED_STREAM |
                                         ROUTE_RETRY_UNAVAILABLE | ROUTE_RETRY_CANCELLED |
                                         ROUTE_RETRY_STATUS_CODES);
        assert_int_equal(a.retry.n_codes, 0);
        assert_int_equal(a.retry.backoff_base_ms, 25);
        assert_true(a.retry.other_host);
        assert_int_equal(a.timeout_ms, 0);
        assert_null(a.path);
        assert_string_equal(route_table_key(t), "default/" RB_HOST ":9080");
        assert_int_equal(route_table_rules(t), 0);
        route_action_clear(&a);
        route_table_unref(t);
    }
}

static void
test_timeouts_and_retry(void **state)
{
    (void)state;
    struct route_table *t = table("prefix=/a timeout=1500 btimeout=500 retry=3:503,504:100 "
                                  "be=b:80\n"
                                  "prefix=/b retry=0 be=b:80\n"
                                  "prefix=/c timeout=1 be=b:80",
                                  80);
    struct req q;
    struct route_action a;
    req_parse(&q, "GET /a");
    route_decide(t, &q.r, 0, &a);
    assert_int_equal(a.timeout_ms, 1500);
    assert_int_equal(a.backend_timeout_ms, 500);
    assert_int_equal(a.retry.attempts, 3);
    assert_int_equal(a.retry.n_codes, 2);
    assert_int_equal(a.retry.codes[0], 503);
    assert_int_equal(a.retry.codes[1], 504);
    assert_int_equal(a.retry.backoff_base_ms, 100);
    assert_int_equal(a.retry.backoff_max_ms, 1000);
    assert_true(a.retry.on & ROUTE_RETRY_STATUS_CODES);
    route_action_clear(&a);
    req_parse(&q, "GET /b");
    route_decide(t, &q.r, 0, &a);
    assert_int_equal(a.retry.attempts, 0); /* Gateway API attempts: 0 disables retries */
    route_action_clear(&a);
    req_parse(&q, "GET /c");
    route_decide(t, &q.r, 0, &a);
    assert_int_equal(a.timeout_ms, 1);
    assert_int_equal(a.retry.attempts, 2);
    route_action_clear(&a);
    route_table_unref(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_regex_no_backtracking),
        cmocka_unit_test(test_regex_engines),
        cmocka_unit_test(test_redirect_table),
        cmocka_unit_test(test_rewrite_prefix_table),
        cmocka_unit_test(test_rewrite_full_and_host),
        cmocka_unit_test(test_header_modifiers),
        cmocka_unit_test(test_weighted_pick),
        cmocka_unit_test(test_default_route),
        cmocka_unit_test(test_timeouts_and_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
