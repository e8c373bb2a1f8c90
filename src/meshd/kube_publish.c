/*
 * kube_publish.c - what meshd writes to the API server, as istiod does:
 *
 *   - ConfigMap istio-ca-root-cert (key root-cert.pem: the mesh root, PEM) in
 *     every Namespace the API lists: created when missing, updated when
 *     different, created again when deleted. A ConfigMap reflector limited to
 *     that name (a field selector) says what exists; writes are reconciled in
 *     batches (KUBE_CM_SETTLE_MS) with one request in flight per namespace, and
 *     failures are tried again after KUBE_CM_RETRY_MS.
 *   - A Warning Event (reason InvalidConfig) on an object whose config has an
 *     error (the store refused it, or the converter found one): one per
 *     object and resourceVersion, rate-limited; the last good state stays
 *     served and the error is in meshd's log (config.c) too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#define LOG_SCOPE "kube"
#include "base/base.h"
#include "kube_source.h"
#include "log/log.h"
#include "meshd.h"
#include "tls/ca.h"

/* ---- istio-ca-root-cert ---- */

struct cm_op {
    struct meshd_kube *k;
    char *ns;
    bool create;
    struct kube_request *req;
};

static const char *
cm_key(const void *e)
{
    return ((const struct kube_cm *)e)->ns;
}

static struct kube_cm *
cm_get(struct meshd_kube *k, const char *ns, bool create)
{
    bool found;
    size_t i = bsearch_str(k->cms, k->n_cms, sizeof(*k->cms), ns, cm_key, &found);

    if (found)
        return &k->cms[i];
    if (!create)
        return NULL;
    k->cms = xrealloc(k->cms, (k->n_cms + 1) * sizeof(*k->cms));
    memmove(&k->cms[i + 1], &k->cms[i], (k->n_cms - i) * sizeof(*k->cms));
    k->cms[i] = (struct kube_cm){.ns = xstrdup(ns)};
    k->n_cms++;
    return &k->cms[i];
}

static void
on_cm_timer(void *arg);

void
kube_cm_schedule(struct meshd_kube *k, uint64_t delay_ms)
{
    /* The earliest wins: an armed timer due sooner is kept. */
    if (loop_timer_armed(&k->cm_timer) &&
        k->cm_timer.due_ms <= loop_now_ms(k->d->loop) + delay_ms)
        return;
    loop_timer_start(k->d->loop, &k->cm_timer, delay_ms, on_cm_timer, k);
}

static void
on_cm_done(void *arg, int status, const json_t *body)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
    struct cm_op *op = arg;
    struct meshd_kube *k = op->k;
    struct kube_cm *e = cm_get(k, op->ns, true);
    (void)body;

    e->op = NULL;
    if (status == 200 || status == 201) {
        op->create ? k->cm_creates++ : k->cm_updates++;
        e->exists = e->current = true; /* the watch will say so too */
    } else if (op->create && status == 409) {
        e->exists = true; /* someone made it meanwhile: the watch tells whether it is current */
    } else if (!op->create && status == 404) {
        e->exists = false;
        kube_cm_schedule(k, 0);
    } else {
        /* A namespace being deleted refuses (403) until it is gone; then it is not listed. */
        k->cm_failures++;
        log_warn_rl(&rl, "%s ConfigMap %s/%s: %s %d; trying again in %d s",
                    op->create ? "creating" : "updating", op->ns, KUBE_ROOT_CM_NAME,
                    status < 0 ? "error" : "HTTP", status, KUBE_CM_RETRY_MS / 1000);
        kube_cm_schedule(k, KUBE_CM_RETRY_MS);
    }
    free(op->ns);
    free(op);
}

static void
cm_write(struct meshd_kube *k, struct kube_cm *e, bool create)
{
    char path[256];
    json_t *body;

    if (create) {
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", e->ns);
        body = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
                         "ConfigMap", "metadata", "name", KUBE_ROOT_CM_NAME, "namespace", e->ns,
                         "labels", "istio.io/config", "true", "data", KUBE_ROOT_CM_KEY,
                         k->root_pem);
    } else {
        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps/%s", e->ns,
                 KUBE_ROOT_CM_NAME);
        body = json_pack("{s:{s:s}}", "data", KUBE_ROOT_CM_KEY, k->root_pem);
    }
    CHECK(body != NULL);
    struct cm_op *op = xcalloc(1, sizeof(*op));
    op->k = k;
    op->ns = xstrdup(e->ns);
    op->create = create;
    op->req = kube_request(k->d->kube, create ? "POST" : "PATCH", path,
                           create ? NULL : "application/merge-patch+json", body, 0, on_cm_done, op);
    json_decref(body);
    if (op->req == NULL) {
        free(op->ns);
        free(op);
        k->cm_failures++;
        kube_cm_schedule(k, KUBE_CM_RETRY_MS);
        return;
    }
    e->op = op;
}

/* Does the API list Namespace |o| as live (not being deleted)? */
static bool
ns_live(const struct k8s_obj *o)
{
    const json_t *j = k8s_obj_json(o);
    const char *phase = json_string_value(json_object_get(json_object_get(j, "status"), "phase"));

    if (strncmp(k8s_obj_file(o), "api:", 4) != 0)
        return false; /* from --config-dir: not the API server's to hold ConfigMaps */
    if (json_object_get(json_object_get(j, "metadata"), "deletionTimestamp") != NULL)
        return false;
    return phase == NULL || strcmp(phase, "Terminating") != 0;
}

static void
on_cm_timer(void *arg)
{
    struct meshd_kube *k = arg;
    const struct kube_kind *nsk = kube_kind_by_name(k, "Namespace");

    if (!k->cm_synced || nsk == NULL || !nsk->synced)
        return; /* the synced callbacks schedule again */
    k8s_store_commit(k->st);
    for (size_t i = 0; i < k8s_store_count(k->st, K8S_NAMESPACE); i++) {
        const struct k8s_obj *o = k8s_store_at(k->st, K8S_NAMESPACE, i);
        if (!ns_live(o))
            continue;
        struct kube_cm *e = cm_get(k, k8s_obj_name(o), true);
        if (e->op != NULL)
            continue;
        if (!e->exists)
            cm_write(k, e, true);
        else if (!e->current)
            cm_write(k, e, false);
    }
    /* Namespaces gone, with nothing in flight or left: forgotten, so the table stays their size. */
    size_t m = 0;
    for (size_t i = 0; i < k->n_cms; i++) {
        struct kube_cm *e = &k->cms[i];
        if (e->op == NULL && !e->exists &&
            k8s_store_find(k->st, K8S_NAMESPACE, "", e->ns) == NULL) {
            free(e->ns);
            continue;
        }
        k->cms[m++] = *e;
    }
    k->n_cms = m;
}

static void
cm_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct meshd_kube *k = arg;
    const json_t *meta = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *pem =
        json_string_value(json_object_get(json_object_get(obj, "data"), KUBE_ROOT_CM_KEY));
    (void)r;

    if (ns == NULL || name == NULL || strcmp(name, KUBE_ROOT_CM_NAME) != 0)
        return;
    struct kube_cm *e = cm_get(k, ns, true);
    e->exists = true;
    e->current = pem != NULL && strcmp(pem, k->root_pem) == 0;
    if (!e->current)
        kube_cm_schedule(k, KUBE_CM_SETTLE_MS);
}

static void
cm_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct meshd_kube *k = arg;
    const json_t *meta = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    (void)r;

    if (ns == NULL || name == NULL || strcmp(name, KUBE_ROOT_CM_NAME) != 0)
        return;
    struct kube_cm *e = cm_get(k, ns, true);
    e->exists = e->current = false;
    kube_cm_schedule(k, KUBE_CM_SETTLE_MS);
}

static void
cm_synced(void *arg, const struct kube_resource *r, bool served)
{
    struct meshd_kube *k = arg;
    (void)r;
    (void)served;
    k->cm_synced = true;
    kube_cm_schedule(k, 0);
}

static const struct kube_sink cm_sink = {
    .upsert = cm_upsert,
    .remove = cm_remove,
    .synced = cm_synced,
};

static char *
root_pem(const struct ca *ca)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out = NULL;

    if (b != NULL && PEM_write_bio_X509(b, ca_root(ca)) == 1) {
        long n = BIO_get_mem_data(b, &data);
        if (n > 0)
            out = xstrndup(data, (size_t)n);
    }
    BIO_free(b);
    return out;
}

int
kube_publish_start(struct meshd_kube *k, char *err, size_t errlen)
{
    k->root_pem = root_pem(k->d->ca);
    if (k->root_pem == NULL) {
        snprintf(err, errlen, "cannot write the mesh root as PEM");
        return -1;
    }
    k->event_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000, 10);
    k->cm_res = (struct kube_resource){"v1", "configmaps", "ConfigMap", true};
    k->cm_rf = kube_reflector_start(k->d->kube, &k->cm_res, "metadata.name=" KUBE_ROOT_CM_NAME,
                                    NULL, &cm_sink, k);
    if (k->cm_rf == NULL) {
        snprintf(err, errlen, "cannot watch ConfigMaps");
        return -1;
    }
    return 0;
}

void
kube_publish_stop(struct meshd_kube *k)
{
    if (k->cm_rf != NULL)
        kube_reflector_stop(k->cm_rf);
    k->cm_rf = NULL;
    loop_timer_stop(k->d->loop, &k->cm_timer);
    for (size_t i = 0; i < k->n_cms; i++) {
        /* A cancelled request's callback never runs: its op is freed here. */
        struct cm_op *op = k->cms[i].op;
        if (op != NULL) {
            kube_request_cancel(op->req);
            free(op->ns);
            free(op);
        }
        free(k->cms[i].ns);
    }
    free(k->cms);
    k->cms = NULL;
    k->n_cms = 0;
    free(k->root_pem);
    k->root_pem = NULL;
}

/* ---- Warning Events ---- */

static const char *
rep_key(const void *e)
{
    return ((const struct kube_reported *)e)->file;
}

static struct kube_reported *
rep_get(struct meshd_kube *k, const char *file, bool create)
{
    bool found;
    size_t i = bsearch_str(k->rep, k->n_rep, sizeof(*k->rep), file, rep_key, &found);

    if (found)
        return &k->rep[i];
    if (!create || k->n_rep >= KUBE_MAX_REPORTED)
        return NULL;
    k->rep = xrealloc(k->rep, (k->n_rep + 1) * sizeof(*k->rep));
    memmove(&k->rep[i + 1], &k->rep[i], (k->n_rep - i) * sizeof(*k->rep));
    k->rep[i] = (struct kube_reported){.file = xstrdup(file)};
    k->n_rep++;
    return &k->rep[i];
}

/* The involvedObject of an Event about |obj|. */
static json_t *
involved_of(const json_t *obj)
{
    const json_t *meta = json_object_get(obj, "metadata");
    json_t *o = json_object();
    static const char *const from_meta[] = {"name", "namespace", "uid", "resourceVersion"};

    json_object_set(o, "apiVersion", json_object_get(obj, "apiVersion"));
    json_object_set(o, "kind", json_object_get(obj, "kind"));
    for (size_t i = 0; i < ARRAY_LEN(from_meta); i++) {
        json_t *v = json_object_get(meta, from_meta[i]);
        if (json_is_string(v))
            json_object_set(o, from_meta[i], v);
    }
    return o;
}

void
kube_report_refused(struct meshd_kube *k, const char *file, const json_t *obj)
{
    struct kube_reported *e = rep_get(k, file, true);

    if (e == NULL)
        return;
    json_decref(e->bad);
    e->bad = involved_of(obj);
}

void
kube_report_clear(struct meshd_kube *k, const char *file, bool removed)
{
    bool found;
    size_t i = bsearch_str(k->rep, k->n_rep, sizeof(*k->rep), file, rep_key, &found);

    if (!found)
        return;
    json_decref(k->rep[i].bad);
    k->rep[i].bad = NULL;
    if (!removed)
        return; /* an Event already sent for this version is not sent again */
    free(k->rep[i].file);
    free(k->rep[i].rv);
    memmove(&k->rep[i], &k->rep[i + 1], (k->n_rep - i - 1) * sizeof(*k->rep));
    k->n_rep--;
}

void
kube_report_free(struct meshd_kube *k)
{
    for (size_t i = 0; i < k->n_rep; i++) {
        free(k->rep[i].file);
        free(k->rep[i].rv);
        json_decref(k->rep[i].bad);
    }
    free(k->rep);
    k->rep = NULL;
    k->n_rep = 0;
}

/* The object the store holds for "api:Kind/ns/name" (or "api:Kind/name"), or NULL. */
static const struct k8s_obj *
stored(const struct meshd_kube *k, const char *file)
{
    char kind[64], ns[256] = "", name[300];
    const char *p = file + 4, *s1 = strchr(p, '/');

    if (s1 == NULL || (size_t)(s1 - p) >= sizeof(kind))
        return NULL;
    snprintf(kind, sizeof(kind), "%.*s", (int)(s1 - p), p);
    const struct kube_kind *kw = kube_kind_by_name(k, kind);
    if (kw == NULL)
        return NULL;
    const char *rest = s1 + 1, *s2 = kw->res.namespaced ? strchr(rest, '/') : NULL;
    if (kw->res.namespaced) {
        if (s2 == NULL || (size_t)(s2 - rest) >= sizeof(ns))
            return NULL;
        snprintf(ns, sizeof(ns), "%.*s", (int)(s2 - rest), rest);
        rest = s2 + 1;
    }
    snprintf(name, sizeof(name), "%s", rest);
    return k8s_store_find(k->st, kw->store_kind, ns, name);
}

static void
on_event_done(void *arg, int status, const json_t *body)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
    struct meshd_kube *k = arg;
    (void)body;
    if (status == 201 || status == 200)
        return;
    k->events_failed++;
    log_warn_rl(&rl, "posting an Event: %s %d", status < 0 ? "error" : "HTTP", status);
}

void
kube_rfc3339_now(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The length of |s| cut to at most |max| bytes, not inside a UTF-8 sequence. */
static int
utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (s[n] != '\0')
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    return (int)n;
}

static void
post_event(struct meshd_kube *k, json_t *involved, const char *msg)
{
    const char *name = json_string_value(json_object_get(involved, "name"));
    const char *ns = json_string_value(json_object_get(involved, "namespace"));
    char path[320], gen[300], now[32], host[256] = "meshd";

    if (ns == NULL || ns[0] == '\0')
        ns = "default"; /* where Events about cluster-scoped objects go */
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
    snprintf(gen, sizeof(gen), "%.240s.", name ? name : "object");
    kube_rfc3339_now(now, sizeof(now));
    if (gethostname(host, sizeof(host) - 1) < 0)
        snprintf(host, sizeof(host), "meshd");
    json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O, s:s, s:s#, s:s, s:{s:s, s:s}, s:s, "
                           "s:s, s:i}",
                           "apiVersion", "v1", "kind", "Event", "metadata", "generateName", gen,
                           "namespace", ns, "involvedObject", involved, "reason", "InvalidConfig",
                           "message", msg, utf8_prefix(msg, KUBE_MAX_EVENT_MSG), "type",
                           "Warning", "source", "component", "meshd", "host", host,
                           "firstTimestamp", now, "lastTimestamp", now, "count", 1);
    CHECK(ev != NULL);
    if (kube_request(k->d->kube, "POST", path, NULL, ev, 0, on_event_done, k) != NULL)
        k->events_sent++;
    else
        k->events_failed++;
    json_decref(ev);
}

void
meshd_kube_report(struct meshd *d, const char *file, const char *msg)
{
    struct meshd_kube *k = d->kube_src;
    uint64_t suppressed;

    if (k == NULL || strncmp(file, "api:", 4) != 0)
        return;
    struct kube_reported *e = rep_get(k, file, true);
    if (e == NULL) {
        k->events_dropped++;
        return;
    }
    json_t *involved = NULL;
    if (e->bad != NULL) {
        involved = json_incref(e->bad);
    } else {
        const struct k8s_obj *o = stored(k, file);
        if (o == NULL)
            return;
        involved = involved_of(k8s_obj_json(o));
    }
    const char *rv = json_string_value(json_object_get(involved, "resourceVersion"));
    if (rv == NULL)
        rv = "";
    if (e->rv != NULL && strcmp(e->rv, rv) == 0) {
        json_decref(involved);
        return; /* this version was reported */
    }
    if (!log_ratelimit_allow(&k->event_rl, clock_mono_ms(), &suppressed)) {
        k->events_dropped++; /* tried again at the next rebuild while the error stands */
        json_decref(involved);
        return;
    }
    free(e->rv);
    e->rv = xstrdup(rv);
    post_event(k, involved, msg);
    json_decref(involved);
}
