/*
 * kube_source.c - the Kubernetes API as meshd's config source: one reflector
 * (lib/kube) per kind the store decodes, feeding the same k8s store as
 * --config-dir, so conversion and xDS do not change.
 *
 * Each object is a source of its own, "api:Kind/ns/name": an upsert puts it,
 * a removal forgets it, and the puts of one loop iteration are committed
 * together (a deferred call), then config_kick() rebuilds after the debounce.
 * The synced gate: until every kind has been listed once (served or not: a
 * missing CRD is reported synced with served=false and retried slowly by the
 * reflector), nothing is built, served or ready. Kinds whose preferred
 * version is not served fall back to an older one (Istio's v1 -> v1beta1,
 * Gateway API v1 -> v1beta1 or v1alpha2, EndpointSlice v1 -> v1beta1, all
 * that 1.20 serves). A Node is stored as its name and labels only: its
 * status (conditions, images, heartbeats) changes all the time and nothing
 * reads it, so only a label change makes a new object and a rebuild.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "kube"
#include "base/base.h"
#include "kube_source.h"
#include "log/log.h"
#include "meshd.h"

#define GW "gateway.networking.k8s.io/"
#define SEC "security.istio.io/"
#define NET "networking.istio.io/"
#define DISC "discovery.k8s.io/"

/* The preferred version, the fallback (or none), the store's kind. */
#define KIND(gv, fb, plural, kind, nsd, k)                                                         \
    {.res = {gv, plural, kind, nsd}, .fallback = {fb, plural, kind, nsd}, .store_kind = k}

static const struct kube_kind kinds_table[] = {
    KIND("v1", NULL, "namespaces", "Namespace", false, K8S_NAMESPACE),
    KIND("v1", NULL, "pods", "Pod", true, K8S_POD),
    KIND("v1", NULL, "services", "Service", true, K8S_SERVICE),
    KIND("v1", NULL, "serviceaccounts", "ServiceAccount", true, K8S_SERVICE_ACCOUNT),
    KIND(SEC "v1", SEC "v1beta1", "authorizationpolicies", "AuthorizationPolicy", true,
         K8S_AUTHORIZATION_POLICY),
    KIND(SEC "v1", SEC "v1beta1", "peerauthentications", "PeerAuthentication", true,
         K8S_PEER_AUTHENTICATION),
    KIND(GW "v1", GW "v1beta1", "gateways", "Gateway", true, K8S_GATEWAY),
    KIND(GW "v1", GW "v1beta1", "gatewayclasses", "GatewayClass", false, K8S_GATEWAY_CLASS),
    KIND(GW "v1", GW "v1beta1", "httproutes", "HTTPRoute", true, K8S_HTTP_ROUTE),
    KIND(GW "v1", GW "v1alpha2", "grpcroutes", "GRPCRoute", true, K8S_GRPC_ROUTE),
    KIND(NET "v1", NET "v1beta1", "virtualservices", "VirtualService", true, K8S_VIRTUAL_SERVICE),
    KIND("v1", NULL, "nodes", "Node", false, K8S_NODE),
    KIND(DISC "v1", DISC "v1beta1", "endpointslices", "EndpointSlice", true, K8S_ENDPOINT_SLICE),
};

const struct kube_kind *
kube_kind_by_name(const struct meshd_kube *k, const char *kind)
{
    for (size_t i = 0; i < k->n_kinds; i++)
        if (strcmp(k->kinds[i].res.kind, kind) == 0)
            return &k->kinds[i];
    return NULL;
}

/*
 * The deferred commit: static, because the loop may hold it queued after the
 * source has stopped (it then finds |live| NULL).
 */
static struct loop_defer commit_defer;
static struct meshd_kube *live;

static void
on_commit(void *arg)
{
    (void)arg;
    if (live != NULL)
        k8s_store_commit(live->st);
}

/* After a put or a forget: commit at the end of this iteration, rebuild after the debounce. */
static void
changed(struct meshd_kube *k, const struct kube_kind *kw)
{
    loop_defer(k->d->loop, &commit_defer, on_commit, NULL);
    if (k->gate_open)
        config_kick(k->d->config);
    if (kw->store_kind == K8S_NAMESPACE)
        kube_cm_schedule(k, KUBE_CM_SETTLE_MS);
    if (kw->store_kind != K8S_NAMESPACE && kw->store_kind != K8S_POD)
        kube_wp_changed(k); /* Gateways, their Services and accounts, routes, the class */
}

/* What the store keeps of a Node: apiVersion, kind, metadata.name, uid and labels. */
static json_t *
node_trimmed(const json_t *obj)
{
    const json_t *meta = json_object_get(obj, "metadata");
    json_t *m = json_object(), *out = json_object();
    static const char *const keep[] = {"name", "uid", "labels"};

    json_object_set(out, "apiVersion", json_object_get(obj, "apiVersion"));
    json_object_set(out, "kind", json_object_get(obj, "kind"));
    for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
        json_t *v = json_object_get(meta, keep[i]);
        if (v != NULL)
            json_object_set(m, keep[i], v);
    }
    json_object_set_new(out, "metadata", m);
    return out;
}

static void
on_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
    struct kube_kind *kw = arg;
    struct meshd_kube *k = kw->k;
    char name[600];

    if (!kube_src_object_name(r, obj, name, sizeof(name))) {
        log_warn_rl(&rl, "%s without metadata.name from the API server; ignored", r->kind);
        return;
    }
    kw->n_up++;
    json_t *trimmed = kw->store_kind == K8S_NODE ? node_trimmed(obj) : NULL;
    /* Diagnostics stand in the store: config.c logs them and reports them on the object. */
    if (k8s_store_put_json(k->st, name, trimmed ? trimmed : obj, NULL, false) < 0)
        kube_report_refused(k, name, obj);
    else
        kube_report_clear(k, name, false);
    json_decref(trimmed);
    changed(k, kw);
}

static void
on_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    struct kube_kind *kw = arg;
    struct meshd_kube *k = kw->k;
    char name[600];

    if (!kube_src_object_name(r, obj, name, sizeof(name)))
        return;
    kw->n_rm++;
    k8s_store_forget(k->st, name, false);
    kube_report_clear(k, name, true);
    changed(k, kw);
}

static const struct kube_sink sink;

static void
on_synced(void *arg, const struct kube_resource *r, bool served)
{
    struct kube_kind *kw = arg;
    struct meshd_kube *k = kw->k;
    bool fallback = r == &kw->fallback;

    if (!served && !fallback && kw->fallback.group_version != NULL) {
        /* The preferred version is not served: the older one, while the first keeps retrying. */
        if (kw->rf_fb == NULL) {
            log_info("%s: %s is not served; watching %s", r->kind, r->group_version,
                     kw->fallback.group_version);
            kw->rf_fb = kube_reflector_start(k->d->kube, &kw->fallback, NULL, NULL, &sink, kw);
        }
        return;
    }
    if (!kw->synced || served != kw->served)
        log_info("%s: %s (%s)", r->kind, served ? "listed" : "not served; not watched until it is",
                 r->group_version);
    kw->served = served;
    if (!kw->synced) {
        kw->synced = true;
        k->n_synced++;
    }
    if (!k->gate_open && k->n_synced == k->n_kinds) {
        k8s_store_commit(k->st);
        size_t n = 0;
        for (size_t i = 0; i < k->n_kinds; i++)
            n += k8s_store_count(k->st, k->kinds[i].store_kind);
        log_info("every kind listed: %zu objects in %llu ms; serving", n,
                 (unsigned long long)(clock_mono_ms() - k->start_ms));
        k->gate_open = true;
        config_open_gate(k->d->config);
        kube_wp_changed(k);
    } else if (k->gate_open) {
        config_kick(k->d->config);
    }
    if (kw->store_kind == K8S_NAMESPACE)
        kube_cm_schedule(k, 0);
}

static const struct kube_sink sink = {
    .upsert = on_upsert,
    .remove = on_remove,
    .synced = on_synced,
};

int
meshd_kube_start(struct meshd *d, char *err, size_t errlen)
{
    if (!kube_src_enabled(&d->opts.kube))
        return 0;
    if (d->kube == NULL && (d->kube = kube_src_client(d->loop, &d->opts.kube, err, errlen)) == NULL)
        return -1;
    struct meshd_kube *k = xcalloc(1, sizeof(*k));
    d->kube_src = k;
    live = k;
    k->d = d;
    k->st = config_store_rw(d->config);
    k->start_ms = clock_mono_ms();
    k->n_kinds = ARRAY_LEN(kinds_table);
    k->kinds = xcalloc(k->n_kinds, sizeof(*k->kinds));
    memcpy(k->kinds, kinds_table, sizeof(kinds_table));
    if (kube_publish_start(k, err, errlen) < 0 || kube_wp_start(k, err, errlen) < 0) {
        meshd_kube_stop(d);
        return -1;
    }
    for (size_t i = 0; i < k->n_kinds; i++) {
        struct kube_kind *kw = &k->kinds[i];
        kw->k = k;
        kw->rf = kube_reflector_start(d->kube, &kw->res, NULL, NULL, &sink, kw);
        if (kw->rf == NULL) {
            snprintf(err, errlen, "cannot watch %s", kw->res.kind);
            meshd_kube_stop(d);
            return -1;
        }
    }
    return 0;
}

static void
counter(FILE *f, const char *name, const char *help, const char *type)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
meshd_kube_metrics(const struct meshd *d, FILE *f)
{
    const struct meshd_kube *k = d->kube_src;

    if (k == NULL)
        return;
    counter(f, "meshd_kube_synced", "1 once every watched kind was listed (then meshd serves).",
            "gauge");
    fprintf(f, "meshd_kube_synced %d\n", k->gate_open ? 1 : 0);
    counter(f, "meshd_kube_events_total", "Objects the API server reported, by kind and type.",
            "counter");
    for (size_t i = 0; i < k->n_kinds; i++) {
        const struct kube_kind *kw = &k->kinds[i];
        fprintf(f, "meshd_kube_events_total{kind=\"%s\",type=\"upsert\"} %llu\n", kw->res.kind,
                (unsigned long long)kw->n_up);
        fprintf(f, "meshd_kube_events_total{kind=\"%s\",type=\"remove\"} %llu\n", kw->res.kind,
                (unsigned long long)kw->n_rm);
    }
    counter(f, "meshd_kube_warning_events_total",
            "Warning Events about invalid objects, by result.", "counter");
    fprintf(f, "meshd_kube_warning_events_total{result=\"sent\"} %llu\n",
            (unsigned long long)k->events_sent);
    fprintf(f, "meshd_kube_warning_events_total{result=\"rate_limited\"} %llu\n",
            (unsigned long long)k->events_dropped);
    fprintf(f, "meshd_kube_warning_events_total{result=\"failed\"} %llu\n",
            (unsigned long long)k->events_failed);
    counter(f, "meshd_kube_root_configmap_writes_total",
            "istio-ca-root-cert ConfigMap writes, by result.", "counter");
    fprintf(f, "meshd_kube_root_configmap_writes_total{result=\"created\"} %llu\n",
            (unsigned long long)k->cm_creates);
    fprintf(f, "meshd_kube_root_configmap_writes_total{result=\"updated\"} %llu\n",
            (unsigned long long)k->cm_updates);
    fprintf(f, "meshd_kube_root_configmap_writes_total{result=\"failed\"} %llu\n",
            (unsigned long long)k->cm_failures);
    kube_wp_metrics(k, f);
}

void
meshd_kube_stop(struct meshd *d)
{
    struct meshd_kube *k = d->kube_src;

    if (k != NULL) {
        for (size_t i = 0; i < k->n_kinds; i++) {
            if (k->kinds[i].rf != NULL)
                kube_reflector_stop(k->kinds[i].rf);
            if (k->kinds[i].rf_fb != NULL)
                kube_reflector_stop(k->kinds[i].rf_fb);
        }
        kube_publish_stop(k);
        kube_wp_stop(k);
        live = NULL;
    }
    kube_client_free(d->kube);
    d->kube = NULL;
    if (k != NULL) {
        kube_report_free(k);
        free(k->kinds);
        free(k);
    }
    d->kube_src = NULL;
}
