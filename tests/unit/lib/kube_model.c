/*
 * kube_model.c - see kube_model.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube_client_priv.h"
#include "kube/kube_proto.h"
#include "kube_model.h"
#include "unit_loop.h"

/* A decimal the fake or the test wrote itself. */
int
num(const char *s)
{
    return (int)strtol(s != NULL ? s : "0", NULL, 10);
}

int
find(struct m *m, const char *name)
{
    for (int i = 0; i < m->n_o; i++)
        if (strcmp(m->o[i].name, name) == 0)
            return i;
    return -1;
}

char *
obj_json(const char *name, int val, int rv, bool with_kind)
{
    return xasprintf("{%s\"metadata\":{\"name\":\"%s\",\"namespace\":\"demo\","
                     "\"resourceVersion\":\"%d\"},\"data\":{\"v\":\"%d\"}}",
                     with_kind ? "\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\"," : "", name, rv,
                     val);
}

char *
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

void
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

void
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

const struct kube_resource cm = {"v1", "configmaps", "ConfigMap", true};

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

const struct kube_sink sink = {sink_upsert, sink_remove, sink_synced};

bool
view_ok(void *arg)
{
    struct m *m = arg;
    for (int i = 0; i < m->n_o; i++)
        if (m->view[i] != (m->o[i].alive ? m->o[i].val : -1))
            return false;
    return m->synced > 0;
}

void
expect_view(struct m *m)
{
    if (!unit_run_until(m->loop, view_ok, m, 8000)) {
        for (int i = 0; i < m->n_o; i++)
            fprintf(stderr, "%s: model %d view %d\n", m->o[i].name,
                    m->o[i].alive ? m->o[i].val : -1, m->view[i]);
        fail_msg("the view differs from the model");
    }
}

void
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

void
start(struct m *m)
{
    m->rf = kube_reflector_start(m->c, &cm, NULL, NULL, &sink, m);
    assert_non_null(m->rf);
    assert_int_equal(m->synced, 0); /* nothing from inside start */
}

void
teardown_m(struct m *m)
{
    kube_client_free(m->c); /* stops the reflector too */
    fks_free(m->f);
    loop_run_deferred(m->loop);
    loop_free(m->loop);
}

void
stats(struct m *m, struct kube_reflector_stats *st)
{
    kube_reflector_stats(m->rf, st);
}

/* Open watch streams (those that get pushed changes). */
size_t
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

bool
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
void
wait_watch_n(struct m *m, int n)
{
    want_watches = n;
    assert_true(unit_run_until(m->loop, cond_n_watching, m, 8000));
}

void
wait_watching(struct m *m)
{
    assert_true(unit_run_until(m->loop, cond_watching, m, 8000));
}

/* Ends every open watch cleanly, as the server does at timeoutSeconds. */
void
end_watches(struct m *m)
{
    struct fks_req *w[FKS_MAX_REQS];
    size_t n = open_watches(m, w);
    for (size_t i = 0; i < n; i++) {
        w[i]->user = NULL;
        fks_end(w[i]);
    }
}

void
seed(struct m *m, int n)
{
    char name[32];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "cm%02d", i);
        model_set(m, name, i);
    }
}
