/*
 * kube_waypoint.c - istiod's deployment controller and Gateway status writer for waypoints,
 * on the API server meshd watches (with --kubeconfig / --in-cluster):
 *
 *   - each Gateway of class istio-waypoint gets the ServiceAccount, Deployment and Service
 *     lib/wpdeploy renders (WP_CREDS_KUBE: projected token, istio-ca-root-cert volume): created
 *     when missing, merge-patched back when they no longer hold what is rendered (a Gateway
 *     change, or a user's edit of a rendered field), deleted when the Gateway goes or is no
 *     longer a waypoint (explicitly: the garbage collector would too, through the
 *     ownerReferences, but only where kube-controller-manager runs it);
 *   - its status (Accepted, Programmed once the Deployment has a ready replica, addresses,
 *     the mesh listener with attachedRoutes) through the status subresource, a merge patch
 *     only when it differs from what the object holds, at most one per Gateway per
 *     WP_STATUS_MIN_MS, with backoff after failures; GatewayClass istio-waypoint gets
 *     Accepted the same way.
 *
 * Everything is reconciled in one pass (WP_SETTLE_MS after the last change): Gateways,
 * Services, ServiceAccounts and routes come from the store kube_source.c fills, Deployments
 * from a reflector of their own (those labelled gateway.networking.k8s.io/gateway-name).
 * At most WP_MAX_INFLIGHT writes are in flight and one per object; a write of an object
 * that failed waits (WP_RETRY_MIN_MS doubling to WP_RETRY_MAX_MS). Nothing is written
 * before every kind and the Deployments were listed, so a restart never deletes what a
 * Gateway still owns. The pass is a pure function of what the watches show, so the watch
 * event of meshd's own write finds nothing left to do: no write loops.
 *
 * Where the waypoint reaches meshd: --waypoint-xds-address, else the cluster IP of Service
 * istio-system/istiod (manifests/base) and port 15012; until one is known no Deployment is
 * written (logged).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "waypoint"
#include "base/base.h"
#include "kube_source.h"
#include "log/log.h"
#include "meshd.h"
#include "wpdeploy/wpdeploy.h"

#define WP_SETTLE_MS     100
#define WP_STATUS_MIN_MS 1000 /* between two status patches of one Gateway */
#define WP_RETRY_MIN_MS  1000
#define WP_RETRY_MAX_MS  30000
#define WP_MAX_INFLIGHT  16
#define WP_MAX_GATEWAYS  4096 /* waypoint Gateways managed (more are logged, not managed) */
#define WP_ISTIOD_NS     "istio-system"
#define WP_ISTIOD_SVC    "istiod"

enum wp_kind { WPK_SA, WPK_DEPLOYMENT, WPK_SERVICE, WPK_N };
static const struct {
    const char *kind, *prefix, *plural;
} wpk[WPK_N] = {
    [WPK_SA] = {"ServiceAccount", "/api/v1", "serviceaccounts"},
    [WPK_DEPLOYMENT] = {"Deployment", "/apis/apps/v1", "deployments"},
    [WPK_SERVICE] = {"Service", "/api/v1", "services"},
};

enum wp_verb { WPV_CREATE, WPV_PATCH, WPV_DELETE, WPV_STATUS, WPV_N };
static const char *const verb_names[WPV_N] = {"create", "patch", "delete", "status"};

/* One write in flight. */
struct wp_op {
    struct wp_op *prev, *next;
    struct kube_wp *w;
    char *key; /* "Kind/ns/name" */
    enum wp_verb verb;
    json_t *want; /* what a create or patch sent (its memo on success) */
    struct kube_request *req;
};

/* What meshd knows of one object it writes: its last write and retry state. */
struct wp_memo {
    char *key;
    char *rv;     /* resourceVersion the API gave back for our last write, or NULL */
    json_t *want; /* what that write sent */
    unsigned fails;
    uint64_t retry_ms; /* no write before this (monotonic) */
    uint64_t last_ms;  /* last write sent (status: for WP_STATUS_MIN_MS) */
    bool busy;         /* a write in flight */
    bool seen;         /* still wanted by this pass (else forgotten) */
};

/* A waypoint Gateway of the last pass, for /debug/waypoints. */
struct wp_seen {
    char *ns, *name, *deployment;
    int ready, replicas;
    bool programmed, service;
};

struct kube_wp {
    struct meshd_kube *k;
    struct kube_resource dep_res;
    struct kube_reflector *dep_rf;
    bool dep_synced;
    json_t *deps;         /* "ns/name" -> Deployment, as the watch shows it */
    struct wp_memo *memo; /* sorted by key */
    size_t n_memo;
    struct wp_op *ops;
    unsigned inflight;
    struct loop_timer timer;
    struct wp_seen *seen;
    size_t n_seen;
    char xds[80];                         /* the address rendered, "" until known */
    uint64_t writes[WPK_N + 2][WPV_N][2]; /* [kind, Gateway, GatewayClass][verb][ok, failed] */
    uint64_t passes;
    struct log_ratelimit rl;
};

#define WPK_GATEWAY WPK_N /* writes[] rows of status patches */
#define WPK_CLASS   (WPK_N + 1)

/* ---- memo ---- */

static const char *
memo_key(const void *e)
{
    return ((const struct wp_memo *)e)->key;
}

static struct wp_memo *
memo_get(struct kube_wp *w, const char *key, bool create)
{
    bool found;
    size_t i = bsearch_str(w->memo, w->n_memo, sizeof(*w->memo), key, memo_key, &found);

    if (found)
        return &w->memo[i];
    if (!create)
        return NULL;
    w->memo = xrealloc(w->memo, (w->n_memo + 1) * sizeof(*w->memo));
    memmove(&w->memo[i + 1], &w->memo[i], (w->n_memo - i) * sizeof(*w->memo));
    w->memo[i] = (struct wp_memo){.key = xstrdup(key)};
    w->n_memo++;
    return &w->memo[i];
}

static void
memo_free_one(struct wp_memo *m)
{
    free(m->key);
    free(m->rv);
    json_decref(m->want);
}

/* ---- writes ---- */

static void schedule(struct kube_wp *w, uint64_t delay_ms);

static const char *
rv_of(const json_t *obj)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static void
op_unlink(struct kube_wp *w, struct wp_op *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        w->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    w->inflight--;
}

static void
op_free(struct wp_op *op)
{
    free(op->key);
    json_decref(op->want);
    free(op);
}

static int
row_of(const char *key)
{
    if (strncmp(key, "GatewayClass/", 13) == 0)
        return WPK_CLASS;
    for (int i = 0; i < WPK_N; i++) {
        size_t n = strlen(wpk[i].kind);
        if (strncmp(key, wpk[i].kind, n) == 0 && key[n] == '/')
            return i;
    }
    return WPK_GATEWAY;
}

static void
on_write_done(void *arg, int status, const json_t *body)
{
    struct wp_op *op = arg;
    struct kube_wp *w = op->w;
    struct wp_memo *m = memo_get(w, op->key, true);
    bool ok = status >= 200 && status < 300;

    op_unlink(w, op);
    m->busy = false;
    /* Gone already (delete, or a status of a deleted Gateway): the watch shows it. A create
     * refused with 409 is a failure, backed off: the object exists but the watch does not show
     * it (a Deployment whose gateway-name label was removed), and creating again at once would
     * loop; it is not taken over either, as it may be someone else's. */
    if ((op->verb == WPV_DELETE || op->verb == WPV_STATUS) && status == 404)
        ok = true;
    w->writes[row_of(op->key)][op->verb][ok ? 0 : 1]++;
    if (ok) {
        m->fails = 0;
        m->retry_ms = 0;
        free(m->rv);
        m->rv = NULL;
        json_decref(m->want);
        m->want = NULL;
        if (op->verb != WPV_DELETE && rv_of(body) != NULL) {
            m->rv = xstrdup(rv_of(body));
            m->want = json_incref(op->want);
        }
    } else {
        unsigned backoff = WP_RETRY_MIN_MS << (m->fails < 5 ? m->fails : 5);
        if (backoff > WP_RETRY_MAX_MS)
            backoff = WP_RETRY_MAX_MS;
        m->fails++;
        m->retry_ms = clock_mono_ms() + backoff;
        log_warn_rl(&w->rl, "%s %s: %s %d%s; trying again in %u ms", verb_names[op->verb], op->key,
                    status < 0 ? "error" : "HTTP", status,
                    op->verb == WPV_CREATE && status == 409
                        ? " (it exists without the labels meshd watches for)"
                        : "",
                    backoff);
        schedule(w, backoff);
    }
    op_free(op);
    schedule(w, WP_SETTLE_MS); /* the next pass checks what the write left */
}

/*
 * Sends one write of |key| unless it has one in flight, waits after a failure, or the
 * in-flight cap is reached (then the pass is run again when a write ends). |body| borrowed.
 * True when sent.
 */
static bool
write_obj(struct kube_wp *w, const char *key, enum wp_verb verb, const char *method,
          const char *path, const char *ctype, json_t *body)
{
    struct wp_memo *m = memo_get(w, key, true);
    uint64_t now = clock_mono_ms();

    m->seen = true;
    if (m->busy || w->inflight >= WP_MAX_INFLIGHT)
        return false;
    if (now < m->retry_ms) {
        schedule(w, m->retry_ms - now);
        return false;
    }
    if (verb == WPV_STATUS && m->last_ms != 0 && now < m->last_ms + WP_STATUS_MIN_MS) {
        schedule(w, m->last_ms + WP_STATUS_MIN_MS - now);
        return false;
    }
    struct wp_op *op = xcalloc(1, sizeof(*op));
    op->w = w;
    op->key = xstrdup(key);
    op->verb = verb;
    op->want = body != NULL && verb != WPV_DELETE ? json_incref(body) : NULL;
    op->req = kube_request(w->k->d->kube, method, path, ctype, body, 0, on_write_done, op);
    if (op->req == NULL) {
        w->writes[row_of(key)][verb][1]++;
        m->retry_ms = now + WP_RETRY_MIN_MS;
        schedule(w, WP_RETRY_MIN_MS);
        op_free(op);
        return false;
    }
    m->busy = true;
    m->last_ms = now;
    op->next = w->ops;
    if (w->ops != NULL)
        w->ops->prev = op;
    w->ops = op;
    w->inflight++;
    return true;
}

static void
obj_path(char *buf, size_t len, enum wp_kind kind, const char *ns, const char *name)
{
    if (name != NULL)
        snprintf(buf, len, "%s/namespaces/%s/%s/%s", wpk[kind].prefix, ns, wpk[kind].plural, name);
    else
        snprintf(buf, len, "%s/namespaces/%s/%s", wpk[kind].prefix, ns, wpk[kind].plural);
}

static void
delete_obj(struct kube_wp *w, enum wp_kind kind, const char *ns, const char *name)
{
    char key[600], path[600];
    /* Background: the Deployment's ReplicaSets and pods follow it (the garbage collector). */
    json_t *opts = json_pack("{s:s, s:s, s:s}", "apiVersion", "v1", "kind", "DeleteOptions",
                             "propagationPolicy", "Background");

    snprintf(key, sizeof(key), "%s/%s/%s", wpk[kind].kind, ns, name);
    obj_path(path, sizeof(path), kind, ns, name);
    if (write_obj(w, key, WPV_DELETE, "DELETE", path, NULL, opts))
        log_info("deleting %s (no waypoint Gateway renders it)", key);
    json_decref(opts);
}

/* ---- what the watches show ---- */

static const json_t *
live_obj(struct kube_wp *w, enum wp_kind kind, const char *ns, const char *name)
{
    if (kind == WPK_DEPLOYMENT) {
        char key[600];
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        return json_object_get(w->deps, key);
    }
    const struct k8s_obj *o =
        k8s_store_find(w->k->st, kind == WPK_SA ? K8S_SERVICE_ACCOUNT : K8S_SERVICE, ns, name);
    return o != NULL && strncmp(k8s_obj_file(o), "api:", 4) == 0 ? k8s_obj_json(o) : NULL;
}

static const char *
str2(const json_t *o, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(o, a), b));
}

/* The waypoint Gateway |ns|/|name| in the store, or NULL. */
static const json_t *
waypoint_gateway(struct kube_wp *w, const char *ns, const char *name)
{
    const struct k8s_obj *o = k8s_store_find(w->k->st, K8S_GATEWAY, ns, name);
    const json_t *gw = o != NULL ? k8s_obj_json(o) : NULL;
    return gw != NULL && wp_is_waypoint(gw) ? gw : NULL;
}

/* Brings one rendered object about: create, patch back, or leave. */
static void
ensure(struct kube_wp *w, enum wp_kind kind, const json_t *want, const char *gname)
{
    const char *ns = str2(want, "metadata", "namespace"), *name = str2(want, "metadata", "name");
    const json_t *cur = live_obj(w, kind, ns, name);
    char key[600], path[600];

    snprintf(key, sizeof(key), "%s/%s/%s", wpk[kind].kind, ns, name);
    if (cur == NULL) {
        obj_path(path, sizeof(path), kind, ns, NULL);
        if (write_obj(w, key, WPV_CREATE, "POST", path, NULL, (json_t *)want))
            log_info("creating %s for waypoint %s/%s", key, ns, gname);
        return;
    }
    struct wp_memo *m = memo_get(w, key, true);
    m->seen = true;
    if (!wp_owned_by(cur, gname)) {
        /* Not ours: istiod does not take over an object it did not make either. */
        if (kind != WPK_SA)
            log_warn_rl(&w->rl, "%s exists and is not owned by gateway %s; left alone", key, gname);
        return;
    }
    if (wp_holds(cur, want)) {
        m->fails = 0; /* what failed before (a create refused with 409) is settled */
        m->retry_ms = 0;
        return;
    }
    /* Written by us and unchanged since, yet not holding: the server drops a field we send
     * (e.g. ipFamilyPolicy where dual stack is off). Writing again would change nothing. */
    if (m->rv != NULL && rv_of(cur) != NULL && strcmp(m->rv, rv_of(cur)) == 0 && m->want != NULL &&
        json_equal(m->want, (json_t *)want))
        return;
    obj_path(path, sizeof(path), kind, ns, name);
    if (write_obj(w, key, WPV_PATCH, "PATCH", path, "application/merge-patch+json", (json_t *)want))
        log_info("updating %s for waypoint %s/%s (it differs from what the Gateway renders)", key,
                 ns, gname);
}

/* Is |obj| (of |kind|) one a waypoint Gateway rendered, and which Gateway owns it? */
static const char *
waypoint_owner(const json_t *obj)
{
    const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    const char *cls =
        json_string_value(json_object_get(labels, "gateway.networking.k8s.io/gateway-class-name"));
    size_t i;
    json_t *r;

    if (cls == NULL || strcmp(cls, WP_CLASS) != 0)
        return NULL;
    json_array_foreach(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), i, r)
    {
        const char *k = json_string_value(json_object_get(r, "kind"));
        if (k != NULL && strcmp(k, "Gateway") == 0)
            return json_string_value(json_object_get(r, "name"));
    }
    return NULL;
}

/* Would waypoint Gateway |gw| render a |kind| named |name|? */
static bool
rendered_name(const json_t *gw, enum wp_kind kind, const char *name)
{
    const char *want = kind == WPK_SA ? wp_service_account(gw) : wp_deployment_name(gw);
    return want != NULL && strcmp(want, name) == 0;
}

/* Deletes a waypoint-rendered object whose Gateway is gone, not a waypoint, or renamed it. */
static void
collect(struct kube_wp *w, enum wp_kind kind, const json_t *obj)
{
    const char *owner = waypoint_owner(obj);
    const char *ns = str2(obj, "metadata", "namespace"), *name = str2(obj, "metadata", "name");

    if (owner == NULL || ns == NULL || name == NULL ||
        json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp") != NULL)
        return;
    const json_t *gw = waypoint_gateway(w, ns, owner);
    if (gw == NULL || !rendered_name(gw, kind, name))
        delete_obj(w, kind, ns, name);
}

/* ---- status ---- */

static int
json_int_at(const json_t *o, const char *a, const char *b)
{
    return (int)json_integer_value(json_object_get(json_object_get(o, a), b));
}

static void
gateway_facts(struct kube_wp *w, const json_t *gw, struct wp_facts *f)
{
    const char *ns = str2(gw, "metadata", "namespace"), *dname = wp_deployment_name(gw);
    const json_t *dep = live_obj(w, WPK_DEPLOYMENT, ns, dname);
    const json_t *svc = live_obj(w, WPK_SERVICE, ns, dname);
    static const enum k8s_kind routes[] = {K8S_HTTP_ROUTE, K8S_GRPC_ROUTE};

    memset(f, 0, sizeof(*f));
    f->deployment = dep != NULL;
    f->replicas = json_int_at(dep, "status", "replicas");
    f->ready = json_int_at(dep, "status", "readyReplicas");
    f->service = svc != NULL;
    f->cluster_ip = str2(svc, "spec", "clusterIP");
    for (size_t r = 0; r < ARRAY_LEN(routes); r++)
        for (size_t i = 0; i < k8s_store_count(w->k->st, routes[r]); i++)
            f->attached_routes +=
                wp_route_attaches(k8s_obj_json(k8s_store_at(w->k->st, routes[r], i)), gw);
}

static void
write_status(struct kube_wp *w, const char *key, const char *path, const json_t *cur, json_t *want)
{
    struct wp_memo *m = memo_get(w, key, true);
    m->seen = true;
    if (wp_status_same(json_object_get(cur, "status"), want))
        return;
    json_t *patch = json_pack("{s:O}", "status", want);
    write_obj(w, key, WPV_STATUS, "PATCH", path, "application/merge-patch+json", patch);
    json_decref(patch);
}

static void
gateway_status(struct kube_wp *w, const json_t *gw, const struct wp_facts *f, const char *now)
{
    const char *ns = str2(gw, "metadata", "namespace"), *name = str2(gw, "metadata", "name");
    const char *gv = json_string_value(json_object_get(gw, "apiVersion"));
    char key[600], path[700];

    snprintf(key, sizeof(key), "Gateway/%s/%s", ns, name);
    snprintf(path, sizeof(path), "/apis/%s/namespaces/%s/gateways/%s/status",
             gv != NULL ? gv : WP_GATEWAY_API_VERSION, ns, name);
    json_t *want = wp_gateway_status(gw, f, now);
    write_status(w, key, path, gw, want);
    json_decref(want);
}

static void
class_status(struct kube_wp *w, const char *now)
{
    const struct k8s_obj *o = k8s_store_find(w->k->st, K8S_GATEWAY_CLASS, "", WP_CLASS);
    const json_t *cls = o != NULL ? k8s_obj_json(o) : NULL;
    const char *ctl = str2(cls, "spec", "controllerName");
    const char *gv = json_string_value(json_object_get(cls, "apiVersion"));
    char path[300];

    if (cls == NULL || strncmp(k8s_obj_file(o), "api:", 4) != 0 || ctl == NULL ||
        strcmp(ctl, WP_CLASS_CONTROLLER) != 0)
        return; /* none, or another controller's */
    snprintf(path, sizeof(path), "/apis/%s/gatewayclasses/%s/status",
             gv != NULL ? gv : WP_GATEWAY_API_VERSION, WP_CLASS);
    json_t *want = wp_class_status(cls, now);
    write_status(w, "GatewayClass//" WP_CLASS, path, cls, want);
    json_decref(want);
}

/* ---- the pass ---- */

/* --waypoint-xds-address, or the istiod Service's cluster IP: 15012. False when unknown. */
static bool
xds_address(struct kube_wp *w)
{
    const char *opt = w->k->d->opts.waypoint_xds;
    if (opt != NULL) {
        snprintf(w->xds, sizeof(w->xds), "%s", opt);
        return true;
    }
    const json_t *svc = live_obj(w, WPK_SERVICE, WP_ISTIOD_NS, WP_ISTIOD_SVC);
    const char *ip = str2(svc, "spec", "clusterIP");
    if (ip == NULL || ip[0] == '\0' || strcmp(ip, "None") == 0) {
        w->xds[0] = '\0';
        return false;
    }
    snprintf(w->xds, sizeof(w->xds), strchr(ip, ':') != NULL ? "[%s]:15012" : "%s:15012", ip);
    return true;
}

static void
seen_clear(struct kube_wp *w)
{
    for (size_t i = 0; i < w->n_seen; i++) {
        free(w->seen[i].ns);
        free(w->seen[i].name);
        free(w->seen[i].deployment);
    }
    free(w->seen);
    w->seen = NULL;
    w->n_seen = 0;
}

static void
one_gateway(struct kube_wp *w, const json_t *gw, bool have_xds, const char *now)
{
    const char *ns = str2(gw, "metadata", "namespace"), *name = str2(gw, "metadata", "name");
    const struct wp_env env = {
        .creds = WP_CREDS_KUBE, .xds_address = w->xds, .image = w->k->d->opts.waypoint_image};

    if (have_xds) {
        json_t *objs = wp_render(gw, &env);
        if (objs == NULL)
            log_warn_rl(&w->rl,
                        "gateway %s/%s: annotation %s wants a number in [0, %d]; its "
                        "deployment is left as it is",
                        ns, name, WP_ANNOTATION_REPLICAS, WP_MAX_REPLICAS);
        for (size_t i = 0; i < json_array_size(objs); i++)
            ensure(w, (enum wp_kind)i, json_array_get(objs, i), name);
        json_decref(objs);
    }
    struct wp_facts f;
    gateway_facts(w, gw, &f);
    gateway_status(w, gw, &f, now);

    w->seen = xrealloc(w->seen, (w->n_seen + 1) * sizeof(*w->seen));
    char reason[32], msg[600];
    w->seen[w->n_seen++] = (struct wp_seen){
        .ns = xstrdup(ns),
        .name = xstrdup(name),
        .deployment = xstrdup(wp_deployment_name(gw)),
        .ready = f.ready,
        .replicas = f.replicas,
        .service = f.service,
        .programmed = wp_condition_programmed(gw, &f, reason, sizeof(reason), msg, sizeof(msg))};
}

static void
on_timer(void *arg)
{
    struct kube_wp *w = arg;
    struct k8s_store *st = w->k->st;
    char now[32];

    if (!w->k->gate_open || !w->dep_synced)
        return; /* the synced callbacks schedule again */
    w->passes++;
    k8s_store_commit(st);
    kube_rfc3339_now(now, sizeof(now));
    for (size_t i = 0; i < w->n_memo; i++)
        w->memo[i].seen = w->memo[i].busy;
    seen_clear(w);

    bool have_xds = xds_address(w);
    if (!have_xds)
        log_warn_rl(&w->rl,
                    "no address for waypoints to reach meshd: Service %s/%s has no "
                    "cluster IP and --waypoint-xds-address is not given; waypoint deployments "
                    "wait for it",
                    WP_ISTIOD_NS, WP_ISTIOD_SVC);
    size_t n = 0;
    for (size_t i = 0; i < k8s_store_count(st, K8S_GATEWAY); i++) {
        const struct k8s_obj *o = k8s_store_at(st, K8S_GATEWAY, i);
        const json_t *gw = k8s_obj_json(o);
        if (strncmp(k8s_obj_file(o), "api:", 4) != 0 || !wp_is_waypoint(gw) ||
            json_object_get(json_object_get(gw, "metadata"), "deletionTimestamp") != NULL)
            continue; /* other classes are left alone */
        if (++n > WP_MAX_GATEWAYS) {
            log_warn_rl(&w->rl, "more than %d waypoint Gateways: %s/%s is not managed",
                        WP_MAX_GATEWAYS, k8s_obj_namespace(o), k8s_obj_name(o));
            continue;
        }
        one_gateway(w, gw, have_xds, now);
    }
    class_status(w, now);

    /* What no waypoint Gateway renders any more goes. */
    const char *dk;
    json_t *dep;
    json_object_foreach(w->deps, dk, dep) collect(w, WPK_DEPLOYMENT, dep);
    for (size_t i = 0; i < k8s_store_count(st, K8S_SERVICE); i++)
        collect(w, WPK_SERVICE, k8s_obj_json(k8s_store_at(st, K8S_SERVICE, i)));
    for (size_t i = 0; i < k8s_store_count(st, K8S_SERVICE_ACCOUNT); i++)
        collect(w, WPK_SA, k8s_obj_json(k8s_store_at(st, K8S_SERVICE_ACCOUNT, i)));

    /* Memos of objects no pass wants now are forgotten, so the table stays their size. */
    size_t m = 0;
    for (size_t i = 0; i < w->n_memo; i++) {
        if (!w->memo[i].seen && clock_mono_ms() >= w->memo[i].retry_ms) {
            memo_free_one(&w->memo[i]);
            continue;
        }
        w->memo[m++] = w->memo[i];
    }
    w->n_memo = m;
}

static void
schedule(struct kube_wp *w, uint64_t delay_ms)
{
    if (loop_timer_armed(&w->timer) && w->timer.due_ms <= loop_now_ms(w->k->d->loop) + delay_ms)
        return;
    loop_timer_start(w->k->d->loop, &w->timer, delay_ms, on_timer, w);
}

void
kube_wp_changed(struct meshd_kube *k)
{
    if (k->wp != NULL)
        schedule(k->wp, WP_SETTLE_MS);
}

/* ---- the Deployment watch ---- */

/* Deployment |obj| seen (|keep|) or gone: w->deps keyed "ns/name", then a pass. */
static void
dep_event(struct kube_wp *w, const json_t *obj, bool keep)
{
    const char *ns = str2(obj, "metadata", "namespace"), *name = str2(obj, "metadata", "name");
    char key[600];

    if (ns == NULL || name == NULL)
        return;
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    if (keep)
        json_object_set_new(w->deps, key, json_deep_copy(obj));
    else
        json_object_del(w->deps, key);
    schedule(w, WP_SETTLE_MS);
}

static void
dep_upsert(void *arg, const struct kube_resource *r, const json_t *obj)
{
    (void)r;
    dep_event(arg, obj, true);
}

static void
dep_remove(void *arg, const struct kube_resource *r, const json_t *obj)
{
    (void)r;
    dep_event(arg, obj, false);
}

static void
dep_synced(void *arg, const struct kube_resource *r, bool served)
{
    struct kube_wp *w = arg;
    (void)r;
    (void)served;
    w->dep_synced = true;
    schedule(w, 0);
}

static const struct kube_sink dep_sink = {
    .upsert = dep_upsert,
    .remove = dep_remove,
    .synced = dep_synced,
};

int
kube_wp_start(struct meshd_kube *k, char *err, size_t errlen)
{
    struct kube_wp *w = xcalloc(1, sizeof(*w));

    w->k = k;
    w->deps = json_object();
    w->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 5);
    w->dep_res = (struct kube_resource){"apps/v1", "deployments", "Deployment", true};
    k->wp = w;
    /* Only what a Gateway deploys: the label every one of them has. */
    w->dep_rf =
        kube_reflector_start(k->d->kube, &w->dep_res, NULL, WP_LABEL_GATEWAY_NAME, &dep_sink, w);
    if (w->dep_rf == NULL) {
        snprintf(err, errlen, "cannot watch Deployments");
        return -1;
    }
    return 0;
}

void
kube_wp_stop(struct meshd_kube *k)
{
    struct kube_wp *w = k->wp;

    if (w == NULL)
        return;
    if (w->dep_rf != NULL)
        kube_reflector_stop(w->dep_rf);
    loop_timer_stop(k->d->loop, &w->timer);
    while (w->ops != NULL) {
        /* A cancelled request's callback never runs: its op is freed here. */
        struct wp_op *op = w->ops;
        kube_request_cancel(op->req);
        op_unlink(w, op);
        op_free(op);
    }
    for (size_t i = 0; i < w->n_memo; i++)
        memo_free_one(&w->memo[i]);
    free(w->memo);
    seen_clear(w);
    json_decref(w->deps);
    free(w);
    k->wp = NULL;
}

/* ---- diagnostics ---- */

void
kube_wp_metrics(const struct meshd_kube *k, FILE *f)
{
    const struct kube_wp *w = k->wp;
    size_t programmed = 0;

    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_seen; i++)
        programmed += w->seen[i].programmed;
    fprintf(f, "# HELP meshd_kube_waypoints Waypoint Gateways meshd deploys, by Programmed.\n"
               "# TYPE meshd_kube_waypoints gauge\n");
    fprintf(f, "meshd_kube_waypoints{programmed=\"true\"} %zu\n", programmed);
    fprintf(f, "meshd_kube_waypoints{programmed=\"false\"} %zu\n", w->n_seen - programmed);
    fprintf(f, "# HELP meshd_kube_waypoint_writes_total Writes of waypoint objects and Gateway "
               "status, by kind, verb and result.\n"
               "# TYPE meshd_kube_waypoint_writes_total counter\n");
    for (int r = 0; r <= WPK_CLASS; r++)
        for (int v = 0; v < WPV_N; v++)
            for (int ok = 0; ok < 2; ok++) {
                if (w->writes[r][v][ok] == 0)
                    continue;
                fprintf(f,
                        "meshd_kube_waypoint_writes_total{kind=\"%s\",verb=\"%s\",result=\"%s\"} "
                        "%llu\n",
                        r == WPK_CLASS     ? "GatewayClass"
                        : r == WPK_GATEWAY ? "Gateway"
                                           : wpk[r].kind,
                        verb_names[v], ok == 0 ? "ok" : "failed",
                        (unsigned long long)w->writes[r][v][ok]);
            }
    fprintf(f,
            "# HELP meshd_kube_waypoint_passes_total Waypoint reconcile passes.\n"
            "# TYPE meshd_kube_waypoint_passes_total counter\n"
            "meshd_kube_waypoint_passes_total %llu\n",
            (unsigned long long)w->passes);
}

char *
meshd_kube_waypoints_text(const struct meshd *d)
{
    const struct meshd_kube *k = d->kube_src;
    const struct kube_wp *w = k != NULL ? k->wp : NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    CHECK(f != NULL);
    if (w == NULL) {
        fprintf(f, "not watching a Kubernetes API server\n");
    } else {
        fprintf(f, "xds address for waypoints: %s\n", w->xds[0] ? w->xds : "(unknown)");
        fprintf(f, "%-20s %-24s %-24s %-8s %-8s %s\n", "NAMESPACE", "GATEWAY", "DEPLOYMENT",
                "READY", "SERVICE", "PROGRAMMED");
        for (size_t i = 0; i < w->n_seen; i++) {
            const struct wp_seen *s = &w->seen[i];
            char ready[32];
            snprintf(ready, sizeof(ready), "%d/%d", s->ready, s->replicas);
            fprintf(f, "%-20s %-24s %-24s %-8s %-8s %s\n", s->ns, s->name, s->deployment, ready,
                    s->service ? "yes" : "no", s->programmed ? "True" : "False");
        }
        for (size_t i = 0; i < w->n_memo; i++)
            if (w->memo[i].fails > 0)
                fprintf(f, "failing: %s (%u failures)\n", w->memo[i].key, w->memo[i].fails);
    }
    fclose(f);
    return buf;
}
