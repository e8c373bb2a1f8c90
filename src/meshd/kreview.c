/*
 * kreview.c - Kubernetes service-account tokens on 15012, as istiod takes
 * them (reference istio-ambient.md 4.2): a bearer token that is not one of
 * meshd's node tokens is sent to the API server in a TokenReview (audience
 * istio-ca) through d->kube; lib/kubeauth reads the answer and finds the
 * caller's pod, and so its node, in the store.
 *
 * The loop never waits: the call's stream is held, unread, while its review
 * is in flight, then handed to server.c as authenticated or refused. Calls
 * with the same token share one review. A held call's request bytes wait in
 * HTTP/2's buffers, which flow control bounds by the stream window (4 MiB) and
 * the connection window (16 MiB), so the number of held calls is what bounds
 * that memory: KREVIEW_MAX_WAITING in all and KREVIEW_MAX_WAITING_PER_ADDR per
 * peer address (a ztunnel's start holds at most 8 CA calls and its xDS
 * stream, until its token's first review answers; later calls hit the cache
 * and are not held). Also KREVIEW_MAX_INFLIGHT reviews. Beyond a cap a call
 * fails UNAVAILABLE at once; KREVIEW_TIMEOUT_MS per review (then UNAVAILABLE). Answers are
 * cached by the token's SHA-256: an authenticated token for a minute at most
 * and never past its exp, a refused one for a few seconds; failures to get an
 * answer are not cached. The token itself is never logged or kept.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "kube-auth"
#include "base/base.h"
#include "grpc/grpc.h"
#include "kube/kube.h"
#include "kubeauth/kubeauth.h"
#include "log/log.h"
#include "meshd_server.h"

#define KREVIEW_MAX_INFLIGHT 64
#define KREVIEW_MAX_WAITING 256
#define KREVIEW_MAX_WAITING_PER_ADDR 16
#define KREVIEW_TIMEOUT_MS 5000
#define KREVIEW_CACHE_ENTRIES 4096

struct waiter {
    struct waiter *next;
    struct h2_stream *st; /* held unread until the answer */
    struct ipaddr addr;
    char peer[ADDR_STRLEN + 8];
};

struct review {
    struct review *prev, *next;
    struct kreview *kr;
    uint8_t digest[KUBEAUTH_DIGEST_LEN];
    int64_t token_exp; /* the token's exp claim, 0 when unknown */
    struct kube_request *req;
    struct loop_timer timer;
    uint64_t started_ms;
    struct waiter *waiters;
};

struct kreview {
    struct meshd_server *srv;
    struct kubeauth_cache *cache;
    struct review *reviews;
    unsigned n_reviews, n_waiting;
};

static struct log_ratelimit fail_rl = LOG_RATELIMIT_INIT(10000, 5);

void
kreview_start(struct meshd_server *srv)
{
    struct kreview *kr = xcalloc(1, sizeof(*kr));
    kr->srv = srv;
    kr->cache = kubeauth_cache_new(KREVIEW_CACHE_ENTRIES);
    srv->kr = kr;
}

void
kreview_counts(const struct meshd_server *srv, unsigned *reviews, unsigned *waiting)
{
    *reviews = srv->kr ? srv->kr->n_reviews : 0;
    *waiting = srv->kr ? srv->kr->n_waiting : 0;
}

/* The answer for one call: its pod in the store now decides its node. */
static void
conclude(struct kreview *kr, struct h2_stream *st, const char *peer,
         const struct kubeauth_identity *id)
{
    struct meshd *d = kr->srv->d;
    struct caller c;
    char why[KUBEAUTH_WHY_MAX];

    memset(&c, 0, sizeof(c));
    if (kubeauth_decide(id, config_store(d->config), &d->opts.trusted_node_accounts, &c.k, why,
                        sizeof(why)) < 0) {
        server_call_refused(kr->srv, st, peer, GRPC_STATUS_UNAUTHENTICATED, why);
        return;
    }
    if (!token_node_valid(c.k.node)) {
        server_call_refused(kr->srv, st, peer, GRPC_STATUS_UNAUTHENTICATED,
                            "the pod's node name is not a valid node name");
        return;
    }
    c.kube = true;
    snprintf(c.node, sizeof(c.node), "%s", c.k.node);
    server_call_authenticated(kr->srv, st, &c);
}

static void
review_free(struct review *r)
{
    struct kreview *kr = r->kr;
    loop_timer_stop(kr->srv->d->loop, &r->timer);
    if (r->prev)
        r->prev->next = r->next;
    else
        kr->reviews = r->next;
    if (r->next)
        r->next->prev = r->prev;
    kr->n_reviews--;
    free(r);
}

/*
 * Ends review |r| for all its waiters: |id| authenticated, else refused
 * with |status| for |why|. |r| is freed first, so a waiter's outcome (which
 * may start or end other calls) never sees it.
 */
static void
finish(struct review *r, const struct kubeauth_identity *id, int status, const char *why)
{
    struct kreview *kr = r->kr;
    struct waiter *w = r->waiters;
    r->waiters = NULL;
    review_free(r);
    while (w != NULL) {
        struct waiter *next = w->next;
        kr->n_waiting--;
        if (id != NULL)
            conclude(kr, w->st, w->peer, id);
        else
            server_call_refused(kr->srv, w->st, w->peer, status, why);
        free(w);
        w = next;
    }
}

static void
on_timeout(void *arg)
{
    struct review *r = arg;
    struct meshd *d = r->kr->srv->d;
    kube_request_cancel(r->req);
    r->req = NULL;
    d->stats.kube_review_failures++;
    log_warn_rl(&fail_rl, "TokenReview: no answer from the API server in %d ms",
                KREVIEW_TIMEOUT_MS);
    finish(r, NULL, GRPC_STATUS_UNAVAILABLE, "TokenReview timed out");
}

static void
on_answer(void *arg, int status, const json_t *body)
{
    struct review *r = arg;
    struct kreview *kr = r->kr;
    struct meshd *d = kr->srv->d;
    struct kubeauth_identity id;
    char why[KUBEAUTH_WHY_MAX];
    uint64_t now = loop_now_ms(d->loop), took = now - r->started_ms;

    r->req = NULL;
    if (status > 0) {
        d->stats.kube_review_latency_count++;
        d->stats.kube_review_latency_ms_sum += took;
        if (took > d->stats.kube_review_latency_ms_max)
            d->stats.kube_review_latency_ms_max = took;
    }
    if (status != 200 && status != 201) {
        /* No answer about the token: the caller may try again; nothing is cached. */
        const char *msg = json_string_value(json_object_get(body, "message"));
        d->stats.kube_review_failures++;
        if (status < 0)
            log_warn_rl(&fail_rl, "TokenReview failed: %s", mesh_strerror(status));
        else
            log_warn_rl(&fail_rl, "TokenReview failed: HTTP %d%s%.200s%s", status,
                        msg ? " (" : "", msg ? msg : "", msg ? ")" : "");
        if (status == 401 || status == 403)
            log_warn_rl(&fail_rl, "meshd's own credential may not create tokenreviews "
                                  "(authentication.k8s.io): check its ClusterRole");
        finish(r, NULL, GRPC_STATUS_UNAVAILABLE, "TokenReview failed");
        return;
    }
    if (kubeauth_review_parse(body, &id, why, sizeof(why)) < 0) {
        d->stats.kube_review_refusals++;
        kubeauth_cache_put(kr->cache, r->digest, now + KUBEAUTH_CACHE_NEGATIVE_MS, NULL, why);
        finish(r, NULL, GRPC_STATUS_UNAUTHENTICATED, why);
        return;
    }
    /* A minute at most, and never past the token's own expiry. */
    uint64_t until = now + KUBEAUTH_CACHE_POSITIVE_MS;
    int64_t wall = (int64_t)(clock_wall_ms() / 1000);
    if (r->token_exp > 0) {
        int64_t left_ms = (r->token_exp - wall) * 1000;
        if (left_ms <= 0)
            until = 0; /* clocks disagree: answer this once, keep nothing */
        else if ((uint64_t)left_ms < KUBEAUTH_CACHE_POSITIVE_MS)
            until = now + (uint64_t)left_ms;
    }
    kubeauth_cache_put(kr->cache, r->digest, until, &id, NULL);
    finish(r, &id, 0, NULL);
}

/* May one more call from |addr| be held? */
static bool
may_hold(const struct kreview *kr, const struct ipaddr *addr)
{
    unsigned same = 0;
    if (kr->n_waiting >= KREVIEW_MAX_WAITING)
        return false;
    for (const struct review *r = kr->reviews; r != NULL; r = r->next)
        for (const struct waiter *w = r->waiters; w != NULL; w = w->next)
            same += ipaddr_eq(&w->addr, addr);
    return same < KREVIEW_MAX_WAITING_PER_ADDR;
}

static void
add_waiter(struct kreview *kr, struct review *r, struct h2_stream *st,
           const struct ipaddr *addr, const char *peer)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    w->st = st;
    w->addr = *addr;
    snprintf(w->peer, sizeof(w->peer), "%s", peer);
    w->next = r->waiters;
    r->waiters = w;
    kr->n_waiting++;
}

void
kreview_call(struct meshd_server *srv, struct h2_stream *st, const struct ipaddr *addr,
             const char *peer, const char *tok, size_t len)
{
    struct kreview *kr = srv->kr;
    struct meshd *d = srv->d;
    struct kubeauth_identity id;
    char why[KUBEAUTH_WHY_MAX];
    uint8_t digest[KUBEAUTH_DIGEST_LEN];

    if (d->kube == NULL || kr == NULL) {
        server_call_refused(srv, st, peer, GRPC_STATUS_UNAUTHENTICATED,
                            "malformed token (not a node token; Kubernetes tokens need "
                            "--kubeconfig or --in-cluster)");
        return;
    }
    if (!kubeauth_token_plausible(tok, len)) {
        server_call_refused(srv, st, peer, GRPC_STATUS_UNAUTHENTICATED, "malformed token");
        return;
    }
    kubeauth_digest(tok, len, digest);
    int hit = kubeauth_cache_get(kr->cache, digest, loop_now_ms(d->loop), &id, why, sizeof(why));
    if (hit >= 0) {
        d->stats.kube_review_cache_hits++;
        if (hit == 1)
            conclude(kr, st, peer, &id);
        else
            server_call_refused(srv, st, peer, GRPC_STATUS_UNAUTHENTICATED, why);
        return;
    }
    if (!may_hold(kr, addr)) {
        d->stats.kube_review_failures++;
        server_call_refused(srv, st, peer, GRPC_STATUS_UNAVAILABLE,
                            "too many calls waiting for a TokenReview");
        return;
    }
    for (struct review *r = kr->reviews; r != NULL; r = r->next)
        if (memcmp(r->digest, digest, KUBEAUTH_DIGEST_LEN) == 0) {
            add_waiter(kr, r, st, addr, peer);
            d->stats.kube_review_coalesced++;
            return;
        }
    if (kr->n_reviews >= KREVIEW_MAX_INFLIGHT) {
        d->stats.kube_review_failures++;
        server_call_refused(srv, st, peer, GRPC_STATUS_UNAVAILABLE,
                            "too many TokenReviews in flight");
        return;
    }
    json_t *body = kubeauth_review_request(tok, len);
    struct review *r = xcalloc(1, sizeof(*r));
    r->kr = kr;
    memcpy(r->digest, digest, sizeof(digest));
    int64_t exp;
    r->token_exp = kubeauth_token_expiry(tok, len, &exp) ? exp : 0;
    r->started_ms = loop_now_ms(d->loop);
    /* Our timer is the deadline; the client's, a little later, only backs it up. */
    r->req = kube_request(d->kube, "POST", KUBEAUTH_REVIEW_PATH, NULL, body,
                          KREVIEW_TIMEOUT_MS + 1000, on_answer, r);
    json_decref(body);
    if (r->req == NULL) {
        free(r);
        d->stats.kube_review_failures++;
        log_warn_rl(&fail_rl, "TokenReview could not be sent to the API server");
        server_call_refused(srv, st, peer, GRPC_STATUS_UNAVAILABLE, "TokenReview not sent");
        return;
    }
    d->stats.kube_reviews++;
    r->next = kr->reviews;
    if (kr->reviews)
        kr->reviews->prev = r;
    kr->reviews = r;
    kr->n_reviews++;
    add_waiter(kr, r, st, addr, peer);
    loop_timer_start(d->loop, &r->timer, KREVIEW_TIMEOUT_MS, on_timeout, r);
}

void
kreview_stop(struct meshd_server *srv)
{
    struct kreview *kr = srv->kr;
    if (kr == NULL)
        return;
    while (kr->reviews != NULL) {
        struct review *r = kr->reviews;
        kube_request_cancel(r->req);
        for (struct waiter *w = r->waiters, *next; w != NULL; w = next) {
            next = w->next;
            stream_close(h2_stream_as_stream(w->st), true);
            free(w);
        }
        r->waiters = NULL;
        review_free(r);
    }
    kubeauth_cache_free(kr->cache);
    free(kr);
    srv->kr = NULL;
}
