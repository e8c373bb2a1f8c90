/*
 * unit_rpc.h - a gRPC client and an Echo server (lib/rpc) on two h2_sessions
 * over a socketpair in one loop, cleartext or mutual TLS, recording what each
 * call received and how it ended; for test_rpc*.c.
 */
#ifndef MESH_TESTS_UNIT_RPC_H
#define MESH_TESTS_UNIT_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/h2.h"
#include "loop/loop.h"
#include "rpc/rpc.h"
#include "tls/ca.h"
#include "tls/tls.h"

#define RPCT_TD        "cluster.local"
#define RPCT_SERVER_ID "spiffe://cluster.local/ns/istio-system/sa/meshd"
#define MAX_CALLS      16
#define MAX_MSGS       512
#define FAIL_TEXT      "bad input: 100% \xc3\xbc\n"

/*
 * The Echo service's methods, by path: Unary answers the one message after
 * the client half-closed; Bidi echoes each message; Fail ends with
 * INVALID_ARGUMENT and FAIL_TEXT; Empty ends OK without a message; Hang never
 * answers; Burst queues 40 x 64 KiB, finishes and frees at once; Drain does
 * the same with 100 x 64 KiB (past the stream window) on its first message,
 * while the client may still send; Small has
 * a 1 KiB cap; Refuse is refused (UNAUTHENTICATED "no token") before accepting.
 */
enum mode { M_UNARY = 0, M_BIDI, M_FAIL, M_EMPTY, M_HANG, M_BURST, M_SMALL, M_DRAIN };

struct rpct;

/* One side of one call: what it received and how it ended. */
struct rpct_rec {
    struct rpct *t;
    struct rpc_call *c;
    enum mode mode;
    int n_msgs;
    size_t lens[MAX_MSGS];
    uint8_t *data; /* every message, concatenated */
    size_t len, cap;
    int ends;
    int status;
    char message[256];
    bool null_message;
    int drained;
    bool free_on_end;     /* the owner frees the call from on_end */
    bool free_on_message; /* ... from on_message */
};

struct rpct {
    struct loop *loop;
    struct h2_session *cli, *srv;
    int closed[2];
    struct rpct_rec srv_calls[MAX_CALLS];
    int n_srv;
    int n_refused;
    size_t srv_max_msg;
    bool srv_free_on_message; /* new server calls free themselves in on_message */
    bool raw;                 /* on_request hands streams to the raw h2 test instead */
    struct h2_stream *raw_st;
    struct tls_check cchk, schk;
    const char *expected[1];
};

/*
 * Starts a loop and a ready client/server pair; with |ca| over mutual TLS
 * (client spiffe://.../sa/ztunnel, server RPCT_SERVER_ID).
 */
void rpct_setup(struct rpct *t, const struct ca *ca);
/* Frees the server calls left, closes and releases both sessions, checks each closed once. */
void rpct_teardown(struct rpct *t);
/* Starts a call from the client with two metadata entries, recorded in |r|. */
void rpct_cli_start(struct rpct *t, struct rpct_rec *r, const char *path, size_t max_msg);
/* Frees |r|'s call (if any) and its recording. */
void rpct_rec_cleanup(struct rpct_rec *r);

extern const struct h2_session_cbs rpct_sess_cbs; /* |arg| is the struct rpct */
extern const struct rpc_call_cbs rpct_cli_cbs;    /* |arg| is a struct rpct_rec */

/* unit_run_until() conditions. */
bool rpct_cond_ended(void *arg);      /* struct rpct_rec: on_end ran */
bool rpct_cond_srv_msg(void *arg);    /* struct rpct: the newest server call has a message */
bool rpct_cond_srv_ended(void *arg);  /* struct rpct: the newest server call ended */
bool rpct_cond_no_streams(void *arg); /* struct rpct: no open stream on either side */

#endif
