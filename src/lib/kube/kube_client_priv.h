/*
 * kube_client_priv.h - the client's state, shared by kube_client.c (the
 * connection and calls), kube_request.c and kube_reflector.c (which link
 * themselves in, so kube_client_free() can stop them).
 */
#ifndef MESH_LIB_KUBE_CLIENT_PRIV_H
#define MESH_LIB_KUBE_CLIENT_PRIV_H

#include <sys/stat.h>

#include <openssl/ssl.h>

#include "kube/kube_proto.h"
#include "loop/loop.h"
#include "net/addr.h"
#include "log/log.h"

#define KUBE_USER_AGENT_VERSION "0.1"

struct h2_session;
struct dial;

struct kube_client {
    struct loop *loop;
    struct kube_server srv;
    SSL_CTX *ctx;
    char *token, *token_file, *auth; /* auth: "Bearer <token>" */
    struct stat token_st;
    uint64_t token_checked_ms;
    struct dial *dial;
    int resolve_fd; /* a name being resolved (-1: none) */
    struct loop_io resolve_io;
    struct h2_session *sess;   /* connecting or ready; NULL when down */
    bool sess_ready;           /* |sess| completed its handshake */
    struct h2_session *old[8]; /* draining after GOAWAY */
    size_t n_old;
    struct kube_backoff dial_bo;
    uint64_t next_dial_ms;
    struct loop_timer redial;
    struct loop_defer kick_defer, free_defer;
    struct kube_call *calls; /* every live call, sent or waiting */
    struct kube_reflector *reflectors;
    uint64_t bo_min, bo_max;
    size_t max_event;         /* KUBE_MAX_EVENT_BYTES unless a test lowers it */
    unsigned absent_retry_ms; /* KUBE_ABSENT_RETRY_MS unless a test lowers it */
    unsigned max_pages;       /* KUBE_MAX_LIST_PAGES unless a test lowers it */
    struct log_ratelimit rl;
    bool freeing;
    unsigned long connects, requests, goaways, token_reads;
};

/* ---- kube_client.c: a streaming call ---- */

struct kube_call;

struct kube_call_cbs {
    /* The response head (status >= 100), or the failure before it (<0: then nothing follows). */
    void (*on_head)(void *arg, struct kube_call *k, int status, const char *retry_after);
    /* Body bytes; <0 aborts the call (on_end is not called). */
    int (*on_data)(void *arg, struct kube_call *k, const char *p, size_t n);
    /* The body ended: 0 at a clean end, <0 when the stream failed. The call is gone after. */
    void (*on_end)(void *arg, struct kube_call *k, int err);
    /* kube_client_free() with the call still live: release the owner's state, nothing else. */
    void (*on_drop)(void *arg, struct kube_call *k);
};

/*
 * Starts |method| |path| (the server's prefix is prepended) with |body| of
 * |len| bytes as |content_type|. |timeout_ms| bounds the whole call (0: none).
 * Waits for the connection if it is being made. Callbacks run from the loop,
 * never from here. NULL if it cannot be queued (the client is closing).
 */
struct kube_call *kube_call_start(struct kube_client *c, const char *method, const char *path,
                                  const char *content_type, const char *body, size_t len,
                                  uint64_t timeout_ms, const struct kube_call_cbs *cbs, void *arg);
/* Abandons |k| (reset if sent); no callback follows. */
void kube_call_cancel(struct kube_call *k);

struct loop *kube_client_loop(const struct kube_client *c);

/* The backoff range reflectors of |c| use (kube_client_set_backoff()). */
void kube_client_backoff_range(const struct kube_client *c, uint64_t *min_ms, uint64_t *max_ms);

/* ---- kube_resolve.c: a host name resolved on a helper thread ---- */

struct kube_resolved {
    int err; /* 0, or -EHOSTUNREACH */
    struct ipaddr ip;
    char why[128];
};

/* Starts resolving |host|; returns the fd that becomes readable with the answer, or -errno. */
int kube_resolve_start(const char *host);
/* Reads the answer from |fd| (the caller closes it): 0, or -EAGAIN if not there yet. */
int kube_resolve_finish(int fd, struct kube_resolved *out);

/*
 * Pages of one list at most (10 M objects at limit 500): a server that hands
 * out continue tokens forever is cut off, and the list starts again later.
 */
#define KUBE_MAX_LIST_PAGES 20000
/* Test hook: a lower page cap. */
void kube_client_set_max_pages(struct kube_client *c, unsigned max_pages);

/* Reflectors link themselves into their client's list. */
struct kube_reflector_link {
    struct kube_reflector *next, *prev;
};

/* Whitespace around a token removed in place. */
void kube_trim(char *s);

#endif
