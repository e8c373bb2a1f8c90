/*
 * cpcall.c - a call to meshd with the proxy's metadata (cpcall.h).
 */
#include <stdio.h>

#include "casvc/token.h"
#include "cpcall/cpcall.h"

struct rpc_call *
cpcall_start(struct h2_session *s, const struct cpcall_auth *a, const char *path,
             size_t max_msg, const struct rpc_call_cbs *cbs, void *arg, const char *peer,
             char *why, size_t whylen)
{
    char auth[TOKEN_BEARER_MAX] = "";
    if (a->bearer != NULL && a->bearer(a->bearer_arg, auth, sizeof(auth), why, whylen) < 0)
        return NULL;
    struct h2_header md[] = {
        {"clusterid", a->cluster},
        {"authorization", auth},
    };
    struct rpc_call *c =
        rpc_call_start(s, path, a->authority, md, a->bearer != NULL ? 2 : 1, max_msg, cbs, arg);
    if (c == NULL)
        snprintf(why, whylen, "cannot open a call to %s", peer);
    return c;
}
