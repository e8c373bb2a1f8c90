/*
 * policy_internal.h - the compiled form of a policy, shared by the decoders
 * (policy_pb.c, policy_json.c), the compiler (policy_compile.c) and the
 * evaluator (policy.c, policy_set.c). Not for use outside src/lib/policy
 * (tests aside).
 */
#ifndef MESH_LIB_POLICY_INTERNAL_H
#define MESH_LIB_POLICY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "authorization.pb-c.h"
#include "policy/policy.h"
#include "policy/policy_match.h"

/* Bump allocator: everything of one compiled policy lives in one arena. */
struct pol_arena_chunk;
struct pol_arena {
    struct pol_arena_chunk *head;
};
void *pol_arena_alloc(struct pol_arena *a, size_t n); /* zeroed, 16-byte aligned; aborts on OOM */
char *pol_arena_strdup(struct pol_arena *a, const char *s);
void pol_arena_free(struct pol_arena *a);

/* The field families of a Match, each with a positive and a negative list. */
enum pol_field {
    PF_NAMESPACES,
    PF_PRINCIPALS,
    PF_SOURCE_IPS,
    PF_DESTINATION_IPS,
    PF_DESTINATION_PORTS,
    PF_SERVICE_ACCOUNTS,
    PF_COUNT,
};

enum pol_str_kind { PS_EXACT = 1, PS_PREFIX, PS_SUFFIX, PS_PRESENCE };

struct pol_str {
    enum pol_str_kind kind;
    size_t len;
    const char *s; /* "" for presence */
};

struct pol_cidr {
    struct ipaddr net; /* host bits cleared; IPv4-mapped prefixes stored as IPv4 */
    uint8_t bits;
};

struct pol_sa {
    const char *ns;
    const char *sa;
};

/* One list: struct pol_str, struct pol_cidr, uint16_t or struct pol_sa by family. */
struct pol_list {
    const void *v;
    size_t n;
};

struct pol_match {
    struct pol_list l[PF_COUNT][2]; /* [family][0 positive, 1 negative] */
    bool empty;                     /* no list populated: never matches */
};

/* A Match compiled on its own (policy_match.h); lives in its own arena. */
struct policy_match {
    struct pol_match m;
    struct pol_arena a;
};

struct pol_clause {
    struct pol_match *m;
    size_t n;
};

struct pol_rule {
    struct pol_clause *c;
    size_t n;
};

struct policy {
    atomic_int refs; /* holders beyond the first */
    const char *name;
    const char *ns;
    const char *key; /* "<ns>/<name>" */
    enum policy_scope scope;
    enum policy_action action;
    bool dry_run;
    struct pol_rule *rules;
    size_t n_rules;
    struct pol_arena arena;
};

/* Whether |p|'s rules match (policy_matches() with a prepared context). */
bool pol_match(const struct policy *p, const struct policy_ctx *c);

/* Field names: [family][negative][json]. */
const char *pol_field_name(enum pol_field f, bool neg, bool json);

/*
 * Validates |pb| and compiles it into a new policy. |json| picks the field
 * names errors use (camelCase as in policy_from_json, else the .proto's).
 * Returns 0, -MESH_EPROTO / -MESH_ECONFIG (|json|) or -MESH_ELIMIT.
 */
int policy_compile(const Istio__Security__Authorization *pb, bool json, struct policy **out,
                   char *err, size_t errlen);

/*
 * JSON -> a protobuf-c message allocated in |a| (not with protobuf-c's
 * allocator: free |a|, never free_unpacked). Checks JSON types, unknown
 * fields and caps; policy_compile() checks the rest. Exposed for tests,
 * which pack it to check that both forms compile to the same policy.
 */
int policy_json_to_pb(const struct json_t *j, struct pol_arena *a,
                      Istio__Security__Authorization **out, char *err, size_t errlen);

/*
 * Checks the wire form before protobuf-c allocates anything: caps on every
 * repeated field and in total, string lengths, no NUL inside a string.
 */
int policy_wire_check(const uint8_t *data, size_t len, char *err, size_t errlen);


/*
 * Writes "<what>: <path>.<field>: <msg>" into |err| (|field| NULL or "" for
 * the object at |path| itself; no path when both are empty). Returns |rc|.
 */
int pol_vfail(char *err, size_t errlen, const char *what, const char *path, int rc,
              const char *field, const char *fmt, va_list ap) __attribute__((format(printf, 7, 0)));

#endif
