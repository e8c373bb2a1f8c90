/*
 * kube_reflector.c - keeps the sink's copy of one kind current: LIST (paged)
 * then WATCH from the list's resourceVersion, with the decisions of
 * kube_plan.c after each ending. Every sink callback may stop the reflector:
 * after each one the code checks |dead| before touching anything else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "kube"
#include "base/base.h"
#include "kube/kube_client_priv.h"
#include "log/log.h"

#define LIST_TIMEOUT_MS 120000
#define WATCH_MIN_S     300
#define WATCH_MAX_S     600
#define WATCH_GRACE_MS  60000 /* past timeoutSeconds before we give up on a silent watch */
#define SHORT_WATCH_MS  1000
#define ERROR_BODY_MAX  (64u << 10)
#define MAX_URL         8192
#define MAX_CONTINUE    4096
#define MAX_PAGES                                                                                  \
    20000 /* pages of one list (10 M objects at 500): a server that                                \
             hands out continue tokens forever is cut off */

enum phase { PH_WAIT, PH_LIST, PH_WATCH };

struct kube_reflector {
    struct kube_reflector *next, *prev; /* in the client's list */
    struct kube_client *c;
    const struct kube_resource *r;
    char *fsel, *lsel;
    struct kube_sink sink;
    void *arg;
    char base[300]; /* "/api/v1/pods", "/apis/g/v/plural" */

    enum phase phase;
    enum kube_step next_step;
    struct kube_call *call;
    struct loop_timer timer;
    struct loop_defer free_defer;
    bool dead;

    char rv[KUBE_RV_MAX + 1]; /* the last resourceVersion synced to */
    bool rv_unavailable;      /* relist from "" */
    bool listed_once;
    int served;     /* -1 unknown, 0 absent reported, 1 served */
    char *cont;     /* continue token of the page to ask for, or NULL */
    unsigned pages; /* pages of the list in progress */
    char list_rv[KUBE_RV_MAX + 1];

    /* the answer in progress */
    int status;
    char retry_after[32];
    char *body;
    size_t len, cap;
    struct kube_lines lines;
    uint64_t watch_start_ms;
    unsigned long watch_events;
    bool bad_line;

    struct kube_cache cache;
    struct kube_backoff bo;
    struct log_ratelimit rl;
    struct kube_reflector_stats st;
};

static void step(struct kube_reflector *rf);

/* ---- scheduling ---------------------------------------------------------- */

static void
on_timer(void *arg)
{
    step(arg);
}

static void
schedule(struct kube_reflector *rf, enum kube_step s, uint64_t delay_ms)
{
    rf->phase = PH_WAIT;
    rf->next_step = s;
    loop_timer_start(rf->c->loop, &rf->timer, delay_ms, on_timer, rf);
}

static void
drop_call(struct kube_reflector *rf)
{
    if (rf->call != NULL) {
        kube_call_cancel(rf->call);
        rf->call = NULL;
    }
    free(rf->body);
    rf->body = NULL;
    rf->len = rf->cap = 0;
    kube_lines_reset(&rf->lines);
}

/* Applies kube_plan_next() to an ending of the current request. */
static void
after(struct kube_reflector *rf, enum kube_outcome o, enum kube_verdict v, unsigned wait_ms,
      const char *why)
{
    bool watching = rf->phase == PH_WATCH;
    struct kube_plan p = kube_plan_next(watching, o, v, wait_ms);
    drop_call(rf);
    if (v == KUBE_V_EXPIRED || v == KUBE_V_TOO_LARGE)
        rf->st.expired++; /* the plan says LIST_FRESH; step() marks the RV unavailable */
    else if (o != KUBE_OUT_END && v != KUBE_V_ABSENT) {
        rf->st.errors++;
    }
    uint64_t delay = p.wait_ms;
    if (p.backoff)
        delay = kube_backoff_next(&rf->bo, loop_now_ms(rf->c->loop), kube_rand());
    if (o != KUBE_OUT_END && v != KUBE_V_ABSENT)
        log_info_rl(&rf->rl, "%s %s: %s; %s in %llu ms", watching ? "watch" : "list", rf->base, why,
                    p.step == KUBE_STEP_WATCH        ? "watching again"
                    : p.step == KUBE_STEP_SAME       ? "retrying"
                    : p.step == KUBE_STEP_LIST_FRESH ? "relisting from \"\""
                                                     : "relisting",
                    (unsigned long long)delay);
    if (p.step == KUBE_STEP_LIST_FRESH || p.step == KUBE_STEP_LIST) {
        free(rf->cont);
        rf->cont = NULL;
    }
    if (p.step == KUBE_STEP_ABSENT) {
        free(rf->cont);
        rf->cont = NULL;
        /* The kind is gone (or never was): so is everything we had of it. */
        json_t **gone;
        size_t n;
        kube_cache_list_begin(&rf->cache);
        n = kube_cache_sweep(&rf->cache, &gone);
        for (size_t i = 0; i < n; i++) {
            if (!rf->dead)
                rf->sink.remove(rf->arg, rf->r, gone[i]);
            json_decref(gone[i]);
        }
        free(gone);
        if (rf->dead)
            return;
        if (rf->served != 0) {
            rf->served = 0;
            rf->rv[0] = '\0';
            rf->sink.synced(rf->arg, rf->r, false);
            if (rf->dead)
                return;
        }
        schedule(rf, KUBE_STEP_LIST, rf->c->absent_retry_ms);
        return;
    }
    schedule(rf, p.step, delay);
}

/* ---- the answer ----------------------------------------------------------- */

static int
collect(struct kube_reflector *rf, const char *p, size_t n, size_t max)
{
    if (n > max - rf->len)
        return -MESH_ELIMIT;
    if (rf->len + n > rf->cap) {
        size_t cap = rf->cap > 0 ? rf->cap : 16384;
        while (cap < rf->len + n)
            cap *= 2;
        rf->body = xrealloc(rf->body, cap);
        rf->cap = cap;
    }
    memcpy(rf->body + rf->len, p, n);
    rf->len += n;
    return 0;
}

/* A non-2xx answer is complete: what it means comes from its Status. */
static void
failed_status(struct kube_reflector *rf)
{
    json_t *j = rf->len > 0 && !kube_json_too_deep(rf->body, rf->len)
                    ? json_loadb(rf->body, rf->len, 0, NULL)
                    : NULL;
    unsigned wait_ms;
    char why[200];
    enum kube_verdict v =
        kube_classify(rf->status, j, rf->retry_after[0] ? rf->retry_after : NULL, &wait_ms);
    const char *msg = json_string_value(json_object_get(j, "message"));
    snprintf(why, sizeof(why), "HTTP %d (%s)%s%.120s", rf->status, kube_verdict_name(v),
             msg != NULL ? ": " : "", msg != NULL ? msg : "");
    json_decref(j);
    after(rf, KUBE_OUT_STATUS, v, wait_ms, why);
}

static void
on_head(void *arg, struct kube_call *k, int status, const char *retry_after)
{
    struct kube_reflector *rf = arg;
    (void)k;
    if (status < 0) {
        rf->call = NULL;
        after(rf, KUBE_OUT_CUT, KUBE_V_RETRY, 0, mesh_strerror(status));
        return;
    }
    rf->status = status;
    snprintf(rf->retry_after, sizeof(rf->retry_after), "%s",
             retry_after != NULL ? retry_after : "");
    if (rf->phase == PH_WATCH && status == 200) {
        rf->watch_start_ms = loop_now_ms(rf->c->loop);
        rf->watch_events = 0;
    }
}

/*
 * metadata.managedFields (server-side apply bookkeeping) is dropped before the
 * sink and the cache see an object, as Istio's informers do: nothing in the
 * mesh reads it and it is often the larger part of a small object.
 */
static void
strip(json_t *obj)
{
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
}

/* ---- LIST ----------------------------------------------------------------- */

static void
finish_list(struct kube_reflector *rf)
{
    json_t **gone;
    size_t n = kube_cache_sweep(&rf->cache, &gone);
    for (size_t i = 0; i < n; i++) {
        if (!rf->dead)
            rf->sink.remove(rf->arg, rf->r, gone[i]);
        json_decref(gone[i]);
    }
    free(gone);
    if (rf->dead)
        return;
    snprintf(rf->rv, sizeof(rf->rv), "%s", rf->list_rv);
    rf->rv_unavailable = false;
    rf->st.lists++;
    if (rf->listed_once)
        rf->st.relists++;
    rf->listed_once = true;
    rf->served = 1;
    rf->sink.synced(rf->arg, rf->r, true);
    if (rf->dead)
        return;
    rf->next_step = KUBE_STEP_WATCH;
    step(rf);
}

/* One page: its items go to the sink as they are; the sweep waits for the last page. */
static void
take_page(struct kube_reflector *rf)
{
    json_error_t je;
    json_t *j = kube_json_too_deep(rf->body, rf->len)
                    ? NULL
                    : json_loadb(rf->body, rf->len, JSON_REJECT_DUPLICATES, &je);
    json_t *items = json_object_get(j, "items");
    json_t *md = json_object_get(j, "metadata");
    const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
    const char *cont = json_string_value(json_object_get(md, "continue"));
    if (!json_is_array(items) || rv == NULL || *rv == '\0' || strlen(rv) > KUBE_RV_MAX ||
        (cont != NULL && strlen(cont) > MAX_CONTINUE)) {
        json_decref(j);
        after(rf, KUBE_OUT_BAD, KUBE_V_RETRY, 0,
              "the list is not a List with items and metadata.resourceVersion");
        return;
    }
    drop_call(rf);
    snprintf(rf->list_rv, sizeof(rf->list_rv), "%s", rv);
    free(rf->cont);
    rf->cont = cont != NULL && *cont != '\0' ? xstrdup(cont) : NULL;
    size_t i;
    json_t *it;
    char key[KUBE_KEY_MAX];
    json_array_foreach(items, i, it)
    {
        if (!json_is_object(it) || !kube_obj_key(it, key)) {
            log_warn_rl(&rf->rl, "list %s: item %zu has no usable metadata.name; skipped", rf->base,
                        i);
            continue;
        }
        strip(it);
        json_object_set_new(it, "apiVersion", json_string(rf->r->group_version));
        json_object_set_new(it, "kind", json_string(rf->r->kind));
        kube_cache_put(&rf->cache, key, it);
        kube_cache_mark(&rf->cache, key);
        rf->sink.upsert(rf->arg, rf->r, it);
        if (rf->dead)
            break;
    }
    json_decref(j);
    if (rf->dead)
        return;
    if (rf->cont != NULL && ++rf->pages >= rf->c->max_pages) {
        after(rf, KUBE_OUT_BAD, KUBE_V_RETRY, 0, "the list goes on past the page cap");
        return;
    }
    if (rf->cont != NULL) {
        rf->next_step = KUBE_STEP_SAME;
        step(rf);
        return;
    }
    finish_list(rf);
}

/* ---- WATCH ---------------------------------------------------------------- */

static int
on_line(void *arg, const char *line, size_t len)
{
    struct kube_reflector *rf = arg;
    struct kube_event ev;
    char err[160], key[KUBE_KEY_MAX];
    if (kube_event_decode(line, len, &ev, err, sizeof(err)) != 0) {
        log_warn_rl(&rf->rl, "watch %s: %s", rf->base, err);
        rf->bad_line = true;
        return -1;
    }
    if (ev.type == KUBE_EV_ERROR) {
        unsigned wait_ms;
        enum kube_verdict v = kube_classify(0, ev.obj, NULL, &wait_ms);
        const char *msg = json_string_value(json_object_get(ev.obj, "message"));
        char why[200];
        snprintf(why, sizeof(why), "ERROR event (%s)%s%.120s", kube_verdict_name(v),
                 msg != NULL ? ": " : "", msg != NULL ? msg : "");
        kube_event_clear(&ev);
        after(rf, KUBE_OUT_EVENT, v, wait_ms, why);
        return -ECANCELED;
    }
    if (ev.type == KUBE_EV_BOOKMARK) {
        snprintf(rf->rv, sizeof(rf->rv), "%s", ev.rv);
        rf->st.bookmarks++;
        rf->watch_events++; /* client-go counts it for the "very short watch" rule too */
        kube_event_clear(&ev);
        return 0;
    }
    if (!kube_obj_key(ev.obj, key)) {
        kube_event_clear(&ev);
        rf->bad_line = true;
        return -1;
    }
    snprintf(rf->rv, sizeof(rf->rv), "%s", ev.rv);
    rf->watch_events++;
    rf->st.events++;
    strip(ev.obj);
    if (ev.type == KUBE_EV_DELETED) {
        json_decref(kube_cache_take(&rf->cache, key));
        rf->sink.remove(rf->arg, rf->r, ev.obj);
    } else {
        kube_cache_put(&rf->cache, key, ev.obj);
        rf->sink.upsert(rf->arg, rf->r, ev.obj);
    }
    kube_event_clear(&ev);
    return rf->dead ? -ECANCELED : 0;
}

static int
on_data(void *arg, struct kube_call *k, const char *p, size_t n)
{
    struct kube_reflector *rf = arg;
    (void)k;
    if (rf->status < 200 || rf->status > 299) {
        if (collect(rf, p, n, ERROR_BODY_MAX) == 0)
            return 0;
        rf->call = NULL; /* the client drops it when we return <0 */
        after(rf, KUBE_OUT_CUT, KUBE_V_RETRY, 0, "error body too large");
        return -1;
    }
    if (rf->phase == PH_LIST) {
        if (collect(rf, p, n, KUBE_MAX_BODY_BYTES) == 0)
            return 0;
        rf->call = NULL;
        after(rf, KUBE_OUT_BAD, KUBE_V_RETRY, 0, "list page larger than the cap");
        return -1;
    }
    int rc = kube_lines_feed(&rf->lines, p, n, on_line, rf);
    if (rc == 0)
        return 0;
    if (rc == -ECANCELED)
        return -1; /* already handled (ERROR event) or stopped */
    if (rf->dead)
        return -1;
    rf->call = NULL;
    after(rf, KUBE_OUT_BAD, KUBE_V_RETRY, 0,
          rc == -MESH_ELIMIT ? "event line over the cap" : "undecodable event");
    return -1;
}

static void
on_end(void *arg, struct kube_call *k, int err)
{
    struct kube_reflector *rf = arg;
    (void)k;
    rf->call = NULL;
    if (err < 0) {
        after(rf, KUBE_OUT_CUT, KUBE_V_RETRY, 0, mesh_strerror(err));
        return;
    }
    if (rf->status < 200 || rf->status > 299) {
        failed_status(rf);
        return;
    }
    if (rf->phase == PH_LIST) {
        take_page(rf);
        return;
    }
    if (kube_lines_pending(&rf->lines) > 0) {
        after(rf, KUBE_OUT_CUT, KUBE_V_RETRY, 0, "watch ended inside an event");
        return;
    }
    bool shortw =
        loop_now_ms(rf->c->loop) - rf->watch_start_ms < SHORT_WATCH_MS && rf->watch_events == 0;
    after(rf, shortw ? KUBE_OUT_SHORT : KUBE_OUT_END, KUBE_V_OK, 0,
          shortw ? "very short watch (< 1 s, no event)" : "ended");
}

static void
on_drop(void *arg, struct kube_call *k)
{
    struct kube_reflector *rf = arg;
    (void)k;
    rf->call = NULL;
}

static const struct kube_call_cbs call_cbs = {
    .on_head = on_head,
    .on_data = on_data,
    .on_end = on_end,
    .on_drop = on_drop,
};

/* ---- requests ------------------------------------------------------------- */

static bool
add_selectors(const struct kube_reflector *rf, char *q, size_t cap)
{
    return (rf->fsel == NULL || kube_query_add(q, cap, "fieldSelector", rf->fsel)) &&
           (rf->lsel == NULL || kube_query_add(q, cap, "labelSelector", rf->lsel));
}

static void
step(struct kube_reflector *rf)
{
    char q[MAX_URL] = "", path[MAX_URL + 320];
    uint64_t timeout;
    bool ok = true;
    if (rf->dead)
        return;
    loop_timer_stop(rf->c->loop, &rf->timer);
    drop_call(rf);
    enum kube_step s = rf->next_step;
    if (s == KUBE_STEP_WATCH && rf->rv[0] == '\0')
        s = KUBE_STEP_LIST; /* nothing to watch from */
    if (s == KUBE_STEP_LIST_FRESH)
        rf->rv_unavailable = true;
    if (s == KUBE_STEP_WATCH) {
        unsigned secs = WATCH_MIN_S + (unsigned)(kube_rand() * (WATCH_MAX_S - WATCH_MIN_S + 1));
        char ts[16];
        snprintf(ts, sizeof(ts), "%u", secs);
        ok = kube_query_add(q, sizeof(q), "watch", "1") &&
             kube_query_add(q, sizeof(q), "allowWatchBookmarks", "true") &&
             kube_query_add(q, sizeof(q), "timeoutSeconds", ts) &&
             kube_query_add(q, sizeof(q), "resourceVersion", rf->rv) &&
             add_selectors(rf, q, sizeof(q));
        rf->phase = PH_WATCH;
        rf->st.watches++;
        timeout = (uint64_t)secs * 1000 + WATCH_GRACE_MS;
        kube_lines_init(&rf->lines, rf->c->max_event);
    } else {
        char lim[16];
        snprintf(lim, sizeof(lim), "%d", KUBE_LIST_PAGE_LIMIT);
        if (s != KUBE_STEP_SAME || rf->cont == NULL) {
            /* A new list: which resourceVersion (client-go's relistResourceVersion). */
            free(rf->cont);
            rf->cont = NULL;
            rf->pages = 0;
            kube_cache_list_begin(&rf->cache);
        }
        ok = kube_query_add(q, sizeof(q), "limit", lim);
        if (rf->cont != NULL)
            ok = ok && kube_query_add(q, sizeof(q), "continue", rf->cont);
        else if (!rf->rv_unavailable)
            ok = ok && kube_query_add(q, sizeof(q), "resourceVersion", rf->rv[0] ? rf->rv : "0");
        ok = ok && add_selectors(rf, q, sizeof(q));
        rf->phase = PH_LIST;
        timeout = LIST_TIMEOUT_MS;
    }
    rf->next_step = s;
    rf->status = 0;
    rf->bad_line = false;
    if (!ok) {
        log_warn_rl(&rf->rl, "%s: request URL too long; retrying later", rf->base);
        schedule(rf, KUBE_STEP_LIST_FRESH, rf->c->absent_retry_ms);
        return;
    }
    snprintf(path, sizeof(path), "%s?%s", rf->base, q);
    rf->call = kube_call_start(rf->c, "GET", path, NULL, NULL, 0, timeout, &call_cbs, rf);
    if (rf->call == NULL)
        schedule(rf, s, kube_backoff_next(&rf->bo, loop_now_ms(rf->c->loop), kube_rand()));
}

/* ---- lifetime ------------------------------------------------------------- */

struct kube_reflector *
kube_reflector_start(struct kube_client *c, const struct kube_resource *r,
                     const char *field_selector, const char *label_selector,
                     const struct kube_sink *sink, void *arg)
{
    if (c->freeing || r->group_version == NULL || r->plural == NULL || r->kind == NULL)
        return NULL;
    struct kube_reflector *rf = xcalloc(1, sizeof(*rf));
    rf->c = c;
    rf->r = r;
    rf->fsel = field_selector != NULL && *field_selector ? xstrdup(field_selector) : NULL;
    rf->lsel = label_selector != NULL && *label_selector ? xstrdup(label_selector) : NULL;
    rf->sink = *sink;
    rf->arg = arg;
    rf->served = -1;
    if (strcmp(r->group_version, "v1") == 0)
        snprintf(rf->base, sizeof(rf->base), "/api/v1/%s", r->plural);
    else
        snprintf(rf->base, sizeof(rf->base), "/apis/%s/%s", r->group_version, r->plural);
    rf->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    kube_cache_init(&rf->cache);
    kube_lines_init(&rf->lines, c->max_event);
    uint64_t bmin, bmax;
    kube_client_backoff_range(c, &bmin, &bmax);
    kube_backoff_init(&rf->bo, bmin, bmax);
    rf->next = c->reflectors;
    if (c->reflectors != NULL)
        c->reflectors->prev = rf;
    c->reflectors = rf;
    /* From the loop: no sink callback inside kube_reflector_start(). */
    schedule(rf, KUBE_STEP_LIST, 0);
    return rf;
}

static void
reflector_free(void *arg)
{
    struct kube_reflector *rf = arg;
    kube_cache_free(&rf->cache);
    free(rf);
}

void
kube_reflector_stop(struct kube_reflector *rf)
{
    if (rf == NULL || rf->dead)
        return;
    struct kube_client *c = rf->c;
    rf->dead = true;
    loop_timer_stop(c->loop, &rf->timer);
    drop_call(rf);
    kube_lines_free(&rf->lines);
    free(rf->cont);
    rf->cont = NULL;
    free(rf->fsel);
    free(rf->lsel);
    rf->fsel = rf->lsel = NULL;
    if (rf->prev != NULL)
        rf->prev->next = rf->next;
    else
        c->reflectors = rf->next;
    if (rf->next != NULL)
        rf->next->prev = rf->prev;
    /* A sink callback may be stopping us: the memory goes after the handlers return. */
    loop_defer(c->loop, &rf->free_defer, reflector_free, rf);
}

void
kube_reflector_stats(const struct kube_reflector *rf, struct kube_reflector_stats *out)
{
    *out = rf->st;
}
