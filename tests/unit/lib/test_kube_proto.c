/*
 * test_kube_proto.c - lib/kube's sans-I/O pieces, table-driven: the line
 * splitter at every split point and at its cap, watch event decoding,
 * Status classification, the reflector's plan after each outcome, the
 * backoff sequence and its reset, and the cache's sweep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube_proto.h"

struct collected {
    char out[4096];
    size_t len;
    int lines;
    int stop_after; /* the callback fails after this many lines (0: never) */
};

static int
collect(void *arg, const char *line, size_t len)
{
    struct collected *c = arg;
    assert_true(c->len + len + 1 < sizeof(c->out));
    assert_null(memchr(line, '\n', len));
    memcpy(c->out + c->len, line, len);
    c->len += len;
    c->out[c->len++] = '|';
    c->out[c->len] = '\0';
    c->lines++;
    return c->stop_after > 0 && c->lines >= c->stop_after ? -ECANCELED : 0;
}

static void
test_lines_every_split(void **state)
{
    (void)state;
    const char *in = "{\"a\":1}\n\n{\"b\":22}\r\n{\"c\":333}\nrest";
    const char *want = "{\"a\":1}|{\"b\":22}|{\"c\":333}|";
    size_t n = strlen(in);
    /* Two cuts anywhere: three chunks, every combination. */
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) {
            struct kube_lines lb;
            struct collected c = {0};
            kube_lines_init(&lb, 64);
            assert_int_equal(kube_lines_feed(&lb, in, i, collect, &c), 0);
            assert_int_equal(kube_lines_feed(&lb, in + i, j - i, collect, &c), 0);
            assert_int_equal(kube_lines_feed(&lb, in + j, n - j, collect, &c), 0);
            assert_string_equal(c.out, want);
            assert_int_equal(kube_lines_pending(&lb), 4); /* "rest" waits for its '\n' */
            kube_lines_free(&lb);
        }
    /* One byte at a time. */
    struct kube_lines lb;
    struct collected c = {0};
    kube_lines_init(&lb, 64);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kube_lines_feed(&lb, in + i, 1, collect, &c), 0);
    assert_string_equal(c.out, want);
    kube_lines_free(&lb);
}

static void
test_lines_cap(void **state)
{
    (void)state;
    char line[40];
    /* A line of exactly the cap passes, one byte more fails, however it arrives. */
    for (size_t len = 15; len <= 17; len++)
        for (size_t cut = 0; cut <= len; cut++) {
            struct kube_lines lb;
            struct collected c = {0};
            memset(line, 'x', len);
            line[len] = '\n';
            kube_lines_init(&lb, 16);
            int rc1 = kube_lines_feed(&lb, line, cut, collect, &c);
            int rc2 = rc1 == 0 ? kube_lines_feed(&lb, line + cut, len + 1 - cut, collect, &c) : rc1;
            if (len <= 16) {
                assert_int_equal(rc1, 0);
                assert_int_equal(rc2, 0);
                assert_int_equal(c.lines, 1);
            } else {
                assert_int_equal(rc2, -MESH_ELIMIT);
                assert_int_equal(c.lines, 0);
                /* Refused for good: the stream must be dropped. */
                assert_int_equal(kube_lines_feed(&lb, "a\n", 2, collect, &c), -MESH_ELIMIT);
            }
            assert_true(lb.cap <= 16);
            kube_lines_free(&lb);
        }
    /* A callback error stops the feed there. */
    struct kube_lines lb;
    struct collected c = {.stop_after = 1};
    kube_lines_init(&lb, 16);
    assert_int_equal(kube_lines_feed(&lb, "a\nb\n", 4, collect, &c), -ECANCELED);
    assert_string_equal(c.out, "a|");
    kube_lines_free(&lb);
}

static void
test_event_decode(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int rc;
        enum kube_event_type type;
        const char *rv, *err;
    } cases[] = {
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"5\"}}}",
         0, KUBE_EV_ADDED, "5", NULL},
        {"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"6\"}}}",
         0, KUBE_EV_MODIFIED, "6", NULL},
        {"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"7\"}}}",
         0, KUBE_EV_DELETED, "7", NULL},
        {"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}", 0,
         KUBE_EV_BOOKMARK, "9", NULL},
        {"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}", 0, KUBE_EV_ERROR, "",
         NULL},
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}", -1, 0, NULL,
         "resourceVersion"},
        {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}", -1, 0, NULL,
         "metadata.name"},
        {"{\"type\":\"SYNC\",\"object\":{}}", -1, 0, NULL, "unknown"},
        {"{\"object\":{}}", -1, 0, NULL, "missing"},
        {"{\"type\":\"ADDED\",\"object\":[]}", -1, 0, NULL, "without an object"},
        {"{\"type\":\"ADDED\"", -1, 0, NULL, "not JSON"},
        {"{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}", -1, 0, NULL, "not JSON"},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
         -1, 0, NULL, "deeper"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kube_event ev;
        char err[160] = "";
        int rc = kube_event_decode(cases[i].line, strlen(cases[i].line), &ev, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("case %zu: rc %d (%s)", i, rc, err);
        if (rc == 0) {
            assert_int_equal(ev.type, cases[i].type);
            assert_string_equal(ev.rv, cases[i].rv);
            assert_non_null(ev.obj);
            kube_event_clear(&ev);
        } else if (strstr(err, cases[i].err) == NULL) {
            fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].err);
        }
    }
}

static void
test_depth(void **state)
{
    (void)state;
    char buf[512];
    for (int d = 98; d <= 102; d++) {
        memset(buf, '[', (size_t)d);
        memset(buf + d, ']', (size_t)d);
        assert_int_equal(kube_json_too_deep(buf, (size_t)d * 2), d > KUBE_MAX_DEPTH);
    }
    /* Brackets inside strings (escaped quotes too) do not count. */
    char brackets[301];
    memset(brackets, '[', 300);
    brackets[300] = '\0';
    snprintf(buf, sizeof(buf), "{\"a\":\"\\\"%s\"}", brackets);
    assert_false(kube_json_too_deep(buf, strlen(buf)));
}

static void
test_classify(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *body, *retry_after;
        enum kube_verdict v;
        unsigned wait_ms;
    } cases[] = {
        {200, NULL, NULL, KUBE_V_OK, 0},
        {410, NULL, NULL, KUBE_V_EXPIRED, 0},
        {0, "{\"code\":410,\"reason\":\"Expired\"}", NULL, KUBE_V_EXPIRED, 0},
        {0, "{\"code\":410,\"reason\":\"Gone\"}", NULL, KUBE_V_EXPIRED, 0},
        {500, "{\"reason\":\"Expired\"}", NULL, KUBE_V_EXPIRED, 0}, /* servers <= 1.17 */
        {504, "{\"reason\":\"Timeout\",\"details\":{\"causes\":[{\"reason\":"
              "\"ResourceVersionTooLarge\"}]}}",
         NULL, KUBE_V_TOO_LARGE, 0},
        {504, "{\"reason\":\"Timeout\",\"message\":\"Too large resource version: 9, current: 1\"}",
         NULL, KUBE_V_TOO_LARGE, 0}, /* 1.17.0-1.18.5: only the message says it */
        {504, "{\"reason\":\"Timeout\"}", NULL, KUBE_V_RETRY, 0},
        {429, NULL, "3", KUBE_V_THROTTLED, 3000},
        {429, "{\"details\":{\"retryAfterSeconds\":2}}", NULL, KUBE_V_THROTTLED, 2000},
        {429, NULL, NULL, KUBE_V_THROTTLED, 1000},
        {429, NULL, "junk", KUBE_V_THROTTLED, 1000},
        {429, NULL, "0", KUBE_V_THROTTLED, 1000},
        {429, NULL, "99999", KUBE_V_THROTTLED, 600000}, /* capped */
        {404, NULL, NULL, KUBE_V_ABSENT, 0},
        {500, NULL, NULL, KUBE_V_RETRY, 0},
        {403, NULL, NULL, KUBE_V_RETRY, 0},
        {0, "{\"code\":500}", NULL, KUBE_V_RETRY, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *b = cases[i].body != NULL ? json_loads(cases[i].body, 0, NULL) : NULL;
        unsigned w = 99;
        enum kube_verdict v = kube_classify(cases[i].status, b, cases[i].retry_after, &w);
        json_decref(b);
        if (v != cases[i].v || w != cases[i].wait_ms)
            fail_msg("case %zu: %s wait %u", i, kube_verdict_name(v), w);
    }
}

static void
test_plan(void **state)
{
    (void)state;
    static const struct {
        bool watching;
        enum kube_outcome o;
        enum kube_verdict v;
        enum kube_step step;
        bool backoff;
        unsigned wait;
    } cases[] = {
        /* LIST */
        {false, KUBE_OUT_STATUS, KUBE_V_EXPIRED, KUBE_STEP_LIST_FRESH, true, 0},
        {false, KUBE_OUT_STATUS, KUBE_V_TOO_LARGE, KUBE_STEP_LIST_FRESH, true, 0},
        {false, KUBE_OUT_STATUS, KUBE_V_THROTTLED, KUBE_STEP_SAME, false, 7},
        {false, KUBE_OUT_STATUS, KUBE_V_ABSENT, KUBE_STEP_ABSENT, false, 0},
        {false, KUBE_OUT_STATUS, KUBE_V_RETRY, KUBE_STEP_SAME, true, 0},
        {false, KUBE_OUT_CUT, KUBE_V_RETRY, KUBE_STEP_SAME, true, 0},
        {false, KUBE_OUT_BAD, KUBE_V_RETRY, KUBE_STEP_LIST, true, 0},
        /* WATCH */
        {true, KUBE_OUT_END, KUBE_V_OK, KUBE_STEP_WATCH, false, 0},
        {true, KUBE_OUT_SHORT, KUBE_V_OK, KUBE_STEP_LIST, true, 0},
        {true, KUBE_OUT_CUT, KUBE_V_RETRY, KUBE_STEP_WATCH, true, 0},
        {true, KUBE_OUT_BAD, KUBE_V_RETRY, KUBE_STEP_LIST, true, 0},
        {true, KUBE_OUT_EVENT, KUBE_V_EXPIRED, KUBE_STEP_LIST_FRESH, true, 0},
        {true, KUBE_OUT_EVENT, KUBE_V_RETRY, KUBE_STEP_LIST, true, 0},
        {true, KUBE_OUT_STATUS, KUBE_V_EXPIRED, KUBE_STEP_LIST_FRESH, true, 0},
        {true, KUBE_OUT_STATUS, KUBE_V_TOO_LARGE, KUBE_STEP_LIST_FRESH, true, 0},
        {true, KUBE_OUT_STATUS, KUBE_V_THROTTLED, KUBE_STEP_WATCH, false, 7},
        {true, KUBE_OUT_STATUS, KUBE_V_ABSENT, KUBE_STEP_LIST, true, 0},
        {true, KUBE_OUT_STATUS, KUBE_V_RETRY, KUBE_STEP_WATCH, true, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kube_plan p = kube_plan_next(cases[i].watching, cases[i].o, cases[i].v, 7);
        if (p.step != cases[i].step || p.backoff != cases[i].backoff ||
            (!p.backoff && p.wait_ms != cases[i].wait))
            fail_msg("case %zu: step %d backoff %d wait %u", i, p.step, p.backoff, p.wait_ms);
    }
}

static void
test_backoff(void **state)
{
    (void)state;
    struct kube_backoff b;
    kube_backoff_init(&b, KUBE_BACKOFF_MIN_MS, KUBE_BACKOFF_MAX_MS);
    /* No jitter: 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, then the 30 s cap. */
    static const uint64_t want[] = {800, 1600, 3200, 6400, 12800, 25600, 30000, 30000};
    uint64_t now = 1000;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(kube_backoff_next(&b, now, 0.0), want[i]);
        now += 1000;
    }
    /* Jitter adds up to the step again, never past the cap. */
    kube_backoff_init(&b, 800, 30000);
    assert_int_equal(kube_backoff_next(&b, now, 0.5), 1200);
    assert_int_equal(kube_backoff_next(&b, now, 0.999), 3198);
    for (int i = 0; i < 10; i++)
        assert_true(kube_backoff_next(&b, now, 0.999) <= 30000);
    /* Two minutes without a failure: back to the start. */
    now += KUBE_BACKOFF_RESET_MS - 1;
    assert_int_equal(kube_backoff_next(&b, now, 0.0), 30000);
    now += KUBE_BACKOFF_RESET_MS + 1;
    assert_int_equal(kube_backoff_next(&b, now, 0.0), 800);
    /* The PRNG stays in [0, 1). */
    for (int i = 0; i < 1000; i++) {
        double r = kube_rand();
        assert_true(r >= 0 && r < 1);
    }
}

static void
test_cache_sweep(void **state)
{
    (void)state;
    struct kube_cache c;
    char key[KUBE_KEY_MAX];
    kube_cache_init(&c);
    const char *objs[] = {
        "{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\"}}",
        "{\"metadata\":{\"name\":\"b\",\"namespace\":\"x\"}}",
        "{\"metadata\":{\"name\":\"node-1\"}}",
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *o = json_loads(objs[i], 0, NULL);
        assert_true(kube_obj_key(o, key));
        kube_cache_put(&c, key, o);
        json_decref(o);
    }
    assert_int_equal(kube_cache_size(&c), 3);
    json_t *bad = json_loads("{\"metadata\":{\"namespace\":\"x\"}}", 0, NULL);
    assert_false(kube_obj_key(bad, key));
    json_decref(bad);

    /* A relist that has only x/b: x/a and node-1 are taken out, with their last state. */
    kube_cache_list_begin(&c);
    kube_cache_mark(&c, "x/b");
    json_t **gone;
    size_t n = kube_cache_sweep(&c, &gone);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        const char *name =
            json_string_value(json_object_get(json_object_get(gone[i], "metadata"), "name"));
        assert_true(strcmp(name, "a") == 0 || strcmp(name, "node-1") == 0);
        json_decref(gone[i]);
    }
    free(gone);
    assert_int_equal(kube_cache_size(&c), 1);
    json_t *b = kube_cache_take(&c, "x/b");
    assert_non_null(b);
    json_decref(b);
    assert_null(kube_cache_take(&c, "x/b"));
    kube_cache_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_every_split), cmocka_unit_test(test_lines_cap),
        cmocka_unit_test(test_event_decode),      cmocka_unit_test(test_classify),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_plan),              cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_cache_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
