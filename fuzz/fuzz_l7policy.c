/*
 * fuzz_l7policy.c - amesh.waypoint.v1.Policy values from xDS (l7pol_decode).
 * A policy that decodes is dumped, put in a set (alone, then replaced by
 * itself with l7pol_set_update, then beside two renamed copies of itself,
 * so targets hold several policies) and checked against requests that vary
 * identity, addresses, method, host, path and headers: l7pol_check() (which
 * uses the set's target index) must decide as the definition does (every
 * policy that applies, DENY then ALLOW in key order), naming the same policy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "l7policy/l7policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hdrs[][2] = {
    {"x-a", "1"}, {"x-debug", "true"}, {"x-a", ""}, {"content-type", "application/json"}};

static bool
header(void *arg, const char *name, size_t i, const char **v, size_t *n)
{
    size_t limit = *(const size_t *)arg;
    for (size_t k = 0; k < limit; k++) {
        if (strcasecmp(hdrs[k][0], name) != 0)
            continue;
        if (i-- == 0) {
            *v = hdrs[k][1];
            *n = strlen(hdrs[k][1]);
            return true;
        }
    }
    return false;
}

/* The definition, without the target index. */
static void
brute(const struct l7pol_set *s, const struct l7pol_request *r, bool *allow, const char **by)
{
    bool any_allow = false;
    *by = "";
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < l7pol_set_count(s); i++) {
            const struct l7pol *p = l7pol_set_at(s, i);
            if ((int)l7pol_action(p) != (pass == 0 ? L7POL_DENY : L7POL_ALLOW) ||
                !l7pol_applies(p, r))
                continue;
            any_allow |= pass == 1;
            if (l7pol_matches(p, r)) {
                *allow = pass == 1;
                *by = l7pol_key(p);
                return;
            }
        }
    }
    *allow = !any_allow;
}

static void
requests(const struct l7pol *p, const struct l7pol_set *s)
{
    static const char *const methods[] = {"GET", "POST", "get", ""};
    static const char *const hosts[] = {"echo.demo.svc.cluster.local", "ECHO.demo:80", ""};
    static const char *const paths[] = {"/", "/admin", "/api/v1/items/x", "/a/b/c/d/e/f"};
    static const char *const ips[] = {"198.18.0.1", "2001:db8::1", "::ffff:198.18.9.9"};
    const char *svc_ns = "demo", *svc_host = "echo.demo.svc.cluster.local";
    struct policy_peer peer = {"cluster.local", "demo", "default"};
    struct l7pol_decision d;

    for (size_t i = 0; i < 4 * 3 * 4; i++) {
        size_t nh = i % 5;
        struct l7pol_request r = {
            .waypoint_ns = i % 2 ? "demo" : "other",
            .waypoint_name = "waypoint",
            .service_ns = i % 3 ? svc_ns : NULL,
            .service_host = svc_host,
            .client = i % 4 ? &peer : NULL,
            .dst_port = (uint16_t)(i % 2 ? 80 : 8080),
            .method = methods[i % 4],
            .method_len = strlen(methods[i % 4]),
            .host = hosts[i % 3],
            .host_len = strlen(hosts[i % 3]),
            .path = paths[(i / 3) % 4],
            .path_len = strlen(paths[(i / 3) % 4]),
            .header = header,
            .header_arg = &nh,
            .request_principal = i % 7 == 0 ? "issuer/subject" : NULL,
        };
        ipaddr_parse(ips[i % 3], &r.src_ip);
        ipaddr_parse(ips[(i + 1) % 3], &r.dst_ip);
        (void)l7pol_matches(p, &r);
        bool want;
        const char *by;
        brute(s, &r, &want, &by);
        if ((l7pol_check(s, &r, &d) == L7POL_ALLOWED) != want || strcmp(d.policy, by) != 0)
            abort(); /* the index decided otherwise than the definition */
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct l7pol *p;
    char err[512];

    if (l7pol_decode(data, size, &p, err, sizeof(err)) < 0) {
        if (err[0] == '\0')
            abort(); /* every refusal says why */
        return 0;
    }
    json_t *j = l7pol_to_json(p);
    char *text = json_dumps(j, JSON_COMPACT);
    if (text == NULL)
        abort();
    free(text);
    json_decref(j);

    struct l7pol *ps[1] = {p};
    struct l7pol_set *s1 = l7pol_set_build(ps, 1);
    struct l7pol_set *s2 = l7pol_set_update(s1, ps, 1, NULL, 0);
    if (l7pol_set_count(s2) != 1 || l7pol_set_get(s2, l7pol_key(p)) != p)
        abort();
    requests(p, s2);
    /* Two renamed copies of the same bytes: more than one policy per target. */
    struct l7pol *more[2] = {NULL, NULL};
    for (int k = 0; k < 2 && size < 4096; k++) {
        uint8_t *b = malloc(size + 16);
        memcpy(b, data, size);
        /* A later name field wins in protobuf: "c0" / "c1". */
        b[size] = 0x0a;
        b[size + 1] = 2;
        b[size + 2] = 'c';
        b[size + 3] = (uint8_t)('0' + k);
        if (l7pol_decode(b, size + 4, &more[k], err, sizeof(err)) < 0)
            more[k] = NULL;
        free(b);
    }
    struct l7pol *all[3] = {p, more[0], more[1]};
    struct l7pol_set *s4 = l7pol_set_build(all, more[0] && more[1] ? 3 : 1);
    requests(p, s4);
    l7pol_set_unref(s4);
    l7pol_unref(more[0]);
    l7pol_unref(more[1]);
    const char *key = l7pol_key(p);
    struct l7pol_set *s3 = l7pol_set_update(s2, NULL, 0, &key, 1);
    if (l7pol_set_count(s3) != 0)
        abort();
    j = l7pol_set_to_json(s3);
    json_decref(j);
    l7pol_set_unref(s3);
    l7pol_set_unref(s2);
    l7pol_set_unref(s1);
    l7pol_unref(p);
    return 0;
}
