/* test_cni.c - lib/cni: the plugin's configuration (caps, versions, prevResult, settings)
 * and the plugin <-> agent messages (field rules, round trips, refusals). */
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
#include "cni/cni.h"

static int
parse(struct cni_conf *c, const char *s, char *err)
{
    return cni_conf_parse(c, s, strlen(s), err, 256);
}

static void
test_conf_full(void **state)
{
    struct cni_conf c;
    char err[256];
    (void)state;
    const char *s = "{\"cniVersion\":\"1.0.0\",\"name\":\"k8s\",\"type\":\"amesh-cni\","
                    "\"agentSocket\":\"/run/a.sock\",\"timeoutMs\":2500,\"logLevel\":\"debug\","
                    "\"excludeNamespaces\":[\"kube-system\",\"amesh\"],\"runtimeConfig\":{},"
                    "\"prevResult\":{\"cniVersion\":\"1.0.0\",\"ips\":["
                    "{\"address\":\"198.18.5.2/24\",\"interface\":2},"
                    "{\"address\":\"2001:db8:0::0005/64\"}]}}";
    assert_int_equal(parse(&c, s, err), CNI_OK);
    assert_string_equal(c.version, "1.0.0");
    assert_string_equal(c.name, "k8s");
    assert_string_equal(c.socket, "/run/a.sock");
    assert_int_equal(c.timeout_ms, 2500);
    assert_int_equal(c.log_level, 3);
    assert_true(cni_conf_excluded(&c, "amesh"));
    assert_false(cni_conf_excluded(&c, "demo"));
    assert_int_equal(c.n_ips, 2);
    assert_string_equal(c.ips[0], "198.18.5.2");
    assert_string_equal(c.ips[1], "2001:db8::5"); /* normalised */
    assert_non_null(c.prev_result);
    cni_conf_free(&c);
}

static void
test_conf_defaults(void **state)
{
    struct cni_conf c;
    char err[256];
    (void)state;
    assert_int_equal(parse(&c, "{\"cniVersion\":\"0.3.1\",\"name\":\"n\",\"type\":\"t\"}", err),
                     CNI_OK);
    assert_string_equal(c.socket, CNI_SOCKET_DEFAULT);
    assert_int_equal(c.timeout_ms, CNI_TIMEOUT_MS);
    assert_int_equal(c.log_level, -1);
    assert_null(c.prev_result);
    assert_int_equal(c.n_ips, 0);
    cni_conf_free(&c);
}

static void
test_conf_errors(void **state)
{
    static const struct {
        const char *in;
        int code;
        const char *msg;
    } cases[] = {
        {"", CNI_ERR_DECODE, "not JSON"},
        {"[]", CNI_ERR_DECODE, "not a JSON object"},
        {"{\"a\":1,\"a\":2}", CNI_ERR_DECODE, "not JSON"},
        {"{\"name\":\"n\",\"type\":\"t\"}", CNI_ERR_CONFIG, "cniVersion missing"},
        {"{\"cniVersion\":\"1.1.0\",\"name\":\"n\",\"type\":\"t\"}", CNI_ERR_VERSION,
         "not supported"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":3,\"type\":\"t\"}", CNI_ERR_CONFIG, "must be strings"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":[]}",
         CNI_ERR_CONFIG, "not an object"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":{\"ips\":{}}}",
         CNI_ERR_CONFIG, "not a list"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":{\"ips\":[{}]}}",
         CNI_ERR_CONFIG, "no address"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":{\"ips\":[{"
         "\"address\":\"1.2.3.4/33\"}]}}",
         CNI_ERR_CONFIG, "prefix length"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":{\"ips\":[{"
         "\"address\":\"1.2.3.4/\"}]}}",
         CNI_ERR_CONFIG, "prefix length"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"agentSocket\":\"rel.sock\"}",
         CNI_ERR_CONFIG, "absolute path"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"timeoutMs\":99}",
         CNI_ERR_CONFIG, "timeoutMs"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"timeoutMs\":\"5\"}",
         CNI_ERR_CONFIG, "timeoutMs"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"logLevel\":\"loud\"}",
         CNI_ERR_CONFIG, "logLevel"},
        {"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"excludeNamespaces\":[1]}",
         CNI_ERR_CONFIG, "not a string"},
    };
    struct cni_conf c;
    char err[256];
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int rc = parse(&c, cases[i].in, err);
        if (rc != cases[i].code || strstr(err, cases[i].msg) == NULL)
            fail_msg("case %zu: code %d (want %d), \"%s\" (want \"%s\")", i, rc, cases[i].code, err,
                     cases[i].msg);
        cni_conf_free(&c);
    }
}

static void
test_conf_caps(void **state)
{
    struct cni_conf c;
    char err[256];
    size_t n = CNI_STDIN_MAX + 1;
    char *big = malloc(n + 1);
    (void)state;
    /* Over the size cap, whatever it holds. */
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    assert_int_equal(cni_conf_parse(&c, big, n, err, sizeof(err)), CNI_ERR_DECODE);
    assert_non_null(strstr(err, "larger than"));
    cni_conf_free(&c);
    /* Depth: 32 is fine, 33 is not; brackets inside strings (escapes too) do not count. */
    char deep[200];
    int k = 0;
    k += snprintf(deep + k, sizeof(deep) - (size_t)k,
                  "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"x\":");
    for (int i = 0; i < 31; i++)
        deep[k++] = '[';
    for (int i = 0; i < 31; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    assert_true(cni_json_depth_ok(deep, (size_t)k, 32));
    assert_false(cni_json_depth_ok(deep, (size_t)k, 31));
    assert_true(cni_json_depth_ok("{\"a\":\"[[[[\\\"[[[[\"}", 18, 1));
    free(big);
    /* More than CNI_IPS_MAX addresses. */
    char ips[2048];
    k = snprintf(
        ips, sizeof(ips),
        "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"type\":\"t\",\"prevResult\":{\"ips\":[");
    for (int i = 0; i <= CNI_IPS_MAX; i++)
        k += snprintf(ips + k, sizeof(ips) - (size_t)k, "%s{\"address\":\"198.18.0.%d/24\"}",
                      i ? "," : "", i + 1);
    snprintf(ips + k, sizeof(ips) - (size_t)k, "]}}");
    assert_int_equal(parse(&c, ips, err), CNI_ERR_CONFIG);
    assert_non_null(strstr(err, "more than"));
    cni_conf_free(&c);
}

static void
test_req_roundtrip(void **state)
{
    struct cni_req r, back;
    cni_ip ips[2] = {"198.18.5.2", "2001:db8::5"};
    char err[256], buf[CNI_MSG_MAX];
    (void)state;
    assert_int_equal(cni_req_set(&r, CNI_CMD_ADD, "demo", "app-7f.x", "uid-1", "abc_1.2-3",
                                 "/var/run/netns/cni-1", ips, 2, err, sizeof(err)),
                     0);
    int n = cni_req_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(cni_req_decode(&back, buf, (size_t)n, err, sizeof(err)), 0);
    assert_memory_equal(&r, &back, sizeof(r));
    /* DEL may come without a netns. */
    assert_int_equal(
        cni_req_set(&r, CNI_CMD_DEL, "demo", "app", "", "c1", "", NULL, 0, err, sizeof(err)), 0);
    n = cni_req_encode(&r, buf, sizeof(buf));
    assert_int_equal(cni_req_decode(&back, buf, (size_t)n, err, sizeof(err)), 0);
    assert_int_equal(back.cmd, CNI_CMD_DEL);
}

static void
test_req_rules(void **state)
{
    struct cni_req r;
    char err[256];
    cni_ip bad[1] = {"1.2.3"};
    char longname[300];
    (void)state;
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
#define REFUSED(cmd, ns, name, uid, cid, netns)                                                    \
    assert_int_equal(cni_req_set(&r, cmd, ns, name, uid, cid, netns, NULL, 0, err, sizeof(err)),   \
                     -EINVAL)
    REFUSED(CNI_CMD_ADD, "Demo", "app", "", "c", "/n");
    REFUSED(CNI_CMD_ADD, "demo", "app/x", "", "c", "/n");
    REFUSED(CNI_CMD_ADD, "demo", longname, "", "c", "/n");
    REFUSED(CNI_CMD_ADD, "demo", "app", "u\"", "c", "/n");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "-c", "/n");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c;d", "/n");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c", "");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c", "rel/n");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c", "/run/../etc");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c", "/run/netns/..");
    REFUSED(CNI_CMD_ADD, "demo", "app", "", "c", "/run/net ns");
    REFUSED(CNI_CMD_CHECK, "demo", "app", "", "c", "");
    REFUSED(7, "demo", "app", "", "c", "/n");
    assert_int_equal(
        cni_req_set(&r, CNI_CMD_ADD, "demo", "app", "", "c", "/n", bad, 1, err, sizeof(err)),
        -EINVAL);
}

static void
test_req_decode_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "{}",
        "{\"v\":2,\"cmd\":\"ADD\"}",
        "{\"v\":1,\"cmd\":\"GC\",\"namespace\":\"a\",\"name\":\"b\",\"uid\":\"\",\"containerId\":"
        "\"c\",\"netns\":\"/n\",\"ips\":[]}",
        "{\"v\":1,\"cmd\":\"ADD\",\"namespace\":\"a\",\"name\":\"b\",\"uid\":\"\",\"containerId\":"
        "\"c\",\"netns\":\"/n\"}",
        "{\"v\":1,\"cmd\":\"ADD\",\"namespace\":\"a\",\"name\":\"b\",\"uid\":\"\",\"containerId\":"
        "\"c\",\"netns\":\"/n\",\"ips\":[1]}",
        "{\"v\":1,\"cmd\":\"ADD\",\"namespace\":\"a\",\"name\":\"b\",\"uid\":\"\",\"containerId\":"
        "\"c\",\"netns\":\"/n\",\"ips\":[[[[[]]]]]}",
        "{\"v\":1,\"cmd\":\"ADD\",\"namespace\":\"a\",\"name\":\"b\",\"uid\":\"\",\"containerId\":"
        "\"c\",\"ips\":[]}",
        "{\"v\":1,\"v\":1}",
    };
    struct cni_req r;
    struct cni_reply rep;
    char err[256];
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        if (cni_req_decode(&r, bad[i], strlen(bad[i]), err, sizeof(err)) != -MESH_EPROTO)
            fail_msg("case %zu decoded", i);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(cni_reply_decode(&rep, "{\"v\":1,\"verdict\":\"maybe\",\"message\":\"\"}", 39,
                                      err, sizeof(err)),
                     -MESH_EPROTO);
    char over[CNI_MSG_MAX + 2];
    memset(over, ' ', sizeof(over));
    over[0] = '{';
    over[sizeof(over) - 1] = '}';
    assert_int_equal(cni_req_decode(&r, over, sizeof(over), err, sizeof(err)), -MESH_EPROTO);
}

static void
test_reply_roundtrip(void **state)
{
    struct cni_reply r = {.verdict = CNI_V_RETRY}, back;
    char buf[CNI_MSG_MAX], err[256];
    (void)state;
    snprintf(r.message, sizeof(r.message), "no ztunnel \"connected\"");
    int n = cni_reply_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(cni_reply_decode(&back, buf, (size_t)n, err, sizeof(err)), 0);
    assert_int_equal(back.verdict, CNI_V_RETRY);
    assert_string_equal(back.message, r.message);
    /* A message with control bytes and non-ASCII is kept printable. */
    const char *odd = "{\"v\":1,\"verdict\":\"failed\",\"message\":\"a\\nb\\u00e9\"}";
    assert_int_equal(cni_reply_decode(&back, odd, strlen(odd), err, sizeof(err)), 0);
    assert_string_equal(back.message, "a?b??");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_full),           cmocka_unit_test(test_conf_defaults),
        cmocka_unit_test(test_conf_errors),         cmocka_unit_test(test_conf_caps),
        cmocka_unit_test(test_req_roundtrip),       cmocka_unit_test(test_req_rules),
        cmocka_unit_test(test_req_decode_refusals), cmocka_unit_test(test_reply_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
