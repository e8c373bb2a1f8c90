/*
 * l7policy_internal.h - the compiled form of an amesh.waypoint.v1.Policy,
 * shared by the decoder (l7policy_wire.c, l7policy_compile.c), the evaluator
 * (l7policy_eval.c), the sets (l7policy_set.c) and the dump
 * (l7policy_dump.c). Not for use outside src/lib/l7policy (tests aside).
 */
#ifndef MESH_LIB_L7POLICY_INTERNAL_H
#define MESH_LIB_L7POLICY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "l7policy/l7policy.h"
#include "policy/policy_match.h"
#include "waypoint.pb-c.h"

enum l7_kind { L7S_EXACT = 1, L7S_PREFIX, L7S_SUFFIX, L7S_PRESENCE, L7S_TEMPLATE };

/* One segment of a path template: a literal, {*} or {**} (last only). */
enum l7_seg_kind { L7T_LITERAL, L7T_ONE, L7T_REST };
struct l7_seg {
    enum l7_seg_kind kind;
    size_t len;
    const char *s; /* the literal */
};

struct l7_str {
    enum l7_kind kind;
    size_t len;
    const char *s;            /* "" for presence; the template's text for templates */
    const struct l7_seg *seg; /* templates: the segments after the leading '/' */
    size_t n_seg;
};

struct l7_list {
    struct l7_str *v;
    size_t n;
};

struct l7_hdr {
    const char *name; /* lower case */
    struct l7_list values, not_values;
};

/* The string families of a PolicyMatch, [family][0 positive, 1 negative]. */
enum l7_family { L7F_PATHS, L7F_METHODS, L7F_HOSTS, L7F_REQ_PRINCIPALS, L7F_COUNT };

struct l7_match {
    struct policy_match *l4; /* NULL: none or empty */
    struct l7_list l[L7F_COUNT][2];
    struct l7_hdr *hdr;
    size_t n_hdr;
    bool empty; /* nothing populated: never matches (lib/policy's rule) */
};

struct l7_clause {
    struct l7_match *m;
    size_t n;
};

struct l7_rule {
    struct l7_clause *c;
    size_t n;
};

struct l7_target {
    bool gateway;
    const char *ns;   /* the policy's namespace for a Gateway */
    const char *name; /* Gateway name or Service hostname */
};

/* Memory of one policy: one block list, freed together. */
struct l7_block;

struct l7pol {
    atomic_int refs; /* holders beyond the first */
    const char *name, *ns, *key;
    enum l7pol_action action;
    struct l7_target *targets;
    size_t n_targets;
    struct l7_rule *rules;
    size_t n_rules;
    struct l7_block *mem;
    struct policy_match **l4; /* every compiled l4, to free */
    size_t n_l4;
    bool headers; /* some match tests request headers */
};

/* Zeroed memory owned by |p| (aborts on OOM: sizes are bounded by the caps first). */
void *l7_alloc(struct l7pol *p, size_t n);
char *l7_strndup(struct l7pol *p, const char *s, size_t n);

/* Field names of the families for errors and dumps: [family][negative]. */
const char *l7_family_name(enum l7_family f, bool neg);

/*
 * Walks the wire form before protobuf-c allocates: caps on every repeated
 * field and in total, string lengths, no NUL in a string, valid UTF-8,
 * nesting. |what| gets "policy <ns>/<name>" for messages.
 */
int l7_wire_check(const uint8_t *data, size_t len, char *what, size_t whatlen, char *err,
                  size_t errlen);

/* Validates and compiles an unpacked Policy (|what| prefixes errors). */
int l7_compile(const Amesh__Waypoint__V1__Policy *pb, const char *what, struct l7pol **out,
               char *err, size_t errlen);

/*
 * The indexes (ascending, into l7pol_set_at) of the policies of |s| that
 * target the request's Gateway (*g) and its Service (*v); a policy naming
 * both is in both lists.
 */
void l7_set_targets(const struct l7pol_set *s, const struct l7pol_request *r, const size_t **g,
                    size_t *ng, const size_t **v, size_t *nv);

/* String and template matching, exposed for the dump's round trip and tests. */
bool l7_str_match(const struct l7_str *m, const char *s, size_t n, bool icase);

#endif
