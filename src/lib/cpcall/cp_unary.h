/*
 * cp_unary.h - one unary gRPC call to meshd over a control-plane channel (a
 * CreateCertificate, a token renewal): wait for the session, send one
 * request with the bearer token and clusterid metadata, take exactly one
 * answer, all under a deadline. Failures come back as a reason for the log
 * ("CA unreachable: ...", "meshd answered status 16: ...").
 */
#ifndef MESH_LIB_CP_UNARY_H
#define MESH_LIB_CP_UNARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel/channel.h"
#include "cpcall/cpcall.h"
#include "loop/loop.h"

/* How to call; the strings and the channel are borrowed and outlive every call. */
struct cp_unary_config {
    struct loop *loop;
    struct channel *chan;
    const char *method;    /* "/package.Service/Method" */
    struct cpcall_auth auth; /* its bearer is asked once the session is up */
    const char *peer;      /* who answers, for reasons: "CA", "meshd" */
    size_t max_response;
    uint64_t timeout_ms;
};

/*
 * The call ended: |resp| (|len| bytes, borrowed for the callback) is the one
 * answer of a call that ended OK, or NULL with |why|. The call is over when
 * this runs: the owner may free it or start another from here.
 */
typedef void cp_unary_fn(void *arg, const uint8_t *resp, size_t len, const char *why);

/* One call; embed it in the owner's state, zeroed. */
struct cp_unary {
    struct cp_unary_config cfg;
    cp_unary_fn *done;
    void *arg;
    uint8_t *req, *resp;
    size_t req_len, resp_len;
    struct channel_waiter wait;
    struct rpc_call *call;
    struct loop_timer deadline;
    bool active;
};

/*
 * Starts the call with |req| (|len| bytes, copied). |done| runs exactly once,
 * possibly before this returns (no session can be had, for instance), unless
 * the call is cancelled first. |u| must not be active.
 */
void cp_unary_start(struct cp_unary *u, const struct cp_unary_config *cfg, const uint8_t *req,
                    size_t len, cp_unary_fn *done, void *arg);
/* Ends the call without calling |done|. Does nothing when it is not active. */
void cp_unary_cancel(struct cp_unary *u);
bool cp_unary_active(const struct cp_unary *u);

#endif
