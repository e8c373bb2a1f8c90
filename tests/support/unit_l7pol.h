/*
 * unit_l7pol.h - amesh.waypoint.v1.Policy messages for tests, written the
 * way an AuthorizationPolicy is (Istio's strings: "x*" prefix, "*x" suffix,
 * "*" presence, paths with '{' a template), as meshd will convert them: one
 * rule, one clause, one match per spec. Everything is malloc'd, so
 * protobuf_c_message_free_unpacked(msg, NULL) frees a built message.
 */
#ifndef MESH_TESTS_UNIT_L7POL_H
#define MESH_TESTS_UNIT_L7POL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7policy/l7policy.h"
#include "waypoint.pb-c.h"

#define L7SPEC_LIST 6 /* entries of one list, NULL-terminated */

struct l7spec {
    const char *ns, *name;
    int action;          /* 0 ALLOW, 1 DENY */
    const char *gateway; /* a Gateway target, or NULL */
    const char *svc_ns;  /* a Service target, or NULL */
    const char *svc_host;
    bool no_rules;   /* rules: [] (never matches) */
    bool empty_rule; /* rules: [{}] (matches everything) */
    const char *paths[L7SPEC_LIST], *not_paths[L7SPEC_LIST];
    const char *methods[L7SPEC_LIST], *not_methods[L7SPEC_LIST];
    const char *hosts[L7SPEC_LIST], *not_hosts[L7SPEC_LIST];
    const char *req_principals[L7SPEC_LIST], *not_req_principals[L7SPEC_LIST];
    const char *header; /* one request.headers[...] condition */
    const char *values[L7SPEC_LIST], *not_values[L7SPEC_LIST];
    /* l4 */
    const char *principals[L7SPEC_LIST], *not_principals[L7SPEC_LIST];
    const char *namespaces[L7SPEC_LIST], *not_namespaces[L7SPEC_LIST];
    const char *source_ips[L7SPEC_LIST]; /* "a.b.c.d/n" or IPv6 */
    uint32_t ports[L7SPEC_LIST];         /* 0-terminated */
};

Istio__Security__StringMatch *l7spec_str(const char *istio);
Amesh__Waypoint__V1__PathMatch *l7spec_path(const char *istio);
Amesh__Waypoint__V1__Policy *l7spec_pb(const struct l7spec *s);
/* Packed bytes (malloc'd) of |pb|. */
uint8_t *l7spec_pack_pb(const Amesh__Waypoint__V1__Policy *pb, size_t *len);
uint8_t *l7spec_pack(const struct l7spec *s, size_t *len);
/* Decoded through l7pol_decode(); aborts the test with the error if it fails. */
struct l7pol *l7spec_decode(const struct l7spec *s);

#endif
