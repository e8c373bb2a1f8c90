/*
 * l7_decide.h - what the waypoint's HTTP engines (http1_*.c, http2_*.c) decide the same way for
 * every request, whatever its wire form: path normalisation, L7 policy, the route (redirect,
 * direct answer, rewrite, header modifiers, weighted backend), the retry and timeout policy,
 * x-request-id; and, per try, the endpoint (http1_lb.c: least outstanding requests) and the
 * retry backoff. An engine only parses, serialises and moves bytes.
 */
#ifndef MESH_WAYPOINT_L7_DECIDE_H
#define MESH_WAYPOINT_L7_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7.h"

/* One request as an engine received it. */
struct wp_l7_req {
    const struct wp_l7_conn *cfg;
    const struct model *m; /* the config asked for at the request's head */
    struct route_set *routes;
    struct l7pol_set *pols;
    struct route_table **deftab; /* the connection's cache of the service's own route */
    const char *method, *authority, *request_id;
    const char *target; /* origin-form :path as received */
    size_t target_len;
    /* Policy header lookups over the request as received (l7pol_request.header). */
    bool (*header)(void *arg, const char *name, size_t i, const char **v, size_t *n);
    void *header_arg;
    /*
     * In: the fields to send upstream, the first one "host" (the authority), the others as
     * received without hop-by-hop ones. Out: after the route's rewrite and header modifiers,
     * with x-request-id added if absent. The strings stay the caller's or the action's.
     */
    struct route_hdr_list *hdrs;
};

/* The decision: a local answer (status != 0) or a backend to forward to. */
struct wp_l7_verdict {
    int status;          /* != 0: answer locally with this */
    unsigned flags;      /* WP_FLAG_* */
    const char *details; /* RESPONSE_CODE_DETAILS-like word */
    const char *body;    /* local answer's text body, or NULL */
    const char *location; /* a redirect's Location (owned by the action) */
    const char *target;  /* forward: the upstream :path (owned by |norm| or the action) */
    size_t target_len;
    char *norm;          /* the normalised path: wp_l7_verdict_clear() frees it */
    const struct service *backend; /* NULL: the bound workload itself */
    uint16_t backend_port;
    unsigned max_tries;
    uint64_t timeout_ms;     /* the route's, over the whole request and its tries; 0: none */
    uint64_t try_timeout_ms; /* backendRequest: each try's, from when the try has the whole
                              * request until its response begins (Envoy's per_try_timeout) */
};

/*
 * Decides |in|: fills |v|, the route action |act| (*have_act true when one was decided; the
 * caller clears it with route_action_clear()) and the deciding policy's "<ns>/<name>".
 */
void wp_l7_decide(const struct wp_l7_req *in, struct route_action *act, bool *have_act,
                  char policy[L7POL_KEY_MAX], struct wp_l7_verdict *v);
void wp_l7_verdict_clear(struct wp_l7_verdict *v);

/* True if |status| from upstream is one the route retries on. */
bool wp_l7_retriable_status(const struct route_retry *r, int status);
/* Envoy's jittered backoff before try |attempts| + 1 (ms). */
uint64_t wp_l7_backoff_ms(const struct route_retry *r, unsigned attempts);

/* Local answers the engines give the same words. */
#define WP_L7_DENIED_BODY "RBAC: access denied"
#define WP_L7_RESET_UF    "upstream connect error or disconnect/reset before headers. " \
                          "reset reason: remote connection failure"
#define WP_L7_RESET_UC    "upstream connect error or disconnect/reset before headers. " \
                          "reset reason: connection termination"
#define WP_L7_DETAILS_UF  "upstream_reset_before_response_started{remote_connection_failure}"
#define WP_L7_DETAILS_UC  "upstream_reset_before_response_started{connection_termination}"

/* Header list helpers (route_hdr_list). */
void wp_l7_hdr_push(struct route_hdr_list *l, const char *n, size_t nl, const char *v, size_t vl);
bool wp_l7_hdr_has(const struct route_hdr_list *l, const char *name);

/* http1_lb.c, shared: endpoint choice per try, outstanding counts, request ids. */
struct wp_h1_pick {
    const struct workload *ep;
    uint16_t port;
};

/*
 * Among the healthy endpoints of |svc| serving |svc_port| in |m|, not in |tried| (unless all
 * are), the ones with the fewest outstanding requests; one of them at random. Returns false
 * when there is none.
 */
bool wp_h1_pick(const struct model *m, const struct service *svc, uint16_t svc_port,
                const struct workload *const *tried, size_t n_tried, struct wp_h1_pick *out);

/* Outstanding requests per endpoint (by uid), this thread's count. */
void wp_h1_outstanding_add(const struct workload *ep, int delta);
unsigned wp_h1_outstanding(const struct workload *ep);

/* This thread's random numbers (seeded from getrandom once). */
uint32_t wp_h1_rand(void);
/* 36 characters of a random UUID (version 4) and a NUL. */
void wp_h1_uuid(char out[37]);

#endif
