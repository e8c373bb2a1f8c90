/*
 * cpcall.h - calls from a proxy to meshd (xDS, CA, token renewal): the
 * metadata every one of them carries, "clusterid" and, when the proxy has a
 * credential, "authorization: Bearer <node token>" (as Istio's proxies send
 * them), and a unary call with a deadline in cp_unary.h.
 */
#ifndef MESH_LIB_CPCALL_H
#define MESH_LIB_CPCALL_H

#include <stddef.h>

#include "h2/h2.h"
#include "rpc/rpc.h"

/* Who calls meshd; the strings are borrowed. */
struct cpcall_auth {
    const char *authority; /* :authority (the name meshd's certificate has) */
    const char *cluster;   /* "clusterid" metadata */
    /* "Bearer <token>" into |out|, asked when the call starts; 0, or -1 with |why|. NULL: no
     * authorization metadata. */
    int (*bearer)(void *arg, char *out, size_t outlen, char *why, size_t whylen);
    void *bearer_arg;
};

/*
 * Starts a call to |path| on the ready session |s| with |a|'s metadata
 * (rpc_call_start()). Returns it, or NULL with |why| (no credential, or the
 * session takes no new stream: "cannot open a call to |peer|").
 */
struct rpc_call *cpcall_start(struct h2_session *s, const struct cpcall_auth *a, const char *path,
                              size_t max_msg, const struct rpc_call_cbs *cbs, void *arg,
                              const char *peer, char *why, size_t whylen);

#endif
