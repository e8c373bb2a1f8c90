/*
 * l7policy.h - the waypoint's L7 authorization: amesh.waypoint.v1.Policy
 * resources (an Istio AuthorizationPolicy with targetRefs, as meshd serves
 * it to waypoints; proto/waypoint.proto), decoded, validated, compiled into
 * an immutable set and evaluated per request. Sans I/O: no sockets, no
 * clock, no logging; the waypoint feeds requests and acts on decisions.
 *
 * Istio's semantics (waypoint.md section 2, "L7 AuthorizationPolicy"):
 *   - a policy applies when one of its targets is the waypoint's Gateway
 *     (same namespace and name) or the request's Service (namespace and
 *     hostname); policies with no target never apply;
 *   - DENY before ALLOW: a matching DENY -> deny; else no applicable ALLOW
 *     -> allow; else a matching ALLOW -> allow; else deny;
 *   - a policy matches when any rule does; a rule when all its clauses do
 *     (none: always); a clause when any of its matches does (none: always;
 *     an empty match is skipped, as in lib/policy); a match when every
 *     populated family holds: the l4 Match (lib/policy's semantics: client
 *     principal and namespace from the HBONE peer certificate, IP blocks,
 *     ports), paths, methods, hosts and request headers, each positive list
 *     "some entry matches" and negative list "no entry matches".
 *   - strings: exact, prefix, suffix, presence (meshd maps "x*", "*x", "*");
 *     methods and paths are case-sensitive; hosts case-insensitive against
 *     :authority as received, port included (Envoy does not strip it, so
 *     hosts ["a.example"] does not match "a.example:8080", istio/istio#44080: write
 *     "a.example*" or list both); paths match the normalised path without
 *     query (l7path.h); path templates "{*}" (one non-empty segment) and
 *     "{**}" (the rest, zero or more segments; last operator only), each a
 *     whole segment; headers by case-insensitive name, repeats joined with
 *     ',' in arrival order, presence true for a present empty header, a
 *     negative list true for an absent header.
 */
#ifndef MESH_LIB_L7POLICY_H
#define MESH_LIB_L7POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/addr.h"
#include "policy/policy.h"

struct json_t;

/* Caps on one Policy, checked on the wire before protobuf-c allocates anything. */
#define L7POL_MAX_BYTES    (1024 * 1024) /* one encoded Policy */
#define L7POL_MAX_TARGETS  256           /* targets of a policy */
#define L7POL_MAX_RULES    1024          /* rules of a policy */
#define L7POL_MAX_CLAUSES  256           /* clauses of a rule */
#define L7POL_MAX_MATCHES  1024          /* matches of a clause */
#define L7POL_MAX_LIST     4096          /* entries of any other repeated field */
#define L7POL_MAX_ENTRIES  65536         /* every repeated entry of the policy, all together */
#define L7POL_MAX_STRING   1024          /* bytes of a pattern */
#define L7POL_MAX_NAME     253           /* bytes of a name, namespace or hostname */
#define L7POL_MAX_HEADER   256           /* bytes of a header name */
#define L7POL_MAX_TEMPLATE 32            /* segments of a path template */
#define L7POL_KEY_MAX      (2 * L7POL_MAX_NAME + 2) /* "<namespace>/<name>" + NUL */

enum l7pol_action {
    L7POL_ALLOW = 0, /* istio.security.Action values */
    L7POL_DENY = 1,
};

enum l7pol_verdict {
    L7POL_ALLOWED = 0,
    L7POL_DENIED = 1,
};

struct l7pol;     /* one compiled Policy; immutable, reference counted */
struct l7pol_set; /* the policies a waypoint enforces; immutable, reference counted */

/*
 * Request header |name| (lower case; may be a pseudo-header such as
 * ":authority" if a policy names one): its |i|-th value (0 first, in arrival
 * order) through *v and *n, false when there are no more. Called only for
 * policies that test headers, possibly several times per request.
 */
typedef bool (*l7pol_header_fn)(void *arg, const char *name, size_t i, const char **v, size_t *n);

/* One request as the waypoint saw it. Strings are not NUL-terminated unless said. */
struct l7pol_request {
    const char *waypoint_ns;          /* the waypoint Gateway, NUL-terminated */
    const char *waypoint_name;        /* NUL-terminated */
    const char *service_ns;           /* the target Service (NULL: none, e.g. workload traffic) */
    const char *service_host;         /* its hostname, NUL-terminated */
    const struct policy_peer *client; /* the HBONE peer's SPIFFE identity; NULL: none */
    struct ipaddr src_ip;             /* client address */
    struct ipaddr dst_ip;             /* original destination (service VIP or pod IP) */
    uint16_t dst_port;
    const char *method;
    size_t method_len;
    const char *host; /* :authority or Host, as received */
    size_t host_len;
    const char *path; /* normalised path part (l7path_normalize's *path_len), no query */
    size_t path_len;
    l7pol_header_fn header; /* NULL: no headers */
    void *header_arg;
    const char *request_principal; /* JWT "iss/sub", NUL-terminated; NULL: none (no JWT yet) */
};

extern const char L7POL_REASON_DENIED[];      /* "explicitly denied by" */
extern const char L7POL_REASON_NOT_ALLOWED[]; /* "allow policies exist, but none allowed" */
extern const char L7POL_REASON_ALLOWED[];     /* "allowed by" */
extern const char L7POL_REASON_NO_ALLOW[];    /* "no allow policies" */

struct l7pol_decision {
    enum l7pol_verdict verdict;
    const char *reason;         /* one of L7POL_REASON_* */
    char policy[L7POL_KEY_MAX]; /* "<ns>/<name>" that decided; "" when none did */
    size_t applied;             /* applicable policies evaluated before deciding */
};

/*
 * Decodes |len| bytes of a packed amesh.waypoint.v1.Policy (an xDS resource
 * value; through pb_unpack_checked()) into a new policy, the caller's
 * reference. On failure |err| says which policy and field and why ("policy
 * ns/name: rules[0].clauses[1].matches[0].paths[2].template: ...") and *out
 * is NULL. Returns 0, -MESH_EPROTO (malformed or invalid) or -MESH_ELIMIT.
 */
int l7pol_decode(const uint8_t *data, size_t len, struct l7pol **out, char *err, size_t errlen);

struct l7pol *l7pol_ref(struct l7pol *p);
void l7pol_unref(struct l7pol *p);
const char *l7pol_key(const struct l7pol *p); /* "<namespace>/<name>" */
enum l7pol_action l7pol_action(const struct l7pol *p);
/* Whether |p| targets the request's waypoint or Service. */
bool l7pol_applies(const struct l7pol *p, const struct l7pol_request *r);
/* Whether |p|'s rules match |r| (targets and action aside). */
bool l7pol_matches(const struct l7pol *p, const struct l7pol_request *r);

/*
 * Sets. l7pol_set_build() takes new references to |ps| (a later policy with
 * the same key replaces an earlier one); l7pol_set_update() makes the next
 * set from |old| (may be NULL) with |add| added or replaced and |remove|
 * keys removed, for delta xDS. Decode every resource of a response first,
 * and build the next set only if all decoded: a NACK keeps the old set.
 * The waypoint swaps its set pointer; a request holds a reference to the
 * set it started with (l7pol_set_ref), so the swap is atomic per request.
 */
struct l7pol_set *l7pol_set_build(struct l7pol *const *ps, size_t n);
struct l7pol_set *l7pol_set_update(const struct l7pol_set *old, struct l7pol *const *add,
                                   size_t n_add, const char *const *remove, size_t n_remove);
struct l7pol_set *l7pol_set_ref(struct l7pol_set *s);
void l7pol_set_unref(struct l7pol_set *s);
size_t l7pol_set_count(const struct l7pol_set *s);
const struct l7pol *l7pol_set_at(const struct l7pol_set *s, size_t i); /* key order */
const struct l7pol *l7pol_set_get(const struct l7pol_set *s, const char *key);

/* Decides |r| against |s| (NULL: no policies). Fills |why| when not NULL. */
enum l7pol_verdict l7pol_check(const struct l7pol_set *s, const struct l7pol_request *r,
                               struct l7pol_decision *why);

/* The set for /config_dump: {"policies": [{name, namespace, action, targets, rules}, ...]}. */
struct json_t *l7pol_set_to_json(const struct l7pol_set *s);
struct json_t *l7pol_to_json(const struct l7pol *p);

#endif
