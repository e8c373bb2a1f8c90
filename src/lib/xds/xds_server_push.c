/*
 * xds_server_push.c - building a stream's pushes and settling their answers.
 *
 * A push compares the current snapshot with what the client holds (per type
 * and name, see struct srv_entry), sends what differs in responses of at most
 * max_response_bytes, and records each response as a flight until the client
 * answers its nonce. The stream's held versions are updated when a response
 * is built (a NACK rolls them back), so the next push starts from them.
 *
 * Cost: names held implicitly (a wildcard type based on the snapshot of its
 * last push) are compared through the snapshot diff, computed once for all
 * streams; explicit entries are merged with the new snapshot (galloping
 * search, so a few entries cost a few lookups and many cost one pass). A
 * client that took every push pushes in O(changed resources).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery.pb-c.h"

#include "base/base.h"
#include "xds/xds_internal.h"

typedef Envoy__Service__Discovery__V3__Resource pb_resource;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse pb_response;

#define NACK_MESSAGE_KEEP  4096      /* bytes of the last NACK message kept for reports */
#define NACK_MESSAGE_PARSE (1 << 20) /* bytes of a NACK message searched for names */
#define NONE               SIZE_MAX

/* A resource to send: |e| the explicit entry, or NULL with |prev| the base version (or NULL). */
struct plan_send {
    const struct xds_resource *res;
    struct srv_entry *e;
    const char *prev;
};

/* A name to remove: |e| the explicit entry, or NULL with |name| in the base. */
struct plan_rm {
    const char *name;
    struct srv_entry *e;
};

/* What one push sends: changed resources, then removed names, each in name order. */
struct plan {
    struct plan_send *sends;
    size_t n_sends, cap_sends;
    struct plan_rm *removals;
    size_t n_removals, cap_removals;
    /* The explicit entries by name, with the index of each name in the new range or NONE. */
    struct srv_entry **ord;
    size_t *hit;
    size_t n_ord;
};

static void
plan_send(struct plan *p, const struct xds_resource *r, struct srv_entry *e, const char *prev)
{
    if (p->n_sends == p->cap_sends) {
        p->cap_sends = p->cap_sends ? p->cap_sends * 2 : 16;
        p->sends = xrealloc(p->sends, p->cap_sends * sizeof(*p->sends));
    }
    p->sends[p->n_sends++] = (struct plan_send){.res = r, .e = e, .prev = prev};
}

static void
plan_remove(struct plan *p, const char *name, struct srv_entry *e)
{
    if (p->n_removals == p->cap_removals) {
        p->cap_removals = p->cap_removals ? p->cap_removals * 2 : 16;
        p->removals = xrealloc(p->removals, p->cap_removals * sizeof(*p->removals));
    }
    p->removals[p->n_removals++] = (struct plan_rm){.name = name, .e = e};
}

static int
cmp_entry_name(const void *a, const void *b)
{
    const struct srv_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static bool
wanted(const struct srv_type *t, const struct srv_entry *e)
{
    return t->wildcard || (e != NULL && e->subscribed);
}

/*
 * The first index in [*pos, end) of |s| whose name is >= |name|, or |end|;
 * *pos moves there. For names asked in increasing order: exponential then
 * binary search, O(log distance) each.
 */
static size_t
gallop(const struct xds_snapshot *s, size_t *pos, size_t end, const char *name)
{
    size_t lo = *pos, step = 1;

    while (lo < end) {
        size_t probe = end - lo > step ? lo + step - 1 : end - 1;
        if (strcmp(xds_snapshot_at(s, probe)->name, name) >= 0) {
            size_t hi = probe;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (strcmp(xds_snapshot_at(s, mid)->name, name) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            break;
        }
        lo = probe + 1;
        step *= 2;
    }
    *pos = lo;
    return lo;
}

/* Explicit entry |e| against the new version |r| (NULL: absent), by the rules of xds_server.h. */
static void
plan_entry(const struct srv_type *t, struct plan *p, struct srv_entry *e,
           const struct xds_resource *r)
{
    if (!wanted(t, e))
        return;
    if (r != NULL) {
        /* Held already, or rejected at this very version: nothing to send. */
        if ((!e->unsure && xds_streq(e->held, r->version)) || xds_streq(e->nacked, r->version))
            return;
        plan_send(p, r, e, NULL);
        return;
    }
    if (e->held != NULL || e->nacked != NULL || (e->subscribed && !e->told_absent))
        plan_remove(p, e->name, e);
}

/*
 * Plans the push of |t| from what it holds (based on |base| if t->based) to
 * t->synced, whose range of the type is [first, first + n).
 */
static void
plan_build(struct srv_type *t, struct xds_snapshot *base, size_t first, size_t n, struct plan *p)
{
    struct xds_snapshot *snap = t->synced;
    const struct xds_diff *diff = NULL;
    bool diff_owned = false;
    size_t i = 0, n_imp = 0, pos = first, end = first + n, j = 0;
    const char *key;
    void *val;

    memset(p, 0, sizeof(*p));
    p->ord = xcalloc(t->entries.n ? t->entries.n : 1, sizeof(*p->ord));
    while (xds_map_next(&t->entries, &i, &key, &val))
        p->ord[p->n_ord++] = val;
    if (p->n_ord > 1)
        qsort(p->ord, p->n_ord, sizeof(*p->ord), cmp_entry_name);
    p->hit = xcalloc(p->n_ord ? p->n_ord : 1, sizeof(*p->hit));

    /*
     * Names without an entry, wanted only under wildcard: held at the base
     * version when based (so the diff is what changed), else not held at all
     * (everything in the range is new to the client).
     */
    size_t d_first = 0;
    if (t->wildcard && t->based && base != snap) {
        diff = xds_snapshot_diff(snap, base, &diff_owned);
        xds_diff_type_range(diff, base, snap, t->type_url, &d_first, &n_imp);
    } else if (t->wildcard && !t->based) {
        n_imp = n;
    }

    i = 0;
    while (i < n_imp || j < p->n_ord) {
        const struct xds_resource *to = NULL;
        const char *from_name = NULL, *from_version = NULL;
        if (i < n_imp && diff != NULL) {
            const struct xds_diff_item *it = &diff->v[d_first + i];
            to = it->to != NONE ? xds_snapshot_at(snap, it->to) : NULL;
            if (it->from != NONE) {
                from_name = xds_snapshot_at(base, it->from)->name;
                from_version = xds_snapshot_at(base, it->from)->version;
            }
        } else if (i < n_imp) {
            to = xds_snapshot_at(snap, first + i);
        }
        int c;
        if (i == n_imp)
            c = 1;
        else if (j == p->n_ord)
            c = -1;
        else
            c = strcmp(to ? to->name : from_name, p->ord[j]->name);
        if (c < 0) {
            if (to != NULL)
                plan_send(p, to, NULL, from_version);
            else
                plan_remove(p, from_name, NULL);
            i++;
            continue;
        }
        /* An explicit entry (overriding the implicit name when c == 0). */
        struct srv_entry *e = p->ord[j];
        size_t k = gallop(snap, &pos, end, e->name);
        const struct xds_resource *r = NULL;
        if (k < end && strcmp(xds_snapshot_at(snap, k)->name, e->name) == 0)
            r = xds_snapshot_at(snap, k);
        p->hit[j] = r != NULL ? k : NONE;
        plan_entry(t, p, e, r);
        j++;
        if (c == 0)
            i++;
    }
    if (diff_owned)
        xds_diff_free((struct xds_diff *)diff);
}

static void
plan_free(struct plan *p)
{
    free(p->sends);
    free(p->removals);
    free(p->ord);
    free(p->hit);
}

static size_t
varint_len(size_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Bytes a length-delimited field of |len| bytes (tag < 16) adds to a message. */
static size_t
field_len(size_t len)
{
    return 1 + varint_len(len) + len;
}

/*
 * Records a flight for items [start, end) of the push (sends first, then
 * removals) and updates the held versions accordingly.
 */
static struct srv_flight *
flight_add(struct xds_server_stream *s, struct srv_type *t, const struct plan *p,
           struct xds_snapshot *base, size_t start, size_t end)
{
    t->flights = xrealloc(t->flights, (t->n_flights + 1) * sizeof(*t->flights));
    struct srv_flight *f = &t->flights[t->n_flights++];

    memset(f, 0, sizeof(*f));
    snprintf(f->nonce, sizeof(f->nonce), "%016" PRIx64 "-%" PRIu64, s->nonce_tag, ++s->nonce_seq);
    f->sent_ms = srv_now(s);
    f->n_items = end - start;
    f->items = xcalloc(f->n_items, sizeof(*f->items));
    f->base = base != NULL ? xds_snapshot_ref(base) : NULL;
    for (size_t k = start; k < end; k++) {
        struct srv_item *it = &f->items[k - start];
        if (k < p->n_sends) {
            const struct plan_send *ps = &p->sends[k];
            struct srv_entry *e = ps->e;
            it->res = ps->res;
            if (e == NULL) {
                /* Implicit: held at the base version before, at this one after the rebase. */
                it->str = ps->prev;
                continue;
            }
            it->str = it->own = e->held;
            e->held = xstrdup(ps->res->version);
            e->told_absent = false;
            e->unsure = false;
            continue;
        }
        const struct plan_rm *pr = &p->removals[k - p->n_sends];
        struct srv_entry *e = pr->e;
        if (e == NULL) {
            it->str = pr->name; /* implicit, in the base: no entry after the rebase */
            continue;
        }
        it->str = it->own = xstrdup(e->name);
        free(e->held);
        free(e->nacked);
        e->held = e->nacked = NULL;
        e->told_absent = true;
        e->unsure = false;
        /* A wildcard-only name the client no longer has needs no entry. */
        if (!e->subscribed)
            e->gone = true;
    }
    return f;
}

/* Packs the response for flight |f| and appends it to |out|. */
static void
emit(struct xds_server_stream *s, const struct srv_type *t, const struct srv_flight *f,
     pb_resource **rp, size_t n_sends, struct xds_out *out)
{
    pb_response resp = ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
    char **removed = NULL;
    size_t n_removed = f->n_items - n_sends;

    if (n_removed > 0) {
        removed = xcalloc(n_removed, sizeof(*removed));
        for (size_t k = 0; k < n_removed; k++)
            removed[k] = (char *)f->items[n_sends + k].str;
    }
    resp.system_version_info = (char *)xds_snapshot_version(t->synced);
    resp.type_url = t->type_url;
    resp.nonce = (char *)f->nonce;
    resp.resources = rp;
    resp.n_resources = n_sends;
    resp.removed_resources = removed;
    resp.n_removed_resources = n_removed;

    size_t len = envoy__service__discovery__v3__delta_discovery_response__get_packed_size(&resp);
    uint8_t *data = xmalloc(len);
    envoy__service__discovery__v3__delta_discovery_response__pack(&resp, data);
    free(removed);

    struct xds_msg *m = xds_out_add(out, data, len);
    m->n_resources = n_sends;
    m->n_removed = n_removed;
    s->stats.responses++;
    s->stats.resources_sent += n_sends;
    s->stats.removals_sent += n_removed;
    s->stats.bytes_sent += len;
}

static void
oversized(const struct xds_server_stream *s, const struct srv_type *t, const char *name)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_OVERSIZED};

    ev.type_url = t->type_url;
    ev.name = name;
    srv_emit(s, &ev);
}

/* Splits the plan into responses under the size cap and emits them. */
static size_t
send_plan(struct xds_server_stream *s, struct srv_type *t, const struct plan *p,
          struct xds_snapshot *base, struct xds_out *out)
{
    size_t n_sends = p->n_sends, total = n_sends + p->n_removals, k = 0, emitted = 0;
    pb_resource *res = xcalloc(n_sends, sizeof(*res));
    Google__Protobuf__Any *any = xcalloc(n_sends, sizeof(*any));
    pb_resource **rp = xcalloc(n_sends, sizeof(*rp));
    size_t *sizes = xcalloc(total, sizeof(*sizes));
    /* Response fields besides resources and removals, with room to spare. */
    size_t overhead = 64 + strlen(t->type_url) + XDS_MAX_NONCE_LEN + XDS_VERSION_LEN;

    for (size_t i = 0; i < n_sends; i++) {
        const struct xds_resource *r = p->sends[i].res;
        google__protobuf__any__init(&any[i]);
        any[i].type_url = r->type_url;
        any[i].value.data = r->bytes;
        any[i].value.len = r->len;
        envoy__service__discovery__v3__resource__init(&res[i]);
        res[i].name = r->name;
        res[i].version = r->version;
        res[i].resource = &any[i];
        rp[i] = &res[i];
        sizes[i] = field_len(envoy__service__discovery__v3__resource__get_packed_size(&res[i]));
    }
    for (size_t i = 0; i < p->n_removals; i++)
        sizes[n_sends + i] = field_len(strlen(p->removals[i].name));

    do {
        size_t start = k, size = overhead;
        while (k < total) {
            if (k > start && size + sizes[k] > s->max_response_bytes)
                break;
            if (k == start && size + sizes[k] > s->max_response_bytes)
                oversized(s, t,
                          k < n_sends ? p->sends[k].res->name : p->removals[k - n_sends].name);
            size += sizes[k++];
        }
        /* Resource structs of this response: the sends within [start, k). */
        size_t s_end = k < n_sends ? k : n_sends, s_start = start < n_sends ? start : n_sends;
        struct srv_flight *f = flight_add(s, t, p, base, start, k);
        emit(s, t, f, rp + s_start, s_end - s_start, out);
        emitted++;
    } while (k < total);

    free(sizes);
    free(rp);
    free(any);
    free(res);
    return emitted;
}

/* Whether explicit entry |e| says no more than the implicit state at |r|'s version. */
static bool
entry_is_implicit(const struct srv_entry *e, const struct xds_resource *r)
{
    return xds_streq(e->held, r->version) && e->nacked == NULL && !e->subscribed &&
           !e->told_absent && !e->unsure;
}

/*
 * After a push from |t|'s old base to t->synced was recorded: bases the type
 * on t->synced (when wildcard), frees entries the push made useless (removed
 * wildcard-only names, names now held exactly at the new version) and marks
 * those overriding a name of the new range.
 */
static void
rebase(struct srv_type *t, const struct plan *p, size_t first, size_t n)
{
    t->based = t->wildcard;
    t->base_first = first;
    t->base_n = n;
    t->n_shadows = 0;
    for (size_t j = 0; j < p->n_ord; j++) {
        struct srv_entry *e = p->ord[j];
        size_t k = p->hit[j];
        e->shadows = t->based && k != NONE;
        if (e->gone || (e->shadows && entry_is_implicit(e, xds_snapshot_at(t->synced, k)))) {
            e->shadows = false;
            srv_entry_del(t, e);
            continue;
        }
        t->n_shadows += e->shadows;
    }
}

size_t
srv_type_sync(struct xds_server_stream *s, struct srv_type *t, struct xds_out *out)
{
    struct plan p;
    size_t first, n;

    struct xds_snapshot *src = t->own ? s->own_snap : s->snap;

    if (!t->served || src == NULL || t->n_flights > 0)
        return 0;
    if (!t->initial_pending && !t->dirty && t->synced == src)
        return 0;
    /* The old snapshot stays alive while flights borrow its strings. */
    struct xds_snapshot *base = t->synced;
    t->synced = xds_snapshot_ref(src);
    t->dirty = false;
    xds_snapshot_type_range(t->synced, t->type_url, &first, &n);
    plan_build(t, base, first, n, &p);
    if (p.n_sends + p.n_removals == 0 && !t->initial_pending) {
        rebase(t, &p, first, n);
        plan_free(&p);
        xds_snapshot_unref(base);
        return 0;
    }
    t->initial_pending = false;
    t->push_nacked = false;
    t->push_ms = srv_now(s);
    size_t emitted = send_plan(s, t, &p, t->based ? base : NULL, out);
    rebase(t, &p, first, n);
    plan_free(&p);
    xds_snapshot_unref(base);
    s->stats.pushes++;
    return emitted;
}

static void
flight_cleanup(struct srv_flight *f)
{
    for (size_t i = 0; i < f->n_items; i++)
        free(f->items[i].own);
    free(f->items);
    xds_snapshot_unref(f->base);
}

/*
 * Collects the names a NACK message lists. ztunnel (and our client) join
 * "<name>: <reason>" pieces with "; "; other clients may say anything, and
 * then nothing matches. Keys point into |copy|.
 */
static void
nack_names(char *copy, struct xds_map *names)
{
    for (char *p = copy; p != NULL && *p != '\0';) {
        char *next = strstr(p, "; ");
        if (next != NULL) {
            *next = '\0';
            next += 2;
        }
        char *colon = strstr(p, ": ");
        if (colon != NULL) {
            *colon = '\0';
            xds_map_put(names, p, p);
        }
        p = next;
    }
}

/*
 * The rejected resources of |f|: those the message names, or, if it names
 * none of them, all of them. |*all| says which.
 */
static bool *
nack_rejected(const struct srv_flight *f, const char *message, bool *all)
{
    bool *rejected = xcalloc(f->n_items, sizeof(*rejected));
    char *copy = xstrndup(message, strnlen(message, NACK_MESSAGE_PARSE));
    struct xds_map names;
    size_t hits = 0;

    xds_map_init(&names);
    nack_names(copy, &names);
    for (size_t i = 0; i < f->n_items; i++) {
        if (f->items[i].res != NULL && xds_map_get(&names, f->items[i].res->name) != NULL) {
            rejected[i] = true;
            hits++;
        }
    }
    *all = hits == 0;
    for (size_t i = 0; *all && i < f->n_items; i++)
        rejected[i] = f->items[i].res != NULL;
    xds_map_cleanup(&names);
    free(copy);
    return rejected;
}

/* A NACKed resource: the client keeps what it had, and this version is never sent again. */
static void
reject_item(struct srv_type *t, struct srv_item *it, bool unsure)
{
    struct srv_entry *e = srv_entry_get(t, it->res->name);

    /* Held implicitly at this version: it needs an entry now. */
    if (e == NULL && t->based &&
        xds_snapshot_find_in(t->synced, t->base_first, t->base_n, it->res->name) != NONE)
        e = srv_entry_get_or_add(t, it->res->name);
    if (e == NULL)
        return; /* unsubscribed meanwhile */
    if (xds_streq(e->held, it->res->version)) {
        free(e->held);
        if (it->own != NULL)
            e->held = it->own;
        else
            e->held = it->str != NULL ? xstrdup(it->str) : NULL;
        it->str = it->own = NULL;
    }
    free(e->nacked);
    e->nacked = xstrdup(it->res->version);
    /* Unnamed rejects: it may have taken this version after all; the old one is resent. */
    e->unsure = unsure;
}

static void
accept_item(struct srv_type *t, const struct srv_item *it)
{
    struct srv_entry *e = srv_entry_get(t, it->res->name);

    /* The client took a version: an older rejection no longer matters (implicit: none). */
    if (e != NULL && xds_streq(e->held, it->res->version)) {
        free(e->nacked);
        e->nacked = NULL;
    }
}

static void
settle_nack(struct xds_server_stream *s, struct srv_type *t, struct srv_flight *f,
            const char *message, int code)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_NACK};
    struct xds_rejected *rej = xcalloc(f->n_items, sizeof(*rej));
    size_t n_rej = 0;
    bool all;
    bool *rejected = nack_rejected(f, message, &all);

    /* A NACKed removal counts as done: retrying it could loop. */
    for (size_t i = 0; i < f->n_items; i++) {
        struct srv_item *it = &f->items[i];
        if (it->res == NULL)
            continue;
        if (!rejected[i]) {
            accept_item(t, it);
            continue;
        }
        rej[n_rej].name = it->res->name;
        rej[n_rej++].version = it->res->version;
        reject_item(t, it, all);
    }
    s->stats.nacks++;
    t->push_nacked = true;
    free(t->last_nack);
    t->last_nack = xstrndup(message, strnlen(message, NACK_MESSAGE_KEEP));
    ev.type_url = t->type_url;
    ev.nonce = f->nonce;
    ev.message = message;
    ev.code = code;
    ev.rejected = rej;
    ev.n_rejected = n_rej;
    srv_emit(s, &ev);
    free(rejected);
    free(rej);
}

static void
settle_ack(struct xds_server_stream *s, struct srv_type *t, struct srv_flight *f, uint64_t now)
{
    struct xds_server_event ev = {.kind = XDS_SERVER_EV_ACK};

    for (size_t i = 0; i < f->n_items; i++)
        if (f->items[i].res != NULL)
            accept_item(t, &f->items[i]);
    s->stats.acks++;
    ev.type_url = t->type_url;
    ev.nonce = f->nonce;
    ev.latency_ms = now - f->sent_ms;
    srv_emit(s, &ev);
}

void
srv_type_settle(struct xds_server_stream *s, struct srv_type *t, size_t idx,
                const char *error_message, int code)
{
    uint64_t now = srv_now(s);

    CHECK(idx < t->n_flights);
    for (size_t i = 0; i <= idx; i++) {
        struct srv_flight *f = &t->flights[i];
        if (i == idx && error_message != NULL)
            settle_nack(s, t, f, error_message, code);
        else
            settle_ack(s, t, f, now);
        flight_cleanup(f);
    }
    t->n_flights -= idx + 1;
    memmove(t->flights, t->flights + idx + 1, t->n_flights * sizeof(*t->flights));
    if (t->n_flights > 0)
        return;
    free(t->flights);
    t->flights = NULL;
    t->last_ack_ms = now;
    t->push_latency_ms = now - t->push_ms;
    if (!t->push_nacked) {
        free(t->acked_version);
        t->acked_version = xstrdup(xds_snapshot_version(t->synced));
    }
}

void
srv_type_free(struct srv_type *t)
{
    const char *key;
    void *val;
    size_t i = 0;

    if (t == NULL)
        return;
    for (size_t k = 0; k < t->n_flights; k++)
        flight_cleanup(&t->flights[k]);
    free(t->flights);
    while (xds_map_next(&t->entries, &i, &key, &val))
        srv_entry_free(val);
    xds_map_cleanup(&t->entries);
    xds_snapshot_unref(t->synced);
    free(t->type_url);
    free(t->acked_version);
    free(t->last_nack);
    free(t);
}
