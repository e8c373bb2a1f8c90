/*
 * unit_kubesrv.h - a scripted fake Kubernetes API server for lib/kube's unit
 * tests: HTTP/2 over TLS on 127.0.0.1 (port chosen by the kernel) with a
 * certificate for IP 127.0.0.1 from a CA minted at test time. Each complete
 * request (headers and body) goes to the test's handler, which answers whole
 * (fks_respond) or streams (fks_begin, fks_write, fks_end); writes can be
 * paced so every byte leaves in its own DATA frame and TLS record. The test
 * can cut every connection (TCP close, no GOAWAY) or send GOAWAY.
 */
#ifndef MESH_TESTS_UNIT_KUBESRV_H
#define MESH_TESTS_UNIT_KUBESRV_H

#include <stdbool.h>
#include <stddef.h>

#include "h2/h2.h"
#include "loop/loop.h"

#define FKS_MAX_REQS 64 /* streams open at once */

struct fks;

struct fks_req {
    struct fks *f;
    struct h2_stream *st;
    char method[16];
    char path[512];   /* without the query */
    char query[2048]; /* raw, without '?' */
    char auth[512];   /* the authorization header, "" if none */
    char *body;       /* the request body (NUL-terminated), "" if none */
    size_t body_len;
    /* streamed answers */
    char *out;
    size_t out_len, out_off;
    size_t pace;    /* bytes per loop turn; 0: all at once */
    bool end_after; /* end the stream once |out| is sent */
    bool begun, done, gone;
    struct loop_timer pace_timer;
    void *user; /* for the test */
};

typedef void fks_handler_fn(void *arg, struct fks_req *rq);

struct fks *fks_new(struct loop *l, fks_handler_fn *cb, void *arg);
/* Closes every connection and frees. */
void fks_free(struct fks *f);
/* "https://127.0.0.1:PORT" */
const char *fks_server(const struct fks *f);
/* The CA's certificate (PEM) that the server's certificate chains to. */
const char *fks_ca_pem(const struct fks *f);
/* A certificate (PEM) and key of another CA, for negative tests. */
const char *fks_other_ca_pem(const struct fks *f);

/* Query parameter |key| percent-decoded into |out|; false if absent. */
bool fks_param(const struct fks_req *rq, const char *key, char *out, size_t cap);

/* A whole answer with an optional extra header (NULL name: none). */
void fks_respond(struct fks_req *rq, int status, const char *body, const char *hname,
                 const char *hvalue);
/* A streamed answer: status now, then fks_write() and fks_end(). */
void fks_begin(struct fks_req *rq, int status);
/* Queues |n| bytes; with |pace| > 0 they leave |pace| bytes per loop turn. */
void fks_write(struct fks_req *rq, const char *p, size_t n);
void fks_write_str(struct fks_req *rq, const char *s);
/* Ends the answer after what was queued. */
void fks_end(struct fks_req *rq);
/* Resets the stream (RST_STREAM). */
void fks_reset(struct fks_req *rq);

/* Closes every connection at once (no GOAWAY): a crash or a cut cable. */
void fks_cut(struct fks *f);
/* GOAWAY on every connection: open streams finish, new ones need another connection. */
void fks_goaway(struct fks *f);
/* Connections accepted so far; requests seen so far. */
unsigned fks_connections(const struct fks *f);
unsigned fks_requests(const struct fks *f);
/* Requests still open (not ended nor gone). |rq| pointers stay valid until fks_free. */
size_t fks_open(const struct fks *f, struct fks_req **out, size_t max);

#endif
