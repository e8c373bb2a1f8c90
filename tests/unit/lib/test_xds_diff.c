/*
 * test_xds_diff.c - pushes built from snapshot diffs, checked against the
 * previous server stream (test_xds_ref.c, which compared every held name
 * with the snapshot on every push): random snapshot sequences (small
 * changes, big ones, going back to an older snapshot object, equal content),
 * several streams sharing them, wildcard and explicit subscriptions, initial
 * versions, ACKs, named and unnamed NACKs, stale nonces, split responses and
 * caps, all fed to both. Every response (but its nonce), return code, event,
 * counter and type status must be the same. Also: snapshot diffs against a
 * naive comparison, the diff cache, and what a stream keeps in the common case.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "test_xds_ref.h"
#include "xds/xds.h"
#include "xds/xds_internal.h"
#include "xds/xds_server.h"

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest pb_request;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse pb_response;

#define ADDR  XDS_TYPE_ADDRESS
#define AUTH  XDS_TYPE_AUTHORIZATION
#define OTHER "type.x/Other"

/* ---- Randomness and clock ---- */

static uint64_t rng;

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t
pick(size_t n)
{
    return (size_t)(rnd() % n);
}

static bool
chance(unsigned pct)
{
    return pick(100) < pct;
}

static uint64_t clock_now;

static uint64_t
now_fn(void *arg)
{
    (void)arg;
    return clock_now;
}

/* ---- The universe of resources ---- */

enum { N_TYPES = 2, N_NAMES = 20, N_VALUES = 4 };

static const char *const type_urls[N_TYPES] = {ADDR, AUTH};
static char names[N_TYPES][N_NAMES][24];

static void
names_init(void)
{
    for (int t = 0; t < N_TYPES; t++)
        for (int i = 0; i < N_NAMES; i++)
            snprintf(names[t][i], sizeof(names[t][i]), t == 0 ? "ns%d/w%02d" : "ns%d/p%d", i % 3,
                     i);
}

/* Value |v| of name |i| of type |t|: deterministic bytes of varying size. */
static uint8_t *
value_bytes(int t, int i, int v, size_t *len)
{
    *len = 8 + (size_t)((i * 7 + v * 29) % 90);
    uint8_t *b = xmalloc(*len);
    for (size_t k = 0; k < *len; k++)
        b[k] = (uint8_t)(t * 101 + i * 13 + v * 7 + (int)k);
    return b;
}

static void
value_version(int t, int i, int v, char out[XDS_VERSION_LEN + 1])
{
    size_t len;
    uint8_t *b = value_bytes(t, i, v, &len);
    xds_version_of(b, len, out);
    free(b);
}

/* Which value each name has; -1: absent. */
struct content {
    int val[N_TYPES][N_NAMES];
};

static struct xds_snapshot *
snap_from(const struct content *c)
{
    struct xds_resource *v = xcalloc(N_TYPES * N_NAMES + 1, sizeof(*v));
    size_t n = 0;

    for (int t = 0; t < N_TYPES; t++) {
        for (int i = 0; i < N_NAMES; i++) {
            if (c->val[t][i] < 0)
                continue;
            v[n].type_url = xstrdup(type_urls[t]);
            v[n].name = xstrdup(names[t][i]);
            v[n].bytes = value_bytes(t, i, c->val[t][i], &v[n].len);
            n++;
        }
    }
    struct xds_snapshot *s = xds_snapshot_new(v, n);
    assert_non_null(s);
    return s;
}

static void
content_random(struct content *c)
{
    for (int t = 0; t < N_TYPES; t++)
        for (int i = 0; i < N_NAMES; i++)
            c->val[t][i] = chance(80) ? (int)pick(N_VALUES) : -1;
}

static void
content_mutate(struct content *c, int changes)
{
    for (int k = 0; k < changes; k++) {
        int t = chance(75) ? 0 : 1, i = (int)pick(N_NAMES);
        c->val[t][i] = chance(15) ? -1 : (int)pick(N_VALUES);
    }
}

/* ---- Requests ---- */

struct rq {
    const char *type;
    bool node;
    const char *sub[16];
    size_t n_sub;
    const char *unsub[16];
    size_t n_unsub;
    const char *init_n[16];
    const char *init_v[16];
    size_t n_init;
    const char *error;
    int code;
};

static uint8_t *
pack(const struct rq *q, const char *nonce, size_t *len)
{
    pb_request req = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
    Envoy__Service__Discovery__V3__Node node = ENVOY__SERVICE__DISCOVERY__V3__NODE__INIT;
    Envoy__Service__Discovery__V3__Status st = ENVOY__SERVICE__DISCOVERY__V3__STATUS__INIT;
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry ie[16];
    Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *ip[16];

    if (q->node) {
        node.id = "ztunnel~10.0.0.1~zt.istio-system~istio-system.svc.cluster.local";
        req.node = &node;
    }
    req.type_url = (char *)q->type;
    req.resource_names_subscribe = (char **)q->sub;
    req.n_resource_names_subscribe = q->n_sub;
    req.resource_names_unsubscribe = (char **)q->unsub;
    req.n_resource_names_unsubscribe = q->n_unsub;
    for (size_t i = 0; i < q->n_init; i++) {
        envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
            &ie[i]);
        ie[i].key = (char *)q->init_n[i];
        ie[i].value = (char *)q->init_v[i];
        ip[i] = &ie[i];
    }
    req.initial_resource_versions = ip;
    req.n_initial_resource_versions = q->n_init;
    if (nonce != NULL)
        req.response_nonce = (char *)nonce;
    if (q->error != NULL) {
        st.message = (char *)q->error;
        st.code = q->code;
        req.error_detail = &st;
    }
    *len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
    uint8_t *data = xmalloc(*len ? *len : 1);
    envoy__service__discovery__v3__delta_discovery_request__pack(&req, data);
    return data;
}

/* ---- Events, as text without nonces ---- */

struct evlog {
    char buf[16384];
    size_t len;
};

static void
evlog_add(struct evlog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->buf + l->len, sizeof(l->buf) - l->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(l->buf) - l->len);
    l->len += (size_t)n;
}

static void
on_ev(void *arg, const struct xds_server_event *ev)
{
    struct evlog *l = arg;

    evlog_add(l, "%d|%s|%s|%s|%d|%" PRIu64, (int)ev->kind, ev->type_url ? ev->type_url : "",
              ev->name ? ev->name : "", ev->message ? ev->message : "", ev->code, ev->latency_ms);
    for (size_t i = 0; i < ev->n_rejected; i++)
        evlog_add(l, "|%s@%s", ev->rejected[i].name, ev->rejected[i].version);
    evlog_add(l, ";");
}

/* ---- A new stream and a reference stream, driven alike ---- */

struct resp_rec {
    const char *type;
    char *nonce_new, *nonce_ref;
    char **names; /* resources carried */
    size_t n_names;
    bool answered;
};

struct pair {
    struct xds_server_stream *s;
    struct ref_stream *r;
    struct evlog ev_s, ev_r;
    bool calm; /* like ztunnel: legacy wildcard, answers in order, rarely NACKs */
    bool node_sent;
    bool started[3];
    struct resp_rec *resps;
    size_t n_resps;
};

static const char *const all_types[3] = {ADDR, AUTH, OTHER};

/* What the scenarios exercised, summed over all of them. */
static struct {
    uint64_t pushes_based_clean; /* based types with no explicit entry: the pure diff path */
    uint64_t pushes_based_mixed; /* based types with exceptions */
    uint64_t pushes_unbased;
    struct xds_server_stats stats;
} cover;

static void
pair_init(struct pair *p, size_t max_response, size_t max_names)
{
    struct xds_server_config cfg = {
        .max_response_bytes = max_response, .max_names = max_names, .now_ms = now_fn};

    memset(p, 0, sizeof(*p));
    cfg.on_event = on_ev;
    cfg.arg = &p->ev_s;
    p->s = xds_server_stream_new(&cfg);
    cfg.arg = &p->ev_r;
    p->r = ref_stream_new(&cfg);
}

static void
pair_free(struct pair *p)
{
    const struct xds_server_stats *st = xds_server_stream_stats(p->s);
    cover.stats.pushes += st->pushes;
    cover.stats.responses += st->responses;
    cover.stats.removals_sent += st->removals_sent;
    cover.stats.acks += st->acks;
    cover.stats.nacks += st->nacks;
    cover.stats.stale_nonces += st->stale_nonces;
    for (size_t i = 0; i < p->n_resps; i++) {
        free(p->resps[i].nonce_new);
        free(p->resps[i].nonce_ref);
        for (size_t k = 0; k < p->resps[i].n_names; k++)
            free(p->resps[i].names[k]);
        free(p->resps[i].names);
    }
    free(p->resps);
    xds_server_stream_free(p->s);
    ref_stream_free(p->r);
}

static void
compare_status(const struct xds_server_type_status *a, const struct xds_server_type_status *b)
{
    assert_string_equal(a->type_url, b->type_url);
    assert_int_equal(a->served, b->served);
    assert_int_equal(a->wildcard, b->wildcard);
    assert_int_equal(a->n_held, b->n_held);
    assert_int_equal(a->n_in_flight, b->n_in_flight);
    assert_int_equal(a->in_flight_ms, b->in_flight_ms);
    assert_true(xds_streq(a->acked_version, b->acked_version));
    assert_int_equal(a->last_ack_ms, b->last_ack_ms);
    assert_int_equal(a->push_latency_ms, b->push_latency_ms);
    assert_true(xds_streq(a->last_nack, b->last_nack));
}

/* Same counters, types, statuses and events on both sides. */
static void
compare_state(struct pair *p)
{
    const struct xds_server_stats *a = xds_server_stream_stats(p->s);
    const struct xds_server_stats *b = ref_stream_stats(p->r);

    assert_memory_equal(a, b, sizeof(*a));
    assert_true(xds_streq(xds_server_stream_node_id(p->s), ref_stream_node_id(p->r)));
    assert_int_equal(xds_server_stream_n_types(p->s), ref_stream_n_types(p->r));
    for (size_t i = 0; i < xds_server_stream_n_types(p->s); i++) {
        struct xds_server_type_status sa, sb;
        xds_server_stream_type_status(p->s, i, &sa);
        ref_stream_type_status(p->r, i, &sb);
        compare_status(&sa, &sb);
    }
    p->ev_s.buf[p->ev_s.len] = '\0';
    p->ev_r.buf[p->ev_r.len] = '\0';
    assert_string_equal(p->ev_s.buf, p->ev_r.buf);
    p->ev_s.len = p->ev_r.len = 0;
}

static const char *
type_of(const char *url)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(all_types[i], url) == 0)
            return all_types[i];
    fail_msg("unexpected type %s", url);
    return NULL;
}

/* Both outputs must be the same responses but for nonces; records them for answers. */
static void
compare_outputs(struct pair *p, struct xds_out *a, struct xds_out *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        pb_response *x = envoy__service__discovery__v3__delta_discovery_response__unpack(
            NULL, a->v[i].len, a->v[i].data);
        pb_response *y = envoy__service__discovery__v3__delta_discovery_response__unpack(
            NULL, b->v[i].len, b->v[i].data);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(a->v[i].len, b->v[i].len);
        assert_int_equal(a->v[i].n_resources, b->v[i].n_resources);
        assert_int_equal(a->v[i].n_removed, b->v[i].n_removed);
        assert_int_equal(x->n_resources, a->v[i].n_resources);
        assert_int_equal(x->n_removed_resources, a->v[i].n_removed);
        assert_string_equal(x->type_url, y->type_url);
        assert_string_equal(x->system_version_info, y->system_version_info);
        assert_int_equal(x->n_resources, y->n_resources);
        assert_int_equal(x->n_removed_resources, y->n_removed_resources);
        for (size_t k = 0; k < x->n_resources; k++) {
            const Envoy__Service__Discovery__V3__Resource *rx = x->resources[k];
            const Envoy__Service__Discovery__V3__Resource *ry = y->resources[k];
            assert_string_equal(rx->name, ry->name);
            assert_string_equal(rx->version, ry->version);
            assert_string_equal(rx->resource->type_url, ry->resource->type_url);
            assert_int_equal(rx->resource->value.len, ry->resource->value.len);
            assert_memory_equal(rx->resource->value.data, ry->resource->value.data,
                                rx->resource->value.len);
        }
        for (size_t k = 0; k < x->n_removed_resources; k++)
            assert_string_equal(x->removed_resources[k], y->removed_resources[k]);

        p->resps = xrealloc(p->resps, (p->n_resps + 1) * sizeof(*p->resps));
        struct resp_rec *rr = &p->resps[p->n_resps++];
        memset(rr, 0, sizeof(*rr));
        rr->type = type_of(x->type_url);
        rr->nonce_new = xstrdup(x->nonce);
        rr->nonce_ref = xstrdup(y->nonce);
        rr->n_names = x->n_resources;
        rr->names = xcalloc(rr->n_names ? rr->n_names : 1, sizeof(*rr->names));
        for (size_t k = 0; k < x->n_resources; k++)
            rr->names[k] = xstrdup(x->resources[k]->name);
        envoy__service__discovery__v3__delta_discovery_response__free_unpacked(x, NULL);
        envoy__service__discovery__v3__delta_discovery_response__free_unpacked(y, NULL);
    }
    xds_out_cleanup(a);
    xds_out_cleanup(b);
}

static void
feed_both(struct pair *p, struct rq *q, const char *nonce_new, const char *nonce_ref)
{
    struct xds_out a, b;
    size_t la, lb;

    xds_out_init(&a);
    xds_out_init(&b);
    q->node = !p->node_sent;
    uint8_t *da = pack(q, nonce_new, &la), *db = pack(q, nonce_ref, &lb);
    int ra = xds_server_stream_on_request(p->s, da, la, &a);
    int rb = ref_stream_on_request(p->r, db, lb, &b);
    free(da);
    free(db);
    assert_int_equal(ra, rb);
    if (ra == 0) {
        p->node_sent = true;
        for (int i = 0; i < 3; i++)
            if (strcmp(q->type, all_types[i]) == 0)
                p->started[i] = true;
    }
    compare_outputs(p, &a, &b);
    compare_state(p);
}

static void
cover_push(const struct pair *p)
{
    for (size_t i = 0; i < p->s->n_types; i++) {
        const struct srv_type *t = p->s->types[i];
        if (!t->served || t->n_flights > 0)
            continue;
        if (t->based && t->entries.n == 0)
            cover.pushes_based_clean++;
        else if (t->based)
            cover.pushes_based_mixed++;
        else
            cover.pushes_unbased++;
    }
}

static void
push_both(struct pair *p, struct xds_snapshot *snap)
{
    struct xds_out a, b;

    cover_push(p);

    xds_out_init(&a);
    xds_out_init(&b);
    size_t na = xds_server_stream_push(p->s, snap, &a);
    size_t nb = ref_stream_push(p->r, snap, &b);
    assert_int_equal(na, nb);
    compare_outputs(p, &a, &b);
    compare_state(p);
}

/* ---- The client's choices ---- */

/* Names for requests: mostly real ones, sometimes unknown ones; static storage. */
static const char *
some_name(int t)
{
    static const char *const unknown[] = {"gone/1", "zz/none", "a", "ns0/w99"};
    if (chance(12))
        return unknown[pick(ARRAY_LEN(unknown))];
    return names[t][pick(N_NAMES)];
}

static int
type_index(const char *type)
{
    return strcmp(type, AUTH) == 0 ? 1 : 0; /* OTHER uses Address names: they never exist */
}

static void
add_subs(struct rq *q, int t, size_t max_sub, size_t max_unsub, unsigned star_pct)
{
    size_t ns = pick(max_sub + 1), nu = pick(max_unsub + 1);
    for (size_t i = 0; i < ns; i++)
        q->sub[q->n_sub++] = chance(star_pct) ? "*" : some_name(t);
    for (size_t i = 0; i < nu; i++)
        q->unsub[q->n_unsub++] = chance(star_pct) ? "*" : some_name(t);
}

static void
first_request(struct pair *p, const char *type, const struct content *cur)
{
    static char vers[16][XDS_VERSION_LEN + 1];
    struct rq q = {.type = type};
    int t = type_index(type);

    switch (p->calm ? 4 : pick(5)) {
    case 0: /* explicit names */
        add_subs(&q, t, 5, 0, 0);
        if (q.n_sub == 0)
            q.sub[q.n_sub++] = some_name(t);
        break;
    case 1: /* ztunnel on demand: "*" in and out */
        q.sub[q.n_sub++] = "*";
        q.unsub[q.n_unsub++] = "*";
        break;
    case 2: /* explicit wildcard, maybe with names */
        q.sub[q.n_sub++] = "*";
        add_subs(&q, t, 2, 1, 0);
        break;
    default: /* legacy wildcard */
        break;
    }
    if (chance(50)) {
        size_t n = pick(12) + 1;
        for (size_t i = 0; i < n; i++) {
            int k = (int)pick(N_NAMES);
            q.init_n[q.n_init] = chance(10) ? "gone/1" : names[t][k];
            int v = cur->val[t][k];
            switch (pick(4)) {
            case 0:
                q.init_v[q.n_init] = "";
                break;
            case 1:
                q.init_v[q.n_init] = "junk";
                break;
            default: /* mostly what it holds now, sometimes another value */
                value_version(t, k, v >= 0 && chance(70) ? v : (int)pick(N_VALUES), vers[i]);
                q.init_v[q.n_init] = vers[i];
                break;
            }
            q.n_init++;
        }
    }
    feed_both(p, &q, NULL, NULL);
}

static void
answer(struct pair *p, struct resp_rec *rr)
{
    struct rq q = {.type = rr->type};
    char msg[256];

    rr->answered = true;
    size_t kind = p->calm ? (chance(97) ? 0 : pick(100)) : pick(100);
    if (kind >= 60 && kind < 85 && rr->n_names > 0) {
        /* NACK naming some of its resources, in ztunnel's format. */
        size_t off = 0, n = pick(2) + 1;
        for (size_t i = 0; i < n; i++) {
            const char *nm = chance(85) ? rr->names[pick(rr->n_names)] : "zz/none";
            off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s: bad value",
                                    off ? "; " : "", nm);
        }
        q.error = msg;
        q.code = 13;
    } else if (kind >= 85) {
        q.error = "something failed";
        q.code = 2;
    }
    if (!p->calm && chance(15))
        add_subs(&q, type_index(rr->type), 2, 2, 10);
    feed_both(p, &q, rr->nonce_new, rr->nonce_ref);
}

static void
client_step(struct pair *p, const struct content *cur)
{
    /* Start a type (the first request of the stream carries the node). */
    for (int i = 0; i < 3; i++) {
        if (!p->started[i] && (!p->node_sent || chance(25))) {
            first_request(p, all_types[i], cur);
            return;
        }
    }
    size_t unanswered = 0;
    for (size_t i = 0; i < p->n_resps; i++)
        unanswered += !p->resps[i].answered;
    size_t r = pick(100);
    if (p->calm && unanswered > 0 && r < 97) {
        for (size_t i = 0; i < p->n_resps; i++) {
            if (!p->resps[i].answered) {
                answer(p, &p->resps[i]);
                return;
            }
        }
    }
    if (unanswered > 0 && r < 70) {
        /* Mostly the oldest (clients answer in order), sometimes any. */
        size_t k = pick(unanswered), seen = 0;
        for (size_t i = 0; i < p->n_resps; i++) {
            if (p->resps[i].answered)
                continue;
            if (chance(80) || seen++ == k) {
                answer(p, &p->resps[i]);
                return;
            }
        }
        return;
    }
    if (r < 80) {
        /* A stale nonce: answered already, or never ours. */
        struct rq q = {.type = all_types[pick(3)]};
        if (chance(50)) {
            q.error = "late";
            q.code = 3;
        }
        if (p->n_resps > 0 && chance(70)) {
            struct resp_rec *rr = &p->resps[pick(p->n_resps)];
            q.type = rr->type;
            feed_both(p, &q, rr->nonce_new, rr->nonce_ref);
        } else {
            feed_both(p, &q, "0000000000000000-1", "0000000000000000-1");
        }
        return;
    }
    if (r < 83) {
        /* Refused requests: no type URL, or over a cap; nothing may change. */
        struct rq q = {.type = chance(50) ? "" : ADDR};
        for (size_t i = 0; i < 16; i++)
            q.sub[q.n_sub++] = names[0][pick(N_NAMES)];
        feed_both(p, &q, NULL, NULL);
        return;
    }
    /* Subscription changes. */
    struct rq q = {.type = all_types[pick(3)]};
    add_subs(&q, type_index(q.type), 4, 3, 12);
    feed_both(p, &q, NULL, NULL);
}

enum { N_PAIRS = 6, HISTORY = 6 };

static void
scenario(uint64_t seed, int steps)
{
    struct pair pairs[N_PAIRS];
    struct xds_snapshot *hist[HISTORY] = {0};
    struct content cur;
    size_t n_hist = 0;
    static const size_t max_response[] = {0, 300, 700, 0, 0, 500};
    static const size_t max_names[] = {0, 0, 0, 24, 0, 0};

    rng = seed * 0x9e3779b97f4a7c15ULL + 1;
    clock_now = 1000;
    for (int i = 0; i < N_PAIRS; i++) {
        pair_init(&pairs[i], max_response[i], max_names[i]);
        pairs[i].calm = i >= 4;
    }
    content_random(&cur);
    hist[n_hist++] = snap_from(&cur);
    for (int i = 0; i < N_PAIRS; i++)
        if (chance(70))
            push_both(&pairs[i], hist[0]);

    for (int step = 0; step < steps; step++) {
        clock_now += pick(40);
        if (chance(18)) {
            struct xds_snapshot *snap;
            size_t mode = pick(100);
            if (mode < 55) {
                content_mutate(&cur, (int)pick(3) + 1); /* the common case */
                snap = snap_from(&cur);
            } else if (mode < 70) {
                content_random(&cur);
                snap = snap_from(&cur);
            } else if (mode < 85 && n_hist > 1) {
                snap = xds_snapshot_ref(hist[pick(n_hist)]); /* back to an older one */
            } else {
                snap = snap_from(&cur); /* same content, another object */
            }
            if (n_hist == HISTORY) {
                xds_snapshot_unref(hist[0]);
                memmove(hist, hist + 1, (HISTORY - 1) * sizeof(*hist));
                n_hist--;
            }
            hist[n_hist++] = snap;
            for (int i = 0; i < N_PAIRS; i++)
                push_both(&pairs[i], snap);
            continue;
        }
        client_step(&pairs[pick(N_PAIRS)], &cur);
    }
    for (int i = 0; i < N_PAIRS; i++)
        pair_free(&pairs[i]);
    for (size_t i = 0; i < n_hist; i++)
        xds_snapshot_unref(hist[i]);
}

static void
test_differential(void **state)
{
    (void)state;
    names_init();
    memset(&cover, 0, sizeof(cover));
    for (uint64_t seed = 1; seed <= 400; seed++)
        scenario(seed, 400);
    printf("pushes from: diff alone %" PRIu64 ", diff and entries %" PRIu64 ", entries/all %" PRIu64
           "; pushes %" PRIu64 ", responses %" PRIu64 ", removals %" PRIu64 ", acks %" PRIu64
           ", nacks %" PRIu64 ", stale %" PRIu64 "\n",
           cover.pushes_based_clean, cover.pushes_based_mixed, cover.pushes_unbased,
           cover.stats.pushes, cover.stats.responses, cover.stats.removals_sent, cover.stats.acks,
           cover.stats.nacks, cover.stats.stale_nonces);
    /* Every path was taken, many times. */
    assert_true(cover.pushes_based_clean > 1000);
    assert_true(cover.pushes_based_mixed > 1000);
    assert_true(cover.pushes_unbased > 1000);
    assert_true(cover.stats.responses > cover.stats.pushes + 1000); /* split pushes */
    assert_true(cover.stats.removals_sent > 1000);
    assert_true(cover.stats.nacks > 1000);
    assert_true(cover.stats.stale_nonces > 1000);
}

/* ---- Snapshot diffs ---- */

static void
check_diff(struct xds_snapshot *from, struct xds_snapshot *to, const struct xds_diff *d)
{
    size_t k = 0;

    assert_int_equal(d->from_id, xds_snapshot_id(from));
    /* Every (type, name) of either side, in order; the diff lists exactly the differing ones. */
    int order[N_TYPES] = {0, 1};
    if (strcmp(type_urls[0], type_urls[1]) > 0) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int o = 0; o < N_TYPES; o++) {
        int t = order[o];
        /* Names of a type sorted as the snapshot sorts them: strcmp order. */
        const char *sorted[N_NAMES];
        for (int i = 0; i < N_NAMES; i++)
            sorted[i] = names[t][i];
        for (int i = 1; i < N_NAMES; i++)
            for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
                const char *x = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = x;
            }
        size_t first, n;
        xds_diff_type_range(d, from, to, type_urls[t], &first, &n);
        size_t start = k;
        for (int i = 0; i < N_NAMES; i++) {
            const struct xds_resource *a = xds_snapshot_find(from, type_urls[t], sorted[i]);
            const struct xds_resource *b = xds_snapshot_find(to, type_urls[t], sorted[i]);
            if ((a == NULL && b == NULL) ||
                (a != NULL && b != NULL && strcmp(a->version, b->version) == 0))
                continue;
            assert_true(k < d->n);
            const struct xds_diff_item *it = &d->v[k++];
            assert_ptr_equal(it->from == SIZE_MAX ? NULL : xds_snapshot_at(from, it->from), a);
            assert_ptr_equal(it->to == SIZE_MAX ? NULL : xds_snapshot_at(to, it->to), b);
        }
        assert_int_equal(first, start);
        assert_int_equal(n, k - start);
    }
    assert_int_equal(k, d->n);
}

static void
test_snapshot_diff(void **state)
{
    struct content c;
    struct xds_snapshot *from[12], *to;
    const struct xds_diff *first[12];
    bool owned;
    (void)state;

    names_init();
    rng = 42;
    for (int round = 0; round < 50; round++) {
        content_random(&c);
        to = snap_from(&c);
        for (int i = 0; i < 12; i++) {
            if (i > 0 && chance(50))
                content_mutate(&c, (int)pick(4));
            else
                content_random(&c);
            from[i] = snap_from(&c);
            first[i] = xds_snapshot_diff(to, from[i], &owned);
            check_diff(from[i], to, first[i]);
            /* The first eight are cached and shared; later ones belong to the caller. */
            assert_int_equal(owned, i >= 8);
            if (owned) {
                xds_diff_free((struct xds_diff *)first[i]);
                first[i] = NULL;
            }
        }
        for (int i = 0; i < 8; i++) {
            assert_ptr_equal(xds_snapshot_diff(to, from[i], &owned), first[i]);
            assert_false(owned);
        }
        for (int i = 0; i < 12; i++)
            xds_snapshot_unref(from[i]);
        xds_snapshot_unref(to);
    }
    /* Empty snapshots and a type that is absent from one side. */
    struct xds_snapshot *empty = xds_snapshot_new(xcalloc(1, sizeof(struct xds_resource)), 0);
    content_random(&c);
    to = snap_from(&c);
    const struct xds_diff *d = xds_snapshot_diff(to, empty, &owned);
    check_diff(empty, to, d);
    assert_int_equal(d->n, xds_snapshot_len(to));
    d = xds_snapshot_diff(empty, to, &owned);
    check_diff(to, empty, d);
    size_t f, n;
    xds_diff_type_range(d, to, empty, OTHER, &f, &n);
    assert_int_equal(n, 0);
    assert_true(xds_snapshot_id(to) != xds_snapshot_id(empty));
    xds_snapshot_unref(empty);
    xds_snapshot_unref(to);
}

/* ---- The common case keeps no per-name state ---- */

static const struct srv_type *
addr_type(const struct xds_server_stream *s)
{
    for (size_t i = 0; i < s->n_types; i++)
        if (strcmp(s->types[i]->type_url, ADDR) == 0)
            return s->types[i];
    fail();
    return NULL;
}

static struct xds_snapshot *
big_snap(int n, int changed, const char *value)
{
    struct xds_resource *v = xcalloc((size_t)n, sizeof(*v));
    char name[32];

    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "ns%d/pod-%05d", i % 10, i);
        v[i].type_url = xstrdup(ADDR);
        v[i].name = xstrdup(name);
        v[i].bytes = (uint8_t *)xstrdup(i == changed ? value : name);
        v[i].len = strlen((char *)v[i].bytes);
    }
    return xds_snapshot_new(v, (size_t)n);
}

/* Sends |q| (with |nonce|) and returns the only response, decoded; NULL if none. */
static pb_response *
one(struct xds_server_stream *s, const struct rq *q, const char *nonce)
{
    struct xds_out out;
    size_t len;
    uint8_t *d = pack(q, nonce, &len);

    xds_out_init(&out);
    assert_int_equal(xds_server_stream_on_request(s, d, len, &out), 0);
    free(d);
    assert_true(out.n <= 1);
    pb_response *r = NULL;
    if (out.n == 1)
        r = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, out.v[0].len,
                                                                            out.v[0].data);
    xds_out_cleanup(&out);
    return r;
}

static pb_response *
pushed(struct xds_server_stream *s, struct xds_snapshot *snap)
{
    struct xds_out out;

    xds_out_init(&out);
    xds_server_stream_push(s, snap, &out);
    assert_true(out.n <= 1);
    pb_response *r = NULL;
    if (out.n == 1)
        r = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, out.v[0].len,
                                                                            out.v[0].data);
    xds_out_cleanup(&out);
    return r;
}

static void
ack_resp(struct xds_server_stream *s, pb_response *r, const char *error)
{
    struct rq q = {.type = ADDR, .error = error, .code = 13};
    assert_non_null(r);
    assert_null(one(s, &q, r->nonce));
    envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
}

static void
test_common_case_state(void **state)
{
    enum { N = 2000, STREAMS = 3 };
    struct xds_server_stream *s[STREAMS];
    struct xds_snapshot *s1 = big_snap(N, -1, NULL), *s2 = big_snap(N, 1234, "new");
    struct xds_snapshot *s3 = big_snap(N, 1234, "bad"), *s4 = big_snap(N, 1234, "fixed");
    struct xds_server_type_status st;
    struct rq first = {.type = ADDR, .node = true};
    (void)state;

    for (int i = 0; i < STREAMS; i++) {
        struct xds_server_config cfg = {.now_ms = now_fn};
        s[i] = xds_server_stream_new(&cfg);
        assert_null(pushed(s[i], s1));
        pb_response *r = one(s[i], &first, NULL);
        assert_int_equal(r->n_resources, N);
        ack_resp(s[i], r, NULL);
        /* Everything held at s1's versions: no entry at all. */
        assert_true(addr_type(s[i])->based);
        assert_int_equal(addr_type(s[i])->entries.n, 0);
        xds_server_stream_type_status(s[i], 0, &st);
        assert_int_equal(st.n_held, N);
    }
    for (int i = 0; i < STREAMS; i++) {
        pb_response *r = pushed(s[i], s2);
        assert_int_equal(r->n_resources, 1);
        assert_string_equal(r->resources[0]->name, "ns4/pod-01234");
        assert_int_equal(r->n_removed_resources, 0);
        ack_resp(s[i], r, NULL);
        assert_int_equal(addr_type(s[i])->entries.n, 0);
    }
    /* The streams shared one diff, cached in s2. */
    bool owned;
    const struct xds_diff *d = xds_snapshot_diff(s2, s1, &owned);
    assert_false(owned);
    assert_int_equal(d->n, 1);

    /* A NACK leaves one entry behind (the rejected version); a fixed version clears it. */
    pb_response *r = pushed(s[0], s3);
    assert_int_equal(r->n_resources, 1);
    ack_resp(s[0], r, "ns4/pod-01234: bad");
    assert_int_equal(addr_type(s[0])->entries.n, 1);
    xds_server_stream_type_status(s[0], 0, &st);
    assert_int_equal(st.n_held, N);
    assert_null(pushed(s[0], s3)); /* not resent */
    r = pushed(s[0], s4);
    assert_int_equal(r->n_resources, 1);
    ack_resp(s[0], r, NULL);
    assert_int_equal(addr_type(s[0])->entries.n, 1); /* until the next push rebases it */
    assert_null(pushed(s[0], s4));
    r = pushed(s[0], s2);
    assert_int_equal(r->n_resources, 1);
    ack_resp(s[0], r, NULL);
    assert_int_equal(addr_type(s[0])->entries.n, 0);

    /* A reconnect with initial versions: the entries it brings go away once they match. */
    struct xds_server_config cfg = {.now_ms = now_fn};
    struct xds_server_stream *re = xds_server_stream_new(&cfg);
    struct rq init = {.type = ADDR, .node = true, .n_init = 3};
    char v0[XDS_VERSION_LEN + 1], v1[XDS_VERSION_LEN + 1];
    xds_version_of("ns0/pod-00000", strlen("ns0/pod-00000"), v0);
    xds_version_of("ns1/pod-00001", strlen("ns1/pod-00001"), v1);
    init.init_n[0] = "ns0/pod-00000";
    init.init_v[0] = v0;
    init.init_n[1] = "ns1/pod-00001";
    init.init_v[1] = v1;
    init.init_n[2] = "gone/x";
    init.init_v[2] = v1;
    assert_null(pushed(re, s2));
    r = one(re, &init, NULL);
    assert_int_equal(r->n_resources, N - 2);
    assert_int_equal(r->n_removed_resources, 1);
    ack_resp(re, r, NULL);
    assert_int_equal(addr_type(re)->entries.n, 0);
    xds_server_stream_free(re);

    for (int i = 0; i < STREAMS; i++)
        xds_server_stream_free(s[i]);
    xds_snapshot_unref(s1);
    xds_snapshot_unref(s2);
    xds_snapshot_unref(s3);
    xds_snapshot_unref(s4);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_diff),
        cmocka_unit_test(test_common_case_state),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
