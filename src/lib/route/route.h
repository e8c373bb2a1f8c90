/*
 * route.h - the waypoint's route tables (issue 10 sections 3 and 4), sans I/O.
 *
 * meshd sends one amesh.waypoint.v1.Route per bound service port: its
 * HTTPRoute/GRPCRoute (rule, match) pairs already in Gateway API precedence
 * order, so the first rule that matches wins. route_decode() checks the wire
 * bytes and every field against the caps below and compiles them into an
 * immutable, reference-counted struct route_table; any error comes back as
 * one line the waypoint puts in its NACK, and the last good table stays.
 *
 * A struct route_set maps (namespace, hostname, port) to tables and is never
 * changed once built; a struct route_store holds the current set and swaps
 * in a new one per xDS response (all of it or nothing), so a request keeps
 * the set it started with for as long as it holds a reference.
 *
 * Matching follows Gateway API (kubernetes-sigs/gateway-api apis/v1/
 * httproute_types.go): path Exact, PathPrefix by whole path elements, or
 * RegularExpression (full match; PCRE2's automaton matcher with RE2's
 * refusals, a size cap and a per-request step budget: see route_regex.c for
 * the dialect and the measured worst case); header
 * names case-insensitive, values exact or regex; query parameters; method;
 * every condition of a match AND-ed. No match: 404. The result is an action
 * (struct route_action): forward to one weighted backend with an optional
 * URL rewrite, a redirect with its Location, or a direct status.
 */
#ifndef MESH_LIB_ROUTE_H
#define MESH_LIB_ROUTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t; /* jansson's json_t */

/* Caps on one Route. Gateway API's own MaxItems / MaxLength where it has one. */
#define ROUTE_MAX_BYTES   (1024 * 1024) /* one encoded Route */
#define ROUTE_MAX_RULES   1024          /* (rule, match) pairs of one service port */
#define ROUTE_MAX_LIST    16            /* header/query matches, backends, each header op, codes */
#define ROUTE_MAX_SOURCES 256           /* Route.sources */
#define ROUTE_MAX_ENTRIES 32768         /* fields (each an allocation or less) in one Route */
#define ROUTE_MAX_NAME    256           /* header/query names, rule names, sources, methods */
#define ROUTE_MAX_HOST    253           /* hostnames, namespaces */
#define ROUTE_MAX_VALUE   4096          /* header values (match and modifier) */
#define ROUTE_MAX_PATH    1024          /* path values, query values */
#define ROUTE_MAX_REGEX   1024          /* bytes of one regular expression (compiled: 2 KB) */
#define ROUTE_MAX_REGEXES 512           /* regular expressions in one Route (~2-20 KB each) */
#define ROUTE_MAX_SUBJECT 16384         /* longest path/header a regex is run on; longer: no match */
#define ROUTE_MAX_TIMEOUT_MS (24ull * 3600 * 1000)
#define ROUTE_ERR_MAX     256

enum route_protocol {
    ROUTE_PROTO_DETECT = 0,
    ROUTE_PROTO_HTTP1 = 1,
    ROUTE_PROTO_HTTP2 = 2,
    ROUTE_PROTO_GRPC = 3,
    ROUTE_PROTO_TCP = 4,
};

/* One header (or any name/value), not NUL-terminated. */
struct route_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A growable header list that route_hdrs_apply() edits. */
struct route_hdr_list {
    struct route_hdr *v;
    size_t n, cap;
};

/* What a match looks at. Strings are not NUL-terminated; NULL with length 0 is fine. */
struct route_req {
    const char *method;
    size_t method_len;
    const char *path; /* :path with the query, already normalised by the caller */
    size_t path_len;
    const char *scheme; /* "http" or "https", the client's (NUL-terminated; NULL: "http") */
    const char *authority; /* Host / :authority, maybe with ":port" */
    size_t authority_len;
    const struct route_hdr *headers; /* repeats allowed: values joined with "," to match */
    size_t n_headers;
};

/* Retry conditions, Envoy's retry_on names. */
enum {
    ROUTE_RETRY_CONNECT_FAILURE = 1u << 0,
    ROUTE_RETRY_REFUSED_STREAM = 1u << 1,
    ROUTE_RETRY_UNAVAILABLE = 1u << 2, /* gRPC status 14 */
    ROUTE_RETRY_CANCELLED = 1u << 3,   /* gRPC status 1 */
    ROUTE_RETRY_STATUS_CODES = 1u << 4, /* the codes below */
};

/* A retry policy as the waypoint carries it out (Istio's defaults resolved). */
struct route_retry {
    unsigned attempts;      /* retries after the first try; 0: none */
    unsigned on;            /* ROUTE_RETRY_* */
    const uint16_t *codes;  /* retriable status codes (400-599) */
    size_t n_codes;
    uint32_t backoff_base_ms; /* Envoy: 25 ms unless set */
    uint32_t backoff_max_ms;  /* 10 x base */
    bool other_host;          /* prefer another endpoint (Istio's previous_hosts predicate) */
};

struct route_hdr_ops; /* a compiled HeaderModifier */

enum route_action_kind {
    ROUTE_FORWARD = 1,
    ROUTE_REDIRECT = 2,
    ROUTE_DIRECT = 3,
};

struct route_action {
    enum route_action_kind kind;
    unsigned status;   /* REDIRECT: 301/302/303/307/308; DIRECT: the status (404 no route) */
    const char *rule;  /* the rule's name ("" if unnamed or default); NULL: no rule matched */
    /* FORWARD: the backend picked, strings owned by the table. */
    const char *backend_ns;
    const char *backend_host;
    uint32_t backend_port;
    char *location;  /* REDIRECT: heap, the Location header */
    char *path;      /* FORWARD: heap, the rewritten :path (query kept); NULL: unchanged */
    char *authority; /* FORWARD: heap, the rewritten host; NULL: unchanged */
    uint64_t timeout_ms;         /* whole request incl. retries; 0: none */
    uint64_t backend_timeout_ms; /* per try; 0: none */
    struct route_retry retry;
    const struct route_hdr_ops *request_headers;  /* NULL: none */
    const struct route_hdr_ops *response_headers; /* NULL: none */
};

struct route_table;
struct route_set;

/*
 * Decodes and compiles one amesh.waypoint.v1.Route. Returns 0 with a table
 * (one reference), or -MESH_EPROTO (not a valid Route), -MESH_ECONFIG (a
 * field's meaning is invalid) or -MESH_ELIMIT (a cap), with one line in |err|
 * naming the route, the field path and the reason.
 */
int route_decode(const uint8_t *data, size_t len, struct route_table **out, char *err,
                 size_t errlen);

/* A table that routes everything to the service itself (a Route with no rules). */
struct route_table *route_table_default(const char *ns, const char *host, uint32_t port);

struct route_table *route_table_ref(struct route_table *t);
void route_table_unref(struct route_table *t);

/* "<ns>/<hostname>:<port>", the xDS resource name. */
const char *route_table_key(const struct route_table *t);
enum route_protocol route_table_protocol(const struct route_table *t);
size_t route_table_rules(const struct route_table *t);
/* Regex matches that failed on a limit (treated as no match), since the table was built. */
uint64_t route_table_regex_errors(const struct route_table *t);

/*
 * The index of the first rule of |t| that matches |req|, or -1 (404).
 * Allocates nothing, takes no lock.
 */
long route_match(const struct route_table *t, const struct route_req *req);

/*
 * Matches |req| and resolves the action: the backend is picked by weight
 * with |rnd| (uniform over 32 bits, the caller's random), a redirect's
 * Location or a rewrite's path and host are built. |t| must outlive the
 * action's borrowed strings. Aborts on OOM like xmalloc (the strings built
 * are bounded by the request's and the rule's). Free with route_action_clear().
 */
void route_decide(const struct route_table *t, const struct route_req *req, uint32_t rnd,
                  struct route_action *a);
void route_action_clear(struct route_action *a);

/*
 * Applies a HeaderModifier: remove, then set (replaces every value of the
 * name), then add, names compared case-insensitively, as Envoy applies
 * Istio's headers_to_remove / headers_to_add. New entries borrow the table's
 * strings. |ops| NULL: nothing.
 */
void route_hdrs_apply(const struct route_hdr_ops *ops, struct route_hdr_list *l);
void route_hdr_list_free(struct route_hdr_list *l);

/* Sets: immutable maps (ns, host, port) -> table. */
struct route_set *route_set_ref(struct route_set *s);
void route_set_unref(struct route_set *s);
size_t route_set_count(const struct route_set *s);
/* The table for a service port, or NULL (the caller routes to the service itself). */
const struct route_table *route_set_find(const struct route_set *s, const char *ns,
                                         const char *host, uint32_t port);
/* The compiled tables as JSON for /config_dump: {"routes": [...]}. New reference. */
struct json_t *route_set_dump(const struct route_set *s);
struct json_t *route_table_dump(const struct route_table *t);

/* One resource of an xDS response: |data| NULL means removed. */
struct route_update {
    const char *name; /* "<ns>/<hostname>:<port>" */
    const uint8_t *data;
    size_t len;
};

/* The current set, swapped whole. */
struct route_store {
    pthread_mutex_t mu; /* held only to read or swap |cur| */
    struct route_set *cur;
    uint64_t generation; /* bumped per applied batch */
};

void route_store_init(struct route_store *st);
void route_store_destroy(struct route_store *st);
/* The current set, with a reference for the caller (route_set_unref). Never NULL. */
struct route_set *route_store_get(struct route_store *st);
/*
 * Applies one xDS response: every update is decoded first; if any fails
 * (or a name does not match its Route's service and port) nothing changes
 * and |err| says which one and why (the NACK). Otherwise one new set
 * replaces the current one. Returns 0 or the failing update's error.
 * Calls must not overlap (the xDS client applies responses in order);
 * route_store_get() may run on any thread meanwhile.
 */
int route_store_apply(struct route_store *st, const struct route_update *u, size_t n,
                      char *err, size_t errlen);

#endif
