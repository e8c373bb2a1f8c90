/*
 * test_metrics.c - the Prometheus registry: exposition text (golden), label
 * value escaping and UTF-8 repair (table), the cap on label sets and its
 * overflow counter, lookups across table growth.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

static const char *const two[] = {"reporter", "flag"};

static void
test_render_golden(void **state)
{
    (void)state;
    struct metrics *r = metrics_new();
    struct metric *up =
        metrics_add(r, METRIC_GAUGE, "up", "Line one\nand a \\ backslash.", NULL, 0, 0);
    struct metric *c = metrics_add(r, METRIC_COUNTER, "x_bytes_total", "Bytes.", two, 2, 0);
    struct metric *empty = metrics_add(r, METRIC_COUNTER, "never_total", "Never set.", two, 2, 0);
    (void)empty;

    metric_set(up, NULL, 1);
    /* Added out of order: rendering sorts by label values, label by label. */
    metric_add(c, (const char *const[]){"source", "-"}, 5000);
    metric_add(c, (const char *const[]){"destination", "DENY"}, 0.5);
    metric_add(c, (const char *const[]){"destination", "-"}, 1e20);
    metric_add(c, (const char *const[]){"destination", "-"}, 1e20);
    metric_add(c, (const char *const[]){"source", "-"}, 1);

    char *text = metrics_render(r);
    const char *want = "# HELP up Line one\\nand a \\\\ backslash.\n"
                       "# TYPE up gauge\n"
                       "up 1\n"
                       "# HELP x_bytes_total Bytes.\n"
                       "# TYPE x_bytes_total counter\n"
                       "x_bytes_total{reporter=\"destination\",flag=\"-\"} 2e+20\n"
                       "x_bytes_total{reporter=\"destination\",flag=\"DENY\"} 0.5\n"
                       "x_bytes_total{reporter=\"source\",flag=\"-\"} 5001\n"
                       "# HELP never_total Never set.\n"
                       "# TYPE never_total counter\n"
                       "# HELP " METRICS_OVERFLOW_NAME " Updates dropped because a metric already "
                       "had its maximum number of label sets.\n"
                       "# TYPE " METRICS_OVERFLOW_NAME " counter\n";
    assert_string_equal(text, want);
    free(text);
    metrics_free(r);
}

static void
test_values(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *out;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {42, "42"},
        {-7, "-7"},
        {9007199254740991.0, "9007199254740991"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {123.456, "123.456"},
        {1e-9, "1e-09"},
    };
    struct metrics *r = metrics_new();
    struct metric *g = metrics_add(r, METRIC_GAUGE, "g", "g", (const char *const[]){"i"}, 1, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char idx[8];
        snprintf(idx, sizeof(idx), "%02zu", i);
        metric_set(g, (const char *const[]){idx}, cases[i].v);
    }
    metric_set(g, (const char *const[]){"nan"}, NAN);
    metric_set(g, (const char *const[]){"pinf"}, INFINITY);
    metric_set(g, (const char *const[]){"ninf"}, -INFINITY);
    char *text = metrics_render(r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\ng{i=\"%02zu\"} %s\n", i, cases[i].out);
        if (strstr(text, line) == NULL)
            fail_msg("value case %zu: %s not in\n%s", i, line, text);
    }
    assert_non_null(strstr(text, "g{i=\"nan\"} NaN\n"));
    assert_non_null(strstr(text, "g{i=\"pinf\"} +Inf\n"));
    assert_non_null(strstr(text, "g{i=\"ninf\"} -Inf\n"));
    free(text);
    metrics_free(r);
}

/* Label values as given -> as rendered between the quotes. */
static const struct {
    const char *name;
    const char *in;
    const char *out;
} label_cases[] = {
    {"plain", "spiffe://cluster.local/ns/default/sa/client",
     "spiffe://cluster.local/ns/default/sa/client"},
    {"NULL reads as empty", NULL, ""},
    {"empty", "", ""},
    {"quote", "a\"b", "a\\\"b"},
    {"backslash", "a\\b", "a\\\\b"},
    {"newline", "a\nb", "a\\nb"},
    {"all three", "\\\"\n", "\\\\\\\"\\n"},
    {"tab and CR kept", "a\tb\rc", "a\tb\rc"},
    {"braces and comma", "x{a=\"1\"},y", "x{a=\\\"1\\\"},y"},
    {"valid 2-byte", "caf\xC3\xA9", "caf\xC3\xA9"},
    {"valid 3-byte", "\xE2\x82\xAC", "\xE2\x82\xAC"},
    {"valid 4-byte", "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
    {"stray continuation", "a\x80z", "a\xEF\xBF\xBDz"},
    {"invalid lead", "\xFF", "\xEF\xBF\xBD"},
    {"overlong slash", "\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"overlong 3-byte", "\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"surrogate", "\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"past U+10FFFF", "\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"truncated sequence", "ok\xE2\x82", "ok\xEF\xBF\xBD\xEF\xBF\xBD"},
};

static void
test_label_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(label_cases) / sizeof(label_cases[0]); i++) {
        struct metrics *r = metrics_new();
        struct metric *m =
            metrics_add(r, METRIC_COUNTER, "c_total", "c", (const char *const[]){"v"}, 1, 0);
        metric_add(m, (const char *const[]){label_cases[i].in}, 1);
        char *text = metrics_render(r);
        char want[256];
        snprintf(want, sizeof(want), "\nc_total{v=\"%s\"} 1\n", label_cases[i].out);
        if (strstr(text, want) == NULL)
            fail_msg("label case %zu (%s): want %s in\n%s", i, label_cases[i].name, want, text);
        free(text);
        metrics_free(r);
    }
}

static void
test_value_length_cap(void **state)
{
    (void)state;
    char in[METRICS_VALUE_MAX + 64];
    struct metrics *r = metrics_new();
    struct metric *m =
        metrics_add(r, METRIC_COUNTER, "c_total", "c", (const char *const[]){"v"}, 1, 0);

    /* 511 bytes then a 2-byte character: the character does not fit whole and is dropped. */
    memset(in, 'a', METRICS_VALUE_MAX - 1);
    memcpy(in + METRICS_VALUE_MAX - 1, "\xC3\xA9tail", 7);
    struct metric_series *s = metric_series(m, (const char *const[]){in});
    assert_int_equal(strlen(metric_series_labels(s)[0]), METRICS_VALUE_MAX - 1);

    /* Two long values that differ only past the cap are one series. */
    memset(in, 'b', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    struct metric_series *s1 = metric_series(m, (const char *const[]){in});
    in[sizeof(in) - 2] = 'c';
    struct metric_series *s2 = metric_series(m, (const char *const[]){in});
    assert_ptr_equal(s1, s2);
    assert_int_equal(strlen(metric_series_labels(s1)[0]), METRICS_VALUE_MAX);
    assert_int_equal(metric_n_series(m), 2);
    metrics_free(r);
}

static void
test_cap_and_overflow(void **state)
{
    (void)state;
    struct metrics *r = metrics_new();
    struct metric *m = metrics_add(r, METRIC_COUNTER, "conn_total", "c", two, 2, 3);
    struct metric *other = metrics_add(r, METRIC_COUNTER, "other_total", "o", two, 2, 3);
    char peer[32];

    /* A peer inventing label values: only 3 series are ever kept. */
    for (int i = 0; i < 1000; i++) {
        snprintf(peer, sizeof(peer), "peer-%04d", i);
        metric_add(m, (const char *const[]){"source", peer}, 1);
    }
    assert_int_equal(metric_n_series(m), 3);
    assert_int_equal(metric_overflows(m), 997);
    assert_null(metric_series(m, (const char *const[]){"source", "peer-0999"}));
    assert_int_equal(metric_overflows(m), 998);
    /* Series that exist keep counting. */
    struct metric_series *s = metric_series(m, (const char *const[]){"source", "peer-0001"});
    assert_non_null(s);
    metric_series_add(s, 41);
    assert_true(metric_series_value(s) == 42);
    /* NULL series (lost to the cap) are accepted everywhere. */
    metric_series_add(NULL, 1);
    metric_series_set(NULL, 1);
    assert_true(metric_series_value(NULL) == 0);
    /* The other family is unaffected. */
    metric_add(other, (const char *const[]){"a", "b"}, 1);
    assert_int_equal(metric_overflows(other), 0);

    char *text = metrics_render(r);
    assert_non_null(strstr(text, "\n" METRICS_OVERFLOW_NAME "{metric=\"conn_total\"} 998\n"));
    assert_null(strstr(text, "{metric=\"other_total\"}"));
    assert_non_null(strstr(text, "conn_total{reporter=\"source\",flag=\"peer-0001\"} 42\n"));
    assert_null(strstr(text, "peer-0003"));
    free(text);

    /* An unlabelled family is exactly one series. */
    struct metric *u = metrics_add(r, METRIC_GAUGE, "u", "u", NULL, 0, 0);
    assert_ptr_equal(metric_series(u, NULL), metric_series(u, NULL));
    assert_int_equal(metric_n_series(u), 1);
    metrics_free(r);
}

static void
test_identity_and_growth(void **state)
{
    (void)state;
    struct metrics *r = metrics_new();
    struct metric *m = metrics_add(r, METRIC_COUNTER, "g_total", "g", two, 2, 100000);
    struct metric_series *first[5000];
    char a[16], b[16];

    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof(a), "a%d", i % 71);
        snprintf(b, sizeof(b), "b%d", i);
        first[i] = metric_series(m, (const char *const[]){a, b});
        metric_series_add(first[i], i);
    }
    assert_int_equal(metric_n_series(m), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(a, sizeof(a), "a%d", i % 71);
        snprintf(b, sizeof(b), "b%d", i);
        struct metric_series *s = metric_series(m, (const char *const[]){a, b});
        assert_ptr_equal(s, first[i]);
        assert_string_equal(metric_series_labels(s)[0], a);
        assert_string_equal(metric_series_labels(s)[1], b);
        assert_true(metric_series_value(s) == i);
    }
    /* NULL and "" are the same value; ("a","") differs from ("","a"). */
    assert_ptr_equal(metric_series(m, (const char *const[]){NULL, "x"}),
                     metric_series(m, (const char *const[]){"", "x"}));
    assert_ptr_not_equal(metric_series(m, (const char *const[]){"a", ""}),
                         metric_series(m, (const char *const[]){"", "a"}));

    /* Rendered lines come out sorted. */
    char *text = metrics_render(r);
    size_t lines = 0;
    for (const char *q = text; *q != '\0'; q++)
        lines += *q == '\n';
    assert_int_equal(lines, 5003 + 4);
    char *p = strstr(text, "g_total{");
    char *last = NULL;
    while (p != NULL) {
        char *end = strchr(p, '}');
        if (last != NULL)
            assert_true(strncmp(last, p, (size_t)(end - p)) <= 0);
        last = p;
        p = strstr(end, "\ng_total{");
        if (p != NULL)
            p++;
    }
    free(text);
    metrics_free(r);
}

/* Histograms: cumulative buckets with le last, _sum and _count; bounds on the edge; the cap. */
static void
test_histogram(void **state)
{
    (void)state;
    static const double b[] = {0.5, 1, 10};
    struct metrics *r = metrics_new();
    struct metric *h = metrics_add_histogram(r, "d_ms", "Duration.", two, 2, 2, b, 3);
    struct metric *nl = metrics_add_histogram(r, "plain", "No labels.", NULL, 0, 0, b, 1);
    const char *const x[] = {"waypoint", "-"}, *const y[] = {"waypoint", "UH"};

    metric_observe(h, x, 1);    /* on a bound: le="1" counts it */
    metric_observe(h, x, 0.25);
    metric_observe(h, x, 11);   /* only +Inf */
    metric_observe(h, y, 10);
    metric_observe(h, (const char *const[]){"waypoint", "DC"}, 3); /* over the cap of 2 */
    metric_observe(nl, NULL, 7);
    struct metric_series *s = metric_series(h, x);
    assert_int_equal(metric_series_count(s), 3);
    assert_true(metric_series_value(s) == 12.25);
    assert_int_equal(metric_overflows(h), 1);

    char *text = metrics_render(r);
    const char *want =
        "# HELP d_ms Duration.\n"
        "# TYPE d_ms histogram\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"-\",le=\"0.5\"} 1\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"-\",le=\"1\"} 2\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"-\",le=\"10\"} 2\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"-\",le=\"+Inf\"} 3\n"
        "d_ms_sum{reporter=\"waypoint\",flag=\"-\"} 12.25\n"
        "d_ms_count{reporter=\"waypoint\",flag=\"-\"} 3\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"UH\",le=\"0.5\"} 0\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"UH\",le=\"1\"} 0\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"UH\",le=\"10\"} 1\n"
        "d_ms_bucket{reporter=\"waypoint\",flag=\"UH\",le=\"+Inf\"} 1\n"
        "d_ms_sum{reporter=\"waypoint\",flag=\"UH\"} 10\n"
        "d_ms_count{reporter=\"waypoint\",flag=\"UH\"} 1\n"
        "# HELP plain No labels.\n"
        "# TYPE plain histogram\n"
        "plain_bucket{le=\"0.5\"} 0\n"
        "plain_bucket{le=\"+Inf\"} 1\n"
        "plain_sum 7\n"
        "plain_count 1\n"
        "# HELP " METRICS_OVERFLOW_NAME " Updates dropped because a metric already "
        "had its maximum number of label sets.\n"
        "# TYPE " METRICS_OVERFLOW_NAME " counter\n" METRICS_OVERFLOW_NAME "{metric=\"d_ms\"} 1\n";
    assert_string_equal(text, want);
    free(text);
    /* Envoy's bounds render as Envoy's exporter writes them. */
    struct metric *e = metrics_add_histogram(r, "e", "", NULL, 0, 0, metrics_envoy_buckets,
                                             METRICS_ENVOY_N_BUCKETS);
    metric_observe(e, NULL, 3600000);
    text = metrics_render(r);
    assert_non_null(strstr(text, "e_bucket{le=\"0.5\"} 0\ne_bucket{le=\"1\"} 0\n"));
    assert_non_null(strstr(text, "e_bucket{le=\"1800000\"} 0\ne_bucket{le=\"3600000\"} 1\n"
                                 "e_bucket{le=\"+Inf\"} 1\ne_sum 3600000\ne_count 1\n"));
    free(text);
    metrics_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_golden),    cmocka_unit_test(test_values),
        cmocka_unit_test(test_label_values),     cmocka_unit_test(test_value_length_cap),
        cmocka_unit_test(test_cap_and_overflow), cmocka_unit_test(test_identity_and_growth),
        cmocka_unit_test(test_histogram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
