/*
 * mark.c - the ambient.istio.io/redirection annotation; see mark.h.
 *
 * One entry per pod whose annotation is not as wanted, or has a patch in
 * flight; a pod whose annotation matches is not remembered at all. Rounds
 * come from enroll.c after every change it sees; the timer only serves
 * backoffs and settle deadlines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "log/log.h"
#include "mark.h"

struct mark {
    struct mark *next;
    struct marker *mk;
    char *ns, *name, *uid;
    enum mark_want want; /* as of the last round */
    bool ok;             /* the store showed it as wanted in the last round */
    bool seen;
    struct kube_request *req;
    enum mark_want sent; /* the request in flight, or the last that succeeded */
    uint64_t settle_until, retry_at, since;
    unsigned backoff_ms;
};

struct marker {
    struct loop *loop;
    struct kube_client *kc;
    struct mark *marks;
    size_t inflight;
    struct loop_timer timer;
    struct loop_defer pump_defer, free_defer;
    bool stopped;
    struct marker_stats st;
    struct log_ratelimit rl;
};

static bool
needs(const struct mark *m)
{
    return m->want != MARK_LEAVE && !m->ok;
}

static void
mark_free(struct mark *m)
{
    if (m->req != NULL) {
        kube_request_cancel(m->req);
        m->mk->inflight--;
    }
    free(m->ns);
    free(m->name);
    free(m->uid);
    free(m);
}

static void pump(void *arg);

static void
pump_soon(struct marker *mk)
{
    loop_defer(mk->loop, &mk->pump_defer, pump, mk);
}

static void
unlink_mark(struct marker *mk, struct mark *m)
{
    for (struct mark **pp = &mk->marks; *pp != NULL; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            return;
        }
}

static void
on_patched(void *arg, int status, const json_t *body)
{
    struct mark *m = arg;
    struct marker *mk = m->mk;
    uint64_t now = loop_now_ms(mk->loop);
    const char *msg = json_string_value(json_object_get(body, "message"));
    (void)body;

    m->req = NULL;
    mk->inflight--;
    if (status >= 200 && status < 300) {
        mk->st.ok++;
        m->settle_until = now + MARK_SETTLE_MS;
        m->backoff_ms = 0;
        m->retry_at = 0;
        if (m->sent == MARK_SET)
            log_info("%s/%s: annotated %s=%s (%llu ms after it joined the mesh)", m->ns, m->name,
                     MARK_ANNOTATION, MARK_VALUE, (unsigned long long)(now - m->since));
        else
            log_info("%s/%s: %s removed (%llu ms after it left the mesh)", m->ns, m->name,
                     MARK_ANNOTATION, (unsigned long long)(now - m->since));
    } else if (status == 404) {
        /* The pod is gone; its deletion reaches the store and ends the matter. */
        unlink_mark(mk, m);
        mark_free(m);
    } else {
        mk->st.failed++;
        m->backoff_ms = m->backoff_ms == 0                        ? MARK_BACKOFF_MIN_MS
                        : m->backoff_ms * 2 > MARK_BACKOFF_MAX_MS ? MARK_BACKOFF_MAX_MS
                                                                  : m->backoff_ms * 2;
        /* Jitter by up to half the delay, so a node's pods do not retry in step. */
        uint64_t delay = m->backoff_ms / 2 + (uint64_t)random() % (m->backoff_ms / 2 + 1);
        m->retry_at = now + delay;
        if (status < 0)
            log_warn_rl(&mk->rl, "%s/%s: patching %s: %s; retrying in %llu ms", m->ns, m->name,
                        MARK_ANNOTATION, mesh_strerror(status), (unsigned long long)delay);
        else
            log_warn_rl(&mk->rl, "%s/%s: patching %s: HTTP %d%s%.200s; retrying in %llu ms", m->ns,
                        m->name, MARK_ANNOTATION, status, msg ? ": " : "", msg ? msg : "",
                        (unsigned long long)delay);
    }
    pump_soon(mk);
}

static void
send_patch(struct marker *mk, struct mark *m)
{
    char path[600];
    json_t *ann = json_object(), *meta = json_object(), *body = json_object();

    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/status", m->ns, m->name);
    json_object_set_new(ann, MARK_ANNOTATION,
                        m->want == MARK_SET ? json_string(MARK_VALUE) : json_null());
    /* A precondition: a pod re-created under this name has another uid, and the patch fails. */
    if (m->uid[0] != '\0')
        json_object_set_new(meta, "uid", json_string(m->uid));
    json_object_set_new(meta, "annotations", ann);
    json_object_set_new(body, "metadata", meta);
    m->sent = m->want;
    m->req = kube_request(mk->kc, "PATCH", path, "application/merge-patch+json", body,
                          MARK_TIMEOUT_MS, on_patched, m);
    json_decref(body);
    mk->st.sent++;
    if (m->req == NULL) {
        /* Not even sent (the client is closing): like a failure, without the callback. */
        mk->inflight++;
        m->req = NULL;
        on_patched(m, -EIO, NULL);
        return;
    }
    mk->inflight++;
}

static void
pump(void *arg)
{
    struct marker *mk = arg;
    uint64_t now, next = 0;

    if (mk->stopped)
        return;
    now = loop_now_ms(mk->loop);
    for (struct mark *m = mk->marks; m != NULL; m = m->next) {
        if (!needs(m) || m->req != NULL)
            continue;
        uint64_t at = m->retry_at;
        if (m->sent == m->want && m->settle_until > at)
            at = m->settle_until; /* patched; the watch has not shown it yet */
        if (at > now) {
            if (next == 0 || at < next)
                next = at;
            continue;
        }
        if (mk->inflight >= MARK_INFLIGHT_MAX)
            continue; /* a completion pumps again */
        send_patch(mk, m);
    }
    if (next != 0)
        loop_timer_start(mk->loop, &mk->timer, next - now, pump, mk);
    else
        loop_timer_stop(mk->loop, &mk->timer);
}

struct marker *
marker_new(struct loop *l, struct kube_client *kc)
{
    struct marker *mk = xcalloc(1, sizeof(*mk));
    mk->loop = l;
    mk->kc = kc;
    mk->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    return mk;
}

void
marker_free(struct marker *mk)
{
    if (mk == NULL)
        return;
    mk->stopped = true;
    loop_timer_stop(mk->loop, &mk->timer);
    while (mk->marks != NULL) {
        struct mark *m = mk->marks;
        mk->marks = m->next;
        mark_free(m);
    }
    /* A queued pump (it runs first, and sees |stopped|) must not find |mk| freed. */
    loop_defer(mk->loop, &mk->free_defer, free, mk);
}

void
marker_begin(struct marker *mk)
{
    for (struct mark *m = mk->marks; m != NULL; m = m->next)
        m->seen = false;
}

void
marker_pod(struct marker *mk, const char *ns, const char *name, const char *uid, const char *value,
           enum mark_want want)
{
    bool ok = want == MARK_LEAVE ||
              (want == MARK_SET && value != NULL && strcmp(value, MARK_VALUE) == 0) ||
              (want == MARK_CLEAR && value == NULL);
    struct mark *m = mk->marks;

    while (m != NULL && (strcmp(m->ns, ns) != 0 || strcmp(m->name, name) != 0))
        m = m->next;
    if (m == NULL && ok)
        return;
    if (m == NULL) {
        m = xcalloc(1, sizeof(*m));
        m->mk = mk;
        m->ns = xstrdup(ns);
        m->name = xstrdup(name);
        m->uid = xstrdup(uid);
        m->sent = MARK_LEAVE;
        m->next = mk->marks;
        mk->marks = m;
    } else if (strcmp(m->uid, uid) != 0) {
        /* Another pod of that name: nothing of the old one's history applies. */
        free(m->uid);
        m->uid = xstrdup(uid);
        m->settle_until = m->retry_at = 0;
        m->backoff_ms = 0;
        m->sent = MARK_LEAVE;
    }
    if (!ok && (m->ok || m->want != want))
        m->since = loop_now_ms(mk->loop);
    m->want = want;
    m->ok = ok;
    m->seen = true;
}

void
marker_end(struct marker *mk)
{
    for (struct mark **pp = &mk->marks; *pp != NULL;) {
        struct mark *m = *pp;
        /* Gone from the node, or done: forget it (a gone pod's request is cancelled). */
        if (!m->seen || (!needs(m) && m->req == NULL)) {
            *pp = m->next;
            mark_free(m);
            continue;
        }
        pp = &m->next;
    }
    pump(mk);
}

void
marker_stats(const struct marker *mk, struct marker_stats *out)
{
    *out = mk->st;
    out->pending = 0;
    for (const struct mark *m = mk->marks; m != NULL; m = m->next)
        if (needs(m))
            out->pending++;
}
