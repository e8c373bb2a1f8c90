/*
 * policy.h - L4 authorization: Istio's istio.security.Authorization resource,
 * compiled once and evaluated per connection exactly as ztunnel does
 * (ztunnel src/rbac.rs Authorization::matches, src/state.rs assert_rbac).
 * One module for ztunnel (inbound HBONE, plaintext 15006, re-checks when
 * policies change) and, later, the waypoint's L4 checks.
 *
 * A struct policy is immutable and reference counted. A struct policy_set is
 * the set a proxy enforces: GLOBAL policies (indexed under namespace ""),
 * NAMESPACE policies by namespace, and every policy by "<namespace>/<name>"
 * for the names a workload lists. Sets are built, then shared read-only:
 * policy_check() takes no lock and allocates nothing on the usual path.
 */
#ifndef MESH_LIB_POLICY_H
#define MESH_LIB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"

struct json_t; /* jansson's json_t */

/* Caps on one policy, whichever form it comes in. */
#define POLICY_MAX_BYTES   (1024 * 1024) /* one encoded Authorization */
#define POLICY_MAX_RULES   1024          /* rules of a policy */
#define POLICY_MAX_CLAUSES 256           /* clauses of a rule */
#define POLICY_MAX_MATCHES 1024          /* matches of a clause */
#define POLICY_MAX_LIST    4096          /* entries of one field of one match */
#define POLICY_MAX_ENTRIES 65536         /* rules + clauses + matches + entries, all together */
#define POLICY_MAX_STRING  1024          /* bytes of a pattern or service account part */
#define POLICY_MAX_NAME    253           /* bytes of a name or namespace */
#define POLICY_KEY_MAX     (2 * POLICY_MAX_NAME + 2) /* "<namespace>/<name>" + NUL */

enum policy_scope {
    POLICY_SCOPE_GLOBAL = 0,
    POLICY_SCOPE_NAMESPACE = 1,
    POLICY_SCOPE_WORKLOAD_SELECTOR = 2,
};

enum policy_action {
    POLICY_ACTION_ALLOW = 0,
    POLICY_ACTION_DENY = 1,
};

enum policy_verdict {
    POLICY_ALLOW = 0,
    POLICY_DENY = 1,
};

struct policy;
struct policy_set;

/* A peer's SPIFFE identity, spiffe://<trust_domain>/ns/<ns>/sa/<sa>. NULL parts read as "". */
struct policy_peer {
    const char *trust_domain;
    const char *ns;
    const char *sa;
};

/*
 * One connection as policy sees it. The port and addresses are the real
 * application ones (after HBONE unwrapping, not 15008). IPv4-mapped IPv6
 * addresses are normalised here too, so callers cannot get it wrong.
 */
struct policy_request {
    const char *dst_ns;        /* namespace of the destination workload */
    char *const *dst_policies; /* its authorization_policies, "<ns>/<name>" */
    size_t n_dst_policies;
    const struct policy_peer *src_id; /* NULL: no identity (plaintext) */
    struct ipaddr src_ip;
    struct ipaddr dst_ip;
    uint16_t dst_port;
};

/* Static reasons (compare by pointer or print). */
extern const char POLICY_REASON_DENIED[];      /* "explicitly denied by" */
extern const char POLICY_REASON_NOT_ALLOWED[]; /* "allow policies exist, but none allowed" */
extern const char POLICY_REASON_ALLOWED[];     /* "allowed by" */
extern const char POLICY_REASON_NO_ALLOW[];    /* "no allow policies" */

/*
 * Why policy_check() decided as it did, for logs, metrics and the access log.
 * The dry-run half is the verdict the same connection would get if the
 * dry-run policies were enforced too (what ztunnel logs for them); it is
 * only meaningful when |dry_run| is set.
 */
struct policy_decision {
    enum policy_verdict verdict;
    const char *reason;          /* one of POLICY_REASON_* */
    char policy[POLICY_KEY_MAX]; /* "<ns>/<name>" that decided; "" for no allow policies */
    bool dry_run;                /* at least one dry-run policy applied */
    enum policy_verdict dry_run_verdict;
    const char *dry_run_reason;
    char dry_run_policy[POLICY_KEY_MAX];
    size_t n_unknown;    /* names in dst_policies not in the set (skipped) */
    const char *unknown; /* the first of them, borrowed from the request */
};

/*
 * Decodes |len| bytes of a packed istio.security.Authorization (an xDS
 * resource value) into a new policy (one reference, the caller's). Caps are
 * checked on the wire before anything is allocated. On failure |err| names
 * the policy and the field ("policy ns/name: rules[0].clauses[1].matches[0].
 * source_ips[2]: 5 bytes, ...") and *out is NULL. Returns 0, -MESH_EPROTO
 * (malformed or invalid) or -MESH_ELIMIT (a cap).
 */
int policy_decode(const uint8_t *data, size_t len, struct policy **out, char *err, size_t errlen);

/*
 * The same from the proto3 JSON form used in ztunnel's local config
 * ({name, namespace, scope: NAMESPACE, action: DENY, dryRun, rules: [{clauses:
 * [{matches: [{principals: [{exact: ...}], destinationPorts: [8080], ...}]}]}]}).
 * Field names in camelCase or as in the .proto; enums by name or number;
 * addresses as text: {address: "198.18.0.0", length: 16} (length required) or
 * "198.18.0.0/16" or "198.18.0.1" (a single address). Unknown fields are
 * errors. Returns 0, -MESH_ECONFIG or -MESH_ELIMIT, with |err| naming the field
 * as written.
 */
int policy_from_json(const struct json_t *j, struct policy **out, char *err, size_t errlen);

/* The policy in the JSON form above (new reference), for config dumps. */
struct json_t *policy_to_json(const struct policy *p);

/* References; a fresh policy has one. Both accept NULL. Counts are atomic. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

const char *policy_name(const struct policy *p);
const char *policy_namespace(const struct policy *p);
const char *policy_key(const struct policy *p); /* "<namespace>/<name>" */
enum policy_scope policy_scope(const struct policy *p);
enum policy_action policy_action(const struct policy *p);
bool policy_dry_run(const struct policy *p);

/* Whether |p|'s rules match |r| (action and dry run aside): reference 5.1's match semantics. */
bool policy_matches(const struct policy *p, const struct policy_request *r);

/*
 * Sets. A new or cloned set may be changed with add/remove until it is shared;
 * after that it is read-only (build the next one with policy_set_clone()).
 * Lookups and policy_check() are safe from any number of threads.
 */
struct policy_set *policy_set_new(void);
/* A set holding new references to |ps| in order; a later policy replaces an earlier one's key. */
struct policy_set *policy_set_build(struct policy *const *ps, size_t n);
/* A new set with the same policies (shared, not copied). */
struct policy_set *policy_set_clone(const struct policy_set *s);
/* Adds |p| (takes the caller's reference), replacing the policy with the same key. */
void policy_set_add(struct policy_set *s, struct policy *p);
/* Removes the policy with |key|; returns whether there was one. */
bool policy_set_remove(struct policy_set *s, const char *key);
struct policy_set *policy_set_ref(struct policy_set *s);
void policy_set_unref(struct policy_set *s);

size_t policy_set_count(const struct policy_set *s);
/* Policies in insertion order (a replaced policy keeps its place); NULL past the end. */
const struct policy *policy_set_at(const struct policy_set *s, size_t i);
const struct policy *policy_set_get(const struct policy_set *s, const char *key);

/*
 * Decides |r| against |s| (NULL: no policies), as ztunnel's assert_rbac:
 * applicable = NAMESPACE policies of r->dst_ns + GLOBAL policies + the
 * policies r->dst_policies names (unknown names skipped). Dry-run policies
 * never decide. Then: a matching DENY -> deny; no ALLOW -> allow; a matching
 * ALLOW -> allow; else deny. Fills |why| when not NULL.
 */
enum policy_verdict policy_check(const struct policy_set *s, const struct policy_request *r,
                                 struct policy_decision *why);

/*
 * ztunnel's text for a decision: "explicitly denied by: ns/name", "allow
 * policies exist, but none allowed", "allowed by: ns/name", "no allow
 * policies". |dry_run| picks the dry-run half. Returns |buf|.
 */
const char *policy_decision_str(const struct policy_decision *d, bool dry_run, char *buf,
                                size_t len);

#endif
