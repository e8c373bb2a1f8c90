/*
 * test_kubeauth.c - Kubernetes tokens as CA credentials, without I/O: what a
 * TokenReview answer says (tests/unit/kubeauth/<name>.json, shaped like
 * kube-apiserver 1.20.2's answers, and tests/fixtures/kube/tokenreview/<name>.json
 * recorded from the real server), who the caller is in the store, who
 * may obtain which identity, and the cache of answers.
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
#include "k8s/k8s.h"
#include "kubeauth/kubeauth.h"

#define UID_ECHO "5d1c1d6e-3b1f-4c53-9c1a-0e6f3e0b6a01"
#define UID_ZT "8a0e6f52-7d4e-4f0e-8b63-2c2f7b9c3d10"

static char *
slurp(const char *rel, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", MESH_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *buf = xmalloc(1 << 20);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int
parse_file(const char *name, struct kubeauth_identity *id, char *why, size_t whylen)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof(rel), "tests/unit/kubeauth/%s", name);
    char *buf = slurp(rel, &len);
    int rc = kubeauth_review_parse_buf(buf, len, id, why, whylen);
    free(buf);
    return rc;
}

/* The answers, one row each: accepted with these fields, or refused saying this. */
static void
test_review_table(void **state)
{
    static const struct {
        const char *file;
        int rc;
        const char *ns, *sa, *pod, *uid; /* rc 0 */
        const char *why;                 /* rc -1: a part of the reason */
    } rows[] = {
        {"echo-bound.json", 0, "demo", "echo", "echo-1", UID_ECHO, NULL},
        {"ztunnel-bound.json", 0, "istio-system", "ztunnel", "ztunnel-n1", UID_ZT, NULL},
        {"wrong-audience.json", -1, NULL, NULL, NULL, NULL, "is invalid for the target audiences"},
        {"garbage.json", -1, NULL, NULL, NULL, NULL, "did not authenticate"},
        {"authenticated-no-audience.json", -1, NULL, NULL, NULL, NULL, "audience istio-ca"},
        {"not-serviceaccount.json", -1, NULL, NULL, NULL, NULL, "not a service account"},
        {"unbound.json", -1, NULL, NULL, NULL, NULL, "not bound to a pod"},
        {"two-pods.json", -1, NULL, NULL, NULL, NULL, "not bound to a pod"},
        {"bad-namespace.json", -1, NULL, NULL, NULL, NULL, "malformed"},
        {"status-forbidden.json", -1, NULL, NULL, NULL, NULL, "not a TokenReview"},
        {"authenticated-string.json", -1, NULL, NULL, NULL, NULL, "did not authenticate"},
    };
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct kubeauth_identity id;
        char why[KUBEAUTH_WHY_MAX] = "";
        int rc = parse_file(rows[i].file, &id, why, sizeof(why));
        if (rc != rows[i].rc)
            fail_msg("%s: rc %d, want %d (%s)", rows[i].file, rc, rows[i].rc, why);
        if (rc == 0) {
            assert_string_equal(id.ns, rows[i].ns);
            assert_string_equal(id.sa, rows[i].sa);
            assert_string_equal(id.pod, rows[i].pod);
            assert_string_equal(id.pod_uid, rows[i].uid);
        } else if (strstr(why, rows[i].why) == NULL) {
            fail_msg("%s: reason \"%s\" lacks \"%s\"", rows[i].file, why, rows[i].why);
        }
        /* The answer echoes spec.token: a reason never carries it. */
        assert_null(strstr(why, "eyJhbGciOiJSUzI1NiJ9"));
    }
}

/* Answers recorded from the real API server (test 48, RECORD=DIR), then decided against a store. */
static int
parse_recorded(const char *name, struct kubeauth_identity *id, char *why, size_t whylen)
{
    char rel[256];
    size_t len;
    snprintf(rel, sizeof(rel), "tests/fixtures/kube/tokenreview/%s", name);
    char *buf = slurp(rel, &len);
    int rc = kubeauth_review_parse_buf(buf, len, id, why, whylen);
    free(buf);
    return rc;
}

static void
test_review_recorded(void **state)
{
    static const struct {
        const char *file;
        int rc;
        const char *ns, *sa, *pod, *why;
    } rows[] = {
        {"ztunnel.json", 0, "istio-system", "ztunnel", "ztunnel-n1", NULL},
        {"echo.json", 0, "demo", "echo", "echo-1", NULL},
        {"wrong-audience.json", -1, NULL, NULL, NULL, "is invalid for the target audiences"},
        {"deleted-pod.json", -1, NULL, NULL, NULL, "Token has been invalidated"},
        {"garbage.json", -1, NULL, NULL, NULL, "invalid bearer token"},
    };
    struct kubeauth_identity zt = {0}, echo = {0};
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct kubeauth_identity id;
        char why[KUBEAUTH_WHY_MAX] = "";
        int rc = parse_recorded(rows[i].file, &id, why, sizeof(why));
        if (rc != rows[i].rc)
            fail_msg("recorded %s: rc %d, want %d (%s)", rows[i].file, rc, rows[i].rc, why);
        if (rc == 0) {
            assert_string_equal(id.ns, rows[i].ns);
            assert_string_equal(id.sa, rows[i].sa);
            assert_string_equal(id.pod, rows[i].pod);
            assert_int_equal(strlen(id.pod_uid), 36);
            if (i == 0)
                zt = id;
            else
                echo = id;
        } else if (strstr(why, rows[i].why) == NULL) {
            fail_msg("recorded %s: reason \"%s\" lacks \"%s\"", rows[i].file, why, rows[i].why);
        }
    }
    /* The store as the API server had it: the pods with the UIDs the tokens are bound to. */
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "apiVersion: v1\nkind: Pod\nmetadata: {name: ztunnel-n1, namespace: istio-system, "
             "uid: %s}\nspec: {serviceAccountName: ztunnel, nodeName: node-1}\n"
             "status: {phase: Running}\n---\n"
             "apiVersion: v1\nkind: Pod\nmetadata: {name: echo-1, namespace: demo, uid: %s}\n"
             "spec: {serviceAccountName: echo, nodeName: node-1}\nstatus: {phase: Running}\n---\n"
             "apiVersion: v1\nkind: Pod\nmetadata: {name: curl-2, namespace: demo, uid: c}\n"
             "spec: {serviceAccountName: curl, nodeName: node-2}\nstatus: {phase: Running}\n",
             zt.pod_uid, echo.pod_uid);
    struct k8s_store *st = k8s_store_new();
    k8s_store_load_buf(st, "recorded.yaml", yaml, strlen(yaml), NULL);
    struct kubeauth_accounts tr;
    struct kubeauth_caller cz, ce;
    char why[KUBEAUTH_WHY_MAX];
    assert_int_equal(kubeauth_accounts_parse(KUBEAUTH_DEFAULT_TRUSTED, &tr, why, sizeof(why)), 0);
    assert_int_equal(kubeauth_decide(&zt, st, &tr, &cz, why, sizeof(why)), 0);
    assert_int_equal(kubeauth_decide(&echo, st, &tr, &ce, why, sizeof(why)), 0);
    assert_string_equal(cz.node, "node-1");
    assert_true(cz.trusted);
    assert_false(ce.trusted);
    assert_true(kubeauth_may_obtain(&cz, st, "demo", "echo", why, sizeof(why)));
    assert_false(kubeauth_may_obtain(&cz, st, "demo", "curl", why, sizeof(why)));
    assert_false(kubeauth_may_obtain(&ce, st, "istio-system", "ztunnel", why, sizeof(why)));
    /* tools/kube/record-fixtures.sh's recordings (another run of the same server) read alike. */
    static const struct {
        const char *file;
        int rc;
        const char *why;
    } more[] = {
        {"../tokenreview.json", 0, NULL},
        {"../tokenreview-wrong-audience.json", -1, "did not authenticate"},
        {"../tokenreview-bad.json", -1, "error in cryptographic primitive"},
    };
    for (size_t i = 0; i < ARRAY_LEN(more); i++) {
        struct kubeauth_identity id;
        int rc = parse_recorded(more[i].file, &id, why, sizeof(why));
        if (rc != more[i].rc)
            fail_msg("recorded %s: rc %d (%s)", more[i].file, rc, why);
        if (rc == 0)
            assert_string_equal(id.pod, "echo-0");
        else if (strstr(why, more[i].why) == NULL)
            fail_msg("recorded %s: reason \"%s\" lacks \"%s\"", more[i].file, why, more[i].why);
    }
    /* The other pod's token against this store: the UIDs differ. */
    struct kubeauth_identity swapped = echo;
    snprintf(swapped.pod_uid, sizeof(swapped.pod_uid), "%s", zt.pod_uid);
    assert_int_equal(kubeauth_decide(&swapped, st, &tr, &ce, why, sizeof(why)), -1);
    k8s_store_free(st);
}

static void
test_review_limits(void **state)
{
    struct kubeauth_identity id;
    char why[KUBEAUTH_WHY_MAX];
    (void)state;
    assert_int_equal(kubeauth_review_parse_buf("", 0, &id, why, sizeof(why)), -1);
    assert_int_equal(kubeauth_review_parse_buf("[1,2]", 5, &id, why, sizeof(why)), -1);
    assert_int_equal(kubeauth_review_parse_buf("{\"kind\":\"TokenReview\",\"kind\":\"x\"}", 33,
                                               &id, why, sizeof(why)),
                     -1);
    /* Over the cap: refused before parsing. */
    size_t big = KUBEAUTH_MAX_ANSWER + 1;
    char *b = xcalloc(1, big);
    memset(b, ' ', big);
    assert_int_equal(kubeauth_review_parse_buf(b, big, &id, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "larger than"));
    free(b);
    /* A NUL inside the username does not cut it short into a valid one. */
    const char *nul = "{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"audiences\":"
                      "[\"istio-ca\"],\"user\":{\"username\":\"system:serviceaccount:demo:echo\\u0000x\","
                      "\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"echo-1\"],"
                      "\"authentication.kubernetes.io/pod-uid\":[\"u\"]}}}}";
    assert_int_equal(kubeauth_review_parse_buf(nul, strlen(nul), &id, why, sizeof(why)), -1);
    /* A server error with control characters is cleaned for the log. */
    const char *ctl = "{\"kind\":\"TokenReview\",\"status\":{\"error\":\"bad\\n\\u001b[31mred\"}}";
    assert_int_equal(kubeauth_review_parse_buf(ctl, strlen(ctl), &id, why, sizeof(why)), -1);
    assert_null(strchr(why, '\n'));
    assert_null(strchr(why, 0x1b));
}

static void
test_token_checks(void **state)
{
    int64_t exp = 0;
    (void)state;
    /* header {"alg":"RS256"} . payload {"exp":1700000000,"sub":"x"} . sig */
    const char *jwt = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsInN1YiI6IngifQ.c2ln";
    assert_true(kubeauth_token_plausible(jwt, strlen(jwt)));
    assert_true(kubeauth_token_expiry(jwt, strlen(jwt), &exp));
    assert_int_equal(exp, 1700000000);
    assert_false(kubeauth_token_plausible("a\"b", 3));
    assert_false(kubeauth_token_plausible("a b", 3));
    assert_false(kubeauth_token_plausible("", 0));
    assert_false(kubeauth_token_expiry("abc", 3, &exp));
    assert_false(kubeauth_token_expiry("a.!!.c", 6, &exp));
    assert_false(kubeauth_token_expiry("a.e30.c", 7, &exp)); /* {} */
    /* The request names the token and audience istio-ca only. */
    json_t *r = kubeauth_review_request("abc.def", 7);
    char *s = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(s, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
                           "\"spec\":{\"audiences\":[\"istio-ca\"],\"token\":\"abc.def\"}}");
    free(s);
    json_decref(r);
}

static void
test_accounts(void **state)
{
    struct kubeauth_accounts a;
    char err[256];
    (void)state;
    assert_int_equal(kubeauth_accounts_parse(KUBEAUTH_DEFAULT_TRUSTED, &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 1);
    assert_true(kubeauth_accounts_has(&a, "istio-system", "ztunnel"));
    assert_false(kubeauth_accounts_has(&a, "istio-system", "ztunnel2"));
    assert_int_equal(kubeauth_accounts_parse(" kube-system/zt , a/b,,", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 2);
    assert_true(kubeauth_accounts_has(&a, "a", "b"));
    assert_int_equal(kubeauth_accounts_parse("", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(kubeauth_accounts_parse("ztunnel", &a, err, sizeof(err)), -1);
    assert_int_equal(kubeauth_accounts_parse("a/", &a, err, sizeof(err)), -1);
    assert_int_equal(kubeauth_accounts_parse("Bad_NS/x", &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Bad_NS/x"));
}

static struct k8s_store *
store(void)
{
    size_t len;
    char *y = slurp("tests/unit/kubeauth/store.yaml", &len);
    struct k8s_store *st = k8s_store_new();
    k8s_store_load_buf(st, "store.yaml", y, len, NULL);
    free(y);
    return st;
}

static struct kubeauth_identity
ident(const char *ns, const char *sa, const char *pod, const char *uid)
{
    struct kubeauth_identity id;
    memset(&id, 0, sizeof(id));
    snprintf(id.ns, sizeof(id.ns), "%s", ns);
    snprintf(id.sa, sizeof(id.sa), "%s", sa);
    snprintf(id.pod, sizeof(id.pod), "%s", pod);
    snprintf(id.pod_uid, sizeof(id.pod_uid), "%s", uid);
    return id;
}

/* The caller's pod in the store: node, trust, or why not. */
static void
test_decide_table(void **state)
{
    static const struct {
        const char *ns, *sa, *pod, *uid;
        int rc;
        const char *node; /* rc 0 */
        bool trusted;
        const char *why;  /* rc -1 */
    } rows[] = {
        {"istio-system", "ztunnel", "ztunnel-n1", UID_ZT, 0, "node-1", true, NULL},
        {"demo", "echo", "echo-1", UID_ECHO, 0, "node-1", false, NULL},
        {"demo", "echo", "echo-1", "0000-other", -1, NULL, false, "deleted and recreated"},
        {"demo", "curl", "echo-1", UID_ECHO, -1, NULL, false, "runs as echo"},
        {"demo", "echo", "echo-9", UID_ECHO, -1, NULL, false, "does not know"},
        {"demo", "batch", "done-1", "1c4e2d90-0d2a-4a4b-8a0f-6f3b2d1e9c55", -1, NULL, false,
         "terminated"},
    };
    struct kubeauth_accounts tr;
    char err[128];
    (void)state;
    assert_int_equal(kubeauth_accounts_parse(KUBEAUTH_DEFAULT_TRUSTED, &tr, err, sizeof(err)), 0);
    struct k8s_store *st = store();
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct kubeauth_identity id = ident(rows[i].ns, rows[i].sa, rows[i].pod, rows[i].uid);
        struct kubeauth_caller c;
        char why[KUBEAUTH_WHY_MAX] = "";
        int rc = kubeauth_decide(&id, st, &tr, &c, why, sizeof(why));
        if (rc != rows[i].rc)
            fail_msg("row %zu: rc %d, want %d (%s)", i, rc, rows[i].rc, why);
        if (rc == 0) {
            assert_string_equal(c.node, rows[i].node);
            assert_int_equal(c.trusted, rows[i].trusted);
        } else if (strstr(why, rows[i].why) == NULL) {
            fail_msg("row %zu: reason \"%s\" lacks \"%s\"", i, why, rows[i].why);
        }
    }
    k8s_store_free(st);
}

/* Recorded answer + store -> who may obtain what (NodeAuthorizer). */
static void
test_may_obtain(void **state)
{
    static const struct {
        const char *answer, *ns, *sa;
        bool ok;
        const char *why;
    } rows[] = {
        {"ztunnel-bound.json", "demo", "echo", true, NULL},   /* echo runs on node-1 */
        {"ztunnel-bound.json", "demo", "curl", false, "no pod on node node-1"}, /* node-2 only */
        {"ztunnel-bound.json", "demo", "batch", false, "no pod on node"},     /* terminated */
        {"ztunnel-bound.json", "istio-system", "ztunnel", true, NULL},        /* itself */
        {"echo-bound.json", "demo", "echo", true, NULL},
        {"echo-bound.json", "demo", "curl", false, "only its own identity"},
        {"echo-bound.json", "istio-system", "ztunnel", false, "only its own identity"},
    };
    struct kubeauth_accounts tr;
    char err[128];
    (void)state;
    assert_int_equal(kubeauth_accounts_parse(KUBEAUTH_DEFAULT_TRUSTED, &tr, err, sizeof(err)), 0);
    struct k8s_store *st = store();
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct kubeauth_identity id;
        struct kubeauth_caller c;
        char why[KUBEAUTH_WHY_MAX] = "";
        assert_int_equal(parse_file(rows[i].answer, &id, why, sizeof(why)), 0);
        assert_int_equal(kubeauth_decide(&id, st, &tr, &c, why, sizeof(why)), 0);
        bool ok = kubeauth_may_obtain(&c, st, rows[i].ns, rows[i].sa, why, sizeof(why));
        if (ok != rows[i].ok)
            fail_msg("row %zu: %s/%s ok %d (%s)", i, rows[i].ns, rows[i].sa, ok, why);
        if (!ok && strstr(why, rows[i].why) == NULL)
            fail_msg("row %zu: reason \"%s\" lacks \"%s\"", i, why, rows[i].why);
    }
    /* Not trusted any more (flag emptied): the ztunnel gets only its own identity. */
    struct kubeauth_accounts none = {0};
    struct kubeauth_identity id = ident("istio-system", "ztunnel", "ztunnel-n1", UID_ZT);
    struct kubeauth_caller c;
    char why[KUBEAUTH_WHY_MAX];
    assert_int_equal(kubeauth_decide(&id, st, &none, &c, why, sizeof(why)), 0);
    assert_false(c.trusted);
    assert_false(kubeauth_may_obtain(&c, st, "demo", "echo", why, sizeof(why)));
    k8s_store_free(st);
}

static void
test_cache(void **state)
{
    struct kubeauth_cache *c = kubeauth_cache_new(16);
    uint8_t d1[KUBEAUTH_DIGEST_LEN], d2[KUBEAUTH_DIGEST_LEN];
    struct kubeauth_identity id = ident("demo", "echo", "echo-1", UID_ECHO), got;
    char why[KUBEAUTH_WHY_MAX];
    (void)state;
    kubeauth_digest("tok-1", 5, d1);
    kubeauth_digest("tok-2", 5, d2);
    assert_int_equal(kubeauth_cache_get(c, d1, 1000, &got, why, sizeof(why)), -1);
    kubeauth_cache_put(c, d1, 2000, &id, NULL);
    kubeauth_cache_put(c, d2, 1500, NULL, "refused: garbage");
    assert_int_equal(kubeauth_cache_get(c, d1, 1999, &got, why, sizeof(why)), 1);
    assert_string_equal(got.pod, "echo-1");
    assert_int_equal(kubeauth_cache_get(c, d2, 1400, &got, why, sizeof(why)), 0);
    assert_string_equal(why, "refused: garbage");
    /* Expired: gone, and the slot is freed. */
    assert_int_equal(kubeauth_cache_get(c, d2, 1500, &got, why, sizeof(why)), -1);
    assert_int_equal(kubeauth_cache_get(c, d1, 2000, &got, why, sizeof(why)), -1);
    assert_int_equal(kubeauth_cache_len(c), 0);
    /* A flood of tokens: the table never holds more than its size. */
    for (int i = 0; i < 10000; i++) {
        char t[32];
        uint8_t d[KUBEAUTH_DIGEST_LEN];
        int n = snprintf(t, sizeof(t), "flood-%d", i);
        kubeauth_digest(t, (size_t)n, d);
        kubeauth_cache_put(c, d, 5000 + (uint64_t)i, NULL, "x");
    }
    assert_true(kubeauth_cache_len(c) <= 16);
    /* The newest stays (eviction takes the entry expiring first). */
    {
        uint8_t d[KUBEAUTH_DIGEST_LEN];
        kubeauth_digest("flood-9999", 10, d);
        assert_int_equal(kubeauth_cache_get(c, d, 0, &got, why, sizeof(why)), 0);
    }
    /* Updating an entry keeps one copy. */
    kubeauth_cache_free(c);
    c = kubeauth_cache_new(100);
    kubeauth_cache_put(c, d1, 100, NULL, "no");
    kubeauth_cache_put(c, d1, 200, &id, NULL);
    assert_int_equal(kubeauth_cache_len(c), 1);
    assert_int_equal(kubeauth_cache_get(c, d1, 150, &got, why, sizeof(why)), 1);
    kubeauth_cache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_review_table),  cmocka_unit_test(test_review_recorded),
        cmocka_unit_test(test_review_limits), cmocka_unit_test(test_token_checks),
        cmocka_unit_test(test_accounts),      cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_may_obtain),    cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
