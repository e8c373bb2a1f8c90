/*
 * fuzz_policy.c - istio.security.Authorization values from xDS
 * (policy_decode), or, when the input is a JSON object, the local-config form
 * (policy_from_json). A policy that compiles is then dumped and read back
 * (the two must agree, field for field and on every sample request), put in
 * a set (replaced by its copy, cloned, removed) and checked against plaintext
 * and mTLS, IPv4, IPv6 and IPv4-mapped requests on edge ports.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
requests(const struct policy *p, const struct policy *q, const struct policy_set *s)
{
    static const char *const ips[] = {"10.1.0.1", "198.18.0.1", "::ffff:198.18.0.1", "2001:db8::1",
                                      "0.0.0.0"};
    static const uint16_t ports[] = {0, 80, 8080, 65535};
    struct policy_peer peer = {"cluster.local", "default", "default"};
    char *listed[] = {(char *)policy_key(p), "default/missing"};
    struct policy_decision d;
    char text[POLICY_KEY_MAX + 64];

    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        for (size_t k = 0; k < sizeof(ports) / sizeof(ports[0]); k++) {
            struct policy_request r = {.dst_ns = policy_namespace(p),
                                       .dst_policies = listed,
                                       .n_dst_policies = 2,
                                       .src_id = k % 2 ? &peer : NULL,
                                       .dst_port = ports[k]};
            ipaddr_parse(ips[i], &r.src_ip);
            ipaddr_parse(ips[(i + k) % 5], &r.dst_ip);
            if (policy_matches(p, &r) != policy_matches(q, &r))
                abort(); /* the dump does not mean what the policy means */
            policy_check(s, &r, &d);
            policy_decision_str(&d, false, text, sizeof(text));
            policy_decision_str(&d, true, text, sizeof(text));
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy *p, *q;
    char err[512];
    int rc;

    if (size > 0 && data[0] == '{') {
        json_t *j = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
        if (j == NULL)
            return 0;
        rc = policy_from_json(j, &p, err, sizeof(err));
        json_decref(j);
    } else {
        rc = policy_decode(data, size, &p, err, sizeof(err));
    }
    if (rc < 0)
        return 0;

    /* Dump and read back: the same policy. */
    json_t *d1 = policy_to_json(p);
    if (policy_from_json(d1, &q, err, sizeof(err)) < 0)
        abort();
    json_t *d2 = policy_to_json(q);
    if (!json_equal(d1, d2))
        abort();
    json_decref(d1);
    json_decref(d2);

    struct policy_set *s = policy_set_new();
    policy_set_add(s, policy_ref(p));
    policy_set_add(s, policy_ref(q)); /* same key: replaces */
    struct policy_set *c = policy_set_clone(s);
    requests(p, q, c);
    policy_set_remove(c, policy_key(p));
    requests(p, q, c);
    policy_set_unref(c);
    policy_set_unref(s);
    policy_unref(q);
    policy_unref(p);
    return 0;
}
