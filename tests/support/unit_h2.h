/*
 * unit_h2.h - a client and a server h2_session over a socketpair in one loop
 * (cleartext), with recording callbacks, for test_h2*.c.
 */
#ifndef MESH_TESTS_UNIT_H2_H
#define MESH_TESTS_UNIT_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "conn/pipe.h"
#include "h2/h2.h"
#include "loop/loop.h"

#define H2T_MAX_ST 256

struct h2t;

struct cst {
    struct h2t *t;
    struct h2_stream *st;
    bool owned; /* st was handed to a pipe or closed: the test must not close it */
    int status;
    int calls;
};

struct h2t {
    struct loop *loop;
    struct h2_session *cli, *srv;
    int ready_calls[2]; /* [0] client, [1] server */
    int closed_calls[2];
    int closed_err[2];
    int streams_calls[2];
    /* server side */
    struct h2_stream *sreq[H2T_MAX_ST];
    char sreq_auth[H2T_MAX_ST][64];
    int n_sreq;
    int want_sreq;
    int respond_status; /* 0: leave requests unanswered */
    bool respond_end;
    unsigned max_srv_open;
    /* client side */
    struct cst cst[H2T_MAX_ST];
    int n_cst;
    /* pipes (big transfer) */
    bool pipe_server;
    int app_b_inner;
    struct pipe *srv_pipe;
    int pipe_done[2];
    struct pipe_result pipe_res[2];
};

struct h2t_rd {
    struct stream *s;
    char buf[64];
    size_t len;
    size_t want;
    ssize_t last;
};

/* A fresh loop and a connected client/server pair; the server answers 200 by default. */
void h2t_setup(struct h2t *t);
/* Closes what the test left open, releases both sessions, checks on_closed ran once each. */
void h2t_teardown(struct h2t *t);
/* Opens a CONNECT from the client, recorded in t->cst; NULL if refused. */
struct cst *h2t_open(struct h2t *t, const char *authority, const struct h2_header *hdrs, size_t n);
/* The client response callback: counts calls and keeps the status in the struct cst. */
void h2t_on_response(void *arg, struct h2_stream *st, int status);

/* unit_run_until() conditions; |arg| is the struct h2t (struct h2t_rd for h2t_cond_read). */
bool h2t_cond_n_requests(void *arg); /* t->n_sreq >= t->want_sreq */
bool h2t_cond_first_response(void *arg);
bool h2t_cond_no_streams(void *arg); /* both sessions have no open stream */
bool h2t_cond_read(void *arg);       /* read r->want bytes, or EOF/error when want is 0 */

#endif
