/*
 * test_kube_reflector.c - reflectors against a model API server: the fake
 * (tests/support/unit_kubesrv.c) serves ConfigMaps from an in-test model with
 * a resourceVersion counter, an event log and a compaction mark, paged LISTs
 * with continue tokens, and WATCHes that replay the log and then stream
 * changes; faults are scripted per test. After each scenario the sink's view
 * must equal the model (no lost, stale or duplicated object).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube.h"
#include "kube/kube_client_priv.h"
#include "kube/kube_proto.h"
#include "unit_kubesrv.h"
#include "unit_loop.h"

#define MAXO  64
#define MAXEV 512

struct mobj {
    char name[32];
    int val, rv;
    bool alive;
};

struct mev {
    int rv;
    const char *type;
    char name[32];
    int val;
};

struct m {
    struct loop *loop;
    struct fks *f;
    struct kube_client *c;
    struct kube_reflector *rf;
    /* the model */
    int rv, compacted;
    struct mobj o[MAXO];
    int n_o;
    struct mev ev[MAXEV];
    int n_ev;
    bool absent;                     /* the kind is not served (404) */
    bool mute;                       /* changes are not pushed to open watches */
    bool end_watches_at_once;        /* every watch ends right after its replay */
    int page;                        /* the server's page size */
    size_t pace;                     /* watch bytes per loop turn (0: all at once) */
    int list_fault[8], n_list_fault; /* statuses for the next LISTs, in order */
    const char *list_fault_body[8];
    const char *list_fault_hdr[8];
    bool continue_410; /* the next continue page answers 410 */
    bool endless;      /* continue pages never end */
    int watch_fault;   /* the next WATCH answers this status */
    /* what the server saw */
    int n_lists, n_watches;
    char fsel[128], lsel[128]; /* selectors of the last request ("-" if none) */
    char list_rv[16][64];      /* resourceVersion of each LIST ("-" if absent) */
    char watch_rv[64][64];
    uint64_t list_ms[16];
    /* the sink's view */
    int view[MAXO]; /* val, or -1 when absent */
    int upserts[MAXO], removes[MAXO];
    int synced, synced_false;
    bool last_served;
    bool stop_in_upsert;
};

/* A decimal the fake or the test wrote itself. */
static int
num(const char *s)
{
    return (int)strtol(s != NULL ? s : "0", NULL, 10);
}

static int
find(struct m *m, const char *name)
{
    for (int i = 0; i < m->n_o; i++)
        if (strcmp(m->o[i].name, name) == 0)
            return i;
    return -1;
}

static char *
obj_json(const char *name, int val, int rv, bool with_kind)
{
    return xasprintf("{%s\"metadata\":{\"name\":\"%s\",\"namespace\":\"demo\","
                     "\"resourceVersion\":\"%d\"},\"data\":{\"v\":\"%d\"}}",
                     with_kind ? "\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"," : "", name, rv,
                     val);
}

static char *
event_line(const struct mev *e)
{
    char *o = obj_json(e->name, e->val, e->rv, true);
    char *l = xasprintf("{\"type\":\"%s\",\"object\":%s}\n", e->type, o);
    free(o);
    return l;
}

static void
push(struct m *m, const struct mev *e)
{
    struct fks_req *open[FKS_MAX_REQS];
    size_t n = fks_open(m->f, open, FKS_MAX_REQS);
    char *l = event_line(e);
    for (size_t i = 0; i < n; i++)
        if (open[i]->user == (void *)1)
            fks_write_str(open[i], l);
    free(l);
}

static void
model_set(struct m *m, const char *name, int val)
{
    int i = find(m, name);
    if (i < 0) {
        i = m->n_o++;
        snprintf(m->o[i].name, sizeof(m->o[i].name), "%s", name);
        m->view[i] = -1;
    }
    bool was = m->o[i].alive;
    m->o[i].alive = true;
    m->o[i].val = val;
    m->o[i].rv = ++m->rv;
    struct mev *e = &m->ev[m->n_ev++];
    *e = (struct mev){m->rv, was ? "MODIFIED" : "ADDED", "", val};
    snprintf(e->name, sizeof(e->name), "%s", name);
    if (!m->mute)
        push(m, e);
}

static void
model_del(struct m *m, const char *name)
{
    int i = find(m, name);
    assert_true(i >= 0 && m->o[i].alive);
    m->o[i].alive = false;
    m->rv++;
    struct mev *e = &m->ev[m->n_ev++];
    *e = (struct mev){m->rv, "DELETED", "", m->o[i].val};
    snprintf(e->name, sizeof(e->name), "%s", name);
    if (!m->mute)
        push(m, e);
}

static void
respond_status(struct fks_req *rq, int code, const char *reason, const char *extra)
{
    char *b = xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                        "\"message\":\"scripted\",\"reason\":\"%s\",\"code\":%d%s}",
                        reason, code, extra != NULL ? extra : "");
    fks_respond(rq, code, b, NULL, NULL);
    free(b);
}

static void
serve_list(struct m *m, struct fks_req *rq)
{
    char rv[64], cont[64];
    bool has_rv = fks_param(rq, "resourceVersion", rv, sizeof(rv));
    bool has_cont = fks_param(rq, "continue", cont, sizeof(cont));
    int li = m->n_lists++;
    if (li < 16) {
        snprintf(m->list_rv[li], sizeof(m->list_rv[li]), "%s", has_rv ? rv : "-");
        m->list_ms[li] = clock_mono_ms();
    }
    if (m->n_list_fault > 0) {
        int st = m->list_fault[0];
        const char *body = m->list_fault_body[0], *hdr = m->list_fault_hdr[0];
        memmove(m->list_fault, m->list_fault + 1, sizeof(m->list_fault) - sizeof(int));
        memmove(m->list_fault_body, m->list_fault_body + 1,
                sizeof(m->list_fault_body) - sizeof(char *));
        memmove(m->list_fault_hdr, m->list_fault_hdr + 1,
                sizeof(m->list_fault_hdr) - sizeof(char *));
        m->n_list_fault--;
        fks_respond(rq, st, body != NULL ? body : "{\"kind\":\"Status\",\"code\":500}",
                    hdr != NULL ? "retry-after" : NULL, hdr);
        return;
    }
    if (m->absent) {
        respond_status(rq, 404, "NotFound", NULL);
        return;
    }
    int start = 0, at_rv = m->rv;
    if (has_cont) {
        if (m->continue_410) {
            m->continue_410 = false;
            respond_status(rq, 410, "Expired", NULL);
            return;
        }
        assert_int_equal(sscanf(cont, "%d:%d", &at_rv, &start), 2);
        if (m->endless)
            start = 0;
        assert_false(has_rv); /* continue goes without resourceVersion */
    }
    char lim[16];
    assert_true(fks_param(rq, "limit", lim, sizeof(lim)));
    int limit = num(lim);
    if (m->page > 0 && m->page < limit)
        limit = m->page;
    /* The page holds the objects alive now, in model order (the model does not change mid-list). */
    size_t cap = 1 << 16, len = 0;
    char *b = xmalloc(cap);
    len +=
        (size_t)snprintf(b, cap, "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"items\":[");
    int i, taken = 0, idx = 0;
    for (i = 0; i < m->n_o; i++) {
        if (!m->o[i].alive)
            continue;
        if (idx++ < start)
            continue;
        if (taken == limit)
            break;
        char *o = obj_json(m->o[i].name, m->o[i].val, m->o[i].rv, false);
        len += (size_t)snprintf(b + len, cap - len, "%s%s", taken ? "," : "", o);
        free(o);
        taken++;
    }
    bool more = m->endless;
    for (; i < m->n_o; i++)
        more |= m->o[i].alive;
    if (more)
        len +=
            (size_t)snprintf(b + len, cap - len,
                             "],\"metadata\":{\"resourceVersion\":\"%d\",\"continue\":\"%d:%d\"}}",
                             at_rv, at_rv, start + taken);
    else
        len += (size_t)snprintf(b + len, cap - len, "],\"metadata\":{\"resourceVersion\":\"%d\"}}",
                                at_rv);
    assert_true(len < cap);
    fks_respond(rq, 200, b, NULL, NULL);
    free(b);
}

static void
serve_watch(struct m *m, struct fks_req *rq)
{
    char rv[64], v[16];
    assert_true(fks_param(rq, "resourceVersion", rv, sizeof(rv)));
    assert_true(fks_param(rq, "allowWatchBookmarks", v, sizeof(v)));
    assert_string_equal(v, "true");
    assert_true(fks_param(rq, "timeoutSeconds", v, sizeof(v)));
    assert_true(num(v) >= 300 && num(v) <= 600);
    int wi = m->n_watches++;
    if (wi < 64)
        snprintf(m->watch_rv[wi], sizeof(m->watch_rv[wi]), "%s", rv);
    if (m->watch_fault != 0) {
        int st = m->watch_fault;
        m->watch_fault = 0;
        respond_status(rq, st, st == 410 ? "Expired" : "InternalError", NULL);
        return;
    }
    if (m->absent) {
        respond_status(rq, 404, "NotFound", NULL);
        return;
    }
    rq->pace = m->pace;
    fks_begin(rq, 200);
    int from = num(rv);
    if (from < m->compacted) {
        char *l = xasprintf("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
                            "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old "
                            "resource version: %d (%d)\",\"reason\":\"Expired\",\"code\":410}}\n",
                            from, m->compacted);
        fks_write_str(rq, l);
        free(l);
        fks_end(rq);
        return;
    }
    for (int i = 0; i < m->n_ev; i++)
        if (m->ev[i].rv > from) {
            char *l = event_line(&m->ev[i]);
            fks_write_str(rq, l);
            free(l);
        }
    if (m->end_watches_at_once) {
        fks_end(rq);
        return;
    }
    rq->user = (void *)1; /* gets pushed changes */
}

static void
handler(void *arg, struct fks_req *rq)
{
    struct m *m = arg;
    if (strcmp(rq->path, "/api/v1/configmaps") != 0) {
        respond_status(rq, 404, "NotFound", NULL);
        return;
    }
    char w[8];
    if (!fks_param(rq, "fieldSelector", m->fsel, sizeof(m->fsel)))
        snprintf(m->fsel, sizeof(m->fsel), "-");
    if (!fks_param(rq, "labelSelector", m->lsel, sizeof(m->lsel)))
        snprintf(m->lsel, sizeof(m->lsel), "-");
    if (fks_param(rq, "watch", w, sizeof(w)))
        serve_watch(m, rq);
    else
        serve_list(m, rq);
}

/* ---- the sink ---- */

static int
name_index(struct m *m, const json_t *obj)
{
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    assert_non_null(name);
    int i = find(m, name);
    assert_true(i >= 0);
    return i;
}

static const struct kube_resource cm = {"v1", "configmaps", "ConfigMap", true};

static void
sink_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct m *m = arg;
    assert_ptr_equal(r, &cm);
    /* Listed items got apiVersion and kind like watched ones. */
    assert_string_equal(json_string_value(json_object_get(obj, "kind")), "ConfigMap");
    assert_string_equal(json_string_value(json_object_get(obj, "apiVersion")), "v1");
    int i = name_index(m, obj);
    m->view[i] = num(json_string_value(json_object_get(json_object_get(obj, "data"), "v")));
    m->upserts[i]++;
    if (m->stop_in_upsert) {
        kube_reflector_stop(m->rf);
        m->rf = NULL;
    }
}

static void
sink_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct m *m = arg;
    (void)r;
    int i = name_index(m, obj);
    assert_true(m->view[i] >= 0); /* only what was there goes */
    m->view[i] = -1;
    m->removes[i]++;
}

static void
sink_synced(void *arg, const struct kube_resource *r, bool served)
{
    struct m *m = arg;
    (void)r;
    m->synced++;
    m->synced_false += !served;
    m->last_served = served;
}

static const struct kube_sink sink = {sink_upsert, sink_remove, sink_synced};

static bool
view_ok(void *arg)
{
    struct m *m = arg;
    for (int i = 0; i < m->n_o; i++)
        if (m->view[i] != (m->o[i].alive ? m->o[i].val : -1))
            return false;
    return m->synced > 0;
}

static void
expect_view(struct m *m)
{
    if (!unit_run_until(m->loop, view_ok, m, 8000)) {
        for (int i = 0; i < m->n_o; i++)
            fprintf(stderr, "%s: model %d view %d\n", m->o[i].name,
                    m->o[i].alive ? m->o[i].val : -1, m->view[i]);
        fail_msg("the view differs from the model");
    }
}

static void
setup_m(struct m *m, unsigned bo_min, unsigned bo_max)
{
    memset(m, 0, sizeof(*m));
    m->loop = loop_new();
    m->f = fks_new(m->loop, handler, m);
    struct kube_config cfg = {.server = (char *)fks_server(m->f),
                              .ca_pem = (char *)fks_ca_pem(m->f),
                              .token = (char *)"t"};
    char err[256];
    m->c = kube_client_new(m->loop, &cfg, err, sizeof(err));
    assert_non_null(m->c);
    kube_client_set_backoff(m->c, bo_min, bo_max);
}

static void
start(struct m *m)
{
    m->rf = kube_reflector_start(m->c, &cm, NULL, NULL, &sink, m);
    assert_non_null(m->rf);
    assert_int_equal(m->synced, 0); /* nothing from inside start */
}

static void
teardown_m(struct m *m)
{
    kube_client_free(m->c); /* stops the reflector too */
    fks_free(m->f);
    loop_run_deferred(m->loop);
    loop_free(m->loop);
}

static void
stats(struct m *m, struct kube_reflector_stats *st)
{
    kube_reflector_stats(m->rf, st);
}

/* Open watch streams (those that get pushed changes). */
static size_t
open_watches(struct m *m, struct fks_req **out)
{
    struct fks_req *open[FKS_MAX_REQS];
    size_t n = fks_open(m->f, open, FKS_MAX_REQS), k = 0;
    for (size_t i = 0; i < n; i++)
        if (open[i]->user == (void *)1) {
            if (out != NULL)
                out[k] = open[i];
            k++;
        }
    return k;
}

static bool
cond_watching(void *arg)
{
    return open_watches(arg, NULL) > 0;
}

static int want_watches;

static bool
cond_n_watching(void *arg)
{
    struct m *m = arg;
    return m->n_watches >= want_watches && open_watches(m, NULL) > 0;
}

/* Waits for the |n|th watch to be open. */
static void
wait_watch_n(struct m *m, int n)
{
    want_watches = n;
    assert_true(unit_run_until(m->loop, cond_n_watching, m, 8000));
}

static void
wait_watching(struct m *m)
{
    assert_true(unit_run_until(m->loop, cond_watching, m, 8000));
}

/* Ends every open watch cleanly, as the server does at timeoutSeconds. */
static void
end_watches(struct m *m)
{
    struct fks_req *w[FKS_MAX_REQS];
    size_t n = open_watches(m, w);
    for (size_t i = 0; i < n; i++) {
        w[i]->user = NULL;
        fks_end(w[i]);
    }
}

static void
seed(struct m *m, int n)
{
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "cm%02d", i);
        model_set(m, name, i);
    }
}

/* ---- scenarios ---- */

/* Paged LIST (continue), then WATCH from the list's RV; changes stream in; BOOKMARK moves the RV.
 */
static void
test_list_watch_bookmark(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 7);
    m.page = 3;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.synced, 1);
    assert_int_equal(m.n_lists, 3);         /* 3 + 3 + 1 */
    assert_string_equal(m.list_rv[0], "0"); /* first from the watch cache */
    assert_string_equal(m.list_rv[1], "-"); /* continue pages carry no RV */
    wait_watching(&m);
    assert_string_equal(m.watch_rv[0], "7");

    model_set(&m, "cm01", 100);
    model_del(&m, "cm02");
    model_set(&m, "new", 5);
    expect_view(&m);
    for (int i = 0; i < m.n_o; i++)
        assert_int_equal(m.removes[i], strcmp(m.o[i].name, "cm02") == 0);

    /* A BOOKMARK (other kinds changed: RV 10 -> 15), then the server's timeout ends the watch. */
    m.rv += 5;
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    fks_write_str(w[0], "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":"
                        "\"v1\",\"metadata\":{\"resourceVersion\":\"15\"}}}\n");
    unit_run_for(m.loop, 1100); /* not a "very short" watch */
    end_watches(&m);
    wait_watch_n(&m, 2);
    assert_int_equal(m.n_watches, 2);
    assert_string_equal(m.watch_rv[1], "15"); /* re-watched from the bookmark, no relist */
    assert_int_equal(m.n_lists, 3);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.lists, 1);
    assert_int_equal(st.relists, 0);
    assert_int_equal(st.bookmarks, 1);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.errors, 0);
    teardown_m(&m);
}

/* Every byte of the watch in its own DATA frame: events are put back together. */
static void
test_one_byte_frames(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    m.pace = 1;
    unit_run_for(m.loop, 1100); /* not a "very short" watch */
    end_watches(&m);            /* the next watch is paced */
    wait_watch_n(&m, 2);
    model_set(&m, "cm00", 42);
    model_del(&m, "cm01");
    model_set(&m, "x", 7);
    expect_view(&m);
    for (int i = 0; i < m.n_o; i++)
        assert_true(m.upserts[i] <= 2);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.errors, 0);
    teardown_m(&m);
}

/* The watch resumes from a compacted RV: in-stream ERROR 410, relist from "", deletes synthesised.
 */
static void
test_expired_in_stream(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 5);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    /* Changes the client never hears of, then compaction past them. */
    m.mute = true;
    model_del(&m, "cm01");
    model_del(&m, "cm03");
    model_set(&m, "cm04", 44);
    model_set(&m, "late", 1);
    m.compacted = m.rv;
    m.mute = false;
    unit_run_for(m.loop, 1100);
    end_watches(&m);
    expect_view(&m);
    assert_int_equal(m.watch_rv[1][0], '5');
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "-"); /* resourceVersion "" : a consistent read */
    assert_int_equal(m.removes[find(&m, "cm01")], 1);
    assert_int_equal(m.removes[find(&m, "cm03")], 1);
    assert_int_equal(m.removes[find(&m, "cm00")], 0);
    wait_watching(&m);
    assert_int_equal(num(m.watch_rv[m.n_watches - 1]), m.rv);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.relists, 1);
    teardown_m(&m);
}

/* HTTP 410 on a continue page: the whole list again, from "". */
static void
test_continue_410(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 5);
    m.page = 2;
    m.continue_410 = true;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.synced, 1);
    /* 0: first page (RV "0"); 1: continue -> 410; 2..4: a full list from "" */
    assert_int_equal(m.n_lists, 5);
    assert_string_equal(m.list_rv[0], "0");
    assert_string_equal(m.list_rv[2], "-");
    char c2[8];
    (void)c2;
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.lists, 1);
    for (int i = 0; i < m.n_o; i++)
        assert_int_equal(m.removes[i], 0);
    teardown_m(&m);
}

/* 504 ResourceVersionTooLarge relists from ""; 429 waits for Retry-After; 500 backs off. */
static void
test_504_429_500(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 200, 400);
    seed(&m, 3);
    m.list_fault[0] = 504;
    m.list_fault_body[0] = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Too large "
                           "resource version: 999999, current: 3\",\"reason\":\"Timeout\","
                           "\"details\":{\"causes\":[{\"reason\":\"ResourceVersionTooLarge\","
                           "\"message\":\"Too large resource version\"}],\"retryAfterSeconds\":1},"
                           "\"code\":504}";
    m.list_fault[1] = 429;
    m.list_fault_hdr[1] = "1";
    m.list_fault[2] = 500;
    m.list_fault[3] = 500;
    m.n_list_fault = 4;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.n_lists, 5);
    assert_string_equal(m.list_rv[0], "0");
    assert_string_equal(m.list_rv[1], "-"); /* after TooLarge: "" */
    uint64_t d429 = m.list_ms[2] - m.list_ms[1];
    uint64_t d500a = m.list_ms[3] - m.list_ms[2], d500b = m.list_ms[4] - m.list_ms[3];
    if (d429 < 950 || d500a < 190 || d500b < 390)
        fail_msg("waits: 429 %llu ms, 500 %llu ms then %llu ms", (unsigned long long)d429,
                 (unsigned long long)d500a, (unsigned long long)d500b);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.errors, 3);
    teardown_m(&m);
}

/* The connection is cut inside an event: reconnect, re-watch from the last RV, nothing doubled. */
static void
test_cut_mid_event(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 3);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    model_set(&m, "cm00", 10);
    expect_view(&m);
    /* Half of the next event reaches the client, then the connection dies. */
    m.mute = true;
    model_set(&m, "cm01", 11);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    char *l = event_line(&m.ev[m.n_ev - 1]);
    fks_write(w[0], l, strlen(l) / 2);
    free(l);
    unit_run_for(m.loop, 50);
    m.mute = false;
    fks_cut(m.f);
    expect_view(&m);
    wait_watching(&m);
    assert_int_equal(fks_connections(m.f), 2);
    assert_int_equal(m.n_lists, 1); /* no relist: the watch resumed */
    assert_string_equal(m.watch_rv[1], "4");
    assert_int_equal(m.upserts[find(&m, "cm00")], 2);
    assert_int_equal(m.upserts[find(&m, "cm01")], 2);
    teardown_m(&m);
}

/* GOAWAY: the server ends its watches; the client carries on over a new connection. */
static void
test_goaway(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    unit_run_for(m.loop, 1100);
    fks_goaway(m.f);
    end_watches(&m);
    wait_watch_n(&m, 2);
    model_set(&m, "cm00", 9);
    expect_view(&m);
    assert_int_equal(fks_connections(m.f), 2);
    assert_int_equal(m.n_lists, 1);
    teardown_m(&m);
}

/* An event line over the cap fails that watch; the reflector relists from the last RV. */
static void
test_line_over_cap(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    kube_client_set_limits(m.c, 1000, 30000);
    expect_view(&m);
    wait_watching(&m);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    char *big = xmalloc(3000);
    memset(big, ' ', 2999);
    big[2999] = '\0';
    fks_write_str(w[0], "{\"type\":\"MODIFIED\",");
    fks_write_str(w[0], big);
    free(big);
    model_set(&m, "cm01", 77); /* in the same stream, after the junk: never parsed */
    assert_true(unit_run_until(m.loop, view_ok, &m, 5000));
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "2"); /* from the last RV seen, not "" */
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.relists, 1);
    teardown_m(&m);
}

/* 404: synced(served=false) at once, looked at again slowly, served when it appears. */
static void
test_absent_kind(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    m.absent = true;
    start(&m);
    kube_client_set_limits(m.c, KUBE_MAX_EVENT_BYTES, 300);
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000));
    assert_int_equal(m.synced, 1);
    assert_false(m.last_served);
    unit_run_for(m.loop, 700);
    assert_true(m.n_lists >= 2 && m.n_lists <= 4); /* every 300 ms, not in a loop */
    assert_int_equal(m.synced, 1);                 /* reported once */
    seed(&m, 2);
    m.absent = false;
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000) && m.last_served);
    expect_view(&m);
    assert_int_equal(m.synced, 2);
    /* The CRD goes away: its objects go with it, and it is reported absent again. */
    wait_watching(&m);
    m.absent = true;
    end_watches(&m);
    for (int i = 0; i < m.n_o; i++)
        m.o[i].alive = false;
    expect_view(&m);
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000));
    assert_int_equal(m.synced_false, 2);
    teardown_m(&m);
}

/* Watches that end at once without an event back off and relist instead of spinning. */
static void
test_very_short_watch(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 100, 200);
    seed(&m, 1);
    m.end_watches_at_once = true;
    start(&m);
    expect_view(&m);
    unit_run_for(m.loop, 1000);
    if (m.n_watches > 8)
        fail_msg("%d watches in a second", m.n_watches);
    assert_true(m.n_lists >= 2); /* each very short watch relists */
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_true(st.errors >= 2);
    teardown_m(&m);
}

/* An ERROR event other than 410 relists after a backoff; a sink may stop its reflector. */
static void
test_error_event_and_stop(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    fks_write_str(w[0], "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
                        "\"reason\":\"InternalError\",\"message\":\"etcd is sad\"}}\n");
    wait_watch_n(&m, 2);
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "2");
    m.stop_in_upsert = true;
    model_set(&m, "cm00", 5);
    unit_run_for(m.loop, 200);
    assert_null(m.rf);
    int before = m.upserts[0] + m.upserts[1];
    model_set(&m, "cm01", 6);
    unit_run_for(m.loop, 200);
    assert_int_equal(m.upserts[0] + m.upserts[1], before);
    teardown_m(&m);
}

/* Watch HTTP errors: 410 relists from "", 500 re-watches from the same RV. */
static void
test_watch_http_errors(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    m.watch_fault = 500;
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    assert_int_equal(m.n_watches, 2);
    assert_string_equal(m.watch_rv[1], "2");
    assert_int_equal(m.n_lists, 1);
    m.watch_fault = 410;
    unit_run_for(m.loop, 1100);
    end_watches(&m);
    wait_watch_n(&m, 3);
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "-");
    teardown_m(&m);
}

/* A server whose continue tokens never end: the list is cut off at the page cap and tried again. */
static void
test_endless_list(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 300, 300);
    seed(&m, 2);
    m.page = 1;
    m.endless = true;
    start(&m);
    kube_client_set_max_pages(m.c, 5);
    unit_run_for(m.loop, 450);
    /* 5 pages, a 300-450 ms backoff, 5 more at most: not an endless stream of requests. */
    if (m.n_lists < 5 || m.n_lists > 10)
        fail_msg("%d list requests", m.n_lists);
    assert_int_equal(m.synced, 0);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_true(st.errors >= 1);
    m.endless = false;
    expect_view(&m);
    teardown_m(&m);
}

/* Field and label selectors go on every LIST and WATCH, escaped. */
static void
test_selectors(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 1);
    m.rf = kube_reflector_start(m.c, &cm, "spec.nodeName=node 1", "app in (a,b),!x", &sink, &m);
    expect_view(&m);
    assert_string_equal(m.fsel, "spec.nodeName=node 1");
    assert_string_equal(m.lsel, "app in (a,b),!x");
    wait_watching(&m);
    assert_string_equal(m.fsel, "spec.nodeName=node 1");
    assert_string_equal(m.lsel, "app in (a,b),!x");
    teardown_m(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_watch_bookmark),
        cmocka_unit_test(test_one_byte_frames),
        cmocka_unit_test(test_expired_in_stream),
        cmocka_unit_test(test_continue_410),
        cmocka_unit_test(test_504_429_500),
        cmocka_unit_test(test_cut_mid_event),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_line_over_cap),
        cmocka_unit_test(test_absent_kind),
        cmocka_unit_test(test_very_short_watch),
        cmocka_unit_test(test_error_event_and_stop),
        cmocka_unit_test(test_watch_http_errors),
        cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_endless_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
