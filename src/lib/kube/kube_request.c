/*
 * kube_request.c - one request, its whole answer: the body is collected (up
 * to KUBE_MAX_BODY_BYTES; more fails the request) and parsed as JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kube/kube_client_priv.h"

#define DEFAULT_TIMEOUT_MS 30000

struct kube_request {
    struct kube_call *call;
    kube_response_fn *cb;
    void *arg;
    int status;
    char *body;
    size_t len, cap;
};

static void
request_free(struct kube_request *r)
{
    free(r->body);
    free(r);
}

static void
finish(struct kube_request *r, int status)
{
    json_t *j = NULL;
    if (status > 0 && r->len > 0 && !kube_json_too_deep(r->body, r->len))
        j = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
    r->cb(r->arg, status, j);
    json_decref(j);
    request_free(r);
}

static void
on_head(void *arg, struct kube_call *k, int status, const char *retry_after)
{
    struct kube_request *r = arg;
    (void)k;
    (void)retry_after;
    if (status < 0)
        finish(r, status);
    else
        r->status = status;
}

static int
on_data(void *arg, struct kube_call *k, const char *p, size_t n)
{
    struct kube_request *r = arg;
    (void)k;
    if (n > KUBE_MAX_BODY_BYTES - r->len) {
        finish(r, -MESH_ELIMIT);
        return -1;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap > 0 ? r->cap : 16384;
        while (cap < r->len + n)
            cap *= 2;
        r->body = xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    return 0;
}

static void
on_end(void *arg, struct kube_call *k, int err)
{
    struct kube_request *r = arg;
    (void)k;
    finish(r, err < 0 ? err : r->status);
}

static void
on_drop(void *arg, struct kube_call *k)
{
    (void)k;
    request_free(arg);
}

static const struct kube_call_cbs request_cbs = {
    .on_head = on_head,
    .on_data = on_data,
    .on_end = on_end,
    .on_drop = on_drop,
};

struct kube_request *
kube_request(struct kube_client *c, const char *method, const char *path,
             const char *content_type, const json_t *body, unsigned timeout_ms,
             kube_response_fn *cb, void *arg)
{
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            return NULL;
    }
    struct kube_request *r = xcalloc(1, sizeof(*r));
    r->cb = cb;
    r->arg = arg;
    r->call = kube_call_start(c, method, path, text != NULL ? content_type : NULL, text,
                              text != NULL ? strlen(text) : 0,
                              timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS, &request_cbs, r);
    free(text);
    if (r->call == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void
kube_request_cancel(struct kube_request *r)
{
    if (r == NULL)
        return;
    kube_call_cancel(r->call);
    request_free(r);
}
