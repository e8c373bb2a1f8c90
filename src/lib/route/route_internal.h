/*
 * route_internal.h - the compiled form of a route table, shared by the
 * decoder (route_pb.c, route_compile.c), the matcher (route_match.c), the
 * actions (route_action.c), sets (route_set.c) and the dump (route_dump.c).
 * Not for use outside src/lib/route (tests aside).
 */
#ifndef MESH_LIB_ROUTE_INTERNAL_H
#define MESH_LIB_ROUTE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route/route.h"
#include "waypoint.pb-c.h"

/* ---- regular expressions (route_regex.c) ---- */

struct route_regex;

/*
 * Compiles |pattern| (|len| bytes, no NUL) for full matches. Refuses what RE2
 * refuses (backreferences, lookaround, atomic groups, recursion, callouts,
 * backtracking verbs, conditionals, \C) and patterns whose compiled form is
 * over the workspace the matcher has. Returns 0 or -MESH_ECONFIG with why.
 */
int route_regex_compile(const char *pattern, size_t len, struct route_regex **out, char *err,
                        size_t errlen);
/*
 * 1 if all of |s| matches, 0 if not, -1 if a limit stopped it (counted as no
 * match): |s| longer than ROUTE_MAX_SUBJECT, or *|steps| (pattern items
 * visited, accumulated over the regexes of one request) past the budget.
 */
int route_regex_match(const struct route_regex *re, const char *s, size_t n,
                      unsigned long *steps);
/* One engine only (tests compare them): the JIT (|dfa| false) or the DFA. */
int route_regex_match_engine(const struct route_regex *re, const char *s, size_t n, bool dfa,
                             unsigned long *steps);
bool route_regex_has_jit(const struct route_regex *re); /* false where JIT memory is refused */
void route_regex_free(struct route_regex *re);

/* ---- the compiled table ---- */

enum rt_path_kind { RT_PATH_PREFIX = 0, RT_PATH_EXACT, RT_PATH_REGEX };
enum rt_mod_kind { RT_MOD_NONE = 0, RT_MOD_FULL, RT_MOD_PREFIX };

struct rt_keymatch {
    char *name; /* header names lower-cased; query names as given */
    size_t name_len;
    char *value; /* exact value, or the pattern */
    size_t value_len;
    struct route_regex *re; /* NULL: exact */
};

struct rt_match {
    enum rt_path_kind kind;
    char *path; /* PREFIX: trailing '/' removed ("/" becomes ""); EXACT as given; REGEX pattern */
    size_t path_len;
    char *path_given; /* as configured, for the dump */
    struct route_regex *path_re;
    struct rt_keymatch *headers;
    size_t n_headers;
    struct rt_keymatch *query;
    size_t n_query;
    char *method; /* NULL: any */
    size_t method_len;
};

struct rt_backend {
    char *ns;
    char *host;
    uint32_t port;
    uint32_t weight;
};

struct rt_hdr {
    char *name; /* lower-case */
    size_t name_len;
    char *value;
    size_t value_len;
};

struct route_hdr_ops {
    struct rt_hdr *set, *add, *remove; /* remove: value unused */
    size_t n_set, n_add, n_remove;
};

struct rt_redirect {
    char *scheme;   /* NULL: the request's */
    char *hostname; /* NULL: the request's */
    uint32_t port;  /* 0: derived */
    enum rt_mod_kind mod;
    char *path; /* FULL: the path; PREFIX: trailing '/' removed */
    unsigned status;
};

struct rt_rewrite {
    char *hostname;
    enum rt_mod_kind mod;
    char *path;
};

struct rt_rule {
    char *name;
    struct rt_match m;
    struct rt_backend *backends;
    size_t n_backends;
    uint64_t total_weight;
    struct route_hdr_ops req_hdrs, resp_hdrs;
    bool has_req_hdrs, has_resp_hdrs;
    bool has_redirect, has_rewrite;
    struct rt_redirect redirect;
    struct rt_rewrite rewrite;
    uint64_t timeout_ms, backend_timeout_ms;
    struct route_retry retry;
    uint16_t codes[ROUTE_MAX_LIST];
    bool retry_given;
    unsigned direct_status;
};

struct route_table {
    atomic_long refs;
    char *key; /* "<ns>/<host>:<port>" */
    char *ns, *host;
    uint32_t port;
    enum route_protocol protocol;
    struct rt_rule *rules;
    size_t n_rules;
    char **sources;
    size_t n_sources;
    bool is_default; /* no rules given: one synthetic rule to the service itself */
    atomic_ullong regex_errors;
};

/* Istio's retry default: 2 attempts on connect-failure, refused-stream, unavailable, cancelled,
 * retriable-status-codes (none listed), 25 ms backoff, another host preferred. */
void rt_retry_default(struct route_retry *r);

/*
 * Checks the wire form before protobuf-c allocates: counts of every repeated
 * field (per message and in total), and that no string carries a NUL (which
 * protobuf-c would silently cut at) or invalid UTF-8.
 */
int route_wire_check(const uint8_t *data, size_t len, char *err, size_t errlen);

/* Validates |pb| and builds the table. */
int route_compile(const Amesh__Waypoint__V1__Route *pb, struct route_table **out, char *err,
                  size_t errlen);

void rt_table_free(struct route_table *t);

/* Case-insensitive ASCII compare of two byte strings. */
bool rt_ieq(const char *a, size_t an, const char *b, size_t bn);

#endif
