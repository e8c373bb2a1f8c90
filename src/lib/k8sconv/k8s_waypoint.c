/*
 * k8s_waypoint.c - which waypoint a Service or a pod is bound to, as istiod
 * decides it (pilot/pkg/serviceregistry/ambient/waypoints.go: the Gateway
 * transform, fetchWaypointForTarget, GetUseWaypoint), and the diagnostics
 * of bindings that do not hold.
 *
 *   waypoint   a Gateway of gatewayClassName istio-waypoint; its traffic
 *              type is the label istio.io/waypoint-for on it, else on the
 *              GatewayClass istio-waypoint when that object exists, else
 *              "service"; service | workload | all | none
 *   binding    label istio.io/use-waypoint on the object, else on its
 *              Namespace ("none" opts out; the object's label, even "none",
 *              wins); istio.io/use-waypoint-namespace next to it names the
 *              waypoint's namespace (default: the object's)
 *   allowed    another namespace only when the waypoint's listener allows
 *              it: allowedRoutes.namespaces.from All, or Selector matching
 *              the client namespace's labels (default Same)
 *   kind       Services need service|all, pods workload|all; a pod (or
 *              Service) that only inherits its namespace's label from a
 *              waypoint of the other kind is silently not bound, as istiod
 *   never      waypoint pods and Services themselves (label
 *              gateway.networking.k8s.io/gateway-name)
 *
 * Unlike istiod, a binding holds as soon as the label names an existing
 * waypoint Gateway, without waiting for status.addresses: until a replica is
 * ready ztunnel refuses that traffic (fails closed) instead of sending it
 * around the waypoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

#define LABEL_USE        "istio.io/use-waypoint"
#define LABEL_USE_NS     "istio.io/use-waypoint-namespace"
#define LABEL_FOR        "istio.io/waypoint-for"
#define LABEL_GATEWAY    "gateway.networking.k8s.io/gateway-name"
/* The API server sets it on every namespace. */
#define LABEL_NS_NAME    "kubernetes.io/metadata.name"
#define WAYPOINT_CLASS   "istio-waypoint"
#define WAYPOINT_PORT    15008
#define WAYPOINT_LISTENER "mesh"

/* Istio analyzer code (istioctl analyze) and amesh's own (AM, as k8s_service.c's AM0001). */
#define CODE_NOT_FOUND    "IST0101" /* ReferencedResourceNotFound */
#define CODE_WRONG_KIND   "AM0002"  /* the waypoint does not serve this kind of traffic */
#define CODE_CROSS_NS     "AM0003"  /* the waypoint's listener does not allow this namespace */
#define CODE_BAD_WAYPOINT "AM0004"  /* a Gateway of class istio-waypoint that is not well formed */

enum from { FROM_SAME, FROM_ALL, FROM_SELECTOR };

/* What binding needs of a waypoint Gateway. */
struct waypoint {
    const struct k8s_obj *gw;
    unsigned traffic;        /* K8S_WP_SERVICE | K8S_WP_WORKLOAD */
    const char *traffic_str; /* as written, "service" by default */
    enum from from;
    const json_t *selector; /* allowedRoutes.namespaces.selector with FROM_SELECTOR */
    const json_t *listener; /* the one allowedRoutes are read from, or NULL */
};

/* Member |key| of object |parent|, NULL when absent or null (or |parent| is no object). */
static const json_t *
member(const json_t *parent, const char *key)
{
    const json_t *v = json_is_object(parent) ? json_object_get(parent, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

static const char *
label(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.labels, o->meta.n_labels, key);
}

static const char *
jstr(const json_t *parent, const char *key)
{
    return json_string_value(member(parent, key));
}

/* The line where label |key| of |o| is written. */
static int
label_line(const struct k8s_obj *o, const char *key)
{
    const json_t *meta = member(k8s_obj_json(o), "metadata");
    const json_t *labels = meta ? member(meta, "labels") : NULL;

    return labels ? k8s_obj_key_line(o, labels, key) : o->line;
}

static unsigned
traffic_bits(const char *s, bool *ok)
{
    *ok = true;
    if (strcmp(s, "service") == 0)
        return K8S_WP_SERVICE;
    if (strcmp(s, "workload") == 0)
        return K8S_WP_WORKLOAD;
    if (strcmp(s, "all") == 0)
        return K8S_WP_SERVICE | K8S_WP_WORKLOAD;
    *ok = strcmp(s, "none") == 0;
    return 0;
}

/* The listener allowedRoutes come from: "mesh", else the first HBONE one. */
static const json_t *
pick_listener(const json_t *listeners)
{
    const json_t *hbone = NULL;

    for (size_t i = 0; i < json_array_size(listeners); i++) {
        const json_t *l = json_array_get(listeners, i);
        const char *name = jstr(l, "name"), *proto = jstr(l, "protocol");
        if (name != NULL && strcmp(name, WAYPOINT_LISTENER) == 0)
            return l;
        if (hbone == NULL && proto != NULL && strcmp(proto, "HBONE") == 0)
            hbone = l;
    }
    return hbone;
}

static bool
listener_ok(const json_t *l)
{
    const char *name = jstr(l, "name"), *proto = jstr(l, "protocol");
    const json_t *port = member(l, "port");

    return name != NULL && strcmp(name, WAYPOINT_LISTENER) == 0 && proto != NULL &&
           strcmp(proto, "HBONE") == 0 && json_is_integer(port) &&
           json_integer_value(port) == WAYPOINT_PORT;
}

/*
 * Reads waypoint |gw| into |w|. Returns false when |gw| is not of class
 * istio-waypoint. With |d|, what is wrong with the Gateway is reported there.
 */
static bool
waypoint_read(const struct k8s_store *st, const struct k8s_obj *gw, struct waypoint *w,
              struct k8s_diags *d)
{
    const json_t *spec = member(k8s_obj_json(gw), "spec");
    const char *cls = spec ? jstr(spec, "gatewayClassName") : NULL;
    bool ok;

    memset(w, 0, sizeof(*w));
    if (cls == NULL || strcmp(cls, WAYPOINT_CLASS) != 0)
        return false;
    w->gw = gw;
    /* Traffic type: the Gateway's label, else its class's. */
    const struct k8s_obj *src = gw;
    w->traffic_str = label(gw, LABEL_FOR);
    if (w->traffic_str == NULL) {
        src = k8s_store_find(st, K8S_GATEWAY_CLASS, "", WAYPOINT_CLASS);
        w->traffic_str = src ? label(src, LABEL_FOR) : NULL;
    }
    if (w->traffic_str == NULL)
        w->traffic_str = "service";
    w->traffic = traffic_bits(w->traffic_str, &ok);
    if (!ok && d != NULL)
        k8s_diag_add(d, src->file, label_line(src, LABEL_FOR), K8S_WARNING, CODE_BAD_WAYPOINT,
                     "%s %s%s%s: %s \"%s\" is not service, workload, all or none; waypoint %s/%s "
                     "takes no traffic",
                     k8s_kind_name(src->kind), src->meta.ns, src->meta.ns[0] ? "/" : "",
                     src->meta.name, LABEL_FOR, w->traffic_str, gw->meta.ns, gw->meta.name);
    /* The listener: allowedRoutes, and a warning unless it is mesh/15008/HBONE. */
    const json_t *listeners = spec ? member(spec, "listeners") : NULL;
    w->listener = pick_listener(listeners);
    bool any_ok = false;
    for (size_t i = 0; i < json_array_size(listeners) && !any_ok; i++)
        any_ok = listener_ok(json_array_get(listeners, i));
    if (!any_ok && d != NULL)
        k8s_diag_add(d, gw->file,
                     listeners ? k8s_obj_line_of(gw, listeners) : k8s_obj_line_of(gw, spec),
                     K8S_WARNING, CODE_BAD_WAYPOINT,
                     "Gateway %s/%s of class %s has no listener {name: %s, port: %d, protocol: "
                     "HBONE}: its waypoint cannot accept mesh traffic, and what is bound to it "
                     "is refused",
                     gw->meta.ns, gw->meta.name, WAYPOINT_CLASS, WAYPOINT_LISTENER, WAYPOINT_PORT);
    const json_t *ar = w->listener ? member(w->listener, "allowedRoutes") : NULL;
    const json_t *nss = ar ? member(ar, "namespaces") : NULL;
    const char *from = nss ? jstr(nss, "from") : NULL;
    w->from = FROM_SAME;
    if (from != NULL && strcmp(from, "All") == 0) {
        w->from = FROM_ALL;
    } else if (from != NULL && strcmp(from, "Selector") == 0) {
        w->from = FROM_SELECTOR;
        w->selector = member(nss, "selector");
    } else if (from != NULL && strcmp(from, "Same") != 0 && d != NULL) {
        k8s_diag_add(d, gw->file, k8s_obj_key_line(gw, nss, "from"), K8S_WARNING,
                     CODE_BAD_WAYPOINT,
                     "Gateway %s/%s: allowedRoutes.namespaces.from \"%s\" is not All, Selector "
                     "or Same; only its own namespace may use it",
                     gw->meta.ns, gw->meta.name, from);
    }
    return true;
}

/* A label of namespace |ns| (|nso| its object, may be NULL), the API server's name label too. */
static const char *
ns_label(const char *ns, const struct k8s_obj *nso, const char *key)
{
    if (strcmp(key, LABEL_NS_NAME) == 0)
        return ns;
    return nso ? label(nso, key) : NULL;
}

/* metav1.LabelSelector against namespace |ns|'s labels: matchLabels and matchExpressions. */
static bool
selector_matches(const json_t *sel, const char *ns, const struct k8s_obj *nso)
{
    const json_t *ml = member(sel, "matchLabels");
    const json_t *me = member(sel, "matchExpressions");
    const char *key;
    const json_t *v;

    if (!json_is_object(sel))
        return false; /* from: Selector without a selector selects nothing */
    json_object_foreach ((json_t *)(uintptr_t)ml, key, v) {
        const char *have = ns_label(ns, nso, key);
        if (have == NULL || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0)
            return false;
    }
    for (size_t i = 0; i < json_array_size(me); i++) {
        const json_t *e = json_array_get(me, i);
        const char *k = jstr(e, "key"), *op = jstr(e, "operator");
        const json_t *vals = member(e, "values");
        if (k == NULL || op == NULL)
            return false;
        const char *have = ns_label(ns, nso, k);
        bool in = false;
        for (size_t j = 0; have != NULL && j < json_array_size(vals); j++) {
            const char *x = json_string_value(json_array_get(vals, j));
            in |= x != NULL && strcmp(x, have) == 0;
        }
        bool ok = strcmp(op, "In") == 0             ? in
                  : strcmp(op, "NotIn") == 0        ? !in
                  : strcmp(op, "Exists") == 0       ? have != NULL
                  : strcmp(op, "DoesNotExist") == 0 ? have == NULL
                                                    : false;
        if (!ok)
            return false;
    }
    return true;
}

/* May objects of namespace |ns| (|nso|) use waypoint |w|? */
static bool
allows(const struct waypoint *w, const char *ns, const struct k8s_obj *nso)
{
    if (strcmp(w->gw->meta.ns, ns) == 0)
        return true;
    if (w->from == FROM_ALL)
        return true;
    return w->from == FROM_SELECTOR && selector_matches(w->selector, ns, nso);
}

static const char *
from_name(const struct waypoint *w)
{
    return w->from == FROM_ALL ? "All" : w->from == FROM_SELECTOR ? "Selector" : "Same";
}

/*
 * Resolves the binding |o| (|kind_bit|: what it is) asks for through label
 * holder |holder| (|o| itself or its Namespace). With |d|, the reasons a
 * binding does not hold are reported at |holder|'s label.
 */
static const struct k8s_obj *
resolve(const struct k8s_store *st, const char *ns, const struct k8s_obj *nso,
        const struct k8s_obj *holder, unsigned kind_bit, struct k8s_diags *d)
{
    const char *name = label(holder, LABEL_USE);
    const char *wns = label(holder, LABEL_USE_NS);
    const char *what = k8s_kind_name(holder->kind);
    char who[512];
    struct waypoint w;

    if (wns == NULL || wns[0] == '\0')
        wns = ns;
    snprintf(who, sizeof(who), "%s %s%s%s", what, holder->meta.ns, holder->meta.ns[0] ? "/" : "",
             holder->meta.name);
    const struct k8s_obj *gw = k8s_store_find(st, K8S_GATEWAY, wns, name);
    if (gw == NULL || !waypoint_read(st, gw, &w, NULL)) {
        if (d != NULL && gw == NULL)
            k8s_diag_add(d, holder->file, label_line(holder, LABEL_USE), K8S_ERROR,
                         CODE_NOT_FOUND,
                         "%s: %s names waypoint %s/%s, but there is no such Gateway; nothing "
                         "is bound to a waypoint",
                         who, LABEL_USE, wns, name);
        else if (d != NULL)
            k8s_diag_add(d, holder->file, label_line(holder, LABEL_USE), K8S_ERROR,
                         CODE_NOT_FOUND,
                         "%s: %s names Gateway %s/%s, which is not of gatewayClassName %s; "
                         "nothing is bound to a waypoint",
                         who, LABEL_USE, wns, name, WAYPOINT_CLASS);
        return NULL;
    }
    if (!allows(&w, ns, nso)) {
        if (d != NULL)
            k8s_diag_add(d, holder->file, label_line(holder, LABEL_USE), K8S_WARNING,
                         CODE_CROSS_NS,
                         "%s: waypoint %s/%s does not allow namespace %s (its listener's "
                         "allowedRoutes.namespaces.from is %s%s); not bound",
                         who, wns, name, ns, from_name(&w),
                         w.from == FROM_SELECTOR ? " and the selector does not match" : "");
        return NULL;
    }
    if ((w.traffic & kind_bit) == 0) {
        if (d != NULL && kind_bit != 0)
            k8s_diag_add(d, holder->file, label_line(holder, LABEL_USE), K8S_WARNING,
                         CODE_WRONG_KIND,
                         "%s: waypoint %s/%s is for %s traffic (%s), not %s traffic; not bound",
                         who, wns, name, w.traffic_str, LABEL_FOR,
                         kind_bit == K8S_WP_SERVICE ? "service" : "workload");
        return NULL;
    }
    return gw;
}

const struct k8s_obj *
k8s_waypoint_of(const struct k8s_store *st, const struct k8s_obj *o, const struct k8s_obj *nso,
                struct k8s_diags *d)
{
    unsigned kind_bit = o->kind == K8S_POD ? K8S_WP_WORKLOAD : K8S_WP_SERVICE;
    const char *own = label(o, LABEL_USE);

    if (label(o, LABEL_GATEWAY) != NULL)
        return NULL; /* a waypoint (its pods, its Service) never goes through one */
    if (own != NULL)
        return strcmp(own, "none") == 0 || own[0] == '\0'
                   ? NULL
                   : resolve(st, o->meta.ns, nso, o, kind_bit, d);
    const char *inherited = nso ? label(nso, LABEL_USE) : NULL;
    if (inherited == NULL || inherited[0] == '\0' || strcmp(inherited, "none") == 0)
        return NULL;
    /* Reported once at the Namespace (k8s_waypoint_diags), not per object. */
    return resolve(st, o->meta.ns, nso, nso, kind_bit, NULL);
}

Istio__Workload__GatewayAddress *
k8s_waypoint_address(struct k8s_arena *a, const struct k8s_build_ctx *b, const struct k8s_obj *gw)
{
    Istio__Workload__GatewayAddress *ga = k8s_arena_alloc(a, sizeof(*ga));
    Istio__Workload__NamespacedHostname *h = k8s_arena_alloc(a, sizeof(*h));

    istio__workload__gateway_address__init(ga);
    istio__workload__namespaced_hostname__init(h);
    h->namespace_ = gw->meta.ns;
    /* The Service istiod renders for the waypoint is named after the Gateway. */
    h->hostname = k8s_arena_printf(a, "%s.%s.svc.%s", gw->meta.name, gw->meta.ns,
                                   b->domain_suffix);
    ga->destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME;
    ga->hostname = h;
    ga->hbone_mtls_port = WAYPOINT_PORT;
    return ga;
}

void
k8s_waypoint_diags(const struct k8s_store *st, struct k8s_diags *out)
{
    struct waypoint w;

    if (out == NULL)
        return;
    for (size_t i = 0; i < k8s_store_count(st, K8S_GATEWAY); i++)
        waypoint_read(st, k8s_store_at(st, K8S_GATEWAY, i), &w, out);
    /* A Namespace's label: whether it names a usable waypoint at all (kind aside). */
    for (size_t i = 0; i < k8s_store_count(st, K8S_NAMESPACE); i++) {
        const struct k8s_obj *nso = k8s_store_at(st, K8S_NAMESPACE, i);
        const char *l = label(nso, LABEL_USE);
        if (l != NULL && l[0] != '\0' && strcmp(l, "none") != 0)
            resolve(st, nso->meta.name, nso, nso, 0, out);
    }
    static const enum k8s_kind kinds[] = {K8S_SERVICE, K8S_POD};
    for (size_t k = 0; k < ARRAY_LEN(kinds); k++)
        for (size_t i = 0; i < k8s_store_count(st, kinds[k]); i++) {
            const struct k8s_obj *o = k8s_store_at(st, kinds[k], i);
            const char *l = label(o, LABEL_USE);
            if (l != NULL && label(o, LABEL_GATEWAY) == NULL)
                k8s_waypoint_of(st, o, k8s_store_find(st, K8S_NAMESPACE, "", o->meta.ns), out);
        }
}
