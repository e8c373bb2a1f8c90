/*
 * wp_h2_fixture.h - drives wp_http2_serve() over socketpairs, on top of the HTTP/1.1 engine's
 * fixture (its model, routes, policies and fake connect()): an HTTP/2 client session (lib/h2)
 * on the downstream pair, and an HTTP/2 server session on each fake endpoint connection whose
 * requests the test answers by hand or that echo on their own.
 */
#ifndef MESH_TESTS_WP_H2_FIXTURE_H
#define MESH_TESTS_WP_H2_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/h2.h"
#include "wp_h1_fixture.h"

#define W2_REQS  1024
#define W2_CALLS 1024
#define W2_HDRS  8192

/* Bytes one side writes to a stream, as far as it takes them. */
struct w2_tx {
    const uint8_t *p;
    size_t len, off;
    bool shut; /* end the stream once sent */
    const char *const *trailers; /* instead of a plain end: "name", "value", ..., NULL */
    bool ended;
};

/* What one side read from a stream. */
struct w2_rx {
    uint8_t *p;
    size_t len, cap;
    bool eof;
    int err;
    bool paused; /* the reader does not read (a slow client or endpoint) */
};

/* A request as a fake endpoint received it. */
struct w2_req {
    struct w2 *w;
    int be; /* index into t.be */
    struct h2_stream *st;
    char method[16], path[1024], authority[256];
    char hdrs[W2_HDRS]; /* "name: value\n" each */
    char trailers[2048]; /* the request's, once its body ended */
    struct w2_rx rx;
    struct w2_tx tx;
    bool responded, closed;
};

/* A request the test client made. */
struct w2_call {
    struct w2 *w;
    struct h2_stream *st;
    int status; /* 0 none yet; <0 error */
    char hdrs[W2_HDRS], trailers[2048];
    struct w2_rx rx;
    struct w2_tx tx;
    bool closed;
};

enum w2_mode {
    W2_MANUAL = 0, /* the test answers */
    W2_ECHO,       /* 200 once the body ended, the body back, x-ep and x-path headers */
};

struct w2 {
    struct wpt t;
    struct h2_session *cs;
    bool cready;
    struct h2_session *bs[WPT_BACKENDS];
    int n_bs;
    struct w2_req *reqs[W2_REQS];
    int n_reqs;
    struct w2_call *calls[W2_CALLS];
    int n_calls;
    enum w2_mode mode;
    bool raw_be; /* endpoints speak HTTP/1.1: the test reads and writes their sockets */
};

void w2_setup(struct w2 *w, const char *spec);
void w2_setup_ex(struct w2 *w, const char *spec, int workload);
void w2_teardown(struct w2 *w);

/* Starts a request; |hdrs| "name", "value", ..., NULL; |body| sent then the end if |end|. */
int w2_call(struct w2 *w, const char *method, const char *path, const char *const *hdrs,
            const void *body, size_t len, bool end);
/* Sends more of a call's body (the previous must be sent) and maybe its end. */
void w2_call_more(struct w2 *w, int i, const void *body, size_t len, bool end);
/* Sends more of a call's body, then |trailers| ("name", "value", ..., NULL) as its end. */
void w2_call_trailers(struct w2 *w, int i, const void *body, size_t len,
                      const char *const *trailers);
/* Runs until call |i| has a status / is complete (EOF or error). */
bool w2_status(struct w2 *w, int i);
bool w2_complete(struct w2 *w, int i);
/* Runs until |n| endpoint requests arrived / request |r|'s body ended. */
bool w2_reqs(struct w2 *w, int n);
bool w2_req_eof(struct w2 *w, int r);
/* Answers endpoint request |r|: |hdrs| and |trailers| as above (NULL: none). */
void w2_respond(struct w2 *w, int r, int status, const char *const *hdrs, const void *body,
                size_t len, const char *const *trailers);
/* Sends response headers only, the body to come with w2_resp_more. */
void w2_resp_head(struct w2 *w, int r, int status, const char *const *hdrs);
void w2_resp_more(struct w2 *w, int r, const void *body, size_t len, bool end);
/* Resets (RST_STREAM CANCEL) an endpoint request / a client call. */
void w2_reset_req(struct w2 *w, int r);
void w2_reset_call(struct w2 *w, int i);
/* Runs |ms| of the loop (attaching endpoint sessions as they come). */
void w2_run(struct w2 *w, uint64_t ms);
bool w2_until(struct w2 *w, bool (*cond)(struct w2 *w, void *arg), void *arg, uint64_t ms);
/* Raw endpoints: runs until connection |i| has received |needle| (bytes in t.be[i].rx). */
bool w2_be_raw_has(struct w2 *w, int i, const char *needle);
/* The value of |name| in "name: value\n" lines, copied to |out|; NULL if absent. */
const char *w2_hdr(const char *hdrs, const char *name, char *out, size_t size);

#endif
