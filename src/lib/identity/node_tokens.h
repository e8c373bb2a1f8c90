/*
 * node_tokens.h - a proxy's credentials for meshd (control-plane mode): one
 * node token per audience (xds, ca) from a token file, kept in memory,
 * renewed at half-life with TOKEN_RENEW_METHOD and taken from the file again
 * whenever it changes on disk. ztunnel and the waypoint both present them as
 * "authorization: Bearer <token>" (casvc/token.h has the format).
 */
#ifndef MESH_LIB_NODE_TOKENS_H
#define MESH_LIB_NODE_TOKENS_H

#include <stddef.h>

#include "casvc/token.h"
#include "channel/channel.h"
#include "loop/loop.h"

struct node_tokens_config {
    struct loop *loop;
    const char *path;          /* the token file (--token) */
    struct channel *xds_chan;  /* the xds token renews over this... */
    struct channel *ca_chan;   /* ...the ca token over this (both borrowed, outlive the tokens) */
    const char *authority;     /* :authority of renewal calls (the name meshd's certificate has) */
    const char *cluster;       /* "clusterid" metadata */
    const char *who;           /* the program, for log lines ("ztunnel") */
};

struct node_tokens;

/* Reads the file now (unreadable is logged, not fatal: every use tries again); renewals start
 * with the loop. The strings of |cfg| are copied. */
struct node_tokens *node_tokens_new(const struct node_tokens_config *cfg);
/* Cancels renewals in flight. Accepts NULL. */
void node_tokens_free(struct node_tokens *t);

/*
 * "Bearer <token>" for |aud|: the one in memory, or the file's if it changed
 * on disk since. Returns 0 or -1 with |why|.
 */
int node_tokens_bearer(struct node_tokens *t, enum token_aud aud, char *out, size_t outlen,
                       char *why, size_t whylen);

/* node_tokens_bearer() for one audience, in the shape certmgr and ads take (|t| is the tokens). */
int node_tokens_bearer_xds(void *t, char *out, size_t outlen, char *why, size_t whylen);
int node_tokens_bearer_ca(void *t, char *out, size_t outlen, char *why, size_t whylen);

#endif
