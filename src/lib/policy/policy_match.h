/*
 * policy_match.h - one istio.security.Match compiled on its own, for rule
 * languages that carry L4 conditions inside their own rules (the waypoint's
 * L7 authorization, lib/l7policy: PolicyMatch.l4). Validation, caps, error
 * texts and match semantics are exactly those of a Match inside a policy
 * (policy.c's header comment): principals, namespaces, service accounts,
 * source and destination IP blocks, destination ports, each with not_*.
 */
#ifndef MESH_LIB_POLICY_MATCH_H
#define MESH_LIB_POLICY_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "authorization.pb-c.h"
#include "policy/policy.h"

struct json_t;

/*
 * A request as the matchers want it, built once per check and used for any
 * number of matches; allocation-free unless the principal is very long. The
 * fields are private to lib/policy; the struct is here so it can live on the
 * caller's stack.
 */
struct policy_ctx {
    struct ipaddr src, dst; /* IPv4-mapped IPv6 normalised to IPv4 */
    uint16_t port;
    bool has_id;
    const char *ns; /* "" without identity */
    size_t ns_len;
    const char *sa;
    const char *principal; /* "<td>/ns/<ns>/sa/<sa>" ("spiffe://" stripped); "" without identity */
    size_t principal_len;
    char *heap; /* the principal when it does not fit |buf| */
    char buf[640];
};
void policy_ctx_init(struct policy_ctx *c, const struct policy_request *r);
void policy_ctx_done(struct policy_ctx *c);

struct policy_match; /* owns its memory */

/*
 * Validates and compiles |pb|. |what| and |path| prefix errors as in
 * policy_decode() ("policy ns/name: rules[0]...l4.principals[2]: ...").
 * |*entries| is the caller's running count of list entries, checked against
 * POLICY_MAX_ENTRIES and advanced. Returns 0, -MESH_EPROTO or -MESH_ELIMIT.
 */
int policy_match_compile(const Istio__Security__Match *pb, const char *what, const char *path,
                         size_t *entries, struct policy_match **out, char *err, size_t errlen);
void policy_match_free(struct policy_match *m);
/* No list populated (inside a policy such a Match never matches). */
bool policy_match_empty(const struct policy_match *m);
/* Every populated list holds for |c| (an empty match holds: callers decide what empty means). */
bool policy_match_eval(const struct policy_match *m, const struct policy_ctx *c);
/* The match in policy_from_json()'s form (camelCase lists), new reference. */
struct json_t *policy_match_to_json(const struct policy_match *m);

#endif
