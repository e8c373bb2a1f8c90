/*
 * wp_status.c - the status istiod writes on a waypoint Gateway and on GatewayClass
 * istio-waypoint, computed from what the caller observed (struct wp_facts).
 *
 * Accepted is always true for a waypoint (its class is ours); Programmed turns true when a
 * replica of its Deployment is ready, which is when traffic can use it (istiod says so once
 * the Service has an address; amesh waits for the replica, as `meshctl waypoint apply --wait`
 * and issue 10 ask). Every condition carries observedGeneration, and keeps the
 * lastTransitionTime it had while its status does not change, so a status recomputed from the
 * same facts is equal to the one written: the caller patches only when they differ, and the
 * watch event of its own patch never leads to another.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "wpdeploy/wpdeploy.h"

#define NO_ERRORS "No errors found"

static const char *
str_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *v = json_object_get(obj, a);
    if (b != NULL)
        v = json_object_get(v, b);
    return json_string_value(v);
}

bool
wp_condition_programmed(const json_t *gw, const struct wp_facts *f, char *reason, size_t reasonlen,
                        char *msg, size_t msglen)
{
    const char *ns = str_at(gw, "metadata", "namespace");
    const char *dname = wp_deployment_name(gw);

    if (ns == NULL)
        ns = "";
    if (dname == NULL)
        dname = "";
    if (f->ready > 0 && f->service) {
        snprintf(reason, reasonlen, "Programmed");
        snprintf(msg, msglen,
                 "Resource programmed, assigned to service(s) %s.%s.svc.cluster.local:%d", dname,
                 ns, WP_HBONE_PORT);
        return true;
    }
    snprintf(reason, reasonlen, "Pending");
    if (!f->service && f->ready > 0)
        snprintf(msg, msglen, "Waiting for service %s/%s", ns, dname);
    else
        snprintf(msg, msglen, "Waiting for a ready replica of deployment %s/%s (%d/%d ready)", ns,
                 dname, f->ready, f->replicas);
    return false;
}

/* The condition of |type| in |conds| (an array), or NULL. */
static const json_t *
find_condition(const json_t *conds, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t != NULL && strcmp(t, type) == 0)
            return c;
    }
    return NULL;
}

/* Appends a condition to |out|; its lastTransitionTime is |prev|'s if the status is |prev|'s. */
static void
add_condition(json_t *out, const json_t *prev_conds, const char *type, bool status,
              const char *reason, const char *msg, json_int_t generation, const char *now)
{
    const json_t *prev = find_condition(prev_conds, type);
    const char *st = status ? "True" : "False";
    const char *ltt = now;
    const char *pst = json_string_value(json_object_get(prev, "status"));
    const char *pltt = json_string_value(json_object_get(prev, "lastTransitionTime"));

    if (pst != NULL && pltt != NULL && strcmp(pst, st) == 0)
        ltt = pltt;
    json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "type", type, "status",
                                         st, "reason", reason, "message", msg, "observedGeneration",
                                         generation, "lastTransitionTime", ltt));
}

static json_int_t
generation_of(const json_t *obj)
{
    return json_integer_value(json_object_get(json_object_get(obj, "metadata"), "generation"));
}

/* The current status's listener |name|, or NULL. */
static const json_t *
find_listener(const json_t *status, const char *name)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(status, "listeners"), i, l)
    {
        const char *n = json_string_value(json_object_get(l, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return l;
    }
    return NULL;
}

json_t *
wp_gateway_status(const json_t *gw, const struct wp_facts *f, const char *now)
{
    const json_t *cur = json_object_get(gw, "status");
    const json_t *prev = json_object_get(cur, "conditions");
    json_int_t gen = generation_of(gw);
    char reason[32], msg[600];
    bool programmed = wp_condition_programmed(gw, f, reason, sizeof(reason), msg, sizeof(msg));

    json_t *conds = json_array();
    add_condition(conds, prev, "Accepted", true, "Accepted", "Resource accepted", gen, now);
    add_condition(conds, prev, "Programmed", programmed, reason, msg, gen, now);

    /* The Service's cluster IP, then its name, as istiod lists a waypoint's addresses. */
    json_t *addrs = json_array();
    const char *ns = str_at(gw, "metadata", "namespace");
    if (f->service && f->cluster_ip != NULL && f->cluster_ip[0] != '\0' &&
        strcmp(f->cluster_ip, "None") != 0)
        json_array_append_new(addrs,
                              json_pack("{s:s, s:s}", "type", "IPAddress", "value", f->cluster_ip));
    if (f->service && ns != NULL) {
        char host[600];
        snprintf(host, sizeof(host), "%s.%s.svc.cluster.local", wp_deployment_name(gw), ns);
        json_array_append_new(addrs, json_pack("{s:s, s:s}", "type", "Hostname", "value", host));
    }

    const json_t *pl = json_object_get(find_listener(cur, WP_LISTENER), "conditions");
    json_t *lconds = json_array();
    add_condition(lconds, pl, "Accepted", true, "Accepted", NO_ERRORS, gen, now);
    add_condition(lconds, pl, "Conflicted", false, "NoConflicts", NO_ERRORS, gen, now);
    add_condition(lconds, pl, "Programmed", true, "Programmed", NO_ERRORS, gen, now);
    add_condition(lconds, pl, "ResolvedRefs", true, "ResolvedRefs", NO_ERRORS, gen, now);
    json_t *listener = json_pack("{s:s, s:i, s:o, s:[]}", "name", WP_LISTENER, "attachedRoutes",
                                 f->attached_routes, "conditions", lconds, "supportedKinds");

    return json_pack("{s:o, s:o, s:[o]}", "addresses", addrs, "conditions", conds, "listeners",
                     listener);
}

json_t *
wp_class_status(const json_t *cls, const char *now)
{
    json_t *conds = json_array();
    add_condition(conds, json_object_get(json_object_get(cls, "status"), "conditions"), "Accepted",
                  true, "Accepted", "Handled by Istio controller", generation_of(cls), now);
    return json_pack("{s:o}", "conditions", conds);
}

bool
wp_status_same(const json_t *cur, const json_t *want)
{
    /* Fields others wrote beside ours do not count: a merge patch would leave them anyway. */
    return wp_holds(cur, want);
}

bool
wp_route_attaches(const json_t *route, const json_t *gw)
{
    const char *gns = str_at(gw, "metadata", "namespace");
    const char *gname = str_at(gw, "metadata", "name");
    const char *rns = str_at(route, "metadata", "namespace");
    const char *from = "Same";
    size_t i;
    json_t *l, *ref;

    if (gns == NULL || gname == NULL || rns == NULL)
        return false;
    json_array_foreach(json_object_get(json_object_get(gw, "spec"), "listeners"), i, l)
    {
        const char *n = json_string_value(json_object_get(l, "name"));
        const char *fr = json_string_value(json_object_get(
            json_object_get(json_object_get(l, "allowedRoutes"), "namespaces"), "from"));
        if (n != NULL && strcmp(n, WP_LISTENER) == 0 && fr != NULL)
            from = fr;
    }
    if (strcmp(from, "All") != 0 && (strcmp(from, "Same") != 0 || strcmp(rns, gns) != 0))
        return false;
    json_array_foreach(json_object_get(json_object_get(route, "spec"), "parentRefs"), i, ref)
    {
        const char *group = json_string_value(json_object_get(ref, "group"));
        const char *kind = json_string_value(json_object_get(ref, "kind"));
        const char *ns = json_string_value(json_object_get(ref, "namespace"));
        const char *name = json_string_value(json_object_get(ref, "name"));
        const char *section = json_string_value(json_object_get(ref, "sectionName"));
        const json_t *port = json_object_get(ref, "port");
        if ((group != NULL && strcmp(group, "gateway.networking.k8s.io") != 0) ||
            (kind != NULL && strcmp(kind, "Gateway") != 0) || name == NULL ||
            strcmp(name, gname) != 0 || strcmp(ns != NULL ? ns : rns, gns) != 0)
            continue;
        if (section != NULL && strcmp(section, WP_LISTENER) != 0)
            continue;
        if (port != NULL && json_integer_value(port) != WP_HBONE_PORT)
            continue;
        return true;
    }
    return false;
}
