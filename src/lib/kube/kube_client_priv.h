/*
 * kube_client_priv.h - the client's state, shared by kube_client.c (the
 * connection and calls), kube_request.c and kube_reflector.c (which link
 * themselves in, so kube_client_free() can stop them).
 */
#ifndef MESH_LIB_KUBE_CLIENT_PRIV_H
#define MESH_LIB_KUBE_CLIENT_PRIV_H

#include <sys/stat.h>

#include <openssl/ssl.h>

#include "kube/kube_internal.h"
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
    struct h2_session *sess;    /* connecting or ready; NULL when down */
    bool sess_ready;            /* |sess| completed its handshake */
    struct h2_session *old[8];  /* draining after GOAWAY */
    size_t n_old;
    struct kube_backoff dial_bo;
    uint64_t next_dial_ms;
    struct loop_timer redial;
    struct loop_defer kick_defer, free_defer;
    struct kube_call *calls; /* every live call, sent or waiting */
    struct kube_reflector *reflectors;
    uint64_t bo_min, bo_max;
    size_t max_event;        /* KUBE_MAX_EVENT_BYTES unless a test lowers it */
    unsigned absent_retry_ms; /* KUBE_ABSENT_RETRY_MS unless a test lowers it */
    struct log_ratelimit rl;
    bool freeing;
    unsigned long connects, requests, goaways, token_reads;
};

/* Reflectors link themselves into their client's list. */
struct kube_reflector_link {
    struct kube_reflector *next, *prev;
};

/* Whitespace around a token removed in place. */
void kube_trim(char *s);

#endif
