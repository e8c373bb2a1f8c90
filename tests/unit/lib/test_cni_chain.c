/* test_cni_chain.c - lib/cni's rewrite of the primary CNI configuration: our entry put last
 * in the chain (.conf converted, .conflist kept), left alone when already there, moved or
 * updated when not as wanted, taken out again; malformed files refused with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cni/cni.h"

static const char *const excl[] = {"kube-system"};
static const struct cni_chain_entry entry = {.socket = "/var/run/amesh/cni-plugin.sock",
                                             .log_level = "debug",
                                             .exclude = excl,
                                             .n_exclude = 1};
#define OURS                                                                                       \
    "{\"type\":\"amesh-cni\",\"agentSocket\":\"/var/run/amesh/cni-plugin.sock\","                  \
    "\"logLevel\":\"debug\",\"excludeNamespaces\":[\"kube-system\"]}"

struct row {
    const char *what;
    bool is_list;
    const char *in;
    enum cni_chain_rc rc;
    const char *want;    /* REWRITTEN: the JSON expected (compared parsed) */
    const char *err_has; /* ERROR: a part of the message */
};

static const struct row rows[] = {
    {".conf converted, ours appended", false,
     "{\"cniVersion\":\"0.3.1\",\"name\":\"ptp\",\"type\":\"ptp\",\"ipam\":{\"type\":\"host-"
     "local\"}}",
     CNI_CHAIN_REWRITTEN,
     "{\"cniVersion\":\"0.3.1\",\"name\":\"ptp\",\"plugins\":[{\"type\":\"ptp\",\"ipam\":"
     "{\"type\":\"host-local\"}}," OURS "]}",
     NULL},
    {".conflist: ours appended after the chain", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"},{\"type\":"
     "\"portmap\"}]}",
     CNI_CHAIN_REWRITTEN,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"},{\"type\":"
     "\"portmap\"}," OURS "]}",
     NULL},
    {"already last and equal: no change", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"}," OURS "]}",
     CNI_CHAIN_UNCHANGED, NULL, NULL},
    {"ours with other plugins after it: moved last", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"}," OURS
     ",{\"type\":\"portmap\"}]}",
     CNI_CHAIN_REWRITTEN,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"},{\"type\":"
     "\"portmap\"}," OURS "]}",
     NULL},
    {"ours with old settings: replaced", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"},{\"type\":"
     "\"amesh-cni\",\"agentSocket\":\"/old.sock\"}]}",
     CNI_CHAIN_REWRITTEN,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"}," OURS "]}",
     NULL},
    {"twice ours: once", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[" OURS ",{\"type\":\"bridge\"}," OURS
     "]}",
     CNI_CHAIN_REWRITTEN,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"}," OURS "]}",
     NULL},
    {"malformed: not JSON", true, "{\"cniVersion\":\"1.0.0\",", CNI_CHAIN_ERROR, NULL, "not JSON"},
    {"malformed: duplicate key", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"a\",\"name\":\"b\",\"plugins\":[{\"type\":\"x\"}]}",
     CNI_CHAIN_ERROR, NULL, "not JSON"},
    {"malformed: a list", true, "[1]", CNI_CHAIN_ERROR, NULL, "not a JSON object"},
    {"malformed: plugins not a list", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":{}}", CNI_CHAIN_ERROR, NULL,
     "plugins missing or not a list"},
    {"malformed: a plugin without type", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"a\"},{\"ty\":1}]}",
     CNI_CHAIN_ERROR, NULL, "plugins[1] is not an object with a string type"},
    {"malformed: no name", true, "{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"a\"}]}",
     CNI_CHAIN_ERROR, NULL, "name missing"},
    {"version amesh-cni cannot chain from", true,
     "{\"cniVersion\":\"0.2.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"a\"}]}", CNI_CHAIN_ERROR,
     NULL, "cniVersion \"0.2.0\""},
    {".conf without type", false, "{\"cniVersion\":\"1.0.0\",\"name\":\"k\"}", CNI_CHAIN_ERROR,
     NULL, "type missing"},
    {".conf that is a conflist", false,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"type\":\"x\",\"plugins\":[]}", CNI_CHAIN_ERROR,
     NULL, "wrong name"},
    {"nothing but ours", true,
     "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"amesh-cni\"}]}",
     CNI_CHAIN_ERROR, NULL, "no plugin other than amesh-cni"},
};

static void
assert_same_json(const char *got, const char *want)
{
    json_t *a = json_loads(got, 0, NULL), *b = json_loads(want, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    if (!json_equal(a, b))
        fail_msg("got %s\nwant %s", got, want);
    json_decref(a);
    json_decref(b);
}

static void
test_insert_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *r = &rows[i];
        char err[256] = "", *out = NULL;
        size_t outlen = 0;
        print_message("%s\n", r->what);
        enum cni_chain_rc rc = cni_chain_insert(r->in, strlen(r->in), r->is_list, &entry, &out,
                                                &outlen, err, sizeof(err));
        assert_int_equal(rc, r->rc);
        if (rc == CNI_CHAIN_REWRITTEN) {
            assert_non_null(out);
            assert_int_equal(strlen(out), outlen);
            assert_int_equal(out[outlen - 1], '\n');
            assert_same_json(out, r->want);
            /* A second pass over what we wrote changes nothing: no rewrite loop. */
            char *again = NULL;
            size_t alen;
            assert_int_equal(
                cni_chain_insert(out, outlen, true, &entry, &again, &alen, err, sizeof(err)),
                CNI_CHAIN_UNCHANGED);
            assert_null(again);
        } else {
            assert_null(out);
        }
        if (rc == CNI_CHAIN_ERROR && strstr(err, r->err_has) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\"", r->what, err, r->err_has);
        free(out);
    }
}

static void
test_key_order_kept(void **state)
{
    (void)state;
    const char *in = "{\"name\":\"k\",\"zz\":1,\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":"
                     "\"ptp\",\"b\":1,\"a\":2}],\"aa\":true}";
    char err[256], *out;
    size_t len;
    assert_int_equal(cni_chain_insert(in, strlen(in), true, &entry, &out, &len, err, sizeof(err)),
                     CNI_CHAIN_REWRITTEN);
    /* The primary's own fields stay where its installer wrote them. */
    const char *n = strstr(out, "\"name\""), *z = strstr(out, "\"zz\""),
               *v = strstr(out, "\"cniVersion\""), *b = strstr(out, "\"b\""),
               *a = strstr(out, "\"a\""), *aa = strstr(out, "\"aa\"");
    assert_true(n && z && v && b && a && aa);
    assert_true(n < z && z < v && b < a && a < aa);
    free(out);
}

static void
test_remove(void **state)
{
    (void)state;
    const char *in =
        "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"bridge\"}," OURS "]}";
    const char *none = "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[{\"type\":"
                       "\"bridge\"}]}";
    char err[256], *out;
    size_t len;
    assert_int_equal(cni_chain_remove(in, strlen(in), &out, &len, err, sizeof(err)),
                     CNI_CHAIN_REWRITTEN);
    assert_same_json(out, none);
    free(out);
    assert_int_equal(cni_chain_remove(none, strlen(none), &out, &len, err, sizeof(err)),
                     CNI_CHAIN_UNCHANGED);
    assert_null(out);
    /* A primary that moved to a version we do not speak still lets us out. */
    const char *newer = "{\"cniVersion\":\"1.1.0\",\"name\":\"k\",\"plugins\":[{\"type\":\"b\"},"
                        "{\"type\":\"amesh-cni\"}]}";
    assert_int_equal(cni_chain_remove(newer, strlen(newer), &out, &len, err, sizeof(err)),
                     CNI_CHAIN_REWRITTEN);
    free(out);
    assert_int_equal(cni_chain_remove("{", 1, &out, &len, err, sizeof(err)), CNI_CHAIN_ERROR);
    assert_non_null(strstr(err, "not JSON"));
}

static void
test_caps(void **state)
{
    (void)state;
    char err[256], *out;
    size_t len, n = CNI_CONFFILE_MAX + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    assert_int_equal(cni_chain_insert(big, n, true, &entry, &out, &len, err, sizeof(err)),
                     CNI_CHAIN_ERROR);
    assert_non_null(strstr(err, "larger than"));
    free(big);
    char deep[200];
    size_t d = 0;
    for (int i = 0; i < 40; i++)
        deep[d++] = '[';
    for (int i = 0; i < 40; i++)
        deep[d++] = ']';
    assert_int_equal(cni_chain_insert(deep, d, true, &entry, &out, &len, err, sizeof(err)),
                     CNI_CHAIN_ERROR);
    assert_non_null(strstr(err, "nested deeper"));
    /* A chain of CNI_PLUGINS_MAX: no room for ours. */
    size_t cap = CNI_PLUGINS_MAX * 20 + 100;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"cniVersion\":\"1.0.0\",\"name\":\"k\",\"plugins\":[");
    for (int i = 0; i < CNI_PLUGINS_MAX; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s{\"type\":\"p%d\"}", i ? "," : "", i);
    o += (size_t)snprintf(s + o, cap - o, "]}");
    assert_int_equal(cni_chain_insert(s, o, true, &entry, &out, &len, err, sizeof(err)),
                     CNI_CHAIN_ERROR);
    assert_non_null(strstr(err, "more than"));
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_table),
        cmocka_unit_test(test_key_order_kept),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
